/* export_test.c - a transcript as TXT, SRT, WebVTT and JSON
 * (src/plugins/call_recordings/export.c): exact texts for a transcript
 * with speakers, channels and word timings, cue text that would break the
 * formats, and the download file name. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugins/call_recordings/export.h"

/* Two segments: a named speaker with word timings, then a channel only. */
static json_t *sample(void)
{
    json_t *t = json_loads(
        "{\"text\":\"hello there & <you> --> bye\",\"segments\":["
        "{\"t0_ms\":500,\"t1_ms\":2250,\"text\":\"hello there\",\"speaker\":\"Ann\","
        " \"words\":[{\"t0_ms\":500,\"t1_ms\":900,\"word\":\"hello\"},"
        "            {\"t0_ms\":1000,\"t1_ms\":2250,\"word\":\"there\"}]},"
        "{\"t0_ms\":3723004,\"t1_ms\":3725000,\"text\":\"& <you>\\n--> bye\",\"channel\":1}]}",
        0, NULL);
    assert_non_null(t);
    return t;
}

static char *render(enum lucy_export_format f)
{
    json_t *t = sample();
    size_t len;
    char *text = lucy_export_render(t, NULL, f, &len);
    json_decref(t);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void test_srt(void **state)
{
    (void)state;
    char *s = render(LUCY_EXPORT_SRT);
    assert_string_equal(s, "1\n00:00:00,500 --> 00:00:02,250\nAnn: hello there\n\n"
                           "2\n01:02:03,004 --> 01:02:05,000\nChannel 1: & <you> -> bye\n\n");
    free(s);
}

static void test_vtt(void **state)
{
    (void)state;
    char *s = render(LUCY_EXPORT_VTT);
    assert_string_equal(s, "WEBVTT\n\n"
                           "1\n00:00:00.500 --> 00:00:02.250\n<v Ann>hello <00:00:01.000>there\n\n"
                           "2\n01:02:03.004 --> 01:02:05.000\n<v Channel 1>&amp; &lt;you&gt; -&gt; "
                           "bye\n\n");
    free(s);
}

static void test_txt_and_json(void **state)
{
    (void)state;
    char *s = render(LUCY_EXPORT_TXT);
    assert_string_equal(s, "[00:00:00.500] Ann: hello there\n"
                           "[01:02:03.004] Channel 1: & <you>\n--> bye\n");
    free(s);
    s = render(LUCY_EXPORT_JSON);
    json_t *back = json_loads(s, 0, NULL), *t = sample();
    assert_true(json_equal(back, t));
    json_decref(back);
    json_decref(t);
    free(s);
}

/* A per-channel call's speakers as the UI names them: "Me", the call's
 * person by name, "Them" for a person without a name or another id. */
static void test_speaker_names(void **state)
{
    (void)state;
    json_t *t =
        json_loads("{\"text\":\"a b c\",\"segments\":["
                   "{\"t0_ms\":0,\"t1_ms\":1000,\"text\":\"a\",\"speaker\":\"me\",\"channel\":0},"
                   "{\"t0_ms\":1000,\"t1_ms\":2000,\"text\":\"b\",\"speaker\":7,\"channel\":1},"
                   "{\"t0_ms\":2000,\"t1_ms\":3000,\"text\":\"c\",\"speaker\":8,\"channel\":1}]}",
                   0, NULL);
    json_t *call = json_loads("{\"person\":{\"id\":7,\"name\":\"John Doe\"}}", 0, NULL);
    json_t *nameless = json_loads("{\"person\":{\"id\":7,\"name\":null}}", 0, NULL);
    size_t len;
    char *s = lucy_export_render(t, call, LUCY_EXPORT_TXT, &len);
    assert_string_equal(s, "[00:00:00.000] Me: a\n[00:00:01.000] John Doe: b\n"
                           "[00:00:02.000] Them: c\n");
    free(s);
    s = lucy_export_render(t, nameless, LUCY_EXPORT_TXT, &len);
    assert_string_equal(s,
                        "[00:00:00.000] Me: a\n[00:00:01.000] Them: b\n[00:00:02.000] Them: c\n");
    free(s);
    json_decref(nameless);
    json_decref(call);
    json_decref(t);
}

static void test_no_segments(void **state)
{
    (void)state;
    json_t *t = json_pack("{s:s,s:[]}", "text", "", "segments");
    size_t len;
    char *s = lucy_export_render(t, NULL, LUCY_EXPORT_SRT, &len);
    assert_int_equal(len, 0);
    free(s);
    s = lucy_export_render(t, NULL, LUCY_EXPORT_VTT, &len);
    assert_string_equal(s, "WEBVTT\n\n");
    free(s);
    json_decref(t);
}

static void test_formats_and_file_name(void **state)
{
    (void)state;
    assert_int_equal(lucy_export_format_by_ext("vtt"), LUCY_EXPORT_VTT);
    assert_int_equal(lucy_export_format_by_ext("doc"), -1);
    assert_int_equal(lucy_export_format_by_ext(NULL), -1);
    char name[128];
    const char *id = "3d5aeddee97520cde1cc487be2ded22572789566d5f5b8601fedc3c62369b039";
    lucy_export_file_name("Call with Zoë \"Z\" · in · 14 Apr 2023 21:57", id, "srt", name,
                          sizeof name);
    assert_string_equal(name, "Call_with_Zo_Z_in_14_Apr_2023_21_57-3d5aeddee975.srt");
    lucy_export_file_name(NULL, id, "txt", name, sizeof name);
    assert_string_equal(name, "3d5aeddee975.txt");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srt),           cmocka_unit_test(test_vtt),
        cmocka_unit_test(test_txt_and_json),  cmocka_unit_test(test_no_segments),
        cmocka_unit_test(test_speaker_names), cmocka_unit_test(test_formats_and_file_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
