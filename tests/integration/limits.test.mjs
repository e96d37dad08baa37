// Limits: servers started with small [cometql] limits (query length, packet size, IN-list length,
// message size, connections, handshake timeout), and 16 MiB+ payloads in both directions with the
// default limits (continuation packets, exact 0xffffff boundaries).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { RawConn, rawLogin, packet, COM, comQuery } from './mysql_raw.mjs';

const small = await startServer({
    extraConf: [
        '[cometql]',
        'max_query_length = 2048',
        'max_packet = 65536',
        'max_in_values = 5',
        'max_message_size = 100',
        'connect_timeout = 1',
    ].join('\n'),
});
const few = await startServer({ extraConf: '[cometql]\nmax_connections = 3\n' });
const big = await startServer();
// max_output at its floor, so that any result of a few hundred KiB crosses it
const tight = await startServer({ extraConf: '[cometql]\nmax_output = 64K\n' });
// the memory bounds of one result and of long data (audit M4), at their floors
const budget = await startServer({ extraConf: '[cometql]\nmax_result_size = 64K\nmax_long_data = 64K\nmax_prepared_memory = 64K\nmax_rows_examined = 50\n' });
after(() => Promise.all([small.stop(), few.stop(), big.stop(), tight.stop(), budget.stop()]));

const MiB = 1024 * 1024;
const CHUNK = 0xffffff;

async function withConn(srv, o, fn) {
    const c = await mysql2Connect(srv, o);
    c.on('error', () => { /* surfaces through the failing statement */ });
    try {
        return await fn(c);
    } finally {
        await c.end().catch(() => c.destroy());
    }
}

async function stillWorks(c, what) {
    const [rows] = await c.query({ sql: 'SELECT 1', rowsAsArray: true });
    assert.deepEqual(rows, [[1]], `SELECT 1 after ${what}`);
}

/** sql fails with ERR errno on c, and c still answers SELECT 1. */
async function expectErr(c, sql, errno, re) {
    await assert.rejects(c.query(sql), (e) => {
        assert.ok(e.sqlMessage !== undefined, `a server ERR expected, got ${e.stack}`);
        assert.equal(e.errno, errno, `errno: got ${e.errno} (${e.sqlState}) ${e.sqlMessage}`);
        assert.match(String(e.sqlState ?? ''), /^[0-9A-Z]{5}$/);
        if (re) assert.match(e.sqlMessage, re);
        return true;
    });
    await stillWorks(c, `ERR ${errno}`);
}

/** Polls `SHOW STATUS LIKE 'Threads_connected'` on c every 20 ms until it equals n (5 s max). */
async function waitThreads(c, n, why = '') {
    const deadline = Date.now() + 5000;
    let last;
    for (;;) {
        const [rows] = await c.query("SHOW STATUS LIKE 'Threads_connected'");
        last = Number(rows.find((r) => r.Variable_name === 'Threads_connected')?.Value);
        if (last === n) return;
        if (Date.now() > deadline) assert.fail(`Threads_connected stayed ${last}, expected ${n}${why ? ` ${why}` : ''}`);
        await new Promise((r) => setTimeout(r, 20));
    }
}

// ---- small limits --------------------------------------------------------------------------------

test('max_query_length: a longer query is ERR 11, the limit itself passes, the connection stays', small.wrap(async () => {
    await withConn(small, {}, async (c) => {
        const at = (n) => `SELECT '${'q'.repeat(n - "SELECT ''".length)}'`;
        const exact = at(2048);
        assert.equal(Buffer.byteLength(exact), 2048);
        const [rows] = await c.query({ sql: `${exact}`, rowsAsArray: true });
        assert.equal(rows[0][0].length, 2048 - "SELECT ''".length, 'a query of exactly max_query_length runs');
        await expectErr(c, at(2049), 11, /max_query_length/);
        await expectErr(c, at(3000), 11);
        // prepared statements are held to the same limit
        await assert.rejects(c.execute(`${at(3000)} AS v`), (e) => e.errno === 11);
        await stillWorks(c, 'a refused prepare');
    });
}));

test('max_packet: a bigger packet is ERR 1153 and that connection is closed; another keeps working', small.wrap(async () => {
    const other = await mysql2Connect(small);
    other.on('error', () => {});
    const c = await rawLogin(small);
    try {
        // a payload of exactly max_packet is framed fine (then refused as too long a query)
        const at = Buffer.alloc(65536, 0x20);
        at[0] = COM.QUERY;
        await c.write(packet(0, at));
        const r1 = await c.readResult();
        assert.equal(r1.ok, false, JSON.stringify(r1));
        assert.equal(r1.code, 11, `a max_packet-sized query: ${JSON.stringify(r1)}`);
        assert.equal((await c.ping()).ok, true, 'the connection stays after ERR 11');

        // a header announcing max_packet + 1 bytes: refused from the header, before the body
        // (only part of the body is sent, so nothing is left unread when the server closes)
        const hdr = Buffer.alloc(4);
        hdr.writeUIntLE(65537, 0, 3);
        hdr[3] = 0;
        await c.write(Buffer.concat([hdr, Buffer.from([COM.QUERY]), Buffer.alloc(1000, 0x20)]));
        const { seq, payload } = await c.readPacket();
        assert.equal(payload[0], 0xff, `ERR expected, got 0x${payload[0].toString(16)}`);
        assert.equal(payload.readUInt16LE(1), 1153);
        assert.equal(seq, 1, 'the ERR answers the command (seq 1)');
        assert.match(payload.subarray(9).toString(), /max_allowed_packet/);
        assert.equal(await c.waitClosed(5000), true, 'the server closes the connection after ERR 1153');

        await stillWorks(other, 'another connection sent a too-big packet');
        const [rows] = await other.query('SHOW DATABASES');
        assert.ok(rows.length >= 1);
    } finally {
        c.destroy();
        await other.end().catch(() => other.destroy());
    }
}));

test('max_in_values: an IN list of 6 values (and a 6-row INSERT) is ERR 18; 5 are fine', small.wrap(async () => {
    await withConn(small, {}, async (c) => {
        const [ok] = await c.query('SELECT * FROM users_auth WHERE id IN (1, 2, 3, 4, 5)');
        assert.deepEqual(ok, []);
        await expectErr(c, 'SELECT * FROM users_auth WHERE id IN (1, 2, 3, 4, 5, 6)', 18, /max_in_values/);
        await expectErr(c, 'DELETE FROM users_auth WHERE id IN (1, 2, 3, 4, 5, 6)', 18);
        const rows = (n) => Array.from({ length: n }, (_, i) => `(${700 + i}, 'h${i}')`).join(', ');
        const [ins] = await c.query(`INSERT INTO users_auth (id, hash) VALUES ${rows(5)}`);
        assert.equal(ins.affectedRows, 5);
        await expectErr(c, `INSERT INTO users_auth (id, hash) VALUES ${rows(6)}`, 18);
        const [after6] = await c.query('SELECT id FROM users_auth WHERE id = 705');
        assert.deepEqual(after6, [], 'no row of the refused INSERT was written');
        await c.query('DELETE FROM users_auth WHERE id IN (700, 701, 702, 703, 704)');
    });
}));

test('max_message_size: a message or data value over the limit is ERR 11; exactly the limit passes', small.wrap(async () => {
    await withConn(small, {}, async (c) => {
        const m100 = 'm'.repeat(100);
        const m101 = 'm'.repeat(101);
        const [a] = await c.query(`INSERT INTO users_messages (id, event, message) VALUES (81, 'ev', '${m100}')`);
        assert.equal(a.affectedRows, 1);
        await expectErr(c, `INSERT INTO users_messages (id, event, message) VALUES (81, 'ev', '${m101}')`, 11, /max_message_size/);
        const [q] = await c.query('SELECT message FROM users_messages WHERE id = 81');
        assert.deepEqual(q.map((r) => r.message), [m100]);
        await c.query("INSERT INTO pipes_settings (name, length) VALUES ('size_pipe', 5)");
        await c.query(`INSERT INTO pipes_messages (name, event, message) VALUES ('size_pipe', 'ev', '${m100}')`);
        await expectErr(c, `INSERT INTO pipes_messages (name, event, message) VALUES ('size_pipe', 'ev', '${m101}')`, 11);
        await expectErr(c, `INSERT INTO users_data (id, data) VALUES (81, '${m101}')`, 11);
        // the limit counts bytes: 34 four-byte characters are 136 bytes
        await expectErr(c, `INSERT INTO users_data (id, data) VALUES (81, '${'😀'.repeat(34)}')`, 11);
        await assert.rejects(c.execute('INSERT INTO users_data (id, data) VALUES (?, ?)', [81, m101]), (e) => e.errno === 11);
        await stillWorks(c, 'a refused execute');
        await c.query('DELETE FROM users_messages WHERE id = 81');
        await c.query("DELETE FROM pipes_settings WHERE name = 'size_pipe'");
    });
}));

test('connect_timeout = 1: a client that reads the handshake and never answers is closed', { timeout: 5000 }, small.wrap(async () => {
    const authed = await rawLogin(small);
    try {
        const c = await RawConn.connect(small.port);
        const t0 = Date.now();
        const h = await c.readHandshake();
        assert.equal(h.protocol, 10);
        await c.closed; // the 'close' event; the test's 5 s timeout bounds the wait
        const waited = Date.now() - t0;
        assert.ok(waited >= 900, `closed after ${waited} ms: too early for a 1 s connect_timeout`);
        // an authenticated connection is under idle_timeout, not connect_timeout
        const p = await authed.ping();
        assert.equal(p.ok, true, 'the authenticated connection survived past connect_timeout');
    } finally {
        authed.destroy();
    }
}));

// ---- max_connections ---------------------------------------------------------------------------

test('max_connections = 3: the 4th connection gets ERR 1040; after one closes, a new one succeeds', few.wrap(async () => {
    const a = await mysql2Connect(few);
    a.on('error', () => {});
    await waitThreads(a, 1); // the harness's readiness probe is gone
    const b = await mysql2Connect(few);
    const c = await mysql2Connect(few);
    b.on('error', () => {});
    c.on('error', () => {});
    const extra = [];
    try {
        await assert.rejects(mysql2Connect(few), (e) => {
            assert.equal(e.errno, 1040, `errno ${e.errno}: ${e.message}`);
            assert.match(e.message, /Too many connections/);
            return true;
        });
        // on the wire: the ERR replaces the handshake (seq 0), then the server closes
        const raw = await RawConn.connect(few.port);
        const { seq, payload } = await raw.readPacket();
        assert.equal(payload[0], 0xff, 'ERR instead of a handshake');
        assert.equal(seq, 0);
        assert.equal(payload.readUInt16LE(1), 1040);
        assert.match(payload.subarray(9).toString(), /Too many connections/);
        assert.equal(await raw.waitClosed(5000), true, 'the refused connection is closed');
        raw.destroy();
        // the three that got in still work
        for (const x of [a, b, c]) await stillWorks(x, 'a refused 4th connection');

        await c.end(); // COM_QUIT: mysql2 resolves at once and leaves the close to the server
        await waitThreads(a, 2, '(after COM_QUIT from one of the three clients)');
        const d = await mysql2Connect(few);
        d.on('error', () => {});
        extra.push(d);
        await stillWorks(d, 'a connection slot was freed');
        await assert.rejects(mysql2Connect(few), (e) => e.errno === 1040, 'full again');
    } finally {
        for (const x of [a, b, c, ...extra]) await x.end().catch(() => x.destroy());
    }
}));

// ---- back-pressure (max_output) -----------------------------------------------------------------
// Guards the hang that once failed a clean-clone `make test` in the 16 MiB case: a result larger
// than max_output paused the connection's reading, and when the kernel took the whole result in
// one uv_try_write no on_write ever came to resume it, so the next query waited for ever. With
// max_output = 64K the kernel takes a 300 KB result in one write every time: deterministic.

test('max_output = 64K: results far larger than max_output, one after another, never stall the connection', { timeout: 30000 }, tight.wrap(async () => {
    await withConn(tight, {}, async (c) => {
        for (let i = 0; i < 50; i++) {
            const n = 100000 + i * 4099;
            const [rows] = await c.query({ sql: `SELECT '${'r'.repeat(n)}' AS v`, rowsAsArray: true });
            assert.equal(rows[0][0].length, n, `round ${i}: length`);
            await stillWorks(c, `a ${n}-byte result over a 64 KiB max_output (round ${i})`);
        }
    });
}));

test('max_output = 64K: 20 pipelined queries with 300 KB results each are all answered, in order', { timeout: 30000 }, tight.wrap(async () => {
    const c = await rawLogin(tight);
    try {
        const n = 300000;
        const qs = [];
        for (let i = 0; i < 20; i++) qs.push(comQuery(`SELECT '${String(i).padStart(2, '0')}${'p'.repeat(n)}'`));
        await c.write(Buffer.concat(qs)); // one write: the server has every query buffered at once
        for (let i = 0; i < 20; i++) {
            const r = await c.readResult();
            assert.equal(r.ok, true, `reply ${i}: ${r.message ?? ''}`);
            assert.equal(r.rows[0][0].length, n + 2, `reply ${i}: length`);
            assert.equal(r.rows[0][0].slice(0, 2), String(i).padStart(2, '0'), `reply ${i} in order`);
        }
        const p = await c.ping();
        assert.equal(p.ok, true, 'PING after the pipelined results');
    } finally {
        c.destroy();
    }
}));

// ---- 16 MiB+ payloads --------------------------------------------------------------------------

test('a 17 MiB query and its 17 MiB result cross as continuation packets (mysql2 query)', { timeout: 120000 }, big.wrap(async () => {
    await withConn(big, {}, async (c) => {
        const s = 'x'.repeat(17 * MiB);
        const [rows] = await c.query({ sql: `SELECT '${s}'`, rowsAsArray: true });
        assert.equal(rows.length, 1);
        assert.equal(rows[0][0].length, s.length, 'length of the returned string');
        assert.ok(rows[0][0] === s, 'the returned 17 MiB string matches');
        await stillWorks(c, 'a 17 MiB round trip');
    });
}));

test('values of 16777215 and 16777216 bytes round-trip (query, and execute with a parameter)', { timeout: 120000 }, big.wrap(async () => {
    await withConn(big, {}, async (c) => {
        for (const n of [CHUNK, CHUNK + 1]) {
            // a pattern, so that a lost or duplicated chunk boundary byte would show
            const s = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(Math.ceil(n / 36)).slice(0, n);
            const [rows] = await c.query({ sql: `SELECT '${s}' AS v`, rowsAsArray: true });
            assert.equal(rows[0][0].length, n, `query: length of a ${n}-byte value`);
            assert.ok(rows[0][0] === s, `query: the ${n}-byte value matches`);
        }
        const s = 'y'.repeat(CHUNK + 1);
        const [rows] = await c.execute({ sql: 'SELECT ? AS v', rowsAsArray: true }, [s]);
        assert.equal(rows[0][0].length, s.length, 'execute: length');
        assert.ok(rows[0][0] === s, 'execute: the 16 MiB parameter comes back');
        await stillWorks(c, '16 MiB values');
    });
}));

/**
 * Reads MySQL frames from a logged-in RawConn's socket without RawConn's per-chunk copying:
 * next() returns { seqs, payload } with continuation packets (0xffffff) joined.
 */
function frameReader(conn) {
    const sock = conn.sock;
    sock.removeAllListeners('data');
    const chunks = conn.buf.length ? [conn.buf] : [];
    let have = conn.buf.length;
    let wake = null;
    let closed = false;
    sock.on('data', (d) => { chunks.push(d); have += d.length; if (wake) wake(); });
    sock.on('close', () => { closed = true; if (wake) wake(); });
    const take = async (n) => {
        const deadline = Date.now() + 20000;
        while (have < n) {
            if (closed) throw new Error(`connection closed with ${have} of ${n} bytes`);
            if (Date.now() > deadline) throw new Error(`timed out with ${have} of ${n} bytes`);
            await new Promise((r) => { wake = r; setTimeout(r, 1000); });
            wake = null;
        }
        const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        chunks.length = 0;
        const out = all.subarray(0, n);
        if (all.length > n) chunks.push(all.subarray(n));
        have -= n;
        return out;
    };
    return {
        async next() {
            const seqs = [];
            const parts = [];
            for (;;) {
                const h = await take(4);
                const len = h.readUIntLE(0, 3);
                seqs.push(h[3]);
                parts.push(Buffer.from(await take(len)));
                if (len < CHUNK) break;
            }
            return { seqs, payload: parts.length === 1 ? parts[0] : Buffer.concat(parts) };
        },
    };
}

/** Frames a payload as the MySQL protocol does, from sequence id 0 (with the empty tail packet). */
function frames(payload) {
    const out = [];
    let seq = 0;
    let off = 0;
    for (;;) {
        const n = Math.min(CHUNK, payload.length - off);
        out.push(packet(seq++, payload.subarray(off, off + n)));
        off += n;
        if (n < CHUNK) break;
    }
    return Buffer.concat(out);
}

/** Reads a one-column, one-row text result; returns { value, seqs } (all sequence ids). */
async function readOneValue(r) {
    const seqs = [];
    const next = async () => { const f = await r.next(); seqs.push(...f.seqs); return f.payload; };
    const first = await next();
    if (first[0] === 0xff) throw new Error(`ERR ${first.readUInt16LE(1)}: ${first.subarray(9).toString()}`);
    assert.equal(first[0], 1, 'one column');
    await next(); // column definition
    assert.equal((await next())[0], 0xfe, 'EOF after the column definitions');
    const row = await next();
    let len;
    let off;
    if (row[0] < 0xfb) [len, off] = [row[0], 1];
    else if (row[0] === 0xfc) [len, off] = [row.readUInt16LE(1), 3];
    else if (row[0] === 0xfd) [len, off] = [row.readUIntLE(1, 3), 4];
    else if (row[0] === 0xfe) [len, off] = [Number(row.readBigUInt64LE(1)), 9];
    else throw new Error(`unexpected row header 0x${row[0].toString(16)}`);
    assert.equal(row.length, off + len, 'row payload = length prefix + value');
    const eof = await next();
    assert.ok(eof[0] === 0xfe && eof.length < 9, 'EOF after the row');
    return { value: row.subarray(off), rowLen: row.length, seqs };
}

test('exact 0xffffff boundaries on the wire: a query payload of 16777215 bytes and a row payload of 16777215 bytes', { timeout: 120000 }, big.wrap(async () => {
    const c = await rawLogin(big);
    try {
        const r = frameReader(c);
        const wrap = (n, tail = ' AS v') => Buffer.from(`\x03SELECT '${'z'.repeat(n)}'${tail}`, 'latin1');
        // 1) COM_QUERY payload exactly 0xffffff: a full packet, then an empty one
        const over = wrap(0).length;
        const q1 = wrap(CHUNK - over);
        assert.equal(q1.length, CHUNK);
        await c.write(frames(q1));
        const a = await readOneValue(r);
        assert.equal(a.value.length, CHUNK - over, 'the value of the 0xffffff-byte query');
        assert.ok(a.value.every((b) => b === 0x7a), 'value bytes');
        assert.deepEqual(a.seqs, a.seqs.map((_, i) => i + 2), 'the reply continues after seq 0 and 1');

        // 2) a row payload of exactly 0xffffff (4-byte length prefix + 16777211 bytes): the server
        // must follow it with an empty packet
        const q2 = wrap(CHUNK - 4);
        await c.write(frames(q2));
        const b = await readOneValue(r);
        assert.equal(b.rowLen, CHUNK, 'row payload is exactly 0xffffff');
        assert.equal(b.value.length, CHUNK - 4);
        assert.ok(b.value.every((x) => x === 0x7a), 'value bytes');
        assert.deepEqual(b.seqs, b.seqs.map((_, i) => i + 2), 'sequence ids (query took seq 0 and 1)');

        // 3) and the connection is still in step
        await c.write(packet(0, Buffer.from([COM.PING])));
        const p = await r.next();
        assert.equal(p.payload[0], 0x00, 'COM_PING after the boundary cases');
        assert.deepEqual(p.seqs, [1]);
    } finally {
        c.destroy();
    }
}));

// ---- memory bounds of an authenticated client (audit M4) ---------------------------------------

test('max_result_size = 64K: a SELECT whose values pass 64 KiB is ERR 11 naming the setting; with a LIMIT it fits; the connection stays', budget.wrap(async () => {
    await withConn(budget, {}, async (c) => {
        for (let i = 1; i <= 10; i++) await c.query('INSERT INTO users_data (id, data) VALUES (?, ?)', [i, 'd'.repeat(10000)]);
        const err = await c.query('SELECT * FROM users_data').then(() => null, (e) => e);
        assert.ok(err, 'the 100 KB result is refused');
        assert.equal(err.errno, 11, err.message);
        assert.match(err.sqlMessage, /max_result_size/);
        const [rows] = await c.query('SELECT * FROM users_data LIMIT 5');
        assert.equal(rows.length, 5, 'a result under the bound is answered');
    });
}));

test('max_long_data = 64K: long data past the bound over several parameters is ERR 1153 and a close; another connection is served', budget.wrap(async () => {
    const other = await mysql2Connect(budget);
    other.on('error', () => {});
    const c = await rawLogin(budget);
    try {
        const sql = Buffer.from('INSERT INTO users_data (id, data) VALUES (?, ?)');
        await c.write(packet(0, Buffer.concat([Buffer.from([0x16]), sql]))); // COM_STMT_PREPARE
        const { payload: okp } = await c.readPacket();
        assert.equal(okp[0], 0x00, 'prepare OK');
        const stmtId = okp.readUInt32LE(1);
        for (let i = 0; i < 3; i++) await c.readPacket(); // 2 parameter definitions + EOF
        const chunk = Buffer.alloc(30000, 0x61);
        const longData = (param) => {
            const head = Buffer.alloc(7);
            head[0] = 0x18; // COM_STMT_SEND_LONG_DATA: no reply while under the bound
            head.writeUInt32LE(stmtId, 1);
            head.writeUInt16LE(param, 5);
            return packet(0, Buffer.concat([head, chunk]));
        };
        await c.write(longData(1));
        await c.write(longData(0)); // 60 KB on two parameters: still under 64 KiB
        assert.equal((await c.ping()).ok, true, 'under the bound nothing is answered but PING');
        await c.write(longData(1)); // 90 KB in all
        const { payload } = await c.readPacket();
        assert.equal(payload[0], 0xff);
        assert.equal(payload.readUInt16LE(1), 1153);
        assert.match(payload.subarray(9).toString(), /max_long_data/);
        assert.equal(await c.waitClosed(), true);
        await stillWorks(other, 'another connection passed max_long_data');
    } finally {
        c.destroy();
        await other.end().catch(() => other.destroy());
    }
}));

test('max_prepared_memory = 64K: prepared statements past 64 KiB in all get ERR 1041 naming the setting; closing one makes room', budget.wrap(async () => {
    const c = await rawLogin(budget);
    try {
        // 200 values each (1 KB of text, more as parsed values): a few fit in 64 KiB
        const sql = (n) => Buffer.from(`SELECT * FROM users_data WHERE id IN (${Array.from({ length: 200 }, (_, i) => i + n).join(',')})`);
        const prepare = async (n) => {
            await c.write(packet(0, Buffer.concat([Buffer.from([0x16]), sql(n)])));
            const { payload } = await c.readPacket();
            if (payload[0] === 0xff) return { code: payload.readUInt16LE(1), message: payload.subarray(9).toString() };
            const id = payload.readUInt32LE(1);
            const cols = payload.readUInt16LE(5);
            for (let i = 0; i < cols + 1; i++) await c.readPacket(); // column definitions + EOF
            return { id };
        };
        const ids = [];
        let refused;
        for (let n = 0; n < 40 && !refused; n++) {
            const r = await prepare(n);
            if (r.code) refused = r;
            else ids.push(r.id);
        }
        assert.ok(refused, 'a statement past the budget is refused');
        console.log(`${ids.length} statements of 200 values fit in 64 KiB`);
        assert.ok(ids.length >= 1 && ids.length < 40, `statements prepared before the refusal: ${ids.length}`);
        assert.equal(refused.code, 1041);
        assert.match(refused.message, /max_prepared_memory/);
        assert.equal((await c.ping()).ok, true, 'the connection stays');
        const close = Buffer.alloc(5);
        close[0] = 0x19; // COM_STMT_CLOSE: no reply
        close.writeUInt32LE(ids[0], 1);
        await c.write(packet(0, close));
        const again = await prepare(100);
        assert.ok(again.id, `after a close there is room: ${JSON.stringify(again)}`);
    } finally {
        c.destroy();
    }
}));

test('max_rows_examined = 50: a SELECT whose WHERE is tried on more rows is ERR 1104, matching or not; a narrower one is answered (audit M5)', budget.wrap(async () => {
    await withConn(budget, {}, async (c) => {
        await c.query("INSERT INTO pipes_settings (name, length) VALUES ('exam_big', 100), ('exam_small', 100)");
        for (let i = 0; i < 60; i++) await c.query("INSERT INTO pipes_messages (name, event, message) VALUES ('exam_big', 'e', ?)", [`m${i}`]);
        for (let i = 0; i < 10; i++) await c.query("INSERT INTO pipes_messages (name, event, message) VALUES ('exam_small', 'e', ?)", [`s${i}`]);
        for (const sql of ["SELECT * FROM pipes_messages WHERE name = 'exam_big' AND event = 'none'",
            "SELECT * FROM pipes_messages WHERE name IN ('exam_small', 'exam_big') AND event = 'none'",
            "DELETE FROM pipes_messages WHERE name = 'exam_big' AND event = 'none'"]) {
            const err = await c.query(sql).then(() => null, (e) => e);
            assert.ok(err, `${sql}: refused`);
            assert.equal(err.errno, 1104, err.message);
            assert.match(err.sqlMessage, /more than 50 rows \(\[cometql\] max_rows_examined\)/);
        }
        const [rows] = await c.query("SELECT message FROM pipes_messages WHERE name = 'exam_small' AND event = 'e'");
        assert.equal(rows.length, 10);
        const [none] = await c.query("SELECT message FROM pipes_messages WHERE name = 'exam_small' AND event = 'none'");
        assert.equal(none.length, 0);
    });
}));
