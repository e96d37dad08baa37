/* call_token: minting and checking the room invitations of call_token.h (HMAC-SHA256 with
 * OpenSSL, compared in constant time). */
#include "proto/call_token.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#define ROOM_MAX 128
#define SIG_LEN  43 /* base64url of 32 bytes, unpadded */

static size_t sign(const char *secret, size_t secret_len, int64_t dev, const char *room,
                   size_t room_len, int64_t user, int64_t expiry, char sig[SIG_LEN + 1])
{
    if (room_len > ROOM_MAX) return 0;
    char msg[ROOM_MAX + 96];
    int n = snprintf(msg, sizeof msg, "%" PRId64 "*%.*s|%" PRId64 "|%" PRId64, dev, (int)room_len,
                     room, user, expiry);
    if (n < 0 || (size_t)n >= sizeof msg) return 0;
    unsigned char mac[32];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)msg, (size_t)n, mac,
              &mac_len) ||
        mac_len != 32)
        return 0;
    unsigned char b64[48];
    EVP_EncodeBlock(b64, mac, 32); /* 44 characters with one '=' */
    for (int i = 0; i < SIG_LEN; i++)
        sig[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    sig[SIG_LEN] = '\0';
    OPENSSL_cleanse(mac, sizeof mac);
    return SIG_LEN;
}

size_t call_token_make(const char *secret, size_t secret_len, int64_t dev, const char *room,
                       size_t room_len, int64_t user, int64_t expiry, char out[CALL_TOKEN_MAX])
{
    char sig[SIG_LEN + 1];
    if (expiry < 0 || !sign(secret, secret_len, dev, room, room_len, user, expiry, sig)) {
        out[0] = '\0';
        return 0;
    }
    int n = snprintf(out, CALL_TOKEN_MAX, "%" PRId64 ".%s", expiry, sig);
    return n > 0 && n < CALL_TOKEN_MAX ? (size_t)n : 0;
}

enum call_token_status call_token_check(const char *secret, size_t secret_len, const char *token,
                                        size_t len, int64_t dev, const char *room, size_t room_len,
                                        int64_t user, int64_t now)
{
    if (!token || len < SIG_LEN + 2 || len >= CALL_TOKEN_MAX) return CALL_TOKEN_MALFORMED;
    size_t i = 0;
    int64_t expiry = 0;
    for (; i < len && token[i] >= '0' && token[i] <= '9'; i++) {
        if (i >= 18) return CALL_TOKEN_MALFORMED;
        expiry = expiry * 10 + (token[i] - '0');
    }
    if (i == 0 || i >= len || token[i] != '.' || len - i - 1 != SIG_LEN)
        return CALL_TOKEN_MALFORMED;
    char sig[SIG_LEN + 1];
    if (!sign(secret, secret_len, dev, room, room_len, user, expiry, sig)) return CALL_TOKEN_BAD;
    if (CRYPTO_memcmp(sig, token + i + 1, SIG_LEN) != 0) return CALL_TOKEN_BAD;
    if (now >= expiry) return CALL_TOKEN_EXPIRED;
    return CALL_TOKEN_OK;
}

const char *call_token_status_text(enum call_token_status st)
{
    switch (st) {
    case CALL_TOKEN_OK: return "valid";
    case CALL_TOKEN_MALFORMED: return "malformed";
    case CALL_TOKEN_BAD: return "not for this room and user";
    case CALL_TOKEN_EXPIRED: return "expired";
    }
    return "?";
}
