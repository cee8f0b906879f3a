/*
 * store.h - the local SQLite store: lucy's source of truth (DESIGN §1).
 *
 * One database file, DATA_DIR/lucy.db, in WAL mode with synchronous=FULL.
 *
 * Writes go through ONE writer thread that batches the writes of many
 * callers into one transaction and one fsync ("group commit"): each caller
 * hands a function, blocks, and learns whether *its* write is durable. A
 * failing write is rolled back alone (a savepoint per write); a failing
 * COMMIT fails every write of the batch. 0 from lucy_store_write() means
 * the data is on disk; anything else means it is not (or not known to be:
 * on LUCY_ETIMEDOUT it may still land later, so writes must be idempotent).
 *
 * Writes a remote client is waiting for (the webhook's acknowledgement) use
 * lucy_store_write_async(): they are queued ahead of lucy_store_write()
 * requests and complete through a callback, so the caller's thread (an
 * HTTP pool thread) is free while the fsync is pending.
 *
 * Reads use a small pool of read-only connections; in WAL mode they never
 * block the writer.
 *
 * Write and read functions reuse prepared statements with
 * lucy_store_stmt() instead of preparing the same SQL on every call.
 *
 * Schema changes are forward-only migrations (schema.c), each applied in
 * its own transaction and recorded in table schema_version.
 */
#ifndef LUCY_STORE_H
#define LUCY_STORE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct lucy_store;

/* A unit of work run on the writer thread inside the batch transaction.
 * Returns 0 or a LUCY_E* code; on error its changes are rolled back and the
 * code is returned to its caller. Must not BEGIN/COMMIT itself. */
typedef int (*lucy_store_write_fn)(sqlite3 *db, void *arg);

/* A read run on a pooled read-only connection. Returns 0 or LUCY_E*. */
typedef int (*lucy_store_read_fn)(sqlite3 *db, void *arg);

/* Opens (creating if needed) DATA_DIR/lucy.db, applies migrations and
 * starts the writer thread. data_dir must exist. Returns 0 and *out, or a
 * LUCY_E* code with a message in err (errlen bytes). */
int lucy_store_open(const char *data_dir, struct lucy_store **out, char *err, size_t errlen);

/* Finishes queued writes, stops the writer, closes every connection. */
void lucy_store_close(struct lucy_store *s);

/* Runs fn(db, arg) in the next group commit and waits up to timeout_ms
 * (<= 0: no limit) for the fsync. Returns 0 when durable; LUCY_ENOSPC (disk
 * full), LUCY_EIO (I/O error, read-only), LUCY_ETIMEDOUT, LUCY_ESHUTDOWN,
 * or fn's own error. On LUCY_ETIMEDOUT fn and arg must stay valid until
 * the writer runs them: pass only static or heap data you never free, or
 * use a timeout <= 0. Thread-safe. */
int lucy_store_write(struct lucy_store *s, lucy_store_write_fn fn, void *arg, int timeout_ms);

/* Called once on the writer thread when an asynchronous write is over: rc
 * is 0 when it is durable (committed and fsynced), else what
 * lucy_store_write() would have returned. It runs between batches, so it
 * must be quick (hand the result to another thread) and must not call
 * lucy_store_write() (the writer would wait for itself). */
typedef void (*lucy_store_done_fn)(void *done_arg, int rc);

/* Queues fn(db, arg) for the next group commit, AHEAD of lucy_store_write()
 * requests (a background write still runs once it has waited 50 ms), and
 * returns at once. Returns 0 when queued: done(done_arg, rc) is then called
 * exactly once, on the writer thread, after the commit and fsync (or the
 * failure); fn, arg and done_arg must stay valid until then (the caller
 * owns them and frees them in or after done). Returns LUCY_ENOMEM or
 * LUCY_ESHUTDOWN when not queued: done is never called. No timeout: the
 * writer answers every request, errors included. Thread-safe. */
int lucy_store_write_async(struct lucy_store *s, lucy_store_write_fn fn, void *arg,
                           lucy_store_done_fn done, void *done_arg);

/* A prepared statement for sql on db, from db's cache: prepared once per
 * connection (SQLITE_PREPARE_PERSISTENT), reset and its bindings cleared
 * on every call. Call only inside a lucy_store_write() / _async() or
 * lucy_store_read() function, with the db it was handed.
 * Ownership: the store's. Never finalize it. It stays valid until that
 * function returns (the store then resets it); do not keep it across
 * calls. The statements of a connection are finalized when it closes (the
 * writer reopens its connection after I/O errors).
 * One text is one statement: do not ask for the same text again while you
 * still step through it (that resets it). The cache copies no bindings:
 * bind with SQLITE_STATIC only data that outlives the step.
 * For fixed SQL text (static strings): each distinct text stays prepared
 * until the connection closes, at most 128 per connection.
 * Returns 0 and *out, or LUCY_EINVAL (db is not the connection of the
 * current function on this thread), LUCY_ENOMEM (cache full), or the
 * prepare error (lucy_store_err; sqlite3_errmsg(db) says why). */
int lucy_store_stmt(sqlite3 *db, const char *sql, sqlite3_stmt **out);

/* ---- events: "something was committed" -------------------------------------
 * A write function raises events (bits the modules define, e.g. the
 * outbox's LUCY_OUTBOX_EVENT) with lucy_store_notify(); once the batch is
 * committed and fsynced, every listener of those bits is called, on the
 * writer thread: it must be quick (kick a thread) and must not call
 * lucy_store_write(). A write that fails or is rolled back raises
 * nothing. This is how a producer wakes its consumer without knowing it. */

typedef void (*lucy_store_event_fn)(void *arg, unsigned events);

/* Raises events for the current write. Call only inside a
 * lucy_store_write()/_async() function with its db; elsewhere (a read, a
 * CLI's own connection) it does nothing. */
void lucy_store_notify(sqlite3 *db, unsigned events);

/* Calls fn(arg, raised & events) after each commit that raised any of
 * events. 0, or LUCY_ENOMEM when 8 listeners are registered. Thread-safe;
 * unregister with lucy_store_unlisten() before arg goes away. */
int lucy_store_listen(struct lucy_store *s, unsigned events, lucy_store_event_fn fn, void *arg);

/* Removes the listener (fn, arg); after it returns fn is not running and
 * will not be called with arg. Thread-safe. */
void lucy_store_unlisten(struct lucy_store *s, lucy_store_event_fn fn, void *arg);

/* Runs fn(db, arg) on a read connection. Returns fn's result, or LUCY_EIO
 * if no connection could be opened. Thread-safe. */
int lucy_store_read(struct lucy_store *s, lucy_store_read_fn fn, void *arg);

/* The LUCY_E* code for an SQLite result code (SQLITE_FULL -> LUCY_ENOSPC,
 * SQLITE_IOERR/READONLY/CANTOPEN -> LUCY_EIO, SQLITE_CONSTRAINT ->
 * LUCY_ECONFLICT, SQLITE_BUSY -> LUCY_ETIMEDOUT, SQLITE_CORRUPT/NOTADB ->
 * LUCY_EDBCORRUPT, else LUCY_EIO). */
int lucy_store_err(int sqlite_rc);

/* ---- damage (integrity.c, integrity.h) ------------------------------------
 * Opening refuses (LUCY_EDBCORRUPT, err says what to do) a database that
 * holds fewer commits than the marker DATA_DIR/lucy.db.generation says it
 * had: its file or -wal was lost, truncated or replaced. A corrupt page is
 * found by lucy_store_quick_check() or by any statement that meets it; the
 * store is then "damaged" until it is reopened. Writes go on (each still
 * durable when it returns 0); readiness fails with the remedy. */

/* Runs PRAGMA quick_check on a read connection, stopped after timeout_ms.
 * Returns 0 (sound), LUCY_EDBCORRUPT (damaged: detail gets SQLite's first
 * finding, and the store is marked damaged), LUCY_ETIMEDOUT (not finished)
 * or another LUCY_E* code. Thread-safe; costs a full read of the file. */
int lucy_store_quick_check(struct lucy_store *s, int timeout_ms, char *detail, size_t len);

/* Runs FTS5's 'integrity-check' command on every FTS5 table (quick_check
 * does not look inside them), as a write on the writer thread: every other
 * write waits while it reads the whole index (about 200 ms per 100,000
 * indexed segments). Waits up to timeout_ms (<= 0: no limit); the check
 * still finishes, and marks the store damaged if it must, after a timeout.
 * Returns 0 (sound), LUCY_EDBCORRUPT (damaged: detail gets which table and
 * SQLite's words, and the store is marked damaged), LUCY_ETIMEDOUT, or
 * another LUCY_E* code (the write could not run). Thread-safe. */
int lucy_store_fts_check(struct lucy_store *s, int timeout_ms, char *detail, size_t len);

/* Wall-clock ms when lucy_store_quick_check() last finished (with any
 * result but a timeout); 0 = never. Thread-safe. */
int64_t lucy_store_checked_at_ms(struct lucy_store *s);

/* Marks the store damaged, with detail (copied). Thread-safe. */
void lucy_store_mark_damaged(struct lucy_store *s, const char *detail);

/* 1 when the store was found damaged since it was opened (detail, len
 * bytes, gets why), else 0. Thread-safe, cheap. */
int lucy_store_damaged(struct lucy_store *s, char *detail, size_t len);

/* Path of the database file (owned by the store). */
const char *lucy_store_path(struct lucy_store *s);

/* Number of batches committed and writes in them, for metrics. */
void lucy_store_stats(struct lucy_store *s, unsigned long long *batches,
                      unsigned long long *writes);

/* One migration: applied once, in order of version, in a transaction. */
struct lucy_migration {
    int version;      /* strictly increasing */
    const char *name; /* what it adds */
    const char *sql;  /* one or more statements */
};
extern const struct lucy_migration lucy_migrations[];
extern const int lucy_migrations_count;

#endif
