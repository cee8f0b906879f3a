/*
 * core.h - registers the core's checks, endpoints and metrics.
 */
#ifndef LUCY_HEALTH_CORE_H
#define LUCY_HEALTH_CORE_H

struct lucy_ctx;

/* Registers disk:free and store:writable, GET /health/live, /health,
 * /health/ready and /metrics, and the core's metrics. ctx->health and
 * ctx->http must exist. Start-up only. 0 or LUCY_ENOMEM. */
int lucy_core_register(struct lucy_ctx *ctx);

#endif
