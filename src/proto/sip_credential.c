/* sip_credential: a token session's SIP password; see sip_credential.h. */
#include "proto/sip_credential.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

int64_t sip_credential_expiry(int64_t now, bool has_exp, int64_t token_exp, int64_t ttl)
{
    if (ttl <= 0 || now < 0 || now > INT64_MAX - ttl) return 0;
    int64_t e = now + ttl;
    if (has_exp && token_exp < e) e = token_exp;
    if (e <= now) return 0;
    e -= e % SIP_CREDENTIAL_STEP;
    return e > now ? e : 0;
}

void sip_credential_make(const char *key, size_t key_len, int64_t dev_id, int64_t user_id,
                         int64_t expiry, char out[SIP_CREDENTIAL_LEN + 1])
{
    char msg[96];
    int n = snprintf(msg, sizeof msg, "ccomet-sip-credential|%" PRId64 "|%" PRId64 "|%" PRId64,
                     dev_id, user_id, expiry);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    static const char hex[] = "0123456789abcdef";
    if (n < 0 || (size_t)n >= sizeof msg ||
        !HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, (size_t)n, mac,
              &mac_len) ||
        mac_len < SIP_CREDENTIAL_LEN / 2) {
        out[0] = '\0'; /* cannot happen with the bounded message; an empty password never matches */
        return;
    }
    for (size_t i = 0; i < SIP_CREDENTIAL_LEN / 2; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[SIP_CREDENTIAL_LEN] = '\0';
}

int64_t sip_credential_match(const struct sip_auth *a, const char *method, const char *key,
                             size_t key_len, int64_t dev_id, int64_t user_id, int64_t now,
                             int64_t ttl, char *password, size_t password_cap)
{
    if (password_cap <= key_len || password_cap <= SIP_CREDENTIAL_LEN) {
        if (password_cap) password[0] = '\0';
        return -1;
    }
    memcpy(password, key, key_len);
    password[key_len] = '\0';
    if (sip_digest_verify(a, method, password, NULL) == SIP_DIGEST_VALID) return 0;
    if (ttl <= 0 || now < 0 || now > INT64_MAX - ttl) return -1;
    /* every expiry a credential made at or before now can still have: the next whole step after
     * now up to now + ttl (a later one was never handed out) */
    char cred[SIP_CREDENTIAL_LEN + 1];
    for (int64_t e = now - now % SIP_CREDENTIAL_STEP + SIP_CREDENTIAL_STEP; e <= now + ttl;
         e += SIP_CREDENTIAL_STEP) {
        sip_credential_make(key, key_len, dev_id, user_id, e, cred);
        if (sip_digest_verify(a, method, cred, NULL) == SIP_DIGEST_VALID) {
            memcpy(password, cred, sizeof cred);
            return e;
        }
    }
    return -1;
}
