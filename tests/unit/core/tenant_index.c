/* Unit tests for src/core/tenant_index.c: per-tenant lists over a table (audit M5). */
#include "test.h"

#include "core/tenant_index.h"

struct entry {
    int id;
    struct tenant_link link;
};

static int sum(const struct tenant_index *ix, int64_t dev)
{
    int s = 0;
    for (struct tenant_link *l = tenant_index_first(ix, dev); l; l = l->next)
        s += TENANT_ENTRY(l, struct entry, link)->id;
    return s;
}

TEST(tenant_index_lists_one_tenants_entries)
{
    struct tenant_index ix;
    tenant_index_init(&ix);
    struct entry e[6];
    for (int i = 0; i < 6; i++) {
        e[i].id = 1 << i;
        tenant_index_add(&ix, i % 2 ? 7 : 0, &e[i].link); /* 0: ids 1,4,16; 7: 2,8,32 */
    }
    CHECK_INT(sum(&ix, 0), 21);
    CHECK_INT(sum(&ix, 7), 42);
    CHECK_INT(sum(&ix, 3), 0);
    CHECK(tenant_index_first(&ix, 3) == NULL);
    CHECK_INT(tenant_index_count(&ix, 7), 3);
    /* remove the middle, the first, the last of tenant 7 */
    tenant_index_remove(&ix, 7, &e[3].link);
    CHECK_INT(sum(&ix, 7), 34);
    tenant_index_remove(&ix, 7, &e[5].link); /* the head: added last */
    CHECK_INT(sum(&ix, 7), 2);
    tenant_index_remove(&ix, 7, &e[1].link);
    CHECK(tenant_index_first(&ix, 7) == NULL);
    CHECK_INT(tenant_index_count(&ix, 7), 0);
    CHECK_INT(sum(&ix, 0), 21); /* the other tenant untouched */
    /* removing the entry just visited while walking */
    for (struct tenant_link *l = tenant_index_first(&ix, 0), *next; l; l = next) {
        next = l->next;
        if (TENANT_ENTRY(l, struct entry, link)->id == 4) tenant_index_remove(&ix, 0, l);
    }
    CHECK_INT(sum(&ix, 0), 17);
    /* a tenant emptied and used again */
    tenant_index_add(&ix, 7, &e[1].link);
    CHECK_INT(sum(&ix, 7), 2);
    tenant_index_free(&ix); /* with entries still in: the heads go, the entries are ours */
}
