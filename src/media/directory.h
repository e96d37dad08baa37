/* directory: who may register and call, looked up the way FreeSWITCH's mod_xml_curl does it.
 * Owns: the HTTP request to [directory] url (a form with section=directory, action=sip_auth, the
 * user, the domain and the sip_auth_* fields, in mod_xml_curl's order, with its User-Agent and HTTP
 * Basic credentials), reading the XML answer (FreeSWITCH's directory document, or its "not found"
 * result), the static directory file ([directory] file, the same XML), a small cache of answers
 * and the coalescing of concurrent lookups for one user. It never blocks: HTTP runs on libsoup's
 * async API on the thread-default main context of directory_new's caller, and every answer, even
 * one from the cache or the file, comes back from the main loop, never from inside
 * directory_lookup. It never checks a digest (the SIP side does, with sip_digest_verify).
 *
 * Order of sources: with a url, the url is asked first; when it answers "not found" (the XML
 * result, an HTTP 404 as CppComet's gateway answers, or a directory document without the user) or
 * fails (timeout, connection refused, HTTP error, unreadable XML), the static file is tried, as
 * FreeSWITCH falls back from mod_xml_curl to its static directory (reference/captures/xmlcurl-05).
 * A user the file does not know then ends as DIRECTORY_NOT_FOUND after a "not found" and as
 * DIRECTORY_TEMPFAIL after a failure (the SIP side answers 503, not 403). Without a url only the
 * file is used. The result says which source answered.
 *
 * Cache: found and not-found answers (never failures) are kept for [directory] cache_ttl seconds
 * (not-found answers at most 5 s, so a user created in ccomet can register soon; a password
 * with an end, a token session's credential, never past it), at most
 * [directory] cache_max entries (the oldest go first). cache_ttl 0 disables it. */
#ifndef CC_DIRECTORY_H
#define CC_DIRECTORY_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

#include "media/media_config.h"
#include "proto/sip_msg.h"

enum directory_status {
    DIRECTORY_FOUND = 0,
    DIRECTORY_NOT_FOUND, /* answer 403, as FreeSWITCH does (captures sip-03, xmlcurl-04) */
    DIRECTORY_TEMPFAIL,  /* the gateway failed or timed out: answer 503 */
};

enum directory_source { DIRECTORY_FROM_URL, DIRECTORY_FROM_FILE, DIRECTORY_FROM_CACHE };

struct directory_result {
    enum directory_status status;
    enum directory_source source;
    const char *password; /* (nullable) the user's "password" param */
    const char *a1_hash;  /* (nullable) its "a1-hash" param: MD5(user:realm:password) in hex */
    const char *why;      /* a short reason for the logs (static or owned by the result) */
};

/* What a lookup is about. Every string is (transfer none) and only read during directory_lookup.
 * user and domain are required; the rest fill mod_xml_curl's sip_* fields and may be NULL. */
struct directory_query {
    const char *user;            /* the digest username (FreeSWITCH's `user`) */
    const char *domain;          /* the realm / [sip] domain (FreeSWITCH's `domain`, key_value) */
    const struct sip_auth *auth; /* (nullable) the credentials being checked */
    const char *method;          /* (nullable) sip_auth_method: REGISTER, INVITE */
    const struct sip_msg *req;   /* (nullable) the request: user agent, contact, to, from ... */
    const char *ip;              /* (nullable) the client's address (`ip`) */
    unsigned port;               /* the client's port (`client_port`), 0 unknown */
};

/* The result is (transfer none): valid during the call only. */
typedef void (*directory_fn)(const struct directory_result *r, void *ud);

struct directory;
struct directory_wait;

/* Reads [directory] from cfg (copied) and loads the static file when one is set. NULL with *error
 * when the file cannot be read or parsed, or the url is not http(s). (transfer full) */
struct directory *directory_new(const struct media_config *cfg, GError **error);
/* Cancels every lookup in flight (their callbacks are never called) and frees. NULL is fine. */
void directory_free(struct directory *d);

/* Looks q->user up in q->domain; cb(result, ud) is called exactly once, later, from the main loop,
 * unless directory_cancel is called first. Returns a handle for directory_cancel (transfer none:
 * valid until cb has been called or the lookup cancelled). */
struct directory_wait *directory_lookup(struct directory *d, const struct directory_query *q,
                                        directory_fn cb, void *ud);
/* The callback of w will not be called. The HTTP request goes on to fill the cache. */
void directory_cancel(struct directory *d, struct directory_wait *w);
/* Drops a cached answer (the SIP side does so when a cached password fails a digest, so that a
 * changed password is fetched again at once). */
void directory_forget(struct directory *d, const char *user, const char *domain);

/* ---- pure parts, for tests ---- */

/* Reads a FreeSWITCH XML answer: DIRECTORY_FOUND with *password / *a1_hash (transfer full,
 * g_free; either may stay NULL) when a <domain> (named domain, or else any) holds <user id=user>;
 * DIRECTORY_NOT_FOUND for `<section name="result"><result status="not found"/>` or a document
 * without the user; DIRECTORY_TEMPFAIL with *err (static) when the XML does not parse or is not a
 * freeswitch/xml document. A domain name holding "${" (a static file's $${domain}) matches any
 * domain. *expires (nullable) gets the user's ccomet_password_expires variable (unix seconds; 1
 * when unreadable), 0 without one. */
enum directory_status directory_parse_xml(const char *xml, size_t len, const char *user,
                                          const char *domain, char **password, char **a1_hash,
                                          gint64 *expires, const char **err);

/* Appends to form the urlencoded body mod_xml_curl sends for q (reference/captures/xmlcurl-02),
 * fields in its order; absent values leave their field out, as FreeSWITCH does. core_uuid,
 * hostname and ipv4 describe this node; seq is Event-Sequence; now_us the wall clock. */
void directory_build_form(GString *form, const struct directory_query *q, const char *hostname,
                          const char *core_uuid, const char *ipv4, unsigned long long seq,
                          gint64 now_us);

/* FreeSWITCH's switch_url_encode: the bytes " \"#%&+:;<=>?@[\\]^`{|}", controls and non-ASCII
 * become %XX (upper-case hex); everything else (',', '/', '*' ...) stays. */
void directory_url_encode(GString *out, const char *s);

#endif
