/*
 * transcribe.c - `lucy transcribe FILE [--engine NAME] [--model PATH]
 * [--chunk-s N] [--json]` (DESIGN §3): decode one audio file, run one ASR
 * engine on it chunk by chunk (cut at pauses, at most LUCY_ASR_CHUNK_S or
 * --chunk-s seconds; 0 = the whole file at once, DESIGN §13), print the
 * transcript.
 *
 * Plain output is one line per segment, "[t0 → t1] text" with times as
 * m:ss.mmm; --json prints {engine, model, language, duration_s, rtf, text,
 * segments:[{t0_ms, t1_ms, text, words?:[{t0_ms, t1_ms, text}]}]} (words
 * where the engine gives word timings; plus truncated/source_duration_s when
 * the file decodes to less than its container says). The engine comes from
 * --engine, else LUCY_ASR_ENGINE (default auto, DESIGN §7).
 *
 * Exit codes: 0 transcribed (also when there is no speech: empty text),
 * 1 the file cannot be opened or decoded or the engine failed (one line on
 * stderr saying what and what to do), 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "../asr/asr.h"
#include "../config.h"
#include "../error.h"
#include "cmd.h"

struct opts {
    const char *engine;  /* --engine */
    const char *model;   /* --model */
    const char *chunk_s; /* --chunk-s: longest chunk, 0 = the whole file at once */
    int json;            /* --json */
};

static int own_flag(const char *arg, const char *next, void *state)
{
    struct opts *o = state;
    static const struct {
        const char *flag;
        size_t offset; /* of the const char * in struct opts */
    } valued[] = {
        {"--engine", offsetof(struct opts, engine)},
        {"--model", offsetof(struct opts, model)},
        {"--chunk-s", offsetof(struct opts, chunk_s)},
    };
    for (size_t i = 0; i < sizeof valued / sizeof valued[0]; i++) {
        if (strcmp(arg, valued[i].flag) != 0)
            continue;
        if (!next) {
            lucy_cmd_error("%s needs a value; see `lucy help`", arg);
            return -1;
        }
        *(const char **)((char *)o + valued[i].offset) = next;
        return 2;
    }
    if (strcmp(arg, "--json") == 0) {
        o->json = 1;
        return 1;
    }
    return 0;
}

/* "m:ss.mmm" */
static void fmt_time(int64_t ms, char *buf, size_t len)
{
    snprintf(buf, len, "%lld:%02lld.%03lld", (long long)(ms / 60000), (long long)(ms / 1000 % 60),
             (long long)(ms % 1000));
}

static int print_json(const struct lucy_transcript *t, const struct lucy_pcm *pcm)
{
    json_t *segments = json_array();
    for (size_t i = 0; i < t->n_segments; i++) {
        const struct lucy_segment *seg = &t->segments[i];
        json_t *js = json_pack("{s:I,s:I,s:s}", "t0_ms", (json_int_t)seg->t0_ms, "t1_ms",
                               (json_int_t)seg->t1_ms, "text", seg->text);
        json_t *words = seg->n_words ? json_array() : NULL; /* only where the engine gave them */
        for (size_t j = 0; words && j < seg->n_words; j++)
            json_array_append_new(
                words, json_pack("{s:I,s:I,s:s}", "t0_ms", (json_int_t)seg->words[j].t0_ms, "t1_ms",
                                 (json_int_t)seg->words[j].t1_ms, "text", seg->words[j].text));
        if (words)
            json_object_set_new(js, "words", words);
        json_array_append_new(segments, js);
    }
    json_t *root = json_pack("{s:s,s:s,s:s,s:f,s:f,s:f,s:s,s:o}", "engine", t->engine, "model",
                             t->model, "language", t->language, "duration_s", t->audio_s, "rtf",
                             t->rtf, "wall_s", t->wall_s, "text", t->text, "segments", segments);
    if (!root)
        return LUCY_EXIT_FAILED;
    if (pcm->truncated) {
        json_object_set_new(root, "truncated", json_true());
        json_object_set_new(root, "source_duration_s", json_real(pcm->source_duration_s));
    }
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(6));
    json_decref(root);
    if (!text)
        return LUCY_EXIT_FAILED;
    puts(text);
    free(text);
    return LUCY_EXIT_OK;
}

static void print_text(const struct lucy_transcript *t)
{
    if (t->n_segments == 0)
        printf("(no speech)\n");
    for (size_t i = 0; i < t->n_segments; i++) {
        char t0[32], t1[32];
        fmt_time(t->segments[i].t0_ms, t0, sizeof t0);
        fmt_time(t->segments[i].t1_ms, t1, sizeof t1);
        printf("[%s \u2192 %s] %s\n", t0, t1, t->segments[i].text);
    }
}

int lucy_cmd_transcribe(int argc, char **argv)
{
    struct lucy_config cfg;
    struct opts o = {0};
    const char *file = NULL;
    int n_pos = 0;
    int rc = lucy_cmd_config(&cfg, argc, argv, own_flag, &o, &file, 1, &n_pos);
    if (rc) {
        lucy_config_free(&cfg);
        return rc;
    }
    if (n_pos != 1) {
        lucy_cmd_error("transcribe needs a FILE: lucy transcribe FILE [--engine NAME] "
                       "[--model PATH] [--json]");
        lucy_config_free(&cfg);
        return LUCY_EXIT_USAGE;
    }
    int chunk_s = cfg.asr_chunk_s;
    if (o.chunk_s) {
        char *end;
        long v = strtol(o.chunk_s, &end, 10);
        if (!*o.chunk_s || *end || v < 0 || v > 600) {
            lucy_cmd_error("--chunk-s takes 0 (the whole file at once) to 600 seconds");
            lucy_config_free(&cfg);
            return LUCY_EXIT_USAGE;
        }
        chunk_s = (int)v;
    }
    struct lucy_asr_options aopt = {
        .engine = o.engine ? o.engine : cfg.asr_engine,
        .whisper_model = cfg.whisper_model,
        .url = cfg.asr_url,
        .threads = cfg.asr_threads,
        .model = o.model,
    };
    char err[1024];
    const struct lucy_asr_engine *engine = lucy_asr_select(&aopt, err, sizeof err);
    if (!engine) {
        lucy_cmd_error("%s", err);
        lucy_config_free(&cfg);
        return o.engine ? LUCY_EXIT_USAGE : LUCY_EXIT_FAILED;
    }

    struct lucy_pcm pcm = {0};
    struct lucy_transcript t = {0};
    void *state = NULL;
    rc = LUCY_EXIT_FAILED;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lucy_cmd_error("cannot open %s: %s", file, strerror(errno));
        goto out;
    }
    int ret = lucy_audio_decode_fd(fd, file, &pcm, err, sizeof err);
    close(fd);
    if (ret == LUCY_ECORRUPT) {
        lucy_cmd_error("%s is not decodable audio: %s", file, err);
        goto out;
    }
    if (ret == LUCY_ELOCKED) {
        lucy_cmd_error("%s; the file is held by another process (a sync client?), try again "
                       "later",
                       err);
        goto out;
    }
    if (ret) {
        lucy_cmd_error("%s", err);
        goto out;
    }
    /* A truncated or over-long file: the decoder has logged its WARNING
     * (path, decoded and container seconds); saying it again here printed
     * every such warning twice. */
    if (lucy_asr_open(engine, &aopt, &state, err, sizeof err) != 0) {
        lucy_cmd_error("%s", err);
        goto out;
    }
    if (lucy_asr_transcribe_chunked(engine, state, &pcm, chunk_s, &t, err, sizeof err) != 0) {
        lucy_cmd_error("transcription of %s failed: %s", file, err);
        goto out;
    }
    if (o.json) {
        rc = print_json(&t, &pcm);
    } else {
        print_text(&t);
        rc = LUCY_EXIT_OK;
    }
out:
    lucy_transcript_free(&t);
    lucy_asr_close(engine, state);
    lucy_pcm_free(&pcm);
    lucy_config_free(&cfg);
    return rc;
}
