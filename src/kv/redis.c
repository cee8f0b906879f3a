/*
 * redis.c - the shared kv backend: Redis through hiredis (synchronous API).
 *
 * Connections: a small pool (LUCY_REDIS_POOL_SIZE, default 4). A caller
 * takes an idle connection or opens one (redisConnectWithTimeout, then
 * AUTH and SELECT from REDIS_URL), and waits for a free one no longer than
 * its timeout. Every command runs with the caller's remaining time as the
 * socket's send/receive timeout (redisSetTimeout), so a hung Redis (e.g.
 * SIGSTOPped: the kernel still accepts the TCP connection) costs at most
 * the timeout. A connection that failed is closed, never reused.
 *
 * Reconnect with backoff: a connection error or timeout opens a window
 * (100 ms, doubling to 5 s) during which callers fail fast with the last
 * error instead of each paying the timeout; the first call after the
 * window (or the prober's forced ping) probes again, and success closes
 * the window. The window also drops idle connections (a killed server
 * leaves them all dead). A command that fails on a reused connection with
 * a connection error (not a timeout) is retried once on a fresh one when
 * it is idempotent (GET, SET, DEL, PING, INFO).
 *
 * Errors are typed by the reply's first word (lucy_kv_err_kind_of_reply):
 * MISCONF, LOADING, READONLY, NOAUTH, WRONGPASS, NOPERM, OOM, BUSY; hiredis
 * I/O errors become CONN or TIMEOUT. Messages never contain the password.
 *
 * Rate limiting: GCRA in ONE Lua script (below), run with EVALSHA and
 * falling back to EVAL on NOSCRIPT, so it is atomic across every lucy
 * instance sharing the server. It takes the time from the server (TIME),
 * so instances with skewed clocks still agree; Redis 7 replicates a
 * script's effects, which makes TIME safe to use in a writing script.
 *
 * Name resolution (getaddrinfo inside hiredis) is not bounded by the
 * timeout: put an address, or a name from /etc/hosts, in REDIS_URL when
 * DNS may hang.
 *
 * Callers must ignore SIGPIPE (lucy serve does): hiredis writes with
 * write(2) and a peer that went away would otherwise kill the process.
 *
 * Also here, because only this backend needs them: the REDIS_URL parser
 * and the server administration slots (INFO, CONFIG SET, BGSAVE) behind
 * LUCY_KV_CAP_ADMIN. Over 700 lines: one backend is one file (one vtable
 * over one private struct, like curl's vtls backends).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "../clock.h"
#include "../error.h"
#include "kv.h"
#include "kv_int.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* GCRA (see kv_gcra() in kv.c for the same arithmetic). KEYS[1] = key,
 * ARGV[1] = emission interval T in microseconds, ARGV[2] = burst, ARGV[3] =
 * the event time in microseconds, or 0 for the server's TIME.
 * Returns {allowed 0|1, retry_after_ms, remaining}. The stored value is the
 * theoretical arrival time in microseconds; it expires once that time has
 * passed by the server's clock (at least 1 s, for events with an old time). */
/* clang-format off */
static const char gcra_lua[] =
    "local t = redis.call('TIME')\n"
    "local clock = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local now = tonumber(ARGV[3])\n"
    "if now <= 0 then now = clock end\n"
    "local T = tonumber(ARGV[1])\n"
    "local dvt = T * tonumber(ARGV[2])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or 0)\n"
    "if tat < now then tat = now end\n"
    "local new_tat = tat + T\n"
    "local allow_at = new_tat - dvt\n"
    "if now < allow_at then\n"
    "  return {0, math.ceil((allow_at - now) / 1000), 0}\n"
    "end\n"
    "redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX',\n"
    "           math.max(1000, math.ceil((new_tat - clock) / 1000)))\n"
    "return {1, 0, math.floor((dvt - (new_tat - now)) / T)}\n";
/* clang-format on */

struct conn {
    redisContext *c;   /* connected and authenticated */
    unsigned gen;      /* pool generation it was opened in */
    struct conn *next; /* idle list link */
};

struct redis_kv {
    struct lucy_kv_redis_url url;  /* parsed REDIS_URL (holds the password) */
    char where[300];               /* "host:port/db" for messages */
    char prefix[64];               /* key prefix */
    int timeout_ms;                /* default per call */
    int pool_size;                 /* connections at most */
    char gcra_sha[41];             /* SHA1 hex of gcra_lua */
    pthread_mutex_t lock;          /* guards everything below */
    pthread_cond_t freed;          /* a connection went back or was closed */
    struct conn *idle;             /* idle connections */
    int n_open;                    /* open connections, idle or in use */
    unsigned gen;                  /* bumped when the server went away */
    int backoff_ms;                /* current window length; 0 = none */
    int64_t backoff_until_ms;      /* monotonic end of the window */
    struct lucy_kv_error down_err; /* why the window is open */
};

static struct timeval tv_of(int ms)
{
    if (ms < 1)
        ms = 1;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

static int remaining_ms(int64_t deadline)
{
    int64_t r = deadline - lucy_mono_ms();
    return r < 1 ? 1 : (int)r;
}

/* Types a hiredis context error (connection level). */
static int conn_error(struct redis_kv *r, redisContext *c, int saved_errno, int timeout_ms,
                      const char *what, struct lucy_kv_error *err)
{
    const char *s = c ? c->errstr : "out of memory";
    int timed_out = saved_errno == EAGAIN || saved_errno == EWOULDBLOCK ||
                    saved_errno == ETIMEDOUT || strstr(s, "timed out") ||
                    strstr(s, "temporarily unavailable");
    if (timed_out)
        return lucy_kv_err_set(err, LUCY_KV_ERR_TIMEOUT,
                               "Redis at %s did not answer %s within %d ms (%s)", r->where, what,
                               timeout_ms, s);
    return lucy_kv_err_set(err, LUCY_KV_ERR_CONN, "Redis at %s: %s failed: %s", r->where, what,
                           s[0] ? s : "connection closed");
}

/* Types an error reply. */
static int reply_error(struct redis_kv *r, const redisReply *rep, const char *what,
                       struct lucy_kv_error *err)
{
    return lucy_kv_err_set(err, lucy_kv_err_kind_of_reply(rep->str), "Redis at %s refused %s: %s",
                           r->where, what, rep->str ? rep->str : "");
}

static void free_conn(struct conn *cn)
{
    if (cn) {
        redisFree(cn->c);
        free(cn);
    }
}

/* Opens the backoff window after a connection-level failure. */
static void went_away(struct redis_kv *r, const struct lucy_kv_error *why)
{
    struct conn *drop = NULL;
    pthread_mutex_lock(&r->lock);
    int64_t now = lucy_mono_ms();
    if (now >= r->backoff_until_ms) {
        r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (r->backoff_ms > BACKOFF_MAX_MS)
            r->backoff_ms = BACKOFF_MAX_MS;
        r->backoff_until_ms = now + r->backoff_ms;
    }
    r->down_err = *why;
    r->gen++;
    drop = r->idle;
    r->idle = NULL;
    for (struct conn *c = drop; c; c = c->next)
        r->n_open--;
    pthread_cond_broadcast(&r->freed);
    pthread_mutex_unlock(&r->lock);
    while (drop) {
        struct conn *next = drop->next;
        free_conn(drop);
        drop = next;
    }
}

static void came_back(struct redis_kv *r)
{
    pthread_mutex_lock(&r->lock);
    r->backoff_ms = 0;
    r->backoff_until_ms = 0;
    pthread_mutex_unlock(&r->lock);
}

/* Runs one command on a fresh connection during set-up. */
static int setup_cmd(struct redis_kv *r, redisContext *c, int argc, const char **argv,
                     int64_t deadline, const char *what, struct lucy_kv_error *err)
{
    redisSetTimeout(c, tv_of(remaining_ms(deadline)));
    errno = 0;
    redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
    int saved = errno;
    if (!rep)
        return conn_error(r, c, saved, r->timeout_ms, what, err);
    int rc = 0;
    if (rep->type == REDIS_REPLY_ERROR)
        rc = reply_error(r, rep, what, err);
    freeReplyObject(rep);
    return rc;
}

/* Opens and prepares one connection. */
static int connect_one(struct redis_kv *r, int64_t deadline, redisContext **out,
                       struct lucy_kv_error *err)
{
    *out = NULL;
    errno = 0;
    redisContext *c =
        redisConnectWithTimeout(r->url.host, r->url.port, tv_of(remaining_ms(deadline)));
    int saved = errno;
    if (!c)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory connecting to Redis");
    if (c->err) {
        int rc = conn_error(r, c, saved, r->timeout_ms, "connect", err);
        redisFree(c);
        return rc;
    }
    int rc = 0;
    if (r->url.password[0]) {
        const char *auth2[] = {"AUTH", r->url.password};
        const char *auth3[] = {"AUTH", r->url.user, r->url.password};
        rc = r->url.user[0] ? setup_cmd(r, c, 3, auth3, deadline, "AUTH", err)
                            : setup_cmd(r, c, 2, auth2, deadline, "AUTH", err);
    }
    if (rc == 0 && r->url.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->url.db);
        const char *sel[] = {"SELECT", db};
        rc = setup_cmd(r, c, 2, sel, deadline, "SELECT", err);
    }
    if (rc) {
        redisFree(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Takes a connection: idle, new, or the next one freed before deadline.
 * *reused = 1 when it had been used before. */
static int acquire(struct redis_kv *r, int force, int64_t deadline, struct conn **out, int *reused,
                   struct lucy_kv_error *err)
{
    *out = NULL;
    *reused = 0;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        int64_t now = lucy_mono_ms();
        if (!force && now < r->backoff_until_ms) {
            struct lucy_kv_error e = r->down_err;
            int64_t left = r->backoff_until_ms - now;
            pthread_mutex_unlock(&r->lock);
            return lucy_kv_err_set(err, e.kind, "%s (not retried for another %lld ms)", e.message,
                                   (long long)left);
        }
        if (r->idle) {
            struct conn *cn = r->idle;
            r->idle = cn->next;
            pthread_mutex_unlock(&r->lock);
            cn->next = NULL;
            *out = cn;
            *reused = 1;
            return 0;
        }
        if (r->n_open < r->pool_size) {
            r->n_open++;
            unsigned gen = r->gen;
            pthread_mutex_unlock(&r->lock);
            struct conn *cn = calloc(1, sizeof *cn);
            int rc = cn ? connect_one(r, deadline, &cn->c, err)
                        : lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
            if (rc) {
                free(cn);
                pthread_mutex_lock(&r->lock);
                r->n_open--;
                pthread_cond_broadcast(&r->freed);
                pthread_mutex_unlock(&r->lock);
                if (err && (err->kind == LUCY_KV_ERR_CONN || err->kind == LUCY_KV_ERR_TIMEOUT))
                    went_away(r, err);
                return rc;
            }
            cn->gen = gen;
            *out = cn;
            return 0;
        }
        int left = (int)(deadline - now);
        if (left <= 0) {
            int n = r->pool_size;
            pthread_mutex_unlock(&r->lock);
            return lucy_kv_err_set(err, LUCY_KV_ERR_TIMEOUT,
                                   "all %d Redis connections to %s stayed busy for the whole "
                                   "timeout; raise LUCY_REDIS_POOL_SIZE or check Redis latency",
                                   n, r->where);
        }
        struct timespec until = lucy_deadline_ms(CLOCK_MONOTONIC, left);
        pthread_cond_timedwait(&r->freed, &r->lock, &until);
    }
}

/* Returns a connection to the pool, or closes it when broken or stale. */
static void release(struct redis_kv *r, struct conn *cn, int broken)
{
    pthread_mutex_lock(&r->lock);
    if (broken || cn->gen != r->gen || cn->c->err) {
        r->n_open--;
        pthread_cond_broadcast(&r->freed);
        pthread_mutex_unlock(&r->lock);
        free_conn(cn);
        return;
    }
    cn->next = r->idle;
    r->idle = cn;
    pthread_cond_signal(&r->freed);
    pthread_mutex_unlock(&r->lock);
}

/* Runs a pipeline of n commands on one connection. replies[i] are the
 * replies (caller frees each with freeReplyObject) unless an error is
 * returned. An error reply is NOT an error here (the caller types it), so
 * callers can look at every reply of a pipeline. retry_safe: the commands
 * are idempotent and may be resent once on a fresh connection. */
static int run(struct redis_kv *r, int force, int timeout_ms, int retry_safe, int n,
               const int *argc, const char *const *argv[], const size_t *const argvlen[],
               redisReply **replies, const char *what, struct lucy_kv_error *err)
{
    int64_t deadline = lucy_mono_ms() + timeout_ms;
    for (int attempt = 0;; attempt++) {
        struct conn *cn;
        int reused;
        int rc = acquire(r, force, deadline, &cn, &reused, err);
        if (rc)
            return rc;
        redisSetTimeout(cn->c, tv_of(remaining_ms(deadline)));
        for (int i = 0; i < n; i++)
            redisAppendCommandArgv(cn->c, argc[i], (const char **)argv[i],
                                   argvlen ? argvlen[i] : NULL);
        int got = 0, saved = 0;
        for (; got < n; got++) {
            void *rep = NULL;
            errno = 0;
            if (redisGetReply(cn->c, &rep) != REDIS_OK || !rep) {
                saved = errno;
                break;
            }
            replies[got] = rep;
        }
        if (got == n) {
            release(r, cn, 0);
            came_back(r);
            return 0;
        }
        for (int i = 0; i < got; i++)
            freeReplyObject(replies[i]);
        rc = conn_error(r, cn->c, saved, timeout_ms, what, err);
        release(r, cn, 1);
        if (err->kind == LUCY_KV_ERR_CONN && reused && retry_safe && attempt == 0 &&
            lucy_mono_ms() < deadline)
            continue;
        went_away(r, err);
        return rc;
    }
}

/* One command; an error reply becomes a typed error. */
static int run1(struct redis_kv *r, int force, int timeout_ms, int retry_safe, int argc,
                const char **argv, const size_t *argvlen, redisReply **reply, const char *what,
                struct lucy_kv_error *err)
{
    const char *const *av[1] = {argv};
    const size_t *const al[1] = {argvlen};
    int ac[1] = {argc};
    *reply = NULL;
    int rc =
        run(r, force, timeout_ms, retry_safe, 1, ac, av, argvlen ? al : NULL, reply, what, err);
    if (rc)
        return rc;
    if ((*reply)->type == REDIS_REPLY_ERROR) {
        rc = reply_error(r, *reply, what, err);
        freeReplyObject(*reply);
        *reply = NULL;
    }
    return rc;
}

static char *prefixed(struct redis_kv *r, const char *key)
{
    char *k = NULL;
    if (asprintf(&k, "%s%s", r->prefix, key) < 0)
        return NULL;
    return k;
}

/* ---- redis:// URLs -------------------------------------------------------- */

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* Copies s[0..n) into out (outlen bytes) decoding %XX. 0 or -1. */
static int decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

int lucy_kv_redis_url_parse(const char *url, struct lucy_kv_redis_url *out, char *err,
                            size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url || strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen,
                 "REDIS_URL must start with redis:// (rediss:// and unix sockets are not "
                 "supported): redis://[[user]:password@]host[:port][/db]");
        return LUCY_EINVAL;
    }
    const char *p = url + 8;
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q; /* the last @: passwords may hold an unescaped one */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *uend = colon ? colon : at;
        if (decode(p, (size_t)(uend - p), out->user, sizeof out->user) != 0 ||
            (colon && decode(colon + 1, (size_t)(at - colon - 1), out->password,
                             sizeof out->password) != 0)) {
            snprintf(err, errlen,
                     "REDIS_URL has a malformed or too long user or password "
                     "(percent-encode special characters)");
            memset(out->password, 0, sizeof out->password);
            return LUCY_EINVAL;
        }
        if (!colon && out->user[0]) {
            /* redis://secret@host: treat a lone userinfo as the password */
            snprintf(out->password, sizeof out->password, "%s", out->user);
            out->user[0] = '\0';
        }
        p = at + 1;
    }
    const char *hend;
    const char *hstart = p;
    if (*p == '[') {
        hstart = p + 1;
        hend = memchr(hstart, ']', (size_t)(end - hstart));
        if (!hend) {
            snprintf(err, errlen, "REDIS_URL has an unterminated [IPv6] host");
            return LUCY_EINVAL;
        }
        p = hend + 1;
    } else {
        hend = memchr(p, ':', (size_t)(end - p));
        if (!hend)
            hend = end;
        p = hend;
    }
    size_t hl = (size_t)(hend - hstart);
    if (hl == 0 || hl >= sizeof out->host) {
        snprintf(err, errlen, "REDIS_URL has no host: redis://[[user]:password@]host[:port][/db]");
        return LUCY_EINVAL;
    }
    memcpy(out->host, hstart, hl);
    out->host[hl] = '\0';
    if (p < end && *p == ':') {
        char *e;
        long port = strtol(p + 1, &e, 10);
        if (e == p + 1 || e != end || port < 1 || port > 65535) {
            snprintf(err, errlen, "REDIS_URL has a bad port: expected 1 to 65535");
            return LUCY_EINVAL;
        }
        out->port = (int)port;
    } else if (p != end) {
        snprintf(err, errlen, "REDIS_URL has junk after the host");
        return LUCY_EINVAL;
    }
    if (*end == '/' && end[1] && end[1] != '?' && end[1] != '#') {
        char *e;
        long db = strtol(end + 1, &e, 10);
        if (e == end + 1 || (*e && *e != '?' && *e != '#') || db < 0 || db > 1000000) {
            snprintf(err, errlen, "REDIS_URL has a bad database number after the /");
            return LUCY_EINVAL;
        }
        out->db = (int)db;
    }
    return 0;
}

int lucy_kv_redis_url_check(const char *url, char *err, size_t errlen)
{
    struct lucy_kv_redis_url parsed;
    int rc = lucy_kv_redis_url_parse(url, &parsed, err, errlen);
    explicit_bzero(parsed.password, sizeof parsed.password); /* a secret: not left on the stack */
    return rc;
}

/* ---- open / close --------------------------------------------------------- */

static int open_(const struct lucy_kv_options *opt, void **st, struct lucy_kv_error *err)
{
    struct redis_kv *r = calloc(1, sizeof *r);
    if (!r)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    char why[256];
    if (lucy_kv_redis_url_parse(opt->redis_url, &r->url, why, sizeof why) != 0) {
        free(r);
        return lucy_kv_err_set(err, LUCY_KV_ERR_INVALID, "%s", why);
    }
    snprintf(r->where, sizeof r->where, "%s:%d/%d", r->url.host, r->url.port, r->url.db);
    snprintf(r->prefix, sizeof r->prefix, "%s", opt->key_prefix ? opt->key_prefix : "lucy:");
    r->timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : 500;
    r->pool_size = opt->pool_size > 0 ? opt->pool_size : 4;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(gcra_lua, sizeof gcra_lua - 1, md, &mdlen, EVP_sha1(), NULL);
    for (unsigned i = 0; i < mdlen && i < 20; i++)
        snprintf(r->gcra_sha + 2 * i, 3, "%02x", md[i]);
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->freed, &ca);
    pthread_condattr_destroy(&ca);
    *st = r;
    return 0;
}

static void close_(void *st)
{
    struct redis_kv *r = st;
    while (r->idle) {
        struct conn *next = r->idle->next;
        free_conn(r->idle);
        r->idle = next;
    }
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->freed);
    explicit_bzero(&r->url, sizeof r->url);
    free(r);
}

/* ---- data commands -------------------------------------------------------- */

static int get(void *st, const char *key, char **value, size_t *len, int timeout_ms,
               struct lucy_kv_error *err)
{
    struct redis_kv *r = st;
    char *k = prefixed(r, key);
    if (!k)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    const char *argv[] = {"GET", k};
    redisReply *rep;
    int rc = run1(r, 0, timeout_ms, 1, 2, argv, NULL, &rep, "GET", err);
    free(k);
    if (rc)
        return rc;
    if (rep->type == REDIS_REPLY_NIL) {
        rc = LUCY_ENOTFOUND;
    } else if (rep->type != REDIS_REPLY_STRING) {
        rc = lucy_kv_err_set(err, LUCY_KV_ERR_PROTOCOL, "GET answered type %d", rep->type);
    } else if (!(*value = malloc(rep->len + 1))) {
        rc = lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    } else {
        memcpy(*value, rep->str, rep->len);
        (*value)[rep->len] = '\0';
        *len = rep->len;
    }
    freeReplyObject(rep);
    return rc;
}

/* MGET: one round trip for every key (contacts lists, the worker's
 * batch). Cluster mode is not supported anyway (DESIGN §1: one Redis). */
static int get_many(void *st, const char *const *keys, size_t n, char **values, size_t *lens,
                    int timeout_ms, struct lucy_kv_error *err)
{
    struct redis_kv *r = st;
    const char **argv = calloc(n + 1, sizeof *argv);
    char **owned = calloc(n, sizeof *owned);
    int rc = 0;
    if (!argv || !owned)
        rc = lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!(owned[i] = prefixed(r, keys[i])))
            rc = lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    redisReply *rep = NULL;
    if (rc == 0) {
        argv[0] = "MGET";
        for (size_t i = 0; i < n; i++)
            argv[i + 1] = owned[i];
        rc = run1(r, 0, timeout_ms, 1, (int)n + 1, argv, NULL, &rep, "MGET", err);
    }
    if (rc == 0 && (rep->type != REDIS_REPLY_ARRAY || rep->elements != n))
        rc = lucy_kv_err_set(err, LUCY_KV_ERR_PROTOCOL, "MGET answered type %d with %zu items",
                             rep->type, rep->elements);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const redisReply *e = rep->element[i];
        if (e->type == REDIS_REPLY_NIL)
            continue;
        if (e->type != REDIS_REPLY_STRING)
            rc = lucy_kv_err_set(err, LUCY_KV_ERR_PROTOCOL, "MGET item answered type %d", e->type);
        else if (!(values[i] = malloc(e->len + 1)))
            rc = lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
        else {
            memcpy(values[i], e->str, e->len);
            values[i][e->len] = '\0';
            lens[i] = e->len;
        }
    }
    if (rep)
        freeReplyObject(rep);
    for (size_t i = 0; owned && i < n; i++)
        free(owned[i]);
    free(owned);
    free(argv);
    return rc; /* the wrapper frees values[] on an error */
}

/* SET key value [PX ttl] [NX]; *stored = whether it was set. */
static int set_cmd(struct redis_kv *r, const char *key, const void *value, size_t len,
                   int64_t ttl_ms, int nx, int *stored, int timeout_ms, struct lucy_kv_error *err)
{
    char *k = prefixed(r, key);
    if (!k)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
    const char *argv[6] = {"SET", k, value, "PX", ttl, "NX"};
    size_t lens[6] = {3, strlen(k), len, 2, strlen(ttl), 2};
    int argc = 3;
    if (ttl_ms > 0)
        argc = 5;
    if (nx)
        argv[argc] = "NX", lens[argc] = 2, argc++;
    redisReply *rep;
    /* SET NX is not idempotent for our purpose: a resend could report
     * "already there" for our own write. */
    int rc = run1(r, 0, timeout_ms, !nx, argc, argv, lens, &rep, nx ? "SET NX" : "SET", err);
    free(k);
    if (rc)
        return rc;
    if (rep->type == REDIS_REPLY_STATUS)
        *stored = 1;
    else if (rep->type == REDIS_REPLY_NIL)
        *stored = 0;
    else
        rc = lucy_kv_err_set(err, LUCY_KV_ERR_PROTOCOL, "SET answered type %d", rep->type);
    freeReplyObject(rep);
    return rc;
}

static int set(void *st, const char *key, const void *value, size_t len, int64_t ttl_ms,
               int timeout_ms, struct lucy_kv_error *err)
{
    int stored;
    return set_cmd(st, key, value, len, ttl_ms, 0, &stored, timeout_ms, err);
}

static int set_if_absent(void *st, const char *key, const void *value, size_t len, int64_t ttl_ms,
                         int *stored, int timeout_ms, struct lucy_kv_error *err)
{
    return set_cmd(st, key, value, len, ttl_ms, 1, stored, timeout_ms, err);
}

static int del(void *st, const char *key, int timeout_ms, struct lucy_kv_error *err)
{
    struct redis_kv *r = st;
    char *k = prefixed(r, key);
    if (!k)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    const char *argv[] = {"DEL", k};
    redisReply *rep;
    int rc = run1(r, 0, timeout_ms, 1, 2, argv, NULL, &rep, "DEL", err);
    free(k);
    if (rc == 0)
        freeReplyObject(rep);
    return rc;
}

static int ratelimit(void *st, const char *key, const struct lucy_kv_rate *rate,
                     struct lucy_kv_rate_result *out, int timeout_ms, struct lucy_kv_error *err)
{
    struct redis_kv *r = st;
    char *k = prefixed(r, key);
    if (!k)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    char t[24], burst[16], at[24];
    snprintf(t, sizeof t, "%lld", (long long)kv_gcra_interval_us(rate));
    snprintf(burst, sizeof burst, "%d", rate->burst);
    snprintf(at, sizeof at, "%lld", (long long)(rate->at_ms > 0 ? rate->at_ms * 1000 : 0));
    const char *evalsha[] = {"EVALSHA", r->gcra_sha, "1", k, t, burst, at};
    redisReply *rep;
    int64_t deadline = lucy_mono_ms() + timeout_ms;
    int rc = run1(r, 0, timeout_ms, 0, 7, evalsha, NULL, &rep, "EVALSHA (rate limit)", err);
    if (rc && err && err->kind == LUCY_KV_ERR_SERVER && strstr(err->message, "NOSCRIPT")) {
        const char *eval[] = {"EVAL", gcra_lua, "1", k, t, burst, at};
        rc = run1(r, 0, remaining_ms(deadline), 0, 7, eval, NULL, &rep, "EVAL (rate limit)", err);
    }
    free(k);
    if (rc)
        return rc;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        rc = lucy_kv_err_set(err, LUCY_KV_ERR_PROTOCOL, "the rate-limit script answered type %d",
                             rep->type);
    } else {
        memset(out, 0, sizeof *out);
        out->allowed = rep->element[0]->integer == 1;
        out->retry_after_ms = rep->element[1]->integer;
        out->remaining = (int)rep->element[2]->integer;
    }
    freeReplyObject(rep);
    return rc;
}

/* ---- health and administration -------------------------------------------- */

static int ping(void *st, int force, int timeout_ms, struct lucy_kv_error *err)
{
    struct redis_kv *r = st;
    const char *argv[] = {"PING"};
    redisReply *rep;
    int rc = run1(r, force, timeout_ms, 1, 1, argv, NULL, &rep, "PING", err);
    if (rc == 0)
        freeReplyObject(rep);
    return rc;
}

/* Value of "name:" in an INFO text, or NULL. Copies into buf. */
static const char *info_field(const char *info, const char *name, char *buf, size_t len)
{
    size_t n = strlen(name);
    for (const char *p = info; p && *p;) {
        if (strncmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            size_t vl = strcspn(v, "\r\n");
            if (vl >= len)
                vl = len - 1;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

static int persistence(void *st, struct lucy_kv_persistence *out, int timeout_ms,
                       struct lucy_kv_error *err)
{
    struct redis_kv *r = st;
    static const char *info[] = {"INFO", "persistence"};
    static const char *cfg[] = {"CONFIG", "GET", "stop-writes-on-bgsave-error"};
    static const char *png[] = {"PING"};
    static const char *mem[] = {"INFO", "memory"};
    /* SET is refused with -OOM before Redis looks at the key (and before
     * -MISCONF), so SET XX of a key that never exists probes "would a
     * write be taken" without writing anything */
    char *probe_key = prefixed(r, "probe:oom");
    if (!probe_key)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    const char *probe[] = {"SET", probe_key, "", "XX"};
    const char *const *av[5] = {info, cfg, png, mem, probe};
    int ac[5] = {2, 3, 1, 2, 4};
    redisReply *rep[5] = {NULL, NULL, NULL, NULL, NULL};
    int rc = run(r, 0, timeout_ms, 1, 5, ac, av, NULL, rep, "INFO persistence", err);
    free(probe_key);
    if (rc)
        return rc;
    if (rep[0]->type == REDIS_REPLY_ERROR) {
        rc = reply_error(r, rep[0], "INFO persistence", err);
    } else if (rep[0]->type != REDIS_REPLY_STRING) {
        rc = lucy_kv_err_set(err, LUCY_KV_ERR_PROTOCOL, "INFO answered type %d", rep[0]->type);
    } else {
        char v[64];
        const char *s = rep[0]->str;
        out->rdb_last_bgsave_ok =
            !info_field(s, "rdb_last_bgsave_status", v, sizeof v) || strcmp(v, "ok") == 0;
        out->rdb_bgsave_in_progress =
            info_field(s, "rdb_bgsave_in_progress", v, sizeof v) && atoi(v) == 1;
        if (info_field(s, "rdb_changes_since_last_save", v, sizeof v))
            out->rdb_changes_since_last_save = atoll(v);
        if (info_field(s, "rdb_last_save_time", v, sizeof v))
            out->rdb_last_save_time = atoll(v);
        out->aof_enabled = info_field(s, "aof_enabled", v, sizeof v) && atoi(v) == 1;
        out->aof_last_write_ok =
            !info_field(s, "aof_last_write_status", v, sizeof v) || strcmp(v, "ok") == 0;
        out->loading = info_field(s, "loading", v, sizeof v) && atoi(v) == 1;
        out->stop_writes_on_bgsave_error = -1;
        if (rep[1]->type == REDIS_REPLY_ARRAY && rep[1]->elements == 2 &&
            rep[1]->element[1]->type == REDIS_REPLY_STRING)
            out->stop_writes_on_bgsave_error = strcmp(rep[1]->element[1]->str, "yes") == 0;
        else
            snprintf(out->config_error, sizeof out->config_error, "%s",
                     rep[1]->type == REDIS_REPLY_ERROR ? rep[1]->str : "unexpected answer");
        if (rep[2]->type == REDIS_REPLY_ERROR &&
            lucy_kv_err_kind_of_reply(rep[2]->str) == LUCY_KV_ERR_MISCONF) {
            out->misconf = 1;
            snprintf(out->misconf_message, sizeof out->misconf_message, "%s", rep[2]->str);
        }
        out->used_memory_bytes = out->maxmemory_bytes = -1;
        out->maxmemory_policy[0] = '\0';
        const char *m = rep[3]->type == REDIS_REPLY_STRING ? rep[3]->str : "";
        if (info_field(m, "used_memory", v, sizeof v))
            out->used_memory_bytes = atoll(v);
        if (info_field(m, "maxmemory", v, sizeof v))
            out->maxmemory_bytes = atoll(v);
        if (info_field(m, "maxmemory_policy", v, sizeof v))
            snprintf(out->maxmemory_policy, sizeof out->maxmemory_policy, "%.31s", v);
        if (rep[4]->type == REDIS_REPLY_ERROR &&
            lucy_kv_err_kind_of_reply(rep[4]->str) == LUCY_KV_ERR_OOM) {
            out->oom = 1;
            snprintf(out->oom_message, sizeof out->oom_message, "%s", rep[4]->str);
        }
    }
    for (int i = 0; i < 5; i++)
        freeReplyObject(rep[i]);
    return rc;
}

static int config_set(void *st, const char *name, const char *value, int timeout_ms,
                      struct lucy_kv_error *err)
{
    struct redis_kv *r = st;
    const char *argv[] = {"CONFIG", "SET", name, value};
    redisReply *rep;
    int rc = run1(r, 0, timeout_ms, 1, 4, argv, NULL, &rep, "CONFIG SET", err);
    if (rc == 0)
        freeReplyObject(rep);
    return rc;
}

static int bgsave(void *st, int timeout_ms, struct lucy_kv_error *err)
{
    struct redis_kv *r = st;
    const char *argv[] = {"BGSAVE"};
    redisReply *rep;
    int rc = run1(r, 0, timeout_ms, 0, 1, argv, NULL, &rep, "BGSAVE", err);
    if (rc == 0)
        freeReplyObject(rep);
    return rc;
}

static void describe(void *st, char *buf, size_t len)
{
    struct redis_kv *r = st;
    snprintf(buf, len, "%s", r->where);
}

const struct lucy_kv_ops lucy_kv_redis_ops = {
    .name = "redis",
    .caps = LUCY_KV_CAP_SHARED | LUCY_KV_CAP_ADMIN,
    .open = open_,
    .close = close_,
    .get = get,
    .get_many = get_many,
    .set = set,
    .set_if_absent = set_if_absent,
    .del = del,
    .ratelimit = ratelimit,
    .ping = ping,
    .persistence = persistence,
    .config_set = config_set,
    .bgsave = bgsave,
    .maintain = NULL, /* Redis expires keys itself */
    .describe = describe,
};
