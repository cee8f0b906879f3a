/*
 * media_worker.c - `lucy media-worker`: a media process of `lucy serve`
 * (src/media/remote.c starts it; not a command for people, so not in
 * `lucy help`).
 *
 * It loads the media module in its own memory (lucy_media_hold), says
 * hello on LUCY_MEDIA_WORKER_FD (or why the module did not load), then
 * answers the daemon's requests one at a time (wire.h) with the module's
 * functions, until the daemon closes the socket or closes the recogniser
 * instance this process held. Whatever FFmpeg or a recogniser does -
 * crash, exit on a failed allocation, keep memory glibc cannot give back
 * - happens here, not in the daemon.
 *
 * It keeps no descriptor of the daemon's but the socket (close_range: a
 * lingering process must not hold the data dir's lock or a listening
 * socket), ignores SIGINT/SIGTERM (Ctrl-C reaches the whole process
 * group; the daemon ends it by closing the socket) and logs to stderr as
 * the daemon does (LUCY_LOG_LEVEL).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../error.h"
#include "../log.h"
#include "../media/media.h"
#include "../media/wire.h"
#include "cmd.h"

/* The process's one recogniser instance (OPEN .. CLOSE). */
struct held {
    const struct lucy_asr_engine *engine;
    void *state;
};

static void on_probe(const struct lucy_media *t, struct lucy_wire_buf *in, int fd,
                     struct lucy_wire_buf *out, int *rc)
{
    int64_t size = lucy_wire_get_i64(in);
    struct lucy_scan_probe p;
    *rc = (int)t->probe_fd(fd, size, &p);
    lucy_wire_put_probe(out, &p);
    lucy_scan_probe_clear(&p);
}

static void on_decode(const struct lucy_media *t, struct lucy_wire_buf *in, int fd,
                      struct lucy_wire_buf *out, int *rc)
{
    char *path = lucy_wire_get_str(in);
    int split = (int)lucy_wire_get_i64(in);
    char err[1024] = "";
    struct lucy_audio a = {0};
    if (split) {
        *rc = t->decode_split_fd(fd, path ? path : "", &a, err, sizeof err);
    } else {
        *rc = t->decode_fd(fd, path ? path : "", &a.channel[0], err, sizeof err);
        a.n_channels = *rc == 0;
    }
    lucy_wire_put_str(out, err);
    if (*rc == 0)
        lucy_wire_put_audio(out, &a);
    lucy_audio_free(&a);
    free(path);
}

static void on_chunks(const struct lucy_media *t, struct lucy_wire_buf *in,
                      struct lucy_wire_buf *out, int *rc)
{
    int max_chunk_s = (int)lucy_wire_get_i64(in);
    struct lucy_pcm pcm;
    char err[1024] = "";
    struct lucy_chunk *c = NULL;
    size_t n = 0;
    *rc = lucy_wire_get_pcm(in, &pcm) != 0 ? LUCY_ENOMEM
                                           : t->chunks(&pcm, max_chunk_s, &c, &n, err, sizeof err);
    lucy_wire_put_str(out, err);
    if (*rc == 0)
        lucy_wire_put_chunks(out, c, n);
    free(c);
    lucy_pcm_free(&pcm);
}

static void on_engine(const struct lucy_media *t, int op, struct lucy_wire_buf *in,
                      struct lucy_wire_buf *out, int *rc)
{
    struct lucy_asr_options o;
    struct lucy_wire_options store;
    char err[1024] = "";
    const struct lucy_asr_engine *e = NULL;
    if (lucy_wire_get_options(in, &o, &store) != 0)
        *rc = LUCY_ENOMEM;
    else if (op == LUCY_WIRE_SELECT)
        *rc = (e = t->asr_select(&o, err, sizeof err)) ? 0 : LUCY_EINVAL;
    else
        *rc = t->asr_check(&o, &e, err, sizeof err);
    lucy_wire_put_str(out, err);
    lucy_wire_put_str(out, e ? e->name : NULL);
    lucy_wire_put_i64(out, e ? e->one_core : 0);
}

static void on_open(const struct lucy_media *t, struct held *h, struct lucy_wire_buf *in,
                    struct lucy_wire_buf *out, int *rc)
{
    char *name = lucy_wire_get_str(in);
    struct lucy_asr_options o;
    struct lucy_wire_options store;
    char err[1024] = "";
    *rc = lucy_wire_get_options(in, &o, &store) != 0 ? LUCY_ENOMEM : 0;
    if (*rc == 0 && h->state) {
        *rc = LUCY_EINVAL;
        snprintf(err, sizeof err, "this media process holds a recogniser already");
    }
    if (*rc == 0) {
        o.engine = name; /* the engine the daemon chose, not "auto" again */
        h->engine = t->asr_select(&o, err, sizeof err);
        *rc = h->engine ? t->asr_open(h->engine, &o, &h->state, err, sizeof err) : LUCY_EINVAL;
    }
    lucy_wire_put_str(out, err);
    lucy_wire_put_str(out, *rc == 0 ? t->asr_model(h->engine, h->state) : "");
    free(name);
}

static void on_transcribe(const struct lucy_media *t, struct held *h, struct lucy_wire_buf *in,
                          struct lucy_wire_buf *out, int *rc)
{
    struct lucy_pcm pcm;
    struct lucy_transcript tr = {0};
    char err[1024] = "";
    if (!h->state) {
        *rc = LUCY_EINVAL;
        snprintf(err, sizeof err, "no recogniser is open in this media process");
    } else if (lucy_wire_get_pcm(in, &pcm) != 0) {
        *rc = LUCY_ENOMEM;
    } else {
        *rc = t->asr_transcribe(h->engine, h->state, &pcm, &tr, err, sizeof err);
        lucy_pcm_free(&pcm);
    }
    lucy_wire_put_str(out, err);
    if (*rc == 0)
        lucy_wire_put_transcript(out, &tr);
    lucy_transcript_free(&tr);
}

int lucy_cmd_media_worker(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const int sock = LUCY_MEDIA_WORKER_FD;
    close_range(sock + 1, ~0U, 0);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    enum lucy_log_level level;
    const char *lv = getenv("LUCY_LOG_LEVEL");
    if (lv && lucy_log_level_parse(lv, &level) == 0)
        lucy_log_set_level(level);

    char err[768] = "";
    struct lucy_wire_buf in = {0}, out = {0};
    const struct lucy_media *t = lucy_media_hold(err, sizeof err);
    if (!t) {
        lucy_wire_put_str(&out, err);
        lucy_wire_send(sock, LUCY_WIRE_HELLO, LUCY_EUNAVAIL, &out, -1, NULL);
        lucy_wire_buf_free(&out);
        return LUCY_EXIT_FAILED;
    }
    lucy_wire_send(sock, LUCY_WIRE_HELLO, 0, NULL, -1, NULL);
    struct held h = {0};
    for (;;) {
        int op = 0, rc = 0, fd = -1;
        if (lucy_wire_recv(sock, &op, &rc, &in, &fd, NULL) != 0 || op == LUCY_WIRE_CLOSE) {
            if (fd >= 0)
                close(fd);
            break;
        }
        lucy_wire_buf_free(&out);
        rc = 0;
        switch (op) {
        case LUCY_WIRE_PROBE:
            on_probe(t, &in, fd, &out, &rc);
            break;
        case LUCY_WIRE_DECODE:
            on_decode(t, &in, fd, &out, &rc);
            break;
        case LUCY_WIRE_CHUNKS:
            on_chunks(t, &in, &out, &rc);
            break;
        case LUCY_WIRE_SELECT:
        case LUCY_WIRE_CHECK:
            on_engine(t, op, &in, &out, &rc);
            break;
        case LUCY_WIRE_OPEN:
            on_open(t, &h, &in, &out, &rc);
            break;
        case LUCY_WIRE_TRANSCRIBE:
            on_transcribe(t, &h, &in, &out, &rc);
            break;
        default:
            rc = LUCY_EINVAL;
            break;
        }
        if (fd >= 0)
            close(fd);
        if (out.bad) { /* a reply that could not be built: say so, not half of it */
            lucy_wire_buf_free(&out);
            lucy_wire_put_str(&out, "out of memory in the media process");
            rc = LUCY_ENOMEM;
        }
        if (lucy_wire_send(sock, op, rc, &out, -1, NULL) != 0)
            break;
    }
    if (h.state)
        t->asr_close(h.engine, h.state);
    lucy_wire_buf_free(&in);
    lucy_wire_buf_free(&out);
    lucy_media_drop();
    return LUCY_EXIT_OK;
}
