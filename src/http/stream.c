/*
 * stream.c - streamed replies (lucy_http_reply_stream): a body written
 * while it is being sent, e.g. an LLM's tokens as they arrive.
 *
 * The handler names a producer; once the handler returns, server.c calls
 * lucy_http_stream_start(), which starts the producer on its own detached
 * thread ("http-stream": it may block for as long as its work takes, on a
 * socket of its own, so it must not be a pool thread) and queues a
 * libmicrohttpd response whose content reader takes the bytes from a
 * bounded buffer between the two:
 *
 *   producer ─ lucy_http_stream_write ─► buf (STREAM_BUFFER_BYTES) ─► reader ─► socket
 *
 * The reader never waits: with no bytes ready it suspends the connection
 * (MHD_suspend_connection, libmicrohttpd's documented way from a content
 * reader) and returns 0; the next write or the end resumes it. So an open
 * stream holds no pool thread and liveness keeps answering. The writer
 * waits while the buffer is full, at most the request deadline
 * (request_timeout_ms): a client that stops reading makes the write fail
 * with LUCY_ETIMEDOUT and the reply is cut. A client that goes away ends
 * the reply on libmicrohttpd's side (the response is freed): writes then
 * fail with LUCY_EUNAVAIL and the producer stops.
 *
 * Lifetime: two references, the producer's (dropped when it returns) and
 * the response's (dropped by libmicrohttpd's free callback). The
 * connection is only resumed while `suspended` is set, which means
 * libmicrohttpd is waiting for us (a suspended connection is never closed
 * by it), so a resume never reaches a finished connection.
 * lucy_http_stop() waits until every stream has dropped both references.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../error.h"
#include "server_int.h"

#define STREAM_BUFFER_BYTES (64 * 1024) /* bytes written but not yet sent, at most */
#define STREAM_BLOCK_BYTES  4096        /* libmicrohttpd's read size */

struct lucy_http_stream {
    struct lucy_http *h;           /* the server: n_streams */
    struct MHD_Connection *conn;   /* to suspend / resume */
    pthread_mutex_t lock;          /* guards everything below */
    pthread_cond_t space;          /* broadcast when bytes left buf or the client went */
    char buf[STREAM_BUFFER_BYTES]; /* bytes waiting: buf[off .. off + len) */
    size_t off, len;               /* ... */
    int refs;                      /* producer + response */
    int suspended;                 /* the reader suspended the connection: resume on write */
    int ended;                     /* the producer is done: end of body once buf drains */
    int failed;                    /* ... cut short: end the body with an error */
    int gone;                      /* libmicrohttpd freed the response (done or client gone) */
    int64_t stall_ms;              /* a write waits for space at most this long */
    lucy_http_producer_fn fn;      /* the producer */
    void *arg;                     /* its argument (the producer frees it) */
};

static void stream_unref(struct lucy_http_stream *s)
{
    pthread_mutex_lock(&s->lock);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (!last)
        return;
    struct lucy_http *h = s->h;
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->space);
    free(s);
    pthread_mutex_lock(&h->defer_lock);
    if (--h->n_streams == 0)
        pthread_cond_broadcast(&h->defer_idle);
    pthread_mutex_unlock(&h->defer_lock);
}

/* Under s->lock: wakes the reader if it is waiting for us. */
static void wake_reader(struct lucy_http_stream *s)
{
    if (s->suspended) {
        s->suspended = 0;
        MHD_resume_connection(s->conn);
    }
}

/* MHD_ContentReaderCallback, on a pool thread: never waits. */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct lucy_http_stream *s = cls;
    ssize_t n = 0;
    pthread_mutex_lock(&s->lock);
    if (s->len > 0) {
        size_t k = s->len < max ? s->len : max;
        memcpy(out, s->buf + s->off, k);
        s->off += k, s->len -= k;
        if (s->len == 0)
            s->off = 0;
        pthread_cond_broadcast(&s->space);
        n = (ssize_t)k;
    } else if (s->ended) {
        n = s->failed ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        s->suspended = 1; /* the next write or the end resumes us */
        MHD_suspend_connection(s->conn);
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* MHD_ContentReaderFreeCallback: the reply is over, sent or not. */
static void stream_free(void *cls)
{
    struct lucy_http_stream *s = cls;
    pthread_mutex_lock(&s->lock);
    s->gone = 1;
    pthread_cond_broadcast(&s->space);
    pthread_mutex_unlock(&s->lock);
    stream_unref(s);
}

int lucy_http_stream_write(struct lucy_http_stream *s, const void *data, size_t len)
{
    const char *p = data;
    int rc = 0;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline); /* pthread_cond_timedwait's clock */
    deadline.tv_sec += s->stall_ms / 1000;
    deadline.tv_nsec += (s->stall_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000)
        deadline.tv_sec++, deadline.tv_nsec -= 1000000000;
    pthread_mutex_lock(&s->lock);
    while (len > 0 && rc == 0) {
        if (s->gone || s->ended) {
            rc = LUCY_EUNAVAIL;
            break;
        }
        if (s->off > 0 && s->off + s->len + len > sizeof s->buf) { /* compact */
            memmove(s->buf, s->buf + s->off, s->len);
            s->off = 0;
        }
        size_t room = sizeof s->buf - s->off - s->len;
        if (room == 0) {
            if (pthread_cond_timedwait(&s->space, &s->lock, &deadline) == ETIMEDOUT &&
                s->len + s->off == sizeof s->buf) {
                s->ended = s->failed = 1; /* the client stopped reading: cut the reply */
                wake_reader(s);
                rc = LUCY_ETIMEDOUT;
            }
            continue;
        }
        size_t k = len < room ? len : room;
        memcpy(s->buf + s->off + s->len, p, k);
        s->len += k, p += k, len -= k;
        wake_reader(s);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int lucy_http_stream_gone(struct lucy_http_stream *s)
{
    pthread_mutex_lock(&s->lock);
    int gone = s->gone || s->failed;
    pthread_mutex_unlock(&s->lock);
    return gone;
}

/* The producer's thread: runs it, then ends the body. */
static void *stream_main(void *arg)
{
    struct lucy_http_stream *s = arg;
    pthread_setname_np(pthread_self(), "http-stream");
    s->fn(s, s->arg);
    pthread_mutex_lock(&s->lock);
    s->ended = 1;
    wake_reader(s);
    pthread_mutex_unlock(&s->lock);
    stream_unref(s);
    return NULL;
}

enum MHD_Result lucy_http_stream_start(struct lucy_http *h, struct MHD_Connection *conn,
                                       const char *method, const char *route,
                                       struct lucy_http_response *resp, lucy_http_producer_fn fn,
                                       void *arg)
{
    struct lucy_http_stream *s = calloc(1, sizeof *s);
    struct MHD_Response *r = NULL;
    pthread_mutex_lock(&h->defer_lock);
    int stopping = h->stopping;
    if (s && !stopping)
        h->n_streams++;
    pthread_mutex_unlock(&h->defer_lock);
    if (s && !stopping) {
        s->h = h, s->conn = conn, s->refs = 2, s->fn = fn, s->arg = arg;
        s->stall_ms = h->request_timeout_ms;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->space, NULL);
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK_BYTES, stream_read, s,
                                              stream_free);
        if (!r) {
            s->refs = 1; /* ours: nobody else holds it */
            stream_unref(s);
            s = NULL;
        }
    } else if (s) {
        free(s);
        s = NULL;
    }
    pthread_t tid;
    pthread_attr_t attr;
    int started = 0;
    if (s && pthread_attr_init(&attr) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&tid, &attr, stream_main, s) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started) { /* no stream: the producer only frees arg; a plain 503 instead */
        if (r) {
            MHD_destroy_response(r); /* the response's reference */
            stream_unref(s);         /* the producer's */
        }
        fn(NULL, arg);
        free(resp->body);
        *resp = (struct lucy_http_response){.fd = -1};
        lucy_http_reply_error(resp, LUCY_HTTP_DEPENDENCY_UNAVAILABLE, 5,
                              stopping ? "lucy is shutting down; ask again shortly"
                                       : "lucy cannot start another streamed reply now; ask "
                                         "again shortly, or without \"stream\"");
        return lucy_http_send_reply(h, conn, method, route, resp);
    }
    free(resp->body); /* a streamed reply has no body of its own */
    resp->body = NULL;
    lucy_http_response_headers(r, resp);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)resp->status, r);
    MHD_destroy_response(r); /* libmicrohttpd holds it while sending; then stream_free */
    lucy_http_count(h, method, route, resp->status);
    return ok;
}
