/* mcp_test.c - the MCP layer's pure parts: a tool's argument table as its
 * inputSchema and as the check of what an agent sends (args.c), the Origin
 * rule (rpc.c), the tool table's schemas, and which routes the API rate
 * limit covers (http/ratelimit.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/mcp/rpc.c" /* origin_allowed, version_supported */
#include "http/server_int.h"

static const char *const colours[] = {"red", "blue", NULL};
static const struct mcp_arg args[] = {
    {"q", MCP_ARG_STRING, 1, 1, 5, NULL, "words"},
    {"n", MCP_ARG_INT, 0, 1, 10, NULL, "how many"},
    {"colour", MCP_ARG_ENUM, 0, 0, 0, colours, "red or blue"},
    {"from", MCP_ARG_TIME, 0, 0, 0, NULL, "start"},
    {"to", MCP_ARG_TIME_TO, 0, 0, 0, NULL, "end"},
};
#define N_ARGS (sizeof args / sizeof args[0])

static json_t *check(const char *json, char *why)
{
    json_t *given = json_loads(json, 0, NULL);
    json_t *vals = mcp_args_check(args, N_ARGS, given, why, 256);
    json_decref(given);
    return vals;
}

static void test_args_accept_and_convert(void **state)
{
    (void)state;
    char why[256] = "";
    json_t *v = check("{\"q\":\"abc\",\"n\":3,\"colour\":\"red\",\"from\":\"2024-05-31\","
                      "\"to\":\"2024-05-31\"}",
                      why);
    assert_non_null(v);
    assert_string_equal(mcp_arg_str(v, "q"), "abc");
    assert_int_equal(mcp_arg_int(v, "n", 0), 3);
    assert_int_equal(mcp_arg_int(v, "from", 0), 1717113600);
    assert_int_equal(mcp_arg_int(v, "to", 0), 1717113600 + 86399); /* the whole day */
    json_decref(v);
    v = check("{\"q\":\"x\",\"n\":null}", why); /* null = not given */
    assert_non_null(v);
    assert_int_equal(mcp_arg_int(v, "n", 7), 7);
    json_decref(v);
}

static void test_args_refuse_with_the_name(void **state)
{
    (void)state;
    static const struct {
        const char *json, *named;
    } bad[] = {
        {"{}", "q is required"},
        {"{\"q\":\"\"}", "q must be"},
        {"{\"q\":\"toolong\"}", "q must be"},
        {"{\"q\":\"x\",\"n\":0}", "n must be"},
        {"{\"q\":\"x\",\"n\":1.5}", "n must be"},
        {"{\"q\":\"x\",\"colour\":\"green\"}", "colour must be"},
        {"{\"q\":\"x\",\"from\":\"last week\"}", "from must be"},
        {"{\"q\":\"x\",\"shape\":1}", "unknown argument \"shape\""},
        {"[1]", "arguments must be a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[256] = "";
        assert_null(check(bad[i].json, why));
        assert_non_null(strstr(why, bad[i].named));
    }
}

static void test_args_schema(void **state)
{
    (void)state;
    json_t *s = mcp_args_schema(args, N_ARGS);
    assert_string_equal(json_string_value(json_object_get(s, "type")), "object");
    assert_true(json_is_false(json_object_get(s, "additionalProperties")));
    assert_int_equal(json_array_size(json_object_get(s, "required")), 1);
    json_t *n = json_object_get(json_object_get(s, "properties"), "n");
    assert_int_equal(json_integer_value(json_object_get(n, "maximum")), 10);
    json_decref(s);
}

static void test_every_output_schema_is_json(void **state)
{
    (void)state;
    for (size_t i = 0; i < mcp_tools_count; i++) {
        json_t *s = json_loads(mcp_tools[i].output_schema, 0, NULL);
        assert_non_null(s);
        assert_string_equal(json_string_value(json_object_get(s, "type")), "object");
        json_decref(s);
    }
}

static void test_origin_rule(void **state)
{
    (void)state;
    char *listed[] = {"https://agents.example", NULL};
    struct lucy_mcp m = {.origins = listed};
    static const struct {
        const char *origin;
        int allowed;
    } cases[] = {
        {NULL, 1},
        {"http://localhost", 1},
        {"http://localhost:3000", 1},
        {"https://127.0.0.1:8765", 1},
        {"http://[::1]:8765", 1},
        {"https://agents.example", 1},
        {"HTTPS://AGENTS.EXAMPLE", 1},
        {"https://agents.example:444", 0},
        {"http://localhost.evil.example", 0},
        {"http://evil.example/localhost", 0},
        {"null", 0},
        {"file://localhost", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(origin_allowed(&m, cases[i].origin), cases[i].allowed);
    assert_true(version_supported("2025-11-25"));
    assert_false(version_supported("2024-11-05"));
}

static void test_rate_limited_routes(void **state)
{
    (void)state;
    assert_true(lucy_http_ratelimit_applies("/mcp"));
    assert_true(lucy_http_ratelimit_applies("/ask"));
    assert_true(lucy_http_ratelimit_applies("/v1/chat/completions"));
    assert_true(lucy_http_ratelimit_applies("/v1/models"));
    assert_false(lucy_http_ratelimit_applies("/v1x"));
    assert_false(lucy_http_ratelimit_applies("/mcpx"));
    assert_false(lucy_http_ratelimit_applies("/asked"));
    assert_false(lucy_http_ratelimit_applies("/recordings"));
    assert_false(lucy_http_ratelimit_applies("/search"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args_accept_and_convert),
        cmocka_unit_test(test_args_refuse_with_the_name),
        cmocka_unit_test(test_args_schema),
        cmocka_unit_test(test_every_output_schema_is_json),
        cmocka_unit_test(test_origin_rule),
        cmocka_unit_test(test_rate_limited_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
