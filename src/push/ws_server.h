/* ws_server: the [ws] port. HTTP/1.1 (CORS OPTIONS, /info, /metrics, static files from
 * [main] base_dir) and CppComet's WebSocket endpoint (/ws/..., /comet-server/ws/...): the
 * handshake, authentication (users_auth hash or HS256 JWT), the browser commands, and writing
 * what pubsub queues. Writes are batched per loop iteration (ws_server_flush, after the store's
 * commit), at most [ws] flush_slice connections per iteration, oldest first (the loop does not
 * wait for I/O while some are left); a connection whose queue exceeds [ws] max_output is cut off
 * alone. Loop thread only. */
#ifndef CC_WS_SERVER_H
#define CC_WS_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "push/hub.h"
#include "push/pubsub.h"
#include "state/state.h"

struct ws_server;
struct tenants;

/* Counters other modules show (/metrics, SHOW STATUS). */
struct ws_metrics {
    uint64_t connections, accepted, closed, frames_in, bytes_out, slow_closed, protocol_errors;
    uint64_t queued_bytes;   /* across all connections' output queues */
    uint64_t rate_limited;   /* connections closed for commands past [ws] command_rate */
    uint64_t per_ip_refused; /* connections refused past [ws] max_connections_per_ip */
};

/* state (transfer none): users' keys, tokens, queues, history and publishing; tenants (transfer
 * none): the tenants' own browser JWT secrets. Both outlive the server. */
struct ws_server *ws_server_start(uv_loop_t *loop, const struct config *cfg, struct state *state,
                                  const struct tenants *tenants, struct pubsub *ps, char *err,
                                  size_t errlen);
/* Writes what the iteration queued, the oldest [ws] flush_slice dirty connections (call after
 * the store's commit); the rest go on the next iterations. */
void ws_server_flush(struct ws_server *s);
void ws_server_reconfigure(struct ws_server *s, const struct config *cfg);
/* Extra text appended to /metrics (the CometQL side's counters), refreshed by the caller. */
void ws_server_set_metrics_source(struct ws_server *s, void (*fn)(void *ctx, struct buf *out),
                                  void *ctx);
void ws_server_stop(struct ws_server *s, void (*done)(void *ctx), void *ctx);
void ws_server_free(struct ws_server *s);
void ws_server_metrics(const struct ws_server *s, struct ws_metrics *out);

#endif
