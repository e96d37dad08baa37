/*
 * ws_load — WebSocket subscriber load client for ccomet and nchan (see bench/README.md).
 *
 *   ws_load --system ccomet|nchan --port WS_PORT --pub-port PUB_PORT --conns N
 *           --mode memory|fanout [--server-pid PID] [--procs P] [--addrs A]
 *           [--rates 100,200,500] [--step-seconds 2] [--drain-max 3] [--publishers 4]
 *           [--password pw] [--channel bench_pipe] [--payload 100] [--p99-limit-ms 1000]
 *   ws_load --free-ports K
 *
 * The parent forks P worker processes (each under the 20,000 open-files cap); each opens its
 * share of the N WebSocket connections from source addresses 127.0.0.2 .. 127.0.0.(A+1)
 * (bind() before connect(), IP_BIND_ADDRESS_NO_PORT, so the ephemeral port range is per
 * source address), does a real client handshake (random Sec-WebSocket-Key, Sec-WebSocket-Accept
 * checked), and subscribes: ccomet with a masked text frame "subscription\n<pipe>" on
 * /ws/sesion=&myid=0&devid=0&v=4.09&uuid=<32>&api=js, nchan by the URL /sub/<pipe>.
 * Workers answer pings with masked pongs, count the messages of the current step, and keep a
 * log-linear latency histogram of (receive time - timestamp embedded by the publisher), both
 * CLOCK_MONOTONIC (same machine). Workers talk to the parent with one-line commands on a pipe
 * and answer with one JSON line each; the parent aggregates them.
 *
 * Message payload: "B|<run>|<step>|<scheduled send ns>|xxxx..." padded to --payload bytes.
 * The timestamp is the *scheduled* send time of an open-loop publisher (message i of a step at
 * t0 + i/rate), so a publisher held up by a slow server shows as latency (no coordinated
 * omission).
 *
 * Publishers (threads of the parent, one connection each): ccomet through CometQL with MariaDB
 * Connector/C (INSERT INTO pipes_messages ...), nchan through its HTTP publisher
 * (POST /pub?id=<pipe>, keep-alive).
 *
 * Mode memory: server PSS/RSS (process + direct children, /proc/<pid>/smaps_rollup, status)
 *   before connecting, after all connections are open and subscribed (checked by one probe
 *   message reaching every connection) and the server is idle again.
 * Mode fanout: for each rate, publish for --step-seconds, drain until every delivery arrived
 *   (or --drain-max), and report deliveries/s inside the publish window, p50/p99/max latency,
 *   lost deliveries, server CPU (utime+stime of the server tree) per delivery, client CPU.
 *   The ladder stops after the first rate that does not keep up (in-window deliveries < 90 %
 *   of the target, a lost delivery, publishes < 90 % of the target, or p99 > --p99-limit-ms).
 *
 * Output: one JSON line per measurement on stdout; progress on stderr. Exit 1 on a failure
 * (connection refused/closed, handshake error, publish error, sync timeout).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mysql.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS   32
#define MAX_PUBS    32
#define MAX_RATES   32
#define RBUF_SIZE   (256 * 1024)
#define MAX_PARTIAL (64 * 1024)
#define NBUCKETS    (64 + 31 * 32)

static struct {
    int ccomet; /* 1 ccomet, 0 nchan */
    const char *sys_name;
    int port, pub_port, conns, procs, addrs, publishers, payload;
    int server_pid;
    const char *mode, *password, *channel;
    double rates[MAX_RATES];
    int n_rates;
    double step_s, drain_max_s, p99_limit_ms;
    int inflight; /* handshakes in flight per worker */
    int verbose;
} cfg = {.procs = 0, .addrs = 16, .publishers = 4, .payload = 100, .password = "",
         .channel = "bench_pipe", .step_s = 2, .drain_max_s = 3, .p99_limit_ms = 1000,
         .inflight = 256};

static unsigned run_id;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ws_load: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void sleep_ms(double ms)
{
    uint64_t ns = (uint64_t)(ms * 1e6);
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ histogram ---- */

static int bucket_of(uint64_t ns)
{
    uint64_t u = ns / 1000; /* microseconds */
    if (u < 64) return (int)u;
    int e = 63 - __builtin_clzll(u); /* >= 6 */
    if (e > 36) return NBUCKETS - 1;
    int sub = (int)((u >> (e - 5)) & 31);
    return 64 + (e - 6) * 32 + sub;
}

/* Representative value (midpoint) of a bucket, in microseconds. */
static double bucket_us(int b)
{
    if (b < 64) return b + 0.5;
    int e = (b - 64) / 32 + 6, sub = (b - 64) % 32;
    double lo = (double)((32ull + (uint64_t)sub) << (e - 5));
    return lo + (double)(1ull << (e - 5)) / 2;
}

static double hist_pct(const uint64_t *h, uint64_t total, double p)
{
    if (!total) return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)total + 0.999999);
    if (rank < 1) rank = 1;
    uint64_t acc = 0;
    for (int b = 0; b < NBUCKETS; b++) {
        acc += h[b];
        if (acc >= rank) return bucket_us(b);
    }
    return bucket_us(NBUCKETS - 1);
}

/* --------------------------------------------------------------------- base64 ---- */

static void b64(const unsigned char *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = t[(v >> 18) & 63];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = 0;
}

static uint64_t rng_state;
static uint64_t rnd64(void)
{
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* ===================================================================== worker ====== */

enum { C_CONNECTING, C_HANDSHAKE, C_OPEN, C_DEAD };

typedef struct {
    int fd;
    uint8_t state;
    uint32_t last_step;
    char key[25];
    uint8_t *part; /* partial frame or handshake bytes */
    uint32_t plen;
} wconn_t;

static struct {
    int idx, lo, hi, n;
    wconn_t *c;
    int ep, ctl_in, out;
    int started, resolved, open, failed, closed, pending_hs;
    char first_err[200];
    /* current step */
    uint32_t step;
    uint64_t win_lo, win_hi;
    uint64_t recv, inwin, distinct, other, bad;
    uint64_t hist[NBUCKETS];
    uint64_t max_ns;
    uint8_t rbuf[RBUF_SIZE + MAX_PARTIAL];
    char path_prefix[128];
    int hdr_host_len;
} W;

static void w_err(int i, const char *fmt, ...)
{
    if (W.first_err[0]) return;
    int n = snprintf(W.first_err, sizeof W.first_err, "conn %d: ", i);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(W.first_err + n, sizeof W.first_err - (size_t)n, fmt, ap);
    va_end(ap);
    for (char *p = W.first_err; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) *p = '\'';
}

static void w_kill(int i, int failed)
{
    wconn_t *c = &W.c[i];
    if (c->state == C_DEAD) return;
    if (c->state != C_OPEN) {
        W.resolved++;
        W.pending_hs--;
        W.failed++;
    } else {
        W.open--;
        W.closed++;
    }
    (void)failed;
    close(c->fd);
    c->state = C_DEAD;
    free(c->part);
    c->part = NULL;
    c->plen = 0;
}

static int send_small(int fd, const void *p, size_t n)
{
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    return w == (ssize_t)n ? 0 : -1;
}

/* A masked client frame (payload <= 125 bytes). */
static int send_frame(int fd, int opcode, const void *payload, size_t n)
{
    uint8_t f[6 + 125];
    if (n > 125) return -1;
    f[0] = (uint8_t)(0x80 | opcode);
    f[1] = (uint8_t)(0x80 | n);
    uint32_t m = (uint32_t)rnd64();
    memcpy(f + 2, &m, 4);
    const uint8_t *p = payload;
    for (size_t i = 0; i < n; i++)
        f[6 + i] = p[i] ^ f[2 + (i & 3)];
    return send_small(fd, f, 6 + n);
}

static void w_start_connect(int i)
{
    wconn_t *c = &W.c[i];
    int gi = W.lo + i;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    W.started++;
    W.pending_hs++;
    c->state = C_CONNECTING;
    c->fd = fd;
    if (fd < 0) {
        w_err(gi, "socket: %s", strerror(errno));
        c->state = C_DEAD;
        W.resolved++;
        W.pending_hs--;
        W.failed++;
        return;
    }
    int one = 1;
#ifdef IP_BIND_ADDRESS_NO_PORT
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(gi % cfg.addrs));
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port)};
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
        w_err(gi, "bind 127.0.0.%d: %s", 2 + gi % cfg.addrs, strerror(errno));
        w_kill(i, 1);
        return;
    }
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) {
        w_err(gi, "connect: %s", strerror(errno));
        w_kill(i, 1);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(W.ep, EPOLL_CTL_ADD, fd, &ev);
}

static void w_send_handshake(int i)
{
    wconn_t *c = &W.c[i];
    int gi = W.lo + i;
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        w_err(gi, "connect: %s", strerror(err));
        w_kill(i, 1);
        return;
    }
    unsigned char k[16];
    for (int j = 0; j < 16; j += 8) {
        uint64_t r = rnd64();
        memcpy(k + j, &r, 8);
    }
    b64(k, 16, c->key);
    char path[256];
    if (cfg.ccomet) {
        char uuid[33];
        static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        for (int j = 0; j < 32; j++)
            uuid[j] = al[rnd64() % 36];
        uuid[32] = 0;
        snprintf(path, sizeof path, "/ws/sesion=&myid=0&devid=0&v=4.09&uuid=%s&api=js", uuid);
    } else {
        snprintf(path, sizeof path, "/sub/%s", cfg.channel);
    }
    char req[640];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1\r\n\r\n",
                     path, cfg.port, c->key);
    if (send_small(c->fd, req, (size_t)n) != 0) {
        w_err(gi, "send handshake: %s", strerror(errno));
        w_kill(i, 1);
        return;
    }
    c->state = C_HANDSHAKE;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(W.ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void w_on_message(wconn_t *c, const uint8_t *p, size_t len, uint64_t now)
{
    const uint8_t *m = len >= 2 ? memmem(p, len < 64 ? len : 64, "B|", 2) : NULL;
    if (!m) {
        W.other++;
        return;
    }
    const uint8_t *e = p + len;
    m += 2;
    uint64_t run = 0, step = 0, ts = 0;
    while (m < e && *m >= '0' && *m <= '9')
        run = run * 10 + (uint64_t)(*m++ - '0');
    if (m >= e || *m++ != '|') goto bad;
    while (m < e && *m >= '0' && *m <= '9')
        step = step * 10 + (uint64_t)(*m++ - '0');
    if (m >= e || *m++ != '|') goto bad;
    while (m < e && *m >= '0' && *m <= '9')
        ts = ts * 10 + (uint64_t)(*m++ - '0');
    if (m >= e || *m != '|') goto bad;
    if (run != run_id || step != W.step) {
        W.other++;
        return;
    }
    W.recv++;
    if (now >= W.win_lo && now <= W.win_hi) W.inwin++;
    uint64_t lat = now > ts ? now - ts : 0;
    W.hist[bucket_of(lat)]++;
    if (lat > W.max_ns) W.max_ns = lat;
    if (c->last_step != step) {
        c->last_step = (uint32_t)step;
        W.distinct++;
    }
    return;
bad:
    W.bad++;
}

/* Parses frames in buf[0..n); keeps an incomplete tail. Returns -1 to kill the connection. */
static int w_frames(int i, uint8_t *buf, size_t n, uint64_t now)
{
    wconn_t *c = &W.c[i];
    size_t off = 0;
    while (n - off >= 2) {
        uint8_t *f = buf + off;
        int op = f[0] & 0x0f;
        uint64_t len = f[1] & 0x7f;
        size_t hl = 2;
        if (f[1] & 0x80) {
            w_err(W.lo + i, "masked server frame");
            return -1;
        }
        if (len == 126) {
            if (n - off < 4) break;
            len = ((uint64_t)f[2] << 8) | f[3];
            hl = 4;
        } else if (len == 127) {
            if (n - off < 10) break;
            len = 0;
            for (int j = 0; j < 8; j++)
                len = (len << 8) | f[2 + j];
            hl = 10;
        }
        if (len > MAX_PARTIAL - 16) {
            w_err(W.lo + i, "frame of %llu bytes", (unsigned long long)len);
            return -1;
        }
        if (n - off < hl + len) break;
        uint8_t *pl = f + hl;
        switch (op) {
        case 0x1: w_on_message(c, pl, (size_t)len, now); break;
        case 0x8: w_err(W.lo + i, "server closed the WebSocket (close frame)"); return -1;
        case 0x9:
            if (send_frame(c->fd, 0xA, pl, (size_t)len) != 0) return -1;
            break;
        default: break;
        }
        off += hl + (size_t)len;
    }
    size_t rest = n - off;
    if (rest) {
        if (rest > c->plen || !c->part) {
            uint8_t *np = realloc(c->part, rest);
            if (!np) return -1;
            c->part = np;
        }
        memmove(c->part, buf + off, rest);
    }
    c->plen = (uint32_t)rest;
    if (!rest && c->part) {
        free(c->part);
        c->part = NULL;
    }
    return 0;
}

static int w_handshake_done(int i, uint8_t *buf, size_t n, uint64_t now)
{
    wconn_t *c = &W.c[i];
    int gi = W.lo + i;
    uint8_t *end = memmem(buf, n, "\r\n\r\n", 4);
    if (!end) {
        if (n > 8192) {
            w_err(gi, "handshake reply too long");
            return -1;
        }
        uint8_t *np = realloc(c->part, n);
        if (!np) return -1;
        memcpy(np, buf, n);
        c->part = np;
        c->plen = (uint32_t)n;
        return 0;
    }
    size_t hlen = (size_t)(end - buf) + 4;
    if (n < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) {
        w_err(gi, "handshake refused: %.*s", (int)(hlen > 60 ? 60 : hlen), buf);
        return -1;
    }
    /* Sec-WebSocket-Accept = base64(SHA1(key + GUID)) */
    char cat[80], want[32];
    int cl = snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", c->key);
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((unsigned char *)cat, (size_t)cl, d);
    b64(d, sizeof d, want);
    int ok = 0;
    for (uint8_t *l = buf; l < end;) {
        uint8_t *le = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
        if (!le) break;
        if (le - l > 21 && strncasecmp((char *)l, "Sec-WebSocket-Accept:", 21) == 0) {
            char *v = (char *)l + 21;
            while (*v == ' ')
                v++;
            size_t wl = strlen(want);
            ok = (size_t)((char *)le - v) >= wl && memcmp(v, want, wl) == 0;
        }
        l = le + 2;
    }
    if (!ok) {
        w_err(gi, "bad or missing Sec-WebSocket-Accept");
        return -1;
    }
    free(c->part);
    c->part = NULL;
    c->plen = 0;
    c->state = C_OPEN;
    W.open++;
    W.resolved++;
    W.pending_hs--;
    if (cfg.ccomet) {
        char sub[96];
        int sl = snprintf(sub, sizeof sub, "subscription\n%s", cfg.channel);
        if (send_frame(c->fd, 0x1, sub, (size_t)sl) != 0) {
            w_err(gi, "send subscription: %s", strerror(errno));
            return -1;
        }
    }
    /* bytes after the 101 head are frames already */
    if (n > hlen) {
        memmove(buf, buf + hlen, n - hlen);
        return w_frames(i, buf, n - hlen, now);
    }
    return 0;
}

static void w_on_readable(int i)
{
    wconn_t *c = &W.c[i];
    uint8_t *buf = W.rbuf;
    size_t have = 0;
    if (c->plen) {
        memcpy(buf, c->part, c->plen);
        have = c->plen;
    }
    ssize_t r = recv(c->fd, buf + have, RBUF_SIZE, 0);
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
        w_err(W.lo + i, "%s", r == 0 ? "server closed the connection" : strerror(errno));
        w_kill(i, 1);
        return;
    }
    uint64_t now = now_ns();
    have += (size_t)r;
    int rc = c->state == C_HANDSHAKE ? w_handshake_done(i, buf, have, now)
                                     : w_frames(i, buf, have, now);
    if (rc != 0) w_kill(i, 1);
}

static void w_reply(const char *fmt, ...)
{
    char line[64 * 1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof line - 1) n = (int)sizeof line - 2;
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(W.out, line + off, (size_t)(n - off));
        if (w <= 0) {
            if (errno == EINTR) continue;
            _exit(1);
        }
        off += (int)w;
    }
}

static double cpu_self_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void w_counts(const char *ev)
{
    w_reply("{\"w\":%d,\"ev\":\"%s\",\"step\":%u,\"recv\":%llu,\"inwin\":%llu,\"distinct\":%llu,"
            "\"open\":%d,\"failed\":%d,\"closed\":%d,\"other\":%llu,\"bad\":%llu,\"cpu_s\":%.3f,"
            "\"err\":\"%s\"}",
            W.idx, ev, W.step, (unsigned long long)W.recv, (unsigned long long)W.inwin,
            (unsigned long long)W.distinct, W.open, W.failed, W.closed,
            (unsigned long long)W.other, (unsigned long long)W.bad, cpu_self_s(), W.first_err);
}

static void w_report(void)
{
    static char hs[48 * 1024];
    size_t o = 0;
    int first = 1;
    for (int b = 0; b < NBUCKETS && o < sizeof hs - 64; b++) {
        if (!W.hist[b]) continue;
        o += (size_t)snprintf(hs + o, sizeof hs - o, "%s[%d,%llu]", first ? "" : ",", b,
                              (unsigned long long)W.hist[b]);
        first = 0;
    }
    hs[o] = 0;
    w_reply("{\"w\":%d,\"ev\":\"report\",\"step\":%u,\"recv\":%llu,\"inwin\":%llu,"
            "\"distinct\":%llu,\"open\":%d,\"closed\":%d,\"max_us\":%.1f,\"cpu_s\":%.3f,"
            "\"err\":\"%s\",\"hist\":[%s]}",
            W.idx, W.step, (unsigned long long)W.recv, (unsigned long long)W.inwin,
            (unsigned long long)W.distinct, W.open, W.closed, W.max_ns / 1000.0, cpu_self_s(),
            W.first_err, hs);
}

static char ctl_buf[4096];
static size_t ctl_len;

/* Returns 1 to quit. */
static int w_on_control(void)
{
    ssize_t r = read(W.ctl_in, ctl_buf + ctl_len, sizeof ctl_buf - 1 - ctl_len);
    if (r <= 0) return 1; /* parent gone */
    ctl_len += (size_t)r;
    char *nl;
    while ((nl = memchr(ctl_buf, '\n', ctl_len))) {
        *nl = 0;
        char *l = ctl_buf;
        if (l[0] == 'S') {
            unsigned st;
            unsigned long long lo, hi;
            if (sscanf(l + 1, "%u %llu %llu", &st, &lo, &hi) == 3) {
                W.step = st;
                W.win_lo = lo;
                W.win_hi = hi;
                W.recv = W.inwin = W.distinct = W.other = W.bad = 0;
                W.max_ns = 0;
                memset(W.hist, 0, sizeof W.hist);
            }
            w_reply("{\"w\":%d,\"ev\":\"ok\"}", W.idx);
        } else if (l[0] == 'C') {
            w_counts("count");
        } else if (l[0] == 'R') {
            w_report();
        } else if (l[0] == 'Q') {
            return 1;
        }
        size_t used = (size_t)(nl + 1 - ctl_buf);
        memmove(ctl_buf, nl + 1, ctl_len - used);
        ctl_len -= used;
    }
    return 0;
}

static void worker_main(int idx, int lo, int hi, int ctl_in, int out)
{
    W.idx = idx;
    W.lo = lo;
    W.hi = hi;
    W.n = hi - lo;
    W.ctl_in = ctl_in;
    W.out = out;
    rng_state = now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    W.c = calloc((size_t)W.n, sizeof *W.c);
    W.ep = epoll_create1(EPOLL_CLOEXEC);
    if (!W.c || W.ep < 0) _exit(1);
    struct epoll_event cev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(W.ep, EPOLL_CTL_ADD, ctl_in, &cev);
    int next = 0, ready_sent = 0;
    uint64_t t_start = now_ns();
    static struct epoll_event evs[1024];
    for (;;) {
        while (next < W.n && W.pending_hs < cfg.inflight)
            w_start_connect(next++);
        if (!ready_sent && W.resolved == W.n) {
            ready_sent = 1;
            w_reply("{\"w\":%d,\"ev\":\"ready\",\"open\":%d,\"failed\":%d,\"secs\":%.3f,"
                    "\"err\":\"%s\"}",
                    idx, W.open, W.failed, (now_ns() - t_start) / 1e9, W.first_err);
        }
        int k = epoll_wait(W.ep, evs, 1024, 100);
        if (k < 0) {
            if (errno == EINTR) continue;
            _exit(1);
        }
        for (int j = 0; j < k; j++) {
            uint32_t i = evs[j].data.u32;
            if (i == UINT32_MAX) {
                if (w_on_control()) {
                    for (int x = 0; x < W.n; x++)
                        if (W.c[x].state != C_DEAD) close(W.c[x].fd);
                    _exit(0);
                }
                continue;
            }
            wconn_t *c = &W.c[i];
            if (c->state == C_DEAD) continue;
            if (c->state == C_CONNECTING) {
                if (evs[j].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) w_send_handshake((int)i);
                continue;
            }
            w_on_readable((int)i);
        }
    }
}

/* ===================================================================== parent ====== */

typedef struct {
    pid_t pid;
    int ctl, in;
    char buf[96 * 1024];
    size_t len;
} wref_t;

static wref_t WR[MAX_PROCS];

/* Reads one line from worker w (blocking, with a timeout). */
static char *read_line(int w, double timeout_s)
{
    wref_t *r = &WR[w];
    static char line[96 * 1024];
    uint64_t dl = now_ns() + (uint64_t)(timeout_s * 1e9);
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl) {
            size_t l = (size_t)(nl - r->buf);
            memcpy(line, r->buf, l);
            line[l] = 0;
            memmove(r->buf, nl + 1, r->len - l - 1);
            r->len -= l + 1;
            return line;
        }
        if (now_ns() > dl) die("worker %d did not answer within %.0f s", w, timeout_s);
        if (r->len >= sizeof r->buf - 1) die("worker %d: line too long", w);
        fd_set rs;
        FD_ZERO(&rs);
        FD_SET(r->in, &rs);
        struct timeval tv = {0, 200000};
        int k = select(r->in + 1, &rs, NULL, NULL, &tv);
        if (k <= 0) continue;
        ssize_t n = read(r->in, r->buf + r->len, sizeof r->buf - 1 - r->len);
        if (n <= 0) die("worker %d exited", w);
        r->len += (size_t)n;
    }
}

static long long jint(const char *l, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(l, k);
    return p ? strtoll(p + strlen(k), NULL, 10) : -1;
}

static double jdbl(const char *l, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(l, k);
    return p ? strtod(p + strlen(k), NULL) : -1;
}

static void jstr(const char *l, const char *key, char *out, size_t cap)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":\"", key);
    const char *p = strstr(l, k);
    out[0] = 0;
    if (!p) return;
    p += strlen(k);
    size_t i = 0;
    while (p[i] && p[i] != '"' && i + 1 < cap) {
        out[i] = p[i];
        i++;
    }
    out[i] = 0;
}

static void send_all(const char *cmd)
{
    for (int w = 0; w < cfg.procs; w++) {
        size_t n = strlen(cmd);
        if (write(WR[w].ctl, cmd, n) != (ssize_t)n) die("worker %d: control pipe broken", w);
    }
}

typedef struct {
    long long recv, inwin, distinct, open, closed, failed;
    double cpu_s;
    char err[200];
} agg_t;

static agg_t collect_counts(void)
{
    agg_t a = {0};
    send_all("C\n");
    for (int w = 0; w < cfg.procs; w++) {
        char *l = read_line(w, 30);
        if (cfg.verbose > 1) fprintf(stderr, "%s\n", l);
        a.recv += jint(l, "recv");
        a.inwin += jint(l, "inwin");
        a.distinct += jint(l, "distinct");
        a.open += jint(l, "open");
        a.closed += jint(l, "closed");
        a.failed += jint(l, "failed");
        a.cpu_s += jdbl(l, "cpu_s");
        if (!a.err[0]) jstr(l, "err", a.err, sizeof a.err);
    }
    return a;
}

static void begin_step(unsigned step, uint64_t lo, uint64_t hi)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "S %u %llu %llu\n", step, (unsigned long long)lo,
             (unsigned long long)hi);
    send_all(cmd);
    for (int w = 0; w < cfg.procs; w++)
        read_line(w, 30);
}

/* --------------------------------------------------------------- /proc probes ---- */

static int children_of(int pid, int *out, int cap)
{
    int n = 0;
    DIR *d = opendir("/proc");
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        char p[300], b[512];
        snprintf(p, sizeof p, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f) continue;
        size_t k = fread(b, 1, sizeof b - 1, f);
        fclose(f);
        b[k] = 0;
        char *rp = strrchr(b, ')');
        if (!rp) continue;
        char st;
        int ppid;
        if (sscanf(rp + 2, "%c %d", &st, &ppid) == 2 && ppid == pid) out[n++] = atoi(e->d_name);
    }
    closedir(d);
    return n;
}

static int server_tree(int *pids, int cap)
{
    if (cfg.server_pid <= 0) return 0;
    pids[0] = cfg.server_pid;
    return 1 + children_of(cfg.server_pid, pids + 1, cap - 1);
}

/* utime + stime of a process, seconds */
static double proc_cpu_s(int pid)
{
    char p[64], b[1024];
    snprintf(p, sizeof p, "/proc/%d/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    size_t k = fread(b, 1, sizeof b - 1, f);
    fclose(f);
    b[k] = 0;
    char *rp = strrchr(b, ')');
    if (!rp) return 0;
    unsigned long long ut = 0, stt = 0;
    /* fields after ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime(14) stime(15) */
    sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt);
    return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static double server_cpu_s(void)
{
    int pids[64];
    int n = server_tree(pids, 64);
    double s = 0;
    for (int i = 0; i < n; i++)
        s += proc_cpu_s(pids[i]);
    return s;
}

static double workers_cpu_s(void)
{
    double s = 0;
    for (int w = 0; w < cfg.procs; w++)
        s += proc_cpu_s(WR[w].pid);
    return s;
}

static long kb_field(const char *path, const char *name)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    size_t nl = strlen(name);
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, name, nl) == 0) {
            v = strtol(line + nl, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

typedef struct {
    long pss_kb, rss_kb;
    int procs;
} mem_t;

static mem_t server_mem(void)
{
    mem_t m = {0, 0, 0};
    int pids[64];
    int n = server_tree(pids, 64);
    for (int i = 0; i < n; i++) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/smaps_rollup", pids[i]);
        long pss = kb_field(p, "Pss:");
        snprintf(p, sizeof p, "/proc/%d/status", pids[i]);
        long rss = kb_field(p, "VmRSS:");
        if (pss >= 0) m.pss_kb += pss;
        if (rss >= 0) m.rss_kb += rss;
        m.procs++;
    }
    return m;
}

/* Waits until the server tree used < 3 % of a core over 300 ms (max `max_s`). */
static double settle(double max_s)
{
    uint64_t t0 = now_ns();
    double prev = server_cpu_s();
    int quiet = 0;
    while ((now_ns() - t0) / 1e9 < max_s) {
        sleep_ms(300);
        double c = server_cpu_s();
        if (c - prev <= 0.01) {
            if (++quiet >= 2) break;
        } else {
            quiet = 0;
        }
        prev = c;
    }
    return (now_ns() - t0) / 1e9;
}

/* ----------------------------------------------------------------- publishers ---- */

typedef struct {
    int id;
    MYSQL *my;
    int fd;
    char rbuf[8192];
    size_t rlen;
    char *msg;
    long long sent, errors;
    char err[200];
} pub_t;

static pub_t PUB[MAX_PUBS];
static pthread_barrier_t pub_bar;
static struct {
    unsigned step;
    double rate;
    uint64_t t0, t_end;
    atomic_int quit;
} ps;

static int http_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.pub_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void pub_open(pub_t *p)
{
    p->msg = malloc(1024 + (size_t)cfg.payload);
    if (cfg.ccomet) {
        p->my = mysql_init(NULL);
        my_bool off = 0;
        unsigned int to = 10;
        mysql_options(p->my, MYSQL_OPT_SSL_ENFORCE, &off);
        mysql_options(p->my, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &off);
        mysql_options(p->my, MYSQL_OPT_CONNECT_TIMEOUT, &to);
        mysql_options(p->my, MYSQL_OPT_READ_TIMEOUT, &to);
        mysql_options(p->my, MYSQL_OPT_WRITE_TIMEOUT, &to);
        if (!mysql_real_connect(p->my, "127.0.0.1", "root", cfg.password, NULL,
                                (unsigned)cfg.pub_port, NULL, 0))
            die("publisher %d: CometQL connect to 127.0.0.1:%d failed: %s", p->id, cfg.pub_port,
                mysql_error(p->my));
    } else {
        p->fd = http_connect();
        if (p->fd < 0) die("publisher %d: connect to nchan :%d failed", p->id, cfg.pub_port);
    }
}

/* One publish of payload `pl`; 0 on success. */
static int pub_send(pub_t *p, const char *pl, size_t plen)
{
    if (cfg.ccomet) {
        int n = snprintf(p->msg, 1024 + (size_t)cfg.payload,
                         "INSERT INTO pipes_messages (name, event, message) VALUES ('%s', 'ev', "
                         "'%.*s')",
                         cfg.channel, (int)plen, pl);
        if (mysql_real_query(p->my, p->msg, (unsigned long)n) != 0) {
            snprintf(p->err, sizeof p->err, "CometQL: %s", mysql_error(p->my));
            return -1;
        }
        return 0;
    }
    int n = snprintf(p->msg, 1024 + (size_t)cfg.payload,
                     "POST /pub?id=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n%.*s",
                     cfg.channel, plen, (int)plen, pl);
    if (send(p->fd, p->msg, (size_t)n, MSG_NOSIGNAL) != n) {
        snprintf(p->err, sizeof p->err, "nchan send: %s", strerror(errno));
        return -1;
    }
    for (;;) {
        char *h = memmem(p->rbuf, p->rlen, "\r\n\r\n", 4);
        if (h) {
            size_t hl = (size_t)(h - p->rbuf) + 4;
            int status = 0;
            if (p->rlen < 12 || sscanf(p->rbuf + 9, "%3d", &status) != 1 || status < 200 ||
                status > 299) {
                snprintf(p->err, sizeof p->err, "nchan publish: %.40s", p->rbuf);
                for (char *q = p->err; *q; q++)
                    if (*q == '"' || (unsigned char)*q < 0x20) *q = '\'';
                return -1;
            }
            long clen = 0;
            int chunked = 0;
            for (char *q = p->rbuf; q < h; q++) {
                if (*q != '\n') continue;
                if (strncasecmp(q + 1, "Content-Length:", 15) == 0) clen = atol(q + 16);
                if (strncasecmp(q + 1, "Transfer-Encoding: chunked", 26) == 0) chunked = 1;
            }
            size_t need = hl + (size_t)clen;
            if (chunked) {
                char *z = memmem(h + 4, p->rlen - hl, "0\r\n\r\n", 5);
                if (!z) goto more;
                need = (size_t)(z - p->rbuf) + 5;
            }
            if (p->rlen < need) goto more;
            memmove(p->rbuf, p->rbuf + need, p->rlen - need);
            p->rlen -= need;
            return 0;
        }
    more:
        if (p->rlen >= sizeof p->rbuf - 1) {
            snprintf(p->err, sizeof p->err, "nchan reply too long");
            return -1;
        }
        ssize_t r = recv(p->fd, p->rbuf + p->rlen, sizeof p->rbuf - 1 - p->rlen, 0);
        if (r <= 0) {
            snprintf(p->err, sizeof p->err, "nchan reply: %s",
                     r == 0 ? "connection closed" : strerror(errno));
            return -1;
        }
        p->rlen += (size_t)r;
        p->rbuf[p->rlen] = 0;
    }
}

static size_t make_payload(char *out, unsigned step, uint64_t ts)
{
    int n = snprintf(out, 64, "B|%u|%u|%llu|", run_id, step, (unsigned long long)ts);
    size_t len = (size_t)n;
    while ((int)len < cfg.payload)
        out[len++] = 'x';
    out[len] = 0;
    return len;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull), .tv_nsec = (long)(t % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void *pub_thread(void *arg)
{
    pub_t *p = arg;
    char pl[4096];
    for (;;) {
        pthread_barrier_wait(&pub_bar);
        if (atomic_load(&ps.quit)) return NULL;
        double interval = 1e9 / ps.rate;
        for (uint64_t i = (uint64_t)p->id;; i += (uint64_t)cfg.publishers) {
            uint64_t t = ps.t0 + (uint64_t)((double)i * interval);
            if (t >= ps.t_end) break;
            if (now_ns() < t) sleep_until(t);
            size_t len = make_payload(pl, ps.step, t);
            if (pub_send(p, pl, len) != 0) {
                p->errors++;
                break;
            }
            p->sent++;
        }
        pthread_barrier_wait(&pub_bar);
    }
}

/* ----------------------------------------------------------------- main flow ---- */

static unsigned next_step = 1;

/* Publishes probes on publisher 0 until every connection got one. */
static void sync_all(void)
{
    unsigned step = next_step++;
    begin_step(step, 0, 0);
    char pl[4096];
    uint64_t t0 = now_ns();
    agg_t a = {0};
    int probes = 0;
    while ((now_ns() - t0) / 1e9 < 60) {
        size_t len = make_payload(pl, step, now_ns());
        if (pub_send(&PUB[0], pl, len) != 0) die("probe publish failed: %s", PUB[0].err);
        probes++;
        for (int k = 0; k < 5; k++) {
            sleep_ms(40);
            a = collect_counts();
            if (a.distinct >= cfg.conns || a.closed) break;
        }
        if (a.closed) die("%lld connections closed (%s)", a.closed, a.err);
        if (a.distinct >= cfg.conns) {
            if (cfg.verbose)
                fprintf(stderr, "  %s: every connection got the probe (%d probes, %.2f s)\n",
                        cfg.sys_name, probes, (now_ns() - t0) / 1e9);
            return;
        }
    }
    die("sync: only %lld of %d connections received a probe within 60 s", a.distinct, cfg.conns);
}

static int parse_rates(const char *s)
{
    cfg.n_rates = 0;
    while (*s && cfg.n_rates < MAX_RATES) {
        char *e;
        double v = strtod(s, &e);
        if (e == s || v <= 0) return -1;
        cfg.rates[cfg.n_rates++] = v;
        s = e;
        while (*s == ',' || *s == ' ')
            s++;
    }
    return cfg.n_rates ? 0 : -1;
}

static int free_ports(int k)
{
    int fds[64];
    if (k < 1 || k > 64) return 2;
    for (int i = 0; i < k; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t al = sizeof a;
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&a, &al) != 0) {
            perror("free-ports");
            return 1;
        }
        printf("%s%d", i ? " " : "", ntohs(a.sin_port));
    }
    printf("\n");
    for (int i = 0; i < k; i++)
        close(fds[i]);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: ws_load --system ccomet|nchan --port WS_PORT --pub-port PORT --conns N\n"
            "               --mode memory|fanout [--server-pid PID] [--procs P] [--addrs A]\n"
            "               [--rates 100,200,500] [--step-seconds 2] [--drain-max 3]\n"
            "               [--publishers 4] [--password pw] [--channel bench_pipe]\n"
            "               [--payload 100] [--p99-limit-ms 1000] [--inflight 256] [-v]\n"
            "       ws_load --free-ports K\n");
    exit(2);
}

static void kill_workers(void)
{
    for (int w = 0; w < cfg.procs; w++)
        if (WR[w].pid > 0) kill(WR[w].pid, SIGKILL);
}

int main(int argc, char **argv)
{
    const char *sys = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-v")) {
            cfg.verbose++;
            continue;
        }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--free-ports")) return free_ports(atoi(v));
        else if (!strcmp(a, "--system")) sys = v;
        else if (!strcmp(a, "--port")) cfg.port = atoi(v);
        else if (!strcmp(a, "--pub-port")) cfg.pub_port = atoi(v);
        else if (!strcmp(a, "--conns")) cfg.conns = atoi(v);
        else if (!strcmp(a, "--procs")) cfg.procs = atoi(v);
        else if (!strcmp(a, "--addrs")) cfg.addrs = atoi(v);
        else if (!strcmp(a, "--publishers")) cfg.publishers = atoi(v);
        else if (!strcmp(a, "--payload")) cfg.payload = atoi(v);
        else if (!strcmp(a, "--server-pid")) cfg.server_pid = atoi(v);
        else if (!strcmp(a, "--mode")) cfg.mode = v;
        else if (!strcmp(a, "--password")) cfg.password = v;
        else if (!strcmp(a, "--channel")) cfg.channel = v;
        else if (!strcmp(a, "--step-seconds")) cfg.step_s = atof(v);
        else if (!strcmp(a, "--drain-max")) cfg.drain_max_s = atof(v);
        else if (!strcmp(a, "--p99-limit-ms")) cfg.p99_limit_ms = atof(v);
        else if (!strcmp(a, "--inflight")) cfg.inflight = atoi(v);
        else if (!strcmp(a, "--rates")) {
            if (parse_rates(v)) usage();
        } else
            usage();
    }
    if (!sys || !cfg.mode || cfg.port <= 0 || cfg.pub_port <= 0 || cfg.conns <= 0) usage();
    if (!strcmp(sys, "ccomet")) cfg.ccomet = 1;
    else if (strcmp(sys, "nchan")) usage();
    cfg.sys_name = sys;
    int memory = !strcmp(cfg.mode, "memory");
    if (!memory && strcmp(cfg.mode, "fanout")) usage();
    if (!memory && !cfg.n_rates) parse_rates("100,200,500,1000");
    if (cfg.procs <= 0) cfg.procs = cfg.conns > 15000 ? (cfg.conns + 14999) / 15000 : 2;
    if (cfg.procs > MAX_PROCS) cfg.procs = MAX_PROCS;
    if (cfg.procs > cfg.conns) cfg.procs = cfg.conns;
    if (cfg.publishers < 1) cfg.publishers = 1;
    if (cfg.publishers > MAX_PUBS) cfg.publishers = MAX_PUBS;
    if (cfg.payload < 48) cfg.payload = 48;
    if (cfg.payload > 2000) cfg.payload = 2000;
    if (cfg.addrs < 1 || cfg.addrs > 250) cfg.addrs = 16;
    if (cfg.inflight < 1) cfg.inflight = 1;
    int per = (cfg.conns + cfg.procs - 1) / cfg.procs;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if ((rlim_t)per + 64 > rl.rlim_cur)
        die("%d connections per process need more than the open-files limit %llu (use --procs)",
            per, (unsigned long long)rl.rlim_cur);
    run_id = (unsigned)((now_ns() ^ (uint64_t)getpid() * 2654435761u) % 1000000);
    signal(SIGPIPE, SIG_IGN);

    mem_t m0 = server_mem();
    double idle_cpu0 = server_cpu_s();
    (void)idle_cpu0;

    /* publishers first: a server that refuses them fails before the heavy part */
    for (int i = 0; i < cfg.publishers; i++) {
        PUB[i].id = i;
        pub_open(&PUB[i]);
    }

    /* workers */
    uint64_t tc0 = now_ns();
    for (int w = 0; w < cfg.procs; w++) {
        int c2w[2], w2c[2];
        if (pipe2(c2w, O_CLOEXEC) || pipe2(w2c, O_CLOEXEC)) die("pipe: %s", strerror(errno));
        int lo = w * per, hi = lo + per > cfg.conns ? cfg.conns : lo + per;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) die("fork: %s", strerror(errno));
        if (pid == 0) {
            close(c2w[1]);
            close(w2c[0]);
            for (int j = 0; j < w; j++) {
                close(WR[j].ctl);
                close(WR[j].in);
            }
            worker_main(w, lo, hi, c2w[0], w2c[1]);
            _exit(0);
        }
        close(c2w[0]);
        close(w2c[1]);
        WR[w].pid = pid;
        WR[w].ctl = c2w[1];
        WR[w].in = w2c[0];
    }
    atexit(kill_workers);

    long long open = 0, failed = 0;
    char err[200] = "";
    for (int w = 0; w < cfg.procs; w++) {
        char *l = read_line(w, 120);
        if (cfg.verbose > 1) fprintf(stderr, "%s\n", l);
        open += jint(l, "open");
        failed += jint(l, "failed");
        if (!err[0]) jstr(l, "err", err, sizeof err);
    }
    double connect_s = (now_ns() - tc0) / 1e9;
    if (failed) die("%s: %lld of %d connections failed (%s)", sys, failed, cfg.conns, err);
    if (cfg.verbose)
        fprintf(stderr, "  %s: %lld connections open in %.2f s (%d processes, %d source addrs)\n",
                sys, open, connect_s, cfg.procs, cfg.addrs);

    int pids[64];
    int nproc_srv = server_tree(pids, 64);

    if (memory) {
        /* connected + subscription frames sent; let the server finish and go idle */
        settle(5);
        mem_t m1 = server_mem();
        sync_all(); /* proof that every connection is subscribed */
        /* ccomet frees an emptied output queue at its next once-a-second sweep: let one pass */
        sleep_ms(1500);
        settle(5);
        mem_t m2 = server_mem();
        agg_t a = collect_counts();
        if (a.closed || a.open != cfg.conns)
            die("%lld connections closed during the measurement (%s)", a.closed, a.err);
        printf("{\"system\":\"%s\",\"mode\":\"memory\",\"conns\":%d,\"procs\":%d,"
               "\"server_procs\":%d,\"connect_s\":%.2f,"
               "\"pss_kb_before\":%ld,\"pss_kb_connected\":%ld,\"pss_kb_subscribed\":%ld,"
               "\"rss_kb_before\":%ld,\"rss_kb_connected\":%ld,\"rss_kb_subscribed\":%ld,"
               "\"pss_kb_per_conn\":%.3f,\"rss_kb_per_conn\":%.3f}\n",
               sys, cfg.conns, cfg.procs, nproc_srv, connect_s, m0.pss_kb, m1.pss_kb, m2.pss_kb,
               m0.rss_kb, m1.rss_kb, m2.rss_kb, (double)(m2.pss_kb - m0.pss_kb) / cfg.conns,
               (double)(m2.rss_kb - m0.rss_kb) / cfg.conns);
        fflush(stdout);
        send_all("Q\n");
        return 0;
    }

    /* fan-out ladder */
    pthread_barrier_init(&pub_bar, NULL, (unsigned)cfg.publishers + 1);
    pthread_t th[MAX_PUBS];
    for (int i = 0; i < cfg.publishers; i++)
        pthread_create(&th[i], NULL, pub_thread, &PUB[i]);
    sync_all();
    int rc = 0;
    for (int r = 0; r < cfg.n_rates; r++) {
        double rate = cfg.rates[r];
        settle(5);
        unsigned step = next_step++;
        uint64_t t0 = now_ns() + 50000000ull; /* 50 ms to get everyone ready */
        uint64_t t_end = t0 + (uint64_t)(cfg.step_s * 1e9);
        begin_step(step, t0, t_end);
        ps.step = step;
        ps.rate = rate;
        ps.t0 = t0;
        ps.t_end = t_end;
        long long sent0 = 0, err0 = 0;
        for (int i = 0; i < cfg.publishers; i++) {
            sent0 += PUB[i].sent;
            err0 += PUB[i].errors;
        }
        sleep_until(t0);
        double scpu0 = server_cpu_s(), wcpu0 = workers_cpu_s();
        struct rusage ru0;
        getrusage(RUSAGE_SELF, &ru0);
        pthread_barrier_wait(&pub_bar); /* go */
        pthread_barrier_wait(&pub_bar); /* all publishers done */
        uint64_t t_pub_done = now_ns();
        long long sent = -sent0, perr = -err0;
        char perr_s[200] = "";
        for (int i = 0; i < cfg.publishers; i++) {
            sent += PUB[i].sent;
            perr += PUB[i].errors;
            if (PUB[i].errors && !perr_s[0]) snprintf(perr_s, sizeof perr_s, "%s", PUB[i].err);
        }
        if (perr) die("%s: publish failed: %s", sys, perr_s);
        long long expected = sent * cfg.conns;
        /* drain: until every delivery arrived or drain-max after the window's end */
        agg_t a;
        uint64_t drain_dl = (t_end > t_pub_done ? t_end : t_pub_done) +
                            (uint64_t)(cfg.drain_max_s * 1e9);
        for (;;) {
            a = collect_counts();
            if (a.recv >= expected || a.closed || now_ns() > drain_dl) break;
            sleep_ms(20);
        }
        uint64_t t_done = now_ns();
        double scpu = server_cpu_s() - scpu0, wcpu = workers_cpu_s() - wcpu0;
        struct rusage ru1;
        getrusage(RUSAGE_SELF, &ru1);
        double pcpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                      (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                      (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                      (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
        /* full reports: merge the histograms */
        static uint64_t hist[NBUCKETS];
        memset(hist, 0, sizeof hist);
        long long recv = 0, inwin = 0, closed = 0;
        double max_us = 0;
        send_all("R\n");
        for (int w = 0; w < cfg.procs; w++) {
            char *l = read_line(w, 30);
            if (cfg.verbose > 1) fprintf(stderr, "%.300s\n", l);
            recv += jint(l, "recv");
            inwin += jint(l, "inwin");
            closed += jint(l, "closed");
            double mx = jdbl(l, "max_us");
            if (mx > max_us) max_us = mx;
            char *h = strstr(l, "\"hist\":[");
            if (h) {
                h += 8;
                int b;
                unsigned long long c;
                int used;
                while (sscanf(h, "[%d,%llu]%n", &b, &c, &used) == 2) {
                    if (b >= 0 && b < NBUCKETS) hist[b] += c;
                    h += used;
                    if (*h == ',') h++;
                }
            }
        }
        double win_s = cfg.step_s;
        double dps = inwin / win_s;
        double p50 = hist_pct(hist, (uint64_t)recv, 50), p99 = hist_pct(hist, (uint64_t)recv, 99);
        double p999 = hist_pct(hist, (uint64_t)recv, 99.9);
        double target_dps = rate * cfg.conns;
        long long lost = expected - recv;
        double pub_rate = sent / win_s;
        int keeps_up = closed == 0 && lost <= 0 && inwin >= 0.9 * target_dps * win_s &&
                       pub_rate >= 0.9 * rate && p99 <= cfg.p99_limit_ms * 1000;
        printf("{\"system\":\"%s\",\"mode\":\"fanout\",\"subscribers\":%d,\"rate\":%.0f,"
               "\"published\":%lld,\"pub_rate\":%.1f,\"expected\":%lld,\"received\":%lld,"
               "\"lost\":%lld,\"in_window\":%lld,\"deliveries_per_sec\":%.0f,"
               "\"target_deliveries_per_sec\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
               "\"p999_ms\":%.3f,\"max_ms\":%.3f,\"drain_s\":%.3f,\"server_cpu_s\":%.3f,"
               "\"server_cpu_us_per_delivery\":%.4f,\"server_cpu_pct\":%.1f,"
               "\"client_cpu_pct\":%.1f,\"publisher_cpu_pct\":%.1f,\"closed\":%lld,"
               "\"keeps_up\":%s,\"procs\":%d,\"publishers\":%d,\"payload\":%d}\n",
               sys, cfg.conns, rate, sent, pub_rate, expected, recv, lost, inwin, dps, target_dps,
               p50 / 1000, p99 / 1000, p999 / 1000, max_us / 1000,
               t_done > (t_end > t_pub_done ? t_end : t_pub_done) ? (t_done - (t_end > t_pub_done ? t_end : t_pub_done)) / 1e9 : 0.0, scpu,
               recv ? scpu * 1e6 / recv : 0, scpu * 100 / ((t_done - t0) / 1e9),
               wcpu * 100 / ((t_done - t0) / 1e9), pcpu * 100 / ((t_done - t0) / 1e9), closed,
               keeps_up ? "true" : "false", cfg.procs, cfg.publishers, cfg.payload);
        fflush(stdout);
        if (cfg.verbose)
            fprintf(stderr,
                    "  %-6s subs=%-6d rate=%-6.0f deliveries/s=%-9.0f (target %.0f) p50=%.2fms "
                    "p99=%.2fms lost=%lld srvcpu=%.3fus/del %s\n",
                    sys, cfg.conns, rate, dps, target_dps, p50 / 1000, p99 / 1000, lost,
                    recv ? scpu * 1e6 / recv : 0, keeps_up ? "" : "(does not keep up)");
        if (closed) {
            fprintf(stderr, "ws_load: %lld connections closed during the step\n", closed);
            rc = 1;
            break;
        }
        if (!keeps_up) break;
    }
    atomic_store(&ps.quit, 1);
    pthread_barrier_wait(&pub_bar);
    for (int i = 0; i < cfg.publishers; i++)
        pthread_join(th[i], NULL);
    settle(5);
    send_all("Q\n");
    return rc;
}
