/*
 * systemd.c - libsystemd opened only under systemd (see systemd.h).
 */
#include "systemd.h"

#include <stddef.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>

#include "../dl.h"
#include "../log.h"

static const struct lucy_dl_symbol functions[] = {
    {"sd_notify", offsetof(struct lucy_systemd, notify)},
    {"sd_watchdog_enabled", offsetof(struct lucy_systemd, watchdog_enabled)},
};

/* The slots have sd-daemon.h's types (checked at compile time). */
_Static_assert(__builtin_types_compatible_p(__typeof__(&sd_notify),
                                            __typeof__(((struct lucy_systemd *)0)->notify)),
               "lucy_systemd.notify is not sd_notify's type");
_Static_assert(
    __builtin_types_compatible_p(__typeof__(&sd_watchdog_enabled),
                                 __typeof__(((struct lucy_systemd *)0)->watchdog_enabled)),
    "lucy_systemd.watchdog_enabled is not sd_watchdog_enabled's type");

const struct lucy_systemd *lucy_systemd(void)
{
    static struct lucy_systemd table;
    static int tried;
    static const struct lucy_systemd *opened;
    const char *socket = getenv("NOTIFY_SOCKET");
    if (tried || !socket || !*socket)
        return opened;
    tried = 1;
    char why[256];
    if (lucy_dl_open("libsystemd.so.0", functions, sizeof functions / sizeof functions[0], &table,
                     why, sizeof why) == 0)
        opened = &table;
    else
        lucy_log(LUCY_LOG_WARNING,
                 "systemd is not told lucy is ready: install Debian's libsystemd0", "{s:s}",
                 "error", why);
    return opened;
}
