// Client runners: execute a list of scenario steps ({sql, params}) against a server with one real
// MySQL client and return one normalized result per step (see scenario.mjs), plus the glue that
// turns the steps' checks into node:test subtests.
import path from 'node:path';
import mysql from 'mysql2/promise';
import { run, CLIENTS } from './harness.mjs';

const PY = '/usr/bin/python3';

function connInfo(srv, o = {}) {
    return {
        host: '127.0.0.1',
        port: srv.port,
        user: o.user ?? 'root',
        password: o.password ?? srv.password,
        db: o.db ?? null,
    };
}

/** Parses the JSON a client script printed; a non-JSON stdout is an error carrying the output. */
function parseOut(name, r) {
    try {
        const out = JSON.parse(r.stdout);
        if (out.connect) {
            throw new Error(`${name}: connect failed: ERR ${out.connect.code} (${out.connect.sqlstate}) ${out.connect.message}`);
        }
        return out.results;
    } catch (e) {
        if (!(e instanceof SyntaxError)) throw e;
        throw new Error(`${name}: exit ${r.code}, output is not JSON\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    }
}

// ---- mysql2 (in process) ------------------------------------------------------------------

export async function mysql2Connect(srv, o = {}) {
    const c = connInfo(srv, o);
    return mysql.createConnection({
        host: c.host, port: c.port, user: c.user, password: c.password,
        ...(c.db ? { database: c.db } : {}),
        ...(o.ssl ? { ssl: o.ssl } : {}),
        ...(o.localAddress ? { localAddress: o.localAddress } : {}),
        connectTimeout: 5000,
    });
}

export function mysql2Error(e) {
    if (e && e.errno !== undefined && e.sqlMessage !== undefined) {
        return { ok: false, code: e.errno, sqlstate: e.sqlState ?? null, message: e.sqlMessage };
    }
    throw e; // a client-side failure (protocol error, lost connection): not a server ERR
}

/** One statement on a mysql2/promise connection, normalized. mode: 'query' | 'execute'. */
export async function mysql2Step(conn, mode, sql, params) {
    try {
        const [res, fields] = await conn[mode]({ sql, rowsAsArray: true }, params ?? []);
        if (Array.isArray(res)) {
            return { ok: true, columns: fields.map((f) => f.name), rows: res, affected: null, insertId: null };
        }
        return { ok: true, columns: null, rows: null, affected: res.affectedRows, insertId: res.insertId };
    } catch (e) {
        return mysql2Error(e);
    }
}

export async function runMysql2(srv, steps, o = {}) {
    const conn = await mysql2Connect(srv, o);
    conn.on('error', () => { /* reported through the failing step */ });
    try {
        const out = [];
        for (const s of steps) out.push(await mysql2Step(conn, o.mode ?? 'query', s.sql, s.params));
        return out;
    } finally {
        await conn.end().catch(() => conn.destroy());
    }
}

// ---- mariadb CLI ----------------------------------------------------------------------------

/** Inlines `?` parameters as SQL literals (for clients without server-side parameters). */
export function inlineParams(sql, params) {
    if (!params) return sql;
    let i = 0;
    return sql.replace(/\?/g, () => {
        const v = params[i++];
        return typeof v === 'number' ? String(v) : `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    });
}

const CLI_ERR_RE = /^ERROR (\d+) \(([0-9A-Z]{5})\)(?: at line \d+)?: (.*)$/m;

export function mariadbArgs(srv, o = {}) {
    const c = connInfo(srv, o);
    return [`-h${c.host}`, `-P${c.port}`, `-u${c.user}`, `-p${c.password}`, '--batch', '--raw',
        '--connect-timeout=5', ...(c.db ? [`-D${c.db}`] : []), ...(o.cliArgs ?? [])];
}

/**
 * One statement through `mariadb -e`, normalized. -vv makes batch mode say what the server
 * answered: "Query OK, N rows affected", "Empty set", or a tab-separated table followed by
 * "N rows in set" (all after an echo of the statement between dashes, and before "Bye").
 */
export async function mariadbStep(srv, sql, o = {}) {
    const r = await run('mariadb', [...mariadbArgs(srv, o), '-vv', '-e', sql]);
    if (r.code !== 0) {
        const m = CLI_ERR_RE.exec(r.stderr);
        if (!m) throw new Error(`mariadb exited ${r.code} without an ERROR line\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
        return { ok: false, code: Number(m[1]), sqlstate: m[2], message: m[3], stderr: r.stderr };
    }
    const DASHES = '--------------\n';
    let body = r.stdout;
    const end = body.indexOf(`\n${DASHES}\n`, DASHES.length);
    if (!body.startsWith(DASHES) || end < 0) throw new Error(`mariadb -vv: unexpected output\n${r.stdout}`);
    body = body.slice(end + DASHES.length + 2).replace(/\n*(Bye\n)?$/, '');
    let m = /^Query OK, (\d+) rows? affected/.exec(body);
    if (m) return { ok: true, columns: null, rows: null, affected: Number(m[1]), insertId: null };
    if (/^Empty set/.test(body)) return { ok: true, columns: [], rows: [], affected: null, insertId: null };
    const lines = body.split('\n');
    m = /^(\d+) rows? in set/.exec(lines.at(-1));
    if (!m) throw new Error(`mariadb -vv: no "rows in set" line\n${r.stdout}`);
    const columns = lines[0].split('\t');
    const rows = lines.slice(1, -1).map((l) => l.split('\t').map((v) => (v === 'NULL' ? null : v)));
    if (rows.length !== Number(m[1])) throw new Error(`mariadb -vv: ${rows.length} rows parsed, ${m[1]} announced\n${r.stdout}`);
    return { ok: true, columns, rows, affected: null, insertId: null };
}

export async function runMariadb(srv, steps, o = {}) {
    const out = [];
    for (const s of steps) out.push(await mariadbStep(srv, inlineParams(s.sql, s.params), o));
    return out;
}

// ---- PHP and Python scripts (JSON in on stdin, JSON out on stdout) ---------------------------

async function runScript(name, cmd, args, srv, steps, o) {
    const input = JSON.stringify({ ...connInfo(srv, o), ...(o.extra ?? {}), steps: steps.map((s) => ({ sql: s.sql, params: s.params ?? null })) });
    const r = await run(cmd, args, { input });
    return parseOut(name, r);
}

export function runPhp(script, srv, steps, o = {}) {
    return runScript(script, 'php', [path.join(CLIENTS, script)], srv, steps, o);
}

export function runPymysql(srv, steps, o = {}) {
    return runScript('pymysql_runner.py', PY, [path.join(CLIENTS, 'pymysql_runner.py')], srv, steps, o);
}

// ---- checks -> subtests -------------------------------------------------------------------------

/**
 * One subtest per step, asserting results[i] with the step's check. If any fails, the server's
 * output is attached once as a diagnostic.
 */
export async function checkSteps(t, srv, steps, results, ctx) {
    let failed = 0;
    for (const [i, s] of steps.entries()) {
        await t.test(s.name, () => {
            try {
                s.check(results[i], ctx);
            } catch (e) {
                failed++;
                e.message = `${e.message}\n  sql: ${s.sql}${s.params ? `\n  params: ${JSON.stringify(s.params)}` : ''}` +
                    `\n  result: ${JSON.stringify(results[i])}`;
                throw e;
            }
        });
    }
    if (failed) t.diagnostic(srv.report());
}
