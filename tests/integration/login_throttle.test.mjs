// Failed logins per address (security audit L5): past [cometql] / [ws] max_auth_failures in
// auth_failure_window, an address is refused without its credentials being checked (CometQL:
// MySQL's ERR 1129 "Host ... is blocked"; browsers: error 429 and a close) until its window
// ends; other addresses are not affected, and a successful login starts the count afresh.
// Flooding clients connect from 127.0.0.2 / .3 / .4 (other source addresses on loopback). Also
// [cometql] max_unauthenticated_per_ip: connections one address holds before logging in.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { RawConn } from './mysql_raw.mjs';
import { wsOpen, closeAll } from './wsclient.mjs';

const WINDOW = 3;
const srv = await startServer({
    extraConf: `[cometql]\nmax_auth_failures = 5\nauth_failure_window = ${WINDOW}\nmax_unauthenticated_per_ip = 4\n\n` +
        `[ws]\nmax_auth_failures = 5\nauth_failure_window = ${WINDOW}\n`,
});
const db = await mysql2Connect(srv);
await db.query("INSERT INTO users_auth (id, hash) VALUES (21, 'right-key-21')");

after(async () => {
    await closeAll(srv);
    await db.end().catch(() => db.destroy());
    await srv.stop();
});

async function rawTry(password, from) {
    const c = await RawConn.connect(srv.port, '127.0.0.1', from);
    try {
        return await c.login({ password });
    } finally {
        c.destroy();
    }
}

test('CometQL: 5 wrong passwords from one address, then even the right one gets ERR 1129 until the window ends; another address logs in', srv.wrap(async () => {
    for (let i = 0; i < 5; i++) {
        const r = await rawTry('wrong', '127.0.0.2');
        assert.equal(r.code, 16, JSON.stringify(r)); // CppComet's authentication failure
    }
    const t0 = Date.now();
    const blocked = await rawTry(srv.password, '127.0.0.2');
    assert.equal(blocked.ok, false);
    assert.equal(blocked.code, 1129, JSON.stringify(blocked));
    assert.match(blocked.message, /Host '127\.0\.0\.2' is blocked because of 5 failed logins in 3 s; retry in [1-3] s/);
    const other = await rawTry(srv.password, '127.0.0.1');
    assert.equal(other.ok, true, `another address: ${JSON.stringify(other)}`);
    // once the window has passed, the right password works again, and resets the count
    for (;;) {
        const r = await rawTry(srv.password, '127.0.0.2');
        if (r.ok) break;
        assert.equal(r.code, 1129);
        assert.ok(Date.now() - t0 < (WINDOW + 2) * 1000, 'still blocked after the window');
        await new Promise((res) => setTimeout(res, 200));
    }
    for (let i = 0; i < 4; i++) assert.equal((await rawTry('wrong', '127.0.0.2')).code, 16);
    assert.equal((await rawTry(srv.password, '127.0.0.2')).ok, true, '4 failures after a success: not blocked');
}));

test('browsers: 5 wrong keys from one address, then the right key gets error 429 and a close; another address is authorized', srv.wrap(async () => {
    for (let i = 0; i < 5; i++) {
        const c = await wsOpen(srv, { session: `guess-${i}`, userId: 21, localAddress: '127.0.0.3' });
        assert.equal(c.info.authorized, false);
        await c.close();
    }
    const blocked = await wsOpen(srv, { session: 'right-key-21', userId: 21, localAddress: '127.0.0.3', waitInfo: false });
    const err = await blocked.next((m) => m.pipe === 'sys' && m.event === 'error', { what: 'the 429' });
    assert.equal(err.data.error_code, 429, JSON.stringify(err));
    assert.match(err.data.error, /Too many failed logins from this address \(5 in 3 s\); retry in [1-3] s/);
    await blocked.closed;
    assert.equal(blocked.pending((m) => m.event === 'serverInfo').length, 0, 'no serverInfo');
    // anonymous pages from that address are still served; another address logs in
    const anon = await wsOpen(srv, { localAddress: '127.0.0.3' });
    assert.equal(anon.info.authorized, false);
    const ok = await wsOpen(srv, { session: 'right-key-21', userId: 21 });
    assert.equal(ok.info.authorized, true);
    await Promise.all([anon.close(), ok.close()]);
}));

test('CometQL: an address holds at most max_unauthenticated_per_ip (4) connections before logging in: the 5th gets ERR 1040; a login frees its slot; other addresses are served', srv.wrap(async () => {
    const held = [];
    try {
        for (let i = 0; i < 4; i++) {
            const c = await RawConn.connect(srv.port, '127.0.0.1', '127.0.0.4');
            held.push(c);
            assert.ok((await c.readHandshake()).caps, 'a handshake');
        }
        const fifth = await RawConn.connect(srv.port, '127.0.0.1', '127.0.0.4');
        held.push(fifth);
        const { payload } = await fifth.readPacket();
        assert.equal(payload[0], 0xff, 'an ERR instead of the handshake');
        assert.equal(payload.readUInt16LE(1), 1040);
        assert.match(payload.subarray(9).toString(), /Too many unauthenticated connections from this address/);
        assert.equal(await fifth.waitClosed(), true);
        const other = await rawTry(srv.password, '127.0.0.1');
        assert.equal(other.ok, true, 'another address is served');
        // one of the four logs in: its slot is free for the next connection from .4
        assert.equal((await held[0].login({ password: srv.password })).ok, true);
        const next = await RawConn.connect(srv.port, '127.0.0.1', '127.0.0.4');
        held.push(next);
        assert.equal((await next.login({ password: srv.password })).ok, true, 'a slot came back');
    } finally {
        for (const c of held) c.destroy();
    }
}));
