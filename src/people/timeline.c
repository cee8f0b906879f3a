/*
 * timeline.c - a person's calls and messages in one list, newest first
 * (GET /people/{id}/timeline, the MCP get_person tool): the one place that
 * reads recording_calls and wa_messages by a person's identifiers.
 *
 * One order for both kinds: time, then kind, then id, all descending, so
 * a cursor of the last (time, kind, id) seen resumes exactly after it.
 * A call's title is made from the person at read time, as GET
 * /recordings/{id} makes it (lucy_call_person_title).
 */
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "../plugins/call_recordings/recording.h"
#include "../store/row.h"
#include "../store/store.h"
#include "people.h"

static const char sql_timeline[] =
    "SELECT t, k, item, direction, number, title, duration_s, type, text, started_at_ms,"
    " utc_offset_min, started_at_local FROM ("
    " SELECT coalesce(c.started_at_ms, r.mtime_ns / 1000000) AS t, 'call' AS k,"
    "  c.recording_id AS item, c.direction, coalesce(c.number_e164, c.number_raw) AS number,"
    "  c.title, r.duration_s, NULL AS type, NULL AS text, c.started_at_ms, c.utc_offset_min,"
    "  c.started_at_local"
    "  FROM recording_calls c JOIN recordings r ON r.id = c.recording_id"
    "  WHERE c.number_e164 IN (SELECT value FROM people_identifiers"
    "   WHERE person = ?1 AND kind = 'phone')"
    " UNION ALL"
    " SELECT m.timestamp_s * 1000, 'message', m.wamid, 'in', m.sender, NULL, NULL, m.type,"
    "  m.text, NULL, NULL, NULL FROM wa_messages m WHERE m.sender IN (SELECT value FROM "
    "people_identifiers"
    "   WHERE person = ?1 AND kind IN ('wa_id', 'user_id')))"
    " WHERE t >= ?2 AND t <= ?3 AND (?5 IS NULL OR (t, k, item) < (?4, ?5, ?6))"
    " ORDER BY t DESC, k DESC, item DESC LIMIT ?7";

static json_t *col_json(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL:
        return json_null();
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:
        return json_real(sqlite3_column_double(st, i));
    default:
        return json_string((const char *)sqlite3_column_text(st, i));
    }
}

/* Where lucy_call_person_title() finds its columns in sql_timeline. */
static const struct lucy_call_title_cols title_cols = {
    .direction = 3,
    .started_at_ms = 9,
    .utc_offset_min = 10,
    .started_at_local = 11,
};

/* One row as its timeline item; a call's title with name, the person's
 * display name (NULL: the title stored at scan time). */
static json_t *item_json(sqlite3_stmt *st, const char *name)
{
    int64_t ms = sqlite3_column_int64(st, 0);
    int call = strcmp((const char *)sqlite3_column_text(st, 1), "call") == 0;
    json_t *o =
        json_pack("{s:s,s:I,s:I}", "kind", call ? "call" : "message", "time",
                  (json_int_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000), "time_ms", (json_int_t)ms);
    if (!o)
        return NULL;
    json_object_set_new(o, call ? "recording_id" : "wamid", col_json(st, 2));
    json_object_set_new(o, "direction", col_json(st, 3));
    json_object_set_new(o, call ? "number" : "sender", col_json(st, 4));
    if (call) {
        json_object_set_new(o, "title",
                            name ? lucy_call_person_title(st, &title_cols, name) : col_json(st, 5));
        json_object_set_new(o, "duration_s", col_json(st, 6));
    } else {
        json_object_set_new(o, "type", col_json(st, 7));
        json_object_set_new(o, "text", col_json(st, 8));
    }
    return o;
}

int lucy_people_timeline(sqlite3 *db, const struct lucy_people_timeline_query *q, json_t *items,
                         int *more)
{
    *more = 0;
    json_t *p = NULL;
    int rc = lucy_people_json(db, q->person, 0, &p);
    if (rc)
        return rc;
    const char *name = json_string_value(json_object_get(p, "name"));
    sqlite3_stmt *st;
    rc = lucy_store_stmt(db, sql_timeline, &st);
    if (rc) {
        json_decref(p);
        return rc;
    }
    sqlite3_bind_int64(st, 1, q->person);
    sqlite3_bind_int64(st, 2, q->from_ms);
    sqlite3_bind_int64(st, 3, q->to_ms);
    sqlite3_bind_int64(st, 4, q->after_time_ms);
    lucy_row_bind_text(st, 5, q->after_kind);
    lucy_row_bind_text(st, 6, q->after_item);
    sqlite3_bind_int(st, 7, q->limit + 1); /* one more: is there a next page? */
    int n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n++ == q->limit) {
            *more = 1;
            continue;
        }
        json_t *o = item_json(st, name);
        if (!o || json_array_append_new(items, o)) {
            sqlite3_reset(st);
            json_decref(p);
            return LUCY_ENOMEM;
        }
    }
    json_decref(p);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}
