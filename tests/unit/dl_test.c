/* dl_test.c - a library opened on first use (src/dl.c): a table filled
 * whole, or left untouched with the reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dl.h"
#include "error.h"
#include "http/libcurl.h"

struct libc_table {
    size_t (*strlen)(const char *s);
    int (*abs)(int j);
};

static const struct lucy_dl_symbol libc_functions[] = {
    {"strlen", offsetof(struct libc_table, strlen)},
    {"abs", offsetof(struct libc_table, abs)},
};

static void fills_the_table(void **state)
{
    (void)state;
    struct libc_table t = {0};
    char err[256] = "";
    assert_int_equal(lucy_dl_open("libc.so.6", libc_functions, 2, &t, err, sizeof err), 0);
    assert_int_equal(t.strlen("lucy"), 4);
    assert_int_equal(t.abs(-3), 3);
}

static void a_missing_library_says_which(void **state)
{
    (void)state;
    struct libc_table t = {0};
    char err[256] = "";
    assert_int_equal(lucy_dl_open("liblucy-none.so.9", libc_functions, 2, &t, err, sizeof err),
                     LUCY_EUNAVAIL);
    assert_non_null(strstr(err, "liblucy-none.so.9"));
    assert_null(t.strlen);
}

static void a_missing_function_leaves_the_table_untouched(void **state)
{
    (void)state;
    const struct lucy_dl_symbol wanted[] = {
        {"strlen", offsetof(struct libc_table, strlen)},
        {"lucy_no_such_function", offsetof(struct libc_table, abs)},
    };
    struct libc_table t = {0};
    char err[256] = "";
    assert_int_equal(lucy_dl_open("libc.so.6", wanted, 2, &t, err, sizeof err), LUCY_EUNAVAIL);
    assert_non_null(strstr(err, "lucy_no_such_function"));
    assert_null(t.strlen); /* the one found is not stored either */
}

/* The real table: every slot filled, and libcurl answers through it. */
static void libcurl_opens(void **state)
{
    (void)state;
    const struct lucy_libcurl *cu = lucy_libcurl();
    assert_non_null(cu);
    assert_string_equal(lucy_libcurl_error(), "");
    const void *const *slot = (const void *const *)cu;
    for (size_t i = 0; i < sizeof *cu / sizeof(void *); i++)
        assert_non_null(slot[i]);
    assert_string_equal(cu->easy_strerror(CURLE_OK), "No error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fills_the_table),
        cmocka_unit_test(a_missing_library_says_which),
        cmocka_unit_test(a_missing_function_leaves_the_table_untouched),
        cmocka_unit_test(libcurl_opens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
