/* sip_msg: the SIP message layer of ccomet-media (RFC 3261, carried over WebSocket per RFC 7118),
 * sans I/O, on libosip2's parser. Owns: parsing one whole SIP message and validating what a UAS
 * needs, the accessors the registrar and call control read, building responses (RFC 3261 §8.2.6)
 * and in-dialog requests (§12.2.1.1), HTTP digest (RFC 2617 / RFC 8760, MD5 only) challenges and
 * verification with self-validating HMAC nonces, and the dialplan match (FreeSWITCH's PCRE-style
 * patterns run on POSIX regex). It never touches a socket, never reads a clock (callers pass
 * `now`), never looks users up, keeps no transaction or dialog state between calls (struct
 * sip_dialog is the caller's) and holds no globals besides const tables and libosip2's own parser
 * table, which sip_global_init() builds once. Random values (nonces, branches, tags) come from
 * OpenSSL's RAND_bytes.
 *
 * Strings a parsed message hands out are NUL-terminated and owned by the message (transfer none):
 * they live until sip_msg_free. Parsers return SIP_OK / SIP_ERROR with a static reason in *err. */
#ifndef CC_SIP_MSG_H
#define CC_SIP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct osip_message;

/* libosip2's osip_const.h #defines SIP_OK as 200 (a status code): with it in scope our SIP_OK
 * would silently become 200, or the enum below a syntax error. ccomet's SIP_OK is the parser
 * convention, so this header drops libosip2's macro; include libosip2's headers (if at all)
 * before this one and write 200 for the status. */
#ifdef SIP_OK
#undef SIP_OK
#endif
enum { SIP_OK = 0, SIP_AGAIN = 1, SIP_ERROR = -1 };

#define SIP_DEFAULT_MAX_BYTES 32768 /* a JsSIP INVITE with a video SDP and candidates: ~3-8 KB */
#define SIP_MAX_LINES         128   /* start line + header lines (folded lines count) */
#define SIP_MAX_CONTACTS      16    /* Contact values kept in struct sip_msg (more: 400) */

/* Builds libosip2's header-parser table and silences libosip2's tracing (it prints a line per
 * malformed message otherwise; this installs a no-op trace function, process-wide). Must run before
 * the first sip_parse: without it libosip2 dereferences a NULL table and crashes. Idempotent and
 * thread-safe (pthread_once); osip_init() (the transaction layer) is not needed and not called. */
void sip_global_init(void);

/* One extra header line for the builders: "name: value". Both must be non-empty, name a token,
 * value free of CR, LF and NUL, and name not Content-Length / Content-Type (the builders write
 * those). Server / User-Agent / Allow / Supported / Contact / WWW-Authenticate go here. */
struct sip_header {
    const char *name;
    const char *value;
};

/* The digest parameters of an Authorization (or, when there is none, Proxy-Authorization)
 * header, unquoted and unescaped. Every field is nullable (absent). */
struct sip_auth {
    bool present; /* a header with scheme Digest was found */
    bool proxy;   /* it was Proxy-Authorization (the answer to a 407) */
    const char *username, *realm, *nonce, *uri, *response, *algorithm, *qop, *nc, *cnonce, *opaque;
};

struct sip_contact {
    const char *uri; /* the URI as text ("sip:1000@x.invalid;transport=ws"), or "*" */
    long expires;    /* its ;expires parameter, -1 when absent */
};

struct sip_msg {
    struct osip_message *osip; /* (transfer none) libosip2's view, for what is not below */
    bool is_request;
    const char *method; /* requests: the method ("INVITE"); responses: the CSeq method */
    int status;         /* responses: 100..699; 0 for requests */
    const char *reason; /* responses: the reason phrase (may be ""); NULL for requests */

    /* requests: the Request-URI; all nullable except ruri */
    const char *ruri; /* as text */
    const char *ruri_scheme, *ruri_user, *ruri_host;

    const char *from_display, *from_uri, *from_user, *from_host, *from_tag; /* nullable but uri */
    const char *to_display, *to_uri, *to_user, *to_host, *to_tag;
    const char *call_id;
    uint32_t cseq;
    const char *cseq_method;

    /* top Via */
    const char *via_transport; /* "WS", "WSS", "UDP", "TCP", "TLS" as sent */
    const char *via_host;
    int via_port;   /* 0 when absent */
    bool via_rport; /* the top Via carries rport (RFC 3581) */
    const char *via_branch;

    int max_forwards;    /* -1 when absent (responses) */
    long expires;        /* the first Contact's ;expires, else the Expires header, else -1 */
    long expires_header; /* the Expires header alone, -1 when absent */
    struct sip_contact contacts[SIP_MAX_CONTACTS];
    size_t n_contacts;
    const char *contact_uri; /* contacts[0].uri, or NULL */
    const char *user_agent;  /* nullable */

    const char *content_type; /* "type/subtype", lower case, no parameters; nullable */
    const char *body;         /* (nullable) a NUL-terminated copy of the body; NULL when empty */
    size_t body_len;

    struct sip_auth auth;

    int reject_status; /* on SIP_ERROR with *out set: the status to answer (400, 415, 416, 505) */
    void *priv_;       /* private: the message's own allocations */
};

/* Parses one complete SIP message (one WebSocket message, one UDP datagram, or one message framed
 * out of a TCP stream) from buf[0..len). The buffer is not kept: everything is copied. Leading
 * CRLFs are skipped (keep-alives). max_bytes 0 means SIP_DEFAULT_MAX_BYTES.
 *
 * Checked before libosip2 sees anything (guards for libosip2, which works on C strings): len <=
 * max_bytes; no NUL or control byte but HTAB in the head; lines end in CRLF or LF, a bare CR is an
 * error; at most SIP_MAX_LINES lines; the head ends in an empty line. libosip2 then parses the
 * head without the Content-Type and Content-Length lines, so its body and multipart code never
 * runs; the body is ours. A Content-Length that is not digits only, appears twice or is folded
 * does not stop the parse: the request is answered 400 once its Via, From, To, Call-ID and CSeq
 * are read (RFC 3261 §8.2, §21.4.1).
 *
 * Then, as a UAS needs: a request's version is SIP/2.0 (505), its Request-URI sip: or sips: with a
 * host (416), its method a token; a response's status 100..699; Via, From, To, Call-ID and CSeq are
 * present, their parameters well-formed generic-params (an unbalanced quote is refused), and what
 * libosip2 prints of them parses again (it does not always: such messages are dropped, since
 * answers echo them); the top Via has a branch; From has a tag (requests; responses too); To has a
 * tag in BYE, ACK and in responses above 100; CSeq is "<1..2^32-1> <method>" with the request's
 * method; a request has Max-Forwards 0..255; Expires and Contact ;expires are digits; an INVITE has
 * a sip: or sips: Contact; at most SIP_MAX_CONTACTS contacts; multipart bodies are refused (415);
 * the body is at least Content-Length bytes (extra bytes are discarded, RFC 3261 §18.3) or, without
 * Content-Length, all the rest.
 *
 * SIP_OK: *out (transfer full) is the message; free it with sip_msg_free. SIP_ERROR: *err is a
 * static reason; *out is non-NULL (transfer full, free it too) only for a request well-formed
 * enough to answer (Via, From, To, Call-ID, CSeq parsed): answer (*out)->reject_status with
 * sip_build_response, with *err as the reason phrase's detail (it names the bad header). Otherwise
 * (*out NULL: garbage, a bad response, too big) drop it. */
int sip_parse(const char *buf, size_t len, size_t max_bytes, struct sip_msg **out,
              const char **err);

void sip_msg_free(struct sip_msg *m); /* NULL is fine */

/* The value of the header called name (ASCII case-insensitive, long form) among those libosip2
 * keeps unparsed: Supported, Require, Event, Max-Forwards, Expires, User-Agent, Session-Expires,
 * Reason, X-... (not those it parses: Via, From, To, Call-ID, CSeq, Contact, Route, Record-Route,
 * Accept*, Allow, Alert-Info, Call-Info, Error-Info, *Authorization, *Authenticate*, Content-*,
 * MIME-Version). libosip2 splits comma lists into one field per element ("Supported: path,gruu" is
 * two fields); they are joined again here with ", ". NULL when absent. (transfer none: lives in
 * the message; each call allocates a little from it, bounded by the message's size) */
const char *sip_msg_header(const struct sip_msg *m, const char *name);

/* Records where a request came from in its top Via (RFC 3261 §18.2.1, RFC 3581): adds
 * ;received=<ip> when the Via's host differs from ip, fills ;rport=<port> when the Via asked for
 * it, or adds it anyway when force_rport (sofia does so on WebSocket: its answers carry
 * "received=127.0.0.1;rport=33832" for a Via without rport). Call it before building responses.
 * SIP_ERROR (nothing changed) when ip is empty or holds characters outside an IP literal. */
int sip_msg_set_received(struct sip_msg *m, const char *ip, unsigned port, bool force_rport);

/* The standard reason phrase of a status code ("Unauthorized"), or "Unknown" (static). */
const char *sip_reason_phrase(int code);

#define SIP_TAG_SIZE    17 /* 16 hex digits + NUL */
#define SIP_BRANCH_SIZE 24 /* "z9hG4bK" + 16 hex digits + NUL */

/* A fresh random To/From tag (16 hex digits). SIP_ERROR only if the RNG fails. */
int sip_tag_new(char out[SIP_TAG_SIZE]);

/* Appends to out the response to req, RFC 3261 §8.2.6, CRLF line endings, in this order: the
 * status line (reason NULL: the standard phrase), every Via of the request (with what
 * sip_msg_set_received added), Record-Route copied for 101..299 answers to INVITE (§12.1.1), From,
 * To (plus ;tag=to_tag when the request's To has none and code > 100; to_tag NULL then means a
 * random one, fine for answers that create no dialog), Call-ID, CSeq, the extra headers in order,
 * Content-Type (when content_type is non-NULL), Content-Length. body (nullable when body_len is 0)
 * follows the empty line. SIP_ERROR, with out unchanged, when code is not 100..699, req is not a
 * request, or a string would inject a line (CR/LF) or is not a token where one is needed. */
int sip_build_response(const struct sip_msg *req, int code, const char *reason, const char *to_tag,
                       const struct sip_header *extra, size_t n_extra, const char *content_type,
                       const char *body, size_t body_len, struct buf *out);

/* A dialog as the UAS of an INVITE sees it (RFC 3261 §12.1.1). Every string is owned by the
 * dialog (transfer full, freed by sip_dialog_free). */
struct sip_dialog {
    char *call_id;
    char *local_tag;     /* our tag: the one given to sip_dialog_from_invite */
    char *remote_tag;    /* the INVITE's From tag */
    char *local_uri;     /* the INVITE's To, name-addr without tag: "<sip:15*101*video@host>" */
    char *remote_uri;    /* the INVITE's From, name-addr without tag */
    char *remote_target; /* the INVITE's Contact URI: the Request-URI of our requests */
    char **route_set;    /* the INVITE's Record-Route values, in order (loose routing only) */
    size_t n_routes;
    uint32_t local_cseq;  /* CSeq of the last request we sent; 0 before the first */
    uint32_t remote_cseq; /* the INVITE's CSeq; the caller updates it on in-dialog requests */
    char *local_contact;  /* (nullable) our Contact URI for INVITE/UPDATE we send; the caller
                           * sets it (xstrdup, freed by sip_dialog_free) */
};

/* Fills *d from an INVITE we answer with local_tag (a token). SIP_ERROR with *err (and *d
 * zeroed) when invite is not an INVITE, lacks a sip:/sips: Contact or a From tag, or local_tag is
 * empty or not a token. */
int sip_dialog_from_invite(const struct sip_msg *invite, const char *local_tag,
                           struct sip_dialog *d, const char **err);
void sip_dialog_free(struct sip_dialog *d); /* zeroes *d; a zeroed dialog is fine */

/* Appends to out a request inside d (a BYE, a re-INVITE, an ACK for the 2xx of our re-INVITE):
 *   <METHOD> <remote_target> SIP/2.0
 *   Via: SIP/2.0/<via_transport> <via_sent_by>;branch=z9hG4bK<16 hex>;rport
 *   Max-Forwards: 70
 *   Route: <each of the route set>
 *   From: <local_uri>;tag=<local_tag>     To: <remote_uri>;tag=<remote_tag>
 *   Call-ID, CSeq (d->local_cseq + 1, stored back; ACK and CANCEL reuse d->local_cseq),
 *   Contact: <local_contact> (INVITE and UPDATE, when set), the extra headers, Content-Type (when
 *   non-NULL), Content-Length, the body.
 * branch (nullable) gets the new Via branch, to match the responses. SIP_ERROR with out and d
 * unchanged on a bad argument (method not a token, CR/LF in a string, a CSeq overflow, an
 * incomplete dialog) or an RNG failure. */
int sip_build_request(struct sip_dialog *d, const char *method, const char *via_transport,
                      const char *via_sent_by, const struct sip_header *extra, size_t n_extra,
                      const char *content_type, const char *body, size_t body_len, struct buf *out,
                      char branch[SIP_BRANCH_SIZE]);

/* ---- digest (RFC 2617 / RFC 8760, algorithm MD5, qop auth or none) ---- */

/* Writes the challenge value for a WWW-Authenticate (401) or Proxy-Authenticate (407) header, as
 * FreeSWITCH's sofia does:
 *   Digest realm="<realm>", nonce="<nonce>", algorithm=MD5, qop="auth"
 *   Digest realm="<realm>", nonce="<nonce>", stale=true, algorithm=MD5, qop="auth"   (stale)
 * Returns the length (out NUL-terminated), or 0 when it does not fit in n or realm / nonce hold a
 * '"', '\\' or a control byte (they are not escaped, they are refused). */
size_t sip_digest_challenge(char *out, size_t n, const char *realm, const char *nonce, bool stale);

#define SIP_NONCE_LEN 64 /* hex of: 8-byte time, 8 random bytes, 16 bytes of HMAC-SHA256 */

/* A nonce that proves itself: hex(time || random || HMAC-SHA256(secret, time || random)[0..16)).
 * now is the caller's clock in any unit (seconds suggested), the same unit as max_age below.
 * out gets SIP_NONCE_LEN hex digits and a NUL. SIP_ERROR only if the RNG fails. */
int sip_nonce_new(char out[SIP_NONCE_LEN + 1], uint64_t now, const uint8_t secret[16]);

enum sip_nonce_status { SIP_NONCE_VALID = 0, SIP_NONCE_STALE, SIP_NONCE_INVALID };

/* SIP_NONCE_VALID when nonce was made by sip_nonce_new with this secret (constant-time MAC check)
 * and now - its time <= max_age; SIP_NONCE_STALE when genuine but older (challenge again with
 * stale=true: the client retries without asking the user); SIP_NONCE_INVALID for anything else,
 * including a time more than max_age in the future. Replay inside max_age is not detected here:
 * the server keeps each used nonce's highest nc (sip_digest_nc). */
enum sip_nonce_status sip_nonce_check(const char *nonce, uint64_t now, uint64_t max_age,
                                      const uint8_t secret[16]);

/* The time a nonce of sip_nonce_new was made at (its first 8 bytes), unchecked: call it after
 * sip_nonce_check said SIP_NONCE_VALID. false when nonce is not SIP_NONCE_LEN hex digits. */
bool sip_nonce_issued(const char *nonce, uint64_t *issued);

/* The nonce count of a qop=auth digest: nc is 8 hex digits (RFC 2617 §3.2.2); false otherwise. */
bool sip_digest_nc(const struct sip_auth *a, uint32_t *nc);

/* Whether the digest's uri names the Request-URI of m (RFC 2617 §3.2.2.5: a request whose
 * digest-uri is another resource is answered 400): equal as text, or, case aside, as libosip2
 * reads and prints both. false without a digest uri. */
bool sip_digest_uri_matches(const struct sip_msg *m);

enum sip_digest_status {
    SIP_DIGEST_VALID = 0,
    SIP_DIGEST_WRONG,       /* well-formed, wrong response: 403 (as FreeSWITCH) or re-challenge */
    SIP_DIGEST_MALFORMED,   /* missing username/realm/nonce/uri/response, qop without cnonce/nc */
    SIP_DIGEST_UNSUPPORTED, /* algorithm other than MD5, qop other than auth, no credential */
};

/* Checks a->response for method (the request's method: REGISTER, INVITE ...) with
 * HA1 = MD5(username:realm:password) or, when password is NULL, HA1 = a1_hex (32 hex digits, the
 * directory's a1-hash); HA2 = MD5(method:uri); response = MD5(HA1:nonce:nc:cnonce:auth:HA2) with
 * qop=auth, MD5(HA1:nonce:HA2) without qop (RFC 2069). Compared in constant time. It checks only
 * the arithmetic: the caller checks that a->realm is its realm, a->username its user, a->nonce
 * genuine (sip_nonce_check), and a->uri the Request-URI. */
enum sip_digest_status sip_digest_verify(const struct sip_auth *a, const char *method,
                                         const char *password, const char *a1_hex);

/* The same in two steps, for trying several passwords against one digest: sip_digest_prepare
 * checks the digest's form and computes HA2 once (SIP_DIGEST_VALID: c is ready; a must outlive
 * it), sip_digest_check tries one password (or a1_hex) as sip_digest_verify does. */
struct sip_digest_check {
    const struct sip_auth *a;
    char ha2[33], got[33];
    bool qop;
};
enum sip_digest_status sip_digest_prepare(const struct sip_auth *a, const char *method,
                                          struct sip_digest_check *c);
enum sip_digest_status sip_digest_check(const struct sip_digest_check *c, const char *password,
                                        const char *a1_hex);

/* HA1 = hex(MD5(user:realm:password)), the a1-hash a directory may store. */
void sip_digest_a1(char out[33], const char *user, const char *realm, const char *password);

/* ---- dialplan ---- */

/* CppComet's FreeSWITCH dialplan (default.xml): "<dev_id>*<room>*<profile>" -> conference
 * "$1-<domain>" with profile $2; and the audio-only variant with a single group. */
#define SIP_DIALPLAN_CONFERENCE "^([0-9]{1,9}\\*[0-9A-z\\-_]+)\\*([0-9A-z\\-_]+)$"
#define SIP_DIALPLAN_AUDIO      "^([0-9]{1,9}\\*[0-9A-z\\-_]+)\\*audio$"
/* ccomet-media's default: the same, but A-z (which takes [\]^_` too) is A-Za-z (audit C1), so
 * every room a node admits is one ccomet can name, list and end. */
#define SIP_DIALPLAN_DEFAULT "^([0-9]{1,9}\\*[0-9A-Za-z_-]+)\\*([0-9A-Za-z_-]+)$"

enum { SIP_DIALPLAN_MATCH = 0, SIP_DIALPLAN_NO_MATCH = 1, SIP_DIALPLAN_ERROR = -1 };

/* Matches dest (a Request-URI user) against pattern, written as FreeSWITCH writes it (PCRE): the
 * pattern is translated to POSIX ERE (regcomp, REG_EXTENDED) keeping PCRE's meaning: inside [...]
 * a backslash escapes ("\-" is a literal '-', where POSIX would read "\-_" as a range), and \d \w
 * \s become classes. Ranges are by byte value ("A-z" includes [\]^_` as in PCRE). Alternation and
 * quantifiers have POSIX's leftmost-longest semantics, equal to PCRE's for these patterns.
 * SIP_DIALPLAN_MATCH: cap1 gets group 1 and cap2 group 2 ("" when the pattern has fewer groups or
 * the group did not take part); SIP_DIALPLAN_NO_MATCH; SIP_DIALPLAN_ERROR with *err when the
 * pattern does not compile or a capture does not fit its buffer. The pattern is compiled per call
 * (one INVITE, a few microseconds). */
int sip_dialplan_match(const char *dest, const char *pattern, char *cap1, size_t cap1_size,
                       char *cap2, size_t cap2_size, const char **err);

/* The conference name FreeSWITCH's dialplan forms: "<cap1>-<domain>" ("15*101-FSdefaultDomain").
 * Returns the length, or 0 when it does not fit in n. */
size_t sip_conference_name(char *out, size_t n, const char *cap1, const char *domain);

#endif
