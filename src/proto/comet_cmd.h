/* comet_cmd: the commands browsers send over the WebSocket (CppComet's text protocol: a command
 * name, then '\n'-separated arguments), sans I/O. Pointers in the result point into the
 * message. Validation of names (pipe classes, lengths) is the server's; this only splits. */
#ifndef CC_COMET_CMD_H
#define CC_COMET_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CCMD_MAX_NAMES 256 /* hard cap on names in one subscription command */

enum ccmd_kind {
    CCMD_SUBSCRIPTION,     /* subscription\n<pipe>\n<pipe>...  (the whole set) */
    CCMD_WEB_PIPE2,        /* web_pipe2\n<pipe>\n<event>\n<auth_type>\n<message> */
    CCMD_PIPE_LOG,         /* pipe_log\n<pipe>\n<marker>\n */
    CCMD_PIPE_COUNT,       /* pipe_count\n<pipe>\n<marker>\n */
    CCMD_TRACK_PIPE_USERS, /* track_pipe_users\n<pipe>\n<marker> */
    CCMD_USER_DATA,        /* user_data\n<marker>\n<user_id> */
    CCMD_USER_STATUS,      /* user_status\n<user_id> */
    CCMD_PIPE_SINCE,       /* pipe_since\n<pipe>\n<last_id>  (ccomet: missed-message recovery) */
    CCMD_STATISTICS,       /* statistics\n<json>: accepted, ignored */
    CCMD_IGNORED,          /* cgi_call, CometQL_call: accepted, no effect (as CppComet) */
    CCMD_MSG_ACK,          /* msg_ack\n<queue id>\n<queue id>...  (ccomet: offline queue ack) */
};

#define CCMD_MAX_ACKS 256

struct ccmd_str {
    const char *s;
    size_t len;
};

struct ccmd {
    enum ccmd_kind kind;
    struct ccmd_str names[CCMD_MAX_NAMES]; /* SUBSCRIPTION */
    size_t n_names;
    bool names_truncated; /* more names than CCMD_MAX_NAMES */
    struct ccmd_str pipe, event, marker, message, auth_type;
    int64_t user_id;             /* USER_DATA, USER_STATUS */
    int64_t last_id;             /* PIPE_SINCE */
    int64_t acks[CCMD_MAX_ACKS]; /* MSG_ACK: queue ids, each > 0 */
    size_t n_acks;
};

enum { CCMD_OK = 0, CCMD_ERROR = -1 };

/* Parses one command. Unknown command or missing arguments: CCMD_ERROR with a reason. */
int ccmd_parse(const char *msg, size_t len, struct ccmd *out, const char **err);

#endif
