/*
 * backups.h - scheduled backups, a plugin of the daemon (backups.c).
 */
#ifndef LUCY_STORE_BACKUPS_H
#define LUCY_STORE_BACKUPS_H

#include <stddef.h>
#include <stdint.h>

#include "../plugins/plugin.h"

/* The newest backup (a file named lucy-*.db) in dir: its mtime in wall ms
 * (0 = none) and its path (len bytes). Reads the folder; any thread. */
int64_t lucy_backups_newest(const char *dir, char *path, size_t len);

/* Runs lucy_backup_run() into LUCY_BACKUP_DIR every LUCY_BACKUP_INTERVAL_H
 * keeping LUCY_BACKUP_KEEP; registers `backup:age`. Inert when
 * LUCY_BACKUP_DIR is unset. */
extern const struct lucy_plugin lucy_backups_plugin;

#endif
