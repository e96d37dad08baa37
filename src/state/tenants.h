/* tenants: each tenant's own credentials (issue 12), in memory for the paths that check them on
 * every login and browser token: a CometQL password kept as mysql_native_password's
 * SHA1(SHA1(password)) only, and a JWT secret for its browsers' tokens, each with the one it
 * replaced, still valid until a grace period ends (rotation without downtime). The rows live in
 * the state backend (the `tenants` table); the server loads them at start and keeps this copy
 * in step with every write it acknowledges.
 *
 * A tenant without its own credentials keeps CppComet's behaviour: [main] password opens it
 * (unless [main] shared_password_tenants = no) and its JWT secret is [main] password + dev_id.
 * Root (dev_id 0) always uses [main] password. Loop thread only; no I/O. */
#ifndef CC_TENANTS_H
#define CC_TENANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/hmap.h"
#include "core/value.h"

struct tenant {
    int64_t dev_id;
    bool has_password, has_old_password;
    uint8_t password[20];     /* SHA1(SHA1(password)) */
    uint8_t old_password[20]; /* the replaced one, valid while now < old_password_until */
    int64_t old_password_until;
    char *jwt_secret, *old_jwt_secret; /* NULL: none; the old one valid while now < until */
    size_t jwt_len, old_jwt_len;
    int64_t old_jwt_until;
    int64_t created, updated; /* unix seconds */
};

struct tenants {
    struct hmap map; /* struct tenant_entry by dev_id */
    size_t count;
    bool require_exp; /* [main] jwt_require_exp: browser tokens without exp are refused */
};

void tenants_init(struct tenants *t);
void tenants_free(struct tenants *t); /* wipes the secrets */

/* (nullable) the tenant's own credentials. t may be NULL (no tenant has any). */
const struct tenant *tenants_get(const struct tenants *t, int64_t dev);
/* Replaces dev's record with a copy of rec. */
void tenants_put(struct tenants *t, const struct tenant *rec);
bool tenants_remove(struct tenants *t, int64_t dev);
/* Every record in dev_id order; fn returns non-zero to stop. Returns the records visited. */
size_t tenants_each(const struct tenants *t, int (*fn)(void *ctx, const struct tenant *rec),
                    void *ctx);

/* The record after root sets new credentials on cur (nullable: a new tenant): password and
 * jwt_secret (NULL: unchanged). A replaced password or secret stays valid for grace seconds
 * (0: not at all). out owns its secrets (tenant_wipe). */
void tenant_apply(struct tenant *out, const struct tenant *cur, int64_t dev, const char *password,
                  size_t pw_len, const char *jwt_secret, size_t jwt_len, int64_t grace,
                  int64_t now);
void tenant_wipe(struct tenant *rec); /* frees and clears rec's secrets */

/* How a CometQL login for dev went. */
enum tenant_login {
    TENANT_LOGIN_OWN,    /* the tenant's own password */
    TENANT_LOGIN_OLD,    /* its replaced password, inside the grace period */
    TENANT_LOGIN_SHARED, /* [main] password: root, or a tenant without its own password */
    TENANT_LOGIN_WRONG,  /* the password does not match */
    TENANT_LOGIN_NO_OWN, /* no own password and shared_password_tenants = no */
};
/* Checks a mysql_native_password token against dev's credentials. */
enum tenant_login tenants_check_login(const struct tenants *t, const char *main_password,
                                      bool shared_password_tenants, int64_t dev,
                                      const uint8_t scramble[20], const uint8_t *token,
                                      size_t token_len, int64_t now);

/* Verifies a browser's HS256 token for dev: with the tenant's own secret (or the replaced one
 * inside its grace period) when it has one, else with [main] password + dev_id; without `exp`
 * it is JWT_NO_EXPIRY when t->require_exp. Returns a jwt_status; *user_id as jwt_verify_hs256. */
int tenants_jwt_verify(const struct tenants *t, const char *main_password, int64_t dev,
                       const char *token, size_t len, int64_t now, int64_t *user_id);

/* The state's rows: (dev_id, password, old_password, old_password_until, jwt_secret,
 * old_jwt_secret, old_jwt_until, created, updated), passwords as 40 hex digits or "" (none),
 * secrets as text or "" (none). false (out untouched) for a row that is not one. */
bool tenant_from_row(struct tenant *out, const struct value *cols, size_t n);
void tenant_hash_hex(const uint8_t hash[20], char out[41]);

/* What SELECT shows instead of a secret: "*" and the hash in upper-case hex, as MySQL shows
 * mysql_native_password hashes (41 bytes with the NUL); "sha256:" and the first 16 hex digits of
 * SHA-256(secret) for a JWT secret (24 bytes). */
void tenant_password_text(const uint8_t hash[20], char out[42]);
void tenant_secret_fingerprint(const char *secret, size_t len, char out[24]);

#endif
