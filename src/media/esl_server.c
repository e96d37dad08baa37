/* esl_server: the Event Socket of ccomet-media; see esl_server.h. Owns connections and their
 * queues, the api commands (`status`, `conference ...`, and the per-user revocation forms of
 * `xml_flush_cache`, `sofia ... flush_inbound_reg` and `hupall`, handed to the SIP side through
 * esl_server_set_revoke) and the conference::maintenance events.
 * Framing and serialisation are src/proto/esl's: this file never writes a protocol byte of its
 * own except the api bodies, which are FreeSWITCH's texts (reference/captures/esl-03, -07, -10).
 *
 * Threading: everything runs on the thread-default main context of esl_server_start's caller.
 * A connection is never freed under a caller's feet: conn_kill() closes it and moves it to a
 * graveyard that an idle callback empties, so a kick that fans out events (and may cut off a slow
 * listener) in the middle of another connection's command is safe.
 *
 * Bounds (FreeSWITCH's, mod_event_socket.c MAX_QUEUE_LEN / MAX_MISSED): at most [esl] max_queue
 * events wait per listener; past that events are dropped and counted, and after 500 dropped in a
 * row the listener is killed. A client that sends commands without reading the replies is not
 * read from while OUT_PAUSE_BYTES are unsent. A connection must authenticate within [esl]
 * auth_timeout (10 s; FreeSWITCH waits 25 s for the first command only, whatever it is); at most
 * [esl] max_connections at once, [esl] max_unauthenticated_per_ip of them before auth, others get
 * FreeSWITCH's text/rude-rejection; commands are bounded in size. */
#include "media/esl_server.h"
#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/log.h"
#include "media/recorder.h"
#include "proto/esl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define CLOSE_LINGER_MS      5000
#define LISTEN_BACKLOG       4096
#define PREAUTH_MAX_COMMAND  4096
#define OUT_PAUSE_BYTES      (4u << 20)
#define READ_CHUNK           (64u * 1024)
#define MAX_MISSED           500 /* FreeSWITCH's MAX_MISSED */
#define MAX_SUBCLASSES       64
#define MAX_FILTERS          64
#define CONF_RATE            48000 /* Opus */
#define CONF_ENERGY_LEVEL    100   /* FreeSWITCH's default energy-level (no gate here) */
#define MAX_SESSIONS_PER_SEC 30    /* FreeSWITCH's default, reported by `status` */

/* FreeSWITCH's event names (switch_event.c EVENT_NAMES), in its order: `event` and `nixevent`
 * accept any of them, as FreeSWITCH does, even those this node never fires. */
static const char *const event_names[] = {
    "CUSTOM",
    "CLONE",
    "CHANNEL_CREATE",
    "CHANNEL_DESTROY",
    "CHANNEL_STATE",
    "CHANNEL_CALLSTATE",
    "CHANNEL_ANSWER",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HOLD",
    "CHANNEL_UNHOLD",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_OUTGOING",
    "CHANNEL_PARK",
    "CHANNEL_UNPARK",
    "CHANNEL_APPLICATION",
    "CHANNEL_ORIGINATE",
    "CHANNEL_UUID",
    "API",
    "LOG",
    "INBOUND_CHAN",
    "OUTBOUND_CHAN",
    "STARTUP",
    "SHUTDOWN",
    "PUBLISH",
    "UNPUBLISH",
    "TALK",
    "NOTALK",
    "SESSION_CRASH",
    "MODULE_LOAD",
    "MODULE_UNLOAD",
    "DTMF",
    "MESSAGE",
    "PRESENCE_IN",
    "NOTIFY_IN",
    "PRESENCE_OUT",
    "PRESENCE_PROBE",
    "MESSAGE_WAITING",
    "MESSAGE_QUERY",
    "ROSTER",
    "CODEC",
    "BACKGROUND_JOB",
    "DETECTED_SPEECH",
    "DETECTED_TONE",
    "PRIVATE_COMMAND",
    "HEARTBEAT",
    "TRAP",
    "ADD_SCHEDULE",
    "DEL_SCHEDULE",
    "EXE_SCHEDULE",
    "RE_SCHEDULE",
    "RELOADXML",
    "NOTIFY",
    "PHONE_FEATURE",
    "PHONE_FEATURE_SUBSCRIBE",
    "SEND_MESSAGE",
    "RECV_MESSAGE",
    "REQUEST_PARAMS",
    "CHANNEL_DATA",
    "GENERAL",
    "COMMAND",
    "SESSION_HEARTBEAT",
    "CLIENT_DISCONNECTED",
    "SERVER_DISCONNECTED",
    "SEND_INFO",
    "RECV_INFO",
    "RECV_RTCP_MESSAGE",
    "SEND_RTCP_MESSAGE",
    "CALL_SECURE",
    "NAT",
    "RECORD_START",
    "RECORD_STOP",
    "PLAYBACK_START",
    "PLAYBACK_STOP",
    "CALL_UPDATE",
    "FAILURE",
    "SOCKET_DATA",
    "MEDIA_BUG_START",
    "MEDIA_BUG_STOP",
    "CONFERENCE_DATA_QUERY",
    "CONFERENCE_DATA",
    "CALL_SETUP_REQ",
    "CALL_SETUP_RESULT",
    "CALL_DETAIL",
    "DEVICE_STATE",
    "TEXT",
    "SHUTDOWN_REQUESTED",
    "ALL",
};
enum {
    EV_N = sizeof event_names / sizeof event_names[0],
    EV_CUSTOM = 0,
    EV_BACKGROUND_JOB = 46,
    EV_ALL = EV_N - 1,
};
#define CONF_SUBCLASS "conference::maintenance"

struct filter {
    char *header, *value;
};

struct conn {
    struct esl_server *srv;
    struct conn *prev, *next;
    uint64_t id;
    char peer[80];
    char ip[48]; /* peer address, the key of srv->unauthed while !authed */
    GSocketConnection *stream;
    GSocket *sock;
    GSource *in_src, *out_src, *auth_timer, *close_timer;
    struct buf in, out;
    uint64_t appended, written; /* bytes ever queued / sent */
    uint64_t *ev_end;           /* ring: stream offsets where queued events end */
    size_t ev_head, ev_n, ev_cap;
    unsigned lost;
    bool authed, closing, dead, paused, processing, events_on, log_on;
    enum esl_format format;
    uint8_t ev_list[EV_N];
    GPtrArray *subclasses; /* char * */
    GPtrArray *filters;    /* struct filter * */
    GPtrArray *held;       /* GBytes: events caused by this connection's own api command */
};

struct esl_server {
    const struct media_config *cfg;
    struct conf_registry *reg;
    struct recorder *recorder; /* (nullable) (transfer none) */
    esl_revoke_fn revoke;      /* (nullable) xml_flush_cache, flush_inbound_reg, hupall */
    void *revoke_ctx;
    char *password;
    size_t max_queue;
    GMainContext *ctx;
    GSocketService *service;
    uint16_t port;
    guint conf_listener;
    struct conn *conns, *graveyard;
    unsigned n_conns;
    GHashTable *unauthed; /* peer address (text) -> connections from it not yet past auth */
    uint64_t next_conn_id;
    GSource *flush_idle, *reap_idle;
    /* the event core headers */
    char core_uuid[37];
    char hostname[256];
    char *ipv4, *ipv6, *domain, *version;
    uint64_t sequence;
    struct arena arena; /* one event at a time */
    /* `status` */
    int64_t start_us;
    uint64_t sessions_total;
    int sessions_now, sessions_peak, sessions_peak_5min, sps_now, sps_peak, sps_peak_5min;
    int64_t sps_second, peak5_window;
    unsigned long long cpu_total, cpu_idle;
};

/* ---- small helpers --------------------------------------------------------------------------- */

static GSource *attach_timeout(struct esl_server *srv, guint ms, GSourceFunc fn, void *data)
{
    GSource *s = g_timeout_source_new(ms);
    g_source_set_callback(s, fn, data, NULL);
    g_source_attach(s, srv->ctx);
    return s;
}

static void drop_source(GSource **s)
{
    if (!*s) return;
    g_source_destroy(*s);
    g_source_unref(*s);
    *s = NULL;
}

static char *span_dup(struct esl_str s)
{
    return s.ptr ? xstrndup(s.ptr, s.len) : NULL;
}

/* ---- connections: lifetime ------------------------------------------------------------------- */

static void conn_free(struct conn *c)
{
    buf_free(&c->in);
    buf_free(&c->out);
    xfree(c->ev_end);
    g_ptr_array_free(c->subclasses, TRUE);
    g_ptr_array_free(c->filters, TRUE);
    if (c->held) g_ptr_array_free(c->held, TRUE);
    if (c->stream) g_object_unref(c->stream);
    xfree(c);
}

static gboolean on_reap(gpointer data)
{
    struct esl_server *srv = data;
    while (srv->graveyard) {
        struct conn *c = srv->graveyard;
        srv->graveyard = c->next;
        conn_free(c);
    }
    g_source_unref(srv->reap_idle);
    srv->reap_idle = NULL;
    return G_SOURCE_REMOVE;
}

/* Closes at once (nothing more is sent) and frees later; safe anywhere, idempotent. */
static void unauthed_release(struct esl_server *srv, const char *ip)
{
    unsigned n = GPOINTER_TO_UINT(g_hash_table_lookup(srv->unauthed, ip));
    if (n <= 1)
        g_hash_table_remove(srv->unauthed, ip);
    else
        g_hash_table_insert(srv->unauthed, g_strdup(ip), GUINT_TO_POINTER(n - 1));
}

static void conn_kill(struct conn *c, const char *why)
{
    if (c->dead) return;
    struct esl_server *srv = c->srv;
    c->dead = true;
    drop_source(&c->in_src);
    drop_source(&c->out_src);
    drop_source(&c->auth_timer);
    drop_source(&c->close_timer);
    if (c->stream) g_io_stream_close(G_IO_STREAM(c->stream), NULL, NULL);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    srv->n_conns--;
    if (!c->authed) unauthed_release(srv, c->ip);
    LOG(LOG_INFO, "esl", "conn=%llu msg=\"disconnected\" reason=\"%s\"", (unsigned long long)c->id,
        why ? why : "closed");
    c->prev = NULL;
    c->next = srv->graveyard;
    srv->graveyard = c;
    if (!srv->reap_idle) {
        srv->reap_idle = g_idle_source_new();
        g_source_set_callback(srv->reap_idle, on_reap, srv, NULL);
        g_source_attach(srv->reap_idle, srv->ctx);
    }
}

static gboolean on_writable(GSocket *sock, GIOCondition cond, gpointer data);
static gboolean on_readable(GSocket *sock, GIOCondition cond, gpointer data);
static void conn_process(struct conn *c);

static void watch_input(struct conn *c)
{
    if (c->in_src || c->dead) return;
    c->in_src = g_socket_create_source(c->sock, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
    g_source_set_callback(c->in_src, (GSourceFunc)(void (*)(void))on_readable, c, NULL);
    g_source_attach(c->in_src, c->srv->ctx);
}

/* Writes what it can without blocking; arms G_IO_OUT for the rest. */
static void conn_flush(struct conn *c)
{
    while (!c->dead && buf_unread(&c->out)) {
        GError *err = NULL;
        size_t n = buf_unread(&c->out);
        gssize w = g_socket_send(c->sock, (const gchar *)buf_head(&c->out), n, NULL, &err);
        if (w < 0) {
            if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
                g_error_free(err);
                if (!c->out_src) {
                    c->out_src = g_socket_create_source(c->sock, G_IO_OUT, NULL);
                    g_source_set_callback(c->out_src, (GSourceFunc)(void (*)(void))on_writable, c,
                                          NULL);
                    g_source_attach(c->out_src, c->srv->ctx);
                }
                return;
            }
            char why[160];
            snprintf(why, sizeof why, "write error: %s", err->message);
            g_error_free(err);
            conn_kill(c, why);
            return;
        }
        buf_consume(&c->out, (size_t)w);
        c->written += (uint64_t)w;
    }
    if (c->dead) return;
    drop_source(&c->out_src);
    if (c->closing) {
        conn_kill(c, "closed after the last reply");
        return;
    }
    if (c->paused && !c->processing) {
        c->paused = false;
        conn_process(c); /* commands that waited in the input buffer */
        if (!c->dead && !c->paused && !c->closing) watch_input(c);
    }
}

static gboolean on_writable(GSocket *sock, GIOCondition cond, gpointer data)
{
    struct conn *c = data;
    (void)sock;
    (void)cond;
    g_source_unref(c->out_src);
    c->out_src = NULL; /* conn_flush re-arms it when needed */
    conn_flush(c);
    return G_SOURCE_REMOVE;
}

static gboolean on_flush_idle(gpointer data)
{
    struct esl_server *srv = data;
    g_source_unref(srv->flush_idle);
    srv->flush_idle = NULL;
    for (struct conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (buf_unread(&c->out) && !c->out_src) conn_flush(c);
    }
    return G_SOURCE_REMOVE;
}

/* Events are written in one batch (one send per listener) once the current dispatch is over. */
static void schedule_flush(struct esl_server *srv)
{
    if (srv->flush_idle) return;
    srv->flush_idle = g_idle_source_new();
    g_source_set_priority(srv->flush_idle, G_PRIORITY_DEFAULT);
    g_source_set_callback(srv->flush_idle, on_flush_idle, srv, NULL);
    g_source_attach(srv->flush_idle, srv->ctx);
}

static gboolean on_close_timeout(gpointer data)
{
    struct conn *c = data;
    g_source_unref(c->close_timer);
    c->close_timer = NULL;
    conn_kill(c, "peer did not read the last reply");
    return G_SOURCE_REMOVE;
}

/* FreeSWITCH's goodbye after exit or a wrong password, then close once it is written. */
static void conn_goodbye(struct conn *c)
{
    esl_put_disconnect_notice(&c->out);
    c->appended = c->written + buf_unread(&c->out);
    c->closing = true;
    drop_source(&c->in_src);
    drop_source(&c->auth_timer);
    if (!c->close_timer)
        c->close_timer = attach_timeout(c->srv, CLOSE_LINGER_MS, on_close_timeout, c);
    conn_flush(c);
}

static gboolean on_auth_timeout(gpointer data)
{
    struct conn *c = data;
    g_source_unref(c->auth_timer);
    c->auth_timer = NULL;
    LOG(LOG_INFO, "esl", "conn=%llu msg=\"not authenticated within %d s\"",
        (unsigned long long)c->id, (int)c->srv->cfg->esl_auth_timeout);
    conn_goodbye(c);
    return G_SOURCE_REMOVE;
}

/* ---- connections: output --------------------------------------------------------------------- */

static void reply(struct conn *c, const char *text)
{
    esl_put_command_reply(&c->out, text);
}

static void note_appended(struct conn *c)
{
    c->appended = c->written + buf_unread(&c->out);
}

/* Queues one framed event, FreeSWITCH's way: past max_queue waiting events it is dropped and
 * counted; more than MAX_MISSED dropped in a row kills the listener. */
static void conn_queue_event(struct conn *c, const uint8_t *frame, size_t len)
{
    struct esl_server *srv = c->srv;
    if (c->held) { /* queued after the api/response, as FreeSWITCH's listener thread sends them */
        g_ptr_array_add(c->held, g_bytes_new(frame, len));
        return;
    }
    while (c->ev_n && c->ev_end[c->ev_head] <= c->written) {
        c->ev_head = (c->ev_head + 1) % c->ev_cap;
        c->ev_n--;
    }
    if (c->ev_n >= srv->max_queue) {
        c->lost++;
        LOG_RATELIMITED(LOG_WARN, "esl",
                        "conn=%llu msg=\"event queue full, event dropped\" lost=%u",
                        (unsigned long long)c->id, c->lost);
        if (c->lost > MAX_MISSED) {
            LOG(LOG_WARN, "esl", "conn=%llu msg=\"killed listener because of lost events\"",
                (unsigned long long)c->id);
            conn_kill(c, "killed listener because of lost events");
        }
        return;
    }
    if (c->lost) {
        LOG(LOG_CRIT, "esl", "conn=%llu msg=\"Lost %u events!\"", (unsigned long long)c->id,
            c->lost);
        c->lost = 0;
    }
    if (c->ev_n == c->ev_cap) { /* grow the ring, keeping its order */
        size_t cap = c->ev_cap ? c->ev_cap * 2 : 64;
        uint64_t *ring = xmalloc(cap * sizeof *ring);
        for (size_t i = 0; i < c->ev_n; i++)
            ring[i] = c->ev_end[(c->ev_head + i) % c->ev_cap];
        xfree(c->ev_end);
        c->ev_end = ring;
        c->ev_cap = cap;
        c->ev_head = 0;
    }
    buf_append(&c->out, frame, len);
    note_appended(c);
    c->ev_end[(c->ev_head + c->ev_n) % c->ev_cap] = c->appended;
    c->ev_n++;
    schedule_flush(srv);
}

/* ---- subscriptions and filters --------------------------------------------------------------- */

static int event_index(struct esl_str w)
{
    for (int i = 0; i < EV_N; i++) {
        if (esl_str_eq(w, event_names[i])) return i;
        /* switch_name_event also takes "SWITCH_EVENT_<NAME>" (it skips any 13 bytes) */
        if (w.len > 13) {
            struct esl_str rest = {w.ptr + 13, w.len - 13};
            if (esl_str_eq(rest, event_names[i])) return i;
        }
    }
    return -1;
}

static bool has_subclass(const struct conn *c, const char *subclass)
{
    for (guint i = 0; i < c->subclasses->len; i++)
        if (strcmp(g_ptr_array_index(c->subclasses, i), subclass) == 0) return true;
    return false;
}

static bool wants(const struct conn *c, int type, const char *subclass)
{
    if (!c->authed || !c->events_on || c->dead || c->closing) return false;
    if (c->ev_list[EV_ALL]) return true;
    if (!c->ev_list[type]) return false;
    return type != EV_CUSTOM || !subclass || has_subclass(c, subclass);
}

static bool filter_match(const char *hval, const struct filter *f, const char *comp_to)
{
    if (f->value[0] != '/') return g_ascii_strcasecmp(hval, comp_to) == 0;
    /* "/regex/" as switch_regex_perform reads it */
    char *re = g_strdup(comp_to[0] == '/' ? comp_to + 1 : comp_to);
    size_t n = strlen(re);
    if (n && re[n - 1] == '/') re[n - 1] = '\0';
    gboolean m = g_regex_match_simple(re, hval, 0, 0);
    g_free(re);
    return m;
}

/* mod_event_socket's event_handler filter rule: with filters set, an event passes when a "+"
 * (default) filter matches and no "-" filter matches before it is decided. */
static bool filters_pass(const struct conn *c, const struct esl_event *ev)
{
    if (!c->filters->len) return true;
    bool send = false;
    for (guint i = 0; i < c->filters->len; i++) {
        const struct filter *f = g_ptr_array_index(c->filters, i);
        const char *hval = esl_event_get(ev, f->header, NULL);
        if (!hval) continue;
        const char *comp_to = f->value;
        bool pos = true;
        for (; *comp_to; comp_to++) {
            if (*comp_to == '+')
                pos = true;
            else if (*comp_to == '-')
                pos = false;
            else if (*comp_to != ' ')
                break;
        }
        if (send && pos) continue;
        if (filter_match(hval, f, comp_to)) {
            if (!pos) return false;
            send = true;
        }
    }
    return send;
}

/* Sends ev to every listener that wants it, serialising it once per format. */
static void deliver(struct esl_server *srv, const struct esl_event *ev, int type,
                    const char *subclass)
{
    struct buf plain, json;
    buf_init(&plain);
    buf_init(&json);
    for (struct conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (!wants(c, type, subclass) || !filters_pass(c, ev)) continue;
        struct buf *b = c->format == ESL_FORMAT_JSON ? &json : &plain;
        if (!buf_unread(b)) esl_put_event(b, c->format, ev);
        conn_queue_event(c, buf_head(b), buf_unread(b));
    }
    buf_free(&plain);
    buf_free(&json);
}

/* ---- event construction ---------------------------------------------------------------------- */

static void event_base(struct esl_server *srv, struct esl_event_base *b, const char *file,
                       const char *function, int line)
{
    memset(b, 0, sizeof *b);
    b->core_uuid = srv->core_uuid;
    b->hostname = srv->hostname;
    b->switchname = srv->hostname;
    b->ipv4 = srv->ipv4;
    b->ipv6 = srv->ipv6;
    b->timestamp_us = (uint64_t)g_get_real_time();
    GDateTime *now = g_date_time_new_now_local();
    b->utc_offset_s = (int32_t)(g_date_time_get_utc_offset(now) / G_TIME_SPAN_SECOND);
    g_date_time_unref(now);
    b->calling_file = file;
    b->calling_function = function;
    b->calling_line = line;
    b->sequence = ++srv->sequence;
}

static const char *tf(bool v)
{
    return v ? "true" : "false";
}

/* conference_event_add_data */
static void add_conference_fields(struct esl_server *srv, struct esl_event *e, const char *name,
                                  int size, const char *profile, const char *uuid)
{
    esl_event_add(e, "Conference-Name", name);
    esl_event_add(e, "Conference-Domain", srv->domain);
    esl_event_addf(e, "Conference-Size", "%d", size);
    esl_event_add(e, "Conference-Ghosts", "0");
    esl_event_add(e, "Conference-Profile-Name", profile);
    esl_event_add(e, "Conference-Unique-ID", uuid);
}

static void add_conference_data(struct esl_server *srv, struct esl_event *e,
                                const struct conf_room *room)
{
    add_conference_fields(srv, e, conf_room_name(room), conf_room_count(room),
                          conf_room_profile(room)->name, conf_room_uuid(room));
}

/* conference_record_thread_run, conference_api_sub_norecord, conference_api_sub_pauserec: the
 * room, Action, Path, then Error (a failed start; here also a file that stopped by itself), or
 * Other-Recordings and, once the file is closed, its figures. */
static void add_recording_data(struct esl_server *srv, struct esl_event *e, const char *action,
                               enum conf_event_kind kind, const struct conf_recording_event *r)
{
    add_conference_fields(srv, e, r->room_name, r->room_size, r->profile_name, r->room_uuid);
    esl_event_add(e, "Action", action);
    esl_event_add(e, "Path", r->path);
    if (kind == CONF_EV_START_RECORDING) {
        if (r->error) esl_event_add(e, "Error", r->error);
        return;
    }
    esl_event_add(e, "Other-Recordings", tf(r->other_recordings));
    if (kind == CONF_EV_STOP_RECORDING && r->closed) {
        esl_event_addf(e, "Samples-Out", "%" PRIu64, r->samples_out);
        esl_event_addf(e, "Samplerate", "%d", r->samplerate);
        esl_event_addf(e, "Milliseconds-Elapsed", "%" PRIu64, r->ms_elapsed);
        if (r->error) esl_event_add(e, "Error", r->error);
    }
}

static void channel_name(struct esl_server *srv, const struct conf_member_info *m, char *out,
                         size_t n)
{
    const char *user = m->user[0] ? m->user : m->caller_id_number;
    snprintf(out, n, "sofia/internal/%s@%s", user, srv->domain);
}

/* conference_member_add_event_data: the conference, Floor, the channel and its caller profile
 * (switch_channel_event_set_basic_data, switch_caller_profile_event_set_data: empty fields are
 * left out, as FreeSWITCH does), then the member's flags. */
static void add_member_data(struct esl_server *srv, struct esl_event *e,
                            const struct conf_room *room, const struct conf_member_info *m,
                            bool hangup)
{
    char chan[256], t[32];
    const struct conf_profile *p = conf_room_profile(room);
    add_conference_data(srv, e, room);
    esl_event_add(e, "Floor", tf(m->floor));
    channel_name(srv, m, chan, sizeof chan);
    esl_event_add(e, "Channel-State", "CS_EXECUTE");
    esl_event_add(e, "Channel-Call-State", "ACTIVE");
    esl_event_add(e, "Channel-State-Number", hangup ? "10" : "4");
    esl_event_add(e, "Channel-Name", chan);
    esl_event_add(e, "Unique-ID", m->uuid);
    esl_event_add(e, "Call-Direction", "inbound");
    esl_event_add(e, "Presence-Call-Direction", "inbound");
    esl_event_add(e, "Channel-HIT-Dialplan", "true");
    esl_event_add(e, "Channel-Call-UUID", m->uuid);
    esl_event_add(e, "Answer-State", hangup ? "hangup" : "answered");
    if (hangup) esl_event_add(e, "Hangup-Cause", "NORMAL_CLEARING");
    esl_event_add(e, "Channel-Read-Codec-Name", "opus");
    esl_event_addf(e, "Channel-Read-Codec-Rate", "%d", CONF_RATE);
    esl_event_addf(e, "Channel-Read-Codec-Bit-Rate", "%d", p->audio_kbps * 1000);
    esl_event_add(e, "Channel-Write-Codec-Name", "opus");
    esl_event_addf(e, "Channel-Write-Codec-Rate", "%d", CONF_RATE);
    esl_event_addf(e, "Channel-Write-Codec-Bit-Rate", "%d", p->audio_kbps * 1000);
    esl_event_add(e, "Caller-Direction", "inbound");
    esl_event_add(e, "Caller-Logical-Direction", "inbound");
    if (m->user[0]) esl_event_add(e, "Caller-Username", m->user);
    esl_event_add(e, "Caller-Dialplan", "XML");
    if (m->caller_id_name[0]) esl_event_add(e, "Caller-Caller-ID-Name", m->caller_id_name);
    if (m->caller_id_number[0]) esl_event_add(e, "Caller-Caller-ID-Number", m->caller_id_number);
    if (m->caller_id_name[0]) esl_event_add(e, "Caller-Orig-Caller-ID-Name", m->caller_id_name);
    if (m->caller_id_number[0])
        esl_event_add(e, "Caller-Orig-Caller-ID-Number", m->caller_id_number);
    if (m->caller_id_number[0]) esl_event_add(e, "Caller-ANI", m->caller_id_number);
    esl_event_add(e, "Caller-Destination-Number", conf_room_name(room));
    esl_event_add(e, "Caller-Unique-ID", m->uuid);
    esl_event_add(e, "Caller-Source", "mod_sofia");
    esl_event_add(e, "Caller-Context", "default");
    esl_event_add(e, "Caller-Channel-Name", chan);
    esl_event_add(e, "Caller-Profile-Index", "1");
    snprintf(t, sizeof t, "%lld", (long long)m->join_time * 1000000LL);
    esl_event_add(e, "Caller-Profile-Created-Time", t);
    esl_event_add(e, "Caller-Channel-Created-Time", t);
    esl_event_add(e, "Caller-Channel-Answered-Time", t);
    static const char *const zero_times[] = {
        "Caller-Channel-Progress-Time",  "Caller-Channel-Progress-Media-Time",
        "Caller-Channel-Hangup-Time",    "Caller-Channel-Transfer-Time",
        "Caller-Channel-Resurrect-Time", "Caller-Channel-Bridged-Time",
        "Caller-Channel-Last-Hold",      "Caller-Channel-Hold-Accum",
    };
    for (size_t i = 0; i < sizeof zero_times / sizeof zero_times[0]; i++)
        esl_event_add(e, zero_times[i], "0");
    esl_event_add(e, "Caller-Screen-Bit", "true");
    esl_event_add(e, "Caller-Privacy-Hide-Name", "false");
    esl_event_add(e, "Caller-Privacy-Hide-Number", "false");
    esl_event_add(e, "Video", tf(m->video));
    esl_event_add(e, "Hear", tf(!m->deaf));
    esl_event_add(e, "See", "true"); /* FreeSWITCH's See is "not vblind"; there is no vblind here */
    esl_event_add(e, "Speak", tf(!m->mute));
    esl_event_add(e, "Talking", tf(m->talking));
    esl_event_add(e, "Mute-Detect", "false");
    esl_event_add(e, "Hold", "false");
    esl_event_addf(e, "Member-ID", "%u", m->id);
    esl_event_add(e, "Member-Type", "member");
    esl_event_add(e, "Member-Ghost", "false");
    esl_event_addf(e, "Energy-Level", "%d", CONF_ENERGY_LEVEL);
    esl_event_addf(e, "Current-Energy", "%d", m->energy);
}

/* Where FreeSWITCH 1.10.12 fires each action (captures esl-05, esl-09); the vmute and video floor
 * lines are not in the captures (that FreeSWITCH had no video) and are taken from its source. */
static const struct {
    const char *file, *function;
    int line;
} call_sites[] = {
    [CONF_EV_CONFERENCE_CREATE] = {"mod_conference.c", "conference_new", 3848},
    [CONF_EV_CONFERENCE_DESTROY] = {"mod_conference.c", "conference_thread_run", 863},
    [CONF_EV_ADD_MEMBER] = {"conference_member.c", "conference_member_add", 962},
    [CONF_EV_DEL_MEMBER] = {"conference_member.c", "conference_member_del", 1355},
    [CONF_EV_KICK_MEMBER] = {"conference_api.c", "conference_api_sub_kick", 902},
    [CONF_EV_START_TALKING] = {"conference_loop.c", "conference_loop_input", 1154},
    [CONF_EV_STOP_TALKING] = {"conference_loop.c", "stop_talking_handler", 783},
    [CONF_EV_MUTE_MEMBER] = {"conference_api.c", "conference_api_sub_mute", 339},
    [CONF_EV_UNMUTE_MEMBER] = {"conference_api.c", "conference_api_sub_unmute", 492},
    [CONF_EV_VMUTE_MEMBER] = {"conference_api.c", "conference_api_sub_vmute", 385},
    [CONF_EV_UNVMUTE_MEMBER] = {"conference_api.c", "conference_api_sub_unvmute", 553},
    [CONF_EV_DEAF_MEMBER] = {"conference_api.c", "conference_api_sub_deaf", 797},
    [CONF_EV_UNDEAF_MEMBER] = {"conference_api.c", "conference_api_sub_undeaf", 839},
    [CONF_EV_FLOOR_CHANGE] = {"conference_member.c", "conference_member_set_floor_holder", 1158},
    [CONF_EV_VIDEO_FLOOR_CHANGE] = {"conference_video.c", "conference_video_set_floor_holder",
                                    5115},
    [CONF_EV_HUP_MEMBER] = {"conference_api.c", "conference_api_sub_hup", 871},
    /* not in the captures (no recording was made there): file and function from the source,
     * line unknown */
    [CONF_EV_START_RECORDING] = {"conference_record.c", "conference_record_thread_run", 0},
    [CONF_EV_STOP_RECORDING] = {"conference_record.c", "conference_record_thread_run", 0},
    [CONF_EV_PAUSE_RECORDING] = {"conference_api.c", "conference_api_sub_pauserec", 0},
    [CONF_EV_RESUME_RECORDING] = {"conference_api.c", "conference_api_sub_pauserec", 0},
};

static void add_floor_id(struct esl_event *e, const char *name, uint32_t id)
{
    if (id)
        esl_event_addf(e, name, "%u", id);
    else
        esl_event_add(e, name, "none");
}

static void track_sessions(struct esl_server *srv, const struct conf_event *ev);

static void on_conf_event(void *ctx, const struct conf_event *ev)
{
    struct esl_server *srv = ctx;
    track_sessions(srv, ev);
    bool any = false;
    for (struct conn *c = srv->conns; c && !any; c = c->next)
        any = wants(c, EV_CUSTOM, CONF_SUBCLASS);
    if (!any) return;

    struct esl_event_base base;
    const char *file = "mod_conference.c", *function = "conference_event", *action;
    int line = 0;
    if ((size_t)ev->kind < sizeof call_sites / sizeof call_sites[0] && call_sites[ev->kind].file) {
        file = call_sites[ev->kind].file;
        function = call_sites[ev->kind].function;
        line = call_sites[ev->kind].line;
    }
    if (ev->kind == CONF_EV_STOP_RECORDING && ev->recording && !ev->recording->closed) {
        file = "conference_api.c";
        function = "conference_api_sub_norecord";
    }
    action = conf_event_action(ev->kind);
    event_base(srv, &base, file, function, line);
    struct esl_event e;
    arena_reset(&srv->arena);
    esl_event_begin(&e, &srv->arena, "CUSTOM", CONF_SUBCLASS, &base);
    if (ev->recording) {
        add_recording_data(srv, &e, action, ev->kind, ev->recording);
        deliver(srv, &e, EV_CUSTOM, CONF_SUBCLASS);
        return;
    }
    switch (ev->kind) {
    case CONF_EV_CONFERENCE_CREATE:
    case CONF_EV_CONFERENCE_DESTROY:
        add_conference_data(srv, &e, ev->room);
        esl_event_add(&e, "Action", action);
        break;
    case CONF_EV_FLOOR_CHANGE: /* conference_member_set_floor_holder */
        add_conference_data(srv, &e, ev->room);
        esl_event_add(&e, "Action", action);
        add_floor_id(&e, "Old-ID", ev->old_floor_id);
        if (ev->member && ev->new_floor_id) {
            add_member_data(srv, &e, ev->room, ev->member, false);
            esl_event_addf(&e, "New-ID", "%u", ev->new_floor_id);
        } else {
            esl_event_add(&e, "New-ID", "none");
        }
        break;
    case CONF_EV_VIDEO_FLOOR_CHANGE: /* conference_video_set_floor_holder: ids only */
        add_conference_data(srv, &e, ev->room);
        esl_event_add(&e, "Action", action);
        add_floor_id(&e, "Old-ID", ev->old_floor_id);
        add_floor_id(&e, "New-ID", ev->new_floor_id);
        break;
    default:
        if (ev->member) {
            add_member_data(srv, &e, ev->room, ev->member, ev->kind == CONF_EV_DEL_MEMBER);
        } else {
            add_conference_data(srv, &e, ev->room);
        }
        esl_event_add(&e, "Action", action);
        break;
    }
    deliver(srv, &e, EV_CUSTOM, CONF_SUBCLASS);
}

/* ---- `status` -------------------------------------------------------------------------------- */

static void track_sessions(struct esl_server *srv, const struct conf_event *ev)
{
    int64_t now = g_get_monotonic_time() / G_USEC_PER_SEC;
    if (now - srv->peak5_window >= 300) {
        srv->peak5_window = now;
        srv->sessions_peak_5min = srv->sessions_now;
        srv->sps_peak_5min = 0;
    }
    if (now != srv->sps_second) {
        srv->sps_second = now;
        srv->sps_now = 0;
    }
    if (ev->kind == CONF_EV_ADD_MEMBER) {
        srv->sessions_total++;
        srv->sessions_now++;
        srv->sps_now++;
        if (srv->sps_now > srv->sps_peak) srv->sps_peak = srv->sps_now;
        if (srv->sps_now > srv->sps_peak_5min) srv->sps_peak_5min = srv->sps_now;
        if (srv->sessions_now > srv->sessions_peak) srv->sessions_peak = srv->sessions_now;
        if (srv->sessions_now > srv->sessions_peak_5min)
            srv->sessions_peak_5min = srv->sessions_now;
    } else if (ev->kind == CONF_EV_DEL_MEMBER && srv->sessions_now > 0) {
        srv->sessions_now--;
    }
}

static bool read_cpu(unsigned long long *total, unsigned long long *idle)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return false;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 4) return false;
    *total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
    *idle = v[3] + v[4];
    return true;
}

static const char *plural(unsigned v)
{
    return v == 1 ? "" : "s";
}

/* mod_commands' status_function, with this node's numbers and name (esl-03's shape). */
static void api_status(struct esl_server *srv, GString *out)
{
    int64_t us = g_get_monotonic_time() - srv->start_us;
    unsigned usec = (unsigned)(us % 1000), ms = (unsigned)(us / 1000 % 1000);
    int64_t s = us / 1000000;
    unsigned sec = (unsigned)(s % 60), min = (unsigned)(s / 60 % 60),
             hr = (unsigned)(s / 3600 % 24);
    unsigned day = (unsigned)(s / 86400 % 365), yr = (unsigned)(s / (86400 * 365));
    g_string_append_printf(out,
                           "UP %u year%s, %u day%s, %u hour%s, %u minute%s, %u second%s, %u "
                           "millisecond%s, %u microsecond%s\n",
                           yr, plural(yr), day, plural(day), hr, plural(hr), min, plural(min), sec,
                           plural(sec), ms, plural(ms), usec, plural(usec));
    g_string_append_printf(out, "ccomet-media (Version %s  64bit) is ready\n", srv->version);
    g_string_append_printf(out, "%llu session(s) since startup\n",
                           (unsigned long long)srv->sessions_total);
    g_string_append_printf(out, "%d session(s) - peak %d, last 5min %d \n", srv->sessions_now,
                           srv->sessions_peak, srv->sessions_peak_5min);
    int64_t now = g_get_monotonic_time() / G_USEC_PER_SEC;
    g_string_append_printf(out, "%d session(s) per Sec out of max %d, peak %d, last 5min %d \n",
                           now == srv->sps_second ? srv->sps_now : 0, MAX_SESSIONS_PER_SEC,
                           srv->sps_peak, srv->sps_peak_5min);
    g_string_append_printf(out, "%lld session(s) max\n", (long long)srv->cfg->max_members_total);
    unsigned long long total = 0, idle = 0;
    double idle_pct = 100.0;
    if (read_cpu(&total, &idle)) {
        if (total > srv->cpu_total)
            idle_pct = 100.0 * (double)(idle - srv->cpu_idle) / (double)(total - srv->cpu_total);
        srv->cpu_total = total;
        srv->cpu_idle = idle;
    }
    g_string_append_printf(out, "min idle cpu 0.00/%0.2f\n", idle_pct);
    struct rlimit rl;
    long cur = 0, max = 0;
    if (getrlimit(RLIMIT_STACK, &rl) == 0) {
        cur = rl.rlim_cur == RLIM_INFINITY ? 0 : (long)(rl.rlim_cur / 1024);
        max = rl.rlim_max == RLIM_INFINITY ? cur : (long)(rl.rlim_max / 1024);
    }
    g_string_append_printf(out, "Current Stack Size/Max %ldK/%ldK\n", cur, max);
}

/* ---- `conference ...` ------------------------------------------------------------------------ */

struct member_list {
    struct conf_member **v;
    size_t n;
};

static void collect_member(struct conf_member *m, void *ud)
{
    struct member_list *l = ud;
    l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    l->v[l->n++] = m;
}

/* FreeSWITCH keeps members newest first and lists them so. */
static struct member_list members_newest_first(struct conf_room *room)
{
    struct member_list l = {NULL, 0};
    conf_members_foreach(room, collect_member, &l);
    for (size_t i = 0; i < l.n / 2; i++) {
        struct conf_member *t = l.v[i];
        l.v[i] = l.v[l.n - 1 - i];
        l.v[l.n - 1 - i] = t;
    }
    return l;
}

static void collect_room(struct conf_room *room, void *ud)
{
    GPtrArray *a = ud;
    g_ptr_array_add(a, room);
}

/* conference_list: "<id>;<channel>;<uuid>;<cid name>;<cid number>;<flags>;<vol in>;<vol out>;
 * <energy>" per member. */
static void list_members(struct esl_server *srv, struct conf_room *room, const char *delim,
                         GString *out)
{
    struct member_list l = members_newest_first(room);
    for (size_t i = 0; i < l.n; i++) {
        const struct conf_member_info *m = conf_member_info(l.v[i]);
        char chan[256];
        channel_name(srv, m, chan, sizeof chan);
        g_string_append_printf(out, "%u%s%s%s%s%s%s%s%s%s", m->id, delim, chan, delim, m->uuid,
                               delim, m->caller_id_name, delim, m->caller_id_number, delim);
        const char *flags[] = {!m->deaf ? "hear" : NULL,      !m->mute ? "speak" : NULL,
                               m->talking ? "talking" : NULL, m->video ? "video" : NULL,
                               m->floor ? "floor" : NULL,     m->video_floor ? "vid-floor" : NULL};
        int count = 0;
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++)
            if (flags[f]) g_string_append_printf(out, "%s%s", count++ ? "|" : "", flags[f]);
        g_string_append_printf(out, "%s%d%s%d%s%d\n", delim, 0, delim, 0, delim, CONF_ENERGY_LEVEL);
    }
    xfree(l.v);
}

static const char CONF_FLAGS[] = "running|answered|enforce_min|dynamic|exit_sound|enter_sound|"
                                 "json_status";

static void list_room_header(struct conf_room *room, GString *out)
{
    int n = conf_room_count(room);
    g_string_append_printf(out, "+OK Conference %s (%d member%s rate: %d flags: %s)\n",
                           conf_room_name(room), n, n == 1 ? "" : "s", CONF_RATE, CONF_FLAGS);
}

static void xml_escape(GString *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': g_string_append(out, "&amp;"); break;
        case '<': g_string_append(out, "&lt;"); break;
        case '>': g_string_append(out, "&gt;"); break;
        case '"': g_string_append(out, "&quot;"); break;
        default: g_string_append_c(out, *s);
        }
    }
}

static void xml_text(GString *out, int indent, const char *name, const char *value)
{
    g_string_append_printf(out, "%*s<%s>", indent, "", name);
    xml_escape(out, value);
    g_string_append_printf(out, "</%s>\n", name);
}

static void xml_int(GString *out, int indent, const char *name, long long v)
{
    g_string_append_printf(out, "%*s<%s>%lld</%s>\n", indent, "", name, v, name);
}

/* conference_xml_list, laid out as switch_xml_toxml prints it (esl-07). */
static void xml_room(struct conf_room *room, GString *out)
{
    int64_t now = (int64_t)time(NULL);
    g_string_append(out, "  <conference name=\"");
    xml_escape(out, conf_room_name(room));
    g_string_append_printf(out,
                           "\" member-count=\"%d\" ghost-count=\"0\" rate=\"%d\" uuid=\"%s\" "
                           "running=\"true\" answered=\"true\" enforce_min=\"true\" "
                           "dynamic=\"true\" exit_sound=\"true\" enter_sound=\"true\" "
                           "run_time=\"%lld\">\n",
                           conf_room_count(room), CONF_RATE, conf_room_uuid(room),
                           (long long)(now - conf_room_start_time(room)));
    g_string_append(out, "    <variables></variables>\n    <members>\n");
    struct member_list l = members_newest_first(room);
    for (size_t i = 0; i < l.n; i++) {
        const struct conf_member_info *m = conf_member_info(l.v[i]);
        g_string_append(out, "      <member type=\"caller\">\n");
        xml_int(out, 8, "id", m->id);
        g_string_append(out, "        <flags>\n");
        xml_text(out, 10, "can_hear", tf(!m->deaf));
        xml_text(out, 10, "can_see", "true");
        xml_text(out, 10, "can_speak", tf(!m->mute));
        xml_text(out, 10, "mute_detect", "false");
        xml_text(out, 10, "talking", tf(m->talking));
        xml_text(out, 10, "hold", "false");
        xml_text(out, 10, "has_video", tf(m->video));
        xml_text(out, 10, "video_bridge", tf(conf_room_video_bridge(room) && m->video));
        xml_text(out, 10, "has_floor", tf(m->floor));
        xml_text(out, 10, "is_moderator", "false");
        xml_text(out, 10, "end_conference", "false");
        xml_text(out, 10, "mandatory_member_end_conference", "false");
        xml_text(out, 10, "is_ghost", "false");
        g_string_append(out, "        </flags>\n");
        xml_text(out, 8, "uuid", m->uuid);
        xml_text(out, 8, "caller_id_name", m->caller_id_name);
        xml_text(out, 8, "caller_id_number", m->caller_id_number);
        xml_int(out, 8, "join_time", now - m->join_time);
        if (m->last_talking)
            xml_int(out, 8, "last_talking", now - m->last_talking);
        else
            xml_text(out, 8, "last_talking", "N/A");
        xml_int(out, 8, "energy", CONF_ENERGY_LEVEL);
        xml_int(out, 8, "volume_in", 0);
        xml_int(out, 8, "volume_out", 0);
        xml_int(out, 8, "output-volume", 0);
        g_string_append(out, "      </member>\n");
    }
    xfree(l.v);
    g_string_append(out, "    </members>\n  </conference>\n");
}

static void xml_list(GPtrArray *rooms, GString *out)
{
    g_string_append(out, "<?xml version=\"1.0\"?>\n<conferences>");
    if (rooms->len) g_string_append_c(out, '\n');
    for (guint i = 0; i < rooms->len; i++)
        xml_room(g_ptr_array_index(rooms, i), out);
    g_string_append(out, "</conferences>\n");
}

/* A writer for cJSON_Print's layout (tabs, ":\t", "}, {" between array items) and for
 * cJSON_PrintUnformatted's. */
struct json {
    GString *out;
    bool fmt;
    int depth;
    bool first;
};

static void json_string(GString *out, const char *s)
{
    g_string_append_c(out, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\b': g_string_append(out, "\\b"); break;
        case '\f': g_string_append(out, "\\f"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\r': g_string_append(out, "\\r"); break;
        case '\t': g_string_append(out, "\\t"); break;
        default:
            if (*p < 0x20)
                g_string_append_printf(out, "\\u%04x", *p);
            else
                g_string_append_c(out, (char)*p);
        }
    }
    g_string_append_c(out, '"');
}

static void json_key(struct json *j, const char *key)
{
    if (!j->first) g_string_append_c(j->out, ',');
    j->first = false;
    if (j->fmt) {
        g_string_append_c(j->out, '\n');
        for (int i = 0; i < j->depth; i++)
            g_string_append_c(j->out, '\t');
    }
    json_string(j->out, key);
    g_string_append(j->out, j->fmt ? ":\t" : ":");
}

static void json_open_object(struct json *j)
{
    g_string_append_c(j->out, '{');
    j->depth++;
    j->first = true;
}

static void json_close_object(struct json *j)
{
    j->depth--;
    if (j->fmt) { /* cJSON: an empty object is "{\n<tabs>}" too */
        g_string_append_c(j->out, '\n');
        for (int i = 0; i < j->depth; i++)
            g_string_append_c(j->out, '\t');
    }
    g_string_append_c(j->out, '}');
    j->first = false;
}

static void json_str(struct json *j, const char *k, const char *v)
{
    json_key(j, k);
    json_string(j->out, v);
}

static void json_num(struct json *j, const char *k, long long v)
{
    json_key(j, k);
    g_string_append_printf(j->out, "%lld", v);
}

static void json_bool(struct json *j, const char *k, bool v)
{
    json_key(j, k);
    g_string_append(j->out, v ? "true" : "false");
}

/* conference_jlist (esl-07's json_list). */
static void json_room(struct json *j, struct conf_room *room)
{
    int64_t now = (int64_t)time(NULL);
    bool video = conf_room_profile(room)->video;
    j->depth++; /* inside the top-level array */
    json_open_object(j);
    json_str(j, "conference_name", conf_room_name(room));
    json_num(j, "member_count", conf_room_count(room));
    json_num(j, "ghost_count", 0);
    json_num(j, "rate", CONF_RATE);
    json_num(j, "run_time", now - conf_room_start_time(room));
    json_str(j, "conference_uuid", conf_room_uuid(room));
    json_num(j, "canvas_count", video ? 1 : 0);
    json_num(j, "max_bw_in", 0);
    json_num(j, "force_bw_in", 0);
    json_num(j, "video_floor_packets", 0);
    static const char *const falses1[] = {"locked", "destruct", "wait_mod", "audio_always"};
    for (size_t i = 0; i < 4; i++)
        json_bool(j, falses1[i], false);
    json_bool(j, "running", true);
    json_bool(j, "answered", true);
    json_bool(j, "enforce_min", true);
    json_bool(j, "bridge_to", false);
    json_bool(j, "dynamic", true);
    json_bool(j, "exit_sound", true);
    json_bool(j, "enter_sound", true);
    json_bool(j, "recording", false);
    json_bool(j, "video_bridge", conf_room_video_bridge(room));
    json_bool(j, "video_floor_only", false);
    json_bool(j, "video_rfc4579", false);
    json_key(j, "variables");
    json_open_object(j);
    json_close_object(j);
    json_key(j, "members");
    g_string_append_c(j->out, '[');
    j->depth++;
    struct member_list l = members_newest_first(room);
    for (size_t i = 0; i < l.n; i++) {
        const struct conf_member_info *m = conf_member_info(l.v[i]);
        if (i) g_string_append(j->out, j->fmt ? ", " : ",");
        json_open_object(j);
        json_str(j, "type", "caller");
        json_num(j, "id", m->id);
        json_key(j, "flags");
        json_open_object(j);
        json_bool(j, "can_hear", !m->deaf);
        json_bool(j, "can_see", true);
        json_bool(j, "can_speak", !m->mute);
        json_bool(j, "hold", false);
        json_bool(j, "mute_detect", false);
        json_bool(j, "talking", m->talking);
        json_bool(j, "has_video", m->video);
        json_bool(j, "video_bridge", conf_room_video_bridge(room) && m->video);
        json_bool(j, "has_floor", m->floor);
        json_bool(j, "is_moderator", false);
        json_bool(j, "end_conference", false);
        json_bool(j, "mandatory_member_end_conference", false);
        json_bool(j, "pass_digits", false);
        json_close_object(j);
        json_str(j, "uuid", m->uuid);
        json_str(j, "caller_id_name", m->caller_id_name);
        json_str(j, "caller_id_number", m->caller_id_number);
        json_num(j, "join_time", now - m->join_time);
        json_num(j, "last_talking", m->last_talking ? now - m->last_talking : 0);
        json_num(j, "energy", CONF_ENERGY_LEVEL);
        json_num(j, "volume_in", 0);
        json_num(j, "volume_out", 0);
        json_num(j, "output-volume", 0);
        json_num(j, "input-volume", 0);
        json_close_object(j);
    }
    xfree(l.v);
    j->depth--;
    g_string_append_c(j->out, ']');
    j->first = false;
    json_close_object(j);
    j->depth--;
}

static void json_list(GPtrArray *rooms, bool compact, GString *out)
{
    struct json j = {out, !compact, 0, true};
    g_string_append_c(out, '[');
    for (guint i = 0; i < rooms->len; i++) {
        if (i) g_string_append(out, compact ? "," : ", ");
        json_room(&j, g_ptr_array_index(rooms, i));
    }
    g_string_append_c(out, ']');
}

/* The usage FreeSWITCH prints when a member command lacks its target (no newline, as there). */
static const struct {
    const char *name, *syntax;
} member_cmds[] = {
    {"kick", "<[member_id|all|last|non_moderator]> [<optional sound file>]"},
    {"hup", "<[member_id|all|last|non_moderator]>"},
    {"mute", "<[member_id|all]|last|non_moderator> [<quiet>]"},
    {"tmute", "<[member_id|all]|last|non_moderator> [<quiet>]"},
    {"unmute", "<[member_id|all]|last|non_moderator> [<quiet>]"},
    {"vmute", "<[member_id|all]|last|non_moderator> [<quiet>]"},
    {"unvmute", "<[member_id|all]|last|non_moderator> [<quiet>]"},
    {"deaf", "<[member_id|all]|last|non_moderator>"},
    {"undeaf", "<[member_id|all]|last|non_moderator>"},
    {"vid-floor", "<member_id|last> [force]"},
};

/* One member command on one member; writes FreeSWITCH's reply line. */
/* The member flags the API sets and clears, answered "+OK <cmd> <id>" as FreeSWITCH does.
 * Returns false when cmd is none of them. */
static bool set_flag(const char *cmd, struct conf_member *m, GString *out)
{
    static const struct {
        const char *cmd;
        int (*set)(struct conf_member *m, bool on);
        bool on;
    } flags[] = {
        {"mute", conf_set_mute, true},   {"unmute", conf_set_mute, false},
        {"vmute", conf_set_vmute, true}, {"unvmute", conf_set_vmute, false},
        {"deaf", conf_set_deaf, true},   {"undeaf", conf_set_deaf, false},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(flags); i++) {
        if (strcmp(cmd, flags[i].cmd) != 0) continue;
        g_string_append_printf(out, "+OK %s %u\n", cmd, conf_member_info(m)->id);
        flags[i].set(m, flags[i].on);
        return true;
    }
    return false;
}

static void member_cmd(const char *cmd, struct conf_member *m, GString *out)
{
    const struct conf_member_info *info = conf_member_info(m);
    uint32_t id = info->id;
    if (!strcmp(cmd, "kick")) {
        g_string_append_printf(out, "+OK kicked %u\n", id);
        conf_kick(m); /* may free m */
    } else if (!strcmp(cmd, "hup")) {
        g_string_append_printf(out, "+OK hup %u\n", id);
        conf_hup(m); /* may free m */
    } else if (set_flag(cmd, m, out)) {
        /* mute, unmute, vmute, unvmute, deaf, undeaf */
    } else if (!strcmp(cmd, "tmute")) {
        bool to = !info->mute;
        g_string_append_printf(out, "+OK %s %u\n", to ? "mute" : "unmute", id);
        conf_set_mute(m, to);
    } else if (!strcmp(cmd, "vid-floor")) {
        struct conf_room *room = conf_member_room(m);
        if (!info->video) {
            g_string_append_printf(out, "-ERR Member %u has no video\n", id);
            return;
        }
        conf_set_video_floor(room, id);
        g_string_append_printf(out, "+OK floor %u\n", id);
    }
}

static bool parse_id(const char *s, uint32_t *id)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || v > UINT32_MAX) return false;
    *id = (uint32_t)v; /* atoi-like: trailing junk ignored, as FreeSWITCH does */
    return true;
}

/* conference_api_dispatch for CONF_API_SUB_MEMBER_TARGET commands. */
static void member_target(struct conf_room *room, const char *cmd, const char *syntax, int argc,
                          char **argv, GString *out)
{
    if (argc < 3) {
        g_string_append_printf(out, "%s %s", cmd, syntax);
        return;
    }
    const char *target = argv[2];
    uint32_t id = 0;
    if (!parse_id(target, &id)) id = 0;
    bool all = id == 0 &&
               (!g_ascii_strcasecmp(target, "all") || !g_ascii_strcasecmp(target, "non_moderator"));
    bool last = id == 0 && !g_ascii_strcasecmp(target, "last");
    if (all) {
        if (!strcmp(cmd, "vid-floor")) { /* FreeSWITCH takes <member_id|last> only */
            g_string_append_printf(out, "-ERR Non-Existant ID %u\n", 0u);
            return;
        }
        struct member_list l = members_newest_first(room);
        /* the room dies with its last member: remember nothing of it after the loop */
        for (size_t i = 0; i < l.n; i++)
            member_cmd(cmd, l.v[i], out);
        xfree(l.v);
    } else if (last) {
        struct member_list l = members_newest_first(room);
        struct conf_member *m = l.n ? l.v[0] : NULL; /* the newest: the highest id */
        xfree(l.v);
        if (!m)
            g_string_append_printf(out, "-ERR Non-Existant ID %u\n", 0u);
        else
            member_cmd(cmd, m, out);
    } else if (id) {
        struct conf_member *m = conf_member_find(room, id);
        if (!m)
            g_string_append_printf(out, "-ERR Non-Existant ID %u\n", id);
        else
            member_cmd(cmd, m, out);
    } else {
        g_string_append_printf(out, "%s %s", cmd, syntax);
    }
}

/* FreeSWITCH's layout names map onto this node's two layouts. */
static bool layout_by_name(const char *name, enum conf_layout *out)
{
    if (!g_ascii_strcasecmp(name, "grid") || (strlen(name) >= 3 && g_ascii_isdigit(name[0]) &&
                                              name[1] == 'x' && g_ascii_isdigit(name[2]))) {
        *out = CONF_LAYOUT_GRID;
        return true;
    }
    if (!g_ascii_strcasecmp(name, "floor") || !g_ascii_strncasecmp(name, "1up_", 4) ||
        !g_ascii_strncasecmp(name, "presenter", 9)) {
        *out = CONF_LAYOUT_FLOOR;
        return true;
    }
    return false;
}

static void room_command(struct esl_server *srv, struct conf_room *room, int argc, char **argv,
                         GString *out)
{
    const char *sub = argv[1];
    if (!g_ascii_strcasecmp(sub, "list")) {
        if (argc >= 3 && !g_ascii_strcasecmp(argv[2], "count")) {
            g_string_append_printf(out, "%d\n", conf_room_count(room));
        } else {
            const char *delim = argc >= 4 && !g_ascii_strcasecmp(argv[2], "delim") ? argv[3] : ";";
            list_members(srv, room, delim, out);
        }
    } else if (!g_ascii_strcasecmp(sub, "count")) {
        g_string_append_printf(out, "%d\n", conf_room_count(room));
    } else if (!g_ascii_strcasecmp(sub, "xml_list")) {
        GPtrArray *one = g_ptr_array_new();
        g_ptr_array_add(one, room);
        xml_list(one, out);
        g_ptr_array_free(one, TRUE);
    } else if (!g_ascii_strcasecmp(sub, "json_list")) {
        GPtrArray *one = g_ptr_array_new();
        g_ptr_array_add(one, room);
        json_list(one, argc >= 3 && !g_ascii_strcasecmp(argv[2], "compact"), out);
        g_ptr_array_free(one, TRUE);
    } else if (!g_ascii_strcasecmp(sub, "vid-layout")) {
        enum conf_layout layout;
        if (argc < 3) {
            g_string_append(out, "vid-layout <layout name>|group <group name> [<canvas id>]");
        } else if (!conf_room_profile(room)->video) {
            g_string_append(out, "-ERR Conference is not in mixing mode\n");
        } else if (!layout_by_name(argv[2], &layout)) {
            g_string_append_printf(out, "-ERR Invalid layout [%s]\n", argv[2]);
        } else {
            conf_set_layout(room, layout);
            g_string_append_printf(out, "+OK Change to layout [%s] for canvas 1\n", argv[2]);
        }
    } else if (recorder_is_command(sub)) {
        recorder_command(srv->recorder, room, argc, argv, out);
    } else {
        for (size_t i = 0; i < sizeof member_cmds / sizeof member_cmds[0]; i++) {
            if (!g_ascii_strcasecmp(sub, member_cmds[i].name)) {
                member_target(room, member_cmds[i].name, member_cmds[i].syntax, argc, argv, out);
                return;
            }
        }
        g_string_append_printf(out, "-ERR Conference command '%s' not found.\n", sub);
    }
}

static void api_conference(struct esl_server *srv, const char *args, GString *out)
{
    /* switch_separate_string: words separated by runs of spaces, at most 25 */
    char **words = g_strsplit(args ? args : "", " ", -1);
    char *argv[26];
    int argc = 0;
    for (int i = 0; words[i] && argc < 25; i++)
        if (*words[i]) argv[argc++] = words[i];
    argv[argc] = NULL;
    if (argc == 0) {
        g_string_append(out, "-ERR Usage: conference <conference_name> <command> [<args>]\n");
        goto done;
    }
    struct conf_room *room = conf_room_find(srv->reg, argv[0]);
    if (room) {
        if (argc >= 2)
            room_command(srv, room, argc, argv, out);
        else
            g_string_append(out, "Conference command, not specified.\nTry 'help'\n");
        goto done;
    }
    GPtrArray *rooms = g_ptr_array_new();
    conf_rooms_foreach(srv->reg, collect_room, rooms);
    if (!g_ascii_strcasecmp(argv[0], "list")) {
        if (!rooms->len) g_string_append(out, "+OK No active conferences.\n");
        for (guint i = 0; i < rooms->len; i++) {
            struct conf_room *r = g_ptr_array_index(rooms, i);
            if (argc >= 2 && !g_ascii_strcasecmp(argv[1], "count")) {
                g_string_append_printf(out, "%d\n", conf_room_count(r));
                continue;
            }
            list_room_header(r, out);
            list_members(srv, r, ";", out);
        }
    } else if (!g_ascii_strcasecmp(argv[0], "xml_list")) {
        xml_list(rooms, out);
    } else if (!g_ascii_strcasecmp(argv[0], "json_list")) {
        json_list(rooms, argc >= 2 && !g_ascii_strcasecmp(argv[1], "compact"), out);
    } else {
        g_string_append_printf(out, "-ERR Conference %s not found\n", argv[0]);
    }
    g_ptr_array_free(rooms, TRUE);
done:
    g_strfreev(words);
}

/* The user-revocation commands ccomet sends when a key is revoked (security audit L9), with
 * FreeSWITCH's syntax: `xml_flush_cache id <user> <domain>`, `sofia profile <name>
 * flush_inbound_reg <user>@<domain> [reboot]`, `hupall <cause> sip_auth_username <user>`.
 * Anything else of those commands' many forms answers -ERR. */
static bool api_revoke(struct esl_server *srv, const char *cmd, const char *args, GString *out)
{
    gchar **w = g_strsplit_set(args ? args : "", " \t", -1);
    guint n = 0;
    const char *a[6] = {NULL};
    for (guint i = 0; w[i] && n < 6; i++)
        if (*w[i]) a[n++] = w[i];
    const char *user = NULL, *domain = NULL;
    unsigned what = 0;
    char *at = NULL;
    if (!g_ascii_strcasecmp(cmd, "xml_flush_cache")) {
        if (n >= 2 && !g_ascii_strcasecmp(a[0], "id"))
            user = a[1], domain = a[2], what = ESL_REVOKE_CACHE;
    } else if (!g_ascii_strcasecmp(cmd, "sofia")) {
        if (n >= 4 && !g_ascii_strcasecmp(a[0], "profile") &&
            !g_ascii_strcasecmp(a[2], "flush_inbound_reg") && (at = strchr(a[3], '@'))) {
            *at = '\0';
            user = a[3], domain = at + 1, what = ESL_REVOKE_REGISTRATIONS;
        }
    } else if (!g_ascii_strcasecmp(cmd, "hupall")) {
        if (n >= 3 && !g_ascii_strcasecmp(a[1], "sip_auth_username"))
            user = a[2], what = ESL_REVOKE_CALLS;
    }
    if (!user || !*user) {
        g_string_append_printf(out, "-ERR %s: only the per-user form is served here\n", cmd);
    } else if (!srv->revoke) {
        g_string_append(out, "-ERR no SIP server on this node\n");
    } else {
        unsigned ended = srv->revoke(srv->revoke_ctx, user, domain, what);
        if (what == ESL_REVOKE_CACHE)
            g_string_append(out, "+OK\n");
        else
            g_string_append_printf(out, "+OK %u\n", ended);
    }
    g_strfreev(w);
    return true;
}

/* Runs an api command; false when there is no such command. */
static bool api_run(struct esl_server *srv, const char *cmd, const char *args, GString *out)
{
    if (!g_ascii_strcasecmp(cmd, "xml_flush_cache") || !g_ascii_strcasecmp(cmd, "sofia") ||
        !g_ascii_strcasecmp(cmd, "hupall"))
        return api_revoke(srv, cmd, args, out);
    if (!g_ascii_strcasecmp(cmd, "status")) {
        api_status(srv, out);
        return true;
    }
    if (!g_ascii_strcasecmp(cmd, "conference")) {
        api_conference(srv, args, out);
        return true;
    }
    return false;
}

/* ---- commands -------------------------------------------------------------------------------- */

static bool password_ok(const struct esl_server *srv, struct esl_str given)
{
    size_t n = strlen(srv->password);
    unsigned diff = (unsigned)(given.len ^ n);
    for (size_t i = 0; i < given.len; i++) /* no early exit: the time says nothing */
        diff |= (unsigned char)given.ptr[i] ^ (unsigned char)srv->password[i < n ? i : 0];
    return diff == 0 && n > 0;
}

static void cmd_api(struct conn *c, const struct esl_command *cmd)
{
    char *name = span_dup(cmd->api_command), *args = span_dup(cmd->api_args);
    GString *out = g_string_new(NULL);
    c->held = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    if (!api_run(c->srv, name, args, out))
        g_string_printf(out, "-ERR %s Command not found!\n", name);
    if (!out->len) g_string_assign(out, "-ERR no reply\n");
    GPtrArray *held = c->held;
    c->held = NULL;
    if (!c->dead) {
        esl_put_api_response(&c->out, out->str, out->len);
        note_appended(c);
        for (guint i = 0; i < held->len && !c->dead; i++) {
            gsize n;
            const uint8_t *p = g_bytes_get_data(g_ptr_array_index(held, i), &n);
            conn_queue_event(c, p, n);
        }
    }
    g_ptr_array_free(held, TRUE);
    g_string_free(out, TRUE);
    xfree(name);
    xfree(args);
}

static void cmd_bgapi(struct conn *c, const struct esl_command *cmd)
{
    struct esl_server *srv = c->srv;
    char uuid[37];
    if (cmd->job_uuid.ptr && cmd->job_uuid.len) {
        size_t n = cmd->job_uuid.len < 36 ? cmd->job_uuid.len : 36;
        memcpy(uuid, cmd->job_uuid.ptr, n);
        uuid[n] = '\0';
    } else {
        char *u = g_uuid_string_random();
        g_strlcpy(uuid, u, sizeof uuid);
        g_free(u);
    }
    /* the reply is queued before any event the job causes, so it is sent first */
    esl_put_command_reply_job(&c->out, uuid, strlen(uuid));
    note_appended(c);

    char *name = span_dup(cmd->api_command), *args = span_dup(cmd->api_args);
    GString *out = g_string_new(NULL);
    if (!api_run(srv, name, args, out)) g_string_printf(out, "-ERR %s Command not found!\n", name);
    bool any = false;
    for (struct conn *x = srv->conns; x && !any; x = x->next)
        any = wants(x, EV_BACKGROUND_JOB, NULL);
    if (any) {
        struct esl_event_base base;
        struct esl_event e;
        event_base(srv, &base, "mod_event_socket.c", "api_exec", 1572);
        arena_reset(&srv->arena);
        esl_event_background_job(&e, &srv->arena, &base, uuid, name, args, out->str, out->len);
        deliver(srv, &e, EV_BACKGROUND_JOB, NULL);
    }
    g_string_free(out, TRUE);
    xfree(name);
    xfree(args);
}

static void cmd_event(struct conn *c, const struct esl_command *cmd)
{
    if (cmd->format_given) {
        if (cmd->format == ESL_FORMAT_XML) {
            reply(c, "-ERR xml event format is not supported");
            return;
        }
        c->format = cmd->format;
    }
    const char *p = cmd->names.ptr, *end = p ? p + cmd->names.len : NULL;
    struct esl_str w;
    unsigned keys = 0;
    bool custom = false;
    while (p && esl_next_word(&p, end, &w)) {
        if (custom) {
            char *sub = span_dup(w);
            if (c->subclasses->len < MAX_SUBCLASSES && !has_subclass(c, sub))
                g_ptr_array_add(c->subclasses, sub);
            else
                xfree(sub);
            continue;
        }
        int type = event_index(w);
        if (type < 0) continue;
        keys++;
        if (type == EV_ALL) memset(c->ev_list, 1, sizeof c->ev_list);
        c->ev_list[type] = 1;
        if (type == EV_CUSTOM) custom = true;
    }
    if (!keys) {
        reply(c, ESL_REPLY_NO_KEYWORDS);
        return;
    }
    c->events_on = true;
    reply(c, c->format == ESL_FORMAT_JSON ? ESL_REPLY_EVENTS_JSON : ESL_REPLY_EVENTS_PLAIN);
}

static void cmd_nixevent(struct conn *c, const struct esl_command *cmd)
{
    const char *p = cmd->names.ptr, *end = p ? p + cmd->names.len : NULL;
    struct esl_str w;
    unsigned keys = 0;
    bool custom = false;
    while (p && esl_next_word(&p, end, &w)) {
        if (custom) {
            for (guint i = 0; i < c->subclasses->len; i++) {
                if (esl_str_eq(w, g_ptr_array_index(c->subclasses, i)) &&
                    strlen(g_ptr_array_index(c->subclasses, i)) == w.len) {
                    g_ptr_array_remove_index(c->subclasses, i);
                    break;
                }
            }
            continue;
        }
        int type = event_index(w);
        if (type < 0) continue;
        keys++;
        if (type == EV_CUSTOM) {
            custom = true;
        } else if (type == EV_ALL) {
            memset(c->ev_list, 0, sizeof c->ev_list);
        } else {
            if (c->ev_list[EV_ALL]) {
                c->ev_list[EV_ALL] = 0;
                memset(c->ev_list, 1, EV_ALL);
            }
            c->ev_list[type] = 0;
        }
    }
    if (!keys) {
        reply(c, ESL_REPLY_NO_KEYWORDS);
        return;
    }
    c->events_on = true;
    reply(c, ESL_REPLY_EVENTS_NIXED);
}

static void cmd_noevents(struct conn *c)
{
    if (!c->events_on) {
        reply(c, ESL_REPLY_NOT_LISTENING);
        return;
    }
    c->events_on = false;
    memset(c->ev_list, 0, sizeof c->ev_list);
    g_ptr_array_set_size(c->subclasses, 0);
    reply(c, ESL_REPLY_NO_EVENTS);
}

static void filter_free(gpointer p)
{
    struct filter *f = p;
    xfree(f->header);
    xfree(f->value);
    xfree(f);
}

static void cmd_filter(struct conn *c, const struct esl_command *cmd)
{
    char *header = span_dup(cmd->filter_header), *value = span_dup(cmd->filter_value);
    char text[512];
    if (cmd->filter_delete) {
        if (!header || !*header) {
            reply(c, ESL_REPLY_INVALID_SYNTAX);
        } else {
            if (!g_ascii_strcasecmp(header, "all")) {
                g_ptr_array_set_size(c->filters, 0);
            } else {
                for (guint i = 0; i < c->filters->len;) {
                    struct filter *f = g_ptr_array_index(c->filters, i);
                    if (!g_ascii_strcasecmp(f->header, header) &&
                        (!value || !strcmp(f->value, value)))
                        g_ptr_array_remove_index(c->filters, i);
                    else
                        i++;
                }
            }
            snprintf(text, sizeof text, "+OK filter deleted. [%s][%s]", header, value ? value : "");
            reply(c, text);
        }
    } else if (!header || !*header || !value) {
        reply(c, ESL_REPLY_INVALID_SYNTAX);
    } else {
        if (!g_ascii_strcasecmp(header, "add")) { /* "filter add <header> <value>" */
            char *sp = strchr(value, ' ');
            xfree(header);
            header = value;
            value = xstrdup(sp ? sp + 1 : "");
            if (sp) *sp = '\0';
        }
        if (c->filters->len < MAX_FILTERS) {
            struct filter *f = xcalloc(1, sizeof *f);
            f->header = xstrdup(header);
            f->value = xstrdup(value);
            g_ptr_array_add(c->filters, f);
            snprintf(text, sizeof text, "+OK filter added. [%s]=[%s]", header, value);
            reply(c, text);
        } else {
            reply(c, "-ERR too many filters");
        }
    }
    xfree(header);
    xfree(value);
}

static void cmd_log(struct conn *c, const struct esl_command *cmd)
{
    static const char *const levels[] = {"console", "alert",  "crit", "err",
                                         "warning", "notice", "info", "debug"};
    int level = 7;
    char *given = span_dup(cmd->log_level);
    if (given) {
        level = -1;
        if (g_ascii_isdigit(given[0])) level = atoi(given) <= 7 ? atoi(given) : -1;
        for (int i = 0; i < 8; i++)
            if (!g_ascii_strcasecmp(given, levels[i])) level = i;
        if (!g_ascii_strcasecmp(given, "error")) level = 3;
    }
    if (level < 0) {
        reply(c, "-ERR invalid log level");
    } else {
        char text[160];
        c->log_on = true; /* this node forwards no log lines; the reply is FreeSWITCH's */
        snprintf(text, sizeof text, "+OK log level %s [%d]", given ? given : "", level);
        reply(c, text);
    }
    xfree(given);
}

static void conn_command(struct conn *c, const struct esl_command *cmd)
{
    if (cmd->kind == ESL_CMD_EXIT) {
        reply(c, ESL_REPLY_BYE);
        note_appended(c);
        conn_goodbye(c);
        return;
    }
    if (!c->authed) {
        if (cmd->kind == ESL_CMD_AUTH) {
            drop_source(&c->auth_timer);
            if (password_ok(c->srv, cmd->password)) {
                c->authed = true;
                unauthed_release(c->srv, c->ip);
                reply(c, ESL_REPLY_ACCEPTED);
                LOG(LOG_INFO, "esl", "conn=%llu msg=\"authenticated\"", (unsigned long long)c->id);
            } else {
                reply(c, ESL_REPLY_INVALID);
                note_appended(c);
                LOG_RATELIMITED(LOG_WARN, "esl", "conn=%llu msg=\"wrong password\" peer=%s",
                                (unsigned long long)c->id, c->peer);
                conn_goodbye(c);
                return;
            }
        } else {
            /* FreeSWITCH stops its deadline at the first command, so `help` kept a slot for
             * ever (security audit M3): here the deadline stands until a successful auth */
            reply(c, ESL_REPLY_NOT_FOUND);
        }
        note_appended(c);
        return;
    }
    switch (cmd->kind) {
    case ESL_CMD_API: cmd_api(c, cmd); break;
    case ESL_CMD_BGAPI: cmd_bgapi(c, cmd); break;
    case ESL_CMD_EVENT: cmd_event(c, cmd); break;
    case ESL_CMD_NIXEVENT: cmd_nixevent(c, cmd); break;
    case ESL_CMD_NOEVENTS: cmd_noevents(c); break;
    case ESL_CMD_FILTER: cmd_filter(c, cmd); break;
    case ESL_CMD_LOG: cmd_log(c, cmd); break;
    case ESL_CMD_NOLOG:
        reply(c, c->log_on ? ESL_REPLY_NO_LONGER_LOGGING : "-ERR not loging");
        c->log_on = false;
        break;
    case ESL_CMD_LINGER:
    case ESL_CMD_NOLINGER: reply(c, "-ERR not controlling a session"); break;
    case ESL_CMD_DIVERT: reply(c, "-ERR not controlling a session."); break;
    case ESL_CMD_MYEVENTS:
        reply(c, cmd->uuid.ptr ? "-ERR invalid uuid" : ESL_REPLY_NOT_FOUND);
        break;
    case ESL_CMD_SENDMSG: {
        char text[160];
        snprintf(text, sizeof text, "-ERR invalid session id [%.*s]",
                 cmd->uuid.ptr ? (int)(cmd->uuid.len > 64 ? 64 : cmd->uuid.len) : 0,
                 cmd->uuid.ptr ? cmd->uuid.ptr : "");
        reply(c, text);
        break;
    }
    default: reply(c, ESL_REPLY_NOT_FOUND); break; /* auth again, sendevent, unknown */
    }
    if (!c->dead) note_appended(c);
}

/* Parses and runs the complete commands in the input buffer, while the peer reads its replies. */
static void conn_process(struct conn *c)
{
    c->processing = true;
    while (!c->dead && !c->closing && buf_unread(&c->in)) {
        if (buf_unread(&c->out) >= OUT_PAUSE_BYTES) conn_flush(c);
        if (c->dead) break;
        if (buf_unread(&c->out) >= OUT_PAUSE_BYTES) {
            c->paused = true; /* conn_flush resumes once the peer has read it all */
            drop_source(&c->in_src);
            break;
        }
        struct esl_command cmd;
        const char *err = NULL;
        size_t max = c->authed ? ESL_DEFAULT_MAX_COMMAND : PREAUTH_MAX_COMMAND;
        int rc = esl_parse_command(buf_head(&c->in), buf_unread(&c->in), max, &cmd, &err);
        if (rc == ESL_AGAIN) break;
        if (rc == ESL_ERROR) {
            LOG(LOG_INFO, "esl", "conn=%llu msg=\"bad command\" error=\"%s\"",
                (unsigned long long)c->id, err ? err : "?");
            conn_kill(c, "protocol error");
            return;
        }
        conn_command(c, &cmd);
        if (!c->dead) buf_consume(&c->in, cmd.consumed);
    }
    c->processing = false;
    if (!c->dead) conn_flush(c);
}

static gboolean on_readable(GSocket *sock, GIOCondition cond, gpointer data)
{
    struct conn *c = data;
    (void)cond;
    GError *err = NULL;
    buf_reserve(&c->in, READ_CHUNK);
    gssize n = g_socket_receive(sock, (gchar *)c->in.data + c->in.len, READ_CHUNK, NULL, &err);
    if (n < 0) {
        if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
            g_error_free(err);
            return G_SOURCE_CONTINUE;
        }
        char why[160];
        snprintf(why, sizeof why, "read error: %s", err->message);
        g_error_free(err);
        conn_kill(c, why);
        return G_SOURCE_REMOVE;
    }
    if (n == 0) {
        conn_kill(c, "peer closed");
        return G_SOURCE_REMOVE;
    }
    c->in.len += (size_t)n;
    conn_process(c);
    if (c->dead || !c->in_src) return G_SOURCE_REMOVE; /* source already destroyed */
    return G_SOURCE_CONTINUE;
}

static gboolean on_incoming(GSocketService *service, GSocketConnection *stream, GObject *source,
                            gpointer data)
{
    struct esl_server *srv = data;
    (void)service;
    (void)source;
    const struct media_config *cfg = srv->cfg;
    char ip[48] = "?";
    guint16 port = 0;
    GSocketAddress *peer = g_socket_connection_get_remote_address(stream, NULL);
    if (peer && G_IS_INET_SOCKET_ADDRESS(peer)) {
        char *s = g_inet_address_to_string(
            g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(peer)));
        g_strlcpy(ip, s, sizeof ip);
        g_free(s);
        port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(peer));
    }
    if (peer) g_object_unref(peer);
    bool full = srv->n_conns >= (unsigned)cfg->esl_max_connections;
    unsigned from_ip = GPOINTER_TO_UINT(g_hash_table_lookup(srv->unauthed, ip));
    if (full || from_ip >= (unsigned)cfg->esl_max_unauthenticated_per_ip) {
        /* FreeSWITCH's refusal (its ACL reject), written without waiting; then closed */
        LOG_RATELIMITED(
            LOG_WARN, "esl", "msg=\"connection refused\" why=\"%s\" max=%d",
            full ? "[esl] max_connections" : "[esl] max_unauthenticated_per_ip",
            (int)(full ? cfg->esl_max_connections : cfg->esl_max_unauthenticated_per_ip));
        GSocket *sock = g_socket_connection_get_socket(stream);
        struct buf b;
        buf_init(&b);
        esl_put_rude_rejection(&b);
        g_socket_set_blocking(sock, FALSE);
        (void)g_socket_send(sock, (const char *)buf_head(&b), buf_unread(&b), NULL, NULL);
        buf_free(&b);
        g_io_stream_close(G_IO_STREAM(stream), NULL, NULL);
        return TRUE;
    }
    struct conn *c = xcalloc(1, sizeof *c);
    c->srv = srv;
    c->id = ++srv->next_conn_id;
    c->stream = g_object_ref(stream);
    c->sock = g_socket_connection_get_socket(stream);
    c->subclasses = g_ptr_array_new_with_free_func(xfree);
    c->filters = g_ptr_array_new_with_free_func(filter_free);
    buf_init(&c->in);
    buf_init(&c->out);
    g_socket_set_blocking(c->sock, FALSE);
    g_socket_set_option(c->sock, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
    g_strlcpy(c->ip, ip, sizeof c->ip);
    snprintf(c->peer, sizeof c->peer, "%s:%u", ip, port);
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    g_hash_table_insert(srv->unauthed, g_strdup(ip), GUINT_TO_POINTER(from_ip + 1));
    LOG(LOG_INFO, "esl", "conn=%llu msg=\"connected\" peer=%s", (unsigned long long)c->id, c->peer);
    esl_put_auth_request(&c->out);
    note_appended(c);
    c->auth_timer = attach_timeout(srv, (guint)cfg->esl_auth_timeout * 1000, on_auth_timeout, c);
    watch_input(c);
    conn_flush(c);
    return TRUE;
}

/* ---- the server ------------------------------------------------------------------------------ */

/* FreeSWITCH-IPv4: the address this node announces (the ICE address), else the SIP one. */
static char *pick_ipv4(const struct media_config *cfg)
{
    const char *cands[] = {cfg->ice_ip, cfg->sip_ip, cfg->esl_ip};
    for (size_t i = 0; i < 3; i++) {
        GInetAddress *a = cands[i] && *cands[i] ? g_inet_address_new_from_string(cands[i]) : NULL;
        bool ok = a && g_inet_address_get_family(a) == G_SOCKET_FAMILY_IPV4 &&
                  !g_inet_address_get_is_any(a);
        if (a) g_object_unref(a);
        if (ok) return xstrdup(cands[i]);
    }
    return xstrdup("127.0.0.1");
}

struct esl_server *esl_server_start(const struct media_config *cfg, struct conf_registry *reg,
                                    GError **error)
{
    GInetAddress *addr = g_inet_address_new_from_string(cfg->esl_ip ? cfg->esl_ip : "");
    if (!addr) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "[esl] ip '%s' is not an IP address", cfg->esl_ip ? cfg->esl_ip : "");
        return NULL;
    }
    struct esl_server *srv = xcalloc(1, sizeof *srv);
    srv->cfg = cfg;
    srv->reg = reg;
    srv->password =
        xstrdup(cfg->esl_password && *cfg->esl_password ? cfg->esl_password : ESL_DEFAULT_PASSWORD);
    srv->max_queue = cfg->esl_max_queue > 0 ? (size_t)cfg->esl_max_queue : 100000;
    srv->unauthed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    srv->ctx = g_main_context_ref_thread_default();
    srv->service = g_socket_service_new();
    /* GLib's default backlog of 10 drops SYNs, even a real client's, under a burst of connects */
    g_socket_listener_set_backlog(G_SOCKET_LISTENER(srv->service), LISTEN_BACKLOG);
    GSocketAddress *sa = g_inet_socket_address_new(addr, (guint16)cfg->esl_port);
    g_object_unref(addr);
    GSocketAddress *effective = NULL;
    gboolean ok =
        g_socket_listener_add_address(G_SOCKET_LISTENER(srv->service), sa, G_SOCKET_TYPE_STREAM,
                                      G_SOCKET_PROTOCOL_TCP, NULL, &effective, error);
    g_object_unref(sa);
    if (!ok) {
        g_prefix_error(error, "[esl] cannot listen on %s:%d: ", cfg->esl_ip, cfg->esl_port);
        g_object_unref(srv->service);
        g_main_context_unref(srv->ctx);
        g_hash_table_destroy(srv->unauthed);
        xfree(srv->password);
        xfree(srv);
        return NULL;
    }
    srv->port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(effective));
    g_object_unref(effective);

    char *u = g_uuid_string_random();
    g_strlcpy(srv->core_uuid, u, sizeof srv->core_uuid);
    g_free(u);
    g_strlcpy(srv->hostname, g_get_host_name(), sizeof srv->hostname);
    srv->ipv4 = pick_ipv4(cfg);
    srv->ipv6 = xstrdup("::1");
    srv->domain = xstrdup(cfg->sip_domain && *cfg->sip_domain ? cfg->sip_domain : srv->ipv4);
    srv->version = xstrdup("0.0.0");
    arena_init(&srv->arena);
    srv->start_us = g_get_monotonic_time();
    srv->peak5_window = srv->start_us / G_USEC_PER_SEC;
    read_cpu(&srv->cpu_total, &srv->cpu_idle);

    srv->conf_listener = conf_listen(reg, on_conf_event, srv);
    g_signal_connect(srv->service, "incoming", G_CALLBACK(on_incoming), srv);
    g_socket_service_start(srv->service);
    LOG(LOG_INFO, "esl", "msg=\"listening\" ip=%s port=%u", cfg->esl_ip, srv->port);
    return srv;
}

unsigned esl_server_connections(const struct esl_server *srv)
{
    return srv->n_conns;
}

uint16_t esl_server_port(const struct esl_server *srv)
{
    return srv->port;
}

void esl_server_set_recorder(struct esl_server *srv, struct recorder *rc)
{
    srv->recorder = rc;
}

void esl_server_set_revoke(struct esl_server *srv, esl_revoke_fn fn, void *ctx)
{
    srv->revoke = fn;
    srv->revoke_ctx = ctx;
}

void esl_server_set_version(struct esl_server *srv, const char *version)
{
    xfree(srv->version);
    srv->version = xstrdup(version ? version : "0.0.0");
}

void esl_server_stop(struct esl_server *srv)
{
    if (!srv) return;
    conf_unlisten(srv->reg, srv->conf_listener);
    g_socket_service_stop(srv->service);
    g_socket_listener_close(G_SOCKET_LISTENER(srv->service));
    g_object_unref(srv->service);
    while (srv->conns) {
        struct conn *c = srv->conns;
        if (!c->closing) {
            esl_put_disconnect_notice(&c->out);
            c->closing = true;
        }
        /* one non-blocking attempt: a peer that does not read loses the notice */
        while (buf_unread(&c->out)) {
            gssize w = g_socket_send(c->sock, (const gchar *)buf_head(&c->out), buf_unread(&c->out),
                                     NULL, NULL);
            if (w <= 0) break;
            buf_consume(&c->out, (size_t)w);
        }
        conn_kill(c, "server stopping");
    }
    drop_source(&srv->reap_idle);
    while (srv->graveyard) {
        struct conn *c = srv->graveyard;
        srv->graveyard = c->next;
        conn_free(c);
    }
    drop_source(&srv->flush_idle);
    arena_free(&srv->arena);
    g_main_context_unref(srv->ctx);
    g_hash_table_destroy(srv->unauthed);
    xfree(srv->password);
    xfree(srv->ipv4);
    xfree(srv->ipv6);
    xfree(srv->domain);
    xfree(srv->version);
    xfree(srv);
}
