/*
 * kv.c - `lucy kv ACTION ...`: the key-value backend from the command line,
 * for operators and tests. Uses the same configuration as `lucy serve`
 * (REDIS_URL set -> redis, else the sqlite store in LUCY_DATA_DIR), so two
 * processes with the same REDIS_URL share keys and rate limits.
 *
 *   lucy kv ping                     round trip; typed error and remedy
 *   lucy kv persistence              INFO persistence and memory as lucy
 *                                    reads them, with the OOM write probe (a
 *                                    Redis check; on the embedded sqlite
 *                                    backend it says so and exits 0:
 *                                    {"backend","applies":false,"message"})
 *   lucy kv get KEY                  value; a key that is absent: exit 1,
 *                                    {"key","value":null} on stdout and a
 *                                    "not found" line on stderr
 *   lucy kv set KEY VALUE [--ttl-ms N]
 *   lucy kv setnx KEY VALUE --ttl-ms N    prints stored true|false
 *   lucy kv del KEY
 *   lucy kv ratelimit KEY [--burst N]     one GCRA step at LUCY_RATE_LIMIT
 *   lucy kv replay                   replays pending writes now
 *
 * Output: one JSON object on stdout. Failures: exit 1 with the typed
 * error, its remedy and the server's message on stderr (never the URL's
 * password).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "../config.h"
#include "../error.h"
#include "../kv/kv.h"
#include "../store/store.h"
#include "cmd.h"

struct kv_args {
    long long ttl_ms; /* --ttl-ms */
    int burst;        /* --burst; 0 = the rate's count */
};

static int own_flag(const char *arg, const char *next, void *state)
{
    struct kv_args *a = state;
    long long *target = NULL;
    long long v;
    if (strcmp(arg, "--ttl-ms") == 0)
        target = &a->ttl_ms;
    else if (strcmp(arg, "--burst") != 0)
        return 0;
    char *end;
    if (!next || (v = strtoll(next, &end, 10), *end) || v < 0) {
        lucy_cmd_error("%s needs a non-negative integer", arg);
        return -1;
    }
    if (target)
        *target = v;
    else
        a->burst = (int)v;
    return 2;
}

static void print(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s ? s : "{}");
    free(s);
    json_decref(o);
}

static int fail(const char *action, const struct lucy_kv_error *e)
{
    lucy_cmd_error("kv %s failed (%s): %s. What to do: %s", action, lucy_kv_err_kind_name(e->kind),
                   e->message, lucy_kv_err_remedy(e->kind));
    return LUCY_EXIT_FAILED;
}

/* One row per action: name, positional arguments it needs, handler. */
typedef int (*action_fn)(struct lucy_kv *kv, const struct lucy_config *cfg, const struct kv_args *a,
                         const char **pos);

static int do_ping(struct lucy_kv *kv, const struct lucy_config *cfg, const struct kv_args *a,
                   const char **pos)
{
    (void)cfg, (void)a, (void)pos;
    struct lucy_kv_error e;
    if (lucy_kv_ping(kv, 1, 0, &e))
        return fail("ping", &e);
    char where[300];
    lucy_kv_describe(kv, where, sizeof where);
    print(json_pack("{s:s,s:s,s:s}", "status", "ok", "backend", lucy_kv_name(kv), "at", where));
    return 0;
}

static int do_persistence(struct lucy_kv *kv, const struct lucy_config *cfg,
                          const struct kv_args *a, const char **pos)
{
    (void)cfg, (void)a, (void)pos;
    if (!(lucy_kv_caps(kv) & LUCY_KV_CAP_ADMIN)) {
        /* Not a failure: there is no separate server whose saving can
         * fail. The embedded backend's keys are rows of lucy's own store,
         * durable when their write returns (WAL, synchronous=FULL). */
        print(json_pack("{s:s,s:b,s:s}", "backend", lucy_kv_name(kv), "applies", 0, "message",
                        "embedded SQLite key-value store: persistence is the store's own (WAL, "
                        "fsync per commit); `lucy kv persistence` checks a Redis server (set "
                        "REDIS_URL to check one)"));
        return LUCY_EXIT_OK;
    }
    struct lucy_kv_persistence p;
    struct lucy_kv_error e;
    if (lucy_kv_persistence(kv, &p, 0, &e))
        return fail("persistence", &e);
    json_t *doc =
        json_pack("{s:b,s:b,s:I,s:b,s:b,s:b,s:i,s:b,s:s}", "rdb_last_bgsave_ok",
                  p.rdb_last_bgsave_ok, "rdb_bgsave_in_progress", p.rdb_bgsave_in_progress,
                  "rdb_changes_since_last_save", (json_int_t)p.rdb_changes_since_last_save,
                  "aof_enabled", p.aof_enabled, "aof_last_write_ok", p.aof_last_write_ok, "loading",
                  p.loading, "stop_writes_on_bgsave_error", p.stop_writes_on_bgsave_error,
                  "misconf", p.misconf, "misconf_message", p.misconf_message);
    /* memory: -OOM refuses writes as surely as MISCONF, and PING still answers */
    json_object_update_new(doc, json_pack("{s:I,s:I,s:s,s:b,s:s}", "used_memory_bytes",
                                          (json_int_t)p.used_memory_bytes, "maxmemory_bytes",
                                          (json_int_t)p.maxmemory_bytes, "maxmemory_policy",
                                          p.maxmemory_policy, "oom", p.oom, "oom_message",
                                          p.oom_message));
    print(doc);
    return 0;
}

static int do_get(struct lucy_kv *kv, const struct lucy_config *cfg, const struct kv_args *a,
                  const char **pos)
{
    (void)cfg, (void)a;
    struct lucy_kv_error e;
    char *v = NULL;
    size_t len = 0;
    int rc = lucy_kv_get(kv, pos[0], &v, &len, 0, &e);
    if (rc == LUCY_ENOTFOUND) {
        char where[300];
        lucy_kv_describe(kv, where, sizeof where);
        print(json_pack("{s:s,s:n}", "key", pos[0], "value"));
        lucy_cmd_error(
            "kv get: key %.200s not found on the %s backend (%s); check the key (without "
            "the lucy: prefix lucy adds in Redis) or store it with `lucy kv set`",
            pos[0], lucy_kv_name(kv), where);
        return LUCY_EXIT_FAILED;
    }
    if (rc)
        return fail("get", &e);
    print(json_pack("{s:s,s:s%}", "key", pos[0], "value", v, len));
    free(v);
    return 0;
}

static int do_set(struct lucy_kv *kv, const struct lucy_config *cfg, const struct kv_args *a,
                  const char **pos)
{
    (void)cfg;
    struct lucy_kv_error e;
    if (lucy_kv_set(kv, pos[0], pos[1], strlen(pos[1]), a->ttl_ms, 0, &e))
        return fail("set", &e);
    print(json_pack("{s:s,s:b}", "key", pos[0], "stored", 1));
    return 0;
}

static int do_setnx(struct lucy_kv *kv, const struct lucy_config *cfg, const struct kv_args *a,
                    const char **pos)
{
    (void)cfg;
    struct lucy_kv_error e;
    int stored = 0;
    if (lucy_kv_set_if_absent(kv, pos[0], pos[1], strlen(pos[1]), a->ttl_ms, &stored, 0, &e))
        return fail("setnx", &e);
    print(json_pack("{s:s,s:b}", "key", pos[0], "stored", stored));
    return 0;
}

static int do_del(struct lucy_kv *kv, const struct lucy_config *cfg, const struct kv_args *a,
                  const char **pos)
{
    (void)cfg, (void)a;
    struct lucy_kv_error e;
    if (lucy_kv_del(kv, pos[0], 0, &e))
        return fail("del", &e);
    print(json_pack("{s:s,s:b}", "key", pos[0], "deleted", 1));
    return 0;
}

static int do_ratelimit(struct lucy_kv *kv, const struct lucy_config *cfg, const struct kv_args *a,
                        const char **pos)
{
    struct lucy_kv_rate rate = {cfg->rate_limit_count, (int64_t)cfg->rate_limit_period_s * 1000,
                                a->burst > 0 ? a->burst : cfg->rate_limit_count, 0};
    struct lucy_kv_rate_result r;
    struct lucy_kv_error e;
    int rc = lucy_kv_ratelimit(kv, pos[0], &rate, &r, 0, &e);
    print(json_pack("{s:s,s:b,s:I,s:i,s:b,s:s}", "key", pos[0], "allowed", r.allowed,
                    "retry_after_ms", (json_int_t)r.retry_after_ms, "remaining", r.remaining,
                    "from_policy", r.from_policy, "error",
                    rc ? lucy_kv_err_kind_name(e.kind) : ""));
    return 0;
}

static int do_replay(struct lucy_kv *kv, const struct lucy_config *cfg, const struct kv_args *a,
                     const char **pos)
{
    (void)cfg, (void)a, (void)pos;
    struct lucy_kv_error e;
    int n = lucy_kv_replay(kv, 0, 0, &e);
    if (n < 0)
        return fail("replay", &e);
    struct lucy_kv_stats s;
    lucy_kv_stats(kv, &s);
    print(json_pack("{s:i,s:I}", "replayed", n, "pending", (json_int_t)s.pending));
    return 0;
}

static const struct {
    const char *name; /* ACTION */
    int n_args;       /* positional arguments after it */
    action_fn fn;
} actions[] = {
    {"ping", 0, do_ping},
    {"persistence", 0, do_persistence},
    {"get", 1, do_get},
    {"set", 2, do_set},
    {"setnx", 2, do_setnx},
    {"del", 1, do_del},
    {"ratelimit", 1, do_ratelimit},
    {"replay", 0, do_replay},
};

int lucy_cmd_kv(int argc, char **argv)
{
    struct lucy_config cfg;
    struct kv_args a = {0, 0};
    const char *pos[4] = {0};
    int n_pos = 0;
    int rc = lucy_cmd_config(&cfg, argc, argv, own_flag, &a, pos, 4, &n_pos);
    if (rc) {
        lucy_config_free(&cfg);
        return rc;
    }
    size_t i = 0;
    for (; n_pos > 0 && i < sizeof actions / sizeof actions[0]; i++)
        if (strcmp(pos[0], actions[i].name) == 0)
            break;
    if (n_pos == 0 || i == sizeof actions / sizeof actions[0] || n_pos - 1 != actions[i].n_args) {
        lucy_cmd_error("usage: lucy kv ping|persistence|replay | get KEY | del KEY | "
                       "set KEY VALUE [--ttl-ms N] | setnx KEY VALUE --ttl-ms N | "
                       "ratelimit KEY [--burst N]");
        lucy_config_free(&cfg);
        return LUCY_EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2) */
    struct lucy_store *store = NULL;
    char err[512];
    if (mkdir(cfg.data_dir, 0700) != 0 && errno != EEXIST) {
        lucy_cmd_error("cannot create the data dir %s: %s", cfg.data_dir, strerror(errno));
        lucy_config_free(&cfg);
        return LUCY_EXIT_FAILED;
    }
    if (lucy_store_open(cfg.data_dir, &store, err, sizeof err) != 0) {
        lucy_cmd_error("%s", err);
        lucy_config_free(&cfg);
        return LUCY_EXIT_FAILED;
    }
    struct lucy_kv *kv = NULL;
    struct lucy_kv_error e;
    if (lucy_kv_open_config(&cfg, store, 1, &kv, &e) != 0) {
        rc = fail("open", &e);
    } else {
        rc = actions[i].fn(kv, &cfg, &a, pos + 1);
        lucy_kv_close(kv);
    }
    lucy_store_close(store);
    lucy_config_free(&cfg);
    return rc;
}
