/* cometql_exec: runs a parsed CometQL statement for one session and produces its result (OK,
 * ERR or rows) in protocol-neutral form; the MySQL connection module encodes it. Owns the
 * statements that are not about a table (SHOW, SET, USE, SELECT @@var, the probes clients send
 * on connect); tables.c owns the virtual tables. Never does I/O: the state backend (state.h) and
 * the hub hold everything a statement reads or writes. */
#ifndef CC_COMETQL_EXEC_H
#define CC_COMETQL_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/arena.h"
#include "core/config.h"
#include "core/value.h"
#include "core/version.h"
#include "proto/cometql.h"
#include "push/hub.h"
#include "state/state.h"

struct video;

enum cq_coltype { CQ_COL_INT, CQ_COL_STR };

struct cq_column {
    const char *name;
    enum cq_coltype type;
    bool primary; /* the table's key column */
};

enum cq_result_kind { CQ_RES_OK, CQ_RES_ERR, CQ_RES_ROWS };

struct cq_result {
    enum cq_result_kind kind;
    /* OK */
    uint64_t affected, insert_id;
    /* ERR: code is CppComet's (enum cq_errcode) or MySQL's own (1064, 1193 ...) */
    int err_code;
    const char *sqlstate;
    char err_msg[256];
    /* ROWS */
    const char *table; /* for column definitions; "" for expressions */
    const struct cq_column *cols;
    size_t n_cols;
    struct value *cells; /* n_rows * n_cols, row-major; (transfer full) free with cq_result_free */
    size_t n_rows, cap_rows;
    size_t bytes; /* string bytes in cells */
    /* The statement wrote to the state: its reply must wait for the iteration's commit. */
    bool wrote;
    /* State calls the result still waits on (cq_exec): see cq_result_hold. */
    unsigned pending;
    bool in_exec;
    void (*later)(void *ctx, struct cq_result *r);
    void *later_ctx;
};

void cq_result_init(struct cq_result *r);
void cq_result_free(struct cq_result *r);
void cq_result_error(struct cq_result *r, int code, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sets the columns of a row result (cols must outlive the result: static or arena). */
void cq_result_rows(struct cq_result *r, const char *table, const struct cq_column *cols, size_t n);
/* Appends a row; string values are copied into the arena. */
void cq_result_add_row(struct cq_result *r, struct arena *a, const struct value *vals);
/* A statement step that waits on the state holds the result; its last release completes it
 * (calls r->later when that happens after cq_exec has returned). */
void cq_result_hold(struct cq_result *r);
void cq_result_release(struct cq_result *r);

/* Per-connection state that statements read and change. */
struct cq_session {
    int64_t dev_id;       /* the tenant the statements run as (USE db_N switches it) */
    int64_t login_dev_id; /* the tenant the login was for */
    /* the login used [main] password (root, or a tenant without its own password): it may
     * USE any tenant's database, as in CppComet; a login with a tenant's own password may not */
    bool shared_login;
    bool db_selected;
    uint64_t connection_id;
    uint64_t last_insert_id;
    char user[65];
    char peer[64];
    const char *tls_cipher;  /* (nullable) */
    const char *tls_version; /* (nullable) */
    uint64_t queries;
};

/* What statements run against; owned by the server. */
struct cq_env {
    const struct config *cfg;
    struct state *state; /* every table's rows */
    struct hub *hub;     /* live pipes and presence */
    time_t started;
    uint64_t *connections_now; /* live CometQL connections */
    uint64_t *queries_total;
    /* Closes every browser connection of a user (DELETE FROM users_auth, revoked JWT). */
    void (*kick_user)(void *ctx, int64_t dev_id, int64_t user_id);
    void *kick_ctx;
    /* (nullable, kick_ctx) a tenant's credentials were stored or removed here: other servers
     * sharing the state reload theirs */
    void (*tenants_changed)(void *ctx, int64_t dev_id);
    struct video *video;     /* (nullable) the Video API */
    struct tenants *tenants; /* the tenants' own credentials (root's `tenants` table) */
};

/* Runs st (params: values of its `?` placeholders, n_params of them, or NULL). Returns true when
 * r is complete. Returns false when r waits on the state backend: later(ctx, r) is then called
 * exactly once, from the loop, when it is complete; until then s, st, params, a and r must stay
 * alive and the session must run nothing else (one statement at a time per connection, as
 * MySQL's protocol has it). later may be NULL only where no statement can wait (describe). */
bool cq_exec(const struct cq_env *env, struct cq_session *s, const struct cq_stmt *st,
             const struct value *params, struct arena *a, struct cq_result *r,
             void (*later)(void *ctx, struct cq_result *r), void *ctx);

/* The result columns st will have, without running it (COM_STMT_PREPARE). *n = 0 for
 * statements that answer OK. Returns false with r filled as ERR when st cannot run at all
 * (unknown table, unknown column). */
bool cq_describe(const struct cq_env *env, const struct cq_session *s, const struct cq_stmt *st,
                 struct arena *a, const struct cq_column **cols, size_t *n, struct cq_result *r);

/* Switches the session's database: "CometQL_v1" or "db_<dev_id>" (case-insensitive). */
bool cq_use_database(const struct cq_env *env, struct cq_session *s, const char *db, size_t len,
                     struct cq_result *r);

/* The server's version string as the handshake and @@version show it. */
#define CCOMET_SERVER_VERSION  "5.7.99-ccomet-" CCOMET_VERSION
#define CCOMET_VERSION_COMMENT "ccomet " CCOMET_VERSION " (CometQL, CppComet-compatible)"
#define COMETQL_DATABASE       "CometQL_v1"

#endif
