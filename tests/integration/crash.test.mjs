// Durability: every write the server acknowledged (OK packet) survives kill -9 right after the
// last OK, and a restart on the same store.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';

const srv = await startServer();
after(() => srv.stop());

async function connect(o) {
    const c = await mysql2Connect(srv, o);
    c.on('error', () => { /* the server is killed under open connections */ });
    return c;
}
const rowsOf = async (c, sql) => (await c.query(sql))[0];

// Writes a batch for round `k`, returning after the last OK without another await in between.
async function writeRound(k) {
    const root = await connect();
    const t3 = await connect({ user: '3' });
    const base = 1000 * k;
    for (let i = 1; i <= 40; i++) await root.query(`INSERT INTO users_auth (id, hash) VALUES (${base + i}, 'h${k}_${i}')`);
    await root.query(`INSERT INTO users_auth (id, hash) VALUES (${base + 1}, 'h${k}_1_overwritten')`);
    await root.query(`DELETE FROM users_auth WHERE id = ${base + 40}`);
    for (let i = 1; i <= 10; i++) await root.query('INSERT INTO users_data (id, data) VALUES (?, ?)', [base + i, `data ${k}/${i} ✓`]);
    await root.query(`INSERT INTO revoked_tokens (token) VALUES ('crash_tok_${k}')`);
    for (let i = 1; i <= 3; i++) {
        await root.query(`INSERT INTO users_messages (id, event, message) VALUES (${base + 77}, 'ev', 'queued ${k}/${i}')`);
    }
    await root.query(`INSERT INTO pipes_settings (name, length) VALUES ('crash_pipe_${k}', 5)`);
    for (let i = 1; i <= 7; i++) {
        await root.query(`INSERT INTO pipes_messages (name, event, message) VALUES ('crash_pipe_${k}', 'ev', 'p${i}')`);
    }
    await t3.query(`INSERT INTO users_auth (id, hash) VALUES (${base + 1}, 'tenant3_${k}')`);
    const [last] = await root.query(`INSERT INTO users_data (id, data) VALUES (${base + 99}, 'the last acknowledged write')`);
    assert.equal(last.affectedRows, 1);
    await srv.kill9(); // right after the last OK
    root.destroy();
    t3.destroy();
}

async function verifyRound(k) {
    const root = await connect();
    const t3 = await connect({ user: '3' });
    const base = 1000 * k;
    try {
        const ids = Array.from({ length: 40 }, (_, i) => base + i + 1);
        const auth = await rowsOf(root, `SELECT id, hash FROM users_auth WHERE id IN (${ids.join(',')})`);
        const want = ids.slice(0, 39).map((id, i) => ({ id, hash: i === 0 ? `h${k}_1_overwritten` : `h${k}_${i + 1}` }));
        assert.deepEqual(auth.sort((a, b) => a.id - b.id), want, `round ${k}: users_auth after kill -9`);
        const data = await rowsOf(root, `SELECT id, data FROM users_data WHERE id IN (${ids.slice(0, 10).join(',')}, ${base + 99})`);
        assert.deepEqual(data.sort((a, b) => a.id - b.id), [
            ...ids.slice(0, 10).map((id, i) => ({ id, data: `data ${k}/${i + 1} ✓` })),
            { id: base + 99, data: 'the last acknowledged write' },
        ], `round ${k}: users_data after kill -9`);
        const toks = (await rowsOf(root, 'SELECT * FROM revoked_tokens')).map((r) => r.token);
        assert.ok(toks.includes(`crash_tok_${k}`), `round ${k}: revoked token lost: ${JSON.stringify(toks)}`);
        const msgs = await rowsOf(root, `SELECT * FROM users_messages WHERE id = ${base + 77}`);
        assert.deepEqual(msgs.map((m) => m.message), [1, 2, 3].map((i) => `queued ${k}/${i}`), `round ${k}: queued users_messages`);
        const ps = await rowsOf(root, `SELECT * FROM pipes_settings WHERE name = 'crash_pipe_${k}'`);
        assert.deepEqual(ps, [{ name: `crash_pipe_${k}`, length: 5 }], `round ${k}: pipes_settings`);
        const pm = await rowsOf(root, `SELECT * FROM pipes_messages WHERE name = 'crash_pipe_${k}'`);
        assert.deepEqual(pm.map((m) => m.message), ['p3', 'p4', 'p5', 'p6', 'p7'], `round ${k}: pipes_messages history`);
        assert.deepEqual(await rowsOf(t3, `SELECT hash FROM users_auth WHERE id = ${base + 1}`), [{ hash: `tenant3_${k}` }],
            `round ${k}: tenant 3 row`);
    } finally {
        await root.end().catch(() => root.destroy());
        await t3.end().catch(() => t3.destroy());
    }
}

test('acknowledged writes survive kill -9 and restart', srv.wrap(async () => {
    await writeRound(1);
    await srv.restart();
    await verifyRound(1);
}));

test('a second crash after recovery loses nothing either', srv.wrap(async () => {
    await writeRound(2);
    await srv.restart();
    await verifyRound(1);
    await verifyRound(2);
}));

test('a graceful restart keeps everything too', srv.wrap(async () => {
    await srv.restart(); // SIGTERM (asserts exit 0, no sanitizer report), start again
    await verifyRound(1);
    await verifyRound(2);
}));
