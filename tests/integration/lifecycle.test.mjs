// The process around CometQL: configuration errors and warnings, --check, SIGHUP reload, SIGTERM
// with open clients, expiry of offline queues and trust_* history, the HAProxy health-check
// login, and COM_QUIT.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, rmSync, mkdtempSync, statSync, chmodSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, Server, BIN, run, ROOT } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { RawConn, rawLogin, packet, COM } from './mysql_raw.mjs';

const SANITIZER_RE = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/;

/** A config written by the harness (free ports, temp store) plus extra lines; not started. */
async function configOnly(extraConf) {
    const s = new Server({ extraConf });
    await s.init();
    return s;
}

/** Resolves when the server's stderr matches re (checked on every chunk); rejects after timeoutMs. */
function waitForLog(srv, re, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
        const check = () => {
            if (re.test(srv.stderr)) {
                cleanup();
                resolve();
            }
        };
        const onExit = () => { cleanup(); reject(new Error(`ccomet exited while waiting for ${re}`)); };
        const timer = setTimeout(() => { cleanup(); reject(new Error(`no log line matching ${re} within ${timeoutMs} ms`)); }, timeoutMs);
        const cleanup = () => {
            clearTimeout(timer);
            srv.proc.stderr.off('data', check);
            srv.proc.off('close', onExit);
        };
        srv.proc.stderr.on('data', check);
        srv.proc.on('close', onExit);
        check();
    });
}

/** Polls fn every intervalMs until it returns true; fails after timeoutMs with describe(). */
async function pollUntil(fn, { intervalMs = 100, timeoutMs = 10_000, describe }) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        if (await fn()) return;
        if (Date.now() > deadline) assert.fail(`${await describe()} (still after ${timeoutMs} ms)`);
        await new Promise((r) => setTimeout(r, intervalMs));
    }
}

async function withConn(srv, o, fn) {
    const c = await mysql2Connect(srv, o);
    c.on('error', () => { /* surfaces through the failing statement */ });
    try {
        return await fn(c);
    } finally {
        await c.end().catch(() => c.destroy());
    }
}

// ---- configuration -------------------------------------------------------------------------------

for (const [section, key, value] of [['cometql', 'port', 'abc'], ['store', 'synchronous', 'sometimes'],
    ['cometql', 'max_packet', '12parsecs'], ['log', 'level', 'loud'], ['cometql', 'require_tls', 'yes']]) {
    test(`an invalid value ([${section}] ${key} = ${value}) stops the server with an error naming section and key`, async () => {
        const s = await configOnly(`[${section}]\n${key} = ${value}\n`);
        try {
            const r = await run(BIN, ['--conf', s.confPath], { timeoutMs: 10_000 });
            assert.notEqual(r.code, 0, `exit code (stderr: ${r.stderr})`);
            assert.ok(r.stderr.includes(section), `stderr names the section [${section}]: ${r.stderr}`);
            assert.ok(r.stderr.includes(key), `stderr names the key ${key}: ${r.stderr}`);
            assert.doesNotMatch(r.stderr, SANITIZER_RE);
            const chk = await run(BIN, ['--check', '--conf', s.confPath], { timeoutMs: 10_000 });
            assert.notEqual(chk.code, 0, `--check on the invalid file: exit ${chk.code}`);
            assert.ok(chk.stderr.includes(key), `--check names the key: ${chk.stderr}`);
        } finally {
            rmSync(s.dir, { recursive: true, force: true });
        }
    });
}

test('an unknown key only warns ("unknown key") and the server starts; --check on a valid file exits 0', async () => {
    const srv = await startServer({ extraConf: '[main]\nno_such_key = 1\n' });
    try {
        assert.match(srv.stderr, /unknown key/);
        assert.match(srv.stderr, /no_such_key/);
        await withConn(srv, {}, async (c) => {
            const [rows] = await c.query({ sql: 'SELECT 1', rowsAsArray: true });
            assert.deepEqual(rows, [[1]]);
        });
        const chk = await run(BIN, ['--check', '--conf', srv.confPath], { timeoutMs: 10_000 });
        assert.equal(chk.code, 0, `--check: exit ${chk.code}\nstdout: ${chk.stdout}\nstderr: ${chk.stderr}`);
        assert.match(chk.stdout, /valid/);
        assert.doesNotMatch(chk.stderr, SANITIZER_RE);
    } finally {
        await srv.stop();
    }
});

// ---- SIGHUP ------------------------------------------------------------------------------------

test('SIGHUP reloads the password: new logins need pw2, pw1 fails with ERR 16, open connections stay', async () => {
    const srv = await startServer({ password: 'pw1' });
    try {
        await srv.wrap(async () => {
            const old = await mysql2Connect(srv, { password: 'pw1' });
            old.on('error', () => {});
            try {
                const conf = readFileSync(srv.confPath, 'utf8');
                assert.match(conf, /^password = pw1$/m);
                writeFileSync(srv.confPath, conf.replace(/^password = pw1$/m, 'password = pw2'));
                const reloaded = waitForLog(srv, /configuration reloaded/);
                srv.proc.kill('SIGHUP');
                await reloaded;
                srv.password = 'pw2';

                await withConn(srv, { password: 'pw2' }, async (c) => {
                    const [rows] = await c.query({ sql: 'SELECT 1', rowsAsArray: true });
                    assert.deepEqual(rows, [[1]]);
                });
                await assert.rejects(mysql2Connect(srv, { password: 'pw1' }), (e) => {
                    assert.equal(e.errno, 16, `pw1 after reload: errno ${e.errno} ${e.message}`);
                    return true;
                });
                const [rows] = await old.query({ sql: 'SELECT 1', rowsAsArray: true });
                assert.deepEqual(rows, [[1]], 'the connection opened with pw1 is unaffected');
                await old.query("INSERT INTO users_auth (id, hash) VALUES (1, 'after_reload')");
                assert.ok(srv.running, 'still running after SIGHUP');
            } finally {
                await old.end().catch(() => old.destroy());
            }
        })();
    } finally {
        await srv.stop();
    }
});

// ---- SIGTERM -----------------------------------------------------------------------------------

test('SIGTERM with 3 open clients: exit 0, and every client sees its connection end', { timeout: 15_000 }, async () => {
    const srv = await startServer();
    const conns = [];
    try {
        conns.push(await rawLogin(srv), await rawLogin(srv));
        const m = await mysql2Connect(srv);
        const mEnded = new Promise((resolve) => {
            m.connection.stream.once('close', resolve);
        });
        m.on('error', () => {});
        const [r] = await m.query("INSERT INTO users_auth (id, hash) VALUES (7, 'before_term')");
        assert.equal(r.affectedRows, 1);
        for (const c of conns) assert.equal((await c.ping()).ok, true);
        await srv.stop({ cleanup: false }); // SIGTERM; asserts exit code 0 and no sanitizer report
        for (const c of conns) assert.equal(await c.waitClosed(5000), true, 'raw client saw the connection end');
        await mEnded;
        // and the acknowledged write is there after a restart
        await srv.start();
        await withConn(srv, {}, async (c) => {
            const [rows] = await c.query('SELECT hash FROM users_auth WHERE id = 7');
            assert.deepEqual(rows, [{ hash: 'before_term' }]);
        });
    } finally {
        for (const c of conns) c.destroy();
        await srv.stop();
    }
});

// ---- COM_QUIT ----------------------------------------------------------------------------------

test('COM_QUIT: the server closes the connection (as MySQL does)', { timeout: 10_000 }, async () => {
    const srv = await startServer();
    try {
        await srv.wrap(async () => {
            const c = await rawLogin(srv);
            await c.write(packet(0, Buffer.from([COM.QUIT])));
            const closed = await c.waitClosed(3000);
            c.destroy();
            assert.equal(closed, true, 'connection still open 3 s after COM_QUIT');
        })();
    } finally {
        await srv.stop();
    }
});

// ---- expiry ------------------------------------------------------------------------------------

test('queue_ttl = 1: an undelivered users_messages row is listed, then purged', { timeout: 15_000 }, async () => {
    const srv = await startServer({ extraConf: '[store]\nqueue_ttl = 1\npurge_interval = 1\ntrust_ttl = 1\n' });
    try {
        await srv.wrap(async () => {
            await withConn(srv, {}, async (c) => {
                const [ins] = await c.query("INSERT INTO users_messages (id, event, message) VALUES (91, 'ev', 'expires')");
                assert.equal(ins.affectedRows, 1);
                const [rows] = await c.query('SELECT * FROM users_messages WHERE id = 91');
                assert.deepEqual(rows.map((r) => r.message), ['expires'], 'queued while the user is offline');
                let last = rows;
                await pollUntil(async () => {
                    [last] = await c.query('SELECT * FROM users_messages WHERE id = 91');
                    return last.length === 0;
                }, { describe: () => `users_messages for 91 not purged: ${JSON.stringify(last)}` });
                assert.match(srv.stderr, /expired rows purged/);
            });
        })();
    } finally {
        await srv.stop();
    }
});

test('trust_ pipes keep history without pipes_settings; with trust_ttl = 1 it expires, other history does not', { timeout: 15_000 }, async () => {
    const srv = await startServer({ extraConf: '[store]\ntrust_ttl = 1\npurge_interval = 1\n' });
    try {
        await srv.wrap(async () => {
            await withConn(srv, {}, async (c) => {
                const msgs = async (name) => (await c.query(`SELECT message FROM pipes_messages WHERE name = '${name}'`))[0]
                    .map((r) => r.message);
                await c.query("INSERT INTO pipes_messages (name, event, message) VALUES ('trust_exp', 'ev', 't1'), ('trust_exp', 'ev', 't2')");
                await c.query("INSERT INTO pipes_messages (name, event, message) VALUES ('plain_nokeep', 'ev', 'x')");
                await c.query("INSERT INTO pipes_settings (name, length) VALUES ('plain_keep', 5)");
                await c.query("INSERT INTO pipes_messages (name, event, message) VALUES ('plain_keep', 'ev', 'k1')");
                assert.deepEqual(await msgs('trust_exp'), ['t1', 't2'], 'trust_ history kept without pipes_settings');
                assert.deepEqual(await msgs('plain_nokeep'), [], 'no history for a plain pipe without settings');
                let last;
                await pollUntil(async () => {
                    last = await msgs('trust_exp');
                    return last.length === 0;
                }, { describe: () => `trust_exp history not purged: ${JSON.stringify(last)}` });
                assert.deepEqual(await msgs('plain_keep'), ['k1'], 'pipes_settings history does not expire with trust_ttl');
            });
        })();
    } finally {
        await srv.stop();
    }
});

// ---- HAProxy health check ----------------------------------------------------------------------

const hc = await startServer({ password: 'hc-secret', extraConf: '[cometql]\nconnect_timeout = 2\n' });
after(() => hc.stop());

test('haproxy_check with an empty password: OK; COM_PING works; COM_QUERY gets ERR 403', hc.wrap(async () => {
    const c = await RawConn.connect(hc.port);
    try {
        const r = await c.login({ user: 'haproxy_check', token: Buffer.alloc(0) });
        assert.equal(r.ok, true, `haproxy_check login: ${JSON.stringify(r)}`);
        const p = await c.ping();
        assert.equal(p.ok, true, `COM_PING: ${JSON.stringify(p)}`);
        for (const sql of ['SELECT 1', 'SHOW TABLES', "INSERT INTO users_auth (id, hash) VALUES (1, 'x')"]) {
            const q = await c.query(sql);
            assert.equal(q.ok, false, `${sql} must be refused: ${JSON.stringify(q)}`);
            assert.equal(q.code, 403, JSON.stringify(q));
            assert.match(q.sqlstate ?? '', /^[0-9A-Z]{5}$/);
        }
        assert.equal((await c.ping()).ok, true, 'still answers COM_PING after refused queries');
        // nothing was written
        const root = await rawLogin(hc);
        const sel = await root.query('SELECT * FROM users_auth WHERE id = 1');
        root.destroy();
        assert.deepEqual(sel.rows, [], JSON.stringify(sel));
    } finally {
        c.destroy();
    }
}));

test('haproxy_check with a wrong password is an ordinary failed login (ERR 16)', hc.wrap(async () => {
    const c = await RawConn.connect(hc.port);
    try {
        const r = await c.login({ user: 'haproxy_check', password: 'wrong' });
        assert.equal(r.ok, false, JSON.stringify(r));
        assert.equal(r.code, 16, JSON.stringify(r));
        assert.equal(await c.waitClosed(), true);
    } finally {
        c.destroy();
    }
}));

// ---- before authentication (audit H3) -----------------------------------------------------------

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

test('before authentication a packet over 64 KiB is refused at its header (ERR 1153, close) and nothing is buffered', hc.wrap(async () => {
    // the header alone: answered ERR 1153, then closed
    const c0 = await RawConn.connect(hc.port);
    await c0.readHandshake();
    await c0.write(Buffer.from([0xff, 0xff, 0xff, 0x01])); // announces a 16 MiB packet
    const { payload } = await c0.readPacket();
    assert.equal(payload[0], 0xff, 'an ERR packet');
    assert.equal(payload.readUInt16LE(1), 1153, 'ER_NET_PACKET_TOO_LARGE');
    assert.equal(await c0.waitClosed(), true, 'and the connection closes');
    // streaming the packet on 16 connections: each is cut at the header (the ERR may then be
    // lost to the TCP reset that unread input causes), and nothing is buffered
    const before = rssKiB(hc.proc.pid);
    const conns = [];
    for (let i = 0; i < 16; i++) {
        const c = await RawConn.connect(hc.port);
        await c.readHandshake();
        conns.push(c);
    }
    const junk = Buffer.alloc(1024 * 1024, 0x41);
    for (const c of conns) {
        c.sock.write(Buffer.from([0xff, 0xff, 0xff, 0x01]));
        c.sock.write(junk);
    }
    for (const c of conns) assert.equal(await c.waitClosed(), true, 'the connection is closed');
    const grown = rssKiB(hc.proc.pid) - before;
    assert.ok(grown < 8 * 1024, `16 connections x 1 MiB of unauthenticated junk grew the server by ${grown} KiB`);
    // an ordinary login still works, and an authenticated connection may send big packets
    const root = await rawLogin(hc, { password: 'hc-secret' });
    const r = await root.query(`SELECT '${'x'.repeat(200 * 1024)}' AS big`);
    assert.equal(r.rows[0][0].length, 200 * 1024);
    root.destroy();
}));

test('a haproxy_check session is closed after connect_timeout, PINGs or not', hc.wrap(async () => {
    const c = await RawConn.connect(hc.port);
    try {
        const r = await c.login({ user: 'haproxy_check', token: Buffer.alloc(0) });
        assert.equal(r.ok, true, JSON.stringify(r));
        const t0 = Date.now();
        let pings = 0;
        while (!c.isClosed && Date.now() - t0 < 6000) {
            try { if ((await c.ping()).ok) pings++; } catch { break; }
            await new Promise((res) => setTimeout(res, 300));
        }
        assert.equal(await c.waitClosed(1000), true, 'the health-check session is closed');
        const held = Date.now() - t0;
        assert.ok(held < 4000, `closed after ${held} ms with connect_timeout = 2 s (${pings} PINGs answered)`);
    } finally {
        c.destroy();
    }
}));

// ---- the shipped password on an open port (audit C2) ----------------------------------------------

test('the shipped or an empty [main] password with a non-loopback listener stops the start; allow_default_password or an own password lets it', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ccomet-c2-'));
    try {
        const check = async (lines) => {
            const f = path.join(dir, 'c.ini');
            writeFileSync(f, lines.join('\n') + '\n');
            return run(BIN, ['--check', '--conf', f], { timeoutMs: 10_000 });
        };
        for (const [pw, key, ip] of [['password', 'cometql', '0.0.0.0'], ['', 'cometql', '0.0.0.0'], ['password', 'ws', '::']]) {
            const r = await check(['[main]', `password = ${pw}`, `[${key}]`, `ip = ${ip}`]);
            assert.notEqual(r.code, 0, `password '${pw}' with [${key}] ip = ${ip} must not start`);
            assert.ok(r.stderr.includes(`[${key}] ip`) && r.stderr.includes('[main] password'), r.stderr);
        }
        assert.equal((await check(['[main]', 'password = password', 'allow_default_password = yes', '[cometql]', 'ip = 0.0.0.0'])).code, 0);
        assert.equal((await check(['[main]', 'password = mine', '[cometql]', 'ip = 0.0.0.0', '[ws]', 'ip = 0.0.0.0'])).code, 0);
        assert.equal((await check(['[main]', 'password = password'])).code, 0, 'loopback by default: the shipped password is fine there');
        // the shipped [sip] pipesalt with media nodes and browsers on other hosts (audit M1)
        const node = 'freeswitch = Server=127.0.0.1, Port=8021, Pwd=x, WSport=5066';
        const salty = await check(['[main]', 'password = mine', '[ws]', 'ip = 0.0.0.0', '[sip]', node]);
        assert.notEqual(salty.code, 0, 'the shipped pipesalt with media nodes on an open ws port must not start');
        assert.match(salty.stderr, /\[sip\] pipesalt is the shipped default/);
        assert.equal((await check(['[main]', 'password = mine', '[ws]', 'ip = 0.0.0.0', '[sip]', node, 'pipesalt = s3cr3t-salt'])).code, 0);
        assert.equal((await check(['[main]', 'password = mine', '[ws]', 'ip = 127.0.0.1', '[sip]', node])).code, 0, 'loopback: fine');
        assert.equal((await check(['[main]', 'password = mine', '[ws]', 'ip = 0.0.0.0'])).code, 0, 'no media nodes: no call pipes');
        const committed = await run(BIN, ['--check', '--conf', path.join(ROOT, 'comet.ini')], { timeoutMs: 10_000 });
        assert.notEqual(committed.code, 0, 'the committed comet.ini ([ws] ip = 0.0.0.0, shipped password) needs a password of its own');
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

test('the store holds users\' keys: its file and WAL are 0600 whatever the umask, and a store left 0644 is closed up at start (audit M10)', async () => {
    const s = await configOnly('');
    const mode = (f) => statSync(f).mode & 0o777;
    try {
        await s.start();
        await withConn(s, {}, (c) => c.query("INSERT INTO users_auth (id, hash) VALUES (1, 'k1')"));
        assert.equal(mode(s.storePath).toString(8), '600');
        if (existsSync(`${s.storePath}-wal`)) assert.equal(mode(`${s.storePath}-wal`).toString(8), '600');
        await s.stop({ cleanup: false });
        chmodSync(s.storePath, 0o644);
        await s.start();
        assert.equal(mode(s.storePath).toString(8), '600', 'made private at start');
        assert.match(s.stderr, /store was readable by others; now 0600/);
        await withConn(s, {}, async (c) => assert.deepEqual((await c.query('SELECT * FROM users_auth WHERE id = 1'))[0], [{ id: 1, hash: 'k1' }]));
    } finally {
        await s.stop().catch(() => {});
        rmSync(s.dir, { recursive: true, force: true });
    }
});
