/*
 * guard.c - the HTTP server's defences against hostile clients (DESIGN §11).
 *
 * libmicrohttpd's connection timeout is an IDLE timeout: a client sending a
 * byte every few seconds never hits it. So every connection also has a
 * record (MHD_OPTION_NOTIFY_CONNECTION) with the time its current request started; the
 * "http-reaper" thread shuts down the socket of any connection still receiving a request after
 * request_timeout_s (libmicrohttpd then sees EOF and closes it; the record
 * is removed in the CLOSED notification, which runs before libmicrohttpd
 * closes the descriptor, under the same lock: the reaper never touches a
 * reused descriptor). Bodies are held in memory until the handler runs
 * (the webhook's signature covers the raw bytes), so all bodies in flight
 * share one budget (LUCY_HTTP_BODY_BUDGET_MB, 64): past it a request is answered 503
 * with Retry-After instead of buffering more, and large bodies are
 * mmap'ed (a fixed M_MMAP_THRESHOLD) so their memory goes back to the
 * system when they are freed.
 *
 * A refused request (404, 401, 413 ...) with a body still coming is
 * answered only after that body was read and dropped (up to
 * DRAIN_MAX_BYTES): a client still sending when the reply arrives and the
 * connection closes sees a broken pipe instead of the error.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "../clock.h"
#include "../error.h"
#include "../log.h"
#include "server_int.h"

#define MMAP_THRESHOLD_BYTES (128 * 1024) /* larger blocks: mmap, freed to the OS */
#define REAPER_TICK_MS       500
#define CONNECTION_LIMIT     4096 /* all addresses; needs as many descriptors */
#define DESCRIPTORS_SPARE    256  /* for the store, the recordings, clients */
#define DRAIN_MAX_BYTES      ((uint64_t)64 * 1024 * 1024) /* read (and drop) a refused body */

unsigned lucy_http_guard_prepare(void)
{
    unsigned limit = CONNECTION_LIMIT;
    struct rlimit rl;
    rlim_t want = (rlim_t)CONNECTION_LIMIT + DESCRIPTORS_SPARE;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want)
            limit = rl.rlim_cur > 2 * DESCRIPTORS_SPARE ? (unsigned)rl.rlim_cur - DESCRIPTORS_SPARE
                                                        : DESCRIPTORS_SPARE;
    }
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES); /* fixed: freed bodies leave the heap */
    return limit;
}

/* 1 when the request announces a body of at most DRAIN_MAX_BYTES (or a
 * chunked one) that the client is still to send. */
int lucy_http_guard_body_follows(struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
    if (te && strcasestr(te, "chunked"))
        return 1;
    if (!cl)
        return 0;
    unsigned long long n = strtoull(cl, NULL, 10);
    return n > 0 && n <= DRAIN_MAX_BYTES;
}

/* Marks whether conn is receiving a request (the deadline applies), and
 * since when. */
void lucy_http_guard_receiving(struct lucy_http *h, struct MHD_Connection *conn, int receiving,
                               int64_t since_mono_ms)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_rec *rec = ci ? ci->socket_context : NULL;
    if (!rec)
        return;
    pthread_mutex_lock(&h->conns_lock);
    rec->receiving = receiving;
    if (receiving)
        rec->started_mono_ms = since_mono_ms;
    pthread_mutex_unlock(&h->conns_lock);
}

void lucy_http_guard_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                                   enum MHD_ConnectionNotificationCode code)
{
    struct lucy_http *h = cls;
    struct conn_rec *rec = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || !(rec = calloc(1, sizeof *rec)))
            return; /* no deadline for this one connection; the idle timeout still applies */
        rec->fd = ci->connect_fd;
        rec->receiving = 1;
        rec->started_mono_ms = lucy_mono_ms();
        pthread_mutex_lock(&h->conns_lock);
        rec->next = h->conns;
        if (h->conns)
            h->conns->prev = rec;
        h->conns = rec;
        pthread_mutex_unlock(&h->conns_lock);
        *socket_context = rec;
    } else if (rec) { /* CLOSED: before libmicrohttpd closes rec->fd */
        pthread_mutex_lock(&h->conns_lock);
        if (rec->prev)
            rec->prev->next = rec->next;
        else
            h->conns = rec->next;
        if (rec->next)
            rec->next->prev = rec->prev;
        pthread_mutex_unlock(&h->conns_lock);
        free(rec);
        *socket_context = NULL;
    }
}

/* The "http-reaper" thread: closes connections whose request is late, and
 * gives freed body memory back to the system after a busy spell. */
static void reaper_main(void *arg)
{
    struct lucy_http *h = arg;
    do {
        int64_t now = lucy_mono_ms();
        int cut = 0;
        pthread_mutex_lock(&h->conns_lock);
        for (struct conn_rec *r = h->conns; r; r = r->next)
            if (r->receiving && !r->cut && now - r->started_mono_ms > h->request_timeout_ms) {
                shutdown(r->fd, SHUT_RDWR);
                r->cut = 1;
                cut++;
            }
        pthread_mutex_unlock(&h->conns_lock);
        if (cut)
            lucy_log(LUCY_LOG_INFO, "closed connections whose request did not arrive in time",
                     "{s:i,s:I}", "connections", cut, "request_timeout_s",
                     (json_int_t)(h->request_timeout_ms / 1000));
        if (__atomic_load_n(&h->body_bytes, __ATOMIC_RELAXED) == 0 &&
            __atomic_exchange_n(&h->body_peak, 0, __ATOMIC_RELAXED) > (size_t)16 * 1024 * 1024)
            malloc_trim(0);
    } while (!lucy_thread_nap(&h->reaper, REAPER_TICK_MS));
}

/* Grows cs->body to hold at least want bytes, charging the budget shared by
 * all connections. Returns 0, or 1 when the budget is spent (cs->over_budget
 * set, body dropped: the request is answered 503), or -1 out of memory. */
int lucy_http_guard_grow_body(struct conn_state *cs, size_t want)
{
    size_t cap = cs->body_cap ? cs->body_cap : 4096;
    while (cap < want)
        cap *= 2;
    if (cap > cs->limit + 1 && want <= cs->limit + 1)
        cap = cs->limit + 1; /* never more than the route accepts */
    size_t extra = cap - cs->body_cap;
    size_t held = __atomic_add_fetch(&cs->h->body_bytes, extra, __ATOMIC_RELAXED);
    if (held > cs->h->body_budget) {
        __atomic_sub_fetch(&cs->h->body_bytes, extra, __ATOMIC_RELAXED);
        cs->over_budget = 1;
        lucy_http_guard_release_body(cs);
        return 1;
    }
    size_t peak = __atomic_load_n(&cs->h->body_peak, __ATOMIC_RELAXED);
    while (held > peak && !__atomic_compare_exchange_n(&cs->h->body_peak, &peak, held, 0,
                                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    char *b = realloc(cs->body, cap);
    if (!b) {
        __atomic_sub_fetch(&cs->h->body_bytes, extra, __ATOMIC_RELAXED);
        return -1;
    }
    cs->body = b;
    cs->body_cap = cap;
    return 0;
}

/* Frees cs->body and gives its bytes back to the budget. */
void lucy_http_guard_release_body(struct conn_state *cs)
{
    if (cs->body_cap)
        __atomic_sub_fetch(&cs->h->body_bytes, cs->body_cap, __ATOMIC_RELAXED);
    free(cs->body);
    cs->body = NULL;
    cs->body_len = cs->body_cap = 0;
}

static struct conn_rec *rec_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

size_t lucy_http_guard_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    struct lucy_http *h = cls;
    size_t n = MHD_http_unescape(s);
    struct conn_rec *rec = memchr(s, '\0', n) ? rec_of(conn) : NULL;
    if (rec) {
        pthread_mutex_lock(&h->conns_lock);
        rec->escaped_nul = 1;
        pthread_mutex_unlock(&h->conns_lock);
    }
    return n;
}

int lucy_http_guard_take_escaped_nul(struct lucy_http *h, struct MHD_Connection *conn)
{
    struct conn_rec *rec = rec_of(conn);
    if (!rec)
        return 0;
    pthread_mutex_lock(&h->conns_lock);
    int nul = rec->escaped_nul;
    rec->escaped_nul = 0;
    pthread_mutex_unlock(&h->conns_lock);
    return nul;
}

int lucy_http_guard_start(struct lucy_http *h)
{
    h->reaper = (struct lucy_thread){.name = "http-reaper", .main = reaper_main, .arg = h};
    return lucy_thread_start(&h->reaper);
}

void lucy_http_guard_stop(struct lucy_http *h)
{
    lucy_thread_stop(&h->reaper);
}
