/* sip_credential: the short-lived SIP password a token (JWT) session gets instead of the user's
 * permanent key (security audit H2). Sans I/O.
 *
 * A browser that logs in with a JWT receives in serverInfo, where CppComet put the users_auth
 * hash, a credential
 *
 *   hex(first 16 bytes of HMAC-SHA256(key = the users_auth hash,
 *                                     "ccomet-sip-credential|<dev_id>|<user_id>|<expiry>")))
 *
 * whose expiry is the token's `exp` (or now + [main] jwt_credential_ttl for a token without one),
 * at most now + jwt_credential_ttl, rounded down to a whole SIP_CREDENTIAL_STEP. The browser uses
 * it as its SIP password with its usual user name (<dev_id 6 digits><user_id>), so CppComet's
 * cometVideoApi.js needs no change. The directory endpoint, asked by a media node with the
 * digest's fields (mod_xml_curl sends sip_auth_response, nonce, cnonce ...), finds which password
 * the digest was made with: the key itself, or the credential of one expiry in the window still
 * open (at most jwt_credential_ttl / SIP_CREDENTIAL_STEP of them), and answers that one. So a
 * credential stops working at its expiry, and with the user's key (deleting or changing it
 * revokes every credential made from it), and it never reveals the key. */
#ifndef CC_SIP_CREDENTIAL_H
#define CC_SIP_CREDENTIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/sip_msg.h"

#define SIP_CREDENTIAL_STEP 60 /* seconds: expiries are whole minutes */
#define SIP_CREDENTIAL_LEN  32 /* hex digits */

/* The expiry of the credential a token session opened at now gets: the token's exp (has_exp) or
 * now + ttl, capped at now + ttl, rounded down to a multiple of SIP_CREDENTIAL_STEP. 0 when that
 * is not after now (a token with less than a minute left gets no credential). */
int64_t sip_credential_expiry(int64_t now, bool has_exp, int64_t token_exp, int64_t ttl);

/* Writes the credential for (key, dev_id, user_id, expiry) into out, NUL-terminated. */
void sip_credential_make(const char *key, size_t key_len, int64_t dev_id, int64_t user_id,
                         int64_t expiry, char out[SIP_CREDENTIAL_LEN + 1]);

/* Which password digest a (for method) was made with: the key (returns 0, *password = key), or
 * the credential of an expiry e with now < e <= now + ttl (returns e, *password = that
 * credential); -1 when neither verifies (*password = key: the digest is wrong). password holds at
 * least max(key_len, SIP_CREDENTIAL_LEN) + 1 bytes. */
int64_t sip_credential_match(const struct sip_auth *a, const char *method, const char *key,
                             size_t key_len, int64_t dev_id, int64_t user_id, int64_t now,
                             int64_t ttl, char *password, size_t password_cap);

#endif
