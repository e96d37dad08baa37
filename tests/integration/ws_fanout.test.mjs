// Fan-out to many subscribers at once: enough dirty connections in one loop iteration to take
// the parallel flush path (ws_server.c, PARALLEL_MIN = 256), under the sanitizer build, and with
// [ws] flush_slice below the subscriber count (300: a parallel slice, then the rest next turn; 7:
// dozens of one-thread slices, messages published meanwhile joining the queues not yet
// written). Every subscriber must get every message, in order, exactly once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { wsOpen, closeAll, httpGet, metric, waitUntil } from './wsclient.mjs';

const SUBSCRIBERS = 320;
const MESSAGES = 25;

const servers = [];
after(async () => {
    for (const { srv, db } of servers) {
        await closeAll(srv);
        await db.end().catch(() => db.destroy());
        await srv.stop();
    }
});

for (const slice of [2048, 300, 7]) {
    test(`${SUBSCRIBERS} subscribers each receive ${MESSAGES} messages in order, once (flush_slice ${slice})`, { timeout: 60000 }, async () => {
        const srv = await startServer({ extraConf: `[ws]\nmax_output = 65536\nflush_slice = ${slice}\n` });
        const db = await mysql2Connect(srv);
        servers.push({ srv, db });
        await srv.wrap(async () => {
            const clients = [];
            for (let i = 0; i < SUBSCRIBERS; i += 40) {
                const batch = await Promise.all(Array.from({ length: Math.min(40, SUBSCRIBERS - i) }, () => wsOpen(srv)));
                clients.push(...batch);
            }
            await Promise.all(clients.map((c) => c.subscribe('web_fan')));
            // single inserts and, at the end, a burst in flight at once: several messages per
            // connection per write, and (small slices) messages arriving between slices
            for (let m = 0; m < MESSAGES - 10; m++) {
                await db.query('INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)', ['web_fan', 'ev', `m${m}`]);
            }
            await Promise.all(Array.from({ length: 10 }, (_, k) => db.query(
                'INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)', ['web_fan', 'ev', `m${MESSAGES - 10 + k}`])));
            await Promise.all(clients.map(async (c) => {
                let last = 0;
                for (let m = 0; m < MESSAGES; m++) {
                    const msg = await c.nextOn('web_fan', 'ev', { timeoutMs: 20000 });
                    assert.equal(msg.data, `m${m}`);
                    assert.ok(msg.id > last, 'ids increase');
                    last = msg.id;
                }
                assert.equal(c.pending((x) => x.pipe === 'web_fan').length, 0, 'no duplicates');
            }));
            // all connections are still open and usable
            const [rows] = await db.query("SELECT * FROM pipes WHERE name = 'web_fan'");
            assert.equal(rows[0].users, SUBSCRIBERS);
        })();
    });
}

// Batched writes (io_uring where the kernel allows, [main] io_uring = yes) meet a full socket: the
// send says EAGAIN at once, the rest waits for the socket, and past max_output the reader that
// stopped is cut off alone while 39 others get everything in order.
for (const uring of ['yes', 'no']) {
    test(`a batch with a stopped reader among 40 (io_uring = ${uring}): it alone is cut off, the others get every message in order`, { timeout: 90000 }, async () => {
        const srv = await startServer({ extraConf: `[main]\nio_uring = ${uring}\n[ws]\nmax_output = 65536\n` });
        const db = await mysql2Connect(srv);
        servers.push({ srv, db });
        await srv.wrap(async () => {
            assert.match(srv.log, new RegExp(`msg="fan-out writes" io_uring=${uring === 'yes' ? '[01]' : '0'}`));
            const clients = await Promise.all(Array.from({ length: 40 }, () => wsOpen(srv)));
            await Promise.all(clients.map((c) => c.subscribe('web_batch')));
            const slow = clients[17];
            slow.ws._socket.pause();
            const body = 'z'.repeat(1000);
            const metricsNow = async () => metric((await httpGet(srv.wsPort, '/metrics')).body.toString(), 'ccomet_ws_slow_readers_total');
            let sent = 0;
            let cut = false;
            while (!cut && sent < 24_000) {
                const rows = [];
                const params = [];
                for (let i = 0; i < 32; i++) {
                    rows.push('(?, ?, ?)');
                    params.push('web_batch', 'e', `${String(sent + i).padStart(6, '0')}:${body}`);
                }
                await db.query(`INSERT INTO pipes_messages (name, event, message) VALUES ${rows.join(', ')}`, params);
                sent += 32;
                if (sent >= 1024 && sent % 256 === 0) cut = (await metricsNow()) >= 1;
            }
            if (!cut) cut = await waitUntil(async () => (await metricsNow()) >= 1, { what: 'the stopped reader cut off' }).catch(() => false);
            assert.ok(cut, `no cut-off after ${sent} messages`);
            assert.equal(await metricsNow(), 1, 'only the stopped reader');
            slow.ws._socket.resume();
            await slow.waitClosed(10_000);
            await Promise.all(clients.filter((c) => c !== slow).map(async (c) => {
                for (let i = 0; i < sent; i++) {
                    const m = await c.nextOn('web_batch', 'e', { timeoutMs: 20000 });
                    assert.equal(Number(m.data.slice(0, 6)), i);
                }
                assert.ok(c.isOpen);
            }));
        })();
    });
}

// The writer thread's share is sent while the loop goes on (ws_server.c: lent connections).
// Browsers vanish mid-fan-out and new ones connect meanwhile: a lent connection's close waits
// for its share to come back, so its descriptor number cannot be reused by a new connection
// while the writer still sends on it (a new browser would get another pipe's frames before its
// handshake answer). Under the sanitizer build: no use after free of a closed connection.
test('browsers closing and connecting during parallel fan-outs: survivors get everything in order, newcomers only their own pipe', { timeout: 90000 }, async () => {
    const srv = await startServer({ extraConf: '[ws]\nmax_output = 4194304\nwriter_threads = 1\n' });
    const db = await mysql2Connect(srv);
    servers.push({ srv, db });
    await srv.wrap(async () => {
        assert.match(srv.log, /msg="fan-out writes" io_uring=[01] writer_threads=1/);
        const clients = [];
        for (let i = 0; i < SUBSCRIBERS; i += 40) {
            const batch = await Promise.all(Array.from({ length: Math.min(40, SUBSCRIBERS - i) }, () => wsOpen(srv)));
            clients.push(...batch);
        }
        await Promise.all(clients.map((c) => c.subscribe('web_churn')));
        const leaving = clients.filter((_, i) => i % 3 === 1);
        const staying = clients.filter((_, i) => i % 3 !== 1);
        const body = 'q'.repeat(4000);
        const ROUNDS = 12;
        const newcomers = [];
        for (let r = 0; r < ROUNDS; r++) {
            const burst = Promise.all(Array.from({ length: 4 }, (_, k) => db.query(
                'INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)',
                ['web_churn', 'ev', `${String(r * 4 + k).padStart(4, '0')}:${body}`])));
            // while that burst fans out: a tenth of the leavers drop their sockets, and as many
            // new browsers connect (accepted connections take the lowest free descriptors)
            const gone = leaving.slice(r * 9, r * 9 + 9);
            for (const c of gone) c.ws._socket.destroy();
            const fresh = Promise.all(gone.map(() => wsOpen(srv).then(async (c) => {
                await c.subscribe('web_calm');
                newcomers.push(c);
            })));
            await Promise.all([burst, fresh]);
        }
        await db.query("INSERT INTO pipes_messages (name, event, message) VALUES ('web_calm', 'ev', 'hello')");
        await Promise.all(staying.map(async (c) => {
            for (let m = 0; m < ROUNDS * 4; m++) {
                const msg = await c.nextOn('web_churn', 'ev', { timeoutMs: 30000 });
                assert.equal(Number(msg.data.slice(0, 4)), m, 'in order, none lost');
            }
            assert.equal(c.pending((x) => x.pipe === 'web_churn').length, 0, 'no duplicates');
            assert.ok(c.isOpen);
        }));
        assert.ok(newcomers.length >= 100, `${newcomers.length} newcomers`);
        await Promise.all(newcomers.map(async (c) => {
            const msg = await c.nextOn('web_calm', 'ev', { timeoutMs: 20000 });
            assert.equal(msg.data, 'hello');
            assert.equal(c.pending((x) => x.pipe === 'web_churn').length, 0, 'no frame of a pipe it never joined');
            assert.ok(c.isOpen);
        }));
        const [rows] = await db.query("SELECT * FROM pipes WHERE name = 'web_churn'");
        assert.equal(rows[0].users, staying.length);
    })();
});
