/* redis_link: one connection from ccomet to one Redis server, owned by ccomet's loop. It
 * connects (AUTH and SELECT first when configured), pipelines the commands given to it (all of a
 * loop iteration's commands leave in one write), hands each reply to its command's callback in
 * order, and watches the server: a closed socket, a protocol error, or a command unanswered for
 * timeout_ms marks the link down; every command in flight then fails (its outcome is unknown:
 * never reported as success) and the link reconnects with back-off (100 ms doubling to 5 s,
 * jittered, so a fleet of nodes does not reconnect in step, and never busy-looping while Redis is
 * down). An idle link is probed with PING. A link made for pub/sub hands every reply it gets to
 * on_push instead (subscription confirmations and messages alike), since in RESP2 a subscribed
 * connection's replies are not in command order. Loop thread only. */
#ifndef CC_REDIS_LINK_H
#define CC_REDIS_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "proto/resp.h"

struct redis_link_conf {
    char host[256];
    int port;
    char user[128];      /* ACL user ("": AUTH with the password alone) */
    char password[256];  /* "": no AUTH */
    int db;              /* SELECT when not 0 */
    unsigned timeout_ms; /* connect, and each command's answer */
    bool subscriber;     /* a pub/sub connection: replies go to on_push */
};

/* "host:port" or "host" (port 6379); [v6]:port. 0, or -1 with err. */
int redis_addr_parse(const char *s, struct redis_link_conf *out, char *err, size_t errlen);

struct redis_link;

struct redis_link_cbs {
    void *ctx;
    void (*on_up)(void *ctx, struct redis_link *l);                    /* (nullable) */
    void (*on_down)(void *ctx, struct redis_link *l, const char *why); /* (nullable) */
    /* (nullable) a subscriber link's every reply; a RESP3 push on any link. v lives until the
     * callback returns. */
    void (*on_push)(void *ctx, struct redis_link *l, const struct resp_value *v);
};

/* A command's answer: v is the reply (an error reply is RESP_ERR; v lives until the callback
 * returns), or NULL when the link failed first, with err saying why. */
typedef void (*redis_reply_cb)(void *ctx, const struct resp_value *v, const char *err);

/* (transfer full) Starts connecting at once. */
struct redis_link *redis_link_new(uv_loop_t *loop, const struct redis_link_conf *conf,
                                  const struct redis_link_cbs *cbs);
/* Fails every command in flight (cb with NULL), closes the socket, frees the link once libuv is
 * done with it. */
void redis_link_free(struct redis_link *l);

bool redis_link_is_up(const struct redis_link *l);
const struct redis_link_conf *redis_link_conf(const struct redis_link *l);

/* Sends one RESP-encoded command (the bytes are copied) and calls cb (nullable) with its reply.
 * On a link that is not up cb is called at once with NULL and the reason (so a write is never
 * queued behind an outage it cannot outlive). On an up subscriber link cb is never called: the
 * replies come to on_push. */
void redis_link_send(struct redis_link *l, const void *cmd, size_t len, redis_reply_cb cb,
                     void *ctx);

/* Counters for /metrics. */
struct redis_link_stats {
    uint64_t reconnects, commands, failed;
    uint64_t latency_us_sum, latency_n; /* reply latency */
};
const struct redis_link_stats *redis_link_stats(const struct redis_link *l);

#endif
