// The Video API in cluster mode: two ccomet nodes on one real redis-server, both wired to the
// same two real ccomet-media nodes but listing them in opposite orders, so that each, left to
// itself, would put a new room on a different media node. Rooms INSERTed on both at once must
// each land on one media node (the placement claimed in Redis), and a later invitation on either
// node goes where the room already is.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { MediaProcess, freePorts } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { waitUntil } from './wsclient.mjs';
import { startRedis, startNode } from './redis.mjs';

const ESL_PASS = 'esl-cluster-secret';
const redis = await startRedis();
const [esl1, sip1, esl2, sip2] = await freePorts(4);
const line = (esl, sip) => `freeswitch = []Server=127.0.0.1,Port=${esl},Pwd=${ESL_PASS},WSport=${sip},WSproto=ws`;
const nodes = [
    await startNode(redis, { extraConf: `[sip]\npipesalt = s\n${line(esl1, sip1)}\n${line(esl2, sip2)}\n` }),
    await startNode(redis, { extraConf: `[sip]\npipesalt = s\n${line(esl2, sip2)}\n${line(esl1, sip1)}\n` }),
];
const media = [];
for (const [i, esl, sip] of [[1, esl1, sip1], [2, esl2, sip2]]) {
    const conf = path.join(nodes[0].dir, `media${i}.ini`);
    writeFileSync(conf, ['[sip]', 'ip = 127.0.0.1', `ws_port = ${sip}`, '',
        '[esl]', 'ip = 127.0.0.1', `port = ${esl}`, `password = ${ESL_PASS}`, '', '[log]', 'level = info', ''].join('\n'));
    media.push(await MediaProcess.start(conf, { cwd: nodes[0].dir, waitPort: esl }));
}
for (const n of nodes) {
    await waitUntil(() => (n.log.match(/msg="media node up"/g) ?? []).length >= 2,
        { timeoutMs: 15000, what: 'both media nodes up' });
}
const dbs = await Promise.all(nodes.map((n) => mysql2Connect(n)));

after(async () => {
    await Promise.all(dbs.map((d) => d.end().catch(() => d.destroy())));
    for (const n of nodes) await n.stop();
    for (const m of media) await m.stop();
    await redis.cleanup();
});

const wrap = (fn) => nodes[0].wrap(nodes[1].wrap(fn));

test('a room INSERTed on two ccomet nodes at once lands on one media node', wrap(async () => {
    const ROOMS = 12;
    for (let r = 0; r < ROOMS; r++) {
        const name = `race${r}`;
        await Promise.all(dbs.map((db, i) => db.query(
            'INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES (?, ?, 9, ?, ?)',
            [name, 10 + i, 'call', 'video'])));
    }
    const [rows] = await dbs[0].query('SELECT * FROM conference');
    const byRoom = new Map();
    for (const row of rows) {
        if (!row.name.startsWith('race')) continue;
        if (!byRoom.has(row.name)) byRoom.set(row.name, new Set());
        byRoom.get(row.name).add(row.node);
    }
    assert.equal(byRoom.size, ROOMS);
    for (const [name, set] of byRoom) assert.equal(set.size, 1, `${name} on ${[...set].join(' and ')}`);
    const used = new Set([...byRoom.values()].map((s) => [...s][0]));
    console.log(`# ${ROOMS} rooms raced on 2 ccomet nodes: every room on one media node; ${used.size} media node(s) used`);
    // a later invitation on either node goes where the room is
    const [[first]] = await dbs[1].query("SELECT node FROM conference WHERE name = 'race0'");
    await dbs[0].query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES ('race0', 30, 9, 'late', 'video')");
    const [late] = await dbs[1].query("SELECT node FROM conference WHERE name = 'race0' AND user_id = 30");
    assert.equal(late[0].node, first.node);
}));

test('ending a room takes back its queued invitations on Redis, from the room\'s own set (audit M5)', wrap(async () => {
    for (const room of ['5_5', '505'])
        await dbs[0].query('INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES (?, 77, 2, ?, ?)', [room, 'x', 'video']);
    await dbs[0].query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES ('5_5', 78, 2, 'x', 'video')");
    // a private message that mentions the room is not an invitation to it
    await dbs[0].query('INSERT INTO users_messages (id, event, message) VALUES (77, ?, ?)', ['chat', '{"conference_name":"5_5"}']);
    let [q] = await dbs[1].query('SELECT * FROM users_messages WHERE id = 77');
    assert.equal(q.length, 3);
    assert.equal((await redis.cli('SCARD', 'ccomet:{t0}:qc:5_5')).trim(), '2', 'the room\'s invitations are its set');
    await dbs[1].query("DELETE FROM conference WHERE name = '5_5'"); // on the other node; '_' is no wildcard
    [q] = await dbs[0].query('SELECT * FROM users_messages WHERE id = 77');
    assert.equal(q.length, 2, JSON.stringify(q));
    assert.ok(q.some((m) => /"conference_name":"505"/.test(m.message)));
    assert.ok(q.some((m) => m.event === 'chat'));
    const [q78] = await dbs[0].query('SELECT * FROM users_messages WHERE id = 78');
    assert.deepEqual(q78, []);
    await dbs[0].query("DELETE FROM conference WHERE name = '505' AND user_id = 77");
    [q] = await dbs[0].query('SELECT * FROM users_messages WHERE id = 77');
    assert.deepEqual(q.map((m) => m.event), ['chat']);
    // the room's set is gone with its invitations
    assert.equal((await redis.cli('EXISTS', 'ccomet:{t0}:qc:5_5')).trim(), '0');
}));
