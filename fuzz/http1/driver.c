/* fuzz/http1: libFuzzer target for the HTTP/1.1 request-head parser (src/proto/http1.c). Parses
 * every input under the default limits and under small ones, checks the contract's invariants
 * (every pointer inside the head, counts within the limits, error statuses from the documented
 * set, a complete head found again from its own bytes, prefixes of an incomplete head incomplete
 * too), then runs every helper over what was parsed, and the URL helpers over the raw input. */
#include "proto/http1.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ENSURE(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

static volatile size_t sink;

static void touch(const uint8_t *base, size_t head_len, const char *p, size_t n)
{
    ENSURE(p != NULL);
    ENSURE((const uint8_t *)p >= base && (const uint8_t *)p + n <= base + head_len);
    for (size_t i = 0; i < n; i++)
        sink += (unsigned char)p[i];
}

static char *cstr(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void url_helpers(const char *s, size_t n)
{
    char *out = malloc(n ? n : 1);
    if (!out) abort();
    size_t out_len = 0;
    if (http1_percent_decode(s, n, out, &out_len) == HTTP1_OK) {
        ENSURE(out_len <= n);
        ENSURE(memchr(out, '\0', out_len) == NULL);
    }
    free(out);

    static const char *const names[] = {"sesion", "myid", "devid", "v", "uuid", "api", ""};
    const char *tail = s;
    size_t tail_len = n;
    if (http1_path_params(s, n, &tail, &tail_len)) ENSURE(tail >= s && tail + tail_len == s + n);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v;
        size_t vl;
        if (http1_query_param(tail, tail_len, names[i], &v, &vl)) {
            ENSURE(v >= tail && v + vl <= tail + tail_len);
            ENSURE(memchr(v, '&', vl) == NULL);
        }
    }
}

static void check_ok(const uint8_t *data, size_t size, const struct http1_limits *lim,
                     const struct http1_request *req)
{
    size_t head = req->head_len;
    ENSURE(head > 0 && head <= size && head <= lim->max_head_bytes);
    ENSURE(req->status == 0);
    ENSURE(req->version_minor == 0 || req->version_minor == 1);
    ENSURE(req->method_len > 0);
    touch(data, head, req->method, req->method_len);
    ENSURE(req->target_len > 0 && req->target_len <= lim->max_uri);
    touch(data, head, req->target, req->target_len);
    touch(data, head, req->path, req->path_len);
    ENSURE(req->path == req->target);
    if (req->query) {
        touch(data, head, req->query, req->query_len);
        ENSURE(req->path_len + 1 + req->query_len == req->target_len);
    } else {
        ENSURE(req->path_len == req->target_len);
    }
    ENSURE(req->path[0] == '/' || (req->path[0] == '*' && req->path_len == 1));
    ENSURE(req->n_headers <= lim->max_headers && req->n_headers <= HTTP1_MAX_HEADERS);
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct http1_header *h = &req->headers[i];
        ENSURE(h->name_len > 0);
        touch(data, head, h->name, h->name_len);
        touch(data, head, h->value, h->value_len);
        if (h->value_len) {
            ENSURE(h->value[0] != ' ' && h->value[0] != '\t');
            ENSURE(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
        }
        char *name = cstr(h->name, h->name_len);
        size_t vl = 0;
        const char *v = http1_header(req, name, &vl);
        ENSURE(v != NULL);
        touch(data, head, v, vl);
        char *value = cstr(h->value, h->value_len);
        sink += http1_header_has_token(req, name, value);
        free(value);
        free(name);
    }
    uint64_t cl = 0;
    ENSURE(http1_content_length(req, &cl) == HTTP1_OK);
    ENSURE(cl <= UINT64_C(0x7fffffffffffffff));
    sink += (size_t)cl + http1_keep_alive(req) + req->chunked;
    sink += http1_header_has_token(req, "Connection", "upgrade");
    url_helpers(req->path, req->path_len);
    if (req->query) url_helpers(req->query, req->query_len);

    /* the head alone parses to the same head */
    uint8_t *copy = malloc(head);
    if (!copy) abort();
    memcpy(copy, data, head);
    struct http1_request again;
    const char *err = NULL;
    ENSURE(http1_parse_request(copy, head, lim, &again, &err) == HTTP1_OK);
    ENSURE(again.head_len == head && again.n_headers == req->n_headers);
    /* and every strict prefix of it is incomplete */
    size_t cuts[] = {head - 1, head / 2, 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        if (cuts[i] >= head) continue;
        ENSURE(http1_parse_request(copy, cuts[i], lim, &again, &err) == HTTP1_AGAIN);
    }
    free(copy);
}

static void run(const uint8_t *data, size_t size, const struct http1_limits *lim)
{
    struct http1_request *req = malloc(sizeof *req);
    if (!req) abort();
    const char *err = NULL;
    int rc = http1_parse_request(data, size, lim, req, &err);
    if (rc == HTTP1_OK) {
        check_ok(data, size, lim, req);
    } else if (rc == HTTP1_AGAIN) {
        ENSURE(size <= lim->max_head_bytes);
        ENSURE(req->status == 0);
        /* a prefix of an incomplete head is incomplete too */
        struct http1_request *pre = malloc(sizeof *pre);
        if (!pre) abort();
        ENSURE(http1_parse_request(data, size / 2, lim, pre, &err) == HTTP1_AGAIN);
        free(pre);
    } else {
        ENSURE(rc == HTTP1_ERROR && err != NULL && err[0] != '\0');
        ENSURE(req->status == 400 || req->status == 414 || req->status == 431 ||
               req->status == 501 || req->status == 505);
    }
    free(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct http1_limits def = {.max_head_bytes = HTTP1_DEFAULT_MAX_HEAD_BYTES,
                                     .max_uri = HTTP1_DEFAULT_MAX_URI,
                                     .max_headers = HTTP1_DEFAULT_MAX_HEADERS};
    const struct http1_limits small = {.max_head_bytes = 512, .max_uri = 64, .max_headers = 6};
    run(data, size, &def);
    run(data, size, &small);
    url_helpers((const char *)data, size);
    return 0;
}
