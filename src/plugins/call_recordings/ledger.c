/*
 * ledger.c - the ingest ledger (DESIGN §16; see ledger.h): the one writer
 * of `ingest_ledger` (migration 48), its advice table and its reader.
 *
 * The table holds what the scanner decided about paths it did not make a
 * clean recording of; the scanner calls lucy_ledger_put/drop/touch inside
 * its own batched store writes. The reader adds the recordings whose
 * latest transcription job failed or waits to retry, read from `jobs`
 * (owned by jobs.c) at list time, so the two halves never disagree.
 *
 * Advice is looked up at read time from (outcome, reason_code), so a
 * better text reaches old rows without a migration.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../error.h"
#include "../../store/row.h"
#include "../../store/store.h"
#include "ledger.h"

/* ---- outcomes and advice -------------------------------------------------- */

static const char *const outcomes[] = {
    "ignored",
    "placeholder",
    "changing",
    "locked",
    "corrupt",
    "permission_denied",
    "io_error",
    "unsupported",
    "orphan_sidecar",
    "call_metadata",
    "transcription_failed",
    "transcription_retrying",
};
#define N_OUTCOMES (sizeof outcomes / sizeof outcomes[0])

const char *lucy_ledger_outcome_name(size_t i)
{
    return i < N_OUTCOMES ? outcomes[i] : NULL;
}

int lucy_ledger_outcome_known(const char *outcome)
{
    for (size_t i = 0; outcome && i < N_OUTCOMES; i++)
        if (strcmp(outcome, outcomes[i]) == 0)
            return 1;
    return 0;
}

/* What to do, per outcome and (optionally) reason code: the first row
 * whose outcome matches and whose code is NULL or equal wins, so a
 * specific row comes before its outcome's general one. */
static const struct {
    const char *outcome;     /* a row of outcomes[] */
    const char *reason_code; /* NULL: any */
    const char *advice;      /* shown to the user as is */
} advice_table[] = {
    {"ignored", "zero_length",
     "The file is empty. A recorder still writing it is read once it has content; otherwise "
     "delete it."},
    {"ignored", "sync_artefact",
     "A sync client's temporary or partial file (._*, *.tmp, *.partial, *.download, .dropbox*, "
     "~*); never read. Nothing to do: the finished file is scanned once the sync completes."},
    {"ignored", "sync_folder",
     "A sync client's cache, a NAS index or a trash folder; not walked, so stale copies never "
     "become recordings. Move a recording you want out of it."},
    {"ignored", "outside_roots",
     "A symlink leading outside LUCY_RECORDINGS_DIRS; never followed. Add its target's folder "
     "to LUCY_RECORDINGS_DIRS if it holds recordings."},
    {"ignored", NULL,
     "A symlink that cannot be resolved (dangling or a loop); fix or delete the link."},
    {"placeholder", NULL,
     "A cloud placeholder whose content is not on this disk; make the folder available offline "
     "in the sync client (Dropbox: Make available offline; OneDrive: Always keep on this "
     "device)."},
    {"changing", NULL,
     "Being written or synced; lucy reads it once it has not changed for LUCY_SCAN_SETTLE_S "
     "seconds. Nothing to do."},
    {"locked", NULL,
     "A sync client holds the file; lucy retries it by itself with backoff (next_retry_s). If "
     "it stays locked for hours, pause and resume the sync client."},
    {"corrupt", NULL,
     "The audio does not decode (reason); copy the file from the phone again or re-export it. "
     "lucy reads it again when the file changes."},
    {"permission_denied", NULL,
     "lucy's user cannot read it; give it read permission (chmod o+r, or add lucy to the "
     "owner's group). It is retried on every scan."},
    {"io_error", "ELIBACC",
     "lucy's media module (lucy-media.so: FFmpeg and the speech recognisers) could not be "
     "loaded; install it next to the lucy binary or where meson install puts it (lucy's log "
     "says where it looked). It is retried on every scan."},
    {"io_error", "ECHILD",
     "The media process probing the file died (FFmpeg crashed on it, or it was killed); lucy "
     "itself goes on. It is retried on every scan; if it keeps failing, the file is likely "
     "damaged: copy it from the phone again."},
    {"io_error", NULL,
     "Reading failed below lucy; check the disk or the mount (dmesg). It is retried on every "
     "scan."},
    {"unsupported", NULL,
     "Not audio by its content; nothing to do unless it is a recording in a format FFmpeg "
     "cannot read (then convert it to m4a, ogg or wav)."},
    {"orphan_sidecar", NULL,
     "A recorder's NAME.json whose audio file NAME.<ext> is not beside it (moved or deleted); "
     "move the sidecar with its recording, or delete it."},
    {"call_metadata", NULL,
     "The recording is stored and transcribed; the call details named in reason were dropped. "
     "Fix the sidecar or the file name (set LUCY_DEFAULT_REGION for national numbers); lucy "
     "reads the call again when its sidecar changes."},
    {"transcription_failed", NULL,
     "Transcription failed for the reason shown; fix it, then retry with POST "
     "/recordings/{id}/transcribe or the recording's Transcribe button."},
    {"transcription_retrying", NULL,
     "Transcription waits for a passing cause (a lock, the engine, the disk) and retries by "
     "itself at next_retry_s. Nothing to do unless it keeps coming back."},
};

const char *lucy_ledger_advice(const char *outcome, const char *reason_code)
{
    for (size_t i = 0; outcome && i < sizeof advice_table / sizeof advice_table[0]; i++)
        if (strcmp(outcome, advice_table[i].outcome) == 0 &&
            (!advice_table[i].reason_code ||
             (reason_code && strcmp(reason_code, advice_table[i].reason_code) == 0)))
            return advice_table[i].advice;
    return "See the reason; the file is looked at again on every scan.";
}

/* ---- writes ------------------------------------------------------------------ */

int lucy_ledger_put(sqlite3 *db, const struct lucy_ledger_entry *e, int64_t now_s)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(
        db,
        "INSERT INTO ingest_ledger (path, display_path, root, outcome, reason_code, reason,"
        " recording_id, first_seen_s, last_seen_s, next_retry_s)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9) ON CONFLICT (path) DO UPDATE SET"
        " display_path = excluded.display_path, root = excluded.root,"
        " first_seen_s = CASE WHEN outcome = excluded.outcome THEN first_seen_s"
        "  ELSE excluded.first_seen_s END,"
        " outcome = excluded.outcome, reason_code = excluded.reason_code,"
        " reason = excluded.reason, recording_id = excluded.recording_id,"
        " last_seen_s = excluded.last_seen_s, next_retry_s = excluded.next_retry_s",
        &st);
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, e->path, (int)e->path_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, e->display ? e->display : "", -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, e->root ? e->root : "", (int)(e->root ? strlen(e->root) : 0),
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 4, e->outcome, -1, SQLITE_STATIC);
    lucy_row_bind_text(st, 5, e->reason_code && *e->reason_code ? e->reason_code : NULL);
    lucy_row_bind_text(st, 6, e->reason && *e->reason ? e->reason : NULL);
    lucy_row_bind_text(st, 7, e->recording_id && *e->recording_id ? e->recording_id : NULL);
    sqlite3_bind_int64(st, 8, now_s);
    if (e->next_retry_s)
        sqlite3_bind_int64(st, 9, e->next_retry_s);
    else
        sqlite3_bind_null(st, 9);
    return lucy_row_step_done(st);
}

int lucy_ledger_drop(sqlite3 *db, const char *path, size_t len)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "DELETE FROM ingest_ledger WHERE path = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, path, (int)len, SQLITE_STATIC);
    return lucy_row_step_done(st);
}

int lucy_ledger_touch(sqlite3 *db, const char *lo, size_t lo_len, const char *hi, size_t hi_len,
                      int64_t now_s)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "UPDATE ingest_ledger SET last_seen_s = ?3"
                             " WHERE path >= ?1 AND path < ?2 AND last_seen_s != ?3",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, lo, (int)lo_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, hi, (int)hi_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_s);
    return lucy_row_step_done(st);
}

/* ---- the rows of one root, sorted by their bytes ---------------------------- */

/* SQLite's BLOB order: memcmp over the shorter length, then the length. */
static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

struct map_arg {
    const char *lo, *hi;         /* the range */
    struct lucy_ledger_map *map; /* filled */
};

static char *dup_col(sqlite3_stmt *st, int col)
{
    char *s = lucy_row_dup(st, col);
    return s ? s : strdup("");
}

static int map_read(sqlite3 *db, void *argp)
{
    struct map_arg *a = argp;
    struct lucy_ledger_map *m = a->map;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "SELECT path, outcome, reason_code, reason, recording_id,"
                             " coalesce(next_retry_s, 0) FROM ingest_ledger"
                             " WHERE path >= ?1 AND path < ?2 ORDER BY path",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, a->lo, (int)strlen(a->lo), SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, a->hi, (int)strlen(a->hi), SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 64;
            struct lucy_ledger_known *rows = realloc(m->rows, cap * sizeof *rows);
            if (!rows)
                return LUCY_ENOMEM;
            m->rows = rows;
            m->cap = cap;
        }
        struct lucy_ledger_known *k = &m->rows[m->n];
        memset(k, 0, sizeof *k);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        k->path = malloc(len + 1);
        k->outcome = dup_col(st, 1);
        k->reason_code = dup_col(st, 2);
        k->reason = dup_col(st, 3);
        m->n++; /* freed by lucy_ledger_map_free() even when half-filled */
        if (!k->path || !k->outcome || !k->reason_code || !k->reason)
            return LUCY_ENOMEM;
        if (len)
            memcpy(k->path, sqlite3_column_blob(st, 0), len);
        k->path[len] = '\0';
        k->path_len = len;
        lucy_row_copy(st, 4, k->recording_id, sizeof k->recording_id);
        k->next_retry_s = sqlite3_column_int64(st, 5);
    }
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

int lucy_ledger_map_load(struct lucy_store *store, const char *lo, const char *hi,
                         struct lucy_ledger_map *map)
{
    struct map_arg a = {lo, hi, map};
    return lucy_store_read(store, map_read, &a);
}

struct lucy_ledger_known *lucy_ledger_map_find(const struct lucy_ledger_map *m, const char *path,
                                               size_t len)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) { /* rows are in SQLite's BLOB order (ORDER BY path) */
        size_t mid = lo + (hi - lo) / 2;
        int c = bytes_cmp(m->rows[mid].path, m->rows[mid].path_len, path, len);
        if (c == 0)
            return &m->rows[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void lucy_ledger_map_free(struct lucy_ledger_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->rows[i].path);
        free(m->rows[i].outcome);
        free(m->rows[i].reason_code);
        free(m->rows[i].reason);
    }
    free(m->rows);
    memset(m, 0, sizeof *m);
}

/* ---- reads ------------------------------------------------------------------- */

/* The whole ledger as one relation: the scanner's rows, and each
 * recording whose latest job failed or waits to retry, at its primary
 * path (a present one first, then the lowest bytes). */
#define LEDGER_ROWS                                                                                \
    "SELECT path, display_path, outcome, reason_code, reason, recording_id, first_seen_s,"         \
    " last_seen_s, next_retry_s FROM ingest_ledger"                                                \
    " UNION ALL"                                                                                   \
    " SELECT p.path, p.display_path, CASE j.status WHEN 'failed' THEN 'transcription_failed'"      \
    "  ELSE 'transcription_retrying' END, j.error_type, j.error, j.recording_id,"                  \
    "  j.created_at_s, j.updated_at_s, j.next_retry_at_s"                                          \
    " FROM jobs j JOIN recording_paths p ON p.path = (SELECT q.path FROM recording_paths q"        \
    "  WHERE q.recording_id = j.recording_id ORDER BY q.presence = 'present' DESC, q.path"         \
    "  LIMIT 1)"                                                                                   \
    " WHERE j.status IN ('failed', 'retry_wait')"                                                  \
    "  AND j.id = (SELECT max(k.id) FROM jobs k WHERE k.recording_id = j.recording_id)"

struct list_arg {
    const char *outcome;             /* NULL = all */
    int limit;                       /* rows per page */
    const unsigned char *after_path; /* cursor: the last row's path (bytes); NULL = start */
    size_t after_len;
    const char *after_outcome; /* ... and its outcome */
    json_t *items, *counts;    /* filled */
    json_t *next_cursor;       /* set when there is more */
};

/* "hex(path).outcome": the keyset of the last row shown. */
static json_t *cursor_of(const unsigned char *path, size_t len, const char *outcome)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = len * 2 + 1 + strlen(outcome) + 1;
    char *s = malloc(n);
    if (!s)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        s[2 * i] = hex[path[i] >> 4];
        s[2 * i + 1] = hex[path[i] & 15];
    }
    snprintf(s + 2 * len, n - 2 * len, ".%s", outcome);
    json_t *j = json_string(s);
    free(s);
    return j;
}

static json_t *int_or_null(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL
               ? json_null()
               : json_integer(sqlite3_column_int64(st, col));
}

static json_t *text_or_null(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? json_string((const char *)t) : json_null();
}

static int list_read(sqlite3 *db, void *argp)
{
    struct list_arg *a = argp;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "SELECT path, display_path, outcome, reason_code, reason,"
                             " recording_id, first_seen_s, last_seen_s, next_retry_s"
                             " FROM (" LEDGER_ROWS ") WHERE (?1 IS NULL OR outcome = ?1)"
                             " AND (?2 IS NULL OR path > ?2 OR (path = ?2 AND outcome > ?3))"
                             " ORDER BY path, outcome LIMIT ?4",
                             &st);
    if (rc)
        return rc;
    lucy_row_bind_text(st, 1, a->outcome);
    if (a->after_path) {
        sqlite3_bind_blob(st, 2, a->after_path, (int)a->after_len, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, a->after_outcome, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int(st, 4, a->limit + 1);
    int n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n++ == a->limit)
            break; /* one row past the page: there is more */
        const char *outcome = (const char *)sqlite3_column_text(st, 2);
        const char *code = (const char *)sqlite3_column_text(st, 3);
        json_t *row =
            json_pack("{s:s,s:s,s:o,s:o,s:s,s:o,s:o,s:o,s:o}", "path",
                      (const char *)sqlite3_column_text(st, 1), "outcome", outcome ? outcome : "",
                      "reason_code", text_or_null(st, 3), "reason", text_or_null(st, 4), "advice",
                      lucy_ledger_advice(outcome, code), "recording_id", text_or_null(st, 5),
                      "first_seen_s", int_or_null(st, 6), "last_seen_s", int_or_null(st, 7),
                      "next_retry_s", int_or_null(st, 8));
        if (!row || json_array_append_new(a->items, row) != 0)
            return LUCY_ENOMEM;
        json_decref(a->next_cursor);
        a->next_cursor = cursor_of(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                                   outcome ? outcome : "");
    }
    int more = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return lucy_store_err(rc);
    if (!more) {
        json_decref(a->next_cursor);
        a->next_cursor = NULL;
    }
    sqlite3_reset(st);

    if ((rc = lucy_store_stmt(
             db, "SELECT outcome, count(*) FROM (" LEDGER_ROWS ") GROUP BY outcome", &st)) != 0)
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_object_set_new(a->counts, (const char *)sqlite3_column_text(st, 0),
                            json_integer(sqlite3_column_int64(st, 1)));
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int lucy_ledger_list(struct lucy_store *store, const char *outcome, int limit, const char *cursor,
                     json_t **out)
{
    *out = NULL;
    struct list_arg a = {.outcome = outcome, .limit = limit};
    unsigned char *after = NULL;
    if (cursor) {
        const char *dot = strchr(cursor, '.');
        size_t hex_len = dot ? (size_t)(dot - cursor) : 0;
        if (!dot || hex_len % 2 || !lucy_ledger_outcome_known(dot + 1))
            return LUCY_EINVAL;
        after = malloc(hex_len / 2 + 1);
        if (!after)
            return LUCY_ENOMEM;
        for (size_t i = 0; i < hex_len / 2; i++) {
            int hi = hex_digit(cursor[2 * i]), lo = hex_digit(cursor[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                free(after);
                return LUCY_EINVAL;
            }
            after[i] = (unsigned char)(hi << 4 | lo);
        }
        a.after_path = after;
        a.after_len = hex_len / 2;
        a.after_outcome = dot + 1;
    }
    a.items = json_array();
    a.counts = json_object();
    int rc = a.items && a.counts ? lucy_store_read(store, list_read, &a) : LUCY_ENOMEM;
    free(after);
    if (rc == 0) {
        *out = json_pack("{s:o,s:o,s:o}", "items", a.items, "next_cursor",
                         a.next_cursor ? a.next_cursor : json_null(), "counts", a.counts);
        if (!*out)
            rc = LUCY_ENOMEM;
    } else {
        json_decref(a.items);
        json_decref(a.counts);
        json_decref(a.next_cursor);
    }
    return rc;
}
