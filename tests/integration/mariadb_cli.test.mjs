// The mariadb command-line client (libmariadb), text protocol, no --skip-ssl; -vv batch output
// carries affected rows.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { scenario } from './scenario.mjs';
import { runMariadb, mariadbStep, checkSteps } from './clients.mjs';

const srv = await startServer();
after(() => srv.stop());

test('mariadb CLI: CometQL scenario', srv.wrap(async (t) => {
    const steps = scenario(1);
    const results = await runMariadb(srv, steps);
    await checkSteps(t, srv, steps, results, { ints: 'string', affected: true, sqlstate: true });
}));

test('mariadb CLI: wrong password is refused with ERR 16', srv.wrap(async () => {
    const r = await mariadbStep(srv, 'SHOW TABLES', { password: 'wrong' });
    assert.equal(r.ok, false, `expected a refused login: ${JSON.stringify(r)}`);
    assert.equal(r.code, 16, `error code: ${r.stderr ?? r.message}`);
}));
