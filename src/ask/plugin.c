/*
 * plugin.c - the ask engine as a plugin: applies LUCY_TIMEZONE (before
 * any thread starts), opens its own handle on the search index (no
 * network I/O; the index plugin's indexer keeps the documents) and the
 * engine, and adds the routes (routes.c). It starts no thread: answers
 * are computed on the HTTP pool thread that asked.
 */
#include <stdlib.h>

#include "../error.h"
#include "../index/index.h"
#include "../log.h"
#include "../lucy.h"
#include "../plugins/plugin.h"
#include "ask_int.h"

struct ask_plugin {
    struct lucy_index *ix; /* our handle on the index */
    struct lucy_ask *ask;  /* the engine */
    void *routes;          /* routes.c's state */
};

static void ask_free(void *state)
{
    struct ask_plugin *p = state;
    if (!p)
        return;
    lucy_ask_close(p->ask);
    lucy_index_close(p->ix);
    free(p->routes);
    free(p);
}

static int ask_init(struct lucy_ctx *ctx, void **state)
{
    char err[512];
    *state = NULL;
    int rc = lucy_ask_timezone_apply(ctx->cfg, err, sizeof err);
    if (rc) {
        lucy_log(LUCY_LOG_ERROR, "bad configuration", "{s:s}", "error", err);
        return rc;
    }
    struct ask_plugin *p = calloc(1, sizeof *p);
    if (!p)
        return LUCY_ENOMEM;
    rc = lucy_index_open(ctx->cfg, ctx->store, &p->ix, err, sizeof err);
    if (rc)
        lucy_log(LUCY_LOG_ERROR, "cannot open the search index for answers", "{s:s}", "error", err);
    if (rc == 0)
        rc = lucy_ask_open(ctx->cfg, ctx->store, p->ix, &p->ask);
    if (rc == 0)
        rc = lucy_ask_routes_add(ctx->http, p->ask, &p->routes);
    if (rc) {
        ask_free(p);
        return rc;
    }
    *state = p;
    return 0;
}

const struct lucy_plugin lucy_ask_plugin = {
    .name = "ask",
    .init = ask_init,
    .free = ask_free,
};
