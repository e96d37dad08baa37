/* mysql_packet: the MySQL wire format, sans I/O (see mysql_packet.h). Owns framing (4-byte
 * headers, 0xffffff continuation packets), length-encoded integers and strings, the parsers for
 * the client's HandshakeResponse41 / SSLRequest / COM_STMT_EXECUTE and the builders for the
 * server's packets. It must never touch a socket, keep global state or trust a length it has not
 * checked against the end of its input: every malformed packet is an MYSQL_ERROR with a static
 * reason, never a read past the end. */
#include "proto/mysql_packet.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#define CHUNK MYSQL_MAX_PACKET_PAYLOAD

/* ---- little-endian helpers ---------------------------------------------------------------- */

static uint32_t get_le(const uint8_t *p, int n)
{
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_le8(const uint8_t *p)
{
    return (uint64_t)get_le(p, 4) | ((uint64_t)get_le(p + 4, 4) << 32);
}

static void set_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le(struct buf *b, uint64_t v, int n)
{
    uint8_t tmp[8];
    set_le(tmp, v, n);
    buf_append(b, tmp, (size_t)n);
}

static void put_cstr(struct buf *b, const char *s) /* with its NUL */
{
    buf_append(b, s, strlen(s) + 1);
}

/* ---- framing ------------------------------------------------------------------------------ */

int mysql_frame_parse(const uint8_t *in, size_t in_len, size_t max_payload, struct buf *scratch,
                      struct mysql_frame *f, const char **err)
{
    size_t pos = 0, total = 0, packets = 0;
    uint8_t seq = 0;

    /* Walk the headers first: the size limit is enforced as soon as a header announces it,
     * before any body has to be buffered. */
    for (;;) {
        if (in_len - pos < 4) return MYSQL_AGAIN;
        size_t plen = get_le(in + pos, 3);
        uint8_t s = in[pos + 3];
        if (packets > 0 && s != (uint8_t)(seq + 1)) {
            *err = "continuation packet out of sequence";
            return MYSQL_ERROR;
        }
        seq = s;
        if (plen > max_payload - total) {
            *err = "packet too large";
            return MYSQL_ERROR;
        }
        total += plen;
        if (in_len - pos - 4 < plen) return MYSQL_AGAIN;
        pos += 4 + plen;
        packets++;
        if (plen < CHUNK) break;
    }

    f->consumed = pos;
    f->seq = seq;
    f->len = total;
    if (packets == 1) {
        f->payload = in + 4;
        return MYSQL_OK;
    }
    scratch->off = scratch->len = 0;
    buf_reserve(scratch, total ? total : 1);
    for (size_t at = 0; at < pos;) {
        size_t plen = get_le(in + at, 3);
        buf_append(scratch, in + at + 4, plen);
        at += 4 + plen;
    }
    f->payload = scratch->data;
    return MYSQL_OK;
}

void mysql_put_payload(struct buf *out, uint8_t *seq, const void *payload, size_t len)
{
    const uint8_t *p = payload;
    buf_reserve(out, len + 4 * (len / CHUNK + 1));
    for (;;) {
        size_t n = len < CHUNK ? len : CHUNK;
        uint8_t hdr[4];
        set_le(hdr, n, 3);
        hdr[3] = (*seq)++;
        buf_append(out, hdr, 4);
        buf_append(out, p, n);
        p += n;
        len -= n;
        if (n < CHUNK) break;
    }
}

size_t mysql_packet_start(struct buf *out)
{
    static const uint8_t zero[4];
    size_t start = buf_unread(out);
    buf_append(out, zero, 4);
    return start;
}

void mysql_packet_end(struct buf *out, size_t start, uint8_t *seq)
{
    size_t len = out->len - out->off - start - 4;
    size_t extra = len / CHUNK; /* continuation headers to insert */
    if (extra) {
        buf_reserve(out, 4 * extra); /* may compact: start is relative to the head */
        uint8_t *body = buf_head(out) + start + 4;
        /* Chunk k moves right by 4k; moving from the last one down never overwrites a chunk
         * that has yet to move. */
        for (size_t k = extra; k >= 1; k--) {
            size_t n = k == extra ? len - k * CHUNK : CHUNK;
            memmove(body + k * (CHUNK + 4), body + k * CHUNK, n);
        }
        out->len += 4 * extra;
    }
    uint8_t *hdr = buf_head(out) + start;
    for (size_t k = 0; k <= extra; k++) {
        size_t n = k < extra ? CHUNK : len - extra * CHUNK;
        set_le(hdr, n, 3);
        hdr[3] = (*seq)++;
        hdr += 4 + n;
    }
}

/* ---- integers and strings ----------------------------------------------------------------- */

void mysql_put_int2(struct buf *b, uint16_t v)
{
    put_le(b, v, 2);
}

void mysql_put_int3(struct buf *b, uint32_t v)
{
    put_le(b, v, 3);
}

void mysql_put_int4(struct buf *b, uint32_t v)
{
    put_le(b, v, 4);
}

void mysql_put_int8(struct buf *b, uint64_t v)
{
    put_le(b, v, 8);
}

size_t mysql_lenenc_int_size(uint64_t v)
{
    if (v < 251) return 1;
    if (v < (1u << 16)) return 3;
    if (v < (1u << 24)) return 4;
    return 9;
}

void mysql_put_lenenc_int(struct buf *b, uint64_t v)
{
    if (v < 251) {
        buf_put_u8(b, (uint8_t)v);
    } else if (v < (1u << 16)) {
        buf_put_u8(b, 0xfc);
        put_le(b, v, 2);
    } else if (v < (1u << 24)) {
        buf_put_u8(b, 0xfd);
        put_le(b, v, 3);
    } else {
        buf_put_u8(b, 0xfe);
        put_le(b, v, 8);
    }
}

void mysql_put_lenenc_str(struct buf *b, const void *s, size_t n)
{
    mysql_put_lenenc_int(b, n);
    buf_append(b, s, n);
}

int mysql_get_lenenc_int(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    const uint8_t *q = *p;
    if (q >= end) return MYSQL_ERROR;
    size_t avail = (size_t)(end - q) - 1;
    switch (q[0]) {
    case 0xfb:
        *v = 0;
        *p = q + 1;
        return MYSQL_AGAIN;
    case 0xfc:
        if (avail < 2) return MYSQL_ERROR;
        *v = get_le(q + 1, 2);
        *p = q + 3;
        return MYSQL_OK;
    case 0xfd:
        if (avail < 3) return MYSQL_ERROR;
        *v = get_le(q + 1, 3);
        *p = q + 4;
        return MYSQL_OK;
    case 0xfe:
        if (avail < 8) return MYSQL_ERROR;
        *v = get_le8(q + 1);
        *p = q + 9;
        return MYSQL_OK;
    case 0xff: return MYSQL_ERROR;
    default:
        *v = q[0];
        *p = q + 1;
        return MYSQL_OK;
    }
}

/* A length-encoded string that must fit before end; NULL (0xfb) is refused. */
static int get_lenenc_str(const uint8_t **p, const uint8_t *end, const uint8_t **s, size_t *n)
{
    const uint8_t *q = *p;
    uint64_t v;
    if (mysql_get_lenenc_int(&q, end, &v) != MYSQL_OK) return MYSQL_ERROR;
    if (v > (uint64_t)(end - q)) return MYSQL_ERROR;
    *s = q;
    *n = (size_t)v;
    *p = q + v;
    return MYSQL_OK;
}

/* A NUL-terminated string starting at *p; the NUL must be before end. */
static int get_cstr(const uint8_t **p, const uint8_t *end, const char **s, size_t *n)
{
    const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
    if (!nul) return MYSQL_ERROR;
    *s = (const char *)*p;
    *n = (size_t)(nul - *p);
    *p = nul + 1;
    return MYSQL_OK;
}

/* ---- connection phase --------------------------------------------------------------------- */

void mysql_write_handshake_v10(struct buf *out, const struct mysql_handshake *h)
{
    uint8_t seq = 0;
    const char *plugin = h->auth_plugin ? h->auth_plugin : "mysql_native_password";
    size_t start = mysql_packet_start(out);
    buf_put_u8(out, 0x0a);
    put_cstr(out, h->server_version ? h->server_version : "");
    mysql_put_int4(out, h->connection_id);
    buf_append(out, h->scramble, 8);
    buf_put_u8(out, 0);
    mysql_put_int2(out, (uint16_t)(h->capabilities & 0xffff));
    buf_put_u8(out, h->charset);
    mysql_put_int2(out, h->status);
    mysql_put_int2(out, (uint16_t)(h->capabilities >> 16));
    buf_put_u8(out, (h->capabilities & CLIENT_PLUGIN_AUTH) ? 21 : 0);
    static const uint8_t reserved[10];
    buf_append(out, reserved, sizeof reserved);
    buf_append(out, h->scramble + 8, 12);
    buf_put_u8(out, 0);
    if (h->capabilities & CLIENT_PLUGIN_AUTH) put_cstr(out, plugin);
    mysql_packet_end(out, start, &seq);
}

int mysql_parse_handshake_response(const uint8_t *p, size_t len, struct mysql_handshake_response *r,
                                   const char **err)
{
    const uint8_t *end = p + len;
    memset(r, 0, sizeof *r);
    if (len < 2) {
        *err = "handshake response truncated";
        return MYSQL_ERROR;
    }
    /* The low 16 capability bits sit first in both 3.20 and 4.1 responses. */
    if (!(get_le(p, 2) & CLIENT_PROTOCOL_41)) {
        *err = "pre-4.1 client protocol is not supported";
        return MYSQL_ERROR;
    }
    if (len < 32) {
        *err = "handshake response truncated";
        return MYSQL_ERROR;
    }
    r->capabilities = get_le(p, 4);
    r->max_packet = get_le(p + 4, 4);
    r->charset = p[8];
    /* p[9..32) is filler; MariaDB keeps extended capabilities there, so it is not checked. */
    if (len == 32) {
        if (!(r->capabilities & CLIENT_SSL)) {
            *err = "handshake response truncated";
            return MYSQL_ERROR;
        }
        r->ssl_request = true;
        return MYSQL_OK;
    }
    const uint8_t *q = p + 32;

    if (get_cstr(&q, end, &r->user, &r->user_len) != MYSQL_OK) {
        *err = "unterminated user name";
        return MYSQL_ERROR;
    }

    if (r->capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
        if (get_lenenc_str(&q, end, &r->auth, &r->auth_len) != MYSQL_OK) {
            *err = "bad auth response length";
            return MYSQL_ERROR;
        }
    } else if (r->capabilities & CLIENT_SECURE_CONNECTION) {
        if (q >= end || (size_t)(end - q - 1) < q[0]) {
            *err = "bad auth response length";
            return MYSQL_ERROR;
        }
        r->auth = q + 1;
        r->auth_len = q[0];
        q += 1 + q[0];
    } else {
        const char *s;
        if (q == end) {
            r->auth = q; /* nothing after the user: an empty password */
        } else if (get_cstr(&q, end, &s, &r->auth_len) == MYSQL_OK) {
            r->auth = (const uint8_t *)s;
        } else {
            *err = "unterminated auth response";
            return MYSQL_ERROR;
        }
    }

    /* Some clients flag a database or plugin and then end the packet: that means none. */
    if ((r->capabilities & CLIENT_CONNECT_WITH_DB) && q < end) {
        if (get_cstr(&q, end, &r->database, &r->database_len) != MYSQL_OK) {
            *err = "unterminated database name";
            return MYSQL_ERROR;
        }
    }
    if ((r->capabilities & CLIENT_PLUGIN_AUTH) && q < end) {
        if (get_cstr(&q, end, &r->auth_plugin, &r->auth_plugin_len) != MYSQL_OK) {
            /* Old libmysqlclient releases left the plugin name unterminated at the end. */
            r->auth_plugin = (const char *)q;
            r->auth_plugin_len = (size_t)(end - q);
            q = end;
        }
    }
    if ((r->capabilities & CLIENT_CONNECT_ATTRS) && q < end) {
        const uint8_t *attrs;
        size_t attrs_len;
        if (get_lenenc_str(&q, end, &attrs, &attrs_len) != MYSQL_OK) {
            *err = "bad connect attributes length";
            return MYSQL_ERROR;
        }
        /* Each attribute is a key and a value, both length-encoded strings. */
        const uint8_t *a = attrs, *a_end = attrs + attrs_len;
        while (a < a_end) {
            const uint8_t *s;
            size_t n;
            if (get_lenenc_str(&a, a_end, &s, &n) != MYSQL_OK ||
                get_lenenc_str(&a, a_end, &s, &n) != MYSQL_OK) {
                *err = "malformed connect attributes";
                return MYSQL_ERROR;
            }
        }
    }
    /* Anything after (e.g. a zstd compression level) is ignored. */
    return MYSQL_OK;
}

void mysql_write_auth_switch(struct buf *out, uint8_t *seq, const char *plugin,
                             const uint8_t scramble[20])
{
    size_t start = mysql_packet_start(out);
    buf_put_u8(out, 0xfe);
    put_cstr(out, plugin ? plugin : "mysql_native_password");
    buf_append(out, scramble, 20);
    buf_put_u8(out, 0);
    mysql_packet_end(out, start, seq);
}

void mysql_native_password_token(const uint8_t scramble[20], const char *password, size_t pw_len,
                                 uint8_t out[20])
{
    uint8_t h1[SHA_DIGEST_LENGTH], salted[20 + SHA_DIGEST_LENGTH], h3[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)password, pw_len, h1);
    memcpy(salted, scramble, 20);
    SHA1(h1, sizeof h1, salted + 20); /* SHA1(SHA1(pw)): what mysql.user stores */
    SHA1(salted, sizeof salted, h3);
    for (int i = 0; i < 20; i++)
        out[i] = h1[i] ^ h3[i];
    OPENSSL_cleanse(h1, sizeof h1);
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(h3, sizeof h3);
}

void mysql_native_password_hash(const char *password, size_t pw_len, uint8_t out[20])
{
    uint8_t h1[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)password, pw_len, h1);
    SHA1(h1, sizeof h1, out);
    OPENSSL_cleanse(h1, sizeof h1);
}

bool mysql_native_password_check_hash(const uint8_t scramble[20], const uint8_t hash[20],
                                      const uint8_t *token, size_t token_len)
{
    if (token_len != 20) return false;
    uint8_t salted[20 + SHA_DIGEST_LENGTH], h3[SHA_DIGEST_LENGTH], h1[20], again[SHA_DIGEST_LENGTH];
    memcpy(salted, scramble, 20);
    memcpy(salted + 20, hash, 20);
    SHA1(salted, sizeof salted, h3);
    for (int i = 0; i < 20; i++)
        h1[i] = token[i] ^ h3[i]; /* the client's SHA1(pw), if it knew pw */
    SHA1(h1, sizeof h1, again);
    bool ok = CRYPTO_memcmp(again, hash, 20) == 0;
    OPENSSL_cleanse(h1, sizeof h1);
    OPENSSL_cleanse(h3, sizeof h3);
    return ok;
}

bool mysql_native_password_check(const uint8_t scramble[20], const char *password, size_t pw_len,
                                 const uint8_t *token, size_t token_len)
{
    if (token_len == 0) return pw_len == 0;
    if (token_len != 20 || pw_len == 0) return false;
    uint8_t expect[20];
    mysql_native_password_token(scramble, password, pw_len, expect);
    bool ok = CRYPTO_memcmp(expect, token, 20) == 0;
    OPENSSL_cleanse(expect, sizeof expect);
    return ok;
}

/* ---- responses ---------------------------------------------------------------------------- */

void mysql_write_ok(struct buf *out, uint8_t *seq, uint64_t affected_rows, uint64_t last_insert_id,
                    uint16_t status, uint16_t warnings, const char *info)
{
    size_t start = mysql_packet_start(out);
    buf_put_u8(out, 0x00);
    mysql_put_lenenc_int(out, affected_rows);
    mysql_put_lenenc_int(out, last_insert_id);
    mysql_put_int2(out, status);
    mysql_put_int2(out, warnings);
    if (info) buf_append(out, info, strlen(info));
    mysql_packet_end(out, start, seq);
}

void mysql_write_err(struct buf *out, uint8_t *seq, uint16_t code, const char *sqlstate,
                     const char *msg)
{
    if (!sqlstate || strlen(sqlstate) != 5) sqlstate = "HY000";
    if (!msg) msg = "";
    size_t start = mysql_packet_start(out);
    buf_put_u8(out, 0xff);
    mysql_put_int2(out, code);
    buf_put_u8(out, '#');
    buf_append(out, sqlstate, 5);
    buf_append(out, msg, strnlen(msg, 512));
    mysql_packet_end(out, start, seq);
}

void mysql_write_eof(struct buf *out, uint8_t *seq, uint16_t status, uint16_t warnings)
{
    size_t start = mysql_packet_start(out);
    buf_put_u8(out, 0xfe);
    mysql_put_int2(out, warnings);
    mysql_put_int2(out, status);
    mysql_packet_end(out, start, seq);
}

void mysql_write_column_count(struct buf *out, uint8_t *seq, uint64_t n)
{
    size_t start = mysql_packet_start(out);
    mysql_put_lenenc_int(out, n);
    mysql_packet_end(out, start, seq);
}

static void put_lenenc_cstr(struct buf *b, const char *s)
{
    if (!s) s = "";
    mysql_put_lenenc_str(b, s, strlen(s));
}

void mysql_write_column_def(struct buf *out, uint8_t *seq, const struct mysql_column *c)
{
    size_t start = mysql_packet_start(out);
    put_lenenc_cstr(out, "def");
    put_lenenc_cstr(out, c->schema);
    put_lenenc_cstr(out, c->table);
    put_lenenc_cstr(out, c->table); /* org_table */
    put_lenenc_cstr(out, c->name);
    put_lenenc_cstr(out, c->name); /* org_name */
    buf_put_u8(out, 0x0c);         /* length of the fixed fields */
    mysql_put_int2(out, c->charset);
    mysql_put_int4(out, c->length);
    buf_put_u8(out, c->type);
    mysql_put_int2(out, c->flags);
    buf_put_u8(out, c->decimals);
    mysql_put_int2(out, 0);
    mysql_packet_end(out, start, seq);
}

static void put_lenenc_decimal(struct buf *b, int64_t i)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, i);
    mysql_put_lenenc_str(b, tmp, (size_t)n);
}

void mysql_write_text_row(struct buf *out, uint8_t *seq, const struct value *vals, size_t n)
{
    size_t start = mysql_packet_start(out);
    for (size_t i = 0; i < n; i++) {
        switch (vals[i].kind) {
        case VALUE_NULL: buf_put_u8(out, 0xfb); break;
        case VALUE_INT: put_lenenc_decimal(out, vals[i].i); break;
        case VALUE_STR: mysql_put_lenenc_str(out, vals[i].s, vals[i].len); break;
        }
    }
    mysql_packet_end(out, start, seq);
}

/* Copies a string value into a NUL-terminated scratch for strtoll/strtod/sscanf; over-long
 * strings are cut, which only matters for values that were not numbers anyway. */
static const char *value_cstr(const struct value *v, char *tmp, size_t size)
{
    size_t n = v->len < size - 1 ? v->len : size - 1;
    if (n) memcpy(tmp, v->s, n);
    tmp[n] = 0;
    return tmp;
}

static int64_t value_as_int(const struct value *v)
{
    if (v->kind == VALUE_INT) return v->i;
    char tmp[32];
    return (int64_t)strtoll(value_cstr(v, tmp, sizeof tmp), NULL, 10);
}

static double value_as_double(const struct value *v)
{
    if (v->kind == VALUE_INT) return (double)v->i;
    char tmp[64];
    return strtod(value_cstr(v, tmp, sizeof tmp), NULL);
}

/* Reads up to max_digits decimal digits at *s into *v; false when there is none. */
static bool scan_uint(const char **s, int max_digits, unsigned long *v)
{
    const char *q = *s;
    unsigned long n = 0;
    int d = 0;
    while (d < max_digits && *q >= '0' && *q <= '9')
        n = n * 10 + (unsigned long)(*q++ - '0'), d++;
    if (!d) return false;
    *s = q;
    *v = n;
    return true;
}

/* "[.ffffff]" at *s as microseconds: ".5" is 500000; digits past the sixth are ignored. */
static unsigned long scan_fraction(const char *s)
{
    unsigned long us = 0;
    if (*s++ != '.') return 0;
    for (int d = 0; d < 6; d++)
        us = us * 10 + ((*s >= '0' && *s <= '9') ? (unsigned long)(*s++ - '0') : 0);
    return us;
}

/* MYSQL_TIME in the binary protocol: a length byte, then as many fields as are non-zero. A
 * string that is not 'YYYY-MM-DD[ hh:mm:ss[.ffffff]]' becomes the zero date. */
static void put_binary_datetime(struct buf *b, const struct value *v, bool date_only)
{
    char tmp[40];
    const char *s = value_cstr(v, tmp, sizeof tmp);
    unsigned long y, mo, d, h = 0, mi = 0, sec = 0, us = 0;
    if (!scan_uint(&s, 4, &y) || *s++ != '-' || !scan_uint(&s, 2, &mo) || *s++ != '-' ||
        !scan_uint(&s, 2, &d) || mo > 12 || d > 31) {
        buf_put_u8(b, 0);
        return;
    }
    if (!date_only && (*s == ' ' || *s == 'T')) {
        s++;
        if (!scan_uint(&s, 2, &h) || *s++ != ':' || !scan_uint(&s, 2, &mi) || *s++ != ':' ||
            !scan_uint(&s, 2, &sec) || h > 23 || mi > 59 || sec > 59) {
            buf_put_u8(b, 0);
            return;
        }
        us = scan_fraction(s);
    }
    uint8_t n = us ? 11 : (h || mi || sec) ? 7 : (y || mo || d) ? 4 : 0;
    buf_put_u8(b, n);
    if (n >= 4) {
        mysql_put_int2(b, (uint16_t)y);
        buf_put_u8(b, (uint8_t)mo);
        buf_put_u8(b, (uint8_t)d);
    }
    if (n >= 7) {
        buf_put_u8(b, (uint8_t)h);
        buf_put_u8(b, (uint8_t)mi);
        buf_put_u8(b, (uint8_t)sec);
    }
    if (n == 11) mysql_put_int4(b, (uint32_t)us);
}

/* TIME in the binary protocol from '[-]h..h:mm:ss[.ffffff]'; unparsable gives 00:00:00. */
static void put_binary_time(struct buf *b, const struct value *v)
{
    char tmp[40];
    const char *s = value_cstr(v, tmp, sizeof tmp);
    unsigned long h, mi, sec, us;
    bool neg = *s == '-';
    if (neg) s++;
    if (!scan_uint(&s, 7, &h) || *s++ != ':' || !scan_uint(&s, 2, &mi) || *s++ != ':' ||
        !scan_uint(&s, 2, &sec) || mi > 59 || sec > 59) {
        buf_put_u8(b, 0);
        return;
    }
    us = scan_fraction(s);
    if (!h && !mi && !sec && !us) {
        buf_put_u8(b, 0);
        return;
    }
    buf_put_u8(b, us ? 12 : 8);
    buf_put_u8(b, neg);
    mysql_put_int4(b, (uint32_t)(h / 24));
    buf_put_u8(b, (uint8_t)(h % 24));
    buf_put_u8(b, (uint8_t)mi);
    buf_put_u8(b, (uint8_t)sec);
    if (us) mysql_put_int4(b, (uint32_t)us);
}

void mysql_write_binary_row(struct buf *out, uint8_t *seq, const struct mysql_column *cols,
                            const struct value *vals, size_t n)
{
    size_t start = mysql_packet_start(out);
    buf_put_u8(out, 0x00);
    size_t bitmap_len = (n + 7 + 2) / 8;
    buf_reserve(out, bitmap_len);
    size_t bitmap = buf_unread(out); /* offset from the head: appends below may compact */
    memset(out->data + out->len, 0, bitmap_len);
    out->len += bitmap_len;
    for (size_t i = 0; i < n; i++) {
        const struct value *v = &vals[i];
        if (v->kind == VALUE_NULL || cols[i].type == MYSQL_TYPE_NULL) {
            buf_head(out)[bitmap + (i + 2) / 8] |= (uint8_t)(1u << ((i + 2) % 8));
            continue;
        }
        switch (cols[i].type) {
        case MYSQL_TYPE_LONGLONG: put_le(out, (uint64_t)value_as_int(v), 8); break;
        case MYSQL_TYPE_LONG:
        case MYSQL_TYPE_INT24: put_le(out, (uint64_t)value_as_int(v), 4); break;
        case MYSQL_TYPE_SHORT:
        case MYSQL_TYPE_YEAR: put_le(out, (uint64_t)value_as_int(v), 2); break;
        case MYSQL_TYPE_TINY: put_le(out, (uint64_t)value_as_int(v), 1); break;
        case MYSQL_TYPE_DOUBLE: {
            double d = value_as_double(v);
            uint64_t bits;
            memcpy(&bits, &d, 8);
            put_le(out, bits, 8);
            break;
        }
        case MYSQL_TYPE_FLOAT: {
            float fl = (float)value_as_double(v);
            uint32_t bits;
            memcpy(&bits, &fl, 4);
            put_le(out, bits, 4);
            break;
        }
        case MYSQL_TYPE_DATE:
        case MYSQL_TYPE_DATETIME:
        case MYSQL_TYPE_TIMESTAMP:
            if (v->kind == VALUE_STR) {
                put_binary_datetime(out, v, cols[i].type == MYSQL_TYPE_DATE);
            } else {
                buf_put_u8(out, 0);
            }
            break;
        case MYSQL_TYPE_TIME:
            if (v->kind == VALUE_STR) {
                put_binary_time(out, v);
            } else {
                buf_put_u8(out, 0);
            }
            break;
        default:
            if (v->kind == VALUE_INT) {
                put_lenenc_decimal(out, v->i);
            } else {
                mysql_put_lenenc_str(out, v->s, v->len);
            }
            break;
        }
    }
    mysql_packet_end(out, start, seq);
}

/* ---- prepared statements ------------------------------------------------------------------ */

void mysql_write_stmt_prepare_ok(struct buf *out, uint8_t *seq, uint32_t stmt_id,
                                 uint16_t n_columns, uint16_t n_params, uint16_t warnings)
{
    size_t start = mysql_packet_start(out);
    buf_put_u8(out, 0x00);
    mysql_put_int4(out, stmt_id);
    mysql_put_int2(out, n_columns);
    mysql_put_int2(out, n_params);
    buf_put_u8(out, 0x00);
    mysql_put_int2(out, warnings);
    mysql_packet_end(out, start, seq);
}

int mysql_peek_stmt_id(const uint8_t *p, size_t len, uint32_t *stmt_id)
{
    if (len < 5) return MYSQL_ERROR;
    switch (p[0]) {
    case 0x17: /* COM_STMT_EXECUTE */
    case 0x18: /* COM_STMT_SEND_LONG_DATA */
    case 0x19: /* COM_STMT_CLOSE */
    case 0x1a: /* COM_STMT_RESET */
    case 0x1c: /* COM_STMT_FETCH */ break;
    default: return MYSQL_ERROR;
    }
    *stmt_id = get_le(p + 1, 4);
    return MYSQL_OK;
}

/* Prints d with the fewest significant digits (from min_digits up to 17) that read back to
 * exactly the same value: exact like "%.17g", but 0.1 stays "0.1". */
static void print_real(char *text, size_t size, double d, bool is_float, int min_digits)
{
    for (int digits = min_digits; digits <= 17; digits++) {
        snprintf(text, size, "%.*g", digits, d);
        double back = strtod(text, NULL);
        if (is_float ? (float)back == (float)d : back == d) return;
    }
}

/* MYSQL_TIME as sent by the client: a length byte (0, 4, 7 or 11), then the non-zero fields. */
static int get_param_datetime(const uint8_t **p, const uint8_t *end, struct mysql_param *prm,
                              bool date_only)
{
    const uint8_t *q = *p;
    if (q >= end) return MYSQL_ERROR;
    size_t n = q[0];
    if ((n != 0 && n != 4 && n != 7 && n != 11) || n > (size_t)(end - q - 1)) return MYSQL_ERROR;
    unsigned y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    uint32_t us = 0;
    if (n >= 4) y = get_le(q + 1, 2), mo = q[3], d = q[4];
    if (n >= 7) h = q[5], mi = q[6], s = q[7];
    if (n == 11) us = get_le(q + 8, 4);
    int w;
    if (date_only) {
        w = snprintf(prm->text, sizeof prm->text, "%04u-%02u-%02u", y, mo, d);
    } else if (us) {
        w = snprintf(prm->text, sizeof prm->text, "%04u-%02u-%02u %02u:%02u:%02u.%06" PRIu32, y, mo,
                     d, h, mi, s, us);
    } else {
        w = snprintf(prm->text, sizeof prm->text, "%04u-%02u-%02u %02u:%02u:%02u", y, mo, d, h, mi,
                     s);
    }
    prm->v = value_str(prm->text, (size_t)w);
    *p = q + 1 + n;
    return MYSQL_OK;
}

/* TIME as sent by the client: a length byte (0, 8 or 12), sign, days, h, m, s, [microseconds]. */
static int get_param_time(const uint8_t **p, const uint8_t *end, struct mysql_param *prm)
{
    const uint8_t *q = *p;
    if (q >= end) return MYSQL_ERROR;
    size_t n = q[0];
    if ((n != 0 && n != 8 && n != 12) || n > (size_t)(end - q - 1)) return MYSQL_ERROR;
    bool neg = false;
    uint64_t hours = 0;
    unsigned mi = 0, s = 0;
    uint32_t us = 0;
    if (n >= 8) {
        neg = q[1] != 0;
        hours = (uint64_t)get_le(q + 2, 4) * 24 + q[6];
        mi = q[7];
        s = q[8];
    }
    if (n == 12) us = get_le(q + 9, 4);
    int w;
    if (us) {
        w = snprintf(prm->text, sizeof prm->text, "%s%02" PRIu64 ":%02u:%02u.%06" PRIu32,
                     neg ? "-" : "", hours, mi, s, us);
    } else {
        w = snprintf(prm->text, sizeof prm->text, "%s%02" PRIu64 ":%02u:%02u", neg ? "-" : "",
                     hours, mi, s);
    }
    prm->v = value_str(prm->text, (size_t)w);
    *p = q + 1 + n;
    return MYSQL_OK;
}

/* Decodes one non-NULL parameter value of the given type at *p. */
static int get_param(const uint8_t **p, const uint8_t *end, uint8_t type, bool is_unsigned,
                     struct mysql_param *prm, const char **err)
{
    const uint8_t *q = *p;
    size_t avail = (size_t)(end - q);
    int width = 0;
    switch (type) {
    case MYSQL_TYPE_TINY: width = 1; break;
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_YEAR: width = 2; break;
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_INT24: width = 4; break;
    case MYSQL_TYPE_LONGLONG: width = 8; break;
    case MYSQL_TYPE_FLOAT: {
        if (avail < 4) goto truncated;
        uint32_t bits = get_le(q, 4);
        float fl;
        memcpy(&fl, &bits, 4);
        print_real(prm->text, sizeof prm->text, fl, true, 6);
        prm->v = value_str(prm->text, strlen(prm->text));
        *p = q + 4;
        return MYSQL_OK;
    }
    case MYSQL_TYPE_DOUBLE: {
        if (avail < 8) goto truncated;
        uint64_t bits = get_le8(q);
        double d;
        memcpy(&d, &bits, 8);
        print_real(prm->text, sizeof prm->text, d, false, 15);
        prm->v = value_str(prm->text, strlen(prm->text));
        *p = q + 8;
        return MYSQL_OK;
    }
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_DATETIME:
    case MYSQL_TYPE_TIMESTAMP:
        if (get_param_datetime(p, end, prm, type == MYSQL_TYPE_DATE) != MYSQL_OK) {
            *err = "malformed date parameter";
            return MYSQL_ERROR;
        }
        return MYSQL_OK;
    case MYSQL_TYPE_TIME:
        if (get_param_time(p, end, prm) != MYSQL_OK) {
            *err = "malformed time parameter";
            return MYSQL_ERROR;
        }
        return MYSQL_OK;
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL:
    case MYSQL_TYPE_VARCHAR:
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_STRING:
    case MYSQL_TYPE_TINY_BLOB:
    case MYSQL_TYPE_MEDIUM_BLOB:
    case MYSQL_TYPE_LONG_BLOB:
    case MYSQL_TYPE_BLOB:
    case MYSQL_TYPE_JSON:
    case MYSQL_TYPE_ENUM:
    case MYSQL_TYPE_SET:
    case MYSQL_TYPE_BIT:
    case MYSQL_TYPE_GEOMETRY: {
        const uint8_t *s;
        size_t n;
        if (get_lenenc_str(p, end, &s, &n) != MYSQL_OK) {
            *err = "bad string parameter length";
            return MYSQL_ERROR;
        }
        prm->v = value_str((const char *)s, n);
        return MYSQL_OK;
    }
    default: *err = "unsupported parameter type"; return MYSQL_ERROR;
    }

    if (avail < (size_t)width) goto truncated;
    uint64_t u = width == 8 ? get_le8(q) : get_le(q, width);
    int64_t i;
    if (is_unsigned) {
        if (u > INT64_MAX) {
            *err = "unsigned parameter out of range";
            return MYSQL_ERROR;
        }
        i = (int64_t)u;
    } else if (width == 8) {
        memcpy(&i, &u, 8); /* two's complement without implementation-defined conversion */
    } else {
        uint64_t sign = (uint64_t)1 << (8 * width - 1);
        i = (int64_t)(u ^ sign) - (int64_t)sign; /* sign-extend */
    }
    prm->v = value_int(i);
    *p = q + width;
    return MYSQL_OK;

truncated:
    *err = "parameter value truncated";
    return MYSQL_ERROR;
}

int mysql_parse_stmt_execute(const uint8_t *p, size_t len, uint16_t n_params, uint8_t *types,
                             bool *types_known, const struct buf *const *long_data,
                             struct mysql_param *params, uint32_t *stmt_id, uint8_t *flags,
                             const char **err)
{
    const uint8_t *end = p + len;
    if (len < 10 || p[0] != 0x17) {
        *err = len < 10 ? "COM_STMT_EXECUTE truncated" : "not a COM_STMT_EXECUTE";
        return MYSQL_ERROR;
    }
    *stmt_id = get_le(p + 1, 4);
    *flags = p[5];
    /* p[6..10): iteration count, always 1 in practice and ignored like the server does. */
    const uint8_t *q = p + 10;
    if (n_params == 0) return MYSQL_OK;

    size_t bitmap_len = ((size_t)n_params + 7) / 8;
    if ((size_t)(end - q) < bitmap_len + 1) {
        *err = "COM_STMT_EXECUTE truncated";
        return MYSQL_ERROR;
    }
    const uint8_t *nulls = q;
    q += bitmap_len;
    uint8_t bound = *q++;
    const uint8_t *cur_types;
    if (bound == 1) {
        if ((size_t)(end - q) < 2 * (size_t)n_params) {
            *err = "COM_STMT_EXECUTE truncated";
            return MYSQL_ERROR;
        }
        cur_types = q;
        q += 2 * (size_t)n_params;
    } else if (bound == 0) {
        if (!*types_known) {
            *err = "parameter types were never sent";
            return MYSQL_ERROR;
        }
        cur_types = types;
    } else {
        *err = "bad new-params-bound flag";
        return MYSQL_ERROR;
    }

    for (size_t i = 0; i < n_params; i++) {
        struct mysql_param *prm = &params[i];
        uint8_t type = cur_types[2 * i];
        bool is_unsigned = (cur_types[2 * i + 1] & 0x80) != 0;
        prm->type = (uint16_t)(type | (is_unsigned ? 0x8000 : 0));
        prm->text[0] = 0;
        const struct buf *ld = long_data ? long_data[i] : NULL;
        if (ld) {
            /* Long data has no value in the payload and wins over the NULL bit, as in mysqld. */
            prm->v = value_str(ld->data ? (const char *)buf_head(ld) : "", buf_unread(ld));
        } else if ((nulls[i / 8] >> (i % 8)) & 1 || type == MYSQL_TYPE_NULL) {
            prm->v = value_null();
        } else if (get_param(&q, end, type, is_unsigned, prm, err) != MYSQL_OK) {
            return MYSQL_ERROR;
        }
    }
    if (bound == 1) {
        memcpy(types, cur_types, 2 * (size_t)n_params);
        *types_known = true;
    }
    return MYSQL_OK;
}
