/* ip_count: connections open per peer address, for the per-IP caps of the listeners
 * ([freeswitch] max_connections_per_ip). An address is its 16-byte IPv6 form
 * (IPv4 as ::ffff:a.b.c.d), so both families share one table. Not thread-safe; no I/O. */
#ifndef CC_IP_COUNT_H
#define CC_IP_COUNT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/hmap.h"

struct ip_count {
    struct hmap map; /* struct ip_count_entry */
};

void ip_count_init(struct ip_count *t);
void ip_count_free(struct ip_count *t); /* frees every entry */

/* The 16-byte form of sa (AF_INET or AF_INET6); all zeros for anything else. */
void ip_count_key(const struct sockaddr *sa, uint8_t out[16]);
/* The same from an address's text ("127.0.0.3", "::1", "::ffff:10.0.0.1"); all zeros when it
 * is neither. */
void ip_count_key_text(const char *ip, uint8_t out[16]);

/* Counts one more connection from ip unless that would pass max (0: no cap). true when counted:
 * the caller then calls ip_count_release once for it. */
bool ip_count_take(struct ip_count *t, const uint8_t ip[16], int64_t max);
void ip_count_release(struct ip_count *t, const uint8_t ip[16]);

/* Connections counted for ip now. */
uint32_t ip_count_of(const struct ip_count *t, const uint8_t ip[16]);

#endif
