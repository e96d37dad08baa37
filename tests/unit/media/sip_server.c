/* Unit tests for src/media/sip_server.c without sockets (sip_server_attach): the INVITE server
 * transaction against a stub media engine that answers only when told, so that what a real
 * mixer makes racy is deterministic here: CANCEL before the answer (200 + 487, the member gone),
 * a kicked member (BYE in the dialog, conf_leave after its 200), a retransmitted INVITE. */
#include "test.h"

#include <glib/gstdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/alloc.h"
#include "media/conference.h"
#include "media/media_config.h"
#include "media/sip_server.h"

#define DOMAIN "FSdefaultDomain"

/* ---- a media engine that answers when told ---- */

static struct {
    struct conf_member *m;
    void (*done)(struct conf_member *m, const char *answer_sdp, const GError *error, void *ud);
    void *ud;
    int added, removed;
} media;

static void *stub_room_new(struct conf_room *room, const struct conf_profile *p, GError **error)
{
    return &media;
}
static void stub_room_free(void *x) {}
static void
stub_member_add(void *x, struct conf_member *m, const char *offer,
                void (*done)(struct conf_member *, const char *, const GError *, void *), void *ud)
{
    media.m = m;
    media.done = done;
    media.ud = ud;
    media.added++;
}
static void stub_member_remove(void *x, struct conf_member *m)
{
    media.removed++;
    if (media.m == m) media.m = NULL;
}
static const struct conf_media_ops stub_ops = {stub_room_new,      stub_room_free, stub_member_add,
                                               stub_member_remove, NULL,           NULL};

/* ---- the client side ---- */

static GPtrArray *sent; /* what the server sent, one string per message */

static void capture(void *ctx, const char *msg, size_t len)
{
    g_ptr_array_add(sent, g_strndup(msg, len));
}

static void drain(void)
{
    for (int i = 0; i < 100 && g_main_context_iteration(NULL, FALSE); i++)
        ;
}

static const char *last(void)
{
    return sent->len ? sent->pdata[sent->len - 1] : "";
}

static int status_of(const char *msg)
{
    return strncmp(msg, "SIP/2.0 ", 8) == 0 ? atoi(msg + 8) : 0;
}

/* The value of header name in msg (static buffer). */
static const char *header(const char *msg, const char *name)
{
    static char v[512];
    char key[64];
    snprintf(key, sizeof key, "\r\n%s: ", name);
    const char *p = strstr(msg, key);
    if (!p) return "";
    p += strlen(key);
    size_t n = strcspn(p, "\r");
    g_strlcpy(v, p, MIN(sizeof v, n + 1));
    return v;
}

static char *md5(const char *s)
{
    return g_compute_checksum_for_string(G_CHECKSUM_MD5, s, -1);
}

static char *digest_for(const char *challenge, const char *user, const char *pw, const char *method,
                        const char *uri)
{
    const char *n = strstr(challenge, "nonce=\"");
    char nonce[128] = "";
    if (n) g_strlcpy(nonce, n + 7, MIN(sizeof nonce, strcspn(n + 7, "\"") + 1));
    char *a1s = g_strdup_printf("%s:%s:%s", user, DOMAIN, pw);
    char *a2s = g_strdup_printf("%s:%s", method, uri);
    char *ha1 = md5(a1s), *ha2 = md5(a2s);
    char *rs = g_strdup_printf("%s:%s:00000001:c0ffee:auth:%s", ha1, nonce, ha2);
    char *resp = md5(rs);
    char *out = g_strdup_printf("Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
                                "response=\"%s\", algorithm=MD5, qop=auth, cnonce=\"c0ffee\", "
                                "nc=00000001",
                                user, DOMAIN, nonce, uri, resp);
    g_free(a1s);
    g_free(a2s);
    g_free(ha1);
    g_free(ha2);
    g_free(rs);
    g_free(resp);
    return out;
}

static const char offer[] = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
                            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
                            "a=rtpmap:111 opus/48000/2\r\na=sendrecv\r\n";

static void send_invite(struct sip_conn *c, const char *branch, int cseq, const char *auth)
{
    char *msg = g_strdup_printf("INVITE sip:0*101*audio@" DOMAIN " SIP/2.0\r\n"
                                "Via: SIP/2.0/WSS x.invalid;branch=%s\r\nMax-Forwards: 70\r\n"
                                "From: <sip:0000002@" DOMAIN
                                ">;tag=ft1\r\nTo: <sip:0*101*audio@" DOMAIN ">\r\n"
                                "Call-ID: call-1\r\nCSeq: %d INVITE\r\n"
                                "Contact: <sip:0000002@x.invalid;transport=ws>\r\n%s%s%s"
                                "Content-Type: application/sdp\r\nContent-Length: %zu\r\n\r\n%s",
                                branch, cseq, auth ? "Proxy-Authorization: " : "", auth ? auth : "",
                                auth ? "\r\n" : "", strlen(offer), offer);
    sip_server_receive(c, msg, strlen(msg));
    g_free(msg);
}

struct fixture {
    struct media_config *cfg;
    struct conf_registry *reg;
    struct sip_server *srv;
    struct sip_conn *c;
    char *path;
};

static bool fixture_start(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    memset(&media, 0, sizeof media);
    sent = g_ptr_array_new_with_free_func(g_free);
    char err[256];
    f->cfg = media_config_load(NULL, err, sizeof err);
    f->path = g_build_filename(g_get_tmp_dir(), "ccomet-sipdir-XXXXXX.xml", NULL);
    int fd = g_mkstemp(f->path);
    const char *xml = "<include><domain name=\"" DOMAIN "\"><user id=\"0000002\"><params>"
                      "<param name=\"password\" value=\"secret2\"/></params></user></domain>"
                      "</include>";
    if (fd < 0 || write(fd, xml, strlen(xml)) != (ssize_t)strlen(xml)) return false;
    close(fd);
    xfree(f->cfg->dir_file);
    f->cfg->dir_file = xstrdup(f->path);
    struct conf_limits lim = {10, 100, 0, 0, 0};
    f->reg = conf_registry_new(&stub_ops, &lim);
    GError *error = NULL;
    f->srv = sip_server_new_unbound(f->cfg, f->reg, &error);
    if (!f->srv) {
        test_fail(__FILE__, __LINE__, "sip_server_new_unbound: %s", error ? error->message : "");
        g_clear_error(&error);
        return false;
    }
    f->c = sip_server_attach(f->srv, "127.0.0.1", 40000, capture, NULL);
    return true;
}

static void fixture_stop(struct fixture *f)
{
    sip_server_stop(f->srv);
    conf_registry_free(f->reg);
    media_config_free(f->cfg);
    if (f->path) g_unlink(f->path);
    g_free(f->path);
    g_ptr_array_free(sent, TRUE);
    drain();
}

/* INVITE → 407 → INVITE with credentials → 100, and the member waits for its answer. */
static bool invite_until_joining(struct fixture *f, const char *branch)
{
    send_invite(f->c, "z9hG4bKfirst", 1, NULL);
    CHECK_INT(status_of(last()), 407);
    char *auth = digest_for(header(last(), "Proxy-Authenticate"), "0000002", "secret2", "INVITE",
                            "sip:0*101*audio@" DOMAIN);
    send_invite(f->c, branch, 2, auth);
    g_free(auth);
    CHECK_INT(status_of(last()), 100);
    drain(); /* the directory answers from the main loop */
    CHECK_INT(media.added, 1);
    return media.added == 1;
}

TEST(sip_server_cancel_before_the_answer)
{
    struct fixture f;
    if (!fixture_start(&f)) return;
    if (invite_until_joining(&f, "z9hG4bKinv2")) {
        /* a retransmission of the INVITE gets the 100 again */
        guint n = sent->len;
        send_invite(f.c, "z9hG4bKinv2", 2, "Digest username=\"x\"");
        CHECK_INT(sent->len, n + 1);
        CHECK_INT(status_of(last()), 100);
        const char *cancel = "CANCEL sip:0*101*audio@" DOMAIN " SIP/2.0\r\n"
                             "Via: SIP/2.0/WSS x.invalid;branch=z9hG4bKinv2\r\nMax-Forwards: 70\r\n"
                             "From: <sip:0000002@" DOMAIN ">;tag=ft1\r\n"
                             "To: <sip:0*101*audio@" DOMAIN ">\r\n"
                             "Call-ID: call-1\r\nCSeq: 2 CANCEL\r\nContent-Length: 0\r\n\r\n";
        n = sent->len;
        sip_server_receive(f.c, cancel, strlen(cancel));
        CHECK_INT(sent->len, n + 2);
        if (sent->len == n + 2) {
            CHECK_INT(status_of(sent->pdata[n]), 200);
            CHECK(strstr(sent->pdata[n], "CSeq: 2 CANCEL\r\n") != NULL);
            CHECK_INT(status_of(sent->pdata[n + 1]), 487);
            CHECK(strstr(sent->pdata[n + 1], "CSeq: 2 INVITE\r\n") != NULL);
        }
        CHECK_INT(media.removed, 1);
        CHECK(conf_room_find(f.reg, "0*101-" DOMAIN) == NULL);
        /* the media engine's late answer is not for anybody any more: nothing is sent */
    }
    fixture_stop(&f);
}

TEST(sip_server_kick_sends_bye_and_leaves_after_its_200)
{
    struct fixture f;
    if (!fixture_start(&f)) return;
    if (invite_until_joining(&f, "z9hG4bKinv3")) {
        media.done(media.m, "v=0\r\no=- 9 9 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", NULL, media.ud);
        CHECK_INT(status_of(last()), 200);
        CHECK_STR(header(last(), "Content-Type"), "application/sdp");
        struct conf_room *room = conf_room_find(f.reg, "0*101-" DOMAIN);
        CHECK(room != NULL);
        struct conf_member *m = room ? conf_member_find(room, 1) : NULL;
        CHECK(m != NULL);
        if (m) {
            conf_kick(m);
            const char *bye = last();
            CHECK(g_str_has_prefix(bye, "BYE sip:0000002@x.invalid;transport=ws SIP/2.0\r\n"));
            CHECK(strstr(bye, "\r\nCall-ID: call-1\r\n") != NULL);
            CHECK(conf_room_find(f.reg, "0*101-" DOMAIN) != NULL); /* until the BYE's answer */
            char branch[64];
            g_strlcpy(branch, strstr(bye, "branch=") + 7, sizeof branch);
            branch[strcspn(branch, ";\r")] = 0;
            char *ok2 = g_strdup_printf(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/WS 127.0.0.1:5066;branch=%s\r\nFrom: %s\r\n"
                "To: <sip:0000002@" DOMAIN ">;tag=ft1\r\nCall-ID: call-1\r\nCSeq: 1 BYE\r\n"
                "Content-Length: 0\r\n\r\n",
                branch, header(bye, "From"));
            sip_server_receive(f.c, ok2, strlen(ok2));
            g_free(ok2);
            CHECK(conf_room_find(f.reg, "0*101-" DOMAIN) == NULL);
        }
    }
    fixture_stop(&f);
}

TEST(sip_server_detach_ends_a_joining_call)
{
    struct fixture f;
    if (!fixture_start(&f)) return;
    if (invite_until_joining(&f, "z9hG4bKinv4")) {
        guint n = sent->len;
        sip_server_detach(f.c);
        f.c = NULL;
        CHECK_INT(sent->len, n); /* nothing is sent on a closed connection */
        CHECK_INT(media.removed, 1);
        CHECK(conf_room_find(f.reg, "0*101-" DOMAIN) == NULL);
    }
    fixture_stop(&f);
}
