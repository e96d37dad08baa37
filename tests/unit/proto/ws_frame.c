/* Unit tests for src/proto/ws_frame.c: RFC 6455's example frames (§5.7) and accept key (§1.3),
 * every protocol error and its close code, length encodings at every boundary (incl. the
 * 123-125-byte payloads CppComet corrupted), masking, reassembly of fragmented messages with UTF-8
 * validated across fragment boundaries, close payloads and handshake keys. */
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "proto/ws_frame.h"

/* An exact-length heap copy, so that ASan catches any read past the end. */
static uint8_t *dup_exact(const void *p, size_t n)
{
    uint8_t *q = xmalloc(n ? n : 1);
    if (n) memcpy(q, p, n);
    return q;
}

static int parse(const void *bytes, size_t n, size_t max, bool masked, struct ws_frame *f,
                 uint16_t *code)
{
    uint8_t *copy = dup_exact(bytes, n);
    const char *err = NULL;
    *code = 0;
    int rc = ws_frame_parse(copy, n, max, masked, f, &err, code);
    if (rc == WS_ERROR && (!err || !err[0])) test_fail(__FILE__, __LINE__, "no reason given");
    if (rc != WS_ERROR && *code != 0) test_fail(__FILE__, __LINE__, "close code set on success");
    if (rc == WS_OK) f->payload = (const uint8_t *)bytes + (f->payload - copy);
    xfree(copy);
    return rc;
}

/* The close code a frame is refused with (0 if it is not refused). */
static uint16_t refused(const void *bytes, size_t n, size_t max, bool masked)
{
    struct ws_frame f;
    uint16_t code;
    return parse(bytes, n, max, masked, &f, &code) == WS_ERROR ? code : 0;
}

#define REQUIRE(x)                                                                                 \
    do {                                                                                           \
        if (!(x)) return;                                                                          \
    } while (0)

static void fill_pattern(uint8_t *p, size_t n, unsigned salt)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 31u + salt) ^ (i >> 9));
}

/* ---- RFC 6455 §5.7 examples ------------------------------------------------------------------ */

TEST(ws_rfc_hello_unmasked)
{
    static const uint8_t fr[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    struct ws_frame f;
    uint16_t code;
    REQUIRE(parse(fr, sizeof fr, 1024, false, &f, &code) == WS_OK);
    CHECK(f.fin);
    CHECK_INT(f.opcode, WS_OP_TEXT);
    CHECK(!f.masked);
    CHECK_INT(f.payload_len, 5);
    CHECK_INT(f.header_len, 2);
    CHECK_INT(f.frame_len, 7);
    CHECK_MEM(f.payload, "Hello", 5);
    /* a server refuses it: client frames must be masked */
    CHECK_INT(refused(fr, sizeof fr, 1024, true), WS_CLOSE_PROTOCOL);
    CHECK_INT(refused(fr, 2, 1024, true), WS_CLOSE_PROTOCOL); /* known from the 2nd byte */
    /* and ws_put_frame builds exactly these bytes */
    struct buf b;
    buf_init(&b);
    ws_put_frame(&b, WS_OP_TEXT, "Hello", 5);
    CHECK_INT(b.len, sizeof fr);
    CHECK_MEM(b.data, fr, sizeof fr);
    buf_free(&b);
}

TEST(ws_rfc_hello_masked)
{
    static const uint8_t fr[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    uint8_t copy[sizeof fr];
    memcpy(copy, fr, sizeof fr);
    struct ws_frame f;
    const char *err;
    uint16_t code = 0;
    REQUIRE(ws_frame_parse(copy, sizeof copy, 1024, true, &f, &err, &code) == WS_OK);
    CHECK(f.fin && f.masked);
    CHECK_INT(f.opcode, WS_OP_TEXT);
    CHECK_INT(f.header_len, 6);
    CHECK_INT(f.payload_len, 5);
    CHECK_INT(f.frame_len, 11);
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    CHECK_MEM(f.mask, key, 4);
    CHECK(f.payload == copy + 6);
    ws_unmask(copy + f.header_len, f.payload_len, f.mask, 0);
    CHECK_MEM(copy + 6, "Hello", 5);
    /* a client refuses it: server frames are never masked */
    CHECK_INT(refused(fr, sizeof fr, 1024, false), WS_CLOSE_PROTOCOL);
}

TEST(ws_rfc_fragmented_hello)
{
    static const uint8_t f1[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
    static const uint8_t f2[] = {0x80, 0x02, 0x6c, 0x6f};
    struct ws_assembler a;
    ws_assembler_init(&a);
    struct buf msg;
    buf_init(&msg);
    struct ws_frame f;
    uint16_t code;
    bool complete = true;
    uint8_t op = 0;
    const char *err;

    REQUIRE(parse(f1, sizeof f1, 1024, false, &f, &code) == WS_OK);
    CHECK(!f.fin);
    CHECK_INT(f.opcode, WS_OP_TEXT);
    CHECK_INT(ws_assembler_add(&a, &f, f.payload, 1024, &msg, &complete, &op, &err, &code), WS_OK);
    CHECK(!complete);
    CHECK(a.open);

    /* a ping between the fragments is the caller's: the assembler never sees it */
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    REQUIRE(parse(ping, sizeof ping, 1024, false, &f, &code) == WS_OK);
    CHECK_INT(f.opcode, WS_OP_PING);
    CHECK(ws_opcode_is_control(f.opcode));

    REQUIRE(parse(f2, sizeof f2, 1024, false, &f, &code) == WS_OK);
    CHECK(f.fin);
    CHECK_INT(f.opcode, WS_OP_CONT);
    CHECK_INT(ws_assembler_add(&a, &f, f.payload, 1024, &msg, &complete, &op, &err, &code), WS_OK);
    CHECK(complete);
    CHECK_INT(op, WS_OP_TEXT);
    CHECK_INT(buf_unread(&msg), 5);
    CHECK_MEM(buf_head(&msg), "Hello", 5);
    CHECK(!a.open);
    buf_free(&msg);
}

TEST(ws_rfc_ping_and_masked_pong)
{
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct ws_frame f;
    uint16_t code;
    REQUIRE(parse(ping, sizeof ping, 0, false, &f, &code) != WS_OK); /* max_payload 0: 1009 */
    CHECK_INT(code, WS_CLOSE_TOO_BIG);
    REQUIRE(parse(ping, sizeof ping, 125, false, &f, &code) == WS_OK);
    CHECK_INT(f.opcode, WS_OP_PING);
    CHECK_MEM(f.payload, "Hello", 5);
    struct buf b;
    buf_init(&b);
    ws_put_frame(&b, WS_OP_PING, "Hello", 5);
    CHECK_MEM(b.data, ping, sizeof ping);
    buf_free(&b);

    uint8_t copy[sizeof pong];
    memcpy(copy, pong, sizeof pong);
    const char *err;
    REQUIRE(ws_frame_parse(copy, sizeof copy, 125, true, &f, &err, &code) == WS_OK);
    CHECK_INT(f.opcode, WS_OP_PONG);
    ws_unmask(copy + f.header_len, f.payload_len, f.mask, 0);
    CHECK_MEM(copy + f.header_len, "Hello", 5);
}

TEST(ws_rfc_256_bytes_and_64k_binary)
{
    /* 256 bytes: 0x82 0x7E 0x0100; 64 KiB: 0x82 0x7F 0x0000000000010000 */
    static const uint8_t h256[] = {0x82, 0x7e, 0x01, 0x00};
    static const uint8_t h64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
    const size_t sizes[] = {256, 65536};
    const uint8_t *heads[] = {h256, h64k};
    const size_t head_lens[] = {sizeof h256, sizeof h64k};
    for (int k = 0; k < 2; k++) {
        size_t n = head_lens[k] + sizes[k];
        uint8_t *fr = xmalloc(n);
        memcpy(fr, heads[k], head_lens[k]);
        fill_pattern(fr + head_lens[k], sizes[k], 7);
        struct ws_frame f;
        uint16_t code;
        REQUIRE(parse(fr, n, 1 << 20, false, &f, &code) == WS_OK);
        CHECK_INT(f.opcode, WS_OP_BINARY);
        CHECK_INT(f.payload_len, sizes[k]);
        CHECK_INT(f.header_len, head_lens[k]);
        CHECK_INT(f.frame_len, n);
        /* one byte short is AGAIN; a limit one below the size is 1009 from the header alone */
        CHECK_INT(parse(fr, n - 1, 1 << 20, false, &f, &code), WS_AGAIN);
        CHECK_INT(refused(fr, head_lens[k], sizes[k] - 1, false), WS_CLOSE_TOO_BIG);
        CHECK_INT(parse(fr, head_lens[k], sizes[k], false, &f, &code), WS_AGAIN);

        struct buf b;
        buf_init(&b);
        ws_put_frame(&b, WS_OP_BINARY, fr + head_lens[k], sizes[k]);
        CHECK_INT(b.len, n);
        CHECK_MEM(b.data, fr, n);
        buf_free(&b);
        xfree(fr);
    }
}

/* ---- length encodings ------------------------------------------------------------------------ */

TEST(ws_header_lengths_every_boundary)
{
    /* CppComet formatted into a 125-byte buffer with snprintf(buf + 2, 123): 123..125-byte
     * payloads lost their tails. Each length here must come back byte for byte. */
    static const size_t lens[] = {0, 1, 123, 124, 125, 126, 127, 65535, 65536, 1u << 20};
    static const size_t hlen[] = {2, 2, 2, 2, 2, 4, 4, 4, 10, 10};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = lens[i];
        uint8_t *payload = xmalloc(n ? n : 1);
        fill_pattern(payload, n, (unsigned)i);
        uint8_t h[WS_MAX_HEADER];
        CHECK_INT(ws_frame_header(h, true, WS_OP_TEXT, n), hlen[i]);
        CHECK_INT(h[0], 0x81);
        if (hlen[i] == 2) CHECK_INT(h[1], n);
        if (hlen[i] == 4) {
            CHECK_INT(h[1], 126);
            CHECK_INT(h[2] << 8 | h[3], n);
        }
        if (hlen[i] == 10) {
            CHECK_INT(h[1], 127);
            uint64_t v = 0;
            for (int k = 0; k < 8; k++)
                v = v << 8 | h[2 + k];
            CHECK_INT(v, n);
        }
        CHECK_INT(ws_frame_header(h, false, WS_OP_CONT, n), hlen[i]);
        CHECK_INT(h[0], 0x00);

        struct buf b;
        buf_init(&b);
        ws_put_frame(&b, WS_OP_TEXT, payload, n);
        CHECK_INT(b.len, hlen[i] + n);
        struct ws_frame f;
        uint16_t code;
        if (parse(b.data, b.len, 1u << 20, false, &f, &code) != WS_OK) {
            test_fail(__FILE__, __LINE__, "length %zu does not parse back (%d)", n, code);
        } else {
            CHECK_INT(f.payload_len, n);
            CHECK_INT(f.header_len, hlen[i]);
            CHECK_INT(f.frame_len, b.len);
            if (n) CHECK_MEM(f.payload, payload, n);
        }
        buf_free(&b);
        xfree(payload);
    }
}

TEST(ws_cppcomet_123_to_125_byte_payloads_intact)
{
    for (size_t n = 120; n <= 130; n++) {
        char text[131];
        for (size_t i = 0; i < n; i++)
            text[i] = (char)('a' + i % 26);
        struct buf b;
        buf_init(&b);
        ws_put_frame(&b, WS_OP_TEXT, text, n);
        size_t hl = n <= 125 ? 2 : 4;
        CHECK_INT(b.len, hl + n);
        CHECK_MEM(b.data + hl, text, n);
        buf_free(&b);
    }
}

TEST(ws_again_at_every_prefix)
{
    /* masked, 16-bit length, followed by the start of another frame */
    uint8_t fr[4 + 4 + 300 + 3];
    fr[0] = 0x82;
    fr[1] = 0x80 | 126;
    fr[2] = 300 >> 8;
    fr[3] = 300 & 0xff;
    memcpy(fr + 4, "\x01\x02\x03\x04", 4);
    fill_pattern(fr + 8, 300, 3);
    memcpy(fr + 308, "\x81\x85\x00", 3);
    struct ws_frame f;
    uint16_t code;
    for (size_t k = 0; k < 308; k++) {
        int rc = parse(fr, k, 4096, true, &f, &code);
        if (rc != WS_AGAIN) test_fail(__FILE__, __LINE__, "prefix %zu: rc %d", k, rc);
    }
    CHECK_INT(parse(fr, 308, 4096, true, &f, &code), WS_OK);
    CHECK_INT(parse(fr, sizeof fr, 4096, true, &f, &code), WS_OK);
    CHECK_INT(f.frame_len, 308); /* the next frame is left alone */
    CHECK_INT(f.header_len, 8);
    /* 64-bit length: AGAIN until the 10 header bytes (and mask) are in */
    uint8_t big[14] = {0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9};
    for (size_t k = 0; k <= sizeof big; k++)
        CHECK_INT(parse(big, k, 1 << 20, true, &f, &code), WS_AGAIN);
}

/* ---- protocol errors ------------------------------------------------------------------------- */

TEST(ws_protocol_errors_are_1002)
{
    static const struct {
        uint8_t b[14];
        size_t n;
        bool masked;
        const char *what;
    } bad[] = {
        {{0xc1, 0x80}, 2, true, "RSV1"},
        {{0xa1, 0x80}, 2, true, "RSV2"},
        {{0x91, 0x80}, 2, true, "RSV3"},
        {{0x83, 0x80}, 2, true, "opcode 3"},
        {{0x87, 0x80}, 2, true, "opcode 7"},
        {{0x8b, 0x80}, 2, true, "opcode 0xb"},
        {{0x8f, 0x80}, 2, true, "opcode 0xf"},
        {{0x09, 0x80}, 2, true, "ping with FIN=0"},
        {{0x08, 0x80}, 2, true, "close with FIN=0"},
        {{0x0a, 0x80}, 2, true, "pong with FIN=0"},
        {{0x89, 0x80 | 126}, 2, true, "ping with a 16-bit length"},
        {{0x88, 0x80 | 127}, 2, true, "close with a 64-bit length"},
        {{0x81, 0x05}, 2, true, "unmasked client frame"},
        {{0x81, 0x85}, 2, false, "masked server frame"},
        {{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, true, "64-bit length MSB"},
        {{0x82, 0x80 | 126, 0, 125}, 4, true, "non-minimal 16-bit length"},
        {{0x82, 0x80 | 126, 0, 0}, 4, true, "non-minimal 16-bit zero"},
        {{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 10, true, "non-minimal 64-bit"},
        {{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 5}, 10, true, "non-minimal 64-bit small"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint16_t c = refused(bad[i].b, bad[i].n, SIZE_MAX, bad[i].masked);
        if (c != WS_CLOSE_PROTOCOL)
            test_fail(__FILE__, __LINE__, "%s: close code %u, expected 1002", bad[i].what, c);
    }
    /* controls at the 125 limit are fine */
    uint8_t ping[2 + 4 + 125] = {0x89, 0x80 | 125};
    CHECK_INT(refused(ping, sizeof ping, SIZE_MAX, true), 0);
    /* non-minimal is checked before the size limit only when the length is known: 64-bit with
     * the MSB is 1002 even though it is also too large */
    uint8_t msb[10] = {0x82, 0x80 | 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK_INT(refused(msb, sizeof msb, 1024, true), WS_CLOSE_PROTOCOL);
}

TEST(ws_too_big_is_1009_before_the_payload)
{
    uint8_t h[4] = {0x81, 0x80 | 126, 0x04, 0x01}; /* 1025 */
    CHECK_INT(refused(h, 4, 1024, true), WS_CLOSE_TOO_BIG);
    struct ws_frame f;
    uint16_t code;
    CHECK_INT(parse(h, 4, 1025, true, &f, &code), WS_AGAIN);
    uint8_t h7[2] = {0x81, 0x80 | 11};
    CHECK_INT(refused(h7, 2, 10, true), WS_CLOSE_TOO_BIG);
    uint8_t h64[14] = {0x82, 0x80 | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK_INT(refused(h64, 10, SIZE_MAX / 4, true), WS_CLOSE_TOO_BIG);
    CHECK_INT(parse(h64, 14, SIZE_MAX / 2, true, &f, &code), WS_AGAIN); /* exactly 2^63-1 */
}

/* ---- masking --------------------------------------------------------------------------------- */

TEST(ws_unmask_matches_bytewise_at_any_offset_and_alignment)
{
    static const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    uint8_t base[80], work[80 + 8], want[80];
    fill_pattern(base, sizeof base, 11);
    for (size_t align = 0; align < 8; align++)
        for (size_t off = 0; off < 8; off++)
            for (size_t n = 0; n <= 70; n++) {
                memcpy(work + align, base, n);
                ws_unmask(work + align, n, key, off);
                for (size_t i = 0; i < n; i++)
                    want[i] = base[i] ^ key[(off + i) % 4];
                if (memcmp(work + align, want, n) != 0) {
                    test_fail(__FILE__, __LINE__, "align %zu offset %zu len %zu", align, off, n);
                    return;
                }
            }
    /* in pieces, each continuing where the previous stopped */
    for (size_t cut = 0; cut <= 70; cut++) {
        memcpy(work, base, 70);
        ws_unmask(work, cut, key, 0);
        ws_unmask(work + cut, 70 - cut, key, cut);
        for (size_t i = 0; i < 70; i++)
            want[i] = base[i] ^ key[i % 4];
        CHECK_MEM(work, want, 70);
    }
    /* twice is the identity */
    memcpy(work, base, 80);
    ws_unmask(work, 80, key, 3);
    ws_unmask(work, 80, key, 3);
    CHECK_MEM(work, base, 80);
}

/* ---- UTF-8 ----------------------------------------------------------------------------------- */

/* A plain reference decoder: decode, then check the ranges. */
static bool utf8_reference(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i - 1 < k) return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += k + 1;
    }
    return true;
}

TEST(ws_utf8_edge_cases)
{
#define U(s)                                                                                       \
    {                                                                                              \
        (const uint8_t *)s, sizeof s - 1                                                           \
    }
    static const struct {
        const uint8_t *s;
        size_t n;
    } good[] =
        {
            U(""),
            U("plain ASCII, longer than eight bytes"),
            U("\x7f"),
            U("\xc2\x80"),         /* U+0080 */
            U("\xdf\xbf"),         /* U+07FF */
            U("\xe0\xa0\x80"),     /* U+0800 */
            U("\xed\x9f\xbf"),     /* U+D7FF */
            U("\xee\x80\x80"),     /* U+E000 */
            U("\xef\xbf\xbf"),     /* U+FFFF */
            U("\xf0\x90\x80\x80"), /* U+10000 */
            U("\xf0\x9f\x98\x80"), /* U+1F600 */
            U("\xf4\x8f\xbf\xbf"), /* U+10FFFF */
            U("\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xe2\x82\xac \xf0\x9d\x84\x9e!"),
            U("0123456789abcdef\xc3\xa9"), /* a multibyte after an 8-byte ASCII run */
        },
      bad[] = {
          U("\xc0\x80"),         /* overlong NUL */
          U("\xc1\xbf"),         /* overlong */
          U("\xe0\x80\x80"),     /* overlong */
          U("\xe0\x9f\xbf"),     /* overlong U+07FF */
          U("\xf0\x80\x80\x80"), /* overlong */
          U("\xf0\x8f\xbf\xbf"), /* overlong U+FFFF */
          U("\xed\xa0\x80"),     /* U+D800 */
          U("\xed\xbf\xbf"),     /* U+DFFF */
          U("\xf4\x90\x80\x80"), /* U+110000 */
          U("\xf5\x80\x80\x80"),
          U("\xff"),
          U("\xfe"),
          U("\x80"), /* lone continuation */
          U("\xbf"),
          U("a\xc3"), /* cut short */
          U("\xe2\x82"),
          U("\xf0\x9f\x98"),
          U("\xc3\x28"), /* lead then ASCII */
          U("\xe2\x28\xa1"),
          U("\xf0\x9f\x98\x80\x80"), /* extra continuation */
          U("01234567\x80"
            "89abcdef"),
      };
#undef U
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!ws_utf8_valid(good[i].s, good[i].n))
            test_fail(__FILE__, __LINE__, "good[%zu] refused", i);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (ws_utf8_valid(bad[i].s, bad[i].n)) test_fail(__FILE__, __LINE__, "bad[%zu] taken", i);

    /* a cut-short sequence is not an error yet when fed incrementally, only unfinished */
    uint32_t st = WS_UTF8_ACCEPT;
    CHECK(ws_utf8_feed(&st, (const uint8_t *)"a\xf0\x9f", 3));
    CHECK(st != WS_UTF8_ACCEPT);
    CHECK(ws_utf8_feed(&st, (const uint8_t *)"\x98", 1));
    CHECK(ws_utf8_feed(&st, (const uint8_t *)"\x80z", 2));
    CHECK(st == WS_UTF8_ACCEPT);
    st = WS_UTF8_ACCEPT;
    CHECK(ws_utf8_feed(&st, (const uint8_t *)"\xed", 1));
    CHECK(!ws_utf8_feed(&st, (const uint8_t *)"\xa0", 1)); /* a surrogate across calls */
    st = WS_UTF8_ACCEPT;
    CHECK(ws_utf8_feed(&st, (const uint8_t *)"\xf4", 1));
    CHECK(!ws_utf8_feed(&st, (const uint8_t *)"\x90", 1));
}

TEST(ws_utf8_matches_reference_exhaustively)
{
    uint8_t s[4];
    /* every 1- and 2-byte string, every 3-byte string with a lead >= 0xc0, every 4-byte string
     * with an F0-F4 lead and a continuation second byte */
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (uint8_t)a;
        if (ws_utf8_valid(s, 1) != utf8_reference(s, 1)) test_fail(__FILE__, __LINE__, "%02x", a);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            if (ws_utf8_valid(s, 2) != utf8_reference(s, 2))
                test_fail(__FILE__, __LINE__, "%02x %02x", a, b);
            if (a < 0xc0) continue;
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (uint8_t)c;
                if (ws_utf8_valid(s, 3) != utf8_reference(s, 3)) {
                    test_fail(__FILE__, __LINE__, "%02x %02x %02x", a, b, c);
                    return;
                }
                if (a < 0xf0 || a > 0xf4 || b < 0x80 || b > 0xbf || c < 0x80 || c > 0xbf) continue;
                for (unsigned d = 0x70; d < 0xd0; d++) {
                    s[3] = (uint8_t)d;
                    if (ws_utf8_valid(s, 4) != utf8_reference(s, 4)) {
                        test_fail(__FILE__, __LINE__, "%02x %02x %02x %02x", a, b, c, d);
                        return;
                    }
                }
            }
        }
    }
}

/* ---- reassembly ------------------------------------------------------------------------------ */

/* Feeds text split at the given cut points as a fragmented message; returns the assembler's rc
 * of the last call and leaves the message in *msg. */
static int feed_fragments(const uint8_t *s, size_t n, const size_t *cuts, size_t n_cuts,
                          uint8_t first_op, size_t max_message, struct buf *msg, bool *complete,
                          uint16_t *code)
{
    struct ws_assembler a;
    ws_assembler_init(&a);
    size_t start = 0;
    uint8_t op = 0;
    const char *err;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : n;
        struct ws_frame f = {.fin = i == n_cuts,
                             .opcode = i == 0 ? first_op : WS_OP_CONT,
                             .payload_len = end - start};
        uint8_t *piece = dup_exact(s + start, end - start);
        f.payload = piece;
        int rc = ws_assembler_add(&a, &f, piece, max_message, msg, complete, &op, &err, code);
        xfree(piece);
        if (rc != WS_OK) return rc;
        if (*complete && op != first_op) return 99;
        if (*complete != (i == n_cuts)) return 98;
        start = end;
    }
    return WS_OK;
}

TEST(ws_utf8_split_across_fragments_at_every_byte)
{
    static const char text[] = "a\xf0\x9f\x98\x80\xc3\xa9\xe2\x82\xac\xf4\x8f\xbf\xbfz";
    size_t n = sizeof text - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        struct buf msg;
        buf_init(&msg);
        bool complete = false;
        uint16_t code = 0;
        int rc = feed_fragments((const uint8_t *)text, n, &cut, 1, WS_OP_TEXT, 1024, &msg,
                                &complete, &code);
        if (rc != WS_OK || !complete || buf_unread(&msg) != n ||
            memcmp(buf_head(&msg), text, n) != 0)
            test_fail(__FILE__, __LINE__, "cut at %zu: rc %d code %u", cut, rc, code);
        buf_free(&msg);
    }
    /* one byte per fragment, and an empty first fragment */
    size_t cuts[sizeof text];
    for (size_t i = 0; i < n; i++)
        cuts[i] = i;
    struct buf msg;
    buf_init(&msg);
    bool complete = false;
    uint16_t code = 0;
    CHECK_INT(
        feed_fragments((const uint8_t *)text, n, cuts, n, WS_OP_TEXT, 1024, &msg, &complete, &code),
        WS_OK);
    CHECK(complete);
    CHECK_INT(buf_unread(&msg), n);
    buf_free(&msg);
}

TEST(ws_assembler_invalid_utf8_is_1007)
{
    static const struct {
        const char *s;
        size_t cut;
    } bad[] = {
        {"ab\xc0\x80", 3},       /* overlong, split inside */
        {"ab\xed\xa0\x80", 3},   /* surrogate, split after the lead */
        {"\xf4\x90\x80\x80", 1}, /* above U+10FFFF, split after the lead */
        {"ok\xe2\x82", 1},       /* the message ends inside a code point */
        {"\xf0\x9f\x98", 3},     /* likewise, with an empty last fragment */
        {"abc\xff", 4},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct buf msg;
        buf_init(&msg);
        bool complete = true;
        uint16_t code = 0;
        int rc = feed_fragments((const uint8_t *)bad[i].s, strlen(bad[i].s), &bad[i].cut, 1,
                                WS_OP_TEXT, 1024, &msg, &complete, &code);
        if (rc != WS_ERROR || code != WS_CLOSE_INVALID_DATA)
            test_fail(__FILE__, __LINE__, "bad[%zu]: rc %d code %u", i, rc, code);
        buf_free(&msg);
    }
    /* found in the first fragment already (fail fast, RFC 6455 §8.1) */
    struct ws_assembler a;
    ws_assembler_init(&a);
    struct buf msg;
    buf_init(&msg);
    struct ws_frame f = {.fin = false, .opcode = WS_OP_TEXT, .payload_len = 2};
    bool complete;
    uint8_t op;
    const char *err;
    uint16_t code = 0;
    CHECK_INT(ws_assembler_add(&a, &f, (const uint8_t *)"\xc0\x80", 1024, &msg, &complete, &op,
                               &err, &code),
              WS_ERROR);
    CHECK_INT(code, WS_CLOSE_INVALID_DATA);
    CHECK(!a.open); /* reset after an error */
    /* binary messages are not UTF-8 checked */
    buf_free(&msg);
    buf_init(&msg);
    size_t cut = 1;
    CHECK_INT(feed_fragments((const uint8_t *)"\xff\xc0\x80", 3, &cut, 1, WS_OP_BINARY, 1024, &msg,
                             &complete, &code),
              WS_OK);
    CHECK(complete);
    buf_free(&msg);
}

TEST(ws_assembler_sequence_errors_are_1002)
{
    struct ws_assembler a;
    ws_assembler_init(&a);
    struct buf msg;
    buf_init(&msg);
    bool complete;
    uint8_t op;
    const char *err;
    uint16_t code = 0;
    struct ws_frame cont = {.fin = true, .opcode = WS_OP_CONT, .payload_len = 1};
    CHECK_INT(
        ws_assembler_add(&a, &cont, (const uint8_t *)"x", 1024, &msg, &complete, &op, &err, &code),
        WS_ERROR);
    CHECK_INT(code, WS_CLOSE_PROTOCOL);

    struct ws_frame start = {.fin = false, .opcode = WS_OP_BINARY, .payload_len = 1};
    CHECK_INT(
        ws_assembler_add(&a, &start, (const uint8_t *)"x", 1024, &msg, &complete, &op, &err, &code),
        WS_OK);
    struct ws_frame text = {.fin = true, .opcode = WS_OP_TEXT, .payload_len = 1};
    code = 0;
    CHECK_INT(
        ws_assembler_add(&a, &text, (const uint8_t *)"y", 1024, &msg, &complete, &op, &err, &code),
        WS_ERROR);
    CHECK_INT(code, WS_CLOSE_PROTOCOL);

    struct ws_frame ping = {.fin = true, .opcode = WS_OP_PING, .payload_len = 0};
    code = 0;
    CHECK_INT(
        ws_assembler_add(&a, &ping, (const uint8_t *)"", 1024, &msg, &complete, &op, &err, &code),
        WS_ERROR);
    CHECK_INT(code, WS_CLOSE_PROTOCOL);

    /* after the errors the assembler takes a fresh message */
    buf_free(&msg);
    buf_init(&msg);
    CHECK_INT(
        ws_assembler_add(&a, &text, (const uint8_t *)"y", 1024, &msg, &complete, &op, &err, &code),
        WS_OK);
    CHECK(complete);
    CHECK_INT(op, WS_OP_TEXT);
    buf_free(&msg);
}

TEST(ws_assembler_message_too_big_is_1009)
{
    static const char text[] = "0123456789";
    size_t cuts[] = {4, 8};
    struct buf msg;
    bool complete;
    uint16_t code = 0;
    /* exactly at the limit: fine */
    buf_init(&msg);
    CHECK_INT(
        feed_fragments((const uint8_t *)text, 10, cuts, 2, WS_OP_TEXT, 10, &msg, &complete, &code),
        WS_OK);
    CHECK(complete);
    buf_free(&msg);
    /* one byte over, found at the last fragment */
    buf_init(&msg);
    CHECK_INT(
        feed_fragments((const uint8_t *)text, 10, cuts, 2, WS_OP_BINARY, 9, &msg, &complete, &code),
        WS_ERROR);
    CHECK_INT(code, WS_CLOSE_TOO_BIG);
    buf_free(&msg);
    /* a single frame over the limit */
    buf_init(&msg);
    CHECK_INT(
        feed_fragments((const uint8_t *)text, 10, NULL, 0, WS_OP_TEXT, 3, &msg, &complete, &code),
        WS_ERROR);
    CHECK_INT(code, WS_CLOSE_TOO_BIG);
    buf_free(&msg);
    /* an empty message */
    buf_init(&msg);
    CHECK_INT(
        feed_fragments((const uint8_t *)"", 0, NULL, 0, WS_OP_TEXT, 0, &msg, &complete, &code),
        WS_OK);
    CHECK(complete);
    CHECK_INT(buf_unread(&msg), 0);
    buf_free(&msg);
}

/* ---- close ----------------------------------------------------------------------------------- */

TEST(ws_put_close_bytes_and_truncation)
{
    struct buf b;
    buf_init(&b);
    ws_put_close(&b, 1000, "bye");
    static const uint8_t want[] = {0x88, 0x05, 0x03, 0xe8, 'b', 'y', 'e'};
    CHECK_INT(b.len, sizeof want);
    CHECK_MEM(b.data, want, sizeof want);
    buf_free(&b);

    buf_init(&b);
    ws_put_close(&b, 0, "ignored");
    CHECK_INT(b.len, 2);
    CHECK_INT(b.data[0], 0x88);
    CHECK_INT(b.data[1], 0x00);
    buf_free(&b);

    buf_init(&b);
    ws_put_close(&b, WS_CLOSE_TOO_BIG, NULL);
    static const uint8_t want2[] = {0x88, 0x02, 0x03, 0xf1};
    CHECK_MEM(b.data, want2, sizeof want2);
    CHECK_INT(b.len, 4);
    buf_free(&b);

    /* ASCII: exactly 123 bytes of reason fit, more are cut */
    char r[300];
    memset(r, 'x', sizeof r);
    r[299] = '\0';
    buf_init(&b);
    ws_put_close(&b, 1001, r);
    CHECK_INT(b.len, 2 + 125);
    CHECK_INT(b.data[1], 125);
    buf_free(&b);
    r[123] = '\0';
    buf_init(&b);
    ws_put_close(&b, 1001, r);
    CHECK_INT(b.len, 2 + 125);
    buf_free(&b);

    /* a multibyte character straddling the limit is dropped whole, for every split */
    static const char *const chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    for (size_t c = 0; c < 3; c++) {
        size_t cl = strlen(chars[c]);
        for (size_t pad = 118; pad <= 123; pad++) {
            memset(r, 'y', pad);
            memcpy(r + pad, chars[c], cl);
            memcpy(r + pad + cl, "tail", 5);
            buf_init(&b);
            ws_put_close(&b, 4000, r);
            size_t plen = b.data[1];
            CHECK(plen <= 125);
            size_t expect = pad + cl + 4 <= 123 ? pad + cl + 4 : pad + cl <= 123 ? 123 : pad;
            CHECK_INT(plen - 2, expect);
            uint16_t code = 0;
            const char *reason;
            size_t rl;
            CHECK_INT(ws_parse_close(b.data + 2, plen, &code, &reason, &rl), WS_OK);
            CHECK_INT(code, 4000);
            CHECK_INT(rl, expect);
            buf_free(&b);
        }
    }
}

TEST(ws_parse_close_codes)
{
    uint16_t code;
    const char *reason;
    size_t rl = 9;
    CHECK_INT(ws_parse_close((const uint8_t *)"", 0, &code, &reason, &rl), WS_OK);
    CHECK_INT(code, WS_CLOSE_NO_STATUS);
    CHECK_INT(rl, 0);
    CHECK_INT(ws_parse_close((const uint8_t *)"\x03", 1, &code, &reason, &rl), WS_ERROR);
    CHECK_INT(code, WS_CLOSE_PROTOCOL);

    static const struct {
        uint16_t code;
        bool valid;
    } codes[] = {
        {0, false},    {999, false},  {1000, true},   {1001, true}, {1002, true}, {1003, true},
        {1004, false}, {1005, false}, {1006, false},  {1007, true}, {1008, true}, {1009, true},
        {1010, true},  {1011, true},  {1012, true},   {1013, true}, {1014, true}, {1015, false},
        {1016, false}, {2000, false}, {2999, false},  {3000, true}, {3999, true}, {4000, true},
        {4999, true},  {5000, false}, {65535, false},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        uint8_t p[4] = {(uint8_t)(codes[i].code >> 8), (uint8_t)codes[i].code, 'o', 'k'};
        code = 0;
        int rc = ws_parse_close(p, 4, &code, &reason, &rl);
        if (codes[i].valid) {
            CHECK_INT(rc, WS_OK);
            CHECK_INT(code, codes[i].code);
            CHECK(reason == (const char *)p + 2);
            CHECK_INT(rl, 2);
        } else {
            if (rc != WS_ERROR || code != WS_CLOSE_PROTOCOL)
                test_fail(__FILE__, __LINE__, "code %u: rc %d answer %u", codes[i].code, rc, code);
        }
    }
    /* a reason that is not UTF-8 */
    CHECK_INT(ws_parse_close((const uint8_t *)"\x03\xe8\xed\xa0\x80", 5, &code, &reason, &rl),
              WS_ERROR);
    CHECK_INT(code, WS_CLOSE_INVALID_DATA);
    CHECK_INT(ws_parse_close((const uint8_t *)"\x03\xe8\xc3", 3, &code, &reason, &rl), WS_ERROR);
    CHECK_INT(code, WS_CLOSE_INVALID_DATA);
    CHECK_INT(ws_parse_close((const uint8_t *)"\x03\xe8\xc3\xa9", 4, &code, &reason, &rl), WS_OK);
    CHECK_INT(code, 1000);
    CHECK_INT(rl, 2);
}

/* ---- handshake ------------------------------------------------------------------------------- */

TEST(ws_accept_key_rfc_example)
{
    char out[WS_ACCEPT_LEN + 1];
    memset(out, '#', sizeof out);
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* the length is honoured, not strlen */
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==garbage", 24, out);
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* Firefox's key from the http1 tests, checked against Python's hashlib/base64 */
    ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
    CHECK_STR(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

TEST(ws_key_validity)
{
    CHECK(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 24));
    CHECK(ws_key_valid("x3JJHMbDL1EzLkh9GBhXDw==", 24));
    CHECK(ws_key_valid("AAAAAAAAAAAAAAAAAAAAAA==", 24));
    CHECK(ws_key_valid("+/+/+/+/+/+/+/+/+/+/+w==", 24));
    CHECK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 23));
    CHECK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==\0", 25));
    CHECK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZR==", 24)); /* non-canonical last character */
    CHECK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=x", 24));
    CHECK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZQQQ", 24)); /* no padding */
    CHECK(!ws_key_valid("dGhlIHNhbXBsZSBub2*jZQ==", 24));
    CHECK(!ws_key_valid("dGhlIHNhbXBsZSBub25j-Q==", 24)); /* base64url is not base64 */
    CHECK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZ===", 24));
    CHECK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=", 23));
    CHECK(!ws_key_valid("", 0));
}
