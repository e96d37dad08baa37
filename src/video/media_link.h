/* media_link: ccomet's Event Socket client to one media node (ccomet-media or a FreeSWITCH with
 * mod_conference), from one `[sip] freeswitch = []Server=..,Port=..,Pwd=..,WSport=..,WShost=..`
 * line. It connects, authenticates, subscribes to `CUSTOM conference::maintenance`, runs `api`
 * commands in order with a callback each, hands every conference event to its owner, and watches
 * the node: a closed socket (a node process that dies: noticed at once), a refused password, or a
 * command unanswered for [sip] node_timeout_ms (a hung node or host; an `api status` heartbeat runs
 * every second) marks the node down; it then reconnects with back-off (0.2 s doubling to 2 s) until
 * the node answers again. What the commands and events mean is the owner's business (video.c). Loop
 * thread only. */
#ifndef CC_MEDIA_LINK_H
#define CC_MEDIA_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "proto/esl.h"

/* One media node as configured. */
struct media_node_conf {
    char server[256];  /* Event Socket host */
    int port;          /* Event Socket port (8021) */
    char pwd[128];     /* Event Socket password */
    int ws_port;       /* SIP over WebSocket port browsers use (WSport) */
    char ws_host[256]; /* host browsers use (WShost; default: Server) */
    char ws_proto[4];  /* WSproto: "wss" (default, as CppComet) or "ws" */
    char stream[256];  /* StreamServer (broadcast base URL), may be empty */
    char id[300];      /* "<WShost>:<WSport>": the conference table's node column */
};

/* Parses one `freeswitch` value: optional leading "[]", comma-separated Key=Value pairs (keys
 * case-insensitive: Server, Port, Pwd, WSport, WShost, WSproto, StreamServer). Server and WSport
 * are required; Port defaults to 8021, Pwd to ClueCon. 0, or -1 with err. */
int media_node_parse(const char *line, struct media_node_conf *out, char *err, size_t errlen);

struct media_link;

struct media_link_cbs {
    void *ctx;
    void (*on_up)(void *ctx, struct media_link *l);
    void (*on_down)(void *ctx, struct media_link *l, const char *why);
    /* A conference event (text/event-plain), decoded; ev lives until the callback returns. */
    void (*on_event)(void *ctx, struct media_link *l, const struct esl_event *ev);
};

/* ok: an api/response arrived (body is its text, which may itself say -ERR); !ok: the link went
 * down before the answer (body NULL). */
typedef void (*media_api_cb)(void *ctx, struct media_link *l, bool ok, const char *body,
                             size_t len);

/* (transfer full) Starts connecting at once. index is the owner's (media_link_index); a command
 * (the heartbeat included) unanswered for answer_ms marks the node down. */
struct media_link *media_link_new(uv_loop_t *loop, const struct media_node_conf *conf, int index,
                                  unsigned answer_ms, const struct media_link_cbs *cbs);
/* Closes the socket and frees the link once libuv is done with it. Pending callbacks are
 * called with ok = false first. */
void media_link_free(struct media_link *l);

bool media_link_is_up(const struct media_link *l);
int media_link_index(const struct media_link *l);
const struct media_node_conf *media_link_conf(const struct media_link *l);

/* Sends `api <command_line>`. 0, or -1 when the link is not up or the line cannot be framed
 * (cb is then not called). cb is nullable. */
int media_link_api(struct media_link *l, const char *command_line, media_api_cb cb, void *ctx);

#endif
