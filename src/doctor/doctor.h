/*
 * doctor.h - `lucy doctor`: checks and safe fixes for a person at a
 * terminal during an incident (DESIGN §10).
 *
 * The command (cmd/doctor.c) holds ONE table of checks, each row
 * {name, run, fix}: run() measures one thing and fills a struct
 * lucy_doctor_result (status, one-paragraph summary, machine-readable
 * details, the remedy); fix() - NULL when there is no safe fix - is called
 * by `--fix` for a result that set `fixable`, and says what it did.
 *
 * Checks never change anything. They read: statvfs of the watched paths,
 * file sizes in the data dir, the local store through its read-only
 * connections (lucy_store_read; the store is opened only when
 * DATA_DIR/lucy.db exists), Redis through src/kv/ (INFO persistence,
 * CONFIG GET, PING), Qdrant through src/index/ (the /rag/stats document).
 *
 * Remedies are constant texts in one table (remedies.c), indexed by enum
 * lucy_doctor_remedy; docs/operations.md quotes every one verbatim and
 * tests/unit/doctor_test.c checks that it does.
 *
 * Files: remedies.c (the texts), disk.c (daemon, disk, data dir, reserve,
 * temp copies), store.c (store, inbox, outbox, jobs, kv pending, scanner,
 * locked files), redis.c (Redis and its MISCONF fix), qdrant.c (Qdrant),
 * media.c (the media module and the speech engine), report.c (terminal
 * and JSON output).
 *
 * Thread safety: none needed; the command is single-threaded.
 */
#ifndef LUCY_DOCTOR_H
#define LUCY_DOCTOR_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

struct lucy_config;
struct lucy_store;
struct lucy_kv;
struct lucy_index;

/* How bad one check's finding is. critical = a part is down or refusing
 * writes now; warn = degraded or heading there; both make the exit 1. */
enum lucy_doctor_status { LUCY_DOCTOR_OK, LUCY_DOCTOR_WARN, LUCY_DOCTOR_CRITICAL };

/* "ok", "warn", "critical". */
const char *lucy_doctor_status_name(enum lucy_doctor_status s);

/* Every remedy doctor can print; texts in lucy_doctor_remedy_text(). */
enum lucy_doctor_remedy {
    LUCY_REMEDY_NONE,
    LUCY_REMEDY_DISK_WARN,
    LUCY_REMEDY_DISK_CRITICAL,
    LUCY_REMEDY_DISK_UNMEASURED,
    LUCY_REMEDY_RESERVE_RELEASED,
    LUCY_REMEDY_RESERVE_MISSING,
    LUCY_REMEDY_RESERVE_NO_ROOM,
    LUCY_REMEDY_TEMP_STALE,
    LUCY_REMEDY_STORE_MISSING,
    LUCY_REMEDY_STORE_UNREADABLE,
    LUCY_REMEDY_STORE_DAMAGED,
    LUCY_REMEDY_BACKUP_LATE,
    LUCY_REMEDY_INBOX_BACKLOG,
    LUCY_REMEDY_OUTBOX_BACKLOG,
    LUCY_REMEDY_OUTBOX_FAILED,
    LUCY_REMEDY_JOBS_BLOCKED,
    LUCY_REMEDY_KV_PENDING,
    LUCY_REMEDY_REDIS_UNREACHABLE,
    LUCY_REMEDY_REDIS_AUTH,
    LUCY_REMEDY_REDIS_LOADING,
    LUCY_REMEDY_REDIS_MISCONF,
    LUCY_REMEDY_REDIS_AOF,
    LUCY_REMEDY_REDIS_BGSAVE_FAILED,
    LUCY_REMEDY_REDIS_LIFTED,
    LUCY_REMEDY_REDIS_STOP_WRITES_NO,
    LUCY_REMEDY_REDIS_MEMORY,
    LUCY_REMEDY_QDRANT_UNREACHABLE,
    LUCY_REMEDY_QDRANT_NO_COLLECTION,
    LUCY_REMEDY_QDRANT_RED,
    LUCY_REMEDY_QDRANT_INDEXES_PENDING,
    LUCY_REMEDY_SCAN_FAILED,
    LUCY_REMEDY_LOCKED_FILES,
    LUCY_REMEDY_MEDIA_MISSING,
    LUCY_REMEDY_ASR_ENGINE,
    LUCY_REMEDY_COUNT
};

/* The remedy's exact text (constant; "" for LUCY_REMEDY_NONE). */
const char *lucy_doctor_remedy_text(enum lucy_doctor_remedy r);

/* What every check may use. Built and freed by the command. */
struct lucy_doctor {
    const struct lucy_config *cfg; /* loaded configuration (not owned) */
    char tmp_dir[1100];            /* DATA_DIR/tmp */
    char db_path[1100];            /* DATA_DIR/lucy.db */
    char pid_path[1100];           /* DATA_DIR/lucy.pid (the daemon's lock) */
    struct lucy_store *store;      /* NULL when lucy.db does not exist */
    char store_error[512];         /* why the store could not be opened */
    int store_rc;                  /* and its LUCY_E* code (LUCY_EDBCORRUPT: lost files) */
    struct lucy_kv *kv;            /* Redis (REDIS_URL set), else NULL */
    struct lucy_index *ix;         /* the Qdrant backend (QDRANT_URL set), else NULL */
    char index_error[512];         /* why the index could not be opened */
    int timeout_ms;                /* per Redis call */
};

/* One check's outcome. The runner zeroes it and gives it a details
 * object; the check fills the rest. */
struct lucy_doctor_result {
    enum lucy_doctor_status status; /* worst finding */
    char summary[2048];             /* for a person; lines separated by '\n' */
    json_t *details;                /* object, owned by the runner */
    enum lucy_doctor_remedy remedy; /* NONE when status is ok */
    int fixable;                    /* fix() has something to do */
};

/* What one fix did. */
struct lucy_doctor_fix {
    int applied;       /* 1 = the change was made */
    char result[1024]; /* what was done, or why not */
};

/* One row of the check table. */
struct lucy_doctor_check {
    const char *name; /* stable id in the JSON output */
    void (*run)(struct lucy_doctor *d, struct lucy_doctor_result *r);
    /* NULL = no safe fix. Called only when run() set fixable. */
    void (*fix)(struct lucy_doctor *d, const struct lucy_doctor_result *r,
                struct lucy_doctor_fix *out);
};

/* ---- helpers (disk.c) ---------------------------------------------------- */

/* Appends printf text to r->summary (a '\n' first when it is not empty). */
void lucy_doctor_say(struct lucy_doctor_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Raises r's status to s with remedy rem when s is worse than the current
 * status (the first remedy of the worst status wins). */
void lucy_doctor_raise(struct lucy_doctor_result *r, enum lucy_doctor_status s,
                       enum lucy_doctor_remedy rem);

/* "12.3 MiB" style (binary units, one decimal; "512 B" below 1 KiB). */
void lucy_doctor_human(uint64_t bytes, char *buf, size_t len);

/* {"bytes": n, "human": "..."} (new reference). */
json_t *lucy_doctor_size_json(uint64_t bytes);

/* The pid of a `lucy serve` that holds DATA_DIR/lucy.pid: > 0 its pid, -1
 * a daemon holds it but the file names no pid, 0 no daemon. Never
 * creates the file. */
long lucy_doctor_daemon_pid(const struct lucy_doctor *d);

/* ---- checks (one function each; see the table in cmd/doctor.c) ----------- */

void lucy_doctor_check_daemon(struct lucy_doctor *d, struct lucy_doctor_result *r);
void lucy_doctor_check_disk(struct lucy_doctor *d, struct lucy_doctor_result *r);
void lucy_doctor_check_data_dir(struct lucy_doctor *d, struct lucy_doctor_result *r);
void lucy_doctor_check_reserve(struct lucy_doctor *d, struct lucy_doctor_result *r);
void lucy_doctor_fix_reserve(struct lucy_doctor *d, const struct lucy_doctor_result *r,
                             struct lucy_doctor_fix *out);
void lucy_doctor_check_temp(struct lucy_doctor *d, struct lucy_doctor_result *r);
void lucy_doctor_fix_temp(struct lucy_doctor *d, const struct lucy_doctor_result *r,
                          struct lucy_doctor_fix *out);

void lucy_doctor_check_store(struct lucy_doctor *d, struct lucy_doctor_result *r);
/* The newest backup in LUCY_BACKUP_DIR and its age (store.c). */
void lucy_doctor_check_backup(struct lucy_doctor *d, struct lucy_doctor_result *r);
void lucy_doctor_check_inbox(struct lucy_doctor *d, struct lucy_doctor_result *r);
void lucy_doctor_check_outbox(struct lucy_doctor *d, struct lucy_doctor_result *r);
void lucy_doctor_check_jobs(struct lucy_doctor *d, struct lucy_doctor_result *r);
void lucy_doctor_check_kv_pending(struct lucy_doctor *d, struct lucy_doctor_result *r);
void lucy_doctor_check_scanner(struct lucy_doctor *d, struct lucy_doctor_result *r);
void lucy_doctor_check_locked(struct lucy_doctor *d, struct lucy_doctor_result *r);

void lucy_doctor_check_redis(struct lucy_doctor *d, struct lucy_doctor_result *r);
void lucy_doctor_fix_redis(struct lucy_doctor *d, const struct lucy_doctor_result *r,
                           struct lucy_doctor_fix *out);

void lucy_doctor_check_qdrant(struct lucy_doctor *d, struct lucy_doctor_result *r);

/* The media module loads (critical: no recording can be probed or
 * transcribed) and the configured speech engine can run (warn: jobs would
 * fail); loads no model (media.c). */
void lucy_doctor_check_media(struct lucy_doctor *d, struct lucy_doctor_result *r);

/* ---- output (report.c) --------------------------------------------------- */

/* One finished check, for the report. */
struct lucy_doctor_row {
    const char *name;                 /* the table row's name */
    struct lucy_doctor_result result; /* its outcome (details owned here) */
};

/* One fix attempt, for the report. */
struct lucy_doctor_fix_row {
    const char *name;           /* the table row's name */
    struct lucy_doctor_fix fix; /* what happened */
};

/* The whole report as the documented JSON object (new reference):
 * {"status":"ok|attention","version","data_dir","checks":[{"name",
 * "status","summary","details","remedy"}],"fixes":[{"name","applied",
 * "result"}]}; remedy is null when there is none. */
json_t *lucy_doctor_report_json(const struct lucy_config *cfg, const struct lucy_doctor_row *rows,
                                int n_rows, const struct lucy_doctor_fix_row *fixes, int n_fixes);

/* Writes the report for a person onto out; colours (ANSI) only when
 * colour is 1. */
void lucy_doctor_report_text(FILE *out, int colour, const struct lucy_config *cfg,
                             const struct lucy_doctor_row *rows, int n_rows,
                             const struct lucy_doctor_fix_row *fixes, int n_fixes);

#endif
