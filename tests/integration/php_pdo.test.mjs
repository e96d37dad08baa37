// PHP PDO mysql: once with emulated prepares (text protocol) and once with
// PDO::ATTR_EMULATE_PREPARES => false (every statement through COM_STMT_PREPARE/EXECUTE).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { scenario } from './scenario.mjs';
import { runPhp, checkSteps } from './clients.mjs';

const srv = await startServer();
after(() => srv.stop());

// PHP >= 8.1 returns native ints from PDO mysql in both modes.
for (const [n, emulate] of [[1, true], [2, false]]) {
    test(`php pdo: CometQL scenario (${emulate ? 'emulated prepares' : 'native prepares'})`, srv.wrap(async (t) => {
        const steps = scenario(n);
        const results = await runPhp('pdo_runner.php', srv, steps, { extra: { emulate } });
        await checkSteps(t, srv, steps, results, { ints: 'native', affected: true, sqlstate: true });
    }));
}

test('php pdo: wrong password -> ERR 16', srv.wrap(async () => {
    await assert.rejects(runPhp('pdo_runner.php', srv, [], { password: 'wrong', extra: { emulate: true } }),
        /connect failed: ERR 16 /);
}));
