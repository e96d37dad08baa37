/* Unit tests for src/media/conference.c, with a stub media engine. */
#include "test.h"

#include "media/conference.h"

static struct conf_profile video_profile = {"video", true, 640, 480, 30, 1000, 48, 3, "grid"};

struct seen {
    char actions[1024];
    int answers, failures;
    int last_status;
};

static void on_event(void *ctx, const struct conf_event *ev)
{
    struct seen *s = ctx;
    size_t l = strlen(s->actions);
    snprintf(s->actions + l, sizeof s->actions - l, "%s%s", l ? "," : "",
             conf_event_action(ev->kind));
}

static void on_joined(struct conf_member *m, const char *answer, int status, const char *reason,
                      void *ud)
{
    struct seen *s = ud;
    s->last_status = status;
    if (answer)
        s->answers++;
    else
        s->failures++;
    (void)m;
    (void)reason;
}

static struct conf_member_info who(const char *name)
{
    struct conf_member_info w;
    memset(&w, 0, sizeof w);
    snprintf(w.caller_id_name, sizeof w.caller_id_name, "%s", name);
    return w;
}

TEST(conference_rooms_live_while_they_have_members)
{
    struct conf_limits lim = {2, 10, 0, 0, 0};
    struct conf_registry *r = conf_registry_new(NULL, &lim);
    struct seen s;
    memset(&s, 0, sizeof s);
    conf_listen(r, on_event, &s);
    struct conf_member_info a = who("0000001"), b = who("0000002");
    struct conf_member *ma = conf_join(r, "0*101-d", &video_profile, &a, "v=0", on_joined, &s);
    struct conf_member *mb = conf_join(r, "0*101-d", &video_profile, &b, "v=0", on_joined, &s);
    CHECK(ma && mb);
    CHECK_INT(s.answers, 2);
    struct conf_room *room = conf_room_find(r, "0*101-d");
    CHECK(room != NULL);
    CHECK_INT(conf_room_count(room), 2);
    CHECK(conf_member_info(ma)->id != conf_member_info(mb)->id);
    conf_set_mute(mb, true);
    conf_report_talking(ma, true, 50);
    conf_report_talking(ma, false, 0);
    conf_leave(ma);
    conf_kick(mb); /* no kick handler: leaves at once */
    CHECK(conf_room_find(r, "0*101-d") == NULL);
    CHECK_STR(s.actions, "conference-create,add-member,add-member,mute-member,start-talking,"
                         "floor-change,stop-talking,floor-change,del-member,floor-change,"
                         "kick-member,floor-change,del-member,conference-destroy");
    conf_registry_free(r);
}

TEST(conference_hup_is_announced_as_hup_member)
{
    struct conf_limits lim = {2, 10, 0, 0, 0};
    struct conf_registry *r = conf_registry_new(NULL, &lim);
    struct seen s;
    memset(&s, 0, sizeof s);
    conf_listen(r, on_event, &s);
    struct conf_member_info a = who("0000001");
    struct conf_member *m = conf_join(r, "room", &video_profile, &a, "v=0", on_joined, &s);
    conf_hup(m);
    CHECK_STR(s.actions, "conference-create,add-member,hup-member,del-member,conference-destroy");
    conf_registry_free(r);
}

TEST(conference_limits_answer_sip_statuses)
{
    struct conf_limits lim = {1, 10, 0, 0, 0};
    struct conf_registry *r = conf_registry_new(NULL, &lim);
    struct seen s;
    memset(&s, 0, sizeof s);
    struct conf_member_info w = who("x");
    for (int i = 0; i < 3; i++)
        conf_join(r, "room", &video_profile, &w, "v=0", on_joined, &s);
    CHECK(conf_join(r, "room", &video_profile, &w, "v=0", on_joined, &s) == NULL);
    CHECK_INT(s.last_status, 486); /* max_members 3 */
    CHECK(conf_join(r, "other", &video_profile, &w, "v=0", on_joined, &s) == NULL);
    CHECK_INT(s.last_status, 503); /* max_rooms 1 */
    conf_registry_free(r);
}

static struct conf_member_info who_of(const char *user, const char *tenant)
{
    struct conf_member_info w = who(user);
    snprintf(w.user, sizeof w.user, "%s", user);
    snprintf(w.tenant, sizeof w.tenant, "%s", tenant);
    return w;
}

/* audit H4: one tenant or one user cannot take every room and member slot of the node */
TEST(conference_quotas_per_tenant_and_user)
{
    struct conf_limits lim = {8, 40, 2, 4, 2};
    struct conf_registry *r = conf_registry_new(NULL, &lim);
    struct seen s;
    memset(&s, 0, sizeof s);
    struct conf_member_info a = who_of("0000071", "7"), b = who_of("0000072", "7"),
                            c = who_of("0000073", "7"), x = who_of("0000081", "8");
    /* rooms per tenant: 2 */
    CHECK(conf_join(r, "7*r1-d", &video_profile, &a, "v=0", on_joined, &s) != NULL);
    CHECK(conf_join(r, "7*r2-d", &video_profile, &b, "v=0", on_joined, &s) != NULL);
    CHECK(conf_join(r, "7*r3-d", &video_profile, &c, "v=0", on_joined, &s) == NULL);
    CHECK_INT(s.last_status, 503);
    CHECK(conf_room_find(r, "7*r3-d") == NULL);
    CHECK(conf_join(r, "8*r3-d", &video_profile, &x, "v=0", on_joined, &s) != NULL); /* 8 may */
    /* calls per user: 2 (0000071 is in r1 already) */
    CHECK(conf_join(r, "7*r2-d", &video_profile, &a, "v=0", on_joined, &s) != NULL);
    CHECK(conf_join(r, "7*r1-d", &video_profile, &a, "v=0", on_joined, &s) == NULL);
    CHECK_INT(s.last_status, 486);
    /* members per tenant: 4 (tenant 7 has a, b, a) */
    struct conf_member *m4 = conf_join(r, "7*r1-d", &video_profile, &c, "v=0", on_joined, &s);
    CHECK(m4 != NULL);
    CHECK(conf_join(r, "7*r2-d", &video_profile, &c, "v=0", on_joined, &s) == NULL);
    CHECK_INT(s.last_status, 503);
    struct conf_member_info y = who_of("0000082", "8");
    CHECK(conf_join(r, "8*r3-d", &video_profile, &y, "v=0", on_joined, &s) != NULL); /* 8 may */
    conf_leave(m4); /* a slot goes back */
    CHECK(conf_join(r, "7*r2-d", &video_profile, &c, "v=0", on_joined, &s) != NULL);
    conf_registry_free(r);
}
