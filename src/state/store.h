/* store: ccomet's persistent state in an embedded SQLite database (WAL), in the domain's words:
 * auth hashes, user data, revoked tokens, last-online times, the offline queue of private
 * messages, pipe history and pipe settings, each keyed by tenant (dev_id).
 *
 * Durability contract (what a CometQL OK means): writes run inside one transaction per loop
 * iteration that the server commits, with store_commit(), before it sends any reply of that
 * iteration (group commit, as Redis flushes its AOF before replying). With
 * synchronous=normal a committed write survives a crash or kill -9 of ccomet; with
 * synchronous=full it is fsync'ed and survives power loss too.
 *
 * Single-threaded: used from the loop thread only. Row callbacks get (transfer none) values that
 * live until the callback returns. */
#ifndef CC_STORE_H
#define CC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/value.h"

struct store;

/* A row of a listing; return non-zero to stop the listing early. */
typedef int (*store_row_fn)(void *ctx, const struct value *cols, size_t n);

struct store *store_open(const char *path, bool sync_full, char *err, size_t errlen);
/* How long a write waits for a lock another process holds on the file (default 100 ms). The
 * loop is blocked meanwhile, so keep it short: past it the write fails (SQLITE_BUSY) and its
 * statement answers ERR. */
void store_set_busy_timeout(struct store *s, int ms);
void store_close(struct store *s); /* commits what is pending */

/* Commits the open write transaction, if any. 0 or -1 (then everything since the last commit is
 * rolled back and must not be acknowledged). */
int store_commit(struct store *s);
bool store_dirty(const struct store *s);
const char *store_errmsg(const struct store *s);

/* Every function below returns >= 0 on success (a count, or 1/0 for found/not found) and -1 on
 * a storage error. Writes open the iteration's transaction. */

/* users_auth */
int store_auth_put(struct store *s, int64_t dev, int64_t user, const char *hash, size_t len);
int store_auth_get(struct store *s, int64_t dev, int64_t user, store_row_fn fn, void *ctx);
int store_auth_delete(struct store *s, int64_t dev, int64_t user);
int store_auth_list(struct store *s, int64_t dev, int64_t limit, store_row_fn fn, void *ctx);

/* users_data */
int store_data_put(struct store *s, int64_t dev, int64_t user, const char *data, size_t len);
int store_data_get(struct store *s, int64_t dev, int64_t user, store_row_fn fn, void *ctx);
int store_data_delete(struct store *s, int64_t dev, int64_t user);
int store_data_list(struct store *s, int64_t dev, int64_t limit, store_row_fn fn, void *ctx);

/* revoked_tokens: rows (token) */
int store_token_put(struct store *s, int64_t dev, const char *token, size_t len, int64_t now);
int store_token_get(struct store *s, int64_t dev, const char *token, size_t len, store_row_fn fn,
                    void *ctx);
int store_token_delete(struct store *s, int64_t dev, const char *token, size_t len);
int store_token_list(struct store *s, int64_t dev, int64_t limit, store_row_fn fn, void *ctx);

/* users_time: rows (user_id, time) */
int store_time_put(struct store *s, int64_t dev, int64_t user, int64_t time);
int store_time_get(struct store *s, int64_t dev, int64_t user, store_row_fn fn, void *ctx);
int store_time_list(struct store *s, int64_t dev, int64_t limit, store_row_fn fn, void *ctx);

/* users_messages (the offline queue): rows (user_id, id, time, event, message), oldest first */
/* call_room (nullable): the room of an invitation (sys_sipCall), for store_queue_delete_call */
int64_t store_queue_add(struct store *s, int64_t dev, int64_t user, int64_t time, const char *event,
                        size_t event_len, const char *msg, size_t msg_len, const char *call_room,
                        size_t call_room_len);
int store_queue_list(struct store *s, int64_t dev, int64_t user, int64_t limit, store_row_fn fn,
                     void *ctx);
int store_queue_list_all(struct store *s, int64_t dev, int64_t limit, store_row_fn fn, void *ctx);
int store_queue_delete_user(struct store *s, int64_t dev, int64_t user);
int store_queue_delete_id(struct store *s, int64_t dev, int64_t id);
/* A browser has the queued message `id` of `user`: removed only if it is that user's. */
int store_queue_ack(struct store *s, int64_t dev, int64_t user, int64_t id);

/* pipe history: rows (id, time, pipe, event, message, user_id), oldest first. keep > 0 trims
 * the pipe to its newest `keep` rows after the insert; keep == 0 keeps everything (trust_). */
/* Message ids: one increasing sequence per store for pipe messages (history or not), never
 * reused, also across restarts and crashes. -1 on a storage error. */
int64_t store_next_message_id(struct store *s);
int64_t store_history_add(struct store *s, int64_t dev, int64_t id, const char *pipe,
                          size_t pipe_len, int64_t time, const char *event, size_t event_len,
                          const char *msg, size_t msg_len, int64_t user_id, int64_t keep);
/* Rows with id > after_id, oldest first. */
int store_history_since(struct store *s, int64_t dev, const char *pipe, size_t pipe_len,
                        int64_t after_id, int64_t limit, store_row_fn fn, void *ctx);
int store_history_list(struct store *s, int64_t dev, const char *pipe, size_t pipe_len,
                       int64_t limit, store_row_fn fn, void *ctx);
int store_history_delete_pipe(struct store *s, int64_t dev, const char *pipe, size_t pipe_len);
int store_history_delete_id(struct store *s, int64_t dev, int64_t id);

/* pipes_settings: rows (name, length) */
int store_pipe_setting_put(struct store *s, int64_t dev, const char *pipe, size_t pipe_len,
                           int64_t length);
int store_pipe_setting_get(struct store *s, int64_t dev, const char *pipe, size_t pipe_len,
                           store_row_fn fn, void *ctx);
/* The history length of a pipe (0 when unset), from an in-memory copy of pipes_settings that
 * the store keeps in step with the table (publishing never reads the database). */
int64_t store_pipe_history_length(struct store *s, int64_t dev, const char *pipe, size_t pipe_len);
int store_pipe_setting_delete(struct store *s, int64_t dev, const char *pipe, size_t pipe_len);
int store_pipe_setting_list(struct store *s, int64_t dev, int64_t limit, store_row_fn fn,
                            void *ctx);

/* conference (Video API invitations): rows (name, user_id, caller_id, message, profile, stream,
 * node, time), one per (room, invited user). */
struct store_invitation {
    const char *name; /* room, NUL-terminated */
    int64_t user_id, caller_id;
    const char *message;
    size_t message_len;
    const char *profile, *stream, *node; /* NUL-terminated */
    int64_t time;
};
int store_conf_put(struct store *s, int64_t dev, const struct store_invitation *inv);
int store_conf_get(struct store *s, int64_t dev, const char *name, size_t len, store_row_fn fn,
                   void *ctx);
int store_conf_list(struct store *s, int64_t dev, int64_t limit, store_row_fn fn, void *ctx);
int store_conf_delete(struct store *s, int64_t dev, const char *name, size_t len, int64_t user);
int store_conf_delete_room(struct store *s, int64_t dev, const char *name, size_t len);
/* The node of the room's newest invitation: one row (node), or none. */
int store_conf_node(struct store *s, int64_t dev, const char *name, size_t len, store_row_fn fn,
                    void *ctx);
/* Drops the queued (undelivered) invitations to a room (rows queued with its call_room): to one
 * user, or (user 0) to everyone, through an index. Returns rows removed or -1. */
int store_queue_delete_call(struct store *s, int64_t dev, const char *room, size_t len,
                            int64_t user);

/* tenants (root's table of tenant credentials): rows (dev_id, password, old_password,
 * old_password_until, jwt_secret, old_jwt_secret, old_jwt_until, created, updated). Passwords are
 * the 40 hex digits of SHA1(SHA1(password)) or "" (none); secrets are text, "" for none. */
struct store_tenant {
    int64_t dev_id;
    const char *password, *old_password; /* NUL-terminated */
    int64_t old_password_until;
    const char *jwt_secret, *old_jwt_secret;
    size_t jwt_len, old_jwt_len;
    int64_t old_jwt_until, created, updated;
};
int store_tenant_put(struct store *s, const struct store_tenant *t);
int store_tenant_delete(struct store *s, int64_t dev);
int store_tenant_list(struct store *s, store_row_fn fn, void *ctx);

/* Expiry: drops queued messages older than now - queue_ttl and trust_ history older than
 * now - trust_ttl. Returns rows removed. */
int store_purge(struct store *s, int64_t now, int64_t queue_ttl, int64_t trust_ttl);

#endif
