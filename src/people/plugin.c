/*
 * plugin.c - the people module as a plugin (DESIGN §12): its routes, with
 * their state. It starts no thread: persons are written by the producers'
 * own store writes (lucy_people_observe) and by the routes. Listed in
 * src/plugins/plugins.c after kv (aliases are shared through it) and
 * before the plugins that observe people.
 */
#include <stdlib.h>

#include "../error.h"
#include "../lucy.h"
#include "../plugins/plugin.h"
#include "people.h"
#include "routes.h"

static int people_init(struct lucy_ctx *ctx, void **state)
{
    struct lucy_people_routes *r = calloc(1, sizeof *r);
    if (!r)
        return LUCY_ENOMEM;
    r->kv = ctx->kv;
    r->ctx = ctx;
    *state = r;
    ctx->forget = &r->forget; /* the plugins after this one register into it */
    int rc = lucy_http_add_routes(ctx->http, lucy_people_route_table, lucy_people_route_count, r);
    return rc ? rc : lucy_people_retention_init(&r->retention, ctx);
}

static int people_start(void *state)
{
    struct lucy_people_routes *r = state;
    return lucy_people_retention_start(&r->retention);
}

static void people_stop(void *state)
{
    struct lucy_people_routes *r = state;
    lucy_people_retention_stop(&r->retention);
}

static void people_free(void *state)
{
    struct lucy_people_routes *r = state;
    if (r && r->ctx && r->ctx->forget == &r->forget)
        r->ctx->forget = NULL;
    free(r);
}

const struct lucy_plugin lucy_people_plugin = {
    .name = "people",
    .init = people_init,
    .start = people_start,
    .stop = people_stop,
    .free = people_free,
};
