/*
 * scan.h - the call-recordings scanner (DESIGN §6).
 *
 * lucy_scan_run() walks the configured folders once and records what it
 * finds in the store (tables `recordings` and `recording_paths`, migration
 * 20 in store/schema.c), classifying every file into one outcome of the
 * scan summary. For each recording that is new or whose content changed it
 * calls lucy_jobs_enqueue() (jobs.h) inside the same store write, so a
 * recording is never stored without its transcription job.
 *
 * The periodic/inotify scanner thread ("scanner") is started by the plugin
 * with lucy_scanner_start(). The last summary is kept for /health and
 * /metrics (lucy_scanner_last_summary()).
 */
#ifndef LUCY_SCAN_H
#define LUCY_SCAN_H

#include <jansson.h>
#include <stdint.h>

struct lucy_ctx;

/* Counters of one scan, exactly the DESIGN §6 summary keys. */
struct lucy_scan_summary {
    uint64_t files_seen, new_, changed, unchanged, locked, placeholder, ignored, changing,
        corrupt, permission_denied, io_error, unsupported, missing, unavailable;
    uint64_t bytes_hashed;
    int64_t duration_ms;
    json_t *errors_by_errno; /* {"EDEADLK": 312, ...}; owned by the summary */
    int failed;              /* the scan itself failed (e.g. store not writable) */
    int64_t finished_at_s;   /* Unix time the scan ended */
};

/* Scans the colon-separated folders `dirs` once. Returns 0 and fills *out
 * (free with lucy_scan_summary_free()), or a LUCY_E* code when the scan
 * could not run at all. Per-file errors never fail a scan. */
int lucy_scan_run(struct lucy_ctx *ctx, const char *dirs, struct lucy_scan_summary *out);

/* The summary as the JSON object of DESIGN §6 (new reference). */
json_t *lucy_scan_summary_json(const struct lucy_scan_summary *s);
void lucy_scan_summary_free(struct lucy_scan_summary *s);

/* The periodic + inotify scanner thread. */
struct lucy_scanner;
struct lucy_scanner *lucy_scanner_new(struct lucy_ctx *ctx);
int lucy_scanner_start(struct lucy_scanner *s);
/* Runs a scan now on the caller's thread (serialised with the thread's
 * scans) and keeps its summary. For POST /recordings/scan. */
int lucy_scanner_scan_now(struct lucy_scanner *s, struct lucy_scan_summary *out);
/* Copy of the last summary (json, new reference) or NULL before the first. */
json_t *lucy_scanner_last_summary(struct lucy_scanner *s);
void lucy_scanner_stop(struct lucy_scanner *s);
void lucy_scanner_free(struct lucy_scanner *s);

#endif
