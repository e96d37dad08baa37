/* redis: the state backend that lets several ccomet nodes share one truth in Redis ([store]
 * type = redis): every row a CometQL table shows, every pipe's history, every offline queue,
 * invitations and tenant credentials, and the fan-out of pipe and private messages between nodes
 * through sharded pub/sub (each node subscribes only to the pipes and users its browsers hold,
 * told by the hub's watch). Calls complete when Redis answers; a write Redis has not confirmed
 * fails (an ERR to the backend, never an OK). Two connections per shard: commands, pipelined;
 * pub/sub. Loop thread only. */
#ifndef CC_STATE_REDIS_H
#define CC_STATE_REDIS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "push/hub.h"
#include "state/state.h"

/* (transfer full) Connects at once ([redis] server, user, password, db, timeout_ms, prefix);
 * hub (transfer none, outlives the state) delivers what arrives from Redis, and the backend
 * registers as its watch. NULL with err on a bad setting. */
struct state *state_redis_new(uv_loop_t *loop, const struct config *cfg, struct hub *hub, char *err,
                              size_t errlen);

/* Closes both connections (what is in flight fails; later calls fail at once) so that the loop
 * can end; state_free afterwards frees the rest. */
void state_redis_stop(struct state *st);

/* Closes the user's connections on every node (through Redis's control channel). */
void state_redis_kick(struct state *st, int64_t dev_id, int64_t user_id);

/* Tells every node that a tenant's credentials changed (through the control channel); each
 * node's fn(ctx) (state_redis_on_tenants) then reloads them, this one's too. */
void state_redis_tenants_changed(struct state *st, int64_t dev_id);
void state_redis_on_tenants(struct state *st, void (*fn)(void *ctx), void *ctx);

/* True when both connections are up (the server waits for it at start). */
bool state_redis_up(const struct state *st);

struct redis_stats {
    uint64_t publishes, received, errors, bad_messages, resubscribes, reconnects;
    uint64_t gaps, repaired, gaps_lost, duplicates;     /* pipe sequence gaps seen and repaired */
    uint64_t redirects, moved_channels, slot_refreshes; /* Redis Cluster: MOVED/ASK followed */
    uint64_t shards;
    uint64_t latency_us; /* mean answer latency of the command link */
};
void state_redis_stats(const struct state *st, struct redis_stats *out);

#endif
