/* Unit tests for src/state/sqlite.c, on a temporary SQLite file. */
#include "test.h"

#include "state/store.h"

#include <sqlite3.h>

#include <stdio.h>
#include <unistd.h>

static struct store *open_tmp(char *path, size_t n)
{
    snprintf(path, n, "/tmp/ccomet-unit-store-%d.db", (int)getpid());
    unlink(path);
    char err[256];
    struct store *s = store_open(path, false, err, sizeof err);
    if (!s) printf("    store_open: %s\n", err);
    return s;
}

static void remove_db(const char *path)
{
    char p[128];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

struct rows {
    int n;
    char last[256];
};

static int count_rows(void *ctx, const struct value *cols, size_t n)
{
    struct rows *r = ctx;
    r->n++;
    const struct value *v = &cols[n - 1];
    if (v->kind == VALUE_STR)
        snprintf(r->last, sizeof r->last, "%.*s", (int)v->len, v->s);
    else
        snprintf(r->last, sizeof r->last, "%lld", (long long)v->i);
    return 0;
}

TEST(store_auth_tenants_and_commit)
{
    char path[128];
    struct store *s = open_tmp(path, sizeof path);
    CHECK(s != NULL);
    if (!s) return;
    CHECK_INT(store_auth_put(s, 0, 5, "abc", 3), 1);
    CHECK_INT(store_auth_put(s, 1, 5, "xyz", 3), 1);
    CHECK(store_dirty(s));
    CHECK_INT(store_commit(s), 0);
    CHECK(!store_dirty(s));
    struct rows r = {0, ""};
    CHECK_INT(store_auth_get(s, 0, 5, count_rows, &r), 1);
    CHECK_STR(r.last, "abc");
    CHECK_INT(store_auth_put(s, 0, 5, "new", 3), 1); /* replaces */
    r.n = 0;
    store_auth_get(s, 0, 5, count_rows, &r);
    CHECK_STR(r.last, "new");
    CHECK_INT(store_auth_delete(s, 0, 5), 1);
    CHECK_INT(store_auth_delete(s, 0, 5), 0);
    r.n = 0;
    CHECK_INT(store_auth_get(s, 1, 5, count_rows, &r), 1); /* other tenant untouched */
    store_close(s);
    remove_db(path);
}

TEST(store_history_trims_to_length)
{
    char path[128];
    struct store *s = open_tmp(path, sizeof path);
    if (!s) return;
    for (int i = 0; i < 10; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof msg, "m%d", i);
        CHECK(store_history_add(s, 0, store_next_message_id(s), "web_p", 5, 100 + i, "ev", 2, msg,
                                (size_t)n, 0, 3) > 0);
    }
    struct rows r = {0, ""};
    CHECK_INT(store_history_list(s, 0, "web_p", 5, 100, count_rows, &r), 3);
    CHECK_STR(r.last, "0"); /* user_id column last */
    CHECK_INT(store_history_delete_pipe(s, 0, "web_p", 5), 3);
    /* trust_: keep = 0 keeps everything, purge drops by age */
    for (int i = 0; i < 5; i++)
        store_history_add(s, 0, store_next_message_id(s), "trust_x", 7, 100 + i, "", 0, "m", 1, 0,
                          0);
    r.n = 0;
    CHECK_INT(store_history_list(s, 0, "trust_x", 7, 100, count_rows, &r), 5);
    CHECK_INT(store_purge(s, 1000, 100000, 898), 2); /* rows with time < 102: 100 and 101 */
    store_close(s);
    remove_db(path);
}

TEST(store_queue_and_settings)
{
    char path[128];
    struct store *s = open_tmp(path, sizeof path);
    if (!s) return;
    int64_t a = store_queue_add(s, 0, 7, 50, "ev", 2, "hello", 5, NULL, 0);
    int64_t b = store_queue_add(s, 0, 7, 60, "ev", 2, "world", 5, NULL, 0);
    CHECK(a > 0 && b > a);
    struct rows r = {0, ""};
    CHECK_INT(store_queue_list(s, 0, 7, 10, count_rows, &r), 2);
    CHECK_STR(r.last, "world");
    CHECK_INT(store_queue_delete_id(s, 0, a), 1);
    CHECK_INT(store_queue_delete_user(s, 0, 7), 1);
    CHECK_INT(store_pipe_history_length(s, 0, "web_q", 5), 0);
    CHECK_INT(store_pipe_setting_put(s, 0, "web_q", 5, 25), 1);
    CHECK_INT(store_pipe_history_length(s, 0, "web_q", 5), 25);
    CHECK_INT(store_pipe_setting_delete(s, 0, "web_q", 5), 1);
    store_close(s);
    remove_db(path);
}

TEST(store_queue_delete_call_by_room_tag)
{
    char path[128];
    struct store *s = open_tmp(path, sizeof path);
    if (!s) return;
    const char *inv = "{\"sys\":{\"conference_name\":\"r_1\"}}";
    CHECK(store_queue_add(s, 0, 7, 50, "sys_sipCall", 11, inv, strlen(inv), "r_1", 3) > 0);
    CHECK(store_queue_add(s, 0, 8, 50, "sys_sipCall", 11, inv, strlen(inv), "r_1", 3) > 0);
    CHECK(store_queue_add(s, 0, 8, 50, "sys_sipCall", 11, inv, strlen(inv), "r21", 3) > 0);
    CHECK(store_queue_add(s, 1, 8, 50, "sys_sipCall", 11, inv, strlen(inv), "r_1", 3) > 0);
    /* a message that only mentions the room is not an invitation to it */
    CHECK(store_queue_add(s, 0, 8, 50, "chat", 4, inv, strlen(inv), NULL, 0) > 0);
    CHECK_INT(store_queue_delete_call(s, 0, "r_1", 3, 8), 1); /* user 8's, tenant 0 */
    CHECK_INT(store_queue_delete_call(s, 0, "r_1", 3, 0), 1); /* the rest of the room: user 7 */
    CHECK_INT(store_queue_delete_call(s, 0, "r_1", 3, 0), 0);
    struct rows r = {0, ""};
    CHECK_INT(store_queue_list(s, 0, 8, 10, count_rows, &r), 2); /* r21 and the chat stay */
    r.n = 0;
    CHECK_INT(store_queue_list(s, 1, 8, 10, count_rows, &r), 1); /* tenant 1's stays */
    store_close(s);
    remove_db(path);
}

/* A store written by a ccomet of schema version 1 (no call_room): its queued invitations get
 * their room from their JSON when it is opened. */
TEST(store_migrates_version_1_queue)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/ccomet-unit-store-v1-%d.db", (int)getpid());
    remove_db(path);
    sqlite3 *db = NULL;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    const char *v1 =
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;"
        "INSERT INTO meta VALUES('schema_version','1');"
        "CREATE TABLE users_messages(id INTEGER PRIMARY KEY AUTOINCREMENT, dev_id INTEGER NOT NULL,"
        " user_id INTEGER NOT NULL, time INTEGER NOT NULL, event TEXT NOT NULL,"
        " message TEXT NOT NULL);"
        "INSERT INTO users_messages(dev_id,user_id,time,event,message) VALUES"
        " (0,7,50,'sys_sipCall','{\"message\":\"\",\"sys\":{\"conference_name\":\"old\"}}'),"
        " (0,7,50,'sys_sipCall','not json'),"
        " (0,7,50,'chat','{\"sys\":{\"conference_name\":\"old\"}}');";
    CHECK_INT(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char err[256];
    struct store *s = store_open(path, false, err, sizeof err);
    CHECK(s != NULL);
    if (!s) return;
    CHECK_INT(store_queue_delete_call(s, 0, "old", 3, 0), 1);
    struct rows r = {0, ""};
    CHECK_INT(store_queue_list(s, 0, 7, 10, count_rows, &r), 2);
    store_close(s);
    /* a store from a newer ccomet is refused, not misread */
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_INT(
        sqlite3_exec(db, "UPDATE meta SET value='99' WHERE key='schema_version'", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    s = store_open(path, false, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, "schema version 99") != NULL);
    if (s) store_close(s);
    remove_db(path);
}
