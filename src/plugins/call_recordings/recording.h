/*
 * recording.h - reading recordings back from the store for the worker and
 * the routes: tables `recordings` and `recording_paths` (migration 20,
 * written by the scanner), with each recording's latest job (jobs.h) and
 * its transcript (transcript.h).
 */
#ifndef LUCY_RECORDING_H
#define LUCY_RECORDING_H

#include <jansson.h>
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
    char title[256];                   /* display file name, for search hits */
    int64_t time_s;                    /* creation_time tag, else mtime (Unix s) */
};

/* Loads recording id's paths (present ones first), title and time. 0,
 * LUCY_ENOTFOUND, LUCY_ENOMEM or a store error. Free with
 * lucy_recording_info_free() on every path (safe on a zeroed struct).
 * Thread-safe. */
int lucy_recording_info_load(struct lucy_store *store, const char *id,
                             struct lucy_recording_info *out);
void lucy_recording_info_free(struct lucy_recording_info *info);

/* GET /recordings/{id}: the DESIGN §5 document (new reference) in *out.
 * 0, LUCY_ENOTFOUND or a store error. Thread-safe. */
int lucy_recording_json(struct lucy_store *store, const char *id, json_t **out);

/* GET /recordings: up to limit recordings with id > cursor (NULL = from the
 * start), ordered by id, optionally only those whose scan status or
 * transcript status equals status. *out = {"recordings":[...],
 * "next_cursor": id or null}. 0 or a store error. Thread-safe. */
int lucy_recording_list(struct lucy_store *store, const char *status, int limit, const char *cursor,
                        json_t **out);

/* Parses an ISO 8601 date-time as found in creation_time tags
 * ("2024-05-01T10:20:30.000000Z", "2024-05-01 10:20:30", with or without a
 * zone offset). Returns 0 and Unix seconds in *out, or LUCY_EINVAL. Pure. */
int lucy_recording_parse_time(const char *text, int64_t *out);

#endif
