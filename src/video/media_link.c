/* media_link: an Event Socket client with reconnect and a heartbeat; see media_link.h. */
#include "video/media_link.h"
#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BACKOFF_MIN_MS    200
#define BACKOFF_MAX_MS    2000
#define TICK_MS           250
#define HEARTBEAT_MS      1000 /* an idle up link sends `api status` this often */
#define CONNECT_WITHIN_MS 2000 /* connect, auth and subscribe within this */
#define MAX_MESSAGE       (16 * 1024 * 1024)
#define MAX_PENDING       4096

enum link_state {
    LINK_IDLE,        /* waiting to reconnect */
    LINK_RESOLVING,   /* getaddrinfo */
    LINK_CONNECTING,  /* tcp connect */
    LINK_AUTH_WAIT,   /* for auth/request */
    LINK_AUTH_SENT,   /* for the auth reply */
    LINK_EVENTS_SENT, /* for the event subscription's reply */
    LINK_UP,
};

struct pending {
    media_api_cb cb;
    void *ctx;
    uint64_t sent_ms;
};

struct media_link {
    uv_loop_t *loop;
    struct media_node_conf conf;
    int index;
    unsigned answer_ms; /* a command unanswered this long: the node is down */
    struct media_link_cbs cbs;
    enum link_state state;
    uv_tcp_t *tcp; /* (nullable) the current socket, freed in its close callback */
    uv_getaddrinfo_t gai;
    bool gai_busy;
    uv_connect_t connect;
    uv_timer_t timer;
    struct buf in;
    struct pending *pending; /* FIFO ring of api commands awaiting their answer */
    size_t p_head, p_count, p_cap;
    uint64_t state_since_ms, last_heartbeat_ms, retry_at_ms;
    unsigned backoff_ms;
    bool heartbeat_pending; /* the head command is our own `api status` */
    bool freeing;
    bool timer_closed;
    char last_down[128];
};

static uint64_t now_ms(const struct media_link *l)
{
    return uv_now(l->loop);
}

/* ---- the [sip] freeswitch line ------------------------------------------------------------ */

static void trim(char *s)
{
    size_t n = strlen(s), i = 0;
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    while (isspace((unsigned char)s[i]))
        i++;
    memmove(s, s + i, n - i + 1);
}

static int parse_port(const char *v, int *out)
{
    char *end;
    long p = strtol(v, &end, 10);
    if (!*v || *end || p < 1 || p > 65535) return -1;
    *out = (int)p;
    return 0;
}

int media_node_parse(const char *line, struct media_node_conf *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->port = ESL_DEFAULT_PORT;
    snprintf(out->pwd, sizeof out->pwd, "%s", ESL_DEFAULT_PASSWORD);
    snprintf(out->ws_proto, sizeof out->ws_proto, "wss");
    char copy[1024];
    if (snprintf(copy, sizeof copy, "%s", line) >= (int)sizeof copy) {
        snprintf(err, errlen, "[sip] freeswitch: the line is too long");
        return -1;
    }
    char *p = copy;
    trim(p);
    if (strncmp(p, "[]", 2) == 0) p += 2;
    for (char *save = NULL, *tok = strtok_r(p, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            snprintf(err, errlen, "[sip] freeswitch: '%s' is not Key=Value", tok);
            return -1;
        }
        *eq = '\0';
        char *k = tok, *v = eq + 1;
        trim(k);
        trim(v);
        size_t vl = strlen(v);
        int bad = 0;
        if (strcasecmp(k, "Server") == 0) {
            bad = vl == 0 || vl >= sizeof out->server;
            if (!bad) memcpy(out->server, v, vl + 1);
        } else if (strcasecmp(k, "Port") == 0) {
            bad = parse_port(v, &out->port);
        } else if (strcasecmp(k, "Pwd") == 0) {
            bad = vl >= sizeof out->pwd || strpbrk(v, "\r\n") != NULL;
            if (!bad) memcpy(out->pwd, v, vl + 1);
        } else if (strcasecmp(k, "WSport") == 0) {
            bad = parse_port(v, &out->ws_port);
        } else if (strcasecmp(k, "WShost") == 0) {
            bad = vl == 0 || vl >= sizeof out->ws_host;
            if (!bad) memcpy(out->ws_host, v, vl + 1);
        } else if (strcasecmp(k, "WSproto") == 0) {
            bad = strcmp(v, "ws") != 0 && strcmp(v, "wss") != 0;
            if (!bad) memcpy(out->ws_proto, v, vl + 1);
        } else if (strcasecmp(k, "StreamServer") == 0) {
            bad = vl >= sizeof out->stream;
            if (!bad) memcpy(out->stream, v, vl + 1);
        } else {
            snprintf(err, errlen,
                     "[sip] freeswitch: unknown key '%s' (Server, Port, Pwd, WSport, "
                     "WShost, WSproto, StreamServer)",
                     k);
            return -1;
        }
        if (bad) {
            if (strcasecmp(k, "Pwd") == 0) /* a secret stays out of the error (audit L6) */
                snprintf(err, errlen, "[sip] freeswitch: invalid Pwd value (%zu bytes)", vl);
            else
                snprintf(err, errlen, "[sip] freeswitch: invalid %s value '%s'", k, v);
            return -1;
        }
    }
    if (!out->server[0] || !out->ws_port) {
        snprintf(err, errlen, "[sip] freeswitch: Server and WSport are required");
        return -1;
    }
    if (!out->ws_host[0]) memcpy(out->ws_host, out->server, sizeof out->ws_host);
    snprintf(out->id, sizeof out->id, "%s:%d", out->ws_host, out->ws_port);
    return 0;
}

/* ---- the connection ------------------------------------------------------------------------ */

static void schedule_retry(struct media_link *l);
static void start_connect(struct media_link *l);

static void on_tcp_closed(uv_handle_t *h)
{
    xfree(h);
}

static void fail_pending(struct media_link *l)
{
    while (l->p_count) {
        struct pending p = l->pending[l->p_head];
        l->p_head = (l->p_head + 1) % l->p_cap;
        l->p_count--;
        if (p.cb) p.cb(p.ctx, l, false, NULL, 0);
    }
    l->heartbeat_pending = false;
}

/* Drops the connection; the node is down until a reconnect succeeds. */
static void link_down(struct media_link *l, const char *why)
{
    bool was_up = l->state == LINK_UP;
    if (l->tcp) {
        uv_read_stop((uv_stream_t *)l->tcp);
        uv_close((uv_handle_t *)l->tcp, on_tcp_closed);
        l->tcp = NULL;
    }
    l->in.len = l->in.off = 0;
    l->state = LINK_IDLE;
    l->state_since_ms = now_ms(l);
    fail_pending(l);
    if (was_up) {
        LOG(LOG_WARN, "media", "msg=\"media node down\" node=%s esl=%s:%d reason=\"%s\"",
            l->conf.id, l->conf.server, l->conf.port, why);
        if (l->cbs.on_down && !l->freeing) l->cbs.on_down(l->cbs.ctx, l, why);
    } else if (strcmp(l->last_down, why) != 0) {
        LOG(LOG_WARN, "media", "msg=\"media node unreachable\" node=%s esl=%s:%d reason=\"%s\"",
            l->conf.id, l->conf.server, l->conf.port, why);
    }
    snprintf(l->last_down, sizeof l->last_down, "%s", why);
    if (!l->freeing) schedule_retry(l);
}

static void schedule_retry(struct media_link *l)
{
    l->retry_at_ms = now_ms(l) + l->backoff_ms;
    l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
}

static void on_write(uv_write_t *w, int status)
{
    xfree(w->data);
    xfree(w);
    (void)status; /* a failed write shows up as a read error */
}

static void send_buf(struct media_link *l, struct buf *b)
{
    if (!l->tcp || buf_unread(b) == 0) {
        buf_free(b);
        return;
    }
    uv_write_t *w = xmalloc(sizeof *w);
    w->data = b->data; /* the whole allocation; off is 0 for a fresh buf */
    uv_buf_t ub = uv_buf_init((char *)buf_head(b), (unsigned)buf_unread(b));
    if (uv_write(w, (uv_stream_t *)l->tcp, &ub, 1, on_write) != 0) {
        xfree(w->data);
        xfree(w);
    }
}

static void push_pending(struct media_link *l, media_api_cb cb, void *ctx)
{
    if (l->p_count == l->p_cap) {
        size_t nc = l->p_cap ? l->p_cap * 2 : 16;
        struct pending *np = xmalloc(nc * sizeof *np);
        for (size_t i = 0; i < l->p_count; i++)
            np[i] = l->pending[(l->p_head + i) % l->p_cap];
        xfree(l->pending);
        l->pending = np;
        l->p_cap = nc;
        l->p_head = 0;
    }
    l->pending[(l->p_head + l->p_count) % l->p_cap] = (struct pending){cb, ctx, now_ms(l)};
    l->p_count++;
}

int media_link_api(struct media_link *l, const char *command_line, media_api_cb cb, void *ctx)
{
    if (l->state != LINK_UP || l->p_count >= MAX_PENDING) return -1;
    struct buf b;
    buf_init(&b);
    if (esl_put_client_api(&b, command_line) != ESL_OK) {
        buf_free(&b);
        return -1;
    }
    push_pending(l, cb, ctx);
    send_buf(l, &b);
    return 0;
}

static void handle_message(struct media_link *l, const struct esl_message *m)
{
    switch (l->state) {
    case LINK_AUTH_WAIT:
        if (m->type == ESL_MSG_AUTH_REQUEST) {
            struct buf b;
            buf_init(&b);
            esl_put_client_auth(&b, l->conf.pwd);
            send_buf(l, &b);
            l->state = LINK_AUTH_SENT;
        } else if (m->type == ESL_MSG_RUDE_REJECTION) {
            link_down(l, "access denied by the node's ACL");
        }
        return;
    case LINK_AUTH_SENT:
        if (m->type != ESL_MSG_COMMAND_REPLY) return;
        if (!m->reply_text.ptr || m->reply_text.len < 3 || memcmp(m->reply_text.ptr, "+OK", 3)) {
            link_down(l, "the node refused the Event Socket password");
            return;
        }
        {
            struct buf b;
            buf_init(&b);
            esl_put_client_event(&b, ESL_FORMAT_PLAIN, "CUSTOM conference::maintenance");
            send_buf(l, &b);
            l->state = LINK_EVENTS_SENT;
        }
        return;
    case LINK_EVENTS_SENT:
        if (m->type != ESL_MSG_COMMAND_REPLY) return;
        if (!m->reply_text.ptr || m->reply_text.len < 3 || memcmp(m->reply_text.ptr, "+OK", 3)) {
            link_down(l, "the node refused the event subscription");
            return;
        }
        l->state = LINK_UP;
        l->state_since_ms = l->last_heartbeat_ms = now_ms(l);
        l->backoff_ms = BACKOFF_MIN_MS;
        l->last_down[0] = '\0';
        LOG(LOG_INFO, "media", "msg=\"media node up\" node=%s esl=%s:%d", l->conf.id,
            l->conf.server, l->conf.port);
        if (l->cbs.on_up) l->cbs.on_up(l->cbs.ctx, l);
        return;
    case LINK_UP: break;
    default: return;
    }
    if (m->type == ESL_MSG_API_RESPONSE) {
        if (!l->p_count) {
            LOG_RATELIMITED(LOG_WARN, "media", "msg=\"unexpected api/response\" node=%s",
                            l->conf.id);
            return;
        }
        struct pending p = l->pending[l->p_head];
        l->p_head = (l->p_head + 1) % l->p_cap;
        l->p_count--;
        if (p.cb) p.cb(p.ctx, l, true, (const char *)m->body, m->body ? m->body_len : 0);
    } else if (m->type == ESL_MSG_EVENT_PLAIN) {
        struct arena a;
        arena_init(&a);
        struct esl_event ev;
        const char *err = NULL;
        if (esl_message_event(m, &a, &ev, &err) == ESL_OK) {
            if (l->cbs.on_event) l->cbs.on_event(l->cbs.ctx, l, &ev);
        } else {
            LOG_RATELIMITED(LOG_WARN, "media", "msg=\"bad event\" node=%s error=\"%s\"", l->conf.id,
                            err ? err : "?");
        }
        arena_free(&a);
    } else if (m->type == ESL_MSG_DISCONNECT_NOTICE) {
        link_down(l, "the node said goodbye");
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct media_link *l = h->data;
    buf_compact(&l->in);
    buf_reserve(&l->in, 64 * 1024);
    b->base = (char *)l->in.data + l->in.len;
    b->len = l->in.cap - l->in.len;
    (void)suggested;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct media_link *l = s->data;
    (void)b;
    if (n < 0) {
        link_down(l, n == UV_EOF ? "the node closed the connection" : uv_strerror((int)n));
        return;
    }
    l->in.len += (size_t)n;
    while (l->tcp == (uv_tcp_t *)s && buf_unread(&l->in)) {
        struct esl_message m;
        const char *err = NULL;
        int rc = esl_parse_message(buf_head(&l->in), buf_unread(&l->in), MAX_MESSAGE, &m, &err);
        if (rc == ESL_AGAIN) break;
        if (rc != ESL_OK) {
            char why[128];
            snprintf(why, sizeof why, "malformed Event Socket message: %s", err ? err : "?");
            link_down(l, why);
            return;
        }
        handle_message(l, &m);
        if (l->tcp != (uv_tcp_t *)s) return; /* went down inside */
        buf_consume(&l->in, m.consumed);
    }
}

static void on_connect(uv_connect_t *c, int status)
{
    struct media_link *l = c->data;
    if (l->state != LINK_CONNECTING || c->handle != (uv_stream_t *)l->tcp) return;
    if (status != 0) {
        link_down(l, uv_strerror(status));
        return;
    }
    l->state = LINK_AUTH_WAIT;
    l->state_since_ms = now_ms(l);
    uv_tcp_nodelay(l->tcp, 1);
    uv_tcp_keepalive(l->tcp, 1, 5);
    uv_read_start((uv_stream_t *)l->tcp, on_alloc, on_read);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct media_link *l = req->data;
    l->gai_busy = false;
    if (l->freeing) {
        uv_freeaddrinfo(res);
        if (l->timer_closed) xfree(l);
        return;
    }
    if (status != 0 || !res) {
        uv_freeaddrinfo(res);
        l->state = LINK_CONNECTING; /* so that link_down logs and reschedules */
        link_down(l, "cannot resolve the Event Socket host");
        return;
    }
    l->tcp = xmalloc(sizeof *l->tcp);
    uv_tcp_init(l->loop, l->tcp);
    l->tcp->data = l;
    l->connect.data = l;
    l->state = LINK_CONNECTING;
    l->state_since_ms = now_ms(l);
    int rc = uv_tcp_connect(&l->connect, l->tcp, res->ai_addr, on_connect);
    uv_freeaddrinfo(res);
    if (rc != 0) link_down(l, uv_strerror(rc));
}

static void start_connect(struct media_link *l)
{
    char port[8];
    snprintf(port, sizeof port, "%d", l->conf.port);
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    l->gai.data = l;
    l->state = LINK_RESOLVING;
    l->state_since_ms = now_ms(l);
    l->gai_busy = true;
    if (uv_getaddrinfo(l->loop, &l->gai, on_resolved, l->conf.server, port, &hints) != 0) {
        l->gai_busy = false;
        l->state = LINK_CONNECTING;
        link_down(l, "cannot resolve the Event Socket host");
    }
}

static void on_tick(uv_timer_t *t)
{
    struct media_link *l = t->data;
    uint64_t now = now_ms(l);
    switch (l->state) {
    case LINK_IDLE:
        if (now >= l->retry_at_ms) start_connect(l);
        break;
    case LINK_RESOLVING: break;
    case LINK_CONNECTING:
    case LINK_AUTH_WAIT:
    case LINK_AUTH_SENT:
    case LINK_EVENTS_SENT:
        if (now - l->state_since_ms > CONNECT_WITHIN_MS) link_down(l, "no answer while connecting");
        break;
    case LINK_UP:
        if (l->p_count && now - l->pending[l->p_head].sent_ms > l->answer_ms) {
            link_down(l, "a command was not answered in time ([sip] node_timeout_ms)");
        } else if (!l->p_count && now - l->last_heartbeat_ms >= HEARTBEAT_MS) {
            l->last_heartbeat_ms = now;
            media_link_api(l, "status", NULL, NULL);
        }
        break;
    }
}

struct media_link *media_link_new(uv_loop_t *loop, const struct media_node_conf *conf, int index,
                                  unsigned answer_ms, const struct media_link_cbs *cbs)
{
    struct media_link *l = xcalloc(1, sizeof *l);
    l->loop = loop;
    l->conf = *conf;
    l->index = index;
    l->answer_ms = answer_ms;
    l->cbs = *cbs;
    l->backoff_ms = BACKOFF_MIN_MS;
    buf_init(&l->in);
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, on_tick, TICK_MS, TICK_MS);
    start_connect(l);
    return l;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct media_link *l = h->data;
    l->timer_closed = true;
    if (!l->gai_busy) xfree(l); /* else on_resolved frees it */
}

void media_link_free(struct media_link *l)
{
    if (!l) return;
    l->freeing = true;
    if (l->tcp) link_down(l, "shutting down");
    fail_pending(l);
    buf_free(&l->in);
    xfree(l->pending);
    l->pending = NULL;
    if (l->gai_busy) uv_cancel((uv_req_t *)&l->gai);
    uv_close((uv_handle_t *)&l->timer, on_timer_closed);
}

bool media_link_is_up(const struct media_link *l)
{
    return l->state == LINK_UP;
}

int media_link_index(const struct media_link *l)
{
    return l->index;
}

const struct media_node_conf *media_link_conf(const struct media_link *l)
{
    return &l->conf;
}
