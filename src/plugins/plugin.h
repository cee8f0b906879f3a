/*
 * plugin.h - how a feature plugs into the daemon.
 *
 * A plugin is one const struct of function pointers (NULL = nothing to do).
 * The core calls, in order: init (register routes, health checks, metrics;
 * no threads yet), start (start workers), and at shutdown stop (stop
 * workers, after HTTP has stopped) and free. The core knows plugins only
 * through the table lucy_plugins[] in plugins.c.
 */
#ifndef LUCY_PLUGIN_H
#define LUCY_PLUGIN_H

struct lucy_ctx;

struct lucy_plugin {
    const char *name;                                /* "whatsapp" */
    int (*init)(struct lucy_ctx *ctx, void **state); /* 0 or LUCY_E*; sets *state */
    int (*start)(void *state);                       /* 0 or LUCY_E* */
    void (*stop)(void *state);                       /* joins its threads */
    void (*free)(void *state);                       /* releases state */
};

/* NULL-terminated list of every plugin built into this binary. */
extern const struct lucy_plugin *const lucy_plugins[];

#endif
