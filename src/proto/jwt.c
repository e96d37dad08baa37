/* jwt: HS256 verification; see jwt.h. Never allocates beyond what jansson needs for the two
 * small JSON objects, bounded by the token length (callers cap tokens at 600 bytes). */
#include "proto/jwt.h"
#include "core/alloc.h"

#include <inttypes.h>
#include <stdio.h>

#include <jansson.h>
#include <stdbool.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#define JWT_MAX 4096

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Decodes canonical base64url (RFC 7515 §2: no padding); returns the length or -1. Only one
 * spelling of each byte string is accepted: '=' is refused, and so is a last character whose
 * unused low bits are not zero. Otherwise four spellings of a signature verify alike, and a
 * token revoked by its text could come back as another spelling of itself (audit H1). */
static long b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    if (len % 4 == 1) return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits && (acc & ((1u << bits) - 1u))) return -1; /* non-zero unused bits */
    return (long)o;
}

static size_t b64url_encode(const unsigned char *in, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = tab[(acc >> bits) & 63];
        }
    }
    if (bits) out[o++] = tab[(acc << (6 - bits)) & 63];
    return o;
}

static json_t *decode_json(const char *part, size_t len)
{
    unsigned char buf[JWT_MAX];
    long n = b64url_decode(part, len, buf, sizeof buf);
    if (n <= 0) return NULL;
    return json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
}

enum jwt_status jwt_verify_hs256(const char *token, size_t len, const char *secret,
                                 size_t secret_len, int64_t now, int64_t *user_id)
{
    *user_id = -1;
    if (len == 0 || len > JWT_MAX) return JWT_MALFORMED;
    const char *d1 = memchr(token, '.', len);
    if (!d1) return JWT_MALFORMED;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token))) return JWT_MALFORMED;

    json_t *header = decode_json(token, (size_t)(d1 - token));
    if (!header || !json_is_object(header)) {
        json_decref(header);
        return JWT_MALFORMED;
    }
    const char *alg = json_string_value(json_object_get(header, "alg"));
    bool hs256 = alg && strcmp(alg, "HS256") == 0;
    json_decref(header);
    if (!hs256) return JWT_UNSUPPORTED;

    unsigned char sig[64], mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    long sig_len = b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - token), sig, sizeof sig);
    if (sig_len != 32) return JWT_BAD_SIGNATURE;
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)token,
              (size_t)(d2 - token), mac, &mac_len) ||
        mac_len != 32 || CRYPTO_memcmp(mac, sig, 32) != 0)
        return JWT_BAD_SIGNATURE;

    json_t *payload = decode_json(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!payload || !json_is_object(payload)) {
        json_decref(payload);
        return JWT_MALFORMED;
    }
    enum jwt_status st = JWT_VALID;
    json_t *exp = json_object_get(payload, "exp");
    if (exp && !json_is_number(exp))
        st = JWT_MALFORMED;
    else if (exp && json_number_value(exp) <= (double)now)
        st = JWT_EXPIRED;
    json_t *nbf = json_object_get(payload, "nbf");
    if (st == JWT_VALID && nbf && !json_is_number(nbf))
        st = JWT_MALFORMED;
    else if (st == JWT_VALID && nbf && json_number_value(nbf) > (double)now)
        st = JWT_NOT_YET_VALID;
    json_t *uid = json_object_get(payload, "user_id");
    if (json_is_integer(uid)) {
        *user_id = (int64_t)json_integer_value(uid);
    } else if (json_is_string(uid)) {
        char *end;
        long long v = strtoll(json_string_value(uid), &end, 10);
        if (*json_string_value(uid) && !*end) *user_id = v;
    }
    json_decref(payload);
    return st;
}

bool jwt_numeric_claim(const char *token, size_t len, const char *claim, int64_t *out)
{
    if (len == 0 || len > JWT_MAX) return false;
    const char *d1 = memchr(token, '.', len);
    if (!d1) return false;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (!d2) return false;
    json_t *payload = decode_json(d1 + 1, (size_t)(d2 - d1 - 1));
    json_t *v = payload ? json_object_get(payload, claim) : NULL;
    bool has = v && json_is_number(v);
    if (has && out) {
        double d = json_number_value(v);
        *out = d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
    }
    json_decref(payload);
    return has;
}

bool jwt_has_numeric_claim(const char *token, size_t len, const char *claim)
{
    return jwt_numeric_claim(token, len, claim, NULL);
}

char *jwt_tenant_secret(const char *password, int64_t dev_id, size_t *len)
{
    size_t pl = strlen(password);
    char *s = xmalloc(pl + 24);
    int n = snprintf(s, pl + 24, "%s%" PRId64, password, dev_id);
    *len = n > 0 ? (size_t)n : 0;
    return s;
}

size_t jwt_sign_hs256(const char *payload_json, const char *secret, size_t secret_len, char *out,
                      size_t out_size)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    size_t plen = strlen(payload_json);
    size_t need = (sizeof header * 4) / 3 + 4 + (plen * 4) / 3 + 4 + 44 + 3;
    if (out_size < need) return 0;
    size_t o = b64url_encode((const unsigned char *)header, sizeof header - 1, out);
    out[o++] = '.';
    o += b64url_encode((const unsigned char *)payload_json, plen, out + o);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)out, o, mac, &mac_len);
    out[o++] = '.';
    o += b64url_encode(mac, mac_len, out + o);
    out[o] = '\0';
    return o;
}
