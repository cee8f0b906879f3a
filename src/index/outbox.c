/*
 * outbox.c - the owner of the search index's tables: documents + outbox.
 *
 * Producer side: producers call lucy_outbox_put() / lucy_outbox_delete()
 * inside their own lucy_store_write() function, so the document, its
 * outbox row and the producer's data commit in one transaction (or none of
 * them does). Consumer side (the indexer): lucy_outbox_take() reads due
 * rows with their documents, lucy_outbox_settle() acknowledges, fails or
 * reschedules each one, lucy_outbox_all_due() ends every backoff;
 * lucy_outbox_doc_get() lets a backend complete its hits from the
 * canonical copy; lucy_outbox_stats() and lucy_outbox_lag() read the
 * backlog for /rag/stats, the health check and /search. No other file
 * writes these tables.
 *
 * Tables (migration 10 in store/schema.c):
 *   documents  the canonical local copy, one row per (source, id, segment);
 *              doc_rowid never changes for a key (a delete only sets the
 *              `deleted` tombstone; settling the applied delete purges the
 *              row once the backend has forgotten it), so backends can key
 *              on it.
 *   outbox     at most one pending operation per doc_rowid: a newer put or
 *              delete replaces the older one and bumps `seq`, so the indexer
 *              can acknowledge exactly the version it indexed
 *              (DELETE ... WHERE seq = ?) without losing a newer change.
 *
 * A put whose content equals the stored live row changes nothing and
 * queues nothing, so re-running a producer (rescan, webhook redelivery) is
 * free and idempotent. Queuing a row raises LUCY_OUTBOX_EVENT in the store
 * (lucy_store_notify): once that write is committed the indexer, which
 * listens for it, wakes; otherwise it finds new rows by polling.
 *
 * Statements come from the store's per-connection cache (lucy_store_stmt):
 * a producer calls put once per document, and parsing these upserts costs
 * more than running them.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "../clock.h"
#include "../error.h"
#include "../store/row.h"
#include "../store/store.h"
#include "../thread.h"
#include "index.h"

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

static int queue_one(sqlite3 *db, int64_t doc_rowid, const char *op, int64_t now_ms)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, queue_one_sql, &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, doc_rowid);
    sqlite3_bind_text(st, 2, op, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms);
    return lucy_row_step_done(st);
}

int lucy_outbox_put(sqlite3 *db, const struct lucy_doc *doc)
{
    if (!db || !doc || !doc->source || !*doc->source || !doc->id || !*doc->id || !doc->text ||
        doc->segment < 0)
        return LUCY_EINVAL;

    int64_t now_ms = lucy_wall_ms();
    int64_t doc_rowid = 0;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, put_doc_sql, &st);
    if (err)
        return err;
    /* doc's strings outlive the step: SQLITE_STATIC, no copies */
    sqlite3_bind_text(st, 1, doc->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, doc->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, doc->segment);
    lucy_row_bind_text(st, 4, doc->contact);
    lucy_row_bind_text(st, 5, doc->title);
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
        lucy_store_notify(db, LUCY_OUTBOX_EVENT);
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
    return lucy_row_step_done(st);
}

int lucy_outbox_delete(sqlite3 *db, const char *source, const char *id)
{
    if (!db || !source || !*source || !id || !*id)
        return LUCY_EINVAL;
    int64_t now_ms = lucy_wall_ms();
    /* Queue first: it selects the live rows the tombstone then hides. */
    int err = run_keyed(db, queue_deletes_sql, source, id, now_ms);
    if (err == 0)
        err = run_keyed(db, tombstone_sql, source, id, now_ms);
    if (err == 0 && sqlite3_changes(db) > 0)
        lucy_store_notify(db, LUCY_OUTBOX_EVENT);
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
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, sql, &st);
    if (err)
        return err;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return lucy_store_err(rc);
    out->pending = sqlite3_column_int64(st, 0);
    out->failed = sqlite3_column_int64(st, 1);
    out->oldest_pending_ms = sqlite3_column_int64(st, 2);
    out->retrying = sqlite3_column_int64(st, 3);
    lucy_row_copy(st, 4, out->first_error, sizeof out->first_error);
    return 0;
}

int lucy_outbox_lag(sqlite3 *db, int64_t queued_before_ms, struct lucy_outbox_lag *out)
{
    /* EXISTS and LIMIT 1 without ORDER BY stop at the first match: /search
     * runs this on every request of a local_copy backend. */
    static const char sql[] =
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE failed = 0 AND attempts > 0),"
        " EXISTS (SELECT 1 FROM outbox WHERE failed = 0 AND queued_at_ms <= ?1),"
        " EXISTS (SELECT 1 FROM outbox WHERE failed = 1),"
        " coalesce((SELECT last_error FROM outbox WHERE failed = 1 LIMIT 1),"
        "  (SELECT last_error FROM outbox WHERE failed = 0 AND attempts > 0"
        "   AND last_error IS NOT NULL LIMIT 1), '')";
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, sql, &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, queued_before_ms);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return lucy_store_err(rc);
    out->refused = sqlite3_column_int(st, 0);
    out->stale = sqlite3_column_int(st, 1);
    out->failed = sqlite3_column_int(st, 2);
    lucy_row_copy(st, 3, out->error, sizeof out->error);
    return 0;
}

int lucy_outbox_doc_get(sqlite3 *db, const char *source, const char *id, int segment,
                        struct lucy_doc_row *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "SELECT contact, title, text, time_s, t0_ms, t1_ms, deleted"
                              " FROM documents WHERE source = ?1 AND id = ?2 AND segment = ?3",
                              &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, segment);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return LUCY_ENOTFOUND;
    if (rc != SQLITE_ROW)
        return lucy_store_err(rc);
    out->contact = lucy_row_dup(st, 0);
    out->title = lucy_row_dup(st, 1);
    out->text = lucy_row_dup(st, 2);
    out->time_s = sqlite3_column_int64(st, 3);
    out->t0_ms = sqlite3_column_int64(st, 4);
    out->t1_ms = sqlite3_column_int64(st, 5);
    out->deleted = sqlite3_column_int(st, 6) != 0;
    return 0;
}

void lucy_doc_row_free(struct lucy_doc_row *row)
{
    free(row->contact);
    free(row->title);
    free(row->text);
    memset(row, 0, sizeof *row);
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
    int64_t now_ms = lucy_wall_ms();
    *queued = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        sqlite3_stmt *st;
        int rc = lucy_store_stmt(db, steps[i], &st);
        if (rc)
            return rc;
        if (sqlite3_bind_parameter_count(st) > 0)
            sqlite3_bind_int64(st, 1, now_ms);
        if ((rc = lucy_row_step_done(st)))
            return rc;
        *queued = sqlite3_changes(db);
    }
    if (*queued > 0)
        lucy_store_notify(db, LUCY_OUTBOX_EVENT);
    return 0;
}

int lucy_outbox_requeue(sqlite3 *db, int64_t doc_rowid)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(
        db,
        "INSERT INTO outbox (doc_rowid, op, seq, queued_at_ms)"
        " SELECT doc_rowid, 'put', 1, ?2 FROM documents WHERE doc_rowid = ?1 AND deleted = 0"
        " ON CONFLICT (doc_rowid) DO UPDATE SET op = 'put', seq = outbox.seq + 1, failed = 0",
        &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, doc_rowid);
    sqlite3_bind_int64(st, 2, lucy_wall_ms());
    if ((rc = lucy_row_step_done(st)) == 0 && sqlite3_changes(db) > 0)
        lucy_store_notify(db, LUCY_OUTBOX_EVENT);
    return rc;
}

/* ---- consumer side --------------------------------------------------------- */

static const char take_sql[] =
    "SELECT o.doc_rowid, o.op, o.seq, o.attempts, d.source, d.id, d.segment, d.contact,"
    " d.title, d.text, d.time_s, d.t0_ms, d.t1_ms"
    " FROM outbox o LEFT JOIN documents d ON d.doc_rowid = o.doc_rowid"
    " WHERE o.failed = 0 AND o.next_attempt_at_ms <= ?1"
    " ORDER BY o.next_attempt_at_ms, o.queued_at_ms, o.doc_rowid LIMIT ?2";

/* Puts are placed from the front, deletes from the back, then the deletes
 * are moved behind the puts. */
int lucy_outbox_take(sqlite3 *db, int64_t now_ms, size_t max, struct lucy_index_item *items,
                     struct lucy_outbox_row *rows, size_t *n, size_t *n_put)
{
    *n = *n_put = 0;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, take_sql, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    size_t front = 0, back = max;
    int err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && front < back) {
        int is_delete = strcmp((const char *)sqlite3_column_text(st, 1), "delete") == 0;
        size_t i = is_delete ? --back : front++;
        struct lucy_index_item *it = &items[i];
        memset(it, 0, sizeof *it);
        it->doc_rowid = sqlite3_column_int64(st, 0);
        rows[i] = (struct lucy_outbox_row){sqlite3_column_int64(st, 2), sqlite3_column_int(st, 3),
                                           is_delete};
        struct lucy_doc *d = &it->doc;
        d->source = lucy_row_dup(st, 4);
        d->id = lucy_row_dup(st, 5);
        d->segment = sqlite3_column_int(st, 6);
        d->contact = lucy_row_dup(st, 7);
        d->title = lucy_row_dup(st, 8);
        d->text = is_delete ? NULL : lucy_row_dup(st, 9);
        d->time_s = sqlite3_column_int64(st, 10);
        d->t0_ms = sqlite3_column_int64(st, 11);
        d->t1_ms = sqlite3_column_int64(st, 12);
        if (!is_delete && !d->text && sqlite3_column_type(st, 9) != SQLITE_NULL)
            err = LUCY_ENOMEM;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        err = lucy_store_err(rc);
    /* Compact: deletes [back, max) go right after the puts. */
    *n_put = front;
    for (size_t i = back; i < max; i++) {
        items[front] = items[i];
        rows[front] = rows[i];
        front++;
    }
    *n = front;
    return err;
}

void lucy_outbox_take_free(struct lucy_index_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct lucy_doc *d = &items[i].doc;
        free((char *)d->source);
        free((char *)d->id);
        free((char *)d->contact);
        free((char *)d->title);
        free((char *)d->text);
    }
}

int lucy_outbox_settle(sqlite3 *db, const struct lucy_index_item *it,
                       const struct lucy_outbox_row *row, int64_t retry_at_ms)
{
    static const char *const sql[] = {
        "DELETE FROM outbox WHERE doc_rowid = ?1 AND seq = ?2",
        "UPDATE outbox SET failed = 1, attempts = attempts + 1, last_error = ?3"
        " WHERE doc_rowid = ?1 AND seq = ?2",
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?3, next_attempt_at_ms = ?4"
        " WHERE doc_rowid = ?1 AND seq = ?2",
    };
    enum { ACK, FAIL, RETRY };
    int k = it->rc == 0 ? ACK : it->permanent ? FAIL : RETRY;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql[k], &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, it->doc_rowid);
    sqlite3_bind_int64(st, 2, row->seq);
    if (k != ACK)
        sqlite3_bind_text(st, 3, it->error[0] ? it->error : lucy_strerror(it->rc), -1,
                          SQLITE_STATIC);
    if (k == RETRY)
        sqlite3_bind_int64(st, 4, retry_at_ms);
    if ((rc = lucy_row_step_done(st)) || k != ACK || !row->is_delete)
        return rc;
    /* The backend forgot the document: the tombstone has done its job. */
    rc = lucy_store_stmt(db,
                         "DELETE FROM documents WHERE doc_rowid = ?1 AND deleted != 0"
                         " AND NOT EXISTS (SELECT 1 FROM outbox WHERE doc_rowid = ?1)",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, it->doc_rowid);
    return lucy_row_step_done(st);
}

int lucy_outbox_all_due(sqlite3 *db)
{
    return lucy_row_exec(db, "UPDATE outbox SET next_attempt_at_ms = 0"
                             " WHERE failed = 0 AND next_attempt_at_ms > 0");
}
