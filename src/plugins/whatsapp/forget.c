/*
 * forget.c - forgetting WhatsApp messages (DESIGN §15 Forget): DELETE
 * /messages/{wamid}, and the plugin's row of the forget registry
 * (src/people/forget.h) for DELETE /people/{id} and LUCY_RETENTION_DAYS.
 *
 * Forgetting a message, in one store write: its voice note (the file lucy
 * downloaded into its data dir, and the wa_media row), its search
 * document (lucy_outbox_delete: gone from SQLite search at once, from
 * Qdrant when the indexer gets to it), its wa_messages row, the raw body
 * it came in once no other message or status of that body is left (a
 * body that carried several messages keeps its bytes until the last of
 * them is forgotten), and a tombstone of its wamid: the inbox stores a
 * tombstoned wamid no more (inbox.c), so Meta's retry of an acknowledged
 * delivery does not bring it back.
 *
 * This file is the one deleter of wa_messages, wa_media and
 * wa_inbox_bodies rows (inbox.c, worker.c and media.c insert and update).
 * The voice note file is removed inside the write: if the write then
 * fails, the message stays without its audio (its transcript stays) and a
 * retried DELETE finishes the job.
 *
 * DELETE answers 204 when the message is forgotten, also when it was
 * already (the tombstone knows the wamid); 404 for a wamid never seen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../clock.h"
#include "../../error.h"
#include "../../http/http.h"
#include "../../index/index.h"
#include "../../lucy.h"
#include "../../people/forget.h"
#include "../../store/row.h"
#include "../../store/store.h"
#include "../../store/tombstones.h"
#include "whatsapp.h"

#define WAMID_MAX 256 /* longest wamid forgotten in a batch */

/* Runs one statement with ?1 = text. */
static int exec_text(sqlite3 *db, const char *sql, const char *text)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    return lucy_row_step_done(st);
}

/* Removes the message's downloaded voice note, if any. */
static int forget_media_file(sqlite3 *db, const char *wamid)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "SELECT path FROM wa_media WHERE wamid = ?1 AND path != ''", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, wamid, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        unlink((const char *)sqlite3_column_text(st, 0)); /* gone already: fine */
    sqlite3_reset(st);
    return src == SQLITE_ROW || src == SQLITE_DONE ? 0 : lucy_store_err(src);
}

static int forget_message(sqlite3 *db, const char *wamid, const char *reason, json_t *forgotten,
                          int *found)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "SELECT body_id FROM wa_messages WHERE wamid = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, wamid, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    sqlite3_int64 body_id = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (src == SQLITE_DONE) { /* no such message (any more) */
        rc = lucy_forget_wamid_tombstoned(db, wamid);
        *found = rc == 1;
        return rc < 0 ? rc : 0;
    }
    if (src != SQLITE_ROW)
        return lucy_store_err(src);
    *found = 1;
    if ((rc = forget_media_file(db, wamid)) != 0 ||
        (rc = exec_text(db, "DELETE FROM wa_media WHERE wamid = ?1", wamid)) != 0 ||
        (rc = exec_text(db, "DELETE FROM wa_messages WHERE wamid = ?1", wamid)) != 0 ||
        (rc = lucy_outbox_delete(db, "whatsapp", wamid)) != 0)
        return rc;
    rc = lucy_store_stmt(db,
                         "DELETE FROM wa_inbox_bodies WHERE id = ?1"
                         " AND NOT EXISTS (SELECT 1 FROM wa_messages WHERE body_id = ?1)"
                         " AND NOT EXISTS (SELECT 1 FROM wa_statuses WHERE body_id = ?1)",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, body_id);
    if ((rc = lucy_row_step_done(st)) != 0)
        return rc;
    rc = lucy_tombstone_put(db, LUCY_TOMBSTONE_MESSAGE, wamid, reason, lucy_wall_ms());
    if (rc == 0)
        lucy_forgotten_add(forgotten, "message", wamid);
    return rc;
}

/* The registry's person slot: messages from the person's WhatsApp ids
 * (the relation of GET /people/{id}/timeline). */
static int forget_person(sqlite3 *db, int64_t person, const char *reason, json_t *forgotten,
                         void *arg)
{
    (void)arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "SELECT wamid FROM wa_messages WHERE sender IN"
                             " (SELECT value FROM people_identifiers WHERE person = ?1"
                             "  AND kind IN ('wa_id', 'user_id'))",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, person);
    return lucy_forget_selected(db, st, forget_message, reason, forgotten);
}

/* The registry's older slot: messages sent before before_ms. */
static int forget_older(sqlite3 *db, int64_t before_ms, int max, json_t *forgotten, void *arg)
{
    (void)arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "SELECT wamid FROM wa_messages WHERE timestamp_s * 1000 < ?1"
                             " ORDER BY timestamp_s, seq LIMIT ?2",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, before_ms);
    sqlite3_bind_int(st, 2, max);
    return lucy_forget_selected(db, st, forget_message, LUCY_FORGET_RETENTION, forgotten);
}

int lucy_wa_forget_register(struct lucy_wa *wa)
{
    const struct lucy_forgetter row = {
        .name = "whatsapp",
        .person = forget_person,
        .older = forget_older,
        .arg = wa,
    };
    return wa->ctx->forget ? lucy_people_add_forgetter(wa->ctx->forget, &row) : 0;
}

/* ---- DELETE /messages/{wamid} --------------------------------------------- */

static void delete_message(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    char not_found[320];
    snprintf(not_found, sizeof not_found,
             "no message with wamid %.120s: use the wamid of a message as GET /contacts/{id} or "
             "/search lists it",
             req->params[0]);
    lucy_forget_reply(req, resp, forget_message, req->params[0], not_found);
}

const struct lucy_route lucy_wa_forget_routes[] = {
    {"DELETE", "/messages/{wamid}", delete_message, 1, 0, NULL},
};
const size_t lucy_wa_forget_routes_count =
    sizeof lucy_wa_forget_routes / sizeof lucy_wa_forget_routes[0];
