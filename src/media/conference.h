/* conference: ccomet-media's model of rooms and members, and the event bus that the Event
 * Socket and the logs listen to. It knows nothing of SIP or GStreamer: the SIP side calls
 * conference_join/leave, the media side (mixer.c) moves the media and reports talking and
 * failures back here, the Event Socket reads the registry and turns events into FreeSWITCH's
 * conference::maintenance events. One GLib main context (the node's main loop) owns all of it;
 * other threads (GStreamer streaming threads) must post to it, never call in. */
#ifndef CC_CONFERENCE_H
#define CC_CONFERENCE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* A profile from the config ([profile.<name>]): what a room of that profile mixes. */
struct conf_profile {
    char *name;        /* "video", "audio", "default" */
    bool video;        /* negotiate and mix video */
    int width, height; /* the canvas */
    int fps;
    int video_kbps; /* the shared encoder's target */
    int audio_kbps;
    int max_members; /* per room */
    char *layout;    /* "grid" (default) or "floor" */
};

enum conf_layout { CONF_LAYOUT_GRID, CONF_LAYOUT_FLOOR };

struct conf_room;
struct conf_member;

/* What a member is, as the Event Socket and xml_list show it (FreeSWITCH's names). */
struct conf_member_info {
    uint32_t id;             /* Member-ID: 1, 2, ... per node, never reused while running */
    char uuid[37];           /* Unique-ID of the member's call */
    char caller_id_name[64]; /* e.g. "0000002" (CppComet: dev_id 6 digits + user_id) */
    char caller_id_number[64];
    char user[64];          /* SIP user that registered */
    char tenant[16];        /* its tenant (dev_id as text), "" when unknown: for the quotas */
    bool video;             /* has negotiated video */
    bool mute, vmute, deaf; /* can't speak / can't be seen / can't hear */
    bool talking;
    bool floor;           /* has the audio floor (loudest) */
    bool video_floor;     /* is the big tile in the floor layout */
    int64_t join_time;    /* unix seconds */
    int64_t last_talking; /* unix seconds, 0 never */
    int energy;           /* last energy level 0..100 */
};

enum conf_event_kind {
    CONF_EV_CONFERENCE_CREATE,
    CONF_EV_CONFERENCE_DESTROY,
    CONF_EV_ADD_MEMBER,
    CONF_EV_DEL_MEMBER,
    CONF_EV_KICK_MEMBER,
    CONF_EV_START_TALKING,
    CONF_EV_STOP_TALKING,
    CONF_EV_MUTE_MEMBER,
    CONF_EV_UNMUTE_MEMBER,
    CONF_EV_VMUTE_MEMBER,
    CONF_EV_UNVMUTE_MEMBER,
    CONF_EV_DEAF_MEMBER,
    CONF_EV_UNDEAF_MEMBER,
    CONF_EV_FLOOR_CHANGE,
    CONF_EV_VIDEO_FLOOR_CHANGE,
    CONF_EV_HUP_MEMBER, /* hung up from the API without the kick semantics */
    /* recordings (src/media/recorder.c): struct conf_event's `recording` is set */
    CONF_EV_START_RECORDING,
    CONF_EV_STOP_RECORDING,
    CONF_EV_PAUSE_RECORDING,
    CONF_EV_RESUME_RECORDING,
};

/* "conference-create", "add-member" ...: FreeSWITCH's Action header values. */
const char *conf_event_action(enum conf_event_kind k);

/* What a recording event says (mod_conference's headers). The room is described here, not by
 * struct conf_event's room: a file is closed (stop-recording with its figures) after the room it
 * recorded may be gone. */
struct conf_recording_event {
    const char *room_name, *room_uuid, *profile_name;
    int room_size;
    const char *path;      /* Path: as the command gave it, or "all" */
    const char *error;     /* (nullable) Error: why it did not start, or stopped by itself */
    bool other_recordings; /* Other-Recordings: the room still records another file */
    bool closed;           /* the file is closed: the figures below are meant */
    uint64_t samples_out;  /* Samples-Out: audio samples in the file, at samplerate */
    int samplerate;        /* Samplerate */
    uint64_t ms_elapsed;   /* Milliseconds-Elapsed: the file's length (pauses cut out) */
};

struct conf_event {
    enum conf_event_kind kind;
    const struct conf_room *room;                 /* (nullable) for recording events */
    const struct conf_member_info *member;        /* (nullable) for room-level events */
    uint32_t old_floor_id, new_floor_id;          /* FLOOR_CHANGE / VIDEO_FLOOR_CHANGE, 0 = none */
    const struct conf_recording_event *recording; /* (nullable) *_RECORDING only */
};

typedef void (*conf_event_fn)(void *ctx, const struct conf_event *ev);

/* The media engine a room drives (mixer.c implements it; tests can stub it). Every call is made
 * on the main context; answers and reports come back on it too. */
struct conf_media_ops {
    /* Creates the room's pipeline. Returns an opaque handle or NULL (error set). */
    void *(*room_new)(struct conf_room *room, const struct conf_profile *p, GError **error);
    void (*room_free)(void *media);
    /* Adds a member from its SDP offer; calls done(answer_sdp or NULL + error) once, later. */
    void (*member_add)(void *media, struct conf_member *m, const char *offer_sdp,
                       void (*done)(struct conf_member *m, const char *answer_sdp,
                                    const GError *error, void *ud),
                       void *ud);
    void (*member_remove)(void *media, struct conf_member *m);
    void (*member_update)(void *media, struct conf_member *m); /* mute/vmute/deaf changed */
    void (*set_layout)(void *media, enum conf_layout layout, uint32_t floor_member_id);
};

struct conf_registry;

struct conf_limits {
    int max_rooms;
    int max_members_total;
    /* quotas so that one tenant or user cannot take the node (audit H4); 0: none */
    int max_rooms_per_tenant;
    int max_members_per_tenant;
    int max_calls_per_user;
};

struct conf_registry *conf_registry_new(const struct conf_media_ops *ops,
                                        const struct conf_limits *limits);
void conf_registry_free(struct conf_registry *r);
/* Listeners get every event, in order, on the main context. Returns a listener id. */
guint conf_listen(struct conf_registry *r, conf_event_fn fn, void *ctx);
void conf_unlisten(struct conf_registry *r, guint id);

/* Joining: finds or creates room `name` with profile p, adds a member, starts media. done is
 * called once with the SDP answer, or with an error whose code is a SIP status to answer
 * (486 busy/room full, 488 no usable codec, 503 node full, 500 media failure). */
typedef void (*conf_join_done)(struct conf_member *m, const char *answer_sdp, int sip_status,
                               const char *reason, void *ud);
struct conf_member *conf_join(struct conf_registry *r, const char *room_name,
                              const struct conf_profile *p, const struct conf_member_info *who,
                              const char *offer_sdp, conf_join_done done, void *ud);
/* The member's call ended (BYE, CANCEL, transport gone): removes it; the room goes with its
 * last member. */
void conf_leave(struct conf_member *m);
/* Ends a member from the API (kick/hup): the SIP side is told through on_kick to send BYE. */
void conf_set_kick_handler(struct conf_registry *r,
                           void (*on_kick)(void *ctx, struct conf_member *m), void *ctx);

/* Registry reads and controls (Event Socket `conference ...`). */
struct conf_room *conf_room_find(struct conf_registry *r, const char *name);
void conf_rooms_foreach(struct conf_registry *r, void (*fn)(struct conf_room *room, void *ud),
                        void *ud);
void conf_members_foreach(struct conf_room *room, void (*fn)(struct conf_member *m, void *ud),
                          void *ud);
struct conf_member *conf_member_find(struct conf_room *room, uint32_t member_id);
const char *conf_room_name(const struct conf_room *room);
const char *conf_room_uuid(const struct conf_room *room);
const struct conf_profile *conf_room_profile(const struct conf_room *room);
int64_t conf_room_start_time(const struct conf_room *room);
int conf_room_count(const struct conf_room *room);
enum conf_layout conf_room_layout(const struct conf_room *room);
const struct conf_member_info *conf_member_info(const struct conf_member *m);
struct conf_room *conf_member_room(const struct conf_member *m);

int conf_kick(struct conf_member *m);                  /* 0 ok */
int conf_hup(struct conf_member *m);                   /* as kick, announced as hup-member */
int conf_set_mute(struct conf_member *m, bool mute);   /* audio in */
int conf_set_vmute(struct conf_member *m, bool vmute); /* video in */
int conf_set_deaf(struct conf_member *m, bool deaf);   /* audio out */
int conf_set_layout(struct conf_room *room, enum conf_layout layout);
int conf_set_video_floor(struct conf_room *room, uint32_t member_id);

/* Reports from the media engine (main context only). */
void conf_report_talking(struct conf_member *m, bool talking, int energy);
void conf_report_failed(struct conf_member *m, const char *why); /* ICE/DTLS failure, no media */
/* The media engine bridges the room's video between its two members (no mix), or stopped. */
void conf_report_video_bridge(struct conf_room *room, bool on);
bool conf_room_video_bridge(const struct conf_room *room);

/* The room's media handle (room_new's result) for modules that drive the engine themselves
 * (recorder.c with mixer.c's taps). (transfer none) (nullable) */
void *conf_room_media(const struct conf_room *room);
/* Sends a recording event to every listener (recorder.c; main context). */
void conf_emit_recording(struct conf_registry *r, enum conf_event_kind kind,
                         const struct conf_recording_event *rec);

#endif
