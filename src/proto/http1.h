/* http1: the HTTP/1.1 request head (RFC 9112), sans I/O. Owns the request line, the header
 * fields and the framing headers' validity (Content-Length, Transfer-Encoding, Host), plus the
 * helpers the [ws] port needs: header lookup, token lists, keep-alive, percent-decoding, query
 * parameters and CppComet's parameters-in-the-path URLs (/ws/sesion=...&myid=...). It never
 * touches a socket, never copies or allocates: every pointer it hands out points into the
 * caller's input buffer (transfer none), so the input must outlive the parsed request. It keeps
 * no state between calls and no globals besides const tables. Parsers return HTTP1_OK /
 * HTTP1_AGAIN / HTTP1_ERROR with a static reason in *err and the status to answer in
 * req->status. Bodies are the caller's business. */
#ifndef CC_HTTP1_H
#define CC_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { HTTP1_OK = 0, HTTP1_AGAIN = 1, HTTP1_ERROR = -1 };

#define HTTP1_MAX_HEADERS 64 /* header fields a request can hold (lim->max_headers is clamped) */

/* Bounds the parser enforces (from config). A NULL limits pointer means the defaults below. */
struct http1_limits {
    size_t max_head_bytes; /* request line + header fields + the empty line; beyond: 431 */
    size_t max_uri;        /* request-target bytes; beyond: 414 */
    size_t max_headers;    /* header fields; beyond: 431 */
};
#define HTTP1_DEFAULT_MAX_HEAD_BYTES 8192
#define HTTP1_DEFAULT_MAX_URI        4096
#define HTTP1_DEFAULT_MAX_HEADERS    HTTP1_MAX_HEADERS

struct http1_header {
    const char *name; /* (transfer none) into the input, as sent (case kept), not NUL-terminated */
    size_t name_len;
    const char *value; /* (transfer none) leading and trailing spaces/tabs trimmed; may be empty */
    size_t value_len;
};

struct http1_request {
    const char *method; /* (transfer none) a token, case-sensitive ("GET", "OPTIONS") */
    size_t method_len;
    const char *target; /* the whole request-target as sent: "/ws/a=b?x=1" */
    size_t target_len;
    const char *path; /* the target before the first '?', not decoded: "/ws/a=b" ("*" for the
                       * asterisk-form of OPTIONS) */
    size_t path_len;
    const char *query; /* (nullable) after the first '?' (may be empty), not decoded */
    size_t query_len;
    int version_minor;                              /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    struct http1_header headers[HTTP1_MAX_HEADERS]; /* in arrival order, duplicates kept */
    size_t n_headers;
    bool chunked;    /* Transfer-Encoding: chunked (the only coding accepted) */
    size_t head_len; /* HTTP1_OK: bytes of the head, leading empty lines and the final empty line
                      * included; the body (if any) starts at buf + head_len */
    int status;      /* HTTP1_ERROR: the status to answer with (400, 414, 431, 501, 505) */
};

/* Parses the request head at the start of buf[0..len). HTTP1_OK: *req is filled and
 * req->head_len says how much of buf the head used. HTTP1_AGAIN: the head is incomplete and
 * nothing seen so far is wrong; call again with the same bytes plus more (the parse restarts from
 * buf[0]; the work is bounded by max_head_bytes). HTTP1_ERROR: *err is a static reason and
 * req->status the status to answer, then close the connection. Errors are reported as soon as the
 * offending byte has arrived, and 431 as soon as len exceeds max_head_bytes without a complete
 * head.
 *
 * The grammar, strictly (RFC 9112), with nginx's leniencies noted:
 *   - empty lines before the request line are skipped (RFC 9112 §2.2);
 *   - lines end in CRLF or a bare LF (as nginx); a CR not followed by LF is 400;
 *   - request line: method SP request-target SP HTTP-version, single spaces. method is 1+ tchar.
 *     request-target is origin-form ('/' then visible ASCII 0x21-0x7e), or "*" for OPTIONS;
 *     longer than max_uri is 414. The version is "HTTP/" DIGIT "." DIGIT: 1.0 and 1.1 are
 *     accepted, any other well-formed version is 505, anything else 400;
 *   - header field: 1+ tchar, ':' (no space before it), OWS, value, OWS. Value bytes are HTAB,
 *     SP, 0x21-0x7e and obs-text 0x80-0xff; other control bytes are 400. A line starting with
 *     SP/HTAB (obs-fold, or whitespace before the first field) is 400. More than max_headers
 *     fields is 431;
 *   - after the head: HTTP/1.1 needs exactly one Host field (400); more than one Host is 400 in
 *     1.0 too; Content-Length must be digits only and every copy of it the same value (400);
 *     Transfer-Encoding is accepted only as a single field "chunked" in HTTP/1.1 (other codings:
 *     501; in HTTP/1.0 or together with Content-Length: 400, RFC 9112 §6.1 — request smuggling). */
int http1_parse_request(const uint8_t *buf, size_t len, const struct http1_limits *lim,
                        struct http1_request *req, const char **err);

/* The value of the first field called name (ASCII case-insensitive), NULL if absent.
 * *len (nullable) gets its length. */
const char *http1_header(const struct http1_request *req, const char *name, size_t *len);

/* Whether any field called name holds token in its comma-separated list (both compared ASCII
 * case-insensitively, list elements OWS-trimmed, empty elements skipped):
 * http1_header_has_token(req, "Connection", "upgrade") for "Connection: keep-alive, Upgrade". */
bool http1_header_has_token(const struct http1_request *req, const char *name, const char *token);

/* The request's Content-Length: HTTP1_OK with *n (0 when the field is absent), HTTP1_ERROR when a
 * value is not all digits (no sign, no spaces, no list), overflows 2^63-1, or two copies of the
 * field differ. http1_parse_request already refuses such requests with 400. */
int http1_content_length(const struct http1_request *req, uint64_t *n);

/* Whether the connection persists after this request: HTTP/1.1 unless Connection lists "close";
 * HTTP/1.0 only if Connection lists "keep-alive" (and not "close"). */
bool http1_keep_alive(const struct http1_request *req);

/* Decodes %XX escapes of in[0..len) into out (room for len bytes; out == in is allowed: decoding
 * only shrinks). '+' stays '+' (this is a path/RFC 3986 decoder, not form decoding). HTTP1_OK
 * with *out_len set; HTTP1_ERROR on a truncated or non-hex escape or an escape decoding to a NUL
 * byte (out then holds garbage). */
int http1_percent_decode(const char *in, size_t len, char *out, size_t *out_len);

/* Finds name in an '&'-separated list of name=value pairs (a query string, or the tail
 * http1_path_params gives). Names are compared byte for byte, undecoded; the first match wins. A
 * pair without '=' has an empty value. query is nullable (len 0). Returns true with *val (into
 * query, undecoded, transfer none) and *val_len when found. */
bool http1_query_param(const char *query, size_t len, const char *name, const char **val,
                       size_t *val_len);

/* CppComet's WebSocket URLs carry their parameters in the path:
 *   /ws/sesion=abc&myid=2&devid=0&v=4.09&uuid=XYZ&api=js
 *   /comet-server/ws/sesion=...   (and //ws/..., //comet-server/ws/...)
 * The rule: find the FIRST "/ws/" in path[0..len), or failing that a path ending in "/ws"; the
 * mount prefix before it must hold neither '=' nor '&' (so a "/ws/" inside a parameter value never
 * counts, and "/x=/ws/" is not an endpoint). Returns true with *params (transfer none, into path)
 * and *params_len = everything after that "/ws/" (empty for ".../ws" and ".../ws/"); false when
 * the path is not a /ws endpoint (e.g. "/wsx", "/info", "/ws-old/a=b"). Pass the path (before
 * '?'); the tail is undecoded, read it with http1_query_param. */
bool http1_path_params(const char *path, size_t len, const char **params, size_t *params_len);

#endif
