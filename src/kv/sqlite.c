/*
 * sqlite.c - the embedded kv backend, on lucy's own SQLite store.
 *
 * Tables (src/store/schema.c, migration 40): kv (key, value, expires_at_ms)
 * and kv_ratelimit (key, tat_us, expires_at_ms). Reads use the store's
 * read pool and treat an expired row as absent; writes go through the
 * store's single group-commit writer, so each set_if_absent and each GCRA
 * step is atomic (one savepoint on the one writer). Expired rows are
 * removed in batches by `maintain`, which the kv plugin calls about once a
 * minute.
 *
 * Because its state is the local store (LUCY_KV_CAP_IN_STORE), the same
 * GCRA step can also run inside a caller's own store write (the inbox
 * worker's batch), committed or rolled back with it: kv_store_ratelimit(),
 * which lucy_kv_ratelimit_in_write() calls.
 *
 * Every write waits at most timeout_ms; the job it hands the writer is on
 * the heap (kv_int.h), so a timed-out write is still safe to run later.
 * Statements come from the store's cache (lucy_store_stmt).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../clock.h"
#include "../error.h"
#include "../store/row.h"
#include "../store/store.h"
#include "kv.h"
#include "kv_int.h"

struct sqlite_kv {
    struct lucy_store *store; /* not owned */
};

static int open_(const struct lucy_kv_options *opt, void **st, struct lucy_kv_error *err)
{
    struct sqlite_kv *s = calloc(1, sizeof *s);
    if (!s)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    s->store = opt->store;
    *st = s;
    return 0;
}

static void close_(void *st)
{
    free(st);
}

static int store_error(struct lucy_kv_error *err, int rc, const char *what)
{
    enum lucy_kv_err_kind kind = rc == LUCY_ETIMEDOUT ? LUCY_KV_ERR_TIMEOUT : LUCY_KV_ERR_STORE;
    lucy_kv_err_set(err, kind, "%s in the local store failed: %s", what, lucy_strerror(rc));
    if (err)
        err->code = rc; /* keep the store's own code (LUCY_ENOSPC, ...) */
    return rc;
}

/* ---- get ------------------------------------------------------------------ */

struct get_arg {
    const char *key;
    int64_t now_ms;
    char *value;
    size_t len;
    int found;
};

static int get_fn(sqlite3 *db, void *arg)
{
    struct get_arg *a = arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(
        db, "SELECT value FROM kv WHERE key = ? AND (expires_at_ms IS NULL OR expires_at_ms > ?)",
        &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, a->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, a->now_ms);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        const void *b = sqlite3_column_blob(st, 0);
        a->value = malloc(n + 1);
        if (!a->value)
            return LUCY_ENOMEM;
        if (n)
            memcpy(a->value, b, n);
        a->value[n] = '\0';
        a->len = n;
        a->found = 1;
        rc = SQLITE_DONE;
    }
    sqlite3_reset(st); /* get_many asks for the same text again */
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

static int get(void *stp, const char *key, char **value, size_t *len, int timeout_ms,
               struct lucy_kv_error *err)
{
    (void)timeout_ms; /* WAL readers never wait for the writer */
    struct sqlite_kv *s = stp;
    struct get_arg a = {key, lucy_wall_ms(), NULL, 0, 0};
    int rc = lucy_store_read(s->store, get_fn, &a);
    if (rc)
        return store_error(err, rc, "get");
    if (!a.found)
        return LUCY_ENOTFOUND;
    *value = a.value;
    *len = a.len;
    return 0;
}

struct get_many_arg {
    const char *const *keys;
    size_t n;
    int64_t now_ms;
    char **values; /* out */
    size_t *lens;  /* out */
};

static int get_many_fn(sqlite3 *db, void *arg)
{
    struct get_many_arg *a = arg;
    struct get_arg one = {NULL, a->now_ms, NULL, 0, 0};
    for (size_t i = 0; i < a->n; i++) {
        one.key = a->keys[i];
        one.found = 0;
        one.value = NULL;
        int rc = get_fn(db, &one);
        if (rc)
            return rc;
        a->values[i] = one.found ? one.value : NULL;
        a->lens[i] = one.found ? one.len : 0;
    }
    return 0;
}

/* One read connection and one snapshot for every key (WAL). */
static int get_many(void *stp, const char *const *keys, size_t n, char **values, size_t *lens,
                    int timeout_ms, struct lucy_kv_error *err)
{
    (void)timeout_ms;
    struct sqlite_kv *s = stp;
    struct get_many_arg a = {keys, n, lucy_wall_ms(), values, lens};
    int rc = lucy_store_read(s->store, get_many_fn, &a);
    return rc ? store_error(err, rc, "get_many") : 0;
}

/* ---- set, set_if_absent, del ---------------------------------------------- */

static int set_fn(sqlite3 *db, struct kv_job *j)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(
        db, "INSERT OR REPLACE INTO kv (key, value, expires_at_ms) VALUES (?, ?, ?)", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, j->key, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, j->value, (int)j->len, SQLITE_STATIC);
    if (j->ttl_ms > 0)
        sqlite3_bind_int64(st, 3, j->now_ms + j->ttl_ms);
    else
        sqlite3_bind_null(st, 3);
    return lucy_row_step_done(st);
}

static int set_if_absent_fn(sqlite3 *db, struct kv_job *j)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "DELETE FROM kv WHERE key = ? AND expires_at_ms <= ?", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, j->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, j->now_ms);
    if ((rc = lucy_row_step_done(st)) != 0)
        return rc;
    rc = lucy_store_stmt(
        db, "INSERT OR IGNORE INTO kv (key, value, expires_at_ms) VALUES (?, ?, ?)", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, j->key, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, j->value, (int)j->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, j->now_ms + j->ttl_ms);
    if ((rc = lucy_row_step_done(st)) != 0)
        return rc;
    j->stored = sqlite3_changes(db) == 1;
    return 0;
}

static int del_fn(sqlite3 *db, struct kv_job *j)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "DELETE FROM kv WHERE key = ?", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, j->key, -1, SQLITE_STATIC);
    return lucy_row_step_done(st);
}

/* Runs fn as a job for key/value; copies `stored` out. */
static int write_job(struct sqlite_kv *s, int (*fn)(sqlite3 *, struct kv_job *), const char *key,
                     const void *value, size_t len, int64_t ttl_ms, int *stored, int timeout_ms,
                     const char *what, struct lucy_kv_error *err)
{
    struct kv_job *j = kv_job_new(key, value, len);
    if (!j)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    j->fn = fn;
    j->ttl_ms = ttl_ms;
    int rc = kv_job_write(s->store, j, timeout_ms);
    if (rc == LUCY_ETIMEDOUT)
        return store_error(err, rc, what);
    if (stored)
        *stored = j->stored;
    free(j);
    return rc ? store_error(err, rc, what) : 0;
}

static int set(void *st, const char *key, const void *value, size_t len, int64_t ttl_ms,
               int timeout_ms, struct lucy_kv_error *err)
{
    return write_job(st, set_fn, key, value, len, ttl_ms, NULL, timeout_ms, "set", err);
}

static int set_if_absent(void *st, const char *key, const void *value, size_t len, int64_t ttl_ms,
                         int *stored, int timeout_ms, struct lucy_kv_error *err)
{
    return write_job(st, set_if_absent_fn, key, value, len, ttl_ms, stored, timeout_ms,
                     "set_if_absent", err);
}

static int del(void *st, const char *key, int timeout_ms, struct lucy_kv_error *err)
{
    return write_job(st, del_fn, key, NULL, 0, 0, NULL, timeout_ms, "del", err);
}

/* ---- ratelimit: one row per key, one GCRA step per store write ------------ */

/* The GCRA step on db, the writer's connection, inside whatever
 * transaction it is in (a job's group commit, or a caller's own write
 * through lucy_kv_ratelimit_in_write). Two cached statements: it runs once
 * per WhatsApp message, so preparing them each time would cost more than
 * running them. */
int kv_store_ratelimit(sqlite3 *db, const char *key, const struct lucy_kv_rate *rate,
                       struct lucy_kv_rate_result *out)
{
    int64_t now_us = (rate->at_ms > 0 ? rate->at_ms : lucy_wall_ms()) * 1000;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "SELECT tat_us FROM kv_ratelimit WHERE key = ?", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int64_t tat = 0;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        tat = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return lucy_store_err(rc);
    int64_t new_tat = kv_gcra(tat, now_us, rate, out);
    if (!out->allowed)
        return 0;
    rc = lucy_store_stmt(
        db, "INSERT OR REPLACE INTO kv_ratelimit (key, tat_us, expires_at_ms) VALUES (?, ?, ?)",
        &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, new_tat);
    /* kept until the TAT has passed by the wall clock (at_ms may lag) */
    int64_t expires_ms = new_tat / 1000 + 1;
    int64_t now_ms = lucy_wall_ms();
    if (expires_ms < now_ms + 1000)
        expires_ms = now_ms + 1000;
    sqlite3_bind_int64(st, 3, expires_ms);
    return lucy_row_step_done(st);
}

static int ratelimit_fn(sqlite3 *db, struct kv_job *j)
{
    return kv_store_ratelimit(db, j->key, &j->rate, &j->result);
}

static int ratelimit(void *stp, const char *key, const struct lucy_kv_rate *rate,
                     struct lucy_kv_rate_result *out, int timeout_ms, struct lucy_kv_error *err)
{
    struct sqlite_kv *s = stp;
    struct kv_job *j = kv_job_new(key, NULL, 0);
    if (!j)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    j->fn = ratelimit_fn;
    j->rate = *rate;
    int rc = kv_job_write(s->store, j, timeout_ms);
    if (rc == LUCY_ETIMEDOUT)
        return store_error(err, rc, "ratelimit");
    *out = j->result;
    free(j);
    return rc ? store_error(err, rc, "ratelimit") : 0;
}

/* ---- ping, maintenance, description --------------------------------------- */

static int ping_fn(sqlite3 *db, void *arg)
{
    (void)arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "SELECT 1 FROM kv LIMIT 1", &st);
    if (rc)
        return rc;
    rc = sqlite3_step(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : LUCY_EIO;
}

static int ping(void *stp, int force, int timeout_ms, struct lucy_kv_error *err)
{
    (void)force, (void)timeout_ms;
    struct sqlite_kv *s = stp;
    int rc = lucy_store_read(s->store, ping_fn, NULL);
    return rc ? store_error(err, rc, "ping") : 0;
}

static int purge_fn(sqlite3 *db, struct kv_job *j)
{
    static const char *const sql[] = {
        "DELETE FROM kv WHERE key IN (SELECT key FROM kv WHERE expires_at_ms <= ?1 LIMIT 1000)",
        "DELETE FROM kv_ratelimit WHERE key IN"
        " (SELECT key FROM kv_ratelimit WHERE expires_at_ms <= ?1 LIMIT 1000)",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st;
        int rc = lucy_store_stmt(db, sql[i], &st);
        if (rc)
            return rc;
        sqlite3_bind_int64(st, 1, j->now_ms);
        if ((rc = lucy_row_step_done(st)) != 0)
            return rc;
        j->count += sqlite3_changes(db);
    }
    return 0;
}

/* Removes up to 1000 expired rows per table; returns how many. */
static int maintain(void *stp, int timeout_ms, struct lucy_kv_error *err)
{
    struct sqlite_kv *s = stp;
    struct kv_job *j = kv_job_new("-", NULL, 0);
    if (!j)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    j->fn = purge_fn;
    int rc = kv_job_write(s->store, j, timeout_ms);
    if (rc == LUCY_ETIMEDOUT)
        return store_error(err, rc, "purge");
    int n = j->count;
    free(j);
    return rc ? store_error(err, rc, "purge") : n;
}

static void describe(void *stp, char *buf, size_t len)
{
    struct sqlite_kv *s = stp;
    snprintf(buf, len, "%s", lucy_store_path(s->store));
}

const struct lucy_kv_ops lucy_kv_sqlite_ops = {
    .name = "sqlite",
    .caps = LUCY_KV_CAP_IN_STORE,
    .open = open_,
    .close = close_,
    .get = get,
    .get_many = get_many,
    .set = set,
    .set_if_absent = set_if_absent,
    .del = del,
    .ratelimit = ratelimit,
    .ping = ping,
    .persistence = NULL, /* no such thing: the store has its own check */
    .config_set = NULL,
    .bgsave = NULL,
    .maintain = maintain,
    .describe = describe,
};
