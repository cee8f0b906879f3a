/*
 * disk.c - free-space levels and the reserve file.
 *
 * State lives in struct lucy_disk behind one mutex: the watched paths with
 * their last measurement, and whether the reserve file exists. The prober
 * calls lucy_disk_poll() every LUCY_DISK_INTERVAL_MS; readers take the lock
 * briefly to copy what they need.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../error.h"
#include "../log.h"
#include "disk.h"

#define MIB (1024ull * 1024ull)

struct lucy_disk {
    pthread_mutex_t lock;                             /* guards everything below */
    struct lucy_disk_thresholds t;                    /* configured thresholds */
    struct lucy_disk_path paths[LUCY_DISK_MAX_PATHS]; /* [0] = data dir */
    int n_paths;                                      /* used entries of paths */
    char reserve_path[600];                           /* DATA_DIR/reserve.bin */
    uint64_t reserve_bytes;                           /* 0 = reserve disabled */
    int reserve_present;                              /* file exists at full size */
};

static const char *const level_names[] = {"ok", "warn", "critical"};

const char *lucy_disk_level_name(enum lucy_disk_level level)
{
    return level_names[level];
}

static uint64_t threshold_bytes(uint64_t total, int pct, int mb)
{
    uint64_t by_pct = total / 100 * (uint64_t)pct + total % 100 * (uint64_t)pct / 100;
    uint64_t by_mb = (uint64_t)mb * MIB;
    return by_pct > by_mb ? by_pct : by_mb;
}

enum lucy_disk_level lucy_disk_level_of(uint64_t free_bytes, uint64_t total_bytes,
                                        const struct lucy_disk_thresholds *t)
{
    if (total_bytes == 0)
        return LUCY_DISK_CRITICAL;
    if (free_bytes < threshold_bytes(total_bytes, t->critical_pct, t->critical_mb))
        return LUCY_DISK_CRITICAL;
    if (free_bytes < threshold_bytes(total_bytes, t->warn_pct, t->warn_mb))
        return LUCY_DISK_WARN;
    return LUCY_DISK_OK;
}

int lucy_disk_reserve_action(enum lucy_disk_level level, int reserve_present, uint64_t free_bytes,
                             uint64_t total_bytes, uint64_t reserve_bytes,
                             const struct lucy_disk_thresholds *t)
{
    if (reserve_bytes == 0)
        return 0;
    if (level == LUCY_DISK_CRITICAL)
        return reserve_present ? -1 : 0;
    if (level != LUCY_DISK_OK || reserve_present || free_bytes < reserve_bytes)
        return 0;
    /* Would creating it push us straight back into critical? Then wait. */
    if (lucy_disk_level_of(free_bytes - reserve_bytes, total_bytes, t) == LUCY_DISK_CRITICAL)
        return 0;
    return +1;
}

static void add_path(struct lucy_disk *d, const char *path, const char *role)
{
    if (!path || !*path || d->n_paths >= LUCY_DISK_MAX_PATHS)
        return;
    struct lucy_disk_path *p = &d->paths[d->n_paths++];
    memset(p, 0, sizeof *p);
    snprintf(p->path, sizeof p->path, "%s", path);
    snprintf(p->role, sizeof p->role, "%s", role);
}

static int reserve_exists(const struct lucy_disk *d)
{
    struct stat st;
    return stat(d->reserve_path, &st) == 0 && (uint64_t)st.st_size == d->reserve_bytes &&
           (uint64_t)st.st_blocks * 512 >= d->reserve_bytes;
}

struct lucy_disk *lucy_disk_new(const char *data_dir, const char *tmp_dir, const char *extra_paths,
                                const struct lucy_disk_thresholds *t, int reserve_mb)
{
    struct lucy_disk *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    pthread_mutex_init(&d->lock, NULL);
    d->t = *t;
    add_path(d, data_dir, "data");
    add_path(d, tmp_dir, "tmp");
    if (extra_paths) {
        char *copy = strdup(extra_paths), *save = NULL;
        for (char *p = copy ? strtok_r(copy, ":", &save) : NULL; p; p = strtok_r(NULL, ":", &save))
            add_path(d, p, "extra");
        free(copy);
    }
    snprintf(d->reserve_path, sizeof d->reserve_path, "%s/reserve.bin", data_dir);
    d->reserve_bytes = (uint64_t)reserve_mb * MIB;
    if (d->reserve_bytes == 0)
        unlink(d->reserve_path); /* disabled: do not keep an old one around */
    d->reserve_present = d->reserve_bytes && reserve_exists(d);
    return d;
}

void lucy_disk_free(struct lucy_disk *d)
{
    if (!d)
        return;
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static int measure(const char *path, uint64_t *free_bytes, uint64_t *total_bytes)
{
    struct statvfs vfs;
    if (statvfs(path, &vfs) != 0)
        return errno;
    *free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    *total_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    return 0;
}

/* Creates the reserve with fallocate (real blocks, unlike a sparse file),
 * under a temporary name so a half-made file is never mistaken for it. */
static int create_reserve(struct lucy_disk *d)
{
    char tmp[640];
    snprintf(tmp, sizeof tmp, "%s.tmp", d->reserve_path);
    int fd = open(tmp, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    int rc = posix_fallocate(fd, 0, (off_t)d->reserve_bytes);
    if (rc == 0 && fsync(fd) != 0)
        rc = errno;
    close(fd);
    if (rc == 0 && rename(tmp, d->reserve_path) != 0)
        rc = errno;
    if (rc != 0)
        unlink(tmp);
    return rc;
}

void lucy_disk_poll(struct lucy_disk *d)
{
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < d->n_paths; i++) {
        struct lucy_disk_path *p = &d->paths[i];
        uint64_t fb = 0, tb = 0;
        int e = measure(p->path, &fb, &tb);
        enum lucy_disk_level before = p->level;
        int was_measured = p->measured;
        if (e) {
            if (p->error != e)
                lucy_log(LUCY_LOG_WARNING, "cannot measure free space", "{s:s,s:s}", "path",
                         p->path, "error", strerror(e));
            p->error = e;
            continue;
        }
        p->error = 0;
        p->measured = 1;
        p->free_bytes = fb;
        p->total_bytes = tb;
        p->free_pct = tb ? (double)fb * 100.0 / (double)tb : 0.0;
        p->level = lucy_disk_level_of(fb, tb, &d->t);
        if (was_measured && p->level != before)
            lucy_log(p->level > before ? LUCY_LOG_WARNING : LUCY_LOG_INFO, "disk level changed",
                     "{s:s,s:s,s:s,s:I,s:f}", "path", p->path, "from", level_names[before], "to",
                     level_names[p->level], "free_bytes", (json_int_t)fb, "free_pct", p->free_pct);
    }

    struct lucy_disk_path *data = &d->paths[0];
    if (data->measured) {
        d->reserve_present = d->reserve_bytes && reserve_exists(d);
        int action = lucy_disk_reserve_action(data->level, d->reserve_present, data->free_bytes,
                                              data->total_bytes, d->reserve_bytes, &d->t);
        if (action < 0) {
            unlink(d->reserve_path);
            d->reserve_present = 0;
            lucy_log(LUCY_LOG_WARNING, "disk critical: reserve file released", "{s:s,s:I,s:I}",
                     "path", d->reserve_path, "reserve_bytes", (json_int_t)d->reserve_bytes,
                     "free_bytes", (json_int_t)data->free_bytes);
        } else if (action > 0) {
            int e = create_reserve(d);
            d->reserve_present = e == 0;
            if (e)
                lucy_log(LUCY_LOG_WARNING, "cannot create reserve file", "{s:s,s:s}", "path",
                         d->reserve_path, "error", strerror(e));
            else
                lucy_log(LUCY_LOG_INFO, "reserve file created", "{s:s,s:I,s:I}", "path",
                         d->reserve_path, "reserve_bytes", (json_int_t)d->reserve_bytes,
                         "free_bytes_before", (json_int_t)data->free_bytes);
        }
    }
    pthread_mutex_unlock(&d->lock);
}

int lucy_disk_snapshot(struct lucy_disk *d, struct lucy_disk_path *out, int max)
{
    pthread_mutex_lock(&d->lock);
    int n = d->n_paths < max ? d->n_paths : max;
    memcpy(out, d->paths, (size_t)n * sizeof *out);
    pthread_mutex_unlock(&d->lock);
    return n;
}

int lucy_disk_critical(struct lucy_disk *d)
{
    pthread_mutex_lock(&d->lock);
    int critical = 0;
    for (int i = 0; i < d->n_paths; i++)
        if (strcmp(d->paths[i].role, "extra") != 0 && d->paths[i].level == LUCY_DISK_CRITICAL)
            critical = 1;
    pthread_mutex_unlock(&d->lock);
    return critical;
}

int lucy_disk_reserve_present(struct lucy_disk *d)
{
    pthread_mutex_lock(&d->lock);
    int present = d->reserve_present;
    pthread_mutex_unlock(&d->lock);
    return present;
}

uint64_t lucy_disk_reserve_bytes(struct lucy_disk *d)
{
    return d->reserve_bytes;
}

const struct lucy_disk_thresholds *lucy_disk_thresholds(struct lucy_disk *d)
{
    return &d->t;
}

int lucy_disk_admit(struct lucy_disk *d, uint64_t bytes)
{
    if (lucy_disk_critical(d))
        return LUCY_ENOSPC;
    uint64_t fb = 0, tb = 0;
    if (measure(d->paths[0].path, &fb, &tb) != 0)
        return LUCY_EIO;
    if (fb < bytes)
        return LUCY_ENOSPC;
    if (lucy_disk_level_of(fb - bytes, tb, &d->t) == LUCY_DISK_CRITICAL)
        return LUCY_ENOSPC;
    return 0;
}
