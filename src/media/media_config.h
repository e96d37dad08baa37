/* media_config: ccomet-media's settings, read from an INI file in comet.ini's format with the
 * shared table engine (src/core/config.c). Sections: [sip] (SIP over WebSocket), [directory]
 * (mod_xml_curl-style user lookups, or a static file), [dialplan], [conference] (node limits),
 * [profile.video] / [profile.audio] / [profile.default], [media] (ICE), [recording] (files of a
 * room's mix), [esl] (Event Socket), [log]. */
#ifndef CC_MEDIA_CONFIG_H
#define CC_MEDIA_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/log.h"
#include "media/conference.h"

#define MEDIA_PROFILES 3 /* video, audio, default */

struct media_config {
    char *path;
    /* [sip] */
    char *sip_ip;
    int sip_ws_port, sip_wss_port; /* wss only with a certificate */
    char *sip_ssl_cert, *sip_ssl_key;
    char *sip_domain; /* the domain users register to, and the digest realm */
    int64_t sip_max_expires, sip_min_expires;
    char *sip_user_agent;
    int64_t sip_max_message; /* bytes of one SIP message */
    char *sip_call_secret;   /* ccomet's [sip] call_secret: INVITEs need its X-Comet-Call-Token */
    int64_t sip_max_auth_failures;      /* failed digests per address and window, then 503 */
    int64_t sip_auth_failure_window;    /* seconds */
    int64_t sip_handshake_timeout;      /* seconds from connect to the WebSocket upgrade */
    int64_t sip_max_connections;        /* TCP connections on the ws and wss ports at once */
    int64_t sip_max_connections_per_ip; /* of them from one address */
    /* [directory] */
    char *dir_url; /* mod_xml_curl gateway-url, e.g. http://127.0.0.1:8082/directory */
    char *dir_user, *dir_password; /* HTTP Basic credentials for it */
    char *dir_file;                /* a static directory (FreeSWITCH XML) instead or as fallback */
    int64_t dir_cache_ttl;         /* seconds an answer is reused */
    int64_t dir_timeout_ms;
    char *dir_method;      /* "post" (mod_xml_curl's default) or "get" (CppComet's gateway) */
    int64_t dir_cache_max; /* answers kept at most */
    /* [dialplan] */
    char *dialplan_pattern;     /* POSIX ERE with two groups: room and profile */
    char *dialplan_conference;  /* the conference name: $1, $2 and ${domain} substituted */
    bool dialplan_tenant_check; /* "<dev>*<room>..." only for users of tenant <dev> */
    /* [conference] */
    int64_t max_rooms, max_members_total;
    int64_t max_rooms_per_tenant, max_members_per_tenant, max_calls_per_user; /* 0: no quota */
    /* [profile.*] */
    struct {
        bool video;
        int64_t width, height, fps, video_kbps, audio_kbps, max_members;
        char *layout;
    } profile[MEDIA_PROFILES];
    /* [media] */
    char *ice_ip; /* the address ICE candidates use */
    int64_t rtp_min_port, rtp_max_port;
    int64_t jitter_ms;      /* webrtcbin's jitterbuffer latency (reordering/loss budget) */
    int64_t mix_latency_ms; /* how long compositor/audiomixer wait for a late input */
    /* [recording] */
    char *rec_dir;              /* Event Socket paths are relative to it */
    int64_t rec_max_recordings; /* on the node at once */
    int64_t rec_max_duration;   /* seconds a file records at most (pauses not counted); 0: none */
    int64_t rec_min_free_mb;    /* disk space floor (MiB): no start below it, running ones stop */
    /* [esl] */
    char *esl_ip;
    int esl_port;
    char *esl_password;
    int64_t esl_max_queue;                  /* events queued per listener before it is dropped */
    int64_t esl_max_connections;            /* Event Socket connections at once */
    int64_t esl_max_unauthenticated_per_ip; /* of them from one address, not yet past auth */
    int64_t esl_auth_timeout;               /* seconds from connect to a successful auth */
    bool esl_allow_default_password; /* ClueCon on a non-loopback [esl] ip (closed networks) */
    /* [log] */
    enum log_level log_level;
};

/* NULL with err on an invalid value. (transfer full) */
struct media_config *media_config_load(const char *path, char *err, size_t errlen);
void media_config_free(struct media_config *c);
/* The profile named `name` ("video", "audio", "default"), as the conference module wants it;
 * NULL for an unknown name. The strings point into c. */
bool media_config_profile(const struct media_config *c, const char *name, struct conf_profile *out);

#endif
