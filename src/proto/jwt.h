/* jwt: verification of HS256 JSON Web Tokens, sans I/O: base64url, HMAC-SHA256 (OpenSSL) and the
 * claims ccomet reads (`user_id`, `exp`). CppComet signs with secret = password + dev_id. */
#ifndef CC_JWT_H
#define CC_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum jwt_status {
    JWT_VALID = 0,
    JWT_MALFORMED,
    JWT_UNSUPPORTED,
    JWT_BAD_SIGNATURE,
    JWT_EXPIRED,
    JWT_NOT_YET_VALID, /* nbf is in the future (RFC 7519 §4.1.5) */
    JWT_NO_EXPIRY,     /* no exp where the caller requires one */
};

/* Checks token's structure, algorithm (HS256 only), signature, and `exp` and `nbf` (when
 * present) against now. On JWT_VALID, *user_id is the payload's user_id (number or decimal string),
 * or -1. */
enum jwt_status jwt_verify_hs256(const char *token, size_t len, const char *secret,
                                 size_t secret_len, int64_t now, int64_t *user_id);

/* Whether the token's payload has the claim (a number): for callers that require `exp`. The
 * token should have been verified first. */
bool jwt_has_numeric_claim(const char *token, size_t len, const char *claim);
/* The same, with the value (truncated to an integer, clamped to int64_t). Not verified. */
bool jwt_numeric_claim(const char *token, size_t len, const char *claim, int64_t *out);

/* The secret CppComet signs a tenant's browser tokens with: [main] password followed by the
 * dev_id in decimal, for a password of any length. (transfer full) free with xfree; *len is its
 * length. */
char *jwt_tenant_secret(const char *password, int64_t dev_id, size_t *len);

/* Signs a payload (JSON text) with HS256: out gets header.payload.signature, NUL-terminated.
 * Returns the length, or 0 if out is too small. For tests and tools. */
size_t jwt_sign_hs256(const char *payload_json, const char *secret, size_t secret_len, char *out,
                      size_t out_size);

#endif
