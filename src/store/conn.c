/*
 * conn.c - the store's connections and their statement caches (see
 * store_int.h; the public face is lucy_store_stmt() in store.h).
 *
 * Statement cache: every connection the store hands out (the writer's and
 * each pooled reader) is a struct conn that keeps the statements prepared
 * through lucy_store_stmt() (SQLITE_PREPARE_PERSISTENT), keyed by SQL
 * text. A thread-local pointer names the connection the current write or
 * read function runs on; statements it used are reset after the function
 * returns (so no read snapshot or savepoint is left open) and finalized
 * when the connection closes (the writer reopens after I/O errors). The
 * writer's own BEGIN/SAVEPOINT/RELEASE/COMMIT use the same cache: parsing
 * SQL costs more than running these.
 *
 * The writer connection keeps temporary data in memory (temp_store=MEMORY):
 * the savepoints' sub-journal (the original of every page a write changes,
 * for ROLLBACK TO) would otherwise spill to a temp file in /var/tmp past
 * 64 KiB, costing a write per page on every batch. It holds at most one
 * batch's pages and is no part of durability (the WAL is).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "../log.h"
#include "store.h"
#include "store_int.h"

__thread struct conn *lucy_store_current_conn;

int lucy_store_exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* ---- connections and their statement caches ------------------------------ */

int lucy_store_conn_open(const char *path, int readonly, struct conn **out)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return SQLITE_NOMEM;
    int rc = sqlite3_open_v2(
        path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(c->db, 5000);
    /* Keep the -wal and -shm files when the last connection closes: a
     * clean stop must not leave lucy unable to start again on a disk that
     * filled up meanwhile (recreating them needs space; reads and /health
     * must work without any). SQLITE_FCNTL_PERSIST_WAL, sqlite3.h. */
    int persist = 1;
    if (rc == SQLITE_OK)
        sqlite3_file_control(c->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    if (rc == SQLITE_OK && !readonly)
        rc = lucy_store_exec(c->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                                    "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;");
    if (rc == SQLITE_OK && readonly)
        rc = lucy_store_exec(c->db, "PRAGMA query_only=1; PRAGMA foreign_keys=ON;");
    if (rc != SQLITE_OK) {
        sqlite3_close(c->db);
        free(c);
        return rc;
    }
    *out = c;
    return SQLITE_OK;
}

/* Finalizes the cached statements, then closes the connection. */
void lucy_store_conn_close(struct conn *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n_stmts; i++) {
        sqlite3_finalize(c->stmts[i].st);
        free(c->stmts[i].sql);
    }
    sqlite3_close(c->db);
    free(c);
}

/* Resets every statement handed out since the last call (a SELECT left on
 * a row would keep its read snapshot; a half-run write would block
 * RELEASE/COMMIT). */
void lucy_store_conn_reset(struct conn *c)
{
    for (int i = 0; i < c->n_stmts; i++)
        if (c->stmts[i].used) {
            sqlite3_reset(c->stmts[i].st);
            c->stmts[i].used = 0;
        }
}

/* The cached statement for sql on c, prepared on first use. */
static int conn_stmt(struct conn *c, const char *sql, sqlite3_stmt **out)
{
    struct cached_stmt *hit = NULL;
    for (int i = 0; i < c->n_stmts && !hit; i++) /* usual case: the caller's static text */
        if (c->stmts[i].key == sql && strcmp(c->stmts[i].sql, sql) == 0)
            hit = &c->stmts[i];
    for (int i = 0; i < c->n_stmts && !hit; i++)
        if (strcmp(c->stmts[i].sql, sql) == 0)
            hit = &c->stmts[i];
    if (hit) {
        hit->key = sql;
        sqlite3_reset(hit->st);
        sqlite3_clear_bindings(hit->st);
    } else {
        if (c->n_stmts == STMT_CACHE_MAX) {
            lucy_log(LUCY_LOG_ERROR, "store statement cache full; this is a bug in lucy", "{s:i}",
                     "statements", c->n_stmts);
            return LUCY_ENOMEM;
        }
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
        if (rc != SQLITE_OK)
            return lucy_store_err(rc);
        char *copy = strdup(sql);
        if (!copy) {
            sqlite3_finalize(st);
            return LUCY_ENOMEM;
        }
        hit = &c->stmts[c->n_stmts++];
        *hit = (struct cached_stmt){.key = sql, .sql = copy, .st = st};
    }
    hit->used = 1;
    *out = hit->st;
    return 0;
}

int lucy_store_stmt(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
    struct conn *c = lucy_store_current_conn;
    *out = NULL;
    if (!c || c->db != db || !sql)
        return LUCY_EINVAL;
    return conn_stmt(c, sql, out);
}

/* Runs one cached statement without parameters to its end (BEGIN, COMMIT,
 * SAVEPOINT ...). Returns the SQLite result code. */
int lucy_store_conn_run(struct conn *c, const char *sql)
{
    sqlite3_stmt *st;
    int err = conn_stmt(c, sql, &st);
    if (err) /* cannot prepare or cache: let sqlite3_exec say why */
        return lucy_store_exec(c->db, sql);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}
