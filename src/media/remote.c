/*
 * remote.c - the media module in processes of its own, for `lucy serve`
 * (media.h, lucy_media_set_remote).
 *
 * Why: FFmpeg and the recognisers are most of lucy's memory, and glibc
 * cannot give all of it back once loaded (libraries with C++ unique
 * symbols stay mapped after dlclose: ~10 MB more idle RSS for good,
 * docs/benchmarks.md). And a library that crashes, or exits on a failed
 * allocation (pocketsphinx does), would take the daemon - webhooks,
 * search, everything - with it. So the daemon never maps them: each call
 * of struct lucy_media goes to a media process, `lucy media-worker` (the
 * same executable, src/cmd/media_worker.c), over a socketpair (wire.h).
 * A process that dies ends only the call it was serving (LUCY_EIO, with
 * its exit status or signal); the next call starts another.
 *
 * Processes: one serves one call at a time. Calls without state (probe,
 * decode, chunks, select, check) take an idle process from the pool or
 * start one; a recogniser instance (open .. close) keeps its process to
 * itself, and the process ends when the instance closes. A pool process
 * idle for the idle time (LUCY_ASR_IDLE_UNLOAD_S) is ended by a reaper
 * thread that lives only while the pool is not empty. So an idle lucy has
 * no media process at all, and its own memory never held FFmpeg.
 *
 * State: the pool, under one mutex. A process being used belongs to its
 * caller's thread (or to the instance) and is touched by it alone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "../clock.h"
#include "../error.h"
#include "../log.h"
#include "../thread.h"
#include "media.h"
#include "wire.h"

extern char **environ;

#define HELLO_TIMEOUT_MS 60000 /* loading the module: ~0.2 s; a stuck one is ended */
#define EXIT_WAIT_MS     5000  /* for a process to end after its socket closed */
#define CALL_TIMEOUT_S   900 /* one call: decoding 4 h, or a chunk of up to 600 s, takes far less */

struct proc {
    pid_t pid;
    int sock;
    int64_t idle_since_ms; /* in the pool: when it came back */
    struct proc *next;     /* the pool's list */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* CLOCK_MONOTONIC: the pool or the idle time changed */
    pthread_once_t once;
    struct proc *idle; /* the pool: processes without a call */
    int alive;         /* processes started and not yet ended (pool, calls, instances) */
    int idle_s;        /* end a pool process idle this long; 0 = keep until shutdown */
    int reaper;        /* 1 while the reaper thread runs */
    int failing;       /* the last start failed (for /health), and why */
    char failure[768];
    int stopping; /* lucy_media_remote_stop: calls give up (atomic) */
} r = {.mu = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT};

static void init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&r.wake, &a);
    pthread_condattr_destroy(&a);
}

/* Says how process p ended into why ("it was killed by signal 11
 * (Segmentation fault)"), waiting for it up to EXIT_WAIT_MS after its
 * socket closed, then killing it. */
static void reap(struct proc *p, char *why, size_t len)
{
    int status = 0;
    pid_t got = 0;
    for (int64_t waited = 0; (got = waitpid(p->pid, &status, WNOHANG)) == 0; waited += 10) {
        if (waited >= EXIT_WAIT_MS) {
            kill(p->pid, SIGKILL);
            got = waitpid(p->pid, &status, 0);
            break;
        }
        usleep(10000);
    }
    if (!why || !len)
        return;
    if (got == p->pid && WIFSIGNALED(status))
        snprintf(why, len, "it was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else if (got == p->pid && WIFEXITED(status))
        snprintf(why, len, "it exited with status %d", WEXITSTATUS(status));
    else
        snprintf(why, len, "it could not be waited for (%s)", strerror(errno));
}

/* Ends p: closes its socket (it exits on end of stream), reaps it, frees
 * it. why (may be NULL) gets how it ended. */
static void end(struct proc *p, char *why, size_t len)
{
    close(p->sock);
    reap(p, why, len);
    free(p);
    pthread_mutex_lock(&r.mu);
    int last = --r.alive == 0;
    pthread_mutex_unlock(&r.mu);
#ifdef __GLIBC__
    /* The daemon's side of media work (decoded audio, replies) was freed:
     * with the last process gone, give that heap back too. */
    if (last)
        malloc_trim(0);
#else
    (void)last;
#endif
}

/* Waits up to ms for sock to be readable: 1, 0 on timeout. */
static int readable(int sock, int ms)
{
    struct pollfd pf = {.fd = sock, .events = POLLIN};
    int n;
    while ((n = poll(&pf, 1, ms)) < 0 && errno == EINTR)
        ;
    return n > 0;
}

/* Starts a media process and waits for its hello: the process, or NULL
 * with err and *code: LUCY_EUNAVAIL when the module did not load there
 * (its reason) or no process could start, LUCY_ECRASHED when it died
 * before its hello. */
static struct proc *start(int *code, char *err, size_t errlen)
{
    *code = LUCY_EUNAVAIL;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(err, errlen, "cannot start a media process: socketpair: %s", strerror(errno));
        return NULL;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], LUCY_MEDIA_WORKER_FD);
    char exe[] = "/proc/self/exe", name[] = "lucy", cmd[] = "media-worker";
    char *argv[] = {name, cmd, NULL};
    pid_t pid;
    int e = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    if (e != 0) {
        close(sv[0]);
        snprintf(err, errlen, "cannot start a media process (lucy media-worker): %s", strerror(e));
        return NULL;
    }
    struct proc *p = calloc(1, sizeof *p);
    if (!p) {
        close(sv[0]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        snprintf(err, errlen, "out of memory starting a media process");
        return NULL;
    }
    *p = (struct proc){.pid = pid, .sock = sv[0]};
    pthread_mutex_lock(&r.mu);
    r.alive++;
    pthread_mutex_unlock(&r.mu);

    struct lucy_wire_buf b = {0};
    int op = 0, rc = 0;
    int got = readable(p->sock, HELLO_TIMEOUT_MS)
                  ? lucy_wire_recv(p->sock, &op, &rc, &b, NULL, NULL)
                  : LUCY_ETIMEDOUT;
    if (got == 0 && op == LUCY_WIRE_HELLO && rc == 0) {
        lucy_wire_buf_free(&b);
        lucy_log(LUCY_LOG_DEBUG, "media process started", "{s:i}", "pid", (int)pid);
        return p;
    }
    char why[512] = "";
    if (got == 0 && op == LUCY_WIRE_HELLO)
        lucy_wire_get_strn(&b, why, sizeof why); /* the module's own reason */
    lucy_wire_buf_free(&b);
    char how[128] = "";
    end(p, how, sizeof how);
    if (why[0]) {
        snprintf(err, errlen, "%s", why);
    } else {
        snprintf(err, errlen, "the media process (lucy media-worker) did not start: %s", how);
        *code = LUCY_ECRASHED; /* not the module: the next start may well work */
    }
    return NULL;
}

/* The reaper: ends pool processes idle for r.idle_s; returns when the
 * pool is empty or no idle time is set. */
static void *reaper(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&r.mu);
    while (r.idle && r.idle_s > 0) {
        int64_t now = lucy_mono_ms(), idle_ms = (int64_t)r.idle_s * 1000, next = idle_ms;
        struct proc **at = &r.idle, *due = NULL;
        while (*at) {
            struct proc *p = *at;
            if (now - p->idle_since_ms >= idle_ms) {
                *at = p->next;
                p->next = due;
                due = p;
            } else {
                if (p->idle_since_ms + idle_ms - now < next)
                    next = p->idle_since_ms + idle_ms - now;
                at = &p->next;
            }
        }
        if (due) {
            pthread_mutex_unlock(&r.mu);
            while (due) {
                struct proc *p = due;
                due = p->next;
                int64_t idle_s = (now - p->idle_since_ms) / 1000;
                end(p, NULL, 0);
                lucy_log(LUCY_LOG_INFO, "media process ended", "{s:I}", "idle_s",
                         (json_int_t)idle_s);
            }
            pthread_mutex_lock(&r.mu);
            continue;
        }
        struct timespec when = lucy_deadline_ms(CLOCK_MONOTONIC, next);
        pthread_cond_timedwait(&r.wake, &r.mu, &when);
    }
    r.reaper = 0;
    pthread_mutex_unlock(&r.mu);
    return NULL;
}

/* Under r.mu: starts the reaper when the pool has a process, an idle time
 * is set and none runs (one that cannot start leaves the pool as it is). */
static void reap_later_locked(void)
{
    if (!r.idle || r.idle_s <= 0 || r.reaper)
        return;
    if (lucy_thread_detached(reaper, NULL) == 0)
        r.reaper = 1;
}

/* A process for one call: from the pool (one that died while idle -
 * its socket reads end of stream - is ended and skipped; *from_pool = 1),
 * or started (*from_pool = 0; from_pool may be NULL). NULL with err and
 * *code (start()'s). */
static struct proc *take(int *code, int *from_pool, char *err, size_t errlen)
{
    if (from_pool)
        *from_pool = 1;
    pthread_once(&r.once, init);
    for (;;) {
        pthread_mutex_lock(&r.mu);
        struct proc *p = r.idle;
        if (p)
            r.idle = p->next;
        pthread_mutex_unlock(&r.mu);
        if (!p)
            break;
        if (!readable(p->sock, 0)) /* an idle process says nothing until asked */
            return p;
        char how[128] = "";
        end(p, how, sizeof how);
        lucy_log(LUCY_LOG_WARNING, "media process ended while idle", "{s:s}", "how", how);
    }
    if (from_pool)
        *from_pool = 0;
    struct proc *p = start(code, err, errlen);
    pthread_mutex_lock(&r.mu);
    r.failing = !p && *code == LUCY_EUNAVAIL; /* a crash at start is no missing module */
    if (!p) {
        snprintf(r.failure, sizeof r.failure, "%s", err);
        lucy_log(LUCY_LOG_ERROR, "media process not started", "{s:s}", "error", err);
    }
    pthread_mutex_unlock(&r.mu);
    return p;
}

/* Gives p back to the pool after a call. */
static void give_back(struct proc *p)
{
    pthread_mutex_lock(&r.mu);
    p->idle_since_ms = lucy_mono_ms();
    p->next = r.idle;
    r.idle = p;
    reap_later_locked();
    pthread_cond_signal(&r.wake);
    pthread_mutex_unlock(&r.mu);
}

/* What a call waits for: its deadline, and lucy's stop. */
struct deadline {
    int64_t until_ms;
};

static int stopping(void)
{
    return __atomic_load_n(&r.stopping, __ATOMIC_ACQUIRE);
}

/* lucy_wire_wait.go_on of a call: LUCY_ESHUTDOWN once lucy stops (the
 * work is resumed at the next start), LUCY_ETIMEDOUT past the deadline (a
 * process that hangs - a stopped one, a decoder in a loop - is ended). */
static int call_go_on(void *arg)
{
    if (stopping())
        return LUCY_ESHUTDOWN;
    return lucy_mono_ms() >= ((struct deadline *)arg)->until_ms ? LUCY_ETIMEDOUT : 0;
}

/* One request and its reply on p: 0 with *rc and the reply's payload in
 * *b. Else p is ended and: LUCY_ECRASHED when it died or did not answer
 * within CALL_TIMEOUT_S (err says how: a crash of FFmpeg or the
 * recogniser is not the daemon's), LUCY_ESHUTDOWN when lucy is stopping. */
static int call(struct proc *p, int op, const struct lucy_wire_buf *req, int fd, int *rc,
                struct lucy_wire_buf *b, char *err, size_t errlen)
{
    int got_op = 0;
    struct deadline d = {lucy_mono_ms() + (int64_t)CALL_TIMEOUT_S * 1000};
    struct lucy_wire_wait w = {call_go_on, &d};
    int x = lucy_wire_send(p->sock, op, 0, req, fd, &w);
    if (x == 0)
        x = lucy_wire_recv(p->sock, &got_op, rc, b, NULL, &w);
    if (x == 0 && got_op == op)
        return 0;
    if (x == LUCY_ETIMEDOUT || x == LUCY_ESHUTDOWN)
        kill(p->pid, SIGKILL); /* hung, or no time left: it ends now */
    char how[128] = "";
    end(p, how, sizeof how);
    if (x == LUCY_ESHUTDOWN) {
        snprintf(err, errlen, "lucy is stopping; the work resumes at the next start");
        return LUCY_ESHUTDOWN;
    }
    if (x == LUCY_ETIMEDOUT)
        snprintf(how, sizeof how, "it did not answer within %d s and was ended", CALL_TIMEOUT_S);
    snprintf(err, errlen,
             "the media process (FFmpeg and the recogniser) ended during the call: %s; lucy "
             "goes on, and the work is tried again",
             how);
    lucy_log(LUCY_LOG_WARNING, "media process ended during a call", "{s:s}", "how", how);
    return LUCY_ECRASHED;
}

/* A stateless call on a pool process: its reply in *b (rc in *rc). 0, or
 * LUCY_EUNAVAIL (no process) / LUCY_EIO (it died) with err. */
static int pooled(int op, const struct lucy_wire_buf *req, int fd, int *rc, struct lucy_wire_buf *b,
                  char *err, size_t errlen)
{
    /* A pool process that dies at once was most likely dying already
     * (killed while idle, its end not yet seen by take()): the call goes
     * to a new process, once. A fresh process's crash is the call's own.
     * Safe to repeat: the workers pread() the descriptor (no shared
     * offset) and change nothing. */
    for (int again = 0;; again++) {
        int code, from_pool;
        struct proc *p = take(&code, &from_pool, err, errlen);
        if (!p)
            return code;
        int x = call(p, op, req, fd, rc, b, err, errlen);
        if (x == 0)
            give_back(p);
        if (x != LUCY_ECRASHED || !from_pool || again)
            return x;
        lucy_wire_buf_free(b);
    }
}

/* ---- the table ---------------------------------------------------------- */

/* Engines as the daemon sees them: a name and how they want lanes. The
 * code is in the processes; these are what lucy_asr_select hands out. */
static struct lucy_asr_engine engines[] = {
    {.name = "pocketsphinx"}, {.name = "whisper"}, {.name = "http"}};

static const struct lucy_asr_engine *engine_named(const char *name, int one_core)
{
    for (size_t i = 0; name && i < sizeof engines / sizeof engines[0]; i++)
        if (strcmp(engines[i].name, name) == 0) {
            __atomic_store_n(&engines[i].one_core, one_core, __ATOMIC_RELAXED);
            return &engines[i];
        }
    return NULL;
}

static int r_decode(int split, int fd, const char *path, struct lucy_audio *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct lucy_wire_buf req = {0}, b = {0};
    lucy_wire_put_str(&req, path);
    lucy_wire_put_i64(&req, split);
    int rc = 0;
    int x = req.bad ? LUCY_ENOMEM : pooled(LUCY_WIRE_DECODE, &req, fd, &rc, &b, err, errlen);
    if (x == 0) {
        lucy_wire_get_strn(&b, err, errlen);
        if (rc == 0 && lucy_wire_get_audio(&b, out) != 0)
            rc = LUCY_ENOMEM;
    }
    lucy_wire_buf_free(&req);
    lucy_wire_buf_free(&b);
    return x ? x : rc;
}

static int r_decode_fd(int fd, const char *path, struct lucy_pcm *out, char *err, size_t errlen)
{
    struct lucy_audio a;
    int rc = r_decode(0, fd, path, &a, err, errlen);
    *out = a.channel[0]; /* moved: one channel when not split */
    if (rc != 0)
        lucy_audio_free(&a);
    return rc;
}

static int r_decode_split_fd(int fd, const char *path, struct lucy_audio *out, char *err,
                             size_t errlen)
{
    return r_decode(1, fd, path, out, err, errlen);
}

static int r_chunks(const struct lucy_pcm *pcm, int max_chunk_s, struct lucy_chunk **out, size_t *n,
                    char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    struct lucy_wire_buf req = {0}, b = {0};
    lucy_wire_put_i64(&req, max_chunk_s);
    lucy_wire_put_pcm(&req, pcm);
    int rc = 0;
    int x = req.bad ? LUCY_ENOMEM : pooled(LUCY_WIRE_CHUNKS, &req, -1, &rc, &b, err, errlen);
    if (x == 0) {
        lucy_wire_get_strn(&b, err, errlen);
        if (rc == 0 && lucy_wire_get_chunks(&b, out, n) != 0)
            rc = LUCY_ENOMEM;
    }
    lucy_wire_buf_free(&req);
    lucy_wire_buf_free(&b);
    return x ? x : rc;
}

/* SELECT and CHECK: rc, err and the engine chosen (NULL when none). */
static int r_engine(int op, const struct lucy_asr_options *opt, const struct lucy_asr_engine **e,
                    char *err, size_t errlen)
{
    *e = NULL;
    struct lucy_wire_buf req = {0}, b = {0};
    lucy_wire_put_options(&req, opt);
    int rc = 0;
    int x = req.bad ? LUCY_ENOMEM : pooled(op, &req, -1, &rc, &b, err, errlen);
    if (x == 0) {
        lucy_wire_get_strn(&b, err, errlen);
        char *name = lucy_wire_get_str(&b);
        int one_core = (int)lucy_wire_get_i64(&b);
        *e = engine_named(name, one_core);
        free(name);
    }
    lucy_wire_buf_free(&req);
    lucy_wire_buf_free(&b);
    return x ? x : rc;
}

static const struct lucy_asr_engine *r_asr_select(const struct lucy_asr_options *opt, char *err,
                                                  size_t errlen)
{
    const struct lucy_asr_engine *e;
    r_engine(LUCY_WIRE_SELECT, opt, &e, err, errlen);
    return e;
}

static int r_asr_check(const struct lucy_asr_options *opt, const struct lucy_asr_engine **out,
                       char *err, size_t errlen)
{
    const struct lucy_asr_engine *e;
    int rc = r_engine(LUCY_WIRE_CHECK, opt, &e, err, errlen);
    if (out)
        *out = rc == 0 ? e : NULL;
    return rc;
}

/* A recogniser instance: the process that holds it, and its model. */
struct instance {
    struct proc *p;                /* NULL once the process died */
    struct lucy_wire_buf open_req; /* engine and options: to open it again */
    int reopen;                    /* 1: the process died while idle and opening it again
                                      failed (the model's files gone a while, say): the
                                      next call tries again */
    char model[256];
};

/* Opens in's recogniser (in->open_req) in a process: 0 with in->p, or the
 * LUCY_E* code with err and in->p NULL. */
static int instance_open(struct instance *in, char *err, size_t errlen)
{
    struct lucy_wire_buf b = {0};
    int rc = 0, x = 0, code = 0;
    if (!(in->p = take(&code, NULL, err, errlen)))
        return code;
    x = call(in->p, LUCY_WIRE_OPEN, &in->open_req, -1, &rc, &b, err, errlen);
    if (x == 0) {
        lucy_wire_get_strn(&b, err, errlen);
        lucy_wire_get_strn(&b, in->model, sizeof in->model);
        if (rc != 0) /* no instance: the process goes back to the pool */
            give_back(in->p);
    }
    if (x || rc) /* call() ended it, or it is back in the pool */
        in->p = NULL;
    lucy_wire_buf_free(&b);
    return x ? x : rc;
}

static int r_asr_open(const struct lucy_asr_engine *e, const struct lucy_asr_options *opt,
                      void **state, char *err, size_t errlen)
{
    *state = NULL;
    struct instance *in = calloc(1, sizeof *in);
    if (!in)
        return LUCY_ENOMEM;
    lucy_wire_put_str(&in->open_req, e ? e->name : NULL);
    lucy_wire_put_options(&in->open_req, opt);
    int rc = in->open_req.bad ? LUCY_ENOMEM : instance_open(in, err, errlen);
    if (rc) {
        lucy_wire_buf_free(&in->open_req);
        free(in);
        return rc;
    }
    *state = in;
    return 0;
}

static int r_asr_transcribe(const struct lucy_asr_engine *e, void *state,
                            const struct lucy_pcm *pcm, struct lucy_transcript *out, char *err,
                            size_t errlen)
{
    (void)e;
    memset(out, 0, sizeof *out);
    struct instance *in = state;
    /* A recogniser says nothing between calls: a socket that reads now is
     * one whose process died while idle (the OOM killer, a kill). Open it
     * again instead of failing this job's attempt; an open that fails
     * fails this call with its own reason, and the next call opens again
     * (the instance stays loaded: an asr_crashed there would be a lie). */
    if (in->p && readable(in->p->sock, 0)) {
        char how[128] = "";
        end(in->p, how, sizeof how);
        in->p = NULL;
        in->reopen = 1;
        lucy_log(LUCY_LOG_WARNING, "recogniser's media process ended while idle; opening it again",
                 "{s:s}", "how", how);
    }
    if (!in->p && in->reopen) {
        int x = instance_open(in, err, errlen);
        if (x)
            return x;
        in->reopen = 0;
    }
    if (!in->p) {
        snprintf(err, errlen,
                 "the media process of this recogniser ended; it is loaded again "
                 "for the next job");
        return LUCY_ECRASHED;
    }
    struct lucy_wire_buf req = {0}, b = {0};
    lucy_wire_put_pcm(&req, pcm);
    int rc = 0;
    int x =
        req.bad ? LUCY_ENOMEM : call(in->p, LUCY_WIRE_TRANSCRIBE, &req, -1, &rc, &b, err, errlen);
    if (x == LUCY_ECRASHED || x == LUCY_ESHUTDOWN)
        in->p = NULL; /* call() ended it */
    if (x == 0) {
        lucy_wire_get_strn(&b, err, errlen);
        if (rc == 0 && lucy_wire_get_transcript(&b, out) != 0)
            rc = LUCY_ENOMEM;
    }
    lucy_wire_buf_free(&req);
    lucy_wire_buf_free(&b);
    return x ? x : rc;
}

static const char *r_asr_model(const struct lucy_asr_engine *e, void *state)
{
    (void)e;
    return state ? ((struct instance *)state)->model : "";
}

static void r_asr_close(const struct lucy_asr_engine *e, void *state)
{
    (void)e;
    struct instance *in = state;
    if (!in)
        return;
    if (in->p) { /* it closes the instance and exits: its memory goes with it */
        lucy_wire_send(in->p->sock, LUCY_WIRE_CLOSE, 0, NULL, -1, NULL);
        end(in->p, NULL, 0);
    }
    lucy_wire_buf_free(&in->open_req);
    free(in);
}

static enum lucy_scan_probe_result r_probe_fd(int fd, int64_t size, struct lucy_scan_probe *out)
{
    memset(out, 0, sizeof *out);
    struct lucy_wire_buf req = {0}, b = {0};
    lucy_wire_put_i64(&req, size);
    int rc = 0;
    char err[sizeof out->reason];
    int x = req.bad ? LUCY_ENOMEM : pooled(LUCY_WIRE_PROBE, &req, fd, &rc, &b, err, sizeof err);
    enum lucy_scan_probe_result v = (enum lucy_scan_probe_result)rc;
    if (x == 0 && lucy_wire_get_probe(&b, out) != 0)
        x = LUCY_ENOMEM;
    lucy_wire_buf_free(&req);
    lucy_wire_buf_free(&b);
    if (x == 0)
        return v;
    /* Not the file's fault: a read error the scanner retries, with why. */
    lucy_scan_probe_clear(out);
    memset(out, 0, sizeof *out);
    out->errnum = x == LUCY_EUNAVAIL ? ELIBACC : x == LUCY_ECRASHED ? ECHILD : EIO;
    snprintf(out->reason, sizeof out->reason, "%s", x == LUCY_ENOMEM ? "out of memory" : err);
    return LUCY_SCAN_PROBE_READ_ERROR;
}

const struct lucy_media lucy_media_remote = {
    .abi = LUCY_MEDIA_ABI,
    .sizes = LUCY_MEDIA_SIZES,
    .decode_fd = r_decode_fd,
    .decode_split_fd = r_decode_split_fd,
    .chunks = r_chunks,
    .asr_select = r_asr_select,
    .asr_check = r_asr_check,
    .asr_open = r_asr_open,
    .asr_transcribe = r_asr_transcribe,
    .asr_close = r_asr_close,
    .asr_model = r_asr_model,
    .probe_fd = r_probe_fd,
};

/* ---- what loader.c asks --------------------------------------------------- */

int lucy_media_remote_ready(char *err, size_t errlen)
{
    pthread_once(&r.once, init);
    pthread_mutex_lock(&r.mu);
    int alive = r.alive;
    pthread_mutex_unlock(&r.mu);
    if (alive > 0)
        return 0;
    int code;
    struct proc *p = take(&code, NULL, err, errlen); /* proves the module loads; kept in the pool */
    if (!p)
        return -1;
    give_back(p);
    return 0;
}

int lucy_media_remote_alive(void)
{
    pthread_mutex_lock(&r.mu);
    int alive = r.alive;
    pthread_mutex_unlock(&r.mu);
    return alive;
}

int lucy_media_remote_failure(char *why, size_t len)
{
    pthread_mutex_lock(&r.mu);
    int failing = r.failing;
    if (failing)
        snprintf(why, len, "%s", r.failure);
    pthread_mutex_unlock(&r.mu);
    return failing;
}

void lucy_media_remote_set_idle(int idle_s)
{
    pthread_once(&r.once, init);
    pthread_mutex_lock(&r.mu);
    r.idle_s = idle_s > 0 ? idle_s : 0;
    reap_later_locked();
    pthread_cond_signal(&r.wake);
    pthread_mutex_unlock(&r.mu);
}

void lucy_media_remote_stop(void)
{
    __atomic_store_n(&r.stopping, 1, __ATOMIC_RELEASE);
}

void lucy_media_remote_shutdown(void)
{
    pthread_once(&r.once, init);
    pthread_mutex_lock(&r.mu);
    struct proc *all = r.idle;
    r.idle = NULL;
    r.idle_s = 0;
    pthread_cond_signal(&r.wake);
    pthread_mutex_unlock(&r.mu);
    while (all) {
        struct proc *p = all;
        all = p->next;
        end(p, NULL, 0);
    }
}
