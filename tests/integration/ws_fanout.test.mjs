// Fan-out to many subscribers at once: enough dirty connections in one loop iteration to take
// the parallel flush path (ws_server.c, PARALLEL_MIN = 256), under the sanitizer build. Every
// subscriber must get every message, in order, exactly once; a slow reader among them is cut
// off alone.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { wsOpen, closeAll } from './wsclient.mjs';

const SUBSCRIBERS = 320;
const MESSAGES = 25;

const srv = await startServer({ extraConf: '[ws]\nmax_output = 65536\n' });
const db = await mysql2Connect(srv);

after(async () => {
    await closeAll(srv);
    await db.end().catch(() => db.destroy());
    await srv.stop();
});

test(`${SUBSCRIBERS} subscribers each receive ${MESSAGES} messages in order, once`, { timeout: 60000 }, srv.wrap(async () => {
    const clients = [];
    for (let i = 0; i < SUBSCRIBERS; i += 40) {
        const batch = await Promise.all(Array.from({ length: Math.min(40, SUBSCRIBERS - i) }, () => wsOpen(srv)));
        clients.push(...batch);
    }
    await Promise.all(clients.map((c) => c.subscribe('web_fan')));
    // a multi-row burst and single inserts: several messages per connection per flush
    for (let m = 0; m < MESSAGES; m++) {
        await db.query('INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)', ['web_fan', 'ev', `m${m}`]);
    }
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
}));
