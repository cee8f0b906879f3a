/*
 * systemd.h - systemd's service notifications (sd_notify(3): READY=1,
 * WATCHDOG=1, STOPPING=1) for `lucy serve`.
 *
 * libsystemd is opened only when systemd runs lucy, i.e. when it set
 * NOTIFY_SOCKET; anywhere else (a container, a shell) lucy never maps it
 * and its five libraries (dl.h says why).
 */
#ifndef LUCY_CMD_SYSTEMD_H
#define LUCY_CMD_SYSTEMD_H

#include <stdint.h>

/* libsystemd's functions; each slot is the function in its comment. */
struct lucy_systemd {
    int (*notify)(int unset_environment, const char *state);        /* sd_notify */
    int (*watchdog_enabled)(int unset_environment, uint64_t *usec); /* sd_watchdog_enabled */
};

/* The table when systemd runs lucy (NOTIFY_SOCKET set) and libsystemd.so.0
 * opened; NULL otherwise, when there is no one to notify. A systemd whose
 * lucy cannot open libsystemd gets a warning in the log (a Type=notify
 * unit then times out: install Debian's libsystemd0). Call it from serve's
 * main thread (not thread-safe: opens on the first call). */
const struct lucy_systemd *lucy_systemd(void);

#endif
