/* ws_frame: the WebSocket wire format (RFC 6455), sans I/O. Owns frame headers (parsing and
 * building), masking, reassembly of fragmented messages with incremental UTF-8 validation of text,
 * close payloads, and the handshake's key arithmetic (Sec-WebSocket-Key/-Accept). We negotiate no
 * extensions, so every RSV bit is a protocol error. It never touches a socket and holds no global
 * state. Parsers return WS_OK / WS_AGAIN / WS_ERROR with a static reason in *err and the close
 * code to send (1002 protocol error, 1007 invalid payload data, 1009 message too big); builders
 * append whole server frames (FIN set, unmasked) to a struct buf. */
#ifndef CC_WS_FRAME_H
#define CC_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum { WS_OK = 0, WS_AGAIN = 1, WS_ERROR = -1 };

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xa,
};

/* Close codes (RFC 6455 §7.4.1, IANA registry). */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* never sent: an empty close payload */
    WS_CLOSE_ABNORMAL = 1006,  /* never sent: the connection dropped */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_MANDATORY_EXT = 1010,
    WS_CLOSE_INTERNAL = 1011,
};

#define WS_MAX_HEADER          14  /* 2 + 8-byte length + 4-byte mask */
#define WS_MAX_CONTROL_PAYLOAD 125 /* control frames: close, ping, pong */
#define WS_ACCEPT_LEN          28  /* base64 of a SHA-1 */
#define WS_KEY_LEN             24  /* base64 of 16 bytes */

static inline bool ws_opcode_is_control(uint8_t opcode)
{
    return (opcode & 0x8) != 0;
}

struct ws_frame {
    bool fin;
    uint8_t opcode; /* enum ws_opcode */
    bool masked;
    uint8_t mask[4];        /* masking key when masked, else zeros */
    const uint8_t *payload; /* (transfer none) into the input, still masked; buf + header_len */
    size_t payload_len;
    size_t header_len; /* 2..14: the payload starts here in the caller's (mutable) buffer */
    size_t frame_len;  /* header_len + payload_len: what to consume */
};

/* Parses the frame at the start of buf[0..len). WS_OK: the whole frame (header and payload) is in
 * buf and *f describes it. WS_AGAIN: more bytes are needed (nothing is wrong so far). WS_ERROR:
 * *err is a static reason and *close_code the code to close with:
 *   1002: an RSV bit set, an unknown opcode, a control frame with FIN=0 or a payload > 125, a
 *         mask bit different from expect_masked (a server gets masked frames only, RFC 6455 §5.1;
 *         a client unmasked ones only), a 64-bit length with its most significant bit set, a
 *         length not in its minimal encoding (RFC 6455 §5.2 "the minimal number of bytes MUST be
 *         used");
 *   1009: a payload longer than max_payload, reported as soon as the length is known, before the
 *         payload is buffered.
 * *close_code is only written on WS_ERROR. */
int ws_frame_parse(const uint8_t *buf, size_t len, size_t max_payload, bool expect_masked,
                   struct ws_frame *f, const char **err, uint16_t *close_code);

/* XORs payload[0..len) in place with the masking key, starting at key byte offset % 4: a payload
 * unmasked in pieces passes the number of bytes already unmasked as offset. (Each frame has its
 * own key, so fragments of a message start at offset 0 again.) */
void ws_unmask(uint8_t *payload, size_t len, const uint8_t mask[4], size_t offset);

/* ---- UTF-8 --------------------------------------------------------------------------------- */

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF. */
bool ws_utf8_valid(const uint8_t *s, size_t len);

/* Incremental validation: *state starts at WS_UTF8_ACCEPT; each call feeds the next bytes and
 * returns false at the first byte that cannot be part of valid UTF-8 (whatever follows). A text is
 * valid when every call returned true and *state is WS_UTF8_ACCEPT at its end (else a sequence is
 * cut short). */
#define WS_UTF8_ACCEPT 0u
bool ws_utf8_feed(uint32_t *state, const uint8_t *s, size_t len);

/* ---- messages ------------------------------------------------------------------------------ */

/* Reassembles data frames into messages. The caller handles control frames (which may arrive
 * between fragments) itself and passes only text, binary and continuation frames. */
struct ws_assembler {
    bool open;           /* a message has started and not finished */
    uint8_t opcode;      /* WS_OP_TEXT or WS_OP_BINARY: the open message's */
    size_t len;          /* bytes of the open message so far */
    uint32_t utf8_state; /* text: the validator's state across fragments */
};

void ws_assembler_init(struct ws_assembler *a);

/* Adds one data frame whose payload the caller has unmasked (unmasked_payload[0..f->payload_len))
 * and appends the payload to out. out holds the message being assembled and nothing else: pass it
 * empty when a message starts, and take the message (buf_head(out), buf_unread(out)) and empty it
 * after *complete. WS_OK with *complete set when f finishes the message (*opcode then says text
 * or binary; a text message is valid UTF-8 as a whole), *complete false when more fragments must
 * follow. WS_ERROR (the connection must close with *close_code):
 *   1002: a continuation frame with no message open, a text/binary frame while one is open, or a
 *         control frame given to the assembler;
 *   1009: the message would exceed max_message bytes;
 *   1007: a text message that is not UTF-8 (found as soon as the offending fragment arrives) or
 *         that ends inside a code point.
 * After an error the assembler is reset. */
int ws_assembler_add(struct ws_assembler *a, const struct ws_frame *f,
                     const uint8_t *unmasked_payload, size_t max_message, struct buf *out,
                     bool *complete, uint8_t *opcode, const char **err, uint16_t *close_code);

/* ---- building server frames ------------------------------------------------------------------ */

/* Writes an unmasked frame header into out and returns its length (2, 4 or 10): the payload
 * length in 7 bits (0..125), 126 + 16 bits (126..65535) or 127 + 64 bits, the minimal form. */
size_t ws_frame_header(uint8_t out[WS_MAX_HEADER], bool fin, uint8_t opcode, size_t payload_len);

/* Appends one whole frame (FIN set, unmasked) to out. A control opcode takes at most 125 bytes:
 * the caller's business (RFC 6455 §5.5). */
void ws_put_frame(struct buf *out, uint8_t opcode, const void *payload, size_t len);

/* Appends a close frame: code (big-endian) and reason (nullable, NUL-terminated, UTF-8) truncated
 * to 123 bytes at a UTF-8 boundary, so the payload is at most 125 bytes. code 0 sends an empty
 * payload (no status). 1005, 1006 and 1015 must not be sent: the caller's business. */
void ws_put_close(struct buf *out, uint16_t code, const char *reason);

/* Parses a close frame's (unmasked) payload. WS_OK: *code is the status (1005 for an empty
 * payload) and *reason and *reason_len the UTF-8 reason (transfer none, into p; empty if none).
 * WS_ERROR: *code is the close code to answer with instead: 1002 for a 1-byte payload or a code
 * that may not be sent (valid: 1000-1003, 1007-1014, 3000-4999), 1007 for a reason that is not
 * UTF-8. */
int ws_parse_close(const uint8_t *p, size_t len, uint16_t *code, const char **reason,
                   size_t *reason_len);

/* ---- handshake ------------------------------------------------------------------------------- */

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + the RFC 6455 GUID)), written as
 * 28 characters and a NUL. */
void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

/* Whether key is a valid Sec-WebSocket-Key: the canonical base64 of 16 bytes, i.e. 22 base64
 * characters (the last one carrying 2 bits, so one of A Q g w) and "==". */
bool ws_key_valid(const char *key, size_t len);

#endif
