// Integration-test harness: runs one real ccomet process per test file on private loopback
// ports, with its own comet.ini and SQLite store in a fresh temp dir.
//
//   const srv = await startServer();            // or startServer({ password, tls: true, baseDir })
//   after(() => srv.stop());                     // SIGTERM, exit 0, no ASan/UBSan report
//   test('x', srv.wrap(async () => { ... }));    // on failure the server's output is appended
//
// Everything waits on events (process exit, socket connect/error) or polls a socket every 20 ms;
// nothing sleeps for a fixed time. The binary is build/asan/ccomet, or $CCOMET_BIN.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = process.env.CCOMET_BIN
    ? path.resolve(process.env.CCOMET_BIN)
    : path.join(ROOT, 'build', 'asan', 'ccomet');
export const CLIENTS = path.join(ROOT, 'tests', 'integration', 'clients');

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const POLL_MS = 20;
const SANITIZER_RE = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/;

// Every server this process started, so a crashing test file never leaves one behind.
const live = new Set();
function killLive() {
    for (const s of live) {
        try { s.proc.kill('SIGKILL'); } catch { /* already gone */ }
    }
}
process.on('exit', killLive);
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.once(sig, () => {
        killLive();
        process.kill(process.pid, sig); // the handler is gone now: die of the same signal
    });
}

/** A free TCP port on 127.0.0.1: bind port 0, read it, close. */
export function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.unref();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

/** n distinct free ports (all held open until each is known, so they differ). */
export async function freePorts(n) {
    const servers = [];
    try {
        for (let i = 0; i < n; i++) {
            const s = net.createServer();
            servers.push(s);
            await new Promise((resolve, reject) => {
                s.on('error', reject);
                s.listen(0, '127.0.0.1', resolve);
            });
        }
        return servers.map((s) => s.address().port);
    } finally {
        await Promise.all(servers.map((s) => new Promise((r) => s.close(() => r()))));
    }
}

/**
 * Runs a command to completion: resolves { code, signal, stdout, stderr } on 'close'.
 * Kills it (SIGKILL) and rejects after timeoutMs.
 */
export function run(cmd, args, { input, env, cwd, timeoutMs = 20_000 } = {}) {
    return new Promise((resolve, reject) => {
        const p = spawn(cmd, args, { env: env ?? process.env, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        p.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
        p.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
        const timer = setTimeout(() => {
            p.kill('SIGKILL');
            reject(new Error(`${cmd} ${args.join(' ')}: timed out after ${timeoutMs} ms\n` +
                `stdout: ${stdout}\nstderr: ${stderr}`));
        }, timeoutMs);
        p.on('error', (e) => { clearTimeout(timer); reject(e); });
        p.on('close', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, stdout, stderr });
        });
        p.stdin.on('error', () => { /* the child may exit before reading */ });
        p.stdin.end(input ?? '');
    });
}

/** A self-signed certificate and key (CN=localhost, SAN localhost + 127.0.0.1) in dir. */
export async function makeCert(dir) {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    const r = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '1', '-keyout', key, '-out', cert]);
    if (r.code !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
    return { cert, key };
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port (polling every 20 ms). */
function waitForPort(port, { timeoutMs, isDead }) {
    const deadline = Date.now() + timeoutMs;
    return new Promise((resolve, reject) => {
        const attempt = () => {
            const dead = isDead();
            if (dead) return reject(new Error(dead));
            const sock = net.connect({ host: '127.0.0.1', port });
            sock.once('connect', () => { sock.destroy(); resolve(); });
            sock.once('error', () => {
                sock.destroy();
                if (Date.now() > deadline) {
                    reject(new Error(`port ${port} did not accept connections within ${timeoutMs} ms`));
                } else {
                    setTimeout(attempt, POLL_MS);
                }
            });
        };
        attempt();
    });
}

function tail(s, n = 6000) {
    return s.length > n ? `...[${s.length - n} bytes cut]...\n${s.slice(-n)}` : s;
}

export class Server {
    constructor(opts) {
        this.opts = opts;
        this.password = opts.password ?? 'password';
        this.proc = null;
        this.stdout = '';
        this.stderr = '';
        this.log = ''; // stdout+stderr of every run of this server, for failure reports
        this.runs = 0;
    }

    async init() {
        this.dir = mkdtempSync(path.join(os.tmpdir(), 'ccomet-it-'));
        [this.port, this.wsPort] = await freePorts(2);
        // opts.storeDir: the store on a file system of the test's making (full, read-only ...)
        this.storePath = path.join(this.opts.storeDir ?? this.dir, 'ccomet.db');
        this.confPath = path.join(this.dir, 'comet.ini');
        if (this.opts.tls) Object.assign(this, await makeCert(this.dir));
        const lines = [
            '[main]', `password = ${this.password}`,
            ...(this.opts.baseDir ? [`base_dir = ${this.opts.baseDir}`] : []), '',
            '[cometql]', 'ip = 127.0.0.1', `port = ${this.port}`,
            ...(this.opts.tls ? [`ssl_cert = ${this.cert}`, `ssl_key = ${this.key}`] : []), '',
            '[ws]', 'ip = 127.0.0.1', `port = ${this.wsPort}`, '',
            '[store]', `path = ${this.storePath}`, '',
            '[log]', `level = ${this.opts.logLevel ?? 'debug'}`, '',
            this.opts.extraConf ?? '',
        ];
        writeFileSync(this.confPath, lines.join('\n'));
    }

    /** Spawns the binary on the config and waits until the CometQL port accepts connections. */
    async start() {
        if (!existsSync(BIN)) {
            throw new Error(`server binary ${BIN} does not exist (run \`make asan\` or set CCOMET_BIN)`);
        }
        this.runs++;
        this.stdout = '';
        this.stderr = '';
        this.log += `\n===== ccomet run ${this.runs}: ${BIN} --conf ${this.confPath} =====\n`;
        const env = {
            ...process.env,
            ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1:abort_on_error=0',
            UBSAN_OPTIONS: process.env.UBSAN_OPTIONS ?? 'print_stacktrace=1:halt_on_error=1',
        };
        const proc = spawn(BIN, ['--conf', this.confPath], { cwd: this.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
        this.proc = proc;
        live.add(this);
        proc.stdout.setEncoding('utf8').on('data', (d) => { this.stdout += d; this.log += d; });
        proc.stderr.setEncoding('utf8').on('data', (d) => { this.stderr += d; this.log += d; });
        let spawnError = null;
        proc.on('error', (e) => { spawnError = e; });
        // 'close' (not 'exit'): every byte of stdout/stderr has been read by then.
        this.closed = new Promise((resolve) => {
            proc.on('close', (code, signal) => {
                live.delete(this);
                this.exit = { code, signal };
                resolve(this.exit);
            });
        });
        this.exit = null;
        try {
            await waitForPort(this.port, {
                timeoutMs: READY_TIMEOUT_MS,
                isDead: () => (spawnError ? `spawn failed: ${spawnError.message}`
                    : this.exit ? `ccomet exited during startup (code ${this.exit.code}, signal ${this.exit.signal})`
                        : null),
            });
        } catch (e) {
            if (!this.exit) {
                proc.kill('SIGKILL');
                await this.closed;
            }
            throw new Error(`${e.message}\n${this.report()}`);
        }
        return this;
    }

    get running() {
        return this.proc !== null && this.exit === null;
    }

    /** An http:// URL on the ws port (static files from `baseDir`, given to startServer). */
    httpUrl(p = '/') {
        return `http://127.0.0.1:${this.wsPort}${p.startsWith('/') ? '' : '/'}${p}`;
    }

    /** A browser URL for the ws port (see wsUrl below). */
    wsUrl(o) {
        return wsUrl(this, o);
    }

    /** The server's output so far, for assertion messages. */
    report() {
        return `--- ccomet output (${this.dir}) ---\n${tail(this.log)}\n--- end of ccomet output ---`;
    }

    /** Sanitizer findings in this server's output, or null. */
    sanitizerReport() {
        return SANITIZER_RE.test(this.log) ? this.report() : null;
    }

    /**
     * Graceful stop: SIGTERM, wait for exit; throws unless the exit code is 0 and no sanitizer
     * report was printed (over every run of this server).
     */
    async stop({ cleanup = true } = {}) {
        if (!this.proc) return;
        if (this.running) {
            this.proc.kill('SIGTERM');
            let timer;
            const timeout = new Promise((resolve) => {
                timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
            });
            const r = await Promise.race([this.closed, timeout]);
            clearTimeout(timer);
            if (r === 'timeout') {
                this.proc.kill('SIGKILL');
                await this.closed;
                throw new Error(`ccomet did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM\n${this.report()}`);
            }
        }
        const { code, signal } = this.exit;
        const problems = [];
        if (code !== 0) problems.push(`ccomet exited with code ${code} signal ${signal} (expected 0 after SIGTERM)`);
        if (SANITIZER_RE.test(this.log)) problems.push('sanitizer report in ccomet output');
        if (problems.length) throw new Error(`${problems.join('; ')}\n${this.report()}`);
        if (cleanup && !process.env.CCOMET_KEEP_TMP) rmSync(this.dir, { recursive: true, force: true });
    }

    /** SIGKILL, wait for the exit. */
    async kill9() {
        if (!this.running) throw new Error('kill9: server is not running');
        this.proc.kill('SIGKILL');
        await this.closed;
    }

    /** Graceful stop (if running) and start again on the same config and store. */
    async restart() {
        if (this.running) await this.stop({ cleanup: false });
        return this.start();
    }

    /**
     * Wraps a test body so that a failure carries the server's output (and a sanitizer report
     * that appeared meanwhile fails the test).
     */
    wrap(fn) {
        return async (t) => {
            try {
                await fn(t);
            } catch (e) {
                if (e && typeof e === 'object') {
                    try { e.message = `${e.message}\n${this.report()}`; } catch { /* read-only */ }
                }
                throw e;
            }
            const san = this.sanitizerReport();
            if (san) throw new Error(`sanitizer report in ccomet output\n${san}`);
        };
    }
}

/**
 * The WebSocket URL CppComet's JS client builds (`getUrl`):
 *   ws://127.0.0.1:<ws port>/ws/sesion=<key>&myid=<id>&devid=<dev>&v=4.09&uuid=<uuid>&api=js
 * prefix selects the route ('/ws/' or '/comet-server/ws/'); the session is URL-encoded.
 */
export function wsUrl(srv, { session = '', userId = 0, devId = 0, v = '4.09', uuid, api = 'js', prefix = '/ws/' } = {}) {
    const u = uuid ?? 'u'.repeat(32);
    return `ws://127.0.0.1:${srv.wsPort}${prefix}sesion=${encodeURIComponent(session)}&myid=${userId}` +
        `&devid=${devId}&v=${v}&uuid=${u}&api=${api}`;
}

/** Creates the temp dir and config, starts the server, and returns it. */
export async function startServer(opts = {}) {
    const s = new Server(opts);
    await s.init();
    await s.start();
    return s;
}

// ---- ccomet-media ------------------------------------------------------------------------------

export const MEDIA_BIN = process.env.CCOMET_MEDIA_BIN
    ? path.resolve(process.env.CCOMET_MEDIA_BIN)
    : path.join(ROOT, 'build', 'asan', 'ccomet-media');

/**
 * A running build/asan/ccomet-media on a config file the test wrote. start() resolves once
 * `waitPort` accepts connections; stop() sends SIGTERM and asserts a clean exit with no
 * sanitizer report. `log` is everything it printed so far.
 */
export class MediaProcess {
    constructor() {
        this.log = '';
        this.proc = null;
    }

    static async start(conf, { cwd, waitPort, timeoutMs = 15000 }) {
        assert.ok(existsSync(MEDIA_BIN), `${MEDIA_BIN} does not exist (make build/asan/ccomet-media)`);
        const m = new MediaProcess();
        m.proc = spawn(MEDIA_BIN, ['--conf', conf], {
            cwd,
            stdio: ['ignore', 'pipe', 'pipe'],
            env: {
                ...process.env,
                // slow unwinding lets tests/lsan-media.supp name GLib's load-time allocation
                ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ?? 'detect_leaks=1:abort_on_error=0'}:fast_unwind_on_malloc=0`,
                LSAN_OPTIONS: `suppressions=${path.join(ROOT, 'tests', 'lsan-media.supp')}`,
                UBSAN_OPTIONS: process.env.UBSAN_OPTIONS ?? 'print_stacktrace=1:halt_on_error=1',
            },
        });
        m.proc.stdout.setEncoding('utf8').on('data', (d) => { m.log += d; });
        m.proc.stderr.setEncoding('utf8').on('data', (d) => { m.log += d; });
        await m.waitForPort(waitPort, timeoutMs);
        return m;
    }

    waitForPort(port, timeoutMs) {
        const deadline = Date.now() + timeoutMs;
        return new Promise((resolve, reject) => {
            const tryOnce = () => {
                if (this.proc.exitCode !== null) {
                    reject(new Error(`ccomet-media exited during startup (code ${this.proc.exitCode})\n${this.log}`));
                    return;
                }
                const s = net.connect(port, '127.0.0.1');
                s.once('connect', () => { s.destroy(); resolve(); });
                s.once('error', () => {
                    s.destroy();
                    if (Date.now() > deadline) reject(new Error(`port ${port} never opened\n${this.log}`));
                    else setTimeout(tryOnce, 20);
                });
            };
            tryOnce();
        });
    }

    async stop() {
        if (!this.proc || this.proc.exitCode !== null) return;
        const closed = new Promise((r) => this.proc.on('close', (code, signal) => r({ code, signal })));
        this.proc.kill('SIGTERM');
        const exit = await closed;
        assert.equal(exit.code, 0, `ccomet-media exit ${JSON.stringify(exit)}\n${this.log.slice(-4000)}`);
        assert.doesNotMatch(this.log, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/, this.log.slice(-6000));
    }
}
