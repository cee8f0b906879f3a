/*
 * whisper.c - the `whisper` engine: whisper.cpp (DESIGN §7). Compiled only
 * when pkg-config finds `whisper` (>= 1.5, the release that introduced
 * whisper_context_params and whisper_log_set); meson then defines
 * LUCY_HAVE_WHISPER.
 *
 * How it works: open() loads the ggml model named by --model or
 * LUCY_WHISPER_MODEL into one context; transcribe() runs whisper_full()
 * with greedy sampling on the 16 kHz float samples and reads the segments.
 * whisper.cpp gives segment times in centiseconds (10 ms): they are
 * converted to milliseconds here. Language is detected ("auto") and
 * reported. Segments that are only a bracketed marker ("[BLANK_AUDIO]")
 * are dropped, so silence gives no segments as with the other engines.
 * Progress/real-time printing is off and whisper.cpp's log is routed to
 * lucy_log DEBUG (no per-call chatter such as "FP16 is not supported on
 * CPU").
 *
 * Words (DESIGN §13) come from token-level timestamps (token_timestamps:
 * each token's t0/t1, in centiseconds too): a segment's text tokens are
 * joined into words by lucy_segment_add_tokens (asr.c), the rule the http
 * engine applies to whisper.cpp's server - a token starting with a space
 * starts a word (" Hel" + "lo" + ",") - and clamped into their segment.
 *
 * whisper_full() is not thread-safe on one context; an engine instance is
 * used by one worker at a time (asr.h), so one context per instance.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <whisper.h>

#include "../error.h"
#include "../log.h"
#include "engines.h"

struct whisper_state_lucy {
    struct whisper_context *ctx;
    char model[256];
    int threads;
};

static void whisper_log(enum ggml_log_level level, const char *text, void *user_data)
{
    (void)user_data;
    if (lucy_log_get_level() > LUCY_LOG_DEBUG || !text)
        return;
    size_t n = strcspn(text, "\n");
    lucy_log(LUCY_LOG_DEBUG, "whisper", "{s:s%,s:i}", "line", text, n, "whisper_level", (int)level);
}

static pthread_once_t whisper_log_once = PTHREAD_ONCE_INIT;

static void whisper_log_install(void)
{
    whisper_log_set(whisper_log, NULL);
}

static void w_close(void *state)
{
    struct whisper_state_lucy *s = state;
    if (!s)
        return;
    if (s->ctx)
        whisper_free(s->ctx);
    free(s);
}

/* A per-job model is a ggml model file. */
static int w_check_model(const char *model, char *err, size_t errlen)
{
    struct stat sb;
    if (stat(model, &sb) == 0 && S_ISREG(sb.st_mode))
        return 0;
    snprintf(err, errlen,
             "whisper model %.200s is not a file lucy can read: give the path of a ggml model "
             "(as LUCY_WHISPER_MODEL takes it), or leave \"model\" out for LUCY_WHISPER_MODEL",
             model);
    return LUCY_EINVAL;
}

static int w_open(const struct lucy_asr_options *opt, void **state, char *err, size_t errlen)
{
    pthread_once(&whisper_log_once, whisper_log_install);
    const char *model = opt->model && opt->model[0] ? opt->model : opt->whisper_model;
    if (!model || !model[0]) {
        snprintf(err, errlen, "engine whisper needs LUCY_WHISPER_MODEL (path to a ggml model)");
        return LUCY_EINVAL;
    }
    struct whisper_state_lucy *s = calloc(1, sizeof *s);
    if (!s)
        return LUCY_ENOMEM;
    snprintf(s->model, sizeof s->model, "%s", model);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    s->threads = opt->threads > 0 ? opt->threads : (cores > 0 ? (int)cores : 1);
    struct whisper_context_params cparams = whisper_context_default_params();
    s->ctx = whisper_init_from_file_with_params(model, cparams);
    if (!s->ctx) {
        snprintf(err, errlen,
                 "whisper: cannot load the model %s; check LUCY_WHISPER_MODEL names a ggml model "
                 "file",
                 model);
        w_close(s);
        return LUCY_EUNAVAIL;
    }
    *state = s;
    return 0;
}

/* whisper.cpp's markers for audio without words: "[BLANK_AUDIO]",
 * "(silence)", "[Music]" - a whole segment in brackets. */
static int is_non_speech_marker(const char *text)
{
    text += strspn(text, " ");
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == ' ')
        n--;
    return n >= 2 &&
           ((text[0] == '[' && text[n - 1] == ']') || (text[0] == '(' && text[n - 1] == ')'));
}

/* Segment i's text tokens (special ones - timestamps, <|endoftext|> -
 * have ids from whisper_token_eot() up, and are left out) with their
 * token-level times, joined into the words of seg (lucy_segment_add_tokens,
 * the rule the http engine applies to whisper.cpp's server). 0 or
 * LUCY_ENOMEM. */
static int add_words(struct whisper_context *ctx, int i, struct lucy_segment *seg)
{
    int n = whisper_full_n_tokens(ctx, i);
    if (n <= 0)
        return 0;
    struct lucy_token *tok = calloc((size_t)n, sizeof *tok);
    if (!tok)
        return LUCY_ENOMEM;
    whisper_token eot = whisper_token_eot(ctx);
    size_t k = 0;
    for (int j = 0; j < n; j++) {
        whisper_token_data d = whisper_full_get_token_data(ctx, i, j);
        if (d.id >= eot)
            continue;
        tok[k++] = (struct lucy_token){d.t0 * 10, d.t1 * 10, /* centiseconds */
                                       whisper_full_get_token_text(ctx, i, j)};
    }
    int rc = lucy_segment_add_tokens(seg, tok, k);
    free(tok);
    return rc;
}

static int w_transcribe(void *state, const struct lucy_pcm *pcm, struct lucy_transcript *out,
                        char *err, size_t errlen)
{
    struct whisper_state_lucy *s = state;
    snprintf(out->model, sizeof out->model, "%s", s->model);
    struct whisper_full_params p = whisper_full_default_params(WHISPER_SAMPLING_GREEDY);
    p.language = "auto";
    p.n_threads = s->threads;
    p.print_progress = false;
    p.print_realtime = false;
    p.print_special = false;
    p.print_timestamps = false;
    p.token_timestamps = true; /* each token's t0/t1: the segments' words */
    if (whisper_full(s->ctx, p, pcm->f32, (int)pcm->n_samples) != 0) {
        snprintf(err, errlen, "whisper: transcription failed (see the DEBUG log)");
        return LUCY_EIO;
    }
    int n = whisper_full_n_segments(s->ctx);
    for (int i = 0; i < n; i++) {
        const char *text = whisper_full_get_segment_text(s->ctx, i);
        if (text && is_non_speech_marker(text))
            continue;
        int64_t t0_ms = whisper_full_get_segment_t0(s->ctx, i) * 10; /* centiseconds */
        int64_t t1_ms = whisper_full_get_segment_t1(s->ctx, i) * 10;
        size_t before = out->n_segments;
        int rc = text ? lucy_transcript_add(out, t0_ms, t1_ms, text, strlen(text)) : 0;
        if (rc == 0 && out->n_segments > before)
            rc = add_words(s->ctx, i, &out->segments[before]);
        if (rc)
            return rc;
    }
    const char *lang = whisper_lang_str(whisper_full_lang_id(s->ctx));
    if (lang)
        snprintf(out->language, sizeof out->language, "%s", lang);
    return lucy_transcript_join(out);
}

static const char *w_model(void *state)
{
    return ((struct whisper_state_lucy *)state)->model;
}

const struct lucy_asr_engine lucy_asr_whisper = {
    .name = "whisper",
    .open = w_open,
    .transcribe = w_transcribe,
    .close = w_close,
    .check_model = w_check_model,
    .model = w_model,
};
