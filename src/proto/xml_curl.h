/* xml_curl: the directory half of FreeSWITCH's mod_xml_curl, as the HTTP server that answers it
 * (ccomet's [freeswitch] endpoint), sans I/O. Owns reading a request's form fields (GET query or
 * POST application/x-www-form-urlencoded body, as captured from FreeSWITCH 1.10.12 in
 * reference/captures/xmlcurl-*), CppComet's SIP user names (<dev_id zero-padded to 6 digits>
 * <user_id>), and the two answers: a user with its password, and FreeSWITCH's "not found"
 * document. It never touches a socket and keeps no state. */
#ifndef CC_XML_CURL_H
#define CC_XML_CURL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define XML_CURL_MAX_FIELD 255 /* bytes of one decoded field value we read */

/* Finds field `name` in form (name=value pairs joined by '&'), form-decodes its value ('+' is a
 * space, %XX a byte) into out (cap bytes, NUL-terminated). Names compare byte for byte; the first
 * match wins. Returns false when absent, when the decoded value does not fit, or when it holds a
 * bad escape or a NUL byte. */
bool xml_curl_field(const char *form, size_t len, const char *name, char *out, size_t cap);

/* CppComet's SIP user name: 7..15 digits, the first six the tenant (dev_id), the rest the user id
 * (1..2147483647, no leading zero): "0000151" is dev_id 15, user 1. Returns false for anything
 * else. */
bool xml_curl_user_split(const char *user, int64_t *dev_id, int64_t *user_id);

/* The tenants that have SIP user names: six digits of dev_id (audit M7: dev_id 1234567 with
 * user 5 would be "12345675", which is dev_id 123456's user 75). */
#define XML_CURL_MAX_DEV_ID 999999

/* Writes the user name for (dev_id, user_id) into out (at least 16 bytes): "%06d%d". false (out
 * empty) for a dev_id above XML_CURL_MAX_DEV_ID or a user id outside 1..2147483647. */
bool xml_curl_user_name(int64_t dev_id, int64_t user_id, char *out, size_t cap);

/* The directory document for one user (CppComet's layout, §4.3): domain, user id, password.
 * Attribute values are XML-escaped. */
void xml_curl_put_user(struct buf *out, const char *domain, const char *user, const char *password);

/* The same document for a token session's credential (sip_credential.h): the password is the
 * credential, and the user's variables say when it ends (unix seconds), so that a media node's
 * cache of answers never keeps it longer (FreeSWITCH sets the variable on the channel and
 * otherwise ignores it). */
#define XML_CURL_PASSWORD_EXPIRES "ccomet_password_expires"
void xml_curl_put_credential(struct buf *out, const char *domain, const char *user,
                             const char *password, int64_t expires);

/* FreeSWITCH's answer for a user it does not know (capture xmlcurl-04), byte for byte. */
void xml_curl_put_not_found(struct buf *out);

#endif
