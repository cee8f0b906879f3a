/*
 * backups.c - scheduled backups (DESIGN §15) as a plugin of the daemon:
 * with LUCY_BACKUP_DIR set, the "backups" thread runs lucy_backup_run()
 * (backup.h) into that folder at start when the newest backup there is
 * older than LUCY_BACKUP_INTERVAL_H, then every interval; it keeps the
 * LUCY_BACKUP_KEEP newest `lucy-*.db` files and deletes older ones (only
 * files of that name, only in that folder). A backup that would push the
 * destination below the warn level is skipped with a WARNING; a failed or
 * skipped one is retried after RETRY_FIRST_S, doubling up to the interval.
 *
 * `backup:age` (not critical) warns when the newest good backup is older
 * than two intervals, or when there is none and the last attempt failed,
 * with the reason and what to do. Without LUCY_BACKUP_DIR nothing runs
 * and the check is not registered (`lucy backup` by hand still works).
 *
 * Thread: "backups" owns the schedule; last_* fields are guarded by lock
 * and read by the prober.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../clock.h"
#include "../config.h"
#include "../disk/disk.h"
#include "../error.h"
#include "../health/health.h"
#include "../log.h"
#include "../lucy.h"
#include "../plugins/plugin.h"
#include "../thread.h"
#include "backup.h"
#include "backups.h"
#include "store.h"

#define RETRY_FIRST_S 5
#define MAX_FILES     4096

struct backups {
    struct lucy_ctx *ctx;
    struct lucy_thread thread; /* "backups" */
    int64_t interval_ms;       /* LUCY_BACKUP_INTERVAL_H */
    pthread_mutex_t lock;      /* guards the last_* fields */
    int64_t last_good_wall_ms; /* newest good backup's mtime; 0 = none */
    char last_good[1100];      /* its path */
    char last_error[1024];     /* why the last attempt failed; "" after a success */
};

int64_t lucy_backups_newest(const char *dir, char *path, size_t len)
{
    int64_t best = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        struct stat st;
        if (fnmatch("lucy-*.db", e->d_name, 0) != 0 || fstatat(dirfd(d), e->d_name, &st, 0) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        int64_t ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        if (ms > best) {
            best = ms;
            snprintf(path, len, "%.800s/%.250s", dir, e->d_name);
        }
    }
    if (d)
        closedir(d);
    return best;
}

static int by_name_desc(const void *a, const void *b)
{
    return strcmp(*(char *const *)b, *(char *const *)a);
}

/* Deletes all but the keep newest lucy-*.db files of dir (their names sort
 * by their UTC time). */
static void prune(const char *dir, int keep)
{
    char *names[MAX_FILES];
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) && n < MAX_FILES)
        if (fnmatch("lucy-*.db", e->d_name, 0) == 0 && (names[n] = strdup(e->d_name)))
            n++;
    if (d)
        closedir(d);
    qsort(names, (size_t)n, sizeof names[0], by_name_desc);
    for (int i = 0; i < n; i++) {
        if (i >= keep) {
            char path[1200];
            snprintf(path, sizeof path, "%.900s/%s", dir, names[i]);
            if (unlink(path) == 0)
                lucy_log(LUCY_LOG_INFO, "old backup removed", "{s:s,s:i}", "path", path, "keep",
                         keep);
        }
        free(names[i]);
    }
}

/* One scheduled backup. 0 on success. */
static int run_once(struct backups *b)
{
    const struct lucy_config *cfg = b->ctx->cfg;
    struct lucy_backup_margin margin = {.free_pct = cfg->disk_warn_pct,
                                        .free_mb = cfg->disk_warn_mb};
    struct lucy_backup_result r;
    char err[1024] = "";
    int rc = lucy_backup_run(lucy_store_path(b->ctx->store), cfg->backup_dir, &margin, &r, err,
                             sizeof err);
    pthread_mutex_lock(&b->lock);
    if (rc == 0) {
        b->last_good_wall_ms = lucy_wall_ms();
        snprintf(b->last_good, sizeof b->last_good, "%s", r.path);
        b->last_error[0] = '\0';
    } else {
        snprintf(b->last_error, sizeof b->last_error, "%s", err);
    }
    pthread_mutex_unlock(&b->lock);
    if (rc == 0) {
        lucy_log(LUCY_LOG_INFO, "backup written", "{s:s,s:I,s:I}", "path", r.path, "bytes",
                 (json_int_t)r.bytes, "duration_ms", (json_int_t)r.duration_ms);
        prune(cfg->backup_dir, cfg->backup_keep);
    } else {
        lucy_log(LUCY_LOG_WARNING, "scheduled backup skipped or failed; retried by itself",
                 "{s:s,s:s}", "error", err, "dir", cfg->backup_dir);
    }
    return rc;
}

static void backups_main(void *arg)
{
    struct backups *b = arg;
    int64_t retry_ms = RETRY_FIRST_S * 1000;
    do {
        pthread_mutex_lock(&b->lock);
        int64_t last = b->last_good_wall_ms;
        pthread_mutex_unlock(&b->lock);
        int64_t due_in = last + b->interval_ms - lucy_wall_ms();
        if (due_in > 0) {
            if (lucy_thread_nap(&b->thread, due_in < 60000 ? due_in : 60000))
                break;
            continue;
        }
        if (b->ctx->disk &&
            lucy_disk_critical(b->ctx->disk)) { /* not while the data disk is critical */
            if (lucy_thread_nap(&b->thread, retry_ms))
                break;
            continue;
        }
        if (run_once(b) == 0) {
            retry_ms = RETRY_FIRST_S * 1000;
            continue;
        }
        if (lucy_thread_nap(&b->thread, retry_ms))
            break;
        retry_ms = retry_ms * 2 < b->interval_ms ? retry_ms * 2 : b->interval_ms;
    } while (!lucy_thread_stopping(&b->thread));
}

static void check_age(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    (void)timeout_ms;
    struct backups *b = arg;
    pthread_mutex_lock(&b->lock);
    int64_t last = b->last_good_wall_ms;
    char path[1100], error[1024];
    snprintf(path, sizeof path, "%s", b->last_good);
    snprintf(error, sizeof error, "%s", b->last_error);
    pthread_mutex_unlock(&b->lock);
    double age_h = last ? (double)(lucy_wall_ms() - last) / 3600000.0 : 0;
    const char *dir = b->ctx->cfg->backup_dir;
    if (!last && error[0])
        lucy_check_add(out, dir, LUCY_HEALTH_WARN, 0, "h",
                       "no backup in %s yet: %s (lucy retries by itself; `lucy backup DIR` makes "
                       "one by hand)",
                       dir, error);
    else if (last && lucy_wall_ms() - last > 2 * b->interval_ms)
        lucy_check_add(out, dir, LUCY_HEALTH_WARN, age_h, "h",
                       "the newest good backup, %s, is %.1f h old (LUCY_BACKUP_INTERVAL_H %d)%s%s",
                       path, age_h, b->ctx->cfg->backup_interval_h, error[0] ? ": " : "", error);
    else
        lucy_check_add(out, dir, LUCY_HEALTH_PASS, age_h, "h", NULL);
}

static int backups_init(struct lucy_ctx *ctx, void **state)
{
    *state = NULL;
    if (!ctx->cfg->backup_dir || !*ctx->cfg->backup_dir)
        return 0;
    struct backups *b = calloc(1, sizeof *b);
    if (!b)
        return LUCY_ENOMEM;
    b->ctx = ctx;
    b->interval_ms = (int64_t)ctx->cfg->backup_interval_h * 3600 * 1000;
    pthread_mutex_init(&b->lock, NULL);
    b->last_good_wall_ms =
        lucy_backups_newest(ctx->cfg->backup_dir, b->last_good, sizeof b->last_good);
    const struct lucy_check check = {"backup:age", "component", "backup",  0,
                                     10000,        1000,        check_age, b};
    if (ctx->health && lucy_health_register(ctx->health, &check) != 0) {
        pthread_mutex_destroy(&b->lock);
        free(b);
        return LUCY_ENOMEM;
    }
    *state = b;
    return 0;
}

static int backups_start(void *state)
{
    struct backups *b = state;
    if (!b)
        return 0;
    b->thread = (struct lucy_thread){.name = "backups", .main = backups_main, .arg = b};
    return lucy_thread_start(&b->thread);
}

static void backups_stop(void *state)
{
    struct backups *b = state;
    if (b)
        lucy_thread_stop(&b->thread);
}

static void backups_free(void *state)
{
    struct backups *b = state;
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

const struct lucy_plugin lucy_backups_plugin = {
    .name = "backups",
    .init = backups_init,
    .start = backups_start,
    .stop = backups_stop,
    .free = backups_free,
};
