/*
 * integrity.c - quick_check on a schedule, FTS5's integrity-check, and the
 * commit-count marker that detects lost database files (see integrity.h
 * and store.h).
 */
#define _GNU_SOURCE
#include "integrity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../clock.h"
#include "../error.h"
#include "store.h"

#define GENERATION_KEY "store_generation"

int lucy_store_generation_bump(sqlite3 *db, long long *generation)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "INSERT INTO meta (key, value) VALUES ('" GENERATION_KEY "', 1) "
                             "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1 "
                             "RETURNING CAST(value AS INTEGER)",
                             &st);
    if (rc)
        return SQLITE_ERROR;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *generation = sqlite3_column_int64(st, 0);
        rc = sqlite3_step(st);
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

long long lucy_store_generation_read(sqlite3 *db)
{
    sqlite3_stmt *st;
    long long g = 0;
    if (sqlite3_prepare_v2(
            db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = '" GENERATION_KEY "'", -1, &st,
            NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        g = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return g;
}

static void marker_path(const char *db_path, char *out, size_t len)
{
    snprintf(out, len, "%s.generation", db_path);
}

void lucy_store_id_read(sqlite3 *db, char id[LUCY_STORE_ID_SIZE])
{
    sqlite3_stmt *st;
    id[0] = '\0';
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'store_id'", -1, &st, NULL) !=
        SQLITE_OK)
        return;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(id, LUCY_STORE_ID_SIZE, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

/* Gives db a new random id (32 hex digits). 0 or the SQLite result. */
static int store_id_make(sqlite3 *db, char id[LUCY_STORE_ID_SIZE])
{
    unsigned char r[16];
    sqlite3_randomness(sizeof r, r);
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(id + 2 * i, 3, "%02x", r[i]);
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta (key, value) VALUES ('store_id', '%s')",
             id);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

void lucy_store_marker_write(const char *db_path, long long generation, const char *store_id)
{
    char path[1100], tmp[1120];
    marker_path(db_path, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    char line[128];
    int n = snprintf(line, sizeof line, "%lld %lld %s\n", generation, (long long)lucy_wall_ms(),
                     store_id && *store_id ? store_id : "-");
    int ok = write(fd, line, (size_t)n) == n;
    ok &= close(fd) == 0;
    if (!ok || rename(tmp, path) != 0)
        unlink(tmp);
}

int lucy_store_marker_verify(sqlite3 *db, const char *db_path, long long *generation,
                             char id[LUCY_STORE_ID_SIZE], char *err, size_t errlen)
{
    *generation = lucy_store_generation_read(db);
    lucy_store_id_read(db, id);
    char path[1100];
    marker_path(db_path, path, sizeof path);
    long long marked = 0, at_ms = 0;
    char marked_id[LUCY_STORE_ID_SIZE + 8] = "";
    FILE *f = fopen(path, "re");
    int n = f ? fscanf(f, "%lld %lld %40s", &marked, &at_ms, marked_id) : 0;
    if (f)
        fclose(f);
    if (n < 3 || strcmp(marked_id, "-") == 0)
        marked_id[0] = '\0'; /* no marker, or one from before store ids */
    const char *why = NULL;
    if (n >= 1 && marked > *generation)
        why = "holds fewer commits than it had";
    else if (marked_id[0] && strcmp(marked_id, id) != 0)
        why = "is not the database this data dir held (another store id)";
    if (why) {
        snprintf(err, errlen,
                 "%s %s (%lld commits, store id %s; %s says %lld, %s): the database or its -wal "
                 "file was lost, truncated or replaced, and starting would silently drop data. "
                 "Put the missing files back or restore the last backup (lucy restore; "
                 "docs/operations.md, \"A damaged store\"); to accept the loss and go on with "
                 "what the database holds, delete %s",
                 db_path, why, *generation, id[0] ? id : "none", path, marked,
                 marked_id[0] ? marked_id : "no id", path);
        return LUCY_EDBCORRUPT;
    }
    if (!id[0] && store_id_make(db, id) != SQLITE_OK)
        id[0] = '\0'; /* a read-only or full disk: the marker stays id-less for now */
    return 0;
}

/* ---- quick_check ------------------------------------------------------------- */

struct quick_check {
    int64_t deadline_mono_ms; /* stop here */
    int timed_out;            /* the progress handler stopped it */
    int damaged;              /* quick_check found something */
    char detail[300];         /* its first finding */
};

static int past_deadline(void *arg)
{
    struct quick_check *q = arg;
    if (lucy_mono_ms() < q->deadline_mono_ms)
        return 0;
    q->timed_out = 1;
    return 1;
}

static int run_quick_check(sqlite3 *db, void *arg)
{
    struct quick_check *q = arg;
    sqlite3_stmt *st;
    /* a hand prepare: the progress handler interrupts it, and an
     * interrupted statement is not worth keeping in the cache */
    int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_progress_handler(db, 10000, past_deadline, q);
        rc = sqlite3_step(st);
        sqlite3_progress_handler(db, 0, NULL, NULL);
        const unsigned char *r = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
        if (r && strcmp((const char *)r, "ok") != 0) {
            q->damaged = 1;
            snprintf(q->detail, sizeof q->detail, "%s", (const char *)r);
        }
    }
    if (!q->timed_out && rc != SQLITE_ROW && rc != SQLITE_DONE &&
        lucy_store_err(rc) == LUCY_EDBCORRUPT) {
        q->damaged = 1;
        snprintf(q->detail, sizeof q->detail, "%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    if (q->damaged)
        return LUCY_EDBCORRUPT;
    if (q->timed_out)
        return LUCY_ETIMEDOUT;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

int lucy_store_quick_check(struct lucy_store *s, int timeout_ms, char *detail, size_t len)
{
    struct quick_check q = {.deadline_mono_ms = lucy_mono_ms() + timeout_ms};
    int rc = lucy_store_read(s, run_quick_check, &q);
    if (len)
        snprintf(detail, len, "%s", q.detail);
    if (rc == LUCY_EDBCORRUPT)
        lucy_store_mark_damaged(s, q.detail[0] ? q.detail : "PRAGMA quick_check failed");
    if (rc == 0 || rc == LUCY_EDBCORRUPT)
        lucy_store_checked(s);
    return rc;
}

/* ---- FTS5 integrity-check ------------------------------------------------------
 * quick_check sees an FTS5 index only as the blobs of its <table>_data
 * shadow table; FTS5's own 'integrity-check' command decodes them and
 * compares the index with the content (https://sqlite.org/fts5.html, "The
 * 'integrity-check' Command"). It is an INSERT, so it needs the write lock:
 * it runs as a write on the writer thread, and every other write waits for
 * it (no deadline there: interrupting an INSERT rolls back the whole batch
 * it shares). */

static int run_fts_check(sqlite3 *db, void *arg)
{
    struct lucy_store *s = arg;
    sqlite3_stmt *tables;
    int rc = lucy_store_stmt(db,
                             "SELECT name FROM sqlite_schema WHERE type = 'table' "
                             "AND sql LIKE 'CREATE VIRTUAL TABLE % USING fts5(%'",
                             &tables);
    if (rc)
        return rc;
    while ((rc = sqlite3_step(tables)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(tables, 0);
        char *sql =
            sqlite3_mprintf("INSERT INTO \"%w\" (\"%w\") VALUES ('integrity-check')", name, name);
        if (!sql)
            return LUCY_ENOMEM;
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        sqlite3_free(sql);
        if (rc != SQLITE_OK) {
            int err = lucy_store_err(rc);
            if (err == LUCY_EDBCORRUPT) {
                char detail[300];
                snprintf(detail, sizeof detail, "FTS5 integrity-check of %.64s: %.200s", name,
                         sqlite3_errmsg(db));
                lucy_store_mark_damaged(s, detail);
            }
            return err;
        }
    }
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

int lucy_store_fts_check(struct lucy_store *s, int timeout_ms, char *detail, size_t len)
{
    /* s outlives the write even when the wait times out: the store's close
     * runs every queued write first */
    int rc = lucy_store_write(s, run_fts_check, s, timeout_ms);
    if (len)
        detail[0] = '\0';
    if (rc == LUCY_EDBCORRUPT)
        lucy_store_damaged(s, detail, len);
    return rc;
}
