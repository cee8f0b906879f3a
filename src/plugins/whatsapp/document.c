/*
 * document.c - the one rule for a WhatsApp message's search document:
 * its title and its text (DESIGN §1, §8; STYLE rule 11).
 *
 * Title: the sender's name as the local wa_contacts row knows it now - the
 * user's alias, else the WhatsApp profile name, else the contact id. The
 * inbox worker copies a newer alias shared by another instance into that
 * row (alias.c) before it indexes, so the row is all this file reads: no
 * kv call inside a store write (a hung Redis must not hold the writer).
 *
 * Text: what payload.c extracts by message type, except for voice notes,
 * whose text follows the media's state (voice_texts[] below) and finally
 * its transcript.
 *
 * Everything here runs inside a store write (lucy_store_write function, on
 * the writer thread) with the db it is given, statements from the store's
 * cache, so the document commits or rolls back with the data it shows.
 * Callers: worker.c (new messages, a contact's name copied from the kv),
 * media.c (a transcript), contacts.c (PUT /contacts/{id}).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../error.h"
#include "../../index/index.h"
#include "../../store/row.h"
#include "../../store/store.h"
#include "whatsapp.h"

/* ---- text ----------------------------------------------------------------- */

/* A voice note's text before it has a transcript, by whether it will be
 * downloaded. */
static const char *const voice_texts[] = {
    [0] = "voice note (not downloaded)", /* no token or no media id: never fetched */
    [1] = "voice note",                  /* queued for download and transcription */
};

const char *lucy_wa_voice_note_text(int downloadable)
{
    return voice_texts[downloadable != 0];
}

char *lucy_wa_transcript_text(const char *transcript)
{
    char *text = NULL;
    if (asprintf(&text, "voice note%s%s", *transcript ? ": " : " (no speech)", transcript) < 0)
        return NULL;
    return text;
}

/* ---- title ---------------------------------------------------------------- */

static const char sql_title[] =
    "SELECT coalesce(user_alias, profile_name) FROM wa_contacts WHERE id = ?1";

int lucy_wa_contact_title(sqlite3 *db, const char *id, char **title)
{
    *title = NULL;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_title, &st);
    if (rc)
        return rc;
    lucy_row_bind_text(st, 1, id);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        *title = lucy_row_dup(st, 0);
    else if (src == SQLITE_ROW || src == SQLITE_DONE)
        *title = strdup(id);
    else
        return lucy_store_err(src);
    return *title ? 0 : LUCY_ENOMEM;
}

/* ---- one message's document ----------------------------------------------- */

static const char sql_message[] =
    "SELECT sender, timestamp_s, received_at_ms FROM wa_messages WHERE wamid = ?1";

int lucy_wa_index_message(sqlite3 *db, const char *wamid, const char *text)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_message, &st);
    if (rc)
        return rc;
    lucy_row_bind_text(st, 1, wamid);
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW)
        return src == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(src);
    char *sender = lucy_row_dup(st, 0);
    int64_t timestamp_s = sqlite3_column_int64(st, 1);
    int64_t received_ms = sqlite3_column_int64(st, 2);
    sqlite3_reset(st);
    char *title = NULL;
    rc = sender ? lucy_wa_contact_title(db, sender, &title) : LUCY_ENOMEM;
    if (rc == 0) {
        struct lucy_doc doc = {
            .source = "whatsapp",
            .id = wamid,
            .segment = 0,
            .contact = sender,
            .title = title,
            .text = text,
            .time_s = timestamp_s > 0 ? timestamp_s : received_ms / 1000,
        };
        rc = lucy_outbox_put(db, &doc);
    }
    free(title);
    free(sender);
    return rc;
}

/* ---- a contact's documents after its name changed ------------------------- */

/* One indexed message document, copied out before it is re-queued (the
 * select must be finished before lucy_outbox_put changes `documents`). */
struct titled_doc {
    char *id; /* wamid */
    int segment;
    char *contact; /* may be NULL */
    char *text;
    int64_t time_s;
    int64_t t0_ms, t1_ms;
};

static void titled_docs_free(struct titled_doc *docs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(docs[i].id), free(docs[i].contact), free(docs[i].text);
    free(docs);
}

static const char sql_stale_docs[] =
    "SELECT d.id, d.segment, d.contact, d.text, d.time_s, d.t0_ms, d.t1_ms "
    "FROM wa_messages m JOIN documents d ON d.source = 'whatsapp' AND d.id = m.wamid "
    "WHERE m.sender = ?1 AND d.deleted = 0 AND d.title IS NOT ?2";

/* The live whatsapp documents of id's messages whose title is not title. */
static int docs_to_retitle(sqlite3 *db, const char *id, const char *title, struct titled_doc **out,
                           size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, sql_stale_docs, &st);
    if (err)
        return err;
    lucy_row_bind_text(st, 1, id);
    lucy_row_bind_text(st, 2, title);
    struct titled_doc *docs = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct titled_doc *grown = realloc(docs, ncap * sizeof *docs);
            if (!grown) {
                err = LUCY_ENOMEM;
                break;
            }
            docs = grown, cap = ncap;
        }
        struct titled_doc *d = &docs[n++];
        d->id = lucy_row_dup(st, 0);
        d->segment = sqlite3_column_int(st, 1);
        d->contact = lucy_row_dup(st, 2);
        d->text = lucy_row_dup(st, 3);
        d->time_s = sqlite3_column_int64(st, 4);
        d->t0_ms = sqlite3_column_int64(st, 5);
        d->t1_ms = sqlite3_column_int64(st, 6);
        if (!d->id || !d->text || (sqlite3_column_type(st, 2) != SQLITE_NULL && !d->contact))
            err = LUCY_ENOMEM;
    }
    if (!err && rc != SQLITE_DONE)
        err = lucy_store_err(rc);
    sqlite3_reset(st);
    if (err) {
        titled_docs_free(docs, n);
        return err;
    }
    *out = docs;
    *n_out = n;
    return 0;
}

int lucy_wa_contact_retitle(sqlite3 *db, const char *id, int64_t *requeued)
{
    if (requeued)
        *requeued = 0;
    char *title = NULL;
    struct titled_doc *docs = NULL;
    size_t n = 0;
    int rc = lucy_wa_contact_title(db, id, &title);
    if (rc == 0)
        rc = docs_to_retitle(db, id, title, &docs, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct lucy_doc doc = {
            .source = "whatsapp",
            .id = docs[i].id,
            .segment = docs[i].segment,
            .contact = docs[i].contact,
            .title = title,
            .text = docs[i].text,
            .time_s = docs[i].time_s,
            .t0_ms = docs[i].t0_ms,
            .t1_ms = docs[i].t1_ms,
        };
        rc = lucy_outbox_put(db, &doc);
    }
    if (rc == 0 && requeued)
        *requeued = (int64_t)n;
    titled_docs_free(docs, n);
    free(title);
    return rc;
}
