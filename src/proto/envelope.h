/* envelope: the JSON objects ccomet sends to browsers (CppComet's envelope: pipe, event, data,
 * message_send_time, user_id, marker, fromQueue, history, id ...), written straight into a byte
 * buffer with correct JSON string escaping. Sans I/O; knows nothing about sockets or pipes. */
#ifndef CC_ENVELOPE_H
#define CC_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Appends s as a JSON string literal (quotes included). Invalid UTF-8 bytes are replaced by
 * U+FFFD so the output is always valid JSON and valid WebSocket text. */
void env_put_string(struct buf *b, const char *s, size_t len);

/* A JSON object being written: env_begin, then fields, then env_end. */
void env_begin(struct buf *b);
void env_str(struct buf *b, const char *key, const char *s, size_t len);
void env_cstr(struct buf *b, const char *key, const char *s);
void env_int(struct buf *b, const char *key, int64_t v);
void env_bool(struct buf *b, const char *key, bool v);
void env_raw(struct buf *b, const char *key, const char *json, size_t len); /* trusted JSON */
void env_end(struct buf *b);

#endif
