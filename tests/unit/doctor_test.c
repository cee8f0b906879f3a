/*
 * doctor_test.c - `lucy doctor`'s pure parts (src/doctor/): every remedy
 * text is quoted verbatim in the runbook, docs/operations.md; the summary
 * and status helpers; human-readable sizes.
 *
 * The runbook is found from this file's own path (__FILE__, which meson
 * passes relative to the build dir, where `meson test` runs) or from the
 * current directory when run by hand from the repository root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "doctor/doctor.h"

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = (cap ? cap * 2 : 65536);
            char *nb = realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static char *runbook(void)
{
    char path[1024];
    const char *file = __FILE__; /* .../tests/unit/doctor_test.c */
    const char *slash = strrchr(file, '/');
    int dir_len = slash ? (int)(slash - file) : 1;
    snprintf(path, sizeof path, "%.*s/../../docs/operations.md", dir_len, slash ? file : ".");
    char *text = read_all(path);
    if (!text)
        text = read_all("docs/operations.md");
    return text;
}

static void every_remedy_is_in_the_runbook(void **state)
{
    (void)state;
    char *doc = runbook();
    assert_non_null(doc);
    int missing = 0;
    for (int r = LUCY_REMEDY_NONE + 1; r < LUCY_REMEDY_COUNT; r++) {
        const char *text = lucy_doctor_remedy_text((enum lucy_doctor_remedy)r);
        assert_true(strlen(text) > 20);
        /* one line in the source, so a rewrap cannot hide a change */
        assert_null(strchr(text, '\n'));
        if (!strstr(doc, text)) {
            fprintf(stderr, "remedy %d is not in docs/operations.md verbatim:\n  %s\n", r, text);
            missing++;
        }
    }
    free(doc);
    assert_int_equal(missing, 0);
}

static void remedy_table_edges(void **state)
{
    (void)state;
    assert_string_equal(lucy_doctor_remedy_text(LUCY_REMEDY_NONE), "");
    assert_string_equal(lucy_doctor_remedy_text(LUCY_REMEDY_COUNT), "");
    assert_string_equal(lucy_doctor_remedy_text((enum lucy_doctor_remedy) - 1), "");
}

static void human_sizes(void **state)
{
    (void)state;
    static const struct {
        uint64_t bytes;
        const char *want;
    } rows[] = {
        {0, "0 B"},
        {1023, "1023 B"},
        {1024, "1.0 KiB"},
        {1536, "1.5 KiB"},
        {64ull << 20, "64.0 MiB"},
        {(5ull << 30) + (512ull << 20), "5.5 GiB"},
        {3ull << 40, "3.0 TiB"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char buf[32];
        lucy_doctor_human(rows[i].bytes, buf, sizeof buf);
        assert_string_equal(buf, rows[i].want);
    }
    json_t *j = lucy_doctor_size_json(1024);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), 1024);
    assert_string_equal(json_string_value(json_object_get(j, "human")), "1.0 KiB");
    json_decref(j);
}

static void raise_keeps_the_worst(void **state)
{
    (void)state;
    struct lucy_doctor_result r;
    memset(&r, 0, sizeof r);
    lucy_doctor_raise(&r, LUCY_DOCTOR_WARN, LUCY_REMEDY_DISK_WARN);
    assert_int_equal(r.status, LUCY_DOCTOR_WARN);
    assert_int_equal(r.remedy, LUCY_REMEDY_DISK_WARN);
    lucy_doctor_raise(&r, LUCY_DOCTOR_WARN,
                      LUCY_REMEDY_DISK_UNMEASURED); /* first of a level wins */
    assert_int_equal(r.remedy, LUCY_REMEDY_DISK_WARN);
    lucy_doctor_raise(&r, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_DISK_CRITICAL);
    assert_int_equal(r.status, LUCY_DOCTOR_CRITICAL);
    assert_int_equal(r.remedy, LUCY_REMEDY_DISK_CRITICAL);
    lucy_doctor_raise(&r, LUCY_DOCTOR_WARN, LUCY_REMEDY_RESERVE_MISSING); /* never lowers */
    assert_int_equal(r.status, LUCY_DOCTOR_CRITICAL);
    assert_int_equal(r.remedy, LUCY_REMEDY_DISK_CRITICAL);
    assert_string_equal(lucy_doctor_status_name(LUCY_DOCTOR_OK), "ok");
    assert_string_equal(lucy_doctor_status_name(LUCY_DOCTOR_WARN), "warn");
    assert_string_equal(lucy_doctor_status_name(LUCY_DOCTOR_CRITICAL), "critical");
}

static void say_appends_lines_and_truncates(void **state)
{
    (void)state;
    struct lucy_doctor_result r;
    memset(&r, 0, sizeof r);
    lucy_doctor_say(&r, "first %d", 1);
    lucy_doctor_say(&r, "second");
    assert_string_equal(r.summary, "first 1\nsecond");
    char big[4096];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    lucy_doctor_say(&r, "%s", big);
    lucy_doctor_say(&r, "more");
    assert_int_equal(strlen(r.summary), sizeof r.summary - 1);
    assert_memory_equal(r.summary, "first 1\nsecond\nxxx", 18);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_remedy_is_in_the_runbook),
        cmocka_unit_test(remedy_table_edges),
        cmocka_unit_test(human_sizes),
        cmocka_unit_test(raise_keeps_the_worst),
        cmocka_unit_test(say_appends_lines_and_truncates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
