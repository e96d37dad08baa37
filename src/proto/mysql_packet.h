/* mysql_packet: the MySQL client/server wire format, sans I/O. Splits a byte stream into logical
 * payloads (4-byte headers, 16 MiB continuation packets), parses the client's packets
 * (HandshakeResponse41, SSLRequest, COM_STMT_EXECUTE) and builds the server's (HandshakeV10, OK,
 * ERR, EOF, column definitions, text and binary rows, auth switch, COM_STMT_PREPARE_OK).
 * It never touches a socket and holds no global state. Parsers return MYSQL_OK / MYSQL_AGAIN /
 * MYSQL_ERROR with a static reason in *err; builders append whole packets to a struct buf and
 * advance the caller's sequence id. */
#ifndef CC_MYSQL_PACKET_H
#define CC_MYSQL_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/value.h"

enum { MYSQL_OK = 0, MYSQL_AGAIN = 1, MYSQL_ERROR = -1 };

#define MYSQL_MAX_PACKET_PAYLOAD 0xffffffu /* one physical packet; larger payloads continue */

/* Capability flags (the subset we read or advertise). */
#define CLIENT_LONG_PASSWORD                  0x00000001u
#define CLIENT_FOUND_ROWS                     0x00000002u
#define CLIENT_LONG_FLAG                      0x00000004u
#define CLIENT_CONNECT_WITH_DB                0x00000008u
#define CLIENT_NO_SCHEMA                      0x00000010u
#define CLIENT_COMPRESS                       0x00000020u
#define CLIENT_ODBC                           0x00000040u
#define CLIENT_LOCAL_FILES                    0x00000080u
#define CLIENT_IGNORE_SPACE                   0x00000100u
#define CLIENT_PROTOCOL_41                    0x00000200u
#define CLIENT_INTERACTIVE                    0x00000400u
#define CLIENT_SSL                            0x00000800u
#define CLIENT_IGNORE_SIGPIPE                 0x00001000u
#define CLIENT_TRANSACTIONS                   0x00002000u
#define CLIENT_RESERVED                       0x00004000u
#define CLIENT_SECURE_CONNECTION              0x00008000u
#define CLIENT_MULTI_STATEMENTS               0x00010000u
#define CLIENT_MULTI_RESULTS                  0x00020000u
#define CLIENT_PS_MULTI_RESULTS               0x00040000u
#define CLIENT_PLUGIN_AUTH                    0x00080000u
#define CLIENT_CONNECT_ATTRS                  0x00100000u
#define CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA 0x00200000u
#define CLIENT_SESSION_TRACK                  0x00800000u
#define CLIENT_DEPRECATE_EOF                  0x01000000u

/* Status flags. */
#define SERVER_STATUS_AUTOCOMMIT   0x0002u
#define SERVER_MORE_RESULTS_EXISTS 0x0008u

/* Column types we emit or accept. */
enum mysql_type {
    MYSQL_TYPE_DECIMAL = 0x00,
    MYSQL_TYPE_TINY = 0x01,
    MYSQL_TYPE_SHORT = 0x02,
    MYSQL_TYPE_LONG = 0x03,
    MYSQL_TYPE_FLOAT = 0x04,
    MYSQL_TYPE_DOUBLE = 0x05,
    MYSQL_TYPE_NULL = 0x06,
    MYSQL_TYPE_TIMESTAMP = 0x07,
    MYSQL_TYPE_LONGLONG = 0x08,
    MYSQL_TYPE_INT24 = 0x09,
    MYSQL_TYPE_DATE = 0x0a,
    MYSQL_TYPE_TIME = 0x0b,
    MYSQL_TYPE_DATETIME = 0x0c,
    MYSQL_TYPE_YEAR = 0x0d,
    MYSQL_TYPE_VARCHAR = 0x0f,
    MYSQL_TYPE_BIT = 0x10,
    MYSQL_TYPE_JSON = 0xf5,
    MYSQL_TYPE_NEWDECIMAL = 0xf6,
    MYSQL_TYPE_ENUM = 0xf7,
    MYSQL_TYPE_SET = 0xf8,
    MYSQL_TYPE_TINY_BLOB = 0xf9,
    MYSQL_TYPE_MEDIUM_BLOB = 0xfa,
    MYSQL_TYPE_LONG_BLOB = 0xfb,
    MYSQL_TYPE_BLOB = 0xfc,
    MYSQL_TYPE_VAR_STRING = 0xfd,
    MYSQL_TYPE_STRING = 0xfe,
    MYSQL_TYPE_GEOMETRY = 0xff,
};

/* Column definition flags. */
#define MYSQL_FLAG_NOT_NULL 0x0001u
#define MYSQL_FLAG_PRI_KEY  0x0002u
#define MYSQL_FLAG_BINARY   0x0080u
#define MYSQL_FLAG_UNSIGNED 0x0020u

#define MYSQL_CHARSET_UTF8MB4_GENERAL_CI 45
#define MYSQL_CHARSET_BINARY             63

/* ---- framing ---------------------------------------------------------------------------- */

struct mysql_frame {
    size_t consumed;        /* input bytes this payload used, headers included */
    uint8_t seq;            /* sequence id of the payload's last physical packet */
    const uint8_t *payload; /* (transfer none) into the input, or into scratch when joined */
    size_t len;
};

/* Finds the next complete logical payload at the start of in[0..in_len). A payload longer than
 * 0xffffff bytes arrives as several packets (each full one followed by the next, the last one
 * shorter, possibly empty); they are joined into *scratch (reset first). Returns MYSQL_AGAIN when
 * more bytes are needed, MYSQL_ERROR as soon as the payload is known to exceed max_payload. */
int mysql_frame_parse(const uint8_t *in, size_t in_len, size_t max_payload, struct buf *scratch,
                      struct mysql_frame *f, const char **err);

/* Appends one logical payload as packets, splitting at 0xffffff; *seq is the id of the first
 * packet and is left at the id for the next one. */
void mysql_put_payload(struct buf *out, uint8_t *seq, const void *payload, size_t len);

/* Building a packet in place: start reserves the 4-byte header and returns its offset from
 * buf_head(out) (not from out->data: buf_reserve may compact the buffer while the payload is being
 * appended, which moves the head to data[0] but keeps offsets from the head valid); end fills the
 * header(s) in, splitting an over-long payload into continuation packets. Nothing may be consumed
 * from out between the two calls. */
size_t mysql_packet_start(struct buf *out);
void mysql_packet_end(struct buf *out, size_t start, uint8_t *seq);

/* ---- integers and strings ---------------------------------------------------------------- */

void mysql_put_int2(struct buf *b, uint16_t v);
void mysql_put_int3(struct buf *b, uint32_t v);
void mysql_put_int4(struct buf *b, uint32_t v);
void mysql_put_int8(struct buf *b, uint64_t v);
void mysql_put_lenenc_int(struct buf *b, uint64_t v); /* 1, 3, 4 or 9 bytes as the value needs */
void mysql_put_lenenc_str(struct buf *b, const void *s, size_t n);
size_t mysql_lenenc_int_size(uint64_t v);

/* Reads a length-encoded integer at *p (< end) and advances *p. 0xfb (NULL) gives MYSQL_AGAIN
 * with *v = 0 so that row readers can tell it apart; 0xff or truncation gives MYSQL_ERROR. */
int mysql_get_lenenc_int(const uint8_t **p, const uint8_t *end, uint64_t *v);

/* ---- connection phase --------------------------------------------------------------------- */

struct mysql_handshake {
    uint32_t connection_id;
    const char *server_version;
    uint8_t scramble[20]; /* the 20 random auth-plugin-data bytes, none of them 0 */
    uint32_t capabilities;
    uint8_t charset;
    uint16_t status;
    const char *auth_plugin; /* "mysql_native_password" */
};
void mysql_write_handshake_v10(struct buf *out, const struct mysql_handshake *h); /* seq 0 */

struct mysql_handshake_response {
    bool ssl_request; /* a 32-byte SSLRequest: only capabilities/max_packet/charset are set */
    uint32_t capabilities;
    uint32_t max_packet;
    uint8_t charset;
    const char *user; /* (transfer none) into the payload, not NUL-terminated */
    size_t user_len;
    const uint8_t *auth; /* auth response bytes */
    size_t auth_len;
    const char *database; /* (nullable) only with CLIENT_CONNECT_WITH_DB */
    size_t database_len;
    const char *auth_plugin; /* (nullable) only with CLIENT_PLUGIN_AUTH */
    size_t auth_plugin_len;
};
/* Parses a HandshakeResponse41 (or the SSLRequest that precedes it under TLS). Connect attributes
 * are validated for length and skipped. Pre-4.1 (HandshakeResponse320) is refused. */
int mysql_parse_handshake_response(const uint8_t *p, size_t len, struct mysql_handshake_response *r,
                                   const char **err);

/* AuthSwitchRequest: 0xfe, plugin name NUL, plugin data (the scramble and a NUL). */
void mysql_write_auth_switch(struct buf *out, uint8_t *seq, const char *plugin,
                             const uint8_t scramble[20]);

/* mysql_native_password: token == SHA1(pw) XOR SHA1(scramble || SHA1(SHA1(pw))), compared in
 * constant time. An empty token matches only an empty password. */
bool mysql_native_password_check(const uint8_t scramble[20], const char *password, size_t pw_len,
                                 const uint8_t *token, size_t token_len);
/* What a server keeps instead of the password: SHA1(SHA1(pw)) (mysql.user's hash). */
void mysql_native_password_hash(const char *password, size_t pw_len, uint8_t out[20]);
/* mysql_native_password against that hash alone: SHA1(token XOR SHA1(scramble || hash)) must be
 * the hash. An empty token never matches. */
bool mysql_native_password_check_hash(const uint8_t scramble[20], const uint8_t hash[20],
                                      const uint8_t *token, size_t token_len);
/* The client side of the same computation (20 bytes out), for tests and tools. */
void mysql_native_password_token(const uint8_t scramble[20], const char *password, size_t pw_len,
                                 uint8_t out[20]);

/* ---- responses ---------------------------------------------------------------------------- */

void mysql_write_ok(struct buf *out, uint8_t *seq, uint64_t affected_rows, uint64_t last_insert_id,
                    uint16_t status, uint16_t warnings, const char *info /* nullable */);
/* ERR: 0xff, code, '#', 5-char SQLSTATE, message (truncated to 512 bytes). */
void mysql_write_err(struct buf *out, uint8_t *seq, uint16_t code, const char *sqlstate,
                     const char *msg);
void mysql_write_eof(struct buf *out, uint8_t *seq, uint16_t status, uint16_t warnings);

struct mysql_column {
    const char *schema; /* nullable: "" */
    const char *table;  /* nullable: "" */
    const char *name;
    uint8_t type; /* enum mysql_type */
    uint16_t flags;
    uint16_t charset;
    uint32_t length;
    uint8_t decimals;
};
void mysql_write_column_count(struct buf *out, uint8_t *seq, uint64_t n);
void mysql_write_column_def(struct buf *out, uint8_t *seq, const struct mysql_column *c);

/* Text protocol row: each value a length-encoded string, NULL as 0xfb, integers in decimal. */
void mysql_write_text_row(struct buf *out, uint8_t *seq, const struct value *vals, size_t n);
/* Binary protocol row (COM_STMT_EXECUTE results): 0x00, NULL bitmap (offset 2), then each
 * non-NULL value in its column's type: LONGLONG 8 bytes LE, LONG 4, SHORT 2, TINY 1, string
 * types as length-encoded strings. An INT value in a string column is written in decimal. */
void mysql_write_binary_row(struct buf *out, uint8_t *seq, const struct mysql_column *cols,
                            const struct value *vals, size_t n);

/* ---- prepared statements ------------------------------------------------------------------ */

void mysql_write_stmt_prepare_ok(struct buf *out, uint8_t *seq, uint32_t stmt_id,
                                 uint16_t n_columns, uint16_t n_params, uint16_t warnings);

/* One bound parameter of COM_STMT_EXECUTE, converted to a value: integer types become
 * VALUE_INT (unsigned values above INT64_MAX are an error), string/blob/decimal types
 * VALUE_STR (pointing into the payload), doubles and floats are printed into the arena-less
 * `text` buffer of the param and given as VALUE_STR, DATE/TIME/DATETIME as 'YYYY-MM-DD hh:mm:ss'
 * strings likewise. */
struct mysql_param {
    struct value v;
    uint16_t type; /* type byte | 0x8000 when the unsigned flag is set */
    char text[64]; /* storage for numbers and dates rendered as strings */
};

/* The statement id of a COM_STMT_EXECUTE/CLOSE/RESET/SEND_LONG_DATA payload (p[0] is the
 * command byte), so the caller can look the statement up before parsing the rest. */
int mysql_peek_stmt_id(const uint8_t *p, size_t len, uint32_t *stmt_id);

/* Parses COM_STMT_EXECUTE (the payload after the 0x17 byte is *not* stripped: p[0] == 0x17).
 * n_params is what PREPARE reported. types holds 2*n_params bytes: the types the client bound
 * last time; it is updated when new-params-bound-flag is 1 and used as-is when it is 0 (a
 * first execute without types is an error). long_data[i] (nullable array of n_params nullable
 * pointers) is data sent earlier with COM_STMT_SEND_LONG_DATA, used for parameter i instead of
 * the payload's value (its unread bytes; an empty buffer gives an empty string). types is
 * updated only when the whole payload parses. */
int mysql_parse_stmt_execute(const uint8_t *p, size_t len, uint16_t n_params, uint8_t *types,
                             bool *types_known, const struct buf *const *long_data,
                             struct mysql_param *params, uint32_t *stmt_id, uint8_t *flags,
                             const char **err);

#endif
