/*
 * routes.c - the /people API (DESIGN §12; shapes in docs/people.md).
 *
 *   GET  /people?q=&limit=&cursor=        persons by id; q matches names and
 *                                         identifiers; cursor = last id seen
 *   GET  /people/{id}                     lucy_people_json(full)
 *   PUT  /people/{id}  {"alias": ...}     journaled; published to the kv for
 *                                         the person's WhatsApp ids
 *   DELETE /people/{id}                   forget the person, its calls and
 *                                         messages (forget.c)
 *   GET  /people/{id}/timeline?from=&to=&cursor=&limit=
 *                                         calls and messages, newest first
 *   GET  /people/{id}/history             the journal entries naming it
 *   POST /people/{id}/merge {"other": ID}
 *   POST /people/{id}/split {"identifier": {"kind": .., "value": ..}}
 *   POST /people/history/{seq}/undo
 *
 * Handlers get struct lucy_people_routes as req->arg (plugin.c). An id
 * that is not a person is a 404, a body or parameter that is not what the
 * route takes a 400, an undo that later entries depend on a 409; every
 * reply has an error_type.
 *
 * The alias is shared with other instances through the WhatsApp plugin's
 * kv keys (lucy_wa_alias_publish, one function for that format): the one
 * call from this core module into a plugin, recorded in docs/decisions.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../clock.h"
#include "../error.h"
#include "../http/http.h"
#include "../index/index.h"
#include "../log.h"
#include "../lucy.h"
#include "../plugins/whatsapp/whatsapp.h"
#include "../store/row.h"
#include "../store/store.h"
#include "../utf8.h"
#include "people.h"
#include "routes.h"

#define LIST_DEFAULT     50
#define LIST_MAX         500
#define TIMELINE_DEFAULT 50
#define TIMELINE_MAX     500
#define Q_MAX_BYTES      200

/* A positive decimal id of at most 18 digits, else 0. */
static int64_t parse_id(const char *s)
{
    if (!s || !*s || strlen(s) > 18)
        return 0;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return strtoll(s, NULL, 10);
}

static int parse_limit(struct lucy_http_request *req, struct lucy_http_response *resp, int def,
                       int max, int *out)
{
    const char *s = lucy_http_query(req, "limit");
    *out = def;
    if (!s || !*s)
        return 0;
    int64_t v = parse_id(s);
    if (v < 1 || v > max) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "limit must be a whole number from 1 to %d (default %d), not "
                              "\"%.40s\"",
                              max, def, s);
        return LUCY_EINVAL;
    }
    *out = (int)v;
    return 0;
}

static void not_found(struct lucy_http_response *resp, const char *id)
{
    lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                          "no person %.40s: GET /people lists them (a merged person's id is gone "
                          "until the merge is undone)",
                          id);
}

/* ---- GET /people/{id} ----------------------------------------------------- */

struct one {
    int64_t id;
    json_t *out; /* the person, or the history */
    int history; /* 1: the history instead */
};

static int read_one(sqlite3 *db, void *arg)
{
    struct one *o = arg;
    if (!o->history)
        return lucy_people_json(db, o->id, 1, &o->out);
    int rc = lucy_people_history(db, o->id, &o->out);
    if (rc == 0 && json_array_size(o->out) == 0) {
        json_t *p = NULL; /* never journaled: a person only if it exists */
        rc = lucy_people_json(db, o->id, 0, &p);
        json_decref(p);
    }
    return rc;
}

static void reply_person(struct lucy_http_request *req, struct lucy_http_response *resp, int64_t id,
                         const char *id_text, int history)
{
    struct one o = {.id = id, .history = history};
    int rc = id ? lucy_store_read(req->ctx->store, read_one, &o) : LUCY_ENOTFOUND;
    if (rc == LUCY_ENOTFOUND) {
        json_decref(o.out);
        not_found(resp, id_text);
    } else if (rc) {
        json_decref(o.out);
        lucy_http_reply_err(resp, rc, "cannot read the person from the store; retry later");
    } else if (history) {
        lucy_http_reply_json(resp, 200,
                             json_pack("{s:I,s:o}", "person", (json_int_t)id, "history", o.out));
    } else {
        lucy_http_reply_json(resp, 200, o.out);
    }
}

static void get_person(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    reply_person(req, resp, parse_id(req->params[0]), req->params[0], 0);
}

static void get_history(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    reply_person(req, resp, parse_id(req->params[0]), req->params[0], 1);
}

/* ---- GET /people ---------------------------------------------------------- */

struct list {
    const char *like; /* %q% with \ escapes, or NULL */
    int64_t after;    /* cursor */
    int limit;
    json_t *items; /* out */
    int more;      /* out */
};

static int read_list(sqlite3 *db, void *arg)
{
    struct list *l = arg;
    return lucy_people_list(db, l->like, l->after, l->limit, l->items, &l->more);
}

static void list_people(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct list l = {0};
    if (parse_limit(req, resp, LIST_DEFAULT, LIST_MAX, &l.limit))
        return;
    const char *cursor = lucy_http_query(req, "cursor");
    const char *q = lucy_http_query(req, "q");
    if (cursor && *cursor && !(l.after = parse_id(cursor))) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "cursor must be the next_cursor of a previous page (a person id); "
                              "leave it out for the first page");
        return;
    }
    if (q && strlen(q) > Q_MAX_BYTES) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "q is longer than %d bytes; search for a part of the name or number",
                              Q_MAX_BYTES);
        return;
    }
    char like[2 * Q_MAX_BYTES + 3];
    if (q && *q) { /* %q% with LIKE's own characters taken literally */
        size_t j = 0;
        like[j++] = '%';
        for (const char *p = q; *p; p++) {
            if (*p == '%' || *p == '_' || *p == '\\')
                like[j++] = '\\';
            like[j++] = *p;
        }
        like[j++] = '%';
        like[j] = '\0';
        l.like = like;
    }
    l.items = json_array();
    int rc = lucy_store_read(req->ctx->store, read_list, &l);
    if (rc) {
        json_decref(l.items);
        lucy_http_reply_err(resp, rc, "cannot read people from the store; retry later");
        return;
    }
    json_t *last = json_array_get(l.items, json_array_size(l.items) - 1);
    json_t *next = l.more && last ? json_copy(json_object_get(last, "id")) : json_null();
    lucy_http_reply_json(resp, 200, json_pack("{s:o,s:o}", "people", l.items, "next_cursor", next));
}

/* ---- GET /people/{id}/timeline -------------------------------------------- */

struct timeline {
    struct lucy_people_timeline_query q; /* what to read */
    json_t *items;                       /* out */
    int more;                            /* out */
};

static int read_timeline(sqlite3 *db, void *arg)
{
    struct timeline *t = arg;
    return lucy_people_timeline(db, &t->q, t->items, &t->more);
}

/* "<time_ms>:<call|message>:<id>", as next_cursor writes it. */
static int cursor_parse(char *s, struct timeline *t)
{
    char *a = strchr(s, ':'), *b = a ? strchr(a + 1, ':') : NULL;
    if (!a || !b || !b[1])
        return LUCY_EINVAL;
    *a = *b = '\0';
    char *end = NULL;
    errno = 0;
    t->q.after_time_ms = strtoll(s, &end, 10);
    if (errno || !*s || *end || (strcmp(a + 1, "call") && strcmp(a + 1, "message")))
        return LUCY_EINVAL;
    t->q.after_kind = a + 1;
    t->q.after_item = b + 1;
    return 0;
}

static int time_param(struct lucy_http_request *req, struct lucy_http_response *resp,
                      const char *name, int end_of_day, int64_t *ms)
{
    const char *s = lucy_http_query(req, name);
    int64_t sec;
    if (!s || !*s)
        return 0;
    if (lucy_index_parse_time(s, end_of_day, &sec) == 0) {
        *ms = sec * 1000 + (end_of_day ? 999 : 0);
        return 0;
    }
    lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                          "%s must be Unix seconds or ISO 8601 (2024-05-31, "
                          "2024-05-31T14:00:00Z, 2024-05-31T16:00:00+02:00), not \"%.40s\"",
                          name, s);
    return LUCY_EINVAL;
}

static void get_timeline(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct timeline t = {
        .q = {.person = parse_id(req->params[0]), .from_ms = INT64_MIN, .to_ms = INT64_MAX}};
    if (!t.q.person) {
        not_found(resp, req->params[0]);
        return;
    }
    if (parse_limit(req, resp, TIMELINE_DEFAULT, TIMELINE_MAX, &t.q.limit) ||
        time_param(req, resp, "from", 0, &t.q.from_ms) ||
        time_param(req, resp, "to", 1, &t.q.to_ms))
        return;
    if (t.q.from_ms > t.q.to_ms) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "from is after to; swap them or leave one out");
        return;
    }
    const char *c = lucy_http_query(req, "cursor");
    char *cursor = c && *c ? strdup(c) : NULL;
    if (c && *c && (!cursor || cursor_parse(cursor, &t))) {
        free(cursor);
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "cursor must be the next_cursor of a previous page; leave it out "
                              "for the first page");
        return;
    }
    t.items = json_array();
    int rc = lucy_store_read(req->ctx->store, read_timeline, &t);
    free(cursor);
    if (rc) {
        json_decref(t.items);
        if (rc == LUCY_ENOTFOUND)
            not_found(resp, req->params[0]);
        else
            lucy_http_reply_err(resp, rc, "cannot read the timeline from the store; retry later");
        return;
    }
    json_t *next = json_null();
    json_t *last = json_array_get(t.items, json_array_size(t.items) - 1);
    if (t.more && last) {
        json_t *id = json_object_get(last, "recording_id");
        next = json_sprintf("%lld:%s:%s",
                            (long long)json_integer_value(json_object_get(last, "time_ms")),
                            json_string_value(json_object_get(last, "kind")),
                            json_string_value(id ? id : json_object_get(last, "wamid")));
    }
    lucy_http_reply_json(resp, 200,
                         json_pack("{s:I,s:o,s:o}", "person", (json_int_t)t.q.person, "items",
                                   t.items, "next_cursor", next ? next : json_null()));
}

/* ---- the writes ----------------------------------------------------------- */

/* One write: which operation, its inputs, its outputs. */
struct change {
    int (*fn)(sqlite3 *db, struct change *c); /* the operation */
    int64_t id, other;                        /* person(s) */
    const char *kind, *value;                 /* split: the identifier */
    const char *alias;                        /* alias: NULL = none */
    int64_t at_ms;
    int64_t seq;    /* in: undo's entry; out: the journal entry */
    int64_t new_id; /* out: split's new person */
    const char *op; /* out: undo's operation */
    char why[256];  /* out: undo's conflict */
};

static int do_merge(sqlite3 *db, struct change *c)
{
    return lucy_people_merge(db, c->id, c->other, 0, &c->seq);
}

static int do_split(sqlite3 *db, struct change *c)
{
    return lucy_people_split(db, c->id, c->kind, c->value, &c->new_id, &c->seq);
}

static int do_alias(sqlite3 *db, struct change *c)
{
    return lucy_people_set_alias(db, c->id, c->alias, c->at_ms, &c->seq);
}

static int do_undo(sqlite3 *db, struct change *c)
{
    return lucy_people_undo(db, c->seq, &c->id, &c->op, c->why, sizeof c->why);
}

static int run_change(sqlite3 *db, void *arg)
{
    struct change *c = arg;
    return c->fn(db, c);
}

/* The person's alias now, shared with the other instances for each of its
 * WhatsApp ids, where contacts.c and the inbox worker read it. A kv that
 * refuses queues it (lucy_kv_set_or_queue); no kv: this instance only. */
static void publish_alias(struct lucy_people_routes *r, struct lucy_ctx *ctx, int64_t id)
{
    struct one o = {.id = id};
    if (!r->kv || lucy_store_read(ctx->store, read_one, &o) != 0)
        return;
    const char *alias = NULL;
    json_t *x;
    size_t i;
    json_array_foreach(json_object_get(o.out, "names"), i, x)
    {
        const char *source = json_string_value(json_object_get(x, "source"));
        if (!alias && source && strcmp(source, "alias") == 0)
            alias = json_string_value(json_object_get(x, "name"));
    }
    int64_t at_ms = lucy_wall_ms();
    json_array_foreach(json_object_get(o.out, "identifiers"), i, x)
    {
        const char *kind = json_string_value(json_object_get(x, "kind"));
        if (strcmp(kind, "wa_id") && strcmp(kind, "user_id"))
            continue;
        int rc = lucy_wa_alias_publish(r->kv, json_string_value(json_object_get(x, "value")), alias,
                                       at_ms);
        if (rc)
            lucy_log(LUCY_LOG_WARNING, "person's alias stored here but not shared", "{s:s}",
                     "error", lucy_strerror(rc));
    }
    json_decref(o.out);
}

/* Runs c; on success replies with person c->id (and extra fields). */
static void change_reply(struct lucy_http_request *req, struct lucy_http_response *resp,
                         struct change *c)
{
    int rc = lucy_store_write(req->ctx->store, run_change, c, 0);
    if (rc == LUCY_ENOTFOUND) {
        if (c->fn == do_undo)
            lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                                  "no history entry %lld: GET /people/{id}/history lists them",
                                  (long long)c->seq);
        else if (c->fn == do_split)
            lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                                  "person %lld has no identifier %.20s %.130s (or no such person); "
                                  "GET /people/%lld lists its identifiers",
                                  (long long)c->id, c->kind, c->value, (long long)c->id);
        else
            lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                                  "no person %lld%s: GET /people lists them", (long long)c->id,
                                  c->fn == do_merge ? " or no person to merge into it" : "");
        return;
    }
    if (rc == LUCY_ECONFLICT || (rc == LUCY_EINVAL && c->fn == do_split)) {
        lucy_http_reply_error(resp, LUCY_HTTP_CONFLICT, 0, "%s",
                              rc == LUCY_EINVAL ? "that is the person's only identifier: there "
                                                  "is nothing to split it from"
                                                : c->why);
        return;
    }
    if (rc == LUCY_EINVAL) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "a person cannot be merged with itself; send another person's id "
                              "as other");
        return;
    }
    if (rc) {
        lucy_http_reply_err(resp, rc, "cannot store the change now; retry later");
        return;
    }
    if (c->fn == do_alias || (c->fn == do_undo && strcmp(c->op, "alias") == 0))
        publish_alias(req->arg, req->ctx, c->id);
    struct one o = {.id = c->id};
    rc = lucy_store_read(req->ctx->store, read_one, &o);
    if (rc && rc != LUCY_ENOTFOUND) {
        lucy_http_reply_err(resp, rc, "stored; cannot read the person back now, retry the GET");
        return;
    }
    json_t *reply = o.out ? o.out : json_pack("{s:I}", "id", (json_int_t)c->id);
    if (c->fn == do_undo)
        reply =
            json_pack("{s:I,s:s,s:o}", "undone", (json_int_t)c->seq, "op", c->op, "person", reply);
    else
        json_object_set_new(reply, "history_seq", json_integer(c->seq));
    if (c->fn == do_split) {
        struct one n = {.id = c->new_id};
        if (lucy_store_read(req->ctx->store, read_one, &n) == 0)
            json_object_set_new(reply, "split_into", n.out);
    }
    lucy_http_reply_json(resp, 200, reply);
}

static json_t *body_object(struct lucy_http_request *req, struct lucy_http_response *resp,
                           const char *usage)
{
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    if (json_is_object(body))
        return body;
    json_decref(body);
    lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0, "send a JSON object: %s", usage);
    return NULL;
}

static void post_merge(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct change c = {.fn = do_merge, .id = parse_id(req->params[0])};
    if (!c.id) {
        not_found(resp, req->params[0]);
        return;
    }
    json_t *body = body_object(req, resp, "{\"other\": ID}");
    json_t *other = json_object_get(body, "other");
    if (body && (!json_is_integer(other) || json_integer_value(other) < 1)) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "other must be the id (a positive integer) of the person to merge "
                              "into this one");
        json_decref(body);
        return;
    }
    if (!body)
        return;
    c.other = json_integer_value(other);
    json_decref(body);
    change_reply(req, resp, &c);
}

static void post_split(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct change c = {.fn = do_split, .id = parse_id(req->params[0])};
    if (!c.id) {
        not_found(resp, req->params[0]);
        return;
    }
    json_t *body = body_object(req, resp, "{\"identifier\": {\"kind\": ..., \"value\": ...}}");
    if (!body)
        return;
    json_t *ident = json_object_get(body, "identifier");
    c.kind = json_string_value(json_object_get(ident, "kind"));
    c.value = json_string_value(json_object_get(ident, "value"));
    if (!c.kind || !c.value || lucy_people_value_check(c.kind, c.value)) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "identifier must be {\"kind\": \"phone\"|\"wa_id\"|\"user_id\", "
                              "\"value\": ...} as GET /people/{id} lists it (a phone in E.164, "
                              "e.g. +14155550123)");
        json_decref(body);
        return;
    }
    change_reply(req, resp, &c);
    json_decref(body);
}

static void put_person(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct change c = {.fn = do_alias, .id = parse_id(req->params[0]), .at_ms = lucy_wall_ms()};
    if (!c.id) {
        not_found(resp, req->params[0]);
        return;
    }
    json_t *body = body_object(req, resp, "{\"alias\": \"name\"} (null clears it)");
    if (!body)
        return;
    json_t *alias = json_object_get(body, "alias");
    c.alias = json_string_value(alias);
    int ok = json_is_null(alias) || json_is_string(alias);
    for (const char *p = c.alias; ok && p && *p; p++)
        ok = (unsigned char)*p >= 0x20 && *p != 0x7f;
    if (!ok || (c.alias && (strlen(c.alias) > LUCY_PEOPLE_NAME_MAX ||
                            !lucy_utf8_valid(c.alias, strlen(c.alias))))) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "send {\"alias\": \"name\"}: a string of at most %d bytes without "
                              "control characters, or null to clear it",
                              LUCY_PEOPLE_NAME_MAX);
        json_decref(body);
        return;
    }
    if (c.alias && !*c.alias)
        c.alias = NULL;
    change_reply(req, resp, &c);
    json_decref(body);
}

static void post_undo(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct change c = {.fn = do_undo, .seq = parse_id(req->params[0])};
    if (!c.seq) {
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                              "no history entry %.40s: GET /people/{id}/history lists them",
                              req->params[0]);
        return;
    }
    change_reply(req, resp, &c);
}

const struct lucy_route lucy_people_route_table[] = {
    {"GET", "/people", list_people, 1, 0, NULL},
    {"GET", "/people/{id}", get_person, 1, 0, NULL},
    {"PUT", "/people/{id}", put_person, 1, 64 * 1024, NULL},
    {"DELETE", "/people/{id}", lucy_people_delete_route, 1, 0, NULL}, /* forget.c */
    {"GET", "/people/{id}/timeline", get_timeline, 1, 0, NULL},
    {"GET", "/people/{id}/history", get_history, 1, 0, NULL},
    {"POST", "/people/{id}/merge", post_merge, 1, 64 * 1024, NULL},
    {"POST", "/people/{id}/split", post_split, 1, 64 * 1024, NULL},
    {"POST", "/people/history/{seq}/undo", post_undo, 1, 1024, NULL},
};
const size_t lucy_people_route_count =
    sizeof lucy_people_route_table / sizeof lucy_people_route_table[0];
