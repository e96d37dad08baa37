// A SIP-over-WebSocket client for tests, speaking as JsSIP does (RFC 7118, subprotocol "sip"):
// message parsing, requests, digest answers (RFC 2617, qop=auth), REGISTER and INVITE with their
// challenges, and a Chrome-shaped SDP offer. Shared by the ccomet-media SIP tests and the Video
// API tests.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import WebSocket from 'ws';

export const DOMAIN = 'FSdefaultDomain';
export const md5 = (s) => createHash('md5').update(s).digest('hex');
export const rnd = () => randomBytes(6).toString('hex');

/** Parses one SIP message: { status, reason, method, headers: {lower-name: [values]}, body }. */
export function parseSip(text) {
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
export class SipWs {
    static async open(url, opts = {}, logOf = () => '') {
        const c = new SipWs();
        c.ws = new WebSocket(url, ['sip'], opts);
        c.logOf = logOf;
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

    next(timeoutMs = this.timeoutMs ?? 10000) {
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no SIP message in ${timeoutMs} ms\n${this.logOf().slice(-3000)}`)), timeoutMs);
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

export function sipRequest({ method, ruri, user, c, branch = `z9hG4bK${rnd()}`, to, toTag, cseq, headers = [], body = '', ctype, callId }) {
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
export function digest(challengeHeader, { user, password, method, uri, ha1, nc = 1, qop = true }) {
    const p = {};
    for (const m of challengeHeader.matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]+))/g)) p[m[1]] = m[2] ?? m[3];
    const cnonce = rnd();
    const ncText = nc.toString(16).padStart(8, '0');
    const a1 = ha1 ?? md5(`${user}:${p.realm}:${password}`);
    const ha2 = md5(`${method}:${uri}`);
    if (!qop) { // RFC 2069: no qop, no nc
        return `Digest algorithm=MD5, username="${user}", realm="${p.realm}", nonce="${p.nonce}", `
            + `uri="${uri}", response="${md5(`${a1}:${p.nonce}:${ha2}`)}"`;
    }
    const response = md5(`${a1}:${p.nonce}:${ncText}:${cnonce}:auth:${ha2}`);
    return `Digest algorithm=MD5, username="${user}", realm="${p.realm}", nonce="${p.nonce}", `
        + `uri="${uri}", response="${response}", qop=auth, cnonce="${cnonce}", nc=${ncText}`;
}

export function register(c, user, { expires = 600, auth, branch } = {}) {
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
export async function registerWithAuth(c, user, password, opts = {}) {
    const r1 = await c.request(register(c, user, opts));
    assert.equal(r1.status, 401);
    const auth = digest(r1.h('www-authenticate'), { user, password, method: 'REGISTER', uri: `sip:${DOMAIN}` });
    return c.request(register(c, user, { ...opts, auth }));
}

// A Chrome offer's shape (media-feasibility.md): audio first (opus 111), then video (VP8 96 with
// rtx), BUNDLE, rtcp-mux, ICE and DTLS attributes, host candidates.
export const FINGERPRINT = Array.from({ length: 32 }, (_, i) => (i * 7 % 256).toString(16).padStart(2, '0').toUpperCase()).join(':');
export const CHROME_OFFER = [
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

export function invite(c, user, dest, { auth, branch, body = CHROME_OFFER, headers = [] } = {}) {
    return sipRequest({
        method: 'INVITE', ruri: `sip:${dest}@${DOMAIN}`, user, c, branch, to: `sip:${dest}@${DOMAIN}`,
        headers: [
            `Contact: <sip:${user}@df7jal23ls0d.invalid;transport=ws;ob>`,
            'Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY',
            'Supported: ice,replaces,outbound',
            ...(auth ? [`Proxy-Authorization: ${auth}`] : []),
            ...headers,
        ],
        body, ctype: body ? 'application/sdp' : undefined,
    });
}

/** INVITE → 407 → INVITE with Proxy-Authorization; returns { final, branch, c } (final: the answer). */
export async function inviteWithAuth(c, user, password, dest, opts = {}) {
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

