/*
 * audio.c - any audio file FFmpeg reads -> 16 kHz mono PCM (DESIGN §7).
 *
 * How it works: libavformat reads the file through a custom AVIOContext
 * whose callbacks pread() the caller's descriptor, so the file is read only
 * through that fd (no second open, no path lookup) and a read error keeps
 * its errno: EDEADLK from a sync client becomes LUCY_ELOCKED, not "corrupt".
 * Seeking works (pread at our own offset), so an MP4 whose index (moov) is
 * at the end is read like FFmpeg's own tools read it; a pipe is read in
 * order (and such an MP4 then fails, as it does for ffmpeg). The best audio stream
 * is decoded with libavcodec and converted by libswresample (one SwrContext,
 * rebuilt if the frame format changes mid-stream) straight to signed 16-bit
 * mono at 16 kHz - the same conversion `ffmpeg -ar 16000 -ac 1` does, so
 * pocketsphinx sees the samples its own CLI would. The float copy for
 * whisper is derived from those samples.
 *
 * Damaged input: a packet the decoder rejects is skipped (as the ffmpeg CLI
 * does), and so is a decoded frame whose sample rate no recording has
 * (outside SOURCE_RATE_MIN_HZ..SOURCE_RATE_MAX_HZ: a damaged header; the
 * resampler would size its filter by the rate ratio - gigabytes for a
 * 1.6 GHz "rate") or that the resampler cannot take; no audio at all is
 * LUCY_ECORRUPT with the reason (our own, or the demuxer's or decoder's
 * last error-level log line, e.g. "moov atom not found"). A file that
 * decodes to much less than its container's duration (cut after an index
 * at the start) is returned with truncated = 1 and a WARNING.
 *
 * Memory is bounded: at most LUCY_ASR_MAX_AUDIO_S of audio is decoded
 * (6 bytes per 16 kHz sample with both representations, ~1.4 GB at the
 * cap); a longer file - or a small one that claims hours, as a damaged or
 * hostile header can - keeps its first LUCY_ASR_MAX_AUDIO_S with
 * truncated = 1 and a WARNING (half of it for a stereo source decoded per
 * channel: twice the bytes per second).
 *
 * Per channel (lucy_audio_decode_split_fd, DESIGN §13): a two-channel
 * source is resampled to 16 kHz *stereo* (the same SwrContext path), then
 * split into one lucy_pcm per channel - unless the two carry one signal
 * (lucy_audio_channels_identical), then it is kept as mono.
 *
 * FFmpeg's log goes to lucy_log DEBUG through av_log_set_callback (set once
 * per process), never to stderr.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

#include "../error.h"
#include "../log.h"
#include "../media/media.h"
#include "asr.h"

#define AVIO_BUFFER_BYTES 65536
/* Decoded audio this much shorter than the container says is "truncated". */
#define TRUNCATED_MIN_S    0.5
#define TRUNCATED_MIN_FRAC 0.10
/* Two channels whose difference has at most this fraction of their
 * energy (-30 dB) carry the same signal. */
/* Source sample rates a recording can have: speech needs a few kHz
 * (telephony is 8 kHz), studio audio goes up to 768 kHz. */
#define SOURCE_RATE_MIN_HZ 1000
#define SOURCE_RATE_MAX_HZ 768000
/* Output samples kept at most (LUCY_ASR_MAX_AUDIO_S at 16 kHz). */
#define MAX_SAMPLES ((size_t)LUCY_ASR_MAX_AUDIO_S * LUCY_ASR_SAMPLE_RATE)
/* Sample frames kept at most for b: two channels kept apart take twice the
 * memory per frame (and a copy per channel), so they get half the time. */
#define MAX_FRAMES(b) ((b)->channels == 2 ? MAX_SAMPLES / 2 : MAX_SAMPLES)

/* The AVIOContext's opaque: the caller's descriptor read with pread. */
struct fd_reader {
    int fd;         /* not owned */
    int seekable;   /* regular file: pread at pos; else read() in order */
    int64_t pos;    /* next byte to read */
    int read_errno; /* first errno from a read, 0 if none */
};

/* The last error-level FFmpeg message on this thread: the "reason" given
 * with LUCY_ECORRUPT. Cleared at the start of each decode. */
static __thread char ff_last_error[256];

static void ff_log(void *avcl, int level, const char *fmt, va_list ap)
{
    if (level > AV_LOG_VERBOSE)
        return;
    int want_debug = lucy_log_get_level() <= LUCY_LOG_DEBUG;
    if (level > AV_LOG_ERROR && !want_debug)
        return;
    char line[512];
    int print_prefix = 1;
    va_list copy;
    va_copy(copy, ap);
    av_log_format_line2(avcl, level, fmt, copy, line, sizeof line, &print_prefix);
    va_end(copy);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (n == 0)
        return;
    if (level <= AV_LOG_ERROR) {
        /* Without the "[mov,mp4,... @ 0x...] " prefix for the reason. */
        int plain = 0;
        va_copy(copy, ap);
        av_log_format_line2(NULL, level, fmt, copy, ff_last_error, sizeof ff_last_error, &plain);
        va_end(copy);
        size_t m = strlen(ff_last_error);
        while (m > 0 && (ff_last_error[m - 1] == '\n' || ff_last_error[m - 1] == ' '))
            ff_last_error[--m] = '\0';
    }
    if (want_debug)
        lucy_log(LUCY_LOG_DEBUG, "ffmpeg", "{s:s,s:i}", "line", line, "av_level", level);
}

static pthread_once_t ff_log_once = PTHREAD_ONCE_INIT;

static void ff_log_install(void)
{
    av_log_set_callback(ff_log);
}

static int fd_read(void *opaque, uint8_t *buf, int size)
{
    struct fd_reader *r = opaque;
    ssize_t n;
    do
        n = r->seekable ? pread(r->fd, buf, (size_t)size, r->pos) : read(r->fd, buf, (size_t)size);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (!r->read_errno)
            r->read_errno = errno;
        return AVERROR(errno);
    }
    if (n == 0)
        return AVERROR_EOF;
    r->pos += n;
    return (int)n;
}

static int64_t fd_seek(void *opaque, int64_t offset, int whence)
{
    struct fd_reader *r = opaque;
    struct stat st;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
        if (fstat(r->fd, &st) != 0)
            return AVERROR(errno);
        return S_ISREG(st.st_mode) ? (int64_t)st.st_size : AVERROR(ENOSYS);
    case SEEK_SET:
        break;
    case SEEK_CUR:
        offset += r->pos;
        break;
    case SEEK_END:
        if (fstat(r->fd, &st) != 0)
            return AVERROR(errno);
        offset += st.st_size;
        break;
    default:
        return AVERROR(EINVAL);
    }
    if (offset < 0)
        return AVERROR(EINVAL);
    r->pos = offset;
    return offset;
}

/* Growing output buffer of s16 sample frames (`channels` interleaved
 * samples each). */
struct pcm_buf {
    int16_t *s16;
    size_t n, cap; /* sample frames */
    int channels;  /* 1, or 2 when the channels are kept apart */
};

/* Room for `more` frames after the n held, growing by doubling but never
 * past MAX_FRAMES + 1 unless asked for more. */
static int pcm_reserve(struct pcm_buf *b, size_t more)
{
    if (b->n + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : LUCY_ASR_SAMPLE_RATE * 10;
    while (cap < b->n + more)
        cap *= 2;
    if (cap > MAX_FRAMES(b) + 1)
        cap = b->n + more > MAX_FRAMES(b) + 1 ? b->n + more : MAX_FRAMES(b) + 1;
    int16_t *p = realloc(b->s16, cap * (size_t)b->channels * sizeof *p);
    if (!p)
        return LUCY_ENOMEM;
    b->s16 = p;
    b->cap = cap;
    return 0;
}

/* Decoding state of one call. */
struct decoder {
    AVFormatContext *fmt;
    AVCodecContext *codec;
    SwrContext *swr;
    AVChannelLayout swr_in_layout; /* what swr was built for */
    int swr_in_format;
    int swr_in_rate;
    AVFrame *frame;
    AVPacket *packet;
    struct pcm_buf out;
    int bad_packets;  /* packets the decoder rejected, frames we could not take */
    int last_av_err;  /* last error from the decoder, for the reason */
    char reason[160]; /* why the last frame was skipped; "" = none */
    int capped;       /* MAX_FRAMES reached: the rest is not decoded */
};

/* Runs swr on in (NULL = flush) and appends to d->out, up to MAX_FRAMES
 * in all (then sets d->capped; swr keeps at most this call's input). */
static int resample(struct decoder *d, const uint8_t **in, int in_samples)
{
    if (d->capped)
        return 0;
    int max_out = swr_get_out_samples(d->swr, in_samples);
    if (max_out < 0)
        return LUCY_ENOMEM;
    size_t want = (size_t)max_out + 1, room = MAX_FRAMES(&d->out) - d->out.n;
    if (want > room)
        want = room;
    int rc = pcm_reserve(&d->out, want);
    if (rc)
        return rc;
    uint8_t *dst = (uint8_t *)(d->out.s16 + d->out.n * (size_t)d->out.channels);
    int got = swr_convert(d->swr, &dst, (int)want, in, in_samples);
    if (got < 0)
        return LUCY_ENOMEM;
    d->out.n += (size_t)got;
    if (d->out.n >= MAX_FRAMES(&d->out))
        d->capped = 1;
    return 0;
}

/* (Re)builds the resampler for the format of frame f. LUCY_ECORRUPT with
 * d->reason when the frame cannot be taken (the caller skips it). */
static int swr_setup(struct decoder *d, const AVFrame *f)
{
    if (d->swr && f->format == d->swr_in_format && f->sample_rate == d->swr_in_rate &&
        av_channel_layout_compare(&f->ch_layout, &d->swr_in_layout) == 0)
        return 0;
    if (f->sample_rate < SOURCE_RATE_MIN_HZ || f->sample_rate > SOURCE_RATE_MAX_HZ) {
        snprintf(d->reason, sizeof d->reason,
                 "a sample rate of %d Hz, which no recording has (%d to %d Hz)", f->sample_rate,
                 SOURCE_RATE_MIN_HZ, SOURCE_RATE_MAX_HZ);
        return LUCY_ECORRUPT;
    }
    int rc;
    if (d->swr && (rc = resample(d, NULL, 0)) != 0) /* flush the old one */
        return rc;
    swr_free(&d->swr);
    av_channel_layout_uninit(&d->swr_in_layout);
    AVChannelLayout in_layout = {0}; /* av_channel_layout_copy() uninits its dst first */
    if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || f->ch_layout.nb_channels == 0)
        av_channel_layout_default(&in_layout, f->ch_layout.nb_channels > 0
                                                  ? f->ch_layout.nb_channels
                                                  : d->codec->ch_layout.nb_channels);
    else if (av_channel_layout_copy(&in_layout, &f->ch_layout) < 0)
        return LUCY_ENOMEM;
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO, stereo = AV_CHANNEL_LAYOUT_STEREO;
    int ret =
        swr_alloc_set_opts2(&d->swr, d->out.channels == 2 ? &stereo : &mono, AV_SAMPLE_FMT_S16,
                            LUCY_ASR_SAMPLE_RATE, &in_layout, f->format, f->sample_rate, 0, NULL);
    if (ret >= 0)
        ret = swr_init(d->swr);
    if (ret < 0) {
        const char *fmt_name = av_get_sample_fmt_name(f->format);
        av_channel_layout_uninit(&in_layout);
        swr_free(&d->swr);
        snprintf(d->reason, sizeof d->reason,
                 "audio that cannot be converted (%d channels of %.32s at %d Hz)",
                 f->ch_layout.nb_channels, fmt_name ? fmt_name : "?", f->sample_rate);
        return LUCY_ECORRUPT;
    }
    d->swr_in_layout = in_layout;
    d->swr_in_format = f->format;
    d->swr_in_rate = f->sample_rate;
    return 0;
}

/* Drains decoded frames into the resampler. */
static int drain_frames(struct decoder *d)
{
    for (;;) {
        int ret = avcodec_receive_frame(d->codec, d->frame);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return 0;
        if (ret < 0) {
            d->last_av_err = ret;
            d->bad_packets++;
            return 0;
        }
        int rc = swr_setup(d, d->frame);
        if (rc == LUCY_ECORRUPT) { /* a frame we cannot take: skip it */
            d->bad_packets++;
            rc = 0;
        } else if (rc == 0) {
            rc = resample(d, (const uint8_t **)d->frame->extended_data, d->frame->nb_samples);
        }
        av_frame_unref(d->frame);
        if (rc)
            return rc;
    }
}

static void decoder_free(struct decoder *d)
{
    av_packet_free(&d->packet);
    av_frame_free(&d->frame);
    swr_free(&d->swr);
    av_channel_layout_uninit(&d->swr_in_layout);
    avcodec_free_context(&d->codec);
    if (d->fmt) {
        AVIOContext *pb = d->fmt->pb;
        avformat_close_input(&d->fmt);
        if (pb) {
            av_freep(&pb->buffer);
            avio_context_free(&pb);
        }
    }
    free(d->out.s16);
}

/* The reason for a failed FFmpeg call: its last error log line if any,
 * else av_strerror of ret. */
static void ff_reason(int ret, const char *what, char *err, size_t errlen)
{
    char msg[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(ret, msg, sizeof msg);
    if (ff_last_error[0])
        snprintf(err, errlen, "%s: %s (%s)", what, msg, ff_last_error);
    else
        snprintf(err, errlen, "%s: %s", what, msg);
}

/* An error after a read failure: classified by the read's errno. */
static int read_failure(const struct fd_reader *r, const char *path, char *err, size_t errlen)
{
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(r->read_errno));
    return lucy_err_from_errno(r->read_errno);
}

static int open_input(struct decoder *d, struct fd_reader *r, const char *path, char *err,
                      size_t errlen)
{
    unsigned char *buffer = av_malloc(AVIO_BUFFER_BYTES);
    if (!buffer)
        return LUCY_ENOMEM;
    struct stat st;
    r->seekable = fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode);
    AVIOContext *pb = avio_alloc_context(buffer, AVIO_BUFFER_BYTES, 0, r, fd_read, NULL,
                                         r->seekable ? fd_seek : NULL);
    if (!pb) {
        av_free(buffer);
        return LUCY_ENOMEM;
    }
    d->fmt = avformat_alloc_context();
    if (!d->fmt) {
        av_freep(&pb->buffer);
        avio_context_free(&pb);
        return LUCY_ENOMEM;
    }
    d->fmt->pb = pb;
    d->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    int ret = avformat_open_input(&d->fmt, NULL, NULL, NULL);
    if (ret < 0) {
        /* avformat_open_input frees fmt on failure, but not custom I/O. */
        av_freep(&pb->buffer);
        avio_context_free(&pb);
        if (r->read_errno)
            return read_failure(r, path, err, errlen);
        ff_reason(ret, "not a readable audio file", err, errlen);
        return LUCY_ECORRUPT;
    }
    ret = avformat_find_stream_info(d->fmt, NULL);
    if (ret < 0) {
        if (r->read_errno)
            return read_failure(r, path, err, errlen);
        ff_reason(ret, "cannot read the stream information", err, errlen);
        return LUCY_ECORRUPT;
    }
    const AVCodec *codec = NULL;
    int stream = av_find_best_stream(d->fmt, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
    if (stream < 0 || !codec) {
        snprintf(err, errlen, "%s",
                 stream == AVERROR_DECODER_NOT_FOUND ? "no decoder for the audio stream"
                                                     : "no audio stream");
        return LUCY_ECORRUPT;
    }
    d->codec = avcodec_alloc_context3(codec);
    if (!d->codec)
        return LUCY_ENOMEM;
    ret = avcodec_parameters_to_context(d->codec, d->fmt->streams[stream]->codecpar);
    if (ret >= 0) {
        d->codec->pkt_timebase = d->fmt->streams[stream]->time_base;
        ret = avcodec_open2(d->codec, codec, NULL);
    }
    if (ret < 0) {
        ff_reason(ret, "cannot open the audio decoder", err, errlen);
        return LUCY_ECORRUPT;
    }
    return stream;
}

/* The container's duration in seconds (format, else stream), 0 if unknown. */
static double container_duration_s(const AVFormatContext *fmt, int stream)
{
    if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0)
        return (double)fmt->duration / AV_TIME_BASE;
    const AVStream *st = fmt->streams[stream];
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        return (double)st->duration * av_q2d(st->time_base);
    return 0;
}

/* Fills pcm with n sample frames of channel ch from the interleaved
 * s16 buffer src (channels per frame), both representations. */
static int pcm_from_channel(const int16_t *src, size_t n, int channels, int ch,
                            struct lucy_pcm *pcm)
{
    pcm->s16 = malloc(n * sizeof *pcm->s16);
    pcm->f32 = malloc(n * sizeof *pcm->f32);
    if (!pcm->s16 || !pcm->f32) {
        lucy_pcm_free(pcm);
        return LUCY_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        pcm->s16[i] = src[i * (size_t)channels + (size_t)ch];
        pcm->f32[i] = (float)pcm->s16[i] / 32768.0f;
    }
    pcm->n_samples = n;
    pcm->duration_s = (double)n / LUCY_ASR_SAMPLE_RATE;
    return 0;
}

/* The decode itself; split: keep the two channels of a stereo source
 * apart (see lucy_audio_decode_split_fd). */
static int decode(int fd, const char *path, int split, struct lucy_audio *out, char *err,
                  size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (errlen)
        err[0] = '\0';
    pthread_once(&ff_log_once, ff_log_install);
    ff_last_error[0] = '\0';

    struct fd_reader reader = {.fd = fd};
    struct decoder d = {.swr_in_format = -1, .out = {.channels = 1}};
    int rc = 0;
    int stream = open_input(&d, &reader, path, err, errlen);
    if (stream < 0) {
        rc = stream;
        goto out;
    }
    out->source_channels = d.codec->ch_layout.nb_channels;
    if (split && out->source_channels == 2)
        d.out.channels = 2;
    d.frame = av_frame_alloc();
    d.packet = av_packet_alloc();
    if (!d.frame || !d.packet) {
        rc = LUCY_ENOMEM;
        goto out;
    }

    int ret;
    while ((ret = av_read_frame(d.fmt, d.packet)) >= 0) {
        if (d.packet->stream_index == stream) {
            int sent = avcodec_send_packet(d.codec, d.packet);
            if (sent < 0 && sent != AVERROR(EAGAIN)) {
                d.bad_packets++;
                d.last_av_err = sent;
            }
            rc = drain_frames(&d);
        }
        av_packet_unref(d.packet);
        if (rc)
            goto out;
        if (d.capped)
            break;
    }
    if (reader.read_errno) {
        rc = read_failure(&reader, path, err, errlen);
        goto out;
    }
    if (ret < 0 && ret != AVERROR_EOF)
        d.last_av_err = ret;
    if (!d.capped) {
        avcodec_send_packet(d.codec, NULL); /* flush the decoder */
        if ((rc = drain_frames(&d)) != 0)
            goto out;
        if (d.swr && (rc = resample(&d, NULL, 0)) != 0)
            goto out;
    }
    if (d.out.n == 0) {
        if (d.reason[0])
            snprintf(err, errlen, "no audio could be decoded: %s", d.reason);
        else if (d.last_av_err)
            ff_reason(d.last_av_err, "no audio could be decoded", err, errlen);
        else
            snprintf(err, errlen, "no audio could be decoded: the stream is empty");
        rc = LUCY_ECORRUPT;
        goto out;
    }

    if (d.out.channels == 2 && lucy_audio_channels_identical(d.out.s16, d.out.n)) {
        out->identical = 1; /* one signal: transcribed once, as mono */
        lucy_log(LUCY_LOG_DEBUG, "stereo channels identical; transcribed as mono", "{s:s}", "path",
                 path);
    }
    out->n_channels = d.out.channels == 2 && !out->identical ? 2 : 1;
    if (d.out.channels == 1) { /* mono: the buffer becomes the channel, no copy */
        struct lucy_pcm *pcm = &out->channel[0];
        pcm->f32 = malloc(d.out.n * sizeof *pcm->f32);
        if (!pcm->f32) {
            rc = LUCY_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < d.out.n; i++)
            pcm->f32[i] = (float)d.out.s16[i] / 32768.0f;
        pcm->s16 = d.out.s16;
        d.out.s16 = NULL;
        pcm->n_samples = d.out.n;
        pcm->duration_s = (double)d.out.n / LUCY_ASR_SAMPLE_RATE;
    }
    for (int ch = 0; d.out.channels == 2 && ch < out->n_channels; ch++)
        if ((rc = pcm_from_channel(d.out.s16, d.out.n, d.out.channels, ch, &out->channel[ch])) != 0)
            goto out;
    double duration_s = (double)d.out.n / LUCY_ASR_SAMPLE_RATE;
    double source_s = container_duration_s(d.fmt, stream);
    double missing_s = source_s - duration_s;
    int truncated = 0;
    if (d.capped) {
        truncated = 1;
        lucy_log(LUCY_LOG_WARNING, "audio longer than lucy decodes; the rest is not transcribed",
                 "{s:s,s:f,s:f,s:i}", "path", path, "decoded_s", duration_s, "container_s",
                 source_s, "max_audio_s", LUCY_ASR_MAX_AUDIO_S);
    } else if (missing_s > TRUNCATED_MIN_S && missing_s > TRUNCATED_MIN_FRAC * source_s) {
        truncated = 1;
        lucy_log(LUCY_LOG_WARNING, "audio shorter than its container says; file truncated?",
                 "{s:s,s:f,s:f}", "path", path, "decoded_s", duration_s, "container_s", source_s);
    }
    for (int ch = 0; ch < out->n_channels; ch++) {
        out->channel[ch].source_duration_s = source_s;
        out->channel[ch].truncated = truncated;
    }
    if (d.bad_packets)
        lucy_log(LUCY_LOG_DEBUG, "audio packets skipped", "{s:s,s:i}", "path", path, "packets",
                 d.bad_packets);

out:
    decoder_free(&d);
    if (rc)
        lucy_audio_free(out);
    if (rc && rc != LUCY_ECORRUPT && !err[0] && errlen)
        snprintf(err, errlen, "cannot decode %s: %s", path, lucy_strerror(rc));
    return rc;
}

int lucy_media_decode_fd(int fd, const char *path, struct lucy_pcm *out, char *err, size_t errlen)
{
    struct lucy_audio a;
    int rc = decode(fd, path, 0, &a, err, errlen);
    *out = a.channel[0]; /* zeroed on error */
    return rc;
}

int lucy_media_decode_split_fd(int fd, const char *path, struct lucy_audio *out, char *err,
                               size_t errlen)
{
    return decode(fd, path, 1, out, err, errlen);
}
