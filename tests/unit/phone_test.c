/* phone_test.c - E.164 normalisation (src/people/phone.cc) against the real
 * libphonenumber: national and international forms, wa_ids, numbers found
 * inside file names, and what is refused and why. Numbers are from the
 * ranges reserved for drama and documentation where one exists. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "people/phone.h"

static void expect_e164(const char *raw, const char *region, const char *want)
{
    char e164[LUCY_PHONE_E164_SIZE] = "x";
    int rc = lucy_phone_normalize(raw, region, e164);
    if (rc != LUCY_PHONE_OK)
        fail_msg("%s in %s: %s", raw, region ? region : "(none)", lucy_phone_reason(rc));
    assert_string_equal(e164, want);
}

static void expect_refused(const char *raw, const char *region, int want)
{
    char e164[LUCY_PHONE_E164_SIZE] = "x";
    assert_int_equal(lucy_phone_normalize(raw, region, e164), want);
    assert_string_equal(e164, "");
}

/* FACTS.md: Parse("(415) 555-0123", "US") then Format(E164). */
static void us_national_with_region(void **state)
{
    (void)state;
    expect_e164("(415) 555-0123", "US", "+14155550123");
    expect_e164("415.555.0123", "US", "+14155550123");
    expect_e164("+1 415-555-0123", NULL, "+14155550123");
    expect_e164("+1 (415) 555-0123", "DE", "+14155550123");
}

static void uk_and_de_with_and_without_region(void **state)
{
    (void)state;
    expect_e164("020 7946 0018", "GB", "+442079460018");
    expect_e164("+44 20 7946 0018", NULL, "+442079460018");
    expect_e164("0044 20 7946 0018", NULL, "+442079460018"); /* 00 = international prefix */
    expect_e164("0044 20 7946 0018", "GB", "+442079460018");
    expect_e164("0044 20 7946 0018", "US", "+442079460018"); /* US dials 011, 00 still read */
    expect_e164("030 901820", "DE", "+4930901820");
    expect_e164("030-901820", "DE", "+4930901820");
    expect_e164("+49 (0)30 901820", "GB", "+4930901820");
    expect_e164("0049 30 901820", NULL, "+4930901820");
    /* National forms need a region, and the right one. */
    expect_refused("020 7946 0018", NULL, LUCY_PHONE_NO_REGION);
    expect_refused("020 7946 0018", "", LUCY_PHONE_NO_REGION);
    expect_refused("030 901820", "ZZ", LUCY_PHONE_NO_REGION); /* unknown region = none */
    expect_refused("020 7946 0018", "US", LUCY_PHONE_INVALID);
}

static void wa_id_is_international_without_plus(void **state)
{
    (void)state;
    char e164[LUCY_PHONE_E164_SIZE];
    assert_int_equal(lucy_phone_from_wa_id("14155550123", e164), LUCY_PHONE_OK);
    assert_string_equal(e164, "+14155550123");
    assert_int_equal(lucy_phone_from_wa_id("442079460018", e164), LUCY_PHONE_OK);
    assert_string_equal(e164, "+442079460018");
    /* not digits, too short, too long, leading zero, unknown country code */
    assert_int_equal(lucy_phone_from_wa_id("+14155550123", e164), LUCY_PHONE_NOT_A_NUMBER);
    assert_int_equal(lucy_phone_from_wa_id("123", e164), LUCY_PHONE_NOT_A_NUMBER);
    assert_int_equal(lucy_phone_from_wa_id("1234567890123456", e164), LUCY_PHONE_NOT_A_NUMBER);
    assert_int_equal(lucy_phone_from_wa_id("04155550123", e164), LUCY_PHONE_NOT_A_NUMBER);
    assert_int_equal(lucy_phone_from_wa_id(NULL, e164), LUCY_PHONE_NOT_A_NUMBER);
    assert_int_equal(lucy_phone_from_wa_id("99912345678", e164), LUCY_PHONE_INVALID);
    assert_string_equal(e164, "");
}

static void garbage_is_not_a_number(void **state)
{
    (void)state;
    expect_refused("hello", "US", LUCY_PHONE_NOT_A_NUMBER);
    expect_refused("", "US", LUCY_PHONE_NOT_A_NUMBER);
    expect_refused(NULL, "US", LUCY_PHONE_NOT_A_NUMBER);
    expect_refused("---", NULL, LUCY_PHONE_NOT_A_NUMBER);
    char longer[LUCY_PHONE_RAW_MAX + 10];
    memset(longer, '5', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    expect_refused(longer, "US", LUCY_PHONE_NOT_A_NUMBER);
}

/* Numbers that parse but that libphonenumber holds invalid. */
static void rejected_numbers_say_invalid(void **state)
{
    (void)state;
    expect_refused("+1 000 000 0000", NULL, LUCY_PHONE_INVALID); /* no such area code */
    expect_refused("+999 1234 5678", NULL, LUCY_PHONE_INVALID);  /* no such country */
    expect_refused("123", "US", LUCY_PHONE_INVALID);             /* too short */
    expect_refused("+44 20 7946 0018 9999 9999", NULL, LUCY_PHONE_INVALID);
    assert_non_null(strstr(lucy_phone_reason(LUCY_PHONE_NO_REGION), "LUCY_DEFAULT_REGION"));
    assert_string_equal(lucy_phone_reason(12345), "unknown phone number error");
}

static void regions(void **state)
{
    (void)state;
    assert_true(lucy_phone_region_known("GB"));
    assert_true(lucy_phone_region_known("DE"));
    assert_true(lucy_phone_region_known("US"));
    assert_false(lucy_phone_region_known("UK")); /* the ISO code is GB */
    assert_false(lucy_phone_region_known("ZZ"));
    assert_false(lucy_phone_region_known("gb"));
    assert_false(lucy_phone_region_known("GBR"));
    assert_false(lucy_phone_region_known(""));
    assert_false(lucy_phone_region_known(NULL));
}

static void expect_found(const char *text, const char *region, const char *want, size_t want_start,
                         size_t want_end)
{
    char e164[LUCY_PHONE_E164_SIZE];
    size_t start = 99, end = 99;
    int rc = lucy_phone_find(text, strlen(text), 0, region, e164, &start, &end);
    if (rc != LUCY_PHONE_OK)
        fail_msg("no number in '%s': %s", text, lucy_phone_reason(rc));
    assert_string_equal(e164, want);
    assert_int_equal(start, want_start);
    assert_int_equal(end, want_end);
}

static void expect_none(const char *text, const char *region)
{
    char e164[LUCY_PHONE_E164_SIZE];
    assert_int_equal(lucy_phone_find(text, strlen(text), 0, region, e164, NULL, NULL),
                     LUCY_PHONE_NOT_A_NUMBER);
    assert_string_equal(e164, "");
}

static void numbers_inside_file_names(void **state)
{
    (void)state;
    expect_found("+1 415-555-0123", "US", "+14155550123", 0, 15);
    expect_found("+14155550123_20240301-101500", "US", "+14155550123", 0, 12);
    expect_found("+14155550123_20240301-101500", "DE", "+14155550123", 0, 12);
    expect_found("(415) 555-0123", "US", "+14155550123", 0, 14);
    expect_found("20230414_215701.088-0400_out_sim1_+14155550123_John Doe", "DE", "+14155550123",
                 34, 46);
    expect_found("20230414_215701.088-0400_in_02079460018", "GB", "+442079460018", 28, 39);
    /* Offsets are bytes in UTF-8: "Müller " is 8 bytes, "Ärzte " 7. */
    expect_found("Müller Ärzte +14155550123 x", NULL, "+14155550123", 15, 27);
    /* Searching from an offset skips what came before. */
    char e164[LUCY_PHONE_E164_SIZE];
    const char *two = "+14155550123 and +442079460018";
    size_t start, end;
    assert_int_equal(lucy_phone_find(two, strlen(two), 12, NULL, e164, &start, &end),
                     LUCY_PHONE_OK);
    assert_string_equal(e164, "+442079460018");
    assert_int_equal(start, 17);
    assert_int_equal(end, strlen(two));
    assert_int_equal(lucy_phone_find(two, strlen(two), strlen(two), NULL, e164, NULL, NULL),
                     LUCY_PHONE_NOT_A_NUMBER);
}

/* Names with digits, dates and times are not numbers. */
static void digits_that_are_not_numbers(void **state)
{
    (void)state;
    expect_none("Room 101 meeting 2023", "GB");
    expect_none("Room 101 meeting 2023", "DE");
    expect_none("Call recording John Doe_230414_215701", "GB");
    expect_none("20230414_215701.088-0400_in_John Doe", "DE");
    expect_none("(415) 555-0123", "GB"); /* a US national form is not British */
    expect_none("", "US");
}

static void display_form(void **state)
{
    (void)state;
    char out[40];
    assert_int_equal(lucy_phone_display("+14155550123", out, sizeof out), 0);
    assert_string_equal(out, "+1 415-555-0123");
    assert_int_equal(lucy_phone_display("+442079460018", out, sizeof out), 0);
    assert_string_equal(out, "+44 20 7946 0018");
    assert_int_equal(lucy_phone_display("020", out, sizeof out), LUCY_PHONE_INVALID);
    assert_string_equal(out, "020");
    char tiny[6];
    assert_int_equal(lucy_phone_display("+14155550123", tiny, sizeof tiny), 0);
    assert_string_equal(tiny, "+1 41");
}

/* PhoneNumberUtil is shared: many threads at once give the same answers. */
static void *normalize_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        char e164[LUCY_PHONE_E164_SIZE];
        if (lucy_phone_normalize("020 7946 0018", "GB", e164) != LUCY_PHONE_OK ||
            strcmp(e164, "+442079460018") != 0)
            return (void *)1;
        if (lucy_phone_find("x_+14155550123_y", 16, 0, "US", e164, NULL, NULL) != LUCY_PHONE_OK)
            return (void *)1;
    }
    return NULL;
}

static void shared_by_threads(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, normalize_many, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_null(rc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(us_national_with_region),
        cmocka_unit_test(uk_and_de_with_and_without_region),
        cmocka_unit_test(wa_id_is_international_without_plus),
        cmocka_unit_test(garbage_is_not_a_number),
        cmocka_unit_test(rejected_numbers_say_invalid),
        cmocka_unit_test(regions),
        cmocka_unit_test(numbers_inside_file_names),
        cmocka_unit_test(digits_that_are_not_numbers),
        cmocka_unit_test(display_form),
        cmocka_unit_test(shared_by_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
