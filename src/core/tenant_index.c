/* tenant_index: per-tenant lists over a larger table; see tenant_index.h. */
#include "core/tenant_index.h"
#include "core/alloc.h"

struct tenant_head {
    struct hnode node;
    int64_t dev;
    struct tenant_link *first;
    size_t n;
};

static uint64_t dev_hash(int64_t dev)
{
    return hmap_hash_bytes(11, &dev, sizeof dev);
}

static struct tenant_head *head_find(const struct tenant_index *ix, int64_t dev)
{
    for (struct hnode *n = hmap_first(&ix->tenants, dev_hash(dev)); n; n = hmap_next_same(n)) {
        struct tenant_head *h = (struct tenant_head *)n;
        if (h->dev == dev) return h;
    }
    return NULL;
}

void tenant_index_init(struct tenant_index *ix)
{
    hmap_init(&ix->tenants);
}

void tenant_index_free(struct tenant_index *ix)
{
    size_t b = 0;
    struct hnode *n = hmap_iter(&ix->tenants, &b, NULL);
    while (n) {
        struct hnode *next = hmap_iter(&ix->tenants, &b, n);
        xfree(n);
        n = next;
    }
    hmap_free(&ix->tenants);
}

void tenant_index_add(struct tenant_index *ix, int64_t dev, struct tenant_link *l)
{
    struct tenant_head *h = head_find(ix, dev);
    if (!h) {
        h = xcalloc(1, sizeof *h);
        h->dev = dev;
        hmap_insert(&ix->tenants, &h->node, dev_hash(dev));
    }
    l->prev = NULL;
    l->next = h->first;
    if (h->first) h->first->prev = l;
    h->first = l;
    h->n++;
}

void tenant_index_remove(struct tenant_index *ix, int64_t dev, struct tenant_link *l)
{
    struct tenant_head *h = head_find(ix, dev);
    if (!h) return;
    if (l->prev)
        l->prev->next = l->next;
    else
        h->first = l->next;
    if (l->next) l->next->prev = l->prev;
    l->prev = l->next = NULL;
    if (--h->n == 0) {
        hmap_remove(&ix->tenants, &h->node);
        xfree(h);
    }
}

struct tenant_link *tenant_index_first(const struct tenant_index *ix, int64_t dev)
{
    struct tenant_head *h = head_find(ix, dev);
    return h ? h->first : NULL;
}

size_t tenant_index_count(const struct tenant_index *ix, int64_t dev)
{
    struct tenant_head *h = head_find(ix, dev);
    return h ? h->n : 0;
}
