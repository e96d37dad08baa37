/* sip_server: SIP over WebSocket, the UAS and the registrar; see sip_server.h.
 *
 * Shape: a connection (struct sip_conn) owns its server transactions (the last response per
 * branch, for retransmissions, kept 32 s), its registrations, its calls and its REGISTERs waiting
 * on the directory. The transport is a send function: a libsoup WebSocket in production, a
 * capture in the unit tests. A call (struct call) is an INVITE server transaction until its final
 * response, then a dialog with a conference member.
 *
 * Reentrancy: conf_join may call its done callback before it returns (no media engine, a full
 * node), and conf_leave calls it (487) for a member still waiting for its answer. So a call being
 * joined records the callback's result (in_join) and acts on it when conf_join returns, and a
 * call being ended (ending) ignores it.
 *
 * Bounds: MAX_TXNS server transactions, MAX_BINDINGS registrations, MAX_CALLS calls and
 * MAX_PENDING directory lookups per connection; a SIP message of at most [sip] max_message bytes
 * (twice that is read to answer 513; a longer WebSocket message closes the socket, 1009). */
#include "media/sip_server.h"
#include "core/alloc.h"
#include "core/auth_failures.h"
#include "core/buf.h"
#include "core/ip_count.h"
#include "core/log.h"
#include "media/directory.h"
#include "proto/call_token.h"
#include "proto/sip_msg.h"
#include "proto/xml_curl.h"

#include <ctype.h>
#include <libsoup/soup.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_TXNS          64
#define MAX_BINDINGS      16
#define MAX_CALLS         8
#define MAX_PENDING       16
#define TXN_LINGER_US     (32 * G_USEC_PER_SEC) /* 64*T1: Timer J / H */
#define ACK_TIMEOUT_S     32
#define BYE_TIMEOUT_S     8
#define NONCE_MAX_AGE_S   300
#define MAX_USED_NONCES   65536 /* nonces remembered with their highest nc */
#define WS_KEEPALIVE_S    30
#define DEFAULT_EXPIRES   3600 /* RFC 3261 §10.2.1.1 */
#define ALLOW             "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER"
#define SUPPORTED         "path"
#define MAX_EXTRA_HEADERS 16

enum call_state {
    CALL_AUTH,      /* waiting for the directory */
    CALL_JOINING,   /* waiting for the conference's answer */
    CALL_ANSWERED,  /* 200 sent, waiting for ACK */
    CALL_CONFIRMED, /* ACKed */
    CALL_BYE_SENT,  /* we hung up, waiting for the answer to our BYE */
};

struct call;

#define LISTEN_BACKLOG 4096

struct txn {
    struct txn *next;
    char *branch;
    char method[16];
    char *response; /* the last response sent (NULL: none yet) */
    size_t response_len;
    bool final;
    gint64 expires_us; /* monotonic; set with the final response */
    struct call *call; /* INVITE transactions until their final response */
};

struct binding {
    struct binding *next;
    struct sip_conn *conn;
    char *user, *contact, *call_id;
    int expires;
    guint timer;
};

/* A REGISTER waiting for the directory. */
struct pending_reg {
    struct pending_reg *next;
    struct sip_conn *conn;
    struct sip_msg *req;
    struct txn *txn;
    struct directory_wait *wait;
    bool retried;
};

struct call {
    struct call *next;
    struct sip_conn *conn;
    uint64_t id;
    enum call_state state;
    struct sip_msg *invite; /* until the final response */
    struct txn *txn;        /* the INVITE's, until the final response */
    struct directory_wait *wait;
    bool retried;
    char local_tag[SIP_TAG_SIZE];
    struct sip_dialog dialog; /* from the 200 on */
    char user[64];            /* the authenticated user */
    char room[128];
    struct conf_member *member;
    char *offer_sdp;  /* the last remote offer */
    char *answer_sdp; /* the answer the conference gave */
    char *local_sdp;  /* the answer last sent (directions adjusted) */
    unsigned sdp_version;
    guint timer; /* ACK or BYE timeout */
    char bye_branch[SIP_BRANCH_SIZE];
    /* conf_join's callback while conf_join runs */
    bool in_join, joined;
    struct conf_member *join_member;
    char *join_sdp;
    int join_status;
    char join_reason[96];
    bool ending;
};

struct sip_conn {
    struct sip_server *srv;
    struct sip_conn *next, *prev;
    uint64_t id;
    SoupWebsocketConnection *ws; /* NULL for attached test transports */
    sip_send_fn send;
    void *send_ctx;
    char ip[64];
    unsigned port;
    bool tls;
    uint16_t local_port;
    struct txn *txns;
    size_t n_txns;
    struct binding *bindings;
    size_t n_bindings;
    struct call *calls;
    size_t n_calls;
    struct pending_reg *pending;
    size_t n_pending;
    bool closing;
};

/* One accepted TCP connection, from accept until libsoup lets go of its stream (weak reference):
 * it holds one count of srv->per_ip for that long. Until the WebSocket upgrade its deadline
 * ([sip] handshake_timeout) runs: libsoup has no handshake deadline of its own, so a client that
 * sends half a request (or half a TLS handshake) would keep its socket for ever. */
struct sip_accept {
    struct sip_server *srv;
    GObject *stream; /* what libsoup reads (TCP, or TLS on wss); not a reference */
    GSocket *socket; /* the TCP socket under it; not a reference */
    char ip[48];
    char key[64]; /* "ip port": the key of srv->accepting */
    guint deadline;
};

struct sip_server {
    const struct media_config *cfg;
    struct conf_registry *reg;
    struct directory *dir;
    SoupServer *soup;
    uint16_t ws_port, wss_port;
    uint8_t secret[16];
    struct sip_conn *conns;
    uint64_t next_conn_id, next_call_id;
    GHashTable *member_calls; /* struct conf_member * -> struct call * */
    /* Digest replay (security audit M2): every nonce a valid digest used, with the highest nc
     * seen (qop=auth) or 0 (no qop: single use), until it is too old to be accepted anyway.
     * When full, nonce_floor moves to now: every nonce issued before is stale, the table is
     * emptied, and clients re-authenticate without asking the user (stale=true). */
    GHashTable *used_nonces; /* char *nonce -> struct used_nonce * */
    /* audit M6: failed digests (unknown user, wrong password) per address in the current
     * window; past [sip] max_auth_failures the address gets 503 before any directory lookup */
    struct auth_failures failures; /* src/core/auth_failures, by the address's 16-byte form */
    GSocketService *service;       /* our own accept loop in front of libsoup (deadline, caps) */
    GTlsCertificate *tls_cert;     /* wss: NULL when no [sip] ssl_cert */
    GHashTable *accepting; /* "ip port" -> struct sip_accept * (every live TCP connection) */
    GHashTable *per_ip;    /* address text -> connections counted */
    unsigned n_counted;    /* sum of per_ip */
    uint64_t nonce_floor;  /* nonces issued at or before this second are stale */
};

struct used_nonce {
    uint64_t issued;
    uint32_t nc;
};

static void call_end(struct call *call);
static void send_bye(struct call *call);

/* ---- output --------------------------------------------------------------------------------- */

static void conn_send(struct sip_conn *c, const char *data, size_t len)
{
    if (c->closing) return;
    if (c->send) {
        c->send(c->send_ctx, data, len);
        return;
    }
    if (!c->ws || soup_websocket_connection_get_state(c->ws) != SOUP_WEBSOCKET_STATE_OPEN) return;
    /* text frames must be UTF-8 (libsoup checks); RFC 7118 allows binary frames otherwise */
    GBytes *b = g_bytes_new(data, len);
    soup_websocket_connection_send_message(c->ws,
                                           g_utf8_validate(data, (gssize)len, NULL)
                                               ? SOUP_WEBSOCKET_DATA_TEXT
                                               : SOUP_WEBSOCKET_DATA_BINARY,
                                           b);
    g_bytes_unref(b);
}

static gint64 now_s(void)
{
    return g_get_real_time() / G_USEC_PER_SEC;
}

/* Builds and sends a response to req with the headers FreeSWITCH puts on every answer
 * (User-Agent, Allow, Supported) after the given ones; remembers it in t (nullable). */
static void respond(struct sip_conn *c, const struct sip_msg *req, struct txn *t, int code,
                    const char *reason, const char *to_tag, const struct sip_header *extra,
                    size_t n_extra, const char *ctype, const char *body)
{
    struct sip_header h[MAX_EXTRA_HEADERS];
    size_t n = 0;
    for (size_t i = 0; i < n_extra && n < MAX_EXTRA_HEADERS - 3; i++)
        h[n++] = extra[i];
    h[n++] = (struct sip_header){"User-Agent", c->srv->cfg->sip_user_agent};
    h[n++] = (struct sip_header){"Allow", ALLOW};
    h[n++] = (struct sip_header){"Supported", SUPPORTED};
    if (!*c->srv->cfg->sip_user_agent) { /* an empty value is not a header */
        h[n - 3] = h[n - 2];
        h[n - 2] = h[n - 1];
        n--;
    }
    struct buf out;
    buf_init(&out);
    if (sip_build_response(req, code, reason, to_tag, h, n, ctype, body, body ? strlen(body) : 0,
                           &out) != SIP_OK) {
        buf_free(&out);
        out = (struct buf){0};
        buf_init(&out);
        /* a reason or header we could not write: the bare status */
        if (sip_build_response(req, code, NULL, to_tag, NULL, 0, NULL, NULL, 0, &out) != SIP_OK) {
            buf_free(&out);
            LOG(LOG_WARN, "sip", "conn=%llu msg=\"cannot build a response\" status=%d",
                (unsigned long long)c->id, code);
            return;
        }
    }
    LOG(LOG_DEBUG, "sip", "conn=%llu msg=\"response\" status=%d method=%s call_id=%s",
        (unsigned long long)c->id, code, req->method, req->call_id);
    conn_send(c, (const char *)buf_head(&out), buf_unread(&out));
    if (t) {
        g_free(t->response);
        t->response = g_strndup((const char *)buf_head(&out), buf_unread(&out));
        t->response_len = buf_unread(&out);
        if (code >= 200) {
            t->final = true;
            t->expires_us = g_get_monotonic_time() + TXN_LINGER_US;
            t->call = NULL;
        }
    }
    buf_free(&out);
}

static void challenge(struct sip_conn *c, const struct sip_msg *req, struct txn *t, bool proxy,
                      bool stale)
{
    char nonce[SIP_NONCE_LEN + 1], value[512];
    if (sip_nonce_new(nonce, (uint64_t)now_s(), c->srv->secret) != SIP_OK ||
        !sip_digest_challenge(value, sizeof value, c->srv->cfg->sip_domain, nonce, stale)) {
        respond(c, req, t, 500, NULL, NULL, NULL, 0, NULL, NULL);
        return;
    }
    struct sip_header h = {proxy ? "Proxy-Authenticate" : "WWW-Authenticate", value};
    respond(c, req, t, proxy ? 407 : 401, NULL, NULL, &h, 1, NULL, NULL);
}

/* ---- transactions --------------------------------------------------------------------------- */

static void txn_free(struct txn *t)
{
    g_free(t->branch);
    g_free(t->response);
    g_free(t);
}

static void txn_prune(struct sip_conn *c)
{
    gint64 now = g_get_monotonic_time();
    for (struct txn **pp = &c->txns; *pp;) {
        struct txn *t = *pp;
        if (t->final && now >= t->expires_us) {
            *pp = t->next;
            txn_free(t);
            c->n_txns--;
        } else {
            pp = &t->next;
        }
    }
}

static struct txn *txn_find(struct sip_conn *c, const char *branch, const char *method)
{
    for (struct txn *t = c->txns; t; t = t->next)
        if (strcmp(t->branch, branch) == 0 && strcmp(t->method, method) == 0) return t;
    return NULL;
}

/* NULL when the connection has too many transactions in progress. */
static struct txn *txn_new(struct sip_conn *c, const char *branch, const char *method)
{
    txn_prune(c);
    if (c->n_txns >= MAX_TXNS) { /* forget the oldest finished one */
        struct txn **oldest = NULL;
        for (struct txn **pp = &c->txns; *pp; pp = &(*pp)->next)
            if ((*pp)->final) oldest = pp;
        if (!oldest) return NULL;
        struct txn *t = *oldest;
        *oldest = t->next;
        txn_free(t);
        c->n_txns--;
    }
    struct txn *t = g_new0(struct txn, 1);
    t->branch = g_strdup(branch);
    g_strlcpy(t->method, method, sizeof t->method);
    t->next = c->txns; /* newest first */
    c->txns = t;
    c->n_txns++;
    return t;
}

/* ---- digest --------------------------------------------------------------------------------- */

/* Seconds ip stays refused (0: not refused). */
static uint32_t failures_block(struct sip_server *srv, const char *ip)
{
    uint8_t key[16];
    ip_count_key_text(ip, key);
    return auth_failures_blocked(&srv->failures, key, (uint32_t)now_s(),
                                 srv->cfg->sip_max_auth_failures,
                                 srv->cfg->sip_auth_failure_window);
}

static void auth_failed(struct sip_server *srv, const char *ip)
{
    uint8_t key[16];
    ip_count_key_text(ip, key);
    auth_failures_add(&srv->failures, key, (uint32_t)now_s(), srv->cfg->sip_auth_failure_window);
    if (failures_block(srv, ip))
        LOG_RATELIMITED(LOG_WARN, "sip",
                        "msg=\"too many failed logins: the address is refused for the rest of "
                        "the window\" peer=%s max=%" G_GINT64_FORMAT " window_s=%" G_GINT64_FORMAT,
                        ip, srv->cfg->sip_max_auth_failures, srv->cfg->sip_auth_failure_window);
}

/* Checks what can be checked before the directory: the address's recent failures, the realm and
 * the nonce. Answers (challenge, or 503) and returns false when the request cannot go on. */
static bool auth_precheck(struct sip_conn *c, const struct sip_msg *m, struct txn *t, bool proxy)
{
    const struct sip_auth *a = &m->auth;
    uint32_t wait = failures_block(c->srv, c->ip);
    if (wait) {
        char after[24];
        g_snprintf(after, sizeof after, "%u", wait);
        struct sip_header h = {"Retry-After", after};
        respond(c, m, t, 503, "Too many failed logins from this address", NULL, &h, 1, NULL, NULL);
        return false;
    }
    if (!a->present || !a->username || !*a->username || !a->realm ||
        strcmp(a->realm, c->srv->cfg->sip_domain) != 0 || !a->nonce) {
        challenge(c, m, t, proxy, false);
        return false;
    }
    uint64_t issued = 0;
    switch (sip_nonce_check(a->nonce, (uint64_t)now_s(), NONCE_MAX_AGE_S, c->srv->secret)) {
    case SIP_NONCE_VALID:
        if (sip_nonce_issued(a->nonce, &issued) && issued <= c->srv->nonce_floor) {
            challenge(c, m, t, proxy, true);
            return false;
        }
        return true;
    case SIP_NONCE_STALE: challenge(c, m, t, proxy, true); return false;
    default: challenge(c, m, t, proxy, false); return false;
    }
}

enum verdict { V_OK, V_RETRY, V_ANSWERED };

/* Records a valid digest's use of its nonce: false when that nonce was used before with this
 * nc or a higher one (qop=auth), or at all (no qop): a replay. */
static bool nonce_first_use(struct sip_server *srv, const struct sip_auth *a)
{
    uint32_t nc = 0;
    bool counted = a->qop != NULL;
    if (counted && !sip_digest_nc(a, &nc)) return false;
    struct used_nonce *u = g_hash_table_lookup(srv->used_nonces, a->nonce);
    if (u) {
        if (!counted || nc <= u->nc) return false;
        u->nc = nc;
        return true;
    }
    uint64_t issued = 0;
    if (!sip_nonce_issued(a->nonce, &issued)) return false;
    uint64_t now = (uint64_t)now_s();
    if (g_hash_table_size(srv->used_nonces) >= MAX_USED_NONCES) {
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, srv->used_nonces);
        while (g_hash_table_iter_next(&it, &k, &v)) {
            const struct used_nonce *o = v;
            if (o->issued + NONCE_MAX_AGE_S < now) g_hash_table_iter_remove(&it);
        }
        if (g_hash_table_size(srv->used_nonces) >= MAX_USED_NONCES) {
            LOG_RATELIMITED(LOG_WARN, "sip",
                            "msg=\"used-nonce table full: every older nonce is now stale\" "
                            "size=%u",
                            g_hash_table_size(srv->used_nonces));
            srv->nonce_floor = now;
            g_hash_table_remove_all(srv->used_nonces);
            if (issued <= srv->nonce_floor) return false;
        }
    }
    u = g_new(struct used_nonce, 1);
    u->issued = issued;
    u->nc = nc;
    g_hash_table_insert(srv->used_nonces, g_strdup(a->nonce), u);
    return true;
}

/* The directory answered for request m: V_OK when the digest is right, V_RETRY when a cached
 * password failed (fetch it again), V_ANSWERED when a final response was sent. */
static enum verdict auth_verdict(struct sip_conn *c, const struct sip_msg *m, struct txn *t,
                                 bool proxy, const struct directory_result *r, bool retried)
{
    /* not yet authenticated: the name is the sender's text, quoted so that it cannot forge
     * logfmt fields (security audit L6) */
    char user[80];
    log_quote(user, sizeof user, m->auth.username, (unsigned)strlen(m->auth.username));
    if (r->status == DIRECTORY_TEMPFAIL) {
        struct sip_header h = {"Retry-After", "5"};
        respond(c, m, t, 503, NULL, NULL, &h, 1, NULL, NULL);
        return V_ANSWERED;
    }
    if (r->status == DIRECTORY_NOT_FOUND || (!r->password && !r->a1_hash)) {
        LOG_RATELIMITED(LOG_INFO, "sip", "conn=%llu user=%s msg=\"unknown user\" why=\"%s\"",
                        (unsigned long long)c->id, user, r->why ? r->why : "");
        auth_failed(c->srv, c->ip);
        respond(c, m, t, 403, NULL, NULL, NULL, 0, NULL, NULL);
        return V_ANSWERED;
    }
    if (!sip_digest_uri_matches(m)) {
        LOG_RATELIMITED(LOG_INFO, "sip",
                        "conn=%llu user=%s msg=\"digest uri is not the Request-URI\"",
                        (unsigned long long)c->id, user);
        respond(c, m, t, 400, "Bad Authorization: digest uri differs from the Request-URI", NULL,
                NULL, 0, NULL, NULL);
        return V_ANSWERED;
    }
    switch (sip_digest_verify(&m->auth, m->method, r->password, r->a1_hash)) {
    case SIP_DIGEST_VALID:
        if (!nonce_first_use(c->srv, &m->auth)) { /* a replay: a fresh nonce, silently retried */
            char nc[24];
            log_quote(nc, sizeof nc, m->auth.nc ? m->auth.nc : "-",
                      (unsigned)strlen(m->auth.nc ? m->auth.nc : "-"));
            LOG_RATELIMITED(LOG_INFO, "sip",
                            "conn=%llu user=%s msg=\"nonce reused\" method=%s nc=%s",
                            (unsigned long long)c->id, user, m->method, nc);
            challenge(c, m, t, proxy, true);
            return V_ANSWERED;
        }
        return V_OK;
    case SIP_DIGEST_WRONG:
        if (r->source == DIRECTORY_FROM_CACHE && !retried) return V_RETRY;
        LOG_RATELIMITED(LOG_INFO, "sip", "conn=%llu user=%s msg=\"wrong password\" method=%s",
                        (unsigned long long)c->id, user, m->method);
        auth_failed(c->srv, c->ip);
        respond(c, m, t, 403, NULL, NULL, NULL, 0, NULL, NULL);
        return V_ANSWERED;
    case SIP_DIGEST_MALFORMED:
        respond(c, m, t, 400, "Bad Authorization", NULL, NULL, 0, NULL, NULL);
        return V_ANSWERED;
    default: challenge(c, m, t, proxy, false); return V_ANSWERED;
    }
}

static struct directory_wait *lookup(struct sip_conn *c, const struct sip_msg *m, directory_fn cb,
                                     void *ud)
{
    struct directory_query q = {
        m->auth.username, c->srv->cfg->sip_domain, &m->auth, m->method, m, c->ip, c->port};
    return directory_lookup(c->srv->dir, &q, cb, ud);
}

/* ---- registrar ------------------------------------------------------------------------------ */

static void binding_free(struct binding *b)
{
    if (b->timer) g_source_remove(b->timer);
    g_free(b->user);
    g_free(b->contact);
    g_free(b->call_id);
    g_free(b);
}

static void binding_remove(struct sip_conn *c, struct binding *b)
{
    for (struct binding **pp = &c->bindings; *pp; pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            c->n_bindings--;
            break;
        }
    }
    binding_free(b);
}

static gboolean on_binding_expired(gpointer data)
{
    struct binding *b = data;
    b->timer = 0;
    LOG(LOG_INFO, "sip", "conn=%llu user=%s msg=\"registration expired\"",
        (unsigned long long)b->conn->id, b->user);
    binding_remove(b->conn, b);
    return G_SOURCE_REMOVE;
}

static struct binding *binding_find(struct sip_conn *c, const char *user, const char *contact)
{
    for (struct binding *b = c->bindings; b; b = b->next)
        if (strcmp(b->user, user) == 0 && strcmp(b->contact, contact) == 0) return b;
    return NULL;
}

static void register_accept(struct sip_conn *c, const struct sip_msg *m, struct txn *t)
{
    const struct media_config *cfg = c->srv->cfg;
    const char *user = m->auth.username;
    for (size_t i = 0; i < m->n_contacts; i++) {
        const struct sip_contact *ct = &m->contacts[i];
        long e = ct->expires >= 0         ? ct->expires
                 : m->expires_header >= 0 ? m->expires_header
                                          : DEFAULT_EXPIRES;
        if (strcmp(ct->uri, "*") == 0) { /* "Contact: *" with Expires: 0 */
            for (struct binding *b = c->bindings, *next; b; b = next) {
                next = b->next;
                if (strcmp(b->user, user) == 0) binding_remove(c, b);
            }
            continue;
        }
        struct binding *b = binding_find(c, user, ct->uri);
        if (e == 0) {
            if (b) binding_remove(c, b);
            LOG(LOG_INFO, "sip", "conn=%llu user=%s msg=\"unregistered\" contact=\"%s\"",
                (unsigned long long)c->id, user, ct->uri);
            continue;
        }
        if (e < cfg->sip_min_expires) e = (long)cfg->sip_min_expires;
        if (e > cfg->sip_max_expires) e = (long)cfg->sip_max_expires;
        if (!b) {
            if (c->n_bindings >= MAX_BINDINGS) {
                respond(c, m, t, 503, "Too Many Registrations", NULL, NULL, 0, NULL, NULL);
                return;
            }
            b = g_new0(struct binding, 1);
            b->conn = c;
            b->user = g_strdup(user);
            b->contact = g_strdup(ct->uri);
            b->next = c->bindings;
            c->bindings = b;
            c->n_bindings++;
        }
        g_free(b->call_id);
        b->call_id = g_strdup(m->call_id);
        b->expires = (int)e;
        if (b->timer) g_source_remove(b->timer);
        b->timer = g_timeout_add_seconds((guint)e, on_binding_expired, b);
        LOG(LOG_INFO, "sip", "conn=%llu user=%s msg=\"registered\" contact=\"%s\" expires=%ld",
            (unsigned long long)c->id, user, ct->uri, e);
    }
    /* 200 lists the user's current bindings (on this connection: bindings belong to it) */
    struct sip_header h[MAX_BINDINGS + 1];
    char *values[MAX_BINDINGS];
    size_t n = 0;
    for (struct binding *b = c->bindings; b && n < MAX_BINDINGS; b = b->next) {
        if (strcmp(b->user, user) != 0) continue;
        values[n] = g_strdup_printf("<%s>;expires=%d", b->contact, b->expires);
        h[n] = (struct sip_header){"Contact", values[n]};
        n++;
    }
    char date[64];
    time_t tt = time(NULL);
    struct tm gt;
    gmtime_r(&tt, &gt);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &gt);
    h[n] = (struct sip_header){"Date", date};
    respond(c, m, t, 200, NULL, NULL, h, n + 1, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        g_free(values[i]);
}

static void pending_free(struct sip_conn *c, struct pending_reg *p)
{
    for (struct pending_reg **pp = &c->pending; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            c->n_pending--;
            break;
        }
    }
    sip_msg_free(p->req);
    g_free(p);
}

static void on_register_lookup(const struct directory_result *r, void *ud)
{
    struct pending_reg *p = ud;
    struct sip_conn *c = p->conn;
    p->wait = NULL;
    switch (auth_verdict(c, p->req, p->txn, false, r, p->retried)) {
    case V_RETRY:
        p->retried = true;
        directory_forget(c->srv->dir, p->req->auth.username, c->srv->cfg->sip_domain);
        p->wait = lookup(c, p->req, on_register_lookup, p);
        return;
    case V_OK: register_accept(c, p->req, p->txn); break;
    case V_ANSWERED: break;
    }
    pending_free(c, p);
}

/* Returns true when it kept m. */
static bool handle_register(struct sip_conn *c, struct sip_msg *m, struct txn *t)
{
    if (!auth_precheck(c, m, t, false)) return false;
    if (m->to_user && strcmp(m->to_user, m->auth.username) != 0) {
        /* registering someone else's address */
        respond(c, m, t, 403, NULL, NULL, NULL, 0, NULL, NULL);
        return false;
    }
    if (c->n_pending >= MAX_PENDING) {
        respond(c, m, t, 503, NULL, NULL, NULL, 0, NULL, NULL);
        return false;
    }
    struct pending_reg *p = g_new0(struct pending_reg, 1);
    p->conn = c;
    p->req = m;
    p->txn = t;
    p->next = c->pending;
    c->pending = p;
    c->n_pending++;
    p->wait = lookup(c, m, on_register_lookup, p);
    return true;
}

/* ---- SDP directions (hold / unhold) --------------------------------------------------------- */

static const char *const directions[] = {"sendrecv", "sendonly", "recvonly", "inactive"};

static const char *line_direction(const char *line)
{
    if (strncmp(line, "a=", 2) != 0) return NULL;
    for (size_t i = 0; i < G_N_ELEMENTS(directions); i++)
        if (strcmp(line + 2, directions[i]) == 0) return directions[i];
    return NULL;
}

/* The lines of an SDP, without their CR/LF and without empty ones. (transfer full) */
static char **sdp_lines(const char *sdp, guint *n)
{
    char **raw = g_strsplit(sdp, "\n", -1);
    GPtrArray *a = g_ptr_array_new();
    for (char **p = raw; *p; p++) {
        g_strchomp(*p); /* drops the CR */
        if (**p) g_ptr_array_add(a, g_strdup(*p));
    }
    g_strfreev(raw);
    *n = a->len;
    g_ptr_array_add(a, NULL);
    return (char **)g_ptr_array_free(a, FALSE);
}

/* The same SDP but for the o= version and the direction attributes. */
static bool sdp_same_but_direction(const char *a, const char *b)
{
    guint na, nb;
    char **la = sdp_lines(a, &na), **lb = sdp_lines(b, &nb);
    guint i = 0, j = 0;
    bool same = true;
    for (;;) {
        while (i < na && (line_direction(la[i]) || strncmp(la[i], "o=", 2) == 0))
            i++;
        while (j < nb && (line_direction(lb[j]) || strncmp(lb[j], "o=", 2) == 0))
            j++;
        if (i == na || j == nb) {
            same = i == na && j == nb;
            break;
        }
        if (strcmp(la[i], lb[j]) != 0) {
            same = false;
            break;
        }
        i++;
        j++;
    }
    g_strfreev(la);
    g_strfreev(lb);
    return same;
}

/* The direction of each m= section (index 0 = the first m=), up to max. */
static guint sdp_directions(const char *sdp, const char **out, guint max)
{
    guint n, count = 0;
    char **l = sdp_lines(sdp, &n);
    const char *session = "sendrecv";
    for (guint i = 0; i < n; i++) {
        const char *d = line_direction(l[i]);
        if (strncmp(l[i], "m=", 2) == 0) {
            if (count < max) out[count] = session;
            count++;
        } else if (d) {
            if (count == 0)
                session = d;
            else if (count <= max)
                out[count - 1] = d;
        }
    }
    g_strfreev(l);
    return MIN(count, max);
}

static const char *answer_direction(const char *offered, const char *original)
{
    if (strcmp(offered, "sendonly") == 0) return "recvonly";
    if (strcmp(offered, "recvonly") == 0) return "sendonly";
    if (strcmp(offered, "inactive") == 0) return "inactive";
    return original;
}

/* Our first answer with each m= section's direction answering offer's, and o= version bumped.
 * (transfer full) */
static char *sdp_adjust(const char *answer, const char *offer, unsigned version)
{
    const char *offered[32], *original[32];
    guint no = sdp_directions(offer, offered, 32);
    guint na = sdp_directions(answer, original, 32);
    guint n;
    char **l = sdp_lines(answer, &n);
    GString *s = g_string_new(NULL);
    int m = -1;
    for (guint i = 0; i <= n; i++) {
        bool section_end = i == n || strncmp(l[i], "m=", 2) == 0;
        if (section_end && m >= 0 && (guint)m < na) {
            const char *d = (guint)m < no ? answer_direction(offered[m], original[m]) : original[m];
            g_string_append_printf(s, "a=%s\r\n", d);
        }
        if (i == n) break;
        if (strncmp(l[i], "m=", 2) == 0) m++;
        if (line_direction(l[i])) continue;
        if (strncmp(l[i], "o=", 2) == 0) {
            char **f = g_strsplit(l[i], " ", -1);
            if (g_strv_length(f) >= 6) {
                g_string_append_printf(s, "%s %s %u", f[0], f[1], version);
                for (guint k = 3; f[k]; k++)
                    g_string_append_printf(s, " %s", f[k]);
                g_string_append(s, "\r\n");
                g_strfreev(f);
                continue;
            }
            g_strfreev(f);
        }
        g_string_append_printf(s, "%s\r\n", l[i]);
    }
    g_strfreev(l);
    return g_string_free(s, FALSE);
}

/* ---- calls ---------------------------------------------------------------------------------- */

static struct call *call_find(struct sip_conn *c, const struct sip_msg *m)
{
    if (!m->to_tag || !m->from_tag) return NULL;
    for (struct call *call = c->calls; call; call = call->next)
        if (call->dialog.call_id && strcmp(call->dialog.call_id, m->call_id) == 0 &&
            strcmp(call->dialog.remote_tag, m->from_tag) == 0 &&
            strcmp(call->local_tag, m->to_tag) == 0)
            return call;
    return NULL;
}

/* "$1-${domain}" with $1, $2 and ${domain} substituted; false when it does not fit. */
static bool expand_name(char *out, size_t n, const char *tmpl, const char *cap1, const char *cap2,
                        const char *domain)
{
    GString *s = g_string_new(NULL);
    for (const char *p = tmpl; *p;) {
        if (p[0] == '$' && p[1] == '1') {
            g_string_append(s, cap1);
            p += 2;
        } else if (p[0] == '$' && p[1] == '2') {
            g_string_append(s, cap2);
            p += 2;
        } else if (strncmp(p, "${domain}", 9) == 0 || strncmp(p, "${domain_name}", 14) == 0) {
            g_string_append(s, domain);
            p += p[8] == '}' ? 9 : 14;
        } else {
            g_string_append_c(s, *p++);
        }
    }
    bool ok = s->len > 0 && s->len < n;
    if (ok) memcpy(out, s->str, s->len + 1);
    g_string_free(s, TRUE);
    return ok;
}

static void copy_unquoted(char *out, size_t n, const char *s)
{
    if (!s) s = "";
    size_t len = strlen(s);
    if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
        s++;
        len -= 2;
    }
    g_strlcpy(out, s, MIN(n, len + 1));
}

static gboolean on_ack_timeout(gpointer data)
{
    struct call *call = data;
    call->timer = 0;
    LOG(LOG_INFO, "sip", "conn=%llu call=%llu msg=\"no ACK: hanging up\"",
        (unsigned long long)call->conn->id, (unsigned long long)call->id);
    send_bye(call);
    return G_SOURCE_REMOVE;
}

static gboolean on_bye_timeout(gpointer data)
{
    struct call *call = data;
    call->timer = 0;
    call_end(call);
    return G_SOURCE_REMOVE;
}

static void send_bye(struct call *call)
{
    struct sip_conn *c = call->conn;
    if (call->state == CALL_BYE_SENT) return;
    if (call->timer) g_source_remove(call->timer);
    call->timer = 0;
    char sent_by[128];
    snprintf(sent_by, sizeof sent_by, "%s:%u", c->srv->cfg->sip_ip, c->local_port);
    struct sip_header h = {"User-Agent", c->srv->cfg->sip_user_agent};
    struct buf out;
    buf_init(&out);
    if (sip_build_request(&call->dialog, "BYE", c->tls ? "WSS" : "WS", sent_by, &h,
                          *h.value ? 1 : 0, NULL, NULL, 0, &out, call->bye_branch) != SIP_OK) {
        buf_free(&out);
        call_end(call);
        return;
    }
    call->state = CALL_BYE_SENT;
    LOG(LOG_INFO, "sip", "conn=%llu call=%llu msg=\"sending BYE\"", (unsigned long long)c->id,
        (unsigned long long)call->id);
    conn_send(c, (const char *)buf_head(&out), buf_unread(&out));
    buf_free(&out);
    call->timer = g_timeout_add_seconds(BYE_TIMEOUT_S, on_bye_timeout, call);
}

/* The conference answered (answer_sdp) or refused (status) the call. */
static void call_join_result(struct call *call, struct conf_member *m, const char *answer_sdp,
                             int status, const char *reason)
{
    struct sip_conn *c = call->conn;
    if (!answer_sdp) {
        LOG(LOG_INFO, "sip", "conn=%llu call=%llu room=%s msg=\"join failed\" status=%d",
            (unsigned long long)c->id, (unsigned long long)call->id, call->room, status);
        respond(c, call->invite, call->txn, status >= 300 && status < 700 ? status : 500, NULL,
                call->local_tag, NULL, 0, NULL, NULL);
        (void)reason;
        call_end(call);
        return;
    }
    const char *err = NULL;
    if (sip_dialog_from_invite(call->invite, call->local_tag, &call->dialog, &err) != SIP_OK) {
        /* sip_parse made sure an INVITE has a usable Contact: should not happen */
        LOG(LOG_WARN, "sip", "conn=%llu call=%llu msg=\"no dialog\" error=\"%s\"",
            (unsigned long long)c->id, (unsigned long long)call->id, err);
        call->member = m;
        respond(c, call->invite, call->txn, 500, NULL, call->local_tag, NULL, 0, NULL, NULL);
        call_end(call);
        return;
    }
    call->member = m;
    g_hash_table_insert(c->srv->member_calls, m, call);
    call->answer_sdp = g_strdup(answer_sdp);
    call->local_sdp = g_strdup(answer_sdp);
    char contact[256];
    snprintf(contact, sizeof contact, "<sip:%s@%s:%u;transport=%s>",
             call->invite->ruri_user ? call->invite->ruri_user : "conference", c->srv->cfg->sip_ip,
             c->local_port, c->tls ? "wss" : "ws");
    struct sip_header h = {"Contact", contact};
    respond(c, call->invite, call->txn, 200, NULL, call->local_tag, &h, 1, "application/sdp",
            answer_sdp);
    LOG(LOG_INFO, "sip", "conn=%llu call=%llu room=%s member=%u msg=\"answered\"",
        (unsigned long long)c->id, (unsigned long long)call->id, call->room,
        conf_member_info(m)->id);
    sip_msg_free(call->invite);
    call->invite = NULL;
    call->txn = NULL;
    call->state = CALL_ANSWERED;
    call->timer = g_timeout_add_seconds(ACK_TIMEOUT_S, on_ack_timeout, call);
}

static void on_join_done(struct conf_member *m, const char *answer_sdp, int status,
                         const char *reason, void *ud)
{
    struct call *call = ud;
    if (call->ending) return; /* conf_leave from call_end */
    if (call->in_join) {      /* conf_join has not returned yet */
        call->joined = true;
        call->join_member = answer_sdp ? m : NULL;
        call->join_sdp = g_strdup(answer_sdp);
        call->join_status = status;
        g_strlcpy(call->join_reason, reason ? reason : "", sizeof call->join_reason);
        return;
    }
    if (!answer_sdp) { /* the conference forgets m itself */
        if (call->member) g_hash_table_remove(call->conn->srv->member_calls, call->member);
        call->member = NULL;
    }
    call_join_result(call, answer_sdp ? m : NULL, answer_sdp, status, reason);
}

/* "<dev>*<room>[*...]": the tenant and room a destination names, or false. */
static bool dest_room(const char *dest, int64_t *dev, const char **room, size_t *room_len)
{
    int64_t d = 0;
    size_t i = 0;
    for (; dest[i] >= '0' && dest[i] <= '9'; i++) {
        if (i >= 9) return false;
        d = d * 10 + (dest[i] - '0');
    }
    if (i == 0 || dest[i] != '*') return false;
    const char *r = dest + i + 1;
    size_t n = strcspn(r, "*");
    if (n == 0) return false;
    *dev = d;
    *room = r;
    *room_len = n;
    return true;
}

/* Audit C1: a caller joins only its own tenant's rooms ([dialplan] tenant_check), and only with
 * the invitation ccomet signed for it and that room ([sip] call_secret: the X-Comet-Call-Token
 * header cometVideoApi.js sends). Otherwise 403 and false. */
static bool call_admitted(struct call *call)
{
    struct sip_conn *c = call->conn;
    const struct media_config *cfg = c->srv->cfg;
    const struct sip_msg *inv = call->invite;
    bool need_token = cfg->sip_call_secret && *cfg->sip_call_secret;
    if (!cfg->dialplan_tenant_check && !need_token) return true;
    int64_t dest_dev = -1, dev = -1, user = -1;
    const char *room = "";
    size_t room_len = 0;
    const char *why = NULL;
    if (!dest_room(inv->ruri_user ? inv->ruri_user : "", &dest_dev, &room, &room_len))
        why = "the destination names no <dev_id>*<room>";
    else if (!xml_curl_user_split(call->user, &dev, &user) || dev != dest_dev)
        why = "a room of another tenant";
    else if (need_token) {
        const char *token = sip_msg_header(inv, CALL_TOKEN_HEADER);
        enum call_token_status st = call_token_check(
            cfg->sip_call_secret, strlen(cfg->sip_call_secret), token, token ? strlen(token) : 0,
            dest_dev, room, room_len, user, (int64_t)time(NULL));
        if (st != CALL_TOKEN_OK)
            why = token ? call_token_status_text(st) : "no invitation (X-Comet-Call-Token)";
    }
    if (!why) return true;
    LOG_RATELIMITED(LOG_WARN, "sip",
                    "conn=%llu call=%llu msg=\"call refused\" user=%s dest=\"%s\" why=\"%s\"",
                    (unsigned long long)c->id, (unsigned long long)call->id, call->user,
                    inv->ruri_user ? inv->ruri_user : "", why);
    char reason[96];
    g_snprintf(reason, sizeof reason, "Forbidden (%s)", why);
    respond(c, inv, call->txn, 403, reason, call->local_tag, NULL, 0, NULL, NULL);
    call_end(call);
    return false;
}

static void call_start_join(struct call *call)
{
    struct sip_conn *c = call->conn;
    const struct media_config *cfg = c->srv->cfg;
    const struct sip_msg *inv = call->invite;
    char cap1[128], cap2[64], profile_name[64];
    const char *err = "";
    int rc = sip_dialplan_match(inv->ruri_user ? inv->ruri_user : "", cfg->dialplan_pattern, cap1,
                                sizeof cap1, cap2, sizeof cap2, &err);
    if (rc == SIP_DIALPLAN_ERROR) {
        LOG_RATELIMITED(LOG_ERROR, "sip", "msg=\"dialplan error\" error=\"%s\"", err);
        respond(c, inv, call->txn, 500, NULL, call->local_tag, NULL, 0, NULL, NULL);
        call_end(call);
        return;
    }
    g_strlcpy(profile_name, *cap2 ? cap2 : "default", sizeof profile_name);
    struct conf_profile profile;
    if (rc != SIP_DIALPLAN_MATCH || !media_config_profile(cfg, profile_name, &profile) ||
        !expand_name(call->room, sizeof call->room, cfg->dialplan_conference, cap1, cap2,
                     cfg->sip_domain)) {
        LOG(LOG_INFO, "sip", "conn=%llu call=%llu msg=\"no such destination\" dest=\"%s\"",
            (unsigned long long)c->id, (unsigned long long)call->id,
            inv->ruri_user ? inv->ruri_user : "");
        respond(c, inv, call->txn, 404, NULL, call->local_tag, NULL, 0, NULL, NULL);
        call_end(call);
        return;
    }
    if (!call_admitted(call)) return;
    if (!inv->body || !inv->content_type || strcmp(inv->content_type, "application/sdp") != 0) {
        /* an offerless INVITE would need our offer: not supported */
        respond(c, inv, call->txn, 488, NULL, call->local_tag, NULL, 0, NULL, NULL);
        call_end(call);
        return;
    }
    struct conf_member_info who;
    memset(&who, 0, sizeof who);
    if (inv->from_display && *inv->from_display)
        copy_unquoted(who.caller_id_name, sizeof who.caller_id_name, inv->from_display);
    else
        g_strlcpy(who.caller_id_name, call->user, sizeof who.caller_id_name);
    g_strlcpy(who.caller_id_number, call->user, sizeof who.caller_id_number);
    g_strlcpy(who.user, call->user, sizeof who.user);
    int64_t dest_dev, udev, uid;
    const char *room_part;
    size_t room_len;
    if (dest_room(inv->ruri_user ? inv->ruri_user : "", &dest_dev, &room_part, &room_len))
        g_snprintf(who.tenant, sizeof who.tenant, "%" G_GINT64_FORMAT, dest_dev);
    else if (xml_curl_user_split(call->user, &udev, &uid))
        g_snprintf(who.tenant, sizeof who.tenant, "%" G_GINT64_FORMAT, udev);
    call->offer_sdp = g_strdup(inv->body);
    call->state = CALL_JOINING;
    LOG(LOG_INFO, "sip", "conn=%llu call=%llu user=%s room=%s profile=%s msg=\"joining\"",
        (unsigned long long)c->id, (unsigned long long)call->id, call->user, call->room,
        profile.name);
    call->in_join = true;
    struct conf_member *m =
        conf_join(c->srv->reg, call->room, &profile, &who, inv->body, on_join_done, call);
    call->in_join = false;
    if (call->joined) { /* answered (or refused) inside conf_join */
        char *sdp = call->join_sdp;
        call->join_sdp = NULL;
        call_join_result(call, call->join_member, sdp, call->join_status, call->join_reason);
        g_free(sdp);
        return;
    }
    call->member = m; /* waiting for the media engine's answer */
    g_hash_table_insert(c->srv->member_calls, m, call);
}

static void on_invite_lookup(const struct directory_result *r, void *ud)
{
    struct call *call = ud;
    struct sip_conn *c = call->conn;
    call->wait = NULL;
    switch (auth_verdict(c, call->invite, call->txn, true, r, call->retried)) {
    case V_RETRY:
        call->retried = true;
        directory_forget(c->srv->dir, call->invite->auth.username, c->srv->cfg->sip_domain);
        call->wait = lookup(c, call->invite, on_invite_lookup, call);
        return;
    case V_ANSWERED: call_end(call); return;
    case V_OK: break;
    }
    g_strlcpy(call->user, call->invite->auth.username, sizeof call->user);
    call_start_join(call);
}

static bool handle_invite(struct sip_conn *c, struct sip_msg *m, struct txn *t)
{
    if (!auth_precheck(c, m, t, true)) return false;
    if (c->n_calls >= MAX_CALLS) {
        respond(c, m, t, 486, NULL, NULL, NULL, 0, NULL, NULL);
        return false;
    }
    struct call *call = g_new0(struct call, 1);
    call->conn = c;
    call->id = ++c->srv->next_call_id;
    call->invite = m;
    call->txn = t;
    t->call = call;
    call->state = CALL_AUTH;
    call->sdp_version = 1;
    if (sip_tag_new(call->local_tag) != SIP_OK) g_strlcpy(call->local_tag, "ccomet", 7);
    call->next = c->calls;
    c->calls = call;
    c->n_calls++;
    respond(c, m, t, 100, NULL, NULL, NULL, 0, NULL, NULL);
    call->wait = lookup(c, m, on_invite_lookup, call);
    return true;
}

static void handle_reinvite(struct sip_conn *c, struct sip_msg *m, struct txn *t)
{
    struct call *call = call_find(c, m);
    if (!call || call->state == CALL_BYE_SENT || !call->member) {
        respond(c, m, t, 481, NULL, NULL, NULL, 0, NULL, NULL);
        return;
    }
    if (m->cseq <= call->dialog.remote_cseq) {
        respond(c, m, t, 500, "Out of order CSeq", NULL, NULL, 0, NULL, NULL);
        return;
    }
    call->dialog.remote_cseq = m->cseq;
    char contact[256];
    snprintf(contact, sizeof contact, "<sip:%s@%s:%u;transport=%s>",
             m->ruri_user ? m->ruri_user : "conference", c->srv->cfg->sip_ip, c->local_port,
             c->tls ? "wss" : "ws");
    struct sip_header h = {"Contact", contact};
    if (!m->body) { /* offerless: our current SDP is the offer, the ACK its answer */
        respond(c, m, t, 200, NULL, NULL, &h, 1, "application/sdp", call->local_sdp);
        return;
    }
    if (!m->content_type || strcmp(m->content_type, "application/sdp") != 0 ||
        !sdp_same_but_direction(call->offer_sdp, m->body)) {
        LOG(LOG_INFO, "sip",
            "conn=%llu call=%llu msg=\"re-INVITE changes more than the "
            "direction: 488\"",
            (unsigned long long)c->id, (unsigned long long)call->id);
        respond(c, m, t, 488, NULL, NULL, NULL, 0, NULL, NULL);
        return;
    }
    char *sdp = sdp_adjust(call->answer_sdp, m->body, ++call->sdp_version);
    g_free(call->local_sdp);
    call->local_sdp = sdp;
    g_free(call->offer_sdp);
    call->offer_sdp = g_strdup(m->body);
    LOG(LOG_INFO, "sip", "conn=%llu call=%llu msg=\"re-INVITE: direction change\"",
        (unsigned long long)c->id, (unsigned long long)call->id);
    respond(c, m, t, 200, NULL, NULL, &h, 1, "application/sdp", sdp);
}

static void handle_bye(struct sip_conn *c, struct sip_msg *m, struct txn *t)
{
    struct call *call = call_find(c, m);
    if (!call) {
        respond(c, m, t, 481, NULL, NULL, NULL, 0, NULL, NULL);
        return;
    }
    respond(c, m, t, 200, NULL, NULL, NULL, 0, NULL, NULL);
    LOG(LOG_INFO, "sip", "conn=%llu call=%llu msg=\"BYE from the caller\"",
        (unsigned long long)c->id, (unsigned long long)call->id);
    call_end(call);
}

static void handle_ack(struct sip_conn *c, struct sip_msg *m)
{
    struct call *call = call_find(c, m);
    if (call) {
        if (call->state == CALL_ANSWERED) {
            call->state = CALL_CONFIRMED;
            if (call->timer) g_source_remove(call->timer);
            call->timer = 0;
        }
        return;
    }
    /* the ACK of a non-2xx final response belongs to its INVITE transaction: absorbed */
}

static void handle_cancel(struct sip_conn *c, struct sip_msg *m, struct txn *t)
{
    struct txn *inv = txn_find(c, m->via_branch, "INVITE");
    if (!inv) {
        respond(c, m, t, 481, NULL, NULL, NULL, 0, NULL, NULL);
        return;
    }
    respond(c, m, t, 200, NULL, NULL, NULL, 0, NULL, NULL);
    struct call *call = inv->call;
    if (!call || inv->final) return; /* answered already: the CANCEL changes nothing */
    LOG(LOG_INFO, "sip", "conn=%llu call=%llu msg=\"cancelled\"", (unsigned long long)c->id,
        (unsigned long long)call->id);
    respond(c, call->invite, inv, 487, NULL, call->local_tag, NULL, 0, NULL, NULL);
    call_end(call);
}

static void handle_response(struct sip_conn *c, const struct sip_msg *m)
{
    if (!m->via_branch || strcmp(m->method, "BYE") != 0 || m->status < 200) return;
    for (struct call *call = c->calls; call; call = call->next) {
        if (call->state == CALL_BYE_SENT && strcmp(call->bye_branch, m->via_branch) == 0) {
            call_end(call);
            return;
        }
    }
}

/* Ends a call: cancels its lookup, hangs its member up (conf_leave), frees it. */
static void call_end(struct call *call)
{
    struct sip_conn *c = call->conn;
    call->ending = true;
    if (call->wait) directory_cancel(c->srv->dir, call->wait);
    call->wait = NULL;
    if (call->timer) g_source_remove(call->timer);
    call->timer = 0;
    if (call->txn) call->txn->call = NULL;
    if (call->member) {
        struct conf_member *m = call->member;
        call->member = NULL;
        g_hash_table_remove(c->srv->member_calls, m);
        conf_leave(m);
    }
    for (struct call **pp = &c->calls; *pp; pp = &(*pp)->next) {
        if (*pp == call) {
            *pp = call->next;
            c->n_calls--;
            break;
        }
    }
    sip_msg_free(call->invite);
    sip_dialog_free(&call->dialog);
    g_free(call->offer_sdp);
    g_free(call->answer_sdp);
    g_free(call->local_sdp);
    g_free(call->join_sdp);
    g_free(call);
}

static void on_kick(void *ctx, struct conf_member *m)
{
    struct sip_server *srv = ctx;
    struct call *call = g_hash_table_lookup(srv->member_calls, m);
    if (!call) {
        conf_leave(m);
        return;
    }
    switch (call->state) {
    case CALL_ANSWERED:
    case CALL_CONFIRMED: send_bye(call); break;
    case CALL_BYE_SENT: break;
    default: /* not answered yet: conf_leave calls on_join_done with 487 */ conf_leave(m); break;
    }
}

/* ---- revocation ------------------------------------------------------------------------------ */

unsigned sip_server_revoke_user(struct sip_server *srv, const char *user, const char *domain,
                                unsigned what)
{
    if (what & SIP_REVOKE_CACHE)
        directory_forget(srv->dir, user, domain && *domain ? domain : srv->cfg->sip_domain);
    unsigned n = 0;
    for (struct sip_conn *c = srv->conns; c; c = c->next) {
        struct binding *b = what & SIP_REVOKE_REGISTRATIONS ? c->bindings : NULL;
        while (b) {
            struct binding *next = b->next;
            if (strcmp(b->user, user) == 0) {
                binding_remove(c, b);
                n++;
            }
            b = next;
        }
        struct call *call = what & SIP_REVOKE_CALLS ? c->calls : NULL;
        while (call) {
            struct call *next = call->next; /* the hangup may end it (conf_leave) */
            if (strcmp(call->user, user) == 0 && !call->ending) {
                if (call->member)
                    conf_kick(call->member); /* out of the room at once (kick-member), then BYE */
                else if (call->state == CALL_ANSWERED || call->state == CALL_CONFIRMED)
                    send_bye(call);
                n++;
            }
            call = next;
        }
    }
    char q[96];
    LOG(LOG_INFO, "sip", "user=%s msg=\"revoked\" cache=%d registrations=%d calls=%d ended=%u",
        log_quote(q, sizeof q, user, (unsigned)strlen(user)), !!(what & SIP_REVOKE_CACHE),
        !!(what & SIP_REVOKE_REGISTRATIONS), !!(what & SIP_REVOKE_CALLS), n);
    return n;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

void sip_server_receive(struct sip_conn *c, const char *data, size_t len)
{
    if (c->closing) return;
    const struct media_config *cfg = c->srv->cfg;
    size_t max = (size_t)cfg->sip_max_message;
    struct sip_msg *m = NULL;
    const char *err = NULL;
    if (sip_parse(data, len, 2 * max, &m, &err) != SIP_OK) {
        if (m) {
            sip_msg_set_received(m, c->ip, c->port, true);
            LOG(LOG_INFO, "sip", "conn=%llu msg=\"malformed request\" error=\"%s\" status=%d",
                (unsigned long long)c->id, err, m->reject_status);
            int status = m->reject_status ? m->reject_status : 400;
            /* a 400's reason phrase names the syntax problem (RFC 3261 §21.4.1): "Bad
             * Content-Length"; the other statuses keep their standard phrase */
            char reason[80] = "";
            if (status == 400 && err && *err)
                snprintf(reason, sizeof reason, "%c%s", toupper((unsigned char)err[0]), err + 1);
            respond(c, m, NULL, status, *reason ? reason : NULL, NULL, NULL, 0, NULL, NULL);
            sip_msg_free(m);
        } else {
            LOG_RATELIMITED(LOG_INFO, "sip",
                            "conn=%llu msg=\"dropped a malformed message\" "
                            "error=\"%s\" bytes=%zu",
                            (unsigned long long)c->id, err, len);
        }
        return;
    }
    if (!m->is_request) {
        handle_response(c, m);
        sip_msg_free(m);
        return;
    }
    sip_msg_set_received(m, c->ip, c->port, true);
    LOG(LOG_DEBUG, "sip", "conn=%llu msg=\"request\" method=%s ruri=\"%s\" call_id=%s",
        (unsigned long long)c->id, m->method, m->ruri, m->call_id);
    if (len > max) {
        respond(c, m, NULL, 513, NULL, NULL, NULL, 0, NULL, NULL);
        sip_msg_free(m);
        return;
    }
    if (strcmp(m->method, "ACK") == 0) {
        handle_ack(c, m);
        sip_msg_free(m);
        return;
    }
    struct txn *t = txn_find(c, m->via_branch, m->method);
    if (t) { /* a retransmission: the last response again, or nothing while we work */
        if (t->response) conn_send(c, t->response, t->response_len);
        sip_msg_free(m);
        return;
    }
    t = txn_new(c, m->via_branch, m->method);
    if (!t) {
        respond(c, m, NULL, 503, NULL, NULL, NULL, 0, NULL, NULL);
        sip_msg_free(m);
        return;
    }
    bool kept = false;
    if (strcmp(m->method, "REGISTER") == 0) {
        kept = handle_register(c, m, t);
    } else if (strcmp(m->method, "INVITE") == 0) {
        if (m->to_tag)
            handle_reinvite(c, m, t);
        else
            kept = handle_invite(c, m, t);
    } else if (strcmp(m->method, "BYE") == 0) {
        handle_bye(c, m, t);
    } else if (strcmp(m->method, "CANCEL") == 0) {
        handle_cancel(c, m, t);
    } else if (strcmp(m->method, "OPTIONS") == 0) {
        struct sip_header h = {"Accept", "application/sdp"};
        respond(c, m, t, 200, NULL, NULL, &h, 1, NULL, NULL);
    } else {
        respond(c, m, t, 405, NULL, NULL, NULL, 0, NULL, NULL);
    }
    if (!kept) sip_msg_free(m);
}

/* ---- connections ---------------------------------------------------------------------------- */

static struct sip_conn *conn_new(struct sip_server *srv, const char *ip, unsigned port, bool tls,
                                 uint16_t local_port)
{
    struct sip_conn *c = g_new0(struct sip_conn, 1);
    c->srv = srv;
    c->id = ++srv->next_conn_id;
    g_strlcpy(c->ip, ip ? ip : "0.0.0.0", sizeof c->ip);
    c->port = port;
    c->tls = tls;
    c->local_port = local_port;
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    LOG(LOG_INFO, "sip", "conn=%llu msg=\"connected\" peer=%s:%u tls=%d", (unsigned long long)c->id,
        c->ip, port, tls);
    return c;
}

static void conn_free(struct sip_conn *c)
{
    c->closing = true;
    while (c->calls)
        call_end(c->calls);
    while (c->pending) {
        struct pending_reg *p = c->pending;
        if (p->wait) directory_cancel(c->srv->dir, p->wait);
        pending_free(c, p);
    }
    while (c->bindings)
        binding_remove(c, c->bindings);
    while (c->txns) {
        struct txn *t = c->txns;
        c->txns = t->next;
        txn_free(t);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (c->ws) {
        g_signal_handlers_disconnect_by_data(c->ws, c);
        if (soup_websocket_connection_get_state(c->ws) == SOUP_WEBSOCKET_STATE_OPEN)
            soup_websocket_connection_close(c->ws, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, NULL);
        g_object_unref(c->ws);
    }
    LOG(LOG_INFO, "sip", "conn=%llu msg=\"disconnected\"", (unsigned long long)c->id);
    g_free(c);
}

struct sip_conn *sip_server_attach(struct sip_server *srv, const char *ip, unsigned port,
                                   sip_send_fn send, void *ctx)
{
    struct sip_conn *c = conn_new(srv, ip, port, false, srv->ws_port);
    c->send = send;
    c->send_ctx = ctx;
    return c;
}

void sip_server_detach(struct sip_conn *c)
{
    conn_free(c);
}

static void on_ws_message(SoupWebsocketConnection *ws, gint type, GBytes *message, gpointer data)
{
    struct sip_conn *c = data;
    gsize len = 0;
    const char *p = g_bytes_get_data(message, &len);
    sip_server_receive(c, p ? p : "", len);
}

static void on_ws_closed(SoupWebsocketConnection *ws, gpointer data)
{
    conn_free(data);
}

static void on_ws_error(SoupWebsocketConnection *ws, GError *error, gpointer data)
{
    struct sip_conn *c = data;
    LOG(LOG_INFO, "sip", "conn=%llu msg=\"websocket error\" error=\"%s\"",
        (unsigned long long)c->id, error->message);
}

static bool offers_sip(const char *protocols)
{
    if (!protocols) return false;
    bool found = false;
    char **list = g_strsplit(protocols, ",", -1);
    for (char **p = list; *p && !found; p++)
        found = g_ascii_strcasecmp(g_strstrip(*p), "sip") == 0;
    g_strfreev(list);
    return found;
}

/* Runs before libsoup's WebSocket handshake: a client that does not offer "sip" is refused
 * (libsoup itself would accept a handshake without any Sec-WebSocket-Protocol). */
static void on_http(SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
                    gpointer data)
{
    SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
    const char *upgrade = soup_message_headers_get_one(h, "Upgrade");
    if (upgrade && g_ascii_strcasecmp(upgrade, "websocket") == 0 &&
        !offers_sip(soup_message_headers_get_list(h, "Sec-WebSocket-Protocol"))) {
        soup_server_message_set_status(msg, SOUP_STATUS_BAD_REQUEST,
                                       "SIP over WebSocket needs the sip subprotocol");
        return;
    }
    if (!upgrade) {
        soup_server_message_set_status(msg, 426, "Upgrade Required");
        soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Upgrade",
                                     "websocket");
    }
}

/* "ip port" of an address (the key of srv->accepting), and its ip alone. */
static void addr_text(GSocketAddress *sa, char *ip, size_t iplen, char *key, size_t keylen)
{
    g_strlcpy(ip, "?", iplen);
    unsigned port = 0;
    if (sa && G_IS_INET_SOCKET_ADDRESS(sa)) {
        char *s =
            g_inet_address_to_string(g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(sa)));
        g_strlcpy(ip, s, iplen);
        g_free(s);
        port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(sa));
    }
    g_snprintf(key, keylen, "%s %u", ip, port);
}

static void accept_release(struct sip_accept *a)
{
    struct sip_server *srv = a->srv;
    if (a->deadline) g_source_remove(a->deadline);
    unsigned n = GPOINTER_TO_UINT(g_hash_table_lookup(srv->per_ip, a->ip));
    if (n > 1)
        g_hash_table_insert(srv->per_ip, g_strdup(a->ip), GUINT_TO_POINTER(n - 1));
    else
        g_hash_table_remove(srv->per_ip, a->ip);
    srv->n_counted--;
    if (g_hash_table_lookup(srv->accepting, a->key) == a)
        g_hash_table_remove(srv->accepting, a->key);
    g_free(a);
}

/* libsoup let go of the connection's stream: it is closed, the count goes back. */
static void on_stream_gone(gpointer data, GObject *where_the_object_was)
{
    (void)where_the_object_was;
    accept_release(data);
}

/* No WebSocket upgrade in time: shut the socket down, so libsoup's pending read ends and it drops
 * the connection (a close of the stream itself would fail while that read is pending). */
static gboolean on_handshake_deadline(gpointer data)
{
    struct sip_accept *a = data;
    a->deadline = 0;
    LOG_RATELIMITED(LOG_INFO, "sip",
                    "msg=\"no websocket upgrade in time: closed\" peer=%s "
                    "timeout_s=%d",
                    a->ip, (int)a->srv->cfg->sip_handshake_timeout);
    g_socket_shutdown(a->socket, TRUE, TRUE, NULL);
    return G_SOURCE_REMOVE;
}

static gboolean on_incoming(GSocketService *service, GSocketConnection *conn, GObject *source,
                            gpointer data)
{
    struct sip_server *srv = data;
    const struct media_config *cfg = srv->cfg;
    (void)service;
    bool tls = source != NULL; /* the wss listener's source object is the certificate */
    GSocket *sock = g_socket_connection_get_socket(conn);
    GSocketAddress *remote = g_socket_connection_get_remote_address(conn, NULL);
    GSocketAddress *local = g_socket_connection_get_local_address(conn, NULL);
    char ip[48], key[64];
    addr_text(remote, ip, sizeof ip, key, sizeof key);
    bool full = srv->n_counted >= (unsigned)cfg->sip_max_connections;
    unsigned from_ip = GPOINTER_TO_UINT(g_hash_table_lookup(srv->per_ip, ip));
    if (!remote || !local || full || from_ip >= (unsigned)cfg->sip_max_connections_per_ip) {
        if (remote && local)
            LOG_RATELIMITED(
                LOG_WARN, "sip", "msg=\"connection refused\" peer=%s why=\"%s\" max=%d", ip,
                full ? "[sip] max_connections" : "[sip] max_connections_per_ip",
                (int)(full ? cfg->sip_max_connections : cfg->sip_max_connections_per_ip));
        if (!tls) { /* an HTTP answer the client can read; on wss there is no TLS yet to speak */
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                                       "Content-Length: 0\r\nConnection: close\r\n\r\n";
            g_socket_set_blocking(sock, FALSE);
            (void)g_socket_send(sock, busy, sizeof busy - 1, NULL, NULL);
        }
        g_io_stream_close(G_IO_STREAM(conn), NULL, NULL);
        g_clear_object(&remote);
        g_clear_object(&local);
        return TRUE;
    }
    GIOStream *stream = G_IO_STREAM(conn);
    if (tls) {
        GError *e = NULL;
        stream = g_tls_server_connection_new(stream, srv->tls_cert, &e);
        if (!stream) {
            LOG(LOG_ERROR, "sip", "msg=\"cannot start TLS\" peer=%s error=\"%s\"", ip, e->message);
            g_error_free(e);
            g_io_stream_close(G_IO_STREAM(conn), NULL, NULL);
            g_object_unref(remote);
            g_object_unref(local);
            return TRUE;
        }
    }
    struct sip_accept *a = g_new0(struct sip_accept, 1);
    a->srv = srv;
    a->stream = G_OBJECT(stream);
    a->socket = sock;
    g_strlcpy(a->ip, ip, sizeof a->ip);
    g_strlcpy(a->key, key, sizeof a->key);
    g_hash_table_insert(srv->per_ip, g_strdup(ip), GUINT_TO_POINTER(from_ip + 1));
    srv->n_counted++;
    g_hash_table_replace(srv->accepting, a->key, a);
    g_object_weak_ref(a->stream, on_stream_gone, a);
    a->deadline =
        g_timeout_add_seconds((guint)cfg->sip_handshake_timeout, on_handshake_deadline, a);
    GError *e = NULL;
    if (!soup_server_accept_iostream(srv->soup, stream, local, remote, &e)) {
        LOG(LOG_ERROR, "sip", "msg=\"cannot serve the connection\" peer=%s error=\"%s\"", ip,
            e->message);
        g_error_free(e);
    }
    if (tls) g_object_unref(stream); /* libsoup holds it now (or nobody: on_stream_gone) */
    g_object_unref(remote);
    g_object_unref(local);
    return TRUE;
}

static void on_ws(SoupServer *server, SoupServerMessage *msg, const char *path,
                  SoupWebsocketConnection *ws, gpointer data)
{
    struct sip_server *srv = data;
    GUri *uri = soup_server_message_get_uri(msg);
    bool tls = g_strcmp0(g_uri_get_scheme(uri), "https") == 0;
    unsigned port = 0;
    GSocketAddress *ra = soup_server_message_get_remote_address(msg);
    if (ra && G_IS_INET_SOCKET_ADDRESS(ra))
        port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(ra));
    char ip[48], key[64];
    addr_text(ra, ip, sizeof ip, key, sizeof key);
    struct sip_accept *a = g_hash_table_lookup(srv->accepting, key);
    if (a && a->deadline) { /* upgraded in time: the connection is ours until it closes */
        g_source_remove(a->deadline);
        a->deadline = 0;
    }
    struct sip_conn *c = conn_new(srv, soup_server_message_get_remote_host(msg), port, tls,
                                  tls ? srv->wss_port : srv->ws_port);
    c->ws = g_object_ref(ws);
    soup_websocket_connection_set_max_incoming_payload_size(ws,
                                                            2 * (guint64)srv->cfg->sip_max_message);
    soup_websocket_connection_set_keepalive_interval(ws, WS_KEEPALIVE_S);
    g_signal_connect(ws, "message", G_CALLBACK(on_ws_message), c);
    g_signal_connect(ws, "closed", G_CALLBACK(on_ws_closed), c);
    g_signal_connect(ws, "error", G_CALLBACK(on_ws_error), c);
}

/* ---- the server ----------------------------------------------------------------------------- */

struct sip_server *sip_server_new_unbound(const struct media_config *cfg, struct conf_registry *reg,
                                          GError **error)
{
    sip_global_init();
    struct directory *dir = directory_new(cfg, error);
    if (!dir) return NULL;
    uint8_t secret[16];
    if (RAND_bytes(secret, sizeof secret) != 1) { /* a guessable nonce secret is no secret */
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "no random bytes for the SIP nonce secret (RAND_bytes failed)");
        directory_free(dir);
        return NULL;
    }
    struct sip_server *srv = xcalloc(1, sizeof *srv);
    srv->cfg = cfg;
    srv->reg = reg;
    srv->dir = dir;
    memcpy(srv->secret, secret, sizeof secret);
    srv->member_calls = g_hash_table_new(g_direct_hash, g_direct_equal);
    srv->used_nonces = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    auth_failures_init(&srv->failures);
    srv->accepting = g_hash_table_new(g_str_hash, g_str_equal);
    srv->per_ip = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    srv->ws_port = (uint16_t)cfg->sip_ws_port;
    conf_set_kick_handler(reg, on_kick, srv);
    return srv;
}

static bool listen_on(struct sip_server *srv, int port, bool tls, uint16_t *bound, GError **error)
{
    GInetAddress *ia = g_inet_address_new_from_string(srv->cfg->sip_ip);
    if (!ia) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "[sip] ip '%s' is not an IP address", srv->cfg->sip_ip);
        return false;
    }
    GSocketAddress *sa = g_inet_socket_address_new(ia, (guint16)port);
    g_object_unref(ia);
    GError *e = NULL;
    GSocketAddress *effective = NULL;
    bool ok = g_socket_listener_add_address(G_SOCKET_LISTENER(srv->service), sa,
                                            G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                                            tls ? G_OBJECT(srv->tls_cert) : NULL, &effective, &e);
    g_object_unref(sa);
    if (!ok) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "[sip] cannot listen on %s:%d (%s): %s",
                    srv->cfg->sip_ip, port, tls ? "wss" : "ws", e->message);
        g_error_free(e);
        return false;
    }
    *bound = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(effective));
    g_object_unref(effective);
    LOG(LOG_INFO, "sip", "msg=\"listening\" ip=%s port=%u transport=%s", srv->cfg->sip_ip,
        (unsigned)*bound, tls ? "wss" : "ws");
    return true;
}

struct sip_server *sip_server_start(const struct media_config *cfg, struct conf_registry *reg,
                                    GError **error)
{
    struct sip_server *srv = sip_server_new_unbound(cfg, reg, error);
    if (!srv) return NULL;
    srv->soup = soup_server_new("server-header", NULL, NULL);
    char *protocols[] = {"sip", NULL};
    soup_server_add_handler(srv->soup, NULL, on_http, srv, NULL);
    soup_server_add_websocket_handler(srv->soup, NULL, NULL, protocols, on_ws, srv, NULL);
    srv->service = g_socket_service_new();
    /* GLib's default backlog is 10: a burst of connects would overflow it and the kernel would
     * drop even a real client's SYN for a 1 s retransmission (the kernel caps it at somaxconn) */
    g_socket_listener_set_backlog(G_SOCKET_LISTENER(srv->service), LISTEN_BACKLOG);
    g_signal_connect(srv->service, "incoming", G_CALLBACK(on_incoming), srv);
    bool ok = listen_on(srv, cfg->sip_ws_port, false, &srv->ws_port, error);
    if (ok && *cfg->sip_ssl_cert) {
        srv->tls_cert =
            g_tls_certificate_new_from_files(cfg->sip_ssl_cert, cfg->sip_ssl_key, error);
        if (!srv->tls_cert) {
            g_prefix_error(error, "[sip] ssl_cert / ssl_key: ");
            ok = false;
        } else {
            ok = listen_on(srv, cfg->sip_wss_port, true, &srv->wss_port, error);
        }
    }
    if (!ok) {
        sip_server_stop(srv);
        return NULL;
    }
    g_socket_service_start(srv->service);
    if (!*cfg->sip_call_secret)
        LOG(LOG_WARN, "sip",
            "msg=\"no [sip] call_secret: every registered user may join any room of its tenant "
            "without an invitation\" hint=\"set the same call_secret in ccomet's [sip]\"");
    if (!cfg->dialplan_tenant_check)
        LOG(LOG_WARN, "sip",
            "msg=\"[dialplan] tenant_check = no: users may join other tenants' rooms\"");
    return srv;
}

void sip_server_stop(struct sip_server *srv)
{
    if (!srv) return;
    while (srv->conns)
        conn_free(srv->conns);
    conf_set_kick_handler(srv->reg, NULL, NULL);
    if (srv->service) {
        g_socket_service_stop(srv->service);
        g_socket_listener_close(G_SOCKET_LISTENER(srv->service));
        g_object_unref(srv->service);
    }
    /* connections libsoup still holds outlive us: forget them before it lets go */
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, srv->accepting);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        struct sip_accept *a = v;
        g_object_weak_unref(a->stream, on_stream_gone, a);
        if (a->deadline) g_source_remove(a->deadline);
        g_hash_table_iter_remove(&it);
        g_free(a);
    }
    if (srv->soup) {
        soup_server_disconnect(srv->soup);
        g_object_unref(srv->soup);
    }
    g_clear_object(&srv->tls_cert);
    g_hash_table_destroy(srv->accepting);
    g_hash_table_destroy(srv->per_ip);
    directory_free(srv->dir);
    g_hash_table_destroy(srv->member_calls);
    g_hash_table_destroy(srv->used_nonces);
    auth_failures_free(&srv->failures);
    xfree(srv);
}

uint16_t sip_server_ws_port(const struct sip_server *srv)
{
    return srv->ws_port;
}

uint16_t sip_server_wss_port(const struct sip_server *srv)
{
    return srv->wss_port;
}
