// The browser port's bounds against abuse (security audit M8, M9): a dev_id that is not a tenant
// is refused (CppComet read it as tenant 0), one connection's commands are rate-limited
// ([ws] command_rate / command_burst: error 429 and a close), and the pipes' recovery rings hold
// at most [ws] recovery_memory bytes together, the oldest going first, while pipe_since still
// recovers every message from the stored history. `ws` clients; mysql2 as the backend.
//
// Two servers: `srv` with the defaults (rate 100/s, burst 400) and `small` with
// recovery_memory = 64K and dev_index_size = 100.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { wsOpen, closeAll, RawWs, httpGet, metric, uniq, waitUntil } from './wsclient.mjs';

const srv = await startServer();
const small = await startServer({ extraConf: '[main]\ndev_index_size = 100\n\n[ws]\nrecovery_memory = 64K\n' });
const db = await mysql2Connect(srv);
const smallDb = await mysql2Connect(small);

after(async () => {
    await closeAll(srv);
    await closeAll(small);
    for (const c of [db, smallDb]) await c.end().catch(() => c.destroy());
    try {
        await srv.stop();
    } finally {
        await small.stop();
    }
});

const publish = (conn, pipe, event, message) =>
    conn.query('INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)', [pipe, event, message]);
const metrics = async (server) => (await httpGet(server.wsPort, '/metrics')).body.toString();
const pathFor = (devid) => `/ws/sesion=&myid=0&devid=${devid}&v=4.09&uuid=${'b'.repeat(32)}&api=js`;

test('a dev_id that is not a tenant number gets error 406 over the WebSocket and a close; an empty or unset one is tenant 0', small.wrap(async () => {
    for (const devid of ['abc', '-1', '100', '5x', '99999999999999999999']) {
        const raw = new RawWs(small.wsPort, `devid=${devid}`);
        const h = await raw.handshake(pathFor(devid));
        assert.equal(h.status, 101, h.statusLine);
        const f = await raw.nextFrame((fr) => fr.opcode === 1, { what: `the error for devid=${devid}` });
        const m = JSON.parse(f.text);
        assert.equal(m.event, 'error', f.text);
        assert.equal(m.data.error_code, 406, f.text);
        assert.match(m.data.error, /dev_id is not a number from 0 to 99/, f.text);
        assert.equal(raw.frames.pending((fr) => fr.opcode === 1 && /serverInfo/.test(fr.text)).length, 0, 'no serverInfo');
        await raw.waitClosed();
    }
    // the largest tenant and an empty dev_id are served; the empty one is tenant 0's
    const top = await wsOpen(small, { devId: 99 });
    assert.equal(top.info.event, 'serverInfo');
    // empty, and JavaScript's `undefined` / `null` (CppComet's client on a page without a dev_id)
    const unset = [];
    for (const devId of ['', 'undefined', 'null']) {
        const c = await wsOpen(small, { devId, name: `devid=${devId}` });
        await c.subscribe('dev_empty_pipe');
        unset.push(c);
    }
    await publish(smallDb, 'dev_empty_pipe', 'e', 'to tenant 0');
    for (const c of unset) assert.equal((await c.nextOn('dev_empty_pipe')).data, 'to tenant 0');
    await Promise.all([top.close(), ...unset.map((c) => c.close())]);
}));

test('1,000 pipe_log commands at once: error 429 and a close; 300 at once and another connection are served', srv.wrap(async () => {
    await db.query("INSERT INTO pipes_settings (name, length) VALUES ('rate_hist', 10)");
    await publish(db, 'rate_hist', 'e', 'h1');
    const before = metric(await metrics(srv), 'ccomet_ws_rate_limited_total');
    const flood = await wsOpen(srv, { name: 'flood' });
    for (let i = 0; i < 1000; i++) flood.send(`pipe_log\nrate_hist\nm${i}`);
    const err = await flood.next((m) => m.pipe === 'sys' && m.event === 'error', { what: 'the 429' });
    assert.equal(err.data.error_code, 429, JSON.stringify(err));
    assert.match(err.data.error, /Too many commands \(more than 400 at once or 100 per second\)/);
    await flood.closed;
    const answered = flood.pending((m) => m.pipe === 'rate_hist').length;
    assert.ok(answered >= 400 && answered < 1000, `history answers before the cut: ${answered}`);
    assert.equal(metric(await metrics(srv), 'ccomet_ws_rate_limited_total'), before + 1);
    // a page's burst well under the bucket is served whole, and the flood disturbed nobody
    const page = await wsOpen(srv, { name: 'page' });
    for (let i = 0; i < 300; i++) page.send(`pipe_log\nrate_hist\np${i}`);
    await page.sync();
    assert.equal(page.pending((m) => m.pipe === 'rate_hist').length, 300);
    assert.ok(page.isOpen);
    await page.close();
}));

test('recovery rings stay under [ws] recovery_memory (64K): the oldest go first, pipe_since reads them from the store', small.wrap(async () => {
    const pipes = Array.from({ length: 20 }, (_, i) => `ring_${i}`);
    for (const p of pipes) await smallDb.query('INSERT INTO pipes_settings (name, length) VALUES (?, 20)', [p]);
    const sub = await wsOpen(small, { name: 'ring-sub' });
    await sub.subscribe(...pipes);
    const body = (p, n) => `${p}:${n}:${'x'.repeat(8000)}`;
    // 20 pipes x 3 messages x 8 KB: 480 KB through rings that may hold 64 KB
    const firstIds = {};
    for (let n = 1; n <= 3; n++) {
        for (const p of pipes) {
            await publish(smallDb, p, 'e', body(p, n));
            const m = await sub.next((x) => x.pipe === p && x.data === body(p, n), { what: `${p} #${n}` });
            if (n === 1) firstIds[p] = m.id;
        }
    }
    const text = await metrics(small);
    const held = metric(text, 'ccomet_recovery_bytes');
    const evicted = metric(text, 'ccomet_recovery_evicted_total');
    assert.ok(held > 0 && held <= 65536, `ring bytes ${held}`);
    assert.ok(evicted >= 40, `evicted ${evicted}`);
    // ring_0's messages left the ring first; a reconnecting page still gets #2 and #3 (and the live one)
    await sub.close();
    const again = await wsOpen(small, { name: 'ring-again' });
    await again.subscribe('ring_0');
    again.send(`pipe_since\nring_0\n${firstIds.ring_0}`);
    await again.sync();
    assert.deepEqual(again.pending((m) => m.pipe === 'ring_0').map((m) => m.data), [body('ring_0', 2), body('ring_0', 3)]);
    const live = uniq('live');
    await publish(smallDb, 'ring_0', 'e', live);
    assert.equal((await again.next((m) => m.pipe === 'ring_0' && m.data === live)).data, live);
    await again.close();
}));

// [ws] max_connections_per_ip: past it an address gets HTTP 503 instead of the upgrade; other
// addresses are served, and a connection that closes gives its address a slot back.
test('max_connections_per_ip = 3: the 4th from 127.0.0.5 gets 503, 127.0.0.6 is served, a close frees a slot', { timeout: 30000 }, async () => {
    const capped = await startServer({ extraConf: '[ws]\nmax_connections_per_ip = 3\n' });
    try {
        await capped.wrap(async () => {
            const five = await Promise.all([1, 2, 3].map((i) => wsOpen(capped, { localAddress: '127.0.0.5', name: `five${i}` })));
            await assert.rejects(wsOpen(capped, { localAddress: '127.0.0.5', name: 'five4' }), /unexpected HTTP 503/);
            const six = await wsOpen(capped, { localAddress: '127.0.0.6', name: 'six' });
            await six.subscribe('web_cap');
            const refused = metric((await httpGet(capped.wsPort, '/metrics')).body.toString(), 'ccomet_ws_per_ip_refused_total');
            assert.equal(refused, 1);
            await five[0].close();
            // the server sees the close on its own loop turn: the slot comes back then
            let again = null;
            await waitUntil(async () => {
                again = await wsOpen(capped, { localAddress: '127.0.0.5', name: 'five-again' }).catch(() => null);
                return again !== null;
            }, { what: 'a slot back for 127.0.0.5 after a close' });
            await assert.rejects(wsOpen(capped, { localAddress: '127.0.0.5', name: 'five5' }), /unexpected HTTP 503/);
            assert.match(capped.log, /connection refused: max_connections_per_ip" peer=127\.0\.0\.5 limit=3/);
        })();
    } finally {
        await closeAll(capped);
        await capped.stop();
    }
});
