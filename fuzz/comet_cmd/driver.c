/* libFuzzer target: the browser command parser (src/proto/comet_cmd.c) and the envelope writer
 * it feeds (src/proto/envelope.c): every split field must lie inside the input, and every
 * envelope written from the input must be valid UTF-8 JSON text. */
#include "core/buf.h"
#include "proto/comet_cmd.h"
#include "proto/envelope.h"

#include <stdlib.h>
#include <string.h>

static void inside(const uint8_t *data, size_t size, const struct ccmd_str *s)
{
    if (s->s && (s->s < (const char *)data || s->s + s->len > (const char *)data + size)) abort();
}

/* Minimal UTF-8 check of what the envelope produced. */
static int utf8_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xc0) != 0x80) return 0;
        i += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ccmd *cmd = malloc(sizeof *cmd);
    const char *err = NULL;
    if (ccmd_parse((const char *)data, size, cmd, &err) == CCMD_OK) {
        for (size_t i = 0; i < cmd->n_names; i++)
            inside(data, size, &cmd->names[i]);
        inside(data, size, &cmd->pipe);
        inside(data, size, &cmd->event);
        inside(data, size, &cmd->marker);
        inside(data, size, &cmd->message);
        inside(data, size, &cmd->auth_type);
    } else if (!err) {
        abort();
    }
    free(cmd);
    struct buf b;
    buf_init(&b);
    env_begin(&b);
    env_str(&b, "data", (const char *)data, size);
    env_end(&b);
    if (!utf8_ok(buf_head(&b), buf_unread(&b))) abort();
    for (size_t i = 0; i < buf_unread(&b); i++)
        if (buf_head(&b)[i] < 0x20) abort(); /* control characters must be escaped */
    buf_free(&b);
    return 0;
}
