/*
 * sqlite.c - the embedded search backend: SQLite FTS5 ranked by bm25.
 *
 * The index is the FTS5 table documents_fts(title, text) in lucy's own
 * store (migration 10), tokenizer `unicode61 remove_diacritics 2` (case-
 * and accent-insensitive), rowid = documents.doc_rowid. It keeps its own
 * copy of the text, so removing a row needs only the rowid even after the
 * document itself changed or was purged. Filters (source, contact, time,
 * a person's contacts and recordings as JSON arrays through json_each)
 * come from a join with `documents`, which also hides documents that were
 * deleted but not yet removed from the index.
 *
 * Writes go through the store's writer thread (lucy_store_write), reads
 * through its read pool, so this backend has no lock of its own and every
 * slot is thread-safe.
 *
 * Snippets: made in C by lucy_index_hit_snippet() (lucy_sparse_snippet(),
 * the Qdrant backend's too) for the kept hits only: the text HTML-escaped,
 * the query's terms in <mark> ... </mark>, so a document can never inject
 * markup into a reply. A grouped search (LUCY_SNIPPETS_LATER) gets the text
 * instead and makes the snippets of the hits it shows; retrieval
 * (LUCY_SNIPPETS_NONE) gets none. Scores are -bm25() so
 * higher is better (SQLite: "the better the match, the numerically
 * smaller the value returned" by bm25).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../error.h"
#include "../store/row.h"
#include "../store/store.h"
#include "index.h"
#include "sparse.h"

/* bm25 column weights: a word in the title (file name, contact name)
 * counts less than a word that was said or written. */
#define WEIGHT_TITLE 0.5
#define WEIGHT_TEXT  1.0

struct sqlite_index {
    struct lucy_store *store;   /* lucy's store (not owned) */
    struct lucy_tokenizer *tok; /* for snippets (sparse.c); thread-safe */
};

/* Objects the backend needs (created by migration 10). */
static const char *const required_tables[] = {"documents", "documents_fts", "outbox", NULL};

static int sqlite_open(const struct lucy_config *cfg, struct lucy_store *store, void **state,
                       char *err, size_t errlen)
{
    (void)cfg;
    struct sqlite_index *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return LUCY_ENOMEM;
    }
    s->store = store;
    int rc = lucy_tokenizer_open(&s->tok);
    if (rc) {
        snprintf(err, errlen, "cannot open the FTS5 tokenizer for snippets: %s", lucy_strerror(rc));
        free(s);
        return rc;
    }
    *state = s;
    return 0;
}

static void sqlite_close(void *state)
{
    struct sqlite_index *s = state;
    if (s)
        lucy_tokenizer_close(s->tok);
    free(s);
}

/* ---- ensure / stats helpers ---------------------------------------------- */

struct tables_arg {
    json_t *ensured, *pending; /* arrays of table names */
};

static int read_tables(sqlite3 *db, void *arg)
{
    struct tables_arg *a = arg;
    for (int i = 0; required_tables[i]; i++) {
        sqlite3_stmt *st;
        int err = lucy_store_stmt(
            db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", &st);
        if (err)
            return err;
        sqlite3_bind_text(st, 1, required_tables[i], -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return lucy_store_err(rc);
        json_array_append_new(rc == SQLITE_ROW ? a->ensured : a->pending,
                              json_string(required_tables[i]));
    }
    return 0;
}

static int sqlite_ensure(void *state, char *err, size_t errlen)
{
    struct sqlite_index *s = state;
    struct tables_arg a = {json_array(), json_array()};
    int rc = (a.ensured && a.pending) ? lucy_store_read(s->store, read_tables, &a) : LUCY_ENOMEM;
    if (rc == 0 && json_array_size(a.pending) > 0) {
        snprintf(err, errlen, "table %s is missing from the store (migration 10 not applied?)",
                 json_string_value(json_array_get(a.pending, 0)));
        rc = LUCY_EUNAVAIL;
    } else if (rc) {
        snprintf(err, errlen, "cannot read the store's tables: %s", lucy_strerror(rc));
    }
    json_decref(a.ensured);
    json_decref(a.pending);
    return rc;
}

/* ---- upsert / delete ------------------------------------------------------ */

struct batch_arg {
    struct lucy_index_item *items; /* the batch */
    size_t n;                      /* its length */
    int upsert;                    /* 1: delete + insert; 0: delete only */
};

static int write_batch(sqlite3 *db, void *arg)
{
    struct batch_arg *b = arg;
    for (size_t i = 0; i < b->n; i++) {
        const struct lucy_index_item *it = &b->items[i];
        sqlite3_stmt *st;
        int rc = lucy_store_stmt(db, "DELETE FROM documents_fts WHERE rowid = ?", &st);
        if (rc)
            return rc;
        sqlite3_bind_int64(st, 1, it->doc_rowid);
        if ((rc = lucy_row_step_done(st)))
            return rc;
        if (!b->upsert)
            continue;
        rc = lucy_store_stmt(db, "INSERT INTO documents_fts (rowid, title, text) VALUES (?, ?, ?)",
                             &st);
        if (rc)
            return rc;
        sqlite3_bind_int64(st, 1, it->doc_rowid);
        sqlite3_bind_text(st, 2, it->doc.title ? it->doc.title : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, it->doc.text ? it->doc.text : "", -1, SQLITE_STATIC);
        if ((rc = lucy_row_step_done(st)))
            return rc;
    }
    return 0;
}

static int run_batch(struct sqlite_index *s, struct lucy_index_item *items, size_t n, int upsert,
                     char *err, size_t errlen)
{
    struct batch_arg b = {items, n, upsert};
    int rc = lucy_store_write(s->store, write_batch, &b, 0);
    if (rc)
        snprintf(err, errlen, "cannot write the FTS index: %s", lucy_strerror(rc));
    return rc;
}

static int sqlite_upsert_batch(void *state, struct lucy_index_item *items, size_t n, char *err,
                               size_t errlen)
{
    return run_batch(state, items, n, 1, err, errlen);
}

static int sqlite_delete(void *state, struct lucy_index_item *items, size_t n, char *err,
                         size_t errlen)
{
    return run_batch(state, items, n, 0, err, errlen);
}

/* ---- search --------------------------------------------------------------- */

/* The ranking only: snippets are made in C for the ?6 rows kept
 * (lucy_sparse_snippet(), as the Qdrant backend does). FTS5's snippet()
 * in the ranking query ran for every match before LIMIT, and in a second
 * query per kept row it re-read the term's whole doclist each time: 8x a
 * raw MATCH for a word in 10 % of 100,000 segments (scripts/bench-search).
 * With a filter (source, contact, person, dates) each match joins
 * `documents`; without one the FTS5 table is ranked alone (every row there
 * is a live document: a deleted one leaves documents_fts in the same
 * write), sparing a documents lookup per match - ties of bm25 at the
 * window's edge may then keep a different one of the tied. */
#define SEARCH_COLUMNS                                                                             \
    "d.source, d.id, d.segment, d.contact, d.title, d.time_s, d.t0_ms, d.t1_ms, d.text"

static const char search_sql[] =
    "SELECT " SEARCH_COLUMNS ", bm25(documents_fts, ?8, ?9) AS rank_bm25"
    " FROM documents_fts JOIN documents d ON d.doc_rowid = documents_fts.rowid"
    " WHERE documents_fts MATCH ?1 AND d.deleted = 0"
    " AND (?2 IS NULL OR d.source = ?2) AND (?3 IS NULL OR d.contact = ?3)"
    " AND d.time_s >= ?4 AND d.time_s <= ?5"
    " AND (?10 IS NULL OR d.contact IN (SELECT value FROM json_each(?10))"
    " OR (d.source = 'call_recording' AND d.id IN (SELECT value FROM json_each(?11))))"
    " ORDER BY rank_bm25, d.time_s DESC, d.doc_rowid LIMIT ?6";

/* The snippet as HTML: escapes the text, turns \x01/\x02 into marks. */
char *lucy_index_snippet_html(const char *raw)
{
    static const struct {
        char c;
        const char *html;
    } map[] = {{'&', "&amp;"},  {'<', "&lt;"},      {'>', "&gt;"},
               {'"', "&quot;"}, {'\x01', "<mark>"}, {'\x02', "</mark>"}};
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    if (!out)
        return NULL;
    for (const char *p = raw ? raw : ""; *p; p++) {
        size_t i = 0;
        while (i < sizeof map / sizeof map[0] && map[i].c != *p)
            i++;
        if (i < sizeof map / sizeof map[0])
            fputs(map[i].html, out);
        else
            fputc(*p, out);
    }
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Without a filter: the best ?6 of the FTS5 table alone, then their
 * documents, in no order: the rows are put in search_sql's order
 * (bm25, newer, doc_rowid) by cmp_ranked in C - SQLite sorting them in
 * the query copied every row with its text into a sorter (10 % of the
 * query for a word in 1 % of 100,000 segments; docs/benchmarks.md). */
static const char search_open_sql[] =
    "WITH top AS (SELECT rowid, bm25(documents_fts, ?8, ?9) AS rank_bm25 FROM documents_fts"
    " WHERE documents_fts MATCH ?1 ORDER BY rank_bm25 LIMIT ?6)"
    " SELECT " SEARCH_COLUMNS ", top.rank_bm25, d.doc_rowid FROM top"
    " JOIN documents d ON d.doc_rowid = top.rowid WHERE d.deleted = 0";

/* A hit of search_open_sql with what orders it. */
struct ranked {
    struct lucy_search_hit hit; /* the hit (its strings move with it) */
    double rank_bm25;           /* bm25(): smaller is better */
    int64_t doc_rowid;          /* the last tie-break */
};

/* search_sql's ORDER BY rank_bm25, d.time_s DESC, d.doc_rowid. */
static int cmp_ranked(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->rank_bm25 != y->rank_bm25)
        return x->rank_bm25 < y->rank_bm25 ? -1 : 1;
    if (x->hit.time_s != y->hit.time_s)
        return x->hit.time_s > y->hit.time_s ? -1 : 1;
    return (x->doc_rowid > y->doc_rowid) - (x->doc_rowid < y->doc_rowid);
}

/* Puts r's hits (of search_open_sql; rowids[i] = hit i's doc_rowid,
 * ranks[i] its bm25) in search_sql's order. */
static int sort_open(struct lucy_search_result *r, const int64_t *rowids, const double *ranks)
{
    struct ranked *v = calloc(r->n ? r->n : 1, sizeof *v);
    if (!v)
        return LUCY_ENOMEM;
    for (size_t i = 0; i < r->n; i++)
        v[i] = (struct ranked){r->hits[i], ranks[i], rowids[i]};
    qsort(v, r->n, sizeof *v, cmp_ranked);
    for (size_t i = 0; i < r->n; i++)
        r->hits[i] = v[i].hit;
    free(v);
    return 0;
}

struct search_arg {
    const struct lucy_search_query *q; /* the request */
    const char *match;                 /* FTS5 expression */
    char *contacts, *recordings;       /* person filter as JSON arrays, or NULL */
    struct lucy_search_result *out;    /* filled */
    struct lucy_tokenizer *tok;        /* for the snippets */
    struct lucy_sparse terms;          /* the query's terms, to mark in snippets */
};

/* v[0..n) as a JSON array of strings (malloc'd), NULL on failure. */
static char *json_strings(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(v[i]))) {
            json_decref(a);
            return NULL;
        }
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

static int read_search(sqlite3 *db, void *arg)
{
    struct search_arg *a = arg;
    const struct lucy_search_query *q = a->q;
    sqlite3_stmt *st;
    int open =
        !q->source && !q->contact && !a->contacts && q->from_s == INT64_MIN && q->to_s == INT64_MAX;
    int rc = lucy_store_stmt(db, open ? search_open_sql : search_sql, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, a->match, -1, SQLITE_STATIC);
    if (open) /* ?2..?5, ?10, ?11 are not in it */
        goto bound;
    if (q->source)
        sqlite3_bind_text(st, 2, q->source, -1, SQLITE_STATIC);
    if (q->contact)
        sqlite3_bind_text(st, 3, q->contact, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, q->from_s);
    sqlite3_bind_int64(st, 5, q->to_s);
    if (a->contacts) {
        sqlite3_bind_text(st, 10, a->contacts, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 11, a->recordings, -1, SQLITE_STATIC);
    }
bound:
    sqlite3_bind_int(st, 6, q->limit);
    sqlite3_bind_double(st, 8, WEIGHT_TITLE);
    sqlite3_bind_double(st, 9, WEIGHT_TEXT);
    struct lucy_search_result *r = a->out;
    r->hits = calloc((size_t)q->limit, sizeof *r->hits);
    int64_t *rowids = open ? calloc((size_t)q->limit, sizeof *rowids) : NULL;
    double *ranks = open ? calloc((size_t)q->limit, sizeof *ranks) : NULL;
    int err = r->hits && (!open || (rowids && ranks)) ? 0 : LUCY_ENOMEM;
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW && r->n < (size_t)q->limit) {
        struct lucy_search_hit *h = &r->hits[r->n++];
        h->source = lucy_row_dup(st, 0);
        h->id = lucy_row_dup(st, 1);
        h->segment = sqlite3_column_int(st, 2);
        h->contact = lucy_row_dup(st, 3);
        h->title = lucy_row_dup(st, 4);
        h->time_s = sqlite3_column_int64(st, 5);
        h->t0_ms = sqlite3_column_int64(st, 6);
        h->t1_ms = sqlite3_column_int64(st, 7);
        const char *text = (const char *)sqlite3_column_text(st, 8);
        if (q->snippets == LUCY_SNIPPETS_EACH)
            h->snippet = lucy_index_hit_snippet(a->tok, &a->terms, text, h->title);
        else if (q->snippets == LUCY_SNIPPETS_LATER)
            h->text = strdup(text ? text : "");
        h->score = -sqlite3_column_double(st, 9);
        if (open) {
            ranks[r->n - 1] = sqlite3_column_double(st, 9);
            rowids[r->n - 1] = sqlite3_column_int64(st, 10);
        }
        if (!h->source || !h->id || (q->snippets == LUCY_SNIPPETS_EACH && !h->snippet) ||
            (q->snippets == LUCY_SNIPPETS_LATER && !h->text))
            err = LUCY_ENOMEM;
    }
    if (!err && rc != SQLITE_DONE && rc != SQLITE_ROW)
        err = lucy_store_err(rc);
    if (!err && open)
        err = sort_open(r, rowids, ranks);
    free(rowids);
    free(ranks);
    return err;
}

static int sqlite_search(void *state, const struct lucy_search_query *q,
                         struct lucy_search_result *out, char *err, size_t errlen)
{
    struct sqlite_index *s = state;
    int nomem = 0;
    char *match = lucy_index_fts_query_op(q->q, q->any_word, &nomem);
    out->backend = lucy_index_sqlite.name;
    if (!match)
        return nomem ? LUCY_ENOMEM : 0; /* no words: no hits */
    struct search_arg a = {q, match, NULL, NULL, out, s->tok, {0}};
    int rc = q->snippets == LUCY_SNIPPETS_EACH ? lucy_sparse_query(s->tok, q->q, &a.terms) : 0;
    if (rc == 0 && q->restrict_ids &&
        (!(a.contacts = json_strings(q->contacts, q->n_contacts)) ||
         !(a.recordings = json_strings(q->recordings, q->n_recordings))))
        rc = LUCY_ENOMEM;
    if (rc == 0)
        rc = lucy_store_read(s->store, read_search, &a);
    lucy_sparse_free(&a.terms);
    free(match);
    free(a.contacts);
    free(a.recordings);
    if (rc)
        snprintf(err, errlen, "cannot read the FTS index: %s", lucy_strerror(rc));
    return rc;
}

/* ---- stats / clear / optimize ---------------------------------------------- */

struct counts_arg {
    int64_t rows, segments; /* FTS rows and b-tree segments */
};

static int read_counts(sqlite3 *db, void *arg)
{
    struct counts_arg *a = arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "SELECT (SELECT count(*) FROM documents_fts),"
                             " (SELECT count(DISTINCT segid) FROM documents_fts_idx)",
                             &st);
    if (rc)
        return rc;
    if ((rc = sqlite3_step(st)) != SQLITE_ROW)
        return lucy_store_err(rc);
    a->rows = sqlite3_column_int64(st, 0);
    a->segments = sqlite3_column_int64(st, 1);
    return 0;
}

static int64_t file_bytes(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

static int sqlite_stats(void *state, json_t *out)
{
    struct sqlite_index *s = state;
    struct counts_arg c = {0};
    struct tables_arg t = {json_array(), json_array()};
    int rc = (t.ensured && t.pending) ? lucy_store_read(s->store, read_tables, &t) : LUCY_ENOMEM;
    if (rc == 0)
        rc = lucy_store_read(s->store, read_counts, &c);
    const char *db = lucy_store_path(s->store);
    char wal[1100];
    snprintf(wal, sizeof wal, "%s-wal", db);
    json_object_set_new(out, "collection", json_string("documents_fts"));
    json_object_set_new(out, "points_count", json_integer(c.rows));
    json_object_set_new(out, "indexed_count", json_integer(c.rows));
    json_object_set_new(out, "segments_count", json_integer(c.segments));
    json_object_set_new(out, "disk_bytes", json_integer(file_bytes(db) + file_bytes(wal)));
    json_object_set_new(out, "payload_indexes",
                        json_pack("{s:o,s:o}", "ensured", t.ensured ? t.ensured : json_array(),
                                  "pending", t.pending ? t.pending : json_array()));
    return rc;
}

static int clear_fts(sqlite3 *db, void *arg)
{
    (void)arg;
    return lucy_row_exec(db, "DELETE FROM documents_fts");
}

static int sqlite_clear(void *state, char *err, size_t errlen)
{
    struct sqlite_index *s = state;
    int rc = lucy_store_write(s->store, clear_fts, NULL, 0);
    if (rc)
        snprintf(err, errlen, "cannot empty the FTS index: %s", lucy_strerror(rc));
    return rc;
}

/* Incremental merge of FTS5 b-tree segments ("merge" command, up to 500
 * pages of work per call; https://sqlite.org/fts5.html#the_merge_command). */
static int merge_fts(sqlite3 *db, void *arg)
{
    (void)arg;
    return lucy_row_exec(db,
                         "INSERT INTO documents_fts (documents_fts, rank) VALUES ('merge', 500)");
}

static int sqlite_optimize(void *state)
{
    struct sqlite_index *s = state;
    return lucy_store_write(s->store, merge_fts, NULL, 0);
}

const struct lucy_index_ops lucy_index_sqlite = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .ensure = sqlite_ensure,
    .upsert_batch = sqlite_upsert_batch,
    .delete = sqlite_delete,
    .search = sqlite_search,
    .stats = sqlite_stats,
    .clear = sqlite_clear,
    .optimize = sqlite_optimize,
};
