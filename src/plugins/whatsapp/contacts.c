/*
 * contacts.c - GET /contacts, GET /contacts/{id}, PUT /contacts/{id}
 * (DESIGN §5 "Contacts").
 *
 * A contact is keyed by its wa_id, or by the business-scoped user_id when a
 * payload carries no wa_id (DESIGN §8). Its alias is the one the user set
 * (PUT), else the WhatsApp profile name; the inbox worker updates profile
 * names and never touches a user's alias.
 *
 * Where the names come from (alias.c): this instance's store (wa_contacts,
 * the source of truth) and the copy every instance shares through the kv
 * interface, read with ONE lucy_kv_get_many per request. The user's alias
 * is the newer of the two by the time it was set, so an alias PUT on
 * another instance shows here as soon as it reached the kv; the profile
 * name is the local one, else the shared one. When the kv does not answer
 * (Redis down or hung: at most its timeout, then fail-fast), the replies
 * come from the local store alone. GET /contacts/{id} of a contact only
 * other instances have seen answers from the kv (messages 0, no recent
 * messages); GET /contacts lists the contacts this instance has seen.
 *
 * Shapes:
 *   {"id","wa_id","user_id","alias","alias_source":"user"|"profile"|null,
 *    "profile_name","person":{"id","name"}|null,"messages",
 *    "last_message_time"}
 * person is the sender's person (src/people/), whose name the UI shows.
 * GET /contacts?limit=&cursor= lists by id (cursor = the last id seen;
 * next_cursor is null at the end). GET /contacts/{id} adds
 * "recent_messages": the latest 20 [{"wamid","type","text","time",
 * "rate_limited","state"}], voice notes with "media":{"state","error_type",
 * "transcript"}. PUT takes {"alias": "..."} (null or "" clears it),
 * stores it locally and publishes it through the kv (queued and replayed
 * when the kv refuses). A contact comes to exist only through a webhook
 * from that number (or username), on this instance or, through the kv, on
 * another: PUT of an id no instance has seen is a 404 and creates nothing
 * (GET /contacts/{id} decides the same way). In the same store write, the
 * contact's indexed messages are re-queued with the new title
 * (lucy_wa_contact_retitle), so search hits follow the alias.
 *
 * Query parameters: an empty one is the same as leaving it out; a limit
 * outside 1..1000 or a cursor longer than an id is a 400.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../clock.h"
#include "../../error.h"
#include "../../http/http.h"
#include "../../kv/kv.h"
#include "../../log.h"
#include "../../lucy.h"
#include "../../store/row.h"
#include "../../people/people.h"
#include "../../store/store.h"
#include "whatsapp.h"

#define LIST_DEFAULT    100
#define LIST_MAX        1000
#define RECENT_MESSAGES 20
#define ALIAS_MAX_BYTES 256
#define ID_MAX_BYTES    128

#define CONTACT_COLUMNS                                                                            \
    "id, wa_id, user_id, user_alias, user_alias_set_at_ms, profile_name, messages, last_message_s"

/* One wa_contacts row, copied out of the statement. */
struct row {
    char *id, *wa_id, *user_id; /* id is never NULL in a read row */
    char *user_alias;           /* or NULL */
    int alias_known;            /* the user ever set or cleared the alias here */
    int64_t alias_set_at_ms;    /* when; 0 = before migration 41 */
    char *profile_name;         /* or NULL */
    long long messages;
    int has_last; /* last_message_s is set */
    long long last_message_s;
    json_t *person; /* {"id","name"} of the sender's person, or NULL */
};

static void row_free(struct row *r)
{
    free(r->id), free(r->wa_id), free(r->user_id), free(r->user_alias), free(r->profile_name);
    json_decref(r->person);
    memset(r, 0, sizeof *r);
}

/* Copies the CONTACT_COLUMNS of st's current row. 0 or LUCY_ENOMEM. */
static int row_read(sqlite3_stmt *st, struct row *r)
{
    memset(r, 0, sizeof *r);
    r->id = lucy_row_dup(st, 0);
    r->wa_id = lucy_row_dup(st, 1);
    r->user_id = lucy_row_dup(st, 2);
    r->user_alias = lucy_row_dup(st, 3);
    r->alias_known =
        sqlite3_column_type(st, 3) != SQLITE_NULL || sqlite3_column_type(st, 4) != SQLITE_NULL;
    r->alias_set_at_ms = sqlite3_column_int64(st, 4);
    r->profile_name = lucy_row_dup(st, 5);
    r->messages = sqlite3_column_int64(st, 6);
    r->has_last = sqlite3_column_type(st, 7) != SQLITE_NULL;
    r->last_message_s = sqlite3_column_int64(st, 7);
    int lost = !r->id || (sqlite3_column_type(st, 1) != SQLITE_NULL && !r->wa_id) ||
               (sqlite3_column_type(st, 2) != SQLITE_NULL && !r->user_id) ||
               (sqlite3_column_type(st, 3) != SQLITE_NULL && !r->user_alias) ||
               (sqlite3_column_type(st, 5) != SQLITE_NULL && !r->profile_name);
    if (lost)
        row_free(r);
    return lost ? LUCY_ENOMEM : 0;
}

/* r->person: {id, name} of the person holding the contact's wa_id (else
 * its user_id), as a recording's call.person; NULL when none. The person's
 * name is the People view's (DESIGN §12 display rule), which the Messages
 * view shows. */
static int person_read(sqlite3 *db, struct row *r)
{
    const char *kind = r->wa_id ? "wa_id" : "user_id";
    const char *value = r->wa_id ? r->wa_id : r->user_id;
    int64_t id;
    json_t *p = NULL;
    int rc = value ? lucy_people_find(db, kind, value, &id) : LUCY_ENOTFOUND;
    if (rc == 0)
        rc = lucy_people_json(db, id, 0, &p);
    if (rc == 0)
        r->person = json_pack("{s:I,s:O}", "id", (json_int_t)id, "name",
                              json_object_get(p, "name") ?: json_null());
    json_decref(p);
    if (rc == LUCY_ENOTFOUND)
        return 0;
    return rc ? rc : r->person ? 0 : LUCY_ENOMEM;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The reply object of r merged with what the kv shares (shared may be
 * NULL: the kv did not answer). */
static json_t *contact_json(const struct row *r, const struct lucy_wa_shared_names *shared)
{
    struct lucy_wa_alias local = {r->alias_known, r->user_alias, r->alias_set_at_ms};
    const struct lucy_wa_alias *pick = lucy_wa_alias_pick(&local, shared ? &shared->alias : NULL);
    const char *profile = r->profile_name ? r->profile_name : shared ? shared->profile_name : NULL;
    const char *alias = pick->alias ? pick->alias : profile;
    json_t *c = json_object();
    json_object_set_new(c, "id", str_or_null(r->id));
    json_object_set_new(c, "wa_id", str_or_null(r->wa_id));
    json_object_set_new(c, "user_id", str_or_null(r->user_id));
    json_object_set_new(c, "alias", str_or_null(alias));
    json_object_set_new(c, "alias_source",
                        pick->alias ? json_string("user")
                        : profile   ? json_string("profile")
                                    : json_null());
    json_object_set_new(c, "profile_name", str_or_null(profile));
    json_object_set(c, "person", r->person ? r->person : json_null());
    json_object_set_new(c, "messages", json_integer(r->messages));
    json_object_set_new(c, "last_message_time",
                        r->has_last ? json_integer(r->last_message_s) : json_null());
    return c;
}

/* The shared names of n contacts, or NULL when the kv did not answer
 * (then the local store alone decides). Free with shared_free. */
static struct lucy_wa_shared_names *shared_get(struct lucy_wa *wa, const char *const *ids, size_t n)
{
    struct lucy_wa_shared_names *s = calloc(n ? n : 1, sizeof *s);
    if (s && lucy_wa_shared_names_get(wa->kv, ids, n, 1, s, 0) == 0)
        return s;
    free(s);
    return NULL;
}

static void shared_free(struct lucy_wa_shared_names *s, size_t n)
{
    lucy_wa_shared_names_free(s, n);
    free(s);
}

/* ---- GET /contacts -------------------------------------------------------- */

struct list {
    const char *cursor; /* list ids after this one, or NULL */
    int limit;
    struct row *rows; /* out: up to limit */
    int n;
    int more; /* out: there are rows after these */
};

static const char sql_list[] = "SELECT " CONTACT_COLUMNS " FROM wa_contacts "
                               "WHERE ?1 IS NULL OR id > ?1 ORDER BY id LIMIT ?2";

static int read_list(sqlite3 *db, void *arg)
{
    struct list *l = arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_list, &st);
    if (rc)
        return rc;
    if (l->cursor)
        sqlite3_bind_text(st, 1, l->cursor, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, l->limit + 1);
    int err = 0;
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (l->n == l->limit) {
            l->more = 1;
            break;
        }
        err = row_read(st, &l->rows[l->n]);
        if (!err && (err = person_read(db, &l->rows[l->n])) != 0)
            row_free(&l->rows[l->n]);
        l->n += err == 0;
    }
    if (err)
        return err;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

static void list_contacts(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const char *limit_s = lucy_http_query(req, "limit");
    const char *cursor = lucy_http_query(req, "cursor");
    long limit = LIST_DEFAULT;
    if (limit_s && *limit_s) {
        char *end = NULL;
        errno = 0;
        limit = strtol(limit_s, &end, 10);
        if (*end || errno || limit < 1 || limit > LIST_MAX || limit_s[0] < '0' ||
            limit_s[0] > '9') {
            lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                                  "limit must be a whole number from 1 to %d (default %d), not "
                                  "\"%.40s\"",
                                  LIST_MAX, LIST_DEFAULT, limit_s);
            return;
        }
    }
    if (cursor && strlen(cursor) > ID_MAX_BYTES) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "cursor must be the next_cursor value of a previous page (a contact "
                              "id, at most %d bytes); leave it out for the first page",
                              ID_MAX_BYTES);
        return;
    }
    struct list l = {.cursor = cursor && *cursor ? cursor : NULL, .limit = (int)limit};
    l.rows = calloc((size_t)limit, sizeof *l.rows);
    int rc = l.rows ? lucy_store_read(req->ctx->store, read_list, &l) : LUCY_ENOMEM;
    if (rc) {
        for (int i = 0; i < l.n; i++)
            row_free(&l.rows[i]);
        free(l.rows);
        lucy_http_reply_err(resp, rc, "cannot read contacts from the store; retry later");
        return;
    }
    const char **ids = calloc((size_t)l.n + 1, sizeof *ids);
    for (int i = 0; ids && i < l.n; i++)
        ids[i] = l.rows[i].id;
    struct lucy_wa_shared_names *shared = ids ? shared_get(req->arg, ids, (size_t)l.n) : NULL;
    json_t *items = json_array();
    for (int i = 0; i < l.n; i++)
        json_array_append_new(items, contact_json(&l.rows[i], shared ? &shared[i] : NULL));
    json_t *next = l.more && l.n ? json_string(l.rows[l.n - 1].id) : json_null();
    shared_free(shared, (size_t)l.n);
    free(ids);
    for (int i = 0; i < l.n; i++)
        row_free(&l.rows[i]);
    free(l.rows);
    lucy_http_reply_json(resp, 200, json_pack("{s:o,s:o}", "contacts", items, "next_cursor", next));
}

/* ---- GET /contacts/{id} --------------------------------------------------- */

struct one {
    const char *id;
    struct row row; /* out, row.id NULL = not in the local store */
    json_t *recent; /* out: recent_messages */
};

static const char sql_one[] = "SELECT " CONTACT_COLUMNS " FROM wa_contacts WHERE id = ?1";
static const char sql_recent[] =
    "SELECT m.wamid, m.type, m.text, m.timestamp_s, m.rate_limited, m.state, x.state, "
    "x.error_type, x.transcript FROM wa_messages m LEFT JOIN wa_media x ON x.wamid = m.wamid "
    "WHERE m.sender = ?1 ORDER BY m.timestamp_s DESC, m.seq DESC LIMIT ?2";

static int read_one(sqlite3 *db, void *arg)
{
    struct one *o = arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_one, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, o->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int err = rc == SQLITE_ROW ? row_read(st, &o->row) : 0;
    if (!err && rc == SQLITE_ROW)
        err = person_read(db, &o->row);
    if (err)
        return err;
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
    rc = lucy_store_stmt(db, sql_recent, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, o->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, RECENT_MESSAGES);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *col[9];
        for (int i = 0; i < 9; i++)
            col[i] = (const char *)sqlite3_column_text(st, i);
        json_t *m = json_pack("{s:o,s:o,s:o,s:I,s:b,s:o}", "wamid", str_or_null(col[0]), "type",
                              str_or_null(col[1]), "text", str_or_null(col[2]), "time",
                              (json_int_t)sqlite3_column_int64(st, 3), "rate_limited",
                              sqlite3_column_int(st, 4), "state", str_or_null(col[5]));
        if (col[6])
            json_object_set_new(m, "media",
                                json_pack("{s:o,s:o,s:o}", "state", str_or_null(col[6]),
                                          "error_type", str_or_null(col[7]), "transcript",
                                          str_or_null(col[8])));
        json_array_append_new(o->recent, m);
    }
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

static void reply_contact(struct lucy_http_request *req, struct lucy_http_response *resp,
                          const char *id)
{
    struct one o = {.id = id, .recent = json_array()};
    int rc = lucy_store_read(req->ctx->store, read_one, &o);
    if (rc) {
        row_free(&o.row);
        json_decref(o.recent);
        lucy_http_reply_err(resp, rc, "cannot read the contact from the store; retry later");
        return;
    }
    struct lucy_wa_shared_names *shared = shared_get(req->arg, &id, 1);
    int local = o.row.id != NULL;
    /* only other instances have seen it: what the kv shares, if anything */
    int elsewhere = !local && shared && (shared->alias.alias || shared->profile_name);
    if (!local && !elsewhere) {
        shared_free(shared, 1);
        json_decref(o.recent);
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                              "no contact %.200s: contacts appear when they first message you; "
                              "GET /contacts lists them",
                              id);
        return;
    }
    struct row only_id = {.id = (char *)id};
    json_t *c = contact_json(local ? &o.row : &only_id, shared);
    json_object_set_new(c, "recent_messages", o.recent);
    shared_free(shared, 1);
    row_free(&o.row);
    lucy_http_reply_json(resp, 200, c);
}

static void get_contact(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    reply_contact(req, resp, req->params[0]);
}

/* ---- PUT /contacts/{id} --------------------------------------------------- */

/* What a contact id is, for a PUT that creates the local row of a contact
 * another instance has seen. Meta's wa_id is the phone number in
 * international format, digits only (no "+", no spaces); a
 * business-scoped user id (usernames, DESIGN §8) is letters, digits and
 * punctuation such as "US.13491208655302741918". */
enum id_kind {
    ID_INVALID, /* neither: no row is created for it */
    ID_WA_ID,   /* all digits: stored as the contact's wa_id */
    ID_USER_ID, /* stored as the contact's user_id */
};

static enum id_kind id_kind(const char *id)
{
    size_t n = strlen(id);
    int digits_only = 1;
    if (n == 0 || n > ID_MAX_BYTES)
        return ID_INVALID;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int digit = c >= '0' && c <= '9';
        int other = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '.' || c == '_' ||
                    c == '-' || c == ':';
        if (!digit && !other)
            return ID_INVALID;
        digits_only &= digit;
    }
    return digits_only ? ID_WA_ID : ID_USER_ID;
}

struct put {
    const char *id;
    const char *alias; /* NULL clears */
    int64_t set_at_ms; /* now, wall ms */
    enum id_kind kind; /* of id */
    int create;        /* 1: insert the contact when the store has no row for id */
    int64_t retitled;  /* out: search documents re-queued with the new title */
};

/* Sets (or clears) the user's alias on the local row - inserting a row
 * keyed by id, with id as its wa_id or user_id, when create is set - and
 * re-titles the contact's indexed messages in the same transaction.
 * LUCY_ENOTFOUND when there is no row and create is 0. */
static const char sql_alias_upsert[] =
    "INSERT INTO wa_contacts (id, wa_id, user_id, user_alias, user_alias_set_at_ms, "
    "first_seen_ms, updated_at_ms) VALUES (?1, ?4, ?5, ?2, ?3, ?3, ?3) "
    "ON CONFLICT (id) DO UPDATE SET user_alias = excluded.user_alias, "
    "user_alias_set_at_ms = excluded.user_alias_set_at_ms, updated_at_ms = excluded.updated_at_ms";
static const char sql_alias_update[] =
    "UPDATE wa_contacts SET user_alias = ?2, "
    "user_alias_set_at_ms = ?3, updated_at_ms = ?3 WHERE id = ?1";

static int write_alias(sqlite3 *db, void *arg)
{
    struct put *p = arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, p->create ? sql_alias_upsert : sql_alias_update, &st);
    if (rc)
        return rc;
    lucy_row_bind_text(st, 1, p->id);
    lucy_row_bind_text(st, 2, p->alias);
    sqlite3_bind_int64(st, 3, p->set_at_ms);
    if (p->create)
        lucy_row_bind_text(st, 4, p->kind == ID_WA_ID ? p->id : NULL);
    if (p->create)
        lucy_row_bind_text(st, 5, p->kind == ID_USER_ID ? p->id : NULL);
    rc = lucy_row_step_done(st);
    if (rc)
        return rc;
    if (sqlite3_changes(db) == 0)
        return LUCY_ENOTFOUND;
    return lucy_wa_contact_retitle(db, p->id, &p->retitled);
}

/* 1 when the kv shares a name for id (another instance has seen it), as
 * GET /contacts/{id} decides; 0 when not or when the kv does not answer. */
static int known_elsewhere(struct lucy_wa *wa, const char *id)
{
    struct lucy_wa_shared_names *shared = shared_get(wa, &id, 1);
    int known = shared && (shared->alias.alias || shared->profile_name);
    shared_free(shared, 1);
    return known;
}

/* PUT /contacts/{id} {"alias": "..." | null | ""}:
 *   a contact this instance has: the alias is set (or cleared: back to the
 *     profile name);
 *   a contact only the kv knows (another instance has seen it): its local
 *     row is created, keyed by id, with id as its wa_id (all digits) or
 *     user_id (else), and the alias set;
 *   a contact no instance has seen: 404, nothing created - contacts come
 *     from webhooks, so a PUT cannot invent an empty one.
 * The contact's indexed messages are re-titled in the same write. */
static void put_contact(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const char *id = req->params[0];
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    json_t *alias = json_object_get(body, "alias");
    if (!json_is_object(body) || !alias || !(json_is_string(alias) || json_is_null(alias)) ||
        strlen(id) > ID_MAX_BYTES) {
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
    struct put p = {.id = id, .alias = a && *a ? a : NULL, .set_at_ms = lucy_wall_ms()};
    p.kind = id_kind(id);
    /* the local row first: it is the truth, and what this instance shows
     * even while the kv refuses */
    int rc = lucy_store_write(req->ctx->store, write_alias, &p, 0);
    if (rc == LUCY_ENOTFOUND && p.kind != ID_INVALID && known_elsewhere(req->arg, id)) {
        p.create = 1;
        rc = lucy_store_write(req->ctx->store, write_alias, &p, 0);
    }
    if (rc) /* p.alias points into body: kept until the publish below */
        json_decref(body);
    if (rc == LUCY_ENOTFOUND) {
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                              "no contact %.200s: a contact comes to exist when a webhook from "
                              "that number (its wa_id, e.g. 4915112345678) or username reaches "
                              "lucy; set its alias after it has written. GET /contacts lists the "
                              "contacts lucy knows",
                              id);
        return;
    }
    if (rc) {
        lucy_http_reply_err(resp, rc == LUCY_ENOSPC ? rc : LUCY_EUNAVAIL,
                            "cannot store the alias now; retry later");
        return;
    }
    if (p.retitled > 0)
        lucy_log(LUCY_LOG_DEBUG, "contact alias set; search titles re-queued", "{s:I}", "documents",
                 (json_int_t)p.retitled);
    struct lucy_wa *wa = req->arg;
    if (wa->kv) {
        /* then the copy for the other instances; refused (Redis down, MISCONF):
         * queued in the local store and replayed */
        int qrc = lucy_wa_alias_publish(wa->kv, id, p.alias, p.set_at_ms);
        if (qrc)
            lucy_log(LUCY_LOG_WARNING,
                     "contact alias stored here but not shared with other instances", "{s:s}",
                     "error", lucy_strerror(qrc));
    }
    json_decref(body);
    reply_contact(req, resp, id);
}

const struct lucy_route lucy_wa_contact_routes[] = {
    {"GET", "/contacts", list_contacts, 1, 0, NULL},
    {"GET", "/contacts/{id}", get_contact, 1, 0, NULL},
    {"PUT", "/contacts/{id}", put_contact, 1, 64 * 1024, NULL},
};
const size_t lucy_wa_contact_routes_count =
    sizeof lucy_wa_contact_routes / sizeof lucy_wa_contact_routes[0];
