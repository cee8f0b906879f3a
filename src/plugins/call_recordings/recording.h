/*
 * recording.h - reading recordings back from the store for the worker and
 * the routes: tables `recordings` and `recording_paths` (migration 20,
 * written by the scanner), with each recording's latest job (jobs.h) and
 * its transcript (transcript.h).
 */
#ifndef LUCY_RECORDING_H
#define LUCY_RECORDING_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct lucy_store;

#define LUCY_RECORDING_MAX_PATHS 8

/* What a worker needs to transcribe and index a recording. */
struct lucy_recording_info {
    struct {
        char *path;                    /* the file's path as bytes (NUL-terminated), for open() */
        char *display;                 /* its display form (UTF-8, U+FFFD for invalid bytes) */
    } paths[LUCY_RECORDING_MAX_PATHS]; /* readable ones first */
    int n_paths;                       /* used entries */
    int64_t time_s; /* the call's started_at, else creation_time tag, else mtime (Unix s) */
};

/* Loads recording id's paths (present ones first) and time. 0,
 * LUCY_ENOTFOUND, LUCY_ENOMEM or a store error. Free with
 * lucy_recording_info_free() on every path (safe on a zeroed struct).
 * Thread-safe. */
int lucy_recording_info_load(struct lucy_store *store, const char *id,
                             struct lucy_recording_info *out);
void lucy_recording_info_free(struct lucy_recording_info *info);

/* GET /recordings/{id}: the DESIGN §5 document plus "title" (the call's),
 * "call" (DESIGN §12: started_at, offset_known, local_time, direction,
 * number {e164, raw}, sim_slot, names [{name, kind, source}], person,
 * sources, warnings, title; null before the scanner read it) and paths
 * with the primary one first (new reference) in *out.
 * 0, LUCY_ENOTFOUND or a store error. Thread-safe. */
int lucy_recording_json(struct lucy_store *store, const char *id, json_t **out);

/* The title of recording id as GET /recordings/{id} gives it (the call's,
 * with its person's name; before the call is read, the primary path's
 * file name) into *out (malloc'd; NULL when the recording has none).
 * Inside any store function (db). 0, LUCY_ENOTFOUND, LUCY_ENOMEM or a
 * store error. Thread-safe. */
int lucy_recording_title(sqlite3 *db, const char *id, char **out);

/* What GET /recordings asks for (routes.c checks it first). */
struct lucy_recording_query {
    const char *status;     /* scan or transcript status; NULL = any */
    const char *sort;       /* a lucy_recording_sort_name(); NULL = "-started_at" */
    const char *cursor;     /* the previous page's next_cursor (an id); NULL = first page */
    int limit;              /* rows per page, 1..500 */
    int has_from, has_to;   /* bounds given */
    int64_t from_ms, to_ms; /* on the call's started_at (else the mtime), UTC ms, inclusive */
    int64_t person_id;      /* > 0: only calls with a number of this person (src/people/) */
};

/* The i-th accepted ?sort= value ("-started_at" first: the default; then
 * "started_at", "-duration", "duration"), NULL past the last. Static. */
const char *lucy_recording_sort_name(size_t i);

/* GET /recordings: a page of q->limit recordings in q->sort order after
 * q->cursor's row, only those whose scan status or transcript status
 * equals q->status, whose started_at lies in [from_ms, to_ms] and, with
 * q->person_id, whose number is one of that person's.
 * *out = {"recordings":[...], "next_cursor": id or null}. Each row has
 * "title", "call" (as GET /recordings/{id}) and "preview" (the first words
 * of the transcript, or null), read in one statement per page. 0 or a store error.
 * Thread-safe. */
int lucy_recording_list(struct lucy_store *store, const struct lucy_recording_query *q,
                        json_t **out);

/* Parses an ISO 8601 date-time as found in creation_time tags
 * ("2024-05-01T10:20:30.000000Z", "2024-05-01 10:20:30", with or without a
 * zone offset). Returns 0 and Unix seconds in *out, or LUCY_EINVAL. Pure. */
int lucy_recording_parse_time(const char *text, int64_t *out);

/* Column numbers, in a caller's statement, of recording_calls' direction,
 * started_at_ms, utc_offset_min and started_at_local. */
struct lucy_call_title_cols {
    int direction, started_at_ms, utc_offset_min, started_at_local;
};

/* A call's title with name, its person's display name, as who (DESIGN §12:
 * titles come from the person, so the user's alias, or a name another call
 * or WhatsApp gave the number, wins over the title stored at scan time), by
 * lucy_call_title's one rule; the direction and start are read from st's
 * current row at cols. A new JSON string (NULL only when out of memory).
 * Every view of a call with a person (GET /recordings, the people
 * timeline) uses this. */
json_t *lucy_call_person_title(sqlite3_stmt *st, const struct lucy_call_title_cols *cols,
                               const char *name);

#endif
