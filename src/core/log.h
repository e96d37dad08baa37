/* log: levelled, per-subsystem, structured logs in logfmt on stderr:
 *   ts=2026-11-24T06:50:01.123Z level=info sub=cometql conn=12 msg="client connected" peer=...
 * The level check happens before the arguments are evaluated. Repeated errors from one call site
 * are rate-limited with LOG_RATELIMITED. Single-threaded by design (called from the loop thread;
 * other threads write whole lines with one fprintf, which stdio keeps atomic per call). */
#ifndef CC_LOG_H
#define CC_LOG_H

#include <stdbool.h>

enum log_level { LOG_CRIT = 0, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_threshold;

void log_set_level(enum log_level level);
/* Parses "crit|error|warn|info|debug" or CppComet's numbers (100..600). */
bool log_parse_level(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);
void log_write(enum log_level level, const char *sub, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG(level, sub, ...)                                                                       \
    do {                                                                                           \
        if ((level) <= log_threshold) log_write((level), (sub), __VA_ARGS__);                      \
    } while (0)

/* At most `per_sec` lines per second from this call site; a summary of the dropped ones follows. */
bool log_ratelimit_pass(unsigned *window, unsigned *count, unsigned per_sec, unsigned *dropped);
#define LOG_RATELIMITED(level, sub, ...)                                                           \
    do {                                                                                           \
        static unsigned rl_window_, rl_count_, rl_dropped_;                                        \
        if ((level) <= log_threshold &&                                                            \
            log_ratelimit_pass(&rl_window_, &rl_count_, 10, &rl_dropped_))                         \
            log_write((level), (sub), __VA_ARGS__);                                                \
    } while (0)

/* Quotes a value for logfmt into buf (truncated to fit), returns buf. */
const char *log_quote(char *buf, unsigned size, const char *s, unsigned len);

#endif
