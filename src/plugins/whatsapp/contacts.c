/*
 * contacts.c - GET /contacts, GET /contacts/{id}, PUT /contacts/{id}
 * (DESIGN §5 "Contacts").
 *
 * A contact is keyed by its wa_id, or by the business-scoped user_id when a
 * payload carries no wa_id (DESIGN §8). Its alias is the one the user set
 * (PUT), else the profile name from the latest webhook payload; the inbox
 * worker updates profile names and never touches a user's alias.
 *
 * Shapes:
 *   {"id","wa_id","user_id","alias","alias_source":"user"|"profile"|null,
 *    "profile_name","messages","last_message_time"}
 * GET /contacts?limit=&cursor= lists by id (cursor = the last id seen;
 * next_cursor is null at the end). GET /contacts/{id} adds
 * "recent_messages": the latest 20 [{"wamid","type","text","time",
 * "rate_limited","state"}], voice notes with "media":{"state","error_type",
 * "transcript"}. PUT takes {"alias": "..."} (null or "" clears
 * it) and creates the contact if it is not known yet.
 */
#include <stdlib.h>
#include <string.h>

#include "../../error.h"
#include "../../http/http.h"
#include "../../kv/kv.h"
#include "../../lucy.h"
#include "../../store/store.h"
#include "whatsapp.h"

#define LIST_DEFAULT    100
#define LIST_MAX        1000
#define RECENT_MESSAGES 20
#define ALIAS_MAX_BYTES 256

static const char contact_columns[] =
    "id, wa_id, user_id, user_alias, profile_name, messages, last_message_s";

static json_t *col_str(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? json_string((const char *)s) : json_null();
}

static json_t *contact_json(sqlite3_stmt *st)
{
    const unsigned char *user_alias = sqlite3_column_text(st, 3);
    const unsigned char *profile = sqlite3_column_text(st, 4);
    const char *alias = (const char *)(user_alias ? user_alias : profile);
    json_t *c = json_object();
    json_object_set_new(c, "id", col_str(st, 0));
    json_object_set_new(c, "wa_id", col_str(st, 1));
    json_object_set_new(c, "user_id", col_str(st, 2));
    json_object_set_new(c, "alias", alias ? json_string(alias) : json_null());
    json_object_set_new(c, "alias_source",
                        user_alias ? json_string("user")
                        : profile  ? json_string("profile")
                                   : json_null());
    json_object_set_new(c, "profile_name", col_str(st, 4));
    json_object_set_new(c, "messages", json_integer(sqlite3_column_int64(st, 5)));
    json_object_set_new(c, "last_message_time",
                        sqlite3_column_type(st, 6) == SQLITE_NULL
                            ? json_null()
                            : json_integer(sqlite3_column_int64(st, 6)));
    return c;
}

/* ---- GET /contacts -------------------------------------------------------- */

struct list {
    const char *cursor; /* list ids after this one, or NULL */
    int limit;
    json_t *items; /* out */
    const char *next;
};

static int read_list(sqlite3 *db, void *arg)
{
    struct list *l = arg;
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT %s FROM wa_contacts WHERE ?1 IS NULL OR id > ?1 "
             "ORDER BY id LIMIT ?2",
             contact_columns);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    if (l->cursor)
        sqlite3_bind_text(st, 1, l->cursor, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, l->limit + 1);
    int n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n++ == l->limit) {
            l->next = "more";
            break;
        }
        json_array_append_new(l->items, contact_json(st));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

static void list_contacts(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const char *limit_s = lucy_http_query(req, "limit");
    char *end = NULL;
    long limit = limit_s ? strtol(limit_s, &end, 10) : LIST_DEFAULT;
    if (limit_s && (*end || limit < 1 || limit > LIST_MAX)) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0, "limit must be a number from 1 to %d",
                              LIST_MAX);
        return;
    }
    struct list l = {
        .cursor = lucy_http_query(req, "cursor"), .limit = (int)limit, .items = json_array()};
    int rc = lucy_store_read(req->ctx->store, read_list, &l);
    if (rc) {
        json_decref(l.items);
        lucy_http_reply_err(resp, rc, "cannot read contacts from the store; retry later");
        return;
    }
    size_t n = json_array_size(l.items);
    json_t *last = n ? json_object_get(json_array_get(l.items, n - 1), "id") : NULL;
    json_t *next = l.next && last ? json_incref(last) : json_null();
    lucy_http_reply_json(resp, 200,
                         json_pack("{s:o,s:o}", "contacts", l.items, "next_cursor", next));
}

/* ---- GET /contacts/{id} --------------------------------------------------- */

struct one {
    const char *id;
    json_t *contact; /* out, NULL = not found */
};

static int read_one(sqlite3 *db, void *arg)
{
    struct one *o = arg;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT %s FROM wa_contacts WHERE id = ?1", contact_columns);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_text(st, 1, o->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        o->contact = contact_json(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
    rc = sqlite3_prepare_v2(db,
                            "SELECT m.wamid, m.type, m.text, m.timestamp_s, m.rate_limited, "
                            "m.state, x.state, x.error_type, x.transcript "
                            "FROM wa_messages m LEFT JOIN wa_media x ON x.wamid = m.wamid "
                            "WHERE m.sender = ?1 ORDER BY m.timestamp_s DESC, m.seq DESC "
                            "LIMIT ?2",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_text(st, 1, o->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, RECENT_MESSAGES);
    json_t *recent = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *m =
            json_pack("{s:o,s:o,s:o,s:I,s:b,s:o}", "wamid", col_str(st, 0), "type", col_str(st, 1),
                      "text", col_str(st, 2), "time", (json_int_t)sqlite3_column_int64(st, 3),
                      "rate_limited", sqlite3_column_int(st, 4), "state", col_str(st, 5));
        if (sqlite3_column_type(st, 6) != SQLITE_NULL)
            json_object_set_new(m, "media",
                                json_pack("{s:o,s:o,s:o}", "state", col_str(st, 6), "error_type",
                                          col_str(st, 7), "transcript", col_str(st, 8)));
        json_array_append_new(recent, m);
    }
    sqlite3_finalize(st);
    json_object_set_new(o->contact, "recent_messages", recent);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

static void reply_contact(struct lucy_http_request *req, struct lucy_http_response *resp,
                          const char *id)
{
    struct one o = {.id = id};
    int rc = lucy_store_read(req->ctx->store, read_one, &o);
    if (rc) {
        json_decref(o.contact);
        lucy_http_reply_err(resp, rc, "cannot read the contact from the store; retry later");
        return;
    }
    if (!o.contact) {
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                              "no contact %s: contacts appear when they first message you; "
                              "GET /contacts lists them",
                              id);
        return;
    }
    lucy_http_reply_json(resp, 200, o.contact);
}

static void get_contact(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    reply_contact(req, resp, req->params[0]);
}

/* ---- PUT /contacts/{id} --------------------------------------------------- */

struct put {
    const char *id;
    const char *alias; /* NULL clears */
};

static int write_alias(sqlite3 *db, void *arg)
{
    struct put *p = arg;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "INSERT INTO wa_contacts (id, user_alias, first_seen_ms, "
                                "updated_at_ms) VALUES (?1, ?2, ?3, ?3) ON CONFLICT (id) DO "
                                "UPDATE SET user_alias = excluded.user_alias, "
                                "updated_at_ms = excluded.updated_at_ms",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
        if (p->alias)
            sqlite3_bind_text(st, 2, p->alias, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, lucy_wa_now_ms());
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

static void put_contact(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const char *id = req->params[0];
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    json_t *alias = json_object_get(body, "alias");
    if (!json_is_object(body) || !alias || !(json_is_string(alias) || json_is_null(alias)) ||
        strlen(id) > 128) {
        json_decref(body);
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "send {\"alias\": \"name\"} (a string, or null to go back to the "
                              "WhatsApp profile name)");
        return;
    }
    const char *a = json_string_value(alias);
    if (a && strlen(a) > ALIAS_MAX_BYTES) {
        json_decref(body);
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "alias is longer than %d bytes; choose a shorter one",
                              ALIAS_MAX_BYTES);
        return;
    }
    struct put p = {.id = id, .alias = a && *a ? a : NULL};
    int rc = lucy_store_write(req->ctx->store, write_alias, &p, 0);
    struct lucy_kv *kv;
    char kv_err[256];
    if (rc == 0 && lucy_kv_shared_acquire(req->ctx, &kv, kv_err, sizeof kv_err) == 0) {
        /* a copy for the other instances (issue 5); the local row is the
         * truth. Refused (Redis down): queued locally and replayed. */
        char key[160];
        snprintf(key, sizeof key, "wa:user_alias:%s", id);
        lucy_kv_set_or_queue(kv, key, p.alias, p.alias ? strlen(p.alias) : 0, NULL, 0, NULL);
        lucy_kv_shared_release(kv);
    }
    json_decref(body);
    if (rc) {
        lucy_http_reply_err(resp, rc == LUCY_ENOSPC ? rc : LUCY_EUNAVAIL,
                            "cannot store the alias now; retry later");
        return;
    }
    reply_contact(req, resp, id);
}

const struct lucy_route lucy_wa_contact_routes[] = {
    {"GET", "/contacts", list_contacts, 1, 0},
    {"GET", "/contacts/{id}", get_contact, 1, 0},
    {"PUT", "/contacts/{id}", put_contact, 1, 64 * 1024},
};
const size_t lucy_wa_contact_routes_count =
    sizeof lucy_wa_contact_routes / sizeof lucy_wa_contact_routes[0];
