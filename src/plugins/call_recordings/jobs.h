/*
 * jobs.h - transcription jobs (DESIGN §7): the job table `jobs`
 * (migration 21 in store/schema.c) and its state machine, owned by jobs.c;
 * and the worker pool that runs them (worker.c).
 *
 * One job per recording at a time; a worker pool of LUCY_ASR_WORKERS
 * threads ("asr-worker") claims queued jobs, decodes the recording (with
 * the read-first-block check and copy-before-transcribe for locked files),
 * runs the ASR engine, and finishes the job: its new state, and on success
 * the transcript (transcript.h), in one store write.
 *
 * Job states (enum lucy_job_status; column `status` holds the names):
 *   queued      waiting for a worker
 *   running     a worker has it (also while the worker retries storing
 *               an outcome the store refused: disk full, I/O error)
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
 *
 * Every change is one store write; the single store writer thread
 * serialises them, so claiming a job (queued -> running) is atomic and two
 * workers never take the same job. No other file has SQL on `jobs` except
 * read-only joins (recording.c: a recording's latest status).
 */
#ifndef LUCY_JOBS_H
#define LUCY_JOBS_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

struct lucy_ctx;
struct lucy_store;
struct lucy_transcript;

/* A job's state, in the order of the column's CHECK list; the first four
 * are active. */
enum lucy_job_status {
    LUCY_JOB_QUEUED,
    LUCY_JOB_RUNNING,
    LUCY_JOB_RETRY_WAIT,
    LUCY_JOB_BLOCKED,
    LUCY_JOB_DONE,
    LUCY_JOB_NO_SPEECH,
    LUCY_JOB_FAILED,
    LUCY_JOB_N_STATUSES
};

/* The stored and API name of a status ("retry_wait"); "unknown" when out
 * of range. Static string. Thread-safe. */
const char *lucy_job_status_name(enum lucy_job_status s);

/* The status named name. 0 and *out, or LUCY_EINVAL for a name that is
 * not a job status. Thread-safe. */
int lucy_job_status_parse(const char *name, enum lucy_job_status *out);

/* 1 when s is queued, running, retry_wait or blocked. */
int lucy_job_status_active(enum lucy_job_status s);

/* 1 when s is queued or running: the job has not ended or paused yet. */
int lucy_job_status_pending(enum lucy_job_status s);

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

/* The engine and model a job is asked to use (migration 54). Empty
 * strings: the configured default (LUCY_ASR_ENGINE, and that engine's
 * model). Validated before a job is queued (lucy_retranscribe_check). */
struct lucy_job_asr {
    char engine[32]; /* "pocketsphinx", "whisper", "http" or "" */
    char model[256]; /* pocketsphinx: acoustic model dir, whisper: ggml file,
                        http: model name; "" = the engine's default */
};

/* Queues a re-transcription of recording_id in job group group_id
 * (retranscribe.c) with engine/model asr (NULL = the defaults): queue
 * class 2, claimed after user requests and new recordings. LUCY_ECONFLICT
 * when the recording has an active job already (nothing queued: that
 * job's result is the new version). Call inside a lucy_store_write()
 * function. 0 and *job_id (may be NULL), or a store error. */
int lucy_jobs_enqueue_group(sqlite3 *db, const char *recording_id, long long group_id,
                            const struct lucy_job_asr *asr, long long *job_id);

/* Cancels job group group_id's jobs that have not started: queued,
 * retry_wait and blocked jobs are deleted with their checkpoints; a
 * running one finishes. Call inside a lucy_store_write() function. 0 and
 * *dropped (may be NULL), or a store error. */
int lucy_jobs_drop_group(sqlite3 *db, long long group_id, int *dropped);

/* Number of group_id's jobs per status (indexed by enum lucy_job_status;
 * dropped jobs are gone). Any store function's db. 0 or a store error. */
int lucy_jobs_group_counts(sqlite3 *db, long long group_id, long long counts[LUCY_JOB_N_STATUSES]);

/* One row of `jobs`. Times are Unix seconds; 0 = not set. */
struct lucy_job {
    long long id;                /* job id */
    char recording_id[72];       /* hex SHA-256 of the recording's content */
    enum lucy_job_status status; /* see the state list above */
    int attempts;                /* how many times a worker took it */
    char error_type[32];         /* "file_locked", "corrupt", ... or "" */
    char error[512];             /* what went wrong and what to do, or "" */
    int64_t next_retry_at_s;     /* retry_wait: when it is queued again */
    int64_t created_at_s;        /* when it was queued */
    int64_t updated_at_s;        /* last change */
    struct lucy_job_asr asr;     /* the engine/model asked for; "" = the defaults */
};

/* Reads job id. 0, LUCY_ENOTFOUND, or a store error. Thread-safe. */
int lucy_jobs_get(struct lucy_store *store, long long id, struct lucy_job *out);

/* lucy_jobs_get() inside a store read or write function, on its db. */
int lucy_jobs_load(sqlite3 *db, long long id, struct lucy_job *out);

/* For POST /recordings/{id}/transcribe: returns the recording's active job
 * if it has one, else queues a new one with engine/model asr (NULL = the
 * defaults). An active job that has not started (queued, retry_wait,
 * blocked) takes the engine/model of a request that names one, so what the
 * client asked for is what runs; a running job keeps its own. 0 and *out;
 * LUCY_ENOTFOUND when no recording has that id; a store error
 * (LUCY_ENOSPC ...). Blocks for one group commit. Thread-safe. */
int lucy_jobs_request(struct lucy_store *store, const char *recording_id,
                      const struct lucy_job_asr *asr, struct lucy_job *out);

/* The job as the JSON of GET /jobs/{id} (new reference): job_id,
 * recording_id, status, attempts, engine and model (null = the
 * configured default), error_type, message, next_retry_at
 * (ISO 8601 UTC) and retry_after_s (seconds from now) when waiting,
 * created_at, updated_at. */
json_t *lucy_jobs_json(const struct lucy_job *job);

/* Number of jobs per status, indexed by enum lucy_job_status. */
int lucy_jobs_counts(struct lucy_store *store, long long counts[LUCY_JOB_N_STATUSES]);

/* Count of retry_wait jobs whose error_type is file_locked. */
int lucy_jobs_count_locked(struct lucy_store *store, long long *out);

/* ---- the state machine, for the worker pool -------------------------------- */

/* Jobs a crashed run left running go back to queued. 0 or a store error
 * (LUCY_ENOSPC on a full disk: retry later). Thread-safe. */
int lucy_jobs_requeue_running(struct lucy_store *store);

/* The periodic transitions: retry_wait jobs whose time has come -> queued;
 * with disk_critical, queued -> blocked; without, blocked -> queued. Reads
 * first and writes (one group commit) only when a row has to change, so an
 * idle pool does not fsync every second. 0 and *changed (rows that had to
 * change), or a store error. Thread-safe. */
int lucy_jobs_housekeep(struct lucy_store *store, int disk_critical, int *changed);

/* 1 in *out when some job is queued. 0 or a store error. Thread-safe. */
int lucy_jobs_any_queued(struct lucy_store *store, int *out);

/* Claims the next queued job (DESIGN §13 queue order: requested by a user,
 * then new recordings, then re-transcriptions; the shortest recording
 * first within each, then the oldest job): queued -> running, attempts + 1,
 * in one store write. 0 and *out (out->id 0 = none was queued), or a store error.
 * Thread-safe; two callers never get the same job. */
int lucy_jobs_claim(struct lucy_store *store, struct lucy_job *out);

/* Backoff before retry number attempts (1-based): base_s * 2^(attempts-1)
 * seconds, capped at one hour. Pure. */
int64_t lucy_jobs_backoff_s(int base_s, int attempts);

/* How a run of a job ended. */
struct lucy_job_outcome {
    enum lucy_job_status status; /* RETRY_WAIT, BLOCKED, DONE, NO_SPEECH or FAILED */
    const char *error_type;      /* static; NULL on success */
    char error[512];             /* what happened and what to do ("" on success) */
};

/* Finishes a claimed job (job: as lucy_jobs_claim() gave it) with outcome
 * o, in ONE store write: with t (DONE / NO_SPEECH), the transcript, its
 * segments and their index documents (transcript.h; time_s, the call's
 * date in Unix s, for the documents), then the job's new state. A RETRY_WAIT job is due again
 * after lucy_jobs_backoff_s(retry_base_s, job->attempts); *next_retry_at_s
 * (may be NULL) gets that time (Unix s) or 0. Returns 0 or a store error
 * (LUCY_ENOSPC: nothing was written). Thread-safe; t is the caller's. */
int lucy_jobs_finish(struct lucy_store *store, const struct lucy_job *job,
                     const struct lucy_job_outcome *o, int retry_base_s,
                     const struct lucy_transcript *t, int64_t time_s, int64_t *next_retry_at_s);

/* ---- the worker pool (worker.c) ----------------------------------------- */

struct lucy_jobs_pool;

/* Figures the pool keeps for /metrics and /health. */
struct lucy_jobs_stats {
    double audio_s_total;                 /* seconds of audio transcribed */
    double asr_wall_s_total;              /* seconds the engine spent on it */
    double last_rtf;                      /* real-time factor of the last transcript */
    unsigned long long temp_copies;       /* temp copies made for locked files */
    char engine_error[256];               /* why the engine cannot be opened, or "" */
    int unstored_jobs;                    /* finished jobs the store refused: kept, retried */
    char store_error[64];                 /* the store's error for them, or "" */
    unsigned long long chunks_recognised; /* chunks sent to the engine (not resumed ones) */
    double chunk_audio_s_total;           /* their audio, seconds */
};

/* A running job's progress (DESIGN §13). */
struct lucy_job_progress {
    long long job_id;
    char recording_id[72]; /* hex SHA-256 */
    double progress;       /* 0-1: audio of the chunks done / of all chunks (0 while decoding) */
    double eta_s;          /* seconds left at this run's rate; -1 = not known yet */
    double audio_s;        /* speech audio to recognise, all channels (silence is skipped) */
    int chunks_total, chunks_done;
};

/* The progress of job_id when a worker runs it now: 0 and *out, or
 * LUCY_ENOTFOUND (not running here). Thread-safe. */
int lucy_jobs_pool_progress(struct lucy_jobs_pool *p, long long job_id,
                            struct lucy_job_progress *out);

/* The progress of every running job, at most max in out; returns how
 * many. Thread-safe. */
int lucy_jobs_pool_running(struct lucy_jobs_pool *p, struct lucy_job_progress *out, int max);

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

/* Deletes every job of the recording (the recording is being forgotten,
 * forget.c). A worker still running one finds its job gone when it
 * finishes and stores nothing (lucy_jobs_finish). Call inside a
 * lucy_store_write() function. 0 or a LUCY_E* code. */
int lucy_jobs_forget(sqlite3 *db, const char *recording_id);

#endif
