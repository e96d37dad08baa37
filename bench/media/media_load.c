/* media_load: the load generator of bench/media (see bench/README.md, "Media benchmark").
 *
 * One process plays N conference members against one server, all on one GStreamer pipeline:
 *
 *   videotestsrc(smpte, scrolling, 640x480@30, live) → [stamp painted] → vp8enc (once) → vtee
 *   audiotestsrc(sine, live) → opusenc (once) → atee
 *   per member: vtee/atee → queue(leaky) → rtpvp8pay / rtpopuspay → webrtcbin (its publisher)
 *
 * The video is encoded once and shared by every member (each has its own payloaders, so its own
 * SSRCs), which keeps the client cheap enough to run 8 members next to the server on 2 cores.
 *
 * --system ccomet: each member registers over SIP-over-WebSocket (RFC 7118, digest auth),
 *   INVITEs <dest> with its offer and gets the mixer's answer; the same webrtcbin receives the
 *   mixed canvas (decoded) and its mix-minus audio (counted, not decoded).
 * --system janus: each member creates a Janus session over the WebSocket API
 *   (janus-protocol), joins a VideoRoom as a publisher and publishes, then subscribes to every
 *   other member's feed with one subscriber handle (and webrtcbin) per feed. The first
 *   subscription of each member is decoded, the others are counted.
 * --system direct: no server; each member's publisher talks to a receiving webrtcbin in this
 *   process (the same encode, transport and decode path): the baseline latency.
 *
 * Latency: every sent frame carries its send time (CLOCK_MONOTONIC, ms mod 65536) painted as 16
 * black/white 40x40 blocks on the top row, and the complement on the row below. A decoded
 * frame is read where each member's picture must be (the mixer's grid for ccomet: the same
 * arithmetic as src/media/mixer.c relayout(), keep-aspect-ratio, centered; the whole frame
 * otherwise); a tile counts only when all 16 bits differ clearly from their complements. The
 * first appearance of a stamp in a tile gives one sample: now - stamp.
 *
 * The controller grows the room through --steps (2,4,8): join the members, wait until every
 * member receives everyone (every tile readable, every subscription flowing), settle, then
 * measure for --seconds: CPU of --server-pid and of this process (utime+stime from /proc),
 * bytes each member receives (RTP as webrtcbin hands it out: headers and payload, after SRTP),
 * and the latency samples. One JSON line per step on stdout; progress on stderr. */
#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#include <gst/video/video.h>
#include <gst/webrtc/webrtc.h>
#include <jansson.h>
#include <libsoup/soup.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define W          640
#define H          480
#define FPS        30
#define BLOCK      40
#define BITS       16
#define VP8_PT     96
#define OPUS_PT    111
#define MAXM       16
#define MAXPC      (MAXM * MAXM)
#define MAX_SAMPLE 200000

enum sys { SYS_CCOMET, SYS_JANUS, SYS_DIRECT };

static struct {
    enum sys sys;
    const char *url;
    const char *dest;   /* ccomet: the SIP destination, <dev>*<room>*<profile> */
    const char *domain; /* ccomet: SIP domain */
    const char *user_prefix, *password;
    const char *ice_ip; /* the only address our webrtcbins gather */
    int steps[8], nsteps;
    double settle, seconds, ready_timeout;
    int server_pid;
    int kbps;
    guint64 room;
    int verbose;
} opt = {.dest = "1*bench*video",
         .domain = "FSdefaultDomain",
         .user_prefix = "10000",
         .password = "benchpw",
         .ice_ip = "127.0.0.1",
         .settle = 3,
         .seconds = 10,
         .ready_timeout = 60,
         .kbps = 1000,
         .room = 4242};

static GMainLoop *loop;
static GstElement *pipeline, *vtee, *atee;
static GstVideoInfo src_info;
static GMutex lock;

static void logf_(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void logf_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[media_load %.3f] ", g_get_monotonic_time() / 1e6);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

#define VLOG(...)                                                                                  \
    do {                                                                                           \
        if (opt.verbose) logf_(__VA_ARGS__);                                                       \
    } while (0)

static void die(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[media_load] FATAL: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stdout);
    _exit(1);
}

/* ---- members and peer connections ----------------------------------------------------------- */

struct member;

struct pc {
    struct member *m;
    GstElement *wb;
    bool offerer;   /* our publisher: we offer; else we answer the remote's offer */
    bool decode;    /* decode the received video and read stamps */
    int sent_local; /* atomic: local description handed to signalling */
    void (*on_local)(struct pc *pc, const char *sdp); /* main context */
    struct pc *peer;                                  /* direct: the receiving pc */
    GstPad *send_pads[2];
    guint caps_timer;
    int caps_waited;
    /* janus subscriber */
    guint64 handle, feed;
    bool started;
    /* counters (atomic) */
    gint64 rx_video, rx_audio, tx_bytes;
    gint frames, frames_ok;
    gint streak; /* decoded frames in a row with every tile readable */
    /* stamps: last stamp seen per tile */
    int last[MAXM];
};

struct member {
    int idx;
    char user[32];
    struct pc *pub;
    struct pc *subs[MAXM]; /* janus: subscription to member j's feed; direct: subs[0] */
    int nsubs;
    SoupWebsocketConnection *ws;
    bool ws_open;
    bool answered; /* ccomet / janus publisher: answer applied */
    char *offer_sdp;
    /* sip */
    int sip_state, cseq;
    char call_id[40], tag[24], to_tag[80], branch[40];
    /* janus */
    guint64 session, handle, feed, private_id;
    bool joined, publishing, published;
    int pending_subs;
    guint keepalive;
};

static struct member *members[MAXM];
static int n_members;   /* created */
static int room_target; /* members the current step wants */
static struct pc *all_pcs[MAXPC + MAXM];
static int n_pcs;
static SoupSession *soup;

/* latency samples of the measuring window (ms) */
static gboolean measuring;
static int *samples;
static int n_samples;
static int *shown; /* age of what every readable tile shows, repeats included */
static int n_shown;

static gint64 ld(gint64 *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static gint64 now_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

/* ---- the stamp ------------------------------------------------------------------------------ */

static GstPadProbeReturn paint_cb(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    GstBuffer *buf = gst_buffer_make_writable(GST_PAD_PROBE_INFO_BUFFER(info));
    GST_PAD_PROBE_INFO_DATA(info) = buf;
    GstVideoFrame f;
    if (!gst_video_frame_map(&f, &src_info, buf, GST_MAP_WRITE)) return GST_PAD_PROBE_OK;
    unsigned stamp = (unsigned)(now_ms() & 0xFFFF);
    guint8 *y = GST_VIDEO_FRAME_PLANE_DATA(&f, 0);
    int ys = GST_VIDEO_FRAME_PLANE_STRIDE(&f, 0);
    for (int row = 0; row < 2; row++)
        for (int b = 0; b < BITS; b++) {
            int bit = (stamp >> (BITS - 1 - b)) & 1;
            guint8 v = (bit ^ row) ? 235 : 16;
            for (int yy = row * BLOCK; yy < (row + 1) * BLOCK; yy++)
                memset(y + yy * ys + b * BLOCK, v, BLOCK);
        }
    for (int p = 1; p <= 2; p++) { /* neutral chroma under the blocks */
        guint8 *c = GST_VIDEO_FRAME_PLANE_DATA(&f, p);
        int cs = GST_VIDEO_FRAME_PLANE_STRIDE(&f, p);
        for (int yy = 0; yy < BLOCK; yy++)
            memset(c + yy * cs, 128, BITS * BLOCK / 2);
    }
    gst_video_frame_unmap(&f);
    return GST_PAD_PROBE_OK;
}

static int luma_at(const guint8 *y, int stride, int w, int h, double fx, double fy)
{
    int x = (int)fx, yy = (int)fy, s = 0, n = 0;
    for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
            int px = x + dx, py = yy + dy;
            if (px < 0 || py < 0 || px >= w || py >= h) continue;
            s += y[py * stride + px];
            n++;
        }
    return n ? s / n : 0;
}

/* The stamp of the picture placed in box (bx,by,bw,bh) by keep-aspect-ratio, or -1. */
static int read_stamp(const guint8 *y, int stride, int w, int h, int bx, int by, int bw, int bh)
{
    double s = fmin((double)bw / W, (double)bh / H);
    double ox = bx + (bw - W * s) / 2, oy = by + (bh - H * s) / 2;
    int stamp = 0;
    for (int b = 0; b < BITS; b++) {
        double cx = ox + (b * BLOCK + BLOCK / 2.0) * s;
        int v0 = luma_at(y, stride, w, h, cx, oy + BLOCK / 2.0 * s);
        int v1 = luma_at(y, stride, w, h, cx, oy + BLOCK * 1.5 * s);
        if (abs(v0 - v1) < 60) return -1;
        stamp = (stamp << 1) | (v0 > v1);
    }
    return stamp;
}

static void add_sample(int ms, bool fresh)
{
    g_mutex_lock(&lock);
    if (measuring && fresh && n_samples < MAX_SAMPLE) samples[n_samples++] = ms;
    if (measuring && n_shown < MAX_SAMPLE) shown[n_shown++] = ms;
    g_mutex_unlock(&lock);
}

/* Where the pictures are in what a member receives: for ccomet the grid of src/media/mixer.c
 * relayout(), except that a two-member room is bridged (each gets the other's stream as sent,
 * FreeSWITCH's video-bridge-first-two); one full-frame picture otherwise. */
static void layout(int size, int *n, int *cols, int *rows)
{
    *n = *cols = *rows = 1;
    if (opt.sys != SYS_CCOMET || size == 2) return;
    *n = size;
    while (*cols * *cols < size)
        (*cols)++;
    *rows = *cols;
}

static GstPadProbeReturn decoded_cb(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    struct pc *pc = ud;
    gint64 now = now_ms();
    GstCaps *caps = gst_pad_get_current_caps(pad);
    GstVideoInfo vi;
    bool ok = caps && gst_video_info_from_caps(&vi, caps);
    if (caps) gst_caps_unref(caps);
    if (!ok) return GST_PAD_PROBE_OK;
    GstVideoFrame f;
    if (!gst_video_frame_map(&f, &vi, GST_PAD_PROBE_INFO_BUFFER(info), GST_MAP_READ))
        return GST_PAD_PROBE_OK;
    const guint8 *y = GST_VIDEO_FRAME_PLANE_DATA(&f, 0);
    int stride = GST_VIDEO_FRAME_PLANE_STRIDE(&f, 0);
    int fw = GST_VIDEO_INFO_WIDTH(&vi), fh = GST_VIDEO_INFO_HEIGHT(&vi);
    int n, cols, rows;
    layout(room_target, &n, &cols, &rows);
    int tw = fw / cols, th = fh / rows, good = 0;
    for (int i = 0; i < n; i++) {
        int st = read_stamp(y, stride, fw, fh, (i % cols) * tw, (i / cols) * th, tw, th);
        if (st < 0) continue;
        good++;
        int age = (int)((now - st) & 0xFFFF); /* the stamp wraps after 65.5 s */
        add_sample(age, st != pc->last[i]);
        pc->last[i] = st;
    }
    gst_video_frame_unmap(&f);
    g_atomic_int_inc(&pc->frames);
    if (good == n) {
        g_atomic_int_inc(&pc->frames_ok);
        g_atomic_int_inc(&pc->streak);
    } else {
        g_atomic_int_set(&pc->streak, 0);
    }
    return GST_PAD_PROBE_OK;
}

/* ---- webrtcbin ------------------------------------------------------------------------------ */

static GstPadProbeReturn count_rx_cb(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    gint64 *ctr = ud;
    gsize n = 0;
    if (info->type & GST_PAD_PROBE_TYPE_BUFFER)
        n = gst_buffer_get_size(GST_PAD_PROBE_INFO_BUFFER(info));
    else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
        GstBufferList *l = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
        for (guint i = 0; i < gst_buffer_list_length(l); i++)
            n += gst_buffer_get_size(gst_buffer_list_get(l, i));
    }
    __atomic_fetch_add(ctr, (gint64)n, __ATOMIC_RELAXED);
    return GST_PAD_PROBE_OK;
}

static void sync_link(GstElement **els, int n, GstPad *src)
{
    for (int i = 0; i < n; i++) {
        gst_bin_add(GST_BIN(pipeline), els[i]);
        gst_element_sync_state_with_parent(els[i]);
    }
    for (int i = 0; i + 1 < n; i++)
        if (!gst_element_link(els[i], els[i + 1])) die("link %d failed", i);
    GstPad *sink = gst_element_get_static_pad(els[0], "sink");
    if (gst_pad_link(src, sink) != GST_PAD_LINK_OK) die("linking a webrtcbin src pad failed");
    gst_object_unref(sink);
}

static void on_pad_added(GstElement *wb, GstPad *pad, gpointer ud)
{
    struct pc *pc = ud;
    if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
    GstCaps *caps = gst_pad_get_current_caps(pad);
    if (!caps) caps = gst_pad_query_caps(pad, NULL);
    const GstStructure *s = gst_caps_get_structure(caps, 0);
    const char *media = gst_structure_get_string(s, "media");
    const char *enc = gst_structure_get_string(s, "encoding-name");
    bool video = media && strcmp(media, "video") == 0;
    VLOG("member %d: incoming %s %s", pc->m->idx, media ? media : "?", enc ? enc : "?");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, count_rx_cb,
                      video ? &pc->rx_video : &pc->rx_audio, NULL);
    if (video && pc->decode && enc && g_ascii_strcasecmp(enc, "VP8") == 0) {
        GstElement *els[4] = {gst_element_factory_make("rtpvp8depay", NULL),
                              gst_element_factory_make("vp8dec", NULL),
                              gst_element_factory_make("fakesink", NULL)};
        g_object_set(els[1], "threads", 1, NULL);
        g_object_set(els[2], "sync", FALSE, "async", FALSE, NULL);
        GstPad *dsrc = gst_element_get_static_pad(els[1], "src");
        gst_pad_add_probe(dsrc, GST_PAD_PROBE_TYPE_BUFFER, decoded_cb, pc, NULL);
        gst_object_unref(dsrc);
        sync_link(els, 3, pad);
    } else {
        GstElement *els[1] = {gst_element_factory_make("fakesink", NULL)};
        g_object_set(els[0], "sync", FALSE, "async", FALSE, NULL);
        sync_link(els, 1, pad);
    }
    gst_caps_unref(caps);
}

struct local_ready {
    struct pc *pc;
    char *sdp;
};

static gboolean local_ready_main(gpointer data)
{
    struct local_ready *lr = data;
    lr->pc->on_local(lr->pc, lr->sdp);
    g_free(lr->sdp);
    g_free(lr);
    return G_SOURCE_REMOVE;
}

/* Any thread: once gathering is complete and the local description is set, hand it to
 * signalling on the main context (non-trickle: the SDP carries the candidates). */
static void check_gathering(struct pc *pc)
{
    GstWebRTCICEGatheringState gs;
    GstWebRTCSessionDescription *local = NULL;
    g_object_get(pc->wb, "ice-gathering-state", &gs, "local-description", &local, NULL);
    if (gs == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE && local &&
        g_atomic_int_compare_and_exchange(&pc->sent_local, 0, 1)) {
        struct local_ready *lr = g_new0(struct local_ready, 1);
        lr->pc = pc;
        lr->sdp = gst_sdp_message_as_text(local->sdp);
        g_main_context_invoke(NULL, local_ready_main, lr);
    }
    if (local) gst_webrtc_session_description_free(local);
}

static void on_gathering(GObject *o, GParamSpec *ps, gpointer ud)
{
    check_gathering(ud);
}

static void on_conn_state(GObject *o, GParamSpec *ps, gpointer ud)
{
    struct pc *pc = ud;
    GstWebRTCPeerConnectionState st;
    g_object_get(o, "connection-state", &st, NULL);
    VLOG("member %d pc %p: connection-state %d", pc->m->idx, (void *)pc, st);
    if (st == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED) die("member %d: a peer connection failed", pc->m->idx);
}

static void on_local_set(GstPromise *p, gpointer ud)
{
    gst_promise_unref(p);
    check_gathering(ud);
}

static void on_created(GstPromise *p, gpointer ud)
{
    struct pc *pc = ud;
    const GstStructure *reply = gst_promise_get_reply(p);
    GstWebRTCSessionDescription *d = NULL;
    if (reply)
        gst_structure_get(reply, pc->offerer ? "offer" : "answer",
                          GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &d, NULL);
    gst_promise_unref(p);
    if (!d) die("member %d: webrtcbin made no %s", pc->m->idx, pc->offerer ? "offer" : "answer");
    g_signal_emit_by_name(pc->wb, "set-local-description", d,
                          gst_promise_new_with_change_func(on_local_set, pc, NULL));
    gst_webrtc_session_description_free(d);
}

static struct pc *pc_new(struct member *m, bool offerer, bool decode)
{
    struct pc *pc = g_new0(struct pc, 1);
    pc->m = m;
    pc->offerer = offerer;
    pc->decode = decode;
    for (int i = 0; i < MAXM; i++)
        pc->last[i] = -1;
    pc->wb = gst_element_factory_make("webrtcbin", NULL);
    if (!pc->wb) die("no webrtcbin");
    gst_util_set_object_arg(G_OBJECT(pc->wb), "bundle-policy", "max-bundle");
    g_object_set(pc->wb, "latency", 50, NULL); /* only matters for losses: sinks don't sync */
    GstWebRTCICE *ice = NULL;
    g_object_get(pc->wb, "ice-agent", &ice, NULL);
    if (ice) {
        gboolean ok = FALSE;
        g_signal_emit_by_name(ice, "add-local-ip-address", opt.ice_ip, &ok);
        g_object_set(ice, "ice-tcp", FALSE, NULL);
        gst_object_unref(ice);
    }
    g_signal_connect(pc->wb, "pad-added", G_CALLBACK(on_pad_added), pc);
    g_signal_connect(pc->wb, "notify::ice-gathering-state", G_CALLBACK(on_gathering), pc);
    g_signal_connect(pc->wb, "notify::connection-state", G_CALLBACK(on_conn_state), pc);
    gst_bin_add(GST_BIN(pipeline), pc->wb);
    all_pcs[n_pcs++] = pc;
    return pc;
}

static GstPadProbeReturn count_tx_cb(GstPad *pad, GstPadProbeInfo *info, gpointer ud)
{
    return count_rx_cb(pad, info, ud);
}

/* tee → queue(leaky) → payloader → caps → webrtcbin sink pad */
static void add_send_branch(struct pc *pc, int k)
{
    bool video = k == 1;
    GstElement *q = gst_element_factory_make("queue", NULL);
    g_object_set(q, "leaky", 2, "max-size-buffers", 30, "max-size-bytes", 0, "max-size-time",
                 (guint64)0, NULL);
    GstElement *pay = gst_element_factory_make(video ? "rtpvp8pay" : "rtpopuspay", NULL);
    g_object_set(pay, "pt", video ? VP8_PT : OPUS_PT, NULL);
    if (video) {
        g_object_set(pay, "mtu", 1200, NULL);
        gst_util_set_object_arg(G_OBJECT(pay), "picture-id-mode", "15-bit");
    }
    GstElement *cf = gst_element_factory_make("capsfilter", NULL);
    GstCaps *caps = gst_caps_new_simple(
        "application/x-rtp", "media", G_TYPE_STRING, video ? "video" : "audio", "encoding-name",
        G_TYPE_STRING, video ? "VP8" : "OPUS", "clock-rate", G_TYPE_INT, video ? 90000 : 48000,
        "payload", G_TYPE_INT, video ? VP8_PT : OPUS_PT, NULL);
    g_object_set(cf, "caps", caps, NULL);
    gst_caps_unref(caps);
    gst_bin_add_many(GST_BIN(pipeline), q, pay, cf, NULL);
    gst_element_link_many(q, pay, cf, NULL);
    pc->send_pads[k] = gst_element_request_pad_simple(pc->wb, "sink_%u");
    GstPad *cs = gst_element_get_static_pad(cf, "src");
    gst_pad_link(cs, pc->send_pads[k]);
    gst_pad_add_probe(cs, GST_PAD_PROBE_TYPE_BUFFER, count_tx_cb, &pc->tx_bytes, NULL);
    gst_object_unref(cs);
    gst_element_sync_state_with_parent(q);
    gst_element_sync_state_with_parent(pay);
    gst_element_sync_state_with_parent(cf);
    GstPad *tp = gst_element_request_pad_simple(video ? vtee : atee, "src_%u");
    GstPad *qs = gst_element_get_static_pad(q, "sink");
    gst_pad_link(tp, qs);
    gst_object_unref(qs);
    gst_object_unref(tp);
}

static gboolean offer_when_caps(gpointer data)
{
    struct pc *pc = data;
    bool ready = true;
    for (int i = 0; i < 2; i++)
        if (!gst_pad_has_current_caps(pc->send_pads[i])) ready = false;
    if (!ready && (pc->caps_waited += 10) < 3000) return G_SOURCE_CONTINUE;
    g_signal_emit_by_name(pc->wb, "create-offer", NULL,
                          gst_promise_new_with_change_func(on_created, pc, NULL));
    return G_SOURCE_REMOVE;
}

/* A publisher: sends the shared audio and video, offers once its sink pads have caps. */
static struct pc *pc_publisher(struct member *m, bool decode,
                               void (*on_local)(struct pc *, const char *))
{
    struct pc *pc = pc_new(m, true, decode);
    pc->on_local = on_local;
    gst_element_sync_state_with_parent(pc->wb);
    add_send_branch(pc, 0);
    add_send_branch(pc, 1);
    g_timeout_add(10, offer_when_caps, pc);
    return pc;
}

static void on_remote_set_then_answer(GstPromise *p, gpointer ud)
{
    struct pc *pc = ud;
    gst_promise_unref(p);
    g_signal_emit_by_name(pc->wb, "create-answer", NULL,
                          gst_promise_new_with_change_func(on_created, pc, NULL));
}

static void pc_set_remote(struct pc *pc, const char *sdp_text, bool is_offer)
{
    GstSDPMessage *sdp = NULL;
    if (gst_sdp_message_new_from_text(sdp_text, &sdp) != GST_SDP_OK)
        die("member %d: unparsable SDP", pc->m->idx);
    GstWebRTCSessionDescription *d = gst_webrtc_session_description_new(
        is_offer ? GST_WEBRTC_SDP_TYPE_OFFER : GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
    GstPromise *p = is_offer ? gst_promise_new_with_change_func(on_remote_set_then_answer, pc, NULL)
                             : gst_promise_new();
    g_signal_emit_by_name(pc->wb, "set-remote-description", d, p);
    if (!is_offer) gst_promise_unref(p);
    gst_webrtc_session_description_free(d);
}

/* An answerer for a remote offer (janus subscriber, direct receiver). */
static struct pc *pc_answerer(struct member *m, bool decode, const char *offer,
                              void (*on_local)(struct pc *, const char *))
{
    struct pc *pc = pc_new(m, false, decode);
    pc->on_local = on_local;
    gst_element_sync_state_with_parent(pc->wb);
    pc_set_remote(pc, offer, true);
    return pc;
}

/* ---- WebSocket signalling ------------------------------------------------------------------- */

static void ws_send(struct member *m, const char *text)
{
    if (!m->ws_open) die("member %d: signalling connection closed", m->idx);
    VLOG("member %d >> %.4000s", m->idx, text);
    soup_websocket_connection_send_text(m->ws, text);
}

static void on_ws_closed(SoupWebsocketConnection *ws, gpointer ud)
{
    struct member *m = ud;
    m->ws_open = false;
    die("member %d: the server closed the signalling WebSocket", m->idx);
}

static void sip_on_message(struct member *m, const char *text);
static void janus_on_message(struct member *m, const char *text);
static void sip_start(struct member *m);
static void janus_start(struct member *m);

static void on_ws_message(SoupWebsocketConnection *ws, gint type, GBytes *msg, gpointer ud)
{
    struct member *m = ud;
    gsize n;
    const char *d = g_bytes_get_data(msg, &n);
    char *text = g_strndup(d, n);
    VLOG("member %d << %.4000s", m->idx, text);
    if (opt.sys == SYS_CCOMET)
        sip_on_message(m, text);
    else
        janus_on_message(m, text);
    g_free(text);
}

static void on_ws_connected(GObject *src, GAsyncResult *res, gpointer ud)
{
    struct member *m = ud;
    GError *err = NULL;
    m->ws = soup_session_websocket_connect_finish(SOUP_SESSION(src), res, &err);
    if (!m->ws) die("member %d: WebSocket connect to %s failed: %s", m->idx, opt.url, err->message);
    soup_websocket_connection_set_max_incoming_payload_size(m->ws, 1 << 20);
    soup_websocket_connection_set_keepalive_interval(m->ws, 0);
    m->ws_open = true;
    g_signal_connect(m->ws, "message", G_CALLBACK(on_ws_message), m);
    g_signal_connect(m->ws, "closed", G_CALLBACK(on_ws_closed), m);
    if (opt.sys == SYS_CCOMET)
        sip_start(m);
    else
        janus_start(m);
}

static void ws_connect(struct member *m, const char *proto)
{
    SoupMessage *msg = soup_message_new("GET", opt.url);
    if (!msg) die("bad url %s", opt.url);
    const char *protos[] = {proto, NULL};
    soup_session_websocket_connect_async(soup, msg, NULL, (char **)protos, G_PRIORITY_DEFAULT,
                                         NULL, on_ws_connected, m);
    g_object_unref(msg);
}

/* ---- SIP (ccomet) --------------------------------------------------------------------------- */

enum { SIP_REG1, SIP_REG2, SIP_REGISTERED, SIP_INV1, SIP_INV2, SIP_CONFIRMED };

static void rnd_hex(char *out, int n)
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < n; i++)
        out[i] = hx[g_random_int_range(0, 16)];
    out[n] = 0;
}

/* The value of header `name` (first occurrence), copied into out; false if absent. */
static bool sip_header(const char *msg, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    const char *end = strstr(msg, "\r\n\r\n");
    for (const char *l = strstr(msg, "\r\n"); l && (!end || l < end); l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        if (g_ascii_strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            h += nl + 1;
            while (*h == ' ')
                h++;
            const char *e = strstr(h, "\r\n");
            size_t len = e ? (size_t)(e - h) : strlen(h);
            if (len >= n) len = n - 1;
            memcpy(out, h, len);
            out[len] = 0;
            return true;
        }
    }
    return false;
}

static void param(const char *hdr, const char *key, char *out, size_t n)
{
    *out = 0;
    char pat[32];
    snprintf(pat, sizeof pat, "%s=", key);
    const char *p = hdr;
    while ((p = strstr(p, pat))) {
        if (p == hdr || p[-1] == ' ' || p[-1] == ',') break;
        p++;
    }
    if (!p) return;
    p += strlen(pat);
    const char *e;
    if (*p == '"') {
        p++;
        e = strchr(p, '"');
    } else {
        e = p + strcspn(p, ", ;\r\n");
    }
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len >= n) len = n - 1;
    memcpy(out, p, len);
    out[len] = 0;
}

static char *md5hex(const char *s)
{
    return g_compute_checksum_for_string(G_CHECKSUM_MD5, s, -1);
}

static char *digest(const char *challenge, const char *user, const char *method, const char *uri)
{
    char realm[128], nonce[256], qop[32];
    param(challenge, "realm", realm, sizeof realm);
    param(challenge, "nonce", nonce, sizeof nonce);
    param(challenge, "qop", qop, sizeof qop);
    char cnonce[17];
    rnd_hex(cnonce, 16);
    char *a1 = g_strdup_printf("%s:%s:%s", user, realm, opt.password);
    char *a2 = g_strdup_printf("%s:%s", method, uri);
    char *h1 = md5hex(a1), *h2 = md5hex(a2), *resp_in, *resp;
    char *out;
    if (*qop) {
        resp_in = g_strdup_printf("%s:%s:00000001:%s:auth:%s", h1, nonce, cnonce, h2);
        resp = md5hex(resp_in);
        out = g_strdup_printf("Digest algorithm=MD5, username=\"%s\", realm=\"%s\", nonce=\"%s\", "
                              "uri=\"%s\", response=\"%s\", qop=auth, cnonce=\"%s\", nc=00000001",
                              user, realm, nonce, uri, resp, cnonce);
    } else {
        resp_in = g_strdup_printf("%s:%s:%s", h1, nonce, h2);
        resp = md5hex(resp_in);
        out = g_strdup_printf("Digest algorithm=MD5, username=\"%s\", realm=\"%s\", nonce=\"%s\", "
                              "uri=\"%s\", response=\"%s\"",
                              user, realm, nonce, uri, resp);
    }
    g_free(a1), g_free(a2), g_free(h1), g_free(h2), g_free(resp_in), g_free(resp);
    return out;
}

static void sip_send_request(struct member *m, const char *method, const char *ruri,
                             const char *to_uri, const char *to_tag, int cseq, const char *branch,
                             const char *extra, const char *body)
{
    char *msg = g_strdup_printf(
        "%s %s SIP/2.0\r\n"
        "Via: SIP/2.0/WS bench%d.invalid;branch=%s\r\n"
        "Max-Forwards: 69\r\n"
        "To: <%s>%s%s\r\n"
        "From: <sip:%s@%s>;tag=%s\r\n"
        "Call-ID: %s\r\n"
        "CSeq: %d %s\r\n"
        "%s"
        "%s"
        "User-Agent: ccomet-media_load\r\n"
        "Content-Length: %zu\r\n\r\n%s",
        method, ruri, m->idx, branch, to_uri, to_tag ? ";tag=" : "", to_tag ? to_tag : "",
        m->user, opt.domain, m->tag, m->call_id, cseq, method, extra ? extra : "",
        body && *body ? "Content-Type: application/sdp\r\n" : "", body ? strlen(body) : 0,
        body ? body : "");
    ws_send(m, msg);
    g_free(msg);
}

static void sip_register(struct member *m, const char *auth)
{
    char ruri[128], to[160], branch[40], extra[1024];
    snprintf(ruri, sizeof ruri, "sip:%s", opt.domain);
    snprintf(to, sizeof to, "sip:%s@%s", m->user, opt.domain);
    memcpy(branch, "z9hG4bK", 7);
    rnd_hex(branch + 7, 16);
    snprintf(extra, sizeof extra,
             "Contact: <sip:%s@bench%d.invalid;transport=ws>;expires=600\r\nExpires: 600\r\n%s%s%s",
             m->user, m->idx, auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
    sip_send_request(m, "REGISTER", ruri, to, NULL, ++m->cseq, branch, extra, NULL);
}

static void sip_invite(struct member *m, const char *auth)
{
    char ruri[160], extra[1024];
    snprintf(ruri, sizeof ruri, "sip:%s@%s", opt.dest, opt.domain);
    memcpy(m->branch, "z9hG4bK", 7);
    rnd_hex(m->branch + 7, 16);
    snprintf(extra, sizeof extra,
             "Contact: <sip:%s@bench%d.invalid;transport=ws;ob>\r\n"
             "Allow: INVITE,ACK,CANCEL,BYE,OPTIONS\r\n%s%s%s",
             m->user, m->idx, auth ? "Proxy-Authorization: " : "", auth ? auth : "",
             auth ? "\r\n" : "");
    sip_send_request(m, "INVITE", ruri, ruri, NULL, ++m->cseq, m->branch, extra, m->offer_sdp);
}

static void sip_ack(struct member *m, const char *to_tag, bool same_branch)
{
    char ruri[160], branch[40];
    snprintf(ruri, sizeof ruri, "sip:%s@%s", opt.dest, opt.domain);
    if (same_branch)
        g_strlcpy(branch, m->branch, sizeof branch);
    else {
        memcpy(branch, "z9hG4bK", 7);
        rnd_hex(branch + 7, 16);
    }
    sip_send_request(m, "ACK", ruri, ruri, to_tag, m->cseq, branch, NULL, NULL);
}

static void sip_maybe_invite(struct member *m)
{
    if (m->sip_state == SIP_REGISTERED && m->offer_sdp) {
        m->sip_state = SIP_INV1;
        sip_invite(m, NULL);
    }
}

static void sip_start(struct member *m)
{
    m->sip_state = SIP_REG1;
    sip_register(m, NULL);
}

static void ccomet_on_local(struct pc *pc, const char *sdp)
{
    pc->m->offer_sdp = g_strdup(sdp);
    sip_maybe_invite(pc->m);
}

static void sip_on_message(struct member *m, const char *text)
{
    if (strncmp(text, "SIP/2.0 ", 8) != 0) { /* a request from the server: 200 to anything */
        char method[16] = "";
        sscanf(text, "%15s", method);
        if (strcmp(method, "ACK") == 0) return;
        char via[512] = "", from[512] = "", to[512] = "", cid[128] = "", cseq[64] = "";
        sip_header(text, "Via", via, sizeof via);
        sip_header(text, "From", from, sizeof from);
        sip_header(text, "To", to, sizeof to);
        sip_header(text, "Call-ID", cid, sizeof cid);
        sip_header(text, "CSeq", cseq, sizeof cseq);
        char *r = g_strdup_printf("SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: "
                                  "%s\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n",
                                  via, from, to, cid, cseq);
        ws_send(m, r);
        g_free(r);
        if (strcmp(method, "BYE") == 0) die("member %d: the server hung up (BYE)", m->idx);
        return;
    }
    int status = atoi(text + 8);
    char cseq[64] = "";
    sip_header(text, "CSeq", cseq, sizeof cseq);
    if (status < 200) return;
    bool is_invite = strstr(cseq, "INVITE") != NULL;
    char to[512] = "", to_tag[80] = "";
    sip_header(text, "To", to, sizeof to);
    const char *t = strstr(to, "tag=");
    if (t) {
        g_strlcpy(to_tag, t + 4, sizeof to_tag);
        to_tag[strcspn(to_tag, ";> ")] = 0;
    }
    if (!is_invite) { /* REGISTER */
        char ruri[128], ch[1024];
        snprintf(ruri, sizeof ruri, "sip:%s", opt.domain);
        if (status == 401 && m->sip_state == SIP_REG1 &&
            sip_header(text, "WWW-Authenticate", ch, sizeof ch)) {
            m->sip_state = SIP_REG2;
            char *auth = digest(ch, m->user, "REGISTER", ruri);
            sip_register(m, auth);
            g_free(auth);
        } else if (status == 200 && m->sip_state == SIP_REG2) {
            m->sip_state = SIP_REGISTERED;
            sip_maybe_invite(m);
        } else
            die("member %d: REGISTER got %d", m->idx, status);
        return;
    }
    if (status == 407 && m->sip_state == SIP_INV1) {
        char ch[1024], ruri[160];
        sip_ack(m, to_tag, true);
        if (!sip_header(text, "Proxy-Authenticate", ch, sizeof ch)) die("407 without challenge");
        snprintf(ruri, sizeof ruri, "sip:%s@%s", opt.dest, opt.domain);
        char *auth = digest(ch, m->user, "INVITE", ruri);
        m->sip_state = SIP_INV2;
        sip_invite(m, auth);
        g_free(auth);
    } else if (status == 200 && m->sip_state == SIP_INV2) {
        g_strlcpy(m->to_tag, to_tag, sizeof m->to_tag);
        sip_ack(m, to_tag, false);
        m->sip_state = SIP_CONFIRMED;
        const char *body = strstr(text, "\r\n\r\n");
        if (!body || !body[4]) die("member %d: 200 OK without SDP", m->idx);
        pc_set_remote(m->pub, body + 4, false);
        m->answered = true;
        logf_("member %d joined the MCU room", m->idx);
    } else
        die("member %d: INVITE got %d (state %d)", m->idx, status, m->sip_state);
}

/* ---- Janus (WebSocket JSON API) ------------------------------------------------------------- */

typedef void (*janus_cb)(struct member *m, json_t *msg, gpointer ud);
struct txn {
    janus_cb cb;
    gpointer ud;
};
static GHashTable *txns;

static void janus_send(struct member *m, json_t *req, janus_cb cb, gpointer ud)
{
    char tx[20];
    rnd_hex(tx, 12);
    json_object_set_new(req, "transaction", json_string(tx));
    if (m->session) json_object_set_new(req, "session_id", json_integer((json_int_t)m->session));
    if (cb) {
        struct txn *t = g_new0(struct txn, 1);
        t->cb = cb;
        t->ud = ud;
        g_hash_table_insert(txns, g_strdup(tx), t);
    }
    char *s = json_dumps(req, JSON_COMPACT);
    ws_send(m, s);
    free(s);
    json_decref(req);
}

static json_t *plugin_data(json_t *msg)
{
    return json_object_get(json_object_get(msg, "plugindata"), "data");
}

static void janus_check(struct member *m, json_t *msg, const char *what)
{
    const char *j = json_string_value(json_object_get(msg, "janus"));
    json_t *pd = plugin_data(msg);
    if (j && strcmp(j, "error") == 0) {
        char *s = json_dumps(msg, JSON_COMPACT);
        die("member %d: janus %s: %s", m->idx, what, s);
    }
    if (pd && json_object_get(pd, "error_code")) {
        char *s = json_dumps(msg, JSON_COMPACT);
        die("member %d: videoroom %s: %s", m->idx, what, s);
    }
}

static guint64 jid(json_t *o, const char *k)
{
    return (guint64)json_integer_value(json_object_get(o, k));
}

static void janus_on_message(struct member *m, const char *text)
{
    json_error_t e;
    json_t *msg = json_loads(text, 0, &e);
    if (!msg) die("member %d: bad JSON from janus: %s", m->idx, e.text);
    const char *j = json_string_value(json_object_get(msg, "janus"));
    const char *tx = json_string_value(json_object_get(msg, "transaction"));
    if (j && strcmp(j, "ack") == 0) {
        json_decref(msg);
        return;
    }
    if (tx && g_hash_table_contains(txns, tx)) {
        struct txn *t = g_hash_table_lookup(txns, tx);
        janus_cb cb = t->cb;
        gpointer ud = t->ud;
        g_hash_table_remove(txns, tx);
        cb(m, msg, ud);
    } else if (j && strcmp(j, "trickle") == 0) { /* full-trickle servers: add its candidates */
        guint64 sender = jid(msg, "sender");
        json_t *c = json_object_get(msg, "candidate");
        const char *cand = json_string_value(json_object_get(c, "candidate"));
        int mline = (int)json_integer_value(json_object_get(c, "sdpMLineIndex"));
        struct pc *pc = sender == m->handle ? m->pub : NULL;
        for (int i = 0; i < MAXM && !pc; i++)
            if (m->subs[i] && m->subs[i]->handle == sender) pc = m->subs[i];
        if (pc && cand) g_signal_emit_by_name(pc->wb, "add-ice-candidate", mline, cand);
    } else if (j && strcmp(j, "webrtcup") == 0 && jid(msg, "sender") == m->handle) {
        m->published = true; /* subscribers can only join a feed whose PeerConnection is up */
        logf_("member %d published feed %" G_GUINT64_FORMAT, m->idx, m->feed);
    } else if (j && (strcmp(j, "hangup") == 0 || strcmp(j, "detached") == 0)) {
        die("member %d: janus %s: %s", m->idx, j, text);
    }
    json_decref(msg);
}

static gboolean janus_keepalive(gpointer data)
{
    struct member *m = data;
    janus_send(m, json_pack("{s:s}", "janus", "keepalive"), NULL, NULL);
    return G_SOURCE_CONTINUE;
}

static void janus_trickle_done(struct member *m, guint64 handle)
{
    janus_send(m,
               json_pack("{s:s,s:I,s:{s:b}}", "janus", "trickle", "handle_id", (json_int_t)handle,
                         "candidate", "completed", 1),
               NULL, NULL);
}

static void on_configured(struct member *m, json_t *msg, gpointer ud)
{
    janus_check(m, msg, "publish");
    json_t *jsep = json_object_get(msg, "jsep");
    const char *sdp = json_string_value(json_object_get(jsep, "sdp"));
    if (!sdp) die("member %d: publish answered without jsep", m->idx);
    pc_set_remote(m->pub, sdp, false);
    m->answered = true;
}

static void janus_maybe_publish(struct member *m)
{
    if (!m->joined || !m->offer_sdp || m->publishing) return;
    m->publishing = true;
    json_t *req = json_pack("{s:s,s:I,s:{s:s,s:b,s:b},s:{s:s,s:s}}", "janus", "message",
                            "handle_id", (json_int_t)m->handle, "body", "request", "publish",
                            "audio", 1, "video", 1, "jsep", "type", "offer", "sdp", m->offer_sdp);
    janus_send(m, req, on_configured, NULL);
    janus_trickle_done(m, m->handle);
}

static void janus_on_local_pub(struct pc *pc, const char *sdp)
{
    pc->m->offer_sdp = g_strdup(sdp);
    janus_maybe_publish(pc->m);
}

static void on_joined(struct member *m, json_t *msg, gpointer ud)
{
    janus_check(m, msg, "join");
    json_t *pd = plugin_data(msg);
    m->feed = jid(pd, "id");
    m->private_id = jid(pd, "private_id");
    m->joined = true;
    janus_maybe_publish(m);
}

static void on_room_created(struct member *m, json_t *msg, gpointer ud)
{
    json_t *pd = plugin_data(msg);
    int code = (int)json_integer_value(json_object_get(pd, "error_code"));
    if (code && code != 427 /* already exists */) janus_check(m, msg, "create room");
    janus_send(m,
               json_pack("{s:s,s:I,s:{s:s,s:s,s:I,s:s}}", "janus", "message", "handle_id",
                         (json_int_t)m->handle, "body", "request", "join", "ptype", "publisher",
                         "room", (json_int_t)opt.room, "display", m->user),
               on_joined, NULL);
}

static void on_pub_attached(struct member *m, json_t *msg, gpointer ud)
{
    janus_check(m, msg, "attach");
    m->handle = jid(json_object_get(msg, "data"), "id");
    if (m->idx == 0) {
        json_t *req = json_pack(
            "{s:s,s:I,s:{s:s,s:I,s:i,s:i,s:i,s:s,s:s,s:b}}", "janus", "message", "handle_id",
            (json_int_t)m->handle, "body", "request", "create", "room", (json_int_t)opt.room,
            "publishers", MAXM, "bitrate", 0, "fir_freq", 10, "videocodec", "vp8", "audiocodec",
            "opus", "permanent", 0);
        janus_send(m, req, on_room_created, NULL);
    } else {
        on_room_created(m, json_pack("{}"), NULL);
    }
}

static void on_session(struct member *m, json_t *msg, gpointer ud)
{
    janus_check(m, msg, "create");
    m->session = jid(json_object_get(msg, "data"), "id");
    m->keepalive = g_timeout_add_seconds(20, janus_keepalive, m);
    janus_send(m,
               json_pack("{s:s,s:s}", "janus", "attach", "plugin", "janus.plugin.videoroom"),
               on_pub_attached, NULL);
}

static void janus_start(struct member *m)
{
    janus_send(m, json_pack("{s:s}", "janus", "create"), on_session, NULL);
}

/* subscriptions: member m to member `pub`'s feed */
struct sub_req {
    int pub;
    guint64 handle;
};

static void on_started(struct member *m, json_t *msg, gpointer ud)
{
    struct pc *pc = ud;
    janus_check(m, msg, "start");
    pc->started = true;
    m->pending_subs--;
}

static void janus_on_local_sub(struct pc *pc, const char *sdp)
{
    struct member *m = pc->m;
    janus_send(m,
               json_pack("{s:s,s:I,s:{s:s},s:{s:s,s:s}}", "janus", "message", "handle_id",
                         (json_int_t)pc->handle, "body", "request", "start", "jsep", "type",
                         "answer", "sdp", sdp),
               on_started, pc);
    janus_trickle_done(m, pc->handle);
}

static void on_sub_joined(struct member *m, json_t *msg, gpointer ud)
{
    struct sub_req *r = ud;
    janus_check(m, msg, "subscribe");
    const char *sdp = json_string_value(json_object_get(json_object_get(msg, "jsep"), "sdp"));
    if (!sdp) die("member %d: subscription without an offer", m->idx);
    bool decode = m->nsubs == 0; /* each member decodes its first subscription */
    struct pc *pc = pc_answerer(m, decode, sdp, janus_on_local_sub);
    pc->handle = r->handle;
    pc->feed = members[r->pub]->feed;
    m->subs[r->pub] = pc;
    m->nsubs++;
    g_free(r);
}

static void on_sub_attached(struct member *m, json_t *msg, gpointer ud)
{
    struct sub_req *r = ud;
    janus_check(m, msg, "attach subscriber");
    r->handle = jid(json_object_get(msg, "data"), "id");
    json_t *req = json_pack("{s:s,s:I,s:{s:s,s:s,s:I,s:I,s:[{s:I}]}}", "janus", "message",
                            "handle_id", (json_int_t)r->handle, "body", "request", "join", "ptype",
                            "subscriber", "room", (json_int_t)opt.room, "private_id",
                            (json_int_t)m->private_id, "streams", "feed",
                            (json_int_t)members[r->pub]->feed);
    janus_send(m, req, on_sub_joined, r);
}

static void janus_subscribe(struct member *m, int pub)
{
    struct sub_req *r = g_new0(struct sub_req, 1);
    r->pub = pub;
    m->pending_subs++;
    m->subs[pub] = (struct pc *)(gintptr)1; /* placeholder: requested */
    janus_send(m,
               json_pack("{s:s,s:s}", "janus", "attach", "plugin", "janus.plugin.videoroom"),
               on_sub_attached, r);
}

/* ---- direct ----------------------------------------------------------------------------------- */

static void direct_on_local_recv(struct pc *pc, const char *sdp)
{
    struct member *m = pc->m;
    pc_set_remote(m->pub, sdp, false);
    m->answered = true;
}

static void direct_on_local_pub(struct pc *pc, const char *sdp)
{
    struct member *m = pc->m;
    m->subs[0] = pc_answerer(m, true, sdp, direct_on_local_recv);
    m->nsubs = 1;
}

/* ---- controller ------------------------------------------------------------------------------ */

static void member_start(int idx)
{
    struct member *m = g_new0(struct member, 1);
    m->idx = idx;
    snprintf(m->user, sizeof m->user, "%s%03d", opt.user_prefix, idx + 1);
    rnd_hex(m->tag, 12);
    rnd_hex(m->call_id, 24);
    members[idx] = m;
    n_members = idx + 1;
    switch (opt.sys) {
    case SYS_CCOMET:
        m->pub = pc_publisher(m, true, ccomet_on_local);
        ws_connect(m, "sip");
        break;
    case SYS_JANUS:
        m->pub = pc_publisher(m, false, janus_on_local_pub);
        ws_connect(m, "janus-protocol");
        break;
    case SYS_DIRECT: m->pub = pc_publisher(m, false, direct_on_local_pub); break;
    }
    logf_("member %d (%s) starting", idx, m->user);
}

static bool real_pc(struct pc *pc)
{
    return pc && (gintptr)pc != 1;
}

/* The receiving pcs of member m, and the one that decodes. */
static int member_pcs(struct member *m, struct pc **out)
{
    int n = 0;
    if (opt.sys == SYS_CCOMET) {
        out[n++] = m->pub;
    } else {
        for (int i = 0; i < MAXM; i++)
            if (real_pc(m->subs[i])) out[n++] = m->subs[i];
    }
    return n;
}

struct snap {
    gint64 t;
    long server_ticks, self_ticks;
    gint64 rx_v[MAXM], rx_a[MAXM], tx[MAXM];
    int frames[MAXM], frames_ok[MAXM];
};

static long proc_ticks(int pid)
{
    char path[64], buf[2048];
    if (pid <= 0) return -1;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long ut = 0, st = 0;
    /* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14)
     * stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)(ut + st);
}

static void take_snap(struct snap *s, int n)
{
    s->t = g_get_monotonic_time();
    s->server_ticks = proc_ticks(opt.server_pid);
    s->self_ticks = proc_ticks(getpid());
    for (int i = 0; i < n; i++) {
        struct pc *pcs[MAXM + 1];
        int k = member_pcs(members[i], pcs);
        s->rx_v[i] = s->rx_a[i] = 0;
        s->frames[i] = s->frames_ok[i] = 0;
        for (int j = 0; j < k; j++) {
            s->rx_v[i] += ld(&pcs[j]->rx_video);
            s->rx_a[i] += ld(&pcs[j]->rx_audio);
            if (pcs[j]->decode) {
                s->frames[i] += g_atomic_int_get(&pcs[j]->frames);
                s->frames_ok[i] += g_atomic_int_get(&pcs[j]->frames_ok);
            }
        }
        s->tx[i] = ld(&members[i]->pub->tx_bytes);
    }
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

static double pct(int *v, int n, double p)
{
    if (n == 0) return NAN;
    int k = (int)ceil(p / 100.0 * n) - 1; /* nearest rank */
    if (k < 0) k = 0;
    if (k >= n) k = n - 1;
    return v[k];
}

static const char *sys_name(void)
{
    return opt.sys == SYS_CCOMET ? "ccomet" : opt.sys == SYS_JANUS ? "janus" : "direct";
}

enum phase { PH_JOIN, PH_SETTLE, PH_MEASURE };
static struct {
    int step;
    enum phase ph;
    gint64 phase_start, step_start;
    struct snap a;
    double load1;
} ctl;

static double loadavg1(void)
{
    double l = NAN;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = NAN;
        fclose(f);
    }
    return l;
}

static void report(struct snap *a, struct snap *b, int n)
{
    double dt = (b->t - a->t) / 1e6;
    long hz = sysconf(_SC_CLK_TCK);
    double srv = a->server_ticks >= 0 && b->server_ticks >= 0
                     ? (b->server_ticks - a->server_ticks) * 100.0 / hz / dt
                     : NAN;
    double cli = (b->self_ticks - a->self_ticks) * 100.0 / hz / dt;
    double dv = 0, da = 0, dmin = 1e18, dmax = 0, up = 0, fps = 0, okr = 0;
    for (int i = 0; i < n; i++) {
        double v = (b->rx_v[i] - a->rx_v[i]) * 8 / dt / 1000;
        double au = (b->rx_a[i] - a->rx_a[i]) * 8 / dt / 1000;
        dv += v;
        da += au;
        dmin = fmin(dmin, v + au);
        dmax = fmax(dmax, v + au);
        up += (b->tx[i] - a->tx[i]) * 8 / dt / 1000;
        int fr = b->frames[i] - a->frames[i];
        fps += fr / dt;
        okr += fr ? (double)(b->frames_ok[i] - a->frames_ok[i]) / fr : 0;
    }
    g_mutex_lock(&lock);
    measuring = FALSE;
    qsort(samples, n_samples, sizeof *samples, cmp_int);
    double p50 = pct(samples, n_samples, 50), p95 = pct(samples, n_samples, 95),
           p99 = pct(samples, n_samples, 99);
    double mean = 0;
    for (int i = 0; i < n_samples; i++)
        mean += samples[i];
    mean = n_samples ? mean / n_samples : NAN;
    int ns = n_samples;
    qsort(shown, n_shown, sizeof *shown, cmp_int);
    double sh50 = pct(shown, n_shown, 50), sh95 = pct(shown, n_shown, 95);
    /* fresh pictures per second per tile seen (ccomet: N tiles in each of N canvases) */
    int per, c_, r_;
    layout(n, &per, &c_, &r_);
    double tiles = (double)n * per;
    double fresh_fps = ns / dt / tiles;
    g_mutex_unlock(&lock);
    GString *o = g_string_new(NULL);
    g_string_append_printf(o, "{\"system\":\"%s\",\"members\":%d", sys_name(), n);
    const struct {
        const char *k;
        double v;
    } f[] = {{"seconds", dt},
             {"server_cpu_pct", srv},
             {"client_cpu_pct", cli},
             {"down_kbps_per_member", (dv + da) / n},
             {"down_video_kbps_per_member", dv / n},
             {"down_audio_kbps_per_member", da / n},
             {"down_kbps_min", dmin},
             {"down_kbps_max", dmax},
             {"up_kbps_per_member", up / n},
             {"decoded_fps_per_member", fps / n},
             {"readable_frames", okr / n},
             {"latency_samples", ns},
             {"latency_p50_ms", p50},
             {"latency_p95_ms", p95},
             {"latency_p99_ms", p99},
             {"latency_mean_ms", mean},
             {"shown_age_p50_ms", sh50},
             {"shown_age_p95_ms", sh95},
             {"fresh_fps_per_tile", fresh_fps},
             {"load1", ctl.load1},
             {"ready_after_s", (ctl.phase_start - ctl.step_start) / 1e6}};
    for (size_t i = 0; i < G_N_ELEMENTS(f); i++) {
        char num[G_ASCII_DTOSTR_BUF_SIZE];
        g_string_append_printf(o, ",\"%s\":%s", f[i].k,
                               isnan(f[i].v) ? "null" : g_ascii_formatd(num, sizeof num, "%.3f", f[i].v));
    }
    printf("%s}\n", o->str);
    g_string_free(o, TRUE);
    fflush(stdout);
    logf_("%s members=%d server_cpu=%.1f%% client_cpu=%.1f%% down=%.0f kbit/s/member "
          "latency p50=%.0f p95=%.0f ms (%d samples) fps=%.1f fresh/tile=%.1f shown age p50=%.0f",
          sys_name(), n, srv, cli, (dv + da) / n, p50, p95, ns, fps / n, fresh_fps, sh50);
}

/* Are all members receiving what they should, readable? */
static bool all_ready(int n)
{
    for (int i = 0; i < n; i++) {
        struct member *m = members[i];
        if (!m || !m->answered) return false;
        if (opt.sys == SYS_JANUS) {
            for (int j = 0; j < n; j++) {
                if (j == i) continue;
                if (!real_pc(m->subs[j]) || !m->subs[j]->started) return false;
            }
        }
        if (opt.sys == SYS_DIRECT && !real_pc(m->subs[0])) return false;
        struct pc *pcs[MAXM + 1];
        int k = member_pcs(m, pcs);
        for (int j = 0; j < k; j++) {
            struct pc *pc = pcs[j];
            if (ld(&pc->rx_video) < 20000) return false;
            if (pc->decode && g_atomic_int_get(&pc->streak) < 15) return false;
        }
    }
    return true;
}

static gboolean tick(gpointer data)
{
    int n = opt.steps[ctl.step];
    gint64 now = g_get_monotonic_time();
    switch (ctl.ph) {
    case PH_JOIN: {
        /* one member at a time: start the next when the previous has its answer */
        if (n_members < n && (n_members == 0 || members[n_members - 1]->answered)) {
            member_start(n_members);
        }
        if (opt.sys == SYS_JANUS && n_members == n) {
            bool all_pub = true;
            for (int i = 0; i < n; i++)
                if (!members[i]->published) all_pub = false;
            int pending = 0;
            for (int i = 0; i < n; i++)
                pending += members[i]->pending_subs;
            for (int i = 0; i < n && all_pub; i++)
                for (int j = 0; j < n && pending < 6; j++)
                    if (j != i && !members[i]->subs[j]) {
                        janus_subscribe(members[i], j);
                        pending++;
                    }
        }
        if ((now - ctl.step_start) / 1e6 > opt.ready_timeout) {
            for (int i = 0; i < n_members; i++) {
                struct pc *pcs[MAXM + 1];
                int k = member_pcs(members[i], pcs);
                for (int j = 0; j < k; j++)
                    logf_("member %d pc %d: rx_video=%" G_GINT64_FORMAT " frames=%d ok=%d", i, j,
                          ld(&pcs[j]->rx_video), pcs[j]->frames, pcs[j]->frames_ok);
            }
            die("%d members not ready after %.0f s", n, opt.ready_timeout);
        }
        if (n_members == n && all_ready(n)) {
            ctl.ph = PH_SETTLE;
            ctl.phase_start = now;
            logf_("%d members ready after %.1f s; settling %.1f s", n,
                  (now - ctl.step_start) / 1e6, opt.settle);
        }
        break;
    }
    case PH_SETTLE:
        if ((now - ctl.phase_start) / 1e6 >= opt.settle) {
            ctl.load1 = loadavg1();
            g_mutex_lock(&lock);
            n_samples = n_shown = 0;
            measuring = TRUE;
            g_mutex_unlock(&lock);
            take_snap(&ctl.a, n);
            ctl.ph = PH_MEASURE;
        }
        break;
    case PH_MEASURE:
        if ((now - ctl.a.t) / 1e6 >= opt.seconds) {
            struct snap b;
            take_snap(&b, n);
            report(&ctl.a, &b, n);
            if (++ctl.step >= opt.nsteps) {
                g_main_loop_quit(loop);
                return G_SOURCE_REMOVE;
            }
            room_target = opt.steps[ctl.step];
            ctl.ph = PH_JOIN;
            ctl.step_start = ctl.phase_start = now;
        }
        break;
    }
    return G_SOURCE_CONTINUE;
}

static gboolean on_bus(GstBus *bus, GstMessage *msg, gpointer ud)
{
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
        GError *e = NULL;
        gchar *dbg = NULL;
        gst_message_parse_error(msg, &e, &dbg);
        die("pipeline error from %s: %s (%s)", GST_MESSAGE_SRC_NAME(msg), e->message,
            dbg ? dbg : "");
    } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_LATENCY) {
        gst_bin_recalculate_latency(GST_BIN(pipeline));
    }
    return G_SOURCE_CONTINUE;
}

static void build_sources(void)
{
    char *desc = g_strdup_printf(
        "videotestsrc is-live=true pattern=smpte horizontal-speed=4 "
        "! video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1 ! identity name=stamp "
        "! vp8enc deadline=1 cpu-used=16 threads=1 end-usage=cbr target-bitrate=%d "
        "lag-in-frames=0 keyframe-max-dist=%d error-resilient=partitions "
        "! tee name=vtee allow-not-linked=true "
        "audiotestsrc is-live=true wave=sine freq=440 volume=0.1 ! audioconvert "
        "! audio/x-raw,rate=48000,channels=2 ! opusenc bitrate=32000 frame-size=20 "
        "! tee name=atee allow-not-linked=true",
        W, H, FPS, opt.kbps * 1000, 2 * FPS);
    GError *err = NULL;
    pipeline = gst_parse_launch(desc, &err);
    g_free(desc);
    if (!pipeline) die("pipeline: %s", err->message);
    vtee = gst_bin_get_by_name(GST_BIN(pipeline), "vtee");
    atee = gst_bin_get_by_name(GST_BIN(pipeline), "atee");
    GstElement *st = gst_bin_get_by_name(GST_BIN(pipeline), "stamp");
    GstPad *p = gst_element_get_static_pad(st, "src");
    gst_pad_add_probe(p, GST_PAD_PROBE_TYPE_BUFFER, paint_cb, NULL, NULL);
    gst_object_unref(p);
    gst_object_unref(st);
    gst_video_info_set_format(&src_info, GST_VIDEO_FORMAT_I420, W, H);
    GstBus *bus = gst_pipeline_get_bus(GST_PIPELINE(pipeline));
    gst_bus_add_watch(bus, on_bus, NULL);
    gst_object_unref(bus);
    if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
        die("pipeline refused to play");
}

static void usage(void)
{
    fprintf(stderr,
            "usage: media_load --system ccomet|janus|direct [--url ws://127.0.0.1:PORT]\n"
            "  [--steps 2,4,8] [--settle S] [--seconds S] [--server-pid PID] [--kbps K] [--ice-ip IP]\n"
            "  ccomet: [--dest 1*bench*video] [--domain D] [--user-prefix P] [--password PW]\n"
            "  janus: [--room ID]    [--ready-timeout S] [-v]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *steps = "2,4,8";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (ARG("--system")) {
            opt.sys = strcmp(v, "ccomet") == 0  ? SYS_CCOMET
                      : strcmp(v, "janus") == 0 ? SYS_JANUS
                      : strcmp(v, "direct") == 0
                          ? SYS_DIRECT
                          : (usage(), SYS_CCOMET);
        } else if (ARG("--url"))
            opt.url = v;
        else if (ARG("--steps"))
            steps = v;
        else if (ARG("--settle"))
            opt.settle = atof(v);
        else if (ARG("--seconds"))
            opt.seconds = atof(v);
        else if (ARG("--ready-timeout"))
            opt.ready_timeout = atof(v);
        else if (ARG("--server-pid"))
            opt.server_pid = atoi(v);
        else if (ARG("--kbps"))
            opt.kbps = atoi(v);
        else if (ARG("--dest"))
            opt.dest = v;
        else if (ARG("--domain"))
            opt.domain = v;
        else if (ARG("--user-prefix"))
            opt.user_prefix = v;
        else if (ARG("--ice-ip"))
            opt.ice_ip = v;
        else if (ARG("--password"))
            opt.password = v;
        else if (ARG("--room"))
            opt.room = g_ascii_strtoull(v, NULL, 10);
        else if (strcmp(a, "-v") == 0)
            opt.verbose = 1;
        else
            usage();
    }
    gchar **parts = g_strsplit(steps, ",", 8);
    for (int i = 0; parts[i] && opt.nsteps < 8; i++) {
        int n = atoi(parts[i]);
        if (n < 1 || n > MAXM || (opt.nsteps && n <= opt.steps[opt.nsteps - 1]))
            die("--steps must grow, 1..%d", MAXM);
        opt.steps[opt.nsteps++] = n;
    }
    g_strfreev(parts);
    if (opt.sys != SYS_DIRECT && !opt.url) usage();
    gst_init(NULL, NULL);
    samples = g_new(int, MAX_SAMPLE);
    shown = g_new(int, MAX_SAMPLE);
    txns = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    soup = soup_session_new();
    loop = g_main_loop_new(NULL, FALSE);
    build_sources();
    room_target = opt.steps[0];
    ctl.step_start = ctl.phase_start = g_get_monotonic_time();
    g_timeout_add(200, tick, NULL);
    g_main_loop_run(loop);
    logf_("done");
    fflush(stdout);
    _exit(0); /* tearing 64 webrtcbins down buys nothing: the servers are stopped next */
}
