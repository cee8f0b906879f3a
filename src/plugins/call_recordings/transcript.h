/*
 * transcript.h - a recording's stored transcripts (DESIGN §13 Versions):
 * every transcription run is a version in `transcript_versions`
 * (migration 53; versions.c writes and reads it), and one version is
 * active: `transcripts` (one row per recording: text, engine, model,
 * language, duration, rtf, version) and `segments` (one row per segment,
 * in time order), migration 21, hold a copy of it, and only its segments
 * are in the search index.
 *
 * transcript.c is the one file that writes and reads these two tables;
 * a transcript is never overwritten, only a new version added.
 * The worker stores a transcript through lucy_jobs_finish() (jobs.c), in
 * the same write as the job's new state; the API reads it back through
 * lucy_recording_json() (recording.c). Storing also queues the search
 * index documents of the segments (lucy_outbox_put, index.h), so a
 * transcript is never stored without them.
 */
#ifndef LUCY_TRANSCRIPT_H
#define LUCY_TRANSCRIPT_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct lucy_transcript;
struct lucy_search_hit;

/* 1 when t holds speech (at least one segment and a non-empty text): the
 * job is done; else no_speech. The one rule both the worker and the store
 * follow. Pure. */
int lucy_transcript_is_speech(const struct lucy_transcript *t);

/* What is stored with a transcript besides the engine's result. */
struct lucy_transcript_meta {
    const char *recording_id; /* hex SHA-256 of the recording */
    long long job_id;         /* the job that made it */
    int64_t time_s;           /* the call's started_at (Unix s), for search */
    int64_t now_s;            /* created_at_s (Unix s) */
};

/* Stores t as the recording's next version (1, 2, ...; versions.c) and
 * makes it the active one when it is speech, or when the active one has
 * no speech either (a silent re-run never hides an earlier transcript):
 * then `transcripts`, `segments` and the recording's index documents are
 * replaced by the new version's, dropping the old ones in the same
 * write. Earlier versions stay as they are. Call inside a
 * lucy_store_write() function with its db. 0 or a LUCY_E* code (the
 * caller's transaction is rolled back on error). */
int lucy_transcript_put(sqlite3 *db, const struct lucy_transcript *t,
                        const struct lucy_transcript_meta *m);

/* Makes stored version the recording's active transcript: its segments
 * replace the active ones and the recording's index documents (dated
 * time_s, Unix s: the call's date) in this write, so search finds the
 * version's words and not the old ones. Call inside a lucy_store_write()
 * function. 0; LUCY_ENOTFOUND (no such version); LUCY_ECONFLICT (the
 * version is no_speech: nothing to show or index); or a store error. */
int lucy_transcript_activate(sqlite3 *db, const char *recording_id, int version, int64_t time_s);

/* ---- versions (versions.c) ------------------------------------------------ */

/* Adds t as the recording's next version (max + 1, 1 for the first), with
 * its segments (speaker role, channel, words) as JSON, status "done" or
 * "no_speech" (lucy_transcript_is_speech) and its word count. Does not
 * make it active (lucy_transcript_put does). Call inside a
 * lucy_store_write() function. 0 and *version, or a store error. */
int lucy_transcript_version_put(sqlite3 *db, const struct lucy_transcript *t,
                                const struct lucy_transcript_meta *m, int *version);

/* The stored status ("done" or "no_speech") of a version into status
 * (len bytes). Any store function's db. 0, LUCY_ENOTFOUND, or a store
 * error. */
int lucy_transcript_version_status(sqlite3 *db, const char *recording_id, int version, char *status,
                                   size_t len);

/* GET /recordings/{id}/transcripts: {recording_id, active_version (null
 * when none), versions: [{version, active, status, engine, model,
 * language, created_at (ISO 8601 UTC), created_at_s, duration_s, rtf,
 * word_count, truncated, source_duration_s, channels, job_id}]} newest
 * first. Call inside a lucy_store_read() function. 0 and *out (new
 * reference); LUCY_ENOTFOUND when no recording has that id; a store
 * error. */
int lucy_transcript_versions_json(sqlite3 *db, const char *recording_id, json_t **out);

/* GET /recordings/{id}/transcripts/{version}: one version as in the list,
 * with its text and segments in lucy_transcript_json's form (speaker
 * resolved when read). Call inside a lucy_store_read() function. 0 and
 * *out (new reference); LUCY_ENOTFOUND (no such recording or version); a
 * store error. */
int lucy_transcript_version_json(sqlite3 *db, const char *recording_id, int version, json_t **out);

/* The person of the call's other party ("them"), 0 when unknown
 * (recording_calls' number -> src/people/). Any store function's db. */
int64_t lucy_transcript_call_person(sqlite3 *db, const char *recording_id);

/* A segment's speaker for its stored role (the one rule): LUCY_SPEAKER_ME
 * for "me", person for "them" when person > 0, else 0 (not known). Pure. */
int64_t lucy_transcript_speaker(const char *role, int64_t person);

/* The same in the API: "me", person's id, or JSON null
 * (lucy_speaker_json). New reference. Pure. */
json_t *lucy_transcript_speaker_json(const char *role, int64_t person);

/* The search index's hit lookup of recordings (lucy_hit_lookup_fn,
 * index.h; registered with lucy_index_set_hit_lookup by the plugin's init
 * and by `lucy search`): sets the speaker of every call_recording hit
 * among hits[0..n) as GET /recordings/{id} gives its segment - "me", the
 * call's person for "them", else 0 (a mono call, a person not known, a
 * segment gone since the search) - and its title, the recording's as GET
 * /recordings/{id} gives it (lucy_recording_title). One query on
 * `segments` for all the hits, then the call's person and title once per
 * run of one recording's hits. Inside any store function (db);
 * thread-safe. 0, LUCY_ENOMEM or a store error. */
int lucy_transcript_hit_lookup(sqlite3 *db, struct lucy_search_hit *hits, size_t n);

/* Gives every search document of the recording's stored segments the
 * date time_s (Unix s): the call's started_at changed (its sidecar arrived
 * after the transcript). Re-puts the documents; nothing else changes. Call
 * inside a lucy_store_write() function. 0 or a LUCY_E* code. */
int lucy_transcript_redate(sqlite3 *db, const char *recording_id, int64_t time_s);

/* Forgets the recording's transcripts: every version, its transcripts row, its segments
 * and their index documents (lucy_outbox_delete: gone from SQLite search
 * at once, from a remote index when the indexer gets to it). Call inside a
 * lucy_store_write() function. 0 or a LUCY_E* code. */
int lucy_transcript_forget(sqlite3 *db, const char *recording_id);

/* The recording's active transcript as the "transcript" object of GET
 * /recordings/{id}: version, text, engine, model, language, duration_s, rtf,
 * truncated, source_duration_s, channels, warnings (["truncated"] or [])
 * and segments [{t0_ms, t1_ms, text, speaker, channel, words}] - speaker
 * "me", the call's person id (the other party of a per-channel call
 * whose number belongs to a person) or null; channel 0/1 or null; words
 * [{t0_ms, t1_ms, text}] ([] when the engine gave none) - or JSON null
 * when it has none. Call inside a lucy_store_read() function with its db.
 * 0 and *out (new reference), or a store error (*out NULL). */
int lucy_transcript_json(sqlite3 *db, const char *recording_id, json_t **out);

/* Keeps in transcript (lucy_transcript_json's object; null is fine) only
 * the segments of speaker: "me", "them" (the other party of a per-channel
 * call, person known or not) or a person id in decimal (the other party
 * when the call's number is that person's). The one speaker filter rule
 * (GET /recordings/{id}?speaker=). 0, or LUCY_EINVAL when speaker is none
 * of these (nothing changed). */
int lucy_transcript_keep_speaker(json_t *transcript, const char *speaker);

/* t's segments as JSON [{t0_ms, t1_ms, text, words: [{t0_ms, t1_ms,
 * text}]}] (new reference; NULL on allocation failure): a chunk's
 * checkpoint (checkpoint.c). Pure. */
json_t *lucy_segments_json(const struct lucy_transcript *t);

/* Appends the segments of a (lucy_segments_json's form) to t, with their
 * words. 0 or LUCY_ENOMEM. Pure. */
int lucy_segments_from_json(const json_t *a, struct lucy_transcript *t);

#endif
