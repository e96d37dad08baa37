// Browser JWT policy (security audit H2): `nbf` in the future is refused; with
// [main] jwt_require_exp = yes a token without `exp` is refused; with [main] jwt_returns_key = no
// a JWT session is authorized but serverInfo carries no permanent key, so the token's `exp`
// bounds what it opened (a hash login still gets its key). The defaults keep CppComet's
// behaviour (ws_features tests them).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { wsOpen, closeAll, signJwt } from './wsclient.mjs';
import { mysql2Connect } from './clients.mjs';

const srv = await startServer({ extraConf: '[main]\njwt_require_exp = yes\njwt_returns_key = no\n' });
after(async () => {
    await closeAll(srv);
    await srv.stop();
});
const now = () => Math.floor(Date.now() / 1000);
const SECRET = `${srv.password}0`;

test('exp required, nbf honoured, no permanent key for a JWT session', srv.wrap(async () => {
    const noExp = await wsOpen(srv, { userId: 4, session: signJwt({ user_id: 4 }, SECRET) });
    assert.equal(noExp.info.authorized, false, 'a token without exp');
    const early = await wsOpen(srv, { userId: 4, session: signJwt({ user_id: 4, exp: now() + 600, nbf: now() + 300 }, SECRET) });
    assert.equal(early.info.authorized, false, 'a token before its nbf');
    const ok = await wsOpen(srv, { userId: 4, session: signJwt({ user_id: 4, exp: now() + 600, nbf: now() - 5 }, SECRET) });
    assert.equal(ok.info.authorized, true, JSON.stringify(ok.info));
    assert.equal(ok.info.data, '', 'a JWT session must not learn the permanent key');
    // the key exists (created on first use) and a hash login still gets it
    const db = await mysql2Connect(srv);
    const [rows] = await db.query('SELECT hash FROM users_auth WHERE id = 4');
    await db.end();
    assert.equal(rows.length, 1);
    const byHash = await wsOpen(srv, { userId: 4, session: rows[0].hash });
    assert.equal(byHash.info.authorized, true);
    assert.equal(byHash.info.data, rows[0].hash);
    await Promise.all([noExp, early, ok, byHash].map((c) => c.close()));
}));
