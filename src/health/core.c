/*
 * core.c - the core's health checks (disk:free, store:writable), the
 * health and metrics endpoints, and the core's /metrics lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../asr/asr.h"
#include "../media/media.h"
#include "../clock.h"
#include "../disk/disk.h"
#include "../error.h"
#include "../http/http.h"
#include "../lucy.h"
#include "../store/row.h"
#include "../store/store.h"
#include "core.h"
#include "health.h"

#define MIB (1024.0 * 1024.0)

/* ---- disk:free ------------------------------------------------------------ */

static void check_disk(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    (void)timeout_ms;
    struct lucy_ctx *ctx = arg;
    lucy_disk_poll(ctx->disk);
    struct lucy_disk_path paths[LUCY_DISK_MAX_PATHS];
    int n = lucy_disk_snapshot(ctx->disk, paths, LUCY_DISK_MAX_PATHS);
    const struct lucy_disk_thresholds *t = lucy_disk_thresholds(ctx->disk);
    int reserve = lucy_disk_reserve_present(ctx->disk);
    int reserve_enabled = lucy_disk_reserve_bytes(ctx->disk) > 0;
    for (int i = 0; i < n; i++) {
        const struct lucy_disk_path *p = &paths[i];
        struct lucy_check_item *it;
        if (p->error || !p->measured) {
            it = lucy_check_add(out, p->path, LUCY_HEALTH_WARN, 0, "%",
                                "cannot measure free space of %s (%s): check the path exists "
                                "and is mounted",
                                p->path, strerror(p->error));
            continue;
        }
        double free_mb = (double)p->free_bytes / MIB;
        switch (p->level) {
        case LUCY_DISK_OK:
            it = lucy_check_add(out, p->path, LUCY_HEALTH_PASS, p->free_pct, "%", NULL);
            break;
        case LUCY_DISK_WARN:
            it = lucy_check_add(out, p->path, LUCY_HEALTH_WARN, p->free_pct, "%",
                                "level warn: %.1f MiB free (%.1f%%) on %s, below the warn "
                                "threshold (%d%% or %d MiB). Free space on this file system "
                                "soon: delete old files, or on a Docker host see `docker "
                                "system df` (docs/operations.md)",
                                free_mb, p->free_pct, p->path, t->warn_pct, t->warn_mb);
            break;
        default: {
            int is_data = strcmp(p->role, "extra") != 0;
            int gone = is_data && (!reserve || !reserve_enabled);
            it = lucy_check_add(
                out, p->path, gone ? LUCY_HEALTH_FAIL : LUCY_HEALTH_WARN, p->free_pct, "%",
                "level critical: %.1f MiB free (%.1f%%) on %s, below the critical threshold "
                "(%d%% or %d MiB). %s Free space now: delete files on this file system, or on a "
                "Docker host prune unused images and build cache (docs/operations.md)",
                free_mb, p->free_pct, p->path, t->critical_pct, t->critical_mb,
                !is_data ? "lucy keeps working, but the service using this path may not."
                : gone   ? "The reserve file is used up: transcription and temp copies are "
                           "paused and new writes may fail."
                         : "The reserve file was released; transcription and temp copies are "
                           "paused, webhooks are still accepted.");
            break;
        }
        }
        if (it && p->level != LUCY_DISK_OK)
            snprintf(it->dependency_text, sizeof it->dependency_text, "%s: %.1f%% free on %.48s",
                     p->level == LUCY_DISK_WARN ? "warning" : "critical", p->free_pct, p->path);
    }
}

/* ---- store:writable ------------------------------------------------------- */

static int probe_write(sqlite3 *db, void *arg)
{
    (void)arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(
        db, "INSERT OR REPLACE INTO store_probe (id, written_at_ms) VALUES (1, ?)", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, lucy_wall_ms());
    return lucy_row_step_done(st);
}

static void check_store(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    struct lucy_ctx *ctx = arg;
    int64_t t0_ms = lucy_mono_ms();
    int rc = lucy_store_write(ctx->store, probe_write, NULL, timeout_ms);
    double ms = (double)(lucy_mono_ms() - t0_ms);
    const char *path = lucy_store_path(ctx->store);
    if (rc == 0) {
        lucy_check_add(out, path, LUCY_HEALTH_PASS, ms, "ms", NULL);
        return;
    }
    struct lucy_check_item *it = lucy_check_add(
        out, path, LUCY_HEALTH_FAIL, ms, "ms",
        "a test write to the SQLite store %s failed (%s): lucy cannot store webhooks or "
        "transcripts. Check that the data dir's file system is mounted read-write and has free "
        "space (`lucy doctor`)",
        path, lucy_strerror(rc));
    if (it)
        snprintf(it->dependency_text, sizeof it->dependency_text, "error: store not writable (%s)",
                 lucy_strerror(rc));
}

/* ---- store:integrity -------------------------------------------------------
 * At start and every LUCY_STORE_CHECK_INTERVAL_S (1 h) a PRAGMA
 * quick_check (a full read of the file, on a read connection: it never
 * blocks the writer), at start also FTS5's integrity-check of the search
 * index, and on every run what the store itself met since (a corrupt page
 * found by any statement). Critical: a damaged store fails
 * readiness with the remedy. */

static void check_integrity(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    struct lucy_ctx *ctx = arg;
    struct lucy_store *s = ctx->store;
    char detail[300] = "";
    int64_t last = lucy_store_checked_at_ms(s);
    int64_t every_ms = (int64_t)ctx->cfg->store_check_interval_s * 1000;
    int rc = 0;
    if (!lucy_store_damaged(s, NULL, 0) &&
        (last == 0 || (every_ms > 0 && lucy_wall_ms() - last >= every_ms)))
        rc = lucy_store_quick_check(s, timeout_ms, detail, sizeof detail);
    /* FTS5's check holds up every write while it reads the whole index:
     * at start only, and in `lucy doctor` (docs/decisions.md) */
    if (rc == 0 && last == 0 && lucy_store_checked_at_ms(s))
        rc = lucy_store_fts_check(s, timeout_ms, detail, sizeof detail);
    const char *path = lucy_store_path(s);
    double age_s = lucy_store_checked_at_ms(s)
                       ? (double)(lucy_wall_ms() - lucy_store_checked_at_ms(s)) / 1000.0
                       : 0;
    if (lucy_store_damaged(s, detail, sizeof detail)) {
        struct lucy_check_item *it = lucy_check_add(
            out, path, LUCY_HEALTH_FAIL, age_s, "s",
            "the SQLite store %s is damaged (%s): stop lucy and restore the last backup "
            "(docs/operations.md, \"A damaged store\"); `lucy doctor` shows the details",
            path, detail);
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text, "error: store damaged");
    } else if (rc == LUCY_ETIMEDOUT) {
        lucy_check_add(out, path, LUCY_HEALTH_WARN, age_s, "s",
                       "the integrity check of %s did not finish in %d ms; it runs again later",
                       path, timeout_ms);
    } else {
        lucy_check_add(out, path, LUCY_HEALTH_PASS, age_s, "s", NULL);
    }
}

/* ---- endpoints ------------------------------------------------------------ */

static void get_live(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    (void)req;
    static const char body[] = "{\"status\":\"pass\"}";
    lucy_http_reply_text(resp, 200, "application/health+json", body, sizeof body - 1);
}

static void get_ready(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    enum lucy_health_status s;
    json_t *doc = lucy_health_render(req->ctx->health, &s);
    lucy_http_reply_json(resp, lucy_health_http_status(s), doc);
    resp->content_type = "application/health+json";
}

static void get_metrics(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    size_t len = 0;
    char *text = lucy_metrics_render(req->ctx, &len);
    if (!text) {
        lucy_http_reply_error(resp, LUCY_HTTP_INTERNAL, 0, "out of memory rendering metrics");
        return;
    }
    free(resp->body);
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = text;
    resp->body_len = len;
}

/* The effective configuration, secrets shown only as "(set)". Lets an
 * operator see what lucy actually runs with. */
static void get_config(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const struct lucy_config *cfg = req->ctx->cfg;
    json_t *options = json_object();
    for (size_t i = 0; i < lucy_options_count; i++) {
        const struct lucy_option *opt = &lucy_options[i];
        const void *field = (const char *)cfg + opt->offset;
        json_t *v;
        if (opt->type == LUCY_OPT_INT)
            v = json_integer(*(const int *)field);
        else if (opt->type == LUCY_OPT_BOOL)
            v = json_boolean(*(const int *)field);
        else if (!*(char *const *)field)
            v = json_null();
        else if (opt->secret)
            v = json_string("(set)");
        else
            v = json_string(*(char *const *)field);
        json_object_set_new(options, opt->name, v);
    }
    lucy_http_reply_json(resp, 200,
                         json_pack("{s:s,s:o}", "version", LUCY_VERSION, "options", options));
}

static const struct lucy_route core_routes[] = {
    {"GET", "/config", get_config, 1, 0, NULL},   {"GET", "/health/live", get_live, 0, 0, NULL},
    {"GET", "/health", get_ready, 0, 0, NULL},    {"GET", "/health/ready", get_ready, 0, 0, NULL},
    {"GET", "/metrics", get_metrics, 0, 0, NULL},
};

/* ---- metrics -------------------------------------------------------------- */

static void metrics_disk(void *arg, FILE *out)
{
    struct lucy_ctx *ctx = arg;
    struct lucy_disk_path p[LUCY_DISK_MAX_PATHS];
    int n = lucy_disk_snapshot(ctx->disk, p, LUCY_DISK_MAX_PATHS);
    static const struct {
        const char *name, *help;
    } gauges[] = {
        {"lucy_disk_free_bytes", "Free bytes available to lucy per watched path"},
        {"lucy_disk_free_pct", "Free percent per watched path"},
        {"lucy_disk_level", "Disk level per watched path: 0 ok, 1 warn, 2 critical"},
    };
    for (size_t g = 0; g < 3; g++) {
        fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g].name, gauges[g].help,
                gauges[g].name);
        for (int i = 0; i < n; i++) {
            fprintf(out, "%s{path=\"", gauges[g].name);
            lucy_metrics_label(out, p[i].path);
            fprintf(out, "\",role=\"%s\"} ", p[i].role);
            if (g == 0)
                fprintf(out, "%llu\n", (unsigned long long)p[i].free_bytes);
            else if (g == 1)
                fprintf(out, "%.3f\n", p[i].free_pct);
            else
                fprintf(out, "%d\n", (int)p[i].level);
        }
    }
    fprintf(out,
            "# HELP lucy_disk_reserve_present 1 when the reserve file exists\n"
            "# TYPE lucy_disk_reserve_present gauge\nlucy_disk_reserve_present %d\n",
            lucy_disk_reserve_present(ctx->disk));
}

static void one_check(void *arg, const struct lucy_check *c, const struct lucy_check_report *r,
                      enum lucy_health_status status)
{
    (void)r;
    fprintf(arg, "lucy_check_status{check=\"%s\",critical=\"%d\"} %d\n", c->name, c->critical,
            (int)status);
}

static void metrics_checks(void *arg, FILE *out)
{
    struct lucy_ctx *ctx = arg;
    fputs("# HELP lucy_check_status Health check status: 0 pass, 1 warn, 2 fail\n"
          "# TYPE lucy_check_status gauge\n",
          out);
    lucy_health_foreach(ctx->health, one_check, out);
}

static void one_count(void *arg, const char *method, const char *route, int status,
                      unsigned long long count)
{
    FILE *out = arg;
    fprintf(out, "lucy_http_requests_total{method=\"%s\",route=\"", method);
    lucy_metrics_label(out, route);
    fprintf(out, "\",status=\"%d\"} %llu\n", status, count);
}

static void metrics_http(void *arg, FILE *out)
{
    struct lucy_ctx *ctx = arg;
    fputs("# HELP lucy_http_requests_total HTTP requests by method, route and status\n"
          "# TYPE lucy_http_requests_total counter\n",
          out);
    lucy_http_foreach_count(ctx->http, one_count, out);
    fprintf(out,
            "# HELP lucy_http_body_bytes Request bodies held in memory now "
            "(bounded by LUCY_HTTP_BODY_BUDGET_MB)\n"
            "# TYPE lucy_http_body_bytes gauge\nlucy_http_body_bytes %zu\n",
            lucy_http_body_bytes(ctx->http));
}

/* The media module (src/media) loads when media work asks for it: this
 * only reports the last attempt, so an idle lucy loads nothing for it. */
static void check_media(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    (void)arg;
    (void)timeout_ms;
    char why[768];
    if (lucy_media_failure(why, sizeof why))
        lucy_check_add(out, "lucy-media.so", LUCY_HEALTH_WARN, 0, NULL,
                       "%s; until then recordings wait unprobed and untranscribed (nothing is "
                       "lost; see lucy doctor)",
                       why);
    else
        lucy_check_add(out, "lucy-media.so", LUCY_HEALTH_PASS, lucy_media_loaded(), NULL, NULL);
}

static void metrics_store(void *arg, FILE *out)
{
    struct lucy_ctx *ctx = arg;
    unsigned long long batches, writes;
    lucy_store_stats(ctx->store, &batches, &writes);
    fprintf(out,
            "# HELP lucy_store_commits_total Group commits (one fsync each)\n"
            "# TYPE lucy_store_commits_total counter\nlucy_store_commits_total %llu\n"
            "# HELP lucy_store_writes_total Writes made durable by group commits\n"
            "# TYPE lucy_store_writes_total counter\nlucy_store_writes_total %llu\n",
            batches, writes);
}

/* ---- registration --------------------------------------------------------- */

int lucy_core_register(struct lucy_ctx *ctx)
{
    const struct lucy_check checks[] = {
        {"disk:free", "system", "disk", 1, ctx->cfg->disk_interval_ms, 1000, check_disk, ctx},
        {"store:writable", "datastore", "store", 1, 5000, 3000, check_store, ctx},
        {"store:integrity", "datastore", "store_integrity", 1, 10000, 60000, check_integrity, ctx},
        {"media:module", "component", "media", 0, 5000, 1000, check_media, ctx},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (lucy_health_register(ctx->health, &checks[i]))
            return LUCY_ENOMEM;
    static const lucy_metrics_fn sources[] = {metrics_disk,  metrics_checks,   metrics_http,
                                              metrics_store, lucy_asr_metrics, lucy_media_metrics};
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++)
        if (lucy_metrics_add(ctx, sources[i], ctx))
            return LUCY_ENOMEM;
    return lucy_http_add_routes(ctx->http, core_routes, sizeof core_routes / sizeof core_routes[0],
                                NULL);
}
