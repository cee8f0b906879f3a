/*
 * integrity.c - quick_check on a schedule, and the commit-count marker that
 * detects lost database files (see integrity.h and store.h).
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

void lucy_store_marker_write(const char *db_path, long long generation)
{
    char path[1100], tmp[1120];
    marker_path(db_path, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    char line[96];
    int n = snprintf(line, sizeof line, "%lld %lld\n", generation, (long long)lucy_wall_ms());
    int ok = write(fd, line, (size_t)n) == n;
    ok &= close(fd) == 0;
    if (!ok || rename(tmp, path) != 0)
        unlink(tmp);
}

int lucy_store_marker_verify(sqlite3 *db, const char *db_path, long long *generation, char *err,
                             size_t errlen)
{
    *generation = lucy_store_generation_read(db);
    char path[1100];
    marker_path(db_path, path, sizeof path);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0; /* a new data dir, or one from before the marker */
    long long marked = 0, at_ms = 0;
    int n = fscanf(f, "%lld %lld", &marked, &at_ms);
    fclose(f);
    if (n < 1 || marked <= *generation)
        return 0;
    snprintf(err, errlen,
             "%s holds fewer commits (%lld) than it had (%lld, per %s): the database or its "
             "-wal file was lost, truncated or replaced, and starting would silently drop "
             "data. Put the missing files back or restore the last backup "
             "(docs/operations.md, \"A damaged store\"); to accept the loss and go on with "
             "what the database holds, delete %s",
             db_path, *generation, marked, path, path);
    return LUCY_EDBCORRUPT;
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
