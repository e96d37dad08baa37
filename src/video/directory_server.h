/* directory_server: the [freeswitch] HTTP endpoint media nodes ask who may register (FreeSWITCH's
 * mod_xml_curl directory binding, or ccomet-media's [directory] url). A SIP user is
 * "<dev_id zero-padded to 6 digits><user_id>" and its password is that user's users_auth hash, or,
 * when the request's digest (mod_xml_curl's sip_auth_* fields) was made with a JWT session's
 * credential that has not ended, that credential (proto/sip_credential.h).
 * Unlike CppComet's endpoint it never answers anonymously: a request must come from an allowed
 * source address ([freeswitch] allow) and carry the HTTP Basic credentials of [freeswitch] user
 * and password; without credentials configured the endpoint does not start. One request per
 * connection, bounded in size and time. Loop thread only. */
#ifndef CC_DIRECTORY_SERVER_H
#define CC_DIRECTORY_SERVER_H

#include <stddef.h>
#include <uv.h>

#include "core/config.h"

struct state;
struct directory_server;

/* NULL with err empty: not configured (no credentials; a warning is logged). NULL with err set:
 * a configuration or listen error. */
struct directory_server *directory_server_start(uv_loop_t *loop, const struct config *cfg,
                                                struct state *state, char *err, size_t errlen);
void directory_server_stop(struct directory_server *d);

#endif
