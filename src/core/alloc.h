/* alloc: the one allocation wrapper. Out of memory is fatal by policy (the process logs and
 * aborts); callers never check for NULL. Never used for memory handed to libraries that free it
 * themselves. */
#ifndef CC_ALLOC_H
#define CC_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);                 /* (transfer full) never NULL */
void *xcalloc(size_t n, size_t sz);      /* (transfer full) zeroed, never NULL */
void *xrealloc(void *p, size_t n);       /* (transfer full) p is no longer valid */
char *xstrdup(const char *s);            /* (transfer full) */
char *xstrndup(const char *s, size_t n); /* (transfer full) NUL-terminated copy of n bytes */
void xfree(void *p);                     /* NULL is fine */

#endif
