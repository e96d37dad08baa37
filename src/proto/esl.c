/* esl: FreeSWITCH's Event Socket protocol, sans I/O; see esl.h. Never touches a socket, never
 * allocates while parsing; builders write into a struct buf, decoded events into an arena. */
#include "proto/esl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- small helpers ------------------------------------------------------------------------ */

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool span_eq(const char *p, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m) return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != lower((unsigned char)lit[i])) return false;
    return true;
}

bool esl_str_eq(struct esl_str s, const char *lit)
{
    return s.ptr && span_eq(s.ptr, s.len, lit);
}

static struct esl_str mkstr(const char *p, size_t n)
{
    struct esl_str s = {p, n};
    return s;
}

static const struct esl_str no_str = {NULL, 0};

static void put_cstr(struct buf *out, const char *s)
{
    buf_append(out, s, strlen(s));
}

static void put_u64(struct buf *out, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    buf_append(out, tmp, (size_t)n);
}

static size_t dec_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* All digits, no sign, no spaces, value <= limit; else false. */
static bool parse_digits(const char *p, size_t n, uint64_t limit, uint64_t *v)
{
    if (n == 0) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        x = x * 10 + (uint64_t)(p[i] - '0');
        if (x > limit) return false;
    }
    *v = x;
    return true;
}

/* A line in [p, end): the end of its content (a trailing CR dropped, never before p) and where
 * the next line starts. Returns false when no LF has arrived yet. */
static bool next_line(const char *p, const char *end, const char **content_end, const char **next)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return false;
    size_t n = (size_t)(nl - p);
    if (n && nl[-1] == '\r') n--;
    *content_end = p + n;
    *next = nl + 1;
    return true;
}

static bool has_nul(const char *p, const char *end)
{
    for (; p < end; p++)
        if (!*p) return true;
    return false;
}

/* "Name: value" -> trimmed name, value after ':' and its spaces. False when there is no ':' or
 * the name is empty. */
static bool split_header(const char *p, const char *end, struct esl_header_span *h)
{
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (!colon) return false;
    const char *ns = p, *ne = colon;
    while (ns < ne && (*ns == ' ' || *ns == '\t'))
        ns++;
    while (ne > ns && (ne[-1] == ' ' || ne[-1] == '\t'))
        ne--;
    if (ns == ne) return false;
    const char *v = colon + 1;
    while (v < end && *v == ' ')
        v++;
    h->name = mkstr(ns, (size_t)(ne - ns));
    h->value = mkstr(v, (size_t)(end - v));
    return true;
}

bool esl_next_word(const char **p, const char *end, struct esl_str *w)
{
    const char *s = *p;
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    if (s >= end) {
        *p = end;
        return false;
    }
    const char *e = s;
    while (e < end && *e != ' ' && *e != '\t')
        e++;
    *w = mkstr(s, (size_t)(e - s));
    *p = e;
    return true;
}

/* ---- client commands --------------------------------------------------------------------------
 */

static const struct {
    const char *verb;
    enum esl_cmd_kind kind;
} verbs[] = {
    {"auth", ESL_CMD_AUTH},
    {"api", ESL_CMD_API},
    {"bgapi", ESL_CMD_BGAPI},
    {"event", ESL_CMD_EVENT},
    {"nixevent", ESL_CMD_NIXEVENT},
    {"noevents", ESL_CMD_NOEVENTS},
    {"exit", ESL_CMD_EXIT},
    {"filter", ESL_CMD_FILTER},
    {"linger", ESL_CMD_LINGER},
    {"nolinger", ESL_CMD_NOLINGER},
    {"log", ESL_CMD_LOG},
    {"nolog", ESL_CMD_NOLOG},
    {"myevents", ESL_CMD_MYEVENTS},
    {"divert_events", ESL_CMD_DIVERT},
    {"sendevent", ESL_CMD_SENDEVENT},
    {"sendmsg", ESL_CMD_SENDMSG},
};

static bool parse_format(struct esl_str w, enum esl_format *f)
{
    if (esl_str_eq(w, "plain"))
        *f = ESL_FORMAT_PLAIN;
    else if (esl_str_eq(w, "json"))
        *f = ESL_FORMAT_JSON;
    else if (esl_str_eq(w, "xml"))
        *f = ESL_FORMAT_XML;
    else
        return false;
    return true;
}

static size_t count_words(struct esl_str s)
{
    size_t n = 0;
    const char *p = s.ptr, *end = s.ptr + s.len;
    struct esl_str w;
    while (esl_next_word(&p, end, &w))
        n++;
    return n;
}

/* Fills the per-kind fields from the first line (and the headers, for bgapi). */
static void interpret(struct esl_command *c)
{
    const char *p = c->args.ptr, *end = c->args.ptr + c->args.len;
    struct esl_str w;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (esl_str_eq(c->verb, verbs[i].verb)) c->kind = verbs[i].kind;

    switch (c->kind) {
    case ESL_CMD_AUTH: c->password = c->args; break;
    case ESL_CMD_API:
    case ESL_CMD_BGAPI: {
        /* like FreeSWITCH: the command up to the first space, the rest verbatim */
        const char *sp = memchr(p, ' ', c->args.len);
        c->api_command = mkstr(p, sp ? (size_t)(sp - p) : c->args.len);
        if (sp) c->api_args = mkstr(sp + 1, (size_t)(end - sp - 1));
        if (c->api_command.len == 0) {
            c->kind = ESL_CMD_UNKNOWN; /* FreeSWITCH matches "api " + a command */
            c->api_command = c->api_args = no_str;
            break;
        }
        if (c->kind == ESL_CMD_BGAPI) c->job_uuid = esl_command_header(c, "Job-UUID");
        break;
    }
    case ESL_CMD_EVENT: {
        const char *q = p;
        if (esl_next_word(&q, end, &w) && parse_format(w, &c->format)) {
            c->format_given = true;
            p = q;
        }
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        c->names = mkstr(p, (size_t)(end - p));
        c->n_names = count_words(c->names);
        break;
    }
    case ESL_CMD_NIXEVENT:
        c->names = c->args;
        c->n_names = count_words(c->names);
        break;
    case ESL_CMD_FILTER: {
        const char *q = p;
        if (esl_next_word(&q, end, &w) && esl_str_eq(w, "delete")) {
            c->filter_delete = true;
            p = q;
        }
        if (esl_next_word(&p, end, &w))
            c->filter_header = w;
        else
            c->filter_header = mkstr(end, 0);
        if (p < end) {
            p++; /* the one space after the header name */
            c->filter_value = mkstr(p, (size_t)(end - p));
        }
        break;
    }
    case ESL_CMD_LINGER: {
        uint64_t v;
        c->linger_seconds = -1;
        if (esl_next_word(&p, end, &w) && parse_digits(w.ptr, w.len, INT32_MAX, &v))
            c->linger_seconds = (int64_t)v;
        break;
    }
    case ESL_CMD_LOG:
        if (esl_next_word(&p, end, &w)) c->log_level = w;
        break;
    case ESL_CMD_DIVERT: c->divert_on = esl_next_word(&p, end, &w) && esl_str_eq(w, "on"); break;
    case ESL_CMD_MYEVENTS:
        if (esl_next_word(&p, end, &w)) {
            c->uuid = w;
            if (esl_next_word(&p, end, &w) && parse_format(w, &c->format)) c->format_given = true;
        }
        break;
    case ESL_CMD_SENDEVENT:
        if (esl_next_word(&p, end, &w)) c->event_name = w;
        break;
    case ESL_CMD_SENDMSG:
        if (esl_next_word(&p, end, &w)) c->uuid = w;
        break;
    default: break;
    }
}

struct esl_str esl_command_header(const struct esl_command *cmd, const char *name)
{
    for (size_t i = 0; i < cmd->n_headers; i++)
        if (esl_str_eq(cmd->headers[i].name, name)) return cmd->headers[i].value;
    return no_str;
}

int esl_parse_command(const uint8_t *buf, size_t len, size_t max_bytes, struct esl_command *cmd,
                      const char **err)
{
    if (!max_bytes) max_bytes = ESL_DEFAULT_MAX_COMMAND;
    memset(cmd, 0, sizeof *cmd);
    cmd->linger_seconds = -1;
    *err = NULL;
    if (!len) return ESL_AGAIN; /* nothing yet (buf may be NULL) */
    size_t lim = len < max_bytes ? len : max_bytes;
    const char *base = (const char *)buf, *p = base, *end = base + lim, *ce, *next;

    /* empty lines before the command */
    for (;;) {
        if (p < end && *p == '\n') {
            p++;
        } else if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            p += 2;
        } else {
            break;
        }
    }

    if (!next_line(p, end, &ce, &next)) goto more;
    if (has_nul(p, ce)) goto nul;
    cmd->line = mkstr(p, (size_t)(ce - p));
    {
        const char *q = p;
        while (q < ce && (*q == ' ' || *q == '\t'))
            q++;
        const char *vs = q;
        while (q < ce && *q != ' ' && *q != '\t')
            q++;
        cmd->verb = mkstr(vs, (size_t)(q - vs));
        if (q < ce) q++; /* FreeSWITCH splits at one space: "api  x" has args " x" */
        cmd->args = mkstr(q, (size_t)(ce - q));
    }
    p = next;

    uint64_t clen = 0;
    bool has_clen = false;
    size_t n_lines = 0;
    for (;;) {
        if (!next_line(p, end, &ce, &next)) goto more;
        if (ce == p) { /* the empty line */
            p = next;
            break;
        }
        if (++n_lines > ESL_MAX_COMMAND_HEADERS) {
            *err = "too many header lines in command";
            return ESL_ERROR;
        }
        if (has_nul(p, ce)) goto nul;
        struct esl_header_span h;
        if (split_header(p, ce, &h)) {
            cmd->headers[cmd->n_headers++] = h;
            if (span_eq(h.name.ptr, h.name.len, "Content-Length")) {
                if (!parse_digits(h.value.ptr, h.value.len, max_bytes, &clen)) {
                    *err = "bad Content-Length in command";
                    return ESL_ERROR;
                }
                has_clen = true;
            }
        }
        p = next;
    }

    size_t head = (size_t)(p - base);
    if (has_clen && clen > 0) {
        if (clen > max_bytes - head) {
            *err = "command longer than the limit";
            return ESL_ERROR;
        }
        if (len - head < clen) return ESL_AGAIN;
        cmd->body = buf + head;
        cmd->body_len = (size_t)clen;
    }
    cmd->consumed = head + (size_t)clen;
    interpret(cmd);
    return ESL_OK;

nul:
    *err = "NUL byte in command";
    return ESL_ERROR;
more:
    if (len >= max_bytes) {
        *err = "command longer than the limit";
        return ESL_ERROR;
    }
    return ESL_AGAIN;
}

/* ---- URL encoding -------------------------------------------------------------------------------
 */

static const char hex_upper[] = "0123456789ABCDEF";

/* The bytes switch_url_encode escapes: controls, DEL and above, and SWITCH_URL_UNSAFE. */
static bool url_unsafe(unsigned char c)
{
    if (c < 0x20 || c > 0x7e) return true;
    return strchr(" #%&+:;<=>?@[\\]^`{|}\"", c) != NULL;
}

static bool is_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* A '%' at in[i] that FreeSWITCH leaves alone: two upper-case hex digits follow. */
static bool kept_escape(const char *in, size_t len, size_t i)
{
    return i + 2 < len && is_upper_hex(in[i + 1]) && is_upper_hex(in[i + 2]);
}

size_t esl_url_encoded_len(const char *in, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        n += (url_unsafe(c) && !(c == '%' && kept_escape(in, len, i))) ? 3 : 1;
    }
    return n;
}

size_t esl_url_encode(const char *in, size_t len, char *out)
{
    size_t x = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (url_unsafe(c) && !(c == '%' && kept_escape(in, len, i))) {
            out[x++] = '%';
            out[x++] = hex_upper[c >> 4];
            out[x++] = hex_upper[c & 15];
        } else {
            out[x++] = (char)c;
        }
    }
    return x;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t esl_url_decode(const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (in[i] == '%' && i + 2 < len && (hi = hexval(in[i + 1])) >= 0 &&
            (lo = hexval(in[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    return o;
}

static void put_url_encoded(struct buf *out, const char *s, size_t n)
{
    buf_reserve(out, n * 3);
    out->len += esl_url_encode(s, n, (char *)out->data + out->len);
}

/* ---- server replies -----------------------------------------------------------------------------
 */

void esl_put_auth_request(struct buf *out)
{
    put_cstr(out, "Content-Type: auth/request\n\n");
}

static void put_line_text(struct buf *out, const char *s, size_t n)
{
    buf_reserve(out, n);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        out->data[out->len++] = (uint8_t)(c == '\n' || c == '\r' ? ' ' : c);
    }
}

void esl_put_command_reply(struct buf *out, const char *text)
{
    put_cstr(out, "Content-Type: command/reply\nReply-Text: ");
    put_line_text(out, text, strlen(text));
    put_cstr(out, "\n\n");
}

void esl_put_command_reply_job(struct buf *out, const char *job_uuid, size_t uuid_len)
{
    put_cstr(out, "Content-Type: command/reply\nReply-Text: +OK Job-UUID: ");
    put_line_text(out, job_uuid, uuid_len);
    put_cstr(out, "\nJob-UUID: ");
    put_line_text(out, job_uuid, uuid_len);
    put_cstr(out, "\n\n");
}

void esl_put_api_response(struct buf *out, const char *body, size_t len)
{
    put_cstr(out, "Content-Type: api/response\nContent-Length: ");
    put_u64(out, len);
    put_cstr(out, "\n\n");
    buf_append(out, body, len);
}

static const char disconnect_text[] = "Disconnected, goodbye.\n"
                                      "See you at ClueCon! http://www.cluecon.com/\n";

void esl_put_disconnect_notice(struct buf *out)
{
    put_cstr(out, "Content-Type: text/disconnect-notice\nContent-Length: ");
    put_u64(out, sizeof disconnect_text - 1);
    put_cstr(out, "\n\n");
    buf_append(out, disconnect_text, sizeof disconnect_text - 1);
}

void esl_put_rude_rejection(struct buf *out)
{
    static const char text[] = "Access Denied, go away.\n";
    put_cstr(out, "Content-Type: text/rude-rejection\nContent-Length: ");
    put_u64(out, sizeof text - 1);
    put_cstr(out, "\n\n");
    buf_append(out, text, sizeof text - 1);
}

/* ---- events -------------------------------------------------------------------------------------
 */

void esl_event_init(struct esl_event *ev, struct arena *a)
{
    memset(ev, 0, sizeof *ev);
    ev->arena = a;
}

void esl_event_add_n(struct esl_event *ev, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    if (ev->n_headers == ev->cap) {
        size_t cap = ev->cap ? ev->cap * 2 : 32;
        struct esl_header *h = arena_alloc(ev->arena, cap * sizeof *h);
        if (ev->n_headers) memcpy(h, ev->headers, ev->n_headers * sizeof *h);
        ev->headers = h;
        ev->cap = cap;
    }
    struct esl_header *h = &ev->headers[ev->n_headers++];
    h->name = arena_strndup(ev->arena, name, name_len);
    h->name_len = name_len;
    h->value = arena_strndup(ev->arena, value, value_len);
    h->value_len = value_len;
}

void esl_event_add(struct esl_event *ev, const char *name, const char *value)
{
    esl_event_add_n(ev, name, strlen(name), value, strlen(value));
}

void esl_event_addf(struct esl_event *ev, const char *name, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n < sizeof tmp) {
        esl_event_add_n(ev, name, strlen(name), tmp, (size_t)n);
        return;
    }
    char *big = arena_alloc(ev->arena, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    esl_event_add_n(ev, name, strlen(name), big, (size_t)n);
}

void esl_event_set_body(struct esl_event *ev, const char *body, size_t len)
{
    ev->body = arena_strndup(ev->arena, body, len);
    ev->body_len = len;
}

const char *esl_event_get(const struct esl_event *ev, const char *name, size_t *len)
{
    for (size_t i = 0; i < ev->n_headers; i++) {
        const struct esl_header *h = &ev->headers[i];
        if (span_eq(h->name, h->name_len, name)) {
            if (len) *len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}

static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void esl_event_begin(struct esl_event *ev, struct arena *a, const char *event_name,
                     const char *subclass, const struct esl_event_base *b)
{
    esl_event_init(ev, a);
    if (subclass) esl_event_add(ev, "Event-Subclass", subclass);
    esl_event_add(ev, "Event-Name", event_name);
    esl_event_add(ev, "Core-UUID", b->core_uuid ? b->core_uuid : "");
    esl_event_add(ev, "FreeSWITCH-Hostname", b->hostname ? b->hostname : "");
    esl_event_add(ev, "FreeSWITCH-Switchname", b->switchname ? b->switchname : "");
    esl_event_add(ev, "FreeSWITCH-IPv4", b->ipv4 ? b->ipv4 : "");
    esl_event_add(ev, "FreeSWITCH-IPv6", b->ipv6 ? b->ipv6 : "");

    time_t secs = (time_t)(b->timestamp_us / 1000000u);
    time_t local = secs + (time_t)b->utc_offset_s;
    struct tm tm;
    gmtime_r(&local, &tm);
    esl_event_addf(ev, "Event-Date-Local", "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    gmtime_r(&secs, &tm);
    esl_event_addf(ev, "Event-Date-GMT", "%s, %02d %s %04d %02d:%02d:%02d GMT",
                   wdays[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                   tm.tm_hour, tm.tm_min, tm.tm_sec);
    esl_event_addf(ev, "Event-Date-Timestamp", "%llu", (unsigned long long)b->timestamp_us);
    esl_event_add(ev, "Event-Calling-File", b->calling_file ? b->calling_file : "");
    esl_event_add(ev, "Event-Calling-Function", b->calling_function ? b->calling_function : "");
    esl_event_addf(ev, "Event-Calling-Line-Number", "%d", b->calling_line);
    esl_event_addf(ev, "Event-Sequence", "%llu", (unsigned long long)b->sequence);
}

void esl_event_background_job(struct esl_event *ev, struct arena *a,
                              const struct esl_event_base *base, const char *job_uuid,
                              const char *command, const char *arg, const char *body,
                              size_t body_len)
{
    esl_event_begin(ev, a, "BACKGROUND_JOB", NULL, base);
    esl_event_add(ev, "Job-UUID", job_uuid);
    esl_event_add(ev, "Job-Command", command);
    if (arg) esl_event_add(ev, "Job-Command-Arg", arg);
    esl_event_set_body(ev, body, body_len);
}

static size_t plain_len(const struct esl_event *ev)
{
    size_t n = 1; /* the final "\n" (or the one before the body) */
    for (size_t i = 0; i < ev->n_headers; i++) {
        const struct esl_header *h = &ev->headers[i];
        size_t v = h->value_len ? esl_url_encoded_len(h->value, h->value_len) : 7;
        n += h->name_len + 2 + v + 1;
    }
    if (ev->body && ev->body_len)
        n += strlen("Content-Length: ") + dec_len(ev->body_len) + 1 + ev->body_len;
    return n;
}

void esl_event_put_plain(struct buf *out, const struct esl_event *ev)
{
    for (size_t i = 0; i < ev->n_headers; i++) {
        const struct esl_header *h = &ev->headers[i];
        buf_append(out, h->name, h->name_len);
        put_cstr(out, ": ");
        if (h->value_len)
            put_url_encoded(out, h->value, h->value_len);
        else
            put_cstr(out, "_undef_");
        buf_put_u8(out, '\n');
    }
    if (ev->body && ev->body_len) {
        put_cstr(out, "Content-Length: ");
        put_u64(out, ev->body_len);
        put_cstr(out, "\n\n");
        buf_append(out, ev->body, ev->body_len);
    } else {
        buf_put_u8(out, '\n');
    }
}

/* Bytes cJSON's print_string_ptr writes for s, quotes included. */
static size_t json_str_len(const char *s, size_t n)
{
    size_t x = 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            x += 2;
        else if (c < 0x20)
            x += 6;
        else
            x += 1;
    }
    return x;
}

static void put_json_str(struct buf *out, const char *s, size_t n)
{
    static const char lower_hex[] = "0123456789abcdef";
    buf_reserve(out, json_str_len(s, n));
    uint8_t *o = out->data + out->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e = 0;
        switch (c) {
        case '"': e = '"'; break;
        case '\\': e = '\\'; break;
        case '\b': e = 'b'; break;
        case '\f': e = 'f'; break;
        case '\n': e = 'n'; break;
        case '\r': e = 'r'; break;
        case '\t': e = 't'; break;
        default: break;
        }
        if (e) {
            *o++ = '\\';
            *o++ = (uint8_t)e;
        } else if (c < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = (uint8_t)lower_hex[c >> 4];
            o[5] = (uint8_t)lower_hex[c & 15];
            o += 6;
        } else {
            *o++ = c;
        }
    }
    *o++ = '"';
    out->len = (size_t)(o - out->data);
}

static size_t json_len(const struct esl_event *ev)
{
    size_t n = 2; /* {} */
    size_t members = 0;
    for (size_t i = 0; i < ev->n_headers; i++, members++) {
        const struct esl_header *h = &ev->headers[i];
        n += json_str_len(h->name, h->name_len) + 1 + json_str_len(h->value, h->value_len);
    }
    if (ev->body) {
        n += strlen("\"Content-Length\":\"\"") + dec_len(ev->body_len);
        n += strlen("\"_body\":") + json_str_len(ev->body, ev->body_len);
        members += 2;
    }
    return n + (members ? members - 1 : 0);
}

void esl_event_put_json(struct buf *out, const struct esl_event *ev)
{
    buf_put_u8(out, '{');
    for (size_t i = 0; i < ev->n_headers; i++) {
        const struct esl_header *h = &ev->headers[i];
        if (i) buf_put_u8(out, ',');
        put_json_str(out, h->name, h->name_len);
        buf_put_u8(out, ':');
        put_json_str(out, h->value, h->value_len);
    }
    if (ev->body) {
        if (ev->n_headers) buf_put_u8(out, ',');
        put_cstr(out, "\"Content-Length\":\"");
        put_u64(out, ev->body_len);
        put_cstr(out, "\",\"_body\":");
        put_json_str(out, ev->body, ev->body_len);
    }
    buf_put_u8(out, '}');
}

int esl_put_event(struct buf *out, enum esl_format fmt, const struct esl_event *ev)
{
    size_t n;
    const char *ctype;
    if (fmt == ESL_FORMAT_PLAIN) {
        n = plain_len(ev);
        ctype = "plain";
    } else if (fmt == ESL_FORMAT_JSON) {
        n = json_len(ev);
        ctype = "json";
    } else {
        return ESL_ERROR;
    }
    put_cstr(out, "Content-Length: ");
    put_u64(out, n);
    put_cstr(out, "\nContent-Type: text/event-");
    put_cstr(out, ctype);
    put_cstr(out, "\n\n");
    buf_reserve(out, n);
    if (fmt == ESL_FORMAT_PLAIN)
        esl_event_put_plain(out, ev);
    else
        esl_event_put_json(out, ev);
    return ESL_OK;
}

/* ---- server messages (client side) ------------------------------------------------------------
 */

static const struct {
    const char *ctype;
    enum esl_msg_type type;
} ctypes[] = {
    {"auth/request", ESL_MSG_AUTH_REQUEST},
    {"command/reply", ESL_MSG_COMMAND_REPLY},
    {"api/response", ESL_MSG_API_RESPONSE},
    {"text/event-plain", ESL_MSG_EVENT_PLAIN},
    {"text/event-json", ESL_MSG_EVENT_JSON},
    {"text/event-xml", ESL_MSG_EVENT_XML},
    {"text/disconnect-notice", ESL_MSG_DISCONNECT_NOTICE},
    {"text/rude-rejection", ESL_MSG_RUDE_REJECTION},
    {"log/data", ESL_MSG_LOG_DATA},
};

struct esl_str esl_message_header(const struct esl_message *m, const char *name)
{
    for (size_t i = 0; i < m->n_headers; i++)
        if (esl_str_eq(m->headers[i].name, name)) return m->headers[i].value;
    return no_str;
}

/* Walks an event-plain text: header lines up to the empty line, then the body its
 * Content-Length announces, which must be exactly what is left. Calls add (nullable) per header
 * (the Content-Length line excluded). */
typedef void (*header_fn)(void *ctx, const struct esl_header_span *h);

static int walk_plain(const char *p, size_t n, header_fn add, void *ctx, size_t *block_len,
                      size_t *n_headers, const char **body, size_t *body_len, const char **err)
{
    const char *base = p, *end = p + n, *ce, *next;
    uint64_t clen = 0;
    bool has_clen = false;
    size_t count = 0;
    for (;;) {
        if (!next_line(p, end, &ce, &next)) {
            *err = "event headers not ended by an empty line";
            return ESL_ERROR;
        }
        if (ce == p) break;
        if (has_nul(p, ce)) {
            *err = "NUL byte in event headers";
            return ESL_ERROR;
        }
        struct esl_header_span h;
        if (!split_header(p, ce, &h)) {
            *err = "event header line without a name and ':'";
            return ESL_ERROR;
        }
        if (span_eq(h.name.ptr, h.name.len, "Content-Length")) {
            if (has_clen || !parse_digits(h.value.ptr, h.value.len, n, &clen)) {
                *err = "bad Content-Length in event";
                return ESL_ERROR;
            }
            has_clen = true;
        } else {
            if (++count > ESL_MAX_EVENT_HEADERS) {
                *err = "too many event headers";
                return ESL_ERROR;
            }
            if (add) add(ctx, &h);
        }
        p = next;
    }
    *block_len = (size_t)(p - base);
    size_t rest = (size_t)(end - next);
    if (rest != (has_clen ? clen : 0)) {
        *err = "event body does not match its Content-Length";
        return ESL_ERROR;
    }
    *n_headers = count;
    *body = has_clen ? next : NULL;
    *body_len = rest;
    return ESL_OK;
}

int esl_parse_message(const uint8_t *buf, size_t len, size_t max_bytes, struct esl_message *m,
                      const char **err)
{
    if (!max_bytes) max_bytes = ESL_DEFAULT_MAX_MESSAGE;
    memset(m, 0, sizeof *m);
    *err = NULL;
    if (!len) return ESL_AGAIN; /* nothing yet (buf may be NULL) */
    size_t lim = len < max_bytes ? len : max_bytes;
    const char *base = (const char *)buf, *p = base, *end = base + lim, *ce, *next;
    uint64_t clen = 0;
    bool has_clen = false;

    for (;;) {
        if (!next_line(p, end, &ce, &next)) goto more;
        if (ce == p) {
            if (p == base) {
                *err = "message starts with an empty line";
                return ESL_ERROR;
            }
            p = next;
            break;
        }
        if (has_nul(p, ce)) {
            *err = "NUL byte in message headers";
            return ESL_ERROR;
        }
        if (m->n_headers == ESL_MAX_MESSAGE_HEADERS) {
            *err = "too many message headers";
            return ESL_ERROR;
        }
        struct esl_header_span *h = &m->headers[m->n_headers];
        if (!split_header(p, ce, h)) {
            *err = "message header line without a name and ':'";
            return ESL_ERROR;
        }
        m->n_headers++;
        if (span_eq(h->name.ptr, h->name.len, "Content-Length")) {
            if (has_clen || !parse_digits(h->value.ptr, h->value.len, max_bytes, &clen)) {
                *err = "bad Content-Length in message";
                return ESL_ERROR;
            }
            has_clen = true;
        } else if (span_eq(h->name.ptr, h->name.len, "Content-Type")) {
            m->content_type = h->value;
        } else if (span_eq(h->name.ptr, h->name.len, "Reply-Text")) {
            m->reply_text = h->value;
        } else if (span_eq(h->name.ptr, h->name.len, "Job-UUID")) {
            m->job_uuid = h->value;
        }
        p = next;
    }

    size_t head = (size_t)(p - base);
    if (clen > max_bytes - head) {
        *err = "message longer than the limit";
        return ESL_ERROR;
    }
    if (len - head < clen) return ESL_AGAIN;
    if (has_clen) {
        m->body = buf + head;
        m->body_len = (size_t)clen;
    }
    m->consumed = head + (size_t)clen;
    for (size_t i = 0; i < sizeof ctypes / sizeof ctypes[0]; i++)
        if (esl_str_eq(m->content_type, ctypes[i].ctype)) m->type = ctypes[i].type;

    if (m->type == ESL_MSG_EVENT_PLAIN) {
        const char *body;
        if (!m->body) {
            *err = "text/event-plain without a body";
            return ESL_ERROR;
        }
        if (walk_plain((const char *)m->body, m->body_len, NULL, NULL, &m->event_block_len,
                       &m->event_n_headers, &body, &m->event_body_len, err) != ESL_OK)
            return ESL_ERROR;
        m->event_block = m->body;
        m->event_body = (const uint8_t *)body;
    }
    return ESL_OK;

more:
    if (len >= max_bytes) {
        *err = "message longer than the limit";
        return ESL_ERROR;
    }
    return ESL_AGAIN;
}

static void add_decoded(void *ctx, const struct esl_header_span *h)
{
    struct esl_event *ev = ctx;
    char *v = arena_alloc(ev->arena, h->value.len + 1);
    size_t vn = esl_url_decode(h->value.ptr, h->value.len, v);
    esl_event_add_n(ev, h->name.ptr, h->name.len, v, vn);
}

int esl_event_parse_plain(const uint8_t *p, size_t n, struct arena *a, struct esl_event *ev,
                          const char **err)
{
    size_t block_len, n_headers, body_len;
    const char *body;
    *err = NULL;
    esl_event_init(ev, a);
    /* check first, so that a refused event adds nothing */
    if (walk_plain((const char *)p, n, NULL, NULL, &block_len, &n_headers, &body, &body_len, err) !=
        ESL_OK)
        return ESL_ERROR;
    walk_plain((const char *)p, n, add_decoded, ev, &block_len, &n_headers, &body, &body_len, err);
    if (body) esl_event_set_body(ev, body, body_len);
    return ESL_OK;
}

int esl_message_event(const struct esl_message *m, struct arena *a, struct esl_event *ev,
                      const char **err)
{
    if (m->type != ESL_MSG_EVENT_PLAIN || !m->body) {
        esl_event_init(ev, a);
        *err = "not a text/event-plain message";
        return ESL_ERROR;
    }
    return esl_event_parse_plain(m->body, m->body_len, a, ev, err);
}

/* ---- client commands (client side) ------------------------------------------------------------
 */

static bool line_safe(const char *s)
{
    return s && strpbrk(s, "\r\n") == NULL;
}

int esl_put_client_command(struct buf *out, const char *line)
{
    if (!line_safe(line)) return ESL_ERROR;
    put_cstr(out, line);
    put_cstr(out, "\n\n");
    return ESL_OK;
}

static int put_verb_line(struct buf *out, const char *verb, const char *rest)
{
    if (!line_safe(rest)) return ESL_ERROR;
    put_cstr(out, verb);
    buf_put_u8(out, ' ');
    put_cstr(out, rest);
    put_cstr(out, "\n\n");
    return ESL_OK;
}

int esl_put_client_auth(struct buf *out, const char *password)
{
    return put_verb_line(out, "auth", password);
}

int esl_put_client_api(struct buf *out, const char *command_line)
{
    return put_verb_line(out, "api", command_line);
}

int esl_put_client_bgapi(struct buf *out, const char *command_line, const char *job_uuid)
{
    if (!line_safe(command_line) || (job_uuid && !line_safe(job_uuid))) return ESL_ERROR;
    put_cstr(out, "bgapi ");
    put_cstr(out, command_line);
    if (job_uuid) {
        put_cstr(out, "\nJob-UUID: ");
        put_cstr(out, job_uuid);
    }
    put_cstr(out, "\n\n");
    return ESL_OK;
}

int esl_put_client_event(struct buf *out, enum esl_format fmt, const char *names)
{
    static const char *const fmts[] = {"event plain", "event json", "event xml"};
    if ((unsigned)fmt > ESL_FORMAT_XML) return ESL_ERROR;
    return put_verb_line(out, fmts[fmt], names);
}
