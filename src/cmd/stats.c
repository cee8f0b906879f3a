/*
 * stats.c - `lucy stats [--json]`: the /rag/stats document of the
 * configured index backend, read from the local store without a server.
 * Text output: one "key: value" line per field (objects as compact JSON).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config.h"
#include "../error.h"
#include "../index/index.h"
#include "../store/store.h"
#include "cmd.h"

int lucy_cmd_stats(int argc, char **argv)
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
    json_t *stats = NULL;
    int err = lucy_index_stats(ix, &stats);
    if (err) {
        lucy_cmd_error("cannot read the index statistics: %s", lucy_strerror(err));
        rc = LUCY_EXIT_FAILED;
    } else if (as_json) {
        char *text = json_dumps(stats, JSON_INDENT(2));
        printf("%s\n", text ? text : "{}");
        free(text);
    } else {
        const char *key;
        json_t *v;
        json_object_foreach(stats, key, v)
        {
            char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            printf("%s: %s\n", key, text ? text : json_string_value(v));
            free(text);
        }
    }
    json_decref(stats);
    lucy_index_close(ix);
    lucy_store_close(store);
out:
    lucy_config_free(&cfg);
    return rc;
}
