// ccomet-media's Event Socket (src/media/esl_server.c) as an ESL client sees it: the real
// build/asan/ccomet-media (or $CCOMET_MEDIA_BIN) on a generated config with a private [esl] port,
// driven over raw `net` sockets. The expected bytes are FreeSWITCH 1.10.12's
// (reference/captures/esl-02, -03, -04). Events with live members are covered by the unit tests
// (tests/unit/media/esl_server.c), which can create members without SIP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { MEDIA_BIN, MediaProcess, ROOT, freePorts } from './harness.mjs';

const PASSWORD = 'esl-secret';
const NOTICE = 'Content-Type: text/disconnect-notice\nContent-Length: 67\n\n'
    + 'Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n';

let media, dir, eslPort;

/** An ESL connection: queued messages parsed as FreeSWITCH frames them. */
class Esl {
    constructor(port) {
        this.buf = Buffer.alloc(0);
        this.raw = Buffer.alloc(0);
        this.waiters = [];
        this.closed = false;
        this.sock = net.connect(port, '127.0.0.1');
        this.sock.on('data', (d) => {
            this.buf = Buffer.concat([this.buf, d]);
            this.raw = Buffer.concat([this.raw, d]);
            this.wake();
        });
        this.sock.on('close', () => { this.closed = true; this.wake(); });
        this.sock.on('error', () => {});
    }

    wake() {
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
    }

    /** The next message: { headers, body, raw } or null when the server closed first. */
    next(timeoutMs = 5000) {
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no ESL message in ${timeoutMs} ms; have ${JSON.stringify(this.buf.toString())}`)), timeoutMs);
            const attempt = () => {
                const end = this.buf.indexOf('\n\n');
                if (end >= 0) {
                    const head = this.buf.subarray(0, end).toString();
                    const headers = {};
                    for (const line of head.split('\n')) {
                        const i = line.indexOf(': ');
                        headers[line.slice(0, i)] = line.slice(i + 2);
                    }
                    const len = Number(headers['Content-Length'] ?? 0);
                    if (this.buf.length >= end + 2 + len) {
                        const raw = this.buf.subarray(0, end + 2 + len).toString();
                        const body = this.buf.subarray(end + 2, end + 2 + len).toString();
                        this.buf = this.buf.subarray(end + 2 + len);
                        clearTimeout(timer);
                        resolve({ headers, body, raw });
                        return;
                    }
                }
                if (this.closed) {
                    clearTimeout(timer);
                    resolve(null);
                    return;
                }
                this.waiters.push(attempt);
            };
            attempt();
        });
    }

    send(s) { this.sock.write(s); }

    async command(s) {
        this.send(s);
        return this.next();
    }

    /** Resolves when the server has closed the connection. */
    async closedByServer(timeoutMs = 5000) {
        const deadline = Date.now() + timeoutMs;
        while (!this.closed) {
            if (Date.now() > deadline) throw new Error('the server did not close the connection');
            await new Promise((r) => { this.waiters.push(r); setTimeout(r, 50); });
        }
    }

    end() { this.sock.destroy(); }
}

async function login() {
    const c = new Esl(eslPort);
    assert.equal((await c.next()).raw, 'Content-Type: auth/request\n\n');
    assert.equal((await c.command(`auth ${PASSWORD}\n\n`)).raw,
        'Content-Type: command/reply\nReply-Text: +OK accepted\n\n');
    return c;
}

before(async () => {
        dir = mkdtempSync(path.join(os.tmpdir(), 'ccomet-media-esl-'));
    const [sipPort, wssPort, port] = await freePorts(3);
    eslPort = port;
    const conf = path.join(dir, 'ccomet-media.ini');
    writeFileSync(conf, [
        '[sip]', 'ip = 127.0.0.1', `ws_port = ${sipPort}`, `wss_port = ${wssPort}`, '',
        '[esl]', 'ip = 127.0.0.1', `port = ${eslPort}`, `password = ${PASSWORD}`, '',
        '[log]', 'level = debug', '',
    ].join('\n'));
    media = await MediaProcess.start(conf, { cwd: dir, waitPort: eslPort });
});

after(async () => {
    if (media) await media.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a wrong password gets -ERR invalid, the disconnect notice and a close (esl-02)', async () => {
    const c = new Esl(eslPort);
    c.send('auth WrongPass\n\n');
    await c.closedByServer();
    assert.equal(c.raw.toString(), 'Content-Type: auth/request\n\n'
        + 'Content-Type: command/reply\nReply-Text: -ERR invalid\n\n' + NOTICE);
});

test('commands before auth are not found, and auth still works after', async () => {
    const c = new Esl(eslPort);
    await c.next();
    assert.equal((await c.command('api status\n\n')).headers['Reply-Text'], '-ERR command not found');
    assert.equal((await c.command(`auth ${PASSWORD}\n\n`)).headers['Reply-Text'], '+OK accepted');
    c.end();
});

test('api status has FreeSWITCH\'s shape with our name (esl-03)', async () => {
    const c = await login();
    const m = await c.command('api status\n\n');
    assert.equal(m.headers['Content-Type'], 'api/response');
    assert.equal(Number(m.headers['Content-Length']), Buffer.byteLength(m.body));
    const lines = m.body.split('\n');
    assert.match(lines[0], /^UP \d+ years?, \d+ days?, \d+ hours?, \d+ minutes?, \d+ seconds?, \d+ milliseconds?, \d+ microseconds?$/);
    assert.match(lines[1], /^ccomet-media \(Version \S+ {2}64bit\) is ready$/);
    assert.equal(lines[2], '0 session(s) since startup');
    assert.equal(lines[3], '0 session(s) - peak 0, last 5min 0 ');
    assert.equal(lines[4], '0 session(s) per Sec out of max 30, peak 0, last 5min 0 ');
    assert.equal(lines[5], '64 session(s) max');
    assert.match(lines[6], /^min idle cpu 0\.00\/\d+\.\d\d$/);
    assert.match(lines[7], /^Current Stack Size\/Max \d+K\/\d+K$/);
    assert.equal(lines[8], '');
    c.end();
});

test('conference list, an unknown room, an unknown api and an unknown command: esl-03\'s bytes', async () => {
    const c = await login();
    assert.equal((await c.command('api conference list\n\n')).raw,
        'Content-Type: api/response\nContent-Length: 27\n\n+OK No active conferences.\n');
    assert.equal((await c.command('api conference nosuchroom list\n\n')).raw,
        'Content-Type: api/response\nContent-Length: 37\n\n-ERR Conference nosuchroom not found\n');
    assert.equal((await c.command('api nosuchcommand\n\n')).raw,
        'Content-Type: api/response\nContent-Length: 38\n\n-ERR nosuchcommand Command not found!\n');
    assert.equal((await c.command('nosuchcommand\n\n')).raw,
        'Content-Type: command/reply\nReply-Text: -ERR command not found\n\n');
    assert.equal((await c.command('api conference xml_list\n\n')).body,
        '<?xml version="1.0"?>\n<conferences></conferences>\n');
    assert.equal((await c.command('api conference json_list\n\n')).body, '[]');
    c.end();
});

test('event subscriptions: plain, json, unknown names, noevents', async () => {
    const c = await login();
    const reply = async (cmd) => (await c.command(cmd)).headers['Reply-Text'];
    assert.equal(await reply('event plain CUSTOM conference::maintenance\n\n'), '+OK event listener enabled plain');
    assert.equal(await reply('event json CUSTOM conference::maintenance\n\n'), '+OK event listener enabled json');
    assert.equal(await reply('event plain NOT_AN_EVENT\n\n'), '-ERR no keywords supplied');
    assert.equal(await reply('nixevent CUSTOM conference::maintenance\n\n'), '+OK events nixed');
    assert.equal(await reply('noevents\n\n'), '+OK no longer listening for events');
    assert.equal(await reply('noevents\n\n'), '-ERR not listening for events');
    c.end();
});

test('bgapi: the Job-UUID reply, then BACKGROUND_JOB in plain and json (esl-04), then exit', async () => {
    const c = await login();
    assert.equal((await c.command('event plain BACKGROUND_JOB\n\n')).headers['Reply-Text'],
        '+OK event listener enabled plain');
    const job = '11111111-2222-3333-4444-555555555555';
    const r = await c.command(`bgapi conference list\nJob-UUID: ${job}\n\n`);
    assert.equal(r.raw, `Content-Type: command/reply\nReply-Text: +OK Job-UUID: ${job}\nJob-UUID: ${job}\n\n`);
    const ev = await c.next();
    assert.equal(ev.headers['Content-Type'], 'text/event-plain');
    const names = ev.body.split('\n\n')[0].split('\n').map((l) => l.slice(0, l.indexOf(':')));
    assert.deepEqual(names, ['Event-Name', 'Core-UUID', 'FreeSWITCH-Hostname', 'FreeSWITCH-Switchname',
        'FreeSWITCH-IPv4', 'FreeSWITCH-IPv6', 'Event-Date-Local', 'Event-Date-GMT', 'Event-Date-Timestamp',
        'Event-Calling-File', 'Event-Calling-Function', 'Event-Calling-Line-Number', 'Event-Sequence',
        'Job-UUID', 'Job-Command', 'Job-Command-Arg', 'Content-Length']);
    assert.match(ev.body, /^Event-Name: BACKGROUND_JOB\n/);
    assert.match(ev.body, /\nFreeSWITCH-IPv6: %3A%3A1\n/);
    assert.match(ev.body, /\nEvent-Date-GMT: \w{3},%20\d\d%20\w{3}%20\d{4}%20\d\d%3A\d\d%3A\d\d%20GMT\n/);
    assert.match(ev.body, /\nEvent-Calling-File: mod_event_socket\.c\nEvent-Calling-Function: api_exec\nEvent-Calling-Line-Number: 1572\n/);
    assert.ok(ev.body.endsWith(`Job-UUID: ${job}\nJob-Command: conference\nJob-Command-Arg: list\n`
        + 'Content-Length: 27\n\n+OK No active conferences.\n'), ev.body);

    assert.equal((await c.command('noevents\n\n')).headers['Reply-Text'], '+OK no longer listening for events');
    assert.equal((await c.command('event json BACKGROUND_JOB\n\n')).headers['Reply-Text'],
        '+OK event listener enabled json');
    const r2 = await c.command('bgapi status\n\n');
    const uuid = r2.headers['Job-UUID'];
    assert.match(uuid, /^[0-9a-f-]{36}$/);
    assert.equal(r2.headers['Reply-Text'], `+OK Job-UUID: ${uuid}`);
    const ev2 = await c.next();
    assert.equal(ev2.headers['Content-Type'], 'text/event-json');
    const j = JSON.parse(ev2.body);
    assert.equal(j['Event-Name'], 'BACKGROUND_JOB');
    assert.equal(j['Job-UUID'], uuid);
    assert.equal(j['Job-Command'], 'status');
    assert.equal(j['Job-Command-Arg'], undefined);
    assert.equal(j['Content-Length'], String(Buffer.byteLength(j._body)));
    assert.match(j._body, /^UP \d+ years/);

    c.raw = Buffer.alloc(0);
    c.send('exit\n\n');
    await c.closedByServer();
    assert.equal(c.raw.toString(), 'Content-Type: command/reply\nReply-Text: +OK bye\n\n' + NOTICE);
});

// Security audit M3: FreeSWITCH's public default password only on loopback.
test('[esl] password ClueCon (or unset) with a non-loopback [esl] ip: --check refuses, naming the keys; allow_default_password or loopback is fine', async () => {
    const { spawnSync } = await import('node:child_process');
    const check = (lines) => {
        const conf = path.join(dir, `check-${Math.random().toString(36).slice(2)}.ini`);
        writeFileSync(conf, ['[esl]', ...lines, ''].join('\n'));
        return spawnSync(MEDIA_BIN, ['--conf', conf, '--check'], { encoding: 'utf8' });
    };
    for (const lines of [['ip = 0.0.0.0', 'password = ClueCon'], ['ip = 0.0.0.0'], ['ip = ::']]) {
        const r = check(lines);
        assert.equal(r.status, 1, `${lines}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /\[esl\] password is FreeSWITCH's default ClueCon while \[esl\] ip = (0\.0\.0\.0|::)/);
        assert.match(r.stderr, /allow_default_password/);
    }
    for (const lines of [['ip = 0.0.0.0', 'password = ClueCon', 'allow_default_password = yes'],
        ['ip = 0.0.0.0', 'password = own-secret'], ['ip = 127.0.0.1', 'password = ClueCon']]) {
        const r = check(lines);
        assert.equal(r.status, 0, `${lines}: ${r.stdout}${r.stderr}`);
    }
    const bad = check(['max_connections = 0']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /max_connections/);
});
