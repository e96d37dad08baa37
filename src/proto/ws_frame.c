/* ws_frame: the WebSocket wire format, sans I/O (see ws_frame.h). Owns frame header parsing and
 * building, masking, message reassembly with incremental UTF-8 validation, close payloads and
 * the handshake key arithmetic. It must never touch a socket, keep global state, or read past
 * buf + len: every length read off the wire is checked against the input and max_payload before
 * it is used, and every violation is a WS_ERROR with a static reason and a close code, never a
 * crash. */
#include "proto/ws_frame.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static int fail(const char **err, uint16_t *close_code, uint16_t code, const char *why)
{
    *err = why;
    *close_code = code;
    return WS_ERROR;
}

/* ---- parsing ------------------------------------------------------------------------------- */

int ws_frame_parse(const uint8_t *buf, size_t len, size_t max_payload, bool expect_masked,
                   struct ws_frame *f, const char **err, uint16_t *close_code)
{
    if (len < 2) return WS_AGAIN;
    uint8_t b0 = buf[0], b1 = buf[1];
    uint8_t opcode = b0 & 0x0f;
    bool fin = (b0 & 0x80) != 0, masked = (b1 & 0x80) != 0;
    uint8_t len7 = b1 & 0x7f;

    if (b0 & 0x70) return fail(err, close_code, WS_CLOSE_PROTOCOL, "RSV bit set");
    switch (opcode) {
    case WS_OP_CONT:
    case WS_OP_TEXT:
    case WS_OP_BINARY: break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!fin) return fail(err, close_code, WS_CLOSE_PROTOCOL, "fragmented control frame");
        if (len7 > WS_MAX_CONTROL_PAYLOAD)
            return fail(err, close_code, WS_CLOSE_PROTOCOL, "control frame payload over 125");
        break;
    default: return fail(err, close_code, WS_CLOSE_PROTOCOL, "unknown opcode");
    }
    if (masked != expect_masked)
        return fail(err, close_code, WS_CLOSE_PROTOCOL,
                    expect_masked ? "unmasked client frame" : "masked server frame");

    size_t pos = 2;
    uint64_t plen = len7;
    if (len7 == 126) {
        if (len < 4) return WS_AGAIN;
        plen = (uint64_t)buf[2] << 8 | buf[3];
        if (plen < 126) return fail(err, close_code, WS_CLOSE_PROTOCOL, "non-minimal length");
        pos = 4;
    } else if (len7 == 127) {
        if (len < 10) return WS_AGAIN;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | buf[2 + i];
        if (plen >> 63)
            return fail(err, close_code, WS_CLOSE_PROTOCOL, "64-bit length with the MSB set");
        if (plen <= 0xffff) return fail(err, close_code, WS_CLOSE_PROTOCOL, "non-minimal length");
        pos = 10;
    }
    if (plen > max_payload) return fail(err, close_code, WS_CLOSE_TOO_BIG, "frame too large");

    memset(f->mask, 0, sizeof f->mask);
    if (masked) {
        if (len - pos < 4) return WS_AGAIN;
        memcpy(f->mask, buf + pos, 4);
        pos += 4;
    }
    /* plen <= max_payload, a size_t, so the cast is exact */
    if (len - pos < (size_t)plen) return WS_AGAIN;

    f->fin = fin;
    f->opcode = opcode;
    f->masked = masked;
    f->payload = buf + pos;
    f->payload_len = (size_t)plen;
    f->header_len = pos;
    f->frame_len = pos + (size_t)plen;
    return WS_OK;
}

void ws_unmask(uint8_t *payload, size_t len, const uint8_t mask[4], size_t offset)
{
    /* The key rotated to start at offset, repeated over 8 bytes: XORing 8 bytes at a time through
     * memcpy keeps the byte order (and alignment) out of it. */
    uint8_t key[8];
    for (size_t i = 0; i < 8; i++)
        key[i] = mask[(offset + i) & 3];
    uint64_t k;
    memcpy(&k, key, 8);
    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, payload + i, 8);
        w ^= k;
        memcpy(payload + i, &w, 8);
    }
    for (; i < len; i++) /* i is a multiple of 8 here, so key[i & 7] continues the pattern */
        payload[i] ^= key[i & 7];
}

/* ---- UTF-8 --------------------------------------------------------------------------------- */

/* The validator's state packs the continuation bytes still needed (bits 0-7) and the range the
 * next one must fall in (lo: bits 8-15, hi: bits 16-23); the ranges after the lead byte are what
 * excludes overlongs (E0, F0), surrogates (ED) and code points above U+10FFFF (F4). */
static uint32_t utf8_need(uint32_t n, uint32_t lo, uint32_t hi)
{
    return n | lo << 8 | hi << 16;
}

bool ws_utf8_feed(uint32_t *state, const uint8_t *s, size_t len)
{
    uint32_t st = *state;
    size_t i = 0;
    while (i < len) {
        if (st == WS_UTF8_ACCEPT) {
            /* ASCII runs, 8 bytes at a time */
            while (len - i >= 8) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & UINT64_C(0x8080808080808080)) break;
                i += 8;
            }
            if (i == len) break;
            uint8_t c = s[i++];
            if (c < 0x80) continue;
            if (c >= 0xc2 && c <= 0xdf)
                st = utf8_need(1, 0x80, 0xbf);
            else if (c == 0xe0)
                st = utf8_need(2, 0xa0, 0xbf);
            else if (c == 0xed)
                st = utf8_need(2, 0x80, 0x9f);
            else if (c >= 0xe1 && c <= 0xef)
                st = utf8_need(2, 0x80, 0xbf);
            else if (c == 0xf0)
                st = utf8_need(3, 0x90, 0xbf);
            else if (c >= 0xf1 && c <= 0xf3)
                st = utf8_need(3, 0x80, 0xbf);
            else if (c == 0xf4)
                st = utf8_need(3, 0x80, 0x8f);
            else {
                *state = st;
                return false; /* 80-bf without a lead, c0/c1 (overlong), f5-ff */
            }
        } else {
            uint8_t c = s[i++];
            uint32_t lo = (st >> 8) & 0xff, hi = (st >> 16) & 0xff, n = st & 0xff;
            if (c < lo || c > hi) {
                *state = st;
                return false;
            }
            st = n == 1 ? WS_UTF8_ACCEPT : utf8_need(n - 1, 0x80, 0xbf);
        }
    }
    *state = st;
    return true;
}

bool ws_utf8_valid(const uint8_t *s, size_t len)
{
    uint32_t st = WS_UTF8_ACCEPT;
    return ws_utf8_feed(&st, s, len) && st == WS_UTF8_ACCEPT;
}

/* ---- messages ------------------------------------------------------------------------------ */

void ws_assembler_init(struct ws_assembler *a)
{
    a->open = false;
    a->opcode = 0;
    a->len = 0;
    a->utf8_state = WS_UTF8_ACCEPT;
}

static int assembler_fail(struct ws_assembler *a, const char **err, uint16_t *close_code,
                          uint16_t code, const char *why)
{
    ws_assembler_init(a);
    return fail(err, close_code, code, why);
}

int ws_assembler_add(struct ws_assembler *a, const struct ws_frame *f,
                     const uint8_t *unmasked_payload, size_t max_message, struct buf *out,
                     bool *complete, uint8_t *opcode, const char **err, uint16_t *close_code)
{
    *complete = false;
    switch (f->opcode) {
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (a->open)
            return assembler_fail(a, err, close_code, WS_CLOSE_PROTOCOL,
                                  "new message before the previous one finished");
        a->open = true;
        a->opcode = f->opcode;
        a->len = 0;
        a->utf8_state = WS_UTF8_ACCEPT;
        break;
    case WS_OP_CONT:
        if (!a->open)
            return assembler_fail(a, err, close_code, WS_CLOSE_PROTOCOL,
                                  "continuation frame without a message");
        break;
    default:
        return assembler_fail(a, err, close_code, WS_CLOSE_PROTOCOL,
                              "control frame given to the assembler");
    }

    if (a->len > max_message || f->payload_len > max_message - a->len)
        return assembler_fail(a, err, close_code, WS_CLOSE_TOO_BIG, "message too large");
    if (a->opcode == WS_OP_TEXT && !ws_utf8_feed(&a->utf8_state, unmasked_payload, f->payload_len))
        return assembler_fail(a, err, close_code, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text");
    if (f->fin && a->opcode == WS_OP_TEXT && a->utf8_state != WS_UTF8_ACCEPT)
        return assembler_fail(a, err, close_code, WS_CLOSE_INVALID_DATA,
                              "text ends inside a UTF-8 sequence");

    buf_append(out, unmasked_payload, f->payload_len);
    a->len += f->payload_len;
    if (f->fin) {
        *complete = true;
        *opcode = a->opcode;
        ws_assembler_init(a);
    }
    return WS_OK;
}

/* ---- building ------------------------------------------------------------------------------ */

size_t ws_frame_header(uint8_t out[WS_MAX_HEADER], bool fin, uint8_t opcode, size_t payload_len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (payload_len <= WS_MAX_CONTROL_PAYLOAD) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    uint64_t v = payload_len;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(v >> (56 - 8 * i));
    return 10;
}

void ws_put_frame(struct buf *out, uint8_t opcode, const void *payload, size_t len)
{
    uint8_t h[WS_MAX_HEADER];
    size_t hl = ws_frame_header(h, true, opcode, len);
    buf_reserve(out, hl + len);
    buf_append(out, h, hl);
    buf_append(out, payload, len);
}

void ws_put_close(struct buf *out, uint16_t code, const char *reason)
{
    uint8_t p[WS_MAX_CONTROL_PAYLOAD];
    size_t n = 0;
    if (code) {
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        n = 2;
        size_t rlen = reason ? strnlen(reason, WS_MAX_CONTROL_PAYLOAD - 1) : 0;
        if (rlen > WS_MAX_CONTROL_PAYLOAD - 2) {
            /* cut before the continuation bytes of the code point that straddles the limit */
            rlen = WS_MAX_CONTROL_PAYLOAD - 2;
            while (rlen > 0 && ((uint8_t)reason[rlen] & 0xc0) == 0x80)
                rlen--;
        }
        if (rlen) memcpy(p + 2, reason, rlen);
        n += rlen;
    }
    ws_put_frame(out, WS_OP_CLOSE, p, n);
}

static bool close_code_valid(uint16_t c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

int ws_parse_close(const uint8_t *p, size_t len, uint16_t *code, const char **reason,
                   size_t *reason_len)
{
    *reason = (const char *)p;
    *reason_len = 0;
    if (len == 0) {
        *code = WS_CLOSE_NO_STATUS;
        return WS_OK;
    }
    if (len == 1) {
        *code = WS_CLOSE_PROTOCOL;
        return WS_ERROR;
    }
    uint16_t c = (uint16_t)(p[0] << 8 | p[1]);
    if (!close_code_valid(c)) {
        *code = WS_CLOSE_PROTOCOL;
        return WS_ERROR;
    }
    if (!ws_utf8_valid(p + 2, len - 2)) {
        *code = WS_CLOSE_INVALID_DATA;
        return WS_ERROR;
    }
    *code = c;
    *reason = (const char *)p + 2;
    *reason_len = len - 2;
    return WS_OK;
}

/* ---- handshake ----------------------------------------------------------------------------- */

void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) || !EVP_DigestUpdate(ctx, key, key_len) ||
        !EVP_DigestUpdate(ctx, guid, sizeof guid - 1) || !EVP_DigestFinal_ex(ctx, md, &md_len))
        abort(); /* out of memory or a broken libcrypto: fatal by policy */
    EVP_MD_CTX_free(ctx);
    EVP_EncodeBlock((unsigned char *)out, md, (int)md_len); /* 28 chars + NUL */
}

static bool is_base64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

bool ws_key_valid(const char *key, size_t len)
{
    if (len != WS_KEY_LEN || key[22] != '=' || key[23] != '=') return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_base64(key[i])) return false;
    /* the 22nd character carries the last 2 bits of byte 16; its 4 low bits must be zero */
    char c = key[21];
    return c == 'A' || c == 'Q' || c == 'g' || c == 'w';
}
