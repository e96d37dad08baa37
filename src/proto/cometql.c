/* cometql: the CometQL lexer and recursive-descent parser (see cometql.h). Pure: no I/O, no
 * globals, no malloc. Every byte it hands out comes from the caller's arena, and every input byte
 * is read through (src, len), so embedded NULs and truncated input are harmless. It never trusts
 * the input: names are bounded by CQ_NAME_MAX, lists by struct cq_limits, nesting by MAX_DEPTH.
 *
 * The lexer runs on demand, one token of lookahead (plus peek()), so memory stays proportional to
 * what the statement keeps, not to the token count. Tokens record spans; string literals are
 * unescaped only when the parser consumes them. A lexer error leaves the current token as
 * TK_ERROR, which nothing matches, so the first error's message is the one reported. */
#include "proto/cometql.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH  32  /* nested parentheses around conditions */
#define NEAR_MAX   40  /* bytes of remaining text quoted in a syntax error */
#define ALIAS_MAX  256 /* MySQL's limit on a column alias */
#define PARAMS_MAX 65535

enum tk {
    TK_EOF,
    TK_ERROR,
    TK_IDENT,   /* bare identifier or keyword */
    TK_QIDENT,  /* `backquoted` */
    TK_STRING,  /* '...' or "...", maybe with an introducer (_utf8mb4'...', N'...') */
    TK_HEX,     /* X'4142' or 0x4142 */
    TK_INT,     /* unsigned magnitude; a sign is a separate token */
    TK_DECIMAL, /* 1.5, 1e3: kept as source text */
    TK_PARAM,   /* ? */
    TK_LPAREN,
    TK_RPAREN,
    TK_COMMA,
    TK_SEMI,
    TK_EQ,
    TK_NE,
    TK_LT,
    TK_GT,
    TK_LE,
    TK_GE,
    TK_DOT,
    TK_STAR,
    TK_ATAT,
    TK_AT,
    TK_PLUS,
    TK_MINUS,
    TK_ASSIGN, /* := */
};

struct token {
    enum tk type;
    size_t start, end;     /* the token's bytes, introducer and quotes included */
    size_t body, body_end; /* STRING/QIDENT: between the quotes; HEX: the digits */
    char quote;            /* STRING: ' or " */
    uint64_t num;          /* INT: the magnitude */
    bool overflow;         /* INT: does not fit in 64 bits */
};

struct lexer {
    size_t pos;
    bool in_vcomment; /* inside a MySQL versioned comment whose closing star-slash is skipped */
    size_t vcomment_at;
};

struct parser {
    const char *src;
    size_t len;
    struct lexer lx;  /* positioned just after cur */
    struct token cur; /* the current (next unconsumed) token */
    size_t prev_end;  /* end of the last consumed token */
    struct cq_limits lim;
    bool allow_params;
    int depth;
    struct arena *arena;
    struct cq_stmt *st;
    struct cq_error *err;
    size_t cap_columns, cap_where, cap_order, cap_rows, cap_assigns, cap_sets;
};

/* A saved parser position, to try one reading and fall back to another. */
struct mark {
    struct lexer lx;
    struct token cur;
    size_t prev_end;
    unsigned n_params;
};

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        if (!(expr)) return false;                                                                 \
    } while (0)

/* ---- characters ------------------------------------------------------------------------- */

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_ident_byte(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || c == '_' || c == '$' || c >= 0x80;
}

static int hex_val(unsigned char c)
{
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static unsigned char to_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

static void lower_inplace(char *s)
{
    for (; *s; s++)
        *s = (char)to_lower((unsigned char)*s);
}

/* ---- errors ----------------------------------------------------------------------------- */

static void set_error(struct cq_error *err, int code, const char *fmt, va_list ap)
{
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

/* Reports an error and returns false, unless the current token is a lexer error, whose message
 * (written when it was lexed) is the better one. */
static bool fail(struct parser *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(struct parser *p, int code, const char *fmt, ...)
{
    if (p->cur.type == TK_ERROR) return false;
    va_list ap;
    va_start(ap, fmt);
    set_error(p->err, code, fmt, ap);
    va_end(ap);
    return false;
}

static void lex_fail(struct parser *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void lex_fail(struct parser *p, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(p->err, code, fmt, ap);
    va_end(ap);
}

/* Up to NEAR_MAX bytes of src from pos, cut at a UTF-8 character boundary, control bytes made
 * printable so the message stays one line of text. */
static void near_text(const struct parser *p, size_t pos, char *out, size_t outsz)
{
    size_t n = pos < p->len ? p->len - pos : 0;
    if (n > NEAR_MAX) {
        n = NEAR_MAX;
        while (n > 0 && ((unsigned char)p->src[pos + n] & 0xC0) == 0x80)
            n--;
    }
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < outsz; i++) {
        unsigned char c = (unsigned char)p->src[pos + i];
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
        else if (c < 0x20 || c == 0x7f)
            c = '?';
        out[o++] = (char)c;
    }
    out[o] = '\0';
}

static unsigned long line_of(const struct parser *p, size_t pos)
{
    unsigned long line = 1;
    for (size_t i = 0; i < pos && i < p->len; i++)
        if (p->src[i] == '\n') line++;
    return line;
}

static void lex_syntax_error(struct parser *p, size_t pos, const char *detail)
{
    char near[NEAR_MAX + 1];
    near_text(p, pos, near, sizeof near);
    lex_fail(p, CQ_ERR_SYNTAX,
             "You have an error in your CometQL syntax (%s) near '%s' at line %lu", detail, near,
             line_of(p, pos));
}

static bool syntax_error(struct parser *p, size_t pos, const char *detail)
{
    char near[NEAR_MAX + 1];
    near_text(p, pos, near, sizeof near);
    if (detail)
        return fail(p, CQ_ERR_SYNTAX,
                    "You have an error in your CometQL syntax (%s) near '%s' at line %lu", detail,
                    near, line_of(p, pos));
    return fail(p, CQ_ERR_SYNTAX, "You have an error in your CometQL syntax near '%s' at line %lu",
                near, line_of(p, pos));
}

static bool unexpected(struct parser *p)
{
    return syntax_error(p, p->cur.start, NULL);
}

/* ---- lexer ------------------------------------------------------------------------------ */

static bool ident_too_long(struct parser *p, size_t start, size_t n)
{
    if (n <= CQ_NAME_MAX) return false;
    lex_fail(p, CQ_ERR_SYNTAX, "Identifier name '%.*s...' is too long (max %d characters)", 40,
             p->src + start, CQ_NAME_MAX);
    return true;
}

/* Scans a '...' or "..." literal whose opening quote is at q; returns false if unterminated. */
static bool scan_string(struct parser *p, size_t q, struct token *t)
{
    const unsigned char *s = (const unsigned char *)p->src;
    unsigned char quote = s[q];
    size_t k = q + 1;
    for (;;) {
        if (k >= p->len) {
            lex_syntax_error(p, t->start, "unterminated string");
            return false;
        }
        if (s[k] == '\\') {
            if (k + 1 >= p->len) {
                lex_syntax_error(p, t->start, "unterminated string");
                return false;
            }
            k += 2;
            continue;
        }
        if (s[k] == quote) {
            if (k + 1 < p->len && s[k + 1] == quote) {
                k += 2;
                continue;
            }
            break;
        }
        k++;
    }
    t->type = TK_STRING;
    t->quote = (char)quote;
    t->body = q + 1;
    t->body_end = k;
    t->end = k + 1;
    return true;
}

/* Classifies a run of identifier bytes that starts with a digit: an integer (maybe a decimal
 * with a fraction), 0x hex, a float with an exponent, or (as MySQL allows) an identifier. */
static bool lex_numberish(struct parser *p, size_t i, size_t j, struct token *t)
{
    const unsigned char *s = (const unsigned char *)p->src;
    size_t n = p->len, d = i;
    while (d < j && is_digit(s[d]))
        d++;
    if (d == j) { /* all digits */
        size_t k = j;
        if (k < n && s[k] == '.') {
            k++;
            while (k < n && is_digit(s[k]))
                k++;
            if (k < n && (s[k] == 'e' || s[k] == 'E')) {
                if (k + 1 < n && is_digit(s[k + 1])) {
                    k += 2;
                } else if (k + 2 < n && (s[k + 1] == '+' || s[k + 1] == '-') &&
                           is_digit(s[k + 2])) {
                    k += 3;
                }
                while (k < n && is_digit(s[k]))
                    k++;
            }
            t->type = TK_DECIMAL;
            t->end = k;
            return true;
        }
        uint64_t v = 0;
        for (size_t x = i; x < j; x++) {
            unsigned dg = (unsigned)(s[x] - '0');
            if (v > (UINT64_MAX - dg) / 10)
                t->overflow = true;
            else
                v = v * 10 + dg;
        }
        t->type = TK_INT;
        t->num = v;
        t->end = j;
        return true;
    }
    if (j - i > 2 && s[i] == '0' && s[i + 1] == 'x') {
        size_t x = i + 2;
        while (x < j && hex_val(s[x]) >= 0)
            x++;
        if (x == j) {
            t->type = TK_HEX;
            t->body = i + 2;
            t->body_end = j;
            t->end = j;
            return true;
        }
    }
    if (d > i && (s[d] == 'e' || s[d] == 'E')) {
        size_t x = d + 1;
        while (x < j && is_digit(s[x]))
            x++;
        if (x == j && j > d + 1) { /* 1e3 */
            t->type = TK_DECIMAL;
            t->end = j;
            return true;
        }
        if (d + 1 == j && j + 1 < n && (s[j] == '+' || s[j] == '-') && is_digit(s[j + 1])) {
            size_t k = j + 1; /* 1e+3 */
            while (k < n && is_digit(s[k]))
                k++;
            t->type = TK_DECIMAL;
            t->end = k;
            return true;
        }
    }
    if (ident_too_long(p, i, j - i)) return false;
    t->type = TK_IDENT;
    t->end = j;
    return true;
}

/* Lexes the next token at lx->pos into t and advances lx. On error writes p->err, sets t->type
 * to TK_ERROR and leaves lx where it was (lexing again repeats the error). */
static bool lex(struct parser *p, struct lexer *lx, struct token *t)
{
    const unsigned char *s = (const unsigned char *)p->src;
    size_t n = p->len, i = lx->pos;
    bool in_vcomment = lx->in_vcomment;
    size_t vcomment_at = lx->vcomment_at;
    memset(t, 0, sizeof *t);

    for (;;) { /* whitespace and comments */
        if (i >= n) break;
        unsigned char c = s[i];
        if (is_space(c)) {
            i++;
        } else if (c == '#' ||
                   (c == '-' && i + 1 < n && s[i + 1] == '-' && (i + 2 >= n || s[i + 2] <= 0x20))) {
            while (i < n && s[i] != '\n')
                i++;
        } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
            size_t k = i + 2;
            if (k < n && (s[k] == '!' || (s[k] == 'M' && k + 1 < n && s[k + 1] == '!'))) {
                /* MySQL's versioned comment (slash-star-bang, optional 5 digit version) and
                 * MariaDB's (slash-star-M-bang): the content is code */
                k += s[k] == '!' ? 1 : 2;
                size_t d = k;
                while (d < n && d - k < 6 && is_digit(s[d]))
                    d++;
                if (d - k >= 5) k = d;
                if (!in_vcomment) vcomment_at = i;
                in_vcomment = true;
                i = k;
                continue;
            }
            while (k + 1 < n && !(s[k] == '*' && s[k + 1] == '/'))
                k++;
            if (k + 1 >= n) {
                t->type = TK_ERROR;
                t->start = t->end = i;
                lex_syntax_error(p, i, "unterminated comment");
                return false;
            }
            i = k + 2;
        } else if (c == '*' && in_vcomment && i + 1 < n && s[i + 1] == '/') {
            in_vcomment = false;
            i += 2;
        } else {
            break;
        }
    }

    t->start = i;
    t->end = i + 1;
    if (i >= n) {
        t->end = i;
        if (in_vcomment) {
            t->type = TK_ERROR;
            lex_syntax_error(p, vcomment_at, "unterminated comment");
            return false;
        }
        t->type = TK_EOF;
        lx->pos = i;
        lx->in_vcomment = in_vcomment;
        lx->vcomment_at = vcomment_at;
        return true;
    }

    unsigned char c = s[i];
    unsigned char c1 = i + 1 < n ? s[i + 1] : 0;
    bool ok = true;
    switch (c) {
    case '(': t->type = TK_LPAREN; break;
    case ')': t->type = TK_RPAREN; break;
    case ',': t->type = TK_COMMA; break;
    case ';': t->type = TK_SEMI; break;
    case '=': t->type = TK_EQ; break;
    case '.': t->type = TK_DOT; break;
    case '*': t->type = TK_STAR; break;
    case '?': t->type = TK_PARAM; break;
    case '+': t->type = TK_PLUS; break;
    case '-': t->type = TK_MINUS; break;
    case '<':
        if (c1 == '=') {
            t->type = TK_LE;
            t->end = i + 2;
        } else if (c1 == '>') {
            t->type = TK_NE;
            t->end = i + 2;
        } else {
            t->type = TK_LT;
        }
        break;
    case '>':
        if (c1 == '=') {
            t->type = TK_GE;
            t->end = i + 2;
        } else {
            t->type = TK_GT;
        }
        break;
    case '!':
        if (c1 == '=') {
            t->type = TK_NE;
            t->end = i + 2;
        } else {
            ok = false;
        }
        break;
    case ':':
        if (c1 == '=') {
            t->type = TK_ASSIGN;
            t->end = i + 2;
        } else {
            ok = false;
        }
        break;
    case '@':
        if (c1 == '@') {
            t->type = TK_ATAT;
            t->end = i + 2;
        } else {
            t->type = TK_AT;
        }
        break;
    case '\'':
    case '"':
        if (!scan_string(p, i, t)) goto error;
        break;
    case '`': {
        size_t k = i + 1, count = 0;
        for (;;) {
            if (k >= n) {
                lex_syntax_error(p, i, "unterminated quoted identifier");
                goto error;
            }
            if (s[k] == '`') {
                if (k + 1 < n && s[k + 1] == '`') {
                    k += 2;
                    count++;
                    continue;
                }
                break;
            }
            if (s[k] == '\0') {
                lex_syntax_error(p, i, "NUL byte in an identifier");
                goto error;
            }
            k++;
            count++;
        }
        if (count == 0) {
            lex_syntax_error(p, i, "empty identifier");
            goto error;
        }
        if (ident_too_long(p, i + 1, count)) goto error;
        t->type = TK_QIDENT;
        t->body = i + 1;
        t->body_end = k;
        t->end = k + 1;
        break;
    }
    default:
        if (is_ident_byte(c)) {
            size_t j = i;
            while (j < n && is_ident_byte(s[j]))
                j++;
            if (is_digit(c)) {
                if (!lex_numberish(p, i, j, t)) goto error;
                break;
            }
            if (j < n && s[j] == '\'' && j == i + 1 && (c == 'x' || c == 'X')) {
                size_t k = j + 1; /* X'4142' */
                while (k < n && hex_val(s[k]) >= 0)
                    k++;
                if (k >= n || s[k] != '\'' || (k - j - 1) % 2 != 0) {
                    lex_syntax_error(p, i, "invalid hexadecimal literal");
                    goto error;
                }
                t->type = TK_HEX;
                t->body = j + 1;
                t->body_end = k;
                t->end = k + 1;
                break;
            }
            if (j < n && (s[j] == '\'' || s[j] == '"') &&
                ((j == i + 1 && (c == 'n' || c == 'N')) || c == '_')) {
                /* a charset introducer (_utf8mb4'x', _binary'x') or N'x': ignored */
                if (!scan_string(p, j, t)) goto error;
                break;
            }
            if (ident_too_long(p, i, j - i)) goto error;
            t->type = TK_IDENT;
            t->end = j;
            break;
        }
        ok = false;
        break;
    }
    if (!ok) {
        lex_syntax_error(p, i, "unexpected character");
        goto error;
    }
    lx->pos = t->end;
    lx->in_vcomment = in_vcomment;
    lx->vcomment_at = vcomment_at;
    return true;

error:
    t->type = TK_ERROR;
    t->start = i;
    return false;
}

/* ---- token helpers ---------------------------------------------------------------------- */

static void advance(struct parser *p)
{
    p->prev_end = p->cur.end;
    lex(p, &p->lx, &p->cur);
}

static struct token peek(struct parser *p)
{
    struct lexer l2 = p->lx;
    struct token t;
    lex(p, &l2, &t);
    return t;
}

static struct mark mark(const struct parser *p)
{
    struct mark m = {p->lx, p->cur, p->prev_end, p->st->n_params};
    return m;
}

static void rewind_to(struct parser *p, const struct mark *m)
{
    p->lx = m->lx;
    p->cur = m->cur;
    p->prev_end = m->prev_end;
    p->st->n_params = m->n_params;
}

static bool tok_is(const struct parser *p, const struct token *t, const char *kw)
{
    if (t->type != TK_IDENT) return false;
    size_t n = t->end - t->start;
    if (strlen(kw) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (to_lower((unsigned char)p->src[t->start + i]) != (unsigned char)kw[i]) return false;
    return true;
}

static bool is_kw(const struct parser *p, const char *kw)
{
    return tok_is(p, &p->cur, kw);
}

static bool accept_kw(struct parser *p, const char *kw)
{
    if (!is_kw(p, kw)) return false;
    advance(p);
    return true;
}

static bool expect_kw(struct parser *p, const char *kw)
{
    if (accept_kw(p, kw)) return true;
    return unexpected(p);
}

static bool accept(struct parser *p, enum tk type)
{
    if (p->cur.type != type) return false;
    advance(p);
    return true;
}

static bool expect(struct parser *p, enum tk type)
{
    if (accept(p, type)) return true;
    return unexpected(p);
}

/* Words that end a name position; anything else bare may name a table or column (CometQL has
 * columns called `index`, `time` and `status`, which MySQL would make you backquote). */
static bool is_reserved(const struct parser *p, const struct token *t)
{
    static const char *const words[] = {
        "and",   "as",  "asc",  "by", "desc",  "false",  "from", "in",   "into",   "is",    "like",
        "limit", "not", "null", "or", "order", "select", "set",  "true", "values", "where",
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (tok_is(p, t, words[i])) return true;
    return false;
}

/* (transfer none) the identifier's text, backquotes undone, case kept. */
static char *ident_text(struct parser *p, const struct token *t)
{
    if (t->type != TK_QIDENT) return arena_strndup(p->arena, p->src + t->start, t->end - t->start);
    char *out = arena_alloc(p->arena, t->body_end - t->body + 1);
    size_t o = 0;
    for (size_t i = t->body; i < t->body_end; i++) {
        out[o++] = p->src[i];
        if (p->src[i] == '`') i++; /* `` */
    }
    out[o] = '\0';
    return out;
}

static char *lower_ident(struct parser *p, const struct token *t)
{
    char *s = ident_text(p, t);
    lower_inplace(s);
    return s;
}

/* Grows an arena array so that index n fits. */
static void *grow(struct parser *p, void *arr, size_t n, size_t *cap, size_t elsize)
{
    if (n < *cap) return arr;
    size_t nc = *cap ? *cap * 2 : 4;
    void *na = arena_alloc(p->arena, nc * elsize);
    if (n) memcpy(na, arr, n * elsize);
    *cap = nc;
    return na;
}

static bool too_many(struct parser *p, const char *what, const char *limit, size_t max)
{
    return fail(p, CQ_ERR_TOO_MANY, "Too many %s (%s = %zu)", what, limit, max);
}

/* ---- literals --------------------------------------------------------------------------- */

/* MySQL's escapes; \% and \_ keep their backslash so LIKE patterns still see them. */
static size_t unescape(const char *body, size_t len, char quote, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        char c = body[i];
        if (c == '\\' && i + 1 < len) {
            char e = body[i + 1];
            i += 2;
            switch (e) {
            case '0': out[o++] = '\0'; break;
            case 'b': out[o++] = '\b'; break;
            case 'n': out[o++] = '\n'; break;
            case 'r': out[o++] = '\r'; break;
            case 't': out[o++] = '\t'; break;
            case 'Z': out[o++] = '\x1a'; break;
            case '%':
            case '_':
                out[o++] = '\\';
                out[o++] = e;
                break;
            default: out[o++] = e; break;
            }
        } else if (c == quote && i + 1 < len && body[i + 1] == quote) {
            out[o++] = quote;
            i += 2;
        } else {
            out[o++] = c;
            i++;
        }
    }
    return o;
}

/* Consumes a string literal (adjacent ones concatenated) or a hex literal. The result is
 * NUL-terminated in the arena (the terminator is not counted in len). */
static bool string_value(struct parser *p, struct value *v)
{
    if (p->cur.type == TK_HEX) {
        size_t nd = p->cur.body_end - p->cur.body;
        char *buf = arena_alloc(p->arena, nd / 2 + 2);
        size_t o = 0, k = p->cur.body;
        if (nd % 2) buf[o++] = (char)hex_val((unsigned char)p->src[k++]);
        for (; k + 1 < p->cur.body_end; k += 2)
            buf[o++] = (char)(hex_val((unsigned char)p->src[k]) * 16 +
                              hex_val((unsigned char)p->src[k + 1]));
        buf[o] = '\0';
        *v = value_str(buf, o);
        advance(p);
        return true;
    }
    if (p->cur.type != TK_STRING) return unexpected(p);
    size_t total = 0;
    struct lexer l2 = p->lx;
    struct token t = p->cur;
    while (t.type == TK_STRING) {
        total += t.body_end - t.body;
        lex(p, &l2, &t);
    }
    char *buf = arena_alloc(p->arena, total + 1);
    size_t o = 0;
    while (p->cur.type == TK_STRING) {
        o += unescape(p->src + p->cur.body, p->cur.body_end - p->cur.body, p->cur.quote, buf + o);
        advance(p);
    }
    buf[o] = '\0';
    *v = value_str(buf, o);
    return true;
}

static bool int_value(struct parser *p, bool neg, size_t at, int64_t *out)
{
    const struct token *t = &p->cur;
    if (t->overflow || t->num > (uint64_t)INT64_MAX + (neg ? 1 : 0)) {
        char near[NEAR_MAX + 1];
        near_text(p, at, near, sizeof near);
        return fail(p, CQ_ERR_OVERFLOW, "Number out of range near '%s' at line %lu", near,
                    line_of(p, at));
    }
    if (!neg)
        *out = (int64_t)t->num;
    else if (t->num == (uint64_t)INT64_MAX + 1)
        *out = INT64_MIN;
    else
        *out = -(int64_t)t->num;
    advance(p);
    return true;
}

static bool take_param(struct parser *p, int *index)
{
    if (!p->allow_params)
        return syntax_error(p, p->cur.start,
                            "'?' placeholders are only allowed in prepared "
                            "statements");
    if (p->st->n_params >= PARAMS_MAX) return too_many(p, "placeholders", "max", PARAMS_MAX);
    *index = (int)p->st->n_params++;
    advance(p);
    return true;
}

/* A value: a literal (number with optional signs, string, hex, NULL, TRUE, FALSE) or `?`. */
static bool parse_operand(struct parser *p, struct cq_operand *o)
{
    o->param = -1;
    o->v = value_null();
    size_t at = p->cur.start;
    bool neg = false, sign = false;
    while (p->cur.type == TK_PLUS || p->cur.type == TK_MINUS) {
        if (p->cur.type == TK_MINUS) neg = !neg;
        sign = true;
        advance(p);
    }
    switch (p->cur.type) {
    case TK_INT: {
        int64_t i = 0;
        TRY(int_value(p, neg, at, &i));
        o->v = value_int(i);
        return true;
    }
    case TK_DECIMAL: {
        size_t n = p->cur.end - p->cur.start;
        char *s = arena_alloc(p->arena, n + 2);
        size_t o2 = 0;
        if (neg) s[o2++] = '-';
        memcpy(s + o2, p->src + p->cur.start, n);
        o2 += n;
        s[o2] = '\0';
        o->v = value_str(s, o2);
        advance(p);
        return true;
    }
    default: break;
    }
    if (sign) return unexpected(p);
    switch (p->cur.type) {
    case TK_STRING:
    case TK_HEX: return string_value(p, &o->v);
    case TK_PARAM: return take_param(p, &o->param);
    case TK_IDENT:
        if (accept_kw(p, "null")) return true;
        if (accept_kw(p, "true")) {
            o->v = value_int(1);
            return true;
        }
        if (accept_kw(p, "false")) {
            o->v = value_int(0);
            return true;
        }
        return unexpected(p);
    default: return unexpected(p);
    }
}

/* A table or column name: a bare identifier that is not a reserved word, a backquoted one, or
 * (as CppComet allowed) a quoted string. (transfer none) arena copy, case kept. */
static bool parse_name(struct parser *p, char **out)
{
    switch (p->cur.type) {
    case TK_IDENT:
        if (is_reserved(p, &p->cur)) return unexpected(p);
        /* fallthrough */
    case TK_QIDENT:
        *out = ident_text(p, &p->cur);
        advance(p);
        return true;
    case TK_STRING: {
        size_t at = p->cur.start;
        struct value v = value_null();
        TRY(string_value(p, &v));
        if (v.len == 0 || memchr(v.s, '\0', v.len)) return syntax_error(p, at, "invalid name");
        if (v.len > CQ_NAME_MAX)
            return fail(p, CQ_ERR_SYNTAX,
                        "Identifier name '%.40s...' is too long (max %d characters)", v.s,
                        CQ_NAME_MAX);
        *out = (char *)v.s;
        return true;
    }
    default: return unexpected(p);
    }
}

static bool parse_lower_name(struct parser *p, const char **out)
{
    char *s = NULL;
    TRY(parse_name(p, &s));
    lower_inplace(s);
    *out = s;
    return true;
}

/* [db.]table: the table lowercased, the db as typed. */
static bool parse_table(struct parser *p)
{
    char *a = NULL;
    TRY(parse_name(p, &a));
    if (accept(p, TK_DOT)) {
        char *b = NULL;
        TRY(parse_name(p, &b));
        p->st->db = a;
        a = b;
    }
    lower_inplace(a);
    p->st->table = a;
    return true;
}

/* ---- clauses ---------------------------------------------------------------------------- */

static bool push_cond(struct parser *p, const struct cq_cond *c)
{
    struct cq_stmt *st = p->st;
    if (st->n_where >= p->lim.max_conditions)
        return too_many(p, "conditions in WHERE", "max_conditions", p->lim.max_conditions);
    st->where = grow(p, st->where, st->n_where, &p->cap_where, sizeof *st->where);
    st->where[st->n_where++] = *c;
    return true;
}

static bool parse_in_list(struct parser *p, struct cq_cond *c)
{
    TRY(expect(p, TK_LPAREN));
    size_t cap = 0;
    do {
        if (c->n_values >= p->lim.max_in_values)
            return too_many(p, "values in an IN list", "max_in_values", p->lim.max_in_values);
        c->values = grow(p, c->values, c->n_values, &cap, sizeof *c->values);
        TRY(parse_operand(p, &c->values[c->n_values]));
        c->n_values++;
    } while (accept(p, TK_COMMA));
    return expect(p, TK_RPAREN);
}

/* column op value(s) */
static bool parse_cond(struct parser *p)
{
    struct cq_cond c;
    memset(&c, 0, sizeof c);
    if (is_kw(p, "not"))
        return fail(p, CQ_ERR_NOT_IMPLEMENTED, "Operator NOT is not supported in CometQL");
    TRY(parse_lower_name(p, &c.column));
    enum tk t = p->cur.type;
    if (t == TK_EQ || t == TK_NE || t == TK_LT || t == TK_GT || t == TK_LE || t == TK_GE) {
        c.op = t == TK_EQ   ? CQ_OP_EQ
               : t == TK_NE ? CQ_OP_NE
               : t == TK_LT ? CQ_OP_LT
               : t == TK_GT ? CQ_OP_GT
               : t == TK_LE ? CQ_OP_LE
                            : CQ_OP_GE;
        advance(p);
    } else if (accept_kw(p, "in")) {
        c.op = CQ_OP_IN;
        TRY(parse_in_list(p, &c));
        return push_cond(p, &c);
    } else if (accept_kw(p, "not")) {
        if (accept_kw(p, "in")) {
            c.op = CQ_OP_NOT_IN;
            TRY(parse_in_list(p, &c));
            return push_cond(p, &c);
        }
        if (is_kw(p, "like"))
            return fail(p, CQ_ERR_NOT_IMPLEMENTED, "Operator NOT LIKE is not supported in CometQL");
        return unexpected(p);
    } else if (accept_kw(p, "like")) {
        c.op = CQ_OP_LIKE;
    } else if (accept_kw(p, "is")) {
        c.op = accept_kw(p, "not") ? CQ_OP_IS_NOT_NULL : CQ_OP_IS_NULL;
        TRY(expect_kw(p, "null"));
        return push_cond(p, &c);
    } else {
        return unexpected(p);
    }
    c.values = arena_alloc(p->arena, sizeof *c.values);
    c.n_values = 1;
    TRY(parse_operand(p, &c.values[0]));
    if (c.op == CQ_OP_LIKE && is_kw(p, "escape"))
        return fail(p, CQ_ERR_NOT_IMPLEMENTED, "LIKE ... ESCAPE is not supported in CometQL");
    return push_cond(p, &c);
}

static bool parse_cond_list(struct parser *p);

static bool parse_cond_term(struct parser *p)
{
    if (p->cur.type != TK_LPAREN) return parse_cond(p);
    if (p->depth >= MAX_DEPTH)
        return fail(p, CQ_ERR_TOO_MANY, "Too many nested parentheses (max %d)", MAX_DEPTH);
    p->depth++;
    advance(p);
    TRY(parse_cond_list(p));
    TRY(expect(p, TK_RPAREN));
    p->depth--;
    return true;
}

static bool parse_cond_list(struct parser *p)
{
    for (;;) {
        TRY(parse_cond_term(p));
        if (is_kw(p, "or") || is_kw(p, "xor"))
            return fail(p, CQ_ERR_NOT_IMPLEMENTED, "Operator %s is not supported in CometQL",
                        is_kw(p, "or") ? "OR" : "XOR");
        if (!accept_kw(p, "and")) return true;
    }
}

static bool parse_where(struct parser *p)
{
    if (!accept_kw(p, "where")) return true;
    return parse_cond_list(p);
}

static bool parse_order_by(struct parser *p)
{
    if (!accept_kw(p, "order")) return true;
    TRY(expect_kw(p, "by"));
    struct cq_stmt *st = p->st;
    do {
        if (st->n_order >= p->lim.max_columns)
            return too_many(p, "ORDER BY columns", "max_columns", p->lim.max_columns);
        st->order = grow(p, st->order, st->n_order, &p->cap_order, sizeof *st->order);
        struct cq_order *o = &st->order[st->n_order];
        TRY(parse_lower_name(p, &o->column));
        o->desc = false;
        if (accept_kw(p, "desc"))
            o->desc = true;
        else
            accept_kw(p, "asc");
        st->n_order++;
    } while (accept(p, TK_COMMA));
    return true;
}

static bool parse_uint(struct parser *p, uint64_t *out)
{
    if (p->cur.type != TK_INT) return unexpected(p);
    if (p->cur.overflow) {
        char near[NEAR_MAX + 1];
        near_text(p, p->cur.start, near, sizeof near);
        return fail(p, CQ_ERR_OVERFLOW, "Number out of range near '%s' at line %lu", near,
                    line_of(p, p->cur.start));
    }
    *out = p->cur.num;
    advance(p);
    return true;
}

/* LIMIT n | LIMIT o, n | LIMIT n OFFSET o (the last two only where MySQL allows an offset). */
static bool parse_limit(struct parser *p, bool allow_offset)
{
    if (!accept_kw(p, "limit")) return true;
    struct cq_stmt *st = p->st;
    uint64_t a = 0;
    TRY(parse_uint(p, &a));
    st->has_limit = true;
    st->limit_offset = 0;
    st->limit_count = a;
    if (allow_offset && accept(p, TK_COMMA)) {
        st->limit_offset = a;
        return parse_uint(p, &st->limit_count);
    }
    if (allow_offset && accept_kw(p, "offset")) return parse_uint(p, &st->limit_offset);
    return true;
}

/* ---- SELECT ----------------------------------------------------------------------------- */

struct select_item {
    struct cq_expr expr;
    bool is_expr;       /* can be evaluated without a table */
    const char *column; /* lowercased, when the item can name a column */
};

static bool parse_alias(struct parser *p, const char **out)
{
    if (p->cur.type == TK_IDENT || p->cur.type == TK_QIDENT) {
        *out = ident_text(p, &p->cur);
        advance(p);
        return true;
    }
    if (p->cur.type != TK_STRING) return unexpected(p);
    size_t at = p->cur.start;
    struct value v = value_null();
    TRY(string_value(p, &v));
    if (v.len > ALIAS_MAX || memchr(v.s, '\0', v.len)) return syntax_error(p, at, "invalid alias");
    *out = v.s;
    return true;
}

/* @@[session.|global.|local.]name */
static bool parse_sysvar(struct parser *p, struct cq_expr *e)
{
    advance(p); /* @@ */
    if (p->cur.type != TK_IDENT && p->cur.type != TK_QIDENT) return unexpected(p);
    const struct token first = p->cur;
    advance(p);
    e->kind = CQ_EXPR_SYSVAR;
    e->scope = 0;
    if (first.type == TK_IDENT && p->cur.type == TK_DOT) {
        if (tok_is(p, &first, "session") || tok_is(p, &first, "local"))
            e->scope = 1;
        else if (tok_is(p, &first, "global"))
            e->scope = 2;
    }
    if (e->scope) {
        advance(p); /* . */
        if (p->cur.type != TK_IDENT && p->cur.type != TK_QIDENT) return unexpected(p);
        e->name = lower_ident(p, &p->cur);
        advance(p);
        return true;
    }
    e->name = lower_ident(p, &first);
    if (p->cur.type == TK_DOT) { /* a component's variable: @@component.name */
        advance(p);
        if (p->cur.type != TK_IDENT && p->cur.type != TK_QIDENT) return unexpected(p);
        const char *second = lower_ident(p, &p->cur);
        size_t a = strlen(e->name), b = strlen(second);
        char *s = arena_alloc(p->arena, a + b + 2);
        memcpy(s, e->name, a);
        s[a] = '.';
        memcpy(s + a + 1, second, b + 1);
        e->name = s;
        advance(p);
    }
    return true;
}

/* Functions MySQL lets you call without parentheses. */
static bool is_niladic(const struct parser *p, const struct token *t)
{
    static const char *const words[] = {"current_user", "current_timestamp", "current_date",
                                        "current_time", "localtime",         "localtimestamp"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (tok_is(p, t, words[i])) return true;
    return false;
}

static bool parse_select_item(struct parser *p, struct select_item *it)
{
    memset(it, 0, sizeof *it);
    it->expr.literal.param = -1;
    size_t start = p->cur.start;
    switch (p->cur.type) {
    case TK_ATAT:
        TRY(parse_sysvar(p, &it->expr));
        it->is_expr = true;
        break;
    case TK_AT:
        return fail(p, CQ_ERR_NOT_IMPLEMENTED, "User variables are not supported in CometQL");
    case TK_STRING: {
        TRY(parse_operand(p, &it->expr.literal));
        it->expr.kind = CQ_EXPR_LITERAL;
        it->is_expr = true;
        const struct value *v = &it->expr.literal.v;
        if (v->len > 0 && v->len <= CQ_NAME_MAX && !memchr(v->s, '\0', v->len)) {
            char *col = arena_strndup(p->arena, v->s, v->len);
            lower_inplace(col);
            it->column = col;
        }
        break;
    }
    case TK_QIDENT:
        it->column = lower_ident(p, &p->cur);
        advance(p);
        break;
    case TK_IDENT: {
        struct token nx = peek(p);
        if (nx.type == TK_LPAREN) {
            it->expr.kind = CQ_EXPR_FUNC;
            it->expr.name = lower_ident(p, &p->cur);
            it->is_expr = true;
            advance(p);
            advance(p); /* ( */
            if (p->cur.type != TK_RPAREN && p->cur.type != TK_ERROR)
                return fail(p, CQ_ERR_NOT_IMPLEMENTED,
                            "Function arguments are not supported in CometQL");
            TRY(expect(p, TK_RPAREN));
        } else if (is_kw(p, "null") || is_kw(p, "true") || is_kw(p, "false")) {
            TRY(parse_operand(p, &it->expr.literal));
            it->expr.kind = CQ_EXPR_LITERAL;
            it->is_expr = true;
        } else if (is_niladic(p, &p->cur)) {
            it->expr.kind = CQ_EXPR_FUNC;
            it->expr.name = lower_ident(p, &p->cur);
            it->is_expr = true;
            advance(p);
        } else if (is_reserved(p, &p->cur)) {
            return unexpected(p);
        } else {
            it->column = lower_ident(p, &p->cur);
            advance(p);
        }
        break;
    }
    default:
        TRY(parse_operand(p, &it->expr.literal));
        it->expr.kind = CQ_EXPR_LITERAL;
        it->is_expr = true;
        break;
    }
    it->expr.text = arena_strndup(p->arena, p->src + start, p->prev_end - start);
    if (accept_kw(p, "as")) return parse_alias(p, &it->expr.alias);
    if ((p->cur.type == TK_IDENT && !is_reserved(p, &p->cur)) || p->cur.type == TK_QIDENT ||
        p->cur.type == TK_STRING)
        return parse_alias(p, &it->expr.alias);
    return true;
}

static bool parse_select(struct parser *p)
{
    struct cq_stmt *st = p->st;
    advance(p); /* SELECT */
    struct select_item *items = NULL;
    size_t n = 0, cap = 0;
    size_t list_at = p->cur.start;
    if (accept(p, TK_STAR)) {
        st->star = true;
    } else {
        do {
            if (n >= p->lim.max_columns)
                return too_many(p, "columns in the select list", "max_columns", p->lim.max_columns);
            items = grow(p, items, n, &cap, sizeof *items);
            TRY(parse_select_item(p, &items[n]));
            n++;
        } while (accept(p, TK_COMMA));
    }

    bool from_table = false;
    if (accept_kw(p, "from")) {
        if (!accept_kw(p, "dual")) {
            TRY(parse_table(p));
            from_table = true;
        }
    }

    if (from_table) {
        st->kind = CQ_STMT_SELECT;
        if (n) {
            st->columns = arena_alloc(p->arena, n * sizeof *st->columns);
            for (size_t i = 0; i < n; i++) {
                if (items[i].expr.alias)
                    return fail(p, CQ_ERR_NOT_IMPLEMENTED,
                                "Column aliases are not supported in CometQL");
                if (!items[i].column)
                    return fail(p, CQ_ERR_NOT_IMPLEMENTED,
                                "Only column names can be selected from a table in CometQL, "
                                "not '%.64s'",
                                items[i].expr.text);
                st->columns[i] = items[i].column;
            }
            st->n_columns = n;
        }
        TRY(parse_where(p));
        TRY(parse_order_by(p));
        return parse_limit(p, true);
    }

    st->kind = CQ_STMT_SELECT_EXPR;
    if (st->star) {
        if (p->cur.type != TK_EOF && p->cur.type != TK_SEMI) return unexpected(p);
        return fail(p, CQ_ERR_SYNTAX, "No tables used (SELECT * needs FROM) at line %lu",
                    line_of(p, list_at));
    }
    st->exprs = arena_alloc(p->arena, n * sizeof *st->exprs);
    for (size_t i = 0; i < n; i++) {
        if (!items[i].is_expr)
            return fail(p, CQ_ERR_COLUMNS, "Unknown column '%s' in 'field list'", items[i].column);
        st->exprs[i] = items[i].expr;
    }
    st->n_exprs = n;
    return parse_limit(p, true);
}

/* ---- INSERT / REPLACE / UPDATE / DELETE ------------------------------------------------- */

static bool push_assign(struct parser *p, struct cq_assign **arr, size_t *n, size_t *cap,
                        const char *what)
{
    if (*n >= p->lim.max_columns) return too_many(p, what, "max_columns", p->lim.max_columns);
    *arr = grow(p, *arr, *n, cap, sizeof **arr);
    memset(&(*arr)[*n], 0, sizeof **arr);
    (*n)++;
    return true;
}

/* col = value[, col = value ...] */
static bool parse_assign_list(struct parser *p)
{
    struct cq_stmt *st = p->st;
    do {
        TRY(push_assign(p, &st->assigns, &st->n_assigns, &p->cap_assigns, "assignments"));
        struct cq_assign *a = &st->assigns[st->n_assigns - 1];
        TRY(parse_lower_name(p, &a->column));
        TRY(expect(p, TK_EQ));
        TRY(parse_operand(p, &a->value));
    } while (accept(p, TK_COMMA));
    return true;
}

/* ( v, ... ) */
static bool parse_row(struct parser *p, struct cq_operand **row, size_t *n)
{
    TRY(expect(p, TK_LPAREN));
    size_t cap = 0;
    *row = NULL;
    *n = 0;
    do {
        if (*n >= p->lim.max_columns)
            return too_many(p, "values in a row", "max_columns", p->lim.max_columns);
        *row = grow(p, *row, *n, &cap, sizeof **row);
        TRY(parse_operand(p, &(*row)[*n]));
        (*n)++;
    } while (accept(p, TK_COMMA));
    return expect(p, TK_RPAREN);
}

static bool parse_insert(struct parser *p, bool replace)
{
    struct cq_stmt *st = p->st;
    st->kind = CQ_STMT_INSERT;
    st->replace = replace;
    advance(p); /* INSERT | REPLACE */
    for (;;) {
        if (accept_kw(p, "low_priority") || accept_kw(p, "delayed") ||
            (!replace && accept_kw(p, "high_priority")))
            continue;
        if (!replace && accept_kw(p, "ignore")) {
            st->ignore = true;
            continue;
        }
        break;
    }
    accept_kw(p, "into");
    TRY(parse_table(p));

    bool have_list = false;
    if (accept(p, TK_LPAREN)) {
        have_list = true;
        do {
            if (st->n_columns >= p->lim.max_columns)
                return too_many(p, "columns in the insert list", "max_columns", p->lim.max_columns);
            st->columns = grow(p, st->columns, st->n_columns, &p->cap_columns, sizeof *st->columns);
            TRY(parse_lower_name(p, &st->columns[st->n_columns]));
            st->n_columns++;
        } while (accept(p, TK_COMMA));
        TRY(expect(p, TK_RPAREN));
    }

    if (!have_list && accept_kw(p, "set")) { /* INSERT INTO t SET a = 1, b = 2 */
        TRY(parse_assign_list(p));
        size_t n = st->n_assigns;
        st->columns = arena_alloc(p->arena, n * sizeof *st->columns);
        struct cq_operand *row = arena_alloc(p->arena, n * sizeof *row);
        for (size_t i = 0; i < n; i++) {
            st->columns[i] = st->assigns[i].column;
            row[i] = st->assigns[i].value;
        }
        st->n_columns = st->n_row_values = n;
        st->rows = arena_alloc(p->arena, sizeof *st->rows);
        st->rows[0] = row;
        st->n_rows = 1;
        st->assigns = NULL;
        st->n_assigns = 0;
    } else {
        if (!accept_kw(p, "values") && !accept_kw(p, "value")) return unexpected(p);
        do {
            if (st->n_rows >= p->lim.max_in_values)
                return too_many(p, "rows in INSERT", "max_in_values", p->lim.max_in_values);
            struct cq_operand *row = NULL;
            size_t n = 0;
            TRY(parse_row(p, &row, &n));
            if (st->n_rows == 0) st->n_row_values = n;
            if ((have_list && n != st->n_columns) || n != st->n_row_values)
                return fail(p, CQ_ERR_COLUMNS, "Column count doesn't match value count at row %zu",
                            st->n_rows + 1);
            st->rows = grow(p, st->rows, st->n_rows, &p->cap_rows, sizeof *st->rows);
            st->rows[st->n_rows++] = row;
        } while (accept(p, TK_COMMA));
    }
    if (is_kw(p, "on"))
        return fail(p, CQ_ERR_NOT_IMPLEMENTED,
                    "ON DUPLICATE KEY UPDATE is not supported in CometQL");
    return true;
}

static bool parse_update(struct parser *p)
{
    struct cq_stmt *st = p->st;
    st->kind = CQ_STMT_UPDATE;
    advance(p); /* UPDATE */
    for (;;) {
        if (accept_kw(p, "low_priority")) continue;
        if (accept_kw(p, "ignore")) {
            st->ignore = true;
            continue;
        }
        break;
    }
    TRY(parse_table(p));
    TRY(expect_kw(p, "set"));
    TRY(parse_assign_list(p));
    TRY(parse_where(p));
    TRY(parse_order_by(p));
    return parse_limit(p, false);
}

static bool parse_delete(struct parser *p)
{
    struct cq_stmt *st = p->st;
    st->kind = CQ_STMT_DELETE;
    advance(p); /* DELETE */
    for (;;) {
        if (accept_kw(p, "low_priority") || accept_kw(p, "quick")) continue;
        if (accept_kw(p, "ignore")) {
            st->ignore = true;
            continue;
        }
        break;
    }
    TRY(expect_kw(p, "from"));
    TRY(parse_table(p));
    TRY(parse_where(p));
    TRY(parse_order_by(p));
    return parse_limit(p, false);
}

/* ---- SHOW / DESCRIBE -------------------------------------------------------------------- */

/* An exact-match LIKE pattern for s: % _ and backslash escaped. */
static const char *like_exact(struct parser *p, const char *s, size_t len)
{
    char *out = arena_alloc(p->arena, 2 * len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' || s[i] == '_' || s[i] == '\\') out[o++] = '\\';
        out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}

/* [LIKE 'p' | WHERE cond [AND ...]] */
static bool parse_show_filter(struct parser *p)
{
    struct cq_stmt *st = p->st;
    if (accept_kw(p, "like")) {
        if (p->cur.type != TK_STRING) return unexpected(p);
        struct value v = value_null();
        TRY(string_value(p, &v));
        st->like = v.s;
        return true;
    }
    if (!accept_kw(p, "where")) return true;
    TRY(parse_cond_list(p));
    const struct cq_cond *c = &st->where[0];
    if (strcmp(c->column, "variable_name") == 0 && c->n_values > 0 &&
        c->values[0].v.kind == VALUE_STR) {
        const struct value *v = &c->values[0].v;
        if (c->op == CQ_OP_LIKE)
            st->like = v->s;
        else if (c->op == CQ_OP_EQ || c->op == CQ_OP_IN)
            st->like = like_exact(p, v->s, v->len);
    }
    return true;
}

static bool accept_from_in(struct parser *p)
{
    return accept_kw(p, "from") || accept_kw(p, "in");
}

static bool parse_db_name(struct parser *p)
{
    if (p->cur.type != TK_IDENT && p->cur.type != TK_QIDENT) return unexpected(p);
    p->st->db = ident_text(p, &p->cur);
    advance(p);
    return true;
}

static bool parse_show(struct parser *p)
{
    struct cq_stmt *st = p->st;
    advance(p); /* SHOW */
    bool extended = accept_kw(p, "extended");
    st->full = accept_kw(p, "full");
    if (accept_kw(p, "global"))
        st->scope = 2;
    else if (accept_kw(p, "session") || accept_kw(p, "local"))
        st->scope = 1;
    const struct token w = p->cur;
    if (w.type != TK_IDENT) return unexpected(p);
    bool full_ok = false, scope_ok = false;

    if (accept_kw(p, "databases") || accept_kw(p, "schemas")) {
        st->kind = CQ_STMT_SHOW_DATABASES;
        TRY(parse_show_filter(p));
    } else if (accept_kw(p, "tables")) {
        st->kind = CQ_STMT_SHOW_TABLES;
        full_ok = true;
        if (accept_from_in(p)) TRY(parse_db_name(p));
        TRY(parse_show_filter(p));
    } else if (accept_kw(p, "columns") || accept_kw(p, "fields")) {
        st->kind = CQ_STMT_SHOW_COLUMNS;
        full_ok = true;
        if (!accept_from_in(p)) return unexpected(p);
        TRY(parse_table(p));
        if (accept_from_in(p)) TRY(parse_db_name(p));
        TRY(parse_show_filter(p));
    } else if (accept_kw(p, "variables")) {
        st->kind = CQ_STMT_SHOW_VARIABLES;
        scope_ok = true;
        TRY(parse_show_filter(p));
    } else if (accept_kw(p, "status")) {
        st->kind = CQ_STMT_SHOW_STATUS;
        scope_ok = true;
        TRY(parse_show_filter(p));
    } else if (is_kw(p, "filesystem") || is_kw(p, "ram") || is_kw(p, "avg") || is_kw(p, "uptime")) {
        st->kind = CQ_STMT_SHOW_STATUS; /* CppComet's host statistics */
        st->table = is_kw(p, "filesystem") ? "filesystem"
                    : is_kw(p, "ram")      ? "ram"
                    : is_kw(p, "avg")      ? "avg"
                                           : "uptime";
        advance(p);
        TRY(expect_kw(p, "status"));
    } else if (accept_kw(p, "table")) {
        st->kind = CQ_STMT_SHOW_TABLE_STATUS;
        TRY(expect_kw(p, "status"));
        if (accept_from_in(p)) TRY(parse_db_name(p));
        TRY(parse_show_filter(p));
    } else if (accept_kw(p, "processlist")) {
        st->kind = CQ_STMT_SHOW_PROCESSLIST;
        full_ok = true;
    } else if (is_kw(p, "warnings") || is_kw(p, "errors")) {
        st->kind = CQ_STMT_SHOW_WARNINGS;
        st->table = is_kw(p, "warnings") ? "warnings" : "errors";
        advance(p);
        TRY(parse_limit(p, true));
    } else if (accept_kw(p, "collation")) {
        st->kind = CQ_STMT_SHOW_COLLATION;
        st->table = "collation";
        TRY(parse_show_filter(p));
    } else if (is_kw(p, "charset") || is_kw(p, "character")) {
        bool two_words = is_kw(p, "character");
        advance(p);
        if (two_words) TRY(expect_kw(p, "set"));
        st->kind = CQ_STMT_SHOW_COLLATION;
        st->table = "charset";
        TRY(parse_show_filter(p));
    } else if (accept_kw(p, "create")) {
        if (!is_kw(p, "table")) {
            if (p->cur.type == TK_IDENT)
                return fail(p, CQ_ERR_NOT_IMPLEMENTED,
                            "SHOW CREATE %.*s is not supported in CometQL",
                            (int)(p->cur.end - p->cur.start), p->src + p->cur.start);
            return unexpected(p);
        }
        advance(p);
        st->kind = CQ_STMT_SHOW_CREATE_TABLE;
        TRY(parse_table(p));
    } else if (accept_kw(p, "storage")) {
        st->kind = CQ_STMT_SHOW_ENGINES;
        TRY(expect_kw(p, "engines"));
    } else if (accept_kw(p, "engines")) {
        st->kind = CQ_STMT_SHOW_ENGINES;
    } else {
        return fail(p, CQ_ERR_NOT_IMPLEMENTED, "SHOW %.*s is not supported in CometQL",
                    (int)(w.end - w.start), p->src + w.start);
    }
    if (((st->full || extended) && !full_ok) || (st->scope && !scope_ok))
        return syntax_error(p, w.start, NULL);
    return true;
}

static bool parse_describe(struct parser *p)
{
    struct cq_stmt *st = p->st;
    advance(p); /* DESCRIBE | DESC | EXPLAIN */
    static const char *const stmts[] = {"select",     "insert", "update",  "delete",
                                        "replace",    "format", "analyze", "extended",
                                        "partitions", "for",    "with",    "table"};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        if (is_kw(p, stmts[i]))
            return fail(p, CQ_ERR_NOT_IMPLEMENTED,
                        "EXPLAIN of a statement is not supported in CometQL");
    st->kind = CQ_STMT_SHOW_COLUMNS;
    TRY(parse_table(p));
    if (p->cur.type == TK_STRING) {
        struct value v = value_null();
        TRY(string_value(p, &v));
        st->like = v.s;
    } else if ((p->cur.type == TK_IDENT && !is_reserved(p, &p->cur)) || p->cur.type == TK_QIDENT) {
        st->like = lower_ident(p, &p->cur);
        advance(p);
    }
    return true;
}

/* ---- SET -------------------------------------------------------------------------------- */

static bool push_set(struct parser *p, const char *name, struct value v, int param, int scope)
{
    struct cq_stmt *st = p->st;
    TRY(push_assign(p, &st->sets, &st->n_sets, &p->cap_sets, "assignments in SET"));
    struct cq_assign *a = &st->sets[st->n_sets - 1];
    a->column = name;
    a->value.v = v;
    a->value.param = param;
    a->scope = scope;
    return true;
}

/* Consumes tokens up to a top-level ',' (if stop_at_comma), ';' or the end, keeping parentheses
 * balanced and numbering `?`s. Returns the source span consumed. */
static bool scan_raw(struct parser *p, bool stop_at_comma, size_t *start, size_t *end)
{
    size_t depth = 0;
    *start = p->cur.start;
    *end = p->cur.start;
    for (;;) {
        enum tk t = p->cur.type;
        if (t == TK_ERROR) return false;
        if (t == TK_EOF) break;
        if (depth == 0 && (t == TK_SEMI || (stop_at_comma && t == TK_COMMA))) break;
        if (t == TK_LPAREN) depth++;
        if (t == TK_RPAREN) {
            if (depth == 0) return unexpected(p);
            depth--;
        }
        if (t == TK_PARAM) {
            int idx = 0;
            TRY(take_param(p, &idx));
        } else {
            advance(p);
        }
        *end = p->prev_end;
    }
    if (depth) return unexpected(p);
    if (*end == *start) return unexpected(p);
    return true;
}

static bool at_value_end(const struct parser *p)
{
    return p->cur.type == TK_COMMA || p->cur.type == TK_SEMI || p->cur.type == TK_EOF;
}

/* A SET value: a literal, a bare word (ON, DEFAULT, utf8mb4) or @@var as VALUE_STR, or
 * failing those any balanced expression as VALUE_STR of its source text. */
static bool parse_set_value(struct parser *p, struct cq_operand *o)
{
    struct mark m = mark(p);
    size_t start = p->cur.start;
    bool ok = true;
    o->param = -1;
    o->v = value_null();
    if (p->cur.type == TK_IDENT && !is_kw(p, "null") && !is_kw(p, "true") && !is_kw(p, "false")) {
        char *s = ident_text(p, &p->cur);
        o->v = value_str(s, strlen(s));
        advance(p);
    } else if (p->cur.type == TK_QIDENT) {
        char *s = ident_text(p, &p->cur);
        o->v = value_str(s, strlen(s));
        advance(p);
    } else if (p->cur.type == TK_ATAT || p->cur.type == TK_AT) {
        struct cq_expr e;
        if (p->cur.type == TK_ATAT) {
            ok = parse_sysvar(p, &e);
        } else {
            advance(p);
            ok = p->cur.type == TK_IDENT || p->cur.type == TK_QIDENT;
            if (ok) advance(p);
        }
        if (ok) {
            char *s = arena_strndup(p->arena, p->src + start, p->prev_end - start);
            o->v = value_str(s, p->prev_end - start);
        }
    } else {
        ok = parse_operand(p, o);
    }
    if (ok && at_value_end(p)) return true;
    if (!ok && p->err->code != CQ_ERR_SYNTAX) return false;
    rewind_to(p, &m);
    size_t a = 0, b = 0;
    TRY(scan_raw(p, true, &a, &b));
    o->param = -1;
    char *s = arena_strndup(p->arena, p->src + a, b - a);
    o->v = value_str(s, b - a);
    return true;
}

/* SET TRANSACTION characteristics: ISOLATION LEVEL ... | READ ONLY | READ WRITE [, ...] */
static bool parse_txn_characteristics(struct parser *p, int scope)
{
    for (;;) {
        if (accept_kw(p, "isolation")) {
            TRY(expect_kw(p, "level"));
            const char *lvl;
            if (accept_kw(p, "read")) {
                if (accept_kw(p, "committed"))
                    lvl = "READ-COMMITTED";
                else if (accept_kw(p, "uncommitted"))
                    lvl = "READ-UNCOMMITTED";
                else
                    return unexpected(p);
            } else if (accept_kw(p, "repeatable")) {
                TRY(expect_kw(p, "read"));
                lvl = "REPEATABLE-READ";
            } else if (accept_kw(p, "serializable")) {
                lvl = "SERIALIZABLE";
            } else {
                return unexpected(p);
            }
            TRY(push_set(p, "transaction_isolation", value_str(lvl, strlen(lvl)), -1, scope));
        } else if (accept_kw(p, "read")) {
            int64_t ro;
            if (accept_kw(p, "only"))
                ro = 1;
            else if (accept_kw(p, "write"))
                ro = 0;
            else
                return unexpected(p);
            TRY(push_set(p, "transaction_read_only", value_int(ro), -1, scope));
        } else {
            return unexpected(p);
        }
        if (p->cur.type != TK_COMMA) return true;
        struct token nx = peek(p);
        if (!tok_is(p, &nx, "isolation") && !tok_is(p, &nx, "read")) return true;
        advance(p);
    }
}

/* A charset or collation name: a word, a quoted string or DEFAULT. */
static bool parse_charset(struct parser *p, struct value *v)
{
    if (p->cur.type == TK_IDENT || p->cur.type == TK_QIDENT) {
        char *s = ident_text(p, &p->cur);
        *v = value_str(s, strlen(s));
        advance(p);
        return true;
    }
    if (p->cur.type == TK_STRING) return string_value(p, v);
    return unexpected(p);
}

static bool parse_set_item(struct parser *p)
{
    int scope = 0;
    if (accept_kw(p, "global") || accept_kw(p, "persist") || accept_kw(p, "persist_only"))
        scope = 2;
    else if (accept_kw(p, "session") || accept_kw(p, "local"))
        scope = 1;

    if (accept_kw(p, "names")) {
        struct value v = value_null();
        TRY(parse_charset(p, &v));
        TRY(push_set(p, "names", v, -1, scope));
        if (accept_kw(p, "collate")) {
            TRY(parse_charset(p, &v));
            TRY(push_set(p, "collation_connection", v, -1, scope));
        }
        return true;
    }
    if (is_kw(p, "charset") || is_kw(p, "character")) {
        struct token nx = peek(p);
        if (is_kw(p, "charset") || tok_is(p, &nx, "set")) {
            bool two_words = is_kw(p, "character");
            advance(p);
            if (two_words) advance(p);
            struct value v = value_null();
            TRY(parse_charset(p, &v));
            return push_set(p, "names", v, -1, scope);
        }
    }
    if (accept_kw(p, "transaction")) return parse_txn_characteristics(p, scope);

    const char *name;
    if (p->cur.type == TK_ATAT) {
        struct cq_expr e;
        TRY(parse_sysvar(p, &e));
        name = e.name;
        if (e.scope) scope = e.scope;
    } else if (p->cur.type == TK_AT) { /* @uservar, stored as "@name" */
        advance(p);
        const char *u;
        if (p->cur.type == TK_STRING) {
            char *tmp = NULL;
            TRY(parse_name(p, &tmp));
            lower_inplace(tmp);
            u = tmp;
        } else {
            if (p->cur.type != TK_IDENT && p->cur.type != TK_QIDENT) return unexpected(p);
            u = lower_ident(p, &p->cur);
            advance(p);
        }
        size_t n = strlen(u);
        char *s = arena_alloc(p->arena, n + 2);
        s[0] = '@';
        memcpy(s + 1, u, n + 1);
        name = s;
    } else if (p->cur.type == TK_IDENT || p->cur.type == TK_QIDENT) {
        const char *a = lower_ident(p, &p->cur);
        advance(p);
        if (p->cur.type == TK_DOT) { /* component.variable */
            advance(p);
            if (p->cur.type != TK_IDENT && p->cur.type != TK_QIDENT) return unexpected(p);
            const char *b = lower_ident(p, &p->cur);
            advance(p);
            size_t la = strlen(a), lb = strlen(b);
            char *s = arena_alloc(p->arena, la + lb + 2);
            memcpy(s, a, la);
            s[la] = '.';
            memcpy(s + la + 1, b, lb + 1);
            a = s;
        }
        name = a;
    } else {
        return unexpected(p);
    }
    if (!accept(p, TK_EQ) && !accept(p, TK_ASSIGN)) return unexpected(p);
    struct cq_operand o;
    TRY(parse_set_value(p, &o));
    return push_set(p, name, o.v, o.param, scope);
}

/* SET is accepted liberally, as CppComet did: the shapes above are recorded; anything else that
 * tokenizes (SET ROLE ..., SET PASSWORD FOR ...) parses with no pairs recorded. Limits and
 * number overflows still fail. */
static bool parse_set(struct parser *p)
{
    struct cq_stmt *st = p->st;
    st->kind = CQ_STMT_SET;
    advance(p); /* SET */
    struct mark m = mark(p);
    bool ok = true;
    do {
        ok = parse_set_item(p);
    } while (ok && accept(p, TK_COMMA));
    if (ok && (p->cur.type == TK_SEMI || p->cur.type == TK_EOF)) return true;
    if (!ok && p->err->code != CQ_ERR_SYNTAX) return false;
    rewind_to(p, &m);
    st->sets = NULL;
    st->n_sets = 0;
    p->cap_sets = 0;
    size_t a = 0, b = 0;
    return scan_raw(p, false, &a, &b);
}

static bool parse_use(struct parser *p)
{
    p->st->kind = CQ_STMT_USE;
    advance(p); /* USE */
    return parse_db_name(p);
}

static bool parse_transaction(struct parser *p)
{
    struct cq_stmt *st = p->st;
    st->kind = CQ_STMT_TRANSACTION;
    if (accept_kw(p, "begin")) {
        st->table = "begin";
        accept_kw(p, "work");
        return true;
    }
    if (accept_kw(p, "start")) {
        st->table = "begin";
        TRY(expect_kw(p, "transaction"));
        if (p->cur.type != TK_IDENT) return true;
        do {
            if (accept_kw(p, "read")) {
                if (!accept_kw(p, "only") && !accept_kw(p, "write")) return unexpected(p);
            } else if (accept_kw(p, "with")) {
                TRY(expect_kw(p, "consistent"));
                TRY(expect_kw(p, "snapshot"));
            } else {
                return unexpected(p);
            }
        } while (accept(p, TK_COMMA));
        return true;
    }
    st->table = is_kw(p, "commit") ? "commit" : "rollback";
    advance(p); /* COMMIT | ROLLBACK */
    accept_kw(p, "work");
    if (accept_kw(p, "and")) {
        accept_kw(p, "no");
        TRY(expect_kw(p, "chain"));
    }
    if (accept_kw(p, "no"))
        TRY(expect_kw(p, "release"));
    else
        accept_kw(p, "release");
    return true;
}

/* One optional ';' (empty statements after it are harmless too), then the end. */
static bool finish(struct parser *p)
{
    if (p->cur.type == TK_SEMI) {
        while (p->cur.type == TK_SEMI)
            advance(p);
        if (p->cur.type == TK_EOF) return true;
        char near[NEAR_MAX + 1];
        near_text(p, p->cur.start, near, sizeof near);
        return fail(p, CQ_ERR_SYNTAX,
                    "Multiple statements are not supported (near '%s' at line %lu)", near,
                    line_of(p, p->cur.start));
    }
    if (p->cur.type == TK_EOF) return true;
    return unexpected(p);
}

static bool parse_statement(struct parser *p)
{
    struct cq_stmt *st = p->st;
    if (p->cur.type == TK_EOF || p->cur.type == TK_SEMI) {
        st->kind = CQ_STMT_EMPTY;
        return finish(p);
    }
    bool ok;
    if (is_kw(p, "select"))
        ok = parse_select(p);
    else if (is_kw(p, "insert"))
        ok = parse_insert(p, false);
    else if (is_kw(p, "replace"))
        ok = parse_insert(p, true);
    else if (is_kw(p, "update"))
        ok = parse_update(p);
    else if (is_kw(p, "delete"))
        ok = parse_delete(p);
    else if (is_kw(p, "show"))
        ok = parse_show(p);
    else if (is_kw(p, "describe") || is_kw(p, "desc") || is_kw(p, "explain"))
        ok = parse_describe(p);
    else if (is_kw(p, "set"))
        ok = parse_set(p);
    else if (is_kw(p, "use"))
        ok = parse_use(p);
    else if (is_kw(p, "begin") || is_kw(p, "start") || is_kw(p, "commit") || is_kw(p, "rollback"))
        ok = parse_transaction(p);
    else
        return unexpected(p);
    return ok && finish(p);
}

int cq_parse(const char *sql, size_t len, const struct cq_limits *limits, bool allow_params,
             struct arena *arena, struct cq_stmt **out, struct cq_error *err)
{
    struct parser p;
    memset(&p, 0, sizeof p);
    p.src = sql ? sql : "";
    p.len = sql ? len : 0;
    if (limits) {
        p.lim = *limits;
    } else {
        p.lim.max_in_values = CQ_DEFAULT_MAX_IN_VALUES;
        p.lim.max_conditions = CQ_DEFAULT_MAX_CONDITIONS;
        p.lim.max_columns = CQ_DEFAULT_MAX_COLUMNS;
    }
    p.allow_params = allow_params;
    p.arena = arena;
    p.err = err;
    err->code = 0;
    err->msg[0] = '\0';
    *out = NULL;
    p.st = arena_zalloc(arena, sizeof *p.st);
    p.cur.type = TK_EOF;
    advance(&p);
    if (!parse_statement(&p)) {
        if (!err->code) {
            err->code = CQ_ERR_INTERNAL;
            snprintf(err->msg, sizeof err->msg, "Internal parser error");
        }
        return CQ_ERROR;
    }
    err->code = 0;
    err->msg[0] = '\0';
    *out = p.st;
    return CQ_OK;
}

/* ---- LIKE ------------------------------------------------------------------------------- */

/* Index after the character at i: one byte, or a UTF-8 lead byte with its continuations, so `_`
 * matches one character as MySQL's utf8 collations do. */
static size_t next_char(const unsigned char *s, size_t len, size_t i)
{
    i++;
    for (int k = 0; k < 3 && i < len && (s[i] & 0xC0) == 0x80; k++)
        i++;
    return i;
}

bool cq_like_match(const char *pattern, const char *str, size_t len)
{
    const unsigned char *pat = (const unsigned char *)pattern;
    const unsigned char *s = (const unsigned char *)str;
    size_t plen = strlen(pattern), pi = 0, si = 0;
    size_t star_pi = (size_t)-1, star_si = 0;
    while (si < len) {
        if (pi < plen) {
            unsigned char c = pat[pi];
            if (c == '%') {
                while (pi < plen && pat[pi] == '%')
                    pi++;
                star_pi = pi;
                star_si = si;
                continue;
            }
            if (c == '_') {
                pi++;
                si = next_char(s, len, si);
                continue;
            }
            size_t step = 1;
            if (c == '\\' && pi + 1 < plen) {
                c = pat[pi + 1];
                step = 2;
            }
            if (to_lower(c) == to_lower(s[si])) {
                pi += step;
                si++;
                continue;
            }
        }
        if (star_pi == (size_t)-1) return false;
        star_si = next_char(s, len, star_si);
        si = star_si;
        pi = star_pi;
    }
    while (pi < plen && pat[pi] == '%')
        pi++;
    return pi == plen;
}

const char *cq_op_name(enum cq_op op)
{
    switch (op) {
    case CQ_OP_EQ: return "=";
    case CQ_OP_IN: return "IN";
    case CQ_OP_NE: return "<>";
    case CQ_OP_LT: return "<";
    case CQ_OP_GT: return ">";
    case CQ_OP_LE: return "<=";
    case CQ_OP_GE: return ">=";
    case CQ_OP_LIKE: return "LIKE";
    case CQ_OP_NOT_IN: return "NOT IN";
    case CQ_OP_IS_NULL: return "IS NULL";
    case CQ_OP_IS_NOT_NULL: return "IS NOT NULL";
    }
    return "?";
}
