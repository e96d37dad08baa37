/* buf: a growable byte buffer with a read offset, for socket input and output. */
#ifndef CC_BUF_H
#define CC_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t len; /* bytes stored, including those already consumed */
    size_t off; /* bytes consumed from the front */
    size_t cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reserve(struct buf *b, size_t extra); /* room for extra more bytes at the end */
void buf_append(struct buf *b, const void *p, size_t n);
void buf_put_u8(struct buf *b, uint8_t v);
void buf_consume(struct buf *b, size_t n); /* drops n bytes from the front */
void buf_compact(struct buf *b);           /* moves unread bytes to the front */
static inline size_t buf_unread(const struct buf *b)
{
    return b->len - b->off;
}
static inline uint8_t *buf_head(const struct buf *b)
{
    return b->data ? b->data + b->off : NULL; /* NULL + 0 is undefined behaviour in C */
}

#endif
