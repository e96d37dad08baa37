/* fuzz/ws_frame: libFuzzer target for the WebSocket codec (src/proto/ws_frame.c). Reads the input
 * as a client's byte stream the way a server connection does: parses frame after frame with a
 * small max_payload, unmasks each payload in place, hands control frames to ws_parse_close or
 * drops them, feeds data frames to the assembler and checks each finished text message is UTF-8;
 * then reads it again as a server's stream (unmasked frames expected). Differential checks:
 * ws_unmask against a bytewise XOR, incremental UTF-8 split anywhere against the one-shot
 * validator. Round trips: ws_put_frame and ws_put_close over a slice of the input must parse
 * back (expect_masked = false) to the same opcode and bytes. */
#include "core/buf.h"
#include "proto/ws_frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ENSURE(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

#define MAX_PAYLOAD 4096
#define MAX_MESSAGE 8192

static volatile size_t sink;

static void read_stream(const uint8_t *data, size_t size, bool expect_masked)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) abort();
    if (size) memcpy(buf, data, size);
    struct ws_assembler a;
    ws_assembler_init(&a);
    struct buf msg;
    buf_init(&msg);

    size_t pos = 0;
    while (pos < size) {
        struct ws_frame f;
        const char *err = NULL;
        uint16_t code = 0;
        int rc = ws_frame_parse(buf + pos, size - pos, MAX_PAYLOAD, expect_masked, &f, &err, &code);
        if (rc == WS_AGAIN) break;
        if (rc == WS_ERROR) {
            ENSURE(err && err[0]);
            ENSURE(code == WS_CLOSE_PROTOCOL || code == WS_CLOSE_TOO_BIG);
            break;
        }
        ENSURE(rc == WS_OK && code == 0);
        ENSURE(f.frame_len == f.header_len + f.payload_len && f.frame_len <= size - pos);
        ENSURE(f.header_len >= 2 && f.header_len <= WS_MAX_HEADER);
        ENSURE(f.payload == buf + pos + f.header_len);
        ENSURE(f.payload_len <= MAX_PAYLOAD && f.masked == expect_masked);
        ENSURE(f.opcode <= WS_OP_BINARY || (f.opcode >= WS_OP_CLOSE && f.opcode <= WS_OP_PONG));
        uint8_t *payload = buf + pos + f.header_len;
        if (f.masked) ws_unmask(payload, f.payload_len, f.mask, 0);

        if (ws_opcode_is_control(f.opcode)) {
            ENSURE(f.fin && f.payload_len <= WS_MAX_CONTROL_PAYLOAD);
            if (f.opcode == WS_OP_CLOSE) {
                uint16_t cc = 0;
                const char *reason = NULL;
                size_t rl = 0;
                int crc = ws_parse_close(payload, f.payload_len, &cc, &reason, &rl);
                if (crc == WS_OK) {
                    ENSURE(ws_utf8_valid((const uint8_t *)reason, rl));
                    ENSURE(f.payload_len == 0 ? cc == WS_CLOSE_NO_STATUS : rl + 2 == f.payload_len);
                } else {
                    ENSURE(cc == WS_CLOSE_PROTOCOL || cc == WS_CLOSE_INVALID_DATA);
                }
            }
        } else {
            bool complete = false;
            uint8_t op = 0;
            size_t before = buf_unread(&msg);
            int arc =
                ws_assembler_add(&a, &f, payload, MAX_MESSAGE, &msg, &complete, &op, &err, &code);
            if (arc == WS_OK) {
                ENSURE(buf_unread(&msg) == before + f.payload_len);
                ENSURE(buf_unread(&msg) <= MAX_MESSAGE);
                if (complete) {
                    ENSURE(op == WS_OP_TEXT || op == WS_OP_BINARY);
                    if (op == WS_OP_TEXT) ENSURE(ws_utf8_valid(buf_head(&msg), buf_unread(&msg)));
                    ENSURE(!a.open);
                    buf_consume(&msg, buf_unread(&msg));
                } else {
                    ENSURE(a.open && !f.fin);
                }
            } else {
                ENSURE(arc == WS_ERROR && err && err[0] && !a.open);
                ENSURE(code == WS_CLOSE_PROTOCOL || code == WS_CLOSE_INVALID_DATA ||
                       code == WS_CLOSE_TOO_BIG);
                buf_consume(&msg, buf_unread(&msg)); /* a real connection closes here */
            }
        }
        pos += f.frame_len;
    }
    buf_free(&msg);
    free(buf);
}

static void differential(const uint8_t *data, size_t size)
{
    if (size == 0) return;
    /* UTF-8: incremental at a split point chosen by the input == one shot */
    size_t cut = data[0] % (size + 1);
    uint32_t st = WS_UTF8_ACCEPT;
    bool inc = ws_utf8_feed(&st, data, cut) && ws_utf8_feed(&st, data + cut, size - cut) &&
               st == WS_UTF8_ACCEPT;
    ENSURE(inc == ws_utf8_valid(data, size));

    /* masking: word-at-a-time == bytewise, at any offset and alignment */
    if (size >= 5) {
        uint8_t mask[4];
        memcpy(mask, data, 4);
        size_t off = data[4];
        size_t n = size - 5;
        uint8_t *x = malloc(n + 1);
        if (!x) abort();
        uint8_t *p = x + (data[0] & 1);
        memcpy(p, data + 5, n);
        ws_unmask(p, n, mask, off);
        for (size_t i = 0; i < n; i++)
            ENSURE(p[i] == (uint8_t)(data[5 + i] ^ mask[(off + i) & 3]));
        free(x);
    }

    /* handshake keys */
    if (size >= WS_KEY_LEN) {
        char out[WS_ACCEPT_LEN + 1];
        ws_accept_key((const char *)data, WS_KEY_LEN, out);
        ENSURE(strlen(out) == WS_ACCEPT_LEN && out[WS_ACCEPT_LEN - 1] == '=');
        sink += ws_key_valid((const char *)data, WS_KEY_LEN);
    }
}

static void round_trip(const uint8_t *data, size_t size)
{
    if (size == 0) return;
    static const uint8_t ops[] = {WS_OP_TEXT,  WS_OP_BINARY, WS_OP_CONT,
                                  WS_OP_CLOSE, WS_OP_PING,   WS_OP_PONG};
    uint8_t op = ops[data[0] % sizeof ops];
    const uint8_t *slice = data + 1;
    size_t n = size - 1;
    if (ws_opcode_is_control(op) && n > WS_MAX_CONTROL_PAYLOAD) n = WS_MAX_CONTROL_PAYLOAD;

    struct buf out;
    buf_init(&out);
    ws_put_frame(&out, op, slice, n);
    struct ws_frame f;
    const char *err = NULL;
    uint16_t code = 0;
    ENSURE(ws_frame_parse(buf_head(&out), buf_unread(&out), SIZE_MAX, false, &f, &err, &code) ==
           WS_OK);
    ENSURE(f.fin && f.opcode == op && !f.masked && f.payload_len == n);
    ENSURE(f.frame_len == buf_unread(&out));
    ENSURE(f.header_len == (n <= 125 ? 2u : n <= 0xffff ? 4u : 10u));
    ENSURE(n == 0 || memcmp(f.payload, slice, n) == 0);
    /* one byte short is incomplete */
    ENSURE(ws_frame_parse(buf_head(&out), buf_unread(&out) - 1, SIZE_MAX, false, &f, &err, &code) ==
           WS_AGAIN);
    buf_free(&out);

    /* close: a code from the input mapped into the valid ranges, the rest as the reason */
    if (size >= 2) {
        static const uint16_t bases[] = {1000, 1007, 3000};
        static const uint16_t spans[] = {4, 8, 2000};
        unsigned k = data[0] % 3;
        uint16_t cc = (uint16_t)(bases[k] + data[1] % spans[k]);
        size_t rl = size - 2;
        char *reason = malloc(rl + 1);
        if (!reason) abort();
        memcpy(reason, data + 2, rl);
        reason[rl] = '\0';
        buf_init(&out);
        ws_put_close(&out, cc, reason);
        ENSURE(ws_frame_parse(buf_head(&out), buf_unread(&out), SIZE_MAX, false, &f, &err, &code) ==
               WS_OK);
        ENSURE(f.opcode == WS_OP_CLOSE && f.payload_len >= 2 &&
               f.payload_len <= WS_MAX_CONTROL_PAYLOAD);
        uint16_t got = 0;
        const char *r = NULL;
        size_t got_len = 0;
        size_t sent = f.payload_len - 2;
        ENSURE(sent <= strlen(reason) && memcmp(f.payload + 2, reason, sent) == 0);
        int crc = ws_parse_close(f.payload, f.payload_len, &got, &r, &got_len);
        if (ws_utf8_valid((const uint8_t *)reason, strlen(reason))) {
            /* a valid reason stays valid when cut at a code point boundary */
            ENSURE(crc == WS_OK && got == cc && got_len == sent);
        } else if (crc != WS_OK) {
            ENSURE(got == WS_CLOSE_INVALID_DATA);
        }
        buf_free(&out);
        free(reason);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_stream(data, size, true);
    read_stream(data, size, false);
    differential(data, size);
    round_trip(data, size);
    return 0;
}
