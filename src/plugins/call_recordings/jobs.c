/*
 * jobs.c - the transcription job table (DESIGN §7), migration 21.
 *
 * A job row moves through these states:
 *
 *   queued ──► running ──► done | no_speech | failed
 *                 │
 *                 ├──► retry_wait (file locked, engine unavailable):
 *                 │       next_retry_at_s set; back to queued when due
 *                 └──► blocked (disk critical): back to queued when the
 *                         disk recovers
 *
 * queued, running, retry_wait and blocked are "active"; a partial UNIQUE
 * index keeps at most one active job per recording, so a repeated request
 * can never start a second transcription. Every change is one statement
 * inside a lucy_store_write() function, so the single store writer thread
 * serialises them: taking a job (queued -> running) is atomic.
 */
#include "jobs.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../error.h"
#include "../../store/store.h"

int lucy_jobs_enqueue(sqlite3 *db, const char *recording_id, long long *job_id)
{
    static const char *const find_sql =
        "SELECT id FROM jobs WHERE recording_id = ?1 ORDER BY"
        " status IN ('queued','running','retry_wait','blocked') DESC, id DESC LIMIT 1";
    static const char *const insert_sql =
        "INSERT INTO jobs (recording_id, status, created_at_s, updated_at_s)"
        " VALUES (?1, 'queued', ?2, ?2)";
    if (db == NULL || recording_id == NULL || recording_id[0] == '\0')
        return LUCY_EINVAL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, find_sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (job_id != NULL)
            *job_id = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return 0;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return lucy_store_err(rc);
    rc = sqlite3_prepare_v2(db, insert_sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return lucy_store_err(rc);
    if (job_id != NULL)
        *job_id = sqlite3_last_insert_rowid(db);
    return 0;
}

const char *const lucy_jobs_statuses[LUCY_JOBS_N_STATUSES] = {
    "queued", "running", "retry_wait", "blocked", "done", "no_speech", "failed",
};

int lucy_jobs_active(const char *status)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(status, lucy_jobs_statuses[i]) == 0)
            return 1;
    return 0;
}

static const char job_columns[] = "id, recording_id, status, attempts, coalesce(error_type, ''),"
                                  " coalesce(error, ''), coalesce(next_retry_at_s, 0),"
                                  " created_at_s, updated_at_s";

static void copy_col(char *dst, size_t size, sqlite3_stmt *st, int col)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", s ? (const char *)s : "");
}

/* Fills out from a row selected with job_columns. */
static void job_from_row(sqlite3_stmt *st, struct lucy_job *out)
{
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(st, 0);
    copy_col(out->recording_id, sizeof out->recording_id, st, 1);
    copy_col(out->status, sizeof out->status, st, 2);
    out->attempts = sqlite3_column_int(st, 3);
    copy_col(out->error_type, sizeof out->error_type, st, 4);
    copy_col(out->error, sizeof out->error, st, 5);
    out->next_retry_at_s = sqlite3_column_int64(st, 6);
    out->created_at_s = sqlite3_column_int64(st, 7);
    out->updated_at_s = sqlite3_column_int64(st, 8);
}

/* Runs "SELECT job_columns FROM jobs WHERE <where>" bound with one
 * parameter (an id or a recording id) and returns the first row. */
static int select_job(sqlite3 *db, const char *where, long long id, const char *text,
                      struct lucy_job *out)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT %s FROM jobs WHERE %s", job_columns, where);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    if (text)
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    int err = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
    if (err == 0)
        job_from_row(st, out);
    sqlite3_finalize(st);
    return err;
}

struct get_arg {
    long long id;
    struct lucy_job *out;
};

static int get_read(sqlite3 *db, void *arg)
{
    struct get_arg *a = arg;
    return select_job(db, "id = ?1", a->id, NULL, a->out);
}

int lucy_jobs_get(struct lucy_store *store, long long id, struct lucy_job *out)
{
    struct get_arg a = {id, out};
    return lucy_store_read(store, get_read, &a);
}

struct request_arg {
    const char *recording_id;
    struct lucy_job *out;
};

static int request_write(sqlite3 *db, void *arg)
{
    struct request_arg *a = arg;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM recordings WHERE id = ?1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_text(st, 1, a->recording_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return LUCY_ENOTFOUND;
    if (rc != SQLITE_ROW)
        return lucy_store_err(rc);
    int err = select_job(db,
                         "recording_id = ?1 AND status IN ('queued','running','retry_wait',"
                         "'blocked')",
                         0, a->recording_id, a->out);
    if (err != LUCY_ENOTFOUND)
        return err;
    rc = sqlite3_prepare_v2(db,
                            "INSERT INTO jobs (recording_id, status, created_at_s, updated_at_s)"
                            " VALUES (?1, 'queued', ?2, ?2)",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_text(st, 1, a->recording_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return lucy_store_err(rc);
    return select_job(db, "id = ?1", sqlite3_last_insert_rowid(db), NULL, a->out);
}

int lucy_jobs_request(struct lucy_store *store, const char *recording_id, struct lucy_job *out)
{
    struct request_arg a = {recording_id, out};
    /* No timeout: a and out live on the caller's stack (see store.h). */
    return lucy_store_write(store, request_write, &a, 0);
}

/* ISO 8601 UTC ("2026-11-30T01:02:03Z") of Unix seconds t. */
static json_t *iso_time(int64_t t)
{
    if (t <= 0)
        return json_null();
    time_t tt = (time_t)t;
    struct tm tm;
    char buf[32];
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

json_t *lucy_jobs_json(const struct lucy_job *job)
{
    json_t *o = json_pack("{s:I,s:s,s:s,s:i}", "job_id", (json_int_t)job->id, "recording_id",
                          job->recording_id, "status", job->status, "attempts", job->attempts);
    if (!o)
        return NULL;
    json_object_set_new(o, "error_type",
                        job->error_type[0] ? json_string(job->error_type) : json_null());
    json_object_set_new(o, "message", job->error[0] ? json_string(job->error) : json_null());
    json_object_set_new(o, "next_retry_at", iso_time(job->next_retry_at_s));
    if (strcmp(job->status, "retry_wait") == 0 && job->next_retry_at_s > 0) {
        int64_t left = job->next_retry_at_s - (int64_t)time(NULL);
        json_object_set_new(o, "retry_after_s", json_integer(left > 1 ? left : 1));
    }
    json_object_set_new(o, "created_at", iso_time(job->created_at_s));
    json_object_set_new(o, "updated_at", iso_time(job->updated_at_s));
    return o;
}

static int counts_read(sqlite3 *db, void *arg)
{
    long long *counts = arg;
    sqlite3_stmt *st = NULL;
    int rc =
        sqlite3_prepare_v2(db, "SELECT status, count(*) FROM jobs GROUP BY status", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        for (int i = 0; s && i < LUCY_JOBS_N_STATUSES; i++)
            if (strcmp(s, lucy_jobs_statuses[i]) == 0)
                counts[i] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

int lucy_jobs_counts(struct lucy_store *store, long long counts[LUCY_JOBS_N_STATUSES])
{
    memset(counts, 0, sizeof(long long) * LUCY_JOBS_N_STATUSES);
    return lucy_store_read(store, counts_read, counts);
}

static int locked_read(sqlite3 *db, void *arg)
{
    long long *out = arg;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT count(*) FROM jobs WHERE status = 'retry_wait'"
                                " AND error_type = 'file_locked'",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : lucy_store_err(rc);
}

int lucy_jobs_count_locked(struct lucy_store *store, long long *out)
{
    *out = 0;
    return lucy_store_read(store, locked_read, out);
}
