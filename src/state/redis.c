/* redis: the state backend for several ccomet nodes: every row in one Redis server, every pipe
 * message and private message fanned out between nodes through Redis's sharded pub/sub. See
 * state_redis_new in state.h for what it promises; the layout of the keys:
 *
 *   <prefix>{t<dev>}:auth|data|time|tok|pset   hashes: user -> hash|data|time, token -> time,
 *                                               pipe -> history length
 *   <prefix>{t<dev>}:tokx                      tokens by expiry (sorted set, token -> exp)
 *   <prefix>{t<dev>}:mid                       the tenant's last message id (pipes and queues)
 *   <prefix>{t<dev>}:seq, :lid                 per pipe: its sequence number (a gap in it is a
 *                                               lost fan-out) and its last message id
 *   <prefix>{t<dev>}:h:<pipe>                  a pipe's stream, entry id <id>-0, fields t e m u b
 *                                               s (time, event, message, user, browser, seq):
 *                                               its history, and the recent messages kept for
 *                                               gap repair and recovery on another node
 *   <prefix>{t<dev>}:hp                        the pipes that have history
 *   <prefix>{t<dev>}:q:<id>, :qu:<user>, :qall a queued private message (hash u t e m), a user's
 *                                               queue and the tenant's (sorted sets of ids)
 *   <prefix>{t<dev>}:conf, :confnode           invitations ("<room>\n<user>" -> a RESP array of
 *                                               the row) and where each room was placed
 *   <prefix>{t<dev>}:c:<pipe>, :u:<user>       the shard channels a pipe's or a user's messages
 *                                               go out on
 *   <prefix>{g}:tenants                        tenant credentials (dev -> a RESP array)
 *   <prefix>{g}:ctl                            the control channel: kicks, tenant reloads
 *
 * All keys of one tenant share the hash tag {t<dev>}, so every script touches one slot (a
 * Redis Cluster keeps a tenant on one shard; tenants spread over the shards). A write completes
 * only when Redis has answered it; with no answer (link down, timeout) it fails, never reported
 * as done. Scripts go by EVALSHA, loaded again with EVAL when Redis says NOSCRIPT. Loop thread
 * only. */
#include "state/redis.h"
#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/hmap.h"
#include "core/log.h"
#include "proto/resp.h"
#include "push/hub.h"
#include "state/redis_link.h"

#include <inttypes.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- scripts --------------------------------------------------------------------------------- */

enum script_id {
    SC_PUBLISH,
    SC_ANCHOR,
    SC_HISTORY_LIST,
    SC_USER_MESSAGE,
    SC_QUEUE_LIST,
    SC_QUEUE_DELETE_USER,
    SC_QUEUE_DELETE_ID,
    SC_QUEUE_DELETE_CALL,
    SC_HISTORY_DELETE_PIPE,
    SC_HISTORY_DELETE_ID,
    SC_PIPE_SETTING_PUT,
    SC_PIPE_SETTING_DELETE,
    SC_CONF_DELETE,
    SC_CONF_CLAIM,
    SC_CONF_PUT,
    SC_TOKEN_PUT,
    SC_COUNT
};

/* KEYS[1] is always the tenant's prefix "<prefix>{t<dev>}:" (a key of its own: the tenant's
 * message id), so every key a script builds from it is in the declared slot. */
static const char *const script_text[SC_COUNT] = {
    /* publish: ARGV pipe, trust(0|1), time, event, message, user, trust_ttl, head, rest,
     * browser(0|1), recovery_messages, recovery_window, now -> the message id. Every message
     * goes to the pipe's stream (fields t e m u b s), which keeps max(length, recovery_messages)
     * of them (a trust_ pipe: those younger than trust_ttl), so that a node can repair a gap
     * and a browser recover on another node; the pipe's sequence number s counts its messages
     * (a gap in it is a lost fan-out); the payload is head .. id .. ' ' .. s .. '\n' .. rest */
    [SC_PUBLISH] =
        "local t=KEYS[1] local p=ARGV[1] local id=redis.call('INCR',t..'mid') "
        "local s=redis.call('HINCRBY',t..'seq',p,1) redis.call('HSET',t..'lid',p,id) "
        "local keep=tonumber(redis.call('HGET',t..'pset',p) or '0') local h=t..'h:'..p "
        "local f={'t',ARGV[3],'e',ARGV[4],'m',ARGV[5],'u',ARGV[6],'b',ARGV[10],'s',s} "
        "if ARGV[2]=='1' then redis.call('XADD',h,id..'-0',unpack(f)) "
        "redis.call('EXPIRE',h,ARGV[7]) local old=tonumber(ARGV[13])-tonumber(ARGV[7]) "
        "for i=1,100 do local e=redis.call('XRANGE',h,'-','+','COUNT',1)[1] "
        "if not e then break end local et=0 for k=1,#e[2],2 do if e[2][k]=='t' then "
        "et=tonumber(e[2][k+1]) end end if et>=old then break end redis.call('XDEL',h,e[1]) end "
        "redis.call('SADD',t..'hp',p) "
        "else local cap=math.max(keep,tonumber(ARGV[11])) "
        "if cap>0 then redis.call('XADD',h,'MAXLEN',cap,id..'-0',unpack(f)) "
        "if keep>0 then redis.call('PERSIST',h) redis.call('SADD',t..'hp',p) "
        "else redis.call('EXPIRE',h,ARGV[12]) end end end "
        "redis.call('SPUBLISH',t..'c:'..p,ARGV[8]..id..' '..s..'\\n'..ARGV[9]) return id",
    /* anchor: ARGV pipe -> {seq, id} of the pipe's last message (0s: none yet) */
    [SC_ANCHOR] = "local t=KEYS[1] return {tonumber(redis.call('HGET',t..'seq',ARGV[1]) or '0'),"
                  "tonumber(redis.call('HGET',t..'lid',ARGV[1]) or '0')}",
    /* history_list: ARGV pipe, limit, now, trust_ttl -> the newest of what the pipe keeps as
     * history (its length; a trust_ pipe: younger than trust_ttl), newest first */
    [SC_HISTORY_LIST] =
        "local t=KEYS[1] local p=ARGV[1] local h=t..'h:'..p local n=tonumber(ARGV[2]) "
        "if string.sub(p,1,6)=='trust_' then local out={} local old=tonumber(ARGV[3])-"
        "tonumber(ARGV[4]) for _,e in ipairs(redis.call('XREVRANGE',h,'+','-','COUNT',n)) do "
        "local et=0 for k=1,#e[2],2 do if e[2][k]=='t' then et=tonumber(e[2][k+1]) end end "
        "if et>=old then out[#out+1]=e end end return out end "
        "local keep=tonumber(redis.call('HGET',t..'pset',p) or '0') if keep<=0 then return {} end "
        "return redis.call('XREVRANGE',h,'+','-','COUNT',math.min(keep,n))",
    /* user_message: ARGV user, time, event, message, head, rest, queue_ttl, call room ('' none) ->
     * 0 (delivered) or the queue id (the row expires after queue_ttl; the sets' stale ids are
     * skipped) */
    [SC_USER_MESSAGE] =
        "local t=KEYS[1] local n=redis.call('SPUBLISH',t..'u:'..ARGV[1],ARGV[5]..'0 "
        "0\\n'..ARGV[6]) "
        "if n>0 then return 0 end local id=redis.call('INCR',t..'mid') "
        "redis.call('HSET',t..'q:'..id,'u',ARGV[1],'t',ARGV[2],'e',ARGV[3],'m',ARGV[4]) "
        "redis.call('EXPIRE',t..'q:'..id,ARGV[7]) "
        "redis.call('ZADD',t..'qu:'..ARGV[1],id,id) redis.call('ZADD',t..'qall',id,id) "
        "if ARGV[8]~='' then local c=t..'qc:'..ARGV[8] redis.call('SADD',c,id) "
        "redis.call('EXPIRE',c,ARGV[7]) end return id",
    /* queue_list: ARGV user ('' = all), limit -> rows {user, id, time, event, message} */
    [SC_QUEUE_LIST] =
        "local t=KEYS[1] local z=ARGV[1]=='' and t..'qall' or t..'qu:'..ARGV[1] "
        "local ids=redis.call('ZRANGE',z,0,tonumber(ARGV[2])-1) local out={} "
        "for _,id in ipairs(ids) do local r=redis.call('HMGET',t..'q:'..id,'u','t','e','m') "
        "if r[1] then out[#out+1]={tonumber(r[1]),tonumber(id),tonumber(r[2]),r[3],r[4]} end end "
        "return out",
    /* queue_delete_user: ARGV user -> rows removed */
    [SC_QUEUE_DELETE_USER] =
        "local t=KEYS[1] local z=t..'qu:'..ARGV[1] local ids=redis.call('ZRANGE',z,0,-1) "
        "for _,id in ipairs(ids) do redis.call('DEL',t..'q:'..id) redis.call('ZREM',t..'qall',id) "
        "end redis.call('DEL',z) return #ids",
    /* queue_delete_id: ARGV id, user ('' = anyone's) -> 0|1 */
    [SC_QUEUE_DELETE_ID] =
        "local t=KEYS[1] local u=redis.call('HGET',t..'q:'..ARGV[1],'u') "
        "if not u or (ARGV[2]~='' and u~=ARGV[2]) then return 0 end "
        "redis.call('DEL',t..'q:'..ARGV[1]) redis.call('ZREM',t..'qall',ARGV[1]) "
        "redis.call('ZREM',t..'qu:'..u,ARGV[1]) return 1",
    /* queue_delete_call: ARGV room, user ('' = all) -> removed. The room's invitations are the
     * set qc:<room> (user_message adds them), so the tenant's queue is never read (audit M5);
     * ids already delivered or expired leave the set as they are met */
    [SC_QUEUE_DELETE_CALL] =
        "local t=KEYS[1] local c=t..'qc:'..ARGV[1] local n=0 "
        "for _,id in ipairs(redis.call('SMEMBERS',c)) do local "
        "u=redis.call('HGET',t..'q:'..id,'u') "
        "if not u then redis.call('SREM',c,id) elseif ARGV[2]=='' or u==ARGV[2] then "
        "redis.call('DEL',t..'q:'..id) redis.call('ZREM',t..'qall',id) "
        "redis.call('ZREM',t..'qu:'..u,id) redis.call('SREM',c,id) n=n+1 end end return n",
    /* history_delete_pipe: ARGV pipe -> rows removed */
    [SC_HISTORY_DELETE_PIPE] =
        "local t=KEYS[1] local h=t..'h:'..ARGV[1] local n=redis.call('XLEN',h) "
        "redis.call('DEL',h) redis.call('SREM',t..'hp',ARGV[1]) return n",
    /* history_delete_id: ARGV id -> rows removed */
    [SC_HISTORY_DELETE_ID] =
        "local t=KEYS[1] local n=0 for _,p in ipairs(redis.call('SMEMBERS',t..'hp')) do "
        "n=n+redis.call('XDEL',t..'h:'..p,ARGV[1]..'-0') end return n",
    /* pipe_setting_put: ARGV pipe, length -> 1 (the history is trimmed to the new length) */
    [SC_PIPE_SETTING_PUT] = "local t=KEYS[1] redis.call('HSET',t..'pset',ARGV[1],ARGV[2]) "
                            "if not string.find(ARGV[1],'^trust_') then "
                            "redis.call('XTRIM',t..'h:'..ARGV[1],'MAXLEN',ARGV[2]) end return 1",
    /* pipe_setting_delete: ARGV pipe -> settings removed (the history goes with it) */
    [SC_PIPE_SETTING_DELETE] =
        "local t=KEYS[1] local n=redis.call('HDEL',t..'pset',ARGV[1]) "
        "redis.call('DEL',t..'h:'..ARGV[1]) redis.call('SREM',t..'hp',ARGV[1]) return n",
    /* conf_delete: ARGV room, user ('' = the whole room) -> rows removed */
    [SC_CONF_DELETE] =
        "local t=KEYS[1] local c=t..'conf' local n=0 "
        "if ARGV[2]~='' then n=redis.call('HDEL',c,ARGV[1]..'\\n'..ARGV[2]) else "
        "local pre=ARGV[1]..'\\n' for _,f in ipairs(redis.call('HKEYS',c)) do "
        "if string.sub(f,1,#pre)==pre then n=n+redis.call('HDEL',c,f) end end end "
        "local left=false local pre=ARGV[1]..'\\n' for _,f in ipairs(redis.call('HKEYS',c)) do "
        "if string.sub(f,1,#pre)==pre then left=true break end end "
        "if not left then redis.call('HDEL',t..'confnode',ARGV[1]) end return n",
    /* token_put: ARGV token, now, expires (0: kept) -> 1. A revoked token past its own exp
     * opens nothing anyway: up to 100 of those go at each revocation (tokx: token -> exp) */
    [SC_TOKEN_PUT] =
        "local t=KEYS[1] redis.call('HSET',t..'tok',ARGV[1],ARGV[2]) "
        "if ARGV[3]~='0' then redis.call('ZADD',t..'tokx',ARGV[3],ARGV[1]) end "
        "for _,k in "
        "ipairs(redis.call('ZRANGEBYSCORE',t..'tokx','-inf','('..ARGV[2],'LIMIT',0,100)) do "
        "redis.call('HDEL',t..'tok',k) redis.call('ZREM',t..'tokx',k) end return 1",
    /* conf_put: ARGV field, row, room, node -> 1 (the row and the room's node together) */
    [SC_CONF_PUT] = "local t=KEYS[1] redis.call('HSET',t..'conf',ARGV[1],ARGV[2]) "
                    "redis.call('HSET',t..'confnode',ARGV[3],ARGV[4]) return 1",
    /* conf_claim: ARGV room, node, stale -> the room's node after */
    [SC_CONF_CLAIM] =
        "local t=KEYS[1] local c=redis.call('HGET',t..'confnode',ARGV[1]) "
        "if (not c) or c==ARGV[3] then redis.call('HSET',t..'confnode',ARGV[1],ARGV[2]) "
        "return ARGV[2] end return c",
};

/* ---- the backend ----------------------------------------------------------------------------- */

struct barrier_wait;

struct origin_slot { /* a browser's publish in flight: its connection is not sent its own */
    uint64_t serial;
    const void *origin;
};
#define ORIGIN_SLOTS 1024

/* One Redis server: a command link and a pub/sub link. Without [redis] cluster there is one,
 * owning every slot; with it, one per master, from CLUSTER SLOTS. */
struct shard {
    struct rstate *r;
    struct redis_link *cmd, *sub;
    char addr[300];    /* host:port */
    uint64_t subs_out; /* subscription changes sent on sub, not yet confirmed */
};
#define MAX_SHARDS 64
#define SLOTS      16384

struct rstate {
    struct state base;
    uv_loop_t *loop;
    struct hub *hub;
    int64_t trust_ttl, queue_ttl, recovery_messages, recovery_window;
    struct redis_link_conf link_conf; /* what every shard's links share (host and port aside) */
    bool cluster, slots_known, refreshing, stopped;
    uv_timer_t watch; /* cluster: asks where the slots are while a master is unreachable */
    struct shard *shards[MAX_SHARDS];
    size_t n_shards;
    uint8_t slot_shard[SLOTS]; /* the shard of each hash slot */
    char prefix[128];
    char node[17]; /* this node's random id, in every fan-out payload */
    char sha[SC_COUNT][41];
    struct hmap watched;
    uint64_t serial;
    struct origin_slot origins[ORIGIN_SLOTS];
    struct arena arena; /* decoded packed values, per reply */
    /* the barrier: subscription changes sent and confirmed, pipe reads sent and answered */
    uint64_t subs_sent, subs_acked, reads_sent, reads_done;
    struct barrier_wait *waits;
    struct redis_stats stats;
    void (*on_tenants)(void *ctx); /* (nullable) a tenant's credentials changed somewhere */
    void *on_tenants_ctx;
};

#define R(st) ((struct rstate *)(st))

static void barrier_check(struct rstate *r);

/* ---- hash slots ------------------------------------------------------------------------------ */

/* CRC16-CCITT (XMODEM), the hash Redis Cluster maps keys with. */
static uint16_t crc16(const char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((uint8_t)p[i] << 8);
        for (int k = 0; k < 8; k++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

static uint16_t tenant_slot(int64_t dev)
{
    char tag[32];
    int n = snprintf(tag, sizeof tag, "t%" PRId64, dev);
    return crc16(tag, (size_t)n) % SLOTS;
}

static struct shard *shard_of(const struct rstate *r, uint16_t slot)
{
    return r->n_shards ? r->shards[r->slot_shard[slot] < r->n_shards ? r->slot_shard[slot] : 0]
                       : NULL;
}

static struct shard *shard_get(struct rstate *r, const char *addr, size_t len);

/* ---- one call in flight ---------------------------------------------------------------------- */

struct req {
    struct rstate *r;
    struct state_cb cb;
    int64_t dev, a, limit;
    uint16_t slot;     /* where its keys live */
    uint8_t redirects; /* MOVED/ASK followed so far */
    const char *types; /* the row's columns: i (integer) s (string) */
    struct buf cmd;    /* the command as sent, for a redirect */
    struct buf tail;   /* a script call's arguments after the sha, kept for a NOSCRIPT retry */
    enum script_id script;
    size_t argc_tail; /* the arguments in tail */
    void (*on_reply)(struct req *q, const struct resp_value *v);
    size_t name_len;
    char name[]; /* a pipe or room the reply needs */
};

static struct req *req_new(struct rstate *r, const struct state_cb *cb, int64_t dev,
                           const char *name, size_t len)
{
    struct req *q = xcalloc(1, sizeof *q + len + 1);
    q->r = r;
    q->cb = *cb;
    q->dev = dev;
    q->slot = tenant_slot(dev);
    if (len) memcpy(q->name, name, len);
    q->name_len = len;
    buf_init(&q->cmd);
    buf_init(&q->tail);
    return q;
}

static void req_done(struct req *q, int64_t result, const char *err)
{
    struct state_cb cb = q->cb;
    buf_free(&q->cmd);
    buf_free(&q->tail);
    xfree(q);
    cb.done(cb.ctx, result, err);
}

static void put_tenant(struct buf *b, const struct rstate *r, int64_t dev)
{
    char k[200];
    int n = snprintf(k, sizeof k, "%s{t%" PRId64 "}:", r->prefix, dev);
    resp_arg(b, k, (size_t)n);
}

/* A key of the tenant: "<prefix>{t<dev>}:<what>[<name>]". */
static void put_key(struct buf *b, const struct rstate *r, int64_t dev, const char *what,
                    const char *name, size_t len)
{
    char k[200];
    int n = snprintf(k, sizeof k, "%s{t%" PRId64 "}:%s", r->prefix, dev, what);
    struct buf tmp;
    buf_init(&tmp);
    buf_append(&tmp, k, (size_t)n);
    if (len) buf_append(&tmp, name, len);
    resp_arg(b, buf_head(&tmp), buf_unread(&tmp));
    buf_free(&tmp);
}

/* The reply's error text, or NULL when it is not an error. */
static const char *reply_error(const struct resp_value *v, const char *err, char *out, size_t n)
{
    if (!v) {
        snprintf(out, n, "Redis: %s", err ? err : "no answer");
        return out;
    }
    if (v->type == RESP_ERR) {
        snprintf(out, n, "Redis: %.*s", (int)(v->len > 200 ? 200 : v->len), v->s);
        return out;
    }
    return NULL;
}

static void on_reply(void *ctx, const struct resp_value *v, const char *err);

/* A command to the shard that owns slot, or (after state_redis_stop) an immediate failure. */
static void cmd_send(struct rstate *r, uint16_t slot, const void *cmd, size_t len,
                     redis_reply_cb cb, void *ctx)
{
    struct shard *s = r->stopped ? NULL : shard_of(r, slot);
    if (s && s->cmd)
        redis_link_send(s->cmd, cmd, len, cb, ctx);
    else if (cb)
        cb(ctx, NULL, r->stopped ? "the server is stopping" : "Redis is unreachable");
}

static void refresh_slots(struct rstate *r);

static bool is_error(const struct resp_value *v, const char *code)
{
    size_t n = strlen(code);
    return v && v->type == RESP_ERR && v->len > n && memcmp(v->s, code, n) == 0 && v->s[n] == ' ';
}

/* MOVED <slot> <host:port> (the slot has a new owner: the map follows) or ASK <slot>
 * <host:port> (this one command goes there, after ASKING). True when q was sent again. */
static bool redirect(struct req *q, const struct resp_value *v)
{
    bool moved = is_error(v, "MOVED"), ask = is_error(v, "ASK");
    if ((!moved && !ask) || q->redirects >= 5) return false;
    const char *p = v->s + (moved ? 6 : 4), *end = v->s + v->len;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp || sp + 1 >= end) return false;
    char *slot_end;
    long slot = strtol(p, &slot_end, 10);
    if (slot_end != sp || slot < 0 || slot >= SLOTS) return false;
    struct rstate *r = q->r;
    struct shard *s = shard_get(r, sp + 1, (size_t)(end - sp - 1));
    if (!s) return false;
    q->redirects++;
    r->stats.redirects++;
    if (moved) {
        for (size_t i = 0; i < r->n_shards; i++)
            if (r->shards[i] == s) r->slot_shard[slot] = (uint8_t)i;
        refresh_slots(r); /* others have likely moved with it */
    } else {
        static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
        if (s->cmd) redis_link_send(s->cmd, asking, sizeof asking - 1, NULL, NULL);
    }
    if (!s->cmd) return false;
    redis_link_send(s->cmd, buf_head(&q->cmd), buf_unread(&q->cmd), on_reply, q);
    return true;
}

static void on_reply(void *ctx, const struct resp_value *v, const char *err)
{
    struct req *q = ctx;
    char text[300];
    if (v && v->type == RESP_ERR && v->len >= 8 && memcmp(v->s, "NOSCRIPT", 8) == 0 &&
        buf_unread(&q->tail)) {
        /* Redis lost the script (a restart, SCRIPT FLUSH): send it whole, once */
        q->cmd.off = q->cmd.len = 0;
        resp_begin(&q->cmd, 2 + q->argc_tail);
        resp_arg_str(&q->cmd, "EVAL");
        resp_arg_str(&q->cmd, script_text[q->script]);
        buf_append(&q->cmd, buf_head(&q->tail), buf_unread(&q->tail));
        buf_free(&q->tail);
        buf_init(&q->tail); /* no second retry */
        cmd_send(q->r, q->slot, buf_head(&q->cmd), buf_unread(&q->cmd), on_reply, q);
        return;
    }
    if (redirect(q, v)) return;
    if (is_error(v, "READONLY") || is_error(v, "CLUSTERDOWN")) refresh_slots(q->r);
    const char *e = reply_error(v, err, text, sizeof text);
    if (e) {
        q->r->stats.errors++;
        req_done(q, -1, e);
        return;
    }
    q->on_reply(q, v);
}

/* Sends b (moved into q, kept for a redirect). */
static void send_cmd(struct rstate *r, struct buf *b, struct req *q)
{
    buf_free(&q->cmd);
    q->cmd = *b;
    buf_init(b);
    cmd_send(r, q->slot, buf_head(&q->cmd), buf_unread(&q->cmd), on_reply, q);
}

/* A script call: argc_tail arguments (numkeys, the tenant key, the ARGVs) are in q->tail. */
static void send_script(struct rstate *r, struct req *q, enum script_id id, size_t argc_tail)
{
    q->script = id;
    q->argc_tail = argc_tail;
    struct buf b;
    buf_init(&b);
    resp_begin(&b, 2 + argc_tail);
    resp_arg_str(&b, "EVALSHA");
    resp_arg_str(&b, r->sha[id]);
    buf_append(&b, buf_head(&q->tail), buf_unread(&q->tail));
    send_cmd(r, &b, q);
}

/* ---- reply shapes ---------------------------------------------------------------------------- */

static bool to_int(const struct resp_value *v, int64_t *out)
{
    return resp_to_int(v, out);
}

static struct value as_value(const struct resp_value *v, char type)
{
    int64_t i;
    if (v->type == RESP_NIL) return value_null();
    if (type == 'i') return to_int(v, &i) ? value_int(i) : value_null();
    if (v->type == RESP_INT) return value_int(v->i);
    return value_str(v->s, v->len);
}

/* An integer reply is the result. */
static void reply_int(struct req *q, const struct resp_value *v)
{
    int64_t n = 0;
    if (!to_int(v, &n)) n = 1; /* +OK */
    req_done(q, n, NULL);
}

/* A write that succeeded: one row changed. */
static void reply_one(struct req *q, const struct resp_value *v)
{
    (void)v;
    req_done(q, 1, NULL);
}

/* An array of rows, each an array of q->types' columns. */
static void reply_rows(struct req *q, const struct resp_value *v)
{
    size_t ncol = strlen(q->types), rows = 0;
    struct value cols[8];
    bool more = true;
    for (size_t i = 0; v->type == RESP_ARRAY && i < v->n; i++) {
        const struct resp_value *row = &v->items[i];
        if (row->type != RESP_ARRAY || row->n < ncol) continue;
        for (size_t c = 0; c < ncol; c++)
            cols[c] = as_value(&row->items[c], q->types[c]);
        rows++;
        if (more && q->cb.row && q->cb.row(q->cb.ctx, cols, ncol)) more = false;
    }
    req_done(q, (int64_t)rows, NULL);
}

struct pair {
    const struct resp_value *k, *v;
    int64_t ik;
};

static int pair_cmp_int(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    return x->ik < y->ik ? -1 : x->ik > y->ik;
}

static int pair_cmp_str(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    size_t n = x->k->len < y->k->len ? x->k->len : y->k->len;
    int c = memcmp(x->k->s, y->k->s, n);
    return c ? c : (x->k->len < y->k->len ? -1 : x->k->len > y->k->len);
}

/* HGETALL: field/value pairs as rows (field, value) typed by q->types ("is", "ii", "si" or
 * "s": the field alone), ordered by field, at most q->limit (0: all). */
static void reply_pairs(struct req *q, const struct resp_value *v)
{
    size_t n = v->type == RESP_ARRAY ? v->n / 2 : 0;
    struct pair *p = xcalloc(n ? n : 1, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        p[i].k = &v->items[2 * i];
        p[i].v = &v->items[2 * i + 1];
        if (!to_int(p[i].k, &p[i].ik)) p[i].ik = INT64_MAX;
    }
    qsort(p, n, sizeof *p, q->types[0] == 'i' ? pair_cmp_int : pair_cmp_str);
    size_t ncol = strlen(q->types), rows = 0;
    for (size_t i = 0; i < n && (q->limit <= 0 || (int64_t)rows < q->limit); i++) {
        struct value cols[2] = {as_value(p[i].k, q->types[0]),
                                ncol > 1 ? as_value(p[i].v, q->types[1]) : value_null()};
        rows++;
        if (q->cb.row && q->cb.row(q->cb.ctx, cols, ncol)) break;
    }
    xfree(p);
    req_done(q, (int64_t)rows, NULL);
}

/* HGET of field q->a: one row (q->a, value) or none. */
static void reply_field(struct req *q, const struct resp_value *v)
{
    if (v->type == RESP_NIL) {
        req_done(q, 0, NULL);
        return;
    }
    struct value cols[2] = {value_int(q->a), as_value(v, q->types[1])};
    if (q->cb.row) q->cb.row(q->cb.ctx, cols, 2);
    req_done(q, 1, NULL);
}

/* ---- users, tokens, times -------------------------------------------------------------------- */

static void hash_get(struct state *st, int64_t dev, const char *what, int64_t field,
                     const char *types, const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = req_new(r, cb, dev, NULL, 0);
    q->a = field;
    q->types = types;
    q->on_reply = reply_field;
    struct buf b;
    buf_init(&b);
    resp_begin(&b, 3);
    resp_arg_str(&b, "HGET");
    put_key(&b, r, dev, what, NULL, 0);
    resp_arg_int(&b, field);
    send_cmd(r, &b, q);
}

static void hash_list(struct state *st, int64_t dev, const char *what, int64_t limit,
                      const char *types, const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = req_new(r, cb, dev, NULL, 0);
    q->limit = limit;
    q->types = types;
    q->on_reply = reply_pairs;
    struct buf b;
    buf_init(&b);
    resp_begin(&b, 2);
    resp_arg_str(&b, "HGETALL");
    put_key(&b, r, dev, what, NULL, 0);
    send_cmd(r, &b, q);
}

static void hash_put(struct state *st, int64_t dev, const char *what, const void *field,
                     size_t flen, const void *val, size_t vlen, const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = req_new(r, cb, dev, NULL, 0);
    q->on_reply = reply_one;
    struct buf b;
    buf_init(&b);
    resp_begin(&b, 4);
    resp_arg_str(&b, "HSET");
    put_key(&b, r, dev, what, NULL, 0);
    resp_arg(&b, field, flen);
    resp_arg(&b, val, vlen);
    send_cmd(r, &b, q);
}

static void hash_delete(struct state *st, int64_t dev, const char *what, const void *field,
                        size_t flen, const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = req_new(r, cb, dev, NULL, 0);
    q->on_reply = reply_int;
    struct buf b;
    buf_init(&b);
    resp_begin(&b, 3);
    resp_arg_str(&b, "HDEL");
    put_key(&b, r, dev, what, NULL, 0);
    resp_arg(&b, field, flen);
    send_cmd(r, &b, q);
}

static int int_text(char *out, int64_t v)
{
    return snprintf(out, 24, "%" PRId64, v);
}

static void auth_get(struct state *st, int64_t dev, int64_t user, const struct state_cb *cb)
{
    hash_get(st, dev, "auth", user, "is", cb);
}
static void auth_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *cb)
{
    hash_list(st, dev, "auth", limit, "is", cb);
}
static void auth_put(struct state *st, int64_t dev, int64_t user, const char *hash, size_t len,
                     const struct state_cb *cb)
{
    char f[24];
    int n = int_text(f, user);
    hash_put(st, dev, "auth", f, (size_t)n, hash, len, cb);
}
static void auth_delete(struct state *st, int64_t dev, int64_t user, const struct state_cb *cb)
{
    char f[24];
    int n = int_text(f, user);
    hash_delete(st, dev, "auth", f, (size_t)n, cb);
}
static void data_get(struct state *st, int64_t dev, int64_t user, const struct state_cb *cb)
{
    hash_get(st, dev, "data", user, "is", cb);
}
static void data_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *cb)
{
    hash_list(st, dev, "data", limit, "is", cb);
}
static void data_put(struct state *st, int64_t dev, int64_t user, const char *data, size_t len,
                     const struct state_cb *cb)
{
    char f[24];
    int n = int_text(f, user);
    hash_put(st, dev, "data", f, (size_t)n, data, len, cb);
}
static void data_delete(struct state *st, int64_t dev, int64_t user, const struct state_cb *cb)
{
    char f[24];
    int n = int_text(f, user);
    hash_delete(st, dev, "data", f, (size_t)n, cb);
}

static void reply_exists(struct req *q, const struct resp_value *v)
{
    int64_t n = 0;
    to_int(v, &n);
    if (n > 0 && q->cb.row) {
        struct value col = value_str(q->name, q->name_len);
        q->cb.row(q->cb.ctx, &col, 1);
    }
    req_done(q, n > 0, NULL);
}

static void token_get(struct state *st, int64_t dev, const char *token, size_t len,
                      const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = req_new(r, cb, dev, token, len);
    q->on_reply = reply_exists;
    struct buf b;
    buf_init(&b);
    resp_begin(&b, 3);
    resp_arg_str(&b, "HEXISTS");
    put_key(&b, r, dev, "tok", NULL, 0);
    resp_arg(&b, token, len);
    send_cmd(r, &b, q);
}
static void token_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *cb)
{
    hash_list(st, dev, "tok", limit, "s", cb);
}
static struct req *script_req(struct rstate *r, const struct state_cb *cb, int64_t dev,
                              const char *name, size_t len);

static void token_put(struct state *st, int64_t dev, const char *token, size_t len, int64_t now,
                      int64_t expires, const struct state_cb *cb)
{
    struct req *q = script_req(R(st), cb, dev, NULL, 0);
    q->on_reply = reply_one;
    resp_arg(&q->tail, token, len);
    resp_arg_int(&q->tail, now);
    resp_arg_int(&q->tail, expires);
    send_script(R(st), q, SC_TOKEN_PUT, 5);
}
static void token_delete(struct state *st, int64_t dev, const char *token, size_t len,
                         const struct state_cb *cb)
{
    hash_delete(st, dev, "tok", token, len, cb);
}
static void time_get(struct state *st, int64_t dev, int64_t user, const struct state_cb *cb)
{
    hash_get(st, dev, "time", user, "ii", cb);
}
static void time_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *cb)
{
    hash_list(st, dev, "time", limit, "ii", cb);
}
static void time_put(struct state *st, int64_t dev, int64_t user, int64_t t,
                     const struct state_cb *cb)
{
    char f[24], v[24];
    int n = int_text(f, user), m = int_text(v, t);
    hash_put(st, dev, "time", f, (size_t)n, v, (size_t)m, cb);
}

/* ---- scripts' callers ------------------------------------------------------------------------ */

/* A script request with the tenant key and argc ARGVs to follow in q->tail. */
static struct req *script_req(struct rstate *r, const struct state_cb *cb, int64_t dev,
                              const char *name, size_t len)
{
    struct req *q = req_new(r, cb, dev, name, len);
    resp_arg_str(&q->tail, "1");
    put_tenant(&q->tail, r, dev);
    q->on_reply = reply_int;
    return q;
}

static void queue_list(struct state *st, int64_t dev, int64_t user, int64_t limit,
                       const struct state_cb *cb)
{
    struct req *q = script_req(R(st), cb, dev, NULL, 0);
    q->types = "iiiss";
    q->on_reply = reply_rows;
    resp_arg_int(&q->tail, user);
    resp_arg_int(&q->tail, limit > 0 ? limit : 1000000);
    send_script(R(st), q, SC_QUEUE_LIST, 4);
}
static void queue_list_all(struct state *st, int64_t dev, int64_t limit, const struct state_cb *cb)
{
    struct req *q = script_req(R(st), cb, dev, NULL, 0);
    q->types = "iiiss";
    q->on_reply = reply_rows;
    resp_arg_str(&q->tail, "");
    resp_arg_int(&q->tail, limit > 0 ? limit : 1000000);
    send_script(R(st), q, SC_QUEUE_LIST, 4);
}
static void queue_delete_user(struct state *st, int64_t dev, int64_t user,
                              const struct state_cb *cb)
{
    struct req *q = script_req(R(st), cb, dev, NULL, 0);
    resp_arg_int(&q->tail, user);
    send_script(R(st), q, SC_QUEUE_DELETE_USER, 3);
}
static void queue_delete_id(struct state *st, int64_t dev, int64_t id, const struct state_cb *cb)
{
    struct req *q = script_req(R(st), cb, dev, NULL, 0);
    resp_arg_int(&q->tail, id);
    resp_arg_str(&q->tail, "");
    send_script(R(st), q, SC_QUEUE_DELETE_ID, 4);
}
static void queue_ack(struct state *st, int64_t dev, int64_t user, int64_t id,
                      const struct state_cb *cb)
{
    struct req *q = script_req(R(st), cb, dev, NULL, 0);
    resp_arg_int(&q->tail, id);
    resp_arg_int(&q->tail, user);
    send_script(R(st), q, SC_QUEUE_DELETE_ID, 4);
}
static void queue_delete_call(struct state *st, int64_t dev, const char *room, size_t len,
                              int64_t user, const struct state_cb *cb)
{
    struct req *q = script_req(R(st), cb, dev, NULL, 0);
    resp_arg(&q->tail, room, len);
    if (user > 0)
        resp_arg_int(&q->tail, user);
    else
        resp_arg_str(&q->tail, "");
    send_script(R(st), q, SC_QUEUE_DELETE_CALL, 4);
}

/* ---- history --------------------------------------------------------------------------------- */

/* XRANGE/XREVRANGE entries [id, [field, value ...]] as history rows (id, time, pipe, event,
 * message, user_id); reversed (newest first from XREVRANGE) when q->a is 1. */
static void reply_history(struct req *q, const struct resp_value *v)
{
    size_t n = v->type == RESP_ARRAY ? v->n : 0, rows = 0;
    for (size_t k = 0; k < n; k++) {
        const struct resp_value *e = &v->items[q->a ? n - 1 - k : k];
        if (e->type != RESP_ARRAY || e->n < 2 || e->items[1].type != RESP_ARRAY) continue;
        int64_t id = 0;
        const struct resp_value *idv = &e->items[0];
        for (size_t i = 0; i < idv->len && idv->s[i] != '-'; i++)
            id = id * 10 + (idv->s[i] - '0');
        struct value cols[6] = {value_int(id),    value_int(0),     value_str(q->name, q->name_len),
                                value_str("", 0), value_str("", 0), value_int(0)};
        const struct resp_value *f = &e->items[1];
        for (size_t i = 0; i + 1 < f->n; i += 2) {
            const struct resp_value *key = &f->items[i], *val = &f->items[i + 1];
            if (key->len != 1 || val->type != RESP_BULK) continue;
            int64_t x = 0;
            switch (key->s[0]) {
            case 't':
                if (to_int(val, &x)) cols[1] = value_int(x);
                break;
            case 'e': cols[3] = value_str(val->s, val->len); break;
            case 'm': cols[4] = value_str(val->s, val->len); break;
            case 'u':
                if (to_int(val, &x)) cols[5] = value_int(x);
                break;
            default: break;
            }
        }
        rows++;
        if (q->cb.row && q->cb.row(q->cb.ctx, cols, 6)) break;
    }
    req_done(q, (int64_t)rows, NULL);
}

static void history_list(struct state *st, int64_t dev, const char *pipe, size_t len, int64_t limit,
                         const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = script_req(r, cb, dev, pipe, len);
    q->a = 1; /* newest first from the script: reversed */
    q->on_reply = reply_history;
    resp_arg(&q->tail, pipe, len);
    resp_arg_int(&q->tail, limit > 0 ? limit : 1000000);
    resp_arg_int(&q->tail, (int64_t)time(NULL));
    resp_arg_int(&q->tail, r->trust_ttl);
    send_script(r, q, SC_HISTORY_LIST, 6);
}

static void history_since(struct state *st, int64_t dev, const char *pipe, size_t len,
                          int64_t after_id, int64_t limit, const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = req_new(r, cb, dev, pipe, len);
    q->on_reply = reply_history;
    struct buf b;
    buf_init(&b);
    char from[32];
    int n = snprintf(from, sizeof from, "(%" PRId64 "-0", after_id < 0 ? 0 : after_id);
    resp_begin(&b, 6);
    resp_arg_str(&b, "XRANGE");
    put_key(&b, r, dev, "h:", pipe, len);
    resp_arg(&b, from, (size_t)n);
    resp_arg_str(&b, "+");
    resp_arg_str(&b, "COUNT");
    resp_arg_int(&b, limit > 0 ? limit : 1000000);
    send_cmd(r, &b, q);
}

static void history_delete_pipe(struct state *st, int64_t dev, const char *pipe, size_t len,
                                const struct state_cb *cb)
{
    struct req *q = script_req(R(st), cb, dev, NULL, 0);
    resp_arg(&q->tail, pipe, len);
    send_script(R(st), q, SC_HISTORY_DELETE_PIPE, 3);
}

static void history_delete_id(struct state *st, int64_t dev, int64_t id, const struct state_cb *cb)
{
    struct req *q = script_req(R(st), cb, dev, NULL, 0);
    resp_arg_int(&q->tail, id);
    send_script(R(st), q, SC_HISTORY_DELETE_ID, 3);
}

/* ---- pipe settings --------------------------------------------------------------------------- */

static void reply_setting(struct req *q, const struct resp_value *v)
{
    if (v->type == RESP_NIL) {
        req_done(q, 0, NULL);
        return;
    }
    struct value cols[2] = {value_str(q->name, q->name_len), as_value(v, 'i')};
    if (q->cb.row) q->cb.row(q->cb.ctx, cols, 2);
    req_done(q, 1, NULL);
}

static void pipe_setting_get(struct state *st, int64_t dev, const char *pipe, size_t len,
                             const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = req_new(r, cb, dev, pipe, len);
    q->on_reply = reply_setting;
    struct buf b;
    buf_init(&b);
    resp_begin(&b, 3);
    resp_arg_str(&b, "HGET");
    put_key(&b, r, dev, "pset", NULL, 0);
    resp_arg(&b, pipe, len);
    send_cmd(r, &b, q);
}
static void pipe_setting_list(struct state *st, int64_t dev, int64_t limit,
                              const struct state_cb *cb)
{
    hash_list(st, dev, "pset", limit, "si", cb);
}
static void pipe_setting_put(struct state *st, int64_t dev, const char *pipe, size_t len,
                             int64_t length, const struct state_cb *cb)
{
    struct req *q = script_req(R(st), cb, dev, NULL, 0);
    resp_arg(&q->tail, pipe, len);
    resp_arg_int(&q->tail, length);
    send_script(R(st), q, SC_PIPE_SETTING_PUT, 4);
}
static void pipe_setting_delete(struct state *st, int64_t dev, const char *pipe, size_t len,
                                const struct state_cb *cb)
{
    struct req *q = script_req(R(st), cb, dev, NULL, 0);
    resp_arg(&q->tail, pipe, len);
    send_script(R(st), q, SC_PIPE_SETTING_DELETE, 3);
}

/* ---- invitations ----------------------------------------------------------------------------- */

/* conf values are RESP arrays: caller_id, message, profile, stream, node, time */
static void reply_conf(struct req *q, const struct resp_value *v)
{
    size_t n = v->type == RESP_ARRAY ? v->n / 2 : 0, rows = 0;
    struct pair *p = xcalloc(n ? n : 1, sizeof *p);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct resp_value *f = &v->items[2 * i];
        const char *nl = f->type == RESP_BULK ? memchr(f->s, '\n', f->len) : NULL;
        if (!nl) continue;
        size_t room_len = (size_t)(nl - f->s);
        if (q->name_len && (room_len != q->name_len || memcmp(f->s, q->name, room_len) != 0))
            continue;
        p[k].k = f;
        p[k].v = &v->items[2 * i + 1];
        k++;
    }
    qsort(p, k, sizeof *p, pair_cmp_str);
    struct arena *a = &q->r->arena;
    for (size_t i = 0; i < k && (q->limit <= 0 || (int64_t)rows < q->limit); i++) {
        const struct resp_value *f = p[i].k;
        const char *nl = memchr(f->s, '\n', f->len);
        size_t room_len = (size_t)(nl - f->s);
        int64_t user = 0;
        struct resp_value uv = {RESP_BULK, 0, nl + 1, f->len - room_len - 1, NULL, 0};
        to_int(&uv, &user);
        struct resp_value *row;
        size_t used;
        const char *err;
        if (p[i].v->type != RESP_BULK ||
            resp_parse(p[i].v->s, p[i].v->len, NULL, a, &row, &used, &err) != RESP_OK ||
            row->type != RESP_ARRAY || row->n < 6)
            continue;
        struct value cols[8] = {value_str(f->s, room_len),     value_int(user),
                                as_value(&row->items[0], 'i'), as_value(&row->items[1], 's'),
                                as_value(&row->items[2], 's'), as_value(&row->items[3], 's'),
                                as_value(&row->items[4], 's'), as_value(&row->items[5], 'i')};
        rows++;
        if (q->cb.row && q->cb.row(q->cb.ctx, cols, 8)) break;
    }
    arena_reset(a);
    xfree(p);
    req_done(q, (int64_t)rows, NULL);
}

static void conf_read(struct state *st, int64_t dev, const char *room, size_t len, int64_t limit,
                      const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = req_new(r, cb, dev, room, len);
    q->limit = limit;
    q->on_reply = reply_conf;
    struct buf b;
    buf_init(&b);
    resp_begin(&b, 2);
    resp_arg_str(&b, "HGETALL");
    put_key(&b, r, dev, "conf", NULL, 0);
    send_cmd(r, &b, q);
}

static void conf_get(struct state *st, int64_t dev, const char *room, size_t len,
                     const struct state_cb *cb)
{
    conf_read(st, dev, room, len, 0, cb);
}
static void conf_list(struct state *st, int64_t dev, int64_t limit, const struct state_cb *cb)
{
    conf_read(st, dev, NULL, 0, limit, cb);
}

static void conf_put(struct state *st, int64_t dev, const struct state_invitation *inv,
                     const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = req_new(r, cb, dev, NULL, 0);
    struct buf row, field;
    buf_init(&row);
    buf_init(&field);
    resp_begin(&row, 6);
    resp_arg_int(&row, inv->caller_id);
    resp_arg(&row, inv->message, inv->message_len);
    resp_arg_str(&row, inv->profile);
    resp_arg_str(&row, inv->stream);
    resp_arg_str(&row, inv->node);
    resp_arg_int(&row, inv->time);
    char u[24];
    int n = int_text(u, inv->user_id);
    buf_append(&field, inv->name, strlen(inv->name));
    buf_append(&field, "\n", 1);
    buf_append(&field, u, (size_t)n);
    q->on_reply = reply_one;
    resp_arg_str(&q->tail, "1");
    put_tenant(&q->tail, r, dev);
    resp_arg(&q->tail, buf_head(&field), buf_unread(&field));
    resp_arg(&q->tail, buf_head(&row), buf_unread(&row));
    resp_arg_str(&q->tail, inv->name);
    resp_arg_str(&q->tail, inv->node);
    send_script(r, q, SC_CONF_PUT, 6);
    buf_free(&row);
    buf_free(&field);
}

static void conf_delete(struct state *st, int64_t dev, const char *room, size_t len, int64_t user,
                        const struct state_cb *cb)
{
    struct req *q = script_req(R(st), cb, dev, NULL, 0);
    resp_arg(&q->tail, room, len);
    if (user > 0)
        resp_arg_int(&q->tail, user);
    else
        resp_arg_str(&q->tail, "");
    send_script(R(st), q, SC_CONF_DELETE, 4);
}

static void reply_node(struct req *q, const struct resp_value *v)
{
    if (v->type != RESP_BULK) {
        req_done(q, 0, NULL);
        return;
    }
    struct value col = value_str(v->s, v->len);
    if (q->cb.row) q->cb.row(q->cb.ctx, &col, 1);
    req_done(q, 1, NULL);
}

static void conf_node(struct state *st, int64_t dev, const char *room, size_t len,
                      const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = req_new(r, cb, dev, NULL, 0);
    q->on_reply = reply_node;
    struct buf b;
    buf_init(&b);
    resp_begin(&b, 3);
    resp_arg_str(&b, "HGET");
    put_key(&b, r, dev, "confnode", NULL, 0);
    resp_arg(&b, room, len);
    send_cmd(r, &b, q);
}

static void conf_claim(struct state *st, int64_t dev, const char *room, size_t len,
                       const char *node, const char *stale, const struct state_cb *cb)
{
    struct req *q = script_req(R(st), cb, dev, NULL, 0);
    q->on_reply = reply_node;
    resp_arg(&q->tail, room, len);
    resp_arg_str(&q->tail, node);
    resp_arg_str(&q->tail, stale);
    send_script(R(st), q, SC_CONF_CLAIM, 5);
}

/* ---- tenants --------------------------------------------------------------------------------- */

/* Keys and channels of no tenant carry the tag {g}: one slot for all of them. */
static void global_key(struct buf *b, const struct rstate *r, const char *what)
{
    char k[200];
    int n = snprintf(k, sizeof k, "%s{g}:%s", r->prefix, what);
    resp_arg(b, k, (size_t)n);
}

static uint16_t global_slot(void)
{
    return crc16("g", 1) % SLOTS;
}

/* tenants: dev -> RESP array (password, old_password, old_until, jwt, old_jwt, old_jwt_until,
 * created, updated) */
static void reply_tenants(struct req *q, const struct resp_value *v)
{
    size_t n = v->type == RESP_ARRAY ? v->n / 2 : 0, rows = 0;
    struct pair *p = xcalloc(n ? n : 1, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        p[i].k = &v->items[2 * i];
        p[i].v = &v->items[2 * i + 1];
        if (!to_int(p[i].k, &p[i].ik)) p[i].ik = INT64_MAX;
    }
    qsort(p, n, sizeof *p, pair_cmp_int);
    struct arena *a = &q->r->arena;
    for (size_t i = 0; i < n; i++) {
        struct resp_value *row;
        size_t used;
        const char *err;
        if (p[i].ik == INT64_MAX || p[i].v->type != RESP_BULK ||
            resp_parse(p[i].v->s, p[i].v->len, NULL, a, &row, &used, &err) != RESP_OK ||
            row->type != RESP_ARRAY || row->n < 8)
            continue;
        struct value cols[9] = {value_int(p[i].ik),
                                as_value(&row->items[0], 's'),
                                as_value(&row->items[1], 's'),
                                as_value(&row->items[2], 'i'),
                                as_value(&row->items[3], 's'),
                                as_value(&row->items[4], 's'),
                                as_value(&row->items[5], 'i'),
                                as_value(&row->items[6], 'i'),
                                as_value(&row->items[7], 'i')};
        rows++;
        if (q->cb.row && q->cb.row(q->cb.ctx, cols, 9)) break;
    }
    arena_reset(a);
    xfree(p);
    req_done(q, (int64_t)rows, NULL);
}

static void tenant_list(struct state *st, const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = req_new(r, cb, 0, NULL, 0);
    q->slot = global_slot();
    q->on_reply = reply_tenants;
    struct buf b;
    buf_init(&b);
    resp_begin(&b, 2);
    resp_arg_str(&b, "HGETALL");
    global_key(&b, r, "tenants");
    send_cmd(r, &b, q);
}

static void tenant_put(struct state *st, const struct tenant *t, const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = req_new(r, cb, 0, NULL, 0);
    q->slot = global_slot();
    q->on_reply = reply_one;
    char pw[41] = "", old[41] = "";
    if (t->has_password) tenant_hash_hex(t->password, pw);
    if (t->has_old_password) tenant_hash_hex(t->old_password, old);
    struct buf row, b;
    buf_init(&row);
    buf_init(&b);
    resp_begin(&row, 8);
    resp_arg_str(&row, pw);
    resp_arg_str(&row, old);
    resp_arg_int(&row, t->has_old_password ? t->old_password_until : 0);
    resp_arg(&row, t->jwt_secret ? t->jwt_secret : "", t->jwt_secret ? t->jwt_len : 0);
    resp_arg(&row, t->old_jwt_secret ? t->old_jwt_secret : "",
             t->old_jwt_secret ? t->old_jwt_len : 0);
    resp_arg_int(&row, t->old_jwt_secret ? t->old_jwt_until : 0);
    resp_arg_int(&row, t->created);
    resp_arg_int(&row, t->updated);
    resp_begin(&b, 4);
    resp_arg_str(&b, "HSET");
    global_key(&b, r, "tenants");
    resp_arg_int(&b, t->dev_id);
    resp_arg(&b, buf_head(&row), buf_unread(&row));
    buf_free(&row);
    send_cmd(r, &b, q);
}

static void tenant_delete(struct state *st, int64_t dev, const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = req_new(r, cb, 0, NULL, 0);
    q->slot = global_slot();
    q->on_reply = reply_int;
    struct buf b;
    buf_init(&b);
    resp_begin(&b, 3);
    resp_arg_str(&b, "HDEL");
    global_key(&b, r, "tenants");
    resp_arg_int(&b, dev);
    send_cmd(r, &b, q);
}

/* ---- publishing and the fan-out between nodes ------------------------------------------------ */

/* The fan-out payload: "<node> <serial> <time> <user> <browser> <event_len>\n" (the head, from
 * this node), then the id and '\n' (added by the script), then event and data. */
static void payload_head(struct rstate *r, const struct state_message *m, uint64_t serial,
                         char *out, size_t cap)
{
    snprintf(out, cap, "%s %" PRIu64 " %" PRId64 " %" PRId64 " %d %zu\n", r->node, serial, m->time,
             m->user_id, m->from_browser ? 1 : 0, m->event_len);
}

static void pipe_publish(struct state *st, const struct state_message *m, const struct state_cb *cb)
{
    struct rstate *r = R(st);
    uint64_t serial = 0;
    if (m->origin) {
        serial = ++r->serial;
        struct origin_slot *s = &r->origins[serial % ORIGIN_SLOTS];
        s->serial = serial;
        s->origin = m->origin;
    }
    struct req *q = script_req(r, cb, m->dev_id, NULL, 0);
    bool trust = m->target_len >= 6 && memcmp(m->target, "trust_", 6) == 0;
    char head[160];
    payload_head(r, m, serial, head, sizeof head);
    resp_arg(&q->tail, m->target, m->target_len);
    resp_arg_str(&q->tail, trust ? "1" : "0");
    resp_arg_int(&q->tail, m->time);
    resp_arg(&q->tail, m->event, m->event_len);
    resp_arg(&q->tail, m->data, m->data_len);
    resp_arg_int(&q->tail, m->user_id);
    resp_arg_int(&q->tail, r->trust_ttl);
    resp_arg_str(&q->tail, head);
    struct buf rest;
    buf_init(&rest);
    buf_append(&rest, m->event, m->event_len);
    buf_append(&rest, m->data, m->data_len);
    resp_arg(&q->tail, buf_head(&rest), buf_unread(&rest));
    buf_free(&rest);
    resp_arg_str(&q->tail, m->from_browser ? "1" : "0");
    resp_arg_int(&q->tail, r->recovery_messages);
    resp_arg_int(&q->tail, r->recovery_window);
    resp_arg_int(&q->tail, (int64_t)time(NULL));
    r->stats.publishes++;
    send_script(r, q, SC_PUBLISH, 15);
}

static void user_message(struct state *st, const struct state_message *m, const struct state_cb *cb)
{
    struct rstate *r = R(st);
    struct req *q = script_req(r, cb, m->dev_id, NULL, 0);
    char head[160];
    payload_head(r, m, 0, head, sizeof head);
    resp_arg_int(&q->tail, m->user_id);
    resp_arg_int(&q->tail, m->time);
    resp_arg(&q->tail, m->event, m->event_len);
    resp_arg(&q->tail, m->data, m->data_len);
    resp_arg_str(&q->tail, head);
    struct buf rest;
    buf_init(&rest);
    buf_append(&rest, m->event, m->event_len);
    buf_append(&rest, m->data, m->data_len);
    resp_arg(&q->tail, buf_head(&rest), buf_unread(&rest));
    buf_free(&rest);
    resp_arg_int(&q->tail, r->queue_ttl);
    resp_arg(&q->tail, m->call_room ? m->call_room : "", m->call_room ? m->call_room_len : 0);
    send_script(r, q, SC_USER_MESSAGE, 10);
}

/* A decimal number then one separator byte. */
static bool take_num(const char **p, const char *end, int64_t *out)
{
    const char *s = *p;
    bool neg = s < end && *s == '-';
    if (neg) s++;
    int64_t v = 0;
    size_t n = 0;
    while (s < end && *s >= '0' && *s <= '9' && n < 18) {
        v = v * 10 + (*s++ - '0');
        n++;
    }
    if (!n || s >= end) return false;
    *out = neg ? -v : v;
    *p = s + 1;
    return true;
}

/* One message as it fans out between nodes. */
struct fanout {
    int64_t serial, time, user_id, browser, id, seq;
    const char *event, *data;
    size_t event_len, data_len;
    bool mine; /* published by this node */
};

/* "<node> <serial> <time> <user> <browser> <event_len>\n<id> <seq>\n<event><data>" */
static bool parse_fanout(const struct rstate *r, const char *p, size_t len, struct fanout *f)
{
    const char *end = p + len, *sp = memchr(p, ' ', len);
    if (!sp) return false;
    f->mine = (size_t)(sp - p) == strlen(r->node) && memcmp(p, r->node, (size_t)(sp - p)) == 0;
    p = sp + 1;
    int64_t event_len;
    if (!take_num(&p, end, &f->serial) || !take_num(&p, end, &f->time) ||
        !take_num(&p, end, &f->user_id) || !take_num(&p, end, &f->browser) ||
        !take_num(&p, end, &event_len) || !take_num(&p, end, &f->id) ||
        !take_num(&p, end, &f->seq) || event_len < 0 || event_len > end - p)
        return false;
    f->event = p;
    f->event_len = (size_t)event_len;
    f->data = p + event_len;
    f->data_len = (size_t)(end - p - event_len);
    return true;
}

/* A stream entry [id, [t, e, m, u, b, s ...]] as a fan-out message; false when it is not one. */
static bool parse_entry(const struct resp_value *e, struct fanout *f)
{
    memset(f, 0, sizeof *f);
    f->event = f->data = "";
    if (e->type != RESP_ARRAY || e->n < 2 || e->items[0].type != RESP_BULK ||
        e->items[1].type != RESP_ARRAY)
        return false;
    const struct resp_value *idv = &e->items[0];
    const char *dash = memchr(idv->s, '-', idv->len);
    struct resp_value idnum = {RESP_BULK, 0, idv->s, dash ? (size_t)(dash - idv->s) : idv->len,
                               NULL,      0};
    if (!to_int(&idnum, &f->id)) return false;
    const struct resp_value *fl = &e->items[1];
    for (size_t i = 0; i + 1 < fl->n; i += 2) {
        const struct resp_value *key = &fl->items[i], *val = &fl->items[i + 1];
        if (key->type != RESP_BULK || key->len != 1 || val->type != RESP_BULK) continue;
        switch (key->s[0]) {
        case 't': to_int(val, &f->time); break;
        case 'e':
            f->event = val->s;
            f->event_len = val->len;
            break;
        case 'm':
            f->data = val->s;
            f->data_len = val->len;
            break;
        case 'u': to_int(val, &f->user_id); break;
        case 'b': to_int(val, &f->browser); break;
        case 's': to_int(val, &f->seq); break;
        default: break;
        }
    }
    return true;
}

/* A message held while its pipe's gap is being read from the stream. */
struct held {
    struct held *next;
    size_t len;
    char payload[];
};

struct watched { /* a channel this node is subscribed to */
    struct hnode node;
    int64_t dev;
    bool is_user;
    /* a pipe: the last message delivered here (seq 0: none known yet), and whether delivery
     * waits on a read of the stream (the anchor at subscription, or a gap's repair) */
    int64_t last_seq, last_id;
    bool busy, anchor_due; /* anchor_due: read where it stands once the subscription is in */
    struct held *held, *held_tail;
    size_t pipe_off; /* the pipe's name within name */
    uint16_t slot;   /* its tenant's hash slot */
    int sub_shard;   /* the shard it is subscribed on, -1: none (yet) */
    size_t len;
    char name[];
};

static void hub_deliver(struct rstate *r, struct watched *w, const struct fanout *f)
{
    const char *pipe = w->name + w->pipe_off;
    size_t pipe_len = w->len - w->pipe_off;
    const void *origin = NULL;
    if (f->mine && f->serial) {
        struct origin_slot *s = &r->origins[(uint64_t)f->serial % ORIGIN_SLOTS];
        if (s->serial == (uint64_t)f->serial) origin = s->origin;
    }
    struct hub_message hm = {w->dev,
                             w->is_user ? "msg" : pipe,
                             w->is_user ? 3 : pipe_len,
                             f->event,
                             f->event_len,
                             f->data,
                             f->data_len,
                             f->id,
                             f->time,
                             f->user_id,
                             f->browser != 0,
                             origin};
    r->stats.received++;
    if (w->is_user) {
        struct resp_value uv = {RESP_BULK, 0, pipe, pipe_len, NULL, 0};
        int64_t user_id;
        if (to_int(&uv, &user_id)) hub_send_user(r->hub, user_id, &hm);
    } else {
        hub_publish_pipe(r->hub, &hm);
    }
}

static void repair(struct rstate *r, struct watched *w, int64_t to_id);

/* A pipe's message in sequence order: delivered, dropped (seen), or the sign of a gap, which is
 * read from the stream before anything later is delivered. */
static void pipe_message(struct rstate *r, struct watched *w, const struct fanout *f,
                         const char *payload, size_t len)
{
    if (w->busy) {
        struct held *h = xmalloc(sizeof *h + len);
        h->next = NULL;
        h->len = len;
        memcpy(h->payload, payload, len);
        if (w->held_tail)
            w->held_tail->next = h;
        else
            w->held = h;
        w->held_tail = h;
        return;
    }
    if (w->last_seq && f->seq <= w->last_seq) {
        r->stats.duplicates++;
        return;
    }
    if (w->last_seq && f->seq > w->last_seq + 1 && payload) {
        r->stats.gaps++;
        w->busy = true;
        pipe_message(r, w, f, payload, len); /* held behind the repair */
        repair(r, w, f->id);
        return;
    }
    w->last_seq = f->seq;
    w->last_id = f->id;
    hub_deliver(r, w, f);
}

/* The stream read is done: what was held goes on in order (a gap the stream could not fill is
 * accepted: those messages are gone from it too). */
static void release_held(struct rstate *r, struct watched *w)
{
    w->busy = false;
    while (w->held && !w->busy) {
        struct held *h = w->held;
        w->held = h->next;
        if (!w->held) w->held_tail = NULL;
        struct fanout f;
        if (parse_fanout(r, h->payload, h->len, &f)) {
            if (w->last_seq && f.seq > w->last_seq + 1) {
                r->stats.gaps_lost += (uint64_t)(f.seq - w->last_seq - 1);
                w->last_seq = f.seq - 1;
            }
            pipe_message(r, w, &f, NULL, 0);
        }
        xfree(h);
    }
}

static struct watched *watched_find(struct rstate *r, const char *name, size_t len)
{
    uint64_t h = hmap_hash_bytes(11, name, len);
    for (struct hnode *n = hmap_first(&r->watched, h); n; n = hmap_next_same(n)) {
        struct watched *w = (struct watched *)n;
        if (w->len == len && memcmp(w->name, name, len) == 0) return w;
    }
    return NULL;
}

/* A read for a watched pipe (its anchor, or a gap's repair), as a req named by the channel: it
 * finds the pipe again by name when Redis answers, and follows redirects like any call. */
struct pipe_read {
    struct rstate *r;
    size_t len;
    char name[];
};

static struct watched *pipe_read_target(struct req *q)
{
    struct watched *w = watched_find(q->r, q->name, q->name_len);
    return w && w->busy ? w : NULL;
}

/* Every read ends here once: a failed one (the link, a refusal) is asked again when the
 * command link is up, and the messages held behind it go on meanwhile. */
static void pipe_read_done(void *ctx, int64_t result, const char *err)
{
    struct pipe_read *pr = ctx;
    struct rstate *r = pr->r;
    (void)err;
    if (result < 0) {
        struct watched *w = watched_find(r, pr->name, pr->len);
        if (w && w->busy) {
            w->anchor_due = true;
            release_held(r, w);
        }
    }
    xfree(pr);
    r->reads_done++;
    barrier_check(r);
}

static struct req *pipe_read_new(struct rstate *r, const struct watched *w)
{
    struct pipe_read *pr = xmalloc(sizeof *pr + w->len);
    pr->r = r;
    pr->len = w->len;
    memcpy(pr->name, w->name, w->len);
    struct state_cb cb = {NULL, pipe_read_done, pr};
    r->reads_sent++;
    return req_new(r, &cb, w->dev, w->name, w->len);
}

/* An answer came: held messages go on (a useless answer counts as a failure). */
static void pipe_read_end(struct req *q, struct watched *w, bool ok)
{
    if (w && !ok) w->anchor_due = true;
    if (w) release_held(q->r, w);
    req_done(q, 1, NULL);
}

static void repaired(struct req *q, const struct resp_value *v)
{
    struct rstate *r = q->r;
    struct watched *w = pipe_read_target(q);
    if (w && v->type == RESP_ARRAY) {
        for (size_t i = 0; i < v->n; i++) {
            struct fanout f;
            if (!parse_entry(&v->items[i], &f) || f.seq <= w->last_seq) continue;
            f.mine = false; /* a repaired message reaches every subscriber here */
            w->last_seq = f.seq;
            w->last_id = f.id;
            r->stats.repaired++;
            hub_deliver(r, w, &f);
        }
    }
    pipe_read_end(q, w, v->type == RESP_ARRAY);
}

/* Reads the pipe's messages after the last delivered one (and before to_id, 0: to the end). */
static void repair(struct rstate *r, struct watched *w, int64_t to_id)
{
    struct buf b;
    buf_init(&b);
    char from[32], to[32];
    int nf = snprintf(from, sizeof from, "(%" PRId64 "-0", w->last_id);
    int nt = to_id ? snprintf(to, sizeof to, "(%" PRId64 "-0", to_id) : snprintf(to, 2, "+");
    resp_begin(&b, 6);
    resp_arg_str(&b, "XRANGE");
    put_key(&b, r, w->dev, "h:", w->name + w->pipe_off, w->len - w->pipe_off);
    resp_arg(&b, from, (size_t)nf);
    resp_arg(&b, to, (size_t)nt);
    resp_arg_str(&b, "COUNT");
    resp_arg_int(&b, r->recovery_messages > 0 ? r->recovery_messages * 4 : 256);
    struct req *q = pipe_read_new(r, w);
    q->on_reply = repaired;
    send_cmd(r, &b, q);
}

static void anchored(struct req *q, const struct resp_value *v)
{
    struct watched *w = pipe_read_target(q);
    bool ok = v->type == RESP_ARRAY && v->n >= 2;
    if (w && ok) {
        to_int(&v->items[0], &w->last_seq);
        to_int(&v->items[1], &w->last_id);
    }
    pipe_read_end(q, w, ok);
}

/* Where the pipe's sequence stands now: what arrives after it is new to this node. Read once
 * the subscription is in place, so nothing falls between the two. */
static void anchor(struct rstate *r, struct watched *w)
{
    struct req *q = pipe_read_new(r, w);
    q->on_reply = anchored;
    resp_arg_str(&q->tail, "1");
    put_tenant(&q->tail, r, w->dev);
    resp_arg(&q->tail, w->name + w->pipe_off, w->len - w->pipe_off);
    send_script(r, q, SC_ANCHOR, 3);
}

/* The pipe's subscription is (again) in place: where it stands, or what it missed meanwhile.
 * Delivery waits for the answer; if the command link cannot ask now, it asks when it is up. */
static void catch_up(struct rstate *r, struct watched *w)
{
    w->anchor_due = false;
    w->busy = true;
    if (w->last_seq)
        repair(r, w, 0); /* back after an outage */
    else
        anchor(r, w);
}

/* A message from the shard channel of a pipe or a user: delivered to this node's browsers. */
static void deliver(struct rstate *r, const struct resp_value *chan, const struct resp_value *msg)
{
    struct watched *w = chan->type == RESP_BULK ? watched_find(r, chan->s, chan->len) : NULL;
    struct fanout f;
    if (!w) return; /* unsubscribed meanwhile */
    if (msg->type != RESP_BULK || !parse_fanout(r, msg->s, msg->len, &f)) {
        r->stats.bad_messages++;
        return;
    }
    if (w->is_user)
        hub_deliver(r, w, &f);
    else
        pipe_message(r, w, &f, msg->s, msg->len);
}

/* The control channel every node listens to: "kick <dev> <user>" closes that user's
 * connections on every node (its key deleted, its token revoked, on whichever node). */
static void control_channel(const struct rstate *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s{g}:ctl", r->prefix);
}

static void control(struct rstate *r, const struct resp_value *chan, const struct resp_value *msg)
{
    char name[200];
    control_channel(r, name, sizeof name);
    if (chan->type != RESP_BULK || chan->len != strlen(name) || memcmp(chan->s, name, chan->len) ||
        msg->type != RESP_BULK) {
        r->stats.bad_messages++;
        return;
    }
    if (msg->len >= 7 && memcmp(msg->s, "tenant ", 7) == 0) {
        if (r->on_tenants) r->on_tenants(r->on_tenants_ctx);
        return;
    }
    if (msg->len < 5 || memcmp(msg->s, "kick ", 5) != 0) {
        r->stats.bad_messages++;
        return;
    }
    const char *p = msg->s + 5, *end = msg->s + msg->len;
    int64_t dev, user;
    if (!take_num(&p, end, &dev) || !take_num(&p, end, &user)) {
        r->stats.bad_messages++;
        return;
    }
    hub_kick_user(r->hub, dev, user);
}

static void control_send(struct rstate *r, const char *text, size_t len)
{
    char name[200];
    control_channel(r, name, sizeof name);
    struct buf b;
    buf_init(&b);
    resp_begin(&b, 3);
    resp_arg_str(&b, "PUBLISH");
    resp_arg_str(&b, name);
    resp_arg(&b, text, len);
    cmd_send(r, global_slot(), buf_head(&b), buf_unread(&b), NULL, NULL); /* reaches every node */
    buf_free(&b);
}

void state_redis_tenants_changed(struct state *st, int64_t dev)
{
    char text[64];
    int n = snprintf(text, sizeof text, "tenant %" PRId64 " ", dev);
    control_send(R(st), text, (size_t)n);
}

void state_redis_on_tenants(struct state *st, void (*fn)(void *ctx), void *ctx)
{
    R(st)->on_tenants = fn;
    R(st)->on_tenants_ctx = ctx;
}

void state_redis_kick(struct state *st, int64_t dev, int64_t user)
{
    struct rstate *r = R(st);
    char name[200], text[64];
    control_channel(r, name, sizeof name);
    int n = snprintf(text, sizeof text, "kick %" PRId64 " %" PRId64 " ", dev, user);
    struct buf b;
    buf_init(&b);
    resp_begin(&b, 3);
    resp_arg_str(&b, "PUBLISH");
    resp_arg_str(&b, name);
    resp_arg(&b, text, (size_t)n);
    cmd_send(r, global_slot(), buf_head(&b), buf_unread(&b), NULL, NULL); /* reaches every node */
    buf_free(&b);
}

/* ---- subscriptions and the barrier ----------------------------------------------------------- */

struct barrier_wait {
    struct barrier_wait *next;
    uint64_t subs, reads; /* done when this many confirmations and reads are in */
    void (*cb)(void *ctx);
    void *ctx;
};

static void barrier_check(struct rstate *r)
{
    struct barrier_wait **pp = &r->waits;
    while (*pp) {
        struct barrier_wait *b = *pp;
        if (r->subs_acked >= b->subs && r->reads_done >= b->reads) {
            *pp = b->next;
            b->cb(b->ctx);
            xfree(b);
            pp = &r->waits; /* the callback may have added or ended waits */
        } else {
            pp = &b->next;
        }
    }
}

static bool barrier(void *ctx, void (*cb)(void *ctx), void *cb_ctx)
{
    struct rstate *r = ctx;
    if (r->subs_acked >= r->subs_sent && r->reads_done >= r->reads_sent) return false;
    struct barrier_wait *b = xmalloc(sizeof *b);
    b->subs = r->subs_sent;
    b->reads = r->reads_sent;
    b->cb = cb;
    b->ctx = cb_ctx;
    b->next = r->waits;
    r->waits = b;
    return true;
}

static void on_push(void *ctx, struct redis_link *l, const struct resp_value *v)
{
    struct shard *sh = ctx;
    struct rstate *r = sh->r;
    (void)l;
    if ((v->type != RESP_ARRAY && v->type != RESP_PUSH) || v->n < 3) return;
    if (resp_is(&v->items[0], "message")) {
        control(r, &v->items[1], &v->items[2]);
        return;
    }
    if (resp_is(&v->items[0], "smessage")) {
        deliver(r, &v->items[1], &v->items[2]);
        return;
    }
    bool sub = resp_is(&v->items[0], "ssubscribe");
    if (!sub && !resp_is(&v->items[0], "sunsubscribe")) return;
    struct watched *w =
        v->items[1].type == RESP_BULK ? watched_find(r, v->items[1].s, v->items[1].len) : NULL;
    if (!sub && w) {
        /* not asked for: the slot moved (a reshard, a failover). Where it is now, then again
         * there, and what was missed meanwhile is read from the stream */
        r->stats.moved_channels++;
        w->sub_shard = -1;
        if (!w->is_user) w->anchor_due = true;
        refresh_slots(r);
        return;
    }
    if (sh->subs_out) {
        sh->subs_out--;
        r->subs_acked++;
    }
    /* a pipe's subscription is in place: where its sequence stands now */
    if (sub && w && !w->is_user && w->anchor_due) catch_up(r, w);
    barrier_check(r);
}

static void subscribe_on(struct shard *sh, const char *verb, const char *name, size_t len)
{
    if (!sh->sub || !redis_link_is_up(sh->sub)) return;
    struct buf b;
    buf_init(&b);
    resp_begin(&b, 2);
    resp_arg_str(&b, verb);
    resp_arg(&b, name, len);
    redis_link_send(sh->sub, buf_head(&b), buf_unread(&b), NULL, NULL);
    buf_free(&b);
    sh->subs_out++;
    sh->r->subs_sent++;
}

static int shard_index(const struct rstate *r, const struct shard *sh)
{
    for (size_t i = 0; i < r->n_shards; i++)
        if (r->shards[i] == sh) return (int)i;
    return -1;
}

/* Subscribes w on the shard that owns its slot now, if its subscription is elsewhere. */
static void place_subscription(struct rstate *r, struct watched *w)
{
    struct shard *sh = shard_of(r, w->slot);
    int i = sh ? shard_index(r, sh) : -1;
    if (i < 0 || i == w->sub_shard || !sh->sub || !redis_link_is_up(sh->sub)) return;
    if (w->sub_shard >= 0 && (size_t)w->sub_shard < r->n_shards)
        subscribe_on(r->shards[w->sub_shard], "SUNSUBSCRIBE", w->name, w->len);
    w->sub_shard = i;
    subscribe_on(sh, "SSUBSCRIBE", w->name, w->len);
}

static void watch_channel(struct rstate *r, int64_t dev, bool is_user, const char *name, size_t len,
                          size_t pipe_off, bool on)
{
    struct watched *w = watched_find(r, name, len);
    if (on && !w) {
        w = xcalloc(1, sizeof *w + len);
        w->dev = dev;
        w->is_user = is_user;
        w->pipe_off = pipe_off;
        w->slot = tenant_slot(dev);
        w->sub_shard = -1;
        w->len = len;
        memcpy(w->name, name, len);
        hmap_insert(&r->watched, &w->node, hmap_hash_bytes(11, name, len));
        w->anchor_due = !is_user;
        w->busy = !is_user; /* until the anchor: nothing is delivered out of sequence */
        place_subscription(r, w);
    } else if (!on && w) {
        hmap_remove(&r->watched, &w->node);
        if (w->sub_shard >= 0 && (size_t)w->sub_shard < r->n_shards)
            subscribe_on(r->shards[w->sub_shard], "SUNSUBSCRIBE", name, len);
        while (w->held) {
            struct held *h = w->held;
            w->held = h->next;
            xfree(h);
        }
        xfree(w);
    }
}

static void watch_pipe(void *ctx, int64_t dev, const char *pipe, size_t len, bool on)
{
    struct rstate *r = ctx;
    char head[200];
    int n = snprintf(head, sizeof head, "%s{t%" PRId64 "}:c:", r->prefix, dev);
    struct buf b;
    buf_init(&b);
    buf_append(&b, head, (size_t)n);
    buf_append(&b, pipe, len);
    watch_channel(r, dev, false, (const char *)buf_head(&b), buf_unread(&b), (size_t)n, on);
    buf_free(&b);
}

static void watch_user(void *ctx, int64_t dev, int64_t user, bool on)
{
    struct rstate *r = ctx;
    char name[200];
    int n = snprintf(name, sizeof name, "%s{t%" PRId64 "}:u:", r->prefix, dev);
    int m = snprintf(name + n, sizeof name - (size_t)n, "%" PRId64, user);
    watch_channel(r, dev, true, name, (size_t)(n + m), (size_t)n, on);
}

/* A shard's subscriber link went down: its confirmations in flight will not come (nobody waits
 * on them), and its channels are subscribed again when it is back. */
static void on_sub_down(void *ctx, struct redis_link *l, const char *why)
{
    struct shard *sh = ctx;
    struct rstate *r = sh->r;
    (void)l;
    (void)why;
    r->subs_acked += sh->subs_out;
    sh->subs_out = 0;
    int i = shard_index(r, sh);
    size_t b = 0;
    for (struct hnode *n = hmap_iter(&r->watched, &b, NULL); n; n = hmap_iter(&r->watched, &b, n)) {
        struct watched *w = (struct watched *)n;
        if (w->sub_shard == i) w->sub_shard = -1;
    }
    barrier_check(r);
    if (r->cluster) refresh_slots(r); /* a failover may have moved its slots */
}

/* Every watched channel on the shard that owns it now; the control channel on shard 0 (classic
 * pub/sub reaches every node of a cluster from any). */
static void place_all(struct rstate *r)
{
    size_t b = 0;
    for (struct hnode *n = hmap_iter(&r->watched, &b, NULL); n; n = hmap_iter(&r->watched, &b, n)) {
        struct watched *w = (struct watched *)n;
        if (w->sub_shard < 0 && !w->is_user) w->anchor_due = true;
        place_subscription(r, w);
    }
}

static void on_sub_up(void *ctx, struct redis_link *l)
{
    struct shard *sh = ctx;
    struct rstate *r = sh->r;
    if (shard_index(r, sh) == 0) {
        char ctl[200];
        control_channel(r, ctl, sizeof ctl);
        struct buf cmd;
        buf_init(&cmd);
        resp_begin(&cmd, 2);
        resp_arg_str(&cmd, "SUBSCRIBE");
        resp_arg_str(&cmd, ctl);
        redis_link_send(l, buf_head(&cmd), buf_unread(&cmd), NULL, NULL);
        buf_free(&cmd);
    }
    place_all(r);
    r->stats.resubscribes++;
}

static void on_cmd_up(void *ctx, struct redis_link *l)
{
    struct shard *sh = ctx;
    struct rstate *r = sh->r;
    /* the scripts, so that EVALSHA finds them (a NOSCRIPT is still handled) */
    for (int i = 0; i < SC_COUNT; i++) {
        struct buf b;
        buf_init(&b);
        resp_begin(&b, 3);
        resp_arg_str(&b, "SCRIPT");
        resp_arg_str(&b, "LOAD");
        resp_arg_str(&b, script_text[i]);
        redis_link_send(l, buf_head(&b), buf_unread(&b), NULL, NULL);
        buf_free(&b);
    }
    if (r->cluster && !r->slots_known) refresh_slots(r);
    /* pipes whose catch-up could not be asked while this link was down */
    size_t bucket = 0;
    for (struct hnode *n = hmap_iter(&r->watched, &bucket, NULL); n;
         n = hmap_iter(&r->watched, &bucket, n)) {
        struct watched *w = (struct watched *)n;
        if (!w->is_user && w->anchor_due && !w->busy && w->sub_shard >= 0) catch_up(r, w);
    }
}

/* ---- shards and the slot map ----------------------------------------------------------------- */

static struct shard *shard_new(struct rstate *r, const char *host, int port)
{
    if (r->n_shards >= MAX_SHARDS || r->stopped) return NULL;
    struct shard *sh = xcalloc(1, sizeof *sh);
    sh->r = r;
    snprintf(sh->addr, sizeof sh->addr, "%s:%d", host, port);
    struct redis_link_conf lc = r->link_conf;
    snprintf(lc.host, sizeof lc.host, "%s", host);
    lc.port = port;
    struct redis_link_cbs cmd_cbs = {sh, on_cmd_up, NULL, NULL};
    sh->cmd = redis_link_new(r->loop, &lc, &cmd_cbs);
    lc.subscriber = true;
    struct redis_link_cbs sub_cbs = {sh, on_sub_up, on_sub_down, on_push};
    sh->sub = redis_link_new(r->loop, &lc, &sub_cbs);
    r->shards[r->n_shards++] = sh;
    return sh;
}

/* The shard of "host:port", made (and connected) when new. */
static struct shard *shard_get(struct rstate *r, const char *addr, size_t len)
{
    for (size_t i = 0; i < r->n_shards; i++)
        if (strlen(r->shards[i]->addr) == len && memcmp(r->shards[i]->addr, addr, len) == 0)
            return r->shards[i];
    char text[300];
    if (len >= sizeof text) return NULL;
    memcpy(text, addr, len);
    text[len] = '\0';
    struct redis_link_conf c;
    char err[160];
    if (redis_addr_parse(text, &c, err, sizeof err) != 0) return NULL;
    return shard_new(r, c.host, c.port);
}

/* CLUSTER SLOTS: [[start, end, [host, port, id], replicas ...] ...] */
static void on_slots(void *ctx, const struct resp_value *v, const char *err)
{
    struct rstate *r = ctx;
    (void)err;
    r->refreshing = false;
    if (r->stopped || !v || v->type != RESP_ARRAY) return;
    for (size_t i = 0; i < v->n; i++) {
        const struct resp_value *range = &v->items[i];
        int64_t lo, hi, port;
        if (range->type != RESP_ARRAY || range->n < 3 || !to_int(&range->items[0], &lo) ||
            !to_int(&range->items[1], &hi) || range->items[2].type != RESP_ARRAY ||
            range->items[2].n < 2 || range->items[2].items[0].type != RESP_BULK ||
            !to_int(&range->items[2].items[1], &port) || lo < 0 || hi >= SLOTS || lo > hi)
            continue;
        char addr[300];
        int n = snprintf(addr, sizeof addr, "%.*s:%" PRId64, (int)range->items[2].items[0].len,
                         range->items[2].items[0].s, port);
        struct shard *sh = shard_get(r, addr, (size_t)n);
        int k = sh ? shard_index(r, sh) : -1;
        if (k < 0) continue;
        for (int64_t s = lo; s <= hi; s++)
            r->slot_shard[s] = (uint8_t)k;
    }
    r->slots_known = true;
    r->stats.slot_refreshes++;
    place_all(r);
}

/* Asks any shard that is up where every slot lives now (one question at a time). */
static void refresh_slots(struct rstate *r)
{
    if (!r->cluster || r->refreshing || r->stopped) return;
    for (size_t i = 0; i < r->n_shards; i++) {
        struct shard *sh = r->shards[i];
        if (!sh->cmd || !redis_link_is_up(sh->cmd)) continue;
        static const char cmd[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
        r->refreshing = true;
        redis_link_send(sh->cmd, cmd, sizeof cmd - 1, on_slots, r);
        return;
    }
}

/* Every second in cluster mode: a master that owns slots and is unreachable may have been
 * replaced by its replica (a failover): the map is asked again until it is reachable. */
static void on_watch_slots(uv_timer_t *t)
{
    struct rstate *r = t->data;
    bool owns[MAX_SHARDS] = {false};
    for (size_t s = 0; s < SLOTS; s++)
        owns[r->slot_shard[s]] = true;
    for (size_t i = 0; i < r->n_shards; i++) {
        struct shard *sh = r->shards[i];
        if (owns[i] &&
            !(sh->cmd && redis_link_is_up(sh->cmd) && sh->sub && redis_link_is_up(sh->sub))) {
            refresh_slots(r);
            return;
        }
    }
}

static bool commit_pending(const struct state *st)
{
    (void)st;
    return false; /* a write is done when Redis answered it */
}

void state_redis_stop(struct state *st)
{
    struct rstate *r = R(st);
    hub_set_watch(r->hub, NULL);
    r->subs_sent = r->subs_acked = r->reads_sent = r->reads_done = 0;
    barrier_check(r); /* nobody waits past the stop */
    r->stopped = true;
    if (r->cluster) uv_close((uv_handle_t *)&r->watch, NULL);
    for (size_t i = 0; i < r->n_shards; i++) {
        redis_link_free(r->shards[i]->cmd); /* fails what is in flight: each caller hears it */
        redis_link_free(r->shards[i]->sub);
        r->shards[i]->cmd = r->shards[i]->sub = NULL;
    }
}

static void redis_free(struct state *st)
{
    struct rstate *r = R(st);
    if (!r->stopped) state_redis_stop(st);
    for (size_t i = 0; i < r->n_shards; i++)
        xfree(r->shards[i]);
    size_t b = 0;
    struct hnode *n;
    while ((n = hmap_iter(&r->watched, &b, NULL))) {
        struct watched *w = (struct watched *)n;
        hmap_remove(&r->watched, n);
        while (w->held) {
            struct held *h = w->held;
            w->held = h->next;
            xfree(h);
        }
        xfree(w);
        b = 0;
    }
    hmap_free(&r->watched);
    while (r->waits) {
        struct barrier_wait *w = r->waits;
        r->waits = w->next;
        xfree(w);
    }
    arena_free(&r->arena);
    xfree(r);
}

static const struct state_ops redis_ops = {
    .name = "redis",
    .completes_inline = false,
    .auth_get = auth_get,
    .auth_list = auth_list,
    .auth_put = auth_put,
    .auth_delete = auth_delete,
    .data_get = data_get,
    .data_list = data_list,
    .data_put = data_put,
    .data_delete = data_delete,
    .token_get = token_get,
    .token_list = token_list,
    .token_put = token_put,
    .token_delete = token_delete,
    .time_get = time_get,
    .time_list = time_list,
    .time_put = time_put,
    .queue_list = queue_list,
    .queue_list_all = queue_list_all,
    .queue_delete_user = queue_delete_user,
    .queue_delete_id = queue_delete_id,
    .queue_ack = queue_ack,
    .queue_delete_call = queue_delete_call,
    .history_list = history_list,
    .history_since = history_since,
    .history_delete_pipe = history_delete_pipe,
    .history_delete_id = history_delete_id,
    .pipe_setting_get = pipe_setting_get,
    .pipe_setting_list = pipe_setting_list,
    .pipe_setting_put = pipe_setting_put,
    .pipe_setting_delete = pipe_setting_delete,
    .conf_get = conf_get,
    .conf_list = conf_list,
    .conf_put = conf_put,
    .conf_delete = conf_delete,
    .conf_node = conf_node,
    .conf_claim = conf_claim,
    .pipe_publish = pipe_publish,
    .user_message = user_message,
    .tenant_list = tenant_list,
    .tenant_put = tenant_put,
    .tenant_delete = tenant_delete,
    .commit_pending = commit_pending,
    .free = redis_free,
};

struct state *state_redis_new(uv_loop_t *loop, const struct config *cfg, struct hub *hub, char *err,
                              size_t errlen)
{
    if (strlen(cfg->redis_prefix) > 64) {
        snprintf(err, errlen, "[redis] prefix must be at most 64 bytes");
        return NULL;
    }
    /* server: one host:port, or with cluster = yes a comma-separated list of seeds */
    struct redis_link_conf seeds[8];
    size_t n_seeds = 0;
    const char *p = cfg->redis_server;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char one[300];
        while (len && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        if (len == 0 || len >= sizeof one || n_seeds == sizeof seeds / sizeof *seeds) {
            snprintf(err, errlen, "[redis] server: expected host:port[,host:port...] (up to 8)");
            return NULL;
        }
        memcpy(one, p, len);
        one[len] = '\0';
        memset(&seeds[n_seeds], 0, sizeof seeds[n_seeds]);
        if (redis_addr_parse(one, &seeds[n_seeds], err, errlen) != 0) return NULL;
        n_seeds++;
        p += len + (comma ? 1 : 0);
    }
    if (!n_seeds) {
        snprintf(err, errlen, "[redis] server is empty");
        return NULL;
    }
    if (n_seeds > 1 && !cfg->redis_cluster) {
        snprintf(err, errlen, "[redis] server lists several servers: set cluster = yes");
        return NULL;
    }
    struct rstate *r = xcalloc(1, sizeof *r);
    r->base.ops = &redis_ops;
    r->loop = loop;
    r->hub = hub;
    r->cluster = cfg->redis_cluster;
    r->trust_ttl = cfg->store_trust_ttl;
    r->queue_ttl = cfg->store_queue_ttl;
    r->recovery_messages = cfg->ws_recovery_messages;
    r->recovery_window = cfg->ws_recovery_window;
    snprintf(r->link_conf.user, sizeof r->link_conf.user, "%s", cfg->redis_user);
    snprintf(r->link_conf.password, sizeof r->link_conf.password, "%s", cfg->redis_password);
    r->link_conf.db = r->cluster ? 0 : (int)cfg->redis_db;
    r->link_conf.timeout_ms = (unsigned)cfg->redis_timeout_ms;
    snprintf(r->prefix, sizeof r->prefix, "%s", cfg->redis_prefix);
    unsigned char id[8];
    if (RAND_bytes(id, sizeof id) != 1) {
        for (size_t i = 0; i < sizeof id; i++)
            id[i] = (unsigned char)random();
    }
    for (size_t i = 0; i < sizeof id; i++)
        snprintf(r->node + 2 * i, 3, "%02x", id[i]);
    for (int i = 0; i < SC_COUNT; i++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)script_text[i], strlen(script_text[i]), md);
        for (int k = 0; k < SHA_DIGEST_LENGTH; k++)
            snprintf(r->sha[i] + 2 * k, 3, "%02x", md[k]);
    }
    hmap_init(&r->watched);
    arena_init(&r->arena);
    /* every slot on the first seed until CLUSTER SLOTS says otherwise */
    for (size_t i = 0; i < n_seeds; i++)
        shard_new(r, seeds[i].host, seeds[i].port);
    r->slots_known = !r->cluster;
    if (r->cluster) {
        uv_timer_init(loop, &r->watch);
        r->watch.data = r;
        uv_timer_start(&r->watch, on_watch_slots, 1000, 1000);
    }
    struct hub_watch w = {r, watch_pipe, watch_user, barrier};
    hub_set_watch(hub, &w);
    return &r->base;
}

bool state_redis_up(const struct state *st)
{
    const struct rstate *r = (const struct rstate *)st;
    if (r->stopped || !r->slots_known) return false;
    /* every shard that owns a slot */
    bool owns[MAX_SHARDS] = {false};
    for (size_t s = 0; s < SLOTS; s++)
        owns[r->slot_shard[s]] = true;
    for (size_t i = 0; i < r->n_shards; i++) {
        const struct shard *sh = r->shards[i];
        if (owns[i] && !(redis_link_is_up(sh->cmd) && redis_link_is_up(sh->sub))) return false;
    }
    return r->n_shards > 0;
}

void state_redis_stats(const struct state *st, struct redis_stats *out)
{
    const struct rstate *r = (const struct rstate *)st;
    *out = r->stats;
    out->shards = r->n_shards;
    uint64_t lat = 0, n = 0;
    for (size_t i = 0; i < r->n_shards && !r->stopped; i++) {
        const struct redis_link_stats *a = redis_link_stats(r->shards[i]->cmd);
        const struct redis_link_stats *b = redis_link_stats(r->shards[i]->sub);
        out->reconnects += a->reconnects + b->reconnects;
        lat += a->latency_us_sum;
        n += a->latency_n;
    }
    out->latency_us = n ? lat / n : 0;
}
