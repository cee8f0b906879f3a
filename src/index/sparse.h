/*
 * sparse.h - one tokenizer for documents, queries and snippets; BM25
 * sparse vectors; HTML snippets with <mark>ed terms.
 *
 * The tokenizer is SQLite's own `unicode61 remove_diacritics 2` (FTS5's
 * API on a private in-memory connection): Unicode-aware word split, case
 * folding and accent removal exactly like the local FTS5 index, so a
 * remote backend ranks and marks the same words the sqlite backend does.
 *
 * A folded term maps to the uint32 index formed by the first 4 bytes
 * (big-endian) of SHA-256(term): stateless, the same on every lucy
 * instance, no vocabulary to store; two terms sharing an index (about 1 in
 * 4 billion per pair) only blur their ranking.
 *
 * Document values are the term-frequency half of BM25 (Qdrant's BM25
 * recipe, "Sparse vectors" / "IDF modifier"; fastembed's Bm25):
 * f * (k1 + 1) / (f + k1 * (1 - b + b * dl / avgdl)) with f = tf(text) +
 * 0.5 * tf(title) (the sqlite backend's bm25 column weights), dl = tokens
 * of title and text, k1 = 1.2, b = 0.75 (FTS5's bm25 constants) and a
 * fixed avgdl = 32 tokens (a transcript segment or a message; a fixed
 * value keeps every document independent of the others). The backend
 * multiplies by idf at query time. A query vector has 1.0 per distinct
 * term.
 *
 * Used by qdrant.c; pure but for the tokenizer's connection. Thread
 * safety: a tokenizer may be shared by threads (each call makes its own
 * unicode61 instance); vectors and snippets belong to their caller.
 */
#ifndef LUCY_INDEX_SPARSE_H
#define LUCY_INDEX_SPARSE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* SQLite's unicode61 tokenizer on a private :memory: connection. */
struct lucy_tokenizer;

/* Opens a tokenizer into *out (free with lucy_tokenizer_close). Returns
 * 0, LUCY_ENOMEM, or LUCY_EUNAVAIL when SQLite has no FTS5 / unicode61. */
int lucy_tokenizer_open(struct lucy_tokenizer **out);

/* Frees t. NULL is fine. */
void lucy_tokenizer_close(struct lucy_tokenizer *t);

/* Called per token: the folded term (term_len bytes, not NUL-terminated)
 * and its byte offsets [start, end) in the text. */
typedef void (*lucy_token_fn)(void *arg, const char *term, int term_len, int start, int end);

/* Calls fn for every token of text (NULL or "" has none). 0 or
 * LUCY_ENOMEM. Thread-safe. */
int lucy_tokenize(struct lucy_tokenizer *t, const char *text, lucy_token_fn fn, void *arg);

/* The sparse-vector index of a folded term: SHA-256(term)[0..4)
 * big-endian. */
uint32_t lucy_sparse_term_index(const char *term, int n);

/* A sparse vector: (index, value) pairs, indices unique and ascending
 * once built. Zero-initialise; free with lucy_sparse_free. */
struct lucy_sparse {
    struct lucy_sparse_pair {
        uint32_t index; /* term index */
        float value;    /* weight */
    } * pairs;
    size_t n, cap; /* used, allocated */
};

/* The BM25 document vector of text and title (either may be NULL) into
 * *out (zeroed by the caller). 0 or LUCY_ENOMEM (then out is freed). */
int lucy_sparse_document(struct lucy_tokenizer *t, const char *text, const char *title,
                         struct lucy_sparse *out);

/* The query vector of q: 1.0 per distinct term. out->n == 0 when q has no
 * words. 0 or LUCY_ENOMEM (then out is freed). */
int lucy_sparse_query(struct lucy_tokenizer *t, const char *q, struct lucy_sparse *out);

/* Frees the pairs and zeroes v. */
void lucy_sparse_free(struct lucy_sparse *v);

/* {"indices": [...], "values": [...]} (new reference), or NULL on
 * allocation failure. */
json_t *lucy_sparse_json(const struct lucy_sparse *v);

/* 1 when the query vector q (from lucy_sparse_query) holds index. */
int lucy_sparse_has(const struct lucy_sparse *q, uint32_t index);

#define LUCY_SNIPPET_TOKENS 16 /* words in a snippet, like the sqlite backend's snippet() */

/* The snippet of text for the query terms, in the sqlite backend's
 * convention: a malloc'd HTML fragment, text escaped (&amp; &lt; &gt;
 * &quot;), matched terms in <mark>...</mark>, "…" where the text was cut
 * to the LUCY_SNIPPET_TOKENS-word window with the most matches (earliest
 * on ties). *matches = marked tokens. NULL on allocation failure. */
char *lucy_sparse_snippet(struct lucy_tokenizer *t, const char *text,
                          const struct lucy_sparse *query, int *matches);

#endif
