/* config: ccomet's settings, one typed table (section, key, type, default, bounds, reloadable)
 * that parses comet.ini into an immutable struct config. An unknown key is a warning; an
 * invalid value is an error naming section and key. CppComet keys that ccomet has no use for
 * (thread_num, epoll_size, buf_size ...) are accepted and ignored with a debug note, so that an
 * existing comet.ini starts unchanged. Reload (SIGHUP) builds a new struct and the caller
 * applies the fields marked reloadable. */
#ifndef CC_CONFIG_H
#define CC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"

struct config_list {
    char **items;
    size_t n;
};

struct config {
    char *path; /* the file read, or NULL when running on defaults */

    /* [main] */
    char *password;              /* CometQL password; JWT secret prefix */
    bool allow_default_password; /* the shipped password on a non-loopback listener (closed nets) */
    bool shared_password_tenants; /* tenants without own credentials open with [main] password */
    int64_t tenant_grace; /* seconds replaced tenant credentials stay valid (INSERT's default) */
    bool jwt_require_exp; /* browser JWTs without exp are refused */
    bool jwt_returns_key; /* a JWT login gets the user's key in serverInfo (CppComet) */
    bool io_uring; /* batched socket writes (fan-out, replies) through io_uring where allowed */
    int64_t jwt_credential_ttl; /* s: the longest life of a JWT session's SIP credential */
    char *node_name;
    char *base_dir; /* static files for the ws port */
    bool send_user_online_events, send_user_offline_events, save_users_last_online_time;
    int64_t dev_index_size; /* tenants: dev_id in [0, dev_index_size) */

    /* [cometql] */
    char *cometql_ip;
    int cometql_port;
    int64_t cometql_max_connections;
    int64_t cometql_max_unauthenticated_per_ip; /* connections before the password, per address */
    int64_t cometql_max_rows_examined;          /* rows one statement's WHERE may be tried on */
    int64_t cometql_max_prepared_memory; /* bytes one connection's prepared statements hold */
    int64_t cometql_max_auth_failures, ws_max_auth_failures; /* per address and window; 0: none */
    int64_t cometql_auth_failure_window, ws_auth_failure_window; /* seconds */
    int64_t cometql_max_packet;       /* max_allowed_packet: largest client payload */
    int64_t cometql_max_query_length; /* bytes of one query text */
    int64_t cometql_max_message_size; /* bytes of one message/data value */
    int64_t cometql_max_in_values;    /* values in one IN list / rows in one INSERT */
    int64_t cometql_max_conditions;
    int64_t cometql_max_result_rows;
    int64_t cometql_max_result_size; /* bytes of values in one result (audit M4) */
    int64_t cometql_max_long_data;   /* COM_STMT_SEND_LONG_DATA bytes held per connection */
    int64_t cometql_max_prepared;    /* prepared statements per connection */
    int64_t cometql_connect_timeout; /* seconds to finish the handshake */
    int64_t cometql_idle_timeout;    /* seconds without a command (MySQL wait_timeout) */
    int64_t cometql_max_output;      /* bytes queued to one client before reading pauses */
    char *cometql_ssl_cert, *cometql_ssl_key;
    bool cometql_require_tls; /* logins only inside TLS (health checks aside) */

    /* [ws] */
    char *ws_ip;
    int ws_port;
    int64_t ws_max_connections;
    int64_t ws_max_connections_per_user; /* CppComet: 16 */
    int64_t ws_max_connections_per_ip;   /* 0: no cap (browsers behind one NAT share an address) */
    int64_t ws_max_subscriptions;        /* pipes per connection */
    int64_t ws_max_message;              /* bytes of one client message (after reassembly) */
    int64_t ws_max_output;               /* bytes queued to one connection: beyond, it is cut */
    int64_t ws_flush_slice;    /* connections written per loop turn, the rest next turn (0: all) */
    int64_t ws_writer_threads; /* helpers sharing a large flush; -1: one with 2+ cores, else 0 */
    int64_t ws_recovery_messages; /* messages kept per pipe for pipe_since */
    int64_t ws_recovery_window;   /* seconds they are kept */
    int64_t ws_recovery_memory;   /* bytes all pipes' rings hold together */
    char *ws_metrics;             /* who may read /metrics: loopback, any, off */
    int64_t ws_command_rate;      /* commands per second per connection, on average */
    int64_t ws_command_burst;     /* ... and at once */
    int64_t ws_ping_interval;     /* seconds of silence before the server pings */
    int64_t ws_handshake_timeout; /* seconds to send a complete HTTP request */
    int64_t ws_max_static_file;   /* bytes of one static file served from base_dir */
    char *ws_ssl_cert, *ws_ssl_key;

    /* [freeswitch] (directory endpoint, Video API issue) */
    char *freeswitch_ip;
    int freeswitch_port;
    char *freeswitch_user, *freeswitch_password; /* HTTP Basic credentials media nodes must send */
    char *freeswitch_allow;                      /* source addresses: comma-separated CIDRs */
    int64_t freeswitch_max_connections_per_ip;   /* directory requests open at once per address */

    /* [sip] */
    char *sip_pipesalt;
    char *sip_call_secret;      /* shared with the media nodes: signs each invitation (callToken) */
    int64_t sip_call_token_ttl; /* seconds an invitation's token opens its room */
    char *sip_domain; /* the media nodes' SIP domain: conference names end in "-<domain>" */
    int64_t sip_node_timeout_ms; /* an Event Socket command unanswered this long: node down */
    struct config_list sip_freeswitch;

    /* [store] */
    char *store_type; /* "sqlite" (one node) or "redis" (the state shared by every node) */
    char *store_path;
    char *store_synchronous;      /* "normal" (survives a process crash) or "full" (power loss) */
    int64_t store_queue_ttl;      /* seconds an offline users_messages row is kept */
    int64_t store_trust_ttl;      /* seconds trust_ pipe history is kept */
    int64_t store_history_max;    /* max pipes_settings length */
    int64_t store_purge_interval; /* seconds between expiry runs */
    int64_t store_busy_timeout;   /* ms a write waits for another process's lock on the file */

    /* [redis] (store type = redis) */
    char *redis_server;       /* host:port */
    char *redis_user;         /* ACL user, "" for none */
    char *redis_password;     /* "" for no AUTH */
    int64_t redis_db;         /* SELECT */
    int64_t redis_timeout_ms; /* connect and each answer; past it the link is down */
    int64_t redis_start_wait; /* seconds the server waits for Redis at start */
    char *redis_prefix;       /* of every key and channel, so that deployments can share */
    bool redis_cluster;       /* a Redis Cluster: server lists seeds, slots from CLUSTER SLOTS */

    /* [log] */
    enum log_level log_level;
};

/* ---- the table engine, shared with other binaries' settings (ccomet-media) ---------------- */

enum config_opt_type {
    CFG_STR,
    CFG_INT,
    CFG_PORT,
    CFG_BOOL,
    CFG_SIZE,
    CFG_LEVEL,
    CFG_LIST,
    CFG_ENUM,
    CFG_LEGACY
};

/* One setting: where it lives in the settings struct (offset), its type and bounds. Types map to
 * fields: STR/ENUM char *, INT/SIZE int64_t, PORT int, BOOL bool, LEVEL enum log_level,
 * LIST struct config_list. */
struct config_opt {
    const char *section, *key;
    enum config_opt_type type;
    size_t offset;
    const char *def;
    int64_t min, max;
    bool reloadable;
    const char *choices; /* CFG_ENUM: "a|b|c" */
};

/* Parses value into the field of target that o describes. 0, or -1 with err naming section,
 * key and line. */
int config_opt_set(void *target, const struct config_opt *o, const char *value, char *err,
                   size_t errlen, int line);

void config_table_defaults(void *target, const struct config_opt *opts, size_t n);
void config_table_free(void *target, const struct config_opt *opts, size_t n);
/* Applies the file at path to target. Keys not in opts warn, unless ignored() says they are
 * known to be unused (nullable). 0, or -1 with err. */
int config_table_load(void *target, const struct config_opt *opts, size_t n, const char *path,
                      bool (*ignored)(const char *section, const char *key), char *err,
                      size_t errlen);

/* Loads path (NULL: defaults only). Returns NULL and fills err on an invalid value or an
 * unreadable file. (transfer full) */
struct config *config_load(const char *path, char *err, size_t errlen);
/* Defaults, as config_load(NULL). (transfer full) */
struct config *config_defaults(void);
/* The shipped (public) or an empty [main] password on a listener that is not loopback opens
 * every tenant to anyone who can reach the port, and lets anyone mint browser JWTs (audit C2):
 * false with err naming the key, unless [main] allow_default_password is set. */
bool config_exposure_ok(const struct config *cfg, char *err, size_t errlen);
void config_free(struct config *c);
/* Logs which non-reloadable settings differ between old and new. */
void config_log_restart_needed(const struct config *old, const struct config *neu);

#endif
