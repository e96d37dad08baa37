// Cluster mode ([store] type = redis): three real ccomet nodes share one real redis-server.
// The same CometQL reads give the same rows on every node; a pipe message or a private message
// written on one node reaches browsers on every node, once, in order, with one id; a browser's
// web_pipe2 reaches the others' browsers and not its sender; an offline user's message waits in
// Redis and is delivered once when the user connects to another node; a write Redis cannot
// confirm is an ERR, never an OK, and delivery resumes after Redis comes back.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mysql2Connect } from './clients.mjs';
import { wsOpen, closeAll, waitUntil, signJwt, httpGet, metric } from './wsclient.mjs';
import { startRedis, startNode, waitSubscribers } from './redis.mjs';

const redis = await startRedis();
const nodes = [];
for (let i = 0; i < 3; i++) nodes.push(await startNode(redis));
const dbs = await Promise.all(nodes.map((n) => mysql2Connect(n)));

after(async () => {
    for (const n of nodes) await closeAll(n);
    await Promise.all(dbs.map((d) => d.end().catch(() => d.destroy())));
    for (const n of nodes) await n.stop();
    await redis.cleanup();
});

const rows = async (db, sql, params) => (await db.query(sql, params))[0].map((r) => ({ ...r }));
const wrap = (fn) => nodes[0].wrap(nodes[1].wrap(nodes[2].wrap(fn)));

test('every node reads the rows any node wrote', wrap(async () => {
    const [a, b, c] = dbs;
    await a.query("INSERT INTO users_auth (id, hash) VALUES (101, 'h101'), (102, 'h102')");
    await b.query("INSERT INTO users_data (id, data) VALUES (101, 'd101')");
    await c.query("INSERT INTO pipes_settings (name, length) VALUES ('hist_pipe', 3)");
    for (let i = 1; i <= 5; i++) {
        await dbs[i % 3].query("INSERT INTO pipes_messages (name, event, message) VALUES ('hist_pipe', 'e', ?)", [`m${i}`]);
    }
    await a.query("INSERT INTO revoked_tokens (token) VALUES ('tok-a')");
    for (const db of dbs) {
        assert.deepEqual(await rows(db, 'SELECT * FROM users_auth WHERE id IN (101, 102)'),
            [{ id: 101, hash: 'h101' }, { id: 102, hash: 'h102' }]);
        assert.deepEqual(await rows(db, 'SELECT * FROM users_data WHERE id = 101'), [{ id: 101, data: 'd101' }]);
        assert.deepEqual(await rows(db, "SELECT * FROM pipes_settings WHERE name = 'hist_pipe'"),
            [{ name: 'hist_pipe', length: 3 }]);
        const h = await rows(db, "SELECT * FROM pipes_messages WHERE name = 'hist_pipe'");
        assert.deepEqual(h.map((r) => r.message), ['m3', 'm4', 'm5'], 'the history length is exact');
        assert.ok(h[0].id < h[1].id && h[1].id < h[2].id, 'ids increase');
        assert.deepEqual(await rows(db, "SELECT * FROM revoked_tokens WHERE token = 'tok-a'"), [{ token: 'tok-a' }]);
    }
    await b.query('DELETE FROM users_auth WHERE id = 102');
    assert.deepEqual(await rows(c, 'SELECT * FROM users_auth WHERE id = 102'), []);
    await c.query("DELETE FROM pipes_messages WHERE name = 'hist_pipe'");
    assert.deepEqual(await rows(a, "SELECT * FROM pipes_messages WHERE name = 'hist_pipe'"), []);
}));

test('a pipe message written on one node reaches subscribers on every node once, with one id', wrap(async () => {
    const subs = await Promise.all(nodes.map((n, i) => wsOpen(n, { name: `sub${i}` })));
    // no wait on Redis here: a subscription's answer comes once the node's is in place
    for (const s of subs) await s.subscribe('cluster_pipe');
    const N = 60;
    for (let m = 0; m < N; m++) {
        await dbs[m % 3].query("INSERT INTO pipes_messages (name, event, message) VALUES ('cluster_pipe', 'ev', ?)", [`m${m}`]);
    }
    const seen = await Promise.all(subs.map(async (s) => {
        const ids = [];
        for (let m = 0; m < N; m++) {
            const msg = await s.nextOn('cluster_pipe', 'ev', { timeoutMs: 10000 });
            assert.equal(msg.data, `m${m}`, 'in the order written');
            ids.push(msg.id);
        }
        await s.sync();
        assert.equal(s.pending((x) => x.pipe === 'cluster_pipe').length, 0, 'no duplicates');
        return ids;
    }));
    assert.deepEqual(seen[1], seen[0], 'every node delivers the same ids');
    assert.deepEqual(seen[2], seen[0]);
    for (let i = 1; i < N; i++) assert.ok(seen[0][i] > seen[0][i - 1], 'ids increase');
    await Promise.all(subs.map((s) => s.close()));
}));

test('web_pipe2 from a browser on one node reaches browsers on the others, not its sender', wrap(async () => {
    const a = await wsOpen(nodes[0], { name: 'wa' });
    const b = await wsOpen(nodes[1], { name: 'wb' });
    const c = await wsOpen(nodes[2], { name: 'wc' });
    for (const x of [a, b, c]) await x.subscribe('web_cluster');
    a.send('web_pipe2\nweb_cluster\nsay\n*\nhello from a');
    assert.equal((await b.nextOn('web_cluster', 'say')).data, 'hello from a');
    assert.equal((await c.nextOn('web_cluster', 'say')).data, 'hello from a');
    await a.nextOn('_answer_to_web_cluster');
    await a.sync();
    await b.sync();
    assert.deepEqual(a.pending((m) => m.pipe === 'web_cluster'), [], 'the sender got its own message back');
    await Promise.all([a.close(), b.close(), c.close()]);
}));

test('a private message reaches the user on another node live; offline it waits in Redis and comes once', wrap(async () => {
    const [a, b] = dbs;
    await a.query("INSERT INTO users_auth (id, hash) VALUES (201, 'h201'), (202, 'h202')");
    // serverInfo comes once the node's subscription to the user is in place
    const u = await wsOpen(nodes[1], { session: 'h201', userId: 201, name: 'u201' });
    assert.equal(u.info.authorized, true);
    await a.query("INSERT INTO users_messages (id, event, message) VALUES (201, 'pm', 'live')");
    assert.equal((await u.nextOn('msg', 'pm')).data, 'live');
    assert.deepEqual(await rows(b, 'SELECT * FROM users_messages WHERE id = 201'), [], 'nothing queued');
    // offline: queued, visible on every node, delivered once on connect elsewhere
    await b.query("INSERT INTO users_messages (id, event, message) VALUES (202, 'pm', 'queued')");
    for (const db of dbs) {
        const q = await rows(db, 'SELECT * FROM users_messages WHERE id = 202');
        assert.equal(q.length, 1);
        assert.equal(q[0].message, 'queued');
    }
    const v = await wsOpen(nodes[2], { session: 'h202', userId: 202, name: 'u202' });
    assert.equal((await v.nextOn('msg', 'pm')).data, 'queued');
    await waitUntil(async () => (await rows(a, 'SELECT * FROM users_messages WHERE id = 202')).length === 0,
        { what: 'the queue of user 202 to empty' });
    await v.sync();
    assert.equal(v.pending((m) => m.pipe === 'msg').length, 0, 'delivered once');
    await Promise.all([u.close(), v.close()]);
}));

test('Redis down: a write answers ERR, never OK; after Redis returns, writes and delivery resume', wrap(async () => {
    const sub = await wsOpen(nodes[2], { name: 'sub-restart' });
    await sub.subscribe('restart_pipe');
    await waitSubscribers(redis, 'restart_pipe', 1);
    await redis.kill9();
    await assert.rejects(dbs[0].query("INSERT INTO users_data (id, data) VALUES (301, 'x')"),
        (e) => /Redis/.test(e.message), 'an ERR that names Redis');
    await assert.rejects(dbs[1].query("INSERT INTO pipes_messages (name, event, message) VALUES ('restart_pipe', 'e', 'lost')"));
    const t0 = Date.now();
    await redis.start();
    // the nodes reconnect on their own (back-off at most 5 s) and subscribe again
    await waitUntil(async () => {
        try {
            await dbs[0].query("INSERT INTO users_data (id, data) VALUES (301, 'back')");
            return true;
        } catch { return false; }
    }, { timeoutMs: 10000, interval: 100, what: 'a write to succeed after the restart' });
    await waitSubscribers(redis, 'restart_pipe', 1);
    const resumed = Date.now() - t0;
    assert.ok(resumed < 8000, `resumed in ${resumed} ms`);
    await dbs[1].query("INSERT INTO pipes_messages (name, event, message) VALUES ('restart_pipe', 'e', 'after')");
    assert.equal((await sub.nextOn('restart_pipe', 'e', { timeoutMs: 10000 })).data, 'after');
    assert.deepEqual(await rows(dbs[2], 'SELECT * FROM users_data WHERE id = 301'), [{ id: 301, data: 'back' }]);
    // what was acknowledged before the kill is all there (appendfsync always)
    assert.deepEqual(await rows(dbs[1], 'SELECT * FROM users_auth WHERE id = 101'), [{ id: 101, hash: 'h101' }]);
    assert.deepEqual(await rows(dbs[0], 'SELECT * FROM users_data WHERE id = 101'), [{ id: 101, data: 'd101' }]);
    assert.deepEqual(await rows(dbs[2], "SELECT * FROM pipes_settings WHERE name = 'hist_pipe'"), [{ name: 'hist_pipe', length: 3 }]);
    await sub.close();
}));

test('a browser that left node 0 recovers what it missed on node 2 (pipe_since from the Redis stream)', wrap(async () => {
    const pipe = 'rec_cluster';
    const a = await wsOpen(nodes[0], { name: 'rec-a' });
    await a.subscribe(pipe);
    await dbs[1].query('INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)', [pipe, 'e', 'seen']);
    const last = await a.nextOn(pipe);
    await a.close();
    for (let i = 1; i <= 5; i++) {
        await dbs[i % 3].query('INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)', [pipe, 'e', `missed${i}`]);
    }
    const b = await wsOpen(nodes[2], { name: 'rec-b' });
    await b.subscribe(pipe);
    b.send(`pipe_since\n${pipe}\n${last.id}`);
    await b.sync();
    const got = b.pending((m) => m.pipe === pipe);
    assert.deepEqual(got.map((m) => m.data), ['missed1', 'missed2', 'missed3', 'missed4', 'missed5']);
    for (let i = 1; i < got.length; i++) assert.ok(got[i].id > got[i - 1].id, 'ids increase');
    await dbs[0].query('INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)', [pipe, 'e', 'live']);
    const live = await b.next((m) => m.pipe === pipe && m.data === 'live');
    assert.ok(live.id > got[4].id);
    await b.sync();
    assert.equal(b.pending((m) => m.pipe === pipe).length, 5, 'the replay and the live one, nothing twice');
    await b.close();
}));

test('a killed pub/sub connection: the node subscribes again and repairs the gap from the stream, in order, once', wrap(async () => {
    const pipe = 'gap_cluster';
    const subs = await Promise.all(nodes.map((n, i) => wsOpen(n, { name: `gap${i}` })));
    for (const s of subs) await s.subscribe(pipe);
    const N = 40;
    const writes = (async () => {
        for (let m = 0; m < N; m++) {
            await dbs[m % 3].query('INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)', [pipe, 'e', `g${m}`]);
            if (m === 10) await redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub'); // every node's
        }
    })();
    await writes;
    for (const s of subs) {
        for (let m = 0; m < N; m++) {
            const msg = await s.nextOn(pipe, 'e', { timeoutMs: 10000 });
            assert.equal(msg.data, `g${m}`, `${s.name}: in order, none lost`);
        }
        await s.sync();
        assert.equal(s.pending((x) => x.pipe === pipe).length, 0, `${s.name}: no duplicates`);
    }
    await Promise.all(subs.map((s) => s.close()));
}));

test('a key deleted or a token revoked on one node closes the user on every node within 1 s', wrap(async () => {
    await dbs[0].query("INSERT INTO users_auth (id, hash) VALUES (401, 'h401')");
    const a = await wsOpen(nodes[1], { session: 'h401', userId: 401, name: 'k401a' });
    const b = await wsOpen(nodes[2], { session: 'h401', userId: 401, name: 'k401b' });
    const bystander = await wsOpen(nodes[2], { name: 'k-anon' });
    assert.ok(a.info.authorized && b.info.authorized);
    let t0 = Date.now();
    await dbs[0].query('DELETE FROM users_auth WHERE id = 401');
    await a.waitClosed(1000);
    await b.waitClosed(1000);
    const keyMs = Date.now() - t0;
    assert.equal((await wsOpen(nodes[1], { session: 'h401', userId: 401 })).info.authorized, false);
    const token = signJwt({ user_id: 402, exp: Math.floor(Date.now() / 1000) + 3600 }, 'password0');
    const c = await wsOpen(nodes[0], { session: token, userId: 402, name: 'j402' });
    assert.equal(c.info.authorized, true);
    t0 = Date.now();
    await dbs[1].query('INSERT INTO revoked_tokens (token) VALUES (?)', [token]);
    await c.waitClosed(1000);
    const tokMs = Date.now() - t0;
    assert.equal((await wsOpen(nodes[2], { session: token, userId: 402 })).info.authorized, false,
        'the revoked token is refused on another node');
    assert.ok(bystander.isOpen);
    await bystander.sync();
    console.log(`# closed on every node: key deleted ${keyMs} ms, token revoked ${tokMs} ms`);
    await bystander.close();
}));

test('/metrics shows the Redis link', wrap(async () => {
    const r = await httpGet(nodes[0].wsPort, '/metrics');
    assert.equal(metric(r.body, 'ccomet_redis_up'), 1);
    assert.ok(metric(r.body, 'ccomet_redis_fanout_received_total') > 0);
    assert.ok(metric(r.body, 'ccomet_redis_reconnects_total') >= 1, 'Redis was restarted by an earlier test');
}));

test('three publishers on three nodes, 30,000 messages to one pipe: every subscriber on every node gets ids 1..30000 in order', { timeout: 180000 }, wrap(async () => {
    const dev = 77; // a tenant of its own: its message ids count this pipe's messages only
    const pubs = await Promise.all(nodes.map((n) => mysql2Connect(n, { user: String(dev) })));
    const subs = [];
    for (const n of nodes) for (let k = 0; k < 2; k++) subs.push(await wsOpen(n, { devId: dev, name: `big${subs.length}` }));
    for (const s of subs) await s.subscribe('big_pipe');
    const TOTAL = 30000, PER = TOTAL / 3, BATCH = 50;
    const t0 = Date.now();
    // each publisher: INSERTs of BATCH rows, in order, as fast as its node answers
    await Promise.all(pubs.map(async (db, p) => {
        for (let i = 0; i < PER; i += BATCH) {
            const values = Array.from({ length: BATCH }, (_, k) => `('big_pipe', 'e', 'p${p}-${i + k}')`).join(',');
            await db.query(`INSERT INTO pipes_messages (name, event, message) VALUES ${values}`);
        }
    }));
    const publishMs = Date.now() - t0;
    const got = subs.map(() => ({ next: 1, perPub: [0, 0, 0] }));
    await Promise.all(subs.map(async (s, i) => {
        const g = got[i];
        while (g.next <= TOTAL) {
            const m = await s.nextOn('big_pipe', 'e', { timeoutMs: 30000 });
            assert.equal(m.id, g.next, `${s.name}: id ${m.id} where ${g.next} was due`);
            const [p, n] = m.data.slice(1).split('-').map(Number);
            assert.equal(n, g.perPub[p], `${s.name}: publisher ${p}'s messages in its order`);
            g.perPub[p] += 1;
            g.next += 1;
        }
        s.inbox.items.length = 0; // consumed; keeps memory flat for the next test
    }));
    for (const s of subs) {
        await s.sync();
        assert.equal(s.pending((m) => m.pipe === 'big_pipe').length, 0, `${s.name}: nothing after 30000`);
    }
    const totalMs = Date.now() - t0;
    console.log(`# 30,000 messages from 3 nodes: published in ${publishMs} ms, ` +
        `6 subscribers on 3 nodes had ids 1..30000 in order after ${totalMs} ms (ASan build)`);
    await Promise.all(subs.map((s) => s.close()));
    await Promise.all(pubs.map((d) => d.end()));
}));

test('a full Redis (maxmemory, noeviction): a write answers ERR, reads go on, and writes work again once there is room', wrap(async () => {
    const used = Number(/used_memory:(\d+)/.exec(await redis.cli('INFO', 'memory'))[1]);
    await redis.cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    await redis.cli('CONFIG', 'SET', 'maxmemory', String(used + 64 * 1024));
    const big = 'x'.repeat(16 * 1024);
    let refused = null;
    for (let i = 0; i < 40 && !refused; i++) {
        try {
            await dbs[0].query('INSERT INTO users_data (id, data) VALUES (?, ?)', [500 + i, big]);
        } catch (e) { refused = e; }
    }
    assert.ok(refused, 'a write was refused once Redis was full');
    assert.match(refused.message, /OOM|maxmemory/i);
    // nothing half-written: the refused row is not there; reads still answer
    const ids = Array.from({ length: 40 }, (_, i) => 500 + i);
    const [r] = await dbs[1].query(`SELECT * FROM users_data WHERE id IN (${ids.join(',')})`);
    assert.ok(r.length < 40);
    await assert.rejects(dbs[1].query("INSERT INTO pipes_messages (name, event, message) VALUES ('full_pipe', 'e', ?)", [big]),
        /OOM|maxmemory/i, 'a publish is refused too, not acknowledged');
    await redis.cli('CONFIG', 'SET', 'maxmemory', '0');
    await dbs[0].query("INSERT INTO users_data (id, data) VALUES (599, 'room again')");
    assert.deepEqual(await rows(dbs[2], 'SELECT * FROM users_data WHERE id = 599'), [{ id: 599, data: 'room again' }]);
    await dbs[0].query(`DELETE FROM users_data WHERE id IN (${ids.join(',')}, 599)`);
}));

test('Redis down when a node starts: it waits ([redis] start_wait), starts once Redis answers; past the wait it exits with a clear error', wrap(async () => {
    const { Server, freePort } = await import('./harness.mjs');
    const { RedisServer } = await import('./redis.mjs');
    const port = await freePort();
    const conf = (wait) => `[store]\ntype = redis\n[redis]\nserver = 127.0.0.1:${port}\nstart_wait = ${wait}\n`;
    const gaveUp = new Server({ extraConf: conf(1) });
    await gaveUp.init();
    await assert.rejects(gaveUp.start(), /exited during startup/);
    assert.match(gaveUp.log, /Redis at 127\.0\.0\.1:\d+ did not answer within 1 s/);
    // Redis comes up while the node waits: the node starts, and works
    const waits = new Server({ extraConf: conf(20) });
    await waits.init();
    const starting = waits.start();
    const r2 = new RedisServer();
    await r2.init();
    r2.port = port;
    await r2.start();
    await starting;
    const db = await mysql2Connect(waits);
    await db.query("INSERT INTO users_data (id, data) VALUES (1, 'late redis')");
    assert.deepEqual(await rows(db, 'SELECT * FROM users_data WHERE id = 1'), [{ id: 1, data: 'late redis' }]);
    await db.end();
    await waits.stop();
    await r2.cleanup();
}));

test("a revoked token's row goes once the token itself has expired (it could open nothing)", wrap(async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = signJwt({ user_id: 601, exp: now - 60 }, 'password0');
    const valid = signJwt({ user_id: 602, exp: now + 3600 }, 'password0');
    await dbs[0].query('INSERT INTO revoked_tokens (token) VALUES (?)', [expired]);
    await dbs[1].query('INSERT INTO revoked_tokens (token) VALUES (?)', [valid]);
    const [r] = await dbs[2].query('SELECT * FROM revoked_tokens WHERE token IN (?, ?)', [expired, valid]);
    assert.deepEqual(r.map((x) => x.token), [valid], 'the expired token is gone, the valid one kept');
    const [plain] = await dbs[2].query("SELECT * FROM revoked_tokens WHERE token = 'tok-a'");
    assert.equal(plain.length, 1, 'a token with no exp is kept');
}));

test("a tenant's credentials set or removed on one node hold on every node at once", wrap(async () => {
    const pw = 'tenant55-own-pw';
    await dbs[0].query('INSERT INTO tenants (dev_id, password) VALUES (55, ?)', [pw]);
    // node 2 now refuses the shared password for tenant 55 and takes its own
    await waitUntil(() => nodes[2].log.includes('tenant credentials reloaded'), { what: 'node 2 reloading the tenants' });
    await assert.rejects(mysql2Connect(nodes[2], { user: '55' }), /Access denied|Authentication failure/);
    const own = await mysql2Connect(nodes[2], { user: '55', password: pw });
    await own.query("INSERT INTO users_data (id, data) VALUES (1, 'own')");
    await own.end();
    // removed on node 1: node 2 is back to the shared password for tenant 55
    const before = nodes[2].log.split('tenant credentials reloaded').length;
    await dbs[1].query('DELETE FROM tenants WHERE dev_id = 55');
    await waitUntil(() => nodes[2].log.split('tenant credentials reloaded').length > before, { what: 'node 2 reloading again' });
    await assert.rejects(mysql2Connect(nodes[2], { user: '55', password: pw }), /Access denied|Authentication failure/);
    const shared = await mysql2Connect(nodes[2], { user: '55' });
    await shared.end();
}));
