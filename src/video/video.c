/* video: media nodes, rooms, invitations and members; see video.h. */
#include "video/video.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/hmap.h"
#include "core/log.h"
#include "core/tenant_index.h"
#include "proto/call_token.h"
#include "proto/envelope.h"
#include "proto/names.h"
#include "proto/xml_curl.h"
#include "video/media_link.h"

#include <inttypes.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROOM_MAX    32
#define PROFILE_MAX 32

struct member {
    struct member *next;
    uint32_t id; /* the node's Member-ID */
    int64_t user_id;
    int64_t join_time;    /* unix seconds */
    int64_t last_talking; /* unix seconds, 0 = never */
    bool talking, mute, vmute, deaf, video;
};

struct room {
    struct hnode node;
    struct tenant_link by_dev; /* in v->rooms_by_dev */
    int64_t dev_id;
    char name[ROOM_MAX + 1];
    char profile[PROFILE_MAX + 1];
    char layout[33];
    char call_pipe[64]; /* "" until known (from an invitation) */
    int node_index;
    struct member *members;
    size_t n_members;
};

struct node {
    struct media_link *link;
    struct media_node_conf conf;
    size_t members, rooms; /* live load */
};

struct video {
    char pipesalt[128];
    char call_secret[256]; /* [sip] call_secret: "" mints no callToken */
    int64_t call_token_ttl;
    struct state *st;
    struct hub *hub;
    size_t pending; /* invitations in flight: each holds v */
    bool closed;    /* video_free was called: the last invitation in flight frees v */
    struct node *nodes;
    size_t n_nodes;
    struct hmap rooms;
    struct tenant_index rooms_by_dev; /* conference_members of one tenant walks its rooms */
    char domain[128];
};

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

bool video_room_name_ok(const char *s, size_t len)
{
    return len > 0 && len <= ROOM_MAX && comet_name_ok(s, len);
}

/* ---- rooms ---------------------------------------------------------------------------------- */

static uint64_t room_hash(int64_t dev, const char *name, size_t len)
{
    return hmap_hash_bytes((uint64_t)dev * 0x9e3779b97f4a7c15ULL, name, len);
}

static struct room *room_find(struct video *v, int64_t dev, const char *name, size_t len)
{
    uint64_t h = room_hash(dev, name, len);
    for (struct hnode *n = hmap_first(&v->rooms, h); n; n = hmap_next_same(n)) {
        struct room *r = (struct room *)n;
        if (r->dev_id == dev && strlen(r->name) == len && memcmp(r->name, name, len) == 0) return r;
    }
    return NULL;
}

static struct room *room_get(struct video *v, int64_t dev, const char *name, size_t len, int node)
{
    struct room *r = room_find(v, dev, name, len);
    if (r) return r;
    if (len > ROOM_MAX) return NULL;
    r = xcalloc(1, sizeof *r);
    r->dev_id = dev;
    memcpy(r->name, name, len);
    r->node_index = node;
    snprintf(r->profile, sizeof r->profile, "video");
    hmap_insert(&v->rooms, &r->node, room_hash(dev, name, len));
    tenant_index_add(&v->rooms_by_dev, dev, &r->by_dev);
    v->nodes[node].rooms++;
    return r;
}

static void room_clear_members(struct video *v, struct room *r)
{
    while (r->members) {
        struct member *m = r->members;
        r->members = m->next;
        xfree(m);
    }
    v->nodes[r->node_index].members -= r->n_members;
    r->n_members = 0;
}

static void room_free(struct video *v, struct room *r)
{
    room_clear_members(v, r);
    v->nodes[r->node_index].rooms--;
    hmap_remove(&v->rooms, &r->node);
    tenant_index_remove(&v->rooms_by_dev, r->dev_id, &r->by_dev);
    xfree(r);
}

/* The conference name on the node: the dialplan's "$1-${domain}", $1 = "<dev_id>*<room>". */
static void conf_name(const struct video *v, const struct room *r, char *out, size_t cap)
{
    snprintf(out, cap, "%" PRId64 "*%s-%s", r->dev_id, r->name, v->domain);
}

/* Splits a node's conference name back into (dev_id, room). */
static bool parse_conf_name(const struct video *v, const char *conf, int64_t *dev, char *room,
                            size_t cap)
{
    const char *star = strchr(conf, '*');
    if (!star || star == conf || star - conf > 9) return false;
    int64_t d = 0;
    for (const char *p = conf; p < star; p++) {
        if (*p < '0' || *p > '9') return false;
        d = d * 10 + (*p - '0');
    }
    const char *name = star + 1, *end = name + strlen(name);
    size_t dl = strlen(v->domain);
    if ((size_t)(end - name) > dl + 1 && end[-(ptrdiff_t)dl - 1] == '-' &&
        strcmp(end - dl, v->domain) == 0) {
        end -= dl + 1;
    } else {
        const char *dash = strrchr(name, '-');
        if (dash) end = dash;
    }
    size_t len = (size_t)(end - name);
    if (!video_room_name_ok(name, len) || len >= cap) return false;
    memcpy(room, name, len);
    room[len] = '\0';
    *dev = d;
    return true;
}

/* CppComet's call pipe: "web_syscall_v1_" + base64(SHA1(padded fields)), every byte outside
 * 'A'..'z' turned into 'A' (so the prefix reads "web_syscall_vA_"). Unguessable without the salt;
 * the same for everyone invited to one room on one node. */
static void call_pipe(const struct video *v, const struct room *r, const struct node *n, char *out,
                      size_t cap)
{
    char sip_number[128], src[512];
    snprintf(sip_number, sizeof sip_number, "%" PRId64 "*%s*%s", r->dev_id, r->name, r->profile);
    int sl = snprintf(src, sizeof src, "%64s_%64s_%d_%" PRId64 "_%32s", sip_number, n->conf.ws_host,
                      n->conf.ws_port, r->dev_id, v->pipesalt);
    if (sl < 0) sl = 0;
    if ((size_t)sl >= sizeof src) sl = (int)sizeof src - 1;
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)src, (size_t)sl, md);
    unsigned char b64[32];
    EVP_EncodeBlock(b64, md, sizeof md);
    snprintf(out, cap, "web_syscall_v1_%s", (const char *)b64);
    for (char *p = out; *p; p++)
        if (*p < 'A' || *p > 'z') *p = 'A';
}

/* Publishes one call pipe message from the server (onIn, onOut, call ended). */
static void publish_call(struct video *v, const struct room *r, const char *event, const char *json)
{
    if (!r->call_pipe[0]) return;
    struct hub_message m = {r->dev_id,
                            r->call_pipe,
                            strlen(r->call_pipe),
                            event,
                            strlen(event),
                            json,
                            strlen(json),
                            0,
                            now_s(),
                            0,
                            false,
                            NULL};
    hub_publish_pipe(v->hub, &m);
}

static void publish_member(struct video *v, const struct room *r, const struct member *m,
                           const char *event, const char *status)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"status\":\"%s\",\"user_id\":%" PRId64 ",\"member_id\":%u,\"conference_name\":"
             "\"%s\",\"members\":%zu}",
             status, m->user_id, m->id, r->name, r->n_members);
    publish_call(v, r, event, json);
}

/* ---- members from events ---------------------------------------------------------------------
 */

static struct member *member_find(struct room *r, uint32_t id, struct member ***link)
{
    for (struct member **pp = &r->members; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            if (link) *link = pp;
            return *pp;
        }
    }
    return NULL;
}

static int64_t user_of(int64_t dev, const char *username)
{
    int64_t d, u;
    if (username && xml_curl_user_split(username, &d, &u) && d == dev) return u;
    return 0;
}

static struct member *member_add(struct video *v, struct room *r, uint32_t id, int64_t user)
{
    struct member *m = member_find(r, id, NULL);
    if (m) return m;
    m = xcalloc(1, sizeof *m);
    m->id = id;
    m->user_id = user;
    m->join_time = now_s();
    m->next = NULL;
    struct member **tail = &r->members;
    while (*tail)
        tail = &(*tail)->next;
    *tail = m;
    r->n_members++;
    v->nodes[r->node_index].members++;
    return m;
}

static void member_del(struct video *v, struct room *r, uint32_t id, const char *status)
{
    struct member **pp;
    struct member *m = member_find(r, id, &pp);
    if (!m) return;
    *pp = m->next;
    r->n_members--;
    v->nodes[r->node_index].members--;
    publish_member(v, r, m, "out", status);
    xfree(m);
}

static bool tf(const char *s)
{
    return s && strcmp(s, "true") == 0;
}

/* The room an event is about, created when a member appears in a room we did not place (a
 * browser that dialled on its own, or state from before a restart). */
static struct room *event_room(struct video *v, int node, const struct esl_event *ev, bool create)
{
    const char *conf = esl_event_get(ev, "Conference-Name", NULL);
    int64_t dev;
    char name[ROOM_MAX + 1];
    if (!conf || !parse_conf_name(v, conf, &dev, name, sizeof name)) return NULL;
    struct room *r = room_find(v, dev, name, strlen(name));
    if (r && r->node_index != node) {
        if (r->n_members) {
            LOG_RATELIMITED(LOG_WARN, "video",
                            "msg=\"room is live on two nodes\" room=%s node=%s other=%s", name,
                            v->nodes[node].conf.id, v->nodes[r->node_index].conf.id);
            return NULL;
        }
        v->nodes[r->node_index].rooms--;
        r->node_index = node;
        v->nodes[node].rooms++;
        r->call_pipe[0] = '\0';
    }
    if (!r && create) r = room_get(v, dev, name, strlen(name), node);
    if (r && !r->call_pipe[0]) {
        const char *profile = esl_event_get(ev, "Conference-Profile-Name", NULL);
        if (profile && video_room_name_ok(profile, strlen(profile)))
            snprintf(r->profile, sizeof r->profile, "%s", profile);
        call_pipe(v, r, &v->nodes[node], r->call_pipe, sizeof r->call_pipe);
    }
    return r;
}

static void on_event(void *ctx, struct media_link *l, const struct esl_event *ev)
{
    struct video *v = ctx;
    int node = media_link_index(l);
    const char *action = esl_event_get(ev, "Action", NULL);
    if (!action) return;
    const char *mid = esl_event_get(ev, "Member-ID", NULL);
    uint32_t id = mid ? (uint32_t)strtoul(mid, NULL, 10) : 0;
    bool add = strcmp(action, "add-member") == 0;
    struct room *r = event_room(v, node, ev, add);
    if (!r) return;
    if (add && id) {
        const char *user = esl_event_get(ev, "Caller-Username", NULL);
        int64_t uid = user_of(r->dev_id, user);
        if (!uid) uid = user_of(r->dev_id, esl_event_get(ev, "Caller-Caller-ID-Number", NULL));
        bool fresh = !member_find(r, id, NULL);
        struct member *m = member_add(v, r, id, uid);
        m->video = tf(esl_event_get(ev, "Video", NULL));
        m->mute = !tf(esl_event_get(ev, "Speak", NULL));
        m->deaf = !tf(esl_event_get(ev, "Hear", NULL));
        m->talking = tf(esl_event_get(ev, "Talking", NULL));
        if (fresh) publish_member(v, r, m, "in", "in");
        LOG(LOG_INFO, "video",
            "msg=\"member in\" dev_id=%" PRId64 " room=%s user_id=%" PRId64 " member_id=%u "
            "node=%s",
            r->dev_id, r->name, uid, id, v->nodes[node].conf.id);
        return;
    }
    if (!strcmp(action, "del-member")) {
        member_del(v, r, id, "out");
        return;
    }
    if (!strcmp(action, "conference-destroy")) {
        /* members left already; a room without members and invitations is forgotten (its
         * invitations keep it sticky through the store) */
        while (r->members)
            member_del(v, r, r->members->id, "out");
        room_free(v, r);
        return;
    }
    struct member *m = id ? member_find(r, id, NULL) : NULL;
    if (!m) return;
    if (!strcmp(action, "start-talking")) {
        m->talking = true;
        m->last_talking = now_s();
    } else if (!strcmp(action, "stop-talking")) {
        m->talking = false;
        m->last_talking = now_s();
    } else if (!strcmp(action, "mute-member")) {
        m->mute = true;
    } else if (!strcmp(action, "unmute-member")) {
        m->mute = false;
    } else if (!strcmp(action, "vmute-member")) {
        m->vmute = true;
    } else if (!strcmp(action, "unvmute-member")) {
        m->vmute = false;
    } else if (!strcmp(action, "deaf-member")) {
        m->deaf = true;
    } else if (!strcmp(action, "undeaf-member")) {
        m->deaf = false;
    } else if (!strcmp(action, "kick-member")) {
        member_del(v, r, id, "kicked");
    }
}

/* ---- resynchronisation from `conference xml_list` ------------------------------------------ */

static const char *child_text(xmlNode *parent, const char *name, char *buf, size_t cap)
{
    for (xmlNode *c = parent->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, name) != 0) continue;
        xmlChar *t = xmlNodeGetContent(c);
        snprintf(buf, cap, "%s", t ? (const char *)t : "");
        xmlFree(t);
        return buf;
    }
    return NULL;
}

static xmlNode *child(xmlNode *parent, const char *name)
{
    for (xmlNode *c = parent->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0) return c;
    return NULL;
}

static void resync_conference(struct video *v, int node, xmlNode *conf)
{
    xmlChar *name = xmlGetProp(conf, (const xmlChar *)"name");
    int64_t dev;
    char room[ROOM_MAX + 1];
    bool ok = name && parse_conf_name(v, (const char *)name, &dev, room, sizeof room);
    xmlFree(name);
    if (!ok) return;
    struct room *r = room_find(v, dev, room, strlen(room));
    if (r && r->node_index != node && r->n_members) return;
    if (!r) r = room_get(v, dev, room, strlen(room), node);
    if (!r) return;
    if (r->node_index != node) {
        v->nodes[r->node_index].rooms--;
        r->node_index = node;
        v->nodes[node].rooms++;
        r->call_pipe[0] = '\0';
    }
    if (!r->call_pipe[0]) call_pipe(v, r, &v->nodes[node], r->call_pipe, sizeof r->call_pipe);
    xmlNode *members = child(conf, "members");
    if (!members) return;
    int64_t now = now_s();
    for (xmlNode *mn = members->children; mn; mn = mn->next) {
        if (mn->type != XML_ELEMENT_NODE || strcmp((const char *)mn->name, "member") != 0) continue;
        xmlChar *type = xmlGetProp(mn, (const xmlChar *)"type");
        bool caller = !type || strcmp((const char *)type, "caller") == 0;
        xmlFree(type);
        if (!caller) continue;
        char buf[256];
        const char *idt = child_text(mn, "id", buf, sizeof buf);
        uint32_t id = idt ? (uint32_t)strtoul(idt, NULL, 10) : 0;
        if (!id) continue;
        int64_t uid = user_of(dev, child_text(mn, "caller_id_number", buf, sizeof buf));
        bool fresh = !member_find(r, id, NULL);
        struct member *m = member_add(v, r, id, uid);
        const char *jt = child_text(mn, "join_time", buf, sizeof buf);
        if (jt && *jt >= '0' && *jt <= '9') m->join_time = now - strtoll(jt, NULL, 10);
        const char *lt = child_text(mn, "last_talking", buf, sizeof buf);
        if (lt && *lt >= '0' && *lt <= '9') m->last_talking = now - strtoll(lt, NULL, 10);
        xmlNode *flags = child(mn, "flags");
        if (flags) {
            m->mute = !tf(child_text(flags, "can_speak", buf, sizeof buf));
            m->deaf = !tf(child_text(flags, "can_hear", buf, sizeof buf));
            m->talking = tf(child_text(flags, "talking", buf, sizeof buf));
            m->video = tf(child_text(flags, "has_video", buf, sizeof buf));
        }
        if (fresh) publish_member(v, r, m, "in", "in");
    }
}

static void on_xml_list(void *ctx, struct media_link *l, bool ok, const char *body, size_t len)
{
    struct video *v = ctx;
    if (!ok || !body) return;
    if (len == 0 || body[0] != '<') {
        LOG(LOG_WARN, "video", "msg=\"conference xml_list failed\" node=%s answer=\"%.*s\"",
            media_link_conf(l)->id, (int)(len > 120 ? 120 : len), body);
        return;
    }
    xmlDoc *doc = xmlReadMemory(body, (int)len, "xml_list", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        LOG(LOG_WARN, "video", "msg=\"conference xml_list is not XML\" node=%s",
            media_link_conf(l)->id);
        return;
    }
    int node = media_link_index(l);
    xmlNode *root = xmlDocGetRootElement(doc);
    for (xmlNode *c = root ? root->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, "conference") == 0)
            resync_conference(v, node, c);
    xmlFreeDoc(doc);
    LOG(LOG_INFO, "video", "msg=\"media node resynchronised\" node=%s rooms=%zu members=%zu",
        media_link_conf(l)->id, v->nodes[node].rooms, v->nodes[node].members);
}

static void on_up(void *ctx, struct media_link *l)
{
    struct video *v = ctx;
    media_link_api(l, "conference xml_list", on_xml_list, v);
}

/* The node is gone: its calls are over. Members get onOut, rooms "end" on their call pipes (so
 * pages close their calls even when their SIP socket lingers), and the rooms are forgotten so
 * that the next INSERT places them on a healthy node. */
static void on_down(void *ctx, struct media_link *l, const char *why)
{
    struct video *v = ctx;
    int node = media_link_index(l);
    size_t bucket = 0;
    struct hnode *n = hmap_iter(&v->rooms, &bucket, NULL);
    while (n) {
        struct hnode *next = hmap_iter(&v->rooms, &bucket, n);
        struct room *r = (struct room *)n;
        if (r->node_index == node) {
            while (r->members)
                member_del(v, r, r->members->id, "node-down");
            publish_call(v, r, "end", "{\"status\":\"node-down\"}");
            room_free(v, r);
        }
        n = next;
    }
    (void)why;
}

/* ---- setup ---------------------------------------------------------------------------------- */

struct video *video_new(uv_loop_t *loop, const struct config *cfg, struct state *st,
                        struct hub *hub, char *err, size_t errlen)
{
    struct video *v = xcalloc(1, sizeof *v);
    snprintf(v->pipesalt, sizeof v->pipesalt, "%s", cfg->sip_pipesalt);
    if (strlen(cfg->sip_call_secret) >= sizeof v->call_secret) {
        snprintf(err, errlen, "[sip] call_secret must be shorter than %zu bytes",
                 sizeof v->call_secret);
        xfree(v);
        return NULL;
    }
    snprintf(v->call_secret, sizeof v->call_secret, "%s", cfg->sip_call_secret);
    v->call_token_ttl = cfg->sip_call_token_ttl;
    v->st = st;
    v->hub = hub;
    hmap_init(&v->rooms);
    tenant_index_init(&v->rooms_by_dev);
    snprintf(v->domain, sizeof v->domain, "%s", cfg->sip_domain);
    v->n_nodes = cfg->sip_freeswitch.n;
    v->nodes = xcalloc(v->n_nodes ? v->n_nodes : 1, sizeof *v->nodes);
    for (size_t i = 0; i < v->n_nodes; i++) {
        if (media_node_parse(cfg->sip_freeswitch.items[i], &v->nodes[i].conf, err, errlen) != 0) {
            xfree(v->nodes);
            hmap_free(&v->rooms);
            tenant_index_free(&v->rooms_by_dev);
            xfree(v);
            return NULL;
        }
    }
    struct media_link_cbs cbs = {v, on_up, on_down, on_event};
    for (size_t i = 0; i < v->n_nodes; i++)
        v->nodes[i].link = media_link_new(loop, &v->nodes[i].conf, (int)i,
                                          (unsigned)cfg->sip_node_timeout_ms, &cbs);
    return v;
}

static void video_release(struct video *v);

void video_free(struct video *v)
{
    if (!v) return;
    for (size_t i = 0; i < v->n_nodes; i++)
        media_link_free(v->nodes[i].link);
    size_t bucket = 0;
    struct hnode *n = hmap_iter(&v->rooms, &bucket, NULL);
    while (n) {
        struct hnode *next = hmap_iter(&v->rooms, &bucket, n);
        struct room *r = (struct room *)n;
        while (r->members) {
            struct member *m = r->members;
            r->members = m->next;
            xfree(m);
        }
        xfree(r);
        n = next;
    }
    hmap_free(&v->rooms);
    tenant_index_free(&v->rooms_by_dev);
    v->closed = true;
    video_release(v);
}

/* The struct itself goes with the last invitation in flight (each ends at its next step). */
static void video_release(struct video *v)
{
    if (!v->closed || v->pending) return;
    xfree(v->nodes);
    xfree(v);
}

/* ---- invitations ---------------------------------------------------------------------------- */

static int node_by_id(const struct video *v, const char *id)
{
    for (size_t i = 0; i < v->n_nodes; i++)
        if (!strcmp(v->nodes[i].conf.id, id) || !strcmp(v->nodes[i].conf.server, id)) return (int)i;
    return -1;
}

/* An INSERT INTO conference in flight, through its steps: where the room was placed before (a
 * state read, only when that decides), the stored invitation, the sys_sipCall to the user
 * (delivered live or queued by the state). Each step may complete on a later loop turn, so the
 * job holds its own copy of the invitation and finds the room again by name after every wait. */
struct invite_job {
    struct video *v;
    int64_t dev;
    struct video_invitation inv; /* strings point into text */
    struct state_cb cb;          /* the caller's */
    int node;
    char stored_node[300]; /* the node of the room's stored invitations ("" = none) */
    char claimed[300];     /* the room's node by the state's word after a claim */
    char call_pipe[64];
    char text[]; /* name, message, profile, node, each NUL-terminated */
};

static int take_node(void *ctx, const struct value *cols, size_t n)
{
    struct invite_job *j = ctx;
    if (n >= 1 && cols[0].kind == VALUE_STR)
        snprintf(j->stored_node, sizeof j->stored_node, "%.*s", (int)cols[0].len, cols[0].s);
    return 1;
}

/* Where the room goes: the node asked for; the node it lives on; the node of its stored
 * invitations while that node is up (stored NULL: not read yet, returns -2 when it decides);
 * else the least loaded node that is up, *claim then set (other servers may be placing the
 * same room: the state decides who wins). -1 with err when none can take it. */
static int place(struct video *v, int64_t dev, const struct video_invitation *inv,
                 const char *stored, bool *claim, char *err, size_t errlen)
{
    *claim = false;
    size_t len = strlen(inv->name);
    if (inv->node && inv->node[0]) {
        int i = node_by_id(v, inv->node);
        if (i < 0) {
            snprintf(err, errlen, "Unknown media node `%s` (the [sip] freeswitch lines name them)",
                     inv->node);
            return -1;
        }
        struct room *r = room_find(v, dev, inv->name, len);
        if (r && r->n_members && r->node_index != i) {
            snprintf(err, errlen, "Room `%s` is live on media node %.200s", inv->name,
                     v->nodes[r->node_index].conf.id);
            return -1;
        }
        if (!media_link_is_up(v->nodes[i].link)) {
            snprintf(err, errlen, "Media node %.200s is down", v->nodes[i].conf.id);
            return -1;
        }
        return i;
    }
    struct room *r = room_find(v, dev, inv->name, len);
    if (r && media_link_is_up(v->nodes[r->node_index].link)) return r->node_index;
    if (!stored) return -2;
    int i = stored[0] ? node_by_id(v, stored) : -1;
    if (i >= 0 && media_link_is_up(v->nodes[i].link)) return i;
    int best = -1;
    for (size_t k = 0; k < v->n_nodes; k++) {
        if (!media_link_is_up(v->nodes[k].link)) continue;
        if (best < 0 ||
            v->nodes[k].members + v->nodes[k].rooms < v->nodes[best].members + v->nodes[best].rooms)
            best = (int)k;
    }
    if (best < 0) {
        snprintf(err, errlen, "No media node is reachable (%zu configured in [sip] freeswitch)",
                 v->n_nodes);
        return -1;
    }
    *claim = true;
    return best;
}

/* A random UUID (callKey) from the system's CSPRNG; false when it has none to give (then no
 * invitation is sent: a guessable key must never be one, security audit L10). */
static bool put_uuid(char *out)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) return false;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return true;
}

/* The end of the job: the caller hears 0 or -1 with err, once. */
static void invite_finish(struct invite_job *j, const char *err)
{
    struct video *v = j->v;
    struct state_cb cb = j->cb;
    xfree(j);
    v->pending--;
    cb.done(cb.ctx, err ? -1 : 0, err);
    video_release(v);
}

/* The step error of a state call, or of a Video API that stopped while it waited. */
static bool invite_failed(struct invite_job *j, int64_t result, const char *err)
{
    if (j->v->closed) {
        invite_finish(j, "The Video API is shutting down");
        return true;
    }
    if (result < 0) {
        char text[300];
        snprintf(text, sizeof text, "Storage error: %s", err ? err : "unknown");
        invite_finish(j, text);
        return true;
    }
    return false;
}

static void invite_sent(void *ctx, int64_t result, const char *err)
{
    struct invite_job *j = ctx;
    if (invite_failed(j, result, err)) return;
    LOG(LOG_INFO, "video",
        "msg=\"invitation\" dev_id=%" PRId64 " room=%s user_id=%" PRId64 " profile=%s node=%s%s",
        j->dev, j->inv.name, j->inv.user_id, j->inv.profile, j->v->nodes[j->node].conf.id,
        result > 0 ? " queued=1" : "");
    invite_finish(j, NULL);
}

/* sys_sipCall: the fields CppComet's cometVideoApi.js reads, `type` added and `conference` a
 * real boolean (a client that compares it with the string "true" is fixed by ours; one that
 * tests its truth still works). */
static void invite_stored(void *ctx, int64_t result, const char *err)
{
    struct invite_job *j = ctx;
    if (invite_failed(j, result, err)) return;
    struct video *v = j->v;
    const struct video_invitation *inv = &j->inv;
    const struct node *n = &v->nodes[j->node];
    char key[37], sip_number[128];
    if (!put_uuid(key)) {
        invite_finish(j, "no random bytes for the callKey (RAND_bytes failed)");
        return;
    }
    snprintf(sip_number, sizeof sip_number, "%" PRId64 "*%s*%s", j->dev, inv->name, inv->profile);
    bool audio = strcmp(inv->profile, "audio") == 0;
    struct buf b;
    buf_init(&b);
    env_begin(&b);
    env_str(&b, "message", inv->message, inv->message_len);
    buf_append(&b, ",\"sys\":", 7);
    env_begin(&b);
    env_bool(&b, "conference", true);
    env_cstr(&b, "type", audio ? "audio" : "video");
    env_cstr(&b, "serverName", n->conf.ws_host);
    env_int(&b, "serverPort", n->conf.ws_port);
    env_cstr(&b, "serverProto", n->conf.ws_proto);
    env_cstr(&b, "callKey", key);
    if (v->call_secret[0]) { /* the invitation the node checks before this user joins (audit C1) */
        char token[CALL_TOKEN_MAX];
        if (call_token_make(v->call_secret, strlen(v->call_secret), j->dev, inv->name,
                            strlen(inv->name), inv->user_id, now_s() + v->call_token_ttl, token))
            env_cstr(&b, "callToken", token);
    }
    env_cstr(&b, "callPipe", j->call_pipe);
    env_cstr(&b, "sipNumber", sip_number);
    env_int(&b, "caller_id", inv->caller_id);
    env_int(&b, "user_id", inv->user_id);
    env_cstr(&b, "mode", inv->profile);
    env_cstr(&b, "conference_name", inv->name);
    env_int(&b, "stream", inv->stream);
    env_cstr(&b, "node", n->conf.id);
    env_end(&b);
    env_end(&b);
    struct state_message m = {.dev_id = j->dev,
                              .user_id = inv->user_id,
                              .event = "sys_sipCall",
                              .event_len = 11,
                              .data = (const char *)buf_head(&b),
                              .data_len = buf_unread(&b),
                              .time = now_s(),
                              .call_room = inv->name,
                              .call_room_len = strlen(inv->name)};
    struct state_cb cb = {NULL, invite_sent, j};
    v->st->ops->user_message(v->st, &m, &cb);
    buf_free(&b);
}

/* The room is placed on j->node: the room's record follows, then the stored invitation. */
static void invite_store(struct invite_job *j)
{
    struct video *v = j->v;
    const struct video_invitation *inv = &j->inv;
    size_t len = strlen(inv->name);
    int node = j->node;
    struct room *r = room_find(v, j->dev, inv->name, len);
    if (r && r->node_index != node) {
        /* the room had no live members on its old node (place() checked): move it */
        v->nodes[r->node_index].rooms--;
        r->node_index = node;
        v->nodes[node].rooms++;
        r->call_pipe[0] = '\0';
    }
    if (!r) r = room_get(v, j->dev, inv->name, len, node);
    if (!r->n_members || !r->call_pipe[0])
        snprintf(r->profile, sizeof r->profile, "%s", inv->profile);
    if (!r->call_pipe[0]) call_pipe(v, r, &v->nodes[node], r->call_pipe, sizeof r->call_pipe);
    snprintf(j->call_pipe, sizeof j->call_pipe, "%s", r->call_pipe);
    const struct node *n = &v->nodes[node];
    char stream[32];
    snprintf(stream, sizeof stream, "%" PRId64, inv->stream);
    struct state_invitation si = {inv->name,
                                  inv->user_id,
                                  inv->caller_id,
                                  inv->message,
                                  inv->message_len,
                                  inv->profile,
                                  n->conf.stream[0] ? n->conf.stream : stream,
                                  n->conf.id,
                                  now_s()};
    struct state_cb cb = {NULL, invite_stored, j};
    v->st->ops->conf_put(v->st, j->dev, &si, &cb);
}

static int take_claim(void *ctx, const struct value *cols, size_t n)
{
    struct invite_job *j = ctx;
    if (n >= 1 && cols[0].kind == VALUE_STR)
        snprintf(j->claimed, sizeof j->claimed, "%.*s", (int)cols[0].len, cols[0].s);
    return 1;
}

/* The state's word on the room's node: another server's placement stands when that node is up
 * here too; else this one's. */
static void invite_claimed(void *ctx, int64_t result, const char *err)
{
    struct invite_job *j = ctx;
    if (invite_failed(j, result, err)) return;
    int i = j->claimed[0] ? node_by_id(j->v, j->claimed) : -1;
    if (i >= 0 && i != j->node && media_link_is_up(j->v->nodes[i].link)) {
        struct room *r = room_find(j->v, j->dev, j->inv.name, strlen(j->inv.name));
        if (!r || !r->n_members || r->node_index == i) j->node = i;
    }
    invite_store(j);
}

static void invite_claim(struct invite_job *j)
{
    struct video *v = j->v;
    struct state_cb cb = {take_claim, invite_claimed, j};
    v->st->ops->conf_claim(v->st, j->dev, j->inv.name, strlen(j->inv.name),
                           v->nodes[j->node].conf.id, j->stored_node, &cb);
}

static void invite_placed(void *ctx, int64_t result, const char *err)
{
    struct invite_job *j = ctx;
    if (invite_failed(j, result, err)) return;
    char text[300];
    bool claim;
    j->node = place(j->v, j->dev, &j->inv, j->stored_node, &claim, text, sizeof text);
    if (j->node < 0) {
        invite_finish(j, text);
        return;
    }
    if (claim)
        invite_claim(j);
    else
        invite_store(j);
}

static char *copy_text(char *p, const char *s, size_t len)
{
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    return p + len + 1;
}

void video_invite(struct video *v, int64_t dev, const struct video_invitation *inv,
                  const struct state_cb *cb)
{
    char err[300];
    if (dev > XML_CURL_MAX_DEV_ID) { /* audit M7: its SIP names would be another tenant's */
        snprintf(err, sizeof err,
                 "The Video API serves dev_id 0..%d (SIP user names carry six digits of it)",
                 XML_CURL_MAX_DEV_ID);
        cb->done(cb->ctx, -1, err);
        return;
    }
    if (v->n_nodes == 0) {
        snprintf(err, sizeof err,
                 "The Video API has no media node: add a `[sip] freeswitch = "
                 "[]Server=..,Port=..,Pwd=..,WSport=..` line to the configuration");
        cb->done(cb->ctx, -1, err);
        return;
    }
    size_t name_len = strlen(inv->name), profile_len = strlen(inv->profile);
    size_t node_len = inv->node ? strlen(inv->node) : 0;
    struct invite_job *j =
        xcalloc(1, sizeof *j + name_len + inv->message_len + profile_len + node_len + 4);
    j->v = v;
    j->dev = dev;
    j->inv = *inv;
    j->cb = *cb;
    char *p = j->text;
    j->inv.name = p;
    p = copy_text(p, inv->name, name_len);
    j->inv.message = p;
    p = copy_text(p, inv->message, inv->message_len);
    j->inv.profile = p;
    p = copy_text(p, inv->profile, profile_len);
    j->inv.node = p;
    copy_text(p, inv->node ? inv->node : "", node_len);
    v->pending++;
    bool claim;
    j->node = place(v, dev, &j->inv, NULL, &claim, err, sizeof err);
    if (j->node == -1) {
        invite_finish(j, err);
    } else if (j->node == -2) {
        struct state_cb read = {take_node, invite_placed, j};
        v->st->ops->conf_node(v->st, dev, j->inv.name, name_len, &read);
    } else {
        invite_store(j);
    }
}

/* ---- control -------------------------------------------------------------------------------- */

static void on_control_answer(void *ctx, struct media_link *l, bool ok, const char *body,
                              size_t len)
{
    (void)ctx;
    if (ok && body && len >= 4 && memcmp(body, "-ERR", 4) == 0)
        LOG(LOG_WARN, "video", "msg=\"media node refused a command\" node=%s answer=\"%.*s\"",
            media_link_conf(l)->id, (int)(len > 200 ? 200 : len), body);
}

static int room_command(struct video *v, struct room *r, const char *fmt_args, char *err,
                        size_t errlen)
{
    char conf[256], line[512];
    conf_name(v, r, conf, sizeof conf);
    snprintf(line, sizeof line, "conference %s %s", conf, fmt_args);
    if (media_link_api(v->nodes[r->node_index].link, line, on_control_answer, v) != 0) {
        snprintf(err, errlen, "Media node %s is down", v->nodes[r->node_index].conf.id);
        return -1;
    }
    return 0;
}

/* A user's key was revoked (security audit L9): every media node forgets its cached password,
 * drops its registrations and hangs up its calls, with FreeSWITCH's own commands (so a real
 * FreeSWITCH does the same). A node that is down cannot be told: it keeps the registrations
 * until they expire, which is logged. */
void video_revoke_user(struct video *v, int64_t dev_id, int64_t user_id)
{
    char user[32];
    if (!v || !v->n_nodes || !xml_curl_user_name(dev_id, user_id, user, sizeof user)) return;
    for (size_t i = 0; i < v->n_nodes; i++) {
        struct media_link *l = v->nodes[i].link;
        char cache[256], regs[256], calls[256];
        snprintf(cache, sizeof cache, "xml_flush_cache id %s %s", user, v->domain);
        snprintf(regs, sizeof regs, "sofia profile internal flush_inbound_reg %s@%s reboot", user,
                 v->domain);
        snprintf(calls, sizeof calls, "hupall NORMAL_CLEARING sip_auth_username %s", user);
        if (media_link_api(l, cache, on_control_answer, v) != 0 ||
            media_link_api(l, regs, on_control_answer, v) != 0 ||
            media_link_api(l, calls, on_control_answer, v) != 0)
            LOG_RATELIMITED(LOG_WARN, "video",
                            "msg=\"media node down: a revoked user's SIP registrations stay until "
                            "they expire\" node=%s dev_id=%" PRId64 " user_id=%" PRId64,
                            v->nodes[i].conf.id, dev_id, user_id);
    }
}

/* A DELETE FROM conference in flight: the user's queued invitations, then the stored rows. It
 * needs only the state once the kicks are sent, so it outlives the Video API safely. */
struct remove_job {
    struct state *st;
    int64_t dev, user_id;
    struct state_cb cb; /* the caller's */
    size_t len;
    char name[];
};

static void remove_done(void *ctx, int64_t result, const char *err)
{
    struct remove_job *j = ctx;
    struct state_cb cb = j->cb;
    xfree(j);
    cb.done(cb.ctx, result, err);
}

static void remove_unqueued(void *ctx, int64_t result, const char *err)
{
    struct remove_job *j = ctx;
    if (result < 0) {
        remove_done(j, result, err);
        return;
    }
    struct state_cb cb = {NULL, remove_done, j};
    j->st->ops->conf_delete(j->st, j->dev, j->name, j->len, j->user_id, &cb);
}

void video_remove(struct video *v, int64_t dev, const char *name, size_t len, int64_t user_id,
                  const struct state_cb *cb)
{
    struct room *r = room_find(v, dev, name, len);
    char err[160], args[64];
    if (r && r->n_members) {
        if (user_id == 0) {
            room_command(v, r, "kick all", err, sizeof err);
        } else {
            for (struct member *m = r->members; m; m = m->next) {
                if (m->user_id != user_id) continue;
                snprintf(args, sizeof args, "kick %u", m->id);
                room_command(v, r, args, err, sizeof err);
            }
        }
    }
    struct remove_job *j = xcalloc(1, sizeof *j + len + 1);
    j->st = v->st;
    j->dev = dev;
    j->user_id = user_id;
    j->cb = *cb;
    j->len = len;
    memcpy(j->name, name, len);
    /* an invitation still queued for an offline user must not ring after the room is gone */
    struct state_cb next = {NULL, remove_unqueued, j};
    v->st->ops->queue_delete_call(v->st, dev, name, len, user_id, &next);
}

int video_member_set(struct video *v, int64_t dev, const char *name, size_t len, int64_t member_id,
                     const char *column, struct value value, char *err, size_t errlen)
{
    struct room *r = room_find(v, dev, name, len);
    if (!r || !r->n_members) {
        snprintf(err, errlen, "Room `%.*s` has no members now", (int)len, name);
        return -1;
    }
    char args[96];
    if (!strcmp(column, "layout")) {
        if (value.kind != VALUE_STR || !video_room_name_ok(value.s, value.len)) {
            snprintf(err, errlen,
                     "The layout must be a layout name (A-Za-z0-9_-, e.g. grid or "
                     "floor)");
            return -1;
        }
        snprintf(args, sizeof args, "vid-layout %.*s", (int)value.len, value.s);
        if (room_command(v, r, args, err, errlen) != 0) return -1;
        snprintf(r->layout, sizeof r->layout, "%.*s", (int)value.len, value.s);
        return 0;
    }
    int64_t on;
    if (value.kind == VALUE_INT) {
        on = value.i;
    } else if (value.kind == VALUE_STR && value.len == 1 &&
               (value.s[0] == '0' || value.s[0] == '1')) {
        on = value.s[0] - '0';
    } else {
        on = -1;
    }
    if (on != 0 && on != 1) {
        snprintf(err, errlen, "`%s` takes 0 or 1", column);
        return -1;
    }
    const char *verb;
    if (!strcmp(column, "mute"))
        verb = on ? "mute" : "unmute";
    else if (!strcmp(column, "vmute"))
        verb = on ? "vmute" : "unvmute";
    else if (!strcmp(column, "deaf"))
        verb = on ? "deaf" : "undeaf";
    else {
        snprintf(err, errlen,
                 "Column `%s` of conference_members cannot be updated (mute, vmute, "
                 "deaf, layout can)",
                 column);
        return -1;
    }
    struct member *m = member_find(r, (uint32_t)member_id, NULL);
    if (!m) {
        snprintf(err, errlen, "Member %" PRId64 " is not in room `%.*s`", member_id, (int)len,
                 name);
        return -1;
    }
    snprintf(args, sizeof args, "%s %u", verb, m->id);
    if (room_command(v, r, args, err, errlen) != 0) return -1;
    /* the node's event confirms it; set it now so that a SELECT right after shows it */
    if (!strcmp(column, "mute"))
        m->mute = on;
    else if (!strcmp(column, "vmute"))
        m->vmute = on;
    else
        m->deaf = on;
    return 0;
}

/* ---- conference_members --------------------------------------------------------------------- */

static int room_rows(struct video *v, const struct room *r, video_row_fn fn, void *ctx)
{
    int64_t now = now_s();
    const char *layout = r->layout[0] ? r->layout : "grid";
    for (const struct member *m = r->members; m; m = m->next) {
        struct value row[VIDEO_MEMBER_COLS] = {
            value_str(r->name, strlen(r->name)),
            value_int(m->user_id),
            value_int(now - m->join_time),
            m->last_talking ? value_int(now - m->last_talking) : value_null(),
            value_int(m->id),
            value_int(m->talking),
            value_int(m->mute),
            value_int(m->vmute),
            value_int(m->deaf),
            value_int(m->video),
            value_str(v->nodes[r->node_index].conf.id, strlen(v->nodes[r->node_index].conf.id)),
            value_str(layout, strlen(layout)),
        };
        if (fn(ctx, row)) return 1;
    }
    return 0;
}

int video_members(struct video *v, int64_t dev, const char *name, size_t len, video_row_fn fn,
                  void *ctx)
{
    if (name) {
        struct room *r = room_find(v, dev, name, len);
        return r ? room_rows(v, r, fn, ctx) : 0;
    }
    for (struct tenant_link *l = tenant_index_first(&v->rooms_by_dev, dev); l; l = l->next)
        if (room_rows(v, TENANT_ENTRY(l, struct room, by_dev), fn, ctx)) return 1;
    return 0;
}
