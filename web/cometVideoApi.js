/*
 * cometVideoApi.js: the browser side of ccomet's Video API.
 *
 * Our own implementation of the `cometVideoApi` object that CppComet's video chat pages call
 * (start, acceptCall, busy, hangup, toggleMute, muteAudio, muteVideo, isMute, setBandwidth,
 * isInCall, fullScreen, with the callbacks onCall, onCallAccept, onCallStart, onCallEnd, onIn and
 * onOut). It runs on web/CometServerApi.js (the global `cometApi`) and JsSIP 3.x (the global
 * `JsSIP`, served as /lib/jssip.js), in ES2017 without a build step.
 *
 * What this file owns
 *   - the calls offered to this page: one per call pipe, from the `sys_sipCall` private message
 *     that ccomet sends when a backend runs INSERT INTO conference; at most one of them is
 *     accepted (the active call) at a time;
 *   - the single JsSIP user agent of the page: created when a call is accepted, registered to
 *     the media node the invitation names, reused while calls go to that node, and stopped
 *     (unREGISTER, socket closed) when the last call ends or the page goes away;
 *   - the local camera/microphone stream it asked for (stopped when the call ends; a
 *     `custom_stream` given by the page is never stopped here);
 *   - the signalling on the call pipe (see below).
 * What it must never do: answer SIP calls from the node (the node never calls a browser), send
 * anything periodically (CppComet pinged every member every second), or touch page elements
 * other than the ones acceptCall() was given.
 *
 * The call, as the page sees it
 *   backend INSERT INTO conference ──► ccomet ──► msg/sys_sipCall ──► onCall({data: {message, sys}})
 *   page acceptCall({type, video_remote, audio_remote, video_local})
 *     ─► getUserMedia and, in parallel, JsSIP REGISTER as <dev_id padded to 6><user_id> with the
 *        password cometApi.getRealUserKey() (the users_auth hash, or a JWT session's credential)
 *        over <serverProto>://<serverName>:<serverPort>
 *     ─► INVITE sip:<sipNumber>@<serverName> (sipNumber = <dev_id>*<room>*<profile>)
 *     ─► media connected and another member present ─► onCallStart
 *   ccomet tells the room (callPipe) who joins and leaves ─► onIn / onOut
 *   the call ends once, with one onCallEnd({status}), whatever ended it.
 *
 * Call pipe events (pipe sys.callPipe, "web_syscall_vA_...")
 *   from ccomet   in  {status:"in", user_id, member_id, conference_name, members}  -> onIn
 *                 out {status:"out"|"kicked"|"node-down", user_id, member_id, ...}  -> onOut
 *                 end {status:"node-down"}                                           -> onCallEnd
 *   from browsers (CppComet's signalling, kept so that mixed pages interoperate; sent once each,
 *   never repeated):
 *                 accept     {status:"start_accept", type, callKey, instance}
 *                 out        {status:"busy"|"hangup", callKey, instance}   busy -> onOut
 *                 mediaStart {status:"self"|"answer", instance}
 *                 toggleMute {isMute, audio, video, instance}              -> onToggleMute
 *                 toggleHold {isHold, instance}                            -> onToggleHold
 *   A browser `out` with status hangup does not fire onOut: ccomet reports the member's leaving
 *   itself. `instance` tells this page's own messages (echoed between tabs) from others.
 *
 * Callbacks (all optional; an exception in one is logged and does not break the call)
 *   onCall(e)        e = {data: {message, sys}, callPipe, callKey, type, caller_id,
 *                    conference_name, server_info}; also accepted under the name onIncomingCall
 *   onCallAccept(e)  {action:"accept", callInfo, accept_type, user_id}: once per call, when
 *                    another member first accepts or joins
 *   onCallStart(e)   {action:"start", status:"start", callInfo, type, timing}: once per call;
 *                    timing: ms after acceptCall when media (camera), registered, invited,
 *                    answered (200 OK), connected (ICE+DTLS) and started were reached
 *   onCallEnd(e)     {action:"out", status, callInfo, time (ms since start, 0 if it never
 *                    started), fullTime (ms since accept), type, cause}; status is one of busy,
 *                    hangup, terminated, registration-failure, no-media-stream, cancel, node-down
 *   onIn(e), onOut(e) {action:"in"|"out", user_id, member_id, status, members, callInfo, type}
 *   onToggleMute(e)  {action:"toggleMute", user_id, isMute, audio, video, callInfo}
 *   onToggleHold(e)  {action:"toggleHold", user_id, isHold, callInfo} (also as toggleHold)
 *
 * Fixed against CppComet's cometVideoApi.js: onToggleMute is called (not opt.toggleMute),
 * toggleHold() toggles (isOnHold().local), type 'none' joins without camera or microphone,
 * onIn/onOut are actually called, one user agent per page (CppComet made one per call and never
 * stopped it), `conference` may be a boolean, and every offered call ends with one onCallEnd.
 *
 * In a browser this file defines the global `cometVideoApi` (and `CometVideoApi`, the
 * constructor); under Node it exports { CometVideoApi }.
 */
(function (root, factory) {
    'use strict';
    var api = factory(root);
    if (typeof module === 'object' && module && module.exports) {
        module.exports = api;
    } else {
        root.CometVideoApi = api.CometVideoApi;
        root.cometVideoApi = api.cometVideoApi;
    }
})(typeof globalThis !== 'undefined' ? globalThis : typeof self !== 'undefined' ? self : this, function (root) {
    'use strict';

    const VERSION = '2.0.0-ccomet';

    const DEFAULTS = {
        language: ['en'],
        bandwidth_video: 256, // kbit/s, written as b=AS into our SDP offer (0: leave it alone)
        bandwidth_audio: 32,
        alone_time: 5000, // accepted for compatibility; unused
        lonelinessTimeout: 60000, // accepted for compatibility; unused
        registerTimeoutMs: 10000, // REGISTER not answered (or the socket not open) by then: failure
        iceGatheringMs: 1000, // send the offer with the candidates gathered so far after this long
        iceServers: [], // the media node is reached directly (its candidates carry its address)
        audioConstraints: true, // getUserMedia's audio and video constraints (e.g. {echoCancellation: false})
        videoConstraints: true,
        maxInvitationAgeS: 300, // an invitation that waited longer in the offline queue is dropped
        debug: false,
    };

    const CALLBACKS = ['onCall', 'onCallAccept', 'onCallStart', 'onCallEnd', 'onIn', 'onOut', 'onToggleMute', 'onToggleHold'];

    // ---- helpers --------------------------------------------------------------------------------

    function randomId(len) {
        const abc = 'abcdefghijklmnopqrstuvwxyz0123456789';
        const b = new Uint8Array(len);
        if (root.crypto && root.crypto.getRandomValues) root.crypto.getRandomValues(b);
        else for (let i = 0; i < len; i++) b[i] = Math.floor(Math.random() * 256);
        let s = '';
        for (let i = 0; i < len; i++) s += abc[b[i] % abc.length];
        return s;
    }

    function pad6(n) {
        const s = String(parseInt(n, 10) || 0);
        return s.length >= 6 ? s : '000000'.slice(s.length) + s;
    }

    function parseMaybeJson(v) {
        if (typeof v !== 'string') return v;
        try {
            return JSON.parse(v);
        } catch (e) {
            return v;
        }
    }

    /** Sets b=AS:<kbps> in every m-section of `kind` (after its c= line, where SDP wants it). */
    function setBandwidthInSdp(sdp, kind, kbps) {
        if (!(kbps > 0)) return sdp;
        const lines = sdp.split('\r\n');
        const out = [];
        let inKind = false;
        let placed = false;
        for (let i = 0; i < lines.length; i++) {
            const l = lines[i];
            if (l.indexOf('m=') === 0) {
                if (inKind && !placed) out.push('b=AS:' + kbps);
                inKind = l.indexOf('m=' + kind + ' ') === 0;
                placed = false;
                out.push(l);
                continue;
            }
            if (inKind && l.indexOf('b=AS:') === 0) continue;
            if (inKind && !placed && l.indexOf('c=') !== 0 && l.indexOf('i=') !== 0) {
                out.push('b=AS:' + kbps);
                placed = true;
            }
            out.push(l);
        }
        return out.join('\r\n');
    }

    function stopTracks(stream) {
        if (!stream) return;
        for (const t of stream.getTracks()) {
            try {
                t.stop();
            } catch (e) {
                /* already stopped */
            }
        }
    }

    function play(el) {
        if (!el || typeof el.play !== 'function') return;
        const p = el.play();
        if (p && typeof p.catch === 'function') p.catch(function () { /* autoplay refused; the page can play() it */ });
    }

    // ---- the API object -------------------------------------------------------------------------

    function CometVideoApi(comet) {
        if (!(this instanceof CometVideoApi)) return new CometVideoApi(comet);
        this.version = VERSION;
        this.opt = Object.assign({}, DEFAULTS);
        this._comet = comet || null;
        this._instance = randomId(12); // tells this page's call pipe messages from the others'
        this._started = false;
        this._msgSub = null;
        this._calls = new Map(); // callPipe -> call (offered or active)
        this._last = null; // the last offered call (what acceptCall takes by default)
        this._active = null; // the accepted call
        this._ua = null; // {ua, key, registered, waiters: [fn]}
        this._unloadHooked = false;
    }

    const V = CometVideoApi.prototype;

    /**
     * Starts waiting for calls. `opt` holds the callbacks and settings (see the file header and
     * DEFAULTS); it may be given again to change them. The page's `cometApi` must have been
     * started (cometApi.start) with the user's id and key; another instance of CometServerApi can
     * be passed as opt.cometApi.
     */
    V.start = function (opt) {
        opt = opt || {};
        if (opt.onIncomingCall && !opt.onCall) opt.onCall = opt.onIncomingCall; // the seed page's name
        if (opt.toggleHold && !opt.onToggleHold && typeof opt.toggleHold === 'function') opt.onToggleHold = opt.toggleHold;
        this.opt = Object.assign({}, this.opt, opt);
        if (opt.cometApi) this._comet = opt.cometApi;
        if (!this._comet) this._comet = root.cometApi || null;
        if (!this._comet) throw new Error('cometVideoApi: CometServerApi.js (cometApi) must be loaded first');
        if (this._started) return this;
        this._started = true;
        // Subscribing before authorization loses nothing: private messages only come to an
        // authorized connection, and a queued invitation arrives after serverInfo.
        this._msgSub = this._comet.subscription('msg.sys_sipCall', (e) => this._onInvitation(e));
        if (!this._unloadHooked && typeof root.addEventListener === 'function') {
            this._unloadHooked = true;
            root.addEventListener('pagehide', () => this._shutdown());
        }
        return this;
    };

    /** Stops waiting for calls: ends every call (hangup) and stops the user agent. */
    V.stop = function () {
        this._shutdown();
        if (this._msgSub && this._comet) this._comet.unsubscription(this._msgSub);
        this._msgSub = null;
        this._started = false;
    };

    V._shutdown = function () {
        for (const call of Array.from(this._calls.values())) this._end(call, call === this._active ? 'hangup' : 'busy', { notify: true });
        this._stopUa();
    };

    V._log = function () {
        if (!this.opt.debug || !root.console) return;
        root.console.log.apply(root.console, ['[cometVideoApi]'].concat(Array.prototype.slice.call(arguments)));
    };

    V._fire = function (name, arg) {
        const fn = this.opt[name];
        if (typeof fn !== 'function') return;
        try {
            fn.call(this, arg);
        } catch (e) {
            if (root.console) root.console.error('[cometVideoApi] error in ' + name + ':', e);
        }
    };

    V._myUserId = function () {
        return Number(this._comet.getUserId()) || 0;
    };

    // ---- invitations ----------------------------------------------------------------------------

    V._onInvitation = function (e) {
        let data = parseMaybeJson(e && e.data);
        if (!data || typeof data !== 'object' || !data.sys || typeof data.sys !== 'object') return;
        const sys = data.sys;
        if (!sys.callPipe || !sys.sipNumber || !sys.serverName) return;
        const si = (e && e.server_info) || {};
        if (si.fromQueue && si.message_send_time && this.opt.maxInvitationAgeS > 0 &&
            Date.now() / 1000 - si.message_send_time > this.opt.maxInvitationAgeS) {
            this._log('dropping an old queued invitation', sys.callPipe);
            return;
        }
        data = Object.assign({}, data, { message: parseMaybeJson(data.message) });
        const known = this._calls.get(sys.callPipe);
        if (known) {
            // Invited again to a room this page is in or is being offered: keep the call, learn
            // the new key. A second onCall for the same room would only confuse the page.
            known.info = data;
            known.sys = sys;
            if (known.accepted) this._signal(known, 'accept', { status: 'start_accept', type: known.type, callKey: sys.callKey });
            return;
        }
        const call = {
            callPipe: sys.callPipe,
            info: data,
            sys: sys,
            type: sys.type === 'audio' || sys.mode === 'audio' ? 'audio' : 'video',
            accepted: false, // by this page
            ended: false,
            offeredAt: Date.now(),
            acceptedAt: 0,
            startedAt: 0,
            media: false, // our media path is connected
            peer: !!(sys.stream || (data.message && data.message.stream)), // another member is there
            started: false,
            acceptFired: false,
            members: new Map(), // member_id -> {user_id, member_id}
            session: null,
            stream: null,
            ownStream: false,
            els: {},
            sub: null,
            timers: [],
        };
        call.sub = this._comet.subscription(call.callPipe, (m) => this._onPipe(call, m));
        this._calls.set(call.callPipe, call);
        this._last = call;
        this._log('invitation', call.callPipe, sys.sipNumber);
        this._fire('onCall', {
            data: data,
            callPipe: call.callPipe,
            callKey: sys.callKey,
            type: call.type,
            caller_id: sys.caller_id,
            conference_name: sys.conference_name,
            server_info: si,
        });
    };

    // ---- the call pipe --------------------------------------------------------------------------

    V._signal = function (call, event, payload) {
        payload = Object.assign({}, payload, { instance: this._instance });
        this._comet.web_pipe_send(call.callPipe, event, payload);
    };

    V._onPipe = function (call, m) {
        if (call.ended) return;
        const si = m.server_info || {};
        const ev = si.event;
        const d = parseMaybeJson(m.data) || {};
        if (typeof d !== 'object') return;
        if (si.history) return;
        // Server events carry no user_id in server_info; every page's message does (0 when
        // anonymous or hidden), so a page cannot pass for the server (audit M1).
        const fromServer = si.user_id === undefined && (d.member_id !== undefined || ev === 'end' || ev === 'in');
        if (!fromServer && (ev === 'end' || ev === 'in' || d.member_id !== undefined)) return;
        if (fromServer) return this._onServerEvent(call, ev, d);
        if (d.instance === this._instance) return; // our own message, echoed by another tab
        const from = Number(si.user_id) || 0;
        const me = this._myUserId();
        const base = { user_id: from, callInfo: call.info, type: call.type };
        switch (ev) {
            case 'accept':
                if (from && from === me) {
                    // Taken on another device or tab of this user.
                    if (!call.accepted) this._end(call, 'cancel', { notify: false });
                    return;
                }
                this._peerAccepted(call, from, d.type);
                return;
            case 'out':
                if (d.status === 'busy' && from !== me) this._fire('onOut', Object.assign({ action: 'out', status: 'busy', member_id: null }, base));
                return;
            case 'mediaStart':
                if (from === me) return;
                this._peerAccepted(call, from, d.type);
                this._peerPresent(call);
                // A member whose media is up answers a newcomer once, so that it knows.
                if (d.status === 'self' && call.media) this._signal(call, 'mediaStart', { status: 'answer' });
                return;
            case 'toggleMute':
                this._fire('onToggleMute', Object.assign({ action: 'toggleMute', isMute: !!d.isMute, audio: d.audio, video: d.video }, base));
                return;
            case 'toggleHold':
                this._fire('onToggleHold', Object.assign({ action: 'toggleHold', isHold: !!d.isHold }, base));
                return;
            default:
                return;
        }
    };

    V._onServerEvent = function (call, ev, d) {
        const me = this._myUserId();
        const uid = Number(d.user_id) || 0;
        const info = {
            user_id: uid,
            member_id: d.member_id,
            status: d.status,
            members: d.members,
            conference_name: d.conference_name,
            callInfo: call.info,
            type: call.type,
        };
        if (ev === 'end') {
            this._end(call, d.status === 'node-down' ? 'node-down' : 'terminated', { notify: false, cause: d.status });
            return;
        }
        if (ev === 'in') {
            call.members.set(d.member_id, { user_id: uid, member_id: d.member_id });
            if (uid === me) {
                // Our own arrival: the count says whether anyone was there before us.
                if (d.members > 1) this._peerPresent(call);
                return;
            }
            this._peerAccepted(call, uid, undefined);
            this._peerPresent(call);
            this._fire('onIn', Object.assign({ action: 'in' }, info));
            return;
        }
        if (ev === 'out') {
            call.members.delete(d.member_id);
            if (uid === me && call.accepted) {
                if (d.status === 'kicked' || d.status === 'node-down') {
                    this._end(call, d.status === 'node-down' ? 'node-down' : 'terminated', { notify: false, cause: d.status });
                }
                return;
            }
            this._fire('onOut', Object.assign({ action: 'out' }, info));
        }
    };

    V._peerAccepted = function (call, userId, type) {
        if (call.acceptFired || !call.accepted) return;
        call.acceptFired = true;
        this._fire('onCallAccept', { action: 'accept', callInfo: call.info, accept_type: type || call.type, user_id: userId });
    };

    V._peerPresent = function (call) {
        call.peer = true;
        this._maybeStarted(call);
    };

    V._maybeStarted = function (call) {
        if (call.started || call.ended || !call.media || !call.peer) return;
        call.started = true;
        call.startedAt = Date.now();
        this._mark(call, 'started');
        this._fire('onCallStart', { action: 'start', status: 'start', callInfo: call.info, type: call.type, timing: Object.assign({}, call.marks) });
    };

    // ---- accepting ------------------------------------------------------------------------------

    /**
     * Accepts the last offered call (or opt.call, an onCall event or a callPipe).
     * opt: type ('video' | 'audio' | 'none': what we send; 'audio' sends no camera, 'none'
     * neither camera nor microphone; both still receive the room), video_remote (the mix is shown there; it also plays the sound unless
     * audio_remote is given), audio_remote, video_local (our own camera, muted),
     * custom_stream (a MediaStream to send instead of the camera and microphone).
     * Returns false if there is nothing to accept or a call is already active.
     */
    V.acceptCall = function (opt) {
        opt = opt || {};
        let call = this._last;
        if (opt.call) call = this._calls.get(typeof opt.call === 'string' ? opt.call : opt.call.callPipe || (opt.call.data && opt.call.data.sys && opt.call.data.sys.callPipe));
        if (!call || call.ended || call.accepted) return false;
        if (this._active && this._active !== call) return false;
        const sendType = opt.type === 'none' ? 'none' : opt.type === 'audio' || call.type === 'audio' ? 'audio' : 'video';
        call.accepted = true;
        call.acceptedAt = Date.now();
        call.marks = {};
        call.sendType = sendType;
        call.els = { video_remote: opt.video_remote || null, audio_remote: opt.audio_remote || null, video_local: opt.video_local || null };
        this._active = call;
        for (const other of Array.from(this._calls.values())) if (other !== call) this._end(other, 'busy', { notify: true });
        this._signal(call, 'accept', { status: 'start_accept', type: sendType, callKey: call.sys.callKey });

        const key = this._comet.getRealUserKey && this._comet.getRealUserKey();
        if (!key) {
            Promise.resolve().then(() => this._end(call, 'registration-failure', { notify: true, cause: 'not authorized on the comet server' }));
            return true;
        }
        // The camera and the registration in parallel: both take a while.
        const media = this._localMedia(call, sendType, opt.custom_stream);
        const registered = this._register(call.sys, key);
        media.then(() => this._mark(call, 'media'), () => {});
        registered.then(() => this._mark(call, 'registered'), () => {});
        Promise.all([media, registered]).then(([stream]) => {
            if (call.ended) {
                if (call.ownStream) stopTracks(stream);
                return;
            }
            this._invite(call, stream);
        }, (err) => {
            if (call.ended) return;
            this._end(call, err && err.status ? err.status : 'terminated', { notify: true, cause: err && err.cause });
        });
        return true;
    };

    /** Notes when a step of the call set-up finished (ms after acceptCall; onCallStart's timing). */
    V._mark = function (call, what) {
        if (call.marks && call.marks[what] === undefined) call.marks[what] = Date.now() - call.acceptedAt;
    };

    V._localMedia = function (call, sendType, custom) {
        if (custom) {
            call.stream = custom;
            call.ownStream = false;
            return Promise.resolve(custom);
        }
        if (sendType === 'none') return Promise.resolve(null);
        const md = root.navigator && root.navigator.mediaDevices;
        if (!md || typeof md.getUserMedia !== 'function') {
            return Promise.reject({ status: 'no-media-stream', cause: 'getUserMedia is not available (an https page is needed)' });
        }
        const constraints = { audio: this.opt.audioConstraints || true, video: sendType === 'video' ? this.opt.videoConstraints || true : false };
        return md.getUserMedia(constraints).then((stream) => {
            call.stream = stream;
            call.ownStream = true;
            if (call.els.video_local && sendType === 'video') {
                call.els.video_local.muted = true;
                call.els.video_local.srcObject = stream;
                play(call.els.video_local);
            }
            return stream;
        }, (err) => {
            throw { status: 'no-media-stream', cause: (err && (err.name || err.message)) || String(err) };
        });
    };

    // ---- the user agent -------------------------------------------------------------------------

    /** Resolves once the page's user agent is registered to the node `sys` names. */
    V._register = function (sys, key) {
        const JsSIP = root.JsSIP;
        if (!JsSIP) return Promise.reject({ status: 'registration-failure', cause: 'JsSIP is not loaded (/lib/jssip.js)' });
        const proto = sys.serverProto === 'ws' ? 'ws' : 'wss';
        const dev = parseInt(this._comet.getDevId(), 10) || 0;
        // six digits of dev_id: a seventh would make the name another tenant's user (audit M7)
        if (dev > 999999) return Promise.reject({ status: 'registration-failure', cause: 'the Video API serves dev_id 0..999999' });
        const impi = pad6(dev) + this._myUserId();
        const url = proto + '://' + sys.serverName + ':' + sys.serverPort;
        const uaKey = url + '|' + impi + '|' + key;
        if (this._ua && this._ua.key !== uaKey) this._stopUa();
        if (!this._ua) {
            const ua = new JsSIP.UA({
                sockets: [new JsSIP.WebSocketInterface(url)],
                uri: 'sip:' + impi + '@' + sys.serverName,
                password: key,
                authorization_user: impi,
                display_name: impi,
                registrar_server: 'sip:' + sys.serverName,
                register: true,
                register_expires: 600,
                session_timers: false,
                user_agent: 'ccomet cometVideoApi ' + VERSION,
                connection_recovery_min_interval: 2,
                connection_recovery_max_interval: 10,
            });
            const u = { ua: ua, key: uaKey, registered: false, connected: false, failed: null, waiters: [] };
            const settle = (err) => {
                const w = u.waiters;
                u.waiters = [];
                for (const fn of w) fn(err);
            };
            ua.on('connected', () => { u.connected = true; });
            ua.on('registered', () => {
                u.registered = true;
                u.failed = null;
                settle(null);
            });
            ua.on('registrationFailed', (e) => {
                u.registered = false;
                u.failed = { status: 'registration-failure', cause: e && e.cause };
                settle(u.failed);
            });
            ua.on('disconnected', (e) => {
                // Never connected: the node is unreachable (or its certificate refused).
                if (!u.connected && e && e.error) {
                    u.failed = { status: 'registration-failure', cause: 'cannot reach ' + url };
                    settle(u.failed);
                }
            });
            ua.on('newRTCSession', (e) => {
                // The node never calls a browser; refuse anything that does.
                if (e.originator === 'remote') e.session.terminate({ status_code: 486 });
            });
            this._ua = u;
            ua.start();
        }
        const u = this._ua;
        if (u.registered) return Promise.resolve();
        if (u.failed) {
            // A failed registration is retried when a new call asks for it.
            u.failed = null;
            try {
                u.ua.register();
            } catch (e) {
                /* not connected: it registers on connect */
            }
        }
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                const i = u.waiters.indexOf(done);
                if (i >= 0) u.waiters.splice(i, 1);
                reject({ status: 'registration-failure', cause: 'no answer from ' + url + ' in ' + this.opt.registerTimeoutMs + ' ms' });
            }, this.opt.registerTimeoutMs);
            const done = (err) => {
                clearTimeout(timer);
                if (err) reject(err);
                else resolve();
            };
            u.waiters.push(done);
        });
    };

    V._stopUa = function () {
        const u = this._ua;
        if (!u) return;
        this._ua = null;
        try {
            u.ua.stop(); // unREGISTER, then the socket closes
        } catch (e) {
            /* already stopped */
        }
    };

    /** Stops the user agent once no call needs it (after the current event, so a call that is
     * accepted from an onCallEnd callback can still reuse it). */
    V._releaseUa = function () {
        Promise.resolve().then(() => {
            if (!this._active) this._stopUa();
        });
    };

    // ---- the SIP call ---------------------------------------------------------------------------

    V._invite = function (call, stream) {
        const u = this._ua;
        const sys = call.sys;
        const receiveVideo = call.type !== 'audio';
        const options = {
            mediaConstraints: { audio: false, video: false },
            rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: receiveVideo },
            pcConfig: { iceServers: this.opt.iceServers || [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' },
        };
        if (stream) options.mediaStream = stream;
        // the invitation ccomet signed for this user and room: the media node admits no one
        // without it when [sip] call_secret is set (the field is absent otherwise)
        if (sys.callToken) options.extraHeaders = ['X-Comet-Call-Token: ' + sys.callToken];
        // Handlers go in with the call: JsSIP emits the first events before call() returns.
        options.eventHandlers = {
            sdp: (e) => {
                if (e.originator !== 'local') return;
                e.sdp = setBandwidthInSdp(e.sdp, 'video', this.opt.bandwidth_video);
                e.sdp = setBandwidthInSdp(e.sdp, 'audio', this.opt.bandwidth_audio);
            },
            sending: () => this._mark(call, 'invited'),
            accepted: () => this._mark(call, 'answered'),
            icecandidate: (e) => {
                // JsSIP waits for the end of ICE gathering; on hosts with many interfaces that
                // can take long, so the offer goes out with what was gathered by iceGatheringMs.
                if (!call.iceTimer) call.iceTimer = setTimeout(() => e.ready(), this.opt.iceGatheringMs);
            },
        };
        let session;
        try {
            session = u.ua.call('sip:' + sys.sipNumber + '@' + sys.serverName, options);
        } catch (e) {
            this._end(call, 'terminated', { notify: true, cause: e && e.message });
            return;
        }
        call.session = session;
        const pc = session.connection;
        // What we receive but do not send (type 'none', or 'audio' in a video room) still gets a
        // sendrecv m-line without a track: the node mixes for sendrecv members only, and a
        // track can be added to it later. JsSIP creates the offer after this returns.
        const sending = stream ? stream.getTracks().map((tr) => tr.kind) : [];
        for (const kind of receiveVideo ? ['audio', 'video'] : ['audio']) {
            if (sending.indexOf(kind) < 0 && typeof pc.addTransceiver === 'function') pc.addTransceiver(kind, { direction: 'sendrecv' });
        }
        const onTrack = (ev) => this._attachRemote(call, ev.track);
        pc.addEventListener('track', onTrack);
        const onState = () => {
            const st = pc.connectionState;
            if (st === 'connected' && !call.media) {
                call.media = true;
                this._mark(call, 'connected');
                this._signal(call, 'mediaStart', { status: 'self' });
                this._maybeStarted(call);
            } else if (st === 'failed') {
                this._end(call, 'terminated', { notify: true, cause: 'media connection failed' });
            }
        };
        pc.addEventListener('connectionstatechange', onState);
        session.on('failed', (e) => {
            this._end(call, 'terminated', { notify: true, cause: e && e.cause, sipOriginator: e && e.originator });
        });
        session.on('ended', (e) => {
            this._end(call, 'terminated', { notify: true, cause: e && e.cause, sipOriginator: e && e.originator });
        });
        session.on('confirmed', () => onState());
    };

    V._attachRemote = function (call, track) {
        const els = call.els;
        if (!call.remote) call.remote = new MediaStream();
        call.remote.addTrack(track);
        if (track.kind === 'video') {
            if (els.video_remote) {
                // Without an audio element, the video element plays the sound too.
                const tracks = els.audio_remote ? [track] : call.remote.getTracks();
                els.video_remote.srcObject = new MediaStream(tracks);
                play(els.video_remote);
            }
        } else {
            let el = els.audio_remote;
            if (!el && (!els.video_remote || call.type === 'audio')) {
                el = call.ownAudio = new Audio();
                el.autoplay = true;
            }
            if (el) {
                el.srcObject = new MediaStream([track]);
                play(el);
            } else if (els.video_remote && els.video_remote.srcObject) {
                els.video_remote.srcObject = new MediaStream(call.remote.getTracks());
                play(els.video_remote);
            }
        }
    };

    // ---- ending ---------------------------------------------------------------------------------

    /**
     * Ends `call` once: tells the others (notify), ends the SIP session, releases the media,
     * leaves the call pipe and fires onCallEnd with `status`.
     */
    V._end = function (call, status, o) {
        if (!call || call.ended) return;
        o = o || {};
        call.ended = true;
        const now = Date.now();
        if (call.iceTimer) clearTimeout(call.iceTimer);
        if (o.notify && (call.accepted || status === 'busy')) {
            this._signal(call, 'out', { status: status === 'busy' ? 'busy' : 'hangup', callKey: call.sys.callKey });
        }
        if (call.session && !call.session.isEnded()) {
            try {
                call.session.terminate();
            } catch (e) {
                /* the socket is gone (node down): nothing to send */
            }
        }
        if (call.session && call.session.connection && call.session.connection.signalingState !== 'closed') {
            try {
                call.session.connection.close();
            } catch (e) {
                /* closed already */
            }
        }
        if (call.ownStream) stopTracks(call.stream);
        if (call.els.video_local && call.els.video_local.srcObject === call.stream) call.els.video_local.srcObject = null;
        if (call.ownAudio) call.ownAudio.srcObject = null;
        if (call.sub) this._comet.unsubscription(call.sub);
        call.sub = null;
        this._calls.delete(call.callPipe);
        if (this._last === call) this._last = null;
        const wasActive = this._active === call;
        if (wasActive) this._active = null;
        this._fire('onCallEnd', {
            action: 'out',
            status: status,
            callInfo: call.info,
            time: call.startedAt ? now - call.startedAt : 0,
            fullTime: call.acceptedAt ? now - call.acceptedAt : 0,
            type: call.type,
            cause: o.cause,
        });
        if (wasActive || !this._active) this._releaseUa();
    };

    /** Declines the last offered call (or the one given): the others see onOut with status busy. */
    V.busy = function (callInfo) {
        const call = this._find(callInfo) || this._last;
        if (!call || call.accepted) return false;
        this._end(call, 'busy', { notify: true });
        return true;
    };

    /**
     * Leaves the active call (or declines an offered one). doNotNotify: do not tell the others on
     * the call pipe (ccomet still reports the member leaving).
     */
    V.hangup = function (callInfo, doNotNotify) {
        const call = this._find(callInfo) || this._active || this._last;
        if (!call) return false;
        this._end(call, call.accepted ? 'hangup' : 'busy', { notify: !doNotNotify });
        return true;
    };

    V._find = function (x) {
        if (!x) return null;
        if (typeof x === 'string') return this._calls.get(x) || null;
        const pipe = x.callPipe || (x.sys && x.sys.callPipe) || (x.data && x.data.sys && x.data.sys.callPipe) || (x.callInfo && x.callInfo.sys && x.callInfo.sys.callPipe);
        return pipe ? this._calls.get(pipe) || null : null;
    };

    // ---- during the call ------------------------------------------------------------------------

    /** {video, audio} in kbit/s for the next calls' SDP (0 leaves the browser's choice); returns the values. */
    V.setBandwidth = function (bw) {
        if (bw && bw.video !== undefined) this.opt.bandwidth_video = Math.max(0, Number(bw.video) || 0);
        if (bw && bw.audio !== undefined) this.opt.bandwidth_audio = Math.max(0, Number(bw.audio) || 0);
        return { video: this.opt.bandwidth_video, audio: this.opt.bandwidth_audio };
    };

    /** {audio, video}: whether our microphone / camera are muted in the active call. */
    V.isMute = function () {
        const s = this._active && this._active.session;
        if (!s) return { audio: false, video: false };
        const m = s.isMuted();
        return { audio: !!m.audio, video: !!m.video };
    };

    V._setMute = function (what, mute) {
        const call = this._active;
        if (!call || !call.session || call.session.isEnded()) return false;
        const o = {};
        o[what] = true;
        if (mute) call.session.mute(o);
        else call.session.unmute(o);
        const m = this.isMute();
        this._signal(call, 'toggleMute', { isMute: m.audio && (m.video || call.sendType !== 'video'), audio: m.audio, video: m.video });
        return true;
    };

    /** Mutes (true) or unmutes (false) our microphone; the others get onToggleMute. */
    V.muteAudio = function (mute) {
        return this._setMute('audio', mute !== false);
    };

    /** Stops (true) or restarts (false) sending our camera; the others get onToggleMute. */
    V.muteVideo = function (mute) {
        return this._setMute('video', mute !== false);
    };

    /** Mutes or unmutes microphone and camera together; returns whether the audio is now muted. */
    V.toggleMute = function () {
        const call = this._active;
        if (!call || !call.session || call.session.isEnded()) return false;
        const mute = !this.isMute().audio;
        const o = { audio: true, video: call.sendType === 'video' };
        if (mute) call.session.mute(o);
        else call.session.unmute(o);
        const m = this.isMute();
        this._signal(call, 'toggleMute', { isMute: m.audio, audio: m.audio, video: m.video });
        return m.audio;
    };

    /** Puts the active call on hold or takes it off (a re-INVITE); returns whether it is now held. */
    V.toggleHold = function () {
        const call = this._active;
        if (!call || !call.session || call.session.isEnded()) return false;
        const held = !!call.session.isOnHold().local;
        if (held) call.session.unhold();
        else call.session.hold();
        this._signal(call, 'toggleHold', { isHold: !held });
        return !held;
    };

    V.isInCall = function () {
        return !!this._active;
    };

    /** Whether the call on callPipe (or the active call) has started (onCallStart fired). */
    V.isCallStart = function (callPipe) {
        const call = callPipe ? this._calls.get(callPipe) : this._active;
        return !!(call && call.started);
    };

    /** The members ccomet has reported in the active call: [{user_id, member_id}]. */
    V.members = function () {
        return this._active ? Array.from(this._active.members.values()) : [];
    };

    /** The active call's RTCPeerConnection (for getStats), or null. */
    V.peerConnection = function () {
        const s = this._active && this._active.session;
        return s && s.connection ? s.connection : null;
    };

    V.isFullScreenSupport = function () {
        const d = root.document;
        return !!(d && (d.fullscreenEnabled || d.webkitFullscreenEnabled));
    };

    /** Shows `elem` (default: the active call's remote video) full screen. */
    V.fullScreen = function (elem) {
        elem = elem || (this._active && this._active.els.video_remote);
        if (!elem) return false;
        const fn = elem.requestFullscreen || elem.webkitRequestFullscreen || elem.webkitEnterFullscreen;
        if (!fn) return false;
        const p = fn.call(elem);
        if (p && typeof p.catch === 'function') p.catch(function () { /* refused without a user gesture */ });
        return true;
    };

    CometVideoApi._internal = { setBandwidthInSdp: setBandwidthInSdp, pad6: pad6 };

    return { CometVideoApi: CometVideoApi, cometVideoApi: new CometVideoApi(null) };
});
