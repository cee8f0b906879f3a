/*
 * probe.c - is this file a recording, and what is in it? (DESIGN §6)
 *
 * libavformat reads the file through a custom AVIOContext whose callbacks
 * pread() the descriptor the scanner already holds, so the probe sees the
 * same inode the hash does and never opens the path again. The format is
 * recognised from the bytes alone (no file name is given to libavformat,
 * so an Ogg/Opus voice note named .m4a is still Ogg/Opus).
 *
 * Steps, each of which decides an outcome when it fails:
 *   1. recognise the container: the demuxer its signature bytes name
 *      (signatures[]), else libavformat's probe of every demuxer
 *                                                    -> else UNSUPPORTED
 *   2. open it (parse the header / index)            -> else CORRUPT, with
 *      the demuxer's reason ("Invalid data found ..." for an MP4 cut
 *      before its index)
 *   3. find an audio stream with a decoder           -> else UNSUPPORTED
 *   4. check the index does not point past the end   -> else CORRUPT
 * No frame is decoded here: that costs more than the rest of the probe
 * (the AAC decoder's set-up alone is ~80 us) and the transcription worker
 * decodes every recording anyway and reports what does not decode.
 * A failed read at any step is a READ_ERROR with its errno (a lock, a
 * permission or an I/O error), never mistaken for corrupt content.
 *
 * avformat_find_stream_info() (which decodes several frames) runs only when
 * the header alone leaves the codec, rate, channels or duration unknown
 * (raw MP3/AAC streams, for example); for MP4, Ogg and WAV the header is
 * enough, which keeps a probe to a few reads.
 *
 * Tags: the container's metadata keys listed in tag_keys[] plus every
 * `com.apple.quicktime.*` key, as UTF-8 strings. A tag that is not valid
 * UTF-8 is left out and a warning is kept; the recording stays a recording.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/error.h>
#include <libavutil/log.h>

#include "../../media/media.h"
#include "scan_int.h"

#define IO_BUFFER_BYTES (64 * 1024)   /* AVIOContext buffer */
#define PROBE_MAX_BYTES (1024 * 1024) /* content recognition reads at most this */
#define SNIFF_BYTES     2048          /* first bytes checked against signatures[] */

/* Container tags kept (exact keys); com.apple.quicktime.* is kept as a prefix. */
static const char *const tag_keys[] = {
    "title", "artist", "album", "date", "creation_time", "comment", "encoder", "location", "genre",
};
static const char apple_prefix[] = "com.apple.quicktime.";

/* Container signatures (magic bytes at an offset) of the formats phones and
 * messengers write, mapped to the libavformat demuxer that reads them. A
 * match only chooses which demuxer opens the file first - its header
 * parser is the real check; if it fails the full libavformat probe of every
 * demuxer decides. Sources: ISO/IEC 14496-12 §4.3 (ftyp), RFC 3533 §6
 * (OggS), the RIFF/WAVE, FLAC, AMR (RFC 4867 §5), CAF and Matroska/EBML
 * specifications, ID3v2.4 §3.1. */
static const struct {
    size_t offset;       /* where the magic starts */
    const char *magic;   /* the bytes */
    size_t len;          /* their count */
    size_t offset2;      /* a second magic (0/NULL = none) */
    const char *magic2;  /* e.g. "WAVE" after "RIFF" */
    const char *demuxer; /* av_find_input_format() name */
} signatures[] = {
    {4, "ftyp", 4, 0, NULL, "mov"},  {4, "moov", 4, 0, NULL, "mov"},
    {0, "OggS", 4, 0, NULL, "ogg"},  {0, "RIFF", 4, 8, "WAVE", "wav"},
    {0, "fLaC", 4, 0, NULL, "flac"}, {0, "#!AMR", 5, 0, NULL, "amr"},
    {0, "caff", 4, 0, NULL, "caf"},  {0, "\x1a\x45\xdf\xa3", 4, 0, NULL, "matroska"},
    {0, "ID3", 3, 0, NULL, "mp3"},
};

/* The descriptor behind the AVIOContext. */
struct fd_io {
    int fd;              /* not owned */
    int64_t pos;         /* logical position for the next read */
    int64_t size;        /* file size from the caller's fstat */
    int errnum;          /* errno of the first failed read, 0 if none */
    uint64_t bytes_read; /* total read */
};

static int fd_io_read(void *opaque, uint8_t *buf, int n)
{
    struct fd_io *io = opaque;
    for (;;) {
        ssize_t r = pread(io->fd, buf, (size_t)n, io->pos);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            if (!io->errnum)
                io->errnum = errno;
            return AVERROR(errno);
        }
        if (r == 0)
            return AVERROR_EOF;
        io->pos += r;
        io->bytes_read += (uint64_t)r;
        return (int)r;
    }
}

static int64_t fd_io_seek(void *opaque, int64_t offset, int whence)
{
    struct fd_io *io = opaque;
    whence &= ~AVSEEK_FORCE;
    switch (whence) {
    case AVSEEK_SIZE:
        return io->size;
    case SEEK_SET:
        break;
    case SEEK_CUR:
        offset += io->pos;
        break;
    case SEEK_END:
        offset += io->size;
        break;
    default:
        return AVERROR(EINVAL);
    }
    if (offset < 0)
        return AVERROR(EINVAL);
    io->pos = offset;
    return offset;
}

static void set_reason(char *dst, size_t len, const char *what, int averr)
{
    char msg[AV_ERROR_MAX_STRING_SIZE] = "";
    av_strerror(averr, msg, sizeof msg);
    snprintf(dst, len, "%s: %s", what, msg);
}

static int keep_tag(const char *key)
{
    if (strncmp(key, apple_prefix, sizeof apple_prefix - 1) == 0)
        return 1;
    for (size_t i = 0; i < sizeof tag_keys / sizeof tag_keys[0]; i++)
        if (strcmp(key, tag_keys[i]) == 0)
            return 1;
    return 0;
}

static void collect_tags(const AVDictionary *meta, struct lucy_scan_probe *out)
{
    const AVDictionaryEntry *e = NULL;
    while ((e = av_dict_get(meta, "", e, AV_DICT_IGNORE_SUFFIX))) {
        if (!keep_tag(e->key) || json_object_get(out->tags, e->key))
            continue;
        json_t *v = json_string(e->value); /* NULL when not valid UTF-8 */
        if (v && json_object_set_new(out->tags, e->key, v) == 0)
            continue;
        if (!out->warning[0])
            snprintf(out->warning, sizeof out->warning,
                     "tag '%.64s' is not valid UTF-8 and was left empty", e->key);
    }
}

/* Step 4: a container index that points past the end of the file means the
 * file was cut after its header (an MP4 with the index at the start). */
static int index_past_end(AVStream *st, int64_t size, char *reason, size_t len)
{
    int n = avformat_index_get_entries_count(st);
    if (n <= 0)
        return 0;
    const AVIndexEntry *last = avformat_index_get_entry(st, n - 1);
    if (!last || last->pos < 0 || last->pos + last->size <= size)
        return 0;
    snprintf(reason, len, "truncated: the index expects %lld bytes, the file has %lld",
             (long long)(last->pos + last->size), (long long)size);
    return 1;
}

/* The container duration in seconds as libavformat's estimate_timings()
 * would give it (what ffprobe prints as the format duration): the span from
 * the earliest stream start to the latest stream end; -1 when unknown. */
static double container_duration_s(const AVFormatContext *fmt)
{
    if (fmt->duration != AV_NOPTS_VALUE)
        return (double)fmt->duration / AV_TIME_BASE;
    double start = 0, end = -1;
    int have_start = 0;
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVStream *st = fmt->streams[i];
        if (st->duration == AV_NOPTS_VALUE || st->duration <= 0)
            continue;
        double tb = av_q2d(st->time_base);
        double s0 = st->start_time != AV_NOPTS_VALUE ? (double)st->start_time * tb : 0;
        if (!have_start || s0 < start)
            start = s0, have_start = 1;
        if (s0 + (double)st->duration * tb > end)
            end = s0 + (double)st->duration * tb;
    }
    return end < 0 ? -1 : end - start;
}

/* 1 when the header left what we report unknown, so packets must be read
 * (avformat_find_stream_info) to learn it. */
static int header_incomplete(const AVFormatContext *fmt)
{
    if (fmt->nb_streams == 0 || container_duration_s(fmt) < 0)
        return 1;
    int idx = av_find_best_stream((AVFormatContext *)fmt, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    if (idx < 0)
        return 1;
    const AVCodecParameters *par = fmt->streams[idx]->codecpar;
    return par->codec_id == AV_CODEC_ID_NONE || par->sample_rate <= 0 ||
           par->ch_layout.nb_channels <= 0;
}

/* The demuxer named by the first signature that matches head[0..n). */
static const AVInputFormat *by_signature(const unsigned char *head, size_t n)
{
    for (size_t i = 0; i < sizeof signatures / sizeof signatures[0]; i++) {
        if (signatures[i].offset + signatures[i].len > n ||
            memcmp(head + signatures[i].offset, signatures[i].magic, signatures[i].len) != 0)
            continue;
        if (signatures[i].magic2 &&
            (signatures[i].offset2 + 4 > n ||
             memcmp(head + signatures[i].offset2, signatures[i].magic2, 4) != 0))
            continue;
        return av_find_input_format(signatures[i].demuxer);
    }
    return NULL;
}

/* Opens the container on io with ifmt (NULL = probe every demuxer).
 * Returns 0 and *fmt_out, or AVERROR with reason set. */
static int open_container(struct fd_io *io, const AVInputFormat *ifmt, AVFormatContext **fmt_out,
                          char *format, size_t format_len, char *reason, size_t reason_len)
{
    io->pos = 0;
    AVIOContext *pb = NULL;
    AVFormatContext *fmt = NULL;
    unsigned char *buf = av_malloc(IO_BUFFER_BYTES);
    if (buf)
        pb = avio_alloc_context(buf, IO_BUFFER_BYTES, 0, io, fd_io_read, NULL, fd_io_seek);
    if (pb)
        fmt = avformat_alloc_context();
    if (!fmt) {
        if (pb)
            av_freep(&pb->buffer);
        else
            av_free(buf);
        avio_context_free(&pb);
        snprintf(reason, reason_len, "out of memory");
        return AVERROR(ENOMEM);
    }
    int rc = 0;
    if (!ifmt) {
        rc = av_probe_input_buffer2(pb, &ifmt, "", NULL, 0, PROBE_MAX_BYTES);
        if (rc < 0 || !ifmt) {
            snprintf(reason, reason_len, "not a recognised audio format");
            avformat_free_context(fmt);
            av_freep(&pb->buffer);
            avio_context_free(&pb);
            return AVERROR_DEMUXER_NOT_FOUND;
        }
    }
    snprintf(format, format_len, "%s", ifmt->name);
    fmt->pb = pb;
    fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    rc = avformat_open_input(&fmt, "", ifmt, NULL); /* frees fmt on failure */
    if (rc < 0) {
        set_reason(reason, reason_len, ifmt->name, rc);
        av_freep(&pb->buffer);
        avio_context_free(&pb);
        return rc;
    }
    *fmt_out = fmt;
    return 0;
}

static void close_container(AVFormatContext **fmt)
{
    if (!*fmt)
        return;
    AVIOContext *pb = (*fmt)->pb;
    avformat_close_input(fmt);
    if (pb) {
        av_freep(&pb->buffer);
        avio_context_free(&pb);
    }
}

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;

/* FFmpeg's default logger writes to stderr, where lucy writes JSON lines.
 * Only the default logger honours the level: a custom callback (the ASR
 * decoder installs one that routes to lucy_log DEBUG) is not affected. */
static void quiet_ffmpeg(void)
{
    av_log_set_level(AV_LOG_QUIET);
}

enum lucy_scan_probe_result lucy_media_probe_fd(int fd, int64_t size, struct lucy_scan_probe *out)
{
    pthread_once(&quiet_once, quiet_ffmpeg);
    memset(out, 0, sizeof *out);
    out->duration_s = -1;
    out->tags = json_object();
    struct fd_io io = {.fd = fd, .size = size};
    enum lucy_scan_probe_result res = LUCY_SCAN_PROBE_CORRUPT;
    AVFormatContext *fmt = NULL;
    if (!out->tags) {
        io.errnum = ENOMEM;
        goto out;
    }

    /* 1. and 2. Recognise the container by content and open it: first the
     * demuxer its signature names, then, if that fails, every demuxer. */
    unsigned char head[SNIFF_BYTES];
    int n = fd_io_read(&io, head, sizeof head);
    if (n < 0 && !io.errnum) { /* no bytes at all: emptied since the caller's fstat */
        res = LUCY_SCAN_PROBE_UNSUPPORTED;
        snprintf(out->reason, sizeof out->reason, "the file is empty");
    }
    if (n < 0)
        goto out; /* read error: io.errnum is set */
    const AVInputFormat *guess = by_signature(head, (size_t)n);
    int rc = -1;
    if (guess)
        rc = open_container(&io, guess, &fmt, out->format, sizeof out->format, out->reason,
                            sizeof out->reason);
    if (rc < 0 && !io.errnum)
        rc = open_container(&io, NULL, &fmt, out->format, sizeof out->format, out->reason,
                            sizeof out->reason);
    if (rc == AVERROR_DEMUXER_NOT_FOUND)
        res = LUCY_SCAN_PROBE_UNSUPPORTED;
    if (rc < 0)
        goto out;
    if (header_incomplete(fmt)) {
        rc = avformat_find_stream_info(fmt, NULL);
        if (rc < 0 && !io.errnum) {
            set_reason(out->reason, sizeof out->reason, "cannot read stream parameters", rc);
            goto out;
        }
    }

    /* 3. An audio stream with a decoder in this build. */
    const AVCodec *codec = NULL;
    int idx = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
    if (idx == AVERROR_STREAM_NOT_FOUND) {
        res = LUCY_SCAN_PROBE_UNSUPPORTED;
        snprintf(out->reason, sizeof out->reason, "%s without an audio stream", out->format);
        goto out;
    }
    if (idx < 0 || !codec) {
        res = LUCY_SCAN_PROBE_UNSUPPORTED;
        snprintf(out->reason, sizeof out->reason, "no decoder for the audio stream");
        goto out;
    }
    AVStream *st = fmt->streams[idx];

    /* 4. The audio data the index points at is there. */
    if (index_past_end(st, size, out->reason, sizeof out->reason))
        goto out;

    const AVCodecParameters *par = st->codecpar;
    out->duration_s = container_duration_s(fmt);
    snprintf(out->codec, sizeof out->codec, "%s", avcodec_get_name(par->codec_id));
    out->sample_rate = par->sample_rate;
    out->channels = par->ch_layout.nb_channels;
    out->bit_rate = par->bit_rate > 0 ? par->bit_rate : fmt->bit_rate;
    if (out->bit_rate <= 0 && out->duration_s > 0) /* what estimate_timings() computes */
        out->bit_rate = (int64_t)((double)size * 8 / out->duration_s);
    collect_tags(fmt->metadata, out);
    collect_tags(st->metadata, out);
    res = LUCY_SCAN_PROBE_AUDIO;
    out->reason[0] = '\0';

out:
    if (io.errnum && res != LUCY_SCAN_PROBE_AUDIO) {
        res = LUCY_SCAN_PROBE_READ_ERROR;
        out->errnum = io.errnum;
        snprintf(out->reason, sizeof out->reason, "read failed: %s", strerror(io.errnum));
    }
    out->bytes_read = io.bytes_read;
    close_container(&fmt);
    return res;
}
