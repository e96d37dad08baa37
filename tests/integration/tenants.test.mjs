// Tenants (dev_id): the user name selects the namespace (`root`/`0` -> 0, digits -> that id), and
// `USE db_N` (COM_QUERY), COM_INIT_DB and CLIENT_CONNECT_WITH_DB switch to dev_id N.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { rawLogin, packet } from './mysql_raw.mjs';

const srv = await startServer();
after(() => srv.stop());

async function withConn(o, fn) {
    const c = await mysql2Connect(srv, o);
    try {
        return await fn(c);
    } finally {
        await c.end().catch(() => c.destroy());
    }
}
const hashOf = async (c, id) => (await c.query(`SELECT hash FROM users_auth WHERE id = ${id}`))[0].map((r) => r.hash);

test('user 5 does not see the rows of root (dev_id 0), and vice versa', srv.wrap(async () => {
    await withConn({}, async (root) => {
        await root.query("INSERT INTO users_auth (id, hash) VALUES (301, 'roothash')");
        await root.query("INSERT INTO users_data (id, data) VALUES (301, 'root data')");
        await root.query("INSERT INTO revoked_tokens (token) VALUES ('root_token_301')");
        await root.query("INSERT INTO pipes_settings (name, length) VALUES ('tenant_pipe', 5)");
        await root.query("INSERT INTO pipes_messages (name, event, message) VALUES ('tenant_pipe', 'ev', 'root msg')");
        await root.query("INSERT INTO users_messages (id, event, message) VALUES (301, 'ev', 'for root user')");
    });
    await withConn({ user: '5' }, async (five) => {
        assert.deepEqual(await hashOf(five, 301), [], 'users_auth of dev_id 0 leaked to dev_id 5');
        assert.deepEqual((await five.query('SELECT * FROM users_data WHERE id = 301'))[0], [], 'users_data leaked');
        const toks = (await five.query('SELECT * FROM revoked_tokens'))[0].map((r) => r.token);
        assert.ok(!toks.includes('root_token_301'), `revoked_tokens leaked: ${JSON.stringify(toks)}`);
        assert.deepEqual((await five.query("SELECT * FROM pipes_settings WHERE name = 'tenant_pipe'"))[0], [], 'pipes_settings leaked');
        assert.deepEqual((await five.query("SELECT * FROM pipes_messages WHERE name = 'tenant_pipe'"))[0], [], 'pipes_messages leaked');
        assert.deepEqual((await five.query('SELECT * FROM users_messages WHERE id = 301'))[0], [], 'users_messages leaked');
        await five.query("INSERT INTO users_auth (id, hash) VALUES (301, 'fivehash')");
        assert.deepEqual(await hashOf(five, 301), ['fivehash']);
    });
    await withConn({}, async (root) => {
        assert.deepEqual(await hashOf(root, 301), ['roothash'], "dev_id 5's insert overwrote dev_id 0's row");
        const [del] = await root.query('DELETE FROM users_auth WHERE id = 301');
        assert.equal(del.affectedRows, 1);
    });
    await withConn({ user: '5' }, async (five) => {
        assert.deepEqual(await hashOf(five, 301), ['fivehash'], "dev_id 0's delete removed dev_id 5's row");
    });
    await withConn({ user: '0' }, async (zero) => {
        assert.deepEqual((await zero.query('SELECT data FROM users_data WHERE id = 301'))[0], [{ data: 'root data' }], 'user 0 is root');
    });
}));

test('USE db_7 switches the connection to dev_id 7', srv.wrap(async () => {
    await withConn({}, async (c) => {
        await c.query("INSERT INTO users_auth (id, hash) VALUES (302, 'zero302')");
        await c.query('USE db_7');
        assert.deepEqual(await hashOf(c, 302), [], 'after USE db_7 the rows of dev_id 0 are not visible');
        await c.query("INSERT INTO users_auth (id, hash) VALUES (302, 'seven302')");
        assert.deepEqual(await hashOf(c, 302), ['seven302']);
    });
    await withConn({ user: '7' }, async (seven) => {
        assert.deepEqual(await hashOf(seven, 302), ['seven302'], 'user 7 sees what USE db_7 wrote');
    });
    await withConn({ db: 'db_7' }, async (c) => {
        assert.deepEqual(await hashOf(c, 302), ['seven302'], 'database db_7 at connect (CLIENT_CONNECT_WITH_DB)');
    });
    await withConn({}, async (c) => {
        assert.deepEqual(await hashOf(c, 302), ['zero302'], 'root still sees its own row');
        await c.query('USE CometQL_v1');
        assert.deepEqual(await hashOf(c, 302), ['zero302'], 'USE CometQL_v1 keeps the dev_id');
    });
}));

test('COM_INIT_DB db_5 switches to dev_id 5; an unknown database is an error', srv.wrap(async () => {
    const c = await rawLogin(srv);
    try {
        await c.write(packet(0, Buffer.concat([Buffer.from([0x02]), Buffer.from('db_5')])));
        const r = await c.readResult();
        assert.equal(r.ok, true, `COM_INIT_DB db_5: ${JSON.stringify(r)}`);
        const q = await c.query('SELECT hash FROM users_auth WHERE id = 301');
        assert.deepEqual(q.rows, [['fivehash']], JSON.stringify(q));
        await c.write(packet(0, Buffer.concat([Buffer.from([0x02]), Buffer.from('no_such_db')])));
        const e = await c.readResult();
        assert.equal(e.ok, false, `COM_INIT_DB no_such_db must fail: ${JSON.stringify(e)}`);
        assert.equal(e.code, 15, JSON.stringify(e));
        const p = await c.ping();
        assert.equal(p.ok, true);
    } finally {
        c.destroy();
    }
}));
