/* listener: opens a libuv TCP listener on a configured address and port, with an error that
 * names the config section. Shared by the [cometql] and [ws] services. */
#ifndef CC_LISTENER_H
#define CC_LISTENER_H

#include <stddef.h>
#include <uv.h>

/* Initialises, binds and listens on tcp (whose data is set to `data`). Returns 0, or -1 with err
 * filled and tcp fully closed again (so its memory may be freed at once). */
int listener_open(uv_loop_t *loop, uv_tcp_t *tcp, const char *section, const char *ip, int port,
                  int backlog, uv_connection_cb on_connection, void *data, char *err,
                  size_t errlen);

#endif
