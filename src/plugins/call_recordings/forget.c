/*
 * forget.c - forgetting recordings (DESIGN §15 Forget): DELETE
 * /recordings/{id}, and the plugin's row of the forget registry
 * (src/people/forget.h) for DELETE /people/{id} and LUCY_RETENTION_DAYS.
 *
 * Forgetting a recording, in one store write: its transcript, segments
 * and index documents (transcript.c; the documents leave Qdrant through
 * the outbox, so an outage delays it and never skips it), its jobs
 * (jobs.c), its `recordings` row (its `recording_calls` row goes with it:
 * ON DELETE CASCADE) and a tombstone of its content hash. The rows of
 * `recording_paths` stay, with the path, size and mtime only: the scanner
 * then knows the file and does not hash it again, and scan_store.c stores
 * nothing else for a tombstoned hash, so neither a rescan nor a restart
 * brings the recording back. The user's file is never touched.
 *
 * This file is the one deleter of `recordings` rows (scan_store.c inserts
 * and updates them).
 *
 * DELETE answers 204 when the recording is forgotten, also when it was
 * already (the tombstone knows the id); 404 for an id never seen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../clock.h"
#include "../../error.h"
#include "../../http/http.h"
#include "../../lucy.h"
#include "../../people/forget.h"
#include "../../store/row.h"
#include "../../store/store.h"
#include "../../store/tombstones.h"
#include "jobs.h"
#include "plugin.h"
#include "transcript.h"

/* Forgets recording id inside a write; *found = 0 when it is neither a
 * recording nor a forgotten one. */
static int forget_recording(sqlite3 *db, const char *id, const char *reason, json_t *forgotten,
                            int *found)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "DELETE FROM recordings WHERE id = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if ((rc = lucy_row_step_done(st)) != 0)
        return rc;
    if (sqlite3_changes(db) == 0) { /* no such recording (any more) */
        rc = lucy_tombstone_has(db, LUCY_TOMBSTONE_RECORDING, id);
        *found = rc == 1;
        return rc < 0 ? rc : 0;
    }
    *found = 1;
    if ((rc = lucy_transcript_forget(db, id)) != 0 || (rc = lucy_jobs_forget(db, id)) != 0)
        return rc;
    rc = lucy_tombstone_put(db, LUCY_TOMBSTONE_RECORDING, id, reason, lucy_wall_ms());
    if (rc == 0)
        lucy_forgotten_add(forgotten, "recording", id);
    return rc;
}

/* The registry's person slot: the calls with any of the person's phones
 * (the relation of GET /people/{id}/timeline). */
static int forget_person(sqlite3 *db, int64_t person, const char *reason, json_t *forgotten,
                         void *arg)
{
    (void)arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "SELECT recording_id FROM recording_calls WHERE number_e164 IN"
                             " (SELECT value FROM people_identifiers WHERE person = ?1"
                             "  AND kind = 'phone')",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, person);
    return lucy_forget_selected(db, st, forget_recording, reason, forgotten);
}

/* The registry's older slot: calls that started before before_ms (a
 * recording without a call date: its file's mtime). */
static int forget_older(sqlite3 *db, int64_t before_ms, int max, json_t *forgotten, void *arg)
{
    (void)arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "SELECT r.id FROM recordings r LEFT JOIN recording_calls c"
                             " ON c.recording_id = r.id"
                             " WHERE coalesce(c.started_at_ms, r.mtime_ns / 1000000) < ?1"
                             " ORDER BY coalesce(c.started_at_ms, r.mtime_ns / 1000000) LIMIT ?2",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, before_ms);
    sqlite3_bind_int(st, 2, max);
    return lucy_forget_selected(db, st, forget_recording, LUCY_FORGET_RETENTION, forgotten);
}

int lucy_recordings_forget_register(struct lucy_recordings *r)
{
    const struct lucy_forgetter row = {
        .name = "call_recordings",
        .person = forget_person,
        .older = forget_older,
        .arg = r,
    };
    return r->ctx->forget ? lucy_people_add_forgetter(r->ctx->forget, &row) : 0;
}

/* ---- DELETE /recordings/{id} ---------------------------------------------- */

void lucy_recordings_delete(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    char not_found[320];
    snprintf(not_found, sizeof not_found,
             "no recording with id %.80s: ids are the hex SHA-256 of the content, as listed by "
             "GET /recordings",
             req->params[0]);
    lucy_forget_reply(req, resp, forget_recording, req->params[0], not_found);
}
