// The Video API end to end (kinds of members): in a video room of three, a page that sends its
// camera and microphone, one that sends nothing (acceptCall type 'none') and one that sends no
// camera (type 'audio') all join; the two that send no video still receive the mixed picture,
// and the first hears the one that sends only sound.
// See video_browser_call.test.mjs for the set-up (tests/integration/video_stack.mjs).
import { test, before, after } from 'node:test';
import { inNetns, VideoStack, waitUntil } from './video_stack.mjs';

await inNetns(import.meta.url, async () => {
    const stack = new VideoStack();
    const HASH = { 1: 'typeKey1aaaa', 2: 'typeKey2bbbb', 3: 'typeKey3cccc' };
    const p = {};
    let db;
    const members = async (room) => (await db.query('SELECT * FROM conference_members WHERE name = ?', [room]))[0];
    const inRoom = (room) => (x) => x.e.room === room;
    const invite = (room, u) => db.query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES (?, ?, 1, '{}', 'video')", [room, u]);

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

    test("acceptCall type 'none' (no camera, no microphone) and 'audio' in a video room: both receive the mix", w(async () => {
        for (const u of [1, 2, 3]) await invite('204', u);
        await stack.joinInTurn(db, '204', [p[1]], 'video');
        await stack.joinInTurn(db, '204', [p[2]], 'none', 1);
        await stack.joinInTurn(db, '204', [p[3]], 'audio', 2);
        await Promise.all([1, 2, 3].map((u) => stack.waitEvent(p[u], 'onCallStart', inRoom('204'))));
        await Promise.all([2, 3].map((u) => stack.decodes(p[u], { mix: true })));
        let heard;
        await waitUntil(async () => (heard = await stack.energyRate(p[1])) > 0, { what: () => `1 hearing 3 (energy per second ${heard})` });
        await db.query("DELETE FROM conference WHERE name = '204'");
        await Promise.all([1, 2, 3].map((u) => stack.waitEvent(p[u], 'onCallEnd', inRoom('204'))));
        await waitUntil(async () => (await members('204')).length === 0, { what: 'room 204 empty' });
    }));

});
