/*
 * retention.c - the "retention" thread (see retention.h).
 *
 * A pass computes the cut-off once (now - days) and asks every forgetter
 * for at most BATCH items older than it per store write, until a write
 * forgets nothing. Items are logged after their write committed. A store
 * error ends the pass; the next one retries (forgetting is idempotent).
 */
#include "retention.h"

#include <jansson.h>

#include "../clock.h"
#include "../config.h"
#include "../error.h"
#include "../log.h"
#include "../lucy.h"
#include "../store/store.h"
#include "../store/tombstones.h"
#include "forget.h"

#define RETENTION_PERIOD_MS (3600 * 1000) /* between passes */
#define BATCH               100           /* items per forgetter per write */

struct batch {
    const struct lucy_people_forget *f;
    int64_t before_ms;
    json_t *forgotten; /* out */
};

static int batch_write(sqlite3 *db, void *arg)
{
    struct batch *b = arg;
    json_array_clear(b->forgotten); /* a retried write starts over */
    return lucy_people_forget_older(b->f, db, b->before_ms, BATCH, b->forgotten);
}

static void pass(struct lucy_people_retention *r)
{
    struct batch b = {
        .f = r->ctx->forget,
        .before_ms = lucy_wall_ms() - (int64_t)r->days * 86400 * 1000,
        .forgotten = json_array(),
    };
    size_t total = 0;
    while (b.forgotten && !lucy_thread_stopping(&r->thread)) {
        int rc = lucy_store_write(r->ctx->store, batch_write, &b, 0);
        if (rc) {
            lucy_log(LUCY_LOG_WARNING, "retention pass failed; retried next pass", "{s:s}", "error",
                     lucy_strerror(rc));
            break;
        }
        size_t n = json_array_size(b.forgotten);
        lucy_forgotten_log(b.forgotten, LUCY_FORGET_RETENTION);
        total += n;
        if (n == 0)
            break;
    }
    lucy_log(LUCY_LOG_INFO, "retention pass done", "{s:i,s:I}", "days", r->days, "forgotten",
             (json_int_t)total);
    json_decref(b.forgotten);
}

static void run(void *arg)
{
    struct lucy_people_retention *r = arg;
    do
        pass(r);
    while (!lucy_thread_nap(&r->thread, RETENTION_PERIOD_MS));
}

int lucy_people_retention_init(struct lucy_people_retention *r, struct lucy_ctx *ctx)
{
    r->ctx = ctx;
    r->days = ctx->cfg->retention_days;
    r->thread = (struct lucy_thread){.name = "retention", .main = run, .arg = r};
    return 0;
}

int lucy_people_retention_start(struct lucy_people_retention *r)
{
    return r->days > 0 ? lucy_thread_start(&r->thread) : 0;
}

void lucy_people_retention_stop(struct lucy_people_retention *r)
{
    lucy_thread_stop(&r->thread);
}
