/*
 * backup.h - an online, checked copy of the store, and putting one back
 * (DESIGN §15). Sits with the store it acts on.
 *
 * A backup is SQLite's online backup API run from a read-only connection
 * of the live database (in WAL mode it sees one consistent snapshot and
 * never blocks the daemon's writer), written to a temp file beside the
 * destination, checked with PRAGMA integrity_check, fsynced, and only then
 * renamed into place (and the folder fsynced): the final name only ever
 * holds a complete, checked copy. Any failure — a full destination, a
 * kill -9 — leaves at most the temp file (removed on failure; named
 * ".lucy-backup-*.tmp" so a later run can clean it) and never touches an
 * earlier backup.
 *
 * A restore puts a checked copy in place of DATA_DIR/lucy.db while no
 * daemon runs (the caller holds DATA_DIR/lucy.pid's exclusive lock): the
 * current database and its -wal/-shm are moved aside, not deleted, and the
 * commit-count marker (integrity.h) is rewritten to the restored copy's
 * count, so the next start accepts the older database on purpose.
 *
 * Thread safety: each call is self-contained; backups may run while the
 * daemon writes. Errors: LUCY_E* with one line in err saying what to do.
 */
#ifndef LUCY_STORE_BACKUP_H
#define LUCY_STORE_BACKUP_H

#include <stddef.h>
#include <stdint.h>

/* What a backup or restore did. */
struct lucy_backup_result {
    char path[1100];        /* the backup file written, or the file restored from */
    char moved_aside[1200]; /* restore: where the replaced database went ("" if none) */
    uint64_t bytes;         /* size of the copy */
    int64_t duration_ms;    /* wall time */
};

/* The destination's file system must keep this much free after the copy,
 * or the backup is skipped: percent and MiB, like the disk guard's warn
 * level (DESIGN §15: a backup never pushes a disk below warn). */
struct lucy_backup_margin {
    int free_pct; /* LUCY_DISK_WARN_PCT */
    int free_mb;  /* LUCY_DISK_WARN_MB */
};

/* Copies db_path (a live lucy.db) to dest: a directory (the file is then
 * dest/lucy-YYYYmmddTHHMMSSZ.db, UTC) or a file path. Refuses with
 * LUCY_ENOSPC before writing when the copy would leave dest's file system
 * below margin; LUCY_ENOSPC / LUCY_EIO when writing fails; LUCY_EDBCORRUPT
 * when the copy fails integrity_check (the source is damaged: see doctor).
 * On success fills out. */
int lucy_backup_run(const char *db_path, const char *dest, const struct lucy_backup_margin *margin,
                    struct lucy_backup_result *out, char *err, size_t errlen);

/* Checks src (integrity_check; it must look like a lucy store: a
 * schema_version table) and puts a copy in place of db_path, moving the
 * old database and its -wal/-shm aside to db_path.before-restore-<UTC>.
 * The caller must hold the data dir's daemon lock. LUCY_EINVAL for a file
 * that is not a sound lucy store, LUCY_ENOSPC / LUCY_EIO on write errors
 * (the old database is then left in place). */
int lucy_backup_restore(const char *src, const char *db_path, struct lucy_backup_result *out,
                        char *err, size_t errlen);

#endif
