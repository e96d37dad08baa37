/* cometql_exec: statement dispatch and the statements about the server rather than a table:
 * SHOW ..., SET, USE, transactions, and SELECT without FROM (system variables and functions that
 * MySQL clients probe on connect). See cometql_exec.h. */
#include "cometql/cometql_exec.h"
#include "core/alloc.h"
#include "cometql/tables.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- results ------------------------------------------------------------------------------ */

void cq_result_init(struct cq_result *r)
{
    memset(r, 0, sizeof *r);
    r->kind = CQ_RES_OK;
}

void cq_result_free(struct cq_result *r)
{
    xfree(r->cells);
    cq_result_init(r);
}

void cq_result_error(struct cq_result *r, int code, const char *sqlstate, const char *fmt, ...)
{
    r->kind = CQ_RES_ERR;
    r->err_code = code;
    r->sqlstate = sqlstate;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
    va_end(ap);
}

void cq_result_rows(struct cq_result *r, const char *table, const struct cq_column *cols, size_t n)
{
    r->kind = CQ_RES_ROWS;
    r->table = table;
    r->cols = cols;
    r->n_cols = n;
    r->n_rows = 0;
}

void cq_result_add_row(struct cq_result *r, struct arena *a, const struct value *vals)
{
    if (r->n_rows == r->cap_rows) {
        r->cap_rows = r->cap_rows ? r->cap_rows * 2 : 16;
        r->cells = xrealloc(r->cells, r->cap_rows * r->n_cols * sizeof *r->cells + 1);
    }
    struct value *row = &r->cells[r->n_rows * r->n_cols];
    for (size_t i = 0; i < r->n_cols; i++) {
        row[i] = vals[i];
        if (vals[i].kind == VALUE_STR) {
            row[i].s = arena_strndup(a, vals[i].s, vals[i].len);
            r->bytes += vals[i].len;
        }
    }
    r->n_rows++;
}

/* ---- small row helpers ---------------------------------------------------------------------- */

static struct value vs(const char *s)
{
    return s ? value_str(s, strlen(s)) : value_null();
}

static struct value vfmt(struct arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static struct value vfmt(struct arena *a, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    return value_str(arena_strndup(a, buf, (size_t)n), (size_t)n);
}

static bool like_ok(const char *pattern, const char *s)
{
    return !pattern || cq_like_match(pattern, s, strlen(s));
}

/* ---- system variables ---------------------------------------------------------------------- */

struct sysvar {
    const char *name;
    enum cq_coltype type;
    int64_t i;
    const char *s;
};

/* The variables SHOW VARIABLES lists and SELECT @@name reads. */
static size_t sysvars(const struct cq_env *env, const struct cq_session *s, struct sysvar *out,
                      size_t cap)
{
    const struct config *c = env->cfg;
    struct sysvar v[] = {
        {"auto_increment_increment", CQ_COL_INT, 1, NULL},
        {"auto_increment_offset", CQ_COL_INT, 1, NULL},
        {"autocommit", CQ_COL_INT, 1, NULL},
        {"character_set_client", CQ_COL_STR, 0, "utf8mb4"},
        {"character_set_connection", CQ_COL_STR, 0, "utf8mb4"},
        {"character_set_database", CQ_COL_STR, 0, "utf8mb4"},
        {"character_set_results", CQ_COL_STR, 0, "utf8mb4"},
        {"character_set_server", CQ_COL_STR, 0, "utf8mb4"},
        {"character_set_system", CQ_COL_STR, 0, "utf8"},
        {"collation_connection", CQ_COL_STR, 0, "utf8mb4_general_ci"},
        {"collation_database", CQ_COL_STR, 0, "utf8mb4_general_ci"},
        {"collation_server", CQ_COL_STR, 0, "utf8mb4_general_ci"},
        {"connect_timeout", CQ_COL_INT, c->cometql_connect_timeout, NULL},
        {"have_ssl", CQ_COL_STR, 0, *c->cometql_ssl_cert ? "YES" : "DISABLED"},
        {"hostname", CQ_COL_STR, 0, c->node_name},
        {"init_connect", CQ_COL_STR, 0, ""},
        {"interactive_timeout", CQ_COL_INT, c->cometql_idle_timeout, NULL},
        {"license", CQ_COL_STR, 0, "AGPL-3.0"},
        {"lower_case_table_names", CQ_COL_INT, 1, NULL},
        {"max_allowed_packet", CQ_COL_INT, c->cometql_max_packet, NULL},
        {"max_connections", CQ_COL_INT, c->cometql_max_connections, NULL},
        {"net_buffer_length", CQ_COL_INT, 16384, NULL},
        {"net_write_timeout", CQ_COL_INT, 60, NULL},
        {"performance_schema", CQ_COL_INT, 0, NULL},
        {"port", CQ_COL_INT, c->cometql_port, NULL},
        {"protocol_version", CQ_COL_INT, 10, NULL},
        {"query_cache_size", CQ_COL_INT, 0, NULL},
        {"query_cache_type", CQ_COL_STR, 0, "OFF"},
        {"sql_mode", CQ_COL_STR, 0, "STRICT_TRANS_TABLES"},
        {"system_time_zone", CQ_COL_STR, 0, "UTC"},
        {"time_zone", CQ_COL_STR, 0, "SYSTEM"},
        {"transaction_isolation", CQ_COL_STR, 0, "READ-COMMITTED"},
        {"tx_isolation", CQ_COL_STR, 0, "READ-COMMITTED"},
        {"transaction_read_only", CQ_COL_INT, 0, NULL},
        {"tx_read_only", CQ_COL_INT, 0, NULL},
        {"version", CQ_COL_STR, 0, CCOMET_SERVER_VERSION},
        {"version_comment", CQ_COL_STR, 0, CCOMET_VERSION_COMMENT},
        {"version_compile_machine", CQ_COL_STR, 0, "x86_64"},
        {"version_compile_os", CQ_COL_STR, 0, "Linux"},
        {"wait_timeout", CQ_COL_INT, c->cometql_idle_timeout, NULL},
        {"warning_count", CQ_COL_INT, 0, NULL},
        {"error_count", CQ_COL_INT, 0, NULL},
        {"identity", CQ_COL_INT, (int64_t)s->last_insert_id, NULL},
        {"last_insert_id", CQ_COL_INT, (int64_t)s->last_insert_id, NULL},
    };
    size_t n = sizeof v / sizeof v[0];
    if (n > cap) n = cap;
    memcpy(out, v, n * sizeof *out);
    return n;
}

static const struct cq_column col_varval[] = {{"Variable_name", CQ_COL_STR, false},
                                              {"Value", CQ_COL_STR, false}};

static void show_variables(const struct cq_env *env, struct cq_session *s, const struct cq_stmt *st,
                           struct arena *a, struct cq_result *r)
{
    struct sysvar v[64];
    size_t n = sysvars(env, s, v, 64);
    cq_result_rows(r, "", col_varval, 2);
    for (size_t i = 0; i < n; i++) {
        if (!like_ok(st->like, v[i].name)) continue;
        struct value row[2] = {vs(v[i].name),
                               v[i].type == CQ_COL_INT ? vfmt(a, "%" PRId64, v[i].i) : vs(v[i].s)};
        cq_result_add_row(r, a, row);
    }
}

static void show_status(const struct cq_env *env, struct cq_session *s, const struct cq_stmt *st,
                        struct arena *a, struct cq_result *r)
{
    time_t up = time(NULL) - env->started;
    cq_result_rows(r, "", col_varval, 2);
    struct {
        const char *name;
        struct value v;
    } rows[] = {
        /* CppComet's fields */
        {"flag", vs(st->scope == 2 ? "global" : "session")},
        {"id", vfmt(a, "%" PRId64, s->dev_id)},
        {"uptime", vfmt(a, "%ld", (long)up)},
        {"messages", vfmt(a, "%" PRIu64, env->hub->published)},
        {"messages_delivered", vfmt(a, "%" PRIu64, env->hub->delivered)},
        {"backend_online", vfmt(a, "%" PRIu64, env->connections_now ? *env->connections_now : 0)},
        /* MySQL's names */
        {"Uptime", vfmt(a, "%ld", (long)up)},
        {"Threads_connected",
         vfmt(a, "%" PRIu64, env->connections_now ? *env->connections_now : 0)},
        {"Questions", vfmt(a, "%" PRIu64, env->queries_total ? *env->queries_total : 0)},
        {"Ssl_cipher", vs(s->tls_cipher ? s->tls_cipher : "")},
        {"Ssl_version", vs(s->tls_version ? s->tls_version : "")},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (!like_ok(st->like, rows[i].name)) continue;
        struct value row[2] = {vs(rows[i].name), rows[i].v};
        cq_result_add_row(r, a, row);
    }
}

static const struct cq_column col_tables[] = {{"Tables_in_" COMETQL_DATABASE, CQ_COL_STR, false},
                                              {"Table_type", CQ_COL_STR, false}};

static void show_tables(const struct cq_session *s, const struct cq_stmt *st, struct arena *a,
                        struct cq_result *r)
{
    cq_result_rows(r, "", col_tables, st->full ? 2 : 1);
    for (size_t i = 0; i < tables_count(); i++) {
        const struct table_def *t = tables_at(i);
        if (!like_ok(st->like, t->name) || !tables_visible(t, s)) continue;
        struct value row[2] = {vs(t->name), vs("BASE TABLE")};
        cq_result_add_row(r, a, row);
    }
}

static const struct cq_column col_columns[] = {
    {"Field", CQ_COL_STR, false}, {"Type", CQ_COL_STR, false},    {"Null", CQ_COL_STR, false},
    {"Key", CQ_COL_STR, false},   {"Default", CQ_COL_STR, false}, {"Extra", CQ_COL_STR, false}};

static const struct table_def *need_table(const char *name, struct cq_result *r)
{
    const struct table_def *t = name ? tables_find(name) : NULL;
    if (!t)
        cq_result_error(r, CQ_ERR_NOT_EXIST, "42S02", "Table '%s' doesn't exist", name ? name : "");
    return t;
}

static void show_columns(const struct cq_stmt *st, struct arena *a, struct cq_result *r)
{
    const struct table_def *t = need_table(st->table, r);
    if (!t) return;
    cq_result_rows(r, "", col_columns, 6);
    for (size_t i = 0; i < t->n_cols; i++) {
        if (!like_ok(st->like, t->cols[i].name)) continue;
        struct value row[6] = {vs(t->cols[i].name),
                               vs(t->sql_types[i]),
                               vs(t->cols[i].primary ? "NO" : "YES"),
                               vs(t->cols[i].primary ? "PRI" : ""),
                               value_null(),
                               vs("")};
        cq_result_add_row(r, a, row);
    }
}

static const struct cq_column col_create[] = {{"Table", CQ_COL_STR, false},
                                              {"Create Table", CQ_COL_STR, false}};

static void show_create_table(const struct cq_stmt *st, struct arena *a, struct cq_result *r)
{
    const struct table_def *t = need_table(st->table, r);
    if (!t) return;
    char buf[2048];
    size_t o = (size_t)snprintf(buf, sizeof buf, "CREATE TABLE `%s` (\n", t->name);
    for (size_t i = 0; i < t->n_cols && o < sizeof buf; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "  `%s` %s%s,\n", t->cols[i].name,
                              t->sql_types[i], t->cols[i].primary ? " NOT NULL" : "");
    for (size_t i = 0; i < t->n_cols && o < sizeof buf; i++)
        if (t->cols[i].primary)
            o += (size_t)snprintf(buf + o, sizeof buf - o, "  PRIMARY KEY (`%s`)\n",
                                  t->cols[i].name);
    if (o < sizeof buf)
        o += (size_t)snprintf(buf + o, sizeof buf - o, ") ENGINE=CometQL COMMENT='%s'", t->comment);
    if (o >= sizeof buf) o = sizeof buf - 1;
    cq_result_rows(r, "", col_create, 2);
    struct value row[2] = {vs(t->name), value_str(buf, o)};
    cq_result_add_row(r, a, row);
}

static const char *const tstatus_names[] = {
    "Name",           "Engine",         "Version",         "Row_format",   "Rows",
    "Avg_row_length", "Data_length",    "Max_data_length", "Index_length", "Data_free",
    "Auto_increment", "Create_time",    "Update_time",     "Check_time",   "Collation",
    "Checksum",       "Create_options", "Comment"};
static struct cq_column col_tstatus[18];

static void show_table_status(const struct cq_session *s, const struct cq_stmt *st, struct arena *a,
                              struct cq_result *r)
{
    for (size_t i = 0; i < 18; i++) {
        col_tstatus[i].name = tstatus_names[i];
        col_tstatus[i].type = (i == 2 || (i >= 4 && i <= 10)) ? CQ_COL_INT : CQ_COL_STR;
        col_tstatus[i].primary = false;
    }
    cq_result_rows(r, "", col_tstatus, 18);
    for (size_t i = 0; i < tables_count(); i++) {
        const struct table_def *t = tables_at(i);
        if (!like_ok(st->like, t->name) || !tables_visible(t, s)) continue;
        struct value row[18];
        for (size_t k = 0; k < 18; k++)
            row[k] = value_null();
        row[0] = vs(t->name);
        row[1] = vs("CometQL");
        row[2] = value_int(10);
        row[3] = vs("Dynamic");
        row[14] = vs("utf8mb4_general_ci");
        row[16] = vs("");
        row[17] = vs(t->comment);
        cq_result_add_row(r, a, row);
    }
}

static const struct cq_column col_proc[] = {
    {"Id", CQ_COL_INT, false},    {"User", CQ_COL_STR, false},    {"Host", CQ_COL_STR, false},
    {"db", CQ_COL_STR, false},    {"Command", CQ_COL_STR, false}, {"Time", CQ_COL_INT, false},
    {"State", CQ_COL_STR, false}, {"Info", CQ_COL_STR, false}};

static void show_processlist(struct cq_session *s, struct arena *a, struct cq_result *r)
{
    cq_result_rows(r, "", col_proc, 8);
    struct value row[8] = {value_int((int64_t)s->connection_id),
                           vs(s->user),
                           vs(s->peer),
                           s->db_selected ? vs(COMETQL_DATABASE) : value_null(),
                           vs("Query"),
                           value_int(0),
                           vs(""),
                           vs("SHOW PROCESSLIST")};
    cq_result_add_row(r, a, row);
}

static const struct cq_column col_warn[] = {
    {"Level", CQ_COL_STR, false}, {"Code", CQ_COL_INT, false}, {"Message", CQ_COL_STR, false}};
static const struct cq_column col_coll[] = {
    {"Collation", CQ_COL_STR, false}, {"Charset", CQ_COL_STR, false},
    {"Id", CQ_COL_INT, false},        {"Default", CQ_COL_STR, false},
    {"Compiled", CQ_COL_STR, false},  {"Sortlen", CQ_COL_INT, false}};
static const struct cq_column col_charset[] = {{"Charset", CQ_COL_STR, false},
                                               {"Description", CQ_COL_STR, false},
                                               {"Default collation", CQ_COL_STR, false},
                                               {"Maxlen", CQ_COL_INT, false}};
static const struct cq_column col_engines[] = {
    {"Engine", CQ_COL_STR, false},  {"Support", CQ_COL_STR, false},
    {"Comment", CQ_COL_STR, false}, {"Transactions", CQ_COL_STR, false},
    {"XA", CQ_COL_STR, false},      {"Savepoints", CQ_COL_STR, false}};
static const struct cq_column col_db[] = {{"Database", CQ_COL_STR, false}};

static void show_collation(const struct cq_stmt *st, struct arena *a, struct cq_result *r)
{
    if (st->table && strcmp(st->table, "charset") == 0) {
        cq_result_rows(r, "", col_charset, 4);
        static const char *cs[][3] = {{"utf8mb4", "UTF-8 Unicode", "utf8mb4_general_ci"},
                                      {"utf8", "UTF-8 Unicode", "utf8_general_ci"},
                                      {"binary", "Binary pseudo charset", "binary"}};
        static const int maxlen[] = {4, 3, 1};
        for (size_t i = 0; i < 3; i++) {
            if (!like_ok(st->like, cs[i][0])) continue;
            struct value row[4] = {vs(cs[i][0]), vs(cs[i][1]), vs(cs[i][2]), value_int(maxlen[i])};
            cq_result_add_row(r, a, row);
        }
        return;
    }
    cq_result_rows(r, "", col_coll, 6);
    static const char *co[][2] = {
        {"utf8mb4_general_ci", "utf8mb4"}, {"utf8_general_ci", "utf8"}, {"binary", "binary"}};
    static const int ids[] = {45, 33, 63};
    for (size_t i = 0; i < 3; i++) {
        if (!like_ok(st->like, co[i][0])) continue;
        struct value row[6] = {vs(co[i][0]), vs(co[i][1]), value_int(ids[i]),
                               vs("Yes"),    vs("Yes"),    value_int(1)};
        cq_result_add_row(r, a, row);
    }
}

/* ---- SELECT without FROM -------------------------------------------------------------------- */

static bool eval_expr(const struct cq_env *env, struct cq_session *s, const struct cq_expr *e,
                      const struct value *params, struct arena *a, struct value *out,
                      enum cq_coltype *type, struct cq_result *r)
{
    switch (e->kind) {
    case CQ_EXPR_LITERAL:
        *out = e->literal.param < 0 ? e->literal.v
               : params             ? params[e->literal.param]
                                    : value_null();
        *type = out->kind == VALUE_INT ? CQ_COL_INT : CQ_COL_STR;
        return true;
    case CQ_EXPR_SYSVAR: {
        struct sysvar v[64];
        size_t n = sysvars(env, s, v, 64);
        *out = value_null();
        *type = CQ_COL_STR;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(v[i].name, e->name) == 0) {
                *type = v[i].type;
                *out = v[i].type == CQ_COL_INT ? value_int(v[i].i) : vs(v[i].s);
                break;
            }
        }
        /* unknown variables read as NULL, so that no client probe fails the connection */
        return true;
    }
    case CQ_EXPR_FUNC: {
        const char *f = e->name;
        *type = CQ_COL_STR;
        if (strcmp(f, "database") == 0 || strcmp(f, "schema") == 0) {
            *out = s->db_selected ? vs(COMETQL_DATABASE) : value_null();
        } else if (strcmp(f, "version") == 0) {
            *out = vs(CCOMET_SERVER_VERSION);
        } else if (strcmp(f, "user") == 0 || strcmp(f, "current_user") == 0 ||
                   strcmp(f, "session_user") == 0 || strcmp(f, "system_user") == 0) {
            *out = vfmt(a, "%s@%s", s->user, s->peer);
        } else if (strcmp(f, "connection_id") == 0) {
            *type = CQ_COL_INT;
            *out = value_int((int64_t)s->connection_id);
        } else if (strcmp(f, "last_insert_id") == 0) {
            *type = CQ_COL_INT;
            *out = value_int((int64_t)s->last_insert_id);
        } else if (strcmp(f, "now") == 0 || strcmp(f, "current_timestamp") == 0 ||
                   strcmp(f, "sysdate") == 0 || strcmp(f, "utc_timestamp") == 0) {
            time_t t = time(NULL);
            struct tm tm;
            gmtime_r(&t, &tm);
            *out = vfmt(a, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        } else if (strcmp(f, "unix_timestamp") == 0) {
            *type = CQ_COL_INT;
            *out = value_int((int64_t)time(NULL));
        } else {
            cq_result_error(r, 1305, "42000", "FUNCTION %s does not exist", f);
            return false;
        }
        return true;
    }
    }
    return false;
}

static void select_expr(const struct cq_env *env, struct cq_session *s, const struct cq_stmt *st,
                        const struct value *params, struct arena *a, struct cq_result *r)
{
    size_t n = st->n_exprs;
    struct cq_column *cols = arena_alloc(a, (n + 1) * sizeof *cols);
    struct value *row = arena_alloc(a, (n + 1) * sizeof *row);
    for (size_t i = 0; i < n; i++) {
        enum cq_coltype type;
        if (!eval_expr(env, s, &st->exprs[i], params, a, &row[i], &type, r)) return;
        cols[i].name = st->exprs[i].alias ? st->exprs[i].alias : st->exprs[i].text;
        cols[i].type = type;
        cols[i].primary = false;
    }
    cq_result_rows(r, "", cols, n);
    if (!st->has_limit || (st->limit_offset == 0 && st->limit_count > 0))
        cq_result_add_row(r, a, row);
}

/* ---- USE ------------------------------------------------------------------------------------ */

bool cq_use_database(const struct cq_env *env, struct cq_session *s, const char *db, size_t len,
                     struct cq_result *r)
{
    if (len == strlen(COMETQL_DATABASE) && strncasecmp(db, COMETQL_DATABASE, len) == 0) {
        s->db_selected = true;
        return true;
    }
    if (len > 3 && len < 14 && strncasecmp(db, "db_", 3) == 0) {
        int64_t id = 0;
        bool digits = true;
        for (size_t i = 3; i < len; i++) {
            if (db[i] < '0' || db[i] > '9')
                digits = false;
            else
                id = id * 10 + (db[i] - '0');
        }
        if (digits && id < env->cfg->dev_index_size) {
            if (id != s->login_dev_id && !s->shared_login) {
                /* a tenant's own password opens that tenant only (issue 12) */
                cq_result_error(r, CQ_ERR_DB_ACCESS, "42000",
                                "Access denied for user '%s' to database '%.*s'", s->user, (int)len,
                                db);
                return false;
            }
            s->dev_id = id;
            s->db_selected = true;
            return true;
        }
    }
    cq_result_error(r, CQ_ERR_NOT_EXIST, "42000",
                    "Select database failure: unknown database '%.*s' (use " COMETQL_DATABASE
                    " or db_<dev_id>)",
                    (int)(len > 64 ? 64 : len), db);
    return false;
}

/* ---- dispatch ---------------------------------------------------------------------------------
 */

void cq_result_hold(struct cq_result *r)
{
    r->pending++;
}

void cq_result_release(struct cq_result *r)
{
    if (--r->pending == 0 && !r->in_exec && r->later) r->later(r->later_ctx, r);
}

static void dispatch(const struct cq_env *env, struct cq_session *s, const struct cq_stmt *st,
                     const struct value *params, struct arena *a, struct cq_result *r);

bool cq_exec(const struct cq_env *env, struct cq_session *s, const struct cq_stmt *st,
             const struct value *params, struct arena *a, struct cq_result *r,
             void (*later)(void *ctx, struct cq_result *r), void *ctx)
{
    cq_result_init(r);
    r->later = later;
    r->later_ctx = ctx;
    r->in_exec = true;
    dispatch(env, s, st, params, a, r);
    r->in_exec = false;
    return r->pending == 0;
}

static void dispatch(const struct cq_env *env, struct cq_session *s, const struct cq_stmt *st,
                     const struct value *params, struct arena *a, struct cq_result *r)
{
    const struct table_def *t;
    switch (st->kind) {
    case CQ_STMT_SELECT:
        if ((t = need_table(st->table, r))) tables_select(env, s, t, st, params, a, r);
        return;
    case CQ_STMT_INSERT:
        if ((t = need_table(st->table, r))) tables_insert(env, s, t, st, params, a, r);
        return;
    case CQ_STMT_UPDATE:
        if ((t = need_table(st->table, r))) tables_update(env, s, t, st, params, a, r);
        return;
    case CQ_STMT_DELETE:
        if ((t = need_table(st->table, r))) tables_delete(env, s, t, st, params, a, r);
        return;
    case CQ_STMT_SELECT_EXPR: select_expr(env, s, st, params, a, r); return;
    case CQ_STMT_SHOW_DATABASES: {
        cq_result_rows(r, "", col_db, 1);
        struct value row[1] = {vs(COMETQL_DATABASE)};
        if (like_ok(st->like, COMETQL_DATABASE)) cq_result_add_row(r, a, row);
        return;
    }
    case CQ_STMT_SHOW_TABLES: show_tables(s, st, a, r); return;
    case CQ_STMT_SHOW_COLUMNS: show_columns(st, a, r); return;
    case CQ_STMT_SHOW_VARIABLES: show_variables(env, s, st, a, r); return;
    case CQ_STMT_SHOW_STATUS: show_status(env, s, st, a, r); return;
    case CQ_STMT_SHOW_TABLE_STATUS: show_table_status(s, st, a, r); return;
    case CQ_STMT_SHOW_PROCESSLIST: show_processlist(s, a, r); return;
    case CQ_STMT_SHOW_WARNINGS: cq_result_rows(r, "", col_warn, 3); return;
    case CQ_STMT_SHOW_COLLATION: show_collation(st, a, r); return;
    case CQ_STMT_SHOW_CREATE_TABLE: show_create_table(st, a, r); return;
    case CQ_STMT_SHOW_ENGINES: {
        cq_result_rows(r, "", col_engines, 6);
        struct value row[6] = {vs("CometQL"), vs("DEFAULT"), vs("ccomet virtual tables"),
                               vs("NO"),      vs("NO"),      vs("NO")};
        cq_result_add_row(r, a, row);
        return;
    }
    case CQ_STMT_USE:
        if (cq_use_database(env, s, st->db, strlen(st->db), r)) r->kind = CQ_RES_OK;
        return;
    case CQ_STMT_SET:
    case CQ_STMT_TRANSACTION: return; /* accepted: CometQL is autocommit, utf8mb4 only */
    case CQ_STMT_EMPTY: cq_result_error(r, 1065, "42000", "Query was empty"); return;
    }
}

bool cq_describe(const struct cq_env *env, const struct cq_session *s, const struct cq_stmt *st,
                 struct arena *a, const struct cq_column **cols, size_t *n, struct cq_result *r)
{
    *cols = NULL;
    *n = 0;
    cq_result_init(r);
    switch (st->kind) {
    case CQ_STMT_SELECT: {
        const struct table_def *t = need_table(st->table, r);
        if (!t) return false;
        if (st->star || !st->n_columns) {
            *cols = t->cols;
            *n = t->n_cols;
            return true;
        }
        struct cq_column *c = arena_alloc(a, st->n_columns * sizeof *c);
        for (size_t i = 0; i < st->n_columns; i++) {
            int k = tables_column(t, st->columns[i]);
            if (k < 0) {
                cq_result_error(r, CQ_ERR_COLUMNS, "42S22", "Unknown column '%s' in 'field list'",
                                st->columns[i]);
                return false;
            }
            c[i] = t->cols[k];
        }
        *cols = c;
        *n = st->n_columns;
        return true;
    }
    case CQ_STMT_INSERT:
    case CQ_STMT_UPDATE:
    case CQ_STMT_DELETE: return need_table(st->table, r) != NULL;
    case CQ_STMT_SET:
    case CQ_STMT_USE:
    case CQ_STMT_TRANSACTION:
    case CQ_STMT_EMPTY: return true;
    default: {
        /* SHOW and SELECT without FROM: run it once to learn the shape (no side effects). */
        struct cq_session copy = *s;
        struct cq_result tmp;
        struct value *none = NULL;
        cq_exec(env, &copy, st, none, a, &tmp, NULL, NULL); /* SHOW and expressions: never wait */
        if (tmp.kind == CQ_RES_ERR) {
            *r = tmp;
            r->cells = NULL;
            cq_result_free(&tmp);
            return false;
        }
        if (tmp.kind == CQ_RES_ROWS) {
            struct cq_column *c = arena_alloc(a, (tmp.n_cols + 1) * sizeof *c);
            memcpy(c, tmp.cols, tmp.n_cols * sizeof *c);
            *cols = c;
            *n = tmp.n_cols;
        }
        cq_result_free(&tmp);
        return true;
    }
    }
}
