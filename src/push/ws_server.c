/* ws_server: HTTP and WebSocket for browsers; see ws_server.h.
 *
 * Memory: a connection is a struct ws_conn and nothing else while idle; input is read into one
 * loop-wide buffer and only an incomplete request or frame is copied into a per-connection buffer;
 * output is a queue of references to shared frames, allocated only while something is queued.
 * Timeouts and keep-alive pings come from one sweep timer, not a timer per connection.
 * Teardown of a connection (unsubscribe, user detach) never happens inside a fan-out: closes
 * requested during one are carried out in the flush phase. */
#include "push/ws_server.h"
#include "core/alloc.h"
#include "core/auth_failures.h"
#include "core/ip_count.h"
#include "core/log.h"
#include "core/version.h"
#include "proto/comet_cmd.h"
#include "proto/envelope.h"
#include "proto/http1.h"
#include "proto/jwt.h"
#include "proto/names.h"
#include "proto/sip_credential.h"
#include "proto/ws_frame.h"
#include "server/batch_send.h"
#include "server/listener.h"
#include "server/tls.h"
#include "state/tenants.h"

#include <errno.h>
#include <pthread.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Appends a string literal without counting its bytes by hand. */
#define BUF_LIT(b, lit) buf_append((b), lit, sizeof(lit) - 1)

#define READ_CHUNK    (64 * 1024)
#define MAX_HEAD      8192
#define MAX_IOV       64
#define BATCH_ENTRIES 1024 /* io_uring submission queue: sends per kernel crossing */
#define MAX_WRITERS   8    /* [ws] writer_threads at most */
#define SERVER_NAME   "ccomet " CCOMET_VERSION

struct ws_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t sweep;
    const struct config *cfg;
    struct state *state;           /* users' keys, revoked tokens, queues, history, publishing */
    const struct tenants *tenants; /* browser JWT secrets of tenants with their own */
    struct pubsub *ps;
    struct ws_conn *all;
    struct ws_conn *dirty, *dirty_tail; /* to write, oldest first */
    uv_idle_t more; /* active while dirty connections wait for the next slice: poll won't block */
    uint64_t next_id;
    struct ws_metrics m;
    struct auth_failures failures; /* failed logins per address ([ws] max_auth_failures) */
    struct ip_count per_ip;        /* connections per address ([ws] max_connections_per_ip) */
    bool stopping, listener_closed, sweep_closed, more_closed;
    void (*stopped)(void *ctx);
    void *stopped_ctx;
    void (*metrics_fn)(void *ctx, struct buf *out);
    void *metrics_ctx;
    uint32_t sweeps;
    struct buf scratch;
    uint32_t stop_deadline;
    struct writer *writers[MAX_WRITERS]; /* helpers for large flushes ([ws] writer_threads) */
    size_t n_writers;
    size_t writers_busy;    /* writers holding a lent share */
    uv_async_t writer_done; /* a writer's share is back */
    bool writer_done_closed;
    struct batch_send *send; /* the loop thread's batched writes */
    struct ws_conn **batch;  /* scratch for a large flush */
    struct send_job *jobs;
    size_t batch_cap;
    struct tls_server *tls;           /* wss, when [ws] names a certificate */
    struct buf tls_plain, tls_cipher; /* scratch for one connection's TLS work at a time */
};

struct ws_fragment {
    struct ws_assembler a;
    struct buf msg;
};

struct write_req {
    uv_write_t req;
    struct ws_conn *c;
    size_t bytes;
};

static uint8_t read_buffer[READ_CHUNK];

static void conn_destroy(struct ws_conn *c, const char *why);
static void conn_flush(struct ws_conn *c);
static void stop_progress(struct ws_server *s);
static bool handle_bytes(struct ws_conn *c, uint8_t *data, size_t len, size_t *used);

static uint32_t now_s(void)
{
    return (uint32_t)time(NULL);
}

static void mark_dirty(struct ws_conn *c)
{
    if (c->dirty) return;
    struct ws_server *s = c->srv;
    c->dirty = true;
    c->dirty_next = NULL;
    c->dirty_prev = s->dirty_tail;
    if (s->dirty_tail)
        s->dirty_tail->dirty_next = c;
    else
        s->dirty = c;
    s->dirty_tail = c;
}

static void unmark_dirty(struct ws_conn *c)
{
    if (!c->dirty) return;
    struct ws_server *s = c->srv;
    if (c->dirty_prev)
        c->dirty_prev->dirty_next = c->dirty_next;
    else
        s->dirty = c->dirty_next;
    if (c->dirty_next)
        c->dirty_next->dirty_prev = c->dirty_prev;
    else
        s->dirty_tail = c->dirty_prev;
    c->dirty_prev = c->dirty_next = NULL;
    c->dirty = false;
}

/* ---- output queue --------------------------------------------------------------------------- */

static void outq_free(struct ws_conn *c)
{
    struct outq *q = c->out;
    if (!q) return;
    for (uint32_t i = 0; i < q->count; i++)
        frame_unref(q->frames[(q->head + i) % q->cap]);
    c->srv->m.queued_bytes -= q->bytes;
    xfree(q->frames);
    xfree(q);
    c->out = NULL;
}

/* Drops n written bytes from the front of the queue. */
static void outq_consume(struct ws_conn *c, size_t n)
{
    struct outq *q = c->out;
    q->bytes -= n;
    c->srv->m.queued_bytes -= n;
    while (n && q->count) {
        struct frame *f = q->frames[q->head];
        size_t left = f->len - q->first_off;
        if (n < left) {
            q->first_off += (uint32_t)n;
            return;
        }
        n -= left;
        frame_unref(f);
        q->head = (q->head + 1) % q->cap;
        q->count--;
        q->first_off = 0;
    }
    /* an emptied queue stays allocated until the next sweep: busy connections would otherwise
     * allocate and free it for every message */
}

/* Queues bytes for the socket as they are (ciphertext on TLS connections). */
static bool enqueue(struct ws_conn *c, struct frame *f)
{
    if (c->state == WS_CLOSING && !c->close_after_flush) return false;
    if (!c->out) {
        c->out = xcalloc(1, sizeof *c->out);
    }
    struct outq *q = c->out;
    /* a plain HTTP connection gets one response (a static file up to [ws] max_static_file) and
     * is closed: only WebSocket connections are held to max_output */
    size_t bound = (size_t)c->srv->cfg->ws_max_output;
    if (c->state == WS_HTTP && bound < (size_t)c->srv->cfg->ws_max_static_file + 4096)
        bound = (size_t)c->srv->cfg->ws_max_static_file + 4096;
    if (q->bytes + f->len > bound) {
        /* a slow reader: cut it off alone, everyone else goes on */
        c->srv->m.slow_closed++;
        LOG_RATELIMITED(LOG_WARN, "ws",
                        "conn=%" PRIu64
                        " msg=\"slow reader disconnected\" queued=%zu limit=%" PRId64,
                        c->id, q->bytes, c->srv->cfg->ws_max_output);
        c->state = WS_CLOSING;
        c->close_after_flush = false; /* nothing more will be written */
        mark_dirty(c);
        return false;
    }
    if (q->count == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 4;
        struct frame **fr = xmalloc(cap * sizeof *fr);
        for (uint32_t i = 0; i < q->count; i++)
            fr[i] = q->frames[(q->head + i) % q->cap];
        xfree(q->frames);
        q->frames = fr;
        q->cap = cap;
        q->head = 0;
    }
    q->frames[(q->head + q->count) % q->cap] = frame_ref(f);
    q->count++;
    q->bytes += f->len;
    c->srv->m.queued_bytes += f->len;
    mark_dirty(c);
    return true;
}

static struct frame *frame_bytes(const void *p, size_t len)
{
    struct frame *f = xmalloc(sizeof *f + len);
    f->refs = 1;
    f->len = (uint32_t)len;
    memcpy(f->data, p, len);
    return f;
}

bool ws_conn_send(struct ws_conn *c, struct frame *f)
{
    if (!c->tls) return enqueue(c, f);
    /* wss: each connection needs its own ciphertext; encrypt as it is queued */
    struct buf *cipher = &c->srv->tls_cipher;
    cipher->len = cipher->off = 0;
    if (c->state == WS_CLOSING && !c->close_after_flush) return false;
    if (tls_session_write(c->tls, f->data, f->len, cipher) != 0) {
        c->state = WS_CLOSING;
        c->close_after_flush = false;
        mark_dirty(c);
        return false;
    }
    struct frame *cf = frame_bytes(buf_head(cipher), buf_unread(cipher));
    bool ok = enqueue(c, cf);
    frame_unref(cf);
    return ok;
}

bool ws_conn_send_text(struct ws_conn *c, const void *payload, size_t len)
{
    struct frame *f = frame_text(payload, len);
    bool ok = ws_conn_send(c, f);
    frame_unref(f);
    return ok;
}

void ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason)
{
    if (c->state == WS_CLOSING) return;
    if (c->state == WS_OPEN) {
        uint8_t payload[125];
        size_t rl = reason ? strlen(reason) : 0;
        if (rl > 123) rl = 123;
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        if (rl) memcpy(payload + 2, reason, rl);
        struct frame *f = frame_new(WS_OP_CLOSE, payload, rl + 2);
        ws_conn_send(c, f);
        frame_unref(f);
    }
    c->state = WS_CLOSING;
    c->close_after_flush = true;
    c->last_seen = now_s(); /* the sweep gives the close this long to complete */
    mark_dirty(c);
}

/* Closes without a WebSocket close frame (HTTP answers, broken peers). */
static void close_after_write(struct ws_conn *c)
{
    c->state = WS_CLOSING;
    c->close_after_flush = true;
    c->last_seen = now_s();
    mark_dirty(c);
}

/* Queues bytes that are not a WebSocket frame (the 101 answer). */
static void send_raw(struct ws_conn *c, const void *bytes, size_t len)
{
    struct frame *f = frame_bytes(bytes, len);
    ws_conn_send(c, f);
    frame_unref(f);
}

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct ws_conn *c = w->c;
    c->writing = false;
    c->wreq = NULL;
    size_t n = w->bytes;
    xfree(w);
    if (status < 0) {
        conn_destroy(c, uv_strerror(status));
        return;
    }
    c->srv->m.bytes_out += n;
    outq_consume(c, n);
    conn_flush(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status; /* the read side ends the connection (EOF, error, or the close timeout) */
    xfree(req);
}

static void conn_flush(struct ws_conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp) || c->close_pending) return;
    if (c->state == WS_CLOSING && !c->close_after_flush) {
        conn_destroy(c, "cut off");
        return;
    }
    while (c->out && c->out->count && !c->writing) {
        struct outq *q = c->out;
        uv_buf_t iov[MAX_IOV];
        unsigned n = 0;
        size_t bytes = 0;
        for (uint32_t i = 0; i < q->count && n < MAX_IOV; i++) {
            struct frame *f = q->frames[(q->head + i) % q->cap];
            uint32_t off = i == 0 ? q->first_off : 0;
            iov[n++] = uv_buf_init((char *)f->data + off, f->len - off);
            bytes += f->len - off;
        }
        int w = uv_try_write((uv_stream_t *)&c->tcp, iov, n);
        if (w < 0 && w != UV_EAGAIN) {
            conn_destroy(c, uv_strerror(w));
            return;
        }
        if (w > 0) {
            c->srv->m.bytes_out += (size_t)w;
            outq_consume(c, (size_t)w);
            if ((size_t)w == bytes) continue;
        }
        /* the socket is full: hand the rest to libuv and wait for it */
        q = c->out;
        n = 0;
        bytes = 0;
        for (uint32_t i = 0; i < q->count && n < MAX_IOV; i++) {
            struct frame *f = q->frames[(q->head + i) % q->cap];
            uint32_t off = i == 0 ? q->first_off : 0;
            iov[n++] = uv_buf_init((char *)f->data + off, f->len - off);
            bytes += f->len - off;
        }
        struct write_req *wr = xmalloc(sizeof *wr);
        wr->c = c;
        wr->bytes = bytes;
        c->writing = true;
        c->wreq = &wr->req;
        int rc = uv_write(&wr->req, (uv_stream_t *)&c->tcp, iov, n, on_write);
        if (rc < 0) {
            c->writing = false;
            c->wreq = NULL;
            xfree(wr);
            conn_destroy(c, uv_strerror(rc));
        }
        return;
    }
    if (c->close_after_flush && !c->writing && (!c->out || !c->out->count)) {
        if (!c->linger) {
            conn_destroy(c, "closed");
            return;
        }
        /* a fatal error's last words: closing now, with the peer's unread commands still in our
         * receive buffer, would send an RST that can destroy them before the page reads them;
         * so half-close and wait for its end (or the sweep's close timeout) */
        if (c->shut) return;
        c->shut = true;
        uv_shutdown_t *req = xmalloc(sizeof *req);
        if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
            xfree(req);
            conn_destroy(c, "closed");
        }
    }
}

/* ---- batched and parallel flush -------------------------------------------------------------
 * A fan-out's cost is almost all the kernel's work inside the socket writes. When many
 * connections are dirty at once, their writes go out as one batch (batch_send: one io_uring
 * submission, or a writev each), and from PARALLEL_MIN on an idle writer thread takes a share of
 * the batch while the loop thread sends the rest. The loop never waits for a writer: it goes back
 * to reading as soon as its own share is sent, and applies a writer's results to the queues when
 * the writer says it is done (uv_async). Until then the share's connections are lent: marked
 * writing, so nothing else writes them, frees their frames or closes their descriptors (a close
 * meanwhile is carried out when the share comes back). A writer touches nothing but descriptors
 * and iovecs. A flush that finds every writer busy sends the whole batch on the loop thread. */

#define BATCH_MIN    16  /* dirty connections below which each is written on its own */
#define PARALLEL_MIN 256 /* ... below which one thread is faster */

enum writer_phase { WRITER_IDLE, WRITER_BUSY, WRITER_DONE };

struct writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uv_async_t *done;        /* the loop's wake-up: a share is back */
    struct batch_send *send; /* the writer's own (an io_uring is one thread's) */
    struct ws_conn **conns;  /* the lent share (the loop's; read by the writer only via jobs) */
    struct send_job *jobs;
    size_t n, cap;
    int phase; /* enum writer_phase, under mu */
    bool quit;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->phase != WRITER_BUSY && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit) break;
        pthread_mutex_unlock(&w->mu);
        batch_send_run(w->send, w->jobs, w->n);
        pthread_mutex_lock(&w->mu);
        w->phase = WRITER_DONE;
        uv_async_send(w->done);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static struct writer *writer_start(bool uring, uv_async_t *done)
{
    struct writer *w = xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->done = done;
    w->send = batch_send_new(BATCH_ENTRIES, uring);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        batch_send_free(w->send);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        xfree(w);
        return NULL;
    }
    return w;
}

static void writer_stop(struct writer *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    batch_send_free(w->send);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    xfree(w->conns);
    xfree(w->jobs);
    xfree(w);
}

static int writer_phase(struct writer *w)
{
    pthread_mutex_lock(&w->mu);
    int phase = w->phase;
    pthread_mutex_unlock(&w->mu);
    return phase;
}

/* Describes what c would write now, or fd = -1 when it has nothing or cannot be written. */
static void prepare_job(struct ws_conn *c, struct send_job *j)
{
    j->fd = -1;
    j->result = 0;
    uv_os_fd_t fd;
    if (uv_is_closing((uv_handle_t *)&c->tcp) || c->close_pending || c->writing || !c->out ||
        !c->out->count || (c->state == WS_CLOSING && !c->close_after_flush) ||
        uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
        return;
    struct outq *q = c->out;
    int n = 0;
    for (uint32_t i = 0; i < q->count && n < SEND_JOB_IOV; i++) {
        struct frame *f = q->frames[(q->head + i) % q->cap];
        uint32_t off = i == 0 ? q->first_off : 0;
        j->iov[n].iov_base = f->data + off;
        j->iov[n].iov_len = f->len - off;
        n++;
    }
    j->iovcnt = n;
    j->fd = fd;
}

/* What a batch's write did to c: the queue gives up what was sent, a failed socket closes.
 * Then conn_flush deals with what is left (uv_write, the close, or nothing); but with
 * requeue, a connection whose socket took all it was given and that has more queued (frames
 * that came while it was lent) goes back on the dirty list, to ride the next batch. */
static void apply_job(struct ws_server *s, struct ws_conn *c, const struct send_job *j,
                      bool requeue)
{
    if (j->fd >= 0) {
        if (j->result > 0) {
            s->m.bytes_out += (size_t)j->result;
            outq_consume(c, (size_t)j->result);
        } else if (j->result < 0 && j->err != EAGAIN && j->err != EWOULDBLOCK && j->err != EINTR) {
            conn_destroy(c, strerror(j->err));
            return;
        }
        size_t given = 0;
        for (int i = 0; i < j->iovcnt; i++)
            given += j->iov[i].iov_len;
        if (requeue && j->result == (ssize_t)given && c->out && c->out->count &&
            c->state == WS_OPEN) {
            mark_dirty(c);
            return;
        }
    }
    conn_flush(c);
}

static void conn_close_handle(struct ws_conn *c);

/* Takes back writer w's share: its connections are the loop's again. */
static void writer_collect(struct ws_server *s, struct writer *w)
{
    for (size_t i = 0; i < w->n; i++) {
        struct ws_conn *c = w->conns[i];
        c->lent = false;
        c->writing = false;
        if (c->close_pending)
            conn_close_handle(c);
        else
            apply_job(s, c, &w->jobs[i], true);
    }
    w->n = 0;
    pthread_mutex_lock(&w->mu);
    w->phase = WRITER_IDLE;
    pthread_mutex_unlock(&w->mu);
    s->writers_busy--;
}

static void on_writer_done(uv_async_t *h)
{
    struct ws_server *s = h->data;
    for (size_t i = 0; i < s->n_writers; i++)
        if (writer_phase(s->writers[i]) == WRITER_DONE) writer_collect(s, s->writers[i]);
    stop_progress(s);
}

/* Lends the last `count` connections of s->batch[0..n) to idle writer w. */
static void writer_lend(struct ws_server *s, struct writer *w, size_t from, size_t count)
{
    if (count > w->cap) {
        w->cap = count;
        w->conns = xrealloc(w->conns, count * sizeof *w->conns);
        w->jobs = xrealloc(w->jobs, count * sizeof *w->jobs);
    }
    size_t k = 0;
    for (size_t i = from; i < from + count; i++) {
        struct ws_conn *c = s->batch[i];
        prepare_job(c, &w->jobs[k]);
        if (w->jobs[k].fd < 0) {
            conn_flush(c); /* nothing to send (a close to carry out, or a uv_write in flight) */
            continue;
        }
        c->lent = c->writing = true;
        w->conns[k++] = c;
    }
    if (!k) return;
    w->n = k;
    s->writers_busy++;
    pthread_mutex_lock(&w->mu);
    w->phase = WRITER_BUSY;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Writes the n connections of s->batch at once: from PARALLEL_MIN on, each idle writer takes an
 * equal share and the loop thread sends the first; the loop applies its own results at once. */
static void flush_batch(struct ws_server *s, size_t n)
{
    struct writer *idle[MAX_WRITERS];
    size_t helpers = 0;
    if (n >= PARALLEL_MIN)
        for (size_t i = 0; i < s->n_writers; i++)
            if (writer_phase(s->writers[i]) == WRITER_IDLE) idle[helpers++] = s->writers[i];
    size_t share = n / (helpers + 1);
    size_t from = share;
    for (size_t h = 0; h < helpers; h++) {
        size_t count = h + 1 == helpers ? n - from : share;
        writer_lend(s, idle[h], from, count);
        from += count;
    }
    size_t own = helpers ? share : n;
    for (size_t i = 0; i < own; i++)
        prepare_job(s->batch[i], &s->jobs[i]);
    batch_send_run(s->send, s->jobs, own);
    for (size_t i = 0; i < own; i++)
        apply_job(s, s->batch[i], &s->jobs[i], false);
}

static void on_more(uv_idle_t *h)
{
    (void)h; /* the next loop turn's flush (before poll) writes the next slice */
}

/* Writes the oldest [ws] flush_slice dirty connections (all of them with 0). What is left waits
 * one loop turn, in which the loop reads what arrived meanwhile: a message published while a
 * large fan-out is under way joins the queues not yet written, so each of those connections
 * takes both in one write instead of two (the more behind the server is, the fewer writes per
 * message), and CometQL and browsers are answered between slices. A slice large enough for the
 * writers waits while every writer is still sending its last share (so the loop thread takes no
 * more than its part of a fan-out): true then, and the writer's wake-up brings the next turn. */
static bool flush_slice(struct ws_server *s, size_t limit)
{
    size_t n = 0;
    for (struct ws_conn *c = s->dirty; c && n < PARALLEL_MIN && n < limit; c = c->dirty_next)
        n++;
    if (n >= PARALLEL_MIN && s->n_writers && s->writers_busy == s->n_writers) return true;
    if (n >= BATCH_MIN) {
        n = 0;
        while (s->dirty && n < limit) {
            struct ws_conn *c = s->dirty;
            if (n == s->batch_cap) {
                s->batch_cap = s->batch_cap ? s->batch_cap * 2 : 1024;
                s->batch = xrealloc(s->batch, s->batch_cap * sizeof *s->batch);
                s->jobs = xrealloc(s->jobs, s->batch_cap * sizeof *s->jobs);
            }
            s->batch[n++] = c;
            unmark_dirty(c);
        }
        flush_batch(s, n);
        return false;
    }
    for (n = 0; s->dirty && n < limit; n++) {
        struct ws_conn *c = s->dirty;
        unmark_dirty(c);
        conn_flush(c);
    }
    return false;
}

void ws_server_flush(struct ws_server *s)
{
    size_t slice = s->cfg->ws_flush_slice > 0 ? (size_t)s->cfg->ws_flush_slice : SIZE_MAX;
    for (size_t i = 0; i < s->n_writers && s->writers_busy; i++)
        if (writer_phase(s->writers[i]) == WRITER_DONE) writer_collect(s, s->writers[i]);
    bool waiting = flush_slice(s, slice);
    if (uv_is_closing((uv_handle_t *)&s->more)) return;
    if (s->dirty && !waiting)
        uv_idle_start(&s->more, on_more);
    else
        uv_idle_stop(&s->more);
}

/* ---- messages to one client ------------------------------------------------------------------ */

static void send_json(struct ws_conn *c, struct buf *b)
{
    ws_conn_send_text(c, buf_head(b), buf_unread(b));
    b->len = b->off = 0;
}

static void send_error(struct ws_conn *c, const char *text)
{
    struct buf *b = &c->srv->scratch;
    b->len = b->off = 0;
    env_begin(b);
    BUF_LIT(b, "\"data\":{\"number_messages\":-1,\"error\":");
    env_put_string(b, text, strlen(text));
    buf_put_u8(b, '}');
    env_cstr(b, "event", "error");
    env_int(b, "message_send_time", (int64_t)time(NULL));
    env_cstr(b, "pipe", "sys");
    env_end(b);
    send_json(c, b);
}

/* CppComet reports URL errors over the WebSocket, then closes. */
static void send_fatal(struct ws_conn *c, int code, const char *text)
{
    char msg[256];
    snprintf(msg, sizeof msg, "Error code %d(%s)", code, text);
    struct buf *b = &c->srv->scratch;
    b->len = b->off = 0;
    env_begin(b);
    BUF_LIT(b, "\"data\":{\"error\":");
    env_put_string(b, msg, strlen(msg));
    BUF_LIT(b, ",\"info\":\"Closed due to error. See last message.\",\"error_code\":");
    char num[16];
    int n = snprintf(num, sizeof num, "%d}", code);
    buf_append(b, num, (size_t)n);
    env_cstr(b, "event", "error");
    env_int(b, "message_send_time", (int64_t)time(NULL));
    env_cstr(b, "pipe", "sys");
    env_end(b);
    send_json(c, b);
    ws_conn_close(c, 1008, text);
    c->linger = true;
}

/* ---- HTTP -------------------------------------------------------------------------------------
 */

/* One HTTP response, then the close. cors: Access-Control-Allow-Origin: * (static files and
 * /info; not /metrics, which no page needs to read). */
static void http_reply_cors(struct ws_conn *c, int status, const char *reason, const char *ctype,
                            const char *extra_headers, const void *body, size_t body_len, bool cors)
{
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nServer: %s\r\nContent-Type: %s\r\nContent-Length: "
                     "%zu\r\n%sConnection: close\r\n%s\r\n",
                     status, reason, SERVER_NAME, ctype, body_len,
                     cors ? "Access-Control-Allow-Origin: *\r\n" : "",
                     extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= sizeof head) { /* our own static texts: cannot happen */
        close_after_write(c);
        return;
    }
    struct frame *f = xmalloc(sizeof *f + (size_t)n + body_len);
    f->refs = 1;
    f->len = (uint32_t)((size_t)n + body_len);
    memcpy(f->data, head, (size_t)n);
    if (body_len) memcpy(f->data + n, body, body_len);
    ws_conn_send(c, f);
    frame_unref(f);
    close_after_write(c);
}

static void http_reply(struct ws_conn *c, int status, const char *reason, const char *ctype,
                       const char *extra_headers, const void *body, size_t body_len)
{
    http_reply_cors(c, status, reason, ctype, extra_headers, body, body_len, true);
}

static void http_error(struct ws_conn *c, int status)
{
    const char *reason = status == 400   ? "Bad Request"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 414 ? "URI Too Long"
                         : status == 431 ? "Request Header Fields Too Large"
                         : status == 501 ? "Not Implemented"
                         : status == 503 ? "Service Unavailable"
                         : status == 505 ? "HTTP Version Not Supported"
                                         : "Error";
    char body[96];
    int n = snprintf(body, sizeof body, "%d %s\n", status, reason);
    http_reply(c, status, reason, "text/plain; charset=utf-8", NULL, body, (size_t)n);
}

static const char *mime_type(const char *path, size_t len)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"},
        {".htm", "text/html; charset=utf-8"},
        {".js", "application/javascript; charset=utf-8"},
        {".mjs", "application/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".gif", "image/gif"},
        {".svg", "image/svg+xml"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json"},
        {".wasm", "application/wasm"},
        {".webp", "image/webp"},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t el = strlen(types[i][0]);
        if (len > el && strncasecmp(path + len - el, types[i][0], el) == 0) return types[i][1];
    }
    return NULL;
}

static void serve_static(struct ws_conn *c, const char *path, size_t len)
{
    char decoded[1024];
    size_t dl;
    if (len >= sizeof decoded || http1_percent_decode(path, len, decoded, &dl) != HTTP1_OK) {
        http_error(c, 400);
        return;
    }
    decoded[dl] = '\0';
    if (dl >= 14 && memcmp(decoded, "/comet-server/", 14) == 0)
        memmove(decoded, decoded + 13, dl - 12), dl -= 13;
    if (strstr(decoded, "..") || strchr(decoded, '\\')) {
        http_error(c, 404);
        return;
    }
    if (dl == 1) { /* "/" */
        static const char index_html[] =
            "<!doctype html><meta charset=utf-8><title>ccomet</title>"
            "<h1>ccomet " CCOMET_VERSION "</h1><p>A comet server with CometQL. "
            "<a href=\"/demo/chat.html\">Chat demo</a></p>";
        char full[1200];
        snprintf(full, sizeof full, "%s/index.html", c->srv->cfg->base_dir);
        if (access(full, R_OK) != 0) {
            http_reply(c, 200, "OK", "text/html; charset=utf-8", NULL, index_html,
                       sizeof index_html - 1);
            return;
        }
        memcpy(decoded, "/index.html", 12);
        dl = 11;
    }
    const char *mime = mime_type(decoded, dl);
    char full[1200];
    int fl = snprintf(full, sizeof full, "%s%s", c->srv->cfg->base_dir, decoded);
    if (!mime || fl <= 0 || (size_t)fl >= sizeof full) {
        http_error(c, 404);
        return;
    }
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > c->srv->cfg->ws_max_static_file) {
        if (fd >= 0) close(fd);
        http_error(c, 404);
        return;
    }
    size_t size = (size_t)st.st_size;
    char *body = xmalloc(size + 1);
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, body + got, size - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    http_reply(c, 200, "OK", mime, "Cache-Control: no-cache\r\n", body, got);
    xfree(body);
}

static bool peer_is_loopback(const struct ws_conn *c)
{
    static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return (memcmp(c->ip, v4, 12) == 0 && c->ip[12] == 127) || memcmp(c->ip, v6, 16) == 0;
}

static void serve_metrics(struct ws_conn *c)
{
    struct ws_server *s = c->srv;
    /* [ws] metrics (security audit L7): the counters tell an outsider the node's load and who
     * is cut off; by default only a scraper on this machine reads them */
    const char *who = s->cfg->ws_metrics;
    if (strcmp(who, "off") == 0 || (strcmp(who, "loopback") == 0 && !peer_is_loopback(c))) {
        static const char body[] = "metrics are not served to this address ([ws] metrics)\n";
        http_reply_cors(c, 403, "Forbidden", "text/plain; charset=utf-8", NULL, body,
                        sizeof body - 1, false);
        return;
    }
    struct pubsub_stats ps;
    pubsub_stats(s->ps, &ps);
    struct buf b;
    buf_init(&b);
    char line[256];
#define METRIC(name, type, help, value)                                                            \
    do {                                                                                           \
        int n_ = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, \
                          help, name, type, name, (uint64_t)(value));                              \
        buf_append(&b, line, (size_t)n_);                                                          \
    } while (0)
    METRIC("ccomet_ws_connections", "gauge", "Open browser connections.", s->m.connections);
    METRIC("ccomet_ws_accepted_total", "counter", "Browser connections accepted.", s->m.accepted);
    METRIC("ccomet_ws_frames_in_total", "counter", "WebSocket frames received.", s->m.frames_in);
    METRIC("ccomet_ws_bytes_out_total", "counter", "Bytes written to browsers.", s->m.bytes_out);
    METRIC("ccomet_ws_queued_bytes", "gauge", "Bytes queued to browsers, not yet written.",
           s->m.queued_bytes);
    METRIC("ccomet_ws_slow_readers_total", "counter", "Connections cut off for not reading.",
           s->m.slow_closed);
    METRIC("ccomet_ws_protocol_errors_total", "counter", "Connections closed for bad input.",
           s->m.protocol_errors);
    METRIC("ccomet_pipes", "gauge", "Pipes with subscribers or recent messages.", ps.pipes);
    METRIC("ccomet_users_online", "gauge", "Users with at least one connection.", ps.users);
    METRIC("ccomet_messages_published_total", "counter", "Messages fanned out.", ps.published);
    METRIC("ccomet_messages_delivered_total", "counter", "Deliveries to connections.",
           ps.delivered);
    METRIC("ccomet_recovery_bytes", "gauge",
           "Bytes the pipes' recovery rings hold ([ws] recovery_memory bounds them).",
           ps.ring_bytes);
    METRIC("ccomet_recovery_evicted_total", "counter",
           "Ring entries dropped early to stay under [ws] recovery_memory.", ps.ring_evicted);
    METRIC("ccomet_ws_rate_limited_total", "counter",
           "Connections closed for sending commands past [ws] command_rate.", s->m.rate_limited);
    METRIC("ccomet_ws_per_ip_refused_total", "counter",
           "Connections refused past [ws] max_connections_per_ip.", s->m.per_ip_refused);
#undef METRIC
    if (s->metrics_fn) s->metrics_fn(s->metrics_ctx, &b);
    http_reply_cors(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, buf_head(&b),
                    buf_unread(&b), false);
    buf_free(&b);
}

/* ---- WebSocket handshake and authentication ----------------------------------------------------
 */

/* A URL parameter by name, or CppComet's positional fallback (the n-th '&'-separated field). */
static bool url_param(const char *params, size_t len, const char *name, int position,
                      const char **v, size_t *vl)
{
    if (http1_query_param(params, len, name, v, vl)) return true;
    const char *p = params, *end = params + len;
    for (int i = 0; i < position && p < end; i++) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (!amp) return false;
        p = amp + 1;
    }
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *eq = memchr(p, '=', (size_t)((amp ? amp : end) - p));
    if (!eq) return false;
    *v = eq + 1;
    *vl = (size_t)((amp ? amp : end) - *v);
    return true;
}

static bool parse_i64(const char *s, size_t len, int64_t *out)
{
    if (!len || len > 18) return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* ---- state calls made for a connection ----------------------------------------------------
 * A state call may complete after the command that made it returned (state.h). The connection
 * is held until it does (conn_release), and the commands after it wait (command_wait /
 * command_done), so answers keep the order of the requests. */

static void conn_free(struct ws_conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b);
static void process_plain(struct ws_conn *c, uint8_t *data, size_t len);

static void conn_hold(struct ws_conn *c)
{
    c->holds++;
}

/* A state call made for c completed: false when c is closing or gone (then it may have been
 * freed here: touch nothing). */
static bool conn_release(struct ws_conn *c)
{
    c->holds--;
    if (c->handle_gone) {
        if (!c->holds) conn_free(c);
        return false;
    }
    return c->state != WS_CLOSING;
}

static void command_wait(struct ws_conn *c)
{
    c->waiting = true;
}

/* The waiting command has answered: input goes on (at once, unless handle_bytes is on the
 * stack: it goes on by itself). */
static void command_done(struct ws_conn *c)
{
    static uint8_t nothing;
    c->waiting = false;
    if (c->in_input || c->state == WS_CLOSING) return;
    if (c->read_paused) {
        c->read_paused = false;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    if (c->in) process_plain(c, &nothing, 0);
}

struct auth_call {
    struct ws_conn *c;
    char hash[65]; /* the user's stored key */
    bool found, revoked, by_jwt;
    size_t session_len;
    char session[]; /* what the browser presented (a key or a JWT), NUL-terminated */
};

static int take_hash(void *ctx, const struct value *cols, size_t n)
{
    struct auth_call *a = ctx;
    if (n >= 2 && cols[1].kind == VALUE_STR && cols[1].len < sizeof a->hash) {
        memcpy(a->hash, cols[1].s, cols[1].len);
        a->hash[cols[1].len] = '\0';
        a->found = true;
    }
    return 1;
}

static int take_revoked(void *ctx, const struct value *cols, size_t n)
{
    (void)cols;
    (void)n;
    ((struct auth_call *)ctx)->revoked = true;
    return 1;
}

static void send_server_info(struct ws_conn *c, const char *hash)
{
    struct buf *b = &c->srv->scratch;
    b->len = b->off = 0;
    env_begin(b);
    env_cstr(b, "data", hash);
    env_cstr(b, "pipe", "sys");
    env_cstr(b, "event", "serverInfo");
    env_cstr(b, "server", SERVER_NAME);
    env_bool(b, "authorized", c->authorized);
    /* nodes sharing one state number messages alike: a client may move between them and ask
     * any for what it missed (the JS client keys its last ids by this) */
    const struct config *cfg = c->srv->cfg;
    if (strcmp(cfg->store_type, "redis") == 0) env_cstr(b, "cluster", cfg->redis_prefix);
    env_int(b, "message_send_time", (int64_t)time(NULL));
    env_end(b);
    send_json(c, b);
}

struct queue_call {
    struct ws_conn *c;
    int64_t ids[1000];
    size_t n;
};

static int send_queued(void *ctx, const struct value *cols, size_t n)
{
    struct queue_call *q = ctx;
    (void)n; /* (user_id, id, time, event, message) */
    if (q->c->state != WS_OPEN) return 1;
    struct buf *b = &q->c->srv->scratch;
    b->len = b->off = 0;
    env_begin(b);
    env_str(b, "data", cols[4].s, cols[4].len);
    env_str(b, "event", cols[3].s, cols[3].len);
    env_bool(b, "fromQueue", true);
    if (q->c->acks_queue) env_int(b, "queue_id", cols[1].i); /* to ack with msg_ack */
    env_int(b, "message_send_time", cols[2].i);
    env_cstr(b, "pipe", "msg");
    env_end(b);
    send_json(q->c, b);
    if (q->n < sizeof q->ids / sizeof q->ids[0]) q->ids[q->n++] = cols[1].i;
    return 0;
}

static void queue_sent(void *ctx, int64_t result, const char *err)
{
    struct queue_call *q = ctx;
    struct ws_conn *c = q->c;
    if (!conn_release(c)) {
        xfree(q);
        return;
    }
    if (result < 0)
        LOG_RATELIMITED(LOG_ERROR, "ws",
                        "conn=%" PRIu64 " msg=\"cannot read the offline queue\" error=\"%s\"",
                        c->id, err ? err : "?");
    /* A client that acks (ack=1) keeps its messages queued until it says it has them, so a
     * connection that dies before the page read them loses nothing (they come again on the
     * next connection). Others (CppComet's clients) lose them from the queue once they are
     * handed to the socket, as CppComet does. */
    struct state *st = c->srv->state;
    struct state_cb cb = state_cb_log("users_messages");
    for (size_t i = 0; i < q->n && !c->acks_queue; i++)
        st->ops->queue_delete_id(st, c->dev_id, q->ids[i], &cb);
    xfree(q);
    command_done(c);
}

struct auth_wait {
    struct ws_conn *c;
    char hash[65];
};

static void auth_subscribed(void *ctx);

/* The end of authentication: presence, serverInfo, then the offline queue. */
static void auth_complete(struct ws_conn *c, const char *hash)
{
    struct ws_server *s = c->srv;
    if (c->authorized && !pubsub_user_attach(s->ps, c)) {
        c->authorized = false;
        char msg[128];
        snprintf(msg, sizeof msg, "Too many connections for this user (limit %" PRId64 ")",
                 s->cfg->ws_max_connections_per_user);
        send_fatal(c, 429, msg);
        command_done(c);
        return;
    }
    if (!c->authorized) c->user_id = 0;
    /* in cluster mode the user's channel must be in place before the queue is read: a message
     * sent meanwhile is then either queued (and read below) or delivered live */
    struct auth_wait *w = xmalloc(sizeof *w);
    w->c = c;
    snprintf(w->hash, sizeof w->hash, "%s", hash);
    conn_hold(c);
    if (!c->authorized || !pubsub_barrier(s->ps, auth_subscribed, w)) auth_subscribed(w);
}

static void auth_subscribed(void *ctx)
{
    struct auth_wait *w = ctx;
    struct ws_conn *c = w->c;
    if (!conn_release(c)) {
        xfree(w);
        return;
    }
    struct ws_server *s = c->srv;
    send_server_info(c, w->hash);
    xfree(w);
    if (!c->authorized) {
        command_done(c);
        return;
    }
    struct queue_call *q = xmalloc(sizeof *q);
    q->c = c;
    q->n = 0;
    conn_hold(c);
    struct state_cb cb = {send_queued, queue_sent, q};
    s->state->ops->queue_list(s->state, c->dev_id, c->user_id, 1000, &cb);
}

static void auth_finish(struct auth_call *a)
{
    struct ws_conn *c = a->c;
    struct ws_server *s = c->srv;
    if (c->authorized)
        auth_failures_clear(&s->failures, c->ip);
    else /* a wrong key, a bad or revoked token: the connection goes on anonymous, counted */
        auth_failures_add(&s->failures, c->ip, now_s(), s->cfg->ws_auth_failure_window);
    char hash[65] = "";
    if (c->authorized && (!a->by_jwt || s->cfg->jwt_returns_key)) {
        snprintf(hash, sizeof hash, "%s", a->hash);
    } else if (c->authorized) {
        /* audit H2: a token's session never learns the permanent key; its SIP password is a
         * credential that ends with the token (sip_credential.h), which the directory endpoint
         * recognises in the media node's digest */
        int64_t exp = 0, now = (int64_t)time(NULL);
        bool has_exp = jwt_numeric_claim(a->session, a->session_len, "exp", &exp);
        int64_t until = sip_credential_expiry(now, has_exp, exp, s->cfg->jwt_credential_ttl);
        if (until)
            sip_credential_make(a->hash, strlen(a->hash), c->dev_id, c->user_id, until, hash);
    }
    xfree(a);
    auth_complete(c, hash);
}

static void auth_key_stored(void *ctx, int64_t result, const char *err)
{
    struct auth_call *a = ctx;
    if (!conn_release(a->c)) {
        xfree(a);
        return;
    }
    if (result < 0) { /* the browser is told a key no later login will find */
        LOG_RATELIMITED(LOG_ERROR, "ws",
                        "conn=%" PRIu64 " msg=\"cannot store the user's key\" error=\"%s\"",
                        a->c->id, err ? err : "?");
        a->c->authorized = false;
    }
    auth_finish(a);
}

static void auth_token_checked(void *ctx, int64_t result, const char *err)
{
    struct auth_call *a = ctx;
    struct ws_conn *c = a->c;
    if (!conn_release(c)) {
        xfree(a);
        return;
    }
    if (result < 0 || a->revoked) { /* a storage error opens nothing */
        auth_finish(a);
        return;
    }
    c->authorized = true;
    a->by_jwt = true;
    if (a->found) {
        auth_finish(a);
        return;
    }
    /* the user's real key (later its SIP password) is created on first use */
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t rnd[32];
    RAND_bytes(rnd, sizeof rnd);
    for (int i = 0; i < 32; i++)
        a->hash[i] = alphabet[rnd[i] % 62];
    a->hash[32] = '\0';
    conn_hold(c);
    struct state_cb cb = {NULL, auth_key_stored, a};
    c->srv->state->ops->auth_put(c->srv->state, c->dev_id, c->user_id, a->hash, 32, &cb);
}

static void auth_hash_read(void *ctx, int64_t result, const char *err)
{
    struct auth_call *a = ctx;
    struct ws_conn *c = a->c;
    struct ws_server *s = c->srv;
    if (!conn_release(c)) {
        xfree(a);
        return;
    }
    if (result < 0) a->found = false; /* a storage error opens nothing */
    int64_t uid = -1;
    if (a->session_len <= 600 && memchr(a->session, '.', a->session_len) &&
        tenants_jwt_verify(s->tenants, s->cfg->password, c->dev_id, a->session, a->session_len,
                           (int64_t)time(NULL), &uid) == JWT_VALID &&
        uid == c->user_id) {
        conn_hold(c);
        struct state_cb cb = {take_revoked, auth_token_checked, a};
        s->state->ops->token_get(s->state, c->dev_id, a->session, a->session_len, &cb);
        return;
    }
    if (a->found && strlen(a->hash) == a->session_len &&
        CRYPTO_memcmp(a->hash, a->session, a->session_len) == 0)
        c->authorized = true;
    auth_finish(a);
}

/* Authorizes c as its user with a key or a JWT; the commands after it wait for the answer. */
static void authenticate(struct ws_conn *c, const char *session, size_t session_len)
{
    command_wait(c);
    if (c->user_id <= 0 || !session_len) {
        auth_complete(c, "");
        return;
    }
    const struct config *cfg = c->srv->cfg;
    uint32_t wait = auth_failures_blocked(&c->srv->failures, c->ip, now_s(),
                                          cfg->ws_max_auth_failures, cfg->ws_auth_failure_window);
    if (wait) { /* the key is not looked at: guessing costs the window per cap's worth of tries */
        char msg[160];
        snprintf(msg, sizeof msg,
                 "Too many failed logins from this address (%" PRId64 " in %" PRId64
                 " s); retry in %u s",
                 cfg->ws_max_auth_failures, cfg->ws_auth_failure_window, wait);
        LOG_RATELIMITED(LOG_WARN, "ws",
                        "conn=%" PRIu64 " msg=\"login refused: too many failed logins\" "
                        "retry_s=%u",
                        c->id, wait);
        send_fatal(c, 429, msg);
        command_done(c);
        return;
    }
    struct auth_call *a = xcalloc(1, sizeof *a + session_len + 1);
    a->c = c;
    a->session_len = session_len;
    memcpy(a->session, session, session_len);
    conn_hold(c);
    struct state_cb cb = {take_hash, auth_hash_read, a};
    c->srv->state->ops->auth_get(c->srv->state, c->dev_id, c->user_id, &cb);
}

static void ws_open(struct ws_conn *c, const struct http1_request *req, const char *params,
                    size_t params_len)
{
    size_t kl;
    const char *key = http1_header(req, "Sec-WebSocket-Key", &kl);
    size_t vl;
    const char *ver = http1_header(req, "Sec-WebSocket-Version", &vl);
    if (!key || !ws_key_valid(key, kl) || !ver || vl != 2 || memcmp(ver, "13", 2) != 0 ||
        !http1_header_has_token(req, "Upgrade", "websocket")) {
        http_reply(c, 400, "Bad Request", "text/plain; charset=utf-8",
                   "Sec-WebSocket-Version: 13\r\n", "not a WebSocket handshake\n", 26);
        return;
    }
    char accept[WS_ACCEPT_LEN + 1];
    ws_accept_key(key, kl, accept);
    char proto_hdr[128] = "";
    size_t pl;
    const char *proto = http1_header(req, "Sec-WebSocket-Protocol", &pl);
    if (proto && pl) { /* echo the first protocol the client offered */
        size_t first = 0;
        while (first < pl && proto[first] != ',' && proto[first] != ' ')
            first++;
        if (first && first < 64)
            snprintf(proto_hdr, sizeof proto_hdr, "Sec-WebSocket-Protocol: %.*s\r\n", (int)first,
                     proto);
    }
    char resp[512];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%sServer: %s\r\n\r\n",
                     accept, proto_hdr, SERVER_NAME);
    send_raw(c, resp, (size_t)n);
    c->state = WS_OPEN;
    c->last_seen = now_s();

    /* client details for users_in_pipes */
    struct ws_server *s = c->srv;
    size_t hl;
    const char *h;
    if ((h = http1_header(req, "User-Agent", &hl)))
        c->user_agent = pubsub_intern(s->ps, h, hl > 250 ? 250 : hl);
    if ((h = http1_header(req, "Origin", &hl)))
        c->origin = pubsub_intern(s->ps, h, hl > 250 ? 250 : hl);
    if ((h = http1_header(req, "Accept-Language", &hl)))
        c->language = pubsub_intern(s->ps, h, hl > 64 ? 64 : hl);

    const char *v;
    size_t len;
    const char *session = NULL;
    size_t session_len = 0;
    if (!url_param(params, params_len, "sesion", 0, &session, &session_len) &&
        !url_param(params, params_len, "session", 0, &session, &session_len)) {
        send_fatal(c, 401, "Invalid request, session ID not found");
        return;
    }
    int64_t user_id = 0, dev_id = 0;
    if (url_param(params, params_len, "myid", 1, &v, &len) && !parse_i64(v, len, &user_id))
        user_id = 0;
    if (!url_param(params, params_len, "devid", 2, &v, &len)) {
        send_fatal(c, 406, "Invalid request, dev_id not found");
        return;
    }
    /* CppComet read a bad dev_id as tenant 0: a typo then put a page on another tenant's pipes.
     * An empty one is still 0, as are `undefined` and `null` (CppComet's client on a page that
     * set no dev_id puts JavaScript's spelling of nothing in the URL); anything else must be a
     * tenant number. */
    bool unset = !len || (len == 9 && memcmp(v, "undefined", 9) == 0) ||
                 (len == 4 && memcmp(v, "null", 4) == 0);
    if (!unset && (!parse_i64(v, len, &dev_id) || dev_id < 0 || dev_id >= s->cfg->dev_index_size)) {
        char msg[128];
        snprintf(msg, sizeof msg, "Invalid request, dev_id is not a number from 0 to %" PRId64,
                 s->cfg->dev_index_size - 1);
        send_fatal(c, 406, msg);
        return;
    }
    if (!url_param(params, params_len, "v", 3, &v, &len) || !len || v[0] < '0' || v[0] > '9') {
        send_fatal(c, 418, "Invalid request, API version not found");
        return;
    }
    int64_t major = 0;
    size_t dot = 0;
    while (dot < len && v[dot] != '.')
        dot++;
    parse_i64(v, dot, &major);
    c->api_major = (uint8_t)(major > 255 ? 255 : major);
    c->acks_queue =
        http1_query_param(params, params_len, "ack", &v, &len) && len == 1 && v[0] == '1';
    c->marks_history =
        http1_query_param(params, params_len, "marker", &v, &len) && len == 1 && v[0] == '1';
    if (url_param(params, params_len, "uuid", 4, &v, &len)) {
        size_t ul = len > 32 ? 32 : len;
        for (size_t i = 0; i < ul; i++)
            c->uuid[i] = comet_name_ok(v + i, 1) ? v[i] : '_';
        c->uuid[ul] = '\0';
    }
    c->dev_id = dev_id;
    c->user_id = user_id;
    char sess[601];
    if (session_len > 600) session_len = 600;
    size_t sdl;
    if (http1_percent_decode(session, session_len, sess, &sdl) != HTTP1_OK) sdl = 0;
    authenticate(c, sess, sdl);
}

/* Handles one HTTP request head. Returns false when the connection must stop reading. */
static bool on_request(struct ws_conn *c, const struct http1_request *req)
{
    const char *params;
    size_t params_len;
    bool get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    if (req->method_len == 7 && memcmp(req->method, "OPTIONS", 7) == 0) {
        http_reply(c, 200, "OK", "text/plain; charset=utf-8",
                   "Allow: GET, OPTIONS\r\nAccess-Control-Allow-Methods: GET, OPTIONS\r\n"
                   "Access-Control-Allow-Headers: origin, content-type, accept\r\n"
                   "Access-Control-Max-Age: 3600\r\n",
                   "+OK", 3);
        return false;
    }
    if (!get) {
        /* CppComet's long-polling fallback (POST) is gone there too: 404 */
        http_error(c, req->method_len == 4 && memcmp(req->method, "POST", 4) == 0 ? 404 : 405);
        return false;
    }
    if (http1_path_params(req->path, req->path_len, &params, &params_len)) {
        ws_open(c, req, params, params_len);
        return c->state == WS_OPEN;
    }
    const char *p = req->path;
    size_t pl = req->path_len;
    if (pl >= 13 && memcmp(p, "/comet-server", 13) == 0 && (pl == 13 || p[13] == '/')) {
        p += 13;
        pl -= 13;
        if (!pl) p = "/", pl = 1;
    }
    if (pl == 5 && memcmp(p, "/info", 5) == 0) {
        char body[160];
        int n =
            snprintf(body, sizeof body, "{\"status\":\"ok\",\"node\":\"%.64s\",\"version\":\"%s\"}",
                     c->srv->cfg->node_name, CCOMET_VERSION);
        http_reply(c, 200, "OK", "application/json", NULL, body, (size_t)n);
    } else if (pl == 8 && memcmp(p, "/metrics", 8) == 0) {
        serve_metrics(c);
    } else {
        serve_static(c, p, pl);
    }
    return false;
}

/* ---- commands ------------------------------------------------------------------------------ */

static bool pipe_name_ok(const char *s, size_t len)
{
    return len >= 2 && len <= 64 && comet_name_ok(s, len);
}

static void subscribed(void *ctx)
{
    struct ws_conn *c = ctx;
    if (conn_release(c)) command_done(c);
}

static void cmd_subscription(struct ws_conn *c, const struct ccmd *cmd)
{
    struct ws_server *s = c->srv;
    /* the new set, validated */
    struct ccmd_str keep[CCMD_MAX_NAMES];
    size_t n_keep = 0;
    bool too_many = cmd->names_truncated;
    for (size_t i = 0; i < cmd->n_names; i++) {
        const char *name = cmd->names[i].s;
        size_t len = cmd->names[i].len;
        if (!pipe_name_ok(name, len)) {
            send_error(c, len > 64 ? "Channel name is too long" : "Invalid pipe name length");
            continue;
        }
        if (len > 8 && memcmp(name, "private_", 8) == 0 && !c->authorized) {
            send_error(c, "Subscription to private_ pipes requires an authorized connection");
            continue;
        }
        bool dup = false;
        for (size_t k = 0; k < n_keep && !dup; k++)
            dup = keep[k].len == len && memcmp(keep[k].s, name, len) == 0;
        if (dup) continue;
        if ((int64_t)n_keep >= s->cfg->ws_max_subscriptions) {
            too_many = true;
            continue;
        }
        keep[n_keep++] = cmd->names[i];
    }
    /* leave what is no longer wanted, then join what is new: no churn on unchanged pipes */
    pubsub_resubscribe(s->ps, c, keep, n_keep);
    if (too_many) {
        char msg[96];
        snprintf(msg, sizeof msg, "Too many subscriptions (limit %" PRId64 ")",
                 s->cfg->ws_max_subscriptions);
        send_error(c, msg);
    }
    /* in cluster mode the commands after it wait until the node's subscriptions are in place,
     * so that what the backend publishes after the page's next answer reaches it */
    conn_hold(c);
    if (pubsub_barrier(s->ps, subscribed, c))
        command_wait(c);
    else
        conn_release(c);
}

/* A browser's message being published: the answer waits for the state's. */
struct publish_call {
    struct ws_conn *c;
    size_t audience; /* number_messages: who it reaches on this node */
    size_t pipe_len, message_len;
    char text[]; /* the pipe name, then the message */
};

static void published(void *ctx, int64_t result, const char *err)
{
    struct publish_call *pc = ctx;
    struct ws_conn *c = pc->c;
    if (!conn_release(c)) {
        xfree(pc);
        return;
    }
    if (result < 0) {
        char text[200];
        snprintf(text, sizeof text, "web_pipe2: the message was not published: %s",
                 err ? err : "storage error");
        send_error(c, text);
    } else {
        struct buf *b = &c->srv->scratch;
        b->len = b->off = 0;
        env_begin(b);
        BUF_LIT(b, "\"data\":{\"number_messages\":");
        char num[24];
        int nl = snprintf(num, sizeof num, "%zu", pc->audience);
        buf_append(b, num, (size_t)nl);
        BUF_LIT(b, ",\"message\":");
        env_put_string(b, pc->text + pc->pipe_len, pc->message_len);
        buf_put_u8(b, '}');
        env_cstr(b, "event", "answer");
        env_int(b, "message_send_time", (int64_t)time(NULL));
        char ap[80];
        int al = snprintf(ap, sizeof ap, "_answer_to_%.*s", (int)pc->pipe_len, pc->text);
        env_str(b, "pipe", ap, (size_t)al);
        env_end(b);
        send_json(c, b);
    }
    xfree(pc);
    command_done(c);
}

static void cmd_web_pipe2(struct ws_conn *c, const struct ccmd *cmd)
{
    struct ws_server *s = c->srv;
    const char *pipe = cmd->pipe.s;
    size_t pl = cmd->pipe.len;
    bool hide_sender = false;
    if (pl && pipe[0] == '@') {
        hide_sender = true;
        pipe++;
        pl--;
    }
    bool web = pl > 4 && memcmp(pipe, "web_", 4) == 0;
    bool webauth = pl > 8 && memcmp(pipe, "webauth_", 8) == 0;
    if (!web && !webauth) {
        send_error(c, "web_pipe2: the pipe name must start with web_ or webauth_");
        return;
    }
    if (webauth && !c->authorized) {
        send_error(c, "web_pipe2: sending to webauth_ pipes requires an authorized connection");
        return;
    }
    if (!pipe_name_ok(pipe, pl)) {
        send_error(c, "The channel name can only contain characters A-Za-z0-9_-");
        return;
    }
    if (cmd->event.len > 64 || !comet_name_ok(cmd->event.s, cmd->event.len)) {
        send_error(c, "The event name can only contain characters A-Za-z0-9_- (64 max)");
        return;
    }
    if (cmd->auth_type.len != 1) {
        send_error(c, "Invalid value auth_type");
        return;
    }
    /* audit M1: on a Video API call pipe, `in` and `end` are the server's (a room's members
     * and its end); a page that could send them would end or confuse everyone's call */
    if (pl > 12 && memcmp(pipe, "web_syscall_", 12) == 0 &&
        ((cmd->event.len == 2 && memcmp(cmd->event.s, "in", 2) == 0) ||
         (cmd->event.len == 3 && memcmp(cmd->event.s, "end", 3) == 0))) {
        send_error(c, "web_pipe2: in and end on a call pipe are sent by the server only");
        return;
    }
    struct publish_call *pc = xmalloc(sizeof *pc + pl + cmd->message.len);
    pc->c = c;
    pc->audience = pubsub_audience(s->ps, c, c->dev_id, pipe, pl);
    pc->pipe_len = pl;
    pc->message_len = cmd->message.len;
    memcpy(pc->text, pipe, pl);
    memcpy(pc->text + pl, cmd->message.s, cmd->message.len);
    struct state_message m = {c->dev_id,
                              pipe,
                              pl,
                              hide_sender ? 0 : c->user_id,
                              cmd->event.s,
                              cmd->event.len,
                              cmd->message.s,
                              cmd->message.len,
                              (int64_t)time(NULL),
                              true,
                              c,
                              NULL,
                              0};
    command_wait(c);
    conn_hold(c);
    struct state_cb cb = {NULL, published, pc};
    s->state->ops->pipe_publish(s->state, &m, &cb);
}

struct log_call {
    struct ws_conn *c;
    size_t marker_len;
    char marker[65];
};

static int send_history_row(void *ctx, const struct value *cols, size_t n)
{
    struct log_call *l = ctx;
    (void)n; /* (id, time, pipe, event, message, user_id) */
    if (l->c->state != WS_OPEN) return 1;
    struct buf *b = &l->c->srv->scratch;
    b->len = b->off = 0;
    env_begin(b);
    env_str(b, "data", cols[4].s, cols[4].len);
    env_str(b, "event", cols[3].s, cols[3].len);
    if (l->c->api_major < 4) { /* CppComet's compatibility fields for pre-4 clients */
        env_str(b, "event_name", cols[3].s, cols[3].len);
        env_cstr(b, "api_data", "for major_version < 4");
    }
    env_bool(b, "fromQueue", true);
    env_bool(b, "history", true);
    env_int(b, "id", cols[0].i);
    /* CppComet's server sends no marker with history, and its browser client drops every pipe
     * message whose marker is not its tab's id before a subscription('pipe.event') sees it: so
     * the marker goes only to clients that ask for it (ours, to route the answer to its
     * get_pipe_log callback) */
    if (l->c->marks_history) env_str(b, "marker", l->marker, l->marker_len);
    env_int(b, "message_send_time", cols[1].i);
    env_str(b, "pipe", cols[2].s, cols[2].len);
    env_int(b, "user_id", cols[5].i);
    env_end(b);
    send_json(l->c, b);
    return 0;
}

static void history_sent(void *ctx, int64_t result, const char *err)
{
    struct log_call *l = ctx;
    struct ws_conn *c = l->c;
    xfree(l);
    if (!conn_release(c)) return;
    if (result < 0) {
        char text[200];
        snprintf(text, sizeof text, "pipe_log: cannot read the history: %s", err ? err : "?");
        send_error(c, text);
    }
    command_done(c);
}

static bool marker_ok(const struct ccmd_str *m)
{
    return m->len <= 64 && comet_name_ok(m->s, m->len);
}

static void cmd_pipe_log(struct ws_conn *c, const struct ccmd *cmd)
{
    if (!pipe_name_ok(cmd->pipe.s, cmd->pipe.len)) {
        send_error(c, "Invalid pipe name length");
        return;
    }
    if (!marker_ok(&cmd->marker)) {
        send_error(c, "Invalid marker value.");
        return;
    }
    if (cmd->pipe.len > 8 && memcmp(cmd->pipe.s, "private_", 8) == 0 && !c->authorized) {
        send_error(c, "pipe_log of private_ pipes requires an authorized connection");
        return;
    }
    struct log_call *l = xmalloc(sizeof *l);
    l->c = c;
    l->marker_len = cmd->marker.len; /* <= 64: marker_ok */
    memcpy(l->marker, cmd->marker.s, cmd->marker.len);
    command_wait(c);
    conn_hold(c);
    struct state *st = c->srv->state;
    struct state_cb cb = {send_history_row, history_sent, l};
    st->ops->history_list(st, c->dev_id, cmd->pipe.s, cmd->pipe.len,
                          c->srv->cfg->store_history_max ? c->srv->cfg->store_history_max : 1000,
                          &cb);
}

static void cmd_pipe_count(struct ws_conn *c, const struct ccmd *cmd)
{
    const char *p = cmd->pipe.s;
    size_t pl = cmd->pipe.len;
    if (!pipe_name_ok(p, pl) ||
        !((pl > 4 && memcmp(p, "web_", 4) == 0) || (pl > 6 && memcmp(p, "track_", 6) == 0))) {
        send_error(
            c, "[pipe_count] Invalid channel name. The channel should begin with web_ or track_");
        return;
    }
    if (!marker_ok(&cmd->marker)) {
        send_error(c, "Invalid marker value.");
        return;
    }
    struct buf *b = &c->srv->scratch;
    b->len = b->off = 0;
    env_begin(b);
    char data[48];
    int dl = snprintf(data, sizeof data, "{\"user_in_pipe\":%zu}",
                      pubsub_subscribers(c->srv->ps, c->dev_id, p, pl));
    env_raw(b, "data", data, (size_t)dl);
    env_cstr(b, "event", "user_in_pipe");
    env_str(b, "marker", cmd->marker.s, cmd->marker.len);
    env_int(b, "message_send_time", (int64_t)time(NULL));
    env_cstr(b, "pipe", "_answer_pipe_count");
    env_end(b);
    send_json(c, b);
}

struct track_ctx {
    struct buf *b;
    bool first;
};

static int track_member(void *ctx, const struct hub_pipe_member *m)
{
    struct track_ctx *t = ctx;
    if (!t->first) buf_put_u8(t->b, ',');
    t->first = false;
    env_begin(t->b);
    env_int(t->b, "user_id", m->user_id);
    env_cstr(t->b, "uuid", m->uuid ? m->uuid : "");
    env_end(t->b);
    return 0;
}

static void cmd_track_pipe_users(struct ws_conn *c, const struct ccmd *cmd)
{
    const char *p = cmd->pipe.s;
    size_t pl = cmd->pipe.len;
    if (!pipe_name_ok(p, pl) || pl <= 6 || memcmp(p, "track_", 6) != 0) {
        send_error(c,
                   "[track_pipe_users] Invalid channel name. The channel should begin with track_");
        return;
    }
    if (!marker_ok(&cmd->marker)) {
        send_error(c, "Invalid marker value.");
        return;
    }
    struct buf b;
    buf_init(&b);
    env_begin(&b);
    BUF_LIT(&b, "\"data\":[");
    struct track_ctx t = {&b, true};
    struct hub_delivery d = pubsub_delivery(c->srv->ps);
    d.pipe_members(d.ctx, c->dev_id, p, pl, track_member, &t);
    buf_put_u8(&b, ']');
    env_cstr(&b, "event", "answer");
    env_cstr(&b, "_info", "answer for track_pipe_users");
    env_str(&b, "marker", cmd->marker.s, cmd->marker.len);
    env_int(&b, "message_send_time", (int64_t)time(NULL));
    env_cstr(&b, "pipe", "_answer");
    env_end(&b);
    ws_conn_send_text(c, buf_head(&b), buf_unread(&b));
    buf_free(&b);
}

/* An answer being built while its row is read (user_data, user_status). */
struct answer_call {
    struct ws_conn *c;
    int64_t user_id;
    int64_t time; /* user_status: the last-seen time, -1 unknown */
    struct buf b;
    size_t marker_len;
    char marker[65];
};

static void answer_finish(struct answer_call *q)
{
    buf_free(&q->b);
    xfree(q);
}

static int take_data(void *ctx, const struct value *cols, size_t n)
{
    struct answer_call *q = ctx;
    if (n >= 2 && cols[1].kind == VALUE_STR) env_put_string(&q->b, cols[1].s, cols[1].len);
    return 1;
}

static void user_data_read(void *ctx, int64_t result, const char *err)
{
    struct answer_call *q = ctx;
    struct ws_conn *c = q->c;
    if (!conn_release(c)) {
        answer_finish(q);
        return;
    }
    if (result < 0) {
        char text[200];
        snprintf(text, sizeof text, "user_data: cannot read: %s", err ? err : "?");
        send_error(c, text);
        answer_finish(q);
        command_done(c);
        return;
    }
    struct buf *b = &q->b;
    if (result == 0) BUF_LIT(b, "\"\"");
    char tail[48];
    int tl = snprintf(tail, sizeof tail, ",\"user_id\":%" PRId64 "}", q->user_id);
    buf_append(b, tail, (size_t)tl);
    env_cstr(b, "event", "answer");
    env_str(b, "marker", q->marker, q->marker_len);
    env_int(b, "message_send_time", (int64_t)time(NULL));
    env_cstr(b, "pipe", "_answer");
    env_end(b);
    ws_conn_send_text(c, buf_head(b), buf_unread(b));
    answer_finish(q);
    command_done(c);
}

static void cmd_user_data(struct ws_conn *c, const struct ccmd *cmd)
{
    if (!marker_ok(&cmd->marker)) {
        send_error(c, "Invalid marker value.");
        return;
    }
    struct answer_call *q = xcalloc(1, sizeof *q);
    q->c = c;
    q->user_id = cmd->user_id;
    q->marker_len = cmd->marker.len; /* <= 64: marker_ok */
    memcpy(q->marker, cmd->marker.s, cmd->marker.len);
    buf_init(&q->b);
    env_begin(&q->b);
    BUF_LIT(&q->b, "\"data\":{\"user_data\":");
    command_wait(c);
    conn_hold(c);
    struct state_cb cb = {take_data, user_data_read, q};
    c->srv->state->ops->data_get(c->srv->state, c->dev_id, cmd->user_id, &cb);
}

static int take_time(void *ctx, const struct value *cols, size_t n)
{
    struct answer_call *q = ctx;
    q->time = n >= 2 && cols[1].kind == VALUE_INT ? cols[1].i : -1;
    return 1;
}

static void send_user_status(struct ws_conn *c, int64_t user_id, bool online, int64_t t)
{
    struct buf *b = &c->srv->scratch;
    b->len = b->off = 0;
    env_begin(b);
    char data[128];
    int dl = snprintf(data, sizeof data,
                      "{\"data\":%" PRId64 ",\"last_online_time\":%" PRId64
                      ",\"online\":%s,\"user_id\":%" PRId64 "}",
                      t, t, online ? "true" : "false", user_id);
    env_raw(b, "data", data, (size_t)dl);
    char ev[48];
    int el = snprintf(ev, sizeof ev, "user_status_%" PRId64, user_id);
    env_str(b, "event", ev, (size_t)el);
    env_int(b, "message_send_time", (int64_t)time(NULL));
    env_cstr(b, "pipe", "_answer_user_status");
    env_end(b);
    send_json(c, b);
}

static void user_time_read(void *ctx, int64_t result, const char *err)
{
    struct answer_call *q = ctx;
    struct ws_conn *c = q->c;
    (void)err; /* unreadable reads as unknown (-1), as a user never seen */
    if (conn_release(c)) {
        send_user_status(c, q->user_id, false, result < 0 ? -1 : q->time);
        command_done(c);
    }
    answer_finish(q);
}

static void cmd_user_status(struct ws_conn *c, const struct ccmd *cmd)
{
    struct hub_delivery d = pubsub_delivery(c->srv->ps);
    if (d.user_online(d.ctx, c->dev_id, cmd->user_id)) {
        send_user_status(c, cmd->user_id, true, 0);
        return;
    }
    struct answer_call *q = xcalloc(1, sizeof *q);
    q->c = c;
    q->user_id = cmd->user_id;
    q->time = -1;
    buf_init(&q->b);
    command_wait(c);
    conn_hold(c);
    struct state_cb cb = {take_time, user_time_read, q};
    c->srv->state->ops->time_get(c->srv->state, c->dev_id, cmd->user_id, &cb);
}

/* msg_ack: every id acked, then the next command. */
struct ack_call {
    struct ws_conn *c;
    size_t left;
    bool failed;
};

static void acked(void *ctx, int64_t result, const char *err)
{
    struct ack_call *k = ctx;
    struct ws_conn *c = k->c;
    bool alive = conn_release(c);
    if (result < 0) k->failed = true;
    if (--k->left) return;
    if (alive) {
        if (k->failed) send_error(c, "msg_ack: storage error");
        command_done(c);
    }
    xfree(k);
}

static void cmd_msg_ack(struct ws_conn *c, const struct ccmd *cmd)
{
    if (!c->authorized) {
        send_error(c, "msg_ack: not authorized");
        return;
    }
    if (!cmd->n_acks) return;
    struct ack_call *k = xcalloc(1, sizeof *k);
    k->c = c;
    k->left = cmd->n_acks;
    command_wait(c);
    struct state *st = c->srv->state;
    struct state_cb cb = {NULL, acked, k};
    for (size_t i = 0; i < cmd->n_acks; i++) {
        conn_hold(c);
        st->ops->queue_ack(st, c->dev_id, c->user_id, cmd->acks[i], &cb);
    }
}

/* pipe_since: stored history first when the ring no longer reaches back far enough. */
struct since_call {
    struct ws_conn *c;
    int64_t last; /* the last id sent */
    int rounds;   /* history reads so far */
    size_t pipe_len;
    char pipe[];
};

static int replay_row(void *ctx, const struct value *cols, size_t n)
{
    struct since_call *r = ctx;
    (void)n; /* (id, time, pipe, event, message, user_id) */
    if (r->c->state != WS_OPEN) return 1;
    pubsub_replay_row(r->c->srv->ps, r->c, cols);
    r->last = cols[0].i;
    return 0;
}

static void history_replayed(void *ctx, int64_t result, const char *err)
{
    struct since_call *r = ctx;
    struct ws_conn *c = r->c;
    (void)err; /* what could not be read is not sent; the ring still is */
    if (!conn_release(c)) {
        xfree(r);
        return;
    }
    /* while the state answered, live messages went on (and skipped c): if more came than the
     * ring keeps, read again from where the replay is */
    if (result > 0 && ++r->rounds < 5 && c->state == WS_OPEN &&
        pubsub_replay_needs_history(c->srv->ps, c, r->pipe, r->pipe_len, r->last)) {
        conn_hold(c);
        struct state *st = c->srv->state;
        struct state_cb cb = {replay_row, history_replayed, r};
        st->ops->history_since(st, c->dev_id, r->pipe, r->pipe_len, r->last, 1000, &cb);
        return;
    }
    pubsub_replay_end(c);
    pubsub_replay_ring(c->srv->ps, c, r->pipe, r->pipe_len, r->last);
    command_done(c);
    xfree(r);
}

static void cmd_pipe_since(struct ws_conn *c, const struct ccmd *cmd)
{
    if (!pipe_name_ok(cmd->pipe.s, cmd->pipe.len) ||
        !pubsub_is_subscribed(c, cmd->pipe.s, cmd->pipe.len)) {
        send_error(c, "pipe_since: subscribe to the pipe first");
        return;
    }
    if (!pubsub_replay_needs_history(c->srv->ps, c, cmd->pipe.s, cmd->pipe.len, cmd->last_id)) {
        pubsub_replay_ring(c->srv->ps, c, cmd->pipe.s, cmd->pipe.len, cmd->last_id);
        return;
    }
    struct since_call *r = xmalloc(sizeof *r + cmd->pipe.len);
    r->c = c;
    r->rounds = 0;
    r->last = cmd->last_id;
    pubsub_replay_begin(c->srv->ps, c, cmd->pipe.s, cmd->pipe.len);
    r->pipe_len = cmd->pipe.len;
    memcpy(r->pipe, cmd->pipe.s, cmd->pipe.len);
    command_wait(c);
    conn_hold(c);
    struct state *st = c->srv->state;
    struct state_cb cb = {replay_row, history_replayed, r};
    st->ops->history_since(st, c->dev_id, cmd->pipe.s, cmd->pipe.len, cmd->last_id, 1000, &cb);
}

/* One command's token: the bucket refills at [ws] command_rate per second up to command_burst.
 * A connection past it is sent error 429 and closed: a page never needs that many (a reconnect
 * with 64 subscriptions sends about 130 commands), and every command may cost the node a store
 * read (pipe_log: up to 1,000 rows) or a fan-out (web_pipe2). */
static bool command_allowed(struct ws_conn *c)
{
    const struct config *cfg = c->srv->cfg;
    uint32_t now = (uint32_t)uv_now(c->srv->loop);
    float refill = (float)(now - c->cmd_at_ms) * (float)cfg->ws_command_rate / 1000.0f;
    c->cmd_at_ms = now;
    c->cmd_tokens += refill;
    if (c->cmd_tokens > (float)cfg->ws_command_burst) c->cmd_tokens = (float)cfg->ws_command_burst;
    if (c->cmd_tokens >= 1.0f) {
        c->cmd_tokens -= 1.0f;
        return true;
    }
    c->srv->m.rate_limited++;
    LOG_RATELIMITED(LOG_WARN, "ws",
                    "conn=%" PRIu64 " dev=%" PRId64 " user=%" PRId64
                    " msg=\"closing: too many commands\" rate=%" PRId64 " burst=%" PRId64,
                    c->id, c->dev_id, c->user_id, cfg->ws_command_rate, cfg->ws_command_burst);
    char text[160];
    snprintf(text, sizeof text,
             "Too many commands (more than %" PRId64 " at once or %" PRId64 " per second)",
             cfg->ws_command_burst, cfg->ws_command_rate);
    send_fatal(c, 429, text);
    return false;
}

static void on_text(struct ws_conn *c, const char *msg, size_t len)
{
    if (!command_allowed(c)) return;
    struct ccmd *cmd = xmalloc(sizeof *cmd);
    const char *err = NULL;
    if (ccmd_parse(msg, len, cmd, &err) != CCMD_OK) {
        char text[160];
        snprintf(text, sizeof text, "Unknown or malformed command: %s", err ? err : "?");
        send_error(c, text);
        xfree(cmd);
        return;
    }
    switch (cmd->kind) {
    case CCMD_SUBSCRIPTION: cmd_subscription(c, cmd); break;
    case CCMD_WEB_PIPE2: cmd_web_pipe2(c, cmd); break;
    case CCMD_PIPE_LOG: cmd_pipe_log(c, cmd); break;
    case CCMD_PIPE_COUNT: cmd_pipe_count(c, cmd); break;
    case CCMD_TRACK_PIPE_USERS: cmd_track_pipe_users(c, cmd); break;
    case CCMD_USER_DATA: cmd_user_data(c, cmd); break;
    case CCMD_USER_STATUS: cmd_user_status(c, cmd); break;
    case CCMD_MSG_ACK: cmd_msg_ack(c, cmd); break;
    case CCMD_PIPE_SINCE: cmd_pipe_since(c, cmd); break;
    case CCMD_STATISTICS:
    case CCMD_IGNORED: break;
    }
    xfree(cmd);
}

/* ---- frames ---------------------------------------------------------------------------------- */

static void protocol_error(struct ws_conn *c, uint16_t code, const char *why)
{
    c->srv->m.protocol_errors++;
    LOG_RATELIMITED(LOG_INFO, "ws",
                    "conn=%" PRIu64 " msg=\"closing on bad input\" code=%u reason=\"%s\"", c->id,
                    code, why);
    ws_conn_close(c, code, why);
}

/* Handles one complete frame whose payload is unmasked in place. */
static void on_frame(struct ws_conn *c, const struct ws_frame *f, uint8_t *payload)
{
    struct ws_server *s = c->srv;
    s->m.frames_in++;
    c->last_seen = now_s();
    switch (f->opcode) {
    case WS_OP_PING: {
        struct frame *pong = frame_new(WS_OP_PONG, payload, f->payload_len);
        ws_conn_send(c, pong);
        frame_unref(pong);
        return;
    }
    case WS_OP_PONG: return;
    case WS_OP_CLOSE: {
        uint16_t code = 1000;
        const char *reason;
        size_t rl;
        if (f->payload_len &&
            ws_parse_close(payload, f->payload_len, &code, &reason, &rl) != WS_OK) {
            protocol_error(c, (uint16_t)(code ? code : 1002), "bad close frame");
            return;
        }
        /* echo the code, then close the TCP connection once it is written */
        ws_conn_close(c, f->payload_len ? code : 1000, "");
        return;
    }
    default: break;
    }
    /* data frames */
    if (f->fin && f->opcode == WS_OP_TEXT && !c->frag) {
        if (!ws_utf8_valid(payload, f->payload_len)) {
            protocol_error(c, 1007, "invalid UTF-8 in a text message");
            return;
        }
        on_text(c, (const char *)payload, f->payload_len);
        return;
    }
    if (f->fin && f->opcode == WS_OP_BINARY && !c->frag) {
        protocol_error(c, 1003, "binary messages are not accepted");
        return;
    }
    /* a fragmented message: assembled in a buffer that exists only while it is open */
    if (!c->frag) {
        c->frag = xcalloc(1, sizeof *c->frag);
        ws_assembler_init(&c->frag->a);
        buf_init(&c->frag->msg);
    }
    bool complete = false;
    uint8_t opcode = 0;
    const char *err = NULL;
    uint16_t code = 1002;
    if (ws_assembler_add(&c->frag->a, f, payload, (size_t)s->cfg->ws_max_message, &c->frag->msg,
                         &complete, &opcode, &err, &code) != WS_OK) {
        protocol_error(c, code, err ? err : "bad fragment");
        return;
    }
    if (!complete) return;
    struct ws_fragment *fr = c->frag;
    c->frag = NULL;
    if (opcode == WS_OP_TEXT)
        on_text(c, (const char *)buf_head(&fr->msg), buf_unread(&fr->msg));
    else
        protocol_error(c, 1003, "binary messages are not accepted");
    buf_free(&fr->msg);
    xfree(fr);
}

/* ---- input
 * --------------------------------------------------------------------------------------- */

/* Consumes complete requests/frames from data (mutable: frames are unmasked in place). Sets
 * *used to the bytes consumed. Returns false when the connection stops reading. */
static bool handle_bytes(struct ws_conn *c, uint8_t *data, size_t len, size_t *used)
{
    struct ws_server *s = c->srv;
    size_t off = 0;
    c->in_input = true;
    while (off < len && c->state != WS_CLOSING && !c->waiting) {
        if (c->state == WS_HTTP) {
            struct http1_request req;
            struct http1_limits lim = {MAX_HEAD, 4096, HTTP1_MAX_HEADERS};
            const char *err = NULL;
            int rc = http1_parse_request(data + off, len - off, &lim, &req, &err);
            if (rc == HTTP1_AGAIN) break;
            if (rc == HTTP1_ERROR) {
                s->m.protocol_errors++;
                http_error(c, req.status ? req.status : 400);
                off = len;
                break;
            }
            off += req.head_len;
            if (!on_request(c, &req)) {
                off = len; /* HTTP replies close the connection; the rest is ignored */
                break;
            }
            continue;
        }
        struct ws_frame f;
        const char *err = NULL;
        uint16_t code = 1002;
        size_t max = (size_t)s->cfg->ws_max_message;
        int rc = ws_frame_parse(data + off, len - off, max, true, &f, &err, &code);
        if (rc == WS_AGAIN) break;
        if (rc == WS_ERROR) {
            protocol_error(c, code, err ? err : "bad frame");
            off = len;
            break;
        }
        uint8_t *payload = data + off + f.header_len;
        ws_unmask(payload, f.payload_len, f.mask, 0);
        on_frame(c, &f, payload);
        off += f.frame_len;
    }
    *used = off;
    c->in_input = false;
    return c->state != WS_CLOSING;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    b->base = (char *)read_buffer;
    b->len = sizeof read_buffer;
}

/* Reading stops while a command waits on the state (what was read stays in c->in). */
static void pause_if_waiting(struct ws_conn *c)
{
    if (c->waiting && !c->read_paused && c->state != WS_CLOSING) {
        c->read_paused = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

/* Processes plaintext input (mutable: frames are unmasked in place). */
static void process_plain(struct ws_conn *c, uint8_t *data, size_t len)
{
    size_t used = 0;
    size_t bound = (size_t)(c->state == WS_HTTP ? MAX_HEAD : c->srv->cfg->ws_max_message + 14);
    if (!c->in) {
        handle_bytes(c, data, len, &used);
        if (used < len && c->state != WS_CLOSING) {
            /* while waiting, what is kept is whole frames of one read: bounded by READ_CHUNK */
            if (len - used > bound && !c->waiting) {
                protocol_error(c, 1009, "message too big");
                return;
            }
            c->in = xcalloc(1, sizeof *c->in);
            buf_append(c->in, data + used, len - used);
        }
        pause_if_waiting(c);
        return;
    }
    if (buf_unread(c->in) + len > bound + READ_CHUNK) {
        if (c->state == WS_HTTP)
            http_error(c, 431);
        else
            protocol_error(c, 1009, "message too big");
        return;
    }
    buf_append(c->in, data, len);
    handle_bytes(c, buf_head(c->in), buf_unread(c->in), &used);
    if (!c->in) return;
    buf_consume(c->in, used);
    if (!buf_unread(c->in) || c->state == WS_CLOSING) {
        buf_free(c->in);
        xfree(c->in);
        c->in = NULL;
    } else {
        buf_compact(c->in);
    }
    pause_if_waiting(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    struct ws_conn *c = stream->data;
    if (nread == 0) return;
    if (nread < 0) {
        conn_destroy(c, nread == UV_EOF ? "client closed" : uv_strerror((int)nread));
        return;
    }
    if (c->state == WS_CLOSING) return;
    if (!c->tls) {
        process_plain(c, (uint8_t *)b->base, (size_t)nread);
        return;
    }
    struct ws_server *s = c->srv;
    struct buf *plain = &s->tls_plain, *cipher = &s->tls_cipher;
    plain->len = plain->off = cipher->len = cipher->off = 0;
    int rc = tls_session_feed(c->tls, (const uint8_t *)b->base, (size_t)nread, plain, cipher);
    if (buf_unread(cipher)) { /* handshake records: already ciphertext */
        struct frame *f = frame_bytes(buf_head(cipher), buf_unread(cipher));
        enqueue(c, f);
        frame_unref(f);
    }
    if (rc != 0) {
        s->m.protocol_errors++;
        close_after_write(c);
        return;
    }
    if (buf_unread(plain)) process_plain(c, buf_head(plain), buf_unread(plain));
    if (plain->cap > 4 * READ_CHUNK) buf_free(plain);
}

/* ---- lifecycle ---------------------------------------------------------------------------------
 */

static void conn_free(struct ws_conn *c)
{
    struct ws_server *s = c->srv;
    tls_session_free(c->tls);
    xfree(c);
    stop_progress(s);
}

static void on_closed(uv_handle_t *h)
{
    struct ws_conn *c = h->data;
    /* libuv has run every cancelled write's callback by now: the queue is ours to free */
    c->writing = false;
    outq_free(c);
    c->handle_gone = true;
    if (!c->holds) conn_free(c); /* else the last state call's completion frees it */
}

static void conn_destroy(struct ws_conn *c, const char *why)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp) || c->close_pending) return;
    struct ws_server *s = c->srv;
    LOG(LOG_DEBUG, "ws", "conn=%" PRIu64 " msg=\"connection closed\" reason=\"%s\"", c->id, why);
    pubsub_unsubscribe_all(s->ps, c);
    pubsub_user_detach(s->ps, c);
    pubsub_unintern(s->ps, c->user_agent);
    pubsub_unintern(s->ps, c->origin);
    pubsub_unintern(s->ps, c->language);
    c->user_agent = c->origin = c->language = NULL;
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        s->all = c->all_next;
    if (c->all_next) c->all_next->all_prev = c->all_prev;
    c->all_prev = c->all_next = NULL;
    unmark_dirty(c);
    if (!c->writing) outq_free(c); /* an in-flight write holds the queue until its callback */
    if (c->in) {
        buf_free(c->in);
        xfree(c->in);
        c->in = NULL;
    }
    if (c->frag) {
        buf_free(&c->frag->msg);
        xfree(c->frag);
        c->frag = NULL;
    }
    c->state = WS_CLOSING;
    c->close_after_flush = false;
    s->m.connections--;
    s->m.closed++;
    if (c->ip_counted) {
        ip_count_release(&s->per_ip, c->ip);
        c->ip_counted = false;
    }
    if (c->lent) {
        /* a writer is sending on its descriptor: closing it now could send its bytes to a
         * connection accepted meanwhile on the same number */
        c->close_pending = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
        return;
    }
    conn_close_handle(c);
}

static void conn_close_handle(struct ws_conn *c)
{
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct ws_server *s = server->data;
    if (status < 0) {
        LOG_RATELIMITED(LOG_WARN, "ws", "msg=\"accept failed\" error=\"%s\"", uv_strerror(status));
        return;
    }
    struct ws_conn *c = xcalloc(1, sizeof *c);
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->id = ++s->next_id;
    c->last_seen = now_s();
    c->cmd_tokens = (float)s->cfg->ws_command_burst;
    c->cmd_at_ms = (uint32_t)uv_now(s->loop);
    c->all_next = s->all;
    if (s->all) s->all->all_prev = c;
    s->all = c;
    s->m.connections++;
    s->m.accepted++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_destroy(c, "accept failed");
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            c->ip[10] = c->ip[11] = 0xff;
            memcpy(c->ip + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        } else {
            memcpy(c->ip, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        }
    }
    if ((int64_t)s->m.connections > s->cfg->ws_max_connections) {
        LOG_RATELIMITED(LOG_WARN, "ws",
                        "msg=\"connection refused: max_connections\" limit=%" PRId64,
                        s->cfg->ws_max_connections);
        http_error(c, 503);
        return;
    }
    if (!ip_count_take(&s->per_ip, c->ip, s->cfg->ws_max_connections_per_ip)) {
        char peer[48] = "?";
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, peer, sizeof peer);
        else if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, peer, sizeof peer);
        s->m.per_ip_refused++;
        LOG_RATELIMITED(LOG_WARN, "ws",
                        "msg=\"connection refused: max_connections_per_ip\" peer=%s limit=%" PRId64,
                        peer, s->cfg->ws_max_connections_per_ip);
        http_error(c, 503);
        return;
    }
    c->ip_counted = true;
    uv_tcp_nodelay(&c->tcp, 1);
    if (s->tls) c->tls = tls_session_new(s->tls);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_sweep_closed(uv_handle_t *h);
static void on_more_closed(uv_handle_t *h);
static void on_writer_done_closed(uv_handle_t *h);

/* During a stop: once every connection is gone, the sweep timer goes too. */
static void stop_progress(struct ws_server *s)
{
    if (s->stopping && !s->all && !s->writers_busy && !uv_is_closing((uv_handle_t *)&s->sweep)) {
        uv_timer_stop(&s->sweep);
        uv_close((uv_handle_t *)&s->sweep, on_sweep_closed);
        uv_close((uv_handle_t *)&s->more, on_more_closed);
        uv_close((uv_handle_t *)&s->writer_done, on_writer_done_closed);
    }
}

/* Once a second: handshake deadlines, keep-alive pings, dead peers, the pipe sweep. While
 * stopping, every 100 ms: connections that did not take their close frame in time are dropped. */
static void on_sweep(uv_timer_t *t)
{
    struct ws_server *s = t->data;
    if (s->stopping) {
        if (now_s() >= s->stop_deadline)
            for (struct ws_conn *c = s->all, *next; c; c = next) {
                next = c->all_next;
                conn_destroy(c, "server shutting down");
            }
        stop_progress(s);
        return;
    }
    uint32_t now = now_s();
    uint32_t ping = (uint32_t)s->cfg->ws_ping_interval;
    uint32_t hs = (uint32_t)s->cfg->ws_handshake_timeout;
    struct frame *ping_frame = NULL;
    for (struct ws_conn *c = s->all, *next; c; c = next) {
        next = c->all_next;
        if (c->out && !c->out->count && !c->writing) outq_free(c); /* idle again: no buffers */
        uint32_t idle = now - c->last_seen;
        if (c->state == WS_HTTP && idle >= hs) {
            conn_destroy(c, "handshake timeout");
        } else if (c->state == WS_OPEN && idle >= 3 * ping) {
            c->srv->m.protocol_errors++;
            ws_conn_close(c, 1001, "no answer to pings");
        } else if (c->state == WS_OPEN && idle >= ping && idle % ping <= 1) {
            /* a ping at `ping` and at 2*`ping` seconds of silence (a busy loop may skip a
             * second; a double ping is harmless) */
            if (!ping_frame) ping_frame = frame_new(WS_OP_PING, "", 0);
            ws_conn_send(c, ping_frame);
        } else if (c->state == WS_CLOSING && idle >= hs) {
            /* a peer that does not read its close frame or HTTP answer */
            conn_destroy(c, "close timeout");
        }
    }
    frame_unref(ping_frame);
    if (++s->sweeps % 10 == 0) pubsub_sweep(s->ps);
    ws_server_flush(s);
}

struct ws_server *ws_server_start(uv_loop_t *loop, const struct config *cfg, struct state *state,
                                  const struct tenants *tenants, struct pubsub *ps, char *err,
                                  size_t errlen)
{
    struct ws_server *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->cfg = cfg;
    s->state = state;
    s->tenants = tenants;
    s->ps = ps;
    buf_init(&s->scratch);
    if (*cfg->ws_ssl_cert) {
        s->tls = tls_server_new(cfg->ws_ssl_cert, cfg->ws_ssl_key, err, errlen);
        if (!s->tls) {
            xfree(s);
            return NULL;
        }
    }
    if (listener_open(loop, &s->listener, "ws", cfg->ws_ip, cfg->ws_port, 4096, on_connection, s,
                      err, errlen) != 0) {
        tls_server_free(s->tls);
        xfree(s);
        return NULL;
    }
    auth_failures_init(&s->failures);
    ip_count_init(&s->per_ip);
    s->send = batch_send_new(BATCH_ENTRIES, cfg->io_uring);
    uv_async_init(loop, &s->writer_done, on_writer_done);
    s->writer_done.data = s;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t want = cfg->ws_writer_threads >= 0 ? cfg->ws_writer_threads : cpus > 1 ? 1 : 0;
    while (s->n_writers < (size_t)want && s->n_writers < MAX_WRITERS) {
        struct writer *w = writer_start(cfg->io_uring, &s->writer_done);
        if (!w) break;
        s->writers[s->n_writers++] = w;
    }
    LOG(LOG_INFO, "ws", "msg=\"fan-out writes\" io_uring=%d writer_threads=%zu",
        batch_send_uses_uring(s->send), s->n_writers);
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    uv_idle_init(loop, &s->more);
    s->more.data = s;
    uv_timer_start(&s->sweep, on_sweep, 1000, 1000);
    return s;
}

void ws_server_reconfigure(struct ws_server *s, const struct config *cfg)
{
    s->cfg = cfg;
}

void ws_server_set_metrics_source(struct ws_server *s, void (*fn)(void *ctx, struct buf *out),
                                  void *ctx)
{
    s->metrics_fn = fn;
    s->metrics_ctx = ctx;
}

static void maybe_stopped(struct ws_server *s)
{
    if (s->stopping && !s->all && s->listener_closed && s->sweep_closed && s->more_closed &&
        s->writer_done_closed && s->stopped) {
        void (*done)(void *) = s->stopped;
        s->stopped = NULL;
        done(s->stopped_ctx);
    }
}

static void on_listener_closed(uv_handle_t *h)
{
    struct ws_server *s = h->data;
    s->listener_closed = true;
    maybe_stopped(s);
}

static void on_sweep_closed(uv_handle_t *h)
{
    struct ws_server *s = h->data;
    s->sweep_closed = true;
    maybe_stopped(s);
}

static void on_more_closed(uv_handle_t *h)
{
    struct ws_server *s = h->data;
    s->more_closed = true;
    maybe_stopped(s);
}

static void on_writer_done_closed(uv_handle_t *h)
{
    struct ws_server *s = h->data;
    s->writer_done_closed = true;
    maybe_stopped(s);
}

void ws_server_stop(struct ws_server *s, void (*done)(void *ctx), void *ctx)
{
    s->stopping = true;
    s->stopped = done;
    s->stopped_ctx = ctx;
    s->stop_deadline = now_s() + 2; /* clients get this long to read their close frame */
    for (struct ws_conn *c = s->all; c; c = c->all_next) {
        if (c->state == WS_OPEN)
            ws_conn_close(c, 1001, "server shutting down");
        else
            close_after_write(c);
    }
    ws_server_flush(s);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    uv_timer_start(&s->sweep, on_sweep, 100, 100);
    stop_progress(s);
}

void ws_server_free(struct ws_server *s)
{
    if (!s) return;
    auth_failures_free(&s->failures);
    ip_count_free(&s->per_ip);
    buf_free(&s->scratch);
    buf_free(&s->tls_plain);
    buf_free(&s->tls_cipher);
    for (size_t h = 0; h < s->n_writers; h++)
        writer_stop(s->writers[h]);
    batch_send_free(s->send);
    xfree(s->batch);
    xfree(s->jobs);
    tls_server_free(s->tls);
    xfree(s);
}

void ws_server_metrics(const struct ws_server *s, struct ws_metrics *out)
{
    *out = s->m;
}
