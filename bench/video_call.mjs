// Call set-up time of the Video API, as a user waits for it: from the backend's first
// INSERT INTO conference to onCallStart in each member's page (web/cometVideoApi.js in headless
// Chromium, auto-answering), for rooms of 2 and of 4 members, on loopback. Prints p50/p95 over
// every member of every measured call, the split at onCall (ccomet's invitation reaching the
// page) and the time until the last member of a call started. Not a test: nothing is asserted.
//
//   bench/video_call.sh                     (builds, then runs this in a lo-only namespace)
//   CALLS=20 SIZES=2,4 bench/video_call.sh
//
// Binaries: build/ccomet and build/ccomet-media (release; CCOMET_BIN / CCOMET_MEDIA_BIN override),
// with the node's default 640x480@30 canvas. The stack is tests/integration/video_stack.mjs.
import { inNetns, VideoStack, waitUntil } from '../tests/integration/video_stack.mjs';

const CALLS = Number(process.env.CALLS ?? 12);
const WARMUP = 1;
const SIZES = (process.env.SIZES ?? '2,4').split(',').map(Number);
const TARGET_MS = 1500;

function pct(xs, p) {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
const fmt = (x) => `${Math.round(x)}`.padStart(6);

await inNetns(import.meta.url, async () => {
    const stack = new VideoStack({ videoProfile: null, mediaLog: 'warn', serverLog: 'warn' });
    await stack.start();
    const db = await stack.db();
    const max = Math.max(...SIZES);
    const hashes = Object.fromEntries(Array.from({ length: max }, (_, i) => [i + 1, `benchKey${i + 1}`]));
    await stack.signIn(hashes);
    const pages = [];
    for (let u = 1; u <= max; u++) pages.push(await stack.page(u, hashes[u], { auto: true }));
    console.log(`# video call set-up: INSERT INTO conference -> onCallStart, ${CALLS} calls per size (+${WARMUP} warm-up), ` +
        `Chromium ${stack.browser.version()}, ${process.env.CCOMET_MEDIA_BIN ?? 'build/ccomet-media'}`);
    console.log('members  calls   p50 ms   p95 ms   max ms | to onCall p50 | whole call p50   p95 | failed');
    const results = [];
    let seq = 0;
    for (const n of SIZES) {
        const inCall = pages.slice(0, n);
        const starts = [];
        const onCalls = [];
        const whole = [];
        const steps = {}; // set-up step -> ms after acceptCall (onCallStart's timing)
        let failed = 0;
        for (let i = 0; i < CALLS + WARMUP; i++) {
            const room = `bench${n}x${++seq}`;
            const t0 = Date.now();
            for (let u = 1; u <= n; u++) {
                await db.query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES (?, ?, 1, '{}', 'video')", [room, u]);
            }
            let evs;
            try {
                evs = await Promise.all(inCall.map((p) => stack.waitEvent(p, 'onCallStart', (x) => x.e.room === room, { timeoutMs: 30000 })));
            } catch (e) {
                failed++;
                console.log(`# ${room}: ${e.message.split('\n')[0]}`);
            }
            const rings = await Promise.all(inCall.map((p) => stack.events(p, 'onCall')));
            if (evs && i >= WARMUP) {
                for (const e of evs) {
                    starts.push(e.t - t0);
                    for (const [k, ms] of Object.entries(e.e.timing || {})) (steps[k] ||= []).push(ms);
                }
                whole.push(Math.max(...evs.map((e) => e.t)) - t0);
                for (const r of rings) {
                    const c = r.find((x) => x.e.room === room);
                    if (c) onCalls.push(c.t - t0);
                }
            }
            await db.query('DELETE FROM conference WHERE name = ?', [room]);
            await Promise.all(inCall.map((p) => stack.waitEvent(p, 'onCallEnd', (x) => x.e.room === room, { timeoutMs: 30000 })));
            await waitUntil(async () => (await db.query('SELECT user_id FROM conference_members WHERE name = ?', [room]))[0].length === 0,
                { what: `${room} empty`, timeoutMs: 30000 });
        }
        const r = { n, calls: whole.length, p50: pct(starts, 50), p95: pct(starts, 95), max: Math.max(...starts),
            ring50: pct(onCalls, 50), whole50: pct(whole, 50), whole95: pct(whole, 95), failed };
        results.push(r);
        console.log(`${String(n).padStart(7)} ${String(r.calls).padStart(6)} ${fmt(r.p50)}   ${fmt(r.p95)}   ${fmt(r.max)} |        ${fmt(r.ring50)} |      ${fmt(r.whole50)} ${fmt(r.whole95)} | ${failed}`);
        r.steps = Object.entries(steps).map(([k, xs]) => `${k} ${Math.round(pct(xs, 50))}`).join(', ');
    }
    for (const r of results) {
        console.log(`# ${r.n} members: p50 ${Math.round(r.p50)} ms, p95 ${Math.round(r.p95)} ms -> target < ${TARGET_MS} ms ${r.p95 < TARGET_MS ? 'met (p95)' : r.p50 < TARGET_MS ? 'met at p50 only' : 'not met'}`);
        console.log(`#   set-up steps, p50 ms after acceptCall: ${r.steps}`);
    }
    await db.end();
    await stack.stop();
}, { deadlineMs: 30 * 60 * 1000 });
