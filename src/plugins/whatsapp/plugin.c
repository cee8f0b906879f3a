/*
 * plugin.c - the WhatsApp plugin (DESIGN §5, §8): one struct lucy_plugin.
 *
 * init   routes (webhook: no bearer token, 3 MiB bodies; contacts: token),
 *        the `whatsapp:inbox` health check, /metrics lines, the start-up
 *        warning when unsigned webhooks are accepted. The routes get the
 *        plugin state (struct lucy_wa) as their arg; the daemon's kv
 *        (ctx->kv, opened by the kv plugin, which starts first) is
 *        borrowed for the contacts' shared names and the worker.
 * start  the media thread ("wa-media"), then the inbox worker
 *        ("inbox-worker"), which hands voice notes to it.
 * stop   joins both (HTTP has stopped by then: every 200 sent is durable,
 *        and whatever is pending is picked up at the next start).
 * free   frees the state.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../../clock.h"
#include "../../error.h"
#include "../../health/health.h"
#include "../../http/http.h"
#include "../../log.h"
#include "../../lucy.h"
#include "../../store/store.h"
#include "../plugin.h"
#include "whatsapp.h"

/* Backlog age above which whatsapp:inbox warns. The worker normally keeps
 * the inbox empty within a second; minutes mean it cannot write. */
#define INBOX_WARN_AGE_S 300

struct backlog {
    int64_t now_ms;
    long long messages, statuses, media, media_failed; /* pending counts */
    int64_t oldest_ms;                                 /* received_at_ms, 0 = none */
};

static const char sql_backlog[] =
    "SELECT (SELECT count(*) FROM wa_messages WHERE state = 'pending'),"
    " (SELECT count(*) FROM wa_statuses WHERE state = 'pending'),"
    " (SELECT count(*) FROM wa_media WHERE state IN ('pending','downloaded')),"
    " (SELECT count(*) FROM wa_media WHERE state = 'failed'),"
    " min(coalesce((SELECT min(received_at_ms) FROM wa_messages WHERE state = 'pending'), 9e18),"
    " coalesce((SELECT min(received_at_ms) FROM wa_statuses WHERE state = 'pending'), 9e18))";

static int read_backlog(sqlite3 *db, void *arg)
{
    struct backlog *b = arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_backlog, &st);
    if (rc)
        return rc;
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        b->messages = sqlite3_column_int64(st, 0);
        b->statuses = sqlite3_column_int64(st, 1);
        b->media = sqlite3_column_int64(st, 2);
        b->media_failed = sqlite3_column_int64(st, 3);
        double oldest = sqlite3_column_double(st, 4);
        b->oldest_ms = oldest < 9e18 ? (int64_t)oldest : 0;
    }
    return rc == SQLITE_ROW ? 0 : lucy_store_err(rc);
}

static void check_inbox(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    (void)timeout_ms;
    struct lucy_wa *wa = arg;
    struct backlog b = {.now_ms = lucy_wall_ms()};
    int rc = lucy_store_read(wa->ctx->store, read_backlog, &b);
    if (rc) {
        lucy_check_add(out, "inbox", LUCY_HEALTH_WARN, 0, "items",
                       "cannot read the inbox backlog (%s); see store:writable", lucy_strerror(rc));
        return;
    }
    long long pending = b.messages + b.statuses;
    double age_s = b.oldest_ms ? (double)(b.now_ms - b.oldest_ms) / 1000.0 : 0;
    if (age_s > INBOX_WARN_AGE_S) {
        struct lucy_check_item *it = lucy_check_add(
            out, "inbox", LUCY_HEALTH_WARN, (double)pending, "items",
            "%lld webhook items pending, the oldest for %.0f s (over %d s): the inbox worker "
            "cannot finish them; nothing is lost, they are retried with backoff. Check "
            "store:writable, disk:free and the log for 'whatsapp item left pending'",
            pending, age_s, INBOX_WARN_AGE_S);
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text,
                     "warning: %lld pending, oldest %.0f s", pending, age_s);
    } else {
        lucy_check_add(out, "inbox", LUCY_HEALTH_PASS, (double)pending, "items",
                       "%lld pending (oldest %.0f s); %lld voice notes queued, %lld failed",
                       pending, age_s, b.media, b.media_failed);
    }
}

static void metrics(void *arg, FILE *out)
{
    struct lucy_wa *wa = arg;
    fprintf(out,
            "# HELP lucy_whatsapp_inbox_accepted_total Webhook messages and statuses committed "
            "(fsynced) for the first time\n"
            "# TYPE lucy_whatsapp_inbox_accepted_total counter\n"
            "lucy_whatsapp_inbox_accepted_total %llu\n"
            "# HELP lucy_whatsapp_inbox_duplicate_total Webhook items already stored "
            "(acknowledged, not processed again)\n"
            "# TYPE lucy_whatsapp_inbox_duplicate_total counter\n"
            "lucy_whatsapp_inbox_duplicate_total %llu\n"
            "# HELP lucy_whatsapp_inbox_bodies_total Webhook POSTs committed\n"
            "# TYPE lucy_whatsapp_inbox_bodies_total counter\n"
            "lucy_whatsapp_inbox_bodies_total %llu\n"
            "# HELP lucy_whatsapp_inbox_rejected_total Webhook POSTs not accepted, by reason\n"
            "# TYPE lucy_whatsapp_inbox_rejected_total counter\n",
            __atomic_load_n(&wa->accepted, __ATOMIC_RELAXED),
            __atomic_load_n(&wa->duplicates, __ATOMIC_RELAXED),
            __atomic_load_n(&wa->bodies, __ATOMIC_RELAXED));
    for (int r = 0; r < LUCY_WA_REJECT_COUNT; r++)
        fprintf(out, "lucy_whatsapp_inbox_rejected_total{reason=\"%s\"} %llu\n",
                lucy_wa_reject_name((enum lucy_wa_reject)r),
                __atomic_load_n(&wa->rejected[r], __ATOMIC_RELAXED));
    struct backlog b = {.now_ms = lucy_wall_ms()};
    if (lucy_store_read(wa->ctx->store, read_backlog, &b) == 0)
        fprintf(out,
                "# HELP lucy_whatsapp_inbox_pending Webhook items waiting for the inbox worker\n"
                "# TYPE lucy_whatsapp_inbox_pending gauge\n"
                "lucy_whatsapp_inbox_pending{kind=\"message\"} %lld\n"
                "lucy_whatsapp_inbox_pending{kind=\"status\"} %lld\n"
                "# HELP lucy_whatsapp_inbox_oldest_pending_seconds Age of the oldest pending "
                "item\n"
                "# TYPE lucy_whatsapp_inbox_oldest_pending_seconds gauge\n"
                "lucy_whatsapp_inbox_oldest_pending_seconds %.3f\n"
                "# HELP lucy_whatsapp_media_pending Voice notes waiting for download or "
                "transcription\n"
                "# TYPE lucy_whatsapp_media_pending gauge\n"
                "lucy_whatsapp_media_pending %lld\n",
                b.messages, b.statuses,
                b.oldest_ms ? (double)(b.now_ms - b.oldest_ms) / 1000.0 : 0.0, b.media);
    struct lucy_wa_worker *worker = __atomic_load_n(&wa->worker, __ATOMIC_ACQUIRE);
    struct lucy_wa_media *media = __atomic_load_n(&wa->media, __ATOMIC_ACQUIRE);
    if (worker) {
        struct lucy_wa_worker_stats s;
        lucy_wa_worker_stats(worker, &s);
        fprintf(out,
                "# HELP lucy_whatsapp_processed_total Messages stored and queued for indexing\n"
                "# TYPE lucy_whatsapp_processed_total counter\n"
                "lucy_whatsapp_processed_total %llu\n"
                "# HELP lucy_whatsapp_statuses_applied_total Delivery statuses applied\n"
                "# TYPE lucy_whatsapp_statuses_applied_total counter\n"
                "lucy_whatsapp_statuses_applied_total %llu\n"
                "# HELP lucy_whatsapp_rate_limited_total Messages over LUCY_RATE_LIMIT (stored "
                "and flagged)\n"
                "# TYPE lucy_whatsapp_rate_limited_total counter\n"
                "lucy_whatsapp_rate_limited_total %llu\n"
                "# HELP lucy_whatsapp_unknown_types_total Messages of a type lucy does not know "
                "(stored raw)\n"
                "# TYPE lucy_whatsapp_unknown_types_total counter\n"
                "lucy_whatsapp_unknown_types_total %llu\n"
                "# HELP lucy_whatsapp_retries_total Items left pending after a failure\n"
                "# TYPE lucy_whatsapp_retries_total counter\n"
                "lucy_whatsapp_retries_total %llu\n",
                s.processed, s.statuses, s.rate_limited, s.unknown_types, s.retries);
    }
    if (media) {
        struct lucy_wa_media_stats m;
        lucy_wa_media_stats(media, &m);
        fprintf(out,
                "# HELP lucy_whatsapp_media_total Voice note outcomes\n"
                "# TYPE lucy_whatsapp_media_total counter\n"
                "lucy_whatsapp_media_total{outcome=\"transcribed\"} %llu\n"
                "lucy_whatsapp_media_total{outcome=\"failed\"} %llu\n"
                "lucy_whatsapp_media_total{outcome=\"retry\"} %llu\n",
                m.transcribed, m.failed, m.retries);
    }
}

static int wa_init(struct lucy_ctx *ctx, void **state)
{
    struct lucy_wa *wa = calloc(1, sizeof *wa);
    if (!wa)
        return LUCY_ENOMEM;
    wa->ctx = ctx;
    const struct lucy_config *cfg = ctx->cfg;
    int have_secret = cfg->whatsapp_app_secret && *cfg->whatsapp_app_secret;
    wa->unsigned_ok = !have_secret && lucy_config_is_loopback(cfg->listen_host);
    if (wa->unsigned_ok)
        lucy_log(LUCY_LOG_WARNING,
                 "WHATSAPP_APP_SECRET is not set: unsigned webhooks are accepted because lucy "
                 "listens on loopback; set it before exposing the webhook",
                 NULL);
    else if (!have_secret)
        lucy_log(LUCY_LOG_WARNING,
                 "WHATSAPP_APP_SECRET is not set: webhooks are refused (503) until it is", NULL);
    wa->kv = ctx->kv;
    if (!wa->kv) /* contacts and the worker then use the local store alone */
        lucy_log(LUCY_LOG_WARNING, "whatsapp runs without the kv backend", NULL);
    const struct lucy_check check = {
        "whatsapp:inbox", "component", "whatsapp", 0, 5000, 2000, check_inbox, wa,
    };
    int rc = lucy_health_register(ctx->health, &check);
    if (!rc)
        rc = lucy_metrics_add(ctx, metrics, wa);
    if (!rc)
        rc = lucy_http_add_routes(ctx->http, lucy_wa_webhook_routes, lucy_wa_webhook_routes_count,
                                  wa);
    if (!rc)
        rc = lucy_http_add_routes(ctx->http, lucy_wa_contact_routes, lucy_wa_contact_routes_count,
                                  wa);
    if (!rc)
        rc =
            lucy_http_add_routes(ctx->http, lucy_wa_forget_routes, lucy_wa_forget_routes_count, wa);
    if (!rc)
        rc = lucy_wa_forget_register(wa);
    *state = wa;
    return rc;
}

static int wa_start(void *state)
{
    struct lucy_wa *wa = state;
    struct lucy_wa_media *media = lucy_wa_media_start(wa->ctx);
    if (!media)
        return LUCY_ENOMEM;
    __atomic_store_n(&wa->media, media, __ATOMIC_RELEASE);
    struct lucy_wa_worker *worker = lucy_wa_worker_start(wa->ctx, wa->kv, media);
    __atomic_store_n(&wa->worker, worker, __ATOMIC_RELEASE);
    return worker ? 0 : LUCY_ENOMEM;
}

static void wa_stop(void *state)
{
    struct lucy_wa *wa = state;
    struct lucy_wa_worker *w = __atomic_exchange_n(&wa->worker, NULL, __ATOMIC_ACQ_REL);
    struct lucy_wa_media *m = __atomic_exchange_n(&wa->media, NULL, __ATOMIC_ACQ_REL);
    lucy_wa_worker_stop(w);
    lucy_wa_media_stop(m);
}

static void wa_free(void *state)
{
    free(state);
}

const struct lucy_plugin lucy_whatsapp_plugin = {
    .name = "whatsapp",
    .init = wa_init,
    .start = wa_start,
    .stop = wa_stop,
    .free = wa_free,
};
