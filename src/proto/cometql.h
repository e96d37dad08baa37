/* cometql: the CometQL dialect, sans I/O. Turns one query text into a statement tree: a lexer
 * (MySQL's rules for quotes, escapes, backquotes, comments and numbers) and a recursive-descent
 * parser for the statements CometQL and MySQL clients send. It knows the grammar, not the
 * tables: whether a table or column exists is the executor's business. All names are
 * lowercased (ASCII) so table and column lookups are case-insensitive; string literals are
 * unescaped by MySQL's rules. Everything the tree points to lives in the caller's arena. */
#ifndef CC_COMETQL_H
#define CC_COMETQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/value.h"

#define CQ_NAME_MAX 64 /* identifiers longer than this are a syntax error */

/* CometQL error codes (CppComet's numbering, sent as the MySQL ERR code). */
enum cq_errcode {
    CQ_ERR_NOT_IMPLEMENTED = 2,
    CQ_ERR_SYNTAX = 3,
    CQ_ERR_READ_ONLY = 10,
    CQ_ERR_OVERFLOW = 11,
    CQ_ERR_INVALID_DATA = 12,
    CQ_ERR_WHERE = 13,
    CQ_ERR_COLUMNS = 14,
    CQ_ERR_NOT_EXIST = 15,
    CQ_ERR_AUTH = 16,
    CQ_ERR_EMPTY = 17,
    CQ_ERR_TOO_MANY = 18,
    CQ_ERR_ACCESS_DENIED = 403,
    CQ_ERR_DB_ACCESS = 1044,    /* MySQL's ER_DBACCESS_DENIED_ERROR: another tenant's database */
    CQ_ERR_TABLE_ACCESS = 1142, /* MySQL's ER_TABLEACCESS_DENIED_ERROR: root's tables */
    CQ_ERR_INTERNAL = 500,
};

struct cq_error {
    int code;      /* enum cq_errcode */
    char msg[256]; /* human text, MySQL-like: "You have an error in your CometQL syntax near
                    * 'FROM x' at line 1" */
};

/* Bounds the parser enforces (from config); exceeding one is CQ_ERR_TOO_MANY with a message
 * naming the limit. A NULL limits pointer means the CQ_DEFAULT_* values below. */
struct cq_limits {
    size_t max_in_values;  /* values in one IN list, and rows in one multi-row INSERT */
    size_t max_conditions; /* conditions joined by AND */
    size_t max_columns;    /* select/insert column list length (also values per row, UPDATE/SET
                            * assignments, ORDER BY columns) */
};
#define CQ_DEFAULT_MAX_IN_VALUES  4000
#define CQ_DEFAULT_MAX_CONDITIONS 16
#define CQ_DEFAULT_MAX_COLUMNS    64

/* An expression operand: a literal value or a `?` placeholder of a prepared statement. */
struct cq_operand {
    struct value v; /* VALUE_NULL / VALUE_INT / VALUE_STR for literals (strings unescaped) */
    int param;      /* -1 for a literal, else the 0-based index of the `?` */
};

enum cq_op {
    CQ_OP_EQ,
    CQ_OP_IN,
    CQ_OP_NE,
    CQ_OP_LT,
    CQ_OP_GT,
    CQ_OP_LE,
    CQ_OP_GE,
    CQ_OP_LIKE,
    CQ_OP_NOT_IN,
    CQ_OP_IS_NULL,
    CQ_OP_IS_NOT_NULL
};

/* One `column op value(s)` condition; conditions in a WHERE are joined by AND. The parser
 * accepts every op above so the executor can refuse the ones a table cannot honour with a
 * clear message; OR is refused by the parser (CQ_ERR_NOT_IMPLEMENTED). */
struct cq_cond {
    const char *column; /* lowercased */
    enum cq_op op;
    struct cq_operand *values; /* 1 for comparisons, n for IN lists, 0 for IS [NOT] NULL */
    size_t n_values;
};

/* A SELECT-list item without FROM: @@var, a literal, or a function call such as DATABASE(). */
enum cq_expr_kind { CQ_EXPR_SYSVAR, CQ_EXPR_LITERAL, CQ_EXPR_FUNC };
struct cq_expr {
    enum cq_expr_kind kind;
    const char *name; /* SYSVAR: lowercased name without @@ and scope; FUNC: lowercased name */
    int scope;        /* SYSVAR: 0 none, 1 session (also LOCAL), 2 global */
    struct cq_operand literal; /* LITERAL */
    const char *alias;         /* AS alias (or implicit alias), case kept, else NULL */
    const char *text;          /* the item's source text as typed (alias excluded), MySQL uses it as
                                * the column name */
};

struct cq_assign {      /* UPDATE ... SET column = value; SET name = value */
    const char *column; /* lowercased; SET: the variable name without @@/scope, "@name" for a
                         * user variable */
    struct cq_operand value;
    int scope; /* SET only: 0 none, 1 session (also LOCAL), 2 global (also PERSIST) */
};

enum cq_stmt_kind {
    CQ_STMT_SELECT,      /* SELECT cols FROM table [WHERE] [ORDER BY] [LIMIT] */
    CQ_STMT_SELECT_EXPR, /* SELECT expr[, expr...] without FROM (probes: @@var, DATABASE()) */
    CQ_STMT_INSERT,      /* INSERT|REPLACE INTO table [(cols)] VALUES (...)[, (...)] */
    CQ_STMT_UPDATE,      /* UPDATE table SET col = v[, ...] [WHERE] */
    CQ_STMT_DELETE,      /* DELETE FROM table [WHERE] [LIMIT] */
    CQ_STMT_SHOW_DATABASES,
    CQ_STMT_SHOW_TABLES,    /* SHOW [FULL] TABLES [FROM db] [LIKE 'p'] */
    CQ_STMT_SHOW_COLUMNS,   /* SHOW [FULL] COLUMNS|FIELDS FROM t, DESCRIBE t, DESC t */
    CQ_STMT_SHOW_VARIABLES, /* SHOW [GLOBAL|SESSION] VARIABLES [LIKE 'p' | WHERE ...] */
    CQ_STMT_SHOW_STATUS,    /* SHOW [GLOBAL|SESSION] STATUS [LIKE 'p'] */
    CQ_STMT_SHOW_TABLE_STATUS,
    CQ_STMT_SHOW_PROCESSLIST,
    CQ_STMT_SHOW_WARNINGS,  /* SHOW WARNINGS / SHOW ERRORS */
    CQ_STMT_SHOW_COLLATION, /* SHOW COLLATION / SHOW CHARACTER SET [LIKE] */
    CQ_STMT_SHOW_CREATE_TABLE,
    CQ_STMT_SHOW_ENGINES,
    CQ_STMT_SET,         /* any SET ...: accepted; names/values parsed into sets[] */
    CQ_STMT_USE,         /* USE db */
    CQ_STMT_TRANSACTION, /* BEGIN, START TRANSACTION, COMMIT, ROLLBACK: accepted, no effect */
    CQ_STMT_EMPTY,       /* only whitespace, comments and ';' */
};

struct cq_order {
    const char *column;
    bool desc;
};

struct cq_stmt {
    enum cq_stmt_kind kind;
    const char *table; /* lowercased; SELECT/INSERT/UPDATE/DELETE/SHOW COLUMNS/SHOW CREATE.
                        * Also a sub-kind: SHOW COLLATION "collation"|"charset"; SHOW STATUS
                        * "filesystem"|"ram"|"avg"|"uptime" (CppComet's, like NULL); SHOW WARNINGS
                        * "warnings"|"errors"; TRANSACTION "begin"|"commit"|"rollback". */
    const char *db;    /* USE db, SHOW TABLES FROM db, or a db.table qualifier; not lowercased */

    /* SELECT */
    bool star;            /* SELECT * */
    const char **columns; /* SELECT list or INSERT column list, lowercased */
    size_t n_columns;
    struct cq_expr *exprs; /* SELECT_EXPR */
    size_t n_exprs;
    struct cq_cond *where; /* also SHOW ... WHERE (see like) */
    size_t n_where;
    struct cq_order *order; /* ORDER BY (executor may refuse) */
    size_t n_order;
    bool has_limit;
    uint64_t limit_offset, limit_count; /* MySQL meaning: LIMIT n | LIMIT o, n | LIMIT n OFFSET o */

    /* INSERT: rows of n_row_values operands each (== n_columns when a column list or SET form
     * was given, n_columns == 0 otherwise) */
    bool replace; /* REPLACE INTO */
    bool ignore;  /* INSERT IGNORE */
    struct cq_operand **rows;
    size_t n_rows, n_row_values;

    /* UPDATE */
    struct cq_assign *assigns;
    size_t n_assigns;

    /* SHOW */
    bool full;
    int scope;        /* 0 none, 1 session, 2 global */
    const char *like; /* LIKE pattern (unescaped), nullable. SHOW ... WHERE Variable_name = 'x'
                       * or IN ('x', ...) sets it to the first value as an exact-match pattern
                       * (% _ \ escaped); the whole WHERE is in where[]. DESCRIBE t col: col. */

    /* SET: each `name = value` pair; names lowercased, NAMES/CHARACTER SET recorded as "names"
     * (its COLLATE as "collation_connection"), SET TRANSACTION as "transaction_isolation" =
     * 'READ-COMMITTED' etc. and "transaction_read_only" = 1|0. Identifier values are VALUE_STR
     * as typed; an expression value is VALUE_STR of its source text. A SET that tokenizes but
     * does not fit these shapes parses with n_sets == 0 (accepted, as CppComet did). */
    struct cq_assign *sets;
    size_t n_sets;

    unsigned n_params; /* number of `?` placeholders */
};

enum { CQ_OK = 0, CQ_ERROR = -1 };

/* Parses one statement from sql[0..len) (a trailing ';' and whitespace/comments are allowed;
 * a second statement after ';' is an error: CLIENT_MULTI_STATEMENTS is not offered).
 * allow_params: `?` placeholders allowed (COM_STMT_PREPARE); otherwise `?` is a syntax error.
 * On success *out points into the arena. On failure err is filled and CQ_ERROR returned. */
int cq_parse(const char *sql, size_t len, const struct cq_limits *limits, bool allow_params,
             struct arena *arena, struct cq_stmt **out, struct cq_error *err);

/* MySQL LIKE matching (% and _, backslash escape), ASCII case-insensitive as MySQL's default
 * collations are. */
bool cq_like_match(const char *pattern, const char *s, size_t len);

const char *cq_op_name(enum cq_op op); /* "=", "IN", "<>", ... */

#endif
