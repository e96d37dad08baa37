// The CometQL contract every MySQL client is run through: one list of steps (SQL, optional
// `?` parameters, and a check of the result). A client runner executes the steps in order on one
// connection and returns one normalized result per step:
//
//   { ok: true,  columns: [name...] | null, rows: [[v...]...] | null, affected, insertId }
//   { ok: false, code, sqlstate, message }
//
// columns/rows are null for OK packets. affected/insertId are null when the client cannot tell
// (the mariadb CLI in batch mode). The checks take a ctx describing what the client can show:
//   ctx.ints       'native' (integer columns come back as numbers) or 'string'
//   ctx.affected   the client reports affected_rows
//   ctx.sqlstate   the client reports the SQLSTATE of errors
import assert from 'node:assert/strict';

export const ALL_TABLES = [
    'users_auth', 'users_data', 'revoked_tokens', 'users_time', 'users_messages', 'pipes_messages',
    'users_in_pipes', 'pipes', 'pipes_settings', 'conference', 'conference_members',
];

// Matchers for values the server chooses (message ids, times).
export const ANY_STRING = Object.freeze({ match: 'non-empty string', test: (v) => typeof v === 'string' && v.length > 0 });
const anyInt = (ctx, min = 0) => ({
    match: `integer >= ${min}`,
    test: (v) => (ctx.ints === 'native' ? Number.isInteger(v) : typeof v === 'string' && /^-?\d+$/.test(v))
        && Number(v) >= min,
});

function fmt(x) {
    return JSON.stringify(x, (k, v) => (v && typeof v === 'object' && typeof v.test === 'function' ? `<${v.match}>` : v));
}

/** Result rows as objects keyed by column name (lowercased). */
export function rowObjects(r) {
    const cols = r.columns.map((c) => String(c).toLowerCase());
    return r.rows.map((row) => Object.fromEntries(cols.map((c, i) => [c, row[i]])));
}

// Expected integers become strings for clients that return text.
function expectValue(v, ctx) {
    if (typeof v === 'number' && ctx.ints !== 'native') return String(v);
    return v;
}

function valueMatches(actual, expected, ctx) {
    if (expected && typeof expected === 'object' && typeof expected.test === 'function') return expected.test(actual);
    return actual === expectValue(expected, ctx);
}

export function assertOk(r, what = 'statement') {
    assert.ok(r, `${what}: no result`);
    assert.equal(r.ok, true, `${what}: expected OK, got ERR ${r.code} (${r.sqlstate}) ${r.message}`);
}

/** OK packet (no result set), optionally with the given affected_rows. */
export function expectOkPacket(r, ctx, affected) {
    assertOk(r);
    assert.equal(r.rows, null, `expected an OK packet, got a result set: ${fmt(r)}`);
    if (affected !== undefined && ctx.affected) {
        assert.equal(r.affected, affected, `affected_rows: expected ${affected}, got ${r.affected}`);
    }
}

/**
 * A result set whose rows equal `expected` (objects keyed by column, matchers allowed), as a
 * multiset unless opts.ordered. Every expected column must be present; opts.columns checks the
 * column list exactly.
 */
export function expectRows(r, ctx, expected, opts = {}) {
    assertOk(r);
    assert.ok(Array.isArray(r.rows), `expected a result set, got an OK packet: ${fmt(r)}`);
    if (opts.columns) {
        assert.deepEqual(r.columns.map((c) => String(c).toLowerCase()), opts.columns, 'column list');
    }
    const got = rowObjects(r);
    const msg = `rows: expected ${fmt(expected)}\n      got ${fmt(got)} (client ints: ${ctx.ints})`;
    assert.equal(got.length, expected.length, msg);
    const rowMatches = (g, e) => Object.entries(e).every(([k, v]) => k in g && valueMatches(g[k], v, ctx));
    if (opts.ordered) {
        got.forEach((g, i) => assert.ok(rowMatches(g, expected[i]), `row ${i} differs\n${msg}`));
    } else {
        const left = [...got];
        for (const e of expected) {
            const i = left.findIndex((g) => rowMatches(g, e));
            assert.ok(i >= 0, `no row matches ${fmt(e)}\n${msg}`);
            left.splice(i, 1);
        }
    }
}

/** An ERR packet with the given code (and a message matching re, if given). */
export function expectErr(r, ctx, code, re) {
    assert.ok(r, 'no result');
    assert.equal(r.ok, false, `expected ERR ${code}, got OK: ${fmt(r)}`);
    assert.equal(Number(r.code), code, `error code: expected ${code}, got ${r.code} (${r.message})`);
    if (re) assert.match(String(r.message), re, 'error message');
    if (ctx.sqlstate) assert.match(String(r.sqlstate ?? ''), /^[0-9A-Z]{5}$/, `SQLSTATE missing: ${fmt(r)}`);
}

/** Any ERR packet. */
export function expectAnyErr(r, ctx) {
    assert.ok(r, 'no result');
    assert.equal(r.ok, false, `expected an ERR packet, got OK: ${fmt(r)}`);
    assert.ok(Number(r.code) > 0, `error code missing: ${fmt(r)}`);
    if (ctx.sqlstate) assert.match(String(r.sqlstate ?? ''), /^[0-9A-Z]{5}$/, `SQLSTATE missing: ${fmt(r)}`);
}

/**
 * The full client scenario. `n` makes ids and names unique so that one server can run it several
 * times (mysql2 query and execute modes). Every step leaves the tables as it found them.
 */
export function scenario(n = 1) {
    const id1 = 100 * n + 1;
    const id2 = 100 * n + 2;
    const id3 = 100 * n + 3;
    const pipe = `web_chat_${n}`;
    const pipe2 = `no_history_${n}`;
    const trust = `trust_pipe_${n}`;
    const tokA = `tokA.${n}.eyJ1c2VyX2lkIjoxfQ`;
    const tokB = `tokB.${n}.sig-_=`;
    const data = `data ${n}: "quoted" 'single' \\ backslash, ünïcödé ✓`;
    const msgJson = '{"a":1,"s":"x y"}';
    const s = [];
    const step = (name, sql, check, params) => s.push({ name, sql, params, check });
    const q = (str) => `'${str.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

    // probes drivers and GUIs send
    step('probe: SELECT @@version_comment LIMIT 1', 'SELECT @@version_comment LIMIT 1', (r, ctx) => {
        assertOk(r);
        assert.equal(r.rows?.length, 1, 'one row');
    });
    step('probe: SET NAMES utf8mb4', 'SET NAMES utf8mb4', (r, ctx) => expectOkPacket(r, ctx));
    step('probe: SELECT DATABASE()', 'SELECT DATABASE()', (r) => {
        assertOk(r);
        assert.equal(r.rows?.length, 1, 'one row');
    });
    step('probe: SHOW DATABASES', 'SHOW DATABASES', (r) => {
        assertOk(r);
        assert.ok(r.rows.some((row) => row[0] === 'CometQL_v1'), `CometQL_v1 in ${JSON.stringify(r.rows)}`);
    });
    step('probe: SELECT @@max_allowed_packet', 'SELECT @@max_allowed_packet', (r) => {
        assertOk(r);
        assert.equal(r.rows?.length, 1, 'one row');
        assert.ok(Number(r.rows[0][0]) > 0, `max_allowed_packet > 0: ${JSON.stringify(r.rows)}`);
    });
    step('SHOW TABLES lists every table', 'SHOW TABLES', (r) => {
        assertOk(r);
        const names = r.rows.map((row) => row[0]);
        for (const t of ALL_TABLES) assert.ok(names.includes(t), `${t} missing from ${JSON.stringify(names)}`);
    });

    // users_auth
    step('users_auth: INSERT', `INSERT INTO users_auth (id, hash) VALUES (${id1}, 'abc123')`, (r, ctx) => expectOkPacket(r, ctx, 1));
    step('users_auth: INSERT overwrites', `INSERT INTO users_auth (id, hash) VALUES (${id1}, 'xyz-789_=+/')`, (r, ctx) => expectOkPacket(r, ctx, 1));
    step('users_auth: INSERT with parameters', 'INSERT INTO users_auth (id, hash) VALUES (?, ?)', (r, ctx) => expectOkPacket(r, ctx, 1), [id2, 'h2']);
    step('users_auth: SELECT WHERE id IN', `SELECT * FROM users_auth WHERE id IN (${id1}, ${id2}, ${id3})`, (r, ctx) =>
        expectRows(r, ctx, [{ id: id1, hash: 'xyz-789_=+/' }, { id: id2, hash: 'h2' }], { columns: ['id', 'hash'] }));
    step('users_auth: SELECT with parameter', 'SELECT hash FROM users_auth WHERE id = ?', (r, ctx) =>
        expectRows(r, ctx, [{ hash: 'h2' }], { columns: ['hash'] }), [id2]);
    step('users_auth: names are case-insensitive', `select ID, Hash from USERS_AUTH where Id in (${id2})`, (r, ctx) =>
        expectRows(r, ctx, [{ id: id2, hash: 'h2' }]));
    step('users_auth: DELETE', `DELETE FROM users_auth WHERE id = ${id1}`, (r, ctx) => expectOkPacket(r, ctx, 1));
    step('users_auth: SELECT after DELETE', `SELECT * FROM users_auth WHERE id IN (${id1}, ${id2})`, (r, ctx) =>
        expectRows(r, ctx, [{ id: id2, hash: 'h2' }]));
    step('users_auth: DELETE the other', `DELETE FROM users_auth WHERE id = ${id2}`, (r, ctx) => expectOkPacket(r, ctx, 1));
    step('users_auth: DELETE of a missing id affects 0', `DELETE FROM users_auth WHERE id = ${id2}`, (r, ctx) => expectOkPacket(r, ctx, 0));
    step('users_auth: SELECT empty', `SELECT * FROM users_auth WHERE id IN (${id1}, ${id2})`, (r, ctx) => expectRows(r, ctx, []));
    step('users_auth: bad hash characters -> ERR 12', `INSERT INTO users_auth (id, hash) VALUES (${id1}, 'bad hash!')`, (r, ctx) => expectErr(r, ctx, 12));
    step('users_auth: hash over 32 chars -> ERR 11', `INSERT INTO users_auth (id, hash) VALUES (${id1}, '${'a'.repeat(33)}')`, (r, ctx) => expectErr(r, ctx, 11));
    step('users_auth: 32-char hash accepted', `INSERT INTO users_auth (id, hash) VALUES (${id3}, '${'b'.repeat(32)}')`, (r, ctx) => expectOkPacket(r, ctx, 1));
    step('users_auth: DELETE 32-char hash', `DELETE FROM users_auth WHERE id = ${id3}`, (r, ctx) => expectOkPacket(r, ctx, 1));

    // users_data
    step('users_data: INSERT', `INSERT INTO users_data (id, data) VALUES (${id1}, ${q(data)})`, (r, ctx) => expectOkPacket(r, ctx, 1));
    step('users_data: SELECT round-trips text', `SELECT * FROM users_data WHERE id = ${id1}`, (r, ctx) =>
        expectRows(r, ctx, [{ id: id1, data }], { columns: ['id', 'data'] }));
    step('users_data: INSERT overwrites (parameters)', 'INSERT INTO users_data (id, data) VALUES (?, ?)', (r, ctx) => expectOkPacket(r, ctx, 1), [id1, 'second']);
    step('users_data: SELECT sees the overwrite', `SELECT data FROM users_data WHERE id IN (${id1})`, (r, ctx) => expectRows(r, ctx, [{ data: 'second' }]));
    step('users_data: DELETE', `DELETE FROM users_data WHERE id = ${id1}`, (r, ctx) => expectOkPacket(r, ctx, 1));
    step('users_data: SELECT empty', `SELECT * FROM users_data WHERE id = ${id1}`, (r, ctx) => expectRows(r, ctx, []));

    // revoked_tokens
    step('revoked_tokens: INSERT A', `INSERT INTO revoked_tokens (token) VALUES ('${tokA}')`, (r, ctx) => expectOkPacket(r, ctx, 1));
    step('revoked_tokens: INSERT B', 'INSERT INTO revoked_tokens (token) VALUES (?)', (r, ctx) => expectOkPacket(r, ctx, 1), [tokB]);
    step('revoked_tokens: SELECT * lists them', 'SELECT * FROM revoked_tokens', (r, ctx) => {
        assertOk(r);
        const toks = rowObjects(r).map((o) => o.token);
        assert.ok(toks.includes(tokA) && toks.includes(tokB), `both tokens in ${JSON.stringify(toks)}`);
    });
    step('revoked_tokens: DELETE A', `DELETE FROM revoked_tokens WHERE token = '${tokA}'`, (r, ctx) => expectOkPacket(r, ctx, 1));
    step('revoked_tokens: SELECT * after DELETE', 'SELECT * FROM revoked_tokens', (r, ctx) => {
        assertOk(r);
        const toks = rowObjects(r).map((o) => o.token);
        assert.ok(!toks.includes(tokA) && toks.includes(tokB), `only B in ${JSON.stringify(toks)}`);
    });
    step('revoked_tokens: DELETE B', `DELETE FROM revoked_tokens WHERE token = '${tokB}'`, (r, ctx) => expectOkPacket(r, ctx, 1));

    // users_messages (user offline -> queued)
    step('users_messages: INSERT queues for an offline user', `INSERT INTO users_messages (id, event, message) VALUES (${id1}, 'ev', 'hello')`, (r, ctx) => expectOkPacket(r, ctx));
    step('users_messages: INSERT second (parameters)', 'INSERT INTO users_messages (id, event, message) VALUES (?, ?, ?)', (r, ctx) => expectOkPacket(r, ctx), [id1, 'ev2', msgJson]);
    step('users_messages: SELECT lists the queue in order', `SELECT * FROM users_messages WHERE id = ${id1}`, (r, ctx) =>
        expectRows(r, ctx, [
            { id: id1, index: anyInt(ctx, 1), event: 'ev', message: 'hello' },
            { id: id1, index: anyInt(ctx, 1), event: 'ev2', message: msgJson },
        ], { ordered: true, columns: ['id', 'index', 'event', 'message'] }));
    step('users_messages: DELETE clears the queue', `DELETE FROM users_messages WHERE id = ${id1}`, (r, ctx) => expectOkPacket(r, ctx, 2));
    step('users_messages: SELECT empty', `SELECT * FROM users_messages WHERE id = ${id1}`, (r, ctx) => expectRows(r, ctx, []));
    step('users_messages: bad event name -> ERR 12', `INSERT INTO users_messages (id, event, message) VALUES (${id1}, 'bad event!', 'x')`, (r, ctx) => expectErr(r, ctx, 12));

    // pipes_settings + pipes_messages
    step('pipes_settings: INSERT length 5', `INSERT INTO pipes_settings (name, length) VALUES ('${pipe}', 5)`, (r, ctx) => expectOkPacket(r, ctx, 1));
    step('pipes_settings: SELECT', `SELECT * FROM pipes_settings WHERE name = '${pipe}'`, (r, ctx) =>
        expectRows(r, ctx, [{ name: pipe, length: 5 }], { columns: ['name', 'length'] }));
    for (let i = 1; i <= 7; i++) {
        const params = i === 7 ? [pipe, 'ev', `m${i}`] : undefined;
        const sql = i === 7 ? 'INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)'
            : `INSERT INTO pipes_messages (name, event, message) VALUES ('${pipe}', 'ev', 'm${i}')`;
        step(`pipes_messages: INSERT m${i}`, sql, (r, ctx) => expectOkPacket(r, ctx), params);
    }
    step('pipes_messages: history keeps the newest 5, oldest first', `SELECT * FROM pipes_messages WHERE name = '${pipe}'`, (r, ctx) =>
        expectRows(r, ctx, [3, 4, 5, 6, 7].map((i) => ({
            id: anyInt(ctx, 1), time: anyInt(ctx, 1), name: pipe, index: anyInt(ctx), event: 'ev', message: `m${i}`, user_id: 0,
        })), { ordered: true, columns: ['id', 'time', 'name', 'index', 'event', 'message', 'user_id'] }));
    step('pipes_messages: JSON message', `INSERT INTO pipes_messages (name, event, message) VALUES ('${pipe}', 'ev', '${msgJson}')`, (r, ctx) => expectOkPacket(r, ctx));
    step('pipes_messages: JSON message round-trips', `SELECT message FROM pipes_messages WHERE name = '${pipe}'`, (r, ctx) =>
        expectRows(r, ctx, ['m4', 'm5', 'm6', 'm7', msgJson].map((message) => ({ message })), { ordered: true }));
    step('pipes_messages: DELETE history', `DELETE FROM pipes_messages WHERE name = '${pipe}'`, (r, ctx) => expectOkPacket(r, ctx, 5));
    step('pipes_messages: SELECT empty', `SELECT * FROM pipes_messages WHERE name = '${pipe}'`, (r, ctx) => expectRows(r, ctx, []));
    step('pipes_messages: no settings -> not stored', `INSERT INTO pipes_messages (name, event, message) VALUES ('${pipe2}', 'ev', 'x')`, (r, ctx) => expectOkPacket(r, ctx));
    step('pipes_messages: SELECT unstored pipe empty', `SELECT * FROM pipes_messages WHERE name = '${pipe2}'`, (r, ctx) => expectRows(r, ctx, []));
    step('pipes_messages: trust_ pipe stored without settings', `INSERT INTO pipes_messages (name, event, message) VALUES ('${trust}', 'ev', 't1')`, (r, ctx) => expectOkPacket(r, ctx));
    step('pipes_messages: SELECT trust_ pipe', `SELECT name, message FROM pipes_messages WHERE name = '${trust}'`, (r, ctx) =>
        expectRows(r, ctx, [{ name: trust, message: 't1' }]));
    step('pipes_messages: DELETE trust_ pipe', `DELETE FROM pipes_messages WHERE name = '${trust}'`, (r, ctx) => expectOkPacket(r, ctx, 1));
    step('pipes_messages: name too short -> ERR 17', "INSERT INTO pipes_messages (name, event, message) VALUES ('ab', 'ev', 'x')", (r, ctx) => expectErr(r, ctx, 17));
    step('pipes_messages: name too long -> ERR 11', `INSERT INTO pipes_messages (name, event, message) VALUES ('${'p'.repeat(65)}', 'ev', 'x')`, (r, ctx) => expectErr(r, ctx, 11));
    step('pipes_messages: 64-char name accepted', `INSERT INTO pipes_messages (name, event, message) VALUES ('${'p'.repeat(64)}', 'ev', 'x')`, (r, ctx) => expectOkPacket(r, ctx));
    step('pipes_messages: bad name characters -> ERR 12', "INSERT INTO pipes_messages (name, event, message) VALUES ('bad name!', 'ev', 'x')", (r, ctx) => expectErr(r, ctx, 12));
    step('pipes_messages: INSERT before the settings are dropped', `INSERT INTO pipes_messages (name, event, message) VALUES ('${pipe}', 'ev', 'again')`, (r, ctx) => expectOkPacket(r, ctx));
    step('pipes_settings: DELETE', `DELETE FROM pipes_settings WHERE name = '${pipe}'`, (r, ctx) => expectOkPacket(r, ctx, 1));
    step('pipes_settings: SELECT empty', `SELECT * FROM pipes_settings WHERE name = '${pipe}'`, (r, ctx) => expectRows(r, ctx, []));
    step('pipes_settings: DELETE dropped the history', `SELECT * FROM pipes_messages WHERE name = '${pipe}'`, (r, ctx) => expectRows(r, ctx, []));

    // read-only and not-implemented tables
    for (const [t, cols, vals] of [['users_time', '(id, time)', `(${id1}, 1)`], ['pipes', '(name, users)', `('${pipe}', 1)`],
        ['users_in_pipes', '(name, user_id)', `('${pipe}', ${id1})`]]) {
        step(`${t}: INSERT -> ERR 10 read only`, `INSERT INTO ${t} ${cols} VALUES ${vals}`, (r, ctx) =>
            expectErr(r, ctx, 10, new RegExp(`Table \`${t}\` is read only`)));
    }
    step('users_time: SELECT answers', `SELECT * FROM users_time WHERE id = ${id1}`, (r) => {
        assertOk(r);
        assert.ok(Array.isArray(r.rows), 'a result set');
    });
    step('pipes: SELECT -> users 0', `SELECT * FROM pipes WHERE name = '${pipe}'`, (r, ctx) =>
        expectRows(r, ctx, [{ name: pipe, users: 0 }], { columns: ['name', 'users'] }));
    step('users_in_pipes: SELECT answers', `SELECT * FROM users_in_pipes WHERE name = '${pipe}'`, (r, ctx) => expectRows(r, ctx, []));
    step('conference: SELECT -> no invitations', "SELECT * FROM conference WHERE name = 'room'", (r, ctx) => expectRows(r, ctx, []));
    step('conference_members: SELECT -> nobody in the call', "SELECT * FROM conference_members WHERE name = 'room'", (r, ctx) => expectRows(r, ctx, []));
    step('conference: INSERT without a media node -> ERR', "INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES ('room', 1, 2, '{}', 'video')",
        (r, ctx) => expectAnyErr(r, ctx));

    // errors
    step('unknown table -> ERR 15', 'SELECT * FROM no_such_table', (r, ctx) => expectErr(r, ctx, 15, /doesn't exist/));
    step('syntax error -> ERR 3', 'SELEKT * FROM users_auth', (r, ctx) => expectErr(r, ctx, 3));
    step('unknown column -> ERR 14', `SELECT nope FROM users_auth WHERE id = ${id1}`, (r, ctx) => expectErr(r, ctx, 14));
    step('OR in WHERE -> ERR 2', `SELECT * FROM users_auth WHERE id = ${id1} OR id = ${id2}`, (r, ctx) => expectErr(r, ctx, 2));
    step('connection still answers after errors', `SELECT * FROM users_auth WHERE id = ${id1}`, (r, ctx) => expectRows(r, ctx, []));
    return s;
}
