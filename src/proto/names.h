/* names: the naming rule CometQL and the browser protocol share for pipes, events, rooms and
 * uuids: [A-Za-z0-9_-]. Lengths are the caller's rule (each protocol has its own bound). Pure. */
#ifndef CC_NAMES_H
#define CC_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* True when every byte of s[0..len) is a letter, a digit, '_' or '-' (true for len 0). */
bool comet_name_ok(const char *s, size_t len);

#endif
