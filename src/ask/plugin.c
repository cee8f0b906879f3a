/*
 * plugin.c - the ask engine as a plugin: applies LUCY_TIMEZONE (before
 * any thread starts), opens the engine on the daemon's index handle
 * (ctx->index, set by the index plugin: one Qdrant fallback state, one
 * embedder for the whole daemon), adds the routes (routes.c) and lends
 * the engine to MCP's `ask` tool as ctx->ask. It starts no thread:
 * answers are computed on the HTTP pool thread that asked.
 */
#include <stdlib.h>

#include "../error.h"
#include "../log.h"
#include "../lucy.h"
#include "../plugins/plugin.h"
#include "ask_int.h"

struct ask_plugin {
    struct lucy_ctx *ctx; /* the daemon: we clear ctx->ask when freed */
    struct lucy_ask *ask; /* the engine */
    void *routes;         /* routes.c's state */
};

static void ask_free(void *state)
{
    struct ask_plugin *p = state;
    if (!p)
        return;
    if (p->ctx && p->ctx->ask == p->ask)
        p->ctx->ask = NULL;
    lucy_ask_close(p->ask);
    free(p->routes);
    free(p);
}

static int ask_init(struct lucy_ctx *ctx, void **state)
{
    *state = NULL;
    lucy_ask_timezone_apply(ctx->cfg);
    int rc = 0;
    struct ask_plugin *p = calloc(1, sizeof *p);
    if (!p)
        return LUCY_ENOMEM;
    p->ctx = ctx;
    if (!ctx->index) { /* the index plugin runs first (src/plugins/plugins.c) */
        lucy_log(LUCY_LOG_ERROR, "answers need the search index, which is not open", NULL);
        rc = LUCY_EUNAVAIL;
    }
    if (rc == 0)
        rc = lucy_ask_open(ctx->cfg, ctx->store, ctx->index, &p->ask);
    if (rc == 0)
        rc = lucy_ask_routes_add(ctx->http, p->ask, &p->routes);
    if (rc) {
        ask_free(p);
        return rc;
    }
    ctx->ask = p->ask;
    *state = p;
    return 0;
}

const struct lucy_plugin lucy_ask_plugin = {
    .name = "ask",
    .init = ask_init,
    .free = ask_free,
};
