// A minimal MySQL protocol client on a raw socket, for tests that need control over bytes and
// timing (pipelining, split packets, garbage, unknown commands). Waits are event-based: every
// read resolves on socket data and rejects on close or after a timeout.
import net from 'node:net';
import crypto from 'node:crypto';

export const CAP = {
    LONG_PASSWORD: 0x1, FOUND_ROWS: 0x2, CONNECT_WITH_DB: 0x8, PROTOCOL_41: 0x200, SSL: 0x800,
    TRANSACTIONS: 0x2000, SECURE_CONNECTION: 0x8000, PLUGIN_AUTH: 0x80000, DEPRECATE_EOF: 0x1000000,
};
export const COM = { QUIT: 0x01, INIT_DB: 0x02, QUERY: 0x03, PING: 0x0e };

const sha1 = (...bufs) => {
    const h = crypto.createHash('sha1');
    for (const b of bufs) h.update(b);
    return h.digest();
};

/** mysql_native_password: SHA1(pw) XOR SHA1(scramble20 + SHA1(SHA1(pw))). */
export function nativePasswordToken(password, scramble) {
    if (password === '') return Buffer.alloc(0);
    const h1 = sha1(Buffer.from(password, 'utf8'));
    const h3 = sha1(scramble, sha1(h1));
    return Buffer.from(h1.map((b, i) => b ^ h3[i]));
}

/** Frames a payload as one packet: 3-byte LE length, sequence id. */
export function packet(seq, payload) {
    const h = Buffer.alloc(4);
    h.writeUIntLE(payload.length, 0, 3);
    h[3] = seq & 0xff;
    return Buffer.concat([h, payload]);
}

export const comQuery = (sql) => packet(0, Buffer.concat([Buffer.from([COM.QUERY]), Buffer.from(sql, 'utf8')]));
export const comPing = () => packet(0, Buffer.from([COM.PING]));

function readLenenc(buf, off) {
    const b = buf[off];
    if (b < 0xfb) return [b, off + 1];
    if (b === 0xfb) return [null, off + 1];
    if (b === 0xfc) return [buf.readUInt16LE(off + 1), off + 3];
    if (b === 0xfd) return [buf.readUIntLE(off + 1, 3), off + 4];
    if (b === 0xfe) return [Number(buf.readBigUInt64LE(off + 1)), off + 9];
    throw new Error(`bad length-encoded integer 0x${b.toString(16)} at ${off}`);
}

export function parseErr(p) {
    const code = p.readUInt16LE(1);
    let sqlstate = null;
    let msgStart = 3;
    if (p[3] === 0x23 /* # */) {
        sqlstate = p.subarray(4, 9).toString('latin1');
        msgStart = 9;
    }
    return { ok: false, code, sqlstate, message: p.subarray(msgStart).toString('utf8') };
}

export function parseOk(p) {
    let off = 1;
    let affected;
    let insertId;
    [affected, off] = readLenenc(p, off);
    [insertId, off] = readLenenc(p, off);
    const status = p.readUInt16LE(off);
    return { ok: true, affected, insertId, status };
}

export function parseHandshake(p) {
    let off = 0;
    const protocol = p[off++];
    const nul = p.indexOf(0, off);
    const version = p.subarray(off, nul).toString('latin1');
    off = nul + 1;
    const connectionId = p.readUInt32LE(off); off += 4;
    const s1 = p.subarray(off, off + 8); off += 8;
    off += 1; // filler
    let caps = p.readUInt16LE(off); off += 2;
    const charset = p[off++];
    const status = p.readUInt16LE(off); off += 2;
    caps |= p.readUInt16LE(off) << 16; off += 2;
    const authLen = p[off++];
    off += 10; // reserved
    const n2 = Math.max(13, authLen - 8);
    const s2 = p.subarray(off, off + 12); off += n2;
    const pnul = p.indexOf(0, off);
    const plugin = p.subarray(off, pnul < 0 ? p.length : pnul).toString('latin1');
    return { protocol, version, connectionId, scramble: Buffer.concat([s1, s2]), caps: caps >>> 0, charset, status, authLen, plugin };
}

export class RawConn {
    constructor(sock) {
        this.sock = sock;
        this.buf = Buffer.alloc(0);
        this.waiters = [];
        this.isClosed = false;
        this.closed = new Promise((resolve) => sock.once('close', resolve));
        sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this._wake(); });
        sock.on('error', () => { /* surfaces as close */ });
        sock.on('close', () => { this.isClosed = true; this._wake(); });
    }

    /** localAddress: the source address (another 127.x.y.z is another client address) */
    static connect(port, host = '127.0.0.1', localAddress = undefined) {
        return new Promise((resolve, reject) => {
            const sock = net.connect({ port, host, localAddress });
            sock.setNoDelay(true);
            sock.once('connect', () => { sock.off('error', reject); resolve(new RawConn(sock)); });
            sock.once('error', reject);
        });
    }

    _wake() {
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
    }

    /** Next packet {seq, payload}; rejects if the socket closes first or after timeoutMs. */
    async readPacket(timeoutMs = 5000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            if (this.buf.length >= 4) {
                const len = this.buf.readUIntLE(0, 3);
                if (this.buf.length >= 4 + len) {
                    const seq = this.buf[3];
                    const payload = this.buf.subarray(4, 4 + len);
                    this.buf = this.buf.subarray(4 + len);
                    return { seq, payload };
                }
            }
            if (this.isClosed) throw new Error(`connection closed by the server (${this.buf.length} bytes unread)`);
            const left = deadline - Date.now();
            if (left <= 0) throw new Error(`no complete packet within ${timeoutMs} ms (${this.buf.length} bytes buffered)`);
            await new Promise((resolve) => {
                const t = setTimeout(resolve, left);
                this.waiters.push(() => { clearTimeout(t); resolve(); });
            });
        }
    }

    /** Resolves true when the server closes the connection, false after timeoutMs. */
    async waitClosed(timeoutMs = 5000) {
        let t;
        const r = await Promise.race([this.closed.then(() => true), new Promise((res) => { t = setTimeout(() => res(false), timeoutMs); })]);
        clearTimeout(t);
        return r;
    }

    write(bytes) {
        return new Promise((resolve, reject) => this.sock.write(bytes, (e) => (e ? reject(e) : resolve())));
    }

    async readHandshake() {
        const { seq, payload } = await this.readPacket();
        if (payload[0] === 0xff) throw new Error(`server refused the connection: ${JSON.stringify(parseErr(payload))}`);
        this.handshake = { seq, ...parseHandshake(payload) };
        return this.handshake;
    }

    /** HandshakeResponse41 payload. */
    handshakeResponse({ user = 'root', password = 'password', db = null, token = null, caps = null, plugin = 'mysql_native_password' } = {}) {
        let c = caps ?? (CAP.LONG_PASSWORD | CAP.PROTOCOL_41 | CAP.TRANSACTIONS | CAP.SECURE_CONNECTION | CAP.PLUGIN_AUTH);
        if (db) c |= CAP.CONNECT_WITH_DB;
        const head = Buffer.alloc(32);
        head.writeUInt32LE(c >>> 0, 0);
        head.writeUInt32LE(16 * 1024 * 1024, 4);
        head[8] = 45; // utf8mb4_general_ci
        const auth = token ?? nativePasswordToken(password, this.handshake.scramble);
        const parts = [head, Buffer.from(`${user}\0`, 'utf8'), Buffer.from([auth.length]), auth];
        if (db) parts.push(Buffer.from(`${db}\0`, 'utf8'));
        if (c & CAP.PLUGIN_AUTH) parts.push(Buffer.from(`${plugin}\0`));
        return Buffer.concat(parts);
    }

    /** Full login; returns the parsed OK or ERR of the server's final answer. */
    async login(opts = {}) {
        if (!this.handshake) await this.readHandshake();
        await this.write(packet(1, this.handshakeResponse(opts)));
        let { seq, payload } = await this.readPacket();
        this.switchedAuth = false;
        if (payload[0] === 0xfe && payload.length > 1) { // AuthSwitchRequest
            this.switchedAuth = true;
            const nul = payload.indexOf(0, 1);
            const plugin = payload.subarray(1, nul).toString('latin1');
            if (plugin !== 'mysql_native_password') throw new Error(`auth switch to unsupported plugin ${plugin}`);
            const scramble = payload.subarray(nul + 1, nul + 21);
            await this.write(packet(seq + 1, nativePasswordToken(opts.password ?? 'password', scramble)));
            ({ seq, payload } = await this.readPacket());
        }
        if (payload[0] === 0x00) return parseOk(payload);
        if (payload[0] === 0xff) return parseErr(payload);
        throw new Error(`unexpected login reply 0x${payload[0].toString(16)}`);
    }

    /**
     * Reads one command's reply: OK, ERR, or a text result set
     * {ok: true, columns, rows, seqs} (seqs: every packet's sequence id).
     */
    async readResult() {
        const first = await this.readPacket();
        const seqs = [first.seq];
        const p = first.payload;
        if (p[0] === 0x00) return { ...parseOk(p), seqs };
        if (p[0] === 0xff) return { ...parseErr(p), seqs };
        if (p[0] === 0xfe && p.length < 9) return { ok: true, eof: true, seqs };
        const [ncols] = readLenenc(p, 0);
        const columns = [];
        for (let i = 0; i < ncols; i++) {
            const { seq, payload } = await this.readPacket();
            seqs.push(seq);
            let off = 0;
            const strs = [];
            for (let k = 0; k < 6; k++) { // catalog, schema, table, org_table, name, org_name
                let n;
                [n, off] = readLenenc(payload, off);
                strs.push(payload.subarray(off, off + n).toString('utf8'));
                off += n;
            }
            off += 1; // 0x0c
            const charset = payload.readUInt16LE(off);
            const type = payload[off + 6];
            columns.push({ name: strs[4], charset, type });
        }
        let pk = await this.readPacket();
        seqs.push(pk.seq);
        if (!(pk.payload[0] === 0xfe && pk.payload.length < 9)) throw new Error('expected EOF after column definitions');
        const rows = [];
        for (;;) {
            pk = await this.readPacket();
            seqs.push(pk.seq);
            const q = pk.payload;
            if (q[0] === 0xfe && q.length < 9) break;
            if (q[0] === 0xff) return { ...parseErr(q), seqs };
            const row = [];
            let off = 0;
            for (let i = 0; i < ncols; i++) {
                let n;
                [n, off] = readLenenc(q, off);
                if (n === null) { row.push(null); continue; }
                row.push(q.subarray(off, off + n).toString('utf8'));
                off += n;
            }
            rows.push(row);
        }
        return { ok: true, columns, rows, seqs };
    }

    async query(sql) {
        await this.write(comQuery(sql));
        return this.readResult();
    }

    async ping() {
        await this.write(comPing());
        return this.readResult();
    }

    destroy() {
        this.sock.destroy();
    }
}

/** Connect and log in as root with the server's password. */
export async function rawLogin(srv, opts = {}) {
    const c = await RawConn.connect(srv.port);
    const r = await c.login({ password: srv.password, ...opts });
    if (!r.ok) {
        c.destroy();
        throw new Error(`login failed: ERR ${r.code} ${r.message}`);
    }
    return c;
}
