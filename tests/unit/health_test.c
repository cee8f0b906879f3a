/* health_test.c - aggregation: worst wins, non-critical fail only warns,
 * HTTP status mapping, dependency map, and that render never runs checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "health/health.h"

static struct lucy_check_report report(int n, const enum lucy_health_status *s)
{
    struct lucy_check_report r;
    memset(&r, 0, sizeof r);
    for (int i = 0; i < n; i++)
        lucy_check_add(&r, "c", s[i], 0, "", "why %d", i);
    return r;
}

static void worst_item_wins(void **state)
{
    (void)state;
    enum lucy_health_status pw[] = {LUCY_HEALTH_PASS, LUCY_HEALTH_WARN, LUCY_HEALTH_PASS};
    struct lucy_check_report r = report(3, pw);
    assert_int_equal(lucy_health_check_status(&r, 1), LUCY_HEALTH_WARN);
    enum lucy_health_status pf[] = {LUCY_HEALTH_PASS, LUCY_HEALTH_FAIL};
    r = report(2, pf);
    assert_int_equal(lucy_health_check_status(&r, 1), LUCY_HEALTH_FAIL);
    assert_int_equal(lucy_health_check_status(&r, 0), LUCY_HEALTH_WARN); /* not critical */
    r = report(0, NULL);
    assert_int_equal(lucy_health_check_status(&r, 1), LUCY_HEALTH_WARN); /* not checked yet */
}

static void http_status(void **state)
{
    (void)state;
    assert_int_equal(lucy_health_http_status(LUCY_HEALTH_PASS), 200);
    assert_int_equal(lucy_health_http_status(LUCY_HEALTH_WARN), 200);
    assert_int_equal(lucy_health_http_status(LUCY_HEALTH_FAIL), 503);
    assert_int_equal(lucy_health_worst(LUCY_HEALTH_WARN, LUCY_HEALTH_PASS), LUCY_HEALTH_WARN);
    assert_int_equal(lucy_health_worst(LUCY_HEALTH_WARN, LUCY_HEALTH_FAIL), LUCY_HEALTH_FAIL);
}

static int calls;
static enum lucy_health_status next_status;

static void fake_check(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    (void)arg, (void)timeout_ms;
    calls++;
    lucy_check_add(out, "thing", next_status, 1, "items", "thing is %s",
                   lucy_health_status_name(next_status));
}

static void render(void **state)
{
    (void)state;
    struct lucy_health *h = lucy_health_new("1.2.3");
    struct lucy_check critical = {"store:writable", "datastore", "store", 1, 60000, 100,
                                  fake_check,       NULL};
    struct lucy_check optional = {"redis:ping", "datastore", "redis",    0,
                                  60000,        100,         fake_check, NULL};
    assert_int_equal(lucy_health_register(h, &critical), 0);
    assert_int_equal(lucy_health_register(h, &optional), 0);

    enum lucy_health_status s;
    json_t *doc = lucy_health_render(h, &s); /* nothing run yet */
    assert_int_equal(s, LUCY_HEALTH_WARN);
    assert_int_equal(calls, 0);
    json_decref(doc);

    next_status = LUCY_HEALTH_FAIL;
    assert_int_equal(lucy_health_start(h), 0); /* runs each once, synchronously */
    assert_int_equal(calls, 2);
    doc = lucy_health_render(h, &s);
    assert_int_equal(calls, 2); /* render only reads the cache */
    assert_int_equal(s, LUCY_HEALTH_FAIL);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "fail");
    json_t *redis =
        json_array_get(json_object_get(json_object_get(doc, "checks"), "redis:ping"), 0);
    assert_string_equal(json_string_value(json_object_get(redis, "status")), "warn");
    assert_string_equal(json_string_value(json_object_get(redis, "componentId")), "thing");
    json_t *deps = json_object_get(doc, "dependencies");
    assert_non_null(strstr(json_string_value(json_object_get(deps, "store")), "error"));
    assert_non_null(strstr(json_string_value(json_object_get(deps, "redis")), "warning"));
    json_decref(doc);

    assert_int_equal(lucy_health_require(h, "redis"), 0);
    doc = lucy_health_render(h, &s);
    json_decref(doc);
    assert_int_equal(s, LUCY_HEALTH_FAIL);
    lucy_health_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(worst_item_wins),
        cmocka_unit_test(http_status),
        cmocka_unit_test(render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
