/* envelope: JSON writing for browser messages; see envelope.h. */
#include "proto/envelope.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void env_put_string(struct buf *b, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    buf_reserve(b, len + 2);
    buf_put_u8(b, '"');
    size_t run = 0; /* bytes copied verbatim in one go */
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            run++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = utf8_seq(s + i, len - i);
            if (n) {
                i += n;
                run += n;
                continue;
            }
        }
        buf_append(b, s + i - run, run);
        run = 0;
        char esc[8];
        switch (c) {
        case '"': buf_append(b, "\\\"", 2); break;
        case '\\': buf_append(b, "\\\\", 2); break;
        case '\n': buf_append(b, "\\n", 2); break;
        case '\r': buf_append(b, "\\r", 2); break;
        case '\t': buf_append(b, "\\t", 2); break;
        case '\b': buf_append(b, "\\b", 2); break;
        case '\f': buf_append(b, "\\f", 2); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                buf_append(b, esc, 6);
            } else {
                buf_append(b, "\xef\xbf\xbd", 3); /* invalid UTF-8 byte -> U+FFFD */
            }
        }
        i++;
    }
    buf_append(b, s + len - run, run);
    buf_put_u8(b, '"');
}

static void key(struct buf *b, const char *k)
{
    if (b->len > b->off && b->data[b->len - 1] != '{') buf_put_u8(b, ',');
    buf_put_u8(b, '"');
    buf_append(b, k, strlen(k));
    buf_append(b, "\":", 2);
}

void env_begin(struct buf *b)
{
    buf_put_u8(b, '{');
}

void env_str(struct buf *b, const char *k, const char *s, size_t len)
{
    key(b, k);
    env_put_string(b, s, len);
}

void env_cstr(struct buf *b, const char *k, const char *s)
{
    env_str(b, k, s, strlen(s));
}

void env_int(struct buf *b, const char *k, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRId64, v);
    key(b, k);
    buf_append(b, num, (size_t)n);
}

void env_bool(struct buf *b, const char *k, bool v)
{
    key(b, k);
    buf_append(b, v ? "true" : "false", v ? 4 : 5);
}

void env_raw(struct buf *b, const char *k, const char *json, size_t len)
{
    key(b, k);
    buf_append(b, json, len);
}

void env_end(struct buf *b)
{
    buf_put_u8(b, '}');
}
