/*
 * CometServerApi.js: the ccomet JavaScript client.
 *
 * ccomet is a C comet server that replaces CppComet. This file is our own implementation of the
 * client API that CppComet's front ends call (the `cometApi` object). The names and argument
 * orders are the same. The code is new, written from the protocol description. It has no
 * dependencies, is written in ES2017 and needs no build step.
 *
 * What this file owns
 *   - one WebSocket per comet node, with reconnection (exponential back-off plus jitter);
 *   - the local signal bus: subscription()/unsubscription() callbacks keyed by "pipe",
 *     "pipe.event", "msg", "msg.event" and "#pipe";
 *   - de-duplication (by (node, pipe, id), by data._cometApi_uuid, and across nodes in multi-node
 *     mode) and recovery of missed messages after a reconnect (pipe_since);
 *   - one shared socket for all the tabs of a browser: a leader tab is elected with
 *     navigator.locks, and the other tabs talk to it over a BroadcastChannel.
 *
 * Wire protocol (ccomet, which is CppComet's protocol plus fixes and the pipe_since extension)
 *   URL     ws[s]://<node>/ws/sesion=<user_key>&myid=<user_id>&devid=<dev_id>&v=4.09&uuid=<32 hex>&api=js
 *           [&ack=1&marker=1]
 *           (`sesion` is spelled that way on purpose. The server reads the fields by position.)
 *   server -> client: text frames. Each holds one JSON object per line:
 *           {"pipe","event","data","message_send_time", optional "user_id","marker","fromQueue",
 *            "history","id","authorized","server"}
 *           pipe "sys"/serverInfo  : data = the real user key (a key login) or a SIP credential
 *                                    that ends with the token (a JWT login), authorized =
 *                                    true|false; cluster =
 *                                    the nodes' shared state (ccomet on Redis): its ids are the
 *                                    same on every node, so last ids follow a move between nodes
 *           pipe "sys"/error       : data = {error, ...}
 *           pipe "msg"             : a private message (fromQueue:true when it was queued offline)
 *           pipe "_answer_to_<p>"  : the answer to web_pipe2, data = {number_messages, message}
 *           pipe "_answer_pipe_count": data = {user_in_pipe:N} (CppComet sent ["user_in_pipe",N])
 *           pipe "_answer"         : answers to track_pipe_users / user_data (they carry a marker)
 *           "id"                   : a ccomet extension: a server-wide monotonic message id
 *   client -> server: text frames whose fields are separated by "\n":
 *           subscription\n<p1>\n<p2>...          always the complete list of pipes
 *           web_pipe2\n<pipe>\n<event>\n*\n<message>
 *           pipe_log\n<pipe>\n<marker>\n
 *           pipe_count\n<pipe>\n<marker>\n
 *           track_pipe_users\n<pipe>\n<marker>
 *           user_data\n<marker>\n<user_id>
 *           user_status\n<user_id>
 *           pipe_since\n<pipe>\n<last_id>         (ccomet extension, sent after every reconnect)
 *           msg_ack\n<queue_id>\n...               (ccomet extension: with &ack=1 in the URL, a
 *                                                 queued private message carries "queue_id" and
 *                                                 stays queued until it is acked)
 *           (&marker=1 in the URL, a ccomet extension: pipe_log's history carries the
 *            request's marker; CppComet sent none, so without it the history has no marker)
 *
 * In a browser, this file defines the globals `CometServer` (a constructor that also works as a
 * factory) and `cometApi` (a ready instance). Under Node it exports { CometServer, cometApi }.
 */
(function (root, factory) {
    'use strict';
    var api = factory(root);
    if (typeof module === 'object' && module && module.exports) {
        module.exports = api;
    } else {
        root.CometServer = api.CometServer;
        root.cometApi = api.cometApi;
    }
})(typeof globalThis !== 'undefined' ? globalThis : typeof self !== 'undefined' ? self : this, function (root) {
    'use strict';

    // ---- constants ------------------------------------------------------------------------------

    const API_VERSION = '4.09'; // sent as v=; the server wants major >= 4 for the modern envelope
    const DEFAULT_PORT = 8087;
    const SUBSCRIBE_DEBOUNCE_MS = 50;
    const BACKOFF_BASE_MS = 300;
    const BACKOFF_CAP_MS = 10000;
    const CONNECT_TIMEOUT_MS = 10000;
    const MAX_PIPES = 32; // the server refuses longer subscription lists
    const MAX_FRAME_BYTES = 65535; // the server cannot read 64-bit frame lengths and closes the socket
    const MAX_QUEUED_COMMANDS = 256; // commands issued while no socket is open
    const SEEN_IDS = 4096; // per node: remembered (pipe, id) pairs
    const SEEN_UUIDS = 1024; // remembered _cometApi_uuid values
    const CROSS_NODE_WINDOW_MS = 5 * 60 * 1000;
    const LOG_REQUEST_TTL_MS = 60000; // get_pipe_log callbacks stay registered this long
    const PIPE_RE = /^[A-Za-z0-9_-]+$/;
    const MARKER_SIGNAL = ':marker:';
    const ALL_SIGNAL = 'comet_server_msg';

    // ---- small helpers --------------------------------------------------------------------------

    function randomBytes(n) {
        const out = new Uint8Array(n);
        const c = root.crypto;
        if (c && typeof c.getRandomValues === 'function') {
            c.getRandomValues(out);
        } else {
            for (let i = 0; i < n; i++) out[i] = Math.floor(Math.random() * 256);
        }
        return out;
    }

    function randomHex(len) {
        const b = randomBytes(Math.ceil(len / 2));
        let s = '';
        for (let i = 0; i < b.length; i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16);
        return s.slice(0, len);
    }

    function randomAlnum(len) {
        const abc = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
        const b = randomBytes(len);
        let s = '';
        for (let i = 0; i < len; i++) s += abc[b[i] % abc.length];
        return s;
    }

    function utf8Length(s) {
        if (typeof TextEncoder !== 'undefined') return new TextEncoder().encode(s).length;
        return unescape(encodeURIComponent(s)).length;
    }

    function isPipeName(name, maxLen) {
        return typeof name === 'string' && name.length >= 2 && name.length <= maxLen && PIPE_RE.test(name);
    }

    /** PHP-style stripslashes: "\x" becomes "x", and "\\" becomes "\". */
    function stripslashes(s) {
        return s.replace(/\\(.?)/g, function (m, c) {
            return c === '0' ? '\u0000' : c;
        });
    }

    /**
     * Turns a message's `data` into a value. ccomet delivers the text exactly as it was sent, so
     * JSON.parse is tried first. Old servers (CppComet) delivered MySQL-escaped text. For them
     * (`legacy`), up to three rounds of unescaping are tried before giving up.
     */
    function parseData(data, legacy) {
        if (typeof data !== 'string') return data;
        try {
            return JSON.parse(data);
        } catch (e) {
            /* not JSON */
        }
        if (!legacy || data.indexOf('\\') < 0) return data;
        let s = data;
        for (let round = 0; round < 3; round++) {
            const t = stripslashes(s.replace(/\\'/g, "'"));
            if (t === s) break;
            s = t;
            try {
                return JSON.parse(s);
            } catch (e) {
                /* try another round */
            }
        }
        return stripslashes(data); // escaped plain text from an old server
    }

    /**
     * CppComet sent history without `history`. Its only fromQueue messages on a pipe other than
     * msg were history, so a message without `history` and `id` is read that way.
     */
    function isHistory(env, pipe, hasId, isAnswer) {
        if (env.history !== undefined) return env.history === true;
        return !hasId && env.fromQueue === true && pipe !== 'msg' && !isAnswer;
    }

    /** pipe_count answers: ccomet sends {user_in_pipe:N}, CppComet sent ["user_in_pipe", N]. */
    function normalizeCount(data) {
        if (Array.isArray(data)) {
            const out = {};
            for (let i = 0; i + 1 < data.length; i += 2) out[data[i]] = data[i + 1];
            return out;
        }
        return data;
    }

    /** A Set that forgets its oldest entries beyond `cap`. */
    function BoundedSet(cap) {
        this.cap = cap;
        this.set = new Set();
        this.order = [];
        this.head = 0;
    }
    BoundedSet.prototype.has = function (k) {
        return this.set.has(k);
    };
    BoundedSet.prototype.add = function (k) {
        if (this.set.has(k)) return;
        this.set.add(k);
        this.order.push(k);
        if (this.set.size > this.cap) {
            this.set.delete(this.order[this.head++]);
            if (this.head > this.cap) {
                this.order = this.order.slice(this.head);
                this.head = 0;
            }
        }
    };

    function safeCall(fn, arg, where) {
        try {
            fn(arg);
        } catch (e) {
            if (root.console) root.console.error('[ccomet] error in ' + where + ' callback:', e);
        }
    }

    function defaultWebSocket() {
        if (typeof root.WebSocket === 'function') return root.WebSocket;
        if (typeof require === 'function') {
            try {
                return require('ws');
            } catch (e) {
                /* not installed */
            }
        }
        return null;
    }

    function isBrowser() {
        return typeof root.window !== 'undefined' && typeof root.document !== 'undefined';
    }

    // ---- Link: one node's socket, with reconnection --------------------------------------------

    /**
     * Owns the WebSocket to one node. It reconnects after every close. The delay is
     * base * 2^(failures-1), capped, times a jitter factor in [0.75, 1.25). A connection counts
     * as successful (and resets the failure count) only once a message has arrived on it.
     */
    function Link(owner, node) {
        this.owner = owner;
        this.node = node;
        this.ws = null;
        this.open = false;
        this.failures = 0; // consecutive connections that closed before any message arrived
        this.received = false; // a message arrived on the current connection
        this.everReceived = false;
        this.useWss = owner._wss;
        this.timer = null; // reconnect timer
        this.guard = null; // connect-timeout timer
        this.stopped = false;
        this.sentSubs = null; // the last subscription command sent on this connection
    }

    Link.prototype.connect = function () {
        if (this.stopped) return;
        const o = this.owner;
        const t = o._timers;
        this.timer = null;
        this.open = false;
        this.received = false;
        this.sentSubs = null;
        let ws;
        try {
            ws = new o._WS(o.getUrl(this.node, this.useWss));
        } catch (e) {
            o._warn('cannot open a WebSocket to ' + this.node, e);
            this.failures++;
            this._retry();
            return;
        }
        this.ws = ws;
        const guard = t.setTimeout(() => {
            this.guard = null;
            if (this.ws === ws && !this.open) this._drop();
        }, CONNECT_TIMEOUT_MS);
        this.guard = guard;
        ws.onopen = () => {
            if (this.ws !== ws) return;
            this._clearGuard();
            this.open = true;
            o._linkOpened(this);
        };
        ws.onmessage = (ev) => {
            if (this.ws !== ws) return;
            if (!this.received) {
                this.received = true;
                this.everReceived = true;
                this.failures = 0;
            }
            const d = ev && ev.data;
            if (typeof d === 'string') o._linkFrame(this, d);
            else if (typeof Buffer === 'function' && Buffer.isBuffer(d)) o._linkFrame(this, d.toString('utf8'));
            // The server sends text frames only; anything else is ignored.
        };
        ws.onclose = () => {
            if (this.ws !== ws) return;
            this._clearGuard();
            this._closed();
        };
        ws.onerror = () => {
            /* onclose follows */
        };
    };

    Link.prototype.send = function (text) {
        if (!this.open || !this.ws) return false;
        try {
            this.ws.send(text);
            return true;
        } catch (e) {
            this.owner._warn('send failed on ' + this.node, e);
            return false;
        }
    };

    Link.prototype._clearGuard = function () {
        if (this.guard !== null) this.owner._timers.clearTimeout(this.guard);
        this.guard = null;
    };

    /** Detaches from the current socket and closes it. */
    Link.prototype._detach = function () {
        this._clearGuard();
        const ws = this.ws;
        this.ws = null;
        if (!ws) return;
        ws.onopen = ws.onmessage = ws.onclose = null;
        ws.onerror = function () {};
        try {
            ws.close();
        } catch (e) {
            /* already closed */
        }
    };

    Link.prototype._drop = function () {
        this._detach();
        this._closed();
    };

    Link.prototype._closed = function () {
        const wasOpen = this.open;
        this.ws = null;
        this.open = false;
        this.sentSubs = null;
        if (!this.received) this.failures++;
        this.owner._linkClosed(this, wasOpen);
        this._retry();
    };

    Link.prototype.backoff = function () {
        const n = Math.max(0, this.failures - 1);
        const base = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, Math.min(n, 20)));
        return Math.round(Math.min(BACKOFF_CAP_MS, base * (0.75 + 0.5 * this.owner._random())));
    };

    Link.prototype._retry = function () {
        if (this.stopped) return;
        const o = this.owner;
        // Like CppComet: with no explicit `wss` option, after repeated failures with nothing ever
        // received, try the other scheme.
        if (o._wssAuto && !this.everReceived && this.failures > 2) this.useWss = !this.useWss;
        // roundrobin: a node that keeps failing is replaced by the next one in the list; in a
        // ccomet cluster (the nodes share one state, see _intake) at once: any node will do.
        if (o._roundrobin && o._nodes.length > 1 &&
            (o._cluster || (this.failures >= 3 && this.failures % 3 === 0))) {
            this.node = o._nodes[(o._nodes.indexOf(this.node) + 1) % o._nodes.length];
        }
        const delay = this.backoff();
        o._fire('reconnecting', { node: this.node, delay: delay, failures: this.failures });
        this.timer = o._timers.setTimeout(() => this.connect(), delay);
    };

    Link.prototype.stop = function () {
        this.stopped = true;
        if (this.timer !== null) this.owner._timers.clearTimeout(this.timer);
        this.timer = null;
        this._detach();
        this.open = false;
    };

    // ---- CometServer ------------------------------------------------------------------------------

    /**
     * A comet client. `new CometServer()` and `CometServer()` both return a new, stopped
     * instance. Call start() to connect.
     */
    function CometServer() {
        if (!(this instanceof CometServer)) return new CometServer();
        this._opts = {};
        this._running = false;
        this._subs = new Map(); // subscription id -> {id, signal, pipe, cb, once}
        this._bySignal = new Map(); // signal -> [sub]
        this._events = new Map(); // on()/off() events
        this._subSeq = 0;
        this._markerSeq = 0;
        this._tabId = randomAlnum(8);
        this._requests = new Map(); // marker -> pending request
        this._authorized = undefined;
        this._realUserKey = '';
        this._authSuccess = [];
        this._authFail = [];
        this._links = [];
        this._nodes = [];
        this._queue = [];
        this._nodeState = new Map(); // node -> {lastIds: Map(pipe -> id), seen: BoundedSet, exact}
        this._seenUuids = new BoundedSet(SEEN_UUIDS);
        this._seenQueued = new BoundedSet(SEEN_IDS); // queue ids of offline messages shown
        this._fingerprints = new Map(); // cross-node de-duplication
        this._fpSweep = 0;
        this._subTimer = null;
        this._tab = null;
        this._uuid = randomHex(32);
        this._timers = {
            setTimeout: (fn, ms) => root.setTimeout(fn, ms),
            clearTimeout: (id) => root.clearTimeout(id),
        };
        this._now = Date.now;
        this._random = Math.random;
    }

    const P = CometServer.prototype;

    P.version = API_VERSION;

    /**
     * Starts the client.
     * opts: dev_id, user_id, user_key, node (string, comma-separated string or array) or nodes,
     *   wss (bool; by default it follows the page), roundrobin (one node only), nostat (accepted;
     *   this client never sends statistics), uuid (32 hex chars; generated if absent).
     * Extra options, mostly for tests: WebSocket (constructor), timers ({setTimeout,
     *   clearTimeout}), now(), random(), shareTabs (false disables the tab sharing), locks and
     *   BroadcastChannel (used for the tab sharing), legacyUnescape (default true), debug.
     * callback: called once, with {authorized}, when the first serverInfo arrives.
     */
    P.start = function (opts, callback) {
        if (this._running) this.stop();
        opts = Object.assign({}, this._opts, opts || {});
        this._opts = opts;
        this._running = true;
        if (opts.timers) this._timers = opts.timers;
        if (typeof opts.now === 'function') this._now = opts.now;
        if (typeof opts.random === 'function') this._random = opts.random;
        this._WS = opts.WebSocket || defaultWebSocket();
        if (!this._WS) throw new Error('ccomet: no WebSocket implementation (install the "ws" package under Node)');

        opts.dev_id = opts.dev_id === undefined || opts.dev_id === null || opts.dev_id === '' ? 0 : opts.dev_id;
        opts.user_id = opts.user_id === undefined || opts.user_id === null || opts.user_id === '' ? 0 : opts.user_id;
        opts.user_key = opts.user_key === undefined || opts.user_key === null ? '' : String(opts.user_key);

        const pageHttps = !!(root.location && root.location.protocol === 'https:');
        this._wssAuto = opts.wss === undefined && isBrowser();
        this._wss = opts.wss === undefined ? pageHttps : !!opts.wss;
        this._roundrobin = !!opts.roundrobin;
        this._cluster = null; /* set by a serverInfo that names the node's cluster */
        this._nodes = this._parseNodes(opts.nodes || opts.node);
        this._uuid = this._pickUuid(opts.uuid);
        this._authorized = undefined;
        this._realUserKey = '';
        this._startCallback = typeof callback === 'function' ? callback : null;

        const locks = opts.locks || (root.navigator && root.navigator.locks);
        const BC = opts.BroadcastChannel || root.BroadcastChannel;
        const share = opts.shareTabs !== false && locks && typeof locks.request === 'function' &&
            typeof BC === 'function' && (isBrowser() || opts.locks);
        if (share) this._startTabs(locks, BC);
        else this._openLinks();
        if (this._bySignal.size) this._scheduleSubscriptions();
        return this;
    };

    /** Closes every socket and stops reconnecting. Subscriptions are kept for a later start(). */
    P.stop = function () {
        if (!this._running) return;
        this._running = false;
        this._stopTabs();
        this._closeLinks();
        if (this._subTimer !== null) this._timers.clearTimeout(this._subTimer);
        this._subTimer = null;
        this._queue = [];
        this._nodeState = new Map();
        this._fingerprints = new Map();
        for (const r of this._requests.values()) if (r.timer !== null) this._timers.clearTimeout(r.timer);
        this._requests = new Map();
        this._authorized = undefined;
    };

    P._parseNodes = function (spec) {
        let list = [];
        if (Array.isArray(spec)) list = spec.slice();
        else if (typeof spec === 'string' && spec) list = spec.split(',');
        list = list.map((s) => String(s).trim()).filter(Boolean);
        if (!list.length) {
            const host = root.location && root.location.hostname ? root.location.hostname : 'localhost';
            list = [host + ':' + DEFAULT_PORT];
        }
        return list;
    };

    P._pickUuid = function (given) {
        if (typeof given === 'string' && given) return given;
        // In a browser the uuid is kept in localStorage, so every tab (and so every leader)
        // presents the same one to the server.
        // Otherwise the instance keeps the uuid it was created with.
        const store = this._opts.storage || (isBrowser() ? root.localStorage : null);
        if (!store) return this._uuid;
        const key = 'ccomet_uuid_' + this._opts.dev_id + '_' + this._opts.user_id;
        try {
            const old = store.getItem(key);
            if (old && /^[0-9a-f]{32}$/.test(old)) return old;
            store.setItem(key, this._uuid);
        } catch (e) {
            /* storage disabled */
        }
        return this._uuid;
    };

    /** The WebSocket URL for `node`. A node may carry its own ws:// or wss:// scheme. */
    P.getUrl = function (node, useWss) {
        let n = node === undefined ? this._nodes[0] : node;
        let scheme = (useWss === undefined ? this._wss : useWss) ? 'wss' : 'ws';
        const m = /^(wss?):\/\/(.*)$/.exec(n);
        if (m) {
            scheme = m[1];
            n = m[2];
        }
        n = n.replace(/\/+$/, '');
        // The server compares the key byte for byte, so only characters that would break the URL
        // are escaped.
        const key = this._opts.user_key.replace(/[^A-Za-z0-9._~=+\/-]/g, encodeURIComponent);
        return scheme + '://' + n + '/ws/sesion=' + key + '&myid=' + this._opts.user_id + '&devid=' +
            this._opts.dev_id + '&v=' + API_VERSION + '&uuid=' + this._uuid + '&api=js&ack=1&marker=1';
    };

    P._openLinks = function () {
        this._closeLinks();
        let nodes = this._nodes;
        if (this._roundrobin && nodes.length > 1) {
            const uid = parseInt(this._opts.user_id, 10);
            const i = uid > 0 ? uid % nodes.length : Math.floor(this._random() * nodes.length);
            nodes = [nodes[i]];
        }
        this._links = nodes.map((n) => new Link(this, n));
        for (const l of this._links) l.connect();
    };

    P._closeLinks = function () {
        for (const l of this._links) l.stop();
        this._links = [];
    };

    P._multiNode = function () {
        return this._nodes.length > 1 && !this._roundrobin;
    };

    // ---- link callbacks ----

    P._linkOpened = function (link) {
        this._syncSubscriptions(link, true);
        // Flush the commands issued while no socket was open.
        const q = this._queue;
        this._queue = [];
        for (const item of q) this._sendCommand(item.text, item.mode);
        this._fire('connect', { node: link.node });
        this._post({ type: 'status', connected: true, node: link.node });
    };

    /** Acks queued messages on the link they came from, one msg_ack per frame's worth. */
    P._ackQueued = function (node, queueId) {
        const link = this._links.find((l) => l.node === node);
        if (!link) return; // a follower tab: the leader acks
        if (!link.acks) link.acks = [];
        link.acks.push(queueId);
        if (link.acks.length > 1) return;
        Promise.resolve().then(() => {
            const ids = link.acks;
            link.acks = [];
            for (let i = 0; i < ids.length; i += 256) link.send('msg_ack\n' + ids.slice(i, i + 256).join('\n'));
        });
    };

    P._linkFrame = function (link, text) {
        this._post({ type: 'frame', node: link.node, text: text });
        this._onFrame(link.node, text);
    };

    P._linkClosed = function (link, wasOpen) {
        if (!wasOpen) return;
        this._fire('disconnect', { node: link.node });
        this._post({ type: 'status', connected: false, node: link.node });
    };

    /** Whether at least one socket is open (in a follower tab: whether the leader said so). */
    P.isConnected = function () {
        if (this._tab && !this._tab.leader) return !!this._tab.connected;
        return this._links.some((l) => l.open);
    };

    // ---- commands ----

    /**
     * Sends a command. mode 'all': to every open socket (publishing); 'one': to one socket
     * (queries, so that one answer comes back). With no open socket the command is queued.
     */
    P._sendCommand = function (text, mode) {
        const tab = this._tab;
        if (tab && !tab.leader) {
            const seq = ++tab.seq;
            tab.pending.set(seq, { text: text, mode: mode });
            this._post({ type: 'cmd', seq: seq, text: text, mode: mode });
            return true;
        }
        const open = this._links.filter((l) => l.open);
        if (!open.length) {
            if (this._queue.length >= MAX_QUEUED_COMMANDS) {
                this._warn('command queue full; dropping the oldest command');
                this._queue.shift();
            }
            this._queue.push({ text: text, mode: mode });
            return true;
        }
        if (mode === 'one') return open[0].send(text);
        let ok = false;
        for (const l of open) ok = l.send(text) || ok;
        return ok;
    };

    // ---- subscriptions ----

    /**
     * Maps a subscription name to {signal, pipe}. `signal` is the local key that callbacks are
     * filed under. `pipe` is the server pipe to subscribe to, or null for names that exist only
     * locally (msg, sys, answers).
     */
    P._resolveName = function (name) {
        if (typeof name !== 'string' || !name) return { signal: ALL_SIGNAL, pipe: null };
        if (name.charAt(0) === '#') return { signal: '_answer_to_' + name.slice(1), pipe: null };
        const dot = name.indexOf('.');
        const base = dot < 0 ? name : name.slice(0, dot);
        const local = base === 'msg' || base === 'sys' || base === ALL_SIGNAL || base.charAt(0) === '_';
        return { signal: name, pipe: !local && isPipeName(base, 63) ? base : null };
    };

    /**
     * Calls `callback({data, server_info})` for messages on `name`, which may be "pipe",
     * "pipe.event", "msg", "msg.event", "#pipe" (the answers to web_pipe_send on pipe), or a
     * function alone (every message). Returns a subscription id for unsubscription().
     */
    P.subscription = function (name, callback) {
        return this._addSub(name, callback, false);
    };

    /** Like subscription(), but the callback runs once and is then removed. */
    P.subscription_once = function (name, callback) {
        return this._addSub(name, callback, true);
    };

    P._addSub = function (name, callback, once) {
        if (typeof name === 'function' && callback === undefined) {
            callback = name;
            name = '';
        }
        if (typeof callback !== 'function') {
            this._warn('subscription(' + name + '): the callback is not a function');
            return false;
        }
        const r = this._resolveName(name);
        const id = 'csub_' + ++this._subSeq;
        const sub = { id: id, signal: r.signal, pipe: r.pipe, cb: callback, once: once };
        this._subs.set(id, sub);
        let list = this._bySignal.get(r.signal);
        if (!list) this._bySignal.set(r.signal, (list = []));
        list.push(sub);
        if (r.pipe) this._scheduleSubscriptions();
        return id;
    };

    /**
     * Removes subscriptions. It takes an id returned by subscription(), or a name ("pipe",
     * "pipe.event", ...), which removes every callback filed under that name.
     */
    P.unsubscription = function (idOrName, id) {
        if (typeof id === 'string' && this._subs.has(id)) idOrName = id;
        let removed = false;
        if (this._subs.has(idOrName)) {
            removed = this._removeSub(this._subs.get(idOrName));
        } else if (typeof idOrName === 'string') {
            const signal = this._resolveName(idOrName).signal;
            const list = (this._bySignal.get(signal) || []).slice();
            for (const s of list) removed = this._removeSub(s) || removed;
        }
        return removed;
    };

    P._removeSub = function (sub) {
        if (!this._subs.delete(sub.id)) return false;
        const list = this._bySignal.get(sub.signal);
        if (list) {
            const i = list.indexOf(sub);
            if (i >= 0) list.splice(i, 1);
            if (!list.length) this._bySignal.delete(sub.signal);
        }
        if (sub.pipe) this._scheduleSubscriptions();
        return true;
    };

    /** The pipes this tab wants from the server. */
    P._ownPipes = function () {
        const set = new Set();
        for (const s of this._subs.values()) if (s.pipe) set.add(s.pipe);
        return Array.from(set);
    };

    /**
     * The full list for the subscription command: this tab's pipes plus the follower tabs'
     * pipes. private_ pipes go last (an anonymous user is refused them, and CppComet then
     * dropped every name after the refused one). At most MAX_PIPES names are sent.
     */
    P._serverPipes = function () {
        const set = new Set(this._ownPipes());
        if (this._tab && this._tab.leader) {
            for (const pipes of this._tab.followers.values()) for (const p of pipes) if (isPipeName(p, 63)) set.add(p);
        }
        const all = Array.from(set);
        const list = all.filter((p) => p.indexOf('private_') !== 0).concat(all.filter((p) => p.indexOf('private_') === 0));
        if (list.length > MAX_PIPES) {
            this._warn('more than ' + MAX_PIPES + ' pipes; the server accepts ' + MAX_PIPES + ', the rest are not subscribed');
            list.length = MAX_PIPES;
        }
        return list;
    };

    P._scheduleSubscriptions = function () {
        if (!this._running || this._subTimer !== null) return;
        this._subTimer = this._timers.setTimeout(() => {
            this._subTimer = null;
            this._flushSubscriptions();
        }, SUBSCRIBE_DEBOUNCE_MS);
    };

    P._flushSubscriptions = function () {
        if (!this._running) return;
        const tab = this._tab;
        if (tab && !tab.leader) {
            this._post({ type: 'subs', pipes: this._ownPipes() });
            return;
        }
        for (const l of this._links) if (l.open) this._syncSubscriptions(l, false);
    };

    /**
     * Sends the full subscription list on `link` if it differs from what that link last sent.
     * On a fresh connection (`opened`) it then asks for the messages missed on every pipe that
     * has a last id (pipe_since).
     */
    P._syncSubscriptions = function (link, opened) {
        const pipes = this._serverPipes();
        const text = 'subscription\n' + pipes.join('\n');
        if (link.sentSubs !== text && (pipes.length || link.sentSubs !== null)) {
            if (link.send(text)) link.sentSubs = text;
        }
        if (!opened) return;
        const st = this._state(link.node);
        const since = [];
        for (const p of pipes) {
            const last = st.lastIds.get(p);
            if (last !== undefined && link.send('pipe_since\n' + p + '\n' + last)) since.push([p, last]);
        }
        this._setFloor(link.node, st.maxId, since);
        this._post({ type: 'floor', node: link.node, max: st.maxId, since: since });
    };

    /** The lowest ids a new connection to `node` can bring (see _intake). */
    P._setFloor = function (node, max, since) {
        this._state(node).floor = { max: max, since: new Map(since) };
    };

    // ---- publishing ----

    /**
     * Publishes `msg` (an object is JSON-encoded) on `pipe` with `event`. The pipe must start
     * with web_ or webauth_ (webauth_ needs an authorized user). Also accepted:
     * web_pipe_send("pipe.event", msg), and web_pipe_send(pipe, msg) with the event "undefined".
     * Returns false when the message was refused locally.
     */
    P.web_pipe_send = function (pipe, event, msg) {
        if (arguments.length === 2) {
            msg = event;
            const dot = typeof pipe === 'string' ? pipe.indexOf('.') : -1;
            if (dot > 0) {
                event = pipe.slice(dot + 1);
                pipe = pipe.slice(0, dot);
            } else {
                event = 'undefined';
            }
        }
        const text = this._publishCommand(pipe, event, msg);
        if (text === null) return false;
        this._echo(pipe, event, msg);
        return this._sendCommand(text, 'all');
    };

    /**
     * Sends the same message `count` times, `interval` ms apart, all with the same
     * data._cometApi_uuid, so that receivers show it once even if some copies are lost. Only an
     * object (or JSON-object text) can carry the uuid, so any other message is sent once.
     */
    P.multi_web_pipe_send = function (pipe, event, msg, count, interval) {
        count = count === undefined ? 3 : Math.max(1, count | 0);
        interval = interval === undefined ? 1000 : Math.max(0, +interval);
        let obj = null;
        if (msg && typeof msg === 'object' && !Array.isArray(msg)) obj = Object.assign({}, msg);
        else if (typeof msg === 'string') {
            try {
                const v = JSON.parse(msg);
                if (v && typeof v === 'object' && !Array.isArray(v)) obj = v;
            } catch (e) {
                /* plain text */
            }
        }
        if (!obj) return this.web_pipe_send(pipe, event, msg);
        obj._cometApi_uuid = 'jsapi' + randomAlnum(11);
        if (this._publishCommand(pipe, event, obj) === null) return false;
        const sendCopy = (left) => {
            if (!this._running) return;
            this.web_pipe_send(pipe, event, obj);
            if (left > 1) this._timers.setTimeout(() => sendCopy(left - 1), interval);
        };
        sendCopy(count);
        return obj._cometApi_uuid;
    };

    /** Builds the web_pipe2 command, or returns null (and warns) if the message is invalid. */
    P._publishCommand = function (pipe, event, msg) {
        if (!isPipeName(pipe, 64) || !/^(web_|webauth_)/.test(pipe)) {
            this._warn('web_pipe_send: invalid pipe "' + pipe + '" (it must start with web_ or webauth_ and contain only A-Za-z0-9_-)');
            return null;
        }
        if (pipe.indexOf('webauth_') === 0 && this._authorized === false) {
            this._warn('web_pipe_send: only authorized users may publish on ' + pipe);
            return null;
        }
        event = event === undefined || event === null ? 'undefined' : String(event);
        if (!event || event.length > 64 || !PIPE_RE.test(event)) {
            this._warn('web_pipe_send: invalid event "' + event + '"');
            return null;
        }
        const body = msg !== null && typeof msg === 'object' ? JSON.stringify(msg) : String(msg);
        const text = 'web_pipe2\n' + pipe + '\n' + event + '\n*\n' + body;
        if (utf8Length(text) > MAX_FRAME_BYTES) {
            this._warn('web_pipe_send: the message is too long (at most ' + MAX_FRAME_BYTES + ' bytes per frame)');
            return null;
        }
        return text;
    };

    /**
     * The server does not send a publisher its own message. Tabs that share the socket are
     * separate receivers, though, so the publishing tab shows the message to the other tabs.
     */
    P._echo = function (pipe, event, msg) {
        if (!this._tab) return;
        const env = {
            pipe: pipe,
            event: String(event),
            data: msg !== null && typeof msg === 'object' ? JSON.stringify(msg) : String(msg),
            user_id: this._authorized ? Number(this._opts.user_id) || 0 : 0,
            message_send_time: Math.floor(this._now() / 1000),
        };
        this._post({ type: 'echo', env: env });
    };

    // ---- queries ----

    P._newMarker = function () {
        return 'm' + this._tabId + 'x' + ++this._markerSeq;
    };

    P._addRequest = function (marker, pipe, callback, once, ttl) {
        const req = { marker: marker, pipe: pipe, cb: callback, once: once, seen: new Set(), timer: null, t: this._now() };
        if (ttl) req.timer = this._timers.setTimeout(() => this._requests.delete(marker), ttl);
        this._requests.set(marker, req);
        return req;
    };

    /**
     * Asks for the stored history of `pipe`. The messages arrive on the pipe's subscriptions
     * with server_info.history === true (except those already shown). If `callback` is given,
     * it is called for every message of this answer.
     */
    P.get_pipe_log = function (pipe, callback) {
        if (!isPipeName(pipe, 64)) {
            this._warn('get_pipe_log: invalid pipe "' + pipe + '"');
            return false;
        }
        const marker = this._newMarker();
        if (typeof callback === 'function') this._addRequest(marker, pipe, callback, false, LOG_REQUEST_TTL_MS);
        return this._sendCommand('pipe_log\n' + pipe + '\n' + marker + '\n', 'one');
    };

    /** callback({data: {user_in_pipe: N}, server_info}) */
    P.count_users_in_pipe = function (pipe, callback) {
        if (!isPipeName(pipe, 64)) {
            this._warn('count_users_in_pipe: invalid pipe "' + pipe + '"');
            return false;
        }
        const marker = this._newMarker();
        if (typeof callback === 'function') this._addRequest(marker, pipe, callback, true, 0);
        return this._sendCommand('pipe_count\n' + pipe + '\n' + marker + '\n', 'one');
    };

    /** callback({data: [{user_id, uuid}, ...], server_info}); pipe must start with track_. */
    P.getTrackPipeUsers = function (pipe, callback) {
        if (!isPipeName(pipe, 64) || pipe.indexOf('track_') !== 0) {
            this._warn('getTrackPipeUsers: "' + pipe + '" is not a track_ pipe');
            return false;
        }
        const marker = this._newMarker();
        if (typeof callback === 'function') this._addRequest(marker, pipe, callback, true, 0);
        return this._sendCommand('track_pipe_users\n' + pipe + '\n' + marker, 'one');
    };

    /** callback({data: {user_data, user_id}, server_info}) */
    P.getUserData = function (user_id, callback) {
        const id = parseInt(user_id, 10);
        if (!(id >= 0)) {
            this._warn('getUserData: invalid user id "' + user_id + '"');
            return false;
        }
        const marker = this._newMarker();
        if (typeof callback === 'function') this._addRequest(marker, null, callback, true, 0);
        return this._sendCommand('user_data\n' + marker + '\n' + id, 'one');
    };

    /**
     * (ccomet addition) Asks when a user was last online. The answer has no marker, so the
     * callback gets the next answer for that user: {data: {last_online_time, ...}, server_info}.
     */
    P.getUserStatus = function (user_id, callback) {
        const id = parseInt(user_id, 10);
        if (!(id >= 0)) return false;
        if (typeof callback === 'function') this.subscription_once('_answer_user_status.user_status_' + id, callback);
        return this._sendCommand('user_status\n' + id, 'one');
    };

    // ---- authorization and identity ----

    /** undefined until the server has answered, then true or false. */
    P.isAuthorized = function () {
        return this._authorized;
    };

    /** Calls cb() when the user becomes authorized (at once if already authorized). */
    P.onAuthSuccess = function (cb) {
        if (typeof cb !== 'function') return;
        this._authSuccess.push(cb);
        if (this._authorized === true) Promise.resolve().then(() => safeCall(cb, undefined, 'onAuthSuccess'));
    };

    /** Calls cb() when the server refuses the key (at once if it already has). */
    P.onAuthFail = function (cb) {
        if (typeof cb !== 'function') return;
        this._authFail.push(cb);
        if (this._authorized === false) Promise.resolve().then(() => safeCall(cb, undefined, 'onAuthFail'));
    };

    /** CppComet's spelling of onAuthFail. */
    P.onAuthFalill = P.onAuthFail;

    P.getUserId = function () {
        return this._opts.user_id;
    };
    P.getDevId = function () {
        return this._opts.dev_id;
    };
    /** serverInfo data: the user's key (key login) or the token session's SIP credential (JWT
     *  login); the Video API's SIP password. */
    P.getRealUserKey = function () {
        return this._realUserKey;
    };
    P.getUUID = function () {
        return this._uuid;
    };

    /** Callbacks run only when the state changes, not on every reconnect. */
    P._setAuth = function (authorized, key) {
        const prev = this._authorized;
        this._authorized = authorized;
        if (authorized) this._realUserKey = key;
        if (this._startCallback) {
            const cb = this._startCallback;
            this._startCallback = null;
            safeCall(cb, { authorized: authorized }, 'start');
        }
        if (prev === authorized) return;
        this._fire('auth', authorized);
        for (const cb of authorized ? this._authSuccess : this._authFail) safeCall(cb, undefined, authorized ? 'onAuthSuccess' : 'onAuthFail');
    };

    // ---- on()/off() events ----

    /**
     * Events: 'connect' and 'disconnect' ({node}), 'reconnecting' ({node, delay, failures}),
     * 'message' (every message, as {data, server_info}), 'error' (sys errors), 'auth' (bool),
     * 'leader' (this tab now holds the shared socket).
     */
    P.on = function (name, cb) {
        if (typeof cb !== 'function') return this;
        let list = this._events.get(name);
        if (!list) this._events.set(name, (list = []));
        list.push(cb);
        return this;
    };

    P.off = function (name, cb) {
        const list = this._events.get(name);
        if (!list) return this;
        const i = list.indexOf(cb);
        if (i >= 0) list.splice(i, 1);
        return this;
    };

    P._fire = function (name, arg) {
        const list = this._events.get(name);
        if (!list) return;
        for (const cb of list.slice()) safeCall(cb, arg, name);
    };

    P._warn = function (text, err) {
        if (root.console && this._opts.quiet !== true) root.console.warn('[ccomet] ' + text, err === undefined ? '' : err);
    };

    // ---- incoming messages ----

    P._state = function (node) {
        // the nodes of a ccomet cluster number messages alike: one state for all of them, so a
        // connection that moves to another node asks it for what it missed (pipe_since)
        if (this._cluster) node = this._cluster;
        let st = this._nodeState.get(node);
        if (!st) {
            // exact: the node delivers message text as it was sent (ccomet), so no unescaping
            st = { lastIds: new Map(), seen: new BoundedSet(SEEN_IDS), exact: false, maxId: 0, floor: null };
            this._nodeState.set(node, st);
        }
        return st;
    };

    /** One frame from `node`: one JSON envelope per line. */
    P._onFrame = function (node, text) {
        const lines = String(text).split('\n');
        for (const line of lines) {
            if (!line.trim()) continue;
            let env;
            try {
                env = JSON.parse(line);
            } catch (e) {
                this._warn('unreadable frame from ' + node, line);
                continue;
            }
            if (env && typeof env === 'object' && !Array.isArray(env)) this._intake(node, env, false);
        }
    };

    /**
     * Handles one envelope: de-duplication, last-id bookkeeping, then dispatch. `node` is null
     * for messages echoed by another tab. Returns whether the message was dispatched.
     */
    P._intake = function (node, env, local) {
        const pipe = typeof env.pipe === 'string' && env.pipe ? env.pipe : 'msg';
        const event = env.event === undefined || env.event === null ? '' : String(env.event);
        const isAnswer = pipe === 'sys' || pipe.charAt(0) === '_';
        const hasId = typeof env.id === 'number' && isFinite(env.id);
        const st = node === null ? null : this._state(node);

        let dup = false;
        if (st && (hasId || (pipe === 'sys' && typeof env.server === 'string' && /^ccomet\b/.test(env.server)))) st.exact = true;
        if (hasId && st) {
            const key = pipe + '\n' + env.id;
            dup = st.seen.has(key);
            if (!dup && !isAnswer && env.history !== true) {
                // On this connection the server can only send ids above the floor: replays are
                // above the id given to pipe_since, and live messages are newer than anything
                // seen before. An unseen id at or below the floor means the server restarted and
                // numbers from scratch: forget the old numbering. (Replays are not required to
                // carry fromQueue.)
                const f = st.floor;
                if (f && env.id <= (f.since.has(pipe) ? f.since.get(pipe) : f.max)) {
                    st.seen = new BoundedSet(SEEN_IDS);
                    st.lastIds.clear();
                    st.maxId = 0;
                    st.floor = null;
                }
                const prev = st.lastIds.get(pipe);
                if (prev === undefined || env.id > prev) st.lastIds.set(pipe, env.id);
            }
            if (env.id > st.maxId) st.maxId = env.id;
            st.seen.add(key);
        }
        const req = this._findRequest(env, pipe, hasId, isAnswer);
        if (dup && !req) return false;

        const legacy = !local && !(st && st.exact) && this._opts.legacyUnescape !== false;
        let data = pipe === 'sys' && event === 'serverInfo' ? env.data : parseData(env.data, legacy);
        if (pipe === '_answer_pipe_count') data = normalizeCount(data);
        const history = isHistory(env, pipe, hasId, isAnswer);

        if (pipe === 'sys') {
            if (event === 'serverInfo' && typeof env.cluster === 'string' && env.cluster && !this._cluster && node !== null) {
                // a ccomet node of a cluster: what this node's state knows is the cluster's
                const key = 'cluster:' + env.cluster;
                if (st && !this._nodeState.has(key)) this._nodeState.set(key, st);
                this._cluster = key;
            }
            if (event === 'serverInfo') this._setAuth(env.authorized === true, env.authorized === true ? String(env.data || '') : '');
            else if (event === 'error') this._fire('error', data);
        }

        const arg = {
            data: data,
            server_info: {
                user_id: env.user_id,
                pipe: pipe,
                event: event,
                history: history,
                marker: env.marker,
                uuid: env.uuid,
                id: hasId ? env.id : undefined,
                fromQueue: env.fromQueue === true,
                message_send_time: env.message_send_time,
            },
        };

        // The answer to one of our requests gets to its callback even if the message stream
        // already showed it (a history answer repeats messages seen live).
        if (req) this._answerRequest(req, arg, data);
        if (dup) return false;

        if (!isAnswer) {
            const u = data && typeof data === 'object' ? data._cometApi_uuid : undefined;
            if (typeof u === 'string' && u) {
                if (this._seenUuids.has(u)) return false;
                this._seenUuids.add(u);
            }
            if (node !== null && this._multiNode() && !this._crossNodeFresh(node, pipe, event, env)) return false;
        }

        if (pipe === 'msg' && typeof env.queue_id === 'number') {
            // A message that waited in the offline queue: the server keeps it until we ack it,
            // and sends it again if this connection dies first, so show it once per queue id.
            if (node !== null) this._ackQueued(node, env.queue_id);
            if (this._seenQueued.has(env.queue_id)) return false;
            this._seenQueued.add(env.queue_id);
        }
        if (pipe === 'msg') this._emit(['msg', 'msg.' + event], arg);
        else this._emit([pipe, pipe + '.' + event], arg);
        this._emit([ALL_SIGNAL], arg);
        this._fire('message', arg);
        return true;
    };

    /**
     * The pending request a message answers: by marker, or, for history from an old server
     * (which sent no marker), the oldest get_pipe_log request for that pipe.
     */
    P._findRequest = function (env, pipe, hasId, isAnswer) {
        if (env.marker !== undefined) return this._requests.get(String(env.marker));
        if (!isHistory(env, pipe, hasId, isAnswer)) return undefined;
        let best;
        for (const r of this._requests.values()) if (!r.once && r.pipe === pipe && (!best || r.t < best.t)) best = r;
        return best;
    };

    P._answerRequest = function (req, arg, data) {
        const u = data && typeof data === 'object' ? data._cometApi_uuid : undefined;
        if (typeof u === 'string' && u) {
            if (req.seen.has(u)) return;
            req.seen.add(u);
        }
        if (req.once) {
            this._requests.delete(req.marker);
            if (req.timer !== null) this._timers.clearTimeout(req.timer);
        }
        safeCall(req.cb, arg, 'request');
    };

    /**
     * Multi-node mode: each node delivers every message once, so a message seen k times from
     * one node and j times from another happened max(k, j) times. Counts are kept per content
     * fingerprint for CROSS_NODE_WINDOW_MS. A copy is new only if its node's count then exceeds
     * every other node's count.
     */
    P._crossNodeFresh = function (node, pipe, event, env) {
        const now = this._now();
        if (now - this._fpSweep > 10000) {
            this._fpSweep = now;
            for (const [k, e] of this._fingerprints) if (now - e.t > CROSS_NODE_WINDOW_MS) this._fingerprints.delete(k);
        }
        const body = typeof env.data === 'string' ? env.data : JSON.stringify(env.data);
        const fp = pipe + '\n' + event + '\n' + env.user_id + '\n' + body;
        let e = this._fingerprints.get(fp);
        if (!e) this._fingerprints.set(fp, (e = { counts: new Map(), t: now }));
        e.t = now;
        const mine = (e.counts.get(node) || 0) + 1;
        e.counts.set(node, mine);
        for (const [k, v] of e.counts) if (k !== node && v >= mine) return false;
        return true;
    };

    P._emit = function (signals, arg) {
        for (const signal of signals) {
            const list = this._bySignal.get(signal);
            if (!list) continue;
            for (const sub of list.slice()) {
                if (!this._subs.has(sub.id)) continue;
                if (sub.once) this._removeSub(sub);
                safeCall(sub.cb, arg, signal);
            }
        }
    };

    // ---- sharing one socket between tabs --------------------------------------------------------
    //
    // Every tab asks for the lock 'ccomet-leader-<dev_id>-<user_id>'. The tab that holds it is
    // the leader: it owns the sockets, and it posts every frame it receives on the
    // BroadcastChannel 'ccomet-<dev_id>-<user_id>'. Every tab (the leader included) runs each
    // frame through the same _intake, so de-duplication and last ids agree in every tab. A tab that
    // takes over therefore knows the last ids and sends pipe_since. Followers post their pipe
    // lists ('subs') and their commands ('cmd', resent to a new leader until acknowledged).
    //
    // Channel messages: hello, subs, cmd, bye (follower -> leader); leader, state, frame, floor,
    // ack, status (leader -> all); echo (any tab -> the others).

    P._startTabs = function (locks, BC) {
        const key = this._opts.dev_id + '-' + this._opts.user_id;
        const tab = {
            leader: false,
            connected: false,
            channel: new BC('ccomet-' + key),
            pending: new Map(),
            seq: 0,
            followers: new Map(),
            abort: typeof AbortController === 'function' ? new AbortController() : null,
            release: null,
            onPageHide: null,
        };
        this._tab = tab;
        tab.channel.onmessage = (ev) => this._onTabMessage(tab, ev && ev.data);
        const lockOpts = tab.abort ? { signal: tab.abort.signal } : {};
        const granted = () =>
            new Promise((resolve) => {
                if (this._tab !== tab) return resolve();
                tab.release = resolve;
                this._becomeLeader(tab);
            });
        Promise.resolve()
            .then(() => locks.request('ccomet-leader-' + key, lockOpts, granted))
            .catch(() => {
                /* aborted by stop() */
            });
        if (isBrowser() && typeof root.addEventListener === 'function') {
            tab.onPageHide = () => this._post({ type: 'bye' });
            root.addEventListener('pagehide', tab.onPageHide);
        }
        this._post({ type: 'hello' });
    };

    P._stopTabs = function () {
        const tab = this._tab;
        if (!tab) return;
        this._tab = null;
        // A leader tells the others that its socket is gone; one of them takes over.
        this._postOn(tab, tab.leader ? { type: 'status', connected: false, node: '' } : { type: 'bye' });
        if (tab.onPageHide && typeof root.removeEventListener === 'function') root.removeEventListener('pagehide', tab.onPageHide);
        if (tab.release) tab.release();
        else if (tab.abort) tab.abort.abort();
        try {
            tab.channel.close();
        } catch (e) {
            /* closed */
        }
    };

    P._becomeLeader = function (tab) {
        tab.leader = true;
        tab.followers = new Map();
        this._postOn(tab, { type: 'leader' });
        // Commands this tab posted that no leader acknowledged: this tab now runs them.
        const pending = Array.from(tab.pending.values());
        tab.pending.clear();
        this._openLinks();
        for (const c of pending) this._sendCommand(c.text, c.mode);
        this._fire('leader', true);
    };

    P._post = function (msg) {
        if (this._tab) this._postOn(this._tab, msg);
    };

    P._postOn = function (tab, msg) {
        msg.from = this._tabId;
        try {
            tab.channel.postMessage(msg);
        } catch (e) {
            this._warn('BroadcastChannel post failed', e);
        }
    };

    P._onTabMessage = function (tab, m) {
        if (!m || typeof m !== 'object' || m.from === this._tabId || this._tab !== tab) return;
        if (tab.leader) {
            switch (m.type) {
                case 'hello':
                    this._postOn(tab, { type: 'leader' });
                    this._postOn(tab, this._tabState());
                    break;
                case 'subs':
                    tab.followers.set(m.from, Array.isArray(m.pipes) ? m.pipes : []);
                    this._scheduleSubscriptions();
                    break;
                case 'bye':
                    if (tab.followers.delete(m.from)) this._scheduleSubscriptions();
                    break;
                case 'cmd':
                    if (typeof m.text === 'string') this._sendCommand(m.text, m.mode === 'one' ? 'one' : 'all');
                    this._postOn(tab, { type: 'ack', to: m.from, seq: m.seq });
                    break;
                case 'echo':
                    if (m.env) this._intake(null, m.env, true);
                    break;
            }
            return;
        }
        switch (m.type) {
            case 'leader':
                // A (new) leader: give it this tab's pipes and unacknowledged commands.
                this._postOn(tab, { type: 'subs', pipes: this._ownPipes() });
                for (const [seq, c] of tab.pending) this._postOn(tab, { type: 'cmd', seq: seq, text: c.text, mode: c.mode });
                break;
            case 'state':
                tab.connected = !!m.connected;
                if (typeof m.authorized === 'boolean') this._setAuth(m.authorized, m.key || '');
                break;
            case 'frame':
                if (typeof m.text === 'string') this._onFrame(String(m.node), m.text);
                break;
            case 'floor':
                if (Array.isArray(m.since)) this._setFloor(String(m.node), +m.max || 0, m.since);
                break;
            case 'ack':
                if (m.to === this._tabId) tab.pending.delete(m.seq);
                break;
            case 'status':
                tab.connected = !!m.connected;
                this._fire(m.connected ? 'connect' : 'disconnect', { node: m.node });
                break;
            case 'echo':
                if (m.env) this._intake(null, m.env, true);
                break;
        }
    };

    P._tabState = function () {
        return { type: 'state', authorized: this._authorized, key: this._realUserKey, connected: this.isConnected() };
    };

    // ---- exports ---------------------------------------------------------------------------------

    // Internals exposed for tests; they are not part of the API.
    CometServer._internal = { parseData: parseData, stripslashes: stripslashes, normalizeCount: normalizeCount, BoundedSet: BoundedSet, Link: Link };
    CometServer.version = API_VERSION;

    return { CometServer: CometServer, cometApi: new CometServer() };
});
