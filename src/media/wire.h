/*
 * wire.h - the messages between lucy and its media processes (remote.c,
 * the daemon's side; cmd/media_worker.c, the process's).
 *
 * A message is a header {op, rc, len} and len bytes of payload, on a
 * SOCK_STREAM socketpair; a file descriptor (the recording) rides with a
 * request's header as SCM_RIGHTS. Both ends are the same executable, so
 * numbers go in host order and a payload is a plain sequence of fields
 * written and read in the same order (struct lucy_wire_buf). Nothing here
 * allocates but the buffers; every read is bounds-checked (a short or
 * malformed payload is an error, never a crash).
 *
 * Threads: a buffer belongs to its caller; lucy_wire_send / _recv on one
 * socket must not run at once from two threads (remote.c gives a process
 * to one caller at a time).
 */
#ifndef LUCY_MEDIA_WIRE_H
#define LUCY_MEDIA_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "../asr/asr.h"
#include "../plugins/call_recordings/scan_int.h"

/* Requests (daemon -> process); the reply carries the same op. */
enum lucy_wire_op {
    LUCY_WIRE_HELLO = 1,  /* process -> daemon once started: rc 0, or why the module did not load */
    LUCY_WIRE_PROBE,      /* fd, size -> verdict, probe */
    LUCY_WIRE_DECODE,     /* fd, path, split -> rc, err, audio */
    LUCY_WIRE_CHUNKS,     /* pcm, max_chunk_s -> rc, err, chunks */
    LUCY_WIRE_SELECT,     /* options -> rc, err, engine */
    LUCY_WIRE_CHECK,      /* options -> rc, err, engine */
    LUCY_WIRE_OPEN,       /* engine, options -> rc, err, model (the process keeps the instance) */
    LUCY_WIRE_TRANSCRIBE, /* pcm -> rc, err, transcript */
    LUCY_WIRE_CLOSE,      /* no reply: the process closes the instance and exits */
};

/* A growing (writing) or consumed (reading) payload. */
struct lucy_wire_buf {
    unsigned char *data;
    size_t len, cap; /* writing: bytes written, allocated */
    size_t at;       /* reading: next byte */
    int bad;         /* a read went past the end, or an allocation failed */
};

void lucy_wire_buf_free(struct lucy_wire_buf *b);

/* Writers: append to b (b->bad on no memory). */
void lucy_wire_put(struct lucy_wire_buf *b, const void *p, size_t n);
void lucy_wire_put_i64(struct lucy_wire_buf *b, int64_t v);
void lucy_wire_put_f64(struct lucy_wire_buf *b, double v);
/* A string as length + bytes; NULL is distinct from "". */
void lucy_wire_put_str(struct lucy_wire_buf *b, const char *s);

/* Readers: take from b at b->at (b->bad, and 0 / NULL, past the end). */
int lucy_wire_get(struct lucy_wire_buf *b, void *p, size_t n);
int64_t lucy_wire_get_i64(struct lucy_wire_buf *b);
double lucy_wire_get_f64(struct lucy_wire_buf *b);
/* A string written by lucy_wire_put_str: malloc'd (the caller frees), or
 * NULL for a NULL string or on error (then b->bad). */
char *lucy_wire_get_str(struct lucy_wire_buf *b);
/* The same into buf (cut to len, "" for NULL). */
void lucy_wire_get_strn(struct lucy_wire_buf *b, char *buf, size_t len);

/* How long a send or receive may wait for the peer: NULL = as long as it
 * takes. Else the socket is waited on in slices of a second, and go_on(arg)
 * is asked after each one without progress: a non-zero code it returns
 * (LUCY_ETIMEDOUT, LUCY_ESHUTDOWN) ends the wait with that code. */
struct lucy_wire_wait {
    int (*go_on)(void *arg); /* 0: keep waiting */
    void *arg;
};

/* Sends op, rc and b's bytes (b NULL: none) on sock, with send_fd (-1:
 * none) attached. 0, LUCY_EIO (the peer is gone: EPIPE, ECONNRESET, ...)
 * or w's code. Never raises SIGPIPE. */
int lucy_wire_send(int sock, int op, int rc, const struct lucy_wire_buf *b, int send_fd,
                   const struct lucy_wire_wait *w);

/* Receives one message: *op, *rc and its payload into b (emptied first,
 * reading from 0), and *recv_fd (-1 when none came; recv_fd NULL: a fd
 * that comes is closed). 0; LUCY_EIO at end of stream, on a read error or
 * for a header that makes no sense (a payload over 4 GiB); LUCY_ENOMEM. */
int lucy_wire_recv(int sock, int *op, int *rc, struct lucy_wire_buf *b, int *recv_fd,
                   const struct lucy_wire_wait *w);

/* ---- lucy's structs as fields (codec.c) ---------------------------------
 *
 * Each put writes what its get reads back. A get fills a zeroed struct the
 * caller owns as usual (lucy_pcm_free, lucy_audio_free,
 * lucy_transcript_free, lucy_scan_probe_clear, free for chunks); it
 * returns 0, or -1 with b->bad (the struct is then freed and zeroed). */

/* Samples as s16 only: f32 is rebuilt from them (s16 / 32768, as the
 * decoder makes it), so half the bytes cross. */
void lucy_wire_put_pcm(struct lucy_wire_buf *b, const struct lucy_pcm *p);
int lucy_wire_get_pcm(struct lucy_wire_buf *b, struct lucy_pcm *out);
void lucy_wire_put_audio(struct lucy_wire_buf *b, const struct lucy_audio *a);
int lucy_wire_get_audio(struct lucy_wire_buf *b, struct lucy_audio *out);
void lucy_wire_put_transcript(struct lucy_wire_buf *b, const struct lucy_transcript *t);
int lucy_wire_get_transcript(struct lucy_wire_buf *b, struct lucy_transcript *out);
void lucy_wire_put_probe(struct lucy_wire_buf *b, const struct lucy_scan_probe *p);
int lucy_wire_get_probe(struct lucy_wire_buf *b, struct lucy_scan_probe *out);
void lucy_wire_put_chunks(struct lucy_wire_buf *b, const struct lucy_chunk *c, size_t n);
int lucy_wire_get_chunks(struct lucy_wire_buf *b, struct lucy_chunk **out, size_t *n);

/* Options: their strings point into *store (the caller's, kept while
 * out is used). */
struct lucy_wire_options {
    char engine[64], whisper_model[1024], url[1024], model[1024];
};
void lucy_wire_put_options(struct lucy_wire_buf *b, const struct lucy_asr_options *o);
int lucy_wire_get_options(struct lucy_wire_buf *b, struct lucy_asr_options *out,
                          struct lucy_wire_options *store);

#endif
