/* libFuzzer target for src/proto/mysql_packet.c. The input is a client byte stream: it is split
 * with mysql_frame_parse under a small max_payload (so that full-size and continuation headers
 * hit the size checks), and every payload goes through each client-packet parser. A few bytes of
 * the input also drive round-trip properties that must always hold: a large payload framed with
 * mysql_put_payload (and built in place with mysql_packet_start/end) parses back identically,
 * and the row builders accept any value in any column type. Never does I/O beyond libFuzzer. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "proto/mysql_packet.h"

#define MAX_PARAMS 64

static void parse_payload(const uint8_t *p, size_t len, uint16_t n_params)
{
    const char *err = NULL;
    struct mysql_handshake_response r;
    (void)mysql_parse_handshake_response(p, len, &r, &err);

    const uint8_t *q = p, *end = p + len;
    uint64_t v;
    while (q < end && mysql_get_lenenc_int(&q, end, &v) != MYSQL_ERROR) {
    }

    uint32_t id;
    (void)mysql_peek_stmt_id(p, len, &id);

    /* COM_STMT_EXECUTE twice: once binding types, once reusing them (new_params_bound = 0). */
    uint8_t types[2 * MAX_PARAMS];
    bool known = false;
    struct mysql_param params[MAX_PARAMS];
    struct buf ld;
    buf_init(&ld);
    buf_append(&ld, p, len < 8 ? len : 8);
    const struct buf *long_data[MAX_PARAMS] = {NULL};
    if (n_params > 1) long_data[1] = &ld;
    uint8_t flags;
    for (int round = 0; round < 2; round++) {
        if (mysql_parse_stmt_execute(p, len, n_params, types, &known, round ? long_data : NULL,
                                     params, &id, &flags, &err) == MYSQL_OK) {
            for (uint16_t i = 0; i < n_params; i++) {
                if (params[i].v.kind == VALUE_STR && params[i].v.len) {
                    /* touch every byte so ASan sees a bad pointer */
                    volatile char c = params[i].v.s[params[i].v.len - 1];
                    (void)c;
                }
            }
        }
        memset(types, 0, sizeof types);
        known = round == 0;
    }
    buf_free(&ld);
}

/* Output side: values carved from the input, written into columns of input-chosen types. */
static void build_rows(const uint8_t *data, size_t size)
{
    static const uint8_t col_types[] = {
        MYSQL_TYPE_TINY,   MYSQL_TYPE_SHORT,      MYSQL_TYPE_LONG,      MYSQL_TYPE_FLOAT,
        MYSQL_TYPE_DOUBLE, MYSQL_TYPE_NULL,       MYSQL_TYPE_TIMESTAMP, MYSQL_TYPE_LONGLONG,
        MYSQL_TYPE_INT24,  MYSQL_TYPE_DATE,       MYSQL_TYPE_TIME,      MYSQL_TYPE_DATETIME,
        MYSQL_TYPE_YEAR,   MYSQL_TYPE_VAR_STRING, MYSQL_TYPE_BLOB,      MYSQL_TYPE_NEWDECIMAL,
    };
    struct mysql_column cols[16];
    struct value vals[16];
    size_t n = 0, at = 0;
    while (n < 16 && size - at >= 2) {
        uint8_t kind = data[at], len = data[at + 1] % 32;
        at += 2;
        if (len > size - at) len = (uint8_t)(size - at);
        memset(&cols[n], 0, sizeof cols[n]);
        cols[n].type = col_types[kind & 15];
        cols[n].name = "c";
        switch (kind >> 6) {
        case 0: vals[n] = value_null(); break;
        case 1: {
            int64_t i = 0;
            memcpy(&i, data + at, len < 8 ? len : 8);
            vals[n] = value_int(i);
            break;
        }
        default: vals[n] = value_str((const char *)data + at, len); break;
        }
        at += len;
        n++;
    }
    struct buf out;
    buf_init(&out);
    uint8_t seq = 1;
    mysql_write_text_row(&out, &seq, vals, n);
    mysql_write_binary_row(&out, &seq, cols, vals, n);
    for (size_t i = 0; i < n; i++)
        mysql_write_column_def(&out, &seq, &cols[i]);
    buf_free(&out);
}

/* A payload around one or two 16 MiB packets framed both ways and parsed back. Expensive, so
 * only for 4-byte inputs "\xcc\x16" + length tweak + seq: few of them, and they add no
 * coverage to mutate around. */
static void large_round_trip(const uint8_t *data)
{
    size_t len = (size_t)MYSQL_MAX_PACKET_PAYLOAD - 4 + data[2] % 8;
    if (data[3] & 1) len += MYSQL_MAX_PACKET_PAYLOAD;
    uint8_t *payload = xmalloc(len);
    memset(payload, data[3], len);
    for (size_t i = 0; i < len; i += 4093)
        payload[i] = (uint8_t)i;

    struct buf a, b, scratch;
    buf_init(&a);
    buf_init(&b);
    buf_init(&scratch);
    uint8_t seq_a = data[3], seq_b = data[3];
    mysql_put_payload(&a, &seq_a, payload, len);
    size_t start = mysql_packet_start(&b);
    buf_append(&b, payload, len);
    mysql_packet_end(&b, start, &seq_b);
    if (seq_a != seq_b || a.len != b.len || memcmp(a.data, b.data, a.len) != 0) abort();

    struct mysql_frame f;
    const char *err = NULL;
    if (mysql_frame_parse(a.data, a.len, len, &scratch, &f, &err) != MYSQL_OK) abort();
    if (f.len != len || f.consumed != a.len || memcmp(f.payload, payload, len) != 0) abort();
    if (mysql_frame_parse(a.data, a.len, len - 1, &scratch, &f, &err) != MYSQL_ERROR) abort();
    if (mysql_frame_parse(a.data, a.len - 1, len, &scratch, &f, &err) != MYSQL_AGAIN) abort();
    xfree(payload);
    buf_free(&a);
    buf_free(&b);
    buf_free(&scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    if (size == 4 && data[0] == 0xcc && data[1] == 0x16) {
        large_round_trip(data);
        return 0;
    }
    uint16_t n_params = data[0] % 24;
    size_t max_payload = 256 + data[0];

    /* Parsers must not rely on bytes past the end: give them an exact-size copy. */
    uint8_t *in = xmalloc(size);
    memcpy(in, data, size);
    struct buf scratch;
    buf_init(&scratch);
    size_t off = 0;
    for (;;) {
        struct mysql_frame f;
        const char *err = NULL;
        int rc = mysql_frame_parse(in + off, size - off, max_payload, &scratch, &f, &err);
        if (rc == MYSQL_AGAIN) break;
        if (rc == MYSQL_ERROR) {
            if (!err) abort();
            break;
        }
        if (f.len > max_payload || f.consumed < 4 + f.len || f.consumed > size - off) abort();
        parse_payload(f.payload, f.len, n_params);
        off += f.consumed;
    }
    /* The raw input as one payload, too. Its first byte is the command (0x17 for an execute),
     * so the parameter count comes from its last byte instead. */
    parse_payload(in, size, data[size - 1] % 24);
    build_rows(in, size);
    buf_free(&scratch);
    xfree(in);
    return 0;
}
