// PHP mysqli (mysqlnd): text protocol for plain queries, prepared statements for `?` steps;
// once with strings for integers (the default) and once with MYSQLI_OPT_INT_AND_FLOAT_NATIVE.
import { test, after } from 'node:test';
import { startServer } from './harness.mjs';
import { scenario, expectErr } from './scenario.mjs';
import { runPhp, checkSteps } from './clients.mjs';
import assert from 'node:assert/strict';

const srv = await startServer();
after(() => srv.stop());

// Integer columns: text rows give strings unless native ints are asked for; `?` steps run through
// the binary protocol, where integers are always native. The checks use one ctx per step.
function ctxFor(step, nativeInts) {
    return { ints: nativeInts || step.params ? 'native' : 'string', affected: true, sqlstate: true };
}

for (const [n, native] of [[1, false], [2, true]]) {
    test(`php mysqli: CometQL scenario (${native ? 'MYSQLI_OPT_INT_AND_FLOAT_NATIVE' : 'ints as strings'})`, srv.wrap(async (t) => {
        const steps = scenario(n);
        const results = await runPhp('mysqli_runner.php', srv, steps, { extra: { native_ints: native } });
        const wrapped = steps.map((s) => ({ ...s, check: (r) => s.check(r, ctxFor(s, native)) }));
        await checkSteps(t, srv, wrapped, results, null);
    }));
}

test('php mysqli: wrong password -> ERR 16', srv.wrap(async () => {
    await assert.rejects(runPhp('mysqli_runner.php', srv, [], { password: 'wrong' }), /connect failed: ERR 16 /);
}));

test('php mysqli: unknown table error code and SQLSTATE', srv.wrap(async () => {
    const [r] = await runPhp('mysqli_runner.php', srv, [{ sql: 'SELECT * FROM nope_table' }]);
    expectErr(r, { sqlstate: true }, 15, /doesn't exist/);
}));
