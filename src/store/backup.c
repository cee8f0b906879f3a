/*
 * backup.c - online, checked backups of the store and restores (see
 * backup.h).
 */
#define _GNU_SOURCE
#include "backup.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "../clock.h"
#include "../error.h"
#include "integrity.h"
#include "store.h"

#define BUSY_RETRIES 50   /* x 100 ms: a writer holding the database briefly */
#define STEP_PAGES   4096 /* pages per backup step (16 MiB at 4 KiB): flushed after each */

/* "20261204T211530Z" for now. */
static void utc_stamp(char *buf, size_t len)
{
    time_t t = (time_t)(lucy_wall_ms() / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y%m%dT%H%M%SZ", &tm);
}

static uint64_t file_bytes(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* fsync of a file or a folder by path. 0 or an errno. */
static int sync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

/* The LUCY_E* code for a failed SQLite call on db, telling a full disk
 * from other I/O errors by the system errno. */
static int sqlite_fail(sqlite3 *db, int rc)
{
    int sys = db ? sqlite3_system_errno(db) : 0;
    if ((rc & 0xff) == SQLITE_FULL || sys == ENOSPC || sys == EDQUOT)
        return LUCY_ENOSPC;
    return lucy_store_err(rc);
}

/* PRAGMA integrity_check on db: 0 when "ok", else LUCY_EDBCORRUPT with
 * SQLite's first finding in detail. */
static int integrity_ok(sqlite3 *db, char *detail, size_t len)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        snprintf(detail, len, "%s", sqlite3_errmsg(db));
        return sqlite_fail(db, rc);
    }
    rc = sqlite3_step(st);
    const unsigned char *r = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    int ok = r && strcmp((const char *)r, "ok") == 0;
    snprintf(detail, len, "%s", r ? (const char *)r : sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return ok ? 0 : rc == SQLITE_ROW ? LUCY_EDBCORRUPT : sqlite_fail(db, rc);
}

/* Copies every page of src's main database into dst's (the online backup
 * API: one consistent snapshot; in WAL mode the daemon keeps writing), in
 * steps of STEP_PAGES, flushing what was written after each step through
 * sync_fd (a descriptor of dst's file; -1 = none): a 1 GB copy written
 * unsynced and fsynced at the end queues a gigabyte in front of the
 * daemon's own 1 ms fsyncs, and every webhook waits behind it. */
static int copy_pages(sqlite3 *src, sqlite3 *dst, int sync_fd, char *err, size_t errlen)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        snprintf(err, errlen, "cannot start the copy: %s", sqlite3_errmsg(dst));
        return sqlite_fail(dst, sqlite3_errcode(dst));
    }
    int rc, busy = 0;
    while ((rc = sqlite3_backup_step(b, STEP_PAGES)) == SQLITE_OK || rc == SQLITE_BUSY ||
           rc == SQLITE_LOCKED) {
        if (rc != SQLITE_OK && ++busy > BUSY_RETRIES)
            break;
        if (rc != SQLITE_OK)
            sqlite3_sleep(100);
        else if (sync_fd >= 0)
            fdatasync(sync_fd);
    }
    sqlite3_backup_finish(b);
    if (rc == SQLITE_DONE)
        return 0;
    snprintf(err, errlen, "the copy failed: %s", sqlite3_errstr(rc));
    return sqlite_fail(dst, rc);
}

/* Makes a copy of src_path (read-only, live database) at tmp in rollback-
 * journal mode, checked. Removes tmp on failure. */
static int checked_copy(const char *src_path, const char *tmp, char *err, size_t errlen)
{
    sqlite3 *src = NULL, *dst = NULL;
    char detail[300] = "";
    int rc = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", src_path, sqlite3_errstr(rc));
        rc = lucy_store_err(rc);
        goto out;
    }
    sqlite3_busy_timeout(src, 5000);
    rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, sqlite3_errstr(rc));
        rc = sqlite_fail(dst, rc);
        goto out;
    }
    /* the temp file is fsynced once at the end and renamed only when
     * checked: no journal and no syncs while it is written */
    sqlite3_exec(dst, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF", NULL, NULL, NULL);
    int sync_fd = open(tmp, O_RDONLY | O_CLOEXEC);
    rc = copy_pages(src, dst, sync_fd, err, errlen);
    if (sync_fd >= 0)
        close(sync_fd);
    if (rc)
        goto out;
    /* a file on its own: no -wal beside it to lose in a copy or a move */
    int jrc = sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    if (jrc != SQLITE_OK) {
        snprintf(err, errlen, "cannot finish the copy: %s", sqlite3_errmsg(dst));
        rc = sqlite_fail(dst, jrc);
        goto out;
    }
    if ((rc = integrity_ok(dst, detail, sizeof detail)) != 0)
        snprintf(err, errlen, "the copy of %s failed PRAGMA integrity_check (%s)", src_path,
                 detail);
out:
    sqlite3_close(src);
    sqlite3_close(dst);
    if (rc == 0 && (errno = sync_path(tmp)) != 0) {
        snprintf(err, errlen, "cannot fsync %s: %s", tmp, strerror(errno));
        rc = errno == ENOSPC ? LUCY_ENOSPC : LUCY_EIO;
    }
    if (rc) {
        char journal[1200];
        snprintf(journal, sizeof journal, "%s-journal", tmp);
        unlink(tmp);
        unlink(journal);
    }
    return rc;
}

/* LUCY_ENOSPC when writing need bytes in dir would leave its file system
 * below margin (DESIGN §15: a backup never pushes a disk below warn). */
static int admit(const char *dir, uint64_t need, const struct lucy_backup_margin *m, char *err,
                 size_t errlen)
{
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0) {
        snprintf(err, errlen, "cannot measure free space of %s: %s", dir, strerror(errno));
        return lucy_err_from_errno(errno);
    }
    uint64_t total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    uint64_t free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    uint64_t after = free_bytes > need ? free_bytes - need : 0;
    double pct = total ? 100.0 * (double)after / (double)total : 0;
    uint64_t floor_bytes = (uint64_t)(m ? m->free_mb : 0) * 1024 * 1024;
    if (free_bytes < need || after < floor_bytes || (m && pct < m->free_pct)) {
        snprintf(err, errlen,
                 "not enough room in %s: the copy needs about %llu MiB and would leave %llu MiB "
                 "(%.1f%%) free, below the warn level (LUCY_DISK_WARN_MB %d, "
                 "LUCY_DISK_WARN_PCT %d); free space there or choose another destination",
                 dir, (unsigned long long)(need >> 20), (unsigned long long)(after >> 20), pct,
                 m ? m->free_mb : 0, m ? m->free_pct : 0);
        return LUCY_ENOSPC;
    }
    return 0;
}

int lucy_backup_run(const char *db_path, const char *dest, const struct lucy_backup_margin *margin,
                    struct lucy_backup_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int64_t t0 = lucy_mono_ms();
    char wal[1100], dir[1100], final[1100], tmp[1200], stamp[32];
    if (access(db_path, R_OK) != 0) {
        snprintf(err, errlen, "no store at %s: point --data at lucy's data dir", db_path);
        return LUCY_ENOTFOUND;
    }
    utc_stamp(stamp, sizeof stamp);
    struct stat st;
    if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(dir, sizeof dir, "%s", dest);
        snprintf(final, sizeof final, "%.1000s/lucy-%s.db", dest, stamp);
    } else {
        char copy[1100];
        snprintf(copy, sizeof copy, "%s", dest);
        snprintf(dir, sizeof dir, "%s", dirname(copy));
        snprintf(final, sizeof final, "%s", dest);
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "no folder %s for the backup: create it first", dir);
            return LUCY_ENOTFOUND;
        }
    }
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    uint64_t need = file_bytes(db_path) + file_bytes(wal);
    int rc = admit(dir, need, margin, err, errlen);
    if (rc)
        return rc;
    snprintf(tmp, sizeof tmp, "%.1000s/.lucy-backup-%ld-%s.tmp", dir, (long)getpid(), stamp);
    if ((rc = checked_copy(db_path, tmp, err, errlen)) != 0)
        return rc;
    if (rename(tmp, final) != 0) {
        snprintf(err, errlen, "cannot rename the backup to %s: %s", final, strerror(errno));
        rc = lucy_err_from_errno(errno);
        unlink(tmp);
        return rc;
    }
    sync_path(dir); /* the rename itself survives a crash */
    snprintf(out->path, sizeof out->path, "%s", final);
    out->bytes = file_bytes(final);
    out->duration_ms = lucy_mono_ms() - t0;
    return 0;
}

/* Moves path (if it exists) to aside; 0 or an errno. */
static int move_aside(const char *path, const char *aside)
{
    if (rename(path, aside) == 0 || errno == ENOENT)
        return 0;
    return errno;
}

int lucy_backup_restore(const char *src, const char *db_path, struct lucy_backup_result *out,
                        char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int64_t t0 = lucy_mono_ms();
    sqlite3 *db = NULL;
    char detail[300];
    int rc = sqlite3_open_v2(src, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = integrity_ok(db, detail, sizeof detail) == 0 ? SQLITE_OK : SQLITE_CORRUPT;
    long long generation = rc == SQLITE_OK ? lucy_store_generation_read(db) : 0;
    char store_id[LUCY_STORE_ID_SIZE] = "";
    if (rc == SQLITE_OK)
        lucy_store_id_read(db, store_id);
    sqlite3_stmt *st = NULL;
    int is_lucy = rc == SQLITE_OK &&
                  sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st,
                                     NULL) == SQLITE_OK &&
                  sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (rc != SQLITE_OK || !is_lucy) {
        snprintf(err, errlen,
                 "%s is not a sound lucy store (%s); nothing was changed. Restore from another "
                 "backup",
                 src, rc != SQLITE_OK ? detail : "no schema_version table");
        return LUCY_EINVAL;
    }
    char tmp[1200], stamp[32], aside[1150], a_from[1200], a_to[1200];
    snprintf(tmp, sizeof tmp, "%s.restore.tmp", db_path);
    if ((rc = checked_copy(src, tmp, err, errlen)) != 0)
        return rc;
    utc_stamp(stamp, sizeof stamp);
    snprintf(aside, sizeof aside, "%s.before-restore-%s", db_path, stamp);
    static const char *const parts[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(a_from, sizeof a_from, "%s%s", db_path, parts[i]);
        snprintf(a_to, sizeof a_to, "%s%s", aside, parts[i]);
        if ((errno = move_aside(a_from, a_to)) != 0) {
            snprintf(err, errlen, "cannot move %s aside: %s; nothing was replaced", a_from,
                     strerror(errno));
            unlink(tmp);
            return lucy_err_from_errno(errno);
        }
    }
    if (rename(tmp, db_path) != 0) {
        snprintf(err, errlen,
                 "cannot put the restored copy in place: %s; the old database is at %s",
                 strerror(errno), aside);
        return lucy_err_from_errno(errno);
    }
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", db_path);
    sync_path(dirname(dir));
    /* the restored database is older than the marker on purpose */
    lucy_store_marker_write(db_path, generation, store_id);
    snprintf(out->path, sizeof out->path, "%s", src);
    if (access(aside, F_OK) == 0)
        snprintf(out->moved_aside, sizeof out->moved_aside, "%s", aside);
    out->bytes = file_bytes(db_path);
    out->duration_ms = lucy_mono_ms() - t0;
    return 0;
}
