/* arena: bump allocation in chunks; see arena.h. */
#include "core/arena.h"
#include "core/alloc.h"

#include <string.h>

#define CHUNK_MIN 4096

struct arena_chunk {
    struct arena_chunk *next;
    size_t size, off;
    _Alignas(16) unsigned char mem[];
};

void arena_init(struct arena *a)
{
    a->head = NULL;
    a->used = 0;
}

void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct arena_chunk *c = a->head;
    if (!c || c->size - c->off < n) {
        size_t size = n > CHUNK_MIN ? n : CHUNK_MIN;
        c = xmalloc(sizeof *c + size);
        c->size = size;
        c->off = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->mem + c->off;
    c->off += n;
    a->used += n;
    return p;
}

void *arena_zalloc(struct arena *a, size_t n)
{
    void *p = arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void arena_reset(struct arena *a)
{
    struct arena_chunk *c = a->head, *keep = NULL;
    while (c) {
        struct arena_chunk *next = c->next;
        if (!next) {
            keep = c;
        } else {
            xfree(c);
        }
        c = next;
    }
    if (keep) keep->off = 0;
    a->head = keep;
    a->used = 0;
}

void arena_free(struct arena *a)
{
    struct arena_chunk *c = a->head;
    while (c) {
        struct arena_chunk *next = c->next;
        xfree(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}
