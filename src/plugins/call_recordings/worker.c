/*
 * worker.c - the transcription worker pool (DESIGN §7, §9).
 *
 * LUCY_ASR_WORKERS threads named "asr-worker", each with its own engine
 * instance (an instance is used by one thread at a time, asr.h). A worker
 * loops:
 *
 *   1. housekeeping (lucy_jobs_housekeep): due retries -> queued, and
 *      queued <-> blocked as the disk turns critical or recovers;
 *   2. claim the next queued job (lucy_jobs_claim: queue order of DESIGN §13; atomic, two workers
 *      never take the same job);
 *   3. run it: pick a path of the recording, open it and read its first
 *      block. A lock error (EDEADLK, EAGAIN, EBUSY, ETXTBSY: a sync client
 *      holds the file) leads to a temp copy: only when the disk guard
 *      admits the file's size plus the critical margin, made with mkstemp
 *      in DATA_DIR/tmp (0700) and unlinked at once, so it disappears with
 *      the descriptor on success, failure or crash; then a fresh open and
 *      a plain sequential read of the whole file. Decode (16 kHz, a
 *      stereo call per channel) and transcribe chunk by chunk through
 *      src/asr/channels.c, as `lucy transcribe` does, with this file's hook
 *      adding the checkpoints (with the engine and model the job asked for: the
 *      instance switches models when it holds others), and finish the job (lucy_jobs_finish:
 * transcript + segments + index documents + the job's new state in ONE store write);
 *   4. classify a failure by table (source_errors[], engine_errors[]):
 *      passing causes (file locked, missing, I/O, engine unavailable) ->
 *      retry_wait, which jobs.c schedules with backoff; disk -> blocked;
 *      content or engine errors -> failed with the reason.
 *
 * The job table and its transitions are jobs.c's: this file has no SQL.
 * Each worker is a struct lucy_thread (thread.h), napping 1 s between
 * looks for due retries unless lucy_jobs_pool_wake() kicks it. Waiters of
 * ?wait=1 sleep on the pool's `changed` condition, broadcast whenever a
 * job changes state.
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
#include "../../asr/lifecycle.h"
#include "../../clock.h"
#include "../../disk/disk.h"
#include "../../error.h"
#include "../../log.h"
#include "../../lucy.h"
#include "../../thread.h"
#include "checkpoint.h"
#include "jobs.h"
#include "recording.h"
#include "scan_int.h"
#include "transcript.h"

#define IDLE_WAIT_MS         1000 /* how often an idle worker looks for due retries */
#define ENGINE_REOPEN_S      60   /* how often a failed engine open is retried */
#define FIRST_BLOCK_BYTES    4096 /* the read-first-block check */
#define COPY_CHUNK_BYTES     (256 * 1024)
#define IO_RETRY_ATTEMPTS    5     /* an I/O error that persists this long fails the job */
#define STORE_RETRY_FIRST_MS 500   /* first wait before storing an outcome again */
#define STORE_RETRY_MAX_MS   10000 /* the wait doubles up to this */

/* The job a worker runs, as the API reports it (DESIGN §13); under the
 * pool's mu. Audio seconds count speech chunks only (silence is skipped). */
struct progress {
    long long job_id;      /* 0 = idle */
    char recording_id[72]; /* its recording */
    int planned;           /* 1 once the chunks are known (before: decoding) */
    double total_s;        /* audio of all chunks, every channel */
    double done_s;         /* of it recognised, or resumed from checkpoints */
    double resumed_s;      /* taken from checkpoints at the start of this run */
    int64_t started_ms;    /* monotonic: when this run's first chunk began */
    int chunks_total;      /* chunks of the plan */
    int chunks_done;       /* recognised or resumed */
};

struct worker {
    struct lucy_jobs_pool *pool; /* owner */
    struct progress progress;    /* the running job's; under pool->mu */
    struct lucy_thread thread;   /* "asr-worker" */
    /* This worker's engine instances, loaded on demand: lane[0] for every
     * job, more lanes (lucy_asr_lanes) for a job with chunks for them;
     * used by the lane threads of lucy_asr_transcribe_plan during a job. */
    struct lucy_asr_instance lane[LUCY_ASR_MAX_LANES];
    int64_t next_open_s; /* when to retry a failed open (monotonic s) */
};

struct lucy_jobs_pool {
    struct lucy_ctx *ctx;              /* daemon context (not owned) */
    struct lucy_asr_options asr;       /* engine options from the config */
    struct lucy_asr_channels channels; /* LUCY_CALL_CHANNELS: split or mix, who is where */
    int chunk_s;                       /* LUCY_ASR_CHUNK_S */
    int retry_base_s;                  /* LUCY_JOB_RETRY_BASE_S */
    int n_workers;                     /* LUCY_ASR_WORKERS */
    struct worker *workers;            /* n_workers */
    pthread_mutex_t mu;                /* guards everything below */
    pthread_cond_t changed;            /* waiters: some job changed state; CLOCK_MONOTONIC */
    int stopping;                      /* stop asked: workers end, waiters return */
    int requeue_pending;               /* start-up requeue failed (disk full): retry */
    struct lucy_jobs_stats stats;      /* /metrics figures */
};

/* ---- outcome of one run, and how each failure is classified -------------- */

/* What a LUCY_E* code from reading/decoding the source means for the job.
 * `limited` retries turn into failed after IO_RETRY_ATTEMPTS attempts. */
static const struct {
    int err;                     /* from reading or decoding */
    enum lucy_job_status status; /* the job's new state */
    const char *error_type;      /* for the job and the API's error reply */
    int limited;                 /* gives up (failed) after IO_RETRY_ATTEMPTS */
    const char *advice;          /* to the operator, after the detail */
} source_errors[] = {
    {LUCY_ELOCKED, LUCY_JOB_RETRY_WAIT, "file_locked", 0,
     "the file is being synced by the cloud client (it holds a lock on it); lucy retries by "
     "itself with backoff"},
    {LUCY_ENOTFOUND, LUCY_JOB_RETRY_WAIT, "file_missing", 0,
     "no path of this recording can be found (moved, deleted, or its folder is unmounted); lucy "
     "retries by itself"},
    {LUCY_EIO, LUCY_JOB_RETRY_WAIT, "io_error", 1,
     "reading the file failed with an I/O error; lucy retries a few times, check the disk or "
     "the mount"},
    {LUCY_ENOMEM, LUCY_JOB_RETRY_WAIT, "out_of_memory", 1, "out of memory; lucy retries later"},
    {LUCY_EUNAVAIL, LUCY_JOB_RETRY_WAIT, "media_unavailable", 0,
     "lucy's media module (lucy-media.so) could not be loaded; install it next to the lucy "
     "binary (the log says where lucy looked); the job is retried by itself"},
    {LUCY_ECRASHED, LUCY_JOB_RETRY_WAIT, "media_crashed", 1,
     "the media process decoding the file died (FFmpeg crashed on it, or it was killed); lucy "
     "retries a few times in a new one, then gives up on the file"},
    {LUCY_ENOSPC, LUCY_JOB_BLOCKED, "disk_critical", 0,
     "the disk is critical (no room for a temp copy or the transcript); the job resumes by "
     "itself when space is freed"},
    {LUCY_EPERM, LUCY_JOB_FAILED, "permission_denied", 0,
     "lucy may not read the file: fix its permissions and ask for a transcription again"},
    {LUCY_ECORRUPT, LUCY_JOB_FAILED, "corrupt", 0,
     "the file is not decodable audio; it is retried when the file changes"},
};

/* What a LUCY_E* code from the engine means. */
static const struct {
    int err;                     /* from the engine */
    enum lucy_job_status status; /* the job's new state */
    const char *error_type;      /* for the job and the API's error reply */
    const char *advice;          /* to the operator, after the detail */
} engine_errors[] = {
    {LUCY_EUNAVAIL, LUCY_JOB_RETRY_WAIT, "asr_unavailable",
     "the speech recognition engine is unavailable; lucy retries with backoff"},
    {LUCY_ETIMEDOUT, LUCY_JOB_RETRY_WAIT, "asr_unavailable",
     "the speech recognition engine timed out; lucy retries with backoff"},
    {LUCY_ENOMEM, LUCY_JOB_RETRY_WAIT, "out_of_memory", "out of memory; lucy retries later"},
    {LUCY_ECRASHED, LUCY_JOB_RETRY_WAIT, "asr_crashed",
     "the recogniser's media process died (a crash, out of memory, or killed); lucy retries "
     "with backoff, on one lane"},
    {LUCY_ENOSPC, LUCY_JOB_BLOCKED, "disk_critical",
     "the disk is critical; the job resumes by itself when space is freed"},
};

static void outcome_from_source(struct lucy_job_outcome *o, int err, int attempts,
                                const char *detail)
{
    for (size_t i = 0; i < sizeof source_errors / sizeof source_errors[0]; i++) {
        if (source_errors[i].err != err)
            continue;
        int give_up = source_errors[i].limited && attempts >= IO_RETRY_ATTEMPTS;
        o->status = give_up ? LUCY_JOB_FAILED : source_errors[i].status;
        o->error_type = source_errors[i].error_type;
        snprintf(o->error, sizeof o->error, "%s: %s",
                 detail && *detail ? detail : lucy_strerror(err), source_errors[i].advice);
        return;
    }
    o->status = LUCY_JOB_FAILED;
    o->error_type = "internal";
    snprintf(o->error, sizeof o->error, "%s (%s); ask for a transcription again",
             detail && *detail ? detail : "reading the recording failed", lucy_strerror(err));
}

static void outcome_from_engine(struct lucy_job_outcome *o, int err, const char *detail)
{
    for (size_t i = 0; i < sizeof engine_errors / sizeof engine_errors[0]; i++) {
        if (engine_errors[i].err != err)
            continue;
        o->status = engine_errors[i].status;
        o->error_type = engine_errors[i].error_type;
        snprintf(o->error, sizeof o->error, "%s: %s",
                 detail && *detail ? detail : lucy_strerror(err), engine_errors[i].advice);
        return;
    }
    o->status = LUCY_JOB_FAILED;
    o->error_type = "asr_failed";
    snprintf(o->error, sizeof o->error,
             "the speech recognition engine failed: %s; check LUCY_ASR_ENGINE and its model, "
             "then ask for a transcription again",
             detail && *detail ? detail : lucy_strerror(err));
}

/* ---- reading the source ---------------------------------------------------- */

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
    src = open(path,
               O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK); /* a FIFO must not hold a worker */
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
            rc = lucy_scan_is_lock_errno(errno) ? LUCY_ELOCKED : lucy_err_from_errno(errno);
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
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK); /* see temp_copy */
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "open %s: %s (%s)", display, strerror(e),
                 lucy_scan_is_lock_errno(e) ? "locked" : "not readable");
        /* A lock on open: a temp copy needs an open too, so it fails the
         * same way; classify without trying. */
        return lucy_scan_is_lock_errno(e) ? LUCY_ELOCKED : lucy_err_from_errno(e);
    }
    char block[FIRST_BLOCK_BYTES];
    ssize_t n = read_retry(fd, block, sizeof block);
    if (n >= 0 && lseek(fd, 0, SEEK_SET) == 0) {
        *out_fd = fd;
        return 0;
    }
    int e = errno;
    close(fd);
    if (!lucy_scan_is_lock_errno(e)) {
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
    static const int order[] = {LUCY_ESHUTDOWN, LUCY_ENOSPC,   LUCY_ELOCKED,  LUCY_EPERM,
                                LUCY_EIO,       LUCY_EUNAVAIL, LUCY_ECRASHED, LUCY_ENOMEM,
                                LUCY_ECORRUPT,  LUCY_ENOTFOUND};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (order[i] == err)
            return (int)i;
    return (int)(sizeof order / sizeof order[0]);
}

/* Decodes the recording from the first path that works, a stereo one per
 * channel unless LUCY_CALL_CHANNELS=mix. */
static int decode_recording(struct lucy_jobs_pool *p, const struct lucy_recording_info *info,
                            struct lucy_audio *audio, char *err, size_t errlen)
{
    int best = LUCY_ENOTFOUND;
    snprintf(err, errlen, "the recording has no known path");
    for (int i = 0; i < info->n_paths; i++) {
        const char *path = info->paths[i].path, *display = info->paths[i].display;
        char e1[512] = "";
        int fd = -1, copied = 0;
        int rc = open_source(p, path, display, &fd, &copied, e1, sizeof e1);
        if (rc == 0) {
            rc = lucy_audio_decode_call_fd(fd, display, &p->channels, audio, e1, sizeof e1);
            if (rc == LUCY_ELOCKED && !copied) {
                /* Locked after the first block: copy and decode that. */
                close(fd);
                fd = -1;
                lucy_audio_free(audio);
                rc = temp_copy(p, path, display, &fd, e1, sizeof e1);
                if (rc == 0)
                    rc = lucy_audio_decode_call_fd(fd, display, &p->channels, audio, e1, sizeof e1);
            }
            if (fd >= 0)
                close(fd);
            if (rc == 0)
                return 0;
            lucy_audio_free(audio);
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

static int worker_stopping(struct worker *w);

static void publish(struct lucy_jobs_pool *p)
{
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
}

static int ensure_engine(struct worker *w)
{
    struct lucy_jobs_pool *p = w->pool;
    if (w->lane[0].state)
        return 0;
    int64_t now = lucy_mono_ms() / 1000;
    if (now < w->next_open_s)
        return LUCY_EUNAVAIL;
    char err[256] = "";
    int rc = lucy_asr_instance_load(&w->lane[0], err, sizeof err);
    pthread_mutex_lock(&p->mu);
    if (rc == 0) {
        p->stats.engine_error[0] = '\0';
    } else {
        /* A media process that died while starting is no engine that
         * cannot open: try again at the next look, not in a minute. */
        w->next_open_s = now + (rc == LUCY_ECRASHED ? 1 : ENGINE_REOPEN_S);
        snprintf(p->stats.engine_error, sizeof p->stats.engine_error, "%s", err);
    }
    pthread_mutex_unlock(&p->mu);
    if (rc)
        lucy_log(LUCY_LOG_ERROR, "speech recognition engine cannot be opened", "{s:s,s:s,s:i}",
                 "engine", p->asr.engine ? p->asr.engine : "auto", "error", err, "retry_in_s",
                 ENGINE_REOPEN_S);
    else
        lucy_log(LUCY_LOG_INFO, "speech recognition engine ready", "{s:s}", "engine",
                 w->lane[0].engine->name);
    return rc;
}

/* ---- chunks, checkpoints, progress (DESIGN §13) ----------------------------- */

static void progress_set(struct worker *w, const struct progress *pr)
{
    pthread_mutex_lock(&w->pool->mu);
    w->progress = *pr;
    pthread_mutex_unlock(&w->pool->mu);
}

/* The checkpoint of chunk c of channel ch, or NULL. */
static struct lucy_checkpoint *find_checkpoint(struct lucy_checkpoint *v, size_t n, int ch,
                                               const struct lucy_chunk *c)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].channel == ch && v[i].first_sample == c->first_sample &&
            v[i].n_samples == c->n_samples)
            return &v[i];
    return NULL;
}

/* One run of a job through lucy_asr_transcribe_plan: what its chunk hook
 * needs. */
struct run {
    struct worker *w;
    const struct lucy_job *job;
    struct lucy_checkpoint *saved; /* committed by earlier runs */
    size_t n_saved;
    struct progress pr; /* published after every chunk; under pool->mu (lanes share it) */
};

/* Counts chunk_s of audio as done (resumed: from a checkpoint) and
 * publishes the run's progress. Any lane. */
static void progress_add(struct run *r, double chunk_s, int resumed)
{
    pthread_mutex_lock(&r->w->pool->mu);
    r->pr.done_s += chunk_s;
    r->pr.resumed_s += resumed ? chunk_s : 0;
    r->pr.chunks_done++;
    r->w->progress = r->pr;
    pthread_mutex_unlock(&r->w->pool->mu);
}

/* Recognises one chunk (lucy_asr_recognise_chunk) and commits it as a
 * checkpoint (a failed commit only costs the resume). */
static int recognise_chunk(struct run *r, int lane, const struct lucy_asr_track *t,
                           const struct lucy_chunk *c, int continues, struct lucy_transcript *piece,
                           char *err, size_t errlen)
{
    struct worker *w = r->w;
    struct lucy_jobs_pool *p = w->pool;
    struct lucy_asr_instance *in = &w->lane[lane];
    int rc = lucy_asr_recognise_chunk(in->engine, in->state, t, c, continues, piece, err, errlen);
    lucy_asr_instance_touch(in); /* work, for the idle unload */
    if (rc == LUCY_ECRASHED)     /* its process is gone: the next job loads it again */
        lucy_asr_instance_unload(in);
    if (rc)
        return rc;
    double audio_s = (double)c->n_samples / LUCY_ASR_SAMPLE_RATE;
    int put = lucy_checkpoint_put(p->ctx->store, r->job->id, t->channel, c, piece, in->engine->name,
                                  piece->model, piece->wall_s);
    if (put)
        lucy_log(LUCY_LOG_WARNING, "chunk checkpoint not stored; a restart redoes it", "{s:I,s:s}",
                 "job_id", (json_int_t)r->job->id, "error", lucy_strerror(put));
    pthread_mutex_lock(&p->mu);
    p->stats.chunks_recognised++;
    p->stats.chunk_audio_s_total += audio_s;
    pthread_mutex_unlock(&p->mu);
    lucy_log(LUCY_LOG_DEBUG, "chunk recognised", "{s:I,s:i,s:I,s:f,s:f}", "job_id",
             (json_int_t)r->job->id, "channel", t->channel, "t0_ms",
             (json_int_t)(c->first_sample * 1000 / LUCY_ASR_SAMPLE_RATE), "audio_s", audio_s,
             "wall_s", piece->wall_s);
    return 0;
}

/* The worker's chunk hook (lucy_asr_chunk_fn): a chunk a previous run
 * committed comes from its checkpoint; else, unless the worker is asked
 * to stop (LUCY_ESHUTDOWN), lane's instance recognises it and it is
 * committed. Progress is published after each. Runs on the lane's thread. */
static int job_chunk(void *arg, int lane, const struct lucy_asr_track *t,
                     const struct lucy_chunk *c, int continues, struct lucy_transcript *piece,
                     int *fresh, char *err, size_t errlen)
{
    struct run *r = arg;
    struct lucy_checkpoint *cp = find_checkpoint(r->saved, r->n_saved, t->channel, c);
    int rc;
    if (cp) {
        rc = lucy_transcript_append(piece, &cp->seg, 0, t->channel, NULL);
        snprintf(piece->model, sizeof piece->model, "%s", cp->model);
        piece->wall_s = cp->wall_s;
        *fresh = 0;
    } else if (worker_stopping(r->w)) {
        return LUCY_ESHUTDOWN;
    } else {
        rc = recognise_chunk(r, lane, t, c, continues, piece, err, errlen);
        *fresh = 1;
    }
    if (rc == 0)
        progress_add(r, (double)c->n_samples / LUCY_ASR_SAMPLE_RATE, cp != NULL);
    return rc;
}

/* lucy_asr_run.ready: a committed chunk needs no lane. */
static int job_chunk_ready(void *arg, const struct lucy_asr_track *t, const struct lucy_chunk *c)
{
    struct run *r = arg;
    return find_checkpoint(r->saved, r->n_saved, t->channel, c) != NULL;
}

/* The lanes a job runs on: lane[0] holds the job's engine (run_job loaded
 * it); as lucy_asr_lanes allows and the job has chunks to recognise, more
 * lanes load the same engine and model, each only with memory to spare
 * (lucy_asr_room_for_lane: pocketsphinx ends the process when an
 * allocation fails). A job on its second or later attempt (a retry, or a
 * run a crash or a stop interrupted) runs on one lane, so a lane that
 * cannot fit cannot take lucy down at every start. A lane that does not
 * load leaves fewer lanes, not a failed job. Returns how many are ready. */
static int load_lanes(struct worker *w, const struct lucy_job *job, int to_recognise,
                      double pending_s)
{
    int want = lucy_asr_lanes(w->lane[0].engine, &w->pool->asr, pending_s, w->pool->chunk_s);
    if (want > to_recognise)
        want = to_recognise;
    if (job->attempts > 1)
        want = 1;
    int n = 1;
    for (; n < want; n++) {
        char err[256] = "";
        if (!w->lane[n].state && !lucy_asr_room_for_lane(err, sizeof err)) {
            lucy_log(LUCY_LOG_WARNING, "no memory for another recognition lane; fewer lanes",
                     "{s:I,s:i,s:s}", "job_id", (json_int_t)job->id, "lanes", n, "error", err);
            break;
        }
        if (lucy_asr_instance_load_for(&w->lane[n], job->asr.engine, job->asr.model, err,
                                       sizeof err) != 0) {
            lucy_log(LUCY_LOG_WARNING, "a recognition lane did not load; fewer lanes",
                     "{s:I,s:i,s:s}", "job_id", (json_int_t)job->id, "lanes", n, "error", err);
            break;
        }
    }
    /* Lanes this job does not use give their model back once idle, even
     * while the worker stays busy. */
    for (int k = n; k < LUCY_ASR_MAX_LANES; k++)
        lucy_asr_instance_unload_if_idle(&w->lane[k]);
    return n;
}

/* Transcribes the decoded recording chunk by chunk, each channel of a
 * per-channel call apart (lucy_asr_plan_make / lucy_asr_transcribe_plan),
 * taking chunks a previous run committed from their checkpoints; the
 * segments of all channels merged in time order in *out. LUCY_ESHUTDOWN
 * when the worker is asked to stop between chunks (the job stays running
 * and resumes at the next start); engine errors as lucy_asr_transcribe. */
static int transcribe_audio(struct worker *w, const struct lucy_job *job,
                            const struct lucy_audio *a, struct lucy_transcript *out, char *err,
                            size_t errlen)
{
    struct lucy_jobs_pool *p = w->pool;
    struct lucy_asr_plan plan;
    struct run r = {.w = w, .job = job, .pr = {.job_id = job->id}};
    snprintf(r.pr.recording_id, sizeof r.pr.recording_id, "%s", job->recording_id);

    int rc = lucy_asr_plan_make(a, &p->channels, p->chunk_s, &plan, err, errlen);
    if (rc == 0 && (rc = lucy_checkpoint_load(p->ctx->store, job->id, w->lane[0].engine->name,
                                              &r.saved, &r.n_saved)) != 0)
        snprintf(err, errlen, "cannot read the job's checkpoints: %s", lucy_strerror(rc));
    r.pr.total_s = plan.total_s;
    r.pr.chunks_total = plan.n_chunks;
    r.pr.planned = 1;
    r.pr.started_ms = lucy_mono_ms();
    progress_set(w, &r.pr);

    int to_recognise = 0;
    double pending_s = 0;
    for (int k = 0; rc == 0 && k < plan.n_tracks; k++)
        for (size_t i = 0; i < plan.track[k].n_chunks; i++) {
            const struct lucy_chunk *c = &plan.track[k].chunks[i];
            if (!job_chunk_ready(&r, &plan.track[k], c)) {
                to_recognise++;
                pending_s += (double)c->n_samples / LUCY_ASR_SAMPLE_RATE;
            }
        }
    struct lucy_asr_run how = {.fn = job_chunk, .arg = &r, .ready = job_chunk_ready};
    if (rc == 0) {
        how.n_lanes = load_lanes(w, job, to_recognise, pending_s);
        /* The rate behind eta_s starts with the recognition, not before
         * the extra lanes' models loaded. */
        pthread_mutex_lock(&p->mu);
        r.pr.started_ms = lucy_mono_ms();
        w->progress = r.pr;
        pthread_mutex_unlock(&p->mu);
        rc = lucy_asr_transcribe_plan(&plan, w->lane[0].engine->name, &how, out, err, errlen);
    }
    if (rc == 0 && !out->model[0]) /* all silence: no chunk named the model */
        snprintf(out->model, sizeof out->model, "%s",
                 lucy_asr_model(w->lane[0].engine, w->lane[0].state));
    if (rc == 0 && r.n_saved > 0)
        lucy_log(LUCY_LOG_INFO, "transcription resumed from checkpoints", "{s:I,s:f,s:f}", "job_id",
                 (json_int_t)job->id, "resumed_s", r.pr.resumed_s, "total_s", r.pr.total_s);
    lucy_asr_plan_free(&plan);
    lucy_checkpoints_free(r.saved, r.n_saved);
    return rc;
}

/* One try at storing a job's outcome: the outcome itself, or when the
 * transcript does not fit (ENOSPC) the job blocked (it is redone when the
 * disk recovers). Updates *o to what was stored. */
static int store_outcome_once(struct lucy_jobs_pool *p, const struct lucy_job *job,
                              struct lucy_job_outcome *o, const struct lucy_transcript *t,
                              const struct lucy_recording_info *info, int64_t *next_retry_at_s)
{
    int rc =
        lucy_jobs_finish(p->ctx->store, job, o, p->retry_base_s, t, info->time_s, next_retry_at_s);
    if (rc != LUCY_ENOSPC || !t)
        return rc;
    struct lucy_job_outcome blocked = {0};
    outcome_from_source(&blocked, LUCY_ENOSPC, job->attempts, "storing the transcript");
    rc = lucy_jobs_finish(p->ctx->store, job, &blocked, p->retry_base_s, NULL, 0, next_retry_at_s);
    if (rc == 0)
        *o = blocked;
    return rc;
}

/* Stores a job's outcome, retrying with backoff (STORE_RETRY_FIRST_MS
 * doubling to STORE_RETRY_MAX_MS) while the store cannot take it (disk
 * full, I/O error): the outcome is kept in memory meanwhile, the pool
 * counts the job in stats.unstored_jobs (call_recordings:jobs warns), and
 * the job stays `running`, so nothing needs a restart once the store is
 * writable again. Returns 0, or the last store error when the worker is
 * asked to stop first. */
static int store_outcome(struct worker *w, const struct lucy_job *job, struct lucy_job_outcome *o,
                         const struct lucy_transcript *t, const struct lucy_recording_info *info,
                         int64_t *next_retry_at_s)
{
    struct lucy_jobs_pool *p = w->pool;
    int rc = store_outcome_once(p, job, o, t, info, next_retry_at_s);
    if (rc == 0)
        return 0;
    pthread_mutex_lock(&p->mu);
    p->stats.unstored_jobs++;
    snprintf(p->stats.store_error, sizeof p->stats.store_error, "%s", lucy_strerror(rc));
    pthread_mutex_unlock(&p->mu);
    lucy_log(LUCY_LOG_ERROR, "cannot record a transcription result; retrying", "{s:I,s:s}",
             "job_id", (json_int_t)job->id, "error", lucy_strerror(rc));
    int64_t wait_ms = STORE_RETRY_FIRST_MS;
    while (rc != 0 && !worker_stopping(w)) {
        if (lucy_thread_nap(&w->thread, wait_ms))
            break;
        wait_ms = wait_ms * 2 < STORE_RETRY_MAX_MS ? wait_ms * 2 : STORE_RETRY_MAX_MS;
        rc = store_outcome_once(p, job, o, t, info, next_retry_at_s);
    }
    pthread_mutex_lock(&p->mu);
    p->stats.unstored_jobs--;
    if (p->stats.unstored_jobs == 0)
        p->stats.store_error[0] = '\0';
    pthread_mutex_unlock(&p->mu);
    if (rc == 0)
        lucy_log(LUCY_LOG_INFO, "transcription result stored after a retry", "{s:I}", "job_id",
                 (json_int_t)job->id);
    return rc;
}

static void run_job(struct worker *w, const struct lucy_job *job)
{
    struct lucy_jobs_pool *p = w->pool;
    struct lucy_ctx *ctx = p->ctx;
    struct lucy_recording_info info = {0};
    struct lucy_audio audio = {0};
    struct lucy_transcript t = {0};
    struct lucy_job_outcome o = {0};
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
    struct progress decoding = {.job_id = job->id};
    snprintf(decoding.recording_id, sizeof decoding.recording_id, "%s", job->recording_id);
    progress_set(w, &decoding);
    rc = decode_recording(p, &info, &audio, err, sizeof err);
    if (rc == LUCY_ESHUTDOWN) /* stopped mid-decode: the job resumes at the next start */
        goto out;
    if (rc) {
        outcome_from_source(&o, rc, job->attempts, err);
        goto finish;
    }
    /* The engine and model the job asked for (DESIGN §13 Versions; the
     * defaults when it named none): the instance switches only if it holds
     * others. */
    rc = lucy_asr_instance_load_for(&w->lane[0], job->asr.engine, job->asr.model, err, sizeof err);
    if (rc && rc != LUCY_ENOMEM && job->asr.model[0]) {
        /* The job's own model was checked when it was queued (a directory,
         * a file), so one that does not load is no model, or was removed
         * since: no retry loads it (docs/decisions.md, "Checkpoints stay
         * keyed by engine"). Retrying would also reload the default model
         * for nothing before each try. */
        o.status = LUCY_JOB_FAILED;
        o.error_type = "asr_failed";
        snprintf(o.error, sizeof o.error,
                 "the model this job asked for does not load (%.300s); ask for the transcription "
                 "again without \"model\" (the configured one) or with a model that loads",
                 err);
        goto finish;
    }
    if (rc == 0)
        rc = transcribe_audio(w, job, &audio, &t, err, sizeof err);
    if (rc == LUCY_ESHUTDOWN) {
        /* Stopped between chunks: the job stays running, and the next
         * start requeues it and resumes from its checkpoints. */
        lucy_log(LUCY_LOG_INFO, "transcription paused by the stop; resumes at the next start",
                 "{s:I}", "job_id", (json_int_t)job->id);
        goto out;
    }
    if (rc) {
        outcome_from_engine(&o, rc, err);
        goto finish;
    }
    have_transcript = 1;
    o.status = lucy_transcript_is_speech(&t) ? LUCY_JOB_DONE : LUCY_JOB_NO_SPEECH;
    pthread_mutex_lock(&p->mu);
    p->stats.audio_s_total += t.audio_s;
    p->stats.asr_wall_s_total += t.wall_s;
    p->stats.last_rtf = t.rtf;
    pthread_mutex_unlock(&p->mu);

finish:;
    int64_t next_retry_at_s = 0;
    rc = store_outcome(w, job, &o, have_transcript ? &t : NULL, &info, &next_retry_at_s);
    if (rc) {
        /* Only a stop ends the retries: the job stays running and the next
         * start puts it back in the queue. */
        lucy_log(LUCY_LOG_WARNING, "transcription result not stored before the stop", "{s:I,s:s}",
                 "job_id", (json_int_t)job->id, "error", lucy_strerror(rc));
        goto out;
    }
    if (o.error_type)
        lucy_log(o.status == LUCY_JOB_FAILED ? LUCY_LOG_WARNING : LUCY_LOG_INFO,
                 "transcription not done", "{s:I,s:s,s:s,s:s,s:i,s:I}", "job_id",
                 (json_int_t)job->id, "recording_id", job->recording_id, "status",
                 lucy_job_status_name(o.status), "error_type", o.error_type, "attempts",
                 job->attempts, "next_retry_at_s", (json_int_t)next_retry_at_s);
    else
        lucy_log(LUCY_LOG_INFO, "transcribed", "{s:I,s:s,s:s,s:i,s:f,s:f,s:s}", "job_id",
                 (json_int_t)job->id, "recording_id", job->recording_id, "status",
                 lucy_job_status_name(o.status), "segments", (int)t.n_segments, "audio_s",
                 t.audio_s, "rtf", t.rtf, "engine", t.engine);
out:
    progress_set(w, &(struct progress){0});
    lucy_transcript_free(&t);
    lucy_audio_free(&audio);
    lucy_recording_info_free(&info);
    publish(p);
}

/* ---- the thread ----------------------------------------------------------- */

/* 1 when the worker must end: its thread or the pool is stopping, or lucy
 * is shutting down. */
static int worker_stopping(struct worker *w)
{
    struct lucy_jobs_pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    int stopping = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return stopping || lucy_ctx_stopping(p->ctx) || lucy_thread_stopping(&w->thread);
}

/* The start-up requeue, when it could not be written then (disk full). */
static void requeue_if_pending(struct lucy_jobs_pool *p)
{
    pthread_mutex_lock(&p->mu);
    int requeue = p->requeue_pending;
    pthread_mutex_unlock(&p->mu);
    if (!requeue || lucy_jobs_requeue_running(p->ctx->store) != 0)
        return;
    pthread_mutex_lock(&p->mu);
    p->requeue_pending = 0;
    pthread_mutex_unlock(&p->mu);
    lucy_log(LUCY_LOG_INFO, "interrupted jobs requeued", NULL);
}

static void worker_main(void *arg)
{
    struct worker *w = arg;
    struct lucy_jobs_pool *p = w->pool;
    struct lucy_ctx *ctx = p->ctx;
    while (!worker_stopping(w)) {
        requeue_if_pending(p);
        int critical = lucy_disk_critical(ctx->disk), changed = 0;
        if (lucy_jobs_housekeep(ctx->store, critical, &changed) == 0 && changed > 0)
            publish(p);
        int queued = 0;
        struct lucy_job job = {0};
        /* The model loads only once there is a job (DESIGN §13). */
        if (critical || lucy_jobs_any_queued(ctx->store, &queued) != 0 || !queued ||
            ensure_engine(w) != 0 || lucy_jobs_claim(ctx->store, &job) != 0 || job.id == 0) {
            for (int k = 0; k < LUCY_ASR_MAX_LANES; k++)
                lucy_asr_instance_unload_if_idle(&w->lane[k]);
            lucy_thread_nap(&w->thread, IDLE_WAIT_MS);
            continue;
        }
        publish(p);
        run_job(w, &job);
    }
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
    /* Validated at start-up (the config's enum): never LUCY_EINVAL here. */
    lucy_asr_channels_parse(ctx->cfg->call_channels, &p->channels);
    p->chunk_s = ctx->cfg->asr_chunk_s > 0 ? ctx->cfg->asr_chunk_s : 30;
    p->retry_base_s = ctx->cfg->job_retry_base_s > 0 ? ctx->cfg->job_retry_base_s : 30;
    p->n_workers = ctx->cfg->asr_workers > 0 ? ctx->cfg->asr_workers : 1;
    p->workers = calloc((size_t)p->n_workers, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->changed, &ca);
    pthread_condattr_destroy(&ca);
    return p;
}

int lucy_jobs_pool_start(struct lucy_jobs_pool *p)
{
    /* Jobs a crashed run left "running" go back to the queue. On a full
     * disk this write fails; lucy must still start (reads, /health and
     * webhooks keep working), so the workers retry it once space is back. */
    int rc = lucy_jobs_requeue_running(p->ctx->store);
    if (rc) {
        p->requeue_pending = 1;
        lucy_log(LUCY_LOG_WARNING, "cannot requeue interrupted jobs yet; will retry", "{s:s}",
                 "error", lucy_strerror(rc));
    }
    for (int i = 0; i < p->n_workers; i++) {
        struct worker *w = &p->workers[i];
        w->pool = p;
        for (int k = 0; k < LUCY_ASR_MAX_LANES; k++)
            lucy_asr_instance_init(&w->lane[k], &p->asr, p->ctx->cfg->asr_idle_unload_s);
        w->thread = (struct lucy_thread){.name = "asr-worker", .main = worker_main, .arg = w};
        if (lucy_thread_start(&w->thread) != 0)
            return LUCY_ENOMEM;
    }
    return 0;
}

void lucy_jobs_pool_stop(struct lucy_jobs_pool *p)
{
    if (!p)
        return;
    /* Every worker and waiter learns of the stop first, so none starts a
     * new job while the others are joined one by one. */
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++)
        lucy_thread_kick(&p->workers[i].thread);
    for (int i = 0; i < p->n_workers; i++) {
        struct worker *w = &p->workers[i];
        lucy_thread_stop(&w->thread);
        for (int k = 0; k < LUCY_ASR_MAX_LANES; k++)
            lucy_asr_instance_unload(&w->lane[k]);
    }
}

void lucy_jobs_pool_free(struct lucy_jobs_pool *p)
{
    if (!p)
        return;
    lucy_jobs_pool_stop(p);
    pthread_cond_destroy(&p->changed);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

void lucy_jobs_pool_wake(struct lucy_jobs_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_workers; i++)
        lucy_thread_kick(&p->workers[i].thread);
}

int lucy_jobs_pool_wait(struct lucy_jobs_pool *p, long long id, int timeout_ms,
                        struct lucy_job *out)
{
    int64_t deadline_ms = lucy_mono_ms() + timeout_ms;
    for (;;) {
        int rc = lucy_jobs_get(p->ctx->store, id, out);
        if (rc)
            return rc;
        if (!lucy_job_status_pending(out->status))
            return 0;
        pthread_mutex_lock(&p->mu);
        int timed_out = 0;
        if (!p->stopping) {
            /* Wake at least once a second: a state change may have been
             * published between the read above and this wait. */
            int64_t left_ms = deadline_ms - lucy_mono_ms();
            struct timespec step =
                lucy_deadline_ms(CLOCK_MONOTONIC, left_ms < 1000 ? left_ms : 1000);
            pthread_cond_timedwait(&p->changed, &p->mu, &step);
            timed_out = lucy_mono_ms() >= deadline_ms;
        }
        /* ctx->stopping: SIGTERM came; HTTP waits for this handler before
         * the pool is stopped, so do not hold the shutdown up. */
        int stopping = p->stopping || lucy_ctx_stopping(p->ctx);
        pthread_mutex_unlock(&p->mu);
        if (stopping || timed_out) {
            rc = lucy_jobs_get(p->ctx->store, id, out);
            if (rc)
                return rc;
            return lucy_job_status_pending(out->status) ? LUCY_ETIMEDOUT : 0;
        }
    }
}

/* Fills *out from a worker's progress (under p->mu). */
static void progress_report(const struct progress *pr, int64_t now_ms,
                            struct lucy_job_progress *out)
{
    memset(out, 0, sizeof *out);
    out->job_id = pr->job_id;
    snprintf(out->recording_id, sizeof out->recording_id, "%s", pr->recording_id);
    out->eta_s = -1;
    out->chunks_total = pr->chunks_total;
    out->chunks_done = pr->chunks_done;
    out->audio_s = pr->total_s;
    if (!pr->planned)
        return; /* still decoding */
    out->progress = pr->total_s > 0 ? pr->done_s / pr->total_s : 1;
    /* The rate of this run (resumed chunks cost nothing): the ETA needs
     * one chunk recognised first. */
    double recognised_s = pr->done_s - pr->resumed_s;
    double elapsed_s = (double)(now_ms - pr->started_ms) / 1e3;
    if (recognised_s > 0 && elapsed_s > 0)
        out->eta_s = elapsed_s / recognised_s * (pr->total_s - pr->done_s);
}

int lucy_jobs_pool_progress(struct lucy_jobs_pool *p, long long job_id,
                            struct lucy_job_progress *out)
{
    int found = 0;
    int64_t now_ms = lucy_mono_ms();
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n_workers && !found; i++)
        if (job_id > 0 && p->workers[i].progress.job_id == job_id) {
            progress_report(&p->workers[i].progress, now_ms, out);
            found = 1;
        }
    pthread_mutex_unlock(&p->mu);
    return found ? 0 : LUCY_ENOTFOUND;
}

int lucy_jobs_pool_running(struct lucy_jobs_pool *p, struct lucy_job_progress *out, int max)
{
    int n = 0;
    int64_t now_ms = lucy_mono_ms();
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n_workers && n < max; i++)
        if (p->workers[i].progress.job_id > 0)
            progress_report(&p->workers[i].progress, now_ms, &out[n++]);
    pthread_mutex_unlock(&p->mu);
    return n;
}

void lucy_jobs_pool_stats(struct lucy_jobs_pool *p, struct lucy_jobs_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->stats;
    pthread_mutex_unlock(&p->mu);
}
