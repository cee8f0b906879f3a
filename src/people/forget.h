/*
 * forget.h - forgetting across plugins (DESIGN §15 Forget), without the
 * core calling a plugin: a registry the plugins register into.
 *
 * src/people/ is core and knows no plugin. Each plugin that holds a
 * person's data (call_recordings: calls; whatsapp: messages) adds one
 * struct lucy_forgetter at init with lucy_people_add_forgetter(); DELETE
 * /people/{id} and retention (retention.c) call every row, inside ONE
 * store write, so a person's calls, messages and the person go together
 * or not at all. The registry is ctx->forget, made by the people plugin
 * (the first plugin that needs it: listed before call_recordings and
 * whatsapp) and read-only once the plugins are initialised, so any thread
 * may call it without a lock.
 *
 * Each forgetter appends one {"kind", "id"} object per item it forgot to
 * the `forgotten` array it is handed; the caller logs them after the
 * commit (an item is forgotten only once that is on disk).
 */
#ifndef LUCY_PEOPLE_FORGET_H
#define LUCY_PEOPLE_FORGET_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

struct lucy_http_request;
struct lucy_http_response;

#define LUCY_FORGETTERS_MAX 8

/* One plugin's part. Every slot runs inside the caller's store write (db)
 * on the writer thread and returns 0 or a LUCY_E* code (the write then
 * rolls back). NULL slot = nothing of that kind. */
struct lucy_forgetter {
    const char *name; /* the plugin: "call_recordings" */
    /* Forgets every item of person (its calls, its messages); reason is
     * LUCY_FORGET_REQUEST or _RETENTION (store/tombstones.h). */
    int (*person)(sqlite3 *db, int64_t person, const char *reason, json_t *forgotten, void *arg);
    /* Forgets at most max items older than before_ms (Unix ms: a call's
     * started_at, a message's timestamp), oldest first. */
    int (*older)(sqlite3 *db, int64_t before_ms, int max, json_t *forgotten, void *arg);
    void *arg; /* the plugin's state; must outlive the registry */
};

struct lucy_people_forget {
    struct lucy_forgetter rows[LUCY_FORGETTERS_MAX]; /* registered, in plugin order */
    int n;                                           /* used rows */
};

/* Adds row (copied) to f. Start-up only (a plugin's init). 0 or
 * LUCY_ENOMEM when LUCY_FORGETTERS_MAX rows are in use; LUCY_EINVAL when
 * f is NULL (no people plugin: nothing to register into). */
int lucy_people_add_forgetter(struct lucy_people_forget *f, const struct lucy_forgetter *row);

/* Forgets person id with everything the forgetters hold of it, the
 * person's own rows (lucy_people_delete) and tombstones it. *found = 0
 * when id is neither a person nor a forgotten one (nothing done), else 1.
 * Inside a store write. 0 or a LUCY_E* code. */
int lucy_people_forget_person(const struct lucy_people_forget *f, sqlite3 *db, int64_t id,
                              const char *reason, json_t *forgotten, int *found);

/* Every forgetter's older(), each with at most max items. Inside a store
 * write. 0 or a LUCY_E* code. */
int lucy_people_forget_older(const struct lucy_people_forget *f, sqlite3 *db, int64_t before_ms,
                             int max, json_t *forgotten);

/* A plugin's rule for forgetting one item by its key (a recording id, a
 * wamid) inside a store write: *found = 0 when the key names nothing and
 * no tombstone. 0 or a LUCY_E* code (the write rolls back). */
typedef int (*lucy_forget_one_fn)(sqlite3 *db, const char *key, const char *reason,
                                  json_t *forgotten, int *found);

/* Steps st (prepared by a forgetter; column 0 is a key) and forgets each
 * key with one: for the person and older slots. Keys are read first, then
 * forgotten (one may delete rows st reads). st is reset. Inside a store
 * write. 0 or a LUCY_E* code. */
int lucy_forget_selected(sqlite3 *db, sqlite3_stmt *st, lucy_forget_one_fn one, const char *reason,
                         json_t *forgotten);

/* A DELETE of one item (DESIGN §15): one store write of one(key), then 204
 * with each forgotten item logged; 404 not_found with not_found (a
 * sentence naming the key and where ids come from) when nothing had that
 * key; the store's error (503/507, "retry the DELETE") otherwise, never
 * 500. HTTP pool thread. */
void lucy_forget_reply(struct lucy_http_request *req, struct lucy_http_response *resp,
                       lucy_forget_one_fn one, const char *key, const char *not_found);

/* Appends {"kind": kind, "id": id} to forgotten (a JSON array; NULL =
 * not collected). For forgetters. */
void lucy_forgotten_add(json_t *forgotten, const char *kind, const char *id);

/* Logs one INFO line per item of forgotten, with reason. Any thread. */
void lucy_forgotten_log(const json_t *forgotten, const char *reason);

#endif
