/* Unit tests for src/core/buf.c and src/core/arena.c. */
#include "test.h"

#include "core/arena.h"
#include "core/buf.h"

TEST(buf_append_consume_compact)
{
    struct buf b;
    buf_init(&b);
    for (int i = 0; i < 1000; i++)
        buf_append(&b, "abcd", 4);
    CHECK_INT(buf_unread(&b), 4000);
    buf_consume(&b, 3998);
    CHECK_INT(buf_unread(&b), 2);
    CHECK_MEM(buf_head(&b), "cd", 2);
    buf_compact(&b);
    CHECK_INT(b.off, 0);
    buf_consume(&b, 2);
    CHECK_INT(b.len, 0);
    buf_free(&b);
}

TEST(arena_alignment_and_reset)
{
    struct arena a;
    arena_init(&a);
    for (int i = 1; i < 300; i++) {
        char *p = arena_alloc(&a, (size_t)i * 7);
        CHECK(((uintptr_t)p & 15) == 0);
        memset(p, 'x', (size_t)i * 7);
    }
    char *s = arena_strndup(&a, "hello", 3);
    CHECK_STR(s, "hel");
    arena_reset(&a);
    CHECK_INT(a.used, 0);
    arena_free(&a);
}
