// Unit tests of web/cometVideoApi.js that need no server and no browser: a fake cometApi (the
// subscriptions and what is sent on pipes) and a fake JsSIP (user agent and session objects whose
// events the tests fire). The real thing runs in tests/integration/video_browser_*.test.mjs.
//
//   node --test tests/js/
import test from 'node:test';
import assert from 'node:assert/strict';
import api from '../../web/cometVideoApi.js';

const { CometVideoApi } = api;
const { setBandwidthInSdp, pad6 } = CometVideoApi._internal;

// ---- fakes ----------------------------------------------------------------------------------------

class FakeComet {
    constructor({ userId = 7, devId = 3, key = 'k7' } = {}) {
        this.userId = userId;
        this.devId = devId;
        this.key = key;
        this.subs = new Map(); // id -> {name, cb}
        this.sent = []; // [{pipe, event, msg}]
        this.seq = 0;
    }
    subscription(name, cb) { const id = `s${++this.seq}`; this.subs.set(id, { name, cb }); return id; }
    unsubscription(id) { return this.subs.delete(id); }
    web_pipe_send(pipe, event, msg) { this.sent.push({ pipe, event, msg }); return true; }
    getUserId() { return this.userId; }
    getDevId() { return this.devId; }
    getRealUserKey() { return this.key; }
    subscribed(name) { return [...this.subs.values()].some((s) => s.name === name); }
    /** Delivers a message as CometServerApi does: {data, server_info}. */
    deliver(name, event, data, si = {}) {
        for (const s of [...this.subs.values()]) {
            if (s.name === name || s.name === `${name}.${event}`) s.cb({ data, server_info: { event, ...si } });
        }
    }
}

class Emitter {
    constructor() { this.handlers = {}; }
    on(ev, fn) { (this.handlers[ev] ||= []).push(fn); return this; }
    emit(ev, arg) { for (const fn of this.handlers[ev] || []) fn(arg); }
}

class FakePc {
    constructor() { this.connectionState = 'new'; this.signalingState = 'stable'; this.listeners = {}; }
    addEventListener(ev, fn) { (this.listeners[ev] ||= []).push(fn); }
    set(state) { this.connectionState = state; for (const fn of this.listeners.connectionstatechange || []) fn(); }
    close() { this.signalingState = 'closed'; }
}

class FakeSession extends Emitter {
    constructor(target, options) {
        super();
        this.target = target;
        this.options = options;
        this.connection = new FakePc();
        this.ended = false;
        this.muted = { audio: false, video: false };
        this.held = false;
        for (const [ev, fn] of Object.entries(options.eventHandlers || {})) this.on(ev, fn);
    }
    isEnded() { return this.ended; }
    terminate() { this.ended = true; this.terminated = true; }
    mute(o) { Object.assign(this.muted, Object.fromEntries(Object.keys(o).filter((k) => o[k]).map((k) => [k, true]))); }
    unmute(o) { for (const k of Object.keys(o)) if (o[k]) this.muted[k] = false; }
    isMuted() { return { ...this.muted }; }
    isOnHold() { return { local: this.held, remote: false }; }
    hold() { this.held = true; }
    unhold() { this.held = false; }
}

function fakeJsSIP() {
    const J = { uas: [] };
    J.WebSocketInterface = class { constructor(url) { this.url = url; } };
    J.UA = class extends Emitter {
        constructor(config) { super(); this.config = config; this.sessions = []; J.uas.push(this); }
        start() { this.started = true; }
        stop() { this.stopped = true; }
        register() { this.registerCalls = (this.registerCalls || 0) + 1; }
        call(target, options) { const s = new FakeSession(target, options); this.sessions.push(s); return s; }
    };
    return J;
}

const SYS = {
    conference: true, type: 'video', serverName: '127.0.0.1', serverPort: 5066, serverProto: 'ws',
    callKey: 'key-1', callPipe: 'web_syscall_vA_abcdefghijklmnopqrstuvwxyzAB', sipNumber: '3*101*video',
    caller_id: 1, user_id: 7, mode: 'video', conference_name: '101', stream: 0, node: '127.0.0.1:5066',
};
const invitation = (sys = {}) => JSON.stringify({ message: '{"text":"hi"}', sys: { ...SYS, ...sys } });
const flush = () => new Promise((r) => setImmediate(r));

function setup(opts = {}) {
    const comet = new FakeComet(opts.comet);
    const v = new CometVideoApi(comet);
    const log = [];
    const cb = (name) => (e) => log.push({ name, e });
    v.start({
        cometApi: comet,
        onIncomingCall: cb('onCall'), onCallAccept: cb('onCallAccept'), onCallStart: cb('onCallStart'),
        onCallEnd: cb('onCallEnd'), onIn: cb('onIn'), onOut: cb('onOut'), onToggleMute: cb('onToggleMute'),
        ...opts.start,
    });
    const named = (n) => log.filter((x) => x.name === n).map((x) => x.e);
    return { comet, v, log, named };
}

// ---- tests ----------------------------------------------------------------------------------------

test('setBandwidthInSdp puts b=AS after the c= line of each section of that kind and replaces old ones', () => {
    const sdp = ['v=0', 'o=- 1 1 IN IP4 0.0.0.0', 's=-', 't=0 0',
        'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', 'b=AS:99', 'a=mid:0',
        'm=video 9 UDP/TLS/RTP/SAVPF 96', 'c=IN IP4 0.0.0.0', 'a=mid:1', ''].join('\r\n');
    const out = setBandwidthInSdp(setBandwidthInSdp(sdp, 'video', 256), 'audio', 32).split('\r\n');
    assert.deepEqual(out.slice(4, 8), ['m=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', 'b=AS:32', 'a=mid:0']);
    assert.deepEqual(out.slice(8, 12), ['m=video 9 UDP/TLS/RTP/SAVPF 96', 'c=IN IP4 0.0.0.0', 'b=AS:256', 'a=mid:1']);
    assert.equal(setBandwidthInSdp(sdp, 'video', 0), sdp, '0 leaves the SDP alone');
    assert.equal(pad6(15), '000015');
});

test('an invitation fires onCall once (onIncomingCall accepted), parses the message and listens on the call pipe', () => {
    const { comet, named } = setup();
    comet.deliver('msg', 'sys_sipCall', invitation());
    comet.deliver('msg', 'sys_sipCall', invitation({ callKey: 'key-2' })); // invited again: same room
    const calls = named('onCall');
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0].data.message, { text: 'hi' });
    assert.equal(calls[0].type, 'video');
    assert.equal(calls[0].callPipe, SYS.callPipe);
    assert.ok(comet.subscribed(SYS.callPipe));
    comet.deliver('msg', 'sys_sipCall', '{"message":"x"}'); // not an invitation: ignored
    comet.deliver('msg', 'sys_sipCall', invitation({ callPipe: 'web_syscall_vA_other' }), { fromQueue: true, message_send_time: Date.now() / 1000 - 3600 });
    assert.equal(named('onCall').length, 1, 'an invitation queued an hour ago is dropped');
});

test('busy(): out {status: busy} to the others, onCallEnd busy, the call pipe left', () => {
    const { comet, v, named } = setup();
    comet.deliver('msg', 'sys_sipCall', invitation());
    assert.equal(v.busy(), true);
    assert.deepEqual(comet.sent.map((m) => [m.pipe, m.event, m.msg.status, m.msg.callKey]), [[SYS.callPipe, 'out', 'busy', 'key-1']]);
    assert.equal(named('onCallEnd')[0].status, 'busy');
    assert.ok(!comet.subscribed(SYS.callPipe));
    assert.equal(v.busy(), false, 'nothing left to decline');
});

test('call pipe events: onIn/onOut from ccomet, onOut busy from a declining browser, nothing for our own join or a browser hangup', () => {
    const { comet, named } = setup();
    comet.deliver('msg', 'sys_sipCall', invitation());
    const P = SYS.callPipe;
    comet.deliver(P, 'in', '{"status":"in","user_id":8,"member_id":2,"conference_name":"101","members":2}');
    comet.deliver(P, 'in', '{"status":"in","user_id":7,"member_id":3,"conference_name":"101","members":3}');
    comet.deliver(P, 'out', '{"status":"kicked","user_id":8,"member_id":2,"conference_name":"101","members":2}');
    comet.deliver(P, 'out', { status: 'hangup', callKey: 'key-1', instance: 'other' }, { user_id: 9 });
    comet.deliver(P, 'out', { status: 'busy', callKey: 'key-1', instance: 'other' }, { user_id: 9 });
    assert.deepEqual(named('onIn').map((e) => [e.user_id, e.member_id, e.members]), [[8, 2, 2]]);
    assert.deepEqual(named('onOut').map((e) => [e.user_id, e.status]), [[8, 'kicked'], [9, 'busy']]);
});

test('accepted on another device of the same user: onCallEnd cancel here, nothing sent', () => {
    const { comet, named } = setup();
    comet.deliver('msg', 'sys_sipCall', invitation());
    comet.deliver(SYS.callPipe, 'accept', { status: 'start_accept', type: 'video', instance: 'elsewhere' }, { user_id: 7 });
    assert.equal(named('onCallEnd')[0].status, 'cancel');
    assert.deepEqual(comet.sent, []);
});

test('acceptCall without the user key (not authorized): onCallEnd registration-failure', async () => {
    const { comet, v, named } = setup({ comet: { key: '' } });
    comet.deliver('msg', 'sys_sipCall', invitation());
    assert.equal(v.acceptCall({ type: 'none' }), true);
    assert.equal(comet.sent[0].event, 'accept');
    await flush();
    assert.equal(named('onCallEnd')[0].status, 'registration-failure');
});

test('the SIP call: one user agent registered as <dev_id:6><user_id> with the key, INVITE to sipNumber, onCallStart once media is up and a peer is in, onCallEnd on BYE, the agent stopped', async (t) => {
    const J = globalThis.JsSIP = fakeJsSIP();
    t.after(() => { delete globalThis.JsSIP; });
    const { comet, v, named } = setup();
    comet.deliver('msg', 'sys_sipCall', invitation());
    const stream = { getTracks: () => [] };
    assert.equal(v.acceptCall({ type: 'video', custom_stream: stream }), true);
    assert.equal(v.acceptCall({ type: 'video' }), false, 'one call at a time');
    assert.equal(J.uas.length, 1);
    const ua = J.uas[0];
    assert.equal(ua.config.uri, 'sip:0000037@127.0.0.1');
    assert.equal(ua.config.authorization_user, '0000037');
    assert.equal(ua.config.password, 'k7');
    assert.equal(ua.config.sockets[0].url, 'ws://127.0.0.1:5066');
    ua.emit('connected');
    ua.emit('registered');
    await flush();
    const s = ua.sessions[0];
    assert.equal(s.target, 'sip:3*101*video@127.0.0.1');
    assert.equal(s.options.mediaStream, stream);
    assert.equal(s.options.extraHeaders, undefined, 'no callToken, no header');
    const sdp = { originator: 'local', sdp: 'v=0\r\nm=video 9 X 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1' };
    s.emit('sdp', sdp);
    assert.match(sdp.sdp, /b=AS:256/);
    s.connection.set('connected');
    assert.equal(named('onCallStart').length, 0, 'alone in the room: not started');
    assert.equal(comet.sent.at(-1).event, 'mediaStart');
    comet.deliver(SYS.callPipe, 'in', '{"status":"in","user_id":8,"member_id":2,"conference_name":"101","members":2}');
    assert.equal(named('onCallStart').length, 1);
    assert.equal(named('onCallAccept')[0].user_id, 8);
    assert.equal(v.isInCall(), true);
    assert.equal(v.muteAudio(true), true);
    assert.deepEqual(v.isMute(), { audio: true, video: false });
    assert.deepEqual(comet.sent.at(-1).msg.audio, true);
    assert.equal(v.toggleHold(), true);
    assert.equal(v.toggleHold(), false, 'toggleHold toggles (isOnHold().local)');
    s.emit('ended', { originator: 'remote', cause: 'BYE' });
    const end = named('onCallEnd');
    assert.equal(end.length, 1);
    assert.equal(end[0].status, 'terminated');
    assert.equal(v.isInCall(), false);
    await flush();
    assert.equal(ua.stopped, true, 'the agent is stopped when no call needs it');
    s.emit('failed', {});
    assert.equal(named('onCallEnd').length, 1, 'one onCallEnd per call');
});

test('the invitation\'s callToken goes in the INVITE as X-Comet-Call-Token (audit C1); none without one', async (t) => {
    const J = globalThis.JsSIP = fakeJsSIP();
    t.after(() => { delete globalThis.JsSIP; });
    const { comet, v } = setup();
    comet.deliver('msg', 'sys_sipCall', invitation({ callToken: '1900000000.abc_-' }));
    assert.equal(v.acceptCall({ type: 'none' }), true);
    J.uas[0].emit('connected');
    J.uas[0].emit('registered');
    await flush();
    assert.deepEqual(J.uas[0].sessions[0].options.extraHeaders, ['X-Comet-Call-Token: 1900000000.abc_-']);
});

test('a dev_id past six digits gets no SIP identity (audit M7): registration-failure, no user agent', async (t) => {
    const J = globalThis.JsSIP = fakeJsSIP();
    t.after(() => { delete globalThis.JsSIP; });
    const { comet, v, named } = setup({ comet: { devId: 1234567 } });
    comet.deliver('msg', 'sys_sipCall', invitation());
    v.acceptCall({ type: 'none' });
    await flush();
    assert.equal(J.uas.length, 0);
    assert.equal(named('onCallEnd')[0].status, 'registration-failure');
    assert.match(named('onCallEnd')[0].cause, /0\.\.999999/);
});

test('a page cannot pass for the server on the call pipe (audit M1): end, in and member events with a user_id are ignored', () => {
    const { comet, v, named } = setup();
    comet.deliver('msg', 'sys_sipCall', invitation());
    assert.equal(v.acceptCall({ type: 'none' }), true);
    const P = SYS.callPipe;
    comet.deliver(P, 'end', '{"status":"node-down"}', { user_id: 0 });
    comet.deliver(P, 'end', '{"status":"node-down"}', { user_id: 9 });
    comet.deliver(P, 'in', '{"status":"in","user_id":8,"member_id":2,"conference_name":"101","members":2}', { user_id: 9 });
    comet.deliver(P, 'out', '{"status":"kicked","user_id":7,"member_id":1,"conference_name":"101","members":1}', { user_id: 9 });
    assert.deepEqual(named('onCallEnd'), []);
    assert.deepEqual(named('onIn'), []);
    assert.deepEqual(named('onOut'), []);
    // the server's own (no user_id in server_info) still counts
    comet.deliver(P, 'end', '{"status":"node-down"}');
    assert.equal(named('onCallEnd')[0].status, 'node-down');
});

test('registration refused: onCallEnd registration-failure; node down from ccomet: onCallEnd node-down', async (t) => {
    const J = globalThis.JsSIP = fakeJsSIP();
    t.after(() => { delete globalThis.JsSIP; });
    const { comet, v, named } = setup();
    comet.deliver('msg', 'sys_sipCall', invitation());
    v.acceptCall({ type: 'none' });
    J.uas[0].emit('connected');
    J.uas[0].emit('registrationFailed', { cause: 'Rejected' });
    await flush();
    assert.deepEqual(named('onCallEnd').map((e) => [e.status, e.cause]), [['registration-failure', 'Rejected']]);

    comet.deliver('msg', 'sys_sipCall', invitation({ callPipe: 'web_syscall_vA_second', conference_name: '102' }));
    v.acceptCall({ type: 'none' });
    J.uas.at(-1).emit('connected');
    J.uas.at(-1).emit('registered');
    await flush();
    comet.deliver('web_syscall_vA_second', 'end', '{"status":"node-down"}');
    assert.equal(named('onCallEnd')[1].status, 'node-down');
    assert.equal(J.uas.at(-1).sessions[0].terminated, true);
});
