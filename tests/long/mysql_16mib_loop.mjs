// The 16 MiB reproduction, looped: values of 16777215 and 16777216 bytes round-trip through
// mysql2 (query, and execute with a parameter) N times against one server (default: the ASan
// build, 1000 iterations). Each iteration has a 60 s deadline; a stall prints the iteration and
// exits 1. Run: node tests/long/mysql_16mib_loop.mjs [iterations]
import assert from 'node:assert/strict';
import { startServer } from '../integration/harness.mjs';
import { mysql2Connect } from '../integration/clients.mjs';

const N = Number(process.argv[2] ?? 1000);
const CHUNK = 0xffffff;
const srv = await startServer();
const c = await mysql2Connect(srv);
const pattern = 'abcdefghijklmnopqrstuvwxyz0123456789';
const values = [CHUNK, CHUNK + 1].map((n) => pattern.repeat(Math.ceil(n / 36)).slice(0, n));
const t0 = Date.now();
for (let i = 1; i <= N; i++) {
    const timer = setTimeout(() => { console.log(`STALL in iteration ${i}`); process.exit(1); }, 60000);
    for (const s of values) {
        const [rows] = await c.query({ sql: `SELECT '${s}' AS v`, rowsAsArray: true });
        assert.ok(rows[0][0] === s, `iteration ${i}: the ${s.length}-byte value`);
    }
    const [rows] = await c.execute({ sql: 'SELECT ? AS v', rowsAsArray: true }, [values[1]]);
    assert.ok(rows[0][0] === values[1], `iteration ${i}: execute`);
    clearTimeout(timer);
    if (i % 50 === 0) console.log(`${i} iterations, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
console.log(`${N} of ${N} iterations passed in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
await c.end();
await srv.stop();
