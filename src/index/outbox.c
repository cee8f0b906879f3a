/*
 * outbox.c - the producer side of the search index: documents + outbox.
 *
 * Producers call lucy_outbox_put() / lucy_outbox_delete() inside their own
 * lucy_store_write() function, so the document, its outbox row and the
 * producer's data commit in one transaction (or none of them does).
 *
 * Tables (migration 10 in store/schema.c):
 *   documents  the canonical local copy, one row per (source, id, segment);
 *              doc_rowid never changes for a key (a delete only sets the
 *              `deleted` tombstone; the indexer purges the row once the
 *              backend has forgotten it), so backends can key on it.
 *   outbox     at most one pending operation per doc_rowid: a newer put or
 *              delete replaces the older one and bumps `seq`, so the indexer
 *              can acknowledge exactly the version it indexed
 *              (DELETE ... WHERE seq = ?) without losing a newer change.
 *
 * A put whose content equals the stored live row changes nothing and
 * queues nothing, so re-running a producer (rescan, webhook redelivery) is
 * free and idempotent.
 *
 * Statements come from the store's per-connection cache (lucy_store_stmt):
 * a producer calls put once per document, and parsing these upserts costs
 * more than running them.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../error.h"
#include "../store/store.h"
#include "index.h"

/* Wall-clock milliseconds: queued_at_ms survives restarts, so it is not
 * monotonic time. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Upsert of the document; RETURNING yields the row only when something
 * changed (or the row is new / was tombstoned). */
static const char put_doc_sql[] =
    "INSERT INTO documents (source, id, segment, contact, title, text, time_s, t0_ms,"
    " t1_ms, deleted, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10)"
    " ON CONFLICT (source, id, segment) DO UPDATE SET contact = excluded.contact,"
    " title = excluded.title, text = excluded.text, time_s = excluded.time_s,"
    " t0_ms = excluded.t0_ms, t1_ms = excluded.t1_ms, deleted = 0,"
    " updated_at_ms = excluded.updated_at_ms"
    " WHERE documents.deleted != 0 OR documents.contact IS NOT excluded.contact"
    " OR documents.title IS NOT excluded.title OR documents.text IS NOT excluded.text"
    " OR documents.time_s != excluded.time_s OR documents.t0_ms != excluded.t0_ms"
    " OR documents.t1_ms != excluded.t1_ms"
    " RETURNING doc_rowid";

/* Queues op for one doc_rowid, replacing any older pending op for it. A
 * replaced row keeps its queued_at_ms (the age of the oldest pending
 * change) unless it had failed. */
static const char queue_one_sql[] =
    "INSERT INTO outbox (doc_rowid, op, seq, queued_at_ms) VALUES (?1, ?2, 1, ?3)"
    " ON CONFLICT (doc_rowid) DO UPDATE SET op = excluded.op, seq = outbox.seq + 1,"
    " attempts = 0, next_attempt_at_ms = 0, last_error = NULL,"
    " queued_at_ms = CASE WHEN outbox.failed THEN excluded.queued_at_ms"
    " ELSE outbox.queued_at_ms END, failed = 0";

static const char queue_deletes_sql[] =
    "INSERT INTO outbox (doc_rowid, op, seq, queued_at_ms)"
    " SELECT doc_rowid, 'delete', 1, ?3 FROM documents"
    " WHERE source = ?1 AND id = ?2 AND deleted = 0 AND true"
    " ON CONFLICT (doc_rowid) DO UPDATE SET op = 'delete', seq = outbox.seq + 1,"
    " attempts = 0, next_attempt_at_ms = 0, last_error = NULL,"
    " queued_at_ms = CASE WHEN outbox.failed THEN excluded.queued_at_ms"
    " ELSE outbox.queued_at_ms END, failed = 0";

static const char tombstone_sql[] = "UPDATE documents SET deleted = 1, updated_at_ms = ?3"
                                    " WHERE source = ?1 AND id = ?2 AND deleted = 0";

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Steps a statement to its end (no rows expected) and resets it. */
static int finish(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

static int queue_one(sqlite3 *db, int64_t doc_rowid, const char *op, int64_t now_ms)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, queue_one_sql, &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, doc_rowid);
    sqlite3_bind_text(st, 2, op, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms);
    return finish(st);
}

int lucy_outbox_put(sqlite3 *db, const struct lucy_doc *doc)
{
    if (!db || !doc || !doc->source || !*doc->source || !doc->id || !*doc->id || !doc->text ||
        doc->segment < 0)
        return LUCY_EINVAL;

    int64_t now_ms = wall_ms();
    int64_t doc_rowid = 0;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, put_doc_sql, &st);
    if (err)
        return err;
    /* doc's strings outlive the step: SQLITE_STATIC, no copies */
    sqlite3_bind_text(st, 1, doc->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, doc->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, doc->segment);
    bind_text_or_null(st, 4, doc->contact);
    bind_text_or_null(st, 5, doc->title);
    sqlite3_bind_text(st, 6, doc->text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, doc->time_s);
    sqlite3_bind_int64(st, 8, doc->t0_ms);
    sqlite3_bind_int64(st, 9, doc->t1_ms);
    sqlite3_bind_int64(st, 10, now_ms);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        doc_rowid = sqlite3_column_int64(st, 0);
        rc = sqlite3_step(st);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return lucy_store_err(rc);
    if (doc_rowid > 0) /* 0: unchanged, nothing to index */
        err = queue_one(db, doc_rowid, "put", now_ms);
    if (err == 0 && doc_rowid > 0)
        lucy_indexer_kick();
    return err;
}

/* Runs one statement bound with (source, id, now_ms). */
static int run_keyed(sqlite3 *db, const char *sql, const char *source, const char *id,
                     int64_t now_ms)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, sql, &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms);
    return finish(st);
}

int lucy_outbox_delete(sqlite3 *db, const char *source, const char *id)
{
    if (!db || !source || !*source || !id || !*id)
        return LUCY_EINVAL;
    int64_t now_ms = wall_ms();
    /* Queue first: it selects the live rows the tombstone then hides. */
    int err = run_keyed(db, queue_deletes_sql, source, id, now_ms);
    if (err == 0)
        err = run_keyed(db, tombstone_sql, source, id, now_ms);
    if (err == 0 && sqlite3_changes(db) > 0)
        lucy_indexer_kick();
    return err;
}

int lucy_outbox_stats(sqlite3 *db, struct lucy_outbox_stats *out)
{
    static const char sql[] =
        "SELECT (SELECT count(*) FROM outbox WHERE failed = 0),"
        " (SELECT count(*) FROM outbox WHERE failed = 1),"
        " (SELECT coalesce(min(queued_at_ms), 0) FROM outbox WHERE failed = 0),"
        " (SELECT count(*) FROM outbox WHERE failed = 0 AND attempts > 0),"
        " coalesce((SELECT last_error FROM outbox WHERE failed = 1"
        "   ORDER BY queued_at_ms LIMIT 1),"
        "  (SELECT last_error FROM outbox WHERE failed = 0 AND last_error IS NOT NULL"
        "   ORDER BY queued_at_ms LIMIT 1), '')";
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        out->pending = sqlite3_column_int64(st, 0);
        out->failed = sqlite3_column_int64(st, 1);
        out->oldest_pending_ms = sqlite3_column_int64(st, 2);
        out->retrying = sqlite3_column_int64(st, 3);
        const unsigned char *e = sqlite3_column_text(st, 4);
        snprintf(out->first_error, sizeof out->first_error, "%s", e ? (const char *)e : "");
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

int lucy_outbox_requeue_all(sqlite3 *db, int64_t *queued)
{
    static const char *const steps[] = {
        /* Tombstones and their pending deletes are moot once the backend
         * was emptied. */
        "DELETE FROM outbox WHERE doc_rowid IN (SELECT doc_rowid FROM documents"
        " WHERE deleted != 0)",
        "DELETE FROM documents WHERE deleted != 0",
        "DELETE FROM outbox WHERE doc_rowid NOT IN (SELECT doc_rowid FROM documents)",
        "INSERT INTO outbox (doc_rowid, op, seq, queued_at_ms)"
        " SELECT doc_rowid, 'put', 1, ?1 FROM documents WHERE true"
        " ON CONFLICT (doc_rowid) DO UPDATE SET op = 'put', seq = outbox.seq + 1,"
        " attempts = 0, next_attempt_at_ms = 0, last_error = NULL, failed = 0,"
        " queued_at_ms = excluded.queued_at_ms",
    };
    int64_t now_ms = wall_ms();
    *queued = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, steps[i], -1, &st, NULL);
        if (rc == SQLITE_OK) {
            if (sqlite3_bind_parameter_count(st) > 0)
                sqlite3_bind_int64(st, 1, now_ms);
            rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return lucy_store_err(rc);
        *queued = sqlite3_changes(db);
    }
    if (*queued > 0)
        lucy_indexer_kick();
    return 0;
}
