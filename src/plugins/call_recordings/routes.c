/*
 * routes.c - the call_recordings HTTP API (DESIGN §5 Recordings):
 *
 *   GET  /recordings?status=&limit=&cursor=&sort=&from=&to=&person=
 *                                             list, newest call first by default
 *                                             (sort=-started_at|started_at|
 *                                             -duration|duration), from/to on the
 *                                             call's started_at, keyset cursor
 *                                             (an unknown status or sort, a limit
 *                                             out of 1..500, a cursor that is not
 *                                             an id, a bad date: 400 naming what is
 *                                             valid; an empty one = left out)
 *   GET  /recordings/{id}                     one recording with transcript
 *   DELETE /recordings/{id}                   forget it (forget.c)
 *   POST /recordings/scan                     scan now, the scan summary
 *   POST /recordings/{id}/transcribe[?wait=1] 202 {"job_id","status"}
 *                                             (wait: 1/true/yes or 0/false/no;
 *                                             body {"engine"} optional: a finished
 *                                             recording gets a new version)
 *   GET  /recordings/{id}/transcripts         every version, newest first
 *   GET  /recordings/{id}/transcripts/{n}     one version with its segments
 *   PUT  /recordings/{id}/transcripts/active  {"version": n}: switch and re-index
 *   POST /recordings/retranscribe, GET /job-groups/{id},
 *   POST /job-groups/{id}/cancel              bulk re-transcription (retranscribe.c)
 *   GET  /jobs/{id}                           a job's state
 *   GET  /recordings/{id}/audio               the file, with ranges (audio.c)
 *   GET  /recordings/{id}/transcript.{txt,srt,vtt,json}
 *                                             the transcript as a file (download.c)
 *   GET  /ledger?outcome=&limit=&cursor=      the ingest ledger (ledger.h): files
 *                                             seen and not made a recording of,
 *                                             failed transcriptions, with advice
 *
 * Every route needs the bearer token when one is configured.
 *
 * Transcribe never starts a second transcription while one is active: the
 * store's partial UNIQUE index and lucy_jobs_request() return the active
 * job. When every path of the recording is locked on open (a sync client
 * holds it), the answer is 423 file_locked with Retry-After; the job stays
 * and retries by itself. ?wait=1 blocks until the job ends, at most
 * WAIT_MAX_S, and only in up to half of the HTTP threads at a time (the
 * rest answer 202 at once) so waiting clients cannot starve the pool.
 *
 * Every handler reaches the plugin's state as req->arg (the struct
 * lucy_recordings given to lucy_http_add_routes()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../error.h"
#include "../../http/http.h"
#include "../../index/index.h"
#include "../../lucy.h"
#include "../../store/store.h"
#include "jobs.h"
#include "ledger.h"
#include "plugin.h"
#include "recording.h"
#include "retranscribe.h"
#include "scan_int.h"
#include "transcript.h"

#define WAIT_MAX_S         120 /* ?wait=1 bound */
#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX     500

/* A recording id is 64 lowercase hex digits (SHA-256). */
static int valid_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return 0;
    return n == 64;
}

static void reply_no_recording(struct lucy_http_response *resp, const char *id)
{
    lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                          "no recording with id %.80s: ids are the hex SHA-256 of the content, "
                          "as listed by GET /recordings",
                          id);
}

/* ---- GET /recordings ------------------------------------------------------ */

/* What ?status= accepts: a recording's scan_status (the CHECK of
 * recordings.scan_status, migration 20), or its transcript_status: a job
 * status (jobs.h) or "none" when it never had a job. */
static const char *const scan_statuses[] = {"ok", "missing", "unavailable"};
#define N_SCAN_STATUSES (sizeof scan_statuses / sizeof scan_statuses[0])
#define NO_TRANSCRIPT   "none" /* transcript_status of a recording without a job */

/* The i-th accepted status, NULL past the last. */
static const char *accepted_status(size_t i)
{
    if (i < N_SCAN_STATUSES)
        return scan_statuses[i];
    i -= N_SCAN_STATUSES;
    if (i < LUCY_JOB_N_STATUSES)
        return lucy_job_status_name((enum lucy_job_status)i);
    return i == LUCY_JOB_N_STATUSES ? NO_TRANSCRIPT : NULL;
}

static int status_known(const char *status)
{
    const char *s;
    for (size_t i = 0; (s = accepted_status(i)); i++)
        if (strcmp(status, s) == 0)
            return 1;
    return 0;
}

/* "ok, missing, ..., none" into buf (len bytes), for the 400 message. */
static void status_list(char *buf, size_t len)
{
    size_t used = 0;
    const char *s;
    buf[0] = '\0';
    for (size_t i = 0; (s = accepted_status(i)); i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", s);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
}

/* ?sort=, ?from=, ?to=, ?person= into q; 0, or -1 with a 400 sent. */
static int list_sort_and_dates(struct lucy_http_request *req, struct lucy_http_response *resp,
                               struct lucy_recording_query *q)
{
    const char *sort = lucy_http_query(req, "sort");
    if (sort && *sort) {
        const char *name;
        size_t i = 0;
        while ((name = lucy_recording_sort_name(i)) && strcmp(name, sort) != 0)
            i++;
        if (!name) {
            lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                                  "unknown sort \"%.40s\": use -started_at (newest call first, "
                                  "the default), started_at, -duration or duration",
                                  sort);
            return -1;
        }
        q->sort = name;
    }
    static const char *const bounds[] = {"from", "to"};
    for (int end = 0; end < 2; end++) {
        const char *v = lucy_http_query(req, bounds[end]);
        int64_t s;
        if (!v || !*v)
            continue;
        if (lucy_index_parse_time(v, end, &s) != 0) {
            lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                                  "%s must be Unix seconds or an ISO 8601 date or date-time "
                                  "(2024-05-31, 2024-05-31T14:00:00+02:00), not \"%.40s\"",
                                  bounds[end], v);
            return -1;
        }
        if (end) {
            q->has_to = 1;
            q->to_ms = s * 1000 + 999;
        } else {
            q->has_from = 1;
            q->from_ms = s * 1000;
        }
    }
    const char *person = lucy_http_query(req, "person");
    if (person && *person) {
        char *end;
        errno = 0;
        long long v = strtoll(person, &end, 10);
        if (*end || errno || v < 1 || person[0] < '0' || person[0] > '9') {
            lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                                  "person must be a person id (a whole number, as GET /people "
                                  "lists them), not \"%.40s\"",
                                  person);
            return -1;
        }
        q->person_id = v;
    }
    if (q->has_from && q->has_to && q->from_ms > q->to_ms) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "from is after to: swap them, or leave one out");
        return -1;
    }
    return 0;
}

/* A list's ?limit= (1..LIST_LIMIT_MAX, default LIST_LIMIT_DEFAULT) into
 * *limit; on a bad value replies 400 and returns -1. */
static int list_limit(const char *limit_s, int *limit, struct lucy_http_response *resp)
{
    *limit = LIST_LIMIT_DEFAULT;
    if (!limit_s || !*limit_s)
        return 0;
    char *end;
    errno = 0;
    long v = strtol(limit_s, &end, 10);
    if (*end || errno || v < 1 || v > LIST_LIMIT_MAX || limit_s[0] < '0' || limit_s[0] > '9') {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "limit must be a whole number from 1 to %d (default %d), "
                              "not \"%.40s\"",
                              LIST_LIMIT_MAX, LIST_LIMIT_DEFAULT, limit_s);
        return -1;
    }
    *limit = (int)v;
    return 0;
}

static void list_recordings(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const char *status = lucy_http_query(req, "status");
    const char *cursor = lucy_http_query(req, "cursor");
    int limit;
    if (list_limit(lucy_http_query(req, "limit"), &limit, resp))
        return;
    if (cursor && *cursor && !valid_id(cursor)) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "cursor must be the next_cursor value of a previous page (a "
                              "recording id: 64 lowercase hex digits); leave it out for the "
                              "first page");
        return;
    }
    if (status && *status && !status_known(status)) {
        char accepted[256];
        status_list(accepted, sizeof accepted);
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "unknown status \"%.40s\": use a scan status or a transcript status, "
                              "one of: %s",
                              status, accepted);
        return;
    }
    struct lucy_recording_query q = {
        .status = status && *status ? status : NULL,
        .cursor = cursor && *cursor ? cursor : NULL,
        .limit = limit,
    };
    if (list_sort_and_dates(req, resp, &q) != 0)
        return;
    json_t *out = NULL;
    int rc = lucy_recording_list(req->ctx->store, &q, &out);
    if (rc) {
        lucy_http_reply_err(resp, rc, "cannot read the recordings from the store; retry");
        return;
    }
    lucy_http_reply_json(resp, 200, out);
}

/* ---- GET /recordings/{id} ------------------------------------------------- */

/* progress (0-1) and eta_s (seconds) of a job a worker runs now; both
 * null otherwise (queued, finished) and eta_s null until the first chunk
 * of this run is recognised. */
static void set_progress(json_t *o, const struct lucy_job_progress *pr)
{
    json_object_set_new(o, "progress", pr ? json_real(pr->progress) : json_null());
    json_object_set_new(o, "eta_s",
                        pr && pr->eta_s >= 0 ? json_integer((json_int_t)(pr->eta_s + 0.5))
                                             : json_null());
    if (pr) {
        json_object_set_new(o, "chunks_done", json_integer(pr->chunks_done));
        json_object_set_new(o, "chunks_total", json_integer(pr->chunks_total));
    }
}

static void get_recording(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct lucy_recordings *plugin = req->arg;
    const char *id = req->params[0];
    const char *speaker = lucy_http_query(req, "speaker");
    json_t *out = NULL;
    int rc = valid_id(id) ? lucy_recording_json(req->ctx->store, id, &out) : LUCY_ENOTFOUND;
    if (rc == LUCY_ENOTFOUND) {
        reply_no_recording(resp, id);
        return;
    }
    if (rc) {
        lucy_http_reply_err(resp, rc, "cannot read the recording from the store; retry");
        return;
    }
    if (speaker && lucy_transcript_keep_speaker(json_object_get(out, "transcript"), speaker) != 0) {
        json_decref(out);
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "speaker=%.40s: use me, them or a person's id", speaker);
        return;
    }
    struct lucy_job_progress running[64];
    int n = lucy_jobs_pool_running(plugin->pool, running, 64);
    const struct lucy_job_progress *mine = NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(running[i].recording_id, id) == 0)
            mine = &running[i];
    set_progress(out, mine);
    lucy_http_reply_json(resp, 200, out);
}

/* ---- POST /recordings/scan ------------------------------------------------ */

static void scan_now(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct lucy_recordings *plugin = req->arg;
    if (!plugin->scanner) {
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_CONFIGURED, 60,
                              "no folders to scan: set LUCY_RECORDINGS_DIRS (or --recordings "
                              "DIR) and restart lucy");
        return;
    }
    /* scan_now initialises sum on every path, failed scans included, and
     * it must be freed on every path. */
    struct lucy_scan_summary sum;
    int rc = lucy_scanner_scan_now(plugin->scanner, &sum);
    json_t *body = rc == 0 ? lucy_scan_summary_json(&sum) : NULL;
    lucy_scan_summary_free(&sum);
    /* Even a scan that failed part-way may have queued jobs. */
    lucy_jobs_pool_wake(plugin->pool);
    if (rc)
        lucy_http_reply_err(resp, rc, "the scan could not run; see /health and the log");
    else if (!body)
        lucy_http_reply_err(resp, LUCY_ENOMEM, "out of memory");
    else
        lucy_http_reply_json(resp, 200, body);
}

/* ---- POST /recordings/{id}/transcribe ------------------------------------- */

/* How a job that ended (or waits) without a transcript is answered. */
static const struct {
    const char *error_type;    /* the job's error_type */
    enum lucy_http_error http; /* the reply's */
} job_errors[] = {
    {"file_locked", LUCY_HTTP_FILE_LOCKED},
    {"disk_critical", LUCY_HTTP_DISK_FULL},
    {"file_missing", LUCY_HTTP_DEPENDENCY_UNAVAILABLE},
    {"io_error", LUCY_HTTP_DEPENDENCY_UNAVAILABLE},
    {"asr_unavailable", LUCY_HTTP_DEPENDENCY_UNAVAILABLE},
    {"out_of_memory", LUCY_HTTP_DEPENDENCY_UNAVAILABLE},
    {"corrupt", LUCY_HTTP_UNSUPPORTED_MEDIA},
    {"permission_denied", LUCY_HTTP_FORBIDDEN},
};

static int retry_after_of(const struct lucy_job *job, int fallback_s)
{
    if (job->next_retry_at_s <= 0)
        return fallback_s;
    int64_t left = job->next_retry_at_s - (int64_t)time(NULL);
    return left > 1 ? (int)left : 1;
}

/* An error reply for a job that cannot give a transcript now: the DESIGN
 * error shape plus the job's id and state. */
static void reply_job_error(struct lucy_http_response *resp, const struct lucy_job *job,
                            enum lucy_http_error type, int retry_after_s, const char *message)
{
    json_t *body =
        json_pack("{s:s,s:s}", "error_type", lucy_http_error_name(type), "message", message);
    json_object_set_new(body, "job_id", json_integer(job->id));
    json_object_set_new(body, "status", json_string(lucy_job_status_name(job->status)));
    json_object_set_new(body, "job", lucy_jobs_json(job));
    int status = lucy_http_error_status(type);
    if (status == 423 || status == 429 || status == 503 || status == 507) {
        if (retry_after_s < 1)
            retry_after_s = 30;
        json_object_set_new(body, "retry_after_s", json_integer(retry_after_s));
        resp->retry_after_s = retry_after_s;
    }
    lucy_http_reply_json(resp, status, body);
}

static void reply_locked(struct lucy_http_response *resp, const struct lucy_job *job,
                         int retry_after_s)
{
    char msg[768];
    snprintf(msg, sizeof msg,
             "the recording's file is locked: it is being synced by the cloud client (Dropbox, "
             "iCloud, ...). lucy retries by itself with backoff and transcribes it once the "
             "lock is lifted; follow GET /jobs/%lld",
             job->id);
    reply_job_error(resp, job, LUCY_HTTP_FILE_LOCKED, retry_after_s, msg);
}

/* 1 when every existing path of the recording fails open() with a lock
 * errno: a temp copy (which needs an open too) cannot help, so the answer
 * is 423 at once. A path that opens, even if its reads are locked, may be
 * rescued by the worker's temp copy: 0. */
static int all_paths_locked(struct lucy_store *store, const char *id)
{
    struct lucy_recording_info info = {0};
    if (lucy_recording_info_load(store, id, &info) != 0)
        return 0;
    int locked = 0, other = 0;
    for (int i = 0; i < info.n_paths; i++) {
        int fd = open(info.paths[i].path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd >= 0) {
            close(fd);
            other++;
            break;
        }
        if (lucy_scan_is_lock_errno(errno))
            locked++;
    }
    lucy_recording_info_free(&info);
    return locked > 0 && other == 0;
}

/* ?wait=: absent or one of these words; anything else is a 400. */
static const struct {
    const char *word;
    int wait;
} wait_words[] = {
    {"1", 1}, {"true", 1}, {"yes", 1}, {"0", 0}, {"false", 0}, {"no", 0},
};

/* 1 = wait, 0 = do not, -1 = not a value wait_words knows. */
static int wait_wanted(struct lucy_http_request *req)
{
    const char *w = lucy_http_query(req, "wait");
    if (!w)
        return 0;
    for (size_t i = 0; i < sizeof wait_words / sizeof wait_words[0]; i++)
        if (strcmp(w, wait_words[i].word) == 0)
            return wait_words[i].wait;
    return -1;
}

/* Takes a waiter slot; 0 when all are in use. */
static int waiter_enter(struct lucy_recordings *plugin)
{
    pthread_mutex_lock(&plugin->mu);
    int ok = plugin->waiters < plugin->max_waiters;
    if (ok)
        plugin->waiters++;
    pthread_mutex_unlock(&plugin->mu);
    return ok;
}

static void waiter_leave(struct lucy_recordings *plugin)
{
    pthread_mutex_lock(&plugin->mu);
    plugin->waiters--;
    pthread_mutex_unlock(&plugin->mu);
}

static void reply_accepted(struct lucy_http_response *resp, const struct lucy_job *job,
                           const char *note)
{
    json_t *body = lucy_jobs_json(job);
    if (note)
        json_object_set_new(body, "note", json_string(note));
    lucy_http_reply_json(resp, 202, body);
}

/* The final answer of ?wait=1 for a job no longer queued or running. */
static void reply_finished(struct lucy_http_request *req, struct lucy_http_response *resp,
                           const struct lucy_job *job)
{
    if (job->status == LUCY_JOB_DONE || job->status == LUCY_JOB_NO_SPEECH) {
        json_t *rec = NULL;
        int rc = lucy_recording_json(req->ctx->store, job->recording_id, &rec);
        if (rc) {
            lucy_http_reply_err(resp, rc,
                                "the transcript is stored but could not be read; "
                                "GET /recordings/{id} later");
            return;
        }
        json_t *body = lucy_jobs_json(job);
        json_object_set(body, "transcript", json_object_get(rec, "transcript"));
        json_decref(rec);
        lucy_http_reply_json(resp, 200, body);
        return;
    }
    for (size_t i = 0; i < sizeof job_errors / sizeof job_errors[0]; i++) {
        if (strcmp(job->error_type, job_errors[i].error_type) != 0)
            continue;
        if (job_errors[i].http == LUCY_HTTP_FILE_LOCKED)
            reply_locked(resp, job, retry_after_of(job, 30));
        else
            reply_job_error(resp, job, job_errors[i].http, retry_after_of(job, 30), job->error);
        return;
    }
    reply_job_error(resp, job, LUCY_HTTP_INTERNAL, 0,
                    job->error[0] ? job->error : "the transcription failed; see GET /jobs/{id}");
}

static void transcribe(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct lucy_recordings *plugin = req->arg;
    const char *id = req->params[0];
    if (!valid_id(id)) {
        reply_no_recording(resp, id);
        return;
    }
    int wait = wait_wanted(req);
    if (wait < 0) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "wait must be 1 (block until the transcript is ready, at most %d s) "
                              "or 0 (answer 202 at once), not \"%.40s\"",
                              WAIT_MAX_S, lucy_http_query(req, "wait"));
        return;
    }
    struct lucy_job_asr asr = {0};
    if (req->body_len > 0) {
        json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
        int bad = !json_is_object(body);
        if (bad)
            lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                                  "the body must be empty or a JSON object such as "
                                  "{\"engine\": \"http\", \"model\": \"whisper-1\"}");
        else
            bad = lucy_retranscribe_check(req, resp, body, &asr) != 0;
        json_decref(body);
        if (bad)
            return;
    }
    struct lucy_job job;
    int rc = lucy_jobs_request(req->ctx->store, id, &asr, &job);
    if (rc == LUCY_ENOTFOUND) {
        reply_no_recording(resp, id);
        return;
    }
    if (rc) {
        lucy_http_reply_err(resp, rc, "cannot queue the transcription; retry later");
        return;
    }
    lucy_jobs_pool_wake(plugin->pool);

    if (job.status == LUCY_JOB_RETRY_WAIT && strcmp(job.error_type, "file_locked") == 0) {
        reply_locked(resp, &job, retry_after_of(&job, 30));
        return;
    }
    if (job.status == LUCY_JOB_QUEUED && all_paths_locked(req->ctx->store, id)) {
        reply_locked(resp, &job, req->ctx->cfg->job_retry_base_s);
        return;
    }
    if (!wait) {
        reply_accepted(resp, &job, NULL);
        return;
    }
    if (!waiter_enter(plugin)) {
        reply_accepted(resp, &job,
                       "too many requests are waiting already; poll GET /jobs/{id} instead");
        return;
    }
    rc = lucy_jobs_pool_wait(plugin->pool, job.id, WAIT_MAX_S * 1000, &job);
    waiter_leave(plugin);
    if (rc == LUCY_ETIMEDOUT)
        reply_accepted(resp, &job, "still running after the wait limit; poll GET /jobs/{id}");
    else if (rc)
        lucy_http_reply_err(resp, rc, "cannot read the job; poll GET /jobs/{id}");
    else if (lucy_job_status_pending(job.status))
        reply_accepted(resp, &job, NULL);
    else
        reply_finished(req, resp, &job);
}

/* ---- transcript versions ---------------------------------------------------- */

struct versions_arg {
    const char *id; /* recording id */
    int version;    /* 0: the list */
    json_t **out;
};

static int versions_read(sqlite3 *db, void *arg)
{
    struct versions_arg *a = arg;
    return a->version ? lucy_transcript_version_json(db, a->id, a->version, a->out)
                      : lucy_transcript_versions_json(db, a->id, a->out);
}

static void reply_no_version(struct lucy_http_response *resp, const char *id, const char *version)
{
    lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                          "recording %.80s has no transcript version %.20s: GET "
                          "/recordings/{id}/transcripts lists its versions",
                          id, version);
}

/* A version number from the path or a body: 1 and up; 0 when not one. */
static int version_number(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return s[0] >= '1' && s[0] <= '9' && !*end && !errno && v <= 1000000 ? (int)v : 0;
}

static void get_versions(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const char *id = req->params[0];
    int version = req->n_params > 1 ? version_number(req->params[1]) : 0;
    if (req->n_params > 1 && !version) {
        reply_no_version(resp, id, req->params[1]);
        return;
    }
    json_t *out = NULL;
    struct versions_arg a = {id, version, &out};
    int rc = valid_id(id) ? lucy_store_read(req->ctx->store, versions_read, &a) : LUCY_ENOTFOUND;
    if (rc == LUCY_ENOTFOUND && version && valid_id(id)) {
        /* No such version, or no such recording: say which. */
        struct versions_arg list = {id, 0, &out};
        rc = lucy_store_read(req->ctx->store, versions_read, &list);
        json_decref(out);
        if (rc == 0) {
            reply_no_version(resp, id, req->params[1]);
            return;
        }
    }
    if (rc == LUCY_ENOTFOUND)
        reply_no_recording(resp, id);
    else if (rc)
        lucy_http_reply_err(resp, rc, "cannot read the transcripts from the store; retry");
    else
        lucy_http_reply_json(resp, 200, out);
}

struct activate_arg {
    const char *id;
    int version;
    int64_t time_s; /* the call's date, for the index documents */
};

static int activate_write(sqlite3 *db, void *arg)
{
    struct activate_arg *a = arg;
    return lucy_transcript_activate(db, a->id, a->version, a->time_s);
}

/* PUT /recordings/{id}/transcripts/active {"version": N}: the version's
 * segments become the shown and indexed ones, in one store write. */
static void put_active(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const char *id = req->params[0];
    struct lucy_recording_info info;
    memset(&info, 0, sizeof info);
    int rc = valid_id(id) ? lucy_recording_info_load(req->ctx->store, id, &info) : LUCY_ENOTFOUND;
    int64_t time_s = info.time_s;
    lucy_recording_info_free(&info);
    if (rc == LUCY_ENOTFOUND) {
        reply_no_recording(resp, id);
        return;
    }
    if (rc) {
        lucy_http_reply_err(resp, rc, "cannot read the recording from the store; retry");
        return;
    }
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    json_t *v = json_object_get(body, "version");
    json_int_t version = json_is_integer(v) ? json_integer_value(v) : 0;
    json_decref(body);
    if (version < 1 || version > 1000000) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "the body must be a JSON object {\"version\": N} with N a version "
                              "number from GET /recordings/{id}/transcripts");
        return;
    }
    struct activate_arg a = {id, (int)version, time_s};
    rc = lucy_store_write(req->ctx->store, activate_write, &a, 0);
    char number[24];
    snprintf(number, sizeof number, "%d", (int)version);
    if (rc == LUCY_ENOTFOUND) {
        reply_no_version(resp, id, number);
        return;
    }
    if (rc == LUCY_ECONFLICT) {
        lucy_http_reply_error(resp, LUCY_HTTP_CONFLICT, 0,
                              "version %d found no speech, so there is nothing to show or "
                              "search: choose a version whose status is done, or transcribe "
                              "again (POST /recordings/{id}/transcribe)",
                              (int)version);
        return;
    }
    if (rc) {
        lucy_http_reply_err(resp, rc, "the active version was not changed; retry later");
        return;
    }
    json_t *out = NULL;
    struct versions_arg list = {id, 0, &out};
    rc = lucy_store_read(req->ctx->store, versions_read, &list);
    if (rc)
        lucy_http_reply_err(resp, rc,
                            "the version is active; read it with GET /recordings/{id}/transcripts");
    else
        lucy_http_reply_json(resp, 200, out);
}

/* ---- GET /jobs/{id} ------------------------------------------------------- */

static void get_job(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const char *s = req->params[0];
    char *end;
    errno = 0;
    long long id = strtoll(s, &end, 10);
    struct lucy_job job;
    int rc = (*s && !*end && !errno && id > 0) ? lucy_jobs_get(req->ctx->store, id, &job)
                                               : LUCY_ENOTFOUND;
    if (rc == LUCY_ENOTFOUND)
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                              "no job with id %.40s: use the job_id returned by POST "
                              "/recordings/{id}/transcribe",
                              s);
    else if (rc)
        lucy_http_reply_err(resp, rc, "cannot read the job from the store; retry");
    else {
        struct lucy_recordings *plugin = req->arg;
        struct lucy_job_progress pr;
        json_t *o = lucy_jobs_json(&job);
        set_progress(o, lucy_jobs_pool_progress(plugin->pool, id, &pr) == 0 ? &pr : NULL);
        lucy_http_reply_json(resp, 200, o);
    }
}

/* ---- GET /ledger ------------------------------------------------------------ */

/* "ignored, placeholder, ..." into buf (len bytes), for the 400 message. */
static void outcome_list(char *buf, size_t len)
{
    size_t used = 0;
    const char *s;
    buf[0] = '\0';
    for (size_t i = 0; (s = lucy_ledger_outcome_name(i)) && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", s);
}

/* The ingest ledger (DESIGN §16, ledger.h): what was seen and not made a
 * recording of, and what failed, with the advice for each row. */
static void get_ledger(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const char *outcome = lucy_http_query(req, "outcome");
    const char *cursor = lucy_http_query(req, "cursor");
    int limit;
    if (list_limit(lucy_http_query(req, "limit"), &limit, resp))
        return;
    if (outcome && *outcome && !lucy_ledger_outcome_known(outcome)) {
        char accepted[400];
        outcome_list(accepted, sizeof accepted);
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "unknown outcome \"%.40s\": use one of %s, or leave it out for all",
                              outcome, accepted);
        return;
    }
    json_t *out = NULL;
    int rc = lucy_ledger_list(req->ctx->store, outcome && *outcome ? outcome : NULL, limit,
                              cursor && *cursor ? cursor : NULL, &out);
    if (rc == LUCY_EINVAL)
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "cursor must be the next_cursor value of a previous page; leave it "
                              "out for the first page");
    else if (rc)
        lucy_http_reply_err(resp, rc, "cannot read the ledger from the store; retry");
    else
        lucy_http_reply_json(resp, 200, out);
}

static const struct lucy_route routes[] = {
    {"GET", "/ledger", get_ledger, 1, 0, NULL},
    {"GET", "/recordings", list_recordings, 1, 0, NULL},
    {"POST", "/recordings/scan", scan_now, 1, 0, NULL},
    {"GET", "/recordings/{id}", get_recording, 1, 0, NULL},
    {"DELETE", "/recordings/{id}", lucy_recordings_delete, 1, 0, NULL}, /* forget.c */
    {"POST", "/recordings/{id}/transcribe", transcribe, 1, 0, NULL},
    {"GET", "/jobs/{id}", get_job, 1, 0, NULL},
    {"GET", "/recordings/{id}/transcripts", get_versions, 1, 0, NULL},
    {"PUT", "/recordings/{id}/transcripts/active", put_active, 1, 0, NULL},
    {"GET", "/recordings/{id}/transcripts/{version}", get_versions, 1, 0, NULL},
    /* bulk re-transcription as one job group (retranscribe.c) */
    {"POST", "/recordings/retranscribe", lucy_recordings_retranscribe, 1, 0, NULL},
    {"GET", "/job-groups/{id}", lucy_job_group_get, 1, 0, NULL},
    {"POST", "/job-groups/{id}/cancel", lucy_job_group_cancel, 1, 0, NULL},
    {"GET", "/recordings/{id}/audio", lucy_recordings_audio, 1, 0, NULL}, /* audio.c */
    /* one row per export format (export.h); download.c picks it by extension */
    {"GET", "/recordings/{id}/transcript.txt", lucy_recordings_transcript_file, 1, 0, NULL},
    {"GET", "/recordings/{id}/transcript.srt", lucy_recordings_transcript_file, 1, 0, NULL},
    {"GET", "/recordings/{id}/transcript.vtt", lucy_recordings_transcript_file, 1, 0, NULL},
    {"GET", "/recordings/{id}/transcript.json", lucy_recordings_transcript_file, 1, 0, NULL},
};

int lucy_recordings_routes_register(struct lucy_recordings *r)
{
    return lucy_http_add_routes(r->ctx->http, routes, sizeof routes / sizeof routes[0], r);
}
