// Browser JWT policy (security audit H2): `nbf` in the future is refused; with
// [main] jwt_require_exp = yes a token without `exp` is refused; a JWT session (jwt_returns_key =
// no, the default) is authorized but serverInfo carries a SIP credential that ends with the
// token, never the permanent key (a hash login still gets its key); a token with less than a
// minute left gets none. [main] jwt_returns_key = yes brings back CppComet's behaviour.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { wsOpen, closeAll, signJwt, sipCredential, sipCredentialExpiry } from './wsclient.mjs';
import { mysql2Connect } from './clients.mjs';

const srv = await startServer({ extraConf: '[main]\njwt_require_exp = yes\n' });
after(async () => {
    await closeAll(srv);
    await srv.stop();
});
const now = () => Math.floor(Date.now() / 1000);
const SECRET = `${srv.password}0`;

test('exp required, nbf honoured, a SIP credential and never the permanent key for a JWT session', srv.wrap(async () => {
    const noExp = await wsOpen(srv, { userId: 4, session: signJwt({ user_id: 4 }, SECRET) });
    assert.equal(noExp.info.authorized, false, 'a token without exp');
    const early = await wsOpen(srv, { userId: 4, session: signJwt({ user_id: 4, exp: now() + 600, nbf: now() + 300 }, SECRET) });
    assert.equal(early.info.authorized, false, 'a token before its nbf');
    const okExp = now() + 600;
    const ok = await wsOpen(srv, { userId: 4, session: signJwt({ user_id: 4, exp: okExp, nbf: now() - 5 }, SECRET) });
    assert.equal(ok.info.authorized, true, JSON.stringify(ok.info));
    // the key exists (created on first use) and a hash login still gets it
    const db = await mysql2Connect(srv);
    const [rows] = await db.query('SELECT hash FROM users_auth WHERE id = 4');
    await db.end();
    assert.equal(rows.length, 1);
    assert.notEqual(ok.info.data, rows[0].hash, 'a JWT session must not learn the permanent key');
    assert.match(ok.info.data, /^[0-9a-f]{32}$/);
    assert.equal(ok.info.data, sipCredential(rows[0].hash, 0, 4, sipCredentialExpiry(now(), okExp)));
    // a token that ends before the next whole minute: authorized, but no SIP credential (it would
    // outlive the token); late in a minute (no such token can be made safely), one that ends 30 s
    // into the minute after next gets that minute's start
    const t = now();
    const r = t % 60;
    const shortExp = r <= 50 ? t + 5 : t - r + 150;
    const short = await wsOpen(srv, { userId: 4, session: signJwt({ user_id: 4, exp: shortExp }, SECRET) });
    assert.equal(short.info.authorized, true);
    assert.equal(short.info.data, r <= 50 ? '' : sipCredential(rows[0].hash, 0, 4, t - r + 120));
    const byHash = await wsOpen(srv, { userId: 4, session: rows[0].hash });
    assert.equal(byHash.info.authorized, true);
    assert.equal(byHash.info.data, rows[0].hash);
    await Promise.all([noExp, early, ok, short, byHash].map((c) => c.close()));
}));

test('[main] jwt_returns_key = yes: a JWT session gets the permanent key (CppComet)', async () => {
    const old = await startServer({ extraConf: '[main]\njwt_returns_key = yes\n' });
    try {
        const c = await wsOpen(old, { userId: 5, session: signJwt({ user_id: 5, exp: now() + 600 }, `${old.password}0`) });
        assert.equal(c.info.authorized, true);
        const db = await mysql2Connect(old);
        const [rows] = await db.query('SELECT hash FROM users_auth WHERE id = 5');
        await db.end();
        assert.equal(c.info.data, rows[0].hash);
        await c.close();
    } finally {
        await closeAll(old);
        await old.stop();
    }
});
