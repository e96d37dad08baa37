/* tables: CometQL's virtual tables (users_auth, users_data, revoked_tokens, users_time,
 * users_messages, pipes_messages, users_in_pipes, pipes, pipes_settings, and the Video API's
 * conference tables): their columns, validation, and how SELECT / INSERT / UPDATE / DELETE map
 * onto the store and the hub. WHERE supports =, IN and AND on every column of every table; any
 * other operator is refused with a message naming it. */
#ifndef CC_TABLES_H
#define CC_TABLES_H

#include "cometql/cometql_exec.h"

struct table_column {
    struct cq_column col;
    const char *sql_type; /* for SHOW COLUMNS: "int(11)", "varchar(64)", "text" */
};

struct table_def {
    const char *name;
    const struct cq_column *cols; /* n_cols, in `SELECT *` order */
    const char *const *sql_types; /* n_cols */
    size_t n_cols;
    const char *comment;
    bool readable, insertable, deletable, updatable;
    const char *unavailable; /* non-NULL: every query answers this error (not built yet) */
};

const struct table_def *tables_find(const char *name);
size_t tables_count(void);
const struct table_def *tables_at(size_t i);
/* Whether SHOW TABLES lists t to this session (root's tables to root only). */
bool tables_visible(const struct table_def *t, const struct cq_session *s);
/* Index of a column in t, or -1. */
int tables_column(const struct table_def *t, const char *name);

void tables_select(const struct cq_env *env, struct cq_session *s, const struct table_def *t,
                   const struct cq_stmt *st, const struct value *params, struct arena *a,
                   struct cq_result *r);
void tables_insert(const struct cq_env *env, struct cq_session *s, const struct table_def *t,
                   const struct cq_stmt *st, const struct value *params, struct arena *a,
                   struct cq_result *r);
void tables_update(const struct cq_env *env, struct cq_session *s, const struct table_def *t,
                   const struct cq_stmt *st, const struct value *params, struct arena *a,
                   struct cq_result *r);
void tables_delete(const struct cq_env *env, struct cq_session *s, const struct table_def *t,
                   const struct cq_stmt *st, const struct value *params, struct arena *a,
                   struct cq_result *r);

#endif
