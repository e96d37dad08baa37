/* main: ccomet-media's process: command line, settings, the GLib main loop, the conference
 * registry, and the services on it (SIP over WebSocket, the Event Socket, recordings).
 * SIGTERM/SIGINT stop it: calls are hung up, recordings' files finished and rooms closed. Holds
 * no protocol or media logic. */
#include "core/cli.h"
#include "core/log.h"
#include "media/conference.h"
#include "media/esl_server.h"
#include "media/media_config.h"
#include "media/mixer.h"
#include "media/recorder.h"
#include "media/sip_server.h"

#include <glib-unix.h>
#include <glib.h>
#include <gst/gst.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CCOMET_MEDIA_VERSION "0.1.0"

struct media_app {
    GMainLoop *loop;
    struct media_config *cfg;
    struct conf_registry *registry;
    struct esl_server *esl;
    struct sip_server *sip;
    struct recorder *recorder;
};

static gboolean on_stop_signal(gpointer data)
{
    struct media_app *app = data;
    LOG(LOG_INFO, "main", "msg=\"shutting down\"");
    g_main_loop_quit(app->loop);
    return G_SOURCE_REMOVE;
}

/* The Event Socket's revocation commands, on the SIP server (security audit L9). */
_Static_assert((int)ESL_REVOKE_CACHE == (int)SIP_REVOKE_CACHE &&
                   (int)ESL_REVOKE_REGISTRATIONS == (int)SIP_REVOKE_REGISTRATIONS &&
                   (int)ESL_REVOKE_CALLS == (int)SIP_REVOKE_CALLS,
               "the Event Socket's revocation mask is the SIP server's");
static unsigned revoke_user(void *ctx, const char *user, const char *domain, unsigned what)
{
    return sip_server_revoke_user(ctx, user, domain, what);
}

int main(int argc, char **argv)
{
    struct cli cli;
    int rc = cli_parse(argc, argv, "ccomet-media", CCOMET_MEDIA_VERSION, "ccomet-media.ini", &cli);
    if (rc >= 0) return rc;
    const char *conf = cli.conf;
    bool check = cli.check;
    char err[512];
    struct media_app app;
    memset(&app, 0, sizeof app);
    app.cfg = media_config_load(conf, err, sizeof err);
    if (!app.cfg) {
        fprintf(stderr, "ccomet-media: configuration error: %s\n", err);
        return 1;
    }
    log_set_level(app.cfg->log_level);
    if (check) {
        printf("ccomet-media: configuration %s is valid\n", conf ? conf : "(defaults)");
        media_config_free(app.cfg);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    gst_init(NULL, NULL);
    struct mixer_options mo = {.local_ip = app.cfg->ice_ip,
                               .min_port = (int)app.cfg->rtp_min_port,
                               .max_port = (int)app.cfg->rtp_max_port,
                               .jitter_ms = (int)app.cfg->jitter_ms,
                               .mix_latency_ms = (int)app.cfg->mix_latency_ms};
    mixer_set_options(&mo);
    app.loop = g_main_loop_new(NULL, FALSE);
    struct conf_limits limits = {(int)app.cfg->max_rooms, (int)app.cfg->max_members_total,
                                 (int)app.cfg->max_rooms_per_tenant,
                                 (int)app.cfg->max_members_per_tenant,
                                 (int)app.cfg->max_calls_per_user};
    app.registry = conf_registry_new(mixer_ops(), &limits);
    struct recorder_config rcfg = {app.cfg->rec_dir, (int)app.cfg->rec_max_recordings,
                                   app.cfg->rec_max_duration, app.cfg->rec_min_free_mb};
    const char *why = NULL;
    app.recorder = recorder_new(app.registry, &rcfg, &why);
    if (!app.recorder) {
        fprintf(stderr, "ccomet-media: [recording] dir = %s: %s\n", app.cfg->rec_dir, why);
        conf_registry_free(app.registry);
        g_main_loop_unref(app.loop);
        media_config_free(app.cfg);
        return 1;
    }
    GError *error = NULL;
    app.esl = esl_server_start(app.cfg, app.registry, &error);
    if (!app.esl) {
        fprintf(stderr, "ccomet-media: %s\n", error->message);
        g_error_free(error);
        recorder_free(app.recorder);
        conf_registry_free(app.registry);
        g_main_loop_unref(app.loop);
        media_config_free(app.cfg);
        return 1;
    }
    esl_server_set_version(app.esl, CCOMET_MEDIA_VERSION);
    esl_server_set_recorder(app.esl, app.recorder);
    app.sip = sip_server_start(app.cfg, app.registry, &error);
    if (!app.sip) {
        fprintf(stderr, "ccomet-media: %s\n", error->message);
        g_error_free(error);
        esl_server_stop(app.esl);
        recorder_free(app.recorder);
        conf_registry_free(app.registry);
        g_main_loop_unref(app.loop);
        media_config_free(app.cfg);
        return 1;
    }
    esl_server_set_revoke(app.esl, revoke_user, app.sip);
    g_unix_signal_add(SIGTERM, on_stop_signal, &app);
    g_unix_signal_add(SIGINT, on_stop_signal, &app);
    LOG(LOG_INFO, "main", "msg=\"ccomet-media ready\" version=%s", CCOMET_MEDIA_VERSION);
    g_main_loop_run(app.loop);
    esl_server_set_revoke(app.esl, NULL, NULL);
    sip_server_stop(app.sip);
    recorder_free(app.recorder); /* the files finished while the rooms' media still exist */
    esl_server_set_recorder(app.esl, NULL);
    esl_server_stop(app.esl);
    conf_registry_free(app.registry);
    g_main_loop_unref(app.loop);
    media_config_free(app.cfg);
    gst_deinit();
    LOG(LOG_INFO, "main", "msg=\"stopped\"");
    return 0;
}
