/*
 * cmd.h - the subcommands of the `lucy` binary (DESIGN §3).
 *
 * Each command is a row in main.c's table: name, function, usage. A command
 * gets argv after its own name and returns the process exit code:
 * 0 success, 1 the operation failed, 2 usage error.
 */
#ifndef LUCY_CMD_H
#define LUCY_CMD_H

#define LUCY_EXIT_OK     0
#define LUCY_EXIT_FAILED 1
#define LUCY_EXIT_USAGE  2

int lucy_cmd_serve(int argc, char **argv);
int lucy_cmd_healthcheck(int argc, char **argv);
int lucy_cmd_version(int argc, char **argv);
int lucy_cmd_scan(int argc, char **argv);         /* scan.c */
int lucy_cmd_transcribe(int argc, char **argv);   /* transcribe.c */
int lucy_cmd_search(int argc, char **argv);       /* search.c */
int lucy_cmd_ask(int argc, char **argv);          /* ask.c */
int lucy_cmd_stats(int argc, char **argv);        /* stats.c */
int lucy_cmd_reindex(int argc, char **argv);      /* reindex.c */
int lucy_cmd_kv(int argc, char **argv);           /* kv.c */
int lucy_cmd_doctor(int argc, char **argv);       /* doctor.c */
int lucy_cmd_backup(int argc, char **argv);       /* backup.c */
int lucy_cmd_restore(int argc, char **argv);      /* backup.c */
int lucy_cmd_export(int argc, char **argv);       /* export.c */
int lucy_cmd_media_worker(int argc, char **argv); /* media_worker.c: serve's, not listed */

/* Loads the configuration for a command: defaults, environment, --config,
 * then config flags in argv. Flags that are not config flags are handed to
 * own_flag(arg, next, state) which returns how many argv entries it used
 * (1 or 2) or 0 if it does not know the flag; "--name=value" is handed on
 * as own_flag("--name", "value"), value pointing into argv (2 = it took the
 * value; 1, a flag without one, is a usage error); positional arguments go to
 * positional[] (up to max_positional). Prints one line and returns
 * LUCY_EXIT_USAGE on any error, 0 on success; cfg must be freed by the
 * caller with lucy_config_free() in both cases. */
struct lucy_config;
int lucy_cmd_config(struct lucy_config *cfg, int argc, char **argv,
                    int (*own_flag)(const char *arg, const char *next, void *state), void *state,
                    const char **positional, int max_positional, int *n_positional);

/* An own_flag function for commands whose only flag is --json: sets
 * *(int *)state to 1 and returns 1 on "--json", else returns 0. */
int lucy_cmd_json_flag(const char *arg, const char *next, void *state);

/* Prints "lucy: <message>" on stderr. */
void lucy_cmd_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A command's failure (err: a LUCY_E* code) with what to do about it
 * (advice, one sentence): "lucy: <message>; <advice>" on stderr and, when
 * as_json (the command's --json), {"error_type", "message", "advice"} on
 * stdout, where a program reads the command's JSON; error_type is the
 * name an HTTP reply gives err ("disk_full", "not_found"). */
void lucy_cmd_fail(int as_json, int err, const char *advice, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Opens DATA_DIR's store and the search index for a command (search.c):
 * local_only = the embedded sqlite index, else the configured backend.
 * Prints one line and returns LUCY_EXIT_FAILED on error (nothing to
 * close), else 0; close with lucy_index_close() then lucy_store_close(). */
struct lucy_store;
struct lucy_index;
int lucy_cmd_open_index(const struct lucy_config *cfg, int local_only, struct lucy_store **store,
                        struct lucy_index **ix);

#endif
