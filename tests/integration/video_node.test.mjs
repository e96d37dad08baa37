// The Video API's server side on the real binaries, without a browser: build/asan/ccomet with a
// `[sip] freeswitch` line to a real build/asan/ccomet-media that asks ccomet's [freeswitch]
// directory endpoint who may register. A node mysql2 connection plays the backend, `ws` clients
// play the pages (sys_sipCall, the call pipe's in/out/end), and tests/integration/sip_client.mjs
// plays JsSIP (REGISTER and INVITE with digest). Covered: the directory endpoint against the
// request captured from a real mod_xml_curl (reference/captures/xmlcurl-07) and without
// credentials, invitations online and queued, conference_members from the node's events, UPDATE
// mute, DELETE as a kick (the SIP client gets a BYE), ccomet restarting (members resynchronised
// from `conference xml_list`), the node dying (noticed, members dropped, `end` on the call pipe,
// INSERT refused with a reason) and coming back (picked up without a restart).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { MediaProcess, ROOT, Server, freePorts } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { closeAll, signJwt, sipCredential, waitUntil, wsOpen } from './wsclient.mjs';
import { DOMAIN, SipWs, inviteWithAuth, registerWithAuth, sipRequest } from './sip_client.mjs';

const FS_USER = 'fsuser'; // the credentials in the captured request (fsuser:fspass)
const FS_PASS = 'fspass';
const ESL_PASS = 'esl-test-secret';
const FIXTURES = path.join(ROOT, 'tests', 'fixtures', 'freeswitch');

let srv, media, db, mediaConf, sipPort, eslPort, dirPort, deadEsl, deadSip;

async function startMedia() {
    media = await MediaProcess.start(mediaConf, { cwd: srv.dir, waitPort: sipPort });
}

const nodeUp = () => waitUntil(() => /msg="media node (up|resynchronised)"/.test(srv.log.split('media node down').pop()),
    { timeoutMs: 15000, what: 'ccomet to see the media node up' });

before(async () => {
    [sipPort, eslPort, dirPort, deadEsl, deadSip] = await freePorts(5);
    srv = new Server({
        extraConf: [
            '[freeswitch]', 'ip = 127.0.0.1', `port = ${dirPort}`, `user = ${FS_USER}`, `password = ${FS_PASS}`, '',
            '[sip]', 'pipesalt = test-salt',
            // a second node that never answers: every room must go to the live one
            `freeswitch = []Server=127.0.0.1,Port=${deadEsl},Pwd=${ESL_PASS},WSport=${deadSip},WSproto=ws`,
            `freeswitch = []Server=127.0.0.1,Port=${eslPort},Pwd=${ESL_PASS},WSport=${sipPort},WSproto=ws`, '',
        ].join('\n'),
    });
    await srv.init();
    await srv.start();
    mediaConf = path.join(srv.dir, 'ccomet-media.ini');
    writeFileSync(mediaConf, [
        '[sip]', 'ip = 127.0.0.1', `ws_port = ${sipPort}`, `domain = ${DOMAIN}`, '',
        '[directory]', `url = http://127.0.0.1:${dirPort}/directory`, `user = ${FS_USER}`, `password = ${FS_PASS}`,
        'method = post', 'cache_ttl = 1', 'timeout_ms = 2000', '',
        '[esl]', 'ip = 127.0.0.1', `port = ${eslPort}`, `password = ${ESL_PASS}`, '',
        '[log]', 'level = debug', '',
    ].join('\n'));
    await startMedia();
    await nodeUp();
    db = await mysql2Connect(srv);
    for (const [id, hash] of [[2, 'hash2two'], [3, 'hash3three'], [4, 'hash4four'], [7, 'hash7seven']])
        await db.query('INSERT INTO users_auth (id, hash) VALUES (?, ?)', [id, hash]);
});

after(async () => {
    if (db) await db.end().catch(() => {});
    if (srv) await closeAll(srv);
    if (media) await media.stop();
    if (srv) await srv.stop();
    if (process.env.VIDEO_NODE_LOG) process.stderr.write(`${srv?.log}\n${media?.log}`);
});

/** One HTTP exchange on a fresh socket: the raw answer as a string. */
function rawHttp(port, bytes) {
    return new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        let out = '';
        s.on('data', (d) => { out += d.toString('latin1'); });
        s.on('end', () => resolve(out));
        s.on('error', reject);
        s.write(bytes);
    });
}

/** The captured mod_xml_curl request with its form fields changed (Content-Length kept right). */
function capturedRequest(fields = {}, { auth = true } = {}) {
    const raw = readFileSync(path.join(FIXTURES, 'xmlcurl-07-sip-auth-ws-1000-found.request.raw'), 'latin1');
    const [head, body] = raw.split('\r\n\r\n');
    const form = new URLSearchParams(body);
    for (const [k, v] of Object.entries(fields)) form.set(k, v);
    // FreeSWITCH encodes spaces as %20, not '+'; keep its style for the fields we did not touch
    const newBody = Object.keys(fields).length ? form.toString() : body;
    let h = head.replace(/^POST \/fs\/directory/, 'POST /directory')
        .replace(/Content-Length: \d+/, `Content-Length: ${Buffer.byteLength(newBody)}`);
    if (!auth) h = h.split('\r\n').filter((l) => !/^Authorization:/i.test(l)).join('\r\n');
    return `${h}\r\n\r\n${newBody}`;
}

const bodyOf = (answer) => answer.slice(answer.indexOf('\r\n\r\n') + 4);

test('directory: the captured mod_xml_curl request gets FreeSWITCH\'s "not found" for a user outside the <dev6><id> scheme', async () => {
    const answer = await rawHttp(dirPort, capturedRequest());
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(answer, /\r\nContent-Type: text\/xml\r\n/);
    const expected = bodyOf(readFileSync(path.join(FIXTURES, 'xmlcurl-04-sip-auth-udp-9999-notfound.response.raw'), 'latin1'));
    assert.equal(bodyOf(answer), expected);
});

test('directory: the same request for user 0000007 answers its users_auth hash as the password', async () => {
    const answer = await rawHttp(dirPort, capturedRequest({ user: '0000007', sip_auth_username: '0000007' }));
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
    const body = bodyOf(answer);
    assert.match(body, /<document type="freeswitch\/xml">/);
    assert.match(body, /<domain name="127\.0\.0\.1">/); // the request's domain
    assert.match(body, /<user id="0000007">/);
    assert.match(body, /<param name="password" value="hash7seven"\/>/);
    // GET with the fields in the query works too (CppComet's method)
    const get = await rawHttp(dirPort, `GET /directory?section=directory&action=sip_auth&user=0000007&domain=x HTTP/1.1\r\n`
        + `Host: 127.0.0.1\r\nAuthorization: Basic ${Buffer.from(`${FS_USER}:${FS_PASS}`).toString('base64')}\r\n\r\n`);
    assert.match(bodyOf(get), /value="hash7seven"/);
    // a user that is not in users_auth, and another tenant's user, are not found
    assert.match(bodyOf(await rawHttp(dirPort, capturedRequest({ user: '0000009' }))), /status="not found"/);
    assert.match(bodyOf(await rawHttp(dirPort, capturedRequest({ user: '0000017' }))), /status="not found"/);
});

test('directory: no credentials, wrong credentials, wrong path and garbage are refused', async () => {
    const none = await rawHttp(dirPort, capturedRequest({}, { auth: false }));
    assert.match(none, /^HTTP\/1\.1 401 Unauthorized\r\n/);
    assert.match(none, /WWW-Authenticate: Basic realm=/);
    assert.doesNotMatch(none, /hash|password/);
    const wrong = capturedRequest({ user: '0000007' }).replace(/Authorization: Basic \S+/, `Authorization: Basic ${Buffer.from('fsuser:nope').toString('base64')}`);
    const w = await rawHttp(dirPort, wrong);
    assert.match(w, /^HTTP\/1\.1 401 /);
    assert.doesNotMatch(w, /hash7seven/);
    const auth = `Authorization: Basic ${Buffer.from(`${FS_USER}:${FS_PASS}`).toString('base64')}`;
    assert.match(await rawHttp(dirPort, `GET /other?user=0000007 HTTP/1.1\r\nHost: x\r\n${auth}\r\n\r\n`), /^HTTP\/1\.1 404 /);
    assert.match(await rawHttp(dirPort, `DELETE /directory HTTP/1.1\r\nHost: x\r\n${auth}\r\n\r\n`), /^HTTP\/1\.1 405 /);
    assert.match(await rawHttp(dirPort, 'GARBAGE\r\n\r\n'), /^HTTP\/1\.1 400 /);
});

test('INSERT INTO conference sends sys_sipCall to an online user and queues it for an offline one', async () => {
    const page = await wsOpen(srv, { session: 'hash2two', userId: 2, name: 'user2' });
    const [res] = await db.query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES ('101', 2, 4, '{\"hello\":1}', 'video')");
    assert.equal(res.affectedRows, 1);
    const call = await page.nextOn('msg', 'sys_sipCall');
    const data = typeof call.data === 'string' ? JSON.parse(call.data) : call.data;
    assert.equal(data.message, '{"hello":1}');
    const sys = data.sys;
    assert.equal(sys.conference, true);
    assert.equal(sys.type, 'video');
    assert.equal(sys.serverName, '127.0.0.1');
    assert.equal(sys.serverPort, sipPort);
    assert.equal(sys.serverProto, 'ws');
    assert.equal(sys.sipNumber, '0*101*video');
    assert.equal(sys.caller_id, 4);
    assert.equal(sys.mode, 'video');
    assert.equal(sys.conference_name, '101');
    assert.equal(sys.stream, 0);
    assert.match(sys.callKey, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.match(sys.callPipe, /^web_syscall_vA_[A-Za-z]{28}$/);
    // the invitation is listed
    const [rows] = await db.query("SELECT * FROM conference WHERE name = '101'");
    assert.deepEqual(rows.map((r) => [r.name, r.user_id, r.caller_id, r.profile, r.node]),
        [['101', 2, 4, 'video', `127.0.0.1:${sipPort}`]]);
    // user 3 is offline: queued, delivered on connect
    await db.query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES ('101', 3, 4, 'hi', 'video')");
    const [queued] = await db.query('SELECT * FROM users_messages WHERE id = 3');
    assert.equal(queued.length, 1);
    assert.equal(queued[0].event, 'sys_sipCall');
    const page3 = await wsOpen(srv, { session: 'hash3three', userId: 3, name: 'user3' });
    const q = await page3.nextOn('msg', 'sys_sipCall');
    const qd = typeof q.data === 'string' ? JSON.parse(q.data) : q.data;
    assert.equal(qd.sys.callPipe, sys.callPipe, 'everyone in a room shares its call pipe');
    await page.close();
    await page3.close();
});

test('rooms go to the node that is up; asking for the down one is a clear error', async () => {
    for (const room of ['n1', 'n2', 'n3']) {
        await db.query('INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES (?, 7, 2, ?, ?)', [room, '', 'video']);
    }
    const [rows] = await db.query("SELECT * FROM conference WHERE name IN ('n1', 'n2', 'n3')");
    assert.deepEqual(rows.map((r) => r.node), Array(3).fill(`127.0.0.1:${sipPort}`));
    await assert.rejects(db.query('INSERT INTO conference (name, user_id, message, node) VALUES (?, 7, ?, ?)', ['n4', '', `127.0.0.1:${deadSip}`]),
        (e) => { assert.match(e.sqlMessage, /Media node 127\.0\.0\.1:\d+ is down/); return true; });
    await db.query("DELETE FROM conference WHERE name IN ('n1', 'n2', 'n3')");
});

test('bad invitations are refused with a reason', async () => {
    const bad = async (sql, re) => {
        await assert.rejects(db.query(sql), (e) => { assert.match(e.sqlMessage, re); return true; });
    };
    await bad("INSERT INTO conference (name, user_id, message) VALUES ('a*b', 2, '')", /conference name/);
    await bad("INSERT INTO conference (name, user_id, message, node) VALUES ('101', 2, '', 'nowhere:1')", /Unknown media node/);
    await bad("INSERT INTO conference (name, user_id, message) VALUES ('101', -1, '')", /user_id/);
    // audit M7: SIP user names carry six digits of dev_id, so a seventh would alias another tenant
    await db.query('USE db_1234567');
    try {
        await bad("INSERT INTO conference (name, user_id, message) VALUES ('101', 5, '')", /serves dev_id 0\.\.999999/);
    } finally {
        await db.query('USE db_0');
    }
});

test('ending a room takes back the invitations still queued for offline users', async () => {
    for (const room of ['5_5', '505']) {
        await db.query('INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES (?, 7, 2, ?, ?)', [room, 'x', 'video']);
    }
    let [q] = await db.query('SELECT * FROM users_messages WHERE id = 7');
    assert.equal(q.length, 2);
    await db.query("DELETE FROM conference WHERE name = '5_5'"); // '_' is not a wildcard here
    [q] = await db.query('SELECT * FROM users_messages WHERE id = 7');
    assert.equal(q.length, 1);
    assert.match(q[0].message, /"conference_name":"505"/);
    await db.query("DELETE FROM conference WHERE name = '505' AND user_id = 7");
    [q] = await db.query('SELECT * FROM users_messages WHERE id = 7');
    assert.deepEqual(q, []);
});

/** A SIP client registered as <dev6><uid> with its users_auth hash, in the call to room. */
async function join(uid, hash, room, profile = 'video') {
    const user = `000000${uid}`;
    const c = await SipWs.open(`ws://127.0.0.1:${sipPort}`, {}, () => media.log);
    c.timeoutMs = 30000; // the answer waits for the node's ICE gathering (slow under ASan on a busy machine)
    const reg = await registerWithAuth(c, user, hash);
    assert.equal(reg.status, 200, reg.raw);
    const { final } = await inviteWithAuth(c, user, hash, `0*${room}*${profile}`);
    assert.equal(final.status, 200, final.raw);
    c.send(sipRequest({ method: 'ACK', ruri: `sip:0*${room}*${profile}@${DOMAIN}`, user, c, to: `sip:0*${room}*${profile}@${DOMAIN}`,
        toTag: /tag=([^;]+)/.exec(final.h('to'))[1], cseq: c.cseq }));
    c.toTag = /tag=([^;]+)/.exec(final.h('to'))[1];
    return c;
}

/** One `api` command on the node's Event Socket: the api/response body. */
function eslApi(command) {
    return new Promise((resolve, reject) => {
        const s = net.connect(eslPort, '127.0.0.1');
        let buf = '';
        let step = 0;
        s.on('data', (d) => {
            buf += d.toString('utf8');
            if (step === 0 && buf.includes('auth/request')) { step = 1; buf = ''; s.write(`auth ${ESL_PASS}\n\n`); }
            else if (step === 1 && buf.includes('+OK accepted')) { step = 2; buf = ''; s.write(`api ${command}\n\n`); }
            else if (step === 2) {
                const m = /Content-Length: (\d+)\n\n/.exec(buf);
                if (m && Buffer.byteLength(buf.slice(m.index + m[0].length)) >= Number(m[1])) {
                    s.end();
                    resolve(buf.slice(m.index + m[0].length));
                }
            }
        });
        s.on('error', reject);
    });
}

async function members(room) {
    const [rows] = await db.query('SELECT * FROM conference_members WHERE name = ?', [room]);
    return rows;
}

test('members come from the node: join, mute, kick by DELETE (BYE), onIn/onOut on the call pipe', async () => {
    const watcher = await wsOpen(srv, { session: 'hash4four', userId: 4, name: 'watcher' });
    const [res] = await db.query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES ('202', 4, 4, '', 'video')");
    assert.equal(res.affectedRows, 1);
    const call = await watcher.nextOn('msg', 'sys_sipCall');
    const sys = (typeof call.data === 'string' ? JSON.parse(call.data) : call.data).sys;
    await watcher.subscribe(sys.callPipe);

    const sip = await join(2, 'hash2two', '202');
    const inEv = await watcher.nextOn(sys.callPipe, 'in');
    const ind = typeof inEv.data === 'string' ? JSON.parse(inEv.data) : inEv.data;
    assert.equal(ind.user_id, 2);
    assert.equal(ind.conference_name, '202');
    let rows = await members('202');
    assert.equal(rows.length, 1);
    assert.equal(rows[0].user_id, 2);
    assert.equal(rows[0].member_id, ind.member_id);
    assert.ok(rows[0].join_time >= 0 && rows[0].join_time < 30, `join_time ${rows[0].join_time}`);
    assert.equal(rows[0].mute, 0);
    assert.equal(rows[0].node, `127.0.0.1:${sipPort}`);
    // another tenant sees nothing
    const other = await mysql2Connect(srv, { db: 'db_5' }).catch(() => null);
    if (other) {
        const [o] = await other.query("SELECT * FROM conference_members WHERE name = '202'");
        assert.deepEqual(o, []);
        await other.end();
    }

    // UPDATE mute: shown at once, and the node confirms it (mute-member keeps it at 1)
    const [u] = await db.query("UPDATE conference_members SET mute = 1 WHERE name = '202' AND user_id = 2");
    assert.equal(u.affectedRows, 1);
    rows = await members('202');
    assert.equal(rows[0].mute, 1);
    const list = await eslApi('conference 0*202-FSdefaultDomain list');
    const line = list.split('\n').find((l) => l.startsWith(`${ind.member_id};`));
    assert.ok(line, list);
    assert.doesNotMatch(line.split(';')[5], /speak/, `the node has the member muted: ${line}`);
    await assert.rejects(db.query("UPDATE conference_members SET mute = 7 WHERE name = '202'"), /0 or 1/);

    // DELETE one user: the node kicks it, its SIP client gets a BYE, the others get onOut
    const [d] = await db.query("DELETE FROM conference WHERE name = '202' AND user_id = 2");
    assert.equal(d.affectedRows, 0, 'user 2 had no invitation in 202; the kick still happened');
    const bye = await sip.next(10000);
    assert.equal(bye.method, 'BYE', bye.raw);
    const out = await watcher.nextOn(sys.callPipe, 'out');
    const outd = typeof out.data === 'string' ? JSON.parse(out.data) : out.data;
    assert.equal(outd.user_id, 2);
    assert.match(outd.status, /kicked|out/);
    await waitUntil(async () => (await members('202')).length === 0, { what: 'conference_members to drop the kicked member' });
    sip.close();
    // the invitation of user 4 is removed by DELETE ... WHERE name
    const [d2] = await db.query("DELETE FROM conference WHERE name = '202'");
    assert.equal(d2.affectedRows, 1);
    assert.deepEqual((await db.query("SELECT * FROM conference WHERE name = '202'"))[0], []);
    await watcher.close();
});

// The calls' part of the tenant-isolation matrix (tenant_matrix.test.mjs has the other tables):
// tenant 8 uses tenant 0's room name and user ids and runs every operation of conference and
// conference_members; tenant 0's invitation, member, mute and call stay as they were.
test('tenant matrix: another tenant can neither see, change, kick nor invite into tenant 0\'s room', async () => {
    const watcher = await wsOpen(srv, { session: 'hash4four', userId: 4, name: 'watcher4' });
    await db.query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES ('303', 4, 4, '', 'video')");
    await db.query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES ('303', 3, 4, 'queued', 'video')");
    const call = await watcher.nextOn('msg', 'sys_sipCall');
    const sys = (typeof call.data === 'string' ? JSON.parse(call.data) : call.data).sys;
    await watcher.subscribe(sys.callPipe);
    const sip = await join(2, 'hash2two', '303');
    const inEv = await watcher.nextOn(sys.callPipe, 'in');
    const memberId = (typeof inEv.data === 'string' ? JSON.parse(inEv.data) : inEv.data).member_id;
    const invitations = async () => (await db.query("SELECT name, user_id, caller_id FROM conference WHERE name = '303'"))[0]
        .sort((p, q) => p.user_id - q.user_id);
    const before = { inv: await invitations(), members: (await members('303')).map((r) => [r.user_id, r.member_id, r.mute, r.vmute, r.deaf]) };
    assert.deepEqual(before.inv.map((r) => r.user_id), [3, 4]);
    assert.deepEqual(before.members, [[2, memberId, 0, 0, 0]]);

    const t8 = await mysql2Connect(srv, { user: '8' });
    try {
        for (const sql of ['SELECT * FROM conference', "SELECT * FROM conference WHERE name = '303'",
            'SELECT * FROM conference_members', "SELECT * FROM conference_members WHERE name = '303'"])
            assert.deepEqual((await t8.query(sql))[0], [], `tenant 8: ${sql}`);
        const tryAffected = (sql) => t8.query(sql).then(([r]) => r.affectedRows, (e) => `ERR ${e.errno}`);
        for (const sql of ["UPDATE conference_members SET mute = 1 WHERE name = '303'",
            "UPDATE conference_members SET vmute = 1, deaf = 1 WHERE name = '303' AND user_id = 2",
            "DELETE FROM conference_members WHERE name = '303'",
            "DELETE FROM conference WHERE name = '303' AND user_id = 2",
            "DELETE FROM conference WHERE name = '303'"]) {
            const n = await tryAffected(sql);
            assert.ok(n === 0 || String(n).startsWith('ERR'), `tenant 8: ${sql} affected ${n}`);
        }
        // tenant 8 invites its own user 2 into its own room '303': tenant 0's user 2 gets nothing
        const page2 = await wsOpen(srv, { session: 'hash2two', userId: 2, name: 'user2-tenant0' });
        await t8.query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES ('303', 2, 9, 'tenant 8', 'video')");
        assert.deepEqual((await t8.query("SELECT name, user_id FROM conference WHERE name = '303'"))[0], [{ name: '303', user_id: 2 }]);
        await Promise.all([page2.sync(), watcher.sync()]);
        assert.deepEqual(page2.pending((m) => m.pipe === 'msg'), [], "tenant 8's invitation reached tenant 0's user 2");
        assert.deepEqual(watcher.pending((m) => m.pipe === sys.callPipe), [], "tenant 0's call pipe saw tenant 8's operations");
        assert.deepEqual(await invitations(), before.inv, "tenant 0's invitations");
        assert.deepEqual((await members('303')).map((r) => [r.user_id, r.member_id, r.mute, r.vmute, r.deaf]), before.members, "tenant 0's member");
        const list = await eslApi('conference 0*303-FSdefaultDomain list');
        const line = list.split('\n').find((l) => l.startsWith(`${memberId};`));
        assert.ok(line, `tenant 0's member is still in the node's room: ${list}`);
        assert.match(line.split(';')[5], /speak/, `the node has tenant 0's member unmuted: ${line}`);
        assert.equal((await t8.query("DELETE FROM conference WHERE name = '303'"))[0].affectedRows, 1, "tenant 8's own invitation");
        await page2.close();
    } finally {
        await t8.end().catch(() => t8.destroy());
    }
    await db.query("DELETE FROM conference WHERE name = '303'");
    const bye = await sip.next(10000);
    assert.equal(bye.method, 'BYE', bye.raw);
    sip.close();
    await waitUntil(async () => (await members('303')).length === 0, { what: "tenant 0's room to end" });
    await watcher.close();
});

test('ccomet restarting finds the members again from the node (conference xml_list)', async () => {
    await db.query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES ('303', 3, 3, '', 'video')");
    const sip = await join(3, 'hash3three', '303');
    await waitUntil(async () => (await members('303')).length === 1, { what: 'member 3 listed' });
    await db.end();
    await srv.restart();
    await nodeUp();
    db = await mysql2Connect(srv);
    await waitUntil(async () => (await members('303')).length === 1, { what: 'member 3 listed after the restart', timeoutMs: 10000 });
    const rows = await members('303');
    assert.equal(rows[0].user_id, 3);
    sip.close();
});

test('the node dying is noticed within 2 s: members dropped, `end` on the call pipe, INSERT refused; its return is picked up', async () => {
    const watcher = await wsOpen(srv, { session: 'hash4four', userId: 4, name: 'watcher2' });
    await db.query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES ('404', 4, 4, '', 'video')");
    const call = await watcher.nextOn('msg', 'sys_sipCall');
    const sys = (typeof call.data === 'string' ? JSON.parse(call.data) : call.data).sys;
    await watcher.subscribe(sys.callPipe);
    const sip = await join(2, 'hash2two', '404');
    await watcher.nextOn(sys.callPipe, 'in');

    const t0 = Date.now();
    media.proc.kill('SIGKILL');
    await new Promise((r) => media.proc.once('close', r));
    const end = await watcher.nextOn(sys.callPipe, 'end', { timeoutMs: 5000 });
    const noticedMs = Date.now() - t0;
    assert.ok(noticedMs < 2000, `noticed after ${noticedMs} ms`);
    assert.equal((typeof end.data === 'string' ? JSON.parse(end.data) : end.data).status, 'node-down');
    assert.deepEqual(await members('404'), []);
    await assert.rejects(db.query("INSERT INTO conference (name, user_id, message) VALUES ('405', 2, '')"), /No media node is reachable/);
    sip.close();

    await startMedia();
    await waitUntil(async () => {
        try {
            await db.query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES ('405', 2, 2, '', 'video')");
            return true;
        } catch { return false; }
    }, { timeoutMs: 10000, what: 'an INSERT to succeed once the node is back', interval: 200 });
    await watcher.close();
});

test('a wrong hash does not register', async () => {
    const c = await SipWs.open(`ws://127.0.0.1:${sipPort}`, {}, () => media.log);
    const r = await registerWithAuth(c, '0000002', 'not-the-hash');
    assert.equal(r.status, 403, r.raw);
    c.close();
});

test('revoking a key reaches SIP (audit L9): DELETE FROM users_auth ends the user\'s call (BYE) and registration on the node, and the old key no longer registers', async () => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (8, 'hash8eight')");
    const sip = await join(8, 'hash8eight', '208');
    await waitUntil(async () => (await members('208')).length === 1, { what: 'user 8 in conference_members' });
    const [d] = await db.query('DELETE FROM users_auth WHERE id = 8');
    assert.equal(d.affectedRows, 1);
    const bye = await sip.next(10000);
    assert.equal(bye.method, 'BYE', bye.raw);
    await waitUntil(() => /user="0000008" msg="revoked" cache=0 registrations=1 calls=0 ended=1/.test(media.log) &&
        /user="0000008" msg="revoked" cache=0 registrations=0 calls=1 ended=1/.test(media.log) &&
        /user="0000008" msg="revoked" cache=1 registrations=0 calls=0/.test(media.log),
    { what: 'the node to flush the cache, the registration and the call of user 0000008' });
    await waitUntil(async () => (await members('208')).length === 0, { what: 'conference_members to drop user 8' });
    sip.close();
    const again = await SipWs.open(`ws://127.0.0.1:${sipPort}`, {}, () => media.log);
    const r = await registerWithAuth(again, '0000008', 'hash8eight');
    assert.equal(r.status, 403, r.raw);
    again.close();
});

test('a JWT session registers with its SIP credential, never the key (audit H2); a credential past its expiry or for another user is refused', async () => {
    await db.query("INSERT INTO users_auth (id, hash) VALUES (9, 'hash9nine')");
    const now = Math.floor(Date.now() / 1000);
    const page = await wsOpen(srv, { userId: 9, session: signJwt({ user_id: 9, exp: now + 600 }, `${srv.password}0`) });
    assert.equal(page.info.authorized, true);
    const cred = page.info.data;
    assert.match(cred, /^[0-9a-f]{32}$/);
    assert.notEqual(cred, 'hash9nine');
    await page.close();
    const c = await SipWs.open(`ws://127.0.0.1:${sipPort}`, {}, () => media.log);
    let r = await registerWithAuth(c, '0000009', cred);
    assert.equal(r.status, 200, r.raw);
    // the key still registers (a hash login's session), after the credential was cached
    r = await registerWithAuth(c, '0000009', 'hash9nine');
    assert.equal(r.status, 200, r.raw);
    c.close();
    // the credential of the minute that has begun has ended; another user's is not this one's
    const ended = sipCredential('hash9nine', 0, 9, now - (now % 60));
    const other = sipCredential('hash2two', 0, 2, now - (now % 60) + 600);
    for (const [pw, what] of [[ended, 'an ended credential'], [other, "user 2's credential"]]) {
        const x = await SipWs.open(`ws://127.0.0.1:${sipPort}`, {}, () => media.log);
        r = await registerWithAuth(x, '0000009', pw);
        assert.equal(r.status, 403, `${what}: ${r.raw}`);
        x.close();
    }
    // deleting the key ends every credential made from it
    await db.query('DELETE FROM users_auth WHERE id = 9');
    const y = await SipWs.open(`ws://127.0.0.1:${sipPort}`, {}, () => media.log);
    r = await registerWithAuth(y, '0000009', cred);
    assert.equal(r.status, 403, r.raw);
    y.close();
});
