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
 * Waking: the running thread listens for the store's LUCY_OUTBOX_EVENT
 * (lucy_store_listen), which every lucy_outbox_put()/_delete() in this
 * process raises, so a committed row kicks it; it also polls every POLL_MS, which finds rows
 * written by other processes (a test tool, `lucy reindex`) and rows whose backoff expired. A full
 * batch is followed by the next at once.
 *
 * Dependencies are one-way: the indexer reads and acknowledges the outbox
 * (outbox.c owns its tables' producer side) and writes through the
 * lucy_index_*() wrappers (index.c); neither calls back into this file.
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../clock.h"
#include "../disk/disk.h"
#include "../error.h"
#include "../log.h"
#include "../store/row.h"
#include "../store/store.h"
#include "../thread.h"
#include "index.h"

#define BATCH_ROWS       256
#define POLL_MS          200
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS   (5 * 60 * 1000)
#define ENSURE_FIRST_MS  1000
#define ENSURE_MAX_MS    30000
#define OPTIMIZE_EVERY   1000

struct lucy_indexer {
    struct lucy_thread thread;         /* "indexer", once started */
    struct lucy_index *ix;             /* backend (not owned) */
    struct lucy_disk *disk;            /* may be NULL */
    int backend_failing;               /* the last batch failed as a whole (atomic) */
    int listening;                     /* registered for LUCY_OUTBOX_EVENT */
    pthread_mutex_t counts_lock;       /* guards counts */
    struct lucy_indexer_counts counts; /* lifetime totals */
};

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

struct batch {
    struct lucy_index_item items[BATCH_ROWS]; /* puts first, then deletes */
    struct lucy_outbox_row rows[BATCH_ROWS];  /* parallel to items */
    size_t n, n_put;                          /* rows read, of them puts */
    int64_t now_ms;                           /* when the batch was taken */
};

static void free_items(struct batch *b)
{
    lucy_outbox_take_free(b->items, b->n);
    b->n = b->n_put = 0;
}

static int read_batch(sqlite3 *db, void *arg)
{
    struct batch *b = arg;
    return lucy_outbox_take(db, b->now_ms, BATCH_ROWS, b->items, b->rows, &b->n, &b->n_put);
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
    memset(&a->c, 0, sizeof a->c);
    for (size_t i = 0; i < b->n; i++) {
        const struct lucy_index_item *it = &b->items[i];
        const struct lucy_outbox_row *r = &b->rows[i];
        int rc = lucy_outbox_settle(db, it, r, b->now_ms + backoff_ms(r->attempts + 1));
        if (rc)
            return rc;
        size_t *count = it->rc == 0     ? (r->is_delete ? &a->c.applied_delete : &a->c.applied_put)
                        : it->permanent ? &a->c.failed
                                        : &a->c.retried;
        (*count)++;
    }
    return a->recovered ? lucy_outbox_all_due(db) : 0;
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
                 "{s:s,s:s?,s:s?,s:i,s:s,s:i}", "backend", lucy_index_name(ix), "source",
                 it->doc.source, "id", it->doc.id, "segment", it->doc.segment, "error",
                 it->error[0] ? it->error : lucy_strerror(it->rc), "attempts",
                 b->rows[i].attempts + 1);
    }
}

/* Takes one batch and applies it. *handled = rows taken. Returns 0 or the
 * whole-batch error of the backend (rows rescheduled) or a store error. */
static int drain_batch(struct lucy_indexer *w, struct batch *b, size_t *handled,
                       struct lucy_indexer_counts *counts)
{
    struct lucy_index *ix = w->ix;
    *handled = 0;
    b->now_ms = lucy_wall_ms();
    int rc = lucy_store_read(lucy_index_store(ix), read_batch, b);
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
        int already = __atomic_exchange_n(&w->backend_failing, 1, __ATOMIC_RELAXED);
        lucy_log(already ? LUCY_LOG_DEBUG : LUCY_LOG_WARNING,
                 "search index backend failed; documents stay queued", "{s:s,s:s,s:i}", "backend",
                 lucy_index_name(ix), "error", err, "rows", (int)b->n);
    } else {
        log_item_failures(ix, b);
        recovered = __atomic_exchange_n(&w->backend_failing, 0, __ATOMIC_RELAXED);
        if (recovered)
            lucy_log(LUCY_LOG_INFO, "search index backend recovered", "{s:s}", "backend",
                     lucy_index_name(ix));
    }
    struct ack_arg a = {b, recovered, {0}};
    int arc = lucy_store_write(lucy_index_store(ix), ack_batch, &a, 0);
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

int lucy_indexer_drain(struct lucy_indexer *w, size_t max_rows, struct lucy_indexer_counts *counts)
{
    struct batch *b = calloc(1, sizeof *b);
    if (!b)
        return LUCY_ENOMEM;
    size_t total = 0, handled;
    int rc;
    do {
        rc = drain_batch(w, b, &handled, counts);
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
    rc = lucy_store_write(lucy_index_store(ix), requeue, &r, 0);
    if (rc)
        snprintf(err, errlen, "cannot queue the documents again: %s", lucy_strerror(rc));
    *queued = r.queued;
    return rc;
}

/* ---- the thread ------------------------------------------------------------ */

/* Runs ensure when it is due; on failure schedules the next try (1 s
 * doubling to ENSURE_MAX_MS, monotonic). Returns 1 once it succeeded. */
static int try_ensure(struct lucy_indexer *w, int64_t *at_ms, int64_t *delay_ms)
{
    if (lucy_mono_ms() < *at_ms)
        return 0;
    char err[512];
    if (lucy_index_ensure(w->ix, err, sizeof err) == 0) {
        if (*delay_ms > ENSURE_FIRST_MS)
            lucy_log(LUCY_LOG_INFO, "search index backend in place after retries", "{s:s}",
                     "backend", lucy_index_name(w->ix));
        return 1;
    }
    /* WARNING the first time only; the retries go to DEBUG */
    lucy_log(*delay_ms > ENSURE_FIRST_MS ? LUCY_LOG_DEBUG : LUCY_LOG_WARNING,
             "search index not ready; retrying", "{s:s,s:s,s:I}", "backend", lucy_index_name(w->ix),
             "error", err, "retry_in_ms", (json_int_t)*delay_ms);
    *at_ms = lucy_mono_ms() + *delay_ms;
    *delay_ms = *delay_ms * 2 < ENSURE_MAX_MS ? *delay_ms * 2 : ENSURE_MAX_MS;
    return 0;
}

/* Merges the FTS segments after OPTIMIZE_EVERY applied rows, unless the
 * disk is critical (merging needs scratch space). */
static void maybe_optimize(struct lucy_indexer *w, uint64_t *since_optimize)
{
    if (*since_optimize < OPTIMIZE_EVERY)
        return;
    if (w->disk && lucy_disk_critical(w->disk)) {
        lucy_log(LUCY_LOG_DEBUG, "disk critical: index optimize postponed", NULL);
        return;
    }
    int rc = lucy_index_optimize(w->ix);
    if (rc)
        lucy_log(LUCY_LOG_WARNING, "search index optimize failed", "{s:s}", "error",
                 lucy_strerror(rc));
    *since_optimize = 0;
}

static void indexer_main(void *arg)
{
    struct lucy_indexer *w = arg;
    struct batch *b = calloc(1, sizeof *b);
    int ensured = 0;
    int64_t ensure_at_ms = 0, ensure_delay_ms = ENSURE_FIRST_MS;
    uint64_t since_optimize = 0;
    if (!b) {
        lucy_log(LUCY_LOG_ERROR, "indexer cannot start: out of memory", NULL);
        return;
    }
    for (;;) {
        if (!ensured)
            ensured = try_ensure(w, &ensure_at_ms, &ensure_delay_ms);
        struct lucy_indexer_counts c = {0};
        size_t handled = 0;
        int rc = drain_batch(w, b, &handled, &c);
        pthread_mutex_lock(&w->counts_lock);
        w->counts.indexed += c.indexed;
        w->counts.deleted += c.deleted;
        w->counts.failed += c.failed;
        w->counts.retried += c.retried;
        pthread_mutex_unlock(&w->counts_lock);
        since_optimize += c.indexed + c.deleted;
        int more = rc == 0 && handled == BATCH_ROWS; /* more waiting: no pause */
        if (rc == 0 && handled == 0)
            maybe_optimize(w, &since_optimize);
        if (more ? lucy_thread_stopping(&w->thread) : lucy_thread_nap(&w->thread, POLL_MS))
            break;
    }
    free(b);
}

/* A write queued outbox rows and was committed (store writer thread). */
static void on_outbox_event(void *arg, unsigned events)
{
    (void)events;
    lucy_thread_kick(arg);
}

int lucy_indexer_new(struct lucy_index *ix, struct lucy_disk *disk, struct lucy_indexer **out)
{
    *out = NULL;
    struct lucy_indexer *w = calloc(1, sizeof *w);
    if (!w)
        return LUCY_ENOMEM;
    w->ix = ix;
    w->disk = disk;
    w->thread = (struct lucy_thread){.name = "indexer", .main = indexer_main, .arg = w};
    pthread_mutex_init(&w->counts_lock, NULL);
    *out = w;
    return 0;
}

int lucy_indexer_start(struct lucy_indexer *w)
{
    int rc = lucy_thread_start(&w->thread);
    if (rc == 0)
        w->listening = lucy_store_listen(lucy_index_store(w->ix), LUCY_OUTBOX_EVENT,
                                         on_outbox_event, &w->thread) == 0;
    return rc;
}

void lucy_indexer_free(struct lucy_indexer *w)
{
    if (!w)
        return;
    if (w->listening) /* first: no kick may reach the stopped thread */
        lucy_store_unlisten(lucy_index_store(w->ix), on_outbox_event, &w->thread);
    lucy_thread_stop(&w->thread);
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
