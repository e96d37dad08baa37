// mysql2/promise in process: `query` (text protocol) and `execute` (COM_STMT_PREPARE/EXECUTE,
// binary rows).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { scenario, expectErr } from './scenario.mjs';
import { runMysql2, mysql2Connect, mysql2Step, checkSteps } from './clients.mjs';

const srv = await startServer();
after(() => srv.stop());

for (const [n, mode] of [[1, 'query'], [2, 'execute']]) {
    test(`mysql2: CometQL scenario (${mode})`, srv.wrap(async (t) => {
        const steps = scenario(n);
        const results = await runMysql2(srv, steps, { mode });
        await checkSteps(t, srv, steps, results, { ints: 'native', affected: true, sqlstate: true });
    }));
}

test('mysql2: wrong password -> ERR 16', srv.wrap(async () => {
    await assert.rejects(mysql2Connect(srv, { password: 'wrong' }), (e) => {
        assert.equal(e.errno, 16, `errno ${e.errno}: ${e.message}`);
        return true;
    });
}));

test('mysql2: a prepared statement is reusable and closable', srv.wrap(async () => {
    const conn = await mysql2Connect(srv);
    try {
        for (let i = 0; i < 3; i++) {
            const r = await mysql2Step(conn, 'execute', 'INSERT INTO users_data (id, data) VALUES (?, ?)', [900 + i, `d${i}`]);
            assert.equal(r.ok, true, JSON.stringify(r));
        }
        const [rows] = await conn.execute('SELECT id, data FROM users_data WHERE id IN (?, ?, ?)', [900, 901, 902]);
        assert.deepEqual(rows.map((r) => [r.id, r.data]).sort(), [[900, 'd0'], [901, 'd1'], [902, 'd2']]);
        conn.unprepare('INSERT INTO users_data (id, data) VALUES (?, ?)'); // COM_STMT_CLOSE, no reply
        const [res] = await conn.query('DELETE FROM users_data WHERE id IN (900, 901, 902)');
        assert.equal(res.affectedRows, 3);
        const e = await mysql2Step(conn, 'execute', 'SELECT * FROM no_table WHERE id = ?', [1]);
        expectErr(e, { sqlstate: true }, 15, /doesn't exist/);
        await conn.ping();
    } finally {
        await conn.end().catch(() => conn.destroy());
    }
}));
