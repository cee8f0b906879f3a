/*
 * asr_test.c - the engine table and wrappers (asr.c) and the pocketsphinx
 * engine on real speech:
 *   - `auto` and named selection per DESIGN §7, with the reasons given;
 *   - transcript building (trim, skip empty, join) and segment words
 *     (clamped into their segment, monotonic); whisper.cpp's tokens joined
 *     into words (lucy_segment_add_tokens);
 *   - one pocketsphinx instance gives the same transcript for the same
 *     audio whatever it decoded before (stream and CMN state are reset);
 *   - speech, 2 s of digital silence, speech: two segments, the second one
 *     timed after the pause; silence alone: no segments, text "";
 *   - the http engine against a closed port: LUCY_EUNAVAIL with a reason;
 *   - LUCY_CALL_CHANNELS read once (channels.c), a call's plan labelled
 *     per channel, and the chunk hook's pieces merged with the stream
 *     continued only after a chunk the engine recognised.
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

/* Per-job engine/model checks (re-transcription requests): 400-class
 * (LUCY_EINVAL) vs 409-class (LUCY_EUNAVAIL), and nothing loaded. */
static void check_per_job(void **state)
{
    (void)state;
    char err[320];
    const struct lucy_asr_engine *e = NULL;
    struct lucy_asr_options o = {.engine = "sphinx9"};
    assert_int_equal(lucy_asr_check(&o, &e, err, sizeof err), LUCY_EINVAL);
    assert_null(e);
    assert_non_null(strstr(err, "sphinx9"));
    o = (struct lucy_asr_options){.engine = "http"};
    assert_int_equal(lucy_asr_check(&o, &e, err, sizeof err), LUCY_EUNAVAIL);
    assert_non_null(strstr(err, "LUCY_ASR_URL"));
    o.url = "http://127.0.0.1:9/v1/audio/transcriptions";
    o.model = "any-name-the-server-knows";
    assert_int_equal(lucy_asr_check(&o, &e, err, sizeof err), 0);
    assert_string_equal(e->name, "http");
    o = (struct lucy_asr_options){.engine = "pocketsphinx", .model = "/nonexistent/hmm"};
    assert_int_equal(lucy_asr_check(&o, &e, err, sizeof err), LUCY_EINVAL);
    assert_non_null(strstr(err, "/nonexistent/hmm"));
    o.model = "/";
    assert_int_equal(lucy_asr_check(&o, &e, err, sizeof err), 0);
    assert_string_equal(e->name, "pocketsphinx");
    /* No engine named: the configured one's model rule. */
    o = (struct lucy_asr_options){.engine = "pocketsphinx"};
    o.model = "/etc/passwd";
    assert_int_equal(lucy_asr_check(&o, &e, err, sizeof err), LUCY_EINVAL);
    o = (struct lucy_asr_options){.engine = "whisper"};
#ifdef LUCY_HAVE_WHISPER
    assert_int_equal(lucy_asr_check(&o, &e, err, sizeof err), LUCY_EUNAVAIL);
    o.model = "/";
    assert_int_equal(lucy_asr_check(&o, &e, err, sizeof err), LUCY_EINVAL);
#else
    assert_int_equal(lucy_asr_check(&o, &e, err, sizeof err), LUCY_EUNAVAIL);
    assert_non_null(strstr(err, "not built in"));
#endif
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

/* Checks seg's words against want[0..n) ({t0_ms, t1_ms} and texts). */
static void assert_words(const struct lucy_segment *seg, const char *const *text,
                         const int64_t (*times)[2], size_t n)
{
    assert_int_equal(seg->n_words, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(seg->words[i].text, text[i]);
        assert_int_equal(seg->words[i].t0_ms, times[i][0]);
        assert_int_equal(seg->words[i].t1_ms, times[i][1]);
    }
}

/* whisper.cpp's tokens become words (lucy_segment_add_tokens, the rule of
 * whisper.c and of the http engine on whisper.cpp's server): a token with
 * a leading space starts a word, BPE pieces and punctuation continue it,
 * the word ends with its last piece. */
static void tokens_to_words(void **state)
{
    (void)state;
    struct lucy_transcript t = {0};
    assert_int_equal(lucy_transcript_add(&t, 1000, 3000, "Hello, world.", 13), 0);
    const struct lucy_token tok[] = {
        {1000, 1200, " Hel"},   {1200, 1400, "lo"}, {1400, 1450, ","},
        {1500, 1900, " world"}, {1900, 1950, "."},
    };
    assert_int_equal(lucy_segment_add_tokens(&t.segments[0], tok, 5), 0);
    assert_words(&t.segments[0], (const char *const[]){"Hello,", "world."},
                 (const int64_t[][2]){{1000, 1450}, {1500, 1950}}, 2);
    lucy_transcript_free(&t);
}

/* Times past the audio (whisper.cpp's 30 s window on a 2.8 s chunk) are
 * brought inside it: segments end at the audio's end, words inside their
 * segment and in order. */
static void clamp_to_audio(void **state)
{
    (void)state;
    struct lucy_transcript t = {0};
    assert_int_equal(lucy_transcript_add(&t, 900, 8300, "a b c", 5), 0);
    assert_int_equal(lucy_transcript_add(&t, 9000, 9500, "d", 1), 0);
    const struct lucy_token tok[] = {{900, 1000, " a"}, {2000, 5000, " b"}, {6000, 8000, " c"}};
    assert_int_equal(lucy_segment_add_tokens(&t.segments[0], tok, 3), 0);
    lucy_transcript_clamp(&t, 2816);
    assert_int_equal(t.segments[0].t0_ms, 900);
    assert_int_equal(t.segments[0].t1_ms, 2816);
    assert_words(&t.segments[0], (const char *const[]){"a", "b", "c"},
                 (const int64_t[][2]){{900, 1000}, {2000, 2816}, {2816, 2816}}, 3);
    assert_int_equal(t.segments[1].t0_ms, 2816); /* wholly past the end: an empty span */
    assert_int_equal(t.segments[1].t1_ms, 2816);
    lucy_transcript_free(&t);
}

/* Edge cases: empty and NULL tokens are skipped (and do not split a word);
 * a segment starting with a continuation token starts a word with it; a
 * token that is only white space, or ends in it, ends the word; times out
 * of order or outside the segment are clamped (monotonic, inside it); a
 * continuation never moves a word's end back. */
static void tokens_edge_cases(void **state)
{
    (void)state;
    struct lucy_transcript t = {0};
    assert_int_equal(lucy_transcript_add(&t, 1000, 2000, "lo there you go", 15), 0);
    const struct lucy_token tok[] = {
        {900, 1100, "lo"},      /* continuation first, starts early */
        {1100, 1150, ""},       /* empty: skipped */
        {1150, 1180, NULL},     /* no text: skipped */
        {1050, 1100, "ok"},     /* continues "lo"; ends before the word does */
        {1200, 1300, " "},      /* only a space: a gap */
        {1300, 1400, "there "}, /* no leading space, yet after a gap: a word */
        {1400, 1500, "you"},    /* after "there ": a word */
        {1300, 1350, " go"},    /* starts before the word before it */
        {1600, 2500, "!"},      /* ends past the segment */
    };
    assert_int_equal(lucy_segment_add_tokens(&t.segments[0], tok, sizeof tok / sizeof tok[0]), 0);
    assert_words(&t.segments[0], (const char *const[]){"look", "there", "you", "go!"},
                 (const int64_t[][2]){{1000, 1100}, {1300, 1400}, {1400, 1500}, {1400, 2000}}, 4);
    /* Nothing at all, or only empties: no words. */
    assert_int_equal(lucy_transcript_add(&t, 3000, 4000, "x", 1), 0);
    const struct lucy_token none[] = {{3000, 3100, ""}, {3100, 3200, "  "}};
    assert_int_equal(lucy_segment_add_tokens(&t.segments[1], none, 2), 0);
    assert_int_equal(lucy_segment_add_tokens(&t.segments[1], NULL, 0), 0);
    assert_int_equal(t.segments[1].n_words, 0);
    assert_null(t.segments[1].words);
    lucy_transcript_free(&t); /* the grown words too: ASan's leak check */
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

/* n samples of a loud 440 Hz-ish square wave (speech stand-in) or zeros. */
static void fill(int16_t *s16, size_t from, size_t n, int loud)
{
    for (size_t i = from; i < from + n; i++)
        s16[i] = loud ? (int16_t)((i / 18) % 2 ? 8000 : -8000) : 0;
}

/* Chunks cover the sound, never the long silence, and stay under the
 * chunk length; a stretch longer than that is cut; all silence: none. */
static void chunks_at_pauses(void **state)
{
    (void)state;
    const size_t rate = LUCY_ASR_SAMPLE_RATE;
    size_t n = rate * 50; /* 2 s sound, 5 s silence, 40 s sound, 3 s silence */
    int16_t *s16 = malloc(n * sizeof *s16);
    assert_non_null(s16);
    fill(s16, 0, 2 * rate, 1);
    fill(s16, 2 * rate, 5 * rate, 0);
    fill(s16, 7 * rate, 40 * rate, 1);
    fill(s16, 47 * rate, 3 * rate, 0);
    struct lucy_pcm pcm = {.s16 = s16, .n_samples = n, .duration_s = 50};
    struct lucy_chunk *c = NULL;
    size_t nc = 0;
    char err[256];
    assert_int_equal(lucy_asr_chunks(&pcm, 30, &c, &nc, err, sizeof err), 0);
    assert_int_equal(nc, 3);
    assert_true(c[0].first_sample == 0 && c[0].n_samples >= 2 * rate);
    assert_true(c[0].first_sample + c[0].n_samples < 3 * rate); /* padding only */
    size_t covered = 0;
    for (size_t i = 0; i < nc; i++) {
        assert_true(c[i].n_samples <= 30 * rate);
        if (i > 0)
            assert_true(c[i].first_sample >= c[i - 1].first_sample + c[i - 1].n_samples);
        covered += c[i].n_samples;
    }
    assert_true(c[1].first_sample > 6 * rate && c[1].first_sample < 7 * rate);
    assert_true(c[2].first_sample + c[2].n_samples < 48 * rate);
    assert_true(covered < 44 * rate); /* the 8 s of silence cost (almost) nothing */
    struct lucy_pcm view = lucy_pcm_view(&pcm, &c[2]);
    assert_ptr_equal(view.s16, s16 + c[2].first_sample);
    free(c);

    fill(s16, 0, n, 0);
    assert_int_equal(lucy_asr_chunks(&pcm, 30, &c, &nc, err, sizeof err), 0);
    assert_int_equal(nc, 0);
    assert_null(c);
    free(s16);
}

/* Identical channels (also with a little coder noise) vs two signals. */
static void identical_channels(void **state)
{
    (void)state;
    int16_t st[2 * 1000];
    for (int i = 0; i < 1000; i++)
        st[2 * i] = st[2 * i + 1] = (int16_t)((i * 37) % 2000 - 1000);
    assert_true(lucy_audio_channels_identical(st, 1000));
    for (int i = 0; i < 1000; i++)
        st[2 * i + 1] = (int16_t)(st[2 * i] + (i % 3) - 1); /* noise at -55 dB */
    assert_true(lucy_audio_channels_identical(st, 1000));
    for (int i = 0; i < 1000; i++)
        st[2 * i + 1] = (int16_t)(i < 500 ? 0 : st[2 * i]); /* one party, then the other */
    assert_false(lucy_audio_channels_identical(st, 1000));
    memset(st, 0, sizeof st);
    assert_true(lucy_audio_channels_identical(st, 1000));
}

/* One signal copied to both channels at another gain, inverted or 2 ms
 * late is one signal; two different ones, or one side silent, are not. */
static void one_signal_in_other_forms(void **state)
{
    (void)state;
    enum { N = 48000 }; /* 3 s at 16 kHz */
    int16_t *st = calloc(2 * N, sizeof *st);
    assert_non_null(st);
    unsigned seed = 7;
    for (int i = 0; i < N; i++) { /* noise-like "speech" */
        seed = seed * 1103515245u + 12345u;
        st[2 * i] = (int16_t)((int)(seed >> 16) % 8000 - 4000);
    }
    for (int i = 0; i < N; i++)
        st[2 * i + 1] = (int16_t)(st[2 * i] / 2); /* half the gain */
    assert_true(lucy_audio_channels_identical(st, N));
    for (int i = 0; i < N; i++)
        st[2 * i + 1] = (int16_t)-st[2 * i]; /* inverted */
    assert_true(lucy_audio_channels_identical(st, N));
    for (int i = 0; i < N; i++)
        st[2 * i + 1] = i >= 32 ? st[2 * (i - 32)] : 0; /* 2 ms late */
    assert_true(lucy_audio_channels_identical(st, N));
    for (int i = 0; i < N; i++) { /* another voice */
        seed = seed * 1103515245u + 12345u;
        st[2 * i + 1] = (int16_t)((int)(seed >> 16) % 8000 - 4000);
    }
    assert_false(lucy_audio_channels_identical(st, N));
    for (int i = 0; i < N; i++)
        st[2 * i + 1] = 0; /* the other side silent */
    assert_false(lucy_audio_channels_identical(st, N));
    free(st);
}

/* Segments of two channels merged in time order, words shifted along. */
static void merge_channels(void **state)
{
    (void)state;
    struct lucy_transcript all = {0}, a = {0}, b = {0};
    assert_int_equal(lucy_transcript_add(&a, 0, 1000, "hello there", 11), 0);
    assert_int_equal(lucy_transcript_add_word(&a, 0, 400, "hello", 5), 0);
    assert_int_equal(lucy_transcript_add_word(&a, 500, 1000, "there", 5), 0);
    assert_int_equal(lucy_transcript_add(&a, 5000, 6000, "bye", 3), 0);
    assert_int_equal(lucy_transcript_add(&b, 100, 900, "hi", 2), 0);
    assert_int_equal(lucy_transcript_append(&all, &a, 0, 0, "me"), 0);
    assert_int_equal(lucy_transcript_append(&all, &b, 2000, 1, "them"), 0);
    assert_int_equal(a.n_segments, 0);
    lucy_transcript_sort(&all);
    assert_int_equal(lucy_transcript_join(&all), 0);
    assert_string_equal(all.text, "hello there hi bye");
    assert_int_equal(all.segments[1].t0_ms, 2100);
    assert_string_equal(all.segments[1].speaker, "them");
    assert_int_equal(all.segments[1].channel, 1);
    assert_int_equal(all.segments[0].n_words, 2);
    assert_int_equal(all.segments[0].words[1].t0_ms, 500);
    assert_int_equal(lucy_transcript_add_word(&b, 0, 1, "x", 1), LUCY_EINVAL);
    lucy_transcript_free(&all);
    lucy_transcript_free(&a);
    lucy_transcript_free(&b);
}

/* The one reading of LUCY_CALL_CHANNELS. */
static void call_channels(void **state)
{
    (void)state;
    struct lucy_asr_channels c;
    assert_int_equal(lucy_asr_channels_parse(NULL, &c), 0);
    assert_true(c.split);
    assert_string_equal(c.roles[0], "me");
    assert_string_equal(c.roles[1], "them");
    assert_int_equal(lucy_asr_channels_parse("them,me", &c), 0);
    assert_string_equal(c.roles[0], "them");
    assert_string_equal(c.roles[1], "me");
    assert_int_equal(lucy_asr_channels_parse("mix", &c), 0);
    assert_false(c.split);
    assert_int_equal(lucy_asr_channels_parse("me", &c), LUCY_EINVAL);
    assert_true(c.split); /* the default */
    size_t n = 0;
    while (lucy_asr_channels_names[n])
        assert_int_equal(lucy_asr_channels_parse(lucy_asr_channels_names[n++], &c), 0);
    assert_int_equal(n, 3);
}

/* A plan of whole channels (max_chunk_s 0: no FFmpeg needed) is labelled
 * by the layout when there are two channels, not at all when one. */
static void call_plan_labels(void **state)
{
    (void)state;
    struct lucy_audio a = {.n_channels = 2};
    a.channel[0].n_samples = a.channel[1].n_samples = 3 * LUCY_ASR_SAMPLE_RATE;
    struct lucy_asr_channels c;
    lucy_asr_channels_parse("them,me", &c);
    struct lucy_asr_plan plan;
    char err[256];
    assert_int_equal(lucy_asr_plan_make(&a, &c, 0, &plan, err, sizeof err), 0);
    assert_int_equal(plan.n_tracks, 2);
    assert_int_equal(plan.n_chunks, 2);
    assert_true(plan.total_s > 5.99 && plan.total_s < 6.01);
    assert_int_equal(plan.track[1].channel, 1);
    assert_string_equal(plan.track[1].speaker, "me");
    assert_ptr_equal(plan.track[1].pcm, &a.channel[1]);
    assert_int_equal(plan.track[1].chunks[0].n_samples, 3 * LUCY_ASR_SAMPLE_RATE);
    lucy_asr_plan_free(&plan);
    a.n_channels = 1;
    assert_int_equal(lucy_asr_plan_make(&a, &c, 0, &plan, err, sizeof err), 0);
    assert_int_equal(plan.n_tracks, 1);
    assert_int_equal(plan.track[0].channel, -1);
    assert_null(plan.track[0].speaker);
    lucy_asr_plan_free(&plan);
}

/* A hook that says each chunk's first sample, and takes chunk 1 of the
 * left channel "from a checkpoint" (not fresh). */
struct fake_hook {
    int continues[8]; /* in call order */
    int calls;
};

static int fake_chunk(void *arg, int lane, const struct lucy_asr_track *t,
                      const struct lucy_chunk *c, int continues, struct lucy_transcript *piece,
                      int *fresh, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    assert_int_equal(lane, 0);
    struct fake_hook *h = arg;
    h->continues[h->calls++] = continues;
    char text[32];
    int64_t t0 = (int64_t)c->first_sample * 1000 / LUCY_ASR_SAMPLE_RATE;
    int n = snprintf(text, sizeof text, "c%d at %lld", t->channel, (long long)t0);
    assert_int_equal(lucy_transcript_add(piece, t0, t0 + 500, text, (size_t)n), 0);
    *fresh = !(t->channel == 0 && c->first_sample == 16000);
    snprintf(piece->model, sizeof piece->model, "%s", *fresh ? "now" : "saved");
    snprintf(piece->language, sizeof piece->language, "%s", *fresh ? "de" : "xx");
    piece->wall_s = 0.5;
    return 0;
}

static void call_plan_merge(void **state)
{
    (void)state;
    struct lucy_audio a = {.n_channels = 2};
    for (int k = 0; k < 2; k++)
        a.channel[k] = (struct lucy_pcm){
            .n_samples = 80000, .duration_s = 5, .truncated = 1, .source_duration_s = 9};
    struct lucy_chunk left[] = {{0, 8000}, {16000, 8000}, {32000, 8000}}, right[] = {{8000, 8000}};
    struct lucy_asr_plan plan = {.audio = &a, .n_tracks = 2, .n_chunks = 4};
    plan.track[0] = (struct lucy_asr_track){&a.channel[0], 0, "me", left, 3};
    plan.track[1] = (struct lucy_asr_track){&a.channel[1], 1, "them", right, 1};
    struct fake_hook h = {0};
    struct lucy_transcript t;
    char err[64];
    struct lucy_asr_run run = {.fn = fake_chunk, .arg = &h, .n_lanes = 1};
    assert_int_equal(lucy_asr_transcribe_plan(&plan, "fake", &run, &t, err, sizeof err), 0);
    /* Left: chunk 1 continues chunk 0; chunk 2 does not continue the one
     * taken from elsewhere; the right channel starts afresh. */
    assert_int_equal(h.calls, 4);
    assert_int_equal(h.continues[0], 0);
    assert_int_equal(h.continues[1], 1);
    assert_int_equal(h.continues[2], 0);
    assert_int_equal(h.continues[3], 0);
    assert_string_equal(t.text, "c0 at 0 c1 at 500 c0 at 1000 c0 at 2000");
    assert_int_equal(t.segments[1].channel, 1);
    assert_string_equal(t.segments[1].speaker, "them");
    assert_string_equal(t.segments[2].speaker, "me");
    assert_string_equal(t.engine, "fake");
    assert_string_equal(t.model, "now");
    assert_string_equal(t.language, "de");
    assert_true(t.wall_s > 1.99 && t.wall_s < 2.01);
    assert_true(t.rtf > 0.39 && t.rtf < 0.41);
    assert_int_equal(t.channels, 2);
    assert_true(t.truncated);
    assert_true(t.source_duration_s > 8.9);
    lucy_transcript_free(&t);
}

/* A hook for lanes: records, per chunk (its index in the plan's one
 * track), which lane recognised it and whether it continued; fails on the
 * chunk fail_at (-1: none). Each chunk has its own slot, so lanes need no
 * lock. */
struct lane_hook {
    int lane[16];
    int continues[16];
    int fail_at;
    const struct lucy_chunk *first;
};

static int lane_chunk(void *arg, int lane, const struct lucy_asr_track *t,
                      const struct lucy_chunk *c, int continues, struct lucy_transcript *piece,
                      int *fresh, char *err, size_t errlen)
{
    struct lane_hook *h = arg;
    int i = (int)(c - h->first);
    h->lane[i] = lane;
    h->continues[i] = continues;
    if (i == h->fail_at) {
        snprintf(err, errlen, "chunk %d failed", i);
        return LUCY_EIO;
    }
    int64_t t0 = (int64_t)c->first_sample * 1000 / LUCY_ASR_SAMPLE_RATE;
    char text[16];
    int n = snprintf(text, sizeof text, "w%d", i);
    *fresh = 1;
    piece->wall_s = 1.0;
    (void)t;
    return lucy_transcript_add(piece, t0, t0 + 100, text, (size_t)n);
}

/* lucy_asr_run.ready for lanes_share_out: chunks 0-3 are "checkpointed". */
static int first_four_ready(void *arg, const struct lucy_asr_track *t, const struct lucy_chunk *c)
{
    (void)t;
    return c - ((struct lane_hook *)arg)->first < 4;
}

static void lanes_share_out(void **state)
{
    (void)state;
    struct lucy_audio a = {.n_channels = 1};
    a.channel[0] = (struct lucy_pcm){.n_samples = 16000 * 16, .duration_s = 16};
    struct lucy_chunk c[8];
    for (int i = 0; i < 8; i++)
        c[i] = (struct lucy_chunk){(size_t)i * 32000, 16000};
    struct lucy_asr_plan plan = {.audio = &a, .n_tracks = 1, .n_chunks = 8};
    plan.track[0] = (struct lucy_asr_track){&a.channel[0], -1, NULL, c, 8};
    struct lane_hook h = {.fail_at = -1, .first = c};
    struct lucy_asr_run run = {.fn = lane_chunk, .arg = &h, .n_lanes = 2};
    struct lucy_transcript t;
    char err[64];

    /* Two lanes: contiguous halves; within a lane each chunk continues
     * the one before, only a lane's first starts afresh. The merge is in
     * time order whatever lane finished first. */
    assert_int_equal(lucy_asr_transcribe_plan(&plan, "fake", &run, &t, err, sizeof err), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(h.lane[i], i < 4 ? 0 : 1);
        assert_int_equal(h.continues[i], i != 0 && i != 4);
    }
    assert_string_equal(t.text, "w0 w1 w2 w3 w4 w5 w6 w7");
    /* Engine time is the busiest lane's (lanes run at once): 4 x 1 s. */
    assert_true(t.wall_s > 3.99 && t.wall_s < 4.01);
    lucy_transcript_free(&t);

    /* Chunks a checkpoint holds weigh nothing: the four left to recognise
     * are shared two and two. */
    run.ready = first_four_ready;
    assert_int_equal(lucy_asr_transcribe_plan(&plan, "fake", &run, &t, err, sizeof err), 0);
    assert_int_equal(h.lane[5], 0);
    assert_int_equal(h.lane[6], 1);
    assert_int_equal(h.lane[7], 1);
    lucy_transcript_free(&t);

    /* More lanes than chunks to recognise: one lane per chunk at most. */
    run.ready = NULL;
    run.n_lanes = LUCY_ASR_MAX_LANES + 3;
    plan.track[0].n_chunks = 2;
    plan.n_chunks = 2;
    assert_int_equal(lucy_asr_transcribe_plan(&plan, "fake", &run, &t, err, sizeof err), 0);
    assert_int_equal(h.lane[0], 0);
    assert_int_equal(h.lane[1], 1);
    lucy_transcript_free(&t);

    /* A lane that fails stops the transcription with its error. */
    plan.track[0].n_chunks = 8;
    plan.n_chunks = 8;
    run.n_lanes = 2;
    h.fail_at = 5;
    assert_int_equal(lucy_asr_transcribe_plan(&plan, "fake", &run, &t, err, sizeof err), LUCY_EIO);
    assert_string_equal(err, "chunk 5 failed");
    lucy_transcript_free(&t);
}

static void lanes_for_engines(void **state)
{
    (void)state;
    struct lucy_asr_engine one = {.name = "one", .one_core = 1}, many = {.name = "many"};
    struct lucy_asr_options o = {.threads = 3};
    assert_int_equal(lucy_asr_lanes(&one, &o, 600, 30), 3);
    assert_int_equal(lucy_asr_lanes(&many, &o, 600, 30), 1);
    /* One lane per chunk_s of audio to recognise: a short call one lane. */
    assert_int_equal(lucy_asr_lanes(&one, &o, 65, 30), 2);
    assert_int_equal(lucy_asr_lanes(&one, &o, 12, 30), 1);
    assert_int_equal(lucy_asr_lanes(&one, &o, 0, 30), 1);
    assert_int_equal(lucy_asr_lanes(&one, &o, 12, 0), 3); /* no chunk limit */
    o.threads = 64;
    assert_int_equal(lucy_asr_lanes(&one, &o, 3600, 30), LUCY_ASR_MAX_LANES);
    o.threads = 0; /* the cores online */
    assert_true(lucy_asr_lanes(&one, &o, 3600, 30) >= 1);
    assert_int_equal(lucy_asr_lanes(NULL, &o, 3600, 30), 1);
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
        cmocka_unit_test(select_engines),
        cmocka_unit_test(check_per_job),
        cmocka_unit_test(transcript_building),
        cmocka_unit_test(segment_words),
        cmocka_unit_test(tokens_to_words),
        cmocka_unit_test(tokens_edge_cases),
        cmocka_unit_test(pocketsphinx_engine),
        cmocka_unit_test(http_engine_unreachable),
        cmocka_unit_test(chunks_at_pauses),
        cmocka_unit_test(identical_channels),
        cmocka_unit_test(one_signal_in_other_forms),
        cmocka_unit_test(merge_channels),
        cmocka_unit_test(call_channels),
        cmocka_unit_test(call_plan_labels),
        cmocka_unit_test(clamp_to_audio),
        cmocka_unit_test(call_plan_merge),
        cmocka_unit_test(lanes_share_out),
        cmocka_unit_test(lanes_for_engines),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
