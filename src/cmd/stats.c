/*
 * stats.c - `lucy stats [--json]`: the /rag/stats document of the
 * configured index backend, read from the local store without a server.
 * --json prints it as /rag/stats does. Text output: one "key: value" line
 * per field in the document's order (what the user has first: recordings,
 * audio_hours, transcript_segments, messages, people), an object's fields
 * as "object.key: value" (deeper values as compact JSON), without the
 * deprecated top-level copies of the storage fields.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config.h"
#include "../error.h"
#include "../index/index.h"
#include "../store/store.h"
#include "cmd.h"

/* Prints "prefix.key: value" (or "key: value" without prefix). */
static void print_field(const char *prefix, const char *key, json_t *v)
{
    char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%s%s%s: %s\n", prefix ? prefix : "", prefix ? "." : "", key,
           text ? text : json_string_value(v));
    free(text);
}

static void print_text(json_t *stats)
{
    json_t *storage = json_object_get(stats, "storage");
    const char *key, *sub;
    json_t *v, *sv;
    json_object_foreach(stats, key, v)
    {
        json_t *same = json_object_get(storage, key);
        if (same && json_equal(same, v)) /* a deprecated copy of storage.<key> */
            continue;
        if (!json_is_object(v)) {
            print_field(NULL, key, v);
            continue;
        }
        json_object_foreach(v, sub, sv) print_field(key, sub, sv);
    }
}

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
        print_text(stats);
    }
    json_decref(stats);
    lucy_index_close(ix);
    lucy_store_close(store);
out:
    lucy_config_free(&cfg);
    return rc;
}
