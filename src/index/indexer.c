/*
 * indexer.c - the "indexer" thread: drains the outbox into the backend.
 *
 * Loop: take up to BATCH_ROWS due outbox rows (failed = 0 and
 * next_attempt_at_ms <= now, oldest first) with their documents on a read
 * connection; hand the puts to upsert_batch and the deletes to delete;
 * then, in one store write, acknowledge what was applied
 * (DELETE ... WHERE seq = the seq that was read, so a change that arrived
 * meanwhile stays queued; applied deletes also purge the tombstoned
 * document), mark permanent rejections failed with the backend's message,
 * and reschedule transient failures with exponential backoff
 * (1 s doubling to 5 min per row, BACKOFF_MAX_MS). The first batch that
 * succeeds after a whole-batch failure makes every rescheduled row due at
 * once, so a backlog drains as soon as the backend is back.
 *
 * Logging: every failure logs the same constant message; lucy_log's
 * repeat suppression turns an outage into one WARNING plus one summary per
 * minute, and the first success afterwards logs "recovered" at INFO.
 *
 * Waking: lucy_outbox_put()/_delete() call lucy_indexer_kick() (a
 * condition variable); the thread also polls every POLL_MS, which finds
 * rows written by other processes (a test tool, `lucy reindex`) and rows
 * whose backoff expired. A full batch is followed by the next at once.
 *
 * Housekeeping: after OPTIMIZE_EVERY applied rows and an empty outbox the
 * backend's optimize slot runs (FTS segment merge), never while the disk
 * is critical (merging needs scratch space); draining goes on regardless.
 *
 * ensure: called at start; while it fails it is retried with backoff
 * (1 s doubling to 30 s: a Qdrant payload index refused while its disk was
 * full is created soon after space returns) and draining continues (a
 * backend that cannot take writes yet fails them transiently, which is
 * safe). The first success after failures logs "search index backend in
 * place after retries" at INFO.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../disk/disk.h"
#include "../error.h"
#include "../log.h"
#include "../store/store.h"
#include "index.h"

#define BATCH_ROWS       256
#define POLL_MS          200
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS   (5 * 60 * 1000)
#define ENSURE_FIRST_MS  1000
#define ENSURE_MAX_MS    30000
#define OPTIMIZE_EVERY   1000

/* One process-wide wake-up channel: producers kick it from any thread. */
static pthread_mutex_t kick_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t kick_cond = PTHREAD_COND_INITIALIZER;
static int kicked;   /* guarded by kick_lock */
static int stopping; /* guarded by kick_lock */

struct lucy_indexer {
    struct lucy_index *ix;             /* backend (not owned) */
    struct lucy_disk *disk;            /* may be NULL */
    pthread_t thread;                  /* "indexer" */
    pthread_mutex_t counts_lock;       /* guards counts */
    struct lucy_indexer_counts counts; /* lifetime totals */
};

/* Whether the last batch failed as a whole: for the "recovered" line. */
static int backend_failing;

void lucy_indexer_kick(void)
{
    pthread_mutex_lock(&kick_lock);
    kicked = 1;
    pthread_cond_signal(&kick_cond);
    pthread_mutex_unlock(&kick_lock);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Backoff after `attempts` failures (1 = first): 1 s, 2 s, 4 s ... doubling
 * to BACKOFF_MAX_MS (5 min). */
static int64_t backoff_ms(int attempts)
{
    int64_t d = BACKOFF_FIRST_MS;
    for (int i = 1; i < attempts && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    return d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS;
}

/* ---- one batch ------------------------------------------------------------- */

struct row {
    int64_t seq;   /* outbox.seq that was read */
    int attempts;  /* outbox.attempts before this try */
    int is_delete; /* op = 'delete' */
};

struct batch {
    struct lucy_index_item items[BATCH_ROWS]; /* puts first, then deletes */
    struct row rows[BATCH_ROWS];              /* parallel to items */
    size_t n, n_put;                          /* rows read, of them puts */
    int64_t now_ms;                           /* when the batch was taken */
};

static const char batch_sql[] =
    "SELECT o.doc_rowid, o.op, o.seq, o.attempts, d.source, d.id, d.segment, d.contact,"
    " d.title, d.text, d.time_s, d.t0_ms, d.t1_ms"
    " FROM outbox o LEFT JOIN documents d ON d.doc_rowid = o.doc_rowid"
    " WHERE o.failed = 0 AND o.next_attempt_at_ms <= ?1"
    " ORDER BY o.next_attempt_at_ms, o.queued_at_ms, o.doc_rowid LIMIT ?2";

static const char *dup_col(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static void free_items(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct lucy_doc *d = &b->items[i].doc;
        free((char *)d->source);
        free((char *)d->id);
        free((char *)d->contact);
        free((char *)d->title);
        free((char *)d->text);
    }
    b->n = b->n_put = 0;
}

/* Reads the due rows; puts are placed from the front, deletes from the
 * back, then the deletes are moved behind the puts. */
static int read_batch(sqlite3 *db, void *arg)
{
    struct batch *b = arg;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, batch_sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_int64(st, 1, b->now_ms);
    sqlite3_bind_int(st, 2, BATCH_ROWS);
    size_t front = 0, back = BATCH_ROWS;
    int err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && front < back) {
        int is_delete = strcmp((const char *)sqlite3_column_text(st, 1), "delete") == 0;
        size_t i = is_delete ? --back : front++;
        struct lucy_index_item *it = &b->items[i];
        memset(it, 0, sizeof *it);
        it->doc_rowid = sqlite3_column_int64(st, 0);
        b->rows[i] =
            (struct row){sqlite3_column_int64(st, 2), sqlite3_column_int(st, 3), is_delete};
        struct lucy_doc *d = &it->doc;
        d->source = dup_col(st, 4);
        d->id = dup_col(st, 5);
        d->segment = sqlite3_column_int(st, 6);
        d->contact = dup_col(st, 7);
        d->title = dup_col(st, 8);
        d->text = is_delete ? NULL : dup_col(st, 9);
        d->time_s = sqlite3_column_int64(st, 10);
        d->t0_ms = sqlite3_column_int64(st, 11);
        d->t1_ms = sqlite3_column_int64(st, 12);
        if (!is_delete && !d->text && sqlite3_column_type(st, 9) != SQLITE_NULL)
            err = LUCY_ENOMEM;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        err = lucy_store_err(rc);
    sqlite3_finalize(st);
    /* Compact: deletes [back, BATCH_ROWS) go right after the puts. */
    b->n_put = front;
    for (size_t i = back; i < BATCH_ROWS; i++) {
        b->items[front] = b->items[i];
        b->rows[front] = b->rows[i];
        front++;
    }
    b->n = front;
    return err;
}

/* A put whose document row vanished (cannot happen through the API; a
 * hand-edited store) has nothing to index: it is simply acknowledged. */
static int is_orphan_put(const struct batch *b, size_t i)
{
    return !b->rows[i].is_delete && !b->items[i].doc.text;
}

struct ack_counts {
    size_t applied_put, applied_delete, failed, retried; /* outcome per row */
};

struct ack_arg {
    struct batch *b;     /* the batch with per-item rc */
    int recovered;       /* 1: make every rescheduled row due now */
    struct ack_counts c; /* filled */
};

static int ack_batch(sqlite3 *db, void *arg)
{
    struct ack_arg *a = arg;
    struct batch *b = a->b;
    static const char *const sql[] = {
        "DELETE FROM outbox WHERE doc_rowid = ?1 AND seq = ?2",
        "DELETE FROM documents WHERE doc_rowid = ?1 AND deleted != 0"
        " AND NOT EXISTS (SELECT 1 FROM outbox WHERE doc_rowid = ?1)",
        "UPDATE outbox SET failed = 1, attempts = attempts + 1, last_error = ?3"
        " WHERE doc_rowid = ?1 AND seq = ?2",
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?3, next_attempt_at_ms = ?4"
        " WHERE doc_rowid = ?1 AND seq = ?2",
    };
    enum { ACK, PURGE, FAIL, RETRY, N_SQL };
    sqlite3_stmt *st[N_SQL] = {0};
    int rc = SQLITE_OK;
    for (int i = 0; i < N_SQL && rc == SQLITE_OK; i++)
        rc = sqlite3_prepare_v2(db, sql[i], -1, &st[i], NULL);
    memset(&a->c, 0, sizeof a->c);
    for (size_t i = 0; rc == SQLITE_OK && i < b->n; i++) {
        const struct lucy_index_item *it = &b->items[i];
        const struct row *r = &b->rows[i];
        int k = it->rc == 0 ? ACK : it->permanent ? FAIL : RETRY;
        sqlite3_bind_int64(st[k], 1, it->doc_rowid);
        sqlite3_bind_int64(st[k], 2, r->seq);
        if (k != ACK)
            sqlite3_bind_text(st[k], 3, it->error[0] ? it->error : lucy_strerror(it->rc), -1,
                              SQLITE_TRANSIENT);
        if (k == RETRY)
            sqlite3_bind_int64(st[k], 4, b->now_ms + backoff_ms(r->attempts + 1));
        rc = sqlite3_step(st[k]);
        sqlite3_reset(st[k]);
        sqlite3_clear_bindings(st[k]);
        if (rc != SQLITE_DONE)
            break;
        rc = SQLITE_OK;
        if (k == ACK && r->is_delete) {
            sqlite3_bind_int64(st[PURGE], 1, it->doc_rowid);
            rc = sqlite3_step(st[PURGE]);
            sqlite3_reset(st[PURGE]);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        if (k == ACK && r->is_delete)
            a->c.applied_delete++;
        else if (k == ACK)
            a->c.applied_put++;
        else if (k == FAIL)
            a->c.failed++;
        else
            a->c.retried++;
    }
    for (int i = 0; i < N_SQL; i++)
        sqlite3_finalize(st[i]);
    if (rc == SQLITE_OK && a->recovered)
        rc = sqlite3_exec(db,
                          "UPDATE outbox SET next_attempt_at_ms = 0"
                          " WHERE failed = 0 AND next_attempt_at_ms > 0",
                          NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : lucy_store_err(rc);
}

/* Marks every item of [from, to) failed transiently with err. */
static void fail_range(struct batch *b, size_t from, size_t to, int rc, const char *err)
{
    for (size_t i = from; i < to; i++) {
        b->items[i].rc = rc;
        b->items[i].permanent = 0;
        snprintf(b->items[i].error, sizeof b->items[i].error, "%.255s", err);
    }
}

static void log_item_failures(struct lucy_index *ix, const struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct lucy_index_item *it = &b->items[i];
        if (it->rc == 0)
            continue;
        lucy_log(LUCY_LOG_WARNING,
                 it->permanent ? "search index rejected a document; marked failed"
                               : "search index could not take a document; will retry",
                 "{s:s,s:s?,s:s?,s:i,s:s,s:i}", "backend", ix->ops->name, "source", it->doc.source,
                 "id", it->doc.id, "segment", it->doc.segment, "error",
                 it->error[0] ? it->error : lucy_strerror(it->rc), "attempts",
                 b->rows[i].attempts + 1);
    }
}

/* Takes one batch and applies it. *handled = rows taken. Returns 0 or the
 * whole-batch error of the backend (rows rescheduled) or a store error. */
static int drain_batch(struct lucy_index *ix, struct batch *b, size_t *handled,
                       struct lucy_indexer_counts *counts)
{
    *handled = 0;
    b->now_ms = wall_ms();
    int rc = lucy_store_read(ix->store, read_batch, b);
    if (rc || b->n == 0) {
        free_items(b);
        return rc;
    }
    /* Orphan puts are acknowledged without a backend call: move them out
     * of the put range by marking them done after the call. */
    char err[512];
    int whole = 0, recovered = 0;
    size_t n_put = b->n_put;
    rc = lucy_index_upsert_batch(ix, b->items, n_put, err, sizeof err);
    if (rc) {
        fail_range(b, 0, n_put, rc, err);
        whole = rc;
    }
    for (size_t i = 0; i < n_put; i++)
        if (is_orphan_put(b, i))
            b->items[i].rc = 0;
    char del_err[512];
    rc = lucy_index_delete(ix, b->items + n_put, b->n - n_put, del_err, sizeof del_err);
    if (rc) {
        fail_range(b, n_put, b->n, rc, del_err);
        if (!whole)
            snprintf(err, sizeof err, "%s", del_err);
        whole = whole ? whole : rc;
    }
    if (whole) {
        /* One WARNING per outage; later failures of the same outage go to
         * DEBUG (the recovery line says when it ended). */
        int already = __atomic_exchange_n(&backend_failing, 1, __ATOMIC_RELAXED);
        lucy_log(already ? LUCY_LOG_DEBUG : LUCY_LOG_WARNING,
                 "search index backend failed; documents stay queued", "{s:s,s:s,s:i}", "backend",
                 ix->ops->name, "error", err, "rows", (int)b->n);
    } else {
        log_item_failures(ix, b);
        recovered = __atomic_exchange_n(&backend_failing, 0, __ATOMIC_RELAXED);
        if (recovered)
            lucy_log(LUCY_LOG_INFO, "search index backend recovered", "{s:s}", "backend",
                     ix->ops->name);
    }
    struct ack_arg a = {b, recovered, {0}};
    int arc = lucy_store_write(ix->store, ack_batch, &a, 0);
    if (arc)
        lucy_log(LUCY_LOG_WARNING, "cannot update the outbox; rows will be indexed again", "{s:s}",
                 "error", lucy_strerror(arc));
    else if (counts) {
        counts->indexed += a.c.applied_put;
        counts->deleted += a.c.applied_delete;
        counts->failed += a.c.failed;
        counts->retried += a.c.retried;
    }
    *handled = b->n;
    free_items(b);
    return whole ? whole : arc;
}

int lucy_indexer_drain(struct lucy_index *ix, size_t max_rows, struct lucy_indexer_counts *counts)
{
    struct batch *b = calloc(1, sizeof *b);
    if (!b)
        return LUCY_ENOMEM;
    size_t total = 0, handled;
    int rc;
    do {
        rc = drain_batch(ix, b, &handled, counts);
        total += handled;
    } while (rc == 0 && handled == BATCH_ROWS && (max_rows == 0 || total < max_rows));
    free(b);
    return rc;
}

struct requeue_arg {
    int64_t queued; /* documents queued */
};

static int requeue(sqlite3 *db, void *arg)
{
    struct requeue_arg *r = arg;
    return lucy_outbox_requeue_all(db, &r->queued);
}

int lucy_indexer_requeue_all(struct lucy_index *ix, int64_t *queued, char *err, size_t errlen)
{
    *queued = 0;
    int rc = lucy_index_clear(ix, err, errlen);
    if (rc)
        return rc;
    struct requeue_arg r = {0};
    rc = lucy_store_write(ix->store, requeue, &r, 0);
    if (rc)
        snprintf(err, errlen, "cannot queue the documents again: %s", lucy_strerror(rc));
    *queued = r.queued;
    return rc;
}

/* ---- the thread ------------------------------------------------------------ */

static void *indexer_main(void *arg)
{
    struct lucy_indexer *w = arg;
    struct batch *b = calloc(1, sizeof *b);
    int ensured = 0;
    int64_t ensure_at_ms = 0, ensure_delay_ms = ENSURE_FIRST_MS;
    uint64_t since_optimize = 0;
    if (!b) {
        lucy_log(LUCY_LOG_ERROR, "indexer cannot start: out of memory", NULL);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&kick_lock);
        int stop = stopping;
        kicked = 0;
        pthread_mutex_unlock(&kick_lock);
        if (stop)
            break;

        int64_t now = wall_ms();
        if (!ensured && now >= ensure_at_ms) {
            char err[512];
            int rc = lucy_index_ensure(w->ix, err, sizeof err);
            if (rc == 0) {
                ensured = 1;
                if (ensure_delay_ms > ENSURE_FIRST_MS)
                    lucy_log(LUCY_LOG_INFO, "search index backend in place after retries", "{s:s}",
                             "backend", w->ix->ops->name);
            } else {
                /* WARNING the first time only; the retries go to DEBUG */
                lucy_log(ensure_delay_ms > ENSURE_FIRST_MS ? LUCY_LOG_DEBUG : LUCY_LOG_WARNING,
                         "search index not ready; retrying", "{s:s,s:s,s:I}", "backend",
                         w->ix->ops->name, "error", err, "retry_in_ms",
                         (json_int_t)ensure_delay_ms);
                ensure_at_ms = now + ensure_delay_ms;
                ensure_delay_ms =
                    ensure_delay_ms * 2 < ENSURE_MAX_MS ? ensure_delay_ms * 2 : ENSURE_MAX_MS;
            }
        }

        struct lucy_indexer_counts c = {0};
        size_t handled = 0;
        int rc = drain_batch(w->ix, b, &handled, &c);
        pthread_mutex_lock(&w->counts_lock);
        w->counts.indexed += c.indexed;
        w->counts.deleted += c.deleted;
        w->counts.failed += c.failed;
        w->counts.retried += c.retried;
        pthread_mutex_unlock(&w->counts_lock);
        since_optimize += c.indexed + c.deleted;
        if (rc == 0 && handled == BATCH_ROWS)
            continue; /* more waiting: no pause */
        if (rc == 0 && handled == 0 && since_optimize >= OPTIMIZE_EVERY) {
            if (w->disk && lucy_disk_critical(w->disk)) {
                lucy_log(LUCY_LOG_DEBUG, "disk critical: index optimize postponed", NULL);
            } else {
                int orc = lucy_index_optimize(w->ix);
                if (orc)
                    lucy_log(LUCY_LOG_WARNING, "search index optimize failed", "{s:s}", "error",
                             lucy_strerror(orc));
                since_optimize = 0;
            }
        }

        pthread_mutex_lock(&kick_lock);
        if (!kicked && !stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)POLL_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&kick_cond, &kick_lock, &ts);
        }
        pthread_mutex_unlock(&kick_lock);
    }
    free(b);
    return NULL;
}

int lucy_indexer_start(struct lucy_index *ix, struct lucy_disk *disk, struct lucy_indexer **out)
{
    *out = NULL;
    struct lucy_indexer *w = calloc(1, sizeof *w);
    if (!w)
        return LUCY_ENOMEM;
    w->ix = ix;
    w->disk = disk;
    pthread_mutex_init(&w->counts_lock, NULL);
    pthread_mutex_lock(&kick_lock);
    stopping = 0;
    pthread_mutex_unlock(&kick_lock);
    int e = pthread_create(&w->thread, NULL, indexer_main, w);
    if (e) {
        pthread_mutex_destroy(&w->counts_lock);
        free(w);
        return lucy_err_from_errno(e);
    }
    pthread_setname_np(w->thread, "indexer");
    *out = w;
    return 0;
}

void lucy_indexer_stop(struct lucy_indexer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&kick_lock);
    stopping = 1;
    pthread_cond_broadcast(&kick_cond);
    pthread_mutex_unlock(&kick_lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->counts_lock);
    free(w);
}

void lucy_indexer_counts(struct lucy_indexer *w, struct lucy_indexer_counts *out)
{
    memset(out, 0, sizeof *out);
    if (!w)
        return;
    pthread_mutex_lock(&w->counts_lock);
    *out = w->counts;
    pthread_mutex_unlock(&w->counts_lock);
}
