/*
 * index.h - the search index (DESIGN §1) and its outbox.
 *
 * Documents: one per transcript segment or message, identified by
 * (source, id, segment). Producers never talk to the index: inside their
 * own store write (the same transaction as the data, so both commit or
 * neither) they call lucy_outbox_put() / lucy_outbox_delete(). The indexer
 * thread drains the outbox into the configured backend
 * (struct lucy_index_ops: sqlite FTS5 now, Qdrant later), retrying with
 * backoff; nothing is lost while a backend is down or full.
 */
#ifndef LUCY_INDEX_H
#define LUCY_INDEX_H

#include <sqlite3.h>
#include <stdint.h>

struct lucy_doc {
    const char *source;       /* "call_recording" or "whatsapp" */
    const char *id;           /* recording id (hex SHA-256) or wamid */
    int segment;              /* segment index within id; 0 for messages */
    const char *contact;      /* wa_id / alias, or NULL */
    const char *title;        /* display title (file name, contact name) */
    const char *text;         /* the searchable text, UTF-8 */
    int64_t time_s;           /* Unix seconds of the call / message */
    int64_t t0_ms, t1_ms;     /* segment offsets for recordings; 0 otherwise */
};

/* Queues doc for indexing. Call inside a lucy_store_write() function; all
 * strings are copied. Returns 0 or a LUCY_E* code. */
int lucy_outbox_put(sqlite3 *db, const struct lucy_doc *doc);

/* Queues the removal of every document of (source, id). Same rules. */
int lucy_outbox_delete(sqlite3 *db, const char *source, const char *id);

#endif
