/* ask_understand_test.c - time phrases (a table of questions against a
 * fixed "now" in Europe/Berlin, across a DST change), the words searched
 * (stop words, number words both ways, a person's name left out),
 * reciprocal rank fusion and citation/quote verification of src/ask/.
 * Pure: no store, no network. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ask/ask.h"

int lucy_ask_stop_words_sorted(void);

/* Wednesday 2024-04-10 12:00 in Berlin (CEST, +02:00). */
#define NOW_S 1712743200

static int64_t local_s(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s,
                    .tm_isdst = -1};
    return (int64_t)mktime(&tm);
}

static int setup(void **state)
{
    (void)state;
    setenv("TZ", "Europe/Berlin", 1);
    tzset();
    return 0;
}

static void test_time_phrases(void **state)
{
    (void)state;
    static const struct {
        const char *q;
        int from[3], to[3]; /* local dates; {0} = open */
        const char *phrase;
        int latest;
    } rows[] = {
        {"what did John say today", {2024, 4, 10}, {2024, 4, 10}, "today", 0},
        {"Yesterday's call about the invoice", {2024, 4, 9}, {2024, 4, 9}, "yesterday", 0},
        {"what did John say about the invoice last week?",
         {2024, 4, 1},
         {2024, 4, 7},
         "last week",
         0},
        {"anything this week", {2024, 4, 8}, {2024, 4, 14}, "this week", 0},
        {"calls last month", {2024, 3, 1}, {2024, 3, 31}, "last month", 0},
        {"what happened in March", {2024, 3, 1}, {2024, 3, 31}, "in march", 0},
        {"in May", {2023, 5, 1}, {2023, 5, 31}, "in may", 0}, /* May 2024 has not begun */
        {"in march 2022", {2022, 3, 1}, {2022, 3, 31}, "in march 2022", 0},
        {"what did Anna say on Monday", {2024, 4, 8}, {2024, 4, 8}, "on monday", 0},
        {"on Wednesday", {2024, 4, 10}, {2024, 4, 10}, "on wednesday", 0},
        {"messages since 2024-01-01", {2024, 1, 1}, {0}, "since 2024-01-01", 0},
        {"before 2023-06-15", {0}, {2023, 6, 14}, "before 2023-06-15", 0},
        {"on 2024-03-31", {2024, 3, 31}, {2024, 3, 31}, "on 2024-03-31", 0},
        {"in 2023", {2023, 1, 1}, {2023, 12, 31}, "in 2023", 0},
        {"the latest call with John", {0}, {0}, "", 1},
        {"the last call with John last month", {2024, 3, 1}, {2024, 3, 31}, "last month", 1},
        {"platform 3 in the morning", {0}, {0}, "", 0},
        {"in December", {2023, 12, 1}, {2023, 12, 31}, "in december", 0}, /* month 12 + 1 */
        {"in January", {2024, 1, 1}, {2024, 1, 31}, "in january", 0},
        {"since 2024-02-29", {2024, 2, 29}, {0}, "since 2024-02-29", 0}, /* a leap day */
        /* no such day: not moved to 1 March, no range (not_understood below) */
        {"messages since 2024-02-30", {0}, {0}, "", 0},
        {"on 2023-02-29", {0}, {0}, "", 0},
        {"before 2024-04-31", {0}, {0}, "", 0},
        {"after 2024-13-01", {0}, {0}, "", 0},
        {"since 2024-02-00 on Monday", {2024, 4, 8}, {2024, 4, 8}, "on monday", 0},
        /* a month's day, either way round, with or without its year; without
         * one the most recent such day that has begun */
        {"calls on April 30", {2023, 4, 30}, {2023, 4, 30}, "on april 30", 0},
        {"calls on April 3", {2024, 4, 3}, {2024, 4, 3}, "on april 3", 0},
        {"on 30 April", {2023, 4, 30}, {2023, 4, 30}, "on 30 april", 0},
        {"on 30 April 2024", {2024, 4, 30}, {2024, 4, 30}, "on 30 april 2024", 0},
        {"on April 30, 2022", {2022, 4, 30}, {2022, 4, 30}, "on april 30 2022", 0},
        {"since March 5th", {2024, 3, 5}, {0}, "since march 5th", 0},
        {"before 1 Jan 2024", {0}, {2023, 12, 31}, "before 1 jan 2024", 0},
        {"on 29 February", {2024, 2, 29}, {2024, 2, 29}, "on 29 february", 0},
        /* a day no month has, a number that is no year: no range */
        {"on April 31", {0}, {0}, "", 0},
        {"calls on 31 April", {0}, {0}, "", 0},
        {"on 30 February", {0}, {0}, "", 0},
        {"since 31 April 2024", {0}, {0}, "", 0},
        {"calls on 29 February 2023", {0}, {0}, "", 0},
        {"in March 20245", {0}, {0}, "", 0},
        {"in March 1969", {0}, {0}, "", 0},
        {"since 0999-01-01", {0}, {0}, "", 0},
        {"since 1000-01-01", {1000, 1, 1}, {0}, "since 1000-01-01", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct lucy_ask_time t;
        int found = lucy_ask_time_parse(rows[i].q, NOW_S, &t);
        int64_t from = rows[i].from[0]
                           ? local_s(rows[i].from[0], rows[i].from[1], rows[i].from[2], 0, 0, 0)
                           : INT64_MIN;
        int64_t to = rows[i].to[0]
                         ? local_s(rows[i].to[0], rows[i].to[1], rows[i].to[2], 23, 59, 59)
                         : INT64_MAX;
        if (t.from_s != from || t.to_s != to || strcmp(t.phrase, rows[i].phrase) != 0 ||
            t.latest != rows[i].latest)
            fail_msg("%s: got %lld..%lld '%s' latest=%d, want %lld..%lld '%s'", rows[i].q,
                     (long long)t.from_s, (long long)t.to_s, t.phrase, t.latest, (long long)from,
                     (long long)to, rows[i].phrase);
        assert_int_equal(found, rows[i].phrase[0] || rows[i].latest);
    }
}

static void test_no_such_day_is_named(void **state)
{
    (void)state;
    static const struct {
        const char *q, *not_understood;
    } rows[] = {
        {"messages since 2024-02-30", "since 2024-02-30"},
        {"what was said on 2023-02-29?", "on 2023-02-29"},
        {"since 2024-02-00 on Monday", "since 2024-02-00"},
        {"since 2024-02-29", ""},
        {"in March", ""},
        {"calls on April 31 with Anna", "on april 31"},
        {"calls on 31 April", "on 31 april"},
        {"on 30 February", "on 30 february"},
        {"since 31 April 2024", "since 31 april 2024"},
        {"calls on 29 February 2023", "on 29 february 2023"},
        {"in March 20245", "in march 20245"},
        {"since 0-01-01", "since 0-01-01"},
        {"on April 30", ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct lucy_ask_time t;
        lucy_ask_time_parse(rows[i].q, NOW_S, &t);
        if (strcmp(t.not_understood, rows[i].not_understood) != 0)
            fail_msg("%s: not_understood '%s', want '%s'", rows[i].q, t.not_understood,
                     rows[i].not_understood);
    }
    /* its words are not searched for either */
    char *w = lucy_ask_search_words("the boiler since 2024-02-30", NULL);
    assert_non_null(w);
    assert_string_equal(w, "boiler");
    free(w);
    w = lucy_ask_search_words("the boiler on April 31", NULL);
    assert_non_null(w);
    assert_string_equal(w, "boiler");
    free(w);
}

static void test_last_month_spans_dst_change(void **state)
{
    (void)state;
    /* March 2024 in Berlin: 31 days minus the hour lost on the 31st. */
    struct lucy_ask_time t;
    lucy_ask_time_parse("last month", NOW_S, &t);
    assert_int_equal(t.to_s - t.from_s + 1, 31 * 86400 - 3600);
    assert_int_equal(t.from_s, 1709247600); /* 2024-03-01T00:00:00+01:00 */
}

static void test_search_words(void **state)
{
    (void)state;
    assert_true(lucy_ask_stop_words_sorted());
    static const struct {
        const char *q, *skip, *want;
    } rows[] = {
        {"which platform 3?", NULL, "platform 3 three"},
        {"Platform three", NULL, "platform three 3"},
        {"What did John say about the invoice last week?", "John", "invoice"},
        {"what did John Doe say", "john doe", ""},
        {"the latest call with Anna about the Café", "anna", "café"},
        {"since 2024-01-01 the boiler", NULL, "boiler"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *w = lucy_ask_search_words(rows[i].q, rows[i].skip);
        assert_non_null(w);
        if (strcmp(w, rows[i].want) != 0)
            fail_msg("%s: got '%s', want '%s'", rows[i].q, w, rows[i].want);
        free(w);
    }
}

static void test_rrf(void **state)
{
    (void)state;
    const char *bm25[] = {"a", "b", "c"};
    const char *dense[] = {"c", "a", "d"};
    struct lucy_ask_ranked lists[] = {{bm25, 3, 1.0}, {dense, 3, 1.0}};
    const char *out[8];
    double scores[8];
    size_t n = lucy_ask_rrf(lists, 2, 60, out, scores, 8);
    assert_int_equal(n, 4);
    /* a: 1/61 + 1/62; c: 1/63 + 1/61; b: 1/62; d: 1/63 */
    assert_string_equal(out[0], "a");
    assert_string_equal(out[1], "c");
    assert_string_equal(out[2], "b");
    assert_string_equal(out[3], "d");
    assert_true(scores[0] > scores[1] && scores[1] > scores[2] && scores[2] > scores[3]);
    /* one list: its own order; max cuts */
    n = lucy_ask_rrf(lists, 1, 0, out, NULL, 2);
    assert_int_equal(n, 2);
    assert_string_equal(out[0], "a");
    assert_string_equal(out[1], "b");
    /* ties keep the order of first appearance */
    const char *x[] = {"x"}, *y[] = {"y"};
    struct lucy_ask_ranked tie[] = {{x, 1, 1.0}, {y, 1, 1.0}};
    n = lucy_ask_rrf(tie, 2, 60, out, NULL, 8);
    assert_string_equal(out[0], "x");
    assert_string_equal(out[1], "y");
}

static void test_verify(void **state)
{
    (void)state;
    const char *src[] = {"The train to Leeds leaves from platform three at noon.",
                         "Please send the invoice for March, Anna said.", "c", "d", "e"};
    struct lucy_ask_check c;
    lucy_ask_verify("It leaves from \"Platform  THREE at noon\" [1].", src, 5, &c);
    assert_int_equal(c.n_valid, 1);
    assert_int_equal(c.cited[1], 1);
    assert_int_equal(c.quote_bad[1], 0);
    assert_int_equal(c.n_invalid, 0);

    lucy_ask_verify("See [7] and [1, 2].", src, 5, &c);
    assert_int_equal(c.n_invalid, 1);
    assert_int_equal(c.invalid[0], 7);
    assert_int_equal(c.n_valid, 2);

    lucy_ask_verify("She wrote \xe2\x80\x9cthe invoice for April\xe2\x80\x9d [2].", src, 5, &c);
    assert_int_equal(c.quote_bad[2], 1);

    /* a quote checks against the citation after it in its sentence, else
     * the one before */
    lucy_ask_verify("[2] says \"send the invoice\". Also \"platform three\" [1][2].", src, 5, &c);
    assert_int_equal(c.quote_bad[1], 0);
    assert_int_equal(c.quote_bad[2], 0);
    lucy_ask_verify("\"platform three at noon\" [2]", src, 5, &c);
    assert_int_equal(c.quote_bad[2], 1);
    lucy_ask_verify("Someone said \"platform three at noon\". Later [1].", src, 5, &c);
    assert_int_equal(c.unattributed_quotes, 1);

    lucy_ask_verify("No citations here.", src, 5, &c);
    assert_int_equal(c.n_valid + c.n_invalid, 0);
    lucy_ask_verify("[0] and [x] and [12", src, 5, &c);
    assert_int_equal(c.n_invalid, 1);
    assert_int_equal(c.invalid[0], 0);

    assert_true(lucy_ask_text_contains("Caf\xc3\xa9 M\xc3\xbcller, at 10:30!", "müller at 10 30"));
    assert_false(lucy_ask_text_contains("platform three", "platform thr"));
    assert_false(lucy_ask_text_contains("abc", ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_phrases),
        cmocka_unit_test(test_no_such_day_is_named),
        cmocka_unit_test(test_last_month_spans_dst_change),
        cmocka_unit_test(test_search_words),
        cmocka_unit_test(test_rrf),
        cmocka_unit_test(test_verify),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
