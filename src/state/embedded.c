/* embedded: the state backend of a single node (see state.h): rows in SQLite through store.h,
 * delivery through the in-process hub. Every call completes before it returns; writes join the
 * loop iteration's transaction, which main.c commits before any reply of the iteration leaves
 * (state_commit_pending tells the CometQL server to hold its replies for it). */
#include "state/state.h"
#include "core/alloc.h"
#include "push/hub.h"
#include "state/store.h"

#include <string.h>

struct embedded {
    struct state base; /* first */
    struct store *db;
    struct hub *hub;
};

static struct embedded *E(struct state *st)
{
    return (struct embedded *)st;
}

/* Reads: the store's row callbacks are the interface's; done follows with the count. */
static void finish(struct embedded *e, int64_t rc, const struct state_cb *cb)
{
    cb->done(cb->ctx, rc < 0 ? -1 : rc, rc < 0 ? store_errmsg(e->db) : NULL);
}

static int no_rows(void *ctx, const struct value *cols, size_t n)
{
    (void)ctx, (void)cols, (void)n;
    return 1;
}

#define ROWS(cb) ((cb)->row ? (cb)->row : no_rows)

static void auth_get(struct state *st, int64_t dev, int64_t user, const struct state_cb *cb)
{
    finish(E(st), store_auth_get(E(st)->db, dev, user, ROWS(cb), cb->ctx), cb);
}
static void auth_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *cb)
{
    finish(E(st), store_auth_list(E(st)->db, dev, limit, ROWS(cb), cb->ctx), cb);
}
static void auth_put(struct state *st, int64_t dev, int64_t user, const char *hash, size_t len,
                     const struct state_cb *cb)
{
    finish(E(st), store_auth_put(E(st)->db, dev, user, hash, len), cb);
}
static void auth_delete(struct state *st, int64_t dev, int64_t user, const struct state_cb *cb)
{
    finish(E(st), store_auth_delete(E(st)->db, dev, user), cb);
}

static void data_get(struct state *st, int64_t dev, int64_t user, const struct state_cb *cb)
{
    finish(E(st), store_data_get(E(st)->db, dev, user, ROWS(cb), cb->ctx), cb);
}
static void data_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *cb)
{
    finish(E(st), store_data_list(E(st)->db, dev, limit, ROWS(cb), cb->ctx), cb);
}
static void data_put(struct state *st, int64_t dev, int64_t user, const char *data, size_t len,
                     const struct state_cb *cb)
{
    finish(E(st), store_data_put(E(st)->db, dev, user, data, len), cb);
}
static void data_delete(struct state *st, int64_t dev, int64_t user, const struct state_cb *cb)
{
    finish(E(st), store_data_delete(E(st)->db, dev, user), cb);
}

static void token_get(struct state *st, int64_t dev, const char *token, size_t len,
                      const struct state_cb *cb)
{
    finish(E(st), store_token_get(E(st)->db, dev, token, len, ROWS(cb), cb->ctx), cb);
}
static void token_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *cb)
{
    finish(E(st), store_token_list(E(st)->db, dev, limit, ROWS(cb), cb->ctx), cb);
}
/* expires is not kept: SQLite's rows stay until deleted */
static void token_put(struct state *st, int64_t dev, const char *token, size_t len, int64_t now,
                      int64_t expires, const struct state_cb *cb)
{
    finish(E(st), store_token_put(E(st)->db, dev, token, len, now), cb);
}
static void token_delete(struct state *st, int64_t dev, const char *token, size_t len,
                         const struct state_cb *cb)
{
    finish(E(st), store_token_delete(E(st)->db, dev, token, len), cb);
}

static void time_get(struct state *st, int64_t dev, int64_t user, const struct state_cb *cb)
{
    finish(E(st), store_time_get(E(st)->db, dev, user, ROWS(cb), cb->ctx), cb);
}
static void time_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *cb)
{
    finish(E(st), store_time_list(E(st)->db, dev, limit, ROWS(cb), cb->ctx), cb);
}

static void time_put(struct state *st, int64_t dev, int64_t user, int64_t time,
                     const struct state_cb *cb)
{
    finish(E(st), store_time_put(E(st)->db, dev, user, time), cb);
}

static void queue_list(struct state *st, int64_t dev, int64_t user, int64_t limit,
                       const struct state_cb *cb)
{
    finish(E(st), store_queue_list(E(st)->db, dev, user, limit, ROWS(cb), cb->ctx), cb);
}
static void queue_list_all(struct state *st, int64_t dev, int64_t limit, const struct state_cb *cb)
{
    finish(E(st), store_queue_list_all(E(st)->db, dev, limit, ROWS(cb), cb->ctx), cb);
}
static void queue_delete_user(struct state *st, int64_t dev, int64_t user,
                              const struct state_cb *cb)
{
    finish(E(st), store_queue_delete_user(E(st)->db, dev, user), cb);
}
static void queue_delete_id(struct state *st, int64_t dev, int64_t id, const struct state_cb *cb)
{
    finish(E(st), store_queue_delete_id(E(st)->db, dev, id), cb);
}

static void queue_ack(struct state *st, int64_t dev, int64_t user, int64_t id,
                      const struct state_cb *cb)
{
    finish(E(st), store_queue_ack(E(st)->db, dev, user, id), cb);
}
static void queue_delete_call(struct state *st, int64_t dev, const char *room, size_t len,
                              int64_t user, const struct state_cb *cb)
{
    finish(E(st), store_queue_delete_call(E(st)->db, dev, room, len, user), cb);
}

static void history_since(struct state *st, int64_t dev, const char *pipe, size_t len,
                          int64_t after_id, int64_t limit, const struct state_cb *cb)
{
    finish(E(st),
           store_history_since(E(st)->db, dev, pipe, len, after_id, limit, ROWS(cb), cb->ctx), cb);
}
static void history_list(struct state *st, int64_t dev, const char *pipe, size_t len, int64_t limit,
                         const struct state_cb *cb)
{
    finish(E(st), store_history_list(E(st)->db, dev, pipe, len, limit, ROWS(cb), cb->ctx), cb);
}
static void history_delete_pipe(struct state *st, int64_t dev, const char *pipe, size_t len,
                                const struct state_cb *cb)
{
    finish(E(st), store_history_delete_pipe(E(st)->db, dev, pipe, len), cb);
}
static void history_delete_id(struct state *st, int64_t dev, int64_t id, const struct state_cb *cb)
{
    finish(E(st), store_history_delete_id(E(st)->db, dev, id), cb);
}

static void pipe_setting_get(struct state *st, int64_t dev, const char *pipe, size_t len,
                             const struct state_cb *cb)
{
    finish(E(st), store_pipe_setting_get(E(st)->db, dev, pipe, len, ROWS(cb), cb->ctx), cb);
}
static void pipe_setting_list(struct state *st, int64_t dev, int64_t limit,
                              const struct state_cb *cb)
{
    finish(E(st), store_pipe_setting_list(E(st)->db, dev, limit, ROWS(cb), cb->ctx), cb);
}
static void pipe_setting_put(struct state *st, int64_t dev, const char *pipe, size_t len,
                             int64_t length, const struct state_cb *cb)
{
    finish(E(st), store_pipe_setting_put(E(st)->db, dev, pipe, len, length), cb);
}
static void pipe_setting_delete(struct state *st, int64_t dev, const char *pipe, size_t len,
                                const struct state_cb *cb)
{
    struct store *db = E(st)->db;
    int n = store_pipe_setting_delete(db, dev, pipe, len);
    if (n >= 0 && store_history_delete_pipe(db, dev, pipe, len) < 0) n = -1;
    finish(E(st), n, cb);
}

static void conf_get(struct state *st, int64_t dev, const char *room, size_t len,
                     const struct state_cb *cb)
{
    finish(E(st), store_conf_get(E(st)->db, dev, room, len, ROWS(cb), cb->ctx), cb);
}
static void conf_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *cb)
{
    finish(E(st), store_conf_list(E(st)->db, dev, limit, ROWS(cb), cb->ctx), cb);
}

static void conf_put(struct state *st, int64_t dev, const struct state_invitation *inv,
                     const struct state_cb *cb)
{
    struct store_invitation si = {inv->name,    inv->user_id,     inv->caller_id,
                                  inv->message, inv->message_len, inv->profile,
                                  inv->stream,  inv->node,        inv->time};
    finish(E(st), store_conf_put(E(st)->db, dev, &si), cb);
}
static void conf_delete(struct state *st, int64_t dev, const char *room, size_t len, int64_t user,
                        const struct state_cb *cb)
{
    struct store *db = E(st)->db;
    finish(E(st),
           user ? store_conf_delete(db, dev, room, len, user)
                : store_conf_delete_room(db, dev, room, len),
           cb);
}
static void conf_node(struct state *st, int64_t dev, const char *room, size_t len,
                      const struct state_cb *cb)
{
    finish(E(st), store_conf_node(E(st)->db, dev, room, len, ROWS(cb), cb->ctx), cb);
}
/* One process places every room itself: there is no other placement to agree with. */
static void conf_claim(struct state *st, int64_t dev, const char *room, size_t len,
                       const char *node, const char *stale, const struct state_cb *cb)
{
    (void)dev;
    (void)room;
    (void)len;
    (void)stale;
    struct value col = value_str(node, strlen(node));
    if (cb->row) cb->row(cb->ctx, &col, 1);
    finish(E(st), 1, cb);
}

static void pipe_publish(struct state *st, const struct state_message *m, const struct state_cb *cb)
{
    struct embedded *e = E(st);
    bool trust = m->target_len >= 6 && memcmp(m->target, "trust_", 6) == 0;
    int64_t keep =
        trust ? 0 : store_pipe_history_length(e->db, m->dev_id, m->target, m->target_len);
    int64_t id = keep < 0 ? -1 : store_next_message_id(e->db);
    if (id >= 0 && (trust || keep > 0) &&
        store_history_add(e->db, m->dev_id, id, m->target, m->target_len, m->time, m->event,
                          m->event_len, m->data, m->data_len, m->user_id, keep) < 0)
        id = -1;
    if (id < 0) {
        finish(e, -1, cb);
        return;
    }
    struct hub_message hm = {m->dev_id,    m->target,  m->target_len,   m->event,
                             m->event_len, m->data,    m->data_len,     id,
                             m->time,      m->user_id, m->from_browser, m->origin};
    hub_publish_pipe(e->hub, &hm);
    finish(e, id, cb);
}

static void user_message(struct state *st, const struct state_message *m, const struct state_cb *cb)
{
    struct embedded *e = E(st);
    struct hub_message hm = {m->dev_id,   "msg", 3,       m->event, m->event_len, m->data,
                             m->data_len, 0,     m->time, 0,        false,        NULL};
    if (hub_send_user(e->hub, m->user_id, &hm) > 0) {
        finish(e, 0, cb);
        return;
    }
    finish(e,
           store_queue_add(e->db, m->dev_id, m->user_id, m->time, m->event, m->event_len, m->data,
                           m->data_len, m->call_room, m->call_room_len),
           cb);
}

static void tenant_list(struct state *st, const struct state_cb *cb)
{
    finish(E(st), store_tenant_list(E(st)->db, ROWS(cb), cb->ctx), cb);
}
static void tenant_put(struct state *st, const struct tenant *t, const struct state_cb *cb)
{
    char pw[41] = "", old[41] = "";
    if (t->has_password) tenant_hash_hex(t->password, pw);
    if (t->has_old_password) tenant_hash_hex(t->old_password, old);
    struct store_tenant row = {t->dev_id,
                               pw,
                               old,
                               t->has_old_password ? t->old_password_until : 0,
                               t->jwt_secret ? t->jwt_secret : "",
                               t->old_jwt_secret ? t->old_jwt_secret : "",
                               t->jwt_secret ? t->jwt_len : 0,
                               t->old_jwt_secret ? t->old_jwt_len : 0,
                               t->old_jwt_secret ? t->old_jwt_until : 0,
                               t->created,
                               t->updated};
    finish(E(st), store_tenant_put(E(st)->db, &row), cb);
}
static void tenant_delete(struct state *st, int64_t dev, const struct state_cb *cb)
{
    finish(E(st), store_tenant_delete(E(st)->db, dev), cb);
}

static bool commit_pending(const struct state *st)
{
    return store_dirty(((const struct embedded *)st)->db);
}

static void embedded_free(struct state *st)
{
    xfree(st);
}

static const struct state_ops embedded_ops = {
    .name = "sqlite",
    .completes_inline = true,
    .auth_get = auth_get,
    .auth_list = auth_list,
    .auth_put = auth_put,
    .auth_delete = auth_delete,
    .data_get = data_get,
    .data_list = data_list,
    .data_put = data_put,
    .data_delete = data_delete,
    .token_get = token_get,
    .token_list = token_list,
    .token_put = token_put,
    .token_delete = token_delete,
    .time_get = time_get,
    .time_list = time_list,
    .time_put = time_put,
    .queue_list = queue_list,
    .queue_list_all = queue_list_all,
    .queue_delete_user = queue_delete_user,
    .queue_delete_id = queue_delete_id,
    .queue_ack = queue_ack,
    .queue_delete_call = queue_delete_call,
    .history_since = history_since,
    .history_list = history_list,
    .history_delete_pipe = history_delete_pipe,
    .history_delete_id = history_delete_id,
    .pipe_setting_get = pipe_setting_get,
    .pipe_setting_list = pipe_setting_list,
    .pipe_setting_put = pipe_setting_put,
    .pipe_setting_delete = pipe_setting_delete,
    .conf_get = conf_get,
    .conf_list = conf_list,
    .conf_put = conf_put,
    .conf_delete = conf_delete,
    .conf_node = conf_node,
    .conf_claim = conf_claim,
    .pipe_publish = pipe_publish,
    .user_message = user_message,
    .tenant_list = tenant_list,
    .tenant_put = tenant_put,
    .tenant_delete = tenant_delete,
    .commit_pending = commit_pending,
    .free = embedded_free,
};

struct state *state_embedded_new(struct store *store, struct hub *hub)
{
    struct embedded *e = xcalloc(1, sizeof *e);
    e->base.ops = &embedded_ops;
    e->db = store;
    e->hub = hub;
    return &e->base;
}
