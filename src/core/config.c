/* config: the settings table and comet.ini loading; see config.h. */
#include "core/config.h"
#include "core/alloc.h"
#include "core/ini.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F(field) offsetof(struct config, field)
#define KiB      1024LL
#define MiB      (1024LL * 1024)
#define GiB      (1024LL * MiB)
static const struct config_opt ccomet_opts[] = {
    {"main", "password", CFG_STR, F(password), "password", 0, 0, true, NULL},
    {"main", "allow_default_password", CFG_BOOL, F(allow_default_password), "false", 0, 0, false,
     NULL},
    {"main", "shared_password_tenants", CFG_BOOL, F(shared_password_tenants), "true", 0, 0, false,
     NULL},
    {"main", "jwt_require_exp", CFG_BOOL, F(jwt_require_exp), "false", 0, 0, false, NULL},
    {"main", "jwt_returns_key", CFG_BOOL, F(jwt_returns_key), "false", 0, 0, false, NULL},
    {"main", "io_uring", CFG_BOOL, F(io_uring), "true", 0, 0, false, NULL},
    {"main", "jwt_credential_ttl", CFG_INT, F(jwt_credential_ttl), "43200", 60, 7 * 86400, false,
     NULL},
    {"main", "tenant_grace", CFG_INT, F(tenant_grace), "3600", 0, 30 * 86400, false, NULL},
    {"main", "node_name", CFG_STR, F(node_name), "ccomet", 0, 0, false, NULL},
    {"main", "base_dir", CFG_STR, F(base_dir), "web", 0, 0, false, NULL},
    {"main", "send_user_online_events", CFG_BOOL, F(send_user_online_events), "true", 0, 0, true,
     NULL},
    {"main", "send_user_offline_events", CFG_BOOL, F(send_user_offline_events), "true", 0, 0, true,
     NULL},
    {"main", "save_users_last_online_time", CFG_BOOL, F(save_users_last_online_time), "true", 0, 0,
     true, NULL},
    {"main", "dev_index_size", CFG_INT, F(dev_index_size), "1000000000", 1, 2147483647LL, false,
     NULL},

    {"cometql", "ip", CFG_STR, F(cometql_ip), "127.0.0.1", 0, 0, false, NULL},
    {"cometql", "port", CFG_PORT, F(cometql_port), "3307", 1, 65535, false, NULL},
    {"cometql", "max_connections", CFG_INT, F(cometql_max_connections), "4096", 1, 1000000, true,
     NULL},
    {"cometql", "max_packet", CFG_SIZE, F(cometql_max_packet), "64M", 4 * KiB, 1024 * MiB, true,
     NULL},
    {"cometql", "max_query_length", CFG_SIZE, F(cometql_max_query_length), "64M", 64, 1024 * MiB,
     true, NULL},
    {"cometql", "max_message_size", CFG_SIZE, F(cometql_max_message_size), "1M", 16, 1024 * MiB,
     true, NULL},
    {"cometql", "max_in_values", CFG_INT, F(cometql_max_in_values), "4000", 1, 1000000, true, NULL},
    {"cometql", "max_conditions", CFG_INT, F(cometql_max_conditions), "16", 1, 1000, true, NULL},
    {"cometql", "max_result_rows", CFG_INT, F(cometql_max_result_rows), "100000", 1, 100000000,
     true, NULL},
    {"cometql", "max_result_size", CFG_SIZE, F(cometql_max_result_size), "256M", 64 * KiB,
     2048 * MiB, true, NULL},
    {"cometql", "max_long_data", CFG_SIZE, F(cometql_max_long_data), "64M", 4 * KiB, 1024 * MiB,
     true, NULL},
    {"cometql", "max_rows_examined", CFG_INT, F(cometql_max_rows_examined), "1000000", 1,
     1000000000000LL, true, NULL},
    {"cometql", "max_prepared_memory", CFG_SIZE, F(cometql_max_prepared_memory), "64M", 4 * KiB,
     64 * GiB, true, NULL},
    {"cometql", "max_prepared_statements", CFG_INT, F(cometql_max_prepared), "1024", 1, 1000000,
     true, NULL},
    {"cometql", "max_unauthenticated_per_ip", CFG_INT, F(cometql_max_unauthenticated_per_ip), "128",
     1, 1000000, true, NULL},
    {"cometql", "max_auth_failures", CFG_INT, F(cometql_max_auth_failures), "30", 0, 1000000, true,
     NULL},
    {"cometql", "auth_failure_window", CFG_INT, F(cometql_auth_failure_window), "60", 1, 86400,
     true, NULL},
    {"cometql", "connect_timeout", CFG_INT, F(cometql_connect_timeout), "10", 1, 3600, true, NULL},
    {"cometql", "idle_timeout", CFG_INT, F(cometql_idle_timeout), "28800", 1, 31536000, true, NULL},
    {"cometql", "max_output", CFG_SIZE, F(cometql_max_output), "4M", 64 * KiB, 1024 * MiB, true,
     NULL},
    {"cometql", "ssl_cert", CFG_STR, F(cometql_ssl_cert), "", 0, 0, false, NULL},
    {"cometql", "ssl_key", CFG_STR, F(cometql_ssl_key), "", 0, 0, false, NULL},
    {"cometql", "require_tls", CFG_BOOL, F(cometql_require_tls), "false", 0, 0, true, NULL},

    {"ws", "ip", CFG_STR, F(ws_ip), "127.0.0.1", 0, 0, false, NULL},
    {"ws", "port", CFG_PORT, F(ws_port), "8087", 1, 65535, false, NULL},
    {"ws", "max_connections", CFG_INT, F(ws_max_connections), "1000000", 1, 100000000, true, NULL},
    {"ws", "max_connections_per_user", CFG_INT, F(ws_max_connections_per_user), "16", 1, 100000,
     true, NULL},
    {"ws", "max_connections_per_ip", CFG_INT, F(ws_max_connections_per_ip), "0", 0, 100000000, true,
     NULL},
    {"ws", "max_subscriptions", CFG_INT, F(ws_max_subscriptions), "64", 1, 100000, true, NULL},
    {"ws", "max_message", CFG_SIZE, F(ws_max_message), "64K", 126, 64 * MiB, true, NULL},
    {"ws", "max_output", CFG_SIZE, F(ws_max_output), "1M", 4 * KiB, 1024 * MiB, true, NULL},
    {"ws", "flush_slice", CFG_INT, F(ws_flush_slice), "2048", 0, 10000000, true, NULL},
    {"ws", "writer_threads", CFG_INT, F(ws_writer_threads), "-1", -1, 8, false, NULL},
    {"ws", "recovery_messages", CFG_INT, F(ws_recovery_messages), "64", 0, 100000, true, NULL},
    {"ws", "recovery_window", CFG_INT, F(ws_recovery_window), "120", 1, 86400, true, NULL},
    {"ws", "recovery_memory", CFG_SIZE, F(ws_recovery_memory), "256M", 64 * KiB, 64 * GiB, true,
     NULL},
    {"ws", "command_rate", CFG_INT, F(ws_command_rate), "100", 1, 10000000, true, NULL},
    {"ws", "command_burst", CFG_INT, F(ws_command_burst), "400", 1, 10000000, true, NULL},
    {"ws", "max_auth_failures", CFG_INT, F(ws_max_auth_failures), "30", 0, 1000000, true, NULL},
    {"ws", "auth_failure_window", CFG_INT, F(ws_auth_failure_window), "60", 1, 86400, true, NULL},
    {"ws", "ping_interval", CFG_INT, F(ws_ping_interval), "30", 1, 3600, true, NULL},
    {"ws", "handshake_timeout", CFG_INT, F(ws_handshake_timeout), "10", 1, 3600, true, NULL},
    {"ws", "metrics", CFG_ENUM, F(ws_metrics), "loopback", 0, 0, true, "loopback|any|off"},
    {"ws", "max_static_file", CFG_SIZE, F(ws_max_static_file), "8M", 1, 1024 * MiB, true, NULL},
    {"ws", "ssl_cert", CFG_STR, F(ws_ssl_cert), "", 0, 0, false, NULL},
    {"ws", "ssl_key", CFG_STR, F(ws_ssl_key), "", 0, 0, false, NULL},

    {"freeswitch", "ip", CFG_STR, F(freeswitch_ip), "127.0.0.1", 0, 0, false, NULL},
    {"freeswitch", "port", CFG_PORT, F(freeswitch_port), "8082", 1, 65535, false, NULL},
    {"freeswitch", "user", CFG_STR, F(freeswitch_user), "", 0, 0, false, NULL},
    {"freeswitch", "password", CFG_STR, F(freeswitch_password), "", 0, 0, false, NULL},
    {"freeswitch", "allow", CFG_STR, F(freeswitch_allow), "127.0.0.0/8,::1", 0, 0, false, NULL},
    {"freeswitch", "max_connections_per_ip", CFG_INT, F(freeswitch_max_connections_per_ip), "16", 1,
     100000, false, NULL},
    {"sip", "domain", CFG_STR, F(sip_domain), "FSdefaultDomain", 0, 0, false, NULL},
    {"sip", "node_timeout_ms", CFG_INT, F(sip_node_timeout_ms), "5000", 500, 60000, false, NULL},

    {"sip", "pipesalt", CFG_STR, F(sip_pipesalt), "pipesalt", 0, 0, false, NULL},
    {"sip", "call_secret", CFG_STR, F(sip_call_secret), "", 0, 0, false, NULL},
    {"sip", "call_token_ttl", CFG_INT, F(sip_call_token_ttl), "43200", 60, 30 * 86400, false, NULL},
    {"sip", "freeswitch", CFG_LIST, F(sip_freeswitch), "", 0, 0, false, NULL},

    {"store", "type", CFG_ENUM, F(store_type), "sqlite", 0, 0, false, "sqlite|redis"},
    {"store", "path", CFG_STR, F(store_path), "var/ccomet.db", 0, 0, false, NULL},
    {"store", "synchronous", CFG_ENUM, F(store_synchronous), "normal", 0, 0, false, "normal|full"},
    {"store", "queue_ttl", CFG_INT, F(store_queue_ttl), "86400", 1, 315360000LL, true, NULL},
    {"store", "trust_ttl", CFG_INT, F(store_trust_ttl), "86400", 1, 315360000LL, true, NULL},
    {"store", "purge_interval", CFG_INT, F(store_purge_interval), "60", 1, 86400, false, NULL},
    {"store", "history_max", CFG_INT, F(store_history_max), "1000", 0, 1000000, true, NULL},
    {"store", "busy_timeout", CFG_INT, F(store_busy_timeout), "100", 0, 10000, false, NULL},

    {"redis", "server", CFG_STR, F(redis_server), "127.0.0.1:6379", 0, 0, false, NULL},
    {"redis", "user", CFG_STR, F(redis_user), "", 0, 0, false, NULL},
    {"redis", "password", CFG_STR, F(redis_password), "", 0, 0, false, NULL},
    {"redis", "db", CFG_INT, F(redis_db), "0", 0, 10000, false, NULL},
    {"redis", "timeout_ms", CFG_INT, F(redis_timeout_ms), "2000", 50, 60000, false, NULL},
    {"redis", "start_wait", CFG_INT, F(redis_start_wait), "30", 0, 3600, false, NULL},
    {"redis", "prefix", CFG_STR, F(redis_prefix), "ccomet:", 0, 0, false, NULL},
    {"redis", "cluster", CFG_BOOL, F(redis_cluster), "false", 0, 0, false, NULL},

    {"log", "level", CFG_LEVEL, F(log_level), "info", 0, 0, true, NULL},
};

/* CppComet keys that ccomet accepts and ignores (its threads, buffers and SaaS features). */
static const char *legacy[] = {
    "main.useQueryLoger",
    "main.buf_size",
    "main.answer_buf_size",
    "main.fragment_buf_size",
    "main.fragment_buf_max_size",
    "main.pidfile",
    "main.api_version",
    "main.isTest",
    "*.thread_num",
    "*.backlog",
    "*.epoll_size",
    "*.statistics",
    "*.benchmark",
    "*.uptimeTestInterval",
    "*.maxUptime",
    "*.cluster",
    "ws.host",
    "sip.port",
    "sip.host",
    "statistics.*",
    "benchmark.*",
    "content-type.*",
    "http.*",
    "db.*",
    "cometqlproxy.*",
    "log.*",
};

static bool legacy_key(const char *section, const char *key)
{
    for (size_t i = 0; i < sizeof legacy / sizeof legacy[0]; i++) {
        const char *dot = strchr(legacy[i], '.');
        size_t sl = (size_t)(dot - legacy[i]);
        bool sec_ok = (sl == 1 && legacy[i][0] == '*') ||
                      (strlen(section) == sl && strncmp(section, legacy[i], sl) == 0);
        bool key_ok = strcmp(dot + 1, "*") == 0 || strcmp(dot + 1, key) == 0;
        if (sec_ok && key_ok) return true;
    }
    return false;
}

static bool parse_int(const char *s, int64_t *out, bool size_suffix)
{
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno) return false;
    if (size_suffix && *end) {
        long long mult = 1;
        switch (*end) {
        case 'k':
        case 'K': mult = KiB; break;
        case 'm':
        case 'M': mult = MiB; break;
        case 'g':
        case 'G': mult = 1024 * MiB; break;
        default: return false;
        }
        end++;
        if (v > INT64_MAX / mult || v < INT64_MIN / mult) return false;
        v *= mult;
    }
    if (*end) return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"true", "True", "TRUE", "yes", "on", "1"};
    static const char *no[] = {"false", "False", "FALSE", "no", "off", "0"};
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(s, yes[i]) == 0) return *out = true, true;
        if (strcmp(s, no[i]) == 0) return *out = false, true;
    }
    return false;
}

static bool enum_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *c = choices; c && *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, v, n) == 0) return true;
        c = bar ? bar + 1 : NULL;
    }
    return false;
}

struct load_ctx {
    void *target;
    const struct config_opt *opts;
    size_t n;
    bool (*ignored)(const char *section, const char *key);
    char *err;
    size_t errlen;
};

int config_opt_set(void *target, const struct config_opt *o, const char *value, char *err,
                   size_t errlen, int line)
{
    char *base = (char *)target + o->offset;
    int64_t v;
    switch (o->type) {
    case CFG_STR:
    case CFG_ENUM:
        if (o->type == CFG_ENUM && !enum_ok(o->choices, value)) {
            snprintf(err, errlen, "line %d: [%s] %s = \"%s\" is invalid (expected %s)", line,
                     o->section, o->key, value, o->choices);
            return -1;
        }
        xfree(*(char **)base);
        *(char **)base = xstrdup(value);
        return 0;
    case CFG_INT:
    case CFG_PORT:
    case CFG_SIZE:
        if (!parse_int(value, &v, o->type == CFG_SIZE) || v < o->min || v > o->max) {
            snprintf(err, errlen, "line %d: [%s] %s = \"%s\" is invalid (expected %s %lld..%lld)",
                     line, o->section, o->key, value, o->type == CFG_SIZE ? "a size" : "an integer",
                     (long long)o->min, (long long)o->max);
            return -1;
        }
        if (o->type == CFG_PORT)
            *(int *)base = (int)v;
        else
            *(int64_t *)base = v;
        return 0;
    case CFG_BOOL:
        if (!parse_bool(value, (bool *)base)) {
            snprintf(err, errlen, "line %d: [%s] %s = \"%s\" is invalid (expected true or false)",
                     line, o->section, o->key, value);
            return -1;
        }
        return 0;
    case CFG_LEVEL:
        if (!log_parse_level(value, (enum log_level *)base)) {
            snprintf(err, errlen,
                     "line %d: [%s] %s = \"%s\" is invalid (expected crit|error|warn|info|debug "
                     "or 100..600)",
                     line, o->section, o->key, value);
            return -1;
        }
        return 0;
    case CFG_LIST: {
        struct config_list *l = (struct config_list *)base;
        const char *item = strncmp(value, "[]", 2) == 0 ? value + 2 : value;
        if (!*item) return 0;
        l->items = xrealloc(l->items, (l->n + 1) * sizeof *l->items);
        l->items[l->n++] = xstrdup(item);
        return 0;
    }
    case CFG_LEGACY: return 0;
    }
    return 0;
}

static int on_entry(void *ctx, const char *section, const char *key, const char *value, int line)
{
    struct load_ctx *lc = ctx;
    for (size_t i = 0; i < lc->n; i++) {
        if (strcmp(lc->opts[i].section, section) == 0 && strcmp(lc->opts[i].key, key) == 0)
            return config_opt_set(lc->target, &lc->opts[i], value, lc->err, lc->errlen, line);
    }
    if (lc->ignored && lc->ignored(section, key)) {
        LOG(LOG_DEBUG, "config", "msg=\"key ignored\" section=%s key=%s line=%d", section, key,
            line);
        return 0;
    }
    LOG(LOG_WARN, "config", "msg=\"unknown key ignored\" section=%s key=%s line=%d", section, key,
        line);
    return 0;
}

void config_table_defaults(void *target, const struct config_opt *opts, size_t n)
{
    char err[256];
    for (size_t i = 0; i < n; i++) {
        if (opts[i].type == CFG_LIST || opts[i].type == CFG_LEGACY) continue;
        if (config_opt_set(target, &opts[i], opts[i].def, err, sizeof err, 0) != 0) {
            fprintf(stderr, "bad built-in default: %s\n", err);
            abort();
        }
    }
}

void config_table_free(void *target, const struct config_opt *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *base = (char *)target + opts[i].offset;
        if (opts[i].type == CFG_STR || opts[i].type == CFG_ENUM) {
            xfree(*(char **)base);
            *(char **)base = NULL;
        }
        if (opts[i].type == CFG_LIST) {
            struct config_list *l = (struct config_list *)base;
            for (size_t j = 0; j < l->n; j++)
                xfree(l->items[j]);
            xfree(l->items);
            l->items = NULL;
            l->n = 0;
        }
    }
}

int config_table_load(void *target, const struct config_opt *opts, size_t n, const char *path,
                      bool (*ignored)(const char *section, const char *key), char *err,
                      size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char *text = NULL;
    size_t len = 0, cap = 0, got;
    char chunk[8192];
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + got > 16 * MiB) break;
        if (len + got > cap) {
            cap = (len + got) * 2;
            text = xrealloc(text, cap);
        }
        memcpy(text + len, chunk, got);
        len += got;
    }
    fclose(f);
    struct load_ctx lc = {target, opts, n, ignored, err, errlen};
    int rc = ini_parse(text ? text : "", len, on_entry, &lc, err, errlen);
    xfree(text);
    return rc == 0 ? 0 : -1;
}

static bool ccomet_ignored(const char *section, const char *key)
{
    return strcmp(section, "log") == 0 || legacy_key(section, key); /* CppComet's keys */
}

#define N_OPTS (sizeof ccomet_opts / sizeof ccomet_opts[0])

struct config *config_defaults(void)
{
    struct config *c = xcalloc(1, sizeof *c);
    config_table_defaults(c, ccomet_opts, N_OPTS);
    return c;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
    struct config *c = config_defaults();
    if (!path) return c;
    c->path = xstrdup(path);
    if (config_table_load(c, ccomet_opts, N_OPTS, path, ccomet_ignored, err, errlen) != 0) {
        config_free(c);
        return NULL;
    }
    if (!!*c->ws_ssl_cert != !!*c->ws_ssl_key) {
        snprintf(err, errlen, "[ws] ssl_cert and ssl_key must be given together");
        config_free(c);
        return NULL;
    }
    if (!!*c->cometql_ssl_cert != !!*c->cometql_ssl_key) {
        snprintf(err, errlen, "[cometql] ssl_cert and ssl_key must be given together");
        config_free(c);
        return NULL;
    }
    if (c->cometql_require_tls && !*c->cometql_ssl_cert) {
        snprintf(err, errlen, "[cometql] require_tls needs ssl_cert and ssl_key");
        config_free(c);
        return NULL;
    }
    return c;
}

void config_free(struct config *c)
{
    if (!c) return;
    config_table_free(c, ccomet_opts, N_OPTS);
    xfree(c->path);
    xfree(c);
}

void config_log_restart_needed(const struct config *old, const struct config *neu)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct config_opt *o = &ccomet_opts[i];
        if (o->reloadable) continue;
        const char *a = (const char *)old + o->offset, *b = (const char *)neu + o->offset;
        bool differ = false;
        switch (o->type) {
        case CFG_STR:
        case CFG_ENUM: differ = strcmp(*(char *const *)a, *(char *const *)b) != 0; break;
        case CFG_PORT: differ = *(const int *)a != *(const int *)b; break;
        case CFG_INT:
        case CFG_SIZE: differ = *(const int64_t *)a != *(const int64_t *)b; break;
        case CFG_BOOL: differ = *(const bool *)a != *(const bool *)b; break;
        default: break;
        }
        if (differ)
            LOG(LOG_WARN, "config", "msg=\"changed setting needs a restart\" section=%s key=%s",
                o->section, o->key);
    }
}

static bool loopback(const char *ip)
{
    return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 || strcmp(ip, "localhost") == 0;
}

bool config_exposure_ok(const struct config *cfg, char *err, size_t errlen)
{
    /* the call pipes' names are derived with [sip] pipesalt: the shipped one lets any page
     * compute a room's pipe and watch who joins (security audit M1) */
    bool weak_salt = !*cfg->sip_pipesalt || strcmp(cfg->sip_pipesalt, "pipesalt") == 0;
    if (weak_salt && cfg->sip_freeswitch.n && !loopback(cfg->ws_ip) &&
        !cfg->allow_default_password) {
        snprintf(err, errlen,
                 "[sip] pipesalt is %s while media nodes are set and [ws] ip = %s is reachable "
                 "from other hosts: any page could compute a room's call pipe; set your own "
                 "[sip] pipesalt (or [main] allow_default_password = yes on a closed network)",
                 *cfg->sip_pipesalt ? "the shipped default" : "empty", cfg->ws_ip);
        return false;
    }
    bool weak = !*cfg->password || strcmp(cfg->password, "password") == 0;
    if (!weak || cfg->allow_default_password) return true;
    const char *key = !loopback(cfg->cometql_ip) ? "[cometql] ip"
                      : !loopback(cfg->ws_ip)    ? "[ws] ip"
                                                 : NULL;
    if (!key) return true;
    snprintf(err, errlen,
             "[main] password is %s while %s = %s is reachable from other hosts: anyone could "
             "log in to every tenant and sign browser tokens; set your own [main] password (or "
             "[main] allow_default_password = yes on a closed network)",
             *cfg->password ? "the shipped default" : "empty", key,
             strcmp(key, "[ws] ip") == 0 ? cfg->ws_ip : cfg->cometql_ip);
    return false;
}
