/* resp: RESP2/RESP3 replies and commands; see resp.h. */
#include "proto/resp.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const struct resp_limits resp_default_limits = {64u << 20, 1u << 20, 8};

#define DEPTH_CAP 64 /* whatever the limits say: the scan recurses */

struct scan {
    const char *data;
    size_t len;
    const struct resp_limits *lim;
    size_t items; /* elements seen, all levels */
    size_t need;  /* RESP_AGAIN: bytes needed at least */
    const char *err;
};

/* A header line from pos (after its type byte): the text [pos+1, *eol) then CRLF. */
static int line(struct scan *s, size_t pos, size_t *eol)
{
    size_t max = s->lim->max_bulk + 1;
    const char *p = s->data + pos + 1;
    size_t avail = s->len - pos - 1;
    const char *cr = memchr(p, '\r', avail < max ? avail : max);
    if (!cr) {
        if (avail >= max) {
            s->err = "a reply line is longer than the bulk limit";
            return RESP_ERROR;
        }
        s->need = s->len + 1;
        return RESP_AGAIN;
    }
    size_t at = (size_t)(cr - s->data);
    if (at + 1 >= s->len) {
        s->need = at + 2;
        return RESP_AGAIN;
    }
    if (s->data[at + 1] != '\n') {
        s->err = "a reply line ends with CR without LF";
        return RESP_ERROR;
    }
    if (memchr(p, '\n', (size_t)(cr - p))) {
        s->err = "a reply line holds a bare LF";
        return RESP_ERROR;
    }
    *eol = at;
    return RESP_OK;
}

/* Strict decimal: an optional '-', 1..19 digits, no overflow. */
static bool parse_int(const char *p, size_t n, int64_t *out)
{
    bool neg = n > 0 && p[0] == '-';
    if (neg) {
        p++;
        n--;
    }
    if (n == 0 || n > 19) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX + (neg ? 1u : 0u)) return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static int scan_one(struct scan *s, size_t pos, unsigned depth, size_t *end)
{
    if (pos >= s->len) {
        s->need = pos + 3;
        return RESP_AGAIN;
    }
    char type = s->data[pos];
    size_t eol;
    int rc = line(s, pos, &eol);
    if (rc != RESP_OK) return rc;
    const char *text = s->data + pos + 1;
    size_t tlen = eol - pos - 1;
    size_t after = eol + 2;
    int64_t n;
    switch (type) {
    case '+':
    case '-': *end = after; return RESP_OK;
    case ':':
        if (!parse_int(text, tlen, &n)) {
            s->err = "an integer reply is not a number";
            return RESP_ERROR;
        }
        *end = after;
        return RESP_OK;
    case '#':
        if (tlen != 1 || (text[0] != 't' && text[0] != 'f')) {
            s->err = "a boolean reply is neither t nor f";
            return RESP_ERROR;
        }
        *end = after;
        return RESP_OK;
    case '_':
        if (tlen) {
            s->err = "a null reply carries text";
            return RESP_ERROR;
        }
        *end = after;
        return RESP_OK;
    case ',':
    case '(':
        if (!tlen) {
            s->err = "an empty number reply";
            return RESP_ERROR;
        }
        *end = after;
        return RESP_OK;
    case '$':
    case '=':
    case '!':
        if (!parse_int(text, tlen, &n) || n < -1 || (n == -1 && type != '$')) {
            s->err = "a bulk length is not a length";
            return RESP_ERROR;
        }
        if (n == -1) {
            *end = after;
            return RESP_OK;
        }
        if ((uint64_t)n > s->lim->max_bulk) {
            s->err = "a bulk string is longer than the limit";
            return RESP_ERROR;
        }
        if (s->len < after + (size_t)n + 2) {
            s->need = after + (size_t)n + 2;
            return RESP_AGAIN;
        }
        if (s->data[after + (size_t)n] != '\r' || s->data[after + (size_t)n + 1] != '\n') {
            s->err = "a bulk string does not end with CRLF";
            return RESP_ERROR;
        }
        if (type == '=' && (n < 4 || s->data[after + 3] != ':')) {
            s->err = "a verbatim string has no format prefix";
            return RESP_ERROR;
        }
        *end = after + (size_t)n + 2;
        return RESP_OK;
    case '*':
    case '~':
    case '>':
    case '%': {
        if (!parse_int(text, tlen, &n) || n < -1 || (n == -1 && type != '*')) {
            s->err = "an aggregate count is not a count";
            return RESP_ERROR;
        }
        if (n == -1) {
            *end = after;
            return RESP_OK;
        }
        uint64_t k = (uint64_t)n * (type == '%' ? 2u : 1u);
        if (k > s->lim->max_items || s->items + k > s->lim->max_items) {
            s->err = "a reply has more elements than the limit";
            return RESP_ERROR;
        }
        if (depth + 1 > s->lim->max_depth || depth + 1 > DEPTH_CAP) {
            s->err = "a reply nests deeper than the limit";
            return RESP_ERROR;
        }
        s->items += k;
        size_t at = after;
        for (uint64_t i = 0; i < k; i++) {
            rc = scan_one(s, at, depth + 1, &at);
            if (rc != RESP_OK) return rc;
        }
        *end = at;
        return RESP_OK;
    }
    default: s->err = "unknown reply type"; return RESP_ERROR;
    }
}

int resp_scan(const char *data, size_t len, const struct resp_limits *lim, size_t *used,
              const char **err)
{
    struct scan s = {data, len, lim ? lim : &resp_default_limits, 0, 0, NULL};
    size_t end = 0;
    int rc = scan_one(&s, 0, 0, &end);
    if (rc == RESP_OK) *used = end;
    if (rc == RESP_AGAIN) *used = s.need;
    if (rc == RESP_ERROR && err) *err = s.err;
    return rc;
}

/* Builds the tree of a reply resp_scan found whole: no check fails here. */
static size_t build(const char *d, size_t len, size_t pos, struct arena *a, struct resp_value *v)
{
    memset(v, 0, sizeof *v);
    char type = d[pos];
    const char *text = d + pos + 1;
    const char *cr = memchr(text, '\r', len - pos - 1); /* scanned: the first CR ends the line */
    size_t tlen = (size_t)(cr - text), after = pos + 1 + tlen + 2;
    int64_t n = 0;
    switch (type) {
    case '+':
        v->type = RESP_SIMPLE;
        v->s = text;
        v->len = tlen;
        return after;
    case '-':
        v->type = RESP_ERR;
        v->s = text;
        v->len = tlen;
        return after;
    case ':':
        v->type = RESP_INT;
        parse_int(text, tlen, &v->i);
        return after;
    case '#':
        v->type = RESP_INT;
        v->i = text[0] == 't';
        return after;
    case '_': v->type = RESP_NIL; return after;
    case ',':
    case '(':
        v->type = RESP_BULK;
        v->s = text;
        v->len = tlen;
        return after;
    case '$':
    case '=':
    case '!':
        parse_int(text, tlen, &n);
        if (n < 0) {
            v->type = RESP_NIL;
            return after;
        }
        v->type = type == '!' ? RESP_ERR : RESP_BULK;
        v->s = d + after;
        v->len = (size_t)n;
        return after + (size_t)n + 2;
    default: /* '*', '~', '>', '%' */
        parse_int(text, tlen, &n);
        if (n < 0) {
            v->type = RESP_NIL;
            return after;
        }
        v->type = type == '%' ? RESP_MAP : type == '>' ? RESP_PUSH : RESP_ARRAY;
        v->n = (size_t)n;
        size_t k = (size_t)n * (type == '%' ? 2u : 1u);
        v->items = k ? arena_alloc(a, k * sizeof *v->items) : NULL;
        size_t at = after;
        for (size_t i = 0; i < k; i++)
            at = build(d, len, at, a, &v->items[i]);
        return at;
    }
}

int resp_parse(const char *data, size_t len, const struct resp_limits *lim, struct arena *a,
               struct resp_value **out, size_t *used, const char **err)
{
    int rc = resp_scan(data, len, lim, used, err);
    if (rc != RESP_OK) return rc;
    struct resp_value *v = arena_alloc(a, sizeof *v);
    build(data, *used, 0, a, v);
    *out = v;
    return RESP_OK;
}

void resp_begin(struct buf *b, size_t argc)
{
    char head[32];
    int n = snprintf(head, sizeof head, "*%zu\r\n", argc);
    buf_append(b, head, (size_t)n);
}

void resp_arg(struct buf *b, const void *s, size_t len)
{
    char head[32];
    int n = snprintf(head, sizeof head, "$%zu\r\n", len);
    buf_reserve(b, (size_t)n + len + 2);
    buf_append(b, head, (size_t)n);
    if (len) buf_append(b, s, len);
    buf_append(b, "\r\n", 2);
}

void resp_arg_str(struct buf *b, const char *s)
{
    resp_arg(b, s, strlen(s));
}

void resp_arg_int(struct buf *b, int64_t v)
{
    char text[24];
    int n = snprintf(text, sizeof text, "%" PRId64, v);
    resp_arg(b, text, (size_t)n);
}

void resp_command(struct buf *b, size_t argc, const char *const *argv, const size_t *lens)
{
    resp_begin(b, argc);
    for (size_t i = 0; i < argc; i++)
        resp_arg(b, argv[i], lens ? lens[i] : strlen(argv[i]));
}

bool resp_is(const struct resp_value *v, const char *s)
{
    size_t n = strlen(s);
    return (v->type == RESP_BULK || v->type == RESP_SIMPLE) && v->len == n &&
           memcmp(v->s, s, n) == 0;
}

bool resp_to_int(const struct resp_value *v, int64_t *out)
{
    if (v->type == RESP_INT) {
        *out = v->i;
        return true;
    }
    if (v->type != RESP_BULK && v->type != RESP_SIMPLE && v->type != RESP_ERR) return false;
    return parse_int(v->s, v->len, out);
}
