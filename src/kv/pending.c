/*
 * pending.c - writes that must not be lost while a shared kv refuses them
 * (contact aliases): the local store's kv_pending table and its replay.
 *
 * One row per key (newest value wins, seq bumps on every change). While
 * any row is pending, new lucy_kv_set_or_queue() writes queue behind it so
 * that an old value can never overwrite a newer one. lucy_kv_replay()
 * applies rows oldest first and deletes each applied row only if its seq
 * is unchanged. This file alone writes kv_pending.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../error.h"
#include "../log.h"
#include "../store/row.h"
#include "../store/store.h"
#include "kv.h"
#include "kv_int.h"

#define REPLAY_BATCH_MAX 256

static int count_pending(sqlite3 *db, void *arg)
{
    long long *out = arg;
    sqlite3_stmt *st;
    int rc =
        lucy_store_stmt(db, "SELECT count(*), coalesce(min(queued_at_ms),0) FROM kv_pending", &st);
    if (rc)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW) {
        out[0] = sqlite3_column_int64(st, 0);
        out[1] = sqlite3_column_int64(st, 1);
    }
    return 0;
}

int kv_pending_count(struct lucy_store *store, long long *count, int64_t *oldest_ms)
{
    long long p[2] = {0, 0};
    int rc = lucy_store_read(store, count_pending, p);
    *count = p[0];
    *oldest_ms = p[1];
    return rc;
}

static int queue_fn(sqlite3 *db, struct kv_job *j)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "SELECT 1 FROM kv_pending WHERE key = ?", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, j->key, -1, SQLITE_STATIC);
    j->stored = sqlite3_step(st) != SQLITE_ROW;
    sqlite3_reset(st);
    rc = lucy_store_stmt(db,
                         "INSERT INTO kv_pending (key, op, value, seq, queued_at_ms, last_error)"
                         " VALUES (?1, ?2, ?3, 1, ?4, ?5) ON CONFLICT (key) DO UPDATE SET"
                         " op = excluded.op, value = excluded.value, seq = seq + 1,"
                         " last_error = excluded.last_error",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, j->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->value ? "set" : "del", -1, SQLITE_STATIC);
    if (j->value)
        sqlite3_bind_blob(st, 3, j->value, (int)j->len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_int64(st, 4, j->now_ms);
    lucy_row_bind_text(st, 5, j->extra);
    return lucy_row_step_done(st);
}

int lucy_kv_set_or_queue(struct lucy_kv *kv, const char *key, const void *value, size_t len,
                         int *queued, int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv);
    struct lucy_kv_error local_err;
    if (!err)
        err = &local_err;
    kv_err_clear(err);
    if (queued)
        *queued = 0;
    if (timeout_ms <= 0)
        timeout_ms = kv->default_timeout_ms;
    if (!key || !*key)
        return lucy_kv_err_set(err, LUCY_KV_ERR_INVALID, "empty key");
    int rc;
    int behind = atomic_load(&kv->pending_hint) > 0;
    if (!behind) {
        rc = value ? lucy_kv_set(kv, key, value, len, 0, timeout_ms, err)
                   : lucy_kv_del(kv, key, timeout_ms, err);
        /* queueing into the store the sqlite backend just failed on would not help */
        if (rc == 0 || !kv->store || (kv->ops->caps & LUCY_KV_CAP_IN_STORE) ||
            err->kind == LUCY_KV_ERR_INVALID || err->kind == LUCY_KV_ERR_NOMEM)
            return rc;
    }
    struct kv_job *j = kv_job_new(key, value, len);
    if (!j)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    char reason[300];
    snprintf(reason, sizeof reason, "%s: %s",
             behind ? "queued behind older writes" : lucy_kv_err_kind_name(err->kind),
             behind ? "" : err->message);
    j->extra = reason;
    j->fn = queue_fn;
    /* No timeout for the local queue write: the job points at `reason` on
     * this stack, and the local store answers or fails on its own. */
    rc = kv_job_write(kv->store, j, 0);
    int added = j->stored;
    free(j);
    if (rc)
        return lucy_kv_err_set(err, LUCY_KV_ERR_STORE,
                               "cannot queue the write in the local store: %s", lucy_strerror(rc));
    if (added)
        atomic_fetch_add(&kv->pending_hint, 1);
    if (queued)
        *queued = 1;
    if (behind)
        lucy_kv_err_set(err, LUCY_KV_ERR_NONE, "queued behind older pending writes");
    err->code = 0;
    return 0;
}

struct pending_row {
    char *key;
    char *value; /* NULL = delete */
    size_t len;
    long long seq;
};

struct pending_list {
    struct pending_row *rows;
    int n;
    int max;
};

static int read_pending(sqlite3 *db, void *arg)
{
    struct pending_list *l = arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(
        db, "SELECT key, op, value, seq FROM kv_pending ORDER BY queued_at_ms, key LIMIT ?", &st);
    if (rc)
        return rc;
    sqlite3_bind_int(st, 1, l->max);
    while (l->n < l->max && sqlite3_step(st) == SQLITE_ROW) {
        struct pending_row *r = &l->rows[l->n];
        memset(r, 0, sizeof *r);
        r->key = strdup((const char *)sqlite3_column_text(st, 0));
        int is_set = strcmp((const char *)sqlite3_column_text(st, 1), "set") == 0;
        if (is_set) {
            size_t n = (size_t)sqlite3_column_bytes(st, 2);
            const void *b = sqlite3_column_blob(st, 2);
            r->value = malloc(n + 1);
            if (r->value) {
                if (n)
                    memcpy(r->value, b, n);
                r->value[n] = '\0';
            }
            r->len = n;
        }
        r->seq = sqlite3_column_int64(st, 3);
        l->n++;
        if (!r->key || (is_set && !r->value))
            return LUCY_ENOMEM;
    }
    return 0;
}

/* Deletes the applied rows whose seq did not change meanwhile (extra =
 * the list, count = how many of its rows were applied). */
static int unqueue_fn(sqlite3 *db, struct kv_job *j)
{
    struct pending_list *l = j->extra;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "DELETE FROM kv_pending WHERE key = ? AND seq = ?", &st);
    if (rc)
        return rc;
    for (int i = 0; i < j->count; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, l->rows[i].key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, l->rows[i].seq);
        if ((rc = lucy_row_step_done(st)) != 0)
            return rc;
        j->stored += sqlite3_changes(db);
    }
    return 0;
}

static int note_failure_fn(sqlite3 *db, struct kv_job *j)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(
        db, "UPDATE kv_pending SET attempts = attempts + 1, last_error = ? WHERE key = ?", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, j->value, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->key, -1, SQLITE_STATIC);
    return lucy_row_step_done(st);
}

int lucy_kv_replay(struct lucy_kv *kv, int max, int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv);
    struct lucy_kv_error local_err;
    if (!err)
        err = &local_err;
    kv_err_clear(err);
    if (!kv->store || atomic_load(&kv->pending_hint) <= 0)
        return 0;
    if (max <= 0 || max > REPLAY_BATCH_MAX)
        max = REPLAY_BATCH_MAX;
    pthread_mutex_lock(&kv->replay_lock);
    struct pending_row rows[REPLAY_BATCH_MAX];
    struct pending_list l = {rows, 0, max};
    int rc = lucy_store_read(kv->store, read_pending, &l);
    int applied = 0;
    if (rc)
        lucy_kv_err_set(err, LUCY_KV_ERR_STORE, "cannot read kv_pending: %s", lucy_strerror(rc));
    for (int i = 0; rc == 0 && i < l.n; i++) {
        struct pending_row *r = &l.rows[i];
        int e = r->value ? lucy_kv_set(kv, r->key, r->value, r->len, 0, timeout_ms, err)
                         : lucy_kv_del(kv, r->key, timeout_ms, err);
        atomic_fetch_add(&kv->calls[LUCY_KV_OP_REPLAY], 1);
        if (e) {
            rc = e;
            char why[300];
            snprintf(why, sizeof why, "%s: %s", lucy_kv_err_kind_name(err->kind), err->message);
            struct kv_job *j = kv_job_new(r->key, why, strlen(why));
            if (j) {
                j->fn = note_failure_fn;
                if (kv_job_write(kv->store, j, 0) != LUCY_ETIMEDOUT)
                    free(j);
            }
            break;
        }
        applied++;
    }
    if (applied > 0) {
        struct kv_job *j = kv_job_new("-", NULL, 0);
        if (j) {
            j->fn = unqueue_fn;
            j->extra = &l;
            j->count = applied;
            /* no timeout: the job points at this frame's list */
            if (kv_job_write(kv->store, j, 0) == 0)
                atomic_fetch_add(&kv->replayed, (unsigned long long)j->stored);
            free(j);
        }
        long long still = 0;
        int64_t oldest_ms;
        if (kv_pending_count(kv->store, &still, &oldest_ms) == 0)
            atomic_store(&kv->pending_hint, (long)still);
        lucy_log(LUCY_LOG_INFO, "kv pending writes replayed", "{s:i,s:I}", "count", applied,
                 "still_pending", (json_int_t)still);
    }
    for (int i = 0; i < l.n; i++) {
        free(l.rows[i].key);
        free(l.rows[i].value);
    }
    pthread_mutex_unlock(&kv->replay_lock);
    return rc ? rc : applied;
}
