/*
 * asr_test.c - the engine table and wrappers (asr.c) and the pocketsphinx
 * engine on real speech:
 *   - `auto` and named selection per DESIGN §7, with the reasons given;
 *   - transcript building (trim, skip empty, join) and segment words
 *     (clamped into their segment, monotonic);
 *   - one pocketsphinx instance gives the same transcript for the same
 *     audio whatever it decoded before (stream and CMN state are reset);
 *   - speech, 2 s of digital silence, speech: two segments, the second one
 *     timed after the pause; silence alone: no segments, text "";
 *   - the http engine against a closed port: LUCY_EUNAVAIL with a reason.
 * Fixtures are found as in audio_test.c.
 */
#include <fcntl.h>
#include <libgen.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "asr/asr.h"
#include "error.h"

static char fixtures[4096];

static void select_engines(void **state)
{
    (void)state;
    char err[512];
    struct lucy_asr_options o = {.engine = "auto"};
    const struct lucy_asr_engine *e = lucy_asr_select(&o, err, sizeof err);
    assert_string_equal(e->name, "pocketsphinx");
    o.url = "http://127.0.0.1:1/v1/audio/transcriptions";
    assert_string_equal(lucy_asr_select(&o, err, sizeof err)->name, "http");
    o.whisper_model = "/models/ggml-base.en.bin";
#ifdef LUCY_HAVE_WHISPER
    assert_string_equal(lucy_asr_select(&o, err, sizeof err)->name, "whisper");
#else
    assert_string_equal(lucy_asr_select(&o, err, sizeof err)->name, "http");
    o.engine = "whisper";
    assert_null(lucy_asr_select(&o, err, sizeof err));
    assert_non_null(strstr(err, "not built in"));
#endif
    o = (struct lucy_asr_options){.engine = "http"};
    assert_null(lucy_asr_select(&o, err, sizeof err));
    assert_non_null(strstr(err, "LUCY_ASR_URL"));
    o.engine = "kaldi";
    assert_null(lucy_asr_select(&o, err, sizeof err));
    assert_non_null(strstr(err, "unknown ASR engine"));
    o.engine = NULL; /* unset = auto */
    assert_string_equal(lucy_asr_select(&o, err, sizeof err)->name, "pocketsphinx");
}

static void transcript_building(void **state)
{
    (void)state;
    struct lucy_transcript t = {0};
    assert_int_equal(lucy_transcript_add(&t, 0, 900, "  hello there \n", 15), 0);
    assert_int_equal(lucy_transcript_add(&t, 1000, 1200, "   ", 3), 0); /* skipped */
    assert_int_equal(lucy_transcript_add(&t, 1500, 1400, "again", 5), 0);
    assert_int_equal(t.n_segments, 2);
    assert_string_equal(t.segments[0].text, "hello there");
    assert_int_equal(t.segments[1].t1_ms, 1500); /* raised to t0 */
    assert_int_equal(lucy_transcript_join(&t), 0);
    assert_string_equal(t.text, "hello there again");
    lucy_transcript_free(&t);
    assert_int_equal(lucy_transcript_join(&t), 0);
    assert_string_equal(t.text, "");
    lucy_transcript_free(&t);
}

/* Words are clamped into their segment and kept monotonic whatever the
 * engine reports (an OpenAI-compatible server may time a word a little
 * outside its segment); freeing a transcript frees them. */
static void segment_words(void **state)
{
    (void)state;
    struct lucy_transcript t = {0};
    assert_int_equal(lucy_transcript_add(&t, 1000, 2000, "go forward ten", 14), 0);
    struct lucy_segment *seg = &t.segments[0];
    assert_null(seg->words);
    assert_int_equal(lucy_segment_add_word(seg, 900, 1300, " go ", 4), 0);     /* starts early */
    assert_int_equal(lucy_segment_add_word(seg, 1200, 1100, "forward", 7), 0); /* ends first */
    assert_int_equal(lucy_segment_add_word(seg, 1100, 1500, "x", 1), 0);       /* before the last */
    assert_int_equal(lucy_segment_add_word(seg, 1600, 2400, "ten", 3), 0);     /* ends late */
    assert_int_equal(lucy_segment_add_word(seg, 1700, 1800, "  ", 2), 0);      /* skipped */
    assert_int_equal(seg->n_words, 4);
    const int64_t want[4][2] = {{1000, 1300}, {1200, 1200}, {1200, 1500}, {1600, 2000}};
    for (size_t i = 0; i < seg->n_words; i++) {
        assert_int_equal(seg->words[i].t0_ms, want[i][0]);
        assert_int_equal(seg->words[i].t1_ms, want[i][1]);
    }
    assert_string_equal(seg->words[0].text, "go");
    lucy_transcript_free(&t); /* the words too: ASan's leak check */
    assert_int_equal(t.n_segments, 0);
}

static void decode_fixture(const char *name, struct lucy_pcm *pcm)
{
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    int rc = lucy_audio_decode_fd(fd, path, pcm, err, sizeof err);
    close(fd);
    if (rc)
        fail_msg("%s: %s", name, err);
}

/* pcm = a, silence_s of zeros, b */
static void concat(const struct lucy_pcm *a, double silence_s, const struct lucy_pcm *b,
                   struct lucy_pcm *out)
{
    size_t gap = (size_t)(silence_s * LUCY_ASR_SAMPLE_RATE);
    size_t n = a->n_samples + gap + b->n_samples;
    *out = (struct lucy_pcm){.s16 = calloc(n, sizeof(int16_t)), .f32 = calloc(n, sizeof(float))};
    assert_non_null(out->s16);
    assert_non_null(out->f32);
    if (a->n_samples)
        memcpy(out->s16, a->s16, a->n_samples * sizeof(int16_t));
    if (b->n_samples)
        memcpy(out->s16 + a->n_samples + gap, b->s16, b->n_samples * sizeof(int16_t));
    for (size_t i = 0; i < n; i++)
        out->f32[i] = out->s16[i] / 32768.0f;
    out->n_samples = n;
    out->duration_s = (double)n / LUCY_ASR_SAMPLE_RATE;
}

static void pocketsphinx_engine(void **state)
{
    (void)state;
    char err[512];
    struct lucy_asr_options o = {.engine = "pocketsphinx"};
    const struct lucy_asr_engine *e = lucy_asr_select(&o, err, sizeof err);
    void *ps = NULL;
    assert_int_equal(lucy_asr_open(e, &o, &ps, err, sizeof err), 0);

    struct lucy_pcm go, cards, both, silence;
    decode_fixture("goforward.m4a", &go);
    decode_fixture("cards-003-stereo.m4a", &cards);

    struct lucy_transcript first, other, again;
    assert_int_equal(lucy_asr_transcribe(e, ps, &go, &first, err, sizeof err), 0);
    assert_int_equal(lucy_asr_transcribe(e, ps, &cards, &other, err, sizeof err), 0);
    assert_int_equal(lucy_asr_transcribe(e, ps, &go, &again, err, sizeof err), 0);
    assert_string_equal(first.engine, "pocketsphinx");
    assert_true(first.rtf > 0 && first.wall_s > 0);
    assert_true(first.audio_s == go.duration_s);
    assert_non_null(strstr(first.text, "forward"));
    assert_string_equal(first.text, again.text);
    assert_int_equal(first.n_segments, again.n_segments);
    for (size_t i = 0; i < first.n_segments; i++) {
        assert_int_equal(first.segments[i].t0_ms, again.segments[i].t0_ms);
        assert_int_equal(first.segments[i].t1_ms, again.segments[i].t1_ms);
    }

    /* speech, a 2 s pause, speech: two segments, the second after the pause */
    concat(&go, 2.0, &cards, &both);
    struct lucy_transcript split;
    assert_int_equal(lucy_asr_transcribe(e, ps, &both, &split, err, sizeof err), 0);
    assert_true(split.n_segments >= 2);
    int64_t cards_start_ms = (int64_t)((go.duration_s + 2.0) * 1000);
    const struct lucy_segment *last = &split.segments[split.n_segments - 1];
    assert_true(last->t0_ms >= cards_start_ms);
    assert_true(last->t1_ms <= (int64_t)(both.duration_s * 1000) + 10);
    assert_true(split.segments[0].t1_ms <= (int64_t)(go.duration_s * 1000) + 10);
    assert_non_null(strstr(split.segments[0].text, "forward"));

    /* digital silence: nothing */
    struct lucy_pcm empty = {.n_samples = 0};
    concat(&empty, 10.0, &empty, &silence);
    struct lucy_transcript none;
    assert_int_equal(lucy_asr_transcribe(e, ps, &silence, &none, err, sizeof err), 0);
    assert_int_equal(none.n_segments, 0);
    assert_string_equal(none.text, "");

    lucy_transcript_free(&first);
    lucy_transcript_free(&other);
    lucy_transcript_free(&again);
    lucy_transcript_free(&split);
    lucy_transcript_free(&none);
    lucy_pcm_free(&go);
    lucy_pcm_free(&cards);
    lucy_pcm_free(&both);
    lucy_pcm_free(&silence);
    lucy_asr_close(e, ps);
}

static void http_engine_unreachable(void **state)
{
    (void)state;
    char err[512];
    /* port 9 (discard) on loopback: nothing listens there in a test box */
    struct lucy_asr_options o = {.engine = "http",
                                 .url = "http://127.0.0.1:9/v1/audio/transcriptions"};
    const struct lucy_asr_engine *e = lucy_asr_select(&o, err, sizeof err);
    void *h = NULL;
    assert_int_equal(lucy_asr_open(e, &o, &h, err, sizeof err), 0);
    struct lucy_pcm pcm;
    decode_fixture("cards-001.ogg", &pcm);
    struct lucy_transcript t;
    assert_int_equal(lucy_asr_transcribe(e, h, &pcm, &t, err, sizeof err), LUCY_EUNAVAIL);
    assert_non_null(strstr(err, "cannot reach the ASR server"));
    assert_null(t.text);
    lucy_pcm_free(&pcm);
    lucy_asr_close(e, h);
}

static int setup(void **state)
{
    (void)state;
    const char *env = getenv("LUCY_FIXTURES");
    if (env) {
        snprintf(fixtures, sizeof fixtures, "%s/audio", env);
    } else {
        char here[4096];
        snprintf(here, sizeof here, "%s", __FILE__);
        snprintf(fixtures, sizeof fixtures, "%s/../fixtures/audio", dirname(here));
    }
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/transcripts.tsv", fixtures);
    if (access(probe, R_OK) != 0) {
        fprintf(stderr, "asr_test: fixtures not found at %s; set LUCY_FIXTURES\n", fixtures);
        return -1;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(select_engines),          cmocka_unit_test(transcript_building),
        cmocka_unit_test(segment_words),           cmocka_unit_test(pocketsphinx_engine),
        cmocka_unit_test(http_engine_unreachable),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
