/*
 * tool_ask.c - the `ask` tool: a question answered by the ask engine
 * (lucy_ask_run, src/ask/) that also serves /v1/chat/completions and
 * /ask, so an agent gets the same verified citations as a person. The
 * structuredContent is {answer, lucy}: the answer text with [n] markers
 * and the `lucy` object (citations, verified, retrieval); each citation
 * with a resource is linked (a call to its recording, a message to its
 * sender's person) so the agent can read around it.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ask/ask.h"
#include "../error.h"
#include "../lucy.h"
#include "mcp_int.h"

/* Links citation c (a `lucy.citations` item) to its resource. */
static void link_citation(struct mcp_result *out, json_t *c)
{
    const char *source = json_string_value(json_object_get(c, "source"));
    json_t *person = json_object_get(json_object_get(c, "person"), "id");
    char *uri = NULL;
    if (source && strcmp(source, "call_recording") == 0)
        uri = mcp_uri_recording(json_string_value(json_object_get(c, "id")));
    else if (json_is_integer(person))
        uri = mcp_uri_person(json_integer_value(person));
    if (!uri)
        return;
    char name[32], where[64] = "";
    snprintf(name, sizeof name, "[%lld]", (long long)json_integer_value(json_object_get(c, "n")));
    if (json_is_integer(json_object_get(c, "t0_ms")))
        snprintf(where, sizeof where, " at t0_ms %lld",
                 (long long)json_integer_value(json_object_get(c, "t0_ms")));
    char *description = NULL;
    if (asprintf(&description, "%s%s: %s", json_string_value(json_object_get(c, "label")) ?: "",
                 where, json_string_value(json_object_get(c, "quote")) ?: "") < 0)
        description = NULL;
    mcp_link(out, uri, name, json_string_value(json_object_get(c, "label")), description);
    free(description);
    free(uri);
}

int mcp_tool_ask(struct lucy_mcp *m, json_t *vals, struct mcp_result *out)
{
    struct lucy_ask *a = m->ctx->ask;
    if (!a) {
        snprintf(out->error, sizeof out->error, "the ask engine is not running; retry shortly");
        return LUCY_EUNAVAIL;
    }
    struct lucy_ask_request rq = {
        .question = mcp_arg_str(vals, "question"),
        .person = mcp_arg_int(vals, "person_id", 0),
        .range_given = json_object_get(vals, "from") || json_object_get(vals, "to"),
        .from_s = mcp_arg_int(vals, "from", INT64_MIN),
        .to_s = mcp_arg_int(vals, "to", INT64_MAX),
    };
    char *answer = NULL;
    json_t *lucy = NULL;
    if (!lucy_ask_seat(a)) {
        snprintf(out->error, sizeof out->error,
                 "lucy is answering as many questions as it takes at once; ask again in a few "
                 "seconds");
        return LUCY_EUNAVAIL;
    }
    int rc = lucy_ask_run(a, &rq, &answer, &lucy, out->error, sizeof out->error);
    lucy_ask_unseat(a);
    if (rc == LUCY_ENOMEM)
        snprintf(out->error, sizeof out->error, "out of memory answering; retry shortly");
    if (rc)
        return rc;
    out->structured = json_pack("{s:s, s:o}", "answer", answer, "lucy", lucy);
    free(answer);
    if (!out->structured) {
        snprintf(out->error, sizeof out->error, "out of memory building the result; retry");
        return LUCY_ENOMEM;
    }
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(lucy, "citations"), i, c) link_citation(out, c);
    return 0;
}
