// ccomet-media's SIP over WebSocket (src/media/sip_server.c, src/media/directory.c) as JsSIP
// sees it: the real build/asan/ccomet-media (or $CCOMET_MEDIA_BIN) on a generated config, spoken
// to with the `ws` package and subprotocol "sip" (RFC 7118). Users come from a static directory
// file and from a node HTTP server acting as FreeSWITCH's mod_xml_curl gateway; the expected
// answers are FreeSWITCH 1.10.12's (reference/captures/sip-0*, xmlcurl-0*): 401 then 200 for a
// good digest, 403 for a wrong password and for an unknown user.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { MediaProcess, ROOT, freePorts, makeCert } from './harness.mjs';

const DOMAIN = 'FSdefaultDomain';
const GW_USER = 'fsuser';
const GW_PASS = 'fspass';

let media, dir, wsPort, wssPort, gw;
const gwRequests = [];

const md5 = (s) => createHash('md5').update(s).digest('hex');
const rnd = () => randomBytes(6).toString('hex');

/** Parses one SIP message: { status, reason, method, headers: {lower-name: [values]}, body }. */
function parseSip(text) {
    const end = text.indexOf('\r\n\r\n');
    assert.ok(end >= 0, `no end of headers in ${JSON.stringify(text)}`);
    const lines = text.slice(0, end).split('\r\n');
    const msg = { raw: text, headers: {}, body: text.slice(end + 4) };
    const start = lines.shift();
    const m = /^SIP\/2\.0 (\d{3}) (.*)$/.exec(start);
    if (m) { msg.status = Number(m[1]); msg.reason = m[2]; } else msg.method = start.split(' ')[0];
    for (const l of lines) {
        const i = l.indexOf(':');
        const k = l.slice(0, i).trim().toLowerCase();
        (msg.headers[k] ??= []).push(l.slice(i + 1).trim());
    }
    msg.h = (k) => msg.headers[k.toLowerCase()]?.[0];
    assert.equal(Number(msg.h('content-length')), Buffer.byteLength(msg.body), 'Content-Length');
    return msg;
}

/** A SIP-over-WebSocket client: queued messages, awaited one by one. */
class SipWs {
    static async open(url = `ws://127.0.0.1:${wsPort}`, opts = {}) {
        const c = new SipWs();
        c.ws = new WebSocket(url, ['sip'], opts);
        c.queue = [];
        c.waiters = [];
        c.closed = false;
        c.ws.on('message', (d) => { c.queue.push(parseSip(d.toString())); c.wake(); });
        c.ws.on('close', () => { c.closed = true; c.wake(); });
        await new Promise((resolve, reject) => { c.ws.once('open', resolve); c.ws.once('error', reject); });
        assert.equal(c.ws.protocol, 'sip');
        c.tag = rnd();
        c.callId = rnd();
        c.cseq = 0;
        return c;
    }

    wake() { const w = this.waiters; this.waiters = []; for (const f of w) f(); }

    next(timeoutMs = 10000) {
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no SIP message in ${timeoutMs} ms\n${media?.log.slice(-3000) ?? ''}`)), timeoutMs);
            const attempt = () => {
                if (this.queue.length) { clearTimeout(timer); resolve(this.queue.shift()); return; }
                if (this.closed) { clearTimeout(timer); reject(new Error('closed')); return; }
                this.waiters.push(attempt);
            };
            attempt();
        });
    }

    send(text) { this.ws.send(text); }

    /** Sends and returns the final response (provisional ones are collected in .provisional). */
    async request(text) {
        this.send(text);
        const provisional = [];
        for (;;) {
            const r = await this.next();
            if (r.status >= 200) { r.provisional = provisional; return r; }
            provisional.push(r);
        }
    }

    close() { this.ws.close(); }
}

function sipRequest({ method, ruri, user, c, branch = `z9hG4bK${rnd()}`, to, toTag, cseq, headers = [], body = '', ctype, callId }) {
    const lines = [
        `${method} ${ruri} SIP/2.0`,
        `Via: SIP/2.0/WSS ${c.host ?? 'df7jal23ls0d.invalid'};branch=${branch}`,
        'Max-Forwards: 69',
        `To: <${to ?? `sip:${user}@${DOMAIN}`}>${toTag ? `;tag=${toTag}` : ''}`,
        `From: "Alice" <sip:${user}@${DOMAIN}>;tag=${c.tag}`,
        `Call-ID: ${callId ?? c.callId}`,
        `CSeq: ${cseq ?? ++c.cseq} ${method}`,
        ...headers,
        ...(ctype ? [`Content-Type: ${ctype}`] : []),
        'User-Agent: JsSIP 3.10.0',
        `Content-Length: ${Buffer.byteLength(body)}`,
        '', body,
    ];
    return lines.join('\r\n');
}

/** The Authorization value for a challenge (RFC 2617, qop=auth, as JsSIP computes it). */
function digest(challengeHeader, { user, password, method, uri, ha1 }) {
    const p = {};
    for (const m of challengeHeader.matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]+))/g)) p[m[1]] = m[2] ?? m[3];
    const cnonce = rnd();
    const nc = '00000001';
    const a1 = ha1 ?? md5(`${user}:${p.realm}:${password}`);
    const response = md5(`${a1}:${p.nonce}:${nc}:${cnonce}:auth:${md5(`${method}:${uri}`)}`);
    return `Digest algorithm=MD5, username="${user}", realm="${p.realm}", nonce="${p.nonce}", `
        + `uri="${uri}", response="${response}", qop=auth, cnonce="${cnonce}", nc=${nc}`;
}

function register(c, user, { expires = 600, auth, branch } = {}) {
    return sipRequest({
        method: 'REGISTER', ruri: `sip:${DOMAIN}`, user, c, branch,
        headers: [
            `Contact: <sip:${user}@df7jal23ls0d.invalid;transport=ws>;expires=${expires}`,
            `Expires: ${expires}`,
            ...(auth ? [`Authorization: ${auth}`] : []),
        ],
    });
}

/** REGISTER → 401 → REGISTER with the digest: the final answer. */
async function registerWithAuth(c, user, password, opts = {}) {
    const r1 = await c.request(register(c, user, opts));
    assert.equal(r1.status, 401);
    const auth = digest(r1.h('www-authenticate'), { user, password, method: 'REGISTER', uri: `sip:${DOMAIN}` });
    return c.request(register(c, user, { ...opts, auth }));
}

// A Chrome offer's shape (media-feasibility.md): audio first (opus 111), then video (VP8 96 with
// rtx), BUNDLE, rtcp-mux, ICE and DTLS attributes, host candidates.
const FINGERPRINT = Array.from({ length: 32 }, (_, i) => (i * 7 % 256).toString(16).padStart(2, '0').toUpperCase()).join(':');
const CHROME_OFFER = [
    'v=0', 'o=- 4611731400430051336 2 IN IP4 127.0.0.1', 's=-', 't=0 0',
    'a=group:BUNDLE 0 1', 'a=extmap-allow-mixed', 'a=msid-semantic: WMS stream0',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126', 'c=IN IP4 0.0.0.0', 'a=rtcp:9 IN IP4 0.0.0.0',
    'a=candidate:1467250027 1 udp 2122260223 127.0.0.1 46243 typ host generation 0 network-id 1',
    'a=ice-ufrag:Kf4a', 'a=ice-pwd:7wAGbm0k3XfDMlWcs6vrVKaG', 'a=ice-options:trickle',
    `a=fingerprint:sha-256 ${FINGERPRINT}`, 'a=setup:actpass', 'a=mid:0',
    'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level', 'a=sendrecv', 'a=msid:stream0 audio0',
    'a=rtcp-mux', 'a=rtpmap:111 opus/48000/2', 'a=rtcp-fb:111 transport-cc',
    'a=fmtp:111 minptime=10;useinbandfec=1', 'a=rtpmap:63 red/48000/2', 'a=fmtp:63 111/111',
    'a=rtpmap:9 G722/8000', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:13 CN/8000',
    'a=rtpmap:110 telephone-event/48000', 'a=rtpmap:126 telephone-event/8000', 'a=ssrc:1001 cname:chromecname',
    'm=video 9 UDP/TLS/RTP/SAVPF 96 97', 'c=IN IP4 0.0.0.0', 'a=rtcp:9 IN IP4 0.0.0.0',
    'a=ice-ufrag:Kf4a', 'a=ice-pwd:7wAGbm0k3XfDMlWcs6vrVKaG', 'a=ice-options:trickle',
    `a=fingerprint:sha-256 ${FINGERPRINT}`, 'a=setup:actpass', 'a=mid:1', 'a=sendrecv',
    'a=msid:stream0 video0', 'a=rtcp-mux', 'a=rtcp-rsize', 'a=rtpmap:96 VP8/90000',
    'a=rtcp-fb:96 goog-remb', 'a=rtcp-fb:96 transport-cc', 'a=rtcp-fb:96 ccm fir', 'a=rtcp-fb:96 nack',
    'a=rtcp-fb:96 nack pli', 'a=rtpmap:97 rtx/90000', 'a=fmtp:97 apt=96',
    'a=ssrc-group:FID 2001 2002', 'a=ssrc:2001 cname:chromecname', 'a=ssrc:2002 cname:chromecname', '',
].join('\r\n');

function invite(c, user, dest, { auth, branch, body = CHROME_OFFER } = {}) {
    return sipRequest({
        method: 'INVITE', ruri: `sip:${dest}@${DOMAIN}`, user, c, branch, to: `sip:${dest}@${DOMAIN}`,
        headers: [
            `Contact: <sip:${user}@df7jal23ls0d.invalid;transport=ws;ob>`,
            'Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY',
            'Supported: ice,replaces,outbound',
            ...(auth ? [`Proxy-Authorization: ${auth}`] : []),
        ],
        body, ctype: body ? 'application/sdp' : undefined,
    });
}

/** INVITE → 407 → INVITE with Proxy-Authorization; returns { final, branch, c } (final: the answer). */
async function inviteWithAuth(c, user, password, dest, opts = {}) {
    const r1 = await c.request(invite(c, user, dest, opts));
    assert.equal(r1.status, 407, r1.raw);
    assert.ok(r1.h('proxy-authenticate'), 'a Proxy-Authenticate challenge');
    c.send(sipRequest({ method: 'ACK', ruri: `sip:${dest}@${DOMAIN}`, user, c, to: `sip:${dest}@${DOMAIN}`,
        toTag: /tag=([^;]+)/.exec(r1.h('to'))[1], cseq: c.cseq,
        branch: /branch=([^;]+)/.exec(r1.h('via'))[1] }));
    const auth = digest(r1.h('proxy-authenticate'), { user, password, method: 'INVITE', uri: `sip:${dest}@${DOMAIN}` });
    const branch = `z9hG4bK${rnd()}`;
    const final = await c.request(invite(c, user, dest, { ...opts, auth, branch }));
    return { final, branch };
}

before(async () => {
        dir = mkdtempSync(path.join(os.tmpdir(), 'ccomet-media-sip-'));
    let gwPort, eslPort;
    [wsPort, wssPort, eslPort, gwPort] = await freePorts(4);
    const { cert, key } = await makeCert(dir);

    // the mod_xml_curl gateway: knows 0000005 (by a1-hash) and answers "not found" otherwise
    gw = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d) => { body += d; });
        req.on('end', () => {
            const form = new URLSearchParams(body);
            gwRequests.push({ method: req.method, url: req.url, headers: req.headers, body, form });
            res.setHeader('Content-Type', 'text/xml');
            if (form.get('user') === '0000005') {
                const a1 = md5(`0000005:${DOMAIN}:secret5`);
                res.end('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<document type="freeswitch/xml">\n'
                    + `  <section name="directory">\n    <domain name="${DOMAIN}">\n      <groups><group name="default"><users>\n`
                    + `        <user id="0000005"><params><param name="a1-hash" value="${a1}"/></params>\n`
                    + '          <variables><variable name="user_context" value="default"/></variables></user>\n'
                    + '      </users></group></groups>\n    </domain>\n  </section>\n</document>\n');
            } else {
                res.end('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<document type="freeswitch/xml">\n'
                    + '  <section name="result">\n    <result status="not found" />\n  </section>\n</document>\n');
            }
        });
    });
    await new Promise((r) => gw.listen(gwPort, '127.0.0.1', r));

    const dirFile = path.join(dir, 'directory.xml');
    writeFileSync(dirFile, `<include>\n  <domain name="${DOMAIN}">\n    <groups>\n      <group name="default">\n        <users>\n`
        + '          <user id="0000002"><params><param name="password" value="secret2"/></params></user>\n'
        + '          <user id="0000003"><params><param name="password" value="secret3"/></params></user>\n'
        + '        </users>\n      </group>\n    </groups>\n  </domain>\n</include>\n');
    const conf = path.join(dir, 'ccomet-media.ini');
    writeFileSync(conf, [
        '[sip]', 'ip = 127.0.0.1', `ws_port = ${wsPort}`, `wss_port = ${wssPort}`,
        `ssl_cert = ${cert}`, `ssl_key = ${key}`, `domain = ${DOMAIN}`, 'min_expires = 60', 'max_expires = 3600',
        'user_agent = ccomet-media-test', 'max_message = 16K', '',
        '[directory]', `url = http://127.0.0.1:${gwPort}/fs/directory`, `user = ${GW_USER}`, `password = ${GW_PASS}`,
        `file = ${dirFile}`, 'cache_ttl = 30', 'timeout_ms = 2000', '',
        '[esl]', 'ip = 127.0.0.1', `port = ${eslPort}`, 'password = esl-secret', '',
        '[log]', 'level = debug', '',
    ].join('\n'));
    media = await MediaProcess.start(conf, { cwd: dir, waitPort: wsPort });
});

after(async () => {
    if (media) await media.stop();
    if (process.env.MEDIA_SIP_LOG) process.stderr.write(media.log);
    if (gw) gw.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
});

test('OPTIONS gets 200 with Allow, Accept and Supported, received and rport in the Via', async () => {
    const c = await SipWs.open();
    const r = await c.request(sipRequest({ method: 'OPTIONS', ruri: `sip:${DOMAIN}`, user: '0000002', c,
        headers: ['Accept: application/sdp'] }));
    assert.equal(r.status, 200);
    assert.match(r.h('allow'), /INVITE/);
    assert.match(r.h('allow'), /REGISTER/);
    assert.equal(r.h('accept'), 'application/sdp');
    assert.ok(r.h('supported') !== undefined);
    assert.match(r.h('via'), /;received=127\.0\.0\.1;rport=\d+/);
    assert.match(r.h('to'), /;tag=/);
    c.close();
});

test('a WebSocket that does not offer the sip subprotocol is refused', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${wsPort}`);
    const err = await new Promise((resolve) => { ws.once('error', resolve); ws.once('open', () => resolve(null)); });
    assert.ok(err, 'the handshake must fail');
    assert.match(String(err.message), /400/);
});

test('REGISTER: 401 with a digest challenge, then 200 with the clamped expiry (static file after xml_curl said not found)', async () => {
    const c = await SipWs.open();
    const r1 = await c.request(register(c, '0000002', { expires: 7200 }));
    assert.equal(r1.status, 401);
    assert.match(r1.h('www-authenticate'), new RegExp(`^Digest realm="${DOMAIN}", nonce="[0-9a-f]{64}", algorithm=MD5, qop="auth"$`));
    const auth = digest(r1.h('www-authenticate'), { user: '0000002', password: 'secret2', method: 'REGISTER', uri: `sip:${DOMAIN}` });
    const r2 = await c.request(register(c, '0000002', { expires: 7200, auth }));
    assert.equal(r2.status, 200, r2.raw);
    assert.equal(r2.h('contact'), '<sip:0000002@df7jal23ls0d.invalid;transport=ws>;expires=3600');
    assert.ok(r2.h('date'));
    // unregister
    const r3 = await c.request(register(c, '0000002', { expires: 0, auth: digest(r1.h('www-authenticate'),
        { user: '0000002', password: 'secret2', method: 'REGISTER', uri: `sip:${DOMAIN}` }) }));
    assert.equal(r3.status, 200);
    assert.equal(r3.h('contact'), undefined);
    c.close();
});

test('REGISTER with a wrong password gets 403 (sip-02)', async () => {
    const c = await SipWs.open();
    const r = await registerWithAuth(c, '0000003', 'not-the-password');
    assert.equal(r.status, 403);
    c.close();
});

test('REGISTER of an unknown user gets 403 (sip-03: mod_xml_curl not found, not in the static file)', async () => {
    const c = await SipWs.open();
    const r = await registerWithAuth(c, '0000099', 'whatever');
    assert.equal(r.status, 403);
    c.close();
});

test('the xml_curl gateway gets mod_xml_curl\'s request with Basic credentials, and its a1-hash checks the digest', async () => {
    const before0 = gwRequests.length;
    const c = await SipWs.open();
    const r = await registerWithAuth(c, '0000005', 'secret5', { expires: 300 });
    assert.equal(r.status, 200, r.raw);
    assert.equal(r.h('contact'), '<sip:0000005@df7jal23ls0d.invalid;transport=ws>;expires=300');
    const req = gwRequests.slice(before0).find((q) => q.form.get('user') === '0000005');
    assert.ok(req, 'the gateway was asked');
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/fs/directory');
    assert.equal(req.headers.authorization, `Basic ${Buffer.from(`${GW_USER}:${GW_PASS}`).toString('base64')}`);
    assert.equal(req.headers['user-agent'], 'freeswitch-xml/1.0');
    assert.equal(req.headers['content-type'], 'application/x-www-form-urlencoded');
    const keys = [...req.form.keys()];
    const want = ['hostname', 'section', 'tag_name', 'key_name', 'key_value', 'Event-Name', 'Core-UUID',
        'FreeSWITCH-Hostname', 'FreeSWITCH-Switchname', 'FreeSWITCH-IPv4', 'FreeSWITCH-IPv6', 'Event-Date-Local',
        'Event-Date-GMT', 'Event-Date-Timestamp', 'Event-Calling-File', 'Event-Calling-Function',
        'Event-Calling-Line-Number', 'Event-Sequence', 'action', 'sip_profile', 'sip_user_agent',
        'sip_auth_username', 'sip_auth_realm', 'sip_auth_nonce', 'sip_auth_uri', 'sip_contact_user',
        'sip_contact_host', 'sip_to_user', 'sip_to_host', 'sip_via_protocol', 'sip_from_user', 'sip_from_host',
        'sip_call_id', 'sip_request_host', 'sip_auth_qop', 'sip_auth_cnonce', 'sip_auth_nc', 'sip_auth_response',
        'sip_auth_method', 'client_port', 'key', 'user', 'domain', 'ip'];
    assert.deepEqual(keys, want, 'the fields in mod_xml_curl\'s order (xmlcurl-07)');
    const f = Object.fromEntries(req.form);
    assert.equal(f.section, 'directory');
    assert.equal(f.tag_name, 'domain');
    assert.equal(f.key_name, 'name');
    assert.equal(f.key_value, DOMAIN);
    assert.equal(f['Event-Name'], 'REQUEST_PARAMS');
    assert.equal(f.action, 'sip_auth');
    assert.equal(f.sip_profile, 'internal');
    assert.equal(f.sip_user_agent, 'JsSIP 3.10.0');
    assert.equal(f.sip_auth_username, '0000005');
    assert.equal(f.sip_auth_realm, DOMAIN);
    assert.equal(f.sip_auth_uri, `sip:${DOMAIN}`);
    assert.equal(f.sip_auth_qop, 'auth');
    assert.equal(f.sip_auth_nc, '00000001');
    assert.equal(f.sip_auth_method, 'REGISTER');
    assert.equal(f.sip_contact_user, '0000005');
    assert.equal(f.sip_contact_host, 'df7jal23ls0d.invalid');
    assert.equal(f.sip_via_protocol, 'wss');
    assert.equal(f.key, 'id');
    assert.equal(f.user, '0000005');
    assert.equal(f.domain, DOMAIN);
    assert.equal(f.ip, '127.0.0.1');
    assert.match(f['Event-Date-GMT'], /^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/);
    // FreeSWITCH's url encoding: ':' and ' ' are encoded, ',' is not (xmlcurl-02)
    assert.match(req.body, /&sip_auth_uri=sip%3AFSdefaultDomain&/);
    assert.match(req.body, /&Event-Date-GMT=\w{3},%20/);
    c.close();
});

test('a malformed request gets 400 and the connection goes on working', async () => {
    const c = await SipWs.open();
    const bad = register(c, '0000002').replace('Expires: 600', 'Expires: soon');
    const r = await c.request(bad);
    assert.equal(r.status, 400);
    c.send('this is not SIP at all\r\n\r\n'); // dropped: nothing to answer
    const ok = await c.request(sipRequest({ method: 'OPTIONS', ruri: `sip:${DOMAIN}`, user: '0000002', c }));
    assert.equal(ok.status, 200);
    c.close();
});

test('a message over [sip] max_message gets 513; an unknown method 405 with Allow', async () => {
    const c = await SipWs.open();
    const big = sipRequest({ method: 'OPTIONS', ruri: `sip:${DOMAIN}`, user: '0000002', c,
        headers: [`X-Padding: ${'x'.repeat(20000)}`] });
    assert.equal((await c.request(big)).status, 513);
    const r = await c.request(sipRequest({ method: 'SUBSCRIBE', ruri: `sip:${DOMAIN}`, user: '0000002', c,
        headers: ['Event: presence'] }));
    assert.equal(r.status, 405);
    assert.match(r.h('allow'), /INVITE/);
    c.close();
});

test('a retransmitted request gets the same response again', async () => {
    const c = await SipWs.open();
    const text = sipRequest({ method: 'OPTIONS', ruri: `sip:${DOMAIN}`, user: '0000002', c });
    const r1 = await c.request(text);
    const r2 = await c.request(text);
    assert.equal(r2.raw, r1.raw);
    c.close();
});

test('INVITE to 0*101*video: 407, then 100 Trying and 200 with an SDP answer; ACK; BYE gets 200', async () => {
    const c = await SipWs.open();
    const { final, branch } = await inviteWithAuth(c, '0000002', 'secret2', '0*101*video');
    assert.equal(final.provisional[0]?.status, 100, 'a 100 Trying first');
    assert.equal(final.status, 200, final.raw);
    assert.equal(final.h('content-type'), 'application/sdp');
    assert.match(final.body, /^v=0\r\n/);
    assert.match(final.body, /\r\na=/);
    assert.match(final.h('contact'), /^<sip:0\*101\*video@127\.0\.0\.1:\d+;transport=ws>$/);
    const toTag = /;tag=([^;]+)/.exec(final.h('to'))[1];
    assert.ok(branch);
    c.send(sipRequest({ method: 'ACK', ruri: 'sip:0*101*video@127.0.0.1', user: '0000002', c,
        to: `sip:0*101*video@${DOMAIN}`, toTag, cseq: c.cseq }));
    const bye = await c.request(sipRequest({ method: 'BYE', ruri: 'sip:0*101*video@127.0.0.1', user: '0000002', c,
        to: `sip:0*101*video@${DOMAIN}`, toTag }));
    assert.equal(bye.status, 200);
    // the dialog is gone
    const again = await c.request(sipRequest({ method: 'BYE', ruri: 'sip:0*101*video@127.0.0.1', user: '0000002', c,
        to: `sip:0*101*video@${DOMAIN}`, toTag }));
    assert.equal(again.status, 481);
    c.close();
});

test('re-INVITE for hold gets 200 with the answer on recvonly; another SDP gets 488', async () => {
    const c = await SipWs.open();
    const { final } = await inviteWithAuth(c, '0000003', 'secret3', '0*102*audio');
    assert.equal(final.status, 200, final.raw);
    const toTag = /;tag=([^;]+)/.exec(final.h('to'))[1];
    const dlg = { user: '0000003', c, to: `sip:0*102*audio@${DOMAIN}`, toTag };
    c.send(sipRequest({ method: 'ACK', ruri: 'sip:0*102*audio@127.0.0.1', ...dlg, cseq: c.cseq }));
    const hold = CHROME_OFFER.replaceAll('a=sendrecv', 'a=sendonly').replace(' 2 IN IP4', ' 3 IN IP4');
    const reinvite = (body) => sipRequest({ method: 'INVITE', ruri: 'sip:0*102*audio@127.0.0.1', ...dlg,
        headers: ['Contact: <sip:0000003@df7jal23ls0d.invalid;transport=ws;ob>'], body, ctype: 'application/sdp' });
    const r1 = await c.request(reinvite(hold));
    assert.equal(r1.status, 200, r1.raw);
    assert.match(r1.body, /a=recvonly/);
    assert.doesNotMatch(r1.body, /a=sendrecv/);
    c.send(sipRequest({ method: 'ACK', ruri: 'sip:0*102*audio@127.0.0.1', ...dlg, cseq: c.cseq }));
    const r2 = await c.request(reinvite(CHROME_OFFER.replace('a=ice-ufrag:Kf4a', 'a=ice-ufrag:Zz9y')));
    assert.equal(r2.status, 488);
    c.send(sipRequest({ method: 'ACK', ruri: 'sip:0*102*audio@127.0.0.1', ...dlg, cseq: c.cseq,
        branch: /branch=([^;]+)/.exec(r2.h('via'))[1] }));
    const bye = await c.request(sipRequest({ method: 'BYE', ruri: 'sip:0*102*audio@127.0.0.1', ...dlg }));
    assert.equal(bye.status, 200);
    c.close();
});

test('INVITE to an unknown destination (0*101) or profile gets 404; a wrong password 403', async () => {
    const c = await SipWs.open();
    assert.equal((await inviteWithAuth(c, '0000002', 'secret2', '0*101')).final.status, 404);
    c.callId = rnd();
    assert.equal((await inviteWithAuth(c, '0000002', 'secret2', '0*101*nosuchprofile')).final.status, 404);
    c.callId = rnd();
    assert.equal((await inviteWithAuth(c, '0000002', 'wrong', '0*101*video')).final.status, 403);
    c.close();
});

test('CANCEL of an unknown transaction gets 481', async () => {
    const c = await SipWs.open();
    const r = await c.request(sipRequest({ method: 'CANCEL', ruri: `sip:0*101*video@${DOMAIN}`, user: '0000002', c,
        to: `sip:0*101*video@${DOMAIN}` }));
    assert.equal(r.status, 481);
    c.close();
});

test('closing the WebSocket ends its call (the room goes away)', async () => {
    const c = await SipWs.open();
    const { final } = await inviteWithAuth(c, '0000002', 'secret2', '0*103*audio');
    assert.equal(final.status, 200);
    c.close();
    const deadline = Date.now() + 5000;
    while (!/room=0\*103-FSdefaultDomain msg="conference destroyed"/.test(media.log)) {
        assert.ok(Date.now() < deadline, 'the conference was not destroyed');
        await new Promise((r) => setTimeout(r, 50));
    }
});

test('wss: TLS listener with the configured certificate answers OPTIONS', async () => {
    const c = await SipWs.open(`wss://127.0.0.1:${wssPort}`, { rejectUnauthorized: false });
    const r = await c.request(sipRequest({ method: 'OPTIONS', ruri: `sip:${DOMAIN}`, user: '0000002', c }));
    assert.equal(r.status, 200);
    c.close();
});
