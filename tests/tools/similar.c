/*
 * similar.c - test tool: runs lucy_index_similar() (the dense half of
 * retrieval, for the ask engine) on a lucy data dir, the way the ask engine
 * will call it, and prints the result as JSON, so the embedding tests can
 * check the ranking without a product endpoint.
 *
 *   LUCY_DATA_DIR=... LUCY_EMBED_URL=... LUCY_EMBED_MODEL=... similar QUERY [LIMIT [SOURCE]]
 *
 * Prints {"backend","degraded","degraded_reason","hits":[{source,id,segment,score,...}]}
 * and exits 0, or 1 with a message (3 when dense retrieval is off).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "error.h"
#include "index/index.h"
#include "store/store.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: similar QUERY [LIMIT [SOURCE]]\n");
        return 2;
    }
    char err[512];
    struct lucy_config cfg;
    char *args[] = {argv[0], NULL};
    if (lucy_config_load(&cfg, 1, args, err, sizeof err)) {
        fprintf(stderr, "similar: %s\n", err);
        return 1;
    }
    struct lucy_store *store = NULL;
    struct lucy_index *ix = NULL;
    int rc = lucy_store_open(cfg.data_dir, &store, err, sizeof err);
    if (rc == 0)
        rc = lucy_index_open(&cfg, store, &ix, err, sizeof err);
    struct lucy_search_result r;
    struct lucy_search_query q = {.q = argv[1],
                                  .source = argc > 3 ? argv[3] : NULL,
                                  .from_s = INT64_MIN,
                                  .to_s = INT64_MAX,
                                  .limit = argc > 2 ? atoi(argv[2]) : 5};
    if (rc == 0)
        rc = lucy_index_similar(ix, &q, &r);
    if (rc == 0) {
        json_t *o = lucy_search_result_json(q.q, &r, 0);
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(o);
        lucy_search_result_free(&r);
    } else {
        fprintf(stderr, "similar: %s %s\n", lucy_strerror(rc), err);
    }
    lucy_index_close(ix);
    lucy_store_close(store);
    lucy_config_free(&cfg);
    return rc == 0 ? 0 : rc == LUCY_EUNAVAIL ? 3 : 1;
}
