/* sip_server: SIP over WebSocket (RFC 7118, subprotocol "sip") for JsSIP: the listeners on
 * [sip] ip:ws_port (and wss_port with ssl_cert/ssl_key), a small UAS and registrar on top of
 * src/proto/sip_msg (parsing, responses, digest, dialplan), users checked through
 * src/media/directory (mod_xml_curl-style, async), calls turned into conference members through
 * src/media/conference (conf_join / conf_leave, kicks become BYEs).
 *
 * What it answers: REGISTER (401 digest challenge, 403 for an unknown user or a wrong password, as
 * FreeSWITCH does, 503 when the directory fails; bindings live on their WebSocket, expiry clamped
 * to [min_expires, max_expires]); INVITE (407 Proxy-Authenticate challenge as FreeSWITCH's
 * auth-calls, 100 Trying, dialplan 404, the conference's answer: 200 with the SDP answer, or
 * 486/488/503/500); ACK (a missing one ends the call with a BYE after 32 s); BYE both ways; CANCEL
 * (200 + 487, or 481); OPTIONS; re-INVITE (hold/unhold: 200 with the answer's directions adjusted;
 * any other change: 488); other methods 405; a malformed request 400 (when it can be answered);
 * messages over [sip] max_message 513. Retransmitted requests (same branch) get the last response
 * again. A WebSocket that closes takes its registrations and calls with it.
 *
 * Runs on the thread-default main context of sip_server_start's caller; never blocks; never
 * touches media (the conference module does). */
#ifndef CC_SIP_SERVER_H
#define CC_SIP_SERVER_H

#include <gio/gio.h>
#include <stdbool.h>
#include <stdint.h>

#include "media/conference.h"
#include "media/media_config.h"

struct sip_server;

/* Listens on [sip] ip:ws_port, and on ip:wss_port (TLS) when ssl_cert and ssl_key are set; sets
 * the registry's kick handler (a kicked member gets a BYE). cfg and reg must outlive the server
 * (transfer none). NULL with *error when an address is invalid or in use, the certificate does not
 * load, or the directory file does not parse. (transfer full) */
struct sip_server *sip_server_start(const struct media_config *cfg, struct conf_registry *reg,
                                    GError **error);

/* Hangs up every call (conf_leave), drops every registration, closes every WebSocket (1001),
 * stops listening, unsets the kick handler and frees. NULL is fine. */
void sip_server_stop(struct sip_server *srv);

/* A user's key was revoked (ccomet's DELETE FROM users_auth, a revoked token; security audit
 * L9), as FreeSWITCH's xml_flush_cache, sofia flush_inbound_reg and hupall do it: what is a mask
 * of SIP_REVOKE_*: its cached directory answer for domain (NULL or "": [sip] domain) forgotten,
 * its registrations dropped, its calls hung up (BYE). Returns the registrations and calls ended. */
enum { SIP_REVOKE_CACHE = 1, SIP_REVOKE_REGISTRATIONS = 2, SIP_REVOKE_CALLS = 4 };
unsigned sip_server_revoke_user(struct sip_server *srv, const char *user, const char *domain,
                                unsigned what);

/* The ports actually bound; wss 0 without TLS. */
uint16_t sip_server_ws_port(const struct sip_server *srv);
uint16_t sip_server_wss_port(const struct sip_server *srv);

/* ---- for tests: the UAS without sockets ---- */

/* A server that does not listen (sip_server_stop frees it). */
struct sip_server *sip_server_new_unbound(const struct media_config *cfg, struct conf_registry *reg,
                                          GError **error);

struct sip_conn;
/* Called with every message the server sends on the connection (transfer none). */
typedef void (*sip_send_fn)(void *ctx, const char *msg, size_t len);
/* A connection from ip:port whose output goes to send(ctx, ...). (transfer none: freed by
 * sip_server_detach or sip_server_stop) */
struct sip_conn *sip_server_attach(struct sip_server *srv, const char *ip, unsigned port,
                                   sip_send_fn send, void *ctx);
/* One SIP message received on c (one WebSocket message). */
void sip_server_receive(struct sip_conn *c, const char *msg, size_t len);
/* The connection is gone: its calls end, its registrations are dropped. */
void sip_server_detach(struct sip_conn *c);

#endif
