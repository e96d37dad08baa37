/* value: one SQL scalar as the server moves it around: NULL, a signed 64-bit integer or a byte
 * string. Strings are (transfer none): they point into an arena, a store row or a packet, and
 * live as long as that owner does. Knows no protocol. */
#ifndef CC_VALUE_H
#define CC_VALUE_H

#include <stddef.h>
#include <stdint.h>

enum value_kind { VALUE_NULL = 0, VALUE_INT, VALUE_STR };

struct value {
    enum value_kind kind;
    int64_t i;     /* VALUE_INT */
    const char *s; /* VALUE_STR, not necessarily NUL-terminated */
    size_t len;    /* VALUE_STR */
};

static inline struct value value_null(void)
{
    struct value v = {VALUE_NULL, 0, NULL, 0};
    return v;
}
static inline struct value value_int(int64_t i)
{
    struct value v = {VALUE_INT, i, NULL, 0};
    return v;
}
static inline struct value value_str(const char *s, size_t len)
{
    struct value v = {VALUE_STR, 0, s, len};
    return v;
}

#endif
