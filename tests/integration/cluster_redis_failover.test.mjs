// A Redis Cluster master fails over to its replica under ccomet: 3 masters + 3 replicas (real
// redis-servers), two ccomet nodes ([redis] cluster = yes). The master owning a tenant's slot is
// killed with SIGKILL; once the cluster has promoted the replica, ccomet finds the new owner by
// itself (it asks CLUSTER SLOTS every second while a master is unreachable): writes for the
// tenant succeed again, and subscribers on both nodes receive what is published after the
// failover. While the master is gone its writes answer ERR, never OK. (Redis replicates
// asynchronously: a write acknowledged just before the kill can be lost with the master; WAIT
// is not used yet.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mysql2Connect } from './clients.mjs';
import { wsOpen, closeAll, waitUntil } from './wsclient.mjs';
import { startRedisCluster, startClusterNode, keySlot } from './redis.mjs';

const cluster = await startRedisCluster(3, { replicas: 1 });
const nodes = [await startClusterNode(cluster.seeds), await startClusterNode(cluster.seeds)];
const DEV = 7;
const dbs = await Promise.all(nodes.map((n) => mysql2Connect(n, { user: String(DEV) })));

after(async () => {
    for (const n of nodes) await closeAll(n);
    await Promise.all(dbs.map((d) => d.end().catch(() => d.destroy())));
    for (const n of nodes) await n.stop();
    await cluster.cleanup();
});

test("the master of a tenant's slot killed: ccomet follows the failover to its replica", { timeout: 120000 }, nodes[0].wrap(nodes[1].wrap(async () => {
    const slot = keySlot(`{t${DEV}}`);
    const master = await cluster.owner(slot);
    const subs = await Promise.all(nodes.map((n, i) => wsOpen(n, { devId: DEV, name: `fo${i}` })));
    for (const s of subs) await s.subscribe('fo_cluster');
    await dbs[0].query("INSERT INTO pipes_messages (name, event, message) VALUES ('fo_cluster', 'e', 'before')");
    for (const s of subs) assert.equal((await s.nextOn('fo_cluster')).data, 'before');
    const t0 = Date.now();
    await master.kill9();
    // while it is gone: ERR, never OK (a write that happens to land after the promotion is OK)
    let refused = 0;
    const back = await waitUntil(async () => {
        try {
            await dbs[1].query("INSERT INTO users_data (id, data) VALUES (1, 'after failover')");
            return true;
        } catch (e) {
            assert.match(e.message, /Redis/);
            refused++;
            return false;
        }
    }, { timeoutMs: 30000, interval: 200, what: 'a write to succeed after the failover' });
    assert.ok(back);
    const ms = Date.now() - t0;
    const promoted = await cluster.owner(slot);
    assert.ok(promoted && promoted !== master, 'a replica owns the slot now');
    await dbs[0].query("INSERT INTO pipes_messages (name, event, message) VALUES ('fo_cluster', 'e', 'after')");
    for (const s of subs) assert.equal((await s.next((m) => m.pipe === 'fo_cluster' && m.data === 'after', { timeoutMs: 15000 })).data, 'after');
    for (const db of dbs) {
        const [rows] = await db.query('SELECT * FROM users_data WHERE id = 1');
        assert.equal(rows[0].data, 'after failover');
    }
    console.log(`# master killed: writes back after ${ms} ms (${refused} refused meanwhile), delivery resumed on both nodes`);
    await Promise.all(subs.map((s) => s.close()));
})));
