/*
 * people.h - who a call or a message is with (DESIGN §12), a core module
 * below both plugins: they call it, it knows neither.
 *
 * A person is an id with identifiers (phone = E.164, wa_id, user_id; each
 * (kind, value) belongs to exactly one person) and every name seen for it,
 * with its source and when. Producers call lucy_people_observe() inside
 * their own store write; the user merges, splits and names persons through
 * the /people routes (routes.c). Every merge, split and alias change - and
 * every automatic link - is a row of the journal, undoable exactly while no
 * later entry touches the same persons (journal.c).
 *
 * Tables (migration 45, written only by people.c and journal.c):
 *   people             id (AUTOINCREMENT: an undone merge gets its id back),
 *                      created_at_ms
 *   people_identifiers id, person, kind, value, source, first_seen_ms;
 *                      UNIQUE (kind, value)
 *   people_names       id, person, identifier (the one it was seen with,
 *                      NULL for an alias), name, source, first/last_seen_ms
 *   people_journal     seq, at_ms, op merge|split|alias, auto, person,
 *                      other, data (JSON enough to undo), undone_at_ms
 *
 * Threads: functions taking a db run inside the caller's store write (or
 * read, where said) on that thread; the rest are pure.
 */
#ifndef LUCY_PEOPLE_H
#define LUCY_PEOPLE_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Longest name kept, in bytes; longer ones are cut at a UTF-8 boundary. */
#define LUCY_PEOPLE_NAME_MAX 200
/* Longest identifier value accepted, in bytes. */
#define LUCY_PEOPLE_VALUE_MAX 128

/* One name of a person, as the display-name rule reads it. */
struct lucy_people_name {
    const char *name;     /* UTF-8, not owned */
    const char *source;   /* alias, contact_name, ... (lucy_people_name_source_known) */
    int64_t last_seen_ms; /* newer wins within one source */
};

/* One identifier of a person, as the display-name rule reads it. */
struct lucy_people_ident {
    const char *kind;  /* phone, wa_id, user_id */
    const char *value; /* not owned */
};

/* 1 when kind is phone, wa_id or user_id. Pure. */
int lucy_people_kind_known(const char *kind);

/* 1 when source is a name source: alias, contact_name, call_log_name,
 * caller_name, profile_name, file_name. Pure. */
int lucy_people_name_source_known(const char *source);

/* 0 when value is acceptable for kind: phone = "+" and 7 to 15 digits
 * (E.164, as lucy_phone_normalize() writes it); wa_id = 1 to 32 ASCII
 * digits; user_id = 1 to LUCY_PEOPLE_VALUE_MAX bytes of letters, digits and
 * ". _ - :". Else LUCY_EINVAL. Pure. */
int lucy_people_value_check(const char *kind, const char *value);

/* THE display-name rule (DESIGN §12): the newest name of the best source
 * in the order alias, contact_name, profile_name, call_log_name,
 * caller_name, file_name; without names the first phone in international
 * display form ("+1 415-555-0123", lucy_phone_display), else "+" and the
 * first wa_id, else the first user_id, else "person <id>".
 * Writes the name into out (outlen bytes, truncated safely) and returns the
 * source ("alias", ..., "phone", "wa_id", "user_id", "id"; static). Pure. */
const char *lucy_people_display_pick(const struct lucy_people_name *names, size_t n_names,
                                     const struct lucy_people_ident *idents, size_t n_idents,
                                     int64_t id, char *out, size_t outlen);

/* Records that identifier (kind, value) was seen now, with an optional
 * name (NULL = none) from name_source (one of the name sources), inside the
 * caller's store write (db). Finds the identifier's person or creates one.
 * A new wa_id also adds its E.164 (lucy_phone_from_wa_id): when another
 * person already holds that phone, the new person is merged into it
 * (journaled as an automatic merge: undoable); a new phone likewise joins
 * the person holding wa_id = its digits. The name is recorded with its
 * source and the identifier it came with (last_seen_ms bumped when known);
 * a name with control characters is not recorded, a long one is cut to
 * LUCY_PEOPLE_NAME_MAX bytes. *person_id (may be NULL) = the person.
 * Returns 0, LUCY_EINVAL (unknown kind or source, bad value: nothing
 * written), or a store error (the caller's write should roll back). */
int lucy_people_observe(sqlite3 *db, const char *kind, const char *value, const char *name,
                        const char *name_source, int64_t *person_id);

/* The person holding (kind, value), inside a read or write. 0 and *person,
 * LUCY_ENOTFOUND, or a store error. */
int lucy_people_find(sqlite3 *db, const char *kind, const char *value, int64_t *person);

/* Inside a read or write: the JSON of person id, as GET /people/{id}
 * answers it: {"id","name","name_source","created_at_ms","identifiers":[
 * {"kind","value","source","first_seen_ms"}],"names":[{"name","source",
 * "first_seen_ms","last_seen_ms"}],"calls","messages","last_contact"}.
 * full = 0 leaves out names and the counts (lucy_people_list adds them). *out is a
 * new reference (caller decrefs). 0, LUCY_ENOTFOUND, LUCY_ENOMEM or a
 * store error. */
int lucy_people_json(sqlite3 *db, int64_t id, int full, json_t **out);

/* Inside a read: appends to items (a JSON array) the persons with id >
 * after, by id, at most limit (>= 1), as GET /people lists them: each as
 * lucy_people_json(full = 0) plus "calls", "messages" and "last_contact",
 * counted in the list's own query (lucy_people_list_sql). like: a LIKE
 * pattern (with \ as escape) over names and identifier values, or NULL for
 * everyone. *more = 1 when persons beyond limit exist. 0, LUCY_ENOMEM or a
 * store error. */
int lucy_people_list(sqlite3 *db, const char *like, int64_t after, int limit, json_t *items,
                     int *more);
/* The SQL of lucy_people_list (exported for the query-plan test). */
extern const char lucy_people_list_sql[];

/* Deletes person id's rows: its identifiers, names, the journal entries
 * naming it (they hold its names) and the person. The person is being
 * forgotten (forget.c); the items of other persons are not touched.
 * Inside a store write. 0 or a store error. */
int lucy_people_delete(sqlite3 *db, int64_t id);

/* ---- journal.c: merges, splits, aliases, undo ----------------------------
 * Each runs inside the caller's store write and journals itself; *seq (may
 * be NULL) = the journal entry. Errors: LUCY_ENOTFOUND (no such person or
 * identifier), LUCY_EINVAL (a person with itself; split of a person's only
 * identifier), LUCY_ECONFLICT (undo: see below), store errors. */

/* Moves every identifier and name of person other into person id and
 * deletes other. is_auto marks an automatic link (lucy_people_observe). */
int lucy_people_merge(sqlite3 *db, int64_t id, int64_t other, int is_auto, int64_t *seq);

/* Moves identifier (kind, value) of person id, with the names seen with it,
 * into a new person (*new_id, may be NULL). */
int lucy_people_split(sqlite3 *db, int64_t id, const char *kind, const char *value, int64_t *new_id,
                      int64_t *seq);

/* Replaces person id's alias with alias (NULL = none), at_ms wall ms. The
 * caller has checked alias (no control characters, at most
 * LUCY_PEOPLE_NAME_MAX bytes). */
int lucy_people_set_alias(sqlite3 *db, int64_t id, const char *alias, int64_t at_ms, int64_t *seq);

/* Undoes journal entry seq, restoring exactly the rows it changed.
 * LUCY_ENOTFOUND: no such entry; LUCY_ECONFLICT: already undone, or a
 * later entry that is not undone touches the same persons (undo that one
 * first); why (a sentence) goes into why (whylen bytes). *person and *op
 * (either may be NULL; op static: "merge", "split", "alias") = the entry's
 * first person and operation. */
int lucy_people_undo(sqlite3 *db, int64_t seq, int64_t *person, const char **op, char *why,
                     size_t whylen);

/* Inside a read: the journal entries naming person id, newest first, as a
 * JSON array of {"seq","at_ms","op","auto","person","other","data",
 * "undone_at_ms"} (new reference). 0, LUCY_ENOMEM or a store error. */
int lucy_people_history(sqlite3 *db, int64_t id, json_t **out);

/* ---- timeline.c: a person's calls and messages ----------------------------- */

/* What lucy_people_timeline() reads; from_ms/to_ms are inclusive bounds in
 * Unix ms (INT64_MIN / INT64_MAX: open). The after_* fields are a cursor:
 * the (time_ms, kind, id) of the last item of the previous page, after_kind
 * NULL for the first page. Strings are borrowed for the call. */
struct lucy_people_timeline_query {
    int64_t person;         /* the person's id */
    int64_t from_ms, to_ms; /* time bounds, Unix ms, inclusive */
    int64_t after_time_ms;  /* cursor: the last item's time_ms ... */
    const char *after_kind; /* ... its kind ("call" | "message"); NULL = first page ... */
    const char *after_item; /* ... and its recording id or wamid */
    int limit;              /* items at most, >= 1 */
};

/* Inside a read: appends to items (a JSON array) the person's calls (by its
 * phones, recording_calls) and WhatsApp messages (by its wa_ids and
 * user_ids), newest first, as GET /people/{id}/timeline lists them:
 * {"kind":"call","time","time_ms","recording_id","direction","number",
 * "title","duration_s"} or {"kind":"message","time","time_ms","wamid",
 * "direction","sender","type","text"}. *more = 1 when items beyond
 * q->limit exist. 0, LUCY_ENOTFOUND (no such person), LUCY_ENOMEM or a
 * store error. */
int lucy_people_timeline(sqlite3 *db, const struct lucy_people_timeline_query *q, json_t *items,
                         int *more);

/* ---- plugin.c -------------------------------------------------------------
 * The module as a plugin (src/plugins/plugins.c): its routes (routes.c). */
struct lucy_plugin;
extern const struct lucy_plugin lucy_people_plugin;

#endif
