/* Unit tests for src/proto/http1.c: real browser requests, byte-at-a-time feeding, every error
 * status (400, 414, 431, 501, 505), the framing headers, the header helpers, percent-decoding,
 * query parameters and CppComet's /ws/ parameters-in-the-path URLs. */
#include "test.h"

#include <stdint.h>

#include "core/alloc.h"
#include "proto/http1.h"

/* An exact-length heap copy, so that ASan catches any read past the end. */
static uint8_t *dup_exact(const void *p, size_t n)
{
    uint8_t *q = xmalloc(n ? n : 1);
    if (n) memcpy(q, p, n);
    return q;
}

static int parse_with(const char *s, size_t n, const struct http1_limits *lim,
                      struct http1_request *req, const char **err)
{
    uint8_t *copy = dup_exact(s, n);
    int rc = http1_parse_request(copy, n, lim, req, err);
    xfree(copy);
    return rc;
}

/* Parses s (kept alive: the request points into it) and checks it is accepted whole. */
static int parse_ok(const char *s, struct http1_request *req, int line)
{
    const char *err = NULL;
    size_t n = strlen(s);
    int rc = http1_parse_request((const uint8_t *)s, n, NULL, req, &err);
    if (rc != HTTP1_OK) {
        test_fail(__FILE__, line, "parse failed: rc %d status %d %s", rc, req->status,
                  err ? err : "");
        return 0;
    }
    return 1;
}

/* The status of a refused request (and that a reason was given). */
static int parse_status(const char *s, size_t n, const struct http1_limits *lim, int line)
{
    struct http1_request req;
    const char *err = NULL;
    int rc = parse_with(s, n, lim, &req, &err);
    if (rc != HTTP1_ERROR) {
        test_fail(__FILE__, line, "rc %d, expected HTTP1_ERROR", rc);
        return 0;
    }
    if (!err || !err[0]) test_fail(__FILE__, line, "no reason given");
    return req.status;
}

#define STATUS(s)        parse_status((s), strlen(s), NULL, __LINE__)
#define STATUS_LIM(s, l) parse_status((s), strlen(s), (l), __LINE__)
#define REQUIRE(x)                                                                                 \
    do {                                                                                           \
        if (!(x)) return;                                                                          \
    } while (0)
#define CHECK_SPAN(p, n, str)                                                                      \
    do {                                                                                           \
        const char *p_ = (p);                                                                      \
        size_t n_ = (n), m_ = strlen(str);                                                         \
        if (!p_ || n_ != m_ || memcmp(p_, (str), m_) != 0)                                         \
            test_fail(__FILE__, __LINE__, "%s is \"%.*s\", expected \"%s\"", #p, (int)n_,          \
                      p_ ? p_ : "(null)", (str));                                                  \
    } while (0)

/* Chrome 120's upgrade request to a CppComet URL, as captured. */
static const char chrome_upgrade[] =
    "GET /ws/sesion=0c3a6a5a8b2e4ddb&myid=2&devid=0&v=4.09&uuid=9b1d2f3e4a5b6c7d8e9f0a1b2c3d4e5f"
    "&api=js HTTP/1.1\r\n"
    "Host: comet.example.com\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: https://app.example.com\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "\r\n";

/* ---- accepted requests ----------------------------------------------------------------------- */

TEST(http1_chrome_websocket_upgrade)
{
    struct http1_request req;
    REQUIRE(parse_ok(chrome_upgrade, &req, __LINE__));
    CHECK_INT(req.head_len, strlen(chrome_upgrade));
    CHECK_SPAN(req.method, req.method_len, "GET");
    CHECK_SPAN(req.path, req.path_len,
               "/ws/sesion=0c3a6a5a8b2e4ddb&myid=2&devid=0&v=4.09&uuid="
               "9b1d2f3e4a5b6c7d8e9f0a1b2c3d4e5f&api=js");
    CHECK(req.query == NULL);
    CHECK_INT(req.target_len, req.path_len);
    CHECK_INT(req.version_minor, 1);
    CHECK_INT(req.n_headers, 12);
    CHECK_INT(req.status, 0);
    CHECK(!req.chunked);
    CHECK_SPAN(req.headers[0].name, req.headers[0].name_len, "Host");
    CHECK_SPAN(req.headers[0].value, req.headers[0].value_len, "comet.example.com");

    size_t len = 0;
    const char *key = http1_header(&req, "sec-websocket-key", &len);
    CHECK_SPAN(key, len, "dGhlIHNhbXBsZSBub25jZQ==");
    key = http1_header(&req, "SEC-WEBSOCKET-KEY", NULL);
    CHECK(key != NULL);
    CHECK(http1_header_has_token(&req, "Connection", "upgrade"));
    CHECK(http1_header_has_token(&req, "upgrade", "WebSocket"));
    CHECK(http1_header_has_token(&req, "Accept-Encoding", "br"));
    CHECK(!http1_header_has_token(&req, "Accept-Encoding", "gzip, deflate"));
    CHECK(http1_keep_alive(&req));
    uint64_t cl = 99;
    CHECK_INT(http1_content_length(&req, &cl), HTTP1_OK);
    CHECK_INT(cl, 0);

    const char *params;
    size_t plen;
    CHECK(http1_path_params(req.path, req.path_len, &params, &plen));
    const char *v;
    size_t vlen;
    CHECK(http1_query_param(params, plen, "sesion", &v, &vlen));
    CHECK_SPAN(v, vlen, "0c3a6a5a8b2e4ddb");
    CHECK(http1_query_param(params, plen, "api", &v, &vlen));
    CHECK_SPAN(v, vlen, "js");
}

TEST(http1_firefox_upgrade_keep_alive_upgrade)
{
    /* Firefox sends "Connection: keep-alive, Upgrade" */
    static const char ff[] =
        "GET /comet-server/ws/sesion=x&myid=0&devid=1&v=4.09&api=js HTTP/1.1\r\n"
        "Host: localhost:8087\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 "
        "Firefox/121.0\r\n"
        "Accept: */*\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Origin: http://localhost:8080\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
        "Connection: keep-alive, Upgrade\r\n"
        "Sec-Fetch-Dest: websocket\r\n"
        "Pragma: no-cache\r\n"
        "Upgrade: websocket\r\n\r\n";
    struct http1_request req;
    REQUIRE(parse_ok(ff, &req, __LINE__));
    CHECK(http1_header_has_token(&req, "connection", "Upgrade"));
    CHECK(http1_header_has_token(&req, "connection", "keep-alive"));
    CHECK(!http1_header_has_token(&req, "connection", "close"));
    const char *params;
    size_t plen;
    CHECK(http1_path_params(req.path, req.path_len, &params, &plen));
    CHECK_SPAN(params, plen, "sesion=x&myid=0&devid=1&v=4.09&api=js");
}

TEST(http1_byte_at_a_time)
{
    static const char *const reqs[] = {
        chrome_upgrade,
        "GET /info HTTP/1.0\n\n",
        "\r\n\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Spaces: \t \r\n\r\n",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        size_t n = strlen(reqs[i]);
        struct http1_request req;
        const char *err = NULL;
        size_t head = 0;
        for (size_t k = 0; k <= n; k++) {
            int rc = parse_with(reqs[i], k, NULL, &req, &err);
            if (rc == HTTP1_OK) {
                head = req.head_len;
                CHECK_INT(head, k); /* complete exactly at the last byte of the head */
                break;
            }
            if (rc != HTTP1_AGAIN) {
                test_fail(__FILE__, __LINE__, "request %zu, prefix %zu: rc %d (%s)", i, k, rc,
                          err ? err : "");
                break;
            }
        }
        CHECK(head > 0);
        /* with the whole input (a body may follow) the head length is the same */
        CHECK_INT(parse_with(reqs[i], n, NULL, &req, &err), HTTP1_OK);
        CHECK_INT(req.head_len, head);
    }
}

TEST(http1_bare_lf_and_leading_empty_lines)
{
    struct http1_request req;
    static const char lf[] = "\n\r\nGET /a?b HTTP/1.1\nHost: h\nX:  y \n\n";
    REQUIRE(parse_ok(lf, &req, __LINE__));
    CHECK_INT(req.head_len, strlen(lf));
    CHECK_SPAN(req.method, req.method_len, "GET");
    CHECK_SPAN(req.path, req.path_len, "/a");
    CHECK_SPAN(req.query, req.query_len, "b");
    CHECK_INT(req.n_headers, 2);
    CHECK_SPAN(req.headers[1].value, req.headers[1].value_len, "y");
    /* mixed endings */
    REQUIRE(parse_ok("GET / HTTP/1.1\r\nHost: h\n\r\n", &req, __LINE__));
    CHECK_INT(req.head_len, 26);
}

TEST(http1_target_path_and_query)
{
    struct http1_request req;
    REQUIRE(parse_ok("GET /a/b?c=1&d HTTP/1.1\r\nHost: h\r\n\r\n", &req, __LINE__));
    CHECK_SPAN(req.target, req.target_len, "/a/b?c=1&d");
    CHECK_SPAN(req.path, req.path_len, "/a/b");
    CHECK_SPAN(req.query, req.query_len, "c=1&d");
    REQUIRE(parse_ok("GET /a? HTTP/1.1\r\nHost: h\r\n\r\n", &req, __LINE__));
    CHECK(req.query != NULL);
    CHECK_INT(req.query_len, 0);
    REQUIRE(parse_ok("GET /a?b?c HTTP/1.1\r\nHost: h\r\n\r\n", &req, __LINE__));
    CHECK_SPAN(req.query, req.query_len, "b?c");
    REQUIRE(parse_ok("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &req, __LINE__));
    CHECK_SPAN(req.path, req.path_len, "/");
    CHECK(req.query == NULL);
    /* visible ASCII that browsers may leave unescaped */
    REQUIRE(parse_ok("GET /a|b^c{d}\"e`%20 HTTP/1.1\r\nHost: h\r\n\r\n", &req, __LINE__));
}

TEST(http1_options_cors_preflight)
{
    struct http1_request req;
    REQUIRE(parse_ok("OPTIONS /comet-server/info HTTP/1.1\r\n"
                     "Host: comet.example.com\r\n"
                     "Access-Control-Request-Method: POST\r\n"
                     "Access-Control-Request-Headers: content-type\r\n"
                     "Origin: https://app.example.com\r\n\r\n",
                     &req, __LINE__));
    CHECK_SPAN(req.method, req.method_len, "OPTIONS");
    REQUIRE(parse_ok("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &req, __LINE__));
    CHECK_SPAN(req.path, req.path_len, "*");
    CHECK_INT(STATUS("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    CHECK_INT(STATUS("OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    CHECK_INT(STATUS("OPTIONS */ HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}

TEST(http1_pipelined_and_body)
{
    static const char two[] = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                              "GET /info HTTP/1.1\r\nHost: h\r\n\r\n";
    struct http1_request req;
    REQUIRE(parse_ok(two, &req, __LINE__));
    uint64_t cl = 0;
    CHECK_INT(http1_content_length(&req, &cl), HTTP1_OK);
    CHECK_INT(cl, 5);
    CHECK_MEM(two + req.head_len, "hello", 5);
    size_t next = req.head_len + 5;
    const char *err;
    CHECK_INT(
        http1_parse_request((const uint8_t *)two + next, strlen(two) - next, NULL, &req, &err),
        HTTP1_OK);
    CHECK_SPAN(req.path, req.path_len, "/info");
}

TEST(http1_header_values_trimmed_and_obs_text)
{
    struct http1_request req;
    REQUIRE(parse_ok("GET / HTTP/1.1\r\nHost:h\r\nX-A:   a b \t \r\nX-B:\r\nX-C: \t\r\n"
                     "X-D: caf\xc3\xa9\r\nX-E:\t!~\r\n\r\n",
                     &req, __LINE__));
    CHECK_INT(req.n_headers, 6);
    size_t n;
    CHECK_SPAN(http1_header(&req, "host", &n), n, "h");
    CHECK_SPAN(http1_header(&req, "x-a", &n), n, "a b");
    CHECK_SPAN(http1_header(&req, "x-b", &n), n, "");
    CHECK_SPAN(http1_header(&req, "x-c", &n), n, "");
    CHECK_SPAN(http1_header(&req, "x-d", &n), n, "caf\xc3\xa9");
    CHECK_SPAN(http1_header(&req, "x-e", &n), n, "!~");
    n = 7;
    CHECK(http1_header(&req, "x-missing", &n) == NULL);
    CHECK_INT(n, 0);
    CHECK(http1_header(&req, "x-", NULL) == NULL); /* a prefix is not a match */
}

TEST(http1_header_first_match_and_tokens)
{
    struct http1_request req;
    REQUIRE(parse_ok("GET / HTTP/1.1\r\nHost: h\r\nX: one\r\nx: two\r\n"
                     "Connection: ,, keep-alive ,\tUpgrade2\r\nconnection: UPGRADE\r\n\r\n",
                     &req, __LINE__));
    size_t n;
    CHECK_SPAN(http1_header(&req, "X", &n), n, "one");
    CHECK(http1_header_has_token(&req, "Connection", "upgrade")); /* in the second field */
    CHECK(http1_header_has_token(&req, "Connection", "Keep-Alive"));
    CHECK(http1_header_has_token(&req, "Connection", "upgrade2"));
    CHECK(!http1_header_has_token(&req, "Connection", "upgrade3"));
    CHECK(!http1_header_has_token(&req, "Connection", "keep"));
    CHECK(!http1_header_has_token(&req, "Connection", ""));
    CHECK(!http1_header_has_token(&req, "Upgrade", "websocket"));
}

TEST(http1_keep_alive_rules)
{
    struct http1_request req;
    REQUIRE(parse_ok("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &req, __LINE__));
    CHECK(http1_keep_alive(&req));
    REQUIRE(parse_ok("GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n", &req, __LINE__));
    CHECK(!http1_keep_alive(&req));
    REQUIRE(parse_ok("GET / HTTP/1.0\r\n\r\n", &req, __LINE__));
    CHECK_INT(req.version_minor, 0);
    CHECK(!http1_keep_alive(&req));
    REQUIRE(parse_ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &req, __LINE__));
    CHECK(http1_keep_alive(&req));
    REQUIRE(parse_ok("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", &req, __LINE__));
    CHECK(!http1_keep_alive(&req));
}

/* ---- Content-Length and Transfer-Encoding --------------------------------------------------- */

TEST(http1_content_length_strict)
{
    struct http1_request req;
    uint64_t n = 0;
    REQUIRE(parse_ok("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &req, __LINE__));
    CHECK_INT(http1_content_length(&req, &n), HTTP1_OK);
    CHECK_INT(n, 0);
    REQUIRE(parse_ok("POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 9223372036854775807\r\n\r\n",
                     &req, __LINE__));
    CHECK_INT(http1_content_length(&req, &n), HTTP1_OK);
    CHECK(n == UINT64_C(9223372036854775807));
    /* identical duplicates are one value (RFC 9110 §8.6) */
    REQUIRE(parse_ok("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nContent-Length: 012\r\n"
                     "\r\n",
                     &req, __LINE__));
    CHECK_INT(http1_content_length(&req, &n), HTTP1_OK);
    CHECK_INT(n, 12);

    static const char *const bad[] = {
        "abc", "-1", "+5", "1 2", "5, 5", "0x10", "9223372036854775808", "99999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char r[200];
        snprintf(r, sizeof r, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %s\r\n\r\n", bad[i]);
        CHECK_INT(STATUS(r), 400);
    }
    CHECK_INT(STATUS("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n"), 400);
    CHECK_INT(STATUS("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
                     "\r\n"),
              400);
    /* the helper on its own, with a hand-built request */
    memset(&req, 0, sizeof req);
    req.n_headers = 2;
    req.headers[0] = (struct http1_header){"Content-Length", 14, "7", 1};
    req.headers[1] = (struct http1_header){"CONTENT-LENGTH", 14, "8", 1};
    CHECK_INT(http1_content_length(&req, &n), HTTP1_ERROR);
}

TEST(http1_transfer_encoding)
{
    struct http1_request req;
    REQUIRE(parse_ok("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n", &req,
                     __LINE__));
    CHECK(req.chunked);
    CHECK_INT(STATUS("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), 501);
    CHECK_INT(STATUS("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
              501);
    CHECK_INT(STATUS("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n"),
              501);
    CHECK_INT(STATUS("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n"), 501);
    /* smuggling shapes */
    CHECK_INT(STATUS("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                     "Content-Length: 3\r\n\r\n"),
              400);
    CHECK_INT(STATUS("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    CHECK_INT(STATUS("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n"), 400);
}

/* ---- errors ------------------------------------------------------------------------------ */

TEST(http1_malformed_is_400)
{
#define B(s)                                                                                       \
    {                                                                                              \
        s, sizeof s - 1                                                                            \
    }
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        B("G(ET / HTTP/1.1\r\nHost: h\r\n\r\n"),              /* non-token method */
        B(" / HTTP/1.1\r\nHost: h\r\n\r\n"),                  /* empty method */
        B("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"),              /* two spaces */
        B("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n"),              /* tab separator */
        B("GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"),       /* absolute-form */
        B("GET h/ HTTP/1.1\r\nHost: h\r\n\r\n"),              /* no leading slash */
        B("GET /\r\n\r\n"),                                   /* HTTP/0.9 */
        B("GET / \r\nHost: h\r\n\r\n"),                       /* empty version */
        B("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"),              /* trailing space */
        B("GET / http/1.1\r\nHost: h\r\n\r\n"),               /* lowercase */
        B("GET / HTTP/1.x\r\nHost: h\r\n\r\n"),               /* non-digit */
        B("GET / HTTP/11\r\nHost: h\r\n\r\n"),                /* no dot */
        B("GET / HTTP/1.10\r\nHost: h\r\n\r\n"),              /* two digits */
        B("GET / HTTP/1.1\rHost: h\r\n\r\n"),                 /* bare CR */
        B("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n"),          /* DEL in the target */
        B("GET /a\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"),      /* raw UTF-8 in the target */
        B("GET / HTTP/1.1\r\nHo st: h\r\n\r\n"),              /* space in a name */
        B("GET / HTTP/1.1\r\nHost : h\r\n\r\n"),              /* space before the colon */
        B("GET / HTTP/1.1\r\nHost\r\n\r\n"),                  /* no colon */
        B("GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n"),        /* empty name */
        B("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n"),  /* control byte in a value */
        B("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fz\r\n\r\n"),  /* DEL in a value */
        B("GET / HTTP/1.1\r\nHost: h\r\nX: a\rz\r\n\r\n"),    /* bare CR in a value */
        B("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"), /* obs-fold */
        B("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n"),
        B("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), /* whitespace before the first field */
        B("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n"),
        B("GET / HTTP/1.1\r\n\r\n"),                          /* 1.1 without Host */
        B("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),    /* two Hosts */
        B("GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n"),    /* two Hosts in 1.0 too */
        B("\r\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),         /* bare CR in a leading empty line */
        B("GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n"),           /* NUL in the target */
        B("GET / HTTP/1.1\r\nHost: h\r\nX\0: v\r\n\r\n"),     /* NUL in a name */
        B("GET / HTTP/1.1\r\nHost: h\r\nX: v\0v\r\n\r\n"),    /* NUL in a value */
        B("GET / HTTP/1.1\r\nHost: h\r\nX{}: v\r\n\r\n"),     /* separators in a name */
        B("GET / HTTP/1.1\r\nHost: h\r\nX:\x1b[31m\r\n\r\n"), /* escape sequences */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = parse_status(bad[i].s, bad[i].n, NULL, __LINE__);
        if (st != 400) test_fail(__FILE__, __LINE__, "case %zu: status %d, expected 400", i, st);
    }
#undef B
}

TEST(http1_errors_reported_early)
{
    /* a bad request line is refused as soon as the offending byte arrives, without waiting for a
     * head that may never end */
    CHECK_INT(STATUS("G(E"), 400);
    CHECK_INT(STATUS("GET x"), 400);
    CHECK_INT(STATUS("GET / HTTP/2\r"), 400);
    CHECK_INT(STATUS("GET / HTTPS"), 400);
    CHECK_INT(STATUS("GET / HTTP/1.1\r\n "), 400);
    CHECK_INT(STATUS("GET / HTTP/1.1\r\nX: \x01"), 400);
    CHECK_INT(STATUS("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), 400); /* a TLS ClientHello */
    struct http1_request req;
    const char *err;
    CHECK_INT(parse_with("GET / HTTP/1.1\r\nHost: h\r\n", 25, NULL, &req, &err), HTTP1_AGAIN);
    CHECK_INT(parse_with("", 0, NULL, &req, &err), HTTP1_AGAIN);
    CHECK_INT(parse_with("\r\n", 2, NULL, &req, &err), HTTP1_AGAIN);
    CHECK_INT(parse_with("GET / HTTP/1.1\r", 15, NULL, &req, &err), HTTP1_AGAIN);
}

TEST(http1_uri_too_long_is_414)
{
    struct http1_limits lim = {.max_head_bytes = 8192, .max_uri = 16, .max_headers = 64};
    struct http1_request req;
    const char *err;
    /* exactly max_uri bytes */
    CHECK_INT(parse_with("GET /234567890123456 HTTP/1.1\r\nHost: h\r\n\r\n", 43, &lim, &req, &err),
              HTTP1_OK);
    CHECK_INT(req.target_len, 16);
    CHECK_INT(STATUS_LIM("GET /2345678901234567 HTTP/1.1\r\nHost: h\r\n\r\n", &lim), 414);
    /* early: before the request line ends */
    CHECK_INT(STATUS_LIM("GET /2345678901234567", &lim), 414);
    CHECK_INT(parse_with("GET /234567890123456", 20, &lim, &req, &err), HTTP1_AGAIN);
    /* the default bound */
    size_t n = HTTP1_DEFAULT_MAX_URI + 64;
    char *big = xmalloc(n + 1);
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', n - 5);
    big[n] = '\0';
    CHECK_INT(parse_status(big, n, NULL, __LINE__), 414);
    xfree(big);
}

TEST(http1_head_too_large_is_431)
{
    struct http1_limits lim = {.max_head_bytes = 64, .max_uri = 1024, .max_headers = 3};
    /* exactly 64 bytes, complete: accepted */
    static const char fits[] =
        "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: 0123456789012345678901234567\r\n\r\n";
    CHECK_INT(strlen(fits), 64);
    struct http1_request req;
    const char *err;
    CHECK_INT(parse_with(fits, 64, &lim, &req, &err), HTTP1_OK);
    /* one byte more */
    CHECK_INT(
        STATUS_LIM("GET / HTTP/1.1\r\nHost: h\r\nX-Pad: 01234567890123456789012345678\r\n\r\n",
                   &lim),
        431);
    /* incomplete and over the limit: refused at once, not AGAIN */
    CHECK_INT(
        STATUS_LIM("GET / HTTP/1.1\r\nHost: h\r\nX-Pad: 01234567890123456789012345678901234", &lim),
        431);
    CHECK_INT(parse_with(fits, 63, &lim, &req, &err), HTTP1_AGAIN);
    /* a complete head within the limit followed by a body beyond it is fine */
    static const char body[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 40\r\n\r\n"
                               "0123456789012345678901234567890123456789";
    CHECK_INT(parse_with(body, strlen(body), &lim, &req, &err), HTTP1_OK);
    CHECK_INT(req.head_len, 48);

    /* too many fields: 3 fit, a 4th is 431 */
    lim.max_head_bytes = 8192;
    CHECK_INT(parse_with("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", 39, &lim, &req, &err),
              HTTP1_OK);
    CHECK_INT(STATUS_LIM("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &lim), 431);
    CHECK_INT(STATUS_LIM("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC", &lim), 431);

    /* max_headers above the struct's capacity is clamped to HTTP1_MAX_HEADERS */
    lim.max_headers = 1000;
    char many[4096];
    size_t n = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 1; i < HTTP1_MAX_HEADERS; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "X%d: %d\r\n", i, i);
    n += (size_t)snprintf(many + n, sizeof many - n, "\r\n");
    CHECK_INT(parse_with(many, n, &lim, &req, &err), HTTP1_OK);
    CHECK_INT(req.n_headers, HTTP1_MAX_HEADERS);
    n -= 2;
    n += (size_t)snprintf(many + n, sizeof many - n, "One-Too-Many: 1\r\n\r\n");
    CHECK_INT(parse_status(many, n, &lim, __LINE__), 431);
    CHECK_INT(parse_status(many, n, NULL, __LINE__), 431);

    /* the default head bound */
    size_t big_n = HTTP1_DEFAULT_MAX_HEAD_BYTES + 1;
    char *big = xmalloc(big_n);
    memcpy(big, "GET / HTTP/1.1\r\nHost: h\r\nX: ", 28);
    memset(big + 28, 'v', big_n - 28);
    CHECK_INT(parse_status(big, big_n, NULL, __LINE__), 431);
    CHECK_INT(parse_with(big, big_n - 1, NULL, &req, &err), HTTP1_AGAIN);
    xfree(big);
}

TEST(http1_version_not_supported_is_505)
{
    CHECK_INT(STATUS("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
    CHECK_INT(STATUS("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 505);
    CHECK_INT(STATUS("GET / HTTP/0.9\r\n\r\n"), 505);
    CHECK_INT(STATUS("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 400); /* h2 preface: "*" not OPTIONS */
    struct http1_request req;
    REQUIRE(parse_ok("GET / HTTP/1.0\r\n\r\n", &req, __LINE__));
    CHECK_INT(req.version_minor, 0);
}

/* ---- URL helpers --------------------------------------------------------------------------- */

TEST(http1_percent_decode_rules)
{
    char out[64];
    size_t n = 0;
    CHECK_INT(http1_percent_decode("%41%62c", 7, out, &n), HTTP1_OK);
    CHECK_SPAN(out, n, "Abc");
    CHECK_INT(http1_percent_decode("a+b%2B%2b", 9, out, &n), HTTP1_OK);
    CHECK_SPAN(out, n, "a+b++");
    CHECK_INT(http1_percent_decode("caf%C3%a9", 9, out, &n), HTTP1_OK);
    CHECK_SPAN(out, n, "caf\xc3\xa9");
    CHECK_INT(http1_percent_decode("", 0, out, &n), HTTP1_OK);
    CHECK_INT(n, 0);
    CHECK_INT(http1_percent_decode("%zz", 3, out, &n), HTTP1_ERROR);
    CHECK_INT(http1_percent_decode("%4g", 3, out, &n), HTTP1_ERROR);
    CHECK_INT(http1_percent_decode("ab%4", 4, out, &n), HTTP1_ERROR);
    CHECK_INT(http1_percent_decode("ab%", 3, out, &n), HTTP1_ERROR);
    CHECK_INT(http1_percent_decode("a%00b", 5, out, &n), HTTP1_ERROR);
    CHECK_INT(http1_percent_decode("a\0b", 3, out, &n), HTTP1_ERROR);
    /* the length is honoured: "%41" cut after 2 bytes is truncated */
    CHECK_INT(http1_percent_decode("%41", 2, out, &n), HTTP1_ERROR);
    /* in place */
    char s[] = "%2Fws%2Fsesion%3Dabc";
    CHECK_INT(http1_percent_decode(s, strlen(s), s, &n), HTTP1_OK);
    CHECK_SPAN(s, n, "/ws/sesion=abc");
}

TEST(http1_query_param_lookup)
{
    static const char q[] = "a=1&bb=22&c&&d=&e=x=y&a=2&=z";
    size_t n = strlen(q);
    const char *v = NULL;
    size_t vl = 99;
    CHECK(http1_query_param(q, n, "a", &v, &vl));
    CHECK_SPAN(v, vl, "1"); /* the first one wins */
    CHECK(http1_query_param(q, n, "bb", &v, &vl));
    CHECK_SPAN(v, vl, "22");
    CHECK(http1_query_param(q, n, "c", &v, &vl));
    CHECK_INT(vl, 0);
    CHECK(http1_query_param(q, n, "d", &v, &vl));
    CHECK_INT(vl, 0);
    CHECK(http1_query_param(q, n, "e", &v, &vl));
    CHECK_SPAN(v, vl, "x=y");
    CHECK(!http1_query_param(q, n, "b", &v, &vl));
    CHECK(!http1_query_param(q, n, "x", &v, &vl));
    CHECK(http1_query_param(q, n, "", &v, &vl)); /* "=z" has an empty name */
    CHECK_SPAN(v, vl, "z");
    CHECK(!http1_query_param(NULL, 0, "a", &v, &vl));
    CHECK(!http1_query_param("", 0, "", &v, &vl));
    /* the length is honoured */
    CHECK(!http1_query_param("a=1&bb=2", 5, "bb", &v, &vl));
    CHECK(http1_query_param("a=1&bb=2", 6, "bb", &v, &vl));
    CHECK_INT(vl, 0);
}

TEST(http1_cppcomet_path_params)
{
    static const char *const ok[][2] = {
        {"/ws/sesion=abc&myid=2&devid=0&v=4.09&uuid=XYZ&api=js",
         "sesion=abc&myid=2&devid=0&v=4.09&uuid=XYZ&api=js"},
        {"//ws/sesion=abc&myid=2", "sesion=abc&myid=2"},
        {"/comet-server/ws/sesion=abc&myid=2", "sesion=abc&myid=2"},
        {"//comet-server/ws/sesion=abc&myid=2", "sesion=abc&myid=2"},
        {"/ws", ""},
        {"/ws/", ""},
        {"/comet-server/ws", ""},
        {"/ws/sesion=a/ws/b&myid=2", "sesion=a/ws/b&myid=2"}, /* the first /ws/ counts */
        {"/wsx/ws/a=b", "a=b"},
        {"/ws//a=b", "/a=b"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        const char *p = NULL;
        size_t n = 99;
        char *copy = (char *)dup_exact(ok[i][0], strlen(ok[i][0]));
        if (!http1_path_params(copy, strlen(ok[i][0]), &p, &n)) {
            test_fail(__FILE__, __LINE__, "\"%s\" is not a /ws path", ok[i][0]);
        } else {
            CHECK_SPAN(p, n, ok[i][1]);
        }
        xfree(copy);
    }
    static const char *const no[] = {
        "/", "/info", "/wsx", "/w", "", "/ws-old/a=b", "/x=/ws/a=b", "/a&b/ws/c", "ws/a=b", "/WS/a",
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        const char *p;
        size_t n;
        if (http1_path_params(no[i], strlen(no[i]), &p, &n))
            test_fail(__FILE__, __LINE__, "\"%s\" taken as a /ws path", no[i]);
    }
}

TEST(http1_cppcomet_js_client_url)
{
    /* what api/CometServerApi.js getUrl() builds, behind the /comet-server mount */
    struct http1_request req;
    REQUIRE(parse_ok("GET /comet-server/ws/sesion=eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoyfQ.sig"
                     "&myid=2&devid=15&v=4.09&uuid=0123456789abcdef0123456789abcdef&api=js "
                     "HTTP/1.1\r\nHost: app.comet-server.ru\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     &req, __LINE__));
    const char *params, *v;
    size_t plen, vl;
    REQUIRE(http1_path_params(req.path, req.path_len, &params, &plen));
    static const char *const want[][2] = {
        {"sesion", "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoyfQ.sig"},
        {"myid", "2"},
        {"devid", "15"},
        {"v", "4.09"},
        {"uuid", "0123456789abcdef0123456789abcdef"},
        {"api", "js"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!http1_query_param(params, plen, want[i][0], &v, &vl)) {
            test_fail(__FILE__, __LINE__, "no %s", want[i][0]);
            continue;
        }
        CHECK_SPAN(v, vl, want[i][1]);
    }
    /* a query string is kept apart from the path parameters */
    REQUIRE(parse_ok("GET /ws/sesion=a&myid=1?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", &req, __LINE__));
    REQUIRE(http1_path_params(req.path, req.path_len, &params, &plen));
    CHECK_SPAN(params, plen, "sesion=a&myid=1");
    CHECK_SPAN(req.query, req.query_len, "x=1");
}
