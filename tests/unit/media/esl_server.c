/* Unit tests for src/media/esl_server.c: a real esl_server on loopback (port 0), driven by raw
 * client sockets while this thread iterates the default GLib main context, against a conference
 * registry with no media engine (conference.c answers joins by echo). The bytes are compared with
 * FreeSWITCH 1.10.12's (tests/fixtures/freeswitch/esl-01..07, read from the repo root) where
 * they cannot vary, and the event layout with esl-05's header order. */
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "media/conference.h"
#include "media/esl_server.h"
#include "media/media_config.h"
#include "proto/esl.h"

#define CAPTURES "tests/fixtures/freeswitch/"

#define REQUIRE(x)                                                                                 \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            test_fail(__FILE__, __LINE__, "REQUIRE(%s)", #x);                                      \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static struct conf_profile audio_profile = {"default", false, 0, 0, 0, 0, 32, 10, "grid"};

struct fixture {
    struct media_config cfg;
    struct conf_registry *reg;
    struct esl_server *srv;
};

static bool fixture_start(struct fixture *f, int64_t max_queue)
{
    memset(f, 0, sizeof *f);
    f->cfg.esl_ip = "127.0.0.1";
    f->cfg.esl_port = 0;
    f->cfg.esl_password = "ClueCon";
    f->cfg.esl_max_queue = max_queue;
    f->cfg.esl_max_connections = 1024;
    f->cfg.esl_max_unauthenticated_per_ip = 32;
    f->cfg.esl_auth_timeout = 10;
    f->cfg.sip_domain = "example.com";
    f->cfg.ice_ip = "127.0.0.1";
    f->cfg.sip_ip = "127.0.0.1";
    f->cfg.max_members_total = 100;
    struct conf_limits lim = {10, 100, 0, 0, 0};
    f->reg = conf_registry_new(NULL, &lim);
    GError *err = NULL;
    f->srv = esl_server_start(&f->cfg, f->reg, &err);
    if (!f->srv) {
        test_fail(__FILE__, __LINE__, "esl_server_start: %s", err ? err->message : "?");
        g_clear_error(&err);
        conf_registry_free(f->reg);
        return false;
    }
    return true;
}

static void pump(void)
{
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}

static void fixture_stop(struct fixture *f)
{
    pump();
    esl_server_stop(f->srv);
    conf_registry_free(f->reg);
    pump();
}

/* ---- a raw ESL client ------------------------------------------------------------------------ */

struct client {
    int fd;
    struct buf in;
    bool eof;
};

static bool client_open(struct client *c, uint16_t port)
{
    memset(c, 0, sizeof *c);
    buf_init(&c->in);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return c->fd >= 0 && connect(c->fd, (struct sockaddr *)&a, sizeof a) == 0;
}

static void client_close(struct client *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    buf_free(&c->in);
}

static void client_send(struct client *c, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* Serves the loop and reads what the server sent, for up to ms or until want(c) holds. */
static bool client_wait(struct client *c, int ms, bool (*want)(struct client *))
{
    gint64 deadline = g_get_monotonic_time() + (gint64)ms * 1000;
    while (!want(c)) {
        if (g_get_monotonic_time() > deadline || c->eof) return want(c);
        pump();
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, 2) > 0) {
            char tmp[65536];
            ssize_t n = recv(c->fd, tmp, sizeof tmp, MSG_DONTWAIT);
            if (n > 0)
                buf_append(&c->in, tmp, (size_t)n);
            else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                c->eof = true;
        }
    }
    return true;
}

static bool has_message(struct client *c)
{
    struct esl_message m;
    const char *err;
    if (!buf_unread(&c->in)) return false; /* esl_parse_message wants a non-NULL buffer */
    return esl_parse_message(buf_head(&c->in), buf_unread(&c->in), 0, &m, &err) == ESL_OK;
}

static bool is_eof(struct client *c)
{
    return c->eof;
}

/* The next message, copied: its raw bytes (transfer full, NUL-terminated) and its parse. */
struct msg {
    char *raw;
    size_t len;
    enum esl_msg_type type;
    char *reply_text; /* command/reply */
    char *body;       /* api/response, events: the whole body */
    size_t body_len;
};

static void msg_free(struct msg *m)
{
    xfree(m->raw);
    xfree(m->reply_text);
    xfree(m->body);
    memset(m, 0, sizeof *m);
}

static bool client_next(struct client *c, struct msg *out)
{
    memset(out, 0, sizeof *out);
    if (!client_wait(c, 5000, has_message)) return false;
    struct esl_message m;
    const char *err;
    esl_parse_message(buf_head(&c->in), buf_unread(&c->in), 0, &m, &err);
    out->raw = xstrndup((const char *)buf_head(&c->in), m.consumed);
    out->len = m.consumed;
    out->type = m.type;
    if (m.reply_text.ptr) out->reply_text = xstrndup(m.reply_text.ptr, m.reply_text.len);
    if (m.body) {
        out->body = xstrndup((const char *)m.body, m.body_len);
        out->body_len = m.body_len;
    }
    buf_consume(&c->in, m.consumed);
    return true;
}

/* Sends a command and returns the reply's Reply-Text or api body (transfer full). */
static char *roundtrip(struct client *c, const char *command)
{
    client_send(c, command);
    struct msg m;
    if (!client_next(c, &m)) return xstrdup("(no reply)");
    char *r = m.type == ESL_MSG_API_RESPONSE ? xstrdup(m.body ? m.body : "")
                                             : xstrdup(m.reply_text ? m.reply_text : "(other)");
    msg_free(&m);
    return r;
}

static bool client_login(struct client *c, uint16_t port)
{
    if (!client_open(c, port)) return false;
    struct msg m;
    if (!client_next(c, &m)) return false;
    bool ok = m.type == ESL_MSG_AUTH_REQUEST;
    msg_free(&m);
    char *r = roundtrip(c, "auth ClueCon\n\n");
    ok = ok && !strcmp(r, "+OK accepted");
    xfree(r);
    return ok;
}

static uint8_t *read_capture(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, CAPTURES "%s", name);
    gchar *data = NULL;
    gsize n = 0;
    if (!g_file_get_contents(path, &data, &n, NULL)) {
        test_fail(__FILE__, __LINE__, "cannot read %s (run from the repo root)", path);
        return NULL;
    }
    uint8_t *copy = xmalloc(n + 1);
    memcpy(copy, data, n);
    copy[n] = 0;
    g_free(data);
    *len = n;
    return copy;
}

/* Sends a capture's whole client stream and checks that the server answers the capture's bytes. */
static void replay_exact(const char *name)
{
    struct fixture f;
    if (!fixture_start(&f, 100000)) return;
    char c2s_name[256], s2c_name[256];
    snprintf(c2s_name, sizeof c2s_name, "%s.c2s.raw", name);
    snprintf(s2c_name, sizeof s2c_name, "%s.s2c.raw", name);
    size_t c2s_len = 0, s2c_len = 0;
    uint8_t *c2s = read_capture(c2s_name, &c2s_len), *s2c = read_capture(s2c_name, &s2c_len);
    struct client c;
    c.fd = -1;
    buf_init(&c.in);
    REQUIRE(c2s && s2c);
    REQUIRE(client_open(&c, esl_server_port(f.srv)));
    client_wait(&c, 2000, has_message); /* the banner first, as the capture's client did */
    client_send(&c, (const char *)c2s);
    client_wait(&c, 5000, is_eof);
    CHECK(c.eof);
    CHECK_INT(buf_unread(&c.in), s2c_len);
    if (buf_unread(&c.in) == s2c_len) CHECK_MEM(buf_head(&c.in), s2c, s2c_len);
out:
    client_close(&c);
    xfree(c2s);
    xfree(s2c);
    fixture_stop(&f);
}

/* ---- tests ----------------------------------------------------------------------------------- */

TEST(esl_server_wrong_password_is_esl02_byte_for_byte)
{
    replay_exact("esl-02-auth-wrong-password");
}

TEST(esl_server_exit_before_auth_says_bye_and_closes)
{
    struct fixture f;
    if (!fixture_start(&f, 100000)) return;
    struct client c;
    REQUIRE(client_open(&c, esl_server_port(f.srv)));
    client_send(&c, "exit\n\n");
    client_wait(&c, 5000, is_eof);
    CHECK(c.eof);
    const char *want = "Content-Type: auth/request\n\n"
                       "Content-Type: command/reply\nReply-Text: +OK bye\n\n"
                       "Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"
                       "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";
    CHECK_INT(buf_unread(&c.in), strlen(want));
    if (buf_unread(&c.in) == strlen(want)) CHECK_MEM(buf_head(&c.in), want, strlen(want));
out:
    client_close(&c);
    fixture_stop(&f);
}

TEST(esl_server_commands_before_auth_are_not_found_and_auth_still_works)
{
    struct fixture f;
    if (!fixture_start(&f, 100000)) return;
    struct client c;
    struct msg m;
    REQUIRE(client_open(&c, esl_server_port(f.srv)));
    REQUIRE(client_next(&c, &m));
    msg_free(&m);
    char *r = roundtrip(&c, "api status\n\n");
    CHECK_STR(r, "-ERR command not found");
    xfree(r);
    r = roundtrip(&c, "auth ClueCon\n\n");
    CHECK_STR(r, "+OK accepted");
    xfree(r);
out:
    client_close(&c);
    fixture_stop(&f);
}

/* Security audit M3: a command other than auth does not stop the auth deadline (FreeSWITCH's
 * does, so `help` held a slot for ever). */
TEST(esl_server_auth_deadline_stands_after_other_commands)
{
    struct fixture f;
    if (!fixture_start(&f, 100000)) return;
    f.cfg.esl_auth_timeout = 1; /* read when a connection is accepted */
    struct client c, ok;
    struct msg m;
    REQUIRE(client_open(&c, esl_server_port(f.srv)));
    REQUIRE(client_login(&ok, esl_server_port(f.srv)));
    REQUIRE(client_next(&c, &m));
    msg_free(&m);
    char *r = roundtrip(&c, "help\n\n");
    CHECK_STR(r, "-ERR command not found");
    xfree(r);
    gint64 t0 = g_get_monotonic_time();
    client_wait(&c, 5000, is_eof);
    CHECK(c.eof);
    gint64 waited_ms = (g_get_monotonic_time() - t0) / 1000;
    CHECK(waited_ms < 3000);
    /* the authenticated one is not cut */
    r = roundtrip(&ok, "api status\n\n");
    CHECK(g_str_has_prefix(r, "UP "));
    xfree(r);
out:
    client_close(&c);
    client_close(&ok);
    fixture_stop(&f);
}

static bool is_rude_rejection(struct client *c)
{
    static const char want[] = "Content-Type: text/rude-rejection\nContent-Length: 24\n\n"
                               "Access Denied, go away.\n";
    return buf_unread(&c->in) >= sizeof want - 1 &&
           memcmp(buf_head(&c->in), want, sizeof want - 1) == 0;
}

/* [esl] max_unauthenticated_per_ip and max_connections: past them a connection gets FreeSWITCH's
 * rude-rejection and is closed; those already in are served; a slot frees on auth / close. */
TEST(esl_server_connection_caps_refuse_with_rude_rejection)
{
    struct fixture f;
    if (!fixture_start(&f, 100000)) return;
    f.cfg.esl_max_unauthenticated_per_ip = 2;
    f.cfg.esl_max_connections = 3;
    uint16_t port = esl_server_port(f.srv);
    struct client a, b, x, y, z;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    memset(&z, 0, sizeof z);
    x.fd = y.fd = z.fd = -1;
    struct msg m;
    REQUIRE(client_open(&a, port) && client_open(&b, port));
    REQUIRE(client_next(&a, &m));
    msg_free(&m);
    REQUIRE(client_next(&b, &m));
    msg_free(&m);
    /* a third unauthenticated one: refused */
    REQUIRE(client_open(&x, port));
    client_wait(&x, 5000, is_eof);
    CHECK(x.eof);
    CHECK(is_rude_rejection(&x));
    /* a authenticates: its slot among the unauthenticated frees */
    char *r = roundtrip(&a, "auth ClueCon\n\n");
    CHECK_STR(r, "+OK accepted");
    xfree(r);
    REQUIRE(client_login(&y, port)); /* 3 connections now: a, b, y */
    REQUIRE(client_open(&z, port));
    client_wait(&z, 5000, is_eof);
    CHECK(z.eof && is_rude_rejection(&z)); /* max_connections */
    r = roundtrip(&a, "api status\n\n");
    CHECK(g_str_has_prefix(r, "UP "));
    xfree(r);
    client_close(&b);
    client_close(&z);
    for (int i = 0; i < 50 && f.srv && esl_server_connections(f.srv) > 2; i++) {
        pump();
        g_usleep(2000);
    }
    REQUIRE(client_login(&z, port)); /* b's close freed a slot */
out:
    client_close(&a);
    client_close(&b);
    client_close(&x);
    client_close(&y);
    client_close(&z);
    fixture_stop(&f);
}

/* esl-03 with our status body: every other message byte for byte. */
TEST(esl_server_api_replies_match_esl03)
{
    struct fixture f;
    if (!fixture_start(&f, 100000)) return;
    struct client c;
    REQUIRE(client_login(&c, esl_server_port(f.srv)));
    char *r = roundtrip(&c, "api status\n\n");
    CHECK(g_str_has_prefix(r, "UP 0 years, 0 days, 0 hours, 0 minutes, 0 seconds, "));
    CHECK(strstr(r, "\nccomet-media (Version 0.0.0  64bit) is ready\n") != NULL);
    CHECK(strstr(r, "\n0 session(s) since startup\n0 session(s) - peak 0, last 5min 0 \n"
                    "0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n100 session(s) "
                    "max\nmin idle cpu 0.00/") != NULL);
    CHECK(strstr(r, "\nCurrent Stack Size/Max ") != NULL);
    xfree(r);
    struct msg m;
    static const struct {
        const char *command, *raw;
    } exact[] = {
        {"api conference list\n\n",
         "Content-Type: api/response\nContent-Length: 27\n\n+OK No active conferences.\n"},
        {"api conference nosuchroom list\n\n",
         "Content-Type: api/response\nContent-Length: 37\n\n-ERR Conference nosuchroom not "
         "found\n"},
        {"api nosuchcommand\n\n",
         "Content-Type: api/response\nContent-Length: 38\n\n-ERR nosuchcommand Command not "
         "found!\n"},
        {"nosuchcommand\n\n",
         "Content-Type: command/reply\nReply-Text: -ERR command not found\n\n"},
        {"event plain CUSTOM conference::maintenance\n\n",
         "Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n"},
        {"event json CUSTOM conference::maintenance\n\n",
         "Content-Type: command/reply\nReply-Text: +OK event listener enabled json\n\n"},
        {"event plain NO_SUCH_EVENT\n\n",
         "Content-Type: command/reply\nReply-Text: -ERR no keywords supplied\n\n"},
        {"noevents\n\n",
         "Content-Type: command/reply\nReply-Text: +OK no longer listening for events\n\n"},
        {"noevents\n\n",
         "Content-Type: command/reply\nReply-Text: -ERR not listening for events\n\n"},
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
        client_send(&c, exact[i].command);
        REQUIRE(client_next(&c, &m));
        CHECK_STR(m.raw, exact[i].raw);
        msg_free(&m);
    }
out:
    client_close(&c);
    fixture_stop(&f);
}

/* esl-04: the bgapi reply, then BACKGROUND_JOB with FreeSWITCH's headers; exit. */
TEST(esl_server_bgapi_background_job_like_esl04)
{
    struct fixture f;
    if (!fixture_start(&f, 100000)) return;
    struct client c;
    struct msg m;
    struct arena a;
    arena_init(&a);
    REQUIRE(client_login(&c, esl_server_port(f.srv)));
    char *r = roundtrip(&c, "event plain BACKGROUND_JOB\n\n");
    CHECK_STR(r, "+OK event listener enabled plain");
    xfree(r);
    client_send(&c, "bgapi conference list\nJob-UUID: 11111111-2222-3333-4444-555555555555\n\n");
    REQUIRE(client_next(&c, &m));
    CHECK_STR(m.raw, "Content-Type: command/reply\n"
                     "Reply-Text: +OK Job-UUID: 11111111-2222-3333-4444-555555555555\n"
                     "Job-UUID: 11111111-2222-3333-4444-555555555555\n\n");
    msg_free(&m);
    REQUIRE(client_next(&c, &m));
    CHECK_INT(m.type, ESL_MSG_EVENT_PLAIN);
    struct esl_event ev;
    const char *err;
    REQUIRE(esl_event_parse_plain((const uint8_t *)m.body, m.body_len, &a, &ev, &err) == ESL_OK);
    static const char *const names[] = {"Event-Name",
                                        "Core-UUID",
                                        "FreeSWITCH-Hostname",
                                        "FreeSWITCH-Switchname",
                                        "FreeSWITCH-IPv4",
                                        "FreeSWITCH-IPv6",
                                        "Event-Date-Local",
                                        "Event-Date-GMT",
                                        "Event-Date-Timestamp",
                                        "Event-Calling-File",
                                        "Event-Calling-Function",
                                        "Event-Calling-Line-Number",
                                        "Event-Sequence",
                                        "Job-UUID",
                                        "Job-Command",
                                        "Job-Command-Arg"};
    CHECK_INT(ev.n_headers, sizeof names / sizeof names[0]);
    for (size_t i = 0; i < ev.n_headers && i < sizeof names / sizeof names[0]; i++)
        CHECK_STR(ev.headers[i].name, names[i]);
    CHECK_STR(esl_event_get(&ev, "Event-Name", NULL), "BACKGROUND_JOB");
    CHECK_STR(esl_event_get(&ev, "Event-Calling-Function", NULL), "api_exec");
    CHECK_STR(esl_event_get(&ev, "Job-Command", NULL), "conference");
    CHECK_STR(esl_event_get(&ev, "Job-Command-Arg", NULL), "list");
    CHECK_STR(ev.body, "+OK No active conferences.\n");
    msg_free(&m);
    /* json, and no Job-Command-Arg without an argument (as esl-04's "bgapi status") */
    r = roundtrip(&c, "noevents\n\n");
    xfree(r);
    r = roundtrip(&c, "event json BACKGROUND_JOB\n\n");
    CHECK_STR(r, "+OK event listener enabled json");
    xfree(r);
    client_send(&c, "bgapi status\n\n");
    REQUIRE(client_next(&c, &m));
    CHECK(m.reply_text && g_str_has_prefix(m.reply_text, "+OK Job-UUID: "));
    msg_free(&m);
    REQUIRE(client_next(&c, &m));
    CHECK_INT(m.type, ESL_MSG_EVENT_JSON);
    json_t *j = json_loadb(m.body, m.body_len, 0, NULL);
    REQUIRE(j);
    CHECK_STR(json_string_value(json_object_get(j, "Job-Command")), "status");
    CHECK(json_object_get(j, "Job-Command-Arg") == NULL);
    CHECK(g_str_has_prefix(json_string_value(json_object_get(j, "_body")), "UP 0 years"));
    json_decref(j);
    msg_free(&m);
    client_send(&c, "exit\n\n");
    client_wait(&c, 5000, is_eof);
    CHECK(c.eof);
    {
        const char *tail = "Content-Type: command/reply\nReply-Text: +OK bye\n\n"
                           "Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"
                           "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";
        CHECK_INT(buf_unread(&c.in), strlen(tail));
        if (buf_unread(&c.in) == strlen(tail)) CHECK_MEM(buf_head(&c.in), tail, strlen(tail));
    }
out:
    arena_free(&a);
    client_close(&c);
    fixture_stop(&f);
}

/* ---- conference events and lists ------------------------------------------------------------- */

static void joined(struct conf_member *m, const char *answer, int status, const char *reason,
                   void *ud)
{
    (void)m;
    (void)answer;
    (void)status;
    (void)reason;
    (void)ud;
}

static struct conf_member *join(struct fixture *f, const char *name, const char *number)
{
    struct conf_member_info w;
    memset(&w, 0, sizeof w);
    g_strlcpy(w.caller_id_name, name, sizeof w.caller_id_name);
    g_strlcpy(w.caller_id_number, number, sizeof w.caller_id_number);
    g_strlcpy(w.user, number, sizeof w.user);
    return conf_join(f->reg, "room1", &audio_profile, &w, "v=0", joined, NULL);
}

/* The next event of a plain listener, decoded into a (transfer none, in a) */
static bool next_event(struct client *c, struct arena *a, struct esl_event *ev)
{
    struct msg m;
    if (!client_next(c, &m)) return false;
    const char *err;
    bool ok = m.type == ESL_MSG_EVENT_PLAIN &&
              esl_event_parse_plain((const uint8_t *)m.body, m.body_len, a, ev, &err) == ESL_OK;
    msg_free(&m);
    return ok;
}

static const char *hv(const struct esl_event *ev, const char *name)
{
    const char *v = esl_event_get(ev, name, NULL);
    return v ? v : "(absent)";
}

/* esl-05's add-member, header by header, with this node's channel: Caller-Username present
 * (a SIP user), Callee-ID absent (FreeSWITCH leaves empty fields out). */
static const char *const member_event_names[] = {"Event-Subclass",
                                                 "Event-Name",
                                                 "Core-UUID",
                                                 "FreeSWITCH-Hostname",
                                                 "FreeSWITCH-Switchname",
                                                 "FreeSWITCH-IPv4",
                                                 "FreeSWITCH-IPv6",
                                                 "Event-Date-Local",
                                                 "Event-Date-GMT",
                                                 "Event-Date-Timestamp",
                                                 "Event-Calling-File",
                                                 "Event-Calling-Function",
                                                 "Event-Calling-Line-Number",
                                                 "Event-Sequence",
                                                 "Conference-Name",
                                                 "Conference-Domain",
                                                 "Conference-Size",
                                                 "Conference-Ghosts",
                                                 "Conference-Profile-Name",
                                                 "Conference-Unique-ID",
                                                 "Floor",
                                                 "Channel-State",
                                                 "Channel-Call-State",
                                                 "Channel-State-Number",
                                                 "Channel-Name",
                                                 "Unique-ID",
                                                 "Call-Direction",
                                                 "Presence-Call-Direction",
                                                 "Channel-HIT-Dialplan",
                                                 "Channel-Call-UUID",
                                                 "Answer-State",
                                                 "Channel-Read-Codec-Name",
                                                 "Channel-Read-Codec-Rate",
                                                 "Channel-Read-Codec-Bit-Rate",
                                                 "Channel-Write-Codec-Name",
                                                 "Channel-Write-Codec-Rate",
                                                 "Channel-Write-Codec-Bit-Rate",
                                                 "Caller-Direction",
                                                 "Caller-Logical-Direction",
                                                 "Caller-Username",
                                                 "Caller-Dialplan",
                                                 "Caller-Caller-ID-Name",
                                                 "Caller-Caller-ID-Number",
                                                 "Caller-Orig-Caller-ID-Name",
                                                 "Caller-Orig-Caller-ID-Number",
                                                 "Caller-ANI",
                                                 "Caller-Destination-Number",
                                                 "Caller-Unique-ID",
                                                 "Caller-Source",
                                                 "Caller-Context",
                                                 "Caller-Channel-Name",
                                                 "Caller-Profile-Index",
                                                 "Caller-Profile-Created-Time",
                                                 "Caller-Channel-Created-Time",
                                                 "Caller-Channel-Answered-Time",
                                                 "Caller-Channel-Progress-Time",
                                                 "Caller-Channel-Progress-Media-Time",
                                                 "Caller-Channel-Hangup-Time",
                                                 "Caller-Channel-Transfer-Time",
                                                 "Caller-Channel-Resurrect-Time",
                                                 "Caller-Channel-Bridged-Time",
                                                 "Caller-Channel-Last-Hold",
                                                 "Caller-Channel-Hold-Accum",
                                                 "Caller-Screen-Bit",
                                                 "Caller-Privacy-Hide-Name",
                                                 "Caller-Privacy-Hide-Number",
                                                 "Video",
                                                 "Hear",
                                                 "See",
                                                 "Speak",
                                                 "Talking",
                                                 "Mute-Detect",
                                                 "Hold",
                                                 "Member-ID",
                                                 "Member-Type",
                                                 "Member-Ghost",
                                                 "Energy-Level",
                                                 "Current-Energy",
                                                 "Action"};

static void check_names(const struct esl_event *ev, const char *const *names, size_t n)
{
    CHECK_INT(ev->n_headers, n);
    for (size_t i = 0; i < ev->n_headers && i < n; i++)
        CHECK_STR(ev->headers[i].name, names[i]);
}

static char *normalize_times(const char *s)
{
    GRegex *re = g_regex_new("(run_time=\"|<join_time>|<last_talking>|\"run_time\":\\t|"
                             "\"join_time\":\\t|\"last_talking\":\\t)[0-9]+",
                             0, 0, NULL);
    char *r = g_regex_replace(re, s, -1, 0, "\\1T", 0, NULL);
    g_regex_unref(re);
    return r;
}

TEST(esl_server_conference_events_lists_and_control)
{
    struct fixture f;
    if (!fixture_start(&f, 100000)) return;
    struct client plain, json, ctl;
    plain.fd = json.fd = ctl.fd = -1;
    buf_init(&plain.in);
    buf_init(&json.in);
    buf_init(&ctl.in);
    struct arena a;
    arena_init(&a);
    struct esl_event ev;
    char *r = NULL;
    uint16_t port = esl_server_port(f.srv);
    REQUIRE(client_login(&plain, port) && client_login(&json, port) && client_login(&ctl, port));
    r = roundtrip(&plain, "event plain CUSTOM conference::maintenance\n\n");
    CHECK_STR(r, "+OK event listener enabled plain");
    xfree(r);
    r = roundtrip(&json, "event json CUSTOM conference::maintenance\n\n");
    CHECK_STR(r, "+OK event listener enabled json");
    xfree(r);

    struct conf_member *alice = join(&f, "Alice", "1001");
    struct conf_member *bob = join(&f, "Bob", "1002");
    REQUIRE(alice && bob);
    const char *room_uuid = conf_room_uuid(conf_room_find(f.reg, "room1"));

    /* conference-create: the conference block and Action, as esl-05 */
    REQUIRE(next_event(&plain, &a, &ev));
    static const char *const create_names[] = {"Event-Subclass",
                                               "Event-Name",
                                               "Core-UUID",
                                               "FreeSWITCH-Hostname",
                                               "FreeSWITCH-Switchname",
                                               "FreeSWITCH-IPv4",
                                               "FreeSWITCH-IPv6",
                                               "Event-Date-Local",
                                               "Event-Date-GMT",
                                               "Event-Date-Timestamp",
                                               "Event-Calling-File",
                                               "Event-Calling-Function",
                                               "Event-Calling-Line-Number",
                                               "Event-Sequence",
                                               "Conference-Name",
                                               "Conference-Domain",
                                               "Conference-Size",
                                               "Conference-Ghosts",
                                               "Conference-Profile-Name",
                                               "Conference-Unique-ID",
                                               "Action"};
    check_names(&ev, create_names, sizeof create_names / sizeof create_names[0]);
    CHECK_STR(hv(&ev, "Event-Subclass"), "conference::maintenance");
    CHECK_STR(hv(&ev, "Event-Name"), "CUSTOM");
    CHECK_STR(hv(&ev, "Event-Calling-File"), "mod_conference.c");
    CHECK_STR(hv(&ev, "Event-Calling-Function"), "conference_new");
    CHECK_STR(hv(&ev, "Conference-Name"), "room1");
    CHECK_STR(hv(&ev, "Conference-Domain"), "example.com");
    CHECK_STR(hv(&ev, "Conference-Size"), "0");
    CHECK_STR(hv(&ev, "Conference-Profile-Name"), "default");
    CHECK_STR(hv(&ev, "Conference-Unique-ID"), room_uuid);
    CHECK_STR(hv(&ev, "Action"), "conference-create");
    char core_uuid[64];
    g_strlcpy(core_uuid, hv(&ev, "Core-UUID"), sizeof core_uuid);
    long long seq = atoll(hv(&ev, "Event-Sequence"));

    REQUIRE(next_event(&plain, &a, &ev)); /* add-member Alice */
    check_names(&ev, member_event_names, sizeof member_event_names / sizeof member_event_names[0]);
    CHECK_STR(hv(&ev, "Core-UUID"), core_uuid);
    CHECK(atoll(hv(&ev, "Event-Sequence")) > seq);
    CHECK_STR(hv(&ev, "Event-Calling-Function"), "conference_member_add");
    CHECK_STR(hv(&ev, "Conference-Size"), "1");
    CHECK_STR(hv(&ev, "Member-ID"), "1");
    CHECK_STR(hv(&ev, "Member-Type"), "member");
    CHECK_STR(hv(&ev, "Caller-Caller-ID-Name"), "Alice");
    CHECK_STR(hv(&ev, "Caller-Caller-ID-Number"), "1001");
    CHECK_STR(hv(&ev, "Channel-Name"), "sofia/internal/1001@example.com");
    CHECK_STR(hv(&ev, "Unique-ID"), conf_member_info(alice)->uuid);
    CHECK_STR(hv(&ev, "Hear"), "true");
    CHECK_STR(hv(&ev, "Speak"), "true");
    CHECK_STR(hv(&ev, "Talking"), "false");
    CHECK_STR(hv(&ev, "Floor"), "false");
    CHECK_STR(hv(&ev, "Energy-Level"), "100");
    CHECK_STR(hv(&ev, "Current-Energy"), "0");
    CHECK_STR(hv(&ev, "Action"), "add-member");
    REQUIRE(next_event(&plain, &a, &ev)); /* add-member Bob */
    CHECK_STR(hv(&ev, "Member-ID"), "2");
    CHECK_STR(hv(&ev, "Conference-Size"), "2");

    /* Bob talks: start-talking, then floor-change with Old-ID none and Bob's data (esl-05) */
    conf_report_talking(bob, true, 42);
    REQUIRE(next_event(&plain, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "start-talking");
    CHECK_STR(hv(&ev, "Talking"), "true");
    CHECK_STR(hv(&ev, "Current-Energy"), "42");
    REQUIRE(next_event(&plain, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "floor-change");
    CHECK_STR(ev.headers[20].name, "Action");
    CHECK_STR(ev.headers[21].name, "Old-ID");
    CHECK_STR(ev.headers[21].value, "none");
    CHECK_STR(ev.headers[22].name, "Conference-Name"); /* the conference block again */
    CHECK_STR(ev.headers[ev.n_headers - 1].name, "New-ID");
    CHECK_STR(ev.headers[ev.n_headers - 1].value, "2");
    CHECK_STR(hv(&ev, "Floor"), "true");

    /* the lists, newest member first (esl-07) */
    char *want = NULL;
    r = roundtrip(&ctl, "api conference room1 list\n\n");
    want = g_strdup_printf("2;sofia/internal/1002@example.com;%s;Bob;1002;hear|speak|talking|floor;"
                           "0;0;100\n1;sofia/internal/1001@example.com;%s;Alice;1001;hear|speak;0;"
                           "0;100\n",
                           conf_member_info(bob)->uuid, conf_member_info(alice)->uuid);
    CHECK_STR(r, want);
    g_free(want);
    xfree(r);
    r = roundtrip(&ctl, "api conference list\n\n");
    want = g_strdup_printf(
        "+OK Conference room1 (2 members rate: 48000 flags: running|answered|enforce_min|dynamic|"
        "exit_sound|enter_sound|json_status)\n2;sofia/internal/1002@example.com;%s;Bob;1002;"
        "hear|speak|talking|floor;0;0;100\n1;sofia/internal/1001@example.com;%s;Alice;1001;"
        "hear|speak;0;0;100\n",
        conf_member_info(bob)->uuid, conf_member_info(alice)->uuid);
    CHECK_STR(r, want);
    g_free(want);
    xfree(r);
    r = roundtrip(&ctl, "api conference room1 count\n\n");
    CHECK_STR(r, "2\n");
    xfree(r);

    r = roundtrip(&ctl, "api conference room1 xml_list\n\n");
    {
        char *got = normalize_times(r);
        GString *w = g_string_new("<?xml version=\"1.0\"?>\n<conferences>\n");
        g_string_append_printf(
            w,
            "  <conference name=\"room1\" member-count=\"2\" ghost-count=\"0\" rate=\"48000\" "
            "uuid=\"%s\" running=\"true\" answered=\"true\" enforce_min=\"true\" dynamic=\"true\" "
            "exit_sound=\"true\" enter_sound=\"true\" run_time=\"T\">\n    "
            "<variables></variables>\n"
            "    <members>\n",
            room_uuid);
        const struct conf_member_info *who[2] = {conf_member_info(bob), conf_member_info(alice)};
        for (int i = 0; i < 2; i++) {
            bool b = i == 0;
            g_string_append_printf(
                w,
                "      <member type=\"caller\">\n        <id>%u</id>\n        <flags>\n"
                "          <can_hear>true</can_hear>\n          <can_see>true</can_see>\n"
                "          <can_speak>true</can_speak>\n          "
                "<mute_detect>false</mute_detect>\n"
                "          <talking>%s</talking>\n          <hold>false</hold>\n"
                "          <has_video>false</has_video>\n          "
                "<video_bridge>false</video_bridge>\n"
                "          <has_floor>%s</has_floor>\n          "
                "<is_moderator>false</is_moderator>\n"
                "          <end_conference>false</end_conference>\n"
                "          "
                "<mandatory_member_end_conference>false</mandatory_member_end_conference>\n"
                "          <is_ghost>false</is_ghost>\n        </flags>\n"
                "        <uuid>%s</uuid>\n        <caller_id_name>%s</caller_id_name>\n"
                "        <caller_id_number>%s</caller_id_number>\n        "
                "<join_time>T</join_time>\n"
                "        <last_talking>%s</last_talking>\n        <energy>100</energy>\n"
                "        <volume_in>0</volume_in>\n        <volume_out>0</volume_out>\n"
                "        <output-volume>0</output-volume>\n      </member>\n",
                who[i]->id, b ? "true" : "false", b ? "true" : "false", who[i]->uuid,
                who[i]->caller_id_name, who[i]->caller_id_number, b ? "T" : "N/A");
        }
        g_string_append(w, "    </members>\n  </conference>\n</conferences>\n");
        CHECK_STR(got, w->str);
        g_string_free(w, TRUE);
        g_free(got);
    }
    xfree(r);

    r = roundtrip(&ctl, "api conference room1 json_list\n\n");
    {
        char *got = normalize_times(r);
        GString *w = g_string_new(NULL);
        g_string_append_printf(
            w,
            "[{\n\t\t\"conference_name\":\t\"room1\",\n\t\t\"member_count\":\t2,\n"
            "\t\t\"ghost_count\":\t0,\n\t\t\"rate\":\t48000,\n\t\t\"run_time\":\tT,\n"
            "\t\t\"conference_uuid\":\t\"%s\",\n\t\t\"canvas_count\":\t0,\n\t\t\"max_bw_in\":\t0,\n"
            "\t\t\"force_bw_in\":\t0,\n\t\t\"video_floor_packets\":\t0,\n\t\t\"locked\":\tfalse,\n"
            "\t\t\"destruct\":\tfalse,\n\t\t\"wait_mod\":\tfalse,\n\t\t\"audio_always\":\tfalse,\n"
            "\t\t\"running\":\ttrue,\n\t\t\"answered\":\ttrue,\n\t\t\"enforce_min\":\ttrue,\n"
            "\t\t\"bridge_to\":\tfalse,\n\t\t\"dynamic\":\ttrue,\n\t\t\"exit_sound\":\ttrue,\n"
            "\t\t\"enter_sound\":\ttrue,\n\t\t\"recording\":\tfalse,\n\t\t\"video_bridge\":\tfalse,"
            "\n"
            "\t\t\"video_floor_only\":\tfalse,\n\t\t\"video_rfc4579\":\tfalse,\n"
            "\t\t\"variables\":\t{\n\t\t},\n\t\t\"members\":\t[",
            room_uuid);
        const struct conf_member_info *who[2] = {conf_member_info(bob), conf_member_info(alice)};
        for (int i = 0; i < 2; i++) {
            bool b = i == 0;
            g_string_append_printf(
                w,
                "%s{\n\t\t\t\t\"type\":\t\"caller\",\n\t\t\t\t\"id\":\t%u,\n\t\t\t\t\"flags\":\t{\n"
                "\t\t\t\t\t\"can_hear\":\ttrue,\n\t\t\t\t\t\"can_see\":\ttrue,\n"
                "\t\t\t\t\t\"can_speak\":\ttrue,\n\t\t\t\t\t\"hold\":\tfalse,\n"
                "\t\t\t\t\t\"mute_detect\":\tfalse,\n\t\t\t\t\t\"talking\":\t%s,\n"
                "\t\t\t\t\t\"has_video\":\tfalse,\n\t\t\t\t\t\"video_bridge\":\tfalse,\n"
                "\t\t\t\t\t\"has_floor\":\t%s,\n\t\t\t\t\t\"is_moderator\":\tfalse,\n"
                "\t\t\t\t\t\"end_conference\":\tfalse,\n"
                "\t\t\t\t\t\"mandatory_member_end_conference\":\tfalse,\n"
                "\t\t\t\t\t\"pass_digits\":\tfalse\n\t\t\t\t},\n\t\t\t\t\"uuid\":\t\"%s\",\n"
                "\t\t\t\t\"caller_id_name\":\t\"%s\",\n\t\t\t\t\"caller_id_number\":\t\"%s\",\n"
                "\t\t\t\t\"join_time\":\tT,\n\t\t\t\t\"last_talking\":\tT,\n"
                "\t\t\t\t\"energy\":\t100,\n\t\t\t\t\"volume_in\":\t0,\n\t\t\t\t\"volume_out\":\t0,"
                "\n"
                "\t\t\t\t\"output-volume\":\t0,\n\t\t\t\t\"input-volume\":\t0\n\t\t\t}",
                i ? ", " : "", who[i]->id, b ? "true" : "false", b ? "true" : "false", who[i]->uuid,
                who[i]->caller_id_name, who[i]->caller_id_number);
        }
        g_string_append(w, "]\n\t}]");
        CHECK_STR(got, w->str);
        g_string_free(w, TRUE);
        g_free(got);
    }
    xfree(r);
    r = roundtrip(&ctl, "api conference json_list compact\n\n");
    CHECK(g_str_has_prefix(r, "[{\"conference_name\":\"room1\",\"member_count\":2,"));
    CHECK(strstr(r, "\"variables\":{},\"members\":[{\"type\":\"caller\",\"id\":2,") != NULL);
    xfree(r);

    /* control, with FreeSWITCH's replies (esl-07, esl-10) and events */
    r = roundtrip(&ctl, "api conference room1 mute 1\n\n");
    CHECK_STR(r, "+OK mute 1\n");
    xfree(r);
    REQUIRE(next_event(&plain, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "mute-member");
    CHECK_STR(hv(&ev, "Speak"), "false");
    CHECK_STR(hv(&ev, "Event-Calling-Function"), "conference_api_sub_mute");
    r = roundtrip(&ctl, "api conference room1 tmute 1\n\n");
    CHECK_STR(r, "+OK unmute 1\n");
    xfree(r);
    REQUIRE(next_event(&plain, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "unmute-member");
    r = roundtrip(&ctl, "api conference room1 deaf 1\n\n");
    CHECK_STR(r, "+OK deaf 1\n");
    xfree(r);
    REQUIRE(next_event(&plain, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "deaf-member");
    CHECK_STR(hv(&ev, "Hear"), "false");
    r = roundtrip(&ctl, "api conference room1 vmute 2\n\n");
    CHECK_STR(r, "+OK vmute 2\n");
    xfree(r);
    REQUIRE(next_event(&plain, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "vmute-member");
    r = roundtrip(&ctl, "api conference room1 mute\n\n");
    CHECK_STR(r, "mute <[member_id|all]|last|non_moderator> [<quiet>]");
    xfree(r);
    r = roundtrip(&ctl, "api conference room1 vid-layout 2x2\n\n");
    CHECK_STR(r, "-ERR Conference is not in mixing mode\n");
    xfree(r);
    r = roundtrip(&ctl, "api conference room1 frobnicate\n\n");
    CHECK_STR(r, "-ERR Conference command 'frobnicate' not found.\n");
    xfree(r);

    r = roundtrip(&ctl, "api conference room1 kick 2\n\n");
    CHECK_STR(r, "+OK kicked 2\n");
    xfree(r);
    REQUIRE(next_event(&plain, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "kick-member");
    CHECK_STR(hv(&ev, "Conference-Size"), "2");
    CHECK_STR(hv(&ev, "Event-Calling-Function"), "conference_api_sub_kick");
    /* member 2 held the floor: cleared first, handed on after del-member (esl-05) */
    REQUIRE(next_event(&plain, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "floor-change");
    CHECK_STR(hv(&ev, "Old-ID"), "none");
    CHECK_STR(hv(&ev, "New-ID"), "none");
    REQUIRE(next_event(&plain, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "del-member");
    CHECK_STR(hv(&ev, "Member-ID"), "2");
    CHECK_STR(hv(&ev, "Conference-Size"), "1");
    CHECK_STR(hv(&ev, "Answer-State"), "hangup");
    CHECK_STR(hv(&ev, "Hangup-Cause"), "NORMAL_CLEARING");
    REQUIRE(next_event(&plain, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "floor-change");
    CHECK_STR(hv(&ev, "Old-ID"), "none");
    CHECK_STR(hv(&ev, "New-ID"), "1");
    r = roundtrip(&ctl, "api conference room1 unmute 2\n\n");
    CHECK_STR(r, "-ERR Non-Existant ID 2\n");
    xfree(r);

    r = roundtrip(&ctl, "api conference room1 kick all\n\n");
    CHECK_STR(r, "+OK kicked 1\n");
    xfree(r);
    REQUIRE(next_event(&plain, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "kick-member");
    REQUIRE(next_event(&plain, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "floor-change"); /* esl-05: kick, floor none->none, del, destroy */
    CHECK_STR(hv(&ev, "New-ID"), "none");
    REQUIRE(next_event(&plain, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "del-member");
    REQUIRE(next_event(&plain, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "conference-destroy");
    CHECK_STR(hv(&ev, "Conference-Size"), "0");
    check_names(&ev, create_names, sizeof create_names / sizeof create_names[0]);
    r = roundtrip(&ctl, "api conference list\n\n");
    CHECK_STR(r, "+OK No active conferences.\n");
    xfree(r);
    r = roundtrip(&ctl, "api conference room1 list\n\n");
    CHECK_STR(r, "-ERR Conference room1 not found\n");
    xfree(r);

    /* the JSON listener saw the same events, in the same order */
    static const char *const actions[] = {
        "conference-create", "add-member",        "add-member",   "start-talking", "floor-change",
        "mute-member",       "unmute-member",     "deaf-member",  "vmute-member",  "kick-member",
        "floor-change",      "del-member",        "floor-change", "kick-member",   "floor-change",
        "del-member",        "conference-destroy"};
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
        struct msg m;
        REQUIRE(client_next(&json, &m));
        CHECK_INT(m.type, ESL_MSG_EVENT_JSON);
        json_t *j = json_loadb(m.body, m.body_len, 0, NULL);
        CHECK(j != NULL);
        if (j) {
            CHECK_STR(json_string_value(json_object_get(j, "Action")), actions[i]);
            CHECK_STR(json_string_value(json_object_get(j, "Event-Subclass")),
                      "conference::maintenance");
            CHECK_STR(json_string_value(json_object_get(j, "Conference-Name")), "room1");
            json_decref(j);
        }
        msg_free(&m);
    }
out:
    arena_free(&a);
    client_close(&plain);
    client_close(&json);
    client_close(&ctl);
    fixture_stop(&f);
}

TEST(esl_server_filters_and_nixevent)
{
    struct fixture f;
    if (!fixture_start(&f, 100000)) return;
    struct client c;
    struct arena a;
    arena_init(&a);
    struct esl_event ev;
    char *r;
    REQUIRE(client_login(&c, esl_server_port(f.srv)));
    r = roundtrip(&c, "event plain ALL\n\n");
    CHECK_STR(r, "+OK event listener enabled plain");
    xfree(r);
    r = roundtrip(&c, "filter Action add-member\n\n");
    CHECK_STR(r, "+OK filter added. [Action]=[add-member]");
    xfree(r);
    struct conf_member *m = join(&f, "Alice", "1001");
    REQUIRE(m);
    conf_set_mute(m, true);
    REQUIRE(next_event(&c, &a, &ev)); /* conference-create and mute-member filtered out */
    CHECK_STR(hv(&ev, "Action"), "add-member");
    r = roundtrip(&c, "filter delete all\n\n");
    CHECK_STR(r, "+OK filter deleted. [all][]");
    xfree(r);
    r = roundtrip(&c, "nixevent CUSTOM conference::maintenance\n\n");
    CHECK_STR(r, "+OK events nixed");
    xfree(r);
    r = roundtrip(&c, "nixevent ALL\n\n");
    CHECK_STR(r, "+OK events nixed");
    xfree(r);
    conf_set_mute(m, false); /* nobody listens any more: nothing comes */
    r = roundtrip(&c, "api conference room1 count\n\n");
    CHECK_STR(r, "1\n");
    xfree(r);
    conf_kick(m);
out:
    arena_free(&a);
    client_close(&c);
    fixture_stop(&f);
}

/* FreeSWITCH's bound: max_queue waiting events, then drops; more than 500 dropped kills the
 * listener. Events made without the loop running all wait in the queue. */
TEST(esl_server_slow_listener_is_killed_after_500_lost_events)
{
    struct fixture f;
    if (!fixture_start(&f, 100)) return;
    struct client slow, fine;
    slow.fd = fine.fd = -1;
    buf_init(&slow.in);
    buf_init(&fine.in);
    char *r;
    uint16_t port = esl_server_port(f.srv);
    REQUIRE(client_login(&slow, port) && client_login(&fine, port));
    r = roundtrip(&slow, "event plain CUSTOM conference::maintenance\n\n");
    xfree(r);
    r = roundtrip(&fine, "event json CUSTOM conference::maintenance\n\n");
    xfree(r);
    struct conf_member *m = join(&f, "Alice", "1001"); /* 2 events */
    REQUIRE(m);
    for (int i = 0; i < 98; i++) /* 98 more: 100 waiting, none lost */
        conf_set_mute(m, i % 2 == 0);
    REQUIRE(client_wait(&fine, 5000, has_message));
    for (int i = 0; i < 100; i++) {
        struct msg x;
        REQUIRE(client_next(&fine, &x));
        CHECK_INT(x.type, ESL_MSG_EVENT_JSON);
        msg_free(&x);
    }
    /* now without serving the loop: 100 queue, 501 are lost, the listener is killed */
    for (int i = 0; i < 601; i++)
        conf_set_mute(m, i % 2 == 0);
    client_wait(&slow, 5000, is_eof);
    CHECK(slow.eof);
    client_wait(&fine, 200, is_eof); /* fine was killed too: it could not read in between */
    CHECK(fine.eof);
    conf_kick(m);
out:
    client_close(&slow);
    client_close(&fine);
    fixture_stop(&f);
}

/* esl-08: a listener's own api command gets its api/response before the events it caused. */
TEST(esl_server_api_response_comes_before_the_events_it_causes)
{
    struct fixture f;
    if (!fixture_start(&f, 100000)) return;
    struct client c;
    struct arena a;
    arena_init(&a);
    struct esl_event ev;
    struct msg m;
    char *r;
    REQUIRE(client_login(&c, esl_server_port(f.srv)));
    struct conf_member *alice = join(&f, "Alice", "1001");
    REQUIRE(alice);
    r = roundtrip(&c, "event plain CUSTOM conference::maintenance\n\n");
    xfree(r);
    client_send(&c, "api conference room1 hup all\n\n");
    REQUIRE(client_next(&c, &m));
    CHECK_INT(m.type, ESL_MSG_API_RESPONSE);
    CHECK_STR(m.body, "+OK hup 1\n");
    msg_free(&m);
    REQUIRE(next_event(&c, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "hup-member"); /* as esl-08 and esl-09 */
    REQUIRE(next_event(&c, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "del-member");
    REQUIRE(next_event(&c, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "conference-destroy");
out:
    arena_free(&a);
    client_close(&c);
    fixture_stop(&f);
}

/* Recording events (recorder.c posts them on the conference bus): mod_conference's header
 * layout, the room described by the event itself (a file can close after its room is gone). */
TEST(esl_server_recording_events_and_no_recorder)
{
    struct fixture f;
    if (!fixture_start(&f, 100000)) return;
    struct client c;
    struct arena a;
    arena_init(&a);
    struct esl_event ev;
    char *r;
    REQUIRE(client_login(&c, esl_server_port(f.srv)));
    struct conf_member *alice = join(&f, "Alice", "1001");
    REQUIRE(alice);
    r = roundtrip(&c, "api conference room1 recording start a.webm\n\n");
    CHECK_STR(r, "-ERR recording is not available on this node\n");
    xfree(r);
    r = roundtrip(&c, "event plain CUSTOM conference::maintenance\n\n");
    xfree(r);
    struct conf_recording_event rec = {.room_name = "room1",
                                       .room_uuid = "u-1",
                                       .profile_name = "video",
                                       .room_size = 1,
                                       .path = "a.webm"};
    conf_emit_recording(f.reg, CONF_EV_START_RECORDING, &rec);
    REQUIRE(next_event(&c, &a, &ev));
    static const char *const start_names[] = {"Event-Subclass",
                                              "Event-Name",
                                              "Core-UUID",
                                              "FreeSWITCH-Hostname",
                                              "FreeSWITCH-Switchname",
                                              "FreeSWITCH-IPv4",
                                              "FreeSWITCH-IPv6",
                                              "Event-Date-Local",
                                              "Event-Date-GMT",
                                              "Event-Date-Timestamp",
                                              "Event-Calling-File",
                                              "Event-Calling-Function",
                                              "Event-Calling-Line-Number",
                                              "Event-Sequence",
                                              "Conference-Name",
                                              "Conference-Domain",
                                              "Conference-Size",
                                              "Conference-Ghosts",
                                              "Conference-Profile-Name",
                                              "Conference-Unique-ID",
                                              "Action",
                                              "Path"};
    check_names(&ev, start_names, sizeof start_names / sizeof start_names[0]);
    CHECK_STR(hv(&ev, "Action"), "start-recording");
    CHECK_STR(hv(&ev, "Event-Calling-File"), "conference_record.c");
    CHECK_STR(hv(&ev, "Conference-Unique-ID"), "u-1");
    CHECK_STR(hv(&ev, "Conference-Profile-Name"), "video");
    CHECK_STR(hv(&ev, "Path"), "a.webm");
    rec.error = "File could not be opened for recording";
    conf_emit_recording(f.reg, CONF_EV_START_RECORDING, &rec);
    REQUIRE(next_event(&c, &a, &ev));
    CHECK_STR(hv(&ev, "Error"), "File could not be opened for recording");
    rec.error = NULL;
    rec.path = "all";
    conf_emit_recording(f.reg, CONF_EV_STOP_RECORDING, &rec); /* the command's */
    REQUIRE(next_event(&c, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "stop-recording");
    CHECK_STR(hv(&ev, "Event-Calling-Function"), "conference_api_sub_norecord");
    CHECK_STR(hv(&ev, "Path"), "all");
    CHECK_STR(hv(&ev, "Other-Recordings"), "false");
    CHECK_STR(hv(&ev, "Samples-Out"), "(absent)");
    rec.path = "a.webm";
    rec.closed = true;
    rec.room_size = 0;
    rec.other_recordings = true;
    rec.samples_out = 240000;
    rec.samplerate = 48000;
    rec.ms_elapsed = 5000;
    conf_emit_recording(f.reg, CONF_EV_STOP_RECORDING, &rec); /* the file's */
    REQUIRE(next_event(&c, &a, &ev));
    CHECK_STR(hv(&ev, "Event-Calling-Function"), "conference_record_thread_run");
    CHECK_STR(hv(&ev, "Conference-Size"), "0");
    CHECK_STR(hv(&ev, "Other-Recordings"), "true");
    CHECK_STR(hv(&ev, "Samples-Out"), "240000");
    CHECK_STR(hv(&ev, "Samplerate"), "48000");
    CHECK_STR(hv(&ev, "Milliseconds-Elapsed"), "5000");
    CHECK_STR(hv(&ev, "Error"), "(absent)");
    conf_emit_recording(f.reg, CONF_EV_PAUSE_RECORDING, &rec);
    REQUIRE(next_event(&c, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "pause-recording");
    CHECK_STR(hv(&ev, "Event-Calling-Function"), "conference_api_sub_pauserec");
    CHECK_STR(hv(&ev, "Samples-Out"), "(absent)");
    conf_emit_recording(f.reg, CONF_EV_RESUME_RECORDING, &rec);
    REQUIRE(next_event(&c, &a, &ev));
    CHECK_STR(hv(&ev, "Action"), "resume-recording");
    CHECK_STR(hv(&ev, "Path"), "a.webm");
out:
    arena_free(&a);
    client_close(&c);
    fixture_stop(&f);
}

/* The user-revocation commands ccomet sends (security audit L9): each form reaches the hook with
 * the user, the domain and what to end; other forms and a node without a SIP server get -ERR. */
struct revoke_seen {
    char user[32], domain[64];
    unsigned what, calls;
};

static unsigned revoke_hook(void *ctx, const char *user, const char *domain, unsigned what)
{
    struct revoke_seen *s = ctx;
    g_strlcpy(s->user, user, sizeof s->user);
    g_strlcpy(s->domain, domain ? domain : "", sizeof s->domain);
    s->what = what;
    s->calls++;
    return 2;
}

TEST(esl_server_revocation_commands)
{
    struct fixture f;
    if (!fixture_start(&f, 100000)) return;
    struct client c;
    struct revoke_seen seen = {0};
    char *r;
    REQUIRE(client_login(&c, esl_server_port(f.srv)));
    r = roundtrip(&c, "api xml_flush_cache id 0000008 example.org\n\n");
    CHECK(strstr(r, "-ERR no SIP server on this node") != NULL);
    xfree(r);
    esl_server_set_revoke(f.srv, revoke_hook, &seen);
    r = roundtrip(&c, "api xml_flush_cache id 0000008 example.org\n\n");
    CHECK(strstr(r, "+OK\n") != NULL);
    CHECK_STR(seen.user, "0000008");
    CHECK_STR(seen.domain, "example.org");
    CHECK_INT(seen.what, 1);
    xfree(r);
    r = roundtrip(&c,
                  "api sofia profile internal flush_inbound_reg 0000008@example.org reboot\n\n");
    CHECK(strstr(r, "+OK 2\n") != NULL);
    CHECK_STR(seen.user, "0000008");
    CHECK_STR(seen.domain, "example.org");
    CHECK_INT(seen.what, 2);
    xfree(r);
    r = roundtrip(&c, "api hupall NORMAL_CLEARING sip_auth_username 0000008\n\n");
    CHECK(strstr(r, "+OK 2\n") != NULL);
    CHECK_INT(seen.what, 4);
    xfree(r);
    CHECK_INT(seen.calls, 3);
    for (const char *bad = "api hupall NORMAL_CLEARING\n\n"; bad; bad = NULL) {
        r = roundtrip(&c, bad);
        CHECK(strstr(r, "-ERR hupall: only the per-user form is served here") != NULL);
        xfree(r);
    }
    r = roundtrip(&c, "api sofia status\n\n");
    CHECK(strstr(r, "-ERR sofia: only the per-user form") != NULL);
    xfree(r);
    CHECK_INT(seen.calls, 3);
out:
    esl_server_set_revoke(f.srv, NULL, NULL);
    client_close(&c);
    fixture_stop(&f);
}
