// Cluster mode on a real 3-master Redis Cluster (redis-cli --cluster create, no replicas): three
// ccomet nodes given the masters as seeds ([redis] cluster = yes). Tenants spread over the
// masters by their hash slot ({t<dev_id>}); every node reads what any node wrote for each;
// pipe messages of tenants on different masters reach subscribers on every node in order, once;
// a tenant's slot moved to another master in the middle of a stream (CLUSTER SETSLOT
// IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE) is followed: subscribers keep receiving in order,
// once (the old owner's unasked sunsubscribe moves each node's subscription), and writes for a
// moved tenant no node subscribes to succeed by following MOVED.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mysql2Connect } from './clients.mjs';
import { wsOpen, closeAll, httpGet, metric } from './wsclient.mjs';
import { startRedisCluster, startClusterNode, keySlot } from './redis.mjs';

const cluster = await startRedisCluster(3);
const nodes = [];
for (let i = 0; i < 3; i++) nodes.push(await startClusterNode(cluster.seeds));
// tenants 1..6: their slots, and which master owns each
const TENANTS = [1, 2, 3, 4, 5, 6];
const dbs = await Promise.all(nodes.map((n) => mysql2Connect(n)));
const tenantDb = new Map();
for (const dev of TENANTS) tenantDb.set(dev, await Promise.all(nodes.map((n) => mysql2Connect(n, { user: String(dev) }))));

after(async () => {
    for (const n of nodes) await closeAll(n);
    for (const c of [...dbs, ...[...tenantDb.values()].flat()]) await c.end().catch(() => c.destroy());
    for (const n of nodes) await n.stop();
    await cluster.cleanup();
});

const rows = async (db, sql, params) => (await db.query(sql, params))[0].map((r) => ({ ...r }));
const wrap = (fn) => nodes[0].wrap(nodes[1].wrap(nodes[2].wrap(fn)));

test('tenants on different masters: every node reads what any node wrote', wrap(async () => {
    const owners = new Set();
    for (const dev of TENANTS) owners.add((await cluster.owner(keySlot(`{t${dev}}`))).port);
    assert.ok(owners.size >= 2, `the tenants span ${owners.size} master(s)`);
    for (const dev of TENANTS) {
        const [a, b, c] = tenantDb.get(dev);
        await a.query('INSERT INTO users_auth (id, hash) VALUES (?, ?)', [dev * 10, `h${dev}`]);
        await b.query("INSERT INTO pipes_settings (name, length) VALUES ('hist_c', 2)");
        for (let i = 1; i <= 3; i++) await c.query("INSERT INTO pipes_messages (name, event, message) VALUES ('hist_c', 'e', ?)", [`${dev}-${i}`]);
    }
    for (const dev of TENANTS) {
        for (const db of tenantDb.get(dev)) {
            assert.deepEqual(await rows(db, 'SELECT * FROM users_auth'), [{ id: dev * 10, hash: `h${dev}` }], `tenant ${dev}`);
            const h = await rows(db, "SELECT * FROM pipes_messages WHERE name = 'hist_c'");
            assert.deepEqual(h.map((r) => r.message), [`${dev}-2`, `${dev}-3`]);
        }
    }
    const [tenants] = await dbs[1].query('SELECT * FROM tenants');
    assert.ok(Array.isArray(tenants));
}));

test('pipe messages of tenants on different masters reach every node in order, once', wrap(async () => {
    const N = 30;
    const subs = [];
    for (const dev of [1, 2, 3]) {
        for (const n of nodes) {
            const s = await wsOpen(n, { devId: dev, name: `d${dev}-${n.wsPort}` });
            await s.subscribe('cl_pipe');
            subs.push({ dev, s });
        }
    }
    for (let m = 0; m < N; m++) {
        for (const dev of [1, 2, 3]) {
            await tenantDb.get(dev)[m % 3].query("INSERT INTO pipes_messages (name, event, message) VALUES ('cl_pipe', 'e', ?)", [`${dev}:${m}`]);
        }
    }
    for (const { dev, s } of subs) {
        for (let m = 0; m < N; m++) assert.equal((await s.nextOn('cl_pipe', 'e', { timeoutMs: 10000 })).data, `${dev}:${m}`);
        await s.sync();
        assert.equal(s.pending((x) => x.pipe === 'cl_pipe').length, 0, 'no duplicates, no other tenant');
        await s.close();
    }
}));

/** Moves one hash slot from its owner to `to`, keys and all, as redis-cli --cluster reshard does. */
async function moveSlot(slot, to) {
    const from = await cluster.owner(slot);
    const id = async (n) => (await n.cli('CLUSTER', 'MYID')).trim();
    const [fromId, toId] = [await id(from), await id(to)];
    await to.cli('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', fromId);
    await from.cli('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', toId);
    for (;;) {
        const keys = (await from.cli('CLUSTER', 'GETKEYSINSLOT', String(slot), '100')).trim().split('\n').filter(Boolean);
        if (!keys.length) break;
        await from.cli('MIGRATE', '127.0.0.1', String(to.port), '', '0', '5000', 'KEYS', ...keys);
    }
    for (const n of cluster.nodes) await n.cli('CLUSTER', 'SETSLOT', String(slot), 'NODE', toId);
}

test("a tenant's slot moved to another master mid-stream: writes and delivery go on, in order, once", wrap(async () => {
    const dev = 4;
    const slot = keySlot(`{t${dev}}`);
    const from = await cluster.owner(slot);
    const to = cluster.nodes.find((n) => n !== from);
    const subs = await Promise.all(nodes.map((n, i) => wsOpen(n, { devId: dev, name: `mv${i}` })));
    for (const s of subs) await s.subscribe('mv_pipe');
    const dbsOf = tenantDb.get(dev);
    const N = 40;
    for (let m = 0; m < N; m++) {
        if (m === 15) await moveSlot(slot, to);
        await dbsOf[m % 3].query("INSERT INTO pipes_messages (name, event, message) VALUES ('mv_pipe', 'e', ?)", [`mv${m}`]);
    }
    assert.equal((await cluster.owner(slot)).port, to.port, 'the slot moved');
    for (const s of subs) {
        for (let m = 0; m < N; m++) assert.equal((await s.nextOn('mv_pipe', 'e', { timeoutMs: 10000 })).data, `mv${m}`, s.name);
        await s.sync();
        assert.equal(s.pending((x) => x.pipe === 'mv_pipe').length, 0, `${s.name}: no duplicates`);
    }
    // the tenant's rows moved with it and read from every node
    for (const db of dbsOf) assert.deepEqual(await rows(db, 'SELECT * FROM users_auth'), [{ id: 40, hash: 'h4' }]);
    // a tenant nobody subscribes to: no node hears of its move until a write is answered MOVED
    const quiet = 5, qslot = keySlot(`{t${quiet}}`);
    const qfrom = await cluster.owner(qslot);
    await moveSlot(qslot, cluster.nodes.find((n) => n !== qfrom));
    for (const db of tenantDb.get(quiet)) await db.query("INSERT INTO users_data (id, data) VALUES (1, 'after the move')");
    for (const db of tenantDb.get(quiet)) assert.deepEqual(await rows(db, 'SELECT * FROM users_data'), [{ id: 1, data: 'after the move' }]);
    let redirects = 0, moved = 0;
    for (const n of nodes) {
        const r = await httpGet(n.wsPort, '/metrics');
        assert.equal(metric(r.body, 'ccomet_redis_shards'), 3);
        redirects += metric(r.body, 'ccomet_redis_redirects_total');
        moved += metric(r.body, 'ccomet_redis_moved_channels_total');
    }
    assert.ok(moved >= 3, `every node moved its subscription (${moved})`);
    assert.ok(redirects >= 1, `MOVED answers followed (${redirects})`);
    console.log(`# after the move, over 3 nodes: MOVED/ASK followed ${redirects}, subscriptions moved ${moved}`);
    await Promise.all(subs.map((s) => s.close()));
}));
