/*
 * doctor.c - `lucy doctor [--json] [--fix]`: what is wrong, and what to do
 * about it, for a person at a terminal during an incident (DESIGN §10).
 *
 * The checks are the table below, one row each {name, run, fix}; their
 * code is in src/doctor/ (see doctor.h). The command opens what the checks
 * need - the local store only when DATA_DIR/lucy.db exists (never
 * creating one), Redis through src/kv/ when REDIS_URL is set, the Qdrant
 * backend of src/index/ when QDRANT_URL is set - runs every check, and
 * with --fix runs the fix of each check that offered one, then every check
 * again, so the report shows the state after the fixes.
 *
 * Exit: 0 when every check is ok, 1 when any needs attention (warn or
 * critical, also after --fix), 2 usage. Output: text (colours only on a
 * terminal, never with NO_COLOR) or, with --json, one JSON object on
 * stdout whose shape docs/operations.md documents. The daemon's log lines
 * are quiet here unless LUCY_LOG_LEVEL=debug: the report says it all.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../config.h"
#include "../doctor/doctor.h"
#include "../index/index.h"
#include "../kv/kv.h"
#include "../log.h"
#include "../store/store.h"
#include "cmd.h"

/* The checks, in the order a person reads them: the host first, then
 * lucy's own data, then its dependencies, then the recordings. */
static const struct lucy_doctor_check checks[] = {
    {"daemon", lucy_doctor_check_daemon, NULL},
    {"disk", lucy_doctor_check_disk, NULL},
    {"data_dir", lucy_doctor_check_data_dir, NULL},
    {"reserve", lucy_doctor_check_reserve, lucy_doctor_fix_reserve},
    {"temp_copies", lucy_doctor_check_temp, lucy_doctor_fix_temp},
    {"store", lucy_doctor_check_store, NULL},
    {"backup", lucy_doctor_check_backup, NULL},
    {"inbox", lucy_doctor_check_inbox, NULL},
    {"outbox", lucy_doctor_check_outbox, NULL},
    {"jobs", lucy_doctor_check_jobs, NULL},
    {"kv_pending", lucy_doctor_check_kv_pending, NULL},
    {"redis", lucy_doctor_check_redis, lucy_doctor_fix_redis},
    {"qdrant", lucy_doctor_check_qdrant, NULL},
    {"scanner", lucy_doctor_check_scanner, NULL},
    {"locked_files", lucy_doctor_check_locked, NULL},
    {"media", lucy_doctor_check_media, NULL},
};
#define N_CHECKS ((int)(sizeof checks / sizeof checks[0]))

struct doctor_args {
    int json; /* --json */
    int fix;  /* --fix */
};

static int own_flag(const char *arg, const char *next, void *state)
{
    (void)next;
    struct doctor_args *a = state;
    if (strcmp(arg, "--json") == 0)
        a->json = 1;
    else if (strcmp(arg, "--fix") == 0)
        a->fix = 1;
    else
        return 0;
    return 1;
}

/* Opens what the checks read. Failures are not fatal: the checks report
 * them (store_error, index_error; a NULL kv means REDIS_URL is unset or
 * malformed, which config validation already refuses). */
static void open_parts(struct lucy_doctor *d, const struct lucy_config *cfg)
{
    memset(d, 0, sizeof *d);
    d->cfg = cfg;
    d->timeout_ms = cfg->redis_timeout_ms > 1000 ? cfg->redis_timeout_ms : 1000;
    snprintf(d->tmp_dir, sizeof d->tmp_dir, "%.1000s/tmp", cfg->data_dir);
    snprintf(d->db_path, sizeof d->db_path, "%.1000s/lucy.db", cfg->data_dir);
    snprintf(d->pid_path, sizeof d->pid_path, "%.1000s/lucy.pid", cfg->data_dir);
    struct stat st;
    if (stat(d->db_path, &st) == 0 &&
        (d->store_rc =
             lucy_store_open(cfg->data_dir, &d->store, d->store_error, sizeof d->store_error)) != 0)
        d->store = NULL;
    if (cfg->redis_url && *cfg->redis_url) {
        struct lucy_kv_options o = {
            .redis_url = cfg->redis_url,
            .timeout_ms = d->timeout_ms,
            .pool_size = 1,
        };
        struct lucy_kv_error e;
        if (lucy_kv_open(&o, &d->kv, &e) != 0)
            d->kv = NULL;
    }
    if (cfg->qdrant_url && *cfg->qdrant_url && d->store &&
        lucy_index_open(cfg, d->store, &d->ix, d->index_error, sizeof d->index_error) != 0)
        d->ix = NULL;
}

static void close_parts(struct lucy_doctor *d)
{
    lucy_index_close(d->ix);
    lucy_kv_close(d->kv);
    lucy_store_close(d->store);
}

static void run_checks(struct lucy_doctor *d, struct lucy_doctor_row *rows)
{
    for (int i = 0; i < N_CHECKS; i++) {
        memset(&rows[i], 0, sizeof rows[i]);
        rows[i].name = checks[i].name;
        rows[i].result.details = json_object();
        checks[i].run(d, &rows[i].result);
    }
}

static void free_rows(struct lucy_doctor_row *rows)
{
    for (int i = 0; i < N_CHECKS; i++) {
        json_decref(rows[i].result.details);
        rows[i].result.details = NULL;
    }
}

int lucy_cmd_doctor(int argc, char **argv)
{
    struct lucy_config cfg;
    struct doctor_args a = {0, 0};
    int n_pos = 0;
    int rc = lucy_cmd_config(&cfg, argc, argv, own_flag, &a, NULL, 0, &n_pos);
    if (rc) {
        lucy_config_free(&cfg);
        return rc;
    }
    if (!cfg.log_level || strcmp(cfg.log_level, "debug") != 0)
        lucy_log_set_level(LUCY_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2) */

    struct lucy_doctor d;
    open_parts(&d, &cfg);
    static struct lucy_doctor_row rows[N_CHECKS];
    struct lucy_doctor_fix_row fixes[N_CHECKS];
    int n_fixes = 0;
    run_checks(&d, rows);
    if (a.fix) {
        for (int i = 0; i < N_CHECKS; i++) {
            if (!checks[i].fix || !rows[i].result.fixable)
                continue;
            memset(&fixes[n_fixes], 0, sizeof fixes[n_fixes]);
            fixes[n_fixes].name = checks[i].name;
            checks[i].fix(&d, &rows[i].result, &fixes[n_fixes].fix);
            n_fixes++;
        }
        if (n_fixes) { /* report the state the fixes left */
            free_rows(rows);
            run_checks(&d, rows);
        }
    }

    int attention = 0;
    for (int i = 0; i < N_CHECKS; i++)
        attention |= rows[i].result.status != LUCY_DOCTOR_OK;
    if (a.json) {
        json_t *doc = lucy_doctor_report_json(&cfg, rows, N_CHECKS, fixes, n_fixes);
        char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(doc);
    } else {
        const char *term = getenv("TERM");
        int colour =
            isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && !(term && !strcmp(term, "dumb"));
        lucy_doctor_report_text(stdout, colour, &cfg, rows, N_CHECKS, fixes, n_fixes);
    }
    fflush(stdout);
    free_rows(rows);
    close_parts(&d);
    lucy_config_free(&cfg);
    return attention ? LUCY_EXIT_FAILED : LUCY_EXIT_OK;
}
