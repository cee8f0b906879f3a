/*
 * integrity.h - telling a damaged store from a healthy one (store.c's
 * helpers; the public face is in store.h).
 *
 * Two kinds of damage are silent in SQLite:
 *  * a corrupt page: queries on other pages work, so lucy would start and
 *    serve; PRAGMA quick_check finds it (integrity.c runs it on a schedule
 *    and store.c marks the store damaged when any statement meets
 *    SQLITE_CORRUPT / SQLITE_NOTADB);
 *  * lost files: an empty or replaced lucy.db, a deleted or truncated
 *    -wal, open as a valid but OLDER database (or a new one). The store
 *    counts its commits in table meta ("store_generation", bumped inside
 *    every batch) and keeps that count, with the database's own random id
 *    (meta "store_id"), now and then, in a marker OUTSIDE the database,
 *    DATA_DIR/lucy.db.generation. A database whose count is below the
 *    marker's lost commits, and one with another id is another store's:
 *    opening either is refused with the way out. The marker is written without fsync at most every
 *    MARKER_INTERVAL_MS and at close: it is a lower bound, so a loss of the
 *    last seconds before a crash can go unseen, never a false alarm.
 * Threads: the generation functions run on the store's writer thread (or
 * while opening); the marker is written only there.
 */
#ifndef LUCY_STORE_INTEGRITY_H
#define LUCY_STORE_INTEGRITY_H

#include <sqlite3.h>
#include <stddef.h>

/* Inside the writer's open transaction: adds one to meta
 * "store_generation" and returns the new count in *generation. 0 or the
 * SQLite result code. */
int lucy_store_generation_bump(sqlite3 *db, long long *generation);

/* The database's commit count (0 for a new or pre-marker database). */
long long lucy_store_generation_read(sqlite3 *db);

/* Bytes of a store id: 32 hex digits and a NUL. */
#define LUCY_STORE_ID_SIZE 33

/* The database's own random id (meta "store_id", made at its first open),
 * so a database swapped for another one is told apart even when it holds
 * more commits. "" when it has none (a copy from before the marker). */
void lucy_store_id_read(sqlite3 *db, char id[LUCY_STORE_ID_SIZE]);

/* Writes generation and store_id to the marker beside db_path (temp file +
 * rename, no fsync). Failures are ignored: the marker is advice, and a
 * full disk must not stop commits. */
void lucy_store_marker_write(const char *db_path, long long generation, const char *store_id);

/* At open: compares the database's count and id with the marker beside
 * db_path, and gives a database without an id one (before any marker
 * names one). Returns 0 (no marker, or not behind it and the same
 * database; *generation = the count, id = the database's id) or
 * LUCY_EDBCORRUPT with what happened and what to do in err. */
int lucy_store_marker_verify(sqlite3 *db, const char *db_path, long long *generation,
                             char id[LUCY_STORE_ID_SIZE], char *err, size_t errlen);

/* Records that a quick_check just finished (for lucy_store_checked_at_ms). */
struct lucy_store;
void lucy_store_checked(struct lucy_store *s);

#endif
