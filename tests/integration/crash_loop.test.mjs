// kill -9 at random moments under a mixed write load, 100 times (the reliability issue: "nothing
// acknowledged is lost"). Each round starts ccomet on the same store, runs four writers that
// INSERT into every stored table (users_auth, users_data, revoked_tokens, users_messages queued
// for an offline user, pipes_messages into a trust_ pipe's history, pipes_settings, root's
// tenants credentials) as fast as
// their OKs come back, and kills the server after a random 20..400 ms. After the restart, every
// write that was acknowledged is there, and no write is there twice (writes cut off by the kill
// may be present or absent, but once at most). conference rows need a media node and are covered
// by the Video API's own failover tests. CRASH_ROUNDS overrides the 100 rounds.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import { mysql2Connect } from './clients.mjs';
import crypto from 'node:crypto';

const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 100);
const WRITERS = 4;
const srv = await startServer({ logLevel: 'warn' });
after(() => srv.stop());

async function connect() {
    const c = await mysql2Connect(srv);
    c.on('error', () => { /* the server is killed under open connections */ });
    return c;
}

const newAcked = () => ({ auth: [], data: [], tok: [], umsg: [], pmsg: [], pset: [], tenant: [] });
/** What SELECT shows of a tenant password: MySQL's * + SHA1(SHA1(pw)). */
const shownPassword = (pw) => `*${crypto.createHash('sha1').update(crypto.createHash('sha1').update(pw).digest()).digest('hex').toUpperCase()}`;
const OFFLINE_USER = 900000; // + round: a user who is never online, whose queue grows

/** One writer: INSERTs until its connection dies; records what was acknowledged. */
async function writer(r, w, stop, acked) {
    let c;
    try { c = await connect(); } catch { return; }
    for (let i = 0; !stop.killed; i++) {
        const id = r * 100000 + w * 10000 + i;
        const tag = `${r}_${w}_${i}`;
        try {
            switch (i % 7) {
                case 0: await c.query('INSERT INTO users_auth (id, hash) VALUES (?, ?)', [id, `a${tag}`]); acked.auth.push([id, `a${tag}`]); break;
                case 1: await c.query('INSERT INTO users_data (id, data) VALUES (?, ?)', [id, `d${tag}`]); acked.data.push([id, `d${tag}`]); break;
                case 2: await c.query('INSERT INTO revoked_tokens (token) VALUES (?)', [`t${tag}`]); acked.tok.push(`t${tag}`); break;
                case 3: await c.query('INSERT INTO users_messages (id, event, message) VALUES (?, ?, ?)', [OFFLINE_USER + r, 'e', `m${tag}`]); acked.umsg.push(`m${tag}`); break;
                case 4: await c.query('INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)', [`trust_crash_${r}`, 'e', `p${tag}`]); acked.pmsg.push(`p${tag}`); break;
                case 6: await c.query('INSERT INTO tenants (dev_id, password) VALUES (?, ?)', [id, `tenant_${tag}`]); acked.tenant.push([id, `tenant_${tag}`]); break;
                default: await c.query('INSERT INTO pipes_settings (name, length) VALUES (?, ?)', [`ps_${tag}`, 1 + (i % 50)]); acked.pset.push([`ps_${tag}`, 1 + (i % 50)]); break;
            }
        } catch {
            break; // killed: this write was not acknowledged
        }
    }
    c.destroy();
}

const chunks = (a, n) => Array.from({ length: Math.ceil(a.length / n) }, (_, i) => a.slice(i * n, (i + 1) * n));

/** Checks round r's acknowledged writes (and that nothing of the round is there twice). */
async function verify(db, r, acked) {
    for (const part of chunks(acked.auth, 1000)) {
        const [rows] = await db.query(`SELECT id, hash FROM users_auth WHERE id IN (${part.map((x) => x[0]).join(',')})`);
        const got = new Map(rows.map((x) => [Number(x.id), x.hash]));
        for (const [id, hash] of part) assert.equal(got.get(id), hash, `acknowledged users_auth ${id} lost`);
    }
    for (const part of chunks(acked.data, 1000)) {
        const [rows] = await db.query(`SELECT id, data FROM users_data WHERE id IN (${part.map((x) => x[0]).join(',')})`);
        const got = new Map(rows.map((x) => [Number(x.id), x.data]));
        for (const [id, data] of part) assert.equal(got.get(id), data, `acknowledged users_data ${id} lost`);
    }
    for (const part of chunks(acked.tok, 1000)) {
        const [toks] = await db.query(`SELECT token FROM revoked_tokens WHERE token IN (${part.map((t) => `'${t}'`).join(',')})`);
        const tokSet = new Set(toks.map((x) => x.token));
        assert.equal(tokSet.size, toks.length, 'a revoked token is stored twice');
        for (const t of part) assert.ok(tokSet.has(t), `acknowledged revoked token ${t} lost`);
    }
    const [um] = await db.query(`SELECT message FROM users_messages WHERE id = ${OFFLINE_USER + r}`);
    const umCount = new Map();
    for (const x of um) umCount.set(x.message, (umCount.get(x.message) ?? 0) + 1);
    for (const [m, n] of umCount) assert.equal(n, 1, `queued message ${m} stored ${n} times`);
    for (const m of acked.umsg) assert.ok(umCount.has(m), `acknowledged queued message ${m} lost`);
    const [pm] = await db.query(`SELECT id, message FROM pipes_messages WHERE name = 'trust_crash_${r}'`);
    const pmCount = new Map();
    for (const x of pm) pmCount.set(x.message, (pmCount.get(x.message) ?? 0) + 1);
    for (const [m, n] of pmCount) assert.equal(n, 1, `pipe message ${m} stored ${n} times`);
    assert.equal(new Set(pm.map((x) => Number(x.id))).size, pm.length, 'a message id is used twice');
    const ids = pm.map((x) => Number(x.id));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'history comes in id order');
    for (const m of acked.pmsg) assert.ok(pmCount.has(m), `acknowledged pipe message ${m} lost`);
    for (const part of chunks(acked.pset, 1000)) {
        const [rows] = await db.query(`SELECT name, length FROM pipes_settings WHERE name IN (${part.map((x) => `'${x[0]}'`).join(',')})`);
        const got = new Map(rows.map((x) => [x.name, Number(x.length)]));
        for (const [name, len] of part) assert.equal(got.get(name), len, `acknowledged pipes_settings ${name} lost`);
    }
    for (const part of chunks(acked.tenant, 1000)) {
        const [rows] = await db.query(`SELECT dev_id, password FROM tenants WHERE dev_id IN (${part.map((x) => x[0]).join(',')})`);
        const got = new Map(rows.map((x) => [Number(x.dev_id), x.password]));
        for (const [dev, pw] of part) assert.equal(got.get(dev), shownPassword(pw), `acknowledged tenant credentials of ${dev} lost`);
    }
}

test(`kill -9 at random moments under a mixed write load, ${ROUNDS} rounds: every acknowledged write survives, none twice`, srv.wrap(async () => {
    let total = 0;
    const rounds = [];
    for (let r = 1; r <= ROUNDS; r++) {
        const stop = { killed: false };
        const acked = newAcked();
        rounds.push(acked);
        const writers = Array.from({ length: WRITERS }, (_, w) => writer(r, w, stop, acked));
        await new Promise((res) => setTimeout(res, 20 + Math.floor(Math.random() * 380)));
        stop.killed = true;
        await srv.kill9();
        await Promise.all(writers);
        total += Object.values(acked).reduce((n, a) => n + a.length, 0);
        await srv.start();
        const db = await connect();
        try {
            await verify(db, r, acked);
        } catch (e) {
            e.message = `round ${r}: ${e.message}`;
            throw e;
        } finally {
            db.destroy();
        }
    }
    // and what every earlier round acknowledged survived the later kills too
    const db = await connect();
    try {
        for (let r = 1; r <= ROUNDS; r++) await verify(db, r, rounds[r - 1]);
    } finally {
        db.destroy();
    }
    assert.ok(total > ROUNDS * 5, `the load acknowledged only ${total} writes in ${ROUNDS} rounds`);
    console.log(`# crash loop: ${ROUNDS} kills, ${total} acknowledged writes, all present, none twice`);
}));
