// Store errors answer ERR, never OK (the reliability issue: "nothing acknowledged is lost").
// The store lives on a small tmpfs the test mounts: filled up, a write that cannot be committed
// gets MySQL's ERR packet naming the storage error (the connection then closes, because the
// statements pipelined behind it ran in the lost transaction); every write answered OK is there
// after a restart and no write answered ERR is; freeing the space lets writes succeed again
// without a restart. A lock held by another process on the file makes a write answer ERR after
// [store] busy_timeout while reads go on. A store on a read-only file system stops the start
// with an error naming it (Linux refuses a read-only remount under a file open for writing, so
// a store turning read-only under a running server cannot be staged here).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { startServer, BIN } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';

const mnt = mkdtempSync('/tmp/ccomet-store-fs-');
execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0755', 'tmpfs', mnt]);
const filler = path.join(mnt, 'filler');
const srv = await startServer({ storeDir: mnt });

after(async () => {
    try {
        await srv.stop();
    } finally {
        try { execFileSync('umount', [mnt]); } catch { execFileSync('umount', ['-l', mnt]); }
        rmSync(mnt, { recursive: true, force: true });
    }
});

const free = () => { const s = statfsSync(mnt); return s.bavail * s.bsize; };

/** Fills the file system until `leave` bytes are free. */
function fill(leave) {
    const n = Math.max(0, free() - leave);
    writeFileSync(filler, Buffer.alloc(n, 0x61));
}

async function countHistory(db, pipe) {
    const [rows] = await db.query('SELECT id FROM pipes_messages WHERE name = ?', [pipe]);
    return rows.map((r) => Number(r.id));
}

test('a full disk: each write is OK or ERR (Storage error), OK rows survive a restart, ERR rows do not', srv.wrap(async () => {
    const watcher = await mysql2Connect(srv); // another client, reading throughout
    let db = await mysql2Connect(srv);
    await db.query("INSERT INTO pipes_settings (name, length) VALUES ('big', 1000)");
    fill(384 * 1024);
    const body = 'x'.repeat(48 * 1024);
    const okIds = [];
    let errors = 0, lastError = '';
    for (let i = 0; i < 60 && errors < 3; i++) {
        try {
            const [res] = await db.query("INSERT INTO pipes_messages (name, event, message) VALUES ('big', 'e', ?)", [JSON.stringify({ i, body })]);
            okIds.push(Number(res.insertId));
        } catch (e) {
            assert.ok(e.errno !== undefined && /Storage error/.test(e.sqlMessage ?? ''),
                `a failed write is answered with an ERR packet naming the storage error, got: ${e.code} ${e.message}`);
            errors++;
            lastError = e.sqlMessage;
            db.destroy();
            db = await mysql2Connect(srv);
        }
        const [rows] = await watcher.query('SELECT 1 AS one');
        assert.equal(rows[0].one, 1, 'the other connection is served');
    }
    assert.ok(errors > 0, 'the disk filled up and writes were refused');
    assert.ok(okIds.length > 0, 'some writes fitted before it did');
    assert.match(lastError, /full|disk|I\/O/i, `the error says why: ${lastError}`);
    // space again: writes work without a restart
    rmSync(filler);
    const [res] = await db.query("INSERT INTO pipes_messages (name, event, message) VALUES ('big', 'e', 'after')");
    okIds.push(Number(res.insertId));
    watcher.destroy();
    db.destroy();
    await srv.restart();
    const check = await mysql2Connect(srv);
    assert.deepEqual(await countHistory(check, 'big'), okIds,
        'exactly the writes answered OK are stored, in order, after a restart');
    check.destroy();
}));

test('another process holds the store locked: writes answer ERR after [store] busy_timeout, other clients are served, the lock gone writes work', srv.wrap(async () => {
    const db = await mysql2Connect(srv);
    const watcher = await mysql2Connect(srv);
    await db.query("INSERT INTO users_auth (id, hash) VALUES (1, 'before')");
    // a foreign writer on the same file (an operator's sqlite3 shell, a backup tool ...)
    const locker = spawn('/usr/bin/python3', ['-c', [
        'import sqlite3, sys',
        `c = sqlite3.connect(${JSON.stringify(srv.storePath)}, isolation_level=None, timeout=10)`,
        "c.execute('BEGIN EXCLUSIVE')",
        "print('locked', flush=True)",
        'sys.stdin.readline()',
        "c.execute('ROLLBACK')",
    ].join('\n')], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise((resolve, reject) => {
        locker.stdout.on('data', (d) => { if (String(d).includes('locked')) resolve(); });
        locker.on('exit', (code) => reject(new Error(`the locker exited (${code})`)));
    });
    try {
        const t0 = Date.now();
        const write = db.query("INSERT INTO users_auth (id, hash) VALUES (2, 'locked')").then(() => 'OK', (e) => e);
        const [rows] = await watcher.query('SELECT hash FROM users_auth WHERE id = 1');
        assert.deepEqual(rows.map((r) => r.hash), ['before'], 'reads are served while the file is locked');
        const r = await write;
        assert.notEqual(r, 'OK', 'a write that could not take the lock is not acknowledged');
        assert.match(r.sqlMessage ?? '', /Storage error.*locked/, `ERR naming the lock, got ${r.message}`);
        assert.ok(Date.now() - t0 < 3000, `the write gave up after busy_timeout, not later (${Date.now() - t0} ms)`);
    } finally {
        locker.stdin.end('\n');
        await new Promise((resolve) => locker.on('close', resolve));
    }
    const [res] = await watcher.query("INSERT INTO users_auth (id, hash) VALUES (3, 'after')");
    assert.equal(res.affectedRows, 1);
    const [rows] = await watcher.query('SELECT id FROM users_auth WHERE id IN (1, 2, 3)');
    assert.deepEqual(rows.map((r) => Number(r.id)), [1, 3], 'the refused row is absent');
    db.destroy();
    watcher.destroy();
}));

test('a store on a read-only file system: ccomet does not start and says why', srv.wrap(async () => {
    await srv.stop({ cleanup: false });
    execFileSync('mount', ['-o', 'remount,ro', mnt]);
    try {
        const r = spawnSync(BIN, ['--conf', srv.confPath], { encoding: 'utf8', timeout: 20000 });
        assert.notEqual(r.status, 0, 'it exits with an error');
        assert.match(r.stderr, /store/i, `the error names the store: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(srv.storePath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'and its path');
    } finally {
        execFileSync('mount', ['-o', 'remount,rw', mnt]);
    }
    await srv.start();
}));
