/* Unit tests for src/cometql/tables.c against a state backend that answers later: the same
 * statements give the same results whether the state completes inline (embedded) or after the
 * call has returned (as the Redis backend does), cq_exec reports the wait, and the completion
 * comes exactly once. The late backend is the embedded one behind a queue: every call runs at
 * once, but its rows and its result are handed back only when the test drains the queue. */
#include "test.h"

#include "cometql/cometql_exec.h"
#include "core/alloc.h"
#include "state/state.h"
#include "state/store.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- a backend that answers later ---------------------------------------------------------- */

struct call {
    struct call *next;
    struct state_cb cb;      /* the caller's */
    struct state_cb capture; /* what the inner backend calls */
    struct value *cells;
    size_t n_rows, n_cols, cap;
    int64_t result;
    char err[128];
};

struct late {
    struct state base; /* first */
    struct state *inner;
    struct call *head, **tail;
    size_t issued, completed;
};

static struct late *L(struct state *st)
{
    return (struct late *)st;
}

static int capture_row(void *ctx, const struct value *cols, size_t n)
{
    struct call *c = ctx;
    if (c->n_rows == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->cells = xrealloc(c->cells, c->cap * n * sizeof *c->cells);
    }
    c->n_cols = n;
    for (size_t i = 0; i < n; i++) {
        struct value v = cols[i];
        if (v.kind == VALUE_STR) {
            char *s = xmalloc(v.len + 1);
            memcpy(s, v.s, v.len);
            s[v.len] = '\0';
            v.s = s;
        }
        c->cells[c->n_rows * n + i] = v;
    }
    c->n_rows++;
    return 0;
}

static void capture_done(void *ctx, int64_t result, const char *err)
{
    struct call *c = ctx;
    c->result = result;
    snprintf(c->err, sizeof c->err, "%s", err ? err : "");
}

static struct call *call_new(struct state *st, const struct state_cb *cb)
{
    struct late *l = L(st);
    struct call *c = xcalloc(1, sizeof *c);
    c->cb = *cb;
    c->capture.row = capture_row;
    c->capture.done = capture_done;
    c->capture.ctx = c;
    *l->tail = c;
    l->tail = &c->next;
    l->issued++;
    return c;
}

/* Hands back every queued answer, in order; answers may queue more calls (next steps). */
static size_t drain(struct state *st)
{
    struct late *l = L(st);
    size_t n = 0;
    while (l->head) {
        struct call *c = l->head;
        l->head = c->next;
        if (!l->head) l->tail = &l->head;
        bool stop = false;
        for (size_t i = 0; i < c->n_rows && !stop; i++)
            if (c->cb.row) stop = c->cb.row(c->cb.ctx, &c->cells[i * c->n_cols], c->n_cols) != 0;
        c->cb.done(c->cb.ctx, c->result, c->result < 0 ? c->err : NULL);
        for (size_t i = 0; i < c->n_rows * c->n_cols; i++)
            if (c->cells[i].kind == VALUE_STR) xfree((void *)c->cells[i].s);
        xfree(c->cells);
        xfree(c);
        l->completed++;
        n++;
    }
    return n;
}

#define INNER(st) (L(st)->inner)
#define WRAP1(op, T1)                                                                              \
    static void w_##op(struct state *st, T1 a1, const struct state_cb *cb)                         \
    {                                                                                              \
        struct call *c = call_new(st, cb);                                                         \
        INNER(st)->ops->op(INNER(st), a1, &c->capture);                                            \
    }
#define WRAP2(op, T1, T2)                                                                          \
    static void w_##op(struct state *st, T1 a1, T2 a2, const struct state_cb *cb)                  \
    {                                                                                              \
        struct call *c = call_new(st, cb);                                                         \
        INNER(st)->ops->op(INNER(st), a1, a2, &c->capture);                                        \
    }
#define WRAP3(op, T1, T2, T3)                                                                      \
    static void w_##op(struct state *st, T1 a1, T2 a2, T3 a3, const struct state_cb *cb)           \
    {                                                                                              \
        struct call *c = call_new(st, cb);                                                         \
        INNER(st)->ops->op(INNER(st), a1, a2, a3, &c->capture);                                    \
    }
#define WRAP4(op, T1, T2, T3, T4)                                                                  \
    static void w_##op(struct state *st, T1 a1, T2 a2, T3 a3, T4 a4, const struct state_cb *cb)    \
    {                                                                                              \
        struct call *c = call_new(st, cb);                                                         \
        INNER(st)->ops->op(INNER(st), a1, a2, a3, a4, &c->capture);                                \
    }
#define WRAP5(op, T1, T2, T3, T4, T5)                                                              \
    static void w_##op(struct state *st, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5,                        \
                       const struct state_cb *cb)                                                  \
    {                                                                                              \
        struct call *c = call_new(st, cb);                                                         \
        INNER(st)->ops->op(INNER(st), a1, a2, a3, a4, a5, &c->capture);                            \
    }
typedef const char *str;
typedef const struct state_message *msg;
WRAP2(auth_get, int64_t, int64_t)
WRAP2(auth_list, int64_t, int64_t)
WRAP4(auth_put, int64_t, int64_t, str, size_t)
WRAP2(auth_delete, int64_t, int64_t)
WRAP2(data_get, int64_t, int64_t)
WRAP2(data_list, int64_t, int64_t)
WRAP4(data_put, int64_t, int64_t, str, size_t)
WRAP2(data_delete, int64_t, int64_t)
WRAP3(token_get, int64_t, str, size_t)
WRAP2(token_list, int64_t, int64_t)
WRAP5(token_put, int64_t, str, size_t, int64_t, int64_t)
WRAP3(token_delete, int64_t, str, size_t)
WRAP2(time_get, int64_t, int64_t)
WRAP2(time_list, int64_t, int64_t)
WRAP3(queue_list, int64_t, int64_t, int64_t)
WRAP2(queue_list_all, int64_t, int64_t)
WRAP2(queue_delete_user, int64_t, int64_t)
WRAP2(queue_delete_id, int64_t, int64_t)
WRAP4(history_list, int64_t, str, size_t, int64_t)
WRAP3(history_delete_pipe, int64_t, str, size_t)
WRAP2(history_delete_id, int64_t, int64_t)
WRAP3(pipe_setting_get, int64_t, str, size_t)
WRAP2(pipe_setting_list, int64_t, int64_t)
WRAP4(pipe_setting_put, int64_t, str, size_t, int64_t)
WRAP3(pipe_setting_delete, int64_t, str, size_t)
WRAP3(conf_get, int64_t, str, size_t)
WRAP2(conf_list, int64_t, int64_t)
WRAP1(pipe_publish, msg)
WRAP1(user_message, msg)

static bool w_commit_pending(const struct state *st)
{
    const struct late *l = (const struct late *)st;
    return l->inner->ops->commit_pending(l->inner);
}

static void w_free(struct state *st)
{
    drain(st);
    xfree(st);
}

static const struct state_ops late_ops = {
    .name = "late",
    .completes_inline = false,
    .auth_get = w_auth_get,
    .auth_list = w_auth_list,
    .auth_put = w_auth_put,
    .auth_delete = w_auth_delete,
    .data_get = w_data_get,
    .data_list = w_data_list,
    .data_put = w_data_put,
    .data_delete = w_data_delete,
    .token_get = w_token_get,
    .token_list = w_token_list,
    .token_put = w_token_put,
    .token_delete = w_token_delete,
    .time_get = w_time_get,
    .time_list = w_time_list,
    .queue_list = w_queue_list,
    .queue_list_all = w_queue_list_all,
    .queue_delete_user = w_queue_delete_user,
    .queue_delete_id = w_queue_delete_id,
    .history_list = w_history_list,
    .history_delete_pipe = w_history_delete_pipe,
    .history_delete_id = w_history_delete_id,
    .pipe_setting_get = w_pipe_setting_get,
    .pipe_setting_list = w_pipe_setting_list,
    .pipe_setting_put = w_pipe_setting_put,
    .pipe_setting_delete = w_pipe_setting_delete,
    .conf_get = w_conf_get,
    .conf_list = w_conf_list,
    .pipe_publish = w_pipe_publish,
    .user_message = w_user_message,
    .commit_pending = w_commit_pending,
    .free = w_free,
};

static struct state *late_new(struct state *inner)
{
    struct late *l = xcalloc(1, sizeof *l);
    l->base.ops = &late_ops;
    l->inner = inner;
    l->tail = &l->head;
    return &l->base;
}

/* ---- fixtures ------------------------------------------------------------------------------ */

struct fixture {
    char path[96];
    struct store *db;
    struct hub hub;
    struct state *inline_state, *late_state;
    struct config *cfg;
    struct cq_env env;
    struct cq_session sess;
    struct arena arena;
};

static bool fixture_open(struct fixture *f, const char *name)
{
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "/tmp/ccomet-unit-%s-%d.db", name, (int)getpid());
    unlink(f->path);
    char err[256];
    f->db = store_open(f->path, false, err, sizeof err);
    if (!f->db) {
        printf("    store_open: %s\n", err);
        return false;
    }
    hub_init(&f->hub);
    f->inline_state = state_embedded_new(f->db, &f->hub);
    f->late_state = late_new(f->inline_state);
    f->cfg = config_defaults();
    f->env.cfg = f->cfg;
    f->env.hub = &f->hub;
    f->sess.dev_id = 3;
    arena_init(&f->arena);
    return true;
}

static void fixture_close(struct fixture *f)
{
    state_free(f->late_state);
    state_free(f->inline_state);
    store_close(f->db);
    config_free(f->cfg);
    arena_free(&f->arena);
    char p[128];
    unlink(f->path);
    snprintf(p, sizeof p, "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->path);
    unlink(p);
}

struct completion {
    int calls;
};

static void on_later(void *ctx, struct cq_result *r)
{
    (void)r;
    ((struct completion *)ctx)->calls++;
}

/* The result as one line: "OK affected insert_id", "ERR code msg" or the rows. */
static void describe(const struct cq_result *r, char *out, size_t n)
{
    size_t o = 0;
    if (r->kind == CQ_RES_ERR) {
        snprintf(out, n, "ERR %d %s", r->err_code, r->err_msg);
        return;
    }
    if (r->kind == CQ_RES_OK) {
        snprintf(out, n, "OK %llu %llu", (unsigned long long)r->affected,
                 (unsigned long long)r->insert_id);
        return;
    }
    o += (size_t)snprintf(out + o, n - o, "ROWS %zu:", r->n_rows);
    for (size_t i = 0; i < r->n_rows * r->n_cols && o < n; i++) {
        const struct value *v = &r->cells[i];
        if (v->kind == VALUE_INT)
            o += (size_t)snprintf(out + o, n - o, " %lld", (long long)v->i);
        else if (v->kind == VALUE_STR)
            o += (size_t)snprintf(out + o, n - o, " '%.*s'", (int)v->len, v->s);
        else
            o += (size_t)snprintf(out + o, n - o, " NULL");
    }
}

/* Runs sql on the given state; for the late one, checks the wait and the single completion. */
static void run_sql(struct fixture *f, struct state *st, const char *sql, char *out, size_t n)
{
    f->env.state = st;
    arena_reset(&f->arena);
    struct cq_limits lim = {4000, 64, 64}; /* comet.ini's max_in_values */
    struct cq_stmt *stmt;
    struct cq_error err;
    if (cq_parse(sql, strlen(sql), &lim, false, &f->arena, &stmt, &err) != CQ_OK) {
        snprintf(out, n, "PARSE %s", err.msg);
        return;
    }
    struct cq_result r;
    struct completion done = {0};
    bool now = cq_exec(&f->env, &f->sess, stmt, NULL, &f->arena, &r, on_later, &done);
    if (st == f->late_state) {
        size_t answered = drain(st);
        if (answered > 0 && now) {
            snprintf(out, n, "completed before the state answered: %s", sql);
            cq_result_free(&r);
            return;
        }
        if (!now && done.calls != 1) {
            snprintf(out, n, "completion called %d times: %s", done.calls, sql);
            cq_result_free(&r);
            return;
        }
    } else if (!now || done.calls) {
        snprintf(out, n, "the inline state made the statement wait: %s", sql);
        cq_result_free(&r);
        return;
    }
    describe(&r, out, n);
    cq_result_free(&r);
}

/* The script, run on two stores, one behind the inline state and one behind the late one,
 * answers the same at every statement. */
static const char *const script[] = {
    "INSERT INTO users_auth (id, hash) VALUES (1, 'h1'), (2, 'h2'), (3, 'h3')",
    "SELECT * FROM users_auth WHERE id IN (3, 1, 2, 1, 99)",
    "SELECT hash FROM users_auth LIMIT 1, 1",
    "SELECT * FROM users_auth WHERE id IN (1, 2, 3) LIMIT 2",
    "UPDATE users_auth SET hash = 'hx' WHERE id IN (2, 3)",
    "SELECT * FROM users_auth WHERE id = 2",
    "INSERT INTO users_data (id, data) VALUES (7, 'seven')",
    "SELECT * FROM users_data WHERE id = 7 AND data = 'seven'",
    "SELECT * FROM users_time WHERE id IN (1, 5)",
    "INSERT INTO pipes_settings (name, length) VALUES ('chat', 3)",
    "SELECT * FROM pipes_settings",
    "DELETE FROM users_data WHERE id = 7",
    "DELETE FROM users_auth WHERE id IN (1, 2, 3) AND hash = 'hx'",
    "SELECT * FROM users_auth",
    "DELETE FROM pipes_settings WHERE name = 'chat'",
    "SELECT * FROM pipes_messages",
    "SELECT * FROM users_auth WHERE id = 1 ORDER BY id",
};

TEST(tables_same_answers_when_the_state_answers_later)
{
    struct fixture a, b;
    CHECK(fixture_open(&a, "tables-inline"));
    CHECK(fixture_open(&b, "tables-late"));
    if (!a.db || !b.db) return;
    for (size_t i = 0; i < sizeof script / sizeof script[0]; i++) {
        char now[2048], later[2048];
        run_sql(&a, a.inline_state, script[i], now, sizeof now);
        run_sql(&b, b.late_state, script[i], later, sizeof later);
        if (strcmp(now, later) != 0)
            printf("    %s\n      inline: %s\n      late:   %s\n", script[i], now, later);
        CHECK_STR(later, now);
    }
    fixture_close(&a);
    fixture_close(&b);
}

TEST(tables_pipe_messages_get_increasing_ids_in_order_when_late)
{
    struct fixture f;
    CHECK(fixture_open(&f, "tables-pub"));
    if (!f.db) return;
    char out[2048];
    run_sql(&f, f.late_state, "INSERT INTO pipes_settings (name, length) VALUES ('news', 2)", out,
            sizeof out);
    CHECK_STR(out, "OK 1 0");
    run_sql(&f, f.late_state,
            "INSERT INTO pipes_messages (name, event, message) VALUES ('news', 'e', 'a'), "
            "('news', 'e', 'b'), ('news', 'e', 'c')",
            out, sizeof out);
    CHECK_STR(out, "OK 3 3"); /* insert_id: the last row's message id */
    run_sql(&f, f.late_state, "SELECT id, message FROM pipes_messages WHERE name = 'news'", out,
            sizeof out);
    CHECK_STR(out, "ROWS 2: 2 'b' 3 'c'"); /* history trimmed to the pipe's length */
    /* a thousand-row INSERT runs its writes in sequence without nesting (and without the
     * stack of the inline state growing with it) */
    char *sql = xmalloc(64 * 1024);
    size_t o = (size_t)snprintf(sql, 64 * 1024, "INSERT INTO users_auth (id, hash) VALUES ");
    for (int i = 1; i <= 1000; i++)
        o += (size_t)snprintf(sql + o, 64 * 1024 - o, "%s(%d, 'k%d')", i > 1 ? ", " : "", i, i);
    run_sql(&f, f.inline_state, sql, out, sizeof out);
    CHECK_STR(out, "OK 1000 1000");
    run_sql(&f, f.late_state, sql, out, sizeof out);
    CHECK_STR(out, "OK 1000 1000");
    xfree(sql);
    fixture_close(&f);
}

/* An IN list with repeats reads each key once, whatever its spelling (audit M5 replaced the
 * pairwise comparison with a hash set keyed as value_equal compares). */
TEST(tables_in_list_repeats_read_once)
{
    struct fixture f;
    CHECK(fixture_open(&f, "tables-dups"));
    if (!f.db) return;
    char out[2048];
    run_sql(&f, f.inline_state, "INSERT INTO users_auth (id, hash) VALUES (1, 'a'), (2, 'b')", out,
            sizeof out);
    run_sql(&f, f.inline_state,
            "SELECT id FROM users_auth WHERE id IN ('1', 1, '01', 2, 1, 'x', NULL)", out,
            sizeof out);
    CHECK_STR(out, "ROWS 2: 1 2");
    run_sql(&f, f.inline_state,
            "INSERT INTO pipes_settings (name, length) VALUES ('p12', 1), ('p_b', 2)", out,
            sizeof out);
    run_sql(&f, f.inline_state,
            "SELECT name FROM pipes_settings WHERE name IN ('p_b', 'p12', 'p_b', 'p12', 'nope')",
            out, sizeof out);
    CHECK_STR(out, "ROWS 2: 'p_b' 'p12'");
    /* 4,000 values, every one a repeat of ten keys */
    char *sql = xmalloc(64 * 1024);
    size_t o = (size_t)snprintf(sql, 64 * 1024, "SELECT id FROM users_auth WHERE id IN (");
    for (int i = 0; i < 4000; i++)
        o += (size_t)snprintf(sql + o, 64 * 1024 - o, "%s'%d'", i ? "," : "", 1 + i % 10);
    snprintf(sql + o, 64 * 1024 - o, ")");
    run_sql(&f, f.inline_state, sql, out, sizeof out);
    CHECK_STR(out, "ROWS 2: 1 2");
    xfree(sql);
    fixture_close(&f);
}
