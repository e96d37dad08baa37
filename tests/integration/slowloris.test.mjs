// Slowloris on every port (issue 9, "bounded everything"): 5,000 connections from 127.0.0.2 that
// send a partial handshake and then nothing (or nothing at all) are held open against each of
// ccomet's CometQL (3307), browser (8087) and directory (8082) ports and ccomet-media's Event
// Socket (8021) and SIP over WebSocket (5066) ports, one port at a time. While they are held, a
// real client from 127.0.0.1 must be served; then the server must close every half-open one by
// itself within its handshake deadline (a few seconds here), which the test waits for as events;
// then a client from the attacker's address is served again (its per-address counts went back).
// The service time of the real client is printed (the target, 100 ms, is a figure for bench/, not
// an assertion: this machine is shared); the assertion is that it is served, within 5 s.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { MediaProcess, freePorts, startServer, wsUrl } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';

const HALF_OPEN = Number(process.env.SLOWLORIS_CONNECTIONS ?? 5000);
const DEADLINE_S = 3; // every handshake deadline of the servers under test
const ATTACKER = '127.0.0.2';
const ESL_PASSWORD = 'slow-esl-secret';

let srv, media, dir, dirPort, eslPort, sipPort;

before(async () => {
    [dirPort, eslPort, sipPort] = await freePorts(3);
    const [wssPort] = await freePorts(1);
    srv = await startServer({
        logLevel: 'info',
        extraConf: [
            '[cometql]', `connect_timeout = ${DEADLINE_S}`, 'max_connections = 20000', '',
            '[ws]', `handshake_timeout = ${DEADLINE_S}`, '',
            '[freeswitch]', 'ip = 127.0.0.1', `port = ${dirPort}`, 'user = fs', 'password = fs-secret', '',
        ].join('\n'),
    });
    dir = mkdtempSync(path.join(os.tmpdir(), 'ccomet-slowloris-'));
    const conf = path.join(dir, 'ccomet-media.ini');
    writeFileSync(conf, [
        '[sip]', 'ip = 127.0.0.1', `ws_port = ${sipPort}`, `wss_port = ${wssPort}`,
        `handshake_timeout = ${DEADLINE_S}`, '',
        '[esl]', 'ip = 127.0.0.1', `port = ${eslPort}`, `password = ${ESL_PASSWORD}`,
        `auth_timeout = ${DEADLINE_S}`, 'max_connections = 6000', '',
        '[log]', 'level = info', '',
    ].join('\n'));
    media = await MediaProcess.start(conf, { cwd: dir, waitPort: eslPort });
});

after(async () => {
    if (media) await media.stop();
    if (srv) await srv.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * Opens n connections from ATTACKER to port, 250 at a time, each sending `partial` once.
 * Resolves with { socks, closed } once all are connected (or refused); closed() resolves when the
 * server has closed every one of them.
 */
async function holdHalfOpen(port, n, partial) {
    const socks = [];
    let open = 0;
    const waiters = [];
    const onClose = () => {
        open--;
        if (open === 0) for (const w of waiters.splice(0)) w();
    };
    for (let i = 0; i < n; i += 250) {
        const batch = [];
        for (let j = i; j < Math.min(n, i + 250); j++) {
            batch.push(new Promise((resolve) => {
                const s = net.connect({ port, host: '127.0.0.1', localAddress: ATTACKER });
                s.on('error', () => {});
                s.once('connect', () => {
                    open++;
                    s.once('close', onClose);
                    if (partial) s.write(partial);
                    resolve();
                });
                s.once('close', () => resolve());
                s.on('data', () => {}); // whatever the server says (a banner, a refusal)
                socks.push(s);
            }));
        }
        await Promise.all(batch);
    }
    return {
        socks,
        get open() { return open; },
        closed: () => (open === 0 ? Promise.resolve() : new Promise((r) => waiters.push(r))),
        destroy: () => { for (const s of socks) s.destroy(); },
    };
}

/** Times fn (the real client's whole exchange) in ms. */
async function timed(fn) {
    const t0 = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - t0) / 1e6;
}

function withTimeout(p, ms, what) {
    let t;
    return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms); })])
        .finally(() => clearTimeout(t));
}

/** Reads from a raw socket until pred(text) holds. */
function rawExchange(port, send, pred, localAddress) {
    return new Promise((resolve, reject) => {
        const s = net.connect({ port, host: '127.0.0.1', localAddress });
        let text = '';
        s.on('error', reject);
        s.on('connect', () => { if (send) s.write(send); });
        s.on('data', (d) => {
            text += d.toString('latin1');
            if (pred(text)) { s.destroy(); resolve(text); }
        });
        s.on('close', () => reject(new Error(`closed before the answer: ${JSON.stringify(text.slice(0, 200))}`)));
    });
}

const PORTS = [
    ['CometQL (3307)', () => srv.port, null, async (from) => {
        const c = await mysql2Connect(srv, { localAddress: from });
        const [rows] = await c.query('SELECT 1 AS one');
        assert.equal(rows[0].one, 1);
        await c.end();
    }],
    ['browser WebSocket (8087)', () => srv.wsPort, 'GET /ws/sesion=&myid=0&devid=0&v=4.09&uuid=x&api=js HTTP/1.1\r\nHost: x\r\n', async (from) => {
        const ws = new WebSocket(wsUrl(srv), { localAddress: from });
        await new Promise((resolve, reject) => {
            ws.once('message', resolve); // the serverInfo line
            ws.once('error', reject);
        });
        ws.close();
    }],
    ['directory (8082)', () => dirPort, 'POST /directory HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nsection=dir', async (from) => {
        const status = await new Promise((resolve, reject) => {
            const req = http.request({ host: '127.0.0.1', port: dirPort, method: 'POST', path: '/directory', localAddress: from,
                auth: 'fs:fs-secret', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }, (res) => {
                res.resume();
                res.on('end', () => resolve(res.statusCode));
            });
            req.on('error', reject);
            req.end('section=directory&user=1&domain=x');
        });
        assert.equal(status, 200);
    }],
    ['Event Socket (8021)', () => eslPort, 'auth Clue', async (from) => {
        const text = await rawExchange(eslPort, `auth ${ESL_PASSWORD}\n\n`, (t) => t.includes('Reply-Text:'), from);
        assert.match(text, /Reply-Text: \+OK accepted/);
    }],
    ['SIP over WebSocket (5066)', () => sipPort, 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n', async (from) => {
        const ws = new WebSocket(`ws://127.0.0.1:${sipPort}/`, ['sip'], { localAddress: from });
        await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
        const reply = new Promise((resolve) => ws.once('message', (d) => resolve(d.toString())));
        ws.send(['OPTIONS sip:127.0.0.1 SIP/2.0', 'Via: SIP/2.0/WS x.invalid;branch=z9hG4bKslow1',
            'Max-Forwards: 70', 'To: <sip:127.0.0.1>', 'From: <sip:1@127.0.0.1>;tag=a1', 'Call-ID: slow1',
            'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n'));
        assert.match(await reply, /^SIP\/2\.0 200 /);
        ws.close();
    }],
];

for (const [name, port, partial, realClient] of PORTS) {
    test(`slowloris on ${name}: ${HALF_OPEN} half-open connections, a real client is served, the server closes them all within its deadline`, async () => {
        const held = await holdHalfOpen(port(), HALF_OPEN, partial);
        try {
            const ms = await withTimeout(timed(realClient), 5000, `${name}: the real client`);
            console.log(`# ${name}: ${held.open} half-open held, real client served in ${ms.toFixed(1)} ms`);
            // the directory's request deadline is its fixed 10 s, the others' DEADLINE_S
            await withTimeout(held.closed(), (Math.max(DEADLINE_S, 10) + 10) * 1000,
                `${name}: the server closing ${held.open} half-open connections`);
            assert.equal(held.open, 0);
            // and once they are gone, serves the attacker's address again (its counts went back)
            await withTimeout(realClient(ATTACKER), 5000, `${name}: a client from ${ATTACKER} afterwards`);
        } finally {
            held.destroy();
        }
    });
}
