/*
 * server_int.h - what server.c (routing, auth, replies) and guard.c (the
 * defences against hostile clients) share: the server's and a request's
 * state. Private to src/http/.
 */
#ifndef LUCY_HTTP_SERVER_INT_H
#define LUCY_HTTP_SERVER_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

#include "../thread.h"
#include "http.h"

#define MAX_COUNTS 256
#define BODY_BUDGET_BYTES                                                                          \
    ((size_t)64 * 1024 * 1024) /* default: bodies in memory, all connections */

/* One accepted connection, for the request deadline (see the header). */
struct conn_rec {
    struct conn_rec *prev, *next; /* in lucy_http.conns */
    int fd;                       /* its socket (libmicrohttpd's) */
    int receiving;                /* a request is arriving: the deadline applies */
    int cut;                      /* the reaper shut it down */
    int escaped_nul;              /* the current request's URL held %00 */
    int64_t started_mono_ms;      /* when the current request started */
};

struct count {
    char method[8];           /* request method */
    char route[96];           /* pattern, or "unmatched" */
    int status;               /* HTTP status sent */
    unsigned long long count; /* how many */
};

struct lucy_http {
    struct lucy_ctx *ctx;       /* handed to handlers */
    char *token;                /* LUCY_API_TOKEN or NULL */
    int threads;                /* pool size */
    struct lucy_route *routes;  /* the table (copied rows) */
    size_t n_routes, cap;       /* used / allocated */
    struct MHD_Daemon *daemon;  /* running server */
    pthread_mutex_t count_lock; /* guards counts */
    struct count counts[MAX_COUNTS];
    int n_counts;
    pthread_mutex_t defer_lock; /* guards n_deferred, stopping, conn_state.resumed */
    pthread_cond_t defer_idle;  /* broadcast when n_deferred or n_streams drops to 0 */
    pthread_cond_t resumed;     /* broadcast when a blocking deferred reply is resumed */
    int n_deferred;             /* suspended connections with a deferred reply */
    int n_streams;              /* streamed replies not yet over (stream.c), under defer_lock */
    int stopping;               /* lucy_http_stop() runs: defer without suspending */
    pthread_mutex_t conns_lock; /* guards conns and every conn_rec */
    struct conn_rec *conns;     /* open connections */
    struct lucy_thread reaper;  /* "http-reaper": enforces request_timeout_ms */
    int64_t request_timeout_ms; /* whole request must arrive within this */
    size_t body_bytes;          /* bodies held now, all connections (atomic) */
    size_t body_budget;         /* most body_bytes may reach (lucy_http_set_body_budget) */
    size_t body_peak;           /* most held since the last malloc_trim (atomic) */
};

struct conn_state {
    struct lucy_http_request req;    /* what handlers see */
    const struct lucy_route *route;  /* matched row, NULL when answered early */
    char *body;                      /* accumulated body */
    size_t body_len, body_cap;       /* bytes used / allocated */
    size_t limit;                    /* route's body limit */
    int too_large;                   /* body exceeded the limit */
    int over_budget;                 /* all bodies together exceeded the budget */
    struct lucy_http_response early; /* an error decided before the body came (draining) */
    const char *early_label;         /* its route label for the counters */
    int answered;                    /* a reply was queued early */
    struct lucy_http *h;             /* the server */
    lucy_http_finish_fn finish;      /* deferred reply: builds it after resume */
    void *finish_arg;                /* its argument */
    int deferred;                    /* finish not run yet */
    int blocking;                    /* deferred without suspension (server stopping) */
    int resumed;                     /* blocking: lucy_http_resume() was called */
    lucy_http_producer_fn stream_fn; /* streamed reply: its producer (lucy_http_reply_stream) */
    void *stream_arg;                /* its argument */
};

/* ---- server.c, for stream.c --------------------------------------------------- */

/* Queues resp (a body or a file) on conn and counts it. */
enum MHD_Result lucy_http_send_reply(struct lucy_http *h, struct MHD_Connection *conn,
                                     const char *method, const char *route,
                                     struct lucy_http_response *resp);
/* Adds resp's Content-Type, Cache-Control (no-store unless resp has its
 * own), Retry-After and extra headers to r. */
void lucy_http_response_headers(struct MHD_Response *r, const struct lucy_http_response *resp);
/* Counts one reply for /metrics. Any thread. */
void lucy_http_count(struct lucy_http *h, const char *method, const char *route, int status);

/* ---- stream.c ---------------------------------------------------------------- */

/* After the handler called lucy_http_reply_stream: starts producer fn on
 * its thread and queues resp's status and headers with a streamed body;
 * if no stream can start (shutting down, no thread, no memory) calls
 * fn(NULL, arg) and sends a 503 instead. On the pool thread that ran the
 * handler. */
enum MHD_Result lucy_http_stream_start(struct lucy_http *h, struct MHD_Connection *conn,
                                       const char *method, const char *route,
                                       struct lucy_http_response *resp, lucy_http_producer_fn fn,
                                       void *arg);

/* ---- ratelimit.c --------------------------------------------------------------
 * The per-client API rate limit (DESIGN §4): which routes it covers and the
 * check, run by first_call() once the bearer token passed. */

/* 1 when the route pattern is one the API limit covers (/v1/..., /ask,
 * /mcp). Pure. */
int lucy_http_ratelimit_applies(const char *pattern);

/* One GCRA step for the client of conn on route pattern (through
 * h->ctx->kv; no limit without a kv or on other routes). Returns 0 when the
 * request may go on, else 1 with resp set to the 429 rate_limited reply
 * (Retry-After: the seconds until one more request is allowed, >= 1). Any
 * HTTP thread; may wait up to the kv's timeout. */
int lucy_http_ratelimit_check(struct lucy_http *h, struct MHD_Connection *conn, const char *pattern,
                              struct lucy_http_response *resp);

/* ---- guard.c ----------------------------------------------------------------
 * Every function here is called by server.c only; threads as noted. */

/* Before MHD_start_daemon: raises the descriptor limit for the connection
 * limit and fixes malloc's mmap threshold (big bodies go back to the
 * system when freed). Returns the connection limit to give libmicrohttpd. */
unsigned lucy_http_guard_prepare(void);

/* MHD_OPTION_NOTIFY_CONNECTION callback (cls = the server): keeps a
 * record per connection for the request deadline. libmicrohttpd threads. */
void lucy_http_guard_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                                   enum MHD_ConnectionNotificationCode code);

/* Marks whether conn is receiving a request (the deadline applies), and
 * since when (CLOCK_MONOTONIC ms). libmicrohttpd threads. */
void lucy_http_guard_receiving(struct lucy_http *h, struct MHD_Connection *conn, int receiving,
                               int64_t since_mono_ms);

/* 1 when the request announces a body (of at most the drain limit, or
 * chunked) that the client is still to send: a refusal then waits until it
 * is read, so every client reads its error. */
int lucy_http_guard_body_follows(struct MHD_Connection *conn);

/* Grows cs->body to hold at least want bytes, charging the budget all
 * connections share. 0; 1 when the budget is spent (cs->over_budget set,
 * body dropped: the request is answered 503); -1 out of memory. */
int lucy_http_guard_grow_body(struct conn_state *cs, size_t want);

/* Frees cs->body and gives its bytes back to the budget. */
void lucy_http_guard_release_body(struct conn_state *cs);

/* MHD_OPTION_UNESCAPE_CALLBACK (cls = the server): percent-decodes s in
 * place like libmicrohttpd and remembers when it decoded a NUL (%00),
 * which would cut a C string (an id) short. Returns the decoded length. */
size_t lucy_http_guard_unescape(void *cls, struct MHD_Connection *conn, char *s);

/* 1 when the current request's path or query decoded a NUL; clears it. */
int lucy_http_guard_take_escaped_nul(struct lucy_http *h, struct MHD_Connection *conn);

/* Starts / stops the "http-reaper" thread (0 or LUCY_ENOMEM). */
int lucy_http_guard_start(struct lucy_http *h);
void lucy_http_guard_stop(struct lucy_http *h);

#endif
