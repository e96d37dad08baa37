// TLS via SSLRequest, with a self-signed certificate made for this run (ssl_cert/ssl_key).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startServer } from './harness.mjs';
import { mysql2Connect, mariadbStep, runPymysql } from './clients.mjs';
import { RawConn, CAP } from './mysql_raw.mjs';

const srv = await startServer({ tls: true });
// [cometql] require_tls (security audit M10): logins only inside TLS
const req = await startServer({ tls: true, extraConf: '[cometql]\nrequire_tls = yes\n' });
after(async () => {
    try {
        await srv.stop();
    } finally {
        await req.stop();
    }
});

test('the handshake offers CLIENT_SSL when a certificate is configured', srv.wrap(async () => {
    const c = await RawConn.connect(srv.port);
    try {
        const h = await c.readHandshake();
        assert.ok(h.caps & CAP.SSL, `CLIENT_SSL in 0x${h.caps.toString(16)}`);
    } finally {
        c.destroy();
    }
}));

async function roundTrip(conn, id) {
    const [tables] = await conn.query('SHOW TABLES');
    assert.ok(tables.length >= 11, `SHOW TABLES: ${JSON.stringify(tables)}`);
    const big = 'x'.repeat(5000); // several TLS records' worth in one row
    await conn.query('INSERT INTO users_data (id, data) VALUES (?, ?)', [id, big]);
    const [rows] = await conn.execute('SELECT data FROM users_data WHERE id = ?', [id]);
    assert.deepEqual(rows, [{ data: big }]);
    const [del] = await conn.query(`DELETE FROM users_data WHERE id = ${id}`);
    assert.equal(del.affectedRows, 1);
}

test('mysql2 over TLS (no verification): encrypted, queries round-trip', srv.wrap(async () => {
    const conn = await mysql2Connect(srv, { ssl: { rejectUnauthorized: false } });
    try {
        const stream = conn.connection.stream;
        assert.equal(stream.encrypted, true, 'the socket is a TLS socket');
        assert.ok(stream.getCipher()?.name, 'a cipher is negotiated');
        await roundTrip(conn, 401);
    } finally {
        await conn.end().catch(() => conn.destroy());
    }
}));

test('mysql2 over TLS verifying the server certificate', srv.wrap(async () => {
    const conn = await mysql2Connect(srv, { ssl: { ca: readFileSync(srv.cert, 'utf8'), servername: 'localhost' } });
    try {
        assert.equal(conn.connection.stream.encrypted, true);
        await roundTrip(conn, 402);
    } finally {
        await conn.end().catch(() => conn.destroy());
    }
}));

test('mariadb CLI --ssl', srv.wrap(async () => {
    const ins = await mariadbStep(srv, "INSERT INTO users_auth (id, hash) VALUES (403, 'tlshash')", { cliArgs: ['--ssl'] });
    assert.equal(ins.ok, true, JSON.stringify(ins));
    const sel = await mariadbStep(srv, 'SELECT * FROM users_auth WHERE id = 403', { cliArgs: ['--ssl'] });
    assert.deepEqual(sel.rows, [['403', 'tlshash']], JSON.stringify(sel));
    // verification against our CA proves the session really is TLS with our certificate
    const v = await mariadbStep(srv, 'SHOW DATABASES', { cliArgs: ['--ssl', `--ssl-ca=${srv.cert}`, '--ssl-verify-server-cert'] });
    assert.equal(v.ok, true, JSON.stringify(v));
    const del = await mariadbStep(srv, 'DELETE FROM users_auth WHERE id = 403', { cliArgs: ['--ssl'] });
    assert.equal(del.ok, true, JSON.stringify(del));
}));

test('pymysql over TLS', srv.wrap(async () => {
    const r = await runPymysql(srv, [{ sql: 'SHOW DATABASES' }, { sql: "SELECT * FROM pipes WHERE name = 'tls_pipe'" }], { extra: { ssl: true } });
    assert.equal(r[0].ok, true, JSON.stringify(r[0]));
    assert.ok(r[0].rows.some((row) => row[0] === 'CometQL_v1'), JSON.stringify(r[0].rows));
    assert.equal(r[1].ok, true, JSON.stringify(r[1]));
}));

test('a plain (non-TLS) client is still served when TLS is configured', srv.wrap(async () => {
    const r = await mariadbStep(srv, 'SHOW DATABASES', { cliArgs: ['--skip-ssl'] });
    assert.equal(r.ok, true, JSON.stringify(r));
}));

test('require_tls: a login without TLS gets ERR 3159 and a close (mysql2, raw); over TLS it works; haproxy_check still answers', req.wrap(async () => {
    await assert.rejects(mysql2Connect(req), (e) => {
        assert.equal(e.errno, 3159, `${e.errno} ${e.message}`);
        assert.match(e.message, /insecure transport are prohibited while \[cometql\] require_tls = yes/);
        return true;
    });
    const raw = await RawConn.connect(req.port);
    try {
        const r = await raw.login({ password: req.password });
        assert.equal(r.ok, false, JSON.stringify(r));
        assert.equal(r.code, 3159);
        assert.equal(r.sqlstate, 'HY000');
        await raw.closed;
    } finally {
        raw.destroy();
    }
    const conn = await mysql2Connect(req, { ssl: { rejectUnauthorized: false } });
    try {
        assert.equal(conn.connection.stream.encrypted, true);
        await roundTrip(conn, 404);
    } finally {
        await conn.end().catch(() => conn.destroy());
    }
    const hc = await RawConn.connect(req.port);
    try {
        const r = await hc.login({ user: 'haproxy_check', token: Buffer.alloc(0) });
        assert.equal(r.ok, true, `a health check proves only that the node is up: ${JSON.stringify(r)}`);
        assert.equal((await hc.query('SELECT 1')).code, 403);
    } finally {
        hc.destroy();
    }
}));
