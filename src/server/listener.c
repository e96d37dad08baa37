/* listener: bind + listen with config-named errors; see listener.h. */
#include "server/listener.h"

#include <stdio.h>
#include <string.h>

int listener_open(uv_loop_t *loop, uv_tcp_t *tcp, const char *section, const char *ip, int port,
                  int backlog, uv_connection_cb on_connection, void *data, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    int rc = strchr(ip, ':') ? uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&addr)
                             : uv_ip4_addr(ip, port, (struct sockaddr_in *)&addr);
    if (rc != 0) {
        snprintf(err, errlen, "[%s] ip = %s is not a valid address", section, ip);
        return -1;
    }
    uv_tcp_init(loop, tcp);
    tcp->data = data;
    rc = uv_tcp_bind(tcp, (struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)tcp, backlog, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "[%s] cannot listen on %s:%d: %s", section, ip, port,
                 uv_strerror(rc));
        uv_close((uv_handle_t *)tcp, NULL);
        uv_run(loop, UV_RUN_NOWAIT); /* let the close finish before the caller frees tcp */
        return -1;
    }
    return 0;
}
