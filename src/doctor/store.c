/*
 * store.c - doctor's checks on the local store: is it there, and what is
 * waiting in it - WhatsApp inbox, index outbox, transcription jobs, kv
 * writes for Redis - plus the scanner's last summary and locked files.
 *
 * Everything is read through lucy_store_read() (the store's read-only,
 * query_only connections; WAL readers never block a running daemon's
 * writer). Tables are those of src/store/schema.c: wa_messages,
 * wa_statuses, wa_media (30, 33), outbox (10, via lucy_outbox_stats),
 * jobs (21), kv_pending (40), recording_paths (20), and meta (1), where
 * the scanner keeps its last summary under LUCY_SCAN_SUMMARY_META_KEY.
 *
 * A backlog needs attention at the same point as the daemon's own health
 * check says warn, so doctor and /health never disagree: the limits below
 * mirror whatsapp:inbox (plugins/whatsapp/plugin.c), index:outbox
 * (index/plugin.c) and kv:backend (kv/plugin.c). A healthy daemon drains
 * each backlog in well under a second.
 */
#define _GNU_SOURCE
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../clock.h"
#include "../config.h"
#include "../error.h"
#include "../index/index.h"
#include "../plugins/call_recordings/jobs.h"
#include "../plugins/call_recordings/scan.h"
#include "../store/backups.h"
#include "../store/store.h"
#include "doctor.h"

#define INBOX_WARN_AGE_S      300          /* whatsapp:inbox: oldest pending item */
#define OUTBOX_WARN_AGE_S     600          /* index:outbox: oldest pending document */
#define OUTBOX_WARN_ITEMS     1000         /* index:outbox: pending documents */
#define KV_WARN_AGE_S         60           /* kv:backend: oldest pending write */
#define DOCTOR_QUICK_CHECK_MS (120 * 1000) /* store: a full read of the database */

/* Without a store nothing below can be read: say so, stay ok (the store
 * check reports the problem once). 1 when the caller should return. */
static int no_store(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    if (d->store)
        return 0;
    json_object_set_new(r->details, "checked", json_false());
    lucy_doctor_say(r, "not checked: no database (see the store check)");
    return 1;
}

/* First row's integer columns of sql into out[0..n). 0 or LUCY_EIO. */
static int query_ints(sqlite3 *db, const char *sql, long long *out, int n)
{
    sqlite3_stmt *st;
    if (lucy_store_stmt(db, sql, &st) != 0)
        return LUCY_EIO;
    int rc = sqlite3_step(st);
    for (int i = 0; i < n; i++)
        out[i] = rc == SQLITE_ROW ? sqlite3_column_int64(st, i) : 0;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : LUCY_EIO;
}

/* First row's first text column of sql into buf ("" when none). */
static void query_text(sqlite3 *db, const char *sql, char *buf, size_t len)
{
    sqlite3_stmt *st;
    buf[0] = '\0';
    if (lucy_store_stmt(db, sql, &st) != 0)
        return;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
}

static void read_failed(struct lucy_doctor_result *r, int rc)
{
    lucy_doctor_say(r, "cannot read the store: %s", lucy_strerror(rc));
    lucy_doctor_raise(r, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_STORE_UNREADABLE);
}

/* ---- store ----------------------------------------------------------------- */

static int read_version(sqlite3 *db, void *arg)
{
    return query_ints(db, "SELECT coalesce(max(version),0) FROM schema_version", arg, 1);
}

void lucy_doctor_check_store(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    json_object_set_new(r->details, "path", json_string(d->db_path));
    struct stat st;
    int exists = stat(d->db_path, &st) == 0;
    json_object_set_new(r->details, "exists", json_boolean(exists));
    if (!exists) {
        lucy_doctor_say(r, "no database at %.1000s", d->db_path);
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_STORE_MISSING);
        return;
    }
    if (!d->store) {
        lucy_doctor_say(r, "cannot open %.900s: %.900s", d->db_path, d->store_error);
        lucy_doctor_raise(r, LUCY_DOCTOR_CRITICAL,
                          d->store_rc == LUCY_EDBCORRUPT ? LUCY_REMEDY_STORE_DAMAGED
                                                         : LUCY_REMEDY_STORE_UNREADABLE);
        return;
    }
    long long version = 0;
    int rc = lucy_store_read(d->store, read_version, &version);
    if (rc && rc != LUCY_EDBCORRUPT) {
        read_failed(r, rc);
        return;
    }
    json_object_set_new(r->details, "schema_version", json_integer(version));
    char detail[300] = "";
    rc = lucy_store_quick_check(d->store, DOCTOR_QUICK_CHECK_MS, detail, sizeof detail);
    const char *which = "PRAGMA quick_check";
    if (rc == 0) {
        which = "FTS5 integrity-check";
        rc = lucy_store_fts_check(d->store, DOCTOR_QUICK_CHECK_MS, detail, sizeof detail);
    }
    json_object_set_new(r->details, "integrity",
                        json_string(rc == 0                 ? "ok"
                                    : rc == LUCY_ETIMEDOUT  ? "not finished"
                                    : rc == LUCY_EDBCORRUPT ? "damaged"
                                                            : lucy_strerror(rc)));
    if (rc == LUCY_EDBCORRUPT) {
        lucy_doctor_say(r, "%.900s is DAMAGED: %s says %.300s", d->db_path, which, detail);
        lucy_doctor_raise(r, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_STORE_DAMAGED);
        return;
    }
    lucy_doctor_say(r, "%.1000s is readable (schema version %lld); %s%s", d->db_path, version,
                    rc == 0                ? "PRAGMA quick_check and FTS5 integrity-check: ok"
                    : rc == LUCY_ETIMEDOUT ? "the integrity check did not finish"
                                           : "the integrity check could not run: ",
                    rc == 0 || rc == LUCY_ETIMEDOUT ? "" : lucy_strerror(rc));
}

/* ---- backup ---------------------------------------------------------------- */

void lucy_doctor_check_backup(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    const char *dir = d->cfg->backup_dir;
    if (!dir || !*dir) {
        json_object_set_new(r->details, "scheduled", json_false());
        lucy_doctor_say(r, "scheduled backups are off (LUCY_BACKUP_DIR unset); `lucy backup DIR` "
                           "makes one by hand");
        return;
    }
    char path[1100] = "";
    int64_t at = lucy_backups_newest(dir, path, sizeof path);
    double age_h = at ? (double)(lucy_wall_ms() - at) / 3600000.0 : -1;
    json_object_set_new(r->details, "scheduled", json_true());
    json_object_set_new(r->details, "dir", json_string(dir));
    json_object_set_new(r->details, "last_good", at ? json_string(path) : json_null());
    json_object_set_new(r->details, "age_h", at ? json_real(age_h) : json_null());
    if (!at) {
        lucy_doctor_say(r, "no backup in %.900s yet", dir);
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_BACKUP_LATE);
        return;
    }
    lucy_doctor_say(r, "last good backup: %.900s, %.1f h old (every %d h)", path, age_h,
                    d->cfg->backup_interval_h);
    if (age_h > 2.0 * d->cfg->backup_interval_h)
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_BACKUP_LATE);
}

/* ---- inbox ----------------------------------------------------------------- */

struct inbox_counts {
    long long messages[2]; /* pending count, oldest received_at_ms */
    long long statuses[2]; /* same for statuses */
    long long media[2];    /* voice notes waiting: count, oldest created_at_ms */
    char last_error[256];  /* of the oldest pending message */
};

static int read_inbox(sqlite3 *db, void *arg)
{
    struct inbox_counts *c = arg;
    int rc = query_ints(db,
                        "SELECT count(*), coalesce(min(received_at_ms),0) FROM wa_messages"
                        " WHERE state = 'pending'",
                        c->messages, 2);
    if (!rc)
        rc = query_ints(db,
                        "SELECT count(*), coalesce(min(received_at_ms),0) FROM wa_statuses"
                        " WHERE state = 'pending'",
                        c->statuses, 2);
    if (!rc)
        rc = query_ints(db,
                        "SELECT count(*), coalesce(min(created_at_ms),0) FROM wa_media"
                        " WHERE state IN ('pending','downloaded')",
                        c->media, 2);
    if (!rc)
        query_text(db,
                   "SELECT last_error FROM wa_messages WHERE state = 'pending'"
                   " AND last_error IS NOT NULL ORDER BY received_at_ms LIMIT 1",
                   c->last_error, sizeof c->last_error);
    return rc;
}

/* Age in seconds of a wall-clock ms time stamp (0 = none). */
static long long age_s(long long at_ms)
{
    if (at_ms <= 0)
        return 0;
    long long a = (lucy_wall_ms() - at_ms) / 1000;
    return a < 0 ? 0 : a;
}

void lucy_doctor_check_inbox(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    if (no_store(d, r))
        return;
    struct inbox_counts c;
    memset(&c, 0, sizeof c);
    int rc = lucy_store_read(d->store, read_inbox, &c);
    if (rc) {
        read_failed(r, rc);
        return;
    }
    static const char *const names[] = {"messages", "statuses", "voice_notes"};
    long long *rows[] = {c.messages, c.statuses, c.media};
    long long worst_age = 0;
    for (int i = 0; i < 3; i++) {
        long long a = rows[i][0] ? age_s(rows[i][1]) : 0;
        json_object_set_new(r->details, names[i],
                            json_pack("{s:I,s:I}", "pending", (json_int_t)rows[i][0],
                                      "oldest_age_s", (json_int_t)a));
        if (a > worst_age)
            worst_age = a;
    }
    json_object_set_new(r->details, "last_error",
                        c.last_error[0] ? json_string(c.last_error) : json_null());
    lucy_doctor_say(r, "pending: %lld message(s), %lld status(es), %lld voice note(s)",
                    c.messages[0], c.statuses[0], c.media[0]);
    if (worst_age > 0)
        lucy_doctor_say(r, "the oldest has waited %lld s", worst_age);
    if (c.last_error[0])
        lucy_doctor_say(r, "last error: %.500s", c.last_error);
    if (worst_age > INBOX_WARN_AGE_S)
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_INBOX_BACKLOG);
}

/* ---- outbox ---------------------------------------------------------------- */

static int read_outbox(sqlite3 *db, void *arg)
{
    return lucy_outbox_stats(db, arg);
}

void lucy_doctor_check_outbox(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    if (no_store(d, r))
        return;
    struct lucy_outbox_stats s;
    memset(&s, 0, sizeof s);
    int rc = lucy_store_read(d->store, read_outbox, &s);
    if (rc) {
        read_failed(r, rc);
        return;
    }
    long long a = s.pending ? age_s(s.oldest_pending_ms) : 0;
    json_object_set_new(r->details, "pending", json_integer(s.pending));
    json_object_set_new(r->details, "failed", json_integer(s.failed));
    json_object_set_new(r->details, "retrying", json_integer(s.retrying));
    json_object_set_new(r->details, "oldest_age_s", json_integer(a));
    json_object_set_new(r->details, "first_error",
                        s.first_error[0] ? json_string(s.first_error) : json_null());
    lucy_doctor_say(r, "%lld document(s) pending (%lld retrying, oldest %lld s), %lld failed",
                    (long long)s.pending, (long long)s.retrying, a, (long long)s.failed);
    if (s.first_error[0])
        lucy_doctor_say(r, "first error: %.500s", s.first_error);
    if (s.failed > 0)
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_OUTBOX_FAILED);
    else if (a > OUTBOX_WARN_AGE_S || s.pending > OUTBOX_WARN_ITEMS)
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_OUTBOX_BACKLOG);
}

/* ---- jobs ------------------------------------------------------------------ */

#define N_JOB_STATUSES LUCY_JOB_N_STATUSES /* jobs.h owns the statuses and their names */

struct job_counts {
    long long by_status[N_JOB_STATUSES];
    long long file_locked; /* retry_wait because a sync client holds the file */
};

static int read_jobs(sqlite3 *db, void *arg)
{
    struct job_counts *c = arg;
    sqlite3_stmt *st;
    if (lucy_store_stmt(db, "SELECT status, count(*) FROM jobs GROUP BY status", &st) != 0)
        return LUCY_EIO;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        for (int i = 0; s && i < N_JOB_STATUSES; i++)
            if (strcmp(s, lucy_job_status_name((enum lucy_job_status)i)) == 0)
                c->by_status[i] = sqlite3_column_int64(st, 1);
    }
    if (rc != SQLITE_DONE)
        return LUCY_EIO;
    return query_ints(db,
                      "SELECT count(*) FROM jobs WHERE status = 'retry_wait'"
                      " AND error_type = 'file_locked'",
                      &c->file_locked, 1);
}

void lucy_doctor_check_jobs(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    if (no_store(d, r))
        return;
    struct job_counts c;
    memset(&c, 0, sizeof c);
    int rc = lucy_store_read(d->store, read_jobs, &c);
    if (rc) {
        read_failed(r, rc);
        return;
    }
    json_t *by = json_object();
    char line[512] = "";
    size_t used = 0;
    for (int i = 0; i < N_JOB_STATUSES; i++) {
        const char *name = lucy_job_status_name((enum lucy_job_status)i);
        json_object_set_new(by, name, json_integer(c.by_status[i]));
        used += (size_t)snprintf(line + used, used < sizeof line ? sizeof line - used : 0,
                                 "%s%s %lld", i ? ", " : "", name, c.by_status[i]);
    }
    json_object_set_new(r->details, "by_status", by);
    json_object_set_new(r->details, "waiting_for_locked_file", json_integer(c.file_locked));
    lucy_doctor_say(r, "%s", line);
    if (c.file_locked)
        lucy_doctor_say(r, "%lld job(s) wait for a file a sync client holds", c.file_locked);
    long long blocked = c.by_status[LUCY_JOB_BLOCKED];
    if (blocked > 0) {
        lucy_doctor_say(r, "%lld job(s) blocked by a critical disk", blocked);
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_JOBS_BLOCKED);
    }
}

/* ---- kv pending ------------------------------------------------------------ */

struct kv_counts {
    long long pending[2]; /* count, oldest queued_at_ms */
    char last_error[256]; /* of the oldest */
};

static int read_kv(sqlite3 *db, void *arg)
{
    struct kv_counts *c = arg;
    int rc = query_ints(db, "SELECT count(*), coalesce(min(queued_at_ms),0) FROM kv_pending",
                        c->pending, 2);
    if (!rc)
        query_text(db,
                   "SELECT last_error FROM kv_pending WHERE last_error IS NOT NULL"
                   " ORDER BY queued_at_ms LIMIT 1",
                   c->last_error, sizeof c->last_error);
    return rc;
}

void lucy_doctor_check_kv_pending(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    if (no_store(d, r))
        return;
    struct kv_counts c;
    memset(&c, 0, sizeof c);
    int rc = lucy_store_read(d->store, read_kv, &c);
    if (rc) {
        read_failed(r, rc);
        return;
    }
    long long a = c.pending[0] ? age_s(c.pending[1]) : 0;
    json_object_set_new(r->details, "pending", json_integer(c.pending[0]));
    json_object_set_new(r->details, "oldest_age_s", json_integer(a));
    json_object_set_new(r->details, "last_error",
                        c.last_error[0] ? json_string(c.last_error) : json_null());
    lucy_doctor_say(r, "%lld write(s) for the shared kv backend wait locally", c.pending[0]);
    if (a > 0)
        lucy_doctor_say(r, "the oldest has waited %lld s%s%.400s", a,
                        c.last_error[0] ? "; last error: " : "", c.last_error);
    if (a > KV_WARN_AGE_S)
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_KV_PENDING);
}

/* ---- scanner --------------------------------------------------------------- */

static int read_scan(sqlite3 *db, void *arg)
{
    char *buf = arg;
    query_text(db, "SELECT value FROM meta WHERE key = '" LUCY_SCAN_SUMMARY_META_KEY "'", buf,
               16384);
    return 0;
}

void lucy_doctor_check_scanner(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    const char *dirs = d->cfg->recordings_dirs;
    json_object_set_new(r->details, "recordings_dirs", json_string(dirs ? dirs : ""));
    if (no_store(d, r))
        return;
    static char text[16384];
    int rc = lucy_store_read(d->store, read_scan, text);
    if (rc) {
        read_failed(r, rc);
        return;
    }
    json_t *sum = text[0] ? json_loads(text, 0, NULL) : NULL;
    json_object_set_new(r->details, "last_scan", sum ? sum : json_null());
    if (!sum) {
        if (dirs && *dirs)
            lucy_doctor_say(r, "no scan has finished yet for %.900s", dirs);
        else
            lucy_doctor_say(r, "no recordings folders configured (LUCY_RECORDINGS_DIRS)");
        return;
    }
    json_int_t finished = json_integer_value(json_object_get(sum, "finished_at_s"));
    long long ago = finished ? (long long)(time(NULL) - finished) : -1;
    char *errs = json_dumps(json_object_get(sum, "errors_by_errno"), JSON_COMPACT | JSON_SORT_KEYS);
    lucy_doctor_say(r,
                    "last scan %lld s ago: %lld files seen, %lld new, %lld changed, %lld "
                    "locked, %lld changing, %lld corrupt, %lld unavailable, errors %s",
                    ago, (long long)json_integer_value(json_object_get(sum, "files_seen")),
                    (long long)json_integer_value(json_object_get(sum, "new")),
                    (long long)json_integer_value(json_object_get(sum, "changed")),
                    (long long)json_integer_value(json_object_get(sum, "locked")),
                    (long long)json_integer_value(json_object_get(sum, "changing")),
                    (long long)json_integer_value(json_object_get(sum, "corrupt")),
                    (long long)json_integer_value(json_object_get(sum, "unavailable")),
                    errs ? errs : "{}");
    free(errs);
    if (json_is_true(json_object_get(sum, "failed"))) {
        const char *e = json_string_value(json_object_get(sum, "error"));
        lucy_doctor_say(r, "the scan failed: %.400s", e ? e : "unknown error");
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_SCAN_FAILED);
    }
}

/* ---- locked files ---------------------------------------------------------- */

struct locked {
    long long count[2]; /* locked present paths, oldest locked_since_s */
    json_t *examples;   /* [{path, errno, attempts, locked_since_s}] */
};

static int read_locked(sqlite3 *db, void *arg)
{
    struct locked *l = arg;
    int rc = query_ints(db,
                        "SELECT count(*), coalesce(min(locked_since_s),0) FROM recording_paths"
                        " WHERE status = 'locked' AND presence = 'present'",
                        l->count, 2);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    if (lucy_store_stmt(db,
                        "SELECT display_path, errno_name, attempts, locked_since_s"
                        " FROM recording_paths WHERE status = 'locked' AND presence = 'present'"
                        " ORDER BY locked_since_s, display_path LIMIT 5",
                        &st) != 0)
        return LUCY_EIO;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *p = (const char *)sqlite3_column_text(st, 0);
        const char *e = (const char *)sqlite3_column_text(st, 1);
        json_array_append_new(l->examples,
                              json_pack("{s:s,s:s?,s:I,s:I}", "path", p ? p : "", "errno", e,
                                        "attempts", (json_int_t)sqlite3_column_int64(st, 2),
                                        "locked_since_s", (json_int_t)sqlite3_column_int64(st, 3)));
    }
    return 0;
}

void lucy_doctor_check_locked(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    if (no_store(d, r))
        return;
    struct locked l = {{0, 0}, json_array()}; /* up to 5 examples, oldest first */
    int rc = lucy_store_read(d->store, read_locked, &l);
    if (rc) {
        json_decref(l.examples);
        read_failed(r, rc);
        return;
    }
    json_object_set_new(r->details, "locked", json_integer(l.count[0]));
    json_object_set_new(r->details, "examples", l.examples);
    if (l.count[0] == 0) {
        lucy_doctor_say(r, "no recording file is locked");
        return;
    }
    long long since = l.count[1] ? (long long)(time(NULL) - l.count[1]) : 0;
    lucy_doctor_say(r, "%lld recording file(s) locked, the first for %lld s; e.g.:", l.count[0],
                    since);
    size_t i;
    json_t *ex;
    json_array_foreach(l.examples, i, ex)
    {
        lucy_doctor_say(r, "  %.700s (%s, %lld attempts)",
                        json_string_value(json_object_get(ex, "path")),
                        json_string_value(json_object_get(ex, "errno"))
                            ? json_string_value(json_object_get(ex, "errno"))
                            : "?",
                        (long long)json_integer_value(json_object_get(ex, "attempts")));
    }
    lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_LOCKED_FILES);
}
