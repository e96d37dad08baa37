/* Unit tests for src/media/directory.c: reading FreeSWITCH's directory XML (the answers of
 * reference/captures/xmlcurl-02 and -04, CppComet's gateway answer, a static file), the form
 * mod_xml_curl sends (field order and url encoding of xmlcurl-02), and lookups against the static
 * file and a loopback libsoup gateway (fallback, cache, coalescing, timeout), the main context
 * iterated by this thread. */
#include "test.h"

#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/alloc.h"
#include "media/directory.h"
#include "media/media_config.h"
#include "proto/xml_curl.h"

static const char found_xml[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
    "<document type=\"freeswitch/xml\">\n"
    "  <section name=\"directory\">\n"
    "    <domain name=\"127.0.0.1\">\n"
    "      <params>\n"
    "        <param name=\"dial-string\" value=\"{^^:sip_invite_domain=${dialed_domain}}\"/>\n"
    "      </params>\n"
    "      <groups>\n"
    "        <group name=\"default\">\n"
    "          <users>\n"
    "            <user id=\"1000\">\n"
    "              <params>\n"
    "                <param name=\"password\" value=\"pw1000\"/>\n"
    "              </params>\n"
    "              <variables>\n"
    "                <variable name=\"user_context\" value=\"default\"/>\n"
    "              </variables>\n"
    "            </user>\n"
    "          </users>\n"
    "        </group>\n"
    "      </groups>\n"
    "    </domain>\n"
    "  </section>\n"
    "</document>\n";

static const char not_found_xml[] = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
                                    "<document type=\"freeswitch/xml\">\n"
                                    "  <section name=\"result\">\n"
                                    "    <result status=\"not found\" />\n"
                                    "  </section>\n"
                                    "</document>\n";

TEST(directory_parse_found_password)
{
    char *pw = NULL, *a1 = NULL;
    const char *err = NULL;
    CHECK_INT(directory_parse_xml(found_xml, strlen(found_xml), "1000", "127.0.0.1", &pw, &a1, NULL,
                                  &err),
              DIRECTORY_FOUND);
    CHECK_STR(pw, "pw1000");
    CHECK(a1 == NULL);
    g_free(pw);
    g_free(a1);
    /* another user of that document: not found */
    CHECK_INT(directory_parse_xml(found_xml, strlen(found_xml), "1001", "127.0.0.1", &pw, &a1, NULL,
                                  &err),
              DIRECTORY_NOT_FOUND);
    CHECK(pw == NULL);
}

TEST(directory_parse_not_found_result)
{
    char *pw = NULL, *a1 = NULL;
    const char *err = NULL;
    CHECK_INT(directory_parse_xml(not_found_xml, strlen(not_found_xml), "9999", "127.0.0.1", &pw,
                                  &a1, NULL, &err),
              DIRECTORY_NOT_FOUND);
    CHECK(pw == NULL && a1 == NULL);
}

TEST(directory_parse_a1_hash_and_other_domain)
{
    /* CppComet's gateway names FSdefaultDomain whatever was asked; users directly under
     * <domain> and <users> are found too */
    const char *xml = "<document type=\"freeswitch/xml\"><section name=\"directory\">"
                      "<domain name=\"FSdefaultDomain\"><users><user id=\"0000151\"><params>"
                      "<param name=\"a1-hash\" value=\"0123456789abcdef0123456789abcdef\"/>"
                      "</params></user></users></domain></section></document>";
    char *pw = NULL, *a1 = NULL;
    const char *err = NULL;
    CHECK_INT(directory_parse_xml(xml, strlen(xml), "0000151", "example.com", &pw, &a1, NULL, &err),
              DIRECTORY_FOUND);
    CHECK(pw == NULL);
    CHECK_STR(a1, "0123456789abcdef0123456789abcdef");
    g_free(a1);
}

TEST(directory_parse_errors_are_temporary)
{
    char *pw = NULL, *a1 = NULL;
    const char *err = NULL;
    CHECK_INT(directory_parse_xml("<document", 9, "1", "d", &pw, &a1, NULL, &err),
              DIRECTORY_TEMPFAIL);
    CHECK(err != NULL);
    CHECK_INT(directory_parse_xml("", 0, "1", "d", &pw, &a1, NULL, &err), DIRECTORY_TEMPFAIL);
    const char *html = "<html><body>logo</body></html>";
    CHECK_INT(directory_parse_xml(html, strlen(html), "1", "d", &pw, &a1, NULL, &err),
              DIRECTORY_TEMPFAIL);
    const char *empty = "<document type=\"freeswitch/xml\"/>";
    CHECK_INT(directory_parse_xml(empty, strlen(empty), "1", "d", &pw, &a1, NULL, &err),
              DIRECTORY_TEMPFAIL);
    /* an external entity is neither fetched nor expanded */
    const char *xxe =
        "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
        "<document><section name=\"directory\"><domain name=\"d\"><user id=\"1\">"
        "<params><param name=\"password\" value=\"&x;\"/></params></user></domain>"
        "</section></document>";
    enum directory_status st =
        directory_parse_xml(xxe, strlen(xxe), "1", "d", &pw, &a1, NULL, &err);
    CHECK(st != DIRECTORY_FOUND || pw == NULL || !strstr(pw, "root:"));
    g_free(pw);
    g_free(a1);
}

TEST(directory_url_encode_as_freeswitch)
{
    GString *s = g_string_new(NULL);
    directory_url_encode(s, "Tue, 24 Nov 2026 06:09:49 GMT");
    CHECK_STR(s->str, "Tue,%2024%20Nov%202026%2006%3A09%3A49%20GMT");
    g_string_truncate(s, 0);
    directory_url_encode(s, "sip:127.0.0.1");
    CHECK_STR(s->str, "sip%3A127.0.0.1");
    g_string_truncate(s, 0);
    directory_url_encode(s, "::1 a&b=c+d/e*f\xc3\xa9");
    CHECK_STR(s->str, "%3A%3A1%20a%26b%3Dc%2Bd/e*f%C3%A9");
    g_string_free(s, TRUE);
}

TEST(directory_form_fields_in_mod_xml_curl_order)
{
    struct sip_auth a = {true,       false, "1000", "127.0.0.1", "nonce1", "sip:127.0.0.1",
                         "e5ba2458", "MD5", "auth", "00000001",  "cn1",    NULL};
    struct directory_query q = {"1000", "127.0.0.1", &a, "REGISTER", NULL, "127.0.0.1", 5070};
    GString *form = g_string_new(NULL);
    directory_build_form(form, &q, "fslab", "577ca437-4264-4079-b2da-b40f3287bda4", "127.0.0.1",
                         572, 1795500589976196LL);
    /* without a request the sip_* fields of the message are left out, as FreeSWITCH leaves out
     * what it does not have */
    CHECK(g_str_has_prefix(form->str,
                           "hostname=fslab&section=directory&tag_name=domain&key_name="
                           "name&key_value=127.0.0.1&Event-Name=REQUEST_PARAMS&Core-UUID="
                           "577ca437-4264-4079-b2da-b40f3287bda4&FreeSWITCH-Hostname="
                           "fslab&FreeSWITCH-Switchname=fslab&FreeSWITCH-IPv4=127.0.0.1&"
                           "FreeSWITCH-IPv6=%3A%3A1&Event-Date-Local="));
    CHECK(strstr(form->str, "&Event-Date-GMT=Tue,%2024%20Nov%202026%2006%3A09%3A49%20GMT&"
                            "Event-Date-Timestamp=1795500589976196&Event-Calling-File=sofia_reg.c&"
                            "Event-Calling-Function=sofia_reg_parse_auth&Event-Calling-Line-Number="
                            "3124&Event-Sequence=572&action=sip_auth&sip_profile=internal&"
                            "sip_auth_username=1000&sip_auth_realm=127.0.0.1&sip_auth_nonce=nonce1&"
                            "sip_auth_uri=sip%3A127.0.0.1&sip_auth_qop=auth&sip_auth_cnonce=cn1&"
                            "sip_auth_nc=00000001&sip_auth_response=e5ba2458&sip_auth_method="
                            "REGISTER&client_port=5070&key=id&user=1000&domain=127.0.0.1&ip="
                            "127.0.0.1") != NULL);
    CHECK(g_str_has_suffix(form->str, "&ip=127.0.0.1"));
    g_string_free(form, TRUE);
}

/* ---- lookups ---- */

struct got {
    int calls;
    enum directory_status status;
    enum directory_source source;
    char *password, *a1;
};

static void on_result(const struct directory_result *r, void *ud)
{
    struct got *g = ud;
    g->calls++;
    g->status = r->status;
    g->source = r->source;
    g_free(g->password);
    g_free(g->a1);
    g->password = g_strdup(r->password);
    g->a1 = g_strdup(r->a1_hash);
}

static void got_clear(struct got *g)
{
    g_free(g->password);
    g_free(g->a1);
    memset(g, 0, sizeof *g);
}

static bool wait_for(int *counter, int n, int timeout_ms)
{
    gint64 end = g_get_monotonic_time() + timeout_ms * 1000;
    while (*counter < n && g_get_monotonic_time() < end)
        if (!g_main_context_iteration(NULL, FALSE)) g_usleep(1000);
    return *counter >= n;
}

static char *write_static_file(void)
{
    char *path = g_build_filename(g_get_tmp_dir(), "ccomet-directory-XXXXXX.xml", NULL);
    int fd = g_mkstemp(path);
    const char *xml =
        "<include><domain name=\"$${domain}\"><groups><group name=\"default\"><users>"
        "<user id=\"0000002\"><params><param name=\"password\" value=\"secret2\"/></params></user>"
        "<user id=\"ptr\" type=\"pointer\"/>"
        "</users></group></groups></domain>"
        "<domain name=\"other.example\"><user id=\"0000003\"><params>"
        "<param name=\"a1-hash\" value=\"00112233445566778899aabbccddeeff\"/></params></user>"
        "</domain></include>";
    if (fd >= 0) {
        ssize_t n = write(fd, xml, strlen(xml));
        (void)n;
        close(fd);
    }
    return path;
}

static struct media_config *test_config(const char *url, const char *file)
{
    char err[256];
    struct media_config *c = media_config_load(NULL, err, sizeof err);
    xfree(c->dir_url);
    c->dir_url = xstrdup(url ? url : "");
    xfree(c->dir_file);
    c->dir_file = xstrdup(file ? file : "");
    c->dir_timeout_ms = 300;
    return c;
}

TEST(directory_static_file_lookups)
{
    char *path = write_static_file();
    struct media_config *cfg = test_config(NULL, path);
    GError *error = NULL;
    struct directory *d = directory_new(cfg, &error);
    CHECK(d != NULL);
    if (!d) goto out;
    struct got g = {0};
    struct directory_query q = {"0000002", "FSdefaultDomain", NULL, "REGISTER", NULL, NULL, 0};
    struct directory_wait *w = directory_lookup(d, &q, on_result, &g);
    CHECK(w != NULL);
    CHECK_INT(g.calls, 0); /* never from inside directory_lookup */
    CHECK(wait_for(&g.calls, 1, 1000));
    CHECK_INT(g.status, DIRECTORY_FOUND);
    CHECK_INT(g.source, DIRECTORY_FROM_FILE);
    CHECK_STR(g.password, "secret2");
    got_clear(&g);
    /* a named domain matches only itself */
    struct directory_query q3 = {"0000003", "other.example", NULL, NULL, NULL, NULL, 0};
    directory_lookup(d, &q3, on_result, &g);
    CHECK(wait_for(&g.calls, 1, 1000));
    CHECK_INT(g.status, DIRECTORY_FOUND);
    CHECK_STR(g.a1, "00112233445566778899aabbccddeeff");
    got_clear(&g);
    q3.domain = "FSdefaultDomain";
    directory_lookup(d, &q3, on_result, &g);
    CHECK(wait_for(&g.calls, 1, 1000));
    CHECK_INT(g.status, DIRECTORY_NOT_FOUND);
    got_clear(&g);
    /* pointer users are not users */
    struct directory_query qp = {"ptr", "FSdefaultDomain", NULL, NULL, NULL, NULL, 0};
    directory_lookup(d, &qp, on_result, &g);
    CHECK(wait_for(&g.calls, 1, 1000));
    CHECK_INT(g.status, DIRECTORY_NOT_FOUND);
    got_clear(&g);
    /* a cancelled lookup never calls back */
    w = directory_lookup(d, &q, on_result, &g);
    directory_cancel(d, w);
    CHECK(!wait_for(&g.calls, 1, 50));
    directory_free(d);
out:
    media_config_free(cfg);
    g_unlink(path);
    g_free(path);
}

TEST(directory_bad_static_file_is_an_error)
{
    struct media_config *cfg = test_config(NULL, "/nonexistent/directory.xml");
    GError *error = NULL;
    CHECK(directory_new(cfg, &error) == NULL);
    CHECK(error != NULL);
    g_clear_error(&error);
    xfree(cfg->dir_file);
    cfg->dir_file = xstrdup("");
    xfree(cfg->dir_url);
    cfg->dir_url = xstrdup("ftp://example.com/");
    CHECK(directory_new(cfg, &error) == NULL);
    g_clear_error(&error);
    media_config_free(cfg);
}

/* A loopback gateway: counts requests, answers user 1000 (password pw1000) after `delay_ms`,
 * "not found" otherwise, or never (hang) for user "slow". */
struct gateway {
    SoupServer *server;
    int requests;
    char last_auth[128];
    char last_ua[64];
    GPtrArray *held; /* messages paused for "slow" */
};

static gboolean answer_later(gpointer data)
{
    SoupServerMessage *msg = data;
    soup_server_message_unpause(msg);
    g_object_unref(msg);
    return G_SOURCE_REMOVE;
}

static void gateway_cb(SoupServer *server, SoupServerMessage *msg, const char *path,
                       GHashTable *query, gpointer data)
{
    struct gateway *gw = data;
    gw->requests++;
    SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
    g_strlcpy(gw->last_auth, soup_message_headers_get_one(h, "Authorization") ?: "",
              sizeof gw->last_auth);
    g_strlcpy(gw->last_ua, soup_message_headers_get_one(h, "User-Agent") ?: "", sizeof gw->last_ua);
    SoupMessageBody *body = soup_server_message_get_request_body(msg);
    GBytes *b = soup_message_body_flatten(body);
    char *form = g_strndup(g_bytes_get_data(b, NULL), g_bytes_get_size(b));
    g_bytes_unref(b);
    bool known = strstr(form, "&user=1000&") != NULL;
    bool slow = strstr(form, "&user=slow&") != NULL;
    g_free(form);
    soup_server_message_set_status(msg, 200, NULL);
    const char *xml = known ? found_xml : not_found_xml;
    soup_server_message_set_response(msg, "text/xml", SOUP_MEMORY_STATIC, xml, strlen(xml));
    soup_server_message_pause(msg);
    if (slow)
        g_ptr_array_add(gw->held, g_object_ref(msg));
    else
        g_timeout_add(20, answer_later, g_object_ref(msg));
}

static char *gateway_start(struct gateway *gw)
{
    memset(gw, 0, sizeof *gw);
    gw->held = g_ptr_array_new();
    gw->server = soup_server_new(NULL, NULL);
    soup_server_add_handler(gw->server, "/directory", gateway_cb, gw, NULL);
    GError *error = NULL;
    if (!soup_server_listen_local(gw->server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error)) {
        g_clear_error(&error);
        return NULL;
    }
    GSList *uris = soup_server_get_uris(gw->server);
    char *base = g_uri_to_string(uris->data);
    g_slist_free_full(uris, (GDestroyNotify)g_uri_unref);
    char *url = g_strdup_printf("%sdirectory", base);
    g_free(base);
    return url;
}

static void gateway_stop(struct gateway *gw)
{
    for (guint i = 0; i < gw->held->len; i++) {
        soup_server_message_unpause(gw->held->pdata[i]);
        g_object_unref(gw->held->pdata[i]);
    }
    g_ptr_array_free(gw->held, TRUE);
    soup_server_disconnect(gw->server);
    g_object_unref(gw->server);
}

TEST(directory_url_coalesces_caches_and_falls_back)
{
    struct gateway gw;
    char *url = gateway_start(&gw);
    CHECK(url != NULL);
    if (!url) return;
    char *path = write_static_file();
    struct media_config *cfg = test_config(url, path);
    xfree(cfg->dir_user);
    cfg->dir_user = xstrdup("fsuser");
    xfree(cfg->dir_password);
    cfg->dir_password = xstrdup("fspass");
    GError *error = NULL;
    struct directory *d = directory_new(cfg, &error);
    CHECK(d != NULL);
    if (!d) goto out;
    /* three lookups of one user at once: one request answers all three */
    struct got g[3] = {{0}};
    struct directory_query q = {"1000", "127.0.0.1", NULL, "REGISTER", NULL, "127.0.0.1", 5070};
    int done = 0;
    for (int i = 0; i < 3; i++)
        directory_lookup(d, &q, on_result, &g[i]);
    gint64 end = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;
    while ((done = g[0].calls + g[1].calls + g[2].calls) < 3 && g_get_monotonic_time() < end)
        g_main_context_iteration(NULL, TRUE);
    CHECK_INT(done, 3);
    CHECK_INT(gw.requests, 1);
    CHECK_STR(gw.last_auth, "Basic ZnN1c2VyOmZzcGFzcw=="); /* the capture's fsuser:fspass */
    CHECK_STR(gw.last_ua, "freeswitch-xml/1.0");
    for (int i = 0; i < 3; i++) {
        CHECK_INT(g[i].status, DIRECTORY_FOUND);
        CHECK_INT(g[i].source, DIRECTORY_FROM_URL);
        CHECK_STR(g[i].password, "pw1000");
        got_clear(&g[i]);
    }
    /* then from the cache, without a request; forgotten, asked again */
    directory_lookup(d, &q, on_result, &g[0]);
    CHECK(wait_for(&g[0].calls, 1, 1000));
    CHECK_INT(g[0].source, DIRECTORY_FROM_CACHE);
    CHECK_INT(gw.requests, 1);
    got_clear(&g[0]);
    directory_forget(d, "1000", "127.0.0.1");
    directory_lookup(d, &q, on_result, &g[0]);
    end = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;
    while (!g[0].calls && g_get_monotonic_time() < end)
        g_main_context_iteration(NULL, TRUE);
    CHECK_INT(g[0].source, DIRECTORY_FROM_URL);
    CHECK_INT(gw.requests, 2);
    got_clear(&g[0]);
    /* the url says not found: the static file answers (xmlcurl-05) */
    struct directory_query q2 = {"0000002", "FSdefaultDomain", NULL, NULL, NULL, NULL, 0};
    directory_lookup(d, &q2, on_result, &g[0]);
    end = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;
    while (!g[0].calls && g_get_monotonic_time() < end)
        g_main_context_iteration(NULL, TRUE);
    CHECK_INT(g[0].status, DIRECTORY_FOUND);
    CHECK_INT(g[0].source, DIRECTORY_FROM_FILE);
    CHECK_STR(g[0].password, "secret2");
    got_clear(&g[0]);
    /* nobody knows him: not found */
    struct directory_query q3 = {"9999", "FSdefaultDomain", NULL, NULL, NULL, NULL, 0};
    directory_lookup(d, &q3, on_result, &g[0]);
    end = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;
    while (!g[0].calls && g_get_monotonic_time() < end)
        g_main_context_iteration(NULL, TRUE);
    CHECK_INT(g[0].status, DIRECTORY_NOT_FOUND);
    got_clear(&g[0]);
    /* a gateway that does not answer in timeout_ms (300): a temporary failure, not a 403 */
    struct directory_query q4 = {"slow", "FSdefaultDomain", NULL, NULL, NULL, NULL, 0};
    directory_lookup(d, &q4, on_result, &g[0]);
    end = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;
    while (!g[0].calls && g_get_monotonic_time() < end)
        g_main_context_iteration(NULL, TRUE);
    CHECK_INT(g[0].calls, 1);
    CHECK_INT(g[0].status, DIRECTORY_TEMPFAIL);
    got_clear(&g[0]);
    directory_free(d);
out:
    media_config_free(cfg);
    gateway_stop(&gw);
    /* let the gateway's and the session's connections wind down */
    for (int i = 0; i < 50 && g_main_context_iteration(NULL, FALSE); i++)
        ;
    g_unlink(path);
    g_free(path);
    g_free(url);
}

TEST(directory_parse_reads_a_credentials_end)
{
    /* ccomet's answer for a token session's credential, read back as a media node reads it */
    struct buf b;
    buf_init(&b);
    xml_curl_put_credential(&b, "FSdefaultDomain", "0000071", "0123456789abcdef0123456789abcdef",
                            1767225600);
    char *pw = NULL, *a1 = NULL;
    gint64 expires = -1;
    const char *err = NULL;
    CHECK_INT(directory_parse_xml((const char *)buf_head(&b), buf_unread(&b), "0000071",
                                  "FSdefaultDomain", &pw, &a1, &expires, &err),
              DIRECTORY_FOUND);
    CHECK_STR(pw, "0123456789abcdef0123456789abcdef");
    CHECK_INT(expires, 1767225600);
    g_free(pw);
    g_free(a1);
    buf_free(&b);
    /* the permanent key's answer has no end */
    buf_init(&b);
    xml_curl_put_user(&b, "FSdefaultDomain", "0000071", "key");
    pw = a1 = NULL;
    CHECK_INT(directory_parse_xml((const char *)buf_head(&b), buf_unread(&b), "0000071",
                                  "FSdefaultDomain", &pw, &a1, &expires, &err),
              DIRECTORY_FOUND);
    CHECK_INT(expires, 0);
    g_free(pw);
    buf_free(&b);
    /* an unreadable end is taken as already past, never as no end */
    const char *odd = "<document type=\"freeswitch/xml\"><section name=\"directory\"><domain "
                      "name=\"d\"><user id=\"1\"><params><param name=\"password\" value=\"p\"/>"
                      "</params><variables><variable name=\"ccomet_password_expires\" "
                      "value=\"soon\"/></variables></user></domain></section></document>";
    pw = a1 = NULL;
    CHECK_INT(directory_parse_xml(odd, strlen(odd), "1", "d", &pw, &a1, &expires, &err),
              DIRECTORY_FOUND);
    CHECK_INT(expires, 1);
    g_free(pw);
}
