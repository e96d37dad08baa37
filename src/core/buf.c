/* buf: growable byte buffer; see buf.h. */
#include "core/buf.h"
#include "core/alloc.h"

#include <string.h>

void buf_init(struct buf *b)
{
    memset(b, 0, sizeof *b);
}

void buf_free(struct buf *b)
{
    xfree(b->data);
    buf_init(b);
}

void buf_reserve(struct buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return;
    if (b->off > 0 && b->off >= b->len / 2) {
        buf_compact(b);
        if (b->cap - b->len >= extra) return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
    if (!n) return;
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void buf_put_u8(struct buf *b, uint8_t v)
{
    buf_reserve(b, 1);
    b->data[b->len++] = v;
}

void buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len) b->off = b->len = 0;
}

void buf_compact(struct buf *b)
{
    if (!b->off) return;
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
}
