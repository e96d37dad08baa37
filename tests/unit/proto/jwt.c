/* Unit tests for src/proto/jwt.c. */
#include "test.h"

#include "core/alloc.h"
#include "proto/jwt.h"

#include <string.h>

TEST(jwt_sign_and_verify)
{
    char tok[512];
    size_t n = jwt_sign_hs256("{\"user_id\":7,\"exp\":2000000000}", "pw1", 3, tok, sizeof tok);
    CHECK(n > 0);
    int64_t uid;
    CHECK_INT(jwt_verify_hs256(tok, n, "pw1", 3, 1700000000, &uid), JWT_VALID);
    CHECK_INT(uid, 7);
    CHECK_INT(jwt_verify_hs256(tok, n, "pw2", 3, 1700000000, &uid), JWT_BAD_SIGNATURE);
    CHECK_INT(jwt_verify_hs256(tok, n, "pw1", 3, 2000000001, &uid), JWT_EXPIRED);
    tok[n - 2] ^= 1;
    CHECK(jwt_verify_hs256(tok, n, "pw1", 3, 1700000000, &uid) != JWT_VALID);
}

TEST(jwt_string_user_id_and_malformed)
{
    char tok[512];
    size_t n = jwt_sign_hs256("{\"user_id\":\"12\"}", "s", 1, tok, sizeof tok);
    int64_t uid;
    CHECK_INT(jwt_verify_hs256(tok, n, "s", 1, 0, &uid), JWT_VALID);
    CHECK_INT(uid, 12);
    CHECK_INT(jwt_verify_hs256("abc", 3, "s", 1, 0, &uid), JWT_MALFORMED);
    CHECK_INT(jwt_verify_hs256("a.b.c.d", 7, "s", 1, 0, &uid), JWT_MALFORMED);
    /* alg none is refused */
    const char *none = "eyJhbGciOiJub25lIn0.eyJ1c2VyX2lkIjoxfQ.";
    CHECK_INT(jwt_verify_hs256(none, strlen(none), "s", 1, 0, &uid), JWT_UNSUPPORTED);
}

/* Audit H1: only the canonical spelling of a token verifies. The last character of a 32-byte
 * signature carries 2 unused bits; '=' padding is not base64url (RFC 7515 §2). */
TEST(jwt_only_the_canonical_spelling_verifies)
{
    char tok[512], alt[520];
    size_t n = jwt_sign_hs256("{\"user_id\":2,\"exp\":2000000000}", "k", 1, tok, sizeof tok);
    CHECK(n > 0);
    int64_t uid;
    CHECK_INT(jwt_verify_hs256(tok, n, "k", 1, 1700000000, &uid), JWT_VALID);
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(tab, tok[n - 1]) - tab);
    for (int low = 1; low < 4; low++) { /* the other three spellings of the last character */
        memcpy(alt, tok, n);
        alt[n - 1] = tab[(v & ~3) | ((v & 3) ^ low)];
        CHECK(jwt_verify_hs256(alt, n, "k", 1, 1700000000, &uid) != JWT_VALID);
    }
    for (int pad = 1; pad <= 2; pad++) {
        memcpy(alt, tok, n);
        memset(alt + n, '=', (size_t)pad);
        CHECK(jwt_verify_hs256(alt, n + (size_t)pad, "k", 1, 1700000000, &uid) != JWT_VALID);
    }
    /* a padded header or payload segment is refused too */
    const char *d1 = strchr(tok, '.');
    size_t h = (size_t)(d1 - tok);
    memcpy(alt, tok, h);
    alt[h] = '=';
    memcpy(alt + h + 1, tok + h, n - h);
    CHECK(jwt_verify_hs256(alt, n + 1, "k", 1, 1700000000, &uid) != JWT_VALID);
}

/* Audit L1: the tenant secret of a long password is whole (it was cut at 512 bytes, and the
 * untruncated length was passed on as the key length). */
TEST(jwt_tenant_secret_of_a_long_password)
{
    char pw[4097];
    memset(pw, 'p', 4096);
    pw[4096] = '\0';
    size_t len;
    char *s = jwt_tenant_secret(pw, 123, &len);
    CHECK_INT((long long)len, 4099);
    CHECK(memcmp(s + 4096, "123", 4) == 0);
    char tok[512];
    size_t n = jwt_sign_hs256("{\"user_id\":9}", s, len, tok, sizeof tok);
    int64_t uid;
    CHECK_INT(jwt_verify_hs256(tok, n, s, len, 0, &uid), JWT_VALID);
    CHECK_INT(uid, 9);
    xfree(s);
}

/* audit H2: nbf is honoured; exp can be required (tenants_jwt_verify with require_exp) */
TEST(jwt_nbf_and_required_exp)
{
    char tok[512];
    int64_t uid;
    size_t n = jwt_sign_hs256("{\"user_id\":7,\"nbf\":1000}", "pw", 2, tok, sizeof tok);
    CHECK_INT(jwt_verify_hs256(tok, n, "pw", 2, 999, &uid), JWT_NOT_YET_VALID);
    CHECK_INT(jwt_verify_hs256(tok, n, "pw", 2, 1000, &uid), JWT_VALID);
    CHECK(!jwt_has_numeric_claim(tok, n, "exp"));
    CHECK(jwt_has_numeric_claim(tok, n, "nbf"));
    n = jwt_sign_hs256("{\"user_id\":7,\"nbf\":\"soon\"}", "pw", 2, tok, sizeof tok);
    CHECK_INT(jwt_verify_hs256(tok, n, "pw", 2, 999, &uid), JWT_MALFORMED);
    n = jwt_sign_hs256("{\"user_id\":7,\"exp\":\"later\"}", "pw", 2, tok, sizeof tok);
    CHECK(!jwt_has_numeric_claim(tok, n, "exp")); /* not a number: not an expiry */
    CHECK(!jwt_has_numeric_claim("x", 1, "exp"));
}

/* The value of a numeric claim (a revoked token's row lives until its own exp) */
TEST(jwt_numeric_claim_value)
{
    char tok[512];
    int64_t v = 0;
    size_t n = jwt_sign_hs256("{\"user_id\":7,\"exp\":1796600000}", "pw", 2, tok, sizeof tok);
    CHECK(jwt_numeric_claim(tok, n, "exp", &v));
    CHECK_INT(v, 1796600000);
    n = jwt_sign_hs256("{\"exp\":1.5e30}", "pw", 2, tok, sizeof tok);
    CHECK(jwt_numeric_claim(tok, n, "exp", &v));
    CHECK(v == INT64_MAX); /* clamped */
    n = jwt_sign_hs256("{\"exp\":\"x\"}", "pw", 2, tok, sizeof tok);
    v = 5;
    CHECK(!jwt_numeric_claim(tok, n, "exp", &v));
    CHECK_INT(v, 5);
}
