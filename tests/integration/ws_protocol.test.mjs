// The browser port at the protocol level: the WebSocket handshake and CppComet's URL forms, frame
// handling (RFC 6455 close codes, fragmentation, ping/pong, every length encoding), the HTTP
// routes of the ws port, the per-connection limits and the slow-reader cut-off. Raw `ws` clients
// and bare TCP sockets; the backend publishes over CometQL (mysql2).
//
// Two servers: `srv` (defaults, [ws] max_message = 1024, [main] base_dir = a temp dir) and `lim`
// ([ws] max_subscriptions = 3, max_connections_per_user = 2, max_output = 64 KiB).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { startServer } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import {
    wsOpen, closeAll, RawWs, printable, acceptFor, encodeFrame, httpRaw, httpGet, metric, waitUntil, uniq,
} from './wsclient.mjs';

const staticRoot = mkdtempSync(path.join(os.tmpdir(), 'ccomet-static-'));
const baseDir = path.join(staticRoot, 'www');
mkdirSync(baseDir);
writeFileSync(path.join(baseDir, 'hello.txt'), 'hello from base_dir\n');
writeFileSync(path.join(baseDir, 'a.js'), 'console.log("a.js");\n');
writeFileSync(path.join(baseDir, 'data.xyz'), 'unknown extension\n');
// 3 MiB: more than [ws] max_output (1 MiB), less than max_static_file (8 MiB)
const bigJs = `// ${'x'.repeat(3 * 1024 * 1024)}\n`;
writeFileSync(path.join(baseDir, 'big.js'), bigJs);
writeFileSync(path.join(staticRoot, 'secret.txt'), 'outside base_dir\n');

const srv = await startServer({ extraConf: `[main]\nbase_dir = ${baseDir}\n\n[ws]\nmax_message = 1024\n` });
const lim = await startServer({
    extraConf: '[ws]\nmax_subscriptions = 3\nmax_connections_per_user = 2\nmax_output = 65536\n',
});
const db = await mysql2Connect(srv);
const limDb = await mysql2Connect(lim);

// A client that stays connected through every bad-input case and must keep working.
let bystander;
before(async () => {
    bystander = await wsOpen(srv, { name: 'bystander' });
    await bystander.subscribe('bystander_pipe');
});

let srvStoppedByTest = false; // the last test stops srv itself (and reports how that went)
after(async () => {
    await closeAll(srv);
    await closeAll(lim);
    await db.end().catch(() => db.destroy());
    await limDb.end().catch(() => limDb.destroy());
    try {
        if (!srvStoppedByTest) await srv.stop();
    } finally {
        await lim.stop();
        rmSync(staticRoot, { recursive: true, force: true });
    }
});

const publish = (conn, pipe, event, message) =>
    conn.query('INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)', [pipe, event, message]);

/** The bystander still receives a message published after the bad input. */
async function bystanderAlive() {
    const text = uniq('alive');
    await publish(db, 'bystander_pipe', 'alive', text);
    const m = await bystander.next((x) => x.pipe === 'bystander_pipe' && x.data === text, { what: `bystander message ${text}` });
    assert.equal(m.event, 'alive');
}

const anonPath = (prefix = '/ws/') => `${prefix}sesion=&myid=0&devid=0&v=4.09&uuid=${'a'.repeat(32)}&api=js`;

/** A raw connection that completed the handshake (anonymous) and received serverInfo. */
async function rawOpen(server = srv, name = 'raw') {
    const raw = new RawWs(server.wsPort, name);
    const h = await raw.handshake(anonPath());
    assert.equal(h.status, 101, `handshake: ${h.statusLine}`);
    const info = await raw.nextJson((m) => m.event === 'serverInfo');
    assert.equal(info.authorized, false);
    return raw;
}

/** The next frame must be a close frame with code; then the server closes the TCP connection. */
async function expectClose(raw, code) {
    const f = await raw.nextFrame((fr) => fr.opcode === 8, { what: `a close frame ${code}` });
    assert.equal(f.code, code, `close code: got ${f.code} (reason ${JSON.stringify(f.text.slice(2))}), want ${code}`);
    await raw.waitClosed();
}

/** Parses a text frame as JSON, failing with the raw text when it is not JSON. */
function parseFrame(f) {
    try {
        return JSON.parse(f.text);
    } catch (e) {
        assert.fail(`the server sent a text frame that is not JSON (${printable(e.message)}): ${JSON.stringify(f.text)}`);
    }
}

// ---- handshake ----------------------------------------------------------------------------------

test('handshake: CppComet URL by name, Sec-WebSocket-Accept, serverInfo with the users_auth hash', srv.wrap(async () => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (101, 'hash101secret')");
    const raw = new RawWs(srv.wsPort, 'hs');
    const uuid = crypto.randomBytes(16).toString('hex');
    const h = await raw.handshake(`/ws/sesion=hash101secret&myid=101&devid=0&v=4.09&uuid=${uuid}&api=js`);
    assert.equal(h.status, 101, h.statusLine);
    assert.equal(h.headers.upgrade.toLowerCase(), 'websocket');
    assert.equal(h.headers.connection.toLowerCase(), 'upgrade');
    assert.equal(h.headers['sec-websocket-accept'], acceptFor(raw.key), 'Sec-WebSocket-Accept');
    const f = await raw.nextFrame((fr) => fr.opcode === 1, { what: 'serverInfo' });
    assert.equal(f.masked, false, 'server frames are not masked');
    const info = parseFrame(f);
    assert.equal(info.pipe, 'sys');
    assert.equal(info.event, 'serverInfo');
    assert.equal(info.authorized, true);
    assert.equal(info.data, 'hash101secret', 'serverInfo data is the stored users_auth hash');
    assert.equal(typeof info.message_send_time, 'number');
    assert.ok(Math.abs(info.message_send_time - Date.now() / 1000) < 60, 'message_send_time is unix seconds');
    raw.sendFrame(Buffer.from([0x03, 0xe8]), { opcode: 8 });
    await expectClose(raw, 1000);
}));

test('handshake: /comet-server/ws/ prefix, parameters in any order by name, CppComet positional order', srv.wrap(async () => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (102, 'hash102')");
    const a = await wsOpen(srv, { session: 'hash102', userId: 102, prefix: '/comet-server/ws/' });
    assert.equal(a.info.authorized, true, `/comet-server/ws/: ${JSON.stringify(a.info)}`);
    assert.equal(a.info.data, 'hash102');
    const uuid = 'b'.repeat(32);
    const b = await wsOpen(srv, { url: `ws://127.0.0.1:${srv.wsPort}/ws/uuid=${uuid}&v=4.09&devid=0&myid=102&sesion=hash102&api=js` });
    assert.equal(b.info.authorized, true, `parameters by name, shuffled: ${JSON.stringify(b.info)}`);
    // CppComet parses by position: the values after the 1st..4th '=' whatever the names are
    const c = await wsOpen(srv, { url: `ws://127.0.0.1:${srv.wsPort}/ws/s=hash102&i=102&d=0&x=4.09&uuid=${uuid}&api=js` });
    assert.equal(c.info.authorized, true, `positional parameters: ${JSON.stringify(c.info)}`);
    assert.equal(c.info.data, 'hash102');
    // all three are user 102: a private message reaches each of them
    await db.query("INSERT INTO users_messages (id, event, message) VALUES (102, 'pm', 'to all three')");
    for (const x of [a, b, c]) {
        const m = await x.nextOn('msg', 'pm');
        assert.equal(m.data, 'to all three');
    }
    await Promise.all([a.close(), b.close(), c.close()]);
}));

test('handshake: a requested subprotocol is echoed', srv.wrap(async () => {
    const raw = new RawWs(srv.wsPort, 'proto');
    const h = await raw.handshake(anonPath(), { headers: { 'Sec-WebSocket-Protocol': 'chat, superchat' } });
    assert.equal(h.status, 101, h.statusLine);
    assert.equal(h.headers['sec-websocket-protocol'], 'chat');
    raw.destroy();
    const c = await wsOpen(srv, { protocols: ['myproto'] });
    assert.equal(c.ws.protocol, 'myproto');
    await c.close();
    const none = new RawWs(srv.wsPort, 'noproto');
    const h2 = await none.handshake(anonPath());
    assert.equal(h2.headers['sec-websocket-protocol'], undefined, 'no subprotocol asked, none echoed');
    none.destroy();
}));

test('handshake: a missing Sec-WebSocket-Key or a version other than 13 is HTTP 400', srv.wrap(async () => {
    const a = new RawWs(srv.wsPort, 'nokey');
    const h = await a.handshake(anonPath(), { omitKey: true });
    assert.equal(h.status, 400, h.statusLine);
    await a.waitClosed();
    const b = new RawWs(srv.wsPort, 'v12');
    const h2 = await b.handshake(anonPath(), { version: '12' });
    assert.equal(h2.status, 400, h2.statusLine);
    await b.waitClosed();
    const c = new RawWs(srv.wsPort, 'nover');
    const h3 = await c.handshake(anonPath(), { version: null });
    assert.equal(h3.status, 400, h3.statusLine);
    await c.waitClosed();
    await bystanderAlive();
}));

test('handshake: a request without sesion gets the sys error envelope (error_code 401), then close', srv.wrap(async () => {
    for (const p of ['/ws/', '/ws/nothing_here']) {
        const raw = new RawWs(srv.wsPort, `nosession ${p}`);
        const h = await raw.handshake(p);
        assert.equal(h.status, 101, `${p}: CppComet reports URL errors over the WebSocket: ${h.statusLine}`);
        const f = await raw.nextFrame((fr) => fr.opcode === 1, { what: 'the error envelope' });
        const m = parseFrame(f);
        assert.equal(m.pipe, 'sys', f.text);
        assert.equal(m.event, 'error', f.text);
        assert.equal(m.data.error_code, 401, f.text);
        assert.match(m.data.error, /401/, f.text);
        assert.equal(typeof m.data.info, 'string', f.text);
        assert.equal(raw.frames.pending((fr) => fr.opcode === 1 && /serverInfo/.test(fr.text)).length, 0, 'no serverInfo');
        await raw.waitClosed();
    }
    await bystanderAlive();
}));

test('serverInfo of an anonymous connection: authorized false, data ""', srv.wrap(async () => {
    const c = await wsOpen(srv, { session: 'whatever', userId: 0 });
    assert.equal(c.info.pipe, 'sys');
    assert.equal(c.info.event, 'serverInfo');
    assert.equal(c.info.authorized, false);
    assert.equal(c.info.data, '');
    await c.close();
}));

// ---- frames -------------------------------------------------------------------------------------

test('frames: a ping gets a pong with the same payload and the connection stays open', srv.wrap(async () => {
    const c = await wsOpen(srv);
    const payload = Buffer.from('ping-payload-\u00e9');
    const pong = new Promise((resolve) => c.ws.once('pong', resolve));
    c.ws.ping(payload);
    const got = await Promise.race([pong, c.closed.then((x) => { throw new Error(`closed on ping: ${JSON.stringify(x)}`); })]);
    assert.deepEqual(got, payload);
    const empty = new Promise((resolve) => c.ws.once('pong', resolve));
    c.ws.ping();
    assert.equal((await empty).length, 0);
    await c.sync(); // still open and answering
    assert.ok(c.isOpen);
    await c.close();
}));

test('frames: a message in 3 fragments with a ping interleaved is one command', srv.wrap(async () => {
    const raw = await rawOpen(srv, 'frag');
    raw.sendFrame('subscription\nfrag', { fin: false, opcode: 1 });
    raw.sendFrame('mid', { opcode: 9 });
    raw.sendFrame('_pipe_one\nfrag_pi', { fin: false, opcode: 0 });
    raw.sendFrame('pe_two', { fin: true, opcode: 0 });
    const pong = await raw.nextFrame((f) => f.opcode === 10, { what: 'the pong' });
    assert.equal(pong.text, 'mid');
    // a round trip so that the subscription is in place
    raw.sendFrame('pipe_count\nfrag_pipe_one\nmk\n');
    raw.sendFrame('pipe_count\nweb_x\nfence1\n');
    await raw.nextJson((m) => m.marker === 'fence1');
    await publish(db, 'frag_pipe_one', 'ev', 'one');
    await publish(db, 'frag_pipe_two', 'ev', 'two');
    const m1 = await raw.nextJson((m) => m.pipe === 'frag_pipe_one');
    assert.equal(m1.data, 'one');
    const m2 = await raw.nextJson((m) => m.pipe === 'frag_pipe_two');
    assert.equal(m2.data, 'two');
    raw.destroy();
}));

const ALPHA = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-';

test('frames: payloads of 123..126, 65535 and 65536 bytes arrive intact', srv.wrap(async () => {
    const c = await wsOpen(srv, { name: 'sizes' });
    await c.subscribe('size_pipe');
    // the envelope around the data: measured on a first message, then adjusted per message
    await publish(db, 'size_pipe', 'e', 'x');
    const probe = await c.nextOn('size_pipe');
    let overhead = probe.__bytes - 1;
    const seen = new Set();
    for (const target of [123, 124, 125, 126, 127, 65535, 65536, 65537]) {
        let ok = false;
        for (let attempt = 0; attempt < 3 && !ok; attempt++) {
            const n = target - overhead;
            // printable, no JSON escapes; a pattern so that a cut or shift shows
            const data = Array.from({ length: n }, (_, i) => ALPHA[i % ALPHA.length]).join('');
            await publish(db, 'size_pipe', 'e', data);
            const m = await c.nextOn('size_pipe', undefined, { what: `the ${target}-byte frame` });
            assert.ok(m.__raw === undefined, `payload ${m.__bytes} bytes is not JSON: ${m.__raw?.slice(-60)}`);
            assert.equal(m.data.length, data.length, `data length in a ${m.__bytes}-byte frame`);
            assert.equal(m.data, data, `data of a ${m.__bytes}-byte frame`);
            seen.add(m.__bytes);
            ok = m.__bytes === target;
            overhead = m.__bytes - n; // the id may have gained a digit
        }
        assert.ok(ok, `no frame of exactly ${target} bytes was produced`);
    }
    assert.ok([123, 124, 125, 126, 65535, 65536].every((n) => seen.has(n)), `sizes seen: ${[...seen]}`);
    await c.close();
}));

test('frames: an unmasked client frame is closed with 1002', srv.wrap(async () => {
    const raw = await rawOpen(srv, 'unmasked');
    raw.sendFrame('subscription\nabc', { mask: false });
    await expectClose(raw, 1002);
    await bystanderAlive();
}));

test('frames: invalid UTF-8 in a text frame is closed with 1007', srv.wrap(async () => {
    const raw = await rawOpen(srv, 'utf8');
    raw.sendFrame(Buffer.from([0x73, 0x75, 0x62, 0xff, 0xfe, 0x0a, 0x61, 0x62]));
    await expectClose(raw, 1007);
    // also split across fragments: the assembled message is checked
    const raw2 = await rawOpen(srv, 'utf8frag');
    raw2.sendFrame(Buffer.from('subscription\nab'), { fin: false, opcode: 1 });
    raw2.sendFrame(Buffer.from([0xc3, 0x28]), { fin: true, opcode: 0 });
    await expectClose(raw2, 1007);
    await bystanderAlive();
}));

test('frames: a message bigger than [ws] max_message is closed with 1009', srv.wrap(async () => {
    const raw = await rawOpen(srv, 'big');
    raw.sendFrame(`subscription\n${'p'.repeat(2000)}`);
    await expectClose(raw, 1009);
    // the same total in fragments that are each under the limit
    const raw2 = await rawOpen(srv, 'bigfrag');
    raw2.sendFrame(`subscription\n${'a'.repeat(600)}`, { fin: false, opcode: 1 });
    raw2.sendFrame('b'.repeat(600), { fin: true, opcode: 0 });
    await expectClose(raw2, 1009);
    await bystanderAlive();
}));

test('frames: a binary message is closed with 1003', srv.wrap(async () => {
    const raw = await rawOpen(srv, 'binary');
    raw.sendFrame(Buffer.from('subscription\nbin_pipe'), { opcode: 2 });
    await expectClose(raw, 1003);
    await bystanderAlive();
}));

test('frames: reserved bits set are closed with 1002', srv.wrap(async () => {
    for (const rsv of [4, 2, 1]) {
        const raw = await rawOpen(srv, `rsv${rsv}`);
        raw.sendFrame('subscription\nrsv_pipe', { rsv });
        await expectClose(raw, 1002);
    }
    await bystanderAlive();
}));

test('frames: close 1000 from the client is echoed, then the TCP connection is closed', srv.wrap(async () => {
    const raw = await rawOpen(srv, 'close');
    const payload = Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from('bye')]);
    raw.sendFrame(payload, { opcode: 8 });
    await expectClose(raw, 1000);
    // with the ws library too: the close event carries 1000 and the server's close (clean)
    const c = await wsOpen(srv);
    c.ws.close(1000, 'done');
    const info = await c.waitClosed();
    assert.equal(info.code, 1000);
    await bystanderAlive();
}));

test('frames: more protocol errors are closed with 1002 (bad close code, long ping, stray continuation, interleaved text)', srv.wrap(async () => {
    const cases = [
        ['close code 999', (r) => r.sendFrame(Buffer.from([0x03, 0xe7]), { opcode: 8 })],
        ['close code 1005 (reserved)', (r) => r.sendFrame(Buffer.from([0x03, 0xed]), { opcode: 8 })],
        ['close with a 1-byte payload', (r) => r.sendFrame(Buffer.from([0x03]), { opcode: 8 })],
        ['ping with 126 bytes', (r) => r.sendFrame(Buffer.alloc(126, 0x61), { opcode: 9 })],
        ['fragmented ping', (r) => r.sendFrame('x', { opcode: 9, fin: false })],
        ['continuation without a start', (r) => r.sendFrame('abc', { opcode: 0, fin: true })],
        ['a new text frame inside a fragmented message', (r) => {
            r.sendFrame('subscription\nab', { opcode: 1, fin: false });
            r.sendFrame('cd', { opcode: 1, fin: true });
        }],
        ['opcode 3 (reserved)', (r) => r.sendFrame('x', { opcode: 3 })],
    ];
    for (const [what, send] of cases) {
        const raw = await rawOpen(srv, what);
        send(raw);
        const f = await raw.nextFrame((fr) => fr.opcode === 8, { what: `the close frame for ${what}` });
        assert.equal(f.code, 1002, `${what}: close code ${f.code} (${JSON.stringify(f.text.slice(2))})`);
        await raw.waitClosed();
    }
    await bystanderAlive();
}));

test('frames: the upgrade request and frames in one TCP write; several frames per write; a frame split byte by byte', srv.wrap(async () => {
    const raw = new RawWs(srv.wsPort, 'pipelined');
    await raw.connected;
    raw.key = crypto.randomBytes(16).toString('base64');
    const req = `GET ${anonPath()} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${raw.key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    raw.write(Buffer.concat([Buffer.from(req), encodeFrame('subscription\npipelined_a'),
        encodeFrame('pipe_count\nweb_x\nm1\n'), encodeFrame('pipe_count\nweb_x\nm2\n')]));
    const h = await raw.head();
    assert.equal(h.status, 101, h.statusLine);
    assert.equal(h.headers['sec-websocket-accept'], acceptFor(raw.key));
    assert.equal((await raw.nextJson((m) => m.marker === 'm1')).event, 'user_in_pipe');
    await raw.nextJson((m) => m.marker === 'm2');
    // one frame, one byte per write (each in its own turn of the event loop)
    const bytes = encodeFrame('subscription\npipelined_a\npipelined_b');
    for (const b of bytes) {
        raw.write(Buffer.from([b]));
        await new Promise((r) => setImmediate(r));
    }
    const fence = encodeFrame('pipe_count\nweb_x\nm3\n');
    raw.write(fence.subarray(0, 3));
    await new Promise((r) => setImmediate(r));
    raw.write(fence.subarray(3));
    await raw.nextJson((m) => m.marker === 'm3');
    await publish(db, 'pipelined_b', 'e', 'split ok');
    assert.equal((await raw.nextJson((m) => m.pipe === 'pipelined_b')).data, 'split ok');
    raw.destroy();
}));

test('HTTP: garbage instead of a request is 400 and close', srv.wrap(async () => {
    const r = await httpRaw(srv.wsPort, Buffer.concat([crypto.randomBytes(32).map((b) => (b % 2 ? 0x01 : 0xfe)), Buffer.from('\r\n\r\n')]));
    assert.equal(r.status, 400, r.statusLine);
    const r2 = await httpRaw(srv.wsPort, 'THIS IS NOT HTTP\r\n\r\n');
    assert.equal(r2.status, 400, r2.statusLine);
    // a TLS ClientHello on the plain port: no CRLF at all
    const hello = Buffer.from('16030100f4010000f00303' + '00'.repeat(40), 'hex');
    const r3 = await httpRaw(srv.wsPort, hello);
    assert.equal(r3.status, 400, r3.statusLine);
    await bystanderAlive();
}));

test('HTTP: a request head over 8 KiB is 431', srv.wrap(async () => {
    const head = `GET ${anonPath()} HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(9000)}\r\n\r\n`;
    const r = await httpRaw(srv.wsPort, head);
    assert.equal(r.status, 431, r.statusLine);
    // many headers, none too long, 12 KiB in total
    const many = Array.from({ length: 120 }, (_, i) => `X-H${i}: ${'v'.repeat(90)}\r\n`).join('');
    const r2 = await httpRaw(srv.wsPort, `GET /info HTTP/1.1\r\nHost: x\r\n${many}\r\n`);
    assert.equal(r2.status, 431, r2.statusLine);
    await bystanderAlive();
}));

// ---- HTTP routes --------------------------------------------------------------------------------

test('HTTP: GET /info is JSON with status ok', srv.wrap(async () => {
    for (const p of ['/info', '/comet-server/info']) {
        const r = await httpGet(srv.wsPort, p);
        assert.equal(r.status, 200, `${p}: ${r.statusLine}`);
        assert.match(r.headers['content-type'], /json/);
        const j = JSON.parse(r.body.toString());
        assert.equal(j.status, 'ok');
        assert.equal(r.headers['content-length'], String(r.body.length));
    }
}));

test('HTTP: OPTIONS is 200 with CORS headers and body +OK', srv.wrap(async () => {
    const r = await httpRaw(srv.wsPort, 'OPTIONS /anything HTTP/1.1\r\nHost: x\r\nOrigin: http://example.com\r\n\r\n');
    assert.equal(r.status, 200, r.statusLine);
    assert.equal(r.headers['access-control-allow-origin'], '*');
    assert.match(r.headers['access-control-allow-headers'] ?? '', /content-type/i);
    assert.ok(r.headers.allow || r.headers['access-control-allow-methods'], 'Allow or Access-Control-Allow-Methods');
    assert.equal(r.body.toString(), '+OK');
}));

test('HTTP: GET /metrics is Prometheus text with the ws and CometQL gauges', srv.wrap(async () => {
    const r = await httpGet(srv.wsPort, '/metrics');
    assert.equal(r.status, 200, r.statusLine);
    assert.match(r.headers['content-type'], /^text\/plain/);
    const text = r.body.toString();
    assert.match(text, /^# TYPE ccomet_ws_connections gauge$/m);
    assert.equal(r.headers['access-control-allow-origin'], undefined, 'no page needs to read /metrics (audit L7)');
    const ws = metric(text, 'ccomet_ws_connections');
    const cq = metric(text, 'ccomet_cometql_connections');
    assert.ok(ws >= 1, `ccomet_ws_connections ${ws} (the bystander is connected)\n${text}`);
    assert.ok(cq >= 1, `ccomet_cometql_connections ${cq} (the test holds one)\n${text}`);
}));

test('HTTP: POST / is 404', srv.wrap(async () => {
    const r = await httpRaw(srv.wsPort, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc');
    assert.equal(r.status, 404, r.statusLine);
    const r2 = await httpRaw(srv.wsPort, `POST ${anonPath()} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
    assert.equal(r2.status, 404, `long polling (POST /ws/...) is gone: ${r2.statusLine}`);
}));

test('HTTP: static files from [main] base_dir, with Content-Type; traversal and unknown extensions are 404', srv.wrap(async () => {
    const t = await httpGet(srv.wsPort, '/hello.txt');
    assert.equal(t.status, 200, t.statusLine);
    assert.match(t.headers['content-type'], /^text\/plain/);
    assert.equal(t.body.toString(), 'hello from base_dir\n');
    const j = await httpGet(srv.wsPort, '/a.js');
    assert.equal(j.status, 200, j.statusLine);
    assert.match(j.headers['content-type'], /javascript/);
    assert.equal(j.body.toString(), 'console.log("a.js");\n');
    const p = await httpGet(srv.wsPort, '/comet-server/hello.txt');
    assert.equal(p.status, 200, `the /comet-server prefix is stripped: ${p.statusLine}`);
    for (const bad of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '/x/../../secret.txt']) {
        const r = await httpGet(srv.wsPort, bad);
        assert.equal(r.status, 404, `${bad}: ${r.statusLine}`);
        assert.ok(!r.body.toString().includes('outside base_dir'), `${bad} leaked a file outside base_dir`);
    }
    const u = await httpGet(srv.wsPort, '/data.xyz');
    assert.equal(u.status, 404, `unknown extension: ${u.statusLine}`);
    const missing = await httpGet(srv.wsPort, '/missing.txt');
    assert.equal(missing.status, 404, missing.statusLine);
    // a file over [ws] max_output is still served whole (audit L8: it used to cut the connection)
    const big = await httpGet(srv.wsPort, '/big.js');
    assert.equal(big.status, 200, big.statusLine);
    assert.equal(big.body.length, bigJs.length);
    assert.equal(big.body.toString(), bigJs);
    await bystanderAlive();
}));

// ---- limits -------------------------------------------------------------------------------------

test('limits: [ws] max_subscriptions = 3: a sys error names the limit, the first 3 pipes work', lim.wrap(async () => {
    const c = await wsOpen(lim, { name: 'subs' });
    c.send('subscription\nlim_p1\nlim_p2\nlim_p3\nlim_p4\nlim_p5');
    const err = await c.nextError();
    assert.match(JSON.stringify(err.data), /limit|too many/i);
    assert.match(JSON.stringify(err.data), /3/);
    await c.sync();
    for (const p of ['lim_p4', 'lim_p5', 'lim_p1', 'lim_p2', 'lim_p3']) await publish(limDb, p, 'e', p);
    for (const p of ['lim_p1', 'lim_p2', 'lim_p3']) assert.equal((await c.nextOn(p)).data, p);
    assert.deepEqual(c.pending((m) => m.pipe === 'lim_p4' || m.pipe === 'lim_p5'), [], 'pipes over the limit were subscribed');
    await c.close();
}));

test('limits: [ws] max_connections_per_user = 2: the third connection gets an error and is closed', lim.wrap(async () => {
    await limDb.query("INSERT INTO users_auth (id, hash) VALUES (201, 'h201')");
    const a = await wsOpen(lim, { session: 'h201', userId: 201, name: 'u201a' });
    const b = await wsOpen(lim, { session: 'h201', userId: 201, name: 'u201b' });
    assert.equal(a.info.authorized, true);
    assert.equal(b.info.authorized, true);
    const c = await wsOpen(lim, { session: 'h201', userId: 201, name: 'u201c', waitInfo: false });
    const err = await c.next((m) => m.pipe === 'sys' && m.event === 'error', { what: 'the too-many-connections error' });
    assert.match(JSON.stringify(err.data), /connection/i);
    await c.waitClosed();
    assert.deepEqual(c.pending((m) => m.event === 'serverInfo' && m.authorized === true), [], 'the third connection was authorized');
    await limDb.query("INSERT INTO users_messages (id, event, message) VALUES (201, 'pm', 'still here')");
    assert.equal((await a.nextOn('msg', 'pm')).data, 'still here');
    assert.equal((await b.nextOn('msg', 'pm')).data, 'still here');
    await a.close();
    // a slot is free again
    const d = await wsOpen(lim, { session: 'h201', userId: 201, name: 'u201d' });
    assert.equal(d.info.authorized, true);
    await Promise.all([b.close(), d.close()]);
}));

test('slow reader: over [ws] max_output the non-reading client is cut off, a reading one gets everything', lim.wrap(async () => {
    const slow = await wsOpen(lim, { name: 'slow' });
    const fast = await wsOpen(lim, { name: 'fast' });
    await slow.subscribe('slow_pipe');
    await fast.subscribe('slow_pipe');
    slow.ws._socket.pause();
    const body = 'z'.repeat(1000);
    const BATCH = 32;
    let sent = 0;
    let cut = false;
    const metricsNow = async () => metric((await httpGet(lim.wsPort, '/metrics')).body.toString(), 'ccomet_ws_slow_readers_total');
    assert.equal(await metricsNow(), 0);
    // ~2 MB first; if the kernel's socket buffers swallowed it all, go on (up to 24 MB) until cut
    while (!cut && sent < 24_000) {
        const rows = [];
        const params = [];
        for (let i = 0; i < BATCH; i++) {
            rows.push('(?, ?, ?)');
            params.push('slow_pipe', 'e', `${String(sent + i).padStart(6, '0')}:${body}`);
        }
        await limDb.query(`INSERT INTO pipes_messages (name, event, message) VALUES ${rows.join(', ')}`, params);
        sent += BATCH;
        if (sent >= 2048 && sent % (BATCH * 8) === 0) cut = (await metricsNow()) >= 1;
    }
    if (!cut) cut = (await waitUntil(async () => (await metricsNow()) >= 1, { what: 'ccomet_ws_slow_readers_total >= 1' }).catch(() => false));
    assert.ok(cut, `no slow-reader cut-off after ${sent} messages of ~1 KB`);
    // the slow client's connection is gone: once it reads again it sees the end
    slow.ws._socket.resume();
    const info = await slow.waitClosed(10_000);
    assert.notEqual(info.code, 1000, 'cut off, not a clean close');
    // the reading client got every message, in order
    let last = -1;
    let lastId = 0;
    for (let i = 0; i < sent; i++) {
        const m = await fast.nextOn('slow_pipe', undefined, { what: `message ${i} of ${sent}` });
        const n = Number(m.data.slice(0, 6));
        assert.equal(n, last + 1, `fast reader: message ${n} after ${last}`);
        assert.ok(m.id > lastId, `ids increase: ${m.id} after ${lastId}`);
        last = n;
        lastId = m.id;
    }
    assert.ok(fast.isOpen, 'the reading client is still connected');
    await fast.sync();
    await fast.close();
}));


// Last: it stops `srv`.
test('shutdown: SIGTERM with a client that stopped reading exits promptly; open clients get 1001', srv.wrap(async () => {
    const stuck = await wsOpen(srv, { name: 'stuck' });
    await stuck.subscribe('stuck_pipe');
    stuck.ws._socket.pause();
    const metricsText = async () => (await httpGet(srv.wsPort, '/metrics')).body.toString();
    // publish 32 KB at a time until the server's writes to it stall (its socket buffers are full)
    let prev = metric(await metricsText(), 'ccomet_ws_bytes_out_total');
    let stalled = false;
    let sent = 0;
    while (!stalled && sent < 30_000) {
        const rows = [];
        const params = [];
        for (let i = 0; i < 32; i++) {
            rows.push('(?, ?, ?)');
            params.push('stuck_pipe', 'e', 'y'.repeat(1000));
        }
        await db.query(`INSERT INTO pipes_messages (name, event, message) VALUES ${rows.join(', ')}`, params);
        sent += 32;
        const cur = metric(await metricsText(), 'ccomet_ws_bytes_out_total');
        stalled = cur - prev < 16_000; // less than half of the batch went out
        prev = cur;
    }
    assert.ok(stalled, `writes to the non-reading client never stalled after ${sent} messages`);
    const text = await metricsText();
    assert.equal(metric(text, 'ccomet_ws_slow_readers_total'), 0, 'cut off below [ws] max_output (1M)');
    const bystanderClosed = bystander.closed;
    srvStoppedByTest = true;
    try {
        // the harness SIGKILLs it and throws when ccomet is still running 10 s after SIGTERM
        await srv.stop();
    } finally {
        stuck.ws.terminate();
    }
    const info = await bystanderClosed;
    assert.equal(info.code, 1001, `the open bystander's close code at shutdown: ${JSON.stringify(info)}`);
}));
