/*
 * pocketsphinx.c - the `pocketsphinx` engine: CMU PocketSphinx 5prealpha
 * with Debian's pocketsphinx-en-us model (DESIGN §7). Always built.
 *
 * How it works: open() builds the decoder from PocketSphinx's own default
 * arguments (ps_default_search_args fills in the packaged en-us model), the
 * same configuration `pocketsphinx_continuous` uses. transcribe() feeds
 * the 16 kHz s16 samples exactly as `pocketsphinx_continuous -infile` does
 * (2048-sample blocks; an utterance ends when the decoder's voice activity
 * detector says speech stopped), so lucy's accuracy is the CLI's. Each
 * transcription starts from the same state as a fresh decoder: a new stream
 * (frame counter 0) and the cepstral mean put back to its initial value,
 * because live CMN would otherwise carry over from the previous file.
 *
 * Segments come from the word timings (ps_seg_iter, frames at -frate, 100
 * per second): fillers (<s>, </s>, <sil>, [NOISE], [SPEECH], ++...++) are
 * dropped, alternate pronunciations "word(2)" lose their suffix, and a new
 * segment starts at each utterance, at a pause of SEGMENT_GAP_MS between
 * words, or when a segment would pass SEGMENT_MAX_MS. Each segment keeps
 * its words with their times (DESIGN §13 Words). Silence or noise only
 * gives no segments.
 *
 * PocketSphinx logs through sphinxbase's err.c; err_set_callback (once per
 * process) sends every line to lucy_log DEBUG instead of stderr.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <pocketsphinx.h>
#include <sphinxbase/cmn.h> /* cmn_t: restored field by field (no API resets it) */
#include <sphinxbase/err.h>
#include <sphinxbase/feat.h>

#include "../error.h"
#include "../log.h"
#include "engines.h"

#define BLOCK_SAMPLES  2048  /* what pocketsphinx_continuous reads at a time */
#define SEGMENT_GAP_MS 500   /* a pause this long between words ends a segment */
#define SEGMENT_MAX_MS 15000 /* a segment never grows past this */
#define WORD_MAX_BYTES 128

struct ps_state {
    ps_decoder_t *ps;
    cmd_ln_t *config;
    mfcc_t *cmn_mean0; /* live CMN state right after ps_init: means, */
    mfcc_t *cmn_sum0;  /* running sums */
    int32 cmn_nframe0; /* and frame count */
    int frame_rate;    /* frames per second (-frate) */
};

static void ps_log(void *user_data, err_lvl_t level, const char *fmt, ...)
{
    (void)user_data;
    if (lucy_log_get_level() > LUCY_LOG_DEBUG)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (n > 0)
        lucy_log(LUCY_LOG_DEBUG, "pocketsphinx", "{s:s,s:i}", "line", line, "ps_level", (int)level);
}

static pthread_once_t ps_log_once = PTHREAD_ONCE_INIT;

static void ps_log_install(void)
{
    err_set_logfp(NULL); /* also stops the "Current configuration" dump */
    err_set_callback(ps_log, NULL);
}

static void ps_close(void *state)
{
    struct ps_state *s = state;
    if (!s)
        return;
    if (s->ps)
        ps_free(s->ps);
    if (s->config)
        cmd_ln_free_r(s->config);
    free(s->cmn_mean0);
    free(s->cmn_sum0);
    free(s);
}

/* A per-job model is an acoustic model directory (as `-hmm` takes it). */
static int ps_check_model(const char *model, char *err, size_t errlen)
{
    struct stat sb;
    if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode))
        return 0;
    snprintf(err, errlen,
             "pocketsphinx model %.200s is not a directory lucy can read: give an acoustic model "
             "directory (such as /usr/share/pocketsphinx/model/en-us/en-us), or leave \"model\" "
             "out for the packaged en-us model",
             model);
    return LUCY_EINVAL;
}

static int ps_open(const struct lucy_asr_options *opt, void **state, char *err, size_t errlen)
{
    pthread_once(&ps_log_once, ps_log_install);
    struct ps_state *s = calloc(1, sizeof *s);
    if (!s)
        return LUCY_ENOMEM;
    if (opt && opt->model && opt->model[0])
        s->config = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", opt->model, NULL);
    else
        s->config = cmd_ln_init(NULL, ps_args(), TRUE, NULL);
    if (!s->config) {
        ps_close(s);
        snprintf(err, errlen, "pocketsphinx: cannot build its configuration");
        return LUCY_ENOMEM;
    }
    ps_default_search_args(s->config);
    s->ps = ps_init(s->config);
    if (!s->ps) {
        const char *hmm = cmd_ln_str_r(s->config, "-hmm");
        snprintf(err, errlen,
                 "pocketsphinx: cannot load the model (%s); install pocketsphinx-en-us or pass "
                 "--model with an acoustic model directory",
                 hmm ? hmm : "no acoustic model");
        ps_close(s);
        return LUCY_EUNAVAIL;
    }
    s->frame_rate = (int)cmd_ln_int32_r(s->config, "-frate");
    if (s->frame_rate <= 0)
        s->frame_rate = 100;
    cmn_t *cmn = ps_get_feat(s->ps)->cmn_struct;
    if (cmn && cmn->cmn_mean && cmn->sum) {
        size_t bytes = (size_t)cmn->veclen * sizeof(mfcc_t);
        s->cmn_mean0 = malloc(bytes);
        s->cmn_sum0 = malloc(bytes);
        if (!s->cmn_mean0 || !s->cmn_sum0) {
            ps_close(s);
            return LUCY_ENOMEM;
        }
        memcpy(s->cmn_mean0, cmn->cmn_mean, bytes);
        memcpy(s->cmn_sum0, cmn->sum, bytes);
        s->cmn_nframe0 = cmn->nframe;
    }
    *state = s;
    return 0;
}

/* Segment under construction, with its words' times. */
#define SEGMENT_MAX_WORDS 512
struct seg_builder {
    char text[4096];
    size_t len;
    int64_t t0_ms, t1_ms;
    int open;
    size_t n_words;
    struct {
        size_t at, len;       /* the word's bytes in text */
        int64_t t0_ms, t1_ms; /* its times */
    } words[SEGMENT_MAX_WORDS];
};

static int seg_flush(struct seg_builder *b, struct lucy_transcript *out)
{
    int rc = 0;
    size_t before = out->n_segments;
    if (b->open && b->len > 0)
        rc = lucy_transcript_add(out, b->t0_ms, b->t1_ms, b->text, b->len);
    for (size_t i = 0; rc == 0 && out->n_segments > before && i < b->n_words; i++)
        rc = lucy_transcript_add_word(out, b->words[i].t0_ms, b->words[i].t1_ms,
                                      b->text + b->words[i].at, b->words[i].len);
    b->len = 0;
    b->open = 0;
    b->n_words = 0;
    return rc;
}

static int is_filler(const char *word)
{
    return word[0] == '<' || word[0] == '[' || strncmp(word, "++", 2) == 0;
}

/* Adds the words of the utterance just ended to segments. */
static int collect_words(struct ps_state *s, struct lucy_transcript *out)
{
    static __thread struct seg_builder b; /* ~12 KB: not on a worker's stack */
    memset(&b, 0, sizeof b);
    int rc = 0;
    for (ps_seg_t *it = ps_seg_iter(s->ps); it; it = ps_seg_next(it)) {
        const char *w = ps_seg_word(it);
        if (!w || is_filler(w))
            continue;
        int sf, ef;
        ps_seg_frames(it, &sf, &ef);
        int64_t t0_ms = (int64_t)sf * 1000 / s->frame_rate;
        int64_t t1_ms = (int64_t)(ef + 1) * 1000 / s->frame_rate;
        size_t wlen = strcspn(w, "("); /* "word(2)" -> "word" */
        if (wlen == 0 || wlen > WORD_MAX_BYTES)
            continue;
        if (b.open && (t0_ms - b.t1_ms >= SEGMENT_GAP_MS || t1_ms - b.t0_ms > SEGMENT_MAX_MS ||
                       b.len + wlen + 2 > sizeof b.text || b.n_words == SEGMENT_MAX_WORDS)) {
            if ((rc = seg_flush(&b, out)) != 0) {
                ps_seg_free(it);
                return rc;
            }
        }
        if (!b.open) {
            b.open = 1;
            b.t0_ms = t0_ms;
        }
        if (b.len > 0)
            b.text[b.len++] = ' ';
        b.words[b.n_words].at = b.len;
        b.words[b.n_words].len = wlen;
        b.words[b.n_words].t0_ms = t0_ms;
        b.words[b.n_words].t1_ms = t1_ms;
        b.n_words++;
        memcpy(b.text + b.len, w, wlen);
        b.len += wlen;
        b.text[b.len] = '\0';
        b.t1_ms = t1_ms;
    }
    return seg_flush(&b, out);
}

static const char *ps_model(void *state)
{
    const char *hmm = cmd_ln_str_r(((struct ps_state *)state)->config, "-hmm");
    return hmm ? hmm : "";
}

static int ps_transcribe(void *state, const struct lucy_pcm *pcm, struct lucy_transcript *out,
                         char *err, size_t errlen)
{
    struct ps_state *s = state;
    snprintf(out->model, sizeof out->model, "%s", ps_model(s));
    snprintf(out->language, sizeof out->language, "en");

    /* Back to a fresh decoder's state: frame 0, initial cepstral mean. */
    cmn_t *cmn = ps_get_feat(s->ps)->cmn_struct;
    if (cmn && s->cmn_mean0 && !pcm->continues) {
        size_t bytes = (size_t)cmn->veclen * sizeof(mfcc_t);
        memcpy(cmn->cmn_mean, s->cmn_mean0, bytes);
        memcpy(cmn->sum, s->cmn_sum0, bytes);
        cmn->nframe = s->cmn_nframe0;
    }
    ps_start_stream(s->ps);
    if (ps_start_utt(s->ps) < 0)
        goto fail;

    int rc = 0;
    int utt_started = 0;
    for (size_t at = 0; at < pcm->n_samples; at += BLOCK_SAMPLES) {
        size_t n = pcm->n_samples - at < BLOCK_SAMPLES ? pcm->n_samples - at : BLOCK_SAMPLES;
        if (ps_process_raw(s->ps, pcm->s16 + at, n, FALSE, FALSE) < 0)
            goto fail;
        int in_speech = ps_get_in_speech(s->ps);
        if (in_speech && !utt_started)
            utt_started = 1;
        if (!in_speech && utt_started) {
            if (ps_end_utt(s->ps) < 0)
                goto fail;
            if ((rc = collect_words(s, out)) != 0)
                return rc;
            if (ps_start_utt(s->ps) < 0)
                goto fail;
            utt_started = 0;
        }
    }
    if (ps_end_utt(s->ps) < 0)
        goto fail;
    if (utt_started && (rc = collect_words(s, out)) != 0)
        return rc;
    return lucy_transcript_join(out);

fail:
    ps_end_utt(s->ps); /* leave no utterance open for the next call */
    snprintf(err, errlen, "pocketsphinx: decoding failed (see the DEBUG log)");
    return LUCY_EIO;
}

const struct lucy_asr_engine lucy_asr_pocketsphinx = {
    .name = "pocketsphinx",
    .open = ps_open,
    .transcribe = ps_transcribe,
    .close = ps_close,
    .check_model = ps_check_model,
    .model = ps_model,
    .one_core = 1, /* a decoder is single-threaded: lanes (plan.c) spread a call */
};
