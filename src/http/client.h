/*
 * client.h - one outgoing HTTP request with libcurl, the way every lucy
 * client (Qdrant, the Graph API, the ASR, LLM and embedding servers) needs
 * it: a deadline for the whole call, a cap on the reply's size, a bearer
 * token, a reply buffer or a streaming sink, and curl's reason when there
 * was no answer. Also a small pool of easy handles so a client keeps its
 * connections alive across calls.
 *
 * Usage:
 *     struct lucy_http_call c = {.method = "POST", .url = u, .body = json,
 *                                .body_len = n, .timeout_ms = 5000};
 *     int rc = lucy_http_client_perform(NULL, &c);
 *     if (rc == 0 && c.status == 200) ... c.reply, c.reply_len ...
 *     lucy_http_call_free(&c);
 *
 * Thread safety: a call and an easy handle belong to one thread at a time;
 * a pool may be shared. libcurl is opened on the first call (libcurl.h);
 * when it cannot be, every call fails with LUCY_EUNAVAIL and error says
 * what to install.
 */
#ifndef LUCY_HTTP_CLIENT_H
#define LUCY_HTTP_CLIENT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stddef.h>

#define LUCY_HTTP_CLIENT_MAX_HEADERS 4
#define LUCY_HTTP_CLIENT_REPLY_CAP   (16u * 1024 * 1024) /* default reply cap, bytes */

/* Receives the reply's bytes as they arrive instead of the reply buffer.
 * Returns 0 to go on, non-zero to abort the transfer (perform then fails
 * with LUCY_EUNAVAIL and error names the sink). */
typedef int (*lucy_http_sink_fn)(void *arg, const char *data, size_t n);

struct lucy_http_call {
    /* -- request (borrowed; must outlive the call) -- */
    const char *method;                                /* NULL: GET, or POST with a body */
    const char *url;                                   /* http:// or https:// only */
    const char *bearer;                                /* adds "Authorization: Bearer ..." */
    const char *headers[LUCY_HTTP_CLIENT_MAX_HEADERS]; /* "Name: value"; NULL ends */
    const char *body;                                  /* request body, or NULL */
    size_t body_len;                                   /* bytes of body */
    const char *content_type;                          /* of body; NULL: application/json */
    curl_mime *mime;         /* multipart body instead of body (owned by caller) */
    long timeout_ms;         /* the whole call; <= 0: 30 s */
    long connect_timeout_ms; /* <= 0: min(timeout_ms, 10 s) */
    long stall_bytes_per_s;  /* > 0: abort when slower than this ... */
    long stall_s;            /* ... for this many seconds */
    int follow_redirects;    /* 1: up to 3 redirects, http(s) only */
    size_t reply_cap;        /* bytes kept in reply; 0: LUCY_HTTP_CLIENT_REPLY_CAP */
    lucy_http_sink_fn sink;  /* stream the reply here instead of reply */
    void *sink_arg;          /* passed to sink */
    /* -- answer (filled by perform; free with lucy_http_call_free) -- */
    long status;      /* HTTP status of the answer; 0 = no answer */
    char *reply;      /* malloc'd body, NUL-terminated; NULL when empty or sunk */
    size_t reply_len; /* bytes of reply */
    int too_big;      /* the reply went over reply_cap (the call failed) */
    char error[256];  /* when perform fails: why, in curl's words */
};

/* Performs call on the easy handle c (reset first; its connection cache
 * is kept), or on a one-shot handle when c is NULL. Returns 0 when an HTTP
 * answer arrived, whatever its status (read call->status); LUCY_ETIMEDOUT
 * when the deadline passed; LUCY_EUNAVAIL when there was no answer (refused,
 * DNS, TLS, reset, a reply over the cap, a sink that aborted, libcurl not
 * installed); LUCY_ENOMEM.
 * On failure call->error says why (never a secret: headers are not
 * echoed). call->reply may hold a partial body on failure; always call
 * lucy_http_call_free(). */
int lucy_http_client_perform(CURL *c, struct lucy_http_call *call);

/* Frees call->reply (and resets it). Safe to call twice. */
void lucy_http_call_free(struct lucy_http_call *call);

/* A pool of idle easy handles (keep-alive across calls from any thread).
 * Zero-initialise it with LUCY_HTTP_POOL_INIT; free it with
 * lucy_http_pool_free() once no call uses it. */
#define LUCY_HTTP_POOL_MAX 8
struct lucy_http_pool {
    pthread_mutex_t lock;           /* guards idle, n_idle */
    CURL *idle[LUCY_HTTP_POOL_MAX]; /* handles not in use */
    int n_idle;
};
#define LUCY_HTTP_POOL_INIT                                                                        \
    {                                                                                              \
        .lock = PTHREAD_MUTEX_INITIALIZER                                                          \
    }

/* Performs call on a handle taken from pool (or a new one) and gives the
 * handle back when the call got an answer (its connection is reusable),
 * else cleans it up. Same results as lucy_http_client_perform(). */
int lucy_http_pool_perform(struct lucy_http_pool *pool, struct lucy_http_call *call);

/* Cleans up every idle handle. */
void lucy_http_pool_free(struct lucy_http_pool *pool);

#endif
