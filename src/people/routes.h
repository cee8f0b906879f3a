/*
 * routes.h - the /people routes (routes.c) and the state they get as
 * req->arg, which plugin.c owns.
 */
#ifndef LUCY_PEOPLE_ROUTES_H
#define LUCY_PEOPLE_ROUTES_H

#include <stddef.h>

#include "../http/http.h"

#include "forget.h"
#include "retention.h"

struct lucy_kv;

/* Every /people route's req->arg: read-only after the plugin's init. */
struct lucy_people_routes {
    struct lucy_kv *kv;               /* ctx->kv, borrowed: where aliases are shared; NULL = none */
    struct lucy_ctx *ctx;             /* the daemon (not owned) */
    struct lucy_people_forget forget; /* the forget registry, lent as ctx->forget */
    struct lucy_people_retention retention; /* LUCY_RETENTION_DAYS (retention.c) */
};

/* DELETE /people/{id} (forget.c): the person and all its calls and
 * messages, through the forget registry (ctx->forget). */
void lucy_people_delete_route(struct lucy_http_request *req, struct lucy_http_response *resp);

/* The route rows; plugin.c adds them with its struct lucy_people_routes. */
extern const struct lucy_route lucy_people_route_table[];
extern const size_t lucy_people_route_count;

#endif
