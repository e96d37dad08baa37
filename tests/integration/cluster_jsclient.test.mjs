// The project's JS client (web/CometServerApi.js, run in Node with the `ws` WebSocket) across a
// node kill in cluster mode: two ccomet nodes on one real redis-server; the client starts with
// both nodes (roundrobin) and is on node A; A is killed with SIGKILL while the backend publishes
// through B. The client learns from serverInfo that the nodes are one cluster, moves to B at its
// first reconnect and asks B for what it missed (pipe_since with A's last id): its subscriber
// gets every message once, in order.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import api from '../../web/CometServerApi.js';
import { mysql2Connect } from './clients.mjs';
import { waitUntil } from './wsclient.mjs';
import { startRedis, startNode } from './redis.mjs';

const { CometServer } = api;
const redis = await startRedis();
const [a, b] = [await startNode(redis), await startNode(redis)];
const db = await mysql2Connect(b);

after(async () => {
    await db.end().catch(() => db.destroy());
    await b.stop();
    if (a.running) await a.stop();
    await redis.cleanup();
});

test('the JS client moves to another node of the cluster after a kill -9 and misses nothing', b.wrap(async () => {
    const c = new CometServer();
    const got = [];
    c.subscription('js_pipe', (e) => got.push(e.data));
    const nodes = [`127.0.0.1:${a.wsPort}`, `127.0.0.1:${b.wsPort}`];
    let connectedTo = null;
    c.on('connect', (e) => { connectedTo = e.node; });
    c.start({ nodes, roundrobin: true, WebSocket, random: () => 0, shareTabs: false, quiet: true });
    await waitUntil(() => connectedTo === nodes[0], { what: 'the client on node A' });
    await waitUntil(async () => (await redis.cli('PUBSUB', 'SHARDNUMSUB', 'ccomet:{t0}:c:js_pipe')).includes('\n1'),
        { what: 'node A subscribed for the client' });
    const publish = (m) => db.query("INSERT INTO pipes_messages (name, event, message) VALUES ('js_pipe', 'e', ?)", [m]);
    for (let i = 0; i < 5; i++) await publish(`m${i}`);
    await waitUntil(() => got.length === 5, { what: 'the first 5 on node A' });
    const t0 = Date.now();
    await a.kill9();
    for (let i = 5; i < 15; i++) await publish(`m${i}`);
    await waitUntil(() => connectedTo === nodes[1], { timeoutMs: 10000, what: 'the client on node B' });
    await waitUntil(() => got.length >= 15, { timeoutMs: 10000, what: 'all 15 messages' });
    const ms = Date.now() - t0;
    for (let i = 15; i < 17; i++) await publish(`m${i}`);
    await waitUntil(() => got.length >= 17, { what: 'live messages on node B' });
    assert.deepEqual(got, Array.from({ length: 17 }, (_, i) => `m${i}`), 'every message once, in order');
    console.log(`# JS client: node A killed, on node B with the 10 it missed ${ms} ms later`);
    c.stop();
}));
