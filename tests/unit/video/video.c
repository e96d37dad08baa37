/* Unit tests for the Video API's parsers: src/proto/xml_curl.c (mod_xml_curl form fields, SIP
 * user names, the directory answers) and media_node_parse in src/video/media_link.c (the
 * `[sip] freeswitch` line). */
#include "test.h"

#include "core/buf.h"
#include "proto/xml_curl.h"
#include "video/media_link.h"

#include <string.h>

TEST(xml_curl_fields_are_form_decoded)
{
    const char *form = "hostname=fslab&section=directory&FreeSWITCH-IPv6=%3A%3A1&"
                       "Event-Date-Local=2026-11-24%2006%3A10%3A14&plus=a+b&empty=&bare&user=1000";
    size_t n = strlen(form);
    char v[64];
    CHECK(xml_curl_field(form, n, "section", v, sizeof v));
    CHECK_STR(v, "directory");
    CHECK(xml_curl_field(form, n, "FreeSWITCH-IPv6", v, sizeof v));
    CHECK_STR(v, "::1");
    CHECK(xml_curl_field(form, n, "Event-Date-Local", v, sizeof v));
    CHECK_STR(v, "2026-11-24 06:10:14");
    CHECK(xml_curl_field(form, n, "plus", v, sizeof v));
    CHECK_STR(v, "a b");
    CHECK(xml_curl_field(form, n, "empty", v, sizeof v));
    CHECK_STR(v, "");
    CHECK(xml_curl_field(form, n, "bare", v, sizeof v));
    CHECK_STR(v, "");
    CHECK(xml_curl_field(form, n, "user", v, sizeof v)); /* the last field */
    CHECK_STR(v, "1000");
    CHECK(!xml_curl_field(form, n, "use", v, sizeof v)); /* whole names only */
    CHECK(!xml_curl_field(form, n, "missing", v, sizeof v));
    /* bad escapes, NUL bytes and values that do not fit are refused */
    CHECK(!xml_curl_field("a=%4", 4, "a", v, sizeof v));
    CHECK(!xml_curl_field("a=%zz", 5, "a", v, sizeof v));
    CHECK(!xml_curl_field("a=x%00y", 7, "a", v, sizeof v));
    CHECK(!xml_curl_field("a=123456", 8, "a", v, 4));
    CHECK(xml_curl_field("a=123", 5, "a", v, 4));
}

TEST(xml_curl_user_names_are_dev6_then_user_id)
{
    int64_t dev, uid;
    CHECK(xml_curl_user_split("0000151", &dev, &uid));
    CHECK_INT(dev, 15);
    CHECK_INT(uid, 1);
    CHECK(xml_curl_user_split("0000002", &dev, &uid));
    CHECK_INT(dev, 0);
    CHECK_INT(uid, 2);
    CHECK(xml_curl_user_split("9999992147483647", &dev, &uid) == false); /* 16 digits */
    CHECK(xml_curl_user_split("000000214748364", &dev, &uid));
    CHECK_INT(uid, 214748364);
    CHECK(!xml_curl_user_split("1000", &dev, &uid));     /* too short */
    CHECK(!xml_curl_user_split("0000000", &dev, &uid));  /* user 0 */
    CHECK(!xml_curl_user_split("00000007", &dev, &uid)); /* leading zero: one spelling */
    CHECK(!xml_curl_user_split("000000x", &dev, &uid));  /* digits only */
    CHECK(!xml_curl_user_split("0000002 ", &dev, &uid));
    char name[32];
    xml_curl_user_name(15, 1, name, sizeof name);
    CHECK_STR(name, "0000151");
    CHECK(xml_curl_user_name(0, 42, name, sizeof name));
    CHECK_STR(name, "00000042");
    /* audit M7: a seventh dev_id digit would read as another tenant's user; refused */
    CHECK(xml_curl_user_name(999999, 5, name, sizeof name));
    CHECK_STR(name, "9999995");
    CHECK(xml_curl_user_split(name, &dev, &uid));
    CHECK_INT(dev, 999999);
    CHECK_INT(uid, 5);
    CHECK(!xml_curl_user_name(1234567, 5, name, sizeof name));
    CHECK_STR(name, "");
    CHECK(!xml_curl_user_name(1, 0, name, sizeof name));
    CHECK(!xml_curl_user_name(1, 5, name, 4)); /* does not fit */
    CHECK_STR(name, "");
}

TEST(xml_curl_answers)
{
    struct buf b;
    buf_init(&b);
    xml_curl_put_not_found(&b);
    const char *nf = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
                     "<document type=\"freeswitch/xml\">\n  <section name=\"result\">\n"
                     "    <result status=\"not found\" />\n  </section>\n</document>\n";
    CHECK_INT(buf_unread(&b), strlen(nf));
    CHECK_MEM(buf_head(&b), nf, strlen(nf));
    buf_free(&b);
    buf_init(&b);
    xml_curl_put_user(&b, "dom<ain>", "0000002", "a\"b&c");
    buf_put_u8(&b, 0);
    const char *x = (const char *)buf_head(&b);
    CHECK(strstr(x, "<domain name=\"dom&lt;ain&gt;\">") != NULL);
    CHECK(strstr(x, "<user id=\"0000002\">") != NULL);
    CHECK(strstr(x, "<param name=\"password\" value=\"a&quot;b&amp;c\"/>") != NULL);
    CHECK(strstr(x, XML_CURL_PASSWORD_EXPIRES) == NULL);
    buf_free(&b);
    buf_init(&b);
    xml_curl_put_credential(&b, "d", "0000002", "cred", 1767225600);
    buf_put_u8(&b, 0);
    x = (const char *)buf_head(&b);
    CHECK(strstr(x, "<param name=\"password\" value=\"cred\"/>") != NULL);
    CHECK(strstr(x, "<variable name=\"ccomet_password_expires\" value=\"1767225600\"/>") != NULL);
    buf_free(&b);
}

TEST(media_node_lines)
{
    struct media_node_conf c;
    char err[256];
    CHECK_INT(media_node_parse("[]Server=app.example.com,Pwd=ClueCon,WSport=7443,Port=8021", &c,
                               err, sizeof err),
              0);
    CHECK_STR(c.server, "app.example.com");
    CHECK_STR(c.pwd, "ClueCon");
    CHECK_INT(c.ws_port, 7443);
    CHECK_INT(c.port, 8021);
    CHECK_STR(c.ws_host, "app.example.com"); /* WShost defaults to Server */
    CHECK_STR(c.ws_proto, "wss");
    CHECK_STR(c.id, "app.example.com:7443");
    CHECK_INT(media_node_parse(" Server = 10.0.0.5 , WSport=5066, WShost=media.example.com, "
                               "WSproto=ws, StreamServer=rtmp://x/live ",
                               &c, err, sizeof err),
              0);
    CHECK_INT(c.port, 8021);
    CHECK_STR(c.pwd, "ClueCon");
    CHECK_STR(c.ws_host, "media.example.com");
    CHECK_STR(c.ws_proto, "ws");
    CHECK_STR(c.stream, "rtmp://x/live");
    CHECK_STR(c.id, "media.example.com:5066");
    CHECK_INT(media_node_parse("Server=a", &c, err, sizeof err), -1); /* WSport required */
    CHECK(strstr(err, "required") != NULL);
    CHECK_INT(media_node_parse("Server=a,WSport=99999", &c, err, sizeof err), -1);
    CHECK(strstr(err, "WSport") != NULL);
    CHECK_INT(media_node_parse("Server=a,WSport=1,Color=red", &c, err, sizeof err), -1);
    CHECK(strstr(err, "unknown key") != NULL);
    CHECK_INT(media_node_parse("Server=a,WSport=1,WSproto=http", &c, err, sizeof err), -1);
    CHECK_INT(media_node_parse("Server=a,WSport", &c, err, sizeof err), -1);
}
