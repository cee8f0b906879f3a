/*
 * rpc.c - /mcp: MCP's Streamable HTTP transport (revision 2025-11-25) and
 * the JSON-RPC method table.
 *
 * POST /mcp carries one JSON-RPC message (batches ended with 2025-06-18):
 *   request       -> 200 application/json with its response (lucy never
 *                    streams: every method answers at once)
 *   notification,
 *   response      -> 202, no body
 * GET /mcp is 405 (lucy offers no server-initiated stream; the route table
 * has no GET row, so the server answers it with Allow: POST, DELETE).
 * DELETE /mcp ends the session in MCP-Session-Id.
 *
 * Checked in this order, each failure a JSON-RPC error whose data carries
 * lucy's error_type: the bearer token and the API rate limit (by the HTTP
 * server, before this runs), Origin (403: a browser page of another site
 * must not reach lucy, DNS rebinding included), Content-Type (415),
 * MCP-Protocol-Version (400 when unsupported), the JSON (400 parse error),
 * the message's shape (400 invalid request), the session (initialize
 * creates it; any other message without it is a 400, with an unknown or
 * ended one a 404 so the client initializes again). Errors of a method
 * (unknown method, bad params, resource not found) are JSON-RPC errors in
 * a 200; a tool's own failure is an isError result (tools.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../http/http.h"
#include "../log.h"
#include "../lucy.h"
#include "mcp_int.h"

static const char *const protocol_versions[] = {MCP_PROTOCOL_LATEST, "2025-06-18", "2025-03-26",
                                                NULL};

static int version_supported(const char *v)
{
    for (const char *const *p = protocol_versions; *p; p++)
        if (strcmp(*p, v) == 0)
            return 1;
    return 0;
}

/* ---- replies ---------------------------------------------------------------- */

/* A JSON-RPC error in an HTTP reply of status; id may be NULL (unknown:
 * left out); error_type is lucy's name of the failure (DESIGN §5). */
static void reply_rpc_error(struct lucy_http_response *resp, int status, json_t *id, int code,
                            const char *error_type, const char *message)
{
    json_t *body = json_pack("{s:s,s:{s:i,s:s,s:{s:s}}}", "jsonrpc", "2.0", "error", "code", code,
                             "message", message, "data", "error_type", error_type);
    if (body && id)
        json_object_set(body, "id", id);
    if (!body) {
        lucy_http_reply_error(resp, LUCY_HTTP_INTERNAL, 0, "out of memory building the reply");
        return;
    }
    lucy_http_reply_json(resp, status, body);
}

/* ---- methods ----------------------------------------------------------------- */

typedef json_t *(*method_fn)(struct lucy_mcp *m, json_t *params, int *code, char *msg,
                             size_t msglen);

static json_t *m_initialize(struct lucy_mcp *m, json_t *params, int *code, char *msg, size_t msglen)
{
    (void)m;
    const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
    if (!asked) {
        *code = MCP_INVALID_PARAMS;
        snprintf(msg, msglen, "params.protocolVersion is required (lucy speaks %s)",
                 MCP_PROTOCOL_LATEST);
        return NULL;
    }
    /* The client's version when lucy speaks it, else lucy's latest: the
     * client then decides whether it can go on. */
    return json_pack(
        "{s:s,s:{s:{s:b},s:{s:b,s:b}},s:{s:s,s:s,s:s},s:s}", "protocolVersion",
        version_supported(asked) ? asked : MCP_PROTOCOL_LATEST, "capabilities", "tools",
        "listChanged", 0, "resources", "subscribe", 0, "listChanged", 0, "serverInfo", "name",
        "lucy", "title", "lucy: calls and messages", "version", LUCY_VERSION, "instructions",
        "lucy holds the user's call recordings (transcribed) and WhatsApp messages. Use search "
        "to find what was said, get_transcript to read around a hit (t0_ms), get_person for who "
        "someone is, list_calls for calls by date. Cite the recording and time you read.");
}

static json_t *m_ping(struct lucy_mcp *m, json_t *params, int *code, char *msg, size_t msglen)
{
    (void)m, (void)params, (void)code, (void)msg, (void)msglen;
    return json_object();
}

static json_t *m_tools_list(struct lucy_mcp *m, json_t *params, int *code, char *msg, size_t msglen)
{
    (void)params, (void)code, (void)msg, (void)msglen;
    return json_copy(m->tools_list); /* shallow: the tools are shared, read-only */
}

/* The method table: one row per JSON-RPC method lucy answers. */
static const struct {
    const char *name; /* JSON-RPC method */
    method_fn fn;     /* its result, or NULL with a JSON-RPC error */
} methods[] = {
    {"initialize", m_initialize},           {"ping", m_ping},
    {"tools/list", m_tools_list},           {"tools/call", mcp_tools_call},
    {"resources/list", mcp_resources_list}, {"resources/templates/list", mcp_resources_templates},
    {"resources/read", mcp_resources_read},
};

/* Runs request msg (method, id) and replies with its response. */
static void run_request(struct lucy_mcp *m, struct lucy_http_response *resp, const char *method,
                        json_t *id, json_t *params, int initialize)
{
    size_t i = 0;
    while (i < sizeof methods / sizeof methods[0] && strcmp(methods[i].name, method) != 0)
        i++;
    if (i == sizeof methods / sizeof methods[0]) {
        char why[160];
        snprintf(why, sizeof why, "method \"%.60s\" is not served by lucy", method);
        reply_rpc_error(resp, 200, id, MCP_METHOD_NOT_FOUND, "not_found", why);
        return;
    }
    if (params && !json_is_object(params)) {
        reply_rpc_error(resp, 200, id, MCP_INVALID_PARAMS, "bad_request",
                        "params must be a JSON object");
        return;
    }
    int code = MCP_INTERNAL_ERROR;
    char msg[512] = "out of memory building the result; retry";
    json_t *result = methods[i].fn(m, params, &code, msg, sizeof msg);
    if (!result) {
        reply_rpc_error(resp, 200, id, code,
                        code == MCP_RESOURCE_NOT_FOUND ? "not_found"
                        : code == MCP_INTERNAL_ERROR   ? "internal"
                                                       : "bad_request",
                        msg);
        return;
    }
    if (initialize) {
        char session[33];
        mcp_session_new(m, json_string_value(json_object_get(result, "protocolVersion")), session);
        lucy_http_add_header(resp, "MCP-Session-Id", session);
    }
    lucy_http_reply_json(resp, 200,
                         json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

/* ---- transport checks -------------------------------------------------------- */

/* Origin: absent (not a browser), a loopback origin, or one listed in
 * LUCY_MCP_ORIGINS. Anything else could be a page of another site
 * reaching a local lucy through the user's browser. */
static int origin_allowed(const struct lucy_mcp *m, const char *origin)
{
    if (!origin)
        return 1;
    for (char **o = m->origins; o && *o; o++)
        if (strcasecmp(*o, origin) == 0)
            return 1;
    static const char *const loopback[] = {"localhost", "127.0.0.1", "[::1]"};
    const char *host = strstr(origin, "://");
    if (!host || (strncasecmp(origin, "http://", 7) && strncasecmp(origin, "https://", 8)))
        return 0;
    host += 3;
    size_t len = strcspn(host, ":/");
    if (host[0] == '[')
        len = strcspn(host, "]") + 1;
    for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++)
        if (strlen(loopback[i]) == len && strncasecmp(host, loopback[i], len) == 0 &&
            (host[len] == '\0' || host[len] == ':' || host[len] == '/'))
            return 1;
    return 0;
}

/* Origin and MCP-Protocol-Version, for POST and DELETE. 0 = go on, else the
 * reply is set. */
static int check_headers(struct lucy_mcp *m, struct lucy_http_request *req,
                         struct lucy_http_response *resp)
{
    if (!origin_allowed(m, lucy_http_header(req, "Origin"))) {
        reply_rpc_error(resp, 403, NULL, MCP_INVALID_REQUEST, "forbidden",
                        "Origin not allowed: lucy answers pages of loopback origins and of "
                        "LUCY_MCP_ORIGINS only");
        return 1;
    }
    const char *version = lucy_http_header(req, "MCP-Protocol-Version");
    if (version && !version_supported(version)) {
        char why[200];
        snprintf(why, sizeof why, "unsupported MCP-Protocol-Version \"%.40s\"; lucy speaks %s",
                 version, MCP_PROTOCOL_LATEST);
        reply_rpc_error(resp, 400, NULL, MCP_INVALID_REQUEST, "bad_request", why);
        return 1;
    }
    return 0;
}

/* The session of a message other than initialize. 0 = go on. */
static int check_session(struct lucy_mcp *m, struct lucy_http_request *req,
                         struct lucy_http_response *resp, json_t *id)
{
    const char *session = lucy_http_header(req, "MCP-Session-Id");
    if (!session || !*session) {
        reply_rpc_error(resp, 400, id, MCP_INVALID_REQUEST, "bad_request",
                        "MCP-Session-Id header missing: send initialize first and then the "
                        "MCP-Session-Id it returned with every message");
        return 1;
    }
    if (mcp_session_check(m, session) == MCP_SESSION_UNKNOWN) {
        reply_rpc_error(resp, 404, id, MCP_INVALID_REQUEST, "not_found",
                        "session not found (ended or expired): send initialize again");
        return 1;
    }
    return 0;
}

void mcp_http_post(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct lucy_mcp *m = req->arg;
    if (check_headers(m, req, resp))
        return;
    const char *type = lucy_http_header(req, "Content-Type");
    if (!type || strncasecmp(type, "application/json", 16) != 0) {
        reply_rpc_error(resp, 415, NULL, MCP_INVALID_REQUEST, "unsupported_media",
                        "send the JSON-RPC message with Content-Type: application/json");
        return;
    }
    json_error_t jerr;
    json_t *msg = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!msg) {
        char why[300];
        snprintf(why, sizeof why, "the body is not JSON (%s, line %d); send one JSON-RPC message",
                 jerr.text, jerr.line);
        reply_rpc_error(resp, 400, NULL, MCP_PARSE_ERROR, "bad_request", why);
        return;
    }
    json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    const char *why = NULL;
    if (json_is_array(msg))
        why = "batches are not part of MCP 2025-11-25: send one JSON-RPC message per POST";
    else if (!json_is_object(msg) ||
             strcmp(json_string_value(json_object_get(msg, "jsonrpc")) ?: "", "2.0") != 0)
        why = "not a JSON-RPC 2.0 message: send an object with \"jsonrpc\": \"2.0\"";
    else if (id && !json_is_string(id) && !json_is_integer(id))
        why = "id must be a string or an integer";
    else if (!method && !(id && (json_object_get(msg, "result") || json_object_get(msg, "error"))))
        why = "a message needs a method (request or notification) or a result or error "
              "(response)";
    if (why) {
        reply_rpc_error(resp, 400, json_is_string(id) || json_is_integer(id) ? id : NULL,
                        MCP_INVALID_REQUEST, "bad_request", why);
        json_decref(msg);
        return;
    }
    int initialize = method && id && strcmp(method, "initialize") == 0;
    if (!initialize && check_session(m, req, resp, id)) {
        json_decref(msg);
        return;
    }
    if (!method || !id) /* a notification or a response: nothing to answer */
        lucy_http_reply_text(resp, 202, "application/json", "", 0);
    else
        run_request(m, resp, method, id, json_object_get(msg, "params"), initialize);
    json_decref(msg);
}

void mcp_http_delete(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct lucy_mcp *m = req->arg;
    if (check_headers(m, req, resp) || check_session(m, req, resp, NULL))
        return;
    if (mcp_session_delete(m, lucy_http_header(req, "MCP-Session-Id"))) {
        reply_rpc_error(resp, 503, NULL, MCP_INTERNAL_ERROR, "dependency_unavailable",
                        "the session could not be ended (the kv is down); retry shortly");
        resp->retry_after_s = 5;
        return;
    }
    lucy_http_reply_text(resp, 204, "application/json", "", 0);
}
