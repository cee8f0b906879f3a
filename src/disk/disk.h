/*
 * disk.h - the disk guard (DESIGN §9).
 *
 * Watches the free space (statvfs) of the data dir, the temp dir and any
 * LUCY_DISK_PATHS, classifies each as ok / warn / critical with a percent
 * *and* an absolute threshold (below either one counts), and keeps a
 * preallocated reserve ("ballast") file in the data dir:
 *
 *   critical on the data dir  -> release the reserve, so the inbox has room;
 *   back above the warn level -> recreate it (only if that does not push the
 *                                disk straight back into critical).
 *
 * Other modules ask lucy_disk_admit() before writing something big (temp
 * copies, transcripts) and lucy_disk_critical() before starting optional
 * work. Recovery never needs a restart: every poll re-evaluates.
 *
 * Thread safety: lucy_disk_poll() is called from the prober thread only;
 * every other function may be called from any thread.
 */
#ifndef LUCY_DISK_H
#define LUCY_DISK_H

#include <stdint.h>

enum lucy_disk_level { LUCY_DISK_OK, LUCY_DISK_WARN, LUCY_DISK_CRITICAL };

struct lucy_disk_thresholds {
    int warn_pct;     /* free percent below which the level is warn */
    int warn_mb;      /* free MiB below which the level is warn */
    int critical_pct; /* free percent below which the level is critical */
    int critical_mb;  /* free MiB below which the level is critical */
};

/* What one watched path looked like at the last poll. */
struct lucy_disk_path {
    char path[512];             /* as configured */
    char role[16];              /* "data", "tmp" or "extra" */
    int measured;               /* 0 until the first successful statvfs */
    int error;                  /* errno of the last failed statvfs, else 0 */
    uint64_t free_bytes;        /* available to unprivileged users */
    uint64_t total_bytes;       /* size of the file system */
    double free_pct;            /* free_bytes / total_bytes * 100 */
    enum lucy_disk_level level; /* classification of the last poll */
};

#define LUCY_DISK_MAX_PATHS 16

struct lucy_disk;

/* Pure classification: the level of a file system with free_bytes of
 * total_bytes free under thresholds t. Below either the percent or the MiB
 * threshold counts. total_bytes 0 gives LUCY_DISK_CRITICAL. */
enum lucy_disk_level lucy_disk_level_of(uint64_t free_bytes, uint64_t total_bytes,
                                        const struct lucy_disk_thresholds *t);

/* Pure decision on the reserve, given the data dir's level and free space:
 * returns -1 to release it, +1 to (re)create it, 0 to leave it. It is
 * created only at level ok and only if free_bytes - reserve_bytes would not
 * be critical; released only at critical. */
int lucy_disk_reserve_action(enum lucy_disk_level level, int reserve_present, uint64_t free_bytes,
                             uint64_t total_bytes, uint64_t reserve_bytes,
                             const struct lucy_disk_thresholds *t);

/* Creates the guard. data_dir must exist; tmp_dir and extra_paths (colon-
 * separated, may be NULL) are watched as well. reserve_mb 0 disables the
 * reserve. Does not poll; call lucy_disk_poll() once before relying on it.
 * Returns NULL on allocation failure. Free with lucy_disk_free(). */
struct lucy_disk *lucy_disk_new(const char *data_dir, const char *tmp_dir, const char *extra_paths,
                                const struct lucy_disk_thresholds *t, int reserve_mb);
void lucy_disk_free(struct lucy_disk *d);

/* Measures every path, updates levels, releases or recreates the reserve,
 * logs level changes (WARNING on the way down, INFO on recovery). */
void lucy_disk_poll(struct lucy_disk *d);

/* Copies up to max paths' last state into out; returns how many. */
int lucy_disk_snapshot(struct lucy_disk *d, struct lucy_disk_path *out, int max);

/* 1 when the data dir (or temp dir) is critical at the last poll. */
int lucy_disk_critical(struct lucy_disk *d);

/* 1 when the reserve file exists (or the reserve is disabled: 0 then). */
int lucy_disk_reserve_present(struct lucy_disk *d);
uint64_t lucy_disk_reserve_bytes(struct lucy_disk *d);

/* May the caller write `bytes` more into the data dir now? 0 if free space
 * after the write stays above the critical threshold; LUCY_ENOSPC if not
 * or if the disk is critical. Measures afresh (one statvfs). */
int lucy_disk_admit(struct lucy_disk *d, uint64_t bytes);

/* The configured thresholds. */
const struct lucy_disk_thresholds *lucy_disk_thresholds(struct lucy_disk *d);

const char *lucy_disk_level_name(enum lucy_disk_level level);

#endif
