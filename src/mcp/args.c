/*
 * args.c - a tool's argument table as its inputSchema, and the check of
 * what an agent sent against the same table (mcp_int.h). A bad argument is
 * a sentence naming it and saying what to send: tools/call turns it into
 * an isError result the model can correct itself from.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../index/index.h"
#include "mcp_int.h"

static json_t *arg_schema(const struct mcp_arg *a)
{
    json_t *s = json_pack("{s:s}", "description", a->description);
    if (!s)
        return NULL;
    switch (a->type) {
    case MCP_ARG_STRING:
        json_object_set_new(s, "type", json_string("string"));
        json_object_set_new(s, "minLength", json_integer(a->min));
        json_object_set_new(s, "maxLength", json_integer(a->max));
        break;
    case MCP_ARG_INT:
        json_object_set_new(s, "type", json_string("integer"));
        json_object_set_new(s, "minimum", json_integer(a->min));
        json_object_set_new(s, "maximum", json_integer(a->max));
        break;
    case MCP_ARG_ENUM: {
        json_t *e = json_array();
        for (const char *const *c = a->choices; *c; c++)
            json_array_append_new(e, json_string(*c));
        json_object_set_new(s, "type", json_string("string"));
        json_object_set_new(s, "enum", e);
        break;
    }
    case MCP_ARG_TIME:
    case MCP_ARG_TIME_TO:
        json_object_set_new(s, "type", json_pack("[s,s]", "string", "integer"));
        break;
    }
    return s;
}

json_t *mcp_args_schema(const struct mcp_arg *args, size_t n)
{
    json_t *props = json_object(), *required = json_array();
    for (size_t i = 0; i < n; i++) {
        json_object_set_new(props, args[i].name, arg_schema(&args[i]));
        if (args[i].required)
            json_array_append_new(required, json_string(args[i].name));
    }
    return json_pack("{s:s,s:o,s:o,s:b}", "type", "object", "properties", props, "required",
                     required, "additionalProperties", 0);
}

/* Checks one value; returns the value to keep (new reference) or NULL
 * with why. */
static json_t *check_one(const struct mcp_arg *a, json_t *v, char *why, size_t whylen)
{
    switch (a->type) {
    case MCP_ARG_STRING: {
        size_t len = json_string_length(v);
        if (!json_is_string(v) || (int64_t)len < a->min || (int64_t)len > a->max) {
            snprintf(why, whylen, "%s must be a string of %" PRId64 " to %" PRId64 " bytes: %s",
                     a->name, a->min, a->max, a->description);
            return NULL;
        }
        return json_incref(v);
    }
    case MCP_ARG_INT:
        if (!json_is_integer(v) || json_integer_value(v) < a->min ||
            json_integer_value(v) > a->max) {
            snprintf(why, whylen, "%s must be a whole number from %" PRId64 " to %" PRId64 ": %s",
                     a->name, a->min, a->max, a->description);
            return NULL;
        }
        return json_incref(v);
    case MCP_ARG_ENUM:
        for (const char *const *c = a->choices; json_is_string(v) && *c; c++)
            if (strcmp(*c, json_string_value(v)) == 0)
                return json_incref(v);
        snprintf(why, whylen, "%s must be one of the listed values: %s", a->name, a->description);
        return NULL;
    case MCP_ARG_TIME:
    case MCP_ARG_TIME_TO: {
        int64_t s;
        if (json_is_integer(v))
            return json_incref(v);
        if (json_is_string(v) &&
            lucy_index_parse_time(json_string_value(v), a->type == MCP_ARG_TIME_TO, &s) == 0)
            return json_integer(s);
        snprintf(why, whylen,
                 "%s must be Unix seconds (1717171200) or an ISO 8601 date or time "
                 "(2024-05-31, 2024-05-31T14:00:00Z, 2024-05-31T16:00:00+02:00)",
                 a->name);
        return NULL;
    }
    }
    snprintf(why, whylen, "%s: unknown argument type (a bug in lucy)", a->name);
    return NULL;
}

json_t *mcp_args_check(const struct mcp_arg *args, size_t n, json_t *given, char *why,
                       size_t whylen)
{
    if (given && !json_is_object(given)) {
        snprintf(why, whylen, "arguments must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(given, key, v)
    {
        size_t i = 0;
        while (i < n && strcmp(args[i].name, key) != 0)
            i++;
        if (i == n) {
            snprintf(why, whylen,
                     "unknown argument \"%.60s\"; this tool takes only those in its "
                     "inputSchema",
                     key);
            return NULL;
        }
    }
    json_t *vals = json_object();
    for (size_t i = 0; vals && i < n; i++) {
        json_t *g = json_object_get(given, args[i].name);
        if (!g || json_is_null(g)) {
            if (!args[i].required)
                continue;
            snprintf(why, whylen, "%s is required: %s", args[i].name, args[i].description);
            json_decref(vals);
            return NULL;
        }
        json_t *kept = check_one(&args[i], g, why, whylen);
        if (!kept) {
            json_decref(vals);
            return NULL;
        }
        json_object_set_new(vals, args[i].name, kept);
    }
    if (!vals)
        snprintf(why, whylen, "out of memory checking the arguments; retry");
    return vals;
}

const char *mcp_arg_str(json_t *vals, const char *name)
{
    return json_string_value(json_object_get(vals, name));
}

int64_t mcp_arg_int(json_t *vals, const char *name, int64_t def)
{
    json_t *v = json_object_get(vals, name);
    return json_is_integer(v) ? json_integer_value(v) : def;
}
