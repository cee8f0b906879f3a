/*
 * plugin.c - the call_recordings plugin's glue (DESIGN §5, §6, §7).
 *
 *   init   routes (routes.c), health checks call_recordings:scan and
 *          call_recordings:jobs, /metrics lines, the search index's
 *          speaker lookup of recordings (transcript.c); no threads yet
 *   start  the transcription workers (worker.c), then the scanner thread
 *          (scanner.c) when LUCY_RECORDINGS_DIRS is set
 *   stop   the scanner, then the workers (each finishes its current job)
 *
 * Without LUCY_RECORDINGS_DIRS nothing is scanned, but the routes still
 * answer (empty lists) and jobs can still run for recordings already in
 * the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../error.h"
#include "../../health/health.h"
#include "../../index/index.h"
#include "../../lucy.h"
#include "jobs.h"
#include "plugin.h"
#include "scan_int.h"
#include "transcript.h"

#define CHECK_INTERVAL_MS 2000
#define CHECK_TIMEOUT_MS  1000

/* ---- health --------------------------------------------------------------- */

static json_int_t summary_int(json_t *summary, const char *key)
{
    json_t *v = json_object_get(summary, key);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static void check_scan(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    (void)timeout_ms;
    struct lucy_recordings *r = arg;
    if (!r->scanner) {
        lucy_check_add(out, "scanner", LUCY_HEALTH_PASS, 0, "files", NULL);
        return;
    }
    json_t *s = lucy_scanner_last_summary(r->scanner);
    if (!s) {
        lucy_check_add(out, "scanner", LUCY_HEALTH_PASS, 0, "files", NULL);
        return;
    }
    json_t *missing = json_object_get(s, "missing_roots");
    if (json_object_size(missing)) {
        const char *root = json_object_iter_key(json_object_iter(missing));
        json_t *err = json_object_iter_value(json_object_iter(missing));
        lucy_check_add(out, "scanner", LUCY_HEALTH_WARN, (double)json_object_size(missing),
                       "folders",
                       "the recordings folder %s cannot be opened (%s): check LUCY_RECORDINGS_DIRS "
                       "for a typo, or mount the volume; lucy scans again by itself",
                       root, json_string_value(err) ? json_string_value(err) : "error");
        json_decref(s);
        return;
    }
    json_int_t locked = summary_int(s, "locked");
    json_int_t seen = summary_int(s, "files_seen");
    int failed = json_is_true(json_object_get(s, "failed"));
    if (failed)
        lucy_check_add(out, "scanner", LUCY_HEALTH_WARN, (double)seen, "files",
                       "the last scan of LUCY_RECORDINGS_DIRS failed (see the log for why: "
                       "store not writable, disk full?); lucy scans again by itself, or run "
                       "POST /recordings/scan");
    else if (locked > 0)
        lucy_check_add(out, "scanner", LUCY_HEALTH_WARN, (double)locked, "files",
                       "%lld of %lld files are locked (EDEADLK/EAGAIN: a sync client such as "
                       "Dropbox or iCloud holds them); lucy retries them by itself with "
                       "backoff. If the count stays, check the sync client",
                       (long long)locked, (long long)seen);
    else
        lucy_check_add(out, "scanner", LUCY_HEALTH_PASS, (double)seen, "files", NULL);
    json_decref(s);
}

static void check_jobs(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    (void)timeout_ms;
    struct lucy_recordings *r = arg;
    long long counts[LUCY_JOB_N_STATUSES], locked = 0;
    if (lucy_jobs_counts(r->ctx->store, counts) != 0 ||
        lucy_jobs_count_locked(r->ctx->store, &locked) != 0) {
        lucy_check_add(out, "queue", LUCY_HEALTH_WARN, 0, "jobs",
                       "cannot read the job queue from the store; see store:writable");
        return;
    }
    long long active = 0, blocked = counts[LUCY_JOB_BLOCKED];
    for (int i = 0; i < LUCY_JOB_N_STATUSES; i++)
        if (lucy_job_status_active((enum lucy_job_status)i))
            active += counts[i];
    struct lucy_jobs_stats st;
    lucy_jobs_pool_stats(r->pool, &st);
    if (st.unstored_jobs > 0)
        lucy_check_add(out, "queue", LUCY_HEALTH_WARN, (double)active, "jobs",
                       "%d finished transcription jobs cannot be stored (%s: disk full or not "
                       "writable?); they stay running and lucy retries storing them by itself. "
                       "Free space in LUCY_DATA_DIR (see disk:free and store:writable)",
                       st.unstored_jobs, st.store_error);
    else if (blocked > 0)
        lucy_check_add(out, "queue", LUCY_HEALTH_WARN, (double)active, "jobs",
                       "%lld transcription jobs are blocked because the disk is critical; they "
                       "resume by themselves when space is freed (see disk:free)",
                       blocked);
    else if (st.engine_error[0])
        lucy_check_add(out, "queue", LUCY_HEALTH_WARN, (double)active, "jobs",
                       "the speech recognition engine cannot be opened (%s); fix what it "
                       "names (LUCY_ASR_ENGINE, LUCY_WHISPER_MODEL, LUCY_ASR_URL, or the media "
                       "module's place); jobs wait queued and lucy retries every minute",
                       st.engine_error);
    else if (locked > 0)
        lucy_check_add(out, "queue", LUCY_HEALTH_WARN, (double)active, "jobs",
                       "%lld recordings wait for a lock to be lifted (being synced by the "
                       "cloud client); lucy retries them by itself with backoff",
                       locked);
    else
        lucy_check_add(out, "queue", LUCY_HEALTH_PASS, (double)active, "jobs", NULL);
}

/* ---- metrics -------------------------------------------------------------- */

static void metrics(void *arg, FILE *out)
{
    struct lucy_recordings *r = arg;
    json_t *s = r->scanner ? lucy_scanner_last_summary(r->scanner) : NULL;
    if (s) {
        fprintf(out, "# HELP lucy_scan_files Files by outcome in the last scan.\n"
                     "# TYPE lucy_scan_files gauge\n");
        for (int i = 0; i < LUCY_SCAN_N_OUTCOMES; i++) {
            const char *outcome = lucy_scan_outcome_name((enum lucy_scan_outcome)i);
            fprintf(out, "lucy_scan_files{outcome=\"%s\"} %lld\n", outcome,
                    (long long)summary_int(s, outcome));
        }
        fprintf(out, "# TYPE lucy_scan_errors gauge\n");
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(s, "errors_by_errno"), name, v)
        {
            fprintf(out, "lucy_scan_errors{errno=\"");
            lucy_metrics_label(out, name);
            fprintf(out, "\"} %lld\n", (long long)json_integer_value(v));
        }
        fprintf(out, "# TYPE lucy_scan_duration_ms gauge\nlucy_scan_duration_ms %lld\n",
                (long long)summary_int(s, "duration_ms"));
        fprintf(out, "# TYPE lucy_scan_files_seen gauge\nlucy_scan_files_seen %lld\n",
                (long long)summary_int(s, "files_seen"));
        json_decref(s);
    }
    long long counts[LUCY_JOB_N_STATUSES];
    if (lucy_jobs_counts(r->ctx->store, counts) == 0) {
        fprintf(out, "# HELP lucy_jobs Transcription jobs by status.\n# TYPE lucy_jobs gauge\n");
        for (int i = 0; i < LUCY_JOB_N_STATUSES; i++)
            fprintf(out, "lucy_jobs{status=\"%s\"} %lld\n",
                    lucy_job_status_name((enum lucy_job_status)i), counts[i]);
    }
    struct lucy_jobs_stats st;
    lucy_jobs_pool_stats(r->pool, &st);
    fprintf(out,
            "# HELP lucy_asr_audio_seconds_total Seconds of audio transcribed.\n"
            "# TYPE lucy_asr_audio_seconds_total counter\nlucy_asr_audio_seconds_total %.3f\n"
            "# HELP lucy_asr_seconds_total Seconds the ASR engine worked.\n"
            "# TYPE lucy_asr_seconds_total counter\nlucy_asr_seconds_total %.3f\n"
            "# HELP lucy_asr_real_time_factor Engine time / audio time of the last transcript.\n"
            "# TYPE lucy_asr_real_time_factor gauge\nlucy_asr_real_time_factor %.4f\n"
            "# TYPE lucy_asr_temp_copies_total counter\nlucy_asr_temp_copies_total %llu\n",
            st.audio_s_total, st.asr_wall_s_total, st.last_rtf, st.temp_copies);
    fprintf(out,
            "# HELP lucy_asr_chunks_total Chunks of audio sent to the engine (resumed ones "
            "excluded).\n"
            "# TYPE lucy_asr_chunks_total counter\nlucy_asr_chunks_total %llu\n"
            "# HELP lucy_asr_chunk_audio_seconds_total Audio in those chunks.\n"
            "# TYPE lucy_asr_chunk_audio_seconds_total counter\n"
            "lucy_asr_chunk_audio_seconds_total %.3f\n",
            st.chunks_recognised, st.chunk_audio_s_total);
    /* The queue's running jobs with their progress and ETA (DESIGN §13). */
    struct lucy_job_progress running[64];
    int n = lucy_jobs_pool_running(r->pool, running, 64);
    fprintf(out, "# HELP lucy_job_progress Progress (0-1) of each running transcription.\n"
                 "# TYPE lucy_job_progress gauge\n");
    for (int i = 0; i < n; i++)
        fprintf(out, "lucy_job_progress{job_id=\"%lld\"} %.4f\n", running[i].job_id,
                running[i].progress);
    fprintf(out, "# HELP lucy_job_eta_seconds Seconds left of each running transcription.\n"
                 "# TYPE lucy_job_eta_seconds gauge\n");
    for (int i = 0; i < n; i++)
        if (running[i].eta_s >= 0)
            fprintf(out, "lucy_job_eta_seconds{job_id=\"%lld\"} %.0f\n", running[i].job_id,
                    running[i].eta_s);
}

/* ---- lifecycle ------------------------------------------------------------ */

static const struct lucy_check checks[] = {
    {"call_recordings:scan", "component", "call_recordings", 0, CHECK_INTERVAL_MS, CHECK_TIMEOUT_MS,
     check_scan, NULL},
    {"call_recordings:jobs", "component", "transcription", 0, CHECK_INTERVAL_MS, CHECK_TIMEOUT_MS,
     check_jobs, NULL},
};

static void plugin_free(void *state);

static int plugin_setup(struct lucy_recordings *r)
{
    struct lucy_ctx *ctx = r->ctx;
    int threads = ctx->cfg->http_threads > 0 ? ctx->cfg->http_threads : 1;
    r->max_waiters = threads / 2 > 0 ? threads / 2 : 1;
    r->pool = lucy_jobs_pool_new(ctx);
    if (!r->pool)
        return LUCY_ENOMEM;
    if (ctx->cfg->recordings_dirs && ctx->cfg->recordings_dirs[0]) {
        r->scanner = lucy_scanner_new(ctx);
        if (!r->scanner)
            return LUCY_ENOMEM;
    }
    if (ctx->http && lucy_recordings_routes_register(r) != 0)
        return LUCY_ENOMEM;
    if (lucy_recordings_forget_register(r) != 0)
        return LUCY_ENOMEM;
    /* Search hits say who spoke (segments are transcript.c's): a lookup
     * without state, so it may outlive the plugin. */
    if (ctx->index &&
        lucy_index_set_hit_lookup(ctx->index, "call_recording", lucy_transcript_hit_lookup) != 0)
        return LUCY_EINVAL;
    for (size_t i = 0; ctx->health && i < sizeof checks / sizeof checks[0]; i++) {
        struct lucy_check c = checks[i];
        c.arg = r;
        if (lucy_health_register(ctx->health, &c) != 0)
            return LUCY_ENOMEM;
    }
    return lucy_metrics_add(ctx, metrics, r);
}

static int plugin_init(struct lucy_ctx *ctx, void **state)
{
    struct lucy_recordings *r = calloc(1, sizeof *r);
    if (!r)
        return LUCY_ENOMEM;
    r->ctx = ctx;
    pthread_mutex_init(&r->mu, NULL);
    int rc = plugin_setup(r);
    if (rc) {
        plugin_free(r); /* the core frees only plugins whose init succeeded */
        r = NULL;
    }
    *state = r;
    return rc;
}

static int plugin_start(void *state)
{
    struct lucy_recordings *r = state;
    int rc = lucy_jobs_pool_start(r->pool);
    if (rc == 0 && r->scanner)
        rc = lucy_scanner_start(r->scanner);
    return rc;
}

static void plugin_stop(void *state)
{
    struct lucy_recordings *r = state;
    if (r->scanner)
        lucy_scanner_stop(r->scanner);
    lucy_jobs_pool_stop(r->pool);
}

static void plugin_free(void *state)
{
    struct lucy_recordings *r = state;
    if (!r)
        return;
    if (r->scanner)
        lucy_scanner_free(r->scanner);
    lucy_jobs_pool_free(r->pool);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

const struct lucy_plugin lucy_call_recordings_plugin = {
    .name = "call_recordings",
    .init = plugin_init,
    .start = plugin_start,
    .stop = plugin_stop,
    .free = plugin_free,
};
