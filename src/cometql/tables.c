/* tables: the virtual tables; see tables.h. Rows are produced per table (from the state backend,
 * the hub or the Video API), then filtered by every WHERE condition, limited and projected
 * generically, so =, IN and AND mean the same thing on every table. Writes validate every row
 * before touching the state. The state may answer later than it is asked (state.h), so each
 * statement runs as a chain of steps (struct run). */
#include "cometql/tables.h"
#include "core/alloc.h"
#include "core/log.h"
#include "proto/jwt.h"
#include "proto/names.h"
#include "state/state.h"
#include "state/tenants.h"
#include "video/video.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define INT(n)                                                                                     \
    {                                                                                              \
        n, CQ_COL_INT, false                                                                       \
    }
#define STR(n)                                                                                     \
    {                                                                                              \
        n, CQ_COL_STR, false                                                                       \
    }
#define KINT(n)                                                                                    \
    {                                                                                              \
        n, CQ_COL_INT, true                                                                        \
    }
#define KSTR(n)                                                                                    \
    {                                                                                              \
        n, CQ_COL_STR, true                                                                        \
    }
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct cq_column c_auth[] = {KINT("id"), STR("hash")};
static const char *const t_auth[] = {"int(11)", "varchar(32)"};
static const struct cq_column c_data[] = {KINT("id"), STR("data")};
static const char *const t_data[] = {"int(11)", "text"};
static const struct cq_column c_tokens[] = {KSTR("token")};
static const char *const t_tokens[] = {"varchar(600)"};
static const struct cq_column c_time[] = {KINT("id"), INT("time")};
static const char *const t_time[] = {"int(11)", "int(11)"};
static const struct cq_column c_umsg[] = {KINT("id"), INT("index"), STR("event"), STR("message")};
static const char *const t_umsg[] = {"int(11)", "bigint(20)", "varchar(64)", "text"};
static const struct cq_column c_pmsg[] = {INT("id"),    INT("time"),    KSTR("name"),  INT("index"),
                                          STR("event"), STR("message"), INT("user_id")};
static const char *const t_pmsg[] = {"bigint(20)",  "int(11)", "varchar(64)", "int(11)",
                                     "varchar(64)", "text",    "int(11)"};
static const struct cq_column c_uip[] = {KSTR("name"),      INT("user_id"), STR("user_uuid"),
                                         STR("user_agent"), STR("ip"),      STR("origin"),
                                         STR("language")};
static const char *const t_uip[] = {"varchar(64)", "int(11)",      "varchar(64)", "varchar(255)",
                                    "varchar(64)", "varchar(255)", "varchar(64)"};
static const struct cq_column c_pipes[] = {KSTR("name"), INT("users")};
static const char *const t_pipes[] = {"varchar(64)", "int(11)"};
static const struct cq_column c_pset[] = {KSTR("name"), INT("length")};
static const char *const t_pset[] = {"varchar(64)", "int(11)"};
static const struct cq_column c_conf[] = {KSTR("name"),   INT("user_id"), INT("caller_id"),
                                          STR("message"), STR("profile"), STR("stream"),
                                          STR("node")};
static const char *const t_conf[] = {"varchar(32)", "int(11)",      "int(11)",    "text",
                                     "varchar(32)", "varchar(255)", "varchar(64)"};
static const struct cq_column c_confm[] = {KSTR("name"),        INT("user_id"),   INT("join_time"),
                                           INT("last_talking"), INT("member_id"), INT("talking"),
                                           INT("mute"),         INT("vmute"),     INT("deaf"),
                                           INT("video"),        STR("node"),      STR("layout")};
static const char *const t_confm[] = {"varchar(32)", "int(11)",    "int(11)",     "int(11)",
                                      "int(11)",     "tinyint(1)", "tinyint(1)",  "tinyint(1)",
                                      "tinyint(1)",  "tinyint(1)", "varchar(64)", "varchar(32)"};
_Static_assert(sizeof c_confm / sizeof c_confm[0] == VIDEO_MEMBER_COLS, "conference_members");
/* root's table of tenant credentials: password and jwt_secret are write-only (SELECT shows the
 * password's hash as MySQL does, "*" + 40 hex digits, and a fingerprint of the secret); grace is
 * what INSERT gives the replaced credentials, and what SELECT shows of it still left. */
static const struct cq_column c_tenants[] = {KINT("dev_id"), STR("password"), STR("jwt_secret"),
                                             INT("grace"),   INT("created"),  INT("updated")};
static const char *const t_tenants[] = {"int(11)", "varchar(41)", "varchar(512)",
                                        "int(11)", "int(11)",     "int(11)"};

#define UNAVAILABLE "Table `%s` is not available"

enum table_id {
    T_AUTH,
    T_DATA,
    T_TOKENS,
    T_TIME,
    T_UMSG,
    T_PMSG,
    T_UIP,
    T_PIPES,
    T_PSET,
    T_CONF,
    T_CONFM,
    T_TENANTS
};

static const struct table_def defs[] = {
    [T_AUTH] = {"users_auth", c_auth, t_auth, N(c_auth), "auth hash per user", true, true, true,
                true, NULL},
    [T_DATA] = {"users_data", c_data, t_data, N(c_data), "data per user, readable from JS", true,
                true, true, true, NULL},
    [T_TOKENS] = {"revoked_tokens", c_tokens, t_tokens, N(c_tokens), "revoked JWTs", true, true,
                  true, false, NULL},
    [T_TIME] = {"users_time", c_time, t_time, N(c_time), "0 online, else last seen", true, false,
                false, false, NULL},
    [T_UMSG] = {"users_messages", c_umsg, t_umsg, N(c_umsg), "private messages, offline queue",
                true, true, true, false, NULL},
    [T_PMSG] = {"pipes_messages", c_pmsg, t_pmsg, N(c_pmsg), "pipe messages and history", true,
                true, true, false, NULL},
    [T_UIP] = {"users_in_pipes", c_uip, t_uip, N(c_uip), "live subscribers", true, false, false,
               false, NULL},
    [T_PIPES] = {"pipes", c_pipes, t_pipes, N(c_pipes), "live pipes", true, false, false, false,
                 NULL},
    [T_PSET] = {"pipes_settings", c_pset, t_pset, N(c_pset), "history length per pipe", true, true,
                true, true, NULL},
    [T_CONF] = {"conference", c_conf, t_conf, N(c_conf), "Video API invitations", true, true, true,
                false, NULL},
    [T_CONFM] = {"conference_members", c_confm, t_confm, N(c_confm), "Video API members now", true,
                 false, false, true, NULL},
    [T_TENANTS] = {"tenants", c_tenants, t_tenants, N(c_tenants), "tenant credentials (root only)",
                   true, true, true, false, NULL},
};

const struct table_def *tables_find(const char *name)
{
    for (size_t i = 0; i < N(defs); i++)
        if (strcmp(defs[i].name, name) == 0) return &defs[i];
    return NULL;
}

size_t tables_count(void)
{
    return N(defs);
}

const struct table_def *tables_at(size_t i)
{
    return i < N(defs) ? &defs[i] : NULL;
}

bool tables_visible(const struct table_def *t, const struct cq_session *s)
{
    return (enum table_id)(t - defs) != T_TENANTS || (s->login_dev_id == 0 && s->shared_login);
}

int tables_column(const struct table_def *t, const char *name)
{
    for (size_t i = 0; i < t->n_cols; i++)
        if (strcmp(t->cols[i].name, name) == 0) return (int)i;
    return -1;
}

static int key_column(const struct table_def *t)
{
    for (size_t i = 0; i < t->n_cols; i++)
        if (t->cols[i].primary) return (int)i;
    return -1;
}

static bool hash_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '=' || c == '+' || c == '/'))
            return false;
    }
    return true;
}

static bool token_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!(hash_ok(s + i, 1) || s[i] == '.')) return false;
    return true;
}

static struct value operand(const struct cq_operand *o, const struct value *params)
{
    return o->param >= 0 ? params[o->param] : o->v;
}

/* Integer meaning of a value: INT as is, a decimal string as its number. */
static bool as_int(struct value v, int64_t *out)
{
    if (v.kind == VALUE_INT) {
        *out = v.i;
        return true;
    }
    if (v.kind != VALUE_STR || v.len == 0 || v.len > 20) return false;
    char buf[24];
    memcpy(buf, v.s, v.len);
    buf[v.len] = '\0';
    char *end;
    errno = 0;
    long long n = strtoll(buf, &end, 10);
    if (*end || errno) return false;
    *out = n;
    return true;
}

/* String meaning of a value: STR as is, INT printed into the arena. */
static bool as_str(struct arena *a, struct value v, const char **s, size_t *len)
{
    if (v.kind == VALUE_STR) {
        *s = v.s;
        *len = v.len;
        return true;
    }
    if (v.kind == VALUE_INT) {
        char *p = arena_alloc(a, 24);
        *len = (size_t)snprintf(p, 24, "%" PRId64, v.i);
        *s = p;
        return true;
    }
    return false;
}

static bool value_equal(enum cq_coltype type, struct value row, struct value cond)
{
    if (row.kind == VALUE_NULL || cond.kind == VALUE_NULL) return false;
    if (type == CQ_COL_INT) {
        int64_t a, b;
        return as_int(row, &a) && as_int(cond, &b) && a == b;
    }
    char ra[24], ca[24];
    const char *rs = row.s, *cs = cond.s;
    size_t rl = row.len, cl = cond.len;
    if (row.kind == VALUE_INT) rl = (size_t)snprintf(ra, sizeof ra, "%" PRId64, row.i), rs = ra;
    if (cond.kind == VALUE_INT) cl = (size_t)snprintf(ca, sizeof ca, "%" PRId64, cond.i), cs = ca;
    return rl == cl && memcmp(rs, cs, rl) == 0;
}

/* ---- WHERE ------------------------------------------------------------------------------- */

struct where {
    const struct cq_cond *conds;
    int col[64]; /* column index per condition */
    size_t n;
    int key; /* index into conds of the key column's condition, or -1 */
};

static bool check_where(const struct table_def *t, const struct cq_stmt *st, struct where *w,
                        struct cq_result *r)
{
    w->conds = st->where;
    w->n = st->n_where;
    w->key = -1;
    if (w->n > N(w->col)) {
        cq_result_error(r, CQ_ERR_TOO_MANY, "HY000", "Too many conditions in WHERE (limit %zu)",
                        N(w->col));
        return false;
    }
    int keycol = key_column(t);
    for (size_t i = 0; i < w->n; i++) {
        const struct cq_cond *c = &st->where[i];
        int col = tables_column(t, c->column);
        if (col < 0) {
            cq_result_error(r, CQ_ERR_COLUMNS, "42S22", "Unknown column '%s' in 'where clause'",
                            c->column);
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (w->col[j] == col) {
                cq_result_error(r, CQ_ERR_WHERE, "HY000",
                                "Each column in the conditions used only once (`%s`)", c->column);
                return false;
            }
        }
        if (c->op != CQ_OP_EQ && c->op != CQ_OP_IN) {
            cq_result_error(r, CQ_ERR_NOT_IMPLEMENTED, "42000",
                            "Operator %s is not supported on table `%s`: CometQL supports =, IN "
                            "and AND",
                            cq_op_name(c->op), t->name);
            return false;
        }
        w->col[i] = col;
        if (col == keycol) w->key = (int)i;
    }
    return true;
}

static bool row_matches(const struct table_def *t, const struct where *w, const struct value *row,
                        const struct value *params)
{
    for (size_t i = 0; i < w->n; i++) {
        const struct cq_cond *c = &w->conds[i];
        bool any = false;
        for (size_t k = 0; k < c->n_values && !any; k++)
            any = value_equal(t->cols[w->col[i]].type, row[w->col[i]],
                              operand(&c->values[k], params));
        if (!any) return false;
    }
    return true;
}

/* ---- a statement in flight ----------------------------------------------------------------- */

/* One table statement, from its first state call to its reply. The state backend may complete
 * a call before it returns (embedded) or later (Redis), so every statement is a chain of
 * steps: a step issues state calls one at a time (seq_run), and the step after it runs when the
 * last one completes. seq_run loops instead of recursing while calls complete inline, so a
 * thousand-row INSERT does not nest a thousand calls deep. Lives in the statement's arena; the
 * result's hold keeps the caller waiting until run_finish. */
struct run;
typedef void (*run_step)(struct run *);
typedef void (*run_issue)(struct run *, size_t i);

/* Receives each candidate row of the table (all columns); returns non-zero to stop. */
typedef int (*row_sink)(struct run *, const struct value *row);

struct run {
    const struct cq_env *env;
    struct cq_session *s;
    const struct table_def *t;
    const struct cq_stmt *st;
    const struct value *params;
    struct arena *a;
    struct cq_result *r;
    struct where w;
    /* the sequence being run */
    size_t seq_i, seq_n;
    size_t seq_done; /* pipelined: items completed (they complete in the order issued) */
    run_issue seq_issue;
    run_step seq_then;
    bool seq_looping, seq_again, failed;
    bool seq_pipelined; /* every item issued at once (seq_run_pipelined) */
    int64_t last;       /* result of the latest call */
    /* row production */
    row_sink sink;
    int64_t limit;   /* rows to ask the state for */
    int64_t running; /* pipes_messages index */
    bool stopped;
    int64_t key_id; /* the key being read, for users_time */
    bool *dup;      /* per value of the key's IN list: it repeats an earlier one */
    size_t key_rows;
    /* SELECT */
    const int *proj;
    size_t n_proj;
    uint64_t skip, take; /* LIMIT */
    uint64_t examined;   /* rows the WHERE was tried on ([cometql] max_rows_examined) */
    bool limited;
    int64_t max_rows;
    bool overflow, overflow_bytes;
    /* INSERT / UPDATE / DELETE */
    struct checked *rows;
    size_t n_rows;
    struct cq_result found; /* rows an UPDATE or DELETE selected, all columns */
    const int *assign_cols; /* UPDATE: column per assignment */
    uint64_t removed;
    int64_t jwt_user;     /* revoked_tokens: the user whose hash the token revokes */
    struct tenant tenant; /* tenants: the record being written (its secrets wiped after) */
};

static struct run *run_new(const struct cq_env *env, struct cq_session *s,
                           const struct table_def *t, const struct cq_stmt *st,
                           const struct value *params, struct arena *a, struct cq_result *r)
{
    struct run *run = arena_alloc(a, sizeof *run);
    memset(run, 0, sizeof *run);
    run->env = env;
    run->s = s;
    run->t = t;
    run->st = st;
    run->params = params;
    run->a = a;
    run->r = r;
    cq_result_init(&run->found);
    cq_result_hold(r);
    return run;
}

static void run_finish(struct run *run)
{
    cq_result_free(&run->found);
    cq_result_release(run->r);
}

/* A state error ends the statement with "Storage error: ..." (the first one wins). */
static void run_fail(struct run *run, const char *err)
{
    if (!run->failed)
        cq_result_error(run->r, CQ_ERR_INTERNAL, "HY000", "Storage error: %s",
                        err ? err : "unknown");
    run->failed = true;
}

static void seq_loop(struct run *run)
{
    if (run->seq_pipelined) {
        if (run->seq_looping) return; /* an item completed inline: the loop below goes on */
        run->seq_looping = true;
        while (!run->failed && !run->stopped && run->seq_i < run->seq_n)
            run->seq_issue(run, run->seq_i++);
        run->seq_looping = false;
        if (run->seq_done == run->seq_i) {
            run->seq_pipelined = false;
            run->seq_then(run);
        }
        return;
    }
    if (run->seq_looping) {
        run->seq_again = true; /* the call completed inline: the loop below goes on */
        return;
    }
    run->seq_looping = true;
    do {
        run->seq_again = false;
        if (run->failed || run->stopped || run->seq_i >= run->seq_n) {
            run->seq_looping = false;
            run->seq_then(run);
            return;
        }
        run->seq_issue(run, run->seq_i++);
    } while (run->seq_again);
    run->seq_looping = false; /* waiting on the backend: its completion re-enters seq_loop */
}

/* Runs issue(run, 0..n-1), each one after the previous has called seq_next, then `then`. */
static void seq_run(struct run *run, size_t n, run_issue issue, run_step then)
{
    run->seq_i = 0;
    run->seq_n = n;
    run->seq_issue = issue;
    run->seq_then = then;
    seq_loop(run);
}

/* Runs issue(run, 0..n-1) without waiting for each to complete (a remote backend then gets
 * them in one round trip), then `then` once all have completed. For items that are one state
 * call each whose completions need only their own row (seq_row). */
static void seq_run_pipelined(struct run *run, size_t n, run_issue issue, run_step then)
{
    run->seq_i = run->seq_done = 0;
    run->seq_n = n;
    run->seq_issue = issue;
    run->seq_then = then;
    run->seq_pipelined = true;
    seq_loop(run);
}

/* The end of one issued item. */
static void seq_next(struct run *run)
{
    if (run->seq_pipelined) {
        run->seq_done++;
        if (!run->seq_looping && run->seq_done == run->seq_i) {
            run->seq_pipelined = false;
            run->seq_then(run);
        }
        return;
    }
    seq_loop(run);
}

/* The index of the item whose completion is running. */
static size_t seq_row(const struct run *run)
{
    return run->seq_pipelined ? run->seq_done : run->seq_i - 1;
}

static void seq_done(void *ctx, int64_t result, const char *err)
{
    struct run *run = ctx;
    run->last = result;
    if (result < 0) run_fail(run, err);
    seq_next(run);
}

/* ---- row production ---------------------------------------------------------------------- */

static int put_row(struct run *run, const struct value *row)
{
    if (run->stopped) return 1;
    if (run->sink(run, row)) {
        run->stopped = true;
        return 1;
    }
    return 0;
}

static int from_state(void *ctx, const struct value *cols, size_t n)
{
    struct run *p = ctx;
    struct value row[8];
    enum table_id id = (enum table_id)(p->t - defs);
    p->key_rows++;
    switch (id) {
    case T_AUTH:
    case T_DATA:
    case T_PSET:
        row[0] = cols[0];
        row[1] = cols[1];
        break;
    case T_TOKENS: row[0] = cols[0]; break;
    case T_TIME:
        row[0] = cols[0];
        row[1] = hub_user_online(p->env->hub, p->s->dev_id, cols[0].i) ? value_int(0) : cols[1];
        break;
    case T_UMSG: /* (user_id, id, time, event, message) */
        row[0] = cols[0];
        row[1] = cols[1];
        row[2] = cols[3];
        row[3] = cols[4];
        break;
    case T_PMSG: /* (id, time, pipe, event, message, user_id) */
        row[0] = cols[0];
        row[1] = cols[1];
        row[2] = cols[2];
        row[3] = value_int(p->running++);
        row[4] = cols[3];
        row[5] = cols[4];
        row[6] = cols[5];
        break;
    case T_CONF: /* (name, user_id, caller_id, message, profile, stream, node, time) */
        for (int i = 0; i < 7; i++)
            row[i] = cols[i];
        break;
    default: return 1;
    }
    (void)n;
    return put_row(p, row);
}

static int from_member(void *ctx, const struct hub_pipe_member *m)
{
    struct value row[7];
#define S_(x) ((x) ? value_str((x), strlen(x)) : value_null())
    row[0] = S_(m->pipe);
    row[1] = value_int(m->user_id);
    row[2] = S_(m->uuid);
    row[3] = S_(m->user_agent);
    row[4] = S_(m->ip);
    row[5] = S_(m->origin);
    row[6] = S_(m->language);
#undef S_
    return put_row(ctx, row);
}

static int from_video(void *ctx, const struct value *row)
{
    return put_row(ctx, row);
}

/* tenants: a record as SELECT shows it, never a secret */
static int from_tenant(void *ctx, const struct tenant *t)
{
    struct run *p = ctx;
    char pw[42] = "", fp[24] = "";
    if (t->has_password) tenant_password_text(t->password, pw);
    if (t->jwt_secret) tenant_secret_fingerprint(t->jwt_secret, t->jwt_len, fp);
    int64_t now = (int64_t)time(NULL), until = 0;
    if (t->has_old_password && t->old_password_until > until) until = t->old_password_until;
    if (t->old_jwt_secret && t->old_jwt_until > until) until = t->old_jwt_until;
    struct value row[6] = {value_int(t->dev_id),      value_str(pw, strlen(pw)),
                           value_str(fp, strlen(fp)), value_int(until > now ? until - now : 0),
                           value_int(t->created),     value_int(t->updated)};
    return put_row(p, row);
}

static int from_pipe(void *ctx, const char *pipe, size_t subs)
{
    struct value row[2] = {value_str(pipe, strlen(pipe)), value_int((int64_t)subs)};
    return put_row(ctx, row);
}

/* users_time: a user with no stored time reads as -1 (unknown). */
static void time_done(void *ctx, int64_t result, const char *err)
{
    struct run *run = ctx;
    if (result == 0 && !run->stopped) {
        struct value row[2] = {value_int(run->key_id), value_int(-1)};
        put_row(run, row);
    }
    seq_done(ctx, result, err);
}

/* In-process answers (hub, video) complete at once. */
static void local_done(struct run *run, int rc)
{
    if (rc < 0) run_fail(run, "the live state could not be read");
    seq_next(run);
}

/* Produces the rows for key value i of the key condition (duplicates in an IN list are read
 * once). */
static void produce_key(struct run *p, size_t i)
{
    const struct cq_env *env = p->env;
    struct state *st = env->state;
    const struct cq_cond *c = &p->w.conds[p->w.key];
    struct value key = operand(&c->values[i], p->params);
    int keycol = key_column(p->t);
    if (p->dup && p->dup[i]) {
        seq_next(p);
        return;
    }
    int64_t dev = p->s->dev_id, id = 0;
    const char *str = "";
    size_t len = 0;
    if (p->t->cols[keycol].type == CQ_COL_INT) {
        if (!as_int(key, &id)) { /* a non-number never matches an integer key */
            seq_next(p);
            return;
        }
    } else if (!as_str(p->a, key, &str, &len)) {
        seq_next(p);
        return;
    }
    struct state_cb cb = {from_state, seq_done, p};
    p->key_rows = 0;
    switch ((enum table_id)(p->t - defs)) {
    case T_AUTH: st->ops->auth_get(st, dev, id, &cb); return;
    case T_DATA: st->ops->data_get(st, dev, id, &cb); return;
    case T_TOKENS: st->ops->token_get(st, dev, str, len, &cb); return;
    case T_TIME:
        if (hub_user_online(env->hub, dev, id)) {
            struct value row[2] = {value_int(id), value_int(0)};
            put_row(p, row);
            seq_next(p);
            return;
        }
        p->key_id = id;
        cb.done = time_done;
        st->ops->time_get(st, dev, id, &cb);
        return;
    case T_UMSG: st->ops->queue_list(st, dev, id, p->limit, &cb); return;
    case T_PMSG: st->ops->history_list(st, dev, str, len, p->limit, &cb); return;
    case T_PSET: st->ops->pipe_setting_get(st, dev, str, len, &cb); return;
    case T_CONF: st->ops->conf_get(st, dev, str, len, &cb); return;
    case T_PIPES: {
        struct value row[2] = {value_str(str, len),
                               value_int((int64_t)hub_pipe_subscribers(env->hub, dev, str, len))};
        put_row(p, row);
        seq_next(p);
        return;
    }
    case T_UIP: local_done(p, hub_pipe_members(env->hub, dev, str, len, from_member, p)); return;
    case T_CONFM:
        local_done(p, env->video ? video_members(env->video, dev, str, len, from_video, p) : 0);
        return;
    case T_TENANTS: {
        const struct tenant *t = tenants_get(env->tenants, id);
        if (t) from_tenant(p, t);
        seq_next(p);
        return;
    }
    default: seq_next(p); return;
    }
}

/* Produces every row of the tenant's table (no key condition). */
static void produce_all(struct run *p, size_t i)
{
    (void)i;
    const struct cq_env *env = p->env;
    struct state *st = env->state;
    int64_t dev = p->s->dev_id;
    struct state_cb cb = {from_state, seq_done, p};
    switch ((enum table_id)(p->t - defs)) {
    case T_AUTH: st->ops->auth_list(st, dev, p->limit, &cb); return;
    case T_DATA: st->ops->data_list(st, dev, p->limit, &cb); return;
    case T_TOKENS: st->ops->token_list(st, dev, p->limit, &cb); return;
    case T_TIME: st->ops->time_list(st, dev, p->limit, &cb); return;
    case T_UMSG: st->ops->queue_list_all(st, dev, p->limit, &cb); return;
    case T_PSET: st->ops->pipe_setting_list(st, dev, p->limit, &cb); return;
    case T_CONF: st->ops->conf_list(st, dev, p->limit, &cb); return;
    case T_PIPES: local_done(p, hub_pipes(env->hub, dev, from_pipe, p)); return;
    case T_UIP: local_done(p, hub_pipe_members(env->hub, dev, NULL, 0, from_member, p)); return;
    case T_CONFM:
        local_done(p, env->video ? video_members(env->video, dev, NULL, 0, from_video, p) : 0);
        return;
    case T_TENANTS:
        tenants_each(env->tenants, from_tenant, p);
        seq_next(p);
        return;
    default: seq_next(p); return;
    }
}

/* Runs the production for the WHERE (per key value, or the whole table), then `then`. Returns
 * false with the result filled when the table cannot be listed without its key. */
static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

/* Marks the values of the key's IN list that repeat an earlier one, with a hash set keyed the
 * way value_equal compares (integers by value, strings by their text), so a 4,000-value list
 * costs 4,000 probes rather than 8 million comparisons (audit M5). */
static void mark_duplicates(struct run *p)
{
    const struct cq_cond *c = &p->w.conds[p->w.key];
    size_t n = c->n_values;
    if (n < 2) return;
    enum cq_coltype type = p->t->cols[key_column(p->t)].type;
    size_t cap = 4;
    while (cap < n * 2)
        cap <<= 1;
    uint32_t *slot = arena_alloc(p->a, cap * sizeof *slot);
    memset(slot, 0, cap * sizeof *slot);
    p->dup = arena_alloc(p->a, n * sizeof *p->dup);
    memset(p->dup, 0, n * sizeof *p->dup);
    for (size_t i = 0; i < n; i++) {
        struct value v = operand(&c->values[i], p->params);
        uint64_t h;
        if (v.kind == VALUE_NULL) continue; /* equal to nothing */
        if (type == CQ_COL_INT) {
            int64_t x;
            if (!as_int(v, &x)) continue; /* never matches: produce_key skips it */
            h = hash_bytes((const char *)&x, sizeof x);
        } else {
            const char *str = "";
            size_t len = 0;
            as_str(p->a, v, &str, &len);
            h = hash_bytes(str, len);
        }
        for (size_t k = h & (cap - 1);; k = (k + 1) & (cap - 1)) {
            if (!slot[k]) {
                slot[k] = (uint32_t)i + 1;
                break;
            }
            if (value_equal(type, v, operand(&c->values[slot[k] - 1], p->params))) {
                p->dup[i] = true;
                break;
            }
        }
    }
}

static bool produce_rows(struct run *p, run_step then)
{
    if (p->w.key >= 0) {
        mark_duplicates(p);
        seq_run(p, p->w.conds[p->w.key].n_values, produce_key, then);
        return true;
    }
    if ((enum table_id)(p->t - defs) == T_PMSG) {
        cq_result_error(p->r, CQ_ERR_WHERE, "HY000",
                        "Selection without transferring the requested values of the primary key "
                        "is not supported (add WHERE name = '...')");
        return false;
    }
    seq_run(p, 1, produce_all, then);
    return true;
}

/* One more row the WHERE is tried on; false (the statement failed) past [cometql]
 * max_rows_examined: rows that do not match count too, so `name IN (4,000 names) AND event IN
 * (...)` cannot walk every stored row on the loop every other client waits on (audit M5). */
static bool examine(struct run *c)
{
    int64_t max = c->env->cfg->cometql_max_rows_examined;
    if (++c->examined <= (uint64_t)max) return true;
    if (!c->failed)
        cq_result_error(c->r, 1104, "42000",
                        "The statement would examine more than %" PRId64
                        " rows ([cometql] max_rows_examined); narrow the WHERE",
                        max);
    c->failed = true;
    return false;
}

/* ---- SELECT ------------------------------------------------------------------------------- */

static int select_sink(struct run *c, const struct value *row)
{
    if (!examine(c)) return 1;
    if (!row_matches(c->t, &c->w, row, c->params)) return 0;
    if (c->skip) {
        c->skip--;
        return 0;
    }
    if (c->limited && c->take == 0) return 1;
    if ((int64_t)c->r->n_rows >= c->max_rows) {
        c->overflow = true;
        return 1;
    }
    if ((int64_t)c->r->bytes > c->env->cfg->cometql_max_result_size) {
        c->overflow_bytes = true; /* a result is built whole before it is sent: bound it */
        return 1;
    }
    struct value out[16];
    for (size_t i = 0; i < c->n_proj; i++)
        out[i] = row[c->proj[i]];
    cq_result_add_row(c->r, c->a, out);
    if (c->limited) c->take--;
    return c->limited && c->take == 0;
}

static void select_end(struct run *run)
{
    if (!run->failed && run->overflow_bytes) {
        cq_result_error(run->r, CQ_ERR_OVERFLOW, "HY000",
                        "The result is larger than %" PRId64
                        " bytes ([cometql] max_result_size); narrow the WHERE or add a LIMIT",
                        run->env->cfg->cometql_max_result_size);
    }
    if (!run->failed && run->overflow) {
        cq_result_error(run->r, CQ_ERR_OVERFLOW, "HY000",
                        "The result has more than %" PRId64
                        " rows ([cometql] max_result_rows); narrow the WHERE or add a LIMIT",
                        run->max_rows);
    }
    run_finish(run);
}

static bool check_table(const struct table_def *t, const char *op, bool allowed,
                        struct cq_result *r)
{
    if (t->unavailable) {
        cq_result_error(r, CQ_ERR_NOT_IMPLEMENTED, "42000", UNAVAILABLE, t->name);
        return false;
    }
    if (!allowed) {
        if (strcmp(op, "UPDATE") == 0)
            cq_result_error(r, CQ_ERR_READ_ONLY, "HY000", "Table `%s` cannot be updated", t->name);
        else
            cq_result_error(r, CQ_ERR_READ_ONLY, "HY000", "Table `%s` is read only", t->name);
        return false;
    }
    return true;
}

/* The tenants table is root's: a login as root with [main] password. */
static bool check_access(const struct cq_session *s, const struct table_def *t, const char *op,
                         struct cq_result *r)
{
    if ((enum table_id)(t - defs) != T_TENANTS || (s->login_dev_id == 0 && s->shared_login))
        return true;
    cq_result_error(r, CQ_ERR_TABLE_ACCESS, "42000",
                    "%s command denied to user '%s' for table '%s' (root only)", op, s->user,
                    t->name);
    return false;
}

void tables_select(const struct cq_env *env, struct cq_session *s, const struct table_def *t,
                   const struct cq_stmt *st, const struct value *params, struct arena *a,
                   struct cq_result *r)
{
    if (!check_access(s, t, "SELECT", r) || !check_table(t, "SELECT", t->readable, r)) return;
    if (st->n_order) {
        cq_result_error(r, CQ_ERR_NOT_IMPLEMENTED, "42000",
                        "ORDER BY is not supported in CometQL (rows come in the table's order)");
        return;
    }
    struct where w;
    if (!check_where(t, st, &w, r)) return;
    int *proj;
    size_t n_proj;
    struct cq_column *cols;
    if (st->star || st->n_columns == 0) {
        n_proj = t->n_cols;
        proj = arena_alloc(a, n_proj * sizeof *proj);
        for (size_t i = 0; i < n_proj; i++)
            proj[i] = (int)i;
        cols = (struct cq_column *)t->cols;
    } else {
        n_proj = st->n_columns;
        if (n_proj > 16) {
            cq_result_error(r, CQ_ERR_COLUMNS, "HY000", "Too many columns in the select list");
            return;
        }
        proj = arena_alloc(a, n_proj * sizeof *proj);
        cols = arena_alloc(a, n_proj * sizeof *cols);
        for (size_t i = 0; i < n_proj; i++) {
            proj[i] = tables_column(t, st->columns[i]);
            if (proj[i] < 0) {
                cq_result_error(r, CQ_ERR_COLUMNS, "42S22", "Unknown column '%s' in 'field list'",
                                st->columns[i]);
                return;
            }
            for (size_t j = 0; j < i; j++) {
                if (proj[j] == proj[i]) {
                    cq_result_error(r, CQ_ERR_WHERE, "HY000",
                                    "Each column in the select used only once (`%s`)",
                                    st->columns[i]);
                    return;
                }
            }
            cols[i] = t->cols[proj[i]];
        }
    }
    cq_result_rows(r, t->name, cols, n_proj);
    if (st->has_limit && st->limit_count == 0) return;
    struct run *run = run_new(env, s, t, st, params, a, r);
    run->w = w;
    run->proj = proj;
    run->n_proj = n_proj;
    run->max_rows = env->cfg->cometql_max_result_rows;
    run->limit = env->cfg->cometql_max_result_rows + 1;
    if (st->has_limit) {
        run->limited = true;
        run->skip = st->limit_offset;
        run->take = st->limit_count;
    }
    run->sink = select_sink;
    if (!produce_rows(run, select_end)) run_finish(run);
}

/* ---- INSERT ------------------------------------------------------------------------------- */

struct row_in {
    struct value v[16];
    bool has[16];
};

/* Per-table validation of one row; on success fills the typed fields. */
struct checked {
    int64_t id;     /* user id */
    const char *s1; /* hash, data, token, or pipe name */
    size_t l1;
    const char *ev; /* event name */
    size_t ev_len;
    const char *msg; /* message text */
    size_t msg_len;
    int64_t length;              /* pipes_settings length; tenants: grace (-1: the default) */
    struct video_invitation inv; /* conference */
};

static bool require(const struct table_def *t, const struct row_in *row, int col,
                    struct cq_result *r)
{
    if (!row->has[col] || row->v[col].kind == VALUE_NULL) {
        cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000", "field `%s` is required",
                        t->cols[col].name);
        return false;
    }
    return true;
}

static bool get_id(const struct table_def *t, const struct row_in *row, int col, int64_t *id,
                   struct cq_result *r)
{
    if (!require(t, row, col, r)) return false;
    if (!as_int(row->v[col], id)) {
        cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000", "The %s field must be an integer",
                        t->cols[col].name);
        return false;
    }
    if (*id <= 0 || *id > INT32_MAX) {
        cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000",
                        "The %s field must be a positive integer (1..2147483647)",
                        t->cols[col].name);
        return false;
    }
    return true;
}

static bool get_text(const struct cq_env *env, const struct table_def *t, const struct row_in *row,
                     int col, struct arena *a, const char **s, size_t *len, struct cq_result *r)
{
    if (!require(t, row, col, r)) return false;
    as_str(a, row->v[col], s, len);
    if ((int64_t)*len > env->cfg->cometql_max_message_size) {
        cq_result_error(r, CQ_ERR_OVERFLOW, "22001",
                        "Data is too long: `%s` has %zu bytes, the limit is %" PRId64
                        " ([cometql] max_message_size)",
                        t->cols[col].name, *len, env->cfg->cometql_max_message_size);
        return false;
    }
    return true;
}

static bool get_pipe(const struct table_def *t, const struct row_in *row, int col, struct arena *a,
                     const char **s, size_t *len, struct cq_result *r)
{
    if (!require(t, row, col, r)) return false;
    as_str(a, row->v[col], s, len);
    if (*len < 3) {
        cq_result_error(r, CQ_ERR_EMPTY, "HY000", "Channel name is too short (3..64 characters)");
        return false;
    }
    if (*len > 64) {
        cq_result_error(r, CQ_ERR_OVERFLOW, "22001", "Channel name is too long (3..64 characters)");
        return false;
    }
    if (!comet_name_ok(*s, *len)) {
        cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000",
                        "The channel name can contain only the characters A-Za-z0-9_-");
        return false;
    }
    return true;
}

static bool get_event(const struct table_def *t, const struct row_in *row, int col, struct arena *a,
                      const char **s, size_t *len, struct cq_result *r)
{
    *s = "";
    *len = 0;
    if (!row->has[col] || row->v[col].kind == VALUE_NULL) return true;
    as_str(a, row->v[col], s, len);
    if (*len > 64) {
        cq_result_error(r, CQ_ERR_OVERFLOW, "22001", "Channel event_name is too long (64 max)");
        return false;
    }
    if (!comet_name_ok(*s, *len)) {
        cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000",
                        "The event name can contain only the characters A-Za-z0-9_-");
        return false;
    }
    return true;
}

/* conference: (name, user_id, caller_id, message, profile, stream, node) */
static bool check_invitation(const struct cq_env *env, const struct table_def *t,
                             const struct row_in *row, struct arena *a, struct checked *c,
                             struct cq_result *r)
{
    struct video_invitation *inv = &c->inv;
    const char *s = "";
    size_t len = 0;
    if (!require(t, row, 0, r)) return false;
    as_str(a, row->v[0], &s, &len);
    if (!video_room_name_ok(s, len)) {
        cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000",
                        "The conference name must be 1..32 characters of A-Za-z0-9_-");
        return false;
    }
    inv->name = arena_strndup(a, s, len);
    if (!get_id(t, row, 1, &inv->user_id, r)) return false;
    inv->caller_id = 0;
    if (row->has[2] && row->v[2].kind != VALUE_NULL &&
        (!as_int(row->v[2], &inv->caller_id) || inv->caller_id < 0 || inv->caller_id > INT32_MAX)) {
        cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000",
                        "The caller_id field must be an integer 0..2147483647");
        return false;
    }
    if (!get_text(env, t, row, 3, a, &inv->message, &inv->message_len, r)) return false;
    inv->profile = "default";
    if (row->has[4] && row->v[4].kind != VALUE_NULL) {
        as_str(a, row->v[4], &s, &len);
        if (!video_room_name_ok(s, len)) {
            cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000",
                            "The profile must be 1..32 characters of A-Za-z0-9_- (video, audio, "
                            "default)");
            return false;
        }
        inv->profile = arena_strndup(a, s, len);
    }
    inv->stream = 0;
    if (row->has[5] && row->v[5].kind != VALUE_NULL && !as_int(row->v[5], &inv->stream)) {
        cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000", "The stream field must be an integer");
        return false;
    }
    inv->node = NULL;
    if (row->has[6] && row->v[6].kind != VALUE_NULL) {
        as_str(a, row->v[6], &s, &len);
        if (len > 255) {
            cq_result_error(r, CQ_ERR_OVERFLOW, "22001", "The node field is too long");
            return false;
        }
        inv->node = arena_strndup(a, s, len);
    }
    if (!env->video) {
        cq_result_error(r, CQ_ERR_INTERNAL, "HY000", "The Video API is not running");
        return false;
    }
    return true;
}

/* tenants: (dev_id, password, jwt_secret, grace); password and/or jwt_secret, each optional
 * (NULL: unchanged). c->s1 = password, c->msg = jwt_secret (NULL when not given). */
static bool check_tenant(const struct cq_env *env, const struct table_def *t,
                         const struct row_in *row, struct arena *a, struct checked *c,
                         struct cq_result *r)
{
    if (!get_id(t, row, 0, &c->id, r)) return false;
    if (c->id >= env->cfg->dev_index_size) {
        cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000",
                        "The dev_id field must be below %" PRId64 " ([main] dev_index_size)",
                        env->cfg->dev_index_size);
        return false;
    }
    c->s1 = c->msg = NULL;
    if (row->has[1] && row->v[1].kind != VALUE_NULL) {
        as_str(a, row->v[1], &c->s1, &c->l1);
        if (c->l1 < 8 || c->l1 > 256) {
            cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000",
                            "The password must be 8..256 bytes (%zu given)", c->l1);
            return false;
        }
    }
    if (row->has[2] && row->v[2].kind != VALUE_NULL) {
        as_str(a, row->v[2], &c->msg, &c->msg_len);
        if (c->msg_len < 16 || c->msg_len > 512) {
            cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000",
                            "The jwt_secret must be 16..512 bytes (%zu given)", c->msg_len);
            return false;
        }
    }
    if (!c->s1 && !c->msg) {
        cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000",
                        "Give the tenant a password, a jwt_secret or both");
        return false;
    }
    c->length = -1;
    if (row->has[3] && row->v[3].kind != VALUE_NULL &&
        (!as_int(row->v[3], &c->length) || c->length < 0 || c->length > 30 * 86400)) {
        cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000",
                        "The grace field must be 0..2592000 seconds (how long the replaced "
                        "credentials stay valid)");
        return false;
    }
    if (row->has[4] || row->has[5]) {
        cq_result_error(r, CQ_ERR_READ_ONLY, "HY000", "created and updated are set by the server");
        return false;
    }
    return true;
}

static bool check_row(const struct cq_env *env, const struct table_def *t, const struct row_in *row,
                      struct arena *a, struct checked *c, struct cq_result *r)
{
    memset(c, 0, sizeof *c);
    switch ((enum table_id)(t - defs)) {
    case T_AUTH:
        if (!get_id(t, row, 0, &c->id, r) || !require(t, row, 1, r)) return false;
        as_str(a, row->v[1], &c->s1, &c->l1);
        if (c->l1 > 32) {
            cq_result_error(r, CQ_ERR_OVERFLOW, "22001", "Hash string is too long (32 max)");
            return false;
        }
        if (c->l1 == 0 || !hash_ok(c->s1, c->l1)) {
            cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000",
                            "Contains an invalid characters in the string hash "
                            "(allowed: A-Za-z0-9=+/_-)");
            return false;
        }
        return true;
    case T_DATA:
        return get_id(t, row, 0, &c->id, r) && get_text(env, t, row, 1, a, &c->s1, &c->l1, r);
    case T_TOKENS:
        if (!require(t, row, 0, r)) return false;
        as_str(a, row->v[0], &c->s1, &c->l1);
        if (c->l1 > 600) {
            cq_result_error(r, CQ_ERR_OVERFLOW, "22001", "Token is too long (600 max)");
            return false;
        }
        if (c->l1 == 0 || !token_ok(c->s1, c->l1)) {
            cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000", "Error in token");
            return false;
        }
        return true;
    case T_UMSG:
        return get_id(t, row, 0, &c->id, r) && get_event(t, row, 2, a, &c->ev, &c->ev_len, r) &&
               get_text(env, t, row, 3, a, &c->msg, &c->msg_len, r);
    case T_PMSG:
        /* id, time, index and user_id are accepted and ignored, as in CppComet */
        return get_pipe(t, row, 2, a, &c->s1, &c->l1, r) &&
               get_event(t, row, 4, a, &c->ev, &c->ev_len, r) &&
               get_text(env, t, row, 5, a, &c->msg, &c->msg_len, r);
    case T_PSET:
        if (!get_pipe(t, row, 0, a, &c->s1, &c->l1, r)) return false;
        c->length = 0;
        if (row->has[1] && row->v[1].kind != VALUE_NULL) {
            if (!as_int(row->v[1], &c->length) || c->length < 0 ||
                c->length > env->cfg->store_history_max) {
                cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000",
                                "The length field must be an integer 0..%" PRId64
                                " ([store] history_max)",
                                env->cfg->store_history_max);
                return false;
            }
        }
        return true;
    case T_CONF: return check_invitation(env, t, row, a, c, r);
    case T_TENANTS: return check_tenant(env, t, row, a, c, r);
    default: return false;
    }
}

/* ---- writes ------------------------------------------------------------------------------ */

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* One row written: count it, remember the id it got. */
static void row_written(struct run *run, int64_t id)
{
    struct cq_result *r = run->r;
    r->affected++;
    if (id > 0) {
        r->insert_id = (uint64_t)id;
        run->s->last_insert_id = (uint64_t)id;
    }
    seq_next(run);
}

/* The Video API's answer to one invitation: its text is the backend's error as it stands. */
static void invited_done(void *ctx, int64_t result, const char *err)
{
    struct run *run = ctx;
    if (result < 0) {
        if (!run->failed)
            cq_result_error(run->r, CQ_ERR_INTERNAL, "HY000", "%s", err ? err : "unknown");
        run->failed = true;
        seq_next(run);
        return;
    }
    row_written(run, 0);
}

static void written_done(void *ctx, int64_t result, const char *err)
{
    struct run *run = ctx;
    if (result < 0) {
        run_fail(run, err);
        seq_next(run);
        return;
    }
    const struct checked *c = &run->rows[seq_row(run)];
    switch ((enum table_id)(run->t - defs)) {
    case T_AUTH:
    case T_DATA: row_written(run, c->id); return;
    case T_UMSG:
    case T_PMSG: row_written(run, result); return;
    default: row_written(run, 0); return;
    }
}

/* revoked_tokens: the revoked user's stored hash is gone too; disconnect them. */
static void token_user_done(void *ctx, int64_t result, const char *err)
{
    struct run *run = ctx;
    if (result < 0) {
        run_fail(run, err);
        seq_next(run);
        return;
    }
    const struct cq_env *env = run->env;
    if (env->kick_user) env->kick_user(env->kick_ctx, run->s->dev_id, run->jwt_user);
    LOG(LOG_INFO, "cometql", "msg=\"token revoked\" dev_id=%" PRId64 " user_id=%" PRId64,
        run->s->dev_id, run->jwt_user);
    row_written(run, 0);
}

static void token_put_done(void *ctx, int64_t result, const char *err)
{
    struct run *run = ctx;
    if (result < 0) {
        run_fail(run, err);
        seq_next(run);
        return;
    }
    /* A valid token of this tenant: its user loses the stored hash and is disconnected. */
    const struct checked *c = &run->rows[seq_row(run)];
    const struct cq_env *env = run->env;
    int64_t dev = run->s->dev_id;
    int64_t user = -1;
    bool valid = tenants_jwt_verify(env->tenants, env->cfg->password, dev, c->s1, c->l1, now_s(),
                                    &user) == JWT_VALID;
    if (valid && user > 0) {
        run->jwt_user = user;
        struct state_cb cb = {NULL, token_user_done, run};
        env->state->ops->auth_delete(env->state, dev, user, &cb);
        return;
    }
    row_written(run, 0);
}

/* tenants: the record is stored; the in-memory copy follows and the change is logged (never
 * a secret). */
static void tenant_put_done(void *ctx, int64_t result, const char *err)
{
    struct run *run = ctx;
    const struct checked *c = &run->rows[seq_row(run)];
    if (result >= 0) {
        tenants_put(run->env->tenants, &run->tenant);
        if (run->env->tenants_changed) run->env->tenants_changed(run->env->kick_ctx, c->id);
        LOG(LOG_WARN, "cometql",
            "msg=\"tenant credentials changed\" dev_id=%" PRId64
            " password=%s jwt_secret=%s grace_s=%" PRId64 " by=%s peer=%s",
            c->id, c->s1 ? "set" : "unchanged", c->msg ? "set" : "unchanged",
            c->length >= 0 ? c->length : run->env->cfg->tenant_grace, run->s->user, run->s->peer);
    }
    tenant_wipe(&run->tenant);
    if (result < 0) {
        run_fail(run, err);
        seq_next(run);
        return;
    }
    row_written(run, 0);
}

/* Writes validated row i; completes through seq_next. */
static void write_row(struct run *run, size_t i)
{
    const struct cq_env *env = run->env;
    struct state *st = env->state;
    const struct checked *c = &run->rows[i];
    int64_t dev = run->s->dev_id;
    struct state_cb cb = {NULL, written_done, run};
    switch ((enum table_id)(run->t - defs)) {
    case T_AUTH: st->ops->auth_put(st, dev, c->id, c->s1, c->l1, &cb); return;
    case T_DATA: st->ops->data_put(st, dev, c->id, c->s1, c->l1, &cb); return;
    case T_TOKENS:
        cb.done = token_put_done;
        {
            int64_t exp = 0; /* a JWT's own expiry bounds how long its revocation matters */
            if (!jwt_numeric_claim(c->s1, c->l1, "exp", &exp) || exp <= 0) exp = 0;
            st->ops->token_put(st, dev, c->s1, c->l1, now_s(), exp, &cb);
        }
        return;
    case T_UMSG: {
        struct state_message m = {dev,        NULL,    0,     c->id, c->ev, c->ev_len, c->msg,
                                  c->msg_len, now_s(), false, NULL,  NULL,  0};
        st->ops->user_message(st, &m, &cb);
        return;
    }
    case T_PMSG: {
        struct state_message m = {dev,        c->s1,   c->l1, 0,    c->ev, c->ev_len, c->msg,
                                  c->msg_len, now_s(), false, NULL, NULL,  0};
        st->ops->pipe_publish(st, &m, &cb);
        return;
    }
    case T_PSET: st->ops->pipe_setting_put(st, dev, c->s1, c->l1, c->length, &cb); return;
    case T_TENANTS:
        tenant_apply(&run->tenant, tenants_get(env->tenants, c->id), c->id, c->s1, c->l1, c->msg,
                     c->msg_len, c->length >= 0 ? c->length : env->cfg->tenant_grace, now_s());
        cb.done = tenant_put_done;
        st->ops->tenant_put(st, &run->tenant, &cb);
        return;
    case T_CONF:
        cb.done = invited_done;
        video_invite(env->video, dev, &c->inv, &cb);
        return;
    default: row_written(run, 0); return;
    }
}

/* The end of an INSERT or UPDATE: its reply waits for the commit when the state says so. */
static void write_end(struct run *run)
{
    run->r->wrote = run->r->wrote || state_commit_pending(run->env->state);
    if (run->st->kind == CQ_STMT_UPDATE) run->r->insert_id = 0;
    run_finish(run);
}

/* Rows that are one state call each go out together; the others (revoked tokens, tenants,
 * invitations: several steps per row) one after another. */
static void write_rows(struct run *run)
{
    switch ((enum table_id)(run->t - defs)) {
    case T_AUTH:
    case T_DATA:
    case T_UMSG:
    case T_PMSG:
    case T_PSET: seq_run_pipelined(run, run->n_rows, write_row, write_end); return;
    default: seq_run(run, run->n_rows, write_row, write_end); return;
    }
}

void tables_insert(const struct cq_env *env, struct cq_session *s, const struct table_def *t,
                   const struct cq_stmt *st, const struct value *params, struct arena *a,
                   struct cq_result *r)
{
    if (!check_access(s, t, "INSERT", r) || !check_table(t, "INSERT", t->insertable, r)) return;
    int map[16];
    size_t n_map;
    if (st->n_columns) {
        if (st->n_columns > N(map)) {
            cq_result_error(r, CQ_ERR_COLUMNS, "HY000", "Error in columns list (too many)");
            return;
        }
        n_map = st->n_columns;
        for (size_t i = 0; i < n_map; i++) {
            map[i] = tables_column(t, st->columns[i]);
            if (map[i] < 0) {
                cq_result_error(r, CQ_ERR_COLUMNS, "42S22", "Unknown column '%s' in 'field list'",
                                st->columns[i]);
                return;
            }
            for (size_t j = 0; j < i; j++) {
                if (map[j] == map[i]) {
                    cq_result_error(r, CQ_ERR_WHERE, "HY000",
                                    "Each column in the insert used only once (`%s`)",
                                    st->columns[i]);
                    return;
                }
            }
        }
    } else {
        n_map = t->n_cols;
        for (size_t i = 0; i < n_map; i++)
            map[i] = (int)i;
    }
    if (st->n_row_values != n_map) {
        cq_result_error(r, CQ_ERR_COLUMNS, "21S01",
                        "Column count doesn't match value count: `%s` has %zu columns, %zu "
                        "values given",
                        t->name, n_map, st->n_row_values);
        return;
    }
    struct checked *rows = arena_alloc(a, st->n_rows * sizeof *rows);
    for (size_t i = 0; i < st->n_rows; i++) {
        struct row_in in;
        memset(&in, 0, sizeof in);
        for (size_t k = 0; k < n_map; k++) {
            in.v[map[k]] = operand(&st->rows[i][k], params);
            in.has[map[k]] = true;
        }
        if (!check_row(env, t, &in, a, &rows[i], r)) {
            if (st->n_rows > 1) {
                size_t l = strlen(r->err_msg);
                snprintf(r->err_msg + l, sizeof r->err_msg - l, " at row %zu", i + 1);
            }
            return;
        }
    }
    r->kind = CQ_RES_OK;
    struct run *run = run_new(env, s, t, st, params, a, r);
    run->rows = rows;
    run->n_rows = st->n_rows;
    write_rows(run);
}

/* ---- UPDATE and DELETE --------------------------------------------------------------------- */

static int collect_sink(struct run *c, const struct value *row)
{
    if (!examine(c)) return 1;
    if (!row_matches(c->t, &c->w, row, c->params)) return 0;
    cq_result_add_row(&c->found, c->a, row);
    if (c->limited && --c->take == 0) return 1;
    return 0;
}

/* Collects the rows a WHERE selects into run->found (key condition required), then `then`.
 * Returns false with the result filled when the statement cannot run. */
static bool collect(struct run *run, const char *verb, run_step then)
{
    const struct table_def *t = run->t;
    const struct cq_stmt *st = run->st;
    if (run->w.key < 0) {
        cq_result_error(run->r, CQ_ERR_WHERE, "HY000",
                        "%s without transferring the values of the key column `%s` is not "
                        "supported (add WHERE %s = ...)",
                        verb, t->cols[key_column(t)].name, t->cols[key_column(t)].name);
        return false;
    }
    cq_result_rows(&run->found, t->name, t->cols, t->n_cols);
    run->limited = st->has_limit;
    run->take = st->limit_count;
    run->limit = run->env->cfg->cometql_max_result_rows;
    run->sink = collect_sink;
    if (st->has_limit && st->limit_count == 0) {
        then(run);
        return true;
    }
    return produce_rows(run, then);
}

/* UPDATE conference_members: each assignment becomes a command to the member's node (mute,
 * vmute, deaf per member; layout once per room). */
static void update_members(struct run *run)
{
    const struct table_def *t = run->t;
    const struct cq_stmt *st = run->st;
    struct cq_result *r = run->r;
    if (run->failed) {
        run_finish(run);
        return;
    }
    uint64_t changed = 0;
    const char *last_room = NULL;
    size_t last_len = 0;
    for (size_t i = 0; i < run->found.n_rows; i++) {
        const struct value *row = &run->found.cells[i * t->n_cols];
        for (size_t k = 0; k < st->n_assigns; k++) {
            const char *col = t->cols[run->assign_cols[k]].name;
            bool layout = strcmp(col, "layout") == 0;
            if (layout && last_room && last_len == row[0].len &&
                memcmp(last_room, row[0].s, last_len) == 0)
                continue; /* once per room */
            char err[256];
            if (video_member_set(run->env->video, run->s->dev_id, row[0].s, row[0].len, row[4].i,
                                 col, operand(&st->assigns[k].value, run->params), err,
                                 sizeof err) != 0) {
                cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000", "%s", err);
                run_finish(run);
                return;
            }
            if (layout) {
                last_room = row[0].s;
                last_len = row[0].len;
            }
        }
        changed++;
    }
    r->kind = CQ_RES_OK;
    r->affected = changed;
    run_finish(run);
}

/* UPDATE of a stored table: each collected row, with the assignments applied, is validated as
 * an INSERT would be, then written. */
static void update_rows(struct run *run)
{
    const struct table_def *t = run->t;
    const struct cq_stmt *st = run->st;
    if (run->failed) {
        run_finish(run);
        return;
    }
    size_t n = run->found.n_rows;
    run->rows = arena_alloc(run->a, (n + 1) * sizeof *run->rows);
    for (size_t i = 0; i < n; i++) {
        struct row_in in;
        memset(&in, 0, sizeof in);
        for (size_t k = 0; k < t->n_cols; k++) {
            in.v[k] = run->found.cells[i * t->n_cols + k];
            in.has[k] = true;
        }
        for (size_t k = 0; k < st->n_assigns; k++)
            in.v[run->assign_cols[k]] = operand(&st->assigns[k].value, run->params);
        if (!check_row(run->env, t, &in, run->a, &run->rows[i], run->r)) {
            run_finish(run);
            return;
        }
    }
    run->n_rows = n;
    run->r->kind = CQ_RES_OK;
    run->stopped = false; /* the collection's LIMIT is spent; the writes all run */
    write_rows(run);
}

void tables_update(const struct cq_env *env, struct cq_session *s, const struct table_def *t,
                   const struct cq_stmt *st, const struct value *params, struct arena *a,
                   struct cq_result *r)
{
    if (!check_access(s, t, "UPDATE", r) || !check_table(t, "UPDATE", t->updatable, r)) return;
    int *cols = arena_alloc(a, 16 * sizeof *cols);
    if (st->n_assigns > 16) {
        cq_result_error(r, CQ_ERR_COLUMNS, "HY000", "Too many assignments");
        return;
    }
    for (size_t i = 0; i < st->n_assigns; i++) {
        cols[i] = tables_column(t, st->assigns[i].column);
        if (cols[i] < 0) {
            cq_result_error(r, CQ_ERR_COLUMNS, "42S22", "Unknown column '%s' in 'field list'",
                            st->assigns[i].column);
            return;
        }
        if ((enum table_id)(t - defs) == T_CONFM && strcmp(st->assigns[i].column, "mute") &&
            strcmp(st->assigns[i].column, "vmute") && strcmp(st->assigns[i].column, "deaf") &&
            strcmp(st->assigns[i].column, "layout")) {
            cq_result_error(r, CQ_ERR_READ_ONLY, "HY000",
                            "Column `%s` of conference_members cannot be updated (mute, vmute, "
                            "deaf and layout can)",
                            st->assigns[i].column);
            return;
        }
        if (t->cols[cols[i]].primary) {
            cq_result_error(r, CQ_ERR_INVALID_DATA, "HY000",
                            "The key column `%s` cannot be updated; DELETE and INSERT instead",
                            st->assigns[i].column);
            return;
        }
    }
    struct where w;
    if (!check_where(t, st, &w, r)) return;
    struct run *run = run_new(env, s, t, st, params, a, r);
    run->w = w;
    run->assign_cols = cols;
    bool members = (enum table_id)(t - defs) == T_CONFM;
    if (!collect(run, "Updating", members ? update_members : update_rows)) run_finish(run);
}

static void removed_done(void *ctx, int64_t result, const char *err)
{
    struct run *run = ctx;
    if (result > 0) run->removed += (uint64_t)result;
    seq_done(ctx, result, err);
}

static void tenant_removed_done(void *ctx, int64_t result, const char *err)
{
    struct run *run = ctx;
    if (result > 0) {
        tenants_remove(run->env->tenants, run->key_id);
        if (run->env->tenants_changed) run->env->tenants_changed(run->env->kick_ctx, run->key_id);
        LOG(LOG_WARN, "cometql",
            "msg=\"tenant credentials removed\" dev_id=%" PRId64 " by=%s peer=%s", run->key_id,
            run->s->user, run->s->peer);
    }
    removed_done(ctx, result, err);
}

/* users_auth: the user's browser connections close with the hash. */
static void auth_removed_done(void *ctx, int64_t result, const char *err)
{
    struct run *run = ctx;
    if (result >= 0 && run->env->kick_user)
        run->env->kick_user(run->env->kick_ctx, run->s->dev_id, run->key_id);
    removed_done(ctx, result, err);
}

/* A removal that does not go through the state (video): counted at once. */
/* Deletes everything stored under one key value. */
static void delete_key(struct run *run, struct value key)
{
    const struct cq_env *env = run->env;
    struct state *st = env->state;
    int64_t dev = run->s->dev_id, id = 0;
    const char *str = "";
    size_t len = 0;
    struct state_cb cb = {NULL, removed_done, run};
    switch ((enum table_id)(run->t - defs)) {
    case T_AUTH:
        if (!as_int(key, &id)) break;
        run->key_id = id;
        cb.done = auth_removed_done;
        st->ops->auth_delete(st, dev, id, &cb);
        return;
    case T_DATA:
        if (!as_int(key, &id)) break;
        st->ops->data_delete(st, dev, id, &cb);
        return;
    case T_UMSG:
        if (!as_int(key, &id)) break;
        st->ops->queue_delete_user(st, dev, id, &cb);
        return;
    case T_TOKENS:
        if (key.kind == VALUE_NULL) break;
        as_str(run->a, key, &str, &len);
        st->ops->token_delete(st, dev, str, len, &cb);
        return;
    case T_PMSG:
        if (key.kind == VALUE_NULL) break;
        as_str(run->a, key, &str, &len);
        st->ops->history_delete_pipe(st, dev, str, len, &cb);
        return;
    case T_CONF:
        if (key.kind == VALUE_NULL || !env->video) break;
        as_str(run->a, key, &str, &len);
        video_remove(env->video, dev, str, len, 0, &cb);
        return;
    case T_PSET:
        if (key.kind == VALUE_NULL) break;
        as_str(run->a, key, &str, &len);
        st->ops->pipe_setting_delete(st, dev, str, len, &cb);
        return;
    case T_TENANTS:
        if (!as_int(key, &id)) break;
        run->key_id = id;
        cb.done = tenant_removed_done;
        st->ops->tenant_delete(st, id, &cb);
        return;
    default: break;
    }
    seq_next(run);
}

static void delete_key_i(struct run *run, size_t i)
{
    delete_key(run, operand(&run->w.conds[run->w.key].values[i], run->params));
}

/* pipes_messages by message id alone: CppComet's DELETE ... WHERE id IN (...) */
static void delete_message_i(struct run *run, size_t i)
{
    int64_t id;
    if (!as_int(operand(&run->w.conds[0].values[i], run->params), &id)) {
        seq_next(run);
        return;
    }
    struct state_cb cb = {NULL, removed_done, run};
    run->env->state->ops->history_delete_id(run->env->state, run->s->dev_id, id, &cb);
}

/* Deletes collected row i by its identity. */
static void delete_row_i(struct run *run, size_t i)
{
    const struct cq_env *env = run->env;
    struct state *st = env->state;
    const struct value *row = &run->found.cells[i * run->t->n_cols];
    struct state_cb cb = {NULL, removed_done, run};
    switch ((enum table_id)(run->t - defs)) {
    case T_UMSG: st->ops->queue_delete_id(st, run->s->dev_id, row[1].i, &cb); return;
    case T_PMSG: st->ops->history_delete_id(st, run->s->dev_id, row[0].i, &cb); return;
    case T_CONF:
        if (!env->video) break;
        video_remove(env->video, run->s->dev_id, row[0].s, row[0].len, row[1].i, &cb);
        return;
    default: delete_key(run, row[key_column(run->t)]); return;
    }
}

/* DELETE FROM conference WHERE name IN (..) AND user_id IN (..): pair i of names x users. */
static void delete_pair_i(struct run *run, size_t i)
{
    const struct cq_cond *names = &run->w.conds[run->w.key], *users = &run->w.conds[1 - run->w.key];
    struct value nv = operand(&names->values[i / users->n_values], run->params);
    int64_t uid;
    if (nv.kind == VALUE_NULL || !run->env->video ||
        !as_int(operand(&users->values[i % users->n_values], run->params), &uid) || uid <= 0) {
        seq_next(run);
        return;
    }
    const char *str = "";
    size_t len = 0;
    as_str(run->a, nv, &str, &len);
    struct state_cb cb = {NULL, removed_done, run};
    video_remove(run->env->video, run->s->dev_id, str, len, uid, &cb);
}

static void delete_end(struct run *run)
{
    if (!run->failed) {
        run->r->kind = CQ_RES_OK;
        run->r->affected = run->removed;
    }
    run->r->wrote = state_commit_pending(run->env->state);
    run_finish(run);
}

static void delete_collected(struct run *run)
{
    if (run->failed) {
        run_finish(run);
        return;
    }
    run->stopped = false; /* the collection's LIMIT is spent; the deletes all run */
    seq_run(run, run->found.n_rows, delete_row_i, delete_end);
}

void tables_delete(const struct cq_env *env, struct cq_session *s, const struct table_def *t,
                   const struct cq_stmt *st, const struct value *params, struct arena *a,
                   struct cq_result *r)
{
    if (!check_access(s, t, "DELETE", r) || !check_table(t, "DELETE", t->deletable, r)) return;
    if (st->n_order) {
        cq_result_error(r, CQ_ERR_NOT_IMPLEMENTED, "42000", "ORDER BY is not supported in CometQL");
        return;
    }
    struct where w;
    if (!check_where(t, st, &w, r)) return;
    enum table_id tid = (enum table_id)(t - defs);
    struct run *run = run_new(env, s, t, st, params, a, r);
    run->w = w;
    if (tid == T_PMSG && w.key < 0 && w.n == 1 && strcmp(w.conds[0].column, "id") == 0 &&
        !st->has_limit) {
        seq_run(run, w.conds[0].n_values, delete_message_i, delete_end);
    } else if (tid == T_CONF && w.key >= 0 && w.n == 2 && !st->has_limit &&
               strcmp(w.conds[1 - w.key].column, "user_id") == 0 && env->video) {
        /* by room and user: kick the user's members even without a stored invitation */
        const struct cq_cond *names = &w.conds[w.key], *users = &w.conds[1 - w.key];
        seq_run(run, names->n_values * users->n_values, delete_pair_i, delete_end);
    } else if (w.key >= 0 && w.n == 1 && !st->has_limit) {
        seq_run(run, w.conds[w.key].n_values, delete_key_i, delete_end);
    } else if (!collect(run, "Deleting", delete_collected)) {
        run_finish(run);
    }
}
