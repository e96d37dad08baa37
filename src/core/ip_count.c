/* ip_count: connections per peer address; see ip_count.h. One heap entry per address with at
 * least one connection; the entry goes with the address's last connection. */
#include "core/ip_count.h"
#include "core/alloc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

struct ip_count_entry {
    struct hnode node;
    uint8_t ip[16];
    uint32_t n;
};

#define IP_SEED 0x9e3779b97f4a7c15ull

void ip_count_init(struct ip_count *t)
{
    hmap_init(&t->map);
}

void ip_count_free(struct ip_count *t)
{
    size_t b = 0;
    struct hnode *n = NULL, *next;
    for (n = hmap_iter(&t->map, &b, NULL); n; n = next) {
        next = hmap_iter(&t->map, &b, n);
        hmap_remove(&t->map, n);
        xfree(n);
    }
    hmap_free(&t->map);
}

void ip_count_key(const struct sockaddr *sa, uint8_t out[16])
{
    memset(out, 0, 16);
    if (!sa) return;
    if (sa->sa_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

void ip_count_key_text(const char *ip, uint8_t out[16])
{
    memset(out, 0, 16);
    struct in_addr v4;
    if (inet_pton(AF_INET, ip, &v4) == 1) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &v4, 4);
    } else if (inet_pton(AF_INET6, ip, out) != 1) {
        memset(out, 0, 16);
    }
}

static struct ip_count_entry *find(const struct ip_count *t, const uint8_t ip[16], uint64_t h)
{
    for (struct hnode *n = hmap_first(&t->map, h); n; n = hmap_next_same(n)) {
        struct ip_count_entry *e = (struct ip_count_entry *)n;
        if (memcmp(e->ip, ip, 16) == 0) return e;
    }
    return NULL;
}

bool ip_count_take(struct ip_count *t, const uint8_t ip[16], int64_t max)
{
    uint64_t h = hmap_hash_bytes(IP_SEED, ip, 16);
    struct ip_count_entry *e = find(t, ip, h);
    if (e && max > 0 && (int64_t)e->n >= max) return false;
    if (!e) {
        e = xcalloc(1, sizeof *e);
        memcpy(e->ip, ip, 16);
        hmap_insert(&t->map, &e->node, h);
    }
    e->n++;
    return true;
}

void ip_count_release(struct ip_count *t, const uint8_t ip[16])
{
    uint64_t h = hmap_hash_bytes(IP_SEED, ip, 16);
    struct ip_count_entry *e = find(t, ip, h);
    if (!e) return;
    if (--e->n == 0) {
        hmap_remove(&t->map, &e->node);
        xfree(e);
    }
}

uint32_t ip_count_of(const struct ip_count *t, const uint8_t ip[16])
{
    const struct ip_count_entry *e = find(t, ip, hmap_hash_bytes(IP_SEED, ip, 16));
    return e ? e->n : 0;
}
