/* video: the Video API's domain, the part of ccomet that hides the media nodes behind CometQL and
 * the browser pipes. It owns the media nodes (one media_link each, from the `[sip] freeswitch`
 * lines) and their health, where each room lives (sticky for the room's life, healthy, least
 * loaded, or the `node` the backend names), the invitations (`INSERT INTO conference`: stored,
 * then `sys_sipCall` to the invited user, queued when offline), who is in which call now (kept
 * from the nodes' conference::maintenance events, resynchronised from `conference xml_list`
 * after every reconnect), the call pipe signalling the server itself publishes (a member in, a
 * member out, a call ended), and the commands the backend gives (kick, end a room, mute, vmute,
 * deaf, layout). Loop thread only. */
#ifndef CC_VIDEO_H
#define CC_VIDEO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "core/value.h"
#include "push/hub.h"
#include "state/state.h"

struct video;

/* (transfer full) Parses the nodes of cfg and starts their links. With no node configured the
 * Video API answers every call with an error that says so. NULL with err on a bad line. */
struct video *video_new(uv_loop_t *loop, const struct config *cfg, struct state *st,
                        struct hub *hub, char *err, size_t errlen);
/* Stops the links and forgets the rooms; invitations still in flight complete with an error at
 * their next step (the struct goes with the last of them). */
void video_free(struct video *v);

/* Room names the dialplan accepts: 1..32 of [A-Za-z0-9_-]; profiles 1..32 of the same. */
bool video_room_name_ok(const char *s, size_t len);

struct video_invitation {
    const char *name; /* room (validated) */
    int64_t user_id, caller_id;
    const char *message; /* the backend's text, as given */
    size_t message_len;
    const char *profile; /* "video", "audio", "default" ... (validated) */
    int64_t stream;
    const char *node; /* (nullable) the node the backend asks for: its id "host:port" or Server */
};

/* INSERT INTO conference: places the room (reading where its invitations were placed when that
 * decides), stores the invitation, sends the user sys_sipCall (the state delivers it live or
 * queues it). Completes cb once, maybe before it returns, maybe on a later loop turn (the state
 * backend's pace): 0, or -1 with a message for the backend. inv is copied. */
void video_invite(struct video *v, int64_t dev_id, const struct video_invitation *inv,
                  const struct state_cb *cb);

/* DELETE FROM conference: user_id > 0 kicks that user's members from the room and removes the
 * invitation; user_id == 0 ends the room (every member kicked, every invitation removed); the
 * user's queued sys_sipCall for the room goes too. Completes cb once with the invitations
 * removed, or -1 and the state's error. */
void video_remove(struct video *v, int64_t dev_id, const char *name, size_t len, int64_t user_id,
                  const struct state_cb *cb);

/* A user's key was revoked (DELETE FROM users_auth, revoked_tokens): every media node drops
 * the user's cached SIP password, registrations and calls. NULL v is fine. */
void video_revoke_user(struct video *v, int64_t dev_id, int64_t user_id);

/* conference_members rows, in the table's column order (VIDEO_MEMBER_COLS values); name NULL
 * lists every room of the tenant. Returns non-zero from fn to stop. */
#define VIDEO_MEMBER_COLS 12
typedef int (*video_row_fn)(void *ctx, const struct value *row);
int video_members(struct video *v, int64_t dev_id, const char *name, size_t len, video_row_fn fn,
                  void *ctx);

/* UPDATE conference_members: column is mute, vmute, deaf (value 0/1) or layout (a layout
 * name); member_id 0 with layout means the room. 0, or -1 with err (room or node gone). */
int video_member_set(struct video *v, int64_t dev_id, const char *name, size_t len,
                     int64_t member_id, const char *column, struct value value, char *err,
                     size_t errlen);

#endif
