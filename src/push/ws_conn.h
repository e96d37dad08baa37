/* ws_conn: one browser connection as the browser side's modules share it (ws_server.c owns its
 * transport, pubsub.c its subscriptions and user link, ws_commands.c what it asks for), and the
 * refcounted frames they send: a message is encoded once, as a complete WebSocket frame, and the
 * same bytes are queued to every subscriber. An idle connection owns no buffer at all; that is
 * what keeps its memory near the size of this struct. Loop thread only. */
#ifndef CC_WS_CONN_H
#define CC_WS_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"

/* A server-to-client frame, shared by every connection it is queued on. */
struct frame {
    uint32_t refs;
    uint32_t len; /* bytes in data: header + payload */
    uint8_t data[];
};

/* (transfer full) a text frame holding payload; refs = 1. */
struct frame *frame_text(const void *payload, size_t len);
/* (transfer full) a frame of any opcode (ping, pong, close). */
struct frame *frame_new(uint8_t opcode, const void *payload, size_t len);
static inline struct frame *frame_ref(struct frame *f)
{
    f->refs++;
    return f;
}
void frame_unref(struct frame *f);

/* The queue of frames not yet written to a connection. */
struct outq {
    struct frame **frames;
    uint32_t head, count, cap;
    uint32_t first_off; /* bytes of frames[head] already written */
    size_t bytes;       /* unwritten bytes in the queue */
};

struct pipe;     /* pubsub.c */
struct ws_user;  /* pubsub.c */
struct interned; /* pubsub.c: shared copies of user agents, origins, languages */
struct ws_server;
struct tls_session;
struct ws_fragment; /* ws_server.c: a fragmented message being assembled */

struct ws_sub {
    struct pipe *pipe;
    uint32_t slot; /* index of this connection in the pipe's subscriber array */
};

enum ws_conn_state { WS_HTTP, WS_OPEN, WS_CLOSING };

struct ws_conn {
    uv_tcp_t tcp; /* first: handle.data points back at us */
    struct ws_server *srv;
    uint64_t id;
    int64_t dev_id;
    int64_t user_id; /* 0: anonymous */
    uint8_t state;   /* enum ws_conn_state */
    bool authorized;
    bool dirty;   /* on the server's flush list */
    bool linger;  /* after a fatal error: half-close and wait for the peer, never reset it */
    bool shut;    /* the write side is shut down (linger) */
    bool writing; /* a uv_write is in flight */
    bool close_after_flush;
    uint8_t api_major;  /* the client's v=major.minor */
    bool acks_queue;    /* ack=1: queued messages are removed when the browser acks them */
    bool marks_history; /* marker=1: pipe_log's history carries the request's marker */
    /* State calls (state.h) may complete later: while a command waits on one, the commands
     * after it wait too (input is not read), and the connection's memory stays until every
     * call made for it has completed. */
    bool waiting;     /* a command's state calls are outstanding */
    bool in_input;    /* handle_bytes is on the stack */
    bool handle_gone; /* the TCP handle is closed; freed when holds reaches 0 */
    bool read_paused; /* reading stopped while waiting */
    uint16_t holds;   /* state calls outstanding for this connection */
    /* (nullable) the pipe a pipe_since is replaying from the state: its live messages skip this
     * connection meanwhile (the ring sends them after the replay, in order) */
    const struct pipe *replaying;
    uint16_t n_subs, cap_subs;
    uint32_t last_seen; /* coarse seconds, for the ping sweep */
    /* commands' token bucket ([ws] command_rate, command_burst): tokens left at cmd_at_ms */
    float cmd_tokens;
    uint32_t cmd_at_ms; /* the loop's clock in ms, truncated (differences wrap correctly) */
    char uuid[33];
    uint8_t ip[16]; /* peer address (v4-mapped for IPv4) */
    /* (in the padding after ip) a writer thread is sending this connection's queue: writing is
     * set too, so nothing else writes it or frees its frames until the loop takes the result */
    bool lent;
    bool close_pending; /* destroyed while lent: the handle closes when the result comes back */
    bool ip_counted;    /* ip holds one of the server's per_ip counts */
    struct interned *user_agent, *origin, *language;
    struct ws_sub *subs;
    struct outq *out;         /* NULL while nothing is queued */
    struct buf *in;           /* NULL while no partial frame or request is buffered */
    struct ws_fragment *frag; /* NULL unless a fragmented message is open */
    struct ws_user *user;     /* authorized connections: the user's entry */
    struct ws_conn *user_prev, *user_next;
    struct ws_conn *all_prev, *all_next;
    struct ws_conn *dirty_prev, *dirty_next; /* the server's flush list, oldest first */
    uv_write_t *wreq;                        /* allocated only while writing */
    struct tls_session *tls;                 /* wss only */
};

/* Queues a frame (takes a reference). Returns false when the connection's queue would exceed
 * its bound: the connection is then being closed as a slow reader. */
bool ws_conn_send(struct ws_conn *c, struct frame *f);
/* Encodes and queues one text message. */
bool ws_conn_send_text(struct ws_conn *c, const void *payload, size_t len);
/* Starts the close handshake with a code and reason. */
void ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason);

#endif
