// Headless Chromium for the browser tests (browser_*.test.mjs): Debian's /usr/bin/chromium
// (scripts/deps.sh installs it) driven by playwright-core, which never downloads a browser.
//
//   const browser = await launchBrowser();
//   test('x', browserTest(srv, () => browser, async (s) => {
//       const page = await s.page('alice', url);      // a fresh context per page unless { context }
//       ...
//   }));
//
// Every page's console messages, page errors and crashes are collected; a failing test prints
// them (and the server's output, through srv.wrap). Contexts are closed whatever happens.
import { chromium } from 'playwright-core';
import { existsSync } from 'node:fs';
import crypto from 'node:crypto';

export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
export const WAIT_MS = 8000;

export async function launchBrowser() {
    if (!existsSync(CHROMIUM)) {
        throw new Error(`${CHROMIUM} does not exist (scripts/deps.sh installs Debian's chromium package)`);
    }
    return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 30_000 });
}

/** Console noise that says nothing about our code. */
const REFUSED_RECONNECT = /^WebSocket connection to 'wss?:\/\/[^']*' failed: Error in connection establishment: net::ERR_CONNECTION_REFUSED$/;
const BENIGN = [/favicon\.ico/, /Failed to load resource: the server responded with a status of 404.*favicon/];

/** The pages of one test: fresh contexts, collected logs, a report for failures. */
export class Session {
    constructor(browser) {
        this.browser = browser;
        this.contexts = [];
        this.logs = [];
        this.pageErrors = [];
        this.consoleErrors = [];
        this.outage = false;
    }

    /**
     * The test is about to stop the server on purpose: from now on, Chromium's own report of a
     * refused WebSocket reconnect ("WebSocket connection to 'ws://...' failed: ...
     * ERR_CONNECTION_REFUSED") is expected, logged, and not counted as a page error. Whether a
     * page's reconnect timer fires inside the outage depends only on timing, so without this a
     * restart test fails at random. Every other console error still counts.
     */
    expectOutage() {
        this.outage = true;
    }

    async context() {
        const ctx = await this.browser.newContext();
        this.contexts.push(ctx);
        return ctx;
    }

    /** A new page (in `context`, or in a fresh context) with its console collected; goes to url. */
    async page(label, url, { context } = {}) {
        const ctx = context ?? await this.context();
        const page = await ctx.newPage();
        page.setDefaultTimeout(WAIT_MS);
        page.on('console', (m) => {
            const line = `[${label}] console.${m.type()}: ${m.text()}`;
            this.logs.push(line);
            const refused = this.outage && REFUSED_RECONNECT.test(m.text());
            if (m.type() === 'error' && !refused && !BENIGN.some((re) => re.test(m.text() + ' ' + (m.location()?.url ?? '')))) {
                this.consoleErrors.push(line);
            }
        });
        page.on('pageerror', (e) => {
            const line = `[${label}] pageerror: ${e.stack ?? e}`;
            this.logs.push(line);
            this.pageErrors.push(line);
        });
        page.on('crash', () => {
            this.logs.push(`[${label}] page crashed`);
            this.pageErrors.push(`[${label}] page crashed`);
        });
        page.on('requestfailed', (r) => this.logs.push(`[${label}] request failed: ${r.url()} ${r.failure()?.errorText}`));
        page.on('websocket', (ws) => {
            this.logs.push(`[${label}] websocket open ${ws.url()}`);
            ws.on('close', () => this.logs.push(`[${label}] websocket closed ${ws.url()}`));
            ws.on('socketerror', (e) => this.logs.push(`[${label}] websocket error ${e}`));
        });
        if (url) {
            const resp = await page.goto(url);
            if (!resp || resp.status() !== 200) throw new Error(`[${label}] GET ${url}: status ${resp?.status()}`);
        }
        return page;
    }

    /** Throws if a page threw an uncaught error or logged console.error. */
    assertClean() {
        const bad = [...this.pageErrors, ...this.consoleErrors];
        if (bad.length) throw new Error(`errors in the pages:\n  ${bad.join('\n  ')}`);
    }

    report() {
        return `\n--- browser log (${this.logs.length} lines) ---\n${this.logs.slice(-200).join('\n')}\n--- end of browser log ---`;
    }

    async close() {
        await Promise.all(this.contexts.map((c) => c.close().catch(() => {})));
        this.contexts = [];
    }
}

/**
 * A test body with a Session: on failure the browser log is appended (and, through srv.wrap,
 * the server's output); the pages must end without page errors; the contexts are always closed.
 */
export function browserTest(srv, getBrowser, fn) {
    return srv.wrap(async (t) => {
        const s = new Session(getBrowser());
        try {
            await fn(s, t);
            s.assertClean();
        } catch (e) {
            if (e && typeof e === 'object') {
                try { e.message = `${e.message}${s.report()}`; } catch { /* read-only */ }
            }
            throw e;
        } finally {
            await s.close();
        }
    });
}

/** An HS256 JWT (the server's secret is [main] password + dev_id). */
export function signJwt(payload, secret) {
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(payload)}`;
    return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}

/** Resolves once pred() is truthy (polled every 20 ms); rejects after timeoutMs. */
export async function waitUntil(pred, { timeoutMs = WAIT_MS, what = 'condition' } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
        last = await pred();
        if (last) return last;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
    }
}

/** Resolves once the server counts `n` connections subscribed to `pipe` (CometQL `pipes`). */
export async function waitSubscribers(db, pipe, n) {
    let got;
    await waitUntil(async () => {
        const [rows] = await db.query('SELECT users FROM pipes WHERE name = ?', [pipe]);
        got = rows.length ? Number(rows[0].users) : 0;
        return got === n;
    }, { what: `${n} subscriber(s) on ${pipe} (have ${got})` }).catch((e) => {
        throw new Error(`${e.message} (last count ${got})`);
    });
}
