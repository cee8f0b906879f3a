/*
 * plugin.c - the `mcp` plugin: parses each tool's outputSchema once,
 * builds the tools/list result, splits LUCY_MCP_ORIGINS, and adds the
 * /mcp routes (bearer token, API rate limit) with its state as their arg.
 * It starts no thread: every request is answered on the HTTP pool.
 */
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "../http/http.h"
#include "../log.h"
#include "../lucy.h"
#include "../plugins/plugin.h"
#include "mcp.h"
#include "mcp_int.h"

static const struct lucy_route mcp_routes[] = {
    {"POST", "/mcp", mcp_http_post, 1, 0, NULL},
    {"DELETE", "/mcp", mcp_http_delete, 1, 0, NULL},
};

static void mcp_free(void *state)
{
    struct lucy_mcp *m = state;
    if (!m)
        return;
    for (size_t i = 0; m->output_schemas && i < mcp_tools_count; i++)
        json_decref(m->output_schemas[i]);
    free(m->output_schemas);
    json_decref(m->tools_list);
    for (char **o = m->origins; o && *o; o++)
        free(*o);
    free(m->origins);
    free(m);
}

/* LUCY_MCP_ORIGINS ("a,b") as a NULL-terminated array of trimmed strings. */
static char **split_origins(const char *csv)
{
    size_t n = 1;
    for (const char *p = csv; p && *p; p++)
        n += *p == ',';
    char **out = calloc(n + 1, sizeof *out);
    size_t k = 0;
    for (const char *p = csv; out && p && *p;) {
        size_t len = strcspn(p, ",");
        const char *s = p;
        while (len && *s == ' ')
            s++, len--;
        while (len && s[len - 1] == ' ')
            len--;
        if (len && !(out[k++] = strndup(s, len)))
            break;
        p += strcspn(p, ",");
        p += *p == ',';
    }
    return out;
}

static int mcp_init(struct lucy_ctx *ctx, void **state)
{
    struct lucy_mcp *m = calloc(1, sizeof *m);
    if (!m)
        return LUCY_ENOMEM;
    m->ctx = ctx;
    m->output_schemas = calloc(mcp_tools_count, sizeof *m->output_schemas);
    m->origins = split_origins(ctx->cfg->mcp_origins);
    int rc = m->output_schemas && m->origins ? 0 : LUCY_ENOMEM;
    for (size_t i = 0; rc == 0 && i < mcp_tools_count; i++) {
        json_error_t e;
        m->output_schemas[i] = json_loads(mcp_tools[i].output_schema, 0, &e);
        if (!m->output_schemas[i]) { /* a bug in tools.c: refuse to start */
            lucy_log(LUCY_LOG_ERROR, "mcp: a tool's outputSchema is not JSON", "{s:s,s:s}", "tool",
                     mcp_tools[i].name, "error", e.text);
            rc = LUCY_EINVAL;
        }
    }
    if (rc == 0 && !(m->tools_list = mcp_tools_list_build(m)))
        rc = LUCY_ENOMEM;
    if (rc == 0 && ctx->http)
        rc = lucy_http_add_routes(ctx->http, mcp_routes, sizeof mcp_routes / sizeof mcp_routes[0],
                                  m);
    if (rc) {
        mcp_free(m);
        return rc;
    }
    *state = m;
    return 0;
}

const struct lucy_plugin lucy_mcp_plugin = {
    .name = "mcp",
    .init = mcp_init,
    .free = mcp_free,
};
