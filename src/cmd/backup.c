/*
 * backup.c - `lucy backup DEST` and `lucy restore SRC` (DESIGN §15): an
 * online, checked copy of the store while `lucy serve` keeps serving, and
 * putting one back while it does not (src/store/backup.h does the work).
 *
 * Neither opens the store through lucy_ctx (no migrations, no marker
 * check): a backup reads the live file through its own read-only
 * connection, and a restore replaces the file. The restore holds the data
 * dir's daemon lock (DATA_DIR/lucy.pid, exclusive, as `lucy serve` does)
 * for its whole run, so it refuses while a daemon runs and no daemon can
 * start in the middle.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "../config.h"
#include "../error.h"
#include "../store/backup.h"
#include "cmd.h"

static void print_result(const char *what, const struct lucy_backup_result *r, int as_json)
{
    if (as_json) {
        json_t *o = json_pack("{s:s,s:s,s:I,s:I}", "status", "ok", "path", r->path, "bytes",
                              (json_int_t)r->bytes, "duration_ms", (json_int_t)r->duration_ms);
        if (r->moved_aside[0])
            json_object_set_new(o, "moved_aside", json_string(r->moved_aside));
        char *text = json_dumps(o, JSON_INDENT(2));
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(o);
        return;
    }
    printf("%s %s (%.1f MiB in %.1f s)\n", what, r->path, (double)r->bytes / (1024.0 * 1024.0),
           (double)r->duration_ms / 1000.0);
    if (r->moved_aside[0])
        printf("the replaced database was moved to %s (and its -wal/-shm beside it)\n",
               r->moved_aside);
}

/* The configuration and the one path argument of backup/restore: 0, or
 * the exit code (usage printed). cfg must be freed either way. */
static int one_path(struct lucy_config *cfg, int argc, char **argv, int *as_json, const char **path,
                    const char *usage)
{
    int n_pos = 0;
    int rc = lucy_cmd_config(cfg, argc, argv, lucy_cmd_json_flag, as_json, path, 1, &n_pos);
    if (rc == 0 && n_pos != 1) {
        lucy_cmd_error("usage: %s", usage);
        rc = LUCY_EXIT_USAGE;
    }
    return rc;
}

int lucy_cmd_backup(int argc, char **argv)
{
    struct lucy_config cfg;
    int as_json = 0;
    const char *pos[1] = {NULL};
    int rc = one_path(&cfg, argc, argv, &as_json, pos,
                      "lucy backup DEST [--json] (DEST: a folder or a file path)");
    if (rc)
        goto out;
    char db[1100], err[1024] = "";
    snprintf(db, sizeof db, "%.1000s/lucy.db", cfg.data_dir);
    struct lucy_backup_margin margin = {.free_pct = cfg.disk_warn_pct, .free_mb = cfg.disk_warn_mb};
    struct lucy_backup_result r;
    if (lucy_backup_run(db, pos[0], &margin, &r, err, sizeof err) != 0) {
        lucy_cmd_error("backup failed: %s", err);
        rc = LUCY_EXIT_FAILED;
        goto out;
    }
    print_result("backup written:", &r, as_json);
out:
    lucy_config_free(&cfg);
    return rc;
}

/* Takes the daemon lock of data_dir: the descriptor, or -1 with the
 * reason printed (a daemon runs: its pid). */
static int take_daemon_lock(const char *data_dir)
{
    char path[1100];
    snprintf(path, sizeof path, "%.1000s/lucy.pid", data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        lucy_cmd_error("cannot open %s: %s; is --data lucy's data dir?", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
        if (pid > 0)
            lucy_cmd_error("lucy serve (pid %ld) is running on data dir %s: stop it first, then "
                           "run lucy restore again",
                           pid, data_dir);
        else
            lucy_cmd_error("a lucy process holds data dir %s: stop it first, then run lucy "
                           "restore again",
                           data_dir);
        close(fd);
        return -1;
    }
    return fd;
}

int lucy_cmd_restore(int argc, char **argv)
{
    struct lucy_config cfg;
    int as_json = 0;
    const char *pos[1] = {NULL};
    int rc = one_path(&cfg, argc, argv, &as_json, pos,
                      "lucy restore SRC [--json] (SRC: a backup file made by lucy backup)");
    if (rc)
        goto out;
    int lock = take_daemon_lock(cfg.data_dir);
    if (lock < 0) {
        rc = LUCY_EXIT_FAILED;
        goto out;
    }
    char db[1100], err[1024] = "";
    snprintf(db, sizeof db, "%.1000s/lucy.db", cfg.data_dir);
    struct lucy_backup_result r;
    if (lucy_backup_restore(pos[0], db, &r, err, sizeof err) != 0) {
        lucy_cmd_error("restore failed: %s", err);
        rc = LUCY_EXIT_FAILED;
    } else {
        print_result("restored from", &r, as_json);
    }
    close(lock);
out:
    lucy_config_free(&cfg);
    return rc;
}
