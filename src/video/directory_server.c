/* directory_server: the mod_xml_curl directory endpoint; see directory_server.h. */
#include "video/directory_server.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/ip_count.h"
#include "core/log.h"
#include "proto/http1.h"
#include "proto/sip_credential.h"
#include "proto/xml_curl.h"
#include "state/state.h"
#include "server/listener.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REQUEST (64 * 1024) /* head + body */
#define MAX_CONNS   256
#define REQUEST_MS  10000
#define MAX_ALLOW   32

struct cidr {
    unsigned char addr[16]; /* IPv4 as ::ffff:a.b.c.d */
    int bits;               /* of the 128 */
};

struct directory_server {
    uv_loop_t *loop;
    char user[128], password[128], domain[128];
    int64_t dev_index_size;
    int64_t credential_ttl; /* [main] jwt_credential_ttl: how far ahead token credentials reach */
    struct state *state;    /* users' keys (the SIP passwords) */
    uv_tcp_t listener;
    struct cidr allow[MAX_ALLOW];
    size_t n_allow;
    size_t conns;
    struct ip_count per_ip;
    int64_t max_per_ip;
    bool stopping, listener_closed;
};

struct dconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct directory_server *d;
    struct buf in;
    int closing; /* handles still to close */
    bool replied;
    bool asked; /* the request is being answered (a state read may still be out) */
    bool gone;  /* conn_close was called */
    int holds;  /* state reads out: the connection outlives its close until they end */
    char user[64], domain[128]; /* of the request being answered */
    int64_t dev, uid;           /* the user's tenant and id */
    char hash[128];
    /* the digest being checked (mod_xml_curl's sip_auth_* fields): which password it used, the
     * key or a token session's credential, decides the answer */
    struct sip_auth auth;
    char method[16], auth_user[64], realm[128], nonce[128], uri[256], response[40], qop[16], nc[16],
        cnonce[128];
    bool ip_counted; /* ip holds one of d->per_ip's counts */
    uint8_t ip[16];
    char peer[64];
};

static bool parse_cidr(const char *s, struct cidr *c)
{
    char ip[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof ip) return false;
    memcpy(ip, s, n);
    ip[n] = '\0';
    memset(c, 0, sizeof *c);
    int max;
    if (inet_pton(AF_INET, ip, c->addr + 12) == 1) {
        c->addr[10] = c->addr[11] = 0xff;
        max = 32;
    } else if (inet_pton(AF_INET6, ip, c->addr) == 1) {
        max = 128;
    } else {
        return false;
    }
    int bits = max;
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || b < 0 || b > max) return false;
        bits = (int)b;
    }
    c->bits = bits + (max == 32 ? 96 : 0);
    return true;
}

static bool cidr_match(const struct cidr *c, const unsigned char a[16])
{
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, a, (size_t)full) != 0) return false;
    if (!rest) return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (a[full] & mask);
}

static bool peer_allowed(struct directory_server *d, const struct sockaddr_storage *ss)
{
    unsigned char a[16] = {0};
    if (ss->ss_family == AF_INET) {
        a[10] = a[11] = 0xff;
        memcpy(a + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
    } else {
        return false;
    }
    for (size_t i = 0; i < d->n_allow; i++)
        if (cidr_match(&d->allow[i], a)) return true;
    return false;
}

/* ---- connections ---------------------------------------------------------------------------- */

static void server_free(struct directory_server *d)
{
    ip_count_free(&d->per_ip);
    xfree(d);
}

static void conn_free(struct dconn *c)
{
    {
        struct directory_server *d = c->d;
        if (c->ip_counted) ip_count_release(&d->per_ip, c->ip);
        buf_free(&c->in);
        xfree(c);
        if (--d->conns == 0 && d->listener_closed) server_free(d);
    }
}

static void on_closed(uv_handle_t *h)
{
    struct dconn *c = h->data;
    if (--c->closing == 0 && c->holds == 0) conn_free(c);
}

static void conn_close(struct dconn *c)
{
    if (c->gone) return;
    c->gone = true;
    c->closing = 2;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

static void on_written(uv_write_t *w, int status)
{
    struct dconn *c = w->handle->data;
    xfree(w->data);
    xfree(w);
    (void)status;
    conn_close(c);
}

static void reply(struct dconn *c, int status, const char *reason, const char *extra_headers,
                  const char *content_type, const struct buf *body)
{
    if (c->replied) return;
    c->replied = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    size_t blen = body ? buf_unread(body) : 0;
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                      "Connection: close\r\n\r\n",
                      status, reason, content_type, blen, extra_headers ? extra_headers : "");
    char *out = xmalloc((size_t)hl + blen);
    memcpy(out, head, (size_t)hl);
    if (blen) memcpy(out + hl, buf_head(body), blen);
    uv_write_t *w = xmalloc(sizeof *w);
    w->data = out;
    uv_buf_t b = uv_buf_init(out, (unsigned)((size_t)hl + blen));
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        xfree(out);
        xfree(w);
        conn_close(c);
    }
}

static void reply_text(struct dconn *c, int status, const char *reason, const char *extra,
                       const char *text)
{
    struct buf b;
    buf_init(&b);
    buf_append(&b, text, strlen(text));
    reply(c, status, reason, extra, "text/plain", &b);
    buf_free(&b);
}

static bool credentials_ok(struct directory_server *d, const struct http1_request *req)
{
    size_t len;
    const char *h = http1_header(req, "Authorization", &len);
    if (!h || len < 7 || strncasecmp(h, "Basic ", 6) != 0) return false;
    const char *b64 = h + 6;
    size_t bl = len - 6;
    while (bl && *b64 == ' ') {
        b64++;
        bl--;
    }
    if (bl == 0 || bl > 512 || bl % 4) return false;
    unsigned char dec[400];
    int n = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)bl);
    if (n < 0) return false;
    if (bl >= 1 && b64[bl - 1] == '=') n--;
    if (bl >= 2 && b64[bl - 2] == '=') n--;
    char expect[512];
    int el = snprintf(expect, sizeof expect, "%s:%s", d->user, d->password);
    if (el < 0 || (size_t)el >= sizeof expect) return false;
    return n == el && CRYPTO_memcmp(dec, expect, (size_t)el) == 0;
}

static int take_hash(void *ctx, const struct value *cols, size_t n)
{
    struct dconn *c = ctx;
    if (n >= 2 && cols[1].kind == VALUE_STR && cols[1].len < sizeof c->hash)
        snprintf(c->hash, sizeof c->hash, "%.*s", (int)cols[1].len, cols[1].s);
    return 1;
}

static bool path_ok(const struct http1_request *req)
{
    static const char *const paths[] = {"/directory", "/comet-server-com/directory"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        if (req->path_len == strlen(paths[i]) && memcmp(req->path, paths[i], req->path_len) == 0)
            return true;
    return false;
}

/* The user's key arrived (or not): the answer. */
static void hash_read(void *ctx, int64_t result, const char *err)
{
    struct dconn *c = ctx;
    c->holds--;
    if (c->gone) { /* the connection closed (or is closing) meanwhile */
        if (c->closing == 0 && c->holds == 0) conn_free(c);
        return;
    }
    (void)err;
    if (result < 0) {
        reply_text(c, 500, "Internal Server Error", NULL, "storage error\n");
        return;
    }
    bool found = c->hash[0] != '\0';
    struct buf body;
    buf_init(&body);
    char password[sizeof c->hash];
    int64_t until = -1;
    if (found && c->auth.present)
        until = sip_credential_match(&c->auth, c->method, c->hash, strlen(c->hash), c->dev, c->uid,
                                     (int64_t)time(NULL), c->d->credential_ttl, password,
                                     sizeof password);
    if (found && until > 0) /* a token session's credential: never the key, and only until */
        xml_curl_put_credential(&body, c->domain, c->user, password, until);
    else if (found)
        xml_curl_put_user(&body, c->domain, c->user, c->hash);
    else
        xml_curl_put_not_found(&body);
    LOG(LOG_DEBUG, "directory", "msg=\"lookup\" peer=%s user=%s found=%d credential=%d", c->peer,
        c->user, found, until > 0);
    reply(c, 200, "OK", NULL, "text/xml", &body);
    buf_free(&body);
}

/* The sip_auth_* fields of the form, as a digest to check (c->auth.present when it is one). */
static void read_digest(struct dconn *c, const char *form, size_t form_len)
{
    struct sip_auth *a = &c->auth;
    memset(a, 0, sizeof *a);
    /* qop, nc and cnonce are absent from an RFC 2069 digest; the method is always needed */
    struct {
        const char *name;
        char *out;
        size_t cap;
        const char **field;
        bool required;
    } f[] = {
        {"sip_auth_username", c->auth_user, sizeof c->auth_user, &a->username, true},
        {"sip_auth_realm", c->realm, sizeof c->realm, &a->realm, true},
        {"sip_auth_nonce", c->nonce, sizeof c->nonce, &a->nonce, true},
        {"sip_auth_uri", c->uri, sizeof c->uri, &a->uri, true},
        {"sip_auth_response", c->response, sizeof c->response, &a->response, true},
        {"sip_auth_qop", c->qop, sizeof c->qop, &a->qop, false},
        {"sip_auth_nc", c->nc, sizeof c->nc, &a->nc, false},
        {"sip_auth_cnonce", c->cnonce, sizeof c->cnonce, &a->cnonce, false},
        {"sip_auth_method", c->method, sizeof c->method, NULL, true},
    };
    bool all = true;
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        bool got = xml_curl_field(form, form_len, f[i].name, f[i].out, f[i].cap) && f[i].out[0];
        if (f[i].field) *f[i].field = got ? f[i].out : NULL;
        if (!got && f[i].required) all = false;
    }
    a->present = all;
}

static void answer(struct dconn *c, const char *form, size_t form_len)
{
    struct directory_server *d = c->d;
    char section[64] = "";
    c->asked = true;
    xml_curl_field(form, form_len, "section", section, sizeof section);
    if (!xml_curl_field(form, form_len, "user", c->user, sizeof c->user))
        xml_curl_field(form, form_len, "sip_auth_username", c->user, sizeof c->user);
    if (!xml_curl_field(form, form_len, "domain", c->domain, sizeof c->domain) || !c->domain[0])
        snprintf(c->domain, sizeof c->domain, "%s", d->domain);
    read_digest(c, form, form_len);
    c->hash[0] = '\0';
    c->holds++;
    if (strcmp(section, "directory") == 0 && xml_curl_user_split(c->user, &c->dev, &c->uid) &&
        c->dev < d->dev_index_size) {
        struct state_cb cb = {take_hash, hash_read, c};
        d->state->ops->auth_get(d->state, c->dev, c->uid, &cb); /* may answer before it returns */
        return;
    }
    hash_read(c, 0, NULL); /* not a directory lookup of one of ours: "not found" */
}

static void handle(struct dconn *c)
{
    struct directory_server *d = c->d;
    struct http1_request req;
    const char *err = NULL;
    if (c->asked || c->replied) return; /* one request per connection */
    int rc = http1_parse_request(buf_head(&c->in), buf_unread(&c->in), NULL, &req, &err);
    if (rc == HTTP1_AGAIN) {
        if (buf_unread(&c->in) >= MAX_REQUEST)
            reply_text(c, 431, "Request Header Fields Too Large", NULL, "too large\n");
        return;
    }
    if (rc != HTTP1_OK) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s\n", err ? err : "bad request");
        reply_text(c, req.status ? req.status : 400, "Bad Request", NULL, msg);
        return;
    }
    uint64_t clen = 0;
    if (req.chunked || http1_content_length(&req, &clen) != HTTP1_OK) {
        reply_text(c, 400, "Bad Request", NULL, "a body needs a Content-Length\n");
        return;
    }
    if (req.head_len + clen > MAX_REQUEST) {
        reply_text(c, 413, "Payload Too Large", NULL, "request too large\n");
        return;
    }
    if (buf_unread(&c->in) < req.head_len + clen) return; /* the body is still coming */
    if (!credentials_ok(d, &req)) {
        LOG_RATELIMITED(LOG_WARN, "directory",
                        "msg=\"refused: wrong or missing credentials\" peer=%s", c->peer);
        reply_text(c, 401, "Unauthorized", "WWW-Authenticate: Basic realm=\"ccomet directory\"\r\n",
                   "credentials required\n");
        return;
    }
    bool get = req.method_len == 3 && memcmp(req.method, "GET", 3) == 0;
    bool post = req.method_len == 4 && memcmp(req.method, "POST", 4) == 0;
    if (!get && !post) {
        reply_text(c, 405, "Method Not Allowed", "Allow: GET, POST\r\n", "GET or POST\n");
        return;
    }
    if (!path_ok(&req)) {
        reply_text(c, 404, "Not Found", NULL, "the directory is at /directory\n");
        return;
    }
    if (post)
        answer(c, (const char *)buf_head(&c->in) + req.head_len, (size_t)clen);
    else
        answer(c, req.query ? req.query : "", req.query ? req.query_len : 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct dconn *c = h->data;
    buf_reserve(&c->in, 4096);
    b->base = (char *)c->in.data + c->in.len;
    b->len = c->in.cap - c->in.len;
    (void)suggested;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct dconn *c = s->data;
    (void)b;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->in.len += (size_t)n;
    handle(c);
}

static void on_timeout(uv_timer_t *t)
{
    struct dconn *c = t->data;
    if (!c->replied) reply_text(c, 408, "Request Timeout", NULL, "request timeout\n");
}

static void on_connection(uv_stream_t *server, int status)
{
    struct directory_server *d = server->data;
    if (status != 0) return;
    struct dconn *c = xcalloc(1, sizeof *c);
    c->d = d;
    buf_init(&c->in);
    uv_tcp_init(d->loop, &c->tcp);
    uv_timer_init(d->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    d->conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
    if (!peer_allowed(d, &ss)) {
        LOG_RATELIMITED(LOG_WARN, "directory", "msg=\"refused: source not allowed\" peer=%s",
                        c->peer);
        reply_text(c, 403, "Forbidden", NULL, "source address not allowed ([freeswitch] allow)\n");
        return;
    }
    ip_count_key((const struct sockaddr *)&ss, c->ip);
    if (!ip_count_take(&d->per_ip, c->ip, d->max_per_ip)) {
        /* one address's open requests are capped, so a slow sender cannot take every slot */
        LOG_RATELIMITED(LOG_WARN, "directory",
                        "msg=\"refused: [freeswitch] max_connections_per_ip\" peer=%s limit=%lld",
                        c->peer, (long long)d->max_per_ip);
        reply_text(c, 503, "Service Unavailable", "Retry-After: 1\r\n",
                   "too many connections from this address\n");
        return;
    }
    c->ip_counted = true;
    if (d->conns > MAX_CONNS) {
        reply_text(c, 503, "Service Unavailable", NULL, "too many connections\n");
        return;
    }
    uv_timer_start(&c->timer, on_timeout, REQUEST_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

struct directory_server *directory_server_start(uv_loop_t *loop, const struct config *cfg,
                                                struct state *state, char *err, size_t errlen)
{
    err[0] = '\0';
    if (!cfg->freeswitch_user[0] || !cfg->freeswitch_password[0]) {
        if (cfg->sip_freeswitch.n)
            LOG(LOG_WARN, "directory",
                "msg=\"the directory endpoint is off: set [freeswitch] user and password (media "
                "nodes send them) to let browsers register\"");
        return NULL;
    }
    if (strchr(cfg->freeswitch_user, ':')) {
        snprintf(err, errlen, "[freeswitch] user must not contain ':'");
        return NULL;
    }
    struct directory_server *d = xcalloc(1, sizeof *d);
    d->loop = loop;
    ip_count_init(&d->per_ip);
    d->max_per_ip = cfg->freeswitch_max_connections_per_ip;
    if (strlen(cfg->freeswitch_user) >= sizeof d->user ||
        strlen(cfg->freeswitch_password) >= sizeof d->password) {
        snprintf(err, errlen, "[freeswitch] user and password must be shorter than 128 bytes");
        server_free(d);
        return NULL;
    }
    snprintf(d->user, sizeof d->user, "%s", cfg->freeswitch_user);
    snprintf(d->password, sizeof d->password, "%s", cfg->freeswitch_password);
    snprintf(d->domain, sizeof d->domain, "%s", cfg->sip_domain);
    d->dev_index_size = cfg->dev_index_size;
    d->credential_ttl = cfg->jwt_credential_ttl;
    d->state = state;
    char list[1024];
    snprintf(list, sizeof list, "%s", cfg->freeswitch_allow);
    for (char *save = NULL, *tok = strtok_r(list, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        if (d->n_allow == MAX_ALLOW || !parse_cidr(tok, &d->allow[d->n_allow])) {
            snprintf(err, errlen, "[freeswitch] allow: '%s' is not an address or CIDR (at most %d)",
                     tok, MAX_ALLOW);
            server_free(d);
            return NULL;
        }
        d->n_allow++;
    }
    if (listener_open(loop, &d->listener, "freeswitch", cfg->freeswitch_ip, cfg->freeswitch_port,
                      128, on_connection, d, err, errlen) != 0) {
        server_free(d);
        return NULL;
    }
    LOG(LOG_INFO, "directory", "msg=\"listening\" ip=%s port=%d", cfg->freeswitch_ip,
        cfg->freeswitch_port);
    return d;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct directory_server *d = h->data;
    d->listener_closed = true;
    if (d->conns == 0) server_free(d); /* else the last connection frees it */
}

void directory_server_stop(struct directory_server *d)
{
    if (!d) return;
    uv_close((uv_handle_t *)&d->listener, on_listener_closed);
}
