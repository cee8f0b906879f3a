/*
 * reindex.c - `lucy reindex [--json]`: rebuilds the configured index
 * backend from the source of truth, the `documents` table.
 *
 * Steps: ensure the backend (a partial failure is reported and the
 * rebuild goes on); empty it (lucy_index_clear: for Qdrant the local FTS5
 * copy and the collection, which is re-created); in one store write queue a put
 * for every live document through the outbox and drop tombstones; then
 * drain the outbox on this thread (the same code as the indexer thread)
 * and report counts. Safe while `lucy serve` runs on the same data dir:
 * the daemon's indexer may drain part of the queue itself (acks are per
 * outbox seq, so nothing is indexed twice into a wrong state); the final
 * pending count tells what is left.
 * Exit 1 when the backend failed or rejected documents.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config.h"
#include "../error.h"
#include "../index/index.h"
#include "../store/store.h"
#include "cmd.h"

int lucy_cmd_reindex(int argc, char **argv)
{
    struct lucy_config cfg;
    int as_json = 0, n_pos = 0;
    int rc = lucy_cmd_config(&cfg, argc, argv, lucy_cmd_json_flag, &as_json, NULL, 0, &n_pos);
    if (rc)
        goto out;
    struct lucy_store *store;
    struct lucy_index *ix;
    rc = lucy_cmd_open_index(&cfg, 0, &store, &ix);
    if (rc)
        goto out;
    char err[512];
    int64_t queued = 0;
    struct lucy_indexer_counts c = {0};
    /* A backend that is only partly in place (Qdrant payload indexes still
     * refused) is rebuilt anyway: clear fails if it cannot be reached. */
    if (lucy_index_ensure(ix, err, sizeof err) != 0)
        fprintf(stderr,
                "lucy: warning: the %s index is not fully in place (%s); rebuilding "
                "anyway\n",
                lucy_index_name(ix), err);
    int e = lucy_indexer_requeue_all(ix, &queued, err, sizeof err);
    if (e == 0) {
        struct lucy_indexer *w;
        e = lucy_indexer_new(ix, NULL, &w);
        if (e == 0)
            e = lucy_indexer_drain(w, 0, &c);
        lucy_indexer_free(w);
        if (e)
            snprintf(err, sizeof err, "%s", lucy_strerror(e));
    }
    json_t *stats = NULL;
    lucy_index_stats(ix, &stats);
    json_int_t pending = json_integer_value(json_object_get(stats, "pending_count"));
    json_int_t failed = json_integer_value(json_object_get(stats, "failed_count"));
    if (e) {
        lucy_cmd_error("reindex into %s stopped: %s; %lld documents stay queued and the daemon "
                       "retries them (see `lucy stats`)",
                       lucy_index_name(ix), err, (long long)pending);
        rc = LUCY_EXIT_FAILED;
    } else if (failed > 0) {
        lucy_cmd_error("%lld documents were rejected by the %s index; see `lucy stats`",
                       (long long)failed, lucy_index_name(ix));
        rc = LUCY_EXIT_FAILED;
    }
    if (as_json) {
        json_t *doc =
            json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:b}", "backend", lucy_index_name(ix), "queued",
                      (json_int_t)queued, "indexed", (json_int_t)c.indexed, "failed", failed,
                      "pending", pending, "retried", (json_int_t)c.retried, "ok", rc == 0);
        char *text = json_dumps(doc, JSON_INDENT(2));
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(doc);
    } else {
        printf("reindexed %s: %lld documents queued, %llu indexed, %lld failed, %lld still "
               "pending\n",
               lucy_index_name(ix), (long long)queued, (unsigned long long)c.indexed,
               (long long)failed, (long long)pending);
    }
    json_decref(stats);
    lucy_index_close(ix);
    lucy_store_close(store);
out:
    lucy_config_free(&cfg);
    return rc;
}
