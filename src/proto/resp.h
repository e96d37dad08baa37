/* resp: the Redis serialization protocol, sans I/O. Parses the replies (and RESP2 pub/sub
 * messages, RESP3 pushes) a Redis server sends into a tree, and builds the commands a client
 * sends. Every reply is bounded (bulk length, elements per aggregate and in all, nesting), so a
 * misbehaving server cannot make a node allocate without limit. Written here rather than taken
 * from Debian's hiredis 0.14.1: its reader has no such bounds, no RESP3, and its async layer
 * asserts on the unsolicited `smessage` of sharded pub/sub; the codec is small and fuzzed
 * (fuzz/resp). Holds no global state and never touches a socket. */
#ifndef CC_RESP_H
#define CC_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"

enum { RESP_OK = 0, RESP_AGAIN = 1, RESP_ERROR = -1 };

enum resp_type {
    RESP_SIMPLE, /* +text */
    RESP_ERR,    /* -text, and RESP3's !blob error */
    RESP_INT,    /* :n, and RESP3's #t/#f as 1/0 */
    RESP_BULK,   /* $n bytes, and RESP3's =verbatim (its "txt:" prefix kept), ,double, (big */
    RESP_NIL,    /* $-1, *-1, RESP3's _ */
    RESP_ARRAY,  /* *n, RESP3's ~set */
    RESP_MAP,    /* RESP3's %n: 2n items, key then value */
    RESP_PUSH,   /* RESP3's >n (out-of-band: pub/sub messages, invalidations) */
};

struct resp_value {
    enum resp_type type;
    int64_t i;                /* RESP_INT */
    const char *s;            /* RESP_SIMPLE, RESP_ERR, RESP_BULK: into the input (transfer none) */
    size_t len;               /* its length (the text is not NUL-terminated) */
    struct resp_value *items; /* RESP_ARRAY, RESP_PUSH: n items; RESP_MAP: 2n (arena) */
    size_t n;
};

struct resp_limits {
    size_t max_bulk;    /* bytes of one bulk string */
    size_t max_items;   /* elements of the whole reply, all levels */
    unsigned max_depth; /* aggregates inside aggregates; 1 = a flat array */
};

/* 64 MiB bulks, a million elements, depth 8: far above what ccomet asks for. */
extern const struct resp_limits resp_default_limits;

/* Looks for one whole reply at the head of data[0..len). RESP_OK: it ends at *used.
 * RESP_AGAIN: not all there yet; *used is a lower bound on the bytes it needs (inside a long
 * bulk, its end), so a caller can wait for that much instead of scanning again at every read.
 * RESP_ERROR: the bytes are not RESP or pass a limit; the connection cannot go on; *err says
 * why (static). Never allocates. */
int resp_scan(const char *data, size_t len, const struct resp_limits *lim, size_t *used,
              const char **err);

/* Scans, then builds the tree of a whole reply in a (the strings point into data, which must
 * outlive the tree). Same results as resp_scan; *out is set on RESP_OK only. */
int resp_parse(const char *data, size_t len, const struct resp_limits *lim, struct arena *a,
               struct resp_value **out, size_t *used, const char **err);

/* Commands: an array of bulk strings. resp_begin(b, n) then exactly n arguments. */
void resp_begin(struct buf *b, size_t argc);
void resp_arg(struct buf *b, const void *s, size_t len);
void resp_arg_str(struct buf *b, const char *s); /* NUL-terminated */
void resp_arg_int(struct buf *b, int64_t v);
/* A whole command from argv (lens NULL: each NUL-terminated). */
void resp_command(struct buf *b, size_t argc, const char *const *argv, const size_t *lens);

/* Reading a tree: true when v is a bulk or simple string equal to s (NUL-terminated). */
bool resp_is(const struct resp_value *v, const char *s);
/* v's text (bulk, simple or error) as an integer, or v itself when RESP_INT; false if neither. */
bool resp_to_int(const struct resp_value *v, int64_t *out);

#endif
