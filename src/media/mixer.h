/* mixer: ccomet-media's GStreamer engine behind struct conf_media_ops. One pipeline per room:
 * every member sends one WebRTC audio+video stream into its own webrtcbin; the room composes one
 * video canvas (compositor -> one VP8 encode -> tee -> one payloader per member) and one
 * "mix-minus" audio per member (everyone but themself). It owns the pipeline and everything in
 * it; it knows nothing of SIP. All calls come from the main context and all reports
 * (conf_report_talking/failed, the done callback of member_add) go back on it: GStreamer's
 * streaming threads only post work there, they never change state, relink or report. */
#ifndef CC_MIXER_H
#define CC_MIXER_H

#include <gst/gst.h>

#include "media/conference.h"

struct mixer_options {
    const char *local_ip; /* the one address ICE gathers on; (nullable) default "127.0.0.1" */
    int min_port;         /* UDP range for ICE; 0 = any */
    int max_port;
    int vp8_cpu_used;   /* vp8enc cpu-used (speed, 0..16); 0 = default 8 */
    int jitter_ms;      /* webrtcbin's jitterbuffer latency; 0 = default (MIXER_JITTER_MS) */
    int mix_latency_ms; /* compositor/audiomixer latency; 0 = default (MIXER_MIX_LATENCY_MS) */
};
#define MIXER_JITTER_MS      50
#define MIXER_MIX_LATENCY_MS 20

/* Copied; call before the first room_new. Safe to call again (later rooms use the new values). */
void mixer_set_options(const struct mixer_options *o);

/* (transfer none) the GStreamer engine; gst_init must have been called. */
const struct conf_media_ops *mixer_ops(void);

/* member_add: done() is called exactly once, never from inside member_add, unless member_remove
 * (or room_free) comes first: a member removed before its answer gets no done() (the caller
 * cancelled it). On an error the mixer has already dropped the member; a member_remove after it
 * is a no-op. The answer's video m-line is a=inactive when the member has no video (audio
 * profile, or no VP8 in the offer); conf_member_info()->video is the registry's to set (from
 * whether the answer's video m-line is sendrecv): this module only reads the info.
 * The errors done() gets: the code is the SIP status to answer with. */
#define MIXER_ERROR (mixer_error_quark())
GQuark mixer_error_quark(void);
enum {
    MIXER_ERROR_NOT_ACCEPTABLE = 488, /* no Opus in the offer, unparsable SDP */
    MIXER_ERROR_MEDIA = 500,          /* webrtcbin failed to answer, answer not sendrecv */
};

/* Taps: what a room's consumers other than its members (recorder.c) take from the room: the
 * canvas's existing VP8 encode (no second video encode; a room of two leaves its bridge and
 * mixes while a tap is open) and one Opus encode of the whole room's audio (everyone, not
 * mix-minus), built when the first tap opens and gone with the last. The callbacks run on
 * streaming threads with one encoded buffer each (its segment and caps in the sample): they must
 * not block and must not call back into the mixer. */
struct mixer_tap_ops {
    void (*video)(void *ud, GstSample *sample); /* (transfer none) VP8 frames */
    void (*audio)(void *ud, GstSample *sample); /* (transfer none) Opus packets, 48 kHz */
};
struct mixer_tap;

/* Main context. (transfer full) close it with mixer_tap_close before the room is freed. */
struct mixer_tap *mixer_tap_open(void *media, const struct mixer_tap_ops *ops, void *ud);
/* Main context: once it returns no callback of the tap runs any more. */
void mixer_tap_close(void *media, struct mixer_tap *t);
/* The room has a canvas (a video profile): taps get video. */
bool mixer_has_video(void *media);
/* Asks the shared encoder for a keyframe (a tap's consumer starts or resumes a file). */
void mixer_request_keyframe(void *media);
/* The room pipeline's running time now: the clock the samples' running times are on. */
GstClockTime mixer_running_time(void *media);

#endif
