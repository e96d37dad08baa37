/* http1: the HTTP/1.1 request head, sans I/O (see http1.h). Owns the request-line and header
 * grammar, the framing headers' sanity (Host, Content-Length, Transfer-Encoding) and the URL
 * helpers of the [ws] port. It must never touch a socket, allocate, copy the input or read past
 * buf + len: every pointer it returns points into the caller's bytes, every scan is bounded by
 * the input length and by the configured limits, and every malformed head is an HTTP1_ERROR with
 * a static reason and the status to answer, never a crash. */
#include "proto/http1.h"

#include <string.h>

/* tchar (RFC 9110 §5.6.2): the bytes of a method or a header field name. */
static const uint8_t tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* ASCII case-insensitive equality of a[0..alen) and b[0..blen). */
static bool ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) return false;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return false;
    return true;
}

static int fail(struct http1_request *req, const char **err, int status, const char *why)
{
    req->status = status;
    *err = why;
    return HTTP1_ERROR;
}

/* At b[*p] == '\r' or '\n' (with *p < n): steps over the line end. 0 done, 1 need more bytes,
 * -1 a CR not followed by LF. */
static int line_end(const uint8_t *b, size_t n, size_t *p)
{
    if (b[*p] == '\n') {
        (*p)++;
        return 0;
    }
    if (*p + 1 >= n) return 1;
    if (b[*p + 1] != '\n') return -1;
    *p += 2;
    return 0;
}

static size_t count_fields(const struct http1_request *req, const char *name, size_t name_len)
{
    size_t n = 0;
    for (size_t i = 0; i < req->n_headers; i++)
        if (ieq(req->headers[i].name, req->headers[i].name_len, name, name_len)) n++;
    return n;
}

/* The checks that need the whole head: Host, Content-Length, Transfer-Encoding. */
static int check_framing(struct http1_request *req, const char **err)
{
    size_t hosts = count_fields(req, "host", 4);
    if (hosts > 1) return fail(req, err, 400, "more than one Host header field");
    if (hosts == 0 && req->version_minor == 1) return fail(req, err, 400, "HTTP/1.1 without Host");

    uint64_t cl;
    if (http1_content_length(req, &cl) != HTTP1_OK)
        return fail(req, err, 400, "invalid Content-Length");
    size_t cls = count_fields(req, "content-length", 14);

    size_t tes = count_fields(req, "transfer-encoding", 17);
    if (tes == 0) return HTTP1_OK;
    if (req->version_minor == 0) return fail(req, err, 400, "Transfer-Encoding in HTTP/1.0");
    if (cls) return fail(req, err, 400, "both Transfer-Encoding and Content-Length");
    size_t te_len;
    const char *te = http1_header(req, "transfer-encoding", &te_len);
    if (tes > 1 || !ieq(te, te_len, "chunked", 7))
        return fail(req, err, 501, "unsupported transfer coding");
    req->chunked = true;
    return HTTP1_OK;
}

int http1_parse_request(const uint8_t *buf, size_t len, const struct http1_limits *lim,
                        struct http1_request *req, const char **err)
{
    static const struct http1_limits defaults = {
        .max_head_bytes = HTTP1_DEFAULT_MAX_HEAD_BYTES,
        .max_uri = HTTP1_DEFAULT_MAX_URI,
        .max_headers = HTTP1_DEFAULT_MAX_HEADERS,
    };
    if (!lim) lim = &defaults;
    size_t max_headers =
        lim->max_headers < HTTP1_MAX_HEADERS ? lim->max_headers : HTTP1_MAX_HEADERS;

    req->method = req->target = req->path = req->query = NULL;
    req->method_len = req->target_len = req->path_len = req->query_len = 0;
    req->version_minor = 0;
    req->n_headers = 0;
    req->chunked = false;
    req->head_len = 0;
    req->status = 0;

    /* Only the first max_head_bytes count; running out of them is 431, running out of input
     * below them is AGAIN. */
    const uint8_t *b = buf;
    size_t n = len < lim->max_head_bytes ? len : lim->max_head_bytes;
    size_t p = 0;
    int r;
    uint8_t c;

#define NEED                                                                                       \
    do {                                                                                           \
        if (p >= n) goto more;                                                                     \
    } while (0)
#define LINE_END                                                                                   \
    do {                                                                                           \
        r = line_end(b, n, &p);                                                                    \
        if (r > 0) goto more;                                                                      \
        if (r < 0) return fail(req, err, 400, "CR not followed by LF");                            \
    } while (0)

    /* RFC 9112 §2.2: empty lines before the request line are ignored. */
    for (;;) {
        NEED;
        if (b[p] != '\r' && b[p] != '\n') break;
        LINE_END;
    }

    /* method SP */
    size_t m0 = p;
    for (;;) {
        NEED;
        c = b[p];
        if (c == ' ') break;
        if (!tchar[c]) return fail(req, err, 400, "invalid byte in method");
        p++;
    }
    if (p == m0) return fail(req, err, 400, "empty method");
    req->method = (const char *)b + m0;
    req->method_len = p - m0;
    p++;

    /* request-target SP */
    size_t t0 = p;
    for (;;) {
        NEED;
        c = b[p];
        if (c == ' ') break;
        if (c == '\r' || c == '\n') return fail(req, err, 400, "request line without version");
        if (c < 0x21 || c > 0x7e) return fail(req, err, 400, "invalid byte in request-target");
        if (p == t0 && c != '/' && c != '*')
            return fail(req, err, 400, "request-target not in origin-form");
        if (p - t0 >= lim->max_uri) return fail(req, err, 414, "request-target too long");
        p++;
    }
    size_t tlen = p - t0;
    if (tlen == 0) return fail(req, err, 400, "empty request-target");
    const char *target = (const char *)b + t0;
    if (target[0] == '*' &&
        (tlen != 1 || !(req->method_len == 7 && memcmp(req->method, "OPTIONS", 7) == 0)))
        return fail(req, err, 400, "asterisk-form is only for OPTIONS *");
    req->target = req->path = target;
    req->target_len = req->path_len = tlen;
    const char *qmark = memchr(target, '?', tlen);
    if (qmark) {
        req->path_len = (size_t)(qmark - target);
        req->query = qmark + 1;
        req->query_len = tlen - req->path_len - 1;
    }
    p++;

    /* HTTP-version line-end */
    static const char version[] = "HTTP/D.D";
    size_t v0 = p;
    for (size_t i = 0; i < 8; i++, p++) {
        NEED;
        c = b[p];
        bool good = version[i] == 'D' ? c >= '0' && c <= '9' : c == (uint8_t)version[i];
        if (!good) return fail(req, err, 400, "invalid HTTP version");
    }
    NEED;
    if (b[p] != '\r' && b[p] != '\n') return fail(req, err, 400, "junk after HTTP version");
    LINE_END;
    if (b[v0 + 5] != '1' || b[v0 + 7] > '1')
        return fail(req, err, 505, "HTTP version not supported");
    req->version_minor = b[v0 + 7] - '0';

    /* header fields, up to the empty line */
    for (;;) {
        NEED;
        c = b[p];
        if (c == '\r' || c == '\n') {
            LINE_END;
            break;
        }
        if (c == ' ' || c == '\t')
            return fail(req, err, 400, "obs-fold or whitespace before a header field");
        if (req->n_headers >= max_headers) return fail(req, err, 431, "too many header fields");

        size_t n0 = p;
        for (;;) {
            NEED;
            c = b[p];
            if (c == ':') break;
            if (!tchar[c]) return fail(req, err, 400, "invalid byte in header name");
            p++;
        }
        if (p == n0) return fail(req, err, 400, "empty header name");
        size_t name_len = p - n0;
        p++;

        for (;;) { /* leading OWS */
            NEED;
            if (b[p] != ' ' && b[p] != '\t') break;
            p++;
        }
        size_t val0 = p, val_end = p;
        for (;;) {
            NEED;
            c = b[p];
            if (c == '\r' || c == '\n') break;
            p++;
            if (c == ' ' || c == '\t') continue; /* trailing OWS is trimmed */
            if (c < 0x21 || c == 0x7f) return fail(req, err, 400, "invalid byte in header value");
            val_end = p;
        }
        LINE_END;

        struct http1_header *h = &req->headers[req->n_headers++];
        h->name = (const char *)b + n0;
        h->name_len = name_len;
        h->value = (const char *)b + val0;
        h->value_len = val_end - val0;
    }
#undef NEED
#undef LINE_END

    req->head_len = p;
    if (check_framing(req, err) != HTTP1_OK) return HTTP1_ERROR;
    return HTTP1_OK;

more:
    if (len > lim->max_head_bytes) return fail(req, err, 431, "request head too large");
    return HTTP1_AGAIN;
}

const char *http1_header(const struct http1_request *req, const char *name, size_t *len)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct http1_header *h = &req->headers[i];
        if (ieq(h->name, h->name_len, name, name_len)) {
            if (len) *len = h->value_len;
            return h->value;
        }
    }
    if (len) *len = 0;
    return NULL;
}

bool http1_header_has_token(const struct http1_request *req, const char *name, const char *token)
{
    size_t name_len = strlen(name), token_len = strlen(token);
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct http1_header *h = &req->headers[i];
        if (!ieq(h->name, h->name_len, name, name_len)) continue;
        size_t p = 0;
        while (p < h->value_len) {
            size_t e = p;
            while (e < h->value_len && h->value[e] != ',')
                e++;
            size_t s = p, t = e;
            while (s < t && (h->value[s] == ' ' || h->value[s] == '\t'))
                s++;
            while (t > s && (h->value[t - 1] == ' ' || h->value[t - 1] == '\t'))
                t--;
            if (t > s && ieq(h->value + s, t - s, token, token_len)) return true;
            p = e + 1;
        }
    }
    return false;
}

int http1_content_length(const struct http1_request *req, uint64_t *n)
{
    bool seen = false;
    uint64_t v = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct http1_header *h = &req->headers[i];
        if (!ieq(h->name, h->name_len, "content-length", 14)) continue;
        if (h->value_len == 0) return HTTP1_ERROR;
        uint64_t x = 0;
        for (size_t k = 0; k < h->value_len; k++) {
            unsigned d = (unsigned)(unsigned char)h->value[k] - '0';
            if (d > 9) return HTTP1_ERROR;
            if (x > (UINT64_C(0x7fffffffffffffff) - d) / 10) return HTTP1_ERROR;
            x = x * 10 + d;
        }
        if (seen && x != v) return HTTP1_ERROR;
        v = x;
        seen = true;
    }
    *n = v;
    return HTTP1_OK;
}

bool http1_keep_alive(const struct http1_request *req)
{
    if (http1_header_has_token(req, "Connection", "close")) return false;
    if (req->version_minor >= 1) return true;
    return http1_header_has_token(req, "Connection", "keep-alive");
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (unsigned char)lower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int http1_percent_decode(const char *in, size_t len, char *out, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        /* out may be in: o <= i, and in[i..i+2] is read before out[o] is written */
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (len - i < 3) return HTTP1_ERROR;
            int hi = hexval((unsigned char)in[i + 1]), lo = hexval((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0) return HTTP1_ERROR;
            c = (unsigned char)(hi * 16 + lo);
            i += 3;
        } else {
            i++;
        }
        if (c == 0) return HTTP1_ERROR;
        out[o++] = (char)c;
    }
    *out_len = o;
    return HTTP1_OK;
}

bool http1_query_param(const char *query, size_t len, const char *name, const char **val,
                       size_t *val_len)
{
    size_t name_len = strlen(name);
    size_t p = 0;
    while (p < len) {
        const char *amp = memchr(query + p, '&', len - p);
        size_t e = amp ? (size_t)(amp - query) : len;
        const char *eq = memchr(query + p, '=', e - p);
        size_t key_end = eq ? (size_t)(eq - query) : e;
        if (e > p && key_end - p == name_len && memcmp(query + p, name, name_len) == 0) {
            *val = eq ? eq + 1 : query + e;
            *val_len = eq ? e - key_end - 1 : 0;
            return true;
        }
        p = e + 1;
    }
    return false;
}

bool http1_path_params(const char *path, size_t len, const char **params, size_t *params_len)
{
    for (size_t i = 0; i + 3 <= len; i++) {
        if (path[i] == '=' || path[i] == '&') return false;
        if (path[i] != '/' || path[i + 1] != 'w' || path[i + 2] != 's') continue;
        if (i + 3 == len) {
            *params = path + len;
            *params_len = 0;
            return true;
        }
        if (path[i + 3] == '/') {
            *params = path + i + 4;
            *params_len = len - i - 4;
            return true;
        }
    }
    return false;
}
