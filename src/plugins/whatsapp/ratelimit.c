/*
 * ratelimit.c - the per-sender rate limit (LUCY_RATE_LIMIT, DESIGN §4, §8).
 *
 * GCRA, the generic cell rate algorithm (ITU-T I.371; the form used by
 * redis-cell and Stripe): `count` events per `period` are spaced by the
 * emission interval T = period / count; a key keeps one number, its
 * theoretical arrival time (TAT). An event at time t conforms when
 * max(TAT, t) - t <= tau, with tau = T * (count - 1) the burst tolerance
 * (a burst of `count` is allowed), and then TAT becomes max(TAT, t) + T.
 * A non-conforming event leaves TAT alone.
 *
 * Over-limit messages are stored and FLAGGED by the caller, never dropped.
 * The state is one row per key in wa_rate_limit, read and written inside
 * the caller's store write, through a handle that holds the two prepared
 * statements for the length of that write (one parse per batch, not per
 * message). Issue 5 moves it behind the kv interface (Redis for several
 * instances); open/take/close are the only functions that touch the table.
 */
#include <stdlib.h>

#include "../../error.h"
#include "../../store/store.h"
#include "whatsapp.h"

int lucy_wa_gcra(int64_t *tat_ms, int64_t now_ms, int64_t period_ms, int count)
{
    if (count <= 0 || period_ms <= 0)
        return 1;
    int64_t interval_ms = period_ms / count;
    if (interval_ms < 1)
        interval_ms = 1;
    int64_t tolerance_ms = interval_ms * (count - 1);
    int64_t tat = *tat_ms > now_ms ? *tat_ms : now_ms;
    if (tat - now_ms > tolerance_ms)
        return 0;
    *tat_ms = tat + interval_ms;
    return 1;
}

struct lucy_wa_ratelimit {
    sqlite3_stmt *get; /* SELECT tat_ms */
    sqlite3_stmt *put; /* upsert tat_ms */
};

int lucy_wa_ratelimit_open(sqlite3 *db, struct lucy_wa_ratelimit **out)
{
    *out = NULL;
    struct lucy_wa_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return LUCY_ENOMEM;
    int rc = sqlite3_prepare_v2(db, "SELECT tat_ms FROM wa_rate_limit WHERE key = ?1", -1, &rl->get,
                                NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                "INSERT INTO wa_rate_limit (key, tat_ms) VALUES (?1, ?2) "
                                "ON CONFLICT (key) DO UPDATE SET tat_ms = excluded.tat_ms",
                                -1, &rl->put, NULL);
    if (rc != SQLITE_OK) {
        lucy_wa_ratelimit_close(rl);
        return lucy_store_err(rc);
    }
    *out = rl;
    return 0;
}

void lucy_wa_ratelimit_close(struct lucy_wa_ratelimit *rl)
{
    if (!rl)
        return;
    sqlite3_finalize(rl->get);
    sqlite3_finalize(rl->put);
    free(rl);
}

int lucy_wa_ratelimit_take(struct lucy_wa_ratelimit *rl, const char *key, int64_t now_ms, int count,
                           int period_s, int *allowed)
{
    *allowed = 1;
    if (count <= 0 || period_s <= 0)
        return 0;
    int64_t tat_ms = 0;
    sqlite3_bind_text(rl->get, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(rl->get);
    if (rc == SQLITE_ROW)
        tat_ms = sqlite3_column_int64(rl->get, 0);
    sqlite3_reset(rl->get);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return lucy_store_err(rc);
    *allowed = lucy_wa_gcra(&tat_ms, now_ms, (int64_t)period_s * 1000, count);
    if (!*allowed)
        return 0;
    sqlite3_bind_text(rl->put, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(rl->put, 2, tat_ms);
    rc = sqlite3_step(rl->put);
    sqlite3_reset(rl->put);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}
