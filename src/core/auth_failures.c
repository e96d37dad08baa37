/* auth_failures: failed logins per address in a window; see auth_failures.h. One heap entry
 * per address that failed in its current window. */
#include "core/auth_failures.h"
#include "core/alloc.h"

#include <string.h>

struct auth_failure_entry {
    struct hnode node;
    uint8_t ip[16];
    uint32_t window_start;
    uint32_t n;
};

#define AF_SEED 0x2545f4914f6cdd1dull

void auth_failures_init(struct auth_failures *t)
{
    hmap_init(&t->map);
}

static void drop_if(struct auth_failures *t, uint32_t now, int64_t window, int all)
{
    size_t b = 0;
    struct hnode *n, *next;
    for (n = hmap_iter(&t->map, &b, NULL); n; n = next) {
        next = hmap_iter(&t->map, &b, n);
        struct auth_failure_entry *e = (struct auth_failure_entry *)n;
        if (all || (int64_t)(now - e->window_start) >= window) {
            hmap_remove(&t->map, n);
            xfree(e);
        }
    }
}

void auth_failures_free(struct auth_failures *t)
{
    drop_if(t, 0, 0, 1);
    hmap_free(&t->map);
}

static struct auth_failure_entry *find(const struct auth_failures *t, const uint8_t ip[16],
                                       uint64_t h)
{
    for (struct hnode *n = hmap_first(&t->map, h); n; n = hmap_next_same(n)) {
        struct auth_failure_entry *e = (struct auth_failure_entry *)n;
        if (memcmp(e->ip, ip, 16) == 0) return e;
    }
    return NULL;
}

/* ip's entry in its current window, an expired one removed; NULL when none. */
static struct auth_failure_entry *current(struct auth_failures *t, const uint8_t ip[16],
                                          uint32_t now, int64_t window, uint64_t h)
{
    struct auth_failure_entry *e = find(t, ip, h);
    if (e && (int64_t)(now - e->window_start) >= window) {
        hmap_remove(&t->map, &e->node);
        xfree(e);
        e = NULL;
    }
    return e;
}

uint32_t auth_failures_blocked(struct auth_failures *t, const uint8_t ip[16], uint32_t now,
                               int64_t max, int64_t window)
{
    if (max <= 0) return 0;
    uint64_t h = hmap_hash_bytes(AF_SEED, ip, 16);
    struct auth_failure_entry *e = current(t, ip, now, window, h);
    if (!e || (int64_t)e->n < max) return 0;
    uint32_t left = (uint32_t)(window - (int64_t)(now - e->window_start));
    return left ? left : 1;
}

void auth_failures_add(struct auth_failures *t, const uint8_t ip[16], uint32_t now, int64_t window)
{
    uint64_t h = hmap_hash_bytes(AF_SEED, ip, 16);
    struct auth_failure_entry *e = current(t, ip, now, window, h);
    if (!e) {
        if (t->map.count >= AUTH_FAILURES_MAX) {
            drop_if(t, now, window, 0);
            if (t->map.count >= AUTH_FAILURES_MAX) drop_if(t, now, window, 1);
        }
        e = xcalloc(1, sizeof *e);
        memcpy(e->ip, ip, 16);
        e->window_start = now;
        hmap_insert(&t->map, &e->node, h);
    }
    if (e->n < UINT32_MAX) e->n++;
}

void auth_failures_clear(struct auth_failures *t, const uint8_t ip[16])
{
    uint64_t h = hmap_hash_bytes(AF_SEED, ip, 16);
    struct auth_failure_entry *e = find(t, ip, h);
    if (!e) return;
    hmap_remove(&t->map, &e->node);
    xfree(e);
}

size_t auth_failures_size(const struct auth_failures *t)
{
    return t->map.count;
}
