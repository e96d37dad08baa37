/* hub: dispatch to the registered delivery; see hub.h. */
#include "push/hub.h"

#include <string.h>

void hub_init(struct hub *h)
{
    memset(h, 0, sizeof *h);
}

void hub_set_delivery(struct hub *h, const struct hub_delivery *d)
{
    h->delivery = *d;
}

void hub_set_watch(struct hub *h, const struct hub_watch *w)
{
    if (w)
        h->watch = *w;
    else
        memset(&h->watch, 0, sizeof h->watch);
}

void hub_watch_pipe(struct hub *h, int64_t dev_id, const char *pipe, size_t len, bool on)
{
    if (h->watch.pipe) h->watch.pipe(h->watch.ctx, dev_id, pipe, len, on);
}

void hub_watch_user(struct hub *h, int64_t dev_id, int64_t user_id, bool on)
{
    if (h->watch.user) h->watch.user(h->watch.ctx, dev_id, user_id, on);
}

void hub_kick_user(struct hub *h, int64_t dev_id, int64_t user_id)
{
    if (h->delivery.kick_user) h->delivery.kick_user(h->delivery.ctx, dev_id, user_id);
}

bool hub_barrier(struct hub *h, void (*cb)(void *ctx), void *ctx)
{
    return h->watch.barrier && h->watch.barrier(h->watch.ctx, cb, ctx);
}

size_t hub_publish_pipe(struct hub *h, const struct hub_message *m)
{
    h->published++;
    size_t n = h->delivery.to_pipe ? h->delivery.to_pipe(h->delivery.ctx, m) : 0;
    h->delivered += n;
    return n;
}

size_t hub_send_user(struct hub *h, int64_t user_id, const struct hub_message *m)
{
    h->published++;
    size_t n = h->delivery.to_user ? h->delivery.to_user(h->delivery.ctx, user_id, m) : 0;
    h->delivered += n;
    return n;
}

size_t hub_pipe_subscribers(struct hub *h, int64_t dev_id, const char *pipe, size_t len)
{
    return h->delivery.pipe_subscribers
               ? h->delivery.pipe_subscribers(h->delivery.ctx, dev_id, pipe, len)
               : 0;
}

bool hub_user_online(struct hub *h, int64_t dev_id, int64_t user_id)
{
    return h->delivery.user_online ? h->delivery.user_online(h->delivery.ctx, dev_id, user_id)
                                   : false;
}

int hub_pipe_members(struct hub *h, int64_t dev_id, const char *pipe, size_t len, hub_member_fn fn,
                     void *ctx)
{
    return h->delivery.pipe_members
               ? h->delivery.pipe_members(h->delivery.ctx, dev_id, pipe, len, fn, ctx)
               : 0;
}

int hub_pipes(struct hub *h, int64_t dev_id, int (*fn)(void *c, const char *pipe, size_t subs),
              void *ctx)
{
    return h->delivery.pipes ? h->delivery.pipes(h->delivery.ctx, dev_id, fn, ctx) : 0;
}
