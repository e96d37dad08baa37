/* esl_server: ccomet-media's Event Socket, FreeSWITCH's mod_event_socket in inbound mode, so that
 * ccomet or any ESL client drives this node as it would drive FreeSWITCH with mod_conference.
 * Owns the listening socket, the ESL connections (auth, api, bgapi, event subscriptions and
 * filters, bounded output queues), the `status` and `conference ...` api commands (and the
 * per-user revocation commands, through a hook), and the
 * translation of conference events (conf_listen) into FreeSWITCH's CUSTOM conference::maintenance
 * events. The protocol bytes come from src/proto/esl (sans I/O); the rooms and members from
 * src/media/conference. It runs on the thread-default GLib main context of the thread that
 * starts it and must never be called from another thread; it never touches media itself. */
#ifndef CC_ESL_SERVER_H
#define CC_ESL_SERVER_H

#include <gio/gio.h>
#include <stdint.h>

#include "media/conference.h"
#include "media/media_config.h"

struct esl_server;

/* Listens on [esl] ip:port (port 0 picks a free port, see esl_server_port) and starts answering
 * on the thread-default main context. cfg and reg must outlive the server (transfer none); the
 * password and limits are copied. NULL with *error set when the address is invalid or in use.
 * (transfer full) */
struct esl_server *esl_server_start(const struct media_config *cfg, struct conf_registry *reg,
                                    GError **error);

/* Stops listening, sends every connection FreeSWITCH's disconnect notice (best effort), closes
 * them and frees the server. NULL is fine. */
void esl_server_stop(struct esl_server *srv);

/* The port actually bound. */
uint16_t esl_server_port(const struct esl_server *srv);

/* Connections open now (authenticated or not). */
unsigned esl_server_connections(const struct esl_server *srv);

/* The version `api status` reports ("ccomet-media (Version <version>  64bit) is ready"); the
 * string is copied. Defaults to "0.0.0" until the process sets it. */
void esl_server_set_version(struct esl_server *srv, const char *version);

/* The recordings the `conference <room> recording ...` commands drive (transfer none; must
 * outlive the server or be unset with NULL). Without one those commands answer an error. */
struct recorder;
void esl_server_set_recorder(struct esl_server *srv, struct recorder *rc);

/* What the user-revocation api commands do: xml_flush_cache id (ESL_REVOKE_CACHE: the cached
 * directory answer), sofia profile .. flush_inbound_reg (ESL_REVOKE_REGISTRATIONS), hupall ..
 * sip_auth_username (ESL_REVOKE_CALLS); returns what it ended. Unset (NULL), those commands
 * answer -ERR. */
enum { ESL_REVOKE_CACHE = 1, ESL_REVOKE_REGISTRATIONS = 2, ESL_REVOKE_CALLS = 4 };
typedef unsigned (*esl_revoke_fn)(void *ctx, const char *user, const char *domain, unsigned what);
void esl_server_set_revoke(struct esl_server *srv, esl_revoke_fn fn, void *ctx);

#endif
