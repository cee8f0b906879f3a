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

/* Loads the configuration for a command: defaults, environment, --config,
 * then config flags in argv. Flags that are not config flags are handed to
 * own_flag(arg, next, state) which returns how many argv entries it used
 * (1 or 2) or 0 if it does not know the flag; positional arguments go to
 * positional[] (up to max_positional). Prints one line and returns
 * LUCY_EXIT_USAGE on any error, 0 on success; cfg must be freed by the
 * caller with lucy_config_free() in both cases. */
struct lucy_config;
int lucy_cmd_config(struct lucy_config *cfg, int argc, char **argv,
                    int (*own_flag)(const char *arg, const char *next, void *state), void *state,
                    const char **positional, int max_positional, int *n_positional);

/* Prints "lucy: <message>" on stderr. */
void lucy_cmd_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
