// ccomet-media's SIP over WebSocket (src/media/sip_server.c, src/media/directory.c) as JsSIP
// sees it: the real build/asan/ccomet-media (or $CCOMET_MEDIA_BIN) on a generated config, spoken
// to with the `ws` package and subprotocol "sip" (RFC 7118). Users come from a static directory
// file and from a node HTTP server acting as FreeSWITCH's mod_xml_curl gateway; the expected
// answers are FreeSWITCH 1.10.12's (reference/captures/sip-0*, xmlcurl-0*): 401 then 200 for a
// good digest, 403 for a wrong password and for an unknown user.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { MediaProcess, ROOT, freePorts, makeCert } from './harness.mjs';
import {
    CHROME_OFFER, DOMAIN, SipWs as SipWsBase, digest, invite, inviteWithAuth, md5, parseSip, register,
    registerWithAuth, rnd, sipRequest,
} from './sip_client.mjs';

const GW_USER = 'fsuser';
const GW_PASS = 'fspass';

let media, dir, wsPort, wssPort, gw;
const gwRequests = [];


/** The client on this file's node: ws://127.0.0.1:<wsPort> unless told otherwise. */
const SipWs = { open: (url = `ws://127.0.0.1:${wsPort}`, opts = {}) => SipWsBase.open(url, opts, () => media?.log ?? '') };

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
        'user_agent = ccomet-media-test', 'max_message = 16K', 'max_auth_failures = 30', '',
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
    // unregister, reusing the nonce with the next nonce count (RFC 2617 §3.2.2)
    const r3 = await c.request(register(c, '0000002', { expires: 0, auth: digest(r1.h('www-authenticate'),
        { user: '0000002', password: 'secret2', method: 'REGISTER', uri: `sip:${DOMAIN}`, nc: 2 }) }));
    assert.equal(r3.status, 200);
    assert.equal(r3.h('contact'), undefined);
    c.close();
});

// Security audit M2: a captured Authorization could be replayed inside the nonce's 300 s window.
test('digest replay: a nonce count not above the last one, or a no-qop nonce used twice, gets 401 stale=true; another connection too', async () => {
    const c = await SipWs.open();
    const other = await SipWs.open();
    const r1 = await c.request(register(c, '0000002'));
    assert.equal(r1.status, 401);
    const chal = r1.h('www-authenticate');
    const auth = (nc, qop = true) => digest(chal, { user: '0000002', password: 'secret2', method: 'REGISTER', uri: `sip:${DOMAIN}`, nc, qop });
    const first = auth(1);
    assert.equal((await c.request(register(c, '0000002', { auth: first }))).status, 200);
    // the very same header again (a replay: new branch, same nonce and nc), here and elsewhere
    for (const conn of [c, other]) {
        const again = await conn.request(register(conn, '0000002', { auth: first }));
        assert.equal(again.status, 401, again.raw);
        assert.match(again.h('www-authenticate'), /, stale=true, /);
        assert.notEqual(/nonce="(\w+)"/.exec(again.h('www-authenticate'))[1], /nonce="(\w+)"/.exec(chal)[1]);
    }
    assert.equal((await c.request(register(c, '0000002', { auth: auth(3) }))).status, 200, 'a higher nc is fine');
    assert.equal((await c.request(register(c, '0000002', { auth: auth(2) }))).status, 401, 'a lower nc is a replay');
    // without qop (RFC 2069) a nonce is single-use
    const r2 = await c.request(register(c, '0000002'));
    const plain = digest(r2.h('www-authenticate'), { user: '0000002', password: 'secret2', method: 'REGISTER', uri: `sip:${DOMAIN}`, qop: false });
    assert.equal((await c.request(register(c, '0000002', { auth: plain }))).status, 200);
    const twice = await c.request(register(c, '0000002', { auth: plain }));
    assert.equal(twice.status, 401);
    assert.match(twice.h('www-authenticate'), /stale=true/);
    c.close();
    other.close();
});

test('digest uri: an Authorization computed for another URI than the Request-URI gets 400', async () => {
    const c = await SipWs.open();
    const r1 = await c.request(register(c, '0000002'));
    const auth = digest(r1.h('www-authenticate'), { user: '0000002', password: 'secret2', method: 'REGISTER', uri: 'sip:other.invalid' });
    const r2 = await c.request(register(c, '0000002', { auth }));
    assert.equal(r2.status, 400, r2.raw);
    assert.match(r2.reason, /digest uri/);
    // the same digest for the Request-URI, spelled with an upper-case scheme, is the same URI
    const r3 = await c.request(register(c, '0000002'));
    const same = digest(r3.h('www-authenticate'), { user: '0000002', password: 'secret2', method: 'REGISTER', uri: `SIP:${DOMAIN}` });
    assert.equal((await c.request(register(c, '0000002', { auth: same }))).status, 200);
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

test('a digest user name is logged quoted, so it cannot forge log fields (audit L6)', async () => {
    // (a REGISTER's To must name the same user, which a URI cannot spell with a space; an INVITE's
    // Proxy-Authorization can carry any quoted name)
    const c = await SipWs.open();
    const dest = '0*101*video';
    const r1 = await c.request(invite(c, '0000098', dest));
    assert.equal(r1.status, 407, r1.raw);
    c.send(sipRequest({ method: 'ACK', ruri: `sip:${dest}@${DOMAIN}`, user: '0000098', c, to: `sip:${dest}@${DOMAIN}`,
        toTag: /tag=([^;]+)/.exec(r1.h('to'))[1], cseq: c.cseq, branch: /branch=([^;]+)/.exec(r1.h('via'))[1] }));
    const user = 'x98 forged=1 msg=registered';
    const auth = digest(r1.h('proxy-authenticate'), { user, password: 'p', method: 'INVITE', uri: `sip:${dest}@${DOMAIN}` });
    const r = await c.request(invite(c, '0000098', dest, { auth, branch: `z9hG4bK${rnd()}` }));
    assert.equal(r.status, 403, r.raw);
    c.close();
    assert.match(media.log, /user="x98 forged=1 msg=registered" msg="unknown user"/);
    assert.doesNotMatch(media.log, /user=x98 forged=1/);
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

// RFC 3261 §8.2 / §21.4.1: a request whose Via, From, To, Call-ID and CSeq can be read is answered
// 400 with a reason phrase naming the bad header, never dropped (a bad Content-Length was dropped
// before, so a JsSIP-style client waited for its transaction timeout instead of an answer).
test('a bad Content-Length (12x) or Max-Forwards gets 400 naming the header, with the request\'s Call-ID', async () => {
    const c = await SipWs.open();
    const opts = () => sipRequest({ method: 'OPTIONS', ruri: `sip:${DOMAIN}`, user: '0000002', c });
    const cases = [
        [(t) => t.replace(/Content-Length: \d+/, 'Content-Length: 12x'), /^Bad Content-Length$/],
        [(t) => t.replace(/Content-Length: (\d+)/, 'Content-Length: $1\r\nl: $1'), /^Duplicate Content-Length$/],
        [(t) => t.replace('Max-Forwards: 69', 'Max-Forwards: abc'), /^Bad Max-Forwards$/],
        [(t) => t.replace('Max-Forwards: 69\r\n', ''), /^No Max-Forwards$/],
        // both bad: one 400, naming the first
        [(t) => t.replace(/Content-Length: \d+/, 'Content-Length: 12x').replace('Max-Forwards: 69', 'Max-Forwards: abc'),
            /^Bad Content-Length$/],
    ];
    for (const [spoil, reason] of cases) {
        const text = opts();
        const bad = spoil(text);
        assert.notEqual(bad, text);
        const r = await c.request(bad);
        assert.equal(r.status, 400, r.raw);
        assert.match(r.reason, reason);
        assert.equal(r.h('call-id'), /\r\nCall-ID: ([^\r]+)/.exec(text)[1]);
    }
    assert.equal((await c.request(opts())).status, 200);
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

test("INVITE to another tenant's room (audit C1): 0000002 is user 2 of tenant 0, 8*101*video gets 403", async () => {
    const c = await SipWs.open();
    const { final } = await inviteWithAuth(c, '0000002', 'secret2', '8*101*video');
    assert.equal(final.status, 403, final.raw);
    assert.match(final.reason, /another tenant/);
    assert.doesNotMatch(media.log, /room=8\*101-FSdefaultDomain msg="conference created"/);
    c.close();
});

test('a flood of failed logins from one address (audit M6): past [sip] max_auth_failures it gets 503 with Retry-After before any directory lookup; another address is served', async () => {
    const c = await SipWs.open(`ws://127.0.0.1:${wsPort}`, { localAddress: '127.0.0.3' });
    const before = gwRequests.length;
    const statuses = [];
    for (let i = 0; i < 60; i++) {
        c.callId = rnd();
        const user = `99${String(i).padStart(5, '0')}`;
        const r1 = await c.request(register(c, user));
        let r = r1;
        if (r1.status === 401) {
            const auth = digest(r1.h('www-authenticate'), { user, password: 'guess', method: 'REGISTER', uri: `sip:${DOMAIN}` });
            r = await c.request(register(c, user, { auth }));
        }
        statuses.push(r.status);
        if (r.status === 503) {
            assert.match(r.reason, /Too many failed logins/);
            assert.ok(Number(r.h('retry-after')) > 0, r.raw);
        }
    }
    const lookups = gwRequests.length - before;
    assert.deepEqual(statuses.slice(0, 30), Array(30).fill(403), JSON.stringify(statuses));
    assert.deepEqual(statuses.slice(30), Array(30).fill(503), JSON.stringify(statuses));
    assert.ok(lookups <= 30, `the directory was asked ${lookups} times for 60 failed logins`);
    c.close();
    // 127.0.0.1 is not affected
    const ok = await SipWs.open();
    assert.equal((await registerWithAuth(ok, '0000002', 'secret2', { expires: 0 })).status, 200);
    ok.close();
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
