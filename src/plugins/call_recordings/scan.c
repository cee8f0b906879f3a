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
 *   same (size, mtime_ns, ctime_ns, inode) as stored
 *     and a final status                  -> unchanged, nothing read
 *   modified within LUCY_SCAN_SETTLE_S    -> changing, nothing read
 *   locked before and not yet due         -> locked (automatic scans only)
 *   open ONE descriptor, fstat, probe (probe.c), SHA-256 (hash.c) if it is
 *   audio, fstat again: size or mtime moved -> changing, nothing stored;
 *   a failed open/read                    -> by errno name (classify.c)
 *
 * Call metadata (DESIGN §12): a recording's file is read together with
 * its recorder's sidecar NAME.json (bounded by LUCY_CALL_SIDECAR_MAX), its
 * tags and its mtime by lucy_call_meta_read(); the item carries the result
 * and scan_store.c keeps it for the recording's primary path. A sidecar is
 * part of its recording: never a file of its own in the summary; one with
 * no audio beside it counts as orphan_sidecars and is logged. An
 * unchanged recording is read again when its call's sidecar appeared,
 * changed or went (its ctime differs from the one stored: decided in
 * folder_done() once the folder is listed, from the walk's own stats, as
 * the audio may be listed before its sidecar), when it has no call yet
 * (stored before schema 45), or when a better path than the call's
 * appeared (primary path rule, call_stale()).
 *
 * The ingest ledger (ledger.h): every file that does not become a clean
 * recording is noted with its outcome and reason (ledger_note(); written
 * only when that changes); at the end of a root, rows the walk did not
 * note again are dropped.
 *
 * Store: the rows are scan_store.c's. Results are queued here and written
 * BATCH_ITEMS at a time with lucy_scan_items_write() (one group commit
 * each, a recording together with its transcription job). Unchanged files
 * cost no write at all, which keeps a rescan of 100,000 unchanged files
 * bounded by the walk's fstatat() calls.
 *
 * Locked files: a WARNING the first time a path becomes locked (at most
 * FIRST_LOCK_LINES per scan; the log's own repeat suppression bounds it
 * further), then one WARNING per scan with the count and a few example
 * paths - only when some locked file has no line of its own in this scan,
 * so `lucy scan` never prints the same lock twice. Retries back off from LOCK_RETRY_BASE_S doubling
 * to LOCK_RETRY_MAX_S; only automatic scans honour the backoff, an explicit scan (`lucy scan`, POST
 * /recordings/scan) tries every locked file.
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

#include "../../clock.h"
#include "../../error.h"
#include "../../log.h"
#include "../../lucy.h"
#include "../../thread.h"
#include "ledger.h"
#include "scan_int.h"

#define BATCH_ITEMS       128  /* results per store write */
#define BATCH_MAX_AGE_MS  1000 /* ... or older than this */
#define LOCK_RETRY_BASE_S 30   /* first retry of a locked file */
#define LOCK_RETRY_MAX_S  3600 /* backoff ceiling */
#define LOCKED_EXAMPLES   5    /* example paths in the per-scan WARNING */
#define FIRST_LOCK_LINES  5    /* "file locked" WARNINGs per scan at most */
#define ERROR_LINES       5    /* other per-file WARNINGs per scan at most */
#define CALL_TAGS_MAX     32   /* container tags handed to lucy_call_meta_read() */

struct scan {
    struct lucy_ctx *ctx;                /* store and configuration */
    const struct lucy_scan_options *opt; /* backoff, on_dir */
    struct lucy_scan_summary *sum;       /* counters being filled */
    const char *root;                    /* current root (absolute bytes) */
    struct lucy_scan_known_map map;      /* known paths of the root */
    struct lucy_ledger_map ledger;       /* the root's ingest ledger rows before the walk */
    uint64_t root_files;                 /* regular files found in the root */
    char **bad_dirs;                     /* "dir/" prefixes that could not be read */
    size_t n_bad_dirs;
    struct lucy_scan_hasher *hasher;          /* reused SHA-256 buffer */
    struct lucy_scan_item items[BATCH_ITEMS]; /* pending writes */
    size_t n_items;
    int64_t batch_started_ms;           /* monotonic time of the oldest item */
    int store_rc;                       /* first failed write: the scan stops */
    int64_t now_s;                      /* scan start, Unix seconds */
    int64_t now_ns;                     /* scan start, CLOCK_REALTIME ns */
    json_t *locked_examples;            /* display paths, at most LOCKED_EXAMPLES */
    uint64_t newly_locked;              /* paths that became locked this scan */
    int lock_lines, error_lines;        /* per-file WARNINGs written */
    struct lucy_scan_root_id *root_ids; /* every configured root that exists */
    size_t n_root_ids;
    struct lucy_call_patterns patterns;             /* LUCY_CALL_NAME_PATTERNS when opt has none */
    const struct lucy_call_patterns *call_patterns; /* the ones in use */
    int orphan_lines;                               /* orphan-sidecar INFO lines written */
    struct folder *folders;                         /* the walk's open folders, innermost last */
    size_t n_folders, cap_folders;
};

static int flush(struct scan *sc)
{
    int rc = 0;
    if (sc->n_items && !sc->store_rc) {
        rc = lucy_scan_items_write(sc->ctx->store, sc->root, sc->now_s, sc->items, sc->n_items);
        if (rc)
            sc->store_rc = rc;
    }
    for (size_t i = 0; i < sc->n_items; i++)
        lucy_scan_item_clear(&sc->items[i]);
    sc->n_items = 0;
    return sc->store_rc;
}

/* A new pending item (zeroed) or NULL when the store has failed. */
static struct lucy_scan_item *item_new(struct scan *sc, enum lucy_scan_item_kind kind,
                                       const char *path, size_t path_len)
{
    if (sc->store_rc)
        return NULL;
    if (sc->n_items == BATCH_ITEMS ||
        (sc->n_items && lucy_mono_ms() - sc->batch_started_ms > BATCH_MAX_AGE_MS))
        if (flush(sc))
            return NULL;
    if (sc->n_items == 0)
        sc->batch_started_ms = lucy_mono_ms();
    struct lucy_scan_item *it = &sc->items[sc->n_items];
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

/* ---- the ingest ledger (ledger.h) ----------------------------------- */

static int same_text(const char *stored, const char *s)
{
    return strcmp(stored, s ? s : "") == 0;
}

/* Notes that the walk saw path with this ledger verdict: queues a write
 * only when it differs from the row the ledger already has, so a rescan
 * of unchanged odd files writes nothing (root_end() stamps last seen). */
static void ledger_note(struct scan *sc, const char *path, size_t len, const char *outcome,
                        const char *code, const char *reason, int64_t next_retry_s,
                        const char *recording_id)
{
    struct lucy_ledger_known *k = lucy_ledger_map_find(&sc->ledger, path, len);
    if (k) {
        k->seen = 1;
        if (same_text(k->outcome, outcome) && same_text(k->reason_code, code) &&
            same_text(k->reason, reason) && k->next_retry_s == next_retry_s &&
            same_text(k->recording_id, recording_id))
            return;
    }
    struct lucy_scan_item *it = item_new(sc, LUCY_SCAN_ITEM_LEDGER, path, len);
    if (!it)
        return;
    it->display = lucy_scan_display_name(path, len);
    it->last_error = reason ? strdup(reason) : NULL;
    if (!it->display || (reason && !it->last_error)) {
        sc->store_rc = LUCY_ENOMEM;
        return;
    }
    it->ledger_outcome = outcome;
    it->errno_name = code;
    it->next_retry_s = next_retry_s;
    if (recording_id)
        snprintf(it->recording_id, sizeof it->recording_id, "%s", recording_id);
}

/* The path was not looked at again (unchanged, backing off): whatever the
 * ledger says about it still holds. */
static void ledger_keep(struct scan *sc, const char *path, size_t len)
{
    struct lucy_ledger_known *k = lucy_ledger_map_find(&sc->ledger, path, len);
    if (k)
        k->seen = 1;
}

/* A recording whose call lost fields (the warnings of callmeta.c, e.g. an
 * unparseable sidecar, a date in 1970, a number libphonenumber refuses):
 * one call_metadata row naming them all; none when the call is clean, so
 * a row from before goes. path/len are the walk's (they outlive a flush). */
static void ledger_call(struct scan *sc, const char *path, size_t len,
                        const struct lucy_call_meta *m, const char *recording_id)
{
    if (!m || m->warning_count == 0)
        return;
    char reason[LUCY_CALL_WARNINGS_MAX * (LUCY_CALL_WARNING_SIZE + 2) + 40];
    size_t used = 0;
    for (int i = 0; i < m->warning_count && used < sizeof reason; i++)
        used += (size_t)snprintf(reason + used, sizeof reason - used, "%s%s", i ? "; " : "",
                                 m->warnings[i]);
    if (m->warnings_dropped && used < sizeof reason)
        snprintf(reason + used, sizeof reason - used, "; and %d more", m->warnings_dropped);
    /* m may be freed by a flush inside ledger_note(): reason is a copy. */
    ledger_note(sc, path, len, "call_metadata", "call_metadata", reason, 0, recording_id);
}

/* Statuses after which an unchanged file (same size, mtime, ctime, inode) is
 * not read again, and the outcome it is counted under: a known recording
 * is `unchanged`; a known corrupt or unsupported file keeps its outcome in
 * every scan summary, so /health, the doctor and the UI keep showing it
 * until the file changes or goes away. */
static const struct {
    enum lucy_scan_path_status status; /* recording_paths.status */
    enum lucy_scan_outcome count;      /* counted as */
} final_statuses[] = {
    {LUCY_SCAN_PATH_RECORDING, LUCY_SCAN_UNCHANGED},
    {LUCY_SCAN_PATH_CORRUPT, LUCY_SCAN_CORRUPT},
    {LUCY_SCAN_PATH_UNSUPPORTED, LUCY_SCAN_UNSUPPORTED},
};

/* 1 and *out when status is final (see final_statuses), else 0. */
static int is_final(enum lucy_scan_path_status status, enum lucy_scan_outcome *out)
{
    for (size_t i = 0; i < sizeof final_statuses / sizeof final_statuses[0]; i++)
        if (status == final_statuses[i].status) {
            *out = final_statuses[i].count;
            return 1;
        }
    return 0;
}

static int same_stat(const struct lucy_scan_known *k, const struct stat *st)
{
    return k->size == (int64_t)st->st_size && k->mtime_ns == lucy_scan_mtime_ns(st) &&
           k->ctime_ns == lucy_scan_ctime_ns(st) && k->inode == (int64_t)st->st_ino;
}

static struct lucy_scan_item *result_item(struct scan *sc, const char *path, size_t len,
                                          const struct stat *st, const struct lucy_scan_known *k,
                                          enum lucy_scan_path_status status)
{
    struct lucy_scan_item *it = item_new(sc, LUCY_SCAN_ITEM_RESULT, path, len);
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
    it->ctime_ns = lucy_scan_ctime_ns(st);
    it->status = status;
    if (k)
        memcpy(it->old_recording_id, k->recording_id, sizeof it->old_recording_id);
    return it;
}

/* A failed open or read: classify by errno name and store the failure. */
static void file_failed(struct scan *sc, const char *path, size_t len, const struct stat *st,
                        struct lucy_scan_known *k, int errnum)
{
    enum lucy_scan_outcome o = lucy_scan_errno_outcome(errnum);
    const char *name = lucy_scan_errno_name(errnum);
    if (o == LUCY_SCAN_MISSING) { /* vanished since the walk listed it */
        if (k)
            k->seen = 0; /* the missing pass counts and stores it */
        else
            count(sc, o);
        return; /* not noted: its ledger row, if any, goes */
    }
    count(sc, o);
    count_errno(sc, name);
    if (o == LUCY_SCAN_IGNORED) { /* ELOOP: a symlink loop */
        ledger_note(sc, path, len, "ignored", name, strerror(errnum), 0, NULL);
        return;
    }
    /* What is stored for each failure (the schema's CHECK list). */
    enum lucy_scan_path_status status = o == LUCY_SCAN_LOCKED ? LUCY_SCAN_PATH_LOCKED
                                        : o == LUCY_SCAN_PERMISSION_DENIED
                                            ? LUCY_SCAN_PATH_PERMISSION_DENIED
                                            : LUCY_SCAN_PATH_IO_ERROR;
    int again = k && k->status == status;
    int attempts = again ? k->attempts + 1 : 1;
    int64_t next_retry_s = 0;
    if (o == LUCY_SCAN_LOCKED) {
        int shift = attempts - 1 < 7 ? attempts - 1 : 7;
        int64_t delay = (int64_t)LOCK_RETRY_BASE_S << shift;
        next_retry_s = sc->now_s + (delay < LOCK_RETRY_MAX_S ? delay : LOCK_RETRY_MAX_S);
    }
    /* The ledger's row first: item_new() may flush, which clears items. */
    ledger_note(sc, path, len, lucy_scan_outcome_name(o), name, strerror(errnum), next_retry_s,
                NULL);
    struct lucy_scan_item *it = result_item(sc, path, len, st, k, status);
    if (!it)
        return;
    it->keep_recording = 1;
    it->errno_name = name;
    it->last_error = strdup(strerror(errnum));
    it->attempts = attempts;
    it->next_retry_s = next_retry_s;
    if (o == LUCY_SCAN_LOCKED) {
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
                 lucy_ledger_advice(lucy_scan_outcome_name(o), name)); /* the ledger's words */
    }
}

/* ---- call metadata -------------------------------------------------- */

/* Appends a warning of the scanner's own (the sidecar could not be read)
 * to the ones lucy_call_meta_read() left. */
static void call_warn(struct lucy_call_meta *m, const char *what, const char *detail)
{
    if (m->warning_count == LUCY_CALL_WARNINGS_MAX) {
        m->warnings_dropped++;
        return;
    }
    snprintf(m->warnings[m->warning_count++], LUCY_CALL_WARNING_SIZE, "sidecar: %s: %s", what,
             detail);
}

/* Reads audio file name's sidecar (dirfd) into *buf and *len (malloc'd, the
 * caller frees; NULL = none). A sidecar over LUCY_CALL_SIDECAR_MAX is not
 * read: *len is its size and *buf a 1-byte stand-in, so that
 * lucy_call_meta_read() refuses it with its own warning. Returns the
 * sidecar's ctime (0 = none, -1 = unreadable: the call's change test);
 * failures are warnings in m. */
static int64_t sidecar_read(int dirfd, const char *name, char **buf, size_t *len,
                            struct lucy_call_meta *m)
{
    char sidecar[NAME_MAX + 8];
    *buf = NULL;
    *len = 0;
    if (lucy_scan_sidecar_name(name, sidecar, sizeof sidecar) != 0)
        return 0;
    int fd = openat(dirfd, sidecar, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        call_warn(m, "cannot open", lucy_scan_errno_name(errno));
        return -1;
    }
    struct stat st;
    int64_t sig = -1;
    if (fstat(fd, &st) != 0) {
        call_warn(m, "cannot stat", lucy_scan_errno_name(errno));
    } else if (!S_ISREG(st.st_mode)) {
        sig = 0; /* a folder named NAME.json: no sidecar */
    } else if (st.st_size > LUCY_CALL_SIDECAR_MAX) {
        *buf = malloc(1);
        *len = (size_t)st.st_size;
        sig = lucy_scan_ctime_ns(&st);
    } else if ((*buf = malloc((size_t)st.st_size + 1))) {
        size_t got = 0;
        ssize_t n = 1;
        while (got < (size_t)st.st_size &&
               (n = pread(fd, *buf + got, (size_t)st.st_size - got, (off_t)got)) > 0)
            got += (size_t)n;
        if (n < 0) {
            call_warn(m, "cannot read", lucy_scan_errno_name(errno));
            free(*buf);
            *buf = NULL;
        } else {
            *len = got;
            sig = lucy_scan_ctime_ns(&st);
        }
    }
    close(fd);
    return sig;
}

/* The call metadata of the audio file name (in dirfd; st its fstat), from
 * its sidecar, name, tags and mtime, into it->call. Out of memory leaves
 * it->call NULL: the recording is stored without a call this time. */
static void read_call(struct scan *sc, int dirfd, const char *name, const struct stat *st,
                      struct lucy_scan_item *it)
{
    struct lucy_call_meta *m = malloc(sizeof *m);
    struct lucy_call_meta io_warnings;
    if (!m)
        return;
    memset(&io_warnings, 0, sizeof io_warnings);
    char *side = NULL;
    size_t side_len = 0;
    it->sidecar_ctime_ns = sidecar_read(dirfd, name, &side, &side_len, &io_warnings);

    struct lucy_call_tag tags[CALL_TAGS_MAX];
    size_t n_tags = 0;
    const char *key;
    json_t *v;
    json_object_foreach(it->probe.tags, key, v)
    {
        if (n_tags < CALL_TAGS_MAX && json_is_string(v))
            tags[n_tags++] = (struct lucy_call_tag){key, json_string_value(v)};
    }
    struct lucy_call_input in = {
        .file_name = name,
        .sidecar = side,
        .sidecar_len = side_len,
        .tags = tags,
        .tag_count = n_tags,
        .mtime_ms = lucy_scan_mtime_ns(st) / 1000000,
        .now_ms = lucy_wall_ms(),
        .default_region = sc->ctx->cfg->default_region,
        .patterns = sc->call_patterns,
    };
    lucy_call_meta_read(&in, m);
    free(side);
    for (int i = 0; i < io_warnings.warning_count; i++)
        if (m->warning_count < LUCY_CALL_WARNINGS_MAX)
            memcpy(m->warnings[m->warning_count++], io_warnings.warnings[i],
                   LUCY_CALL_WARNING_SIZE);
        else
            m->warnings_dropped++;
    it->call = m;
}

/* 1 when an unchanged recording path that is not its call's path has to
 * be read again for its call (see the file comment): the recording has no
 * call yet, the call's path is gone (missing from a root that is there;
 * an unavailable root may come back as it was), or this path is a better
 * one than the sync/backup copy the call came from. The call's own path
 * waits for its folder's listing instead (folder_done()). */
static int call_stale(const struct lucy_scan_known *k)
{
    if (k->status != LUCY_SCAN_PATH_RECORDING || k->forgotten)
        return 0; /* a forgotten recording has no call to read: not hashed again */
    return !k->has_call || !k->call_path_alive ||
           (k->call_path_secondary && !lucy_scan_path_is_secondary(k->path, k->path_len));
}

/* Opens, probes, hashes and re-checks one file with a single descriptor. */
static void examine(struct scan *sc, int dirfd, const char *name, const char *path, size_t len,
                    const struct stat *walk_st, struct lucy_scan_known *k)
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
        ledger_note(sc, path, len, "ignored", "zero_length", "empty, or no longer a file", 0, NULL);
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
        ledger_note(sc, path, len, "changing", "changed_while_read",
                    "its size or mtime changed while lucy read it", 0, NULL);
        return;
    }
    enum lucy_scan_outcome o;
    enum lucy_scan_path_status status;
    switch (res) {
    case LUCY_SCAN_PROBE_AUDIO:
        status = LUCY_SCAN_PATH_RECORDING;
        o = !k || !k->recording_id[0]           ? LUCY_SCAN_NEW
            : strcmp(k->recording_id, hex) != 0 ? LUCY_SCAN_CHANGED
                                                : LUCY_SCAN_UNCHANGED;
        break;
    case LUCY_SCAN_PROBE_CORRUPT:
        status = LUCY_SCAN_PATH_CORRUPT;
        o = LUCY_SCAN_CORRUPT;
        break;
    default:
        status = LUCY_SCAN_PATH_UNSUPPORTED;
        o = LUCY_SCAN_UNSUPPORTED;
        break;
    }
    count(sc, o);
    if (res != LUCY_SCAN_PROBE_AUDIO) /* before result_item(): a flush clears items */
        ledger_note(sc, path, len, lucy_scan_outcome_name(o),
                    res == LUCY_SCAN_PROBE_CORRUPT ? "decoder" : "not_audio",
                    probe.reason[0] ? probe.reason : NULL, 0, NULL);
    struct lucy_scan_item *it = result_item(sc, path, len, &before, k, status);
    if (!it) {
        lucy_scan_probe_clear(&probe);
        return;
    }
    it->probe = probe; /* takes the tags */
    if (res == LUCY_SCAN_PROBE_AUDIO) {
        memcpy(it->recording_id, hex, sizeof hex);
        read_call(sc, dirfd, name, &before, it);
    } else if (probe.reason[0])
        it->last_error = strdup(probe.reason);
    if (o == LUCY_SCAN_CORRUPT && !(k && k->status == LUCY_SCAN_PATH_CORRUPT) &&
        sc->error_lines++ < ERROR_LINES)
        lucy_log(LUCY_LOG_WARNING, "recording file corrupt", "{s:s,s:s}", "path", it->display,
                 "reason", probe.reason);
    if (o == LUCY_SCAN_NEW || o == LUCY_SCAN_CHANGED)
        lucy_log(LUCY_LOG_DEBUG, "recording found", "{s:s,s:s,s:s}", "path", it->display, "id", hex,
                 "outcome", lucy_scan_outcome_name(o));
    if (res == LUCY_SCAN_PROBE_AUDIO)
        ledger_call(sc, path, len, it->call, hex); /* last use of it: may flush */
}

/* Non-zero when the scan has to stop: the store failed, or lucy or the
 * scanner is shutting down. */
static int must_stop(struct scan *sc)
{
    if (!sc->store_rc && (lucy_ctx_stopping(sc->ctx) ||
                          (sc->opt && sc->opt->stop && lucy_thread_stopping(sc->opt->stop))))
        sc->store_rc = LUCY_ESHUTDOWN;
    return sc->store_rc;
}

/* ---- per folder: sidecars and the calls that wait for them ----------- */

/* A file's name with the length of its stem (NAME of NAME.<ext>). */
struct stem {
    char *name;      /* owned */
    size_t stem_len; /* bytes of NAME */
};

/* An unchanged call path whose sidecar decides whether it is read again. */
struct waiting {
    char *name;                 /* owned: the entry's name in its folder */
    char *path;                 /* owned */
    size_t path_len;            /* bytes */
    struct stat st;             /* the walk's */
    struct lucy_scan_known *k;  /* its known row (the map outlives the walk) */
    enum lucy_scan_outcome out; /* counted as when it stays unchanged */
};

/* A sidecar seen in the folder: its ctime and where it is. */
struct side {
    struct stem s;    /* NAME.json, stem NAME */
    char *path;       /* owned */
    size_t path_len;  /* bytes */
    int64_t ctime_ns; /* the walk's stat */
};

/* What one folder's listing collects until folder_done(). */
struct folder {
    struct stem *audio; /* regular files NAME.<audio ext> */
    size_t n_audio, cap_audio;
    struct side *sides;
    size_t n_sides, cap_sides;
    struct waiting *waiting;
    size_t n_waiting, cap_waiting;
};

/* Grows an array (*items, *n of *cap, each size bytes) by one slot.
 * The new slot, zeroed, or NULL with LUCY_ENOMEM noted. */
static void *grow(struct scan *sc, void **items, size_t *n, size_t *cap, size_t size)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        void *p = realloc(*items, c * size);
        if (!p) {
            sc->store_rc = LUCY_ENOMEM;
            return NULL;
        }
        *items = p;
        *cap = c;
    }
    void *slot = (char *)*items + (*n)++ * size;
    memset(slot, 0, size);
    return slot;
}

static struct folder *folder_top(struct scan *sc)
{
    return sc->n_folders ? &sc->folders[sc->n_folders - 1] : NULL;
}

static int stem_cmp(const void *a, const void *b)
{
    const struct stem *x = a, *y = b;
    int c = memcmp(x->name, y->name, x->stem_len < y->stem_len ? x->stem_len : y->stem_len);
    return c ? c : (x->stem_len > y->stem_len) - (x->stem_len < y->stem_len);
}

static int side_cmp(const void *a, const void *b)
{
    return stem_cmp(&((const struct side *)a)->s, &((const struct side *)b)->s);
}

/* A known file whose stat and status say "nothing to read": counted
 * under its final outcome; its ledger row stays; back after missing or
 * unavailable -> present again. */
static void file_unchanged(struct scan *sc, const char *path, size_t len,
                           const struct lucy_scan_known *k, enum lucy_scan_outcome o)
{
    count(sc, o); /* unchanged, or still corrupt / unsupported */
    ledger_keep(sc, path, len);
    if (k->presence != LUCY_SCAN_PRESENCE_PRESENT) { /* back after missing/unavailable */
        struct lucy_scan_item *it = item_new(sc, LUCY_SCAN_ITEM_PRESENT, path, len);
        if (it)
            memcpy(it->old_recording_id, k->recording_id, sizeof it->old_recording_id);
    }
}

/* A file that is not simply unchanged: still settling, backing off from a
 * lock, or read now. */
static void file_look(struct scan *sc, int dirfd, const char *name, const char *path, size_t len,
                      const struct stat *st, struct lucy_scan_known *k)
{
    if (lucy_scan_is_settling(st, sc->now_ns, sc->ctx->cfg->scan_settle_s)) {
        count(sc, LUCY_SCAN_CHANGING);
        ledger_note(sc, path, len, "changing", "settling",
                    "modified less than LUCY_SCAN_SETTLE_S seconds ago", 0, NULL);
    } else if (k && sc->opt && sc->opt->honor_backoff && k->status == LUCY_SCAN_PATH_LOCKED &&
               same_stat(k, st) && sc->now_s < k->next_retry_s) {
        count(sc, LUCY_SCAN_LOCKED); /* still backing off: counted, not read */
        count_errno(sc, k->errno_name[0] ? k->errno_name : "EDEADLK");
        note_locked(sc, path, len);
        ledger_keep(sc, path, len);
    } else {
        examine(sc, dirfd, name, path, len, st, k);
    }
}

/* A sidecar with no audio beside it: counted, logged (a few lines per
 * scan) and in the ledger: its recording was moved or deleted. */
static void sidecar_orphan(struct scan *sc, const char *path, size_t len)
{
    sc->sum->orphan_sidecars++;
    ledger_note(sc, path, len, "orphan_sidecar", "no_audio",
                "no audio file NAME.<ext> beside this NAME.json", 0, NULL);
    if (sc->orphan_lines++ >= ERROR_LINES)
        return;
    char *display = lucy_scan_display_name(path, len);
    lucy_log(LUCY_LOG_INFO, "call sidecar without its recording", "{s:s,s:s}", "path",
             display ? display : "", "hint",
             "NAME.json describes the call recorded in NAME.<ext> beside it; that file is "
             "missing (moved or deleted): move the sidecar with it, or delete it");
    free(display);
}

/* The folder is listed: each sidecar has its audio or is an orphan, and
 * each unchanged call path is unchanged unless its sidecar appeared,
 * changed (ctime) or went - all from the walk's own stats, so a rescan
 * costs no stat beyond the walk's. */
static void folder_done(struct scan *sc, struct folder *f, int dirfd)
{
    /* qsort/bsearch only on arrays that exist: NULL with 0 is undefined. */
    if (f->n_audio)
        qsort(f->audio, f->n_audio, sizeof *f->audio, stem_cmp);
    if (f->n_sides)
        qsort(f->sides, f->n_sides, sizeof *f->sides, side_cmp);
    for (size_t i = 0; i < f->n_sides && !sc->store_rc; i++)
        if (!f->n_audio ||
            !bsearch(&f->sides[i].s, f->audio, f->n_audio, sizeof *f->audio, stem_cmp))
            sidecar_orphan(sc, f->sides[i].path, f->sides[i].path_len);
    for (size_t i = 0; i < f->n_waiting && !must_stop(sc); i++) {
        struct waiting *w = &f->waiting[i];
        const char *dot = strrchr(w->name, '.');
        struct side key = {
            .s = {w->name, dot && dot != w->name ? (size_t)(dot - w->name) : strlen(w->name)}};
        const struct side *side =
            f->n_sides ? bsearch(&key, f->sides, f->n_sides, sizeof *f->sides, side_cmp) : NULL;
        if ((side ? side->ctime_ns : 0) == w->k->sidecar_ctime_ns)
            file_unchanged(sc, w->path, w->path_len, w->k, w->out);
        else if (dirfd >= 0)
            file_look(sc, dirfd, w->name, w->path, w->path_len, &w->st, w->k);
    }
}

static void folder_free(struct folder *f)
{
    for (size_t i = 0; i < f->n_audio; i++)
        free(f->audio[i].name);
    for (size_t i = 0; i < f->n_sides; i++) {
        free(f->sides[i].s.name);
        free(f->sides[i].path);
    }
    for (size_t i = 0; i < f->n_waiting; i++) {
        free(f->waiting[i].name);
        free(f->waiting[i].path);
    }
    free(f->audio);
    free(f->sides);
    free(f->waiting);
    memset(f, 0, sizeof *f);
}

static char *dup_bytes(struct scan *sc, const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) {
        sc->store_rc = LUCY_ENOMEM;
        return NULL;
    }
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

/* A recorder's sidecar found by the walk: part of the recording beside
 * it, never a file of its own; kept for folder_done(). */
static void sidecar_seen(struct scan *sc, const char *name, const char *path, size_t len,
                         const struct stat *st)
{
    struct lucy_scan_known *k = lucy_scan_known_find(&sc->map, path, len);
    if (k)
        k->seen = 1; /* a row from before sidecars were known: not "missing" */
    struct folder *f = folder_top(sc);
    struct side *side =
        f ? grow(sc, (void **)&f->sides, &f->n_sides, &f->cap_sides, sizeof *f->sides) : NULL;
    if (!side)
        return;
    side->s.stem_len = strlen(name) - 5;
    side->s.name = dup_bytes(sc, name, strlen(name));
    side->path = dup_bytes(sc, path, len);
    side->path_len = len;
    side->ctime_ns = lucy_scan_ctime_ns(st);
}

static int on_file(void *arg, int dirfd, const char *name, const char *path, size_t len,
                   const struct stat *st)
{
    struct scan *sc = arg;
    if (must_stop(sc))
        return sc->store_rc;
    if (lucy_scan_is_sidecar_name(name)) {
        sidecar_seen(sc, name, path, len, st);
        return sc->store_rc;
    }
    sc->sum->files_seen++;
    sc->root_files++;
    struct folder *f = folder_top(sc);
    size_t stem_len = lucy_scan_audio_stem(name);
    if (stem_len && f) {
        struct stem *a = grow(sc, (void **)&f->audio, &f->n_audio, &f->cap_audio, sizeof *a);
        if (a) {
            a->name = dup_bytes(sc, name, strlen(name));
            a->stem_len = stem_len;
        }
    }
    struct lucy_scan_known *k = lucy_scan_known_find(&sc->map, path, len);
    if (k)
        k->seen = 1;
    enum lucy_scan_outcome o;
    if (lucy_scan_classify_stat(name, st, &o)) {
        count(sc, o);
        if (o == LUCY_SCAN_PLACEHOLDER)
            ledger_note(sc, path, len, "placeholder", "cloud_placeholder",
                        "no blocks on disk: the content is in the cloud", 0, NULL);
        else if (lucy_scan_is_sync_artefact(name))
            ledger_note(sc, path, len, "ignored", "sync_artefact",
                        "a sync client's temporary or partial file, by its name", 0, NULL);
        else
            ledger_note(sc, path, len, "ignored", "zero_length", "an empty file (0 bytes)", 0,
                        NULL);
    } else if (k && same_stat(k, st) && is_final(k->status, &o) &&
               k->status == LUCY_SCAN_PATH_RECORDING && k->has_call && k->is_call_path && f) {
        /* Its sidecar may be listed after it: decided in folder_done(). */
        struct waiting *w =
            grow(sc, (void **)&f->waiting, &f->n_waiting, &f->cap_waiting, sizeof *w);
        if (w) {
            w->name = dup_bytes(sc, name, strlen(name));
            w->path = dup_bytes(sc, path, len);
            w->path_len = len;
            w->st = *st;
            w->k = k;
            w->out = o;
        }
    } else if (k && same_stat(k, st) && is_final(k->status, &o) && !call_stale(k)) {
        file_unchanged(sc, path, len, k, o);
    } else {
        file_look(sc, dirfd, name, path, len, st, k);
    }
    return sc->store_rc;
}

/* A folder entered: a frame for what its listing collects. */
static void folder_push(struct scan *sc)
{
    if (sc->n_folders == sc->cap_folders) {
        size_t c = sc->cap_folders ? sc->cap_folders * 2 : 8;
        struct folder *p = realloc(sc->folders, c * sizeof *p);
        if (!p) {
            sc->store_rc = LUCY_ENOMEM;
            return;
        }
        sc->folders = p;
        sc->cap_folders = c;
    }
    memset(&sc->folders[sc->n_folders++], 0, sizeof *sc->folders);
}

static void on_dir_done(void *arg, int dirfd, const char *path, int depth)
{
    struct scan *sc = arg;
    (void)path;
    (void)depth;
    struct folder *f = folder_top(sc);
    if (!f)
        return;
    if (!sc->store_rc)
        folder_done(sc, f, dirfd);
    folder_free(f);
    sc->n_folders--;
}

static void on_dir(void *arg, const char *path, int depth)
{
    struct scan *sc = arg;
    folder_push(sc);
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
        char why[160];
        snprintf(why, sizeof why, "a symlink that cannot be resolved (%s)", strerror(errnum));
        ledger_note(sc, path, strlen(path), "ignored", lucy_scan_errno_name(errnum), why, 0, NULL);
        return;
    }
    enum lucy_scan_outcome o = lucy_scan_errno_outcome(errnum);
    char reason[160];
    snprintf(reason, sizeof reason, "the folder cannot be read (%s); files below it are skipped",
             strerror(errnum));
    ledger_note(sc, path, strlen(path),
                o == LUCY_SCAN_MISSING || o == LUCY_SCAN_LOCKED ? "io_error"
                                                                : lucy_scan_outcome_name(o),
                lucy_scan_errno_name(errnum), reason, 0, NULL);
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

/* A symlink leading outside every configured root: counted as ignored and
 * never read, so a link to "/" cannot turn the system into recordings. */
static void on_outside(void *arg, const char *path, int is_dir)
{
    struct scan *sc = arg;
    count(sc, LUCY_SCAN_IGNORED);
    ledger_note(sc, path, strlen(path), "ignored", "outside_roots",
                is_dir ? "a symlink to a folder outside LUCY_RECORDINGS_DIRS"
                       : "a symlink to a file outside LUCY_RECORDINGS_DIRS",
                0, NULL);
    if (sc->error_lines++ >= ERROR_LINES)
        return;
    char *display = lucy_scan_display_name(path, strlen(path));
    lucy_log(LUCY_LOG_WARNING, "symlink leads outside the recordings folders; skipped",
             "{s:s,s:s,s:s}", "path", display ? display : "", "kind", is_dir ? "folder" : "file",
             "hint",
             "only files below LUCY_RECORDINGS_DIRS are scanned: add the target's folder to "
             "LUCY_RECORDINGS_DIRS if it holds recordings");
    free(display);
}

/* A sync folder the walk did not enter: counted as ignored, once. */
static void on_sync_folder(void *arg, const char *path)
{
    struct scan *sc = arg;
    count(sc, LUCY_SCAN_IGNORED);
    ledger_note(sc, path, strlen(path), "ignored", "sync_folder",
                "a sync client's cache, NAS index or trash folder: not walked", 0, NULL);
    char *display = lucy_scan_display_name(path, strlen(path));
    lucy_log(LUCY_LOG_DEBUG, "sync folder skipped", "{s:s}", "path", display ? display : "");
    free(display);
}

/* ---- per root -------------------------------------------------------- */

static int under_bad_dir(const struct scan *sc, const char *path)
{
    for (size_t i = 0; i < sc->n_bad_dirs; i++)
        if (strncmp(path, sc->bad_dirs[i], strlen(sc->bad_dirs[i])) == 0)
            return 1;
    return 0;
}

static void scan_root(struct scan *sc, const char *root)
{
    sc->root = root;
    sc->root_files = 0;
    char *display = NULL;
    int rc = lucy_scan_known_load(sc->ctx->store, root, &sc->map);
    if (rc == 0)
        rc = lucy_scan_ledger_load(sc->ctx->store, root, &sc->ledger);
    if (rc) {
        sc->store_rc = rc;
        goto out;
    }
    static const struct lucy_scan_walk_ops ops = {on_file,    on_dir,         on_error,
                                                  on_outside, on_sync_folder, on_dir_done};
    int walk_rc = lucy_scan_walk(root, sc->ctx->cfg->follow_symlinks, sc->root_ids, sc->n_root_ids,
                                 &ops, sc, NULL);
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
    int available = 1;

    uint64_t known_present = 0;
    for (size_t i = 0; i < sc->map.n; i++)
        if (sc->map.rows[i].presence != LUCY_SCAN_PRESENCE_MISSING)
            known_present++;
    if (walk_rc > 0) /* mistyped or unmounted: /health names it */
        json_object_set_new(sc->sum->missing_roots, display ? display : "",
                            json_string(lucy_scan_errno_name(walk_rc)));
    if (walk_rc > 0 || (sc->root_files == 0 && known_present > 0)) {
        /* Vanished (unmounted volume) or emptied (stopped sync client):
         * its recordings become unavailable, never deleted. */
        available = 0;
        sc->sum->unavailable += known_present;
        lucy_log(LUCY_LOG_WARNING, "recordings folder unavailable", "{s:s,s:s,s:I,s:s}", "root",
                 display ? display : "", "reason",
                 walk_rc > 0 ? lucy_scan_errno_name(walk_rc) : "empty", "paths",
                 (json_int_t)known_present, "hint",
                 "check LUCY_RECORDINGS_DIRS for a typo, that the volume is mounted and the sync "
                 "client runs; nothing is deleted");
    } else {
        for (size_t i = 0; i < sc->map.n; i++) {
            struct lucy_scan_known *k = &sc->map.rows[i];
            if (k->seen || k->presence != LUCY_SCAN_PRESENCE_PRESENT || under_bad_dir(sc, k->path))
                continue;
            count(sc, LUCY_SCAN_MISSING);
            struct lucy_scan_item *it = item_new(sc, LUCY_SCAN_ITEM_MISSING, k->path, k->path_len);
            if (it)
                memcpy(it->old_recording_id, k->recording_id, sizeof it->old_recording_id);
        }
        /* Ledger rows the walk did not note again: the file became a clean
         * recording or went away (below an unreadable folder: unknown). */
        for (size_t i = 0; i < sc->ledger.n; i++) {
            struct lucy_ledger_known *l = &sc->ledger.rows[i];
            if (!l->seen && !under_bad_dir(sc, l->path))
                item_new(sc, LUCY_SCAN_ITEM_UNLEDGER, l->path, l->path_len);
        }
        if (flush(sc))
            goto out;
    }
    rc = lucy_scan_root_write(sc->ctx->store, root, display ? display : "", available,
                              sc->root_files, sc->now_s);
    if (rc)
        sc->store_rc = rc;
out:
    free(display);
    lucy_scan_known_free(&sc->map);
    lucy_ledger_map_free(&sc->ledger);
    while (sc->n_folders) /* a walk that stopped early */
        folder_free(&sc->folders[--sc->n_folders]);
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

/* Fills sc->root_ids with the identity of every configured root that can
 * be stat'ed (a root that is a symlink: its target). 0 or LUCY_ENOMEM. */
static int root_ids_load(struct scan *sc, const char *dirs)
{
    for (const char *p = dirs ? dirs : ""; *p;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char *root = len ? absolute_root(p, len) : NULL;
        if (len && !root)
            return LUCY_ENOMEM;
        struct stat st;
        if (root && stat(root, &st) == 0 && S_ISDIR(st.st_mode)) {
            struct lucy_scan_root_id *ids =
                realloc(sc->root_ids, (sc->n_root_ids + 1) * sizeof *ids);
            if (!ids) {
                free(root);
                return LUCY_ENOMEM;
            }
            sc->root_ids = ids;
            sc->root_ids[sc->n_root_ids++] = (struct lucy_scan_root_id){st.st_dev, st.st_ino};
        }
        free(root);
        p += len + (end ? 1 : 0);
    }
    return 0;
}

/* ---- the scan -------------------------------------------------------- */

/* Leaves the finished scan's summary in meta for `lucy doctor`. A failure
 * (disk full: the scan itself may have failed for that) is only logged
 * at DEBUG; the previous summary stays. */
static void keep_summary(struct lucy_ctx *ctx, const json_t *js, const struct lucy_scan_summary *s,
                         int rc)
{
    json_t *j = js ? json_deep_copy(js) : NULL;
    if (!j)
        return;
    lucy_scan_summary_extend(j, s, rc);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    int wrc = text ? lucy_scan_summary_keep(ctx->store, text) : LUCY_ENOMEM;
    if (wrc)
        lucy_log(LUCY_LOG_DEBUG, "scan summary not kept in meta", "{s:s}", "error",
                 lucy_strerror(wrc));
    free(text);
}

static void summary_init(struct lucy_scan_summary *s)
{
    memset(s, 0, sizeof *s);
    s->errors_by_errno = json_object();
    s->missing_roots = json_object();
}

void lucy_scan_summary_extend(json_t *j, const struct lucy_scan_summary *s, int rc)
{
    json_object_set_new(j, "failed", json_boolean(s->failed));
    json_object_set_new(j, "finished_at_s", json_integer(s->finished_at_s));
    if (s->failed)
        json_object_set_new(j, "error", json_string(lucy_strerror(rc)));
    if (json_object_size(s->missing_roots))
        json_object_set(j, "missing_roots", s->missing_roots);
}

int lucy_scan_run_opts(struct lucy_ctx *ctx, const char *dirs, const struct lucy_scan_options *opt,
                       struct lucy_scan_summary *out)
{
    summary_init(out);
    if (!out->errors_by_errno || !out->missing_roots)
        return LUCY_ENOMEM;
    struct scan *sc = calloc(1, sizeof *sc);
    if (!sc)
        return LUCY_ENOMEM;
    sc->ctx = ctx;
    sc->opt = opt;
    sc->sum = out;
    sc->hasher = lucy_scan_hasher_new();
    sc->locked_examples = json_array();
    int64_t t0_ms = lucy_mono_ms(), wall_ms = lucy_wall_ms();
    sc->now_s = wall_ms / 1000;
    sc->now_ns = wall_ms * 1000000;
    int rc = sc->hasher && sc->locked_examples ? root_ids_load(sc, dirs) : LUCY_ENOMEM;
    sc->call_patterns = opt && opt->patterns ? opt->patterns : &sc->patterns;
    if (!(opt && opt->patterns) &&
        lucy_call_patterns_parse(ctx->cfg->call_name_patterns, &sc->patterns, NULL, 0) != 0)
        memset(&sc->patterns, 0, sizeof sc->patterns); /* the config check refused it already */

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

    out->duration_ms = lucy_mono_ms() - t0_ms;
    out->finished_at_s = lucy_wall_ms() / 1000;
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
    uint64_t lines =
        (uint64_t)(sc->lock_lines < FIRST_LOCK_LINES ? sc->lock_lines : FIRST_LOCK_LINES);
    if (out->locked > lines)
        lucy_log(LUCY_LOG_WARNING, "recording files locked", "{s:I,s:I,s:O,s:O,s:s}", "count",
                 (json_int_t)out->locked, "newly_locked", (json_int_t)sc->newly_locked, "examples",
                 sc->locked_examples, "errors_by_errno", out->errors_by_errno, "hint",
                 "a sync client (Dropbox, iCloud, OneDrive) holds these files; they are "
                 "retried with backoff");
    json_decref(js);
    json_decref(sc->locked_examples);
    lucy_scan_hasher_free(sc->hasher);
    free(sc->root_ids);
    free(sc->folders);
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
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}",
                     "files_seen", (json_int_t)s->files_seen, "new", (json_int_t)s->new_, "changed",
                     (json_int_t)s->changed, "unchanged", (json_int_t)s->unchanged, "locked",
                     (json_int_t)s->locked, "placeholder", (json_int_t)s->placeholder, "ignored",
                     (json_int_t)s->ignored, "changing", (json_int_t)s->changing, "corrupt",
                     (json_int_t)s->corrupt, "permission_denied", (json_int_t)s->permission_denied,
                     "io_error", (json_int_t)s->io_error, "unsupported", (json_int_t)s->unsupported,
                     "missing", (json_int_t)s->missing, "unavailable", (json_int_t)s->unavailable,
                     "orphan_sidecars", (json_int_t)s->orphan_sidecars, "bytes_hashed",
                     (json_int_t)s->bytes_hashed, "duration_ms", (json_int_t)s->duration_ms,
                     "errors_by_errno", errors);
}

void lucy_scan_summary_free(struct lucy_scan_summary *s)
{
    json_decref(s->errors_by_errno);
    s->errors_by_errno = NULL;
    json_decref(s->missing_roots);
    s->missing_roots = NULL;
}

/* In the binary, not in probe.c: the media module that fills a probe may
 * be unloaded before the scanner is done with it (src/media). */
void lucy_scan_probe_clear(struct lucy_scan_probe *p)
{
    json_decref(p->tags);
    p->tags = NULL;
}
