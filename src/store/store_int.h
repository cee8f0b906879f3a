/*
 * store_int.h - what the store's files share (private to src/store/):
 * store.c (the writer, reads, events, damage), conn.c (connections and
 * their statement caches), schema.c (the migrations and their runner).
 */
#ifndef LUCY_STORE_INT_H
#define LUCY_STORE_INT_H

#include <sqlite3.h>
#include <stddef.h>

#define STMT_CACHE_MAX 128 /* per connection; fixed SQL only (see store.h) */

/* One prepared statement of a connection's cache. */
struct cached_stmt {
    const char *key; /* the caller's pointer last seen for this text (a hint only) */
    char *sql;       /* owned copy of the text: the real key */
    sqlite3_stmt *st;
    int used; /* handed out since the last lucy_store_conn_reset() */
};

/* A connection handed to write and read functions, with its statements. */
struct conn {
    sqlite3 *db;
    unsigned *events; /* the writer's: events raised by the current write (lucy_store_notify) */
    struct cached_stmt stmts[STMT_CACHE_MAX];
    int n_stmts;
};

/* The connection the calling thread's current write/read function runs on
 * (set by store.c around each function; read by lucy_store_stmt). */
extern __thread struct conn *lucy_store_current_conn;

/* sqlite3_exec without callbacks: the SQLite result code. */
int lucy_store_exec(sqlite3 *db, const char *sql);

/* Opens path in WAL mode (writer: synchronous=FULL; readonly: query_only)
 * with the -wal/-shm files kept at close. SQLite result code; *out owned by
 * the caller (lucy_store_conn_close). */
int lucy_store_conn_open(const char *path, int readonly, struct conn **out);

/* Finalizes the cached statements, then closes the connection. NULL ok. */
void lucy_store_conn_close(struct conn *c);

/* Resets every statement handed out since the last call. */
void lucy_store_conn_reset(struct conn *c);

/* Runs one cached statement without parameters to its end (BEGIN, COMMIT,
 * SAVEPOINT ...). Returns the SQLite result code. */
int lucy_store_conn_run(struct conn *c, const char *sql);

/* Applies every migration newer than the database's version (schema.c),
 * each in its own transaction. 0 or a LUCY_E* code with err set. */
int lucy_store_migrate(sqlite3 *db, char *err, size_t errlen);

#endif
