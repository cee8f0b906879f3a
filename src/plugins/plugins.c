/*
 * plugins.c - the plugins built into lucy, in start-up order.
 */
#include <stddef.h>

#include "plugin.h"

const struct lucy_plugin *const lucy_plugins[] = {
    NULL,
};
