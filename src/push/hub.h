/* hub: the one internal publish interface between the server API (CometQL) and the browser side.
 * CometQL hands it pipe messages and private user messages; whoever delivers to browsers (the
 * WebSocket module) registers as the hub's delivery and answers the live-state questions
 * (who is subscribed to a pipe, who is online). Without a delivery registered, nothing is
 * live: messages reach no one, and pipes/presence read as empty.
 * The hub never blocks and never stores: history and the offline queue are the caller's job
 * (see tables.c), decided from what the hub reports as delivered. Loop thread only. */
#ifndef CC_HUB_H
#define CC_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/value.h"

struct hub_message {
    int64_t dev_id;
    const char *pipe; /* pipe name, or "msg" for a private message */
    size_t pipe_len;
    const char *event;
    size_t event_len;
    const char *data; /* the message text exactly as the backend gave it */
    size_t data_len;
    int64_t id;      /* history/queue id when stored, else 0 */
    int64_t time;    /* unix seconds */
    int64_t user_id; /* sender (0 for the backend) */
    /* A browser's message (web_pipe2): subscribers see its user_id; origin (nullable, transfer
     * none) is the sending connection, which the delivery skips. */
    bool from_browser;
    const void *origin;
};

/* One row of users_in_pipes. Strings (transfer none). */
struct hub_pipe_member {
    const char *pipe;
    int64_t user_id;
    const char *uuid, *user_agent, *ip, *origin, *language;
};
typedef int (*hub_member_fn)(void *ctx, const struct hub_pipe_member *m);

/* What a delivery implements. Every function may be NULL. */
struct hub_delivery {
    void *ctx;
    /* Returns the number of connections the message was written to. */
    size_t (*to_pipe)(void *ctx, const struct hub_message *m);
    size_t (*to_user)(void *ctx, int64_t user_id, const struct hub_message *m);
    size_t (*pipe_subscribers)(void *ctx, int64_t dev_id, const char *pipe, size_t len);
    bool (*user_online)(void *ctx, int64_t dev_id, int64_t user_id);
    /* Lists members of one pipe (pipe != NULL) or of every pipe of the tenant. */
    int (*pipe_members)(void *ctx, int64_t dev_id, const char *pipe, size_t len, hub_member_fn fn,
                        void *fn_ctx);
    /* Lists live pipes of the tenant as (name, subscribers). */
    int (*pipes)(void *ctx, int64_t dev_id, int (*fn)(void *c, const char *pipe, size_t subs),
                 void *fn_ctx);
    /* Closes every connection of the user here (its key or token was revoked). */
    void (*kick_user)(void *ctx, int64_t dev_id, int64_t user_id);
};

/* Who wants to know which pipes and users this node's browsers hold (a cluster backend, to
 * subscribe only to those). on goes true when a pipe gets its first local subscriber (or is
 * kept for recovery) and false when it is forgotten; a user when its first connection here is
 * authorized and false after its last. Every function may be NULL. */
struct hub_watch {
    void *ctx;
    void (*pipe)(void *ctx, int64_t dev_id, const char *pipe, size_t len, bool on);
    void (*user)(void *ctx, int64_t dev_id, int64_t user_id, bool on);
    /* True when a watch change made so far is not in place yet: cb(cb_ctx) is then called
     * once when all are (or the backend gives up on them); false: nothing to wait for. */
    bool (*barrier)(void *ctx, void (*cb)(void *cb_ctx), void *cb_ctx);
};

struct hub {
    struct hub_delivery delivery;
    struct hub_watch watch;
    uint64_t published, delivered; /* counters for /metrics and SHOW STATUS */
};

void hub_init(struct hub *h);
void hub_set_delivery(struct hub *h, const struct hub_delivery *d);
void hub_set_watch(struct hub *h, const struct hub_watch *w); /* w NULL: none */
void hub_watch_pipe(struct hub *h, int64_t dev_id, const char *pipe, size_t len, bool on);
void hub_watch_user(struct hub *h, int64_t dev_id, int64_t user_id, bool on);
void hub_kick_user(struct hub *h, int64_t dev_id, int64_t user_id);
bool hub_barrier(struct hub *h, void (*cb)(void *ctx), void *ctx); /* see hub_watch.barrier */

size_t hub_publish_pipe(struct hub *h, const struct hub_message *m);
size_t hub_send_user(struct hub *h, int64_t user_id, const struct hub_message *m);
size_t hub_pipe_subscribers(struct hub *h, int64_t dev_id, const char *pipe, size_t len);
bool hub_user_online(struct hub *h, int64_t dev_id, int64_t user_id);
int hub_pipe_members(struct hub *h, int64_t dev_id, const char *pipe, size_t len, hub_member_fn fn,
                     void *ctx);
int hub_pipes(struct hub *h, int64_t dev_id, int (*fn)(void *c, const char *pipe, size_t subs),
              void *ctx);

#endif
