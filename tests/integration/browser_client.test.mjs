// The JS client (web/CometServerApi.js) in real headless Chromium against the real server.
//
// The server serves a temp base_dir holding a copy of web/CometServerApi.js and a small test page
// (t.html) that loads it from /CometServerApi.js, so every page is same-origin with the comet
// server and connects to location.host. The tests drive `cometApi` with page.evaluate; the
// backend side is CometQL over mysql2.
//
// Dropping a connection (missed-message recovery): the page passes the client a WebSocket
// constructor through the documented start() option `WebSocket` (meant for tests). It wraps the
// browser's real WebSocket and has a gate: T.gate.drop() closes the real sockets (the client
// sees an ordinary close and starts reconnecting), and while the gate is held a new connection
// is parked until T.gate.release(). So the test knows the client was really disconnected while
// the backend published, and decides when it comes back: no timing guesses. (CDP's offline
// emulation does not reliably cut a loopback WebSocket, and closing cometApi's internal socket
// would not stop the reconnect racing the publisher.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, copyFileSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, ROOT } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { launchBrowser, browserTest, signJwt, waitSubscribers, WAIT_MS } from './browser.mjs';

const TEST_PAGE = `<!doctype html>
<meta charset="utf-8"><title>ccomet client test</title>
<script src="/CometServerApi.js"></script>
<script>
// T: what the tests read back. Every callback records {tag, data, info}.
window.T = {
  inbox: [],
  events: [],
  rec(tag) {
    return (e) => T.inbox.push({ tag, data: e.data, info: e.server_info });
  },
  of(tag) { return T.inbox.filter((m) => m.tag === tag); },
  // start() with node = this server; resolves with the start callback's {authorized}
  start(opts) {
    return new Promise((resolve) => cometApi.start(Object.assign({ node: location.host }, opts), resolve));
  },
  // The gated WebSocket (see the file comment).
  gate: {
    held: false,
    live: [],
    parked: [],
    opened: 0,
    drop() { for (const w of T.gate.live.splice(0)) w.real.close(); },
    release() {
      T.gate.held = false;
      for (const go of T.gate.parked.splice(0)) go();
    },
  },
};
function GatedWS(url) {
  const self = this;
  this.url = url;
  this.readyState = 0;
  this.real = null;
  this.cancelled = false;
  const go = () => {
    if (self.cancelled) return;
    const ws = new WebSocket(url);
    self.real = ws;
    T.gate.live.push(self);
    T.gate.opened++;
    ws.onopen = (e) => { self.readyState = 1; if (self.onopen) self.onopen(e); };
    ws.onmessage = (e) => { if (self.onmessage) self.onmessage(e); };
    ws.onerror = (e) => { if (self.onerror) self.onerror(e); };
    ws.onclose = (e) => {
      self.readyState = 3;
      const i = T.gate.live.indexOf(self);
      if (i >= 0) T.gate.live.splice(i, 1);
      if (self.onclose) self.onclose(e);
    };
  };
  if (T.gate.held) T.gate.parked.push(go); else go();
}
GatedWS.prototype.send = function (t) { this.real.send(t); };
GatedWS.prototype.close = function () { this.cancelled = true; if (this.real) this.real.close(); };
for (const ev of ['connect', 'disconnect', 'reconnecting', 'auth', 'error', 'leader']) {
  cometApi.on(ev, (a) => T.events.push({ ev, a: a === undefined ? null : JSON.parse(JSON.stringify(a)) }));
}
</script>
<p>ccomet client test page</p>
`;

const baseDir = mkdtempSync(path.join(os.tmpdir(), 'ccomet-web-'));
copyFileSync(path.join(ROOT, 'web', 'CometServerApi.js'), path.join(baseDir, 'CometServerApi.js'));
writeFileSync(path.join(baseDir, 't.html'), TEST_PAGE);

const srv = await startServer({ baseDir });
const PAGE = srv.httpUrl('/t.html');
const SECRET = `${srv.password}0`; // [main] password + dev_id
let browser;
let db;

before(async () => {
    browser = await launchBrowser();
    db = await mysql2Connect(srv);
    db.on('error', () => { /* a test's failure reports it */ });
});
after(async () => {
    try {
        if (browser) await browser.close();
        if (db) await db.end().catch(() => db.destroy());
    } finally {
        rmSync(baseDir, { recursive: true, force: true });
        await srv.stop();
    }
});

const bt = (fn) => browserTest(srv, () => browser, fn);

/** Waits until the page's T.inbox holds >= n entries tagged `tag`; returns them. */
async function inbox(page, tag, n = 1, timeout = WAIT_MS) {
    try {
        await page.waitForFunction(([tg, k]) => T.of(tg).length >= k, [tag, n], { timeout, polling: 20 });
    } catch (e) {
        const have = await page.evaluate((tg) => JSON.stringify(T.of(tg)), tag).catch(() => '?');
        throw new Error(`waiting for ${n} message(s) tagged ${tag}: ${e.message.split('\n')[0]}; have ${have}`);
    }
    return page.evaluate((tg) => T.of(tg), tag);
}

const now = () => Math.floor(Date.now() / 1000);

// ---- (a) authorization --------------------------------------------------------------------------

test('auth: a users_auth hash authorizes; getRealUserKey is the hash; a wrong hash does not', bt(async (s) => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (1, 'hash_of_user_one')");
    const page = await s.page('u1', PAGE);
    const r = await page.evaluate(async () => {
        let ok = 0;
        let fail = 0;
        cometApi.onAuthSuccess(() => ok++);
        cometApi.onAuthFail(() => fail++);
        const started = await T.start({ user_id: 1, user_key: 'hash_of_user_one' });
        await new Promise((res) => setTimeout(res, 0)); // let the callbacks run
        return { started, ok, fail, isAuthorized: cometApi.isAuthorized(), key: cometApi.getRealUserKey(), userId: cometApi.getUserId() };
    });
    assert.deepEqual(r, { started: { authorized: true }, ok: 1, fail: 0, isAuthorized: true, key: 'hash_of_user_one', userId: 1 });
    const [rows] = await db.query('SELECT time FROM users_time WHERE id = 1');
    assert.equal(rows[0]?.time, 0, `users_time of user 1 while the page is open: ${JSON.stringify(rows)}`);

    const bad = await s.page('u1-wrong', PAGE);
    const r2 = await bad.evaluate(async () => {
        let fail = 0;
        cometApi.onAuthFalill(() => fail++);
        const started = await T.start({ user_id: 1, user_key: 'not_the_hash' });
        await new Promise((res) => setTimeout(res, 0));
        return { started, fail, isAuthorized: cometApi.isAuthorized(), key: cometApi.getRealUserKey() };
    });
    assert.deepEqual(r2, { started: { authorized: false }, fail: 1, isAuthorized: false, key: '' });
}));

test('auth: a valid JWT authorizes, an expired one fails, a revoked one fails on the next start', bt(async (s) => {
    const good = signJwt({ user_id: 2, exp: now() + 3600 }, SECRET);
    const page = await s.page('jwt', PAGE);
    const r = await page.evaluate(async (token) => {
        window.authCount = { ok: 0, fail: 0 };
        cometApi.onAuthSuccess(() => authCount.ok++);
        cometApi.onAuthFail(() => authCount.fail++);
        const started = await T.start({ user_id: 2, user_key: token });
        await new Promise((res) => setTimeout(res, 0));
        return { started, isAuthorized: cometApi.isAuthorized(), key: cometApi.getRealUserKey(), count: authCount };
    }, good);
    assert.deepEqual(r.started, { authorized: true });
    assert.equal(r.isAuthorized, true);
    assert.deepEqual(r.count, { ok: 1, fail: 0 });
    // The first JWT login creates the user's real key; getRealUserKey() returns the session's SIP
    // credential made from it (audit H2), never the key itself.
    const [rows] = await db.query('SELECT hash FROM users_auth WHERE id = 2');
    assert.equal(rows.length, 1, 'users_auth row created by the JWT login');
    assert.match(rows[0].hash, /^[A-Za-z0-9]{32}$/);
    assert.match(r.key, /^[0-9a-f]{32}$/);
    assert.notEqual(r.key, rows[0].hash);

    // expired: onAuthFalill (CppComet's spelling) fires, not authorized
    const expired = signJwt({ user_id: 2, exp: now() - 60 }, SECRET);
    const p2 = await s.page('jwt-expired', PAGE);
    const r2 = await p2.evaluate(async (token) => {
        let fail = 0;
        let ok = 0;
        cometApi.onAuthFalill(() => fail++);
        cometApi.onAuthSuccess(() => ok++);
        const started = await T.start({ user_id: 2, user_key: token });
        await new Promise((res) => setTimeout(res, 0));
        return { started, fail, ok, isAuthorized: cometApi.isAuthorized() };
    }, expired);
    assert.deepEqual(r2, { started: { authorized: false }, fail: 1, ok: 0, isAuthorized: false });

    // a JWT signed with another secret
    const forged = signJwt({ user_id: 2, exp: now() + 3600 }, 'wrong secret');
    const r3 = await p2.evaluate(async (token) => {
        cometApi.stop();
        const started = await T.start({ user_id: 2, user_key: token });
        return { started, isAuthorized: cometApi.isAuthorized() };
    }, forged);
    assert.deepEqual(r3, { started: { authorized: false }, isAuthorized: false });

    // revoked: the same page stops and starts again with the now revoked token
    await db.query('INSERT INTO revoked_tokens (token) VALUES (?)', [good]);
    const r4 = await page.evaluate(async (token) => {
        cometApi.stop();
        const started = await T.start({ user_id: 2, user_key: token });
        await new Promise((res) => setTimeout(res, 0));
        return { started, isAuthorized: cometApi.isAuthorized(), count: authCount };
    }, good);
    assert.deepEqual(r4.started, { authorized: false });
    assert.equal(r4.isAuthorized, false);
    assert.equal(r4.count.fail >= 1, true, `onAuthFail after the revocation: ${JSON.stringify(r4.count)}`);
}));

// ---- (b) subscription and delivery from CometQL ----------------------------------------------------

test('subscription: pipes_messages INSERT reaches pipe and pipe.event callbacks, data parsed', bt(async (s) => {
    const page = await s.page('sub', PAGE);
    await page.evaluate(async () => {
        cometApi.subscription('news_feed', T.rec('pipe'));
        cometApi.subscription('news_feed.alert', T.rec('alert'));
        cometApi.subscription(T.rec('all'));
        await T.start({});
    });
    await waitSubscribers(db, 'news_feed', 1);
    await db.query("INSERT INTO pipes_messages (name, event, message) VALUES ('news_feed', 'alert', ?)",
        [JSON.stringify({ n: 1, s: 'héllo "quoted" ✓', list: [1, 2] })]);
    await db.query("INSERT INTO pipes_messages (name, event, message) VALUES ('news_feed', 'note', 'plain text, not JSON')");
    const got = await inbox(page, 'pipe', 2);
    assert.deepEqual(got[0].data, { n: 1, s: 'héllo "quoted" ✓', list: [1, 2] });
    assert.equal(got[0].info.pipe, 'news_feed');
    assert.equal(got[0].info.event, 'alert');
    assert.equal(got[0].info.history, false);
    assert.equal(typeof got[0].info.id, 'number');
    assert.equal(got[1].data, 'plain text, not JSON');
    assert.equal(got[1].info.event, 'note');
    assert.ok(got[1].info.id > got[0].info.id, 'ids increase');
    const alerts = await page.evaluate(() => T.of('alert'));
    assert.equal(alerts.length, 1, `pipe.event callback gets only its event: ${JSON.stringify(alerts)}`);
    assert.deepEqual(alerts[0].data, got[0].data);
    const all = await page.evaluate(() => T.of('all').filter((m) => m.info.pipe === 'news_feed').length);
    assert.equal(all, 2, 'the catch-all subscription sees both');
}));

// ---- (c) web_pipe_send between two browsers --------------------------------------------------------

test('web_pipe_send: a message from one browser reaches another, not its sender', bt(async (s) => {
    const a = await s.page('A', PAGE);
    const b = await s.page('B', PAGE);
    for (const p of [a, b]) {
        await p.evaluate(async () => {
            cometApi.subscription('web_room1', T.rec('room'));
            cometApi.subscription('#web_room1', T.rec('answer'));
            await T.start({});
        });
    }
    await waitSubscribers(db, 'web_room1', 2);
    const sent = await a.evaluate(() => cometApi.web_pipe_send('web_room1', 'say', { text: 'hi from A', n: 7 }));
    assert.equal(sent, true);
    const [m] = await inbox(b, 'room', 1);
    assert.deepEqual(m.data, { text: 'hi from A', n: 7 });
    assert.equal(m.info.pipe, 'web_room1');
    assert.equal(m.info.event, 'say');
    const [ans] = await inbox(a, 'answer', 1);
    assert.equal(ans.data.number_messages, 1, `answer: ${JSON.stringify(ans)}`);
    // B answers with the two-argument form "pipe.event"; A gets it, and never its own message.
    await b.evaluate(() => cometApi.web_pipe_send('web_room1.reply', 'plain reply'));
    const gotA = await inbox(a, 'room', 1);
    assert.deepEqual(gotA.map((x) => [x.data, x.info.event]), [['plain reply', 'reply']]);
    assert.equal((await b.evaluate(() => T.of('room'))).length, 1, 'B did not get its own reply');
    // and the backend sees the publication too: web_ pipes are ordinary pipes
    await db.query("INSERT INTO pipes_messages (name, event, message) VALUES ('web_room1', 'sys', '{\"from\":\"backend\"}')");
    await inbox(a, 'room', 2);
    await inbox(b, 'room', 2);
}));

// ---- (d) private messages ------------------------------------------------------------------------

test('users_messages: a private message reaches every page of the user', bt(async (s) => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (5, 'hash_five')");
    const ctx1 = await s.context();
    // p1 and p2 share a context, so they share one socket (leader tab + BroadcastChannel);
    // p3 is another browser profile with its own socket.
    const pages = [
        await s.page('p1', PAGE, { context: ctx1 }),
        await s.page('p2', PAGE, { context: ctx1 }),
        await s.page('p3', PAGE),
    ];
    for (const p of pages) {
        const r = await p.evaluate(async () => {
            cometApi.subscription('msg', T.rec('msg'));
            cometApi.subscription('msg.note', T.rec('note'));
            return T.start({ user_id: 5, user_key: 'hash_five' });
        });
        assert.deepEqual(r, { authorized: true });
    }
    // every start() resolved on a serverInfo: the server has attached both sockets to user 5
    await db.query("INSERT INTO users_messages (id, event, message) VALUES (5, 'note', '{\"k\":\"v\",\"n\":1}')");
    await db.query("INSERT INTO users_messages (id, event, message) VALUES (5, 'other', 'second')");
    for (const [i, p] of pages.entries()) {
        const got = await inbox(p, 'msg', 2);
        assert.deepEqual(got.map((m) => [m.data, m.info.pipe, m.info.event]),
            [[{ k: 'v', n: 1 }, 'msg', 'note'], ['second', 'msg', 'other']], `page p${i + 1}`);
        const notes = await p.evaluate(() => T.of('note'));
        assert.equal(notes.length, 1, `p${i + 1}: msg.note gets only event note`);
    }
    // nothing was queued: the user was online
    const [q] = await db.query('SELECT * FROM users_messages WHERE id = 5');
    assert.deepEqual(q, []);
}));

// ---- (e) offline queue ---------------------------------------------------------------------------

test('users_messages: queued while the user is offline, delivered when a page opens', bt(async (s) => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (6, 'hash_six')");
    await db.query("INSERT INTO users_messages (id, event, message) VALUES (6, 'queued', '{\"q\":1}')");
    await db.query("INSERT INTO users_messages (id, event, message) VALUES (6, 'queued', '{\"q\":2}')");
    const [before] = await db.query('SELECT * FROM users_messages WHERE id = 6');
    assert.equal(before.length, 2, 'both messages are queued');
    const page = await s.page('u6', PAGE);
    await page.evaluate(async () => {
        cometApi.subscription('msg', T.rec('msg'));
        await T.start({ user_id: 6, user_key: 'hash_six' });
    });
    const got = await inbox(page, 'msg', 2);
    assert.deepEqual(got.map((m) => m.data), [{ q: 1 }, { q: 2 }]);
    for (const m of got) {
        assert.equal(m.info.pipe, 'msg');
        assert.equal(m.info.event, 'queued');
        assert.equal(m.info.fromQueue, true);
    }
    const [left] = await db.query('SELECT * FROM users_messages WHERE id = 6');
    assert.deepEqual(left, [], 'delivered messages leave the queue');
}));

// ---- (f) history -----------------------------------------------------------------------------------

test('history: pipes_settings length 3, get_pipe_log returns the newest 3 marked history', bt(async (s) => {
    await db.query("INSERT INTO pipes_settings (name, length) VALUES ('hist_pipe', 3)");
    for (let i = 1; i <= 5; i++) {
        await db.query("INSERT INTO pipes_messages (name, event, message) VALUES ('hist_pipe', 'ev', ?)", [JSON.stringify({ i })]);
    }
    const page = await s.page('hist', PAGE);
    await page.evaluate(async () => {
        cometApi.subscription('hist_pipe', T.rec('sub'));
        await T.start({});
        cometApi.get_pipe_log('hist_pipe', T.rec('log'));
    });
    const log = await inbox(page, 'log', 3);
    const sub = await inbox(page, 'sub', 3);
    for (const [name, got] of [['get_pipe_log callback', log], ['subscriber', sub]]) {
        assert.deepEqual(got.map((m) => m.data), [{ i: 3 }, { i: 4 }, { i: 5 }], name);
        for (const m of got) {
            assert.equal(m.info.history, true, `${name}: history flag`);
            assert.equal(m.info.pipe, 'hist_pipe');
            assert.equal(m.info.event, 'ev');
        }
    }
    // A live message after the history is not history, and the log callback does not get it.
    await waitSubscribers(db, 'hist_pipe', 1);
    await db.query("INSERT INTO pipes_messages (name, event, message) VALUES ('hist_pipe', 'ev', '{\"i\":6}')");
    const sub2 = await inbox(page, 'sub', 4);
    assert.deepEqual(sub2[3].data, { i: 6 });
    assert.equal(sub2[3].info.history, false);
    assert.equal((await page.evaluate(() => T.of('log'))).length, 3);
}));

// ---- (g) missed messages across a dropped connection ---------------------------------------------

test('recovery: messages published while the socket is down arrive exactly once after the reconnect', bt(async (s) => {
    const page = await s.page('rec', PAGE);
    await page.evaluate(async () => {
        cometApi.subscription('recov_pipe', T.rec('m'));
        await T.start({ WebSocket: GatedWS });
    });
    await waitSubscribers(db, 'recov_pipe', 1);
    const pub = (i) => db.query("INSERT INTO pipes_messages (name, event, message) VALUES ('recov_pipe', 'ev', ?)", [JSON.stringify({ i })]);
    await pub(0);
    const [first] = await inbox(page, 'm', 1);
    assert.deepEqual(first.data, { i: 0 });
    const n = first.info.id;

    // drop: the real socket closes; the client's reconnect is parked at the gate
    await page.evaluate(() => { T.gate.held = true; T.gate.drop(); });
    await page.waitForFunction(() => T.events.some((e) => e.ev === 'disconnect'), null, { polling: 20 });
    await waitSubscribers(db, 'recov_pipe', 0); // the server saw the close
    for (let i = 1; i <= 3; i++) await pub(i);
    await page.waitForFunction(() => T.gate.parked.length > 0, null, { polling: 20 }); // it tried to come back
    assert.equal(await page.evaluate(() => T.of('m').length), 1, 'nothing arrived while disconnected');

    await page.evaluate(() => T.gate.release());
    const got = await inbox(page, 'm', 4);
    // fence: one more live message; everything before it has arrived by then
    await waitSubscribers(db, 'recov_pipe', 1);
    await pub(4);
    await inbox(page, 'm', 5);
    const all = await page.evaluate(() => T.of('m'));
    assert.deepEqual(all.map((m) => m.data), [{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }, { i: 4 }],
        'every message exactly once, in order');
    const ids = all.map((m) => m.info.id);
    assert.equal(ids[0], n);
    for (let k = 1; k < ids.length; k++) assert.ok(ids[k] > ids[k - 1], `ids increase: ${ids}`);
    assert.ok(got.slice(1, 4).every((m) => m.info.history === false), 'replayed messages are not history');
    const ev = await page.evaluate(() => ({ opened: T.gate.opened, events: T.events.map((e) => e.ev) }));
    assert.equal(ev.opened, 2, `two real connections: ${JSON.stringify(ev)}`);
    assert.deepEqual(ev.events.filter((e) => e === 'connect' || e === 'disconnect'), ['connect', 'disconnect', 'connect']);
}));

// ---- (h) presence ----------------------------------------------------------------------------------

test('presence: user_status_<id> online/offline, count_users_in_pipe, getTrackPipeUsers', bt(async (s) => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (10, 'hash_ten'), (20, 'hash_twenty')");
    const a = await s.page('user10', PAGE);
    const aStart = await a.evaluate(async () => {
        cometApi.subscription('user_status_20', T.rec('status'));
        cometApi.subscription('track_room', T.rec('track'));
        cometApi.subscription('web_room', T.rec('room'));
        return T.start({ user_id: 10, user_key: 'hash_ten' });
    });
    assert.deepEqual(aStart, { authorized: true });
    await waitSubscribers(db, 'web_room', 1);
    await waitSubscribers(db, 'user_status_20', 1);

    const ask = (page) => page.evaluate(() => Promise.all([
        new Promise((res) => cometApi.count_users_in_pipe('web_room', (e) => res(e.data))),
        new Promise((res) => cometApi.getTrackPipeUsers('track_room', (e) => res(e.data))),
    ]));
    const [c1, t1] = await ask(a);
    assert.deepEqual(c1, { user_in_pipe: 1 });
    const uuidA = await a.evaluate(() => cometApi.getUUID());
    assert.deepEqual(t1, [{ user_id: 10, uuid: uuidA }]);

    const bCtx = await s.context();
    const b = await s.page('user20', PAGE, { context: bCtx });
    const bStart = await b.evaluate(async () => {
        cometApi.subscription('track_room', T.rec('track'));
        cometApi.subscription('web_room', T.rec('room'));
        return T.start({ user_id: 20, user_key: 'hash_twenty' });
    });
    assert.deepEqual(bStart, { authorized: true });
    const uuidB = await b.evaluate(() => cometApi.getUUID());
    const [online] = await inbox(a, 'status', 1);
    assert.equal(online.info.pipe, 'user_status_20');
    assert.equal(online.info.event, 'online');
    await waitSubscribers(db, 'web_room', 2);
    const [joined] = await inbox(a, 'track', 1);
    assert.equal(joined.info.event, 'subscription');
    assert.deepEqual(joined.data, { user_id: 20, uuid: uuidB });

    for (const p of [a, b]) {
        const [c2, t2] = await ask(p);
        assert.deepEqual(c2, { user_in_pipe: 2 });
        assert.deepEqual([...t2].sort((x, y) => x.user_id - y.user_id),
            [{ user_id: 10, uuid: uuidA }, { user_id: 20, uuid: uuidB }]);
    }

    await b.close();
    const st = await inbox(a, 'status', 2);
    assert.equal(st[1].info.event, 'offline', `statuses: ${JSON.stringify(st)}`);
    const tr = await inbox(a, 'track', 2);
    assert.equal(tr[1].info.event, 'unsubscription');
    assert.deepEqual(tr[1].data, { user_id: 20, uuid: uuidB });
    const [c3, t3] = await ask(a);
    assert.deepEqual(c3, { user_in_pipe: 1 });
    assert.deepEqual(t3, [{ user_id: 10, uuid: uuidA }]);
    const [rows] = await db.query('SELECT time FROM users_time WHERE id = 20');
    assert.ok(rows[0] && rows[0].time > 0, `users_time of user 20 after it left: ${JSON.stringify(rows)}`);
}));
