/* tenant_index: every entry of one tenant (dev_id) of a larger table, in O(that tenant's
 * entries) instead of a walk of the whole table (security audit M5: `SELECT * FROM pipes`,
 * `users_in_pipes` and `conference_members` without WHERE walked every tenant's pipes and
 * rooms). Entries embed a struct tenant_link and stay owned by their table; the index keeps one
 * small head per tenant that has entries, freed with its last entry. Not thread-safe. */
#ifndef CC_TENANT_INDEX_H
#define CC_TENANT_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "core/hmap.h"

struct tenant_link {
    struct tenant_link *prev, *next;
};

struct tenant_index {
    struct hmap tenants; /* struct tenant_head by dev_id */
};

void tenant_index_init(struct tenant_index *ix);
/* Frees the heads; the entries are the caller's. */
void tenant_index_free(struct tenant_index *ix);
/* l must not be in the index. */
void tenant_index_add(struct tenant_index *ix, int64_t dev, struct tenant_link *l);
/* l must be in the index under dev. */
void tenant_index_remove(struct tenant_index *ix, int64_t dev, struct tenant_link *l);
/* The tenant's first entry (then l->next), NULL when it has none. The list must not change while
 * it is walked, except by removing the entry just visited after reading its next. */
struct tenant_link *tenant_index_first(const struct tenant_index *ix, int64_t dev);
/* How many entries dev has. */
size_t tenant_index_count(const struct tenant_index *ix, int64_t dev);

/* The entry of type T whose member m is link l. */
#define TENANT_ENTRY(l, T, m) ((T *)(void *)((char *)(l)-offsetof(T, m)))

#endif
