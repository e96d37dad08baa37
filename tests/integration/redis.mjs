// A real redis-server for the cluster tests: one process per test file on a private loopback
// port, with its append-only file in a fresh temp dir (appendfsync always, so a restart or a
// kill -9 keeps every write Redis acknowledged), and ccomet nodes that share it.
//
//   const redis = await startRedis();
//   const a = await startNode(redis), b = await startNode(redis);   // [store] type = redis
//   await redis.cli('PUBSUB', 'SHARDNUMSUB', channel);                // redis-cli, its stdout
//   await redis.kill9(); await redis.start();                         // same port, same data
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, run, startServer } from './harness.mjs';
import { waitUntil } from './wsclient.mjs';
import net from 'node:net';

const live = new Set();
process.on('exit', () => {
    for (const r of live) {
        try { r.proc.kill('SIGKILL'); } catch { /* gone */ }
    }
});

function portOpen(port) {
    return new Promise((resolve) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
    });
}

export class RedisServer {
    constructor({ cluster = false } = {}) {
        this.cluster = cluster;
    }

    async init() {
        this.dir = mkdtempSync(path.join(os.tmpdir(), 'ccomet-redis-'));
        this.port = await freePort();
        // the cluster bus defaults to port + 10000, impossible above 55535: name it
        if (this.cluster) this.busPort = await freePort();
        this.log = '';
    }

    async start() {
        const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
            '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--protected-mode', 'no',
            ...(this.cluster ? ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
                '--cluster-node-timeout', '2000', '--cluster-port', String(this.busPort)] : [])];
        this.proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
        live.add(this);
        this.proc.stdout.setEncoding('utf8').on('data', (d) => { this.log += d; });
        this.proc.stderr.setEncoding('utf8').on('data', (d) => { this.log += d; });
        this.closed = new Promise((resolve) => this.proc.on('close', (code, signal) => {
            live.delete(this);
            this.exit = { code, signal };
            resolve(this.exit);
        }));
        this.exit = null;
        await waitUntil(async () => {
            if (this.exit) throw new Error(`redis-server exited (${JSON.stringify(this.exit)})\n${this.log}`);
            return portOpen(this.port);
        }, { timeoutMs: 10000, what: 'redis-server to accept connections' });
        // it accepts before it has loaded its append-only file: wait until it answers
        await waitUntil(async () => (await this.cli('PING')).trim() === 'PONG',
            { timeoutMs: 10000, what: 'redis-server to answer PING' });
        return this;
    }

    /** redis-cli against this server; resolves to its stdout. */
    async cli(...args) {
        const r = await run('redis-cli', ['-p', String(this.port), ...args], { timeoutMs: 10000 });
        return r.stdout;
    }

    async stop() {
        if (!this.proc || this.exit) return;
        this.proc.kill('SIGTERM');
        await this.closed;
    }

    async kill9() {
        this.proc.kill('SIGKILL');
        await this.closed;
    }

    async cleanup() {
        await this.stop();
        rmSync(this.dir, { recursive: true, force: true });
    }
}

export async function startRedis() {
    const r = new RedisServer();
    await r.init();
    return r.start();
}

/**
 * A Redis Cluster of `masters` real redis-servers on loopback (no replicas), created with
 * redis-cli --cluster create; resolves once every node says cluster_state:ok.
 */
export async function startRedisCluster(masters = 3, { replicas = 0 } = {}) {
    const nodes = [];
    for (let i = 0; i < masters * (1 + replicas); i++) {
        const r = new RedisServer({ cluster: true });
        await r.init();
        nodes.push(await r.start());
    }
    const create = await run('redis-cli', ['--cluster', 'create',
        ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { timeoutMs: 30000 });
    if (create.code !== 0) throw new Error(`redis-cli --cluster create failed\n${create.stdout}\n${create.stderr}`);
    for (const n of nodes) {
        await waitUntil(async () => /cluster_state:ok/.test(await n.cli('CLUSTER', 'INFO')),
            { timeoutMs: 20000, what: `cluster_state:ok on ${n.port}` });
    }
    if (replicas) { // every replica in sync with its master before the tests
        await waitUntil(async () => {
            for (const n of nodes) {
                const info = await n.cli('INFO', 'replication');
                if (/role:slave/.test(info) && !/master_link_status:up/.test(info)) return false;
            }
            return true;
        }, { timeoutMs: 20000, what: 'replicas in sync' });
    }
    return {
        nodes,
        seeds: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
        /** The node that owns `slot` now (from CLUSTER NODES: id addr@cport flags ... ranges). */
        async owner(slot) {
            const live = nodes.find((n) => !n.exit);
            const out = await live.cli('CLUSTER', 'NODES');
            for (const line of out.trim().split('\n')) {
                const f = line.trim().split(' ');
                if (!f[2] || !f[2].includes('master') || f[2].includes('fail')) continue;
                const port = Number(f[1].split('@')[0].split(':').pop());
                for (const range of f.slice(8)) {
                    if (range.startsWith('[')) continue; // a slot being migrated
                    const [lo, hi = lo] = range.split('-').map(Number);
                    if (slot >= lo && slot <= hi) return nodes.find((n) => n.port === port);
                }
            }
            return null;
        },
        async cleanup() {
            for (const n of nodes) await n.cleanup();
        },
    };
}

/** Redis Cluster's hash slot of a key (CRC16/XMODEM of its hash tag). */
export function keySlot(key) {
    const open = key.indexOf('{');
    if (open >= 0) {
        const close = key.indexOf('}', open + 1);
        if (close > open + 1) key = key.slice(open + 1, close);
    }
    let crc = 0;
    for (const b of Buffer.from(key)) {
        crc ^= b << 8;
        for (let k = 0; k < 8; k++) crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc % 16384;
}

/** A ccomet node on a Redis Cluster (seeds: "host:port,host:port,..."). */
export function startClusterNode(seeds, { prefix = 'ccomet:', extraConf = '', ...opts } = {}) {
    return startServer({
        ...opts,
        extraConf: `[store]\ntype = redis\n[redis]\nserver = ${seeds}\ncluster = yes\n` +
            `prefix = ${prefix}\ntimeout_ms = 5000\n${extraConf}`,
    });
}

/** A ccomet node on [store] type = redis against `redis`, keys under `prefix`. */
export function startNode(redis, { prefix = 'ccomet:', extraConf = '', ...opts } = {}) {
    return startServer({
        ...opts,
        extraConf: `[store]\ntype = redis\n[redis]\nserver = 127.0.0.1:${redis.port}\n` +
            `prefix = ${prefix}\ntimeout_ms = 5000\n${extraConf}`,
    });
}

/** Waits until `n` nodes hold a shard subscription to the channel of pipe `pipe` (dev_id dev). */
export async function waitSubscribers(redis, pipe, n, { dev = 0, prefix = 'ccomet:' } = {}) {
    const channel = `${prefix}{t${dev}}:c:${pipe}`;
    await waitUntil(async () => {
        const out = (await redis.cli('PUBSUB', 'SHARDNUMSUB', channel)).trim().split('\n');
        return Number(out[1]) >= n;
    }, { timeoutMs: 5000, what: `${n} node(s) subscribed to ${channel}` });
}
