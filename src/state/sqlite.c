/* store: SQLite schema, prepared statements and group commit; see store.h. It must never block
 * on anything but the database file, and never commit behind the server's back: commits happen
 * only in store_commit(), which the loop calls before replies are sent. */
#include "state/store.h"
#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum stmt_id {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_AUTH_PUT,
    S_AUTH_GET,
    S_AUTH_DEL,
    S_AUTH_LIST,
    S_DATA_PUT,
    S_DATA_GET,
    S_DATA_DEL,
    S_DATA_LIST,
    S_TOKEN_PUT,
    S_TOKEN_GET,
    S_TOKEN_DEL,
    S_TOKEN_LIST,
    S_TIME_PUT,
    S_TIME_GET,
    S_TIME_LIST,
    S_QUEUE_ADD,
    S_QUEUE_LIST,
    S_QUEUE_LIST_ALL,
    S_QUEUE_DEL_USER,
    S_QUEUE_DEL_ID,
    S_QUEUE_DEL_USER_ID,
    S_HIST_ADD,
    S_HIST_TRIM,
    S_HIST_LIST,
    S_HIST_SINCE,
    S_HIST_DEL_PIPE,
    S_HIST_DEL_ID,
    S_PSET_PUT,
    S_PSET_GET,
    S_PSET_DEL,
    S_PSET_LIST,
    S_PSET_ALL,
    S_MAX_ID,
    S_SET_BLOCK,
    S_PURGE_QUEUE,
    S_PURGE_TRUST,
    S_CONF_PUT,
    S_CONF_GET,
    S_CONF_LIST,
    S_CONF_DEL_USER,
    S_CONF_DEL_ROOM,
    S_CONF_NODE,
    S_QUEUE_DEL_CALL,
    S_QUEUE_DEL_CALL_USER,
    S_TENANT_PUT,
    S_TENANT_DEL,
    S_TENANT_LIST,
    S_COUNT
};

static const char *const sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_AUTH_PUT] = "INSERT INTO users_auth(dev_id,user_id,hash) VALUES(?1,?2,?3) "
                   "ON CONFLICT(dev_id,user_id) DO UPDATE SET hash=excluded.hash",
    [S_AUTH_GET] = "SELECT user_id,hash FROM users_auth WHERE dev_id=?1 AND user_id=?2",
    [S_AUTH_DEL] = "DELETE FROM users_auth WHERE dev_id=?1 AND user_id=?2",
    [S_AUTH_LIST] = "SELECT user_id,hash FROM users_auth WHERE dev_id=?1 ORDER BY user_id LIMIT ?2",
    [S_DATA_PUT] = "INSERT INTO users_data(dev_id,user_id,data) VALUES(?1,?2,?3) "
                   "ON CONFLICT(dev_id,user_id) DO UPDATE SET data=excluded.data",
    [S_DATA_GET] = "SELECT user_id,data FROM users_data WHERE dev_id=?1 AND user_id=?2",
    [S_DATA_DEL] = "DELETE FROM users_data WHERE dev_id=?1 AND user_id=?2",
    [S_DATA_LIST] = "SELECT user_id,data FROM users_data WHERE dev_id=?1 ORDER BY user_id LIMIT ?2",
    [S_TOKEN_PUT] = "INSERT INTO revoked_tokens(dev_id,token,time) VALUES(?1,?2,?3) "
                    "ON CONFLICT(dev_id,token) DO NOTHING",
    [S_TOKEN_GET] = "SELECT token FROM revoked_tokens WHERE dev_id=?1 AND token=?2",
    [S_TOKEN_DEL] = "DELETE FROM revoked_tokens WHERE dev_id=?1 AND token=?2",
    [S_TOKEN_LIST] =
        "SELECT token FROM revoked_tokens WHERE dev_id=?1 ORDER BY time, token LIMIT ?2",
    [S_TIME_PUT] = "INSERT INTO users_time(dev_id,user_id,time) VALUES(?1,?2,?3) "
                   "ON CONFLICT(dev_id,user_id) DO UPDATE SET time=excluded.time",
    [S_TIME_GET] = "SELECT user_id,time FROM users_time WHERE dev_id=?1 AND user_id=?2",
    [S_TIME_LIST] = "SELECT user_id,time FROM users_time WHERE dev_id=?1 ORDER BY user_id LIMIT ?2",
    [S_QUEUE_ADD] = "INSERT INTO users_messages(dev_id,user_id,time,event,message,call_room) "
                    "VALUES(?1,?2,?3,?4,?5,?6)",
    [S_QUEUE_LIST] = "SELECT user_id,id,time,event,message FROM users_messages "
                     "WHERE dev_id=?1 AND user_id=?2 ORDER BY id LIMIT ?3",
    [S_QUEUE_LIST_ALL] = "SELECT user_id,id,time,event,message FROM users_messages "
                         "WHERE dev_id=?1 ORDER BY id LIMIT ?2",
    [S_QUEUE_DEL_USER] = "DELETE FROM users_messages WHERE dev_id=?1 AND user_id=?2",
    [S_QUEUE_DEL_ID] = "DELETE FROM users_messages WHERE dev_id=?1 AND id=?2",
    [S_QUEUE_DEL_USER_ID] = "DELETE FROM users_messages WHERE dev_id=?1 AND user_id=?2 AND id=?3",
    [S_HIST_ADD] = "INSERT INTO pipe_messages(dev_id,pipe,time,event,message,user_id,id) "
                   "VALUES(?1,?2,?3,?4,?5,?6,?7)",
    [S_HIST_TRIM] = "DELETE FROM pipe_messages WHERE dev_id=?1 AND pipe=?2 AND id <= "
                    "(SELECT id FROM pipe_messages WHERE dev_id=?1 AND pipe=?2 "
                    "ORDER BY id DESC LIMIT 1 OFFSET ?3)",
    [S_HIST_LIST] = "SELECT id,time,pipe,event,message,user_id FROM "
                    "(SELECT * FROM pipe_messages WHERE dev_id=?1 AND pipe=?2 "
                    "ORDER BY id DESC LIMIT ?3) ORDER BY id",
    [S_HIST_SINCE] = "SELECT id,time,pipe,event,message,user_id FROM pipe_messages "
                     "WHERE dev_id=?1 AND pipe=?2 AND id>?3 ORDER BY id LIMIT ?4",
    [S_HIST_DEL_PIPE] = "DELETE FROM pipe_messages WHERE dev_id=?1 AND pipe=?2",
    [S_HIST_DEL_ID] = "DELETE FROM pipe_messages WHERE dev_id=?1 AND id=?2",
    [S_PSET_PUT] = "INSERT INTO pipes_settings(dev_id,name,length) VALUES(?1,?2,?3) "
                   "ON CONFLICT(dev_id,name) DO UPDATE SET length=excluded.length",
    [S_PSET_GET] = "SELECT name,length FROM pipes_settings WHERE dev_id=?1 AND name=?2",
    [S_PSET_DEL] = "DELETE FROM pipes_settings WHERE dev_id=?1 AND name=?2",
    [S_PSET_LIST] = "SELECT name,length FROM pipes_settings WHERE dev_id=?1 ORDER BY name LIMIT ?2",
    [S_PSET_ALL] = "SELECT dev_id,name,length FROM pipes_settings",
    [S_MAX_ID] =
        "SELECT max(coalesce((SELECT max(id) FROM pipe_messages),0),"
        "coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key='message_id_block'),0))",
    [S_SET_BLOCK] = "INSERT INTO meta(key,value) VALUES('message_id_block',?1) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
    [S_PURGE_QUEUE] = "DELETE FROM users_messages WHERE time < ?1",
    [S_PURGE_TRUST] =
        "DELETE FROM pipe_messages WHERE time < ?1 AND pipe LIKE 'trust\\_%' ESCAPE '\\'",
    [S_CONF_PUT] = "INSERT INTO conference(dev_id,name,user_id,caller_id,message,profile,stream,"
                   "node,time) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9) "
                   "ON CONFLICT(dev_id,name,user_id) DO UPDATE SET caller_id=excluded.caller_id,"
                   "message=excluded.message,profile=excluded.profile,stream=excluded.stream,"
                   "node=excluded.node,time=excluded.time",
    [S_CONF_GET] = "SELECT name,user_id,caller_id,message,profile,stream,node,time FROM conference "
                   "WHERE dev_id=?1 AND name=?2 ORDER BY user_id",
    [S_CONF_LIST] = "SELECT name,user_id,caller_id,message,profile,stream,node,time FROM "
                    "conference WHERE dev_id=?1 ORDER BY name,user_id LIMIT ?2",
    [S_CONF_DEL_USER] = "DELETE FROM conference WHERE dev_id=?1 AND name=?2 AND user_id=?3",
    [S_CONF_DEL_ROOM] = "DELETE FROM conference WHERE dev_id=?1 AND name=?2",
    [S_CONF_NODE] = "SELECT node FROM conference WHERE dev_id=?1 AND name=?2 "
                    "ORDER BY time DESC LIMIT 1",
    [S_QUEUE_DEL_CALL] = "DELETE FROM users_messages WHERE dev_id=?1 AND call_room=?2",
    [S_QUEUE_DEL_CALL_USER] =
        "DELETE FROM users_messages WHERE dev_id=?1 AND user_id=?3 AND call_room=?2",
    [S_TENANT_PUT] = "INSERT INTO tenants(dev_id,password,old_password,old_password_until,"
                     "jwt_secret,old_jwt_secret,old_jwt_until,created,updated) "
                     "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9) ON CONFLICT(dev_id) DO UPDATE SET "
                     "password=excluded.password,old_password=excluded.old_password,"
                     "old_password_until=excluded.old_password_until,"
                     "jwt_secret=excluded.jwt_secret,old_jwt_secret=excluded.old_jwt_secret,"
                     "old_jwt_until=excluded.old_jwt_until,updated=excluded.updated",
    [S_TENANT_DEL] = "DELETE FROM tenants WHERE dev_id=?1",
    [S_TENANT_LIST] = "SELECT dev_id,password,old_password,old_password_until,jwt_secret,"
                      "old_jwt_secret,old_jwt_until,created,updated FROM tenants ORDER BY dev_id",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS users_auth(dev_id INTEGER NOT NULL, user_id INTEGER NOT NULL,"
    " hash TEXT NOT NULL, PRIMARY KEY(dev_id,user_id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS users_data(dev_id INTEGER NOT NULL, user_id INTEGER NOT NULL,"
    " data TEXT NOT NULL, PRIMARY KEY(dev_id,user_id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS revoked_tokens(dev_id INTEGER NOT NULL, token TEXT NOT NULL,"
    " time INTEGER NOT NULL, PRIMARY KEY(dev_id,token)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS users_time(dev_id INTEGER NOT NULL, user_id INTEGER NOT NULL,"
    " time INTEGER NOT NULL, PRIMARY KEY(dev_id,user_id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS users_messages(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " dev_id INTEGER NOT NULL, user_id INTEGER NOT NULL, time INTEGER NOT NULL,"
    " event TEXT NOT NULL, message TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS users_messages_user ON users_messages(dev_id,user_id,id);"
    "CREATE INDEX IF NOT EXISTS users_messages_time ON users_messages(time);"
    "CREATE TABLE IF NOT EXISTS pipe_messages(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " dev_id INTEGER NOT NULL, pipe TEXT NOT NULL, time INTEGER NOT NULL, event TEXT NOT NULL,"
    " message TEXT NOT NULL, user_id INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS pipe_messages_pipe ON pipe_messages(dev_id,pipe,id);"
    "CREATE INDEX IF NOT EXISTS pipe_messages_time ON pipe_messages(time);"
    "CREATE TABLE IF NOT EXISTS pipes_settings(dev_id INTEGER NOT NULL, name TEXT NOT NULL,"
    " length INTEGER NOT NULL, PRIMARY KEY(dev_id,name)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS conference(dev_id INTEGER NOT NULL, name TEXT NOT NULL,"
    " user_id INTEGER NOT NULL, caller_id INTEGER NOT NULL, message TEXT NOT NULL,"
    " profile TEXT NOT NULL, stream TEXT NOT NULL, node TEXT NOT NULL, time INTEGER NOT NULL,"
    " PRIMARY KEY(dev_id,name,user_id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS tenants(dev_id INTEGER PRIMARY KEY, password TEXT NOT NULL,"
    " old_password TEXT NOT NULL, old_password_until INTEGER NOT NULL, jwt_secret TEXT NOT NULL,"
    " old_jwt_secret TEXT NOT NULL, old_jwt_until INTEGER NOT NULL, created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta(key,value) VALUES('schema_version','1');";

/* Schema changes after version 1, each run once in a transaction with the version it brings. */
static const char *const migrations[] = {
    /* 2: queued invitations carry their room, indexed, so that ending a room is one index range
     * and never a LIKE over the tenant's whole queue (audit M5); rows queued before get it from
     * their JSON */
    "ALTER TABLE users_messages ADD COLUMN call_room TEXT;"
    "UPDATE users_messages SET call_room=json_extract(message,'$.sys.conference_name') "
    " WHERE event='sys_sipCall' AND json_valid(message);"
    "CREATE INDEX users_messages_call ON users_messages(dev_id,call_room,user_id)"
    " WHERE call_room IS NOT NULL;",
};

static int schema_version(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='schema_version'", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = atoi((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

/* Brings the schema from its recorded version to the newest. A store newer than this binary is
 * refused (its columns would be misread). */
static int migrate(sqlite3 *db, char *err, size_t errlen)
{
    int newest = 1 + (int)(sizeof migrations / sizeof *migrations);
    int v = schema_version(db);
    if (v < 1 || v > newest) {
        snprintf(err, errlen, "schema version %d is not one this ccomet reads (1..%d)", v, newest);
        return -1;
    }
    for (; v < newest; v++) {
        char bump[96];
        snprintf(bump, sizeof bump, "UPDATE meta SET value='%d' WHERE key='schema_version';",
                 v + 1);
        char *msg = NULL;
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(db, migrations[v - 1], NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(db, bump, NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
            snprintf(err, errlen, "schema migration to version %d: %s", v + 1, msg ? msg : "?");
            sqlite3_free(msg);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    return 0;
}

/* pipes_settings lengths, cached so that publishing never reads the database */
struct pset_entry {
    struct pset_entry *next;
    int64_t dev, length;
    size_t len;
    char name[];
};

struct store {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    bool in_txn;
    /* SQLite rolled the iteration's transaction back on an error (disk full, I/O): every write
     * of the iteration is gone, so the commit must fail and later writes must not commit alone */
    bool txn_lost;
    char err[256];
    struct pset_entry **pset;
    size_t pset_buckets, pset_count;
    int64_t next_id, id_block_end; /* message ids: reserved in blocks, committed before use */
};

static uint64_t pset_hash(int64_t dev, const char *name, size_t len)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)dev;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 1099511628211ULL;
    return h;
}

static struct pset_entry **pset_find(struct store *s, int64_t dev, const char *name, size_t len)
{
    struct pset_entry **pp = &s->pset[pset_hash(dev, name, len) & (s->pset_buckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->dev == dev && (*pp)->len == len && memcmp((*pp)->name, name, len) == 0) break;
    return pp;
}

static void pset_clear(struct store *s)
{
    for (size_t i = 0; i < s->pset_buckets; i++) {
        while (s->pset[i]) {
            struct pset_entry *n = s->pset[i]->next;
            xfree(s->pset[i]);
            s->pset[i] = n;
        }
    }
    s->pset_count = 0;
}

static void pset_set(struct store *s, int64_t dev, const char *name, size_t len, int64_t length)
{
    struct pset_entry **pp = pset_find(s, dev, name, len);
    if (*pp) {
        (*pp)->length = length;
        return;
    }
    struct pset_entry *e = xmalloc(sizeof *e + len);
    e->next = NULL;
    e->dev = dev;
    e->length = length;
    e->len = len;
    memcpy(e->name, name, len);
    *pp = e;
    if (++s->pset_count > s->pset_buckets) {
        size_t nb = s->pset_buckets * 2;
        struct pset_entry **nt = xcalloc(nb, sizeof *nt);
        for (size_t i = 0; i < s->pset_buckets; i++) {
            for (struct pset_entry *x = s->pset[i], *next; x; x = next) {
                next = x->next;
                struct pset_entry **slot = &nt[pset_hash(x->dev, x->name, x->len) & (nb - 1)];
                x->next = *slot;
                *slot = x;
            }
        }
        xfree(s->pset);
        s->pset = nt;
        s->pset_buckets = nb;
    }
}

static void pset_remove(struct store *s, int64_t dev, const char *name, size_t len)
{
    struct pset_entry **pp = pset_find(s, dev, name, len);
    if (*pp) {
        struct pset_entry *e = *pp;
        *pp = e->next;
        xfree(e);
        s->pset_count--;
    }
}

static int pset_load(struct store *s);
static int exec_rows(struct store *s, enum stmt_id id, sqlite3_stmt *st, store_row_fn fn,
                     void *ctx);
static int take_int(void *ctx, const struct value *cols, size_t n);

static int fail(struct store *s, const char *what)
{
    if (s->in_txn && sqlite3_get_autocommit(s->db)) s->txn_lost = true;
    snprintf(s->err, sizeof s->err, "%s: %s", what, sqlite3_errmsg(s->db));
    LOG_RATELIMITED(LOG_ERROR, "store", "msg=\"storage error\" op=%s error=\"%s\"", what,
                    sqlite3_errmsg(s->db));
    return -1;
}

const char *store_errmsg(const struct store *s)
{
    return s->err;
}

/* The store holds every user's key (their browser session and SIP password): it is the
 * owner's only, 0600, whatever the umask; one made readable by others before is closed up (SQLite
 * gives its -wal and -shm files the database file's mode). */
static int store_file_private(const char *path, char *err, size_t errlen)
{
    if (strcmp(path, ":memory:") == 0 || !*path) return 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open store %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
        if (fchmod(fd, st.st_mode & 0700) != 0) {
            snprintf(err, errlen, "cannot make store %s private (mode %03o): %s", path,
                     (unsigned)(st.st_mode & 0777), strerror(errno));
            close(fd);
            return -1;
        }
        LOG(LOG_WARN, "store",
            "msg=\"store was readable by others; now 0600\" path=\"%s\" was=%03o", path,
            (unsigned)(st.st_mode & 0777));
        static const char *const sides[] = {"-wal", "-shm"};
        for (size_t i = 0; i < sizeof sides / sizeof *sides; i++) {
            char side[4200];
            if ((size_t)snprintf(side, sizeof side, "%s%s", path, sides[i]) < sizeof side)
                chmod(side, st.st_mode & 0700); /* absent: nothing to do */
        }
    }
    close(fd);
    return 0;
}

struct store *store_open(const char *path, bool sync_full, char *err, size_t errlen)
{
    if (store_file_private(path, err, errlen) != 0) return NULL;
    struct store *s = xcalloc(1, sizeof *s);
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open store %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        sqlite3_close(s->db);
        xfree(s);
        return NULL;
    }
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=OFF;"
             "PRAGMA busy_timeout=100; PRAGMA wal_autocheckpoint=4000;",
             sync_full ? "FULL" : "NORMAL");
    char *msg = NULL;
    if (sqlite3_exec(s->db, pragmas, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "cannot initialise store %s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close(s->db);
        xfree(s);
        return NULL;
    }
    char merr[300];
    if (migrate(s->db, merr, sizeof merr) != 0) {
        snprintf(err, errlen, "cannot initialise store %s: %s", path, merr);
        sqlite3_close(s->db);
        xfree(s);
        return NULL;
    }
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i], NULL) !=
            SQLITE_OK) {
            snprintf(err, errlen, "cannot prepare statement %d: %s", i, sqlite3_errmsg(s->db));
            store_close(s);
            return NULL;
        }
    }
    int64_t max_id = 0;
    if (exec_rows(s, S_MAX_ID, s->stmt[S_MAX_ID], take_int, &max_id) < 0) {
        snprintf(err, errlen, "cannot read message ids: %s", s->err);
        store_close(s);
        return NULL;
    }
    s->next_id = max_id + 1;
    s->id_block_end = max_id;
    s->pset_buckets = 64;
    s->pset = xcalloc(s->pset_buckets, sizeof *s->pset);
    if (pset_load(s) != 0) {
        snprintf(err, errlen, "cannot read pipes_settings: %s", s->err);
        store_close(s);
        return NULL;
    }
    return s;
}

void store_close(struct store *s)
{
    if (!s) return;
    if (s->in_txn) store_commit(s);
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    if (s->pset) pset_clear(s);
    xfree(s->pset);
    xfree(s);
}

bool store_dirty(const struct store *s)
{
    return s->in_txn;
}

static int run_simple(struct store *s, enum stmt_id id)
{
    sqlite3_stmt *st = s->stmt[id];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : fail(s, sql[id]);
}

static int begin_write(struct store *s)
{
    if (s->txn_lost) return -1; /* s->err still says why */
    if (s->in_txn) return 0;
    if (run_simple(s, S_BEGIN) != 0) return -1;
    s->in_txn = true;
    return 0;
}

void store_set_busy_timeout(struct store *s, int ms)
{
    sqlite3_busy_timeout(s->db, ms);
}

int store_commit(struct store *s)
{
    if (!s->in_txn) return 0;
    s->in_txn = false;
    if (s->txn_lost) {
        s->txn_lost = false;
        pset_load(s);
        return -1;
    }
    if (run_simple(s, S_COMMIT) == 0) return 0;
    /* keep the COMMIT's error in s->err; SQLite may have rolled back already (disk full) */
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    pset_load(s); /* the rolled-back settings must not stay cached */
    return -1;
}

/* Binds ?1.. from a compact spec: 'i' int64, 's' (ptr, len) string. */
static sqlite3_stmt *bind(struct store *s, enum stmt_id id, const char *spec, ...)
{
    sqlite3_stmt *st = s->stmt[id];
    va_list ap;
    va_start(ap, spec);
    for (int i = 1; *spec; spec++, i++) {
        if (*spec == 'i') {
            sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
        } else if (*spec == 'n') { /* text, or SQL NULL when the pointer is NULL */
            const char *p = va_arg(ap, const char *);
            size_t n = va_arg(ap, size_t);
            if (p)
                sqlite3_bind_text64(st, i, p, n, SQLITE_STATIC, SQLITE_UTF8);
            else
                sqlite3_bind_null(st, i);
        } else {
            const char *p = va_arg(ap, const char *);
            size_t n = va_arg(ap, size_t);
            sqlite3_bind_text64(st, i, p ? p : "", n, SQLITE_STATIC, SQLITE_UTF8);
        }
    }
    va_end(ap);
    return st;
}

/* Runs a write statement; returns rows changed or -1. */
static int exec_write(struct store *s, enum stmt_id id, sqlite3_stmt *st)
{
    if (begin_write(s) != 0) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return -1;
    }
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) return fail(s, sql[id]);
    return sqlite3_changes(s->db);
}

/* Runs a query, calling fn per row; returns rows seen or -1. */
static int exec_rows(struct store *s, enum stmt_id id, sqlite3_stmt *st, store_row_fn fn, void *ctx)
{
    struct value cols[12];
    int rows = 0, rc;
    int ncol = sqlite3_column_count(st);
    if (ncol > 12) ncol = 12;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; c < ncol; c++) {
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER: cols[c] = value_int(sqlite3_column_int64(st, c)); break;
            case SQLITE_NULL: cols[c] = value_null(); break;
            default: {
                const char *t = (const char *)sqlite3_column_text(st, c);
                cols[c] = value_str(t ? t : "", (size_t)sqlite3_column_bytes(st, c));
            }
            }
        }
        rows++;
        if (fn && fn(ctx, cols, (size_t)ncol) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) return fail(s, sql[id]);
    return rows;
}

#define STR(p, n) (p), (size_t)(n)

int store_auth_put(struct store *s, int64_t dev, int64_t user, const char *hash, size_t len)
{
    return exec_write(s, S_AUTH_PUT, bind(s, S_AUTH_PUT, "iis", dev, user, STR(hash, len)));
}
int store_auth_get(struct store *s, int64_t dev, int64_t user, store_row_fn fn, void *ctx)
{
    return exec_rows(s, S_AUTH_GET, bind(s, S_AUTH_GET, "ii", dev, user), fn, ctx);
}
int store_auth_delete(struct store *s, int64_t dev, int64_t user)
{
    return exec_write(s, S_AUTH_DEL, bind(s, S_AUTH_DEL, "ii", dev, user));
}
int store_auth_list(struct store *s, int64_t dev, int64_t limit, store_row_fn fn, void *ctx)
{
    return exec_rows(s, S_AUTH_LIST, bind(s, S_AUTH_LIST, "ii", dev, limit), fn, ctx);
}

int store_data_put(struct store *s, int64_t dev, int64_t user, const char *data, size_t len)
{
    return exec_write(s, S_DATA_PUT, bind(s, S_DATA_PUT, "iis", dev, user, STR(data, len)));
}
int store_data_get(struct store *s, int64_t dev, int64_t user, store_row_fn fn, void *ctx)
{
    return exec_rows(s, S_DATA_GET, bind(s, S_DATA_GET, "ii", dev, user), fn, ctx);
}
int store_data_delete(struct store *s, int64_t dev, int64_t user)
{
    return exec_write(s, S_DATA_DEL, bind(s, S_DATA_DEL, "ii", dev, user));
}
int store_data_list(struct store *s, int64_t dev, int64_t limit, store_row_fn fn, void *ctx)
{
    return exec_rows(s, S_DATA_LIST, bind(s, S_DATA_LIST, "ii", dev, limit), fn, ctx);
}

int store_token_put(struct store *s, int64_t dev, const char *token, size_t len, int64_t now)
{
    return exec_write(s, S_TOKEN_PUT, bind(s, S_TOKEN_PUT, "isi", dev, STR(token, len), now));
}
int store_token_get(struct store *s, int64_t dev, const char *token, size_t len, store_row_fn fn,
                    void *ctx)
{
    return exec_rows(s, S_TOKEN_GET, bind(s, S_TOKEN_GET, "is", dev, STR(token, len)), fn, ctx);
}
int store_token_delete(struct store *s, int64_t dev, const char *token, size_t len)
{
    return exec_write(s, S_TOKEN_DEL, bind(s, S_TOKEN_DEL, "is", dev, STR(token, len)));
}
int store_token_list(struct store *s, int64_t dev, int64_t limit, store_row_fn fn, void *ctx)
{
    return exec_rows(s, S_TOKEN_LIST, bind(s, S_TOKEN_LIST, "ii", dev, limit), fn, ctx);
}

int store_time_put(struct store *s, int64_t dev, int64_t user, int64_t time)
{
    return exec_write(s, S_TIME_PUT, bind(s, S_TIME_PUT, "iii", dev, user, time));
}
int store_time_get(struct store *s, int64_t dev, int64_t user, store_row_fn fn, void *ctx)
{
    return exec_rows(s, S_TIME_GET, bind(s, S_TIME_GET, "ii", dev, user), fn, ctx);
}
int store_time_list(struct store *s, int64_t dev, int64_t limit, store_row_fn fn, void *ctx)
{
    return exec_rows(s, S_TIME_LIST, bind(s, S_TIME_LIST, "ii", dev, limit), fn, ctx);
}

int64_t store_queue_add(struct store *s, int64_t dev, int64_t user, int64_t time, const char *event,
                        size_t event_len, const char *msg, size_t msg_len, const char *call_room,
                        size_t call_room_len)
{
    int rc = exec_write(s, S_QUEUE_ADD,
                        bind(s, S_QUEUE_ADD, "iiissn", dev, user, time, STR(event, event_len),
                             STR(msg, msg_len), STR(call_room, call_room_len)));
    return rc < 0 ? -1 : sqlite3_last_insert_rowid(s->db);
}
int store_queue_list(struct store *s, int64_t dev, int64_t user, int64_t limit, store_row_fn fn,
                     void *ctx)
{
    return exec_rows(s, S_QUEUE_LIST, bind(s, S_QUEUE_LIST, "iii", dev, user, limit), fn, ctx);
}
int store_queue_list_all(struct store *s, int64_t dev, int64_t limit, store_row_fn fn, void *ctx)
{
    return exec_rows(s, S_QUEUE_LIST_ALL, bind(s, S_QUEUE_LIST_ALL, "ii", dev, limit), fn, ctx);
}
int store_queue_delete_user(struct store *s, int64_t dev, int64_t user)
{
    return exec_write(s, S_QUEUE_DEL_USER, bind(s, S_QUEUE_DEL_USER, "ii", dev, user));
}
int store_queue_delete_id(struct store *s, int64_t dev, int64_t id)
{
    return exec_write(s, S_QUEUE_DEL_ID, bind(s, S_QUEUE_DEL_ID, "ii", dev, id));
}

int store_queue_ack(struct store *s, int64_t dev, int64_t user, int64_t id)
{
    return exec_write(s, S_QUEUE_DEL_USER_ID, bind(s, S_QUEUE_DEL_USER_ID, "iii", dev, user, id));
}

static int take_int(void *ctx, const struct value *cols, size_t n)
{
    *(int64_t *)ctx = n && cols[0].kind == VALUE_INT ? cols[0].i : 0;
    return 1;
}

int64_t store_next_message_id(struct store *s)
{
    if (s->next_id > s->id_block_end) {
        /* reserve a block; the commit that makes it durable precedes any reply or frame that
         * carries one of its ids, so ids never repeat across a crash */
        int64_t end = s->next_id + 9999;
        if (exec_write(s, S_SET_BLOCK, bind(s, S_SET_BLOCK, "i", end)) < 0) return -1;
        s->id_block_end = end;
    }
    return s->next_id++;
}

int64_t store_history_add(struct store *s, int64_t dev, int64_t id, const char *pipe,
                          size_t pipe_len, int64_t time, const char *event, size_t event_len,
                          const char *msg, size_t msg_len, int64_t user_id, int64_t keep)
{
    int rc = exec_write(s, S_HIST_ADD,
                        bind(s, S_HIST_ADD, "isissii", dev, STR(pipe, pipe_len), time,
                             STR(event, event_len), STR(msg, msg_len), user_id, id));
    if (rc < 0) return -1;
    if (keep > 0 &&
        exec_write(s, S_HIST_TRIM, bind(s, S_HIST_TRIM, "isi", dev, STR(pipe, pipe_len), keep)) < 0)
        return -1;
    return id;
}
int store_history_since(struct store *s, int64_t dev, const char *pipe, size_t pipe_len,
                        int64_t after_id, int64_t limit, store_row_fn fn, void *ctx)
{
    return exec_rows(s, S_HIST_SINCE,
                     bind(s, S_HIST_SINCE, "isii", dev, STR(pipe, pipe_len), after_id, limit), fn,
                     ctx);
}
int store_history_list(struct store *s, int64_t dev, const char *pipe, size_t pipe_len,
                       int64_t limit, store_row_fn fn, void *ctx)
{
    return exec_rows(s, S_HIST_LIST, bind(s, S_HIST_LIST, "isi", dev, STR(pipe, pipe_len), limit),
                     fn, ctx);
}
int store_history_delete_pipe(struct store *s, int64_t dev, const char *pipe, size_t pipe_len)
{
    return exec_write(s, S_HIST_DEL_PIPE, bind(s, S_HIST_DEL_PIPE, "is", dev, STR(pipe, pipe_len)));
}
int store_history_delete_id(struct store *s, int64_t dev, int64_t id)
{
    return exec_write(s, S_HIST_DEL_ID, bind(s, S_HIST_DEL_ID, "ii", dev, id));
}

int store_pipe_setting_put(struct store *s, int64_t dev, const char *pipe, size_t pipe_len,
                           int64_t length)
{
    int n = exec_write(s, S_PSET_PUT, bind(s, S_PSET_PUT, "isi", dev, STR(pipe, pipe_len), length));
    if (n >= 0) pset_set(s, dev, pipe, pipe_len, length);
    return n;
}
int store_pipe_setting_get(struct store *s, int64_t dev, const char *pipe, size_t pipe_len,
                           store_row_fn fn, void *ctx)
{
    return exec_rows(s, S_PSET_GET, bind(s, S_PSET_GET, "is", dev, STR(pipe, pipe_len)), fn, ctx);
}

int64_t store_pipe_history_length(struct store *s, int64_t dev, const char *pipe, size_t pipe_len)
{
    struct pset_entry **pp = pset_find(s, dev, pipe, pipe_len);
    return *pp ? (*pp)->length : 0;
}
int store_pipe_setting_delete(struct store *s, int64_t dev, const char *pipe, size_t pipe_len)
{
    int n = exec_write(s, S_PSET_DEL, bind(s, S_PSET_DEL, "is", dev, STR(pipe, pipe_len)));
    if (n >= 0) pset_remove(s, dev, pipe, pipe_len);
    return n;
}

static int pset_row(void *ctx, const struct value *cols, size_t n)
{
    struct store *s = ctx;
    if (n >= 3 && cols[1].kind == VALUE_STR && cols[2].kind == VALUE_INT)
        pset_set(s, cols[0].i, cols[1].s, cols[1].len, cols[2].i);
    return 0;
}

static int pset_load(struct store *s)
{
    pset_clear(s);
    return exec_rows(s, S_PSET_ALL, s->stmt[S_PSET_ALL], pset_row, s) < 0 ? -1 : 0;
}
int store_pipe_setting_list(struct store *s, int64_t dev, int64_t limit, store_row_fn fn, void *ctx)
{
    return exec_rows(s, S_PSET_LIST, bind(s, S_PSET_LIST, "ii", dev, limit), fn, ctx);
}

int store_purge(struct store *s, int64_t now, int64_t queue_ttl, int64_t trust_ttl)
{
    int a = exec_write(s, S_PURGE_QUEUE, bind(s, S_PURGE_QUEUE, "i", now - queue_ttl));
    int b = exec_write(s, S_PURGE_TRUST, bind(s, S_PURGE_TRUST, "i", now - trust_ttl));
    if (a < 0 || b < 0) return -1;
    return a + b;
}

int store_conf_put(struct store *s, int64_t dev, const struct store_invitation *inv)
{
    return exec_write(s, S_CONF_PUT,
                      bind(s, S_CONF_PUT, "isiissssi", dev, STR(inv->name, strlen(inv->name)),
                           inv->user_id, inv->caller_id, STR(inv->message, inv->message_len),
                           STR(inv->profile, strlen(inv->profile)),
                           STR(inv->stream, strlen(inv->stream)), STR(inv->node, strlen(inv->node)),
                           inv->time));
}
int store_conf_get(struct store *s, int64_t dev, const char *name, size_t len, store_row_fn fn,
                   void *ctx)
{
    return exec_rows(s, S_CONF_GET, bind(s, S_CONF_GET, "is", dev, STR(name, len)), fn, ctx);
}
int store_conf_list(struct store *s, int64_t dev, int64_t limit, store_row_fn fn, void *ctx)
{
    return exec_rows(s, S_CONF_LIST, bind(s, S_CONF_LIST, "ii", dev, limit), fn, ctx);
}
int store_conf_delete(struct store *s, int64_t dev, const char *name, size_t len, int64_t user)
{
    return exec_write(s, S_CONF_DEL_USER,
                      bind(s, S_CONF_DEL_USER, "isi", dev, STR(name, len), user));
}
int store_conf_delete_room(struct store *s, int64_t dev, const char *name, size_t len)
{
    return exec_write(s, S_CONF_DEL_ROOM, bind(s, S_CONF_DEL_ROOM, "is", dev, STR(name, len)));
}
int store_conf_node(struct store *s, int64_t dev, const char *name, size_t len, store_row_fn fn,
                    void *ctx)
{
    return exec_rows(s, S_CONF_NODE, bind(s, S_CONF_NODE, "is", dev, STR(name, len)), fn, ctx);
}

int store_tenant_put(struct store *s, const struct store_tenant *t)
{
    return exec_write(s, S_TENANT_PUT,
                      bind(s, S_TENANT_PUT, "ississiii", t->dev_id,
                           STR(t->password, strlen(t->password)),
                           STR(t->old_password, strlen(t->old_password)), t->old_password_until,
                           STR(t->jwt_secret, t->jwt_len), STR(t->old_jwt_secret, t->old_jwt_len),
                           t->old_jwt_until, t->created, t->updated));
}
int store_tenant_delete(struct store *s, int64_t dev)
{
    return exec_write(s, S_TENANT_DEL, bind(s, S_TENANT_DEL, "i", dev));
}
int store_tenant_list(struct store *s, store_row_fn fn, void *ctx)
{
    return exec_rows(s, S_TENANT_LIST, s->stmt[S_TENANT_LIST], fn, ctx);
}

/* The queued invitations to a room: rows tagged with it (users_messages_call). */
int store_queue_delete_call(struct store *s, int64_t dev, const char *room, size_t len,
                            int64_t user)
{
    if (user > 0)
        return exec_write(s, S_QUEUE_DEL_CALL_USER,
                          bind(s, S_QUEUE_DEL_CALL_USER, "isi", dev, STR(room, len), user));
    return exec_write(s, S_QUEUE_DEL_CALL, bind(s, S_QUEUE_DEL_CALL, "is", dev, STR(room, len)));
}
