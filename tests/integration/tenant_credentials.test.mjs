// Per-tenant credentials (issue 12): root (user root, [main] password) gives a tenant its own
// CometQL password and browser JWT secret through the `tenants` table; that tenant then opens
// with its own password only, cannot switch to another tenant's database (ERR 1044), and its
// browsers' tokens verify with its own secret only. Rotation keeps the replaced credentials valid
// for the grace period only; a tenant without credentials of its own behaves as before; the
// credentials survive kill -9; with [main] shared_password_tenants = no, only tenants with their
// own password (and root) open.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { rawLogin, packet } from './mysql_raw.mjs';
import { wsOpen, closeAll, signJwt } from './wsclient.mjs';

const srv = await startServer({ logLevel: 'info' });
after(async () => {
    await closeAll(srv);
    await srv.stop();
});

const now = () => Math.floor(Date.now() / 1000);
const PW5 = 'five-own-password';
const JWT5 = 'tenant-five-jwt-secret-0123456789';

async function connect(o) {
    return mysql2Connect(srv, o);
}

/** The server's MySQL error for a login, or null when it succeeds. */
async function loginError(o) {
    try {
        const c = await connect(o);
        await c.end();
        return null;
    } catch (e) {
        if (e.errno === undefined) throw e;
        return { code: e.errno, message: e.sqlMessage ?? e.message };
    }
}

async function asRoot(fn) {
    const c = await connect({});
    try {
        return await fn(c);
    } finally {
        await c.end();
    }
}

async function queryError(c, sql) {
    try {
        await c.query(sql);
    } catch (e) {
        if (e.errno === undefined) throw e;
        return { code: e.errno, message: e.sqlMessage };
    }
    return null;
}

test('root gives tenant 5 its own password: user 5 opens with it and no longer with [main] password', srv.wrap(async () => {
    // before: the shared password opens tenant 5, as in CppComet
    assert.equal(await loginError({ user: '5' }), null);
    await asRoot(async (root) => {
        const [r] = await root.query('INSERT INTO tenants (dev_id, password, jwt_secret) VALUES (5, ?, ?)', [PW5, JWT5]);
        assert.equal(r.affectedRows, 1);
        const [rows] = await root.query('SELECT * FROM tenants WHERE dev_id = 5');
        assert.equal(rows.length, 1);
        const [tables] = await root.query("SHOW TABLES LIKE 'tenants'");
        assert.equal(tables.length, 1, 'root sees its table');
        const row = rows[0];
        // no secret in clear: MySQL's "*" + SHA1(SHA1(password)) and a fingerprint of the secret
        const crypto = await import('node:crypto');
        const stage2 = crypto.createHash('sha1').update(crypto.createHash('sha1').update(PW5).digest()).digest('hex').toUpperCase();
        assert.equal(row.password, `*${stage2}`);
        assert.match(row.jwt_secret, /^sha256:[0-9a-f]{16}$/);
        assert.ok(!JSON.stringify(rows).includes(PW5) && !JSON.stringify(rows).includes(JWT5), JSON.stringify(rows));
        assert.ok(row.created > 0 && row.updated >= row.created, JSON.stringify(row));
    });
    assert.equal(await loginError({ user: '5', password: PW5 }), null);
    const shared = await loginError({ user: '5' });
    assert.equal(shared?.code, 16, `the shared password must not open tenant 5: ${JSON.stringify(shared)}`);
    // root itself is unchanged
    assert.equal(await loginError({}), null);
    assert.equal((await loginError({ user: 'root', password: PW5 }))?.code, 16);
}));

test('user 5 with its own password cannot reach tenant 6: USE, COM_INIT_DB and the connect-time database give ERR 1044', srv.wrap(async () => {
    const c = await connect({ user: '5', password: PW5 });
    try {
        const e = await queryError(c, 'USE db_6');
        assert.equal(e?.code, 1044, JSON.stringify(e));
        assert.match(e.message, /Access denied for user '5' to database 'db_6'/);
        assert.equal(await queryError(c, 'USE db_5'), null, 'its own database');
        assert.equal(await queryError(c, 'USE CometQL_v1'), null);
        // the connection still works, as tenant 5
        await c.query("INSERT INTO users_data (id, data) VALUES (41, 'five data')");
        const [rows] = await c.query('SELECT data FROM users_data WHERE id = 41');
        assert.deepEqual(rows, [{ data: 'five data' }]);
        // root's table is root's: not listed, not readable, not writable
        const [tables] = await c.query('SHOW TABLES');
        assert.ok(!tables.map((r) => Object.values(r)[0]).includes('tenants'), JSON.stringify(tables));
        const t = await queryError(c, 'SELECT * FROM tenants');
        assert.equal(t?.code, 1142, JSON.stringify(t));
        assert.equal((await queryError(c, "INSERT INTO tenants (dev_id, password) VALUES (5, 'takeover-pw')"))?.code, 1142);
        assert.equal((await queryError(c, 'DELETE FROM tenants WHERE dev_id = 5'))?.code, 1142);
    } finally {
        await c.end();
    }
    const withDb = await loginError({ user: '5', password: PW5, db: 'db_6' });
    assert.equal(withDb?.code, 1044, JSON.stringify(withDb));
    assert.equal(await loginError({ user: '5', password: PW5, db: 'db_5' }), null);
    const raw = await rawLogin(srv, { user: '5', password: PW5 });
    try {
        await raw.write(packet(0, Buffer.concat([Buffer.from([0x02]), Buffer.from('db_6')])));
        const r = await raw.readResult();
        assert.equal(r.ok, false);
        assert.equal(r.code, 1044, JSON.stringify(r));
        assert.equal((await raw.ping()).ok, true, 'the connection stays usable');
    } finally {
        raw.destroy();
    }
    // tenant 6's rows stayed out of reach; root still switches anywhere
    await asRoot(async (root) => {
        await root.query('USE db_6');
        const [rows] = await root.query('SELECT * FROM users_data WHERE id = 41');
        assert.deepEqual(rows, []);
        await root.query('USE db_5');
        const [five] = await root.query('SELECT data FROM users_data WHERE id = 41');
        assert.deepEqual(five, [{ data: 'five data' }]);
    });
}));

test("tenant 5's browsers: a JWT signed with [main] password + 5 is refused, one signed with tenant 5's secret is accepted", srv.wrap(async () => {
    const legacy = await wsOpen(srv, { devId: 5, userId: 9, session: signJwt({ user_id: 9, exp: now() + 3600 }, `${srv.password}5`) });
    assert.equal(legacy.info.authorized, false, 'the shared secret must not mint tokens for tenant 5');
    const own = await wsOpen(srv, { devId: 5, userId: 9, session: signJwt({ user_id: 9, exp: now() + 3600 }, JWT5) });
    assert.equal(own.info.authorized, true, JSON.stringify(own.info));
    // another tenant without a secret of its own keeps [main] password + dev_id
    const seven = await wsOpen(srv, { devId: 7, userId: 9, session: signJwt({ user_id: 9, exp: now() + 3600 }, `${srv.password}7`) });
    assert.equal(seven.info.authorized, true);
    const crossed = await wsOpen(srv, { devId: 7, userId: 9, session: signJwt({ user_id: 9, exp: now() + 3600 }, JWT5) });
    assert.equal(crossed.info.authorized, false, "tenant 5's secret must not open tenant 7");
    // revoked_tokens of tenant 5 checks its token with its own secret: the user is disconnected
    const token = signJwt({ user_id: 9, exp: now() + 3600, n: 'revoke' }, JWT5);
    const live = await wsOpen(srv, { devId: 5, userId: 9, session: token });
    assert.equal(live.info.authorized, true);
    const c = await connect({ user: '5', password: PW5 });
    await c.query('INSERT INTO revoked_tokens (token) VALUES (?)', [token]);
    await c.end();
    await live.waitClosed();
    await Promise.all([legacy, own, seven, crossed].map((x) => x.close()));
}));

test('rotation: the replaced password and secret stay valid for the grace period only', srv.wrap(async () => {
    const PW5B = 'five-rotated-password';
    const JWT5B = 'tenant-five-jwt-secret-rotated-987';
    const GRACE = 3;
    await asRoot(async (root) => {
        await root.query('INSERT INTO tenants (dev_id, password, jwt_secret, grace) VALUES (5, ?, ?, ?)', [PW5B, JWT5B, GRACE]);
        const [rows] = await root.query('SELECT grace FROM tenants WHERE dev_id = 5');
        assert.ok(rows[0].grace > 0 && rows[0].grace <= GRACE, JSON.stringify(rows));
    });
    const rotatedAt = Date.now();
    assert.equal(await loginError({ user: '5', password: PW5B }), null, 'the new password');
    assert.equal(await loginError({ user: '5', password: PW5 }), null, 'the replaced one, inside the grace period');
    const oldJwt = await wsOpen(srv, { devId: 5, userId: 3, session: signJwt({ user_id: 3, exp: now() + 3600 }, JWT5) });
    assert.equal(oldJwt.info.authorized, true, 'the replaced secret inside the grace period');
    await oldJwt.close();
    // the grace period ends: poll the old password until it is refused
    let refusedAt = null;
    for (let i = 0; i < 100 && refusedAt === null; i++) {
        const e = await loginError({ user: '5', password: PW5 });
        if (e) {
            assert.equal(e.code, 16);
            refusedAt = Date.now();
        } else {
            await new Promise((r) => setTimeout(r, 200));
        }
    }
    assert.ok(refusedAt !== null, 'the replaced password was never refused');
    assert.ok(refusedAt - rotatedAt >= (GRACE - 1) * 1000, `refused after ${refusedAt - rotatedAt} ms, before the grace period of ${GRACE} s`);
    const late = await wsOpen(srv, { devId: 5, userId: 3, session: signJwt({ user_id: 3, exp: now() + 3600 }, JWT5) });
    assert.equal(late.info.authorized, false, 'the replaced secret after the grace period');
    const fresh = await wsOpen(srv, { devId: 5, userId: 3, session: signJwt({ user_id: 3, exp: now() + 3600 }, JWT5B) });
    assert.equal(fresh.info.authorized, true);
    await Promise.all([late.close(), fresh.close()]);
    assert.equal(await loginError({ user: '5', password: PW5B }), null);
    // grace 0: the replaced password stops at once
    await asRoot((root) => root.query('INSERT INTO tenants (dev_id, password, grace) VALUES (5, ?, 0)', [PW5]));
    assert.equal((await loginError({ user: '5', password: PW5B }))?.code, 16);
    assert.equal(await loginError({ user: '5', password: PW5 }), null);
}));

test('a tenant without credentials of its own behaves as before: [main] password opens it and it may USE another tenant', srv.wrap(async () => {
    const c = await connect({ user: '7' });
    try {
        await c.query("INSERT INTO users_auth (id, hash) VALUES (70, 'seven70')");
        await c.query('USE db_8');
        const [rows] = await c.query('SELECT * FROM users_auth WHERE id = 70');
        assert.deepEqual(rows, [], 'db_8 is another tenant');
        const e = await queryError(c, 'SELECT * FROM tenants');
        assert.equal(e?.code, 1142, 'the tenants table stays root-only');
    } finally {
        await c.end();
    }
}));

test('bad credentials are refused with the reason, nothing is stored', srv.wrap(async () => {
    await asRoot(async (root) => {
        const cases = [
            ["INSERT INTO tenants (dev_id, password) VALUES (0, 'root-own-password')", 12, /positive integer/],
            ["INSERT INTO tenants (dev_id, password) VALUES (9, 'short')", 12, /8\.\.256 bytes/],
            ["INSERT INTO tenants (dev_id, jwt_secret) VALUES (9, 'too-short')", 12, /16\.\.512 bytes/],
            ['INSERT INTO tenants (dev_id) VALUES (9)', 12, /password, a jwt_secret or both/],
            ["INSERT INTO tenants (dev_id, password, grace) VALUES (9, 'long-enough-pw', -1)", 12, /grace/],
            ["INSERT INTO tenants (dev_id, password, created) VALUES (9, 'long-enough-pw', 5)", 10, /set by the server/],
            ["UPDATE tenants SET password = 'long-enough-pw' WHERE dev_id = 5", 10, /cannot be updated/],
        ];
        for (const [sql, code, re] of cases) {
            const e = await queryError(root, sql);
            assert.equal(e?.code, code, `${sql}: ${JSON.stringify(e)}`);
            assert.match(e.message, re, sql);
        }
        const [rows] = await root.query('SELECT dev_id FROM tenants');
        assert.deepEqual(rows.map((r) => r.dev_id), [5]);
    });
    assert.equal(await loginError({ user: '9' }), null, 'tenant 9 got no credentials');
}));

test('the credentials survive kill -9 right after the OK; DELETE gives the tenant back to [main] password', srv.wrap(async () => {
    await asRoot((root) => root.query("INSERT INTO tenants (dev_id, password, jwt_secret) VALUES (12, 'twelve-own-password', 'tenant-twelve-jwt-secret-xyz')"));
    await srv.kill9();
    await srv.start();
    assert.equal(await loginError({ user: '12', password: 'twelve-own-password' }), null);
    assert.equal((await loginError({ user: '12' }))?.code, 16);
    assert.equal(await loginError({ user: '5', password: PW5 }), null, 'tenant 5 too');
    const own = await wsOpen(srv, { devId: 12, userId: 1, session: signJwt({ user_id: 1, exp: now() + 3600 }, 'tenant-twelve-jwt-secret-xyz') });
    assert.equal(own.info.authorized, true);
    await own.close();
    await asRoot(async (root) => {
        const [r] = await root.query('DELETE FROM tenants WHERE dev_id = 12');
        assert.equal(r.affectedRows, 1);
    });
    assert.equal(await loginError({ user: '12' }), null, 'back to the shared password');
    assert.equal((await loginError({ user: '12', password: 'twelve-own-password' }))?.code, 16);
    await srv.restart();
    assert.equal(await loginError({ user: '12' }), null, 'the removal survives a restart');
}));

test('the isolation matrix with own passwords: tenants 5 and 6 never see or change each other\'s rows', srv.wrap(async () => {
    await asRoot((root) => root.query("INSERT INTO tenants (dev_id, password) VALUES (6, 'six-own-password')"));
    const five = await connect({ user: '5', password: PW5 });
    const six = await connect({ user: '6', password: 'six-own-password' });
    try {
        const writes = [
            "INSERT INTO users_auth (id, hash) VALUES (501, 'h5')",
            "INSERT INTO users_data (id, data) VALUES (501, 'd5')",
            "INSERT INTO revoked_tokens (token) VALUES ('tok_501')",
            "INSERT INTO pipes_settings (name, length) VALUES ('iso_pipe', 5)",
            "INSERT INTO pipes_messages (name, event, message) VALUES ('iso_pipe', 'e', 'm5')",
            "INSERT INTO users_messages (id, event, message) VALUES (501, 'e', 'q5')",
        ];
        for (const w of writes) await five.query(w);
        const reads = {
            'SELECT * FROM users_auth WHERE id = 501': [],
            'SELECT * FROM users_data WHERE id = 501': [],
            "SELECT * FROM pipes_settings WHERE name = 'iso_pipe'": [],
            "SELECT * FROM pipes_messages WHERE name = 'iso_pipe'": [],
            'SELECT * FROM users_messages WHERE id = 501': [],
        };
        for (const [q, want] of Object.entries(reads)) assert.deepEqual((await six.query(q))[0], want, `tenant 6: ${q}`);
        const toks = (await six.query('SELECT * FROM revoked_tokens'))[0].map((r) => r.token);
        assert.ok(!toks.includes('tok_501'));
        await six.query('DELETE FROM users_auth WHERE id = 501');
        assert.equal((await five.query('SELECT hash FROM users_auth WHERE id = 501'))[0][0]?.hash, 'h5', "tenant 6's delete reached tenant 5");
        assert.equal((await queryError(six, 'USE db_5'))?.code, 1044);
    } finally {
        await five.end();
        await six.end();
    }
}));

test('[main] shared_password_tenants = no: a tenant without its own password does not open, root and own passwords do', async () => {
    const strict = await startServer({ extraConf: '[main]\nshared_password_tenants = no\n' });
    try {
        await strict.wrap(async () => {
            const root = await mysql2Connect(strict, {});
            await root.query("INSERT INTO tenants (dev_id, password) VALUES (3, 'three-own-password')");
            await root.end();
            const e = await mysql2Connect(strict, { user: '4' }).then((c) => c.end().then(() => null), (x) => x);
            assert.equal(e?.errno, 16, String(e));
            assert.match(e.sqlMessage, /no password of its own/);
            const three = await mysql2Connect(strict, { user: '3', password: 'three-own-password' });
            await three.end();
        })();
    } finally {
        await strict.stop();
    }
});
