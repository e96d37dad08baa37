// The Video API end to end (2 of 3: kinds of rooms and refusals). An audio room invited with node
// mysql2 carries no video and ends for everyone on DELETE FROM conference WHERE name; a page
// declines a call (busy) and the caller hears of it (onOut); a page whose key is no longer the
// user's users_auth hash cannot register (onCallEnd registration-failure). The kinds of members
// (type 'audio' and 'none') are in video_browser_types.test.mjs.
// See video_browser_call.test.mjs for the set-up (tests/integration/video_stack.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { inNetns, VideoStack, waitUntil } from './video_stack.mjs';

await inNetns(import.meta.url, async () => {
    const stack = new VideoStack();
    const HASH = { 1: 'roomKey1aaaa', 2: 'roomKey2bbbb', 4: 'roomKey4dddd' };
    const p = {};
    let db;
    const members = async (room) => (await db.query('SELECT * FROM conference_members WHERE name = ?', [room]))[0];
    const inRoom = (room, more = () => true) => (x) => x.e.room === room && more(x);
    const invite = (room, u, profile = 'video') =>
        db.query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES (?, ?, 1, '{}', ?)", [room, u, profile]);

    before(async () => {
        await stack.start();
        db = await stack.db();
        await stack.signIn(HASH);
        for (const u of [1, 2, 4]) p[u] = await stack.page(u, HASH[u]);
    });
    after(async () => {
        await db?.end().catch(() => {});
        await stack.stop();
    });
    const w = (fn) => stack.wrap(fn);

    test('an audio room carries no video; DELETE of the room ends the call for both', w(async () => {
        for (const u of [1, 2]) await invite('201', u, 'audio');
        for (const u of [1, 2]) assert.equal((await stack.waitEvent(p[u], 'onCall', inRoom('201'))).e.type, 'audio');
        await stack.joinInTurn(db, '201', [p[1], p[2]], 'video'); // asks for video: the room has none
        await Promise.all([1, 2].map((u) => stack.waitEvent(p[u], 'onCallStart', inRoom('201', (x) => x.e.type === 'audio'))));
        await Promise.all([1, 2].map((u) => stack.decodes(p[u], { audioOnly: true })));
        for (const u of [1, 2]) {
            const s = await stack.stats(p[u]);
            assert.ok(!s.video || s.video.framesDecoded === 0, `${u}: no video decoded (${JSON.stringify(s.video)})`);
            assert.ok(s.transceivers.every((t) => t.kind !== 'video'), `${u}: no video offered ${JSON.stringify(s.transceivers)}`);
        }
        let heard;
        await waitUntil(async () => (heard = await Promise.all([1, 2].map((u) => stack.energyRate(p[u])))).every((e) => e > 0),
            { what: () => `each hearing the other (energy per second ${heard})` });
        assert.deepEqual((await members('201')).map((m) => Number(m.video)), [0, 0]);
        await db.query("DELETE FROM conference WHERE name = '201'");
        for (const u of [1, 2]) {
            const end = (await stack.waitEvent(p[u], 'onCallEnd', inRoom('201'))).e;
            assert.equal(end.type, 'audio');
            assert.equal(end.status, 'terminated');
            assert.ok(end.time > 0 && end.fullTime >= end.time, JSON.stringify(end));
        }
        await waitUntil(async () => (await members('201')).length === 0, { what: 'room 201 empty' });
    }));

    test('busy: a declined call ends there (onCallEnd busy) and the caller gets onOut busy', w(async () => {
        for (const u of [1, 2]) await invite('202', u);
        await stack.waitEvent(p[2], 'onCall', inRoom('202'));
        const pipe = (await stack.waitEvent(p[1], 'onCall', inRoom('202'))).e.callPipe;
        // Both pages listen on the call pipe before anyone answers (a page subscribes on onCall).
        await waitUntil(async () => {
            const [rows] = await db.query('SELECT users FROM pipes WHERE name = ?', [pipe]);
            return rows.length && Number(rows[0].users) === 2;
        }, { what: `two subscribers on ${pipe}` });
        assert.equal(await p[1].evaluate(() => T.accept('audio')), true);
        assert.equal(await p[2].evaluate(() => cometVideoApi.busy()), true);
        assert.equal((await stack.waitEvent(p[2], 'onCallEnd', inRoom('202'))).e.status, 'busy');
        const out = (await stack.waitEvent(p[1], 'onOut', inRoom('202'))).e;
        assert.deepEqual([out.status, out.user_id], ['busy', 2]);
        await p[1].evaluate(() => cometVideoApi.hangup());
        assert.equal((await stack.waitEvent(p[1], 'onCallEnd', inRoom('202'))).e.status, 'hangup');
        assert.equal((await stack.events(p[1], 'onCallStart')).filter(inRoom('202')).length, 0, 'alone: the call never started');
    }));

    test('a page whose key is no longer the users_auth hash gets onCallEnd registration-failure', w(async () => {
        // The page signed in with HASH[4]; the backend has changed the hash since. (User 4 has
        // not registered before: the node caches directory answers for [directory] cache_ttl.)
        await db.query("INSERT INTO users_auth (id, hash) VALUES (4, 'changedKey4zz')");
        await invite('203', 4);
        await stack.waitEvent(p[4], 'onCall', inRoom('203'));
        assert.equal(await p[4].evaluate(() => T.accept('video')), true);
        const end = (await stack.waitEvent(p[4], 'onCallEnd', inRoom('203'))).e;
        assert.equal(end.status, 'registration-failure');
        assert.equal((await stack.events(p[4], 'onCallStart')).length, 0);
        assert.equal(await p[4].evaluate(() => cometVideoApi.isInCall()), false);
    }));
});
