/* recorder: recordings of a room's mix (see recorder.h). One recording:
 *
 *   room pipeline (mixer.c):  vtee -> tap appsink ─┐        full mix -> opusenc -> tap appsink ─┐
 *                                                  │ on_video (streaming thread)                 │
 * on_audio recording pipeline:   appsrc(VP8) ─────────────┴→ webmmux(clusters <= 1 s) ←
 * appsrc(Opus) ←─┘ → filesink(unbuffered)
 *
 * The taps' callbacks map each buffer's running time through the file's timeline (origin, pause
 * windows) and push a shallow copy with the new timestamps; nothing is decoded or encoded here
 * (a gap in the audio is filled with Opus frames of silence, written as constant bytes).
 * Stopping closes the tap (no callback after that), sends end-of-stream into both sources and
 * waits on the recording's own bus for the muxer to finish the file (duration, cues) before the
 * closing stop-recording event. */
#include "media/recorder.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "core/alloc.h"
#include "core/log.h"
#include "media/mixer.h"

#define SUB             "recorder"
#define PATH_MAX_BYTES  1024
#define CHECK_MS        250
#define CLOSE_WAIT_S    3
#define SAMPLERATE      48000
#define CLUSTER_NS      ((gint64)GST_SECOND)
#define SOURCE_MAX_BYTE (8u * 1024 * 1024) /* a slow disk drops the newest, never the room */
#define DRAIN_MS        1000
#define HELD_AUDIO_MAX  150 /* 3 s of 20 ms packets waiting for a keyframe */
#define SILENCE_NS      (20 * GST_MSECOND)

/* ---- the pure parts ----------------------------------------------------------------------- */

bool recorder_resolve_path(const char *dir, const char *path, char *file, size_t file_len,
                           const char **why)
{
    size_t n = strlen(path), dn = strlen(dir);
    if (n == 0) {
        *why = "no path given";
        return false;
    }
    if (n > PATH_MAX_BYTES) {
        *why = "path too long";
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c < 0x20 || c == 0x7f) {
            *why = "control character in path";
            return false;
        }
    }
    const char *rel = path;
    if (path[0] == '/') {
        if (strncmp(path, dir, dn) != 0 || path[dn] != '/') {
            *why = "absolute path outside the recordings directory";
            return false;
        }
        rel = path + dn + 1;
    }
    /* every component: not empty, not "." or ".." */
    for (const char *p = rel;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0) {
            *why = "empty path component";
            return false;
        }
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
            *why = "\".\" or \"..\" in path";
            return false;
        }
        if (len > 255) {
            *why = "path component too long";
            return false;
        }
        if (!slash) break;
        p = slash + 1;
    }
    size_t rn = strlen(rel);
    if (rn <= 5 || g_ascii_strcasecmp(rel + rn - 5, ".webm") != 0) {
        *why = rn > 4 && g_ascii_strcasecmp(rel + rn - 4, ".mp4") == 0
                   ? "MP4 recording is not available yet (use .webm)"
                   : "unsupported file type (use .webm)";
        return false;
    }
    if (dn + 1 + rn + 1 > file_len) {
        *why = "path too long";
        return false;
    }
    snprintf(file, file_len, "%s/%s", dir, rel);
    return true;
}

void rec_timeline_start(struct rec_timeline *t, GstClockTime rt)
{
    memset(t, 0, sizeof *t);
    t->started = true;
    t->origin = rt;
}

void rec_timeline_pause(struct rec_timeline *t, GstClockTime rt)
{
    if (t->paused) return;
    t->paused = true;
    t->paused_at = rt;
}

void rec_timeline_resume(struct rec_timeline *t, GstClockTime rt)
{
    if (!t->paused) return;
    t->paused = false;
    if (!t->started) return; /* paused before the first buffer: nothing to cut */
    GstClockTime from = t->paused_at > t->origin ? t->paused_at : t->origin;
    if (rt < from) rt = from;
    t->cut_before = t->cut;
    t->cut += rt - from;
    t->win_from = from;
    t->win_to = rt;
}

bool rec_timeline_map(const struct rec_timeline *t, GstClockTime rt, GstClockTime *out)
{
    if (!t->started || !GST_CLOCK_TIME_IS_VALID(rt) || rt < t->origin) return false;
    if (t->paused && rt >= t->paused_at) return false;
    GstClockTime cut = t->cut;
    if (t->win_to) {
        if (rt >= t->win_from && rt < t->win_to) return false;
        if (rt < t->win_from) cut = t->cut_before;
    }
    *out = rt - t->origin - cut;
    return true;
}

GstClockTime rec_timeline_length(const struct rec_timeline *t, GstClockTime now)
{
    if (!t->started) return 0;
    GstClockTime end = t->paused && t->paused_at < now ? t->paused_at : now;
    if (end < t->origin + t->cut) return 0;
    return end - t->origin - t->cut;
}

/* ---- recordings --------------------------------------------------------------------------- */

struct recording {
    struct recorder *rc;
    char *path;             /* as the command gave it: what stop/pause match */
    char *file;             /* absolute */
    struct conf_room *room; /* NULL once the room is gone */
    void *media;            /* the room's, while the tap is open */
    struct mixer_tap *tap;  /* (owned) */
    char room_name[128], room_uuid[37], profile_name[32];
    bool video;              /* the room has a canvas */
    GstElement *pipeline;    /* (owned) */
    GstElement *vsrc, *asrc; /* (not owned) vsrc NULL without video */
    guint bus_watch;
    bool stopping, closed;
    char *stop_error; /* (nullable) why it stopped by itself */
    guint close_timer, drain_timer;

    GMutex lock; /* what the streaming threads share with the main context: */
    struct rec_timeline tl;
    bool resuming;                    /* resumed; the video waits for a keyframe to go on */
    GstClockTime start_rt, resume_rt; /* the commands' running times */
    GstClockTime stop_rt;             /* stop: what comes from then on ends the streams */
    bool video_done, audio_done;      /* a buffer from stop_rt on seen */
    GQueue held_audio;   /* GstSample *: audio waiting for that keyframe (or the first) */
    bool ended;          /* no more pushes (end-of-stream sent) */
    guint64 samples_out; /* audio samples pushed, at SAMPLERATE */
    /* for the closing log line: buffers in and out, the first running times */
    guint64 frames_in, keyframes_in, frames_out, audio_in, audio_out;
    guint64 silence_frames; /* 20 ms of silence each, where the mix's audio had a gap */
    GstClockTime first_video_rt, first_audio_rt;
    guint64 frames_at_check; /* frames_in at the last check_limits */
    GstClockTime last_vpts, last_apts;
    bool vcaps_set, acaps_set;
    bool mono; /* the Opus stream's channels (its caps), for the silence frames */
};

struct recorder {
    struct conf_registry *reg;
    char *dir;
    int max_recordings;
    int64_t max_duration_s, min_free_mb;
    GList *recordings; /* struct recording *, newest first */
    guint listener;
    guint check_timer;
};

static const struct mixer_tap_ops tap_ops; /* below */

static int room_size(const struct recording *rec)
{
    return rec->room ? conf_room_count(rec->room) : 0;
}

static bool others_in_room(const struct recorder *rc, const struct recording *rec)
{
    for (GList *l = rc->recordings; l; l = l->next) {
        const struct recording *o = l->data;
        if (o != rec && !o->stopping && o->room && o->room == rec->room) return true;
    }
    return false;
}

static void emit(struct recorder *rc, enum conf_event_kind kind, struct recording *rec,
                 const char *path, const char *error, bool closed)
{
    struct conf_recording_event ev = {
        .room_name = rec->room_name,
        .room_uuid = rec->room_uuid,
        .profile_name = rec->profile_name,
        .room_size = room_size(rec),
        .path = path,
        .error = error,
        .other_recordings = others_in_room(rc, rec),
        .closed = closed,
        .samplerate = SAMPLERATE,
    };
    if (closed) {
        g_mutex_lock(&rec->lock);
        ev.samples_out = rec->samples_out;
        g_mutex_unlock(&rec->lock);
        ev.ms_elapsed = ev.samples_out / (SAMPLERATE / 1000);
    }
    conf_emit_recording(rc->reg, kind, &ev);
}

/* A start refused before any recording existed: the event names the room as it is. */
static void emit_start_error(struct recorder *rc, struct conf_room *room, const char *path,
                             const char *error)
{
    struct conf_recording_event ev = {
        .room_name = conf_room_name(room),
        .room_uuid = conf_room_uuid(room),
        .profile_name = conf_room_profile(room)->name,
        .room_size = conf_room_count(room),
        .path = path,
        .error = error,
        .samplerate = SAMPLERATE,
    };
    conf_emit_recording(rc->reg, CONF_EV_START_RECORDING, &ev);
}

static GstClockTime sample_running_time(GstSample *sample)
{
    GstBuffer *in = gst_sample_get_buffer(sample);
    const GstSegment *seg = gst_sample_get_segment(sample);
    if (!in || !seg || !GST_CLOCK_TIME_IS_VALID(GST_BUFFER_PTS(in))) return GST_CLOCK_TIME_NONE;
    return gst_segment_to_running_time(seg, GST_FORMAT_TIME, GST_BUFFER_PTS(in));
}

/* Streaming thread, rec->lock held: the audio track stays continuous from the file's start.
 * Where the mix's Opus comes later than the file's timeline (on a starved machine the taps' mix
 * can start after the command, or the tap's leaky queue drop), 20 ms Opus frames of silence
 * fill the gap, so that a player keeps the pictures and the sound together and Samples-Out is
 * the file's audio length, as FreeSWITCH's (which writes silence when no one talks). A gap
 * shorter than one frame is left. */
static void fill_silence_locked(struct recording *rec, GstClockTime upto)
{
    /* TOC: CELT, fullband, 20 ms, one frame, stereo bit 0x04; the frame decodes to silence */
    const guint8 silence[] = {rec->mono ? 0xF8 : 0xFC, 0xFF, 0xFE};
    while (upto >= rec->last_apts + SILENCE_NS) {
        GstBuffer *b = gst_buffer_new_memdup(silence, sizeof silence);
        GST_BUFFER_PTS(b) = GST_BUFFER_DTS(b) = rec->last_apts;
        GST_BUFFER_DURATION(b) = SILENCE_NS;
        GstFlowReturn ret;
        g_signal_emit_by_name(rec->asrc, "push-buffer", b, &ret);
        gst_buffer_unref(b);
        rec->last_apts += SILENCE_NS;
        rec->samples_out += gst_util_uint64_scale(SILENCE_NS, SAMPLERATE, GST_SECOND);
        rec->silence_frames++;
    }
}

/* Streaming thread, rec->lock held: one buffer at running time rt into the file, if the
 * timeline keeps it. */
static void write_locked(struct recording *rec, GstSample *sample, GstClockTime rt, bool video)
{
    GstBuffer *in = gst_sample_get_buffer(sample);
    GstClockTime out_pts;
    if (!rec_timeline_map(&rec->tl, rt, &out_pts)) return;
    GstElement *src = video ? rec->vsrc : rec->asrc;
    bool *caps_set = video ? &rec->vcaps_set : &rec->acaps_set;
    if (!*caps_set) {
        GstCaps *caps = gst_sample_get_caps(sample);
        g_object_set(src, "caps", caps, NULL);
        *caps_set = true;
        int channels = 0;
        if (!video && caps && gst_caps_get_size(caps) > 0) {
            gst_structure_get_int(gst_caps_get_structure(caps, 0), "channels", &channels);
            rec->mono = channels == 1;
        }
    }
    if (video) {
        rec->frames_out++;
        if (out_pts < rec->last_vpts) out_pts = rec->last_vpts;
        rec->last_vpts = out_pts;
    } else {
        fill_silence_locked(rec, out_pts);
        if (out_pts < rec->last_apts) out_pts = rec->last_apts;
        GstClockTime d = GST_BUFFER_DURATION(in);
        if (!GST_CLOCK_TIME_IS_VALID(d)) d = SILENCE_NS;
        rec->last_apts = out_pts + d;
        rec->samples_out += gst_util_uint64_scale(d, SAMPLERATE, GST_SECOND);
        rec->audio_out++;
    }
    /* pushed under the lock, so that stop's end-of-stream comes after the last buffer; appsrc
     * never blocks (block=false, bounded, leaky) */
    GstBuffer *out = gst_buffer_copy(in); /* the memory is shared */
    GST_BUFFER_PTS(out) = out_pts;
    GST_BUFFER_DTS(out) = out_pts;
    GstFlowReturn ret;
    g_signal_emit_by_name(src, "push-buffer", out, &ret);
    gst_buffer_unref(out);
}

/* Any thread, lock held: no more buffers; the muxer finishes the file. */
static void end_streams_locked(struct recording *rec)
{
    if (rec->ended) return;
    rec->ended = true;
    GstFlowReturn ret;
    if (rec->vsrc) g_signal_emit_by_name(rec->vsrc, "end-of-stream", &ret);
    g_signal_emit_by_name(rec->asrc, "end-of-stream", &ret);
}

/* Streaming thread, lock held: the audio held while the video looked for its keyframe. */
static void flush_held_locked(struct recording *rec)
{
    GstSample *s;
    while ((s = g_queue_pop_head(&rec->held_audio))) {
        write_locked(rec, s, sample_running_time(s), false);
        gst_sample_unref(s);
    }
}

/* Streaming thread: one tap buffer into the file, on the file's timeline. With a canvas the
 * file starts, and goes on after a pause, on a keyframe: the audio that arrives meanwhile is
 * held (the canvas's encode comes later than the mix's), then written from the keyframe's
 * running time on, so that both streams start together. */
static void push(struct recording *rec, GstSample *sample, bool video)
{
    GstBuffer *in = gst_sample_get_buffer(sample);
    GstClockTime rt = sample_running_time(sample);
    if (!in || !GST_CLOCK_TIME_IS_VALID(rt)) return;
    bool key = !GST_BUFFER_FLAG_IS_SET(in, GST_BUFFER_FLAG_DELTA_UNIT);
    g_mutex_lock(&rec->lock);
    if (rec->ended) goto out;
    if (video) {
        if (!rec->frames_in++) rec->first_video_rt = rt;
        rec->keyframes_in += key;
    } else if (!rec->audio_in++) {
        rec->first_audio_rt = rt;
    }
    if (GST_CLOCK_TIME_IS_VALID(rec->stop_rt) && rt >= rec->stop_rt) {
        /* everything up to the stop command is in the file */
        if (video) rec->video_done = true;
        if (!video) rec->audio_done = true;
        if ((rec->video_done || !rec->video) && rec->audio_done) end_streams_locked(rec);
        goto out;
    }
    if (!rec->video) {
        if (!rec->tl.started && !rec->tl.paused)
            rec_timeline_start(&rec->tl,
                               GST_CLOCK_TIME_IS_VALID(rec->start_rt) ? rec->start_rt : rt);
        write_locked(rec, sample, rt, false);
        goto out;
    }
    bool waiting = !rec->tl.started || rec->resuming;
    if (waiting && !video) {
        g_queue_push_tail(&rec->held_audio, gst_sample_ref(sample));
        while (rec->held_audio.length > HELD_AUDIO_MAX)
            gst_sample_unref(g_queue_pop_head(&rec->held_audio));
        goto out;
    }
    if (waiting) {
        bool before_pause = rec->tl.started && rt < rec->tl.paused_at;
        if (!key && !before_pause) goto out;
        GstClockTime at = rt;
        if (!rec->tl.started) {
            if (rec->tl.paused) goto out; /* paused before it started: still waiting */
            /* the file starts at the command; a keyframe made just before it (the canvas's
             * encode lags the clock) is its first picture, at 0 */
            GstClockTime origin = GST_CLOCK_TIME_IS_VALID(rec->start_rt) ? rec->start_rt : rt;
            rec_timeline_start(&rec->tl, origin);
            if (at < origin) at = origin;
        } else if (!before_pause) {
            GstClockTime r = GST_CLOCK_TIME_IS_VALID(rec->resume_rt)
                                 ? MAX(rec->resume_rt, rec->tl.paused_at)
                                 : rt;
            rec_timeline_resume(&rec->tl, r);
            rec->resuming = false;
            if (at < r) at = r;
        }
        write_locked(rec, sample, at, true);
        if (!rec->resuming) flush_held_locked(rec);
        goto out;
    }
    write_locked(rec, sample, rt, video);
out:
    g_mutex_unlock(&rec->lock);
}

static void on_video(void *ud, GstSample *sample)
{
    push(ud, sample, true);
}

static void on_audio(void *ud, GstSample *sample)
{
    push(ud, sample, false);
}

static const struct mixer_tap_ops tap_ops = {.video = on_video, .audio = on_audio};

static void recording_free(struct recording *rec)
{
    if (rec->bus_watch) {
        GSource *s = g_main_context_find_source_by_id(NULL, rec->bus_watch);
        if (s) g_source_destroy(s);
    }
    if (rec->close_timer) {
        GSource *s = g_main_context_find_source_by_id(NULL, rec->close_timer);
        if (s) g_source_destroy(s);
    }
    if (rec->drain_timer) {
        GSource *s = g_main_context_find_source_by_id(NULL, rec->drain_timer);
        if (s) g_source_destroy(s);
    }
    if (rec->pipeline) {
        gst_element_set_state(rec->pipeline, GST_STATE_NULL);
        gst_object_unref(rec->pipeline);
    }
    g_queue_clear_full(&rec->held_audio, (GDestroyNotify)gst_sample_unref);
    g_mutex_clear(&rec->lock);
    xfree(rec->stop_error);
    xfree(rec->path);
    xfree(rec->file);
    xfree(rec);
}

static void drain_now(struct recording *rec);

/* Main context: the file is finished (or given up on): the closing event, then it goes. */
static void finish(struct recording *rec, const char *error)
{
    struct recorder *rc = rec->rc;
    if (rec->closed) return;
    rec->closed = true;
    drain_now(rec); /* the tap, if the streams ended by themselves */
    if (rec->pipeline) gst_element_set_state(rec->pipeline, GST_STATE_NULL);
    rc->recordings = g_list_remove(rc->recordings, rec);
    g_mutex_lock(&rec->lock);
    guint64 samples = rec->samples_out, fin = rec->frames_in, kin = rec->keyframes_in,
            fout = rec->frames_out, ain = rec->audio_in, aout = rec->audio_out,
            silent = rec->silence_frames;
    GstClockTime vrt = rec->first_video_rt, art = rec->first_audio_rt, origin = rec->tl.origin;
    g_mutex_unlock(&rec->lock);
    const char *why = error ? error : rec->stop_error;
    LOG(why ? LOG_WARN : LOG_INFO, SUB,
        "room=%s path=\"%s\" msg=\"recording closed\" ms=%" G_GUINT64_FORMAT
        " frames_in=%" G_GUINT64_FORMAT " keyframes_in=%" G_GUINT64_FORMAT
        " frames_out=%" G_GUINT64_FORMAT " audio_in=%" G_GUINT64_FORMAT
        " audio_out=%" G_GUINT64_FORMAT " silence_ms=%" G_GUINT64_FORMAT
        " first_video_ms=%" G_GUINT64_FORMAT " first_audio_ms=%" G_GUINT64_FORMAT
        " origin_ms=%" G_GUINT64_FORMAT "%s%s%s",
        rec->room_name, rec->path, samples / (SAMPLERATE / 1000), fin, kin, fout, ain, aout,
        silent * (SILENCE_NS / GST_MSECOND), vrt / GST_MSECOND, art / GST_MSECOND,
        origin / GST_MSECOND, why ? " error=\"" : "", why ? why : "", why ? "\"" : "");
    emit(rc, CONF_EV_STOP_RECORDING, rec, rec->path, why, true);
    recording_free(rec);
}

static gboolean close_timeout(gpointer data)
{
    struct recording *rec = data;
    rec->close_timer = 0;
    LOG(LOG_WARN, SUB, "path=\"%s\" msg=\"file not finished in time, closing it as it is\"",
        rec->path);
    finish(rec, NULL);
    return G_SOURCE_REMOVE;
}

/* Main context: the tap closed (no callback after this) and the streams ended. */
static void drain_now(struct recording *rec)
{
    if (rec->drain_timer) {
        GSource *s = g_main_context_find_source_by_id(NULL, rec->drain_timer);
        if (s) g_source_destroy(s);
        rec->drain_timer = 0;
    }
    if (rec->tap) {
        mixer_tap_close(rec->media, rec->tap);
        rec->tap = NULL;
    }
    g_mutex_lock(&rec->lock);
    end_streams_locked(rec);
    g_mutex_unlock(&rec->lock);
}

static gboolean drain_timeout(gpointer data)
{
    struct recording *rec = data;
    rec->drain_timer = 0;
    drain_now(rec);
    return G_SOURCE_REMOVE;
}

/* Main context: rec stops. Normally what the room made before now still goes in (the buffers in
 * its encoders; the streams end at the first buffer of each from now on, or after DRAIN_MS);
 * at_once (the room is going, the node stops) closes the tap here. The file is finished when
 * the muxer has seen the end of both streams (its bus says EOS), or after CLOSE_WAIT_S. */
static void stop(struct recording *rec, const char *error, bool at_once)
{
    if (rec->stopping) {
        if (at_once) drain_now(rec);
        return;
    }
    rec->stopping = true;
    if (error && !rec->stop_error) rec->stop_error = xstrdup(error);
    if (!at_once && rec->media) {
        GstClockTime now = mixer_running_time(rec->media);
        g_mutex_lock(&rec->lock);
        rec->stop_rt = now;
        g_mutex_unlock(&rec->lock);
        rec->drain_timer = g_timeout_add(DRAIN_MS, drain_timeout, rec);
    } else {
        drain_now(rec);
    }
    rec->close_timer = g_timeout_add_seconds(CLOSE_WAIT_S, close_timeout, rec);
}

static gboolean on_bus(GstBus *bus, GstMessage *msg, gpointer data)
{
    struct recording *rec = data;
    switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_EOS:
        rec->bus_watch = 0;
        finish(rec, NULL);
        return G_SOURCE_REMOVE;
    case GST_MESSAGE_ERROR: {
        GError *e = NULL;
        gst_message_parse_error(msg, &e, NULL);
        char why[256];
        snprintf(why, sizeof why, "write failed: %s", e ? e->message : "?");
        g_clear_error(&e);
        LOG(LOG_ERROR, SUB, "path=\"%s\" msg=\"recording failed\" error=\"%s\"", rec->path, why);
        rec->bus_watch = 0;
        stop(rec, why, true);
        finish(rec, why);
        return G_SOURCE_REMOVE;
    }
    default: return G_SOURCE_CONTINUE;
    }
}

static GstElement *make_source(GstElement *pipeline)
{
    GstElement *src = gst_element_factory_make("appsrc", NULL);
    if (!src) return NULL;
    g_object_set(src, "is-live", TRUE, "do-timestamp", FALSE, "block", FALSE, "max-bytes",
                 (guint64)SOURCE_MAX_BYTE, NULL);
    gst_util_set_object_arg(G_OBJECT(src), "format", "time");
    gst_util_set_object_arg(G_OBJECT(src), "leaky-type", "downstream");
    gst_bin_add(GST_BIN(pipeline), src);
    return src;
}

/* Main context: the recording's pipeline, playing, its file open. */
static bool build_pipeline(struct recording *rec, const char **why)
{
    GstElement *p = gst_pipeline_new(NULL);
    GstElement *mux = gst_element_factory_make("webmmux", NULL);
    GstElement *sink = gst_element_factory_make("filesink", NULL);
    if (!mux || !sink) {
        if (mux) gst_object_unref(mux);
        if (sink) gst_object_unref(sink);
        gst_object_unref(p);
        *why = "GStreamer's webmmux or filesink is missing";
        return false;
    }
    g_object_set(mux, "max-cluster-duration", CLUSTER_NS, "min-cluster-duration",
                 (gint64)(GST_SECOND / 2), "writing-app", "ccomet-media", NULL);
    g_object_set(sink, "location", rec->file, "sync", FALSE, "async", FALSE, NULL);
    gst_util_set_object_arg(G_OBJECT(sink), "buffer-mode", "unbuffered");
    gst_bin_add_many(GST_BIN(p), mux, sink, NULL);
    rec->pipeline = p;
    rec->vsrc = rec->video ? make_source(p) : NULL;
    rec->asrc = make_source(p);
    bool ok = gst_element_link(mux, sink) && rec->asrc &&
              gst_element_link_pads(rec->asrc, "src", mux, "audio_%u");
    if (rec->video)
        ok = ok && rec->vsrc && gst_element_link_pads(rec->vsrc, "src", mux, "video_%u");
    if (!ok) {
        *why = "cannot link the recording pipeline";
        return false;
    }
    GstBus *bus = gst_pipeline_get_bus(GST_PIPELINE(p));
    rec->bus_watch = gst_bus_add_watch(bus, on_bus, rec);
    gst_object_unref(bus);
    if (gst_element_set_state(p, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
        *why = "File could not be opened for recording";
        return false;
    }
    return true;
}

static struct recording *find(struct recorder *rc, struct conf_room *room, const char *path)
{
    for (GList *l = rc->recordings; l; l = l->next) {
        struct recording *rec = l->data;
        if (!rec->stopping && rec->room == room && strcmp(rec->path, path) == 0) return rec;
    }
    return NULL;
}

static int active(const struct recorder *rc)
{
    int n = 0;
    for (GList *l = rc->recordings; l; l = l->next)
        n += !((struct recording *)l->data)->stopping;
    return n;
}

static bool disk_below_floor(const struct recorder *rc)
{
    if (rc->min_free_mb <= 0) return false;
    struct statvfs vfs;
    if (statvfs(rc->dir, &vfs) != 0) return false;
    uint64_t free_mb = (uint64_t)vfs.f_bavail * vfs.f_frsize / (1024 * 1024);
    return free_mb < (uint64_t)rc->min_free_mb;
}

/* The parent directory made and still inside the recordings directory once symbolic links are
 * followed; the file itself not a symbolic link. */
static bool prepare_file(const struct recorder *rc, const char *file, const char **why)
{
    char *parent = g_path_get_dirname(file);
    bool ok = false;
    char real_dir[PATH_MAX], real_parent[PATH_MAX];
    if (g_mkdir_with_parents(parent, 0755) != 0) {
        *why = "cannot create the file's directory";
    } else if (!realpath(rc->dir, real_dir) || !realpath(parent, real_parent)) {
        *why = "cannot resolve the file's directory";
    } else if (strncmp(real_parent, real_dir, strlen(real_dir)) != 0 ||
               (real_parent[strlen(real_dir)] != '/' && real_parent[strlen(real_dir)] != '\0')) {
        *why = "path leaves the recordings directory";
    } else {
        struct stat st;
        if (lstat(file, &st) == 0 && !S_ISREG(st.st_mode))
            *why = "path is not a regular file";
        else
            ok = true;
    }
    g_free(parent);
    return ok;
}

static void cmd_start(struct recorder *rc, struct conf_room *room, const char *path, GString *out)
{
    char file[PATH_MAX_BYTES * 2 + 2];
    const char *why = NULL;
    void *media = conf_room_media(room);
    if (!recorder_resolve_path(rc->dir, path, file, sizeof file, &why)) {
        /* nothing */
    } else if (!media) {
        why = "the room has no media";
    } else if (find(rc, room, path)) {
        why = "already recording this path";
    } else if (active(rc) >= rc->max_recordings) {
        why = "the node has its maximum of recordings";
    } else if (disk_below_floor(rc)) {
        why = "disk space below the floor";
    } else {
        for (GList *l = rc->recordings; l && !why; l = l->next)
            if (strcmp(((struct recording *)l->data)->file, file) == 0)
                why = "the file is being recorded";
        if (!why) prepare_file(rc, file, &why);
    }
    if (why) {
        LOG(LOG_WARN, SUB, "room=%s path=\"%s\" msg=\"recording refused\" reason=\"%s\"",
            conf_room_name(room), path, why);
        g_string_append_printf(out, "-ERR %s\n", why);
        emit_start_error(rc, room, path, why);
        return;
    }
    struct recording *rec = xcalloc(1, sizeof *rec);
    rec->rc = rc;
    rec->path = xstrdup(path);
    rec->file = xstrdup(file);
    rec->room = room;
    rec->media = media;
    rec->video = mixer_has_video(media);
    g_strlcpy(rec->room_name, conf_room_name(room), sizeof rec->room_name);
    g_strlcpy(rec->room_uuid, conf_room_uuid(room), sizeof rec->room_uuid);
    g_strlcpy(rec->profile_name, conf_room_profile(room)->name, sizeof rec->profile_name);
    g_mutex_init(&rec->lock);
    g_queue_init(&rec->held_audio);
    rec->start_rt = rec->resume_rt = rec->stop_rt = GST_CLOCK_TIME_NONE;
    if (!build_pipeline(rec, &why)) {
        LOG(LOG_ERROR, SUB, "room=%s path=\"%s\" msg=\"recording failed to start\" reason=\"%s\"",
            rec->room_name, path, why);
        g_string_append_printf(out, "-ERR %s\n", why);
        emit_start_error(rc, room, path, why);
        recording_free(rec);
        return;
    }
    rc->recordings = g_list_prepend(rc->recordings, rec);
    rec->tap = mixer_tap_open(media, &tap_ops, rec);
    GstClockTime now = mixer_running_time(media); /* the file's 0, when start-recording goes */
    g_mutex_lock(&rec->lock);
    rec->start_rt = now;
    g_mutex_unlock(&rec->lock);
    g_string_append_printf(out, "Record file %s\n", path);
    LOG(LOG_INFO, SUB, "room=%s path=\"%s\" file=\"%s\" msg=\"recording\" video=%s", rec->room_name,
        path, file, rec->video ? "true" : "false");
    emit(rc, CONF_EV_START_RECORDING, rec, path, NULL, false);
}

static void cmd_stop(struct recorder *rc, struct conf_room *room, const char *target, GString *out)
{
    bool all = g_ascii_strcasecmp(target, "all") == 0;
    int n = 0;
    struct recording *any = NULL;
    GList *copy = g_list_copy(rc->recordings);
    for (GList *l = copy; l; l = l->next) {
        struct recording *rec = l->data;
        if (rec->stopping || rec->room != room || (!all && strcmp(rec->path, target) != 0))
            continue;
        g_string_append_printf(out, "Stopped recording file %s\n", rec->path);
        stop(rec, NULL, false);
        any = rec;
        n++;
    }
    g_list_free(copy);
    if (!n && !all) {
        g_string_append_printf(out, "non-existant recording '%s'\n", target);
    } else if (any) {
        /* conference_api_sub_norecord's own event; the file's comes when it is closed */
        emit(rc, CONF_EV_STOP_RECORDING, any, all ? "all" : target, NULL, false);
    } else {
        struct conf_recording_event ev = {
            .room_name = conf_room_name(room),
            .room_uuid = conf_room_uuid(room),
            .profile_name = conf_room_profile(room)->name,
            .room_size = conf_room_count(room),
            .path = "all",
            .samplerate = SAMPLERATE,
        };
        conf_emit_recording(rc->reg, CONF_EV_STOP_RECORDING, &ev);
    }
    g_string_append_printf(out, "Stopped recording %d file%s\n", n, n == 1 ? "" : "s");
}

static void cmd_check(struct recorder *rc, struct conf_room *room, GString *out)
{
    int n = 0;
    for (GList *l = rc->recordings; l; l = l->next) {
        struct recording *rec = l->data;
        if (rec->stopping || rec->room != room) continue;
        g_string_append_printf(out, "Record file %s\n", rec->path);
        n++;
    }
    if (!n) g_string_append(out, "Conference is not being recorded.\n");
}

static void cmd_pause(struct recorder *rc, struct conf_room *room, const char *path, bool pause,
                      GString *out)
{
    g_string_append_printf(out, "%s recording file %s\n", pause ? "Pause" : "Resume", path);
    struct recording *rec = find(rc, room, path);
    if (!rec) {
        g_string_append_printf(out, "non-existant recording '%s'\n", path);
        return;
    }
    GstClockTime now = mixer_running_time(rec->media);
    g_mutex_lock(&rec->lock);
    if (pause) {
        rec->resuming = false;
        rec_timeline_pause(&rec->tl, now);
    } else {
        if (rec->video && rec->tl.started && rec->tl.paused) {
            rec->resuming = true; /* push() resumes on the next keyframe */
            rec->resume_rt = now;
        } else
            rec_timeline_resume(&rec->tl, now);
    }
    g_mutex_unlock(&rec->lock);
    if (!pause && rec->video) mixer_request_keyframe(rec->media);
    LOG(LOG_INFO, SUB, "room=%s path=\"%s\" msg=\"%s\"", rec->room_name, path,
        pause ? "paused" : "resumed");
    emit(rc, pause ? CONF_EV_PAUSE_RECORDING : CONF_EV_RESUME_RECORDING, rec, path, NULL, false);
}

bool recorder_is_command(const char *cmd)
{
    static const char *const names[] = {"recording", "record", "norecord",
                                        "pause",     "resume", "chkrecord"};
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
        if (g_ascii_strcasecmp(cmd, names[i]) == 0) return true;
    return false;
}

/* conference_api_sub_recording and the older commands it maps onto, with their usage texts when
 * arguments are missing (conference_api_dispatch prints "<command> <syntax>"). */
void recorder_command(struct recorder *rc, struct conf_room *room, int argc, char **argv,
                      GString *out)
{
    const char *cmd = argv[1];
    if (!rc) {
        g_string_append(out, "-ERR recording is not available on this node\n");
        return;
    }
    if (!g_ascii_strcasecmp(cmd, "recording")) {
        const char *action = argc > 2 ? argv[2] : NULL;
        const char *arg = argc > 3 ? argv[3] : NULL;
        if (action && !arg &&
            (!g_ascii_strcasecmp(action, "stop") || !g_ascii_strcasecmp(action, "check")))
            arg = "all";
        if (!action) {
            g_string_append(out, "recording [start|stop|check|pause|resume] [<filename>|all]");
        } else if (!arg) {
            cmd_start(rc, room, action, out); /* the old syntax: recording <filename> */
        } else if (!g_ascii_strcasecmp(action, "start")) {
            cmd_start(rc, room, arg, out);
        } else if (!g_ascii_strcasecmp(action, "stop")) {
            cmd_stop(rc, room, arg, out);
        } else if (!g_ascii_strcasecmp(action, "check")) {
            cmd_check(rc, room, out);
        } else if (!g_ascii_strcasecmp(action, "pause")) {
            cmd_pause(rc, room, arg, true, out);
        } else if (!g_ascii_strcasecmp(action, "resume")) {
            cmd_pause(rc, room, arg, false, out);
        } else {
            g_string_append(out, "recording [start|stop|check|pause|resume] [<filename>|all]");
        }
    } else if (!g_ascii_strcasecmp(cmd, "record")) {
        if (argc < 3)
            g_string_append(out, "record <filename>");
        else
            cmd_start(rc, room, argv[2], out);
    } else if (!g_ascii_strcasecmp(cmd, "norecord")) {
        if (argc < 3)
            g_string_append(out, "norecord <[filename|all]>");
        else
            cmd_stop(rc, room, argv[2], out);
    } else if (!g_ascii_strcasecmp(cmd, "pause") || !g_ascii_strcasecmp(cmd, "resume")) {
        bool pause = !g_ascii_strcasecmp(cmd, "pause");
        if (argc < 3)
            g_string_append(out, pause ? "pause <filename>" : "resume <filename>");
        else
            cmd_pause(rc, room, argv[2], pause, out);
    } else if (!g_ascii_strcasecmp(cmd, "chkrecord")) {
        cmd_check(rc, room, out);
    }
}

/* ---- the node's side: rooms that end, limits ------------------------------------------------ */

static void on_conf_event(void *ctx, const struct conf_event *ev)
{
    struct recorder *rc = ctx;
    if (ev->kind != CONF_EV_CONFERENCE_DESTROY) return;
    /* the room's media is still there: the taps close before it goes */
    GList *copy = g_list_copy(rc->recordings);
    for (GList *l = copy; l; l = l->next) {
        struct recording *rec = l->data;
        if (rec->room != ev->room) continue;
        stop(rec, NULL, true);
        rec->room = NULL;
        rec->media = NULL;
    }
    g_list_free(copy);
}

static gboolean check_limits(gpointer data)
{
    struct recorder *rc = data;
    bool low = disk_below_floor(rc);
    GList *copy = g_list_copy(rc->recordings);
    for (GList *l = copy; l; l = l->next) {
        struct recording *rec = l->data;
        if (rec->stopping) continue;
        if (low) {
            stop(rec, "disk space below the floor", false);
            continue;
        }
        if (!rec->media) continue;
        GstClockTime now = mixer_running_time(rec->media);
        g_mutex_lock(&rec->lock);
        GstClockTime len = rec_timeline_length(&rec->tl, now);
        /* still waiting for the keyframe asked for at the start or resume, while frames come:
         * the request was lost (seen once in a room leaving its bridge), ask again */
        bool ask = rec->video && (!rec->tl.started || rec->resuming) &&
                   rec->frames_in >= rec->frames_at_check + 3;
        rec->frames_at_check = rec->frames_in;
        g_mutex_unlock(&rec->lock);
        if (ask) {
            LOG(LOG_INFO, SUB, "path=\"%s\" msg=\"no keyframe yet, asking again\"", rec->path);
            mixer_request_keyframe(rec->media);
        }
        if (rc->max_duration_s <= 0) continue;
        if (len >= (GstClockTime)rc->max_duration_s * GST_SECOND)
            stop(rec, "maximum duration reached", false);
    }
    g_list_free(copy);
    return G_SOURCE_CONTINUE;
}

struct recorder *recorder_new(struct conf_registry *reg, const struct recorder_config *c,
                              const char **why)
{
    if (!c->dir || !*c->dir) {
        *why = "no recordings directory";
        return NULL;
    }
    if (g_mkdir_with_parents(c->dir, 0755) != 0) {
        *why = "cannot create the recordings directory";
        return NULL;
    }
    char real[PATH_MAX];
    if (!realpath(c->dir, real)) {
        *why = "cannot resolve the recordings directory";
        return NULL;
    }
    struct recorder *rc = xcalloc(1, sizeof *rc);
    rc->reg = reg;
    rc->dir = xstrdup(real);
    rc->max_recordings = c->max_recordings > 0 ? c->max_recordings : 1;
    rc->max_duration_s = c->max_duration_s;
    rc->min_free_mb = c->min_free_mb;
    rc->listener = conf_listen(reg, on_conf_event, rc);
    rc->check_timer = g_timeout_add(CHECK_MS, check_limits, rc);
    LOG(LOG_INFO, SUB,
        "msg=\"recordings\" dir=\"%s\" max=%d max_duration_s=%" G_GINT64_FORMAT
        " min_free_mb=%" G_GINT64_FORMAT,
        rc->dir, rc->max_recordings, rc->max_duration_s, rc->min_free_mb);
    return rc;
}

void recorder_free(struct recorder *rc)
{
    if (!rc) return;
    g_source_remove(rc->check_timer);
    conf_unlisten(rc->reg, rc->listener);
    while (rc->recordings) {
        struct recording *rec = rc->recordings->data;
        stop(rec, NULL, true);
        /* the main loop has stopped: wait for the muxer here */
        GstBus *bus = gst_pipeline_get_bus(GST_PIPELINE(rec->pipeline));
        GstMessage *m = gst_bus_timed_pop_filtered(bus, CLOSE_WAIT_S * GST_SECOND,
                                                   GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
        bool done = m != NULL;
        if (m) gst_message_unref(m);
        gst_object_unref(bus);
        finish(rec, done ? NULL : "file not finished in time");
    }
    xfree(rc->dir);
    xfree(rc);
}

unsigned recorder_count(const struct recorder *rc)
{
    return rc ? g_list_length(rc->recordings) : 0;
}
