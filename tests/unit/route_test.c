/* route_test.c - path pattern matching, 404 vs 405, captures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/http.h"

static void h(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    (void)req, (void)resp;
}

static const struct lucy_route routes[] = {
    {"GET", "/health", h, 0, 0, NULL},
    {"GET", "/recordings", h, 1, 0, NULL},
    {"GET", "/recordings/{id}", h, 1, 0, NULL},
    {"POST", "/recordings/scan", h, 1, 0, NULL},
    {"POST", "/recordings/{id}/transcribe", h, 1, 0, NULL},
    {"PUT", "/contacts/{wa_id}", h, 1, 0, NULL},
    {"GET", "/contacts/{wa_id}", h, 1, 0, NULL},
};
#define N (sizeof routes / sizeof routes[0])

static enum lucy_route_match_result match(const char *m, const char *p, const struct lucy_route **r,
                                          char **params, int *n, char *allow)
{
    return lucy_route_match(routes, N, m, p, r, params, n, allow, 64);
}

static void literal_and_captures(void **state)
{
    (void)state;
    const struct lucy_route *r;
    char *params[LUCY_ROUTE_MAX_PARAMS];
    int n;
    char allow[64];
    assert_int_equal(match("GET", "/health", &r, params, &n, allow), LUCY_ROUTE_FOUND);
    assert_ptr_equal(r, &routes[0]);
    assert_int_equal(n, 0);

    assert_int_equal(match("POST", "/recordings/abc123/transcribe", &r, params, &n, allow),
                     LUCY_ROUTE_FOUND);
    assert_ptr_equal(r, &routes[4]);
    assert_int_equal(n, 1);
    assert_string_equal(params[0], "abc123");
    free(params[0]);

    /* a literal row listed before the capture row wins */
    assert_int_equal(match("POST", "/recordings/scan", &r, params, &n, allow), LUCY_ROUTE_FOUND);
    assert_ptr_equal(r, &routes[3]);
}

static void not_found_vs_method(void **state)
{
    (void)state;
    const struct lucy_route *r;
    char *params[LUCY_ROUTE_MAX_PARAMS];
    int n;
    char allow[64];
    assert_int_equal(match("GET", "/nope", &r, params, &n, allow), LUCY_ROUTE_NO_PATH);
    assert_int_equal(match("GET", "/health/", &r, params, &n, allow), LUCY_ROUTE_NO_PATH);
    assert_int_equal(match("GET", "/recordings//transcribe", &r, params, &n, allow),
                     LUCY_ROUTE_NO_PATH);
    assert_int_equal(match("DELETE", "/health", &r, params, &n, allow), LUCY_ROUTE_NO_METHOD);
    assert_string_equal(allow, "GET");
    assert_int_equal(match("DELETE", "/contacts/x", &r, params, &n, allow), LUCY_ROUTE_NO_METHOD);
    assert_string_equal(allow, "PUT, GET");
}

static void head_matches_get(void **state)
{
    (void)state;
    const struct lucy_route *r;
    char *params[LUCY_ROUTE_MAX_PARAMS];
    int n;
    char allow[64];
    assert_int_equal(match("HEAD", "/health", &r, params, &n, allow), LUCY_ROUTE_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(literal_and_captures),
        cmocka_unit_test(not_found_vs_method),
        cmocka_unit_test(head_matches_get),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
