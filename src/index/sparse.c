/*
 * sparse.c - the shared tokenizer, BM25 sparse vectors and snippets (see
 * sparse.h for the ranking recipe).
 *
 * The tokenizer borrows SQLite's unicode61 through the FTS5 C API of a
 * private :memory: connection (fts5_api from "SELECT fts5(?1)"), so no
 * second copy of Unicode tables is needed. A unicode61 instance keeps a
 * scratch buffer, so every call creates its own instance; the connection
 * is opened FULLMUTEX and only looked up once.
 */
#define _GNU_SOURCE
#include "sparse.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../error.h"

#define TITLE_WEIGHT 0.5f /* like the sqlite backend's bm25 weights */
#define BM25_K1      1.2
#define BM25_B       0.75
#define BM25_AVGDL   32.0

struct lucy_tokenizer {
    sqlite3 *db;        /* private :memory: connection owning the tokenizer */
    fts5_tokenizer tok; /* unicode61's methods */
    void *tok_user;     /* its user data */
};

int lucy_tokenizer_open(struct lucy_tokenizer **out)
{
    *out = NULL;
    struct lucy_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return LUCY_ENOMEM;
    fts5_api *api = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(":memory:", &t->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        lucy_tokenizer_close(t);
        return LUCY_ENOMEM;
    }
    /* a private connection, not the store's: no statement cache here */
    if (sqlite3_prepare_v2(t->db, "SELECT fts5(?1)", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (!api || api->xFindTokenizer(api, "unicode61", &t->tok_user, &t->tok) != SQLITE_OK) {
        lucy_tokenizer_close(t);
        return LUCY_EUNAVAIL;
    }
    *out = t;
    return 0;
}

void lucy_tokenizer_close(struct lucy_tokenizer *t)
{
    if (!t)
        return;
    sqlite3_close(t->db);
    free(t);
}

struct tok_ctx {
    lucy_token_fn fn; /* called per token */
    void *arg;        /* its argument */
};

static int on_token(void *ctx, int tflags, const char *term, int n, int start, int end)
{
    struct tok_ctx *c = ctx;
    (void)tflags;
    if (n > 0)
        c->fn(c->arg, term, n, start, end);
    return SQLITE_OK;
}

int lucy_tokenize(struct lucy_tokenizer *t, const char *text, lucy_token_fn fn, void *arg)
{
    const char *args[] = {"remove_diacritics", "2"};
    Fts5Tokenizer *inst = NULL;
    if (!text || !*text)
        return 0;
    if (t->tok.xCreate(t->tok_user, args, 2, &inst) != SQLITE_OK)
        return LUCY_ENOMEM;
    struct tok_ctx c = {fn, arg};
    int rc = t->tok.xTokenize(inst, &c, FTS5_TOKENIZE_DOCUMENT, text, (int)strlen(text), on_token);
    t->tok.xDelete(inst);
    return rc == SQLITE_OK ? 0 : LUCY_ENOMEM;
}

/* SHA-256 fetched once: EVP_sha256() makes every EVP_Digest() look the
 * algorithm up again (OpenSSL 3), 40 % of a snippet's cost
 * (docs/benchmarks.md, "Search"). Kept for the process's life. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

uint32_t lucy_sparse_term_index(const char *term, int n)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    pthread_once(&sha256_once, sha256_fetch);
    if (!EVP_Digest(term, (size_t)n, md, &md_len, sha256_md ? sha256_md : EVP_sha256(), NULL) ||
        md_len < 4)
        return 0;
    return (uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 | (uint32_t)md[2] << 8 | md[3];
}

/* ---- vectors ------------------------------------------------------------- */

/* A vector under construction: every token appends (index, weight). */
struct builder {
    struct lucy_sparse *v; /* the vector */
    float weight;          /* added per token */
    int nomem;             /* an allocation failed */
};

static void add_token(void *arg, const char *term, int n, int start, int end)
{
    struct builder *b = arg;
    struct lucy_sparse *v = b->v;
    (void)start, (void)end;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 32;
        struct lucy_sparse_pair *p = realloc(v->pairs, cap * sizeof *p);
        if (!p) {
            b->nomem = 1;
            return;
        }
        v->pairs = p;
        v->cap = cap;
    }
    v->pairs[v->n++] = (struct lucy_sparse_pair){lucy_sparse_term_index(term, n), b->weight};
}

static int cmp_pair(const void *a, const void *b)
{
    uint32_t x = ((const struct lucy_sparse_pair *)a)->index;
    uint32_t y = ((const struct lucy_sparse_pair *)b)->index;
    return x < y ? -1 : x > y;
}

/* Sorts by index and sums duplicates (Qdrant requires unique indices);
 * with distinct = 1 every index keeps value 1.0 (the query vector). */
static void finish(struct lucy_sparse *v, int distinct)
{
    if (v->n == 0)
        return;
    qsort(v->pairs, v->n, sizeof *v->pairs, cmp_pair);
    size_t o = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (o > 0 && v->pairs[o - 1].index == v->pairs[i].index)
            v->pairs[o - 1].value += v->pairs[i].value;
        else
            v->pairs[o++] = v->pairs[i];
    }
    v->n = o;
    for (size_t i = 0; distinct && i < v->n; i++)
        v->pairs[i].value = 1.0f;
}

int lucy_sparse_document(struct lucy_tokenizer *t, const char *text, const char *title,
                         struct lucy_sparse *out)
{
    struct builder b = {out, 1.0f, 0};
    int rc = lucy_tokenize(t, text, add_token, &b);
    b.weight = TITLE_WEIGHT;
    if (!rc)
        rc = lucy_tokenize(t, title, add_token, &b);
    if (rc || b.nomem) {
        lucy_sparse_free(out);
        return LUCY_ENOMEM;
    }
    double dl = (double)out->n; /* tokens before merging */
    finish(out, 0);
    for (size_t i = 0; i < out->n; i++) {
        double f = out->pairs[i].value;
        out->pairs[i].value =
            (float)(f * (BM25_K1 + 1) / (f + BM25_K1 * (1 - BM25_B + BM25_B * dl / BM25_AVGDL)));
    }
    return 0;
}

int lucy_sparse_query(struct lucy_tokenizer *t, const char *q, struct lucy_sparse *out)
{
    struct builder b = {out, 1.0f, 0};
    if (lucy_tokenize(t, q, add_token, &b) || b.nomem) {
        lucy_sparse_free(out);
        return LUCY_ENOMEM;
    }
    finish(out, 1);
    return 0;
}

void lucy_sparse_free(struct lucy_sparse *v)
{
    free(v->pairs);
    memset(v, 0, sizeof *v);
}

json_t *lucy_sparse_json(const struct lucy_sparse *v)
{
    json_t *idx = json_array(), *val = json_array();
    for (size_t i = 0; idx && val && i < v->n; i++) {
        json_array_append_new(idx, json_integer(v->pairs[i].index));
        json_array_append_new(val, json_real(v->pairs[i].value));
    }
    return json_pack("{s:o*,s:o*}", "indices", idx, "values", val);
}

int lucy_sparse_has(const struct lucy_sparse *q, uint32_t index)
{
    struct lucy_sparse_pair key = {index, 0};
    return q->n > 0 && bsearch(&key, q->pairs, q->n, sizeof key, cmp_pair) != NULL;
}

/* ---- snippets ---------------------------------------------------------- */

struct token_list {
    struct tok {
        int start, end; /* byte offsets in the text */
        int match;      /* its term is a query term */
    } * t;
    size_t n, cap;                   /* used, allocated */
    const struct lucy_sparse *query; /* sorted query term indices */
    int nomem;                       /* an allocation failed */
};

static void collect_token(void *arg, const char *term, int n, int start, int end)
{
    struct token_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct tok *t = realloc(l->t, cap * sizeof *t);
        if (!t) {
            l->nomem = 1;
            return;
        }
        l->t = t;
        l->cap = cap;
    }
    l->t[l->n++] =
        (struct tok){start, end, lucy_sparse_has(l->query, lucy_sparse_term_index(term, n))};
}

static void put_escaped(FILE *out, const char *p, size_t n)
{
    static const char *const html[256] = {
        ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;"};
    for (size_t i = 0; i < n; i++) {
        const char *h = html[(unsigned char)p[i]];
        if (h)
            fputs(h, out);
        else
            fputc(p[i], out);
    }
}

/* Best window of LUCY_SNIPPET_TOKENS tokens: most matches, earliest on
 * ties. */
static size_t best_window(const struct token_list *l)
{
    if (l->n <= LUCY_SNIPPET_TOKENS)
        return 0;
    size_t best = 0, best_hits = 0, hits = 0;
    for (size_t i = 0; i < LUCY_SNIPPET_TOKENS; i++)
        hits += (size_t)l->t[i].match;
    best_hits = hits;
    for (size_t start = 1; start + LUCY_SNIPPET_TOKENS <= l->n; start++) {
        hits += (size_t)l->t[start + LUCY_SNIPPET_TOKENS - 1].match;
        hits -= (size_t)l->t[start - 1].match;
        if (hits > best_hits) {
            best_hits = hits;
            best = start;
        }
    }
    return best;
}

char *lucy_sparse_snippet(struct lucy_tokenizer *t, const char *text,
                          const struct lucy_sparse *query, int *matches)
{
    struct token_list l = {.query = query};
    char *buf = NULL;
    size_t size = 0;
    *matches = 0;
    text = text ? text : "";
    if (lucy_tokenize(t, text, collect_token, &l) || l.nomem) {
        free(l.t);
        return NULL;
    }
    FILE *out = open_memstream(&buf, &size);
    if (!out) {
        free(l.t);
        return NULL;
    }
    size_t first = best_window(&l);
    size_t last = l.n <= LUCY_SNIPPET_TOKENS ? l.n : first + LUCY_SNIPPET_TOKENS; /* exclusive */
    size_t from = first > 0 ? (size_t)l.t[first].start : 0;
    size_t to = last < l.n ? (size_t)l.t[last - 1].end : strlen(text);
    if (first > 0)
        fputs("…", out);
    size_t at = from;
    for (size_t i = first; i < last; i++) {
        if (!l.t[i].match)
            continue;
        put_escaped(out, text + at, (size_t)l.t[i].start - at);
        fputs("<mark>", out);
        put_escaped(out, text + l.t[i].start, (size_t)(l.t[i].end - l.t[i].start));
        fputs("</mark>", out);
        at = (size_t)l.t[i].end;
        (*matches)++;
    }
    put_escaped(out, text + at, to > at ? to - at : 0);
    if (last < l.n)
        fputs("…", out);
    free(l.t);
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
