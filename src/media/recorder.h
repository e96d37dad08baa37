/* recorder: recordings of a room's mix to a file on the node, driven by mod_conference's Event
 * Socket commands (`conference <room> recording start|stop|check|pause|resume <path|all>`, and
 * the older `record`, `norecord`, `pause`, `resume`, `chkrecord`) with their reply texts, and
 * announced with its conference::maintenance events (start-recording, stop-recording,
 * pause-recording, resume-recording) on the conference event bus.
 *
 * A `.webm` file takes the room's existing VP8 canvas encode and one Opus encode of the whole
 * room's audio through mixer.c's taps (no second video encode), and muxes them (webmmux) in a
 * pipeline of its own, so that a slow disk or a file's end never touches the room. Clusters are
 * at most 1 s and written unbuffered: after a kill -9 of the node everything but about the last
 * second plays. A pause cuts its span out of the timestamps: one file, one timeline. A room of
 * two that bridges its video (no canvas) mixes its canvas while it records.
 *
 * It owns the recordings (their files, pipelines, limits, the 250 ms check of duration and disk
 * space) and never lets a path from the Event Socket leave the recordings directory. Main
 * context only; the taps' streaming threads only push buffers into a recording's sources. */
#ifndef CC_RECORDER_H
#define CC_RECORDER_H

#include <glib.h>
#include <gst/gst.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media/conference.h"

struct recorder_config {
    const char *dir;        /* the recordings directory (created when missing); copied */
    int max_recordings;     /* recordings on the node at once */
    int64_t max_duration_s; /* a file's length (pauses not counted) at most; 0: no limit */
    int64_t min_free_mb;    /* disk space floor: no start below it, running ones stop; 0: none */
};

struct recorder;

/* Listens on reg (transfer none, must outlive it) for rooms that end. NULL with *why when the
 * directory cannot be created. (transfer full) */
struct recorder *recorder_new(struct conf_registry *reg, const struct recorder_config *c,
                              const char **why);
/* Stops every recording and closes its file (waits for each at most 3 s), then frees. Call it
 * before the registry's rooms are freed. NULL is fine. */
void recorder_free(struct recorder *rc);

/* An Event Socket `conference <room> <cmd> ...` for cmd in recording, record, norecord, pause,
 * resume, chkrecord: argv[0] is the room's name, argv[1] the command. Appends mod_conference's
 * reply text to out. */
bool recorder_is_command(const char *cmd);
void recorder_command(struct recorder *rc, struct conf_room *room, int argc, char **argv,
                      GString *out);

/* Recordings running (or closing) on the node now. */
unsigned recorder_count(const struct recorder *rc);

/* ---- pure parts, for the unit tests ---- */

/* A path from the Event Socket, resolved against the recordings directory dir (absolute, no
 * trailing '/'): relative, or absolute inside dir; no empty, "." or ".." component, no control
 * characters, at most 1024 bytes, ending in ".webm" (any case). On success the file's absolute
 * path is written to file. *why says what is wrong otherwise. */
bool recorder_resolve_path(const char *dir, const char *path, char *file, size_t file_len,
                           const char **why);

/* A file's timeline: the running times of the room's pipeline mapped to the file's timestamps,
 * from the first buffer kept (the origin), with paused spans cut out. */
struct rec_timeline {
    bool started;
    GstClockTime origin;
    bool paused;
    GstClockTime paused_at;
    GstClockTime cut;        /* paused time before the last resume, in total */
    GstClockTime cut_before; /* the same before the last pause window */
    GstClockTime win_from;   /* the last pause window [win_from, win_to); win_to 0: none */
    GstClockTime win_to;
};
void rec_timeline_start(struct rec_timeline *t, GstClockTime rt);
void rec_timeline_pause(struct rec_timeline *t, GstClockTime rt);
void rec_timeline_resume(struct rec_timeline *t, GstClockTime rt);
/* false: the buffer at rt is not in the file (before the origin, or in a pause). */
bool rec_timeline_map(const struct rec_timeline *t, GstClockTime rt, GstClockTime *out);
/* The file's length at running time now. */
GstClockTime rec_timeline_length(const struct rec_timeline *t, GstClockTime now);

#endif
