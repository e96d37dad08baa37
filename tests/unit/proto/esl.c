/* Unit tests for src/proto/esl.c, against FreeSWITCH 1.10.12's own bytes (reference/captures/
 * esl-*): every client stream parsed command by command (whole and byte at a time); the server's
 * replies, BACKGROUND_JOB events and the disconnect notice rebuilt byte for byte; every recorded
 * server message parsed, every plain event decoded and encoded again to the same bytes, and as
 * JSON to the bytes the JSON listener got; FreeSWITCH's URL-encoding rules; malformed input. The
 * small fixtures are embedded; the *_file tests read the captures from
 * tests/fixtures/freeswitch/ (the binary runs from the repo root). */
#include "test.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "proto/esl.h"

#define CAPTURES "tests/fixtures/freeswitch/"

/* An exact-length heap copy, so that ASan catches any read past the end. */
static uint8_t *dup_exact(const void *p, size_t n)
{
    uint8_t *q = xmalloc(n ? n : 1);
    if (n) memcpy(q, p, n);
    return q;
}

static uint8_t *read_capture(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, CAPTURES "%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        test_fail(__FILE__, __LINE__, "cannot open %s (run from the repo root)", path);
        return NULL;
    }
    struct buf b;
    buf_init(&b);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(&b, tmp, n);
    fclose(f);
    *len = b.len;
    uint8_t *copy = dup_exact(b.data, b.len);
    buf_free(&b);
    return copy;
}

#define REQUIRE(x)                                                                                 \
    do {                                                                                           \
        if (!(x)) return;                                                                          \
    } while (0)

#define CHECK_SPAN(s, lit)                                                                         \
    do {                                                                                           \
        struct esl_str s_ = (s);                                                                   \
        const char *l_ = (lit);                                                                    \
        if (!s_.ptr || s_.len != strlen(l_) || memcmp(s_.ptr, l_, s_.len) != 0)                    \
            test_fail(__FILE__, __LINE__, "%s is \"%.*s\", expected \"%s\"", #s, (int)s_.len,      \
                      s_.ptr ? s_.ptr : "(null)", l_);                                             \
    } while (0)

/* Compares a built buffer with expected bytes and shows where they first differ. */
static void check_bytes(const struct buf *b, const void *want, size_t want_len, int line)
{
    size_t n = buf_unread(b);
    const uint8_t *got = buf_head(b), *w = want;
    size_t i = 0;
    while (i < n && i < want_len && got[i] == w[i])
        i++;
    if (i == n && n == want_len) return;
    test_fail(__FILE__, line, "bytes differ at %zu (got %zu bytes, expected %zu): got \"%.*s\"", i,
              n, want_len, (int)(n - i < 40 ? n - i : 40), (const char *)got + i);
}
#define CHECK_BYTES(b, s, n) check_bytes((b), (s), (n), __LINE__)
#define CHECK_BUF(b, lit)    check_bytes((b), (lit), sizeof(lit) - 1, __LINE__)

/* Parses one command from a NUL-terminated literal (kept alive: the command points into it). */
static int parse_cmd(const char *s, struct esl_command *c, int line)
{
    const char *err = NULL;
    int rc = esl_parse_command((const uint8_t *)s, strlen(s), 0, c, &err);
    if (rc != ESL_OK) {
        test_fail(__FILE__, line, "parse failed: rc %d %s", rc, err ? err : "");
        return 0;
    }
    if (c->consumed != strlen(s))
        test_fail(__FILE__, line, "consumed %zu of %zu", c->consumed, strlen(s));
    return 1;
}
#define PARSE(s, c) parse_cmd((s), (c), __LINE__)

static int cmd_rc(const char *s, size_t n, size_t max, const char **err)
{
    struct esl_command c;
    uint8_t *copy = dup_exact(s, n);
    int rc = esl_parse_command(copy, n, max, &c, err);
    xfree(copy);
    return rc;
}

static int msg_rc(const char *s, size_t n, size_t max, const char **err)
{
    struct esl_message m;
    uint8_t *copy = dup_exact(s, n);
    int rc = esl_parse_message(copy, n, max, &m, err);
    xfree(copy);
    return rc;
}

/* ---- fixtures: FreeSWITCH's bytes ---------------------------------------------------------- */

static const char s2c_01[] = "Content-Type: auth/request\n\n"
                             "Content-Type: command/reply\nReply-Text: +OK accepted\n\n";

static const char s2c_02[] = "Content-Type: auth/request\n\n"
                             "Content-Type: command/reply\nReply-Text: -ERR invalid\n\n"
                             "Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"
                             "Disconnected, goodbye.\n"
                             "See you at ClueCon! http://www.cluecon.com/\n";

static const char s2c_03[] =
    "Content-Type: auth/request\n"
    "\n"
    "Content-Type: command/reply\n"
    "Reply-Text: +OK accepted\n"
    "\n"
    "Content-Type: api/response\n"
    "Content-Length: 337\n"
    "\n"
    "UP 0 years, 0 days, 0 hours, 0 minutes, 17 seconds, 967 milliseconds, 692 microseconds\n"
    "FreeSWITCH (Version 1.10.12-release  64bit) is ready\n"
    "0 session(s) since startup\n"
    "0 session(s) - peak 0, last 5min 0 \n"
    "0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n"
    "100 session(s) max\n"
    "min idle cpu 0.00/99.67\n"
    "Current Stack Size/Max 240K/8192K\n"
    "Content-Type: api/response\n"
    "Content-Length: 27\n"
    "\n"
    "+OK No active conferences.\n"
    "Content-Type: api/response\n"
    "Content-Length: 37\n"
    "\n"
    "-ERR Conference nosuchroom not found\n"
    "Content-Type: api/response\n"
    "Content-Length: 38\n"
    "\n"
    "-ERR nosuchcommand Command not found!\n"
    "Content-Type: command/reply\n"
    "Reply-Text: -ERR command not found\n"
    "\n";

/* The status text of esl-03's "api status" (337 bytes). */
#define STATUS_BODY_03                                                                             \
    "UP 0 years, 0 days, 0 hours, 0 minutes, 17 seconds, 967 milliseconds, 692 microseconds\n"     \
    "FreeSWITCH (Version 1.10.12-release  64bit) is ready\n"                                       \
    "0 session(s) since startup\n"                                                                 \
    "0 session(s) - peak 0, last 5min 0 \n"                                                        \
    "0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n"                                   \
    "100 session(s) max\n"                                                                         \
    "min idle cpu 0.00/99.67\n"                                                                    \
    "Current Stack Size/Max 240K/8192K\n"

/* esl-04: the BACKGROUND_JOB of "bgapi conference list" with a client-chosen Job-UUID, plain. */
static const char bj_plain_04[] = "Content-Length: 587\n"
                                  "Content-Type: text/event-plain\n"
                                  "\n"
                                  "Event-Name: BACKGROUND_JOB\n"
                                  "Core-UUID: 577ca437-4264-4079-b2da-b40f3287bda4\n"
                                  "FreeSWITCH-Hostname: vm\n"
                                  "FreeSWITCH-Switchname: fslab\n"
                                  "FreeSWITCH-IPv4: 127.0.0.1\n"
                                  "FreeSWITCH-IPv6: %3A%3A1\n"
                                  "Event-Date-Local: 2026-11-24%2006%3A08%3A40\n"
                                  "Event-Date-GMT: Tue,%2024%20Nov%202026%2006%3A08%3A40%20GMT\n"
                                  "Event-Date-Timestamp: 1795500520456189\n"
                                  "Event-Calling-File: mod_event_socket.c\n"
                                  "Event-Calling-Function: api_exec\n"
                                  "Event-Calling-Line-Number: 1572\n"
                                  "Event-Sequence: 417\n"
                                  "Job-UUID: 11111111-2222-3333-4444-555555555555\n"
                                  "Job-Command: conference\n"
                                  "Job-Command-Arg: list\n"
                                  "Content-Length: 27\n"
                                  "\n"
                                  "+OK No active conferences.\n";

/* esl-04: the BACKGROUND_JOB of the third "bgapi status", JSON, and that status text. */
static const char bj_json_04[] =
    "Content-Length: 915\n"
    "Content-Type: text/event-json\n"
    "\n"
    "{\"Event-Name\":\"BACKGROUND_JOB\",\"Core-UUID\":\"577ca437-4264-4079-b2da-b40f3287bda4\""
    ",\"FreeSWITCH-Hostname\":\"vm\",\"FreeSWITCH-Switchname\":\"fslab\",\"FreeSWITCH-IPv4\":\""
    "127.0.0.1\",\"FreeSWITCH-IPv6\":\"::1\",\"Event-Date-Local\":\"2026-11-24 06:08:40\",\"Ev"
    "ent-Date-GMT\":\"Tue, 24 Nov 2026 06:08:40 GMT\",\"Event-Date-Timestamp\":\"1795500520456"
    "189\",\"Event-Calling-File\":\"mod_event_socket.c\",\"Event-Calling-Function\":\"api_exec"
    "\",\"Event-Calling-Line-Number\":\"1572\",\"Event-Sequence\":\"419\",\"Job-UUID\":\"c9b6e"
    "1e6-06c6-4f6d-ac4f-6eb21ddeb895\",\"Job-Command\":\"status\",\"Content-Length\":\"337\",\""
    "_body\":\"UP 0 years, 0 days, 0 hours, 0 minutes, 17 seconds, 973 milliseconds, 119 micro"
    "seconds\\nFreeSWITCH (Version 1.10.12-release  64bit) is ready\\n0 session(s) since start"
    "up\\n0 session(s) - peak 0, last 5min 0 \\n0 session(s) per Sec out of max 30, peak 0, la"
    "st 5min 0 \\n100 session(s) max\\nmin idle cpu 0.00/99.67\\nCurrent Stack Size/Max 240K/8"
    "192K\\n\"}";
static const char status_body_04[] =
    "UP 0 years, 0 days, 0 hours, 0 minutes, 17 seconds, 973 milliseconds, 119 microseconds\n"
    "FreeSWITCH (Version 1.10.12-release  64bit) is ready\n"
    "0 session(s) since startup\n"
    "0 session(s) - peak 0, last 5min 0 \n"
    "0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n"
    "100 session(s) max\n"
    "min idle cpu 0.00/99.67\n"
    "Current Stack Size/Max 240K/8192K\n";

static const struct esl_event_base base_04 = {
    .core_uuid = "577ca437-4264-4079-b2da-b40f3287bda4",
    .hostname = "vm",
    .switchname = "fslab",
    .ipv4 = "127.0.0.1",
    .ipv6 = "::1",
    .timestamp_us = UINT64_C(1795500520456189),
    .utc_offset_s = 0,
    .calling_file = "mod_event_socket.c",
    .calling_function = "api_exec",
    .calling_line = 1572,
    .sequence = 417,
};

/* ---- server replies, byte for byte ------------------------------------------------------------
 */

TEST(esl_replies_capture_01_auth_ok)
{
    struct buf b;
    buf_init(&b);
    esl_put_auth_request(&b);
    CHECK_INT(buf_unread(&b), 28);
    esl_put_command_reply(&b, ESL_REPLY_ACCEPTED);
    CHECK_BUF(&b, s2c_01);
    buf_free(&b);
}

TEST(esl_replies_capture_02_wrong_password)
{
    struct buf b;
    buf_init(&b);
    esl_put_auth_request(&b);
    esl_put_command_reply(&b, ESL_REPLY_INVALID);
    esl_put_disconnect_notice(&b);
    CHECK_BUF(&b, s2c_02);
    CHECK_INT(sizeof s2c_02 - 1, 206);
    buf_free(&b);
}

TEST(esl_replies_capture_03_api_responses)
{
    static const char *const bodies[] = {
        STATUS_BODY_03,
        "+OK No active conferences.\n",
        "-ERR Conference nosuchroom not found\n",
        "-ERR nosuchcommand Command not found!\n",
    };
    struct buf b;
    buf_init(&b);
    esl_put_auth_request(&b);
    esl_put_command_reply(&b, ESL_REPLY_ACCEPTED);
    for (size_t i = 0; i < 4; i++)
        esl_put_api_response(&b, bodies[i], strlen(bodies[i]));
    esl_put_command_reply(&b, ESL_REPLY_NOT_FOUND);
    CHECK_BUF(&b, s2c_03);
    CHECK_INT(sizeof s2c_03 - 1, 774);
    buf_free(&b);
}

TEST(esl_replies_capture_04_bgapi_and_exit)
{
    struct buf b;
    buf_init(&b);
    esl_put_command_reply(&b, ESL_REPLY_EVENTS_PLAIN);
    CHECK_BUF(&b, "Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n");
    CHECK_INT(buf_unread(&b), 74);
    b.len = b.off = 0;
    const char *uuid = "6aa4092f-73f6-4e36-8c77-14af31b2e79e";
    esl_put_command_reply_job(&b, uuid, strlen(uuid));
    CHECK_BUF(&b, "Content-Type: command/reply\n"
                  "Reply-Text: +OK Job-UUID: 6aa4092f-73f6-4e36-8c77-14af31b2e79e\n"
                  "Job-UUID: 6aa4092f-73f6-4e36-8c77-14af31b2e79e\n\n");
    CHECK_INT(buf_unread(&b), 139);
    b.len = b.off = 0;
    esl_put_command_reply(&b, ESL_REPLY_NO_EVENTS);
    CHECK_INT(buf_unread(&b), 76);
    esl_put_command_reply(&b, ESL_REPLY_EVENTS_JSON);
    esl_put_command_reply(&b, ESL_REPLY_BYE);
    esl_put_disconnect_notice(&b);
    CHECK_BUF(&b, "Content-Type: command/reply\nReply-Text: +OK no longer listening for events\n\n"
                  "Content-Type: command/reply\nReply-Text: +OK event listener enabled json\n\n"
                  "Content-Type: command/reply\nReply-Text: +OK bye\n\n"
                  "Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"
                  "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n");
    buf_free(&b);
}

TEST(esl_replies_text_cannot_break_framing)
{
    struct buf b;
    buf_init(&b);
    esl_put_command_reply(&b, "+OK a\nb\rc");
    CHECK_BUF(&b, "Content-Type: command/reply\nReply-Text: +OK a b c\n\n");
    b.len = b.off = 0;
    esl_put_api_response(&b, "", 0);
    CHECK_BUF(&b, "Content-Type: api/response\nContent-Length: 0\n\n");
    b.len = b.off = 0;
    esl_put_rude_rejection(&b);
    CHECK_BUF(&b, "Content-Type: text/rude-rejection\nContent-Length: 24\n\n"
                  "Access Denied, go away.\n");
    buf_free(&b);
}

/* ---- events ------------------------------------------------------------------------------------
 */

TEST(esl_event_background_job_plain_capture_04)
{
    struct arena a;
    arena_init(&a);
    struct esl_event ev;
    const char *body = "+OK No active conferences.\n";
    esl_event_background_job(&ev, &a, &base_04, "11111111-2222-3333-4444-555555555555",
                             "conference", "list", body, strlen(body));
    struct buf b;
    buf_init(&b);
    CHECK_INT(esl_put_event(&b, ESL_FORMAT_PLAIN, &ev), ESL_OK);
    CHECK_BUF(&b, bj_plain_04);
    CHECK_STR(esl_event_get(&ev, "job-uuid", NULL), "11111111-2222-3333-4444-555555555555");
    CHECK_STR(esl_event_get(&ev, "Event-Date-GMT", NULL), "Tue, 24 Nov 2026 06:08:40 GMT");
    CHECK_STR(esl_event_get(&ev, "Event-Date-Local", NULL), "2026-11-24 06:08:40");
    CHECK(esl_event_get(&ev, "Content-Length", NULL) == NULL);
    buf_free(&b);
    arena_free(&a);
}

TEST(esl_event_background_job_json_capture_04)
{
    struct arena a;
    arena_init(&a);
    struct esl_event_base base = base_04;
    base.timestamp_us = UINT64_C(1795500520456189);
    base.sequence = 419;
    struct esl_event ev;
    esl_event_background_job(&ev, &a, &base, "c9b6e1e6-06c6-4f6d-ac4f-6eb21ddeb895", "status", NULL,
                             status_body_04, sizeof status_body_04 - 1);
    CHECK(esl_event_get(&ev, "Job-Command-Arg", NULL) == NULL);
    struct buf b;
    buf_init(&b);
    CHECK_INT(esl_put_event(&b, ESL_FORMAT_JSON, &ev), ESL_OK);
    CHECK_BUF(&b, bj_json_04);
    /* and it is JSON */
    const char *json = strstr((const char *)buf_head(&b), "\n\n") + 2;
    json_error_t jerr;
    json_t *root =
        json_loadb(json, buf_unread(&b) - (size_t)(json - (const char *)buf_head(&b)), 0, &jerr);
    CHECK(root != NULL);
    if (root) {
        CHECK_STR(json_string_value(json_object_get(root, "_body")), status_body_04);
        CHECK_STR(json_string_value(json_object_get(root, "Content-Length")), "337");
        json_decref(root);
    }
    buf_free(&b);
    arena_free(&a);
}

TEST(esl_event_custom_subclass_first)
{
    struct arena a;
    arena_init(&a);
    struct esl_event_base base = base_04;
    base.timestamp_us = UINT64_C(1795500543556193);
    base.calling_file = "mod_conference.c";
    base.calling_function = "conference_new";
    base.calling_line = 3848;
    base.sequence = 449;
    struct esl_event ev;
    esl_event_begin(&ev, &a, "CUSTOM", "conference::maintenance", &base);
    esl_event_add(&ev, "Conference-Name", "room1");
    esl_event_add(&ev, "Conference-Domain", "127.0.0.1");
    esl_event_add(&ev, "Conference-Size", "0");
    esl_event_add(&ev, "Conference-Ghosts", "0");
    esl_event_add(&ev, "Conference-Profile-Name", "default");
    esl_event_add(&ev, "Conference-Unique-ID", "37291772-83ac-4228-96e4-597f5e2973ea");
    esl_event_add(&ev, "Action", "conference-create");
    struct buf b;
    buf_init(&b);
    esl_put_event(&b, ESL_FORMAT_PLAIN, &ev);
    /* esl-05's first event, exactly */
    CHECK_BUF(&b, "Content-Length: 698\nContent-Type: text/event-plain\n\n"
                  "Event-Subclass: conference%3A%3Amaintenance\n"
                  "Event-Name: CUSTOM\n"
                  "Core-UUID: 577ca437-4264-4079-b2da-b40f3287bda4\n"
                  "FreeSWITCH-Hostname: vm\n"
                  "FreeSWITCH-Switchname: fslab\n"
                  "FreeSWITCH-IPv4: 127.0.0.1\n"
                  "FreeSWITCH-IPv6: %3A%3A1\n"
                  "Event-Date-Local: 2026-11-24%2006%3A09%3A03\n"
                  "Event-Date-GMT: Tue,%2024%20Nov%202026%2006%3A09%3A03%20GMT\n"
                  "Event-Date-Timestamp: 1795500543556193\n"
                  "Event-Calling-File: mod_conference.c\n"
                  "Event-Calling-Function: conference_new\n"
                  "Event-Calling-Line-Number: 3848\n"
                  "Event-Sequence: 449\n"
                  "Conference-Name: room1\n"
                  "Conference-Domain: 127.0.0.1\n"
                  "Conference-Size: 0\n"
                  "Conference-Ghosts: 0\n"
                  "Conference-Profile-Name: default\n"
                  "Conference-Unique-ID: 37291772-83ac-4228-96e4-597f5e2973ea\n"
                  "Action: conference-create\n"
                  "\n");
    buf_free(&b);
    arena_free(&a);
}

TEST(esl_event_local_date_offset)
{
    struct arena a;
    arena_init(&a);
    struct esl_event_base base = base_04;
    base.utc_offset_s = 3 * 3600; /* Europe/Moscow */
    base.timestamp_us = UINT64_C(1795500520456189) + UINT64_C(18) * 3600 * 1000000;
    struct esl_event ev;
    esl_event_begin(&ev, &a, "HEARTBEAT", NULL, &base);
    CHECK_STR(esl_event_get(&ev, "Event-Date-Local", NULL), "2026-11-25 03:08:40");
    CHECK_STR(esl_event_get(&ev, "Event-Date-GMT", NULL), "Wed, 25 Nov 2026 00:08:40 GMT");
    CHECK_STR(ev.headers[0].name, "Event-Name");
    arena_free(&a);
}

TEST(esl_event_plain_undef_and_bodies)
{
    struct arena a;
    arena_init(&a);
    struct esl_event ev;
    esl_event_init(&ev, &a);
    esl_event_add(&ev, "Empty", "");
    esl_event_add(&ev, "Dup", "1");
    esl_event_add(&ev, "Dup", "2");
    struct buf b;
    buf_init(&b);
    esl_event_put_plain(&b, &ev);
    CHECK_BUF(&b, "Empty: _undef_\nDup: 1\nDup: 2\n\n");
    b.len = b.off = 0;
    esl_event_put_json(&b, &ev);
    CHECK_BUF(&b, "{\"Empty\":\"\",\"Dup\":\"1\",\"Dup\":\"2\"}");
    CHECK_STR(esl_event_get(&ev, "dup", NULL), "1");

    /* an empty body: no Content-Length in plain (FreeSWITCH's rule), "0" and "" in JSON */
    esl_event_set_body(&ev, "", 0);
    b.len = b.off = 0;
    esl_event_put_plain(&b, &ev);
    CHECK_BUF(&b, "Empty: _undef_\nDup: 1\nDup: 2\n\n");
    b.len = b.off = 0;
    esl_put_event(&b, ESL_FORMAT_JSON, &ev);
    CHECK_BUF(
        &b, "Content-Length: 64\nContent-Type: text/event-json\n\n"
            "{\"Empty\":\"\",\"Dup\":\"1\",\"Dup\":\"2\",\"Content-Length\":\"0\",\"_body\":\"\"}");

    /* no headers at all */
    struct esl_event none;
    esl_event_init(&none, &a);
    b.len = b.off = 0;
    esl_put_event(&b, ESL_FORMAT_PLAIN, &none);
    CHECK_BUF(&b, "Content-Length: 1\nContent-Type: text/event-plain\n\n\n");
    b.len = b.off = 0;
    esl_put_event(&b, ESL_FORMAT_JSON, &none);
    CHECK_BUF(&b, "Content-Length: 2\nContent-Type: text/event-json\n\n{}");
    CHECK_INT(esl_put_event(&b, ESL_FORMAT_XML, &none), ESL_ERROR);
    buf_free(&b);
    arena_free(&a);
}

TEST(esl_event_json_escapes_as_cjson)
{
    struct arena a;
    arena_init(&a);
    struct esl_event ev;
    esl_event_init(&ev, &a);
    esl_event_add_n(&ev, "K\"\\", 3, "\"\\/\b\f\n\r\t\x01\x1f\x7f\xc3\xa4 %20", 17);
    struct buf b;
    buf_init(&b);
    esl_event_put_json(&b, &ev);
    CHECK_BUF(&b, "{\"K\\\"\\\\\":\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xc3\xa4 %20\"}");
    b.len = b.off = 0;
    esl_put_event(&b, ESL_FORMAT_JSON, &ev);
    const char *json = strstr((const char *)buf_head(&b), "\n\n") + 2;
    size_t jlen = buf_unread(&b) - (size_t)(json - (const char *)buf_head(&b));
    json_error_t jerr;
    json_t *root = json_loadb(json, jlen, 0, &jerr);
    CHECK(root != NULL);
    if (root) {
        json_t *v = json_object_get(root, "K\"\\");
        CHECK(v && json_string_length(v) == 17 &&
              memcmp(json_string_value(v), "\"\\/\b\f\n\r\t\x01\x1f\x7f\xc3\xa4 %20", 17) == 0);
        json_decref(root);
    }
    /* the Content-Length the frame announces is the JSON's length */
    CHECK(strstr((const char *)buf_head(&b), "Content-Length: ") == (const char *)buf_head(&b));
    CHECK_INT(strtoul((const char *)buf_head(&b) + 16, NULL, 10), jlen);
    /* and the same for plain */
    b.len = b.off = 0;
    esl_put_event(&b, ESL_FORMAT_PLAIN, &ev);
    CHECK_BUF(&b, "Content-Length: 50\nContent-Type: text/event-plain\n\n"
                  "K\"\\: %22%5C/%08%0C%0A%0D%09%01%1F%7F%C3%A4%20%20\n\n");
    buf_free(&b);
    arena_free(&a);
}

/* ---- URL encoding ------------------------------------------------------------------------------
 */

static void check_enc(const char *in, size_t n, const char *want, int line)
{
    char out[512];
    size_t got = esl_url_encode(in, n, out);
    if (got != esl_url_encoded_len(in, n)) test_fail(__FILE__, line, "length disagrees");
    if (got != strlen(want) || memcmp(out, want, got) != 0)
        test_fail(__FILE__, line, "encoded \"%.*s\", expected \"%s\"", (int)got, out, want);
}
#define ENC(in, want) check_enc((in), strlen(in), (want), __LINE__)

static void check_dec(const char *in, const char *want, size_t want_len, int line)
{
    char out[512];
    size_t got = esl_url_decode(in, strlen(in), out);
    if (got != want_len || memcmp(out, want, got) != 0)
        test_fail(__FILE__, line, "decoded \"%.*s\", expected \"%s\"", (int)got, out, want);
}
#define DEC(in, want) check_dec((in), (want), sizeof(want) - 1, __LINE__)

TEST(esl_url_encode_capture_values)
{
    /* values and their encodings as they appear in esl-04, -05, -08 and -09 */
    ENC("conference::maintenance", "conference%3A%3Amaintenance");
    ENC("::1", "%3A%3A1");
    ENC("2026-11-24 06:08:40", "2026-11-24%2006%3A08%3A40");
    ENC("Tue, 24 Nov 2026 06:08:40 GMT", "Tue,%2024%20Nov%202026%2006%3A08%3A40%20GMT");
    ENC("Outbound Call", "Outbound%20Call");
    ENC("tone_stream://%(200,0,500,600,700)", "tone_stream%3A//%25(200,0,500,600,700)");
    ENC("tone_stream://%(300,200,600);loops=2", "tone_stream%3A//%25(300,200,600)%3Bloops%3D2");
    ENC("ARRAY::conf-room2|:room2", "ARRAY%3A%3Aconf-room2%7C%3Aroom2");
    ENC("\"Carol\" <1003>", "%22Carol%22%20%3C1003%3E");
    ENC("{origination_caller_id_name=Carol,origination_caller_id_number=1003}loopback/conf-room2/"
        "default &park",
        "%7Borigination_caller_id_name%3DCarol,origination_caller_id_number%3D1003%7Dloopback/"
        "conf-room2/default%20%26park");
    ENC("sip:1000@127.0.0.1", "sip%3A1000%40127.0.0.1");
}

TEST(esl_url_encode_byte_classes)
{
    /* copied: letters, digits and !$'()*,-./_~ ; everything else printable in SWITCH_URL_UNSAFE */
    const char *kept = "!$'()*,-./_~";
    const char *unsafe = " #%&+:;<=>?@[\\]^`{|}\"";
    for (int c = 0; c < 256; c++) {
        char in = (char)c, out[4];
        size_t n = esl_url_encode(&in, 1, out);
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool keep = alnum || (c && strchr(kept, c));
        if (keep) {
            if (n != 1 || out[0] != in) test_fail(__FILE__, __LINE__, "byte 0x%02x escaped", c);
        } else {
            char want[4];
            snprintf(want, sizeof want, "%%%02X", c);
            if (n != 3 || memcmp(out, want, 3) != 0)
                test_fail(__FILE__, __LINE__, "byte 0x%02x not escaped as %s", c, want);
            if (c >= 0x20 && c < 0x7f && !strchr(unsafe, c))
                test_fail(__FILE__, __LINE__, "byte 0x%02x escaped but not unsafe", c);
        }
    }
    ENC("a b+c", "a%20b%2Bc"); /* %20, never '+' */
}

TEST(esl_url_encode_keeps_existing_escapes)
{
    /* FreeSWITCH does not double-encode "%XX" with upper-case hex digits */
    ENC("%3A", "%3A");
    ENC("100%41", "100%41");
    ENC("%3a", "%253a"); /* lower case is not recognised */
    ENC("%3", "%253");
    ENC("%", "%25");
    ENC("%%41", "%25%41");
    ENC("50% off", "50%25%20off");
    check_enc("%\0A", 3, "%25%00A", __LINE__);
}

TEST(esl_url_decode_rules)
{
    DEC("conference%3A%3Amaintenance", "conference::maintenance");
    DEC("%3a%3A", "::"); /* either case */
    DEC("a+b", "a+b");   /* '+' is not a space */
    DEC("100%", "100%"); /* truncated escapes are copied */
    DEC("100%4", "100%4");
    DEC("%zz%4g", "%zz%4g");
    DEC("%00x", "\0x");
    DEC("%C3%A4", "\xc3\xa4");
    DEC("", "");
    /* in place */
    char s[] = "Tue,%2024%20Nov";
    size_t n = esl_url_decode(s, strlen(s), s);
    CHECK_INT(n, 11);
    CHECK(memcmp(s, "Tue, 24 Nov", 11) == 0);
    /* a round trip, for anything without an upper-case "%XX" already in it */
    char all[256], enc[768], dec[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    size_t e = esl_url_encode(all, 256, enc);
    CHECK_INT(e, esl_url_encoded_len(all, 256));
    CHECK_INT(esl_url_decode(enc, e, dec), 256);
    CHECK(memcmp(all, dec, 256) == 0);
}

/* ---- client commands (server side)
 * --------------------------------------------------------------- */

TEST(esl_command_auth_and_exit)
{
    struct esl_command c;
    REQUIRE(PARSE("auth ClueCon\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_AUTH);
    CHECK_SPAN(c.verb, "auth");
    CHECK_SPAN(c.password, "ClueCon");
    CHECK_INT(c.n_headers, 0);
    CHECK(c.body == NULL);
    REQUIRE(PARSE("auth Clue Con \n\n", &c));
    CHECK_SPAN(c.password, "Clue Con "); /* the whole rest, as FreeSWITCH compares it */
    REQUIRE(PARSE("auth\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_AUTH);
    CHECK_SPAN(c.password, "");
    REQUIRE(PARSE("exit\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_EXIT);
    REQUIRE(PARSE("EXIT\n\n", &c)); /* verbs are case-insensitive */
    CHECK_INT(c.kind, ESL_CMD_EXIT);
    REQUIRE(PARSE("noevents\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_NOEVENTS);
}

TEST(esl_command_crlf_and_leading_empty_lines)
{
    struct esl_command c;
    REQUIRE(PARSE("auth ClueCon\r\n\r\n", &c));
    CHECK_INT(c.kind, ESL_CMD_AUTH);
    CHECK_SPAN(c.password, "ClueCon");
    REQUIRE(PARSE("\n\r\n\napi status\r\n\r\n", &c));
    CHECK_INT(c.kind, ESL_CMD_API);
    CHECK_SPAN(c.api_command, "status");
    CHECK(c.api_args.ptr == NULL);
    REQUIRE(PARSE("bgapi status\r\nJob-UUID: abc\r\n\r\n", &c));
    CHECK_SPAN(c.job_uuid, "abc");
}

TEST(esl_command_api_args_verbatim)
{
    struct esl_command c;
    REQUIRE(PARSE("api originate {origination_caller_id_name=Bob,origination_caller_id_number=1002}"
                  "loopback/conf-room1/default &playback(tone_stream://%(1500,2500,440);loops=4)"
                  "\n\n",
                  &c));
    CHECK_INT(c.kind, ESL_CMD_API);
    CHECK_SPAN(c.api_command, "originate");
    CHECK_SPAN(c.api_args, "{origination_caller_id_name=Bob,origination_caller_id_number=1002}"
                           "loopback/conf-room1/default &playback(tone_stream://%(1500,2500,440);"
                           "loops=4)");
    REQUIRE(PARSE("api conference room4 volume_out 5 -1\n\n", &c));
    CHECK_SPAN(c.api_command, "conference");
    CHECK_SPAN(c.api_args, "room4 volume_out 5 -1");
    REQUIRE(PARSE("api status \n\n", &c));
    CHECK_SPAN(c.api_args, "");
    /* "api" without a command is not an api command in FreeSWITCH: -ERR command not found */
    REQUIRE(PARSE("api\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_UNKNOWN);
    CHECK_SPAN(c.verb, "api");
    REQUIRE(PARSE("bgapi \n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_UNKNOWN);
}

TEST(esl_command_bgapi_job_uuid)
{
    struct esl_command c;
    REQUIRE(PARSE("bgapi conference list\nJob-UUID: 11111111-2222-3333-4444-555555555555\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_BGAPI);
    CHECK_SPAN(c.api_command, "conference");
    CHECK_SPAN(c.api_args, "list");
    CHECK_SPAN(c.job_uuid, "11111111-2222-3333-4444-555555555555");
    CHECK_INT(c.n_headers, 1);
    CHECK_SPAN(esl_command_header(&c, "job-uuid"), "11111111-2222-3333-4444-555555555555");
    REQUIRE(PARSE("bgapi status\n\n", &c));
    CHECK(c.job_uuid.ptr == NULL);
    REQUIRE(PARSE("bgapi status\njob-uuid:x\n\n", &c)); /* no space after ':' is fine */
    CHECK_SPAN(c.job_uuid, "x");
}

TEST(esl_command_event_names_and_formats)
{
    struct esl_command c;
    REQUIRE(PARSE("event plain CUSTOM conference::maintenance\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_EVENT);
    CHECK_INT(c.format, ESL_FORMAT_PLAIN);
    CHECK(c.format_given);
    CHECK_SPAN(c.names, "CUSTOM conference::maintenance");
    CHECK_INT(c.n_names, 2);
    const char *p = c.names.ptr, *end = c.names.ptr + c.names.len;
    struct esl_str w;
    CHECK(esl_next_word(&p, end, &w));
    CHECK_SPAN(w, "CUSTOM");
    CHECK(esl_next_word(&p, end, &w));
    CHECK_SPAN(w, "conference::maintenance");
    CHECK(!esl_next_word(&p, end, &w));

    REQUIRE(PARSE("event json BACKGROUND_JOB\n\n", &c));
    CHECK_INT(c.format, ESL_FORMAT_JSON);
    CHECK_SPAN(c.names, "BACKGROUND_JOB");
    REQUIRE(PARSE("event XML  ALL\n\n", &c));
    CHECK_INT(c.format, ESL_FORMAT_XML);
    CHECK_SPAN(c.names, "ALL");
    CHECK_INT(c.n_names, 1);
    /* no format word: plain, and the first word is a name */
    REQUIRE(PARSE("event BACKGROUND_JOB CHANNEL_ANSWER  CUSTOM a::b c::d\n\n", &c));
    CHECK_INT(c.format, ESL_FORMAT_PLAIN);
    CHECK(!c.format_given);
    CHECK_INT(c.n_names, 5);
    /* no names: the server answers -ERR no keywords supplied */
    REQUIRE(PARSE("event plain\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_EVENT);
    CHECK_INT(c.n_names, 0);
    REQUIRE(PARSE("nixevent CUSTOM conference::maintenance\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_NIXEVENT);
    CHECK_INT(c.n_names, 2);
    /* FreeSWITCH matches "event" as a prefix; we match whole verbs */
    REQUIRE(PARSE("events plain ALL\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_UNKNOWN);
}

TEST(esl_command_filter_linger_log_divert_myevents)
{
    struct esl_command c;
    REQUIRE(PARSE("filter Event-Subclass conference::maintenance\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_FILTER);
    CHECK(!c.filter_delete);
    CHECK_SPAN(c.filter_header, "Event-Subclass");
    CHECK_SPAN(c.filter_value, "conference::maintenance");
    REQUIRE(PARSE("filter Caller-Caller-ID-Name Outbound Call\n\n", &c));
    CHECK_SPAN(c.filter_value, "Outbound Call");
    REQUIRE(PARSE("filter delete Event-Subclass conference::maintenance\n\n", &c));
    CHECK(c.filter_delete);
    CHECK_SPAN(c.filter_header, "Event-Subclass");
    CHECK_SPAN(c.filter_value, "conference::maintenance");
    REQUIRE(PARSE("filter delete all\n\n", &c));
    CHECK(c.filter_delete);
    CHECK_SPAN(c.filter_header, "all");
    CHECK(c.filter_value.ptr == NULL);
    REQUIRE(PARSE("filter Unique-ID\n\n", &c));
    CHECK_SPAN(c.filter_header, "Unique-ID");
    CHECK(c.filter_value.ptr == NULL);
    REQUIRE(PARSE("filter\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_FILTER);
    CHECK_SPAN(c.filter_header, "");

    REQUIRE(PARSE("linger\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_LINGER);
    CHECK_INT(c.linger_seconds, -1);
    REQUIRE(PARSE("linger 30\n\n", &c));
    CHECK_INT(c.linger_seconds, 30);
    REQUIRE(PARSE("linger x\n\n", &c));
    CHECK_INT(c.linger_seconds, -1);
    REQUIRE(PARSE("nolinger\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_NOLINGER);
    REQUIRE(PARSE("log info\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_LOG);
    CHECK_SPAN(c.log_level, "info");
    REQUIRE(PARSE("log\n\n", &c));
    CHECK(c.log_level.ptr == NULL);
    REQUIRE(PARSE("nolog\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_NOLOG);
    REQUIRE(PARSE("divert_events on\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_DIVERT);
    CHECK(c.divert_on);
    REQUIRE(PARSE("divert_events off\n\n", &c));
    CHECK(!c.divert_on);
    REQUIRE(PARSE("myevents\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_MYEVENTS);
    CHECK(c.uuid.ptr == NULL);
    REQUIRE(PARSE("myevents 699993cb-fe31-4cc6-b10a-9af23ebc9e80 json\n\n", &c));
    CHECK_SPAN(c.uuid, "699993cb-fe31-4cc6-b10a-9af23ebc9e80");
    CHECK_INT(c.format, ESL_FORMAT_JSON);
}

TEST(esl_command_sendevent_and_sendmsg_bodies)
{
    struct esl_command c;
    const char *se = "sendevent CUSTOM\n"
                     "Event-Subclass: conference::maintenance\n"
                     "Action: lock\n"
                     "Content-Length: 5\n"
                     "\n"
                     "hello";
    REQUIRE(PARSE(se, &c));
    CHECK_INT(c.kind, ESL_CMD_SENDEVENT);
    CHECK_SPAN(c.event_name, "CUSTOM");
    CHECK_INT(c.n_headers, 3);
    CHECK_SPAN(c.headers[0].name, "Event-Subclass");
    CHECK_SPAN(c.headers[0].value, "conference::maintenance");
    CHECK_SPAN(c.headers[1].value, "lock");
    CHECK_INT(c.body_len, 5);
    CHECK(c.body && memcmp(c.body, "hello", 5) == 0);
    /* the body is not there yet: AGAIN at every prefix */
    const char *err;
    for (size_t n = 0; n < strlen(se); n++)
        if (cmd_rc(se, n, 0, &err) != ESL_AGAIN) test_fail(__FILE__, __LINE__, "prefix %zu", n);
    /* a body may hold any byte, the command after it is left alone */
    static const char two[] = "sendmsg 1234\ncall-command: execute\nContent-Length: 3\n\n\0\n\n"
                              "exit\n\n";
    uint8_t *copy = dup_exact(two, sizeof two - 1);
    CHECK_INT(esl_parse_command(copy, sizeof two - 1, 0, &c, &err), ESL_OK);
    CHECK_INT(c.kind, ESL_CMD_SENDMSG);
    CHECK_SPAN(c.uuid, "1234");
    CHECK_INT(c.body_len, 3);
    CHECK_INT(c.consumed, sizeof two - 1 - 6);
    CHECK_INT(esl_parse_command(copy + c.consumed, 6, 0, &c, &err), ESL_OK);
    CHECK_INT(c.kind, ESL_CMD_EXIT);
    xfree(copy);
    /* Content-Length: 0 means no body */
    REQUIRE(PARSE("sendevent HEARTBEAT\nContent-Length: 0\n\n", &c));
    CHECK(c.body == NULL);
    /* header lines without ':' are ignored, as FreeSWITCH does */
    REQUIRE(PARSE("sendevent X\nnot a header\nA: b\n\n", &c));
    CHECK_INT(c.n_headers, 1);
}

TEST(esl_command_unknown)
{
    struct esl_command c;
    REQUIRE(PARSE("nosuchcommand\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_UNKNOWN);
    CHECK_SPAN(c.verb, "nosuchcommand");
    REQUIRE(PARSE("  \n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_UNKNOWN);
    CHECK_SPAN(c.verb, "");
    REQUIRE(PARSE("getvar x\n\n", &c));
    CHECK_INT(c.kind, ESL_CMD_UNKNOWN);
    CHECK_SPAN(c.args, "x");
    /* what the server answers to it, as in esl-03 */
    struct buf b;
    buf_init(&b);
    esl_put_command_reply(&b, ESL_REPLY_NOT_FOUND);
    CHECK_BUF(&b, "Content-Type: command/reply\nReply-Text: -ERR command not found\n\n");
    CHECK_INT(buf_unread(&b), 64);
    buf_free(&b);
}

TEST(esl_command_malformed)
{
    const char *err = NULL;
    /* incomplete: AGAIN */
    CHECK_INT(cmd_rc("", 0, 0, &err), ESL_AGAIN);
    CHECK_INT(cmd_rc("auth ClueCon\n", 13, 0, &err), ESL_AGAIN);
    CHECK_INT(cmd_rc("auth ClueCon\r\n\r", 15, 0, &err), ESL_AGAIN);
    CHECK_INT(cmd_rc("\n\n\n", 3, 0, &err), ESL_AGAIN);
    /* beyond max_bytes without an end: an error as soon as max_bytes bytes are in */
    CHECK_INT(cmd_rc("api status aaaaa", 16, 16, &err), ESL_ERROR);
    CHECK(err && strstr(err, "limit"));
    CHECK_INT(cmd_rc("api status aaaa", 15, 16, &err), ESL_AGAIN);
    CHECK_INT(cmd_rc("api status aa\n\n", 15, 16, &err), ESL_OK);
    /* a Content-Length that cannot fit: an error before the body arrives */
    const char *big = "sendevent X\nContent-Length: 100\n\n";
    CHECK_INT(cmd_rc(big, strlen(big), 64, &err), ESL_ERROR);
    CHECK_INT(cmd_rc(big, strlen(big), 0, &err), ESL_AGAIN);
    const char *huge = "sendevent X\nContent-Length: 99999999999999999999999\n\n";
    CHECK_INT(cmd_rc(huge, strlen(huge), 0, &err), ESL_ERROR);
    static const char *const bad_cl[] = {"Content-Length: -1\n\n", "Content-Length: 1a\n\n",
                                         "Content-Length: \n\n", "Content-Length: 1 2\n\n",
                                         "Content-Length: +1\n\n"};
    for (size_t i = 0; i < sizeof bad_cl / sizeof bad_cl[0]; i++) {
        char tmp[128];
        snprintf(tmp, sizeof tmp, "sendevent X\n%s", bad_cl[i]);
        if (cmd_rc(tmp, strlen(tmp), 0, &err) != ESL_ERROR)
            test_fail(__FILE__, __LINE__, "accepted \"%s\"", bad_cl[i]);
    }
    /* NUL bytes in a line */
    CHECK_INT(cmd_rc("auth Clue\0Con\n\n", 15, 0, &err), ESL_ERROR);
    CHECK_INT(cmd_rc("bgapi status\nJob-UUID: \0\n\n", 26, 0, &err), ESL_ERROR);
    /* too many header lines */
    struct buf b;
    buf_init(&b);
    buf_append(&b, "sendevent X\n", 12);
    for (int i = 0; i < ESL_MAX_COMMAND_HEADERS; i++)
        buf_append(&b, "A: b\n", 5);
    buf_append(&b, "\n", 1);
    CHECK_INT(cmd_rc((const char *)b.data, b.len, 0, &err), ESL_OK);
    b.len--;
    buf_append(&b, "A: b\n\n", 6);
    CHECK_INT(cmd_rc((const char *)b.data, b.len, 0, &err), ESL_ERROR);
    CHECK(err && strstr(err, "too many"));
    buf_free(&b);
}

/* The client streams of the captures, and what each command is. */
struct cmd_expect {
    enum esl_cmd_kind kind;
    const char *verb, *args;
};
struct c2s_case {
    const char *file;
    const char *bytes;
    struct cmd_expect cmds[24];
};

static const struct c2s_case c2s_cases[] = {
    {"esl-01-connect-banner-auth-ok.c2s.raw",
     "auth ClueCon\n\n",
     {{ESL_CMD_AUTH, "auth", "ClueCon"}}},
    {"esl-02-auth-wrong-password.c2s.raw",
     "auth WrongPass\n\n",
     {{ESL_CMD_AUTH, "auth", "WrongPass"}}},
    {"esl-03-api-status-and-empty-conference-list.c2s.raw",
     "auth ClueCon\n\napi status\n\napi conference list\n\napi conference nosuchroom list\n\n"
     "api nosuchcommand\n\nnosuchcommand\n\n",
     {{ESL_CMD_AUTH, "auth", "ClueCon"},
      {ESL_CMD_API, "api", "status"},
      {ESL_CMD_API, "api", "conference list"},
      {ESL_CMD_API, "api", "conference nosuchroom list"},
      {ESL_CMD_API, "api", "nosuchcommand"},
      {ESL_CMD_UNKNOWN, "nosuchcommand", ""}}},
    {"esl-04-bgapi-background-job-and-exit.c2s.raw",
     "auth ClueCon\n\nevent plain BACKGROUND_JOB\n\nbgapi status\n\nbgapi conference list\n"
     "Job-UUID: 11111111-2222-3333-4444-555555555555\n\nnoevents\n\nevent json BACKGROUND_JOB\n\n"
     "bgapi status\n\nexit\n\n",
     {{ESL_CMD_AUTH, "auth", "ClueCon"},
      {ESL_CMD_EVENT, "event", "plain BACKGROUND_JOB"},
      {ESL_CMD_BGAPI, "bgapi", "status"},
      {ESL_CMD_BGAPI, "bgapi", "conference list"},
      {ESL_CMD_NOEVENTS, "noevents", ""},
      {ESL_CMD_EVENT, "event", "json BACKGROUND_JOB"},
      {ESL_CMD_BGAPI, "bgapi", "status"},
      {ESL_CMD_EXIT, "exit", ""}}},
    {"esl-05-conference-maintenance-events-plain.c2s.raw",
     "auth ClueCon\n\nevent plain CUSTOM conference::maintenance\n\n",
     {{ESL_CMD_AUTH, "auth", "ClueCon"},
      {ESL_CMD_EVENT, "event", "plain CUSTOM conference::maintenance"}}},
    {"esl-06-conference-maintenance-events-json.c2s.raw",
     "auth ClueCon\n\nevent json CUSTOM conference::maintenance\n\n",
     {{ESL_CMD_AUTH, "auth", "ClueCon"},
      {ESL_CMD_EVENT, "event", "json CUSTOM conference::maintenance"}}},
    {"esl-07-conference-api-list-xml-json-control.c2s.raw",
     "auth ClueCon\n"
     "\n"
     "api originate {origination_caller_id_name=Alice,origination_caller_id_number=1001}loopbac"
     "k/conf-room1/default &park\n"
     "\n"
     "api conference list\n"
     "\n"
     "api conference room1 list\n"
     "\n"
     "api conference room1 xml_list\n"
     "\n"
     "api conference room1 json_list\n"
     "\n"
     "api originate {origination_caller_id_name=Bob,origination_caller_id_number=1002}loopback/"
     "conf-room1/default &playback(tone_stream://%(1500,2500,440);loops=4)\n"
     "\n"
     "api conference room1 list\n"
     "\n"
     "api conference room1 xml_list\n"
     "\n"
     "api conference room1 json_list\n"
     "\n"
     "api conference json_list\n"
     "\n"
     "api conference room1 mute 1\n"
     "\n"
     "api conference room1 unmute 1\n"
     "\n"
     "api conference room1 deaf 1\n"
     "\n"
     "api conference room1 undeaf 1\n"
     "\n"
     "api conference room1 mute 2\n"
     "\n"
     "api conference room1 unmute 2\n"
     "\n"
     "api conference room1 kick 1\n"
     "\n"
     "api conference list\n"
     "\n",
     {{ESL_CMD_AUTH, "auth", "ClueCon"},
      {ESL_CMD_API, "api",
       "originate {origination_caller_id_name=Alice,origination_caller_id_number=1001}loopback/"
       "conf-room1/default &park"},
      {ESL_CMD_API, "api", "conference list"},
      {ESL_CMD_API, "api", "conference room1 list"},
      {ESL_CMD_API, "api", "conference room1 xml_list"},
      {ESL_CMD_API, "api", "conference room1 json_list"},
      {ESL_CMD_API, "api",
       "originate {origination_caller_id_name=Bob,origination_caller_id_number=1002}loopback/"
       "conf-room1/default &playback(tone_stream://%(1500,2500,440);loops=4)"},
      {ESL_CMD_API, "api", "conference room1 list"},
      {ESL_CMD_API, "api", "conference room1 xml_list"},
      {ESL_CMD_API, "api", "conference room1 json_list"},
      {ESL_CMD_API, "api", "conference json_list"},
      {ESL_CMD_API, "api", "conference room1 mute 1"},
      {ESL_CMD_API, "api", "conference room1 unmute 1"},
      {ESL_CMD_API, "api", "conference room1 deaf 1"},
      {ESL_CMD_API, "api", "conference room1 undeaf 1"},
      {ESL_CMD_API, "api", "conference room1 mute 2"},
      {ESL_CMD_API, "api", "conference room1 unmute 2"},
      {ESL_CMD_API, "api", "conference room1 kick 1"},
      {ESL_CMD_API, "api", "conference list"}}},
    {"esl-08-event-plain-all-one-member-join-hup.c2s.raw",
     "auth ClueCon\n\nevent plain ALL\n\napi originate {origination_caller_id_name=Carol,"
     "origination_caller_id_number=1003}loopback/conf-room2/default &park\n\n"
     "api conference room2 hup all\n\nexit\n\n",
     {{ESL_CMD_AUTH, "auth", "ClueCon"},
      {ESL_CMD_EVENT, "event", "plain ALL"},
      {ESL_CMD_API, "api",
       "originate {origination_caller_id_name=Carol,origination_caller_id_number=1003}loopback/"
       "conf-room2/default &park"},
      {ESL_CMD_API, "api", "conference room2 hup all"},
      {ESL_CMD_EXIT, "exit", ""}}},
    {"esl-09-conference-more-actions-plain.c2s.raw",
     "auth ClueCon\n\nevent plain CUSTOM conference::maintenance\n\n",
     {{ESL_CMD_AUTH, "auth", "ClueCon"},
      {ESL_CMD_EVENT, "event", "plain CUSTOM conference::maintenance"}}},
    {"esl-10-conference-more-actions-control.c2s.raw",
     "auth ClueCon\n\napi conference room4 dial loopback/park/default 1004 Dave\n\n"
     "api conference room4 list\n\napi conference room4 lock\n\napi conference room4 unlock\n\n"
     "api conference room4 play tone_stream://%(300,200,600);loops=2\n\n"
     "api conference room4 energy 5 300\n\napi conference room4 volume_in 5 2\n\n"
     "api conference room4 volume_out 5 -1\n\napi conference room4 tmute 5\n\n"
     "api conference room4 tmute 5\n\napi conference room4 hup 5\n\n",
     {{ESL_CMD_AUTH, "auth", "ClueCon"},
      {ESL_CMD_API, "api", "conference room4 dial loopback/park/default 1004 Dave"},
      {ESL_CMD_API, "api", "conference room4 list"},
      {ESL_CMD_API, "api", "conference room4 lock"},
      {ESL_CMD_API, "api", "conference room4 unlock"},
      {ESL_CMD_API, "api", "conference room4 play tone_stream://%(300,200,600);loops=2"},
      {ESL_CMD_API, "api", "conference room4 energy 5 300"},
      {ESL_CMD_API, "api", "conference room4 volume_in 5 2"},
      {ESL_CMD_API, "api", "conference room4 volume_out 5 -1"},
      {ESL_CMD_API, "api", "conference room4 tmute 5"},
      {ESL_CMD_API, "api", "conference room4 tmute 5"},
      {ESL_CMD_API, "api", "conference room4 hup 5"}}},
};

/* Parses a whole client stream, whole or byte at a time, against the expected commands. */
static void check_c2s(const struct c2s_case *k, const uint8_t *data, size_t len, bool trickle)
{
    size_t off = 0, i = 0, avail = trickle ? 0 : len;
    while (off < len) {
        struct esl_command c;
        const char *err = NULL;
        int rc = esl_parse_command(data + off, avail - off, 0, &c, &err);
        if (rc == ESL_AGAIN) {
            if (avail == len) {
                test_fail(__FILE__, __LINE__, "%s: incomplete tail at %zu", k->file, off);
                return;
            }
            avail++;
            continue;
        }
        if (rc != ESL_OK) {
            test_fail(__FILE__, __LINE__, "%s: command %zu: %s", k->file, i, err);
            return;
        }
        if (trickle && off + c.consumed != avail)
            test_fail(__FILE__, __LINE__, "%s: command %zu complete late", k->file, i);
        const struct cmd_expect *e = &k->cmds[i];
        if (!e->verb) {
            test_fail(__FILE__, __LINE__, "%s: more commands than expected", k->file);
            return;
        }
        if (c.kind != e->kind || !esl_str_eq(c.verb, e->verb) || c.args.len != strlen(e->args) ||
            memcmp(c.args.ptr, e->args, c.args.len) != 0)
            test_fail(__FILE__, __LINE__, "%s: command %zu is %d \"%.*s\"", k->file, i, c.kind,
                      (int)c.line.len, c.line.ptr);
        off += c.consumed;
        i++;
    }
    if (i < sizeof k->cmds / sizeof k->cmds[0] && k->cmds[i].verb)
        test_fail(__FILE__, __LINE__, "%s: %zu commands, expected more", k->file, i);
}

TEST(esl_command_capture_streams)
{
    for (size_t i = 0; i < sizeof c2s_cases / sizeof c2s_cases[0]; i++) {
        const struct c2s_case *k = &c2s_cases[i];
        size_t n = strlen(k->bytes);
        uint8_t *copy = dup_exact(k->bytes, n);
        check_c2s(k, copy, n, false);
        check_c2s(k, copy, n, true);
        xfree(copy);
    }
}

TEST(esl_command_capture_files)
{
    for (size_t i = 0; i < sizeof c2s_cases / sizeof c2s_cases[0]; i++) {
        const struct c2s_case *k = &c2s_cases[i];
        size_t n = 0;
        uint8_t *data = read_capture(k->file, &n);
        REQUIRE(data);
        /* the embedded copy is the file, byte for byte */
        if (n != strlen(k->bytes) || memcmp(data, k->bytes, n) != 0)
            test_fail(__FILE__, __LINE__, "%s differs from its embedded copy", k->file);
        check_c2s(k, data, n, false);
        xfree(data);
    }
}

/* ---- client side: commands ----------------------------------------------------------------- */

TEST(esl_client_commands_bytes)
{
    struct buf b;
    buf_init(&b);
    CHECK_INT(esl_put_client_auth(&b, "ClueCon"), ESL_OK);
    CHECK_INT(esl_put_client_event(&b, ESL_FORMAT_PLAIN, "CUSTOM conference::maintenance"), ESL_OK);
    CHECK_BUF(&b, "auth ClueCon\n\nevent plain CUSTOM conference::maintenance\n\n"); /* esl-05 */
    b.len = b.off = 0;
    esl_put_client_event(&b, ESL_FORMAT_PLAIN, "BACKGROUND_JOB");
    esl_put_client_bgapi(&b, "status", NULL);
    esl_put_client_bgapi(&b, "conference list", "11111111-2222-3333-4444-555555555555");
    esl_put_client_command(&b, "noevents");
    esl_put_client_event(&b, ESL_FORMAT_JSON, "BACKGROUND_JOB");
    esl_put_client_bgapi(&b, "status", NULL);
    esl_put_client_command(&b, "exit");
    CHECK_BUF(&b, "event plain BACKGROUND_JOB\n\nbgapi status\n\nbgapi conference list\n"
                  "Job-UUID: 11111111-2222-3333-4444-555555555555\n\nnoevents\n\n"
                  "event json BACKGROUND_JOB\n\nbgapi status\n\nexit\n\n"); /* esl-04 */
    b.len = b.off = 0;
    CHECK_INT(esl_put_client_api(&b, "conference room1 list"), ESL_OK);
    CHECK_BUF(&b, "api conference room1 list\n\n");
    b.len = b.off = 0;
    CHECK_INT(esl_put_client_api(&b, "status\n\nexit"), ESL_ERROR);
    CHECK_INT(esl_put_client_auth(&b, "a\rb"), ESL_ERROR);
    CHECK_INT(esl_put_client_bgapi(&b, "status", "x\ny"), ESL_ERROR);
    CHECK_INT(esl_put_client_command(&b, "exit\n"), ESL_ERROR);
    CHECK_INT(buf_unread(&b), 0);
    /* what the client writes, the server parses back */
    esl_put_client_bgapi(&b, "conference room1 kick 1", "u-1");
    struct esl_command c;
    const char *err;
    CHECK_INT(esl_parse_command(buf_head(&b), buf_unread(&b), 0, &c, &err), ESL_OK);
    CHECK_INT(c.kind, ESL_CMD_BGAPI);
    CHECK_SPAN(c.api_args, "room1 kick 1");
    CHECK_SPAN(c.job_uuid, "u-1");
    buf_free(&b);
}

/* ---- client side: server messages ------------------------------------------------------------ */

TEST(esl_message_replies_and_responses)
{
    struct esl_message m;
    const char *err = NULL;
    uint8_t *copy = dup_exact(s2c_03, sizeof s2c_03 - 1);
    size_t off = 0, n = sizeof s2c_03 - 1;
    static const enum esl_msg_type types[] = {
        ESL_MSG_AUTH_REQUEST, ESL_MSG_COMMAND_REPLY, ESL_MSG_API_RESPONSE, ESL_MSG_API_RESPONSE,
        ESL_MSG_API_RESPONSE, ESL_MSG_API_RESPONSE,  ESL_MSG_COMMAND_REPLY};
    for (size_t i = 0; i < 7; i++) {
        if (esl_parse_message(copy + off, n - off, 0, &m, &err) != ESL_OK) {
            test_fail(__FILE__, __LINE__, "message %zu: %s", i, err);
            break;
        }
        CHECK_INT(m.type, types[i]);
        if (i == 1) CHECK_SPAN(m.reply_text, "+OK accepted");
        if (i == 3) {
            CHECK_INT(m.body_len, 27);
            CHECK(memcmp(m.body, "+OK No active conferences.\n", 27) == 0);
            CHECK_SPAN(esl_message_header(&m, "content-length"), "27");
        }
        if (i == 6) CHECK_SPAN(m.reply_text, "-ERR command not found");
        off += m.consumed;
    }
    CHECK_INT(off, n);
    xfree(copy);

    /* bgapi's reply carries the Job-UUID twice */
    const char *r = "Content-Type: command/reply\nReply-Text: +OK Job-UUID: x-1\nJob-UUID: x-1\n\n";
    copy = dup_exact(r, strlen(r));
    CHECK_INT(esl_parse_message(copy, strlen(r), 0, &m, &err), ESL_OK);
    CHECK_SPAN(m.job_uuid, "x-1");
    CHECK_SPAN(m.reply_text, "+OK Job-UUID: x-1");
    CHECK(m.body == NULL);
    xfree(copy);

    copy = dup_exact(s2c_02, sizeof s2c_02 - 1);
    off = 0;
    for (int i = 0; i < 3; i++) {
        CHECK_INT(esl_parse_message(copy + off, sizeof s2c_02 - 1 - off, 0, &m, &err), ESL_OK);
        off += m.consumed;
    }
    CHECK_INT(m.type, ESL_MSG_DISCONNECT_NOTICE);
    CHECK_INT(m.body_len, 67);
    xfree(copy);
}

TEST(esl_message_event_plain_decoded)
{
    struct esl_message m;
    const char *err = NULL;
    uint8_t *copy = dup_exact(bj_plain_04, sizeof bj_plain_04 - 1);
    CHECK_INT(esl_parse_message(copy, sizeof bj_plain_04 - 1, 0, &m, &err), ESL_OK);
    CHECK_INT(m.type, ESL_MSG_EVENT_PLAIN);
    CHECK_INT(m.consumed, sizeof bj_plain_04 - 1);
    CHECK_INT(m.event_n_headers, 16);
    CHECK_INT(m.event_body_len, 27);
    CHECK(m.event_block[m.event_block_len - 1] == '\n' && m.event_block[m.event_block_len] == '\n');
    struct arena a;
    arena_init(&a);
    struct esl_event ev;
    CHECK_INT(esl_message_event(&m, &a, &ev, &err), ESL_OK);
    CHECK_INT(ev.n_headers, 16);
    CHECK_STR(esl_event_get(&ev, "Event-Name", NULL), "BACKGROUND_JOB");
    CHECK_STR(esl_event_get(&ev, "FreeSWITCH-IPv6", NULL), "::1");
    CHECK_STR(esl_event_get(&ev, "Event-Date-GMT", NULL), "Tue, 24 Nov 2026 06:08:40 GMT");
    CHECK_STR(esl_event_get(&ev, "Job-Command-Arg", NULL), "list");
    CHECK(esl_event_get(&ev, "Content-Length", NULL) == NULL);
    CHECK_STR(ev.body, "+OK No active conferences.\n");
    /* and back to the same bytes */
    struct buf b;
    buf_init(&b);
    esl_put_event(&b, ESL_FORMAT_PLAIN, &ev);
    CHECK_BUF(&b, bj_plain_04);
    buf_free(&b);
    /* not a plain event */
    struct esl_message m2;
    const char *r = "Content-Type: auth/request\n\n";
    CHECK_INT(esl_parse_message((const uint8_t *)r, strlen(r), 0, &m2, &err), ESL_OK);
    CHECK_INT(esl_message_event(&m2, &a, &ev, &err), ESL_ERROR);
    arena_free(&a);
    xfree(copy);
}

TEST(esl_message_event_json_left_to_caller)
{
    struct esl_message m;
    const char *err = NULL;
    uint8_t *copy = dup_exact(bj_json_04, sizeof bj_json_04 - 1);
    CHECK_INT(esl_parse_message(copy, sizeof bj_json_04 - 1, 0, &m, &err), ESL_OK);
    CHECK_INT(m.type, ESL_MSG_EVENT_JSON);
    CHECK_INT(m.body_len, 915);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)m.body, m.body_len, 0, &jerr);
    CHECK(root != NULL);
    if (root) {
        CHECK_STR(json_string_value(json_object_get(root, "Job-UUID")),
                  "c9b6e1e6-06c6-4f6d-ac4f-6eb21ddeb895");
        json_decref(root);
    }
    xfree(copy);
}

TEST(esl_message_malformed)
{
    const char *err = NULL;
    CHECK_INT(msg_rc("", 0, 0, &err), ESL_AGAIN);
    CHECK_INT(msg_rc("Content-Type: auth/request\n", 27, 0, &err), ESL_AGAIN);
    const char *partial = "Content-Type: api/response\nContent-Length: 10\n\n12345";
    CHECK_INT(msg_rc(partial, strlen(partial), 0, &err), ESL_AGAIN);
    CHECK_INT(msg_rc(partial, strlen(partial), 40, &err), ESL_ERROR); /* cannot fit */
    CHECK_INT(msg_rc("\n", 1, 0, &err), ESL_ERROR);
    CHECK_INT(msg_rc("no colon here\n\n", 15, 0, &err), ESL_ERROR);
    CHECK_INT(msg_rc(": no name\n\n", 11, 0, &err), ESL_ERROR);
    CHECK_INT(msg_rc("Content-Length: x\n\n", 19, 0, &err), ESL_ERROR);
    CHECK_INT(msg_rc("Content-Length: 1\nContent-Length: 1\n\nx", 38, 0, &err), ESL_ERROR);
    CHECK_INT(msg_rc("A: \0\n\n", 6, 0, &err), ESL_ERROR);
    CHECK_INT(msg_rc("Content-Type: auth/request", 26, 20, &err), ESL_ERROR);
    /* too many headers */
    struct buf b;
    buf_init(&b);
    for (int i = 0; i < ESL_MAX_MESSAGE_HEADERS; i++)
        buf_append(&b, "A: b\n", 5);
    buf_append(&b, "\n", 1);
    CHECK_INT(msg_rc((const char *)b.data, b.len, 0, &err), ESL_OK);
    b.len--;
    buf_append(&b, "A: b\n\n", 6);
    CHECK_INT(msg_rc((const char *)b.data, b.len, 0, &err), ESL_ERROR);
    buf_free(&b);
    /* plain events that are not well-formed inside */
    static const char *const bad_events[] = {
        "Content-Length: 8\nContent-Type: text/event-plain\n\nA: b\nC: ",   /* no empty line */
        "Content-Length: 7\nContent-Type: text/event-plain\n\nno col\n",    /* no ':' */
        "Content-Length: 9\nContent-Type: text/event-plain\n\nA: b\n\nxyz", /* body, no length */
        "Content-Length: 27\nContent-Type: text/event-plain\n\nA: b\nContent-Length: 5\n\nxyz",
        "Content-Length: 27\nContent-Type: text/event-plain\n\nA: b\nContent-Length: 1\n\nxyz",
        "Content-Length: 28\nContent-Type: text/event-plain\n\nA: b\nContent-Length: -3\n\nxyz",
        "Content-Type: text/event-plain\n\n", /* no body at all */
    };
    for (size_t i = 0; i < sizeof bad_events / sizeof bad_events[0]; i++)
        if (msg_rc(bad_events[i], strlen(bad_events[i]), 0, &err) != ESL_ERROR)
            test_fail(__FILE__, __LINE__, "accepted bad event %zu", i);
    /* a NUL byte in an event's header lines (a value may still decode to one: %00) */
    static const char nul_ev[] = "Content-Length: 7\nContent-Type: text/event-plain\n\nA\0: b\n\n";
    CHECK_INT(msg_rc(nul_ev, sizeof nul_ev - 1, 0, &err), ESL_ERROR);
    /* a well-formed one with a body, CRLF outside */
    const char *good = "Content-Length: 27\r\nContent-Type: text/event-plain\r\n\r\n"
                       "A: b\nContent-Length: 3\n\nxyz";
    struct esl_message m;
    CHECK_INT(esl_parse_message((const uint8_t *)good, strlen(good), 0, &m, &err), ESL_OK);
    CHECK_INT(m.event_n_headers, 1);
    CHECK_INT(m.event_body_len, 3);
    CHECK(m.event_body && memcmp(m.event_body, "xyz", 3) == 0);
    /* an event with no headers at all */
    const char *empty = "Content-Length: 1\nContent-Type: text/event-plain\n\n\n";
    CHECK_INT(esl_parse_message((const uint8_t *)empty, strlen(empty), 0, &m, &err), ESL_OK);
    CHECK_INT(m.event_n_headers, 0);
    CHECK(m.event_body == NULL);
}

TEST(esl_event_parse_plain_limits)
{
    struct arena a;
    arena_init(&a);
    struct buf b;
    buf_init(&b);
    for (int i = 0; i < ESL_MAX_EVENT_HEADERS; i++)
        buf_append(&b, "Variable: x%20y\n", 16);
    buf_append(&b, "\n", 1);
    struct esl_event ev;
    const char *err = NULL;
    CHECK_INT(esl_event_parse_plain(b.data, b.len, &a, &ev, &err), ESL_OK);
    CHECK_INT(ev.n_headers, ESL_MAX_EVENT_HEADERS);
    CHECK_STR(ev.headers[ESL_MAX_EVENT_HEADERS - 1].value, "x y");
    b.len--;
    buf_append(&b, "One: more\n\n", 11);
    CHECK_INT(esl_event_parse_plain(b.data, b.len, &a, &ev, &err), ESL_ERROR);
    CHECK_INT(ev.n_headers, 0);
    buf_free(&b);
    arena_free(&a);
}

/* ---- the captures, end to end ------------------------------------------------------------------
 */

static const char *const s2c_files[] = {
    "esl-01-connect-banner-auth-ok.s2c.raw",
    "esl-02-auth-wrong-password.s2c.raw",
    "esl-03-api-status-and-empty-conference-list.s2c.raw",
    "esl-04-bgapi-background-job-and-exit.s2c.raw",
    "esl-05-conference-maintenance-events-plain.s2c.raw",
    "esl-06-conference-maintenance-events-json.s2c.raw",
    "esl-07-conference-api-list-xml-json-control.s2c.raw",
    "esl-08-event-plain-all-one-member-join-hup.s2c.raw",
    "esl-09-conference-more-actions-plain.s2c.raw",
    "esl-10-conference-more-actions-control.s2c.raw",
};

/* Every message of every server stream parses; every plain event decodes and encodes back to the
 * same bytes; every JSON event is valid JSON; the totals are those of the captures. */
TEST(esl_message_capture_files_roundtrip)
{
    size_t counts[ESL_MSG_LOG_DATA + 1] = {0};
    struct arena a;
    arena_init(&a);
    struct buf out;
    buf_init(&out);
    for (size_t f = 0; f < sizeof s2c_files / sizeof s2c_files[0]; f++) {
        size_t n = 0, off = 0;
        uint8_t *data = read_capture(s2c_files[f], &n);
        REQUIRE(data);
        while (off < n) {
            struct esl_message m;
            const char *err = NULL;
            if (esl_parse_message(data + off, n - off, 0, &m, &err) != ESL_OK) {
                test_fail(__FILE__, __LINE__, "%s at %zu: %s", s2c_files[f], off, err);
                break;
            }
            counts[m.type]++;
            if (m.type == ESL_MSG_EVENT_PLAIN) {
                struct esl_event ev;
                arena_reset(&a);
                if (esl_message_event(&m, &a, &ev, &err) != ESL_OK) {
                    test_fail(__FILE__, __LINE__, "%s at %zu: %s", s2c_files[f], off, err);
                } else {
                    out.len = out.off = 0;
                    esl_put_event(&out, ESL_FORMAT_PLAIN, &ev);
                    if (buf_unread(&out) != m.consumed ||
                        memcmp(buf_head(&out), data + off, m.consumed) != 0)
                        test_fail(__FILE__, __LINE__, "%s at %zu: re-encoded event differs",
                                  s2c_files[f], off);
                    CHECK(esl_event_get(&ev, "Event-Name", NULL) != NULL);
                }
            } else if (m.type == ESL_MSG_EVENT_JSON) {
                json_error_t jerr;
                json_t *root = json_loadb((const char *)m.body, m.body_len, 0, &jerr);
                if (!root) test_fail(__FILE__, __LINE__, "%s at %zu: bad JSON", s2c_files[f], off);
                json_decref(root);
            }
            off += m.consumed;
        }
        CHECK_INT(off, n);
        xfree(data);
    }
    CHECK_INT(counts[ESL_MSG_EVENT_PLAIN], 97);
    CHECK_INT(counts[ESL_MSG_EVENT_JSON], 23);
    CHECK_INT(counts[ESL_MSG_API_RESPONSE], 35);
    CHECK_INT(counts[ESL_MSG_COMMAND_REPLY], 23);
    CHECK_INT(counts[ESL_MSG_AUTH_REQUEST], 10);
    CHECK_INT(counts[ESL_MSG_DISCONNECT_NOTICE], 3);
    CHECK_INT(counts[ESL_MSG_OTHER], 0);
    buf_free(&out);
    arena_free(&a);
}

/* esl-05, read as ccomet's client will: the conference::maintenance actions in order, decoded. */
TEST(esl_message_capture_05_maintenance_file)
{
    static const char *const actions[] = {
        "conference-create", "add-member",        "floor-change",   "add-member",
        "start-talking",     "floor-change",      "play-file-done", "mute-member",
        "unmute-member",     "stop-talking",      "deaf-member",    "start-talking",
        "undeaf-member",     "mute-member",       "floor-change",   "del-member",
        "floor-change",      "play-file-done",    "kick-member",    "floor-change",
        "del-member",        "conference-destroy"};
    size_t n = 0, off = 0, i = 0;
    uint8_t *data = read_capture("esl-05-conference-maintenance-events-plain.s2c.raw", &n);
    REQUIRE(data);
    struct arena a;
    arena_init(&a);
    while (off < n) {
        struct esl_message m;
        const char *err = NULL;
        if (esl_parse_message(data + off, n - off, 0, &m, &err) != ESL_OK) {
            test_fail(__FILE__, __LINE__, "at %zu: %s", off, err);
            break;
        }
        off += m.consumed;
        if (m.type != ESL_MSG_EVENT_PLAIN) continue;
        struct esl_event ev;
        arena_reset(&a);
        if (esl_message_event(&m, &a, &ev, &err) != ESL_OK) {
            test_fail(__FILE__, __LINE__, "%s", err);
            continue;
        }
        CHECK_STR(ev.headers[0].name, "Event-Subclass");
        CHECK_STR(esl_event_get(&ev, "Event-Subclass", NULL), "conference::maintenance");
        CHECK_STR(esl_event_get(&ev, "Event-Name", NULL), "CUSTOM");
        CHECK_STR(esl_event_get(&ev, "Conference-Name", NULL), "room1");
        if (i < sizeof actions / sizeof actions[0])
            CHECK_STR(esl_event_get(&ev, "Action", NULL), actions[i]);
        if (i == 1) { /* Alice joins */
            CHECK_STR(esl_event_get(&ev, "Member-ID", NULL), "1");
            CHECK_STR(esl_event_get(&ev, "Caller-Caller-ID-Name", NULL), "Alice");
            CHECK_STR(esl_event_get(&ev, "Caller-Callee-ID-Name", NULL), "Outbound Call");
            CHECK_STR(esl_event_get(&ev, "Member-Type", NULL), "member");
        }
        if (i == 2) { /* floor-change: Old-ID none, and the conference headers twice */
            CHECK_STR(esl_event_get(&ev, "Old-ID", NULL), "none");
            CHECK_STR(esl_event_get(&ev, "New-ID", NULL), "1");
            size_t names = 0;
            for (size_t h = 0; h < ev.n_headers; h++)
                names += strcmp(ev.headers[h].name, "Conference-Name") == 0;
            CHECK_INT(names, 2);
        }
        i++;
    }
    CHECK_INT(i, sizeof actions / sizeof actions[0]);
    arena_free(&a);
    xfree(data);
}

/* esl-05 and esl-06 are one run seen by a plain and a JSON listener: each plain event, encoded as
 * JSON, is the JSON listener's message byte for byte. */
TEST(esl_message_capture_05_as_json_is_06_file)
{
    size_t n5 = 0, n6 = 0, off5 = 0, off6 = 0, events = 0;
    uint8_t *d5 = read_capture("esl-05-conference-maintenance-events-plain.s2c.raw", &n5);
    uint8_t *d6 = read_capture("esl-06-conference-maintenance-events-json.s2c.raw", &n6);
    if (!d5 || !d6) {
        xfree(d5);
        xfree(d6);
        return;
    }
    struct arena a;
    arena_init(&a);
    struct buf out;
    buf_init(&out);
    const char *err = NULL;
    while (off5 < n5 && off6 < n6) {
        struct esl_message m5, m6;
        if (esl_parse_message(d5 + off5, n5 - off5, 0, &m5, &err) != ESL_OK) break;
        off5 += m5.consumed;
        if (m5.type != ESL_MSG_EVENT_PLAIN) continue;
        do {
            if (esl_parse_message(d6 + off6, n6 - off6, 0, &m6, &err) != ESL_OK) break;
            off6 += m6.consumed;
        } while (m6.type != ESL_MSG_EVENT_JSON && off6 < n6);
        struct esl_event ev;
        arena_reset(&a);
        CHECK_INT(esl_message_event(&m5, &a, &ev, &err), ESL_OK);
        out.len = out.off = 0;
        esl_put_event(&out, ESL_FORMAT_JSON, &ev);
        if (buf_unread(&out) != m6.consumed ||
            memcmp(buf_head(&out), d6 + off6 - m6.consumed, m6.consumed) != 0)
            test_fail(__FILE__, __LINE__, "event %zu differs as JSON", events);
        events++;
    }
    CHECK_INT(events, 22);
    buf_free(&out);
    arena_free(&a);
    xfree(d5);
    xfree(d6);
}

/* A whole server stream fed one byte at a time: AGAIN until each message is complete, then the
 * same messages as when parsed whole. */
TEST(esl_message_capture_04_byte_at_a_time_file)
{
    size_t n = 0;
    uint8_t *data = read_capture("esl-04-bgapi-background-job-and-exit.s2c.raw", &n);
    REQUIRE(data);
    size_t off = 0, avail = 0, msgs = 0;
    while (off < n) {
        struct esl_message m;
        const char *err = NULL;
        uint8_t *chunk = dup_exact(data + off, avail - off);
        int rc = esl_parse_message(chunk, avail - off, 0, &m, &err);
        xfree(chunk);
        if (rc == ESL_AGAIN) {
            if (avail == n) {
                test_fail(__FILE__, __LINE__, "incomplete tail at %zu", off);
                break;
            }
            avail++;
            continue;
        }
        if (rc != ESL_OK) {
            test_fail(__FILE__, __LINE__, "at %zu: %s", off, err);
            break;
        }
        CHECK_INT(off + m.consumed, avail);
        off += m.consumed;
        msgs++;
    }
    CHECK_INT(msgs, 13);
    xfree(data);
}

/* esl-04 rebuilt by the server's encoders, every byte: the replies from the commands esl-04's
 * client sent, and its events from what the client would decode of them. */
TEST(esl_replies_capture_04_whole_file)
{
    size_t n = 0;
    uint8_t *data = read_capture("esl-04-bgapi-background-job-and-exit.s2c.raw", &n);
    REQUIRE(data);
    struct arena a;
    arena_init(&a);
    struct buf out;
    buf_init(&out);
    esl_put_auth_request(&out);
    const char *c2s = c2s_cases[3].bytes;
    size_t c2s_len = strlen(c2s), coff = 0;
    enum esl_format fmt = ESL_FORMAT_PLAIN;
    while (coff < c2s_len) {
        struct esl_command c;
        const char *err;
        if (esl_parse_command((const uint8_t *)c2s + coff, c2s_len - coff, 0, &c, &err) != ESL_OK)
            break;
        coff += c.consumed;
        switch (c.kind) {
        case ESL_CMD_AUTH: esl_put_command_reply(&out, ESL_REPLY_ACCEPTED); break;
        case ESL_CMD_EVENT:
            fmt = c.format;
            esl_put_command_reply(&out, fmt == ESL_FORMAT_JSON ? ESL_REPLY_EVENTS_JSON
                                                               : ESL_REPLY_EVENTS_PLAIN);
            break;
        case ESL_CMD_NOEVENTS: esl_put_command_reply(&out, ESL_REPLY_NO_EVENTS); break;
        case ESL_CMD_EXIT:
            esl_put_command_reply(&out, ESL_REPLY_BYE);
            esl_put_disconnect_notice(&out);
            break;
        case ESL_CMD_BGAPI: {
            /* find the event FreeSWITCH sent for it (its uuid and its output come from there) */
            size_t o = out.len; /* where the reply goes: same offset in the capture */
            struct esl_message m;
            const char *e2;
            if (esl_parse_message(data + o, n - o, 0, &m, &e2) != ESL_OK) break;
            esl_put_command_reply_job(&out, m.job_uuid.ptr, m.job_uuid.len);
            if (c.job_uuid.ptr)
                CHECK(m.job_uuid.len == c.job_uuid.len &&
                      memcmp(m.job_uuid.ptr, c.job_uuid.ptr, c.job_uuid.len) == 0);
            o += m.consumed;
            if (esl_parse_message(data + o, n - o, 0, &m, &e2) != ESL_OK) break;
            struct esl_event ev;
            arena_reset(&a);
            if (m.type == ESL_MSG_EVENT_PLAIN) {
                esl_message_event(&m, &a, &ev, &e2);
            } else { /* JSON: read it with jansson, in order (no duplicate keys here) */
                json_error_t jerr;
                json_t *root = json_loadb((const char *)m.body, m.body_len, 0, &jerr);
                if (!root) break;
                esl_event_init(&ev, &a);
                const char *k;
                json_t *v;
                json_object_foreach(root, k, v)
                {
                    if (!strcmp(k, "_body"))
                        esl_event_set_body(&ev, json_string_value(v), json_string_length(v));
                    else if (strcmp(k, "Content-Length"))
                        esl_event_add(&ev, k, json_string_value(v));
                }
                json_decref(root);
            }
            /* the event's own headers are the ones bgapi fills in */
            struct esl_event_base base = base_04;
            base.sequence = strtoull(esl_event_get(&ev, "Event-Sequence", NULL), NULL, 10);
            struct esl_event job;
            char *arg = c.api_args.ptr ? xstrndup(c.api_args.ptr, c.api_args.len) : NULL;
            char *cmdname = xstrndup(c.api_command.ptr, c.api_command.len);
            esl_event_background_job(&job, &a, &base, esl_event_get(&ev, "Job-UUID", NULL), cmdname,
                                     arg, ev.body, ev.body_len);
            esl_put_event(&out, fmt, &job);
            xfree(arg);
            xfree(cmdname);
            break;
        }
        default: test_fail(__FILE__, __LINE__, "unexpected command"); break;
        }
    }
    CHECK_BYTES(&out, data, n);
    buf_free(&out);
    arena_free(&a);
    xfree(data);
}
