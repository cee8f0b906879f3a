/*
 * transcript.c - the one writer and reader of tables `transcripts` and
 * `segments` (see transcript.h).
 *
 * A new transcript replaces the old one whole: its segments are deleted
 * and its index documents dropped before the new rows go in, so a
 * re-transcription with fewer segments leaves nothing stale in search.
 * A no_speech transcript keeps its transcripts row (engine, duration) but
 * has no segments and no documents.
 *
 * A segment's document carries no title: the call's title (who, when) is
 * the recording's, shown by the API, and the index searches titles, so a
 * title in every segment would make one name match every segment of every
 * call with that person (DESIGN §12: names are searchable through the
 * person, not copied into every segment).
 */
#include "transcript.h"

#include <stddef.h>

#include "../../asr/asr.h"
#include "../../index/index.h"
#include "../../store/row.h"
#include "../../store/store.h"

#define DOC_SOURCE "call_recording" /* lucy_doc.source of a recording's segments */

int lucy_transcript_is_speech(const struct lucy_transcript *t)
{
    return t->n_segments > 0 && t->text && t->text[0];
}

/* A segment's search document: no title (see the file comment). */
static int put_document(sqlite3 *db, const char *recording_id, int idx, const char *text,
                        int64_t time_s, int64_t t0_ms, int64_t t1_ms)
{
    struct lucy_doc doc = {
        .source = DOC_SOURCE,
        .id = recording_id,
        .segment = idx,
        .text = text,
        .time_s = time_s,
        .t0_ms = t0_ms,
        .t1_ms = t1_ms,
    };
    return lucy_outbox_put(db, &doc);
}

/* The segments of a speech transcript, each with its index document. */
static int put_segments(sqlite3 *db, const struct lucy_transcript *t,
                        const struct lucy_transcript_meta *m)
{
    for (size_t i = 0; i < t->n_segments; i++) {
        const struct lucy_segment *s = &t->segments[i];
        sqlite3_stmt *st;
        int err = lucy_store_stmt(db,
                                  "INSERT INTO segments (recording_id, idx, t0_ms, t1_ms, text)"
                                  " VALUES (?1, ?2, ?3, ?4, ?5)",
                                  &st);
        if (err)
            return err;
        sqlite3_bind_text(st, 1, m->recording_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, (int)i);
        sqlite3_bind_int64(st, 3, s->t0_ms);
        sqlite3_bind_int64(st, 4, s->t1_ms);
        sqlite3_bind_text(st, 5, s->text ? s->text : "", -1, SQLITE_STATIC);
        if ((err = lucy_row_step_done(st)) != 0)
            return err;
        if (!s->text || !*s->text)
            continue;
        if ((err = put_document(db, m->recording_id, (int)i, s->text, m->time_s, s->t0_ms,
                                s->t1_ms)) != 0)
            return err;
    }
    return 0;
}

int lucy_transcript_put(sqlite3 *db, const struct lucy_transcript *t,
                        const struct lucy_transcript_meta *m)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, "DELETE FROM segments WHERE recording_id = ?1", &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, m->recording_id, -1, SQLITE_STATIC);
    if ((err = lucy_row_step_done(st)) != 0)
        return err;
    /* Drop documents of an earlier transcript (their segment count may
     * differ); put_segments() revives the ones that still exist. */
    if ((err = lucy_outbox_delete(db, DOC_SOURCE, m->recording_id)) != 0)
        return err;
    err = lucy_store_stmt(db,
                          "INSERT OR REPLACE INTO transcripts (recording_id, job_id, engine,"
                          " model, language, duration_s, rtf, text, created_at_s)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                          &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, m->recording_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, m->job_id);
    sqlite3_bind_text(st, 3, t->engine, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, t->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, t->language, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 6, t->audio_s);
    sqlite3_bind_double(st, 7, t->rtf);
    sqlite3_bind_text(st, 8, t->text ? t->text : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, m->now_s);
    if ((err = lucy_row_step_done(st)) != 0)
        return err;
    return lucy_transcript_is_speech(t) ? put_segments(db, t, m) : 0;
}

int lucy_transcript_redate(sqlite3 *db, const char *recording_id, int64_t time_s)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "SELECT idx, t0_ms, t1_ms, text FROM segments WHERE recording_id = ?1"
                              " AND text != '' ORDER BY idx",
                              &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        /* lucy_outbox_put uses other statements; this one stays stepping. */
        err = put_document(db, recording_id, sqlite3_column_int(st, 0),
                           (const char *)sqlite3_column_text(st, 3), time_s,
                           sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2));
        if (err) {
            sqlite3_reset(st);
            return err;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

int lucy_transcript_forget(sqlite3 *db, const char *recording_id)
{
    static const char *const sql[] = {
        "DELETE FROM segments WHERE recording_id = ?1",
        "DELETE FROM transcripts WHERE recording_id = ?1",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st;
        int err = lucy_store_stmt(db, sql[i], &st);
        if (err)
            return err;
        sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
        if ((err = lucy_row_step_done(st)) != 0)
            return err;
    }
    return lucy_outbox_delete(db, DOC_SOURCE, recording_id);
}

static json_t *text_or_null(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return s ? json_string(s) : json_null();
}

int lucy_transcript_json(sqlite3 *db, const char *recording_id, json_t **out)
{
    *out = NULL;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "SELECT text, engine, model, language, duration_s, rtf"
                              " FROM transcripts WHERE recording_id = ?1",
                              &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        if (rc != SQLITE_DONE)
            return lucy_store_err(rc);
        *out = json_null();
        return 0;
    }
    json_t *t = json_pack("{s:o,s:o,s:o,s:o,s:f,s:f}", "text", text_or_null(st, 0), "engine",
                          text_or_null(st, 1), "model", text_or_null(st, 2), "language",
                          text_or_null(st, 3), "duration_s", sqlite3_column_double(st, 4), "rtf",
                          sqlite3_column_double(st, 5));
    json_t *segs = json_array();
    err = lucy_store_stmt(db,
                          "SELECT t0_ms, t1_ms, text FROM segments WHERE recording_id = ?1"
                          " ORDER BY idx",
                          &st);
    if (err == 0) {
        sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            json_array_append_new(segs, json_pack("{s:I,s:I,s:o}", "t0_ms",
                                                  (json_int_t)sqlite3_column_int64(st, 0), "t1_ms",
                                                  (json_int_t)sqlite3_column_int64(st, 1), "text",
                                                  text_or_null(st, 2)));
        err = rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
    }
    json_object_set_new(t, "segments", segs);
    if (err) {
        json_decref(t);
        return err;
    }
    *out = t;
    return 0;
}
