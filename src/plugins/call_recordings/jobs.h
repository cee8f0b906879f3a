/*
 * jobs.h - transcription jobs (DESIGN §7), stored in table `jobs`
 * (migration 21 in store/schema.c), and the worker pool that runs them.
 *
 * One job per recording at a time; a worker pool of LUCY_ASR_WORKERS
 * threads ("asr-worker") takes queued jobs, decodes the recording (with
 * the read-first-block check and copy-before-transcribe for locked files),
 * runs the ASR engine, stores the transcript and its segments and queues
 * them for the search index (lucy_outbox_put) in one store write.
 *
 * Job states (column `status`):
 *   queued      waiting for a worker
 *   running     a worker has it
 *   retry_wait  failed for a reason that passes (file locked by a sync
 *               client, file missing, engine unavailable); queued again at
 *               next_retry_at_s (backoff LUCY_JOB_RETRY_BASE_S doubling to
 *               1 h)
 *   blocked     the disk is critical; queued again when it recovers
 *   done        transcript stored and queued for indexing
 *   no_speech   silence or noise only: empty transcript, nothing indexed
 *   failed      will not succeed without a change (corrupt audio, engine
 *               error); error_type and error say why
 * The first four are "active": at most one per recording (a partial
 * UNIQUE index), so a repeated request never starts a second
 * transcription.
 */
#ifndef LUCY_JOBS_H
#define LUCY_JOBS_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

struct lucy_ctx;
struct lucy_store;

/* Queues a transcription of recording_id (hex SHA-256, the recording's
 * id) unless the recording already has a job: an active one (queued,
 * running, retry_wait, blocked) or a finished one (done, no_speech,
 * failed) - the same content is never transcribed twice automatically;
 * POST /recordings/{id}/transcribe asks for a new transcription explicitly.
 * Call inside a lucy_store_write() function (the scanner does, in the same
 * transaction as the recording). Returns 0 or LUCY_E*; *job_id (may be
 * NULL) gets the new or existing job's id. Runs on the store writer thread
 * only (the db handle it is given). */
int lucy_jobs_enqueue(sqlite3 *db, const char *recording_id, long long *job_id);

/* One row of `jobs`. Times are Unix seconds; 0 = not set. */
struct lucy_job {
    long long id;            /* job id */
    char recording_id[72];   /* hex SHA-256 of the recording's content */
    char status[16];         /* see the state list above */
    int attempts;            /* how many times a worker took it */
    char error_type[32];     /* "file_locked", "corrupt", ... or "" */
    char error[512];         /* what went wrong and what to do, or "" */
    int64_t next_retry_at_s; /* retry_wait: when it is queued again */
    int64_t created_at_s;    /* when it was queued */
    int64_t updated_at_s;    /* last change */
};

/* 1 when status is queued, running, retry_wait or blocked. */
int lucy_jobs_active(const char *status);

/* Reads job id. 0, LUCY_ENOTFOUND, or a store error. Thread-safe. */
int lucy_jobs_get(struct lucy_store *store, long long id, struct lucy_job *out);

/* For POST /recordings/{id}/transcribe: returns the recording's active job
 * if it has one, else queues a new one. 0 and *out; LUCY_ENOTFOUND when no
 * recording has that id; a store error (LUCY_ENOSPC ...). Blocks for one
 * group commit. Thread-safe. */
int lucy_jobs_request(struct lucy_store *store, const char *recording_id, struct lucy_job *out);

/* The job as the JSON of GET /jobs/{id} (new reference): job_id,
 * recording_id, status, attempts, error_type, message, next_retry_at
 * (ISO 8601 UTC) and retry_after_s (seconds from now) when waiting,
 * created_at, updated_at. */
json_t *lucy_jobs_json(const struct lucy_job *job);

/* Number of jobs per status, in the order of lucy_jobs_statuses[]. */
extern const char *const lucy_jobs_statuses[];
#define LUCY_JOBS_N_STATUSES 7
int lucy_jobs_counts(struct lucy_store *store, long long counts[LUCY_JOBS_N_STATUSES]);

/* Count of retry_wait jobs whose error_type is file_locked. */
int lucy_jobs_count_locked(struct lucy_store *store, long long *out);

/* ---- the worker pool (worker.c) ----------------------------------------- */

struct lucy_jobs_pool;

/* Figures the pool keeps for /metrics and /health. */
struct lucy_jobs_stats {
    double audio_s_total;           /* seconds of audio transcribed */
    double asr_wall_s_total;        /* seconds the engine spent on it */
    double last_rtf;                /* real-time factor of the last transcript */
    unsigned long long temp_copies; /* temp copies made for locked files */
    char engine_error[256];         /* why the engine cannot be opened, or "" */
};

/* Creates the pool for ctx (LUCY_ASR_WORKERS workers, engine from the ASR
 * options); no threads yet. NULL on allocation failure. */
struct lucy_jobs_pool *lucy_jobs_pool_new(struct lucy_ctx *ctx);

/* Puts jobs a crash left `running` back to `queued`, then starts the
 * threads. 0 or LUCY_E*. */
int lucy_jobs_pool_start(struct lucy_jobs_pool *p);

/* Asks the workers to stop after their current job and joins them. */
void lucy_jobs_pool_stop(struct lucy_jobs_pool *p);
void lucy_jobs_pool_free(struct lucy_jobs_pool *p);

/* Wakes an idle worker (a job was queued). Thread-safe; p may be NULL. */
void lucy_jobs_pool_wake(struct lucy_jobs_pool *p);

/* Waits up to timeout_ms until job id is no longer queued or running (or
 * the pool stops), then fills *out with its latest state. Returns 0,
 * LUCY_ETIMEDOUT (out holds the state at the deadline), or a store error.
 * Thread-safe. */
int lucy_jobs_pool_wait(struct lucy_jobs_pool *p, long long id, int timeout_ms,
                        struct lucy_job *out);

void lucy_jobs_pool_stats(struct lucy_jobs_pool *p, struct lucy_jobs_stats *out);

#endif
