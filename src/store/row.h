/*
 * row.h - the small SQLite row helpers every module used to write for
 * itself: copy or duplicate a text column, bind text or NULL, step a
 * statement that returns no row. Use them on statements from
 * lucy_store_stmt() (store.h), inside a store read or write function.
 * All are thread-safe in the sense of SQLite's serialized statements:
 * call them only on the thread that runs the store function.
 */
#ifndef LUCY_STORE_ROW_H
#define LUCY_STORE_ROW_H

#include <sqlite3.h>
#include <stddef.h>

/* Copies text column col of the current row into dst (size bytes,
 * NUL-terminated, truncated to fit); NULL becomes "". */
void lucy_row_copy(sqlite3_stmt *st, int col, char *dst, size_t size);

/* A malloc'd copy of text column col (caller frees), or NULL when the
 * column is NULL or memory ran out. */
char *lucy_row_dup(sqlite3_stmt *st, int col);

/* Binds s to parameter i as text (SQLITE_TRANSIENT: SQLite copies it), or
 * NULL when s is NULL. Returns SQLite's result code. */
int lucy_row_bind_text(sqlite3_stmt *st, int i, const char *s);

/* Steps a statement that returns no row (INSERT, UPDATE, DELETE). Returns
 * 0 on SQLITE_DONE, else lucy_store_err() of the result (a LUCY_E* code;
 * a constraint violation is LUCY_ECONFLICT). */
int lucy_row_step_done(sqlite3_stmt *st);

/* Prepares sql from the statement cache (lucy_store_stmt) and steps it
 * once with no parameters: for fixed statements that return no row.
 * Returns 0 or a LUCY_E* code. */
int lucy_row_exec(sqlite3 *db, const char *sql);

#endif
