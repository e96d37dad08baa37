// The tenant-isolation matrix (issue 9 item 4, issue 12): tenants 7 and 8 use the same user ids,
// pipe names and tokens, and tenant 8 runs every operation of every CometQL table and every
// browser command against them; nothing of tenant 7's may be read, changed, deleted or received.
// Run twice: tenants opened by the shared [main] password (CppComet's way), and tenants with
// credentials of their own (root's `tenants` table: own password, own JWT secret). Calls
// (conference, conference_members) need a media node: their isolation is in video_node.test.mjs
// ("tenant matrix") and media_call_token.test.mjs; here the tables are read and their refusals
// without a node checked.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, wsUrl } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { wsOpen, closeAll, signJwt } from './wsclient.mjs';

const servers = [];
after(async () => {
    for (const srv of servers) {
        await closeAll(srv);
        await srv.stop();
    }
});

const A = 7; // the tenant whose data must stay its own
const B = 8; // the tenant that tries everything
const UID = 701; // the same user id in both
const OTHER = 702; // a user of A's that is online (presence)
const uuidOf = (n) => `${String(n).padStart(4, '0')}${'d'.repeat(28)}`;
const rows = async (c, sql, params) => (await c.query(sql, params))[0];
const now = () => Math.floor(Date.now() / 1000);

async function queryError(c, sql) {
    try {
        await c.query(sql);
    } catch (e) {
        if (e.errno === undefined) throw e;
        return e.errno;
    }
    return null;
}

/** Everything tenant A has, as A reads it: compared before and after B's attempts. */
async function snapshotOfA(a) {
    const out = {};
    for (const sql of [
        `SELECT * FROM users_auth WHERE id IN (${UID}, ${OTHER})`,
        `SELECT * FROM users_data WHERE id = ${UID}`,
        "SELECT * FROM revoked_tokens WHERE token = 'iso_token'",
        `SELECT id, event, message FROM users_messages WHERE id = ${UID}`,
        "SELECT name, event, message FROM pipes_messages WHERE name = 'iso_hist'",
        "SELECT * FROM pipes_settings WHERE name = 'iso_hist'",
        "SELECT * FROM pipes WHERE name = 'iso_live'",
        "SELECT name, user_id, user_uuid FROM users_in_pipes WHERE name = 'iso_live'",
        `SELECT id FROM users_time WHERE id = ${OTHER}`,
    ]) out[sql] = await rows(a, sql);
    return out;
}

for (const mode of ['shared', 'own']) {
    test(`tenant ${B} can neither read, change nor receive tenant ${A}'s data (${mode === 'own' ? 'own credentials' : 'shared [main] password'})`, { timeout: 60000 }, async () => {
        const srv = await startServer({ password: 'matrixpw' });
        servers.push(srv);
        await srv.wrap(async () => {
            const root = await mysql2Connect(srv);
            const secrets = { [A]: `matrixpw${A}`, [B]: `matrixpw${B}` }; // CppComet's: password + dev_id
            const passwords = { [A]: 'matrixpw', [B]: 'matrixpw' };
            if (mode === 'own') {
                for (const t of [A, B]) {
                    passwords[t] = `own-password-of-${t}`;
                    secrets[t] = `own-jwt-secret-of-tenant-${t}-0123456789`;
                    await root.query('INSERT INTO tenants (dev_id, password, jwt_secret) VALUES (?, ?, ?)', [t, passwords[t], secrets[t]]);
                }
            }
            const a = await mysql2Connect(srv, { user: String(A), password: passwords[A] });
            const b = await mysql2Connect(srv, { user: String(B), password: passwords[B] });
            try {
                // ---- tenant A's data: a row in every table it can write, and live browsers
                await a.query('INSERT INTO users_auth (id, hash) VALUES (?, ?), (?, ?)', [UID, 'hashA701', OTHER, 'hashA702']);
                await a.query('INSERT INTO users_data (id, data) VALUES (?, ?)', [UID, 'data of A']);
                await a.query("INSERT INTO revoked_tokens (token) VALUES ('iso_token')");
                await a.query("INSERT INTO pipes_settings (name, length) VALUES ('iso_hist', 10)");
                await a.query("INSERT INTO pipes_messages (name, event, message) VALUES ('iso_hist', 'e', 'history of A')");
                await a.query('INSERT INTO users_messages (id, event, message) VALUES (?, ?, ?)', [UID, 'pm', 'queued for A']);
                const aLive = await wsOpen(srv, { session: 'hashA702', userId: OTHER, devId: A, uuid: uuidOf(OTHER), name: 'A702' });
                assert.equal(aLive.info.authorized, true);
                await aLive.subscribe('iso_live', 'web_iso', 'track_iso', `user_status_${UID}`);
                const before = await snapshotOfA(a);
                assert.equal(before["SELECT * FROM pipes WHERE name = 'iso_live'"].length, 1, 'A sees its own live pipe');
                assert.equal(before[`SELECT id, event, message FROM users_messages WHERE id = ${UID}`].length, 1);

                // ---- B reads every table: none of A's rows, with or without WHERE
                for (const sql of [
                    'SELECT * FROM users_auth', `SELECT * FROM users_auth WHERE id = ${UID}`,
                    'SELECT * FROM users_data', `SELECT * FROM users_data WHERE id = ${UID}`,
                    'SELECT * FROM revoked_tokens', "SELECT * FROM revoked_tokens WHERE token = 'iso_token'",
                    'SELECT * FROM users_time', `SELECT * FROM users_time WHERE id = ${OTHER}`,
                    'SELECT * FROM users_messages', `SELECT * FROM users_messages WHERE id = ${UID}`,
                    'SELECT * FROM pipes_messages', "SELECT * FROM pipes_messages WHERE name = 'iso_hist'",
                    'SELECT * FROM users_in_pipes', "SELECT * FROM users_in_pipes WHERE name = 'iso_live'",
                    'SELECT * FROM pipes', "SELECT * FROM pipes WHERE name = 'iso_live'",
                    'SELECT * FROM pipes_settings', "SELECT * FROM pipes_settings WHERE name = 'iso_hist'",
                    'SELECT * FROM conference', "SELECT * FROM conference WHERE name = 'iso'",
                    'SELECT * FROM conference_members', "SELECT * FROM conference_members WHERE name = 'iso'",
                ]) {
                    // a table read without its key may be refused (CppComet's rule): that shows nothing
                    const got = await rows(b, sql).catch((e) => {
                        if (e.errno === undefined) throw e;
                        assert.ok(!/WHERE/.test(sql), `tenant ${B}: ${sql} -> ERR ${e.errno} ${e.sqlMessage}`);
                        return [];
                    });
                    const ok = got.length === 0 ||
                        // asked by key, pipes answers any name (0 users for one nobody holds) and
                        // users_time a user never seen: never A's subscribers, never A's 0 (online)
                        (/pipes WHERE/.test(sql) && got.every((r) => r.users === 0)) ||
                        (/users_time WHERE/.test(sql) && got.every((r) => r.time !== 0));
                    assert.ok(ok, `tenant ${B}: ${sql} -> ${JSON.stringify(got)}`);
                }
                assert.equal(await queryError(b, 'SELECT * FROM tenants'), 1142, 'tenants is root\'s');

                // ---- B writes, updates and deletes the same keys: A's rows stay as they were
                await b.query('INSERT INTO users_auth (id, hash) VALUES (?, ?)', [UID, 'hashB701']);
                await b.query(`UPDATE users_auth SET hash = 'hashB702' WHERE id = ${OTHER}`);
                await b.query('INSERT INTO users_data (id, data) VALUES (?, ?)', [UID, 'data of B']);
                await b.query(`UPDATE users_data SET data = 'changed by B' WHERE id = ${UID}`);
                await b.query("INSERT INTO revoked_tokens (token) VALUES ('iso_token')");
                await b.query("INSERT INTO pipes_settings (name, length) VALUES ('iso_hist', 2)");
                await b.query("UPDATE pipes_settings SET length = 1 WHERE name = 'iso_hist'");
                await b.query("INSERT INTO pipes_messages (name, event, message) VALUES ('iso_live', 'e', 'live from B')");
                await b.query("INSERT INTO pipes_messages (name, event, message) VALUES ('web_iso', 'e', 'web from B')");
                await b.query("INSERT INTO pipes_messages (name, event, message) VALUES ('iso_hist', 'e', 'history of B')");
                await b.query('INSERT INTO users_messages (id, event, message) VALUES (?, ?, ?)', [OTHER, 'pm', 'from B to 702']);
                await b.query(`DELETE FROM users_messages WHERE id = ${UID}`);
                await b.query("DELETE FROM pipes_messages WHERE name = 'iso_hist'");
                await b.query("DELETE FROM revoked_tokens WHERE token = 'iso_token'");
                await b.query(`DELETE FROM users_data WHERE id = ${UID}`);
                await b.query("DELETE FROM pipes_settings WHERE name = 'iso_hist'");
                await b.query(`DELETE FROM users_auth WHERE id IN (${UID}, ${OTHER})`);
                // refusals name B's own namespace only
                assert.ok(await queryError(b, "INSERT INTO conference (name, user_id, message) VALUES ('iso', 701, '{}')"), 'no media node: refused');
                assert.equal((await b.query("UPDATE conference_members SET mute = 1 WHERE name = 'iso'"))[0].affectedRows, 0, 'nobody of its own to mute');
                assert.equal(await queryError(b, "DELETE FROM conference_members WHERE name = 'iso'"), 10, 'a kick is DELETE FROM conference');
                assert.equal((await b.query("DELETE FROM conference WHERE name = 'iso'"))[0].affectedRows, 0, 'no room of its own to end');
                assert.equal(await queryError(b, "INSERT INTO tenants (dev_id, password) VALUES (7, 'takeover')"), 1142);
                assert.equal(await queryError(b, 'DELETE FROM tenants WHERE dev_id = 7'), 1142);
                if (mode === 'own') {
                    assert.equal(await queryError(b, `USE db_${A}`), 1044);
                    const intoA = await mysql2Connect(srv, { user: String(B), password: passwords[B], db: `db_${A}` }).then((c) => c.end().then(() => null), (e) => e.errno);
                    assert.equal(intoA, 1044, `user ${B} connecting with database db_${A}`);
                    const withShared = await mysql2Connect(srv, { user: String(A), password: 'matrixpw' }).then((c) => c.end().then(() => null), (e) => e.errno);
                    assert.equal(withShared, 16, `[main] password opened tenant ${A}`);
                }
                assert.deepEqual(await snapshotOfA(a), before, `tenant ${A}'s rows after tenant ${B}'s writes`);

                // ---- B's browsers, with B's own user 701 and A's credentials
                const bKeyed = await wsOpen(srv, { session: 'hashA701', userId: UID, devId: B, name: 'B701-with-A-key' });
                assert.equal(bKeyed.info.authorized, false, "A's key authorized in tenant B");
                const tokA = signJwt({ user_id: UID, exp: now() + 600 }, secrets[A]);
                const bJwt = await wsOpen(srv, { session: tokA, userId: UID, devId: B, name: 'B701-with-A-jwt' });
                assert.equal(bJwt.info.authorized, false, "A's JWT authorized in tenant B");
                await b.query('INSERT INTO users_auth (id, hash) VALUES (?, ?)', [UID, 'hashB701']);
                const bUser = await wsOpen(srv, { session: 'hashB701', userId: UID, devId: B, uuid: uuidOf(UID), name: 'B701' });
                assert.equal(bUser.info.authorized, true);
                assert.equal(aLive.pending((m) => m.pipe === `user_status_${UID}`).length, 0, "B's user 701 online showed in A");
                const tokB = signJwt({ user_id: 703, exp: now() + 600 }, secrets[B]);
                const bJwtOwn = await wsOpen(srv, { session: tokB, userId: 703, devId: B, name: 'B703-jwt' });
                assert.equal(bJwtOwn.info.authorized, true, "B's own JWT");
                await bUser.subscribe('iso_live', 'web_iso', 'track_iso', `user_status_${OTHER}`);
                // commands
                bUser.send('pipe_log\niso_hist\nmkL\n');
                bUser.send('pipe_count\nweb_iso\nmkC');
                bUser.send('track_pipe_users\ntrack_iso\nmkT');
                bUser.send('user_data\nmkU\n701');
                bUser.send(`user_status\n${OTHER}\nmkS`);
                bUser.send('pipe_since\niso_live\n0');
                bUser.send('web_pipe2\nweb_iso\nsay\n*\nweb_pipe2 from B');
                const cnt = await bUser.next((m) => m.marker === 'mkC', { what: 'pipe_count' });
                assert.equal(cnt.data.user_in_pipe, 1, `pipe_count counts A's subscribers: ${JSON.stringify(cnt)}`);
                const track = await bUser.next((m) => m.marker === 'mkT', { what: 'track_pipe_users' });
                assert.deepEqual(track.data, [{ user_id: UID, uuid: uuidOf(UID) }], JSON.stringify(track));
                const ud = await bUser.next((m) => m.marker === 'mkU', { what: 'user_data' });
                assert.deepEqual(ud.data, { user_data: '', user_id: UID }, "A's users_data through B's user_data");
                const st = await bUser.next((m) => m.pipe === '_answer_user_status', { what: 'user_status' });
                assert.equal(st.data.online, false, `A's online user ${OTHER} seen as online by B: ${JSON.stringify(st)}`);
                await bUser.next((m) => m.pipe === '_answer_to_web_iso', { what: "web_pipe2's answer" });
                await bUser.sync();
                for (const m of bUser.pending((x) => x.pipe !== '_answer' && !x.pipe?.startsWith('_answer')))
                    assert.ok(![`history of A`, 'queued for A', 'data of A'].includes(m.data), `B's browser got A's ${JSON.stringify(m)}`);
                assert.equal(bUser.pending((m) => m.pipe === 'iso_hist' && m.data === 'history of A').length, 0, "pipe_log gave A's history");
                assert.equal(bUser.pending((m) => m.pipe === 'msg').length, 0, "A's queued message reached B's user 701");
                // msg_ack of every small queue id there could be: A's queue keeps its message
                bUser.send(`msg_ack\n${Array.from({ length: 50 }, (_, i) => i + 1).join('\n')}`);
                await bUser.sync();
                // A's browsers received nothing of B's
                await aLive.sync();
                const leaked = aLive.pending((m) => ['live from B', 'web from B', 'web_pipe2 from B', 'from B to 702'].includes(m.data) ||
                    (m.pipe === 'track_iso' && m.data?.uuid === uuidOf(UID)) || m.pipe === `user_status_${UID}`);
                assert.deepEqual(leaked, [], `tenant ${A}'s browser got tenant ${B}'s messages`);
                // B's own side works (the matrix cannot pass by everything being broken)
                assert.ok(bUser.pending((m) => m.pipe === 'iso_live').length + (await rows(b, "SELECT * FROM pipes WHERE name = 'iso_live'")).length >= 1);
                await b.query("INSERT INTO pipes_messages (name, event, message) VALUES ('iso_live', 'e', 'second from B')");
                assert.equal((await bUser.next((m) => m.pipe === 'iso_live' && m.data === 'second from B', { what: "B's own message" })).data, 'second from B');
                await a.query("INSERT INTO pipes_messages (name, event, message) VALUES ('iso_live', 'e', 'from A')");
                assert.equal((await aLive.nextOn('iso_live', 'e')).data, 'from A');
                await bUser.sync();
                assert.equal(bUser.pending((m) => m.data === 'from A').length, 0, "A's message reached B's subscriber");
                assert.deepEqual(await snapshotOfA(a), before, `tenant ${A}'s rows after tenant ${B}'s browsers`);
                // A's user 701 still gets its queued message, once
                const aUser = await wsOpen(srv, { session: 'hashA701', userId: UID, devId: A, name: 'A701' });
                assert.equal(aUser.info.authorized, true, "A's key still works after B's DELETE FROM users_auth");
                assert.equal((await aUser.nextOn('msg', 'pm')).data, 'queued for A');
                await Promise.all([bKeyed, bJwt, bUser, bJwtOwn, aLive, aUser].map((c) => c.close()));
            } finally {
                for (const c of [root, a, b]) await c.end().catch(() => c.destroy());
            }
        })();
    });
}
