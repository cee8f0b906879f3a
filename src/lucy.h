/*
 * lucy.h - the daemon's shared context.
 *
 * One struct lucy_ctx is built by lucy_ctx_open() and handed to plugins and
 * handlers. Its parts are each thread-safe on their own (see their
 * headers); the struct itself is read-only after start-up, except for
 * `stopping`.
 */
#ifndef LUCY_LUCY_H
#define LUCY_LUCY_H

#include <signal.h>
#include <stdio.h>

#include "config.h"

#ifndef LUCY_VERSION
#define LUCY_VERSION "0.0.0-dev"
#endif

struct lucy_store;
struct lucy_disk;
struct lucy_health;
struct lucy_http;
struct lucy_kv;
struct lucy_index;
struct lucy_ask;

#define LUCY_MAX_METRIC_SOURCES 16

/* Writes Prometheus text lines for one part of lucy onto out. */
typedef void (*lucy_metrics_fn)(void *arg, FILE *out);

struct lucy_ctx {
    const struct lucy_config *cfg;     /* loaded configuration (not owned) */
    char tmp_dir[1024];                /* DATA_DIR/tmp, 0700 */
    struct lucy_store *store;          /* the SQLite store */
    struct lucy_disk *disk;            /* disk guard */
    struct lucy_health *health;        /* check registry; NULL outside `serve` */
    struct lucy_http *http;            /* HTTP server; NULL outside `serve` */
    struct lucy_kv *kv;                /* the daemon's kv: set by the kv plugin's init, cleared
                                          by its free; NULL before, outside `serve`, or none */
    struct lucy_people_forget *forget; /* the forget registry (src/people/forget.h): set by
                                          the people plugin's init; NULL before or outside
                                          `serve` */
    struct lucy_index *index;          /* the search index: set by the index plugin's init,
                                          cleared by its free; NULL before or outside `serve` */
    struct lucy_ask *ask;              /* the ask engine: set by the ask plugin's init, cleared
                                          by its free (MCP's `ask` tool); NULL before or outside
                                          `serve` */
    struct {
        lucy_metrics_fn fn;
        void *arg;
    } metrics[LUCY_MAX_METRIC_SOURCES]; /* /metrics contributors */
    int n_metrics;
    int stopping; /* 1 once SIGTERM/SIGINT came: written by serve's main thread
                     (lucy_ctx_stop), read by any (lucy_ctx_stopping) */
};

/* Marks ctx as stopping / tells whether it is (atomics: worker threads
 * read what the main thread writes). */
static inline void lucy_ctx_stop(struct lucy_ctx *ctx)
{
    __atomic_store_n(&ctx->stopping, 1, __ATOMIC_RELEASE);
}
static inline int lucy_ctx_stopping(const struct lucy_ctx *ctx)
{
    return __atomic_load_n(&ctx->stopping, __ATOMIC_ACQUIRE);
}

/* Creates the data dir and DATA_DIR/tmp (0700), opens the store
 * (migrations) and the disk guard (one poll). Returns 0 or a LUCY_E* code
 * with one line in err. Close with lucy_ctx_close() on every path, also
 * after a failure. Safe for CLI commands while a daemon runs on the same
 * data dir. */
int lucy_ctx_open(struct lucy_ctx *ctx, const struct lucy_config *cfg, char *err, size_t errlen);
void lucy_ctx_close(struct lucy_ctx *ctx);

/* Removes every file in DATA_DIR/tmp: temp copies are only useful to the
 * job that made them, so any found at start-up belong to a run that
 * crashed. Only `lucy serve` calls this, before its workers start. */
void lucy_ctx_clean_tmp(struct lucy_ctx *ctx);

/* Adds a /metrics contributor (start-up only). 0 or LUCY_ENOMEM. */
int lucy_metrics_add(struct lucy_ctx *ctx, lucy_metrics_fn fn, void *arg);

/* Renders /metrics: every contributor in order. Returns a malloc'd string
 * (caller frees) and its length in *len; NULL on allocation failure. */
char *lucy_metrics_render(struct lucy_ctx *ctx, size_t *len);

/* Writes s as a Prometheus label value (escaping \, " and newline). */
void lucy_metrics_label(FILE *out, const char *s);

#endif
