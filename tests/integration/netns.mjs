// What the browser and media tests share: running a test file in a fresh network namespace that
// has only `lo` (Chromium's and webrtcbin's ICE can then only pick 127.0.0.1; see
// reference/media-feasibility.md 3.2), waiting on a condition, and comparing two snapshots of a
// picture's cell.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const NETNS_ENV = 'CCOMET_TEST_NETNS';

/**
 * Runs `inner` in a fresh network namespace with only `lo`: outside one, re-executes the file
 * `url` under `unshare -n` (its TAP report is this file's, through the inherited stdout) and
 * exits with its status; inside, awaits inner(). Where `unshare -n` is not permitted the file
 * reports one skipped test called `title`. The inner run gets `deadlineMs` (node --test gives a
 * file 60 s): past it, it is stopped with SIGTERM and the file fails.
 */
export async function inNetns(url, inner, { title = 'browser tests in a lo-only network namespace', deadlineMs = 58000 } = {}) {
    if (process.env[NETNS_ENV] === '1') {
        await inner();
        return;
    }
    if (spawnSync('unshare', ['-n', 'true']).status !== 0) {
        test(title, { skip: 'unshare -n is not permitted here' }, () => {});
        return;
    }
    const r = spawnSync('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh',
        process.execPath, ...process.execArgv, fileURLToPath(url)],
    { stdio: 'inherit', env: { ...process.env, [NETNS_ENV]: '1' }, timeout: deadlineMs, killSignal: 'SIGTERM' });
    if (r.error && r.error.code === 'ETIMEDOUT') {
        console.log(`not ok 999 - ${path.basename(fileURLToPath(url))} did not finish within ${deadlineMs} ms`);
        process.exit(1);
    }
    process.exit(r.status ?? 1);
}

/** Resolves with pred()'s first truthy value (polled every `everyMs`); rejects after timeoutMs. */
export async function waitUntil(pred, { timeoutMs = 20000, what = 'condition', everyMs = 100 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const v = await pred();
        if (v) return v;
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
        }
        await new Promise((r) => setTimeout(r, everyMs));
    }
}

/** Mean absolute difference between two snapshots of one cell (0..255). */
export function cellDiff(a, b) {
    let s = 0;
    for (let i = 0; i < a.grid.length; i++) s += Math.abs(a.grid[i] - b.grid[i]);
    return s / a.grid.length;
}
