/* redis_link: one Redis connection, pipelined, watched, reconnecting; see redis_link.h. */
#include "state/redis_link.h"
#include "core/alloc.h"
#include "core/arena.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK   (64 * 1024)
#define BACKOFF_MIN  100
#define BACKOFF_MAX  5000
#define PING_IDLE_MS 1000 /* an idle link is probed this often */

enum link_state { L_WAIT, L_RESOLVING, L_CONNECTING, L_HANDSHAKE, L_UP, L_CLOSING };

struct pending {
    redis_reply_cb cb;
    void *ctx;
    uint64_t sent_ms, t0_ns;
};

struct redis_link {
    uv_loop_t *loop;
    struct redis_link_conf conf;
    struct redis_link_cbs cbs;
    enum link_state state;
    bool freed, was_up, writing;
    int open; /* handles and requests libuv still holds; the struct goes when 0 after free */
    uv_tcp_t *tcp;
    uv_connect_t connect;
    uv_getaddrinfo_t gai;
    bool gai_busy;
    uv_timer_t retry, watch;
    uv_prepare_t flush;
    uint64_t phase_ms;   /* when the current connect/handshake began */
    uint64_t last_rx_ms; /* last byte read */
    uint64_t last_ping_ms;
    unsigned backoff_ms;
    struct buf in, out;
    size_t need; /* bytes the reply at the head needs at least */
    struct arena arena;
    struct pending *fifo;
    size_t head, count, cap; /* a ring of commands in flight */
    size_t handshake_left;   /* AUTH/SELECT replies still to come before the link is up */
    uint64_t ups;            /* times the link came up */
    struct redis_link_stats stats;
};

static const struct resp_limits limits = {64u << 20, 4u << 20, 8};

int redis_addr_parse(const char *s, struct redis_link_conf *out, char *err, size_t errlen)
{
    const char *host = s, *port = NULL;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close) {
            snprintf(err, errlen, "`%s`: an IPv6 address needs its closing ]", s);
            return -1;
        }
        host = s + 1;
        hlen = (size_t)(close - host);
        if (close[1] == ':')
            port = close + 2;
        else if (close[1]) {
            snprintf(err, errlen, "`%s`: expected :port after ]", s);
            return -1;
        }
    } else {
        const char *colon = strrchr(s, ':');
        hlen = colon ? (size_t)(colon - s) : strlen(s);
        if (colon) port = colon + 1;
    }
    if (hlen == 0 || hlen >= sizeof out->host) {
        snprintf(err, errlen, "`%s`: expected host:port", s);
        return -1;
    }
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = 6379;
    if (port) {
        char *end;
        long p = strtol(port, &end, 10);
        if (!*port || *end || p < 1 || p > 65535) {
            snprintf(err, errlen, "`%s`: the port must be 1..65535", s);
            return -1;
        }
        out->port = (int)p;
    }
    return 0;
}

static uint64_t now_ms(const struct redis_link *l)
{
    return uv_now(l->loop);
}

/* ---- the ring of commands in flight ---------------------------------------------------------- */

static void fifo_push(struct redis_link *l, redis_reply_cb cb, void *ctx)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct pending *neu = xcalloc(cap, sizeof *neu);
        for (size_t i = 0; i < l->count; i++)
            neu[i] = l->fifo[(l->head + i) % l->cap];
        xfree(l->fifo);
        l->fifo = neu;
        l->cap = cap;
        l->head = 0;
    }
    struct pending *p = &l->fifo[(l->head + l->count++) % l->cap];
    p->cb = cb;
    p->ctx = ctx;
    p->sent_ms = now_ms(l);
    p->t0_ns = uv_hrtime();
}

static struct pending fifo_pop(struct redis_link *l)
{
    struct pending p = l->fifo[l->head];
    l->head = (l->head + 1) % l->cap;
    l->count--;
    return p;
}

/* Every command in flight fails: its outcome is unknown, never a success. */
static void fail_all(struct redis_link *l, const char *why)
{
    while (l->count) {
        struct pending p = fifo_pop(l);
        l->stats.failed++;
        if (p.cb) p.cb(p.ctx, NULL, why);
    }
}

/* ---- teardown and reconnect ------------------------------------------------------------------ */

static void maybe_release(struct redis_link *l)
{
    if (!l->freed || l->open) return;
    buf_free(&l->in);
    buf_free(&l->out);
    arena_free(&l->arena);
    xfree(l->fifo);
    xfree(l);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct redis_link *l = h->data;
    l->open--;
    maybe_release(l);
}

static void on_retry(uv_timer_t *t);

/* Waits the back-off (jittered by +-20 %, so a fleet of nodes does not reconnect in step), then
 * connects again; the back-off doubles up to BACKOFF_MAX until a connection is up. */
static void schedule_retry(struct redis_link *l)
{
    l->state = L_WAIT;
    unsigned base = l->backoff_ms;
    unsigned wait = base * 8 / 10 + (unsigned)(random() % (base * 4 / 10 + 1));
    uv_timer_start(&l->retry, on_retry, wait, 0);
    l->backoff_ms = base * 2 > BACKOFF_MAX ? BACKOFF_MAX : base * 2;
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct redis_link *l = h->data;
    xfree(h);
    l->open--;
    if (l->freed) {
        maybe_release(l);
        return;
    }
    schedule_retry(l);
}

/* The connection ends (or never began): what was in flight fails, the link retries later. */
static void link_down(struct redis_link *l, const char *why)
{
    if (l->state == L_CLOSING || l->state == L_WAIT) return;
    bool was_up = l->state == L_UP;
    if (l->was_up && !l->freed)
        LOG_RATELIMITED(LOG_WARN, "redis", "msg=\"redis link down\" server=%s:%d why=\"%s\"",
                        l->conf.host, l->conf.port, why);
    l->was_up = false;
    l->in.off = l->in.len = 0;
    l->out.off = l->out.len = 0;
    l->need = 0;
    l->handshake_left = 0;
    if (l->tcp) {
        l->state = L_CLOSING; /* on_tcp_closed schedules the retry */
        uv_close((uv_handle_t *)l->tcp, on_tcp_closed);
        l->tcp = NULL;
    } else if (!l->freed) {
        schedule_retry(l); /* still resolving: its answer is dropped when it comes */
    }
    fail_all(l, why);
    if (was_up && !l->freed && l->cbs.on_down) l->cbs.on_down(l->cbs.ctx, l, why);
}

static void start_connect(struct redis_link *l);

static void on_retry(uv_timer_t *t)
{
    struct redis_link *l = t->data;
    if (l->freed || l->state != L_WAIT) return;
    if (l->gai_busy) { /* an earlier lookup has not come back yet */
        schedule_retry(l);
        return;
    }
    start_connect(l);
}

/* ---- writing --------------------------------------------------------------------------------- */

struct write_req {
    uv_write_t req;
    struct redis_link *l;
    struct buf data;
};

static void flush(struct redis_link *l);

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct redis_link *l = w->l;
    buf_free(&w->data);
    xfree(w);
    l->open--;
    l->writing = false;
    if (l->freed) {
        maybe_release(l);
        return;
    }
    if (status < 0) {
        if (status != UV_ECANCELED) link_down(l, uv_strerror(status));
        return;
    }
    if (buf_unread(&l->out)) flush(l);
}

static void flush(struct redis_link *l)
{
    if (l->writing || !l->tcp || !buf_unread(&l->out)) return;
    if (l->state != L_UP && l->state != L_HANDSHAKE) return;
    struct write_req *w = xcalloc(1, sizeof *w);
    w->l = l;
    w->data = l->out;
    buf_init(&l->out);
    uv_buf_t ub = uv_buf_init((char *)buf_head(&w->data), (unsigned)buf_unread(&w->data));
    l->writing = true;
    l->open++;
    int rc = uv_write(&w->req, (uv_stream_t *)l->tcp, &ub, 1, on_write);
    if (rc != 0) {
        l->open--;
        l->writing = false;
        buf_free(&w->data);
        xfree(w);
        link_down(l, uv_strerror(rc));
    }
}

static void on_flush(uv_prepare_t *p)
{
    struct redis_link *l = p->data;
    uv_prepare_stop(p);
    flush(l);
}

static void queue_command(struct redis_link *l, const void *cmd, size_t len, redis_reply_cb cb,
                          void *ctx)
{
    buf_append(&l->out, cmd, len);
    /* a subscriber's replies go to on_push once it is up: nothing waits in the ring for them */
    if (l->state != L_UP || !l->conf.subscriber) fifo_push(l, cb, ctx);
    l->stats.commands++;
    if (!l->writing) uv_prepare_start(&l->flush, on_flush);
}

void redis_link_send(struct redis_link *l, const void *cmd, size_t len, redis_reply_cb cb,
                     void *ctx)
{
    if (l->state != L_UP) {
        l->stats.failed++;
        if (cb) cb(ctx, NULL, "Redis is unreachable");
        return;
    }
    queue_command(l, cmd, len, cb, ctx);
}

/* ---- reading --------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *out)
{
    struct redis_link *l = h->data;
    (void)hint;
    size_t want = READ_CHUNK;
    if (l->need > buf_unread(&l->in) && l->need - buf_unread(&l->in) > want)
        want = l->need - buf_unread(&l->in); /* a long bulk: one allocation for the rest */
    if (l->in.off > l->in.cap / 2) buf_compact(&l->in);
    buf_reserve(&l->in, want);
    *out = uv_buf_init((char *)l->in.data + l->in.len, (unsigned)(l->in.cap - l->in.len));
}

static void dispatch(struct redis_link *l, const struct resp_value *v)
{
    if (v->type == RESP_PUSH || (l->conf.subscriber && l->state == L_UP)) {
        if (l->cbs.on_push) l->cbs.on_push(l->cbs.ctx, l, v);
        return;
    }
    if (!l->count) {
        link_down(l, "a reply that no command asked for");
        return;
    }
    struct pending p = fifo_pop(l);
    l->stats.latency_us_sum += (uv_hrtime() - p.t0_ns) / 1000;
    l->stats.latency_n++;
    if (p.cb) p.cb(p.ctx, v, NULL);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct redis_link *l = s->data;
    (void)b;
    if (n < 0) {
        link_down(l, n == UV_EOF ? "Redis closed the connection" : uv_strerror((int)n));
        return;
    }
    l->in.len += (size_t)n;
    l->last_rx_ms = now_ms(l);
    while (!l->freed && (l->state == L_UP || l->state == L_HANDSHAKE) && buf_unread(&l->in) &&
           buf_unread(&l->in) >= l->need) {
        struct resp_value *v;
        size_t used;
        const char *err = NULL;
        int rc = resp_parse((const char *)buf_head(&l->in), buf_unread(&l->in), &limits, &l->arena,
                            &v, &used, &err);
        if (rc == RESP_AGAIN) {
            l->need = used;
            break;
        }
        if (rc == RESP_ERROR) {
            char why[160];
            snprintf(why, sizeof why, "a reply Redis sent is not RESP: %s", err);
            link_down(l, why);
            break;
        }
        l->need = 0;
        dispatch(l, v);
        if (l->state == L_UP || l->state == L_HANDSHAKE) buf_consume(&l->in, used);
        arena_reset(&l->arena);
    }
}

/* ---- connecting ------------------------------------------------------------------------------ */

static void handshake_reply(void *ctx, const struct resp_value *v, const char *err)
{
    struct redis_link *l = ctx;
    (void)err;
    if (!v) return; /* the link went down: link_down did the rest */
    if (v->type == RESP_ERR) {
        char why[300];
        snprintf(why, sizeof why, "Redis refused the connection's setup: %.*s",
                 (int)(v->len > 200 ? 200 : v->len), v->s);
        LOG_RATELIMITED(LOG_ERROR, "redis", "msg=\"%s\" server=%s:%d", why, l->conf.host,
                        l->conf.port);
        link_down(l, why);
        return;
    }
    if (--l->handshake_left) return;
    l->state = L_UP;
    l->was_up = true;
    if (l->ups++) l->stats.reconnects++;
    l->backoff_ms = BACKOFF_MIN;
    LOG(LOG_INFO, "redis", "msg=\"redis link up\" server=%s:%d%s", l->conf.host, l->conf.port,
        l->conf.subscriber ? " role=subscriber" : "");
    if (l->cbs.on_up) l->cbs.on_up(l->cbs.ctx, l);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct redis_link *l = req->data;
    l->open--;
    if (l->freed) {
        maybe_release(l);
        return;
    }
    if (l->state != L_CONNECTING) return; /* given up on (timeout): the close is under way */
    if (status < 0) {
        link_down(l, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(l->tcp, 1);
    l->state = L_HANDSHAKE;
    l->phase_ms = l->last_rx_ms = now_ms(l);
    uv_read_start((uv_stream_t *)l->tcp, on_alloc, on_read);
    /* the setup commands go first; a link is up when all are answered (PING when there are none,
     * so that "up" always means Redis answered) */
    struct buf b;
    buf_init(&b);
    if (l->conf.password[0]) {
        if (l->conf.user[0]) {
            resp_begin(&b, 3);
            resp_arg_str(&b, "AUTH");
            resp_arg_str(&b, l->conf.user);
        } else {
            resp_begin(&b, 2);
            resp_arg_str(&b, "AUTH");
        }
        resp_arg_str(&b, l->conf.password);
        queue_command(l, buf_head(&b), buf_unread(&b), handshake_reply, l);
        l->handshake_left++;
        b.off = b.len = 0;
    }
    if (l->conf.db) {
        resp_begin(&b, 2);
        resp_arg_str(&b, "SELECT");
        resp_arg_int(&b, l->conf.db);
        queue_command(l, buf_head(&b), buf_unread(&b), handshake_reply, l);
        l->handshake_left++;
        b.off = b.len = 0;
    }
    if (!l->handshake_left) {
        resp_begin(&b, 1);
        resp_arg_str(&b, "PING");
        queue_command(l, buf_head(&b), buf_unread(&b), handshake_reply, l);
        l->handshake_left++;
    }
    buf_free(&b);
}

static void connect_to(struct redis_link *l, const struct sockaddr *addr)
{
    l->tcp = xcalloc(1, sizeof *l->tcp);
    uv_tcp_init(l->loop, l->tcp);
    l->tcp->data = l;
    l->open++;
    l->state = L_CONNECTING;
    l->connect.data = l;
    int rc = uv_tcp_connect(&l->connect, l->tcp, addr, on_connect);
    if (rc != 0) {
        link_down(l, uv_strerror(rc));
        return;
    }
    l->open++;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct redis_link *l = req->data;
    l->gai_busy = false;
    l->open--;
    if (l->freed) {
        if (res) uv_freeaddrinfo(res);
        maybe_release(l);
        return;
    }
    if (l->state != L_RESOLVING) { /* given up on (timeout): a retry is scheduled */
        if (res) uv_freeaddrinfo(res);
        return;
    }
    if (status < 0 || !res) {
        link_down(l, status < 0 ? uv_strerror(status) : "no address");
        if (res) uv_freeaddrinfo(res);
        return;
    }
    connect_to(l, res->ai_addr);
    uv_freeaddrinfo(res);
}

static void start_connect(struct redis_link *l)
{
    l->phase_ms = now_ms(l);
    struct sockaddr_storage ss;
    if (uv_ip4_addr(l->conf.host, l->conf.port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(l->conf.host, l->conf.port, (struct sockaddr_in6 *)&ss) == 0) {
        connect_to(l, (const struct sockaddr *)&ss);
        return;
    }
    char port[8];
    snprintf(port, sizeof port, "%d", l->conf.port);
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    l->gai.data = l;
    l->state = L_RESOLVING;
    if (uv_getaddrinfo(l->loop, &l->gai, on_resolved, l->conf.host, port, &hints) != 0) {
        link_down(l, "cannot resolve the Redis host");
        return;
    }
    l->gai_busy = true;
    l->open++;
}

/* Every 100 ms: a connect or a command past the timeout takes the link down; an idle link is
 * probed. */
static void on_watch(uv_timer_t *t)
{
    struct redis_link *l = t->data;
    uint64_t now = now_ms(l);
    switch (l->state) {
    case L_RESOLVING:
    case L_CONNECTING:
    case L_HANDSHAKE:
        if (now - l->phase_ms > l->conf.timeout_ms) {
            char why[96];
            snprintf(why, sizeof why, "no connection to Redis within %u ms", l->conf.timeout_ms);
            link_down(l, why);
        }
        return;
    case L_UP: break;
    default: return;
    }
    if (l->conf.subscriber) {
        /* replies are not matched to commands: silence past a probe is what counts */
        if (l->last_ping_ms > l->last_rx_ms && now - l->last_ping_ms > l->conf.timeout_ms) {
            char why[96];
            snprintf(why, sizeof why, "Redis did not answer a probe in %u ms", l->conf.timeout_ms);
            link_down(l, why);
            return;
        }
    } else if (l->count && now - l->fifo[l->head].sent_ms > l->conf.timeout_ms) {
        char why[96];
        snprintf(why, sizeof why, "Redis did not answer in %u ms", l->conf.timeout_ms);
        link_down(l, why);
        return;
    }
    if (now - l->last_rx_ms >= PING_IDLE_MS && now - l->last_ping_ms >= PING_IDLE_MS &&
        (l->conf.subscriber || !l->count)) {
        static const char ping[] = "*1\r\n$4\r\nPING\r\n";
        l->last_ping_ms = now;
        queue_command(l, ping, sizeof ping - 1, NULL, NULL);
    }
}

struct redis_link *redis_link_new(uv_loop_t *loop, const struct redis_link_conf *conf,
                                  const struct redis_link_cbs *cbs)
{
    struct redis_link *l = xcalloc(1, sizeof *l);
    l->loop = loop;
    l->conf = *conf;
    if (!l->conf.timeout_ms) l->conf.timeout_ms = 1000;
    if (cbs) l->cbs = *cbs;
    l->backoff_ms = BACKOFF_MIN;
    buf_init(&l->in);
    buf_init(&l->out);
    arena_init(&l->arena);
    uv_timer_init(loop, &l->retry);
    uv_timer_init(loop, &l->watch);
    uv_prepare_init(loop, &l->flush);
    l->retry.data = l->watch.data = l->flush.data = l;
    l->open += 3;
    uv_timer_start(&l->watch, on_watch, 100, 100);
    l->state = L_WAIT;
    start_connect(l);
    return l;
}

void redis_link_free(struct redis_link *l)
{
    if (!l) return;
    l->freed = true;
    if (l->gai_busy) uv_cancel((uv_req_t *)&l->gai);
    link_down(l, "the server is stopping");
    fail_all(l, "the server is stopping");
    uv_close((uv_handle_t *)&l->retry, on_handle_closed);
    uv_close((uv_handle_t *)&l->watch, on_handle_closed);
    uv_close((uv_handle_t *)&l->flush, on_handle_closed);
}

bool redis_link_is_up(const struct redis_link *l)
{
    return l->state == L_UP;
}

const struct redis_link_conf *redis_link_conf(const struct redis_link *l)
{
    return &l->conf;
}

const struct redis_link_stats *redis_link_stats(const struct redis_link *l)
{
    return &l->stats;
}
