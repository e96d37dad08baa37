/* libFuzzer target: the mod_xml_curl request fields and SIP user names (src/proto/xml_curl.c) that
 * ccomet's [freeswitch] directory endpoint reads from media nodes. A decoded field must fit its
 * buffer, hold no NUL byte and never be longer than its encoded form; a user name that splits
 * must write the same name back; the XML answer built from any field must stay inside one
 * attribute (no raw '<', '>', '"' or '&' from the input). */
#include "core/buf.h"
#include "proto/xml_curl.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"section",           "user", "domain", "action",
                                        "sip_auth_username", ""};
    const char *form = (const char *)data;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char v[XML_CURL_MAX_FIELD + 1];
        memset(v, 'x', sizeof v);
        if (!xml_curl_field(form, size, names[i], v, sizeof v)) continue;
        size_t n = strnlen(v, sizeof v);
        if (n == sizeof v || n > size) abort();
        int64_t dev, uid;
        if (xml_curl_user_split(v, &dev, &uid)) {
            char back[32];
            xml_curl_user_name(dev, uid, back, sizeof back);
            if (strcmp(back, v) != 0) abort();
        }
        struct buf b;
        buf_init(&b);
        xml_curl_put_user(&b, v, v, v);
        const char *x = (const char *)buf_head(&b);
        for (size_t k = 0; k < buf_unread(&b); k++)
            if (x[k] == '\0') abort();
        /* every input byte that is markup was escaped: the answer has exactly the template's
         * count of '<' */
        size_t lt = 0;
        for (size_t k = 0; k < buf_unread(&b); k++)
            lt += x[k] == '<';
        buf_free(&b);
        buf_init(&b);
        xml_curl_put_user(&b, "d", "u", "p");
        size_t lt0 = 0;
        for (size_t k = 0; k < buf_unread(&b); k++)
            lt0 += ((const char *)buf_head(&b))[k] == '<';
        buf_free(&b);
        if (lt != lt0) abort();
    }
    return 0;
}
