/*
 * worker.c - the transcription worker pool (DESIGN §7, §9).
 *
 * LUCY_ASR_WORKERS threads named "asr-worker", each with its own engine
 * instance (an instance is used by one thread at a time, asr.h). A worker
 * loops:
 *
 *   1. housekeeping, written only when there is something to change:
 *      retry_wait jobs whose time has come -> queued; disk critical ->
 *      queued jobs become blocked; disk recovered -> blocked -> queued;
 *   2. take the oldest queued job (queued -> running, attempts + 1) in one
 *      store write; the single writer thread makes that atomic, so two
 *      workers never take the same job;
 *   3. run it: pick a path of the recording, open it and read its first
 *      block. A lock error (EDEADLK, EAGAIN, EBUSY, ETXTBSY: a sync client
 *      holds the file) leads to a temp copy: only when the disk guard
 *      admits the file's size plus the critical margin, made with mkstemp
 *      in DATA_DIR/tmp (0700) and unlinked at once, so it disappears with
 *      the descriptor on success, failure or crash; then a fresh open and
 *      a plain sequential read of the whole file. Decode (16 kHz mono),
 *      transcribe, and store transcript + segments + index documents + the
 *      job's new state in ONE store write;
 *   4. classify a failure by table (outcomes[]): passing causes (file
 *      locked, missing, I/O, engine unavailable) -> retry_wait with
 *      backoff LUCY_JOB_RETRY_BASE_S * 2^(attempts-1) capped at 1 h; disk
 *      -> blocked; content or engine errors -> failed with the reason.
 *
 * Workers sleep on a condition variable (woken by lucy_jobs_pool_wake()
 * or after 1 s to look for due retries). Waiters of ?wait=1 sleep on a
 * second one, broadcast whenever a job changes state.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../asr/asr.h"
#include "../../disk/disk.h"
#include "../../error.h"
#include "../../index/index.h"
#include "../../log.h"
#include "../../lucy.h"
#include "../../store/store.h"
#include "jobs.h"
#include "recording.h"

#define RETRY_MAX_S       3600 /* backoff cap (DESIGN §7: doubling to 1 h) */
#define IDLE_WAIT_MS      1000 /* how often an idle worker looks for due retries */
#define ENGINE_REOPEN_S   60   /* how often a failed engine open is retried */
#define FIRST_BLOCK_BYTES 4096 /* the read-first-block check */
#define COPY_CHUNK_BYTES  (256 * 1024)
#define IO_RETRY_ATTEMPTS 5 /* an I/O error that persists this long fails the job */

struct worker {
    struct lucy_jobs_pool *pool;          /* owner */
    pthread_t thread;                     /* "asr-worker" */
    int started;                          /* thread was created */
    const struct lucy_asr_engine *engine; /* selected engine, NULL until opened */
    void *engine_state;                   /* this worker's instance */
    int64_t next_open_s;                  /* when to retry a failed open */
};

struct lucy_jobs_pool {
    struct lucy_ctx *ctx;         /* daemon context (not owned) */
    struct lucy_asr_options asr;  /* engine options from the config */
    int retry_base_s;             /* LUCY_JOB_RETRY_BASE_S */
    int n_workers;                /* LUCY_ASR_WORKERS */
    struct worker *workers;       /* n_workers */
    pthread_mutex_t mu;           /* guards everything below */
    pthread_cond_t wake;          /* workers: a job was queued, or stop */
    pthread_cond_t changed;       /* waiters: some job changed state */
    unsigned long long kicks;     /* lucy_jobs_pool_wake() calls */
    int stopping;                 /* stop asked */
    int requeue_pending;          /* start-up requeue failed (disk full): retry */
    struct lucy_jobs_stats stats; /* /metrics figures */
};

/* ---- outcome of one run, and how each failure is classified -------------- */

struct outcome {
    const char *status;     /* new job status */
    const char *error_type; /* NULL on success */
    char error[512];        /* message: what happened and what to do */
    int retry;              /* retry_wait with backoff */
};

/* What a LUCY_E* code from reading/decoding the source means for the job.
 * `limited` retries turn into failed after IO_RETRY_ATTEMPTS attempts. */
static const struct {
    int err;
    const char *status;
    const char *error_type;
    int limited;
    const char *advice;
} source_errors[] = {
    {LUCY_ELOCKED, "retry_wait", "file_locked", 0,
     "the file is being synced by the cloud client (it holds a lock on it); lucy retries by "
     "itself with backoff"},
    {LUCY_ENOTFOUND, "retry_wait", "file_missing", 0,
     "no path of this recording can be found (moved, deleted, or its folder is unmounted); lucy "
     "retries by itself"},
    {LUCY_EIO, "retry_wait", "io_error", 1,
     "reading the file failed with an I/O error; lucy retries a few times, check the disk or "
     "the mount"},
    {LUCY_ENOMEM, "retry_wait", "out_of_memory", 1, "out of memory; lucy retries later"},
    {LUCY_ENOSPC, "blocked", "disk_critical", 0,
     "the disk is critical (no room for a temp copy or the transcript); the job resumes by "
     "itself when space is freed"},
    {LUCY_EPERM, "failed", "permission_denied", 0,
     "lucy may not read the file: fix its permissions and ask for a transcription again"},
    {LUCY_ECORRUPT, "failed", "corrupt", 0,
     "the file is not decodable audio; it is retried when the file changes"},
};

/* What a LUCY_E* code from the engine means. */
static const struct {
    int err;
    const char *status;
    const char *error_type;
    const char *advice;
} engine_errors[] = {
    {LUCY_EUNAVAIL, "retry_wait", "asr_unavailable",
     "the speech recognition engine is unavailable; lucy retries with backoff"},
    {LUCY_ETIMEDOUT, "retry_wait", "asr_unavailable",
     "the speech recognition engine timed out; lucy retries with backoff"},
    {LUCY_ENOMEM, "retry_wait", "out_of_memory", "out of memory; lucy retries later"},
    {LUCY_ENOSPC, "blocked", "disk_critical",
     "the disk is critical; the job resumes by itself when space is freed"},
};

static void outcome_from_source(struct outcome *o, int err, int attempts, const char *detail)
{
    for (size_t i = 0; i < sizeof source_errors / sizeof source_errors[0]; i++) {
        if (source_errors[i].err != err)
            continue;
        int give_up = source_errors[i].limited && attempts >= IO_RETRY_ATTEMPTS;
        o->status = give_up ? "failed" : source_errors[i].status;
        o->error_type = source_errors[i].error_type;
        o->retry = !give_up && strcmp(o->status, "retry_wait") == 0;
        snprintf(o->error, sizeof o->error, "%s: %s",
                 detail && *detail ? detail : lucy_strerror(err), source_errors[i].advice);
        return;
    }
    o->status = "failed";
    o->error_type = "internal";
    o->retry = 0;
    snprintf(o->error, sizeof o->error, "%s (%s); ask for a transcription again",
             detail && *detail ? detail : "reading the recording failed", lucy_strerror(err));
}

static void outcome_from_engine(struct outcome *o, int err, const char *detail)
{
    for (size_t i = 0; i < sizeof engine_errors / sizeof engine_errors[0]; i++) {
        if (engine_errors[i].err != err)
            continue;
        o->status = engine_errors[i].status;
        o->error_type = engine_errors[i].error_type;
        o->retry = strcmp(o->status, "retry_wait") == 0;
        snprintf(o->error, sizeof o->error, "%s: %s",
                 detail && *detail ? detail : lucy_strerror(err), engine_errors[i].advice);
        return;
    }
    o->status = "failed";
    o->error_type = "asr_failed";
    o->retry = 0;
    snprintf(o->error, sizeof o->error,
             "the speech recognition engine failed: %s; check LUCY_ASR_ENGINE and its model, "
             "then ask for a transcription again",
             detail && *detail ? detail : lucy_strerror(err));
}

/* Backoff before retry number `attempts` (1-based): base * 2^(attempts-1),
 * capped at RETRY_MAX_S. */
static int64_t backoff_s(int base_s, int attempts)
{
    int64_t d = base_s;
    for (int i = 1; i < attempts && d < RETRY_MAX_S; i++)
        d *= 2;
    return d < RETRY_MAX_S ? d : RETRY_MAX_S;
}

/* ---- store writes ------------------------------------------------------ */

static int exec_bound(sqlite3 *db, const char *sql, int64_t a, int64_t b)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        if (sqlite3_bind_parameter_count(st) >= 1)
            sqlite3_bind_int64(st, 1, a);
        if (sqlite3_bind_parameter_count(st) >= 2)
            sqlite3_bind_int64(st, 2, b);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

struct housekeeping {
    int64_t now_s; /* wall clock */
    int critical;  /* disk critical now */
    int changed;   /* out: rows changed */
};

/* What housekeeping would change; read first so an idle pool does not
 * commit (and fsync) every second. */
static int housekeeping_needed(sqlite3 *db, void *arg)
{
    struct housekeeping *h = arg;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db,
        "SELECT count(*) FROM jobs WHERE (status = 'retry_wait' AND next_retry_at_s <= ?1)"
        " OR (status = 'blocked' AND ?2 = 0) OR (status = 'queued' AND ?2 = 1)",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_int64(st, 1, h->now_s);
    sqlite3_bind_int(st, 2, h->critical);
    rc = sqlite3_step(st);
    h->changed = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : lucy_store_err(rc);
}

static int housekeeping_write(sqlite3 *db, void *arg)
{
    struct housekeeping *h = arg;
    int err = exec_bound(db,
                         "UPDATE jobs SET status = 'queued', updated_at_s = ?1"
                         " WHERE status = 'retry_wait' AND next_retry_at_s <= ?1",
                         h->now_s, 0);
    if (err == 0 && !h->critical)
        err = exec_bound(db,
                         "UPDATE jobs SET status = 'queued', error_type = NULL, error = NULL,"
                         " updated_at_s = ?1 WHERE status = 'blocked'",
                         h->now_s, 0);
    if (err == 0 && h->critical)
        err = exec_bound(db,
                         "UPDATE jobs SET status = 'blocked', error_type = 'disk_critical',"
                         " error = 'the disk is critical: transcription is paused and resumes"
                         " by itself when space is freed', updated_at_s = ?1"
                         " WHERE status = 'queued'",
                         h->now_s, 0);
    return err;
}

struct take {
    int64_t now_s;       /* wall clock */
    struct lucy_job job; /* out: the job taken; id 0 = none */
};

static int take_write(sqlite3 *db, void *arg)
{
    struct take *t = arg;
    sqlite3_stmt *st = NULL;
    t->job.id = 0;
    int rc = sqlite3_prepare_v2(db,
                                "UPDATE jobs SET status = 'running', attempts = attempts + 1,"
                                " updated_at_s = ?1 WHERE id = (SELECT id FROM jobs"
                                " WHERE status = 'queued' ORDER BY id LIMIT 1)"
                                " RETURNING id, recording_id, attempts",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_int64(st, 1, t->now_s);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        t->job.id = sqlite3_column_int64(st, 0);
        snprintf(t->job.recording_id, sizeof t->job.recording_id, "%s",
                 (const char *)sqlite3_column_text(st, 1));
        t->job.attempts = sqlite3_column_int(st, 2);
        snprintf(t->job.status, sizeof t->job.status, "running");
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

static int any_queued(sqlite3 *db, void *arg)
{
    int *n = arg;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued')",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : lucy_store_err(rc);
}

struct finish {
    long long job_id;                       /* the job */
    const char *recording_id;               /* its recording */
    const struct outcome *o;                /* new state */
    int64_t now_s, next_retry_at_s;         /* wall clock; retry time or 0 */
    const struct lucy_transcript *t;        /* done / no_speech: what to store */
    const struct lucy_recording_info *info; /* title and time for the index */
};

static int set_job_state(sqlite3 *db, const struct finish *f)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "UPDATE jobs SET status = ?2, error_type = ?3, error = ?4,"
                                " next_retry_at_s = ?5, updated_at_s = ?6 WHERE id = ?1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_int64(st, 1, f->job_id);
    sqlite3_bind_text(st, 2, f->o->status, -1, SQLITE_STATIC);
    if (f->o->error_type) {
        sqlite3_bind_text(st, 3, f->o->error_type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, f->o->error, -1, SQLITE_STATIC);
    }
    if (f->next_retry_at_s > 0)
        sqlite3_bind_int64(st, 5, f->next_retry_at_s);
    sqlite3_bind_int64(st, 6, f->now_s);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

/* Replaces the recording's transcript and segments, re-queues its index
 * documents (one per non-empty segment; none for no_speech). */
static int store_transcript(sqlite3 *db, const struct finish *f)
{
    const struct lucy_transcript *t = f->t;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "DELETE FROM segments WHERE recording_id = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, f->recording_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return lucy_store_err(rc);
    /* Drop documents of an earlier transcript (their segment count may
     * differ); puts below revive the ones that still exist. */
    int err = lucy_outbox_delete(db, "call_recording", f->recording_id);
    if (err)
        return err;
    rc = sqlite3_prepare_v2(db,
                            "INSERT OR REPLACE INTO transcripts (recording_id, job_id, engine,"
                            " model, language, duration_s, rtf, text, created_at_s)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_text(st, 1, f->recording_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, f->job_id);
    sqlite3_bind_text(st, 3, t->engine, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, t->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, t->language, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 6, t->audio_s);
    sqlite3_bind_double(st, 7, t->rtf);
    sqlite3_bind_text(st, 8, t->text ? t->text : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, f->now_s);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return lucy_store_err(rc);
    if (strcmp(f->o->status, "done") != 0)
        return 0;
    rc = sqlite3_prepare_v2(db,
                            "INSERT INTO segments (recording_id, idx, t0_ms, t1_ms, text)"
                            " VALUES (?1, ?2, ?3, ?4, ?5)",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    for (size_t i = 0; i < t->n_segments; i++) {
        const struct lucy_segment *s = &t->segments[i];
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, f->recording_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, (int)i);
        sqlite3_bind_int64(st, 3, s->t0_ms);
        sqlite3_bind_int64(st, 4, s->t1_ms);
        sqlite3_bind_text(st, 5, s->text ? s->text : "", -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            break;
        if (!s->text || !*s->text)
            continue;
        struct lucy_doc doc = {
            .source = "call_recording",
            .id = f->recording_id,
            .segment = (int)i,
            .title = f->info->title,
            .text = s->text,
            .time_s = f->info->time_s,
            .t0_ms = s->t0_ms,
            .t1_ms = s->t1_ms,
        };
        err = lucy_outbox_put(db, &doc);
        if (err)
            break;
    }
    sqlite3_finalize(st);
    if (err)
        return err;
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

static int finish_write(sqlite3 *db, void *arg)
{
    const struct finish *f = arg;
    int err = f->t ? store_transcript(db, f) : 0;
    return err ? err : set_job_state(db, f);
}

/* ---- reading the source ---------------------------------------------------- */

static const int lock_errnos[] = {EDEADLK, EAGAIN, EWOULDBLOCK, EBUSY, ETXTBSY};

static int is_lock_errno(int e)
{
    for (size_t i = 0; i < sizeof lock_errnos / sizeof lock_errnos[0]; i++)
        if (lock_errnos[i] == e)
            return 1;
    return 0;
}

static ssize_t read_retry(int fd, void *buf, size_t n)
{
    ssize_t r;
    do
        r = read(fd, buf, n);
    while (r < 0 && errno == EINTR);
    return r;
}

/* Copies the file at path into an unlinked temp file in ctx->tmp_dir with
 * a fresh open and a plain sequential read. Returns 0 and *out_fd (at
 * offset 0), or LUCY_ENOSPC (disk critical or no room: nothing copied),
 * LUCY_ELOCKED (still locked), another LUCY_E* by errno. */
static int temp_copy(struct lucy_jobs_pool *p, const char *path, const char *display, int *out_fd,
                     char *err, size_t errlen)
{
    struct lucy_ctx *ctx = p->ctx;
    int src = -1, dst = -1, rc = 0;
    char *buf = NULL;
    if (lucy_disk_critical(ctx->disk)) {
        snprintf(err, errlen, "disk critical, no temp copy of %s", display);
        return LUCY_ENOSPC;
    }
    src = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (src < 0) {
        rc = lucy_err_from_errno(errno);
        snprintf(err, errlen, "open %s for a temp copy: %s", display, strerror(errno));
        goto out;
    }
    struct stat sb;
    if (fstat(src, &sb) != 0) {
        rc = lucy_err_from_errno(errno);
        snprintf(err, errlen, "fstat %s: %s", display, strerror(errno));
        goto out;
    }
    if (lucy_disk_admit(ctx->disk, (uint64_t)sb.st_size) != 0) {
        snprintf(err, errlen,
                 "no room for a temp copy of %s (%lld bytes) above the critical disk margin",
                 display, (long long)sb.st_size);
        rc = LUCY_ENOSPC;
        goto out;
    }
    char tmpl[sizeof ctx->tmp_dir + 32];
    snprintf(tmpl, sizeof tmpl, "%s/copy-XXXXXX", ctx->tmp_dir);
    dst = mkostemp(tmpl, O_CLOEXEC);
    if (dst < 0) {
        rc = lucy_err_from_errno(errno);
        snprintf(err, errlen, "cannot create a temp copy in %.400s: %s", ctx->tmp_dir,
                 strerror(errno));
        goto out;
    }
    unlink(tmpl); /* lives as long as dst: removed on every path */
    buf = malloc(COPY_CHUNK_BYTES);
    if (!buf) {
        rc = LUCY_ENOMEM;
        goto out;
    }
    uint64_t copied = 0;
    for (;;) {
        ssize_t n = read_retry(src, buf, COPY_CHUNK_BYTES);
        if (n < 0) {
            rc = is_lock_errno(errno) ? LUCY_ELOCKED : lucy_err_from_errno(errno);
            snprintf(err, errlen, "temp copy of %s: read: %s", display, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(dst, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = lucy_err_from_errno(errno);
                snprintf(err, errlen, "temp copy of %s: write: %s", display, strerror(errno));
                goto out;
            }
            off += w;
        }
        copied += (uint64_t)n;
    }
    if (lseek(dst, 0, SEEK_SET) != 0) {
        rc = lucy_err_from_errno(errno);
        goto out;
    }
    pthread_mutex_lock(&p->mu);
    p->stats.temp_copies++;
    pthread_mutex_unlock(&p->mu);
    lucy_log(LUCY_LOG_INFO, "locked recording read through a temp copy", "{s:s,s:I}", "path",
             display, "bytes", (json_int_t)copied);
    *out_fd = dst;
    dst = -1;
out:
    free(buf);
    if (src >= 0)
        close(src);
    if (dst >= 0)
        close(dst);
    return rc;
}

/* Opens one path of the recording and does the read-first-block check.
 * Returns 0 and *out_fd at offset 0 (the original, or a temp copy when the
 * first block was locked), or a LUCY_E* with err. */
static int open_source(struct lucy_jobs_pool *p, const char *path, const char *display, int *out_fd,
                       int *copied, char *err, size_t errlen)
{
    *copied = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "open %s: %s (%s)", display, strerror(e),
                 is_lock_errno(e) ? "locked" : "not readable");
        /* A lock on open: a temp copy needs an open too, so it fails the
         * same way; classify without trying. */
        return is_lock_errno(e) ? LUCY_ELOCKED : lucy_err_from_errno(e);
    }
    char block[FIRST_BLOCK_BYTES];
    ssize_t n = read_retry(fd, block, sizeof block);
    if (n >= 0 && lseek(fd, 0, SEEK_SET) == 0) {
        *out_fd = fd;
        return 0;
    }
    int e = errno;
    close(fd);
    if (!is_lock_errno(e)) {
        snprintf(err, errlen, "read %s: %s", display, strerror(e));
        return lucy_err_from_errno(e);
    }
    lucy_log(LUCY_LOG_INFO, "recording locked on first read, trying a temp copy", "{s:s,s:s}",
             "path", display, "error", strerror(e));
    int rc = temp_copy(p, path, display, out_fd, err, errlen);
    *copied = rc == 0;
    return rc;
}

/* Rank of a source error: when every path fails, the job reports the most
 * telling one (a lock beats a missing file: the file is there). */
static int error_rank(int err)
{
    static const int order[] = {LUCY_ENOSPC, LUCY_ELOCKED,  LUCY_EPERM,    LUCY_EIO,
                                LUCY_ENOMEM, LUCY_ECORRUPT, LUCY_ENOTFOUND};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (order[i] == err)
            return (int)i;
    return (int)(sizeof order / sizeof order[0]);
}

/* Decodes the recording from the first path that works. */
static int decode_recording(struct lucy_jobs_pool *p, const struct lucy_recording_info *info,
                            struct lucy_pcm *pcm, char *err, size_t errlen)
{
    int best = LUCY_ENOTFOUND;
    snprintf(err, errlen, "the recording has no known path");
    for (int i = 0; i < info->n_paths; i++) {
        const char *path = info->paths[i].path, *display = info->paths[i].display;
        char e1[512] = "";
        int fd = -1, copied = 0;
        int rc = open_source(p, path, display, &fd, &copied, e1, sizeof e1);
        if (rc == 0) {
            rc = lucy_audio_decode_fd(fd, display, pcm, e1, sizeof e1);
            if (rc == LUCY_ELOCKED && !copied) {
                /* Locked after the first block: copy and decode that. */
                close(fd);
                fd = -1;
                lucy_pcm_free(pcm);
                memset(pcm, 0, sizeof *pcm);
                rc = temp_copy(p, path, display, &fd, e1, sizeof e1);
                if (rc == 0)
                    rc = lucy_audio_decode_fd(fd, display, pcm, e1, sizeof e1);
            }
            if (fd >= 0)
                close(fd);
            if (rc == 0)
                return 0;
            lucy_pcm_free(pcm);
            memset(pcm, 0, sizeof *pcm);
        }
        if (error_rank(rc) <= error_rank(best)) {
            best = rc;
            snprintf(err, errlen, "%s", e1);
        }
        if (rc == LUCY_ECORRUPT || rc == LUCY_ENOSPC)
            break; /* same content (or same disk) at every path */
    }
    return best;
}

/* ---- one job ---------------------------------------------------------------- */

static void publish(struct lucy_jobs_pool *p)
{
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
}

static int ensure_engine(struct worker *w)
{
    struct lucy_jobs_pool *p = w->pool;
    if (w->engine_state)
        return 0;
    int64_t now = (int64_t)time(NULL);
    if (now < w->next_open_s)
        return LUCY_EUNAVAIL;
    char err[256] = "";
    const struct lucy_asr_engine *e = lucy_asr_select(&p->asr, err, sizeof err);
    int rc = e ? lucy_asr_open(e, &p->asr, &w->engine_state, err, sizeof err) : LUCY_EINVAL;
    pthread_mutex_lock(&p->mu);
    if (rc == 0) {
        w->engine = e;
        p->stats.engine_error[0] = '\0';
    } else {
        w->engine_state = NULL;
        w->next_open_s = now + ENGINE_REOPEN_S;
        snprintf(p->stats.engine_error, sizeof p->stats.engine_error, "%s", err);
    }
    pthread_mutex_unlock(&p->mu);
    if (rc)
        lucy_log(LUCY_LOG_ERROR, "speech recognition engine cannot be opened", "{s:s,s:s,s:i}",
                 "engine", p->asr.engine ? p->asr.engine : "auto", "error", err, "retry_in_s",
                 ENGINE_REOPEN_S);
    else
        lucy_log(LUCY_LOG_INFO, "speech recognition engine ready", "{s:s}", "engine", e->name);
    return rc;
}

static void run_job(struct worker *w, const struct lucy_job *job)
{
    struct lucy_jobs_pool *p = w->pool;
    struct lucy_ctx *ctx = p->ctx;
    struct lucy_recording_info info = {0};
    struct lucy_pcm pcm = {0};
    struct lucy_transcript t = {0};
    struct outcome o = {0};
    char err[512] = "";
    int have_transcript = 0;

    int rc = lucy_recording_info_load(ctx->store, job->recording_id, &info);
    if (rc) {
        outcome_from_source(&o, rc == LUCY_ENOTFOUND ? LUCY_ENOTFOUND : rc, job->attempts,
                            "the recording is not in the store");
        goto finish;
    }
    if (lucy_disk_critical(ctx->disk)) {
        outcome_from_source(&o, LUCY_ENOSPC, job->attempts, "disk critical");
        goto finish;
    }
    rc = decode_recording(p, &info, &pcm, err, sizeof err);
    if (rc) {
        outcome_from_source(&o, rc, job->attempts, err);
        goto finish;
    }
    rc = lucy_asr_transcribe(w->engine, w->engine_state, &pcm, &t, err, sizeof err);
    if (rc) {
        outcome_from_engine(&o, rc, err);
        goto finish;
    }
    have_transcript = 1;
    int speech = t.n_segments > 0 && t.text && t.text[0];
    o.status = speech ? "done" : "no_speech";
    pthread_mutex_lock(&p->mu);
    p->stats.audio_s_total += t.audio_s;
    p->stats.asr_wall_s_total += t.wall_s;
    p->stats.last_rtf = t.rtf;
    pthread_mutex_unlock(&p->mu);

finish:;
    int64_t now = (int64_t)time(NULL);
    struct finish f = {
        .job_id = job->id,
        .recording_id = job->recording_id,
        .o = &o,
        .now_s = now,
        .next_retry_at_s = o.retry ? now + backoff_s(p->retry_base_s, job->attempts) : 0,
        .t = have_transcript ? &t : NULL,
        .info = &info,
    };
    rc = lucy_store_write(ctx->store, finish_write, &f, 0);
    if (rc == LUCY_ENOSPC && have_transcript) {
        /* No room for the transcript: block; it is redone on recovery. */
        struct outcome blocked = {0};
        outcome_from_source(&blocked, LUCY_ENOSPC, job->attempts, "storing the transcript");
        f.o = &blocked;
        f.t = NULL;
        f.next_retry_at_s = 0;
        rc = lucy_store_write(ctx->store, finish_write, &f, 0);
        o = blocked;
    }
    if (rc)
        lucy_log(LUCY_LOG_ERROR, "cannot record a transcription result", "{s:I,s:s}", "job_id",
                 (json_int_t)job->id, "error", lucy_strerror(rc));
    if (o.error_type)
        lucy_log(strcmp(o.status, "failed") == 0 ? LUCY_LOG_WARNING : LUCY_LOG_INFO,
                 "transcription not done", "{s:I,s:s,s:s,s:s,s:i,s:I}", "job_id",
                 (json_int_t)job->id, "recording_id", job->recording_id, "status", o.status,
                 "error_type", o.error_type, "attempts", job->attempts, "next_retry_at_s",
                 (json_int_t)f.next_retry_at_s);
    else
        lucy_log(LUCY_LOG_INFO, "transcribed", "{s:I,s:s,s:s,s:i,s:f,s:f,s:s}", "job_id",
                 (json_int_t)job->id, "recording_id", job->recording_id, "status", o.status,
                 "segments", (int)t.n_segments, "audio_s", t.audio_s, "rtf", t.rtf, "engine",
                 t.engine);
    lucy_transcript_free(&t);
    lucy_pcm_free(&pcm);
    lucy_recording_info_free(&info);
    publish(p);
}

/* ---- the thread ----------------------------------------------------------- */

static void idle_wait(struct lucy_jobs_pool *p, unsigned long long seen_kicks)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += IDLE_WAIT_MS / 1000;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping && p->kicks == seen_kicks &&
           pthread_cond_timedwait(&p->wake, &p->mu, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&p->mu);
}

static int requeue_running(sqlite3 *db, void *arg);

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct lucy_jobs_pool *p = w->pool;
    struct lucy_ctx *ctx = p->ctx;
    pthread_setname_np(pthread_self(), "asr-worker");
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int stopping = p->stopping;
        unsigned long long kicks = p->kicks;
        pthread_mutex_unlock(&p->mu);
        if (stopping || ctx->stopping)
            break;

        pthread_mutex_lock(&p->mu);
        int requeue = p->requeue_pending;
        pthread_mutex_unlock(&p->mu);
        if (requeue && lucy_store_write(ctx->store, requeue_running, NULL, 0) == 0) {
            pthread_mutex_lock(&p->mu);
            p->requeue_pending = 0;
            pthread_mutex_unlock(&p->mu);
            lucy_log(LUCY_LOG_INFO, "interrupted jobs requeued", NULL);
        }
        struct housekeeping h = {.now_s = (int64_t)time(NULL),
                                 .critical = lucy_disk_critical(ctx->disk)};
        if (lucy_store_read(ctx->store, housekeeping_needed, &h) == 0 && h.changed > 0 &&
            lucy_store_write(ctx->store, housekeeping_write, &h, 0) == 0)
            publish(p);
        int queued = 0;
        if (h.critical || ensure_engine(w) != 0 ||
            lucy_store_read(ctx->store, any_queued, &queued) != 0 || !queued) {
            idle_wait(p, kicks);
            continue;
        }
        struct take t = {.now_s = (int64_t)time(NULL)};
        if (lucy_store_write(ctx->store, take_write, &t, 0) != 0 || t.job.id == 0) {
            idle_wait(p, kicks);
            continue;
        }
        publish(p);
        run_job(w, &t.job);
    }
    return NULL;
}

/* ---- pool lifecycle and waiting ------------------------------------------ */

struct lucy_jobs_pool *lucy_jobs_pool_new(struct lucy_ctx *ctx)
{
    struct lucy_jobs_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->ctx = ctx;
    p->asr.engine = ctx->cfg->asr_engine;
    p->asr.whisper_model = ctx->cfg->whisper_model;
    p->asr.url = ctx->cfg->asr_url;
    p->asr.threads = ctx->cfg->asr_threads;
    p->retry_base_s = ctx->cfg->job_retry_base_s > 0 ? ctx->cfg->job_retry_base_s : 30;
    p->n_workers = ctx->cfg->asr_workers > 0 ? ctx->cfg->asr_workers : 1;
    p->workers = calloc((size_t)p->n_workers, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->changed, NULL);
    return p;
}

static int requeue_running(sqlite3 *db, void *arg)
{
    (void)arg;
    return exec_bound(db,
                      "UPDATE jobs SET status = 'queued', updated_at_s = ?1"
                      " WHERE status = 'running'",
                      (int64_t)time(NULL), 0);
}

int lucy_jobs_pool_start(struct lucy_jobs_pool *p)
{
    /* Jobs a crashed run left "running" go back to the queue. On a full
     * disk this write fails; lucy must still start (reads, /health and
     * webhooks keep working), so the workers retry it once space is back. */
    int rc = lucy_store_write(p->ctx->store, requeue_running, NULL, 0);
    if (rc) {
        p->requeue_pending = 1;
        lucy_log(LUCY_LOG_WARNING, "cannot requeue interrupted jobs yet; will retry", "{s:s}",
                 "error", lucy_strerror(rc));
    }
    for (int i = 0; i < p->n_workers; i++) {
        p->workers[i].pool = p;
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0)
            return LUCY_ENOMEM;
        p->workers[i].started = 1;
    }
    return 0;
}

void lucy_jobs_pool_stop(struct lucy_jobs_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++) {
        struct worker *w = &p->workers[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        w->started = 0;
        if (w->engine_state)
            lucy_asr_close(w->engine, w->engine_state);
        w->engine_state = NULL;
    }
}

void lucy_jobs_pool_free(struct lucy_jobs_pool *p)
{
    if (!p)
        return;
    lucy_jobs_pool_stop(p);
    pthread_cond_destroy(&p->changed);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

void lucy_jobs_pool_wake(struct lucy_jobs_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->kicks++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
}

int lucy_jobs_pool_wait(struct lucy_jobs_pool *p, long long id, int timeout_ms,
                        struct lucy_job *out)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    for (;;) {
        int rc = lucy_jobs_get(p->ctx->store, id, out);
        if (rc)
            return rc;
        if (strcmp(out->status, "queued") != 0 && strcmp(out->status, "running") != 0)
            return 0;
        pthread_mutex_lock(&p->mu);
        int timed_out = 0;
        if (!p->stopping) {
            /* Wake at least once a second: a state change may have been
             * published between the read above and this wait. */
            struct timespec step;
            clock_gettime(CLOCK_REALTIME, &step);
            step.tv_sec += 1;
            if (step.tv_sec > until.tv_sec ||
                (step.tv_sec == until.tv_sec && step.tv_nsec > until.tv_nsec))
                step = until;
            pthread_cond_timedwait(&p->changed, &p->mu, &step);
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            timed_out = now.tv_sec > until.tv_sec ||
                        (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec);
        }
        /* ctx->stopping: SIGTERM came; HTTP waits for this handler before
         * the pool is stopped, so do not hold the shutdown up. */
        int stopping = p->stopping || p->ctx->stopping;
        pthread_mutex_unlock(&p->mu);
        if (stopping || timed_out) {
            rc = lucy_jobs_get(p->ctx->store, id, out);
            if (rc)
                return rc;
            return strcmp(out->status, "queued") == 0 || strcmp(out->status, "running") == 0
                       ? LUCY_ETIMEDOUT
                       : 0;
        }
    }
}

void lucy_jobs_pool_stats(struct lucy_jobs_pool *p, struct lucy_jobs_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->stats;
    pthread_mutex_unlock(&p->mu);
}
