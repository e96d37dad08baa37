/* pubsub: pipes, users, fan-out and recovery; see pubsub.h.
 *
 * A pipe holds an array of subscriber pointers (swap-remove; each connection remembers its slot)
 * and a ring of its last messages as shared frames. A pipe with no subscribers lingers for the
 * recovery window, so a client that was the only subscriber can still recover, then the sweep
 * frees it (CppComet never freed pipes). All rings together hold at most [ws] recovery_memory
 * bytes: past it the oldest entry of the pipe written least recently goes first (pipes with a
 * non-empty ring are kept in that order), and a client that needed it recovers from the state
 * store instead (pubsub_replay_needs_history), so the bound costs a read, never a message. Frames
 * are built once per message; clients that speak the pre-4 API get a second encoding, built only if
 * one of them is subscribed. */
#include "push/pubsub.h"
#include "core/alloc.h"
#include "core/hmap.h"
#include "core/log.h"
#include "core/tenant_index.h"
#include "proto/envelope.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct ring_entry {
    int64_t id;
    uint32_t time;
    struct frame *frame;
};

struct pipe {
    struct hnode node;
    struct tenant_link by_dev; /* in ps->pipes_by_dev */
    int64_t dev;
    struct ws_conn **subs;
    uint32_t n_subs, cap_subs;
    struct ring_entry *ring; /* recovery_messages entries, oldest at ring_head */
    uint32_t ring_head, ring_n, ring_cap;
    uint32_t empty_since; /* 0 while it has subscribers */
    uint64_t ring_bytes;  /* frame bytes its ring holds */
    /* in ps->lru while its ring is non-empty: least recently written first */
    struct pipe *lru_prev, *lru_next;
    uint8_t len;
    char name[65];
};

struct ws_user {
    struct hnode node;
    int64_t dev, user_id;
    struct ws_conn *conns;
    uint32_t n;
};

struct interned {
    struct hnode node;
    uint32_t refs;
    uint32_t len;
    char s[];
};

struct pubsub {
    const struct config *cfg;
    struct state *state;
    struct hub *hub;
    struct hmap pipes, users, strings;
    struct tenant_index pipes_by_dev; /* listings of one tenant walk only its pipes */
    uint64_t published, delivered, dropped_slow;
    uint64_t ring_bytes, ring_evicted; /* over all pipes */
    struct pipe *lru_head, *lru_tail;
    struct buf scratch; /* envelope encoding */
};

static uint32_t now_s(void)
{
    return (uint32_t)time(NULL);
}

/* ---- frames ------------------------------------------------------------------------------- */

struct frame *frame_new(uint8_t opcode, const void *payload, size_t len)
{
    size_t hdr = len < 126 ? 2 : len < 65536 ? 4 : 10;
    struct frame *f = xmalloc(sizeof *f + hdr + len);
    f->refs = 1;
    f->len = (uint32_t)(hdr + len);
    f->data[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        f->data[1] = (uint8_t)len;
    } else if (len < 65536) {
        f->data[1] = 126;
        f->data[2] = (uint8_t)(len >> 8);
        f->data[3] = (uint8_t)len;
    } else {
        f->data[1] = 127;
        for (int i = 0; i < 8; i++)
            f->data[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(f->data + hdr, payload, len);
    return f;
}

struct frame *frame_text(const void *payload, size_t len)
{
    return frame_new(0x1, payload, len);
}

void frame_unref(struct frame *f)
{
    if (f && --f->refs == 0) xfree(f);
}

/* ---- lookup ------------------------------------------------------------------------------- */

static uint64_t pipe_hash(int64_t dev, const char *name, size_t len)
{
    return hmap_hash_bytes((uint64_t)dev, name, len);
}

static struct pipe *pipe_find(const struct pubsub *ps, int64_t dev, const char *name, size_t len)
{
    uint64_t h = pipe_hash(dev, name, len);
    for (struct hnode *n = hmap_first(&ps->pipes, h); n; n = hmap_next_same(n)) {
        struct pipe *p = (struct pipe *)n;
        if (p->dev == dev && p->len == len && memcmp(p->name, name, len) == 0) return p;
    }
    return NULL;
}

static struct pipe *pipe_get(struct pubsub *ps, int64_t dev, const char *name, size_t len)
{
    struct pipe *p = pipe_find(ps, dev, name, len);
    if (p) return p;
    p = xcalloc(1, sizeof *p);
    p->dev = dev;
    p->len = (uint8_t)len;
    memcpy(p->name, name, len);
    p->empty_since = now_s();
    hmap_insert(&ps->pipes, &p->node, pipe_hash(dev, name, len));
    tenant_index_add(&ps->pipes_by_dev, dev, &p->by_dev);
    hub_watch_pipe(ps->hub, dev, name, len, true);
    return p;
}

static void lru_unlink(struct pubsub *ps, struct pipe *p)
{
    if (p->lru_prev)
        p->lru_prev->lru_next = p->lru_next;
    else if (ps->lru_head == p)
        ps->lru_head = p->lru_next;
    else
        return; /* not linked */
    if (p->lru_next)
        p->lru_next->lru_prev = p->lru_prev;
    else
        ps->lru_tail = p->lru_prev;
    p->lru_prev = p->lru_next = NULL;
}

static void lru_append(struct pubsub *ps, struct pipe *p)
{
    p->lru_prev = ps->lru_tail;
    p->lru_next = NULL;
    if (ps->lru_tail)
        ps->lru_tail->lru_next = p;
    else
        ps->lru_head = p;
    ps->lru_tail = p;
}

/* Drops every entry of p's ring (the ring itself stays allocated). */
static void ring_clear(struct pubsub *ps, struct pipe *p)
{
    for (uint32_t i = 0; i < p->ring_n; i++)
        frame_unref(p->ring[(p->ring_head + i) % p->ring_cap].frame);
    p->ring_head = p->ring_n = 0;
    ps->ring_bytes -= p->ring_bytes;
    p->ring_bytes = 0;
    lru_unlink(ps, p);
}

static void pipe_free(struct pubsub *ps, struct pipe *p)
{
    hub_watch_pipe(ps->hub, p->dev, p->name, p->len, false);
    hmap_remove(&ps->pipes, &p->node);
    tenant_index_remove(&ps->pipes_by_dev, p->dev, &p->by_dev);
    ring_clear(ps, p);
    xfree(p->ring);
    xfree(p->subs);
    xfree(p);
}

static uint64_t user_hash(int64_t dev, int64_t user)
{
    int64_t k[2] = {dev, user};
    return hmap_hash_bytes(7, k, sizeof k);
}

static struct ws_user *user_find(const struct pubsub *ps, int64_t dev, int64_t user_id)
{
    for (struct hnode *n = hmap_first(&ps->users, user_hash(dev, user_id)); n;
         n = hmap_next_same(n)) {
        struct ws_user *u = (struct ws_user *)n;
        if (u->dev == dev && u->user_id == user_id) return u;
    }
    return NULL;
}

/* ---- envelopes ------------------------------------------------------------------------------ */

struct msg_fields {
    const char *pipe, *event, *data;
    size_t pipe_len, event_len, data_len;
    int64_t id, time, user_id; /* user_id < 0: omitted */
    bool from_queue, history;
};

static struct frame *encode(struct pubsub *ps, const struct msg_fields *m, bool legacy)
{
    struct buf *b = &ps->scratch;
    b->len = b->off = 0;
    env_begin(b);
    env_str(b, "data", m->data, m->data_len);
    env_str(b, "event", m->event, m->event_len);
    if (legacy) {
        env_str(b, "event_name", m->event, m->event_len);
        env_cstr(b, "api_data", "for major_version < 4");
    }
    if (m->from_queue) env_bool(b, "fromQueue", true);
    if (m->history) env_bool(b, "history", true);
    if (m->id > 0) env_int(b, "id", m->id);
    if (m->time > 0) env_int(b, "message_send_time", m->time);
    env_str(b, "pipe", m->pipe, m->pipe_len);
    if (m->user_id >= 0) env_int(b, "user_id", m->user_id);
    env_end(b);
    return frame_text(buf_head(b), buf_unread(b));
}

/* Drops the oldest entry of p's ring. */
static void ring_drop_oldest(struct pubsub *ps, struct pipe *p)
{
    struct ring_entry *e = &p->ring[p->ring_head];
    p->ring_bytes -= e->frame->len;
    ps->ring_bytes -= e->frame->len;
    frame_unref(e->frame);
    e->frame = NULL;
    p->ring_head = (p->ring_head + 1) % p->ring_cap;
    if (!--p->ring_n) lru_unlink(ps, p);
}

static void ring_add(struct pubsub *ps, struct pipe *p, int64_t id, struct frame *f)
{
    uint32_t cap = (uint32_t)ps->cfg->ws_recovery_messages;
    if (cap == 0 || id <= 0) return;
    if (p->ring_cap != cap) { /* first use, or the setting changed: start afresh */
        ring_clear(ps, p);
        xfree(p->ring);
        p->ring = xcalloc(cap, sizeof *p->ring);
        p->ring_cap = cap;
    }
    if (p->ring_n == cap) ring_drop_oldest(ps, p);
    struct ring_entry *e = &p->ring[(p->ring_head + p->ring_n) % cap];
    p->ring_n++;
    e->id = id;
    e->time = now_s();
    e->frame = frame_ref(f);
    p->ring_bytes += f->len;
    ps->ring_bytes += f->len;
    lru_unlink(ps, p); /* now the most recently written */
    lru_append(ps, p);
    uint64_t budget = (uint64_t)ps->cfg->ws_recovery_memory;
    while (ps->ring_bytes > budget && ps->lru_head) {
        ring_drop_oldest(ps, ps->lru_head);
        ps->ring_evicted++;
    }
}

/* Queues a message on every subscriber of p except `except`. */
static size_t fan_out(struct pubsub *ps, struct pipe *p, const struct msg_fields *m,
                      struct ws_conn *except)
{
    struct frame *modern = encode(ps, m, false), *legacy = NULL;
    size_t n = 0;
    for (uint32_t i = 0; i < p->n_subs; i++) {
        struct ws_conn *c = p->subs[i];
        if (c == except || c->state != WS_OPEN || c->replaying == p) continue;
        struct frame *f = modern;
        if (c->api_major < 4) {
            if (!legacy) legacy = encode(ps, m, true);
            f = legacy;
        }
        if (ws_conn_send(c, f))
            n++;
        else
            ps->dropped_slow++;
    }
    ring_add(ps, p, m->id, modern);
    frame_unref(modern);
    frame_unref(legacy);
    ps->published++;
    ps->delivered += n;
    return n;
}

/* ---- presence ---------------------------------------------------------------------------------
 */

static struct frame *presence_frame(struct pubsub *ps, const char *pipe, size_t pipe_len,
                                    const char *event, const char *data_json, size_t data_len,
                                    bool legacy)
{
    struct buf *b = &ps->scratch;
    b->len = b->off = 0;
    env_begin(b);
    if (legacy && data_len && (data_json[0] == '{' || data_json[0] == '['))
        env_str(b, "data", data_json, data_len); /* pre-4 clients get objects as JSON text */
    else
        env_raw(b, "data", data_json, data_len);
    env_cstr(b, "event", event);
    if (legacy) {
        env_cstr(b, "event_name", event);
        env_cstr(b, "api_data", "for major_version < 4");
    }
    env_str(b, "pipe", pipe, pipe_len);
    env_end(b);
    return frame_text(buf_head(b), buf_unread(b));
}

static void publish_presence(struct pubsub *ps, int64_t dev, const char *pipe, size_t pipe_len,
                             const char *event, const char *data_json, size_t data_len,
                             struct ws_conn *except)
{
    struct pipe *p = pipe_find(ps, dev, pipe, pipe_len);
    if (!p || !p->n_subs) return;
    struct frame *f = presence_frame(ps, pipe, pipe_len, event, data_json, data_len, false);
    struct frame *legacy = NULL;
    for (uint32_t i = 0; i < p->n_subs; i++) {
        struct ws_conn *c = p->subs[i];
        if (c == except || c->state != WS_OPEN) continue;
        if (c->api_major < 4 && !legacy)
            legacy = presence_frame(ps, pipe, pipe_len, event, data_json, data_len, true);
        ws_conn_send(c, c->api_major < 4 ? legacy : f);
    }
    frame_unref(f);
    frame_unref(legacy);
}

static void track_event(struct pubsub *ps, struct ws_conn *c, struct pipe *p, const char *event)
{
    char json[128];
    int n = snprintf(json, sizeof json, "{\"user_id\":%" PRId64 ",\"uuid\":\"%s\"}", c->user_id,
                     c->uuid);
    publish_presence(ps, c->dev_id, p->name, p->len, event, json, (size_t)n, c);
}

static void user_status_event(struct pubsub *ps, int64_t dev, int64_t user_id, bool online)
{
    char pipe[48];
    int pl = snprintf(pipe, sizeof pipe, "user_status_%" PRId64, user_id);
    const char *ev = online ? "online" : "offline";
    char json[16];
    int jl = snprintf(json, sizeof json, "\"%s\"", ev);
    publish_presence(ps, dev, pipe, (size_t)pl, ev, json, (size_t)jl, NULL);
}

/* ---- subscriptions ------------------------------------------------------------------------ */

int pubsub_subscribe(struct pubsub *ps, struct ws_conn *c, const char *name, size_t len)
{
    if (pubsub_is_subscribed(c, name, len)) return 0;
    if (c->n_subs >= ps->cfg->ws_max_subscriptions) return -1;
    struct pipe *p = pipe_get(ps, c->dev_id, name, len);
    if (p->n_subs == p->cap_subs) {
        p->cap_subs = p->cap_subs ? p->cap_subs * 2 : 4;
        p->subs = xrealloc(p->subs, p->cap_subs * sizeof *p->subs);
    }
    if (c->n_subs == c->cap_subs) {
        c->cap_subs = (uint16_t)(c->cap_subs ? c->cap_subs * 2 : 2);
        c->subs = xrealloc(c->subs, c->cap_subs * sizeof *c->subs);
    }
    c->subs[c->n_subs].pipe = p;
    c->subs[c->n_subs].slot = p->n_subs;
    c->n_subs++;
    p->subs[p->n_subs++] = c;
    p->empty_since = 0;
    if (len > 6 && memcmp(name, "track_", 6) == 0) track_event(ps, c, p, "subscription");
    return 0;
}

bool pubsub_is_subscribed(const struct ws_conn *c, const char *name, size_t len)
{
    for (uint16_t i = 0; i < c->n_subs; i++) {
        const struct pipe *p = c->subs[i].pipe;
        if (p->len == len && memcmp(p->name, name, len) == 0) return true;
    }
    return false;
}

static void unsubscribe_at(struct pubsub *ps, struct ws_conn *c, uint16_t i)
{
    struct pipe *p = c->subs[i].pipe;
    uint32_t slot = c->subs[i].slot;
    /* swap-remove from the pipe, fixing the moved connection's slot */
    struct ws_conn *moved = p->subs[--p->n_subs];
    p->subs[slot] = moved;
    if (moved != c) {
        for (uint16_t k = 0; k < moved->n_subs; k++) {
            if (moved->subs[k].pipe == p) {
                moved->subs[k].slot = slot;
                break;
            }
        }
    }
    c->subs[i] = c->subs[--c->n_subs];
    if (p->len > 6 && memcmp(p->name, "track_", 6) == 0) track_event(ps, c, p, "unsubscription");
    if (!p->n_subs) {
        p->empty_since = now_s();
        if (!p->ring_n) pipe_free(ps, p); /* nothing to recover: free it now */
    }
}

void pubsub_unsubscribe(struct pubsub *ps, struct ws_conn *c, const char *name, size_t len)
{
    for (uint16_t i = 0; i < c->n_subs; i++) {
        const struct pipe *p = c->subs[i].pipe;
        if (p->len == len && memcmp(p->name, name, len) == 0) {
            unsubscribe_at(ps, c, i);
            return;
        }
    }
}

void pubsub_resubscribe(struct pubsub *ps, struct ws_conn *c, const struct ccmd_str *names,
                        size_t n)
{
    for (int i = (int)c->n_subs - 1; i >= 0; i--) {
        const struct pipe *p = c->subs[i].pipe;
        bool wanted = false;
        for (size_t k = 0; k < n && !wanted; k++)
            wanted = names[k].len == p->len && memcmp(names[k].s, p->name, p->len) == 0;
        if (!wanted) unsubscribe_at(ps, c, (uint16_t)i);
    }
    for (size_t k = 0; k < n; k++)
        pubsub_subscribe(ps, c, names[k].s, names[k].len);
}

void pubsub_unsubscribe_all(struct pubsub *ps, struct ws_conn *c)
{
    while (c->n_subs)
        unsubscribe_at(ps, c, (uint16_t)(c->n_subs - 1));
    xfree(c->subs);
    c->subs = NULL;
    c->cap_subs = 0;
}

size_t pubsub_subscribers(struct pubsub *ps, int64_t dev_id, const char *pipe, size_t len)
{
    struct pipe *p = pipe_find(ps, dev_id, pipe, len);
    return p ? p->n_subs : 0;
}

/* ---- users --------------------------------------------------------------------------------------
 */

bool pubsub_user_attach(struct pubsub *ps, struct ws_conn *c)
{
    struct ws_user *u = user_find(ps, c->dev_id, c->user_id);
    if (!u) {
        u = xcalloc(1, sizeof *u);
        u->dev = c->dev_id;
        u->user_id = c->user_id;
        hmap_insert(&ps->users, &u->node, user_hash(u->dev, u->user_id));
    }
    if (u->n >= ps->cfg->ws_max_connections_per_user) {
        if (!u->n) {
            hmap_remove(&ps->users, &u->node);
            xfree(u);
        }
        return false;
    }
    c->user = u;
    c->user_prev = NULL;
    c->user_next = u->conns;
    if (u->conns) u->conns->user_prev = c;
    u->conns = c;
    if (u->n++ == 0) {
        hub_watch_user(ps->hub, c->dev_id, c->user_id, true);
        if (ps->cfg->send_user_online_events) user_status_event(ps, c->dev_id, c->user_id, true);
    }
    return true;
}

void pubsub_user_detach(struct pubsub *ps, struct ws_conn *c)
{
    struct ws_user *u = c->user;
    if (!u) return;
    if (c->user_prev)
        c->user_prev->user_next = c->user_next;
    else
        u->conns = c->user_next;
    if (c->user_next) c->user_next->user_prev = c->user_prev;
    c->user = NULL;
    c->user_prev = c->user_next = NULL;
    if (--u->n == 0) {
        if (ps->cfg->save_users_last_online_time) {
            struct state_cb cb = state_cb_log("users_time");
            ps->state->ops->time_put(ps->state, u->dev, u->user_id, (int64_t)time(NULL), &cb);
        }
        if (ps->cfg->send_user_offline_events) user_status_event(ps, u->dev, u->user_id, false);
        hub_watch_user(ps->hub, u->dev, u->user_id, false);
        hmap_remove(&ps->users, &u->node);
        xfree(u);
    }
}

bool pubsub_barrier(struct pubsub *ps, void (*cb)(void *ctx), void *ctx)
{
    return hub_barrier(ps->hub, cb, ctx);
}

void pubsub_kick_user(struct pubsub *ps, int64_t dev_id, int64_t user_id)
{
    struct ws_user *u = user_find(ps, dev_id, user_id);
    if (!u) return;
    for (struct ws_conn *c = u->conns; c; c = c->user_next)
        ws_conn_close(c, 1008, "authorization revoked");
}

/* ---- publishing --------------------------------------------------------------------------- */

size_t pubsub_audience(struct pubsub *ps, const struct ws_conn *except, int64_t dev_id,
                       const char *pipe, size_t len)
{
    struct pipe *p = pipe_find(ps, dev_id, pipe, len);
    size_t n = 0;
    for (uint32_t i = 0; p && i < p->n_subs; i++)
        if (p->subs[i] != except && p->subs[i]->state == WS_OPEN) n++;
    return n;
}

bool pubsub_replay_needs_history(struct pubsub *ps, const struct ws_conn *c, const char *pipe,
                                 size_t len, int64_t last_id)
{
    struct pipe *p = pipe_find(ps, c->dev_id, pipe, len);
    int64_t oldest_in_ring = (p && p->ring_n) ? p->ring[p->ring_head].id : INT64_MAX;
    return oldest_in_ring > last_id + 1;
}

void pubsub_replay_begin(struct pubsub *ps, struct ws_conn *c, const char *pipe, size_t len)
{
    c->replaying = pipe_find(ps, c->dev_id, pipe, len);
}

void pubsub_replay_end(struct ws_conn *c)
{
    c->replaying = NULL;
}

void pubsub_replay_row(struct pubsub *ps, struct ws_conn *c, const struct value *cols)
{
    struct msg_fields m = {cols[2].s, cols[3].s, cols[4].s, cols[2].len, cols[3].len, cols[4].len,
                           cols[0].i, cols[1].i, cols[5].i, true,        true};
    struct frame *f = encode(ps, &m, c->api_major < 4);
    ws_conn_send(c, f);
    frame_unref(f);
}

size_t pubsub_replay_ring(struct pubsub *ps, struct ws_conn *c, const char *pipe, size_t len,
                          int64_t last_sent)
{
    struct pipe *p = pipe_find(ps, c->dev_id, pipe, len);
    if (!p) return 0;
    uint32_t horizon = now_s() - (uint32_t)ps->cfg->ws_recovery_window;
    size_t n = 0;
    for (uint32_t i = 0; i < p->ring_n; i++) {
        struct ring_entry *e = &p->ring[(p->ring_head + i) % p->ring_cap];
        if (e->id <= last_sent || e->time < horizon) continue;
        ws_conn_send(c, e->frame);
        last_sent = e->id;
        n++;
    }
    return n;
}

/* ---- interning ----------------------------------------------------------------------------------
 */

struct interned *pubsub_intern(struct pubsub *ps, const char *s, size_t len)
{
    if (!s || !len) return NULL;
    uint64_t h = hmap_hash_bytes(3, s, len);
    for (struct hnode *n = hmap_first(&ps->strings, h); n; n = hmap_next_same(n)) {
        struct interned *i = (struct interned *)n;
        if (i->len == len && memcmp(i->s, s, len) == 0) {
            i->refs++;
            return i;
        }
    }
    struct interned *i = xmalloc(sizeof *i + len + 1);
    i->refs = 1;
    i->len = (uint32_t)len;
    memcpy(i->s, s, len);
    i->s[len] = '\0';
    hmap_insert(&ps->strings, &i->node, h);
    return i;
}

void pubsub_unintern(struct pubsub *ps, struct interned *i)
{
    if (i && --i->refs == 0) {
        hmap_remove(&ps->strings, &i->node);
        xfree(i);
    }
}

const char *interned_str(const struct interned *i)
{
    return i ? i->s : NULL;
}

/* ---- hub delivery ------------------------------------------------------------------------------
 */

static size_t d_to_pipe(void *ctx, const struct hub_message *hm)
{
    struct pubsub *ps = ctx;
    struct pipe *p = pipe_find(ps, hm->dev_id, hm->pipe, hm->pipe_len);
    if (!p) return 0;
    struct msg_fields m = {hm->pipe,     hm->event,     hm->data,
                           hm->pipe_len, hm->event_len, hm->data_len,
                           hm->id,       hm->time,      hm->from_browser ? hm->user_id : -1,
                           false,        false};
    return fan_out(ps, p, &m, (struct ws_conn *)hm->origin);
}

static size_t d_to_user(void *ctx, int64_t user_id, const struct hub_message *hm)
{
    struct pubsub *ps = ctx;
    struct ws_user *u = user_find(ps, hm->dev_id, user_id);
    if (!u) return 0;
    struct msg_fields m = {"msg", hm->event, hm->data, 3,     hm->event_len, hm->data_len,
                           0,     hm->time,  -1,       false, false};
    struct frame *f = encode(ps, &m, false), *legacy = NULL;
    size_t n = 0;
    for (struct ws_conn *c = u->conns; c; c = c->user_next) {
        if (c->state != WS_OPEN) continue;
        struct frame *use = f;
        if (c->api_major < 4) {
            if (!legacy) legacy = encode(ps, &m, true);
            use = legacy;
        }
        if (ws_conn_send(c, use)) n++;
    }
    frame_unref(f);
    frame_unref(legacy);
    ps->published++;
    ps->delivered += n;
    return n;
}

static size_t d_pipe_subscribers(void *ctx, int64_t dev_id, const char *pipe, size_t len)
{
    return pubsub_subscribers(ctx, dev_id, pipe, len);
}

static bool d_user_online(void *ctx, int64_t dev_id, int64_t user_id)
{
    return user_find(ctx, dev_id, user_id) != NULL;
}

static void format_ip(const uint8_t ip[16], char *out, size_t n)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(ip, v4mapped, 12) == 0)
        snprintf(out, n, "%u.%u.%u.%u", ip[12], ip[13], ip[14], ip[15]);
    else
        uv_inet_ntop(AF_INET6, ip, out, n);
}

static int members_of(struct pipe *p, hub_member_fn fn, void *fn_ctx)
{
    for (uint32_t i = 0; i < p->n_subs; i++) {
        struct ws_conn *c = p->subs[i];
        char ip[64];
        format_ip(c->ip, ip, sizeof ip);
        struct hub_pipe_member m = {p->name,
                                    c->user_id,
                                    c->uuid,
                                    interned_str(c->user_agent),
                                    ip,
                                    interned_str(c->origin),
                                    interned_str(c->language)};
        if (fn(fn_ctx, &m)) return 1;
    }
    return 0;
}

static int d_pipe_members(void *ctx, int64_t dev_id, const char *pipe, size_t len, hub_member_fn fn,
                          void *fn_ctx)
{
    struct pubsub *ps = ctx;
    if (pipe) {
        struct pipe *p = pipe_find(ps, dev_id, pipe, len);
        if (p) members_of(p, fn, fn_ctx);
        return 0;
    }
    for (struct tenant_link *l = tenant_index_first(&ps->pipes_by_dev, dev_id); l; l = l->next)
        if (members_of(TENANT_ENTRY(l, struct pipe, by_dev), fn, fn_ctx)) break;
    return 0;
}

static int d_pipes(void *ctx, int64_t dev_id, int (*fn)(void *c, const char *pipe, size_t subs),
                   void *fn_ctx)
{
    struct pubsub *ps = ctx;
    for (struct tenant_link *l = tenant_index_first(&ps->pipes_by_dev, dev_id); l; l = l->next) {
        struct pipe *p = TENANT_ENTRY(l, struct pipe, by_dev);
        if (p->n_subs && fn(fn_ctx, p->name, p->n_subs)) break;
    }
    return 0;
}

static void d_kick_user(void *ctx, int64_t dev_id, int64_t user_id)
{
    pubsub_kick_user(ctx, dev_id, user_id);
}

struct hub_delivery pubsub_delivery(struct pubsub *ps)
{
    struct hub_delivery d = {
        ps,      d_to_pipe,  d_to_user, d_pipe_subscribers, d_user_online, d_pipe_members,
        d_pipes, d_kick_user};
    return d;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

struct pubsub *pubsub_new(const struct config *cfg, struct state *state, struct hub *hub)
{
    struct pubsub *ps = xcalloc(1, sizeof *ps);
    ps->cfg = cfg;
    ps->state = state;
    ps->hub = hub;
    hmap_init(&ps->pipes);
    tenant_index_init(&ps->pipes_by_dev);
    hmap_init(&ps->users);
    hmap_init(&ps->strings);
    buf_init(&ps->scratch);
    return ps;
}

void pubsub_reconfigure(struct pubsub *ps, const struct config *cfg)
{
    ps->cfg = cfg;
}

void pubsub_sweep(struct pubsub *ps)
{
    uint32_t now = now_s();
    size_t b = 0;
    struct hnode *n = hmap_iter(&ps->pipes, &b, NULL);
    while (n) {
        struct hnode *next = hmap_iter(&ps->pipes, &b, n);
        struct pipe *p = (struct pipe *)n;
        if (!p->n_subs && p->empty_since &&
            now - p->empty_since >= (uint32_t)ps->cfg->ws_recovery_window) {
            /* `next` may live in the same bucket chain; removal does not touch it */
            pipe_free(ps, p);
        }
        n = next;
    }
}

void pubsub_free(struct pubsub *ps)
{
    if (!ps) return;
    size_t b = 0;
    struct hnode *n;
    while ((n = hmap_iter(&ps->pipes, &b, NULL)))
        pipe_free(ps, (struct pipe *)n), b = 0;
    b = 0;
    while ((n = hmap_iter(&ps->users, &b, NULL))) {
        hmap_remove(&ps->users, n);
        xfree(n);
        b = 0;
    }
    b = 0;
    while ((n = hmap_iter(&ps->strings, &b, NULL))) {
        hmap_remove(&ps->strings, n);
        xfree(n);
        b = 0;
    }
    hmap_free(&ps->pipes);
    tenant_index_free(&ps->pipes_by_dev);
    hmap_free(&ps->users);
    hmap_free(&ps->strings);
    buf_free(&ps->scratch);
    xfree(ps);
}

void pubsub_stats(const struct pubsub *ps, struct pubsub_stats *out)
{
    out->pipes = ps->pipes.count;
    out->users = ps->users.count;
    out->published = ps->published;
    out->delivered = ps->delivered;
    out->dropped_slow = ps->dropped_slow;
    out->ring_bytes = ps->ring_bytes;
    out->ring_evicted = ps->ring_evicted;
}
