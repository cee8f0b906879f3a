/*
 * transcribe.c - `lucy transcribe FILE [--engine NAME] [--model PATH]
 * [--chunk-s N] [--channels me,them|them,me|mix] [--json]` (DESIGN §3):
 * decode one audio file, run one ASR engine on it chunk by chunk (cut at
 * pauses, at most LUCY_ASR_CHUNK_S or --chunk-s seconds; 0 = the whole
 * file at once, DESIGN §13), print the transcript.
 *
 * A stereo file is transcribed as the daemon transcribes a call (the same
 * code, src/asr/channels.c): each channel apart, labelled with who is on
 * it by --channels, else LUCY_CALL_CHANNELS (default me,them: the phone's
 * user on the left), and merged in time order; `mix` (and a file whose
 * channels are identical, or mono) gives one channel without speakers.
 *
 * Plain output is one line per segment, "[t0 → t1] text" with times as
 * m:ss.mmm, "[t0 → t1] me: text" when the segment has a speaker; --json
 * prints {engine, model, language, duration_s, rtf, wall_s, channels,
 * text, segments:[{t0_ms, t1_ms, text, speaker, channel, words?:[{t0_ms,
 * t1_ms, text}]}]} (speaker "me"/"them" and channel 0/1 for a per-channel
 * file, both null otherwise, as the API's segments; words where the
 * engine gives word timings; plus truncated/source_duration_s when the
 * file decodes to less than its container says). The engine comes from
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

static int print_json(const struct lucy_transcript *t)
{
    json_t *segments = json_array();
    for (size_t i = 0; i < t->n_segments; i++) {
        const struct lucy_segment *seg = &t->segments[i];
        /* null speaker and channel for mono, as the API's segments. */
        json_t *js = json_pack("{s:I,s:I,s:s,s:o,s:o}", "t0_ms", (json_int_t)seg->t0_ms, "t1_ms",
                               (json_int_t)seg->t1_ms, "text", seg->text, "speaker",
                               seg->speaker ? json_string(seg->speaker) : json_null(), "channel",
                               seg->channel >= 0 ? json_integer(seg->channel) : json_null());
        json_t *words = seg->n_words ? json_array() : NULL; /* only where the engine gave them */
        for (size_t j = 0; words && j < seg->n_words; j++)
            json_array_append_new(
                words, json_pack("{s:I,s:I,s:s}", "t0_ms", (json_int_t)seg->words[j].t0_ms, "t1_ms",
                                 (json_int_t)seg->words[j].t1_ms, "text", seg->words[j].text));
        if (words)
            json_object_set_new(js, "words", words);
        json_array_append_new(segments, js);
    }
    json_t *root =
        json_pack("{s:s,s:s,s:s,s:f,s:f,s:f,s:i,s:s,s:o}", "engine", t->engine, "model", t->model,
                  "language", t->language, "duration_s", t->audio_s, "rtf", t->rtf, "wall_s",
                  t->wall_s, "channels", t->channels, "text", t->text, "segments", segments);
    if (!root)
        return LUCY_EXIT_FAILED;
    if (t->truncated) {
        json_object_set_new(root, "truncated", json_true());
        json_object_set_new(root, "source_duration_s", json_real(t->source_duration_s));
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
        const char *who = t->segments[i].speaker;
        printf("[%s \u2192 %s] %s%s%s\n", t0, t1, who ? who : "", who ? ": " : "",
               t->segments[i].text);
    }
}

/* The chunk hook of a transcription without checkpoints: every chunk is
 * recognised now, by its lane's engine instance. */
struct cli_engine {
    const struct lucy_asr_engine *engine;
    void *state[LUCY_ASR_MAX_LANES]; /* one per lane opened */
};

static int cli_chunk(void *arg, int lane, const struct lucy_asr_track *t,
                     const struct lucy_chunk *c, int continues, struct lucy_transcript *piece,
                     int *fresh, char *err, size_t errlen)
{
    struct cli_engine *e = arg;
    *fresh = 1;
    return lucy_asr_recognise_chunk(e->engine, e->state[lane], t, c, continues, piece, err, errlen);
}

/* Opens lane 0's engine instance (its failure is the command's) and as
 * many more as lucy_asr_lanes allows, the plan has chunks for and memory
 * has room for (lucy_asr_room_for_lane); an extra one that does not open
 * only means fewer lanes, said on stderr. Returns the lanes open (0 =
 * lane 0 failed, err says why). */
static int open_lanes(struct cli_engine *e, const struct lucy_asr_options *opt,
                      const struct lucy_asr_plan *plan, int chunk_s, char *err, size_t errlen)
{
    int want = lucy_asr_lanes(e->engine, opt, plan->total_s, chunk_s);
    if (want > plan->n_chunks)
        want = plan->n_chunks > 0 ? plan->n_chunks : 1;
    if (lucy_asr_open(e->engine, opt, &e->state[0], err, errlen) != 0)
        return 0;
    int n = 1;
    for (; n < want; n++) {
        char why[512];
        if (!lucy_asr_room_for_lane(why, sizeof why) ||
            lucy_asr_open(e->engine, opt, &e->state[n], why, sizeof why) != 0) {
            fprintf(stderr, "lucy: recognising on %d lane%s, not %d: %s\n", n, n == 1 ? "" : "s",
                    want, why);
            break;
        }
    }
    return n;
}

/* "me,them, them,me or mix" from lucy_asr_channels_names. */
static void channel_choices(char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; lucy_asr_channels_names[i]; i++) {
        size_t used = strlen(buf);
        const char *sep = i == 0 ? "" : lucy_asr_channels_names[i + 1] ? ", " : " or ";
        snprintf(buf + used, len - used, "%s%s", sep, lucy_asr_channels_names[i]);
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
                       "[--model PATH] [--chunk-s N] [--channels me,them|them,me|mix] [--json]");
        lucy_config_free(&cfg);
        return LUCY_EXIT_USAGE;
    }
    int chunk_s = cfg.asr_chunk_s;
    if (o.chunk_s) {
        char *end;
        long v = strtol(o.chunk_s, &end, 10);
        if (!*o.chunk_s || *end || (v != 0 && (v < 5 || v > 600))) {
            lucy_cmd_error("--chunk-s takes 5 to 600 seconds, as LUCY_ASR_CHUNK_S, or 0 (the "
                           "whole file at once, for comparison)");
            lucy_config_free(&cfg);
            return LUCY_EXIT_USAGE;
        }
        chunk_s = (int)v;
    }
    /* --channels is LUCY_CALL_CHANNELS's flag (config.c), checked with the
     * rest of the configuration; it wins over the environment's. */
    struct lucy_asr_channels channels;
    if (lucy_asr_channels_parse(cfg.call_channels, &channels) != 0) {
        char choices[64];
        channel_choices(choices, sizeof choices);
        lucy_cmd_error("--channels takes %s (who is on a stereo file's left,right channel; mix: "
                       "one channel without speakers)",
                       choices);
        lucy_config_free(&cfg);
        return LUCY_EXIT_USAGE;
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

    struct lucy_audio audio = {0};
    struct lucy_asr_plan plan = {0};
    struct lucy_transcript t = {0};
    struct cli_engine run = {.engine = engine};
    rc = LUCY_EXIT_FAILED;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lucy_cmd_error("cannot open %s: %s", file, strerror(errno));
        goto out;
    }
    int ret = lucy_audio_decode_call_fd(fd, file, &channels, &audio, err, sizeof err);
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
    if (lucy_asr_plan_make(&audio, &channels, chunk_s, &plan, err, sizeof err) != 0) {
        lucy_cmd_error("cutting %s at its pauses failed: %s", file, err);
        goto out;
    }
    int n_lanes = open_lanes(&run, &aopt, &plan, chunk_s, err, sizeof err);
    if (n_lanes == 0) {
        lucy_cmd_error("%s", err);
        goto out;
    }
    struct lucy_asr_run how = {.fn = cli_chunk, .arg = &run, .n_lanes = n_lanes};
    if (lucy_asr_transcribe_plan(&plan, engine->name, &how, &t, err, sizeof err) != 0) {
        lucy_cmd_error("transcription of %s failed: %s", file, err);
        goto out;
    }
    if (!t.model[0]) /* all silence: no chunk named the model */
        snprintf(t.model, sizeof t.model, "%s", lucy_asr_model(engine, run.state[0]));
    if (o.json) {
        rc = print_json(&t);
    } else {
        print_text(&t);
        rc = LUCY_EXIT_OK;
    }
out:
    lucy_transcript_free(&t);
    for (int k = 0; k < LUCY_ASR_MAX_LANES; k++)
        lucy_asr_close(engine, run.state[k]);
    lucy_asr_plan_free(&plan);
    lucy_audio_free(&audio);
    lucy_config_free(&cfg);
    return rc;
}
