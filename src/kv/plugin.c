/*
 * plugin.c - the `kv` plugin: opens the daemon's kv backend, hands it to
 * the later plugins as ctx->kv (closed by free, which runs after theirs),
 * and makes it visible and self-healing.
 *
 * Health checks (DESIGN §5, §10), all non-critical unless
 * LUCY_READY_REQUIRES names redis (applied by serve.c); the redis:* ones
 * only for a backend with LUCY_KV_CAP_ADMIN:
 *   kv:backend        which backend, the rate limiter's on-error mode
 *                     (LUCY_RATE_LIMIT_ON_ERROR), pending replays
 *   redis:ping        PING with the timeout; tells "up but cannot persist"
 *                     (MISCONF: Redis refuses PING too) from "down"
 *   redis:persistence INFO persistence (rdb_last_bgsave_status,
 *                     aof_last_write_status, rdb_changes_since_last_save),
 *                     CONFIG GET stop-writes-on-bgsave-error, and the state
 *                     of auto-heal
 *   redis:memory      INFO memory and a write probe: fail while Redis
 *                     refuses writes with -OOM (maxmemory reached and a
 *                     policy that finds nothing to evict), warn when it is
 *                     close to that. PING still answers then, so neither
 *                     redis:ping nor redis:persistence would notice
 * Checks run on the prober thread with the Redis timeout, so a hung Redis
 * delays only the prober, never /health (which renders the cache).
 *
 * Auto-heal (LUCY_REDIS_AUTOHEAL=1, off by default): when Redis is in
 * MISCONF because a background save failed, CONFIG SET
 * stop-writes-on-bgsave-error no (WARNING in the log, warn in /health);
 * while healed, ask for a BGSAVE every 10 s; after a successful save,
 * CONFIG SET ... yes again. A server that forbids CONFIG (renamed command,
 * ACL) is left alone and /health says so.
 *
 * Prober tick: replays pending writes (lucy_kv_replay) about once a second
 * while any are pending, and runs the backend's housekeeping once a
 * minute. /metrics: calls and errors by kind, redis up, pending replays,
 * rate-limit decisions taken by policy, auto-heal state.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../clock.h"
#include "../error.h"
#include "../health/health.h"
#include "../log.h"
#include "../lucy.h"
#include "../plugins/plugin.h"
#include "kv.h"
#include "kv_int.h"

#define REPLAY_EVERY_MS     1000
#define MAINTAIN_EVERY_MS   60000
#define BGSAVE_EVERY_MS     10000
#define PENDING_WARN_AGE_MS 60000

enum heal_state {
    HEAL_IDLE,    /* nothing changed on the server */
    HEAL_ACTIVE,  /* lucy set stop-writes-on-bgsave-error no */
    HEAL_REFUSED, /* the server would not let lucy change it */
};

struct kv_plugin {
    struct lucy_ctx *ctx;        /* not owned */
    struct lucy_kv *kv;          /* owned; lent as ctx->kv */
    int timeout_ms;              /* Redis timeout for the checks */
    int autoheal;                /* LUCY_REDIS_AUTOHEAL */
    atomic_int heal;             /* enum heal_state; read by /metrics */
    int64_t healed_at_ms;        /* wall clock of the CONFIG SET no */
    int64_t last_bgsave_mono_ms; /* when auto-heal last asked for a BGSAVE */
    char heal_refusal[256];      /* the server's answer to CONFIG SET */
    int64_t next_replay_mono_ms; /* tick schedule */
    int64_t next_maintain_mono_ms;
};

/* ---- kv:backend ----------------------------------------------------------- */

static void check_backend(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    (void)timeout_ms;
    struct kv_plugin *p = arg;
    struct lucy_kv_stats s;
    lucy_kv_stats(p->kv, &s);
    char where[300];
    lucy_kv_describe(p->kv, where, sizeof where);
    const char *mode = lucy_kv_rate_limit_denies(p->kv) ? "deny" : "allow";
    int64_t age = s.oldest_pending_ms ? lucy_wall_ms() - s.oldest_pending_ms : 0;
    enum lucy_health_status st =
        s.pending > 0 && age > PENDING_WARN_AGE_MS ? LUCY_HEALTH_WARN : LUCY_HEALTH_PASS;
    char pending[160] = "";
    if (s.pending > 0)
        snprintf(pending, sizeof pending,
                 ", the oldest queued %lld ms ago; they are replayed when the backend answers",
                 (long long)age);
    struct lucy_check_item *it = lucy_check_add(
        out, lucy_kv_name(p->kv), st, (double)(s.pending < 0 ? 0 : s.pending), "items",
        "backend %s at %s; rate limiter on backend error: %s (LUCY_RATE_LIMIT_ON_ERROR); "
        "%lld pending write(s)%s",
        lucy_kv_name(p->kv), where, mode, s.pending < 0 ? 0LL : s.pending, pending);
    if (it && st != LUCY_HEALTH_PASS)
        snprintf(it->dependency_text, sizeof it->dependency_text, "warning: %lld kv writes pending",
                 s.pending);
}

/* ---- redis:ping ----------------------------------------------------------- */

static void check_ping(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    struct kv_plugin *p = arg;
    char where[300];
    lucy_kv_describe(p->kv, where, sizeof where);
    struct lucy_kv_error e;
    int64_t start_ms = lucy_mono_ms();
    int rc = lucy_kv_ping(p->kv, 1, timeout_ms, &e);
    double ms = (double)(lucy_mono_ms() - start_ms);
    if (rc == 0) {
        lucy_check_add(out, where, LUCY_HEALTH_PASS, ms, "ms", NULL);
        return;
    }
    struct lucy_check_item *it;
    if (e.kind == LUCY_KV_ERR_MISCONF) {
        it = lucy_check_add(out, where, LUCY_HEALTH_WARN, ms, "ms",
                            "Redis is up but cannot persist, so it refuses writes and PING "
                            "(MISCONF): %.160s. What to do: %s. See redis:persistence",
                            e.message, lucy_kv_err_remedy(e.kind));
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text,
                     "warning: up but cannot persist (MISCONF)");
        return;
    }
    enum lucy_health_status st =
        e.kind == LUCY_KV_ERR_LOADING ? LUCY_HEALTH_WARN : LUCY_HEALTH_FAIL;
    it = lucy_check_add(out, where, st, ms, "ms",
                        "Redis PING failed (%s): %.200s. What to do: %s. Webhooks are still "
                        "accepted; shared state waits in the local store",
                        lucy_kv_err_kind_name(e.kind), e.message, lucy_kv_err_remedy(e.kind));
    if (it)
        snprintf(it->dependency_text, sizeof it->dependency_text, "%s: redis %s",
                 st == LUCY_HEALTH_FAIL ? "error" : "warning", lucy_kv_err_kind_name(e.kind));
}

/* ---- redis:persistence and auto-heal -------------------------------------- */

static void heal(struct kv_plugin *p, const struct lucy_kv_persistence *ps, int timeout_ms)
{
    struct lucy_kv_error e;
    int state = atomic_load(&p->heal);
    if (state != HEAL_ACTIVE && ps->misconf && !ps->rdb_last_bgsave_ok) {
        if (lucy_kv_config_set(p->kv, "stop-writes-on-bgsave-error", "no", timeout_ms, &e) == 0) {
            atomic_store(&p->heal, HEAL_ACTIVE);
            p->healed_at_ms = lucy_wall_ms();
            p->last_bgsave_mono_ms = lucy_mono_ms();
            lucy_log(LUCY_LOG_WARNING, "redis auto-heal: writes re-enabled", "{s:s,s:s,s:s}",
                     "action", "CONFIG SET stop-writes-on-bgsave-error no", "reason",
                     ps->misconf_message, "next",
                     "lucy restores yes after the next successful BGSAVE; free disk space in "
                     "Redis's dir");
        } else if (state != HEAL_REFUSED) {
            atomic_store(&p->heal, HEAL_REFUSED);
            snprintf(p->heal_refusal, sizeof p->heal_refusal, "%s", e.message);
            lucy_log(
                LUCY_LOG_WARNING, "redis auto-heal refused by the server", "{s:s,s:s}", "error",
                e.message, "remedy",
                "CONFIG is renamed or forbidden by ACL: fix Redis by hand (docs/operations.md)");
        }
        return;
    }
    if (state == HEAL_ACTIVE) {
        if (ps->rdb_last_bgsave_ok && !ps->rdb_bgsave_in_progress) {
            if (lucy_kv_config_set(p->kv, "stop-writes-on-bgsave-error", "yes", timeout_ms, &e) ==
                0) {
                atomic_store(&p->heal, HEAL_IDLE);
                lucy_log(LUCY_LOG_WARNING, "redis auto-heal: setting restored", "{s:s}", "action",
                         "CONFIG SET stop-writes-on-bgsave-error yes");
            }
        } else if (!ps->rdb_bgsave_in_progress &&
                   lucy_mono_ms() - p->last_bgsave_mono_ms >= BGSAVE_EVERY_MS) {
            p->last_bgsave_mono_ms = lucy_mono_ms();
            lucy_kv_bgsave(p->kv, timeout_ms, &e); /* fails again while the disk is full */
        }
        return;
    }
    if (state == HEAL_REFUSED && !ps->misconf && ps->rdb_last_bgsave_ok)
        atomic_store(&p->heal, HEAL_IDLE);
}

static void check_persistence(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    struct kv_plugin *p = arg;
    char where[300];
    lucy_kv_describe(p->kv, where, sizeof where);
    struct lucy_kv_persistence ps;
    struct lucy_kv_error e;
    int rc = lucy_kv_persistence(p->kv, &ps, timeout_ms, &e);
    if (rc) {
        struct lucy_check_item *it =
            lucy_check_add(out, where, LUCY_HEALTH_FAIL, 0, "changes",
                           "cannot read INFO persistence (%s): %.200s. What to do: %s",
                           lucy_kv_err_kind_name(e.kind), e.message, lucy_kv_err_remedy(e.kind));
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text, "error: redis %s",
                     lucy_kv_err_kind_name(e.kind));
        return;
    }
    if (p->autoheal)
        heal(p, &ps, timeout_ms);
    /* heal may have changed the server: a MISCONF it just lifted is gone */
    int state = atomic_load(&p->heal);
    int misconf = ps.misconf && state != HEAL_ACTIVE;
    double changes = (double)ps.rdb_changes_since_last_save;
    struct lucy_check_item *it;
    if (misconf) {
        it = lucy_check_add(out, where, LUCY_HEALTH_FAIL, changes, "changes",
                            "Redis is up but cannot persist and refuses writes (MISCONF; "
                            "rdb_last_bgsave_status:%s, aof_last_write_status:%s, %lld changes "
                            "not saved): %s",
                            ps.rdb_last_bgsave_ok ? "ok" : "err",
                            ps.aof_last_write_ok ? "ok" : "err", ps.rdb_changes_since_last_save,
                            lucy_kv_err_remedy(LUCY_KV_ERR_MISCONF));
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text,
                     "error: redis cannot persist (MISCONF)");
    } else if (ps.aof_enabled && !ps.aof_last_write_ok) {
        it = lucy_check_add(out, where, LUCY_HEALTH_FAIL, changes, "changes",
                            "Redis cannot write its append-only file (aof_last_write_status:err): "
                            "free disk space in Redis's dir; Redis resumes by itself once a "
                            "write succeeds (docs/operations.md, Redis)");
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text,
                     "error: redis AOF write failing");
    } else if (!ps.rdb_last_bgsave_ok) {
        it = lucy_check_add(out, where, LUCY_HEALTH_WARN, changes, "changes",
                            "Redis's last background save failed (rdb_last_bgsave_status:err, "
                            "%lld changes not on disk); writes are still accepted because "
                            "stop-writes-on-bgsave-error is %s. Free disk space in Redis's dir, "
                            "then `BGSAVE` (docs/operations.md, Redis)",
                            ps.rdb_changes_since_last_save,
                            ps.stop_writes_on_bgsave_error == 0   ? "no"
                            : ps.stop_writes_on_bgsave_error == 1 ? "yes (no save points)"
                                                                  : "unknown");
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text,
                     "warning: redis last save failed");
    } else if (ps.loading) {
        lucy_check_add(out, where, LUCY_HEALTH_WARN, changes, "changes", "%s",
                       lucy_kv_err_remedy(LUCY_KV_ERR_LOADING));
    } else {
        lucy_check_add(out, where, LUCY_HEALTH_PASS, changes, "changes", NULL);
    }

    if (state == HEAL_ACTIVE) {
        it = lucy_check_add(out, "autoheal", LUCY_HEALTH_WARN, 1, "",
                            "auto-heal is holding Redis's writes open: lucy set "
                            "stop-writes-on-bgsave-error no %lld s ago because a background save "
                            "failed, and restores yes after the next successful BGSAVE. Free "
                            "disk space in Redis's dir now: until then snapshots fail and a "
                            "Redis restart loses the unsaved changes",
                            (long long)((lucy_wall_ms() - p->healed_at_ms) / 1000));
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text,
                     "warning: redis auto-heal active (stop-writes-on-bgsave-error no)");
    } else if (state == HEAL_REFUSED) {
        it = lucy_check_add(out, "autoheal", LUCY_HEALTH_WARN, 0, "",
                            "auto-heal could not change stop-writes-on-bgsave-error: the server "
                            "said \"%.150s\" (CONFIG is renamed or forbidden by ACL). Fix Redis "
                            "by hand: free disk space in its dir, then BGSAVE "
                            "(docs/operations.md, Redis)",
                            p->heal_refusal);
    } else if (p->autoheal) {
        lucy_check_add(out, "autoheal", LUCY_HEALTH_PASS, 0, "",
                       "auto-heal on (LUCY_REDIS_AUTOHEAL=1): nothing to do");
    }
}

/* ---- redis:memory --------------------------------------------------------- */

static void check_memory(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    struct kv_plugin *p = arg;
    char where[300];
    lucy_kv_describe(p->kv, where, sizeof where);
    struct lucy_kv_persistence ps;
    struct lucy_kv_error e;
    if (lucy_kv_persistence(p->kv, &ps, timeout_ms, &e) != 0) {
        struct lucy_check_item *it =
            lucy_check_add(out, where, LUCY_HEALTH_FAIL, 0, "%",
                           "cannot read INFO memory (%s): %.200s. What to do: %s",
                           lucy_kv_err_kind_name(e.kind), e.message, lucy_kv_err_remedy(e.kind));
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text, "error: redis %s",
                     lucy_kv_err_kind_name(e.kind));
        return;
    }
    double pct;
    enum lucy_kv_memory level = lucy_kv_memory_level(&ps, &pct);
    const char *policy = ps.maxmemory_policy[0] ? ps.maxmemory_policy : "unknown";
    char limit[96] = "no maxmemory";
    if (ps.maxmemory_bytes > 0)
        snprintf(limit, sizeof limit, "%lld of maxmemory %lld bytes used (%.0f%%)",
                 ps.used_memory_bytes, ps.maxmemory_bytes, pct);
    struct lucy_check_item *it;
    if (level == LUCY_KV_MEMORY_FULL) {
        /* what else follows is in docs/operations.md (Redis): output
         * holds 511 bytes, and the remedy comes first */
        struct lucy_kv_stats s;
        lucy_kv_stats(p->kv, &s);
        it = lucy_check_add(out, where, LUCY_HEALTH_FAIL, pct, "%",
                            "Redis refuses writes (OOM): %s, policy %s. %lld kv write(s) wait "
                            "locally for replay; rate limits follow LUCY_RATE_LIMIT_ON_ERROR=%s. "
                            "What to do: %s",
                            limit, policy, s.pending < 0 ? 0LL : s.pending,
                            lucy_kv_rate_limit_denies(p->kv) ? "deny" : "allow",
                            lucy_kv_err_remedy(LUCY_KV_ERR_OOM));
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text,
                     "error: redis out of memory (OOM), writes refused");
    } else if (level == LUCY_KV_MEMORY_NEAR) {
        it = lucy_check_add(out, where, LUCY_HEALTH_WARN, pct, "%",
                            "Redis is close to refusing writes: %s and maxmemory-policy %s may "
                            "find nothing to evict. What to do: %s",
                            limit, policy, lucy_kv_err_remedy(LUCY_KV_ERR_OOM));
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text,
                     "warning: redis close to maxmemory");
    } else {
        lucy_check_add(out, where, LUCY_HEALTH_PASS, pct, "%", "%s, policy %s", limit, policy);
    }
}

/* ---- tick ----------------------------------------------------------------- */

static void tick(void *arg)
{
    struct kv_plugin *p = arg;
    int64_t now = lucy_mono_ms();
    if (now >= p->next_replay_mono_ms) {
        p->next_replay_mono_ms = now + REPLAY_EVERY_MS;
        lucy_kv_replay(p->kv, 0, p->timeout_ms, NULL);
    }
    if (now >= p->next_maintain_mono_ms) {
        p->next_maintain_mono_ms = now + MAINTAIN_EVERY_MS;
        lucy_kv_maintain(p->kv, p->timeout_ms, NULL);
    }
}

/* ---- metrics -------------------------------------------------------------- */

static const char *const op_names[LUCY_KV_OP_COUNT] = {
    "get", "set", "set_if_absent", "del", "ratelimit", "ping", "replay",
};

static void metrics(void *arg, FILE *out)
{
    struct kv_plugin *p = arg;
    struct lucy_kv_stats s;
    lucy_kv_stats(p->kv, &s);
    const char *b = lucy_kv_name(p->kv);
    fputs("# HELP lucy_kv_calls_total Key-value backend calls by operation\n"
          "# TYPE lucy_kv_calls_total counter\n",
          out);
    for (int i = 0; i < LUCY_KV_OP_COUNT; i++)
        fprintf(out, "lucy_kv_calls_total{backend=\"%s\",op=\"%s\"} %llu\n", b, op_names[i],
                s.calls[i]);
    fputs("# HELP lucy_kv_errors_total Failed key-value calls by error kind\n"
          "# TYPE lucy_kv_errors_total counter\n",
          out);
    for (int k = 1; k < LUCY_KV_ERR_COUNT; k++)
        fprintf(out, "lucy_kv_errors_total{backend=\"%s\",kind=\"%s\"} %llu\n", b,
                lucy_kv_err_kind_name((enum lucy_kv_err_kind)k), s.errors[k]);
    fprintf(out,
            "# HELP lucy_kv_up 1 when the last key-value call reached the backend\n"
            "# TYPE lucy_kv_up gauge\nlucy_kv_up{backend=\"%s\"} %d\n"
            "# HELP lucy_kv_pending_writes Writes waiting in the local store for the backend\n"
            "# TYPE lucy_kv_pending_writes gauge\nlucy_kv_pending_writes %lld\n"
            "# HELP lucy_kv_replayed_total Pending writes that reached the backend later\n"
            "# TYPE lucy_kv_replayed_total counter\nlucy_kv_replayed_total %llu\n"
            "# HELP lucy_kv_rate_limit_policy_total Rate-limit decisions taken by "
            "LUCY_RATE_LIMIT_ON_ERROR because the backend failed\n"
            "# TYPE lucy_kv_rate_limit_policy_total counter\n"
            "lucy_kv_rate_limit_policy_total{mode=\"%s\"} %llu\n",
            b, s.up, s.pending < 0 ? 0LL : s.pending, s.replayed,
            lucy_kv_rate_limit_denies(p->kv) ? "deny" : "allow", s.rate_limit_policy_decisions);
    if (lucy_kv_caps(p->kv) & LUCY_KV_CAP_ADMIN)
        fprintf(out,
                "# HELP lucy_redis_up 1 when the last Redis call got an answer\n"
                "# TYPE lucy_redis_up gauge\nlucy_redis_up %d\n"
                "# HELP lucy_redis_autoheal_active 1 while auto-heal holds "
                "stop-writes-on-bgsave-error at no\n"
                "# TYPE lucy_redis_autoheal_active gauge\nlucy_redis_autoheal_active %d\n",
                s.up, atomic_load(&p->heal) == HEAL_ACTIVE);
}

/* ---- plugin --------------------------------------------------------------- */

static int init(struct lucy_ctx *ctx, void **state)
{
    struct kv_plugin *p = calloc(1, sizeof *p);
    if (!p)
        return LUCY_ENOMEM;
    struct lucy_kv_error e;
    int rc = lucy_kv_open_config(ctx->cfg, ctx->store, 0, &p->kv, &e);
    if (rc) {
        lucy_log(LUCY_LOG_ERROR, "kv backend not opened", "{s:s}", "error", e.message);
        free(p);
        return rc;
    }
    ctx->kv = p->kv;
    p->ctx = ctx;
    p->timeout_ms = ctx->cfg->redis_timeout_ms > 0 ? ctx->cfg->redis_timeout_ms : 500;
    p->autoheal = ctx->cfg->redis_autoheal;
    *state = p;
    int admin = (lucy_kv_caps(p->kv) & LUCY_KV_CAP_ADMIN) != 0;
    const struct lucy_check checks[] = {
        {"kv:backend", "component", "kv", 0, 2000, 1000, check_backend, p},
        {"redis:ping", "datastore", "redis", 0, 1000, p->timeout_ms, check_ping, p},
        {"redis:persistence", "datastore", "redis", 0, 2000, p->timeout_ms, check_persistence, p},
        {"redis:memory", "datastore", "redis", 0, 2000, p->timeout_ms, check_memory, p},
    };
    size_t n_checks = admin ? sizeof checks / sizeof checks[0] : 1u;
    for (size_t i = 0; i < n_checks; i++)
        if (lucy_health_register(ctx->health, &checks[i]))
            return LUCY_ENOMEM;
    lucy_health_on_tick(ctx->health, tick, p);
    if (lucy_metrics_add(ctx, metrics, p))
        return LUCY_ENOMEM;
    char where[300];
    lucy_kv_describe(p->kv, where, sizeof where);
    lucy_log(LUCY_LOG_INFO, "kv backend", "{s:s,s:s,s:s,s:b}", "backend", lucy_kv_name(p->kv), "at",
             where, "rate_limit_on_error", lucy_kv_rate_limit_denies(p->kv) ? "deny" : "allow",
             "autoheal", p->autoheal);
    return 0;
}

static void free_(void *state)
{
    struct kv_plugin *p = state;
    if (!p)
        return;
    p->ctx->kv = NULL;
    lucy_kv_close(p->kv);
    free(p);
}

const struct lucy_plugin lucy_kv_plugin = {
    .name = "kv",
    .init = init,
    .start = NULL,
    .stop = NULL,
    .free = free_,
};
