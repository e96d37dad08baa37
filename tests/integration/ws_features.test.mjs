// The browser side's features, end to end: authentication (users_auth hash, HS256 JWT, revoked
// tokens, DELETE FROM users_auth), delivery of CometQL messages to pipes and users (tenants,
// offline queue), web_pipe2 between browsers, history (pipe_log), missed-message recovery
// (pipe_since), presence (user_status_*, track_*, pipe_count, users_time, pipes, users_in_pipes),
// the subscription command and the v3 compatibility envelope. `ws` clients; mysql2 as the backend.
//
// Two servers: `srv` ([main] password = pw, so the JWT secret of dev_id 0 is "pw0") and `rec`
// ([ws] recovery_messages = 2) for recovery beyond the in-memory ring (and metrics = off).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, wsUrl } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { wsOpen, closeAll, signJwt, sipCredential, sipCredentialExpiry, waitUntil, httpGet } from './wsclient.mjs';

const srv = await startServer({ password: 'pw' });
const rec = await startServer({ password: 'pw', extraConf: '[ws]\nrecovery_messages = 2\nmetrics = off\n' });
const db = await mysql2Connect(srv);
const recDb = await mysql2Connect(rec);
const db5 = await mysql2Connect(srv, { user: '5' }); // tenant (dev_id) 5

after(async () => {
    await closeAll(srv);
    await closeAll(rec);
    for (const c of [db, recDb, db5]) await c.end().catch(() => c.destroy());
    try {
        await srv.stop();
    } finally {
        await rec.stop();
    }
});

const publish = (conn, pipe, event, message) =>
    conn.query('INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)', [pipe, event, message]);
const rows = async (conn, sql, params) => (await conn.query(sql, params))[0];
const uuidOf = (n) => `${String(n).padStart(4, '0')}${'c'.repeat(28)}`;
const now = () => Math.floor(Date.now() / 1000);

// ---- authentication -----------------------------------------------------------------------------

test('auth by hash: valid is authorized; wrong is anonymous, may subscribe to normal pipes but not private_', srv.wrap(async () => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (11, 'hash11')");
    const ok = await wsOpen(srv, { session: 'hash11', userId: 11 });
    assert.equal(ok.info.authorized, true);
    assert.equal(ok.info.data, 'hash11');
    const bad = await wsOpen(srv, { session: 'wrong', userId: 11 });
    assert.equal(bad.info.authorized, false);
    assert.equal(bad.info.data, '');
    // anonymous: a normal pipe works, a private_ one is refused with a sys error
    await bad.subscribe('open_pipe_a');
    bad.send('subscription\nopen_pipe_a\nprivate_room11');
    const err = await bad.nextError();
    assert.match(JSON.stringify(err.data), /private/i);
    await bad.sync();
    await publish(db, 'private_room11', 'e', 'secret');
    await publish(db, 'open_pipe_a', 'e', 'public');
    assert.equal((await bad.nextOn('open_pipe_a')).data, 'public');
    assert.deepEqual(bad.pending((m) => m.pipe === 'private_room11'), [], 'an anonymous client received a private_ message');
    // the authorized one may
    await ok.subscribe('private_room11');
    await publish(db, 'private_room11', 'e', 'secret2');
    assert.equal((await ok.nextOn('private_room11')).data, 'secret2');
    await Promise.all([ok.close(), bad.close()]);
}));

test('auth by JWT: HS256 with secret password+dev_id; the stored key appears in users_auth, the session gets a SIP credential, never the key (audit H2)', srv.wrap(async () => {
    const exp = now() + 3600;
    const token = signJwt({ user_id: 7, exp }, 'pw0');
    const c = await wsOpen(srv, { session: token, userId: 7 });
    assert.equal(c.info.authorized, true, JSON.stringify(c.info));
    const stored = await rows(db, 'SELECT * FROM users_auth WHERE id = 7');
    assert.equal(stored.length, 1);
    assert.match(stored[0].hash, /^[A-Za-z0-9]{32}$/, 'the key is created on first use');
    assert.notEqual(c.info.data, stored[0].hash, 'a JWT session must not learn the permanent key');
    assert.equal(c.info.data, sipCredential(stored[0].hash, 0, 7, sipCredentialExpiry(now(), exp)),
        'serverInfo data is the credential for the token\'s exp, a whole minute');
    // a second connection with the token gets the same credential
    const c2 = await wsOpen(srv, { session: token, userId: 7 });
    assert.equal(c2.info.data, c.info.data);
    // the credential is a SIP password, not a login; the key itself works as a hash
    const asLogin = await wsOpen(srv, { session: c.info.data, userId: 7 });
    assert.equal(asLogin.info.authorized, false);
    await asLogin.close();
    const c3 = await wsOpen(srv, { session: stored[0].hash, userId: 7 });
    assert.equal(c3.info.authorized, true);
    assert.equal(c3.info.data, stored[0].hash);
    // wrong secret, wrong user, expired: not authorized
    const wrongSecret = await wsOpen(srv, { session: signJwt({ user_id: 7, exp: now() + 3600 }, 'pw1'), userId: 7 });
    assert.equal(wrongSecret.info.authorized, false);
    const otherUser = await wsOpen(srv, { session: token, userId: 8 });
    assert.equal(otherUser.info.authorized, false, 'payload.user_id must equal the URL user id');
    const expired = await wsOpen(srv, { session: signJwt({ user_id: 7, exp: now() - 10 }, 'pw0'), userId: 7 });
    assert.equal(expired.info.authorized, false, 'an expired JWT');
    assert.equal(expired.info.data, '');
    await Promise.all([c, c2, c3, wrongSecret, otherUser, expired].map((x) => x.close()));
}));

test('auth by JWT: a revoked token is refused, and INSERT INTO revoked_tokens disconnects its user', srv.wrap(async () => {
    const token = signJwt({ user_id: 17, exp: now() + 3600, n: 'revoke-me' }, 'pw0');
    const live = await wsOpen(srv, { session: token, userId: 17, name: 'live17' });
    assert.equal(live.info.authorized, true);
    const bystander = await wsOpen(srv, { name: 'anon' });
    await db.query('INSERT INTO revoked_tokens (token) VALUES (?)', [token]);
    await live.waitClosed();
    const again = await wsOpen(srv, { session: token, userId: 17 });
    assert.equal(again.info.authorized, false, 'a revoked token still authorizes');
    assert.ok(bystander.isOpen, 'another connection was closed by the revocation');
    await bystander.sync();
    // audit H1: other spellings of the revoked token (padding, the last character's unused
    // bits) do not verify, and mint no new key
    const tab = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = tab.indexOf(token.at(-1));
    const variants = [`${token}=`, `${token}==`, ...[1, 2, 3].map((x) => token.slice(0, -1) + tab[(last & ~3) | ((last & 3) ^ x)])];
    for (const v of variants) {
        const c = await wsOpen(srv, { session: v, userId: 17 });
        assert.equal(c.info.authorized, false, `a re-spelt revoked token authorizes: ${v.slice(-6)}`);
        assert.equal(c.info.data, '');
        await c.close();
    }
    assert.deepEqual(await rows(db, 'SELECT * FROM users_auth WHERE id = 17'), [], 'no key was created');
    await Promise.all([again.close(), bystander.close()]);
}));

test('auth by JWT with a 4 KiB [main] password (audit L1): accepted with the whole secret, refused with a cut one', async () => {
    const pw = 'p'.repeat(4096);
    const big = await startServer({ password: pw });
    try {
        await big.wrap(async () => {
            const ok = await wsOpen(big, { session: signJwt({ user_id: 3, exp: now() + 60 }, `${pw}0`), userId: 3 });
            assert.equal(ok.info.authorized, true, JSON.stringify(ok.info));
            const cut = await wsOpen(big, { session: signJwt({ user_id: 3, exp: now() + 60 }, pw.slice(0, 511)), userId: 3 });
            assert.equal(cut.info.authorized, false, 'a token signed with the first 511 bytes');
            await Promise.all([ok.close(), cut.close()]);
        })();
    } finally {
        await big.stop(); // asserts exit 0 and no sanitizer report
    }
});

test('DELETE FROM users_auth disconnects every open connection of that user', srv.wrap(async () => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (12, 'hash12'), (13, 'hash13')");
    const a = await wsOpen(srv, { session: 'hash12', userId: 12 });
    const b = await wsOpen(srv, { session: 'hash12', userId: 12 });
    const other = await wsOpen(srv, { session: 'hash13', userId: 13 });
    assert.ok(a.info.authorized && b.info.authorized && other.info.authorized);
    const [r] = await db.query('DELETE FROM users_auth WHERE id = 12');
    assert.equal(r.affectedRows, 1);
    await a.waitClosed();
    await b.waitClosed();
    assert.ok(other.isOpen, 'user 13 was disconnected too');
    await other.sync();
    const again = await wsOpen(srv, { session: 'hash12', userId: 12 });
    assert.equal(again.info.authorized, false, 'the deleted hash still authorizes');
    await Promise.all([other.close(), again.close()]);
}));

// ---- delivery -----------------------------------------------------------------------------------

test('delivery: INSERT INTO pipes_messages reaches every subscriber, not other pipes, not other tenants', srv.wrap(async () => {
    const subs = await Promise.all([1, 2, 3].map((i) => wsOpen(srv, { name: `sub${i}` })));
    for (const s of subs) await s.subscribe('deliv_pipe');
    const other = await wsOpen(srv, { name: 'other-pipe' });
    await other.subscribe('deliv_other');
    const tenant5 = await wsOpen(srv, { devId: 5, name: 'dev5' });
    await tenant5.subscribe('deliv_pipe');
    for (let i = 0; i < 3; i++) await publish(db, 'deliv_pipe', 'ev', `msg${i}`);
    for (const s of subs) {
        let lastId = 0;
        for (let i = 0; i < 3; i++) {
            const m = await s.nextOn('deliv_pipe');
            assert.equal(m.data, `msg${i}`);
            assert.equal(m.event, 'ev');
            assert.equal(typeof m.id, 'number');
            assert.ok(m.id > lastId, `ids increase: ${m.id} after ${lastId}`);
            lastId = m.id;
        }
    }
    // fences: a message each of them is subscribed to, published after the others
    await publish(db, 'deliv_other', 'ev', 'fence');
    assert.equal((await other.nextOn('deliv_other')).data, 'fence');
    assert.deepEqual(other.pending((m) => m.pipe === 'deliv_pipe'), [], 'a subscriber of another pipe got deliv_pipe');
    await publish(db5, 'deliv_pipe', 'ev', 'from tenant 5');
    const m5 = await tenant5.nextOn('deliv_pipe');
    assert.equal(m5.data, 'from tenant 5', 'dev_id 5 received a message of dev_id 0');
    for (const s of subs) await s.sync();
    for (const s of subs) assert.deepEqual(s.pending((m) => m.pipe === 'deliv_pipe'), [], 'dev_id 0 received a message of dev_id 5');
    await Promise.all([...subs, other, tenant5].map((x) => x.close()));
}));

// ---- web_pipe2 ----------------------------------------------------------------------------------

test('web_pipe2: other subscribers get {data, event, pipe, user_id}; the sender gets _answer_to_<pipe>', srv.wrap(async () => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (21, 'hash21'), (22, 'hash22')");
    const a = await wsOpen(srv, { session: 'hash21', userId: 21, name: 'a21' });
    const b = await wsOpen(srv, { session: 'hash22', userId: 22, name: 'b22' });
    const anon = await wsOpen(srv, { name: 'anon' });
    for (const c of [a, b, anon]) await c.subscribe('web_chat', 'webauth_room');
    const text = '{"text":"hi \\"there\\" \u00e9"}';
    a.send(`web_pipe2\nweb_chat\nsay\n*\n${text}`);
    const got = await b.nextOn('web_chat', 'say');
    assert.equal(got.data, text);
    assert.equal(got.user_id, 21);
    assert.equal(got.pipe, 'web_chat');
    assert.equal((await anon.nextOn('web_chat', 'say')).user_id, 21);
    const ans = await a.nextOn('_answer_to_web_chat');
    assert.equal(ans.data.number_messages, 2, JSON.stringify(ans));
    assert.equal(ans.event, 'answer');
    await a.sync();
    assert.deepEqual(a.pending((m) => m.pipe === 'web_chat'), [], 'the sender got its own message back');
    // @web_: the sender is hidden
    a.send('web_pipe2\n@web_chat\nsay\n*\nanonymous');
    const hidden = await b.nextOn('web_chat', 'say');
    assert.equal(hidden.data, 'anonymous');
    assert.equal(hidden.user_id, 0, '@web_ hides the sender');
    await a.nextOn('_answer_to_web_chat');
    // webauth_: an authorized sender may, an anonymous one may not
    b.send('web_pipe2\nwebauth_room\nsay\n*\nauthed');
    assert.equal((await a.nextOn('webauth_room', 'say')).user_id, 22);
    anon.send('web_pipe2\nwebauth_room\nsay\n*\nnope');
    const e1 = await anon.nextError();
    assert.match(JSON.stringify(e1.data), /webauth_/);
    // not a web_ pipe
    a.send('web_pipe2\nchat_plain\nsay\n*\nnope');
    const e2 = await a.nextError();
    assert.match(JSON.stringify(e2.data), /web_/);
    // audit M1: a page cannot send the server's in / end on a Video API call pipe
    for (const c of [a, b]) await c.subscribe('web_syscall_vA_room1');
    for (const ev of ['end', 'in']) {
        a.send(`web_pipe2\nweb_syscall_vA_room1\n${ev}\n*\nnope`);
        const e = await a.nextError();
        assert.match(JSON.stringify(e.data), /sent by the server only/);
    }
    a.send('web_pipe2\nweb_syscall_vA_room1\nout\n*\n{"status":"busy"}'); // pages do send out
    assert.equal((await b.nextOn('web_syscall_vA_room1', 'out')).user_id, 21);
    await Promise.all([a.sync(), b.sync()]);
    assert.deepEqual([...a.pending((m) => m.data === 'nope'), ...b.pending((m) => m.data === 'nope')], [], 'a refused message was delivered');
    await Promise.all([a, b, anon].map((x) => x.close()));
}));

// ---- private messages ---------------------------------------------------------------------------

test('users_messages: reaches every connection of the user; queued while offline, flushed on connect', srv.wrap(async () => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (31, 'hash31')");
    const a = await wsOpen(srv, { session: 'hash31', userId: 31 });
    const b = await wsOpen(srv, { session: 'hash31', userId: 31 });
    await db.query("INSERT INTO users_messages (id, event, message) VALUES (31, 'pm', 'live message')");
    for (const c of [a, b]) {
        const m = await c.nextOn('msg', 'pm');
        assert.equal(m.data, 'live message');
        assert.notEqual(m.fromQueue, true);
    }
    assert.deepEqual(await rows(db, 'SELECT * FROM users_messages WHERE id = 31'), [], 'a delivered message was queued');
    await Promise.all([a.close(), b.close()]);
    // offline once users_time says so (the server has processed both closes)
    await waitUntil(async () => {
        const r = await rows(db, 'SELECT * FROM users_time WHERE id = 31');
        return r.length === 1 && r[0].time > 0;
    }, { what: 'user 31 offline in users_time' });
    await db.query("INSERT INTO users_messages (id, event, message) VALUES (31, 'pm', 'queued one'), (31, 'pm2', 'queued two')");
    const q = await rows(db, 'SELECT * FROM users_messages WHERE id = 31');
    assert.equal(q.length, 2, `queued: ${JSON.stringify(q)}`);
    const c = await wsOpen(srv, { session: 'hash31', userId: 31, waitInfo: false });
    const first = await c.next(() => true, { what: 'serverInfo' });
    assert.equal(first.event, 'serverInfo');
    assert.equal(first.authorized, true);
    const m1 = await c.next(() => true, { what: 'the first queued message' });
    const m2 = await c.next(() => true, { what: 'the second queued message' });
    for (const [m, ev, data] of [[m1, 'pm', 'queued one'], [m2, 'pm2', 'queued two']]) {
        assert.equal(m.pipe, 'msg', JSON.stringify(m));
        assert.equal(m.event, ev);
        assert.equal(m.data, data);
        assert.equal(m.fromQueue, true);
    }
    assert.deepEqual(await rows(db, 'SELECT * FROM users_messages WHERE id = 31'), [], 'the queue is not empty after the flush');
    await c.close();
}));

test('offline queue with ack=1: queued messages carry queue_id and stay queued until msg_ack; only the owner can ack them', srv.wrap(async () => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (32, 'hash32'), (33, 'hash33')");
    await db.query("INSERT INTO users_messages (id, event, message) VALUES (32, 'pm', 'one'), (32, 'pm', 'two')");
    const url = () => `${wsUrl(srv, { session: 'hash32', userId: 32 })}&ack=1`;
    const take = async (c) => {
        const a = await c.next((m) => m.pipe === 'msg', { what: 'queued one' });
        const b = await c.next((m) => m.pipe === 'msg', { what: 'queued two' });
        return [a, b];
    };
    // the page dies before it acks: nothing is lost, the next connection gets both again
    let c = await wsOpen(srv, { url: url() });
    const [a, b] = await take(c);
    assert.deepEqual([a.data, b.data], ['one', 'two']);
    assert.ok(Number.isInteger(a.queue_id) && Number.isInteger(b.queue_id) && a.queue_id !== b.queue_id, JSON.stringify([a, b]));
    await c.close();
    assert.equal((await rows(db, 'SELECT * FROM users_messages WHERE id = 32')).length, 2, 'unacked messages stay queued');
    c = await wsOpen(srv, { url: url() });
    const [a2, b2] = await take(c);
    assert.deepEqual([a2.queue_id, b2.queue_id], [a.queue_id, b.queue_id], 'the same messages, the same ids');
    // another user cannot ack them away
    const other = await wsOpen(srv, { session: 'hash33', userId: 33 });
    other.send(`msg_ack\n${a.queue_id}\n${b.queue_id}`);
    await other.sync();
    assert.equal((await rows(db, 'SELECT * FROM users_messages WHERE id = 32')).length, 2, "another user's ack removes nothing");
    // the owner acks the first: only the second is left
    c.send(`msg_ack\n${a.queue_id}`);
    await c.sync();
    assert.deepEqual((await rows(db, 'SELECT message FROM users_messages WHERE id = 32')).map((r) => r.message), ['two']);
    // a bad ack is an error, the connection goes on
    c.send('msg_ack\nx');
    const err = await c.nextError();
    assert.match(JSON.stringify(err), /msg_ack/);
    await Promise.all([c.close(), other.close()]);
}));

// ---- history ------------------------------------------------------------------------------------

test('pipe_log: the newest `length` messages, oldest first, with fromQueue, history and (marker=1) the marker', srv.wrap(async () => {
    await db.query("INSERT INTO pipes_settings (name, length) VALUES ('hist_pipe', 3)");
    for (let i = 1; i <= 5; i++) await publish(db, 'hist_pipe', `ev${i}`, `m${i}`);
    for (const marks of [false, true]) {
        const c = await wsOpen(srv, marks ? { url: `${wsUrl(srv)}&marker=1` } : {});
        c.send('pipe_log\nhist_pipe\nmk42\n');
        const got = [];
        for (let i = 0; i < 3; i++) got.push(await c.nextOn('hist_pipe'));
        assert.deepEqual(got.map((m) => m.data), ['m3', 'm4', 'm5']);
        assert.deepEqual(got.map((m) => m.event), ['ev3', 'ev4', 'ev5']);
        for (const m of got) {
            assert.equal(m.fromQueue, true);
            assert.equal(m.history, true);
            assert.equal(m.marker, marks ? 'mk42' : undefined, JSON.stringify(m));
            assert.equal(typeof m.message_send_time, 'number');
        }
        await c.sync();
        assert.deepEqual(c.pending((m) => m.pipe === 'hist_pipe'), [], 'more than `length` messages');
        await c.close();
    }
}));

// Guards CppComet's own browser client (api/CometServerApi.js of CppComet/comet-server, 4.02):
// get_pipe_log(pipe, cb) subscribes cb to <pipe> and sends pipe_log with a random marker; its
// msg_cultivate emits the signals <pipe> and <pipe>.<event>, and every subscription callback
// returns early when server_info.marker is set and is not the tab's custom_id. So history that
// carries the request's marker never reaches subscription('<pipe>.<event>'). Here the client's
// routing is replayed on the frames as they come off the wire (its file is not in the repo).
test('CppComet client: get_pipe_log history reaches subscription(\'pipe.event\') (no marker unless marker=1)', srv.wrap(async () => {
    await db.query("INSERT INTO pipes_settings (name, length) VALUES ('cpp_hist', 10)");
    await publish(db, 'cpp_hist', 'chat', '{"text":"one"}');
    await publish(db, 'cpp_hist', 'chat', '{"text":"two"}');
    const tabCustomId = '4839201735'; // the client's custom_id: 10 random digits
    const requestMarker = '7364519028'; // getCustomString(): another 10 random digits
    /** The signals CppComet's client emits for one frame line and whether each callback runs. */
    const deliveredTo = (line) => {
        const msg = JSON.parse(line.replace(/\\'/g, "'"));
        if (msg.data === undefined) return [];
        const signals = [];
        if (msg.pipe !== undefined) {
            signals.push(msg.pipe);
            if (typeof msg.event === 'string' || typeof msg.event === 'number') signals.push(`${msg.pipe}.${msg.event}`);
        }
        const passes = msg.marker === undefined || msg.marker === tabCustomId;
        return passes ? signals : [];
    };
    const c = await wsOpen(srv);
    c.send(`pipe_log\ncpp_hist\n${requestMarker}\n`);
    const got = [await c.nextOn('cpp_hist'), await c.nextOn('cpp_hist')];
    assert.equal(got[1].id, got[0].id + 1);
    // the frames as the client splits them: trimmed, one JSON object per line
    const lines = c.raw.map((b) => b.toString('utf8')).filter((t) => t.includes('"cpp_hist"'))
        .flatMap((t) => t.replace(/^\s+|\s+$/, '').split('\n'));
    assert.equal(lines.length, 2);
    assert.deepEqual(lines.map(deliveredTo), [['cpp_hist', 'cpp_hist.chat'], ['cpp_hist', 'cpp_hist.chat']],
        'both history messages reach the pipe and pipe.event subscribers');
    for (const m of got) {
        assert.equal(m.history, true);
        assert.equal(m.fromQueue, true);
    }
    await c.close();
}));

// ---- recovery -----------------------------------------------------------------------------------

/** A subscriber sees ids up to N, leaves; 5 more are published; a new one asks pipe_since N. */
async function recoveryCase(server, conn, pipe) {
    const a = await wsOpen(server, { name: `${pipe}-first` });
    await a.subscribe(pipe);
    await publish(conn, pipe, 'e', 'seen1');
    await publish(conn, pipe, 'e', 'seen2');
    await a.nextOn(pipe);
    const last = await a.nextOn(pipe);
    assert.equal(last.data, 'seen2');
    assert.equal(typeof last.id, 'number', `messages carry an id: ${JSON.stringify(last)}`);
    await a.close();
    for (let i = 1; i <= 5; i++) await publish(conn, pipe, 'e', `missed${i}`);
    const b = await wsOpen(server, { name: `${pipe}-again` });
    await b.subscribe(pipe);
    b.send(`pipe_since\n${pipe}\n${last.id}`);
    await b.sync();
    const got = b.pending((m) => m.pipe === pipe);
    assert.deepEqual(got.map((m) => m.data), ['missed1', 'missed2', 'missed3', 'missed4', 'missed5'],
        `pipe_since ${last.id}: ${JSON.stringify(got)}`);
    for (let i = 1; i < got.length; i++) assert.ok(got[i].id > got[i - 1].id, 'ids increase');
    assert.ok(got[0].id > last.id);
    // and live messages go on after the replay
    await publish(conn, pipe, 'e', 'live');
    const live = await b.next((m) => m.pipe === pipe && m.data === 'live');
    assert.ok(live.id > got[4].id);
    await b.close();
}

test('pipe_since: a reconnecting client gets exactly the messages it missed, in order', srv.wrap(async () => {
    await recoveryCase(srv, db, 'rec_pipe');
}));

test('pipe_since: beyond [ws] recovery_messages (2) the stored history fills the gap', rec.wrap(async () => {
    await recDb.query("INSERT INTO pipes_settings (name, length) VALUES ('rec_hist', 20)");
    await recoveryCase(rec, recDb, 'rec_hist');
}));

// ---- presence -----------------------------------------------------------------------------------

test('presence: user_status_<id> online/offline events and users_time', srv.wrap(async () => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (9, 'hash9')");
    const watcher = await wsOpen(srv, { name: 'watcher' });
    await watcher.subscribe('user_status_9');
    const u1 = await wsOpen(srv, { session: 'hash9', userId: 9 });
    const on = await watcher.nextOn('user_status_9', 'online');
    assert.equal(on.data, 'online');
    assert.deepEqual(await rows(db, 'SELECT * FROM users_time WHERE id = 9'), [{ id: 9, time: 0 }], 'online: users_time 0');
    const u2 = await wsOpen(srv, { session: 'hash9', userId: 9 });
    await u1.close();
    await watcher.sync();
    assert.deepEqual(watcher.pending((m) => m.pipe === 'user_status_9'), [], 'an event while a connection of user 9 remains');
    const before = now();
    await u2.close();
    const off = await watcher.nextOn('user_status_9', 'offline');
    assert.equal(off.data, 'offline');
    const t = await rows(db, 'SELECT * FROM users_time WHERE id = 9');
    assert.equal(t.length, 1);
    assert.ok(t[0].time >= before - 1 && t[0].time <= now() + 1, `users_time after the last close: ${JSON.stringify(t)}`);
    await watcher.close();
}));

test('presence: track_ pipes, track_pipe_users, pipe_count, CometQL pipes and users_in_pipes', srv.wrap(async () => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (41, 'hash41'), (42, 'hash42')");
    const ua = 'ccomet-test-agent/1.0 (integration)';
    const x = await wsOpen(srv, { session: 'hash41', userId: 41, uuid: uuidOf(41), headers: { 'User-Agent': ua } });
    const y = await wsOpen(srv, { session: 'hash42', userId: 42, uuid: uuidOf(42), headers: { 'User-Agent': ua } });
    await x.subscribe('track_room');
    await y.subscribe('track_room', 'web_lobby');
    const ev = await x.nextOn('track_room', 'subscription');
    assert.deepEqual(ev.data, { user_id: 42, uuid: uuidOf(42) });
    await y.sync();
    assert.deepEqual(y.pending((m) => m.pipe === 'track_room'), [], 'a subscriber got its own subscription event');

    y.send('track_pipe_users\ntrack_room\nmkT');
    const list = await y.next((m) => m.pipe === '_answer' && m.marker === 'mkT', { what: 'the track_pipe_users answer' });
    assert.equal(list.event, 'answer');
    assert.deepEqual([...list.data].sort((p, q) => p.user_id - q.user_id),
        [{ user_id: 41, uuid: uuidOf(41) }, { user_id: 42, uuid: uuidOf(42) }]);

    y.send('pipe_count\ntrack_room\nmkC');
    const cnt = await y.next((m) => m.pipe === '_answer_pipe_count' && m.marker === 'mkC', { what: 'the pipe_count answer' });
    assert.equal(cnt.data.user_in_pipe, 2, JSON.stringify(cnt));

    assert.deepEqual(await rows(db, "SELECT * FROM pipes WHERE name = 'track_room'"), [{ name: 'track_room', users: 2 }]);
    const members = (await rows(db, "SELECT * FROM users_in_pipes WHERE name = 'track_room'")).sort((p, q) => p.user_id - q.user_id);
    assert.equal(members.length, 2, JSON.stringify(members));
    for (const [m, id] of [[members[0], 41], [members[1], 42]]) {
        assert.equal(m.user_id, id);
        assert.equal(m.user_uuid, uuidOf(id));
        assert.equal(m.ip, '127.0.0.1');
        assert.equal(m.user_agent, ua);
    }

    // leaving the pipe: unsubscription to the others
    y.send('subscription\nweb_lobby');
    const un = await x.nextOn('track_room', 'unsubscription');
    assert.deepEqual(un.data, { user_id: 42, uuid: uuidOf(42) });
    // closing the connection: unsubscription too
    await y.subscribe('track_room');
    await x.nextOn('track_room', 'subscription');
    await y.close();
    const un2 = await x.nextOn('track_room', 'unsubscription');
    assert.equal(un2.data.user_id, 42);
    x.send('pipe_count\ntrack_room\nmkD');
    assert.equal((await x.next((m) => m.marker === 'mkD')).data.user_in_pipe, 1);
    await x.close();
}));

// ---- the subscription command -------------------------------------------------------------------

test('subscription replaces the set; a track_ pipe kept in both sets causes no churn', srv.wrap(async () => {
    const c = await wsOpen(srv, { name: 'resub', uuid: uuidOf(51) });
    await c.subscribe('sub_a', 'sub_b');
    await c.subscribe('sub_b', 'sub_c');
    await publish(db, 'sub_a', 'e', 'to a');
    await publish(db, 'sub_b', 'e', 'to b');
    await publish(db, 'sub_c', 'e', 'to c');
    assert.equal((await c.nextOn('sub_b')).data, 'to b');
    assert.equal((await c.nextOn('sub_c')).data, 'to c');
    assert.deepEqual(c.pending((m) => m.pipe === 'sub_a'), [], 'still subscribed to sub_a after it left the set');

    const member = await wsOpen(srv, { name: 'member' });
    await member.subscribe('track_churn');
    await c.subscribe('track_churn', 'sub_x');
    await c.subscribe('track_churn', 'sub_y');
    await c.subscribe('sub_y', 'track_churn'); // same set, other order
    // a fence on the member's connection: a third client joins
    const third = await wsOpen(srv, { name: 'third', uuid: uuidOf(53) });
    await third.subscribe('track_churn');
    await member.next((m) => m.pipe === 'track_churn' && m.data?.uuid === uuidOf(53), { what: "the third client's subscription" });
    const churn = member.pending((m) => m.pipe === 'track_churn');
    assert.deepEqual(churn.map((m) => `${m.event}:${m.data?.uuid}`), [`subscription:${uuidOf(51)}`],
        'exactly one subscription event for a client that kept the track_ pipe');
    await Promise.all([c, member, third].map((x) => x.close()));
}));

// ---- compatibility ------------------------------------------------------------------------------

test('a v=3.x client gets event_name and api_data', srv.wrap(async () => {
    const old = await wsOpen(srv, { v: '3.24', name: 'v3' });
    const cur = await wsOpen(srv, { name: 'v4' });
    await old.subscribe('compat_pipe');
    await cur.subscribe('compat_pipe');
    await publish(db, 'compat_pipe', 'evt', 'payload');
    const m = await old.nextOn('compat_pipe');
    assert.equal(m.event, 'evt');
    assert.equal(m.event_name, 'evt');
    assert.equal(m.api_data, 'for major_version < 4');
    assert.equal(m.data, 'payload');
    const m4 = await cur.nextOn('compat_pipe');
    assert.equal(m4.event_name, undefined, 'a v4 client got event_name');
    assert.equal(m4.api_data, undefined);
    await Promise.all([old.close(), cur.close()]);
}));

test('v=3.x: event_name and api_data on private, web_pipe2, history and track_ messages too', srv.wrap(async () => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (61, 'hash61')");
    await db.query("INSERT INTO pipes_settings (name, length) VALUES ('web_v3hist', 5)");
    const old = await wsOpen(srv, { session: 'hash61', userId: 61, v: '3.24', name: 'v3u61', uuid: uuidOf(61) });
    assert.equal(old.info.authorized, true);
    const peer = await wsOpen(srv, { name: 'v4peer', uuid: uuidOf(62) });
    await old.subscribe('web_v3hist', 'track_v3');
    // every kind is checked, and all the kinds that lack the fields are reported together
    const problems = [];
    const legacy = (m, what) => {
        if (m.event_name !== m.event || m.api_data !== 'for major_version < 4') problems.push(`${what}: ${JSON.stringify(m)}`);
    };
    await db.query("INSERT INTO users_messages (id, event, message) VALUES (61, 'pm', 'private')");
    legacy(await old.nextOn('msg', 'pm'), 'users_messages');
    peer.send('web_pipe2\nweb_v3hist\nsay\n*\nfrom a browser');
    legacy(await old.nextOn('web_v3hist', 'say'), 'web_pipe2');
    old.send('pipe_log\nweb_v3hist\nmkv3\n');
    legacy(await old.next((m) => m.pipe === 'web_v3hist' && m.history === true, { what: 'the pipe_log row' }), 'pipe_log');
    await peer.subscribe('track_v3');
    const ev = await old.nextOn('track_v3', 'subscription');
    legacy(ev, 'track_ subscription event');
    if (typeof ev.data !== 'string') problems.push(`track_ event data is not JSON text (CppComet stringifies non-string data for v < 4): ${JSON.stringify(ev)}`);
    else assert.deepEqual(JSON.parse(ev.data), { user_id: 0, uuid: uuidOf(62) });
    await Promise.all([old.close(), peer.close()]);
    assert.deepEqual(problems, [], `messages to a v=3.24 client without event_name/api_data:\n${problems.join('\n')}`);
}));

test('user_data: the users_data row of a user, with the marker', srv.wrap(async () => {
    await db.query("INSERT INTO users_data (id, data) VALUES (71, 'profile of 71')");
    const c = await wsOpen(srv);
    c.send('user_data\nmkU\n71');
    const a = await c.next((m) => m.marker === 'mkU', { what: 'the user_data answer' });
    assert.equal(a.pipe, '_answer');
    assert.equal(a.event, 'answer');
    assert.deepEqual(a.data, { user_data: 'profile of 71', user_id: 71 });
    c.send('user_data\nmkV\n72');
    const b = await c.next((m) => m.marker === 'mkV', { what: 'the user_data answer for a user without data' });
    assert.deepEqual(b.data, { user_data: '', user_id: 72 });
    await c.close();
}));

test('users_messages and presence are per tenant', srv.wrap(async () => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (81, 'root81')");
    await db5.query("INSERT INTO users_auth (id, hash) VALUES (81, 'five81')");
    const root = await wsOpen(srv, { session: 'root81', userId: 81, name: 'root81' });
    const five = await wsOpen(srv, { session: 'five81', userId: 81, devId: 5, name: 'five81' });
    assert.equal(root.info.authorized, true);
    assert.equal(five.info.authorized, true, 'user 81 of dev_id 5 with its own hash');
    const wrong = await wsOpen(srv, { session: 'root81', userId: 81, devId: 5, name: 'wrongtenant' });
    assert.equal(wrong.info.authorized, false, "dev_id 0's hash authorized in dev_id 5");
    await db5.query("INSERT INTO users_messages (id, event, message) VALUES (81, 'pm', 'to five')");
    await db.query("INSERT INTO users_messages (id, event, message) VALUES (81, 'pm', 'to root')");
    assert.equal((await five.nextOn('msg', 'pm')).data, 'to five');
    assert.equal((await root.nextOn('msg', 'pm')).data, 'to root');
    await Promise.all([five.sync(), root.sync()]);
    assert.deepEqual(five.pending((m) => m.pipe === 'msg'), []);
    assert.deepEqual(root.pending((m) => m.pipe === 'msg'), []);
    // presence: a dev_id 5 watcher of user_status_81 sees only its tenant's user 81
    const watch5 = await wsOpen(srv, { devId: 5, name: 'watch5' });
    await watch5.subscribe('user_status_81');
    await root.close();
    await five.close();
    const off = await watch5.nextOn('user_status_81', 'offline');
    assert.equal(off.data, 'offline');
    await watch5.sync();
    assert.deepEqual(watch5.pending((m) => m.pipe === 'user_status_81'), [], "dev_id 0's user 81 produced an event in dev_id 5");
    await Promise.all([wrong.close(), watch5.close()]);
}));

test('[ws] metrics = off: /metrics answers 403 (audit L7; the default serves loopback only); /info still answers', rec.wrap(async () => {
    const r = await httpGet(rec.wsPort, '/metrics');
    assert.equal(r.status, 403, r.statusLine);
    assert.doesNotMatch(r.body.toString(), /ccomet_/);
    assert.equal((await httpGet(rec.wsPort, '/info')).status, 200);
}));
