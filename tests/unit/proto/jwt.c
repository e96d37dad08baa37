/* Unit tests for src/proto/jwt.c. */
#include "test.h"

#include "proto/jwt.h"

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
