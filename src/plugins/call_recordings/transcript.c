/*
 * transcript.c - the one writer and reader of tables `transcripts` and
 * `segments`, the recording's *active* transcript (see transcript.h);
 * versions.c keeps every version in `transcript_versions`.
 *
 * Storing a transcript adds a version (versions.c) and, when it becomes
 * the active one, copies that version into `transcripts` and `segments`
 * and replaces the recording's index documents, all in the caller's
 * write: the segments and documents of the old active version are
 * dropped first, so search never holds two versions of a call and a
 * version with fewer segments leaves nothing stale. Switching the active
 * version (PUT /recordings/{id}/transcripts/active) is the same copy.
 * A no_speech transcript keeps its transcripts row (engine, duration) but
 * has no segments and no documents.
 *
 * Who said what (DESIGN §13): a segment stores its speaker *role* ('me',
 * 'them') and channel, never a person id: the person of "them" is the
 * call's (recording_calls.number_e164 -> src/people/), looked up when the
 * transcript is read, so a merge or split of people is reflected at once.
 * Words are stored as JSON [{t0_ms, t1_ms, text}] in the segment's row.
 *
 * A segment's document carries no title: the call's title (who, when) is
 * the recording's, shown by the API, and the index searches titles, so a
 * title in every segment would make one name match every segment of every
 * call with that person (DESIGN §12: names are searchable through the
 * person, not copied into every segment).
 */
#include "transcript.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../../asr/asr.h"
#include "../../error.h"
#include "../../index/index.h"
#include "../../people/people.h"
#include "../../store/row.h"
#include "../../store/store.h"
#include "recording.h"

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

/* A segment's words as JSON [{t0_ms, t1_ms, text}] (new reference), or
 * NULL when it has none. */
static json_t *words_json(const struct lucy_segment *s)
{
    if (s->n_words == 0)
        return NULL;
    json_t *a = json_array();
    for (size_t w = 0; a && w < s->n_words; w++)
        json_array_append_new(a, json_pack("{s:I,s:I,s:s}", "t0_ms", (json_int_t)s->words[w].t0_ms,
                                           "t1_ms", (json_int_t)s->words[w].t1_ms, "text",
                                           s->words[w].text));
    return a;
}

json_t *lucy_segments_json(const struct lucy_transcript *t)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < t->n_segments; i++) {
        const struct lucy_segment *s = &t->segments[i];
        json_t *w = words_json(s);
        json_array_append_new(a, json_pack("{s:I,s:I,s:s,s:o}", "t0_ms", (json_int_t)s->t0_ms,
                                           "t1_ms", (json_int_t)s->t1_ms, "text", s->text, "words",
                                           w ? w : json_array()));
    }
    return a;
}

int lucy_segments_from_json(const json_t *a, struct lucy_transcript *t)
{
    size_t i, w;
    json_t *s, *word;
    json_array_foreach(a, i, s)
    {
        const char *text = json_string_value(json_object_get(s, "text"));
        if (!text)
            continue;
        size_t before = t->n_segments;
        int rc = lucy_transcript_add(t, json_integer_value(json_object_get(s, "t0_ms")),
                                     json_integer_value(json_object_get(s, "t1_ms")), text,
                                     strlen(text));
        if (rc)
            return rc;
        if (t->n_segments == before)
            continue;
        json_array_foreach(json_object_get(s, "words"), w, word)
        {
            const char *wt = json_string_value(json_object_get(word, "text"));
            if (wt &&
                (rc = lucy_transcript_add_word(
                     t, json_integer_value(json_object_get(word, "t0_ms")),
                     json_integer_value(json_object_get(word, "t1_ms")), wt, strlen(wt))) != 0)
                return rc;
        }
    }
    return 0;
}

/* 1 when a new version with transcript t should become the active one:
 * speech always does; no_speech only when the active one has no speech
 * either (or there is none), so a silent re-run never hides words. */
static int should_activate(sqlite3 *db, const char *recording_id, const struct lucy_transcript *t)
{
    if (lucy_transcript_is_speech(t))
        return 1;
    sqlite3_stmt *st;
    int err =
        lucy_store_stmt(db, "SELECT text != '' FROM transcripts WHERE recording_id = ?1", &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int has_speech = rc == SQLITE_ROW && sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return lucy_store_err(rc);
    return !has_speech;
}

/* Makes version the recording's active transcript: `transcripts` and
 * `segments` become copies of the version's row, and the recording's
 * index documents are replaced by the new segments' in this same write
 * (all dropped, then the non-empty ones put again), so search never mixes
 * two versions. No status check (see lucy_transcript_activate). */
static int activate_version(sqlite3 *db, const char *recording_id, int version, int64_t time_s)
{
    static const char *const sql[] = {
        "DELETE FROM segments WHERE recording_id = ?1",
        "INSERT OR REPLACE INTO transcripts (recording_id, job_id, engine, model, language,"
        " duration_s, rtf, text, created_at_s, truncated, source_duration_s, channels, version)"
        " SELECT recording_id, job_id, engine, model, language, duration_s, rtf, text,"
        " created_at_s, truncated, source_duration_s, channels, version FROM transcript_versions"
        " WHERE recording_id = ?1 AND version = ?2",
        /* Words: NULL when the engine gave none, as put_segments() stores them. */
        "INSERT INTO segments (recording_id, idx, t0_ms, t1_ms, text, speaker, channel, words)"
        " SELECT ?1, CAST(j.key AS INTEGER), json_extract(j.value, '$.t0_ms'),"
        " json_extract(j.value, '$.t1_ms'), json_extract(j.value, '$.text'),"
        " json_extract(j.value, '$.speaker'), json_extract(j.value, '$.channel'),"
        " CASE WHEN json_array_length(j.value, '$.words') > 0"
        "  THEN json_extract(j.value, '$.words') END"
        " FROM transcript_versions v, json_each(v.segments) j"
        " WHERE v.recording_id = ?1 AND v.version = ?2 AND v.status = 'done'",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st;
        int err = lucy_store_stmt(db, sql[i], &st);
        if (err)
            return err;
        sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
        if (sqlite3_bind_parameter_count(st) >= 2)
            sqlite3_bind_int(st, 2, version);
        if ((err = lucy_row_step_done(st)) != 0)
            return err;
    }
    int err = lucy_outbox_delete(db, DOC_SOURCE, recording_id);
    return err ? err : lucy_transcript_redate(db, recording_id, time_s);
}

int lucy_transcript_put(sqlite3 *db, const struct lucy_transcript *t,
                        const struct lucy_transcript_meta *m)
{
    int version = 0;
    int err = lucy_transcript_version_put(db, t, m, &version);
    if (err)
        return err;
    int activate = should_activate(db, m->recording_id, t);
    if (activate <= 0)
        return activate;
    return activate_version(db, m->recording_id, version, m->time_s);
}

int lucy_transcript_activate(sqlite3 *db, const char *recording_id, int version, int64_t time_s)
{
    char status[16];
    int err = lucy_transcript_version_status(db, recording_id, version, status, sizeof status);
    if (err)
        return err;
    if (strcmp(status, "done") != 0)
        return LUCY_ECONFLICT;
    return activate_version(db, recording_id, version, time_s);
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
        "DELETE FROM transcript_versions WHERE recording_id = ?1",
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

int64_t lucy_transcript_call_person(sqlite3 *db, const char *recording_id)
{
    sqlite3_stmt *st;
    int64_t person = 0;
    if (lucy_store_stmt(db, "SELECT number_e164 FROM recording_calls WHERE recording_id = ?1",
                        &st) != 0)
        return 0;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    char *e164 = sqlite3_step(st) == SQLITE_ROW ? lucy_row_dup(st, 0) : NULL;
    sqlite3_reset(st);
    if (e164 && lucy_people_find(db, "phone", e164, &person) != 0)
        person = 0;
    free(e164);
    return person;
}

int64_t lucy_transcript_speaker(const char *role, int64_t person)
{
    if (role && strcmp(role, "me") == 0)
        return LUCY_SPEAKER_ME;
    if (role && strcmp(role, "them") == 0 && person > 0)
        return person;
    return 0;
}

json_t *lucy_transcript_speaker_json(const char *role, int64_t person)
{
    return lucy_speaker_json(lucy_transcript_speaker(role, person));
}

/* The stored roles of a batch of segments, ?1 = [[recording_id, idx],
 * ...]: j.key is the place in the batch; a segment without a row (gone
 * since the search) is left out. Each lookup uses the primary key. */
static const char hit_roles_sql[] =
    "SELECT j.key, s.speaker FROM json_each(?1) AS j JOIN segments AS s"
    " ON s.recording_id = json_extract(j.value, '$[0]') AND s.idx = json_extract(j.value, '$[1]')";

/* The roles as static strings, so they outlive the statement. */
static const char *const roles[] = {"me", "them"};

int lucy_transcript_hit_lookup(sqlite3 *db, struct lucy_search_hit *hits, size_t n)
{
    json_t *batch = json_array();
    size_t *which = calloc(n ? n : 1, sizeof *which); /* batch place -> hit */
    const char **role = calloc(n ? n : 1, sizeof *role);
    int rc = batch && which && role ? 0 : LUCY_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (strcmp(hits[i].source, DOC_SOURCE) != 0 || !hits[i].id)
            continue;
        which[m++] = i;
        if (json_array_append_new(batch, json_pack("[si]", hits[i].id, hits[i].segment)))
            rc = LUCY_ENOMEM;
    }
    char *arg = rc == 0 && m ? json_dumps(batch, JSON_COMPACT) : NULL;
    if (rc == 0 && m && !arg)
        rc = LUCY_ENOMEM;
    sqlite3_stmt *st = NULL;
    if (arg && (rc = lucy_store_stmt(db, hit_roles_sql, &st)) == 0) {
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            sqlite3_int64 k = sqlite3_column_int64(st, 0);
            const char *r = (const char *)sqlite3_column_text(st, 1);
            for (size_t x = 0; r && k >= 0 && (size_t)k < m && x < 2; x++)
                if (strcmp(r, roles[x]) == 0)
                    role[which[k]] = roles[x];
        }
        rc = step == SQLITE_DONE ? 0 : lucy_store_err(step);
        sqlite3_reset(st);
    }
    /* "them" is the call's person, and the title the recording's: one
     * lookup per recording in a run of its hits (a group's hits are one
     * run). The recording's title replaces whatever the document has:
     * lucy 0.1.0 indexed every segment with the file name as its title,
     * and an upgrade keeps those documents. A recording gone since the
     * search keeps the indexed title. */
    const char *last = NULL;
    int64_t person = 0;
    char *title = NULL;
    for (size_t k = 0; rc == 0 && k < m; k++) {
        struct lucy_search_hit *h = &hits[which[k]];
        const char *r = role[which[k]];
        if (!last || strcmp(last, h->id) != 0) {
            person = lucy_transcript_call_person(db, h->id);
            free(title);
            if ((rc = lucy_recording_title(db, h->id, &title)) == LUCY_ENOTFOUND)
                rc = 0;
            last = h->id;
        }
        h->speaker = lucy_transcript_speaker(r, r == roles[1] ? person : 0);
        if (rc == 0 && title) {
            free(h->title);
            if (!(h->title = strdup(title)))
                rc = LUCY_ENOMEM;
        }
    }
    free(title);
    free(arg);
    free(role);
    free(which);
    json_decref(batch);
    return rc;
}

static json_t *words_or_null(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    json_t *w = s ? json_loads(s, 0, NULL) : NULL;
    return w ? w : json_array();
}

int lucy_transcript_keep_speaker(json_t *transcript, const char *speaker)
{
    int me = strcmp(speaker, "me") == 0, them = strcmp(speaker, "them") == 0;
    long long person = 0;
    if (!me && !them) {
        char *end;
        person = strtoll(speaker, &end, 10);
        if (speaker[0] < '0' || speaker[0] > '9' || *end || person <= 0)
            return LUCY_EINVAL;
    }
    json_t *segs = json_object_get(transcript, "segments");
    for (size_t i = json_array_size(segs); i-- > 0;) {
        json_t *seg = json_array_get(segs, i);
        json_t *who = json_object_get(seg, "speaker");
        int is_me = json_is_string(who) && strcmp(json_string_value(who), "me") == 0;
        /* "them": a channel of a per-channel call that is not "me". */
        int is_them = !is_me && json_is_integer(json_object_get(seg, "channel"));
        int keep = me ? is_me : them ? is_them : json_integer_value(who) == person;
        if (!keep)
            json_array_remove(segs, i);
    }
    return 0;
}

/* Seconds (and the real-time factor, a ratio of seconds) to the ms the
 * rest of the API counts in: 7.104, not 7.1040625. */
static double to_ms(double s)
{
    return (double)llround(s * 1000.0) / 1000.0;
}

int lucy_transcript_json(sqlite3 *db, const char *recording_id, json_t **out)
{
    *out = NULL;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(
        db,
        "SELECT text, engine, model, language, duration_s, rtf, truncated,"
        " source_duration_s, channels, version FROM transcripts WHERE recording_id = ?1",
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
                          text_or_null(st, 3), "duration_s", to_ms(sqlite3_column_double(st, 4)),
                          "rtf", to_ms(sqlite3_column_double(st, 5)));
    int truncated = sqlite3_column_int(st, 6);
    json_object_set_new(t, "truncated", json_boolean(truncated));
    json_object_set_new(t, "source_duration_s",
                        sqlite3_column_type(st, 7) == SQLITE_NULL
                            ? json_null()
                            : json_real(to_ms(sqlite3_column_double(st, 7))));
    json_object_set_new(
        t, "channels",
        json_integer(sqlite3_column_type(st, 8) == SQLITE_NULL ? 1 : sqlite3_column_int(st, 8)));
    json_object_set_new(t, "version", json_integer(sqlite3_column_int(st, 9)));
    /* Warnings a reader must see next to the text (DESIGN §13 Truncation). */
    json_object_set_new(t, "warnings", truncated ? json_pack("[s]", "truncated") : json_array());
    sqlite3_reset(st);
    int64_t person = lucy_transcript_call_person(db, recording_id);
    json_t *segs = json_array();
    err = lucy_store_stmt(db,
                          "SELECT t0_ms, t1_ms, text, speaker, channel, words FROM segments"
                          " WHERE recording_id = ?1 ORDER BY idx",
                          &st);
    if (err == 0) {
        sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *role = (const char *)sqlite3_column_text(st, 3);
            json_array_append_new(segs,
                                  json_pack("{s:I,s:I,s:o,s:o,s:o,s:o}", "t0_ms",
                                            (json_int_t)sqlite3_column_int64(st, 0), "t1_ms",
                                            (json_int_t)sqlite3_column_int64(st, 1), "text",
                                            text_or_null(st, 2), "speaker",
                                            lucy_transcript_speaker_json(role, person), "channel",
                                            sqlite3_column_type(st, 4) == SQLITE_NULL
                                                ? json_null()
                                                : json_integer(sqlite3_column_int(st, 4)),
                                            "words", words_or_null(st, 5)));
        }
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
