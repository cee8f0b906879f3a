/*
 * tools.c - THE tool table (mcp_tools[]) and the two methods over it:
 * tools/list (built once at start-up from the rows) and tools/call (check
 * the arguments against the row's table, run its function, wrap the
 * result as MCP wants it: structuredContent, the same JSON as a text
 * block for clients that read only text, then the hits as resource_links).
 *
 * Adding a tool is adding an argument table, an output schema and a row
 * here, and its function in a tool_*.c file.
 * Every tool only reads: its annotations say so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ask/ask.h"
#include "../http/http.h"
#include "../index/index.h"
#include "mcp_int.h"

/* ---- argument tables --------------------------------------------------- */

static const char *const sources[] = {"call_recording", "whatsapp", NULL};
static const char *const orders[] = {"newest", "oldest", NULL};

#define PERSON_ARG(what)                                                                           \
    {                                                                                              \
        "person_id", MCP_ARG_INT, 0, 1, INT64_MAX, NULL,                                           \
            what " (a person's id, from get_person, list_calls or a search hit)"                   \
    }
#define FROM_ARG                                                                                   \
    {                                                                                              \
        "from", MCP_ARG_TIME, 0, 0, 0, NULL,                                                       \
            "earliest time, inclusive: Unix seconds or ISO 8601 (2024-05-31, "                     \
            "2024-05-31T14:00:00Z)"                                                                \
    }
#define TO_ARG                                                                                     \
    {                                                                                              \
        "to", MCP_ARG_TIME_TO, 0, 0, 0, NULL,                                                      \
            "latest time, inclusive: Unix seconds or ISO 8601; a date alone includes that whole "  \
            "day"                                                                                  \
    }

static const struct mcp_arg search_args[] = {
    {"query", MCP_ARG_STRING, 1, 1, 1000, NULL,
     "the words to find (every word must occur; case and accents do not matter)"},
    PERSON_ARG("only calls and messages with this person"),
    FROM_ARG,
    TO_ARG,
    {"source", MCP_ARG_ENUM, 0, 0, 0, sources, "only call_recording or only whatsapp"},
    {"limit", MCP_ARG_INT, 0, 1, LUCY_SEARCH_LIMIT_MAX, NULL,
     "conversations to return, 1 to 100 (default 10)"},
};

static const struct mcp_arg transcript_args[] = {
    {"recording_id", MCP_ARG_STRING, 1, 64, 64, NULL,
     "the recording's id (64 hex digits), from search or list_calls"},
    {"t0_ms", MCP_ARG_INT, 0, 0, INT64_MAX, NULL,
     "start of the window in ms from the recording's start (default: the beginning)"},
    {"t1_ms", MCP_ARG_INT, 0, 0, INT64_MAX, NULL,
     "end of the window in ms (default: the end); segments overlapping the window are returned"},
};

static const struct mcp_arg person_args[] = {
    {"person_id", MCP_ARG_INT, 1, 1, INT64_MAX, NULL,
     "the person's id (from a search hit, list_calls or a lucy://people/{id} link)"},
    {"timeline_limit", MCP_ARG_INT, 0, 1, 100, NULL,
     "newest calls and messages to include, 1 to 100 (default 20)"},
};

static const struct mcp_arg calls_args[] = {
    PERSON_ARG("only calls with this person"),
    FROM_ARG,
    TO_ARG,
    {"order", MCP_ARG_ENUM, 0, 0, 0, orders,
     "newest (default) or oldest first, by when the call started"},
    {"limit", MCP_ARG_INT, 0, 1, 100, NULL, "calls to return, 1 to 100 (default 20)"},
    {"cursor", MCP_ARG_STRING, 0, 1, 64, NULL,
     "next_cursor of the previous page, to continue the list"},
};

static const struct mcp_arg ask_args[] = {
    {"question", MCP_ARG_STRING, 1, 1, LUCY_ASK_QUESTION_MAX, NULL,
     "the question, in plain words; names, numbers and time phrases (\"last week\") in it "
     "are understood"},
    PERSON_ARG("only calls and messages with this person, instead of one the question names"),
    FROM_ARG,
    TO_ARG,
};

/* ---- output schemas (JSON Schema of structuredContent) ------------------ */

#define NULLABLE(t) "{\"type\":[\"" t "\",\"null\"]}"

static const char search_output[] =
    "{\"type\":\"object\",\"required\":[\"query\",\"backend\",\"degraded\",\"count\",\"hits\"],"
    "\"properties\":{\"query\":{\"type\":\"string\"},\"backend\":{\"type\":\"string\"},"
    "\"degraded\":{\"type\":\"boolean\"},\"degraded_reason\":{\"type\":\"string\"},"
    "\"grouped\":{\"type\":\"boolean\"},\"count\":{\"type\":\"integer\"},"
    "\"hits\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
    "\"required\":[\"source\",\"id\",\"snippet\",\"score\",\"time\",\"uri\"],"
    "\"properties\":{\"source\":{\"enum\":[\"call_recording\",\"whatsapp\"]},"
    "\"id\":{\"type\":\"string\"},\"segment\":{\"type\":\"integer\"},"
    "\"title\":" NULLABLE(
        "string") ",\"snippet\":{\"type\":\"string\"},"
                  "\"score\":{\"type\":\"number\"},\"time\":{\"type\":\"integer\"},"
                  "\"contact\":" NULLABLE(
                      "string") ",\"t0_ms\":{\"type\":\"integer\"},"
                                "\"t1_ms\":{\"type\":\"integer\"},\"speaker\":{\"type\":["
                                "\"string\",\"integer\",\"null\"]},\"key\":{\"type\":\"string\"},"
                                "\"person\":" NULLABLE(
                                    "integer") ",\"more\":{\"type\":\"integer\"},"
                                               "\"hits\":{\"type\":\"array\",\"items\":{\"type\":"
                                               "\"object\"}},"
                                               "\"uri\":" NULLABLE("string") "}}}}}";

static const char transcript_output[] =
    "{\"type\":\"object\",\"required\":[\"recording_id\",\"uri\",\"segments\",\"text\"],"
    "\"properties\":{\"recording_id\":{\"type\":\"string\"},\"uri\":{\"type\":\"string\"},"
    "\"title\":" NULLABLE("string") ",\"started_at\":" NULLABLE(
        "string") ","
                  "\"duration_s\":" NULLABLE("number") ",\"language\":" NULLABLE(
                      "string") ","
                                "\"engine\":" NULLABLE("string") ",\"t0_ms\":" NULLABLE(
                                    "integer") ","
                                               "\"t1_ms\":" NULLABLE(
                                                   "integer") ",\"segments\":{\"type\":\"array\","
                                                              "\"items\":{"
                                                              "\"type\":\"object\",\"required\":["
                                                              "\"t0_ms\",\"t1_ms\",\"text\"],"
                                                              "\"properties\":{"
                                                              "\"t0_ms\":{\"type\":\"integer\"},"
                                                              "\"t1_ms\":{\"type\":\"integer\"},"
                                                              "\"text\":{\"type\":\"string\"}}}},"
                                                              "\"text\":{\"type\":\"string\"}}}";

static const char person_output[] =
    "{\"type\":\"object\",\"required\":[\"id\",\"name\",\"identifiers\",\"timeline\"],"
    "\"properties\":{\"id\":{\"type\":\"integer\"},\"name\":{\"type\":\"string\"},"
    "\"name_source\":{\"type\":\"string\"},\"identifiers\":{\"type\":\"array\",\"items\":{"
    "\"type\":\"object\",\"required\":[\"kind\",\"value\"],\"properties\":{"
    "\"kind\":{\"type\":\"string\"},\"value\":{\"type\":\"string\"}}}},"
    "\"names\":{\"type\":\"array\"},\"calls\":{\"type\":\"integer\"},"
    "\"messages\":{\"type\":\"integer\"},"
    "\"timeline\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"kind\","
    "\"time\"],\"properties\":{\"kind\":{\"enum\":[\"call\",\"message\"]},"
    "\"time\":{\"type\":\"integer\"}}}},\"timeline_more\":{\"type\":\"boolean\"}}}";

static const char calls_output[] =
    "{\"type\":\"object\",\"required\":[\"calls\",\"next_cursor\"],\"properties\":{"
    "\"calls\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":["
    "\"recording_id\",\"uri\",\"title\",\"started_at\",\"transcript_status\"],"
    "\"properties\":{\"recording_id\":{\"type\":\"string\"},\"uri\":{\"type\":\"string\"},"
    "\"title\":" NULLABLE("string") ",\"started_at\":" NULLABLE(
        "string") ","
                  "\"started_at_ms\":" NULLABLE("integer") ",\"duration_s\":" NULLABLE(
                      "number") ","
                                "\"direction\":" NULLABLE("string") ",\"number\":" NULLABLE(
                                    "string") ","
                                              "\"person\":{\"type\":[\"object\",\"null\"]},"
                                              "\"transcript_status\":" NULLABLE(
                                                  "string") "}}},"
                                                            "\"next_cursor\":" NULLABLE(
                                                                "string") "}}";

static const char ask_output
    [] = "{\"type\":\"object\",\"required\":[\"answer\",\"lucy\"],\"properties\":{"
         "\"answer\":{\"type\":\"string\"},"
         "\"lucy\":{\"type\":\"object\",\"required\":[\"citations\",\"verified\",\"retrieval\"],"
         "\"properties\":{\"verified\":{\"type\":\"boolean\"},"
         "\"citations\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
         "\"required\":[\"n\",\"source\",\"id\",\"verified\"],\"properties\":{"
         "\"n\":{\"type\":\"integer\"},\"source\":" NULLABLE(
             "string") ","
                       "\"id\":" NULLABLE("string") ",\"segment\":" NULLABLE(
                           "integer") ","
                                      "\"t0_ms\":" NULLABLE("integer") ",\"t1_ms\":" NULLABLE(
                                          "integer") ","
                                                     "\"person\":{\"type\":[\"object\",\"null\"]},"
                                                     "\"label\":" NULLABLE(
                                                         "string") ","
                                                                   "\"time\":" NULLABLE("string") ",\"quote\":" NULLABLE(
                                                                       "string") ","
                                                                                 "\"url\""
                                                                                 ":" NULLABLE(
                                                                                     "string") ",\""
                                                                                               "ver"
                                                                                               "ifi"
                                                                                               "ed"
                                                                                               "\":"
                                                                                               "{\""
                                                                                               "typ"
                                                                                               "e\""
                                                                                               ":\""
                                                                                               "boo"
                                                                                               "lea"
                                                                                               "n\""
                                                                                               "}}}"
                                                                                               "},"
                                                                                               "\"r"
                                                                                               "etr"
                                                                                               "iev"
                                                                                               "al"
                                                                                               "\":"
                                                                                               "{\""
                                                                                               "typ"
                                                                                               "e\""
                                                                                               ":\""
                                                                                               "obj"
                                                                                               "ect"
                                                                                               "\","
                                                                                               "\"r"
                                                                                               "equ"
                                                                                               "ire"
                                                                                               "d\""
                                                                                               ":["
                                                                                               "\"b"
                                                                                               "ack"
                                                                                               "end"
                                                                                               "\","
                                                                                               "\"d"
                                                                                               "egr"
                                                                                               "ade"
                                                                                               "d\""
                                                                                               ",\""
                                                                                               "llm"
                                                                                               "\"]"
                                                                                               ","
                                                                                               "\"p"
                                                                                               "rop"
                                                                                               "ert"
                                                                                               "ies"
                                                                                               "\":"
                                                                                               "{\""
                                                                                               "bac"
                                                                                               "ken"
                                                                                               "d\""
                                                                                               ":{"
                                                                                               "\"t"
                                                                                               "ype"
                                                                                               "\":"
                                                                                               "\"s"
                                                                                               "tri"
                                                                                               "ng"
                                                                                               "\"}"
                                                                                               ",\""
                                                                                               "deg"
                                                                                               "rad"
                                                                                               "ed"
                                                                                               "\":"
                                                                                               "{\""
                                                                                               "typ"
                                                                                               "e\""
                                                                                               ":\""
                                                                                               "boo"
                                                                                               "lea"
                                                                                               "n\""
                                                                                               "},"
                                                                                               "\"l"
                                                                                               "lm"
                                                                                               "\":"
                                                                                               "{\""
                                                                                               "typ"
                                                                                               "e\""
                                                                                               ":\""
                                                                                               "str"
                                                                                               "ing"
                                                                                               "\"}"
                                                                                               ",\""
                                                                                               "sou"
                                                                                               "rce"
                                                                                               "s\""
                                                                                               ":{"
                                                                                               "\"t"
                                                                                               "ype"
                                                                                               "\":"
                                                                                               "\"i"
                                                                                               "nte"
                                                                                               "ger"
                                                                                               "\"}"
                                                                                               "}}}"
                                                                                               "}}"
                                                                                               "}";

/* ---- the table ------------------------------------------------------------ */

#define ARGS(a) a, sizeof a / sizeof a[0]

const struct mcp_tool mcp_tools[] = {
    {"search", "Search calls and messages",
     "Full-text search over call transcripts and WhatsApp messages, one hit per conversation "
     "(a call, or a person's messages on one day) with its best matching passages. Filter by "
     "person and time. Each hit links to its recording or person; get_transcript reads around "
     "a hit's t0_ms.",
     ARGS(search_args), search_output, mcp_tool_search},
    {"get_transcript", "Read a call's transcript",
     "The transcript of one call recording as timed segments, whole or the window t0_ms..t1_ms "
     "(milliseconds from the start of the call).",
     ARGS(transcript_args), transcript_output, mcp_tool_get_transcript},
    {"get_person", "Who someone is",
     "A person: display name, phone numbers and WhatsApp ids, every name seen, and their most "
     "recent calls and messages.",
     ARGS(person_args), person_output, mcp_tool_get_person},
    {"list_calls", "List calls",
     "Call recordings by when they started (newest first by default), optionally only with one "
     "person and within a time range; paged with cursor.",
     ARGS(calls_args), calls_output, mcp_tool_list_calls},
    {"ask", "Ask a question",
     "Answers a question from the call transcripts and WhatsApp messages, citing its sources "
     "as [n]. lucy checks every citation and quote against the sources (lucy.verified, each "
     "citation's verified); when no LLM is configured or it fails, the answer is the best "
     "passages found. Each citation links to its recording (play or read from t0_ms with "
     "get_transcript) or person.",
     ARGS(ask_args), ask_output, mcp_tool_ask},
};
const size_t mcp_tools_count = sizeof mcp_tools / sizeof mcp_tools[0];

/* ---- tools/list, tools/call ---------------------------------------------- */

json_t *mcp_tools_list_build(const struct lucy_mcp *m)
{
    json_t *tools = json_array();
    for (size_t i = 0; tools && i < mcp_tools_count; i++) {
        const struct mcp_tool *t = &mcp_tools[i];
        json_t *o =
            json_pack("{s:s,s:s,s:s,s:o,s:O,s:{s:b,s:b,s:b}}", "name", t->name, "title", t->title,
                      "description", t->description, "inputSchema",
                      mcp_args_schema(t->args, t->n_args), "outputSchema", m->output_schemas[i],
                      "annotations", "readOnlyHint", 1, "destructiveHint", 0, "openWorldHint", 0);
        if (!o || json_array_append_new(tools, o)) {
            json_decref(tools);
            return NULL;
        }
    }
    return tools ? json_pack("{s:o}", "tools", tools) : NULL;
}

void mcp_link(struct mcp_result *out, const char *uri, const char *name, const char *title,
              const char *description)
{
    if (!uri || !name)
        return;
    json_t *l = json_pack("{s:s,s:s,s:s,s:s}", "type", "resource_link", "uri", uri, "name", name,
                          "mimeType", "application/json");
    if (!l)
        return;
    if (title)
        json_object_set_new(l, "title", json_string(title));
    if (description)
        json_object_set_new(l, "description", json_string(description));
    json_array_append_new(out->links, l);
}

/* An isError result: the agent reads why and may call again. */
static json_t *tool_error(const char *why)
{
    return json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text", why, "isError", 1);
}

json_t *mcp_tools_call(struct lucy_mcp *m, json_t *params, int *code, char *msg, size_t msglen)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    size_t i = 0;
    while (name && i < mcp_tools_count && strcmp(mcp_tools[i].name, name) != 0)
        i++;
    if (!name || i == mcp_tools_count) {
        *code = MCP_INVALID_PARAMS;
        snprintf(msg, msglen, "unknown tool \"%.60s\"; tools/list names the tools",
                 name ? name : "(no name)");
        return NULL;
    }
    const struct mcp_tool *t = &mcp_tools[i];
    struct mcp_result r = {.links = json_array()};
    json_t *vals = mcp_args_check(t->args, t->n_args, json_object_get(params, "arguments"), r.error,
                                  sizeof r.error);
    int rc = vals && r.links ? t->fn(m, vals, &r) : 1;
    json_decref(vals);
    if (rc || !r.structured) {
        json_decref(r.links);
        json_decref(r.structured);
        return tool_error(r.error[0] ? r.error : "the tool failed; retry shortly");
    }
    char *text = json_dumps(r.structured, JSON_COMPACT | JSON_PRESERVE_ORDER | LUCY_JSON_REALS);
    json_t *content = json_pack("[{s:s,s:s}]", "type", "text", "text", text ? text : "");
    free(text);
    json_array_extend(content, r.links);
    json_decref(r.links);
    return json_pack("{s:o,s:o,s:b}", "content", content, "structuredContent", r.structured,
                     "isError", 0);
}
