/* conference: rooms, members and the event bus; see conference.h. Owns the lifetime of rooms and
 * members (a room exists while it has members), member ids, and the order of events. It never
 * touches media itself: everything media goes through the conf_media_ops it was given. */
#include "media/conference.h"
#include "core/alloc.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

struct conf_member {
    struct conf_member_info info;
    struct conf_room *room;
    struct conf_member *next; /* in the room, join order */
    conf_join_done done;      /* until the answer is known */
    void *done_ud;
    bool answered, leaving;
};

struct conf_room {
    struct conf_registry *reg;
    struct conf_room *next;
    char name[128];
    char uuid[37];
    struct conf_profile profile; /* a copy; strings owned */
    void *media;
    struct conf_member *members;
    int count;
    char tenant[16]; /* its creator's */
    int64_t start_time;
    enum conf_layout layout;
    uint32_t floor_id, video_floor_id;
    bool video_bridge; /* the media engine forwards video between two members, no mix */
};

struct listener {
    guint id;
    conf_event_fn fn;
    void *ctx;
};

struct conf_registry {
    const struct conf_media_ops *ops;
    struct conf_limits limits;
    struct conf_room *rooms;
    int n_rooms, n_members;
    uint32_t next_member_id;
    GArray *listeners; /* struct listener */
    guint next_listener;
    void (*on_kick)(void *ctx, struct conf_member *m);
    void *kick_ctx;
};

static const char *const actions[] = {
    [CONF_EV_CONFERENCE_CREATE] = "conference-create",
    [CONF_EV_CONFERENCE_DESTROY] = "conference-destroy",
    [CONF_EV_ADD_MEMBER] = "add-member",
    [CONF_EV_DEL_MEMBER] = "del-member",
    [CONF_EV_KICK_MEMBER] = "kick-member",
    [CONF_EV_START_TALKING] = "start-talking",
    [CONF_EV_STOP_TALKING] = "stop-talking",
    [CONF_EV_MUTE_MEMBER] = "mute-member",
    [CONF_EV_UNMUTE_MEMBER] = "unmute-member",
    [CONF_EV_VMUTE_MEMBER] = "vmute-member",
    [CONF_EV_UNVMUTE_MEMBER] = "unvmute-member",
    [CONF_EV_DEAF_MEMBER] = "deaf-member",
    [CONF_EV_UNDEAF_MEMBER] = "undeaf-member",
    [CONF_EV_FLOOR_CHANGE] = "floor-change",
    [CONF_EV_VIDEO_FLOOR_CHANGE] = "video-floor-change",
    [CONF_EV_HUP_MEMBER] = "hup-member",
    [CONF_EV_START_RECORDING] = "start-recording",
    [CONF_EV_STOP_RECORDING] = "stop-recording",
    [CONF_EV_PAUSE_RECORDING] = "pause-recording",
    [CONF_EV_RESUME_RECORDING] = "resume-recording",
};

const char *conf_event_action(enum conf_event_kind k)
{
    return (size_t)k < sizeof actions / sizeof actions[0] && actions[k] ? actions[k] : "unknown";
}

static void emit(struct conf_registry *r, enum conf_event_kind kind, const struct conf_room *room,
                 const struct conf_member *m, uint32_t old_floor, uint32_t new_floor)
{
    struct conf_event ev = {kind, room, m ? &m->info : NULL, old_floor, new_floor, NULL};
    /* a listener may unlisten from its callback: iterate over a snapshot of the count */
    for (guint i = 0; i < r->listeners->len; i++) {
        struct listener *l = &g_array_index(r->listeners, struct listener, i);
        l->fn(l->ctx, &ev);
    }
}

void conf_emit_recording(struct conf_registry *r, enum conf_event_kind kind,
                         const struct conf_recording_event *rec)
{
    struct conf_event ev = {kind, NULL, NULL, 0, 0, rec};
    for (guint i = 0; i < r->listeners->len; i++) {
        struct listener *l = &g_array_index(r->listeners, struct listener, i);
        l->fn(l->ctx, &ev);
    }
}

void *conf_room_media(const struct conf_room *room)
{
    return room->media;
}

static void uuid_new(char out[37])
{
    char *u = g_uuid_string_random();
    g_strlcpy(out, u, 37);
    g_free(u);
}

struct conf_registry *conf_registry_new(const struct conf_media_ops *ops,
                                        const struct conf_limits *limits)
{
    struct conf_registry *r = xcalloc(1, sizeof *r);
    r->ops = ops;
    r->limits = *limits;
    r->listeners = g_array_new(FALSE, FALSE, sizeof(struct listener));
    return r;
}

static void room_free(struct conf_room *room)
{
    if (room->media && room->reg->ops->room_free) room->reg->ops->room_free(room->media);
    xfree(room->profile.name);
    xfree(room->profile.layout);
    xfree(room);
}

void conf_registry_free(struct conf_registry *r)
{
    if (!r) return;
    while (r->rooms) {
        struct conf_room *room = r->rooms;
        r->rooms = room->next;
        while (room->members) {
            struct conf_member *m = room->members;
            room->members = m->next;
            if (room->media && r->ops->member_remove) r->ops->member_remove(room->media, m);
            xfree(m);
        }
        room_free(room);
    }
    g_array_free(r->listeners, TRUE);
    xfree(r);
}

guint conf_listen(struct conf_registry *r, conf_event_fn fn, void *ctx)
{
    struct listener l = {++r->next_listener, fn, ctx};
    g_array_append_val(r->listeners, l);
    return l.id;
}

void conf_unlisten(struct conf_registry *r, guint id)
{
    for (guint i = 0; i < r->listeners->len; i++) {
        if (g_array_index(r->listeners, struct listener, i).id == id) {
            g_array_remove_index(r->listeners, i);
            return;
        }
    }
}

void conf_set_kick_handler(struct conf_registry *r,
                           void (*on_kick)(void *ctx, struct conf_member *m), void *ctx)
{
    r->on_kick = on_kick;
    r->kick_ctx = ctx;
}

struct conf_room *conf_room_find(struct conf_registry *r, const char *name)
{
    for (struct conf_room *room = r->rooms; room; room = room->next)
        if (strcmp(room->name, name) == 0) return room;
    return NULL;
}

/* Rooms of a tenant, members of a tenant, calls of a user, on this node now. */
static int rooms_of_tenant(const struct conf_registry *r, const char *tenant)
{
    int n = 0;
    for (const struct conf_room *room = r->rooms; room; room = room->next)
        n += strcmp(room->tenant, tenant) == 0;
    return n;
}

static int members_where(const struct conf_registry *r, const char *tenant, const char *user)
{
    int n = 0;
    for (const struct conf_room *room = r->rooms; room; room = room->next)
        for (const struct conf_member *m = room->members; m; m = m->next)
            n += tenant ? strcmp(m->info.tenant, tenant) == 0 : strcmp(m->info.user, user) == 0;
    return n;
}

static struct conf_room *room_create(struct conf_registry *r, const char *name,
                                     const struct conf_profile *p, const char *tenant,
                                     const char **why, int *status)
{
    if (r->n_rooms >= r->limits.max_rooms) {
        *why = "the node has its maximum of rooms";
        *status = 503;
        return NULL;
    }
    if (*tenant && r->limits.max_rooms_per_tenant > 0 &&
        rooms_of_tenant(r, tenant) >= r->limits.max_rooms_per_tenant) {
        *why = "the tenant has its maximum of rooms on this node";
        *status = 503;
        return NULL;
    }
    struct conf_room *room = xcalloc(1, sizeof *room);
    room->reg = r;
    g_strlcpy(room->name, name, sizeof room->name);
    g_strlcpy(room->tenant, tenant, sizeof room->tenant);
    uuid_new(room->uuid);
    room->profile = *p;
    room->profile.name = xstrdup(p->name ? p->name : "default");
    room->profile.layout = xstrdup(p->layout ? p->layout : "grid");
    room->layout =
        strcmp(room->profile.layout, "floor") == 0 ? CONF_LAYOUT_FLOOR : CONF_LAYOUT_GRID;
    room->start_time = (int64_t)time(NULL);
    GError *error = NULL;
    if (r->ops && r->ops->room_new) {
        room->media = r->ops->room_new(room, &room->profile, &error);
        if (!room->media) {
            LOG(LOG_ERROR, "conference", "room=%s msg=\"media pipeline failed\" error=\"%s\"", name,
                error ? error->message : "?");
            g_clear_error(&error);
            room_free(room);
            *why = "media failure";
            *status = 500;
            return NULL;
        }
    }
    room->next = r->rooms;
    r->rooms = room;
    r->n_rooms++;
    LOG(LOG_INFO, "conference", "room=%s msg=\"conference created\" profile=%s", name,
        room->profile.name);
    emit(r, CONF_EV_CONFERENCE_CREATE, room, NULL, 0, 0);
    return room;
}

static void room_destroy(struct conf_room *room)
{
    struct conf_registry *r = room->reg;
    for (struct conf_room **pp = &r->rooms; *pp; pp = &(*pp)->next) {
        if (*pp == room) {
            *pp = room->next;
            break;
        }
    }
    r->n_rooms--;
    emit(r, CONF_EV_CONFERENCE_DESTROY, room, NULL, 0, 0);
    LOG(LOG_INFO, "conference", "room=%s msg=\"conference destroyed\"", room->name);
    room_free(room);
}

static void on_answer(struct conf_member *m, const char *answer_sdp, const GError *error, void *ud)
{
    (void)ud;
    if (m->answered) return;
    m->answered = true;
    conf_join_done done = m->done;
    void *done_ud = m->done_ud;
    m->done = NULL;
    if (!answer_sdp) {
        int status = error && error->code >= 400 && error->code < 700 ? error->code : 500;
        const char *why = error ? error->message : "media failure";
        LOG(LOG_INFO, "conference", "room=%s member=%u msg=\"join failed\" status=%d reason=\"%s\"",
            m->room->name, m->info.id, status, why);
        if (done) done(m, NULL, status, why, done_ud);
        conf_leave(m);
        return;
    }
    if (done) done(m, answer_sdp, 200, "OK", done_ud);
}

struct conf_member *conf_join(struct conf_registry *r, const char *room_name,
                              const struct conf_profile *p, const struct conf_member_info *who,
                              const char *offer_sdp, conf_join_done done, void *ud)
{
    const char *why = NULL;
    int status = 0;
    if (r->n_members >= r->limits.max_members_total) {
        done(NULL, NULL, 503, "the node has its maximum of members", ud);
        return NULL;
    }
    if (who->user[0] && r->limits.max_calls_per_user > 0 &&
        members_where(r, NULL, who->user) >= r->limits.max_calls_per_user) {
        done(NULL, NULL, 486, "this user has its maximum of calls on this node", ud);
        return NULL;
    }
    if (who->tenant[0] && r->limits.max_members_per_tenant > 0 &&
        members_where(r, who->tenant, NULL) >= r->limits.max_members_per_tenant) {
        done(NULL, NULL, 503, "the tenant has its maximum of members on this node", ud);
        return NULL;
    }
    struct conf_room *room = conf_room_find(r, room_name);
    if (room && room->count >= room->profile.max_members) {
        done(NULL, NULL, 486, "the room is full", ud);
        return NULL;
    }
    if (!room && !(room = room_create(r, room_name, p, who->tenant, &why, &status))) {
        done(NULL, NULL, status, why, ud);
        return NULL;
    }
    struct conf_member *m = xcalloc(1, sizeof *m);
    m->info = *who;
    m->info.id = ++r->next_member_id;
    if (!m->info.uuid[0]) uuid_new(m->info.uuid);
    m->info.join_time = (int64_t)time(NULL);
    m->info.video = room->profile.video;
    m->room = room;
    m->done = done;
    m->done_ud = ud;
    /* append: the member list is in join order, as FreeSWITCH lists them (newest first there;
     * list commands reverse as needed) */
    struct conf_member **pp = &room->members;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    room->count++;
    r->n_members++;
    LOG(LOG_INFO, "conference", "room=%s member=%u msg=\"member joining\" caller=%s", room->name,
        m->info.id, m->info.caller_id_name);
    emit(r, CONF_EV_ADD_MEMBER, room, m, 0, 0);
    if (room->layout == CONF_LAYOUT_FLOOR && !room->video_floor_id) {
        room->video_floor_id = m->info.id;
        m->info.video_floor = true;
    }
    if (room->media && r->ops->member_add)
        r->ops->member_add(room->media, m, offer_sdp, on_answer, NULL);
    else
        on_answer(m, offer_sdp, NULL, NULL); /* no media engine: echo (tests) */
    return m;
}

void conf_leave(struct conf_member *m)
{
    if (!m || m->leaving) return;
    m->leaving = true;
    struct conf_room *room = m->room;
    struct conf_registry *r = room->reg;
    for (struct conf_member **pp = &room->members; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    room->count--;
    r->n_members--;
    if (room->media && r->ops->member_remove) r->ops->member_remove(room->media, m);
    if (m->done) { /* left before its answer */
        conf_join_done done = m->done;
        m->done = NULL;
        done(m, NULL, 487, "Request Terminated", m->done_ud);
    }
    LOG(LOG_INFO, "conference", "room=%s member=%u msg=\"member left\"", room->name, m->info.id);
    /* FreeSWITCH clears a leaving floor holder first (floor-change none -> none), then hands the
     * floor to the first member left (none -> id), as esl-05 shows */
    bool had_floor = room->floor_id == m->info.id;
    if (had_floor) {
        room->floor_id = 0;
        m->info.floor = false;
        emit(r, CONF_EV_FLOOR_CHANGE, room, NULL, 0, 0);
    }
    emit(r, CONF_EV_DEL_MEMBER, room, m, 0, 0);
    if (had_floor && room->members) {
        room->floor_id = room->members->info.id;
        room->members->info.floor = true;
        emit(r, CONF_EV_FLOOR_CHANGE, room, room->members, 0, room->floor_id);
    }
    if (room->video_floor_id == m->info.id) {
        uint32_t old = room->video_floor_id;
        room->video_floor_id = room->members ? room->members->info.id : 0;
        if (room->members) room->members->info.video_floor = true;
        emit(r, CONF_EV_VIDEO_FLOOR_CHANGE, room, NULL, old, room->video_floor_id);
        if (room->media && r->ops->set_layout)
            r->ops->set_layout(room->media, room->layout, room->video_floor_id);
    }
    xfree(m);
    if (!room->count) room_destroy(room);
}

void conf_rooms_foreach(struct conf_registry *r, void (*fn)(struct conf_room *room, void *ud),
                        void *ud)
{
    for (struct conf_room *room = r->rooms, *next; room; room = next) {
        next = room->next;
        fn(room, ud);
    }
}

void conf_members_foreach(struct conf_room *room, void (*fn)(struct conf_member *m, void *ud),
                          void *ud)
{
    for (struct conf_member *m = room->members, *next; m; m = next) {
        next = m->next;
        fn(m, ud);
    }
}

struct conf_member *conf_member_find(struct conf_room *room, uint32_t id)
{
    for (struct conf_member *m = room->members; m; m = m->next)
        if (m->info.id == id) return m;
    return NULL;
}

const char *conf_room_name(const struct conf_room *room)
{
    return room->name;
}
const char *conf_room_uuid(const struct conf_room *room)
{
    return room->uuid;
}
const struct conf_profile *conf_room_profile(const struct conf_room *room)
{
    return &room->profile;
}
int64_t conf_room_start_time(const struct conf_room *room)
{
    return room->start_time;
}
int conf_room_count(const struct conf_room *room)
{
    return room->count;
}
enum conf_layout conf_room_layout(const struct conf_room *room)
{
    return room->layout;
}
const struct conf_member_info *conf_member_info(const struct conf_member *m)
{
    return &m->info;
}
struct conf_room *conf_member_room(const struct conf_member *m)
{
    return m->room;
}

static int end_member(struct conf_member *m, enum conf_event_kind announce)
{
    struct conf_registry *r = m->room->reg;
    emit(r, announce, m->room, m, 0, 0);
    if (r->on_kick)
        r->on_kick(r->kick_ctx, m); /* the SIP side sends BYE and calls conf_leave */
    else
        conf_leave(m);
    return 0;
}

int conf_kick(struct conf_member *m)
{
    return end_member(m, CONF_EV_KICK_MEMBER);
}

int conf_hup(struct conf_member *m)
{
    return end_member(m, CONF_EV_HUP_MEMBER);
}

static int set_flag(struct conf_member *m, bool *flag, bool v, enum conf_event_kind on,
                    enum conf_event_kind off)
{
    if (*flag == v) return 0;
    *flag = v;
    struct conf_registry *r = m->room->reg;
    if (m->room->media && r->ops->member_update) r->ops->member_update(m->room->media, m);
    emit(r, v ? on : off, m->room, m, 0, 0);
    return 0;
}

int conf_set_mute(struct conf_member *m, bool mute)
{
    if (mute && m->info.talking) conf_report_talking(m, false, 0);
    return set_flag(m, &m->info.mute, mute, CONF_EV_MUTE_MEMBER, CONF_EV_UNMUTE_MEMBER);
}

int conf_set_vmute(struct conf_member *m, bool vmute)
{
    return set_flag(m, &m->info.vmute, vmute, CONF_EV_VMUTE_MEMBER, CONF_EV_UNVMUTE_MEMBER);
}

int conf_set_deaf(struct conf_member *m, bool deaf)
{
    return set_flag(m, &m->info.deaf, deaf, CONF_EV_DEAF_MEMBER, CONF_EV_UNDEAF_MEMBER);
}

int conf_set_layout(struct conf_room *room, enum conf_layout layout)
{
    room->layout = layout;
    if (layout == CONF_LAYOUT_FLOOR && !room->video_floor_id && room->members)
        room->video_floor_id = room->members->info.id;
    if (room->media && room->reg->ops->set_layout)
        room->reg->ops->set_layout(room->media, layout, room->video_floor_id);
    return 0;
}

int conf_set_video_floor(struct conf_room *room, uint32_t member_id)
{
    struct conf_member *m = conf_member_find(room, member_id);
    if (!m) return -1;
    uint32_t old = room->video_floor_id;
    for (struct conf_member *x = room->members; x; x = x->next)
        x->info.video_floor = x == m;
    room->video_floor_id = member_id;
    if (room->media && room->reg->ops->set_layout)
        room->reg->ops->set_layout(room->media, room->layout, member_id);
    if (old != member_id) emit(room->reg, CONF_EV_VIDEO_FLOOR_CHANGE, room, m, old, member_id);
    return 0;
}

void conf_report_talking(struct conf_member *m, bool talking, int energy)
{
    m->info.energy = energy;
    if (m->info.mute && talking) return; /* a muted member does not take the floor */
    if (m->info.talking == talking) return;
    m->info.talking = talking;
    struct conf_room *room = m->room;
    if (talking) m->info.last_talking = (int64_t)time(NULL);
    emit(room->reg, talking ? CONF_EV_START_TALKING : CONF_EV_STOP_TALKING, room, m, 0, 0);
    if (talking && room->floor_id != m->info.id) {
        uint32_t old = room->floor_id;
        room->floor_id = m->info.id;
        for (struct conf_member *x = room->members; x; x = x->next)
            x->info.floor = x == m;
        emit(room->reg, CONF_EV_FLOOR_CHANGE, room, m, old, m->info.id);
        /* the active speaker takes the big tile in the floor layout */
        if (room->layout == CONF_LAYOUT_FLOOR) conf_set_video_floor(room, m->info.id);
    }
}

void conf_report_failed(struct conf_member *m, const char *why)
{
    LOG(LOG_WARN, "conference", "room=%s member=%u msg=\"member failed\" reason=\"%s\"",
        m->room->name, m->info.id, why ? why : "?");
    struct conf_registry *r = m->room->reg;
    if (r->on_kick)
        r->on_kick(r->kick_ctx, m); /* hang the call up: BYE, then conf_leave */
    else
        conf_leave(m);
}

void conf_report_video_bridge(struct conf_room *room, bool on)
{
    room->video_bridge = on;
}

bool conf_room_video_bridge(const struct conf_room *room)
{
    return room->video_bridge;
}
