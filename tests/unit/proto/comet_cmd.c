/* Unit tests for src/proto/comet_cmd.c and src/proto/envelope.c. */
#include "test.h"

#include "core/buf.h"
#include "proto/comet_cmd.h"
#include "proto/envelope.h"

#include <stdlib.h>

static struct ccmd *parse(const char *s, int expect)
{
    static struct ccmd cmd;
    const char *err = NULL;
    CHECK_INT(ccmd_parse(s, strlen(s), &cmd, &err), expect);
    return &cmd;
}

static int str_is(struct ccmd_str s, const char *v)
{
    return s.len == strlen(v) && memcmp(s.s, v, s.len) == 0;
}

TEST(ccmd_subscription_splits_like_cppcomet)
{
    struct ccmd *c = parse("subscription\nweb_a\n\ntrack_b\r\nuser_status_2 x.y", CCMD_OK);
    CHECK_INT(c->kind, CCMD_SUBSCRIPTION);
    CHECK_INT(c->n_names, 5);
    CHECK(str_is(c->names[0], "web_a"));
    CHECK(str_is(c->names[1], "track_b"));
    CHECK(str_is(c->names[2], "user_status_2"));
    CHECK(str_is(c->names[3], "x"));
    CHECK(str_is(c->names[4], "y"));
    c = parse("subscription", CCMD_OK);
    CHECK_INT(c->n_names, 0);
}

TEST(ccmd_web_pipe2_keeps_newlines_in_the_message)
{
    struct ccmd *c = parse("web_pipe2\nweb_chat\nmsg\n*\nline1\nline2", CCMD_OK);
    CHECK_INT(c->kind, CCMD_WEB_PIPE2);
    CHECK(str_is(c->pipe, "web_chat"));
    CHECK(str_is(c->event, "msg"));
    CHECK(str_is(c->auth_type, "*"));
    CHECK(str_is(c->message, "line1\nline2"));
    parse("web_pipe2\nweb_chat\nmsg", CCMD_ERROR);
}

TEST(ccmd_other_commands)
{
    struct ccmd *c = parse("pipe_log\nweb_chat\nm1\n", CCMD_OK);
    CHECK_INT(c->kind, CCMD_PIPE_LOG);
    CHECK(str_is(c->marker, "m1"));
    c = parse("user_data\nm2\n42", CCMD_OK);
    CHECK_INT(c->user_id, 42);
    parse("user_data\nm2\nx42", CCMD_ERROR);
    c = parse("user_status\n7", CCMD_OK);
    CHECK_INT(c->user_id, 7);
    /* 19 digits past INT64_MAX are refused, not overflowed (audit L2; UBSan would abort) */
    parse("user_status\n9999999999999999999", CCMD_ERROR);
    c = parse("user_status\n9223372036854775807", CCMD_OK);
    CHECK(c->user_id == INT64_MAX);
    c = parse("pipe_since\nweb_chat\n99", CCMD_OK);
    CHECK_INT(c->last_id, 99);
    parse("pipe_since\nweb_chat\n-1", CCMD_ERROR);
    CHECK_INT(parse("statistics\n{}", CCMD_OK)->kind, CCMD_STATISTICS);
    CHECK_INT(parse("cgi_call\nx", CCMD_OK)->kind, CCMD_IGNORED);
    c = parse("msg_ack\n5\n7\n", CCMD_OK);
    CHECK_INT(c->kind, CCMD_MSG_ACK);
    CHECK_INT((long long)c->n_acks, 2);
    CHECK_INT(c->acks[1], 7);
    parse("msg_ack", CCMD_ERROR);
    parse("msg_ack\n0", CCMD_ERROR);
    parse("msg_ack\n5\nx", CCMD_ERROR);
    parse("bogus\nx", CCMD_ERROR);
    parse("", CCMD_ERROR);
}

TEST(envelope_escapes_and_repairs_utf8)
{
    struct buf b;
    buf_init(&b);
    env_begin(&b);
    env_str(&b, "data", "a\"b\\c\n\x01\xc3\xa9\xff", 10);
    env_int(&b, "id", -5);
    env_bool(&b, "ok", true);
    env_end(&b);
    buf_put_u8(&b, 0);
    CHECK_STR((const char *)buf_head(&b),
              "{\"data\":\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\xef\xbf\xbd\",\"id\":-5,\"ok\":true}");
    buf_free(&b);
}
