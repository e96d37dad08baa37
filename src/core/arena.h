/* arena: request-scoped memory. Everything allocated from an arena dies together when the arena
 * is reset or freed (a parsed statement, a result set). Not thread-safe; one owner at a time. */
#ifndef CC_ARENA_H
#define CC_ARENA_H

#include <stddef.h>

struct arena_chunk;
struct arena {
    struct arena_chunk *head;
    size_t used; /* bytes handed out since the last reset, for limits and metrics */
};

void arena_init(struct arena *a);
void *arena_alloc(struct arena *a, size_t n); /* (transfer none) 16-byte aligned, never NULL */
void *arena_zalloc(struct arena *a, size_t n);
char *arena_strndup(struct arena *a, const char *s, size_t n); /* NUL-terminated */
void arena_reset(struct arena *a);                             /* frees all chunks but the first */
void arena_free(struct arena *a);

#endif
