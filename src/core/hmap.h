/* hmap: an intrusive chained hash table. Entries embed a struct hnode; the table stores only
 * pointers, grows by doubling, and never allocates per entry. The caller computes hashes and
 * compares keys (hmap_hash_bytes helps). Not thread-safe. */
#ifndef CC_HMAP_H
#define CC_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hnode {
    struct hnode *next;
    uint64_t hash;
};

struct hmap {
    struct hnode **buckets;
    size_t n_buckets; /* power of two */
    size_t count;
};

void hmap_init(struct hmap *m);
void hmap_free(struct hmap *m); /* frees the bucket array, not the entries */
void hmap_insert(struct hmap *m, struct hnode *n, uint64_t hash);
void hmap_remove(struct hmap *m, struct hnode *n);
/* First node with this hash; walk on with hmap_next_same. */
struct hnode *hmap_first(const struct hmap *m, uint64_t hash);
struct hnode *hmap_next_same(const struct hnode *n);
/* Iteration over everything: i starts at 0, returns NULL at the end. */
struct hnode *hmap_iter(const struct hmap *m, size_t *bucket, struct hnode *prev);

uint64_t hmap_hash_bytes(uint64_t seed, const void *p, size_t len);

#endif
