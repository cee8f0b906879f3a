/*
 * store.c - SQLite connections, migrations, the group-commit writer and the
 * read pool.
 *
 * Writer thread ("store-writer"): waits for queued write requests, takes
 * them (up to BATCH_MAX) as one batch, runs BEGIN IMMEDIATE, then each
 * request inside its own SAVEPOINT, then COMMIT — one fsync for the batch
 * (synchronous=FULL in WAL mode syncs the WAL on commit). Each request gets
 * its own result: synchronous callers sleep on one condition variable and
 * check their own `done_flag`; asynchronous ones get their callback, on
 * this thread, after the batch (outside the lock).
 *
 * SQLite may roll back the whole transaction on SQLITE_FULL or an I/O error
 * inside a statement; the writer notices (autocommit is back on), fails the
 * earlier requests of the batch with that error and starts a new
 * transaction for the rest, so "0" always means "committed".
 *
 * A request whose caller gave up waiting (timeout) is freed by the writer.
 *
 * Two queues. A batch takes every queued asynchronous write first
 * (lucy_store_write_async: a remote client waits for its acknowledgement),
 * and lucy_store_write() requests (background work: inbox worker, indexer,
 * scanner, whose functions may run for milliseconds) only when no
 * asynchronous write is queued or the oldest background request has waited
 * NORMAL_MAX_WAIT_MS. Under a webhook burst the acknowledgements thus go
 * ahead and the background work runs in bounded slices (it still shares
 * their fsync), and never starves.
 *
 * Connections and their statement cache: conn.c. Running the migrations:
 * schema.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../clock.h"
#include "../error.h"
#include "../log.h"
#include "integrity.h"
#include "store.h"
#include "store_int.h"

#define BATCH_MAX           512
#define READ_POOL_MAX       8
#define NORMAL_MAX_WAIT_MS  50   /* a background write waits at most this long behind foreground */
#define MARKER_INTERVAL_MS  2000 /* the commit-count marker is rewritten at most this often */
#define STORE_LISTENERS_MAX 8    /* lucy_store_listen() registrations */

struct write_req {
    lucy_store_write_fn fn;    /* the work */
    void *arg;                 /* its argument */
    lucy_store_done_fn done;   /* async: called with rc after the batch; NULL = sync */
    void *done_arg;            /* its argument */
    int rc;                    /* result once done */
    int done_flag;             /* set by the writer (sync requests) */
    int abandoned;             /* caller timed out; writer frees */
    struct timespec queued_at; /* CLOCK_MONOTONIC, for NORMAL_MAX_WAIT_MS */
    struct write_req *next;    /* queue link */
};

struct queue {
    struct write_req *head, *tail; /* FIFO */
};

struct lucy_store {
    char path[1024];                   /* DATA_DIR/lucy.db */
    struct conn *writer_conn;          /* owned by the writer thread; NULL = reopen */
    int writer_broken;                 /* reopen before the next batch */
    pthread_t writer;                  /* the group-commit thread */
    pthread_mutex_t lock;              /* guards queues, stopping, done flags */
    pthread_cond_t work;               /* signalled when a request is queued */
    pthread_cond_t finished;           /* broadcast after every batch */
    struct queue urgent;               /* lucy_store_write_async() requests */
    struct queue normal;               /* lucy_store_write() requests */
    int stopping;                      /* close requested */
    pthread_mutex_t pool_lock;         /* guards the read pool */
    struct conn *pool[READ_POOL_MAX];  /* idle read connections */
    int pool_n;                        /* how many are idle */
    unsigned long long batches;        /* committed batches (stats) */
    unsigned long long writes;         /* committed writes (stats) */
    long long generation;              /* commits counted in meta (writer thread) */
    char store_id[LUCY_STORE_ID_SIZE]; /* the database's own id (integrity.h) */
    long long marker_generation;       /* the count last written to the marker (writer thread) */
    unsigned events;                   /* raised by the current write (writer thread) */
    unsigned batch_events;             /* raised by the writes kept in this batch (writer thread) */
    struct {
        unsigned events;
        lucy_store_event_fn fn;
        void *arg;
    } listeners[STORE_LISTENERS_MAX]; /* lucy_store_listen() (guarded by lock) */
    int n_listeners;
    int64_t marker_mono_ms;   /* when the marker was last written (writer thread) */
    int damaged;              /* a corrupt page was met (guarded by lock) */
    int64_t checked_at_ms;    /* last finished quick_check, wall ms (atomic) */
    char damaged_detail[300]; /* SQLite's words for it (guarded by lock) */
};

int lucy_store_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_FULL:
        return LUCY_ENOSPC;
    case SQLITE_CONSTRAINT:
        return LUCY_ECONFLICT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return LUCY_ETIMEDOUT;
    case SQLITE_NOMEM:
        return LUCY_ENOMEM;
    case SQLITE_NOTFOUND:
        return LUCY_ENOTFOUND;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return LUCY_EDBCORRUPT;
    default: /* SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN, ... */
        return LUCY_EIO;
    }
}

/* ---- the writer ------------------------------------------------------------ */

/* Marks every request of the batch that has not failed yet with rc. */
static void fail_pending(struct write_req *batch, struct write_req *until, int rc)
{
    for (struct write_req *r = batch; r && r != until; r = r->next)
        if (r->rc == 0)
            r->rc = rc;
}

static int begin(struct lucy_store *s)
{
    int rc = lucy_store_conn_run(s->writer_conn, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
        s->writer_broken = 1;
    return rc;
}

/* Calls the listeners of the events this batch committed (writer thread). */
static void notify_listeners(struct lucy_store *s)
{
    unsigned events = s->batch_events;
    s->batch_events = 0;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n_listeners; i++)
        if (s->listeners[i].events & events)
            s->listeners[i].fn(s->listeners[i].arg, s->listeners[i].events & events);
    pthread_mutex_unlock(&s->lock);
}

int lucy_store_listen(struct lucy_store *s, unsigned events, lucy_store_event_fn fn, void *arg)
{
    pthread_mutex_lock(&s->lock);
    int rc = LUCY_ENOMEM;
    if (s->n_listeners < STORE_LISTENERS_MAX) {
        s->listeners[s->n_listeners].events = events;
        s->listeners[s->n_listeners].fn = fn;
        s->listeners[s->n_listeners].arg = arg;
        s->n_listeners++;
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void lucy_store_unlisten(struct lucy_store *s, lucy_store_event_fn fn, void *arg)
{
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n_listeners; i++)
        if (s->listeners[i].fn == fn && s->listeners[i].arg == arg) {
            s->listeners[i] = s->listeners[--s->n_listeners];
            break;
        }
    pthread_mutex_unlock(&s->lock);
}

void lucy_store_notify(sqlite3 *db, unsigned events)
{
    if (lucy_store_current_conn && lucy_store_current_conn->db == db &&
        lucy_store_current_conn->events)
        *lucy_store_current_conn->events |= events;
}

/* Writes the commit count to the marker if it moved (writer thread). */
static void marker_flush(struct lucy_store *s)
{
    if (s->generation > s->marker_generation) {
        lucy_store_marker_write(s->path, s->generation, s->store_id);
        s->marker_generation = s->generation;
    }
    s->marker_mono_ms = lucy_mono_ms();
}

/* Runs one batch; returns how many of its writes were committed. */
static int run_batch(struct lucy_store *s, struct write_req *batch, int n)
{
    if (s->writer_broken || !s->writer_conn) {
        lucy_store_conn_close(s->writer_conn); /* its statements belong to the old connection */
        s->writer_conn = NULL;
        int rc = lucy_store_conn_open(s->path, 0, &s->writer_conn);
        if (rc != SQLITE_OK) {
            fail_pending(batch, NULL, lucy_store_err(rc));
            return 0;
        }
        s->writer_broken = 0;
    }
    struct conn *c = s->writer_conn;
    sqlite3 *db = c->db;
    int rc = begin(s);
    if (rc != SQLITE_OK) {
        fail_pending(batch, NULL, lucy_store_err(rc));
        return 0;
    }
    lucy_store_current_conn = c;
    struct write_req *txn_start = batch; /* first request of the open transaction */
    for (struct write_req *r = batch; r; r = r->next) {
        rc = lucy_store_conn_run(c, "SAVEPOINT w");
        if (rc != SQLITE_OK) {
            r->rc = lucy_store_err(rc);
            continue;
        }
        s->events = 0;
        c->events = &s->events;
        r->rc = r->fn(db, r->arg);
        c->events = NULL;
        lucy_store_conn_reset(c);
        if (sqlite3_get_autocommit(db)) {
            /* SQLite rolled the whole transaction back: nothing since
             * txn_start is on disk. Fail those and start again. */
            int why = r->rc ? r->rc : LUCY_EIO;
            fail_pending(txn_start, r->next, why);
            s->batch_events = 0;
            if (begin(s) != SQLITE_OK) {
                fail_pending(r->next, NULL, why);
                lucy_store_current_conn = NULL;
                return 0;
            }
            txn_start = r->next;
            continue;
        }
        if (r->rc != 0)
            lucy_store_conn_run(c, "ROLLBACK TO w");
        else
            s->batch_events |= s->events; /* a rolled-back write raised nothing */
        lucy_store_conn_run(c, "RELEASE w");
    }
    long long generation = 0;
    rc = lucy_store_generation_bump(db, &generation);
    lucy_store_current_conn = NULL;
    if (rc != SQLITE_OK && sqlite3_get_autocommit(db)) { /* the bump's failure rolled back all */
        fail_pending(txn_start, NULL, lucy_store_err(rc));
        return 0;
    }
    if (rc != SQLITE_OK)
        generation = 0; /* not counted: the marker stays a lower bound */
    rc = lucy_store_conn_run(c, "COMMIT");
    if (rc != SQLITE_OK) {
        int why = lucy_store_err(rc);
        /* keep COMMIT's own reason: the ROLLBACK below replaces errmsg */
        char reason[200];
        snprintf(reason, sizeof reason, "%.150s (%s)", sqlite3_errmsg(db), lucy_strerror(why));
        fail_pending(txn_start, NULL, why);
        s->batch_events = 0;
        lucy_store_conn_run(c, "ROLLBACK");
        s->writer_broken = why == LUCY_EIO;
        lucy_log(LUCY_LOG_ERROR, "store commit failed", "{s:s,s:i}", "error", reason, "writes", n);
        return 0;
    }
    int committed = 0;
    for (struct write_req *r = txn_start; r; r = r->next)
        committed += r->rc == 0;
    if (generation > 0) {
        s->generation = generation;
        if (lucy_mono_ms() - s->marker_mono_ms >= MARKER_INTERVAL_MS)
            marker_flush(s);
    }
    if (s->batch_events)
        notify_listeners(s);
    return committed;
}

static int64_t ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* Moves up to max requests from the head of q to *tail (advanced);
 * returns how many. Under lock. */
static int take(struct queue *q, int max, struct write_req ***tail)
{
    int n = 0;
    for (; q->head && n < max; n++) {
        struct write_req *r = q->head;
        q->head = r->next;
        r->next = NULL;
        **tail = r;
        *tail = &r->next;
    }
    if (!q->head)
        q->tail = NULL;
    return n;
}

/* The next batch (see the file comment): the foreground writes, then the
 * background ones when there is no foreground write or the oldest
 * background write has waited NORMAL_MAX_WAIT_MS. Under lock. */
static struct write_req *next_batch(struct lucy_store *s, int *n)
{
    struct write_req *batch = NULL, **tail = &batch;
    *n = take(&s->urgent, BATCH_MAX, &tail);
    if (*n == 0 || (s->normal.head && ms_since(&s->normal.head->queued_at) >= NORMAL_MAX_WAIT_MS))
        *n += take(&s->normal, BATCH_MAX - *n, &tail);
    return batch;
}

static void *writer_main(void *arg)
{
    struct lucy_store *s = arg;
    pthread_setname_np(pthread_self(), "store-writer");
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->urgent.head && !s->normal.head && !s->stopping) {
            if (s->generation <= s->marker_generation) {
                pthread_cond_wait(&s->work, &s->lock);
                continue;
            }
            /* idle with commits the marker does not know yet: write it when due */
            struct timespec due = lucy_deadline_ms(
                CLOCK_MONOTONIC, s->marker_mono_ms + MARKER_INTERVAL_MS - lucy_mono_ms());
            if (pthread_cond_timedwait(&s->work, &s->lock, &due) == ETIMEDOUT) {
                pthread_mutex_unlock(&s->lock);
                marker_flush(s);
                pthread_mutex_lock(&s->lock);
            }
        }
        if (!s->urgent.head && !s->normal.head)
            break;
        int n;
        struct write_req *batch = next_batch(s, &n);
        pthread_mutex_unlock(&s->lock);

        int committed = run_batch(s, batch, n);
        for (struct write_req *r = batch; r; r = r->next)
            if (r->rc == LUCY_EDBCORRUPT) {
                lucy_store_mark_damaged(s, "a write met a corrupt page");
                break;
            }

        pthread_mutex_lock(&s->lock);
        s->batches += committed > 0;
        s->writes += (unsigned long long)committed;
        struct write_req *async = NULL, **async_tail = &async; /* completed outside the lock */
        for (struct write_req *r = batch, *next; r; r = next) {
            next = r->next;
            if (r->done) {
                r->next = NULL;
                *async_tail = r;
                async_tail = &r->next;
                continue;
            }
            r->done_flag = 1;
            if (r->abandoned)
                free(r);
        }
        pthread_cond_broadcast(&s->finished);
        pthread_mutex_unlock(&s->lock);
        for (struct write_req *r = async, *next; r; r = next) {
            next = r->next;
            r->done(r->done_arg, r->rc);
            free(r);
        }
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int lucy_store_open(const char *data_dir, struct lucy_store **out, char *err, size_t errlen)
{
    struct lucy_store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return LUCY_ENOMEM;
    }
    snprintf(s->path, sizeof s->path, "%s/lucy.db", data_dir);
    int rc = lucy_store_conn_open(s->path, 0, &s->writer_conn);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open store %s: %s", s->path, sqlite3_errstr(rc));
        free(s);
        return lucy_store_err(rc);
    }
    rc = lucy_store_migrate(s->writer_conn->db, err, errlen);
    if (rc == 0)
        rc = lucy_store_marker_verify(s->writer_conn->db, s->path, &s->generation, s->store_id, err,
                                      errlen);
    if (rc != 0) {
        lucy_store_conn_close(s->writer_conn);
        free(s);
        return rc;
    }
    lucy_store_marker_write(s->path, s->generation, s->store_id);
    s->marker_generation = s->generation;
    s->marker_mono_ms = lucy_mono_ms();
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->work, &ca);
    pthread_cond_init(&s->finished, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        snprintf(err, errlen, "cannot start the store writer thread");
        lucy_store_conn_close(s->writer_conn);
        free(s);
        return LUCY_ENOMEM;
    }
    *out = s;
    return 0;
}

void lucy_store_close(struct lucy_store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->writer, NULL);
    marker_flush(s);
    lucy_store_conn_close(s->writer_conn);
    for (int i = 0; i < s->pool_n; i++)
        lucy_store_conn_close(s->pool[i]);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->finished);
    free(s);
}

/* Appends r to q and wakes the writer; LUCY_ESHUTDOWN once closing. Under
 * lock. */
static int enqueue(struct lucy_store *s, struct queue *q, struct write_req *r)
{
    if (s->stopping)
        return LUCY_ESHUTDOWN;
    clock_gettime(CLOCK_MONOTONIC, &r->queued_at);
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    pthread_cond_signal(&s->work);
    return 0;
}

int lucy_store_write(struct lucy_store *s, lucy_store_write_fn fn, void *arg, int timeout_ms)
{
    struct write_req *r = calloc(1, sizeof *r);
    if (!r)
        return LUCY_ENOMEM;
    r->fn = fn;
    r->arg = arg;
    struct timespec deadline = lucy_deadline_ms(CLOCK_MONOTONIC, timeout_ms);

    pthread_mutex_lock(&s->lock);
    int rc = enqueue(s, &s->normal, r);
    if (rc) {
        pthread_mutex_unlock(&s->lock);
        free(r);
        return rc;
    }
    while (!r->done_flag) {
        if (timeout_ms <= 0) {
            pthread_cond_wait(&s->finished, &s->lock);
        } else if (pthread_cond_timedwait(&s->finished, &s->lock, &deadline) == ETIMEDOUT &&
                   !r->done_flag) {
            r->abandoned = 1; /* the writer frees it */
            pthread_mutex_unlock(&s->lock);
            return LUCY_ETIMEDOUT;
        }
    }
    rc = r->rc;
    pthread_mutex_unlock(&s->lock);
    free(r);
    return rc;
}

int lucy_store_write_async(struct lucy_store *s, lucy_store_write_fn fn, void *arg,
                           lucy_store_done_fn done, void *done_arg)
{
    struct write_req *r = calloc(1, sizeof *r);
    if (!r)
        return LUCY_ENOMEM;
    *r = (struct write_req){.fn = fn, .arg = arg, .done = done, .done_arg = done_arg};
    pthread_mutex_lock(&s->lock);
    int rc = enqueue(s, &s->urgent, r);
    pthread_mutex_unlock(&s->lock);
    if (rc)
        free(r);
    return rc;
}

int lucy_store_read(struct lucy_store *s, lucy_store_read_fn fn, void *arg)
{
    struct conn *c = NULL;
    pthread_mutex_lock(&s->pool_lock);
    if (s->pool_n > 0)
        c = s->pool[--s->pool_n];
    pthread_mutex_unlock(&s->pool_lock);
    if (!c && lucy_store_conn_open(s->path, 1, &c) != SQLITE_OK)
        return LUCY_EIO;
    struct conn *outer = lucy_store_current_conn; /* a read inside a write function */
    lucy_store_current_conn = c;
    int rc = fn(c->db, arg);
    lucy_store_conn_reset(c);
    lucy_store_current_conn = outer;
    pthread_mutex_lock(&s->pool_lock);
    if (s->pool_n < READ_POOL_MAX) {
        s->pool[s->pool_n++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&s->pool_lock);
    lucy_store_conn_close(c);
    if (rc == LUCY_EDBCORRUPT)
        lucy_store_mark_damaged(s, "a read met a corrupt page");
    return rc;
}

void lucy_store_mark_damaged(struct lucy_store *s, const char *detail)
{
    pthread_mutex_lock(&s->lock);
    if (!s->damaged || strncmp(s->damaged_detail, "a ", 2) == 0) /* keep the most specific */
        snprintf(s->damaged_detail, sizeof s->damaged_detail, "%s", detail);
    if (!s->damaged)
        lucy_log(LUCY_LOG_ERROR, "the store is damaged; restore the last backup", "{s:s,s:s,s:s}",
                 "path", s->path, "detail", detail, "see",
                 "docs/operations.md, \"A damaged store\"");
    s->damaged = 1;
    pthread_mutex_unlock(&s->lock);
}

void lucy_store_checked(struct lucy_store *s)
{
    __atomic_store_n(&s->checked_at_ms, lucy_wall_ms(), __ATOMIC_RELAXED);
}

int64_t lucy_store_checked_at_ms(struct lucy_store *s)
{
    return __atomic_load_n(&s->checked_at_ms, __ATOMIC_RELAXED);
}

int lucy_store_damaged(struct lucy_store *s, char *detail, size_t len)
{
    pthread_mutex_lock(&s->lock);
    int damaged = s->damaged;
    if (len)
        snprintf(detail, len, "%s", damaged ? s->damaged_detail : "");
    pthread_mutex_unlock(&s->lock);
    return damaged;
}

const char *lucy_store_path(struct lucy_store *s)
{
    return s->path;
}

void lucy_store_stats(struct lucy_store *s, unsigned long long *batches, unsigned long long *writes)
{
    pthread_mutex_lock(&s->lock);
    *batches = s->batches;
    *writes = s->writes;
    pthread_mutex_unlock(&s->lock);
}
