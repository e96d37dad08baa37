/* tls: OpenSSL with memory BIOs; see tls.h. Never touches a socket. */
#include "server/tls.h"
#include "core/alloc.h"
#include "core/log.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>

struct tls_server {
    SSL_CTX *ctx;
};

struct tls_session {
    SSL *ssl;
    BIO *rbio, *wbio;
};

static void openssl_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s: %s", what, e ? buf : "unknown error");
    ERR_clear_error();
}

struct tls_server *tls_server_new(const char *cert_file, const char *key_file, char *err,
                                  size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        openssl_error(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        openssl_error(err, errlen, cert_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        openssl_error(err, errlen, key_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    struct tls_server *t = xcalloc(1, sizeof *t);
    t->ctx = ctx;
    return t;
}

void tls_server_free(struct tls_server *t)
{
    if (!t) return;
    SSL_CTX_free(t->ctx);
    xfree(t);
}

struct tls_session *tls_session_new(struct tls_server *t)
{
    struct tls_session *s = xcalloc(1, sizeof *s);
    s->ssl = SSL_new(t->ctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (!s->ssl || !s->rbio || !s->wbio) {
        fprintf(stderr, "level=crit sub=tls msg=\"out of memory\"\n");
        abort();
    }
    BIO_set_mem_eof_return(s->rbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    SSL_set_accept_state(s->ssl);
    return s;
}

void tls_session_free(struct tls_session *s)
{
    if (!s) return;
    SSL_free(s->ssl); /* frees both BIOs */
    xfree(s);
}

static void drain(struct tls_session *s, struct buf *out)
{
    size_t pending;
    while ((pending = BIO_ctrl_pending(s->wbio)) > 0) {
        buf_reserve(out, pending);
        int n = BIO_read(s->wbio, out->data + out->len, (int)pending);
        if (n <= 0) break;
        out->len += (size_t)n;
    }
}

int tls_session_feed(struct tls_session *s, const uint8_t *data, size_t len, struct buf *plain,
                     struct buf *cipher_out)
{
    while (len > 0) {
        int n = BIO_write(s->rbio, data, (int)(len > 65536 ? 65536 : len));
        if (n <= 0) return -1;
        data += n;
        len -= (size_t)n;
        for (;;) {
            if (!SSL_is_init_finished(s->ssl)) {
                int rc = SSL_do_handshake(s->ssl);
                drain(s, cipher_out);
                if (rc != 1) {
                    int e = SSL_get_error(s->ssl, rc);
                    if (e == SSL_ERROR_WANT_READ) break;
                    LOG_RATELIMITED(LOG_INFO, "tls", "msg=\"handshake failed\" error=%s",
                                    ERR_reason_error_string(ERR_peek_error())
                                        ? ERR_reason_error_string(ERR_peek_error())
                                        : "?");
                    ERR_clear_error();
                    return -1;
                }
            }
            buf_reserve(plain, 16384);
            int r = SSL_read(s->ssl, plain->data + plain->len, (int)(plain->cap - plain->len));
            if (r > 0) {
                plain->len += (size_t)r;
                continue;
            }
            int e = SSL_get_error(s->ssl, r);
            drain(s, cipher_out);
            if (e == SSL_ERROR_WANT_READ) break;
            if (e == SSL_ERROR_ZERO_RETURN) return -1; /* close_notify */
            ERR_clear_error();
            return -1;
        }
    }
    return 0;
}

int tls_session_write(struct tls_session *s, const uint8_t *data, size_t len,
                      struct buf *cipher_out)
{
    while (len > 0) {
        int n = SSL_write(s->ssl, data, (int)(len > 65536 ? 65536 : len));
        if (n <= 0) {
            ERR_clear_error();
            return -1;
        }
        data += n;
        len -= (size_t)n;
        drain(s, cipher_out);
    }
    return 0;
}

bool tls_session_ready(const struct tls_session *s)
{
    return SSL_is_init_finished(s->ssl);
}

const char *tls_session_cipher(const struct tls_session *s)
{
    return SSL_get_cipher_name(s->ssl);
}

const char *tls_session_version(const struct tls_session *s)
{
    return SSL_get_version(s->ssl);
}
