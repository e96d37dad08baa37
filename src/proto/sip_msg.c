/* sip_msg: the SIP message layer on libosip2; see sip_msg.h. libosip2 is used for what it does
 * well (the grammar of Via, From/To, URIs, CSeq, Authorization) and is kept away from what it
 * does badly: it works on C strings (a NUL truncates), treats a bare CR as a line end, prints
 * errors to stdout, crashes without parser_init(), accepts SIP/3.0, tel: URIs, "CSeq: abc" and an
 * empty Call-ID, and parses bodies (multipart included) by its own Content-Length reading. So a
 * scan of ours frames the message first and hands libosip2 a normalised copy of the head without
 * the body headers; everything a UAS relies on is validated here afterwards. The message's
 * strings live in one arena, freed with it. */
/* libosip2 first: its osip_const.h defines SIP_OK as 200, which proto/sip_msg.h then drops */
#include <osipparser2/osip_parser.h>
#include <osipparser2/osip_port.h>

#include "proto/sip_msg.h"

#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* What the builders need from a parsed message, serialised once at parse time. */
struct sip_msg_priv {
    struct arena arena;
    char **vias; /* every Via value, in order */
    size_t n_vias;
    char **record_routes;
    size_t n_record_routes;
    const char *from, *to, *call_id, *cseq;
};

/* ---- global init ---------------------------------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT; /* the one mutable global: a once flag */

static void osip_quiet(const char *file, int line, osip_trace_level_t level, const char *fmt,
                       va_list ap)
{
}

static void global_init_once(void)
{
    parser_init();
    /* Disabling the levels alone does not silence Debian's build: without a trace function it
     * prints "| ERROR | ..." lines for every malformed message. */
    osip_trace_initialize_func(TRACE_LEVEL0, osip_quiet);
    for (int level = TRACE_LEVEL0; level < END_TRACE_LEVEL; level++)
        osip_trace_disable_level((osip_trace_level_t)level);
}

void sip_global_init(void)
{
    pthread_once(&init_once, global_init_once);
}

/* ---- small helpers -------------------------------------------------------------------------- */

static bool is_token_char(unsigned char c)
{
    return isalnum(c) || strchr("-.!%*_+`'~", c) != NULL;
}

static bool is_token(const char *s)
{
    if (!s || !*s) return false;
    for (; *s; s++)
        if (!is_token_char((unsigned char)*s)) return false;
    return true;
}

/* No CR, LF or other control byte but HTAB: safe inside one header line. */
static bool is_line_text(const char *s)
{
    if (!s) return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    return true;
}

/* Digits only, saturating at max. */
static bool parse_uint(const char *s, uint64_t max, uint64_t *v)
{
    if (!s || !*s) return false;
    uint64_t n = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        n = n * 10 + (uint64_t)(*s - '0');
        if (n > max) n = max + 1; /* keeps going to validate the rest, no overflow */
    }
    *v = n > max ? max : n;
    return true;
}

static bool parse_uint_strict(const char *s, uint64_t max, uint64_t *v)
{
    uint64_t n;
    if (!parse_uint(s, max + 1, &n) || n > max) return false;
    *v = n;
    return true;
}

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int random_hex(char *out, size_t nbytes)
{
    uint8_t rnd[32];
    if (nbytes > sizeof rnd || RAND_bytes(rnd, (int)nbytes) != 1) return SIP_ERROR;
    hex_encode(rnd, nbytes, out);
    return SIP_OK;
}

static void buf_str(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

static void buf_header(struct buf *b, const char *name, const char *value)
{
    buf_str(b, name);
    buf_append(b, ": ", 2);
    buf_str(b, value);
    buf_append(b, "\r\n", 2);
}

/* Copies a libosip2-allocated string into the arena and frees it. NULL stays NULL. */
static const char *adopt(struct arena *a, char *s)
{
    if (!s) return NULL;
    char *c = arena_strndup(a, s, strlen(s));
    osip_free(s);
    return c;
}

static const char *keep(struct arena *a, const char *s)
{
    return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

/* A quoted-string's content with quoted-pairs undone; anything else as is. */
static const char *unquote(struct arena *a, const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s);
    if (n < 2 || s[0] != '"' || s[n - 1] != '"') return arena_strndup(a, s, n);
    char *out = arena_alloc(a, n - 1);
    size_t o = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        if (s[i] == '\\' && i + 2 < n) i++;
        out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}

static const char *gen_param(osip_list_t *params, const char *name)
{
    osip_generic_param_t *p = NULL;
    if (osip_generic_param_get_byname(params, (char *)name, &p) != 0 || !p) return NULL;
    return p->gvalue ? p->gvalue : "";
}

/* ---- framing: our scan before libosip2 ------------------------------------------------------ */

struct frame {
    size_t head_end;  /* offset just past the empty line */
    long content_len; /* -1 when absent */
    char *osip_head;  /* (transfer full, xmalloc) the head for libosip2: CRLF lines, no
                       * Content-Type / Content-Length */
    size_t osip_len;
    char *content_type;   /* (transfer full, nullable) the Content-Type value, unfolded */
    const char *clen_err; /* a Content-Length we could not read (bad, duplicate, folded): the
                           * message is still framed, with the body all the rest, so a request
                           * whose Via, From, To, Call-ID and CSeq parse gets a 400 naming it */
};

static bool name_is(const char *p, size_t n, const char *long_name, const char *compact)
{
    return (n == strlen(long_name) && strncasecmp(p, long_name, n) == 0) ||
           (n == strlen(compact) && strncasecmp(p, compact, n) == 0);
}

static int frame_message(const char *buf, size_t len, size_t *start, struct frame *f,
                         const char **err)
{
    size_t p = 0;
    while (p < len && (buf[p] == '\r' || buf[p] == '\n'))
        p++; /* CRLF keep-alives before the start line (RFC 3261 §7.5) */
    if (p == len) {
        *err = "empty message";
        return SIP_ERROR;
    }
    *start = p;
    /* lines ending in a bare LF grow by one byte (CRLF), at most SIP_MAX_LINES of them */
    f->osip_head = xmalloc(len - p + SIP_MAX_LINES + 4);
    size_t o = 0;
    enum { NONE, COPY, CTYPE, CLEN } cur = NONE;
    size_t ct_len = 0;
    size_t lines = 0;
    for (;;) {
        size_t eol = p;
        while (eol < len && buf[eol] != '\n') {
            unsigned char c = (unsigned char)buf[eol];
            if (c == '\r' && !(eol + 1 < len && buf[eol + 1] == '\n')) {
                *err = "bare CR in the head";
                return SIP_ERROR;
            }
            if (c == 0) {
                *err = "NUL byte in the head";
                return SIP_ERROR;
            }
            if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
                *err = "control byte in the head";
                return SIP_ERROR;
            }
            eol++;
        }
        if (eol == len) {
            *err = "no empty line after the headers";
            return SIP_ERROR;
        }
        size_t line_len = eol - p;
        if (line_len && buf[eol - 1] == '\r') line_len--;
        const char *line = buf + p;
        p = eol + 1;
        if (++lines > SIP_MAX_LINES) {
            *err = "too many header lines";
            return SIP_ERROR;
        }
        if (line_len == 0) break;
        if (cur == NONE) { /* the start line */
            memcpy(f->osip_head + o, line, line_len);
            o += line_len;
            memcpy(f->osip_head + o, "\r\n", 2);
            o += 2;
            cur = COPY;
            continue;
        }
        if (line[0] == ' ' || line[0] == '\t') {
            /* a folded continuation of the last header: unfolded here to one SP (RFC 3261
             * §7.3.1), so libosip2 never sees folding */
            while (line_len && (line[0] == ' ' || line[0] == '\t'))
                line++, line_len--;
            if (cur == CLEN) {
                if (!f->clen_err) f->clen_err = "folded Content-Length";
                f->content_len = -1;
                continue;
            }
            if (cur == CTYPE) {
                f->content_type[ct_len++] = ' ';
                memcpy(f->content_type + ct_len, line, line_len);
                ct_len += line_len;
                f->content_type[ct_len] = '\0';
                continue;
            }
            if (cur == COPY && o >= 2) { /* join the line already copied */
                o -= 2;
                f->osip_head[o++] = ' ';
                memcpy(f->osip_head + o, line, line_len);
                o += line_len;
                memcpy(f->osip_head + o, "\r\n", 2);
                o += 2;
            }
            continue;
        } else {
            const char *colon = memchr(line, ':', line_len);
            if (!colon) {
                *err = "header line without a colon";
                return SIP_ERROR;
            }
            size_t nl = (size_t)(colon - line);
            while (nl && (line[nl - 1] == ' ' || line[nl - 1] == '\t'))
                nl--;
            if (nl == 0) {
                *err = "empty header name";
                return SIP_ERROR;
            }
            const char *v = colon + 1;
            size_t vl = line_len - (size_t)(v - line);
            while (vl && (*v == ' ' || *v == '\t'))
                v++, vl--;
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (name_is(line, nl, "content-length", "l")) {
                cur = CLEN;
                if (f->clen_err) continue;
                if (f->content_len >= 0) {
                    f->clen_err = "duplicate Content-Length";
                    f->content_len = -1;
                    continue;
                }
                uint64_t n = 0;
                char tmp[16];
                bool ok = vl > 0 && vl < sizeof tmp;
                if (ok) {
                    memcpy(tmp, v, vl);
                    tmp[vl] = '\0';
                    ok = parse_uint_strict(tmp, UINT32_MAX, &n);
                }
                if (!ok) {
                    f->clen_err = "bad Content-Length";
                    continue;
                }
                f->content_len = (long)n;
                continue;
            }
            if (name_is(line, nl, "content-type", "c")) {
                if (f->content_type) {
                    *err = "duplicate Content-Type";
                    return SIP_ERROR;
                }
                f->content_type = xmalloc(len - (size_t)(v - buf) + 1); /* room for continuations */
                memcpy(f->content_type, v, vl);
                ct_len = vl;
                f->content_type[ct_len] = '\0';
                cur = CTYPE;
                continue;
            }
            cur = COPY;
        }
        memcpy(f->osip_head + o, line, line_len);
        o += line_len;
        memcpy(f->osip_head + o, "\r\n", 2);
        o += 2;
    }
    if (cur == NONE) {
        *err = "no start line";
        return SIP_ERROR;
    }
    memcpy(f->osip_head + o, "\r\n", 2);
    o += 2;
    f->osip_head[o] = '\0';
    f->osip_len = o;
    f->head_end = p;
    return SIP_OK;
}

/* ---- parse ---------------------------------------------------------------------------------- */

static void name_addr_fields(struct arena *a, osip_from_t *h, const char **display,
                             const char **uri, const char **user, const char **host,
                             const char **tag)
{
    *display = unquote(a, h->displayname);
    char *s = NULL;
    if (h->url && osip_uri_to_str(h->url, &s) == 0) *uri = adopt(a, s);
    if (h->url) {
        *user = keep(a, h->url->username);
        *host = keep(a, h->url->host);
    }
    *tag = keep(a, gen_param(&h->gen_params, "tag"));
}

static void read_auth(struct arena *a, osip_message_t *sip, struct sip_auth *au)
{
    osip_authorization_t *h = NULL;
    bool proxy = false;
    if (osip_message_get_authorization(sip, 0, &h) < 0 || !h) {
        h = NULL;
        if (osip_message_get_proxy_authorization(sip, 0, &h) < 0) h = NULL;
        proxy = h != NULL;
    }
    if (!h || !h->auth_type || strcasecmp(h->auth_type, "Digest") != 0) return;
    au->present = true;
    au->proxy = proxy;
    au->username = unquote(a, h->username);
    au->realm = unquote(a, h->realm);
    au->nonce = unquote(a, h->nonce);
    au->uri = unquote(a, h->uri);
    au->response = unquote(a, h->response);
    au->algorithm = unquote(a, h->algorithm);
    au->qop = unquote(a, h->message_qop);
    au->nc = unquote(a, h->nonce_count);
    au->cnonce = unquote(a, h->cnonce);
    au->opaque = unquote(a, h->opaque);
}

/* libosip2 can print what it cannot read back (the Contact "<sip:a@h: ;transport=ws>" prints as
 * "sip:a@h:;transport=ws", which it then refuses): what we echo or send must parse again. */
/* A Via as libosip2 prints it reads back as that one Via. A printed comma is refused: a receiver
 * splits a Via line at commas, while libosip2 reads one Via over a comma after a stray quote
 * ('S"IP/2.0/WSS a, SIP/2.0/UDP b;branch=z9hG4bK2': found by the fuzzer), so our response's top
 * Via would lose its branch. */
/* The reparse checks below take libosip2's printed form of a header and require that it parses
 * and prints back to the same text: a value that drifts on each round (`<sip:@@h>` printed as
 * `<sip:@h>`, which no longer parses once a tag is added) would make a response we build for
 * the request unreadable to its sender. A fixed point prints the same however often it is
 * copied. */
static bool via_reparses(const char *s)
{
    if (strchr(s, ',') || !is_line_text(s)) return false;
    osip_via_t *v = NULL;
    if (osip_via_init(&v) != 0) abort();
    char *again = NULL;
    bool ok = osip_via_parse(v, s) == 0 && v->host && *v->host && osip_via_to_str(v, &again) == 0 &&
              again && strcmp(again, s) == 0;
    osip_free(again);
    osip_via_free(v);
    return ok;
}

static bool name_addr_reparses(const char *s)
{
    osip_from_t *h = NULL;
    if (osip_from_init(&h) != 0) abort();
    char *again = NULL;
    bool ok = osip_from_parse(h, s) == 0 && h->url && h->url->scheme &&
              osip_from_to_str(h, &again) == 0 && again && strcmp(again, s) == 0;
    osip_free(again);
    osip_from_free(h);
    return ok;
}

static bool call_id_reparses(const char *s)
{
    osip_call_id_t *c = NULL;
    if (osip_call_id_init(&c) != 0) abort();
    bool ok = osip_call_id_parse(c, s) == 0 && c->number;
    osip_call_id_free(c);
    return ok;
}

/* A sip: or sips: URI with a host that libosip2 reads back: a Request-URI of ours. */
static bool sip_uri_reparses(const char *s)
{
    osip_uri_t *u = NULL;
    if (osip_uri_init(&u) != 0) abort();
    bool ok = osip_uri_parse(u, s) == 0 && u->scheme &&
              (strcasecmp(u->scheme, "sip") == 0 || strcasecmp(u->scheme, "sips") == 0) &&
              u->host && *u->host;
    osip_uri_free(u);
    return ok && is_line_text(s) && !strchr(s, ' ');
}

/* A quoted-string: '"', qdtext or quoted-pairs, '"'. */
static bool is_quoted_string(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || s[0] != '"' || s[n - 1] != '"') return false;
    for (size_t i = 1; i + 1 < n; i++) {
        if (s[i] == '\\') {
            if (i + 2 >= n) return false; /* would escape the closing quote */
            i++;
        } else if (s[i] == '"') {
            return false;
        }
    }
    return true;
}

/* generic-param = token [ "=" ( token / host / quoted-string ) ] (RFC 3261 §25.1). libosip2
 * keeps what it does not understand, an unbalanced quote included ("once=\"5"), and prints it
 * back; a ";tag=" or ";received=" we append after it would land inside the quotes. */
static bool params_ok(const osip_list_t *params)
{
    int n = osip_list_size(params);
    for (int i = 0; i < n; i++) {
        const osip_generic_param_t *p = osip_list_get(params, i);
        if (!p || !is_token(p->gname)) return false;
        if (!p->gvalue || !*p->gvalue) continue;
        if (p->gvalue[0] == '"') {
            if (!is_quoted_string(p->gvalue)) return false;
            continue;
        }
        for (const char *c = p->gvalue; *c; c++)
            if (!is_token_char((unsigned char)*c) && !strchr(":[]", *c)) return false;
    }
    return true;
}

/* Serialises what a response copies. false when something is missing or will not print. */
static bool keep_response_headers(struct sip_msg *m, osip_message_t *sip, const char **err)
{
    struct sip_msg_priv *pv = m->priv_;
    struct arena *a = &pv->arena;
    int n = osip_list_size(&sip->vias);
    if (n <= 0) {
        *err = "no Via";
        return false;
    }
    if (!sip->from || !sip->from->url) {
        *err = "no From";
        return false;
    }
    if (!sip->to || !sip->to->url) {
        *err = "no To";
        return false;
    }
    if (!sip->call_id || !sip->call_id->number) {
        *err = "no Call-ID";
        return false;
    }
    if (!sip->cseq || !sip->cseq->number || !sip->cseq->method) {
        *err = "no CSeq";
        return false;
    }
    pv->vias = arena_alloc(a, sizeof(char *) * (size_t)n);
    for (int i = 0; i < n; i++) {
        osip_via_t *v = osip_list_get(&sip->vias, i);
        char *s = NULL;
        if (!v || !v->host || !params_ok(&v->via_params) || osip_via_to_str(v, &s) != 0 || !s) {
            osip_free(s);
            *err = "bad Via";
            return false;
        }
        pv->vias[pv->n_vias++] = (char *)adopt(a, s);
        if (!via_reparses(pv->vias[pv->n_vias - 1])) {
            *err = "Via that does not print back";
            return false;
        }
    }
    n = osip_list_size(&sip->record_routes);
    if (n > 0) pv->record_routes = arena_alloc(a, sizeof(char *) * (size_t)n);
    for (int i = 0; i < n; i++) {
        osip_record_route_t *rr = osip_list_get(&sip->record_routes, i);
        char *s = NULL;
        if (!rr || osip_record_route_to_str(rr, &s) != 0 || !s) {
            osip_free(s);
            *err = "bad Record-Route";
            return false;
        }
        pv->record_routes[pv->n_record_routes++] = (char *)adopt(a, s);
    }
    if (!params_ok(&sip->from->gen_params) || !params_ok(&sip->to->gen_params)) {
        *err = "bad From or To parameter";
        return false;
    }
    char *s = NULL;
    if (osip_from_to_str(sip->from, &s) != 0 || !s) goto bad;
    pv->from = adopt(a, s);
    s = NULL;
    if (osip_to_to_str(sip->to, &s) != 0 || !s) goto bad;
    pv->to = adopt(a, s);
    s = NULL;
    if (osip_call_id_to_str(sip->call_id, &s) != 0 || !s) goto bad;
    pv->call_id = adopt(a, s);
    s = NULL;
    if (osip_cseq_to_str(sip->cseq, &s) != 0 || !s) goto bad;
    pv->cseq = adopt(a, s);
    s = NULL; /* adopted: freed already */
    /* libosip2 parsed these from CRLF-free lines; still, never let a value break a line */
    if (!is_line_text(pv->from) || !is_line_text(pv->to) || !is_line_text(pv->call_id) ||
        !is_line_text(pv->cseq) || !name_addr_reparses(pv->from) || !name_addr_reparses(pv->to) ||
        !call_id_reparses(pv->call_id))
        goto bad;
    return true;
bad:
    osip_free(s);
    *err = "unprintable From/To/Call-ID/CSeq";
    return false;
}

/* A sip: or sips: URI (what a Request-URI of ours may be). */
static bool is_sip_uri(const char *u)
{
    return u && (strncasecmp(u, "sip:", 4) == 0 || strncasecmp(u, "sips:", 5) == 0);
}

static int fail(struct sip_msg *m, bool answerable, int status, const char *reason,
                struct sip_msg **out, const char **err)
{
    *err = reason;
    if (answerable) {
        m->reject_status = status;
        *out = m;
    } else {
        sip_msg_free(m);
        *out = NULL;
    }
    return SIP_ERROR;
}

static bool read_expires(const char *s, long *out)
{
    uint64_t v;
    if (!parse_uint(s, UINT32_MAX, &v)) return false;
    *out = (long)v;
    return true;
}

int sip_parse(const char *buf, size_t len, size_t max_bytes, struct sip_msg **out, const char **err)
{
    *out = NULL;
    *err = NULL;
    if (!max_bytes) max_bytes = SIP_DEFAULT_MAX_BYTES;
    if (!buf || len == 0) {
        *err = "empty message";
        return SIP_ERROR;
    }
    if (len > max_bytes) {
        *err = "message larger than the limit";
        return SIP_ERROR;
    }
    sip_global_init();

    struct frame f = {.content_len = -1};
    size_t start = 0;
    if (frame_message(buf, len, &start, &f, err) != SIP_OK) {
        xfree(f.osip_head);
        xfree(f.content_type);
        return SIP_ERROR;
    }

    struct sip_msg *m = xcalloc(1, sizeof *m);
    struct sip_msg_priv *pv = xcalloc(1, sizeof *pv);
    m->priv_ = pv;
    arena_init(&pv->arena);
    struct arena *a = &pv->arena;
    m->max_forwards = -1;
    m->expires = -1;
    m->expires_header = -1;

    osip_message_t *sip = NULL;
    if (osip_message_init(&sip) != 0) abort(); /* out of memory: fatal by policy */
    m->osip = sip;
    int rc = osip_message_parse(sip, f.osip_head, f.osip_len);
    xfree(f.osip_head);
    char *ctype = f.content_type;
    if (rc != 0) {
        xfree(ctype);
        return fail(m, false, 0, "libosip2 could not parse the message", out, err);
    }

    m->is_request = sip->status_code == 0 && sip->sip_method != NULL;
    if (m->is_request) {
        m->method = keep(a, sip->sip_method);
        if (!is_token(m->method)) {
            xfree(ctype);
            return fail(m, false, 0, "bad method", out, err);
        }
    }
    if (!m->is_request) {
        if (sip->status_code < 100 || sip->status_code > 699) {
            xfree(ctype);
            return fail(m, false, 0, "bad status code", out, err);
        }
        m->status = sip->status_code;
        m->reason = keep(a, sip->reason_phrase ? sip->reason_phrase : "");
    }
    if (!keep_response_headers(m, sip, err)) {
        xfree(ctype);
        return fail(m, false, 0, *err, out, err);
    }
    bool req = m->is_request; /* a request with the five headers can be answered */
    if (f.clen_err) {
        xfree(ctype);
        return fail(m, req, 400, f.clen_err, out, err);
    }

    /* body and its type */
    size_t avail = len - f.head_end;
    size_t body_len = avail;
    if (f.content_len >= 0) {
        if ((size_t)f.content_len > avail) {
            xfree(ctype);
            return fail(m, req, 400, "body shorter than Content-Length", out, err);
        }
        body_len = (size_t)f.content_len; /* extra bytes are discarded (RFC 3261 §18.3) */
    }
    if (ctype) {
        osip_content_type_t *ct = NULL;
        if (osip_content_type_init(&ct) != 0) abort();
        int crc = osip_content_type_parse(ct, ctype);
        xfree(ctype);
        if (crc != 0 || !ct->type || !ct->subtype || !is_token(ct->type) ||
            !is_token(ct->subtype)) {
            osip_content_type_free(ct);
            return fail(m, req, 400, "bad Content-Type", out, err);
        }
        size_t tl = strlen(ct->type), sl = strlen(ct->subtype);
        char *t = arena_alloc(a, tl + sl + 2);
        for (size_t i = 0; i < tl; i++)
            t[i] = (char)tolower((unsigned char)ct->type[i]);
        t[tl] = '/';
        for (size_t i = 0; i < sl; i++)
            t[tl + 1 + i] = (char)tolower((unsigned char)ct->subtype[i]);
        t[tl + sl + 1] = '\0';
        osip_content_type_free(ct);
        m->content_type = t;
        if (strncmp(t, "multipart/", 10) == 0)
            return fail(m, req, 415, "multipart bodies are not supported", out, err);
    }
    if (body_len) {
        m->body = arena_strndup(a, buf + f.head_end, body_len);
        m->body_len = body_len;
    }

    /* start line */
    if (req) {
        if (!sip->sip_version || strcasecmp(sip->sip_version, "SIP/2.0") != 0)
            return fail(m, true, 505, "SIP version not supported", out, err);
        osip_uri_t *u = sip->req_uri;
        if (!u || !u->scheme ||
            (strcasecmp(u->scheme, "sip") != 0 && strcasecmp(u->scheme, "sips") != 0))
            return fail(m, true, 416, "Request-URI scheme is not sip or sips", out, err);
        if (!u->host || !*u->host) return fail(m, true, 400, "Request-URI without host", out, err);
        char *s = NULL;
        if (osip_uri_to_str(u, &s) != 0 || !s) {
            osip_free(s);
            return fail(m, true, 400, "bad Request-URI", out, err);
        }
        m->ruri = adopt(a, s);
        m->ruri_scheme = keep(a, u->scheme);
        m->ruri_user = keep(a, u->username);
        m->ruri_host = keep(a, u->host);
    }

    /* From, To, Call-ID, CSeq */
    name_addr_fields(a, sip->from, &m->from_display, &m->from_uri, &m->from_user, &m->from_host,
                     &m->from_tag);
    name_addr_fields(a, sip->to, &m->to_display, &m->to_uri, &m->to_user, &m->to_host, &m->to_tag);
    m->call_id = pv->call_id;
    uint64_t cseq = 0;
    if (!parse_uint_strict(sip->cseq->number, UINT32_MAX, &cseq) || cseq == 0)
        return fail(m, req, 400, "bad CSeq number", out, err);
    m->cseq = (uint32_t)cseq;
    m->cseq_method = keep(a, sip->cseq->method);
    if (!is_token(m->cseq_method)) return fail(m, req, 400, "bad CSeq method", out, err);
    if (req && strcmp(m->cseq_method, m->method) != 0)
        return fail(m, true, 400, "CSeq method differs from the request method", out, err);
    if (!req) m->method = m->cseq_method;
    if (!m->from_uri || !m->to_uri) return fail(m, req, 400, "bad From or To URI", out, err);
    if (!m->from_tag || !*m->from_tag) return fail(m, req, 400, "From without tag", out, err);
    bool to_tag_needed =
        req ? (strcmp(m->method, "BYE") == 0 || strcmp(m->method, "ACK") == 0) : m->status > 100;
    if (to_tag_needed && (!m->to_tag || !*m->to_tag))
        return fail(m, req, 400, "To without tag", out, err);
    if (m->to_tag && !*m->to_tag) return fail(m, req, 400, "empty To tag", out, err);

    /* top Via */
    osip_via_t *via = osip_list_get(&sip->vias, 0);
    if (!via->version || strcasecmp(via->version, "2.0") != 0 || !via->protocol)
        return fail(m, req, 400, "bad Via protocol", out, err);
    m->via_transport = keep(a, via->protocol);
    m->via_host = keep(a, via->host);
    if (via->port) {
        uint64_t port;
        if (!parse_uint_strict(via->port, 65535, &port))
            return fail(m, req, 400, "bad Via port", out, err);
        m->via_port = (int)port;
    }
    m->via_rport = gen_param(&via->via_params, "rport") != NULL;
    m->via_branch = keep(a, gen_param(&via->via_params, "branch"));
    if (!m->via_branch || !*m->via_branch) return fail(m, req, 400, "Via without branch", out, err);

    /* Max-Forwards, Expires, Contact, User-Agent */
    osip_header_t *h = NULL;
    if (osip_message_get_max_forwards(sip, 0, &h) >= 0 && h) {
        uint64_t mf;
        if (!parse_uint_strict(h->hvalue, 255, &mf))
            return fail(m, req, 400, "bad Max-Forwards", out, err);
        m->max_forwards = (int)mf;
    } else if (req) {
        return fail(m, true, 400, "no Max-Forwards", out, err);
    }
    h = NULL;
    if (osip_message_get_expires(sip, 0, &h) >= 0 && h) {
        if (!read_expires(h->hvalue, &m->expires_header))
            return fail(m, req, 400, "bad Expires", out, err);
    }
    int nc = osip_list_size(&sip->contacts);
    if (nc > SIP_MAX_CONTACTS) return fail(m, req, 400, "too many Contacts", out, err);
    for (int i = 0; i < nc; i++) {
        osip_contact_t *c = osip_list_get(&sip->contacts, i);
        struct sip_contact *sc = &m->contacts[m->n_contacts];
        sc->expires = -1;
        if (!c) continue;
        if (!c->url) {
            if (c->displayname && strcmp(c->displayname, "*") == 0) {
                sc->uri = "*";
                m->n_contacts++;
                continue;
            }
            return fail(m, req, 400, "bad Contact", out, err);
        }
        char *s = NULL;
        if (osip_uri_to_str(c->url, &s) != 0 || !s) {
            osip_free(s);
            return fail(m, req, 400, "bad Contact", out, err);
        }
        sc->uri = adopt(a, s);
        const char *e = gen_param(&c->gen_params, "expires");
        if (e && !read_expires(e, &sc->expires))
            return fail(m, req, 400, "bad Contact expires", out, err);
        m->n_contacts++;
    }
    if (m->n_contacts) {
        m->contact_uri = m->contacts[0].uri;
        m->expires = m->contacts[0].expires;
    }
    if (m->expires < 0) m->expires = m->expires_header;
    if (req && strcmp(m->method, "INVITE") == 0 &&
        (!is_sip_uri(m->contact_uri) || !sip_uri_reparses(m->contact_uri)))
        return fail(m, true, 400, "INVITE without a sip: or sips: Contact", out, err);
    m->user_agent = keep(a, sip_msg_header(m, "user-agent"));

    read_auth(a, sip, &m->auth);
    *out = m;
    return SIP_OK;
}

void sip_msg_free(struct sip_msg *m)
{
    if (!m) return;
    if (m->osip) osip_message_free(m->osip);
    struct sip_msg_priv *pv = m->priv_;
    if (pv) {
        arena_free(&pv->arena);
        xfree(pv);
    }
    xfree(m);
}

const char *sip_msg_header(const struct sip_msg *m, const char *name)
{
    struct sip_msg_priv *pv = m->priv_; /* the arena is the message's own cache */
    int n = osip_list_size(&m->osip->headers);
    size_t total = 0, count = 0;
    const char *only = NULL;
    for (int i = 0; i < n; i++) {
        osip_header_t *h = osip_list_get(&m->osip->headers, i);
        if (!h || !h->hname || strcasecmp(h->hname, name) != 0) continue;
        only = h->hvalue ? h->hvalue : "";
        total += strlen(only) + 2;
        count++;
    }
    if (count <= 1) return only;
    char *joined = arena_alloc(&pv->arena, total + 1);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        osip_header_t *h = osip_list_get(&m->osip->headers, i);
        if (!h || !h->hname || strcasecmp(h->hname, name) != 0) continue;
        if (o) {
            memcpy(joined + o, ", ", 2);
            o += 2;
        }
        size_t l = h->hvalue ? strlen(h->hvalue) : 0;
        if (l) memcpy(joined + o, h->hvalue, l);
        o += l;
    }
    joined[o] = '\0';
    return joined;
}

static bool is_ip_literal(const char *s)
{
    if (!s || !*s || strlen(s) > 64) return false;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s) && *s != '.' && *s != ':' && *s != '[' && *s != ']')
            return false;
    return true;
}

static void set_param(osip_list_t *params, const char *name, const char *value)
{
    osip_generic_param_t *p = NULL;
    if (osip_generic_param_get_byname(params, (char *)name, &p) == 0 && p) {
        osip_free(p->gvalue);
        p->gvalue = osip_strdup(value);
        return;
    }
    osip_generic_param_add(params, osip_strdup(name), osip_strdup(value));
}

int sip_msg_set_received(struct sip_msg *m, const char *ip, unsigned port, bool force_rport)
{
    if (!is_ip_literal(ip) || port > 65535) return SIP_ERROR;
    struct sip_msg_priv *pv = m->priv_;
    osip_via_t *via = osip_list_get(&m->osip->vias, 0);
    if (!via || !pv->n_vias) return SIP_ERROR;
    if (!via->host || strcasecmp(via->host, ip) != 0) set_param(&via->via_params, "received", ip);
    if (m->via_rport || force_rport) {
        char ps[8];
        snprintf(ps, sizeof ps, "%u", port);
        set_param(&via->via_params, "rport", ps);
    }
    char *s = NULL;
    if (osip_via_to_str(via, &s) != 0 || !s) {
        osip_free(s);
        return SIP_ERROR;
    }
    pv->vias[0] = (char *)adopt(&pv->arena, s);
    return SIP_OK;
}

/* ---- building ------------------------------------------------------------------------------- */

struct reason {
    int code;
    const char *text;
};

static const struct reason reasons[] = {
    {100, "Trying"},
    {180, "Ringing"},
    {181, "Call Is Being Forwarded"},
    {182, "Queued"},
    {183, "Session Progress"},
    {200, "OK"},
    {202, "Accepted"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Moved Temporarily"},
    {305, "Use Proxy"},
    {380, "Alternative Service"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {410, "Gone"},
    {413, "Request Entity Too Large"},
    {414, "Request-URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Unsupported URI Scheme"},
    {420, "Bad Extension"},
    {421, "Extension Required"},
    {423, "Interval Too Brief"},
    {480, "Temporarily Unavailable"},
    {481, "Call/Transaction Does Not Exist"},
    {482, "Loop Detected"},
    {483, "Too Many Hops"},
    {484, "Address Incomplete"},
    {485, "Ambiguous"},
    {486, "Busy Here"},
    {487, "Request Terminated"},
    {488, "Not Acceptable Here"},
    {491, "Request Pending"},
    {493, "Undecipherable"},
    {500, "Server Internal Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Server Time-out"},
    {505, "Version Not Supported"},
    {513, "Message Too Large"},
    {600, "Busy Everywhere"},
    {603, "Decline"},
    {604, "Does Not Exist Anywhere"},
    {606, "Not Acceptable"},
};

const char *sip_reason_phrase(int code)
{
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].code == code) return reasons[i].text;
    return "Unknown";
}

static bool extras_ok(const struct sip_header *extra, size_t n)
{
    if (n && !extra) return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_token(extra[i].name) || !extra[i].value || !*extra[i].value ||
            !is_line_text(extra[i].value))
            return false;
        if (strcasecmp(extra[i].name, "content-length") == 0 ||
            strcasecmp(extra[i].name, "content-type") == 0 || strcasecmp(extra[i].name, "l") == 0 ||
            strcasecmp(extra[i].name, "c") == 0)
            return false;
    }
    return true;
}

static void put_tail(struct buf *out, const struct sip_header *extra, size_t n_extra,
                     const char *content_type, const char *body, size_t body_len)
{
    for (size_t i = 0; i < n_extra; i++)
        buf_header(out, extra[i].name, extra[i].value);
    if (content_type) buf_header(out, "Content-Type", content_type);
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", body_len);
    buf_header(out, "Content-Length", cl);
    buf_append(out, "\r\n", 2);
    if (body_len) buf_append(out, body, body_len);
}

static bool content_ok(const char *content_type, const char *body, size_t body_len)
{
    if (content_type && (!*content_type || !is_line_text(content_type))) return false;
    return body_len == 0 || body != NULL;
}

int sip_tag_new(char out[SIP_TAG_SIZE])
{
    return random_hex(out, 8);
}

int sip_build_response(const struct sip_msg *req, int code, const char *reason, const char *to_tag,
                       const struct sip_header *extra, size_t n_extra, const char *content_type,
                       const char *body, size_t body_len, struct buf *out)
{
    if (!req || !req->is_request || code < 100 || code > 699) return SIP_ERROR;
    const struct sip_msg_priv *pv = req->priv_;
    if (!reason) reason = sip_reason_phrase(code);
    if (!is_line_text(reason) || !extras_ok(extra, n_extra) ||
        !content_ok(content_type, body, body_len))
        return SIP_ERROR;
    char tag[SIP_TAG_SIZE];
    bool add_tag = code > 100 && !req->to_tag; /* an empty one was refused by sip_parse */
    if (add_tag) {
        if (!to_tag) {
            if (sip_tag_new(tag) != SIP_OK) return SIP_ERROR;
            to_tag = tag;
        }
        if (!is_token(to_tag)) return SIP_ERROR;
    }

    char line[64];
    snprintf(line, sizeof line, "SIP/2.0 %d ", code);
    buf_str(out, line);
    buf_str(out, reason);
    buf_append(out, "\r\n", 2);
    for (size_t i = 0; i < pv->n_vias; i++)
        buf_header(out, "Via", pv->vias[i]);
    if (strcmp(req->method, "INVITE") == 0 && code > 100 && code < 300)
        for (size_t i = 0; i < pv->n_record_routes; i++)
            buf_header(out, "Record-Route", pv->record_routes[i]);
    buf_header(out, "From", pv->from);
    buf_str(out, "To: ");
    buf_str(out, pv->to);
    if (add_tag) {
        buf_str(out, ";tag=");
        buf_str(out, to_tag);
    }
    buf_append(out, "\r\n", 2);
    buf_header(out, "Call-ID", pv->call_id);
    buf_header(out, "CSeq", pv->cseq);
    put_tail(out, extra, n_extra, content_type, body, body_len);
    return SIP_OK;
}

/* ---- dialogs -------------------------------------------------------------------------------- */

/* A From/To without its tag, as libosip2 prints it (display name and other params kept). */
static char *name_addr_no_tag(const osip_from_t *h)
{
    osip_from_t *c = NULL;
    if (osip_from_clone(h, &c) != 0 || !c) return NULL;
    int n = osip_list_size(&c->gen_params);
    for (int i = n - 1; i >= 0; i--) {
        osip_generic_param_t *p = osip_list_get(&c->gen_params, i);
        if (p && p->gname && strcasecmp(p->gname, "tag") == 0) {
            osip_list_remove(&c->gen_params, i);
            osip_generic_param_free(p);
        }
    }
    char *s = NULL;
    int rc = osip_from_to_str(c, &s);
    osip_from_free(c);
    if (rc != 0 || !s || !is_line_text(s) || !name_addr_reparses(s)) {
        osip_free(s);
        return NULL;
    }
    char *copy = xstrdup(s);
    osip_free(s);
    return copy;
}

int sip_dialog_from_invite(const struct sip_msg *invite, const char *local_tag,
                           struct sip_dialog *d, const char **err)
{
    memset(d, 0, sizeof *d);
    if (!invite || !invite->is_request || strcmp(invite->method, "INVITE") != 0) {
        *err = "not an INVITE";
        return SIP_ERROR;
    }
    if (!is_token(local_tag)) {
        *err = "bad local tag";
        return SIP_ERROR;
    }
    if (!is_sip_uri(invite->contact_uri) || !sip_uri_reparses(invite->contact_uri)) {
        *err = "INVITE without a usable sip: or sips: Contact";
        return SIP_ERROR;
    }
    if (!invite->from_tag || !*invite->from_tag) {
        *err = "INVITE without From tag";
        return SIP_ERROR;
    }
    const struct sip_msg_priv *pv = invite->priv_;
    d->local_uri = name_addr_no_tag(invite->osip->to);
    d->remote_uri = name_addr_no_tag(invite->osip->from);
    if (!d->local_uri || !d->remote_uri) {
        sip_dialog_free(d);
        *err = "bad From or To";
        return SIP_ERROR;
    }
    d->call_id = xstrdup(invite->call_id);
    d->local_tag = xstrdup(local_tag);
    d->remote_tag = xstrdup(invite->from_tag);
    d->remote_target = xstrdup(invite->contact_uri);
    if (pv->n_record_routes) {
        d->route_set = xcalloc(pv->n_record_routes, sizeof(char *));
        for (size_t i = 0; i < pv->n_record_routes; i++)
            d->route_set[i] = xstrdup(pv->record_routes[i]);
        d->n_routes = pv->n_record_routes;
    }
    d->remote_cseq = invite->cseq;
    return SIP_OK;
}

void sip_dialog_free(struct sip_dialog *d)
{
    if (!d) return;
    xfree(d->call_id);
    xfree(d->local_tag);
    xfree(d->remote_tag);
    xfree(d->local_uri);
    xfree(d->remote_uri);
    xfree(d->remote_target);
    for (size_t i = 0; i < d->n_routes; i++)
        xfree(d->route_set[i]);
    xfree(d->route_set);
    xfree(d->local_contact);
    memset(d, 0, sizeof *d);
}

static bool is_sent_by(const char *s)
{
    if (!s || !*s) return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!isalnum(c) && !strchr(".-:[]_", c)) return false;
    }
    return true;
}

int sip_build_request(struct sip_dialog *d, const char *method, const char *via_transport,
                      const char *via_sent_by, const struct sip_header *extra, size_t n_extra,
                      const char *content_type, const char *body, size_t body_len, struct buf *out,
                      char branch[SIP_BRANCH_SIZE])
{
    if (!d || !d->call_id || !d->local_tag || !d->remote_tag || !d->local_uri || !d->remote_uri ||
        !d->remote_target)
        return SIP_ERROR;
    if (!is_token(method) || !is_token(via_transport) || !is_sent_by(via_sent_by) ||
        !extras_ok(extra, n_extra) || !content_ok(content_type, body, body_len))
        return SIP_ERROR;
    if (!is_line_text(d->remote_target) || strchr(d->remote_target, ' ') ||
        !is_line_text(d->local_uri) || !is_line_text(d->remote_uri) || !is_line_text(d->call_id) ||
        !is_token(d->local_tag) || !is_token(d->remote_tag) ||
        (d->local_contact && !is_line_text(d->local_contact)))
        return SIP_ERROR;
    for (size_t i = 0; i < d->n_routes; i++)
        if (!is_line_text(d->route_set[i])) return SIP_ERROR;
    bool same_cseq = strcmp(method, "ACK") == 0 || strcmp(method, "CANCEL") == 0;
    uint32_t cseq = d->local_cseq;
    if (!same_cseq) {
        if (cseq >= 0x7fffffffu) return SIP_ERROR; /* RFC 3261 §8.1.1.5: less than 2^31 */
        cseq++;
    } else if (cseq == 0) {
        return SIP_ERROR; /* nothing to acknowledge or cancel yet */
    }
    char br[SIP_BRANCH_SIZE];
    memcpy(br, "z9hG4bK", 7);
    if (random_hex(br + 7, 8) != SIP_OK) return SIP_ERROR;

    buf_str(out, method);
    buf_append(out, " ", 1);
    buf_str(out, d->remote_target);
    buf_str(out, " SIP/2.0\r\n");
    buf_str(out, "Via: SIP/2.0/");
    buf_str(out, via_transport);
    buf_append(out, " ", 1);
    buf_str(out, via_sent_by);
    buf_str(out, ";branch=");
    buf_str(out, br);
    buf_str(out, ";rport\r\n");
    buf_header(out, "Max-Forwards", "70");
    for (size_t i = 0; i < d->n_routes; i++)
        buf_header(out, "Route", d->route_set[i]);
    buf_str(out, "From: ");
    buf_str(out, d->local_uri);
    buf_str(out, ";tag=");
    buf_str(out, d->local_tag);
    buf_str(out, "\r\nTo: ");
    buf_str(out, d->remote_uri);
    buf_str(out, ";tag=");
    buf_str(out, d->remote_tag);
    buf_append(out, "\r\n", 2);
    buf_header(out, "Call-ID", d->call_id);
    char cs[32];
    snprintf(cs, sizeof cs, "%u ", (unsigned)cseq);
    buf_str(out, "CSeq: ");
    buf_str(out, cs);
    buf_str(out, method);
    buf_append(out, "\r\n", 2);
    if (d->local_contact && (strcmp(method, "INVITE") == 0 || strcmp(method, "UPDATE") == 0)) {
        buf_str(out, "Contact: <");
        buf_str(out, d->local_contact);
        buf_str(out, ">\r\n");
    }
    put_tail(out, extra, n_extra, content_type, body, body_len);
    d->local_cseq = cseq;
    if (branch) memcpy(branch, br, SIP_BRANCH_SIZE);
    return SIP_OK;
}

/* ---- digest --------------------------------------------------------------------------------- */

static bool is_quotable(const char *s)
{
    if (!s || !*s) return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') return false;
    }
    return true;
}

size_t sip_digest_challenge(char *out, size_t n, const char *realm, const char *nonce, bool stale)
{
    if (!out || !n) return 0;
    out[0] = '\0';
    if (!is_quotable(realm) || !is_quotable(nonce)) return 0;
    int w = snprintf(out, n, "Digest realm=\"%s\", nonce=\"%s\",%s algorithm=MD5, qop=\"auth\"",
                     realm, nonce, stale ? " stale=true," : "");
    if (w < 0 || (size_t)w >= n) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)w;
}

/* hex(MD5(parts joined by ':')). false if the digest is unavailable (a FIPS-only OpenSSL). */
static bool md5_hex(const char *const *parts, size_t n, char out[33])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) abort();
    bool ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1;
    for (size_t i = 0; ok && i < n; i++) {
        if (i) ok = EVP_DigestUpdate(ctx, ":", 1) == 1;
        if (ok) ok = EVP_DigestUpdate(ctx, parts[i], strlen(parts[i])) == 1;
    }
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (ok) ok = EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 16;
    EVP_MD_CTX_free(ctx);
    if (ok) hex_encode(md, 16, out);
    return ok;
}

void sip_digest_a1(char out[33], const char *user, const char *realm, const char *password)
{
    const char *parts[] = {user, realm, password};
    if (!md5_hex(parts, 3, out)) out[0] = '\0';
}

static bool lower_hex32(const char *in, char out[33])
{
    if (!in || strlen(in) != 32) return false;
    for (size_t i = 0; i < 32; i++) {
        if (hex_value((unsigned char)in[i]) < 0) return false;
        out[i] = (char)tolower((unsigned char)in[i]);
    }
    out[32] = '\0';
    return true;
}

enum sip_digest_status sip_digest_prepare(const struct sip_auth *a, const char *method,
                                          struct sip_digest_check *out)
{
    memset(out, 0, sizeof *out);
    if (!a || !a->present || !method || !*method) return SIP_DIGEST_MALFORMED;
    if (a->algorithm && strcasecmp(a->algorithm, "MD5") != 0) return SIP_DIGEST_UNSUPPORTED;
    if (!a->username || !a->realm || !a->nonce || !a->uri || !a->response)
        return SIP_DIGEST_MALFORMED;
    out->qop = a->qop != NULL;
    if (out->qop) {
        if (strcasecmp(a->qop, "auth") != 0) return SIP_DIGEST_UNSUPPORTED;
        if (!a->cnonce || !*a->cnonce || !a->nc || strlen(a->nc) != 8) return SIP_DIGEST_MALFORMED;
        for (size_t i = 0; i < 8; i++)
            if (hex_value((unsigned char)a->nc[i]) < 0) return SIP_DIGEST_MALFORMED;
    }
    if (!lower_hex32(a->response, out->got)) return SIP_DIGEST_MALFORMED;
    const char *p2[] = {method, a->uri};
    if (!md5_hex(p2, 2, out->ha2)) return SIP_DIGEST_UNSUPPORTED;
    out->a = a;
    return SIP_DIGEST_VALID;
}

enum sip_digest_status sip_digest_check(const struct sip_digest_check *c, const char *password,
                                        const char *a1_hex)
{
    const struct sip_auth *a = c->a;
    if (!a) return SIP_DIGEST_MALFORMED;
    char ha1[33], want[33];
    if (password) {
        const char *p1[] = {a->username, a->realm, password};
        if (!md5_hex(p1, 3, ha1)) return SIP_DIGEST_UNSUPPORTED;
    } else if (!lower_hex32(a1_hex, ha1)) {
        return SIP_DIGEST_UNSUPPORTED; /* no usable credential */
    }
    bool ok;
    if (c->qop) {
        const char *p3[] = {ha1, a->nonce, a->nc, a->cnonce, "auth", c->ha2};
        ok = md5_hex(p3, 6, want);
    } else {
        const char *p3[] = {ha1, a->nonce, c->ha2};
        ok = md5_hex(p3, 3, want);
    }
    if (!ok) return SIP_DIGEST_UNSUPPORTED;
    return CRYPTO_memcmp(want, c->got, 32) == 0 ? SIP_DIGEST_VALID : SIP_DIGEST_WRONG;
}

enum sip_digest_status sip_digest_verify(const struct sip_auth *a, const char *method,
                                         const char *password, const char *a1_hex)
{
    struct sip_digest_check c;
    enum sip_digest_status st = sip_digest_prepare(a, method, &c);
    return st == SIP_DIGEST_VALID ? sip_digest_check(&c, password, a1_hex) : st;
}

/* ---- nonces --------------------------------------------------------------------------------- */

static bool nonce_mac(const uint8_t secret[16], const uint8_t data[16], uint8_t mac[16])
{
    uint8_t full[EVP_MAX_MD_SIZE];
    unsigned full_len = 0;
    if (!HMAC(EVP_sha256(), secret, 16, data, 16, full, &full_len) || full_len < 16) return false;
    memcpy(mac, full, 16);
    return true;
}

int sip_nonce_new(char out[SIP_NONCE_LEN + 1], uint64_t now, const uint8_t secret[16])
{
    uint8_t raw[32];
    for (int i = 0; i < 8; i++)
        raw[i] = (uint8_t)(now >> (56 - 8 * i));
    if (RAND_bytes(raw + 8, 8) != 1 || !nonce_mac(secret, raw, raw + 16)) {
        out[0] = '\0';
        return SIP_ERROR;
    }
    hex_encode(raw, 32, out);
    return SIP_OK;
}

enum sip_nonce_status sip_nonce_check(const char *nonce, uint64_t now, uint64_t max_age,
                                      const uint8_t secret[16])
{
    if (!nonce || strlen(nonce) != SIP_NONCE_LEN) return SIP_NONCE_INVALID;
    uint8_t raw[32], mac[16];
    for (size_t i = 0; i < 32; i++) {
        int hi = hex_value((unsigned char)nonce[2 * i]),
            lo = hex_value((unsigned char)nonce[2 * i + 1]);
        if (hi < 0 || lo < 0) return SIP_NONCE_INVALID;
        raw[i] = (uint8_t)(hi << 4 | lo);
    }
    if (!nonce_mac(secret, raw, mac) || CRYPTO_memcmp(mac, raw + 16, 16) != 0)
        return SIP_NONCE_INVALID;
    uint64_t t = 0;
    for (int i = 0; i < 8; i++)
        t = t << 8 | raw[i];
    if (t > now) return t - now > max_age ? SIP_NONCE_INVALID : SIP_NONCE_VALID;
    return now - t > max_age ? SIP_NONCE_STALE : SIP_NONCE_VALID;
}

bool sip_nonce_issued(const char *nonce, uint64_t *issued)
{
    if (!nonce || strlen(nonce) != SIP_NONCE_LEN) return false;
    uint64_t t = 0;
    for (size_t i = 0; i < 16; i++) {
        int v = hex_value((unsigned char)nonce[i]);
        if (v < 0) return false;
        t = t << 4 | (uint64_t)v;
    }
    *issued = t;
    return true;
}

bool sip_digest_nc(const struct sip_auth *a, uint32_t *nc)
{
    if (!a || !a->nc || strlen(a->nc) != 8) return false;
    uint32_t v = 0;
    for (size_t i = 0; i < 8; i++) {
        int d = hex_value((unsigned char)a->nc[i]);
        if (d < 0) return false;
        v = v << 4 | (uint32_t)d;
    }
    *nc = v;
    return true;
}

/* A URI as libosip2 prints it (transfer full, osip_free), or NULL when it does not parse. */
static char *uri_printed(const char *s)
{
    osip_uri_t *u = NULL;
    if (osip_uri_init(&u) != 0) abort();
    char *out = NULL;
    if (osip_uri_parse(u, s) != 0 || osip_uri_to_str(u, &out) != 0) out = NULL;
    osip_uri_free(u);
    return out;
}

bool sip_digest_uri_matches(const struct sip_msg *m)
{
    if (!m || !m->is_request || !m->ruri || !m->auth.uri || !*m->auth.uri) return false;
    if (strcmp(m->auth.uri, m->ruri) == 0) return true;
    /* case aside (the scheme and host are case-insensitive, RFC 3261 §19.1.4; the user part is
     * not, but the digest's arithmetic binds the uri text as sent anyway) */
    char *p = uri_printed(m->auth.uri);
    bool same = p && strcasecmp(p, m->ruri) == 0;
    osip_free(p);
    return same;
}

/* ---- dialplan ------------------------------------------------------------------------------- */

static void set_add_range(uint8_t set[32], unsigned lo, unsigned hi)
{
    for (unsigned c = lo; c <= hi && c < 256; c++)
        set[c >> 3] |= (uint8_t)(1u << (c & 7));
}

static bool set_has(const uint8_t set[32], unsigned c)
{
    return set[c >> 3] & (1u << (c & 7));
}

static void set_add_class(uint8_t set[32], char cls)
{
    for (unsigned c = 1; c < 128; c++) {
        bool in = (cls == 'd' && isdigit((int)c)) ||
                  (cls == 'w' && (isalnum((int)c) || c == '_')) || (cls == 's' && isspace((int)c));
        if (in) set_add_range(set, c, c);
    }
}

/* Emits a byte set as a POSIX bracket expression that means exactly that set. */
static bool emit_set(const uint8_t set_in[32], bool negate, char *out, size_t n, size_t *o)
{
    uint8_t set[32];
    memcpy(set, set_in, 32);
    bool rb = set_has(set, ']'), caret = set_has(set, '^'), dash = set_has(set, '-');
    set[']' >> 3] &= (uint8_t) ~(1u << (']' & 7));
    set['^' >> 3] &= (uint8_t) ~(1u << ('^' & 7));
    set['-' >> 3] &= (uint8_t) ~(1u << ('-' & 7));
    char tmp[1200];
    size_t t = 0;
    tmp[t++] = '[';
    if (negate) tmp[t++] = '^';
    if (rb) tmp[t++] = ']';
    bool runs = false;
    for (unsigned c = 1; c < 256;) {
        if (!set_has(set, c)) {
            c++;
            continue;
        }
        unsigned e = c;
        while (e + 1 < 256 && set_has(set, e + 1))
            e++;
        tmp[t++] = (char)c;
        if (e > c + 1) tmp[t++] = '-';
        if (e > c) tmp[t++] = (char)e;
        runs = true;
        c = e + 1;
    }
    if (!rb && !runs && !negate && caret && !dash) { /* a lone '^' */
        if (*o + 2 >= n) return false;
        out[(*o)++] = '\\';
        out[(*o)++] = '^';
        return true;
    }
    if (!rb && !runs && !negate && caret) { /* "[-^]": '-' first, so '^' is not first */
        tmp[t++] = '-';
        tmp[t++] = '^';
    } else {
        if (caret) tmp[t++] = '^';
        if (dash) tmp[t++] = '-';
    }
    tmp[t++] = ']';
    if (t == 2 || (negate && t == 3)) return false; /* an empty set: PCRE would fail too */
    if (*o + t >= n) return false;
    memcpy(out + *o, tmp, t);
    *o += t;
    return true;
}

/* Reads one bracket item at *p (an escape or a byte): the byte, or a class letter in *cls. */
static bool bracket_item(const char **p, unsigned *byte, char *cls)
{
    *cls = 0;
    const char *s = *p;
    if (*s == '\\') {
        unsigned char e = (unsigned char)s[1];
        if (!e) return false;
        if (e == 'd' || e == 'w' || e == 's') {
            *cls = (char)e;
        } else if (isalnum(e)) {
            return false; /* \b, \n, \D ...: not supported */
        } else {
            *byte = e;
        }
        *p = s + 2;
        return true;
    }
    *byte = (unsigned char)*s;
    *p = s + 1;
    return true;
}

/* PCRE-style pattern -> POSIX ERE with the same meaning (see sip_msg.h). */
static bool translate_pattern(const char *in, char *out, size_t n)
{
    size_t o = 0;
    const char *p = in;
    while (*p) {
        if (o + 16 >= n) return false;
        if (*p == '\\') {
            unsigned char e = (unsigned char)p[1];
            if (!e) return false;
            const char *cls = e == 'd'   ? "[0-9]"
                              : e == 'D' ? "[^0-9]"
                              : e == 'w' ? "[[:alnum:]_]"
                              : e == 'W' ? "[^[:alnum:]_]"
                              : e == 's' ? "[[:space:]]"
                              : e == 'S' ? "[^[:space:]]"
                                         : NULL;
            if (cls) {
                memcpy(out + o, cls, strlen(cls));
                o += strlen(cls);
            } else if (isalnum(e)) {
                return false;
            } else if (e == '^') {
                out[o++] = '\\';
                out[o++] = '^';
            } else { /* a literal punctuation byte, as a one-byte bracket */
                out[o++] = '[';
                out[o++] = (char)e;
                out[o++] = ']';
            }
            p += 2;
            continue;
        }
        if (*p == '(' && p[1] == '?') return false; /* PCRE extensions */
        if (*p != '[') {
            out[o++] = *p++;
            continue;
        }
        p++;
        bool negate = false;
        if (*p == '^') {
            negate = true;
            p++;
        }
        uint8_t set[32] = {0};
        bool first = true;
        for (;;) {
            if (!*p) return false;
            if (*p == ']' && !first) {
                p++;
                break;
            }
            first = false;
            if (p[0] == '[' && p[1] == ':') return false; /* POSIX classes: not needed here */
            unsigned lo = 0, hi = 0;
            char cls;
            if (!bracket_item(&p, &lo, &cls)) return false;
            if (cls) {
                set_add_class(set, cls);
                continue;
            }
            if (p[0] == '-' && p[1] && p[1] != ']') {
                const char *q = p + 1;
                char cls2;
                if (!bracket_item(&q, &hi, &cls2) || cls2) return false;
                if (hi < lo) return false; /* PCRE: range out of order */
                set_add_range(set, lo, hi);
                p = q;
            } else {
                set_add_range(set, lo, lo);
            }
        }
        if (!emit_set(set, negate, out, n, &o)) return false;
    }
    out[o] = '\0';
    return true;
}

static bool copy_capture(const char *dest, const regmatch_t *rm, char *cap, size_t size)
{
    if (!cap || !size) return true;
    if (rm->rm_so < 0) {
        cap[0] = '\0';
        return true;
    }
    size_t len = (size_t)(rm->rm_eo - rm->rm_so);
    if (len >= size) return false;
    memcpy(cap, dest + rm->rm_so, len);
    cap[len] = '\0';
    return true;
}

int sip_dialplan_match(const char *dest, const char *pattern, char *cap1, size_t cap1_size,
                       char *cap2, size_t cap2_size, const char **err)
{
    if (cap1 && cap1_size) cap1[0] = '\0';
    if (cap2 && cap2_size) cap2[0] = '\0';
    if (!dest || !pattern) {
        *err = "no destination or pattern";
        return SIP_DIALPLAN_ERROR;
    }
    size_t n = strlen(pattern) * 24 + 64;
    if (n > 64 * 1024) {
        *err = "dialplan pattern too long";
        return SIP_DIALPLAN_ERROR;
    }
    char *ere = xmalloc(n);
    if (!translate_pattern(pattern, ere, n)) {
        xfree(ere);
        *err = "unsupported dialplan pattern";
        return SIP_DIALPLAN_ERROR;
    }
    regex_t re;
    int rc = regcomp(&re, ere, REG_EXTENDED);
    xfree(ere);
    if (rc != 0) {
        *err = "dialplan pattern does not compile";
        return SIP_DIALPLAN_ERROR;
    }
    regmatch_t rm[3];
    rc = regexec(&re, dest, 3, rm, 0);
    size_t groups = re.re_nsub;
    regfree(&re);
    if (rc == REG_NOMATCH) return SIP_DIALPLAN_NO_MATCH;
    if (rc != 0) {
        *err = "dialplan match failed";
        return SIP_DIALPLAN_ERROR;
    }
    if (groups < 1) rm[1].rm_so = -1;
    if (groups < 2) rm[2].rm_so = -1;
    if (!copy_capture(dest, &rm[1], cap1, cap1_size) ||
        !copy_capture(dest, &rm[2], cap2, cap2_size)) {
        *err = "dialplan capture too long";
        if (cap1 && cap1_size) cap1[0] = '\0';
        if (cap2 && cap2_size) cap2[0] = '\0';
        return SIP_DIALPLAN_ERROR;
    }
    return SIP_DIALPLAN_MATCH;
}

size_t sip_conference_name(char *out, size_t n, const char *cap1, const char *domain)
{
    if (!out || !n) return 0;
    int w = snprintf(out, n, "%s-%s", cap1 ? cap1 : "", domain ? domain : "");
    if (w < 0 || (size_t)w >= n) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)w;
}
