/*
 * jobs.c - the transcription job table and its state machine (DESIGN §7),
 * migration 21; the one file that writes `jobs` (see jobs.h).
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
 * serialises them: claiming a job (queued -> running) is atomic.
 *
 * The SQL names the statuses literally (the column holds the names); C
 * code uses enum lucy_job_status and job_statuses[] maps between them.
 */
#include "jobs.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../clock.h"
#include "../../error.h"
#include "../../store/row.h"
#include "../../store/store.h"
#include "checkpoint.h"
#include "transcript.h"

#define RETRY_MAX_S 3600 /* backoff cap (DESIGN §7: doubling to 1 h) */

/* Queue order (DESIGN §13): a lower class is claimed first; shortest
 * recording first within a class, then oldest job. */
enum queue_class {
    QUEUE_REQUESTED = 0,    /* asked for by a user (POST .../transcribe) */
    QUEUE_NEW = 1,          /* a recording the scanner found */
    QUEUE_RETRANSCRIBE = 2, /* a bulk re-transcription (lucy_jobs_enqueue_group) */
};

/* ---- statuses --------------------------------------------------------------- */

static const char *const job_statuses[LUCY_JOB_N_STATUSES] = {
    [LUCY_JOB_QUEUED] = "queued",
    [LUCY_JOB_RUNNING] = "running",
    [LUCY_JOB_RETRY_WAIT] = "retry_wait",
    [LUCY_JOB_BLOCKED] = "blocked",
    [LUCY_JOB_DONE] = "done",
    [LUCY_JOB_NO_SPEECH] = "no_speech",
    [LUCY_JOB_FAILED] = "failed",
};

const char *lucy_job_status_name(enum lucy_job_status s)
{
    return (unsigned)s < LUCY_JOB_N_STATUSES ? job_statuses[s] : "unknown";
}

int lucy_job_status_parse(const char *name, enum lucy_job_status *out)
{
    for (int i = 0; name && i < LUCY_JOB_N_STATUSES; i++)
        if (strcmp(name, job_statuses[i]) == 0) {
            *out = (enum lucy_job_status)i;
            return 0;
        }
    return LUCY_EINVAL;
}

int lucy_job_status_active(enum lucy_job_status s)
{
    return s == LUCY_JOB_QUEUED || s == LUCY_JOB_RUNNING || s == LUCY_JOB_RETRY_WAIT ||
           s == LUCY_JOB_BLOCKED;
}

int lucy_job_status_pending(enum lucy_job_status s)
{
    return s == LUCY_JOB_QUEUED || s == LUCY_JOB_RUNNING;
}

static int64_t now_s(void)
{
    return lucy_wall_ms() / 1000;
}

/* ---- rows ------------------------------------------------------------------- */

#define JOB_COLUMNS                                                                                \
    "SELECT id, recording_id, status, attempts, coalesce(error_type, ''), coalesce(error, ''),"    \
    " coalesce(next_retry_at_s, 0), created_at_s, updated_at_s, engine, model FROM jobs"

/* ?3: the job's queue class (enum queue_class); ?4, ?5: its engine and
 * model (NULL = the defaults, bind_asr). */
#define INSERT_QUEUED                                                                              \
    "INSERT INTO jobs (recording_id, status, created_at_s, updated_at_s, queue_class, engine,"     \
    " model) VALUES (?1, 'queued', ?2, ?2, ?3, ?4, ?5)"

/* Binds asr's engine and model to parameters i and i + 1; "" and a NULL
 * asr bind NULL, the configured default. */
static void bind_asr(sqlite3_stmt *st, int i, const struct lucy_job_asr *asr)
{
    lucy_row_bind_text(st, i, asr && asr->engine[0] ? asr->engine : NULL);
    lucy_row_bind_text(st, i + 1, asr && asr->model[0] ? asr->model : NULL);
}

/* Fills out from a row selected with JOB_COLUMNS. The column's CHECK
 * allows only known names; anything else would read as failed. */
static void job_from_row(sqlite3_stmt *st, struct lucy_job *out)
{
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(st, 0);
    lucy_row_copy(st, 1, out->recording_id, sizeof out->recording_id);
    if (lucy_job_status_parse((const char *)sqlite3_column_text(st, 2), &out->status) != 0)
        out->status = LUCY_JOB_FAILED;
    out->attempts = sqlite3_column_int(st, 3);
    lucy_row_copy(st, 4, out->error_type, sizeof out->error_type);
    lucy_row_copy(st, 5, out->error, sizeof out->error);
    out->next_retry_at_s = sqlite3_column_int64(st, 6);
    out->created_at_s = sqlite3_column_int64(st, 7);
    out->updated_at_s = sqlite3_column_int64(st, 8);
    lucy_row_copy(st, 9, out->asr.engine, sizeof out->asr.engine);
    lucy_row_copy(st, 10, out->asr.model, sizeof out->asr.model);
}

/* Steps st (a JOB_COLUMNS query, bound) once: 0 and *out, LUCY_ENOTFOUND,
 * or a store error. */
static int first_job(sqlite3_stmt *st, struct lucy_job *out)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        job_from_row(st, out);
        return 0;
    }
    return rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
}

int lucy_jobs_load(sqlite3 *db, long long id, struct lucy_job *out)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, JOB_COLUMNS " WHERE id = ?1", &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, id);
    return first_job(st, out);
}

int lucy_jobs_enqueue(sqlite3 *db, const char *recording_id, long long *job_id)
{
    if (db == NULL || recording_id == NULL || recording_id[0] == '\0')
        return LUCY_EINVAL;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "SELECT id FROM jobs WHERE recording_id = ?1 ORDER BY"
                              " status IN ('queued','running','retry_wait','blocked') DESC,"
                              " id DESC LIMIT 1",
                              &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (job_id != NULL)
            *job_id = sqlite3_column_int64(st, 0);
        return 0;
    }
    if (rc != SQLITE_DONE)
        return lucy_store_err(rc);
    if ((err = lucy_store_stmt(db, INSERT_QUEUED, &st)) != 0)
        return err;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_s());
    sqlite3_bind_int(st, 3, QUEUE_NEW);
    bind_asr(st, 4, NULL);
    if ((err = lucy_row_step_done(st)) != 0)
        return err;
    if (job_id != NULL)
        *job_id = sqlite3_last_insert_rowid(db);
    return 0;
}

int lucy_jobs_enqueue_group(sqlite3 *db, const char *recording_id, long long group_id,
                            const struct lucy_job_asr *asr, long long *job_id)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "SELECT 1 FROM jobs WHERE recording_id = ?1 AND status IN"
                              " ('queued','running','retry_wait','blocked')",
                              &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return LUCY_ECONFLICT;
    if (rc != SQLITE_DONE)
        return lucy_store_err(rc);
    err = lucy_store_stmt(db,
                          "INSERT INTO jobs (recording_id, status, created_at_s, updated_at_s,"
                          " queue_class, group_id, engine, model)"
                          " VALUES (?1, 'queued', ?2, ?2, ?3, ?4, ?5, ?6)",
                          &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_s());
    sqlite3_bind_int(st, 3, QUEUE_RETRANSCRIBE);
    sqlite3_bind_int64(st, 4, group_id);
    bind_asr(st, 5, asr);
    if ((err = lucy_row_step_done(st)) != 0)
        return err;
    if (job_id)
        *job_id = sqlite3_last_insert_rowid(db);
    return 0;
}

int lucy_jobs_drop_group(sqlite3 *db, long long group_id, int *dropped)
{
    sqlite3_stmt *st;
    /* Their checkpoints go with them: a waiting job may have some. */
    int err = lucy_store_stmt(db,
                              "SELECT id FROM jobs WHERE group_id = ?1"
                              " AND status IN ('retry_wait','blocked')",
                              &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, group_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((err = lucy_checkpoint_clear(db, sqlite3_column_int64(st, 0))) != 0)
            break;
    sqlite3_reset(st);
    if (err)
        return err;
    if (rc != SQLITE_DONE)
        return lucy_store_err(rc);
    err = lucy_store_stmt(db,
                          "DELETE FROM jobs WHERE group_id = ?1"
                          " AND status IN ('queued','retry_wait','blocked')",
                          &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, group_id);
    if ((err = lucy_row_step_done(st)) != 0)
        return err;
    if (dropped)
        *dropped = sqlite3_changes(db);
    return 0;
}

int lucy_jobs_group_counts(sqlite3 *db, long long group_id, long long counts[LUCY_JOB_N_STATUSES])
{
    memset(counts, 0, sizeof(long long) * LUCY_JOB_N_STATUSES);
    sqlite3_stmt *st;
    int err = lucy_store_stmt(
        db, "SELECT status, count(*) FROM jobs WHERE group_id = ?1 GROUP BY status", &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, group_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        enum lucy_job_status s;
        if (lucy_job_status_parse((const char *)sqlite3_column_text(st, 0), &s) == 0)
            counts[s] = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

struct get_arg {
    long long id;
    struct lucy_job *out;
};

static int get_read(sqlite3 *db, void *arg)
{
    struct get_arg *a = arg;
    return lucy_jobs_load(db, a->id, a->out);
}

int lucy_jobs_get(struct lucy_store *store, long long id, struct lucy_job *out)
{
    struct get_arg a = {id, out};
    return lucy_store_read(store, get_read, &a);
}

struct request_arg {
    const char *recording_id;
    const struct lucy_job_asr *asr; /* NULL = the defaults */
    struct lucy_job *out;
};

/* An active job that has not started takes the engine/model a request
 * names (a running one keeps what it runs with). */
static int request_retarget(sqlite3 *db, const struct lucy_job_asr *asr, struct lucy_job *job)
{
    if (!asr || (!asr->engine[0] && !asr->model[0]) || job->status == LUCY_JOB_RUNNING)
        return 0;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, "UPDATE jobs SET engine = ?2, model = ?3 WHERE id = ?1", &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, job->id);
    bind_asr(st, 2, asr);
    if ((err = lucy_row_step_done(st)) != 0)
        return err;
    job->asr = *asr;
    return 0;
}

static int request_write(sqlite3 *db, void *arg)
{
    struct request_arg *a = arg;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, "SELECT 1 FROM recordings WHERE id = ?1", &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, a->recording_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return LUCY_ENOTFOUND;
    if (rc != SQLITE_ROW)
        return lucy_store_err(rc);
    err = lucy_store_stmt(db,
                          JOB_COLUMNS " WHERE recording_id = ?1 AND status IN"
                                      " ('queued','running','retry_wait','blocked')",
                          &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, a->recording_id, -1, SQLITE_STATIC);
    err = first_job(st, a->out);
    sqlite3_reset(st);
    if (err == 0)
        return request_retarget(db, a->asr, a->out);
    if (err != LUCY_ENOTFOUND)
        return err;
    if ((err = lucy_store_stmt(db, INSERT_QUEUED, &st)) != 0)
        return err;
    sqlite3_bind_text(st, 1, a->recording_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_s());
    sqlite3_bind_int(st, 3, QUEUE_REQUESTED);
    bind_asr(st, 4, a->asr);
    if ((err = lucy_row_step_done(st)) != 0)
        return err;
    return lucy_jobs_load(db, sqlite3_last_insert_rowid(db), a->out);
}

int lucy_jobs_request(struct lucy_store *store, const char *recording_id,
                      const struct lucy_job_asr *asr, struct lucy_job *out)
{
    struct request_arg a = {recording_id, asr, out};
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
                          job->recording_id, "status", lucy_job_status_name(job->status),
                          "attempts", job->attempts);
    if (!o)
        return NULL;
    json_object_set_new(o, "engine",
                        job->asr.engine[0] ? json_string(job->asr.engine) : json_null());
    json_object_set_new(o, "model", job->asr.model[0] ? json_string(job->asr.model) : json_null());
    json_object_set_new(o, "error_type",
                        job->error_type[0] ? json_string(job->error_type) : json_null());
    json_object_set_new(o, "message", job->error[0] ? json_string(job->error) : json_null());
    json_object_set_new(o, "next_retry_at", iso_time(job->next_retry_at_s));
    if (job->status == LUCY_JOB_RETRY_WAIT && job->next_retry_at_s > 0) {
        int64_t left = job->next_retry_at_s - now_s();
        json_object_set_new(o, "retry_after_s", json_integer(left > 1 ? left : 1));
    }
    json_object_set_new(o, "created_at", iso_time(job->created_at_s));
    json_object_set_new(o, "updated_at", iso_time(job->updated_at_s));
    return o;
}

static int counts_read(sqlite3 *db, void *arg)
{
    long long *counts = arg;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, "SELECT status, count(*) FROM jobs GROUP BY status", &st);
    if (err)
        return err;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        enum lucy_job_status s;
        if (lucy_job_status_parse((const char *)sqlite3_column_text(st, 0), &s) == 0)
            counts[s] = sqlite3_column_int64(st, 1);
    }
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

int lucy_jobs_counts(struct lucy_store *store, long long counts[LUCY_JOB_N_STATUSES])
{
    memset(counts, 0, sizeof(long long) * LUCY_JOB_N_STATUSES);
    return lucy_store_read(store, counts_read, counts);
}

/* One integer from a query without parameters. */
static int read_int64(sqlite3 *db, const char *sql, long long *out)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, sql, &st);
    if (err)
        return err;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return lucy_store_err(rc);
    *out = sqlite3_column_int64(st, 0);
    return 0;
}

static int locked_read(sqlite3 *db, void *arg)
{
    return read_int64(db,
                      "SELECT count(*) FROM jobs WHERE status = 'retry_wait'"
                      " AND error_type = 'file_locked'",
                      arg);
}

int lucy_jobs_count_locked(struct lucy_store *store, long long *out)
{
    *out = 0;
    return lucy_store_read(store, locked_read, out);
}

/* ---- the state machine -------------------------------------------------------- */

/* Runs sql with ?1 = the current time (Unix s) and ?2 = flag. */
static int exec_now(sqlite3 *db, const char *sql, int64_t now, int flag)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, sql, &st);
    if (err)
        return err;
    if (sqlite3_bind_parameter_count(st) >= 1)
        sqlite3_bind_int64(st, 1, now);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int(st, 2, flag);
    return lucy_row_step_done(st);
}

static int requeue_write(sqlite3 *db, void *arg)
{
    (void)arg;
    return exec_now(db,
                    "UPDATE jobs SET status = 'queued', updated_at_s = ?1"
                    " WHERE status = 'running'",
                    now_s(), 0);
}

int lucy_jobs_requeue_running(struct lucy_store *store)
{
    return lucy_store_write(store, requeue_write, NULL, 0);
}

struct housekeeping {
    int64_t now_s; /* wall clock */
    int critical;  /* disk critical now */
    int changed;   /* out: rows to change */
};

static int housekeeping_needed(sqlite3 *db, void *arg)
{
    struct housekeeping *h = arg;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(
        db,
        "SELECT count(*) FROM jobs WHERE (status = 'retry_wait' AND next_retry_at_s <= ?1)"
        " OR (status = 'blocked' AND ?2 = 0) OR (status = 'queued' AND ?2 = 1)",
        &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, h->now_s);
    sqlite3_bind_int(st, 2, h->critical);
    int rc = sqlite3_step(st);
    h->changed = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    return rc == SQLITE_ROW ? 0 : lucy_store_err(rc);
}

static int housekeeping_write(sqlite3 *db, void *arg)
{
    struct housekeeping *h = arg;
    int err = exec_now(db,
                       "UPDATE jobs SET status = 'queued', updated_at_s = ?1"
                       " WHERE status = 'retry_wait' AND next_retry_at_s <= ?1",
                       h->now_s, 0);
    if (err == 0 && !h->critical)
        err = exec_now(db,
                       "UPDATE jobs SET status = 'queued', error_type = NULL, error = NULL,"
                       " updated_at_s = ?1 WHERE status = 'blocked'",
                       h->now_s, 0);
    if (err == 0 && h->critical)
        err = exec_now(db,
                       "UPDATE jobs SET status = 'blocked', error_type = 'disk_critical',"
                       " error = 'the disk is critical: transcription is paused and resumes"
                       " by itself when space is freed', updated_at_s = ?1"
                       " WHERE status = 'queued'",
                       h->now_s, 0);
    return err;
}

int lucy_jobs_housekeep(struct lucy_store *store, int disk_critical, int *changed)
{
    struct housekeeping h = {.now_s = now_s(), .critical = disk_critical};
    *changed = 0;
    int err = lucy_store_read(store, housekeeping_needed, &h);
    if (err == 0 && h.changed > 0)
        err = lucy_store_write(store, housekeeping_write, &h, 0);
    if (err == 0)
        *changed = h.changed;
    return err;
}

static int any_queued_read(sqlite3 *db, void *arg)
{
    long long n = 0;
    int err = read_int64(db, "SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued')", &n);
    *(int *)arg = (int)n;
    return err;
}

int lucy_jobs_any_queued(struct lucy_store *store, int *out)
{
    *out = 0;
    return lucy_store_read(store, any_queued_read, out);
}

static int claim_write(sqlite3 *db, void *arg)
{
    struct lucy_job *job = arg;
    sqlite3_stmt *st;
    memset(job, 0, sizeof *job);
    int err = lucy_store_stmt(db,
                              "UPDATE jobs SET status = 'running', attempts = attempts + 1,"
                              " updated_at_s = ?1 WHERE id = (SELECT j.id FROM jobs j"
                              " LEFT JOIN recordings r ON r.id = j.recording_id"
                              " WHERE j.status = 'queued' ORDER BY j.queue_class,"
                              " coalesce(r.duration_s, 1e18), j.id LIMIT 1)"
                              " RETURNING id, recording_id, attempts, engine, model",
                              &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, now_s());
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        job->id = sqlite3_column_int64(st, 0);
        lucy_row_copy(st, 1, job->recording_id, sizeof job->recording_id);
        job->attempts = sqlite3_column_int(st, 2);
        lucy_row_copy(st, 3, job->asr.engine, sizeof job->asr.engine);
        lucy_row_copy(st, 4, job->asr.model, sizeof job->asr.model);
        job->status = LUCY_JOB_RUNNING;
        rc = sqlite3_step(st);
    }
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

int lucy_jobs_claim(struct lucy_store *store, struct lucy_job *out)
{
    return lucy_store_write(store, claim_write, out, 0);
}

int64_t lucy_jobs_backoff_s(int base_s, int attempts)
{
    int64_t d = base_s;
    for (int i = 1; i < attempts && d < RETRY_MAX_S; i++)
        d *= 2;
    return d < RETRY_MAX_S ? d : RETRY_MAX_S;
}

struct finish {
    const struct lucy_job *job;       /* as claimed */
    const struct lucy_job_outcome *o; /* new state */
    int64_t now_s, next_retry_at_s;   /* wall clock; retry time or 0 */
    const struct lucy_transcript *t;  /* done / no_speech: what to store */
    int64_t time_s;                   /* the call's date, for the index documents */
};

/* 1 when job id still exists: a forgotten recording's jobs are deleted
 * (lucy_jobs_forget), and its transcript must not come back with them. */
static int job_exists(sqlite3 *db, long long id)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, "SELECT 1 FROM jobs WHERE id = ?1", &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

static int finish_write(sqlite3 *db, void *arg)
{
    const struct finish *f = arg;
    int exists = job_exists(db, f->job->id);
    if (exists <= 0)
        return exists; /* forgotten while it ran: nothing to store */
    if (f->t) {
        struct lucy_transcript_meta m = {
            .recording_id = f->job->recording_id,
            .job_id = f->job->id,
            .time_s = f->time_s,
            .now_s = f->now_s,
        };
        int err = lucy_transcript_put(db, f->t, &m);
        if (err)
            return err;
    }
    /* A job that ended keeps no checkpoints; one that waits (retry_wait,
     * blocked) keeps them for its next run. */
    if (!lucy_job_status_active(f->o->status)) {
        int err = lucy_checkpoint_clear(db, f->job->id);
        if (err)
            return err;
    }
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "UPDATE jobs SET status = ?2, error_type = ?3, error = ?4,"
                              " next_retry_at_s = ?5, updated_at_s = ?6 WHERE id = ?1",
                              &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, f->job->id);
    sqlite3_bind_text(st, 2, lucy_job_status_name(f->o->status), -1, SQLITE_STATIC);
    if (f->o->error_type) {
        sqlite3_bind_text(st, 3, f->o->error_type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, f->o->error, -1, SQLITE_STATIC);
    }
    if (f->next_retry_at_s > 0)
        sqlite3_bind_int64(st, 5, f->next_retry_at_s);
    sqlite3_bind_int64(st, 6, f->now_s);
    return lucy_row_step_done(st);
}

int lucy_jobs_forget(sqlite3 *db, const char *recording_id)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, "DELETE FROM jobs WHERE recording_id = ?1", &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    return lucy_row_step_done(st);
}

int lucy_jobs_finish(struct lucy_store *store, const struct lucy_job *job,
                     const struct lucy_job_outcome *o, int retry_base_s,
                     const struct lucy_transcript *t, int64_t time_s, int64_t *next_retry_at_s)
{
    int64_t now = now_s();
    struct finish f = {
        .job = job,
        .o = o,
        .now_s = now,
        .next_retry_at_s = o->status == LUCY_JOB_RETRY_WAIT
                               ? now + lucy_jobs_backoff_s(retry_base_s, job->attempts)
                               : 0,
        .t = t,
        .time_s = time_s,
    };
    if (next_retry_at_s)
        *next_retry_at_s = f.next_retry_at_s;
    return lucy_store_write(store, finish_write, &f, 0);
}
