/* pubsub: the browser side's live state. Pipes (tenant + name) with their subscribed
 * connections, users with their connections (presence), and the fan-out: a message is encoded
 * once into a shared frame and queued on every subscriber. It implements the hub's delivery,
 * so CometQL's publishes and live tables (pipes, users_in_pipes, users_time) read from here.
 * Pipes keep their last messages for a while so that a client that reconnects can ask for what
 * it missed (pipe_since). Loop thread only. */
#ifndef CC_PUBSUB_H
#define CC_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "proto/comet_cmd.h"
#include "push/hub.h"
#include "state/state.h"
#include "push/ws_conn.h"

struct pubsub;

/* state (transfer none) records users' last-seen times; it must outlive the pubsub. */
struct pubsub *pubsub_new(const struct config *cfg, struct state *state, struct hub *hub);
void pubsub_free(struct pubsub *ps);
void pubsub_reconfigure(struct pubsub *ps, const struct config *cfg);

/* The hub delivery backed by this registry (register it with hub_set_delivery). */
struct hub_delivery pubsub_delivery(struct pubsub *ps);

/* Subscriptions. subscribe returns 0, or -1 when the connection already has its maximum. */
int pubsub_subscribe(struct pubsub *ps, struct ws_conn *c, const char *name, size_t len);
bool pubsub_is_subscribed(const struct ws_conn *c, const char *name, size_t len);
void pubsub_unsubscribe(struct pubsub *ps, struct ws_conn *c, const char *name, size_t len);
void pubsub_unsubscribe_all(struct pubsub *ps, struct ws_conn *c);
/* Makes c's subscriptions exactly `names` (already validated): leaves the others, joins the new
 * ones; pipes in both are untouched, so track_ pipes see no churn. */
void pubsub_resubscribe(struct pubsub *ps, struct ws_conn *c, const struct ccmd_str *names,
                        size_t n);

/* Users: attach an authorized connection to its user (false when the user has its maximum of
 * connections); detach on close. The first attach publishes `online`, the last detach
 * `offline` and records the last-seen time. */
bool pubsub_user_attach(struct pubsub *ps, struct ws_conn *c);
/* True when the pipes and users joined so far are not yet in place in a cluster backend (the
 * subscriptions on their way to Redis): cb(ctx) comes once they are. False: they are. */
bool pubsub_barrier(struct pubsub *ps, void (*cb)(void *ctx), void *ctx);
void pubsub_user_detach(struct pubsub *ps, struct ws_conn *c);
/* Closes every connection of a user (auth revoked). */
void pubsub_kick_user(struct pubsub *ps, int64_t dev_id, int64_t user_id);

/* The open connections subscribed to the pipe other than `except` (nullable): who a browser's
 * message on it reaches on this node. */
size_t pubsub_audience(struct pubsub *ps, const struct ws_conn *except, int64_t dev_id,
                       const char *pipe, size_t len);

/* pipe_since, in two steps. The first id after last_id that the pipe's in-memory ring no longer
 * holds: replay_needs_history is true when stored history must be read first (ids > last_id,
 * sent with pubsub_replay_row); then pubsub_replay_ring sends what the ring holds after the
 * last id sent. Both return the number of messages sent. */
bool pubsub_replay_needs_history(struct pubsub *ps, const struct ws_conn *c, const char *pipe,
                                 size_t len, int64_t last_id);
/* One stored row (id, time, pipe, event, message, user_id) to c. */
/* A replay from the state is under way for c on pipe: live messages of that pipe skip c until
 * pubsub_replay_end (pubsub_replay_ring then sends what it missed, from the ring). */
void pubsub_replay_begin(struct pubsub *ps, struct ws_conn *c, const char *pipe, size_t len);
void pubsub_replay_end(struct ws_conn *c);
void pubsub_replay_row(struct pubsub *ps, struct ws_conn *c, const struct value *cols);
size_t pubsub_replay_ring(struct pubsub *ps, struct ws_conn *c, const char *pipe, size_t len,
                          int64_t last_sent);

size_t pubsub_subscribers(struct pubsub *ps, int64_t dev_id, const char *pipe, size_t len);

/* Interned strings (user agents, origins, languages): shared, refcounted. */
struct interned *pubsub_intern(struct pubsub *ps, const char *s, size_t len);
void pubsub_unintern(struct pubsub *ps, struct interned *i);
const char *interned_str(const struct interned *i);

/* Frees pipes that have been empty longer than the recovery window. */
void pubsub_sweep(struct pubsub *ps);

struct pubsub_stats {
    uint64_t pipes, users, published, delivered, dropped_slow;
    uint64_t ring_bytes;   /* frame bytes the recovery rings hold, <= [ws] recovery_memory */
    uint64_t ring_evicted; /* ring entries dropped early to stay under it */
};
void pubsub_stats(const struct pubsub *ps, struct pubsub_stats *out);

#endif
