// ccomet-media's mixer (src/media/mixer.c) against real headless Chromium pages, without SIP:
// build/media-harness (tests/media/mixer_harness.c: the mixer + a stub registry + an HTTP
// offer/answer endpoint) and Chromium with the fake camera and microphone.
//
// Everything runs in a fresh network namespace that has only `lo` (unshare -n), so ICE can only
// pick 127.0.0.1 (the notes: reference/media-feasibility.md 3.2). The file re-executes itself
// inside the namespace when it is not there yet; the inner process inherits stdout, so
// node --test reads the inner run's report as this file's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cellDiff, inNetns, waitUntil } from './netns.mjs';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HARNESS = process.env.MEDIA_HARNESS ?? path.join(ROOT, 'build/media-harness');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const PORT = 18480;
const BASE = `http://127.0.0.1:${PORT}`;

await inNetns(import.meta.url, inner, { title: 'media mixer in a lo-only network namespace' });

async function inner() {
    const { chromium } = await import('playwright-core');
    let harness, harnessLog = '', browser;
    const contexts = [];
    const pageLog = [];

    const withLogs = (fn) => async (t) => {
        try {
            await fn(t);
        } catch (e) {
            throw new Error(`${e.message}\n--- harness (last 4000 chars) ---\n${harnessLog.slice(-4000)}` +
                `\n--- pages ---\n${pageLog.slice(-60).join('\n')}`, { cause: e });
        }
    };

    async function member(label) {
        const ctx = await browser.newContext();
        contexts.push(ctx);
        const page = await ctx.newPage();
        page.setDefaultTimeout(15000);
        page.on('console', (m) => pageLog.push(`[${label}] ${m.type()}: ${m.text()}`));
        page.on('pageerror', (e) => pageLog.push(`[${label}] pageerror: ${e}`));
        const resp = await page.goto(`${BASE}/`);
        assert.equal(resp.status(), 200);
        return page;
    }

    async function join(page, room, id, profile, tone = null) {
        const r = await page.evaluate(([a, b, c, d]) => window.join(a, b, c, d), [room, id, profile, tone]);
        assert.equal(r.status, 200, `join ${room}/${id}: ${r.status} ${r.error}`);
        await waitUntil(() => page.evaluate(() => window.connectionState() === 'connected'),
            { what: `member ${id} connected` });
        return r.answer;
    }

    const stats = (page) => page.evaluate(() => window.stats());
    const state = async () => (await fetch(`${BASE}/state`)).json();

    /** Resolves once the page decodes the room canvas and both counters keep growing. */
    async function receivesMix(page, id, { video = true, bridged = false } = {}) {
        let last;
        const s0 = await waitUntil(async () => {
            const s = last = await stats(page);
            return s.audio && s.audio.totalSamplesReceived > 0 &&
                (!video || (s.video && s.video.framesDecoded > 0)) && s;
        }, { what: () => `member ${id} receiving (stats ${JSON.stringify(last)})` });
        const s1 = await waitUntil(async () => {
            const s = await stats(page);
            return s.audio.totalSamplesReceived > s0.audio.totalSamplesReceived + 48000 &&
                (!video || s.video.framesDecoded > s0.video.framesDecoded + 20) && s;
        }, { what: `member ${id} decoding more (had ${JSON.stringify(s0)})` });
        if (video && !bridged) {
            assert.equal(s1.video.frameWidth, 640);
            assert.equal(s1.video.frameHeight, 480);
        } else if (video) { // the other's camera as sent: Chromium scales it down under load
            assert.ok(s1.video.frameWidth > 0 && s1.video.frameWidth * 3 === s1.video.frameHeight * 4,
                `member ${id}: a 4:3 picture (${s1.video.frameWidth}x${s1.video.frameHeight})`);
        }
        return s1;
    }

    /** Waits until the cells `moving` all change between snapshots (and are not black) and the
     * cells `black` are black (first waits for that picture: a layout change takes a few frames). */
    async function cellsMove(page, id, cols, rows, moving, black) {
        let now;
        await waitUntil(async () => {
            now = await page.evaluate(([c, r]) => window.cells(c, r), [cols, rows]);
            return now && black.every((i) => now[i].mean < 8) && moving.every((i) => now[i].mean > 8);
        }, { what: () => `member ${id}: black ${black}, picture in ${moving} (means ${now && now.map((c) => c.mean.toFixed(0))})` });
        const first = await waitUntil(() => page.evaluate(([c, r]) => window.cells(c, r), [cols, rows]),
            { what: `member ${id} picture` });
        const seen = new Set();
        let last;
        await waitUntil(async () => {
            last = await page.evaluate(([c, r]) => window.cells(c, r), [cols, rows]);
            for (const i of moving) {
                if (last[i].mean > 8 && cellDiff(first[i], last[i]) > 0.5) seen.add(i);
            }
            return seen.size === moving.length;
        }, { what: `member ${id}: cells ${moving} changing (seen ${[...seen]})`, everyMs: 200 });
        for (const i of black) assert.ok(last[i].mean < 8, `member ${id}: cell ${i} should be black, mean ${last[i].mean}`);
    }

    before(async () => {
        assert.ok(existsSync(HARNESS), `${HARNESS} is missing (build it: see tests/media/mixer_harness.c)`);
        harness = spawn(HARNESS, ['--port', String(PORT), '--www', path.join(ROOT, 'tests/media'),
            '--log-level', process.env.MEDIA_LOG_LEVEL ?? 'info'], {
            env: { ...process.env, ASAN_OPTIONS: process.env.MEDIA_ASAN_OPTIONS ?? 'detect_leaks=0', GST_DEBUG: process.env.GST_DEBUG ?? '1' },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        harness.stdout.on('data', (d) => { harnessLog += d; });
        harness.stderr.on('data', (d) => { harnessLog += d; });
        await waitUntil(() => harnessLog.includes('media-harness listening') || harness.exitCode !== null,
            { what: 'the harness to listen', everyMs: 20 });
        assert.equal(harness.exitCode, null, `harness exited:\n${harnessLog}`);
        browser = await chromium.launch({
            executablePath: CHROMIUM, headless: true, timeout: 30000,
            args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
                '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required'],
        });
    });

    after(async () => {
        await Promise.all(contexts.map((c) => c.close().catch(() => {})));
        if (browser) await browser.close().catch(() => {});
        if (harness && harness.exitCode === null) await stopHarness();
        if (process.env.MEDIA_HARNESS_LOG) writeFileSync(process.env.MEDIA_HARNESS_LOG, harnessLog);
    });

    const pages = {};

    /** SIGTERM; resolves with the exit code (SIGKILL after 10 s: a hang is a failure). */
    async function stopHarness() {
        const exited = new Promise((r) => harness.once('exit', (code, sig) => r(code ?? sig)));
        harness.kill('SIGTERM');
        const t = setTimeout(() => harness.kill('SIGKILL'), 10000);
        const code = await exited;
        clearTimeout(t);
        return code;
    }

    /** CPU of the harness (user+system, % of one core) over ms; only when MEDIA_CPU_MS is set. */
    async function cpu(ms) {
        const ticks = () => {
            const f = readFileSync(`/proc/${harness.pid}/stat`, 'utf8').split(') ')[1].split(' ');
            return Number(f[11]) + Number(f[12]); /* utime, stime (fields 14, 15) */
        };
        const hz = 100, a = ticks(), t0 = Date.now();
        await new Promise((r) => setTimeout(r, ms));
        return ((ticks() - a) / hz) / ((Date.now() - t0) / 1000) * 100;
    }

    test('three members join a video room: each decodes the 640x480 mix and hears audio', withLogs(async (t) => {
        for (const id of [1, 2, 3]) {
            pages[id] = await member(`m${id}`);
            // Member 2 sends a steady tone, 1 and 3 silence (for the talking and mix-minus test).
            const answer = await join(pages[id], 'r1', id, 'video', id === 2 ? 'on' : 'off');
            assert.match(answer, /m=video [1-9]\d* /);
            assert.match(answer.split('m=video')[1], /a=sendrecv/);
            assert.match(answer.split('m=video')[0].split('m=audio')[1], /a=sendrecv/);
            assert.match(answer, /a=candidate:.* 127\.0\.0\.1 /);
        }
        await Promise.all([1, 2, 3].map((id) => receivesMix(pages[id], id)));
        const st = await state();
        assert.equal(st.members.filter((m) => m.room === 'r1').length, 3);
        assert.ok(st.members.every((m) => m.failed === null), JSON.stringify(st));
        if (process.env.MEDIA_CPU_MS) t.diagnostic(`harness CPU with 3 members: ${(await cpu(Number(process.env.MEDIA_CPU_MS))).toFixed(1)} % of one core`);
    }));

    test('the mix shows every member: three 2x2 tiles move, the fourth stays black', withLogs(async () => {
        await Promise.all([1, 2, 3].map((id) => cellsMove(pages[id], id, 2, 2, [0, 1, 2], [3])));
    }));

    test('talking: a steady tone starts it, silence stops it; nobody hears themself', withLogs(async () => {
        const member2 = async () => (await state()).members.find((m) => m.id === 2);
        const e = async (id) => (await stats(pages[id])).audio.totalAudioEnergy;
        await waitUntil(async () => (await member2()).talking, { what: 'member 2 (tone) talking' });
        const [e1, e2] = [await e(1), await e(2)];
        await waitUntil(async () => (await e(1)) - e1 > 0.1, { what: 'member 1 hearing member 2\'s tone' });
        const [d1, d2] = [(await e(1)) - e1, (await e(2)) - e2];
        assert.ok(d2 < d1 / 10, `member 2 should not hear its own tone: energy +${d2} vs member 1 +${d1}`);
        await pages[2].evaluate(() => window.setTone(false));
        const off = Date.now();
        await waitUntil(async () => !(await member2()).talking, { what: 'member 2 stops talking' });
        assert.ok(Date.now() - off >= 400, `stop after ${Date.now() - off} ms: the hysteresis is ~600 ms`);
    }));

    test('floor layout: member 1 big on top, members 2 and 3 in the strip; vmute hides a tile', withLogs(async () => {
        const post = async (q) => assert.equal((await fetch(`${BASE}${q}`, { method: 'POST' })).status, 200);
        // Floor, three members: the top three quarters hold member 1 (a 4:3 picture letterboxed
        // in 640x360, so both top halves show some of it), the bottom quarter the strip: member 2
        // on the left, member 3 on the right (2x4 cells: 6 and 7).
        await post('/layout?room=r1&layout=floor&floor=1');
        await cellsMove(pages[1], 1, 2, 4, [0, 1, 2, 3, 4, 5, 6, 7], []);
        await post('/update?member=2&vmute=1');
        await cellsMove(pages[1], 1, 2, 4, [0, 1, 2, 3, 4, 5, 7], [6]);
        await post('/update?member=2&vmute=0');
        await post('/layout?room=r1&layout=grid');
        await cellsMove(pages[1], 1, 2, 2, [0, 1, 2], [3]);
    }));

    test('a member leaves: the two left are bridged and keep decoding each other', withLogs(async (t) => {
        const bridges = () => (harnessLog.match(/msg="video bridge" on=1/g) ?? []).length;
        const before = bridges();
        assert.equal(await pages[3].evaluate(() => window.leave()), 200);
        await waitUntil(async () => (await state()).members.filter((m) => m.room === 'r1').length === 2,
            { what: 'two members left in r1' });
        // Two members: FreeSWITCH's video-bridge-first-two, each gets the other's picture as sent
        // (the fake camera, full frame) instead of the canvas.
        await waitUntil(() => bridges() > before, { what: 'the room bridged again' });
        await Promise.all([1, 2].map((id) => receivesMix(pages[id], id, { bridged: true })));
        await Promise.all([1, 2].map((id) => cellsMove(pages[id], id, 2, 2, [0, 1, 2, 3], [])));
        if (process.env.MEDIA_CPU_MS) t.diagnostic(`harness CPU with 2 members: ${(await cpu(Number(process.env.MEDIA_CPU_MS))).toFixed(1)} % of one core`);
    }));

    test('an audio room negotiates no video and mixes everyone but yourself', withLogs(async () => {
        const a = await member('a1');
        const answer = await join(a, 'r2', 11, 'audio');
        const video = answer.split('m=video')[1];
        assert.ok(video, 'the answer keeps the offered video m-line');
        assert.ok(/^ 0 /.test(video) || /a=inactive/.test(video), `video m-line not rejected:\nm=video${video}`);
        await receivesMix(a, 11, { video: false });
        const s = await stats(a);
        assert.equal(s.video, null, 'no inbound video');
        assert.ok(s.transceivers.filter((t) => t.kind === 'video').every((t) => t.currentDirection === 'inactive'),
            JSON.stringify(s.transceivers));
        // Alone, a member hears only the silent filler; once another member joins, it hears them.
        const alone = s.audio.totalAudioEnergy;
        const b = await member('a2');
        await join(b, 'r2', 12, 'audio');
        await receivesMix(b, 12, { video: false });
        assert.ok(alone < 1e-6, `a member alone should hear silence, energy ${alone}`);
        await waitUntil(async () => (await stats(a)).audio.totalAudioEnergy > alone + 0.01,
            { what: 'member 11 hearing member 12' });
        await b.evaluate(() => window.leave());
        await a.evaluate(() => window.leave());
        await waitUntil(async () => !(await state()).rooms.some((r) => r.name === 'r2'),
            { what: 'room r2 freed with its last member' });
    }));

    test('SIGTERM with members in a room: rooms freed, exit 0, no sanitizer report', withLogs(async () => {
        assert.equal(await stopHarness(), 0);
        assert.match(harnessLog, /room=r1 msg="room freed"/);
        assert.match(harnessLog, /media-harness stopped/);
        assert.doesNotMatch(harnessLog, /AddressSanitizer|runtime error:/);
    }));
}
