// The CometQL dialect through node mysql2/promise (`query`, and `execute` where it matters):
// MySQL string unescaping, case-insensitive names, typed results, WHERE (=, IN, AND) and the
// operators it refuses, LIMIT, error codes with SQLSTATE, UPDATE/DELETE/multi-row INSERT, the
// probes MySQL clients send, and tenant isolation of pipe history and settings.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { ALL_TABLES } from './scenario.mjs';

const srv = await startServer();
after(() => srv.stop());

async function withConn(o, fn) {
    const c = await mysql2Connect(srv, o);
    c.on('error', () => { /* surfaces through the failing statement */ });
    try {
        return await fn(c);
    } finally {
        await c.end().catch(() => c.destroy());
    }
}

/** Rows as objects (mysql2 default). */
const rowsOf = async (c, sql, params) => (await c.query(sql, params))[0];
const execRows = async (c, sql, params) => (await c.execute(sql, params))[0];

/** The connection still answers SELECT 1 (with an integer 1). */
async function stillWorks(c, after) {
    const [rows] = await c.query({ sql: 'SELECT 1', rowsAsArray: true });
    assert.deepEqual(rows, [[1]], `SELECT 1 after ${after}`);
}

/**
 * sql must fail with ERR errno (and sqlState / a message matching re, when given); then the same
 * connection must still work.
 */
async function expectErr(c, sql, errno, { sqlState, re, mode = 'query', params } = {}) {
    let err = null;
    try {
        const [res] = await c[mode](sql, params ?? []);
        assert.fail(`expected ERR ${errno} for ${sql}, got OK: ${JSON.stringify(res).slice(0, 300)}`);
    } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        err = e;
    }
    assert.ok(err.errno !== undefined && err.sqlMessage !== undefined,
        `expected a server ERR for ${sql}, got a client error: ${err.stack}`);
    if (errno !== null) {
        assert.equal(err.errno, errno, `errno for ${sql}: got ${err.errno} (${err.sqlState}) ${err.sqlMessage}`);
    }
    assert.match(String(err.sqlState ?? ''), /^[0-9A-Z]{5}$/, `SQLSTATE for ${sql}: ${err.sqlState}`);
    if (sqlState) assert.equal(err.sqlState, sqlState, `SQLSTATE for ${sql} (${err.sqlMessage})`);
    if (re) assert.match(err.sqlMessage, re, `message for ${sql}`);
    await stillWorks(c, `the error of ${sql}`);
    return err;
}

// ---- string literals -------------------------------------------------------------------------

// [SQL literal as sent, the exact value expected back]
const LITERALS = [
    ["'it''s'", "it's"],
    ["'a\\nb'", 'a\nb'],
    ['"dq \\" x"', 'dq " x'],
    ['"dq "" doubled"', 'dq " doubled'],
    ["'single \\' escaped'", "single ' escaped"],
    ["'back\\\\slash'", 'back\\slash'],
    ["'tab\\there\\r\\n'", 'tab\there\r\n'],
    ["'ctrl-z \\Z nul \\0 end'", 'ctrl-z \x1a nul \0 end'],
    ["'percent \\% under \\_'", 'percent \\% under \\_'],
    ["'unknown \\q escape'", 'unknown q escape'],
    ["'emoji 😀🎉 кириллица Привет ünï ✓'", 'emoji 😀🎉 кириллица Привет ünï ✓'],
    ["'adjacent' ' literals'", 'adjacent literals'],
    ["''", ''],
];

test('string literals are unescaped by MySQL rules and round-trip byte-exact (users_data)', srv.wrap(async (t) => {
    await withConn({}, async (c) => {
        for (const [i, [lit, want]] of LITERALS.entries()) {
            const id = 500 + i;
            await t.test(`literal ${lit}`, async () => {
                const [res] = await c.query(`INSERT INTO users_data (id, data) VALUES (${id}, ${lit})`);
                assert.equal(res.affectedRows, 1);
                const rows = await rowsOf(c, `SELECT data FROM users_data WHERE id = ${id}`);
                assert.equal(rows.length, 1, JSON.stringify(rows));
                assert.deepEqual(Buffer.from(rows[0].data, 'utf8'), Buffer.from(want, 'utf8'),
                    `${lit}: got ${JSON.stringify(rows[0].data)}, expected ${JSON.stringify(want)}`);
                // the same value through the binary protocol
                const brows = await execRows(c, 'SELECT data FROM users_data WHERE id = ?', [id]);
                assert.deepEqual(brows, [{ data: want }], 'execute (binary rows)');
            });
        }
    });
}));

test('parameters (execute) are taken verbatim, not unescaped', srv.wrap(async () => {
    await withConn({}, async (c) => {
        const vals = ['a\\nb', "it''s", 'quote \' and " and \\', 'Привет 😀', ''];
        for (const [i, v] of vals.entries()) {
            const [res] = await c.execute('INSERT INTO users_data (id, data) VALUES (?, ?)', [600 + i, v]);
            assert.equal(res.affectedRows, 1);
            const rows = await execRows(c, 'SELECT data FROM users_data WHERE id = ?', [600 + i]);
            assert.deepEqual(rows, [{ data: v }], `param ${JSON.stringify(v)}`);
        }
    });
}));

test('pipes_messages: an empty event is accepted; message text round-trips', srv.wrap(async () => {
    await withConn({}, async (c) => {
        await c.query("INSERT INTO pipes_settings (name, length) VALUES ('lit_pipe', 10)");
        const [r1] = await c.query("INSERT INTO pipes_messages (name, event, message) VALUES ('lit_pipe', '', 'it''s \\\"x\\\" 😀\\n')");
        assert.equal(r1.affectedRows, 1);
        const [r2] = await c.query("INSERT INTO pipes_messages (name, event, message) VALUES ('lit_pipe', 'ev', '')");
        assert.equal(r2.affectedRows, 1);
        const rows = await rowsOf(c, "SELECT event, message FROM pipes_messages WHERE name = 'lit_pipe'");
        assert.deepEqual(rows, [{ event: '', message: 'it\'s "x" 😀\n' }, { event: 'ev', message: '' }]);
        await c.query("DELETE FROM pipes_settings WHERE name = 'lit_pipe'");
    });
}));

// ---- names -------------------------------------------------------------------------------------

test('table and column names are case-insensitive; backquotes, double-quoted column lists, trailing ;', srv.wrap(async () => {
    await withConn({}, async (c) => {
        await c.query("INSERT INTO users_auth (id, hash) VALUES (1, 'h1')");
        assert.deepEqual(await rowsOf(c, 'select * FROM USERS_AUTH where ID = 1'), [{ id: 1, hash: 'h1' }]);
        assert.deepEqual(await rowsOf(c, 'SELECT Id, HASH FROM Users_Auth WHERE iD = 1'), [{ id: 1, hash: 'h1' }],
            'column names in the result are the table\'s');
        assert.deepEqual(await rowsOf(c, 'SELECT `id`, `hash` FROM `users_auth` WHERE `id` = 1'), [{ id: 1, hash: 'h1' }]);
        const [ins] = await c.query('INSERT INTO pipes_settings ("name", "length") VALUES (\'p1x\', 3)');
        assert.equal(ins.affectedRows, 1);
        assert.deepEqual(await rowsOf(c, "SELECT * FROM pipes_settings WHERE name = 'p1x';"), [{ name: 'p1x', length: 3 }]);
        const [ins2] = await c.query('INSERT INTO `PIPES_SETTINGS` (`NAME`, `Length`) VALUES (\'p2x\', 4);');
        assert.equal(ins2.affectedRows, 1);
        assert.deepEqual(await rowsOf(c, "SELECT length FROM pipes_settings WHERE NAME IN ('p1x', 'p2x')"),
            [{ length: 3 }, { length: 4 }]);
        assert.deepEqual(await execRows(c, 'SELECT * FROM Pipes_Settings WHERE Name = ?;', ['p2x']), [{ name: 'p2x', length: 4 }]);
        await c.query("DELETE FROM pipes_settings WHERE name IN ('p1x', 'p2x');");
    });
}));

// ---- typed results -------------------------------------------------------------------------------

test('typed results: integers are numbers (query and execute), NULL where there is no value', srv.wrap(async () => {
    await withConn({}, async (c) => {
        await c.query("INSERT INTO users_auth (id, hash) VALUES (2, 'h2')");
        await c.query("INSERT INTO pipes_settings (name, length) VALUES ('typed_pipe', 7)");
        for (const mode of ['query', 'execute']) {
            const [auth] = await c[mode]('SELECT id, hash FROM users_auth WHERE id = 2');
            assert.deepEqual(auth, [{ id: 2, hash: 'h2' }], `${mode}: users_auth`);
            assert.equal(typeof auth[0].id, 'number', `${mode}: id is a number`);
            const [ps] = await c[mode]("SELECT * FROM pipes_settings WHERE name = 'typed_pipe'");
            assert.deepEqual(ps, [{ name: 'typed_pipe', length: 7 }], `${mode}: pipes_settings`);
            const [ut] = await c[mode]('SELECT * FROM users_time WHERE id = 2');
            assert.equal(ut.length, 1, `${mode}: users_time row`);
            assert.equal(typeof ut[0].time, 'number', `${mode}: users_time.time is a number: ${JSON.stringify(ut)}`);
            const [one] = await c[mode]({ sql: 'SELECT 1', rowsAsArray: true });
            assert.deepEqual(one, [[1]], `${mode}: SELECT 1`);
        }
        const [nul] = await c.query({ sql: 'SELECT @@unknown_variable_xyz', rowsAsArray: true });
        assert.deepEqual(nul, [[null]], 'unknown variable reads as NULL');
        const [mp] = await c.query({ sql: 'SELECT @@max_allowed_packet', rowsAsArray: true });
        assert.equal(typeof mp[0][0], 'number', `@@max_allowed_packet is a number: ${JSON.stringify(mp)}`);
        assert.ok(mp[0][0] >= 4096);
        await c.query("DELETE FROM pipes_settings WHERE name = 'typed_pipe'");
    });
}));

test('SELECT DATABASE() is NULL before USE CometQL_v1 and CometQL_v1 after', srv.wrap(async () => {
    await withConn({}, async (c) => {
        assert.deepEqual((await c.query({ sql: 'SELECT DATABASE()', rowsAsArray: true }))[0], [[null]]);
        await c.query('USE CometQL_v1');
        assert.deepEqual((await c.query({ sql: 'SELECT DATABASE()', rowsAsArray: true }))[0], [['CometQL_v1']]);
    });
    await withConn({ db: 'CometQL_v1' }, async (c) => {
        assert.deepEqual((await c.query({ sql: 'SELECT DATABASE()', rowsAsArray: true }))[0], [['CometQL_v1']],
            'database given at connect');
    });
}));

// ---- WHERE -------------------------------------------------------------------------------------

test('WHERE: =, IN and AND across columns on several tables', srv.wrap(async () => {
    await withConn({}, async (c) => {
        await c.query("INSERT INTO users_auth (id, hash) VALUES (1, 'h1'), (2, 'h2'), (3, 'h3')");
        assert.deepEqual(await rowsOf(c, "SELECT * FROM users_auth WHERE id IN (1,2,3) AND hash = 'h2'"), [{ id: 2, hash: 'h2' }]);
        assert.deepEqual(await rowsOf(c, "SELECT * FROM users_auth WHERE hash = 'h3' AND id IN (1, 2, 3)"), [{ id: 3, hash: 'h3' }]);
        assert.deepEqual(await rowsOf(c, "SELECT * FROM users_auth WHERE id IN (1,2,3) AND hash IN ('h1', 'h3', 'nope')"),
            [{ id: 1, hash: 'h1' }, { id: 3, hash: 'h3' }]);
        assert.deepEqual(await rowsOf(c, "SELECT * FROM users_auth WHERE id = 1 AND hash = 'h2'"), []);
        assert.deepEqual(await execRows(c, 'SELECT * FROM users_auth WHERE id IN (?, ?, ?) AND hash = ?', [1, 2, 3, 'h2']),
            [{ id: 2, hash: 'h2' }], 'execute with parameters');

        await c.query("INSERT INTO users_data (id, data) VALUES (1, 'd1'), (2, 'd2')");
        assert.deepEqual(await rowsOf(c, "SELECT id FROM users_data WHERE id IN (1, 2) AND data = 'd1'"), [{ id: 1 }]);

        await c.query("INSERT INTO pipes_settings (name, length) VALUES ('w_a', 5), ('w_b', 6), ('w_c', 5)");
        assert.deepEqual(await rowsOf(c, "SELECT name FROM pipes_settings WHERE name IN ('w_a', 'w_b', 'w_c') AND length = 5"),
            [{ name: 'w_a' }, { name: 'w_c' }]);

        await c.query("INSERT INTO pipes_messages (name, event, message) VALUES ('w_a', 'e1', 'one'), ('w_a', 'e2', 'two'), ('w_a', 'e1', 'three')");
        assert.deepEqual(await rowsOf(c, "SELECT message FROM pipes_messages WHERE name = 'w_a' AND event = 'e1'"),
            [{ message: 'one' }, { message: 'three' }]);
        assert.deepEqual(await rowsOf(c, "SELECT message FROM pipes_messages WHERE name = 'w_a' AND event = 'e2' AND message = 'two'"),
            [{ message: 'two' }]);

        await c.query("INSERT INTO users_messages (id, event, message) VALUES (77, 'ea', 'm1'), (77, 'eb', 'm2')");
        assert.deepEqual(await rowsOf(c, "SELECT event, message FROM users_messages WHERE id = 77 AND event = 'eb'"),
            [{ event: 'eb', message: 'm2' }]);

        await c.query("INSERT INTO revoked_tokens (token) VALUES ('tok_w1'), ('tok_w2')");
        assert.deepEqual(await rowsOf(c, "SELECT token FROM revoked_tokens WHERE token IN ('tok_w2', 'tok_none')"), [{ token: 'tok_w2' }]);

        await c.query("DELETE FROM pipes_settings WHERE name IN ('w_a', 'w_b', 'w_c')");
        await c.query('DELETE FROM users_messages WHERE id = 77');
        await c.query("DELETE FROM revoked_tokens WHERE token IN ('tok_w1', 'tok_w2')");
        await c.query('DELETE FROM users_data WHERE id IN (1, 2)');
    });
}));

test('WHERE: other operators, OR and ORDER BY are ERR 2 naming what is not supported', srv.wrap(async () => {
    await withConn({}, async (c) => {
        for (const [cond, op] of [['id > 1', '>'], ['id < 5', '<'], ["hash LIKE 'h%'", 'LIKE'], ['id <> 1', '<>'],
            ['hash IS NULL', 'IS NULL']]) {
            const e = await expectErr(c, `SELECT * FROM users_auth WHERE ${cond}`, 2);
            assert.ok(e.sqlMessage.includes(op), `the message names ${op}: ${e.sqlMessage}`);
        }
        await expectErr(c, "SELECT * FROM pipes_messages WHERE name = 'w_a' AND id > 3", 2, { re: />/ });
        await expectErr(c, 'SELECT * FROM users_auth WHERE id = 1 OR id = 2', 2, { re: /OR/i });
        await expectErr(c, 'SELECT * FROM users_auth WHERE id IN (1, 2) ORDER BY id', 2, { re: /ORDER BY/i });
        await expectErr(c, 'SELECT * FROM users_auth WHERE id > ?', 2, { mode: 'execute', params: [1], re: />/ });
    });
}));

// ---- LIMIT -------------------------------------------------------------------------------------

test('LIMIT n, LIMIT o, n, LIMIT n OFFSET o and LIMIT 0 have MySQL\'s meaning', srv.wrap(async () => {
    await withConn({}, async (c) => {
        await c.query("INSERT INTO pipes_settings (name, length) VALUES ('limit_pipe', 10)");
        for (let i = 1; i <= 6; i++) {
            await c.query(`INSERT INTO pipes_messages (name, event, message) VALUES ('limit_pipe', 'ev', 'm${i}')`);
        }
        const msgs = async (tail) => (await rowsOf(c, `SELECT message FROM pipes_messages WHERE name = 'limit_pipe'${tail}`))
            .map((r) => r.message);
        assert.deepEqual(await msgs(''), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
        assert.deepEqual(await msgs(' LIMIT 2'), ['m1', 'm2']);
        assert.deepEqual(await msgs(' LIMIT 2, 3'), ['m3', 'm4', 'm5']);
        assert.deepEqual(await msgs(' LIMIT 3 OFFSET 4'), ['m5', 'm6']);
        assert.deepEqual(await msgs(' LIMIT 0'), []);
        assert.deepEqual(await msgs(' LIMIT 10, 5'), []);
        assert.deepEqual(await msgs(' LIMIT 100'), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
        const [idx] = await c.query("SELECT `index`, message FROM pipes_messages WHERE name = 'limit_pipe' LIMIT 2, 1");
        assert.equal(idx.length, 1);
        assert.equal(idx[0].message, 'm3');
        await c.query("DELETE FROM pipes_settings WHERE name = 'limit_pipe'");
    });
}));

// ---- errors ------------------------------------------------------------------------------------

test('errors carry CppComet codes and SQLSTATE; the connection keeps working after each', srv.wrap(async () => {
    await withConn({}, async (c) => {
        await expectErr(c, 'SELECT * FROM no_such_table', 15, { sqlState: '42S02', re: /no_such_table/ });
        await expectErr(c, "INSERT INTO no_such_table (id) VALUES (1)", 15, { sqlState: '42S02' });
        await expectErr(c, 'SELECT nope FROM users_auth WHERE id = 1', 14, { sqlState: '42S22', re: /nope/ });
        await expectErr(c, 'SELECT * FROM users_auth WHERE nope = 1', 14, { sqlState: '42S22', re: /nope/ });
        await expectErr(c, 'SELECT nope FROM users_auth WHERE id = ?', 14, { sqlState: '42S22', mode: 'execute', params: [1] });
        await expectErr(c, "INSERT INTO users_auth (id, nope) VALUES (1, 'x')", 14, { sqlState: '42S22' });
        await expectErr(c, 'SELEKT * FROM users_auth', 3, { sqlState: '42000' });
        await expectErr(c, 'SELECT * FROM users_auth WHERE', 3, { sqlState: '42000' });
        await expectErr(c, "INSERT INTO users_auth (id, hash) VALUES (1, 'x'", 3, { sqlState: '42000' });
        // wrong values
        await expectErr(c, "INSERT INTO users_auth (id, hash) VALUES (1, 'has space')", 12);
        await expectErr(c, `INSERT INTO users_auth (id, hash) VALUES (1, '${'h'.repeat(33)}')`, 11);
        const ok32 = await c.query(`INSERT INTO users_auth (id, hash) VALUES (31, '${'h'.repeat(32)}')`);
        assert.equal(ok32[0].affectedRows, 1, '32-character hash accepted');
        await expectErr(c, "INSERT INTO pipes_messages (name, event, message) VALUES ('ab', 'ev', 'x')", 17);
        await expectErr(c, `INSERT INTO pipes_messages (name, event, message) VALUES ('${'p'.repeat(65)}', 'ev', 'x')`, 11);
        await expectErr(c, "INSERT INTO pipes_messages (name, event, message) VALUES ('bad name!', 'ev', 'x')", 12);
        await expectErr(c, "INSERT INTO pipes_settings (name, length) VALUES ('ab', 5)", 17);
        await expectErr(c, `INSERT INTO pipes_settings (name, length) VALUES ('${'p'.repeat(65)}', 5)`, 11);
        await expectErr(c, "INSERT INTO pipes_settings (name, length) VALUES ('bad/name', 5)", 12);
        // read-only tables
        await expectErr(c, 'INSERT INTO users_time (id, time) VALUES (1, 1)', 10);
        await expectErr(c, "INSERT INTO pipes (name, users) VALUES ('some_pipe', 1)", 10);
        await expectErr(c, "INSERT INTO users_in_pipes (name, user_id) VALUES ('some_pipe', 1)", 10);
        // the Video API tables (this server has no media node: invitations fail with a reason)
        const tables = (await rowsOf(c, 'SHOW TABLES')).map((r) => Object.values(r)[0]);
        for (const t of ALL_TABLES) assert.ok(tables.includes(t), `SHOW TABLES lists ${t}: ${JSON.stringify(tables)}`);
        assert.deepEqual(await rowsOf(c, 'SELECT * FROM conference'), []);
        assert.deepEqual(await rowsOf(c, "SELECT * FROM conference_members WHERE name = 'room'"), []);
        await expectErr(c, "INSERT INTO conference (name, user_id, caller_id) VALUES ('room', 1, 2)", 12); // message missing
        await expectErr(c, "INSERT INTO conference (name, user_id, message) VALUES ('bad name', 1, '')", 12);
        await expectErr(c, "INSERT INTO conference (name, user_id, message) VALUES ('room', 0, '')", 12);
        await expectErr(c, "INSERT INTO conference (name, user_id, message, profile) VALUES ('room', 1, '', 'a*b')", 12);
        await expectErr(c, `INSERT INTO conference (name, user_id, message) VALUES ('${'r'.repeat(33)}', 1, '')`, 12);
        await expectErr(c, "INSERT INTO conference (name, user_id, message) VALUES ('room', 1, '{}')", null); // no media node
        await expectErr(c, "DELETE FROM conference_members WHERE name = 'room'", 10);
        await expectErr(c, "UPDATE conference_members SET talking = 1 WHERE name = 'room'", null);
        await c.query('DELETE FROM users_auth WHERE id = 31');
    });
}));

// ---- UPDATE, DELETE, multi-row INSERT ------------------------------------------------------------

test('UPDATE: affectedRows and the new value; read-only tables ERR 10; the key column ERR 12', srv.wrap(async () => {
    await withConn({}, async (c) => {
        await c.query("INSERT INTO users_auth (id, hash) VALUES (1, 'h1')");
        const [u] = await c.query("UPDATE users_auth SET hash = 'n1' WHERE id = 1");
        assert.equal(u.affectedRows, 1);
        assert.deepEqual(await rowsOf(c, 'SELECT hash FROM users_auth WHERE id = 1'), [{ hash: 'n1' }]);
        const [u0] = await c.query("UPDATE users_auth SET hash = 'n1' WHERE id = 424242");
        assert.equal(u0.affectedRows, 0, 'no row matched');
        assert.deepEqual(await rowsOf(c, 'SELECT * FROM users_auth WHERE id = 424242'), [], 'UPDATE does not insert');
        const [ue] = await c.execute('UPDATE users_auth SET hash = ? WHERE id = ?', ['n2', 1]);
        assert.equal(ue.affectedRows, 1);
        assert.deepEqual(await rowsOf(c, 'SELECT hash FROM users_auth WHERE id = 1'), [{ hash: 'n2' }]);

        await c.query("INSERT INTO users_data (id, data) VALUES (41, 'old')");
        const [ud] = await c.query("UPDATE users_data SET data = 'new ''value''' WHERE id = 41");
        assert.equal(ud.affectedRows, 1);
        assert.deepEqual(await rowsOf(c, 'SELECT data FROM users_data WHERE id = 41'), [{ data: "new 'value'" }]);

        await c.query("INSERT INTO pipes_settings (name, length) VALUES ('upd_pipe', 3)");
        const [up] = await c.query("UPDATE pipes_settings SET length = 8 WHERE name = 'upd_pipe'");
        assert.equal(up.affectedRows, 1);
        assert.deepEqual(await rowsOf(c, "SELECT length FROM pipes_settings WHERE name = 'upd_pipe'"), [{ length: 8 }]);

        await expectErr(c, 'UPDATE users_time SET time = 5 WHERE id = 1', 10);
        await expectErr(c, "UPDATE pipes SET users = 5 WHERE name = 'upd_pipe'", 10);
        await expectErr(c, "UPDATE revoked_tokens SET token = 'x' WHERE token = 'y'", 10);
        await expectErr(c, "UPDATE pipes_messages SET message = 'x' WHERE name = 'upd_pipe'", 10);
        await expectErr(c, "UPDATE users_messages SET message = 'x' WHERE id = 1", 10);
        await expectErr(c, 'UPDATE users_auth SET id = 5 WHERE id = 1', 12);
        await expectErr(c, "UPDATE pipes_settings SET name = 'other' WHERE name = 'upd_pipe'", 12);
        await expectErr(c, "UPDATE users_auth SET hash = 'bad hash' WHERE id = 1", 12);
        assert.deepEqual(await rowsOf(c, 'SELECT hash FROM users_auth WHERE id = 1'), [{ hash: 'n2' }], 'failed UPDATEs changed nothing');

        await c.query("DELETE FROM pipes_settings WHERE name = 'upd_pipe'");
        await c.query('DELETE FROM users_data WHERE id = 41');
    });
}));

test('DELETE reports the rows it removed; DELETE without WHERE is ERR 13', srv.wrap(async () => {
    await withConn({}, async (c) => {
        await c.query("INSERT INTO users_auth (id, hash) VALUES (51, 'a'), (52, 'b'), (53, 'c')");
        const [d0] = await c.query('DELETE FROM users_auth WHERE id = 424242');
        assert.equal(d0.affectedRows, 0, 'nothing matched');
        const [d2] = await c.query('DELETE FROM users_auth WHERE id IN (51, 52, 424243)');
        assert.equal(d2.affectedRows, 2);
        const [d1] = await c.query("DELETE FROM users_auth WHERE id IN (52, 53) AND hash = 'c'");
        assert.equal(d1.affectedRows, 1);
        assert.deepEqual(await rowsOf(c, 'SELECT * FROM users_auth WHERE id IN (51, 52, 53)'), []);
        const [de] = await c.execute('DELETE FROM users_auth WHERE id = ?', [51]);
        assert.equal(de.affectedRows, 0);
        await expectErr(c, 'DELETE FROM users_auth', 13);
        await expectErr(c, "DELETE FROM users_auth WHERE hash = 'a'", 13);
        assert.ok((await rowsOf(c, 'SELECT * FROM users_auth WHERE id = 1')).length === 1, 'a refused DELETE removed nothing');
    });
}));

test('multi-row INSERT: affectedRows per row; a bad row in the middle writes no row of the statement', srv.wrap(async () => {
    await withConn({}, async (c) => {
        const [r] = await c.query("INSERT INTO users_auth (id, hash) VALUES (11,'a'),(12,'b')");
        assert.equal(r.affectedRows, 2);
        assert.deepEqual(await rowsOf(c, 'SELECT * FROM users_auth WHERE id IN (11, 12)'), [{ id: 11, hash: 'a' }, { id: 12, hash: 'b' }]);
        await expectErr(c, "INSERT INTO users_auth (id, hash) VALUES (21,'a'),(22,'bad hash'),(23,'c')", 12, { re: /row 2/ });
        assert.deepEqual(await rowsOf(c, 'SELECT * FROM users_auth WHERE id IN (21, 22, 23)'), [], 'no row of the failed INSERT');
        await expectErr(c, "INSERT INTO users_auth (id, hash) VALUES (11,'changed'),(24,'x'),(0,'zero')", 12);
        assert.deepEqual(await rowsOf(c, 'SELECT * FROM users_auth WHERE id IN (11, 24)'), [{ id: 11, hash: 'a' }],
            'the first row of the failed INSERT did not overwrite');
        await expectErr(c, "INSERT INTO pipes_settings (name, length) VALUES ('mr_one', 1), ('x', 2)", 17);
        assert.deepEqual(await rowsOf(c, "SELECT * FROM pipes_settings WHERE name = 'mr_one'"), []);
        await c.query('DELETE FROM users_auth WHERE id IN (11, 12)');
    });
}));

// ---- probes ------------------------------------------------------------------------------------

test('client probes: variables, SHOW ..., SET, transactions, CONNECTION_ID()', srv.wrap(async () => {
    await withConn({}, async (c) => {
        const arr = async (sql) => (await c.query({ sql, rowsAsArray: true }))[0];
        const vc = await arr('SELECT @@version_comment LIMIT 1');
        assert.equal(vc.length, 1);
        assert.equal(typeof vc[0][0], 'string');
        const mp = await arr('SELECT @@max_allowed_packet');
        assert.ok(Number.isInteger(mp[0][0]) && mp[0][0] > 0, JSON.stringify(mp));
        const lc = await rowsOf(c, "SHOW VARIABLES LIKE 'lower_case%'");
        assert.ok(lc.length >= 1, JSON.stringify(lc));
        assert.ok(lc.every((r) => r.Variable_name.startsWith('lower_case')), JSON.stringify(lc));
        assert.ok(lc.some((r) => r.Variable_name === 'lower_case_table_names'), JSON.stringify(lc));
        const dbs = await arr('SHOW DATABASES');
        assert.ok(dbs.some((r) => r[0] === 'CometQL_v1'), JSON.stringify(dbs));
        const cols = await rowsOf(c, 'SHOW COLUMNS FROM users_auth');
        assert.deepEqual(cols.map((r) => r.Field), ['id', 'hash']);
        const desc = await rowsOf(c, 'DESCRIBE pipes_messages');
        assert.deepEqual(desc.map((r) => r.Field), ['id', 'time', 'name', 'index', 'event', 'message', 'user_id']);
        const full = await arr('SHOW FULL TABLES');
        // root also sees its own table of tenant credentials (other logins do not)
        assert.ok(full.length === ALL_TABLES.length + 1 && full.every((r) => r.length === 2), JSON.stringify(full));
        assert.deepEqual(full.map((r) => r[0]).sort(), [...ALL_TABLES, 'tenants'].sort());
        const up = await rowsOf(c, "SHOW STATUS LIKE 'Uptime'");
        const upRow = up.find((r) => r.Variable_name === 'Uptime');
        assert.ok(upRow, JSON.stringify(up));
        assert.match(String(upRow.Value), /^\d+$/);
        const ct = await arr('SHOW CREATE TABLE users_auth');
        assert.equal(ct.length, 1);
        assert.equal(ct[0][0], 'users_auth');
        assert.match(ct[0][1], /CREATE TABLE `users_auth`/);
        assert.match(ct[0][1], /`hash`/);
        for (const sql of ['SET NAMES utf8mb4', 'SET autocommit=0', 'SET autocommit = 1', 'BEGIN', 'COMMIT',
            'START TRANSACTION', 'ROLLBACK', "SET SESSION sql_mode = 'STRICT_TRANS_TABLES'"]) {
            const [res] = await c.query(sql);
            assert.ok(!Array.isArray(res), `${sql}: an OK packet, got ${JSON.stringify(res)}`);
        }
        const cid = await arr('SELECT CONNECTION_ID()');
        assert.equal(cid[0][0], c.connection.connectionId, 'CONNECTION_ID() is the handshake connection id');
        await stillWorks(c, 'the probes');
    });
}));

// ---- tenants -----------------------------------------------------------------------------------

test('pipes_messages history and pipes_settings are isolated between root and user 42', srv.wrap(async () => {
    const msgs = async (c, name) => (await rowsOf(c, `SELECT message FROM pipes_messages WHERE name = '${name}'`)).map((r) => r.message);
    await withConn({}, async (root) => {
        await root.query("INSERT INTO pipes_settings (name, length) VALUES ('mt_pipe', 5)");
        await root.query("INSERT INTO pipes_messages (name, event, message) VALUES ('mt_pipe', 'ev', 'root 1'), ('mt_pipe', 'ev', 'root 2')");
        await root.query("INSERT INTO pipes_messages (name, event, message) VALUES ('trust_mt', 'ev', 'root trust')");
    });
    await withConn({ user: '42' }, async (t42) => {
        assert.deepEqual(await rowsOf(t42, "SELECT * FROM pipes_settings WHERE name = 'mt_pipe'"), [], 'settings of root leaked to 42');
        assert.deepEqual(await msgs(t42, 'mt_pipe'), [], 'history of root leaked to 42');
        assert.deepEqual(await msgs(t42, 'trust_mt'), [], 'trust_ history of root leaked to 42');
        // without settings in tenant 42, a publish keeps no history there
        await t42.query("INSERT INTO pipes_messages (name, event, message) VALUES ('mt_pipe', 'ev', 'unstored')");
        assert.deepEqual(await msgs(t42, 'mt_pipe'), []);
        await t42.query("INSERT INTO pipes_settings (name, length) VALUES ('mt_pipe', 2)");
        for (const m of ['42 a', '42 b', '42 c']) {
            await t42.query(`INSERT INTO pipes_messages (name, event, message) VALUES ('mt_pipe', 'ev', '${m}')`);
        }
        assert.deepEqual(await msgs(t42, 'mt_pipe'), ['42 b', '42 c'], 'tenant 42 keeps its own length (2)');
        assert.deepEqual(await rowsOf(t42, "SELECT * FROM pipes_settings WHERE name = 'mt_pipe'"), [{ name: 'mt_pipe', length: 2 }]);
    });
    await withConn({}, async (root) => {
        assert.deepEqual(await msgs(root, 'mt_pipe'), ['root 1', 'root 2'], 'root history unchanged by 42');
        assert.deepEqual(await rowsOf(root, "SELECT * FROM pipes_settings WHERE name = 'mt_pipe'"), [{ name: 'mt_pipe', length: 5 }]);
        const [d] = await root.query("DELETE FROM pipes_settings WHERE name = 'mt_pipe'");
        assert.equal(d.affectedRows, 1);
        assert.deepEqual(await msgs(root, 'mt_pipe'), []);
    });
    await withConn({ user: '42' }, async (t42) => {
        assert.deepEqual(await msgs(t42, 'mt_pipe'), ['42 b', '42 c'], "root's DELETE did not touch 42's history");
        assert.deepEqual(await rowsOf(t42, "SELECT length FROM pipes_settings WHERE name = 'mt_pipe'"), [{ length: 2 }]);
        const [d] = await t42.query("DELETE FROM pipes_messages WHERE name = 'mt_pipe'");
        assert.equal(d.affectedRows, 2);
    });
    await withConn({ db: 'db_42' }, async (c) => {
        assert.deepEqual(await rowsOf(c, "SELECT length FROM pipes_settings WHERE name = 'mt_pipe'"), [{ length: 2 }],
            'db_42 is the same tenant as user 42');
    });
}));
