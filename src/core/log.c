/* log: logfmt lines on stderr; see log.h. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum log_level log_threshold = LOG_INFO;

static const char *names[] = {"crit", "error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
    log_threshold = level;
}

const char *log_level_name(enum log_level level)
{
    return (unsigned)level <= LOG_DEBUG ? names[level] : "?";
}

bool log_parse_level(const char *s, enum log_level *out)
{
    for (int i = 0; i <= LOG_DEBUG; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    char *end;
    long n = strtol(s, &end, 10);
    if (*s && !*end && n >= 0 && n <= 600) { /* CppComet: 100 crit .. 500 debug, 600 all */
        *out = n < 200   ? LOG_CRIT
               : n < 300 ? LOG_ERROR
               : n < 400 ? LOG_WARN
               : n < 500 ? LOG_INFO
                         : LOG_DEBUG;
        return true;
    }
    return false;
}

void log_write(enum log_level level, const char *sub, const char *fmt, ...)
{
    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s sub=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, log_level_name(level), sub);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}

bool log_ratelimit_pass(unsigned *window, unsigned *count, unsigned per_sec, unsigned *dropped)
{
    unsigned now = (unsigned)time(NULL);
    if (*window != now) {
        if (*dropped) {
            log_write(LOG_WARN, "log", "msg=\"repeated messages suppressed\" count=%u", *dropped);
            *dropped = 0;
        }
        *window = now;
        *count = 0;
    }
    if (++*count <= per_sec) return true;
    ++*dropped;
    return false;
}

const char *log_quote(char *buf, unsigned size, const char *s, unsigned len)
{
    unsigned o = 0;
    if (size < 4) return "\"\"";
    buf[o++] = '"';
    for (unsigned i = 0; i < len && o + 4 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            buf[o++] = '?';
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
