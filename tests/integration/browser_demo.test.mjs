// The chat demo (web/demo/chat.html, served by ccomet itself from the repo's web/) in headless
// Chromium, one profile (context) per person: alice and bob see each other online, alice's typed
// message reaches bob, bob's reload shows the history; carol comes and goes and dave, arriving
// later, lists only who is online now; after a server restart the pages reconnect and chat on;
// the pipe's stored history holds only chat messages; the layout gives the log the page.
// Screenshots go to the test's temp dir (checked to be PNGs) and one to
// var/screenshots/demo-chat.png for a human to look at.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, ROOT } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import { launchBrowser, browserTest, waitSubscribers } from './browser.mjs';

const srv = await startServer({ baseDir: path.join(ROOT, 'web') });
const shotDir = mkdtempSync(path.join(os.tmpdir(), 'ccomet-shots-'));
let browser;
let db;

before(async () => {
    browser = await launchBrowser();
    db = await mysql2Connect(srv);
    db.on('error', () => { /* a test's failure reports it */ });
});
after(async () => {
    try {
        if (browser) await browser.close();
        if (db) await db.end().catch(() => db.destroy());
    } finally {
        rmSync(shotDir, { recursive: true, force: true });
        await srv.stop();
    }
});

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

async function screenshot(page, name) {
    const file = path.join(shotDir, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    const png = readFileSync(file);
    assert.ok(png.length > 1000, `${file}: ${png.length} bytes`);
    assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE, `${file} is a PNG`);
    // IHDR: width and height are non-zero
    assert.ok(png.readUInt32BE(16) > 0 && png.readUInt32BE(20) > 0, `${file}: empty image`);
    return file;
}

/** Resolves once the page's online list (#people) names everyone in `names`. */
async function waitOnline(page, names) {
    try {
        await page.waitForFunction((want) => {
            const have = [...document.querySelectorAll('#people li')].map((li) => li.textContent);
            return want.every((n) => have.includes(n));
        }, names, { polling: 20 });
    } catch (e) {
        const have = await page.$$eval('#people li', (l) => l.map((li) => li.textContent)).catch(() => '?');
        throw new Error(`online list should contain ${JSON.stringify(names)}, has ${JSON.stringify(have)}: ${e.message.split('\n')[0]}`);
    }
}

/** Resolves once #log has a line "<name>: <text>" (optionally with class history). */
async function waitLine(page, name, text, { history } = {}) {
    try {
        await page.waitForFunction(([n, t, h]) => [...document.querySelectorAll('#log .msg')].some((d) =>
            d.querySelector('b')?.textContent === `${n}: ` && d.textContent === `${n}: ${t}` &&
            (h === null || d.classList.contains('history') === h)), [name, text, history ?? null], { polling: 20 });
    } catch (e) {
        const have = await page.$$eval('#log .msg', (l) => l.map((d) => `${d.className} | ${d.textContent}`)).catch(() => '?');
        throw new Error(`#log should show "${name}: ${text}"${history === undefined ? '' : ` (history ${history})`}; ` +
            `has ${JSON.stringify(have)}: ${e.message.split('\n')[0]}`);
    }
}

const people = (page) => page.$$eval('#people li', (l) => l.map((li) => li.textContent).sort());

/** Resolves once the online list is exactly `names` (sorted). */
async function waitOnlineExactly(page, names) {
    const want = [...names].sort();
    try {
        await page.waitForFunction((w) => JSON.stringify([...document.querySelectorAll('#people li')]
            .map((li) => li.textContent).sort()) === JSON.stringify(w), want, { polling: 20 });
    } catch (e) {
        throw new Error(`online list should be ${JSON.stringify(want)}, is ${JSON.stringify(await people(page).catch(() => '?'))}: ` +
            e.message.split('\n')[0]);
    }
}

/** The page is laid out as a chat: a one-line header and form, the log taking the rest. */
async function checkLayout(page) {
    const box = async (sel) => (await page.locator(sel).boundingBox()) ?? { height: -1 };
    const vh = page.viewportSize().height;
    const [header, form, text, log] = [await box('header'), await box('#send'), await box('#text'), await box('#log')];
    const msg = `layout (viewport ${vh}px): header ${header.height}px, form ${form.height}px, #text ${text.height}px, #log ${log.height}px`;
    assert.ok(header.height > 0 && header.height <= 80, `${msg}: the header should be one line`);
    assert.ok(text.height > 0 && text.height <= 60, `${msg}: the input should be one line`);
    assert.ok(log.height >= vh / 2, `${msg}: the log should take most of the page`);
}

const lines = (page) => page.$$eval('#log .msg', (l) => l.map((d) => d.textContent));

test('chat demo: two browsers chat, see each other online, history after a reload', browserTest(srv, () => browser, async (s) => {
    await db.query("INSERT INTO pipes_settings (name, length) VALUES ('web_demo_chat', 50)");
    const alice = await s.page('alice', srv.httpUrl('/demo/chat.html?name=alice'));
    const bob = await s.page('bob', srv.httpUrl('/demo/chat.html?name=bob'));

    await waitOnline(alice, ['alice', 'bob']);
    await waitOnline(bob, ['alice', 'bob']);
    assert.equal(await alice.inputValue('#name'), 'alice');
    assert.equal(await bob.inputValue('#name'), 'bob');
    await alice.waitForFunction(() => document.getElementById('status').textContent === 'connected', null, { polling: 20 });

    // alice types and submits the form
    await alice.fill('#text', 'hello bob, this is alice ✓');
    await alice.press('#text', 'Enter');
    await waitLine(alice, 'alice', 'hello bob, this is alice ✓', { history: false });
    await waitLine(bob, 'alice', 'hello bob, this is alice ✓', { history: false });
    assert.equal(await alice.inputValue('#text'), '', 'the input is cleared after sending');
    // bob answers with the Send button
    await bob.fill('#text', 'hi alice');
    await bob.click('#send button');
    await waitLine(alice, 'bob', 'hi alice', { history: false });
    assert.deepEqual(await lines(alice), ['alice: hello bob, this is alice ✓', 'bob: hi alice']);
    assert.deepEqual(await lines(bob), ['alice: hello bob, this is alice ✓', 'bob: hi alice']);
    await screenshot(alice, 'alice');
    await screenshot(bob, 'bob');
    await checkLayout(alice);

    // reload bob: the earlier messages come back from the pipe's history, marked as history
    await bob.reload();
    await waitLine(bob, 'alice', 'hello bob, this is alice ✓', { history: true });
    await waitLine(bob, 'bob', 'hi alice', { history: true });
    assert.deepEqual(await lines(bob), ['alice: hello bob, this is alice ✓', 'bob: hi alice'],
        'each stored message is shown once after the reload');
    await waitOnline(bob, ['alice', 'bob']);
    await waitOnline(alice, ['alice', 'bob']);

    // and the chat goes on after the reload
    await alice.fill('#text', 'welcome back');
    await alice.press('#text', 'Enter');
    await waitLine(bob, 'alice', 'welcome back', { history: false });

    // carol comes and goes: alice and bob see her, then no longer
    const carol = await s.page('carol', srv.httpUrl('/demo/chat.html?name=carol'));
    await waitOnline(alice, ['alice', 'bob', 'carol']);
    await waitOnline(bob, ['alice', 'bob', 'carol']);
    await waitOnline(carol, ['alice', 'bob', 'carol']);
    await carol.close();
    await waitOnlineExactly(alice, ['alice', 'bob']);
    await waitOnlineExactly(bob, ['alice', 'bob']);
    // dave arrives later: he sees who is online now, not who was online some time ago
    const dave = await s.page('dave', srv.httpUrl('/demo/chat.html?name=dave'));
    await waitLine(dave, 'alice', 'welcome back', { history: true });
    await waitOnline(dave, ['alice', 'bob', 'dave']);
    await waitOnline(alice, ['alice', 'bob', 'dave']);
    // the track_ answer and the hellos have arrived by now (dave knows both names)
    assert.deepEqual(await people(dave), ['alice', 'bob', 'dave'], 'dave\'s online list');

    // the server restarts: the pages reconnect by themselves and the chat goes on
    await db.end().catch(() => db.destroy());
    s.expectOutage(); // a reconnect timer firing while the server is down logs a refusal
    await srv.restart();
    db = await mysql2Connect(srv);
    db.on('error', () => {});
    await waitSubscribers(db, 'web_demo_chat', 3); // alice, bob and dave are back
    await bob.fill('#text', 'still here after the restart');
    await bob.press('#text', 'Enter');
    await waitLine(alice, 'bob', 'still here after the restart', { history: false });
    await waitLine(dave, 'bob', 'still here after the restart', { history: false });
    await waitOnlineExactly(alice, ['alice', 'bob', 'dave']);

    const file = await screenshot(bob, 'bob-end');
    const keep = path.join(ROOT, 'var', 'screenshots');
    mkdirSync(keep, { recursive: true });
    copyFileSync(file, path.join(keep, 'demo-chat.png'));
    await screenshot(alice, 'alice-end');
    // The pipe's history (length 50) holds the chat, and only the chat: presence announcements
    // stored there would push the messages out of it, a few per page load.
    const [rows] = await db.query("SELECT event, message FROM pipes_messages WHERE name = 'web_demo_chat'");
    assert.deepEqual(rows.map((r) => [r.event, JSON.parse(r.message).text]),
        [['msg', 'hello bob, this is alice ✓'], ['msg', 'hi alice'], ['msg', 'welcome back'],
            ['msg', 'still here after the restart']],
        `stored history of web_demo_chat: ${JSON.stringify(rows)}`);
}));
