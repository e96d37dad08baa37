/* comet_cmd: browser command splitting; see comet_cmd.h. */
#include "proto/comet_cmd.h"

#include <stdint.h>

#include <string.h>

/* Next '\n'-terminated field starting at *pos (the last field runs to the end). */
static bool field(const char *msg, size_t len, size_t *pos, struct ccmd_str *out)
{
    if (*pos > len) return false;
    const char *start = msg + *pos;
    const char *nl = memchr(start, '\n', len - *pos);
    size_t n = nl ? (size_t)(nl - start) : len - *pos;
    if (n && start[n - 1] == '\r') n--; /* tolerate CRLF */
    out->s = start;
    out->len = n;
    *pos += (nl ? (size_t)(nl - start) + 1 : len - *pos + 1);
    return true;
}

static bool rest(const char *msg, size_t len, size_t *pos, struct ccmd_str *out)
{
    if (*pos > len) return false;
    out->s = msg + *pos;
    out->len = len - *pos;
    *pos = len + 1;
    return true;
}

static bool parse_int(struct ccmd_str s, int64_t *v)
{
    if (s.len == 0 || s.len > 19) return false;
    int64_t n = 0;
    size_t i = 0;
    bool neg = false;
    if (s.s[0] == '-') {
        neg = true;
        i = 1;
        if (s.len == 1) return false;
    }
    for (; i < s.len; i++) {
        if (s.s[i] < '0' || s.s[i] > '9') return false;
        int d = s.s[i] - '0';
        if (n > (INT64_MAX - d) / 10) return false; /* 19 digits can overflow (audit L2) */
        n = n * 10 + d;
    }
    *v = neg ? -n : n;
    return true;
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '@';
}

static bool cmd_is(const struct ccmd_str *c, const char *name)
{
    size_t n = strlen(name);
    return c->len == n && memcmp(c->s, name, n) == 0;
}

int ccmd_parse(const char *msg, size_t len, struct ccmd *out, const char **err)
{
    memset(out, 0, sizeof *out);
    size_t pos = 0;
    struct ccmd_str cmd;
    field(msg, len, &pos, &cmd);
    if (cmd_is(&cmd, "subscription")) {
        out->kind = CCMD_SUBSCRIPTION;
        /* CppComet splits the list on any character outside its name alphabet */
        size_t i = pos;
        while (i < len) {
            while (i < len && !is_name_char(msg[i]))
                i++;
            size_t start = i;
            while (i < len && is_name_char(msg[i]))
                i++;
            if (i > start) {
                if (out->n_names == CCMD_MAX_NAMES) {
                    out->names_truncated = true;
                    break;
                }
                out->names[out->n_names].s = msg + start;
                out->names[out->n_names].len = i - start;
                out->n_names++;
            }
        }
        return CCMD_OK;
    }
    if (cmd_is(&cmd, "web_pipe2")) {
        out->kind = CCMD_WEB_PIPE2;
        if (!field(msg, len, &pos, &out->pipe) || !field(msg, len, &pos, &out->event) ||
            !field(msg, len, &pos, &out->auth_type) || !rest(msg, len, &pos, &out->message)) {
            *err = "web_pipe2 needs pipe, event, auth_type and message";
            return CCMD_ERROR;
        }
        return CCMD_OK;
    }
    if (cmd_is(&cmd, "pipe_log") || cmd_is(&cmd, "pipe_count") ||
        cmd_is(&cmd, "track_pipe_users")) {
        out->kind = cmd_is(&cmd, "pipe_log")     ? CCMD_PIPE_LOG
                    : cmd_is(&cmd, "pipe_count") ? CCMD_PIPE_COUNT
                                                 : CCMD_TRACK_PIPE_USERS;
        if (!field(msg, len, &pos, &out->pipe)) {
            *err = "the command needs a pipe name";
            return CCMD_ERROR;
        }
        field(msg, len, &pos, &out->marker); /* optional */
        return CCMD_OK;
    }
    if (cmd_is(&cmd, "user_data")) {
        out->kind = CCMD_USER_DATA;
        struct ccmd_str uid;
        if (!field(msg, len, &pos, &out->marker) || !field(msg, len, &pos, &uid) ||
            !parse_int(uid, &out->user_id)) {
            *err = "user_data needs a marker and a numeric user id";
            return CCMD_ERROR;
        }
        return CCMD_OK;
    }
    if (cmd_is(&cmd, "user_status")) {
        out->kind = CCMD_USER_STATUS;
        struct ccmd_str uid;
        if (!field(msg, len, &pos, &uid) || !parse_int(uid, &out->user_id)) {
            *err = "user_status needs a numeric user id";
            return CCMD_ERROR;
        }
        return CCMD_OK;
    }
    if (cmd_is(&cmd, "pipe_since")) {
        out->kind = CCMD_PIPE_SINCE;
        struct ccmd_str id;
        if (!field(msg, len, &pos, &out->pipe) || !field(msg, len, &pos, &id) ||
            !parse_int(id, &out->last_id) || out->last_id < 0) {
            *err = "pipe_since needs a pipe name and a message id";
            return CCMD_ERROR;
        }
        return CCMD_OK;
    }
    if (cmd_is(&cmd, "msg_ack")) {
        out->kind = CCMD_MSG_ACK;
        out->n_acks = 0;
        struct ccmd_str id;
        while (field(msg, len, &pos, &id)) {
            if (id.len == 0) continue; /* a trailing newline */
            if (out->n_acks == CCMD_MAX_ACKS) {
                *err = "msg_ack takes at most 256 ids";
                return CCMD_ERROR;
            }
            if (!parse_int(id, &out->acks[out->n_acks]) || out->acks[out->n_acks] <= 0) {
                *err = "msg_ack needs positive numeric queue ids";
                return CCMD_ERROR;
            }
            out->n_acks++;
        }
        if (!out->n_acks) {
            *err = "msg_ack needs at least one queue id";
            return CCMD_ERROR;
        }
        return CCMD_OK;
    }
    if (cmd_is(&cmd, "statistics")) {
        out->kind = CCMD_STATISTICS;
        return CCMD_OK;
    }
    if (cmd_is(&cmd, "cgi_call") || cmd_is(&cmd, "CometQL_call")) {
        out->kind = CCMD_IGNORED;
        return CCMD_OK;
    }
    *err = "unknown command";
    return CCMD_ERROR;
}
