/* ini: comet.ini lexer; see ini.h. */
#include "core/ini.h"
#include "core/alloc.h"

#include <stdio.h>
#include <string.h>

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static char *trim(char *s, char *e)
{
    while (s < e && is_space(*s))
        s++;
    while (e > s && is_space(e[-1]))
        e--;
    *e = '\0';
    return s;
}

int ini_parse(const char *text, size_t len, ini_entry_fn fn, void *ctx, char *err, size_t errlen)
{
    char *copy = xstrndup(text, len);
    char section[128] = "";
    int lineno = 0, rc = 0;
    char *p = copy, *end = copy + len;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) p += 3; /* UTF-8 BOM */
    while (p < end && rc == 0) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        lineno++;
        char *line = trim(p, le);
        p = nl ? nl + 1 : end;
        if (!*line || *line == ';' || *line == '#') continue;
        if (*line == '[') {
            char *close = strchr(line, ']');
            if (!close) {
                snprintf(err, errlen, "line %d: section header without ']'", lineno);
                rc = -1;
                break;
            }
            char *name = trim(line + 1, close);
            if (strlen(name) >= sizeof section || !*name) {
                snprintf(err, errlen, "line %d: bad section name", lineno);
                rc = -1;
                break;
            }
            strcpy(section, name);
            continue;
        }
        char *eq = strchr(line, '=');
        if (!eq) {
            snprintf(err, errlen, "line %d: expected 'key = value'", lineno);
            rc = -1;
            break;
        }
        char *key = trim(line, eq);
        char *val = eq + 1;
        while (*val && is_space(*val))
            val++;
        if (*val == '"') {
            char *q = strchr(val + 1, '"');
            if (!q) {
                snprintf(err, errlen, "line %d: unterminated quoted value", lineno);
                rc = -1;
                break;
            }
            *q = '\0';
            val++;
        } else {
            for (char *c = val; *c; c++) {
                if ((*c == ';' || *c == '#') && (c == val || is_space(c[-1]))) {
                    *c = '\0';
                    break;
                }
            }
            val = trim(val, val + strlen(val));
        }
        if (!*key) {
            snprintf(err, errlen, "line %d: empty key", lineno);
            rc = -1;
            break;
        }
        rc = fn(ctx, section, key, val, lineno);
    }
    xfree(copy);
    return rc;
}
