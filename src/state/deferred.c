/* deferred: a state backend for tests of the callers' asynchronous paths (see state.h). It hands
 * every call to an inner backend at once, keeps the rows and the result, and completes the call
 * on a later loop turn, calls in the order they were made: what a remote backend (Redis) looks
 * like to its callers, with the embedded backend's data. It does not model a group commit that
 * fails after a write reported success. Loop thread only. */
#include "state/state.h"
#include "core/alloc.h"

#include <string.h>
#include <uv.h>

struct row {
    size_t n;
    struct value *cols; /* strings copied after the array, in the same allocation */
};

struct call {
    struct call *next;
    struct state_cb cb; /* the caller's */
    struct row *rows;
    size_t n_rows, cap_rows;
    bool done;
    int64_t result;
    char *err; /* (owned, nullable) */
};

struct deferred {
    struct state base; /* first */
    struct state *inner;
    uv_loop_t *loop;
    uv_timer_t timer;
    struct call *head, *tail;
    bool closed;
};

static struct deferred *D(struct state *st)
{
    return (struct deferred *)st;
}

static int keep_row(void *ctx, const struct value *cols, size_t n)
{
    struct call *c = ctx;
    size_t bytes = n * sizeof(struct value);
    for (size_t i = 0; i < n; i++)
        if (cols[i].kind == VALUE_STR) bytes += cols[i].len + 1;
    struct value *copy = xmalloc(bytes ? bytes : 1);
    char *strings = (char *)(copy + n);
    for (size_t i = 0; i < n; i++) {
        copy[i] = cols[i];
        if (cols[i].kind == VALUE_STR) {
            if (cols[i].len) memcpy(strings, cols[i].s, cols[i].len);
            strings[cols[i].len] = '\0';
            copy[i].s = strings;
            strings += cols[i].len + 1;
        }
    }
    if (c->n_rows == c->cap_rows) {
        c->cap_rows = c->cap_rows ? 2 * c->cap_rows : 8;
        c->rows = xrealloc(c->rows, c->cap_rows * sizeof *c->rows);
    }
    c->rows[c->n_rows].n = n;
    c->rows[c->n_rows].cols = copy;
    c->n_rows++;
    return 0;
}

static void keep_result(void *ctx, int64_t result, const char *err)
{
    struct call *c = ctx;
    c->done = true;
    c->result = result;
    c->err = err ? xstrdup(err) : NULL;
}

static void call_free(struct call *c)
{
    for (size_t i = 0; i < c->n_rows; i++)
        xfree(c->rows[i].cols);
    xfree(c->rows);
    xfree(c->err);
    xfree(c);
}

/* Completes the finished calls at the head of the queue, in order. */
static void on_timer(uv_timer_t *t)
{
    struct deferred *d = t->data;
    while (d->head && d->head->done) {
        struct call *c = d->head;
        d->head = c->next;
        if (!d->head) d->tail = NULL;
        if (c->cb.row && c->result >= 0)
            for (size_t i = 0; i < c->n_rows; i++)
                if (c->cb.row(c->cb.ctx, c->rows[i].cols, c->rows[i].n)) break;
        c->cb.done(c->cb.ctx, c->result, c->result < 0 ? (c->err ? c->err : "error") : NULL);
        call_free(c);
    }
}

/* A call to make of inner: queued, completed from the timer. */
static struct state_cb defer(struct state *st, const struct state_cb *ucb)
{
    struct deferred *d = D(st);
    struct call *c = xcalloc(1, sizeof *c);
    c->cb = *ucb;
    if (d->tail)
        d->tail->next = c;
    else
        d->head = c;
    d->tail = c;
    if (!d->closed) uv_timer_start(&d->timer, on_timer, 0, 0);
    struct state_cb cb = {keep_row, keep_result, c};
    return cb;
}

#define INNER(st) (D(st)->inner)
#define CALL(st, op, ...)                                                                          \
    do {                                                                                           \
        struct state_cb cb_ = defer((st), ucb);                                                    \
        INNER(st)->ops->op(INNER(st), __VA_ARGS__, &cb_);                                          \
    } while (0)

static void auth_get(struct state *st, int64_t dev, int64_t user, const struct state_cb *ucb)
{
    CALL(st, auth_get, dev, user);
}
static void auth_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *ucb)
{
    CALL(st, auth_list, dev, limit);
}
static void auth_put(struct state *st, int64_t dev, int64_t user, const char *hash, size_t len,
                     const struct state_cb *ucb)
{
    CALL(st, auth_put, dev, user, hash, len);
}
static void auth_delete(struct state *st, int64_t dev, int64_t user, const struct state_cb *ucb)
{
    CALL(st, auth_delete, dev, user);
}
static void data_get(struct state *st, int64_t dev, int64_t user, const struct state_cb *ucb)
{
    CALL(st, data_get, dev, user);
}
static void data_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *ucb)
{
    CALL(st, data_list, dev, limit);
}
static void data_put(struct state *st, int64_t dev, int64_t user, const char *data, size_t len,
                     const struct state_cb *ucb)
{
    CALL(st, data_put, dev, user, data, len);
}
static void data_delete(struct state *st, int64_t dev, int64_t user, const struct state_cb *ucb)
{
    CALL(st, data_delete, dev, user);
}
static void token_get(struct state *st, int64_t dev, const char *token, size_t len,
                      const struct state_cb *ucb)
{
    CALL(st, token_get, dev, token, len);
}
static void token_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *ucb)
{
    CALL(st, token_list, dev, limit);
}
static void token_put(struct state *st, int64_t dev, const char *token, size_t len, int64_t now,
                      int64_t expires, const struct state_cb *ucb)
{
    CALL(st, token_put, dev, token, len, now, expires);
}
static void token_delete(struct state *st, int64_t dev, const char *token, size_t len,
                         const struct state_cb *ucb)
{
    CALL(st, token_delete, dev, token, len);
}
static void time_get(struct state *st, int64_t dev, int64_t user, const struct state_cb *ucb)
{
    CALL(st, time_get, dev, user);
}
static void time_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *ucb)
{
    CALL(st, time_list, dev, limit);
}
static void time_put(struct state *st, int64_t dev, int64_t user, int64_t time,
                     const struct state_cb *ucb)
{
    CALL(st, time_put, dev, user, time);
}
static void queue_list(struct state *st, int64_t dev, int64_t user, int64_t limit,
                       const struct state_cb *ucb)
{
    CALL(st, queue_list, dev, user, limit);
}
static void queue_list_all(struct state *st, int64_t dev, int64_t limit, const struct state_cb *ucb)
{
    CALL(st, queue_list_all, dev, limit);
}
static void queue_delete_user(struct state *st, int64_t dev, int64_t user,
                              const struct state_cb *ucb)
{
    CALL(st, queue_delete_user, dev, user);
}
static void queue_delete_id(struct state *st, int64_t dev, int64_t id, const struct state_cb *ucb)
{
    CALL(st, queue_delete_id, dev, id);
}
static void queue_ack(struct state *st, int64_t dev, int64_t user, int64_t id,
                      const struct state_cb *ucb)
{
    CALL(st, queue_ack, dev, user, id);
}
static void queue_delete_call(struct state *st, int64_t dev, const char *room, size_t len,
                              int64_t user, const struct state_cb *ucb)
{
    CALL(st, queue_delete_call, dev, room, len, user);
}
static void history_list(struct state *st, int64_t dev, const char *pipe, size_t len, int64_t limit,
                         const struct state_cb *ucb)
{
    CALL(st, history_list, dev, pipe, len, limit);
}
static void history_since(struct state *st, int64_t dev, const char *pipe, size_t len,
                          int64_t after_id, int64_t limit, const struct state_cb *ucb)
{
    CALL(st, history_since, dev, pipe, len, after_id, limit);
}
static void history_delete_pipe(struct state *st, int64_t dev, const char *pipe, size_t len,
                                const struct state_cb *ucb)
{
    CALL(st, history_delete_pipe, dev, pipe, len);
}
static void history_delete_id(struct state *st, int64_t dev, int64_t id, const struct state_cb *ucb)
{
    CALL(st, history_delete_id, dev, id);
}
static void pipe_setting_get(struct state *st, int64_t dev, const char *pipe, size_t len,
                             const struct state_cb *ucb)
{
    CALL(st, pipe_setting_get, dev, pipe, len);
}
static void pipe_setting_list(struct state *st, int64_t dev, int64_t limit,
                              const struct state_cb *ucb)
{
    CALL(st, pipe_setting_list, dev, limit);
}
static void pipe_setting_put(struct state *st, int64_t dev, const char *pipe, size_t len,
                             int64_t length, const struct state_cb *ucb)
{
    CALL(st, pipe_setting_put, dev, pipe, len, length);
}
static void pipe_setting_delete(struct state *st, int64_t dev, const char *pipe, size_t len,
                                const struct state_cb *ucb)
{
    CALL(st, pipe_setting_delete, dev, pipe, len);
}
static void conf_get(struct state *st, int64_t dev, const char *room, size_t len,
                     const struct state_cb *ucb)
{
    CALL(st, conf_get, dev, room, len);
}
static void conf_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *ucb)
{
    CALL(st, conf_list, dev, limit);
}
static void conf_put(struct state *st, int64_t dev, const struct state_invitation *inv,
                     const struct state_cb *ucb)
{
    CALL(st, conf_put, dev, inv);
}
static void conf_delete(struct state *st, int64_t dev, const char *room, size_t len, int64_t user,
                        const struct state_cb *ucb)
{
    CALL(st, conf_delete, dev, room, len, user);
}
static void conf_claim(struct state *st, int64_t dev, const char *room, size_t len,
                       const char *node, const char *stale, const struct state_cb *ucb)
{
    CALL(st, conf_claim, dev, room, len, node, stale);
}
static void conf_node(struct state *st, int64_t dev, const char *room, size_t len,
                      const struct state_cb *ucb)
{
    CALL(st, conf_node, dev, room, len);
}
static void tenant_list(struct state *st, const struct state_cb *ucb)
{
    struct state_cb cb = defer(st, ucb);
    INNER(st)->ops->tenant_list(INNER(st), &cb);
}
static void tenant_put(struct state *st, const struct tenant *t, const struct state_cb *ucb)
{
    CALL(st, tenant_put, t);
}
static void tenant_delete(struct state *st, int64_t dev, const struct state_cb *ucb)
{
    CALL(st, tenant_delete, dev);
}
static void pipe_publish(struct state *st, const struct state_message *m,
                         const struct state_cb *ucb)
{
    CALL(st, pipe_publish, m);
}
static void user_message(struct state *st, const struct state_message *m,
                         const struct state_cb *ucb)
{
    CALL(st, user_message, m);
}

static bool commit_pending(const struct state *st)
{
    const struct deferred *d = (const struct deferred *)st;
    return d->inner->ops->commit_pending(d->inner);
}

static void deferred_free(struct state *st)
{
    struct deferred *d = D(st);
    /* what is still queued completes now, with its real result: the work was done */
    on_timer(&d->timer);
    while (d->head) { /* inner never answered: cannot happen with the embedded backend */
        struct call *c = d->head;
        d->head = c->next;
        c->cb.done(c->cb.ctx, -1, "the state backend is shutting down");
        call_free(c);
    }
    d->closed = true;
    uv_close((uv_handle_t *)&d->timer, NULL);
    uv_run(d->loop, UV_RUN_NOWAIT); /* lets the close complete before the memory goes */
    state_free(d->inner);
    xfree(d);
}

static const struct state_ops deferred_ops = {
    .name = "deferred",
    .completes_inline = false,
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
    .history_list = history_list,
    .history_since = history_since,
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
    .tenant_list = tenant_list,
    .tenant_put = tenant_put,
    .tenant_delete = tenant_delete,
    .pipe_publish = pipe_publish,
    .user_message = user_message,
    .commit_pending = commit_pending,
    .free = deferred_free,
};

struct state *state_deferred_new(struct state *inner, struct uv_loop_s *loop)
{
    struct deferred *d = xcalloc(1, sizeof *d);
    d->base.ops = &deferred_ops;
    d->inner = inner;
    d->loop = loop;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_unref((uv_handle_t *)&d->timer);
    return &d->base;
}
