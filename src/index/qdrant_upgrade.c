/*
 * qdrant_upgrade.c - gives the Qdrant collection its named dense vector
 * (DESIGN §14; docs/qdrant.md "The upgrade"). Qdrant cannot add a named
 * vector to an existing collection, so a collection without it (made by
 * an earlier lucy, or before the first vector was computed), or with one
 * of another size, is replaced: <QDRANT_COLLECTION>_dense<dim> is created
 * with both vectors and the payload indexes, filled from the local copy
 * (documents + document_vectors, the source of truth), and
 * QDRANT_COLLECTION becomes its alias; the old collection is dropped.
 * Every step is idempotent, so a kill -9 anywhere is resumed by the next
 * ensure. qdrant.c calls lucy_qdrant_upgrade() from ensure and before an
 * upsert batch that brings vectors of a size the collection lacks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "../log.h"
#include "../store/row.h"
#include "../store/store.h"
#include "qdrant_int.h"

#define FILL_PAGE 128 /* documents per upsert while filling the new collection */

/* The body creating a collection: the sparse `text` and, when dim > 0,
 * the dense vector (cosine: lucy's vectors are L2-normalised). */
json_t *lucy_qdrant_collection_body(int dim)
{
    json_t *body = json_loads(lucy_qdrant_ensure_rows[0].body, 0, NULL);
    if (body && dim > 0)
        json_object_set_new(
            body, "vectors",
            json_pack("{s:{s:i,s:s}}", DENSE_VECTOR, "size", dim, "distance", "Cosine"));
    return body;
}

/* The name of the collection holding dense vectors of dim: the alias
 * QDRANT_COLLECTION points to it after an upgrade. */
void lucy_qdrant_dense_name(struct qdrant_index *s, int dim, char *out, size_t len)
{
    snprintf(out, len, "%s_dense%d", s->collection, dim);
}

/* One page of live documents, read to fill an upgraded collection. */
struct fill_page {
    int64_t after;                           /* doc_rowid cursor */
    struct lucy_index_item items[FILL_PAGE]; /* n items; strings malloc'd */
    size_t n;
};

static void fill_page_free(struct fill_page *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct lucy_doc *d = &p->items[i].doc;
        free((char *)d->source), free((char *)d->id), free((char *)d->contact);
        free((char *)d->title), free((char *)d->text);
    }
    p->n = 0;
}

static int read_fill_page(sqlite3 *db, void *arg)
{
    struct fill_page *p = arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "SELECT doc_rowid, source, id, segment, contact, title, text, time_s,"
                             " t0_ms, t1_ms FROM documents WHERE deleted = 0 AND doc_rowid > ?1"
                             " ORDER BY doc_rowid LIMIT ?2",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, p->after);
    sqlite3_bind_int(st, 2, FILL_PAGE);
    while (p->n < FILL_PAGE && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct lucy_index_item *it = &p->items[p->n++];
        memset(it, 0, sizeof *it);
        it->doc_rowid = sqlite3_column_int64(st, 0);
        it->doc = (struct lucy_doc){.source = lucy_row_dup(st, 1),
                                    .id = lucy_row_dup(st, 2),
                                    .segment = sqlite3_column_int(st, 3),
                                    .contact = lucy_row_dup(st, 4),
                                    .title = lucy_row_dup(st, 5),
                                    .text = lucy_row_dup(st, 6),
                                    .time_s = sqlite3_column_int64(st, 7),
                                    .t0_ms = sqlite3_column_int64(st, 8),
                                    .t1_ms = sqlite3_column_int64(st, 9)};
        if (!it->doc.source || !it->doc.id || !it->doc.text) {
            sqlite3_reset(st);
            return LUCY_ENOMEM;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : lucy_store_err(rc);
}

/* Makes QDRANT_COLLECTION an alias of target (replace = 1: it is an alias
 * already; both actions are one atomic change). */
int lucy_qdrant_alias_switch(struct qdrant_index *s, int replace, const char *target,
                             struct reply *r)
{
    json_t *actions = json_array();
    if (replace)
        json_array_append_new(actions,
                              json_pack("{s:{s:s}}", "delete_alias", "alias_name", s->collection));
    json_array_append_new(actions, json_pack("{s:{s:s,s:s}}", "create_alias", "collection_name",
                                             target, "alias_name", s->collection));
    json_t *body = json_pack("{s:o}", "actions", actions);
    int rc = body ? lucy_qdrant_call(s, "POST", "/collections/aliases", body, s->timeout_ms, r)
                  : LUCY_ENOMEM;
    json_decref(body);
    return rc;
}

/* The collection QDRANT_COLLECTION is an alias of, into out; "" = it is
 * no alias. 0 or LUCY_E* with r->error. */
int lucy_qdrant_alias_target(struct qdrant_index *s, char *out, size_t len, struct reply *r)
{
    out[0] = '\0';
    int rc = lucy_qdrant_call(s, "GET", "/aliases", NULL, s->timeout_ms, r);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(json_object_get(r->json, "result"), "aliases"), i, a)
    {
        const char *name = json_string_value(json_object_get(a, "alias_name"));
        const char *coll = json_string_value(json_object_get(a, "collection_name"));
        if (rc == 0 && name && coll && strcmp(name, s->collection) == 0)
            snprintf(out, len, "%s", coll);
    }
    return rc;
}

/* Fills target with every live document of the local copy, each with its
 * dense vector of size dim when computed. */
static int fill_collection(struct qdrant_index *s, const char *target, int dim, size_t *copied,
                           struct reply *r)
{
    struct fill_page *p = calloc(1, sizeof *p);
    int rc = p ? 0 : LUCY_ENOMEM;
    *copied = 0;
    memset(r, 0, sizeof *r);
    while (rc == 0) {
        if ((rc = lucy_store_read(s->store, read_fill_page, p)) || p->n == 0)
            break;
        rc = lucy_qdrant_send_range(s, target, dim, p->items, 0, p->n, 1, r);
        if (rc == 0)
            reply_free(r);
        *copied += rc == 0 ? p->n : 0;
        p->after = p->items[p->n - 1].doc_rowid;
        fill_page_free(p);
    }
    if (p)
        fill_page_free(p);
    free(p);
    if (rc && !r->error[0])
        snprintf(r->error, sizeof r->error, "%s", lucy_strerror(rc));
    return rc;
}

/*
 * Gives QDRANT_COLLECTION a dense vector of size dim (Qdrant cannot add a
 * named vector to an existing collection): creates <collection>_dense<dim>
 * with both vectors and the payload indexes, fills it from the local copy
 * (documents + document_vectors: the source of truth), then points the
 * alias QDRANT_COLLECTION at it and drops the old collection. Every step
 * is idempotent and the old collection answers until the switch, so a
 * kill -9 anywhere is resumed by the next ensure (ensure_collection
 * creates the alias when only the drop happened). Caller holds ensure_lock
 * and is the indexer or the start-up ensure, so no write reaches the old
 * collection meanwhile. 0 or LUCY_E* with err.
 */
int lucy_qdrant_upgrade(struct qdrant_index *s, int dim, char *err, size_t errlen)
{
    char target[300], old[300], path[600];
    struct reply r;
    lucy_qdrant_dense_name(s, dim, target, sizeof target);
    int rc = lucy_qdrant_alias_target(s, old, sizeof old, &r);
    if (rc)
        snprintf(err, errlen, "cannot list the aliases: %s", r.error);
    reply_free(&r);
    if (rc == 0 && strcmp(old, target) == 0) { /* switched already */
        lucy_qdrant_set_dense_dim(s, dim);
        return 0;
    }
    lucy_log(LUCY_LOG_INFO, "qdrant collection upgrade: adding the dense vector", "{s:s,s:s,s:i}",
             "collection", s->collection, "into", target, "dim", dim);
    snprintf(path, sizeof path, "/collections/%s", target);
    json_t *body = rc ? NULL : lucy_qdrant_collection_body(dim);
    if (rc == 0) {
        rc = body ? lucy_qdrant_call(s, "PUT", path, body, s->timeout_ms, &r) : LUCY_ENOMEM;
        if (rc == LUCY_ECONFLICT) /* a resumed upgrade: filled again below */
            rc = 0;
        if (rc)
            snprintf(err, errlen, "cannot create %s: %s", target, r.error);
        reply_free(&r);
    }
    json_decref(body);
    snprintf(path, sizeof path, "/collections/%s/index?wait=true", target);
    for (size_t i = 1; rc == 0 && i < LUCY_QDRANT_N_ENSURE; i++) {
        body = json_loads(lucy_qdrant_ensure_rows[i].body, 0, NULL);
        rc = body ? lucy_qdrant_call(s, "PUT", path, body, s->timeout_ms, &r) : LUCY_ENOMEM;
        json_decref(body);
        if (rc)
            snprintf(err, errlen, "cannot create the payload index %s on %s: %s",
                     lucy_qdrant_ensure_rows[i].name, target, r.error);
        reply_free(&r);
    }
    size_t copied = 0;
    if (rc == 0 && (rc = fill_collection(s, target, dim, &copied, &r)))
        snprintf(err, errlen, "cannot copy the documents into %s: %s", target, r.error);
    reply_free(&r);
    if (rc == 0 && !old[0]) { /* a plain collection: dropped, then its name becomes the alias */
        snprintf(path, sizeof path, "/collections/%s", s->collection);
        rc = lucy_qdrant_call(s, "DELETE", path, NULL, s->timeout_ms, &r);
        if (rc == LUCY_ENOTFOUND)
            rc = 0;
        if (rc)
            snprintf(err, errlen, "cannot drop the old collection %s: %s", s->collection, r.error);
        reply_free(&r);
    }
    if (rc == 0 && (rc = lucy_qdrant_alias_switch(s, old[0] != 0, target, &r)))
        snprintf(err, errlen, "cannot point the alias %s at %s: %s", s->collection, target,
                 r.error);
    reply_free(&r);
    if (rc == 0 && old[0]) { /* the previous dense collection is no longer used */
        snprintf(path, sizeof path, "/collections/%s", old);
        lucy_qdrant_call(s, "DELETE", path, NULL, s->timeout_ms, &r);
        reply_free(&r);
    }
    if (rc)
        return rc;
    lucy_qdrant_set_dense_dim(s, dim);
    lucy_log(LUCY_LOG_INFO, "qdrant collection upgrade finished", "{s:s,s:s,s:I}", "alias",
             s->collection, "collection", target, "points", (json_int_t)copied);
    return 0;
}
