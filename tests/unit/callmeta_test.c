/* callmeta_test.c - call metadata from sidecars, file names, tags and mtime
 * (src/plugins/call_recordings/callmeta.c, callname.c): each recorder
 * convention, precedence and per-field sources, and bad input that must
 * become a warning, never a crash. Inputs are generated here (sidecars with
 * jansson); numbers are from ranges reserved for drama and documentation. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugins/call_recordings/callmeta.h"
#include "plugins/call_recordings/callname.h"
#include "utf8.h"

#define NOW_MS      1780000000000LL /* 2026-05-28: "now" for every test */
#define MIN_MS      60000LL
#define DAY_MS_TEST 86400000LL

/* 2023-04-14 21:57:01.088 at UTC-4, BCR's own example. */
static int64_t bcr_example_ms(void)
{
    return lucy_call_civil_ms(2023, 4, 14, 21, 57, 1, 88) + 240 * MIN_MS;
}

/* A BCR sidecar as BCR writes it; NULL arguments become JSON null. The
 * caller frees the result. */
static char *bcr_sidecar(json_int_t unix_ms, const char *iso, const char *direction,
                         const char *number, const char *contact, const char *caller)
{
    json_t *call = json_pack("{s:o, s:o, s:o, s:o}", "phone_number",
                             number ? json_string(number) : json_null(), "phone_number_formatted",
                             json_null(), "caller_name", caller ? json_string(caller) : json_null(),
                             "contact_name", contact ? json_string(contact) : json_null());
    json_t *root = json_pack(
        "{s:I, s:o, s:s, s:o, s:i, s:s, s:[o], s:{s:{s:s}, s:{s:i, s:i}}}", "timestamp_unix_ms",
        unix_ms, "timestamp", iso ? json_string(iso) : json_null(), "package_name",
        "com.android.dialer", "direction", direction ? json_string(direction) : json_null(),
        "sim_slot", 1, "call_log_name", "Johnny", "calls", call, "output", "format", "type",
        "OGG/Opus", "recording", "channel_count", 2, "sample_rate", 48000);
    assert_non_null(root);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    assert_non_null(s);
    return s;
}

static struct lucy_call_input input(const char *file_name)
{
    return (struct lucy_call_input){.file_name = file_name, .now_ms = NOW_MS};
}

static int has_warning(const struct lucy_call_meta *m, const char *part)
{
    for (int i = 0; i < m->warning_count; i++)
        if (strstr(m->warnings[i], part))
            return 1;
    return 0;
}

static void assert_source(const struct lucy_call_meta *m, enum lucy_call_field f,
                          enum lucy_call_source want)
{
    if (m->source[f] != want)
        fail_msg("field %d: source %s, expected %s", (int)f,
                 lucy_call_source_name(m->source[f]) ? lucy_call_source_name(m->source[f]) : "none",
                 lucy_call_source_name(want) ? lucy_call_source_name(want) : "none");
}

static void bcr_with_sidecar(void **state)
{
    (void)state;
    char *json = bcr_sidecar(bcr_example_ms(), "2023-04-14T21:57:01.088-04:00", "out",
                             "+14155550123", "John Doe", NULL);
    struct lucy_call_input in =
        input("20230414_215701.088-0400_out_sim1_+14155550123_John Doe.oga");
    in.sidecar = json;
    in.sidecar_len = strlen(json);
    in.mtime_ms = bcr_example_ms() + 5 * MIN_MS;
    struct lucy_call_meta m;
    lucy_call_meta_read(&in, &m);
    assert_int_equal(m.warning_count, 0);
    assert_int_equal(m.started_at_ms, bcr_example_ms());
    assert_int_equal(m.utc_offset_min, -240);
    assert_true(m.utc_offset_known);
    assert_false(m.started_at_local_only);
    assert_int_equal(m.direction, LUCY_CALL_DIR_OUT);
    assert_string_equal(m.number_raw, "+14155550123");
    assert_string_equal(m.number_e164, "+14155550123");
    assert_int_equal(m.sim_slot, 1);
    assert_string_equal(m.contact_name, "John Doe");
    assert_string_equal(m.call_log_name, "Johnny");
    assert_string_equal(m.caller_name, "");
    assert_string_equal(m.file_name, "John Doe");
    assert_string_equal(m.convention, "bcr");
    for (int f = LUCY_CALL_STARTED_AT; f <= LUCY_CALL_CALL_LOG_NAME; f++)
        if (f != LUCY_CALL_CALLER_NAME)
            assert_source(&m, f, LUCY_CALL_SRC_SIDECAR);
    assert_source(&m, LUCY_CALL_CALLER_NAME, LUCY_CALL_SRC_NONE);
    assert_source(&m, LUCY_CALL_FILE_NAME_NAME, LUCY_CALL_SRC_FILE_NAME);
    char title[128];
    lucy_call_title(&m, title, sizeof title);
    assert_string_equal(title, "Call with John Doe · out · 14 Apr 2023 21:57");
    free(json);
}

static void bcr_without_sidecar(void **state)
{
    (void)state;
    struct lucy_call_input in = input("20230414_215701.088-0400_in_sim2_+14155550123_Jane Roe.oga");
    in.mtime_ms = NOW_MS - DAY_MS_TEST;
    struct lucy_call_meta m;
    lucy_call_meta_read(&in, &m);
    assert_int_equal(m.warning_count, 0);
    assert_string_equal(m.convention, "bcr");
    assert_int_equal(m.started_at_ms, bcr_example_ms());
    assert_int_equal(m.utc_offset_min, -240);
    assert_true(m.utc_offset_known);
    assert_int_equal(m.direction, LUCY_CALL_DIR_IN);
    assert_int_equal(m.sim_slot, 2);
    assert_string_equal(m.number_e164, "+14155550123");
    assert_string_equal(m.file_name, "Jane Roe");
    for (int f = LUCY_CALL_STARTED_AT; f <= LUCY_CALL_SIM_SLOT; f++)
        assert_source(&m, f, LUCY_CALL_SRC_FILE_NAME);
    assert_source(&m, LUCY_CALL_FILE_NAME_NAME, LUCY_CALL_SRC_FILE_NAME);
    assert_source(&m, LUCY_CALL_CONTACT_NAME, LUCY_CALL_SRC_NONE);
    /* BCR with the optional parts left out: the date alone. */
    in.file_name = "20230414_215701.088-0400.m4a";
    lucy_call_meta_read(&in, &m);
    assert_string_equal(m.convention, "bcr");
    assert_int_equal(m.started_at_ms, bcr_example_ms());
    assert_source(&m, LUCY_CALL_DIRECTION, LUCY_CALL_SRC_NONE);
    assert_source(&m, LUCY_CALL_NUMBER, LUCY_CALL_SRC_NONE);
    /* A conference, UTC (Z: instant known, local offset not). */
    in.file_name = "20230414_015701.088Z_conference.m4a";
    lucy_call_meta_read(&in, &m);
    assert_int_equal(m.direction, LUCY_CALL_DIR_CONFERENCE);
    assert_int_equal(m.started_at_ms, bcr_example_ms() - DAY_MS_TEST);
    assert_false(m.utc_offset_known);
    char title[128];
    lucy_call_title(&m, title, sizeof title);
    assert_string_equal(title, "Call with unknown caller · conference · 14 Apr 2023 01:57 UTC");
}

static void samsung_style(void **state)
{
    (void)state;
    struct lucy_call_input in = input("/sdcard/Call/Call recording John Doe_230414_215701.m4a");
    struct lucy_call_meta m;
    lucy_call_meta_read(&in, &m);
    assert_string_equal(m.convention, "samsung");
    assert_int_equal(m.warning_count, 0);
    /* Wall-clock time with no zone: kept as given, marked local-only. */
    assert_int_equal(m.started_at_ms, lucy_call_civil_ms(2023, 4, 14, 21, 57, 1, 0));
    assert_true(m.started_at_local_only);
    assert_false(m.utc_offset_known);
    assert_source(&m, LUCY_CALL_STARTED_AT, LUCY_CALL_SRC_FILE_NAME);
    assert_int_equal(m.direction, LUCY_CALL_DIR_UNKNOWN);
    assert_source(&m, LUCY_CALL_DIRECTION, LUCY_CALL_SRC_NONE);
    assert_string_equal(m.file_name, "John Doe");
    assert_source(&m, LUCY_CALL_NUMBER, LUCY_CALL_SRC_NONE);
    char title[128];
    lucy_call_title(&m, title, sizeof title);
    assert_string_equal(title, "Call with John Doe · 14 Apr 2023 21:57");
    /* Samsung names an unknown party by number: that is the number. */
    in.file_name = "Call recording +44 20 7946 0018_230414_215701.m4a";
    lucy_call_meta_read(&in, &m);
    assert_string_equal(m.number_e164, "+442079460018");
    assert_source(&m, LUCY_CALL_NUMBER, LUCY_CALL_SRC_FILE_NAME);
    assert_string_equal(m.file_name, "");
    lucy_call_title(&m, title, sizeof title);
    assert_string_equal(title, "Call with +44 20 7946 0018 · 14 Apr 2023 21:57");
}

static void other_conventions(void **state)
{
    (void)state;
    struct lucy_call_meta m;
    struct lucy_call_input in = input("+14155550123_20240301-101500_incoming.mp3");
    lucy_call_meta_read(&in, &m);
    assert_string_equal(m.convention, "number_date_direction");
    assert_int_equal(m.started_at_ms, lucy_call_civil_ms(2024, 3, 1, 10, 15, 0, 0));
    assert_int_equal(m.direction, LUCY_CALL_DIR_IN);
    assert_string_equal(m.number_e164, "+14155550123");
    in.file_name = "John Doe(+14155550123)_20230414215701.mp3";
    lucy_call_meta_read(&in, &m);
    assert_string_equal(m.convention, "miui_name");
    assert_string_equal(m.file_name, "John Doe");
    assert_string_equal(m.number_e164, "+14155550123");
    assert_int_equal(m.started_at_ms, lucy_call_civil_ms(2023, 4, 14, 21, 57, 1, 0));
    /* No convention: the matcher still finds the number; nothing else. */
    in.file_name = "meeting notes +1 415-555-0123 final.m4a";
    lucy_call_meta_read(&in, &m);
    assert_null(m.convention);
    assert_string_equal(m.number_e164, "+14155550123");
    assert_string_equal(m.number_raw, "+1 415-555-0123");
    assert_source(&m, LUCY_CALL_NUMBER, LUCY_CALL_SRC_FILE_NAME);
    assert_source(&m, LUCY_CALL_STARTED_AT, LUCY_CALL_SRC_NONE);
}

static void national_number_with_and_without_region(void **state)
{
    (void)state;
    struct lucy_call_meta m;
    struct lucy_call_input in = input("20230414_215701.088+0100_out_020 7946 0018.m4a");
    in.default_region = "GB";
    lucy_call_meta_read(&in, &m);
    assert_int_equal(m.warning_count, 0);
    assert_string_equal(m.number_raw, "020 7946 0018");
    assert_string_equal(m.number_e164, "+442079460018");
    assert_int_equal(m.utc_offset_min, 60);
    in.default_region = NULL;
    lucy_call_meta_read(&in, &m);
    assert_string_equal(m.number_raw, "020 7946 0018"); /* kept, unlinked */
    assert_string_equal(m.number_e164, "");
    assert_source(&m, LUCY_CALL_NUMBER, LUCY_CALL_SRC_FILE_NAME);
    assert_true(has_warning(&m, "LUCY_DEFAULT_REGION"));
    char title[128];
    lucy_call_title(&m, title, sizeof title);
    assert_string_equal(title, "Call with 020 7946 0018 · out · 14 Apr 2023 21:57");
}

static void name_without_number(void **state)
{
    (void)state;
    struct lucy_call_meta m;
    struct lucy_call_input in = input("20230414_215701.088-0400_in_John Doe 2.m4a");
    in.default_region = "DE"; /* a region where dates look like numbers */
    lucy_call_meta_read(&in, &m);
    assert_int_equal(m.warning_count, 0);
    assert_string_equal(m.file_name, "John Doe 2");
    assert_source(&m, LUCY_CALL_NUMBER, LUCY_CALL_SRC_NONE);
    assert_string_equal(m.number_raw, "");
}

static void ios_creationdate_only(void **state)
{
    (void)state;
    const struct lucy_call_tag tags[] = {
        {"major_brand", "M4A "},
        {"com.apple.quicktime.creationdate", "2023-04-14T21:57:01-0400"},
        {"creation_time", "2023-04-15T01:57:05.000000Z"},
    };
    struct lucy_call_input in = input("New Recording 3.m4a");
    in.tags = tags;
    in.tag_count = 3;
    in.mtime_ms = NOW_MS - 1000;
    struct lucy_call_meta m;
    lucy_call_meta_read(&in, &m);
    assert_int_equal(m.warning_count, 0);
    assert_null(m.convention);
    assert_int_equal(m.started_at_ms, bcr_example_ms() - 88);
    assert_int_equal(m.utc_offset_min, -240);
    assert_true(m.utc_offset_known);
    assert_source(&m, LUCY_CALL_STARTED_AT, LUCY_CALL_SRC_TAGS);
    /* creation_time alone: the instant in UTC, the offset unknown. */
    in.tags = tags + 2;
    in.tag_count = 1;
    lucy_call_meta_read(&in, &m);
    assert_int_equal(m.started_at_ms, bcr_example_ms() + 4000 - 88);
    assert_false(m.utc_offset_known);
    assert_source(&m, LUCY_CALL_STARTED_AT, LUCY_CALL_SRC_TAGS);
    /* Nothing else: the mtime, marked as such. */
    in.tag_count = 0;
    lucy_call_meta_read(&in, &m);
    assert_int_equal(m.started_at_ms, NOW_MS - 1000);
    assert_source(&m, LUCY_CALL_STARTED_AT, LUCY_CALL_SRC_MTIME);
}

static void title_and_artist_tags(void **state)
{
    (void)state;
    const struct lucy_call_tag tags[] = {{"TITLE", "2023"}, {"artist", "+1 415 555 0123"}};
    struct lucy_call_input in = input("rec.m4a");
    in.tags = tags;
    in.tag_count = 2;
    struct lucy_call_meta m;
    lucy_call_meta_read(&in, &m);
    assert_string_equal(m.number_e164, "+14155550123"); /* "2023" is no number */
    assert_source(&m, LUCY_CALL_NUMBER, LUCY_CALL_SRC_TAGS);
    assert_string_equal(m.tag_name, "");
    const struct lucy_call_tag named[] = {{"title", "Mum"}};
    in.tags = named;
    in.tag_count = 1;
    lucy_call_meta_read(&in, &m);
    assert_string_equal(m.tag_name, "Mum");
    assert_source(&m, LUCY_CALL_TAG_NAME, LUCY_CALL_SRC_TAGS);
}

static void user_patterns_come_first(void **state)
{
    (void)state;
    struct lucy_call_patterns p;
    char err[256];
    assert_int_equal(lucy_call_patterns_parse("{name} - {date:%Y-%m-%d %H-%M}[ \\[{direction}\\]|];"
                                              "call\\;{phone}\\;{date:%d.%m.%Y %H.%M};",
                                              &p, err, sizeof err),
                     0);
    assert_int_equal(p.count, 2);
    struct lucy_call_input in = input("Mum - 2023-04-14 21-57 [OUT].m4a");
    in.patterns = &p;
    struct lucy_call_meta m;
    lucy_call_meta_read(&in, &m);
    assert_string_equal(m.convention, "user:1");
    assert_string_equal(m.file_name, "Mum");
    assert_int_equal(m.direction, LUCY_CALL_DIR_OUT);
    assert_int_equal(m.started_at_ms, lucy_call_civil_ms(2023, 4, 14, 21, 57, 0, 0));
    in.file_name = "call;+14155550123;14.04.2023 21.57.mp3";
    lucy_call_meta_read(&in, &m);
    assert_string_equal(m.convention, "user:2");
    assert_string_equal(m.number_e164, "+14155550123");
}

static void templates_that_are_refused(void **state)
{
    (void)state;
    static const struct {
        const char *tpl;
        const char *why;
    } bad[] = {
        {"{foo}", "unknown field {foo}"},
        {"{date:%Y%m%d %Q}", "unknown date directive %Q"},
        {"{date:%H%M}", "a date needs a year"},
        {"[{name}", "'[' without ']'"},
        {"{name}]", "']' without '['"},
        {"{name}|x", "'|' outside"},
        {"{name", "'{' without '}'"},
        {"name}", "'}' without '{'"},
        {"just text", "no field"},
        {"{name}\\", "escapes nothing"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(lucy_call_template_check(bad[i].tpl, err, sizeof err), -1);
        if (!strstr(err, bad[i].why))
            fail_msg("'%s': got '%s', expected '%s'", bad[i].tpl, err, bad[i].why);
    }
    struct lucy_call_patterns p;
    assert_int_equal(lucy_call_patterns_parse("{name}_{date};{bogus}", &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "template 2"));
    assert_int_equal(lucy_call_patterns_parse("", &p, err, sizeof err), 0);
    assert_int_equal(p.count, 0);
    assert_int_equal(lucy_call_patterns_parse(NULL, &p, NULL, 0), 0);
    for (size_t i = 0; i < lucy_call_conventions_count; i++)
        if (lucy_call_template_check(lucy_call_conventions[i].template, err, sizeof err))
            fail_msg("built-in %s: %s", lucy_call_conventions[i].id, err);
}

static void bad_sidecars(void **state)
{
    (void)state;
    struct lucy_call_meta m;
    struct lucy_call_input in = input("20230414_215701.088-0400_in.m4a");
    in.sidecar = "{\"timestamp_unix_ms\": 16815";
    in.sidecar_len = strlen(in.sidecar);
    lucy_call_meta_read(&in, &m);
    assert_true(has_warning(&m, "sidecar: not a JSON object"));
    assert_source(&m, LUCY_CALL_STARTED_AT, LUCY_CALL_SRC_FILE_NAME); /* the next source */
    in.sidecar = "[1, 2]";
    in.sidecar_len = 6;
    lucy_call_meta_read(&in, &m);
    assert_true(has_warning(&m, "sidecar: not a JSON object"));
    size_t big = LUCY_CALL_SIDECAR_MAX + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    huge[0] = '{', huge[big - 1] = '}';
    in.sidecar = huge;
    in.sidecar_len = big;
    lucy_call_meta_read(&in, &m);
    assert_true(has_warning(&m, "over the 1048576-byte limit"));
    assert_source(&m, LUCY_CALL_STARTED_AT, LUCY_CALL_SRC_FILE_NAME);
    free(huge);
    /* Wrong types: each field refused alone, the rest still read. */
    in.sidecar = "{\"timestamp\": 5, \"direction\": \"sideways\", \"sim_slot\": 99,"
                 " \"calls\": [{\"phone_number\": \"unknown\", \"contact_name\": 7}],"
                 " \"call_log_name\": \"Ann\"}";
    in.sidecar_len = strlen(in.sidecar);
    lucy_call_meta_read(&in, &m);
    assert_true(has_warning(&m, "timestamp is not a string"));
    assert_true(has_warning(&m, "direction is not in, out"));
    assert_true(has_warning(&m, "sim_slot 99"));
    assert_true(has_warning(&m, "not a phone number"));
    assert_true(has_warning(&m, "contact_name is not a string"));
    assert_string_equal(m.call_log_name, "Ann");
    assert_int_equal(m.direction, LUCY_CALL_DIR_IN); /* from the file name */
}

static void absurd_dates(void **state)
{
    (void)state;
    /* 1970 in the sidecar, 2100 in the tags: both refused, the file name's
     * date wins; with no file-name date, the mtime. */
    char *json = bcr_sidecar(0, NULL, "in", NULL, NULL, NULL);
    const struct lucy_call_tag tags[] = {{"creation_time", "2100-01-01T00:00:00.000000Z"}};
    struct lucy_call_input in = input("20230414_215701.088-0400_in.m4a");
    in.sidecar = json;
    in.sidecar_len = strlen(json);
    in.tags = tags;
    in.tag_count = 1;
    in.mtime_ms = NOW_MS - MIN_MS;
    struct lucy_call_meta m;
    lucy_call_meta_read(&in, &m);
    assert_true(has_warning(&m, "1970-01-01T00:00:00 is before 1990"));
    assert_source(&m, LUCY_CALL_STARTED_AT, LUCY_CALL_SRC_FILE_NAME);
    in.file_name = "19700101_000001.000+0000.m4a";
    lucy_call_meta_read(&in, &m);
    assert_true(has_warning(&m, "file_name: date 1970-01-01T00:00:01 is before 1990"));
    assert_true(has_warning(&m, "tags: creation_time 2100-01-01T00:00:00 is in the future"));
    assert_source(&m, LUCY_CALL_STARTED_AT, LUCY_CALL_SRC_MTIME);
    assert_int_equal(m.started_at_ms, NOW_MS - MIN_MS);
    /* Not a date at all; a month 13; a 29 February in a common year. */
    const struct lucy_call_tag junk[] = {{"date", "2023"}, {"creation_time", "2023-13-01 10:00"}};
    in.tags = junk;
    in.tag_count = 2;
    in.file_name = "Call recording Ann_230229_101500.m4a"; /* no convention matches */
    lucy_call_meta_read(&in, &m);
    assert_null(m.convention);
    assert_true(has_warning(&m, "date is not an ISO 8601"));
    assert_true(has_warning(&m, "creation_time is not an ISO 8601"));
    assert_source(&m, LUCY_CALL_STARTED_AT, LUCY_CALL_SRC_MTIME);
    assert_int_equal(lucy_call_civil_ms(1970, 1, 1, 0, 0, 0, 0), 0);
    assert_int_equal(lucy_call_civil_ms(2000, 2, 29, 0, 0, 0, 0), 951782400000LL);
    assert_int_equal(lucy_call_civil_ms(1900, 2, 29, 0, 0, 0, 0), -1);
    free(json);
}

static void rejected_number(void **state)
{
    (void)state;
    char *json = bcr_sidecar(bcr_example_ms(), NULL, "out", "+1 000 000 0000", NULL, NULL);
    struct lucy_call_input in = input("20230414_215701.088-0400_out_+14155550123.m4a");
    in.sidecar = json;
    in.sidecar_len = strlen(json);
    struct lucy_call_meta m;
    lucy_call_meta_read(&in, &m);
    /* What the recorder said is kept, raw and unlinked, and said why. */
    assert_string_equal(m.number_raw, "+1 000 000 0000");
    assert_string_equal(m.number_e164, "");
    assert_source(&m, LUCY_CALL_NUMBER, LUCY_CALL_SRC_SIDECAR);
    assert_true(has_warning(&m, "numbering plan"));
    free(json);
}

static void names_with_control_characters(void **state)
{
    (void)state;
    char *json = bcr_sidecar(bcr_example_ms(), NULL, "in", NULL, "John\a Doe\n", "\x01\x02");
    struct lucy_call_input in = input("20230414_215701.088-0400_in_Ann\xc2\x85Lee.m4a");
    in.sidecar = json;
    in.sidecar_len = strlen(json);
    struct lucy_call_meta m;
    lucy_call_meta_read(&in, &m);
    assert_string_equal(m.contact_name, "John Doe");
    assert_true(has_warning(&m, "control characters removed from contact_name"));
    assert_string_equal(m.caller_name, "");
    assert_source(&m, LUCY_CALL_CALLER_NAME, LUCY_CALL_SRC_NONE);
    assert_true(has_warning(&m, "caller_name is empty"));
    assert_string_equal(m.file_name, "Ann Lee"); /* U+0085 (C1) too */
    free(json);
    /* Not UTF-8: refused. */
    in.sidecar = NULL;
    in.file_name = "20230414_215701.088-0400_in_J\xffohn.m4a";
    lucy_call_meta_read(&in, &m);
    assert_string_equal(m.file_name, "");
    assert_true(has_warning(&m, "file_name is not valid UTF-8"));
    /* Too long: cut on a character boundary, still UTF-8. */
    char name[400] = "20230414_215701.088-0400_in_";
    for (int i = 0; i < 100; i++)
        strcat(name, "é");
    in.file_name = name;
    lucy_call_meta_read(&in, &m);
    assert_int_equal(strlen(m.file_name), 126); /* 63 two-byte characters */
    assert_true(lucy_utf8_valid(m.file_name, strlen(m.file_name)));
    assert_true(has_warning(&m, "cut to 127 bytes"));
}

static void empty_and_missing_input(void **state)
{
    (void)state;
    struct lucy_call_meta m;
    struct lucy_call_input in = input("");
    lucy_call_meta_read(&in, &m);
    assert_true(has_warning(&m, "file_name: empty"));
    in.file_name = "dir/.m4a"; /* a dot file: ".m4a" is its name, not an extension */
    lucy_call_meta_read(&in, &m);
    assert_int_equal(m.warning_count, 0);
    in = (struct lucy_call_input){0};
    lucy_call_meta_read(&in, &m);
    for (int f = 0; f < LUCY_CALL_FIELD_COUNT; f++)
        assert_source(&m, f, LUCY_CALL_SRC_NONE);
    char title[64];
    assert_int_equal(lucy_call_title(&m, title, sizeof title), strlen("Call with unknown caller"));
    assert_string_equal(title, "Call with unknown caller");
    /* A short buffer cuts on a character boundary ("·" is 2 bytes) and
     * drops the space before it. */
    strcpy(m.contact_name, "Jo");
    m.direction = LUCY_CALL_DIR_IN;
    assert_int_equal(lucy_call_title(&m, title, 15), 12);
    assert_string_equal(title, "Call with Jo");
    assert_int_equal(lucy_call_title(&m, title, 0), 0);
}

static void warnings_overflow_is_counted(void **state)
{
    (void)state;
    const struct lucy_call_tag tags[] = {
        {"com.apple.quicktime.creationdate", "x"}, {"creation_time", "y"}, {"date", "z"}};
    char *json = bcr_sidecar(1, "bad", "up", "nope", "\x01", "\x02");
    struct lucy_call_input in = input("");
    in.sidecar = json;
    in.sidecar_len = strlen(json);
    in.tags = tags;
    in.tag_count = 3;
    struct lucy_call_meta m;
    lucy_call_meta_read(&in, &m);
    assert_int_equal(m.warning_count, LUCY_CALL_WARNINGS_MAX);
    assert_true(m.warnings_dropped > 0);
    free(json);
}

/* Many variable fields against a long name: the step budget ends it. */
static void pathological_name_is_bounded(void **state)
{
    (void)state;
    char name[300];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    struct lucy_call_name f;
    assert_int_equal(
        lucy_call_template_match("{name}{name}{name}{name}_{phone}", name, strlen(name), &f), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bcr_with_sidecar),
        cmocka_unit_test(bcr_without_sidecar),
        cmocka_unit_test(samsung_style),
        cmocka_unit_test(other_conventions),
        cmocka_unit_test(national_number_with_and_without_region),
        cmocka_unit_test(name_without_number),
        cmocka_unit_test(ios_creationdate_only),
        cmocka_unit_test(title_and_artist_tags),
        cmocka_unit_test(user_patterns_come_first),
        cmocka_unit_test(templates_that_are_refused),
        cmocka_unit_test(bad_sidecars),
        cmocka_unit_test(absurd_dates),
        cmocka_unit_test(rejected_number),
        cmocka_unit_test(names_with_control_characters),
        cmocka_unit_test(empty_and_missing_input),
        cmocka_unit_test(warnings_overflow_is_counted),
        cmocka_unit_test(pathological_name_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
