/*
 * outbox_put.c - test tool: feeds documents into a lucy store through the
 * producer API (lucy_outbox_put / lucy_outbox_delete), exactly as a
 * producer plugin does, so the search tests need no producer.
 *
 *   outbox_put DATA_DIR [FILE]
 *
 * Reads JSON lines from FILE (or stdin), one per document:
 *   {"source":"whatsapp","id":"wamid.X","segment":0,"contact":"4915...",
 *    "title":"Anna","text":"...","time":1717171200,"t0_ms":0,"t1_ms":0}
 * or a removal: {"op":"delete","source":"...","id":"..."}.
 * All lines are applied in ONE lucy_store_write() (one transaction), like
 * a producer's batch. Works while `lucy serve` runs on the same data dir
 * (SQLite locking; the daemon's indexer finds the rows by polling).
 * Prints {"put":N,"deleted":M} and exits 0, or 1 with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "error.h"
#include "index/index.h"
#include "store/store.h"

struct feed {
    json_t *lines; /* array of objects */
    int put, deleted;
};

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int apply(sqlite3 *db, void *arg)
{
    struct feed *f = arg;
    size_t i;
    json_t *o;
    f->put = f->deleted = 0;
    json_array_foreach(f->lines, i, o)
    {
        int rc;
        const char *op = str(o, "op");
        if (op && strcmp(op, "delete") == 0) {
            rc = lucy_outbox_delete(db, str(o, "source"), str(o, "id"));
            f->deleted++;
        } else {
            struct lucy_doc d = {
                .source = str(o, "source"),
                .id = str(o, "id"),
                .segment = (int)json_integer_value(json_object_get(o, "segment")),
                .contact = str(o, "contact"),
                .title = str(o, "title"),
                .text = str(o, "text"),
                .time_s = json_integer_value(json_object_get(o, "time")),
                .t0_ms = json_integer_value(json_object_get(o, "t0_ms")),
                .t1_ms = json_integer_value(json_object_get(o, "t1_ms")),
            };
            rc = lucy_outbox_put(db, &d);
            f->put++;
        }
        if (rc) {
            fprintf(stderr, "outbox_put: line %zu: %s\n", i + 1, lucy_strerror(rc));
            return rc;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: outbox_put DATA_DIR [FILE]\n");
        return 2;
    }
    FILE *in = argc == 3 ? fopen(argv[2], "r") : stdin;
    if (!in) {
        perror(argv[2]);
        return 1;
    }
    struct feed f = {json_array(), 0, 0};
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, in) > 0) {
        n++;
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        if (!json_is_object(o)) {
            fprintf(stderr, "outbox_put: line %d: not a JSON object: %s\n", n, e.text);
            return 1;
        }
        json_array_append_new(f.lines, o);
    }
    free(line);
    if (in != stdin)
        fclose(in);

    char err[512];
    struct lucy_store *store = NULL;
    if (lucy_store_open(argv[1], &store, err, sizeof err) != 0) {
        fprintf(stderr, "outbox_put: %s\n", err);
        return 1;
    }
    int rc = lucy_store_write(store, apply, &f, 0);
    lucy_store_close(store);
    if (rc) {
        fprintf(stderr, "outbox_put: write failed: %s\n", lucy_strerror(rc));
        json_decref(f.lines);
        return 1;
    }
    printf("{\"put\":%d,\"deleted\":%d}\n", f.put, f.deleted);
    json_decref(f.lines);
    return 0;
}
