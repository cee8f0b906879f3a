/* log_test.c - JSON line shape, level filter and repeat suppression. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"

static int64_t fake_now;
static int64_t fake_clock(void)
{
    return fake_now;
}

static char *buf;
static size_t size;
static FILE *out;

static int setup(void **state)
{
    (void)state;
    out = open_memstream(&buf, &size);
    lucy_log_set_output(out);
    lucy_log_set_clock(fake_clock);
    lucy_log_set_window_ms(60000);
    lucy_log_set_level(LUCY_LOG_INFO);
    lucy_log_reset();
    fake_now = 1000;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lucy_log_set_output(NULL);
    fclose(out);
    free(buf);
    buf = NULL;
    return 0;
}

static int count_lines(void)
{
    fflush(out);
    int n = 0;
    for (size_t i = 0; i < size; i++)
        n += buf[i] == '\n';
    return n;
}

static void json_shape(void **state)
{
    (void)state;
    lucy_log(LUCY_LOG_WARNING, "file locked", "{s:s,s:i}", "path", "/x/\"y\".m4a", "n", 3);
    fflush(out);
    json_error_t e;
    json_t *line = json_loads(buf, 0, &e);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "level")), "warning");
    assert_string_equal(json_string_value(json_object_get(line, "msg")), "file locked");
    assert_string_equal(json_string_value(json_object_get(line, "path")), "/x/\"y\".m4a");
    assert_non_null(json_object_get(line, "ts"));
    json_decref(line);
}

/* A real prints as the short decimal it was (LUCY_JSON_REALS), not with
 * jansson's 17 digits. */
static void reals_print_short(void **state)
{
    (void)state;
    lucy_log(LUCY_LOG_INFO, "decoded", "{s:f}", "decoded_s", 2.2709375);
    fflush(out);
    assert_non_null(strstr(buf, "\"decoded_s\":2.2709375}"));
}

static void level_filter(void **state)
{
    (void)state;
    lucy_log(LUCY_LOG_DEBUG, "chatter", NULL);
    assert_int_equal(count_lines(), 0);
    lucy_log(LUCY_LOG_ERROR, "bad", NULL);
    assert_int_equal(count_lines(), 1);
}

static void repeats_are_summarised(void **state)
{
    (void)state;
    for (int i = 0; i < 10000; i++)
        lucy_log(LUCY_LOG_ERROR, "write failed", "{s:s}", "path", "/data/lucy.db");
    assert_int_equal(count_lines(), 1); /* identical: written once */
    lucy_log(LUCY_LOG_ERROR, "another message", NULL);
    assert_int_equal(count_lines(), 2);
    fake_now += 60000;
    lucy_log_tick();
    assert_int_equal(count_lines(), 3); /* one summary, for the message that repeated */
    assert_non_null(strstr(buf, "\"count\":9999"));
    assert_non_null(strstr(buf, "\"repeated_msg\":\"write failed\""));
    /* none for "another message", which did not repeat */
    assert_null(strstr(buf, "\"repeated_msg\":\"another message\""));
    /* a new window logs the message again */
    lucy_log(LUCY_LOG_ERROR, "write failed", "{s:s}", "path", "/data/lucy.db");
    assert_int_equal(count_lines(), 4);
}

static void varying_fields_are_capped(void **state)
{
    (void)state;
    /* distinct events are kept... */
    for (int i = 0; i < 5; i++)
        lucy_log(LUCY_LOG_INFO, "transcribed", "{s:i}", "recording", i);
    assert_int_equal(count_lines(), 5);
    /* ...but a loop with a changing detail is bounded */
    for (int i = 5; i < 100000; i++)
        lucy_log(LUCY_LOG_INFO, "transcribed", "{s:i}", "recording", i);
    assert_int_equal(count_lines(), 20);
    fake_now += 60000;
    lucy_log_tick();
    assert_int_equal(count_lines(), 21);
    assert_non_null(strstr(buf, "\"count\":99980"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(json_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(level_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(reals_print_short, setup, teardown),
        cmocka_unit_test_setup_teardown(repeats_are_summarised, setup, teardown),
        cmocka_unit_test_setup_teardown(varying_fields_are_capped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
