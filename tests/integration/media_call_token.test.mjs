// Invitations on the media node (security audit C1): with [sip] call_secret set, ccomet-media
// admits an INVITE to <dev>*<room>*<profile> only from a user of tenant <dev> who shows the
// X-Comet-Call-Token ccomet minted for that room and user (HMAC-SHA256 under the shared secret,
// with an expiry). The tokens here are minted by this file from the format in
// src/proto/call_token.h, so the node is checked against an independent implementation; ccomet's
// own minting is exercised end to end by the Video API's browser tests.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MediaProcess, freePorts } from './harness.mjs';
import { DOMAIN, SipWs as SipWsBase, inviteWithAuth, rnd } from './sip_client.mjs';

const SECRET = 'shared-call-secret-for-the-test';
let media, dir, wsPort;
const SipWs = { open: () => SipWsBase.open(`ws://127.0.0.1:${wsPort}`, {}, () => media?.log ?? '') };

/** ccomet's token for (dev, room, user) until expiry (unix seconds). */
function token(dev, room, user, expiry, secret = SECRET) {
    const mac = crypto.createHmac('sha256', secret).update(`${dev}*${room}|${user}|${expiry}`).digest('base64url');
    return `${expiry}.${mac}`;
}
const now = () => Math.floor(Date.now() / 1000);

before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ccomet-media-token-'));
    [wsPort] = await freePorts(1);
    const [eslPort] = await freePorts(1);
    const dirFile = path.join(dir, 'directory.xml');
    // tenant 7: users 3 and 4; tenant 8: user 3
    writeFileSync(dirFile, `<include>\n  <domain name="${DOMAIN}">\n    <groups>\n      <group name="default">\n        <users>\n`
        + '          <user id="0000073"><params><param name="password" value="pw73"/></params></user>\n'
        + '          <user id="0000074"><params><param name="password" value="pw74"/></params></user>\n'
        + '          <user id="0000083"><params><param name="password" value="pw83"/></params></user>\n'
        + '        </users>\n      </group>\n    </groups>\n  </domain>\n</include>\n');
    const conf = path.join(dir, 'ccomet-media.ini');
    writeFileSync(conf, [
        '[sip]', 'ip = 127.0.0.1', `ws_port = ${wsPort}`, `domain = ${DOMAIN}`, `call_secret = ${SECRET}`, '',
        '[directory]', `file = ${dirFile}`, '',
        '[esl]', 'ip = 127.0.0.1', `port = ${eslPort}`, 'password = esl-secret-token', '',
        '[log]', 'level = info', '',
    ].join('\n'));
    media = await MediaProcess.start(conf, { cwd: dir, waitPort: wsPort });
});

after(async () => {
    if (media) await media.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
});

async function call(user, password, dest, tok) {
    const c = await SipWs.open();
    c.callId = rnd();
    try {
        const { final } = await inviteWithAuth(c, user, password, dest,
            { headers: tok === undefined ? [] : [`X-Comet-Call-Token: ${tok}`] });
        return final;
    } finally {
        c.close();
    }
}

test('an invited user of the room\'s tenant joins with its token (200 and an SDP answer)', async () => {
    const final = await call('0000073', 'pw73', '7*101*video', token(7, '101', 3, now() + 600));
    assert.equal(final.status, 200, final.raw);
    assert.match(final.body, /^v=0\r\n/);
});

test('refused with 403, naming why: no token, another room, another user, another tenant, another secret, expired, malformed', async () => {
    const t = now() + 600;
    const cases = [
        ['0000073', 'pw73', '7*102*video', undefined, /no invitation/],
        ['0000073', 'pw73', '7*102*video', token(7, '101', 3, t), /not for this room and user/],
        ['0000074', 'pw74', '7*101*video', token(7, '101', 3, t), /not for this room and user/],
        ['0000083', 'pw83', '7*101*video', token(7, '101', 3, t), /another tenant/],
        ['0000083', 'pw83', '8*101*video', token(7, '101', 3, t), /not for this room and user/],
        ['0000073', 'pw73', '7*101*video', token(7, '101', 3, t, 'another secret'), /not for this room and user/],
        ['0000073', 'pw73', '7*101*video', token(7, '101', 3, now() - 1), /expired/],
        ['0000073', 'pw73', '7*101*video', 'garbage', /malformed/],
        ['0000073', 'pw73', '7*101*video', `${t}.${'A'.repeat(10)}`, /malformed/],
    ];
    for (const [user, pw, dest, tok, why] of cases) {
        const final = await call(user, pw, dest, tok);
        assert.equal(final.status, 403, `${user} -> ${dest} with ${tok}: ${final.raw}`);
        assert.match(final.reason, why, `${user} -> ${dest}: ${final.reason}`);
    }
    assert.doesNotMatch(media.log, /room=7\*102-FSdefaultDomain msg="conference created"/);
    assert.doesNotMatch(media.log, /room=8\*101-FSdefaultDomain msg="conference created"/);
    // and the node still admits the invited user afterwards
    const ok = await call('0000083', 'pw83', '8*101*audio', token(8, '101', 3, t));
    assert.equal(ok.status, 200, ok.raw);
});
