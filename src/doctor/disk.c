/*
 * disk.c - doctor's file-system checks: is a daemon running on this data
 * dir, free space of every watched path, what the data dir holds, the
 * reserve file, and temp copies; plus the shared helpers of doctor.h.
 *
 * Free space is measured with statvfs and classified by the disk guard's
 * own pure functions (lucy_disk_level_of, lucy_disk_reserve_action) with
 * the configured thresholds, so doctor and `lucy serve` always agree on a
 * level. The checks never call lucy_disk_poll(), which may release or
 * create the reserve; only the reserve fix does, and only when the guard
 * itself would create it.
 *
 * The daemon lock: `lucy serve` holds an exclusive flock on DATA_DIR/lucy.pid
 * for its whole life (cmd/serve.c). A non-blocking exclusive flock fails
 * while any daemon holds it: that is how doctor knows one runs, and the
 * temp-copy fix deletes only while IT holds the exclusive lock, so no
 * daemon can start (and make new copies) in the middle.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../config.h"
#include "../disk/disk.h"
#include "doctor.h"

#define MIB (1024ull * 1024ull)

/* ---- helpers --------------------------------------------------------------- */

static const char *const status_names[] = {"ok", "warn", "critical"};

const char *lucy_doctor_status_name(enum lucy_doctor_status s)
{
    return status_names[s];
}

void lucy_doctor_say(struct lucy_doctor_result *r, const char *fmt, ...)
{
    size_t used = strlen(r->summary);
    if (used && used + 1 < sizeof r->summary)
        r->summary[used++] = '\n', r->summary[used] = '\0';
    if (used + 1 >= sizeof r->summary)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->summary + used, sizeof r->summary - used, fmt, ap);
    va_end(ap);
}

void lucy_doctor_raise(struct lucy_doctor_result *r, enum lucy_doctor_status s,
                       enum lucy_doctor_remedy rem)
{
    if (s > r->status || (s == r->status && r->remedy == LUCY_REMEDY_NONE)) {
        r->status = s;
        r->remedy = rem;
    }
}

void lucy_doctor_human(uint64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 1024) {
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
        return;
    }
    double v = (double)bytes / 1024.0;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0])
        v /= 1024.0, u++;
    snprintf(buf, len, "%.1f %s", v, units[u]);
}

json_t *lucy_doctor_size_json(uint64_t bytes)
{
    char h[32];
    lucy_doctor_human(bytes, h, sizeof h);
    return json_pack("{s:I,s:s}", "bytes", (json_int_t)bytes, "human", h);
}

static void thresholds_of(const struct lucy_config *cfg, struct lucy_disk_thresholds *t)
{
    t->warn_pct = cfg->disk_warn_pct;
    t->warn_mb = cfg->disk_warn_mb;
    t->critical_pct = cfg->disk_critical_pct;
    t->critical_mb = cfg->disk_critical_mb;
}

/* statvfs: 0 or errno. */
static int measure(const char *path, uint64_t *free_bytes, uint64_t *total_bytes)
{
    struct statvfs v;
    if (statvfs(path, &v) != 0)
        return errno;
    *free_bytes = (uint64_t)v.f_bavail * v.f_frsize;
    *total_bytes = (uint64_t)v.f_blocks * v.f_frsize;
    return 0;
}

/* Space a file takes on disk (allocated blocks), 0 when absent. */
static uint64_t allocated(const char *path, int *exists)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (exists)
            *exists = 0;
        return 0;
    }
    if (exists)
        *exists = 1;
    return (uint64_t)st.st_blocks * 512;
}

long lucy_doctor_daemon_pid(const struct lucy_doctor *d)
{
    int fd = open(d->pid_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    long pid = 0;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        flock(fd, LOCK_UN);
    } else {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        pid = n > 0 ? strtol(buf, NULL, 10) : 0;
        if (pid <= 0)
            pid = -1;
    }
    close(fd);
    return pid;
}

/* ---- daemon ---------------------------------------------------------------- */

void lucy_doctor_check_daemon(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    long pid = lucy_doctor_daemon_pid(d);
    json_object_set_new(r->details, "running", json_boolean(pid != 0));
    json_object_set_new(r->details, "pid", pid > 0 ? json_integer(pid) : json_null());
    json_object_set_new(r->details, "lock_file", json_string(d->pid_path));
    if (pid > 0)
        lucy_doctor_say(r, "lucy serve (pid %ld) is running on this data dir", pid);
    else if (pid < 0)
        lucy_doctor_say(r, "a lucy serve is running on this data dir (it holds %.900s)",
                        d->pid_path);
    else
        lucy_doctor_say(r, "no lucy serve is running on this data dir (nothing holds %.900s)",
                        d->pid_path);
}

/* ---- disk ------------------------------------------------------------------ */

void lucy_doctor_check_disk(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    const struct lucy_config *cfg = d->cfg;
    struct lucy_disk_thresholds t;
    thresholds_of(cfg, &t);
    json_t *paths = json_array();
    json_object_set_new(r->details, "paths", paths);
    json_object_set_new(r->details, "thresholds",
                        json_pack("{s:i,s:i,s:i,s:i}", "warn_pct", t.warn_pct, "warn_mb", t.warn_mb,
                                  "critical_pct", t.critical_pct, "critical_mb", t.critical_mb));

    /* the watched paths, in the guard's order: data, tmp, LUCY_DISK_PATHS */
    char *extra = strdup(cfg->disk_paths ? cfg->disk_paths : "");
    const char *list[LUCY_DISK_MAX_PATHS];
    const char *roles[LUCY_DISK_MAX_PATHS];
    int n = 0;
    list[n] = cfg->data_dir, roles[n++] = "data";
    list[n] = d->tmp_dir, roles[n++] = "tmp";
    char *save = NULL;
    for (char *p = extra ? strtok_r(extra, ":", &save) : NULL; p && n < LUCY_DISK_MAX_PATHS;
         p = strtok_r(NULL, ":", &save))
        list[n] = p, roles[n++] = "extra";

    for (int i = 0; i < n; i++) {
        uint64_t fb = 0, tb = 0;
        int e = measure(list[i], &fb, &tb);
        if (e) {
            json_array_append_new(paths,
                                  json_pack("{s:s,s:s,s:s,s:s}", "path", list[i], "role", roles[i],
                                            "level", "unmeasured", "error", strerror(e)));
            lucy_doctor_say(r, "%-5s %.600s: cannot measure: %s", roles[i], list[i], strerror(e));
            lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_DISK_UNMEASURED);
            continue;
        }
        enum lucy_disk_level level = lucy_disk_level_of(fb, tb, &t);
        double pct = tb ? (double)fb * 100.0 / (double)tb : 0.0;
        char hf[32], ht[32];
        lucy_doctor_human(fb, hf, sizeof hf);
        lucy_doctor_human(tb, ht, sizeof ht);
        json_array_append_new(paths,
                              json_pack("{s:s,s:s,s:s,s:I,s:I,s:f,s:s,s:s}", "path", list[i],
                                        "role", roles[i], "level", lucy_disk_level_name(level),
                                        "free_bytes", (json_int_t)fb, "total_bytes", (json_int_t)tb,
                                        "free_pct", pct, "free", hf, "total", ht));
        lucy_doctor_say(r, "%-5s %.600s: %s free of %s (%.1f%%): %s", roles[i], list[i], hf, ht,
                        pct, lucy_disk_level_name(level));
        if (level == LUCY_DISK_CRITICAL)
            lucy_doctor_raise(r, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_DISK_CRITICAL);
        else if (level == LUCY_DISK_WARN)
            lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_DISK_WARN);
    }
    free(extra);
    if (n == 2)
        lucy_doctor_say(r, "(add Redis's dir, Qdrant's storage and the Docker root to "
                           "LUCY_DISK_PATHS to watch them too)");
}

/* Files directly in the temp dir (copies are never in subfolders). */
static uint64_t list_temp(const char *dir, uint64_t *bytes)
{
    uint64_t n = 0;
    *bytes = 0;
    DIR *dp = opendir(dir);
    if (!dp)
        return 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            fstatat(dirfd(dp), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(st.st_mode))
            continue;
        n++;
        *bytes += (uint64_t)st.st_blocks * 512;
    }
    closedir(dp);
    return n;
}

/* ---- data dir -------------------------------------------------------------- */

static uint64_t walk_total; /* nftw has no user argument; doctor is single-threaded */

static int walk_add(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path, (void)ftw;
    if (flag == FTW_F || flag == FTW_D || flag == FTW_SL)
        walk_total += (uint64_t)st->st_blocks * 512;
    return 0;
}

/* Allocated bytes under dir (directories included), on its own file
 * system, like `du -sx`. */
static uint64_t tree_bytes(const char *dir)
{
    walk_total = 0;
    nftw(dir, walk_add, 16, FTW_PHYS | FTW_MOUNT);
    return walk_total;
}

void lucy_doctor_check_data_dir(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    const char *dir = d->cfg->data_dir;
    char path[1200];
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        json_object_set_new(r->details, "exists", json_false());
        lucy_doctor_say(r, "%.1000s is not a directory", dir);
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_STORE_MISSING);
        return;
    }
    json_object_set_new(r->details, "exists", json_true());
    static const struct {
        const char *key;    /* details key */
        const char *label;  /* in the summary */
        const char *suffix; /* file under the data dir */
    } parts[] = {
        {"database", "database", "lucy.db"},
        {"wal", "WAL", "lucy.db-wal"},
        {"shm", "shared memory", "lucy.db-shm"},
        {"reserve", "reserve", "reserve.bin"},
    };
    uint64_t named = 0;
    char line[1024] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        snprintf(path, sizeof path, "%.1000s/%s", dir, parts[i].suffix);
        uint64_t b = allocated(path, NULL);
        named += b;
        json_object_set_new(r->details, parts[i].key, lucy_doctor_size_json(b));
        char h[32];
        lucy_doctor_human(b, h, sizeof h);
        used += (size_t)snprintf(line + used, used < sizeof line ? sizeof line - used : 0,
                                 "%s%s %s", i ? ", " : "", parts[i].label, h);
    }
    uint64_t tmp = 0;
    uint64_t tmp_files = list_temp(d->tmp_dir, &tmp);
    json_t *tj = lucy_doctor_size_json(tmp);
    json_object_set_new(tj, "files", json_integer((json_int_t)tmp_files));
    json_object_set_new(r->details, "temp_copies", tj);
    uint64_t total = tree_bytes(dir);
    uint64_t other = total > named + tmp ? total - named - tmp : 0;
    json_object_set_new(r->details, "other", lucy_doctor_size_json(other));
    json_object_set_new(r->details, "total", lucy_doctor_size_json(total));
    char ht[32], ho[32], hall[32];
    lucy_doctor_human(tmp, ht, sizeof ht);
    lucy_doctor_human(other, ho, sizeof ho);
    lucy_doctor_human(total, hall, sizeof hall);
    lucy_doctor_say(r, "%.1000s: %s in all", dir, hall);
    lucy_doctor_say(r, "%s, temp copies %s (%llu files), other %s", line, ht,
                    (unsigned long long)tmp_files, ho);
}

/* ---- reserve --------------------------------------------------------------- */

void lucy_doctor_check_reserve(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    const struct lucy_config *cfg = d->cfg;
    uint64_t want = (uint64_t)cfg->disk_reserve_mb * MIB;
    char path[1200];
    snprintf(path, sizeof path, "%.1000s/reserve.bin", cfg->data_dir);
    json_object_set_new(r->details, "path", json_string(path));
    json_object_set_new(r->details, "configured", lucy_doctor_size_json(want));
    if (want == 0) {
        json_object_set_new(r->details, "present", json_false());
        lucy_doctor_say(r, "disabled (LUCY_DISK_RESERVE_MB=0)");
        return;
    }
    struct stat st;
    int present = stat(path, &st) == 0 && (uint64_t)st.st_size == want &&
                  (uint64_t)st.st_blocks * 512 >= want;
    json_object_set_new(r->details, "present", json_boolean(present));
    char hw[32];
    lucy_doctor_human(want, hw, sizeof hw);
    if (present) {
        lucy_doctor_say(r, "%.1000s is in place (%s)", path, hw);
        return;
    }
    struct lucy_disk_thresholds t;
    thresholds_of(cfg, &t);
    uint64_t fb = 0, tb = 0;
    if (measure(cfg->data_dir, &fb, &tb) != 0) {
        lucy_doctor_say(r, "%.1000s is missing and the data dir cannot be measured", path);
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_DISK_UNMEASURED);
        return;
    }
    enum lucy_disk_level level = lucy_disk_level_of(fb, tb, &t);
    if (level == LUCY_DISK_CRITICAL) {
        lucy_doctor_say(r, "%.1000s (%s) is released: the disk is critical", path, hw);
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_RESERVE_RELEASED);
    } else if (lucy_disk_reserve_action(level, 0, fb, tb, want, &t) > 0) {
        lucy_doctor_say(r, "%.1000s (%s) is missing and there is room to recreate it", path, hw);
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_RESERVE_MISSING);
        r->fixable = 1;
    } else {
        lucy_doctor_say(r,
                        "%.1000s (%s) is missing; the disk is at level %s, too full to "
                        "recreate it",
                        path, hw, lucy_disk_level_name(level));
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_RESERVE_NO_ROOM);
    }
}

void lucy_doctor_fix_reserve(struct lucy_doctor *d, const struct lucy_doctor_result *r,
                             struct lucy_doctor_fix *out)
{
    (void)r;
    const struct lucy_config *cfg = d->cfg;
    struct lucy_disk_thresholds t;
    thresholds_of(cfg, &t);
    /* the guard decides again with a fresh measurement and creates it the
     * way the daemon does (fallocate under a temporary name, rename) */
    struct lucy_disk *g = lucy_disk_new(cfg->data_dir, d->tmp_dir, NULL, &t, cfg->disk_reserve_mb);
    if (!g) {
        snprintf(out->result, sizeof out->result, "out of memory");
        return;
    }
    lucy_disk_poll(g);
    out->applied = lucy_disk_reserve_present(g);
    char h[32];
    lucy_doctor_human(lucy_disk_reserve_bytes(g), h, sizeof h);
    if (out->applied)
        snprintf(out->result, sizeof out->result, "created %.900s/reserve.bin (%s)", cfg->data_dir,
                 h);
    else
        snprintf(out->result, sizeof out->result,
                 "could not create %.900s/reserve.bin (%s): free space on the data dir first",
                 cfg->data_dir, h);
    lucy_disk_free(g);
}

/* ---- temp copies ----------------------------------------------------------- */

void lucy_doctor_check_temp(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    uint64_t bytes = 0;
    uint64_t n = list_temp(d->tmp_dir, &bytes);
    long pid = lucy_doctor_daemon_pid(d);
    char h[32];
    lucy_doctor_human(bytes, h, sizeof h);
    json_object_set_new(r->details, "dir", json_string(d->tmp_dir));
    json_object_set_new(r->details, "files", json_integer((json_int_t)n));
    json_object_set_new(r->details, "size", lucy_doctor_size_json(bytes));
    json_object_set_new(r->details, "daemon_running", json_boolean(pid != 0));
    if (n == 0) {
        lucy_doctor_say(r, "no temp copies in %.1000s", d->tmp_dir);
        return;
    }
    r->fixable = 1;
    if (pid != 0) {
        lucy_doctor_say(r, "%llu file(s), %s, in %.900s, in use by the running lucy serve",
                        (unsigned long long)n, h, d->tmp_dir);
        return;
    }
    lucy_doctor_say(r, "%llu stale file(s), %s, in %.900s", (unsigned long long)n, h, d->tmp_dir);
    lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_TEMP_STALE);
}

void lucy_doctor_fix_temp(struct lucy_doctor *d, const struct lucy_doctor_result *r,
                          struct lucy_doctor_fix *out)
{
    (void)r;
    /* the exclusive lock: fails while a daemon runs, and keeps one from
     * starting (it waits for the lock) while we delete */
    int fd = open(d->pid_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(out->result, sizeof out->result, "skipped: cannot open %.900s: %s", d->pid_path,
                 strerror(errno));
        return;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        long pid = lucy_doctor_daemon_pid(d);
        char who[64] = "a lucy serve";
        if (pid > 0)
            snprintf(who, sizeof who, "lucy serve (pid %ld)", pid);
        snprintf(out->result, sizeof out->result,
                 "skipped: %s is running on this data dir and may be using them; it removes "
                 "stale ones when it starts",
                 who);
        close(fd);
        return;
    }
    uint64_t removed = 0, bytes = 0, failed = 0;
    int first_errno = 0;
    DIR *dp = opendir(d->tmp_dir);
    struct dirent *e;
    while (dp && (e = readdir(dp))) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            fstatat(dirfd(dp), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(st.st_mode))
            continue;
        if (unlinkat(dirfd(dp), e->d_name, 0) == 0) {
            removed++;
            bytes += (uint64_t)st.st_blocks * 512;
        } else {
            failed++;
            if (!first_errno)
                first_errno = errno;
        }
    }
    if (dp)
        closedir(dp);
    flock(fd, LOCK_UN);
    close(fd);
    char h[32];
    lucy_doctor_human(bytes, h, sizeof h);
    out->applied = removed > 0;
    if (failed)
        snprintf(out->result, sizeof out->result,
                 "removed %llu stale temp copies (%s) from %.800s; %llu could not be removed: %s",
                 (unsigned long long)removed, h, d->tmp_dir, (unsigned long long)failed,
                 strerror(first_errno));
    else
        snprintf(out->result, sizeof out->result, "removed %llu stale temp copies (%s) from %.800s",
                 (unsigned long long)removed, h, d->tmp_dir);
}
