/* tls: server-side TLS over memory BIOs (OpenSSL), so any byte transport can carry it. The
 * transport feeds ciphertext in and sends what comes out; the protocol above sees plaintext.
 * Used by CometQL (after the MySQL SSLRequest) and later by wss. */
#ifndef CC_TLS_H
#define CC_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct tls_server;  /* certificate + key + settings, shared by sessions */
struct tls_session; /* one connection */

/* (transfer full) NULL with err filled when the files cannot be used. */
struct tls_server *tls_server_new(const char *cert_file, const char *key_file, char *err,
                                  size_t errlen);
void tls_server_free(struct tls_server *t);

struct tls_session *tls_session_new(struct tls_server *t);
void tls_session_free(struct tls_session *s);

/* Feeds received ciphertext; appends decrypted bytes to plain and handshake/alert bytes to
 * send to cipher_out. Returns 0, or -1 on a TLS error (the peer must be dropped). */
int tls_session_feed(struct tls_session *s, const uint8_t *data, size_t len, struct buf *plain,
                     struct buf *cipher_out);
/* Encrypts plaintext into cipher_out. Returns 0 or -1. */
int tls_session_write(struct tls_session *s, const uint8_t *data, size_t len,
                      struct buf *cipher_out);
bool tls_session_ready(const struct tls_session *s); /* handshake finished */
const char *tls_session_cipher(const struct tls_session *s);
const char *tls_session_version(const struct tls_session *s);

#endif
