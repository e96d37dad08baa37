/* state: what every backend's callers share (see state.h): the callback for writes nobody
 * waits on. */
#include "state/state.h"
#include "core/log.h"

static void log_failure(void *ctx, int64_t result, const char *err)
{
    if (result < 0)
        LOG_RATELIMITED(LOG_ERROR, "state", "msg=\"a write failed\" what=\"%s\" error=\"%s\"",
                        (const char *)ctx, err ? err : "?");
}

struct state_cb state_cb_log(const char *what)
{
    struct state_cb cb = {NULL, log_failure, (void *)what};
    return cb;
}
