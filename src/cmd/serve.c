/*
 * serve.c - `lucy serve`: wires the daemon together and runs until
 * SIGTERM/SIGINT.
 *
 * Order of start-up: config -> data dir, store, disk guard -> health
 * registry and HTTP routes (core, then plugins) -> prober -> HTTP -> plugin
 * workers. Shutdown runs in reverse: stop accepting HTTP (in-flight
 * requests finish, so every 200 already sent is durable), stop workers,
 * stop the prober, drain the store's writer, exit 0.
 *
 * Signals are blocked in every thread and taken by sigtimedwait() on the
 * main thread, so no handler runs in the middle of library code. The same
 * loop tells systemd READY=1 and pings its watchdog (sd_notify, libsystemd)
 * while the prober is alive.
 *
 * For its whole life the daemon holds an EXCLUSIVE flock on
 * DATA_DIR/lucy.pid (which names its pid): a second `lucy serve` on the
 * same data dir exits 1 naming the first's pid; `lucy doctor` tries the
 * lock to learn whether a daemon runs, and removes stale temp copies only
 * while it holds it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "../media/media.h"
#include "../config.h"
#include "../error.h"
#include "../health/core.h"
#include "../health/health.h"
#include "../http/http.h"
#include "../log.h"
#include "../lucy.h"
#include "../plugins/plugin.h"
#include "cmd.h"
#include "systemd.h"

#define MAX_PLUGINS 16

static void log_tick(void *arg)
{
    (void)arg;
    lucy_log_tick();
}

/* How stale the prober may be before the watchdog stops being pinged: more
 * than any check's timeout, well under a typical WatchdogSec. */
#define WATCHDOG_PROBER_MAX_AGE_MS 10000

/* Tells systemd we are ready (a no-op without NOTIFY_SOCKET), then waits
 * for SIGTERM/SIGINT. Meanwhile, if systemd's watchdog is on, pings it at
 * half its interval, but only while the prober is alive, so a wedged
 * daemon is restarted by systemd (liveness at the OS level). Returns the
 * signal taken. */
static int wait_for_signal(struct lucy_ctx *ctx)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    const struct lucy_systemd *sd = lucy_systemd();
    uint64_t watchdog_usec = 0;
    int watchdog = sd && sd->watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0;
    char ready[1200];
    snprintf(ready, sizeof ready, "READY=1\nSTATUS=listening, data dir %.1000s",
             ctx->cfg->data_dir);
    int told = sd ? sd->notify(0, ready) : 0;
    if (told < 0) /* a Type=notify unit would time out with nothing said */
        lucy_log(LUCY_LOG_WARNING,
                 "systemd cannot be told lucy is ready: NOTIFY_SOCKET is not a socket lucy can "
                 "send to; unset it when systemd does not run lucy",
                 "{s:s,s:s}", "notify_socket", getenv("NOTIFY_SOCKET"), "error", strerror(-told));
    uint64_t period_usec = watchdog ? watchdog_usec / 2 : 1000000;
    for (;;) {
        struct timespec timeout = {(time_t)(period_usec / 1000000),
                                   (long)(period_usec % 1000000) * 1000};
        int sig = sigtimedwait(&set, NULL, &timeout);
        if (sig > 0)
            return sig;
        if (watchdog && lucy_health_prober_alive(ctx->health, WATCHDOG_PROBER_MAX_AGE_MS))
            sd->notify(0, "WATCHDOG=1");
    }
}

/* How long start-up waits for `lucy doctor --fix` to release lucy.pid. */
#define PID_LOCK_WAIT_MS 10000

/* The pid written in the lock file when that process is alive and not us;
 * 0 otherwise (none, stale, or unreadable). */
static long live_holder(int fd)
{
    char buf[32] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
    if (pid <= 0 || pid == (long)getpid())
        return 0;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM ? pid : 0;
}

/* Takes the EXCLUSIVE lock on DATA_DIR/lucy.pid and writes our pid into
 * it, so a second `lucy serve` on the same data dir cannot start (two
 * daemons would requeue each other's jobs). While `lucy doctor --fix`
 * holds the lock briefly (the file then names no live process) start-up
 * waits up to PID_LOCK_WAIT_MS.
 * Returns the descriptor to keep open until exit; -1 when the file cannot
 * be opened at all (logged: the daemon runs, doctor cannot see it); -2
 * when another daemon holds the data dir (*holder = its pid, or 0 when
 * the wait ran out). */
static int hold_pid_lock(const char *data_dir, long *holder)
{
    char path[1100];
    snprintf(path, sizeof path, "%.1000s/lucy.pid", data_dir);
    *holder = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        lucy_log(LUCY_LOG_WARNING, "cannot lock the data dir", "{s:s,s:s,s:s}", "path", path,
                 "error", strerror(errno), "effect",
                 "lucy doctor cannot tell that this daemon runs, and a second lucy serve on this "
                 "data dir would not be refused");
        return -1;
    }
    for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; waited += 50) {
        if (errno != EWOULDBLOCK || (*holder = live_holder(fd)) > 0 || waited >= PID_LOCK_WAIT_MS) {
            close(fd);
            return -2;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        /* a full disk: the lock alone is what doctor and a second daemon need */
    }
    return fd;
}

/* LUCY_READY_REQUIRES: makes the named dependencies' checks ("redis:*",
 * "qdrant:*") critical, after every plugin has registered its checks. A
 * name with no checks (its URL unset) is logged, not fatal. */
static void apply_ready_requires(struct lucy_health *h, const char *csv)
{
    char copy[256];
    snprintf(copy, sizeof copy, "%s", csv ? csv : "");
    char *save = NULL;
    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s:", t);
        if (lucy_health_require(h, prefix) != 0)
            lucy_log(LUCY_LOG_WARNING, "LUCY_READY_REQUIRES names an unconfigured dependency",
                     "{s:s}", "dependency", t);
    }
}

static int run(struct lucy_ctx *ctx, const struct lucy_config *cfg)
{
    char err[512];
    void *states[MAX_PLUGINS] = {0};
    int n_plugins = 0, started = 0, rc = LUCY_EXIT_FAILED;

    ctx->health = lucy_health_new(LUCY_VERSION);
    ctx->http = lucy_http_new(ctx, cfg->api_token, cfg->http_threads, cfg->http_request_timeout_s);
    if (ctx->http)
        lucy_http_set_body_budget(ctx->http, (size_t)cfg->http_body_budget_mb << 20);
    if (!ctx->health || !ctx->http || lucy_core_register(ctx) != 0) {
        lucy_cmd_error("out of memory at start-up");
        goto out;
    }
    lucy_health_on_tick(ctx->health, log_tick, NULL);
    for (; lucy_plugins[n_plugins] && n_plugins < MAX_PLUGINS; n_plugins++) {
        const struct lucy_plugin *p = lucy_plugins[n_plugins];
        int e = p->init ? p->init(ctx, &states[n_plugins]) : 0;
        if (e) {
            lucy_cmd_error(
                "plugin %s failed to start: %s (the log line above says why and what to do)",
                p->name, lucy_strerror(e));
            goto out;
        }
    }
    apply_ready_requires(ctx->health, cfg->ready_requires);
    if (lucy_health_start(ctx->health) != 0) {
        lucy_cmd_error("cannot start the prober thread");
        goto out;
    }
    int port = 0;
    if (lucy_http_start(ctx->http, cfg->listen_host, cfg->listen_port, &port, err, sizeof err)) {
        lucy_cmd_error("%s", err);
        goto out;
    }
    for (; started < n_plugins; started++) {
        const struct lucy_plugin *p = lucy_plugins[started];
        int e = p->start ? p->start(states[started]) : 0;
        if (e) {
            lucy_cmd_error(
                "plugin %s failed to start: %s (the log line above says why and what to do)",
                p->name, lucy_strerror(e));
            goto out;
        }
    }
    lucy_log(LUCY_LOG_INFO, "listening", "{s:s,s:i,s:s,s:s}", "host", cfg->listen_host, "port",
             port, "data_dir", cfg->data_dir, "version", LUCY_VERSION);

    int sig = wait_for_signal(ctx);
    lucy_ctx_stop(ctx);
    lucy_media_stop(); /* media calls in progress give up: the stop is not held up */
    const struct lucy_systemd *sd = lucy_systemd();
    if (sd)
        sd->notify(0, "STOPPING=1");
    lucy_log(LUCY_LOG_INFO, "shutting down", "{s:s}", "signal",
             sig == SIGTERM ? "SIGTERM" : "SIGINT");
    rc = LUCY_EXIT_OK;
out:
    if (ctx->http)
        lucy_http_stop(ctx->http);
    for (int i = started - 1; i >= 0; i--)
        if (lucy_plugins[i]->stop)
            lucy_plugins[i]->stop(states[i]);
    if (ctx->health)
        lucy_health_stop(ctx->health);
    for (int i = n_plugins - 1; i >= 0; i--)
        if (lucy_plugins[i]->free)
            lucy_plugins[i]->free(states[i]);
    lucy_http_free(ctx->http);
    ctx->http = NULL;
    lucy_health_free(ctx->health);
    ctx->health = NULL;
    return rc;
}

int lucy_cmd_serve(int argc, char **argv)
{
    struct lucy_config cfg;
    int n_pos;
    int rc = lucy_cmd_config(&cfg, argc, argv, NULL, NULL, NULL, 0, &n_pos);
    if (rc) {
        lucy_config_free(&cfg);
        return rc;
    }
    if (!lucy_config_is_loopback(cfg.listen_host) && (!cfg.api_token || !*cfg.api_token)) {
        lucy_cmd_error("refusing to listen on non-loopback address %s without LUCY_API_TOKEN; "
                       "set a token or listen on 127.0.0.1",
                       cfg.listen_host);
        lucy_config_free(&cfg);
        return LUCY_EXIT_USAGE;
    }

    /* Block the signals before any thread exists; every thread inherits the
     * mask and the main thread takes them with sigwait(). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct lucy_ctx ctx;
    char err[512];
    if (lucy_ctx_open(&ctx, &cfg, err, sizeof err) != 0) {
        lucy_cmd_error("%s", err);
        lucy_ctx_close(&ctx);
        lucy_config_free(&cfg);
        return LUCY_EXIT_FAILED;
    }
    long holder;
    int pid_fd = hold_pid_lock(cfg.data_dir, &holder);
    if (pid_fd == -2) {
        if (holder > 0)
            lucy_cmd_error("another lucy serve (pid %ld) is running on data dir %s; stop it "
                           "first or give this one its own --data (make run DATA=DIR)",
                           holder, cfg.data_dir);
        else
            lucy_cmd_error("data dir %s stayed locked for %d s (lucy doctor --fix or another "
                           "lucy serve holds %s/lucy.pid); try again",
                           cfg.data_dir, PID_LOCK_WAIT_MS / 1000, cfg.data_dir);
        lucy_ctx_close(&ctx);
        lucy_config_free(&cfg);
        return LUCY_EXIT_FAILED;
    }
    lucy_ctx_clean_tmp(&ctx);
    /* FFmpeg and the recognisers run in media processes (src/media/remote.c),
     * ended when idle with the model: they never enter the daemon's memory. */
    lucy_media_set_remote(1);
    lucy_media_set_idle_unload(cfg.asr_idle_unload_s);
    rc = run(&ctx, &cfg);
    lucy_media_shutdown(); /* the workers stopped: no call is in progress */
    lucy_ctx_close(&ctx);
    if (pid_fd >= 0)
        close(pid_fd);
    lucy_log(LUCY_LOG_INFO, "stopped", NULL);
    lucy_config_free(&cfg);
    return rc;
}
