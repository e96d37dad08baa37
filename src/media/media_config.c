/* media_config: ccomet-media's settings table; see media_config.h. */
#include "media/media_config.h"
#include "proto/sip_msg.h"
#include "core/alloc.h"
#include "core/config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define F(field)    offsetof(struct media_config, field)
#define P(i, field) offsetof(struct media_config, profile[i].field)
#define PROFILE(i, sec, has_video, w, h, kbps, lay)                                                \
    {sec, "video", CFG_BOOL, P(i, video), has_video, 0, 0, false, NULL},                           \
        {sec, "width", CFG_INT, P(i, width), w, 16, 3840, false, NULL},                            \
        {sec, "height", CFG_INT, P(i, height), h, 16, 2160, false, NULL},                          \
        {sec, "fps", CFG_INT, P(i, fps), "30", 1, 60, false, NULL},                                \
        {sec, "video_kbps", CFG_INT, P(i, video_kbps), kbps, 50, 20000, false, NULL},              \
        {sec, "audio_kbps", CFG_INT, P(i, audio_kbps), "48", 6, 510, false, NULL},                 \
        {sec, "max_members", CFG_INT, P(i, max_members), "16", 1, 256, false, NULL},               \
    {                                                                                              \
        sec, "layout", CFG_ENUM, P(i, layout), lay, 0, 0, false, "grid|floor"                      \
    }

static const struct config_opt media_opts[] = {
    {"sip", "ip", CFG_STR, F(sip_ip), "127.0.0.1", 0, 0, false, NULL},
    {"sip", "ws_port", CFG_PORT, F(sip_ws_port), "5066", 1, 65535, false, NULL},
    {"sip", "wss_port", CFG_PORT, F(sip_wss_port), "7443", 1, 65535, false, NULL},
    {"sip", "ssl_cert", CFG_STR, F(sip_ssl_cert), "", 0, 0, false, NULL},
    {"sip", "ssl_key", CFG_STR, F(sip_ssl_key), "", 0, 0, false, NULL},
    {"sip", "domain", CFG_STR, F(sip_domain), "FSdefaultDomain", 0, 0, false, NULL},
    {"sip", "max_expires", CFG_INT, F(sip_max_expires), "3600", 60, 86400, false, NULL},
    {"sip", "min_expires", CFG_INT, F(sip_min_expires), "60", 1, 3600, false, NULL},
    {"sip", "user_agent", CFG_STR, F(sip_user_agent), "ccomet-media", 0, 0, false, NULL},
    {"sip", "max_message", CFG_SIZE, F(sip_max_message), "64K", 1024, 1024 * 1024, false, NULL},
    {"sip", "call_secret", CFG_STR, F(sip_call_secret), "", 0, 0, false, NULL},
    {"sip", "max_auth_failures", CFG_INT, F(sip_max_auth_failures), "20", 1, 100000, false, NULL},
    {"sip", "auth_failure_window", CFG_INT, F(sip_auth_failure_window), "60", 1, 86400, false,
     NULL},
    {"sip", "handshake_timeout", CFG_INT, F(sip_handshake_timeout), "10", 1, 300, false, NULL},
    {"sip", "max_connections", CFG_INT, F(sip_max_connections), "4096", 1, 19000, false, NULL},
    {"sip", "max_connections_per_ip", CFG_INT, F(sip_max_connections_per_ip), "256", 1, 19000,
     false, NULL},

    {"directory", "url", CFG_STR, F(dir_url), "", 0, 0, false, NULL},
    {"directory", "user", CFG_STR, F(dir_user), "", 0, 0, false, NULL},
    {"directory", "password", CFG_STR, F(dir_password), "", 0, 0, false, NULL},
    {"directory", "file", CFG_STR, F(dir_file), "", 0, 0, false, NULL},
    {"directory", "cache_ttl", CFG_INT, F(dir_cache_ttl), "30", 0, 86400, false, NULL},
    {"directory", "timeout_ms", CFG_INT, F(dir_timeout_ms), "3000", 100, 60000, false, NULL},
    {"directory", "method", CFG_ENUM, F(dir_method), "post", 0, 0, false, "post|get"},
    {"directory", "cache_max", CFG_INT, F(dir_cache_max), "10000", 1, 10000000, false, NULL},

    {"dialplan", "pattern", CFG_STR, F(dialplan_pattern), SIP_DIALPLAN_DEFAULT, 0, 0, false, NULL},
    {"dialplan", "tenant_check", CFG_BOOL, F(dialplan_tenant_check), "true", 0, 0, false, NULL},
    {"dialplan", "conference", CFG_STR, F(dialplan_conference), "$1-${domain}", 0, 0, false, NULL},

    {"conference", "max_rooms", CFG_INT, F(max_rooms), "16", 1, 100000, false, NULL},
    {"conference", "max_members", CFG_INT, F(max_members_total), "64", 1, 1000000, false, NULL},
    {"conference", "max_rooms_per_tenant", CFG_INT, F(max_rooms_per_tenant), "0", 0, 100000, false,
     NULL},
    {"conference", "max_members_per_tenant", CFG_INT, F(max_members_per_tenant), "0", 0, 1000000,
     false, NULL},
    {"conference", "max_calls_per_user", CFG_INT, F(max_calls_per_user), "4", 0, 1000, false, NULL},

    PROFILE(0, "profile.video", "true", "640", "480", "1000", "grid"),
    PROFILE(1, "profile.audio", "false", "640", "480", "1000", "grid"),
    PROFILE(2, "profile.default", "true", "640", "480", "1000", "grid"),

    {"media", "ice_ip", CFG_STR, F(ice_ip), "127.0.0.1", 0, 0, false, NULL},
    {"media", "rtp_min_port", CFG_INT, F(rtp_min_port), "0", 0, 65535, false, NULL},
    {"media", "rtp_max_port", CFG_INT, F(rtp_max_port), "0", 0, 65535, false, NULL},
    {"media", "jitter_ms", CFG_INT, F(jitter_ms), "50", 1, 2000, false, NULL},
    {"media", "mix_latency_ms", CFG_INT, F(mix_latency_ms), "20", 1, 1000, false, NULL},

    {"recording", "dir", CFG_STR, F(rec_dir), "var/recordings", 0, 0, false, NULL},
    {"recording", "max_recordings", CFG_INT, F(rec_max_recordings), "4", 1, 1000, false, NULL},
    {"recording", "max_duration", CFG_INT, F(rec_max_duration), "14400", 0, 604800, false, NULL},
    {"recording", "min_free_mb", CFG_INT, F(rec_min_free_mb), "256", 0, 10000000, false, NULL},

    {"esl", "ip", CFG_STR, F(esl_ip), "127.0.0.1", 0, 0, false, NULL},
    {"esl", "port", CFG_PORT, F(esl_port), "8021", 1, 65535, false, NULL},
    {"esl", "password", CFG_STR, F(esl_password), "", 0, 0, false, NULL},
    {"esl", "max_queue", CFG_INT, F(esl_max_queue), "100000", 100, 10000000, false, NULL},
    {"esl", "max_connections", CFG_INT, F(esl_max_connections), "1024", 1, 19000, false, NULL},
    {"esl", "max_unauthenticated_per_ip", CFG_INT, F(esl_max_unauthenticated_per_ip), "32", 1,
     19000, false, NULL},
    {"esl", "auth_timeout", CFG_INT, F(esl_auth_timeout), "10", 1, 300, false, NULL},
    {"esl", "allow_default_password", CFG_BOOL, F(esl_allow_default_password), "false", 0, 0, false,
     NULL},

    {"log", "level", CFG_LEVEL, F(log_level), "info", 0, 0, false, NULL},
};
#define N_OPTS (sizeof media_opts / sizeof media_opts[0])

static const char *const profile_names[MEDIA_PROFILES] = {"video", "audio", "default"};

struct media_config *media_config_load(const char *path, char *err, size_t errlen)
{
    struct media_config *c = xcalloc(1, sizeof *c);
    config_table_defaults(c, media_opts, N_OPTS);
    if (path) {
        c->path = xstrdup(path);
        if (config_table_load(c, media_opts, N_OPTS, path, NULL, err, errlen) != 0) {
            media_config_free(c);
            return NULL;
        }
    }
    if (!*c->esl_password) {
        LOG(LOG_WARN, "config",
            "msg=\"[esl] password is not set; using FreeSWITCH's default ClueCon\"");
        xfree(c->esl_password);
        c->esl_password = xstrdup("ClueCon");
    }
    /* security audit M3: the Event Socket kicks members and lists every tenant's rooms; with
     * FreeSWITCH's public default password it stays on loopback */
    bool loopback = strncmp(c->esl_ip, "127.", 4) == 0 || strcmp(c->esl_ip, "::1") == 0;
    if (!loopback && strcmp(c->esl_password, "ClueCon") == 0 && !c->esl_allow_default_password) {
        snprintf(err, errlen,
                 "[esl] password is FreeSWITCH's default ClueCon while [esl] ip = %s is reachable "
                 "from other hosts: anyone could kick members and read every room; set your own "
                 "[esl] password (and ccomet's [freeswitch] Pwd), or [esl] "
                 "allow_default_password = yes on a closed network",
                 c->esl_ip);
        media_config_free(c);
        return NULL;
    }

    if (!!*c->sip_ssl_cert != !!*c->sip_ssl_key) {
        snprintf(err, errlen, "[sip] ssl_cert and ssl_key must be given together");
        media_config_free(c);
        return NULL;
    }
    if (c->rtp_min_port > c->rtp_max_port) {
        snprintf(err, errlen, "[media] rtp_min_port must not exceed rtp_max_port");
        media_config_free(c);
        return NULL;
    }
    return c;
}

void media_config_free(struct media_config *c)
{
    if (!c) return;
    config_table_free(c, media_opts, N_OPTS);
    xfree(c->path);
    xfree(c);
}

bool media_config_profile(const struct media_config *c, const char *name, struct conf_profile *out)
{
    for (int i = 0; i < MEDIA_PROFILES; i++) {
        if (strcmp(name, profile_names[i]) != 0) continue;
        out->name = (char *)profile_names[i];
        out->video = c->profile[i].video;
        out->width = (int)c->profile[i].width;
        out->height = (int)c->profile[i].height;
        out->fps = (int)c->profile[i].fps;
        out->video_kbps = (int)c->profile[i].video_kbps;
        out->audio_kbps = (int)c->profile[i].audio_kbps;
        out->max_members = (int)c->profile[i].max_members;
        out->layout = c->profile[i].layout;
        return true;
    }
    return false;
}
