/* Unit tests for src/proto/cometql.c: every statement form, the lexer's MySQL rules, limits,
 * errors, and the exact probes MySQL clients send on connect. */
#include "test.h"

#include "core/arena.h"
#include "proto/cometql.h"

#include <stdint.h>

/* One arena for the whole file: statements stay valid until the process ends (reachable, so
 * LeakSanitizer is content). */
static struct arena arena_;
static struct cq_error err_;

static struct cq_stmt *parse_ok(const char *sql, size_t len, const struct cq_limits *lim,
                                bool params, int line)
{
    struct cq_stmt *st = NULL;
    if (cq_parse(sql, len, lim, params, &arena_, &st, &err_) != CQ_OK || !st) {
        test_fail(__FILE__, line, "parse of \"%s\" failed: %d %s", sql ? sql : "(null)", err_.code,
                  err_.msg);
        return NULL;
    }
    return st;
}

static int parse_err(const char *sql, size_t len, const struct cq_limits *lim, bool params,
                     int line)
{
    struct cq_stmt *st = NULL;
    if (cq_parse(sql, len, lim, params, &arena_, &st, &err_) == CQ_OK) {
        test_fail(__FILE__, line, "parse of \"%s\" succeeded, expected an error",
                  sql ? sql : "(null)");
        return 0;
    }
    if (st) test_fail(__FILE__, line, "out set on error");
    if (!err_.msg[0]) test_fail(__FILE__, line, "empty error message for \"%s\"", sql);
    return err_.code;
}

#define OK(sql)   parse_ok((sql), strlen(sql), NULL, false, __LINE__)
#define OKP(sql)  parse_ok((sql), strlen(sql), NULL, true, __LINE__)
#define ERR(sql)  parse_err((sql), strlen(sql), NULL, false, __LINE__)
#define ERRP(sql) parse_err((sql), strlen(sql), NULL, true, __LINE__)
#define REQUIRE(x)                                                                                 \
    do {                                                                                           \
        if (!(x)) return;                                                                          \
    } while (0)
#define MSG_HAS(s)                                                                                 \
    do {                                                                                           \
        if (!strstr(err_.msg, (s)))                                                                \
            test_fail(__FILE__, __LINE__, "message \"%s\" lacks \"%s\"", err_.msg, (s));           \
    } while (0)
#define CHECK_VSTR(val, str)                                                                       \
    do {                                                                                           \
        const struct value *v_ = &(val);                                                           \
        size_t n_ = strlen(str);                                                                   \
        if (v_->kind != VALUE_STR || v_->len != n_ || memcmp(v_->s, (str), n_) != 0)               \
            test_fail(__FILE__, __LINE__, "%s is not the string \"%s\"", #val, (str));             \
    } while (0)
#define CHECK_VINT(val, n)                                                                         \
    do {                                                                                           \
        const struct value *v_ = &(val);                                                           \
        if (v_->kind != VALUE_INT || v_->i != (int64_t)(n))                                        \
            test_fail(__FILE__, __LINE__, "%s is not the integer %lld (kind %d, %lld)", #val,      \
                      (long long)(n), (int)v_->kind, (long long)v_->i);                            \
    } while (0)

/* ---- empty, comments, ';' ---------------------------------------------------------------- */

TEST(cq_empty_inputs)
{
    const char *empties[] = {"",          "   \t\r\n", "-- comment", "# hash\n",
                             "/* c */ ;", ";",         " ; ; ",      "--\n;"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        struct cq_stmt *st = OK(empties[i]);
        REQUIRE(st);
        CHECK_INT(st->kind, CQ_STMT_EMPTY);
    }
    struct cq_stmt *st = parse_ok(NULL, 0, NULL, false, __LINE__);
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_EMPTY);
}

TEST(cq_comments_everywhere)
{
    struct cq_stmt *st =
        OK("/* lead */ SELECT /* c */ id -- dash\n , hash # hash comment\n FROM users_auth"
           "/*!40101 WHERE id = 7 */;-- tail");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SELECT);
    CHECK_INT(st->n_columns, 2);
    CHECK_STR(st->columns[1], "hash");
    CHECK_INT(st->n_where, 1);
    CHECK_VINT(st->where[0].values[0].v, 7);

    st = OK("/*!40101 SET NAMES utf8 */");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SET);
    CHECK_INT(st->n_sets, 1);
    st = OK("/*M!100100 SELECT 1 */");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SELECT_EXPR);
    /* "--" not followed by a space is two minus signs, as in MySQL */
    st = OK("SELECT * FROM t WHERE id = --5");
    REQUIRE(st);
    CHECK_VINT(st->where[0].values[0].v, 5);
}

TEST(cq_unterminated_comment_and_string)
{
    CHECK_INT(ERR("SELECT 1 /* never closed"), CQ_ERR_SYNTAX);
    MSG_HAS("unterminated comment");
    CHECK_INT(ERR("/*!40101 SET NAMES utf8"), CQ_ERR_SYNTAX);
    MSG_HAS("unterminated comment");
    CHECK_INT(ERR("SELECT * FROM t WHERE name = 'abc"), CQ_ERR_SYNTAX);
    MSG_HAS("unterminated string");
    MSG_HAS("near ''abc'");
    CHECK_INT(ERR("SELECT * FROM t WHERE name = \"abc\\\""), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SELECT * FROM t WHERE name = 'abc\\"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SELECT * FROM `t"), CQ_ERR_SYNTAX);
    MSG_HAS("unterminated quoted identifier");
}

TEST(cq_multi_statement_refused)
{
    CHECK_INT(ERR("SELECT 1; SELECT 2"), CQ_ERR_SYNTAX);
    MSG_HAS("Multiple statements are not supported");
    CHECK_INT(ERR("SET NAMES utf8; DELETE FROM users_auth"), CQ_ERR_SYNTAX);
    MSG_HAS("Multiple statements are not supported");
    REQUIRE(OK("SELECT 1;"));
    REQUIRE(OK("SELECT 1 ;  -- bye\n /* x */ "));
    REQUIRE(OK("select * from pipes where name in ('a');\n"));
}

TEST(cq_syntax_error_message)
{
    CHECK_INT(ERR("SELECT * FORM users_auth"), CQ_ERR_SYNTAX);
    CHECK_STR(err_.msg,
              "You have an error in your CometQL syntax near 'FORM users_auth' at line 1");
    CHECK_INT(ERR("SELECT *\nFROM t\nWHERE id = = 1"), CQ_ERR_SYNTAX);
    CHECK_STR(err_.msg, "You have an error in your CometQL syntax near '= 1' at line 3");
    CHECK_INT(ERR("SELECT * FROM t WHERE"), CQ_ERR_SYNTAX);
    MSG_HAS("near '' at line 1");
    /* at most 40 bytes of the remaining text are quoted */
    CHECK_INT(ERR("FROB 0123456789012345678901234567890123456789TAIL"), CQ_ERR_SYNTAX);
    MSG_HAS("near 'FROB 01234567890123456789012345678901234' at");
    CHECK_INT(ERR("HELLO"), CQ_ERR_SYNTAX);
}

TEST(cq_nul_bytes_are_bounded)
{
    static const char q[] = "SELECT * FROM t WHERE name = 'a\0b'";
    struct cq_stmt *st = parse_ok(q, sizeof q - 1, NULL, false, __LINE__);
    REQUIRE(st);
    CHECK_INT(st->where[0].values[0].v.len, 3);
    CHECK_MEM(st->where[0].values[0].v.s, "a\0b", 3);
    static const char bad[] = "SELECT 1\0 FROM t";
    CHECK_INT(parse_err(bad, sizeof bad - 1, NULL, false, __LINE__), CQ_ERR_SYNTAX);
    /* len, not strlen: the text after len is never read */
    st = parse_ok("SELECT 1garbage", 8, NULL, false, __LINE__);
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SELECT_EXPR);
}

/* ---- SELECT ------------------------------------------------------------------------------ */

TEST(cq_select_star_in_list)
{
    struct cq_stmt *st = OK("SELECT * FROM users_auth WHERE id IN (1, 2, -3)");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SELECT);
    CHECK(st->star);
    CHECK_STR(st->table, "users_auth");
    CHECK(st->db == NULL);
    CHECK_INT(st->n_where, 1);
    CHECK_STR(st->where[0].column, "id");
    CHECK_INT(st->where[0].op, CQ_OP_IN);
    CHECK_INT(st->where[0].n_values, 3);
    CHECK_VINT(st->where[0].values[2].v, -3);
    CHECK_INT(st->where[0].values[0].param, -1);
    CHECK(!st->has_limit);
    CHECK_INT(st->n_params, 0);
}

TEST(cq_select_columns_quoted_and_case)
{
    struct cq_stmt *st =
        OK("sElEcT Name, `LENGTH`, \"Index\", 'time' FrOm `Pipes_Settings` wHeRe NAME = 'p1'");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SELECT);
    CHECK(!st->star);
    CHECK_INT(st->n_columns, 4);
    CHECK_STR(st->columns[0], "name");
    CHECK_STR(st->columns[1], "length");
    CHECK_STR(st->columns[2], "index");
    CHECK_STR(st->columns[3], "time");
    CHECK_STR(st->table, "pipes_settings");
    CHECK_STR(st->where[0].column, "name");
    CHECK_VSTR(st->where[0].values[0].v, "p1");
    /* CppComet's parenthesised quoted column list */
    st = OK("SELECT \"name\",\"length\" FROM pipes_settings WHERE name IN ('a')");
    REQUIRE(st);
    CHECK_INT(st->n_columns, 2);
    CHECK_STR(st->columns[1], "length");
}

TEST(cq_select_db_qualified_table)
{
    struct cq_stmt *st = OK("select * from CometQL_v1.Users_Auth where id = 1");
    REQUIRE(st);
    CHECK_STR(st->db, "CometQL_v1");
    CHECK_STR(st->table, "users_auth");
    st = OK("select * from `My``Db`.`t`");
    REQUIRE(st);
    CHECK_STR(st->db, "My`Db");
    CHECK_STR(st->table, "t");
}

TEST(cq_select_order_by_and_limits)
{
    struct cq_stmt *st =
        OK("SELECT * FROM pipes_messages WHERE name = 'p' ORDER BY time DESC, `index` ASC, id "
           "LIMIT 10");
    REQUIRE(st);
    CHECK_INT(st->n_order, 3);
    CHECK_STR(st->order[0].column, "time");
    CHECK(st->order[0].desc);
    CHECK_STR(st->order[1].column, "index");
    CHECK(!st->order[1].desc);
    CHECK(!st->order[2].desc);
    CHECK(st->has_limit);
    CHECK_INT(st->limit_offset, 0);
    CHECK_INT(st->limit_count, 10);

    st = OK("SELECT * FROM t LIMIT 5, 10");
    REQUIRE(st);
    CHECK_INT(st->limit_offset, 5);
    CHECK_INT(st->limit_count, 10);
    st = OK("SELECT * FROM t LIMIT 10 OFFSET 5");
    REQUIRE(st);
    CHECK_INT(st->limit_offset, 5);
    CHECK_INT(st->limit_count, 10);
    st = OK("SELECT * FROM t LIMIT 18446744073709551615");
    REQUIRE(st);
    CHECK(st->limit_count == UINT64_MAX);
    CHECK_INT(ERR("SELECT * FROM t LIMIT -1"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SELECT * FROM t LIMIT 'a'"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SELECT * FROM t LIMIT 18446744073709551616"), CQ_ERR_OVERFLOW);
    CHECK_INT(ERR("DELETE FROM t WHERE id = 1 LIMIT 1, 2"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SELECT * FROM t LIMIT 1 ORDER BY id"), CQ_ERR_SYNTAX);
}

TEST(cq_select_refusals)
{
    CHECK_INT(ERR("SELECT COUNT(*) FROM users_auth"), CQ_ERR_NOT_IMPLEMENTED);
    MSG_HAS("Function arguments");
    CHECK_INT(ERR("SELECT id AS i FROM users_auth"), CQ_ERR_NOT_IMPLEMENTED);
    MSG_HAS("aliases");
    CHECK_INT(ERR("SELECT @@version FROM users_auth"), CQ_ERR_NOT_IMPLEMENTED);
    CHECK_INT(ERR("SELECT 5 FROM users_auth"), CQ_ERR_NOT_IMPLEMENTED);
    CHECK_INT(ERR("SELECT foo"), CQ_ERR_COLUMNS);
    MSG_HAS("Unknown column 'foo'");
    CHECK_INT(ERR("SELECT *"), CQ_ERR_SYNTAX);
    MSG_HAS("No tables used");
    CHECK_INT(ERR("SELECT @x"), CQ_ERR_NOT_IMPLEMENTED);
    CHECK_INT(ERR("SELECT"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SELECT id FROM"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SELECT id, FROM t"), CQ_ERR_SYNTAX);
}

/* ---- WHERE ------------------------------------------------------------------------------- */

TEST(cq_where_each_operator_recorded)
{
    struct cq_stmt *st =
        OK("SELECT * FROM t WHERE a = 1 AND b <> 2 AND c != 3 AND d < 4 AND e > 5 AND f <= 6 "
           "AND g >= 7 AND h LIKE 'x%' AND i IN (8) AND j NOT IN (9, 10) AND k IS NULL AND "
           "`L` IS NOT NULL");
    REQUIRE(st);
    static const enum cq_op want[] = {CQ_OP_EQ, CQ_OP_NE,     CQ_OP_NE,      CQ_OP_LT,
                                      CQ_OP_GT, CQ_OP_LE,     CQ_OP_GE,      CQ_OP_LIKE,
                                      CQ_OP_IN, CQ_OP_NOT_IN, CQ_OP_IS_NULL, CQ_OP_IS_NOT_NULL};
    static const char *names[] = {
        "=", "<>", "<>", "<", ">", "<=", ">=", "LIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL"};
    CHECK_INT(st->n_where, 12);
    for (size_t i = 0; i < 12 && i < st->n_where; i++) {
        CHECK_INT(st->where[i].op, want[i]);
        CHECK_STR(cq_op_name(st->where[i].op), names[i]);
    }
    CHECK_STR(st->where[11].column, "l");
    CHECK_INT(st->where[10].n_values, 0);
    CHECK_INT(st->where[11].n_values, 0);
    CHECK_INT(st->where[9].n_values, 2);
    CHECK_VINT(st->where[9].values[1].v, 10);
    CHECK_VSTR(st->where[7].values[0].v, "x%");
    CHECK_INT(st->where[6].n_values, 1);
}

TEST(cq_where_or_and_not_refused)
{
    CHECK_INT(ERR("SELECT * FROM t WHERE a = 1 OR b = 2"), CQ_ERR_NOT_IMPLEMENTED);
    CHECK_STR(err_.msg, "Operator OR is not supported in CometQL");
    CHECK_INT(ERR("SELECT * FROM t WHERE a = 1 AND b = 2 or c = 3"), CQ_ERR_NOT_IMPLEMENTED);
    CHECK_INT(ERR("DELETE FROM t WHERE (a = 1) OR (b = 2)"), CQ_ERR_NOT_IMPLEMENTED);
    CHECK_INT(ERR("SELECT * FROM t WHERE a = 1 XOR b = 2"), CQ_ERR_NOT_IMPLEMENTED);
    CHECK_INT(ERR("SELECT * FROM t WHERE NOT a = 1"), CQ_ERR_NOT_IMPLEMENTED);
    CHECK_INT(ERR("SELECT * FROM t WHERE a NOT LIKE 'x'"), CQ_ERR_NOT_IMPLEMENTED);
    CHECK_INT(ERR("SELECT * FROM t WHERE a LIKE 'x' ESCAPE '!'"), CQ_ERR_NOT_IMPLEMENTED);
    CHECK_INT(ERR("SELECT * FROM t WHERE a = b"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SELECT * FROM t WHERE 1 = a"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SELECT * FROM t WHERE a IN ()"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SELECT * FROM t WHERE a IS 5"), CQ_ERR_SYNTAX);
}

TEST(cq_where_parentheses_and_depth)
{
    struct cq_stmt *st = OK("SELECT * FROM t WHERE (a = 1 AND (b = 2)) AND (c IN (3))");
    REQUIRE(st);
    CHECK_INT(st->n_where, 3);
    CHECK_STR(st->where[2].column, "c");
    CHECK_INT(ERR("SELECT * FROM t WHERE (a = 1"), CQ_ERR_SYNTAX);
    char q[256] = "SELECT * FROM t WHERE ";
    for (int i = 0; i < 40; i++)
        strcat(q, "(");
    strcat(q, "a = 1");
    for (int i = 0; i < 40; i++)
        strcat(q, ")");
    CHECK_INT(ERR(q), CQ_ERR_TOO_MANY);
    MSG_HAS("nested");
}

/* ---- literals ---------------------------------------------------------------------------- */

TEST(cq_numbers_signed_and_bounded)
{
    struct cq_stmt *st = OK("SELECT * FROM t WHERE a IN (-5, - 6, +7, 9223372036854775807, "
                            "-9223372036854775808, 0, -0, - - 8)");
    REQUIRE(st);
    const struct cq_cond *c = &st->where[0];
    CHECK_INT(c->n_values, 8);
    CHECK_VINT(c->values[0].v, -5);
    CHECK_VINT(c->values[1].v, -6);
    CHECK_VINT(c->values[2].v, 7);
    CHECK_VINT(c->values[3].v, INT64_MAX);
    CHECK_VINT(c->values[4].v, INT64_MIN);
    CHECK_VINT(c->values[5].v, 0);
    CHECK_VINT(c->values[6].v, 0);
    CHECK_VINT(c->values[7].v, 8);
    CHECK_INT(ERR("SELECT * FROM t WHERE a = 9223372036854775808"), CQ_ERR_OVERFLOW);
    MSG_HAS("Number out of range");
    CHECK_INT(ERR("SELECT * FROM t WHERE a = -9223372036854775809"), CQ_ERR_OVERFLOW);
    CHECK_INT(ERR("INSERT INTO t VALUES (123456789012345678901234567890)"), CQ_ERR_OVERFLOW);
    CHECK_INT(ERR("SELECT * FROM t WHERE a = -'x'"), CQ_ERR_SYNTAX);
}

TEST(cq_decimals_are_strings)
{
    struct cq_stmt *st = OK("SELECT * FROM t WHERE a IN (1.5, -1.5, 1e3, 2.5E-3, 10., 3e+2)");
    REQUIRE(st);
    const struct cq_cond *c = &st->where[0];
    CHECK_INT(c->n_values, 6);
    CHECK_VSTR(c->values[0].v, "1.5");
    CHECK_VSTR(c->values[1].v, "-1.5");
    CHECK_VSTR(c->values[2].v, "1e3");
    CHECK_VSTR(c->values[3].v, "2.5E-3");
    CHECK_VSTR(c->values[4].v, "10.");
    CHECK_VSTR(c->values[5].v, "3e+2");
}

TEST(cq_true_false_null)
{
    struct cq_stmt *st = OK("INSERT INTO t VALUES (TRUE, false, NULL, null)");
    REQUIRE(st);
    CHECK_VINT(st->rows[0][0].v, 1);
    CHECK_VINT(st->rows[0][1].v, 0);
    CHECK_INT(st->rows[0][2].v.kind, VALUE_NULL);
    CHECK_INT(st->rows[0][3].v.kind, VALUE_NULL);
}

TEST(cq_string_escapes_and_quotes)
{
    struct cq_stmt *st = OK(
        "INSERT INTO t VALUES ('a\\0b', '\\'', '\\\"', '\\b\\n\\r\\t\\Z', '\\\\', '\\%\\_', "
        "'\\q\\x', 'it''s', \"say \"\"hi\"\"\", \"it's\", 'say \"hi\"', 'con' \"cat\" 'ed', '')");
    REQUIRE(st);
    struct cq_operand *r = st->rows[0];
    CHECK_INT(st->n_row_values, 13);
    CHECK_INT(r[0].v.len, 3);
    CHECK_MEM(r[0].v.s, "a\0b", 3);
    CHECK_VSTR(r[1].v, "'");
    CHECK_VSTR(r[2].v, "\"");
    CHECK_VSTR(r[3].v, "\b\n\r\t\x1a");
    CHECK_VSTR(r[4].v, "\\");
    CHECK_VSTR(r[5].v, "\\%\\_");
    CHECK_VSTR(r[6].v, "qx");
    CHECK_VSTR(r[7].v, "it's");
    CHECK_VSTR(r[8].v, "say \"hi\"");
    CHECK_VSTR(r[9].v, "it's");
    CHECK_VSTR(r[10].v, "say \"hi\"");
    CHECK_VSTR(r[11].v, "concated");
    CHECK_VSTR(r[12].v, "");
    CHECK(r[12].v.s != NULL);
}

TEST(cq_string_introducers_and_hex)
{
    struct cq_stmt *st = OK("INSERT INTO t VALUES (_utf8mb4'abc', _binary\"b\", N'n', "
                            "X'4142', x'', 0x4142, 0x414, _latin1'x' 'y')");
    REQUIRE(st);
    struct cq_operand *r = st->rows[0];
    CHECK_INT(st->n_row_values, 8);
    CHECK_VSTR(r[0].v, "abc");
    CHECK_VSTR(r[1].v, "b");
    CHECK_VSTR(r[2].v, "n");
    CHECK_VSTR(r[3].v, "AB");
    CHECK_VSTR(r[4].v, "");
    CHECK_VSTR(r[5].v, "AB");
    CHECK_INT(r[6].v.len, 2);
    CHECK_MEM(r[6].v.s, "\x04\x14", 2);
    CHECK_VSTR(r[7].v, "xy");
    CHECK_INT(ERR("INSERT INTO t VALUES (X'414')"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("INSERT INTO t VALUES (X'4G')"), CQ_ERR_SYNTAX);
}

TEST(cq_backquotes_and_identifier_length)
{
    struct cq_stmt *st = OK("SELECT `We``ird`, `sp ace` FROM `Tab`");
    REQUIRE(st);
    CHECK_STR(st->columns[0], "we`ird");
    CHECK_STR(st->columns[1], "sp ace");
    CHECK_STR(st->table, "tab");
    CHECK_INT(ERR("SELECT `` FROM t"), CQ_ERR_SYNTAX);

    char q[300];
    char name[80];
    memset(name, 'a', 64);
    name[64] = '\0';
    snprintf(q, sizeof q, "SELECT * FROM %s", name);
    st = OK(q);
    REQUIRE(st);
    CHECK_INT(strlen(st->table), 64);
    snprintf(q, sizeof q, "SELECT * FROM `%s`", name);
    REQUIRE(OK(q));
    memset(name, 'b', 65);
    name[65] = '\0';
    snprintf(q, sizeof q, "SELECT * FROM %s", name);
    CHECK_INT(ERR(q), CQ_ERR_SYNTAX);
    MSG_HAS("too long");
    snprintf(q, sizeof q, "SELECT * FROM `%s`", name);
    CHECK_INT(ERR(q), CQ_ERR_SYNTAX);
    MSG_HAS("too long");
    snprintf(q, sizeof q, "INSERT INTO t ('%s') VALUES (1)", name);
    CHECK_INT(ERR(q), CQ_ERR_SYNTAX);
    /* bytes >= 0x80 are identifier bytes; ASCII-only lowercasing */
    st = OK("SELECT * FROM T\xc3\x89t");
    REQUIRE(st);
    CHECK_STR(st->table, "t\xc3\x89t");
}

/* ---- placeholders ------------------------------------------------------------------------ */

TEST(cq_params_counted_and_refused)
{
    struct cq_stmt *st = OKP("SELECT * FROM t WHERE id = ? AND name IN (?, 'x', ?)");
    REQUIRE(st);
    CHECK_INT(st->n_params, 3);
    CHECK_INT(st->where[0].values[0].param, 0);
    CHECK_INT(st->where[1].values[0].param, 1);
    CHECK_INT(st->where[1].values[1].param, -1);
    CHECK_INT(st->where[1].values[2].param, 2);
    st = OKP("INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?), (?, 'e', ?)");
    REQUIRE(st);
    CHECK_INT(st->n_params, 5);
    CHECK_INT(st->rows[1][2].param, 4);
    st = OKP("UPDATE t SET a = ? WHERE b = ?");
    REQUIRE(st);
    CHECK_INT(st->assigns[0].value.param, 0);
    CHECK_INT(st->where[0].values[0].param, 1);
    st = OKP("SET @a = 1 + ?, @b = ?");
    REQUIRE(st);
    CHECK_INT(st->n_params, 2);
    CHECK_INT(st->sets[1].value.param, 1);

    CHECK_INT(ERR("SELECT * FROM t WHERE id = ?"), CQ_ERR_SYNTAX);
    MSG_HAS("prepared");
    CHECK_INT(ERR("INSERT INTO t VALUES (?)"), CQ_ERR_SYNTAX);
    CHECK_INT(ERRP("SELECT * FROM ?"), CQ_ERR_SYNTAX);
    CHECK_INT(ERRP("SELECT * FROM t LIMIT ?"), CQ_ERR_SYNTAX);
}

/* ---- limits ------------------------------------------------------------------------------ */

TEST(cq_limits_enforced)
{
    struct cq_limits lim = {.max_in_values = 3, .max_conditions = 2, .max_columns = 2};
    const char *q;
    q = "SELECT * FROM t WHERE a IN (1,2,3)";
    REQUIRE(parse_ok(q, strlen(q), &lim, false, __LINE__));
    q = "SELECT * FROM t WHERE a IN (1,2,3,4)";
    CHECK_INT(parse_err(q, strlen(q), &lim, false, __LINE__), CQ_ERR_TOO_MANY);
    MSG_HAS("max_in_values = 3");
    q = "INSERT INTO t VALUES (1),(2),(3),(4)";
    CHECK_INT(parse_err(q, strlen(q), &lim, false, __LINE__), CQ_ERR_TOO_MANY);
    MSG_HAS("rows");
    MSG_HAS("max_in_values");
    q = "SELECT * FROM t WHERE a = 1 AND b = 2 AND c = 3";
    CHECK_INT(parse_err(q, strlen(q), &lim, false, __LINE__), CQ_ERR_TOO_MANY);
    MSG_HAS("max_conditions = 2");
    q = "SELECT a, b, c FROM t";
    CHECK_INT(parse_err(q, strlen(q), &lim, false, __LINE__), CQ_ERR_TOO_MANY);
    MSG_HAS("max_columns = 2");
    q = "INSERT INTO t (a, b, c) VALUES (1, 2, 3)";
    CHECK_INT(parse_err(q, strlen(q), &lim, false, __LINE__), CQ_ERR_TOO_MANY);
    MSG_HAS("max_columns");
    q = "INSERT INTO t VALUES (1, 2, 3)";
    CHECK_INT(parse_err(q, strlen(q), &lim, false, __LINE__), CQ_ERR_TOO_MANY);
    q = "UPDATE t SET a = 1, b = 2, c = 3";
    CHECK_INT(parse_err(q, strlen(q), &lim, false, __LINE__), CQ_ERR_TOO_MANY);
    q = "SELECT @@a, @@b, @@c";
    CHECK_INT(parse_err(q, strlen(q), &lim, false, __LINE__), CQ_ERR_TOO_MANY);
    q = "SHOW VARIABLES WHERE Variable_name IN ('a', 'b', 'c', 'd')";
    CHECK_INT(parse_err(q, strlen(q), &lim, false, __LINE__), CQ_ERR_TOO_MANY);
}

/* ---- INSERT / REPLACE -------------------------------------------------------------------- */

TEST(cq_insert_docs_examples)
{
    struct cq_stmt *st = OK("INSERT INTO pipes_messages (name, event, message) "
                            "VALUES(\"web_MainPageChat\",\"\",'{\"text\":\"hi\"}');");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_INSERT);
    CHECK(!st->replace);
    CHECK_STR(st->table, "pipes_messages");
    CHECK_INT(st->n_columns, 3);
    CHECK_STR(st->columns[2], "message");
    CHECK_INT(st->n_rows, 1);
    CHECK_INT(st->n_row_values, 3);
    CHECK_VSTR(st->rows[0][0].v, "web_MainPageChat");
    CHECK_VSTR(st->rows[0][1].v, "");
    CHECK_VSTR(st->rows[0][2].v, "{\"text\":\"hi\"}");

    st = OK("INSERT INTO pipes_settings (\"name\", \"length\") VALUES ('p1', 10)");
    REQUIRE(st);
    CHECK_STR(st->columns[0], "name");
    CHECK_STR(st->columns[1], "length");
    CHECK_VSTR(st->rows[0][0].v, "p1");
    CHECK_VINT(st->rows[0][1].v, 10);

    st = OK("INSERT INTO users_auth (id, hash) VALUES (12, 'jhgjhgjhgjh')");
    REQUIRE(st);
    CHECK_VINT(st->rows[0][0].v, 12);
}

TEST(cq_insert_forms)
{
    struct cq_stmt *st = OK("insert into T values (1, 'a'), (2, 'b'), (-3, NULL)");
    REQUIRE(st);
    CHECK_INT(st->n_columns, 0);
    CHECK_INT(st->n_rows, 3);
    CHECK_INT(st->n_row_values, 2);
    CHECK_VINT(st->rows[2][0].v, -3);
    CHECK_INT(st->rows[2][1].v.kind, VALUE_NULL);

    st = OK("REPLACE INTO users_data VALUE (1, 'd')");
    REQUIRE(st);
    CHECK(st->replace);
    CHECK_INT(st->n_rows, 1);

    st = OK("INSERT IGNORE INTO db1.t (a) VALUES (1)");
    REQUIRE(st);
    CHECK(st->ignore);
    CHECK_STR(st->db, "db1");

    st = OK("INSERT t (a) VALUES (1)");
    REQUIRE(st);
    CHECK_STR(st->table, "t");

    st = OK("INSERT INTO users_auth SET ID = 5, hash = 'h'");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_INSERT);
    CHECK_INT(st->n_columns, 2);
    CHECK_STR(st->columns[0], "id");
    CHECK_STR(st->columns[1], "hash");
    CHECK_INT(st->n_rows, 1);
    CHECK_INT(st->n_row_values, 2);
    CHECK_VINT(st->rows[0][0].v, 5);
    CHECK_VSTR(st->rows[0][1].v, "h");
    CHECK_INT(st->n_assigns, 0);
}

TEST(cq_insert_column_count)
{
    CHECK_INT(ERR("INSERT INTO t (a, b) VALUES (1)"), CQ_ERR_COLUMNS);
    CHECK_STR(err_.msg, "Column count doesn't match value count at row 1");
    CHECK_INT(ERR("INSERT INTO t (a) VALUES (1), (2, 3)"), CQ_ERR_COLUMNS);
    CHECK_STR(err_.msg, "Column count doesn't match value count at row 2");
    CHECK_INT(ERR("INSERT INTO t VALUES (1, 2), (3, 4), (5)"), CQ_ERR_COLUMNS);
    CHECK_STR(err_.msg, "Column count doesn't match value count at row 3");
    CHECK_INT(ERR("INSERT INTO t VALUES ()"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("INSERT INTO t () VALUES (1)"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = 1"),
              CQ_ERR_NOT_IMPLEMENTED);
    CHECK_INT(ERR("INSERT INTO t SELECT * FROM u"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("INSERT INTO t (a) SET a = 1"), CQ_ERR_SYNTAX);
}

/* ---- UPDATE / DELETE --------------------------------------------------------------------- */

TEST(cq_update)
{
    struct cq_stmt *st = OK("UPDATE Pipes_Settings SET `Length` = 20, name = 'x' WHERE name = "
                            "'p1' LIMIT 1");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_UPDATE);
    CHECK_STR(st->table, "pipes_settings");
    CHECK_INT(st->n_assigns, 2);
    CHECK_STR(st->assigns[0].column, "length");
    CHECK_VINT(st->assigns[0].value.v, 20);
    CHECK_VSTR(st->assigns[1].value.v, "x");
    CHECK_INT(st->n_where, 1);
    CHECK(st->has_limit);
    CHECK_INT(st->limit_count, 1);
    st = OK("UPDATE t SET a = -1");
    REQUIRE(st);
    CHECK_INT(st->n_where, 0);
    CHECK_INT(ERR("UPDATE t SET"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("UPDATE t WHERE a = 1"), CQ_ERR_SYNTAX);
}

TEST(cq_delete)
{
    struct cq_stmt *st =
        OK("DELETE FROM pipes_messages WHERE name IN ('a', 'b') ORDER BY time LIMIT 5");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_DELETE);
    CHECK_STR(st->table, "pipes_messages");
    CHECK_INT(st->where[0].n_values, 2);
    CHECK_INT(st->n_order, 1);
    CHECK_INT(st->limit_count, 5);
    st = OK("delete from conference where name = 'c' and user_id = 7");
    REQUIRE(st);
    CHECK_INT(st->n_where, 2);
    CHECK_STR(st->where[1].column, "user_id");
    st = OK("DELETE FROM revoked_tokens");
    REQUIRE(st);
    CHECK_INT(st->n_where, 0);
    CHECK_INT(ERR("DELETE users_auth WHERE id = 1"), CQ_ERR_SYNTAX);
}

/* ---- SHOW / DESCRIBE --------------------------------------------------------------------- */

TEST(cq_show_databases_tables_columns)
{
    struct cq_stmt *st = OK("SHOW DATABASES");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_DATABASES);
    st = OK("show schemas like 'Comet%'");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_DATABASES);
    CHECK_STR(st->like, "Comet%");

    st = OK("SHOW TABLES");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_TABLES);
    CHECK(!st->full);
    st = OK("SHOW FULL TABLES FROM db LIKE 'x'");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_TABLES);
    CHECK(st->full);
    CHECK_STR(st->db, "db");
    CHECK_STR(st->like, "x");
    st = OK("SHOW TABLES IN `CometQL_v1`");
    REQUIRE(st);
    CHECK_STR(st->db, "CometQL_v1");

    st = OK("SHOW FULL COLUMNS FROM Users_Auth FROM CometQL_v1 LIKE 'h%'");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_COLUMNS);
    CHECK(st->full);
    CHECK_STR(st->table, "users_auth");
    CHECK_STR(st->db, "CometQL_v1");
    CHECK_STR(st->like, "h%");
    st = OK("SHOW FIELDS IN db.users_auth");
    REQUIRE(st);
    CHECK_STR(st->table, "users_auth");
    CHECK_STR(st->db, "db");
    st = OK("SHOW COLUMNS FROM `pipes`");
    REQUIRE(st);
    CHECK_STR(st->table, "pipes");

    const char *desc[] = {"DESCRIBE users_auth", "desc users_auth", "EXPLAIN `users_auth`"};
    for (size_t i = 0; i < 3; i++) {
        st = OK(desc[i]);
        REQUIRE(st);
        CHECK_INT(st->kind, CQ_STMT_SHOW_COLUMNS);
        CHECK_STR(st->table, "users_auth");
        CHECK(st->like == NULL);
    }
    st = OK("DESCRIBE users_auth hash");
    REQUIRE(st);
    CHECK_STR(st->like, "hash");
    CHECK_INT(ERR("EXPLAIN SELECT * FROM t"), CQ_ERR_NOT_IMPLEMENTED);
    CHECK_INT(ERR("SHOW COLUMNS users_auth"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SHOW FULL DATABASES"), CQ_ERR_SYNTAX);
}

TEST(cq_show_variables_and_status)
{
    struct cq_stmt *st = OK("SHOW VARIABLES LIKE 'lower_case_table_names'");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_VARIABLES);
    CHECK_INT(st->scope, 0);
    CHECK_STR(st->like, "lower_case_table_names");
    st = OK("SHOW GLOBAL VARIABLES");
    REQUIRE(st);
    CHECK_INT(st->scope, 2);
    CHECK(st->like == NULL);
    st = OK("show session variables where Variable_name = 'max_allowed_packet'");
    REQUIRE(st);
    CHECK_INT(st->scope, 1);
    CHECK_STR(st->like, "max\\_allowed\\_packet");
    CHECK(cq_like_match(st->like, "max_allowed_packet", 18));
    CHECK(!cq_like_match(st->like, "maxXallowed_packet", 18));
    CHECK_INT(st->n_where, 1);
    st = OK("SHOW LOCAL VARIABLES WHERE Variable_name IN ('a', 'sql_mode')");
    REQUIRE(st);
    CHECK_INT(st->scope, 1);
    CHECK_STR(st->like, "a");
    CHECK_INT(st->where[0].n_values, 2);
    CHECK_VSTR(st->where[0].values[1].v, "sql_mode");
    st = OK("SHOW VARIABLES WHERE Variable_name LIKE 'char%'");
    REQUIRE(st);
    CHECK_STR(st->like, "char%");

    st = OK("SHOW STATUS");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_STATUS);
    CHECK(st->table == NULL);
    st = OK("SHOW GLOBAL STATUS LIKE 'up%'");
    REQUIRE(st);
    CHECK_INT(st->scope, 2);
    CHECK_STR(st->like, "up%");
    st = OK("SHOW SESSION STATUS");
    REQUIRE(st);
    CHECK_INT(st->scope, 1);

    const char *cpp[] = {"filesystem", "ram", "avg", "uptime"};
    for (size_t i = 0; i < 4; i++) {
        char q[64];
        snprintf(q, sizeof q, "SHOW %s STATUS", cpp[i]);
        st = OK(q);
        REQUIRE(st);
        CHECK_INT(st->kind, CQ_STMT_SHOW_STATUS);
        CHECK_STR(st->table, cpp[i]);
        CHECK(st->like == NULL);
    }
    CHECK_INT(ERR("SHOW GLOBAL TABLES"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SHOW VARIABLES LIKE lower_case_table_names"), CQ_ERR_SYNTAX);
}

TEST(cq_show_other_forms)
{
    struct cq_stmt *st = OK("SHOW TABLE STATUS FROM db LIKE 'users%'");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_TABLE_STATUS);
    CHECK_STR(st->db, "db");
    CHECK_STR(st->like, "users%");
    st = OK("SHOW TABLE STATUS");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_TABLE_STATUS);

    st = OK("SHOW PROCESSLIST");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_PROCESSLIST);
    st = OK("SHOW FULL PROCESSLIST");
    REQUIRE(st);
    CHECK(st->full);

    st = OK("SHOW WARNINGS LIMIT 10");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_WARNINGS);
    CHECK_STR(st->table, "warnings");
    CHECK_INT(st->limit_count, 10);
    st = OK("SHOW ERRORS");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_WARNINGS);
    CHECK_STR(st->table, "errors");

    st = OK("SHOW COLLATION LIKE 'utf8%'");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_COLLATION);
    CHECK_STR(st->table, "collation");
    CHECK_STR(st->like, "utf8%");
    st = OK("SHOW CHARACTER SET");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_COLLATION);
    CHECK_STR(st->table, "charset");
    st = OK("show charset like 'latin%'");
    REQUIRE(st);
    CHECK_STR(st->table, "charset");
    CHECK_STR(st->like, "latin%");

    st = OK("SHOW CREATE TABLE `Users_Auth`");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_CREATE_TABLE);
    CHECK_STR(st->table, "users_auth");
    st = OK("SHOW ENGINES");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_ENGINES);
    st = OK("SHOW STORAGE ENGINES");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SHOW_ENGINES);

    CHECK_INT(ERR("SHOW GRANTS"), CQ_ERR_NOT_IMPLEMENTED);
    MSG_HAS("SHOW GRANTS");
    CHECK_INT(ERR("SHOW CREATE DATABASE db"), CQ_ERR_NOT_IMPLEMENTED);
    CHECK_INT(ERR("SHOW"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SHOW TABLE"), CQ_ERR_SYNTAX);
}

/* ---- SELECT without FROM: the probes ----------------------------------------------------- */

TEST(cq_probe_version_comment)
{
    struct cq_stmt *st = OK("select @@version_comment limit 1");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SELECT_EXPR);
    CHECK_INT(st->n_exprs, 1);
    CHECK_INT(st->exprs[0].kind, CQ_EXPR_SYSVAR);
    CHECK_STR(st->exprs[0].name, "version_comment");
    CHECK_INT(st->exprs[0].scope, 0);
    CHECK_STR(st->exprs[0].text, "@@version_comment");
    CHECK(st->exprs[0].alias == NULL);
    CHECK(st->has_limit);
    CHECK_INT(st->limit_count, 1);

    st = OK("SELECT @@max_allowed_packet");
    REQUIRE(st);
    CHECK_STR(st->exprs[0].name, "max_allowed_packet");
    CHECK_STR(st->exprs[0].text, "@@max_allowed_packet");
}

TEST(cq_probe_connector_session_vars)
{
    struct cq_stmt *st =
        OK("SELECT @@session.auto_increment_increment AS auto_increment_increment, "
           "@@character_set_client AS character_set_client, @@GLOBAL.Max_Connections, "
           "@@local.sql_mode sm");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SELECT_EXPR);
    CHECK_INT(st->n_exprs, 4);
    CHECK_STR(st->exprs[0].name, "auto_increment_increment");
    CHECK_INT(st->exprs[0].scope, 1);
    CHECK_STR(st->exprs[0].alias, "auto_increment_increment");
    CHECK_STR(st->exprs[0].text, "@@session.auto_increment_increment");
    CHECK_STR(st->exprs[1].name, "character_set_client");
    CHECK_INT(st->exprs[1].scope, 0);
    CHECK_STR(st->exprs[1].alias, "character_set_client");
    CHECK_STR(st->exprs[2].name, "max_connections");
    CHECK_INT(st->exprs[2].scope, 2);
    CHECK_STR(st->exprs[2].text, "@@GLOBAL.Max_Connections");
    CHECK_INT(st->exprs[3].scope, 1);
    CHECK_STR(st->exprs[3].alias, "sm");
}

TEST(cq_probe_functions_and_literals)
{
    struct cq_stmt *st = OK("SELECT DATABASE()");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SELECT_EXPR);
    CHECK_INT(st->exprs[0].kind, CQ_EXPR_FUNC);
    CHECK_STR(st->exprs[0].name, "database");
    CHECK_STR(st->exprs[0].text, "DATABASE()");

    st = OK("SELECT VERSION(), user() AS `U`, CONNECTION_ID() 'id', 1, -2, 'x' AS y, NULL, "
            "CURRENT_USER, schema()");
    REQUIRE(st);
    CHECK_INT(st->n_exprs, 9);
    CHECK_STR(st->exprs[0].name, "version");
    CHECK_STR(st->exprs[1].name, "user");
    CHECK_STR(st->exprs[1].alias, "U");
    CHECK_STR(st->exprs[2].alias, "id");
    CHECK_INT(st->exprs[3].kind, CQ_EXPR_LITERAL);
    CHECK_VINT(st->exprs[3].literal.v, 1);
    CHECK_STR(st->exprs[3].text, "1");
    CHECK_VINT(st->exprs[4].literal.v, -2);
    CHECK_STR(st->exprs[4].text, "-2");
    CHECK_VSTR(st->exprs[5].literal.v, "x");
    CHECK_STR(st->exprs[5].alias, "y");
    CHECK_STR(st->exprs[5].text, "'x'");
    CHECK_INT(st->exprs[6].literal.v.kind, VALUE_NULL);
    CHECK_INT(st->exprs[7].kind, CQ_EXPR_FUNC);
    CHECK_STR(st->exprs[7].name, "current_user");
    CHECK_STR(st->exprs[8].name, "schema");

    st = OK("SELECT 1 FROM DUAL");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SELECT_EXPR);
    st = OK("SELECT LAST_INSERT_ID(), NOW() FROM dual LIMIT 1");
    REQUIRE(st);
    CHECK_INT(st->n_exprs, 2);
    CHECK_STR(st->exprs[0].name, "last_insert_id");
}

/* ---- SET --------------------------------------------------------------------------------- */

TEST(cq_set_names_probes)
{
    struct cq_stmt *st = OK("SET NAMES utf8mb4");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SET);
    CHECK_INT(st->n_sets, 1);
    CHECK_STR(st->sets[0].column, "names");
    CHECK_VSTR(st->sets[0].value.v, "utf8mb4");

    st = OK("SET NAMES 'utf8' COLLATE 'utf8_general_ci'");
    REQUIRE(st);
    CHECK_INT(st->n_sets, 2);
    CHECK_VSTR(st->sets[0].value.v, "utf8");
    CHECK_STR(st->sets[1].column, "collation_connection");
    CHECK_VSTR(st->sets[1].value.v, "utf8_general_ci");

    st = OK("SET CHARACTER SET utf8");
    REQUIRE(st);
    CHECK_STR(st->sets[0].column, "names");
    CHECK_VSTR(st->sets[0].value.v, "utf8");
    st = OK("set charset DEFAULT");
    REQUIRE(st);
    CHECK_VSTR(st->sets[0].value.v, "DEFAULT");
}

TEST(cq_set_variables)
{
    struct cq_stmt *st = OK("SET autocommit=1");
    REQUIRE(st);
    CHECK_INT(st->n_sets, 1);
    CHECK_STR(st->sets[0].column, "autocommit");
    CHECK_VINT(st->sets[0].value.v, 1);
    CHECK_INT(st->sets[0].scope, 0);

    st = OK("SET autocommit=0");
    REQUIRE(st);
    CHECK_VINT(st->sets[0].value.v, 0);

    st = OK("SET @@session.SQL_MODE = 'STRICT_TRANS_TABLES', GLOBAL max_connections = 10, "
            "@@global.x = ON, LOCAL y = DEFAULT, @@z = @@session.w, @MyVar := -5, "
            "net_write_timeout=600");
    REQUIRE(st);
    CHECK_INT(st->n_sets, 7);
    CHECK_STR(st->sets[0].column, "sql_mode");
    CHECK_INT(st->sets[0].scope, 1);
    CHECK_VSTR(st->sets[0].value.v, "STRICT_TRANS_TABLES");
    CHECK_STR(st->sets[1].column, "max_connections");
    CHECK_INT(st->sets[1].scope, 2);
    CHECK_VINT(st->sets[1].value.v, 10);
    CHECK_INT(st->sets[2].scope, 2);
    CHECK_VSTR(st->sets[2].value.v, "ON");
    CHECK_INT(st->sets[3].scope, 1);
    CHECK_VSTR(st->sets[3].value.v, "DEFAULT");
    CHECK_STR(st->sets[4].column, "z");
    CHECK_VSTR(st->sets[4].value.v, "@@session.w");
    CHECK_STR(st->sets[5].column, "@myvar");
    CHECK_VINT(st->sets[5].value.v, -5);
    CHECK_VINT(st->sets[6].value.v, 600);

    /* expressions are kept as their source text */
    st = OK("SET sql_mode = CONCAT(@@sql_mode, ',NO_ZERO_DATE'), b = 1 + 2");
    REQUIRE(st);
    CHECK_INT(st->n_sets, 2);
    CHECK_VSTR(st->sets[0].value.v, "CONCAT(@@sql_mode, ',NO_ZERO_DATE')");
    CHECK_VSTR(st->sets[1].value.v, "1 + 2");
}

TEST(cq_set_transaction_and_liberal)
{
    struct cq_stmt *st = OK("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SET);
    CHECK_INT(st->n_sets, 1);
    CHECK_STR(st->sets[0].column, "transaction_isolation");
    CHECK_VSTR(st->sets[0].value.v, "READ-COMMITTED");
    CHECK_INT(st->sets[0].scope, 1);
    st = OK("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    REQUIRE(st);
    CHECK_INT(st->n_sets, 2);
    CHECK_VSTR(st->sets[0].value.v, "REPEATABLE-READ");
    CHECK_STR(st->sets[1].column, "transaction_read_only");
    CHECK_VINT(st->sets[1].value.v, 1);
    st = OK("SET GLOBAL TRANSACTION READ WRITE");
    REQUIRE(st);
    CHECK_INT(st->sets[0].scope, 2);
    CHECK_VINT(st->sets[0].value.v, 0);

    /* shapes we do not model still parse, as CppComet's SET did */
    st = OK("SET PASSWORD FOR 'u'@'localhost' = 'x'");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_SET);
    CHECK_INT(st->n_sets, 0);
    st = OK("SET ROLE ALL;");
    REQUIRE(st);
    CHECK_INT(st->n_sets, 0);

    CHECK_INT(ERR("SET"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SET a = (1"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("SET a = 'x"), CQ_ERR_SYNTAX);
    MSG_HAS("unterminated string");
    CHECK_INT(ERR("SET a = 1; SET b = 2"), CQ_ERR_SYNTAX);
    MSG_HAS("Multiple statements");
    CHECK_INT(ERR("SET a = 99999999999999999999"), CQ_ERR_OVERFLOW);
}

/* ---- USE, transactions ------------------------------------------------------------------- */

TEST(cq_use_and_transactions)
{
    struct cq_stmt *st = OK("USE CometQL_v1");
    REQUIRE(st);
    CHECK_INT(st->kind, CQ_STMT_USE);
    CHECK_STR(st->db, "CometQL_v1");
    st = OK("use `my db`;");
    REQUIRE(st);
    CHECK_STR(st->db, "my db");
    CHECK_INT(ERR("USE"), CQ_ERR_SYNTAX);

    struct {
        const char *q, *what;
    } tx[] = {
        {"BEGIN", "begin"},
        {"begin work", "begin"},
        {"START TRANSACTION", "begin"},
        {"START TRANSACTION READ ONLY", "begin"},
        {"start transaction with consistent snapshot, read write", "begin"},
        {"COMMIT", "commit"},
        {"COMMIT WORK", "commit"},
        {"commit and no chain no release", "commit"},
        {"ROLLBACK", "rollback"},
        {"ROLLBACK WORK;", "rollback"},
    };
    for (size_t i = 0; i < sizeof tx / sizeof tx[0]; i++) {
        st = OK(tx[i].q);
        REQUIRE(st);
        CHECK_INT(st->kind, CQ_STMT_TRANSACTION);
        CHECK_STR(st->table, tx[i].what);
    }
    CHECK_INT(ERR("START"), CQ_ERR_SYNTAX);
    CHECK_INT(ERR("ROLLBACK TO SAVEPOINT x"), CQ_ERR_SYNTAX);
}

/* ---- LIKE -------------------------------------------------------------------------------- */

#define LIKE(p, s) cq_like_match((p), (s), strlen(s))

TEST(cq_like_match)
{
    CHECK(LIKE("", ""));
    CHECK(!LIKE("", "a"));
    CHECK(LIKE("%", ""));
    CHECK(LIKE("%", "anything"));
    CHECK(LIKE("abc", "ABC"));
    CHECK(LIKE("lower_case%", "LOWER_CASE_TABLE_NAMES"));
    CHECK(LIKE("a_c", "abc"));
    CHECK(!LIKE("a_c", "ac"));
    CHECK(!LIKE("a_c", "abbc"));
    CHECK(LIKE("%b%", "abc"));
    CHECK(!LIKE("%x%", "abc"));
    CHECK(LIKE("a%c%e", "abcde"));
    CHECK(LIKE("a%%c", "abbbc"));
    CHECK(!LIKE("a%c", "abcd"));
    CHECK(LIKE("%c", "cccc"));
    CHECK(LIKE("a\\%", "a%"));
    CHECK(!LIKE("a\\%", "ab"));
    CHECK(LIKE("a\\_b", "a_b"));
    CHECK(!LIKE("a\\_b", "axb"));
    CHECK(LIKE("a\\\\b", "a\\b"));
    CHECK(LIKE("a\\", "a\\"));    /* a trailing backslash matches itself */
    CHECK(LIKE("_", "\xc3\xa9")); /* `_` is one UTF-8 character */
    CHECK(!LIKE("__", "\xc3\xa9"));
    CHECK(LIKE("caf_", "caf\xc3\xa9"));
    CHECK(LIKE("%\xc3\xa9", "caf\xc3\xa9"));
    CHECK(cq_like_match("a%", "a\0b", 3));
    CHECK(!cq_like_match("a", "a\0", 2));
}
