// Unit tests of web/CometServerApi.js that need no server. The client gets a fake WebSocket
// class, a fake clock and, for the tab-sharing tests, fake navigator.locks and BroadcastChannel.
// All are passed through start() options.
//
//   node --test tests/js/
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import api from '../../web/CometServerApi.js';

const { CometServer } = api;
const SRC = fileURLToPath(new URL('../../web/CometServerApi.js', import.meta.url));

// ---- fakes ----------------------------------------------------------------------------------------

/** A clock whose timers run only when tick() moves time forward. */
class FakeClock {
    constructor() {
        this.t = 0;
        this.q = [];
        this.seq = 0;
        this.setTimeout = (fn, ms) => {
            const id = ++this.seq;
            this.q.push({ id, at: this.t + Math.max(0, ms | 0), fn });
            return id;
        };
        this.clearTimeout = (id) => {
            this.q = this.q.filter((x) => x.id !== id);
        };
        this.now = () => this.t;
    }
    tick(ms) {
        const end = this.t + ms;
        for (;;) {
            this.q.sort((a, b) => a.at - b.at || a.id - b.id);
            const next = this.q[0];
            if (!next || next.at > end) break;
            this.q.shift();
            this.t = next.at;
            next.fn();
        }
        this.t = end;
    }
}

/** A WebSocket class that records instances and what was sent; tests drive the events. */
function makeWS() {
    class FakeWS {
        constructor(url) {
            this.url = url;
            this.sent = [];
            this.readyState = 0;
            this.closedByClient = false;
            FakeWS.instances.push(this);
        }
        send(text) {
            if (this.readyState !== 1) throw new Error('not open');
            this.sent.push(text);
        }
        close() {
            this.closedByClient = true;
            this.readyState = 3;
        }
        // test side
        open() {
            this.readyState = 1;
            this.onopen && this.onopen({});
        }
        recv(...objs) {
            const text = objs.map((o) => (typeof o === 'string' ? o : JSON.stringify(o))).join('\n');
            this.onmessage && this.onmessage({ data: text });
        }
        drop() {
            this.readyState = 3;
            this.onclose && this.onclose({ code: 1006 });
        }
    }
    FakeWS.instances = [];
    return FakeWS;
}

/** navigator.locks: exclusive locks granted in request order; supports opts.signal. */
class FakeLocks {
    constructor() {
        this.queues = new Map();
    }
    request(name, opts, cb) {
        return new Promise((resolve, reject) => {
            let q = this.queues.get(name);
            if (!q) this.queues.set(name, (q = []));
            const entry = { cb, resolve, reject };
            if (opts && opts.signal) {
                opts.signal.addEventListener('abort', () => {
                    const i = q.indexOf(entry);
                    if (i > 0) {
                        q.splice(i, 1);
                        reject(new Error('AbortError'));
                    }
                });
            }
            q.push(entry);
            if (q.length === 1) this._grant(name);
        });
    }
    _grant(name) {
        const q = this.queues.get(name);
        const e = q[0];
        if (!e) return;
        Promise.resolve(e.cb({ name })).then((v) => {
            q.shift();
            e.resolve(v);
            this._grant(name);
        });
    }
}

/** BroadcastChannel: asynchronous delivery to every other instance with the same name. */
function makeBC() {
    const registry = new Map();
    return class FakeBC {
        constructor(name) {
            this.name = name;
            if (!registry.has(name)) registry.set(name, new Set());
            registry.get(name).add(this);
        }
        postMessage(m) {
            const copy = structuredClone(m);
            for (const other of registry.get(this.name)) {
                if (other !== this) setImmediate(() => other.onmessage && other.onmessage({ data: copy }));
            }
        }
        close() {
            registry.get(this.name).delete(this);
        }
    };
}

const flush = async (n = 5) => {
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

function setup(extra = {}) {
    const clock = extra.clock || new FakeClock();
    const WS = extra.WS || makeWS();
    const c = new CometServer();
    const opts = Object.assign(
        { dev_id: 7, user_id: 42, user_key: 'key42', node: 'h:1', WebSocket: WS, timers: clock, now: clock.now, random: () => 0.5, quiet: true },
        extra.opts || {},
    );
    return { c, clock, WS, opts, last: () => WS.instances[WS.instances.length - 1] };
}

function started(extra) {
    const s = setup(extra);
    s.c.start(s.opts);
    return s;
}

function collect(c, name) {
    const got = [];
    c.subscription(name, (e) => got.push(e));
    return got;
}

const markerOf = (cmd) => cmd.split('\n')[2];

// ---- URL and options ------------------------------------------------------------------------

test('URL carries the key, ids, version, a 32-hex uuid and api=js', () => {
    const { c, last } = started();
    const uuid = c.getUUID();
    assert.match(uuid, /^[0-9a-f]{32}$/);
    assert.equal(last().url, `ws://h:1/ws/sesion=key42&myid=42&devid=7&v=4.09&uuid=${uuid}&api=js&ack=1&marker=1`);
    assert.equal(c.getUserId(), 42);
    assert.equal(c.getDevId(), 7);
    c.stop();
    c.start(); // a restart keeps the options and the uuid
    assert.equal(c.getUUID(), uuid);
    assert.ok(last().url.includes(`sesion=key42&myid=42&devid=7&v=4.09&uuid=${uuid}&`));
    c.stop();
});

test('URL options: wss, a scheme in the node, a given uuid, defaults', () => {
    let s = started({ opts: { wss: true, uuid: 'a'.repeat(32) } });
    assert.equal(s.last().url, `wss://h:1/ws/sesion=key42&myid=42&devid=7&v=4.09&uuid=${'a'.repeat(32)}&api=js&ack=1&marker=1`);
    s.c.stop();
    s = started({ opts: { node: 'wss://x.example:9/comet-server/' } });
    assert.ok(s.last().url.startsWith('wss://x.example:9/comet-server/ws/sesion=key42&'));
    s.c.stop();
    s = started({ opts: { node: undefined, dev_id: undefined, user_id: undefined, user_key: undefined } });
    assert.match(s.last().url, /^ws:\/\/localhost:8087\/ws\/sesion=&myid=0&devid=0&v=4\.09&uuid=[0-9a-f]{32}&api=js&ack=1&marker=1$/);
    s.c.stop();
    // characters that would break the URL are escaped; JWT/hash characters are not
    s = started({ opts: { user_key: 'eyJ.a-b_c=&#x' } });
    assert.ok(s.last().url.includes('sesion=eyJ.a-b_c=%26%23x&myid='));
    s.c.stop();
});

test('multi-node opens one socket per node; roundrobin opens one (user_id % n)', () => {
    let s = started({ opts: { node: ['a:1', 'b:2'] } });
    assert.deepEqual(s.WS.instances.map((w) => w.url.split('/ws/')[0]), ['ws://a:1', 'ws://b:2']);
    s.c.stop();
    s = started({ opts: { nodes: 'a:1,b:2,c:3', roundrobin: true, user_id: 43 } });
    assert.equal(s.WS.instances.length, 1);
    assert.ok(s.last().url.startsWith('ws://b:2/ws/')); // 43 % 3 == 1
    s.c.stop();
});

test('stop() closes the sockets and no reconnect follows', () => {
    const { c, clock, WS, last } = started();
    last().open();
    c.stop();
    assert.equal(last().closedByClient, true);
    clock.tick(60000);
    assert.equal(WS.instances.length, 1);
});

// ---- subscriptions ----------------------------------------------------------------------------

test('subscription list: full list, pipe.event sent as pipe, local names not sent, debounced', () => {
    const clock = new FakeClock();
    const noop = () => {};
    const t = started({ clock });
    t.c.subscription('web_a', noop);
    t.c.subscription('web_b.ev', noop);
    t.c.subscription('msg.sys_sipCall', noop);
    t.c.subscription('#web_c', noop);
    t.c.subscription('private_z', noop);
    t.c.subscription('user_status_5', noop);
    t.c.subscription('x', noop);
    t.c.subscription('bad name', noop);
    const ws = t.last();
    ws.open(); // on open the list goes out at once
    assert.deepEqual(ws.sent, ['subscription\nweb_a\nweb_b\nuser_status_5\nprivate_z']);

    const id = t.c.subscription('web_d', noop);
    t.c.subscription('web_e.z', noop);
    t.c.subscription('web_a.other', noop); // web_a is already there
    clock.tick(49);
    assert.equal(ws.sent.length, 1);
    clock.tick(1);
    assert.deepEqual(ws.sent.slice(1), ['subscription\nweb_a\nweb_b\nuser_status_5\nweb_d\nweb_e\nprivate_z']);

    t.c.unsubscription(id);
    t.c.unsubscription('web_a'); // by name: only the 'web_a' callbacks, web_a.other stays
    clock.tick(50);
    // the order follows the subscriptions: web_a is now there through 'web_a.other'
    assert.deepEqual(ws.sent.slice(2), ['subscription\nweb_b\nuser_status_5\nweb_e\nweb_a\nprivate_z']);
    t.c.unsubscription('web_a.other');
    clock.tick(50);
    assert.deepEqual(ws.sent.slice(3), ['subscription\nweb_b\nuser_status_5\nweb_e\nprivate_z']);
    // a change that leaves the list as it was sends nothing
    const again = t.c.subscription('web_b.more', noop);
    t.c.unsubscription(again);
    clock.tick(100);
    assert.equal(ws.sent.length, 4);
    t.c.stop();
});

test('unsubscribing the last pipe sends an empty list; at most 32 pipes are sent', () => {
    const { c, clock, last } = started();
    const ws = last();
    ws.open();
    assert.deepEqual(ws.sent, []); // nothing to subscribe to yet
    const id = c.subscription('web_a', () => {});
    clock.tick(50);
    c.unsubscription(id);
    clock.tick(50);
    assert.deepEqual(ws.sent, ['subscription\nweb_a', 'subscription\n']);
    for (let i = 0; i < 40; i++) c.subscription('web_p' + i, () => {});
    clock.tick(50);
    assert.equal(ws.sent[2].split('\n').length, 33);
    c.stop();
});

test('subscription_once runs once; a lone function gets every message', () => {
    const { c, last } = started();
    const once = [];
    const all = [];
    c.subscription_once('web_a', (e) => once.push(e.data));
    c.subscription((e) => all.push(e.server_info.pipe));
    const ws = last();
    ws.open();
    ws.recv({ pipe: 'web_a', event: 'e', data: '1', id: 1 }, { pipe: 'web_a', event: 'e', data: '2', id: 2 }, { pipe: 'msg', event: 'x', data: 'p' });
    assert.deepEqual(once, [1]);
    assert.deepEqual(all, ['web_a', 'web_a', 'msg']);
    c.stop();
});

// ---- incoming envelopes -------------------------------------------------------------------------

test('serverInfo: authorization state, real key, callbacks on change only, start callback', async () => {
    const s = setup();
    let startArg;
    const ok = [];
    const fail = [];
    const authEvents = [];
    s.c.onAuthSuccess(() => ok.push(1));
    s.c.onAuthFalill(() => fail.push(1));
    s.c.on('auth', (a) => authEvents.push(a));
    s.c.start(s.opts, (a) => (startArg = a));
    assert.equal(s.c.isAuthorized(), undefined);
    const ws = s.last();
    ws.open();
    ws.recv({ data: 'ab12', pipe: 'sys', event: 'serverInfo', authorized: true, server: 'x', message_send_time: 1 });
    assert.equal(s.c.isAuthorized(), true);
    assert.equal(s.c.getRealUserKey(), 'ab12');
    assert.deepEqual(startArg, { authorized: true });
    ws.recv({ data: 'ab12', pipe: 'sys', event: 'serverInfo', authorized: true }); // a reconnect
    assert.deepEqual(ok, [1]);
    // registering after the fact calls back (asynchronously)
    let late = 0;
    s.c.onAuthSuccess(() => late++);
    await flush(1);
    assert.equal(late, 1);
    ws.recv({ data: '', pipe: 'sys', event: 'serverInfo', authorized: false });
    assert.equal(s.c.isAuthorized(), false);
    assert.deepEqual(fail, [1]);
    assert.deepEqual(authEvents, [true, false]);
    // a numeric-looking key stays a string
    ws.recv({ data: '12345', pipe: 'sys', event: 'serverInfo', authorized: true });
    assert.equal(s.c.getRealUserKey(), '12345');
    s.c.stop();
});

test('pipe messages: callback arguments for pipe and pipe.event', () => {
    const { c, last } = started();
    const byPipe = collect(c, 'web_a');
    const byEvent = collect(c, 'web_a.ev');
    const other = collect(c, 'web_a.other');
    const ws = last();
    ws.open();
    ws.recv({ data: '{"x":1}', event: 'ev', pipe: 'web_a', user_id: 5, id: 10, message_send_time: 1700000000 });
    assert.equal(byPipe.length, 1);
    assert.equal(byEvent.length, 1);
    assert.equal(other.length, 0);
    assert.deepEqual(byPipe[0], {
        data: { x: 1 },
        server_info: { user_id: 5, pipe: 'web_a', event: 'ev', history: false, marker: undefined, uuid: undefined, id: 10, fromQueue: false, message_send_time: 1700000000 },
    });
    c.stop();
});

test('queued private messages (queue_id) are acked once per frame, and one resent after a reconnect is shown once', async () => {
    const { c, last } = started();
    const all = collect(c, 'msg');
    const ws = last();
    ws.open();
    ws.recv({ data: 'q1', event: 'e', fromQueue: true, queue_id: 11, pipe: 'msg' },
        { data: 'q2', event: 'e', fromQueue: true, queue_id: 12, pipe: 'msg' });
    ws.recv({ data: 'live', event: 'e', pipe: 'msg' });
    await Promise.resolve();
    assert.deepEqual(all.map((m) => m.data), ['q1', 'q2', 'live']);
    assert.deepEqual(ws.sent.filter((t) => t.startsWith('msg_ack')), ['msg_ack\n11\n12'], 'one ack for the two queued ones, none for the live one');
    // the server resends what it had not seen acked (the ack may have been lost with the socket)
    ws.recv({ data: 'q2', event: 'e', fromQueue: true, queue_id: 12, pipe: 'msg' },
        { data: 'q3', event: 'e', fromQueue: true, queue_id: 13, pipe: 'msg' });
    await Promise.resolve();
    assert.deepEqual(all.map((m) => m.data), ['q1', 'q2', 'live', 'q3'], 'q2 is not shown twice');
    assert.deepEqual(ws.sent.filter((t) => t.startsWith('msg_ack')).slice(1), ['msg_ack\n12\n13'], 'but acked again');
    c.stop();
});

test('private messages: pipe msg (or none) reaches msg and msg.<event>', () => {
    const { c, last } = started();
    const all = collect(c, 'msg');
    const call = collect(c, 'msg.sys_sipCall');
    const ws = last();
    ws.open();
    ws.recv({ data: '{"message":"m"}', event: 'sys_sipCall', fromQueue: true, pipe: 'msg', message_send_time: 5 });
    ws.recv({ data: 'hello', event: 'chat' });
    assert.equal(all.length, 2);
    assert.equal(call.length, 1);
    assert.deepEqual(call[0].data, { message: 'm' });
    assert.equal(call[0].server_info.fromQueue, true);
    assert.equal(call[0].server_info.history, false); // fromQueue on msg is the offline queue
    assert.equal(all[1].data, 'hello');
    assert.equal(all[1].server_info.pipe, 'msg');
    c.stop();
});

test('#pipe receives the _answer_to_<pipe> answers to web_pipe_send', () => {
    const { c, last } = started();
    const got = collect(c, '#web_a');
    const ws = last();
    ws.open();
    ws.recv({ data: { number_messages: 2, message: '{"a":1}' }, event: 'answer', pipe: '_answer_to_web_a', message_send_time: 1 });
    assert.equal(got.length, 1);
    assert.deepEqual(got[0].data, { number_messages: 2, message: '{"a":1}' });
    assert.equal(ws.sent.length, 0); // "#..." is local, nothing subscribed on the server
    c.stop();
});

test('count_users_in_pipe: command, object and array answer shapes, once only', () => {
    const { c, last } = started();
    const ws = last();
    ws.open();
    const got = [];
    assert.equal(c.count_users_in_pipe('web_a', (r) => got.push(r)), true);
    const m1 = markerOf(ws.sent[0]);
    assert.equal(ws.sent[0], `pipe_count\nweb_a\n${m1}\n`);
    assert.match(m1, /^[A-Za-z0-9]+$/);
    c.count_users_in_pipe('track_b', (r) => got.push(r));
    const m2 = markerOf(ws.sent[1]);
    assert.notEqual(m1, m2);
    ws.recv({ data: { user_in_pipe: 3 }, event: 'user_in_pipe', marker: m1, pipe: '_answer_pipe_count' });
    ws.recv({ data: ['user_in_pipe', 4], event: 'user_in_pipe', marker: m2, pipe: '_answer_pipe_count' });
    ws.recv({ data: ['user_in_pipe', 9], event: 'user_in_pipe', marker: m2, pipe: '_answer_pipe_count' });
    assert.deepEqual(got.map((r) => r.data), [{ user_in_pipe: 3 }, { user_in_pipe: 4 }]);
    assert.equal(got[1].server_info.marker, m2);
    c.stop();
});

test('getTrackPipeUsers and getUserData: commands and answers', () => {
    const { c, last } = started();
    const ws = last();
    ws.open();
    const users = [];
    const data = [];
    assert.equal(c.getTrackPipeUsers('web_x', () => {}), false); // not a track_ pipe
    c.getTrackPipeUsers('track_room', (r) => users.push(r.data));
    c.getUserData(15, (r) => data.push(r.data));
    const [cmd1, cmd2] = ws.sent;
    const mt = cmd1.split('\n')[2];
    assert.equal(cmd1, `track_pipe_users\ntrack_room\n${mt}`);
    const [, mu, uid] = cmd2.split('\n');
    assert.equal(cmd2, `user_data\n${mu}\n15`);
    assert.equal(uid, '15');
    ws.recv({ data: [{ user_id: 1, uuid: 'u1' }], pipe: '_answer', event: 'answer', marker: mt, _info: 'answer for track_pipe_users' });
    ws.recv({ data: { user_data: 'hi', user_id: 15 }, pipe: '_answer', event: 'answer', marker: mu });
    assert.deepEqual(users, [[{ user_id: 1, uuid: 'u1' }]]);
    assert.deepEqual(data, [{ user_data: 'hi', user_id: 15 }]);
    c.stop();
});

test('track_ presence events and user_status_<id> online/offline', () => {
    const { c, last } = started();
    const pres = collect(c, 'track_room.subscription');
    const st = collect(c, 'user_status_9');
    const ws = last();
    ws.open();
    ws.recv({ data: { user_id: 3, uuid: 'abc' }, event: 'subscription', pipe: 'track_room' });
    ws.recv({ data: { user_id: 3, uuid: 'abc' }, event: 'unsubscription', pipe: 'track_room' });
    ws.recv({ data: 'online', event: 'online', pipe: 'user_status_9' });
    assert.deepEqual(pres.map((e) => e.data), [{ user_id: 3, uuid: 'abc' }]);
    assert.deepEqual(st.map((e) => [e.data, e.server_info.event]), [['online', 'online']]);
    c.stop();
});

test('sys errors fire on("error"); several envelopes in one frame; bad lines are skipped', () => {
    const { c, last } = started();
    const errs = [];
    c.on('error', (e) => errs.push(e));
    const got = collect(c, 'web_a');
    const ws = last();
    ws.open();
    ws.onmessage({
        data: JSON.stringify({ data: { number_messages: -1, error: 'Invalid pipe name length' }, event: 'error', pipe: 'sys' }) +
            '\nnot json\n' + JSON.stringify({ pipe: 'web_a', event: 'e', data: 'x', id: 1 }) + '\n',
    });
    assert.deepEqual(errs, [{ number_messages: -1, error: 'Invalid pipe name length' }]);
    assert.equal(got.length, 1);
    c.stop();
});

test('data parsing: exact text from ccomet, unescaping only for old servers', () => {
    const { parseData } = CometServer._internal;
    assert.deepEqual(parseData('{"a":1}', false), { a: 1 });
    assert.equal(parseData('123', false), 123);
    assert.equal(parseData('hello', true), 'hello');
    assert.equal(parseData('C:\\path', false), 'C:\\path');
    assert.deepEqual(parseData({ a: 1 }, true), { a: 1 });
    // MySQL-escaped JSON from CppComet
    assert.deepEqual(parseData('{\\"a\\":\\"it\\\'s\\"}', true), { a: "it's" });
    assert.deepEqual(parseData('{\\"a\\":\\"q\\\\\\"q\\"}', true), { a: 'q"q' });
    assert.equal(parseData("it\\'s", true), "it's");

    const { c, last } = started();
    const got = collect(c, 'web_a');
    const ws = last();
    ws.open();
    ws.recv({ pipe: 'web_a', event: 'e', data: '{\\"a\\":1}' }); // no id: an old server
    ws.recv({ pipe: 'web_a', event: 'e', data: 'C:\\dir', id: 4 }); // ccomet: exact
    ws.recv({ pipe: 'web_a', event: 'e', data: 'D:\\dir' }); // no id, but this node sends ids
    assert.deepEqual(got.map((e) => e.data), [{ a: 1 }, 'C:\\dir', 'D:\\dir']);
    c.stop();

    // a ccomet serverInfo marks the node exact before any id arrives (the offline queue has none)
    const s2 = started();
    const priv = collect(s2.c, 'msg');
    s2.last().open();
    s2.last().recv({ data: 'h', pipe: 'sys', event: 'serverInfo', authorized: true, server: 'ccomet 0.1.0' },
        { data: 'E:\\dir', event: 'm', fromQueue: true, pipe: 'msg' });
    assert.deepEqual(priv.map((e) => e.data), ['E:\\dir']);
    s2.c.stop();
});

// ---- de-duplication ---------------------------------------------------------------------------

test('de-duplication by (pipe, id)', () => {
    const { c, last } = started();
    const a = collect(c, 'web_a');
    const b = collect(c, 'web_b');
    const ws = last();
    ws.open();
    ws.recv({ pipe: 'web_a', event: 'e', data: '1', id: 7 });
    ws.recv({ pipe: 'web_a', event: 'e', data: '1', id: 7 });
    ws.recv({ pipe: 'web_b', event: 'e', data: '1', id: 7 }); // same id, other pipe
    ws.recv({ pipe: 'web_a', event: 'e', data: '1', id: 8 }); // same content, new id
    assert.equal(a.length, 2);
    assert.equal(b.length, 1);
    c.stop();
});

test('multi_web_pipe_send: 3 copies 1 s apart with one _cometApi_uuid; receivers show one', () => {
    const { c, clock, last } = started();
    const ws = last();
    ws.open();
    const uuid = c.multi_web_pipe_send('web_call', 'ping', { status: 'ping' });
    assert.match(uuid, /^jsapi[A-Za-z0-9]{11}$/);
    assert.equal(ws.sent.length, 1);
    clock.tick(999);
    assert.equal(ws.sent.length, 1);
    clock.tick(1);
    assert.equal(ws.sent.length, 2);
    clock.tick(1000);
    assert.equal(ws.sent.length, 3);
    clock.tick(5000);
    assert.equal(ws.sent.length, 3);
    const body = JSON.stringify({ status: 'ping', _cometApi_uuid: uuid });
    assert.deepEqual(ws.sent, Array(3).fill(`web_pipe2\nweb_call\nping\n*\n${body}`));
    // count/interval arguments; a plain string cannot carry the uuid and is sent once
    c.multi_web_pipe_send('web_call', 'x', { a: 1 }, 2, 10);
    clock.tick(10);
    assert.equal(ws.sent.length, 5);
    c.multi_web_pipe_send('web_call', 'x', 'plain');
    clock.tick(5000);
    assert.equal(ws.sent.length, 6);

    // the receiving side
    const got = collect(c, 'web_call.ping');
    for (let i = 1; i <= 3; i++) ws.recv({ pipe: 'web_call', event: 'ping', data: body, user_id: 3, id: 100 + i });
    assert.equal(got.length, 1);
    assert.deepEqual(got[0].data, { status: 'ping', _cometApi_uuid: uuid });
    c.stop();
});

test('multi-node: publishes go to every node, queries to one, a message from both nodes shows once', () => {
    const { c, WS } = started({ opts: { node: ['a:1', 'b:2'] } });
    const [wa, wb] = WS.instances;
    const got = collect(c, 'web_a');
    wa.open();
    wb.open();
    assert.deepEqual(wa.sent, ['subscription\nweb_a']);
    assert.deepEqual(wb.sent, ['subscription\nweb_a']);
    c.web_pipe_send('web_a', 'e', 'hi');
    c.count_users_in_pipe('web_a', () => {});
    assert.equal(wa.sent.length, 3);
    assert.equal(wb.sent.length, 2);
    // each node numbers its own messages
    const m = (id, data) => ({ pipe: 'web_a', event: 'e', data, user_id: 1, id });
    wa.recv(m(1, 'x'));
    wb.recv(m(50, 'x'));
    wb.recv(m(51, 'y'));
    wa.recv(m(2, 'y'));
    // the same text published twice is shown twice
    wa.recv(m(3, 'x'));
    wb.recv(m(52, 'x'));
    assert.deepEqual(got.map((e) => e.data), ['x', 'y', 'x']);
    c.stop();
});

// ---- reconnection -----------------------------------------------------------------------------

test('after a reconnect: subscription list, then pipe_since per pipe with its last id; replays de-duplicated', () => {
    const { c, clock, WS, last } = started();
    const a = collect(c, 'web_a');
    collect(c, 'web_b');
    collect(c, 'web_c.e'); // never received anything: no pipe_since
    const ws1 = last();
    ws1.open();
    ws1.recv({ pipe: 'web_a', event: 'e', data: 'a5', id: 5 });
    ws1.recv({ pipe: 'web_b', event: 'e', data: 'b9', id: 9 });
    ws1.recv({ pipe: 'web_a', event: 'e', data: 'a12', id: 12 });
    ws1.recv({ pipe: 'web_a', event: 'e', data: 'old', id: 2, fromQueue: true, history: true }); // history does not lower it
    ws1.recv({ pipe: 'msg', event: 'm', data: 'p', id: 13 }); // msg is not a subscribed pipe
    ws1.drop();
    clock.tick(299);
    assert.equal(WS.instances.length, 1);
    clock.tick(1);
    const ws2 = last();
    assert.notEqual(ws2, ws1);
    ws2.open();
    assert.deepEqual(ws2.sent, ['subscription\nweb_a\nweb_b\nweb_c', 'pipe_since\nweb_a\n12', 'pipe_since\nweb_b\n9']);
    // replay: 12 was shown already, 14 was missed
    ws2.recv({ pipe: 'web_a', event: 'e', data: 'a12', id: 12, fromQueue: true });
    ws2.recv({ pipe: 'web_a', event: 'e', data: 'a14', id: 14, fromQueue: true });
    ws2.recv({ pipe: 'web_a', event: 'e', data: 'a14', id: 14 }); // and live again
    assert.deepEqual(a.map((e) => e.data), ['a5', 'a12', 'old', 'a14']);
    assert.equal(a[3].server_info.fromQueue, true);
    assert.equal(a[3].server_info.history, false);

    // a live id at or below what pipe_since asked from was never seen: the server restarted, so
    // its numbering is new
    ws2.recv({ pipe: 'web_a', event: 'e', data: 'fresh1', id: 1 });
    ws2.recv({ pipe: 'web_a', event: 'e', data: 'fresh2', id: 2 });
    assert.deepEqual(a.slice(4).map((e) => e.data), ['fresh1', 'fresh2']);
    ws2.drop();
    clock.tick(300);
    last().open();
    assert.deepEqual(last().sent, ['subscription\nweb_a\nweb_b\nweb_c', 'pipe_since\nweb_a\n2']);
    c.stop();
});

test('replays need not carry fromQueue: a live message ahead of the replay is no restart', () => {
    const { c, clock, last } = started();
    const a = collect(c, 'web_a');
    const m = collect(c, 'msg');
    last().open();
    last().recv({ pipe: 'web_a', event: 'e', data: 'a5', id: 5 }, { pipe: 'web_b', event: 'e', data: 'b9', id: 9 });
    last().drop();
    clock.tick(300);
    last().open();
    assert.deepEqual(last().sent, ['subscription\nweb_a', 'pipe_since\nweb_a\n5']);
    // live 12 first, then the replay of 6..12 as plain frames
    for (const id of [12, 6, 7, 12]) last().recv({ pipe: 'web_a', event: 'e', data: 'a' + id, id });
    assert.deepEqual(a.map((e) => e.data), ['a5', 'a12', 'a6', 'a7']);
    // a pipe without pipe_since: ids at or below the highest id seen before (12) mean a restart
    last().recv({ pipe: 'msg', event: 'p', data: 'p13', id: 13 });
    last().recv({ pipe: 'web_a', event: 'e', data: 'a13', id: 14 });
    assert.equal(m.length, 1);
    last().drop();
    clock.tick(300);
    last().open();
    last().recv({ pipe: 'msg', event: 'p', data: 'after restart', id: 3 });
    last().recv({ pipe: 'web_a', event: 'e', data: 'a5 again', id: 5 });
    assert.deepEqual(m.map((e) => e.data), ['p13', 'after restart']);
    assert.deepEqual(a.map((e) => e.data).slice(-2), ['a13', 'a5 again']);
    c.stop();
});

test('commands issued while disconnected are queued and sent after the subscription list', () => {
    const { c, last } = started();
    c.subscription('web_a', () => {});
    c.web_pipe_send('web_a', 'e', { a: 1 });
    c.get_pipe_log('web_a');
    const ws = last();
    assert.deepEqual(ws.sent, []);
    ws.open();
    assert.equal(ws.sent[0], 'subscription\nweb_a');
    assert.equal(ws.sent[1], 'web_pipe2\nweb_a\ne\n*\n{"a":1}');
    assert.match(ws.sent[2], /^pipe_log\nweb_a\n[A-Za-z0-9]+\n$/);
    c.stop();
});

test('back-off: 300 ms doubling to a 10 s cap, with jitter; reset once a connection gets a message', () => {
    const { c, clock, WS, last } = started();
    const delays = [];
    c.on('reconnecting', (r) => delays.push(r.delay));
    const failOnce = () => {
        const n = WS.instances.length;
        last().drop();
        const d = delays[delays.length - 1];
        clock.tick(d - 1);
        assert.equal(WS.instances.length, n, 'no reconnect before the delay');
        clock.tick(1);
        assert.equal(WS.instances.length, n + 1, 'reconnect at the delay');
    };
    for (let i = 0; i < 9; i++) failOnce();
    assert.deepEqual(delays, [300, 600, 1200, 2400, 4800, 9600, 10000, 10000, 10000]);
    // an open that receives nothing is still a failure
    last().open();
    failOnce();
    assert.equal(delays[delays.length - 1], 10000);
    // a connection that received a message resets the back-off
    last().open();
    last().recv({ pipe: 'sys', event: 'serverInfo', data: '', authorized: false });
    failOnce();
    assert.equal(delays[delays.length - 1], 300);
    c.stop();

    // jitter: the delay is scaled by 0.75 .. 1.25 and still capped
    for (const [r, want] of [[0, [225, 450]], [0.999, [375, 750]]]) {
        const s = started({ opts: { random: () => r } });
        const ds = [];
        s.c.on('reconnecting', (x) => ds.push(x.delay));
        s.last().drop();
        s.clock.tick(ds[0]);
        s.last().drop();
        assert.deepEqual(ds, want);
        for (let i = 0; i < 10; i++) {
            s.clock.tick(ds[ds.length - 1]);
            s.last().drop();
        }
        assert.equal(ds[ds.length - 1], Math.round(Math.min(10000, 10000 * (0.75 + 0.5 * r))));
        s.c.stop();
    }
});

test('a socket that never opens is abandoned after 10 s and retried', () => {
    const { c, clock, WS } = started();
    clock.tick(9999);
    assert.equal(WS.instances.length, 1);
    clock.tick(1);
    assert.equal(WS.instances[0].closedByClient, true);
    clock.tick(300);
    assert.equal(WS.instances.length, 2);
    c.stop();
});

test('roundrobin moves to the next node after 3 failures', () => {
    const { c, clock, WS, last } = started({ opts: { nodes: ['a:1', 'b:2'], roundrobin: true, user_id: 2 } });
    const hosts = () => WS.instances.map((w) => w.url.split('/')[2]);
    let delay = 0;
    c.on('reconnecting', (r) => (delay = r.delay));
    for (let i = 0; i < 4; i++) {
        last().drop();
        clock.tick(delay);
    }
    assert.deepEqual(hosts(), ['a:1', 'a:1', 'a:1', 'b:2', 'b:2']);
    c.stop();
});

test('a ccomet cluster (serverInfo names it): roundrobin moves at the first failure and asks the next node for what it missed', () => {
    const { c, clock, WS, last } = started({ opts: { nodes: ['a:1', 'b:2'], roundrobin: true, user_id: 2 } });
    const got = collect(c, 'web_cl');
    let ws = last();
    ws.open();
    ws.recv({ data: '', pipe: 'sys', event: 'serverInfo', authorized: false, server: 'ccomet 0.1.0', cluster: 'ccomet:' });
    ws.recv({ pipe: 'web_cl', event: 'e', data: 'one', id: 41 }, { pipe: 'web_cl', event: 'e', data: 'two', id: 42 });
    let delay = 0;
    c.on('reconnecting', (r) => (delay = r.delay));
    ws.drop();
    clock.tick(delay);
    ws = last();
    assert.equal(ws.url.split('/')[2], 'b:2', 'moved to the next node at once');
    ws.open();
    assert.ok(ws.sent.includes('pipe_since\nweb_cl\n42'), `asks b for what came after 42: ${JSON.stringify(ws.sent)}`);
    // b replays 43 and sends 42 again (a live message b already had): 42 is not given twice
    ws.recv({ data: '', pipe: 'sys', event: 'serverInfo', authorized: false, server: 'ccomet 0.1.0', cluster: 'ccomet:' });
    ws.recv({ pipe: 'web_cl', event: 'e', data: 'two', id: 42 }, { pipe: 'web_cl', event: 'e', data: 'three', id: 43 });
    assert.deepEqual(got.map((e) => e.data), ['one', 'two', 'three']);
    c.stop();
});

// ---- publishing -------------------------------------------------------------------------------

test('web_pipe_send: validation and the web_pipe2 frame', () => {
    const { c, last } = started();
    const ws = last();
    ws.open();
    for (const bad of ['chat', 'we', '@web_x', 'web_a b', 'web_' + 'x'.repeat(61), undefined, 5]) {
        assert.equal(c.web_pipe_send(bad, 'e', 'm'), false, String(bad));
    }
    assert.equal(c.web_pipe_send('web_a', 'bad event', 'm'), false);
    assert.equal(c.web_pipe_send('web_a', 'e', 'x'.repeat(70000)), false);
    assert.equal(ws.sent.length, 0);

    assert.equal(c.web_pipe_send('web_a', 'e', { t: 'hi\n"there"' }), true);
    assert.equal(c.web_pipe_send('webauth_b', 'ev', 'text with\nnewline'), true); // auth unknown yet
    assert.equal(c.web_pipe_send('web_c.ev2', 'two args'), true);
    assert.equal(c.web_pipe_send('web_d', 'only msg'), true);
    assert.deepEqual(ws.sent, [
        'web_pipe2\nweb_a\ne\n*\n{"t":"hi\\n\\"there\\""}',
        'web_pipe2\nwebauth_b\nev\n*\ntext with\nnewline',
        'web_pipe2\nweb_c\nev2\n*\ntwo args',
        'web_pipe2\nweb_d\nundefined\n*\nonly msg',
    ]);
    ws.recv({ data: '', pipe: 'sys', event: 'serverInfo', authorized: false });
    assert.equal(c.web_pipe_send('webauth_b', 'ev', 'x'), false);
    assert.equal(c.web_pipe_send('web_' + 'x'.repeat(60), 'e', 'x'), true); // 64 chars
    c.stop();
});

test('get_pipe_log: history on the pipe once, and the whole answer to the callback', () => {
    const { c, last } = started();
    const live = collect(c, 'web_a');
    const ws = last();
    ws.open();
    ws.recv({ pipe: 'web_a', event: 'e', data: 'm2', id: 2 });
    const hist = [];
    c.get_pipe_log('web_a', (e) => hist.push(e));
    const marker = markerOf(ws.sent[ws.sent.length - 1]);
    assert.equal(ws.sent[ws.sent.length - 1], `pipe_log\nweb_a\n${marker}\n`);
    for (const id of [1, 2]) ws.recv({ pipe: 'web_a', event: 'e', data: 'm' + id, id, fromQueue: true, history: true, marker, user_id: 4 });
    assert.deepEqual(hist.map((e) => [e.data, e.server_info.history, e.server_info.marker]), [['m1', true, marker], ['m2', true, marker]]);
    assert.deepEqual(live.map((e) => [e.data, e.server_info.history]), [['m2', false], ['m1', true]]);
    c.stop();
});

test('get_pipe_log against an old server (no marker, no id): fromQueue means history', () => {
    const { c, last } = started();
    const live = collect(c, 'web_a');
    const ws = last();
    ws.open();
    const hist = [];
    c.get_pipe_log('web_a', (e) => hist.push(e.data));
    ws.recv({ pipe: 'web_a', event: 'e', data: 'h1', fromQueue: true, user_id: 4 });
    assert.deepEqual(hist, ['h1']);
    assert.equal(live[0].server_info.history, true);
    assert.equal(c.get_pipe_log('bad pipe'), false);
    c.stop();
});

test('connect/disconnect events and isConnected()', () => {
    const { c, last } = started();
    const ev = [];
    c.on('connect', (x) => ev.push(['c', x.node]));
    c.on('disconnect', (x) => ev.push(['d', x.node]));
    assert.equal(c.isConnected(), false);
    last().open();
    assert.equal(c.isConnected(), true);
    last().drop();
    assert.equal(c.isConnected(), false);
    assert.deepEqual(ev, [['c', 'h:1'], ['d', 'h:1']]);
    c.stop();
});

test('a throwing callback does not stop the others', () => {
    const { c, last } = started();
    const orig = console.error;
    console.error = () => {};
    try {
        c.subscription('web_a', () => {
            throw new Error('boom');
        });
        const got = collect(c, 'web_a');
        last().open();
        last().recv({ pipe: 'web_a', event: 'e', data: 'x', id: 1 });
        assert.equal(got.length, 1);
    } finally {
        console.error = orig;
        c.stop();
    }
});

// ---- one socket for all tabs ------------------------------------------------------------------

test('tabs: one leader socket; followers subscribe, publish, query and receive through it', async () => {
    const clock = new FakeClock();
    const WS = makeWS();
    const locks = new FakeLocks();
    const BC = makeBC();
    const mk = () => {
        const s = setup({ clock, WS, opts: { locks, BroadcastChannel: BC } });
        return s.c;
    };
    const base = setup({ clock, WS, opts: { locks, BroadcastChannel: BC } }).opts;
    const A = mk();
    const B = mk();
    const leaderEvents = [];
    A.on('leader', () => leaderEvents.push('A'));
    B.on('leader', () => leaderEvents.push('B'));
    const gotA = collect(A, 'web_a');
    A.start(base);
    await flush();
    const gotB = collect(B, 'web_b');
    const bConnect = [];
    B.on('connect', () => bConnect.push(1));
    B.start(base);
    await flush();
    assert.deepEqual(leaderEvents, ['A']);
    assert.equal(WS.instances.length, 1, 'only the leader opens a socket');
    const ws = WS.instances[0];
    ws.open();
    await flush();
    clock.tick(50);
    await flush();
    clock.tick(50);
    assert.equal(ws.sent[ws.sent.length - 1], 'subscription\nweb_a\nweb_b');
    assert.deepEqual(bConnect, [1]);

    // serverInfo reaches the follower
    ws.recv({ data: 'hash', pipe: 'sys', event: 'serverInfo', authorized: true });
    await flush();
    assert.equal(B.isAuthorized(), true);
    assert.equal(B.getRealUserKey(), 'hash');

    // messages reach the subscribed tab
    ws.recv({ pipe: 'web_b', event: 'e', data: '{"v":1}', id: 3 });
    ws.recv({ pipe: 'web_a', event: 'e', data: '"a"', id: 4 });
    await flush();
    assert.deepEqual(gotB.map((e) => e.data), [{ v: 1 }]);
    assert.deepEqual(gotA.map((e) => e.data), ['a']);

    // a follower's publish goes out on the leader's socket, and the leader's tab sees it
    const n = ws.sent.length;
    B.subscription('web_a', () => {});
    B.web_pipe_send('web_a', 'e', { from: 'B' });
    await flush();
    assert.equal(ws.sent[n], 'web_pipe2\nweb_a\ne\n*\n{"from":"B"}');
    assert.deepEqual(gotA.map((e) => e.data), ['a', { from: 'B' }]);
    // and the leader's publish reaches the follower tab
    const echoB = collect(B, 'web_a.fromA');
    A.web_pipe_send('web_a', 'fromA', 'hello');
    await flush();
    assert.deepEqual(echoB.map((e) => [e.data, e.server_info.user_id]), [['hello', 42]]);

    // a follower's query is answered to the follower
    const counts = [];
    B.count_users_in_pipe('web_b', (r) => counts.push(r.data.user_in_pipe));
    await flush();
    const cmd = ws.sent[ws.sent.length - 1];
    assert.match(cmd, /^pipe_count\nweb_b\n/);
    ws.recv({ data: ['user_in_pipe', 2], event: 'user_in_pipe', marker: markerOf(cmd), pipe: '_answer_pipe_count' });
    await flush();
    assert.deepEqual(counts, [2]);

    // the leader goes away: B takes over, reconnects and asks for what it missed
    A.stop();
    await flush(10);
    assert.deepEqual(leaderEvents, ['A', 'B']);
    assert.equal(ws.closedByClient, true);
    assert.equal(WS.instances.length, 2);
    const ws2 = WS.instances[1];
    ws2.open();
    assert.deepEqual(ws2.sent, ['subscription\nweb_b\nweb_a', 'pipe_since\nweb_b\n3', 'pipe_since\nweb_a\n4']);
    ws2.recv({ pipe: 'web_b', event: 'e', data: '{"v":1}', id: 3, fromQueue: true });
    ws2.recv({ pipe: 'web_b', event: 'e', data: '{"v":2}', id: 5, fromQueue: true });
    assert.deepEqual(gotB.map((e) => e.data), [{ v: 1 }, { v: 2 }]);
    B.stop();
});

test('tabs: a follower that stops is dropped from the leader list; commands sent with no leader are resent', async () => {
    const clock = new FakeClock();
    const WS = makeWS();
    const locks = new FakeLocks();
    const BC = makeBC();
    const opts = setup({ clock, WS, opts: { locks, BroadcastChannel: BC } }).opts;
    const A = new CometServer();
    const B = new CometServer();
    A.start(opts);
    await flush();
    B.subscription('web_b', () => {});
    B.start(opts);
    await flush();
    const ws = WS.instances[0];
    ws.open();
    clock.tick(50);
    await flush();
    clock.tick(50);
    assert.equal(ws.sent[ws.sent.length - 1], 'subscription\nweb_b');
    B.stop();
    await flush();
    clock.tick(50);
    assert.equal(ws.sent[ws.sent.length - 1], 'subscription\n');
    A.stop();

    // a follower posts while no tab answers; the leader that appears runs the command
    const C = new CometServer();
    const D = new CometServer();
    const locks2 = new FakeLocks();
    const opts2 = Object.assign({}, opts, { locks: locks2, BroadcastChannel: makeBC() });
    // hold the lock elsewhere so that C starts as a follower with nobody listening
    let release;
    locks2.request('ccomet-leader-7-42', {}, () => new Promise((r) => (release = r)));
    await flush();
    C.start(opts2);
    C.web_pipe_send('web_q', 'e', 'queued');
    await flush();
    D.start(opts2);
    await flush();
    release(); // C's request is next in line
    await flush(10);
    const ws3 = WS.instances[WS.instances.length - 1];
    ws3.open();
    assert.ok(ws3.sent.includes('web_pipe2\nweb_q\ne\n*\nqueued'));
    C.stop();
    D.stop();
});

test('without locks or under Node each instance has its own socket', () => {
    const clock = new FakeClock();
    const WS = makeWS();
    const a = started({ clock, WS });
    const b = started({ clock, WS });
    assert.equal(WS.instances.length, 2);
    a.c.stop();
    b.c.stop();
});

// ---- packaging --------------------------------------------------------------------------------

test('UMD: a browser-like global scope gets CometServer and cometApi', () => {
    const ctx = { console, setTimeout, clearTimeout };
    vm.createContext(ctx);
    vm.runInContext(readFileSync(SRC, 'utf8'), ctx, { filename: 'CometServerApi.js' });
    assert.equal(typeof ctx.CometServer, 'function');
    assert.equal(typeof ctx.cometApi, 'object');
    assert.equal(typeof ctx.cometApi.subscription, 'function');
    assert.equal(typeof ctx.cometApi.onAuthFalill, 'function');
    assert.ok(ctx.CometServer() instanceof ctx.CometServer);
});

test('Node: exports, default WebSocket is the ws package', () => {
    assert.equal(typeof api.CometServer, 'function');
    assert.ok(api.cometApi instanceof api.CometServer);
    for (const name of ['start', 'stop', 'subscription', 'subscription_once', 'unsubscription', 'web_pipe_send', 'multi_web_pipe_send',
        'get_pipe_log', 'count_users_in_pipe', 'getTrackPipeUsers', 'getUserData', 'isAuthorized', 'onAuthSuccess', 'onAuthFalill',
        'onAuthFail', 'getUserId', 'getDevId', 'getRealUserKey', 'getUUID', 'on', 'off']) {
        assert.equal(typeof api.cometApi[name], 'function', name);
    }
    const c = new CometServer();
    c.start({ node: '127.0.0.1:9', quiet: true }); // nothing listens on port 9
    assert.equal(c._links[0].ws.constructor.name, 'WebSocket');
    c.stop();
});

test('over a real socket (the ws package, an in-process server): URL, frames both ways', async () => {
    const { WebSocketServer } = await import('ws');
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((r) => wss.once('listening', r));
    const port = wss.address().port;
    const seen = { url: null, frames: [] };
    wss.on('connection', (sock, req) => {
        seen.url = req.url;
        sock.on('message', (d) => {
            seen.frames.push(d.toString());
            if (d.toString().startsWith('web_pipe2')) {
                sock.send(JSON.stringify({ data: { number_messages: 0, message: 'hi' }, event: 'answer', pipe: '_answer_to_web_a' }));
            }
        });
        sock.send(JSON.stringify({ data: 'k', pipe: 'sys', event: 'serverInfo', authorized: true }) + '\n' +
            JSON.stringify({ data: '{"ü":"✓"}', pipe: 'web_a', event: 'e', id: 1 }));
    });
    const c = new CometServer();
    const got = [];
    const answers = [];
    c.subscription('web_a', (e) => got.push(e.data));
    c.subscription('#web_a', (e) => answers.push(e.data));
    await new Promise((resolve) => {
        c.start({ node: '127.0.0.1:' + port, user_id: 3, user_key: 'k', dev_id: 0 }, resolve);
    });
    assert.equal(c.isAuthorized(), true);
    c.web_pipe_send('web_a', 'e', 'hi');
    for (let i = 0; i < 100 && (!answers.length || !got.length); i++) await new Promise((r) => setTimeout(r, 10));
    assert.match(seen.url, /^\/ws\/sesion=k&myid=3&devid=0&v=4\.09&uuid=[0-9a-f]{32}&api=js&ack=1&marker=1$/);
    assert.deepEqual(seen.frames, ['subscription\nweb_a', 'web_pipe2\nweb_a\ne\n*\nhi']);
    assert.deepEqual(got, [{ 'ü': '✓' }]);
    assert.deepEqual(answers, [{ number_messages: 0, message: 'hi' }]);
    c.stop();
    await new Promise((r) => wss.close(r));
});
