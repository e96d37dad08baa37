// PyMySQL (Debian's python3-pymysql under /usr/bin/python3): pure-Python client, text protocol.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { scenario } from './scenario.mjs';
import { runPymysql, checkSteps } from './clients.mjs';

const srv = await startServer();
after(() => srv.stop());

test('pymysql: CometQL scenario', srv.wrap(async (t) => {
    const steps = scenario(1);
    const results = await runPymysql(srv, steps);
    await checkSteps(t, srv, steps, results, { ints: 'native', affected: true, sqlstate: false });
}));

test('pymysql: wrong password -> ERR 16', srv.wrap(async () => {
    await assert.rejects(runPymysql(srv, [], { password: 'wrong' }), /connect failed: ERR 16 /);
}));
