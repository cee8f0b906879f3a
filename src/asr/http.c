/*
 * http.c - the `http` engine: any OpenAI-compatible transcription server
 * (DESIGN §7): whisper.cpp's server, faster-whisper servers, hosted APIs.
 *
 * How it works: the 16 kHz mono samples are written as a WAV file by
 * libavformat's wav muxer into a memory buffer (bit-exact: a plain 44-byte
 * header, no encoder tag), posted to LUCY_ASR_URL with libcurl's MIME API
 * as multipart/form-data fields `file`, `model`,
 * `response_format=verbose_json` and `timestamp_granularities[]` `segment`
 * and `word` - the request of OpenAI's POST /v1/audio/transcriptions - and
 * the answer's `segments[]` (`start`, `end` in seconds, `text`) are parsed
 * with jansson. An answer with text but no segments becomes one segment
 * over the whole audio. The answer's `words[]` (`word`, `start`, `end`:
 * one list for the whole audio) go to the segment their middle falls in,
 * clamped into it (lucy_segment_add_word). Both granularities are asked
 * for: OpenAI leaves `segments` out when only `word` is asked. whisper.cpp's
 * server instead puts `words` (its tokens, " for" + "ward") in each
 * segment; those are joined back into words by lucy_segment_add_tokens
 * (asr.c), the rule whisper.c uses too.
 *
 * Every call goes through lucy_http_client_perform() (http/client.h) with
 * a connect timeout, a total timeout that grows with the audio's length, a
 * stall limit and a cap on the answer's size. A non-200 answer is
 * LUCY_EUNAVAIL with the server's own message (OpenAI's
 * {"error":{"message"}}, or `message`/`detail`, or the start of the body).
 * One CURL handle per engine instance, so connections are reused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>

#include "../error.h"
#include "../http/client.h"
#include "../http/libcurl.h"
#include "../log.h"
#include "engines.h"

#define DEFAULT_MODEL       "whisper-1"
#define CONNECT_TIMEOUT_MS  10000L
#define BASE_TIMEOUT_S      60.0 /* plus TIMEOUT_PER_AUDIO_S per second of audio */
#define TIMEOUT_PER_AUDIO_S 3.0
#define MAX_TIMEOUT_S       3600.0
#define STALL_BYTES_PER_S   1L /* below this for STALL_S: the server hung */
#define STALL_S             300L
#define MAX_RESPONSE_BYTES  (16u * 1024 * 1024)

struct http_state {
    const struct lucy_libcurl *cu; /* libcurl's functions */
    CURL *curl;                    /* this instance's handle: its connections are reused */
    char *url;                     /* LUCY_ASR_URL */
    char *model;                   /* the `model` field sent */
};

static void http_close(void *state)
{
    struct http_state *s = state;
    if (!s)
        return;
    if (s->curl)
        s->cu->easy_cleanup(s->curl);
    free(s->url);
    free(s->model);
    free(s);
}

static int http_open(const struct lucy_asr_options *opt, void **state, char *err, size_t errlen)
{
    if (!opt || !opt->url || !opt->url[0]) {
        snprintf(err, errlen, "engine http needs LUCY_ASR_URL");
        return LUCY_EINVAL;
    }
    const struct lucy_libcurl *cu = lucy_libcurl();
    if (!cu) {
        snprintf(err, errlen, "engine http: %s", lucy_libcurl_error());
        return LUCY_EUNAVAIL;
    }
    struct http_state *s = calloc(1, sizeof *s);
    if (!s)
        return LUCY_ENOMEM;
    s->cu = cu;
    s->curl = cu->easy_init();
    s->url = strdup(opt->url);
    s->model = strdup(opt->model && opt->model[0] ? opt->model : DEFAULT_MODEL);
    if (!s->curl || !s->url || !s->model) {
        http_close(s);
        return LUCY_ENOMEM;
    }
    *state = s;
    return 0;
}

/* The samples as a WAV file made by libavformat's wav muxer. On success
 * *wav is av_malloc'ed (av_free it). 0 or LUCY_ENOMEM / LUCY_EIO. */
static int make_wav(const struct lucy_pcm *pcm, uint8_t **wav, int *wav_bytes)
{
    AVFormatContext *oc = NULL;
    AVPacket *pkt = NULL;
    int rc = LUCY_EIO;
    *wav = NULL;
    if (avformat_alloc_output_context2(&oc, NULL, "wav", NULL) < 0 || !oc)
        return LUCY_ENOMEM;
    oc->flags |= AVFMT_FLAG_BITEXACT; /* no LIST/INFO chunk: a plain header */
    AVStream *st = avformat_new_stream(oc, NULL);
    if (!st || avio_open_dyn_buf(&oc->pb) < 0) {
        rc = LUCY_ENOMEM;
        goto out;
    }
    /* A memory buffer can seek back, so the trailer writes the real sizes. */
    oc->pb->seekable = AVIO_SEEKABLE_NORMAL;
    AVCodecParameters *par = st->codecpar;
    par->codec_type = AVMEDIA_TYPE_AUDIO;
    par->codec_id = AV_CODEC_ID_PCM_S16LE;
    par->sample_rate = LUCY_ASR_SAMPLE_RATE;
    par->ch_layout = (AVChannelLayout)AV_CHANNEL_LAYOUT_MONO;
    par->bits_per_coded_sample = 16;
    par->block_align = 2;
    par->bit_rate = (int64_t)LUCY_ASR_SAMPLE_RATE * 16;
    st->time_base = (AVRational){1, LUCY_ASR_SAMPLE_RATE};
    if (avformat_write_header(oc, NULL) < 0)
        goto out;
    pkt = av_packet_alloc();
    if (!pkt) {
        rc = LUCY_ENOMEM;
        goto out;
    }
    /* One packet per second of audio, pointing into the caller's samples. */
    for (size_t at = 0; at < pcm->n_samples; at += LUCY_ASR_SAMPLE_RATE) {
        size_t n = pcm->n_samples - at;
        if (n > LUCY_ASR_SAMPLE_RATE)
            n = LUCY_ASR_SAMPLE_RATE;
        pkt->data = (uint8_t *)(pcm->s16 + at);
        pkt->size = (int)(n * sizeof(int16_t));
        pkt->stream_index = st->index;
        pkt->pts = pkt->dts =
            av_rescale_q((int64_t)at, (AVRational){1, LUCY_ASR_SAMPLE_RATE}, st->time_base);
        pkt->duration =
            av_rescale_q((int64_t)n, (AVRational){1, LUCY_ASR_SAMPLE_RATE}, st->time_base);
        int ret = av_write_frame(oc, pkt);
        pkt->data = NULL;
        pkt->size = 0;
        if (ret < 0)
            goto out;
    }
    if (av_write_trailer(oc) < 0)
        goto out;
    rc = 0;
out:
    av_packet_free(&pkt);
    if (oc && oc->pb) {
        uint8_t *buf = NULL;
        int len = avio_close_dyn_buf(oc->pb, &buf);
        oc->pb = NULL;
        if (rc == 0) {
            *wav = buf;
            *wav_bytes = len;
        } else {
            av_free(buf);
        }
    }
    avformat_free_context(oc);
    return rc;
}

/* The server's message from an error body: OpenAI's error.message, a
 * top-level message/detail/error string, or the body's first line. */
static void server_message(const struct lucy_http_call *b, char *msg, size_t msglen)
{
    msg[0] = '\0';
    if (!b->reply || !b->reply_len)
        return;
    json_t *root = json_loadb(b->reply, b->reply_len, 0, NULL);
    if (root) {
        json_t *e = json_object_get(root, "error");
        const char *text = NULL;
        if (json_is_object(e))
            text = json_string_value(json_object_get(e, "message"));
        if (!text)
            text = json_string_value(e);
        if (!text)
            text = json_string_value(json_object_get(root, "message"));
        if (!text)
            text = json_string_value(json_object_get(root, "detail"));
        if (text)
            snprintf(msg, msglen, "%s", text);
        json_decref(root);
        if (msg[0])
            return;
    }
    size_t n = strcspn(b->reply, "\r\n");
    if (n > 200)
        n = 200;
    snprintf(msg, msglen, "%.*s", (int)n, b->reply);
}

static int64_t seconds_to_ms(double s)
{
    return s > 0 ? (int64_t)(s * 1000.0 + 0.5) : 0;
}

/* words[] ({word, start, end}, seconds, in time order, one list for the
 * whole answer: OpenAI's) -> the words of out's segments: each to the last
 * segment starting at or before its middle (the first one for a word
 * before every segment). Words without text or times are skipped. 0 or
 * LUCY_ENOMEM. */
static int add_words(struct lucy_transcript *out, json_t *words)
{
    size_t i, seg = 0;
    json_t *w;
    if (out->n_segments == 0)
        return 0;
    json_array_foreach(words, i, w)
    {
        const char *text = json_string_value(json_object_get(w, "word"));
        json_t *start = json_object_get(w, "start"), *end = json_object_get(w, "end");
        if (!text || !json_is_number(start) || !json_is_number(end))
            continue;
        int64_t t0_ms = seconds_to_ms(json_number_value(start));
        int64_t t1_ms = seconds_to_ms(json_number_value(end));
        int64_t mid_ms = t0_ms + (t1_ms > t0_ms ? (t1_ms - t0_ms) / 2 : 0);
        while (seg + 1 < out->n_segments && out->segments[seg + 1].t0_ms <= mid_ms)
            seg++;
        int rc = lucy_segment_add_word(&out->segments[seg], t0_ms, t1_ms, text, strlen(text));
        if (rc)
            return rc;
    }
    return 0;
}

/* whisper.cpp's server: a segment's own words[] are its tokens (" for" +
 * "ward"), joined into seg's words by lucy_segment_add_tokens. Tokens
 * without text or times are skipped. 0 or LUCY_ENOMEM. */
static int add_tokens(struct lucy_segment *seg, json_t *words)
{
    size_t n = json_array_size(words), k = 0, i;
    if (n == 0)
        return 0;
    struct lucy_token *tok = calloc(n, sizeof *tok);
    if (!tok)
        return LUCY_ENOMEM;
    json_t *w;
    json_array_foreach(words, i, w)
    {
        const char *text = json_string_value(json_object_get(w, "word"));
        json_t *start = json_object_get(w, "start"), *end = json_object_get(w, "end");
        if (!text || !json_is_number(start) || !json_is_number(end))
            continue;
        tok[k++] = (struct lucy_token){seconds_to_ms(json_number_value(start)),
                                       seconds_to_ms(json_number_value(end)), text};
    }
    int rc = lucy_segment_add_tokens(seg, tok, k);
    free(tok);
    return rc;
}

/* segments[].start/end (seconds) and text -> out; then the words:
 * OpenAI's top-level words[], else whisper.cpp's segments[].words[]. */
static int parse_answer(const struct lucy_http_call *b, const struct lucy_pcm *pcm,
                        struct lucy_transcript *out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(b->reply ? b->reply : "", b->reply_len, 0, &jerr);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "the ASR server's answer is not a JSON object (%s)", jerr.text);
        json_decref(root);
        return LUCY_EUNAVAIL;
    }
    int rc = 0;
    json_t *segments = json_object_get(root, "segments");
    json_t *words = json_object_get(root, "words");
    size_t i;
    json_t *seg;
    json_array_foreach(segments, i, seg)
    {
        const char *text = json_string_value(json_object_get(seg, "text"));
        json_t *start = json_object_get(seg, "start"), *end = json_object_get(seg, "end");
        if (!text || !json_is_number(start) || !json_is_number(end))
            continue;
        int64_t t0_ms = seconds_to_ms(json_number_value(start));
        int64_t t1_ms = seconds_to_ms(json_number_value(end));
        size_t n = out->n_segments;
        if ((rc = lucy_transcript_add(out, t0_ms, t1_ms, text, strlen(text))) != 0)
            goto out;
        if (!json_is_array(words) && out->n_segments > n &&
            (rc = add_tokens(&out->segments[n], json_object_get(seg, "words"))) != 0)
            goto out;
    }
    const char *text = json_string_value(json_object_get(root, "text"));
    if (!json_is_array(segments) && text) /* plain json: one segment */
        rc = lucy_transcript_add(out, 0, seconds_to_ms(pcm->duration_s), text, strlen(text));
    if (rc == 0)
        rc = add_words(out, words);
    const char *language = json_string_value(json_object_get(root, "language"));
    if (language)
        snprintf(out->language, sizeof out->language, "%s", language);
    if (rc == 0)
        rc = lucy_transcript_join(out);
out:
    json_decref(root);
    return rc;
}

static int http_transcribe(void *state, const struct lucy_pcm *pcm, struct lucy_transcript *out,
                           char *err, size_t errlen)
{
    struct http_state *s = state;
    snprintf(out->model, sizeof out->model, "%s", s->model);
    uint8_t *wav = NULL;
    int wav_bytes = 0;
    int rc = make_wav(pcm, &wav, &wav_bytes);
    if (rc) {
        snprintf(err, errlen, "http: cannot write the audio as WAV");
        return rc;
    }

    curl_mime *mime = s->cu->mime_init(s->curl);
    curl_mimepart *part = s->cu->mime_addpart(mime);
    s->cu->mime_name(part, "file");
    s->cu->mime_data(part, (const char *)wav, (size_t)wav_bytes);
    s->cu->mime_filename(part, "audio.wav");
    s->cu->mime_type(part, "audio/wav");
    part = s->cu->mime_addpart(mime);
    s->cu->mime_name(part, "model");
    s->cu->mime_data(part, s->model, CURL_ZERO_TERMINATED);
    part = s->cu->mime_addpart(mime);
    s->cu->mime_name(part, "response_format");
    s->cu->mime_data(part, "verbose_json", CURL_ZERO_TERMINATED);
    static const char *const granularities[] = {"segment", "word"};
    for (size_t i = 0; i < sizeof granularities / sizeof granularities[0]; i++) {
        part = s->cu->mime_addpart(mime);
        s->cu->mime_name(part, "timestamp_granularities[]");
        s->cu->mime_data(part, granularities[i], CURL_ZERO_TERMINATED);
    }

    double timeout_s = BASE_TIMEOUT_S + TIMEOUT_PER_AUDIO_S * pcm->duration_s;
    if (timeout_s > MAX_TIMEOUT_S)
        timeout_s = MAX_TIMEOUT_S;
    struct lucy_http_call call = {
        .url = s->url, /* POST: the mime body */
        .mime = mime,
        .timeout_ms = (long)(timeout_s * 1000.0),
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
        .stall_bytes_per_s = STALL_BYTES_PER_S,
        .stall_s = STALL_S,
        .reply_cap = MAX_RESPONSE_BYTES,
    };
    rc = lucy_http_client_perform(s->curl, &call);
    s->cu->mime_free(mime);
    av_free(wav);

    if (rc) {
        if (call.too_big)
            snprintf(err, errlen, "the ASR server at %s answered more than %u bytes", s->url,
                     MAX_RESPONSE_BYTES);
        else
            snprintf(err, errlen, "cannot reach the ASR server at %s: %s", s->url, call.error);
    } else if (call.status != 200) {
        char msg[512];
        server_message(&call, msg, sizeof msg);
        snprintf(err, errlen, "the ASR server at %s answered HTTP %ld: %s", s->url, call.status,
                 msg[0] ? msg : "(no message)");
        rc = LUCY_EUNAVAIL;
    } else {
        rc = parse_answer(&call, pcm, out, err, errlen);
    }
    if (rc)
        lucy_log(LUCY_LOG_DEBUG, "asr http request failed", "{s:s,s:i}", "url", s->url, "status",
                 (int)call.status);
    lucy_http_call_free(&call);
    return rc;
}

static const char *http_model(void *state)
{
    return ((struct http_state *)state)->model;
}

const struct lucy_asr_engine lucy_asr_http = {
    .name = "http",
    .open = http_open,
    .transcribe = http_transcribe,
    .close = http_close,
    .model = http_model,
};
