/* fuzz/esl: libFuzzer target for the Event Socket codec (src/proto/esl.c). Runs the input through
 * both parsers in a loop, as a connection would (client commands for the server, server messages
 * for the client), under the default bounds and small ones, and checks the contract: spans inside
 * what was consumed, bounds kept, a complete unit found again from its own bytes and its strict
 * prefix incomplete, errors with a reason. Every plain event is decoded, encoded again as plain
 * (which must parse back to the same headers) and as JSON (which jansson must accept). Last, the
 * URL encoder and decoder round-trip the raw input, and the client command builders' output parses
 * as the command it is. */
#include "proto/esl.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"

#define ENSURE(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

static volatile size_t sink;

static uint8_t *copy_of(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    if (!q) abort();
    if (n) memcpy(q, p, n);
    return q;
}

static void span_in(struct esl_str s, const uint8_t *base, size_t n)
{
    if (!s.ptr) return;
    ENSURE((const uint8_t *)s.ptr >= base && (const uint8_t *)s.ptr + s.len <= base + n);
    for (size_t i = 0; i < s.len; i++)
        sink += (unsigned char)s.ptr[i];
}

/* Whether FreeSWITCH's encoder would leave a '%' of s alone (so decode(encode(s)) != s). */
static bool has_kept_escape(const char *s, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++)
        if (s[i] == '%' && strchr("0123456789ABCDEF", s[i + 1]) && s[i + 1] &&
            strchr("0123456789ABCDEF", s[i + 2]) && s[i + 2])
            return true;
    return false;
}

static void check_command(const uint8_t *data, size_t size, size_t max)
{
    size_t off = 0;
    while (off < size) {
        struct esl_command c;
        const char *err = NULL;
        size_t n = size - off;
        int rc = esl_parse_command(data + off, n, max, &c, &err);
        if (rc == ESL_AGAIN) {
            ENSURE(n < max);
            break;
        }
        if (rc == ESL_ERROR) {
            ENSURE(err && err[0]);
            break;
        }
        ENSURE(rc == ESL_OK);
        ENSURE(c.consumed > 0 && c.consumed <= n && c.consumed <= max);
        ENSURE(c.n_headers <= ESL_MAX_COMMAND_HEADERS);
        ENSURE(c.kind >= ESL_CMD_UNKNOWN && c.kind <= ESL_CMD_SENDMSG);
        const uint8_t *base = data + off;
        span_in(c.line, base, c.consumed);
        span_in(c.verb, base, c.consumed);
        span_in(c.args, base, c.consumed);
        span_in(c.password, base, c.consumed);
        span_in(c.api_command, base, c.consumed);
        span_in(c.api_args, base, c.consumed);
        span_in(c.job_uuid, base, c.consumed);
        span_in(c.names, base, c.consumed);
        span_in(c.filter_header, base, c.consumed);
        span_in(c.filter_value, base, c.consumed);
        span_in(c.log_level, base, c.consumed);
        span_in(c.uuid, base, c.consumed);
        span_in(c.event_name, base, c.consumed);
        for (size_t i = 0; i < c.n_headers; i++) {
            ENSURE(c.headers[i].name.len > 0);
            span_in(c.headers[i].name, base, c.consumed);
            span_in(c.headers[i].value, base, c.consumed);
        }
        if (c.body) {
            ENSURE(c.body >= base && c.body + c.body_len == base + c.consumed);
            ENSURE(c.body_len > 0);
        }
        if (c.kind == ESL_CMD_API || c.kind == ESL_CMD_BGAPI) ENSURE(c.api_command.len > 0);
        if (c.names.ptr) {
            const char *p = c.names.ptr, *end = p + c.names.len;
            struct esl_str w;
            size_t words = 0;
            while (esl_next_word(&p, end, &w)) {
                ENSURE(w.len > 0);
                words++;
            }
            ENSURE(words == c.n_names);
        }
        /* the command alone parses the same; one byte less is incomplete */
        uint8_t *copy = copy_of(base, c.consumed);
        struct esl_command again;
        ENSURE(esl_parse_command(copy, c.consumed, max, &again, &err) == ESL_OK);
        ENSURE(again.consumed == c.consumed && again.kind == c.kind &&
               again.n_headers == c.n_headers);
        ENSURE(esl_parse_command(copy, c.consumed - 1, max, &again, &err) == ESL_AGAIN);
        free(copy);
        off += c.consumed;
    }
}

static void check_event(const struct esl_message *m, struct arena *a)
{
    struct esl_event ev;
    const char *err = NULL;
    ENSURE(esl_message_event(m, a, &ev, &err) == ESL_OK);
    ENSURE(ev.n_headers == m->event_n_headers);
    ENSURE(ev.body_len == m->event_body_len);
    size_t n = 0;
    for (size_t i = 0; i < ev.n_headers; i++)
        sink += esl_event_get(&ev, ev.headers[i].name, &n) != NULL;

    /* plain again: it parses back to the same headers, decoded alike when nothing was kept */
    struct buf out;
    buf_init(&out);
    ENSURE(esl_put_event(&out, ESL_FORMAT_PLAIN, &ev) == ESL_OK);
    struct esl_message m2;
    ENSURE(esl_parse_message(buf_head(&out), buf_unread(&out), 0, &m2, &err) == ESL_OK);
    ENSURE(m2.consumed == buf_unread(&out) && m2.type == ESL_MSG_EVENT_PLAIN);
    struct esl_event ev2;
    ENSURE(esl_message_event(&m2, a, &ev2, &err) == ESL_OK);
    ENSURE(ev2.n_headers == ev.n_headers);
    for (size_t i = 0; i < ev.n_headers; i++) {
        const struct esl_header *h = &ev.headers[i], *h2 = &ev2.headers[i];
        ENSURE(h->name_len == h2->name_len || h->name_len == 0);
        if (h->value_len == 0) continue; /* sent as _undef_ */
        if (has_kept_escape(h->value, h->value_len)) continue;
        ENSURE(h2->value_len == h->value_len && memcmp(h->value, h2->value, h->value_len) == 0);
    }
    if (ev.body_len) ENSURE(ev2.body_len == ev.body_len);

    /* JSON: valid whenever the text is ASCII (jansson insists on UTF-8) */
    out.len = out.off = 0;
    esl_event_put_json(&out, &ev);
    bool ascii = true;
    for (size_t i = 0; i < buf_unread(&out); i++)
        ascii &= buf_head(&out)[i] < 0x80;
    if (ascii) {
        json_error_t jerr;
        json_t *root =
            json_loadb((const char *)buf_head(&out), buf_unread(&out), JSON_ALLOW_NUL, &jerr);
        ENSURE(root != NULL);
        json_decref(root);
    }
    buf_free(&out);
}

static void check_message(const uint8_t *data, size_t size, size_t max, struct arena *a)
{
    size_t off = 0;
    while (off < size) {
        struct esl_message m;
        const char *err = NULL;
        size_t n = size - off;
        int rc = esl_parse_message(data + off, n, max, &m, &err);
        if (rc == ESL_AGAIN) {
            ENSURE(n < max);
            break;
        }
        if (rc == ESL_ERROR) {
            ENSURE(err && err[0]);
            break;
        }
        ENSURE(rc == ESL_OK);
        const uint8_t *base = data + off;
        ENSURE(m.consumed > 0 && m.consumed <= n && m.consumed <= max);
        ENSURE(m.n_headers > 0 && m.n_headers <= ESL_MAX_MESSAGE_HEADERS);
        for (size_t i = 0; i < m.n_headers; i++) {
            span_in(m.headers[i].name, base, m.consumed);
            span_in(m.headers[i].value, base, m.consumed);
        }
        span_in(m.content_type, base, m.consumed);
        span_in(m.reply_text, base, m.consumed);
        span_in(m.job_uuid, base, m.consumed);
        if (m.body) ENSURE(m.body >= base && m.body + m.body_len == base + m.consumed);
        if (m.type == ESL_MSG_EVENT_PLAIN) {
            ENSURE(m.body && m.event_block == m.body);
            ENSURE(m.event_n_headers <= ESL_MAX_EVENT_HEADERS);
            ENSURE(m.event_block_len < m.body_len);
            if (m.event_body) ENSURE(m.event_body + m.event_body_len == m.body + m.body_len);
            arena_reset(a);
            check_event(&m, a);
        }
        uint8_t *copy = copy_of(base, m.consumed);
        struct esl_message again;
        ENSURE(esl_parse_message(copy, m.consumed, max, &again, &err) == ESL_OK);
        ENSURE(again.consumed == m.consumed && again.type == m.type);
        ENSURE(esl_parse_message(copy, m.consumed - 1, max, &again, &err) == ESL_AGAIN);
        free(copy);
        off += m.consumed;
    }
}

static void check_url(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t elen = esl_url_encoded_len(s, size);
    ENSURE(elen >= size && elen <= 3 * size);
    char *enc = malloc(elen ? elen : 1), *enc2 = malloc(3 * elen + 1), *dec = malloc(elen + 1);
    if (!enc || !enc2 || !dec) abort();
    ENSURE(esl_url_encode(s, size, enc) == elen);
    for (size_t i = 0; i < elen; i++) /* only bytes that need no encoding, and escapes */
        ENSURE(enc[i] > 0x20 && enc[i] < 0x7f && !strchr("#&+:;<=>?@[\\]^`{|}\" ", enc[i]));
    /* idempotent on its own output */
    ENSURE(esl_url_encode(enc, elen, enc2) == elen && memcmp(enc, enc2, elen) == 0);
    size_t dlen = esl_url_decode(enc, elen, dec);
    if (!has_kept_escape(s, size)) ENSURE(dlen == size && memcmp(dec, s, size) == 0);
    /* decoding the raw input, in place too */
    size_t d1 = esl_url_decode(s, size, dec);
    ENSURE(d1 <= size);
    char *inplace = (char *)copy_of(data, size);
    ENSURE(esl_url_decode(inplace, size, inplace) == d1 && memcmp(inplace, dec, d1) == 0);
    free(inplace);
    free(enc);
    free(enc2);
    free(dec);
}

static void check_client_builders(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 4096) return;
    char *line = malloc(size + 1);
    if (!line) abort();
    memcpy(line, data, size);
    line[size] = '\0';
    struct buf out;
    buf_init(&out);
    if (esl_put_client_api(&out, line) == ESL_OK) {
        struct esl_command c;
        const char *err;
        ENSURE(esl_parse_command(buf_head(&out), buf_unread(&out), 0, &c, &err) == ESL_OK);
        ENSURE(c.consumed == buf_unread(&out));
        ENSURE(c.kind == ESL_CMD_API || c.kind == ESL_CMD_UNKNOWN);
    } else {
        ENSURE(buf_unread(&out) == 0);
        ENSURE(strpbrk(line, "\r\n") != NULL);
    }
    out.len = out.off = 0;
    if (esl_put_client_bgapi(&out, "status", line) == ESL_OK) {
        struct esl_command c;
        const char *err;
        ENSURE(esl_parse_command(buf_head(&out), buf_unread(&out), 0, &c, &err) == ESL_OK);
        ENSURE(c.kind == ESL_CMD_BGAPI);
    }
    buf_free(&out);
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena a;
    arena_init(&a);
    check_command(data, size, ESL_DEFAULT_MAX_COMMAND);
    check_command(data, size, 64);
    check_message(data, size, ESL_DEFAULT_MAX_MESSAGE, &a);
    check_message(data, size, 256, &a);
    check_url(data, size);
    check_client_builders(data, size);
    arena_free(&a);
    return 0;
}
