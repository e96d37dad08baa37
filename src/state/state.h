/* state: the server's shared state behind one interface, in the domain's words: users' auth
 * hashes and data, revoked tokens, last-seen times, offline queues of private messages, pipe
 * settings and history, video invitations, and the two writes that also deliver (a pipe
 * publish, a private message). CometQL's tables, the browser side and the Video API reach the
 * state only through here, so that a backend can keep it in-process or share it between nodes
 * (main.c alone drives the embedded store's group commit and purge).
 *
 * Backends: embedded (SQLite through store.h, fan-out through the in-process hub; every call
 * completes before it returns) and, for cluster mode, one that keeps the state in Redis (calls
 * complete later, from the loop, when Redis answers). Callers must be correct for both:
 *  - every call completes exactly once, through cb->done, possibly before the call returns;
 *  - calls complete in the order they were made (one backend = one ordered stream), so the rows
 *    of several reads arrive in the order the reads were issued;
 *  - a read hands each row to cb->row (values (transfer none), valid during the call only);
 *    a non-zero return asks for no more rows (the backend may still stop late);
 *  - done's result is >= 0 (rows read, rows changed, or the id a write assigned) or -1 with an
 *    error text (transfer none, valid during the call);
 *  - a write is durable by the backend's own rule once done reports success, except that the
 *    embedded backend's writes become durable at the loop iteration's group commit: replies
 *    must then wait for it (state_commit_pending).
 * Loop thread only. */
#ifndef CC_STATE_H
#define CC_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/value.h"
#include "state/tenants.h"

struct state;
struct store;
struct hub;

struct state_cb {
    /* (nullable) each row of a read; non-zero: no more rows wanted */
    int (*row)(void *ctx, const struct value *cols, size_t n);
    /* exactly once: result >= 0, or -1 and err */
    void (*done)(void *ctx, int64_t result, const char *err);
    void *ctx;
};

/* A pipe message or a private message as a write that also delivers it. Strings (transfer
 * none), valid for the duration of the call. */
struct state_message {
    int64_t dev_id;
    const char *target; /* pipe name, or unused for a private message */
    size_t target_len;
    int64_t user_id; /* private message: the recipient; pipe message: the sender (0: backend) */
    const char *event;
    size_t event_len;
    const char *data;
    size_t data_len;
    int64_t time; /* unix seconds */
    /* A pipe message a browser sent (web_pipe2): subscribers see its user_id (0 when hidden).
     * origin (nullable, transfer none): the sending connection on this node, which is not
     * delivered its own message. */
    bool from_browser;
    const void *origin;
    /* A private message that is a room's invitation (sys_sipCall): the room, so that ending the
     * room finds its queued copies without reading the tenant's whole queue (audit M5). */
    const char *call_room;
    size_t call_room_len;
};

/* A Video API invitation (a row of `conference`). Strings (transfer none), NUL-terminated
 * except message. */
struct state_invitation {
    const char *name; /* room */
    int64_t user_id, caller_id;
    const char *message;
    size_t message_len;
    const char *profile, *stream, *node;
    int64_t time;
};

/* The operations a backend implements. Rows, for each read:
 *   auth (user_id, hash)          data (user_id, data)         token (token)
 *   time (user_id, time)          queue (user_id, id, time, event, message), oldest first
 *   history (id, time, pipe, event, message, user_id), oldest first
 *   pipe_setting (name, length)   conf (name, user_id, caller_id, message, profile, stream, node,
 *                                       time)
 *   tenant (tenant_from_row's columns), in dev_id order   conf_node (node)
 * `limit` bounds the rows a listing reads. */
struct state_ops {
    const char *name;      /* "sqlite", "redis" */
    bool completes_inline; /* every call completes before it returns (embedded) */
    void (*auth_get)(struct state *, int64_t dev, int64_t user, const struct state_cb *);
    void (*auth_list)(struct state *, int64_t dev, int64_t limit, const struct state_cb *);
    void (*auth_put)(struct state *, int64_t dev, int64_t user, const char *hash, size_t len,
                     const struct state_cb *);
    void (*auth_delete)(struct state *, int64_t dev, int64_t user, const struct state_cb *);

    void (*data_get)(struct state *, int64_t dev, int64_t user, const struct state_cb *);
    void (*data_list)(struct state *, int64_t dev, int64_t limit, const struct state_cb *);
    void (*data_put)(struct state *, int64_t dev, int64_t user, const char *data, size_t len,
                     const struct state_cb *);
    void (*data_delete)(struct state *, int64_t dev, int64_t user, const struct state_cb *);

    void (*token_get)(struct state *, int64_t dev, const char *token, size_t len,
                      const struct state_cb *);
    void (*token_list)(struct state *, int64_t dev, int64_t limit, const struct state_cb *);
    /* expires: when the row may go (the token's own exp: past it the token opens nothing
     * anyway); 0 = kept until deleted. */
    void (*token_put)(struct state *, int64_t dev, const char *token, size_t len, int64_t now,
                      int64_t expires, const struct state_cb *);
    void (*token_delete)(struct state *, int64_t dev, const char *token, size_t len,
                         const struct state_cb *);

    void (*time_get)(struct state *, int64_t dev, int64_t user, const struct state_cb *);
    void (*time_list)(struct state *, int64_t dev, int64_t limit, const struct state_cb *);
    void (*time_put)(struct state *, int64_t dev, int64_t user, int64_t time,
                     const struct state_cb *);

    void (*queue_list)(struct state *, int64_t dev, int64_t user, int64_t limit,
                       const struct state_cb *);
    void (*queue_list_all)(struct state *, int64_t dev, int64_t limit, const struct state_cb *);
    void (*queue_delete_user)(struct state *, int64_t dev, int64_t user, const struct state_cb *);
    void (*queue_delete_id)(struct state *, int64_t dev, int64_t id, const struct state_cb *);
    /* A browser has the queued message `id` of `user`: removed only if it is that user's. */
    void (*queue_ack)(struct state *, int64_t dev, int64_t user, int64_t id,
                      const struct state_cb *);
    /* Drops the queued (undelivered) sys_sipCall messages of a room: to one user, or (user 0)
     * to everyone. Result: rows removed. */
    void (*queue_delete_call)(struct state *, int64_t dev, const char *room, size_t len,
                              int64_t user, const struct state_cb *);

    void (*history_list)(struct state *, int64_t dev, const char *pipe, size_t len, int64_t limit,
                         const struct state_cb *);
    /* The pipe's kept messages with an id above after_id, oldest first (pipe_since). */
    void (*history_since)(struct state *, int64_t dev, const char *pipe, size_t len,
                          int64_t after_id, int64_t limit, const struct state_cb *);
    void (*history_delete_pipe)(struct state *, int64_t dev, const char *pipe, size_t len,
                                const struct state_cb *);
    void (*history_delete_id)(struct state *, int64_t dev, int64_t id, const struct state_cb *);

    void (*pipe_setting_get)(struct state *, int64_t dev, const char *pipe, size_t len,
                             const struct state_cb *);
    void (*pipe_setting_list)(struct state *, int64_t dev, int64_t limit, const struct state_cb *);
    void (*pipe_setting_put)(struct state *, int64_t dev, const char *pipe, size_t len,
                             int64_t length, const struct state_cb *);
    /* Removes the setting and the pipe's history with it; result: settings removed. */
    void (*pipe_setting_delete)(struct state *, int64_t dev, const char *pipe, size_t len,
                                const struct state_cb *);

    void (*conf_get)(struct state *, int64_t dev, const char *room, size_t len,
                     const struct state_cb *);
    void (*conf_list)(struct state *, int64_t dev, int64_t limit, const struct state_cb *);
    void (*conf_put)(struct state *, int64_t dev, const struct state_invitation *,
                     const struct state_cb *);
    /* One invited user's row (user > 0) or every row of the room (user 0). */
    void (*conf_delete)(struct state *, int64_t dev, const char *room, size_t len, int64_t user,
                        const struct state_cb *);
    /* Where the room was last placed: one row (node), or none. */
    void (*conf_node)(struct state *, int64_t dev, const char *room, size_t len,
                      const struct state_cb *);
    /* Places the room on `node` unless another placement stands (one that is not `stale`, the
     * node the caller found down; "" for none): so two nodes placing one room at once agree.
     * One row: the room's node after the call (node, or the placement that stood). */
    void (*conf_claim)(struct state *, int64_t dev, const char *room, size_t len, const char *node,
                       const char *stale, const struct state_cb *);

    /* Tenant credentials (global, not per tenant): every row; one tenant's record (its
     * secrets as they are: the backend must keep the file or keys private); removal. */
    void (*tenant_list)(struct state *, const struct state_cb *);
    void (*tenant_put)(struct state *, const struct tenant *, const struct state_cb *);
    void (*tenant_delete)(struct state *, int64_t dev, const struct state_cb *);

    /* A pipe message: assigns the next message id, keeps it as history when the pipe has a
     * length (trimmed to it) or is trust_* (kept until trust_ttl), and delivers it to every
     * subscriber. Result: the message id. */
    void (*pipe_publish)(struct state *, const struct state_message *, const struct state_cb *);
    /* A private message: delivered to the user's live connections, or queued while the user
     * is offline. Result: the queue id, or 0 when it was delivered live. */
    void (*user_message)(struct state *, const struct state_message *, const struct state_cb *);

    /* True while writes wait for the iteration's group commit (embedded backend). */
    bool (*commit_pending)(const struct state *);
    /* Completes every call still outstanding with an error, then frees the backend. */
    void (*free)(struct state *);
};

/* Every backend's handle starts with this. */
struct state {
    const struct state_ops *ops;
};

/* The embedded backend: store (transfer none) holds the rows, hub (transfer none) delivers;
 * both must outlive the state. */
struct state *state_embedded_new(struct store *store, struct hub *hub);

/* For tests of the callers' asynchronous paths: wraps inner (transfer full) so that every call
 * completes on a later loop turn, rows and result delivered then, in call order (as a remote
 * backend would); the work itself is done by inner at once. */
struct uv_loop_s;
struct state *state_deferred_new(struct state *inner, struct uv_loop_s *loop);

/* A state_cb for a write nobody waits on: a failure is logged, naming `what` (a string
 * literal). */
struct state_cb state_cb_log(const char *what);

static inline bool state_commit_pending(const struct state *st)
{
    return st->ops->commit_pending(st);
}

static inline void state_free(struct state *st)
{
    if (st) st->ops->free(st);
}

#endif
