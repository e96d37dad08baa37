/* xml_curl: mod_xml_curl directory requests and answers; see xml_curl.h. */
#include "proto/xml_curl.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool xml_curl_field(const char *form, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = form, *end = form + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        const char *key_end = eq ? eq : pair_end;
        if ((size_t)(key_end - p) == nl && memcmp(p, name, nl) == 0) {
            size_t o = 0;
            for (const char *v = eq ? eq + 1 : pair_end; v < pair_end; v++) {
                char c = *v;
                if (c == '+') {
                    c = ' ';
                } else if (c == '%') {
                    if (pair_end - v < 3) return false;
                    int h = hexval(v[1]), l = hexval(v[2]);
                    if (h < 0 || l < 0) return false;
                    c = (char)(h * 16 + l);
                    v += 2;
                }
                if (c == '\0' || o + 1 >= cap) return false;
                out[o++] = c;
            }
            out[o] = '\0';
            return true;
        }
        p = pair_end + 1;
    }
    return false;
}

bool xml_curl_user_split(const char *user, int64_t *dev_id, int64_t *user_id)
{
    size_t n = strlen(user);
    if (n < 7 || n > 15) return false;
    for (size_t i = 0; i < n; i++)
        if (user[i] < '0' || user[i] > '9') return false;
    int64_t dev = 0, uid = 0;
    for (size_t i = 0; i < 6; i++)
        dev = dev * 10 + (user[i] - '0');
    for (size_t i = 6; i < n; i++)
        uid = uid * 10 + (user[i] - '0');
    if (uid <= 0 || uid > INT32_MAX) return false;
    /* one spelling per user: no leading zero in the user id part */
    if (user[6] == '0') return false;
    *dev_id = dev;
    *user_id = uid;
    return true;
}

bool xml_curl_user_name(int64_t dev_id, int64_t user_id, char *out, size_t cap)
{
    if (cap) out[0] = '\0';
    if (dev_id < 0 || dev_id > XML_CURL_MAX_DEV_ID || user_id <= 0 || user_id > INT32_MAX)
        return false;
    int n = snprintf(out, cap, "%06lld%lld", (long long)dev_id, (long long)user_id);
    if (n < 0 || (size_t)n >= cap) {
        if (cap) out[0] = '\0';
        return false;
    }
    return true;
}

static void put(struct buf *out, const char *s)
{
    buf_append(out, s, strlen(s));
}

static void put_escaped(struct buf *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': put(out, "&amp;"); break;
        case '<': put(out, "&lt;"); break;
        case '>': put(out, "&gt;"); break;
        case '"': put(out, "&quot;"); break;
        case '\'': put(out, "&apos;"); break;
        default: buf_append(out, s, 1);
        }
    }
}

static void put_user_document(struct buf *out, const char *domain, const char *user,
                              const char *password, int64_t expires)
{
    put(out, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
             "<document type=\"freeswitch/xml\">\n"
             "  <section name=\"directory\">\n"
             "    <domain name=\"");
    put_escaped(out, domain);
    put(out, "\">\n"
             "      <params>\n"
             "        <param name=\"dial-string\" value=\"{presence_id=${dialed_user}@"
             "${dialed_domain}}${sofia_contact(${dialed_user}@${dialed_domain})}\"/>\n"
             "      </params>\n"
             "      <groups>\n"
             "        <group name=\"default\">\n"
             "          <users>\n"
             "            <user id=\"");
    put_escaped(out, user);
    put(out, "\">\n"
             "              <params>\n"
             "                <param name=\"password\" value=\"");
    put_escaped(out, password);
    put(out, "\"/>\n"
             "              </params>\n"
             "              <variables>\n"
             "                <variable name=\"user_context\" value=\"default\"/>\n"
             "                <variable name=\"accountcode\" value=\"");
    put_escaped(out, user);
    put(out, "\"/>\n"
             "                <variable name=\"effective_caller_id_name\" value=\"");
    put_escaped(out, user);
    put(out, "\"/>\n"
             "                <variable name=\"effective_caller_id_number\" value=\"");
    put_escaped(out, user);
    put(out, "\"/>\n");
    if (expires > 0) {
        char v[128];
        snprintf(v, sizeof v,
                 "                <variable name=\"" XML_CURL_PASSWORD_EXPIRES "\" value=\"%" PRId64
                 "\"/>\n",
                 expires);
        put(out, v);
    }
    put(out, "              </variables>\n"
             "            </user>\n"
             "          </users>\n"
             "        </group>\n"
             "      </groups>\n"
             "    </domain>\n"
             "  </section>\n"
             "</document>\n");
}

void xml_curl_put_user(struct buf *out, const char *domain, const char *user, const char *password)
{
    put_user_document(out, domain, user, password, 0);
}

void xml_curl_put_credential(struct buf *out, const char *domain, const char *user,
                             const char *password, int64_t expires)
{
    put_user_document(out, domain, user, password, expires);
}

void xml_curl_put_not_found(struct buf *out)
{
    put(out, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
             "<document type=\"freeswitch/xml\">\n"
             "  <section name=\"result\">\n"
             "    <result status=\"not found\" />\n"
             "  </section>\n"
             "</document>\n");
}
