/* Unit tests for src/core/ini.c and src/core/config.c. */
#include "test.h"

#include "core/config.h"
#include "core/ini.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct seen {
    char out[1024];
    int n;
};

static int collect(void *ctx, const char *section, const char *key, const char *value, int line)
{
    struct seen *s = ctx;
    size_t l = strlen(s->out);
    snprintf(s->out + l, sizeof s->out - l, "%s.%s=%s@%d;", section, key, value, line);
    s->n++;
    return 0;
}

TEST(ini_comments_quotes_and_lists)
{
    const char *text = "; comment\n# another\n[main]\npassword = se#cret ; inline\n"
                       "node_name=  n1  # inline too\n\n[sip]\nfreeswitch = []Server=a,Port=8021\n"
                       "freeswitch = []Server=b,Port=8021\nquoted = \" a ; b \"\n";
    struct seen s = {{0}, 0};
    char err[128];
    CHECK_INT(ini_parse(text, strlen(text), collect, &s, err, sizeof err), 0);
    CHECK_STR(s.out, "main.password=se#cret@4;main.node_name=n1@5;sip.freeswitch=[]Server=a,Port="
                     "8021@8;sip.freeswitch=[]Server=b,Port=8021@9;sip.quoted= a ; b @10;");
}

TEST(ini_errors_name_the_line)
{
    struct seen s = {{0}, 0};
    char err[128];
    CHECK_INT(ini_parse("[main]\nnovalue\n", 15, collect, &s, err, sizeof err), -1);
    CHECK(strstr(err, "line 2") != NULL);
    CHECK_INT(ini_parse("[main\n", 6, collect, &s, err, sizeof err), -1);
    CHECK(strstr(err, "line 1") != NULL);
}

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/ccomet-unit-%d.ini", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

TEST(config_defaults_and_values)
{
    struct config *c = config_defaults();
    CHECK_INT(c->cometql_port, 3307);
    CHECK_INT(c->ws_port, 8087);
    CHECK_STR(c->password, "password");
    CHECK_INT(c->cometql_max_packet, 64 * 1024 * 1024);
    config_free(c);

    char err[256];
    char *p = write_tmp("[main]\npassword = pw\n[cometql]\nport = 4000\nmax_packet = 2M\n"
                        "thread_num = 4\n[db]\nhost = x\n[sip]\nfreeswitch = []Server=a\n"
                        "freeswitch = []Server=b\n[log]\nlevel = 500\nUserIndex = 600\n");
    c = config_load(p, err, sizeof err);
    CHECK(c != NULL);
    if (c) {
        CHECK_STR(c->password, "pw");
        CHECK_INT(c->cometql_port, 4000);
        CHECK_INT(c->cometql_max_packet, 2 * 1024 * 1024);
        CHECK_INT(c->sip_freeswitch.n, 2);
        CHECK_STR(c->sip_freeswitch.items[1], "Server=b");
        CHECK_INT(c->log_level, LOG_DEBUG);
        config_free(c);
    }
    unlink(p);
}

TEST(config_invalid_value_names_the_key)
{
    char err[256];
    char *p = write_tmp("[cometql]\nport = 70000\n");
    CHECK(config_load(p, err, sizeof err) == NULL);
    CHECK(strstr(err, "[cometql] port") != NULL);
    p = write_tmp("[store]\nsynchronous = sometimes\n");
    CHECK(config_load(p, err, sizeof err) == NULL);
    CHECK(strstr(err, "[store] synchronous") != NULL);
    p = write_tmp("[main]\nsend_user_online_events = maybe\n");
    CHECK(config_load(p, err, sizeof err) == NULL);
    CHECK(strstr(err, "send_user_online_events") != NULL);
    p = write_tmp("[cometql]\nssl_cert = /x.pem\n");
    CHECK(config_load(p, err, sizeof err) == NULL);
    CHECK(strstr(err, "ssl_key") != NULL);
    CHECK(config_load("/nonexistent/comet.ini", err, sizeof err) == NULL);
    unlink(p);
}
