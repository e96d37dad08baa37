/* fuzz/resp: libFuzzer target for the RESP codec (src/proto/resp.c). Runs the input through the
 * reply parser in a loop, as a Redis connection's reader would (replies back to back), under
 * the default limits and small ones, and checks the contract: a whole reply ends inside the
 * input and its strict prefix is incomplete; an incomplete one names a bound past the input;
 * every string of the tree lies inside the reply; counts and depth within the limits; an error
 * has a reason. Last, the input split into arguments is built as a command, which must parse
 * back to the same arguments. */
#include "proto/resp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"

#define ENSURE(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

static volatile size_t sink;

static size_t walk(const struct resp_value *v, const char *base, size_t n, unsigned depth,
                   const struct resp_limits *lim)
{
    ENSURE(depth <= lim->max_depth);
    size_t items = 0;
    switch (v->type) {
    case RESP_SIMPLE:
    case RESP_ERR:
    case RESP_BULK:
        ENSURE(v->s >= base && v->s + v->len <= base + n);
        ENSURE(v->len <= lim->max_bulk);
        for (size_t i = 0; i < v->len; i++)
            sink += (unsigned char)v->s[i];
        break;
    case RESP_ARRAY:
    case RESP_PUSH:
    case RESP_MAP: {
        size_t k = v->n * (v->type == RESP_MAP ? 2 : 1);
        items += k;
        for (size_t i = 0; i < k; i++)
            items += walk(&v->items[i], base, n, depth + 1, lim);
        break;
    }
    default: break;
    }
    return items;
}

static void replies(const char *data, size_t n, const struct resp_limits *lim)
{
    struct arena a;
    arena_init(&a);
    size_t off = 0;
    while (off < n) {
        struct resp_value *v = NULL;
        size_t used = 0;
        const char *err = NULL;
        int rc = resp_parse(data + off, n - off, lim, &a, &v, &used, &err);
        if (rc == RESP_ERROR) {
            ENSURE(err && *err);
            break;
        }
        if (rc == RESP_AGAIN) {
            ENSURE(used > n - off);
            break;
        }
        ENSURE(rc == RESP_OK && used > 0 && used <= n - off && v);
        ENSURE(walk(v, data + off, used, 0, lim) <= lim->max_items);
        if (used <= 4096) { /* the strict prefix is incomplete (a bounded cost per reply) */
            char *p = malloc(used - 1 ? used - 1 : 1);
            if (!p) abort();
            memcpy(p, data + off, used - 1);
            size_t need = 0;
            ENSURE(resp_scan(p, used - 1, lim, &need, &err) == RESP_AGAIN);
            ENSURE(need > used - 1 && need <= used);
            free(p);
        }
        off += used;
        arena_reset(&a);
    }
    arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    if (!copy) abort();
    if (size) memcpy(copy, data, size);
    replies(copy, size, &resp_default_limits);
    static const struct resp_limits small = {16, 8, 3};
    replies(copy, size, &small);

    /* the input as arguments split at '|', built and parsed back */
    const char *argv[64];
    size_t lens[64], argc = 0, start = 0;
    for (size_t i = 0; i <= size && argc < 64; i++) {
        if (i == size || copy[i] == '|') {
            argv[argc] = copy + start;
            lens[argc++] = i - start;
            start = i + 1;
        }
    }
    struct buf b;
    buf_init(&b);
    resp_command(&b, argc, argv, lens);
    struct arena a;
    arena_init(&a);
    struct resp_value *v = NULL;
    size_t used = 0;
    const char *err = NULL;
    ENSURE(resp_parse((const char *)buf_head(&b), buf_unread(&b), NULL, &a, &v, &used, &err) ==
           RESP_OK);
    ENSURE(used == buf_unread(&b) && v->type == RESP_ARRAY && v->n == argc);
    for (size_t i = 0; i < argc; i++)
        ENSURE(v->items[i].type == RESP_BULK && v->items[i].len == lens[i] &&
               (lens[i] == 0 || memcmp(v->items[i].s, argv[i], lens[i]) == 0));
    arena_free(&a);
    buf_free(&b);
    free(copy);
    return 0;
}
