/* Unit tests for src/proto/resp.c: every RESP2 and RESP3 reply type parsed whole and found
 * incomplete at every strict prefix (with the scan's lower bound never past the real end);
 * replies Redis 7 sends to the commands ccomet uses (EVALSHA, XRANGE, sharded pub/sub
 * messages); NULs and CRs inside bulks; limits (bulk size, elements, depth); malformed bytes;
 * the command builder's exact bytes. */
#include "test.h"

#include <stdint.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "proto/resp.h"

/* An exact-length heap copy, so that ASan catches any read past the end. */
static char *dup_exact(const char *p, size_t n)
{
    char *q = xmalloc(n ? n : 1);
    if (n) memcpy(q, p, n);
    return q;
}

/* Parses s (n bytes) whole, after checking every strict prefix is RESP_AGAIN with a bound in
 * (prefix, n]. */
static struct resp_value *parse_all(struct arena *a, const char *s, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        char *p = dup_exact(s, k);
        size_t need = 0;
        const char *err = NULL;
        int rc = resp_scan(p, k, NULL, &need, &err);
        if (rc != RESP_AGAIN || need <= k || need > n)
            test_fail(__FILE__, __LINE__, "prefix %zu of %zu: rc %d need %zu", k, n, rc, need);
        xfree(p);
    }
    char *p = dup_exact(s, n);
    struct resp_value *v = NULL;
    size_t used = 0;
    const char *err = NULL;
    int rc = resp_parse(p, n, NULL, a, &v, &used, &err);
    if (rc != RESP_OK || used != n) {
        test_fail(__FILE__, __LINE__, "whole: rc %d used %zu of %zu (%s)", rc, used, n,
                  err ? err : "");
        xfree(p);
        return NULL;
    }
    /* the strings point into p: keep it with the arena */
    char *keep = arena_alloc(a, n ? n : 1);
    memcpy(keep, p, n);
    xfree(p);
    v = NULL;
    rc = resp_parse(keep, n, NULL, a, &v, &used, &err);
    return rc == RESP_OK ? v : NULL;
}

#define PARSE(a, lit) parse_all((a), (lit), sizeof(lit) - 1)

static int scan_rc(const char *s, size_t n, const struct resp_limits *lim, const char **err)
{
    char *p = dup_exact(s, n);
    size_t used;
    *err = NULL;
    int rc = resp_scan(p, n, lim, &used, err);
    xfree(p);
    return rc;
}

TEST(resp_scalars)
{
    struct arena a;
    arena_init(&a);
    struct resp_value *v = PARSE(&a, "+OK\r\n");
    CHECK(v && v->type == RESP_SIMPLE && resp_is(v, "OK"));
    v = PARSE(&a, "-ERR unknown command 'X'\r\n");
    CHECK(v && v->type == RESP_ERR && v->len == 23 &&
          memcmp(v->s, "ERR unknown command 'X'", 23) == 0);
    v = PARSE(&a, ":-9223372036854775808\r\n");
    CHECK(v && v->type == RESP_INT && v->i == INT64_MIN);
    v = PARSE(&a, ":9223372036854775807\r\n");
    CHECK(v && v->i == INT64_MAX);
    v = PARSE(&a, "$5\r\nhello\r\n");
    CHECK(v && v->type == RESP_BULK && resp_is(v, "hello"));
    v = PARSE(&a, "$0\r\n\r\n");
    CHECK(v && v->type == RESP_BULK && v->len == 0);
    v = PARSE(&a, "$-1\r\n");
    CHECK(v && v->type == RESP_NIL);
    v = PARSE(&a, "*-1\r\n");
    CHECK(v && v->type == RESP_NIL);
    v = PARSE(&a, "$6\r\na\r\n\0b\r\r\n"); /* CR, LF and NUL inside a bulk are data */
    CHECK(v && v->type == RESP_BULK && v->len == 6 && memcmp(v->s, "a\r\n\0b\r", 6) == 0);
    int64_t n = 0;
    v = PARSE(&a, "$3\r\n-42\r\n");
    CHECK(v && resp_to_int(v, &n) && n == -42);
    v = PARSE(&a, "$3\r\n4x2\r\n");
    CHECK(v && !resp_to_int(v, &n));
    arena_free(&a);
}

TEST(resp3_types)
{
    struct arena a;
    arena_init(&a);
    struct resp_value *v = PARSE(&a, "_\r\n");
    CHECK(v && v->type == RESP_NIL);
    v = PARSE(&a, "#t\r\n");
    CHECK(v && v->type == RESP_INT && v->i == 1);
    v = PARSE(&a, "#f\r\n");
    CHECK(v && v->type == RESP_INT && v->i == 0);
    v = PARSE(&a, ",3.14\r\n");
    CHECK(v && v->type == RESP_BULK && resp_is(v, "3.14"));
    v = PARSE(&a, "(3492890328409238509324850943850943825024385\r\n");
    CHECK(v && v->type == RESP_BULK && v->len == 43);
    v = PARSE(&a, "=15\r\ntxt:Some string\r\n");
    CHECK(v && v->type == RESP_BULK && resp_is(v, "txt:Some string"));
    v = PARSE(&a, "!21\r\nSYNTAX invalid syntax\r\n");
    CHECK(v && v->type == RESP_ERR && v->len == 21);
    v = PARSE(&a, "%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n");
    CHECK(v && v->type == RESP_MAP && v->n == 2 && resp_is(&v->items[2], "second") &&
          v->items[3].i == 2);
    v = PARSE(&a, "~2\r\n+a\r\n+b\r\n");
    CHECK(v && v->type == RESP_ARRAY && v->n == 2);
    v = PARSE(&a, ">3\r\n$8\r\nsmessage\r\n$4\r\n{p}x\r\n$2\r\nhi\r\n");
    CHECK(v && v->type == RESP_PUSH && v->n == 3 && resp_is(&v->items[0], "smessage"));
    arena_free(&a);
}

/* What Redis 7.0 answers to the commands the backend sends. */
TEST(resp_redis_replies)
{
    struct arena a;
    arena_init(&a);
    /* XRANGE: [[id, [field, value, ...]], ...] */
    struct resp_value *v =
        PARSE(&a, "*2\r\n*2\r\n$3\r\n1-0\r\n*4\r\n$1\r\ne\r\n$3\r\nmsg\r\n$1\r\nd\r\n$2\r\n{}\r\n"
                  "*2\r\n$3\r\n2-0\r\n*0\r\n");
    CHECK(v && v->type == RESP_ARRAY && v->n == 2);
    CHECK(v && v->items[0].n == 2 && resp_is(&v->items[0].items[0], "1-0") &&
          v->items[0].items[1].n == 4 && resp_is(&v->items[0].items[1].items[3], "{}"));
    CHECK(v && v->items[1].items[1].type == RESP_ARRAY && v->items[1].items[1].n == 0);
    /* a RESP2 sharded pub/sub message on a subscribed connection */
    v = PARSE(&a, "*3\r\n$8\r\nsmessage\r\n$8\r\n{p:1:ab}\r\n$5\r\nhello\r\n");
    CHECK(v && v->n == 3 && resp_is(&v->items[2], "hello"));
    /* nested empty, nil inside */
    v = PARSE(&a, "*3\r\n*0\r\n$-1\r\n*1\r\n*1\r\n:7\r\n");
    CHECK(v && v->items[1].type == RESP_NIL && v->items[2].items[0].items[0].i == 7);
    arena_free(&a);
}

TEST(resp_pipelined_replies_one_by_one)
{
    const char s[] = "+OK\r\n:1\r\n$2\r\nab\r\n*1\r\n+x\r\n";
    size_t off = 0, used, count = 0;
    const char *err;
    while (off < sizeof s - 1) {
        CHECK_INT(resp_scan(s + off, sizeof s - 1 - off, NULL, &used, &err), RESP_OK);
        off += used;
        count++;
    }
    CHECK_INT(count, 4);
    CHECK_INT(off, sizeof s - 1);
}

TEST(resp_bulk_bound_lets_a_reader_wait)
{
    /* inside a long bulk the scan names its end, so a reader need not scan again per read */
    char head[] = "$100000\r\nabc";
    size_t used = 0;
    const char *err;
    CHECK_INT(resp_scan(head, sizeof head - 1, NULL, &used, &err), RESP_AGAIN);
    CHECK_INT(used, 9 + 100000 + 2);
}

TEST(resp_limits_hold)
{
    const char *err;
    struct resp_limits lim = {8, 4, 2};
    CHECK_INT(scan_rc("$8\r\n12345678\r\n", 14, &lim, &err), RESP_OK);
    CHECK_INT(scan_rc("$9\r\n123456789\r\n", 15, &lim, &err), RESP_ERROR);
    CHECK(err && strstr(err, "longer"));
    CHECK_INT(scan_rc("$9\r\n", 4, &lim, &err), RESP_ERROR); /* refused before the bytes come */
    CHECK_INT(scan_rc("*5\r\n", 4, &lim, &err), RESP_ERROR);
    CHECK(err && strstr(err, "elements"));
    CHECK_INT(scan_rc("*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n:3\r\n", 24, &lim, &err), RESP_ERROR);
    CHECK_INT(scan_rc("%3\r\n", 4, &lim, &err), RESP_ERROR); /* a map's 6 elements */
    CHECK_INT(scan_rc("*1\r\n*1\r\n:1\r\n", 12, &lim, &err), RESP_OK);
    CHECK_INT(scan_rc("*1\r\n*1\r\n*1\r\n:1\r\n", 16, &lim, &err), RESP_ERROR);
    CHECK(err && strstr(err, "deeper"));
    /* a status line with no end is refused once past the bulk limit, not buffered forever */
    CHECK_INT(scan_rc("+0123456789", 11, &lim, &err), RESP_ERROR);
    CHECK_INT(scan_rc("+0123", 5, &lim, &err), RESP_AGAIN);
    /* deep nesting under the default limits: refused, no stack overflow */
    static char deep[4 * 100000 + 8];
    size_t n = 0;
    for (int i = 0; i < 100000; i++) {
        memcpy(deep + n, "*1\r\n", 4);
        n += 4;
    }
    CHECK_INT(scan_rc(deep, n, NULL, &err), RESP_ERROR);
}

TEST(resp_malformed)
{
    const char *bad[] = {
        "?x\r\n",                    /* unknown type */
        ":12a\r\n",                  /* not a number */
        ":\r\n",                     /* empty number */
        ":99999999999999999999\r\n", /* overflow */
        ":-\r\n",                    /* a sign alone */
        "$-2\r\n",                   /* a length below -1 */
        "$x\r\n",                    /* not a length */
        "$3\r\nabcd\r\n",            /* no CRLF after the bulk */
        "+OK\rX",                    /* CR without LF */
        "+O\nK\r\n",                 /* bare LF */
        "#x\r\n",                    /* not a boolean */
        "_x\r\n",                    /* a null with text */
        "=2\r\nab\r\n",              /* verbatim without a format */
        "~-1\r\n",                   /* only * and $ have a null count */
        "!-1\r\n",
        ",\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *err = NULL;
        int rc = scan_rc(bad[i], strlen(bad[i]), NULL, &err);
        if (rc != RESP_ERROR || !err) test_fail(__FILE__, __LINE__, "case %zu: rc %d", i, rc);
    }
    const char *err;
    CHECK_INT(scan_rc("+O\0K\r\n", 6, NULL, &err), RESP_OK); /* a NUL in a status is data */
}

TEST(resp_commands)
{
    struct buf b;
    buf_init(&b);
    const char *argv[] = {"SET", "k", ""};
    resp_command(&b, 3, argv, NULL);
    resp_begin(&b, 2);
    resp_arg_str(&b, "INCRBY");
    resp_arg_int(&b, -9223372036854775807LL - 1);
    resp_begin(&b, 1);
    resp_arg(&b, "a\r\n\0", 4);
    const char want[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
                        "*2\r\n$6\r\nINCRBY\r\n$20\r\n-9223372036854775808\r\n"
                        "*1\r\n$4\r\na\r\n\0\r\n";
    CHECK_INT(buf_unread(&b), sizeof want - 1);
    CHECK_MEM(buf_head(&b), want, sizeof want - 1);
    /* and a command parses as RESP (an array of bulks) */
    struct arena a;
    arena_init(&a);
    struct resp_value *v;
    size_t used;
    const char *err;
    CHECK_INT(resp_parse((const char *)buf_head(&b), buf_unread(&b), NULL, &a, &v, &used, &err),
              RESP_OK);
    CHECK(v->n == 3 && resp_is(&v->items[0], "SET") && v->items[2].len == 0);
    arena_free(&a);
    buf_free(&b);
}
