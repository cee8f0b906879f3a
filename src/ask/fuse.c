/*
 * fuse.c - reciprocal rank fusion (Cormack, Clarke, Büttcher, SIGIR 2009):
 * score(d) = sum over the ranked lists holding d of weight / (k + rank).
 * Ranks only, never scores: BM25 and cosine similarities are not
 * comparable, ranks are. Today retrieve.c feeds one list (BM25); dense
 * results are one more struct lucy_ask_ranked in the same call.
 */
#include <stdlib.h>
#include <string.h>

#include "ask.h"

#define RRF_K_DEFAULT 60.0

struct fused {
    const char *key;
    double score;
    size_t first; /* order of first appearance: the tie-break */
};

static int by_score(const void *a, const void *b)
{
    const struct fused *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

size_t lucy_ask_rrf(const struct lucy_ask_ranked *lists, size_t n_lists, double k, const char **out,
                    double *scores, size_t max)
{
    if (k <= 0)
        k = RRF_K_DEFAULT;
    size_t total = 0;
    for (size_t l = 0; l < n_lists; l++)
        total += lists[l].n;
    struct fused *f = calloc(total ? total : 1, sizeof *f);
    if (!f)
        return 0;
    size_t n = 0;
    for (size_t l = 0; l < n_lists; l++)
        for (size_t r = 0; r < lists[l].n; r++) {
            const char *key = lists[l].keys[r];
            size_t i = 0; /* lists are short (tens of keys): a scan is enough */
            while (i < n && strcmp(f[i].key, key) != 0)
                i++;
            if (i == n) {
                f[n] = (struct fused){key, 0.0, n};
                n++;
            }
            f[i].score += lists[l].weight / (k + (double)(r + 1));
        }
    qsort(f, n, sizeof *f, by_score);
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++) {
        out[i] = f[i].key;
        if (scores)
            scores[i] = f[i].score;
    }
    free(f);
    return n;
}
