/* directory: mod_xml_curl-style user lookups, the static file, the cache; see directory.h.
 * Lifetimes: a lookup in flight (struct lookup) belongs to the HTTP request, not to the
 * directory: directory_free detaches and cancels it, and the request's own completion frees it,
 * so libsoup's callbacks never reach freed memory. Waiters (struct directory_wait) belong to the
 * directory until their callback has run or they are cancelled. */
#include "media/directory.h"
#include "core/alloc.h"
#include "core/log.h"
#include "proto/xml_curl.h"

#include <libsoup/soup.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define RESPONSE_MAX_BYTES (1024 * 1024) /* mod_xml_curl's response-max-bytes default */
#define READ_CHUNK         16384
#define NOT_FOUND_TTL_S    5

struct answer {
    enum directory_status status;
    enum directory_source source;
    char *password, *a1_hash; /* g_malloc'd */
    const char *why;          /* static */
    gint64 expires;           /* unix s: when the password ends (a token session's), 0 never */
};

struct lookup;

struct directory_wait {
    struct directory *d;
    struct lookup *lk; /* waiting on HTTP; NULL when answered from an idle callback */
    directory_fn cb;
    void *ud;
    guint idle;
    struct answer ans; /* for the idle answer */
    bool cancelled;    /* cancelled while its lookup delivers */
    struct directory_wait *next;
};

struct lookup {
    struct directory *d; /* NULL once the directory is gone */
    char *key, *user, *domain;
    char *user_log; /* user quoted for logfmt: it is the sender's text (security audit L6) */
    struct directory_wait *waiters;
    bool delivering;
    SoupMessage *msg;
    GCancellable *cancel;
    GInputStream *stream;
    GByteArray *body;
    guint timer;
    bool timed_out;
};

struct cache_entry {
    char *key;
    struct answer ans;
    gint64 expires_us; /* monotonic */
};

struct file_user {
    char *password, *a1_hash; /* g_malloc'd */
};

struct directory {
    char *url, *basic, *file, *ipv4;
    bool use_get;
    gint64 ttl_s;
    size_t cache_max;
    guint timeout_ms;
    SoupSession *session;
    GHashTable *file_users; /* "user@domain" or "user@" (any domain) -> struct file_user */
    GHashTable *cache;      /* key -> struct cache_entry */
    GQueue cache_order;     /* struct cache_entry, oldest first */
    GHashTable *inflight;   /* key -> struct lookup */
    struct directory_wait *idle_waiters;
    char core_uuid[37];
    char hostname[256];
    unsigned long long seq;
};

static void answer_clear(struct answer *a)
{
    g_free(a->password);
    g_free(a->a1_hash);
    a->password = a->a1_hash = NULL;
}

static void answer_copy(struct answer *dst, const struct answer *src)
{
    *dst = *src;
    dst->password = g_strdup(src->password);
    dst->a1_hash = g_strdup(src->a1_hash);
}

static char *make_key(const char *user, const char *domain)
{
    return g_strdup_printf("%s@%s", user, domain);
}

/* ---- XML ---------------------------------------------------------------------------------- */

static bool name_is(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static char *attr(const xmlNode *n, const char *name) /* g_malloc'd or NULL */
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    if (!v) return NULL;
    char *s = g_strdup((const char *)v);
    xmlFree(v);
    return s;
}

static bool attr_is(const xmlNode *n, const char *name, const char *value)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    bool eq = v && strcmp((const char *)v, value) == 0;
    xmlFree(v);
    return eq;
}

/* The ccomet_password_expires variable of a <user> (ccomet's answer for a token session's
 * credential, xml_curl.h), or 0. */
static gint64 user_password_expires(const xmlNode *user)
{
    gint64 expires = 0;
    for (const xmlNode *p = user->children; p; p = p->next) {
        if (!name_is(p, "variables")) continue;
        for (const xmlNode *q = p->children; q; q = q->next) {
            if (!name_is(q, "variable") || !attr_is(q, "name", XML_CURL_PASSWORD_EXPIRES)) continue;
            char *v = attr(q, "value");
            char *end = NULL;
            gint64 e = v ? g_ascii_strtoll(v, &end, 10) : 0;
            /* unreadable: the password is taken as already ended, never as forever */
            expires = v && *v && end && !*end && e > 0 ? e : 1;
            g_free(v);
        }
    }
    return expires;
}

/* The password / a1-hash params of a <user>. */
static void user_params(const xmlNode *user, char **password, char **a1_hash)
{
    for (const xmlNode *p = user->children; p; p = p->next) {
        if (!name_is(p, "params")) continue;
        for (const xmlNode *q = p->children; q; q = q->next) {
            if (!name_is(q, "param")) continue;
            char **slot = attr_is(q, "name", "password")  ? password
                          : attr_is(q, "name", "a1-hash") ? a1_hash
                                                          : NULL;
            if (!slot) continue;
            g_free(*slot);
            *slot = attr(q, "value");
        }
    }
}

typedef void (*user_fn)(const xmlNode *user, const char *id, void *ud);

/* Every <user id=...> below n (domain > user, domain > users > user, domain > groups > group >
 * users > user), without descending into users. Pointer users (type="pointer") are skipped. */
static void walk_users(const xmlNode *n, user_fn fn, void *ud)
{
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE) continue;
        if (name_is(c, "user")) {
            char *id = attr(c, "id");
            if (id && !attr_is(c, "type", "pointer")) fn(c, id, ud);
            g_free(id);
        } else {
            walk_users(c, fn, ud);
        }
    }
}

typedef void (*domain_fn)(const xmlNode *domain, void *ud);

static void walk_domains(const xmlNode *n, domain_fn fn, void *ud)
{
    for (const xmlNode *c = n; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE) continue;
        if (name_is(c, "domain"))
            fn(c, ud);
        else
            walk_domains(c->children, fn, ud);
    }
}

static bool domain_matches(const xmlNode *dom, const char *domain)
{
    char *name = attr(dom, "name");
    bool ok = name && (strcmp(name, domain) == 0 || strstr(name, "${"));
    g_free(name);
    return ok;
}

struct find {
    const char *user, *domain;
    bool exact_only;
    bool found;
    char *password, *a1_hash;
    gint64 expires;
};

static void find_user_cb(const xmlNode *user, const char *id, void *ud)
{
    struct find *f = ud;
    if (f->found || strcmp(id, f->user) != 0) return;
    f->found = true;
    user_params(user, &f->password, &f->a1_hash);
    f->expires = user_password_expires(user);
}

static void find_domain_cb(const xmlNode *dom, void *ud)
{
    struct find *f = ud;
    if (f->found || (f->exact_only && !domain_matches(dom, f->domain))) return;
    walk_users(dom, find_user_cb, f);
}

static xmlDoc *read_xml(const char *xml, size_t len)
{
    if (len > INT32_MAX) return NULL;
    /* no NOENT (entities are not expanded), no network, no messages on stderr */
    return xmlReadMemory(xml, (int)len, NULL, NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

enum directory_status directory_parse_xml(const char *xml, size_t len, const char *user,
                                          const char *domain, char **password, char **a1_hash,
                                          gint64 *expires, const char **err)
{
    *password = *a1_hash = NULL;
    if (expires) *expires = 0;
    xmlDoc *doc = read_xml(xml, len);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    if (!root || !name_is(root, "document")) {
        *err = doc ? "the answer is not a freeswitch/xml document" : "the answer is not XML";
        if (doc) xmlFreeDoc(doc);
        return DIRECTORY_TEMPFAIL;
    }
    enum directory_status st = DIRECTORY_NOT_FOUND;
    bool has_section = false;
    for (const xmlNode *s = root->children; s; s = s->next) {
        if (!name_is(s, "section")) continue;
        has_section = true;
        if (!attr_is(s, "name", "directory")) continue; /* "result": not found */
        /* the named domain first; a gateway that names another one (CppComet's is always
         * FSdefaultDomain) is still believed for this user */
        struct find f = {user, domain, true, false, NULL, NULL, 0};
        walk_domains(s->children, find_domain_cb, &f);
        if (!f.found) {
            f.exact_only = false;
            walk_domains(s->children, find_domain_cb, &f);
        }
        if (f.found) {
            *password = f.password;
            *a1_hash = f.a1_hash;
            if (expires) *expires = f.expires;
            st = DIRECTORY_FOUND;
            break;
        }
    }
    xmlFreeDoc(doc);
    if (!has_section) {
        *err = "the document has no section";
        return DIRECTORY_TEMPFAIL;
    }
    return st;
}

struct load {
    GHashTable *users;
    const char *domain_key; /* "" for a wildcard domain */
};

static void file_user_free(gpointer p)
{
    struct file_user *u = p;
    g_free(u->password);
    g_free(u->a1_hash);
    g_free(u);
}

static void load_user_cb(const xmlNode *user, const char *id, void *ud)
{
    struct load *l = ud;
    struct file_user *u = g_new0(struct file_user, 1);
    user_params(user, &u->password, &u->a1_hash);
    g_hash_table_replace(l->users, make_key(id, l->domain_key), u);
}

static void load_domain_cb(const xmlNode *dom, void *ud)
{
    struct load *l = ud;
    char *name = attr(dom, "name");
    l->domain_key = !name || strstr(name, "${") ? "" : name;
    walk_users(dom, load_user_cb, l);
    g_free(name);
}

static GHashTable *load_file(const char *path, GError **error)
{
    char *text = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &text, &len, error)) return NULL;
    xmlDoc *doc = read_xml(text, len);
    g_free(text);
    if (!doc || !xmlDocGetRootElement(doc)) {
        if (doc) xmlFreeDoc(doc);
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "[directory] file %s is not well-formed XML", path);
        return NULL;
    }
    struct load l = {g_hash_table_new_full(g_str_hash, g_str_equal, g_free, file_user_free), ""};
    walk_domains(xmlDocGetRootElement(doc), load_domain_cb, &l);
    xmlFreeDoc(doc);
    return l.users;
}

/* ---- the form ------------------------------------------------------------------------------- */

void directory_url_encode(GString *out, const char *s)
{
    static const char unsafe[] = " \"#%&+:;<=>?@[\\]^`{|}";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p >= 0x7f || strchr(unsafe, *p))
            g_string_append_printf(out, "%%%02X", *p);
        else
            g_string_append_c(out, (char)*p);
    }
}

static void field(GString *form, const char *name, const char *value)
{
    if (!value) return;
    if (form->len) g_string_append_c(form, '&');
    g_string_append(form, name);
    g_string_append_c(form, '=');
    directory_url_encode(form, value);
}

/* "sip:1000@host:5060;transport=ws" -> user "1000", host "host" (into the two buffers). */
static void uri_parts(const char *uri, char *user, size_t un, char *host, size_t hn)
{
    *user = *host = 0;
    if (!uri) return;
    const char *p = strchr(uri, ':');
    if (!p) return;
    p++;
    const char *at = strchr(p, '@');
    const char *end = p + strcspn(p, ";?>");
    if (at && at < end) {
        g_strlcpy(user, p, MIN(un, (size_t)(at - p) + 1));
        p = at + 1;
    }
    size_t hl = strcspn(p, ":;?>");
    if (*p == '[') hl = strcspn(p, "]") + 1; /* an IPv6 reference */
    g_strlcpy(host, p, MIN(hn, hl + 1));
}

void directory_build_form(GString *form, const struct directory_query *q, const char *hostname,
                          const char *core_uuid, const char *ipv4, unsigned long long seq,
                          gint64 now_us)
{
    char buf[128], cuser[128], chost[256];
    time_t t = (time_t)(now_us / G_USEC_PER_SEC);
    struct tm lt, gt;
    localtime_r(&t, &lt);
    gmtime_r(&t, &gt);
    const struct sip_msg *r = q->req;
    const struct sip_auth *a = q->auth;

    field(form, "hostname", hostname);
    field(form, "section", "directory");
    field(form, "tag_name", "domain");
    field(form, "key_name", "name");
    field(form, "key_value", q->domain);
    field(form, "Event-Name", "REQUEST_PARAMS");
    field(form, "Core-UUID", core_uuid);
    field(form, "FreeSWITCH-Hostname", hostname);
    field(form, "FreeSWITCH-Switchname", hostname);
    field(form, "FreeSWITCH-IPv4", ipv4);
    field(form, "FreeSWITCH-IPv6", "::1");
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &lt);
    field(form, "Event-Date-Local", buf);
    strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &gt);
    field(form, "Event-Date-GMT", buf);
    snprintf(buf, sizeof buf, "%lld", (long long)now_us);
    field(form, "Event-Date-Timestamp", buf);
    field(form, "Event-Calling-File", "sofia_reg.c");
    field(form, "Event-Calling-Function", "sofia_reg_parse_auth");
    field(form, "Event-Calling-Line-Number", "3124");
    snprintf(buf, sizeof buf, "%llu", seq);
    field(form, "Event-Sequence", buf);
    field(form, "action", "sip_auth");
    field(form, "sip_profile", "internal");
    field(form, "sip_user_agent", r ? r->user_agent : NULL);
    field(form, "sip_auth_username", a ? a->username : NULL);
    field(form, "sip_auth_realm", a ? a->realm : NULL);
    field(form, "sip_auth_nonce", a ? a->nonce : NULL);
    field(form, "sip_auth_uri", a ? a->uri : NULL);
    if (r && r->contact_uri) {
        uri_parts(r->contact_uri, cuser, sizeof cuser, chost, sizeof chost);
        field(form, "sip_contact_user", *cuser ? cuser : NULL);
        field(form, "sip_contact_host", *chost ? chost : NULL);
    }
    field(form, "sip_to_user", r ? r->to_user : NULL);
    field(form, "sip_to_host", r ? r->to_host : NULL);
    if (r && r->via_transport) {
        char *proto = g_ascii_strdown(r->via_transport, -1);
        field(form, "sip_via_protocol", proto);
        g_free(proto);
    }
    field(form, "sip_from_user", r ? r->from_user : NULL);
    field(form, "sip_from_host", r ? r->from_host : NULL);
    field(form, "sip_call_id", r ? r->call_id : NULL);
    if (r && r->ruri_user && strcmp(r->method, "REGISTER") != 0)
        field(form, "sip_request_user", r->ruri_user);
    field(form, "sip_request_host", r ? r->ruri_host : NULL);
    field(form, "sip_auth_qop", a ? a->qop : NULL);
    field(form, "sip_auth_cnonce", a ? a->cnonce : NULL);
    field(form, "sip_auth_nc", a ? a->nc : NULL);
    field(form, "sip_auth_response", a ? a->response : NULL);
    field(form, "sip_auth_method", q->method);
    if (q->port) {
        snprintf(buf, sizeof buf, "%u", q->port);
        field(form, "client_port", buf);
    }
    field(form, "key", "id");
    field(form, "user", q->user);
    field(form, "domain", q->domain);
    field(form, "ip", q->ip);
}

/* ---- the directory -------------------------------------------------------------------------- */

static void cache_entry_free(struct cache_entry *e)
{
    answer_clear(&e->ans);
    g_free(e->key);
    g_free(e);
}

struct directory *directory_new(const struct media_config *cfg, GError **error)
{
    struct directory *d = xcalloc(1, sizeof *d);
    if (*cfg->dir_url) {
        if (!g_str_has_prefix(cfg->dir_url, "http://") &&
            !g_str_has_prefix(cfg->dir_url, "https://")) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                        "[directory] url must be http:// or https://, not '%s'", cfg->dir_url);
            xfree(d);
            return NULL;
        }
        d->url = xstrdup(cfg->dir_url);
    }
    if (*cfg->dir_file) {
        d->file_users = load_file(cfg->dir_file, error);
        if (!d->file_users) {
            xfree(d->url);
            xfree(d);
            return NULL;
        }
        d->file = xstrdup(cfg->dir_file);
    }
    if (*cfg->dir_user || *cfg->dir_password) {
        char *cred = g_strdup_printf("%s:%s", cfg->dir_user, cfg->dir_password);
        char *b64 = g_base64_encode((const guchar *)cred, strlen(cred));
        d->basic = g_strdup_printf("Basic %s", b64);
        g_free(cred);
        g_free(b64);
    }
    d->use_get = strcmp(cfg->dir_method, "get") == 0;
    d->ttl_s = cfg->dir_cache_ttl;
    d->cache_max = (size_t)cfg->dir_cache_max;
    d->timeout_ms = (guint)cfg->dir_timeout_ms;
    d->ipv4 = xstrdup(cfg->sip_ip);
    d->cache = g_hash_table_new(g_str_hash, g_str_equal);
    g_queue_init(&d->cache_order);
    d->inflight = g_hash_table_new(g_str_hash, g_str_equal);
    char *u = g_uuid_string_random();
    g_strlcpy(d->core_uuid, u, sizeof d->core_uuid);
    g_free(u);
    g_strlcpy(d->hostname, g_get_host_name(), sizeof d->hostname);
    if (d->url) {
        /* our own timer bounds the whole request (timeout_ms); libsoup's only the idle socket.
         * No content decoder: mod_xml_curl sends no Accept-Encoding. */
        d->session = soup_session_new_with_options("user-agent", "freeswitch-xml/1.0", "timeout",
                                                   (d->timeout_ms + 999) / 1000,
                                                   "max-conns-per-host", 16, NULL);
        soup_session_remove_feature_by_type(d->session, SOUP_TYPE_CONTENT_DECODER);
    }
    LOG(LOG_INFO, "directory", "msg=\"directory ready\" url=\"%s\" method=%s file=\"%s\" users=%u",
        d->url ? d->url : "", d->use_get ? "GET" : "POST", d->file ? d->file : "",
        d->file_users ? g_hash_table_size(d->file_users) : 0);
    return d;
}

static void lookup_free(struct lookup *lk)
{
    if (lk->timer) g_source_remove(lk->timer);
    g_clear_object(&lk->msg);
    g_clear_object(&lk->cancel);
    g_clear_object(&lk->stream);
    if (lk->body) g_byte_array_unref(lk->body);
    g_free(lk->key);
    g_free(lk->user);
    g_free(lk->user_log);
    g_free(lk->domain);
    g_free(lk);
}

static void waiter_free(struct directory_wait *w)
{
    answer_clear(&w->ans);
    g_free(w);
}

void directory_free(struct directory *d)
{
    if (!d) return;
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, d->inflight);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        struct lookup *lk = v;
        lk->d = NULL;
        for (struct directory_wait *w = lk->waiters, *next; w; w = next) {
            next = w->next;
            waiter_free(w);
        }
        lk->waiters = NULL;
        if (!lk->msg) { /* never sent: nothing will complete */
            lookup_free(lk);
            continue;
        }
        if (lk->timer) g_source_remove(lk->timer);
        lk->timer = 0;
        g_cancellable_cancel(lk->cancel); /* its completion frees it */
    }
    g_hash_table_destroy(d->inflight);
    for (struct directory_wait *w = d->idle_waiters, *next; w; w = next) {
        next = w->next;
        g_source_remove(w->idle);
        waiter_free(w);
    }
    struct cache_entry *e;
    while ((e = g_queue_pop_head(&d->cache_order)))
        cache_entry_free(e);
    g_hash_table_destroy(d->cache);
    if (d->file_users) g_hash_table_destroy(d->file_users);
    g_clear_object(&d->session);
    g_free(d->basic);
    xfree(d->url);
    xfree(d->file);
    xfree(d->ipv4);
    xfree(d);
}

static void cache_remove(struct directory *d, const char *key)
{
    struct cache_entry *e = g_hash_table_lookup(d->cache, key);
    if (!e) return;
    g_hash_table_remove(d->cache, key);
    g_queue_remove(&d->cache_order, e);
    cache_entry_free(e);
}

void directory_forget(struct directory *d, const char *user, const char *domain)
{
    char *key = make_key(user, domain);
    cache_remove(d, key);
    g_free(key);
}

static void cache_put(struct directory *d, const char *key, const struct answer *a)
{
    if (d->ttl_s <= 0 || a->status == DIRECTORY_TEMPFAIL) return;
    cache_remove(d, key);
    while (g_queue_get_length(&d->cache_order) >= d->cache_max) {
        struct cache_entry *old = g_queue_pop_head(&d->cache_order);
        g_hash_table_remove(d->cache, old->key);
        cache_entry_free(old);
    }
    struct cache_entry *e = g_new0(struct cache_entry, 1);
    e->key = g_strdup(key);
    answer_copy(&e->ans, a);
    gint64 ttl = a->status == DIRECTORY_FOUND ? d->ttl_s : MIN(d->ttl_s, NOT_FOUND_TTL_S);
    if (a->expires) /* a token session's credential is never kept past its end */
        ttl = MIN(ttl, MAX(0, a->expires - g_get_real_time() / G_USEC_PER_SEC));
    e->expires_us = g_get_monotonic_time() + ttl * G_USEC_PER_SEC;
    g_hash_table_insert(d->cache, e->key, e);
    g_queue_push_tail(&d->cache_order, e);
}

static bool cache_get(struct directory *d, const char *key, struct answer *out)
{
    struct cache_entry *e = g_hash_table_lookup(d->cache, key);
    if (!e) return false;
    if (g_get_monotonic_time() >= e->expires_us ||
        (e->ans.expires && g_get_real_time() / G_USEC_PER_SEC >= e->ans.expires)) {
        cache_remove(d, key);
        return false;
    }
    answer_copy(out, &e->ans);
    out->source = DIRECTORY_FROM_CACHE;
    return true;
}

/* The static file's answer, if it knows the user. */
static bool file_get(struct directory *d, const char *user, const char *domain, struct answer *out)
{
    if (!d->file_users) return false;
    char *key = make_key(user, domain);
    struct file_user *u = g_hash_table_lookup(d->file_users, key);
    g_free(key);
    if (!u) {
        key = make_key(user, "");
        u = g_hash_table_lookup(d->file_users, key);
        g_free(key);
    }
    if (!u) return false;
    out->status = DIRECTORY_FOUND;
    out->source = DIRECTORY_FROM_FILE;
    out->password = g_strdup(u->password);
    out->a1_hash = g_strdup(u->a1_hash);
    out->why = "static file";
    out->expires = 0;
    return true;
}

static void deliver(struct directory_wait *w, const struct answer *a)
{
    struct directory_result r = {a->status, a->source, a->password, a->a1_hash, a->why};
    w->cb(&r, w->ud);
}

static gboolean on_idle_answer(gpointer data)
{
    struct directory_wait *w = data;
    struct directory *d = w->d;
    for (struct directory_wait **pp = &d->idle_waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    w->idle = 0;
    deliver(w, &w->ans);
    waiter_free(w);
    return G_SOURCE_REMOVE;
}

static struct directory_wait *answer_later(struct directory *d, const struct answer *a,
                                           directory_fn cb, void *ud)
{
    struct directory_wait *w = g_new0(struct directory_wait, 1);
    w->d = d;
    w->cb = cb;
    w->ud = ud;
    w->ans = *a; /* takes the strings */
    w->next = d->idle_waiters;
    d->idle_waiters = w;
    w->idle = g_idle_add(on_idle_answer, w);
    return w;
}

void directory_cancel(struct directory *d, struct directory_wait *w)
{
    if (!w) return;
    if (w->idle) {
        for (struct directory_wait **pp = &d->idle_waiters; *pp; pp = &(*pp)->next) {
            if (*pp == w) {
                *pp = w->next;
                break;
            }
        }
        g_source_remove(w->idle);
        waiter_free(w);
        return;
    }
    struct lookup *lk = w->lk;
    if (lk->delivering) { /* freed by the delivery loop */
        w->cancelled = true;
        return;
    }
    for (struct directory_wait **pp = &lk->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    waiter_free(w);
}

/* The HTTP request is over (st: what it said). Completes every waiter and frees lk. */
static void lookup_done(struct lookup *lk, enum directory_status st, char *password, char *a1,
                        gint64 expires, const char *why)
{
    struct directory *d = lk->d;
    if (!d) { /* the directory is gone */
        g_free(password);
        g_free(a1);
        lookup_free(lk);
        return;
    }
    g_hash_table_remove(d->inflight, lk->key);
    struct answer a = {st, DIRECTORY_FROM_URL, password, a1, why, expires};
    if (st != DIRECTORY_FOUND) {
        struct answer f;
        if (file_get(d, lk->user, lk->domain, &f)) {
            LOG(LOG_DEBUG, "directory", "user=%s domain=%s msg=\"url: %s; the static file has it\"",
                lk->user_log, lk->domain, why);
            answer_clear(&a);
            a = f;
        }
    }
    LOG(a.status == DIRECTORY_TEMPFAIL ? LOG_WARN : LOG_DEBUG, "directory",
        "user=%s domain=%s msg=\"lookup done\" status=%s source=%s why=\"%s\"", lk->user_log,
        lk->domain,
        a.status == DIRECTORY_FOUND       ? "found"
        : a.status == DIRECTORY_NOT_FOUND ? "not-found"
                                          : "tempfail",
        a.source == DIRECTORY_FROM_FILE ? "file" : "url", a.why);
    cache_put(d, lk->key, &a);
    lk->delivering = true;
    for (struct directory_wait *w = lk->waiters; w; w = w->next)
        if (!w->cancelled) deliver(w, &a);
    for (struct directory_wait *w = lk->waiters, *next; w; w = next) {
        next = w->next;
        waiter_free(w);
    }
    lk->waiters = NULL;
    answer_clear(&a);
    lookup_free(lk);
}

static void http_failed(struct lookup *lk, GError *error, const char *why)
{
    const char *w = lk->timed_out ? "timeout" : why;
    if (lk->d)
        LOG_RATELIMITED(LOG_WARN, "directory",
                        "user=%s msg=\"directory request failed\" why=%s "
                        "error=\"%s\"",
                        lk->user_log, w, error ? error->message : "");
    if (error) g_error_free(error);
    lookup_done(lk, DIRECTORY_TEMPFAIL, NULL, NULL, 0, w);
}

static void on_read(GObject *src, GAsyncResult *res, gpointer data)
{
    struct lookup *lk = data;
    GError *error = NULL;
    GBytes *chunk = g_input_stream_read_bytes_finish(G_INPUT_STREAM(src), res, &error);
    if (!chunk) {
        http_failed(lk, error, "read error");
        return;
    }
    gsize n = 0;
    const guint8 *p = g_bytes_get_data(chunk, &n);
    if (n == 0) { /* end of the body */
        g_bytes_unref(chunk);
        char *password = NULL, *a1 = NULL;
        gint64 expires = 0;
        const char *err = "not found";
        enum directory_status st =
            directory_parse_xml((const char *)lk->body->data, lk->body->len, lk->user, lk->domain,
                                &password, &a1, &expires, &err);
        lookup_done(lk, st, password, a1, expires, st == DIRECTORY_FOUND ? "found" : err);
        return;
    }
    if (lk->body->len + n > RESPONSE_MAX_BYTES) {
        g_bytes_unref(chunk);
        http_failed(lk, NULL, "answer too large");
        return;
    }
    g_byte_array_append(lk->body, p, (guint)n);
    g_bytes_unref(chunk);
    g_input_stream_read_bytes_async(lk->stream, READ_CHUNK, G_PRIORITY_DEFAULT, lk->cancel, on_read,
                                    lk);
}

static void on_sent(GObject *src, GAsyncResult *res, gpointer data)
{
    struct lookup *lk = data;
    GError *error = NULL;
    GInputStream *stream = soup_session_send_finish(SOUP_SESSION(src), res, &error);
    if (!stream) {
        http_failed(lk, error, "connection error");
        return;
    }
    lk->stream = stream;
    guint status = soup_message_get_status(lk->msg);
    if (status == SOUP_STATUS_NOT_FOUND) { /* CppComet's gateway: unknown user */
        lookup_done(lk, DIRECTORY_NOT_FOUND, NULL, NULL, 0, "HTTP 404");
        return;
    }
    if (status != SOUP_STATUS_OK) {
        char why[64];
        snprintf(why, sizeof why, "HTTP %u", status);
        if (lk->d)
            LOG_RATELIMITED(LOG_WARN, "directory", "user=%s msg=\"directory answered %s\"",
                            lk->user_log, why);
        lookup_done(lk, DIRECTORY_TEMPFAIL, NULL, NULL, 0,
                    status >= 500 ? "HTTP 5xx" : "HTTP error");
        return;
    }
    lk->body = g_byte_array_new();
    g_input_stream_read_bytes_async(stream, READ_CHUNK, G_PRIORITY_DEFAULT, lk->cancel, on_read,
                                    lk);
}

static gboolean on_timeout(gpointer data)
{
    struct lookup *lk = data;
    lk->timer = 0;
    lk->timed_out = true;
    g_cancellable_cancel(lk->cancel); /* the pending operation ends with G_IO_ERROR_CANCELLED */
    return G_SOURCE_REMOVE;
}

static gboolean on_bad_url(gpointer data)
{
    struct lookup *lk = data;
    lk->timer = 0;
    http_failed(lk, NULL, "bad url");
    return G_SOURCE_REMOVE;
}

static void lookup_start(struct directory *d, struct lookup *lk, const struct directory_query *q)
{
    GString *form = g_string_new(NULL);
    directory_build_form(form, q, d->hostname, d->core_uuid, d->ipv4, ++d->seq, g_get_real_time());
    if (d->use_get) {
        char *url = g_strdup_printf("%s%c%s", d->url, strchr(d->url, '?') ? '&' : '?', form->str);
        lk->msg = soup_message_new("GET", url);
        g_free(url);
    } else {
        lk->msg = soup_message_new("POST", d->url);
    }
    if (!lk->msg) { /* an unparsable URL: said from the main loop */
        g_string_free(form, TRUE);
        lk->timer = g_idle_add(on_bad_url, lk);
        return;
    }
    SoupMessageHeaders *h = soup_message_get_request_headers(lk->msg);
    if (d->basic) soup_message_headers_replace(h, "Authorization", d->basic);
    soup_message_headers_replace(h, "Accept", "*/*");
    if (!d->use_get) {
        GBytes *body = g_bytes_new(form->str, form->len);
        soup_message_set_request_body_from_bytes(lk->msg, "application/x-www-form-urlencoded",
                                                 body);
        g_bytes_unref(body);
    }
    g_string_free(form, TRUE);
    lk->timer = g_timeout_add(d->timeout_ms, on_timeout, lk);
    soup_session_send_async(d->session, lk->msg, G_PRIORITY_DEFAULT, lk->cancel, on_sent, lk);
}

struct directory_wait *directory_lookup(struct directory *d, const struct directory_query *q,
                                        directory_fn cb, void *ud)
{
    char *key = make_key(q->user, q->domain);
    struct answer a = {0};
    if (cache_get(d, key, &a)) {
        g_free(key);
        a.why = "cached";
        return answer_later(d, &a, cb, ud);
    }
    if (!d->url) {
        g_free(key);
        if (!file_get(d, q->user, q->domain, &a)) {
            a.status = DIRECTORY_NOT_FOUND;
            a.source = DIRECTORY_FROM_FILE;
            a.why = d->file_users ? "not in the static file" : "no directory configured";
        }
        return answer_later(d, &a, cb, ud);
    }
    struct directory_wait *w = g_new0(struct directory_wait, 1);
    w->d = d;
    w->cb = cb;
    w->ud = ud;
    struct lookup *lk = g_hash_table_lookup(d->inflight, key);
    if (lk) { /* coalesced: one request answers every waiter */
        g_free(key);
    } else {
        lk = g_new0(struct lookup, 1);
        lk->d = d;
        lk->key = key;
        lk->user = g_strdup(q->user);
        char quoted[160];
        lk->user_log =
            g_strdup(log_quote(quoted, sizeof quoted, q->user, (unsigned)strlen(q->user)));
        lk->domain = g_strdup(q->domain);
        lk->cancel = g_cancellable_new();
        g_hash_table_insert(d->inflight, lk->key, lk);
        lookup_start(d, lk, q);
    }
    w->lk = lk;
    /* append: answered in arrival order */
    struct directory_wait **pp = &lk->waiters;
    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
    return w;
}
