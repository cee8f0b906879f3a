/*
 * asr.c - the table of speech recognition engines, `auto` selection
 * (DESIGN §7) and the calls every caller goes through. Part of the media
 * module (src/media): callers use the lucy_asr_* names of asr.h, which
 * hold the module for the call.
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
#include "../media/media.h"
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

const struct lucy_asr_engine *lucy_media_asr_select(const struct lucy_asr_options *opt, char *err,
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

int lucy_media_asr_check(const struct lucy_asr_options *opt, const struct lucy_asr_engine **out,
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
    const struct lucy_asr_engine *e = lucy_media_asr_select(opt, err, errlen);
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

int lucy_media_asr_open(const struct lucy_asr_engine *e, const struct lucy_asr_options *opt,
                        void **state, char *err, size_t errlen)
{
    *state = NULL;
    if (errlen)
        err[0] = '\0';
    if (!e || !e->open)
        return LUCY_EINVAL;
    int rc = e->open(opt, state, err, errlen);
    if (rc && errlen && !err[0])
        snprintf(err, errlen, "cannot open ASR engine %s: %s", e->name, lucy_strerror(rc));
    return rc;
}

int lucy_media_asr_transcribe(const struct lucy_asr_engine *e, void *state,
                              const struct lucy_pcm *pcm, struct lucy_transcript *out, char *err,
                              size_t errlen)
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
    /* Times inside the audio given, whatever the engine said. */
    lucy_transcript_clamp(out, (int64_t)pcm->n_samples * 1000 / LUCY_ASR_SAMPLE_RATE);
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

const char *lucy_media_asr_model(const struct lucy_asr_engine *e, void *state)
{
    return e && e->model && state ? e->model(state) : "";
}

void lucy_media_asr_close(const struct lucy_asr_engine *e, void *state)
{
    if (e && e->close && state)
        e->close(state);
}
