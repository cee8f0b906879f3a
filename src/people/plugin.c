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
    *state = r;
    return lucy_http_add_routes(ctx->http, lucy_people_route_table, lucy_people_route_count, r);
}

static void people_free(void *state)
{
    free(state);
}

const struct lucy_plugin lucy_people_plugin = {
    .name = "people",
    .init = people_init,
    .free = people_free,
};
