// The Video API end to end (3 of 3: the media node fails). Two members are in a call when
// ccomet-media is killed (SIGKILL: no BYE, no del-member): both get onCallEnd (node-down, or
// terminated when their SIP session notices first) within seconds, and conference_members is
// empty. The node is started again: ccomet reconnects by itself and a new INSERT makes a new call.
// See video_browser_call.test.mjs for the set-up (tests/integration/video_stack.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { inNetns, VideoStack, waitUntil } from './video_stack.mjs';

await inNetns(import.meta.url, async () => {
    const stack = new VideoStack();
    const HASH = { 1: 'nodeKey1aaaa', 2: 'nodeKey2bbbb' };
    const p = {};
    let db;
    const members = async (room) => (await db.query('SELECT * FROM conference_members WHERE name = ?', [room]))[0];
    const inRoom = (room) => (x) => x.e.room === room;
    const invite = (room, u) => db.query("INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES (?, ?, 1, '{}', 'video')", [room, u]);

    async function call(room) {
        await stack.joinInTurn(db, room, [p[1], p[2]]);
        await Promise.all([1, 2].map((u) => stack.waitEvent(p[u], 'onCallStart', inRoom(room))));
    }

    before(async () => {
        await stack.start();
        db = await stack.db();
        await stack.signIn(HASH);
        for (const u of [1, 2]) p[u] = await stack.page(u, HASH[u]);
    });
    after(async () => {
        await db?.end().catch(() => {});
        await stack.stop();
    });
    const w = (fn) => stack.wrap(fn);

    test('the media node dies mid-call: members get onCallEnd within seconds and conference_members empties', w(async () => {
        for (const u of [1, 2]) await invite('301', u);
        await call('301');
        await waitUntil(async () => (await members('301')).length === 2, { what: 'two members in 301' });
        const t0 = Date.now();
        await stack.killMedia();
        for (const u of [1, 2]) {
            const end = await stack.waitEvent(p[u], 'onCallEnd', inRoom('301'), { timeoutMs: 10000 });
            assert.ok(['node-down', 'terminated'].includes(end.e.status), end.e.status);
            assert.ok(end.t - t0 < 10000, `${end.t - t0} ms`);
        }
        assert.deepEqual(await members('301'), []);
        for (const u of [1, 2]) assert.equal(await p[u].evaluate(() => cometVideoApi.isInCall()), false);
    }));

    test('the media node restarts: a new INSERT works without restarting ccomet', w(async () => {
        await stack.startMedia();
        // ccomet reconnects by itself (backing off); until then an INSERT is refused, naming the node.
        await waitUntil(async () => {
            try {
                await invite('302', 1);
                return true;
            } catch (e) {
                if (!/media node/i.test(e.message)) throw e;
                return false;
            }
        }, { what: 'ccomet to take invitations again', timeoutMs: 20000, everyMs: 200 });
        await invite('302', 2);
        await call('302');
        await Promise.all([1, 2].map((u) => stack.decodes(p[u])));
        await db.query("DELETE FROM conference WHERE name = '302'");
        await waitUntil(async () => (await members('302')).length === 0, { what: 'room 302 empty' });
    }));
});
