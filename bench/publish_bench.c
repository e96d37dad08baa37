/*
 * publish_bench — closed-loop publish benchmark client for ccomet and its peers.
 *
 *   publish_bench --system ccomet|nchan|redis --port P --conns N --seconds S
 *                 [--warmup W] [--password pw] [--host 127.0.0.1] [--channel bench_pipe]
 *   publish_bench --free-ports K        print K distinct free loopback TCP ports
 *
 * One thread per connection. Every connection is opened before the clock starts; then
 * each thread sends one publish, waits for the reply, and repeats (closed loop) for
 * W seconds of warm-up (not recorded) followed by S seconds of measurement. Every
 * measured op's latency is taken with CLOCK_MONOTONIC around the request/reply pair.
 *
 *   ccomet: MariaDB Connector/C, plain (no TLS), mysql_real_query() of
 *           INSERT INTO pipes_messages (name, event, message) VALUES ('<chan>', 'ev', '<json>')
 *   nchan:  raw HTTP/1.1 keep-alive client, POST /pub?id=<chan> with the JSON body
 *   redis:  hiredis, PUBLISH <chan> <json>
 *
 * Output: one JSON line on stdout:
 *   {"system":..,"conns":..,"seconds":..,"ops":..,"ops_per_sec":..,"p50_us":..,"p99_us":..,"errors":..}
 * Any failed publish (SQL error, Redis error reply, non-2xx HTTP status, I/O error)
 * aborts the whole measurement: a clear message goes to stderr, the JSON line carries
 * "errors" > 0 and an "error" string, and the exit status is 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis.h>
#include <mysql.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ~100-byte JSON message, free of quotes/backslashes that SQL would need escaped. */
static const char PAYLOAD[] =
    "{\"type\":\"chat\",\"seq\":12345,\"user\":\"u-0042\",\"text\":\"the quick brown fox "
    "jumps over the lazy dog\",\"ts\":1700000000}";
#define PAYLOAD_LEN (sizeof(PAYLOAD) - 1)

#define IO_TIMEOUT_S 10

enum sys { SYS_CCOMET, SYS_NCHAN, SYS_REDIS };

static struct {
    enum sys sys;
    const char *sys_name;
    const char *host;
    int port;
    int conns;
    double seconds;
    double warmup;
    const char *password;
    const char *channel;
} cfg = {.host = "127.0.0.1", .warmup = 0.5, .password = "", .channel = "bench_pipe"};

/* Set once before the threads are released; read-only afterwards. */
static uint64_t warm_end_ns, end_ns;
static pthread_barrier_t start_barrier;

static atomic_int stop_flag;
static atomic_long error_count;
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;
static char first_error[512];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fail(int conn, const char *fmt, ...)
{
    atomic_fetch_add(&error_count, 1);
    pthread_mutex_lock(&err_mu);
    if (!first_error[0]) {
        int n = snprintf(first_error, sizeof first_error, "%s conn %d: ", cfg.sys_name, conn);
        va_list ap;
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < sizeof first_error)
            vsnprintf(first_error + n, sizeof first_error - (size_t)n, fmt, ap);
        va_end(ap);
        /* Keep the JSON string trivially valid. */
        for (char *p = first_error; *p; p++)
            if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) *p = '\'';
    }
    pthread_mutex_unlock(&err_mu);
    atomic_store(&stop_flag, 1);
}

/* ---------------------------------------------------------------- samples ---- */

typedef struct {
    uint32_t *v; /* latency in ns, clamped to UINT32_MAX (~4.3 s) */
    size_t n, cap;
} samples_t;

static int samples_push(samples_t *s, uint64_t ns)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : (size_t)1 << 18;
        uint32_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static double pct_us(const uint32_t *v, size_t n, double p)
{
    if (n == 0) return 0;
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return v[rank - 1] / 1000.0;
}

/* ------------------------------------------------------------ connections ---- */

typedef struct {
    int id;
    samples_t lat;
    /* ccomet */
    MYSQL *my;
    char *sql;
    unsigned long sql_len;
    /* redis */
    redisContext *rc;
    /* nchan */
    int fd;
    char *req;
    size_t req_len;
    char rbuf[16384];
    size_t rlen; /* bytes buffered in rbuf */
    long reconnects;
} conn_t;

static int tcp_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port)};
    if (inet_pton(AF_INET, cfg.host, &a.sin_addr) != 1) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int conn_open(conn_t *c)
{
    switch (cfg.sys) {
    case SYS_CCOMET: {
        c->my = mysql_init(NULL);
        if (!c->my) {
            fail(c->id, "mysql_init failed");
            return -1;
        }
        my_bool off = 0;
        unsigned int to = IO_TIMEOUT_S;
        mysql_options(c->my, MYSQL_OPT_SSL_ENFORCE, &off); /* plain TCP, no TLS */
        mysql_options(c->my, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &off);
        mysql_options(c->my, MYSQL_OPT_CONNECT_TIMEOUT, &to);
        mysql_options(c->my, MYSQL_OPT_READ_TIMEOUT, &to);
        mysql_options(c->my, MYSQL_OPT_WRITE_TIMEOUT, &to);
        if (!mysql_real_connect(c->my, cfg.host, "root", cfg.password, NULL, (unsigned int)cfg.port,
                                NULL, 0)) {
            fail(c->id, "connect to %s:%d failed: %s", cfg.host, cfg.port, mysql_error(c->my));
            return -1;
        }
        size_t cap = 256 + PAYLOAD_LEN + strlen(cfg.channel);
        c->sql = malloc(cap);
        if (!c->sql) return -1;
        int n =
            snprintf(c->sql, cap,
                     "INSERT INTO pipes_messages (name, event, message) VALUES ('%s', 'ev', '%s')",
                     cfg.channel, PAYLOAD);
        c->sql_len = (unsigned long)n;
        return 0;
    }
    case SYS_REDIS: {
        struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
        c->rc = redisConnectWithTimeout(cfg.host, cfg.port, tv);
        if (!c->rc || c->rc->err) {
            fail(c->id, "connect to %s:%d failed: %s", cfg.host, cfg.port,
                 c->rc ? c->rc->errstr : "out of memory");
            return -1;
        }
        redisSetTimeout(c->rc, tv);
        if (cfg.password[0]) {
            redisReply *r = redisCommand(c->rc, "AUTH %s", cfg.password);
            if (!r || r->type == REDIS_REPLY_ERROR) {
                fail(c->id, "AUTH failed: %s", r ? r->str : c->rc->errstr);
                if (r) freeReplyObject(r);
                return -1;
            }
            freeReplyObject(r);
        }
        return 0;
    }
    case SYS_NCHAN: {
        c->fd = tcp_connect();
        if (c->fd < 0) {
            fail(c->id, "connect to %s:%d failed: %s", cfg.host, cfg.port, strerror(errno));
            return -1;
        }
        c->rlen = 0;
        if (!c->req) {
            size_t cap = 256 + PAYLOAD_LEN + strlen(cfg.channel);
            c->req = malloc(cap);
            if (!c->req) return -1;
            int n =
                snprintf(c->req, cap,
                         "POST /pub?id=%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         cfg.channel, (size_t)PAYLOAD_LEN, PAYLOAD);
            c->req_len = (size_t)n;
        }
        return 0;
    }
    }
    return -1;
}

static void conn_close(conn_t *c)
{
    if (c->my) mysql_close(c->my);
    if (c->rc) redisFree(c->rc);
    if (c->fd >= 0) close(c->fd);
    c->my = NULL;
    c->rc = NULL;
    c->fd = -1;
    free(c->sql);
    free(c->req);
    c->sql = c->req = NULL;
}

/* ---------------------------------------------------------- HTTP/1.1 client ---- */

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read more bytes into c->rbuf. Returns >0 bytes read, 0 on EOF, -1 on error. */
static ssize_t fill(conn_t *c)
{
    if (c->rlen == sizeof c->rbuf) {
        errno = EMSGSIZE;
        return -1;
    }
    for (;;) {
        ssize_t r = recv(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r > 0) c->rlen += (size_t)r;
        return r;
    }
}

static int header_is(const char *line, size_t len, const char *name, const char **val, size_t *vlen)
{
    size_t nl = strlen(name);
    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0) return 0;
    const char *v = line + nl + 1, *e = line + len;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *val = v;
    *vlen = (size_t)(e - v);
    return 1;
}

static int token_in_list(const char *v, size_t vlen, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= vlen; i++)
        if (strncasecmp(v + i, tok, tl) == 0 && (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
            (i + tl == vlen || v[i + tl] == ',' || v[i + tl] == ' '))
            return 1;
    return 0;
}

/*
 * One POST + full response. Returns 0 on a 2xx reply, -1 after calling fail().
 * Handles Content-Length and chunked bodies, HTTP/1.0-style close-delimited bodies,
 * and reconnects when the server says Connection: close (or is HTTP/1.0 without
 * keep-alive), so the next request goes out on a fresh connection.
 */
static int http_publish(conn_t *c)
{
    if (write_all(c->fd, c->req, c->req_len) != 0) {
        fail(c->id, "send failed: %s", strerror(errno));
        return -1;
    }
    /* Headers. */
    char *hend;
    for (;;) {
        hend = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        if (hend) break;
        ssize_t r = fill(c);
        if (r <= 0) {
            fail(c->id, "reading response headers: %s",
                 r == 0 ? "connection closed by server" : strerror(errno));
            return -1;
        }
    }
    size_t hdr_len = (size_t)(hend - c->rbuf) + 4;

    /* Status line: HTTP/1.x NNN reason */
    const char *p = c->rbuf, *eol = memmem(p, hdr_len, "\r\n", 2);
    int minor = -1, status = 0;
    if (eol - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
        p[8] != ' ' || sscanf(p + 9, "%3d", &status) != 1) {
        fail(c->id, "malformed status line: %.*s", (int)(eol - p > 80 ? 80 : eol - p), p);
        return -1;
    }
    minor = p[7] - '0';

    long long clen = -1;
    int chunked = 0, close_conn = (minor == 0), keep_alive = 0;
    for (const char *line = eol + 2; line < c->rbuf + hdr_len - 2;) {
        const char *le = memmem(line, (size_t)(c->rbuf + hdr_len - line), "\r\n", 2);
        size_t ll = (size_t)(le - line);
        const char *v;
        size_t vl;
        if (header_is(line, ll, "Content-Length", &v, &vl)) {
            char tmp[32];
            if (vl == 0 || vl >= sizeof tmp) goto bad_header;
            memcpy(tmp, v, vl);
            tmp[vl] = 0;
            char *endp;
            clen = strtoll(tmp, &endp, 10);
            if (*endp || clen < 0) goto bad_header;
        } else if (header_is(line, ll, "Transfer-Encoding", &v, &vl)) {
            chunked = token_in_list(v, vl, "chunked");
        } else if (header_is(line, ll, "Connection", &v, &vl)) {
            if (token_in_list(v, vl, "close")) close_conn = 1;
            if (token_in_list(v, vl, "keep-alive")) keep_alive = 1;
        }
        line = le + 2;
        continue;
    bad_header:
        fail(c->id, "bad header: %.*s", (int)(ll > 80 ? 80 : ll), line);
        return -1;
    }
    if (minor == 0 && keep_alive) close_conn = 0;

    /* Body: consume it from the buffer and keep anything after it. */
    memmove(c->rbuf, c->rbuf + hdr_len, c->rlen - hdr_len);
    c->rlen -= hdr_len;
    char body_snip[81] = "";
    if (chunked) {
        for (;;) {
            char *cl;
            while (!(cl = memmem(c->rbuf, c->rlen, "\r\n", 2)))
                if (fill(c) <= 0) goto body_err;
            unsigned long long sz = strtoull(c->rbuf, NULL, 16);
            size_t need = (size_t)(cl - c->rbuf) + 2 + (size_t)sz + 2;
            if (sz > sizeof c->rbuf / 2) {
                fail(c->id, "chunk too large");
                return -1;
            }
            while (c->rlen < need)
                if (fill(c) <= 0) goto body_err;
            if (sz && !body_snip[0])
                snprintf(body_snip, sizeof body_snip, "%.*s", (int)(sz > 80 ? 80 : sz), cl + 2);
            memmove(c->rbuf, c->rbuf + need, c->rlen - need);
            c->rlen -= need;
            if (sz == 0) break; /* no trailers expected; the final CRLF was consumed above */
        }
    } else if (clen >= 0) {
        size_t remain = (size_t)clen;
        int first = 1;
        while (remain) {
            if (c->rlen == 0 && fill(c) <= 0) goto body_err;
            size_t take = c->rlen < remain ? c->rlen : remain;
            if (first && take)
                snprintf(body_snip, sizeof body_snip, "%.*s", (int)(take > 80 ? 80 : take),
                         c->rbuf);
            first = 0;
            memmove(c->rbuf, c->rbuf + take, c->rlen - take);
            c->rlen -= take;
            remain -= take;
        }
    } else if (status != 204 && status != 304 && status >= 200) {
        /* Close-delimited body. */
        for (;;) {
            c->rlen = 0;
            ssize_t r = fill(c);
            if (r == 0) break;
            if (r < 0) goto body_err;
        }
        close_conn = 1;
    }

    if (status < 200 || status > 299) {
        for (char *q = body_snip; *q; q++)
            if (*q == '\r' || *q == '\n') *q = ' ';
        fail(c->id, "HTTP status %d: %s", status, body_snip);
        return -1;
    }
    if (close_conn) {
        close(c->fd);
        c->fd = -1;
        if (conn_open(c) != 0) return -1;
        c->reconnects++;
    }
    return 0;

body_err:
    fail(c->id, "reading response body: %s",
         errno && errno != EMSGSIZE ? strerror(errno) : "connection closed or oversized");
    return -1;
}

/* ----------------------------------------------------------------- publish ---- */

static int publish(conn_t *c)
{
    switch (cfg.sys) {
    case SYS_CCOMET:
        if (mysql_real_query(c->my, c->sql, c->sql_len) != 0) {
            fail(c->id, "INSERT INTO pipes_messages failed: (%u) %s", mysql_errno(c->my),
                 mysql_error(c->my));
            return -1;
        }
        if (mysql_field_count(c->my) > 0) { /* not expected for INSERT; drain it anyway */
            MYSQL_RES *res = mysql_store_result(c->my);
            if (res) mysql_free_result(res);
        }
        return 0;
    case SYS_REDIS: {
        redisReply *r =
            redisCommand(c->rc, "PUBLISH %s %b", cfg.channel, PAYLOAD, (size_t)PAYLOAD_LEN);
        if (!r) {
            fail(c->id, "PUBLISH I/O error: %s", c->rc->errstr);
            return -1;
        }
        int bad = r->type != REDIS_REPLY_INTEGER;
        if (bad)
            fail(c->id, "PUBLISH unexpected reply (type %d): %s", r->type, r->str ? r->str : "");
        freeReplyObject(r);
        return bad ? -1 : 0;
    }
    case SYS_NCHAN: return http_publish(c);
    }
    return -1;
}

static void *worker(void *arg)
{
    conn_t *c = arg;
    if (cfg.sys == SYS_CCOMET) mysql_thread_init();
    int ok = conn_open(c) == 0;
    pthread_barrier_wait(&start_barrier); /* everyone connected (or failed) */
    pthread_barrier_wait(&start_barrier); /* main has set the deadlines */
    if (ok) {
        for (;;) {
            if (atomic_load_explicit(&stop_flag, memory_order_relaxed)) break;
            uint64_t t1 = now_ns();
            if (t1 >= end_ns) break;
            if (publish(c) != 0) break;
            uint64_t t2 = now_ns();
            if (t1 >= warm_end_ns && samples_push(&c->lat, t2 - t1) != 0) {
                fail(c->id, "out of memory for samples");
                break;
            }
        }
    }
    conn_close(c);
    if (cfg.sys == SYS_CCOMET) mysql_thread_end();
    return NULL;
}

/* ------------------------------------------------------------------- main ---- */

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
    fprintf(
        stderr,
        "usage: publish_bench --system ccomet|nchan|redis --port P --conns N --seconds S\n"
        "                     [--warmup W] [--password pw] [--host 127.0.0.1] [--channel name]\n"
        "       publish_bench --free-ports K\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *sys = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--system"))
            sys = v;
        else if (!strcmp(a, "--port"))
            cfg.port = atoi(v);
        else if (!strcmp(a, "--conns"))
            cfg.conns = atoi(v);
        else if (!strcmp(a, "--seconds"))
            cfg.seconds = atof(v);
        else if (!strcmp(a, "--warmup"))
            cfg.warmup = atof(v);
        else if (!strcmp(a, "--password"))
            cfg.password = v;
        else if (!strcmp(a, "--host"))
            cfg.host = v;
        else if (!strcmp(a, "--channel"))
            cfg.channel = v;
        else if (!strcmp(a, "--free-ports"))
            return free_ports(atoi(v));
        else
            usage();
    }
    if (!sys || cfg.port <= 0 || cfg.port > 65535 || cfg.conns < 1 || cfg.conns > 1024 ||
        cfg.seconds <= 0 || cfg.warmup < 0)
        usage();
    for (const char *p = cfg.channel; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-')) {
            fprintf(stderr, "publish_bench: channel must be [A-Za-z0-9_-]+\n");
            return 2;
        }
    if (!strcmp(sys, "ccomet"))
        cfg.sys = SYS_CCOMET;
    else if (!strcmp(sys, "nchan"))
        cfg.sys = SYS_NCHAN;
    else if (!strcmp(sys, "redis"))
        cfg.sys = SYS_REDIS;
    else
        usage();
    cfg.sys_name = sys;

    if (cfg.sys == SYS_CCOMET && mysql_library_init(0, NULL, NULL) != 0) {
        fprintf(stderr, "publish_bench: mysql_library_init failed\n");
        return 1;
    }

    conn_t *conns = calloc((size_t)cfg.conns, sizeof *conns);
    pthread_t *th = calloc((size_t)cfg.conns, sizeof *th);
    if (!conns || !th) return 1;
    pthread_barrier_init(&start_barrier, NULL, (unsigned)cfg.conns + 1);
    for (int i = 0; i < cfg.conns; i++) {
        conns[i].id = i;
        conns[i].fd = -1;
        if (pthread_create(&th[i], NULL, worker, &conns[i]) != 0) {
            fprintf(stderr, "publish_bench: pthread_create failed\n");
            return 1;
        }
    }
    pthread_barrier_wait(&start_barrier);
    uint64_t t0 = now_ns();
    warm_end_ns = t0 + (uint64_t)(cfg.warmup * 1e9);
    end_ns = warm_end_ns + (uint64_t)(cfg.seconds * 1e9);
    pthread_barrier_wait(&start_barrier);
    for (int i = 0; i < cfg.conns; i++)
        pthread_join(th[i], NULL);

    size_t total = 0;
    long reconnects = 0;
    for (int i = 0; i < cfg.conns; i++) {
        total += conns[i].lat.n;
        reconnects += conns[i].reconnects;
    }
    uint32_t *all = malloc((total ? total : 1) * sizeof *all);
    if (!all) return 1;
    size_t off = 0;
    for (int i = 0; i < cfg.conns; i++) {
        if (conns[i].lat.n) memcpy(all + off, conns[i].lat.v, conns[i].lat.n * sizeof *all);
        off += conns[i].lat.n;
        free(conns[i].lat.v);
    }
    qsort(all, total, sizeof *all, cmp_u32);

    long errors = atomic_load(&error_count);
    double ops_per_sec = errors ? 0 : (double)total / cfg.seconds;
    printf(
        "{\"system\":\"%s\",\"conns\":%d,\"seconds\":%.3f,\"ops\":%zu,\"ops_per_sec\":%.1f,"
        "\"p50_us\":%.1f,\"p99_us\":%.1f,\"errors\":%ld,\"reconnects\":%ld,\"payload_bytes\":%zu",
        cfg.sys_name, cfg.conns, cfg.seconds, total, ops_per_sec, pct_us(all, total, 50),
        pct_us(all, total, 99), errors, reconnects, (size_t)PAYLOAD_LEN);
    if (errors) printf(",\"error\":\"%s\"", first_error);
    printf("}\n");
    fflush(stdout);
    if (errors) {
        fprintf(stderr, "publish_bench: measurement aborted: %s\n", first_error);
        return 1;
    }
    if (total == 0) {
        fprintf(stderr, "publish_bench: no operation completed in the measurement window\n");
        return 1;
    }
    free(all);
    free(conns);
    free(th);
    return 0;
}
