/*
 * versions.c - the one writer and reader of `transcript_versions`
 * (migration 53, DESIGN §13 Versions; see transcript.h).
 *
 * A version is written once, when its job finishes, and never changed:
 * re-transcribing adds version N+1 beside the others, so no run ever
 * destroys another's words. Its segments are kept whole as JSON
 * [{t0_ms, t1_ms, text, speaker, channel, words}] - the speaker as its
 * stored role ('me'/'them'), as in `segments` - so the active copy in
 * `segments` (transcript.c) can be rebuilt from it by one INSERT ... SELECT
 * over json_each, and a version is read back with its words intact.
 *
 * Numbers are per recording, max + 1; the store's single writer makes
 * that race-free.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../asr/asr.h"
#include "../../error.h"
#include "../../store/row.h"
#include "../../store/store.h"
#include "transcript.h"

/* Words in text: runs of non-space characters (the rule migration 53
 * approximates in SQL for the transcripts it turns into version 1). */
static int word_count(const char *text)
{
    int n = 0;
    for (const char *p = text; p && *p; p++)
        if (!isspace((unsigned char)*p) && (p == text || isspace((unsigned char)p[-1])))
            n++;
    return n;
}

/* t's segments with their speaker role and channel, as stored. */
static json_t *stored_segments(const struct lucy_transcript *t)
{
    json_t *a = lucy_segments_json(t);
    for (size_t i = 0; a && i < t->n_segments; i++) {
        json_t *s = json_array_get(a, i);
        const struct lucy_segment *seg = &t->segments[i];
        json_object_set_new(s, "speaker", seg->speaker ? json_string(seg->speaker) : json_null());
        json_object_set_new(s, "channel",
                            seg->channel >= 0 ? json_integer(seg->channel) : json_null());
    }
    return a;
}

static int next_version(sqlite3 *db, const char *recording_id, int *out)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(
        db, "SELECT coalesce(max(version), 0) + 1 FROM transcript_versions WHERE recording_id = ?1",
        &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : lucy_store_err(rc);
}

int lucy_transcript_version_put(sqlite3 *db, const struct lucy_transcript *t,
                                const struct lucy_transcript_meta *m, int *version)
{
    *version = 0;
    int speech = lucy_transcript_is_speech(t);
    json_t *segs = speech ? stored_segments(t) : json_array();
    char *segs_text = segs ? json_dumps(segs, JSON_COMPACT) : NULL;
    json_decref(segs);
    if (!segs_text)
        return LUCY_ENOMEM;
    int v = 0;
    sqlite3_stmt *st;
    int err = next_version(db, m->recording_id, &v);
    if (!err)
        err = lucy_store_stmt(db,
                              "INSERT INTO transcript_versions (recording_id, version, job_id,"
                              " status, engine, model, language, duration_s, rtf, text, word_count,"
                              " created_at_s, truncated, source_duration_s, channels, segments)"
                              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
                              " ?14, ?15, ?16)",
                              &st);
    if (err) {
        free(segs_text);
        return err;
    }
    const char *text = t->text ? t->text : "";
    sqlite3_bind_text(st, 1, m->recording_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, v);
    sqlite3_bind_int64(st, 3, m->job_id);
    sqlite3_bind_text(st, 4, speech ? "done" : "no_speech", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, t->engine, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, t->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, t->language, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 8, t->audio_s);
    sqlite3_bind_double(st, 9, t->rtf);
    sqlite3_bind_text(st, 10, text, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 11, speech ? word_count(text) : 0);
    sqlite3_bind_int64(st, 12, m->now_s);
    sqlite3_bind_int(st, 13, t->truncated ? 1 : 0);
    if (t->source_duration_s > 0)
        sqlite3_bind_double(st, 14, t->source_duration_s);
    sqlite3_bind_int(st, 15, t->channels > 0 ? t->channels : 1);
    sqlite3_bind_text(st, 16, segs_text, -1, free);
    if ((err = lucy_row_step_done(st)) != 0)
        return err;
    *version = v;
    return 0;
}

int lucy_transcript_version_status(sqlite3 *db, const char *recording_id, int version, char *status,
                                   size_t len)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(
        db, "SELECT status FROM transcript_versions WHERE recording_id = ?1 AND version = ?2", &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, version);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        snprintf(status, len, "%s", s ? s : "");
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
}

/* The columns of a version in the list, in version_row()'s order; ?1 is
 * the recording, the last column whether it is the active one. */
#define VERSION_COLUMNS                                                                            \
    "SELECT v.version, v.status, v.engine, v.model, v.language, v.created_at_s, v.duration_s,"     \
    " v.rtf, v.word_count, v.truncated, v.source_duration_s, v.channels, v.job_id,"                \
    " v.version = (SELECT version FROM transcripts t WHERE t.recording_id = v.recording_id),"      \
    " v.text, v.segments FROM transcript_versions v WHERE v.recording_id = ?1"

static json_t *col_text(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return s ? json_string(s) : json_null();
}

static json_t *col_real(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? json_null()
                                                       : json_real(sqlite3_column_double(st, col));
}

/* ISO 8601 UTC ("2026-11-30T01:02:03Z") of Unix seconds t. */
static json_t *iso_time(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    char buf[32];
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

/* One row of VERSION_COLUMNS as the list's object (new reference). */
static json_t *version_row(sqlite3_stmt *st)
{
    int64_t created = sqlite3_column_int64(st, 5);
    json_t *o = json_pack("{s:i,s:b,s:o,s:o,s:o,s:o}", "version", sqlite3_column_int(st, 0),
                          "active", sqlite3_column_int(st, 13), "status", col_text(st, 1), "engine",
                          col_text(st, 2), "model", col_text(st, 3), "language", col_text(st, 4));
    if (!o)
        return NULL;
    json_object_set_new(o, "created_at", iso_time(created));
    json_object_set_new(o, "created_at_s", json_integer(created));
    json_object_set_new(o, "duration_s", col_real(st, 6));
    json_object_set_new(o, "rtf", col_real(st, 7));
    json_object_set_new(o, "word_count", json_integer(sqlite3_column_int(st, 8)));
    json_object_set_new(o, "truncated", json_boolean(sqlite3_column_int(st, 9)));
    json_object_set_new(o, "source_duration_s", col_real(st, 10));
    json_object_set_new(
        o, "channels",
        json_integer(sqlite3_column_type(st, 11) == SQLITE_NULL ? 1 : sqlite3_column_int(st, 11)));
    json_object_set_new(o, "job_id",
                        sqlite3_column_type(st, 12) == SQLITE_NULL
                            ? json_null()
                            : json_integer(sqlite3_column_int64(st, 12)));
    return o;
}

static int recording_exists(sqlite3 *db, const char *recording_id)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, "SELECT 1 FROM recordings WHERE id = ?1", &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
}

int lucy_transcript_versions_json(sqlite3 *db, const char *recording_id, json_t **out)
{
    *out = NULL;
    int err = recording_exists(db, recording_id);
    sqlite3_stmt *st;
    if (!err)
        err = lucy_store_stmt(db, VERSION_COLUMNS " ORDER BY v.version DESC", &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    json_t *list = json_array();
    json_t *active = json_null();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_int(st, 13)) {
            json_decref(active);
            active = json_integer(sqlite3_column_int(st, 0));
        }
        json_array_append_new(list, version_row(st));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        json_decref(list);
        json_decref(active);
        return lucy_store_err(rc);
    }
    *out = json_pack("{s:s,s:o,s:o}", "recording_id", recording_id, "active_version", active,
                     "versions", list);
    return *out ? 0 : LUCY_ENOMEM;
}

/* The stored segments (JSON text) in the API's form: the role becomes
 * the speaker ("me", the person's id or null). New reference. */
static json_t *api_segments(const char *stored, int64_t person)
{
    json_t *a = stored ? json_loads(stored, 0, NULL) : NULL;
    if (!a)
        return json_array();
    size_t i;
    json_t *s;
    json_array_foreach(a, i, s)
    {
        const char *role = json_string_value(json_object_get(s, "speaker"));
        json_object_set_new(s, "speaker", lucy_transcript_speaker_json(role, person));
    }
    return a;
}

int lucy_transcript_version_json(sqlite3 *db, const char *recording_id, int version, json_t **out)
{
    *out = NULL;
    int err = recording_exists(db, recording_id);
    sqlite3_stmt *st;
    if (!err)
        err = lucy_store_stmt(db, VERSION_COLUMNS " AND v.version = ?2", &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, version);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
    }
    json_t *o = version_row(st);
    char *segs = lucy_row_dup(st, 15);
    json_object_set_new(o, "text", col_text(st, 14));
    sqlite3_reset(st);
    json_object_set_new(o, "recording_id", json_string(recording_id));
    json_object_set_new(o, "segments",
                        api_segments(segs, lucy_transcript_call_person(db, recording_id)));
    free(segs);
    *out = o;
    return o ? 0 : LUCY_ENOMEM;
}
