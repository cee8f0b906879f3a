/*
 * scanner.c - the "scanner" thread: a full scan at start, then every
 * LUCY_SCAN_INTERVAL_S, and earlier when inotify reports a change
 * (DESIGN §6).
 *
 * Every directory a scan enters gets an inotify watch (close-after-write,
 * moves, creations, deletions, attribute changes). Events only wake the
 * thread: after the first one it waits until the folder has been quiet for
 * DEBOUNCE_MS (at most DEBOUNCE_MAX_MS after the first event), then runs
 * one full scan - which costs a stat per unchanged file. A scan that found
 * files still `changing` schedules another one just after the settle time,
 * so a finished call is picked up without waiting for the interval.
 *
 * A scan that failed (its store writes refused: disk full, I/O error) is
 * retried by itself, without waiting for the interval: after
 * RETRY_FIRST_MS doubling to RETRY_MAX_MS, and never while the disk guard
 * says critical - then the thread looks again every DISK_RECHECK_MS, so
 * the retry starts about a second after space returns.
 *
 * inotify is an optimisation, never a requirement: on a network or FUSE
 * mount it may report nothing, and ENOSPC from inotify_add_watch() means
 * the per-user watch limit (fs.inotify.max_user_watches), not a full disk:
 * it is logged once and periodic scans carry on.
 *
 * Threads: the scanner thread (a struct lucy_thread, thread.h) runs the
 * periodic/inotify scans; HTTP threads call lucy_scanner_scan_now().
 * scan_lock serialises scans; lock guards the last summary. The thread
 * waits in poll() on the inotify descriptor, so a stop first writes a byte
 * to the wake pipe: poll() returns, and the thread naps until the stop
 * itself (lucy_thread_stop) arrives.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "../../clock.h"
#include "../../disk/disk.h"
#include "../../error.h"
#include "../../log.h"
#include "../../lucy.h"
#include "../../thread.h"
#include "scan_int.h"

#define DEBOUNCE_MS     2000  /* quiet time after the last event */
#define DEBOUNCE_MAX_MS 10000 /* scan at the latest this long after the first */
#define RETRY_FIRST_MS  2000  /* first retry of a failed scan */
#define RETRY_MAX_MS    60000 /* retries back off up to this */
#define DISK_RECHECK_MS 1000  /* a due retry waits this long while the disk is critical */
#define WATCH_MASK                                                                                 \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB |            \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)

struct lucy_scanner {
    struct lucy_ctx *ctx;               /* configuration and store */
    struct lucy_thread thread;          /* "scanner" */
    pthread_mutex_t scan_lock;          /* one scan at a time */
    pthread_mutex_t lock;               /* guards last */
    json_t *last;                       /* last summary + failed, finished_at_s; NULL before */
    int last_failed;                    /* the last scan failed (guarded by lock): retry it */
    int wake[2];                        /* pipe: a byte = a stop is coming */
    int inotify_fd;                     /* -1 when inotify is unavailable */
    int watch_full;                     /* ENOSPC seen in the current scan */
    int watch_full_logged;              /* the ENOSPC WARNING was written */
    struct lucy_call_patterns patterns; /* LUCY_CALL_NAME_PATTERNS, parsed once at start */
};

struct lucy_scanner *lucy_scanner_new(struct lucy_ctx *ctx)
{
    struct lucy_scanner *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->ctx = ctx;
    s->inotify_fd = -1;
    s->wake[0] = s->wake[1] = -1;
    /* The config check refused malformed patterns at start-up already. */
    if (lucy_call_patterns_parse(ctx->cfg->call_name_patterns, &s->patterns, NULL, 0) != 0)
        memset(&s->patterns, 0, sizeof s->patterns);
    pthread_mutex_init(&s->scan_lock, NULL);
    pthread_mutex_init(&s->lock, NULL);
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        lucy_scanner_free(s);
        return NULL;
    }
    return s;
}

/* on_dir of a scan: watch every directory entered. */
static void add_watch(void *arg, const char *path, int depth)
{
    struct lucy_scanner *s = arg;
    (void)depth;
    if (s->inotify_fd < 0 || s->watch_full)
        return;
    if (inotify_add_watch(s->inotify_fd, path, WATCH_MASK) >= 0 || errno != ENOSPC)
        return;
    s->watch_full = 1;
    if (!s->watch_full_logged) {
        s->watch_full_logged = 1;
        lucy_log(LUCY_LOG_WARNING, "inotify watch limit reached", "{s:s,s:i,s:s}", "errno",
                 "ENOSPC", "scan_interval_s", s->ctx->cfg->scan_interval_s, "hint",
                 "not a full disk: raise fs.inotify.max_user_watches for quicker pick-up; "
                 "periodic scans continue");
    }
}

/* The summary kept for /health and /metrics. */
static void keep(struct lucy_scanner *s, const struct lucy_scan_summary *sum, int rc)
{
    json_t *j = lucy_scan_summary_json(sum);
    if (!j)
        return;
    lucy_scan_summary_extend(j, sum, rc);
    pthread_mutex_lock(&s->lock);
    json_decref(s->last);
    s->last = j;
    s->last_failed = sum->failed;
    pthread_mutex_unlock(&s->lock);
}

static int last_failed(struct lucy_scanner *s)
{
    pthread_mutex_lock(&s->lock);
    int failed = s->last_failed;
    pthread_mutex_unlock(&s->lock);
    return failed;
}

/* When the retry of a failed scan (by this thread or an HTTP caller) is
 * due: *retry_ms is set on the first look after the failure; a due retry
 * is put off while the disk is critical. 0 when no scan failed. */
static int64_t retry_due(struct lucy_scanner *s, int64_t now, int64_t *retry_ms, int64_t *delay_ms)
{
    if (!last_failed(s)) {
        *retry_ms = 0;
        *delay_ms = RETRY_FIRST_MS;
        return 0;
    }
    if (!*retry_ms)
        *retry_ms = now + *delay_ms;
    if (now >= *retry_ms && s->ctx->disk && lucy_disk_critical(s->ctx->disk))
        *retry_ms = now + DISK_RECHECK_MS;
    return *retry_ms;
}

/* One scan under scan_lock; honor_backoff for automatic scans. */
static int scan(struct lucy_scanner *s, int honor_backoff, struct lucy_scan_summary *out)
{
    struct lucy_scan_options opt = {
        .honor_backoff = honor_backoff,
        .on_dir = add_watch,
        .arg = s,
        .stop = &s->thread,
        .patterns = &s->patterns,
    };
    pthread_mutex_lock(&s->scan_lock);
    s->watch_full = 0;
    int rc = lucy_scan_run_opts(s->ctx, s->ctx->cfg->recordings_dirs, &opt, out);
    if (rc != LUCY_ESHUTDOWN)
        keep(s, out, rc);
    pthread_mutex_unlock(&s->scan_lock);
    return rc;
}

/* Reads all pending inotify events. 1 if any concerns the folders. */
static int drain_events(int fd)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int relevant = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            return relevant;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            if (!(e->mask & IN_IGNORED))
                relevant = 1;
            p += sizeof *e + e->len;
        }
    }
}

static void run(void *arg)
{
    struct lucy_scanner *s = arg;
    const struct lucy_config *cfg = s->ctx->cfg;
    int64_t next_scan_ms = lucy_mono_ms(); /* the first scan runs at once */
    int64_t first_event_ms = 0, last_event_ms = 0;
    int64_t retry_ms = 0, retry_delay_ms = RETRY_FIRST_MS;
    while (!lucy_thread_stopping(&s->thread)) {
        int64_t now = lucy_mono_ms();
        int64_t due = next_scan_ms;
        int64_t retry = retry_due(s, now, &retry_ms, &retry_delay_ms);
        if (retry && retry < due)
            due = retry;
        if (first_event_ms) {
            int64_t quiet = last_event_ms + DEBOUNCE_MS, latest = first_event_ms + DEBOUNCE_MAX_MS;
            int64_t ev_due = quiet < latest ? quiet : latest;
            if (ev_due < due)
                due = ev_due;
        }
        if (now >= due) {
            struct lucy_scan_summary sum;
            int rc = scan(s, 1, &sum);
            first_event_ms = last_event_ms = 0;
            next_scan_ms = lucy_mono_ms() + (int64_t)cfg->scan_interval_s * 1000;
            if (rc != 0 && rc != LUCY_ESHUTDOWN) {
                retry_ms = lucy_mono_ms() + retry_delay_ms;
                lucy_log(LUCY_LOG_INFO, "scan will be retried", "{s:I,s:s}", "retry_in_ms",
                         (json_int_t)retry_delay_ms, "when",
                         "the disk is no longer critical and the store takes writes");
                retry_delay_ms =
                    retry_delay_ms * 2 < RETRY_MAX_MS ? retry_delay_ms * 2 : RETRY_MAX_MS;
            }
            if (rc == 0 && sum.changing > 0) { /* come back once they settle */
                int64_t settle_ms = lucy_mono_ms() + ((int64_t)cfg->scan_settle_s + 1) * 1000;
                if (settle_ms < next_scan_ms)
                    next_scan_ms = settle_ms;
            }
            lucy_scan_summary_free(&sum);
            continue;
        }
        struct pollfd fds[2] = {{s->wake[0], POLLIN, 0}, {s->inotify_fd, POLLIN, 0}};
        int64_t wait = due - now;
        int n = poll(fds, s->inotify_fd >= 0 ? 2 : 1, wait > 60000 ? 60000 : (int)wait);
        if (n <= 0)
            continue;
        if (fds[0].revents) { /* only lucy_scanner_stop() writes it: the stop follows */
            while (!lucy_thread_nap(&s->thread, 1000))
                ;
            break;
        }
        if (s->inotify_fd >= 0 && fds[1].revents && drain_events(s->inotify_fd)) {
            last_event_ms = lucy_mono_ms();
            if (!first_event_ms)
                first_event_ms = last_event_ms;
        }
    }
}

int lucy_scanner_start(struct lucy_scanner *s)
{
    const char *dirs = s->ctx->cfg->recordings_dirs;
    if (!dirs || !*dirs) {
        lucy_log(LUCY_LOG_INFO, "no recordings folders configured; scanner idle", "{s:s}", "hint",
                 "set LUCY_RECORDINGS_DIRS (colon-separated) or pass --recordings DIR");
        return 0;
    }
    s->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (s->inotify_fd < 0)
        lucy_log(LUCY_LOG_WARNING, "inotify unavailable; periodic scans only", "{s:s,s:i}", "errno",
                 lucy_scan_errno_name(errno), "scan_interval_s", s->ctx->cfg->scan_interval_s);
    /* Signals belong to the main thread: the scanner starts with all blocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    s->thread = (struct lucy_thread){.name = "scanner", .main = run, .arg = s};
    int rc = lucy_thread_start(&s->thread);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int lucy_scanner_scan_now(struct lucy_scanner *s, struct lucy_scan_summary *out)
{
    const char *dirs = s->ctx->cfg->recordings_dirs;
    if (!dirs || !*dirs) {
        memset(out, 0, sizeof *out);
        return LUCY_EINVAL;
    }
    return scan(s, 0, out);
}

json_t *lucy_scanner_last_summary(struct lucy_scanner *s)
{
    pthread_mutex_lock(&s->lock);
    json_t *j = s->last ? json_deep_copy(s->last) : NULL;
    pthread_mutex_unlock(&s->lock);
    return j;
}

void lucy_scanner_stop(struct lucy_scanner *s)
{
    if (!s)
        return;
    if (write(s->wake[1], "x", 1) < 0) {
        /* the pipe is full: the thread is awake already */
    }
    lucy_thread_stop(&s->thread);
}

void lucy_scanner_free(struct lucy_scanner *s)
{
    if (!s)
        return;
    lucy_scanner_stop(s);
    if (s->inotify_fd >= 0)
        close(s->inotify_fd);
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
    json_decref(s->last);
    pthread_mutex_destroy(&s->scan_lock);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
