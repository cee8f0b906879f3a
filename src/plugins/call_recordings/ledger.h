/*
 * ledger.h - the ingest ledger (DESIGN §16): every file the scanner saw and
 * did not make a recording of, every recording whose call metadata lost a
 * field, and every recording whose transcription failed, each with its
 * path, outcome, reason, first and last seen, next retry and what to do.
 *
 * ledger.c is the one writer of table `ingest_ledger` (migration 48). The
 * scanner decides (scan.c) and writes (scan_store.c) inside its own batched
 * store writes, through lucy_ledger_put/drop/touch, as index producers call
 * lucy_outbox_put(). Failed transcriptions are not copied into the table:
 * lucy_ledger_list() reads them from `jobs` (the latest job of a recording
 * when it is failed or waiting to retry), so they leave the ledger by
 * themselves when a retry succeeds.
 *
 * A row leaves the ledger when its file becomes a recording (without
 * warnings) or disappears: the scanner drops every row of a walked root
 * that the walk did not note again (lucy_ledger_drop), except below a
 * folder it could not read.
 */
#ifndef LUCY_LEDGER_H
#define LUCY_LEDGER_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct lucy_store;

/* What the scanner writes for one path. Strings are borrowed. */
struct lucy_ledger_entry {
    const char *path;         /* bytes, path_len of them (file names are bytes) */
    size_t path_len;          /* bytes at path */
    const char *display;      /* UTF-8 display form (U+FFFD for bad bytes) */
    const char *root;         /* the configured root it was found under (bytes, NUL-ended) */
    const char *outcome;      /* a row of lucy_ledger_outcome_name() */
    const char *reason_code;  /* errno name, "zero_length", "decoder", ... (advice key) */
    const char *reason;       /* the words: strerror, the demuxer's message, warnings */
    const char *recording_id; /* call_metadata: the recording; NULL = none */
    int64_t next_retry_s;     /* Unix s the scanner tries again; 0 = on the next scan */
};

/* The outcomes the ledger lists, in order: the scanner's (ignored,
 * placeholder, changing, locked, corrupt, permission_denied, io_error,
 * unsupported, orphan_sidecar, call_metadata) then the transcription's
 * (transcription_failed, transcription_retrying). The i-th name, NULL past
 * the last. Static strings. Thread-safe. */
const char *lucy_ledger_outcome_name(size_t i);

/* 1 when outcome is one of lucy_ledger_outcome_name()'s. Thread-safe. */
int lucy_ledger_outcome_known(const char *outcome);

/* What to do about a row (the one advice table, in ledger.c): the text for
 * (outcome, reason_code), else the outcome's own. Static string, never
 * NULL. Thread-safe. */
const char *lucy_ledger_advice(const char *outcome, const char *reason_code);

/* ---- writes: inside the caller's store write, on the writer thread ---- */

/* Inserts or replaces the row of e->path, stamping last_seen_s = now_s
 * (Unix s); first_seen_s is kept while the outcome stays the same. 0 or a
 * LUCY_E* store error. */
int lucy_ledger_put(sqlite3 *db, const struct lucy_ledger_entry *e, int64_t now_s);

/* Removes the row of path (len bytes), if any: the file became a
 * recording or went away. 0 or a LUCY_E* store error. */
int lucy_ledger_drop(sqlite3 *db, const char *path, size_t len);

/* last_seen_s = now_s for every row in [lo, hi) (a root's path range,
 * bytes): rows a finished walk noted again. 0 or a LUCY_E* store error. */
int lucy_ledger_touch(sqlite3 *db, const char *lo, size_t lo_len, const char *hi, size_t hi_len,
                      int64_t now_s);

/* ---- what the scanner knew before a walk ---- */

/* One stored row, for the scanner's "same as before?" test. */
struct lucy_ledger_known {
    char *path;            /* bytes, NUL-terminated (owned) */
    size_t path_len;       /* bytes */
    char *outcome;         /* owned */
    char *reason_code;     /* owned; "" = none */
    char *reason;          /* owned; "" = none */
    char recording_id[65]; /* "" = none */
    int64_t next_retry_s;  /* 0 = none */
    int seen;              /* noted by this walk (the scanner sets it) */
};

/* The rows below one root, in SQLite's BLOB order: found by binary search. */
struct lucy_ledger_map {
    struct lucy_ledger_known *rows; /* n rows, sorted by path bytes */
    size_t n, cap;
};

/* Loads the rows whose path is in [lo, hi) into *map (zeroed by the
 * caller). One store read. 0, LUCY_ENOMEM or a store error; free with
 * lucy_ledger_map_free() on every path. */
int lucy_ledger_map_load(struct lucy_store *store, const char *lo, const char *hi,
                         struct lucy_ledger_map *map);
struct lucy_ledger_known *lucy_ledger_map_find(const struct lucy_ledger_map *m, const char *path,
                                               size_t len);
void lucy_ledger_map_free(struct lucy_ledger_map *m);

/* ---- reads ---- */

/* A page of the ledger, in path order then outcome: outcome NULL = all,
 * limit rows (1..500), cursor NULL = first page, else the next_cursor of
 * the previous page. *out (new reference) is
 *   {"items": [{"path", "outcome", "reason_code", "reason", "advice",
 *     "recording_id", "first_seen_s", "last_seen_s", "next_retry_s"}...],
 *    "next_cursor": "..." | null, "counts": {"corrupt": 1, ...}}
 * (counts: every row of the ledger by outcome, whatever the filter).
 * Returns 0, LUCY_EINVAL for a cursor that is not one, LUCY_ENOMEM or a
 * store error. Thread-safe (a store read). */
int lucy_ledger_list(struct lucy_store *store, const char *outcome, int limit, const char *cursor,
                     json_t **out);

#endif
