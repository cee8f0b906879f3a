/*
 * people.c - persons, their identifiers and names: the rules that decide
 * who an identifier belongs to (lucy_people_observe) and what a person is
 * called (lucy_people_display_pick), and a person's JSON (people.h).
 *
 * An identifier is never guessed from a name: persons are joined only by an
 * identifier they share (a wa_id and the phone it spells), and every such
 * join is a journaled merge (journal.c), so a wrong one is undone like a
 * user's. Names are kept, never overwritten: each (name, source, identifier)
 * seen gets a row with first/last seen; the display rule picks among them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../clock.h"
#include "../error.h"
#include "../store/row.h"
#include "../store/store.h"
#include "../utf8.h"
#include "people.h"
#include "phone.h"

/* Name sources, best first (DESIGN §12's display precedence; file_name,
 * which DESIGN does not rank, last), and what an identifier first seen with
 * such a name was seen by. */
static const struct {
    const char *source;       /* people_names.source */
    const char *ident_source; /* people_identifiers.source of a new identifier */
} name_sources[] = {
    {"alias", "user"},
    {"contact_name", "call_recording"},
    {"profile_name", "whatsapp"},
    {"call_log_name", "call_recording"},
    {"caller_name", "call_recording"},
    {"file_name", "call_recording"},
};
#define N_SOURCES (sizeof name_sources / sizeof name_sources[0])

static const char *const kinds[] = {"phone", "wa_id", "user_id"};

static int source_rank(const char *source)
{
    for (size_t i = 0; source && i < N_SOURCES; i++)
        if (strcmp(name_sources[i].source, source) == 0)
            return (int)i;
    return -1;
}

int lucy_people_kind_known(const char *kind)
{
    for (size_t i = 0; kind && i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i], kind) == 0)
            return 1;
    return 0;
}

int lucy_people_name_source_known(const char *source)
{
    return source_rank(source) >= 0;
}

static int all_of(const char *s, size_t from, const char *allowed_extra, int letters)
{
    for (size_t i = from; s[i]; i++) {
        char c = s[i];
        int ok = (c >= '0' && c <= '9') ||
                 (letters && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) ||
                 (allowed_extra && strchr(allowed_extra, c));
        if (!ok)
            return 0;
    }
    return 1;
}

int lucy_people_value_check(const char *kind, const char *value)
{
    if (!lucy_people_kind_known(kind) || !value)
        return LUCY_EINVAL;
    size_t n = strlen(value);
    if (strcmp(kind, "phone") == 0)
        return value[0] == '+' && n >= 8 && n <= 16 && all_of(value, 1, NULL, 0) ? 0 : LUCY_EINVAL;
    if (strcmp(kind, "wa_id") == 0)
        return n >= 1 && n <= 32 && all_of(value, 0, NULL, 0) ? 0 : LUCY_EINVAL;
    return n >= 1 && n <= LUCY_PEOPLE_VALUE_MAX && all_of(value, 0, "._-:", 1) ? 0 : LUCY_EINVAL;
}

const char *lucy_people_display_pick(const struct lucy_people_name *names, size_t n_names,
                                     const struct lucy_people_ident *idents, size_t n_idents,
                                     int64_t id, char *out, size_t outlen)
{
    const struct lucy_people_name *best = NULL;
    int best_rank = (int)N_SOURCES;
    for (size_t i = 0; i < n_names; i++) {
        int r = source_rank(names[i].source);
        if (r < 0 || !names[i].name || !*names[i].name)
            continue;
        if (r < best_rank || (r == best_rank && names[i].last_seen_ms > best->last_seen_ms))
            best = &names[i], best_rank = r;
    }
    if (best) {
        snprintf(out, outlen, "%s", best->name);
        return name_sources[best_rank].source;
    }
    /* no name: the number, in the order phone, wa_id, user_id */
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (size_t i = 0; i < n_idents; i++) {
            if (strcmp(idents[i].kind, kinds[k]) != 0)
                continue;
            if (k == 0)
                lucy_phone_display(idents[i].value, out, outlen);
            else
                snprintf(out, outlen, "%s%s", k == 1 ? "+" : "", idents[i].value);
            return kinds[k];
        }
    snprintf(out, outlen, "person %lld", (long long)id);
    return "id";
}

/* ---- observe -------------------------------------------------------------- */

int lucy_people_find(sqlite3 *db, const char *kind, const char *value, int64_t *person)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(
        db, "SELECT person FROM people_identifiers WHERE kind = ?1 AND value = ?2", &st);
    if (rc)
        return rc;
    lucy_row_bind_text(st, 1, kind);
    lucy_row_bind_text(st, 2, value);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *person = sqlite3_column_int64(st, 0);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
}

static int person_new(sqlite3 *db, int64_t now_ms, int64_t *id)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "INSERT INTO people (created_at_ms) VALUES (?1)", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    rc = lucy_row_step_done(st);
    *id = sqlite3_last_insert_rowid(db);
    return rc;
}

static int ident_add(sqlite3 *db, int64_t person, const char *kind, const char *value,
                     const char *source, int64_t now_ms, int64_t *ident)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "INSERT INTO people_identifiers (person, kind, value, source, "
                             "first_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, person);
    lucy_row_bind_text(st, 2, kind);
    lucy_row_bind_text(st, 3, value);
    lucy_row_bind_text(st, 4, source);
    sqlite3_bind_int64(st, 5, now_ms);
    rc = lucy_row_step_done(st);
    if (ident)
        *ident = sqlite3_last_insert_rowid(db);
    return rc;
}

static int ident_id(sqlite3 *db, const char *kind, const char *value, int64_t *ident)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "SELECT id FROM people_identifiers WHERE kind = ?1 AND value = ?2",
                             &st);
    if (rc)
        return rc;
    lucy_row_bind_text(st, 1, kind);
    lucy_row_bind_text(st, 2, value);
    rc = sqlite3_step(st);
    *ident = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

/* The name as stored: NULL when it must not be (empty, control characters,
 * not UTF-8), else a copy cut to LUCY_PEOPLE_NAME_MAX bytes at a UTF-8
 * boundary (caller frees). *nomem set when allocation failed. */
static char *name_clean(const char *name, int *nomem)
{
    *nomem = 0;
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || !lucy_utf8_valid(name, n))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return NULL;
    if (n > LUCY_PEOPLE_NAME_MAX) {
        n = LUCY_PEOPLE_NAME_MAX;
        while (n > 0 && ((unsigned char)name[n] & 0xc0) == 0x80)
            n--; /* name[n] continues a character: cut before that character */
    }
    char *s = strndup(name, n);
    *nomem = !s;
    return s;
}

static int name_seen(sqlite3 *db, int64_t person, int64_t ident, const char *name,
                     const char *source, int64_t now_ms)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "UPDATE people_names SET last_seen_ms = max(last_seen_ms, ?5) "
                             "WHERE person = ?1 AND identifier IS ?2 AND name = ?3 AND source = ?4",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, person);
    if (ident)
        sqlite3_bind_int64(st, 2, ident);
    lucy_row_bind_text(st, 3, name);
    lucy_row_bind_text(st, 4, source);
    sqlite3_bind_int64(st, 5, now_ms);
    rc = lucy_row_step_done(st);
    if (rc || sqlite3_changes(db) > 0)
        return rc;
    rc = lucy_store_stmt(db,
                         "INSERT INTO people_names (person, identifier, name, source, "
                         "first_seen_ms, last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, person);
    if (ident)
        sqlite3_bind_int64(st, 2, ident);
    lucy_row_bind_text(st, 3, name);
    lucy_row_bind_text(st, 4, source);
    sqlite3_bind_int64(st, 5, now_ms);
    return lucy_row_step_done(st);
}

/* A new identifier's twin: a wa_id's phone, a phone's wa_id. Writes the
 * twin's kind and value; 0 when there is none. */
static int twin_of(const char *kind, const char *value, const char **twin_kind,
                   char twin[LUCY_PHONE_E164_SIZE])
{
    if (strcmp(kind, "wa_id") == 0 && lucy_phone_from_wa_id(value, twin) == LUCY_PHONE_OK) {
        *twin_kind = "phone";
        return 1;
    }
    if (strcmp(kind, "phone") == 0) {
        snprintf(twin, LUCY_PHONE_E164_SIZE, "%s", value + 1);
        *twin_kind = "wa_id";
        return 1;
    }
    return 0;
}

/* A new person just made for (kind, value): joins the person holding the
 * identifier's twin (an automatic, journaled merge), or - for a wa_id whose
 * phone nobody holds - gets that phone too. *person follows the merge. */
static int link_twin(sqlite3 *db, const char *kind, const char *value, int64_t now_ms,
                     int64_t *person)
{
    const char *twin_kind;
    char twin[LUCY_PHONE_E164_SIZE];
    if (!twin_of(kind, value, &twin_kind, twin))
        return 0;
    int64_t holder;
    int rc = lucy_people_find(db, twin_kind, twin, &holder);
    if (rc == 0 && holder != *person) {
        rc = lucy_people_merge(db, holder, *person, 1, NULL);
        if (rc == 0)
            *person = holder;
        return rc;
    }
    if (rc == LUCY_ENOTFOUND && strcmp(twin_kind, "phone") == 0)
        return ident_add(db, *person, twin_kind, twin, "wa_id", now_ms, NULL);
    return rc == LUCY_ENOTFOUND ? 0 : rc;
}

int lucy_people_observe(sqlite3 *db, const char *kind, const char *value, const char *name,
                        const char *name_source, int64_t *person_id)
{
    int rank = source_rank(name_source);
    if (lucy_people_value_check(kind, value) || (name && rank < 0))
        return LUCY_EINVAL;
    int64_t now_ms = lucy_wall_ms(), person = 0, ident = 0;
    int nomem;
    char *clean = name_clean(name, &nomem);
    if (nomem)
        return LUCY_ENOMEM;
    int rc = ident_id(db, kind, value, &ident);
    int created = rc == 0 && ident == 0;
    if (rc == 0 && created) {
        const char *src = rank >= 0 ? name_sources[rank].ident_source : "observed";
        rc = person_new(db, now_ms, &person);
        if (rc == 0)
            rc = ident_add(db, person, kind, value, src, now_ms, &ident);
    } else if (rc == 0) {
        rc = lucy_people_find(db, kind, value, &person);
    }
    /* the name first, so an automatic merge carries it and its undo
     * gives it back */
    if (rc == 0 && clean)
        rc = name_seen(db, person, ident, clean, name_sources[rank].source, now_ms);
    if (rc == 0 && created)
        rc = link_twin(db, kind, value, now_ms, &person);
    free(clean);
    if (rc == 0 && person_id)
        *person_id = person;
    return rc;
}

/* ---- a person's JSON ------------------------------------------------------ */

/* The most names and identifiers the display rule looks at; a person with
 * more is named from the first ones (by source rank, newest first). */
#define PICK_MAX 64

static int read_display(sqlite3 *db, int64_t id, json_t *p)
{
    sqlite3_stmt *st;
    int rc =
        lucy_store_stmt(db,
                        "SELECT name, source, last_seen_ms FROM people_names WHERE person = ?1 "
                        "ORDER BY last_seen_ms DESC, id LIMIT 64",
                        &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    struct lucy_people_name names[PICK_MAX];
    char *owned[2 * PICK_MAX];
    size_t n = 0, n_owned = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < PICK_MAX) {
        names[n].name = owned[n_owned++] = lucy_row_dup(st, 0);
        names[n].source = owned[n_owned++] = lucy_row_dup(st, 1);
        names[n].last_seen_ms = sqlite3_column_int64(st, 2);
        n++;
    }
    json_t *idents = json_object_get(p, "identifiers");
    struct lucy_people_ident ids[PICK_MAX];
    size_t n_ids = 0;
    for (size_t i = 0; i < json_array_size(idents) && n_ids < PICK_MAX; i++) {
        json_t *x = json_array_get(idents, i);
        ids[n_ids].kind = json_string_value(json_object_get(x, "kind"));
        ids[n_ids].value = json_string_value(json_object_get(x, "value"));
        n_ids += ids[n_ids].kind && ids[n_ids].value;
    }
    char out[LUCY_PEOPLE_NAME_MAX + 32];
    const char *source = lucy_people_display_pick(names, n, ids, n_ids, id, out, sizeof out);
    json_object_set_new(p, "name", json_string(out));
    json_object_set_new(p, "name_source", json_string(source));
    for (size_t i = 0; i < n_owned; i++)
        free(owned[i]);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

/* Appends one object per row of st to arr: column i named names[i];
 * integer and text columns as such, NULL as null. */
static int rows_json(sqlite3_stmt *st, const char *const *names, int n, json_t *arr)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *o = json_object();
        for (int i = 0; i < n; i++) {
            int t = sqlite3_column_type(st, i);
            json_t *v = t == SQLITE_INTEGER ? json_integer(sqlite3_column_int64(st, i))
                        : t == SQLITE_NULL  ? json_null()
                                            : json_string((const char *)sqlite3_column_text(st, i));
            json_object_set_new(o, names[i], v ? v : json_null());
        }
        json_array_append_new(arr, o);
    }
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

static const char sql_person[] = "SELECT created_at_ms FROM people WHERE id = ?1";
static const char sql_idents[] = "SELECT kind, value, source, first_seen_ms FROM "
                                 "people_identifiers WHERE person = ?1 ORDER BY kind, value";
/* one entry per (name, source): the rows the same name left through
 * several identifiers are one name to the user */
static const char sql_names[] =
    "SELECT name, source, min(first_seen_ms), max(last_seen_ms) FROM people_names "
    "WHERE person = ?1 GROUP BY name, source ORDER BY max(last_seen_ms) DESC, name, source";
/* A person's counts, one rule for GET /people/{id} and the list: calls by
 * its phones, messages by its WhatsApp senders, the last of either (Unix
 * s). PERSON is the SQL expression of the person's id (?1, or the list's
 * p.id: correlated subqueries, each an index lookup per person through
 * people_identifiers_by_person, recording_calls_number and
 * wa_messages_by_sender). */
#define PEOPLE_PHONES(PERSON)                                                                      \
    "(SELECT value FROM people_identifiers WHERE person = " PERSON " AND kind = 'phone')"
#define PEOPLE_SENDERS(PERSON)                                                                     \
    "(SELECT value FROM people_identifiers WHERE person = " PERSON                                 \
    " AND kind IN ('wa_id','user_id'))"
#define PEOPLE_COUNTS(PERSON)                                                                      \
    "(SELECT count(*) FROM recording_calls WHERE number_e164 IN " PEOPLE_PHONES(                   \
        PERSON) "),"                                                                               \
                " (SELECT count(*) FROM wa_messages WHERE sender IN " PEOPLE_SENDERS(              \
                    PERSON) "),"                                                                   \
                            " (SELECT max(t) FROM (SELECT max(started_at_ms) / 1000 AS t FROM "    \
                            "recording_calls"                                                      \
                            "  WHERE number_e164 IN " PEOPLE_PHONES(                               \
                                PERSON) " UNION ALL SELECT max(timestamp_s)"                       \
                                        "  FROM wa_messages WHERE sender IN " PEOPLE_SENDERS(      \
                                            PERSON) "))"

static const char sql_counts[] = "SELECT " PEOPLE_COUNTS("?1");

/* Sets "calls", "messages", "last_contact" of p from columns col.. of st. */
static void counts_json(sqlite3_stmt *st, int col, json_t *p)
{
    json_object_set_new(p, "calls", json_integer(sqlite3_column_int64(st, col)));
    json_object_set_new(p, "messages", json_integer(sqlite3_column_int64(st, col + 1)));
    json_object_set_new(p, "last_contact",
                        sqlite3_column_type(st, col + 2) == SQLITE_NULL
                            ? json_null()
                            : json_integer(sqlite3_column_int64(st, col + 2)));
}

const char lucy_people_list_sql[] = "SELECT id, " PEOPLE_COUNTS(
    "p.id") " FROM people p WHERE id > ?1 AND (?2 IS NULL"
            " OR EXISTS (SELECT 1 FROM people_names n WHERE n.person = p.id"
            "  AND n.name LIKE ?2 ESCAPE '\\')"
            " OR EXISTS (SELECT 1 FROM people_identifiers i WHERE i.person = p.id"
            "  AND i.value LIKE ?2 ESCAPE '\\')) ORDER BY id LIMIT ?3";

int lucy_people_list(sqlite3 *db, const char *like, int64_t after, int limit, json_t *items,
                     int *more)
{
    *more = 0;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, lucy_people_list_sql, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, after);
    lucy_row_bind_text(st, 2, like);
    sqlite3_bind_int(st, 3, limit + 1);
    /* collected first: lucy_people_json() below uses the statement cache */
    json_t *counts = json_array();
    json_t *ids = json_array();
    int n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n++ < limit) {
        json_t *c = json_object();
        counts_json(st, 1, c);
        json_array_append_new(counts, c);
        json_array_append_new(ids, json_integer(sqlite3_column_int64(st, 0)));
    }
    *more = rc == SQLITE_ROW;
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
    sqlite3_reset(st);
    for (size_t i = 0; rc == 0 && i < json_array_size(ids); i++) {
        json_t *p = NULL;
        rc = lucy_people_json(db, json_integer_value(json_array_get(ids, i)), 0, &p);
        if (rc == 0) {
            json_object_update(p, json_array_get(counts, i));
            json_array_append_new(items, p);
        }
    }
    json_decref(counts);
    json_decref(ids);
    return rc;
}

int lucy_people_delete(sqlite3 *db, int64_t id)
{
    static const char *const sql[] = {
        "DELETE FROM people_names WHERE person = ?1",
        "DELETE FROM people_identifiers WHERE person = ?1",
        "DELETE FROM people_journal WHERE person = ?1 OR other = ?1",
        "DELETE FROM people WHERE id = ?1",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st;
        int err = lucy_store_stmt(db, sql[i], &st);
        if (err)
            return err;
        sqlite3_bind_int64(st, 1, id);
        if ((err = lucy_row_step_done(st)) != 0)
            return err;
    }
    return 0;
}

int lucy_people_json(sqlite3 *db, int64_t id, int full, json_t **out)
{
    *out = NULL;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_person, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
    json_t *p = json_object();
    json_object_set_new(p, "id", json_integer(id));
    json_object_set_new(p, "name", json_null());
    json_object_set_new(p, "name_source", json_null());
    json_object_set_new(p, "created_at_ms", json_integer(sqlite3_column_int64(st, 0)));
    static const char *const ident_cols[] = {"kind", "value", "source", "first_seen_ms"};
    static const char *const name_cols[] = {"name", "source", "first_seen_ms", "last_seen_ms"};
    json_t *idents = json_array();
    json_object_set_new(p, "identifiers", idents);
    rc = lucy_store_stmt(db, sql_idents, &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, id);
        rc = rows_json(st, ident_cols, 4, idents);
    }
    if (rc == 0)
        rc = read_display(db, id, p);
    if (rc == 0 && full) {
        json_t *names = json_array();
        json_object_set_new(p, "names", names);
        rc = lucy_store_stmt(db, sql_names, &st);
        if (rc == 0) {
            sqlite3_bind_int64(st, 1, id);
            rc = rows_json(st, name_cols, 4, names);
        }
    }
    if (rc == 0 && full)
        rc = lucy_store_stmt(db, sql_counts, &st);
    if (rc == 0 && full) {
        sqlite3_bind_int64(st, 1, id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            counts_json(st, 0, p);
        rc = rc == SQLITE_ROW ? 0 : lucy_store_err(rc);
    }
    if (rc)
        json_decref(p);
    else
        *out = p;
    return rc;
}
