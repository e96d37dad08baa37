// ccomet's media node client against FreeSWITCH's own bytes: a scripted Event Socket server replays
// what a real FreeSWITCH 1.10.12 sent (tests/fixtures/freeswitch/esl-05: conference::maintenance
// events; esl-07: a `conference xml_list` answer), with only the conference name and caller
// numbers rewritten into the Video API's scheme ("room1" -> "0*room1-FSdefaultDomain", caller
// 1001/1002 -> SIP users 0000001/0000002) and every Content-Length recomputed. build/asan/ccomet
// must authenticate, subscribe, resynchronise from the xml_list, follow the events into
// conference_members, and send FreeSWITCH's own command for a kick.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ROOT, Server, freePorts } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { waitUntil } from './wsclient.mjs';

const FIX = path.join(ROOT, 'tests', 'fixtures', 'freeswitch');
const CONF = '0*room1-FSdefaultDomain';
const PWD = 'ClueCon'; // the captures' password

/** Splits an ESL server stream into messages: { head (text), body (Buffer|null) }. */
function splitMessages(buf) {
    const out = [];
    let off = 0;
    while (off < buf.length) {
        const end = buf.indexOf('\n\n', off);
        if (end < 0) break;
        const head = buf.subarray(off, end).toString('latin1');
        off = end + 2;
        const m = /^Content-Length: (\d+)$/m.exec(head);
        const body = m ? buf.subarray(off, off + Number(m[1])) : null;
        if (m) off += Number(m[1]);
        out.push({ head, body });
    }
    return out;
}

const rewrite = (text) => text.replaceAll('room1', CONF).replaceAll('1001', '0000001').replaceAll('1002', '0000002');

function frame(head, bodyText) {
    if (bodyText === null) return Buffer.from(`${head}\n\n`, 'latin1');
    const body = Buffer.from(bodyText, 'latin1');
    return Buffer.concat([Buffer.from(`${head.replace(/^Content-Length: \d+$/m, `Content-Length: ${body.length}`)}\n\n`, 'latin1'), body]);
}

const events = splitMessages(readFileSync(path.join(FIX, 'esl-05-conference-maintenance-events-plain.s2c.raw')))
    .filter((m) => /text\/event-plain/.test(m.head))
    .map((m) => ({ action: /^Action: (.*)$/m.exec(m.body.toString('latin1'))[1], bytes: frame(m.head, rewrite(m.body.toString('latin1'))) }));
const s2c07 = splitMessages(readFileSync(path.join(FIX, 'esl-07-conference-api-list-xml-json-control.s2c.raw')));
const xmlLists = s2c07.filter((m) => m.body && m.body.toString('latin1').startsWith('<?xml'));
const statusBody = splitMessages(readFileSync(path.join(FIX, 'esl-03-api-status-and-empty-conference-list.s2c.raw')))
    .find((m) => m.body && /^UP /.test(m.body.toString('latin1')));

let srv, db, fs, eslPort, conn;
const received = []; // commands ccomet sent
let onCommand = () => {};

before(async () => {
    assert.equal(xmlLists.length, 2);
    assert.ok(statusBody, 'esl-03 has the status answer');
    [eslPort] = await freePorts(1);
    // the scripted FreeSWITCH: captured replies, in FreeSWITCH's framing
    fs = net.createServer((c) => {
        conn = c;
        let buf = '';
        c.write('Content-Type: auth/request\n\n');
        c.on('data', (d) => {
            buf += d.toString('latin1');
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
                const cmd = buf.slice(0, i);
                buf = buf.slice(i + 2);
                received.push(cmd);
                if (cmd === `auth ${PWD}`) c.write('Content-Type: command/reply\nReply-Text: +OK accepted\n\n');
                else if (cmd === 'event plain CUSTOM conference::maintenance') c.write('Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n');
                else if (cmd === 'api conference xml_list') c.write(frame('Content-Type: api/response\nContent-Length: 0', rewrite(xmlLists[1].body.toString('latin1'))));
                else if (cmd === 'api status') c.write(frame('Content-Type: api/response\nContent-Length: 0', statusBody.body.toString('latin1')));
                else if (cmd.startsWith('api ')) c.write(frame('Content-Type: api/response\nContent-Length: 0', 'OK kicked 1\n'));
                onCommand(cmd);
            }
        });
        c.on('error', () => {});
    });
    await new Promise((r) => fs.listen(eslPort, '127.0.0.1', r));
    srv = new Server({ extraConf: `[sip]\nfreeswitch = []Server=127.0.0.1,Port=${eslPort},Pwd=${PWD},WSport=7443\n` });
    await srv.init();
    await srv.start();
    db = await mysql2Connect(srv);
});

after(async () => {
    if (db) await db.end().catch(() => {});
    if (srv) await srv.stop();
    conn?.destroy();
    fs?.close();
});

const members = async () => (await db.query("SELECT * FROM conference_members WHERE name = 'room1'"))[0];

test('ccomet authenticates, subscribes and resynchronises from FreeSWITCH\'s xml_list', async () => {
    await waitUntil(() => received.includes('api conference xml_list'), { timeoutMs: 10000, what: 'the xml_list request' });
    assert.deepEqual(received.slice(0, 3), [`auth ${PWD}`, 'event plain CUSTOM conference::maintenance', 'api conference xml_list']);
    await waitUntil(async () => (await members()).length === 2, { what: 'the two members of the xml_list' });
    const rows = await members();
    assert.deepEqual(rows.map((r) => [r.user_id, r.member_id]).sort(), [[1, 1], [2, 2]]);
    for (const r of rows) {
        assert.ok(r.join_time >= 0 && r.join_time < 60, `join_time ${r.join_time} (the xml_list says seconds since joining)`);
        assert.equal(r.node, '127.0.0.1:7443');
    }
    // Alice joined first: the capture's xml_list has her there 4 s longer than Bob
    assert.ok(rows.find((r) => r.member_id === 1).join_time > rows.find((r) => r.member_id === 2).join_time);
});

test('FreeSWITCH\'s events drive conference_members: talking, mute, deaf, leave, destroy', async () => {
    const firstDel = events.findIndex((e) => e.action === 'del-member');
    assert.ok(firstDel > 0);
    conn.write(Buffer.concat(events.slice(0, firstDel).map((e) => e.bytes)));
    // esl-05 before its first del-member: 1 and 2 joined, 2 talked, 1 muted, unmuted, deafened and
    // undeafened, then 2 muted
    await waitUntil(async () => (await members()).find((r) => r.member_id === 2)?.mute === 1, { what: 'member 2 muted' });
    const rows = await members();
    const m1 = rows.find((r) => r.member_id === 1);
    const m2 = rows.find((r) => r.member_id === 2);
    assert.deepEqual([m1.mute, m1.deaf], [0, 0]);
    assert.equal(m2.talking, 1, 'member 2 started talking again');
    assert.notEqual(m2.last_talking, null, 'member 2 talked');
    assert.ok(m2.last_talking >= 0 && m2.last_talking < 60);
    conn.write(Buffer.concat(events.slice(firstDel).map((e) => e.bytes)));
    await waitUntil(async () => (await members()).length === 0, { what: 'both members gone and the conference destroyed' });
});

test('a kick is FreeSWITCH\'s own api command', async () => {
    // the room is live again (resync from a fresh xml_list after a reconnect)
    conn.destroy();
    await waitUntil(async () => (await members()).length === 2, { timeoutMs: 10000, what: 'the reconnect and its resync' });
    const kicked = new Promise((resolve) => { onCommand = (cmd) => { if (/kick/.test(cmd)) resolve(cmd); }; });
    await db.query("DELETE FROM conference WHERE name = 'room1' AND user_id = 1");
    assert.equal(await kicked, `api conference ${CONF} kick 1`);
});

test('a caller-chosen display name never becomes the member\'s user id (audit C1): an unmappable user is user 0', async () => {
    const add = events.find((e) => e.action === 'add-member');
    const m = splitMessages(add.bytes)[0];
    let body = m.body.toString('latin1');
    assert.match(body, /^Caller-Caller-ID-Name: /m);
    body = body.replace(/^Member-ID: \d+$/m, 'Member-ID: 9')
        .replace(/^Caller-Username: .*$/m, 'Caller-Username: 1003')
        .replace(/^Caller-Caller-ID-Number: .*$/m, 'Caller-Caller-ID-Number: 1003')
        .replace(/^Caller-Caller-ID-Name: .*$/m, 'Caller-Caller-ID-Name: 0000002');
    conn.write(frame(m.head, body));
    await waitUntil(async () => (await members()).some((r) => r.member_id === 9), { what: 'member 9 listed' });
    const row = (await members()).find((r) => r.member_id === 9);
    assert.equal(row.user_id, 0, `the display name "0000002" made member 9 user ${row.user_id}`);
});
