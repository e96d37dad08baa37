// The MySQL wire protocol on raw sockets: handshake, authentication, framing (pipelined and split
// packets), hostile input, unknown commands.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { RawConn, rawLogin, packet, comQuery, comPing, CAP } from './mysql_raw.mjs';

const srv = await startServer({ password: 'p4ss-Word' });
after(() => srv.stop());

// A barrier that waits until the server's event loop has run: a full round trip on another
// connection. Used to make the server read the parts of a split packet separately, without sleeps.
async function roundTrip(other) {
    const r = await other.ping();
    assert.equal(r.ok, true, `ping: ${JSON.stringify(r)}`);
}

test('handshake v10: protocol 10, 20-byte scramble, mysql_native_password, PROTOCOL_41', srv.wrap(async () => {
    const a = await RawConn.connect(srv.port);
    const b = await RawConn.connect(srv.port);
    try {
        const ha = await a.readHandshake();
        const hb = await b.readHandshake();
        assert.equal(ha.seq, 0);
        assert.equal(ha.protocol, 10);
        assert.ok(ha.version.length > 0, 'server version');
        assert.equal(ha.scramble.length, 20);
        assert.ok(!ha.scramble.includes(0), 'no NUL in the scramble');
        assert.equal(ha.plugin, 'mysql_native_password');
        assert.ok(ha.caps & CAP.PROTOCOL_41, 'CLIENT_PROTOCOL_41');
        assert.ok(ha.caps & CAP.SECURE_CONNECTION, 'CLIENT_SECURE_CONNECTION');
        assert.equal(ha.caps & CAP.SSL, 0, 'CLIENT_SSL must not be offered without ssl_cert/ssl_key');
        assert.notDeepEqual(ha.scramble, hb.scramble, 'each connection gets a fresh scramble');
        assert.notEqual(ha.connectionId, hb.connectionId, 'distinct connection ids');
    } finally {
        a.destroy();
        b.destroy();
    }
}));

test('correct password -> OK (seq 2), then queries work', srv.wrap(async () => {
    const c = await RawConn.connect(srv.port);
    try {
        await c.readHandshake();
        await c.write(packet(1, c.handshakeResponse({ password: srv.password })));
        const { seq, payload } = await c.readPacket();
        assert.equal(payload[0], 0x00, `OK expected, got ${payload.toString('latin1')}`);
        assert.equal(seq, 2);
        const r = await c.query('SHOW DATABASES');
        assert.equal(r.ok, true, JSON.stringify(r));
        assert.deepEqual(r.seqs, r.seqs.map((_, i) => i + 1), 'result packets numbered from 1');
    } finally {
        c.destroy();
    }
}));

test('wrong password -> ERR 16 and the server closes the connection', srv.wrap(async () => {
    const c = await RawConn.connect(srv.port);
    try {
        const r = await c.login({ password: 'wrong' });
        assert.equal(r.ok, false, 'login must fail');
        assert.equal(r.code, 16, JSON.stringify(r));
        assert.match(r.sqlstate ?? '', /^[0-9A-Z]{5}$/);
        assert.equal(await c.waitClosed(), true, 'connection closed after the auth failure');
    } finally {
        c.destroy();
    }
}));

test('a MySQL 8 client starting with caching_sha2_password is switched to mysql_native_password and logs in', srv.wrap(async () => {
    const c = await RawConn.connect(srv.port);
    try {
        await c.readHandshake();
        // a caching_sha2_password fast-auth token is 32 bytes: the server cannot use it and asks again
        const r = await c.login({ plugin: 'caching_sha2_password', token: Buffer.alloc(32, 0x5a), password: srv.password });
        assert.equal(c.switchedAuth, true, 'the server sent an AuthSwitchRequest');
        assert.equal(r.ok, true, JSON.stringify(r));
        const q = await c.query('SHOW TABLES');
        assert.equal(q.ok, true, JSON.stringify(q));
    } finally {
        c.destroy();
    }
}));

test('after an auth switch a wrong password still fails (ERR 16)', srv.wrap(async () => {
    const c = await RawConn.connect(srv.port);
    try {
        await c.readHandshake();
        const r = await c.login({ plugin: 'caching_sha2_password', token: Buffer.alloc(32, 0x5a), password: 'nope' });
        assert.equal(c.switchedAuth, true);
        assert.equal(r.ok, false);
        assert.equal(r.code, 16, JSON.stringify(r));
    } finally {
        c.destroy();
    }
}));

test('auth token of the wrong length -> ERR 16 and close', srv.wrap(async () => {
    const c = await RawConn.connect(srv.port);
    try {
        await c.readHandshake();
        await c.write(packet(1, c.handshakeResponse({ token: Buffer.alloc(7, 0x41) })));
        let { seq, payload } = await c.readPacket();
        if (payload[0] === 0xfe) { // AuthSwitchRequest (to mysql_native_password): a wrong length again
            await c.write(packet(seq + 1, Buffer.alloc(7, 0x41)));
            ({ payload } = await c.readPacket());
        }
        assert.equal(payload[0], 0xff, 'ERR expected');
        assert.equal(payload.readUInt16LE(1), 16);
        assert.equal(await c.waitClosed(), true, 'connection closed');
    } finally {
        c.destroy();
    }
}));

test('empty auth as haproxy_check: OK, but a query gets ERR 403 and the connection stays', srv.wrap(async () => {
    const c = await RawConn.connect(srv.port);
    try {
        const r = await c.login({ user: 'haproxy_check', token: Buffer.alloc(0) });
        assert.equal(r.ok, true, `haproxy_check login: ${JSON.stringify(r)}`);
        const q = await c.query('SHOW TABLES');
        assert.equal(q.ok, false, 'unauthenticated query must fail');
        assert.equal(q.code, 403, JSON.stringify(q));
        assert.match(q.sqlstate ?? '', /^[0-9A-Z]{5}$/);
        const p = await c.ping();
        assert.equal(p.ok, true, 'still answers COM_PING');
    } finally {
        c.destroy();
    }
}));

test('two COM_QUERY packets pipelined in one write are answered in order', srv.wrap(async () => {
    const c = await rawLogin(srv);
    try {
        for (const [id, h] of [[11, 'first'], [12, 'second']]) {
            const r = await c.query(`INSERT INTO users_auth (id, hash) VALUES (${id}, '${h}')`);
            assert.equal(r.ok, true, JSON.stringify(r));
        }
        await c.write(Buffer.concat([
            comQuery('SELECT hash FROM users_auth WHERE id = 11'),
            comQuery('SELECT hash FROM users_auth WHERE id = 12'),
        ]));
        const r1 = await c.readResult();
        const r2 = await c.readResult();
        assert.deepEqual(r1.rows, [['first']], JSON.stringify(r1));
        assert.deepEqual(r2.rows, [['second']], JSON.stringify(r2));
        assert.equal(r2.seqs[0], 1, 'second reply starts at seq 1');

        // an error in the middle of a pipeline does not disturb the others
        await c.write(Buffer.concat([
            comQuery('SELECT hash FROM users_auth WHERE id = 12'),
            comQuery('SELECT * FROM no_such_table'),
            comPing(),
            comQuery('SELECT hash FROM users_auth WHERE id = 11'),
        ]));
        const [a, b, p, d] = [await c.readResult(), await c.readResult(), await c.readResult(), await c.readResult()];
        assert.deepEqual(a.rows, [['second']]);
        assert.equal(b.ok, false);
        assert.equal(b.code, 15);
        assert.equal(p.ok, true);
        assert.deepEqual(d.rows, [['first']]);
        await c.query('DELETE FROM users_auth WHERE id IN (11, 12)');
    } finally {
        c.destroy();
    }
}));

test('a query split across writes (inside the header and inside the payload) is answered once', srv.wrap(async () => {
    const c = await rawLogin(srv);
    const other = await rawLogin(srv);
    try {
        const bytes = comQuery('SHOW DATABASES');
        await c.write(bytes.subarray(0, 2)); // half a header
        await roundTrip(other);
        await c.write(bytes.subarray(2, 9)); // rest of the header and part of the payload
        await roundTrip(other);
        assert.equal(c.buf.length, 0, 'no reply before the packet is complete');
        await c.write(bytes.subarray(9));
        const r = await c.readResult();
        assert.equal(r.ok, true, JSON.stringify(r));
        assert.ok(r.rows.some((row) => row[0] === 'CometQL_v1'), JSON.stringify(r.rows));
        // the handshake response can be split too
        const d = await RawConn.connect(srv.port);
        try {
            await d.readHandshake();
            const resp = packet(1, d.handshakeResponse({ password: srv.password }));
            await d.write(resp.subarray(0, 20));
            await roundTrip(other);
            await d.write(resp.subarray(20));
            const { payload } = await d.readPacket();
            assert.equal(payload[0], 0x00, 'OK after a split handshake response');
        } finally {
            d.destroy();
        }
    } finally {
        c.destroy();
        other.destroy();
    }
}));

test('garbage bytes drop that connection while another keeps working', srv.wrap(async () => {
    const good = await rawLogin(srv);
    try {
        // a well-framed packet of junk instead of a HandshakeResponse41
        const bad = await RawConn.connect(srv.port);
        await bad.readHandshake();
        await bad.write(packet(1, Buffer.from('\xde\xad\xbe\xef garbage \x00\xff\x01', 'latin1')));
        assert.equal(await bad.waitClosed(), true, 'garbage handshake response: connection dropped');
        bad.destroy();

        // junk after a valid login: an HTTP request, read as a packet header of 5.5 MB
        const bad2 = await rawLogin(srv);
        await bad2.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
        // the server may wait for the rest or drop at once; either way the other connection
        // keeps working meanwhile:
        const r = await good.query('SHOW DATABASES');
        assert.equal(r.ok, true, JSON.stringify(r));
        bad2.destroy();

        const r2 = await good.query('SHOW TABLES');
        assert.equal(r2.ok, true, JSON.stringify(r2));
    } finally {
        good.destroy();
    }
}));

test('unknown command byte -> ERR, and the connection still answers COM_PING', srv.wrap(async () => {
    const c = await rawLogin(srv);
    try {
        await c.write(packet(0, Buffer.from([0x7a, 1, 2, 3])));
        const r = await c.readResult();
        assert.equal(r.ok, false, `ERR expected: ${JSON.stringify(r)}`);
        assert.match(r.sqlstate ?? '', /^[0-9A-Z]{5}$/);
        const p = await c.ping();
        assert.equal(p.ok, true, JSON.stringify(p));
        const q = await c.query('SHOW DATABASES');
        assert.equal(q.ok, true);
    } finally {
        c.destroy();
    }
}));

test('COM_QUERY before the handshake response is not executed', srv.wrap(async () => {
    const c = await RawConn.connect(srv.port);
    try {
        await c.readHandshake();
        const q = comQuery("INSERT INTO users_auth (id, hash) VALUES (13, 'sneaky')");
        q[3] = 1; // the sequence id a handshake response would carry
        await c.write(q);
        // whatever the server answers (ERR and/or close), it is no OK and the row must not exist
        const first = await c.readPacket().then(({ payload }) => payload[0]).catch(() => 'closed');
        assert.notEqual(first, 0x00, 'no OK for a query sent instead of a login');
        const good = await rawLogin(srv);
        const r = await good.query('SELECT * FROM users_auth WHERE id = 13');
        good.destroy();
        assert.deepEqual(r.rows, [], 'the query was not executed');
    } finally {
        c.destroy();
    }
}));
