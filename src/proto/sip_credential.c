/* sip_credential: a token session's SIP password; see sip_credential.h. */
#include "proto/sip_credential.h"

#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
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

/* HMAC-SHA256 under one key, its key schedule computed once for many messages. */
struct cred_mac {
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
};

static bool cred_mac_open(struct cred_mac *m, const char *key, size_t key_len)
{
    m->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    m->ctx = m->mac ? EVP_MAC_CTX_new(m->mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    /* an empty key is a valid HMAC key; OpenSSL wants a non-NULL pointer for it */
    return m->ctx &&
           EVP_MAC_init(m->ctx, (const unsigned char *)(key_len ? key : ""), key_len, params) == 1;
}

static void cred_mac_close(struct cred_mac *m)
{
    EVP_MAC_CTX_free(m->ctx);
    EVP_MAC_free(m->mac);
}

/* The credential for (dev_id, user_id, expiry) under m's key; "" if OpenSSL fails. */
static void cred_mac_make(struct cred_mac *m, bool first, int64_t dev_id, int64_t user_id,
                          int64_t expiry, char out[SIP_CREDENTIAL_LEN + 1])
{
    char msg[96];
    int n = snprintf(msg, sizeof msg, "ccomet-sip-credential|%" PRId64 "|%" PRId64 "|%" PRId64,
                     dev_id, user_id, expiry);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    static const char hex[] = "0123456789abcdef";
    if (n < 0 || (size_t)n >= sizeof msg || (!first && EVP_MAC_init(m->ctx, NULL, 0, NULL) != 1) ||
        EVP_MAC_update(m->ctx, (const unsigned char *)msg, (size_t)n) != 1 ||
        EVP_MAC_final(m->ctx, mac, &mac_len, sizeof mac) != 1 || mac_len < SIP_CREDENTIAL_LEN / 2) {
        out[0] = '\0'; /* cannot happen with the bounded message; an empty password never matches */
        return;
    }
    for (size_t i = 0; i < SIP_CREDENTIAL_LEN / 2; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[SIP_CREDENTIAL_LEN] = '\0';
}

void sip_credential_make(const char *key, size_t key_len, int64_t dev_id, int64_t user_id,
                         int64_t expiry, char out[SIP_CREDENTIAL_LEN + 1])
{
    struct cred_mac m;
    if (cred_mac_open(&m, key, key_len))
        cred_mac_make(&m, true, dev_id, user_id, expiry, out);
    else
        out[0] = '\0';
    cred_mac_close(&m);
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
    struct sip_digest_check check;
    if (sip_digest_prepare(a, method, &check) != SIP_DIGEST_VALID) return -1;
    if (sip_digest_check(&check, password, NULL) == SIP_DIGEST_VALID) return 0;
    if (ttl <= 0 || now < 0 || now > INT64_MAX - ttl) return -1;
    struct cred_mac m;
    int64_t found = -1;
    if (cred_mac_open(&m, key, key_len)) {
        /* every expiry a credential made at or before now can still have: the next whole step
         * after now up to now + ttl (a later one was never handed out) */
        char cred[SIP_CREDENTIAL_LEN + 1];
        bool first = true;
        for (int64_t e = now - now % SIP_CREDENTIAL_STEP + SIP_CREDENTIAL_STEP; e <= now + ttl;
             e += SIP_CREDENTIAL_STEP) {
            cred_mac_make(&m, first, dev_id, user_id, e, cred);
            first = false;
            if (cred[0] && sip_digest_check(&check, cred, NULL) == SIP_DIGEST_VALID) {
                memcpy(password, cred, sizeof cred);
                found = e;
                break;
            }
        }
    }
    cred_mac_close(&m);
    return found;
}
