/*
 * recording.c - recordings as the worker and the API read them back.
 *
 * The scanner owns `recordings` and `recording_paths` (migration 20); this
 * file only reads them. All the SQL that depends on the scanner's column
 * names is in this file; the latest job and the transcript of a recording
 * come from their owners (jobs.c, transcript.c).
 *
 * A recording's `call` and `title` come from recording_calls (written by
 * scan_store.c); `paths` lists the primary path first (the scanner's rule,
 * lucy_scan_primary_better()). Lists are sorted by a key of a table
 * (list_sorts[]) with keyset pagination: the cursor is the last row's id,
 * and the next page starts after that row's (key, id).
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
#include "../../people/people.h"
#include "../../store/store.h"
#include "jobs.h"
#include "scan_int.h"
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
    /* The call's started_at (the scanner's rule of sources), else the
     * creation_time tag or mtime for a recording stored before calls. */
    int err =
        lucy_store_stmt(db,
                        "SELECT r.mtime_ns / 1000000000, json_extract(r.tags, '$.creation_time'),"
                        " c.started_at_ms FROM recordings r"
                        " LEFT JOIN recording_calls c ON c.recording_id = r.id WHERE r.id = ?1",
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
    if (sqlite3_column_type(st, 2) != SQLITE_NULL)
        info->time_s = sqlite3_column_int64(st, 2) / 1000;

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

/* A recording's preview: the first words of its transcript, from its
 * first PREVIEW_SEGMENTS segments (a primary-key range of `segments`, read
 * in the list's own statement: no query per row), cut to PREVIEW_BYTES at
 * a word. */
#define PREVIEW_SEGMENTS "3"
#define PREVIEW_BYTES    160

/* The columns of one recording in the API. transcript_status is the
 * latest job's status (a read-only join on jobs.c's table); the call
 * columns are scan_store.c's (recording_calls). sort_time is the call's
 * started_at, else the mtime (a recording stored before calls), in ms. */
#define RECORDING_SELECT                                                                           \
    "SELECT r.id, r.size, r.mtime_ns, r.duration_s, r.codec, r.sample_rate, r.channels,"           \
    " r.bit_rate, r.tags, r.scan_status,"                                                          \
    " coalesce((SELECT j.status FROM jobs j WHERE j.recording_id = r.id"                           \
    "  ORDER BY j.id DESC LIMIT 1), 'none') AS transcript_status,"                                 \
    " (SELECT j.id FROM jobs j WHERE j.recording_id = r.id ORDER BY j.id DESC LIMIT 1),"           \
    " c.started_at_ms, c.utc_offset_min, c.direction, c.number_raw, c.number_e164, c.sim_slot,"    \
    " c.contact_name, c.caller_name, c.call_log_name, c.file_name_name, c.tag_name, c.sources,"    \
    " c.warnings, c.title, c.started_at_local, c.recording_id IS NOT NULL,"                        \
    " coalesce(c.started_at_ms, r.mtime_ns / 1000000) AS sort_time,"                               \
    " coalesce(r.duration_s, -1) AS sort_duration,"                                                \
    " (SELECT group_concat(s.text, ' ') FROM (SELECT text FROM segments s"                         \
    "  WHERE s.recording_id = r.id AND s.idx < " PREVIEW_SEGMENTS " ORDER BY s.idx) s) AS preview" \
    " FROM recordings r LEFT JOIN recording_calls c ON c.recording_id = r.id"

/* Column numbers of RECORDING_SELECT's call part. */
enum {
    COL_STARTED = 12,
    COL_OFFSET,
    COL_DIRECTION,
    COL_NUMBER_RAW,
    COL_NUMBER_E164,
    COL_SIM,
    COL_CONTACT_NAME,
    COL_CALLER_NAME,
    COL_CALL_LOG_NAME,
    COL_FILE_NAME_NAME,
    COL_TAG_NAME,
    COL_SOURCES,
    COL_WARNINGS,
    COL_TITLE,
    COL_LOCAL,
    COL_HAS_CALL,
    COL_SORT_TIME,
    COL_SORT_DURATION,
    COL_PREVIEW,
};

/* The preview column cut to PREVIEW_BYTES at a space (else at a UTF-8
 * boundary), with "…" when cut; null without a transcript. */
static json_t *preview_json(sqlite3_stmt *st)
{
    const char *s = (const char *)sqlite3_column_text(st, COL_PREVIEW);
    while (s && *s == ' ')
        s++;
    if (!s || !*s)
        return json_null();
    size_t n = strlen(s);
    if (n <= PREVIEW_BYTES)
        return json_string(s);
    size_t cut = PREVIEW_BYTES;
    while (cut > PREVIEW_BYTES / 2 && s[cut] != ' ')
        cut--;
    if (s[cut] != ' ') /* one long word: cut before a UTF-8 continuation byte */
        for (cut = PREVIEW_BYTES; cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80; cut--)
            ;
    char buf[PREVIEW_BYTES + 4];
    snprintf(buf, sizeof buf, "%.*s\u2026", (int)cut, s);
    return json_string(buf);
}

static json_t *text_or_null(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return s ? json_string(s) : json_null();
}

/* ISO 8601 of UTC epoch ms: "+HH:MM" at offset_min when offset_known,
 * "Z" when not, no zone at all for a local wall-clock time (local). The
 * milliseconds only when there are any. */
static json_t *iso_call_time(int64_t ms, int offset_min, int offset_known, int local)
{
    int64_t shifted = ms + (offset_known ? (int64_t)offset_min * 60000 : 0);
    time_t secs = (time_t)(shifted >= 0 ? shifted / 1000 : (shifted - 999) / 1000);
    int frac = (int)(shifted - (int64_t)secs * 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return json_null();
    char buf[128], zone[24] = "Z", ms_text[16] = "";
    if (frac)
        snprintf(ms_text, sizeof ms_text, ".%03d", frac);
    if (local)
        zone[0] = '\0';
    else if (offset_known)
        snprintf(zone, sizeof zone, "%c%02d:%02d", offset_min < 0 ? '-' : '+', abs(offset_min) / 60,
                 abs(offset_min) % 60);
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d%s%s", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms_text, zone);
    return json_string(buf);
}

/* The names a call carries, in the people display order (DESIGN §12),
 * each with its kind and the source it came from. */
static const struct {
    int col;          /* RECORDING_SELECT column */
    const char *kind; /* DESIGN §12 name source; also its key in `sources` */
} call_names[] = {
    {COL_CONTACT_NAME, "contact_name"}, {COL_CALL_LOG_NAME, "call_log_name"},
    {COL_CALLER_NAME, "caller_name"},   {COL_FILE_NAME_NAME, "file_name"},
    {COL_TAG_NAME, "tag_name"},
};

static json_t *json_column(sqlite3_stmt *st, int col, json_t *fallback)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    if (!j)
        return fallback;
    json_decref(fallback);
    return j;
}

/* The "call" object of a recording row, or null when the scanner has not
 * read its call yet (a recording stored before schema 44, until its next
 * scan). Its person is filled by link_person(). */
/* call.person: {id, name} of the person holding the call's number
 * (src/people/, linked by E.164), or null. Returns the person's display
 * name (borrowed from call; NULL = no person or no name). */
static const char *link_person(sqlite3 *db, json_t *call)
{
    const char *e164 = json_string_value(json_object_get(json_object_get(call, "number"), "e164"));
    int64_t id;
    json_t *p = NULL;
    if (!e164 || lucy_people_find(db, "phone", e164, &id) != 0 || lucy_people_json(db, id, 0, &p))
        return NULL;
    json_t *person = json_pack("{s:I,s:O}", "id", (json_int_t)id, "name",
                               json_object_get(p, "name") ?: json_null());
    json_object_set_new(call, "person", person);
    json_decref(p);
    return json_string_value(json_object_get(person, "name"));
}

json_t *lucy_call_person_title(sqlite3_stmt *st, const struct lucy_call_title_cols *cols,
                               const char *name)
{
    static const enum lucy_call_direction directions[] = {LUCY_CALL_DIR_IN, LUCY_CALL_DIR_OUT,
                                                          LUCY_CALL_DIR_CONFERENCE};
    struct lucy_call_meta m = {0};
    snprintf(m.contact_name, sizeof m.contact_name, "%s", name);
    const char *dir = (const char *)sqlite3_column_text(st, cols->direction);
    for (size_t i = 0; dir && i < sizeof directions / sizeof *directions; i++)
        if (strcmp(dir, lucy_call_direction_name(directions[i])) == 0)
            m.direction = directions[i];
    if (sqlite3_column_type(st, cols->started_at_ms) != SQLITE_NULL) {
        m.source[LUCY_CALL_STARTED_AT] = LUCY_CALL_SRC_MTIME; /* known; which source is moot */
        m.started_at_ms = sqlite3_column_int64(st, cols->started_at_ms);
        m.utc_offset_known = sqlite3_column_type(st, cols->utc_offset_min) != SQLITE_NULL;
        m.utc_offset_min = sqlite3_column_int(st, cols->utc_offset_min);
        m.started_at_local_only = sqlite3_column_int(st, cols->started_at_local);
    }
    char title[LUCY_CALL_NAME_SIZE + 96];
    lucy_call_title(&m, title, sizeof title);
    return json_string(title);
}

/* Where lucy_call_person_title() finds its columns in RECORDING_SELECT. */
static const struct lucy_call_title_cols title_cols = {
    .direction = COL_DIRECTION,
    .started_at_ms = COL_STARTED,
    .utc_offset_min = COL_OFFSET,
    .started_at_local = COL_LOCAL,
};

static json_t *call_json(sqlite3_stmt *st)
{
    if (!sqlite3_column_int(st, COL_HAS_CALL))
        return json_null();
    json_t *c = json_object();
    json_t *sources = json_column(st, COL_SOURCES, json_object());
    int known = sqlite3_column_type(st, COL_STARTED) != SQLITE_NULL;
    int offset_known = sqlite3_column_type(st, COL_OFFSET) != SQLITE_NULL;
    int local = sqlite3_column_int(st, COL_LOCAL);
    json_object_set_new(c, "started_at",
                        known
                            ? iso_call_time(sqlite3_column_int64(st, COL_STARTED),
                                            sqlite3_column_int(st, COL_OFFSET), offset_known, local)
                            : json_null());
    json_object_set_new(c, "started_at_ms",
                        known ? json_integer(sqlite3_column_int64(st, COL_STARTED)) : json_null());
    json_object_set_new(c, "offset_known", json_boolean(known && offset_known));
    json_object_set_new(c, "local_time", json_boolean(known && local));
    json_object_set_new(c, "direction", text_or_null(st, COL_DIRECTION));
    json_t *number = json_null();
    if (sqlite3_column_type(st, COL_NUMBER_RAW) != SQLITE_NULL)
        number = json_pack("{s:o,s:o}", "e164", text_or_null(st, COL_NUMBER_E164), "raw",
                           text_or_null(st, COL_NUMBER_RAW));
    json_object_set_new(c, "number", number);
    json_object_set_new(c, "sim_slot",
                        sqlite3_column_type(st, COL_SIM) == SQLITE_NULL
                            ? json_null()
                            : json_integer(sqlite3_column_int(st, COL_SIM)));
    json_t *names = json_array();
    for (size_t i = 0; i < sizeof call_names / sizeof *call_names; i++) {
        const char *name = (const char *)sqlite3_column_text(st, call_names[i].col);
        if (name)
            json_array_append_new(
                names,
                json_pack("{s:s,s:s,s:o}", "name", name, "kind", call_names[i].kind, "source",
                          json_incref(json_object_get(sources, call_names[i].kind))
                              ?: json_null()));
    }
    json_object_set_new(c, "names", names);
    json_object_set_new(c, "person", json_null());
    json_object_set_new(c, "sources", sources);
    json_object_set_new(c, "warnings", json_column(st, COL_WARNINGS, json_array()));
    json_object_set_new(c, "title", text_or_null(st, COL_TITLE));
    return c;
}

/* The recording's paths, primary first ("primary": true), then by display
 * path. *primary_display (may be NULL) gets a copy of the primary's
 * display path (the caller frees). */
static json_t *paths_json(sqlite3 *db, const char *id, char **primary_display, int *err)
{
    json_t *arr = json_array();
    sqlite3_stmt *st;
    if (primary_display)
        *primary_display = NULL;
    *err = lucy_store_stmt(db,
                           "SELECT display_path, presence, path, first_seen_s FROM recording_paths"
                           " WHERE recording_id = ?1 ORDER BY display_path",
                           &st);
    if (*err)
        return arr;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc;
    size_t best = 0;
    char *best_path = NULL;
    size_t best_len = 0;
    int best_present = 0;
    int64_t best_first = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *presence = (const char *)sqlite3_column_text(st, 1);
        const char *path = sqlite3_column_blob(st, 2);
        size_t len = (size_t)sqlite3_column_bytes(st, 2);
        int present = presence && strcmp(presence, "present") == 0;
        int64_t first = sqlite3_column_int64(st, 3);
        json_array_append_new(arr, json_pack("{s:o,s:o,s:b}", "path", text_or_null(st, 0),
                                             "presence", text_or_null(st, 1), "primary", 0));
        if (!best_path || lucy_scan_primary_better(path, len, present, first, best_path, best_len,
                                                   best_present, best_first)) {
            free(best_path);
            best_path = malloc(len + 1);
            if (!best_path) {
                *err = LUCY_ENOMEM;
                return arr;
            }
            memcpy(best_path, path, len);
            best_len = len;
            best_present = present;
            best_first = first;
            best = json_array_size(arr) - 1;
        }
    }
    free(best_path);
    *err = rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
    json_t *primary = json_array_get(arr, best);
    if (primary) { /* primary first */
        json_object_set_new(primary, "primary", json_true());
        json_incref(primary);
        json_array_remove(arr, best);
        json_array_insert_new(arr, 0, primary);
        if (primary_display)
            *primary_display = strdup(json_string_value(json_object_get(primary, "path")) ?: "");
    }
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
    json_object_set_new(o, "preview", preview_json(st));
    json_t *call = call_json(st);
    const char *person_name = link_person(db, call);
    if (person_name)
        json_object_set_new(call, "title", lucy_call_person_title(st, &title_cols, person_name));
    char *primary = NULL;
    json_object_set_new(o, "paths", paths_json(db, id, &primary, err));
    /* The title is the call's (lucy_call_title, stored by the scanner);
     * before the call is read, the primary path's file name. */
    const char *title = json_string_value(json_object_get(call, "title"));
    json_object_set_new(o, "title",
                        title     ? json_string(title)
                        : primary ? json_string(basename_of(primary))
                                  : json_null());
    json_object_set_new(o, "call", call);
    free(primary);
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

/* Recording id as row_json() makes it (full or not) in *out. 0,
 * LUCY_ENOTFOUND or a store error. */
static int one_row(sqlite3 *db, const char *id, int full, json_t **out)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, RECORDING_SELECT " WHERE r.id = ?1", &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    err = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
    if (err == 0) {
        *out = row_json(db, st, full, &err);
        if (err) {
            json_decref(*out);
            *out = NULL;
        }
    }
    return err;
}

static int one_read(sqlite3 *db, void *arg)
{
    struct one_arg *a = arg;
    return one_row(db, a->id, 1, a->out);
}

int lucy_recording_title(sqlite3 *db, const char *id, char **out)
{
    *out = NULL;
    json_t *o = NULL;
    int err = one_row(db, id, 0, &o); /* the one rule for the title: row_json's */
    const char *title = o ? json_string_value(json_object_get(o, "title")) : NULL;
    if (err == 0 && title && !(*out = strdup(title)))
        err = LUCY_ENOMEM;
    json_decref(o);
    return err;
}

int lucy_recording_json(struct lucy_store *store, const char *id, json_t **out)
{
    *out = NULL;
    struct one_arg a = {id, out};
    return lucy_store_read(store, one_read, &a);
}

/* The orders GET /recordings accepts: one full statement each (fixed
 * text, so the statement cache keeps it). ?1 cursor id (NULL = first
 * page), ?2 status, ?3 limit + 1, ?4 / ?5 started_at bounds in ms
 * (inclusive; NULL = open), ?6 a person whose phones the call number must
 * be one of (NULL = anyone; people_identifiers, read only). Keyset paging: rows after the cursor
 * row's (key, id) in the list's order. */
#define LIST_SQL(key, op, dir)                                                                     \
    "SELECT * FROM (" RECORDING_SELECT ")"                                                         \
    " WHERE (?2 IS NULL OR scan_status = ?2 OR transcript_status = ?2)"                            \
    " AND (?4 IS NULL OR sort_time >= ?4) AND (?5 IS NULL OR sort_time <= ?5)"                     \
    " AND (?6 IS NULL OR number_e164 IN (SELECT '+' || value FROM people_identifiers"              \
    "  WHERE person = ?6 AND kind = 'wa_id' UNION SELECT value FROM people_identifiers"            \
    "  WHERE person = ?6 AND kind = 'phone'))"                                                     \
    " AND (?1 IS NULL OR " key " " op " (SELECT " key " FROM (" RECORDING_SELECT                   \
    " WHERE r.id = ?1)) OR (" key " = (SELECT " key " FROM (" RECORDING_SELECT                     \
    " WHERE r.id = ?1)) AND id " op " ?1))"                                                        \
    " ORDER BY " key " " dir ", id " dir " LIMIT ?3"

static const struct {
    const char *name; /* ?sort= */
    const char *sql;
} list_sorts[] = {
    {"-started_at", LIST_SQL("sort_time", "<", "DESC")},
    {"started_at", LIST_SQL("sort_time", ">", "ASC")},
    {"-duration", LIST_SQL("sort_duration", "<", "DESC")},
    {"duration", LIST_SQL("sort_duration", ">", "ASC")},
};

const char *lucy_recording_sort_name(size_t i)
{
    return i < sizeof list_sorts / sizeof *list_sorts ? list_sorts[i].name : NULL;
}

struct list_arg {
    const struct lucy_recording_query *q;
    json_t **out;
};

static int list_read(sqlite3 *db, void *arg)
{
    struct list_arg *a = arg;
    const struct lucy_recording_query *q = a->q;
    size_t sort = 0;
    while (sort < sizeof list_sorts / sizeof *list_sorts - 1 && q->sort &&
           strcmp(q->sort, list_sorts[sort].name) != 0)
        sort++;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, list_sorts[sort].sql, &st);
    if (err)
        return err;
    if (q->cursor)
        sqlite3_bind_text(st, 1, q->cursor, -1, SQLITE_STATIC);
    if (q->status)
        sqlite3_bind_text(st, 2, q->status, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, q->limit + 1); /* one more: is there a next page? */
    if (q->has_from)
        sqlite3_bind_int64(st, 4, q->from_ms);
    if (q->has_to)
        sqlite3_bind_int64(st, 5, q->to_ms);
    if (q->person_id > 0)
        sqlite3_bind_int64(st, 6, q->person_id);
    json_t *list = json_array();
    int n = 0, rc;
    json_t *next = json_null();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == q->limit) {
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

int lucy_recording_list(struct lucy_store *store, const struct lucy_recording_query *q,
                        json_t **out)
{
    *out = NULL;
    struct list_arg a = {q, out};
    return lucy_store_read(store, list_read, &a);
}
