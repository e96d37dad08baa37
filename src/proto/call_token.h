/* call_token: the invitation a browser shows the media node when it dials a room (security audit
 * C1). ccomet mints one per invited user with INSERT INTO conference and sends it in sys_sipCall
 * (`callToken`); cometVideoApi.js passes it in the INVITE's X-Comet-Call-Token header; the node
 * checks it with the same secret ([sip] call_secret on both sides) before the caller joins.
 *
 *   token = <expiry, unix seconds> "." base64url(HMAC-SHA256(secret,
 * "<dev>*<room>|<user>|<expiry>"))
 *
 * so it names one tenant's room and one user, and ends. Sans I/O. */
#ifndef CC_CALL_TOKEN_H
#define CC_CALL_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define CALL_TOKEN_MAX    72 /* with the NUL */
#define CALL_TOKEN_HEADER "X-Comet-Call-Token"

enum call_token_status {
    CALL_TOKEN_OK = 0,
    CALL_TOKEN_MALFORMED, /* not "<digits>.<43 base64url characters>" */
    CALL_TOKEN_BAD,       /* another room, tenant, user or secret */
    CALL_TOKEN_EXPIRED,
};

/* Writes the token into out (NUL-terminated); returns its length (0 if room is too long). */
size_t call_token_make(const char *secret, size_t secret_len, int64_t dev, const char *room,
                       size_t room_len, int64_t user, int64_t expiry, char out[CALL_TOKEN_MAX]);

enum call_token_status call_token_check(const char *secret, size_t secret_len, const char *token,
                                        size_t len, int64_t dev, const char *room, size_t room_len,
                                        int64_t user, int64_t now);

const char *call_token_status_text(enum call_token_status st);

#endif
