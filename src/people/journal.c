/*
 * journal.c - merges, splits and aliases, each journaled with exactly the
 * rows it moved, and their undo (people.h, DESIGN §12).
 *
 * Rows keep their ids through every operation: a merge only re-points the
 * other person's identifiers and names and deletes its people row; the
 * journal keeps that row (id, created_at_ms) and the moved row ids, so the
 * undo re-creates the person under the same id (people.id is AUTOINCREMENT:
 * never reused) and points the same rows back. GET /people/{id} of both is
 * then what it was. An alias change keeps the replaced rows whole.
 *
 * Undo is refused (LUCY_ECONFLICT) when a later entry that is still in
 * force names either person of the entry: its rows may have moved since.
 * Undoing in reverse order always works. Rows that came without a journal
 * entry (a name or identifier observed after a merge) stay where they are,
 * except names seen with an identifier the undo moves: they follow it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../clock.h"
#include "../error.h"
#include "../store/row.h"
#include "../store/store.h"
#include "people.h"

/* Runs one statement whose ?1.. are the int64 values args[0..n). */
static int exec_ints(sqlite3 *db, const char *sql, const int64_t *args, int n)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql, &st);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++)
        sqlite3_bind_int64(st, i + 1, args[i]);
    return lucy_row_step_done(st);
}

/* The first integer column of the first row of sql(args), in *out.
 * LUCY_ENOTFOUND when there is no row. */
static int query_int(sqlite3 *db, const char *sql, const int64_t *args, int n, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql, &st);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++)
        sqlite3_bind_int64(st, i + 1, args[i]);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
}

/* A JSON array of the ids sql(args) returns. */
static int query_ids(sqlite3 *db, const char *sql, const int64_t *args, int n, json_t *arr)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql, &st);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++)
        sqlite3_bind_int64(st, i + 1, args[i]);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(arr, json_integer(sqlite3_column_int64(st, 0)));
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

static int journal_add(sqlite3 *db, const char *op, int is_auto, int64_t person, int64_t other,
                       json_t *data, int64_t *seq)
{
    char *text = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        return LUCY_ENOMEM;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "INSERT INTO people_journal (at_ms, op, auto, person, other, data) "
                             "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                             &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, lucy_wall_ms());
        sqlite3_bind_text(st, 2, op, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, is_auto != 0);
        sqlite3_bind_int64(st, 4, person);
        if (other)
            sqlite3_bind_int64(st, 5, other);
        sqlite3_bind_text(st, 6, text, -1, SQLITE_TRANSIENT);
        rc = lucy_row_step_done(st);
    }
    free(text);
    if (rc == 0 && seq)
        *seq = sqlite3_last_insert_rowid(db);
    return rc;
}

static const char sql_created[] = "SELECT created_at_ms FROM people WHERE id = ?1";

/* ---- merge ---------------------------------------------------------------- */

int lucy_people_merge(sqlite3 *db, int64_t id, int64_t other, int is_auto, int64_t *seq)
{
    if (id == other)
        return LUCY_EINVAL;
    int64_t created, ignored, a[2] = {id, other};
    int rc = query_int(db, sql_created, &id, 1, &ignored);
    if (rc == 0)
        rc = query_int(db, sql_created, &other, 1, &created);
    if (rc)
        return rc;
    json_t *data =
        json_pack("{s:I,s:[],s:[]}", "created_at_ms", (json_int_t)created, "identifiers", "names");
    if (!data)
        return LUCY_ENOMEM;
    rc = query_ids(db, "SELECT id FROM people_identifiers WHERE person = ?1 ORDER BY id", &other, 1,
                   json_object_get(data, "identifiers"));
    if (rc == 0)
        rc = query_ids(db, "SELECT id FROM people_names WHERE person = ?1 ORDER BY id", &other, 1,
                       json_object_get(data, "names"));
    if (rc == 0)
        rc = exec_ints(db, "UPDATE people_identifiers SET person = ?1 WHERE person = ?2", a, 2);
    if (rc == 0)
        rc = exec_ints(db, "UPDATE people_names SET person = ?1 WHERE person = ?2", a, 2);
    if (rc == 0)
        rc = exec_ints(db, "DELETE FROM people WHERE id = ?1", &other, 1);
    if (rc == 0)
        rc = journal_add(db, "merge", is_auto, id, other, data, seq);
    json_decref(data);
    return rc;
}

/* ---- split ---------------------------------------------------------------- */

int lucy_people_split(sqlite3 *db, int64_t id, const char *kind, const char *value, int64_t *new_id,
                      int64_t *seq)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(
        db, "SELECT id, person FROM people_identifiers WHERE kind = ?1 AND value = ?2", &st);
    if (rc)
        return rc;
    lucy_row_bind_text(st, 1, kind);
    lucy_row_bind_text(st, 2, value);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
    int64_t ident = sqlite3_column_int64(st, 0);
    if (sqlite3_column_int64(st, 1) != id)
        return LUCY_ENOTFOUND;
    int64_t count = 0, now_ms = lucy_wall_ms(), split_to = 0;
    rc = query_int(db, "SELECT count(*) FROM people_identifiers WHERE person = ?1", &id, 1, &count);
    if (rc == 0 && count < 2)
        return LUCY_EINVAL; /* nothing would be left behind */
    if (rc == 0)
        rc = exec_ints(db, "INSERT INTO people (created_at_ms) VALUES (?1)", &now_ms, 1);
    split_to = sqlite3_last_insert_rowid(db);
    json_t *data = json_pack("{s:I,s:[I],s:[]}", "created_at_ms", (json_int_t)now_ms, "identifiers",
                             (json_int_t)ident, "names");
    if (!data)
        return LUCY_ENOMEM;
    int64_t args[3] = {split_to, ident, id};
    if (rc == 0)
        rc = query_ids(db,
                       "SELECT id FROM people_names WHERE identifier = ?2 AND person = ?3 "
                       "AND ?1 IS NOT NULL ORDER BY id",
                       args, 3, json_object_get(data, "names"));
    if (rc == 0)
        rc = exec_ints(db, "UPDATE people_identifiers SET person = ?1 WHERE id = ?2", args, 2);
    if (rc == 0)
        rc = exec_ints(db,
                       "UPDATE people_names SET person = ?1 WHERE identifier = ?2 AND person = ?3",
                       args, 3);
    if (rc == 0)
        rc = journal_add(db, "split", 0, id, split_to, data, seq);
    json_decref(data);
    if (rc == 0 && new_id)
        *new_id = split_to;
    return rc;
}

/* ---- alias ---------------------------------------------------------------- */

static const char sql_alias_rows[] =
    "SELECT json_group_array(json_object('id', id, 'identifier', identifier, 'name', name, "
    "'first_seen_ms', first_seen_ms, 'last_seen_ms', last_seen_ms)) FROM "
    "(SELECT * FROM people_names WHERE person = ?1 AND source = 'alias' ORDER BY id)";

int lucy_people_set_alias(sqlite3 *db, int64_t id, const char *alias, int64_t at_ms, int64_t *seq)
{
    int64_t ignored;
    int rc = query_int(db, sql_created, &id, 1, &ignored);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = lucy_store_stmt(db, sql_alias_rows, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    json_t *before =
        rc == SQLITE_ROW ? json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL) : NULL;
    if (rc != SQLITE_ROW)
        return lucy_store_err(rc);
    json_t *data = json_pack("{s:o,s:n}", "before", before ? before : json_array(), "after");
    if (!data)
        return LUCY_ENOMEM;
    rc = exec_ints(db, "DELETE FROM people_names WHERE person = ?1 AND source = 'alias'", &id, 1);
    if (rc == 0 && alias) {
        rc = lucy_store_stmt(db,
                             "INSERT INTO people_names (person, name, source, first_seen_ms, "
                             "last_seen_ms) VALUES (?1, ?2, 'alias', ?3, ?3)",
                             &st);
        if (rc == 0) {
            sqlite3_bind_int64(st, 1, id);
            lucy_row_bind_text(st, 2, alias);
            sqlite3_bind_int64(st, 3, at_ms);
            rc = lucy_row_step_done(st);
        }
        if (rc == 0)
            json_object_set_new(data, "after", json_integer(sqlite3_last_insert_rowid(db)));
    }
    if (rc == 0)
        rc = journal_add(db, "alias", 0, id, 0, data, seq);
    json_decref(data);
    return rc;
}

/* ---- undo ----------------------------------------------------------------- */

struct entry {
    int64_t seq, person, other;
    const char *data; /* JSON text, valid during the undo */
};

/* A merge: the other person back under its id, with its rows. */
static int undo_merge(sqlite3 *db, const struct entry *e)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "INSERT INTO people (id, created_at_ms) "
                             "VALUES (?1, json_extract(?2, '$.created_at_ms'))",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, e->other);
    sqlite3_bind_text(st, 2, e->data, -1, SQLITE_STATIC);
    rc = lucy_row_step_done(st);
    if (rc == 0)
        rc =
            lucy_store_stmt(db,
                            "UPDATE people_identifiers SET person = ?1 WHERE person = ?2 AND id IN "
                            "(SELECT value FROM json_each(?3, '$.identifiers'))",
                            &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, e->other);
        sqlite3_bind_int64(st, 2, e->person);
        sqlite3_bind_text(st, 3, e->data, -1, SQLITE_STATIC);
        rc = lucy_row_step_done(st);
    }
    if (rc == 0)
        rc = lucy_store_stmt(db,
                             "UPDATE people_names SET person = ?1 WHERE person = ?2 AND ("
                             "id IN (SELECT value FROM json_each(?3, '$.names')) OR "
                             "identifier IN (SELECT value FROM json_each(?3, '$.identifiers')))",
                             &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, e->other);
        sqlite3_bind_int64(st, 2, e->person);
        sqlite3_bind_text(st, 3, e->data, -1, SQLITE_STATIC);
        rc = lucy_row_step_done(st);
    }
    return rc;
}

/* A split: the new person's rows back, the new person gone. */
static int undo_split(sqlite3 *db, const struct entry *e)
{
    int64_t a[2] = {e->person, e->other};
    int rc = exec_ints(db, "UPDATE people_identifiers SET person = ?1 WHERE person = ?2", a, 2);
    if (rc == 0)
        rc = exec_ints(db, "UPDATE people_names SET person = ?1 WHERE person = ?2", a, 2);
    if (rc == 0)
        rc = exec_ints(db, "DELETE FROM people WHERE id = ?1", &e->other, 1);
    return rc;
}

/* An alias: the replaced alias rows back, whole. */
static int undo_alias(sqlite3 *db, const struct entry *e)
{
    int rc = exec_ints(db, "DELETE FROM people_names WHERE person = ?1 AND source = 'alias'",
                       &e->person, 1);
    sqlite3_stmt *st;
    if (rc == 0)
        rc = lucy_store_stmt(
            db,
            "INSERT INTO people_names (id, person, identifier, name, source, first_seen_ms, "
            "last_seen_ms) SELECT json_extract(value, '$.id'), ?1, "
            "json_extract(value, '$.identifier'), json_extract(value, '$.name'), 'alias', "
            "json_extract(value, '$.first_seen_ms'), json_extract(value, '$.last_seen_ms') "
            "FROM json_each(?2, '$.before')",
            &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, e->person);
        sqlite3_bind_text(st, 2, e->data, -1, SQLITE_STATIC);
        rc = lucy_row_step_done(st);
    }
    return rc;
}

/* The operations, and how each is undone. */
static const struct {
    const char *op;
    int (*undo)(sqlite3 *db, const struct entry *e);
    int needs_other_free; /* 1: the undo re-creates entry.other under its id */
} ops[] = {
    {"merge", undo_merge, 1},
    {"split", undo_split, 0},
    {"alias", undo_alias, 0},
};

static const char sql_entry[] =
    "SELECT op, person, other, data, undone_at_ms FROM people_journal WHERE seq = ?1";
/* the newest entry in force after seq that names a person of seq's */
static const char sql_later[] =
    "SELECT seq, op FROM people_journal WHERE seq > ?1 AND undone_at_ms IS NULL AND "
    "(person IN (?2, ?3) OR other IN (?2, ?3)) ORDER BY seq DESC LIMIT 1";

int lucy_people_undo(sqlite3 *db, int64_t seq, int64_t *person, const char **op, char *why,
                     size_t whylen)
{
    snprintf(why, whylen, "%s", "");
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_entry, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, seq);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
    size_t k = 0;
    const char *name = (const char *)sqlite3_column_text(st, 0);
    while (k < sizeof ops / sizeof ops[0] && (!name || strcmp(ops[k].op, name) != 0))
        k++;
    if (k == sizeof ops / sizeof ops[0])
        return LUCY_ECORRUPT;
    struct entry e = {seq, sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2), NULL};
    if (person)
        *person = e.person;
    if (op)
        *op = ops[k].op;
    if (sqlite3_column_type(st, 4) != SQLITE_NULL) {
        snprintf(why, whylen, "history entry %lld was undone already", (long long)seq);
        return LUCY_ECONFLICT;
    }
    char *data = lucy_row_dup(st, 3);
    if (!data)
        return LUCY_ENOMEM;
    e.data = data;
    int64_t later = 0;
    rc = lucy_store_stmt(db, sql_later, &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_bind_int64(st, 2, e.person);
        sqlite3_bind_int64(st, 3, e.other ? e.other : e.person);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            later = sqlite3_column_int64(st, 0);
            snprintf(why, whylen,
                     "history entry %lld (%s) changed the same persons later; undo it first",
                     (long long)later, (const char *)sqlite3_column_text(st, 1));
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
    }
    int64_t ignored;
    if (rc == 0 && !later && ops[k].needs_other_free &&
        query_int(db, sql_created, &e.other, 1, &ignored) == 0) {
        snprintf(why, whylen, "person %lld exists again; it cannot be restored",
                 (long long)e.other);
        later = -1;
    }
    if (rc == 0 && later)
        rc = LUCY_ECONFLICT;
    if (rc == 0)
        rc = ops[k].undo(db, &e);
    int64_t a[2] = {lucy_wall_ms(), seq};
    if (rc == 0)
        rc = exec_ints(db, "UPDATE people_journal SET undone_at_ms = ?1 WHERE seq = ?2", a, 2);
    free(data);
    return rc;
}

/* ---- history -------------------------------------------------------------- */

int lucy_people_history(sqlite3 *db, int64_t id, json_t **out)
{
    *out = NULL;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "SELECT seq, at_ms, op, auto, person, other, data, undone_at_ms "
                             "FROM people_journal WHERE person = ?1 OR other = ?1 "
                             "ORDER BY seq DESC LIMIT 1000",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    json_t *arr = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *data = (const char *)sqlite3_column_text(st, 6);
        json_t *d = data ? json_loads(data, 0, NULL) : NULL;
        json_t *e = json_pack(
            "{s:I,s:I,s:s,s:b,s:I,s:o,s:o,s:o}", "seq", (json_int_t)sqlite3_column_int64(st, 0),
            "at_ms", (json_int_t)sqlite3_column_int64(st, 1), "op",
            (const char *)sqlite3_column_text(st, 2), "auto", sqlite3_column_int(st, 3), "person",
            (json_int_t)sqlite3_column_int64(st, 4), "other",
            sqlite3_column_type(st, 5) == SQLITE_NULL ? json_null()
                                                      : json_integer(sqlite3_column_int64(st, 5)),
            "data", d ? d : json_null(), "undone_at_ms",
            sqlite3_column_type(st, 7) == SQLITE_NULL ? json_null()
                                                      : json_integer(sqlite3_column_int64(st, 7)));
        if (!e) {
            json_decref(arr);
            return LUCY_ENOMEM;
        }
        json_array_append_new(arr, e);
    }
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return lucy_store_err(rc);
    }
    *out = arr;
    return 0;
}
