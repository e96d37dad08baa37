/* auth_failures: failed logins per peer address in a fixed window, for the listeners' login
 * throttles ([cometql], [ws] and ccomet-media's [sip] max_auth_failures / auth_failure_window).
 * Past the cap, an address is refused without its credentials being checked until its window
 * ends, so guessing a password or a short user key costs the window per cap's worth of tries.
 * Addresses are ip_count's 16-byte form. At most AUTH_FAILURES_MAX addresses are tracked: when
 * full, expired windows go, and if none has expired everything is forgotten (an attacker with
 * that many addresses is past what a per-address cap can stop). Not thread-safe; no I/O. */
#ifndef CC_AUTH_FAILURES_H
#define CC_AUTH_FAILURES_H

#include <stdint.h>

#include "core/hmap.h"

#define AUTH_FAILURES_MAX 65536

struct auth_failures {
    struct hmap map; /* struct auth_failure_entry */
};

void auth_failures_init(struct auth_failures *t);
void auth_failures_free(struct auth_failures *t);

/* Seconds until ip may try again (0: it may now): it failed max times in the window that began
 * at its first failure. max 0: no cap. now and window in seconds. */
uint32_t auth_failures_blocked(struct auth_failures *t, const uint8_t ip[16], uint32_t now,
                               int64_t max, int64_t window);
/* One more failure for ip. */
void auth_failures_add(struct auth_failures *t, const uint8_t ip[16], uint32_t now, int64_t window);
/* A successful login: ip's count starts afresh (as MySQL's max_connect_errors). */
void auth_failures_clear(struct auth_failures *t, const uint8_t ip[16]);
/* Addresses tracked now. */
size_t auth_failures_size(const struct auth_failures *t);

#endif
