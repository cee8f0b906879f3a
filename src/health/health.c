/*
 * health.c - check registry, prober thread and the readiness document.
 *
 * Entries are kept in registration order. The prober wakes every TICK_MS,
 * runs the checks that are due (outside the lock: a slow check delays only
 * the checks after it, never /health), then stores each result under the
 * lock. Readers copy results under the lock and render from the copy.
 * A result older than 3 intervals plus its timeout is reported as stale
 * (warn), so a prober stuck in a hung check is visible instead of silent.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../clock.h"
#include "../error.h"
#include "../thread.h"
#include "health.h"

#define TICK_MS      250
#define MAX_TICK_FNS 8

struct entry {
    struct lucy_check check;         /* the registered row */
    struct lucy_check_report report; /* latest result */
    int64_t measured_at_ms;          /* wall clock of the latest result; 0 = never */
    int64_t next_due_mono_ms;        /* when to run next */
};

struct lucy_health {
    pthread_mutex_t lock;      /* guards entries' reports, running, last_loop_mono_ms */
    struct lucy_thread thread; /* the prober */
    int running;               /* thread started */
    char version[64];          /* reported in /health */
    struct entry *entries;     /* registered checks */
    int n, cap;                /* used / allocated */
    struct {
        void (*fn)(void *);
        void *arg;
    } ticks[MAX_TICK_FNS]; /* extra per-tick work */
    int n_ticks;
    int64_t last_loop_mono_ms; /* when the prober last went round its loop */
};

static const char *const status_names[] = {"pass", "warn", "fail"};

const char *lucy_health_status_name(enum lucy_health_status s)
{
    return status_names[s];
}

enum lucy_health_status lucy_health_worst(enum lucy_health_status a, enum lucy_health_status b)
{
    return a > b ? a : b;
}

int lucy_health_http_status(enum lucy_health_status s)
{
    return s == LUCY_HEALTH_FAIL ? 503 : 200;
}

enum lucy_health_status lucy_health_check_status(const struct lucy_check_report *r, int critical)
{
    if (r->n_items == 0)
        return LUCY_HEALTH_WARN;
    enum lucy_health_status s = LUCY_HEALTH_PASS;
    for (int i = 0; i < r->n_items; i++)
        s = lucy_health_worst(s, r->items[i].status);
    if (s == LUCY_HEALTH_FAIL && !critical)
        s = LUCY_HEALTH_WARN;
    return s;
}

struct lucy_check_item *lucy_check_add(struct lucy_check_report *r, const char *component_id,
                                       enum lucy_health_status status, double value,
                                       const char *unit, const char *fmt, ...)
{
    if (r->n_items >= LUCY_CHECK_MAX_ITEMS)
        return NULL;
    struct lucy_check_item *it = &r->items[r->n_items++];
    memset(it, 0, sizeof *it);
    snprintf(it->component_id, sizeof it->component_id, "%s", component_id ? component_id : "");
    it->status = status;
    it->observed_value = value;
    snprintf(it->observed_unit, sizeof it->observed_unit, "%s", unit ? unit : "");
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(it->output, sizeof it->output, fmt, ap);
        va_end(ap);
    }
    return it;
}

struct lucy_health *lucy_health_new(const char *version)
{
    struct lucy_health *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    pthread_mutex_init(&h->lock, NULL);
    snprintf(h->version, sizeof h->version, "%s", version);
    return h;
}

void lucy_health_free(struct lucy_health *h)
{
    if (!h)
        return;
    lucy_health_stop(h);
    pthread_mutex_destroy(&h->lock);
    free(h->entries);
    free(h);
}

int lucy_health_register(struct lucy_health *h, const struct lucy_check *c)
{
    if (h->n == h->cap) {
        int cap = h->cap ? h->cap * 2 : 8;
        struct entry *e = realloc(h->entries, (size_t)cap * sizeof *e);
        if (!e)
            return LUCY_ENOMEM;
        h->entries = e;
        h->cap = cap;
    }
    struct entry *e = &h->entries[h->n++];
    memset(e, 0, sizeof *e);
    e->check = *c;
    return 0;
}

int lucy_health_require(struct lucy_health *h, const char *prefix)
{
    int found = LUCY_ENOTFOUND;
    size_t n = strlen(prefix);
    for (int i = 0; i < h->n; i++) {
        if (strncmp(h->entries[i].check.name, prefix, n) == 0) {
            h->entries[i].check.critical = 1;
            found = 0;
        }
    }
    return found;
}

void lucy_health_on_tick(struct lucy_health *h, void (*fn)(void *), void *arg)
{
    if (h->n_ticks < MAX_TICK_FNS) {
        h->ticks[h->n_ticks].fn = fn;
        h->ticks[h->n_ticks].arg = arg;
        h->n_ticks++;
    }
}

static void run_due(struct lucy_health *h, int64_t now)
{
    for (int i = 0; i < h->n; i++) {
        struct entry *e = &h->entries[i];
        if (now < e->next_due_mono_ms)
            continue;
        struct lucy_check_report r;
        memset(&r, 0, sizeof r);
        e->check.fn(e->check.arg, e->check.timeout_ms, &r);
        pthread_mutex_lock(&h->lock);
        e->report = r;
        e->measured_at_ms = lucy_wall_ms();
        pthread_mutex_unlock(&h->lock);
        e->next_due_mono_ms = lucy_mono_ms() + e->check.interval_ms;
        if (lucy_thread_stopping(&h->thread))
            return;
    }
}

static void prober_main(void *arg)
{
    struct lucy_health *h = arg;
    do {
        pthread_mutex_lock(&h->lock);
        h->last_loop_mono_ms = lucy_mono_ms();
        pthread_mutex_unlock(&h->lock);
        run_due(h, lucy_mono_ms());
        for (int i = 0; i < h->n_ticks; i++)
            h->ticks[i].fn(h->ticks[i].arg);
    } while (!lucy_thread_nap(&h->thread, TICK_MS));
}

int lucy_health_start(struct lucy_health *h)
{
    run_due(h, lucy_mono_ms());
    h->last_loop_mono_ms = lucy_mono_ms();
    h->thread = (struct lucy_thread){.name = "prober", .main = prober_main, .arg = h};
    if (lucy_thread_start(&h->thread) != 0)
        return LUCY_ENOMEM;
    pthread_mutex_lock(&h->lock);
    h->running = 1;
    pthread_mutex_unlock(&h->lock);
    return 0;
}

int lucy_health_prober_alive(struct lucy_health *h, int max_age_ms)
{
    pthread_mutex_lock(&h->lock);
    int alive = h->running && lucy_mono_ms() - h->last_loop_mono_ms <= max_age_ms;
    pthread_mutex_unlock(&h->lock);
    return alive;
}

void lucy_health_stop(struct lucy_health *h)
{
    if (!h->running)
        return;
    lucy_thread_stop(&h->thread);
    pthread_mutex_lock(&h->lock);
    h->running = 0;
    pthread_mutex_unlock(&h->lock);
}

/* The cached result of e, with staleness and "not checked yet" applied. */
static void effective_report(const struct entry *e, int64_t now, struct lucy_check_report *out)
{
    *out = e->report;
    if (e->measured_at_ms == 0) {
        memset(out, 0, sizeof *out);
        lucy_check_add(out, "", LUCY_HEALTH_WARN, 0, "", "not checked yet; lucy is starting");
        return;
    }
    int64_t age = now - e->measured_at_ms;
    int64_t limit = 3 * (int64_t)e->check.interval_ms + e->check.timeout_ms + 1000;
    if (age > limit) {
        for (int i = 0; i < out->n_items; i++) {
            out->items[i].status = lucy_health_worst(out->items[i].status, LUCY_HEALTH_WARN);
            snprintf(out->items[i].output, sizeof out->items[i].output,
                     "result is stale (%lld ms old): the prober may be stuck in a slow check; "
                     "see the log",
                     (long long)age);
        }
    }
}

static void iso_time(int64_t ms, char *buf, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
}

static const char *dep_prefix[] = {"ok", "warning", "error"};

json_t *lucy_health_render(struct lucy_health *h, enum lucy_health_status *overall_out)
{
    json_t *checks = json_object(), *deps = json_object();
    enum lucy_health_status overall = LUCY_HEALTH_PASS;
    /* worst status seen per dependency key, to keep the worst text */
    json_t *dep_rank = json_object();
    int64_t now = lucy_wall_ms();

    pthread_mutex_lock(&h->lock);
    for (int i = 0; i < h->n; i++) {
        const struct entry *e = &h->entries[i];
        struct lucy_check_report r;
        effective_report(e, now, &r);
        enum lucy_health_status cs = lucy_health_check_status(&r, e->check.critical);
        overall = lucy_health_worst(overall, cs);

        char when[40];
        iso_time(e->measured_at_ms ? e->measured_at_ms : now, when, sizeof when);
        json_t *arr = json_array();
        const struct lucy_check_item *worst = NULL;
        for (int k = 0; k < r.n_items; k++) {
            const struct lucy_check_item *it = &r.items[k];
            enum lucy_health_status is = it->status;
            if (is == LUCY_HEALTH_FAIL && !e->check.critical)
                is = LUCY_HEALTH_WARN;
            json_t *o = json_pack("{s:s,s:s,s:f,s:s,s:s,s:s,s:I}", "componentId", it->component_id,
                                  "componentType", e->check.component_type, "observedValue",
                                  it->observed_value, "observedUnit", it->observed_unit, "status",
                                  status_names[is], "time", when, "age_ms",
                                  (json_int_t)(e->measured_at_ms ? now - e->measured_at_ms : 0));
            if (it->output[0])
                json_object_set_new(o, "output", json_string(it->output));
            json_array_append_new(arr, o);
            if (!worst || it->status > worst->status)
                worst = it;
        }
        json_object_set_new(checks, e->check.name, arr);

        json_t *rank = json_object_get(dep_rank, e->check.dependency);
        if (rank && json_integer_value(rank) >= (json_int_t)cs)
            continue;
        char text[160];
        if (cs == LUCY_HEALTH_PASS || !worst)
            snprintf(text, sizeof text, "ok");
        else if (worst->dependency_text[0])
            snprintf(text, sizeof text, "%s", worst->dependency_text);
        else
            snprintf(text, sizeof text, "%s: %.120s", dep_prefix[cs], worst->output);
        json_object_set_new(deps, e->check.dependency, json_string(text));
        json_object_set_new(dep_rank, e->check.dependency, json_integer(cs));
    }
    pthread_mutex_unlock(&h->lock);
    json_decref(dep_rank);

    json_t *doc = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o}", "status", status_names[overall], "version",
                            h->version, "serviceId", "lucy", "description", "lucy readiness",
                            "checks", checks, "dependencies", deps);
    if (overall_out)
        *overall_out = overall;
    return doc;
}

void lucy_health_foreach(struct lucy_health *h,
                         void (*fn)(void *arg, const struct lucy_check *c,
                                    const struct lucy_check_report *r,
                                    enum lucy_health_status status),
                         void *arg)
{
    int64_t now = lucy_wall_ms();
    pthread_mutex_lock(&h->lock);
    for (int i = 0; i < h->n; i++) {
        struct lucy_check_report r;
        effective_report(&h->entries[i], now, &r);
        fn(arg, &h->entries[i].check, &r,
           lucy_health_check_status(&r, h->entries[i].check.critical));
    }
    pthread_mutex_unlock(&h->lock);
}
