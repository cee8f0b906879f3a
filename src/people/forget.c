/*
 * forget.c - the forget registry (see forget.h) and DELETE /people/{id}.
 *
 * DELETE /people/{id}: 204 when the person and all its calls and messages
 * are forgotten - also when it was forgotten before (the tombstone knows
 * it), so a retried DELETE is not an error; 404 only for an id that never
 * was a person. One store write does it all (forget.h).
 */
#include "forget.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../clock.h"
#include "../error.h"
#include "../http/http.h"
#include "../log.h"
#include "../lucy.h"
#include "../store/store.h"
#include "../store/tombstones.h"
#include "people.h"
#include "routes.h"

int lucy_people_add_forgetter(struct lucy_people_forget *f, const struct lucy_forgetter *row)
{
    if (!f || !row)
        return LUCY_EINVAL;
    if (f->n == LUCY_FORGETTERS_MAX)
        return LUCY_ENOMEM;
    f->rows[f->n++] = *row;
    return 0;
}

int lucy_people_forget_person(const struct lucy_people_forget *f, sqlite3 *db, int64_t id,
                              const char *reason, json_t *forgotten, int *found)
{
    char key[24];
    snprintf(key, sizeof key, "%" PRId64, id);
    json_t *p = NULL;
    int rc = lucy_people_json(db, id, 0, &p);
    json_decref(p);
    *found = rc == 0;
    if (rc == LUCY_ENOTFOUND) {
        rc = lucy_tombstone_has(db, LUCY_TOMBSTONE_PERSON, key);
        *found = rc == 1;
        return rc < 0 ? rc : 0; /* forgotten before: nothing left to do */
    }
    for (int i = 0; rc == 0 && f && i < f->n; i++)
        if (f->rows[i].person)
            rc = f->rows[i].person(db, id, reason, forgotten, f->rows[i].arg);
    if (rc == 0)
        rc = lucy_people_delete(db, id);
    if (rc == 0)
        rc = lucy_tombstone_put(db, LUCY_TOMBSTONE_PERSON, key, reason, lucy_wall_ms());
    if (rc == 0)
        lucy_forgotten_add(forgotten, "person", key);
    return rc;
}

int lucy_people_forget_older(const struct lucy_people_forget *f, sqlite3 *db, int64_t before_ms,
                             int max, json_t *forgotten)
{
    int rc = 0;
    for (int i = 0; rc == 0 && f && i < f->n; i++)
        if (f->rows[i].older)
            rc = f->rows[i].older(db, before_ms, max, forgotten, f->rows[i].arg);
    return rc;
}

void lucy_forgotten_add(json_t *forgotten, const char *kind, const char *id)
{
    if (forgotten)
        json_array_append_new(forgotten, json_pack("{s:s,s:s}", "kind", kind, "id", id));
}

void lucy_forgotten_log(const json_t *forgotten, const char *reason)
{
    size_t i;
    const json_t *item;
    json_array_foreach(forgotten, i, item)
    {
        /* the id is in the message too: the log's repeat suppression keys
         * on the message, and every forgotten item must get its line */
        char msg[160];
        const char *kind = json_string_value(json_object_get(item, "kind"));
        const char *id = json_string_value(json_object_get(item, "id"));
        snprintf(msg, sizeof msg, "forgot %s %s", kind, id);
        lucy_log(LUCY_LOG_INFO, msg, "{s:s,s:s,s:s}", "kind", kind, "id", id, "reason", reason);
    }
}

/* ---- DELETE /people/{id} -------------------------------------------------- */

struct forget_write {
    const struct lucy_people_forget *f;
    int64_t id;
    json_t *forgotten; /* out */
    int found;         /* out */
};

static int forget_write(sqlite3 *db, void *arg)
{
    struct forget_write *w = arg;
    json_array_clear(w->forgotten); /* a retried write starts over */
    return lucy_people_forget_person(w->f, db, w->id, LUCY_FORGET_REQUEST, w->forgotten, &w->found);
}

void lucy_people_delete_route(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const char *s = req->params[0];
    char *end;
    long long id = strtoll(s, &end, 10);
    struct forget_write w = {.f = req->ctx->forget, .id = id, .forgotten = json_array()};
    int rc = (*s && !*end && id > 0 && w.forgotten)
                 ? lucy_store_write(req->ctx->store, forget_write, &w, 0)
                 : (w.forgotten ? 0 : LUCY_ENOMEM);
    if (rc) {
        lucy_http_reply_err(
            resp, rc, "nothing was forgotten (the store refused the write); retry the DELETE");
    } else if (!w.found) {
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                              "no person with id %.40s: use an id from GET /people", s);
    } else {
        lucy_forgotten_log(w.forgotten, LUCY_FORGET_REQUEST);
        lucy_http_reply_text(resp, 204, "text/plain", "", 0);
    }
    json_decref(w.forgotten);
}

int lucy_forget_selected(sqlite3 *db, sqlite3_stmt *st, lucy_forget_one_fn one, const char *reason,
                         json_t *forgotten)
{
    json_t *keys = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(keys, json_string((const char *)sqlite3_column_text(st, 0)));
    sqlite3_reset(st);
    rc = rc == SQLITE_DONE ? (keys ? 0 : LUCY_ENOMEM) : lucy_store_err(rc);
    size_t i;
    json_t *key;
    json_array_foreach(keys, i, key)
    {
        int found;
        if (rc == 0)
            rc = one(db, json_string_value(key), reason, forgotten, &found);
    }
    json_decref(keys);
    return rc;
}

struct key_write {
    lucy_forget_one_fn one;
    const char *key;
    json_t *forgotten; /* out */
    int found;         /* out */
};

static int key_write(sqlite3 *db, void *arg)
{
    struct key_write *w = arg;
    json_array_clear(w->forgotten); /* a retried write starts over */
    return w->one(db, w->key, LUCY_FORGET_REQUEST, w->forgotten, &w->found);
}

void lucy_forget_reply(struct lucy_http_request *req, struct lucy_http_response *resp,
                       lucy_forget_one_fn one, const char *key, const char *not_found)
{
    struct key_write w = {.one = one, .key = key, .forgotten = json_array()};
    int rc = w.forgotten ? lucy_store_write(req->ctx->store, key_write, &w, 0) : LUCY_ENOMEM;
    if (rc)
        lucy_http_reply_err(
            resp, rc, "nothing was forgotten (the store refused the write); retry the DELETE");
    else if (!w.found)
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0, "%s", not_found);
    else {
        lucy_forgotten_log(w.forgotten, LUCY_FORGET_REQUEST);
        lucy_http_reply_text(resp, 204, "text/plain", "", 0);
    }
    json_decref(w.forgotten);
}
