/* ini: the comet.ini reader, sans I/O: text in, (section, key, value, line) entries out.
 * CppComet's dialect: `;` or `#` starts a comment line; `;` or `#` after whitespace starts an
 * inline comment; `key = value` trimmed; `[section]`; a value in double quotes keeps `;`, `#` and
 * outer spaces. Unlike inih (Debian's libinih) it has no line-length limit, no continuation
 * lines, and keeps keys case-sensitive as CppComet does; list values (`key = []item`) are
 * passed through for the config layer to append. */
#ifndef CC_INI_H
#define CC_INI_H

#include <stddef.h>

/* Returns 0 to go on, non-zero to stop (that value is returned by ini_parse). */
typedef int (*ini_entry_fn)(void *ctx, const char *section, const char *key, const char *value,
                            int line);

/* Returns 0, the callback's non-zero value, or -1 on a malformed line (err filled). */
int ini_parse(const char *text, size_t len, ini_entry_fn fn, void *ctx, char *err, size_t errlen);

#endif
