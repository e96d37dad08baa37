// The Video API end to end, as users meet it (1 of 3: a call of three). A backend signs three users
// in (PHP mysqli) and invites them with examples/call.php (PHP mysqli: one INSERT INTO conference
// each); three pages running the project's web/CometServerApi.js and web/cometVideoApi.js on JsSIP
// in headless Chromium (fake camera and microphone) get onCall, accept, register to the real
// build/asan/ccomet-media, which asks the real build/asan/ccomet's directory, and call the room.
// Then node mysql2 reads conference_members, kicks one member, mutes another, and the rest hang
// up. The stack (tests/integration/video_stack.mjs) runs in a lo-only network namespace; the cases
// share it and run in order. Every wait is on an event or a polled condition.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { inNetns, VideoStack, waitUntil } from './video_stack.mjs';

await inNetns(import.meta.url, async () => {
    const stack = new VideoStack();
    const HASH = { 1: 'demoKey1aaaa', 2: 'demoKey2bbbb', 3: 'demoKey3cccc' };
    const p = {};
    let db;
    const members = async (room) => (await db.query('SELECT * FROM conference_members WHERE name = ?', [room]))[0];
    const inRoom = (room, more = () => true) => (x) => x.e.room === room && more(x);

    before(async () => {
        await stack.start();
        db = await stack.db();
        await stack.signIn(HASH);
        for (const u of [1, 2, 3]) p[u] = await stack.page(u, HASH[u]);
    });
    after(async () => {
        await db?.end().catch(() => {});
        await stack.stop();
    });
    const w = (fn) => stack.wrap(fn);

    test('three users invited by call.php get onCall, accept, get onCallStart and onIn, and decode the mix', w(async () => {
        assert.deepEqual(await stack.callPhp(['--caller=1', '--users=2,3', '--room=101']), { ok: true, room: '101', invited: [1, 2, 3] });
        for (const u of [1, 2, 3]) {
            const e = (await stack.waitEvent(p[u], 'onCall', inRoom('101'))).e;
            assert.equal(e.data.sys.sipNumber, '0*101*video');
            assert.equal(e.data.sys.type, 'video');
            assert.equal(e.data.sys.serverProto, 'ws');
            assert.match(e.callPipe, /^web_syscall_vA_[A-Za-z]{28}$/);
            assert.deepEqual(e.data.message, { caller: 1, text: '' }); // parsed from the backend's JSON text
            assert.equal(e.caller_id, 1);
        }
        await stack.joinInTurn(db, '101', [p[1], p[2], p[3]]);
        await Promise.all([1, 2, 3].map((u) => stack.waitEvent(p[u], 'onCallStart', inRoom('101'))));
        // Every member is announced (onIn) to the pages that were in the call before it.
        const seen = {};
        await waitUntil(async () => {
            for (const u of [1, 2, 3]) seen[u] = (await stack.events(p[u], 'onIn')).filter(inRoom('101')).map((x) => x.e.user_id);
            return [1, 2, 3].every((u) => seen[u].length > 0) && [1, 2, 3].every((m) => Object.values(seen).some((l) => l.includes(m)));
        }, { what: () => `onIn for every member (${JSON.stringify(seen)})` });
        for (const u of [1, 2, 3]) assert.ok(!seen[u].includes(u), `${u} gets no onIn for itself: ${JSON.stringify(seen)}`);
        await Promise.all([1, 2, 3].map((u) => stack.decodes(p[u], { mix: true })));
        for (const u of [1, 2, 3]) assert.deepEqual(await stack.events(p[u], 'onCallEnd'), []);
    }));

    test('SELECT conference_members lists the three with sensible join times', w(async () => {
        const rows = await members('101');
        assert.deepEqual(rows.map((m) => Number(m.user_id)).sort(), [1, 2, 3]);
        for (const m of rows) {
            assert.equal(m.name, '101');
            assert.ok(Number(m.join_time) >= 0 && Number(m.join_time) < 60, `join_time ${m.join_time}`);
            assert.equal(Number(m.mute), 0);
            assert.equal(Number(m.video), 1);
            assert.ok(Number(m.member_id) > 0);
        }
        assert.equal(new Set(rows.map((m) => m.member_id)).size, 3);
    }));

    test('DELETE FROM conference ... AND user_id kicks one: onCallEnd there, onOut for the others', w(async () => {
        await db.query("DELETE FROM conference WHERE name = '101' AND user_id = 3");
        const end = (await stack.waitEvent(p[3], 'onCallEnd', inRoom('101'))).e;
        assert.equal(end.status, 'terminated');
        for (const u of [1, 2]) {
            assert.equal((await stack.waitEvent(p[u], 'onOut', inRoom('101', (x) => x.e.user_id === 3))).e.status, 'kicked');
        }
        await waitUntil(async () => (await members('101')).length === 2, { what: 'two members left' });
        assert.equal(await p[3].evaluate(() => cometVideoApi.isInCall()), false);
    }));

    test('UPDATE conference_members SET mute = 1: the other member stops hearing that one, and hears it again after mute = 0', w(async () => {
        // Two members left: 1 hears only 2, and 2 hears only 1 (the room mixes each member's sound
        // for the others). Windows of 2 s of received audio; 2 hearing 1 shows that sound flows.
        const rates = () => Promise.all([stack.energyRate(p[1]), stack.energyRate(p[2])]);
        let r;
        const base = await waitUntil(async () => { r = await rates(); return r[0] > 0.01 && r[1] > 0.01 && r; },
            { what: () => `both hearing each other (${r})` });
        await db.query("UPDATE conference_members SET mute = 1 WHERE name = '101' AND user_id = 2");
        assert.equal(Number((await members('101')).find((m) => Number(m.user_id) === 2).mute), 1);
        await waitUntil(async () => { r = await rates(); return r[0] < base[0] * 0.1 && r[1] > base[1] * 0.25; },
            { what: () => `1 hearing silence from 2 while 2 hears 1 (now ${r}, before ${base})` });
        await db.query("UPDATE conference_members SET mute = 0 WHERE name = '101' AND user_id = 2");
        await waitUntil(async () => { r = await rates(); return r[0] > base[0] * 0.25; },
            { what: () => `1 hearing 2 again (now ${r}, before ${base})` });
        assert.equal(Number((await members('101')).find((m) => Number(m.user_id) === 2).mute), 0);
    }));

    test('hang-ups: onCallEnd hangup for the one leaving, onOut for the other; the room empties', w(async () => {
        assert.equal(await p[2].evaluate(() => cometVideoApi.hangup()), true);
        assert.equal((await stack.waitEvent(p[2], 'onCallEnd', inRoom('101'))).e.status, 'hangup');
        assert.equal((await stack.waitEvent(p[1], 'onOut', inRoom('101', (x) => x.e.user_id === 2))).e.status, 'out');
        await p[1].evaluate(() => cometVideoApi.hangup());
        assert.equal((await stack.waitEvent(p[1], 'onCallEnd', inRoom('101'))).e.status, 'hangup');
        await waitUntil(async () => (await members('101')).length === 0, { what: 'room 101 empty' });
        for (const u of [1, 2, 3]) assert.equal((await stack.events(p[u], 'onCallEnd')).length, 1, `${u}: one onCallEnd`);
    }));
});
