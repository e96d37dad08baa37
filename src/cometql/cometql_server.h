/* cometql_server: the CometQL service: a TCP listener on [cometql] and one MySQL-protocol
 * connection per backend client: handshake, mysql_native_password (with the auth switch for
 * caching_sha2_password clients), TLS after an SSLRequest, COM_QUERY and the prepared-statement
 * commands, result encoding. Replies to writes are held until the store's group commit of the
 * loop iteration (cometql_server_after_commit), so an OK is never sent for a write that could
 * still be lost. Slow readers are paused, never buffered without bound. Loop thread only. */
#ifndef CC_COMETQL_SERVER_H
#define CC_COMETQL_SERVER_H

#include <stdbool.h>
#include <uv.h>

#include "cometql/cometql_exec.h"

struct cometql_server;

/* Binds and listens; returns NULL with err filled (address in use, bad TLS files ...). */
struct cometql_server *cometql_server_start(uv_loop_t *loop, const struct config *cfg,
                                            struct cq_env *env, char *err, size_t errlen);
/* Called once per loop iteration after store_commit(): ok=false answers the first write that
 * waited on it with an ERR naming why (transfer none) and closes that connection. Then flushes
 * every connection's pending replies. */
void cometql_server_after_commit(struct cometql_server *s, bool ok, const char *why);
/* A reloaded configuration (the caller keeps it alive until the next reload or stop). */
void cometql_server_reconfigure(struct cometql_server *s, const struct config *cfg);
/* Stops listening and closes every connection after flushing what is pending; done is called
 * once everything is closed. */
void cometql_server_stop(struct cometql_server *s, void (*done)(void *ctx), void *ctx);
void cometql_server_free(struct cometql_server *s);

uint64_t cometql_server_connections(const struct cometql_server *s);

#endif
