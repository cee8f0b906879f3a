/*
 * vectors.c - table document_vectors (migration 52): the one file that
 * writes it, and lucy_index_similar(), the dense half of retrieval
 * (vectors.h, index.h).
 *
 * Similarity is brute force: every vector of the model is read and dotted
 * with the query's (both L2-normalised, so the dot is the cosine) and the
 * best `limit` kept. At 100k documents of 768 floats that is ~300 MB of
 * reads per query from the page cache; an ANN index (Qdrant's named dense
 * vector) is the way past that, see docs/decisions.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../clock.h"
#include "../error.h"
#include "../llm/embed.h"
#include "../store/row.h"
#include "../store/store.h"
#include "index.h"
#include "vectors.h"

/* A live document is due when it has no vector of the model, or one of
 * an older version of the row. */
#define DUE_WHERE                                                                                  \
    " FROM documents d LEFT JOIN document_vectors v ON v.doc_rowid = d.doc_rowid"                  \
    " WHERE d.deleted = 0 AND (v.doc_rowid IS NULL OR v.model != ?1"                               \
    " OR v.doc_updated_at_ms != d.updated_at_ms)"

int lucy_vectors_due(sqlite3 *db, const char *model, size_t max, struct lucy_vector_doc *out,
                     size_t *n)
{
    *n = 0;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "SELECT d.doc_rowid, d.updated_at_ms, d.text" DUE_WHERE
                             " ORDER BY d.doc_rowid LIMIT ?2",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct lucy_vector_doc *d = &out[*n];
        d->doc_rowid = sqlite3_column_int64(st, 0);
        d->updated_at_ms = sqlite3_column_int64(st, 1);
        d->text = lucy_row_dup(st, 2);
        if (!d->text) {
            sqlite3_reset(st);
            return LUCY_ENOMEM;
        }
        (*n)++;
    }
    if (rc == SQLITE_ROW)
        sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : lucy_store_err(rc);
}

int lucy_vectors_put(sqlite3 *db, const struct lucy_vector_doc *doc, const char *model, int dim,
                     const float *vector, int64_t now_ms)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(
        db,
        "INSERT OR REPLACE INTO document_vectors (doc_rowid, doc_updated_at_ms, model, dim, vector,"
        " embedded_at_ms) SELECT ?1, ?2, ?3, ?4, ?5, ?6 FROM documents"
        " WHERE doc_rowid = ?1 AND updated_at_ms = ?2 AND deleted = 0",
        &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, doc->doc_rowid);
    sqlite3_bind_int64(st, 2, doc->updated_at_ms);
    sqlite3_bind_text(st, 3, model, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, dim);
    sqlite3_bind_blob(st, 5, vector, dim * (int)sizeof *vector, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, now_ms);
    return lucy_row_step_done(st);
}

int lucy_vectors_sweep(sqlite3 *db)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "DELETE FROM document_vectors WHERE doc_rowid NOT IN"
                             " (SELECT doc_rowid FROM documents WHERE deleted = 0)",
                             &st);
    return rc ? rc : lucy_row_step_done(st);
}

int lucy_vectors_count(sqlite3 *db, const char *model, int64_t *pending, int64_t *stored)
{
    static const char *const sql[] = {
        "SELECT count(*)" DUE_WHERE,
        "SELECT count(*) FROM document_vectors WHERE model = ?1",
    };
    int64_t *out[] = {pending, stored};
    for (size_t i = 0; i < 2; i++) {
        sqlite3_stmt *st;
        int rc = lucy_store_stmt(db, sql[i], &st);
        if (rc)
            return rc;
        sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        *out[i] = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_reset(st);
        if (rc != SQLITE_ROW)
            return lucy_store_err(rc);
    }
    return 0;
}

int lucy_vectors_get(sqlite3 *db, int64_t doc_rowid, const char *model, float **vector, int *dim)
{
    *vector = NULL;
    *dim = 0;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "SELECT v.dim, v.vector FROM document_vectors v JOIN documents d"
                             " ON d.doc_rowid = v.doc_rowid WHERE v.doc_rowid = ?1 AND v.model = ?2"
                             " AND v.doc_updated_at_ms = d.updated_at_ms AND d.deleted = 0",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, doc_rowid);
    sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int n = sqlite3_column_int(st, 0);
        const void *blob = sqlite3_column_blob(st, 1);
        if (n > 0 && blob && sqlite3_column_bytes(st, 1) == n * (int)sizeof(float)) {
            *vector = malloc((size_t)n * sizeof(float));
            if (*vector) {
                memcpy(*vector, blob, (size_t)n * sizeof(float));
                *dim = n;
            }
            rc = *vector ? 0 : LUCY_ENOMEM;
        } else {
            rc = LUCY_ENOTFOUND;
        }
    } else {
        rc = rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
    }
    sqlite3_reset(st);
    return rc;
}

int lucy_vectors_dim(sqlite3 *db, const char *model, int *dim)
{
    *dim = 0;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "SELECT dim FROM document_vectors WHERE model = ?1 LIMIT 1", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *dim = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

/* ---- lucy_index_similar ------------------------------------------------------ */

struct best {
    int64_t doc_rowid; /* the document */
    double score;      /* its cosine with the query */
};

struct similar {
    const struct lucy_search_query *q;
    const char *model;
    const float *query; /* dim floats */
    int dim;
    struct best *best; /* q->limit slots, best first */
    size_t n_best;
    int64_t pending; /* documents without a current vector */
    struct lucy_search_result *out;
};

static int in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* Keeps (rowid, score) among the q->limit best. */
static void consider(struct similar *a, int64_t rowid, double score)
{
    size_t limit = (size_t)a->q->limit, i = a->n_best;
    if (i == limit && score <= a->best[limit - 1].score)
        return;
    if (i == limit)
        i--;
    else
        a->n_best++;
    while (i > 0 && a->best[i - 1].score < score) {
        a->best[i] = a->best[i - 1];
        i--;
    }
    a->best[i] = (struct best){rowid, score};
}

/* The hit of a kept document. */
static int fill_hit(sqlite3 *db, int64_t rowid, double score, struct lucy_search_hit *h)
{
    sqlite3_stmt *st;
    int rc =
        lucy_store_stmt(db,
                        "SELECT source, id, segment, contact, title, text, time_s, t0_ms, t1_ms"
                        " FROM documents WHERE doc_rowid = ?1",
                        &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, rowid);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
    }
    h->source = lucy_row_dup(st, 0);
    h->id = lucy_row_dup(st, 1);
    h->segment = sqlite3_column_int(st, 2);
    h->contact = lucy_row_dup(st, 3);
    h->title = lucy_row_dup(st, 4);
    h->snippet = lucy_index_snippet_html((const char *)sqlite3_column_text(st, 5));
    h->time_s = sqlite3_column_int64(st, 6);
    h->t0_ms = sqlite3_column_int64(st, 7);
    h->t1_ms = sqlite3_column_int64(st, 8);
    h->score = score;
    sqlite3_reset(st);
    return h->source && h->id && h->snippet ? 0 : LUCY_ENOMEM;
}

static int read_counts(sqlite3 *db, void *arg)
{
    struct similar *a = arg;
    int64_t stored;
    return lucy_vectors_count(db, a->model, &a->pending, &stored);
}

static void say_pending(struct lucy_search_result *out, int64_t pending)
{
    out->degraded = 1;
    snprintf(out->degraded_reason, sizeof out->degraded_reason,
             "%lld documents are still waiting for their vectors (the embedding server is "
             "down or catching up); they are found by BM25 only",
             (long long)pending);
}

static int read_similar(sqlite3 *db, void *arg)
{
    struct similar *a = arg;
    const struct lucy_search_query *q = a->q;
    int64_t stored;
    int rc = lucy_vectors_count(db, a->model, &a->pending, &stored);
    sqlite3_stmt *st;
    if (rc || (rc = lucy_store_stmt(
                   db,
                   "SELECT v.doc_rowid, v.vector, d.source, d.id, d.contact FROM document_vectors v"
                   " JOIN documents d ON d.doc_rowid = v.doc_rowid"
                   " WHERE v.model = ?1 AND v.dim = ?2 AND d.deleted = 0"
                   " AND (?3 IS NULL OR d.source = ?3) AND (?4 IS NULL OR d.contact = ?4)"
                   " AND d.time_s >= ?5 AND d.time_s <= ?6",
                   &st)))
        return rc;
    sqlite3_bind_text(st, 1, a->model, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, a->dim);
    lucy_row_bind_text(st, 3, q->source);
    lucy_row_bind_text(st, 4, q->contact);
    sqlite3_bind_int64(st, 5, q->from_s);
    sqlite3_bind_int64(st, 6, q->to_s);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const float *v = sqlite3_column_blob(st, 1);
        if (!v || sqlite3_column_bytes(st, 1) != a->dim * (int)sizeof(float))
            continue;
        if (q->restrict_ids) {
            const char *source = (const char *)sqlite3_column_text(st, 2);
            const char *id = (const char *)sqlite3_column_text(st, 3);
            const char *contact = (const char *)sqlite3_column_text(st, 4);
            if (!in_list(contact, q->contacts, q->n_contacts) &&
                !(source && strcmp(source, "call_recording") == 0 &&
                  in_list(id, q->recordings, q->n_recordings)))
                continue;
        }
        double dot = 0;
        for (int k = 0; k < a->dim; k++)
            dot += (double)v[k] * a->query[k];
        consider(a, sqlite3_column_int64(st, 0), dot);
    }
    if (rc != SQLITE_DONE)
        return lucy_store_err(rc);
    a->out->hits = calloc(a->n_best ? a->n_best : 1, sizeof *a->out->hits);
    if (!a->out->hits)
        return LUCY_ENOMEM;
    for (size_t i = 0; i < a->n_best; i++) {
        rc = fill_hit(db, a->best[i].doc_rowid, a->best[i].score, &a->out->hits[a->out->n]);
        a->out->n++;
        if (rc)
            return rc;
    }
    return 0;
}

int lucy_index_similar(struct lucy_index *ix, const struct lucy_search_query *q,
                       struct lucy_search_result *out)
{
    memset(out, 0, sizeof *out);
    out->backend = "dense";
    struct lucy_embed *e = lucy_index_embed(ix);
    if (!e)
        return LUCY_EUNAVAIL;
    if (!q->q || !*q->q || q->limit < 1 || q->limit > LUCY_SEARCH_RAW_MAX)
        return LUCY_EINVAL;
    float *query = NULL;
    int dim = 0;
    char err[256] = "";
    const char *text = q->q;
    if (lucy_embed_texts(e, &text, 1, &query, &dim, err, sizeof err)) {
        out->degraded = 1;
        snprintf(out->degraded_reason, sizeof out->degraded_reason,
                 "dense retrieval unavailable (%s); BM25 alone answers", err);
        return 0;
    }
    char why[320];
    int brc = lucy_index_similar_backend(ix, q, query, dim, out, why, sizeof why);
    if (brc == 0) { /* Qdrant's dense vector answered; documents still due say degraded */
        free(query);
        out->backend = "dense";
        struct similar c = {.model = lucy_embed_model(e)};
        if (lucy_store_read(lucy_index_store(ix), read_counts, &c) == 0 && c.pending > 0)
            say_pending(out, c.pending);
        return 0;
    }
    out->backend = "dense";
    struct similar a = {.q = q,
                        .model = lucy_embed_model(e),
                        .query = query,
                        .dim = dim,
                        .best = calloc((size_t)q->limit, sizeof(struct best)),
                        .out = out};
    int rc = a.best ? lucy_store_read(lucy_index_store(ix), read_similar, &a) : LUCY_ENOMEM;
    free(a.best);
    free(query);
    if (rc) {
        lucy_search_result_free(out);
        out->backend = "dense";
        return rc;
    }
    if (brc != LUCY_EINVAL) { /* the backend has dense vectors but could not answer */
        out->degraded = 1;
        snprintf(out->degraded_reason, sizeof out->degraded_reason,
                 "%.300s; answered from the local vectors", why);
    } else if (a.pending > 0) {
        say_pending(out, a.pending);
    }
    return 0;
}
