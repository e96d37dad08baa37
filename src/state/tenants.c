/* tenants: the in-memory copy of the tenants' own credentials and the checks made with them; see
 * tenants.h. Secrets are wiped (OPENSSL_cleanse) when a record is replaced or freed. */
#include "state/tenants.h"
#include "core/alloc.h"
#include "proto/jwt.h"
#include "proto/mysql_packet.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tenant_entry {
    struct hnode node;
    struct tenant rec;
};

#define TENANT_SEED 0x74656e616e74ull

static uint64_t dev_hash(int64_t dev)
{
    return hmap_hash_bytes(TENANT_SEED, &dev, sizeof dev);
}

void tenants_init(struct tenants *t)
{
    hmap_init(&t->map);
    t->count = 0;
    t->require_exp = false;
}

static char *dup_secret(const char *s, size_t len)
{
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static void free_secret(char *s, size_t len)
{
    if (!s) return;
    OPENSSL_cleanse(s, len);
    xfree(s);
}

void tenant_wipe(struct tenant *rec)
{
    free_secret(rec->jwt_secret, rec->jwt_len);
    free_secret(rec->old_jwt_secret, rec->old_jwt_len);
    OPENSSL_cleanse(rec, sizeof *rec);
}

static void copy_record(struct tenant *dst, const struct tenant *src)
{
    *dst = *src;
    dst->jwt_secret = src->jwt_secret ? dup_secret(src->jwt_secret, src->jwt_len) : NULL;
    dst->old_jwt_secret =
        src->old_jwt_secret ? dup_secret(src->old_jwt_secret, src->old_jwt_len) : NULL;
}

static struct tenant_entry *find(const struct tenants *t, int64_t dev)
{
    for (struct hnode *n = hmap_first(&t->map, dev_hash(dev)); n; n = hmap_next_same(n)) {
        struct tenant_entry *e = (struct tenant_entry *)n;
        if (e->rec.dev_id == dev) return e;
    }
    return NULL;
}

void tenants_free(struct tenants *t)
{
    size_t b = 0;
    struct hnode *n, *next;
    for (n = hmap_iter(&t->map, &b, NULL); n; n = next) {
        next = hmap_iter(&t->map, &b, n);
        struct tenant_entry *e = (struct tenant_entry *)n;
        hmap_remove(&t->map, n);
        tenant_wipe(&e->rec);
        xfree(e);
    }
    hmap_free(&t->map);
    t->count = 0;
}

const struct tenant *tenants_get(const struct tenants *t, int64_t dev)
{
    if (!t) return NULL;
    struct tenant_entry *e = find(t, dev);
    return e ? &e->rec : NULL;
}

void tenants_put(struct tenants *t, const struct tenant *rec)
{
    struct tenant_entry *e = find(t, rec->dev_id);
    if (e) {
        struct tenant old = e->rec;
        copy_record(&e->rec, rec); /* rec may point into e->rec's secrets: copy, then wipe */
        tenant_wipe(&old);
        return;
    }
    e = xcalloc(1, sizeof *e);
    copy_record(&e->rec, rec);
    hmap_insert(&t->map, &e->node, dev_hash(rec->dev_id));
    t->count++;
}

bool tenants_remove(struct tenants *t, int64_t dev)
{
    struct tenant_entry *e = find(t, dev);
    if (!e) return false;
    hmap_remove(&t->map, &e->node);
    tenant_wipe(&e->rec);
    xfree(e);
    t->count--;
    return true;
}

static int by_dev(const void *a, const void *b)
{
    int64_t x = (*(const struct tenant *const *)a)->dev_id;
    int64_t y = (*(const struct tenant *const *)b)->dev_id;
    return (x > y) - (x < y);
}

size_t tenants_each(const struct tenants *t, int (*fn)(void *ctx, const struct tenant *rec),
                    void *ctx)
{
    if (!t || t->count == 0) return 0;
    const struct tenant **all = xmalloc(t->count * sizeof *all);
    size_t n = 0, b = 0;
    for (struct hnode *h = hmap_iter(&t->map, &b, NULL); h && n < t->count;
         h = hmap_iter(&t->map, &b, h))
        all[n++] = &((struct tenant_entry *)h)->rec;
    qsort(all, n, sizeof *all, by_dev);
    size_t visited = 0;
    for (size_t i = 0; i < n; i++) {
        visited++;
        if (fn(ctx, all[i])) break;
    }
    xfree(all);
    return visited;
}

void tenant_apply(struct tenant *out, const struct tenant *cur, int64_t dev, const char *password,
                  size_t pw_len, const char *jwt_secret, size_t jwt_len, int64_t grace, int64_t now)
{
    memset(out, 0, sizeof *out);
    if (cur) copy_record(out, cur);
    out->dev_id = dev;
    if (!cur) out->created = now;
    out->updated = now;
    if (out->has_old_password && out->old_password_until <= now) {
        out->has_old_password = false; /* an old rotation's grace is over */
        OPENSSL_cleanse(out->old_password, sizeof out->old_password);
        out->old_password_until = 0;
    }
    if (out->old_jwt_secret && out->old_jwt_until <= now) {
        free_secret(out->old_jwt_secret, out->old_jwt_len);
        out->old_jwt_secret = NULL;
        out->old_jwt_len = 0;
        out->old_jwt_until = 0;
    }
    if (password) {
        uint8_t h[20];
        mysql_native_password_hash(password, pw_len, h);
        if (out->has_password && grace > 0 && memcmp(h, out->password, 20) != 0) {
            memcpy(out->old_password, out->password, 20);
            out->has_old_password = true;
            out->old_password_until = now + grace;
        } else if (grace <= 0) {
            out->has_old_password = false;
            OPENSSL_cleanse(out->old_password, sizeof out->old_password);
            out->old_password_until = 0;
        }
        memcpy(out->password, h, 20);
        out->has_password = true;
        OPENSSL_cleanse(h, sizeof h);
    }
    if (jwt_secret) {
        bool same = out->jwt_secret && out->jwt_len == jwt_len &&
                    CRYPTO_memcmp(out->jwt_secret, jwt_secret, jwt_len) == 0;
        if (out->jwt_secret && grace > 0 && !same) {
            free_secret(out->old_jwt_secret, out->old_jwt_len);
            out->old_jwt_secret = out->jwt_secret;
            out->old_jwt_len = out->jwt_len;
            out->old_jwt_until = now + grace;
        } else {
            free_secret(out->jwt_secret, out->jwt_len);
            if (grace <= 0) {
                free_secret(out->old_jwt_secret, out->old_jwt_len);
                out->old_jwt_secret = NULL;
                out->old_jwt_len = 0;
                out->old_jwt_until = 0;
            }
        }
        out->jwt_secret = dup_secret(jwt_secret, jwt_len);
        out->jwt_len = jwt_len;
    }
}

enum tenant_login tenants_check_login(const struct tenants *t, const char *main_password,
                                      bool shared_password_tenants, int64_t dev,
                                      const uint8_t scramble[20], const uint8_t *token,
                                      size_t token_len, int64_t now)
{
    const struct tenant *rec = dev != 0 ? tenants_get(t, dev) : NULL;
    if (rec && rec->has_password) {
        if (mysql_native_password_check_hash(scramble, rec->password, token, token_len))
            return TENANT_LOGIN_OWN;
        if (rec->has_old_password && now < rec->old_password_until &&
            mysql_native_password_check_hash(scramble, rec->old_password, token, token_len))
            return TENANT_LOGIN_OLD;
        return TENANT_LOGIN_WRONG; /* [main] password no longer opens this tenant */
    }
    if (dev != 0 && !shared_password_tenants) return TENANT_LOGIN_NO_OWN;
    return mysql_native_password_check(scramble, main_password, strlen(main_password), token,
                                       token_len)
               ? TENANT_LOGIN_SHARED
               : TENANT_LOGIN_WRONG;
}

static int verify(const struct tenants *t, const char *main_password, int64_t dev,
                  const char *token, size_t len, int64_t now, int64_t *user_id);

int tenants_jwt_verify(const struct tenants *t, const char *main_password, int64_t dev,
                       const char *token, size_t len, int64_t now, int64_t *user_id)
{
    int st = verify(t, main_password, dev, token, len, now, user_id);
    if (st == JWT_VALID && t && t->require_exp && !jwt_has_numeric_claim(token, len, "exp"))
        st = JWT_NO_EXPIRY;
    return st;
}

static int verify(const struct tenants *t, const char *main_password, int64_t dev,
                  const char *token, size_t len, int64_t now, int64_t *user_id)
{
    const struct tenant *rec = tenants_get(t, dev);
    if (rec && rec->jwt_secret) {
        enum jwt_status st =
            jwt_verify_hs256(token, len, rec->jwt_secret, rec->jwt_len, now, user_id);
        if (st == JWT_BAD_SIGNATURE && rec->old_jwt_secret && now < rec->old_jwt_until)
            st = jwt_verify_hs256(token, len, rec->old_jwt_secret, rec->old_jwt_len, now, user_id);
        return st;
    }
    size_t sl;
    char *secret = jwt_tenant_secret(main_password, dev, &sl);
    enum jwt_status st = jwt_verify_hs256(token, len, secret, sl, now, user_id);
    OPENSSL_cleanse(secret, sl);
    xfree(secret);
    return st;
}

void tenant_password_text(const uint8_t hash[20], char out[42])
{
    static const char hex[] = "0123456789ABCDEF";
    out[0] = '*';
    for (int i = 0; i < 20; i++) {
        out[1 + 2 * i] = hex[hash[i] >> 4];
        out[2 + 2 * i] = hex[hash[i] & 15];
    }
    out[41] = '\0';
}

void tenant_secret_fingerprint(const char *secret, size_t len, char out[24])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)secret, len, d);
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 8; i++) {
        out[7 + 2 * i] = hex[d[i] >> 4];
        out[8 + 2 * i] = hex[d[i] & 15];
    }
    out[23] = '\0';
}

void tenant_hash_hex(const uint8_t hash[20], char out[41])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 20; i++) {
        out[2 * i] = hex[hash[i] >> 4];
        out[2 * i + 1] = hex[hash[i] & 15];
    }
    out[40] = '\0';
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "" -> false (none); 40 hex digits -> true; anything else -> -1 */
static int parse_hash(struct value v, uint8_t out[20])
{
    if (v.kind != VALUE_STR) return -1;
    if (v.len == 0) return 0;
    if (v.len != 40) return -1;
    for (int i = 0; i < 20; i++) {
        int hi = hex_digit(v.s[2 * i]), lo = hex_digit(v.s[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 1;
}

bool tenant_from_row(struct tenant *out, const struct value *cols, size_t n)
{
    static const enum value_kind kinds[9] = {VALUE_INT, VALUE_STR, VALUE_STR, VALUE_INT, VALUE_STR,
                                             VALUE_STR, VALUE_INT, VALUE_INT, VALUE_INT};
    if (n < 9) return false;
    for (int i = 0; i < 9; i++)
        if (cols[i].kind != kinds[i]) return false;
    struct tenant t;
    memset(&t, 0, sizeof t);
    t.dev_id = cols[0].i;
    int a = parse_hash(cols[1], t.password), b = parse_hash(cols[2], t.old_password);
    if (a < 0 || b < 0) return false;
    t.has_password = a == 1;
    t.has_old_password = b == 1;
    t.old_password_until = cols[3].i;
    if (cols[4].len) {
        t.jwt_secret = dup_secret(cols[4].s, cols[4].len);
        t.jwt_len = cols[4].len;
    }
    if (cols[5].len) {
        t.old_jwt_secret = dup_secret(cols[5].s, cols[5].len);
        t.old_jwt_len = cols[5].len;
    }
    t.old_jwt_until = cols[6].i;
    t.created = cols[7].i;
    t.updated = cols[8].i;
    *out = t;
    return true;
}
