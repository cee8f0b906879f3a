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
    uint64_t files_seen, new_, changed, unchanged, locked, placeholder, ignored, changing, corrupt,
        permission_denied, io_error, unsupported, missing, unavailable;
    uint64_t orphan_sidecars; /* NAME.json sidecars with no audio beside them (not files_seen) */
    uint64_t bytes_hashed;
    int64_t duration_ms;
    json_t *errors_by_errno; /* {"EDEADLK": 312, ...}; owned by the summary */
    json_t *missing_roots;   /* {"root": "ENOENT"}: configured folders that could not be
                                opened (mistyped, unmounted); owned by the summary */
    int failed;              /* the scan itself failed (e.g. store not writable) */
    int64_t finished_at_s;   /* Unix time the scan ended */
};

/* Scans the colon-separated folders `dirs` once, retrying every locked file
 * now (an explicit scan). *out is always initialised and must always be
 * released with lucy_scan_summary_free(). Returns 0, or a LUCY_E* code
 * when the scan could not complete (the store is not writable: then
 * out->failed = 1 and the counts are those reached so far; LUCY_ESHUTDOWN
 * when lucy is stopping). Per-file errors never fail a scan.
 *
 * Counting: files_seen = regular files found, except recorders' sidecars
 * (NAME.json: part of the recording beside them, read with it; one with no
 * audio beside it counts as orphan_sidecars instead); each gets exactly one of new,
 * changed, unchanged, locked, placeholder, ignored, changing, corrupt,
 * permission_denied, io_error, unsupported (a file that vanished between
 * listing and opening counts as missing); a sync folder the walk skipped
 * whole (`.dropbox.cache`, `@eaDir`, ...) counts once under ignored.
 * unchanged = a known recording
 * whose size, mtime and inode are the same, not read again; a known
 * corrupt or unsupported file that is unchanged is not read again either
 * but counts as corrupt / unsupported in EVERY scan (not as unchanged), so
 * the summary - /health's scanner check, `lucy doctor`, the UI's "Last
 * scan" - keeps showing it until the file changes (then it is read again)
 * or goes away. missing = known files found gone
 * by THIS scan (a transition); unavailable = known files of roots that are
 * gone or empty now (a state, counted on every such scan). errors_by_errno
 * counts per-file (and per-folder) errors by errno name; a locked file
 * skipped while it backs off is counted again under its last errno.
 * Not thread-safe against itself on one store: serialise scans (the
 * scanner does). */
int lucy_scan_run(struct lucy_ctx *ctx, const char *dirs, struct lucy_scan_summary *out);

/* Key in the store's `meta` table under which every scan (daemon or
 * `lucy scan`) that was not interrupted by shutdown leaves its summary:
 * the DESIGN §6 object plus "failed", "finished_at_s" and, when failed,
 * "error" - so `lucy doctor` can read it without the daemon. Best effort:
 * a store that cannot be written (disk full) keeps the previous one. */
#define LUCY_SCAN_SUMMARY_META_KEY "call_recordings.last_scan"

/* Adds what lucy_scan_summary_json() leaves out to j, the kept form of a
 * summary: "failed", "finished_at_s", "error" (lucy_strerror(rc)) when
 * failed, "missing_roots" when any. The one rule for what the scanner
 * keeps for /health and what `meta` keeps for `lucy doctor`. */
void lucy_scan_summary_extend(json_t *j, const struct lucy_scan_summary *s, int rc);

/* The summary as the JSON object of DESIGN §6, keys in that order (new
 * reference; NULL on allocation failure). */
json_t *lucy_scan_summary_json(const struct lucy_scan_summary *s);
void lucy_scan_summary_free(struct lucy_scan_summary *s);

/* The periodic + inotify scanner thread over ctx->cfg->recordings_dirs.
 * new: NULL on allocation failure. start: starts the thread (first scan at
 * once), or does nothing but log when no folders are configured; 0 or
 * LUCY_ENOMEM. Automatic scans honour the locked-file backoff. */
struct lucy_scanner;
struct lucy_scanner *lucy_scanner_new(struct lucy_ctx *ctx);
int lucy_scanner_start(struct lucy_scanner *s);
/* Runs a scan now on the caller's thread (waits for a running scan to
 * finish first; retries locked files at once) and keeps its summary. For
 * POST /recordings/scan. Same contract as lucy_scan_run(); LUCY_EINVAL
 * (with *out zeroed) when no recordings folders are configured. Works
 * whether or not the thread was started. Thread-safe. */
int lucy_scanner_scan_now(struct lucy_scanner *s, struct lucy_scan_summary *out);
/* The last finished scan (thread or scan_now), for /health and /metrics:
 * the DESIGN §6 summary object plus "failed" (bool: the scan could not
 * complete - store not writable), "finished_at_s" (Unix time), when
 * failed "error" (text), and when a configured folder could not be opened
 * "missing_roots" ({"root": "ENOENT"}). A new reference the caller decrefs; NULL before
 * the first scan has finished. Thread-safe, never blocks on a scan. */
json_t *lucy_scanner_last_summary(struct lucy_scanner *s);
/* stop: makes a running scan end at the next file and joins the thread
 * (safe if never started). free: stops, then releases everything. */
void lucy_scanner_stop(struct lucy_scanner *s);
void lucy_scanner_free(struct lucy_scanner *s);

#endif
