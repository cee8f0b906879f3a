/*
 * health.h - the check registry, the prober thread and readiness.
 *
 * A check is a row (struct lucy_check): its name "component:measurement",
 * component type, the key it reports under in the flat `dependencies` map,
 * whether it is critical, how often it runs, its timeout and its function.
 * One prober thread ("prober") runs each check when due and caches the
 * result; /health renders from the cache and never waits on a check
 * (DESIGN §5). A check function must honour its timeout itself (pass it to
 * the client library it uses); the prober cannot interrupt it.
 *
 * Aggregation (lucy_health_check_status / lucy_health_worst): a check's
 * status is the worst of its items; a non-critical check's fail counts as
 * warn; the overall status is the worst check. pass/warn answer HTTP 200,
 * fail 503.
 */
#ifndef LUCY_HEALTH_H
#define LUCY_HEALTH_H

#include <jansson.h>
#include <stdint.h>

enum lucy_health_status { LUCY_HEALTH_PASS, LUCY_HEALTH_WARN, LUCY_HEALTH_FAIL };

#define LUCY_CHECK_MAX_ITEMS 16

/* One measured component (IETF draft "checks" array entry). */
struct lucy_check_item {
    char component_id[256];         /* e.g. the path for disk:free */
    enum lucy_health_status status; /* this component's verdict */
    double observed_value;          /* the number measured */
    char observed_unit[16];         /* "%", "bytes", "ms", "items" ... */
    char output[512];               /* why, and what to do, when not pass */
    char dependency_text[96];       /* short text for `dependencies`, e.g.
                                       "warning: 8.1% free"; "" = derived */
};

/* What one run of a check produced. */
struct lucy_check_report {
    struct lucy_check_item items[LUCY_CHECK_MAX_ITEMS]; /* measured components */
    int n_items;                                        /* used entries */
};

/* Fills out (zeroed by the caller) within timeout_ms. arg is the row's arg. */
typedef void (*lucy_check_fn)(void *arg, int timeout_ms, struct lucy_check_report *out);

struct lucy_check {
    const char *name;           /* "component:measurement", e.g. "disk:free" */
    const char *component_type; /* "system", "datastore", "component" ... */
    const char *dependency;     /* key in the flat `dependencies` map */
    int critical;               /* fail may fail readiness; else only warns */
    int interval_ms;            /* how often it runs */
    int timeout_ms;             /* budget handed to fn */
    lucy_check_fn fn;           /* the check */
    void *arg;                  /* passed to fn; owned by the registrant */
};

struct lucy_health;

/* Creates an empty registry. version is reported in /health. */
struct lucy_health *lucy_health_new(const char *version);
void lucy_health_free(struct lucy_health *h);

/* Adds a check (the row is copied; name and strings must be static).
 * Only before lucy_health_start(). Returns 0 or LUCY_ENOMEM. */
int lucy_health_register(struct lucy_health *h, const struct lucy_check *c);

/* Makes the named check critical (LUCY_READY_REQUIRES). 0 or LUCY_ENOTFOUND. */
int lucy_health_require(struct lucy_health *h, const char *name_prefix);

/* Runs every check once on the calling thread (so the first /health
 * already has data), then starts the prober thread. 0 or LUCY_ENOMEM. */
int lucy_health_start(struct lucy_health *h);
void lucy_health_stop(struct lucy_health *h);

/* 1 when the prober thread went round its loop within max_age_ms: the
 * daemon's own liveness, used to decide whether to ping systemd's
 * watchdog. A prober stuck in a hung check stops the pings. */
int lucy_health_prober_alive(struct lucy_health *h, int max_age_ms);

/* Extra work the prober does every tick (~250 ms), e.g. lucy_log_tick. */
void lucy_health_on_tick(struct lucy_health *h, void (*fn)(void *), void *arg);

/* Pure aggregation, for one check: worst item; fail becomes warn when not
 * critical; no items at all is warn ("not checked yet"). */
enum lucy_health_status lucy_health_check_status(const struct lucy_check_report *r, int critical);

/* Worst of two statuses. */
enum lucy_health_status lucy_health_worst(enum lucy_health_status a, enum lucy_health_status b);

/* HTTP status for an overall status: 200 for pass and warn, 503 for fail. */
int lucy_health_http_status(enum lucy_health_status s);

const char *lucy_health_status_name(enum lucy_health_status s);

/* The readiness document (new reference) and its overall status. */
json_t *lucy_health_render(struct lucy_health *h, enum lucy_health_status *overall);

/* Calls fn for every check's cached result, under the registry lock (fn
 * must be quick and must not call back into health). For /metrics. */
void lucy_health_foreach(struct lucy_health *h,
                         void (*fn)(void *arg, const struct lucy_check *c,
                                    const struct lucy_check_report *r,
                                    enum lucy_health_status status),
                         void *arg);

/* Convenience for check functions: appends an item. Returns it, or NULL
 * when the report is full. fmt is printf-style for `output`. */
struct lucy_check_item *lucy_check_add(struct lucy_check_report *r, const char *component_id,
                                       enum lucy_health_status status, double value,
                                       const char *unit, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif
