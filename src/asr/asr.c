/*
 * asr.c - the table of speech recognition engines, `auto` selection
 * (DESIGN §7) and the wrappers every caller goes through.
 *
 * Engines are rows of `engines[]`; whisper's row exists only when the
 * build found whisper.cpp (LUCY_HAVE_WHISPER). The wrappers check their
 * arguments, time the engine with CLOCK_MONOTONIC and fill the fields every
 * transcript carries (engine, audio_s, wall_s, rtf), so engines only
 * produce segments and text.
 */
#include <stdlib.h>
#include <string.h>

#include "../clock.h"
#include "../error.h"
#include "../log.h"
#include "asr.h"
#include "engines.h"

static const struct lucy_asr_engine *const engines[] = {
#ifdef LUCY_HAVE_WHISPER
    &lucy_asr_whisper,
#endif
    &lucy_asr_http,
    &lucy_asr_pocketsphinx,
};
#define N_ENGINES (sizeof engines / sizeof engines[0])

/* Open instances per row of engines[] (lucy_asr_open .. lucy_asr_close):
 * how many models this process holds, for /metrics. The count is about
 * the process's memory, so it is process-wide; atomics, any thread. */
static int n_loaded[N_ENGINES];

static int row_of(const struct lucy_asr_engine *e)
{
    for (size_t i = 0; i < N_ENGINES; i++)
        if (engines[i] == e)
            return (int)i;
    return -1;
}

static const struct lucy_asr_engine *find(const char *name)
{
    for (size_t i = 0; i < N_ENGINES; i++)
        if (strcmp(engines[i]->name, name) == 0)
            return engines[i];
    return NULL;
}

static int is_set(const char *s)
{
    return s && s[0];
}

const struct lucy_asr_engine *lucy_asr_select(const struct lucy_asr_options *opt, char *err,
                                              size_t errlen)
{
    const char *name = is_set(opt->engine) ? opt->engine : "auto";
    if (strcmp(name, "auto") == 0) {
        const struct lucy_asr_engine *w = find("whisper");
        if (w && is_set(opt->whisper_model))
            return w;
        if (is_set(opt->url))
            return &lucy_asr_http;
        return &lucy_asr_pocketsphinx;
    }
    const struct lucy_asr_engine *e = find(name);
    if (!e) {
        if (strcmp(name, "whisper") == 0)
            snprintf(err, errlen,
                     "engine whisper is not built in: install whisper.cpp (pkg-config whisper) "
                     "and rebuild, or use LUCY_ASR_ENGINE=pocketsphinx or http");
        else
            snprintf(err, errlen,
                     "unknown ASR engine '%s': use auto, pocketsphinx, whisper or http", name);
        return NULL;
    }
    if (e == &lucy_asr_http && !is_set(opt->url)) {
        snprintf(err, errlen,
                 "engine http needs LUCY_ASR_URL (an OpenAI-compatible "
                 ".../v1/audio/transcriptions endpoint)");
        return NULL;
    }
    if (strcmp(e->name, "whisper") == 0 && !is_set(opt->whisper_model) && !is_set(opt->model)) {
        snprintf(err, errlen, "engine whisper needs LUCY_WHISPER_MODEL (path to a ggml model)");
        return NULL;
    }
    return e;
}

/* Every engine name lucy knows, built in or not: an unknown name is a bad
 * request, a known one this build lacks is a missing requirement. */
static const char *const known_names[] = {"pocketsphinx", "whisper", "http"};

int lucy_asr_check(const struct lucy_asr_options *opt, const struct lucy_asr_engine **out,
                   char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    if (errlen)
        err[0] = '\0';
    if (is_set(opt->engine) && strcmp(opt->engine, "auto") != 0) {
        size_t i = 0;
        while (i < sizeof known_names / sizeof *known_names &&
               strcmp(opt->engine, known_names[i]) != 0)
            i++;
        if (i == sizeof known_names / sizeof *known_names) {
            snprintf(err, errlen,
                     "unknown engine \"%.40s\": use \"pocketsphinx\", \"whisper\" or \"http\", "
                     "or leave it out for the configured one",
                     opt->engine);
            return LUCY_EINVAL;
        }
    }
    const struct lucy_asr_engine *e = lucy_asr_select(opt, err, errlen);
    if (!e)
        return LUCY_EUNAVAIL;
    if (is_set(opt->model) && e->check_model) {
        int rc = e->check_model(opt->model, err, errlen);
        if (rc)
            return rc;
    }
    if (out)
        *out = e;
    return 0;
}

int lucy_asr_open(const struct lucy_asr_engine *e, const struct lucy_asr_options *opt, void **state,
                  char *err, size_t errlen)
{
    *state = NULL;
    if (errlen)
        err[0] = '\0';
    if (!e || !e->open)
        return LUCY_EINVAL;
    int rc = e->open(opt, state, err, errlen);
    if (rc && errlen && !err[0])
        snprintf(err, errlen, "cannot open ASR engine %s: %s", e->name, lucy_strerror(rc));
    int row = row_of(e);
    if (rc == 0 && row >= 0)
        __atomic_add_fetch(&n_loaded[row], 1, __ATOMIC_RELAXED);
    return rc;
}

int lucy_asr_transcribe(const struct lucy_asr_engine *e, void *state, const struct lucy_pcm *pcm,
                        struct lucy_transcript *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (errlen)
        err[0] = '\0';
    if (!e || !e->transcribe || !pcm)
        return LUCY_EINVAL;
    double t0 = (double)lucy_mono_ms() / 1e3;
    int rc = e->transcribe(state, pcm, out, err, errlen);
    double wall_s = (double)lucy_mono_ms() / 1e3 - t0;
    if (rc) {
        lucy_transcript_free(out);
        if (errlen && !err[0])
            snprintf(err, errlen, "%s: %s", e->name, lucy_strerror(rc));
        return rc;
    }
    if (!out->text) {
        out->text = strdup("");
        if (!out->text) {
            lucy_transcript_free(out);
            return LUCY_ENOMEM;
        }
    }
    snprintf(out->engine, sizeof out->engine, "%s", e->name);
    if (!out->language[0])
        snprintf(out->language, sizeof out->language, "en");
    out->audio_s = pcm->duration_s;
    out->wall_s = wall_s;
    out->rtf = pcm->duration_s > 0 ? wall_s / pcm->duration_s : 0;
    lucy_log(LUCY_LOG_DEBUG, "transcribed", "{s:s,s:f,s:f,s:I}", "engine", e->name, "audio_s",
             out->audio_s, "rtf", out->rtf, "segments", (json_int_t)out->n_segments);
    return 0;
}

int lucy_asr_transcribe_chunked(const struct lucy_asr_engine *e, void *state,
                                const struct lucy_pcm *pcm, int max_chunk_s,
                                struct lucy_transcript *out, char *err, size_t errlen)
{
    if (max_chunk_s <= 0)
        return lucy_asr_transcribe(e, state, pcm, out, err, errlen);
    memset(out, 0, sizeof *out);
    if (!e || !pcm)
        return LUCY_EINVAL;
    double t0 = (double)lucy_mono_ms() / 1e3;
    struct lucy_chunk *chunks = NULL;
    size_t n = 0;
    int rc = lucy_asr_chunks(pcm, max_chunk_s, &chunks, &n, err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct lucy_pcm view = lucy_pcm_view(pcm, &chunks[i]);
        view.continues = i > 0;
        struct lucy_transcript piece = {0};
        rc = lucy_asr_transcribe(e, state, &view, &piece, err, errlen);
        if (rc == 0) {
            snprintf(out->model, sizeof out->model, "%s", piece.model);
            snprintf(out->language, sizeof out->language, "%s", piece.language);
            rc = lucy_transcript_append(
                out, &piece, (int64_t)chunks[i].first_sample * 1000 / LUCY_ASR_SAMPLE_RATE, -1,
                NULL);
        }
        lucy_transcript_free(&piece);
    }
    free(chunks);
    if (rc == 0)
        rc = lucy_transcript_join(out);
    if (rc) {
        lucy_transcript_free(out);
        return rc;
    }
    snprintf(out->engine, sizeof out->engine, "%s", e->name);
    if (!out->language[0])
        snprintf(out->language, sizeof out->language, "en");
    out->audio_s = pcm->duration_s;
    out->wall_s = (double)lucy_mono_ms() / 1e3 - t0;
    out->rtf = pcm->duration_s > 0 ? out->wall_s / pcm->duration_s : 0;
    return 0;
}

void lucy_asr_close(const struct lucy_asr_engine *e, void *state)
{
    if (!e || !e->close || !state)
        return;
    e->close(state);
    int row = row_of(e);
    if (row >= 0)
        __atomic_sub_fetch(&n_loaded[row], 1, __ATOMIC_RELAXED);
}

int lucy_asr_loaded(const struct lucy_asr_engine *e)
{
    int row = row_of(e);
    return row >= 0 ? __atomic_load_n(&n_loaded[row], __ATOMIC_RELAXED) : 0;
}

void lucy_asr_metrics(void *arg, FILE *out)
{
    (void)arg;
    fprintf(out, "# HELP lucy_asr_model_loaded 1 while a speech recognition model of the engine "
                 "is in memory (loaded on the first job, unloaded after LUCY_ASR_IDLE_UNLOAD_S).\n"
                 "# TYPE lucy_asr_model_loaded gauge\n");
    for (size_t i = 0; i < N_ENGINES; i++)
        fprintf(out, "lucy_asr_model_loaded{engine=\"%s\"} %d\n", engines[i]->name,
                lucy_asr_loaded(engines[i]) > 0);
    fprintf(out, "# HELP lucy_asr_instances_loaded Engine instances holding a model (one per "
                 "busy or recently busy worker).\n# TYPE lucy_asr_instances_loaded gauge\n");
    for (size_t i = 0; i < N_ENGINES; i++)
        fprintf(out, "lucy_asr_instances_loaded{engine=\"%s\"} %d\n", engines[i]->name,
                lucy_asr_loaded(engines[i]));
}

void lucy_transcript_free(struct lucy_transcript *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_segments; i++) {
        struct lucy_segment *seg = &t->segments[i];
        for (size_t w = 0; w < seg->n_words; w++)
            free(seg->words[w].text);
        free(seg->words);
        free(seg->text);
    }
    free(t->segments);
    free(t->text);
    t->segments = NULL;
    t->n_segments = 0;
    t->text = NULL;
}

/* text[0..*len) without surrounding white space: the new start and *len. */
static const char *trim(const char *text, size_t *len)
{
    size_t n = *len;
    while (n > 0 && (text[0] == ' ' || text[0] == '\t' || text[0] == '\n' || text[0] == '\r')) {
        text++;
        n--;
    }
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t' || text[n - 1] == '\n' ||
                     text[n - 1] == '\r'))
        n--;
    *len = n;
    return text;
}

int lucy_transcript_add(struct lucy_transcript *t, int64_t t0_ms, int64_t t1_ms, const char *text,
                        size_t text_len)
{
    text = trim(text, &text_len);
    if (text_len == 0)
        return 0;
    char *copy = strndup(text, text_len);
    if (!copy)
        return LUCY_ENOMEM;
    struct lucy_segment *segs = realloc(t->segments, (t->n_segments + 1) * sizeof *segs);
    if (!segs) {
        free(copy);
        return LUCY_ENOMEM;
    }
    t->segments = segs;
    segs[t->n_segments++] = (struct lucy_segment){
        .t0_ms = t0_ms,
        .t1_ms = t1_ms < t0_ms ? t0_ms : t1_ms,
        .text = copy,
        .channel = -1,
    };
    return 0;
}

static int64_t clamp_ms(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

int lucy_segment_add_word(struct lucy_segment *seg, int64_t t0_ms, int64_t t1_ms, const char *text,
                          size_t text_len)
{
    text = trim(text, &text_len);
    if (text_len == 0)
        return 0;
    int64_t lo = seg->n_words ? seg->words[seg->n_words - 1].t0_ms : seg->t0_ms;
    t0_ms = clamp_ms(t0_ms, lo, seg->t1_ms);
    t1_ms = clamp_ms(t1_ms, t0_ms, seg->t1_ms);
    char *copy = strndup(text, text_len);
    if (!copy)
        return LUCY_ENOMEM;
    struct lucy_word *words = realloc(seg->words, (seg->n_words + 1) * sizeof *words);
    if (!words) {
        free(copy);
        return LUCY_ENOMEM;
    }
    seg->words = words;
    words[seg->n_words++] = (struct lucy_word){t0_ms, t1_ms, copy};
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The token text[0..len) (trimmed, non-empty) appended to seg's last word,
 * whose end moves to t1_ms if later, within the segment. */
static int continue_word(struct lucy_segment *seg, const char *text, size_t len, int64_t t1_ms)
{
    struct lucy_word *w = &seg->words[seg->n_words - 1];
    size_t have = strlen(w->text);
    char *grown = realloc(w->text, have + len + 1);
    if (!grown)
        return LUCY_ENOMEM;
    memcpy(grown + have, text, len);
    grown[have + len] = '\0';
    w->text = grown;
    w->t1_ms = clamp_ms(t1_ms, w->t1_ms, seg->t1_ms); /* never earlier, never past seg */
    return 0;
}

int lucy_segment_add_tokens(struct lucy_segment *seg, const struct lucy_token *tok, size_t n)
{
    int boundary = 1; /* the next token starts a word whatever its text */
    for (size_t i = 0; i < n; i++) {
        const char *text = tok[i].text;
        size_t len = text ? strlen(text) : 0;
        if (len == 0)
            continue;
        int starts = boundary || is_space(text[0]) || seg->n_words == 0;
        boundary = is_space(text[len - 1]); /* " " alone, too: a gap between words */
        int rc;
        if (starts) {
            rc = lucy_segment_add_word(seg, tok[i].t0_ms, tok[i].t1_ms, text, len);
        } else {
            const char *piece = trim(text, &len); /* trailing white space only */
            rc = continue_word(seg, piece, len, tok[i].t1_ms);
        }
        if (rc)
            return rc;
    }
    return 0;
}

int lucy_transcript_add_word(struct lucy_transcript *t, int64_t t0_ms, int64_t t1_ms,
                             const char *text, size_t text_len)
{
    if (t->n_segments == 0)
        return LUCY_EINVAL;
    return lucy_segment_add_word(&t->segments[t->n_segments - 1], t0_ms, t1_ms, text, text_len);
}

int lucy_transcript_append(struct lucy_transcript *dst, struct lucy_transcript *src,
                           int64_t offset_ms, int channel, const char *speaker)
{
    if (src->n_segments == 0)
        return 0;
    struct lucy_segment *segs =
        realloc(dst->segments, (dst->n_segments + src->n_segments) * sizeof *segs);
    if (!segs)
        return LUCY_ENOMEM;
    dst->segments = segs;
    for (size_t i = 0; i < src->n_segments; i++) {
        struct lucy_segment s = src->segments[i];
        s.t0_ms += offset_ms;
        s.t1_ms += offset_ms;
        for (size_t w = 0; w < s.n_words; w++) {
            s.words[w].t0_ms += offset_ms;
            s.words[w].t1_ms += offset_ms;
        }
        s.channel = channel;
        s.speaker = speaker;
        segs[dst->n_segments++] = s;
    }
    free(src->segments);
    src->segments = NULL;
    src->n_segments = 0;
    return 0;
}

static int segment_cmp(const void *a, const void *b)
{
    const struct lucy_segment *x = a, *y = b;
    if (x->t0_ms != y->t0_ms)
        return x->t0_ms < y->t0_ms ? -1 : 1;
    return (x->channel > y->channel) - (x->channel < y->channel);
}

void lucy_transcript_sort(struct lucy_transcript *t)
{
    /* Insertion sort: stable (qsort is not), and linear on what it gets -
     * two runs already in time order, one per channel. */
    for (size_t i = 1; i < t->n_segments; i++) {
        struct lucy_segment s = t->segments[i];
        size_t j = i;
        while (j > 0 && segment_cmp(&t->segments[j - 1], &s) > 0) {
            t->segments[j] = t->segments[j - 1];
            j--;
        }
        t->segments[j] = s;
    }
}

int lucy_transcript_join(struct lucy_transcript *t)
{
    size_t len = 1;
    for (size_t i = 0; i < t->n_segments; i++)
        len += strlen(t->segments[i].text) + 1;
    char *text = malloc(len);
    if (!text)
        return LUCY_ENOMEM;
    char *p = text;
    for (size_t i = 0; i < t->n_segments; i++) {
        size_t n = strlen(t->segments[i].text);
        if (i > 0)
            *p++ = ' ';
        memcpy(p, t->segments[i].text, n);
        p += n;
    }
    *p = '\0';
    free(t->text);
    t->text = text;
    return 0;
}
