/* Unit tests for src/state/tenants.c: rotation (tenant_apply), login checks against the stored
 * hash only, JWT secrets per tenant, the state's row format, and what SELECT shows. */
#include "test.h"

#include "proto/jwt.h"
#include "proto/mysql_packet.h"
#include "state/tenants.h"

#include <string.h>

static const uint8_t scramble[20] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                     11, 12, 13, 14, 15, 16, 17, 18, 19, 20};

static enum tenant_login login(const struct tenants *t, bool shared, int64_t dev, const char *pw,
                               int64_t now)
{
    uint8_t token[20];
    size_t len = 0;
    if (*pw) {
        mysql_native_password_token(scramble, pw, strlen(pw), token);
        len = 20;
    }
    return tenants_check_login(t, "mainpw", shared, dev, scramble, token, len, now);
}

TEST(mysql_native_password_check_hash_matches_the_clear_check)
{
    uint8_t hash[20], token[20];
    mysql_native_password_hash("secret", 6, hash);
    mysql_native_password_token(scramble, "secret", 6, token);
    CHECK(mysql_native_password_check_hash(scramble, hash, token, 20));
    CHECK(mysql_native_password_check(scramble, "secret", 6, token, 20));
    token[0] ^= 1;
    CHECK(!mysql_native_password_check_hash(scramble, hash, token, 20));
    CHECK(!mysql_native_password_check_hash(scramble, hash, token, 0)); /* no empty password */
    CHECK(!mysql_native_password_check_hash(scramble, hash, token, 19));
}

TEST(tenants_login_own_shared_old_and_refused)
{
    struct tenants t;
    tenants_init(&t);
    /* nobody has credentials: [main] password opens every tenant (CppComet) */
    CHECK_INT(login(&t, true, 5, "mainpw", 100), TENANT_LOGIN_SHARED);
    CHECK_INT(login(&t, true, 0, "mainpw", 100), TENANT_LOGIN_SHARED);
    CHECK_INT(login(&t, true, 5, "other", 100), TENANT_LOGIN_WRONG);
    CHECK_INT(login(&t, false, 5, "mainpw", 100), TENANT_LOGIN_NO_OWN);
    CHECK_INT(login(&t, false, 0, "mainpw", 100), TENANT_LOGIN_SHARED); /* root always */
    struct tenant rec;
    tenant_apply(&rec, NULL, 5, "fivepass", 8, NULL, 0, 60, 100);
    CHECK(rec.has_password && !rec.has_old_password && !rec.jwt_secret);
    CHECK_INT(rec.created, 100);
    tenants_put(&t, &rec);
    tenant_wipe(&rec);
    CHECK_INT(login(&t, true, 5, "fivepass", 100), TENANT_LOGIN_OWN);
    CHECK_INT(login(&t, true, 5, "mainpw", 100), TENANT_LOGIN_WRONG); /* shared no longer opens 5 */
    CHECK_INT(login(&t, false, 5, "fivepass", 100), TENANT_LOGIN_OWN);
    CHECK_INT(login(&t, true, 6, "mainpw", 100), TENANT_LOGIN_SHARED); /* others unchanged */
    CHECK_INT(login(&t, true, 5, "", 100), TENANT_LOGIN_WRONG);
    /* rotate with 60 s of grace at t=200: both until 260, then only the new one */
    tenant_apply(&rec, tenants_get(&t, 5), 5, "fivepass2", 9, NULL, 0, 60, 200);
    CHECK_INT(rec.created, 100);
    CHECK_INT(rec.updated, 200);
    CHECK(rec.has_old_password);
    CHECK_INT(rec.old_password_until, 260);
    tenants_put(&t, &rec);
    tenant_wipe(&rec);
    CHECK_INT(login(&t, true, 5, "fivepass2", 259), TENANT_LOGIN_OWN);
    CHECK_INT(login(&t, true, 5, "fivepass", 259), TENANT_LOGIN_OLD);
    CHECK_INT(login(&t, true, 5, "fivepass", 260), TENANT_LOGIN_WRONG);
    /* the same password again keeps the old one's grace as it was; grace 0 ends it */
    tenant_apply(&rec, tenants_get(&t, 5), 5, "fivepass2", 9, NULL, 0, 60, 210);
    CHECK_INT(rec.old_password_until, 260);
    tenants_put(&t, &rec);
    tenant_wipe(&rec);
    tenant_apply(&rec, tenants_get(&t, 5), 5, "fivepass3", 9, NULL, 0, 0, 220);
    CHECK(!rec.has_old_password);
    tenants_put(&t, &rec);
    tenant_wipe(&rec);
    CHECK_INT(login(&t, true, 5, "fivepass2", 221), TENANT_LOGIN_WRONG);
    CHECK_INT(login(&t, true, 5, "fivepass3", 221), TENANT_LOGIN_OWN);
    CHECK(tenants_remove(&t, 5));
    CHECK(!tenants_remove(&t, 5));
    CHECK_INT(login(&t, true, 5, "mainpw", 300), TENANT_LOGIN_SHARED);
    tenants_free(&t);
}

TEST(tenants_jwt_own_secret_old_secret_and_legacy)
{
    struct tenants t;
    tenants_init(&t);
    char tok[512], legacy_tok[512], tok2[512];
    const char *payload = "{\"user_id\":9}";
    CHECK(jwt_sign_hs256(payload, "secret-five-aaaaaaaa", 20, tok, sizeof tok) > 0);
    CHECK(jwt_sign_hs256(payload, "mainpw5", 7, legacy_tok, sizeof legacy_tok) > 0);
    CHECK(jwt_sign_hs256(payload, "secret-five-bbbbbbbb", 20, tok2, sizeof tok2) > 0);
    int64_t user = -1;
    CHECK_INT(tenants_jwt_verify(&t, "mainpw", 5, legacy_tok, strlen(legacy_tok), 10, &user),
              JWT_VALID);
    CHECK_INT(user, 9);
    CHECK_INT(tenants_jwt_verify(NULL, "mainpw", 5, legacy_tok, strlen(legacy_tok), 10, &user),
              JWT_VALID);
    struct tenant rec;
    tenant_apply(&rec, NULL, 5, NULL, 0, "secret-five-aaaaaaaa", 20, 30, 10);
    CHECK(!rec.has_password && rec.jwt_secret);
    tenants_put(&t, &rec);
    tenant_wipe(&rec);
    CHECK_INT(tenants_jwt_verify(&t, "mainpw", 5, legacy_tok, strlen(legacy_tok), 10, &user),
              JWT_BAD_SIGNATURE);
    CHECK_INT(tenants_jwt_verify(&t, "mainpw", 5, tok, strlen(tok), 10, &user), JWT_VALID);
    CHECK_INT(tenants_jwt_verify(&t, "mainpw", 6, tok, strlen(tok), 10, &user), JWT_BAD_SIGNATURE);
    /* rotation of the secret only: the password stays as it was (none) */
    tenant_apply(&rec, tenants_get(&t, 5), 5, NULL, 0, "secret-five-bbbbbbbb", 20, 30, 20);
    CHECK_INT(rec.old_jwt_until, 50);
    tenants_put(&t, &rec);
    tenant_wipe(&rec);
    CHECK_INT(tenants_jwt_verify(&t, "mainpw", 5, tok2, strlen(tok2), 49, &user), JWT_VALID);
    CHECK_INT(tenants_jwt_verify(&t, "mainpw", 5, tok, strlen(tok), 49, &user), JWT_VALID);
    CHECK_INT(tenants_jwt_verify(&t, "mainpw", 5, tok, strlen(tok), 50, &user), JWT_BAD_SIGNATURE);
    tenants_free(&t);
}

static int collect_dev(void *ctx, const struct tenant *rec)
{
    int64_t **p = ctx;
    *(*p)++ = rec->dev_id;
    return 0;
}

TEST(tenants_rows_round_trip_and_select_text)
{
    struct tenant rec, back;
    tenant_apply(&rec, NULL, 42, "pw-forty-two", 12, "jwt-secret-forty-two", 20, 60, 1000);
    tenant_apply(&back, &rec, 42, "pw-forty-two-b", 14, "jwt-secret-forty-two-b", 22, 60, 1010);
    tenant_wipe(&rec);
    char pw[41], old[41];
    tenant_hash_hex(back.password, pw);
    tenant_hash_hex(back.old_password, old);
    struct value cols[9] = {value_int(42),
                            value_str(pw, 40),
                            value_str(old, 40),
                            value_int(back.old_password_until),
                            value_str(back.jwt_secret, back.jwt_len),
                            value_str(back.old_jwt_secret, back.old_jwt_len),
                            value_int(back.old_jwt_until),
                            value_int(back.created),
                            value_int(back.updated)};
    struct tenant got;
    CHECK(tenant_from_row(&got, cols, 9));
    CHECK_INT(got.dev_id, 42);
    CHECK(got.has_password && got.has_old_password);
    CHECK_MEM(got.password, back.password, 20);
    CHECK_MEM(got.old_password, back.old_password, 20);
    CHECK_INT(got.old_password_until, 1070);
    CHECK_INT(got.jwt_len, 22);
    CHECK_MEM(got.jwt_secret, "jwt-secret-forty-two-b", 22);
    CHECK_MEM(got.old_jwt_secret, "jwt-secret-forty-two", 20);
    CHECK_INT(got.created, 1000);
    CHECK_INT(got.updated, 1010);
    tenant_wipe(&got);
    /* a bad hash or a missing column is not a row */
    cols[1] = value_str("zz", 2);
    CHECK(!tenant_from_row(&got, cols, 9));
    cols[1] = value_str("", 0);
    CHECK(!tenant_from_row(&got, cols, 8));
    CHECK(tenant_from_row(&got, cols, 9));
    CHECK(!got.has_password);
    tenant_wipe(&got);
    /* SELECT's text: MySQL's "*" + upper-case hex of SHA1(SHA1(pw)); a fingerprint */
    uint8_t h[20];
    mysql_native_password_hash("password", 8, h);
    char text[42], fp[24];
    tenant_password_text(h, text);
    CHECK_STR(text, "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19");
    tenant_secret_fingerprint("abc", 3, fp);
    CHECK_STR(fp, "sha256:ba7816bf8f01cfea");
    tenant_wipe(&back);
    /* dev_id order */
    struct tenants t;
    tenants_init(&t);
    int64_t order[] = {9, 3, 12, 1};
    for (int i = 0; i < 4; i++) {
        tenant_apply(&rec, NULL, order[i], "password-x", 10, NULL, 0, 0, 1);
        tenants_put(&t, &rec);
        tenant_wipe(&rec);
    }
    int64_t seen[4], *p = seen;
    CHECK_INT(tenants_each(&t, collect_dev, &p), 4);
    CHECK_INT(seen[0], 1);
    CHECK_INT(seen[1], 3);
    CHECK_INT(seen[2], 9);
    CHECK_INT(seen[3], 12);
    tenants_free(&t);
}

TEST(tenants_jwt_require_exp)
{
    struct tenants t;
    tenants_init(&t);
    char with[512], without[512];
    CHECK(jwt_sign_hs256("{\"user_id\":9,\"exp\":100}", "mainpw5", 7, with, sizeof with) > 0);
    CHECK(jwt_sign_hs256("{\"user_id\":9}", "mainpw5", 7, without, sizeof without) > 0);
    int64_t user;
    CHECK_INT(tenants_jwt_verify(&t, "mainpw", 5, without, strlen(without), 10, &user), JWT_VALID);
    t.require_exp = true;
    CHECK_INT(tenants_jwt_verify(&t, "mainpw", 5, without, strlen(without), 10, &user),
              JWT_NO_EXPIRY);
    CHECK_INT(tenants_jwt_verify(&t, "mainpw", 5, with, strlen(with), 10, &user), JWT_VALID);
    CHECK_INT(tenants_jwt_verify(&t, "mainpw", 5, with, strlen(with), 100, &user), JWT_EXPIRED);
    tenants_free(&t);
}
