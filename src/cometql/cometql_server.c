/* cometql_server: MySQL-protocol connections for CometQL; see cometql_server.h.
 *
 * Data path: bytes arrive in one loop-wide read buffer; a connection keeps a private input
 * buffer only for an incomplete packet (idle connections hold none). Each complete payload is
 * handled at once; replies are appended to the connection's `pending` plaintext. Once per loop
 * iteration, after the store commits, pending is encrypted (TLS) or moved to `out` and written
 * with one uv_write. A connection whose queued output exceeds [cometql] max_output stops being
 * read until its client catches up. */
#include "cometql/cometql_server.h"
#include "core/alloc.h"
#include "core/log.h"
#include "state/tenants.h"
#include "proto/mysql_packet.h"
#include "server/batch_send.h"
#include "server/listener.h"
#include "server/tls.h"
#include "core/auth_failures.h"
#include "core/ip_count.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK (64 * 1024)
#define NATIVE     "mysql_native_password"

enum conn_state {
    ST_HANDSHAKE,   /* HandshakeV10 sent, waiting for the response or an SSLRequest */
    ST_TLS,         /* TLS after SSLRequest, waiting for the handshake response inside it */
    ST_AUTH_SWITCH, /* AuthSwitchRequest sent, waiting for the native token */
    ST_READY,       /* authenticated: commands */
    ST_CLOSING,
};

struct prepared {
    struct prepared *next;
    uint32_t id;
    struct arena arena;
    struct cq_stmt *st;
    uint16_t n_params;
    uint8_t *types;
    bool types_known;
    struct buf **long_data; /* n_params entries, NULL when unused */
    const struct cq_column *cols;
    size_t n_cols;
    size_t bytes; /* what it holds (parsed text, types, long-data slots), in prepared_bytes */
};

struct conn {
    uv_tcp_t tcp; /* first: the handle's data points back at us */
    uv_timer_t timer;
    struct cometql_server *srv;
    struct conn *prev, *next; /* all connections */
    struct conn *dirty_next;  /* connections with pending output */
    bool dirty;
    enum conn_state state;
    uint32_t id;
    uint8_t scramble[20];
    uint8_t ip[16];      /* the peer's address (ip_count's form), for the login throttle */
    bool unauth_counted; /* in srv->unauth until it authenticates or goes */
    uint8_t seq;         /* sequence id for the next packet we send */
    struct cq_session sess;
    struct tls_session *tls;
    struct buf in;       /* unprocessed plaintext input */
    struct buf pending;  /* plaintext replies not yet flushed */
    struct buf out;      /* bytes ready for the socket */
    struct buf inflight; /* bytes handed to uv_write */
    uv_write_t wreq;
    bool writing, reading_paused, close_after_flush;
    bool awaiting_commit;
    size_t commit_mark; /* pending length before the first reply that awaits the commit */
    int handles_open;
    struct arena arena; /* per-command memory */
    struct prepared *stmts;
    uint32_t next_stmt_id;
    size_t n_stmts;
    /* during a change-user / handshake, the response fields we keep */
    uint32_t client_caps;
    char want_db[65];
    bool has_db;
    bool health_check; /* haproxy_check login: answers PING/QUIT, every query gets ERR 403 */
    /* The statement in flight. With a state backend that answers later (state.h), the
     * connection runs nothing else until it completes: input waits in `in` (reading stops once
     * a packet's worth is buffered), and a close defers freeing the connection until then. */
    struct cq_result result;
    bool stmt_waiting, stmt_binary, read_held, free_after_stmt;
    size_t stmt_mark;
    struct prepared *stmt_ps; /* its long data is freed when the statement ends */
    size_t long_data_bytes;   /* held by every prepared statement's long data */
    size_t prepared_bytes;    /* held by the prepared statements themselves ([cometql]
                               * max_prepared_memory) */
};

struct cometql_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    const struct config *cfg;
    struct cq_env *env;
    struct tls_server *tls;
    struct auth_failures failures; /* failed logins per address ([cometql] max_auth_failures) */
    struct ip_count unauth;        /* connections not yet authenticated, per address */
    struct conn *conns;
    struct conn *dirty;
    uint64_t n_conns;
    uint64_t queries;
    uint32_t next_id;
    bool stopping;
    void (*stopped)(void *ctx);
    void *stopped_ctx;
    bool listener_closed;
    uv_timer_t stop_timer; /* a stop gives clients 2 s to read what is queued for them */
    bool stop_timer_closed;
    struct buf scratch;      /* joined multi-packet payloads */
    struct batch_send *send; /* a turn's replies in one submission */
    struct conn **batch;     /* the turn's connections with output */
    struct send_job *jobs;
    size_t batch_cap;
};

#define BATCH_MIN 4 /* connections with replies in one turn from which they go as one batch */

/* The largest packet before authentication: a handshake response with TLS, connection
 * attributes and a long user name fits in a few KiB (MySQL bounds it likewise). */
#define PREAUTH_MAX (64 * 1024)

static uint8_t read_buffer[READ_CHUNK];
static bool read_buffer_busy;

static void conn_close(struct conn *c, const char *why);
static void conn_process(struct conn *c);
static void pause_reading(struct conn *c);
static void conn_flush(struct conn *c);
static void restart_idle_timer(struct conn *c);

static uint32_t capabilities(const struct cometql_server *s)
{
    uint32_t caps = CLIENT_LONG_PASSWORD | CLIENT_FOUND_ROWS | CLIENT_LONG_FLAG |
                    CLIENT_CONNECT_WITH_DB | CLIENT_NO_SCHEMA | CLIENT_ODBC | CLIENT_IGNORE_SPACE |
                    CLIENT_PROTOCOL_41 | CLIENT_INTERACTIVE | CLIENT_IGNORE_SIGPIPE |
                    CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_RESULTS |
                    CLIENT_PS_MULTI_RESULTS | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS |
                    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
    if (s->tls) caps |= CLIENT_SSL; /* advertised only when we can honour it */
    return caps;
}

static void mark_dirty(struct conn *c)
{
    if (c->dirty) return;
    c->dirty = true;
    c->dirty_next = c->srv->dirty;
    c->srv->dirty = c;
}

/* Closes the connection once what is queued for it has been written. */
static void close_later(struct conn *c)
{
    c->close_after_flush = true;
    c->state = ST_CLOSING;
    mark_dirty(c);
}

/* ---- replies ----------------------------------------------------------------------------------
 */

static void reply_err(struct conn *c, int code, const char *sqlstate, const char *msg)
{
    mysql_write_err(&c->pending, &c->seq, (uint16_t)code, sqlstate ? sqlstate : "HY000", msg);
    mark_dirty(c);
}

static void reply_ok(struct conn *c, uint64_t affected, uint64_t insert_id)
{
    mysql_write_ok(&c->pending, &c->seq, affected, insert_id, SERVER_STATUS_AUTOCOMMIT, 0, NULL);
    mark_dirty(c);
}

static void column_def(const char *table, const struct cq_column *col, struct mysql_column *out)
{
    memset(out, 0, sizeof *out);
    out->schema = *table ? COMETQL_DATABASE : "";
    out->table = table;
    out->name = col->name;
    if (col->type == CQ_COL_INT) {
        out->type = MYSQL_TYPE_LONGLONG;
        out->charset = MYSQL_CHARSET_BINARY;
        out->length = 20;
        out->flags = (uint16_t)(MYSQL_FLAG_BINARY |
                                (col->primary ? MYSQL_FLAG_NOT_NULL | MYSQL_FLAG_PRI_KEY : 0));
    } else {
        out->type = MYSQL_TYPE_VAR_STRING;
        out->charset = MYSQL_CHARSET_UTF8MB4_GENERAL_CI;
        out->length = 65535 * 4;
        out->flags = (uint16_t)(col->primary ? MYSQL_FLAG_NOT_NULL | MYSQL_FLAG_PRI_KEY : 0);
    }
    out->decimals = col->type == CQ_COL_INT ? 0 : 0x1f;
}

static void write_columns(struct conn *c, const char *table, const struct cq_column *cols, size_t n,
                          struct mysql_column *defs)
{
    for (size_t i = 0; i < n; i++) {
        column_def(table ? table : "", &cols[i], &defs[i]);
        mysql_write_column_def(&c->pending, &c->seq, &defs[i]);
    }
    mysql_write_eof(&c->pending, &c->seq, SERVER_STATUS_AUTOCOMMIT, 0);
}

static void reply_result(struct conn *c, struct cq_result *r, bool binary)
{
    switch (r->kind) {
    case CQ_RES_ERR: reply_err(c, r->err_code, r->sqlstate, r->err_msg); break;
    case CQ_RES_OK: reply_ok(c, r->affected, r->insert_id); break;
    case CQ_RES_ROWS: {
        struct mysql_column *defs = arena_alloc(&c->arena, (r->n_cols + 1) * sizeof *defs);
        mysql_write_column_count(&c->pending, &c->seq, r->n_cols);
        write_columns(c, r->table, r->cols, r->n_cols, defs);
        for (size_t i = 0; i < r->n_rows; i++) {
            const struct value *row = &r->cells[i * r->n_cols];
            if (binary)
                mysql_write_binary_row(&c->pending, &c->seq, defs, row, r->n_cols);
            else
                mysql_write_text_row(&c->pending, &c->seq, row, r->n_cols);
        }
        mysql_write_eof(&c->pending, &c->seq, SERVER_STATUS_AUTOCOMMIT, 0);
        mark_dirty(c);
        break;
    }
    }
}

/* Queues the reply of the statement that just completed; a write's reply waits for the commit. */
static void statement_end(struct conn *c)
{
    struct cq_result *r = &c->result;
    c->sess.queries++;
    c->srv->queries++;
    if (r->wrote && !c->awaiting_commit) {
        c->awaiting_commit = true;
        c->commit_mark = c->stmt_mark;
    }
    reply_result(c, r, c->stmt_binary);
    cq_result_free(r);
}

static void free_long_data(struct conn *c, struct prepared *ps);
static void conn_free(struct conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b);

/* The state answered a statement that was waiting: reply, then go on with buffered input. */
static void statement_later(void *ctx, struct cq_result *r)
{
    struct conn *c = ctx;
    (void)r;
    c->stmt_waiting = false;
    if (c->stmt_ps) free_long_data(c, c->stmt_ps);
    c->stmt_ps = NULL;
    if (c->free_after_stmt) {
        cq_result_free(&c->result);
        conn_free(c);
        return;
    }
    statement_end(c);
    mark_dirty(c);
    if (c->state == ST_CLOSING) return;
    if (c->read_held) {
        c->read_held = false;
        if (!c->reading_paused) uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    conn_process(c);
}

/* Runs a statement; returns false when it waits on the state (its reply comes later, and ps's
 * long data must live until then). */
static bool run_statement(struct conn *c, const struct cq_stmt *st, const struct value *params,
                          bool binary, struct prepared *ps)
{
    c->stmt_mark = c->pending.len - c->pending.off;
    c->stmt_binary = binary;
    if (!cq_exec(c->srv->env, &c->sess, st, params, &c->arena, &c->result, statement_later, c)) {
        c->stmt_waiting = true;
        c->stmt_ps = ps;
        return false;
    }
    statement_end(c);
    return true;
}

/* ---- authentication -----------------------------------------------------------------------------
 */

static struct cq_limits limits(const struct config *cfg)
{
    struct cq_limits l = {(size_t)cfg->cometql_max_in_values, (size_t)cfg->cometql_max_conditions,
                          64};
    return l;
}

/* The user name selects the tenant: "root" is dev_id 0, digits are the dev_id. */
static bool tenant_of(const struct config *cfg, const char *user, size_t len, int64_t *dev)
{
    if (len == 4 && memcmp(user, "root", 4) == 0) {
        *dev = 0;
        return true;
    }
    if (len == 0 || len > 10) return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (user[i] < '0' || user[i] > '9') return false;
        v = v * 10 + (user[i] - '0');
    }
    if (v >= cfg->dev_index_size) return false;
    *dev = v;
    return true;
}

/* c no longer counts towards [cometql] max_unauthenticated_per_ip (logged in, or gone). */
static void unauth_release(struct conn *c)
{
    if (c->unauth_counted) ip_count_release(&c->srv->unauth, c->ip);
    c->unauth_counted = false;
}

static void auth_fail(struct conn *c, const char *why)
{
    char msg[160];
    snprintf(msg, sizeof msg, "Authentication failure: %s", why);
    reply_err(c, CQ_ERR_AUTH, "28000", msg);
    auth_failures_add(&c->srv->failures, c->ip, (uint32_t)time(NULL),
                      c->srv->cfg->cometql_auth_failure_window);
    LOG_RATELIMITED(LOG_INFO, "cometql",
                    "conn=%u msg=\"authentication failed\" peer=%s reason=\"%s\"", c->id,
                    c->sess.peer, why);
    close_later(c);
}

static void auth_finish(struct conn *c, const uint8_t *token, size_t token_len)
{
    const struct config *cfg = c->srv->cfg;
    enum tenant_login how =
        tenants_check_login(c->srv->env->tenants, cfg->password, cfg->shared_password_tenants,
                            c->sess.dev_id, c->scramble, token, token_len, (int64_t)time(NULL));
    if (how == TENANT_LOGIN_WRONG) {
        auth_fail(c, "wrong password");
        return;
    }
    if (how == TENANT_LOGIN_NO_OWN) {
        auth_fail(c, "this tenant has no password of its own ([main] shared_password_tenants = "
                     "no)");
        return;
    }
    c->sess.login_dev_id = c->sess.dev_id;
    c->sess.shared_login = how == TENANT_LOGIN_SHARED;
    if (how == TENANT_LOGIN_SHARED && c->sess.dev_id != 0)
        LOG_RATELIMITED(LOG_WARN, "cometql",
                        "msg=\"a tenant logged in with the shared [main] password\" dev_id=%" PRId64
                        " hint=\"give it its own: INSERT INTO tenants (dev_id, password, "
                        "jwt_secret) as root\"",
                        c->sess.dev_id);
    if (how == TENANT_LOGIN_OLD)
        LOG(LOG_INFO, "cometql",
            "conn=%u msg=\"logged in with the replaced password (grace period)\" dev_id=%" PRId64,
            c->id, c->sess.dev_id);
    if (c->has_db) {
        struct cq_result r;
        cq_result_init(&r);
        if (!cq_use_database(c->srv->env, &c->sess, c->want_db, strlen(c->want_db), &r)) {
            reply_err(c, r.err_code, r.sqlstate, r.err_msg);
            close_later(c);
            return;
        }
    }
    auth_failures_clear(&c->srv->failures, c->ip);
    unauth_release(c);
    c->state = ST_READY;
    restart_idle_timer(c); /* from the handshake deadline to the idle timeout */
    reply_ok(c, 0, 0);
    LOG(LOG_DEBUG, "cometql", "conn=%u msg=\"authenticated\" user=%s dev_id=%" PRId64 " tls=%s",
        c->id, c->sess.user, c->sess.dev_id, c->tls ? "yes" : "no");
}

static void on_handshake_response(struct conn *c, const uint8_t *p, size_t len)
{
    struct mysql_handshake_response hr;
    const char *err = NULL;
    if (mysql_parse_handshake_response(p, len, &hr, &err) != MYSQL_OK) {
        reply_err(c, 1043, "08S01", "Bad handshake");
        LOG(LOG_INFO, "cometql", "conn=%u msg=\"bad handshake\" reason=\"%s\"", c->id,
            err ? err : "?");
        close_later(c);
        return;
    }
    if (hr.ssl_request) {
        if (!c->srv->tls || c->tls) {
            reply_err(c, 1043, "08S01", "Bad handshake: TLS is not enabled on this server");
            close_later(c);
            return;
        }
        c->tls = tls_session_new(c->srv->tls);
        c->state = ST_TLS;
        return;
    }
    c->client_caps = hr.capabilities;
    size_t ul = hr.user_len < sizeof c->sess.user - 1 ? hr.user_len : sizeof c->sess.user - 1;
    memcpy(c->sess.user, hr.user, ul);
    c->sess.user[ul] = '\0';
    if (hr.auth_len == 0 && hr.user_len >= 13 && memcmp(hr.user, "haproxy_check", 13) == 0) {
        /* HAProxy's `option mysql-check`: a login without password that only proves we are up
         * (CppComet's behaviour); the session can do nothing but PING and QUIT. */
        c->health_check = true;
        c->state = ST_READY;
        restart_idle_timer(c);
        reply_ok(c, 0, 0);
        return;
    }
    if (c->srv->cfg->cometql_require_tls && !c->tls) {
        /* MySQL's require_secure_transport answer: a client made to skip TLS (CLIENT_SSL
         * stripped on the way) is never logged in */
        reply_err(c, 3159, "HY000",
                  "Connections using insecure transport are prohibited while [cometql] "
                  "require_tls = yes");
        LOG_RATELIMITED(LOG_INFO, "cometql", "conn=%u msg=\"login without TLS refused\"", c->id);
        close_later(c);
        return;
    }
    const struct config *cfg = c->srv->cfg;
    uint32_t wait =
        auth_failures_blocked(&c->srv->failures, c->ip, (uint32_t)time(NULL),
                              cfg->cometql_max_auth_failures, cfg->cometql_auth_failure_window);
    if (wait) {
        /* MySQL's answer to a host past max_connect_errors; the password is not looked at */
        char msg[200];
        snprintf(msg, sizeof msg,
                 "Host '%s' is blocked because of %" PRId64 " failed logins in %" PRId64
                 " s; retry in %u s",
                 c->sess.peer, cfg->cometql_max_auth_failures, cfg->cometql_auth_failure_window,
                 wait);
        reply_err(c, 1129, "HY000", msg);
        LOG_RATELIMITED(LOG_WARN, "cometql",
                        "msg=\"login refused: too many failed logins\" peer=%s retry_s=%u",
                        c->sess.peer, wait);
        close_later(c);
        return;
    }
    if (!tenant_of(c->srv->cfg, hr.user, hr.user_len, &c->sess.dev_id)) {
        auth_fail(c, "the user name must be root or a numeric dev_id");
        return;
    }
    c->has_db = false;
    if (hr.database && hr.database_len) {
        size_t dl =
            hr.database_len < sizeof c->want_db - 1 ? hr.database_len : sizeof c->want_db - 1;
        memcpy(c->want_db, hr.database, dl);
        c->want_db[dl] = '\0';
        c->has_db = true;
    }
    bool native = !hr.auth_plugin || (hr.auth_plugin_len == strlen(NATIVE) &&
                                      memcmp(hr.auth_plugin, NATIVE, hr.auth_plugin_len) == 0);
    if (!native || (hr.auth_len != 20 && hr.auth_len != 0)) {
        /* caching_sha2_password and friends: ask for mysql_native_password */
        if (!(hr.capabilities & CLIENT_PLUGIN_AUTH)) {
            auth_fail(c, "the client does not support mysql_native_password");
            return;
        }
        mysql_write_auth_switch(&c->pending, &c->seq, NATIVE, c->scramble);
        mark_dirty(c);
        c->state = ST_AUTH_SWITCH;
        return;
    }
    auth_finish(c, hr.auth, hr.auth_len);
}

/* ---- commands ---------------------------------------------------------------------------------
 */

static struct prepared *find_stmt(struct conn *c, uint32_t id, struct prepared ***link)
{
    struct prepared **pp = &c->stmts;
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            if (link) *link = pp;
            return *pp;
        }
    }
    return NULL;
}

static void free_stmt(struct prepared *ps)
{
    for (uint16_t i = 0; i < ps->n_params && ps->long_data; i++) {
        if (ps->long_data[i]) {
            buf_free(ps->long_data[i]);
            xfree(ps->long_data[i]);
        }
    }
    xfree(ps->long_data);
    xfree(ps->types);
    arena_free(&ps->arena);
    xfree(ps);
}

static void free_all_stmts(struct conn *c)
{
    while (c->stmts) {
        struct prepared *n = c->stmts->next;
        free_stmt(c->stmts);
        c->stmts = n;
    }
    c->n_stmts = 0;
    c->prepared_bytes = 0;
}

static bool query_length_ok(struct conn *c, size_t len)
{
    if ((int64_t)len <= c->srv->cfg->cometql_max_query_length) return true;
    char msg[160];
    snprintf(msg, sizeof msg,
             "Query is too long: %zu bytes, the limit is %" PRId64 " ([cometql] max_query_length)",
             len, c->srv->cfg->cometql_max_query_length);
    reply_err(c, CQ_ERR_OVERFLOW, "42000", msg);
    return false;
}

static void com_query(struct conn *c, const uint8_t *p, size_t len)
{
    if (!query_length_ok(c, len)) return;
    struct cq_limits l = limits(c->srv->cfg);
    struct cq_stmt *st;
    struct cq_error err;
    if (cq_parse((const char *)p, len, &l, false, &c->arena, &st, &err) != CQ_OK) {
        c->srv->queries++;
        reply_err(c, err.code, err.code == CQ_ERR_SYNTAX ? "42000" : "HY000", err.msg);
        return;
    }
    run_statement(c, st, NULL, false, NULL);
}

static void com_prepare(struct conn *c, const uint8_t *p, size_t len)
{
    if (!query_length_ok(c, len)) return;
    if ((int64_t)c->n_stmts >= c->srv->cfg->cometql_max_prepared) {
        reply_err(c, 1461, "42000",
                  "Too many prepared statements on this connection ([cometql] "
                  "max_prepared_statements)");
        return;
    }
    struct prepared *ps = xcalloc(1, sizeof *ps);
    arena_init(&ps->arena);
    struct cq_limits l = limits(c->srv->cfg);
    struct cq_error err;
    struct cq_result r;
    if (cq_parse((const char *)p, len, &l, true, &ps->arena, &ps->st, &err) != CQ_OK) {
        reply_err(c, err.code, err.code == CQ_ERR_SYNTAX ? "42000" : "HY000", err.msg);
        free_stmt(ps);
        return;
    }
    if (ps->st->n_params > 65535) {
        reply_err(c, 1390, "HY000", "Prepared statement contains too many placeholders");
        free_stmt(ps);
        return;
    }
    if (!cq_describe(c->srv->env, &c->sess, ps->st, &ps->arena, &ps->cols, &ps->n_cols, &r)) {
        reply_err(c, r.err_code, r.sqlstate, r.err_msg);
        cq_result_free(&r);
        free_stmt(ps);
        return;
    }
    cq_result_free(&r);
    ps->id = ++c->next_stmt_id;
    ps->n_params = (uint16_t)ps->st->n_params;
    ps->bytes = sizeof *ps + ps->arena.used + (ps->n_params + 1u) * (2 + sizeof *ps->long_data);
    if (c->prepared_bytes + ps->bytes > (size_t)c->srv->cfg->cometql_max_prepared_memory) {
        /* (security audit M4) 1,024 statements of max_query_length each would be 64 GiB */
        reply_err(c, 1041, "HY000",
                  "Prepared statements on this connection would hold more than [cometql] "
                  "max_prepared_memory; close some (COM_STMT_CLOSE)");
        free_stmt(ps);
        return;
    }
    ps->types = xcalloc(ps->n_params + 1u, 2);
    ps->long_data = xcalloc(ps->n_params + 1u, sizeof *ps->long_data);
    c->prepared_bytes += ps->bytes;
    ps->next = c->stmts;
    c->stmts = ps;
    c->n_stmts++;

    mysql_write_stmt_prepare_ok(&c->pending, &c->seq, ps->id, (uint16_t)ps->n_cols, ps->n_params,
                                0);
    if (ps->n_params) {
        static const struct cq_column param = {"?", CQ_COL_STR, false};
        struct mysql_column def;
        for (uint16_t i = 0; i < ps->n_params; i++) {
            column_def("", &param, &def);
            mysql_write_column_def(&c->pending, &c->seq, &def);
        }
        mysql_write_eof(&c->pending, &c->seq, SERVER_STATUS_AUTOCOMMIT, 0);
    }
    if (ps->n_cols) {
        struct mysql_column *defs = arena_alloc(&c->arena, ps->n_cols * sizeof *defs);
        write_columns(c, ps->st->table ? ps->st->table : "", ps->cols, ps->n_cols, defs);
    }
    mark_dirty(c);
}

static void com_execute(struct conn *c, const uint8_t *p, size_t len)
{
    uint32_t id;
    if (mysql_peek_stmt_id(p, len, &id) != MYSQL_OK) {
        reply_err(c, 1243, "HY000", "Malformed COM_STMT_EXECUTE");
        return;
    }
    struct prepared *ps = find_stmt(c, id, NULL);
    if (!ps) {
        reply_err(c, 1243, "HY000",
                  "Unknown prepared statement handler given to mysqld_stmt_execute");
        return;
    }
    struct mysql_param *params = arena_alloc(&c->arena, (ps->n_params + 1u) * sizeof *params);
    struct value *values = arena_alloc(&c->arena, (ps->n_params + 1u) * sizeof *values);
    const char *err = NULL;
    uint8_t flags;
    if (mysql_parse_stmt_execute(p, len, ps->n_params, ps->types, &ps->types_known,
                                 (const struct buf *const *)ps->long_data, params, &id, &flags,
                                 &err) != MYSQL_OK) {
        char msg[160];
        snprintf(msg, sizeof msg, "Malformed COM_STMT_EXECUTE: %s", err ? err : "?");
        reply_err(c, 1210, "HY000", msg);
        return;
    }
    for (uint16_t i = 0; i < ps->n_params; i++)
        values[i] = params[i].v;
    if (run_statement(c, ps->st, values, true, ps)) free_long_data(c, ps);
}

/* Long data is per execution (and counts towards the connection's max_long_data). */
static void free_long_data(struct conn *c, struct prepared *ps)
{
    for (uint16_t i = 0; i < ps->n_params; i++) {
        if (ps->long_data[i]) {
            size_t n = buf_unread(ps->long_data[i]);
            c->long_data_bytes -= n < c->long_data_bytes ? n : c->long_data_bytes;
            buf_free(ps->long_data[i]);
            xfree(ps->long_data[i]);
            ps->long_data[i] = NULL;
        }
    }
}

static void com_long_data(struct conn *c, const uint8_t *p, size_t len)
{
    uint32_t id;
    if (len < 7 || mysql_peek_stmt_id(p, len, &id) != MYSQL_OK) return; /* no reply, per protocol */
    struct prepared *ps = find_stmt(c, id, NULL);
    uint16_t param = (uint16_t)(p[5] | p[6] << 8);
    if (!ps || param >= ps->n_params) return;
    if (!ps->long_data[param]) {
        ps->long_data[param] = xcalloc(1, sizeof(struct buf));
        buf_init(ps->long_data[param]);
    }
    struct buf *b = ps->long_data[param];
    if ((int64_t)(buf_unread(b) + len - 7) > c->srv->cfg->cometql_max_packet) {
        reply_err(c, 1153, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes");
        close_later(c);
        return;
    }
    /* the total over every parameter of every prepared statement is bounded too (audit M4):
     * long data has no reply, so output back-pressure would never stop it */
    if ((int64_t)(c->long_data_bytes + len - 7) > c->srv->cfg->cometql_max_long_data) {
        reply_err(c, 1153, "08S01",
                  "Long data over [cometql] max_long_data bytes on this connection");
        close_later(c);
        return;
    }
    c->long_data_bytes += len - 7;
    buf_append(b, p + 7, len - 7);
}

static void com_field_list(struct conn *c, const uint8_t *p, size_t len)
{
    const uint8_t *nul = memchr(p, 0, len);
    size_t tl = nul ? (size_t)(nul - p) : len;
    char name[65];
    if (tl > 64) tl = 64;
    for (size_t i = 0; i < tl; i++)
        name[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
    name[tl] = '\0';
    struct cq_stmt st;
    memset(&st, 0, sizeof st);
    st.kind = CQ_STMT_SELECT;
    st.table = name;
    st.star = true;
    const struct cq_column *cols;
    size_t n;
    struct cq_result r;
    if (!cq_describe(c->srv->env, &c->sess, &st, &c->arena, &cols, &n, &r)) {
        reply_err(c, r.err_code, r.sqlstate, r.err_msg);
        cq_result_free(&r);
        return;
    }
    struct mysql_column def;
    for (size_t i = 0; i < n; i++) {
        column_def(name, &cols[i], &def);
        mysql_write_column_def(&c->pending, &c->seq, &def);
    }
    mysql_write_eof(&c->pending, &c->seq, SERVER_STATUS_AUTOCOMMIT, 0);
    mark_dirty(c);
}

static void com_statistics(struct conn *c)
{
    char text[256];
    int n = snprintf(text, sizeof text,
                     "Uptime: %ld  Threads: %" PRIu64 "  Questions: %" PRIu64
                     "  Slow queries: 0  Opens: 0  Open tables: %zu  Queries per second avg: 0",
                     (long)(time(NULL) - c->srv->env->started), c->srv->n_conns, c->srv->queries,
                     (size_t)11);
    mysql_put_payload(&c->pending, &c->seq, text, (size_t)n);
    mark_dirty(c);
}

static void on_command(struct conn *c, const uint8_t *p, size_t len)
{
    if (len == 0) {
        reply_err(c, 1047, "08S01", "Unknown command");
        return;
    }
    const uint8_t *arg = p + 1;
    size_t arg_len = len - 1;
    if (c->health_check && p[0] != 0x01 && p[0] != 0x0e) {
        reply_err(c, CQ_ERR_ACCESS_DENIED, "42000", "Access denied");
        return;
    }
    switch (p[0]) {
    case 0x01: /* COM_QUIT */ close_later(c); return;
    case 0x02: { /* COM_INIT_DB */
        struct cq_result r;
        cq_result_init(&r);
        if (cq_use_database(c->srv->env, &c->sess, (const char *)arg, arg_len, &r))
            reply_ok(c, 0, 0);
        else
            reply_err(c, r.err_code, r.sqlstate, r.err_msg);
        return;
    }
    case 0x03: com_query(c, arg, arg_len); return;
    case 0x04: com_field_list(c, arg, arg_len); return;
    case 0x09: com_statistics(c); return;
    case 0x0e: reply_ok(c, 0, 0); return; /* COM_PING */
    case 0x16: com_prepare(c, arg, arg_len); return;
    case 0x17: com_execute(c, p, len); return;
    case 0x18: com_long_data(c, p, len); return;
    case 0x19: { /* COM_STMT_CLOSE: no reply */
        uint32_t id;
        struct prepared **link;
        if (mysql_peek_stmt_id(p, len, &id) == MYSQL_OK && find_stmt(c, id, &link)) {
            struct prepared *ps = *link;
            *link = ps->next;
            free_long_data(c, ps);
            c->prepared_bytes -= ps->bytes;
            free_stmt(ps);
            c->n_stmts--;
        }
        return;
    }
    case 0x1a: { /* COM_STMT_RESET */
        uint32_t id;
        struct prepared *ps = NULL;
        if (mysql_peek_stmt_id(p, len, &id) == MYSQL_OK) ps = find_stmt(c, id, NULL);
        if (!ps) {
            reply_err(c, 1243, "HY000",
                      "Unknown prepared statement handler given to mysqld_stmt_reset");
            return;
        }
        free_long_data(c, ps);
        reply_ok(c, 0, 0);
        return;
    }
    case 0x1b: /* COM_SET_OPTION: multi-statements on/off; we answer EOF as MySQL does */
        mysql_write_eof(&c->pending, &c->seq, SERVER_STATUS_AUTOCOMMIT, 0);
        mark_dirty(c);
        return;
    case 0x1c: reply_err(c, 1421, "HY000", "Cursors are not supported by CometQL"); return;
    case 0x1f: /* COM_RESET_CONNECTION */
        free_all_stmts(c);
        c->sess.last_insert_id = 0;
        reply_ok(c, 0, 0);
        return;
    default: {
        char msg[64];
        snprintf(msg, sizeof msg, "Unknown command 0x%02x", p[0]);
        reply_err(c, 1047, "08S01", msg);
        return;
    }
    }
}

/* ---- input ------------------------------------------------------------------------------------
 */

static size_t queued_output(const struct conn *c)
{
    return buf_unread(&c->pending) + buf_unread(&c->out) + buf_unread(&c->inflight);
}

static void on_payload(struct conn *c, uint8_t seq, const uint8_t *p, size_t len)
{
    c->seq = (uint8_t)(seq + 1);
    switch (c->state) {
    case ST_HANDSHAKE:
    case ST_TLS: on_handshake_response(c, p, len); break;
    case ST_AUTH_SWITCH:
        if (len == 0 || len == 20)
            auth_finish(c, p, len);
        else
            auth_fail(c, "the auth switch response is not a mysql_native_password token");
        break;
    case ST_READY:
        arena_reset(&c->arena);
        if (!c->srv->env->state->ops->completes_inline && len) {
            /* a statement keeps pointers into its packet; a later answer must find it intact
             * (the read buffer and the joined-payload scratch are shared) */
            uint8_t *copy = arena_alloc(&c->arena, len);
            memcpy(copy, p, len);
            p = copy;
        }
        on_command(c, p, len);
        break;
    case ST_CLOSING: break;
    }
}

/* Handles complete payloads at the front of data; returns bytes consumed, or -1 to drop. */
static long process_bytes(struct conn *c, const uint8_t *data, size_t len)
{
    size_t done = 0;
    while (done < len && c->state != ST_CLOSING && !c->stmt_waiting) {
        if (queued_output(c) > (size_t)c->srv->cfg->cometql_max_output) {
            pause_reading(c); /* on_write resumes us and processes what is left */
            break;
        }
        struct mysql_frame f;
        const char *err = NULL;
        /* before authentication nothing bigger than a handshake response is accepted, so an
         * unauthenticated client cannot make us buffer max_packet (audit H3) */
        size_t max = c->state == ST_READY ? (size_t)c->srv->cfg->cometql_max_packet : PREAUTH_MAX;
        int rc = mysql_frame_parse(data + done, len - done, max, &c->srv->scratch, &f, &err);
        if (rc == MYSQL_AGAIN) break;
        if (rc == MYSQL_ERROR) {
            c->seq = 1;
            reply_err(c, 1153, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes");
            LOG(LOG_INFO, "cometql", "conn=%u msg=\"dropping client\" reason=\"%s\"", c->id,
                err ? err : "bad packet");
            close_later(c);
            return -1;
        }
        bool was_handshake = c->state == ST_HANDSHAKE;
        on_payload(c, f.seq, f.payload, f.len);
        done += f.consumed;
        if (was_handshake && c->state == ST_TLS) {
            /* whatever follows the SSLRequest is the TLS ClientHello */
            struct buf plain;
            buf_init(&plain);
            struct buf cipher_out;
            buf_init(&cipher_out);
            int trc = tls_session_feed(c->tls, data + done, len - done, &plain, &cipher_out);
            buf_append(&c->out, buf_head(&cipher_out), buf_unread(&cipher_out));
            buf_free(&cipher_out);
            done = len;
            if (trc != 0) {
                buf_free(&plain);
                return -1;
            }
            buf_append(&c->in, buf_head(&plain), buf_unread(&plain));
            buf_free(&plain);
            mark_dirty(c);
            return (long)done;
        }
    }
    return (long)done;
}

/* Processes c->in (plaintext that is already ours). */
static void conn_process_once(struct conn *c);
static void conn_process(struct conn *c)
{
    size_t before;
    do {
        before = buf_unread(&c->in);
        conn_process_once(c);
    } while (buf_unread(&c->in) && buf_unread(&c->in) != before && c->state != ST_CLOSING &&
             !c->reading_paused && !c->stmt_waiting);
}

static void conn_process_once(struct conn *c)
{
    if (!buf_unread(&c->in)) return;
    /* process_bytes may append to c->in (TLS switch); work on a detached copy of the head */
    struct buf work = c->in;
    buf_init(&c->in);
    long n = process_bytes(c, buf_head(&work), buf_unread(&work));
    if (n < 0) {
        buf_free(&work);
        mark_dirty(c);
        return;
    }
    buf_consume(&work, (size_t)n);
    if (buf_unread(&work)) {
        /* keep the remainder ahead of anything appended meanwhile */
        buf_append(&work, buf_head(&c->in), buf_unread(&c->in));
        buf_free(&c->in);
        c->in = work;
        buf_compact(&c->in);
    } else {
        buf_free(&work);
    }
    if (c->in.cap > 65536 && !buf_unread(&c->in)) buf_free(&c->in);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    if (read_buffer_busy) { /* never happens on one loop thread, but stay safe */
        b->base = NULL;
        b->len = 0;
        return;
    }
    read_buffer_busy = true;
    b->base = (char *)read_buffer;
    b->len = sizeof read_buffer;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = stream->data;
    read_buffer_busy = false;
    if (nread == 0) return;
    if (nread < 0) {
        conn_close(c, nread == UV_EOF ? "client closed" : uv_strerror((int)nread));
        return;
    }
    if (c->state == ST_CLOSING) return;
    const uint8_t *data = (const uint8_t *)b->base;
    size_t len = (size_t)nread;
    if (!c->health_check) restart_idle_timer(c); /* a health check's PINGs do not extend it */
    if (c->tls && c->state != ST_HANDSHAKE) {
        if (tls_session_feed(c->tls, data, len, &c->in, &c->out) != 0) {
            conn_close(c, "TLS error");
            return;
        }
        mark_dirty(c);
        if (c->state == ST_TLS && tls_session_ready(c->tls)) {
            c->sess.tls_cipher = tls_session_cipher(c->tls);
            c->sess.tls_version = tls_session_version(c->tls);
        }
        conn_process(c);
    } else if (!buf_unread(&c->in)) {
        /* the common case: no partial packet buffered, work straight from the read buffer */
        long n = process_bytes(c, data, len);
        if (n >= 0 && (size_t)n < len && c->state != ST_CLOSING) {
            buf_append(&c->in, data + n, len - (size_t)n);
        }
        if (n < 0) mark_dirty(c);
        if (n >= 0 && c->tls) conn_process(c); /* plaintext that came inside TLS records */
    } else {
        buf_append(&c->in, data, len);
        conn_process(c);
    }
    if (c->state != ST_CLOSING && queued_output(c) > (size_t)c->srv->cfg->cometql_max_output)
        pause_reading(c);
    if (c->stmt_waiting && !c->read_held && !c->reading_paused && c->state != ST_CLOSING &&
        buf_unread(&c->in) > (size_t)c->srv->cfg->cometql_max_packet) {
        uv_read_stop((uv_stream_t *)&c->tcp); /* statement_later starts it again */
        c->read_held = true;
    }
}

/* Back-pressure. A paused connection is resumed only by on_write, so conn_flush never drains a
 * paused connection with uv_try_write alone: an output drained without an on_write would leave
 * it paused for good with its client waiting (the old 16 MiB hang: a result larger than
 * max_output that the kernel happened to take in one write). */
static void pause_reading(struct conn *c)
{
    if (c->reading_paused || c->state == ST_CLOSING) return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading_paused = true;
    mark_dirty(c); /* the flush after the next commit starts the uv_write whose on_write resumes */
}

/* ---- output -----------------------------------------------------------------------------------
 */

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    c->writing = false;
    buf_free(&c->inflight);
    if (status < 0) {
        conn_close(c, uv_strerror(status));
        return;
    }
    if (c->reading_paused && c->state != ST_CLOSING &&
        queued_output(c) <= (size_t)c->srv->cfg->cometql_max_output / 2) {
        c->reading_paused = false;
        if (!c->read_held) uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        conn_process(c);
    }
    conn_flush(c);
}

/* Moves pending replies to the output (through TLS when it is on). false: the connection was
 * closed. */
static bool conn_stage(struct conn *c)
{
    if (buf_unread(&c->pending)) {
        if (c->tls && c->state != ST_HANDSHAKE) {
            if (tls_session_write(c->tls, buf_head(&c->pending), buf_unread(&c->pending),
                                  &c->out) != 0) {
                buf_free(&c->pending);
                conn_close(c, "TLS write error");
                return false;
            }
        } else {
            buf_append(&c->out, buf_head(&c->pending), buf_unread(&c->pending));
        }
        buf_free(&c->pending);
    }
    return true;
}

/* Moves pending replies to the socket. */
static void conn_flush(struct conn *c)
{
    if (c->handles_open < 2 || uv_is_closing((uv_handle_t *)&c->tcp)) return;
    if (!conn_stage(c)) return;
    if (!c->writing && buf_unread(&c->out)) {
        uv_buf_t b = uv_buf_init((char *)buf_head(&c->out), (unsigned)buf_unread(&c->out));
        int n = c->reading_paused ? 0 : uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n > 0)
            buf_consume(&c->out, (size_t)n);
        else if (n < 0 && n != UV_EAGAIN) {
            conn_close(c, uv_strerror(n));
            return;
        }
        if (buf_unread(&c->out)) {
            c->inflight = c->out;
            buf_init(&c->out);
            b = uv_buf_init((char *)buf_head(&c->inflight), (unsigned)buf_unread(&c->inflight));
            c->writing = true;
            c->wreq.data = c;
            int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
            if (rc < 0) {
                c->writing = false;
                conn_close(c, uv_strerror(rc));
                return;
            }
        } else if (c->out.cap > 65536) {
            buf_free(&c->out);
        }
    }
    if (c->close_after_flush && !c->writing && !buf_unread(&c->out))
        conn_close(c, "closed by server");
}

/* The replies of one loop turn: from BATCH_MIN connections on, their first writes go to the
 * kernel as one batch (server/batch_send: one io_uring submission), then conn_flush deals with
 * what is left (a full socket: uv_write; a close after the reply). */
static void flush_batch(struct cometql_server *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct conn *c = s->batch[i];
        struct send_job *j = &s->jobs[i];
        j->fd = -1;
        uv_os_fd_t fd;
        if (c->handles_open < 2 || uv_is_closing((uv_handle_t *)&c->tcp) || c->writing ||
            c->reading_paused || !conn_stage(c) || !buf_unread(&c->out) ||
            uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
            continue;
        j->fd = fd;
        j->iovcnt = 1;
        j->iov[0].iov_base = buf_head(&c->out);
        j->iov[0].iov_len = buf_unread(&c->out);
        k++;
    }
    if (k) batch_send_run(s->send, s->jobs, n);
    for (size_t i = 0; i < n; i++) {
        struct conn *c = s->batch[i];
        struct send_job *j = &s->jobs[i];
        if (j->fd >= 0 && j->result > 0) {
            buf_consume(&c->out, (size_t)j->result);
        } else if (j->fd >= 0 && j->result < 0 && j->err != EAGAIN && j->err != EWOULDBLOCK &&
                   j->err != EINTR) {
            conn_close(c, strerror(j->err));
            continue;
        }
        conn_flush(c);
    }
}

void cometql_server_after_commit(struct cometql_server *s, bool ok, const char *why)
{
    struct conn *c = s->dirty;
    s->dirty = NULL;
    size_t n = 0;
    while (c) {
        struct conn *next = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->awaiting_commit) {
            c->awaiting_commit = false;
            if (!ok) {
                /* Nothing after the first unconfirmed write may reach the client: its reply
                 * becomes an ERR (the reply to a command starts at sequence 1), and the
                 * connection closes after it, since the statements pipelined behind it ran in
                 * the transaction that was lost. */
                size_t keep = c->commit_mark;
                if (keep < buf_unread(&c->pending)) c->pending.len = c->pending.off + keep;
                char msg[320];
                snprintf(msg, sizeof msg, "Storage error: the write was not committed (%s)",
                         why && *why ? why : "commit failed");
                c->seq = 1;
                reply_err(c, CQ_ERR_INTERNAL, "HY000", msg);
                close_later(c);
                LOG(LOG_ERROR, "cometql",
                    "conn=%u msg=\"store commit failed; the write was answered ERR\" error=\"%s\"",
                    c->id, why && *why ? why : "?");
            }
        }
        if (n == s->batch_cap) {
            s->batch_cap = s->batch_cap ? s->batch_cap * 2 : 64;
            s->batch = xrealloc(s->batch, s->batch_cap * sizeof *s->batch);
            s->jobs = xrealloc(s->jobs, s->batch_cap * sizeof *s->jobs);
        }
        s->batch[n++] = c;
        c = next;
    }
    if (n >= BATCH_MIN) {
        flush_batch(s, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        conn_flush(s->batch[i]);
}

/* ---- lifecycle --------------------------------------------------------------------------------
 */

static void on_stop_timer_closed(uv_handle_t *h)
{
    struct cometql_server *s = h->data;
    s->stop_timer_closed = true;
    if (s->stopped) {
        void (*done)(void *) = s->stopped;
        s->stopped = NULL;
        done(s->stopped_ctx);
    }
}

/* The last step of a stop: everything closed, then the stop timer goes and done is called. */
static void stop_done(struct cometql_server *s)
{
    if (!s->listener_closed || uv_is_closing((uv_handle_t *)&s->stop_timer)) return;
    uv_timer_stop(&s->stop_timer);
    uv_close((uv_handle_t *)&s->stop_timer, on_stop_timer_closed);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles_open > 0) return;
    struct cometql_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    /* it may still be on the dirty list */
    for (struct conn **pp = &s->dirty; *pp; pp = &(*pp)->dirty_next) {
        if (*pp == c) {
            *pp = c->dirty_next;
            break;
        }
    }
    s->n_conns--;
    unauth_release(c);
    if (c->stmt_waiting) {
        c->free_after_stmt = true; /* its statement still points into it: statement_later frees */
    } else {
        conn_free(c);
    }
    if (s->stopping && !s->conns) stop_done(s);
}

static void conn_free(struct conn *c)
{
    free_all_stmts(c);
    buf_free(&c->in);
    buf_free(&c->pending);
    buf_free(&c->out);
    buf_free(&c->inflight);
    arena_free(&c->arena);
    tls_session_free(c->tls);
    xfree(c);
}

static void conn_close(struct conn *c, const char *why)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    c->state = ST_CLOSING;
    LOG(LOG_DEBUG, "cometql", "conn=%u msg=\"connection closed\" reason=\"%s\"", c->id, why);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->state == ST_READY) {
        LOG(LOG_INFO, "cometql", "conn=%u msg=\"idle timeout\"", c->id);
    } else {
        LOG(LOG_INFO, "cometql", "conn=%u msg=\"handshake timeout\" peer=%s", c->id, c->sess.peer);
    }
    conn_close(c, "timeout");
}

static void restart_idle_timer(struct conn *c)
{
    const struct config *cfg = c->srv->cfg;
    /* a haproxy_check session proved its point with the login: it keeps the handshake's
     * deadline, so password-less logins cannot hold connection slots for idle_timeout */
    uint64_t secs =
        (uint64_t)(c->state == ST_READY && !c->health_check ? cfg->cometql_idle_timeout
                                                            : cfg->cometql_connect_timeout);
    uv_timer_start(&c->timer, on_timeout, secs * 1000, 0);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct cometql_server *s = server->data;
    if (status < 0) {
        LOG_RATELIMITED(LOG_WARN, "cometql", "msg=\"accept failed\" error=\"%s\"",
                        uv_strerror(status));
        return;
    }
    struct conn *c = xcalloc(1, sizeof *c);
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    arena_init(&c->arena);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->prev = NULL;
        c->next = s->conns;
        if (s->conns) s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        conn_close(c, "accept failed");
        return;
    }
    c->id = ++s->next_id;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    c->sess.connection_id = c->id;
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[48] = "?";
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
        else
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
        snprintf(c->sess.peer, sizeof c->sess.peer, "%s", ip);
        ip_count_key((const struct sockaddr *)&ss, c->ip);
    }
    if ((int64_t)s->n_conns > s->cfg->cometql_max_connections) {
        c->seq = 0;
        reply_err(c, 1040, "08004", "Too many connections");
        close_later(c);
        LOG_RATELIMITED(LOG_WARN, "cometql",
                        "msg=\"connection refused: max_connections\" limit=%" PRId64,
                        s->cfg->cometql_max_connections);
        return;
    }
    /* before the password, one address holds at most max_unauthenticated_per_ip slots, so it
     * cannot fill max_connections for the backends that have the password */
    if (!ip_count_take(&s->unauth, c->ip, s->cfg->cometql_max_unauthenticated_per_ip)) {
        c->seq = 0;
        reply_err(c, 1040, "08004", "Too many unauthenticated connections from this address");
        close_later(c);
        LOG_RATELIMITED(LOG_WARN, "cometql",
                        "msg=\"connection refused: max_unauthenticated_per_ip\" peer=%s "
                        "limit=%" PRId64,
                        c->sess.peer, s->cfg->cometql_max_unauthenticated_per_ip);
        return;
    }
    c->unauth_counted = true;
    if (RAND_bytes(c->scramble, sizeof c->scramble) != 1) {
        conn_close(c, "no randomness");
        return;
    }
    for (size_t i = 0; i < sizeof c->scramble; i++)
        c->scramble[i] = (uint8_t)(1 + c->scramble[i] % 127);
    struct mysql_handshake h = {c->id,
                                CCOMET_SERVER_VERSION,
                                {0},
                                capabilities(s),
                                MYSQL_CHARSET_UTF8MB4_GENERAL_CI,
                                SERVER_STATUS_AUTOCOMMIT,
                                NATIVE};
    memcpy(h.scramble, c->scramble, sizeof h.scramble);
    mysql_write_handshake_v10(&c->pending, &h);
    c->seq = 1;
    c->state = ST_HANDSHAKE;
    mark_dirty(c);
    restart_idle_timer(c);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    LOG(LOG_DEBUG, "cometql", "conn=%u msg=\"client connected\" peer=%s", c->id, c->sess.peer);
}

struct cometql_server *cometql_server_start(uv_loop_t *loop, const struct config *cfg,
                                            struct cq_env *env, char *err, size_t errlen)
{
    struct cometql_server *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->cfg = cfg;
    s->env = env;
    buf_init(&s->scratch);
    env->connections_now = &s->n_conns;
    env->queries_total = &s->queries;
    if (*cfg->cometql_ssl_cert) {
        s->tls = tls_server_new(cfg->cometql_ssl_cert, cfg->cometql_ssl_key, err, errlen);
        if (!s->tls) {
            xfree(s);
            return NULL;
        }
    }
    if (listener_open(loop, &s->listener, "cometql", cfg->cometql_ip, cfg->cometql_port, 1024,
                      on_connection, s, err, errlen) != 0) {
        tls_server_free(s->tls);
        buf_free(&s->scratch);
        xfree(s);
        return NULL;
    }
    auth_failures_init(&s->failures);
    ip_count_init(&s->unauth);
    s->send = batch_send_new(256, cfg->io_uring);
    return s;
}

void cometql_server_reconfigure(struct cometql_server *s, const struct config *cfg)
{
    s->cfg = cfg;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct cometql_server *s = h->data;
    s->listener_closed = true;
    if (!s->conns) stop_done(s);
}

static void on_stop_timeout(uv_timer_t *t)
{
    struct cometql_server *s = t->data;
    for (struct conn *c = s->conns; c; c = c->next)
        conn_close(c, "server shutting down");
}

void cometql_server_stop(struct cometql_server *s, void (*done)(void *ctx), void *ctx)
{
    s->stopping = true;
    s->stopped = done;
    s->stopped_ctx = ctx;
    for (struct conn *c = s->conns; c; c = c->next) {
        if (c->writing || buf_unread(&c->pending) || buf_unread(&c->out)) {
            close_later(c);
            conn_flush(c);
        } else {
            conn_close(c, "server shutting down");
        }
    }
    uv_timer_init(s->loop, &s->stop_timer);
    s->stop_timer.data = s;
    uv_timer_start(&s->stop_timer, on_stop_timeout, 2000, 0);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}

void cometql_server_free(struct cometql_server *s)
{
    if (!s) return;
    buf_free(&s->scratch);
    auth_failures_free(&s->failures);
    ip_count_free(&s->unauth);
    tls_server_free(s->tls);
    batch_send_free(s->send);
    xfree(s->batch);
    xfree(s->jobs);
    xfree(s);
}

uint64_t cometql_server_connections(const struct cometql_server *s)
{
    return s->n_conns;
}
