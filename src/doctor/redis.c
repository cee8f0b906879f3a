/*
 * redis.c - doctor's Redis check and the MISCONF fix of DESIGN §10.
 *
 * The check reads, through src/kv/ (the same client as the daemon),
 * lucy_kv_persistence(): INFO persistence, CONFIG GET
 * stop-writes-on-bgsave-error and a PING, which Redis answers with
 * -MISCONF while it refuses writes. The decision, first match wins:
 *
 *   the call fails           critical: unreachable / credentials (warn: loading)
 *   MISCONF, AOF failing     critical, AOF remedy (CONFIG SET does not help)
 *   MISCONF                  critical; fixable when the last BGSAVE failed
 *   AOF write failing        critical
 *   doctor lifted the stop   warn; fixable (BGSAVE, then restore yes)
 *   last BGSAVE failed       warn (stop-writes no by someone else, or no
 *                            save points: writes still accepted)
 *   loading                  warn
 *   otherwise                ok
 * and, on top, by lucy_kv_memory_level() (the same rule as the daemon's
 * redis:memory check): critical while Redis refuses writes with -OOM (the
 * write probe of lucy_kv_persistence), warn when used memory is at
 * LUCY_KV_MEMORY_WARN_PCT of maxmemory while the policy cannot evict
 * every key (noeviction, volatile-*): the next write may get -OOM.
 *
 * The fix is the kv plugin's auto-heal (src/kv/plugin.c) done once from
 * the command line with the same kv calls: CONFIG SET
 * stop-writes-on-bgsave-error no; then BGSAVE and, after it succeeds,
 * CONFIG SET ... yes. Doctor is not a daemon, so it remembers that IT
 * lifted the stop in Redis itself, in the key DOCTOR_MARK_KEY (under the
 * kv prefix, expiring after a week): a later `lucy doctor --fix` restores
 * yes only when that key says doctor changed it, never an operator's own
 * choice of "no", and the mark is visible to a doctor run from any host.
 * One run tries the whole cycle: when space is already back the BGSAVE
 * succeeds and yes is restored at once; when not, writes stay enabled and
 * the report says to free space and run the fix again.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../config.h"
#include "../kv/kv.h"
#include "doctor.h"

#define DOCTOR_MARK_KEY    "doctor:stop_writes_lifted"
#define DOCTOR_MARK_TTL_MS (7LL * 24 * 3600 * 1000)
#define BGSAVE_WAIT_MS     15000 /* how long the fix waits for a BGSAVE */
#define BGSAVE_POLL_MS     100

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The mark's value when doctor lifted the stop ("" when not). */
static void read_mark(struct lucy_doctor *d, char *buf, size_t len)
{
    char *v = NULL;
    size_t n = 0;
    buf[0] = '\0';
    if (lucy_kv_get(d->kv, DOCTOR_MARK_KEY, &v, &n, d->timeout_ms, NULL) == 0)
        snprintf(buf, len, "%.*s", (int)n, v);
    free(v);
}

/* A failed call: the remedy by the kind of trouble. */
static enum lucy_doctor_remedy remedy_of(enum lucy_kv_err_kind kind, enum lucy_doctor_status *st)
{
    static const struct {
        enum lucy_kv_err_kind kind;
        enum lucy_doctor_status status;
        enum lucy_doctor_remedy remedy;
    } rows[] = {
        {LUCY_KV_ERR_NOAUTH, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_REDIS_AUTH},
        {LUCY_KV_ERR_WRONGPASS, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_REDIS_AUTH},
        {LUCY_KV_ERR_NOPERM, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_REDIS_AUTH},
        {LUCY_KV_ERR_LOADING, LUCY_DOCTOR_WARN, LUCY_REMEDY_REDIS_LOADING},
        {LUCY_KV_ERR_MISCONF, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_REDIS_MISCONF},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].kind == kind) {
            *st = rows[i].status;
            return rows[i].remedy;
        }
    *st = LUCY_DOCTOR_CRITICAL;
    return LUCY_REMEDY_REDIS_UNREACHABLE;
}

static const char *ok_err(int ok)
{
    return ok ? "ok" : "err";
}

/* used_memory vs maxmemory (INFO memory). */
static void check_memory(const struct lucy_kv_persistence *p, struct lucy_doctor_result *r)
{
    json_object_set_new(r->details, "used_memory",
                        p->used_memory_bytes >= 0
                            ? lucy_doctor_size_json((uint64_t)p->used_memory_bytes)
                            : json_null());
    json_object_set_new(r->details, "maxmemory",
                        p->maxmemory_bytes >= 0
                            ? lucy_doctor_size_json((uint64_t)p->maxmemory_bytes)
                            : json_null());
    json_object_set_new(r->details, "maxmemory_policy", json_string(p->maxmemory_policy));
    json_object_set_new(r->details, "oom", json_boolean(p->oom));
    json_object_set_new(r->details, "oom_message",
                        p->oom ? json_string(p->oom_message) : json_null());
    double pct;
    enum lucy_kv_memory level = lucy_kv_memory_level(p, &pct);
    if (p->used_memory_bytes >= 0) {
        char used[32], max[32] = "no limit";
        lucy_doctor_human((uint64_t)p->used_memory_bytes, used, sizeof used);
        if (p->maxmemory_bytes > 0)
            lucy_doctor_human((uint64_t)p->maxmemory_bytes, max, sizeof max);
        lucy_doctor_say(r, "memory %s of maxmemory %s (%.0f%%), maxmemory-policy %s", used, max,
                        pct, p->maxmemory_policy[0] ? p->maxmemory_policy : "unknown");
    }
    if (level == LUCY_KV_MEMORY_FULL) {
        lucy_doctor_say(r, "Redis refuses writes for memory: %.250s", p->oom_message);
        lucy_doctor_raise(r, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_REDIS_MEMORY);
    } else if (level == LUCY_KV_MEMORY_NEAR) {
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_REDIS_MEMORY);
    }
}

void lucy_doctor_check_redis(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    if (!d->kv) {
        json_object_set_new(r->details, "configured", json_false());
        lucy_doctor_say(r, "not configured (REDIS_URL unset): the local store holds kv data");
        return;
    }
    char where[300];
    lucy_kv_describe(d->kv, where, sizeof where);
    json_object_set_new(r->details, "configured", json_true());
    json_object_set_new(r->details, "at", json_string(where));

    struct lucy_kv_persistence p;
    struct lucy_kv_error e;
    memset(&p, 0, sizeof p);
    int rc = lucy_kv_persistence(d->kv, &p, d->timeout_ms, &e);
    json_object_set_new(r->details, "reachable", json_boolean(rc == 0));
    if (rc) {
        enum lucy_doctor_status st;
        enum lucy_doctor_remedy rem = remedy_of(e.kind, &st);
        json_object_set_new(
            r->details, "error",
            json_pack("{s:s,s:s}", "kind", lucy_kv_err_kind_name(e.kind), "message", e.message));
        lucy_doctor_say(r, "Redis at %s does not answer INFO (%s): %.250s", where,
                        lucy_kv_err_kind_name(e.kind), e.message);
        lucy_doctor_raise(r, st, rem);
        return;
    }
    char mark[256];
    read_mark(d, mark, sizeof mark);
    const char *swbe = p.stop_writes_on_bgsave_error == 1   ? "yes"
                       : p.stop_writes_on_bgsave_error == 0 ? "no"
                                                            : "unknown";
    json_object_set_new(r->details, "misconf", json_boolean(p.misconf));
    json_object_set_new(r->details, "misconf_message",
                        p.misconf ? json_string(p.misconf_message) : json_null());
    json_object_set_new(r->details, "rdb_last_bgsave_status",
                        json_string(ok_err(p.rdb_last_bgsave_ok)));
    json_object_set_new(r->details, "rdb_bgsave_in_progress",
                        json_boolean(p.rdb_bgsave_in_progress));
    json_object_set_new(r->details, "rdb_changes_since_last_save",
                        json_integer(p.rdb_changes_since_last_save));
    json_object_set_new(r->details, "aof_enabled", json_boolean(p.aof_enabled));
    json_object_set_new(r->details, "aof_last_write_status",
                        json_string(ok_err(p.aof_last_write_ok)));
    json_object_set_new(r->details, "loading", json_boolean(p.loading));
    json_object_set_new(r->details, "stop_writes_on_bgsave_error", json_string(swbe));
    if (p.config_error[0])
        json_object_set_new(r->details, "config_error", json_string(p.config_error));
    json_object_set_new(r->details, "lifted_by_doctor", mark[0] ? json_string(mark) : json_null());

    lucy_doctor_say(r,
                    "Redis at %s: %s; rdb_last_bgsave_status:%s, aof_last_write_status:%s, "
                    "%lld changes not saved, stop-writes-on-bgsave-error %s",
                    where,
                    p.misconf ? "refuses writes (MISCONF)"
                    : p.oom   ? "refuses writes (OOM)"
                              : "accepts writes",
                    ok_err(p.rdb_last_bgsave_ok), ok_err(p.aof_last_write_ok),
                    p.rdb_changes_since_last_save, swbe);
    int aof_failing = p.aof_enabled && !p.aof_last_write_ok;
    if (p.misconf) {
        lucy_doctor_say(r, "%.250s", p.misconf_message);
        if (aof_failing) {
            lucy_doctor_raise(r, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_REDIS_AOF);
        } else {
            lucy_doctor_raise(r, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_REDIS_MISCONF);
            r->fixable = !p.rdb_last_bgsave_ok;
        }
    } else if (aof_failing) {
        lucy_doctor_raise(r, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_REDIS_AOF);
    } else if (mark[0] && p.stop_writes_on_bgsave_error == 0) {
        lucy_doctor_say(r, "lucy doctor set stop-writes-on-bgsave-error to no (%.200s)", mark);
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_REDIS_LIFTED);
        r->fixable = 1;
    } else if (!p.rdb_last_bgsave_ok) {
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN,
                          p.stop_writes_on_bgsave_error == 0 ? LUCY_REMEDY_REDIS_STOP_WRITES_NO
                                                             : LUCY_REMEDY_REDIS_BGSAVE_FAILED);
    } else if (p.loading) {
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_REDIS_LOADING);
    }
    check_memory(&p, r);
}

/* ---- the fix ---------------------------------------------------------------- */

/* BGSAVE and wait for it. 1 = a save succeeded, 0 = it failed, -1 = still
 * running or could not be started (why in buf). */
static int bgsave_and_wait(struct lucy_doctor *d, char *why, size_t len)
{
    struct lucy_kv_error e;
    struct lucy_kv_persistence p;
    memset(&p, 0, sizeof p);
    if (lucy_kv_persistence(d->kv, &p, d->timeout_ms, &e) == 0 && !p.rdb_bgsave_in_progress &&
        lucy_kv_bgsave(d->kv, d->timeout_ms, &e) != 0 &&
        !strstr(e.message, "already in progress")) {
        snprintf(why, len, "BGSAVE was refused: %.400s", e.message);
        return -1;
    }
    for (int waited = 0; waited <= BGSAVE_WAIT_MS; waited += BGSAVE_POLL_MS) {
        memset(&p, 0, sizeof p);
        if (lucy_kv_persistence(d->kv, &p, d->timeout_ms, &e) != 0) {
            snprintf(why, len, "INFO persistence failed: %.400s", e.message);
            return -1;
        }
        if (!p.rdb_bgsave_in_progress)
            return p.rdb_last_bgsave_ok;
        sleep_ms(BGSAVE_POLL_MS);
    }
    snprintf(why, len, "BGSAVE still runs after %d s", BGSAVE_WAIT_MS / 1000);
    return -1;
}

/* After a good BGSAVE: yes again, and the mark goes. 0 or the kv code. */
static int restore_yes(struct lucy_doctor *d, char *out, size_t len)
{
    struct lucy_kv_error e;
    int rc = lucy_kv_config_set(d->kv, "stop-writes-on-bgsave-error", "yes", d->timeout_ms, &e);
    if (rc) {
        snprintf(out, len,
                 "BGSAVE succeeded but CONFIG SET stop-writes-on-bgsave-error yes failed: %.400s; "
                 "restore it by hand",
                 e.message);
        return rc;
    }
    lucy_kv_del(d->kv, DOCTOR_MARK_KEY, d->timeout_ms, NULL);
    return 0;
}

void lucy_doctor_fix_redis(struct lucy_doctor *d, const struct lucy_doctor_result *r,
                           struct lucy_doctor_fix *out)
{
    json_t *misconf = json_object_get(r->details, "misconf");
    struct lucy_kv_error e;
    char why[512] = "";
    if (json_is_true(misconf)) {
        /* step 1: writes back now, remembered in Redis for step 2 */
        if (lucy_kv_config_set(d->kv, "stop-writes-on-bgsave-error", "no", d->timeout_ms, &e)) {
            snprintf(out->result, sizeof out->result,
                     "CONFIG SET stop-writes-on-bgsave-error no was refused: %.400s (CONFIG "
                     "renamed or forbidden by an ACL?); fix Redis by hand (docs/operations.md, "
                     "MISCONF by hand)",
                     e.message);
            return;
        }
        out->applied = 1;
        char host[128] = "?", mark[256];
        gethostname(host, sizeof host);
        host[sizeof host - 1] = '\0';
        snprintf(mark, sizeof mark,
                 "{\"by\":\"lucy doctor --fix\",\"host\":\"%.100s\",\"at_s\":%lld}", host,
                 (long long)time(NULL));
        int marked = lucy_kv_set(d->kv, DOCTOR_MARK_KEY, mark, strlen(mark), DOCTOR_MARK_TTL_MS,
                                 d->timeout_ms, &e) == 0;
        int saved = bgsave_and_wait(d, why, sizeof why);
        if (saved == 1 && restore_yes(d, out->result, sizeof out->result) == 0) {
            snprintf(out->result, sizeof out->result,
                     "Redis accepts writes again: BGSAVE succeeded at once, so "
                     "stop-writes-on-bgsave-error is back to yes");
            return;
        }
        if (saved == 1)
            return; /* restore_yes said what failed */
        snprintf(out->result, sizeof out->result,
                 "CONFIG SET stop-writes-on-bgsave-error no: Redis accepts writes again. %s%s "
                 "Free space in Redis's dir, then run `lucy doctor --fix` again to BGSAVE and "
                 "restore yes%s",
                 saved == 0 ? "BGSAVE still fails (no space yet?)." : why, saved == 0 ? "" : ".",
                 marked ? "" : " (the mark could not be stored: restore yes by hand)");
        return;
    }
    /* step 2: doctor lifted the stop earlier; save, then restore */
    int saved = bgsave_and_wait(d, why, sizeof why);
    if (saved == 1) {
        if (restore_yes(d, out->result, sizeof out->result) == 0) {
            out->applied = 1;
            snprintf(out->result, sizeof out->result,
                     "BGSAVE succeeded; stop-writes-on-bgsave-error restored to yes");
        }
        return;
    }
    snprintf(out->result, sizeof out->result,
             "stop-writes-on-bgsave-error stays no: %s; free space in Redis's dir and run "
             "`lucy doctor --fix` again",
             saved == 0 ? "BGSAVE failed again (rdb_last_bgsave_status:err)" : why);
}
