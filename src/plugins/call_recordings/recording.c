/*
 * recording.c - recordings as the worker and the API read them back.
 *
 * The scanner owns `recordings` and `recording_paths` (migration 20); this
 * file only reads them. All the SQL that depends on the scanner's column
 * names is in this file; the latest job and the transcript of a recording
 * come from their owners (jobs.c, transcript.c).
 *
 * transcript_status is the status of the recording's latest job ("none"
 * when it never had one), so a re-transcription in progress shows as
 * queued/running while the previous transcript stays readable.
 */
#define _GNU_SOURCE
#include "recording.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../error.h"
#include "../../store/store.h"
#include "jobs.h"
#include "transcript.h"

/* ---- time tags ------------------------------------------------------------ */

int lucy_recording_parse_time(const char *text, int64_t *out)
{
    if (!text)
        return LUCY_EINVAL;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p) {
        memset(&tm, 0, sizeof tm);
        p = strptime(text, "%Y-%m-%d %H:%M:%S", &tm);
    }
    if (!p)
        return LUCY_EINVAL;
    if (*p == '.') /* fraction of a second */
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    int64_t offset_s = 0;
    if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, hh = 0, mm = 0;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) < 1 && sscanf(p + 1, "%2d%2d", &hh, &mm) < 1)
            return LUCY_EINVAL;
        offset_s = sign * (hh * 3600 + mm * 60);
    } else if (*p != 'Z' && *p != '\0') {
        return LUCY_EINVAL;
    }
    *out = (int64_t)timegm(&tm) - offset_s;
    return 0;
}

static json_t *iso_time(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    char buf[32];
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

/* ---- worker view ------------------------------------------------------------ */

struct info_arg {
    const char *id;
    struct lucy_recording_info *out;
};

static const char *basename_of(const char *display)
{
    const char *slash = strrchr(display, '/');
    return slash ? slash + 1 : display;
}

static int info_read(sqlite3 *db, void *arg)
{
    struct info_arg *a = arg;
    struct lucy_recording_info *info = a->out;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "SELECT mtime_ns / 1000000000, json_extract(tags, '$.creation_time')"
                              " FROM recordings WHERE id = ?1",
                              &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
    int64_t t = 0;
    info->time_s = sqlite3_column_int64(st, 0);
    const char *created = (const char *)sqlite3_column_text(st, 1);
    if (created && lucy_recording_parse_time(created, &t) == 0)
        info->time_s = t;

    err = lucy_store_stmt(db,
                          "SELECT path, display_path FROM recording_paths WHERE recording_id = ?1"
                          " ORDER BY presence = 'present' DESC, display_path",
                          &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    while (info->n_paths < LUCY_RECORDING_MAX_PATHS && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const void *path = sqlite3_column_blob(st, 0);
        int len = sqlite3_column_bytes(st, 0);
        const char *display = (const char *)sqlite3_column_text(st, 1);
        char *p = malloc((size_t)len + 1);
        char *d = strdup(display ? display : "");
        if (!p || !d) {
            free(p);
            free(d);
            return LUCY_ENOMEM;
        }
        memcpy(p, path, (size_t)len);
        p[len] = '\0';
        info->paths[info->n_paths].path = p;
        info->paths[info->n_paths].display = d;
        info->n_paths++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return lucy_store_err(rc);
    if (info->n_paths > 0)
        snprintf(info->title, sizeof info->title, "%s", basename_of(info->paths[0].display));
    return 0;
}

int lucy_recording_info_load(struct lucy_store *store, const char *id,
                             struct lucy_recording_info *out)
{
    memset(out, 0, sizeof *out);
    struct info_arg a = {id, out};
    int rc = lucy_store_read(store, info_read, &a);
    if (rc)
        lucy_recording_info_free(out);
    return rc;
}

void lucy_recording_info_free(struct lucy_recording_info *info)
{
    for (int i = 0; i < info->n_paths; i++) {
        free(info->paths[i].path);
        free(info->paths[i].display);
    }
    memset(info, 0, sizeof *info);
}

/* ---- API view --------------------------------------------------------------- */

/* The columns of one recording in the API. transcript_status is the
 * latest job's status (a read-only join on jobs.c's table). */
#define RECORDING_SELECT                                                                           \
    "SELECT r.id, r.size, r.mtime_ns, r.duration_s, r.codec, r.sample_rate, r.channels,"           \
    " r.bit_rate, r.tags, r.scan_status,"                                                          \
    " coalesce((SELECT j.status FROM jobs j WHERE j.recording_id = r.id"                           \
    "  ORDER BY j.id DESC LIMIT 1), 'none') AS transcript_status,"                                 \
    " (SELECT j.id FROM jobs j WHERE j.recording_id = r.id ORDER BY j.id DESC LIMIT 1)"            \
    " FROM recordings r"

static json_t *text_or_null(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return s ? json_string(s) : json_null();
}

static json_t *paths_json(sqlite3 *db, const char *id, int *err)
{
    json_t *arr = json_array();
    sqlite3_stmt *st;
    *err = lucy_store_stmt(db,
                           "SELECT display_path, presence FROM recording_paths"
                           " WHERE recording_id = ?1 ORDER BY display_path",
                           &st);
    if (*err)
        return arr;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(arr, json_pack("{s:o,s:o}", "path", text_or_null(st, 0), "presence",
                                             text_or_null(st, 1)));
    *err = rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
    return arr;
}

/* A recording row (RECORDING_SELECT) as JSON; full adds the transcript
 * and the latest job. */
static json_t *row_json(sqlite3 *db, sqlite3_stmt *st, int full, int *err)
{
    *err = 0;
    const char *id = (const char *)sqlite3_column_text(st, 0);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "size", json_integer(sqlite3_column_int64(st, 1)));
    int64_t mtime_ns = sqlite3_column_int64(st, 2);
    json_object_set_new(o, "mtime", iso_time(mtime_ns / 1000000000));
    json_object_set_new(o, "duration_s",
                        sqlite3_column_type(st, 3) == SQLITE_NULL
                            ? json_null()
                            : json_real(sqlite3_column_double(st, 3)));
    json_object_set_new(o, "codec", text_or_null(st, 4));
    json_object_set_new(o, "sample_rate", json_integer(sqlite3_column_int(st, 5)));
    json_object_set_new(o, "channels", json_integer(sqlite3_column_int(st, 6)));
    json_object_set_new(o, "bitrate", json_integer(sqlite3_column_int64(st, 7)));
    const char *tags = (const char *)sqlite3_column_text(st, 8);
    json_t *tj = tags ? json_loads(tags, 0, NULL) : NULL;
    json_object_set_new(o, "tags", tj ? tj : json_object());
    json_object_set_new(o, "scan_status", text_or_null(st, 9));
    json_object_set_new(o, "transcript_status", text_or_null(st, 10));
    json_object_set_new(o, "paths", paths_json(db, id, err));
    if (!full || *err)
        return o;

    /* The latest job, for the UI (status, next retry). */
    struct lucy_job job;
    if (sqlite3_column_type(st, 11) != SQLITE_NULL &&
        lucy_jobs_load(db, sqlite3_column_int64(st, 11), &job) == 0) {
        json_t *jj = lucy_jobs_json(&job);
        json_object_set_new(o, "job", jj);
        json_object_set(o, "next_retry_at", json_object_get(jj, "next_retry_at"));
    }

    json_t *t = NULL;
    *err = lucy_transcript_json(db, id, &t);
    if (t)
        json_object_set_new(o, "transcript", t);
    return o;
}

struct one_arg {
    const char *id;
    json_t **out;
};

static int one_read(sqlite3 *db, void *arg)
{
    struct one_arg *a = arg;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, RECORDING_SELECT " WHERE r.id = ?1", &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    err = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
    if (err == 0) {
        *a->out = row_json(db, st, 1, &err);
        if (err) {
            json_decref(*a->out);
            *a->out = NULL;
        }
    }
    return err;
}

int lucy_recording_json(struct lucy_store *store, const char *id, json_t **out)
{
    *out = NULL;
    struct one_arg a = {id, out};
    return lucy_store_read(store, one_read, &a);
}

struct list_arg {
    const char *status, *cursor;
    int limit;
    json_t **out;
};

static int list_read(sqlite3 *db, void *arg)
{
    struct list_arg *a = arg;
    sqlite3_stmt *st;
    /* ?2 status filter on either status; ?1 cursor (exclusive). */
    int err = lucy_store_stmt(db,
                              "SELECT * FROM (" RECORDING_SELECT " WHERE r.id > ?1)"
                              " WHERE ?2 IS NULL OR scan_status = ?2"
                              " OR transcript_status = ?2 ORDER BY id LIMIT ?3",
                              &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, a->cursor ? a->cursor : "", -1, SQLITE_STATIC);
    if (a->status)
        sqlite3_bind_text(st, 2, a->status, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, a->limit + 1); /* one more: is there a next page? */
    json_t *list = json_array();
    int n = 0, rc;
    json_t *next = json_null();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == a->limit) {
            json_decref(next);
            next = json_string(
                json_string_value(json_object_get(json_array_get(list, (size_t)n - 1), "id")));
            break;
        }
        json_array_append_new(list, row_json(db, st, 0, &err));
        n++;
        if (err)
            break;
    }
    if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = lucy_store_err(rc);
    if (err) {
        json_decref(list);
        json_decref(next);
        return err;
    }
    *a->out = json_pack("{s:o,s:o}", "recordings", list, "next_cursor", next);
    return 0;
}

int lucy_recording_list(struct lucy_store *store, const char *status, int limit, const char *cursor,
                        json_t **out)
{
    *out = NULL;
    struct list_arg a = {status, cursor, limit, out};
    return lucy_store_read(store, list_read, &a);
}
