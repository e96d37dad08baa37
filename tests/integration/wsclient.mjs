// Browser-side helpers for the integration tests: a `ws` client with an inbox of parsed messages,
// a raw WebSocket over net.Socket (for frames `ws` refuses to send), raw HTTP, JWT signing and
// polling. Everything waits on events with a timeout; nothing sleeps for a fixed time.
//
//   const c = await wsOpen(srv, { session: 'hash', userId: 5 });   // resolves after serverInfo
//   c.send('subscription\nchat');  await c.sync();                   // sync: a round trip fence
//   const m = await c.next((m) => m.pipe === 'chat');               // first matching message
import WebSocket from 'ws';
import net from 'node:net';
import crypto from 'node:crypto';
import { wsUrl } from './harness.mjs';

export const TIMEOUT_MS = 5000;

/** s with control characters made visible (test output must stay text). */
export const printable = (s) => String(s).replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

const clip = (s, n = 300) => (s.length > n ? `${s.slice(0, n)}...[${s.length} chars]` : s);
const show = (m) => {
    if (m && m.__raw !== undefined) return `UNPARSEABLE ${clip(JSON.stringify(m.__raw), 600)} (${m.__error})`;
    if (m && m.opcode !== undefined && m.payload) return `frame opcode=${m.opcode} fin=${m.fin} ${clip(JSON.stringify(m.text))}`;
    return clip(JSON.stringify(m));
};

/** Resolves once pred() is truthy (polled every 20 ms); rejects after timeoutMs. */
export async function waitUntil(pred, { timeoutMs = TIMEOUT_MS, what = 'condition', interval = 20 } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
        last = await pred();
        if (last) return last;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, interval));
    }
}

/** A queue of received items with predicate waits. */
class Inbox {
    constructor(name) {
        this.name = name;
        this.items = [];
        this.all = []; // everything ever received, for failure messages
        this.waiters = [];
        this.ended = null;
    }

    push(item) {
        this.items.push(item);
        this.all.push(item);
        for (const w of [...this.waiters]) this.poke(w);
    }

    end(why) {
        this.ended = why;
        for (const w of [...this.waiters]) this.poke(w);
    }

    poke(w) {
        const i = this.items.findIndex(w.pred);
        if (i >= 0) {
            const [item] = this.items.splice(i, 1);
            this.finish(w);
            w.resolve(item);
        } else if (this.ended && !w.allowEnd) {
            this.finish(w);
            w.reject(new Error(`${this.name}: ${this.ended} while waiting for ${w.what}\n${this.dump()}`));
        }
    }

    finish(w) {
        clearTimeout(w.timer);
        this.waiters = this.waiters.filter((x) => x !== w);
    }

    dump() {
        const tail = this.all.slice(-30).map(show).join('\n  ');
        return `  received (${this.all.length}, last 30):\n  ${tail}`;
    }

    next(pred = () => true, { timeoutMs = TIMEOUT_MS, what = 'a message' } = {}) {
        return new Promise((resolve, reject) => {
            const w = { pred, resolve, reject, what };
            w.timer = setTimeout(() => {
                this.finish(w);
                reject(new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what}\n${this.dump()}`));
            }, timeoutMs);
            this.waiters.push(w);
            this.poke(w);
        });
    }

    /** The unconsumed items matching pred (without consuming them). */
    pending(pred = () => true) {
        return this.items.filter(pred);
    }
}

let markerSeq = 0;
export const uniq = (p = 'm') => `${p}${process.pid}x${++markerSeq}`;

/** A `ws` client whose messages are JSON-parsed into an inbox. */
export class WsClient {
    constructor(url, { headers, protocols, name, localAddress } = {}) {
        this.url = url;
        this.name = name ?? url.replace(/^ws:\/\/[^/]+/, '');
        this.inbox = new Inbox(`ws ${this.name}`);
        this.raw = []; // payload Buffers, in order
        this.ws = new WebSocket(url, protocols ?? [], { headers, localAddress, perMessageDeflate: false, handshakeTimeout: TIMEOUT_MS });
        this.opened = new Promise((resolve, reject) => {
            this.ws.once('open', resolve);
            this.ws.once('error', reject);
            this.ws.once('unexpected-response', (req, res) => reject(new Error(`unexpected HTTP ${res.statusCode}`)));
        });
        this.opened.catch(() => {});
        this.closed = new Promise((resolve) => {
            this.ws.once('close', (code, reason) => {
                this.closeInfo = { code, reason: reason.toString() };
                this.inbox.end(`connection closed (code ${code})`);
                resolve(this.closeInfo);
            });
        });
        this.ws.on('error', (e) => { this.lastError = e; });
        this.ws.on('message', (data, isBinary) => {
            const buf = Buffer.isBuffer(data) ? data : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]);
            this.raw.push(buf);
            const text = buf.toString('utf8');
            let m;
            try {
                m = JSON.parse(text);
            } catch (e) {
                m = { __raw: text, __error: printable(e.message) };
            }
            if (m && typeof m === 'object') {
                Object.defineProperty(m, '__bytes', { value: buf.length, enumerable: false });
                Object.defineProperty(m, '__binary', { value: isBinary, enumerable: false });
            }
            this.inbox.push(m);
            // every server message is one JSON object: anything else is a server bug, and every
            // wait on this client fails at once with the text instead of timing out
            if (m.__raw !== undefined) this.inbox.end(`the server sent a text message that is not JSON: ${show(m)}`);
        });
    }

    get isOpen() {
        return this.ws.readyState === WebSocket.OPEN;
    }

    send(text) {
        this.ws.send(text);
    }

    next(pred, opts) {
        return this.inbox.next(pred, opts);
    }

    /** The next message on pipe (and event, when given). */
    nextOn(pipe, event, opts = {}) {
        return this.next((m) => m.pipe === pipe && (event === undefined || m.event === event),
            { what: `a message on ${pipe}${event ? `/${event}` : ''}`, ...opts });
    }

    /** The next sys error (pipe sys, event error). */
    nextError(opts = {}) {
        return this.next((m) => m.pipe === 'sys' && m.event === 'error', { what: 'a sys error', ...opts });
    }

    pending(pred) {
        return this.inbox.pending(pred);
    }

    /** A round trip: every command sent before has been processed once this resolves. */
    async sync() {
        const marker = uniq('sync');
        this.send(`pipe_count\nweb_sync_fence\n${marker}\n`);
        await this.next((m) => m.pipe === '_answer_pipe_count' && m.marker === marker, { what: `the sync answer ${marker}` });
    }

    subscribe(...pipes) {
        this.send(`subscription\n${pipes.join('\n')}`);
        return this.sync();
    }

    /** Closes (code 1000) and waits for the close event. */
    async close() {
        if (this.ws.readyState === WebSocket.CLOSED) return this.closeInfo;
        if (this.ws.readyState === WebSocket.CONNECTING) await this.opened.catch(() => {});
        if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
        const t = setTimeout(() => this.ws.terminate(), TIMEOUT_MS);
        const r = await this.closed;
        clearTimeout(t);
        return r;
    }

    /** Waits for the server to close the connection. */
    async waitClosed(timeoutMs = TIMEOUT_MS) {
        let timer;
        const r = await Promise.race([this.closed, new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeoutMs); })]);
        clearTimeout(timer);
        if (!r) throw new Error(`ws ${this.name}: not closed by the server within ${timeoutMs} ms\n${this.inbox.dump()}`);
        return r;
    }
}

/**
 * Opens a browser connection. o: { session, userId, devId, v, uuid, prefix, headers, protocols,
 * url, waitInfo = true }. With waitInfo it resolves after the serverInfo message, which is
 * consumed and kept as c.info.
 */
export async function wsOpen(srv, o = {}) {
    const url = o.url ?? wsUrl(srv, o);
    const c = new WsClient(url, { headers: o.headers, protocols: o.protocols, name: o.name, localAddress: o.localAddress });
    const clients = srv.__wsClients ?? (srv.__wsClients = new Set());
    clients.add(c);
    c.closed.then(() => clients.delete(c));
    await c.opened;
    if (o.waitInfo !== false) {
        c.info = await c.next((m) => m.pipe === 'sys' && m.event === 'serverInfo', { what: 'serverInfo' });
    }
    return c;
}

/** Closes every client wsOpen made on srv that is still open (for after()). */
export async function closeAll(srv) {
    await Promise.all([...(srv.__wsClients ?? [])].map((c) => c.close().catch(() => {})));
}

// ---- raw WebSocket ------------------------------------------------------------------------------

export function acceptFor(key) {
    return crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

/** Encodes one client frame. o: { fin = true, opcode = 1, mask = true, rsv = 0, len7 (override) } */
export function encodeFrame(payload, o = {}) {
    const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload ?? '', 'utf8');
    const fin = o.fin ?? true;
    const opcode = o.opcode ?? 1;
    const mask = o.mask ?? true;
    const b0 = (fin ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | opcode;
    let head;
    if (data.length < 126) {
        head = Buffer.from([b0, (mask ? 0x80 : 0) | data.length]);
    } else if (data.length < 65536) {
        head = Buffer.alloc(4);
        head[0] = b0;
        head[1] = (mask ? 0x80 : 0) | 126;
        head.writeUInt16BE(data.length, 2);
    } else {
        head = Buffer.alloc(10);
        head[0] = b0;
        head[1] = (mask ? 0x80 : 0) | 127;
        head.writeBigUInt64BE(BigInt(data.length), 2);
    }
    if (!mask) return Buffer.concat([head, data]);
    const key = crypto.randomBytes(4);
    const body = Buffer.alloc(data.length);
    for (let i = 0; i < data.length; i++) body[i] = data[i] ^ key[i & 3];
    return Buffer.concat([head, key, body]);
}

/** Parses server frames from buf; returns { frames, rest }. */
function decodeFrames(buf) {
    const frames = [];
    let off = 0;
    for (;;) {
        if (buf.length - off < 2) break;
        const b0 = buf[off];
        const b1 = buf[off + 1];
        let len = b1 & 0x7f;
        let hl = 2;
        if (len === 126) {
            if (buf.length - off < 4) break;
            len = buf.readUInt16BE(off + 2);
            hl = 4;
        } else if (len === 127) {
            if (buf.length - off < 10) break;
            len = Number(buf.readBigUInt64BE(off + 2));
            hl = 10;
        }
        const masked = (b1 & 0x80) !== 0;
        if (masked) hl += 4;
        if (buf.length - off < hl + len) break;
        const payload = Buffer.from(buf.subarray(off + hl, off + hl + len));
        frames.push({ fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, payload,
            text: payload.toString('utf8'), code: (b0 & 0x0f) === 8 && len >= 2 ? payload.readUInt16BE(0) : undefined });
        off += hl + len;
    }
    return { frames, rest: buf.subarray(off) };
}

/** Splits an HTTP response head from buf; null while incomplete. */
export function parseHttpHead(buf) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
    const [, status, reason] = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0]) ?? [];
    const headers = {};
    for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    return { statusLine: lines[0], status: Number(status), reason, headers, headLen: end + 4 };
}

/** A WebSocket over a bare TCP socket: any handshake, any frame, every server frame recorded. */
export class RawWs {
    constructor(port, name = 'raw') {
        this.name = name;
        this.sock = net.connect({ host: '127.0.0.1', port });
        this.sock.setNoDelay(true);
        this.buf = Buffer.alloc(0);
        this.response = null;
        this.frames = new Inbox(`raw ${name}`);
        this.bytes = Buffer.alloc(0); // everything received
        this.connected = new Promise((resolve, reject) => {
            this.sock.once('connect', resolve);
            this.sock.once('error', reject);
        });
        this.connected.catch(() => {});
        this.headWaiters = [];
        this.closed = new Promise((resolve) => {
            this.sock.once('close', () => {
                this.frames.end('TCP connection closed');
                for (const w of this.headWaiters) w();
                resolve();
            });
        });
        this.sock.on('error', (e) => { this.error = e; });
        this.sock.on('data', (d) => this.onData(d));
    }

    onData(d) {
        this.bytes = Buffer.concat([this.bytes, d]);
        this.buf = Buffer.concat([this.buf, d]);
        if (!this.response) {
            const h = parseHttpHead(this.buf);
            if (!h) return;
            this.response = h;
            this.buf = this.buf.subarray(h.headLen);
            for (const w of this.headWaiters) w();
            if (h.status !== 101) return;
        }
        if (this.response.status !== 101) return;
        const { frames, rest } = decodeFrames(this.buf);
        this.buf = Buffer.from(rest);
        for (const f of frames) this.frames.push(f);
    }

    write(bytes) {
        this.sock.write(bytes);
    }

    sendFrame(payload, o) {
        this.sock.write(encodeFrame(payload, o));
    }

    /** Sends the upgrade request for path with extra headers; resolves the parsed response head. */
    async handshake(path, { headers = {}, key = crypto.randomBytes(16).toString('base64'), version = '13', omitKey = false } = {}) {
        await this.connected;
        this.key = key;
        const lines = [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade'];
        if (!omitKey) lines.push(`Sec-WebSocket-Key: ${key}`);
        if (version !== null) lines.push(`Sec-WebSocket-Version: ${version}`);
        for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
        this.sock.write(`${lines.join('\r\n')}\r\n\r\n`);
        return this.head();
    }

    /** The response head, once it has arrived. */
    head(timeoutMs = TIMEOUT_MS) {
        if (this.response) return Promise.resolve(this.response);
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`raw ${this.name}: no HTTP response within ${timeoutMs} ms; got ${JSON.stringify(this.bytes.toString('latin1'))}`)), timeoutMs);
            this.headWaiters.push(() => {
                clearTimeout(timer);
                if (this.response) resolve(this.response);
                else reject(new Error(`raw ${this.name}: closed before an HTTP response; got ${JSON.stringify(this.bytes.toString('latin1'))}`));
            });
        });
    }

    nextFrame(pred = () => true, opts) {
        return this.frames.next(pred, opts);
    }

    /** The next text frame parsed as JSON and matching pred. */
    async nextJson(pred = () => true, opts = {}) {
        const f = await this.frames.next((fr) => {
            if (fr.opcode !== 1) return false;
            try {
                return pred(JSON.parse(fr.text));
            } catch {
                return false;
            }
        }, { what: 'a JSON text frame', ...opts });
        return JSON.parse(f.text);
    }

    /** Waits for the server to close the TCP connection. */
    async waitClosed(timeoutMs = TIMEOUT_MS) {
        let timer;
        const r = await Promise.race([this.closed.then(() => true), new Promise((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); })]);
        clearTimeout(timer);
        if (!r) throw new Error(`raw ${this.name}: TCP connection not closed by the server within ${timeoutMs} ms\n${this.frames.dump()}`);
    }

    destroy() {
        this.sock.destroy();
    }
}

/**
 * One raw HTTP exchange on the ws port: writes bytes, resolves { status, headers, body, raw } once
 * the server closes the connection (every HTTP reply there is Connection: close).
 */
export function httpRaw(port, bytes, timeoutMs = TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host: '127.0.0.1', port });
        const chunks = [];
        const timer = setTimeout(() => {
            sock.destroy();
            reject(new Error(`HTTP on port ${port}: the server did not close within ${timeoutMs} ms; got ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`));
        }, timeoutMs);
        sock.on('connect', () => sock.write(bytes));
        sock.on('data', (d) => chunks.push(d));
        sock.on('error', () => { /* a reset after the reply: the reply is what counts */ });
        sock.on('close', () => {
            clearTimeout(timer);
            const raw = Buffer.concat(chunks);
            const h = parseHttpHead(raw);
            if (!h) return reject(new Error(`HTTP on port ${port}: no complete response; got ${JSON.stringify(raw.toString('latin1'))}`));
            resolve({ ...h, body: raw.subarray(h.headLen), raw });
        });
    });
}

export const httpGet = (port, path, headers = {}) => httpRaw(port,
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);

// ---- JWT ----------------------------------------------------------------------------------------

const b64url = (b) => Buffer.from(b).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');

/** An HS256 JWT over payload with secret. */
/** The SIP credential a JWT session gets in serverInfo (src/proto/sip_credential.h): made from
 * the user's key for one expiry, a whole minute. */
export function sipCredential(key, devId, userId, expiry) {
    return crypto.createHmac('sha256', key).update(`ccomet-sip-credential|${devId}|${userId}|${expiry}`)
        .digest('hex').slice(0, 32);
}

/** The expiry of the credential a session opened at `now` with a token's `exp` gets (ttl: [main]
 * jwt_credential_ttl, 43200 by default). */
export function sipCredentialExpiry(now, exp, ttl = 43200) {
    const e = Math.min(exp ?? Infinity, now + ttl);
    return e - (e % 60);
}

export function signJwt(payload, secret) {
    const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const body = b64url(JSON.stringify(payload));
    const sig = b64url(crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest());
    return `${head}.${body}.${sig}`;
}

/** The value of a Prometheus metric in /metrics text, or undefined. */
export function metric(text, name) {
    const m = new RegExp(`^${name} (\\d+(?:\\.\\d+)?)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
}
