/*
 * store.c - SQLite connections, migrations, the group-commit writer and the
 * read pool.
 *
 * Writer thread ("store-writer"): waits for queued write requests, takes all
 * of them (up to BATCH_MAX) as one batch, runs BEGIN IMMEDIATE, then each
 * request inside its own SAVEPOINT, then COMMIT — one fsync for the batch
 * (synchronous=FULL in WAL mode syncs the WAL on commit). Each request gets
 * its own result; waiters sleep on one condition variable and check their
 * own `done` flag.
 *
 * SQLite may roll back the whole transaction on SQLITE_FULL or an I/O error
 * inside a statement; the writer notices (autocommit is back on), fails the
 * earlier requests of the batch with that error and starts a new
 * transaction for the rest, so "0" always means "committed".
 *
 * A request whose caller gave up waiting (timeout) is freed by the writer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../error.h"
#include "../log.h"
#include "store.h"

#define BATCH_MAX     512
#define READ_POOL_MAX 8

struct write_req {
    lucy_store_write_fn fn; /* the work */
    void *arg;              /* its argument */
    int rc;                 /* result once done */
    int done;               /* set by the writer */
    int abandoned;          /* caller timed out; writer frees */
    struct write_req *next; /* queue link */
};

struct lucy_store {
    char path[1024];               /* DATA_DIR/lucy.db */
    sqlite3 *writer_db;            /* owned by the writer thread */
    int writer_broken;             /* reopen before the next batch */
    pthread_t writer;              /* the group-commit thread */
    pthread_mutex_t lock;          /* guards queue, stopping, done flags */
    pthread_cond_t work;           /* signalled when a request is queued */
    pthread_cond_t finished;       /* broadcast after every batch */
    struct write_req *head, *tail; /* FIFO of pending requests */
    int stopping;                  /* close requested */
    pthread_mutex_t pool_lock;     /* guards the read pool */
    sqlite3 *pool[READ_POOL_MAX];  /* idle read connections */
    int pool_n;                    /* how many are idle */
    unsigned long long batches;    /* committed batches (stats) */
    unsigned long long writes;     /* committed writes (stats) */
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
        return LUCY_ECORRUPT;
    default: /* SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN, ... */
        return LUCY_EIO;
    }
}

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int open_conn(const char *path, int readonly, sqlite3 **out)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, 5000);
    if (rc == SQLITE_OK && !readonly)
        rc = exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                      "PRAGMA foreign_keys=ON;");
    if (rc == SQLITE_OK && readonly)
        rc = exec(db, "PRAGMA query_only=1; PRAGMA foreign_keys=ON;");
    if (rc != SQLITE_OK) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return SQLITE_OK;
}

static int migrate(sqlite3 *db, char *err, size_t errlen)
{
    int rc = exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                      "name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)");
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot create schema_version: %s", sqlite3_errmsg(db));
        return lucy_store_err(rc);
    }
    int current = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT coalesce(max(version),0) FROM schema_version", -1, &st,
                           NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            current = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    for (int i = 0; i < lucy_migrations_count; i++) {
        const struct lucy_migration *m = &lucy_migrations[i];
        if (m->version <= current)
            continue;
        char record[256];
        snprintf(record, sizeof record,
                 "INSERT INTO schema_version VALUES (%d, '%s', "
                 "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))",
                 m->version, m->name);
        rc = exec(db, "BEGIN IMMEDIATE");
        if (rc == SQLITE_OK)
            rc = exec(db, m->sql);
        if (rc == SQLITE_OK)
            rc = exec(db, record);
        if (rc == SQLITE_OK)
            rc = exec(db, "COMMIT");
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "migration %d (%s) failed: %s", m->version, m->name,
                     sqlite3_errmsg(db));
            exec(db, "ROLLBACK");
            return lucy_store_err(rc);
        }
        lucy_log(LUCY_LOG_INFO, "store migrated", "{s:i,s:s}", "version", m->version, "name",
                 m->name);
    }
    return 0;
}

/* Marks every request of the batch that has not failed yet with rc. */
static void fail_pending(struct write_req *batch, struct write_req *until, int rc)
{
    for (struct write_req *r = batch; r && r != until; r = r->next)
        if (r->rc == 0)
            r->rc = rc;
}

static int begin(struct lucy_store *s)
{
    int rc = exec(s->writer_db, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
        s->writer_broken = 1;
    return rc;
}

/* Runs one batch; returns how many of its writes were committed. */
static int run_batch(struct lucy_store *s, struct write_req *batch, int n)
{
    if (s->writer_broken || !s->writer_db) {
        sqlite3_close(s->writer_db);
        s->writer_db = NULL;
        int rc = open_conn(s->path, 0, &s->writer_db);
        if (rc != SQLITE_OK) {
            fail_pending(batch, NULL, lucy_store_err(rc));
            return 0;
        }
        s->writer_broken = 0;
    }
    sqlite3 *db = s->writer_db;
    int rc = begin(s);
    if (rc != SQLITE_OK) {
        fail_pending(batch, NULL, lucy_store_err(rc));
        return 0;
    }
    struct write_req *txn_start = batch; /* first request of the open transaction */
    for (struct write_req *r = batch; r; r = r->next) {
        rc = exec(db, "SAVEPOINT w");
        if (rc != SQLITE_OK) {
            r->rc = lucy_store_err(rc);
            continue;
        }
        r->rc = r->fn(db, r->arg);
        if (sqlite3_get_autocommit(db)) {
            /* SQLite rolled the whole transaction back: nothing since
             * txn_start is on disk. Fail those and start again. */
            int why = r->rc ? r->rc : LUCY_EIO;
            fail_pending(txn_start, r->next, why);
            if (begin(s) != SQLITE_OK) {
                fail_pending(r->next, NULL, why);
                return 0;
            }
            txn_start = r->next;
            continue;
        }
        if (r->rc != 0)
            exec(db, "ROLLBACK TO w");
        exec(db, "RELEASE w");
    }
    rc = exec(db, "COMMIT");
    if (rc != SQLITE_OK) {
        int why = lucy_store_err(rc);
        fail_pending(txn_start, NULL, why);
        exec(db, "ROLLBACK");
        s->writer_broken = why == LUCY_EIO;
        lucy_log(LUCY_LOG_ERROR, "store commit failed", "{s:s,s:i}", "error", sqlite3_errmsg(db),
                 "writes", n);
        return 0;
    }
    int committed = 0;
    for (struct write_req *r = txn_start; r; r = r->next)
        committed += r->rc == 0;
    return committed;
}

static void *writer_main(void *arg)
{
    struct lucy_store *s = arg;
    pthread_setname_np(pthread_self(), "store-writer");
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->work, &s->lock);
        if (!s->head)
            break;
        struct write_req *batch = s->head, *last = batch;
        int n = 1;
        while (last->next && n < BATCH_MAX)
            last = last->next, n++;
        s->head = last->next;
        if (!s->head)
            s->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&s->lock);

        int committed = run_batch(s, batch, n);

        pthread_mutex_lock(&s->lock);
        s->batches += committed > 0;
        s->writes += (unsigned long long)committed;
        for (struct write_req *r = batch, *next; r; r = next) {
            next = r->next;
            r->done = 1;
            if (r->abandoned)
                free(r);
        }
        pthread_cond_broadcast(&s->finished);
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
    int rc = open_conn(s->path, 0, &s->writer_db);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open store %s: %s", s->path, sqlite3_errstr(rc));
        free(s);
        return lucy_store_err(rc);
    }
    rc = migrate(s->writer_db, err, errlen);
    if (rc != 0) {
        sqlite3_close(s->writer_db);
        free(s);
        return rc;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->finished, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        snprintf(err, errlen, "cannot start the store writer thread");
        sqlite3_close(s->writer_db);
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
    sqlite3_close(s->writer_db);
    for (int i = 0; i < s->pool_n; i++)
        sqlite3_close(s->pool[i]);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->finished);
    free(s);
}

int lucy_store_write(struct lucy_store *s, lucy_store_write_fn fn, void *arg, int timeout_ms)
{
    struct write_req *r = calloc(1, sizeof *r);
    if (!r)
        return LUCY_ENOMEM;
    r->fn = fn;
    r->arg = arg;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms > 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L)
            deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->lock);
        free(r);
        return LUCY_ESHUTDOWN;
    }
    if (s->tail)
        s->tail->next = r;
    else
        s->head = r;
    s->tail = r;
    pthread_cond_signal(&s->work);
    while (!r->done) {
        if (timeout_ms <= 0) {
            pthread_cond_wait(&s->finished, &s->lock);
        } else if (pthread_cond_timedwait(&s->finished, &s->lock, &deadline) == ETIMEDOUT &&
                   !r->done) {
            r->abandoned = 1; /* the writer frees it */
            pthread_mutex_unlock(&s->lock);
            return LUCY_ETIMEDOUT;
        }
    }
    int rc = r->rc;
    pthread_mutex_unlock(&s->lock);
    free(r);
    return rc;
}

int lucy_store_read(struct lucy_store *s, lucy_store_read_fn fn, void *arg)
{
    sqlite3 *db = NULL;
    pthread_mutex_lock(&s->pool_lock);
    if (s->pool_n > 0)
        db = s->pool[--s->pool_n];
    pthread_mutex_unlock(&s->pool_lock);
    if (!db && open_conn(s->path, 1, &db) != SQLITE_OK)
        return LUCY_EIO;
    int rc = fn(db, arg);
    pthread_mutex_lock(&s->pool_lock);
    if (s->pool_n < READ_POOL_MAX) {
        s->pool[s->pool_n++] = db;
        db = NULL;
    }
    pthread_mutex_unlock(&s->pool_lock);
    sqlite3_close(db);
    return rc;
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
