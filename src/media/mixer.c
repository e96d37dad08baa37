/* mixer: one GStreamer pipeline per room (see mixer.h). The graph, for a video room:
 *
 *   videotestsrc(black, live) ─┐
 *   member A: webrtcbin src(video) → rtpvp8depay → vp8dec → videoconvert → queue ─┤
 *   member B: ...                                                                 ├→ compositor
 *     → capsfilter(W×H@fps I420) → videoconvert → queue(leaky) → vp8enc → tee(vtee)
 *   vtee → per member: queue(leaky) → rtpvp8pay(pt of its offer) → capsfilter → its webrtcbin
 *
 *   member X: webrtcbin src(audio) → rtpopusdepay → opusdec → audioconvert → audioresample
 *     → capsfilter(S16LE 48k stereo) → level → volume(mute) → tee(atee of X)
 *   atee of X → per other member Y: queue(leaky) → amix of Y           (an "audio link")
 *   audiotestsrc(silence, live) → amix of Y → capsfilter → volume(deaf) → queue → opusenc
 *     → rtpopuspay(pt of Y's offer) → capsfilter → queue(leaky) → Y's webrtcbin
 *
 * Threads: everything here runs on the main context the room was created on, except the few
 * callbacks GStreamer calls from its own threads (webrtcbin signals and promises, pad probes):
 * those only post() to the main context, holding a reference on the member; the member's `gone`
 * flag tells posted work that arrives too late to do nothing. It never changes element state,
 * links or reports from a streaming thread. */
#include "media/mixer.h"

#include <gst/base/gstaggregator.h>
#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"

#define SUB                 "mixer"
#define ANSWER_TIMEOUT_S    10 /* ICE gathering must complete by then */
#define CONNECT_TIMEOUT_S   30 /* from the answer to DTLS connected */
#define MEDIA_TIMEOUT_S     15 /* from connected to the first RTP in */
#define CAPS_POLL_MS        10
#define CAPS_WAIT_MAX_MS    2000
#define REMOVE_TIMEOUT_MS   2000 /* pad probes that never fire (stuck upstream) */
#define TALK_START_DB_LEVEL 40   /* energy 0..100 */
#define TALK_START_MS       200
#define TALK_STOP_MS        600
#define LEVEL_INTERVAL_MS   100

static struct {
    char local_ip[64];
    int min_port, max_port;
    int vp8_cpu_used;
    int jitter_ms;            /* webrtcbin's jitterbuffers */
    GstClockTime mix_latency; /* compositor and audiomixers */
} opts = {"127.0.0.1", 0, 0, 8, MIXER_JITTER_MS, MIXER_MIX_LATENCY_MS *GST_MSECOND};

GQuark mixer_error_quark(void)
{
    return g_quark_from_static_string("ccomet-mixer-error");
}

void mixer_set_options(const struct mixer_options *o)
{
    g_strlcpy(opts.local_ip, o->local_ip && *o->local_ip ? o->local_ip : "127.0.0.1",
              sizeof opts.local_ip);
    opts.min_port = o->min_port;
    opts.max_port = o->max_port;
    opts.vp8_cpu_used = o->vp8_cpu_used > 0 ? o->vp8_cpu_used : 8;
    opts.jitter_ms = o->jitter_ms > 0 ? o->jitter_ms : MIXER_JITTER_MS;
    opts.mix_latency =
        (GstClockTime)(o->mix_latency_ms > 0 ? o->mix_latency_ms : MIXER_MIX_LATENCY_MS) *
        GST_MSECOND;
}

/* Any thread (webrtcbin builds its transport bins when a description is set): webrtcbin 1.22 puts
 * a clocksync in front of rtpbin for every send pad, and its network sinks (nicesink, one per
 * transport) are GstBaseSinks with sync=TRUE. Both hold every outgoing RTP packet until its
 * timestamp plus the pipeline's latency, the largest budget of all live paths (jitterbuffer +
 * mixer latency + ...): with the old 100 ms / 50 ms budgets that was ~190 ms of pure waiting,
 * even in the bridge where nothing is decoded (GST_TRACERS=latency: the queues in front of
 * webrtcbin held ~145 ms). A server forwards what it has as soon as it has it: the pacing is the
 * sender's (the member's clock for the bridge, the compositor's/audiomixers' output for the
 * mix). */
static void on_deep_element_added(GstBin *bin, GstBin *sub, GstElement *el, gpointer ud)
{
    GstElementFactory *f = gst_element_get_factory(el);
    const char *name = f ? GST_OBJECT_NAME(f) : "";
    if (strcmp(name, "nicesink") == 0)
        g_object_set(el, "sync", FALSE, "async", FALSE, NULL);
    else if (strcmp(name, "clocksync") == 0)
        g_object_set(el, "sync", FALSE, NULL);
}

struct room;

struct member {
    gint refs;     /* atomic: the room's list + every pending post + webrtcbin handlers */
    gboolean gone; /* removed or room freed: posted work must do nothing */
    GMainContext *ctx;
    struct room *r;        /* valid while !gone */
    struct conf_member *m; /* valid while !removing */
    uint32_t id;
    char room_name[64];

    int opus_pt, vp8_pt;
    bool video;    /* sends and receives video */
    bool removing; /* out of the room's list; teardown in progress */
    bool failed;   /* reported once */

    GstElement *wb;
    GPtrArray *elements; /* every element of this member in the pipeline (not owned) */

    /* out: video */
    GstPad *vtee_pad; /* (owned) request pad on the room's vtee */
    GstElement *vqueue;
    /* out: audio */
    GstElement *amix, *deaf_vol;
    /* in */
    GstPad *comp_pad; /* (owned) request pad on the compositor */
    GstElement *atee, *mute_vol, *level;
    gint rx_buffers;         /* atomic: RTP buffers out of webrtcbin */
    gint tx_audio, tx_video; /* atomic: RTP buffers into webrtcbin */

    /* negotiation */
    GstSDPMessage *offer; /* (owned) until set-remote-description */
    GstPad *send_pads[2]; /* (owned) webrtcbin sink pads: audio, video */
    guint caps_timer;
    int caps_waited_ms;
    void (*done)(struct conf_member *m, const char *answer_sdp, const GError *error, void *ud);
    void *done_ud;
    bool answered;
    guint answer_timer, connect_timer, media_timer;
    bool connected;
    bool warned_no_tx;

    /* talking */
    bool talking;
    int above_ms, below_ms, energy;

    /* removal */
    int pending_probes;
    guint remove_timer;

    /* the two-member bridge (FreeSWITCH's video-bridge-first-two): while the room has exactly two
     * video members, each one's VP8 goes to the other as it came, and the room neither decodes
     * nor encodes video */
    GstElement *vdepay;           /* this member's incoming VP8, depayloaded */
    GstElement *dec_valve;        /* before its decoder: dropping while bridged */
    GstElement *vsel;             /* before its payloader: the mix (sel_mix) or the peer's VP8 */
    GstPad *sel_mix, *sel_bridge; /* (owned) vsel's sink pads */
    GstElement *bridge_src;       /* appsrc: the peer's VP8 */
    struct member *peer;          /* (owned ref) the other member while bridged; r->bridge_lock */
};

/* An audio link: from's decoded audio into to's mixer, or into the room's full mix for the taps
 * (to NULL). */
struct alink {
    struct member *from, *to;
    GstElement *mixer; /* to->amix or the room's tap_amix */
    GstPad *tee_pad;   /* (owned) request pad on from->atee */
    GstElement *queue;
    GstPad *mix_pad; /* (owned) request pad on mixer */
};

struct room {
    struct conf_room *room;
    char name[64];
    GMainContext *ctx;
    bool video;
    int width, height, fps, video_kbps, audio_kbps;
    GstElement *pipeline, *comp, *venc, *vtee;
    gint canvas_late, canvas_late_logged; /* QoS events sent to the compositor (canvas_qos_cb) */
    guint bus_watch;
    GList *members; /* struct member *, join order */
    GList *leaving; /* struct member * in teardown (probes pending) */
    GList *links;   /* struct alink * */
    enum conf_layout layout;
    uint32_t floor_id;
    guint keyframe_requests;
    guint stats_timer;
    GstElement *enc_valve; /* before the shared encoder: dropping while bridged */
    bool bridged;
    GMutex bridge_lock; /* member->peer, read by streaming threads */
    /* taps (mixer_tap_open): a branch off vtee and one full mix with its Opus encode */
    GMutex tap_lock;         /* taps, read by the appsinks' streaming threads */
    GList *taps;             /* struct mixer_tap * */
    GPtrArray *tap_elements; /* the branches' elements (not owned), NULL while no tap */
    GstPad *vtap_pad;        /* (owned) request pad on vtee */
    GstElement *tap_amix;    /* everyone's audio */
};

struct mixer_tap {
    const struct mixer_tap_ops *ops;
    void *ud;
};

/* ---- members: references and posting to the main context ------------------------------------ */

static struct member *member_ref(struct member *mm)
{
    g_atomic_int_inc(&mm->refs);
    return mm;
}

static void member_unref(struct member *mm)
{
    if (!g_atomic_int_dec_and_test(&mm->refs)) return;
    g_main_context_unref(mm->ctx);
    if (mm->offer) gst_sdp_message_free(mm->offer);
    for (int i = 0; i < 2; i++)
        if (mm->send_pads[i]) gst_object_unref(mm->send_pads[i]);
    if (mm->elements) g_ptr_array_unref(mm->elements);
    xfree(mm);
}

static void member_closure_unref(gpointer data, GClosure *c)
{
    member_unref(data);
}

typedef void (*member_fn)(struct member *mm, gpointer arg);

struct post {
    struct member *mm;
    member_fn fn;
    gpointer arg;
    GDestroyNotify free_arg;
};

static gboolean post_run(gpointer data)
{
    struct post *p = data;
    if (!p->mm->gone) p->fn(p->mm, p->arg);
    return G_SOURCE_REMOVE;
}

static void post_free(gpointer data)
{
    struct post *p = data;
    if (p->free_arg && p->arg) p->free_arg(p->arg);
    member_unref(p->mm);
    xfree(p);
}

/* Any thread: runs fn(mm, arg) later on mm's main context (never synchronously), unless the member
 * is gone by then; arg is freed with free_arg either way. */
static void post(struct member *mm, member_fn fn, gpointer arg, GDestroyNotify free_arg)
{
    struct post *p = xcalloc(1, sizeof *p);
    p->mm = member_ref(mm);
    p->fn = fn;
    p->arg = arg;
    p->free_arg = free_arg;
    GSource *s = g_idle_source_new();
    g_source_set_priority(s, G_PRIORITY_DEFAULT);
    g_source_set_callback(s, post_run, p, post_free);
    g_source_attach(s, mm->ctx);
    g_source_unref(s);
}

/* ---- small helpers ----------------------------------------------------------------------------
 */

static GstElement *make(const char *factory)
{
    GstElement *e = gst_element_factory_make(factory, NULL);
    if (!e) {
        LOG(LOG_CRIT, SUB, "msg=\"GStreamer element missing\" factory=%s", factory);
        abort(); /* room_new checked them all; a plugin vanishing at run time is fatal */
    }
    return e;
}

static GstElement *member_make(struct member *mm, const char *factory)
{
    GstElement *e = make(factory);
    gst_bin_add(GST_BIN(mm->r->pipeline), e);
    g_ptr_array_add(mm->elements, e);
    return e;
}

static GstCaps *audio_raw_caps(void)
{
    return gst_caps_from_string(
        "audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2");
}

static GstElement *capsfilter(struct member *mm, GstCaps *caps /* (transfer full) */)
{
    GstElement *f = member_make(mm, "capsfilter");
    g_object_set(f, "caps", caps, NULL);
    gst_caps_unref(caps);
    return f;
}

/* Brings a member's elements [from, len) to the running pipeline's state, the last made first.
 * Every chain is made upstream first, so each element starts after everything downstream of it.
 * The other order loses a race to the element's own thread: the live silence source, the
 * audiomixer's aggregate thread and a queue's thread start pushing as soon as they play, and a
 * push into a neighbour still in NULL (inactive pads) returns FLUSHING, on which the aggregator
 * and the queue pause their task for good. That member's mix-minus then never produced a buffer
 * ("connected but no audio sent to it"), whenever the main thread was preempted between two
 * syncs: about one test run in fifteen on a loaded 2-core machine. */
static void sync_downstream_first(GPtrArray *els, guint from)
{
    for (guint i = els->len; i > from; i--)
        gst_element_sync_state_with_parent(g_ptr_array_index(els, i - 1));
}

static bool link_pads(GstPad *src, GstPad *sink, const char *what, struct member *mm)
{
    GstPadLinkReturn ret = gst_pad_link(src, sink);
    if (ret == GST_PAD_LINK_OK) return true;
    LOG(LOG_ERROR, SUB, "room=%s member=%u msg=\"link failed\" what=%s ret=%s", mm->room_name,
        mm->id, what, gst_pad_link_get_name(ret));
    return false;
}

static bool link_static(GstElement *a, GstElement *b, const char *what, struct member *mm)
{
    GstPad *src = gst_element_get_static_pad(a, "src");
    GstPad *sink = gst_element_get_static_pad(b, "sink");
    bool ok = link_pads(src, sink, what, mm);
    gst_object_unref(src);
    gst_object_unref(sink);
    return ok;
}

static void report_failed(struct member *mm, const char *why)
{
    if (mm->failed || mm->removing || mm->gone) return;
    mm->failed = true;
    LOG(LOG_WARN, SUB, "room=%s member=%u msg=\"member failed\" reason=\"%s\"", mm->room_name,
        mm->id, why);
    conf_report_failed(mm->m, why);
}

/* Asks the shared encoder for a keyframe (a joiner must not wait for the next periodic one). */
static void request_keyframe(struct room *r)
{
    if (!r->venc) return;
    GstPad *src = gst_element_get_static_pad(r->venc, "src");
    GstStructure *s = gst_structure_new("GstForceKeyUnit", "running-time", GST_TYPE_CLOCK_TIME,
                                        GST_CLOCK_TIME_NONE, "all-headers", G_TYPE_BOOLEAN, TRUE,
                                        "count", G_TYPE_UINT, ++r->keyframe_requests, NULL);
    gst_pad_send_event(src, gst_event_new_custom(GST_EVENT_CUSTOM_UPSTREAM, s));
    gst_object_unref(src);
}

/* Asks a member's browser for a keyframe: an upstream GstForceKeyUnit from its depayloader,
 * which webrtcbin's RTP session turns into a PLI. */
static void request_member_keyframe(struct member *mm)
{
    if (!mm->vdepay) return;
    GstPad *src = gst_element_get_static_pad(mm->vdepay, "src");
    GstStructure *s =
        gst_structure_new("GstForceKeyUnit", "running-time", GST_TYPE_CLOCK_TIME,
                          GST_CLOCK_TIME_NONE, "all-headers", G_TYPE_BOOLEAN, TRUE, NULL);
    gst_pad_send_event(src, gst_event_new_custom(GST_EVENT_CUSTOM_UPSTREAM, s));
    gst_object_unref(src);
}

/* ---- layout ------------------------------------------------------------------------------------
 */

static void place(GstPad *pad, int x, int y, int w, int h, int z, bool visible)
{
    g_object_set(pad, "xpos", x, "ypos", y, "width", w, "height", h, "zorder", (guint)z, "alpha",
                 visible ? 1.0 : 0.0, NULL);
}

/* Main context: puts every member's picture where the layout says. */
static void relayout(struct room *r)
{
    if (!r->video) return;
    struct member *tiles[64];
    int n = 0;
    for (GList *l = r->members; l && n < 64; l = l->next) {
        struct member *mm = l->data;
        if (mm->comp_pad) tiles[n++] = mm;
    }
    if (n == 0) return;
    int W = r->width, H = r->height;
    if (r->layout == CONF_LAYOUT_FLOOR) {
        int big = 0;
        for (int i = 0; i < n; i++)
            if (tiles[i]->id == r->floor_id) big = i;
        int strip_h = n > 1 ? H / 4 : 0;
        struct member *bm = tiles[big];
        place(bm->comp_pad, 0, 0, W, H - strip_h, 1, !conf_member_info(bm->m)->vmute);
        int k = 0, others = n - 1;
        for (int i = 0; i < n; i++) {
            if (i == big) continue;
            int w = W / others;
            place(tiles[i]->comp_pad, k * w, H - strip_h, w, strip_h, 2,
                  !conf_member_info(tiles[i]->m)->vmute);
            k++;
        }
    } else {
        int cols = 1;
        while (cols * cols < n)
            cols++;
        int rows = n == 2 ? 1 : cols; /* 1: full, 2: side by side, 3-4: 2x2, 5-9: 3x3 ... */
        int w = W / cols, h = H / rows;
        for (int i = 0; i < n; i++)
            place(tiles[i]->comp_pad, (i % cols) * w, (i / cols) * h, w, h, 1,
                  !conf_member_info(tiles[i]->m)->vmute);
    }
    LOG(LOG_DEBUG, SUB, "room=%s msg=\"layout\" layout=%s tiles=%d", r->name,
        r->layout == CONF_LAYOUT_FLOOR ? "floor" : "grid", n);
}

/* ---- audio links (mix-minus) ----------------------------------------------------------------- */

/* Main context: from's decoded audio into to's mixer. Both must be in the room with their atee /
 * amix built. The queue is synced before the live tee pad is linked to it. */
/* Any thread: a member's input, as the mixers (compositor, audiomixer) see it, reports no latency
 * of its own. A live aggregator waits for an input that has nothing queued until the output's
 * running time plus the largest upstream latency plus its own `latency`; with the member's
 * jitterbuffer in that sum, one member whose packets stall (a loss, a keyframe wait, a descheduled
 * decoder) delays the whole canvas (or mix) by the jitter budget. Member media is mixed as soon as
 * it is decoded whatever its lateness (nothing here syncs), so the only wait is the mixers' own
 * budget ([media] mix_latency_ms) on top of their live filler's one frame/buffer; the jitterbuffer
 * budget ([media] jitter_ms) only covers reordering and losses. */
static GstPadProbeReturn hide_latency_cb(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    if (info->type & GST_PAD_PROBE_TYPE_EVENT_UPSTREAM) /* canvas_qos_cb's: not for decoders */
        return GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_QOS ? GST_PAD_PROBE_DROP
                                                                               : GST_PAD_PROBE_OK;
    GstQuery *q = GST_PAD_PROBE_INFO_QUERY(info);
    if (GST_QUERY_TYPE(q) != GST_QUERY_LATENCY) return GST_PAD_PROBE_OK;
    gboolean live;
    gst_query_parse_latency(q, &live, NULL, NULL);
    gst_query_set_latency(q, live, 0, GST_CLOCK_TIME_NONE);
    return GST_PAD_PROBE_OK;
}

static void hide_upstream_latency(GstElement *queue)
{
    GstPad *src = gst_element_get_static_pad(queue, "src");
    gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_QUERY_UPSTREAM | GST_PAD_PROBE_TYPE_PULL,
                      hide_latency_cb, NULL, NULL);
    gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, hide_latency_cb, NULL, NULL);
    gst_object_unref(src);
}

static void audio_link(struct room *r, struct member *from, struct member *to, GstElement *mixer)
{
    struct alink *al = xcalloc(1, sizeof *al);
    al->from = from;
    al->to = to;
    al->mixer = mixer;
    al->queue = make("queue");
    g_object_set(al->queue, "leaky", 2, "max-size-buffers", 0, "max-size-bytes", 0, "max-size-time",
                 (guint64)(200 * GST_MSECOND), NULL);
    hide_upstream_latency(al->queue);
    gst_bin_add(GST_BIN(r->pipeline), al->queue);
    al->mix_pad = gst_element_request_pad_simple(mixer, "sink_%u");
    al->tee_pad = gst_element_request_pad_simple(from->atee, "src_%u");
    GstPad *qsrc = gst_element_get_static_pad(al->queue, "src");
    GstPad *qsink = gst_element_get_static_pad(al->queue, "sink");
    link_pads(qsrc, al->mix_pad, "alink-mix", from);
    gst_element_sync_state_with_parent(al->queue);
    link_pads(al->tee_pad, qsink, "alink-tee", from);
    gst_object_unref(qsrc);
    gst_object_unref(qsink);
    r->links = g_list_append(r->links, al);
}

/* Main context: stops and removes a link's queue, releases its pads. from's tee pad must be
 * blocked or from's tee stopped. */
static void audio_unlink(struct room *r, struct alink *al)
{
    GstPad *qsink = gst_element_get_static_pad(al->queue, "sink");
    gst_pad_unlink(al->tee_pad, qsink);
    gst_object_unref(qsink);
    gst_element_release_request_pad(al->from->atee, al->tee_pad);
    gst_object_unref(al->tee_pad);
    gst_element_set_state(al->queue, GST_STATE_NULL);
    GstPad *qsrc = gst_element_get_static_pad(al->queue, "src");
    gst_pad_unlink(qsrc, al->mix_pad);
    gst_object_unref(qsrc);
    gst_element_release_request_pad(al->mixer, al->mix_pad);
    gst_object_unref(al->mix_pad);
    gst_bin_remove(GST_BIN(r->pipeline), al->queue);
    r->links = g_list_remove(r->links, al);
    xfree(al);
}

/* ---- incoming media: webrtcbin src pads ------------------------------------------------------ */

struct padwork {
    GstPad *pad; /* (owned) */
    gulong block;
};

static void padwork_free(gpointer data)
{
    struct padwork *w = data;
    gst_object_unref(w->pad);
    xfree(w);
}

static GstPadProbeReturn block_cb(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    return GST_PAD_PROBE_OK; /* stays blocked until the main context has built the chain */
}

static GstPadProbeReturn count_cb(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    struct member *mm = ud;
    g_atomic_int_inc(&mm->rx_buffers);
    return GST_PAD_PROBE_OK;
}

/* The counter is in a member, which outlives the member's pads (they go with its elements). */
static GstPadProbeReturn count_tx_cb(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    g_atomic_int_inc((gint *)ud);
    return GST_PAD_PROBE_OK;
}

static const char *pad_media(GstPad *pad, const char **encoding)
{
    GstCaps *caps = gst_pad_get_current_caps(pad);
    if (!caps) caps = gst_pad_query_caps(pad, NULL);
    static const char *kinds[] = {"audio", "video"};
    const char *kind = NULL;
    *encoding = NULL;
    if (caps && gst_caps_get_size(caps) > 0) {
        GstStructure *s = gst_caps_get_structure(caps, 0);
        const char *media = gst_structure_get_string(s, "media");
        const char *enc = gst_structure_get_string(s, "encoding-name");
        for (int i = 0; i < 2; i++)
            if (media && strcmp(media, kinds[i]) == 0) kind = kinds[i];
        if (enc) *encoding = g_intern_string(enc);
    }
    if (caps) gst_caps_unref(caps);
    return kind;
}

/* ---- the two-member bridge ---------------------------------------------------------------------
 */

static struct member *peer_of(struct member *mm)
{
    struct room *r = mm->r;
    g_mutex_lock(&r->bridge_lock);
    struct member *p = mm->peer ? member_ref(mm->peer) : NULL;
    g_mutex_unlock(&r->bridge_lock);
    return p;
}

/* Streaming thread: one depayloaded VP8 frame of mm, for its peer's payloader while bridged. */
static GstFlowReturn on_bridge_sample(GstElement *sink, gpointer ud)
{
    struct member *mm = ud;
    GstSample *sample = NULL;
    g_signal_emit_by_name(sink, "pull-sample", &sample);
    if (!sample) return GST_FLOW_OK;
    struct member *p = mm->gone ? NULL : peer_of(mm);
    GstBuffer *in = gst_sample_get_buffer(sample);
    if (p && p->bridge_src && in) {
        const GstSegment *seg = gst_sample_get_segment(sample);
        GstClockTime pts = GST_BUFFER_PTS(in);
        GstClockTime rt = seg && GST_CLOCK_TIME_IS_VALID(pts)
                              ? gst_segment_to_running_time(seg, GST_FORMAT_TIME, pts)
                              : GST_CLOCK_TIME_NONE;
        GstBuffer *out = gst_buffer_copy(in); /* shares the memory; own timestamps */
        GST_BUFFER_PTS(out) = rt;
        GST_BUFFER_DTS(out) = GST_CLOCK_TIME_NONE;
        GstCaps *caps = gst_sample_get_caps(sample), *cur = NULL;
        g_object_get(p->bridge_src, "caps", &cur, NULL);
        if (caps && (!cur || !gst_caps_is_equal(cur, caps)))
            g_object_set(p->bridge_src, "caps", caps, NULL);
        if (cur) gst_caps_unref(cur);
        GstFlowReturn ret;
        g_signal_emit_by_name(p->bridge_src, "push-buffer", out, &ret);
        gst_buffer_unref(out);
    }
    if (p) member_unref(p);
    gst_sample_unref(sample);
    return GST_FLOW_OK;
}

/* Streaming thread: the peer's browser asked mm for a keyframe (a PLI reached mm's payloader and
 * came up to the bridge source): ask the peer's browser. */
static GstPadProbeReturn bridge_upstream_cb(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    struct member *mm = ud;
    GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
    if (GST_EVENT_TYPE(ev) != GST_EVENT_CUSTOM_UPSTREAM ||
        !gst_event_has_name(ev, "GstForceKeyUnit"))
        return GST_PAD_PROBE_OK;
    struct member *p = mm->gone ? NULL : peer_of(mm);
    if (p) {
        if (!p->gone) request_member_keyframe(p);
        member_unref(p);
    }
    return GST_PAD_PROBE_DROP;
}

static void set_peer(struct room *r, struct member *mm, struct member *peer)
{
    g_mutex_lock(&r->bridge_lock);
    struct member *old = mm->peer;
    mm->peer = peer ? member_ref(peer) : NULL;
    g_mutex_unlock(&r->bridge_lock);
    if (old) member_unref(old);
}

/* Main context: bridges the room's video while it has exactly two members that send and receive
 * video, mixes it otherwise; called whenever a member's video input appears or a member leaves. */
static void update_bridge(struct room *r)
{
    if (!r->video) return;
    struct member *two[2] = {NULL, NULL};
    int n = 0;
    for (GList *l = r->members; l; l = l->next) {
        if (n < 2) two[n] = l->data;
        n++;
    }
    bool want = n == 2 && !r->taps && two[0]->video && two[1]->video && two[0]->vdepay &&
                two[1]->vdepay && two[0]->vsel && two[1]->vsel;
    if (want && r->bridged && two[0]->peer == two[1] && two[1]->peer == two[0]) return;
    if (!want && !r->bridged) return;
    GList *all = g_list_concat(g_list_copy(r->members), g_list_copy(r->leaving));
    for (GList *l = all; l; l = l->next) {
        struct member *mm = l->data;
        if (mm->peer) set_peer(r, mm, NULL);
    }
    if (want) {
        set_peer(r, two[0], two[1]);
        set_peer(r, two[1], two[0]);
        for (int i = 0; i < 2; i++) {
            g_object_set(two[i]->vsel, "active-pad", two[i]->sel_bridge, NULL);
            g_object_set(two[i]->dec_valve, "drop", TRUE, NULL);
            request_member_keyframe(two[i]);
        }
        g_object_set(r->enc_valve, "drop", TRUE, NULL);
        r->bridged = true;
        conf_report_video_bridge(r->room, true);
        LOG(LOG_INFO, SUB, "room=%s msg=\"video bridged\" members=%u,%u", r->name, two[0]->id,
            two[1]->id);
    } else {
        g_object_set(r->enc_valve, "drop", FALSE, NULL);
        for (GList *l = r->members; l; l = l->next) {
            struct member *mm = l->data;
            if (mm->vsel) g_object_set(mm->vsel, "active-pad", mm->sel_mix, NULL);
            if (mm->dec_valve) g_object_set(mm->dec_valve, "drop", FALSE, NULL);
            request_member_keyframe(mm); /* its decoder restarts */
        }
        request_keyframe(r);
        r->bridged = false;
        conf_report_video_bridge(r->room, false);
        LOG(LOG_INFO, SUB, "room=%s msg=\"video mixed\" members=%d", r->name, n);
    }
    g_list_free(all);
}

/* Main context: builds the decode chain for a new webrtcbin src pad and unblocks it. */
static void build_input(struct member *mm, gpointer arg)
{
    struct padwork *w = arg;
    struct room *r = mm->r;
    if (mm->removing) return; /* webrtcbin goes to NULL, which unblocks the pad */
    const char *enc;
    const char *kind = pad_media(w->pad, &enc);
    guint first = mm->elements->len;
    GstElement *head;
    if (kind && strcmp(kind, "video") == 0 && r->video && mm->video && !mm->comp_pad && enc &&
        g_ascii_strcasecmp(enc, "VP8") == 0) {
        head = member_make(mm, "rtpvp8depay");
        g_object_set(head, "request-keyframe", TRUE, "wait-for-keyframe", TRUE, NULL);
        GstElement *vin_tee = member_make(mm, "tee");
        g_object_set(vin_tee, "allow-not-linked", TRUE, NULL);
        mm->dec_valve = member_make(mm, "valve");
        g_object_set(mm->dec_valve, "drop", (gboolean)r->bridged, NULL);
        GstElement *dec = member_make(mm, "vp8dec");
        /* Its input may start on a delta frame (a joiner, or the valve reopening when the room
         * leaves the bridge): it asks the browser for a keyframe itself (a PLI through
         * webrtcbin), drops what it cannot decode, and never gives up on the stream. */
        g_object_set(dec, "threads", 1, "automatic-request-sync-points", TRUE,
                     "discard-corrupted-frames", TRUE, "max-errors", -1, NULL);
        GstElement *conv = member_make(mm, "videoconvert");
        GstElement *q = member_make(mm, "queue");
        /* one frame: when the compositor is slower than the decoder, a deeper leaky queue stays
         * full and its depth becomes delay (3 frames = 100 ms); the newest frame is what counts */
        g_object_set(q, "leaky", 2, "max-size-buffers", 1, "max-size-bytes", 0, "max-size-time",
                     (guint64)0, NULL);
        hide_upstream_latency(q);
        /* the bridge tap: this member's VP8 as it came, for the peer while bridged */
        GstElement *bq = member_make(mm, "queue");
        g_object_set(bq, "leaky", 2, "max-size-buffers", 30, "max-size-bytes", 0, "max-size-time",
                     (guint64)0, NULL);
        GstElement *tap = member_make(mm, "appsink");
        g_object_set(tap, "sync", FALSE, "async", FALSE, "emit-signals", TRUE, "max-buffers", 5u,
                     "drop", TRUE, NULL);
        g_signal_connect_data(tap, "new-sample", G_CALLBACK(on_bridge_sample), member_ref(mm),
                              member_closure_unref, 0);
        link_static(head, vin_tee, "vdepay-tee", mm);
        if (!gst_element_link(vin_tee, mm->dec_valve) || !gst_element_link(vin_tee, bq))
            report_failed(mm, "cannot link the video input tee");
        link_static(bq, tap, "vbridge-tap", mm);
        link_static(mm->dec_valve, dec, "vvalve-dec", mm);
        link_static(dec, conv, "vdec-conv", mm);
        link_static(conv, q, "vconv-queue", mm);
        mm->comp_pad = gst_element_request_pad_simple(r->comp, "sink_%u");
        gst_util_set_object_arg(G_OBJECT(mm->comp_pad), "sizing-policy", "keep-aspect-ratio");
        place(mm->comp_pad, 0, 0, 1, 1, 1, false); /* relayout() below puts it */
        GstPad *qsrc = gst_element_get_static_pad(q, "src");
        link_pads(qsrc, mm->comp_pad, "vqueue-comp", mm);
        gst_object_unref(qsrc);
        mm->vdepay = head;
        relayout(r);
    } else if (kind && strcmp(kind, "audio") == 0 && !mm->atee && enc &&
               g_ascii_strcasecmp(enc, "OPUS") == 0) {
        head = member_make(mm, "rtpopusdepay");
        GstElement *dec = member_make(mm, "opusdec");
        GstElement *conv = member_make(mm, "audioconvert");
        GstElement *res = member_make(mm, "audioresample");
        GstElement *caps = capsfilter(mm, audio_raw_caps());
        mm->level = member_make(mm, "level");
        g_object_set(mm->level, "interval", (guint64)(LEVEL_INTERVAL_MS * GST_MSECOND),
                     "post-messages", TRUE, NULL);
        mm->mute_vol = member_make(mm, "volume");
        g_object_set(mm->mute_vol, "mute", (gboolean)conf_member_info(mm->m)->mute, NULL);
        mm->atee = member_make(mm, "tee");
        g_object_set(mm->atee, "allow-not-linked", TRUE, NULL);
        link_static(head, dec, "adepay-dec", mm);
        link_static(dec, conv, "adec-conv", mm);
        link_static(conv, res, "aconv-res", mm);
        link_static(res, caps, "ares-caps", mm);
        link_static(caps, mm->level, "acaps-level", mm);
        link_static(mm->level, mm->mute_vol, "alevel-vol", mm);
        link_static(mm->mute_vol, mm->atee, "avol-tee", mm);
    } else {
        LOG(LOG_INFO, SUB, "room=%s member=%u msg=\"unused incoming stream\" media=%s encoding=%s",
            r->name, mm->id, kind ? kind : "?", enc ? enc : "?");
        head = member_make(mm, "fakesink");
        g_object_set(head, "async", FALSE, "sync", FALSE, NULL);
    }
    /* The notes' gotcha: the new chain must be in the pipeline's state before live data reaches
     * it, or the flushing chain returns FLUSHING upstream and stalls everyone. */
    sync_downstream_first(mm->elements, first);
    GstPad *sink = gst_element_get_static_pad(head, "sink");
    link_pads(w->pad, sink, "webrtcbin-in", mm);
    gst_object_unref(sink);
    if (mm->atee && head != NULL && kind && strcmp(kind, "audio") == 0) {
        for (GList *l = r->members; l; l = l->next) {
            struct member *o = l->data;
            if (o != mm && o->amix) audio_link(r, mm, o, o->amix);
        }
        if (r->tap_amix) audio_link(r, mm, NULL, r->tap_amix);
    }
    gst_pad_remove_probe(w->pad, w->block);
    LOG(LOG_INFO, SUB, "room=%s member=%u msg=\"incoming stream\" media=%s encoding=%s", r->name,
        mm->id, kind ? kind : "?", enc ? enc : "?");
    if (mm->vdepay && head == mm->vdepay) update_bridge(r);
}

/* Streaming thread: block the new pad and hand it to the main context. */
static void on_pad_added(GstElement *wb, GstPad *pad, gpointer ud)
{
    struct member *mm = ud;
    if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
    struct padwork *w = xcalloc(1, sizeof *w);
    w->pad = gst_object_ref(pad);
    w->block = gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BLOCK_DOWNSTREAM, block_cb, NULL, NULL);
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, count_cb,
                      member_ref(mm), (GDestroyNotify)member_unref);
    post(mm, build_input, w, padwork_free);
}

/* ---- connection state ---------------------------------------------------------------------------
 */

static gboolean connect_timeout(gpointer data)
{
    struct member *mm = data;
    mm->connect_timer = 0;
    if (!mm->connected) report_failed(mm, "not connected");
    return G_SOURCE_REMOVE;
}

static gboolean media_timeout(gpointer data)
{
    struct member *mm = data;
    mm->media_timer = 0;
    if (g_atomic_int_get(&mm->rx_buffers) == 0) report_failed(mm, "no media");
    return G_SOURCE_REMOVE;
}

static guint member_timeout(struct member *mm, guint seconds, GSourceFunc fn)
{
    GSource *s = g_timeout_source_new_seconds(seconds);
    g_source_set_callback(s, fn, member_ref(mm), (GDestroyNotify)member_unref);
    guint id = g_source_attach(s, mm->ctx);
    g_source_unref(s);
    return id;
}

static void remove_source(struct member *mm, guint *id)
{
    if (!*id) return;
    GSource *s = g_main_context_find_source_by_id(mm->ctx, *id);
    if (s) g_source_destroy(s);
    *id = 0;
}

static void check_connection(struct member *mm, gpointer arg)
{
    GstWebRTCPeerConnectionState pc;
    GstWebRTCICEConnectionState ice;
    g_object_get(mm->wb, "connection-state", &pc, "ice-connection-state", &ice, NULL);
    if (pc == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED && !mm->connected) {
        mm->connected = true;
        remove_source(mm, &mm->connect_timer);
        LOG(LOG_INFO, SUB, "room=%s member=%u msg=\"connected\"", mm->room_name, mm->id);
        if (mm->video) request_keyframe(mm->r);
        if (g_atomic_int_get(&mm->rx_buffers) == 0)
            mm->media_timer = member_timeout(mm, MEDIA_TIMEOUT_S, media_timeout);
    }
    if (pc == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED)
        report_failed(mm, "dtls failed");
    else if (ice == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED)
        report_failed(mm, "ice failed");
}

static void on_state_notify(GObject *wb, GParamSpec *ps, gpointer ud)
{
    post(ud, check_connection, NULL, NULL);
}

/* ---- negotiation -------------------------------------------------------------------------------
 */

static void finish_answer(struct member *mm, const char *sdp, int code, const char *why)
{
    if (mm->answered) return;
    mm->answered = true;
    remove_source(mm, &mm->answer_timer);
    if (sdp) {
        LOG(LOG_INFO, SUB, "room=%s member=%u msg=\"answered\" video=%s", mm->room_name, mm->id,
            mm->video ? "true" : "false");
        mm->connect_timer = member_timeout(mm, CONNECT_TIMEOUT_S, connect_timeout);
        mm->done(mm->m, sdp, NULL, mm->done_ud);
    } else {
        LOG(LOG_WARN, SUB, "room=%s member=%u msg=\"join failed\" code=%d reason=\"%s\"",
            mm->room_name, mm->id, code, why);
        GError *e = g_error_new_literal(MIXER_ERROR, code, why);
        mm->done(mm->m, NULL, e, mm->done_ud);
        g_error_free(e);
    }
}

static void member_teardown(struct member *mm); /* below */

/* Main context: the member leaves first (a later member_remove finds nothing), then done() hears
 * it, since done() may free the room. */
static void fail_join(struct member *mm, int code, const char *why)
{
    member_ref(mm);
    member_teardown(mm);
    finish_answer(mm, NULL, code, why);
    member_unref(mm);
}

struct join_error {
    int code;
    const char *why; /* static */
};

static void deferred_fail(struct member *mm, gpointer arg)
{
    struct join_error *e = arg;
    fail_join(mm, e->code, e->why);
}

/* member_add's own checks fail "later" too, as the contract says: never inside member_add. */
static void fail_join_later(struct member *mm, int code, const char *why)
{
    struct join_error *e = xcalloc(1, sizeof *e);
    e->code = code;
    e->why = why;
    post(mm, deferred_fail, e, xfree);
}

static const char *media_direction(const GstSDPMedia *md)
{
    static const char *dirs[] = {"sendrecv", "sendonly", "recvonly", "inactive"};
    for (guint i = 0; i < gst_sdp_media_attributes_len(md); i++) {
        const GstSDPAttribute *a = gst_sdp_media_get_attribute(md, i);
        for (int d = 0; d < 4; d++)
            if (strcmp(a->key, dirs[d]) == 0) return dirs[d];
    }
    return "sendrecv";
}

/* Our answer must send and receive what we meant: audio always, video when mm->video. The notes:
 * a PT or pad mismatch makes webrtcbin answer recvonly silently. */
static const char *check_answer(struct member *mm, const GstSDPMessage *sdp)
{
    bool audio_ok = false;
    for (guint i = 0; i < gst_sdp_message_medias_len(sdp); i++) {
        const GstSDPMedia *md = gst_sdp_message_get_media(sdp, i);
        const char *dir = media_direction(md);
        bool active = gst_sdp_media_get_port(md) != 0 && strcmp(dir, "inactive") != 0;
        if (strcmp(gst_sdp_media_get_media(md), "audio") == 0) {
            if (active && strcmp(dir, "sendrecv") == 0) audio_ok = true;
        } else if (strcmp(gst_sdp_media_get_media(md), "video") == 0) {
            if (mm->video && strcmp(dir, "sendrecv") != 0) return "answer video not sendrecv";
            if (!mm->video && active) return "answer video active without video";
        }
    }
    return audio_ok ? NULL : "answer audio not sendrecv";
}

static void check_gathering(struct member *mm, gpointer arg)
{
    if (mm->answered || mm->removing) return;
    GstWebRTCICEGatheringState gs;
    GstWebRTCSessionDescription *local = NULL;
    g_object_get(mm->wb, "ice-gathering-state", &gs, "local-description", &local, NULL);
    if (gs == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE && local) {
        const char *bad = check_answer(mm, local->sdp);
        if (bad) {
            gst_webrtc_session_description_free(local);
            fail_join(mm, MIXER_ERROR_MEDIA, bad);
            return;
        }
        gchar *text = gst_sdp_message_as_text(local->sdp);
        if (LOG_DEBUG <= log_threshold) {
            /* the ICE password stays out of the log (security audit L6): a=ice-pwd:<redacted> */
            GString *shown = g_string_new(text);
            for (char *p = strstr(shown->str, "a=ice-pwd:"); p; p = strstr(p, "a=ice-pwd:")) {
                gssize at = (p - shown->str) + 10;
                gsize end = (gsize)at;
                while (end < shown->len && shown->str[end] != '\r' && shown->str[end] != '\n')
                    end++;
                g_string_erase(shown, at, (gssize)(end - (gsize)at));
                g_string_insert(shown, at, "<redacted>");
                p = shown->str + at;
            }
            char q[3000];
            LOG(LOG_DEBUG, SUB, "room=%s member=%u msg=\"answer\" sdp=%s", mm->room_name, mm->id,
                log_quote(q, sizeof q, shown->str, (unsigned)shown->len));
            g_string_free(shown, TRUE);
        }
        finish_answer(mm, text, 0, NULL);
        g_free(text);
    }
    if (local) gst_webrtc_session_description_free(local);
}

static void on_gathering_notify(GObject *wb, GParamSpec *ps, gpointer ud)
{
    post(ud, check_gathering, NULL, NULL);
}

static gboolean answer_timeout(gpointer data)
{
    struct member *mm = data;
    mm->answer_timer = 0;
    if (!mm->answered && !mm->removing) fail_join(mm, MIXER_ERROR_MEDIA, "ice gathering timeout");
    return G_SOURCE_REMOVE;
}

static void answer_created(struct member *mm, gpointer arg)
{
    GstPromise *p = arg;
    if (mm->removing || mm->answered) return;
    const GstStructure *reply = gst_promise_get_reply(p);
    GstWebRTCSessionDescription *answer = NULL;
    if (reply)
        gst_structure_get(reply, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &answer, NULL);
    if (!answer) {
        fail_join(mm, MIXER_ERROR_MEDIA, "webrtcbin made no answer");
        return;
    }
    g_signal_emit_by_name(mm->wb, "set-local-description", answer, NULL);
    gst_webrtc_session_description_free(answer);
    check_gathering(mm, NULL); /* in case gathering completed before the notify was connected */
}

static void on_answer_created(GstPromise *p, gpointer ud)
{
    post(ud, answer_created, gst_promise_ref(p), (GDestroyNotify)gst_promise_unref);
}

static void remote_set(struct member *mm, gpointer arg)
{
    GstPromise *p = arg;
    if (mm->removing || mm->answered) return;
    if (gst_promise_get_reply(p) && gst_structure_has_field(gst_promise_get_reply(p), "error")) {
        fail_join(mm, MIXER_ERROR_NOT_ACCEPTABLE, "offer rejected by webrtcbin");
        return;
    }
    GstPromise *np = gst_promise_new_with_change_func(on_answer_created, member_ref(mm),
                                                      (GDestroyNotify)member_unref);
    g_signal_emit_by_name(mm->wb, "create-answer", NULL, np);
    gst_promise_unref(np); /* the signal takes its own reference */
}

static void on_remote_set(GstPromise *p, gpointer ud)
{
    post(ud, remote_set, gst_promise_ref(p), (GDestroyNotify)gst_promise_unref);
}

/* The first payload type of `encoding` (case-insensitive, "VP8", "opus") in an m-line, or -1. */
static int find_pt(const GstSDPMedia *md, const char *encoding)
{
    size_t n = strlen(encoding);
    for (guint i = 0;; i++) {
        const char *v = gst_sdp_media_get_attribute_val_n(md, "rtpmap", i);
        if (!v) return -1;
        char *end;
        long pt = strtol(v, &end, 10);
        while (*end == ' ')
            end++;
        if (end != v && g_ascii_strncasecmp(end, encoding, n) == 0 && end[n] == '/') return (int)pt;
    }
}

/* A member without video still gets the offer's video m-line answered, as inactive: an inactive
 * transceiver whose caps match the offer's first video format, added before the offer is set
 * (webrtcbin would otherwise make a recvonly one of its own). */
static void add_inactive_video(GstElement *wb, const GstSDPMessage *offer)
{
    for (guint i = 0; i < gst_sdp_message_medias_len(offer); i++) {
        const GstSDPMedia *md = gst_sdp_message_get_media(offer, i);
        if (strcmp(gst_sdp_media_get_media(md), "video") != 0 || gst_sdp_media_formats_len(md) == 0)
            continue;
        int pt = atoi(gst_sdp_media_get_format(md, 0));
        GstCaps *caps = gst_caps_new_empty_simple("application/x-rtp");
        if (gst_sdp_media_get_caps_from_media(md, pt)) {
            gst_caps_unref(caps);
            caps = gst_sdp_media_get_caps_from_media(md, pt);
            GstStructure *st = gst_caps_get_structure(caps, 0);
            gst_structure_set_name(st, "application/x-rtp");
            gst_structure_set(st, "media", G_TYPE_STRING, "video", NULL);
        }
        GstWebRTCRTPTransceiver *t = NULL;
        g_signal_emit_by_name(wb, "add-transceiver", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_INACTIVE,
                              caps, &t);
        gst_caps_unref(caps);
        if (t) gst_object_unref(t);
        return; /* one video m-line is what we answer; others get webrtcbin's default */
    }
}

/* Main context, polled: the offer is set once our send pads have caps. webrtcbin writes a=ssrc
 * (and msid) into the answer only from the caps its sink pads have received; Chrome ignored an
 * audio stream whose SSRC the answer did not announce (seen in about every other run). */
static gboolean wait_send_caps(gpointer data)
{
    struct member *mm = data;
    if (mm->removing || mm->answered) {
        mm->caps_timer = 0;
        return G_SOURCE_REMOVE;
    }
    bool ready = true;
    for (int i = 0; i < 2; i++)
        if (mm->send_pads[i] && !gst_pad_has_current_caps(mm->send_pads[i])) ready = false;
    mm->caps_waited_ms += CAPS_POLL_MS;
    if (!ready && mm->caps_waited_ms < CAPS_WAIT_MAX_MS) return G_SOURCE_CONTINUE;
    if (!ready)
        LOG(LOG_WARN, SUB, "room=%s member=%u msg=\"send caps late, answering without them\"",
            mm->room_name, mm->id);
    mm->caps_timer = 0;
    GstWebRTCSessionDescription *desc =
        gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_OFFER, mm->offer); /* takes it */
    mm->offer = NULL;
    GstPromise *p = gst_promise_new_with_change_func(on_remote_set, member_ref(mm),
                                                     (GDestroyNotify)member_unref);
    g_signal_emit_by_name(mm->wb, "set-remote-description", desc, p);
    gst_promise_unref(p); /* the signal takes its own reference */
    gst_webrtc_session_description_free(desc);
    return G_SOURCE_REMOVE;
}

/* ---- member_add -------------------------------------------------------------------------------
 */

/* The member's mix-minus: silence + everyone else → opusenc → its webrtcbin. */
static void build_audio_out(struct member *mm, GstPad *wb_sink)
{
    struct room *r = mm->r;
    GstElement *silence = member_make(mm, "audiotestsrc");
    gst_util_set_object_arg(G_OBJECT(silence), "wave", "silence");
    g_object_set(silence, "is-live", TRUE, "samplesperbuffer", 960, NULL);
    GstElement *scaps = capsfilter(mm, audio_raw_caps());
    mm->amix = member_make(mm, "audiomixer");
    g_object_set(mm->amix, "latency", (guint64)opts.mix_latency, NULL);
    GstElement *mcaps = capsfilter(mm, audio_raw_caps());
    mm->deaf_vol = member_make(mm, "volume");
    g_object_set(mm->deaf_vol, "mute", (gboolean)conf_member_info(mm->m)->deaf, NULL);
    GstElement *q = member_make(mm, "queue");
    GstElement *enc = member_make(mm, "opusenc");
    g_object_set(enc, "bitrate", r->audio_kbps * 1000, NULL);
    gst_util_set_object_arg(G_OBJECT(enc), "frame-size", "20");
    GstElement *pay = member_make(mm, "rtpopuspay");
    g_object_set(pay, "pt", (guint)mm->opus_pt, NULL);
    GstElement *rcaps = capsfilter(
        mm, gst_caps_new_simple("application/x-rtp", "media", G_TYPE_STRING, "audio",
                                "encoding-name", G_TYPE_STRING, "OPUS", "clock-rate", G_TYPE_INT,
                                48000, "payload", G_TYPE_INT, mm->opus_pt, NULL));
    GstElement *outq = member_make(mm, "queue");
    g_object_set(outq, "leaky", 2, NULL); /* webrtcbin blocks its sink pads until negotiated */
    link_static(silence, scaps, "silence-caps", mm);
    GstPad *fill = gst_element_request_pad_simple(mm->amix, "sink_%u");
    GstPad *ssrc = gst_element_get_static_pad(scaps, "src");
    link_pads(ssrc, fill, "silence-mix", mm);
    gst_object_unref(ssrc);
    gst_object_unref(fill); /* the mixer keeps it; it goes with the mixer */
    link_static(mm->amix, mcaps, "amix-caps", mm);
    link_static(mcaps, mm->deaf_vol, "amix-deaf", mm);
    link_static(mm->deaf_vol, q, "adeaf-queue", mm);
    link_static(q, enc, "aqueue-enc", mm);
    link_static(enc, pay, "aenc-pay", mm);
    link_static(pay, rcaps, "apay-caps", mm);
    link_static(rcaps, outq, "acaps-queue", mm);
    GstPad *qsrc = gst_element_get_static_pad(outq, "src");
    link_pads(qsrc, wb_sink, "aout-webrtcbin", mm);
    gst_pad_add_probe(qsrc, GST_PAD_PROBE_TYPE_BUFFER, count_tx_cb, &mm->tx_audio, NULL);
    gst_object_unref(qsrc);
}

/* The shared canvas → this member: a leaky queue and its own payloader (its PT). The tee pad is
 * linked by the caller once the branch is synced. */
static GstElement *build_video_out(struct member *mm, GstPad *wb_sink)
{
    mm->vqueue = member_make(mm, "queue");
    g_object_set(mm->vqueue, "leaky", 2, "max-size-buffers", 30, "max-size-bytes", 0,
                 "max-size-time", (guint64)0, NULL);
    mm->bridge_src = member_make(mm, "appsrc");
    g_object_set(mm->bridge_src, "is-live", TRUE, "do-timestamp", FALSE, "block", FALSE,
                 "max-bytes", (guint64)(2 * 1024 * 1024), NULL);
    gst_util_set_object_arg(G_OBJECT(mm->bridge_src), "format", "time");
    gst_util_set_object_arg(G_OBJECT(mm->bridge_src), "leaky-type", "downstream");
    GstPad *bsrc = gst_element_get_static_pad(mm->bridge_src, "src");
    gst_pad_add_probe(bsrc, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, bridge_upstream_cb, member_ref(mm),
                      (GDestroyNotify)member_unref);
    mm->vsel = member_make(mm, "input-selector");
    g_object_set(mm->vsel, "sync-streams", FALSE, "cache-buffers", FALSE, NULL);
    mm->sel_mix = gst_element_request_pad_simple(mm->vsel, "sink_%u");
    mm->sel_bridge = gst_element_request_pad_simple(mm->vsel, "sink_%u");
    GstPad *qsrc = gst_element_get_static_pad(mm->vqueue, "src");
    link_pads(qsrc, mm->sel_mix, "vqueue-sel", mm);
    link_pads(bsrc, mm->sel_bridge, "vbridge-sel", mm);
    gst_object_unref(qsrc);
    gst_object_unref(bsrc);
    g_object_set(mm->vsel, "active-pad", mm->sel_mix, NULL);
    GstElement *pay = member_make(mm, "rtpvp8pay");
    g_object_set(pay, "pt", (guint)mm->vp8_pt, "mtu", 1200, NULL);
    gst_util_set_object_arg(G_OBJECT(pay), "picture-id-mode", "15-bit");
    GstElement *rcaps = capsfilter(
        mm, gst_caps_new_simple("application/x-rtp", "media", G_TYPE_STRING, "video",
                                "encoding-name", G_TYPE_STRING, "VP8", "clock-rate", G_TYPE_INT,
                                90000, "payload", G_TYPE_INT, mm->vp8_pt, NULL));
    link_static(mm->vsel, pay, "vsel-pay", mm);
    link_static(pay, rcaps, "vpay-caps", mm);
    GstPad *csrc = gst_element_get_static_pad(rcaps, "src");
    link_pads(csrc, wb_sink, "vout-webrtcbin", mm);
    gst_pad_add_probe(csrc, GST_PAD_PROBE_TYPE_BUFFER, count_tx_cb, &mm->tx_video, NULL);
    gst_object_unref(csrc);
    return mm->vqueue;
}

static struct member *find_member(struct room *r, struct conf_member *m)
{
    for (GList *l = r->members; l; l = l->next) {
        struct member *mm = l->data;
        if (mm->m == m) return mm;
    }
    return NULL;
}

static void mixer_member_add(void *media, struct conf_member *m, const char *offer_sdp,
                             void (*done)(struct conf_member *m, const char *answer_sdp,
                                          const GError *error, void *ud),
                             void *ud)
{
    struct room *r = media;
    struct member *mm = xcalloc(1, sizeof *mm);
    mm->refs = 1; /* the room's list */
    mm->ctx = g_main_context_ref(r->ctx);
    mm->r = r;
    mm->m = m;
    mm->id = conf_member_info(m)->id;
    g_strlcpy(mm->room_name, r->name, sizeof mm->room_name);
    mm->done = done;
    mm->done_ud = ud;
    mm->elements = g_ptr_array_new();
    mm->opus_pt = mm->vp8_pt = -1;
    r->members = g_list_append(r->members, mm);

    GstSDPMessage *offer = NULL;
    if (gst_sdp_message_new_from_text(offer_sdp, &offer) != GST_SDP_OK ||
        gst_sdp_message_medias_len(offer) == 0) {
        if (offer) gst_sdp_message_free(offer);
        fail_join_later(mm, MIXER_ERROR_NOT_ACCEPTABLE, "unparsable offer");
        return;
    }
    for (guint i = 0; i < gst_sdp_message_medias_len(offer); i++) {
        const GstSDPMedia *md = gst_sdp_message_get_media(offer, i);
        if (strcmp(gst_sdp_media_get_media(md), "audio") == 0 && mm->opus_pt < 0)
            mm->opus_pt = find_pt(md, "opus");
        else if (strcmp(gst_sdp_media_get_media(md), "video") == 0 && mm->vp8_pt < 0)
            mm->vp8_pt = find_pt(md, "VP8");
    }
    if (mm->opus_pt < 0) {
        gst_sdp_message_free(offer);
        fail_join_later(mm, MIXER_ERROR_NOT_ACCEPTABLE, "no opus in the offer");
        return;
    }
    mm->video = r->video && mm->vp8_pt >= 0;

    mm->wb = member_make(mm, "webrtcbin");
    gst_util_set_object_arg(G_OBJECT(mm->wb), "bundle-policy", "max-bundle");
    g_object_set(mm->wb, "latency", (guint)opts.jitter_ms, NULL);
    GstWebRTCICE *ice = NULL;
    g_object_get(mm->wb, "ice-agent", &ice, NULL);
    if (ice) {
        gboolean ok = FALSE;
        g_signal_emit_by_name(ice, "add-local-ip-address", opts.local_ip, &ok);
        if (!ok)
            LOG(LOG_WARN, SUB, "room=%s member=%u msg=\"add-local-ip-address failed\" ip=%s",
                r->name, mm->id, opts.local_ip);
        g_object_set(ice, "ice-tcp", FALSE, NULL);
        if (opts.min_port > 0 && opts.max_port >= opts.min_port)
            g_object_set(ice, "min-rtp-port", (guint)opts.min_port, "max-rtp-port",
                         (guint)opts.max_port, NULL);
        gst_object_unref(ice);
    }
    g_signal_connect_data(mm->wb, "pad-added", G_CALLBACK(on_pad_added), member_ref(mm),
                          member_closure_unref, 0);
    g_signal_connect_data(mm->wb, "notify::ice-gathering-state", G_CALLBACK(on_gathering_notify),
                          member_ref(mm), member_closure_unref, 0);
    g_signal_connect_data(mm->wb, "notify::connection-state", G_CALLBACK(on_state_notify),
                          member_ref(mm), member_closure_unref, 0);
    g_signal_connect_data(mm->wb, "notify::ice-connection-state", G_CALLBACK(on_state_notify),
                          member_ref(mm), member_closure_unref, 0);

    /* Send pads first: webrtcbin matches them to the offer's m-lines by kind (the notes, 3.2.6). */
    mm->send_pads[0] = gst_element_request_pad_simple(mm->wb, "sink_%u");
    build_audio_out(mm, mm->send_pads[0]);
    if (mm->video) {
        mm->send_pads[1] = gst_element_request_pad_simple(mm->wb, "sink_%u");
        build_video_out(mm, mm->send_pads[1]);
    }
    if (!mm->video) add_inactive_video(mm->wb, offer);
    /* webrtcbin (made first) is the sink of both out branches: it plays before them. */
    gst_element_sync_state_with_parent(mm->wb);
    sync_downstream_first(mm->elements, 1);
    if (mm->video) {
        mm->vtee_pad = gst_element_request_pad_simple(r->vtee, "src_%u");
        GstPad *qsink = gst_element_get_static_pad(mm->vqueue, "sink");
        link_pads(mm->vtee_pad, qsink, "vtee-queue", mm);
        gst_object_unref(qsink);
        request_keyframe(r);
    }
    for (GList *l = r->members; l; l = l->next) { /* everyone else's voice into my mix */
        struct member *o = l->data;
        if (o != mm && o->atee) audio_link(r, o, mm, mm->amix);
    }

    mm->answer_timer = member_timeout(mm, ANSWER_TIMEOUT_S, answer_timeout);
    mm->offer = offer;
    GSource *s = g_timeout_source_new(CAPS_POLL_MS);
    g_source_set_callback(s, wait_send_caps, member_ref(mm), (GDestroyNotify)member_unref);
    mm->caps_timer = g_source_attach(s, mm->ctx);
    g_source_unref(s);
    LOG(LOG_INFO, SUB, "room=%s member=%u msg=\"member added\" opus_pt=%d vp8_pt=%d video=%s",
        r->name, mm->id, mm->opus_pt, mm->vp8_pt, mm->video ? "true" : "false");
}

/* ---- removal ------------------------------------------------------------------------------------
 */

/* Main context, once every tee pad feeding the member is blocked (or the wait timed out). */
static void finish_remove(struct member *mm)
{
    struct room *r = mm->r;
    remove_source(mm, &mm->remove_timer);
    if (mm->vtee_pad) {
        GstPad *qsink = gst_element_get_static_pad(mm->vqueue, "sink");
        gst_pad_unlink(mm->vtee_pad, qsink);
        gst_object_unref(qsink);
        gst_element_release_request_pad(r->vtee, mm->vtee_pad);
        gst_object_unref(mm->vtee_pad);
        mm->vtee_pad = NULL;
    }
    for (GList *l = r->links, *next; l; l = next) {
        next = l->next;
        struct alink *al = l->data;
        if (al->from == mm || al->to == mm) audio_unlink(r, al);
    }
    /* Stop the member's own elements (webrtcbin first: no more input), then free its canvas pad. */
    for (guint i = 0; i < mm->elements->len; i++)
        gst_element_set_state(g_ptr_array_index(mm->elements, i), GST_STATE_NULL);
    if (mm->comp_pad) {
        GstPad *peer = gst_pad_get_peer(mm->comp_pad);
        if (peer) {
            gst_pad_unlink(peer, mm->comp_pad);
            gst_object_unref(peer);
        }
        gst_element_release_request_pad(r->comp, mm->comp_pad);
        gst_object_unref(mm->comp_pad);
        mm->comp_pad = NULL;
    }
    for (guint i = 0; i < mm->elements->len; i++)
        gst_bin_remove(GST_BIN(r->pipeline), g_ptr_array_index(mm->elements, i));
    g_ptr_array_set_size(mm->elements, 0);
    mm->wb = NULL;
    mm->vdepay = mm->dec_valve = mm->vsel = mm->bridge_src = NULL;
    if (mm->sel_mix) gst_object_unref(mm->sel_mix);
    if (mm->sel_bridge) gst_object_unref(mm->sel_bridge);
    mm->sel_mix = mm->sel_bridge = NULL;
    set_peer(r, mm, NULL);
    LOG(LOG_INFO, SUB, "room=%s member=%u msg=\"member removed\"", r->name, mm->id);
    relayout(r);
    r->leaving = g_list_remove(r->leaving, mm);
    mm->gone = true;
    member_unref(mm); /* the room's list reference */
}

static void probe_fired(struct member *mm, gpointer arg)
{
    if (mm->pending_probes > 0 && --mm->pending_probes == 0) finish_remove(mm);
}

struct idle_probe {
    struct member *mm;
    gint fired;
};

static void idle_probe_free(gpointer data)
{
    struct idle_probe *ip = data;
    member_unref(ip->mm);
    xfree(ip);
}

/* Streaming (or calling) thread: the tee pad is idle and stays blocked; tell the main context. */
static GstPadProbeReturn idle_cb(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    struct idle_probe *ip = ud;
    if (g_atomic_int_compare_and_exchange(&ip->fired, 0, 1)) post(ip->mm, probe_fired, NULL, NULL);
    return GST_PAD_PROBE_OK;
}

static void block_tee_pad(struct member *mm, GstPad *pad)
{
    struct idle_probe *ip = xcalloc(1, sizeof *ip);
    ip->mm = member_ref(mm);
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_IDLE, idle_cb, ip, idle_probe_free);
}

static gboolean remove_timeout(gpointer data)
{
    struct member *mm = data;
    mm->remove_timer = 0;
    if (mm->pending_probes > 0) {
        LOG(LOG_WARN, SUB, "room=%s member=%u msg=\"tee pads never idle, removing anyway\"",
            mm->room_name, mm->id);
        mm->pending_probes = 0;
        finish_remove(mm);
    }
    return G_SOURCE_REMOVE;
}

/* Main context: takes the member out of the room: blocks the tee pads that feed it, and finishes
 * when they are all blocked. Nothing is reported for it any more. */
static void member_teardown(struct member *mm)
{
    struct room *r = mm->r;
    if (mm->removing) return;
    mm->removing = true;
    r->members = g_list_remove(r->members, mm);
    r->leaving = g_list_append(r->leaving, mm);
    if (mm->peer || r->bridged) set_peer(r, mm, NULL);
    update_bridge(r);
    remove_source(mm, &mm->answer_timer);
    remove_source(mm, &mm->connect_timer);
    remove_source(mm, &mm->media_timer);
    remove_source(mm, &mm->caps_timer);
    GPtrArray *pads = g_ptr_array_new();
    if (mm->vtee_pad) g_ptr_array_add(pads, mm->vtee_pad);
    for (GList *l = r->links; l; l = l->next) {
        struct alink *al = l->data;
        if (al->to == mm) g_ptr_array_add(pads, al->tee_pad);
    }
    mm->pending_probes = (int)pads->len;
    if (pads->len == 0) {
        g_ptr_array_unref(pads);
        finish_remove(mm);
        return;
    }
    GSource *s = g_timeout_source_new(REMOVE_TIMEOUT_MS);
    g_source_set_callback(s, remove_timeout, member_ref(mm), (GDestroyNotify)member_unref);
    mm->remove_timer = g_source_attach(s, mm->ctx);
    g_source_unref(s);
    for (guint i = 0; i < pads->len; i++)
        block_tee_pad(mm, g_ptr_array_index(pads, i));
    g_ptr_array_unref(pads);
}

static void mixer_member_remove(void *media, struct conf_member *m)
{
    struct member *mm = find_member(media, m);
    if (mm) member_teardown(mm);
}

static void mixer_member_update(void *media, struct conf_member *m)
{
    struct room *r = media;
    struct member *mm = find_member(r, m);
    if (!mm) return;
    const struct conf_member_info *info = conf_member_info(m);
    if (mm->mute_vol) g_object_set(mm->mute_vol, "mute", (gboolean)info->mute, NULL);
    if (mm->deaf_vol) g_object_set(mm->deaf_vol, "mute", (gboolean)info->deaf, NULL);
    relayout(r); /* vmute */
    LOG(LOG_INFO, SUB, "room=%s member=%u msg=\"member updated\" mute=%d deaf=%d vmute=%d", r->name,
        mm->id, info->mute, info->deaf, info->vmute);
}

static void mixer_set_layout(void *media, enum conf_layout layout, uint32_t floor_member_id)
{
    struct room *r = media;
    r->layout = layout;
    r->floor_id = floor_member_id;
    relayout(r);
}

/* ---- talking ----------------------------------------------------------------------------------
 */

static void on_level(struct room *r, struct member *mm, const GstStructure *s)
{
    const GValue *v = gst_structure_get_value(s, "rms");
    if (!v || mm->removing) return;
    double sum = 0;
    guint n = 0;
    G_GNUC_BEGIN_IGNORE_DEPRECATIONS /* level's "rms" is a GValueArray in 1.22 */
        if (strcmp(G_VALUE_TYPE_NAME(v), "GValueArray") == 0)
    {
        GValueArray *arr = g_value_get_boxed(v);
        for (; arr && n < arr->n_values; n++)
            sum += g_value_get_double(g_value_array_get_nth(arr, n));
    }
    else if (GST_VALUE_HOLDS_ARRAY(v))
    {
        for (; n < gst_value_array_get_size(v); n++)
            sum += g_value_get_double(gst_value_array_get_value(v, n));
    }
    G_GNUC_END_IGNORE_DEPRECATIONS
    if (n == 0) return;
    double db = sum / n; /* -inf .. 0 */
    int energy = db <= -60 ? 0 : db >= 0 ? 100 : (int)lround((db + 60) * 100 / 60);
    mm->energy = energy;
    if (energy >= TALK_START_DB_LEVEL) {
        mm->below_ms = 0;
        mm->above_ms += LEVEL_INTERVAL_MS;
        if (!mm->talking && mm->above_ms >= TALK_START_MS) {
            mm->talking = true;
            conf_report_talking(mm->m, true, energy);
        }
    } else {
        mm->above_ms = 0;
        mm->below_ms += LEVEL_INTERVAL_MS;
        if (mm->talking && mm->below_ms >= TALK_STOP_MS) {
            mm->talking = false;
            conf_report_talking(mm->m, false, energy);
        }
    }
}

/* ---- the bus ------------------------------------------------------------------------------------
 */

static struct member *owner_of(struct room *r, GstObject *src)
{
    for (GList *l = r->members; l; l = l->next) {
        struct member *mm = l->data;
        for (guint i = 0; i < mm->elements->len; i++) {
            GstObject *e = g_ptr_array_index(mm->elements, i);
            if (src == e || gst_object_has_as_ancestor(src, e)) return mm;
        }
    }
    return NULL;
}

/* Every 5 s: what each member sent and received (RTP buffers) at debug level, and a warning
 * (once per member) for a connected member that is sent no audio at all. */
static gboolean log_stats(gpointer data)
{
    struct room *r = data;
    int late = g_atomic_int_get(&r->canvas_late);
    if (late != r->canvas_late_logged) {
        LOG(LOG_WARN, SUB, "room=%s msg=\"canvas ran late, skipping frames to catch up\" late=%d",
            r->name, late - r->canvas_late_logged);
        r->canvas_late_logged = late;
    }
    for (GList *l = r->members; l; l = l->next) {
        struct member *mm = l->data;
        int rx = g_atomic_int_get(&mm->rx_buffers), ta = g_atomic_int_get(&mm->tx_audio);
        LOG(LOG_DEBUG, SUB, "room=%s member=%u msg=\"rtp\" rx=%d tx_audio=%d tx_video=%d", r->name,
            mm->id, rx, ta, g_atomic_int_get(&mm->tx_video));
        if (mm->connected && ta == 0 && !mm->warned_no_tx) {
            mm->warned_no_tx = true;
            LOG(LOG_WARN, SUB, "room=%s member=%u msg=\"connected but no audio sent to it\" rx=%d",
                r->name, mm->id, rx);
        }
    }
    return G_SOURCE_CONTINUE;
}

static gboolean on_bus(GstBus *bus, GstMessage *msg, gpointer data)
{
    struct room *r = data;
    switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_LATENCY: gst_bin_recalculate_latency(GST_BIN(r->pipeline)); break;
    case GST_MESSAGE_ELEMENT: {
        const GstStructure *s = gst_message_get_structure(msg);
        if (s && gst_structure_has_name(s, "level")) {
            for (GList *l = r->members; l; l = l->next) {
                struct member *mm = l->data;
                if (GST_MESSAGE_SRC(msg) == GST_OBJECT(mm->level)) on_level(r, mm, s);
            }
        }
        break;
    }
    case GST_MESSAGE_ERROR: {
        GError *e = NULL;
        gchar *dbg = NULL;
        gst_message_parse_error(msg, &e, &dbg);
        struct member *mm = owner_of(r, GST_MESSAGE_SRC(msg));
        LOG(LOG_ERROR, SUB, "room=%s member=%u msg=\"pipeline error\" src=%s error=\"%s\"", r->name,
            mm ? mm->id : 0, GST_MESSAGE_SRC_NAME(msg), e ? e->message : "?");
        if (mm) report_failed(mm, e ? e->message : "media error");
        g_clear_error(&e);
        g_free(dbg);
        break;
    }
    case GST_MESSAGE_WARNING: {
        GError *e = NULL;
        gst_message_parse_warning(msg, &e, NULL);
        LOG_RATELIMITED(LOG_DEBUG, SUB, "room=%s msg=\"pipeline warning\" src=%s warning=\"%s\"",
                        r->name, GST_MESSAGE_SRC_NAME(msg), e ? e->message : "?");
        g_clear_error(&e);
        break;
    }
    default: break;
    }
    return G_SOURCE_CONTINUE;
}

/* ---- taps ---------------------------------------------------------------------------------------
 */

GstClockTime mixer_running_time(void *media)
{
    struct room *r = media;
    GstClock *clock = gst_element_get_clock(r->pipeline);
    if (!clock) return GST_CLOCK_TIME_NONE;
    GstClockTime now = gst_clock_get_time(clock);
    gst_object_unref(clock);
    GstClockTime base = gst_element_get_base_time(r->pipeline);
    return now > base ? now - base : 0;
}

/* Streaming thread of a tap appsink: the sample to every open tap. */
static GstFlowReturn on_tap_sample(GstElement *sink, gpointer ud, bool video)
{
    struct room *r = ud;
    GstSample *sample = NULL;
    g_signal_emit_by_name(sink, "pull-sample", &sample);
    if (!sample) return GST_FLOW_OK;
    g_mutex_lock(&r->tap_lock);
    for (GList *l = r->taps; l; l = l->next) {
        struct mixer_tap *t = l->data;
        if (video && t->ops->video) t->ops->video(t->ud, sample);
        if (!video && t->ops->audio) t->ops->audio(t->ud, sample);
    }
    g_mutex_unlock(&r->tap_lock);
    gst_sample_unref(sample);
    return GST_FLOW_OK;
}

static GstFlowReturn on_tap_video(GstElement *sink, gpointer ud)
{
    return on_tap_sample(sink, ud, true);
}

static GstFlowReturn on_tap_audio(GstElement *sink, gpointer ud)
{
    return on_tap_sample(sink, ud, false);
}

static GstElement *tap_make(struct room *r, const char *factory)
{
    GstElement *e = make(factory);
    gst_bin_add(GST_BIN(r->pipeline), e);
    g_ptr_array_add(r->tap_elements, e);
    return e;
}

/* A queue that drops the oldest second rather than hold up the room's encoders, then an appsink
 * that hands every buffer to the taps at once. */
static GstElement *tap_sink(struct room *r, GCallback on_sample)
{
    GstElement *q = tap_make(r, "queue");
    g_object_set(q, "leaky", 2, "max-size-buffers", 0, "max-size-bytes", 0, "max-size-time",
                 (guint64)GST_SECOND, NULL);
    GstElement *sink = tap_make(r, "appsink");
    g_object_set(sink, "sync", FALSE, "async", FALSE, "emit-signals", TRUE, "max-buffers", 64u,
                 "drop", TRUE, NULL);
    g_signal_connect(sink, "new-sample", on_sample, r);
    gst_element_link(q, sink);
    return q;
}

/* Main context: the taps' branches. Video: vtee -> queue -> appsink. Audio: silence + every
 * member's decoded audio -> audiomixer -> opusenc -> queue -> appsink. */
static void build_taps(struct room *r)
{
    r->tap_elements = g_ptr_array_new();
    GstElement *vq = r->video ? tap_sink(r, G_CALLBACK(on_tap_video)) : NULL;
    GstElement *silence = tap_make(r, "audiotestsrc");
    gst_util_set_object_arg(G_OBJECT(silence), "wave", "silence");
    g_object_set(silence, "is-live", TRUE, "samplesperbuffer", 960, NULL);
    GstElement *scaps = tap_make(r, "capsfilter");
    GstCaps *raw = audio_raw_caps();
    g_object_set(scaps, "caps", raw, NULL);
    r->tap_amix = tap_make(r, "audiomixer");
    g_object_set(r->tap_amix, "latency", (guint64)opts.mix_latency, NULL);
    /* The mixer's output starts at its first input's running time. By default (zero) an
     * audiomixer made in a running pipeline stamps its output from 0 and bursts everything up to
     * now through the encoder (measured: a 31 s old room's recording got no audio in its first
     * 2.5 s under ASan); `set` with start-time did the same in 1.22, `first` does not. */
    gst_util_set_object_arg(G_OBJECT(r->tap_amix), "start-time-selection", "first");
    GstElement *mcaps = tap_make(r, "capsfilter");
    g_object_set(mcaps, "caps", raw, NULL);
    gst_caps_unref(raw);
    GstElement *q = tap_make(r, "queue");
    GstElement *enc = tap_make(r, "opusenc");
    g_object_set(enc, "bitrate", (r->audio_kbps > 64 ? r->audio_kbps : 64) * 1000, NULL);
    gst_util_set_object_arg(G_OBJECT(enc), "frame-size", "20");
    GstElement *aq = tap_sink(r, G_CALLBACK(on_tap_audio));
    GstPad *fill = gst_element_request_pad_simple(r->tap_amix, "sink_%u");
    GstPad *ssrc = gst_element_get_static_pad(scaps, "src");
    bool ok = gst_element_link(silence, scaps) && gst_pad_link(ssrc, fill) == GST_PAD_LINK_OK &&
              gst_element_link_many(r->tap_amix, mcaps, q, enc, aq, NULL);
    gst_object_unref(ssrc);
    gst_object_unref(fill);
    if (!ok) LOG(LOG_ERROR, SUB, "room=%s msg=\"cannot link the taps' audio mix\"", r->name);
    sync_downstream_first(r->tap_elements, 0);
    for (GList *l = r->members; l; l = l->next) {
        struct member *mm = l->data;
        if (mm->atee) audio_link(r, mm, NULL, r->tap_amix);
    }
    if (vq) {
        r->vtap_pad = gst_element_request_pad_simple(r->vtee, "src_%u");
        GstPad *qsink = gst_element_get_static_pad(vq, "sink");
        if (gst_pad_link(r->vtap_pad, qsink) != GST_PAD_LINK_OK)
            LOG(LOG_ERROR, SUB, "room=%s msg=\"cannot link the video tap\"", r->name);
        gst_object_unref(qsink);
    }
    LOG(LOG_INFO, SUB, "room=%s msg=\"taps built\" video=%s", r->name, r->video ? "true" : "false");
}

/* Main context: the branches go, as a leaving member's do (the tee pads unlinked while live). */
static void drop_taps(struct room *r)
{
    if (r->vtap_pad) {
        GstPad *peer = gst_pad_get_peer(r->vtap_pad);
        if (peer) {
            gst_pad_unlink(r->vtap_pad, peer);
            gst_object_unref(peer);
        }
        gst_element_release_request_pad(r->vtee, r->vtap_pad);
        gst_object_unref(r->vtap_pad);
        r->vtap_pad = NULL;
    }
    for (GList *l = r->links, *next; l; l = next) {
        next = l->next;
        struct alink *al = l->data;
        if (al->mixer == r->tap_amix) audio_unlink(r, al);
    }
    for (guint i = 0; i < r->tap_elements->len; i++)
        gst_element_set_state(g_ptr_array_index(r->tap_elements, i), GST_STATE_NULL);
    for (guint i = 0; i < r->tap_elements->len; i++)
        gst_bin_remove(GST_BIN(r->pipeline), g_ptr_array_index(r->tap_elements, i));
    g_ptr_array_unref(r->tap_elements);
    r->tap_elements = NULL;
    r->tap_amix = NULL;
    LOG(LOG_INFO, SUB, "room=%s msg=\"taps dropped\"", r->name);
}

struct mixer_tap *mixer_tap_open(void *media, const struct mixer_tap_ops *ops, void *ud)
{
    struct room *r = media;
    struct mixer_tap *t = xcalloc(1, sizeof *t);
    t->ops = ops;
    t->ud = ud;
    if (!r->tap_elements) build_taps(r);
    g_mutex_lock(&r->tap_lock);
    r->taps = g_list_append(r->taps, t);
    g_mutex_unlock(&r->tap_lock);
    update_bridge(r); /* a room of two mixes its canvas while a tap is open */
    request_keyframe(r);
    return t;
}

void mixer_tap_close(void *media, struct mixer_tap *t)
{
    struct room *r = media;
    if (!t) return;
    g_mutex_lock(&r->tap_lock);
    r->taps = g_list_remove(r->taps, t);
    g_mutex_unlock(&r->tap_lock);
    xfree(t);
    if (!r->taps && r->tap_elements) {
        drop_taps(r);
        update_bridge(r);
    }
}

bool mixer_has_video(void *media)
{
    return ((struct room *)media)->video;
}

void mixer_request_keyframe(void *media)
{
    request_keyframe(media);
}

/* ---- rooms --------------------------------------------------------------------------------------
 */

static const char *const needed[] = {
    "webrtcbin",      "rtpopuspay",   "rtpopusdepay", "opusenc",       "opusdec",
    "audiomixer",     "audiotestsrc", "audioconvert", "audioresample", "level",
    "volume",         "tee",          "queue",        "capsfilter",    "fakesink",
    "compositor",     "videotestsrc", "videoconvert", "vp8enc",        "vp8dec",
    "rtpvp8pay",      "rtpvp8depay",  "valve",        "appsrc",        "appsink",
    "input-selector",
};

/* Compositor's streaming thread: the canvas must follow the clock. The compositor times its
 * output by running time, one frame after the other; once it runs late (a CPU stall, a 2-core
 * machine under load) it would compose every missed frame in turn, never catching up, showing
 * each member's picture of `lag` ago (the queues in front drop the newer ones): the canvas kept
 * running while its tiles were 1-5 s old and updated 4-8 times a second. Nothing downstream
 * syncs (see on_deep_element_added), so nobody sends QoS: when an output frame is later than the
 * compositor's own latency plus one frame, tell it, as a sink would, and it skips (does not
 * compose) the frames that are already due until it is back on time. */
static GstPadProbeReturn canvas_qos_cb(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    struct room *r = ud;
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    GstClockTime pts = GST_BUFFER_PTS(buf);
    GstElement *comp = GST_ELEMENT(GST_OBJECT_PARENT(pad));
    GstClock *clock = comp ? gst_element_get_clock(comp) : NULL;
    if (!clock || !GST_CLOCK_TIME_IS_VALID(pts)) {
        if (clock) gst_object_unref(clock);
        return GST_PAD_PROBE_OK;
    }
    GstClockTime now = gst_clock_get_time(clock) - gst_element_get_base_time(comp);
    gst_object_unref(clock);
    GstEvent *seg_ev = gst_pad_get_sticky_event(pad, GST_EVENT_SEGMENT, 0);
    GstClockTime rt = pts;
    if (seg_ev) {
        const GstSegment *seg;
        gst_event_parse_segment(seg_ev, &seg);
        rt = gst_segment_to_running_time(seg, GST_FORMAT_TIME, pts);
        gst_event_unref(seg_ev);
    }
    GstClockTime lat = gst_aggregator_get_latency(GST_AGGREGATOR(comp));
    GstClockTime frame = GST_SECOND / (GstClockTime)r->fps;
    if (!GST_CLOCK_TIME_IS_VALID(rt) || !GST_CLOCK_TIME_IS_VALID(lat) || now <= rt + lat + frame)
        return GST_PAD_PROBE_OK;
    GstClockTimeDiff late = GST_CLOCK_DIFF(rt, now);
    g_atomic_int_inc(&r->canvas_late);
    gst_pad_send_event(pad, gst_event_new_qos(GST_QOS_TYPE_UNDERFLOW, 1.0, late, rt));
    return GST_PAD_PROBE_OK;
}

static void *mixer_room_new(struct conf_room *room, const struct conf_profile *p, GError **error)
{
    for (size_t i = 0; i < G_N_ELEMENTS(needed); i++) {
        GstElementFactory *f = gst_element_factory_find(needed[i]);
        if (!f) {
            g_set_error(error, MIXER_ERROR, MIXER_ERROR_MEDIA, "GStreamer element %s missing",
                        needed[i]);
            return NULL;
        }
        gst_object_unref(f);
    }
    struct room *r = xcalloc(1, sizeof *r);
    r->room = room;
    g_strlcpy(r->name, conf_room_name(room), sizeof r->name);
    r->ctx = g_main_context_ref_thread_default();
    r->video = p->video;
    r->width = p->width > 0 ? p->width : 640;
    r->height = p->height > 0 ? p->height : 480;
    r->fps = p->fps > 0 ? p->fps : 30;
    r->video_kbps = p->video_kbps > 0 ? p->video_kbps : 800;
    r->audio_kbps = p->audio_kbps > 0 ? p->audio_kbps : 32;
    r->layout = p->layout && strcmp(p->layout, "floor") == 0 ? CONF_LAYOUT_FLOOR : CONF_LAYOUT_GRID;
    r->pipeline = gst_pipeline_new(NULL);
    g_signal_connect(r->pipeline, "deep-element-added", G_CALLBACK(on_deep_element_added), NULL);
    g_mutex_init(&r->bridge_lock);
    g_mutex_init(&r->tap_lock);

    if (r->video) {
        GstBin *bin = GST_BIN(r->pipeline);
        GstElement *black = make("videotestsrc");
        gst_util_set_object_arg(G_OBJECT(black), "pattern", "black");
        g_object_set(black, "is-live", TRUE, NULL);
        GstCaps *raw = gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING, "I420", "width",
                                           G_TYPE_INT, r->width, "height", G_TYPE_INT, r->height,
                                           "framerate", GST_TYPE_FRACTION, r->fps, 1,
                                           "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, NULL);
        GstElement *bcaps = make("capsfilter");
        g_object_set(bcaps, "caps", raw, NULL);
        r->comp = make("compositor");
        gst_util_set_object_arg(G_OBJECT(r->comp), "background", "black");
        g_object_set(r->comp, "latency", (guint64)opts.mix_latency, NULL);
        GstElement *ccaps = make("capsfilter");
        g_object_set(ccaps, "caps", raw, NULL);
        gst_caps_unref(raw);
        GstElement *conv = make("videoconvert");
        GstElement *q = make("queue"); /* one frame, as in front of the compositor */
        g_object_set(q, "leaky", 2, "max-size-buffers", 1, "max-size-bytes", 0, "max-size-time",
                     (guint64)0, NULL);
        r->enc_valve = make("valve");
        r->venc = make("vp8enc");
        g_object_set(r->venc, "deadline", (gint64)1, "cpu-used", opts.vp8_cpu_used, "threads", 1,
                     "lag-in-frames", 0, "keyframe-max-dist", 2 * r->fps, "target-bitrate",
                     r->video_kbps * 1000, NULL);
        gst_util_set_object_arg(G_OBJECT(r->venc), "end-usage", "cbr");
        gst_util_set_object_arg(G_OBJECT(r->venc), "error-resilient", "partitions");
        r->vtee = make("tee");
        g_object_set(r->vtee, "allow-not-linked", TRUE, NULL);
        gst_bin_add_many(bin, black, bcaps, r->comp, ccaps, conv, q, r->enc_valve, r->venc, r->vtee,
                         NULL);
        GstPad *bsrc = gst_element_get_static_pad(bcaps, "src");
        GstPad *csrc = gst_element_get_static_pad(r->comp, "src");
        gst_pad_add_probe(csrc, GST_PAD_PROBE_TYPE_BUFFER, canvas_qos_cb, r, NULL);
        gst_object_unref(csrc);
        GstPad *c0 = gst_element_request_pad_simple(r->comp, "sink_%u");
        g_object_set(c0, "xpos", 0, "ypos", 0, "width", r->width, "height", r->height, "zorder", 0u,
                     NULL);
        bool ok =
            gst_element_link(black, bcaps) && gst_pad_link(bsrc, c0) == GST_PAD_LINK_OK &&
            gst_element_link_many(r->comp, ccaps, conv, q, r->enc_valve, r->venc, r->vtee, NULL);
        gst_object_unref(bsrc);
        gst_object_unref(c0); /* the filler's pad lives as long as the compositor */
        if (!ok) {
            g_set_error(error, MIXER_ERROR, MIXER_ERROR_MEDIA, "cannot link the video canvas");
            gst_object_unref(r->pipeline);
            g_main_context_unref(r->ctx);
            xfree(r);
            return NULL;
        }
    }
    GstBus *bus = gst_pipeline_get_bus(GST_PIPELINE(r->pipeline));
    GSource *s = gst_bus_create_watch(bus);
    g_source_set_callback(s, (GSourceFunc)(void (*)(void))on_bus, r, NULL);
    r->bus_watch = g_source_attach(s, r->ctx);
    g_source_unref(s);
    gst_object_unref(bus);
    if (gst_element_set_state(r->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
        g_set_error(error, MIXER_ERROR, MIXER_ERROR_MEDIA, "pipeline refused to play");
        GSource *w = g_main_context_find_source_by_id(r->ctx, r->bus_watch);
        if (w) g_source_destroy(w);
        gst_element_set_state(r->pipeline, GST_STATE_NULL);
        gst_object_unref(r->pipeline);
        g_main_context_unref(r->ctx);
        xfree(r);
        return NULL;
    }
    GSource *st = g_timeout_source_new_seconds(5);
    g_source_set_callback(st, log_stats, r, NULL);
    r->stats_timer = g_source_attach(st, r->ctx);
    g_source_unref(st);
    LOG(LOG_INFO, SUB, "room=%s msg=\"room created\" video=%s canvas=%dx%d@%d video_kbps=%d",
        r->name, r->video ? "true" : "false", r->width, r->height, r->fps, r->video_kbps);
    return r;
}

static void mixer_room_free(void *media)
{
    struct room *r = media;
    if (!r) return;
    GSource *w = g_main_context_find_source_by_id(r->ctx, r->bus_watch);
    if (w) g_source_destroy(w);
    w = g_main_context_find_source_by_id(r->ctx, r->stats_timer);
    if (w) g_source_destroy(w);
    gst_element_set_state(r->pipeline, GST_STATE_NULL);
    /* Members still in teardown (r->leaving) are finished here with the rest. */
    for (GList *l = r->links; l; l = l->next) {
        struct alink *al = l->data;
        gst_object_unref(al->tee_pad);
        gst_object_unref(al->mix_pad);
        xfree(al);
    }
    g_list_free(r->links);
    r->members = g_list_concat(r->members, r->leaving);
    r->leaving = NULL;
    for (GList *l = r->members; l; l = l->next) {
        struct member *mm = l->data;
        mm->removing = true;
        mm->gone = true;
        remove_source(mm, &mm->answer_timer);
        remove_source(mm, &mm->connect_timer);
        remove_source(mm, &mm->media_timer);
        remove_source(mm, &mm->remove_timer);
        remove_source(mm, &mm->caps_timer);
        if (mm->vtee_pad) gst_object_unref(mm->vtee_pad);
        if (mm->comp_pad) gst_object_unref(mm->comp_pad);
        if (mm->sel_mix) gst_object_unref(mm->sel_mix);
        if (mm->sel_bridge) gst_object_unref(mm->sel_bridge);
        mm->vtee_pad = mm->comp_pad = mm->sel_mix = mm->sel_bridge = NULL;
        set_peer(r, mm, NULL);
        member_unref(mm);
    }
    g_list_free(r->members);
    if (r->taps) LOG(LOG_WARN, SUB, "room=%s msg=\"room freed with taps open\"", r->name);
    g_list_free_full(r->taps, xfree);
    if (r->vtap_pad) gst_object_unref(r->vtap_pad);
    if (r->tap_elements) g_ptr_array_unref(r->tap_elements);
    gst_object_unref(r->pipeline);
    g_mutex_clear(&r->bridge_lock);
    g_mutex_clear(&r->tap_lock);
    LOG(LOG_INFO, SUB, "room=%s msg=\"room freed\"", r->name);
    g_main_context_unref(r->ctx);
    xfree(r);
}

static const struct conf_media_ops ops = {
    .room_new = mixer_room_new,
    .room_free = mixer_room_free,
    .member_add = mixer_member_add,
    .member_remove = mixer_member_remove,
    .member_update = mixer_member_update,
    .set_layout = mixer_set_layout,
};

const struct conf_media_ops *mixer_ops(void)
{
    return &ops;
}
