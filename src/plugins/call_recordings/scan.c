/*
 * scan.c - one scan of the recordings folders (DESIGN §6).
 *
 * For each root: load what the store knows about its paths once (one query,
 * into a hash map keyed by the path's bytes), walk it (walk.c), decide an
 * outcome per file, write the results in batches, then mark known paths
 * that were not seen as missing - or, when the root is gone or empty, all
 * of its paths as unavailable (never deleted).
 *
 * Per file, cheapest test first:
 *   name/stat rules (classify.c)          -> ignored, placeholder
 *   same (size, mtime_ns, inode) as stored
 *     and a final status                  -> unchanged, nothing read
 *   modified within LUCY_SCAN_SETTLE_S    -> changing, nothing read
 *   locked before and not yet due         -> locked (automatic scans only)
 *   open ONE descriptor, fstat, probe (probe.c), SHA-256 (hash.c) if it is
 *   audio, fstat again: size or mtime moved -> changing, nothing stored;
 *   a failed open/read                    -> by errno name (classify.c)
 *
 * Store: results are queued and written BATCH_ITEMS at a time through
 * lucy_store_write() (one group commit each). A recording row is inserted
 * the first time its content is seen, and its transcription job is queued
 * (lucy_jobs_enqueue) in the same transaction, so neither exists without
 * the other. Unchanged files cost no write at all, which keeps a rescan of
 * 100,000 unchanged files bounded by the walk's fstatat() calls.
 *
 * Locked files: a WARNING the first time a path becomes locked (at most
 * FIRST_LOCK_LINES per scan; the log's own repeat suppression bounds it
 * further), then one WARNING per scan with the count and a few example
 * paths. Retries back off from LOCK_RETRY_BASE_S doubling to
 * LOCK_RETRY_MAX_S; only automatic scans honour the backoff, an explicit
 * scan (`lucy scan`, POST /recordings/scan) tries every locked file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../error.h"
#include "../../log.h"
#include "../../lucy.h"
#include "../../store/store.h"
#include "../../thread.h"
#include "jobs.h"
#include "scan_int.h"

#define BATCH_ITEMS       128  /* results per store write */
#define BATCH_MAX_AGE_MS  1000 /* ... or older than this */
#define LOCK_RETRY_BASE_S 30   /* first retry of a locked file */
#define LOCK_RETRY_MAX_S  3600 /* backoff ceiling */
#define LOCKED_EXAMPLES   5    /* example paths in the per-scan WARNING */
#define FIRST_LOCK_LINES  5    /* "file locked" WARNINGs per scan at most */
#define ERROR_LINES       5    /* other per-file WARNINGs per scan at most */

/* ---- the known paths of one root ---------------------------------------- */

struct known {
    char *path;            /* bytes, NUL-terminated (names never hold NUL) */
    size_t path_len;       /* strlen(path) */
    int64_t size;          /* bytes, as last stored */
    int64_t mtime_ns;      /* ns since the epoch */
    int64_t inode;         /* st_ino */
    char status[20];       /* recording, corrupt, unsupported, locked, ... */
    char presence[12];     /* present, missing, unavailable */
    char recording_id[65]; /* "" when the path holds no recording */
    char errno_name[24];   /* of the last failure */
    int attempts;          /* consecutive failures with this status */
    int64_t next_retry_s;  /* locked: not before this (automatic scans) */
    int seen;              /* found by this scan's walk */
};

struct known_map {
    struct known *rows; /* n rows */
    size_t n, cap;
    size_t *slots; /* open addressing: index + 1, 0 = empty; nslots a power of two */
    size_t nslots;
};

static uint64_t path_hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static struct known *known_find(struct known_map *m, const char *path, size_t len)
{
    if (!m->nslots)
        return NULL;
    for (size_t i = path_hash(path, len) & (m->nslots - 1); m->slots[i];
         i = (i + 1) & (m->nslots - 1)) {
        struct known *k = &m->rows[m->slots[i] - 1];
        if (k->path_len == len && memcmp(k->path, path, len) == 0)
            return k;
    }
    return NULL;
}

static int known_index(struct known_map *m)
{
    size_t nslots = 64;
    while (nslots < m->n * 2)
        nslots *= 2;
    m->slots = calloc(nslots, sizeof *m->slots);
    if (!m->slots)
        return LUCY_ENOMEM;
    m->nslots = nslots;
    for (size_t r = 0; r < m->n; r++) {
        size_t i = path_hash(m->rows[r].path, m->rows[r].path_len) & (nslots - 1);
        while (m->slots[i])
            i = (i + 1) & (nslots - 1);
        m->slots[i] = r + 1;
    }
    return 0;
}

static void known_free(struct known_map *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->rows[i].path);
    free(m->rows);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static void copy_col(char *dst, size_t len, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, len, "%s", t ? (const char *)t : "");
}

/* The paths below a root, as a range of the recording_paths primary key:
 * [root + "/", root + "0") - '0' follows '/' in byte order - so a path is
 * found whichever root it was stored under (roots may nest). */
struct path_range {
    char lo[PATH_MAX + 2]; /* root + "/" */
    char hi[PATH_MAX + 2]; /* root + "0" */
};

static int path_range(struct path_range *r, const char *root)
{
    size_t n = strlen(root);
    while (n > 0 && root[n - 1] == '/')
        n--;
    if (n + 2 > sizeof r->lo)
        return LUCY_EINVAL;
    memcpy(r->lo, root, n);
    memcpy(r->lo + n, "/", 2);
    memcpy(r->hi, root, n);
    memcpy(r->hi + n, "0", 2);
    return 0;
}

static void bind_range(sqlite3_stmt *st, int idx, const struct path_range *r)
{
    sqlite3_bind_blob(st, idx, r->lo, (int)strlen(r->lo), SQLITE_STATIC);
    sqlite3_bind_blob(st, idx + 1, r->hi, (int)strlen(r->hi), SQLITE_STATIC);
}

struct load_arg {
    const struct path_range *range; /* the root's paths */
    struct known_map *map;          /* filled */
};

static int load_known(sqlite3 *db, void *argp)
{
    struct load_arg *arg = argp;
    struct known_map *m = arg->map;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT path, size, mtime_ns, inode, status, presence,"
                                " coalesce(recording_id, ''), coalesce(errno_name, ''), attempts,"
                                " coalesce(next_retry_s, 0) FROM recording_paths"
                                " WHERE path >= ?1 AND path < ?2",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    bind_range(st, 1, arg->range);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 256;
            struct known *rows = realloc(m->rows, cap * sizeof *rows);
            if (!rows) {
                sqlite3_finalize(st);
                return LUCY_ENOMEM;
            }
            m->rows = rows;
            m->cap = cap;
        }
        struct known *k = &m->rows[m->n];
        memset(k, 0, sizeof *k);
        int len = sqlite3_column_bytes(st, 0);
        k->path = malloc((size_t)len + 1);
        if (!k->path) {
            sqlite3_finalize(st);
            return LUCY_ENOMEM;
        }
        if (len)
            memcpy(k->path, sqlite3_column_blob(st, 0), (size_t)len);
        k->path[len] = '\0';
        k->path_len = (size_t)len;
        k->size = sqlite3_column_int64(st, 1);
        k->mtime_ns = sqlite3_column_int64(st, 2);
        k->inode = sqlite3_column_int64(st, 3);
        copy_col(k->status, sizeof k->status, st, 4);
        copy_col(k->presence, sizeof k->presence, st, 5);
        copy_col(k->recording_id, sizeof k->recording_id, st, 6);
        copy_col(k->errno_name, sizeof k->errno_name, st, 7);
        k->attempts = sqlite3_column_int(st, 8);
        k->next_retry_s = sqlite3_column_int64(st, 9);
        m->n++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? known_index(m) : lucy_store_err(rc);
}

/* ---- pending store writes ----------------------------------------------- */

enum item_kind {
    ITEM_RESULT,  /* a file was examined: upsert its path (and recording) */
    ITEM_PRESENT, /* an unchanged file is back: presence = present */
    ITEM_MISSING, /* a known file is gone: presence = missing */
};

struct item {
    enum item_kind kind;
    char *path; /* bytes (owned) */
    size_t path_len;
    char *display; /* UTF-8 display form (owned; RESULT only) */
    int64_t size, mtime_ns, inode;
    const char *status;           /* stored status (static string) */
    char recording_id[65];        /* content id when status is "recording" */
    char old_recording_id[65];    /* the path's previous recording, to re-rate */
    int keep_recording;           /* failures: the path keeps its recording_id */
    struct lucy_scan_probe probe; /* metadata for a recording (tags owned) */
    char *last_error;             /* owned; NULL = none */
    const char *errno_name;       /* static; NULL = none */
    int attempts;                 /* consecutive failures */
    int64_t next_retry_s;         /* locked: retry not before */
};

struct scan {
    struct lucy_ctx *ctx;                /* store and configuration */
    const struct lucy_scan_options *opt; /* backoff, on_dir */
    struct lucy_scan_summary *sum;       /* counters being filled */
    const char *root;                    /* current root (absolute bytes) */
    struct known_map map;                /* known paths of the root */
    uint64_t root_files;                 /* regular files found in the root */
    char **bad_dirs;                     /* "dir/" prefixes that could not be read */
    size_t n_bad_dirs;
    struct lucy_scan_hasher *hasher; /* reused SHA-256 buffer */
    struct item items[BATCH_ITEMS];  /* pending writes */
    size_t n_items;
    int64_t batch_started_ms;    /* monotonic time of the oldest item */
    int store_rc;                /* first failed write: the scan stops */
    int64_t now_s;               /* scan start, Unix seconds */
    int64_t now_ns;              /* scan start, CLOCK_REALTIME ns */
    json_t *locked_examples;     /* display paths, at most LOCKED_EXAMPLES */
    uint64_t newly_locked;       /* paths that became locked this scan */
    int lock_lines, error_lines; /* per-file WARNINGs written */
};

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void item_clear(struct item *it)
{
    free(it->path);
    free(it->display);
    free(it->last_error);
    lucy_scan_probe_clear(&it->probe);
    memset(it, 0, sizeof *it);
}

/* The statements of a batch, prepared once per write_items() call. */
enum batch_sql { SQL_RATE, SQL_INSERT_RECORDING, SQL_UPSERT_PATH, SQL_PRESENCE, N_BATCH_SQL };

static const char *const batch_sql[N_BATCH_SQL] = {
    /* ?1 recording id, ?2 now: scan_status from the presence of its paths */
    [SQL_RATE] = "UPDATE recordings SET scan_status = CASE"
                 " WHEN EXISTS (SELECT 1 FROM recording_paths WHERE recording_id = ?1"
                 "  AND presence = 'present') THEN 'ok'"
                 " WHEN EXISTS (SELECT 1 FROM recording_paths WHERE recording_id = ?1"
                 "  AND presence = 'unavailable') THEN 'unavailable'"
                 " ELSE 'missing' END, updated_at_s = ?2 WHERE id = ?1",
    [SQL_INSERT_RECORDING] =
        "INSERT INTO recordings (id, size, mtime_ns, duration_s, codec, format, sample_rate,"
        " channels, bit_rate, tags, scan_status, warning, first_seen_s, updated_at_s)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'ok', ?11, ?12, ?12)"
        " ON CONFLICT (id) DO NOTHING",
    /* ?14 = keep the path's recording_id (a failure says nothing about content) */
    [SQL_UPSERT_PATH] =
        "INSERT INTO recording_paths (path, display_path, root, recording_id, size, mtime_ns,"
        " inode, status, presence, last_error, errno_name, locked_since_s, attempts,"
        " next_retry_s, first_seen_s, updated_at_s)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'present', ?9, ?10,"
        "  CASE WHEN ?8 = 'locked' THEN ?13 END, ?11, ?12, ?13, ?13)"
        " ON CONFLICT (path) DO UPDATE SET display_path = excluded.display_path,"
        " root = excluded.root,"
        " recording_id = CASE WHEN ?14 THEN recording_paths.recording_id"
        "  ELSE excluded.recording_id END,"
        " size = excluded.size, mtime_ns = excluded.mtime_ns, inode = excluded.inode,"
        " status = excluded.status, presence = 'present', last_error = excluded.last_error,"
        " errno_name = excluded.errno_name,"
        " locked_since_s = CASE WHEN excluded.status != 'locked' THEN NULL"
        "  WHEN recording_paths.status = 'locked' THEN recording_paths.locked_since_s"
        "  ELSE excluded.locked_since_s END,"
        " attempts = excluded.attempts, next_retry_s = excluded.next_retry_s,"
        " updated_at_s = excluded.updated_at_s",
    [SQL_PRESENCE] = "UPDATE recording_paths SET presence = ?2, updated_at_s = ?3 WHERE path = ?1",
};

/* Steps st once and resets it for the next use. 0 or LUCY_E*. */
static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : lucy_store_err(rc);
}

/* Sets recordings.scan_status of id from the presence of its paths. */
static int rate_recording(sqlite3_stmt **sql, const char *id, int64_t now_s)
{
    if (!id || !id[0])
        return 0;
    sqlite3_stmt *st = sql[SQL_RATE];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_s);
    return step_reset(st);
}

/* Inserts the recording the first time its content is seen, with its
 * transcription job in the same transaction. */
static int insert_recording(sqlite3 *db, sqlite3_stmt **sql, const struct item *it, int64_t now_s)
{
    sqlite3_stmt *st = sql[SQL_INSERT_RECORDING];
    const struct lucy_scan_probe *p = &it->probe;
    char *tags = json_dumps(p->tags, JSON_COMPACT);
    sqlite3_bind_text(st, 1, it->recording_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, it->size);
    sqlite3_bind_int64(st, 3, it->mtime_ns);
    if (p->duration_s >= 0)
        sqlite3_bind_double(st, 4, p->duration_s);
    sqlite3_bind_text(st, 5, p->codec, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, p->format, -1, SQLITE_STATIC);
    if (p->sample_rate > 0)
        sqlite3_bind_int(st, 7, p->sample_rate);
    if (p->channels > 0)
        sqlite3_bind_int(st, 8, p->channels);
    if (p->bit_rate > 0)
        sqlite3_bind_int64(st, 9, p->bit_rate);
    sqlite3_bind_text(st, 10, tags ? tags : "{}", -1, SQLITE_TRANSIENT);
    if (p->warning[0])
        sqlite3_bind_text(st, 11, p->warning, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, now_s);
    int rc = step_reset(st);
    free(tags);
    if (rc == 0 && sqlite3_changes(db) == 1)
        rc = lucy_jobs_enqueue(db, it->recording_id, NULL);
    return rc;
}

static int upsert_path(sqlite3_stmt **sql, const struct item *it, const char *root, int64_t now_s)
{
    sqlite3_stmt *st = sql[SQL_UPSERT_PATH];
    sqlite3_bind_blob(st, 1, it->path, (int)it->path_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, it->display, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, root, (int)strlen(root), SQLITE_STATIC);
    if (it->recording_id[0])
        sqlite3_bind_text(st, 4, it->recording_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, it->size);
    sqlite3_bind_int64(st, 6, it->mtime_ns);
    sqlite3_bind_int64(st, 7, it->inode);
    sqlite3_bind_text(st, 8, it->status, -1, SQLITE_STATIC);
    if (it->last_error)
        sqlite3_bind_text(st, 9, it->last_error, -1, SQLITE_STATIC);
    if (it->errno_name)
        sqlite3_bind_text(st, 10, it->errno_name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 11, it->attempts);
    if (it->next_retry_s)
        sqlite3_bind_int64(st, 12, it->next_retry_s);
    sqlite3_bind_int64(st, 13, now_s);
    sqlite3_bind_int(st, 14, it->keep_recording);
    return step_reset(st);
}

static int set_presence(sqlite3_stmt **sql, const struct item *it, const char *presence,
                        int64_t now_s)
{
    sqlite3_stmt *st = sql[SQL_PRESENCE];
    sqlite3_bind_blob(st, 1, it->path, (int)it->path_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, presence, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_s);
    return step_reset(st);
}

static int write_item(sqlite3 *db, sqlite3_stmt **sql, struct scan *sc, const struct item *it)
{
    int rc = 0;
    switch (it->kind) {
    case ITEM_RESULT:
        if (it->recording_id[0] && !it->keep_recording)
            rc = insert_recording(db, sql, it, sc->now_s);
        if (rc == 0)
            rc = upsert_path(sql, it, sc->root, sc->now_s);
        if (rc == 0 && strcmp(it->old_recording_id, it->recording_id) != 0)
            rc = rate_recording(sql, it->old_recording_id, sc->now_s);
        if (rc == 0 && !it->keep_recording)
            rc = rate_recording(sql, it->recording_id, sc->now_s);
        return rc;
    case ITEM_PRESENT:
    case ITEM_MISSING:
        rc = set_presence(sql, it, it->kind == ITEM_PRESENT ? "present" : "missing", sc->now_s);
        return rc ? rc : rate_recording(sql, it->old_recording_id, sc->now_s);
    }
    return 0;
}

/* The batch, run on the store's writer thread. */
static int write_items(sqlite3 *db, void *argp)
{
    struct scan *sc = argp;
    sqlite3_stmt *sql[N_BATCH_SQL] = {0};
    int rc = 0;
    for (int i = 0; i < N_BATCH_SQL && rc == 0; i++)
        if (sqlite3_prepare_v2(db, batch_sql[i], -1, &sql[i], NULL) != SQLITE_OK)
            rc = lucy_store_err(sqlite3_errcode(db));
    for (size_t i = 0; i < sc->n_items && rc == 0; i++)
        rc = write_item(db, sql, sc, &sc->items[i]);
    for (int i = 0; i < N_BATCH_SQL; i++)
        sqlite3_finalize(sql[i]);
    return rc;
}

static int flush(struct scan *sc)
{
    int rc = 0;
    if (sc->n_items && !sc->store_rc) {
        rc = lucy_store_write(sc->ctx->store, write_items, sc, 0);
        if (rc)
            sc->store_rc = rc;
    }
    for (size_t i = 0; i < sc->n_items; i++)
        item_clear(&sc->items[i]);
    sc->n_items = 0;
    return sc->store_rc;
}

/* A new pending item (zeroed) or NULL when the store has failed. */
static struct item *item_new(struct scan *sc, enum item_kind kind, const char *path,
                             size_t path_len)
{
    if (sc->store_rc)
        return NULL;
    if (sc->n_items == BATCH_ITEMS ||
        (sc->n_items && monotonic_ms() - sc->batch_started_ms > BATCH_MAX_AGE_MS))
        if (flush(sc))
            return NULL;
    if (sc->n_items == 0)
        sc->batch_started_ms = monotonic_ms();
    struct item *it = &sc->items[sc->n_items];
    memset(it, 0, sizeof *it);
    it->kind = kind;
    it->path = malloc(path_len + 1);
    if (!it->path) {
        sc->store_rc = LUCY_ENOMEM;
        return NULL;
    }
    memcpy(it->path, path, path_len);
    it->path[path_len] = '\0';
    it->path_len = path_len;
    sc->n_items++;
    return it;
}

/* ---- per file -------------------------------------------------------- */

/* Where each outcome is counted in the summary. */
static const size_t counter_offsets[LUCY_SCAN_N_OUTCOMES] = {
    [LUCY_SCAN_NEW] = offsetof(struct lucy_scan_summary, new_),
    [LUCY_SCAN_CHANGED] = offsetof(struct lucy_scan_summary, changed),
    [LUCY_SCAN_UNCHANGED] = offsetof(struct lucy_scan_summary, unchanged),
    [LUCY_SCAN_LOCKED] = offsetof(struct lucy_scan_summary, locked),
    [LUCY_SCAN_PLACEHOLDER] = offsetof(struct lucy_scan_summary, placeholder),
    [LUCY_SCAN_IGNORED] = offsetof(struct lucy_scan_summary, ignored),
    [LUCY_SCAN_CHANGING] = offsetof(struct lucy_scan_summary, changing),
    [LUCY_SCAN_CORRUPT] = offsetof(struct lucy_scan_summary, corrupt),
    [LUCY_SCAN_PERMISSION_DENIED] = offsetof(struct lucy_scan_summary, permission_denied),
    [LUCY_SCAN_IO_ERROR] = offsetof(struct lucy_scan_summary, io_error),
    [LUCY_SCAN_UNSUPPORTED] = offsetof(struct lucy_scan_summary, unsupported),
    [LUCY_SCAN_MISSING] = offsetof(struct lucy_scan_summary, missing),
    [LUCY_SCAN_UNAVAILABLE] = offsetof(struct lucy_scan_summary, unavailable),
};

static void count(struct scan *sc, enum lucy_scan_outcome o)
{
    if ((unsigned)o < LUCY_SCAN_N_OUTCOMES)
        (*(uint64_t *)((char *)sc->sum + counter_offsets[o]))++;
}

static void count_errno(struct scan *sc, const char *name)
{
    json_t *v = json_object_get(sc->sum->errors_by_errno, name);
    json_object_set_new(sc->sum->errors_by_errno, name,
                        json_integer(v ? json_integer_value(v) + 1 : 1));
}

static void note_locked(struct scan *sc, const char *path, size_t len)
{
    if (json_array_size(sc->locked_examples) >= LOCKED_EXAMPLES)
        return;
    char *d = lucy_scan_display_name(path, len);
    if (d)
        json_array_append_new(sc->locked_examples, json_string(d));
    free(d);
}

/* Statuses after which an unchanged file (same size, mtime and inode) is
 * not read again, and the outcome it is counted under: a known recording
 * is `unchanged`; a known corrupt or unsupported file keeps its outcome in
 * every scan summary, so /health, the doctor and the UI keep showing it
 * until the file changes or goes away. */
static const struct {
    const char *status;           /* scan_files.status */
    enum lucy_scan_outcome count; /* counted as */
} final_statuses[] = {
    {"recording", LUCY_SCAN_UNCHANGED},
    {"corrupt", LUCY_SCAN_CORRUPT},
    {"unsupported", LUCY_SCAN_UNSUPPORTED},
};

/* 1 and *out when status is final (see final_statuses), else 0. */
static int is_final(const char *status, enum lucy_scan_outcome *out)
{
    for (size_t i = 0; i < sizeof final_statuses / sizeof final_statuses[0]; i++)
        if (strcmp(status, final_statuses[i].status) == 0) {
            *out = final_statuses[i].count;
            return 1;
        }
    return 0;
}

static int same_stat(const struct known *k, const struct stat *st)
{
    return k->size == (int64_t)st->st_size && k->mtime_ns == lucy_scan_mtime_ns(st) &&
           k->inode == (int64_t)st->st_ino;
}

static struct item *result_item(struct scan *sc, const char *path, size_t len,
                                const struct stat *st, const struct known *k, const char *status)
{
    struct item *it = item_new(sc, ITEM_RESULT, path, len);
    if (!it)
        return NULL;
    it->display = lucy_scan_display_name(path, len);
    if (!it->display) {
        sc->store_rc = LUCY_ENOMEM;
        return NULL;
    }
    it->size = (int64_t)st->st_size;
    it->mtime_ns = lucy_scan_mtime_ns(st);
    it->inode = (int64_t)st->st_ino;
    it->status = status;
    if (k)
        memcpy(it->old_recording_id, k->recording_id, sizeof it->old_recording_id);
    return it;
}

/* A failed open or read: classify by errno name and store the failure. */
static void file_failed(struct scan *sc, const char *path, size_t len, const struct stat *st,
                        struct known *k, int errnum)
{
    enum lucy_scan_outcome o = lucy_scan_errno_outcome(errnum);
    const char *name = lucy_scan_errno_name(errnum);
    if (o == LUCY_SCAN_MISSING) { /* vanished since the walk listed it */
        if (k)
            k->seen = 0; /* the missing pass counts and stores it */
        else
            count(sc, o);
        return;
    }
    count(sc, o);
    count_errno(sc, name);
    if (o == LUCY_SCAN_IGNORED)
        return;
    /* What is stored for each failure (the schema's CHECK list). */
    static const char *const failure_status[LUCY_SCAN_N_OUTCOMES] = {
        [LUCY_SCAN_LOCKED] = "locked",
        [LUCY_SCAN_PERMISSION_DENIED] = "permission_denied",
        [LUCY_SCAN_IO_ERROR] = "io_error",
    };
    const char *status = failure_status[o] ? failure_status[o] : "io_error";
    int again = k && strcmp(k->status, status) == 0;
    struct item *it = result_item(sc, path, len, st, k, status);
    if (!it)
        return;
    it->keep_recording = 1;
    it->errno_name = name;
    it->last_error = strdup(strerror(errnum));
    it->attempts = again ? k->attempts + 1 : 1;
    if (o == LUCY_SCAN_LOCKED) {
        int shift = it->attempts - 1 < 7 ? it->attempts - 1 : 7;
        int64_t delay = (int64_t)LOCK_RETRY_BASE_S << shift;
        it->next_retry_s = sc->now_s + (delay < LOCK_RETRY_MAX_S ? delay : LOCK_RETRY_MAX_S);
        note_locked(sc, path, len);
        if (!again) {
            sc->newly_locked++;
            if (sc->lock_lines++ < FIRST_LOCK_LINES)
                lucy_log(LUCY_LOG_WARNING, "recording file locked", "{s:s,s:s,s:s}", "path",
                         it->display, "errno", name, "hint",
                         "a sync client holds the file; it is retried with backoff");
        }
    } else if (!again && sc->error_lines++ < ERROR_LINES) {
        lucy_log(LUCY_LOG_WARNING, "cannot read recording file", "{s:s,s:s,s:s,s:s}", "path",
                 it->display, "errno", name, "outcome", lucy_scan_outcome_name(o), "hint",
                 o == LUCY_SCAN_PERMISSION_DENIED
                     ? "give lucy's user read permission on the file"
                     : "check the disk or mount; the file is retried on every scan");
    }
}

/* Opens, probes, hashes and re-checks one file with a single descriptor. */
static void examine(struct scan *sc, int dirfd, const char *name, const char *path, size_t len,
                    const struct stat *walk_st, struct known *k)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        file_failed(sc, path, len, walk_st, k, errno);
        return;
    }
    struct stat before, after;
    if (fstat(fd, &before) != 0) {
        int err = errno;
        close(fd);
        file_failed(sc, path, len, walk_st, k, err);
        return;
    }
    if (!S_ISREG(before.st_mode) || before.st_size == 0) { /* replaced since the walk */
        close(fd);
        count(sc, LUCY_SCAN_IGNORED);
        return;
    }
    struct lucy_scan_probe probe;
    enum lucy_scan_probe_result res = lucy_scan_probe_fd(fd, (int64_t)before.st_size, &probe);
    char hex[65] = "";
    uint64_t hashed = 0;
    int err = res == LUCY_SCAN_PROBE_READ_ERROR ? probe.errnum : 0;
    if (res == LUCY_SCAN_PROBE_AUDIO) {
        int rc = lucy_scan_hash_fd(sc->hasher, fd, hex, &hashed, &err);
        sc->sum->bytes_hashed += hashed;
        if (rc != 0)
            res = LUCY_SCAN_PROBE_READ_ERROR;
    }
    int moved = fstat(fd, &after) != 0 || after.st_size != before.st_size ||
                lucy_scan_mtime_ns(&after) != lucy_scan_mtime_ns(&before) ||
                (res == LUCY_SCAN_PROBE_AUDIO && hashed != (uint64_t)before.st_size);
    close(fd);
    if (res == LUCY_SCAN_PROBE_READ_ERROR) {
        lucy_scan_probe_clear(&probe);
        file_failed(sc, path, len, &before, k, err ? err : EIO);
        return;
    }
    if (moved) { /* written to while we read: not a stable content */
        lucy_scan_probe_clear(&probe);
        count(sc, LUCY_SCAN_CHANGING);
        return;
    }
    enum lucy_scan_outcome o;
    const char *status;
    switch (res) {
    case LUCY_SCAN_PROBE_AUDIO:
        status = "recording";
        o = !k || !k->recording_id[0]           ? LUCY_SCAN_NEW
            : strcmp(k->recording_id, hex) != 0 ? LUCY_SCAN_CHANGED
                                                : LUCY_SCAN_UNCHANGED;
        break;
    case LUCY_SCAN_PROBE_CORRUPT:
        status = "corrupt";
        o = LUCY_SCAN_CORRUPT;
        break;
    default:
        status = "unsupported";
        o = LUCY_SCAN_UNSUPPORTED;
        break;
    }
    count(sc, o);
    struct item *it = result_item(sc, path, len, &before, k, status);
    if (!it) {
        lucy_scan_probe_clear(&probe);
        return;
    }
    it->probe = probe; /* takes the tags */
    if (res == LUCY_SCAN_PROBE_AUDIO)
        memcpy(it->recording_id, hex, sizeof hex);
    else if (probe.reason[0])
        it->last_error = strdup(probe.reason);
    if (o == LUCY_SCAN_CORRUPT && !(k && !strcmp(k->status, "corrupt")) &&
        sc->error_lines++ < ERROR_LINES)
        lucy_log(LUCY_LOG_WARNING, "recording file corrupt", "{s:s,s:s}", "path", it->display,
                 "reason", probe.reason);
    if (o == LUCY_SCAN_NEW || o == LUCY_SCAN_CHANGED)
        lucy_log(LUCY_LOG_DEBUG, "recording found", "{s:s,s:s,s:s}", "path", it->display, "id", hex,
                 "outcome", lucy_scan_outcome_name(o));
}

/* Non-zero when the scan has to stop: the store failed, or lucy or the
 * scanner is shutting down. */
static int must_stop(struct scan *sc)
{
    if (!sc->store_rc &&
        (sc->ctx->stopping || (sc->opt && sc->opt->stop && lucy_thread_stopping(sc->opt->stop))))
        sc->store_rc = LUCY_ESHUTDOWN;
    return sc->store_rc;
}

static int on_file(void *arg, int dirfd, const char *name, const char *path, size_t len,
                   const struct stat *st)
{
    struct scan *sc = arg;
    if (must_stop(sc))
        return sc->store_rc;
    sc->sum->files_seen++;
    sc->root_files++;
    struct known *k = known_find(&sc->map, path, len);
    if (k)
        k->seen = 1;
    enum lucy_scan_outcome o;
    if (lucy_scan_classify_stat(name, st, &o)) {
        count(sc, o);
    } else if (k && same_stat(k, st) && is_final(k->status, &o)) {
        count(sc, o);                              /* unchanged, or still corrupt / unsupported */
        if (strcmp(k->presence, "present") != 0) { /* back after missing/unavailable */
            struct item *it = item_new(sc, ITEM_PRESENT, path, len);
            if (it)
                memcpy(it->old_recording_id, k->recording_id, sizeof it->old_recording_id);
        }
    } else if (lucy_scan_is_settling(st, sc->now_ns, sc->ctx->cfg->scan_settle_s)) {
        count(sc, LUCY_SCAN_CHANGING);
    } else if (k && sc->opt && sc->opt->honor_backoff && !strcmp(k->status, "locked") &&
               same_stat(k, st) && sc->now_s < k->next_retry_s) {
        count(sc, LUCY_SCAN_LOCKED); /* still backing off: counted, not read */
        count_errno(sc, k->errno_name[0] ? k->errno_name : "EDEADLK");
        note_locked(sc, path, len);
    } else {
        examine(sc, dirfd, name, path, len, st, k);
    }
    return sc->store_rc;
}

static void on_dir(void *arg, const char *path, int depth)
{
    struct scan *sc = arg;
    if (sc->opt && sc->opt->on_dir)
        sc->opt->on_dir(sc->opt->arg, path, depth);
}

static void on_error(void *arg, const char *path, int errnum, int is_dir)
{
    struct scan *sc = arg;
    char *display = lucy_scan_display_name(path, strlen(path));
    if (!is_dir) { /* a dangling or looping symlink: not a recording */
        lucy_log(LUCY_LOG_DEBUG, "unresolvable symlink skipped", "{s:s,s:s}", "path",
                 display ? display : "", "errno", lucy_scan_errno_name(errnum));
        free(display);
        return;
    }
    /* Files below an unreadable directory are unknown, not missing. */
    size_t n = strlen(path);
    char **bad = realloc(sc->bad_dirs, (sc->n_bad_dirs + 1) * sizeof *bad);
    char *prefix = malloc(n + 2);
    if (bad)
        sc->bad_dirs = bad;
    if (bad && prefix) {
        memcpy(prefix, path, n);
        memcpy(prefix + n, "/", 2);
        sc->bad_dirs[sc->n_bad_dirs++] = prefix;
    } else {
        free(prefix);
    }
    if (errnum != ELOOP)
        count_errno(sc, lucy_scan_errno_name(errnum));
    if (sc->error_lines++ < ERROR_LINES)
        lucy_log(LUCY_LOG_WARNING, "cannot read folder", "{s:s,s:s,s:s}", "path",
                 display ? display : "", "errno", lucy_scan_errno_name(errnum), "hint",
                 errnum == ELOOP ? "nested deeper than the scanner goes; files below are skipped"
                                 : "files below it are skipped until it can be read");
    free(display);
}

/* ---- per root -------------------------------------------------------- */

static int under_bad_dir(const struct scan *sc, const struct known *k)
{
    for (size_t i = 0; i < sc->n_bad_dirs; i++)
        if (strncmp(k->path, sc->bad_dirs[i], strlen(sc->bad_dirs[i])) == 0)
            return 1;
    return 0;
}

struct root_arg {
    const char *root;               /* bytes */
    const struct path_range *range; /* its paths */
    const char *display;            /* UTF-8 */
    int available;                  /* 1 = walked, 0 = vanished or emptied */
    uint64_t files_seen;
    int64_t now_s;
};

/* Records the root's state; when unavailable, all its present paths too. */
static int write_root(sqlite3 *db, void *argp)
{
    struct root_arg *a = argp;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "INSERT INTO scan_roots (root, display_root, available, files_seen,"
                                " last_scan_s) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (root) DO"
                                " UPDATE SET display_root = excluded.display_root,"
                                " available = excluded.available, files_seen ="
                                " excluded.files_seen, last_scan_s = excluded.last_scan_s",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_blob(st, 1, a->root, (int)strlen(a->root), SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->display, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, a->available);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)a->files_seen);
    sqlite3_bind_int64(st, 5, a->now_s);
    rc = step_reset(st);
    sqlite3_finalize(st);
    if (rc || a->available)
        return rc;
    static const char *const sql[] = {
        "UPDATE recording_paths SET presence = 'unavailable', updated_at_s = ?2"
        " WHERE path >= ?3 AND path < ?4 AND presence = 'present'",
        "UPDATE recordings SET scan_status = CASE"
        " WHEN EXISTS (SELECT 1 FROM recording_paths p WHERE p.recording_id = recordings.id"
        "  AND p.presence = 'present') THEN 'ok'"
        " WHEN EXISTS (SELECT 1 FROM recording_paths p WHERE p.recording_id = recordings.id"
        "  AND p.presence = 'unavailable') THEN 'unavailable' ELSE 'missing' END,"
        " updated_at_s = ?2"
        " WHERE id IN (SELECT recording_id FROM recording_paths WHERE path >= ?3 AND path < ?4)",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0] && rc == 0; i++) {
        rc = sqlite3_prepare_v2(db, sql[i], -1, &st, NULL);
        if (rc != SQLITE_OK)
            return lucy_store_err(rc);
        sqlite3_bind_int64(st, 2, a->now_s);
        bind_range(st, 3, a->range);
        rc = step_reset(st);
        sqlite3_finalize(st);
    }
    return rc;
}

static void scan_root(struct scan *sc, const char *root)
{
    sc->root = root;
    sc->root_files = 0;
    char *display = NULL;
    struct path_range range;
    int rc = path_range(&range, root);
    struct load_arg la = {&range, &sc->map};
    if (rc == 0)
        rc = lucy_store_read(sc->ctx->store, load_known, &la);
    if (rc) {
        sc->store_rc = rc;
        goto out;
    }
    static const struct lucy_scan_walk_ops ops = {on_file, on_dir, on_error};
    int walk_rc = lucy_scan_walk(root, sc->ctx->cfg->follow_symlinks, &ops, sc, NULL);
    if (sc->store_rc == LUCY_ESHUTDOWN) { /* keep what was learnt; mark nothing missing */
        sc->store_rc = 0;
        flush(sc);
        if (!sc->store_rc)
            sc->store_rc = LUCY_ESHUTDOWN;
        goto out;
    }
    if (flush(sc))
        goto out;
    display = lucy_scan_display_name(root, strlen(root));
    struct root_arg ra = {root, &range, display ? display : "", 1, sc->root_files, sc->now_s};

    uint64_t known_present = 0;
    for (size_t i = 0; i < sc->map.n; i++)
        if (strcmp(sc->map.rows[i].presence, "missing") != 0)
            known_present++;
    if (walk_rc > 0 || (sc->root_files == 0 && known_present > 0)) {
        /* Vanished (unmounted volume) or emptied (stopped sync client):
         * its recordings become unavailable, never deleted. */
        ra.available = 0;
        sc->sum->unavailable += known_present;
        lucy_log(LUCY_LOG_WARNING, "recordings folder unavailable", "{s:s,s:s,s:I,s:s}", "root",
                 ra.display, "reason", walk_rc > 0 ? lucy_scan_errno_name(walk_rc) : "empty",
                 "paths", (json_int_t)known_present, "hint",
                 "check that the volume is mounted and the sync client runs; nothing is deleted");
    } else {
        for (size_t i = 0; i < sc->map.n; i++) {
            struct known *k = &sc->map.rows[i];
            if (k->seen || strcmp(k->presence, "present") != 0 || under_bad_dir(sc, k))
                continue;
            count(sc, LUCY_SCAN_MISSING);
            struct item *it = item_new(sc, ITEM_MISSING, k->path, k->path_len);
            if (it)
                memcpy(it->old_recording_id, k->recording_id, sizeof it->old_recording_id);
        }
        if (flush(sc))
            goto out;
    }
    rc = lucy_store_write(sc->ctx->store, write_root, &ra, 0);
    if (rc)
        sc->store_rc = rc;
out:
    free(display);
    known_free(&sc->map);
    for (size_t i = 0; i < sc->n_bad_dirs; i++)
        free(sc->bad_dirs[i]);
    free(sc->bad_dirs);
    sc->bad_dirs = NULL;
    sc->n_bad_dirs = 0;
}

/* Absolute form of a root without trailing slashes (not resolved: a root
 * that is a symlink stays the name the user gave). Caller frees. */
static char *absolute_root(const char *dir, size_t len)
{
    char cwd[PATH_MAX] = "";
    if (dir[0] != '/' && !getcwd(cwd, sizeof cwd))
        return NULL;
    while (len > 1 && dir[len - 1] == '/')
        len--;
    if (len == 1 && dir[0] == '.' && cwd[0])
        return strdup(cwd);
    char *out = NULL;
    if (asprintf(&out, "%s%s%.*s", cwd, cwd[0] && strcmp(cwd, "/") ? "/" : "", (int)len, dir) < 0)
        return NULL;
    return out;
}

/* ---- the scan -------------------------------------------------------- */

/* meta[LUCY_SCAN_SUMMARY_META_KEY] = text (one store write). */
static int keep_summary_tx(sqlite3 *db, void *arg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO meta (key, value) VALUES ('" LUCY_SCAN_SUMMARY_META_KEY
                           "', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                           -1, &st, NULL) != SQLITE_OK)
        return lucy_store_err(sqlite3_errcode(db));
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

/* Leaves the finished scan's summary in meta for `lucy doctor`. A failure
 * (disk full: the scan itself may have failed for that) is only logged
 * at DEBUG; the previous summary stays. */
static void keep_summary(struct lucy_ctx *ctx, const json_t *js, const struct lucy_scan_summary *s,
                         int rc)
{
    json_t *j = js ? json_deep_copy(js) : NULL;
    if (!j)
        return;
    json_object_set_new(j, "failed", json_boolean(s->failed));
    json_object_set_new(j, "finished_at_s", json_integer(s->finished_at_s));
    if (s->failed)
        json_object_set_new(j, "error", json_string(lucy_strerror(rc)));
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    int wrc = text ? lucy_store_write(ctx->store, keep_summary_tx, text, 0) : LUCY_ENOMEM;
    if (wrc)
        lucy_log(LUCY_LOG_DEBUG, "scan summary not kept in meta", "{s:s}", "error",
                 lucy_strerror(wrc));
    free(text);
}

static void summary_init(struct lucy_scan_summary *s)
{
    memset(s, 0, sizeof *s);
    s->errors_by_errno = json_object();
}

int lucy_scan_run_opts(struct lucy_ctx *ctx, const char *dirs, const struct lucy_scan_options *opt,
                       struct lucy_scan_summary *out)
{
    summary_init(out);
    if (!out->errors_by_errno)
        return LUCY_ENOMEM;
    struct scan *sc = calloc(1, sizeof *sc);
    if (!sc)
        return LUCY_ENOMEM;
    sc->ctx = ctx;
    sc->opt = opt;
    sc->sum = out;
    sc->hasher = lucy_scan_hasher_new();
    sc->locked_examples = json_array();
    struct timespec t0, real;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_REALTIME, &real);
    sc->now_s = real.tv_sec;
    sc->now_ns = (int64_t)real.tv_sec * 1000000000 + real.tv_nsec;
    int rc = sc->hasher && sc->locked_examples ? 0 : LUCY_ENOMEM;

    for (const char *p = dirs ? dirs : ""; rc == 0 && *p;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len) {
            char *root = absolute_root(p, len);
            if (!root) {
                rc = LUCY_ENOMEM;
                break;
            }
            scan_root(sc, root);
            free(root);
            rc = sc->store_rc;
        }
        p += len + (end ? 1 : 0);
    }

    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    out->duration_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    out->finished_at_s = time(NULL);
    out->failed = rc != 0 && rc != LUCY_ESHUTDOWN;

    json_t *js = lucy_scan_summary_json(out);
    if (rc == LUCY_ESHUTDOWN)
        lucy_log(LUCY_LOG_INFO, "scan interrupted by shutdown", "O", js);
    else if (rc)
        lucy_log(LUCY_LOG_ERROR, "scan failed", "{s:s,s:s,s:O}", "error", lucy_strerror(rc), "hint",
                 "the store is not writable (disk full or I/O error); the scan is retried",
                 "summary", js);
    else
        lucy_log(LUCY_LOG_INFO, "scan finished", "O", js);
    if (rc != LUCY_ESHUTDOWN)
        keep_summary(ctx, js, out, rc);
    if (out->locked)
        lucy_log(LUCY_LOG_WARNING, "recording files locked", "{s:I,s:I,s:O,s:O,s:s}", "count",
                 (json_int_t)out->locked, "newly_locked", (json_int_t)sc->newly_locked, "examples",
                 sc->locked_examples, "errors_by_errno", out->errors_by_errno, "hint",
                 "a sync client (Dropbox, iCloud, OneDrive) holds these files; they are "
                 "retried with backoff");
    json_decref(js);
    json_decref(sc->locked_examples);
    lucy_scan_hasher_free(sc->hasher);
    free(sc);
    return rc;
}

int lucy_scan_run(struct lucy_ctx *ctx, const char *dirs, struct lucy_scan_summary *out)
{
    return lucy_scan_run_opts(ctx, dirs, NULL, out);
}

json_t *lucy_scan_summary_json(const struct lucy_scan_summary *s)
{
    json_t *errors = s->errors_by_errno ? json_deep_copy(s->errors_by_errno) : json_object();
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}",
                     "files_seen", (json_int_t)s->files_seen, "new", (json_int_t)s->new_, "changed",
                     (json_int_t)s->changed, "unchanged", (json_int_t)s->unchanged, "locked",
                     (json_int_t)s->locked, "placeholder", (json_int_t)s->placeholder, "ignored",
                     (json_int_t)s->ignored, "changing", (json_int_t)s->changing, "corrupt",
                     (json_int_t)s->corrupt, "permission_denied", (json_int_t)s->permission_denied,
                     "io_error", (json_int_t)s->io_error, "unsupported", (json_int_t)s->unsupported,
                     "missing", (json_int_t)s->missing, "unavailable", (json_int_t)s->unavailable,
                     "bytes_hashed", (json_int_t)s->bytes_hashed, "duration_ms",
                     (json_int_t)s->duration_ms, "errors_by_errno", errors);
}

void lucy_scan_summary_free(struct lucy_scan_summary *s)
{
    json_decref(s->errors_by_errno);
    s->errors_by_errno = NULL;
}
