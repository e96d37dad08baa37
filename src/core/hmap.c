/* hmap: intrusive chained hash table; see hmap.h. */
#include "core/hmap.h"
#include "core/alloc.h"

void hmap_init(struct hmap *m)
{
    m->n_buckets = 16;
    m->buckets = xcalloc(m->n_buckets, sizeof *m->buckets);
    m->count = 0;
}

void hmap_free(struct hmap *m)
{
    xfree(m->buckets);
    m->buckets = NULL;
    m->n_buckets = m->count = 0;
}

static void grow(struct hmap *m)
{
    size_t nb = m->n_buckets * 2;
    struct hnode **b = xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < m->n_buckets; i++) {
        for (struct hnode *n = m->buckets[i], *next; n; n = next) {
            next = n->next;
            struct hnode **slot = &b[n->hash & (nb - 1)];
            n->next = *slot;
            *slot = n;
        }
    }
    xfree(m->buckets);
    m->buckets = b;
    m->n_buckets = nb;
}

void hmap_insert(struct hmap *m, struct hnode *n, uint64_t hash)
{
    if (m->count >= m->n_buckets) grow(m);
    n->hash = hash;
    struct hnode **slot = &m->buckets[hash & (m->n_buckets - 1)];
    n->next = *slot;
    *slot = n;
    m->count++;
}

void hmap_remove(struct hmap *m, struct hnode *n)
{
    struct hnode **pp = &m->buckets[n->hash & (m->n_buckets - 1)];
    for (; *pp; pp = &(*pp)->next) {
        if (*pp == n) {
            *pp = n->next;
            m->count--;
            return;
        }
    }
}

struct hnode *hmap_first(const struct hmap *m, uint64_t hash)
{
    struct hnode *n = m->buckets[hash & (m->n_buckets - 1)];
    while (n && n->hash != hash)
        n = n->next;
    return n;
}

struct hnode *hmap_next_same(const struct hnode *n)
{
    uint64_t h = n->hash;
    n = n->next;
    while (n && n->hash != h)
        n = n->next;
    return (struct hnode *)n;
}

struct hnode *hmap_iter(const struct hmap *m, size_t *bucket, struct hnode *prev)
{
    if (prev && prev->next) return prev->next;
    size_t i = prev ? *bucket + 1 : *bucket;
    for (; i < m->n_buckets; i++) {
        if (m->buckets[i]) {
            *bucket = i;
            return m->buckets[i];
        }
    }
    *bucket = m->n_buckets;
    return NULL;
}

uint64_t hmap_hash_bytes(uint64_t seed, const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL ^ (seed * 0x9e3779b97f4a7c15ULL);
    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}
