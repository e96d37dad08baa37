// ccomet-media end to end as a browser sees it: JsSIP (the project's bundle, web/lib/jssip.js) in
// headless Chromium with the fake camera and microphone registers to the real
// build/asan/ccomet-media over SIP-over-WebSocket (digest against a static directory file), calls
// conferences by the dialplan's <dev_id>*<room>*<profile>, and decodes the mix; the Event Socket
// lists and kicks members. The page is tests/media/jssip_page.html, served by a small HTTP server
// in this file together with the bundle.
//
// Everything runs in a fresh network namespace that has only `lo` (unshare -n), so ICE can only
// pick 127.0.0.1 (reference/media-feasibility.md 3.2). The file re-executes itself inside the
// namespace when it is not there yet; the inner process inherits stdout, so node --test reads the
// inner run's report as this file's. The cases share one browser, one ccomet-media and one room,
// in order: join, picture, hang-up, kick, audio room, wrong password, clean exit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { cellDiff, inNetns, waitUntil } from './netns.mjs';

await inNetns(import.meta.url, inner, { title: 'JsSIP against ccomet-media in a lo-only network namespace' });

/** One Event Socket api command on a fresh connection (auth first): the api/response body. */
function eslApi(port, password, command, timeoutMs = 20000) {
    return new Promise((resolve, reject) => {
        const sock = net.connect(port, '127.0.0.1');
        let buf = Buffer.alloc(0);
        const steps = [
            (m) => { assert.equal(m.headers['Content-Type'], 'auth/request'); sock.write(`auth ${password}\n\n`); },
            (m) => { assert.equal(m.headers['Reply-Text'], '+OK accepted'); sock.write(`api ${command}\n\n`); },
            (m) => { assert.equal(m.headers['Content-Type'], 'api/response'); sock.destroy(); resolve(m.body); },
        ];
        const timer = setTimeout(() => { sock.destroy(); reject(new Error(`ESL ${command}: no answer in ${timeoutMs} ms (have ${JSON.stringify(buf.toString())})`)); }, timeoutMs);
        sock.on('error', (e) => { clearTimeout(timer); reject(e); });
        sock.on('close', () => clearTimeout(timer));
        sock.on('data', (d) => {
            buf = Buffer.concat([buf, d]);
            try {
                for (;;) {
                    const end = buf.indexOf('\n\n');
                    if (end < 0) return;
                    const headers = {};
                    for (const line of buf.subarray(0, end).toString().split('\n')) {
                        const i = line.indexOf(': ');
                        headers[line.slice(0, i)] = line.slice(i + 2);
                    }
                    const len = Number(headers['Content-Length'] ?? 0);
                    if (buf.length < end + 2 + len) return;
                    const body = buf.subarray(end + 2, end + 2 + len).toString();
                    buf = buf.subarray(end + 2 + len);
                    steps.shift()({ headers, body });
                }
            } catch (e) {
                clearTimeout(timer);
                sock.destroy();
                reject(e);
            }
        });
    });
}

async function inner() {
    const { chromium } = await import('playwright-core');
    const { MediaProcess, ROOT, freePorts } = await import('./harness.mjs');
    const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
    const BUNDLE = path.join(ROOT, 'web/lib/jssip.js');
    const PAGE = path.join(ROOT, 'tests/media/jssip_page.html');
    const DOMAIN = 'ccomet.test';
    const ESL_PASSWORD = 'esl-secret';
    const USERS = { 1001: 'pw-1001', 1002: 'pw-1002', 1003: 'pw-1003', 1004: 'pw-1004' };
    const DEV_ID = 7;
    const ROOM = `${DEV_ID}*r1-${DOMAIN}`; // the dialplan's conference name for 7*r1*video
    const AUDIO_ROOM = `${DEV_ID}*r2-${DOMAIN}`;

    let media, dir, web, browser, wsPort, eslPort, webPort;
    const contexts = [];
    const pageLog = [];

    const withLogs = (fn) => async (t) => {
        try {
            await fn(t);
        } catch (e) {
            throw new Error(`${e.message}\n--- ccomet-media (last 5000 chars) ---\n${media?.log.slice(-5000)}` +
                `\n--- pages ---\n${pageLog.slice(-60).join('\n')}`, { cause: e });
        }
    };

    before(async () => {
        assert.ok(existsSync(BUNDLE), `${BUNDLE} is missing (make web/lib/jssip.js)`);
        dir = mkdtempSync(path.join(os.tmpdir(), 'ccomet-media-jssip-'));
        let wssPort;
        [wsPort, wssPort, eslPort, webPort] = await freePorts(4);
        const dirFile = path.join(dir, 'directory.xml');
        writeFileSync(dirFile, `<include>\n  <domain name="${DOMAIN}">\n    <groups>\n      <group name="default">\n        <users>\n`
            + Object.entries(USERS).map(([u, p]) => `          <user id="${u}"><params><param name="password" value="${p}"/></params></user>\n`).join('')
            + '        </users>\n      </group>\n    </groups>\n  </domain>\n</include>\n');
        const conf = path.join(dir, 'ccomet-media.ini');
        writeFileSync(conf, [
            '[sip]', 'ip = 127.0.0.1', `ws_port = ${wsPort}`, `wss_port = ${wssPort}`, `domain = ${DOMAIN}`, '',
            '[directory]', `file = ${dirFile}`, '',
            // FreeSWITCH-style extensions (1001...), not ccomet's <dev_id><user_id> names, so the
            // tenant of a destination cannot be checked (media_sip and media_call_token do)
            '[dialplan]', 'tenant_check = no', '',
            '[media]', 'ice_ip = 127.0.0.1', '',
            '[esl]', 'ip = 127.0.0.1', `port = ${eslPort}`, `password = ${ESL_PASSWORD}`, '',
            '[log]', `level = ${process.env.MEDIA_LOG_LEVEL ?? 'info'}`, '',
        ].join('\n'));
        media = await MediaProcess.start(conf, { cwd: dir, waitPort: wsPort });

        // The page and the bundle, at the paths a ccomet deployment serves them from (web/ is
        // its static root there: /lib/jssip.js).
        web = http.createServer((req, res) => {
            const file = req.url === '/lib/jssip.js' ? BUNDLE : req.url.split('?')[0] === '/' ? PAGE : null;
            if (req.url === '/favicon.ico') { res.writeHead(204).end(); return; }
            if (!file) { res.writeHead(404).end(); return; }
            res.writeHead(200, { 'Content-Type': file.endsWith('.js') ? 'text/javascript' : 'text/html' });
            res.end(readFileSync(file));
        });
        await new Promise((r) => web.listen(webPort, '127.0.0.1', r));

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
        if (web) web.close();
        if (media) await media.stop(); // no-op when the last case stopped it
        if (process.env.MEDIA_JSSIP_LOG) writeFileSync(process.env.MEDIA_JSSIP_LOG, media?.log ?? '');
        if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** A page of its own (browser context) with a registered JsSIP user agent. */
    async function member(user) {
        const ctx = await browser.newContext();
        contexts.push(ctx);
        const page = await ctx.newPage();
        page.setDefaultTimeout(20000);
        page.on('console', (m) => pageLog.push(`[${user}] ${m.type()}: ${m.text()}`));
        page.on('pageerror', (e) => pageLog.push(`[${user}] pageerror: ${e}`));
        const resp = await page.goto(`http://127.0.0.1:${webPort}/${process.env.MEDIA_JSSIP_DEBUG ? '?debug' : ''}`);
        assert.equal(resp.status(), 200);
        assert.equal(await page.evaluate(() => JsSIP.version), '3.13.8');
        return page;
    }

    const register = (page, user, password) => page.evaluate(([u, url, pw, d]) => window.register(url, u, pw, d),
        [String(user), `ws://127.0.0.1:${wsPort}`, password, DOMAIN]);

    /** Calls dest and waits until the peer connection is connected; returns the answer SDP. */
    async function call(page, user, dest) {
        const r = await page.evaluate((d) => window.call(d), dest);
        assert.ok(r.ok, `${user} calling ${dest}: ${JSON.stringify(r)}`);
        await waitUntil(() => page.evaluate(() => window.connectionState() === 'connected'),
            { what: `${user}'s peer connection connected` });
        return r.answer;
    }

    const stats = (page) => page.evaluate(() => window.stats());

    /** Resolves once the page decodes the room's 640x480 canvas (unless audioOnly) and receives
     * audio; with `hears`, the audio carries the others' fake microphones (a beep about every
     * second: its energy adds up to 0.1 and more a second, where the silence of a member alone
     * stays below 1e-6). A bridged member (two in the room) gets the other's camera as sent,
     * which Chromium scales down under load: `bridged` checks a 4:3 picture, not the canvas. */
    async function receivesMix(page, user, { audioOnly = false, hears = true, bridged = false } = {}) {
        let last;
        const s0 = await waitUntil(async () => {
            const s = last = await stats(page);
            return s.audio && s.audio.totalSamplesReceived > 0 &&
                (audioOnly || (s.video && s.video.framesDecoded > 0)) && s;
        }, { what: () => `${user} receiving (stats ${JSON.stringify(last)})` });
        const s1 = await waitUntil(async () => {
            const s = last = await stats(page);
            return s.audio.totalSamplesReceived > s0.audio.totalSamplesReceived + 48000 &&
                (!hears || s.audio.totalAudioEnergy > s0.audio.totalAudioEnergy + 0.01) &&
                (audioOnly || s.video.framesDecoded > s0.video.framesDecoded + 20) && s;
        }, { what: () => `${user} decoding more${hears ? ' and hearing the others' : ''} (had ${JSON.stringify(s0)}, now ${JSON.stringify(last)})` });
        if (!audioOnly && !bridged) {
            assert.equal(s1.video.frameWidth, 640);
            assert.equal(s1.video.frameHeight, 480);
        } else if (!audioOnly) {
            assert.ok(s1.video.frameWidth > 0 && s1.video.frameWidth * 3 === s1.video.frameHeight * 4,
                `${user}: a 4:3 picture (${s1.video.frameWidth}x${s1.video.frameHeight})`);
        }
        return s1;
    }

    /** Waits until the cells `moving` are not black and all change between snapshots. */
    async function cellsMove(page, user, cols, rows, moving, black = []) {
        let now;
        await waitUntil(async () => {
            now = await page.evaluate(([c, r]) => window.cells(c, r), [cols, rows]);
            return now && black.every((i) => now[i].mean < 8) && moving.every((i) => now[i].mean > 8);
        }, { what: () => `${user}: black ${black}, picture in ${moving} (means ${now && now.map((c) => c.mean.toFixed(0))})` });
        const first = now;
        const seen = new Set();
        let last;
        await waitUntil(async () => {
            last = await page.evaluate(([c, r]) => window.cells(c, r), [cols, rows]);
            for (const i of moving) {
                if (last[i].mean > 8 && cellDiff(first[i], last[i]) > 0.5) seen.add(i);
            }
            return seen.size === moving.length;
        }, { what: () => `${user}: cells ${moving} changing (seen ${[...seen]})`, everyMs: 200 });
        for (const i of black) assert.ok(last[i].mean < 8, `${user}: cell ${i} should be black, mean ${last[i].mean}`);
    }

    /** The room's members as `conference <room> list` shows them: [{ id, number, flags }]. */
    async function listRoom(room) {
        const body = await eslApi(eslPort, ESL_PASSWORD, `conference ${room} list`);
        if (body.startsWith('-ERR')) return [];
        return body.trim().split('\n').map((l) => {
            const f = l.split(';');
            return { id: Number(f[0]), number: f[4], flags: f[5] };
        });
    }

    const pages = {};
    const ended = (page) => page.evaluate(() => window.callEnd);

    test('three members register with digest auth and call one video room: each decodes the 640x480 mix and hears the others', withLogs(async () => {
        for (const user of [1001, 1002, 1003]) {
            pages[user] = await member(user);
            const reg = await register(pages[user], user, USERS[user]);
            assert.deepEqual(reg, { ok: true }, `${user} registering`);
        }
        // One after the other, each as soon as the previous is connected: the grid's tiles are in
        // join order, and the mixer sees joins close together.
        for (const user of [1001, 1002, 1003]) {
            const answer = await call(pages[user], user, `${DEV_ID}*r1*video`);
            assert.match(answer.split('m=video')[1], /a=sendrecv/);
            assert.match(answer, /a=candidate:.* 127\.0\.0\.1 /);
        }
        await Promise.all([1001, 1002, 1003].map((u) => receivesMix(pages[u], u)));
        const list = await listRoom(ROOM);
        assert.deepEqual(list.map((m) => m.number).sort(), ['1001', '1002', '1003']);
        assert.ok(list.every((m) => /\bvideo\b/.test(m.flags)), JSON.stringify(list));
    }));

    test('the picture shows the other members: their 2x2 tiles move, the fourth stays black', withLogs(async () => {
        const tile = { 1001: 0, 1002: 1, 1003: 2 };
        await Promise.all([1001, 1002, 1003].map((u) => cellsMove(pages[u], u, 2, 2,
            [1001, 1002, 1003].filter((o) => o !== u).map((o) => tile[o]), [3])));
    }));

    test('a member hangs up (BYE): the others keep decoding and the Event Socket lists two', withLogs(async () => {
        const r = await pages[1003].evaluate(() => window.hangup());
        assert.equal(r.originator, 'local');
        await waitUntil(async () => (await listRoom(ROOM)).length === 2, { what: 'two members listed' });
        assert.deepEqual((await listRoom(ROOM)).map((m) => m.number).sort(), ['1001', '1002']);
        // Two left: the mixer bridges them (each gets the other's picture, full frame).
        await Promise.all([1001, 1002].map((u) => receivesMix(pages[u], u, { bridged: true })));
        await Promise.all([1001, 1002].map((u) => cellsMove(pages[u], u, 2, 1, [0, 1])));
    }));

    test('a kick over the Event Socket ends that member\'s call with a BYE from the server', withLogs(async () => {
        const target = (await listRoom(ROOM)).find((m) => m.number === '1002');
        assert.ok(target, 'member 1002 listed');
        assert.equal(await eslApi(eslPort, ESL_PASSWORD, `conference ${ROOM} kick ${target.id}`), `+OK kicked ${target.id}\n`);
        const e = await waitUntil(() => ended(pages[1002]), { what: '1002\'s session ended' });
        assert.deepEqual(e, { event: 'ended', originator: 'remote', cause: 'Terminated' });
        await waitUntil(async () => (await listRoom(ROOM)).length === 1, { what: 'one member listed' });
        assert.equal(await ended(pages[1001]), null, '1001 is still in the call');
        await receivesMix(pages[1001], 1001, { hears: false });
        await cellsMove(pages[1001], 1001, 1, 1, [0]);
    }));

    test('an audio room negotiates no video: no inbound video is decoded, audio flows both ways', withLogs(async () => {
        for (const user of [1002, 1003]) {
            const answer = await call(pages[user], user, `${DEV_ID}*r2*audio`);
            const video = answer.split('m=video')[1];
            if (video) {
                assert.ok(/^ 0 /.test(video) || /a=inactive/.test(video), `video m-line not rejected:\nm=video${video}`);
            }
            assert.match(answer.split('m=audio')[1].split('m=video')[0], /a=sendrecv/);
        }
        await Promise.all([1002, 1003].map((u) => receivesMix(pages[u], u, { audioOnly: true })));
        for (const user of [1002, 1003]) {
            const s = await stats(pages[user]);
            assert.ok(!s.video || s.video.framesDecoded === 0, `${user}: no video decoded (${JSON.stringify(s.video)})`);
            assert.ok(s.transceivers.filter((t) => t.kind === 'video').every((t) => t.currentDirection === 'inactive' || t.currentDirection === 'stopped'),
                JSON.stringify(s.transceivers));
        }
        const list = await listRoom(AUDIO_ROOM);
        assert.deepEqual(list.map((m) => m.number).sort(), ['1002', '1003']);
        assert.ok(list.every((m) => !/\bvideo\b/.test(m.flags)), JSON.stringify(list));
    }));

    test('a wrong password fails to register (403)', withLogs(async () => {
        const page = await member(1004);
        const r = await register(page, 1004, 'not-the-password');
        assert.equal(r.ok, false);
        assert.equal(r.status, 403);
        assert.equal(r.cause, 'Rejected');
    }));

    test('SIGTERM with calls up: exit 0, no sanitizer report', withLogs(async () => {
        const m = media;
        media = null; // after() must not stop it twice
        try {
            await m.stop();
            assert.match(m.log, /room freed/);
        } finally {
            media = m; // for after()'s log dump
        }
    }));
}
