/*
 * retention.h - LUCY_RETENTION_DAYS (DESIGN §15): calls and messages older
 * than N days are forgotten through the same path as a DELETE (the forget
 * registry, forget.h), each logged. Unset or 0: keep forever (no thread).
 *
 * The "retention" thread makes one pass at start and then every
 * RETENTION_PERIOD_MS (retention.c); a pass forgets in batches, one store
 * write each, so the writer is never held long.
 */
#ifndef LUCY_PEOPLE_RETENTION_H
#define LUCY_PEOPLE_RETENTION_H

#include "../thread.h"

struct lucy_ctx;

struct lucy_people_retention {
    struct lucy_ctx *ctx;      /* the daemon (not owned): store, forget registry */
    int days;                  /* LUCY_RETENTION_DAYS; 0 = keep forever */
    struct lucy_thread thread; /* "retention"; started only when days > 0 */
};

/* Fills r from ctx's configuration. 0. Start-up only. */
int lucy_people_retention_init(struct lucy_people_retention *r, struct lucy_ctx *ctx);

/* Starts the thread when days > 0. 0 or LUCY_ENOMEM. */
int lucy_people_retention_start(struct lucy_people_retention *r);

/* Stops and joins the thread (safe when it never started). */
void lucy_people_retention_stop(struct lucy_people_retention *r);

#endif
