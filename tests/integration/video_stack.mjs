// The Video API stack for browser tests and the call benchmark (tests/integration/video_browser_*.test.mjs,
// bench/video_call.mjs): build/asan/ccomet and build/asan/ccomet-media wired together on loopback
// with generated secrets (ccomet's [sip] freeswitch line names the node's Event Socket and SIP
// WebSocket; the node's [directory] asks ccomet's [freeswitch] endpoint with Basic credentials),
// a small HTTP server for tests/media/video_page.html and web/ (CometServerApi.js,
// cometVideoApi.js, lib/jssip.js), and headless Chromium with the fake camera and microphone.
//
//   const stack = new VideoStack();  await stack.start();
//   const page = await stack.page(1, 'key1');      // authorized, cometVideoApi started
//   const db = await stack.db();                   // mysql2 on ccomet's CometQL
//   await stack.killMedia(); await stack.startMedia();
//   await stack.stop();                            // clean exits, no sanitizer reports
//
// Chromium's WebRTC needs a network namespace with only `lo` for ICE to pick 127.0.0.1:
// inNetns() re-executes the calling file under `unshare -n` (as media_jssip.test.mjs does).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { MediaProcess, ROOT, Server, freePorts, run } from './harness.mjs';
import { mysql2Connect, runPhp } from './clients.mjs';
import { inNetns as netnsRun, waitUntil } from './netns.mjs';

export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required'];

/** Runs the file's browser tests in a lo-only namespace (netns.mjs). */
export const inNetns = (url, inner, opts = {}) =>
    netnsRun(url, inner, { title: 'the Video API in Chromium in a lo-only network namespace', ...opts });
export { waitUntil };

const PAGE = path.join(ROOT, 'tests/media/video_page.html');
const FILES = {
    '/CometServerApi.js': path.join(ROOT, 'web/CometServerApi.js'),
    '/cometVideoApi.js': path.join(ROOT, 'web/cometVideoApi.js'),
    '/lib/jssip.js': path.join(ROOT, 'web/lib/jssip.js'),
};

export class VideoStack {
    static WIDTH = 320;
    static HEIGHT = 240;

    /** videoProfile: the node's [profile.video] canvas ({width, height, fps, kbps}; null: the
     * node's defaults, 640x480@30); the tests use a smaller one. */
    constructor({ mediaLog = process.env.MEDIA_LOG_LEVEL ?? 'info', serverLog = 'info',
        videoProfile = { width: VideoStack.WIDTH, height: VideoStack.HEIGHT, fps: 15, kbps: 300 } } = {}) {
        this.videoProfile = videoProfile;
        this.mediaLogLevel = mediaLog;
        this.serverLogLevel = serverLog;
        this.media = null;
        this.mediaLog = '';
        this.pageLog = [];
        this.contexts = [];
        this.pages = []; // [{label, page}]
    }

    async start() {
        for (const f of Object.values(FILES)) assert.ok(existsSync(f), `${f} is missing (make web/lib/jssip.js)`);
        this.dir = mkdtempSync(path.join(os.tmpdir(), 'ccomet-video-'));
        [this.sipPort, this.eslPort, this.dirPort, this.webPort] = await freePorts(4);
        this.eslPassword = randomBytes(12).toString('hex');
        this.dirUser = 'media';
        this.dirPassword = randomBytes(12).toString('hex');
        this.domain = 'FSdefaultDomain';
        this.callSecret = randomBytes(16).toString('hex'); // invitations the node checks (audit C1)
        this.mediaConf = path.join(this.dir, 'ccomet-media.ini');
        writeFileSync(this.mediaConf, [
            '[sip]', 'ip = 127.0.0.1', `ws_port = ${this.sipPort}`, `domain = ${this.domain}`,
            `call_secret = ${this.callSecret}`, '',
            '[directory]', `url = http://127.0.0.1:${this.dirPort}/directory`, `user = ${this.dirUser}`,
            `password = ${this.dirPassword}`, 'method = post', '',
            '[media]', 'ice_ip = 127.0.0.1', '',
            // by default a smaller canvas than the node's 640x480@30: two shared cores run the
            // pages and the sanitizer build of the mixer, whose main loop must keep answering ccomet
            ...(this.videoProfile ? ['[profile.video]', `width = ${this.videoProfile.width}`, `height = ${this.videoProfile.height}`,
                `fps = ${this.videoProfile.fps}`, `video_kbps = ${this.videoProfile.kbps}`, ''] : []),
            '[esl]', 'ip = 127.0.0.1', `port = ${this.eslPort}`, `password = ${this.eslPassword}`, '',
            '[log]', `level = ${this.mediaLogLevel}`, '',
        ].join('\n'));
        await this.startMedia();
        this.srv = new Server({
            logLevel: this.serverLogLevel,
            extraConf: [
                '[sip]',
                `freeswitch = []Server=127.0.0.1,Port=${this.eslPort},Pwd=${this.eslPassword},WSport=${this.sipPort},WSproto=ws`,
                `pipesalt = ${randomBytes(8).toString('hex')}`, `domain = ${this.domain}`,
                `call_secret = ${this.callSecret}`, '',
                '[freeswitch]', 'ip = 127.0.0.1', `port = ${this.dirPort}`, `user = ${this.dirUser}`,
                `password = ${this.dirPassword}`, '',
            ].join('\n'),
        });
        await this.srv.init();
        await this.srv.start();

        this.web = http.createServer((req, res) => {
            const p = req.url.split('?')[0];
            const file = p === '/' ? PAGE : FILES[p];
            if (!file) { res.writeHead(404).end(); return; }
            res.writeHead(200, { 'Content-Type': file.endsWith('.js') ? 'text/javascript' : 'text/html', 'Cache-Control': 'no-store' });
            res.end(readFileSync(file));
        });
        await new Promise((r) => this.web.listen(this.webPort, '127.0.0.1', r));
        this.browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 30000, args: CHROMIUM_ARGS });
    }

    async startMedia() {
        this.media = await MediaProcess.start(this.mediaConf, { cwd: this.dir, waitPort: this.sipPort, timeoutMs: 30000 });
        const m = this.media;
        if (!this.killOnExit) {
            // SIGTERM from inNetns's deadline: do not leave the node running
            this.killOnExit = () => { try { this.media?.proc.kill('SIGKILL'); } catch { /* gone */ } };
            process.on('exit', this.killOnExit);
            process.once('SIGTERM', () => process.exit(1));
        }
        m.proc.on('close', () => { this.mediaLog += m.log; });
    }

    /** SIGKILL: the node dies without a word (no BYE, no del-member). */
    async killMedia() {
        const m = this.media;
        this.media = null;
        const closed = new Promise((r) => m.proc.on('close', r));
        m.proc.kill('SIGKILL');
        await closed;
    }

    db() {
        return mysql2Connect(this.srv);
    }

    // ---- the backend ----

    /** Signs users in the way a backend does, with PHP mysqli: INSERT INTO users_auth. */
    async signIn(hashes) {
        const res = await runPhp('mysqli_runner.php', this.srv,
            Object.entries(hashes).map(([id, h]) => ({ sql: `INSERT INTO users_auth (id, hash) VALUES (${Number(id)}, '${h}')`, params: null })));
        assert.ok(res.every((r) => r.ok), JSON.stringify(res));
    }

    /** examples/call.php from the command line (PHP mysqli): its JSON answer. */
    async callPhp(args) {
        const r = await run('php', [path.join(ROOT, 'examples/call.php'), ...args], {
            env: { ...process.env, CCOMET_HOST: '127.0.0.1', CCOMET_PORT: String(this.srv.port), CCOMET_PASSWORD: this.srv.password },
        });
        assert.equal(r.code, 0, `call.php ${args.join(' ')}: ${r.stderr}${r.stdout}`);
        return JSON.parse(r.stdout);
    }

    /**
     * Accepts `room`'s call on each page in turn, each once the previous one is a member (so the
     * node sets up one member at a time, as people joining do; on two shared cores the sanitizer
     * build of the node is slow enough that three set-ups at once hold up its main loop).
     * db: a mysql2 connection; type: what the pages send; already: members in the room before.
     */
    async joinInTurn(db, room, pages, type = 'video', already = 0) {
        for (let i = 0; i < pages.length; i++) {
            await this.waitEvent(pages[i], 'onCall', (x) => x.e.room === room);
            assert.equal(await pages[i].evaluate((t) => T.accept(t), type), true);
            await waitUntil(async () => {
                const [rows] = await db.query('SELECT user_id FROM conference_members WHERE name = ?', [room]);
                return rows.length === already + i + 1;
            }, { what: `${already + i + 1} member(s) in ${room}`, timeoutMs: 30000 });
        }
    }

    // ---- what the pages saw ----

    /** The callbacks `page` recorded under `name` ([{name, t, e}]). */
    events(page, name) {
        return page.evaluate((n) => T.named(n), name);
    }

    /** The first `name` callback of `page` that satisfies pred (waits for it). */
    waitEvent(page, name, pred = () => true, { timeoutMs = 30000, what = '' } = {}) {
        return waitUntil(async () => (await this.events(page, name)).find(pred),
            { what: `${name} on ${page.url().match(/user=(\d+)/)?.[1] ?? '?'} ${what}`, timeoutMs });
    }

    stats(page) {
        return page.evaluate(() => T.stats());
    }

    /**
     * Resolves once `page` decodes 20 more video frames and 1 s more audio (audioOnly: audio).
     * mix: the frames are the room's canvas (WIDTH x HEIGHT); a room of two is bridged instead
     * (each member gets the other's camera as sent), so its frames have the camera's size.
     */
    async decodes(page, { audioOnly = false, mix = false } = {}) {
        let last;
        const s0 = await waitUntil(async () => {
            const s = last = await this.stats(page);
            return s.audio && s.audio.totalSamplesReceived > 0 && (audioOnly || (s.video && s.video.framesDecoded > 0)) && s;
        }, { what: () => `receiving (${JSON.stringify(last)})`, timeoutMs: 30000 });
        return waitUntil(async () => {
            const s = last = await this.stats(page);
            return s.audio && s.audio.totalSamplesReceived > s0.audio.totalSamplesReceived + 48000 &&
                (audioOnly || (s.video && s.video.framesDecoded > s0.video.framesDecoded + 20 && s.video.frameWidth > 0 &&
                    (!mix || (s.video.frameWidth === VideoStack.WIDTH && s.video.frameHeight === VideoStack.HEIGHT)))) && s;
        }, { what: () => `decoding more (had ${JSON.stringify(s0)}, now ${JSON.stringify(last)})`, timeoutMs: 30000 });
    }

    /** Received audio energy per second of received audio, over a window of at least `seconds`. */
    async energyRate(page, seconds = 2) {
        const a = (await this.stats(page)).audio;
        const b = await waitUntil(async () => {
            const s = (await this.stats(page)).audio;
            if (!s) throw new Error('the page has no call any more');
            return s.totalSamplesDuration >= a.totalSamplesDuration + seconds && s;
        }, { what: `${seconds} s of audio`, timeoutMs: 20000 });
        return (b.totalAudioEnergy - a.totalAudioEnergy) / (b.totalSamplesDuration - a.totalSamplesDuration);
    }

    /** A browser page (its own context) for user `u`, signed in with `key`; resolves once
     * ccomet has authorized it. opts.auto: accept every call at once (the benchmark). */
    async page(u, key, { auto = false, label = String(u) } = {}) {
        const ctx = await this.browser.newContext();
        this.contexts.push(ctx);
        const page = await ctx.newPage();
        page.setDefaultTimeout(30000);
        page.on('console', (m) => this.pageLog.push(`[${label}] ${m.type()}: ${m.text()}`));
        page.on('pageerror', (e) => this.pageLog.push(`[${label}] pageerror: ${e.stack ?? e}`));
        const q = new URLSearchParams({ user: String(u), key, node: `127.0.0.1:${this.srv.wsPort}`, ...(auto ? { auto: '1' } : {}),
            ...(process.env.VIDEO_PAGE_DEBUG ? { debug: '1' } : {}) });
        this.pages.push({ label, page });
        const resp = await page.goto(`http://127.0.0.1:${this.webPort}/?${q}`);
        assert.equal(resp.status(), 200);
        await waitUntil(() => page.evaluate(() => T.authorized() === true), { what: `user ${u} authorized` });
        return page;
    }

    /** Closes a page's context (the page leaves: pagehide ends its calls). */
    async closePage(page) {
        const ctx = page.context();
        await ctx.close().catch(() => {});
        this.contexts = this.contexts.filter((c) => c !== ctx);
    }

    /** Every callback each open page recorded, one line each (for failure reports). */
    async pageEvents() {
        const out = [];
        for (const { label, page } of this.pages) {
            if (page.isClosed()) continue;
            const evs = await page.evaluate(() => T.events.map((x) => `${x.t % 100000} ${x.name} room=${x.e.room} ` +
                `${['status', 'user_id', 'type', 'cause'].map((k) => x.e[k] !== undefined ? `${k}=${x.e[k]}` : '').join(' ')}`)).catch((e) => [String(e)]);
            out.push(...evs.map((l) => `[${label}] ${l}`));
        }
        return out.join('\n');
    }

    report() {
        const media = (this.mediaLog + (this.media ? this.media.log : '')).slice(-6000);
        return `\n--- ccomet-media (last 6000 chars) ---\n${media}\n--- pages (last 80 lines) ---\n${this.pageLog.slice(-80).join('\n')}` +
            `\n${this.srv ? this.srv.report() : ''}`;
    }

    /** A test body whose failure carries the logs of both processes and of the pages. */
    wrap(fn) {
        return async (t) => {
            try {
                await fn(t);
            } catch (e) {
                if (e && typeof e === 'object') {
                    const evs = await this.pageEvents();
                    // ccomet ends every call of a node that leaves a command unanswered for 2 s
                    // (src/video/media_link.c); on a loaded machine a busy node hits that.
                    const down = /media node down[^\n]*not answered/.test(this.srv?.log ?? '')
                        ? '\n(note: ccomet declared the media node down when it left a command unanswered for 2 s)' : '';
                    try { e.message = `${e.message}${down}\n--- page callbacks ---\n${evs}${this.report()}`; } catch { /* read-only */ }
                }
                throw e;
            }
        };
    }

    async stop() {
        await Promise.all(this.contexts.map((c) => c.close().catch(() => {})));
        if (this.browser) await this.browser.close().catch(() => {});
        if (this.web) this.web.close();
        const problems = [];
        try {
            if (this.srv) await this.srv.stop();
        } catch (e) { problems.push(e.message); }
        try {
            if (this.media) await this.media.stop();
        } catch (e) { problems.push(e.message); }
        if (this.dir) rmSync(this.dir, { recursive: true, force: true });
        if (problems.length) throw new Error(problems.join('\n'));
    }
}
