/*
 * plugin.c - the `web` plugin: serves the UI's embedded static files
 * (web.h) from the same port as the API, so there is no second service to
 * start or to gate on health checks.
 *
 *   GET /            index.html
 *   GET /ui/{file}   any other file of web/, by base name
 *
 * No bearer token (DESIGN §4: the UI's static files need none; the data
 * they show comes from the API, which does). Every reply carries:
 *   Content-Security-Policy  only this origin's scripts, styles, media and
 *                            fetches; no inline script, no plugins, no
 *                            framing - the UI makes no external request;
 *   Cache-Control: no-cache  the browser keeps a copy but revalidates it,
 *                            and ETag (a hash of the bytes) + If-None-Match
 *                            make that a 304 without a body, so an
 *                            upgraded lucy never runs a stale app.js;
 *   X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer.
 */
#include <string.h>

#include "../http/http.h"
#include "../lucy.h"
#include "../plugins/plugin.h"
#include "web.h"

/* media-src blob: is for the player when a token is set (docs/ui.md). */
static const char csp[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'";

_Static_assert(sizeof csp <= sizeof(((struct lucy_http_response *)0)->headers[0].value),
               "the CSP must fit in one header value");

const struct lucy_web_asset *lucy_web_asset_find(const char *name)
{
    for (size_t i = 0; i < lucy_web_assets_count; i++)
        if (strcmp(lucy_web_assets[i].name, name) == 0)
            return &lucy_web_assets[i];
    return NULL;
}

/* 1 when an If-None-Match value lists etag (or is "*"): RFC 9110 §13.1.2,
 * weak comparison. */
static int etag_matches(const char *if_none_match, const char *etag)
{
    if (!if_none_match)
        return 0;
    if (strcmp(if_none_match, "*") == 0)
        return 1;
    size_t n = strlen(etag);
    for (const char *p = if_none_match; (p = strstr(p, etag)) != NULL; p += n) {
        char after = p[n];
        if (after == '\0' || after == ',' || after == ' ')
            return 1;
    }
    return 0;
}

static void serve(struct lucy_http_request *req, struct lucy_http_response *resp,
                  const struct lucy_web_asset *a)
{
    lucy_http_add_header(resp, "Content-Security-Policy", csp);
    lucy_http_add_header(resp, "Cache-Control", "no-cache");
    lucy_http_add_header(resp, "ETag", a->etag);
    lucy_http_add_header(resp, "X-Content-Type-Options", "nosniff");
    lucy_http_add_header(resp, "Referrer-Policy", "no-referrer");
    if (etag_matches(lucy_http_header(req, "If-None-Match"), a->etag))
        lucy_http_reply_text(resp, 304, a->content_type, "", 0);
    else
        lucy_http_reply_text(resp, 200, a->content_type, (const char *)a->data, a->size);
}

static void get_index(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const struct lucy_web_asset *a = lucy_web_asset_find("index.html");
    if (!a) {
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                              "this lucy was built without its web UI (web/index.html)");
        return;
    }
    serve(req, resp, a);
}

static void get_file(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const struct lucy_web_asset *a = lucy_web_asset_find(req->params[0]);
    if (!a) {
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0, "no UI file %.100s; open / for the UI",
                              req->params[0]);
        return;
    }
    serve(req, resp, a);
}

static const struct lucy_route routes[] = {
    {"GET", "/", get_index, 0, 0, NULL},
    {"GET", "/ui/{file}", get_file, 0, 0, NULL},
};

static int web_init(struct lucy_ctx *ctx, void **state)
{
    *state = NULL;
    if (!ctx->http) /* CLI commands have no server */
        return 0;
    return lucy_http_add_routes(ctx->http, routes, sizeof routes / sizeof routes[0], NULL);
}

const struct lucy_plugin lucy_web_plugin = {
    .name = "web",
    .init = web_init,
};
