/*
 * mcp_int.h - what the files of src/mcp/ share: the endpoint's state, the
 * tool table's row, the argument table that is both a tool's inputSchema
 * and its validation, and the JSON-RPC error codes. Private to src/mcp/.
 *
 *   rpc.c        transport (POST/DELETE /mcp: origin, session, protocol
 *                version, JSON-RPC framing) and the method table
 *   session.c    sessions in the kv (MCP-Session-Id)
 *   args.c       argument tables -> inputSchema, and argument checking
 *   tools.c      THE tool table, tools/list and tools/call
 *   tool_*.c     one file per family of tools (search, recordings, people,
 *                ask)
 *   resources.c  resources/list, resources/templates/list, resources/read
 *   plugin.c     start-up: parses the schemas once, adds the routes
 */
#ifndef LUCY_MCP_INT_H
#define LUCY_MCP_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct lucy_ctx;

/* The protocol revision lucy implements, and the older ones it accepts in
 * initialize and in the MCP-Protocol-Version header. */
#define MCP_PROTOCOL_LATEST "2025-11-25"

/* JSON-RPC 2.0 error codes (and MCP's resource-not-found). */
enum {
    MCP_PARSE_ERROR = -32700,
    MCP_INVALID_REQUEST = -32600,
    MCP_METHOD_NOT_FOUND = -32601,
    MCP_INVALID_PARAMS = -32602,
    MCP_INTERNAL_ERROR = -32603,
    MCP_RESOURCE_NOT_FOUND = -32002,
};

/* The endpoint's state: every /mcp route's req->arg. Read-only after the
 * plugin's init, so handlers on any HTTP thread share it without locks. */
struct lucy_mcp {
    struct lucy_ctx *ctx;    /* the daemon: store, index, kv (borrowed) */
    json_t *tools_list;      /* the tools/list result, built once at init */
    json_t **output_schemas; /* parsed outputSchema per row of mcp_tools[] */
    char **origins;          /* LUCY_MCP_ORIGINS split at commas (NULL-terminated) */
};

/* ---- args.c ----------------------------------------------------------------
 * A tool's arguments are a table: the same rows make the inputSchema that
 * tools/list shows and check what tools/call receives, so the two cannot
 * disagree. */

enum mcp_arg_type {
    MCP_ARG_STRING,  /* a string of min..max bytes */
    MCP_ARG_INT,     /* a whole number in min..max */
    MCP_ARG_ENUM,    /* one of choices[] */
    MCP_ARG_TIME,    /* Unix seconds or ISO 8601; becomes Unix seconds */
    MCP_ARG_TIME_TO, /* like MCP_ARG_TIME, a date alone meaning its last second */
};

struct mcp_arg {
    const char *name;           /* property name */
    enum mcp_arg_type type;     /* what it takes */
    int required;               /* 1 = must be given */
    int64_t min, max;           /* INT: bounds; STRING: length in bytes */
    const char *const *choices; /* ENUM: NULL-terminated */
    const char *description;    /* for the agent: what it means, its default */
};

/* The JSON Schema of an argument table (new reference; NULL on ENOMEM). */
json_t *mcp_args_schema(const struct mcp_arg *args, size_t n);

/* Checks given (a JSON object, or NULL for none) against the table: every
 * required argument present, no unknown one, each of its type and within
 * bounds. Returns a new object of the given values with times as Unix
 * seconds, or NULL with a sentence for the agent in why (whylen bytes). */
json_t *mcp_args_check(const struct mcp_arg *args, size_t n, json_t *given, char *why,
                       size_t whylen);

/* Reads a checked value: the string (borrowed), or the number, else def. */
const char *mcp_arg_str(json_t *vals, const char *name);
int64_t mcp_arg_int(json_t *vals, const char *name, int64_t def);

/* ---- tools.c ---------------------------------------------------------------
 * One row per tool. Adding a tool is adding a row and its function. */

/* What a tool's function fills in. */
struct mcp_result {
    json_t *structured; /* success: structuredContent, matching the row's outputSchema */
    json_t *links;      /* resource_link content items (an array the function appends to) */
    char error[512];    /* failure: why, and what to do, for the agent */
};

/* A tool's function: runs the tool on checked arguments vals (see
 * mcp_args_check). 0 with out->structured set, or non-zero with
 * out->error set (the call becomes an isError result). Runs on an HTTP
 * pool thread; must be thread-safe. */
typedef int (*mcp_tool_fn)(struct lucy_mcp *m, json_t *vals, struct mcp_result *out);

struct mcp_tool {
    const char *name;           /* tools/call name */
    const char *title;          /* for people */
    const char *description;    /* for the model: what it does, when to use it */
    const struct mcp_arg *args; /* its argument table ... */
    size_t n_args;              /* ... of this many rows */
    const char *output_schema;  /* JSON Schema text of structuredContent */
    mcp_tool_fn fn;             /* the work */
};

extern const struct mcp_tool mcp_tools[];
extern const size_t mcp_tools_count;

/* The tools/list result (new reference; NULL on ENOMEM), for plugin.c. */
json_t *mcp_tools_list_build(const struct lucy_mcp *m);

/* tools/call: params {name, arguments}. Returns the CallToolResult (new
 * reference), or NULL with a JSON-RPC *code and message (unknown tool). */
json_t *mcp_tools_call(struct lucy_mcp *m, json_t *params, int *code, char *msg, size_t msglen);

/* Appends a resource_link for uri to out->links (name, title, description
 * may be NULL except name). */
void mcp_link(struct mcp_result *out, const char *uri, const char *name, const char *title,
              const char *description);

/* The tools' functions (tool_*.c). */
int mcp_tool_search(struct lucy_mcp *m, json_t *vals, struct mcp_result *out);
int mcp_tool_get_transcript(struct lucy_mcp *m, json_t *vals, struct mcp_result *out);
int mcp_tool_list_calls(struct lucy_mcp *m, json_t *vals, struct mcp_result *out);
int mcp_tool_get_person(struct lucy_mcp *m, json_t *vals, struct mcp_result *out);
int mcp_tool_ask(struct lucy_mcp *m, json_t *vals, struct mcp_result *out);

/* ---- tool_people.c (shared with resources.c) ----------------------------- */

/* Person id's document with its newest timeline_limit items under
 * "timeline" (and "timeline_more"), new reference in *out. 0,
 * LUCY_ENOTFOUND or a store error. Thread-safe. */
int mcp_person_read(struct lucy_mcp *m, int64_t id, int timeline_limit, json_t **out);

/* ---- resources.c ---------------------------------------------------------- */

/* resources/list, resources/templates/list, resources/read: the result
 * (new reference), or NULL with a JSON-RPC *code and message. */
json_t *mcp_resources_list(struct lucy_mcp *m, json_t *params, int *code, char *msg, size_t msglen);
json_t *mcp_resources_templates(struct lucy_mcp *m, json_t *params, int *code, char *msg,
                                size_t msglen);
json_t *mcp_resources_read(struct lucy_mcp *m, json_t *params, int *code, char *msg, size_t msglen);

/* The URIs of lucy's resources (malloc'd; NULL on ENOMEM). */
char *mcp_uri_recording(const char *id);
char *mcp_uri_person(int64_t id);

/* ---- session.c -------------------------------------------------------------
 * Sessions live in the kv under mcp:session:<id> for SESSION_TTL_MS, so
 * every instance behind one Redis knows them. */

enum mcp_session_state { MCP_SESSION_LIVE, MCP_SESSION_UNKNOWN, MCP_SESSION_UNCHECKED };

/* Creates a session for protocol version; writes its id (32 hex digits)
 * into id (33 bytes). 0, or LUCY_E* when it could not be stored (the
 * session still works on this instance's checks: see mcp_session_check). */
int mcp_session_new(struct lucy_mcp *m, const char *version, char id[33]);

/* LIVE: known; UNKNOWN: never created or deleted (the client must
 * initialize again: 404); UNCHECKED: the kv is down, so it is accepted. */
enum mcp_session_state mcp_session_check(struct lucy_mcp *m, const char *id);

/* Ends session id. 0 or LUCY_E*. */
int mcp_session_delete(struct lucy_mcp *m, const char *id);

/* ---- rpc.c ---------------------------------------------------------------- */

struct lucy_http_request;
struct lucy_http_response;
void mcp_http_post(struct lucy_http_request *req, struct lucy_http_response *resp);
void mcp_http_delete(struct lucy_http_request *req, struct lucy_http_response *resp);

#endif
