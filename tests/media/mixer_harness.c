/* media-harness: drives src/media/mixer.c without SIP, for tests/integration/media_mixer.test.mjs.
 * A stub registry (the conf_* functions mixer.c calls) and a libsoup-3 HTTP server on 127.0.0.1:
 *
 *   GET  /                      the test page (tests/media/mixer_page.html, from --www)
 *   POST /join?room=R&member=N&profile=video|audio   body: the browser's SDP offer
 *                               -> 200 with the SDP answer, or the mixer's error code (488/500)
 *   POST /leave?member=N        member_remove; the room is freed with its last member
 *   POST /update?member=N&mute=0|1&deaf=0|1&vmute=0|1
 *   POST /layout?room=R&layout=grid|floor&floor=N
 *   GET  /state                 JSON: rooms, members, talking, energy, failures
 *
 *   build/media-harness [--port 8080] [--www tests/media] [--ip 127.0.0.1] [--cpu-used 8]
 *                       [--log-level info|debug]
 *
 * It prints "media-harness listening port=N" on stderr when ready; SIGTERM/SIGINT end it cleanly
 * (rooms freed, pipelines to NULL). Not a model of conference.c: just enough to call every op. */
#include <glib-unix.h>
#include <gst/gst.h>
#include <libsoup/soup.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "media/conference.h"
#include "media/mixer.h"

struct conf_room {
    char *name;
    struct conf_profile profile;
    void *media;
    int count;
    enum conf_layout layout;
};

struct conf_member {
    struct conf_member_info info;
    struct conf_room *room;
    SoupServerMessage *pending; /* waiting for the answer */
    char *failed;               /* conf_report_failed's reason */
    int talk_starts;
    bool answered;
};

static GHashTable *rooms;   /* name -> struct conf_room* */
static GHashTable *members; /* id -> struct conf_member* */
static const char *www = "tests/media";
static GMainLoop *loop;

/* ---- the stub registry --------------------------------------------------------------------------
 */

const struct conf_member_info *conf_member_info(const struct conf_member *m)
{
    return &m->info;
}

struct conf_room *conf_member_room(const struct conf_member *m)
{
    return m->room;
}

const char *conf_room_name(const struct conf_room *room)
{
    return room->name;
}

const struct conf_profile *conf_room_profile(const struct conf_room *room)
{
    return &room->profile;
}

void conf_report_talking(struct conf_member *m, bool talking, int energy)
{
    m->info.talking = talking;
    m->info.energy = energy;
    if (talking) m->talk_starts++;
    LOG(LOG_INFO, "harness", "member=%u msg=\"talking\" talking=%d energy=%d", m->info.id, talking,
        energy);
}

void conf_report_failed(struct conf_member *m, const char *why)
{
    g_free(m->failed);
    m->failed = g_strdup(why);
    LOG(LOG_WARN, "harness", "member=%u msg=\"failed\" reason=\"%s\"", m->info.id, why);
}

void conf_report_video_bridge(struct conf_room *room, bool on)
{
    LOG(LOG_INFO, "harness", "msg=\"video bridge\" on=%d", on);
}

/* ---- HTTP
 * ----------------------------------------------------------------------------------------- */

static void reply(SoupServerMessage *msg, int status, const char *type, const char *body)
{
    soup_server_message_set_status(msg, status, NULL);
    soup_server_message_set_response(msg, type, SOUP_MEMORY_COPY, body, strlen(body));
}

static void room_drop_member(struct conf_member *m)
{
    const struct conf_media_ops *ops = mixer_ops();
    struct conf_room *room = m->room;
    ops->member_remove(room->media, m);
    g_hash_table_remove(members, GUINT_TO_POINTER(m->info.id));
    g_free(m->failed);
    g_free(m);
    if (--room->count == 0) {
        ops->room_free(room->media);
        g_hash_table_remove(rooms, room->name);
        g_free(room->name);
        g_free(room);
    }
}

static void on_answer(struct conf_member *m, const char *answer_sdp, const GError *error, void *ud)
{
    SoupServerMessage *msg = m->pending;
    m->pending = NULL;
    if (answer_sdp) {
        m->answered = true;
        reply(msg, 200, "application/sdp", answer_sdp);
    } else {
        reply(msg, error && error->code >= 400 ? error->code : 500, "text/plain",
              error ? error->message : "failed");
    }
    soup_server_message_unpause(msg);
    g_object_unref(msg);
    if (!answer_sdp) room_drop_member(m); /* what the registry would do */
}

static void handle_join(SoupServerMessage *msg, GHashTable *q)
{
    const char *rname = q ? g_hash_table_lookup(q, "room") : NULL;
    const char *mid = q ? g_hash_table_lookup(q, "member") : NULL;
    const char *prof = q ? g_hash_table_lookup(q, "profile") : NULL;
    uint32_t id = mid ? (uint32_t)strtoul(mid, NULL, 10) : 0;
    if (!rname || !id || g_hash_table_contains(members, GUINT_TO_POINTER(id))) {
        reply(msg, 400, "text/plain", "need room, a new member id");
        return;
    }
    bool video = !prof || strcmp(prof, "audio") != 0;
    struct conf_room *room = g_hash_table_lookup(rooms, rname);
    const struct conf_media_ops *ops = mixer_ops();
    if (!room) {
        room = g_new0(struct conf_room, 1);
        room->name = g_strdup(rname);
        room->profile = (struct conf_profile){.name = video ? "video" : "audio",
                                              .video = video,
                                              .width = 640,
                                              .height = 480,
                                              .fps = 30,
                                              .video_kbps = 800,
                                              .audio_kbps = 32,
                                              .max_members = 16,
                                              .layout = "grid"};
        GError *err = NULL;
        room->media = ops->room_new(room, &room->profile, &err);
        if (!room->media) {
            reply(msg, 500, "text/plain", err ? err->message : "room_new failed");
            g_clear_error(&err);
            g_free(room->name);
            g_free(room);
            return;
        }
        g_hash_table_insert(rooms, room->name, room);
    }
    struct conf_member *m = g_new0(struct conf_member, 1);
    m->info.id = id;
    m->info.join_time = g_get_real_time() / G_USEC_PER_SEC;
    m->room = room;
    room->count++;
    g_hash_table_insert(members, GUINT_TO_POINTER(id), m);
    SoupMessageBody *body = soup_server_message_get_request_body(msg);
    GBytes *b = soup_message_body_flatten(body);
    char *offer = g_strndup(g_bytes_get_data(b, NULL), g_bytes_get_size(b));
    g_bytes_unref(b);
    m->pending = g_object_ref(msg);
    soup_server_message_pause(msg);
    ops->member_add(room->media, m, offer, on_answer, NULL);
    g_free(offer);
}

static struct conf_member *query_member(GHashTable *q)
{
    const char *mid = q ? g_hash_table_lookup(q, "member") : NULL;
    if (!mid) return NULL;
    return g_hash_table_lookup(members, GUINT_TO_POINTER((uint32_t)strtoul(mid, NULL, 10)));
}

static void handle_state(SoupServerMessage *msg)
{
    GString *s = g_string_new("{\"rooms\":[");
    GHashTableIter it;
    gpointer k, v;
    bool first_room = true;
    g_hash_table_iter_init(&it, rooms);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        struct conf_room *room = v;
        g_string_append_printf(s, "%s{\"name\":\"%s\",\"video\":%s,\"count\":%d}",
                               first_room ? "" : ",", room->name,
                               room->profile.video ? "true" : "false", room->count);
        first_room = false;
    }
    g_string_append(s, "],\"members\":[");
    bool first = true;
    g_hash_table_iter_init(&it, members);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        struct conf_member *m = v;
        g_string_append_printf(s,
                               "%s{\"id\":%u,\"room\":\"%s\",\"answered\":%s,\"talking\":%s,"
                               "\"talk_starts\":%d,\"energy\":%d,\"failed\":%s%s%s}",
                               first ? "" : ",", m->info.id, m->room->name,
                               m->answered ? "true" : "false", m->info.talking ? "true" : "false",
                               m->talk_starts, m->info.energy, m->failed ? "\"" : "",
                               m->failed ? m->failed : "null", m->failed ? "\"" : "");
        first = false;
    }
    g_string_append(s, "]}");
    reply(msg, 200, "application/json", s->str);
    g_string_free(s, TRUE);
}

static void serve_page(SoupServerMessage *msg)
{
    char *path = g_build_filename(www, "mixer_page.html", NULL);
    char *data = NULL;
    gsize len = 0;
    if (g_file_get_contents(path, &data, &len, NULL)) {
        soup_server_message_set_status(msg, 200, NULL);
        soup_server_message_set_response(msg, "text/html", SOUP_MEMORY_TAKE, data, len);
    } else {
        reply(msg, 404, "text/plain", "no page");
    }
    g_free(path);
}

static void on_request(SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *q,
                       gpointer ud)
{
    const char *method = soup_server_message_get_method(msg);
    bool post = strcmp(method, "POST") == 0;
    const struct conf_media_ops *ops = mixer_ops();
    if (!post && (strcmp(path, "/") == 0 || strcmp(path, "/mixer_page.html") == 0)) {
        serve_page(msg);
    } else if (!post && strcmp(path, "/state") == 0) {
        handle_state(msg);
    } else if (post && strcmp(path, "/join") == 0) {
        handle_join(msg, q);
    } else if (post && strcmp(path, "/leave") == 0) {
        struct conf_member *m = query_member(q);
        if (!m || m->pending) {
            reply(msg, 404, "text/plain", "no such member");
            return;
        }
        room_drop_member(m);
        reply(msg, 200, "text/plain", "ok");
    } else if (post && strcmp(path, "/update") == 0) {
        struct conf_member *m = query_member(q);
        if (!m) {
            reply(msg, 404, "text/plain", "no such member");
            return;
        }
        const char *v;
        if ((v = g_hash_table_lookup(q, "mute"))) m->info.mute = *v == '1';
        if ((v = g_hash_table_lookup(q, "deaf"))) m->info.deaf = *v == '1';
        if ((v = g_hash_table_lookup(q, "vmute"))) m->info.vmute = *v == '1';
        ops->member_update(m->room->media, m);
        reply(msg, 200, "text/plain", "ok");
    } else if (post && strcmp(path, "/layout") == 0) {
        const char *rname = q ? g_hash_table_lookup(q, "room") : NULL;
        struct conf_room *room = rname ? g_hash_table_lookup(rooms, rname) : NULL;
        if (!room) {
            reply(msg, 404, "text/plain", "no such room");
            return;
        }
        const char *lay = g_hash_table_lookup(q, "layout");
        const char *fl = g_hash_table_lookup(q, "floor");
        room->layout = lay && strcmp(lay, "floor") == 0 ? CONF_LAYOUT_FLOOR : CONF_LAYOUT_GRID;
        ops->set_layout(room->media, room->layout, fl ? (uint32_t)strtoul(fl, NULL, 10) : 0);
        reply(msg, 200, "text/plain", "ok");
    } else {
        reply(msg, 404, "text/plain", "not found");
    }
}

static gboolean on_signal(gpointer ud)
{
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

int main(int argc, char **argv)
{
    int port = 8080;
    struct mixer_options mo = {.local_ip = "127.0.0.1"};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--www") == 0)
            www = argv[i + 1];
        else if (strcmp(argv[i], "--ip") == 0)
            mo.local_ip = argv[i + 1];
        else if (strcmp(argv[i], "--cpu-used") == 0)
            mo.vp8_cpu_used = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--log-level") == 0) {
            enum log_level lv;
            if (log_parse_level(argv[i + 1], &lv)) log_set_level(lv);
        } else {
            fprintf(stderr,
                    "usage: %s [--port N] [--www DIR] [--ip A] [--cpu-used N] [--log-level L]\n",
                    argv[0]);
            return 2;
        }
    }
    gst_init(NULL, NULL);
    mixer_set_options(&mo);
    rooms = g_hash_table_new(g_str_hash, g_str_equal);
    members = g_hash_table_new(g_direct_hash, g_direct_equal);
    loop = g_main_loop_new(NULL, FALSE);
    SoupServer *server = soup_server_new("server-header", "ccomet-media-harness", NULL);
    soup_server_add_handler(server, NULL, on_request, NULL, NULL);
    GError *err = NULL;
    GInetAddress *lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
    GSocketAddress *addr = g_inet_socket_address_new(lo, (guint16)port);
    if (!soup_server_listen(server, addr, 0, &err)) {
        fprintf(stderr, "listen: %s\n", err->message);
        return 1;
    }
    g_object_unref(addr);
    g_object_unref(lo);
    GSList *uris = soup_server_get_uris(server);
    LOG(LOG_INFO, "harness", "msg=\"media-harness listening\" port=%d",
        uris ? g_uri_get_port(uris->data) : port);
    fprintf(stderr, "media-harness listening port=%d\n", uris ? g_uri_get_port(uris->data) : port);
    g_slist_free_full(uris, (GDestroyNotify)g_uri_unref);
    g_unix_signal_add(SIGTERM, on_signal, NULL);
    g_unix_signal_add(SIGINT, on_signal, NULL);
    g_main_loop_run(loop);

    /* Clean end: every member leaves, every room is freed (pipelines to NULL). */
    GList *all = g_hash_table_get_values(members);
    for (GList *l = all; l; l = l->next) {
        struct conf_member *m = l->data;
        if (!m->pending) room_drop_member(m);
    }
    g_list_free(all);
    /* Teardowns still waiting on pad probes finish on the loop; rooms freed above already did. */
    while (g_main_context_iteration(NULL, FALSE))
        ;
    soup_server_disconnect(server);
    g_object_unref(server);
    g_hash_table_unref(members);
    g_hash_table_unref(rooms);
    g_main_loop_unref(loop);
    fprintf(stderr, "media-harness stopped\n");
    return 0;
}
