/* Unit tests for src/proto/mysql_packet.c: framing and continuation packets, length-encoded
 * integers, the connection phase (handshake, HandshakeResponse41 captures built per the protocol
 * documentation, SSLRequest, mysql_native_password), the exact bytes of every server packet and
 * COM_STMT_EXECUTE parsing. */
#include "test.h"

#include <stdlib.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "core/alloc.h"
#include "proto/mysql_packet.h"

static const uint8_t native_scramble[20] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                            11, 12, 13, 14, 15, 16, 17, 18, 19, 20};

/* An exact-length heap copy, so that ASan catches any read past the end. */
static uint8_t *dup_exact(const void *p, size_t n)
{
    uint8_t *q = xmalloc(n ? n : 1);
    if (n) memcpy(q, p, n);
    return q;
}

static void fill_pattern(uint8_t *p, size_t n, unsigned salt)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 31u + salt) ^ (i >> 12));
}

/* ---- integers --------------------------------------------------------------------------- */

TEST(mysql_lenenc_boundaries)
{
    static const struct {
        uint64_t v;
        size_t size;
        uint8_t first;
    } cases[] = {
        {0, 1, 0x00},        {250, 1, 0xfa},        {251, 3, 0xfc},
        {65535, 3, 0xfc},    {65536, 4, 0xfd},      {(1u << 24) - 1, 4, 0xfd},
        {1u << 24, 9, 0xfe}, {UINT64_MAX, 9, 0xfe},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf b;
        buf_init(&b);
        mysql_put_lenenc_int(&b, cases[i].v);
        CHECK_INT(b.len, cases[i].size);
        CHECK_INT(mysql_lenenc_int_size(cases[i].v), cases[i].size);
        CHECK_INT(b.data[0], cases[i].first);
        uint8_t *copy = dup_exact(b.data, b.len);
        const uint8_t *p = copy;
        uint64_t v = 12345;
        CHECK_INT(mysql_get_lenenc_int(&p, copy + b.len, &v), MYSQL_OK);
        CHECK(v == cases[i].v);
        CHECK(p == copy + b.len);
        /* Every truncation of a multi-byte encoding is an error and leaves *p alone. */
        for (size_t cut = 0; cut < b.len; cut++) {
            p = copy;
            CHECK_INT(mysql_get_lenenc_int(&p, copy + cut, &v), MYSQL_ERROR);
            CHECK(p == copy);
        }
        xfree(copy);
        buf_free(&b);
    }
}

TEST(mysql_lenenc_exact_bytes)
{
    struct buf b;
    buf_init(&b);
    mysql_put_lenenc_int(&b, 251);
    mysql_put_lenenc_int(&b, 0xffffff); /* 0xfd and 3 bytes, not 4 (CppComet's bug) */
    mysql_put_lenenc_int(&b, 0x1000000);
    static const uint8_t want[] = {0xfc, 0xfb, 0x00, 0xfd, 0xff, 0xff, 0xff, 0xfe,
                                   0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
    CHECK_INT(b.len, sizeof want);
    CHECK_MEM(b.data, want, sizeof want);
    buf_free(&b);
}

TEST(mysql_lenenc_null_and_0xff)
{
    static const uint8_t in[] = {0xfb, 0xff, 0x07};
    const uint8_t *p = in;
    uint64_t v = 99;
    CHECK_INT(mysql_get_lenenc_int(&p, in + 3, &v), MYSQL_AGAIN);
    CHECK_INT(v, 0);
    CHECK(p == in + 1);
    CHECK_INT(mysql_get_lenenc_int(&p, in + 3, &v), MYSQL_ERROR);
    CHECK(p == in + 1);
    p = in + 2;
    CHECK_INT(mysql_get_lenenc_int(&p, in + 3, &v), MYSQL_OK);
    CHECK_INT(v, 7);
    CHECK_INT(mysql_get_lenenc_int(&p, in + 3, &v), MYSQL_ERROR); /* at the end */
}

TEST(mysql_fixed_ints_and_lenenc_str)
{
    struct buf b;
    buf_init(&b);
    mysql_put_int2(&b, 0x0102);
    mysql_put_int3(&b, 0x030405);
    mysql_put_int4(&b, 0x06070809);
    mysql_put_int8(&b, 0x0a0b0c0d0e0f1011ull);
    mysql_put_lenenc_str(&b, "hey", 3);
    static const uint8_t want[] = {0x02, 0x01, 0x05, 0x04, 0x03, 0x09, 0x08, 0x07, 0x06, 0x11, 0x10,
                                   0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 3,    'h',  'e',  'y'};
    CHECK_INT(b.len, sizeof want);
    CHECK_MEM(b.data, want, sizeof want);
    buf_free(&b);

    /* A 300-byte string takes a 3-byte length. */
    char s[300];
    memset(s, 'x', sizeof s);
    buf_init(&b);
    mysql_put_lenenc_str(&b, s, sizeof s);
    CHECK_INT(b.len, 303);
    CHECK_INT(b.data[0], 0xfc);
    CHECK_INT(b.data[1] | b.data[2] << 8, 300);
    buf_free(&b);
}

/* ---- framing ---------------------------------------------------------------------------- */

TEST(mysql_frame_several_packets_in_one_buffer)
{
    struct buf in, scratch;
    buf_init(&in);
    buf_init(&scratch);
    uint8_t seq = 0;
    mysql_put_payload(&in, &seq, "\x03SELECT 1", 9);
    seq = 0;
    mysql_put_payload(&in, &seq, "\x0e", 1); /* COM_PING */
    seq = 0;
    mysql_put_payload(&in, &seq, "", 0);
    seq = 5;
    mysql_put_payload(&in, &seq, "\x01", 1);
    size_t whole = in.len;
    buf_append(&in, "\x09\x00\x00", 3); /* the start of one more header */

    static const struct {
        const char *payload;
        size_t len;
        uint8_t seq;
    } want[] = {{"\x03SELECT 1", 9, 0}, {"\x0e", 1, 0}, {"", 0, 0}, {"\x01", 1, 5}};
    size_t off = 0;
    for (size_t i = 0; i < 4; i++) {
        struct mysql_frame f;
        const char *err = NULL;
        CHECK_INT(mysql_frame_parse(in.data + off, in.len - off, 1024, &scratch, &f, &err),
                  MYSQL_OK);
        CHECK_INT(f.len, want[i].len);
        CHECK_INT(f.seq, want[i].seq);
        CHECK_INT(f.consumed, 4 + want[i].len);
        CHECK(f.payload == in.data + off + 4); /* single packets are not copied */
        CHECK_MEM(f.payload, want[i].payload, want[i].len);
        off += f.consumed;
    }
    CHECK_INT(off, whole);
    struct mysql_frame f;
    const char *err = NULL;
    CHECK_INT(mysql_frame_parse(in.data + off, in.len - off, 1024, &scratch, &f, &err),
              MYSQL_AGAIN);
    CHECK_INT(mysql_frame_parse(in.data, 0, 1024, &scratch, &f, &err), MYSQL_AGAIN);
    buf_free(&in);
    buf_free(&scratch);
}

TEST(mysql_frame_split_byte_by_byte)
{
    static const uint8_t pkt[] = {0x0a, 0x00, 0x00, 0x03, 0x03, 's', 'e',
                                  'l',  'e',  'c',  't',  ' ',  '1', '2'};
    struct buf scratch;
    buf_init(&scratch);
    for (size_t n = 0; n < sizeof pkt; n++) {
        uint8_t *part = dup_exact(pkt, n);
        struct mysql_frame f;
        const char *err = NULL;
        CHECK_INT(mysql_frame_parse(part, n, 64, &scratch, &f, &err), MYSQL_AGAIN);
        xfree(part);
    }
    uint8_t *all = dup_exact(pkt, sizeof pkt);
    struct mysql_frame f;
    const char *err = NULL;
    CHECK_INT(mysql_frame_parse(all, sizeof pkt, 64, &scratch, &f, &err), MYSQL_OK);
    CHECK_INT(f.len, 10);
    CHECK_INT(f.seq, 3);
    CHECK_INT(f.consumed, sizeof pkt);
    CHECK_MEM(f.payload, "\x03select 12", 10);
    xfree(all);
    buf_free(&scratch);
}

/* Frames `len` bytes with mysql_put_payload, checks every header, parses them back. */
static void check_large_round_trip(size_t len)
{
    uint8_t *payload = xmalloc(len);
    fill_pattern(payload, len, (unsigned)len);
    struct buf out, scratch;
    buf_init(&out);
    buf_init(&scratch);
    uint8_t seq = 7;
    mysql_put_payload(&out, &seq, payload, len);
    size_t packets = len / MYSQL_MAX_PACKET_PAYLOAD + 1;
    CHECK_INT(seq, 7 + packets);
    CHECK_INT(out.len, len + 4 * packets);
    for (size_t k = 0, at = 0; k < packets; k++) {
        size_t n = k + 1 < packets ? MYSQL_MAX_PACKET_PAYLOAD : len % MYSQL_MAX_PACKET_PAYLOAD;
        CHECK_INT(out.data[at] | out.data[at + 1] << 8 | out.data[at + 2] << 16, n);
        CHECK_INT(out.data[at + 3], 7 + k);
        at += 4 + n;
    }

    struct mysql_frame f;
    const char *err = NULL;
    /* Everything but the last byte, and only the first full packet: more is needed. */
    CHECK_INT(mysql_frame_parse(out.data, out.len - 1, len, &scratch, &f, &err), MYSQL_AGAIN);
    CHECK_INT(mysql_frame_parse(out.data, 4 + MYSQL_MAX_PACKET_PAYLOAD, len, &scratch, &f, &err),
              MYSQL_AGAIN);
    /* A read that ends at any offset around a chunk boundary or the next header is AGAIN (the
     * parser keeps no state: the connection re-parses its buffered prefix). */
    for (size_t k = 0, at = 0; k < packets; k++) {
        size_t n = k + 1 < packets ? MYSQL_MAX_PACKET_PAYLOAD : len % MYSQL_MAX_PACKET_PAYLOAD;
        for (size_t cut = at + n > 12 ? at + n - 12 : 0; cut < at + n + 4 + 12; cut++) {
            if (cut >= out.len) break;
            CHECK_INT(mysql_frame_parse(out.data, cut, len, &scratch, &f, &err), MYSQL_AGAIN);
        }
        at += 4 + n;
    }
    CHECK_INT(mysql_frame_parse(out.data, out.len, len, &scratch, &f, &err), MYSQL_OK);
    CHECK_INT(f.len, len);
    CHECK_INT(f.consumed, out.len);
    CHECK_INT(f.seq, 7 + packets - 1);
    CHECK(f.payload == scratch.data);
    CHECK(memcmp(f.payload, payload, len) == 0);
    /* One byte less allowed: refused. */
    err = NULL;
    CHECK_INT(mysql_frame_parse(out.data, out.len, len - 1, &scratch, &f, &err), MYSQL_ERROR);
    CHECK(err != NULL);

    /* Building the same payload in place gives the same bytes, also when the output buffer has
     * consumed bytes at its front that buf_reserve compacts away in the middle of it. */
    for (int consumed_front = 0; consumed_front < 2; consumed_front++) {
        struct buf b;
        buf_init(&b);
        if (consumed_front) {
            uint8_t junk[1000] = {0};
            buf_append(&b, junk, sizeof junk);
            buf_consume(&b, 990);
        }
        size_t before = buf_unread(&b);
        seq = 7;
        size_t start = mysql_packet_start(&b);
        CHECK_INT(start, before);
        buf_append(&b, payload, len);
        mysql_packet_end(&b, start, &seq);
        CHECK_INT(seq, 7 + packets);
        CHECK_INT(buf_unread(&b), before + out.len);
        CHECK(memcmp(buf_head(&b) + before, out.data, out.len) == 0);
        buf_free(&b);
    }
    xfree(payload);
    buf_free(&out);
    buf_free(&scratch);
}

TEST(mysql_frame_continuation_16mib_plus)
{
    check_large_round_trip(MYSQL_MAX_PACKET_PAYLOAD + 100);
}

TEST(mysql_frame_continuation_exactly_0xffffff)
{
    /* A full packet then a trailing empty one; without the empty one the payload is unfinished. */
    check_large_round_trip(MYSQL_MAX_PACKET_PAYLOAD);
}

TEST(mysql_frame_continuation_two_full_chunks)
{
    check_large_round_trip(2 * (size_t)MYSQL_MAX_PACKET_PAYLOAD + 3);
}

TEST(mysql_frame_oversize_known_from_headers)
{
    struct buf scratch;
    buf_init(&scratch);
    struct mysql_frame f;
    const char *err = NULL;
    /* The header alone announces 1000 bytes: refused before any body arrives. */
    static const uint8_t hdr[] = {0xe8, 0x03, 0x00, 0x00};
    CHECK_INT(mysql_frame_parse(hdr, 4, 999, &scratch, &f, &err), MYSQL_ERROR);
    CHECK(err != NULL);
    CHECK_INT(mysql_frame_parse(hdr, 4, 1000, &scratch, &f, &err), MYSQL_AGAIN);
    /* A full first packet is refused under a small limit. */
    static const uint8_t full[] = {0xff, 0xff, 0xff, 0x00};
    err = NULL;
    CHECK_INT(mysql_frame_parse(full, 4, 1 << 20, &scratch, &f, &err), MYSQL_ERROR);
    CHECK(err != NULL);

    /* A continuation header pushing the total past the limit: refused before its body. */
    size_t n = 4 + MYSQL_MAX_PACKET_PAYLOAD + 4;
    uint8_t *in = xcalloc(n, 1);
    memcpy(in, full, 4);
    in[n - 4] = 11;
    in[n - 1] = 1;
    CHECK_INT(mysql_frame_parse(in, n, MYSQL_MAX_PACKET_PAYLOAD + 11, &scratch, &f, &err),
              MYSQL_AGAIN);
    err = NULL;
    CHECK_INT(mysql_frame_parse(in, n, MYSQL_MAX_PACKET_PAYLOAD + 10, &scratch, &f, &err),
              MYSQL_ERROR);
    CHECK(err != NULL);
    /* A continuation out of sequence. */
    in[n - 1] = 2;
    err = NULL;
    CHECK_INT(mysql_frame_parse(in, n, 1u << 30, &scratch, &f, &err), MYSQL_ERROR);
    CHECK(err != NULL);
    xfree(in);
    buf_free(&scratch);
}

TEST(mysql_packet_start_end_small)
{
    struct buf b;
    buf_init(&b);
    uint8_t seq = 3;
    size_t start = mysql_packet_start(&b);
    buf_append(&b, "abc", 3);
    mysql_packet_end(&b, start, &seq);
    start = mysql_packet_start(&b);
    mysql_packet_end(&b, start, &seq);
    static const uint8_t want[] = {3, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 4};
    CHECK_INT(b.len, sizeof want);
    CHECK_MEM(b.data, want, sizeof want);
    CHECK_INT(seq, 5);
    buf_free(&b);
}

/* ---- connection phase ------------------------------------------------------------------- */

TEST(mysql_handshake_v10_bytes)
{
    struct mysql_handshake h = {
        .connection_id = 0x01020304,
        .server_version = "8.0.0-ccomet",
        .capabilities = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH |
                        CLIENT_CONNECT_WITH_DB | CLIENT_DEPRECATE_EOF,
        .charset = MYSQL_CHARSET_UTF8MB4_GENERAL_CI,
        .status = SERVER_STATUS_AUTOCOMMIT,
        .auth_plugin = "mysql_native_password",
    };
    memcpy(h.scramble, native_scramble, 20);
    struct buf b;
    buf_init(&b);
    mysql_write_handshake_v10(&b, &h);

    struct buf w;
    buf_init(&w);
    buf_put_u8(&w, 0x0a);
    buf_append(&w, "8.0.0-ccomet", 13);
    buf_append(&w, "\x04\x03\x02\x01", 4);
    buf_append(&w, native_scramble, 8);
    buf_put_u8(&w, 0);
    buf_append(&w, "\x08\x82", 2); /* caps low: SECURE_CONNECTION | PROTOCOL_41 | CONNECT_WITH_DB */
    buf_put_u8(&w, 45);            /* charset */
    buf_append(&w, "\x02\x00", 2); /* status */
    buf_append(&w, "\x08\x01", 2); /* caps high: PLUGIN_AUTH | DEPRECATE_EOF */
    buf_put_u8(&w, 21);            /* auth data length */
    buf_append(&w, "\0\0\0\0\0\0\0\0\0\0", 10);
    buf_append(&w, native_scramble + 8, 12);
    buf_put_u8(&w, 0);
    buf_append(&w, "mysql_native_password", 22);

    CHECK_INT(b.len, 4 + w.len);
    CHECK_INT(b.data[0] | b.data[1] << 8 | b.data[2] << 16, w.len);
    CHECK_INT(b.data[3], 0);
    CHECK(b.len == 4 + w.len && memcmp(b.data + 4, w.data, w.len) == 0);
    buf_free(&b);
    buf_free(&w);
}

/* HandshakeResponse41 as a client writes it (mysql_common.c / the protocol documentation). */
struct response_spec {
    uint32_t caps;
    const char *user;
    const uint8_t *auth;
    size_t auth_len;
    const char *db;     /* nullable: not written */
    const char *plugin; /* nullable: not written */
    const uint8_t *attrs;
    size_t attrs_len; /* written (with a lenenc length) when attrs is set */
};

static void build_response(struct buf *b, const struct response_spec *s)
{
    mysql_put_int4(b, s->caps);
    mysql_put_int4(b, 16u << 20);
    buf_put_u8(b, MYSQL_CHARSET_UTF8MB4_GENERAL_CI);
    static const uint8_t filler[23];
    buf_append(b, filler, sizeof filler);
    buf_append(b, s->user, strlen(s->user) + 1);
    if (s->caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
        mysql_put_lenenc_str(b, s->auth, s->auth_len);
    } else if (s->caps & CLIENT_SECURE_CONNECTION) {
        buf_put_u8(b, (uint8_t)s->auth_len);
        buf_append(b, s->auth, s->auth_len);
    } else {
        buf_append(b, s->auth, s->auth_len);
        buf_put_u8(b, 0);
    }
    if (s->db) buf_append(b, s->db, strlen(s->db) + 1);
    if (s->plugin) buf_append(b, s->plugin, strlen(s->plugin) + 1);
    if (s->attrs) mysql_put_lenenc_str(b, s->attrs, s->attrs_len);
}

static int parse_built(const struct response_spec *s, struct mysql_handshake_response *r,
                       uint8_t **copy, const char **err)
{
    struct buf b;
    buf_init(&b);
    build_response(&b, s);
    *copy = dup_exact(b.data, b.len);
    int rc = mysql_parse_handshake_response(*copy, b.len, r, err);
    buf_free(&b);
    return rc;
}

static const uint8_t client_attrs[] = "\x0c_client_name\x08libmysql\x03_os\x05Linux\x04_pid\x04"
                                      "4242";

TEST(mysql_handshake_response_full)
{
    uint8_t token[20];
    mysql_native_password_token(native_scramble, "secret", 6, token);
    struct response_spec s = {
        .caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH |
                CLIENT_CONNECT_WITH_DB | CLIENT_CONNECT_ATTRS |
                CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_LONG_PASSWORD,
        .user = "root",
        .auth = token,
        .auth_len = 20,
        .db = "comet",
        .plugin = "mysql_native_password",
        .attrs = client_attrs,
        .attrs_len = sizeof client_attrs - 1,
    };
    struct mysql_handshake_response r;
    uint8_t *copy;
    const char *err = NULL;
    CHECK_INT(parse_built(&s, &r, &copy, &err), MYSQL_OK);
    CHECK(!r.ssl_request);
    CHECK_INT(r.capabilities, s.caps);
    CHECK_INT(r.max_packet, 16u << 20);
    CHECK_INT(r.charset, 45);
    CHECK_INT(r.user_len, 4);
    CHECK_MEM(r.user, "root", 4);
    CHECK_INT(r.auth_len, 20);
    CHECK_MEM(r.auth, token, 20);
    CHECK(mysql_native_password_check(native_scramble, "secret", 6, r.auth, r.auth_len));
    CHECK_INT(r.database_len, 5);
    CHECK(r.database && memcmp(r.database, "comet", 5) == 0);
    CHECK_INT(r.auth_plugin_len, 21);
    CHECK(r.auth_plugin && memcmp(r.auth_plugin, "mysql_native_password", 21) == 0);
    xfree(copy);
}

TEST(mysql_handshake_response_without_db_plugin_attrs)
{
    uint8_t token[20];
    mysql_native_password_token(native_scramble, "pw", 2, token);
    struct response_spec s = {
        .caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION,
        .user = "alice",
        .auth = token,
        .auth_len = 20,
    };
    struct mysql_handshake_response r;
    uint8_t *copy;
    const char *err = NULL;
    CHECK_INT(parse_built(&s, &r, &copy, &err), MYSQL_OK);
    CHECK_INT(r.user_len, 5);
    CHECK_MEM(r.user, "alice", 5);
    CHECK_INT(r.auth_len, 20);
    CHECK_MEM(r.auth, token, 20);
    CHECK(r.database == NULL);
    CHECK(r.auth_plugin == NULL);
    xfree(copy);

    /* Flagged CONNECT_WITH_DB, PLUGIN_AUTH and CONNECT_ATTRS but the packet ends after the
     * auth response: no database, no plugin, no attributes. */
    s.caps |= CLIENT_CONNECT_WITH_DB | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS;
    CHECK_INT(parse_built(&s, &r, &copy, &err), MYSQL_OK);
    CHECK(r.database == NULL);
    CHECK(r.auth_plugin == NULL);
    xfree(copy);

    /* Database present, plugin flagged but missing. */
    s.db = "";
    CHECK_INT(parse_built(&s, &r, &copy, &err), MYSQL_OK);
    CHECK(r.database != NULL);
    CHECK_INT(r.database_len, 0);
    CHECK(r.auth_plugin == NULL);
    xfree(copy);

    /* Empty password with a 1-byte length. */
    s.auth_len = 0;
    s.db = NULL;
    s.caps &= ~(CLIENT_CONNECT_WITH_DB | CLIENT_PLUGIN_AUTH);
    CHECK_INT(parse_built(&s, &r, &copy, &err), MYSQL_OK);
    CHECK_INT(r.auth_len, 0);
    CHECK(mysql_native_password_check(native_scramble, "", 0, r.auth, r.auth_len));
    xfree(copy);
}

TEST(mysql_handshake_response_lenenc_auth_and_nul_auth)
{
    uint8_t long_auth[300];
    fill_pattern(long_auth, sizeof long_auth, 1);
    struct response_spec s = {
        .caps = CLIENT_PROTOCOL_41 | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_PLUGIN_AUTH,
        .user = "u",
        .auth = long_auth,
        .auth_len = sizeof long_auth,
        .plugin = "caching_sha2_password",
    };
    struct mysql_handshake_response r;
    uint8_t *copy;
    const char *err = NULL;
    CHECK_INT(parse_built(&s, &r, &copy, &err), MYSQL_OK);
    CHECK_INT(r.auth_len, 300);
    CHECK_MEM(r.auth, long_auth, 300);
    CHECK_INT(r.auth_plugin_len, 21);
    xfree(copy);

    /* Neither SECURE_CONNECTION nor LENENC: a NUL-terminated (old-style) auth response. */
    s.caps = CLIENT_PROTOCOL_41 | CLIENT_CONNECT_WITH_DB;
    s.auth = (const uint8_t *)"scrambled";
    s.auth_len = 9;
    s.plugin = NULL;
    s.db = "d";
    CHECK_INT(parse_built(&s, &r, &copy, &err), MYSQL_OK);
    CHECK_INT(r.auth_len, 9);
    CHECK_MEM(r.auth, "scrambled", 9);
    CHECK_INT(r.database_len, 1);
    xfree(copy);
}

TEST(mysql_handshake_response_refusals)
{
    uint8_t token[20] = {0};
    struct response_spec s = {
        .caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH |
                CLIENT_CONNECT_WITH_DB | CLIENT_CONNECT_ATTRS,
        .user = "root",
        .auth = token,
        .auth_len = 20,
        .db = "comet",
        .plugin = "mysql_native_password",
        .attrs = client_attrs,
        .attrs_len = sizeof client_attrs - 1,
    };
    struct buf b;
    buf_init(&b);
    build_response(&b, &s);
    struct mysql_handshake_response r;
    const char *err;

    /* Every cut inside the fixed part, the user name or the auth response is an error; cuts
     * later either parse (a missing trailing field) or are errors, never out-of-bounds reads. */
    size_t must_fail_until = 32 + 5 + 1 + 20;
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *copy = dup_exact(b.data, n);
        err = NULL;
        int rc = mysql_parse_handshake_response(copy, n, &r, &err);
        if (n < must_fail_until) {
            CHECK_INT(rc, MYSQL_ERROR);
            CHECK(err != NULL);
        }
        /* a cut inside the attributes is always an error */
        if (n > b.len - sizeof client_attrs) CHECK_INT(rc, MYSQL_ERROR);
        xfree(copy);
    }

    /* Connect attributes whose length runs past the end. */
    uint8_t *copy = dup_exact(b.data, b.len);
    size_t attrs_at = b.len - sizeof client_attrs;
    copy[attrs_at] = (uint8_t)(sizeof client_attrs);
    err = NULL;
    CHECK_INT(mysql_parse_handshake_response(copy, b.len, &r, &err), MYSQL_ERROR);
    CHECK(err != NULL);
    /* An attribute whose value runs past the attribute block. */
    copy[attrs_at] = (uint8_t)(sizeof client_attrs - 1);
    copy[b.len - 5] = 9; /* "_pid" value length */
    CHECK_INT(mysql_parse_handshake_response(copy, b.len, &r, &err), MYSQL_ERROR);
    xfree(copy);

    /* An auth length byte running past the end. */
    copy = dup_exact(b.data, b.len);
    copy[32 + 5] = 250;
    CHECK_INT(mysql_parse_handshake_response(copy, b.len, &r, &err), MYSQL_ERROR);
    xfree(copy);

    /* An unterminated user name. */
    uint8_t nouser[40] = {0};
    nouser[1] = CLIENT_PROTOCOL_41 >> 8;
    memset(nouser + 32, 'a', 8);
    CHECK_INT(mysql_parse_handshake_response(nouser, sizeof nouser, &r, &err), MYSQL_ERROR);

    /* No CLIENT_PROTOCOL_41: HandshakeResponse320 is refused. */
    copy = dup_exact(b.data, b.len);
    copy[1] &= (uint8_t) ~(CLIENT_PROTOCOL_41 >> 8);
    err = NULL;
    CHECK_INT(mysql_parse_handshake_response(copy, b.len, &r, &err), MYSQL_ERROR);
    CHECK(err != NULL);
    xfree(copy);
    buf_free(&b);
}

TEST(mysql_ssl_request)
{
    uint8_t req[32] = {0};
    uint32_t caps = CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH;
    for (int i = 0; i < 4; i++)
        req[i] = (uint8_t)(caps >> (8 * i));
    req[6] = 0; /* max packet 16 MiB: 0x01000000 */
    req[7] = 1;
    req[8] = 45;
    uint8_t *copy = dup_exact(req, sizeof req);
    struct mysql_handshake_response r;
    const char *err = NULL;
    CHECK_INT(mysql_parse_handshake_response(copy, sizeof req, &r, &err), MYSQL_OK);
    CHECK(r.ssl_request);
    CHECK_INT(r.capabilities, caps);
    CHECK_INT(r.max_packet, 1u << 24);
    CHECK_INT(r.charset, 45);
    CHECK(r.user == NULL);
    /* Without CLIENT_SSL 32 bytes are a truncated response. */
    copy[1] &= (uint8_t) ~(CLIENT_SSL >> 8);
    CHECK_INT(mysql_parse_handshake_response(copy, sizeof req, &r, &err), MYSQL_ERROR);
    xfree(copy);
}

TEST(mysql_native_password_fixed_vector)
{
    /* python3: h1=sha1(b"password"); h2=sha1(h1); xor(h1, sha1(bytes(range(1,21)) + h2)) */
    static const uint8_t want[20] = {0xc1, 0x7d, 0x60, 0x09, 0xa5, 0xcb, 0x47, 0xe5, 0x9f, 0x74,
                                     0x83, 0xfc, 0xf0, 0x55, 0x53, 0xbb, 0xbf, 0x7d, 0xd0, 0xd6};
    uint8_t token[20];
    mysql_native_password_token(native_scramble, "password", 8, token);
    CHECK_MEM(token, want, 20);
    CHECK(mysql_native_password_check(native_scramble, "password", 8, want, 20));
    CHECK(!mysql_native_password_check(native_scramble, "Password", 8, want, 20));
    CHECK(!mysql_native_password_check(native_scramble, "password", 8, want, 19));
    CHECK(!mysql_native_password_check(native_scramble, "", 0, want, 20));
    CHECK(!mysql_native_password_check(native_scramble, "password", 8, want, 0));
    CHECK(mysql_native_password_check(native_scramble, "", 0, NULL, 0));
    uint8_t flipped[20];
    memcpy(flipped, want, 20);
    flipped[19] ^= 1;
    CHECK(!mysql_native_password_check(native_scramble, "password", 8, flipped, 20));
}

TEST(mysql_native_password_against_openssl)
{
    for (int round = 0; round < 16; round++) {
        uint8_t scramble[20], pw[33];
        CHECK_INT(RAND_bytes(scramble, sizeof scramble), 1);
        CHECK_INT(RAND_bytes(pw, sizeof pw), 1);
        size_t pw_len = 1 + pw[0] % 32;
        /* The client's computation, written out independently. */
        uint8_t h1[20], h2[20], salted[40], h3[20], want[20];
        SHA1(pw + 1, pw_len, h1);
        SHA1(h1, 20, h2);
        memcpy(salted, scramble, 20);
        memcpy(salted + 20, h2, 20);
        SHA1(salted, 40, h3);
        for (int i = 0; i < 20; i++)
            want[i] = h1[i] ^ h3[i];
        uint8_t token[20];
        mysql_native_password_token(scramble, (const char *)pw + 1, pw_len, token);
        CHECK_MEM(token, want, 20);
        CHECK(mysql_native_password_check(scramble, (const char *)pw + 1, pw_len, want, 20));
        scramble[round] ^= 0x40;
        CHECK(!mysql_native_password_check(scramble, (const char *)pw + 1, pw_len, want, 20));
    }
}

TEST(mysql_auth_switch_bytes)
{
    struct buf b;
    buf_init(&b);
    uint8_t seq = 2;
    mysql_write_auth_switch(&b, &seq, "mysql_native_password", native_scramble);
    CHECK_INT(seq, 3);
    CHECK_INT(b.len, 4 + 1 + 22 + 20 + 1);
    CHECK_MEM(b.data,
              "\x2c\x00\x00\x02\xfe"
              "mysql_native_password\0",
              27);
    CHECK_MEM(b.data + 27, native_scramble, 20);
    CHECK_INT(b.data[47], 0);
    buf_free(&b);
}

/* ---- responses -------------------------------------------------------------------------- */

TEST(mysql_ok_err_eof_bytes)
{
    struct buf b;
    buf_init(&b);
    uint8_t seq = 1;
    mysql_write_ok(&b, &seq, 1, 0, SERVER_STATUS_AUTOCOMMIT, 0, NULL);
    static const uint8_t ok[] = {7, 0, 0, 1, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00};
    CHECK_INT(b.len, sizeof ok);
    CHECK_MEM(b.data, ok, sizeof ok);
    CHECK_INT(seq, 2);
    buf_free(&b);

    buf_init(&b);
    mysql_write_ok(&b, &seq, 300, 70000, 0x0022, 2, "Rows matched: 1");
    static const uint8_t ok2[] = {0x00, 0xfc, 0x2c, 0x01, 0xfd, 0x70, 0x11, 0x01,
                                  0x22, 0x00, 0x02, 0x00, 'R',  'o',  'w',  's'};
    CHECK_INT(b.len, 4 + 12 + 15);
    CHECK_INT(b.data[0], 27);
    CHECK_INT(b.data[3], 2);
    CHECK_MEM(b.data + 4, ok2, sizeof ok2);
    CHECK_MEM(b.data + 4 + 12, "Rows matched: 1", 15);
    buf_free(&b);

    buf_init(&b);
    seq = 1;
    mysql_write_err(&b, &seq, 1064, "42000", "syntax error");
    static const uint8_t err[] = {21,  0,   0,   1,   0xff, 0x28, 0x04, '#', '4',
                                  '2', '0', '0', '0', 's',  'y',  'n',  't', 'a',
                                  'x', ' ', 'e', 'r', 'r',  'o',  'r'};
    CHECK_INT(b.len, sizeof err);
    CHECK_MEM(b.data, err, sizeof err);
    buf_free(&b);

    /* A long message is cut at 512 bytes; a malformed SQLSTATE becomes HY000. */
    char msg[700];
    memset(msg, 'm', sizeof msg - 1);
    msg[sizeof msg - 1] = 0;
    buf_init(&b);
    mysql_write_err(&b, &seq, 1105, "bad", msg);
    CHECK_INT(b.len, 4 + 9 + 512);
    CHECK_MEM(b.data + 4, "\xff\x51\x04#HY000", 9);
    buf_free(&b);

    buf_init(&b);
    seq = 5;
    mysql_write_eof(&b, &seq, 0x0022, 3);
    static const uint8_t eof[] = {5, 0, 0, 5, 0xfe, 0x03, 0x00, 0x22, 0x00};
    CHECK_INT(b.len, sizeof eof);
    CHECK_MEM(b.data, eof, sizeof eof);
    CHECK_INT(seq, 6);
    buf_free(&b);
}

TEST(mysql_column_count_and_def_bytes)
{
    struct buf b;
    buf_init(&b);
    uint8_t seq = 1;
    mysql_write_column_count(&b, &seq, 3);
    struct mysql_column c = {
        .schema = "cq",
        .table = "pipes",
        .name = "id",
        .type = MYSQL_TYPE_LONGLONG,
        .flags = MYSQL_FLAG_NOT_NULL | MYSQL_FLAG_PRI_KEY,
        .charset = MYSQL_CHARSET_BINARY,
        .length = 20,
    };
    mysql_write_column_def(&b, &seq, &c);
    static const uint8_t want[] = {
        1,   0,    0,    1, 3, /* column count */
        38,  0,    0,    2, 3,   'd', 'e', 'f', 2,   'c', 'q', 5,   'p', 'i',
        'p', 'e',  's',  5, 'p', 'i', 'p', 'e', 's', 2,   'i', 'd', 2,   'i',
        'd', 0x0c, 0x3f, 0, 20,  0,   0,   0,   8,   3,   0,   0,   0,   0,
    };
    CHECK_INT(b.len, sizeof want);
    CHECK_MEM(b.data, want, sizeof want);
    CHECK_INT(seq, 3);
    buf_free(&b);

    /* NULL schema and table are empty strings. */
    buf_init(&b);
    struct mysql_column d = {.name = "x", .type = MYSQL_TYPE_VAR_STRING, .charset = 45};
    mysql_write_column_def(&b, &seq, &d);
    CHECK_MEM(b.data + 4,
              "\x03"
              "def\x00\x00\x00\x01x\x01x\x0c\x2d\x00",
              14);
    buf_free(&b);
}

TEST(mysql_text_row_with_nulls)
{
    struct value vals[] = {value_int(42), value_null(),     value_str("abc", 3),
                           value_int(-7), value_str("", 0), value_int(INT64_MIN)};
    struct buf b;
    buf_init(&b);
    uint8_t seq = 4;
    mysql_write_text_row(&b, &seq, vals, 6);
    static const uint8_t want[] = {2,   '4', '2', 0xfb, 3,   'a', 'b', 'c', 2,   '-', '7',
                                   0,   20,  '-', '9',  '2', '2', '3', '3', '7', '2', '0',
                                   '3', '6', '8', '5',  '4', '7', '7', '5', '8', '0', '8'};
    CHECK_INT(b.len, 4 + sizeof want);
    CHECK_INT(b.data[0], sizeof want);
    CHECK_INT(b.data[3], 4);
    CHECK_MEM(b.data + 4, want, sizeof want);
    buf_free(&b);
}

TEST(mysql_binary_row_with_nulls)
{
    struct mysql_column cols[] = {
        {.type = MYSQL_TYPE_LONGLONG},   {.type = MYSQL_TYPE_LONG},
        {.type = MYSQL_TYPE_SHORT},      {.type = MYSQL_TYPE_TINY},
        {.type = MYSQL_TYPE_VAR_STRING}, {.type = MYSQL_TYPE_VAR_STRING},
        {.type = MYSQL_TYPE_LONG},       {.type = MYSQL_TYPE_DATETIME},
        {.type = MYSQL_TYPE_DATE},       {.type = MYSQL_TYPE_STRING},
        {.type = MYSQL_TYPE_DOUBLE},
    };
    struct value vals[] = {
        value_int(-2),
        value_int(0x01020304),
        value_int(300),
        value_int(7),
        value_int(42),
        value_null(),
        value_null(),
        value_str("2024-01-02 03:04:05", 19),
        value_str("2024-01-02", 10),
        value_str("hi", 2),
        value_str("1.5", 3),
    };
    struct buf b;
    buf_init(&b);
    /* Consumed bytes at the front, so that the row's appends compact the buffer midway. */
    uint8_t junk[200] = {0};
    buf_append(&b, junk, sizeof junk);
    buf_consume(&b, 190);
    uint8_t seq = 1;
    mysql_write_binary_row(&b, &seq, cols, vals, 11);
    static const uint8_t want[] = {
        0x00, 0x80, 0x01,                               /* header; NULLs at 5 and 6 (bits 7, 8) */
        0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* LONGLONG -2 */
        0x04, 0x03, 0x02, 0x01,                         /* LONG */
        0x2c, 0x01,                                     /* SHORT 300 */
        0x07,                                           /* TINY */
        2,    '4',  '2',                                /* INT in a string column */
        7,    0xe8, 0x07, 1,    2,    3,    4,    5,    /* DATETIME */
        4,    0xe8, 0x07, 1,    2,                      /* DATE */
        2,    'h',  'i',                                /* STRING */
        0,    0,    0,    0,    0,    0,    0xf8, 0x3f, /* DOUBLE 1.5 */
    };
    CHECK_INT(buf_unread(&b), 10 + 4 + sizeof want);
    const uint8_t *pkt = buf_head(&b) + 10;
    CHECK_INT(pkt[0], sizeof want);
    CHECK_INT(pkt[3], 1);
    CHECK_MEM(pkt + 4, want, sizeof want);
    buf_free(&b);

    /* An all-NULL single column: bitmap of one byte, bit 2. */
    buf_init(&b);
    struct value null = value_null();
    mysql_write_binary_row(&b, &seq, cols, &null, 1);
    CHECK_INT(b.len, 4 + 2);
    CHECK_MEM(b.data + 4, "\x00\x04", 2);
    buf_free(&b);
}

TEST(mysql_stmt_prepare_ok_bytes)
{
    struct buf b;
    buf_init(&b);
    uint8_t seq = 1;
    mysql_write_stmt_prepare_ok(&b, &seq, 0x01020304, 2, 3, 1);
    static const uint8_t want[] = {12,   0,    0, 1, 0x00, 0x04, 0x03, 0x02,
                                   0x01, 0x02, 0, 3, 0,    0x00, 0x01, 0x00};
    CHECK_INT(b.len, sizeof want);
    CHECK_MEM(b.data, want, sizeof want);
    buf_free(&b);
}

/* ---- prepared statements ---------------------------------------------------------------- */

TEST(mysql_peek_stmt_id)
{
    uint32_t id = 0;
    CHECK_INT(mysql_peek_stmt_id((const uint8_t *)"\x17\x2a\x00\x00\x00\x00", 6, &id), MYSQL_OK);
    CHECK_INT(id, 42);
    CHECK_INT(mysql_peek_stmt_id((const uint8_t *)"\x19\x01\x02\x00\x00", 5, &id), MYSQL_OK);
    CHECK_INT(id, 0x201);
    CHECK_INT(mysql_peek_stmt_id((const uint8_t *)"\x19\x01\x02\x00", 4, &id), MYSQL_ERROR);
    CHECK_INT(mysql_peek_stmt_id((const uint8_t *)"\x03\x01\x02\x00\x00", 5, &id), MYSQL_ERROR);
}

/* COM_STMT_EXECUTE header: id 7, no cursor, iteration count 1. */
static void execute_header(struct buf *b)
{
    buf_put_u8(b, 0x17);
    mysql_put_int4(b, 7);
    buf_put_u8(b, 0);
    mysql_put_int4(b, 1);
}

static int parse_execute(const struct buf *b, uint16_t n, uint8_t *types, bool *known,
                         const struct buf *const *long_data, struct mysql_param *params,
                         const char **err)
{
    uint8_t *copy = dup_exact(b->data, b->len);
    uint32_t id = 0;
    uint8_t flags = 0xff;
    int rc = mysql_parse_stmt_execute(copy, b->len, n, types, known, long_data, params, &id, &flags,
                                      err);
    if (rc == MYSQL_OK) {
        CHECK_INT(id, 7);
        CHECK_INT(flags, 0);
    }
    /* the params may point into the payload: keep it alive for the caller's checks */
    static uint8_t *last;
    xfree(last);
    last = copy;
    return rc;
}

TEST(mysql_stmt_execute_ints_strings_and_reuse)
{
    struct buf b;
    buf_init(&b);
    execute_header(&b);
    buf_put_u8(&b, 0x00); /* NULL bitmap: none */
    buf_put_u8(&b, 1);    /* new params bound */
    static const uint8_t types_sent[] = {MYSQL_TYPE_TINY,       0x00, MYSQL_TYPE_SHORT,    0x80,
                                         MYSQL_TYPE_VAR_STRING, 0x00, MYSQL_TYPE_LONGLONG, 0x00,
                                         MYSQL_TYPE_LONGLONG,   0x80};
    buf_append(&b, types_sent, sizeof types_sent);
    buf_put_u8(&b, 0xff);                      /* TINY -1 */
    mysql_put_int2(&b, 0xffff);                /* SHORT unsigned 65535 */
    mysql_put_lenenc_str(&b, "hello", 5);      /* VAR_STRING */
    mysql_put_int8(&b, (uint64_t)-5);          /* LONGLONG -5 */
    mysql_put_int8(&b, 0x7fffffffffffffffull); /* LONGLONG unsigned INT64_MAX */

    uint8_t types[10] = {0};
    bool known = false;
    struct mysql_param params[5];
    const char *err = NULL;
    CHECK_INT(parse_execute(&b, 5, types, &known, NULL, params, &err), MYSQL_OK);
    CHECK(known);
    CHECK_MEM(types, types_sent, 10);
    CHECK_INT(params[0].v.kind, VALUE_INT);
    CHECK_INT(params[0].v.i, -1);
    CHECK_INT(params[0].type, MYSQL_TYPE_TINY);
    CHECK_INT(params[1].v.i, 65535);
    CHECK_INT(params[1].type, MYSQL_TYPE_SHORT | 0x8000);
    CHECK_INT(params[2].v.kind, VALUE_STR);
    CHECK_INT(params[2].v.len, 5);
    CHECK_MEM(params[2].v.s, "hello", 5);
    CHECK_INT(params[3].v.i, -5);
    CHECK(params[4].v.i == INT64_MAX);

    /* Every truncation is an error, never an out-of-bounds read. */
    for (size_t n = 0; n < b.len; n++) {
        struct buf cut = b;
        cut.len = n;
        bool k = false;
        uint8_t t[10];
        err = NULL;
        CHECK_INT(parse_execute(&cut, 5, t, &k, NULL, params, &err), MYSQL_ERROR);
        CHECK(err != NULL);
        CHECK(!k);
    }

    /* Second execute: new_params_bound = 0 reuses the types; param 2 NULL by the bitmap. */
    buf_free(&b);
    buf_init(&b);
    execute_header(&b);
    buf_put_u8(&b, 0x04);
    buf_put_u8(&b, 0);
    buf_put_u8(&b, 0x05);
    mysql_put_int2(&b, 1);
    mysql_put_int8(&b, 9);
    mysql_put_int8(&b, 10);
    CHECK_INT(parse_execute(&b, 5, types, &known, NULL, params, &err), MYSQL_OK);
    CHECK_INT(params[0].v.i, 5);
    CHECK_INT(params[1].v.i, 1);
    CHECK_INT(params[2].v.kind, VALUE_NULL);
    CHECK_INT(params[2].type, MYSQL_TYPE_VAR_STRING);
    CHECK_INT(params[3].v.i, 9);
    CHECK_INT(params[4].v.i, 10);

    /* The same payload before any types were ever bound is refused. */
    bool never = false;
    uint8_t none[10] = {0};
    err = NULL;
    CHECK_INT(parse_execute(&b, 5, none, &never, NULL, params, &err), MYSQL_ERROR);
    CHECK(err != NULL);
    buf_free(&b);
}

TEST(mysql_stmt_execute_unsigned_overflow_and_bad_types)
{
    struct buf b;
    buf_init(&b);
    execute_header(&b);
    buf_append(&b, "\x00\x01", 2);
    buf_put_u8(&b, MYSQL_TYPE_LONGLONG);
    buf_put_u8(&b, 0x80);
    mysql_put_int8(&b, 0x8000000000000000ull);
    uint8_t types[2];
    bool known = false;
    struct mysql_param p[1];
    const char *err = NULL;
    CHECK_INT(parse_execute(&b, 1, types, &known, NULL, p, &err), MYSQL_ERROR);
    CHECK(err != NULL);
    CHECK(!known); /* types are kept only when the whole payload parses */

    b.data[11] = 0x42; /* no such type */
    err = NULL;
    CHECK_INT(parse_execute(&b, 1, types, &known, NULL, p, &err), MYSQL_ERROR);
    CHECK(err != NULL);
    b.data[11] = MYSQL_TYPE_LONGLONG;
    b.data[10] = 2; /* new-params-bound flag must be 0 or 1 */
    CHECK_INT(parse_execute(&b, 1, types, &known, NULL, p, &err), MYSQL_ERROR);
    b.data[0] = 0x16; /* not COM_STMT_EXECUTE */
    b.data[10] = 1;
    CHECK_INT(parse_execute(&b, 1, types, &known, NULL, p, &err), MYSQL_ERROR);
    buf_free(&b);

    /* No parameters: nothing after the iteration count is needed. */
    buf_init(&b);
    execute_header(&b);
    CHECK_INT(parse_execute(&b, 0, NULL, &known, NULL, NULL, &err), MYSQL_OK);
    buf_free(&b);
}

TEST(mysql_stmt_execute_nulls_long_data_and_other_types)
{
    /* Nine params, so the NULL bitmap takes two bytes:
     * 0 LONG (long data: no value in the payload), 1 MYSQL_TYPE_NULL, 2 BLOB NULL by bitmap,
     * 3 DOUBLE 0.1, 4 FLOAT 1.5, 5 DATETIME with microseconds, 6 DATE, 7 TIME negative,
     * 8 NEWDECIMAL NULL by bitmap (second bitmap byte). */
    struct buf b;
    buf_init(&b);
    execute_header(&b);
    buf_put_u8(&b, 0x04);
    buf_put_u8(&b, 0x01);
    buf_put_u8(&b, 1);
    static const uint8_t t[] = {
        MYSQL_TYPE_LONG,   0, MYSQL_TYPE_NULL,  0, MYSQL_TYPE_BLOB,       0,
        MYSQL_TYPE_DOUBLE, 0, MYSQL_TYPE_FLOAT, 0, MYSQL_TYPE_DATETIME,   0,
        MYSQL_TYPE_DATE,   0, MYSQL_TYPE_TIME,  0, MYSQL_TYPE_NEWDECIMAL, 0};
    buf_append(&b, t, sizeof t);
    double d = 0.1;
    uint64_t dbits;
    memcpy(&dbits, &d, 8);
    mysql_put_int8(&b, dbits);
    float fl = 1.5f;
    uint32_t fbits;
    memcpy(&fbits, &fl, 4);
    mysql_put_int4(&b, fbits);
    buf_append(&b, "\x0b\xe8\x07\x0c\x1f\x17\x3b\x3a", 8); /* 2024-12-31 23:59:58 */
    mysql_put_int4(&b, 5000);
    buf_append(&b, "\x04\xe8\x07\x02\x1d", 5);                 /* 2024-02-29 */
    buf_append(&b, "\x08\x01\x02\x00\x00\x00\x03\x04\x05", 9); /* -51:04:05 */

    struct buf ld;
    buf_init(&ld);
    buf_append(&ld, "xxlong blob", 11);
    buf_consume(&ld, 2);
    const struct buf *long_data[9] = {&ld};
    uint8_t types[18];
    bool known = false;
    struct mysql_param p[9];
    const char *err = NULL;
    CHECK_INT(parse_execute(&b, 9, types, &known, long_data, p, &err), MYSQL_OK);
    CHECK_INT(p[0].v.kind, VALUE_STR);
    CHECK_INT(p[0].v.len, 9);
    CHECK_MEM(p[0].v.s, "long blob", 9);
    CHECK_INT(p[1].v.kind, VALUE_NULL);
    CHECK_INT(p[2].v.kind, VALUE_NULL);
    CHECK_INT(p[3].v.kind, VALUE_STR);
    CHECK(p[3].v.s == p[3].text);
    CHECK_STR(p[3].text, "0.1");
    CHECK_INT(strtod(p[3].text, NULL) == 0.1, 1);
    CHECK_STR(p[4].text, "1.5");
    CHECK_STR(p[5].text, "2024-12-31 23:59:58.005000");
    CHECK_INT(p[5].v.len, 26);
    CHECK_STR(p[6].text, "2024-02-29");
    CHECK_STR(p[7].text, "-51:04:05");
    CHECK_INT(p[8].v.kind, VALUE_NULL);
    CHECK_INT(p[8].type, MYSQL_TYPE_NEWDECIMAL);

    /* Long data wins over the NULL bit, and an empty long-data buffer is an empty string. */
    struct buf empty;
    buf_init(&empty);
    const struct buf *long_data2[9] = {NULL, NULL, &empty};
    buf_free(&b);

    buf_init(&b);
    execute_header(&b);
    buf_append(&b, "\x01\x00", 2); /* param 0 NULL by the bitmap */
    buf_append(&b, "\x00", 1);     /* reuse the types */
    mysql_put_int8(&b, dbits);
    mysql_put_int4(&b, fbits);
    buf_append(&b, "\x00\x00\x00", 3); /* zero DATETIME, DATE, TIME */
    mysql_put_lenenc_str(&b, "3.14", 4);
    CHECK_INT(parse_execute(&b, 9, types, &known, long_data2, p, &err), MYSQL_OK);
    CHECK_INT(p[0].v.kind, VALUE_NULL);
    CHECK_INT(p[2].v.kind, VALUE_STR);
    CHECK_INT(p[2].v.len, 0);
    CHECK_STR(p[5].text, "0000-00-00 00:00:00");
    CHECK_STR(p[6].text, "0000-00-00");
    CHECK_STR(p[7].text, "00:00:00");
    CHECK_INT(p[8].v.kind, VALUE_STR);
    CHECK_MEM(p[8].v.s, "3.14", 4);

    /* A DATETIME with an impossible length byte. */
    b.data[10 + 2 + 1 + 8 + 4] = 5;
    err = NULL;
    CHECK_INT(parse_execute(&b, 9, types, &known, long_data2, p, &err), MYSQL_ERROR);
    CHECK(err != NULL);
    /* A string whose length runs past the end. */
    b.data[10 + 2 + 1 + 8 + 4] = 0;
    b.data[b.len - 5] = 5;
    CHECK_INT(parse_execute(&b, 9, types, &known, long_data2, p, &err), MYSQL_ERROR);
    buf_free(&b);
    buf_free(&ld);
    buf_free(&empty);
}
