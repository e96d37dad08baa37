/* Unit tests for src/media/recorder.c's pure parts: the paths the Event Socket may give (they must
 * never leave the recordings directory) and a file's timeline across pauses. The recordings
 * themselves run on the real node: tests/integration/media_recording.test.mjs. */
#include "test.h"

#include "media/recorder.h"

#define DIR "/var/rec"

static const char *resolve(const char *path, char *file, size_t n)
{
    const char *why = NULL;
    return recorder_resolve_path(DIR, path, file, n, &why) ? NULL : why;
}

TEST(recorder_path_relative_and_inside)
{
    char f[2100];
    CHECK(resolve("a.webm", f, sizeof f) == NULL);
    CHECK_STR(f, DIR "/a.webm");
    CHECK(resolve("room 7/2026-12-07.WEBM", f, sizeof f) == NULL);
    CHECK_STR(f, DIR "/room 7/2026-12-07.WEBM");
    CHECK(resolve(DIR "/sub/b.webm", f, sizeof f) == NULL); /* absolute, inside */
    CHECK_STR(f, DIR "/sub/b.webm");
    CHECK(resolve("..a.webm", f, sizeof f) == NULL); /* a name, not a component ".." */
    CHECK(resolve(".hidden.webm", f, sizeof f) == NULL);
}

TEST(recorder_path_escapes_refused)
{
    char f[2100];
    const char *why;
    CHECK((why = resolve("../x.webm", f, sizeof f)) && strstr(why, ".."));
    CHECK((why = resolve("a/../../x.webm", f, sizeof f)) && strstr(why, ".."));
    CHECK((why = resolve("a/./x.webm", f, sizeof f)) && strstr(why, ".."));
    CHECK((why = resolve("/etc/x.webm", f, sizeof f)) && strstr(why, "outside"));
    CHECK((why = resolve("/var/recordings/x.webm", f, sizeof f)) && strstr(why, "outside"));
    CHECK((why = resolve("/var/rec", f, sizeof f)) && strstr(why, "outside"));
    CHECK((why = resolve(DIR "/../etc/x.webm", f, sizeof f)) && strstr(why, ".."));
    CHECK((why = resolve("a//x.webm", f, sizeof f)) && strstr(why, "empty"));
    CHECK((why = resolve("dir/", f, sizeof f)) && strstr(why, "empty"));
    CHECK((why = resolve("", f, sizeof f)) && strstr(why, "no path"));
    CHECK((why = resolve("a\nb.webm", f, sizeof f)) && strstr(why, "control"));
    CHECK((why = resolve("a\x7f.webm", f, sizeof f)) && strstr(why, "control"));
}

TEST(recorder_path_types_and_bounds)
{
    char f[2100];
    const char *why;
    CHECK((why = resolve("a.txt", f, sizeof f)) && strstr(why, "unsupported"));
    CHECK((why = resolve(".webm", f, sizeof f)) && strstr(why, "unsupported"));
    CHECK((why = resolve("a.webm.sh", f, sizeof f)) && strstr(why, "unsupported"));
    CHECK((why = resolve("a.mp4", f, sizeof f)) && strstr(why, "MP4"));
    char longname[300];
    memset(longname, 'a', 256);
    strcpy(longname + 256, ".webm");
    CHECK((why = resolve(longname, f, sizeof f)) && strstr(why, "component too long"));
    char longpath[1100];
    for (int i = 0; i < 1020; i += 2)
        memcpy(longpath + i, "a/", 2);
    strcpy(longpath + 1020, "x.webm");
    CHECK((why = resolve(longpath, f, sizeof f)) && strstr(why, "too long"));
    char small[16];
    CHECK((why = resolve("abcdefgh.webm", small, sizeof small)) && strstr(why, "too long"));
}

#define MS(x) ((GstClockTime)(x)*GST_MSECOND)

static GstClockTime at(const struct rec_timeline *t, GstClockTime rt)
{
    GstClockTime out;
    return rec_timeline_map(t, rt, &out) ? out : GST_CLOCK_TIME_NONE;
}

TEST(recorder_timeline_origin_and_pause_cut_out)
{
    struct rec_timeline t;
    memset(&t, 0, sizeof t);
    CHECK(at(&t, MS(5000)) == GST_CLOCK_TIME_NONE); /* not started */
    rec_timeline_start(&t, MS(10000));
    CHECK(at(&t, MS(9999)) == GST_CLOCK_TIME_NONE);
    CHECK_INT(at(&t, MS(10000)), 0);
    CHECK_INT(at(&t, MS(12000)), MS(2000));
    rec_timeline_pause(&t, MS(13000));
    CHECK_INT(at(&t, MS(12999)), MS(2999)); /* late, from before the pause: kept */
    CHECK(at(&t, MS(13000)) == GST_CLOCK_TIME_NONE);
    CHECK_INT(rec_timeline_length(&t, MS(15000)), MS(3000));
    rec_timeline_resume(&t, MS(16000)); /* 3 s cut */
    CHECK(at(&t, MS(15999)) == GST_CLOCK_TIME_NONE);
    CHECK_INT(at(&t, MS(16000)), MS(3000)); /* the file goes on where it paused */
    CHECK_INT(at(&t, MS(17000)), MS(4000));
    CHECK_INT(at(&t, MS(12500)), MS(2500)); /* a straggler from before: its own offset */
    CHECK_INT(rec_timeline_length(&t, MS(18000)), MS(5000));
    /* a second pause */
    rec_timeline_pause(&t, MS(20000));
    rec_timeline_pause(&t, MS(21000)); /* twice: the first counts */
    rec_timeline_resume(&t, MS(22000));
    rec_timeline_resume(&t, MS(23000)); /* not paused: nothing */
    CHECK_INT(at(&t, MS(22000)), MS(7000));
    CHECK_INT(at(&t, MS(19000)), MS(6000));
    CHECK_INT(rec_timeline_length(&t, MS(24000)), MS(9000));
}

TEST(recorder_timeline_pause_before_start)
{
    struct rec_timeline t;
    memset(&t, 0, sizeof t);
    rec_timeline_pause(&t, MS(1000));
    rec_timeline_resume(&t, MS(2000)); /* nothing recorded yet: nothing to cut */
    CHECK(!t.paused);
    rec_timeline_start(&t, MS(3000));
    CHECK_INT(at(&t, MS(4000)), MS(1000));
    CHECK_INT(rec_timeline_length(&t, MS(3000)), 0);
    CHECK_INT(rec_timeline_length(&t, MS(2000)), 0); /* a clock before the origin */
}
