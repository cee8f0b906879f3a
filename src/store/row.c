/*
 * row.c - column copy/dup, bind text-or-null, step-done (see row.h).
 */
#include "row.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

void lucy_row_copy(sqlite3_stmt *st, int col, char *dst, size_t size)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    if (size)
        snprintf(dst, size, "%s", s ? (const char *)s : "");
}

char *lucy_row_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    if (!s)
        return NULL;
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

int lucy_row_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

int lucy_row_step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

int lucy_row_exec(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql, &st);
    return rc ? rc : lucy_row_step_done(st);
}
