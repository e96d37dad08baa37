/* main: ccomet's process: command line, configuration, the store, the event loop and the
 * services on it, signals (SIGTERM/SIGINT: graceful stop; SIGHUP: reload), and the once-per-
 * iteration group commit that every reply waits for. Holds no protocol logic. */
#include "core/alloc.h"
#include "core/config.h"
#include "core/cli.h"
#include "core/log.h"
#include "cometql/cometql_exec.h"
#include "cometql/cometql_server.h"
#include "push/hub.h"
#include "push/pubsub.h"
#include "push/ws_server.h"
#include "state/state.h"
#include "state/tenants.h"
#include "state/redis.h"
#include "state/store.h"
#include "video/video.h"
#include "video/directory_server.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

struct app {
    uv_loop_t *loop;
    struct config *cfg;
    struct store *store;
    struct state *state;       /* the tables' view of store + hub */
    struct state *redis_state; /* the Redis backend under state (which may wrap it), or NULL */
    struct tenants tenants;    /* the tenants' own credentials, loaded from the state at start */
    struct hub hub;
    struct cq_env env;
    struct cometql_server *cometql;
    struct pubsub *pubsub;
    struct ws_server *ws;
    struct video *video;
    struct directory_server *directory;
    int services_running;
    uv_prepare_t before_poll;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t purge;
    bool stopping;
};

/* The group commit: runs right before the loop waits for I/O, after every callback of this
 * iteration has queued its replies. */
static void on_before_poll(uv_prepare_t *h)
{
    struct app *app = h->data;
    bool ok = true;
    if (app->store && store_dirty(app->store)) ok = store_commit(app->store) == 0;
    if (app->cometql)
        cometql_server_after_commit(app->cometql, ok, ok ? NULL : store_errmsg(app->store));
    if (app->ws) ws_server_flush(app->ws);
}

struct tenant_load {
    struct tenants *into;
    int64_t bad;
    int64_t result;
    char err[256];
    bool done;
};

static int tenant_row(void *ctx, const struct value *cols, size_t n)
{
    struct tenant_load *l = ctx;
    struct tenant t;
    if (!tenant_from_row(&t, cols, n)) {
        l->bad++;
        return 0;
    }
    tenants_put(l->into, &t);
    tenant_wipe(&t);
    return 0;
}

static void tenants_loaded(void *ctx, int64_t result, const char *err)
{
    struct tenant_load *l = ctx;
    l->result = result;
    l->done = true;
    if (result < 0) snprintf(l->err, sizeof l->err, "%s", err ? err : "?");
}

/* Cluster mode: another node stored or removed a tenant's credentials: all are read again and
 * replace this node's (a password rotated or revoked there stops working here at once). */
struct tenant_reload {
    struct app *app;
    struct tenants fresh;
    int64_t bad;
};

static int tenant_reload_row(void *ctx, const struct value *cols, size_t n)
{
    struct tenant_reload *l = ctx;
    struct tenant t;
    if (!tenant_from_row(&t, cols, n)) {
        l->bad++;
        return 0;
    }
    tenants_put(&l->fresh, &t);
    tenant_wipe(&t);
    return 0;
}

static void tenants_reloaded(void *ctx, int64_t result, const char *err)
{
    struct tenant_reload *l = ctx;
    struct app *app = l->app;
    if (result >= 0 && !app->stopping) {
        tenants_free(&app->tenants);
        app->tenants = l->fresh; /* the registry moves: its buckets stay where they are */
        LOG(LOG_INFO, "main", "msg=\"tenant credentials reloaded\" tenants=%zu",
            app->tenants.count);
    } else {
        tenants_free(&l->fresh);
        if (result < 0)
            LOG(LOG_ERROR, "main", "msg=\"cannot reload the tenants' credentials\" error=\"%s\"",
                err ? err : "?");
    }
    xfree(l);
}

static void tenants_reload(void *ctx)
{
    struct app *app = ctx;
    struct tenant_reload *l = xcalloc(1, sizeof *l);
    l->app = app;
    tenants_init(&l->fresh);
    l->fresh.require_exp = app->tenants.require_exp;
    struct state_cb cb = {tenant_reload_row, tenants_reloaded, l};
    app->state->ops->tenant_list(app->state, &cb);
}

static void tenants_changed(void *ctx, int64_t dev_id)
{
    struct app *app = ctx;
    if (app->redis_state) state_redis_tenants_changed(app->redis_state, dev_id);
}

static void kick_user(void *ctx, int64_t dev_id, int64_t user_id)
{
    struct app *app = ctx;
    /* the key is also the user's SIP password: the media nodes end what it opened (audit L9) */
    video_revoke_user(app->video, dev_id, user_id);
    if (app->redis_state)
        state_redis_kick(app->redis_state, dev_id, user_id); /* every node, this one too */
    else
        pubsub_kick_user(app->pubsub, dev_id, user_id);
}

/* /metrics: the CometQL side's counters next to the browser side's. */
static void cometql_metrics(void *ctx, struct buf *out)
{
    struct app *app = ctx;
    char text[512];
    int n = snprintf(text, sizeof text,
                     "# HELP ccomet_cometql_connections Open CometQL connections.\n"
                     "# TYPE ccomet_cometql_connections gauge\n"
                     "ccomet_cometql_connections %llu\n"
                     "# HELP ccomet_cometql_queries_total CometQL statements run.\n"
                     "# TYPE ccomet_cometql_queries_total counter\n"
                     "ccomet_cometql_queries_total %llu\n",
                     (unsigned long long)cometql_server_connections(app->cometql),
                     (unsigned long long)(app->env.queries_total ? *app->env.queries_total : 0));
    buf_append(out, text, (size_t)n);
    if (!app->redis_state) return;
    struct redis_stats rs;
    state_redis_stats(app->redis_state, &rs);
    char more[2400];
    n = snprintf(
        more, sizeof more,
        "# HELP ccomet_redis_up Both Redis connections are up (1) or not (0).\n"
        "# TYPE ccomet_redis_up gauge\n"
        "ccomet_redis_up %d\n"
        "# HELP ccomet_redis_latency_microseconds Mean answer time of the command connection.\n"
        "# TYPE ccomet_redis_latency_microseconds gauge\n"
        "ccomet_redis_latency_microseconds %llu\n"
        "# HELP ccomet_redis_reconnects_total Redis connections made again after a loss.\n"
        "# TYPE ccomet_redis_reconnects_total counter\n"
        "ccomet_redis_reconnects_total %llu\n"
        "# HELP ccomet_redis_errors_total Calls Redis refused or did not answer.\n"
        "# TYPE ccomet_redis_errors_total counter\n"
        "ccomet_redis_errors_total %llu\n"
        "# HELP ccomet_redis_fanout_received_total Messages that came from Redis to this node.\n"
        "# TYPE ccomet_redis_fanout_received_total counter\n"
        "ccomet_redis_fanout_received_total %llu\n"
        "# HELP ccomet_redis_gaps_total Gaps in a pipe's sequence seen here.\n"
        "# TYPE ccomet_redis_gaps_total counter\n"
        "ccomet_redis_gaps_total %llu\n"
        "# HELP ccomet_redis_repaired_total Messages read from a pipe's stream to fill a gap.\n"
        "# TYPE ccomet_redis_repaired_total counter\n"
        "ccomet_redis_repaired_total %llu\n"
        "# HELP ccomet_redis_lost_total Messages of a gap the stream no longer held.\n"
        "# TYPE ccomet_redis_lost_total counter\n"
        "ccomet_redis_lost_total %llu\n"
        "# HELP ccomet_redis_shards Redis servers (cluster masters) this node talks to.\n"
        "# TYPE ccomet_redis_shards gauge\n"
        "ccomet_redis_shards %llu\n"
        "# HELP ccomet_redis_redirects_total MOVED and ASK answers followed.\n"
        "# TYPE ccomet_redis_redirects_total counter\n"
        "ccomet_redis_redirects_total %llu\n"
        "# HELP ccomet_redis_moved_channels_total Subscriptions moved with their slot.\n"
        "# TYPE ccomet_redis_moved_channels_total counter\n"
        "ccomet_redis_moved_channels_total %llu\n",
        state_redis_up(app->redis_state) ? 1 : 0, (unsigned long long)rs.latency_us,
        (unsigned long long)rs.reconnects, (unsigned long long)rs.errors,
        (unsigned long long)rs.received, (unsigned long long)rs.gaps,
        (unsigned long long)rs.repaired, (unsigned long long)rs.gaps_lost,
        (unsigned long long)rs.shards, (unsigned long long)rs.redirects,
        (unsigned long long)rs.moved_channels);
    buf_append(out, more, (size_t)n);
}

/* [store] type = redis: the loop runs (the links connecting, retrying) until both Redis
 * connections are up or [redis] start_wait has passed. */
static bool wait_for_redis(struct app *app)
{
    uint64_t start = uv_now(app->loop), next_log = start + 2000;
    while (!state_redis_up(app->state)) {
        uint64_t now = uv_now(app->loop);
        if (now - start >= (uint64_t)app->cfg->redis_start_wait * 1000) return false;
        if (now >= next_log) {
            LOG(LOG_WARN, "main", "msg=\"waiting for Redis\" server=%s", app->cfg->redis_server);
            next_log = now + 5000;
        }
        uv_run(app->loop, UV_RUN_ONCE);
    }
    return true;
}

static void on_purge(uv_timer_t *t)
{
    struct app *app = t->data;
    if (!app->store) return; /* Redis expires its own keys */
    int n = store_purge(app->store, (int64_t)time(NULL), app->cfg->store_queue_ttl,
                        app->cfg->store_trust_ttl);
    if (n > 0) LOG(LOG_INFO, "store", "msg=\"expired rows purged\" rows=%d", n);
    /* the commit happens in on_before_poll like every other write */
}

static void on_stopped(void *ctx)
{
    struct app *app = ctx;
    if (--app->services_running > 0) return;
    on_before_poll(&app->before_poll);                   /* the last commit and flush */
    if (!app->store) state_redis_stop(app->redis_state); /* its links would keep the loop up */
    uv_prepare_stop(&app->before_poll);
    uv_close((uv_handle_t *)&app->before_poll, NULL);
    uv_close((uv_handle_t *)&app->sig_term, NULL);
    uv_close((uv_handle_t *)&app->sig_int, NULL);
    uv_close((uv_handle_t *)&app->sig_hup, NULL);
    uv_close((uv_handle_t *)&app->purge, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct app *app = h->data;
    if (signum == SIGHUP) {
        char err[512];
        struct config *neu = config_load(app->cfg->path, err, sizeof err);
        if (!neu) {
            LOG(LOG_ERROR, "main",
                "msg=\"reload failed; keeping the running configuration\" error=\"%s\"", err);
            return;
        }
        config_log_restart_needed(app->cfg, neu);
        log_set_level(neu->log_level);
        app->env.cfg = neu;
        cometql_server_reconfigure(app->cometql, neu);
        pubsub_reconfigure(app->pubsub, neu);
        ws_server_reconfigure(app->ws, neu);
        config_free(app->cfg);
        app->cfg = neu;
        LOG(LOG_INFO, "main", "msg=\"configuration reloaded\" file=%s",
            neu->path ? neu->path : "-");
        return;
    }
    if (app->stopping) return;
    app->stopping = true;
    LOG(LOG_INFO, "main", "msg=\"shutting down\" signal=%d", signum);
    uv_timer_stop(&app->purge);
    directory_server_stop(app->directory);
    app->directory = NULL;
    video_free(app->video);
    app->video = NULL;
    app->env.video = NULL;
    app->services_running = 2;
    cometql_server_stop(app->cometql, on_stopped, app);
    ws_server_stop(app->ws, on_stopped, app);
}

static int make_parent_dir(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        for (char *p = dir + 1; *p; p++) {
            if (*p == '/') {
                *p = '\0';
                mkdir(dir, 0700);
                *p = '/';
            }
        }
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) rc = -1;
    }
    xfree(dir);
    return rc;
}

int main(int argc, char **argv)
{
    struct cli cli;
    int rc = cli_parse(argc, argv, "ccomet", CCOMET_VERSION, "comet.ini", &cli);
    if (rc >= 0) return rc;
    const char *conf = cli.conf;
    bool check = cli.check;

    char err[512];
    struct app app;
    memset(&app, 0, sizeof app);
    app.cfg = config_load(conf, err, sizeof err);
    if (!app.cfg) {
        fprintf(stderr, "ccomet: configuration error: %s\n", err);
        return 1;
    }
    log_set_level(app.cfg->log_level);
    if (!config_exposure_ok(app.cfg, err, sizeof err)) {
        fprintf(stderr, "ccomet: configuration error: %s\n", err);
        config_free(app.cfg);
        return 1;
    }
    if (check) {
        printf("ccomet: configuration %s is valid\n", conf ? conf : "(defaults)");
        config_free(app.cfg);
        return 0;
    }
    if (!conf) LOG(LOG_INFO, "main", "msg=\"no comet.ini found; running on built-in defaults\"");
    if (strcmp(app.cfg->password, "password") == 0)
        LOG(LOG_WARN, "main",
            "msg=\"[main] password is the default; set your own before exposing the ports\"");

    signal(SIGPIPE, SIG_IGN);
    bool on_redis = strcmp(app.cfg->store_type, "redis") == 0;
    if (!on_redis) {
        if (make_parent_dir(app.cfg->store_path) != 0) {
            fprintf(stderr, "ccomet: cannot create the directory of [store] path = %s: %s\n",
                    app.cfg->store_path, strerror(errno));
            config_free(app.cfg);
            return 1;
        }
        app.store = store_open(app.cfg->store_path, strcmp(app.cfg->store_synchronous, "full") == 0,
                               err, sizeof err);
        if (!app.store) {
            fprintf(stderr, "ccomet: %s\n", err);
            config_free(app.cfg);
            return 1;
        }
        store_set_busy_timeout(app.store, (int)app.cfg->store_busy_timeout);
    }
    app.loop = uv_default_loop();
    hub_init(&app.hub);
    app.env.cfg = app.cfg;
    if (on_redis) {
        app.state = app.redis_state = state_redis_new(app.loop, app.cfg, &app.hub, err, sizeof err);
        if (!app.state) {
            fprintf(stderr, "ccomet: configuration error: %s\n", err);
            return 1;
        }
        if (!wait_for_redis(&app)) {
            fprintf(stderr,
                    "ccomet: Redis at %s did not answer within %lld s ([redis] start_wait)\n",
                    app.cfg->redis_server, (long long)app.cfg->redis_start_wait);
            return 1;
        }
    } else {
        app.state = state_embedded_new(app.store, &app.hub);
    }
    app.env.state = app.state;
    app.env.hub = &app.hub;
    tenants_init(&app.tenants);
    app.tenants.require_exp = app.cfg->jwt_require_exp;
    app.env.tenants = &app.tenants;
    {
        struct tenant_load l = {&app.tenants, 0, -1, "", false};
        struct state_cb cb = {tenant_row, tenants_loaded, &l};
        app.state->ops->tenant_list(app.state, &cb);
        while (!l.done) /* the embedded state answers inline, Redis on a later turn */
            uv_run(app.loop, UV_RUN_ONCE);
        if (l.result < 0) {
            fprintf(stderr, "ccomet: cannot read the tenants' credentials: %s\n", l.err);
            return 1;
        }
        if (l.bad)
            LOG(LOG_ERROR, "main", "msg=\"unreadable tenant credentials skipped\" rows=%" PRId64,
                l.bad);
        LOG(LOG_INFO, "main", "msg=\"tenant credentials loaded\" tenants=%zu", app.tenants.count);
        if (app.cfg->shared_password_tenants)
            LOG(LOG_WARN, "main",
                "msg=\"every tenant without credentials of its own opens with [main] password "
                "(shared_password_tenants = yes)\" hint=\"give each its own as root: INSERT "
                "INTO tenants (dev_id, password, jwt_secret), then set shared_password_tenants = "
                "no\"");
    }
    /* tests of the callers' asynchronous paths (what a remote backend looks like): every state
     * call completes on a later loop turn */
    const char *deferred = getenv("CCOMET_TEST_DEFERRED_STATE");
    if (deferred && strcmp(deferred, "1") == 0) {
        app.state = state_deferred_new(app.state, app.loop);
        app.env.state = app.state;
        LOG(LOG_WARN, "main", "msg=\"state calls complete later (CCOMET_TEST_DEFERRED_STATE)\"");
    }
    app.env.started = time(NULL);

    app.pubsub = pubsub_new(app.cfg, app.state, &app.hub);
    struct hub_delivery delivery = pubsub_delivery(app.pubsub);
    hub_set_delivery(&app.hub, &delivery);
    app.env.kick_user = kick_user;
    app.env.kick_ctx = &app;
    app.env.tenants_changed = tenants_changed;
    if (app.redis_state) state_redis_on_tenants(app.redis_state, tenants_reload, &app);

    app.video = video_new(app.loop, app.cfg, app.state, &app.hub, err, sizeof err);
    if (!app.video) {
        fprintf(stderr, "ccomet: configuration error: %s\n", err);
        return 1;
    }
    app.env.video = app.video;
    app.directory = directory_server_start(app.loop, app.cfg, app.state, err, sizeof err);
    if (!app.directory && err[0]) {
        fprintf(stderr, "ccomet: %s\n", err);
        return 1;
    }

    app.cometql = cometql_server_start(app.loop, app.cfg, &app.env, err, sizeof err);
    if (app.cometql)
        app.ws = ws_server_start(app.loop, app.cfg, app.state, &app.tenants, app.pubsub, err,
                                 sizeof err);
    if (!app.cometql || !app.ws) {
        fprintf(stderr, "ccomet: %s\n", err);
        return 1; /* the OS reclaims everything; the store has nothing uncommitted */
    }
    ws_server_set_metrics_source(app.ws, cometql_metrics, &app);

    uv_prepare_init(app.loop, &app.before_poll);
    app.before_poll.data = &app;
    uv_prepare_start(&app.before_poll, on_before_poll);
    uv_signal_init(app.loop, &app.sig_term);
    uv_signal_init(app.loop, &app.sig_int);
    uv_signal_init(app.loop, &app.sig_hup);
    app.sig_term.data = app.sig_int.data = app.sig_hup.data = &app;
    uv_signal_start(&app.sig_term, on_signal, SIGTERM);
    uv_signal_start(&app.sig_int, on_signal, SIGINT);
    uv_signal_start(&app.sig_hup, on_signal, SIGHUP);
    uv_timer_init(app.loop, &app.purge);
    app.purge.data = &app;
    uv_timer_start(&app.purge, on_purge, (uint64_t)app.cfg->store_purge_interval * 1000,
                   (uint64_t)app.cfg->store_purge_interval * 1000);

    LOG(LOG_INFO, "main",
        "msg=\"ccomet ready\" version=%s cometql=%s:%d ws=%s:%d cometql_tls=%s wss=%s store=%s "
        "synchronous=%s",
        CCOMET_VERSION, app.cfg->cometql_ip, app.cfg->cometql_port, app.cfg->ws_ip,
        app.cfg->ws_port, *app.cfg->cometql_ssl_cert ? "on" : "off",
        *app.cfg->ws_ssl_cert ? "on" : "off", app.cfg->store_path, app.cfg->store_synchronous);

    uv_run(app.loop, UV_RUN_DEFAULT);

    state_free(app.state);
    tenants_free(&app.tenants);
    if (app.store) store_close(app.store); /* commits anything still pending */
    cometql_server_free(app.cometql);
    ws_server_free(app.ws);
    pubsub_free(app.pubsub);
    uv_loop_close(app.loop);
    LOG(LOG_INFO, "main", "msg=\"stopped\"");
    config_free(app.cfg);
    return 0;
}
