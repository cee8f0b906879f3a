/*
 * report.c - `lucy doctor` output: the JSON document (a stable shape,
 * documented in docs/operations.md) and the text for a person.
 *
 * Text layout: one block per check - status, name, then the summary lines
 * indented under it, and "what to do:" with the remedy when there is one;
 * then the fixes; then one line with the overall result. Colours (ANSI
 * SGR) mark the status words only, and only when the caller says the
 * output is a terminal.
 */
#include <stdio.h>
#include <string.h>

#include "../config.h"
#include "../lucy.h"
#include "doctor.h"

static const char *overall(const struct lucy_doctor_row *rows, int n, int *attention)
{
    *attention = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].result.status != LUCY_DOCTOR_OK)
            (*attention)++;
    return *attention ? "attention" : "ok";
}

json_t *lucy_doctor_report_json(const struct lucy_config *cfg, const struct lucy_doctor_row *rows,
                                int n_rows, const struct lucy_doctor_fix_row *fixes, int n_fixes)
{
    int attention;
    json_t *checks = json_array(), *fx = json_array();
    for (int i = 0; i < n_rows; i++) {
        const struct lucy_doctor_result *r = &rows[i].result;
        const char *rem = lucy_doctor_remedy_text(r->remedy);
        json_array_append_new(checks,
                              json_pack("{s:s,s:s,s:s,s:O,s:s?}", "name", rows[i].name, "status",
                                        lucy_doctor_status_name(r->status), "summary", r->summary,
                                        "details", r->details, "remedy", *rem ? rem : NULL));
    }
    for (int i = 0; i < n_fixes; i++)
        json_array_append_new(fx, json_pack("{s:s,s:b,s:s}", "name", fixes[i].name, "applied",
                                            fixes[i].fix.applied, "result", fixes[i].fix.result));
    return json_pack("{s:s,s:s,s:s,s:o,s:o}", "status", overall(rows, n_rows, &attention),
                     "version", LUCY_VERSION, "data_dir", cfg->data_dir, "checks", checks, "fixes",
                     fx);
}

/* SGR colour per status: green, yellow, red. */
static const char *const colours[] = {"\033[32m", "\033[33m", "\033[1;31m"};
#define RESET "\033[0m"
#define BOLD  "\033[1m"

/* Writes text with every line after the first indented by indent. */
static void indented(FILE *out, const char *text, int indent)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(out, "%.*s\n", (int)n, p);
        if (!nl)
            break;
        p = nl + 1;
        fprintf(out, "%*s", indent, "");
    }
}

#define NAME_WIDTH 12
#define INDENT     (9 + NAME_WIDTH + 1)

void lucy_doctor_report_text(FILE *out, int colour, const struct lucy_config *cfg,
                             const struct lucy_doctor_row *rows, int n_rows,
                             const struct lucy_doctor_fix_row *fixes, int n_fixes)
{
    fprintf(out, "%slucy doctor%s %s, data dir %s\n\n", colour ? BOLD : "", colour ? RESET : "",
            LUCY_VERSION, cfg->data_dir);
    for (int i = 0; i < n_rows; i++) {
        const struct lucy_doctor_result *r = &rows[i].result;
        const char *name = lucy_doctor_status_name(r->status);
        fprintf(out, "%s%-8s%s %-*s ", colour ? colours[r->status] : "", name, colour ? RESET : "",
                NAME_WIDTH, rows[i].name);
        indented(out, r->summary[0] ? r->summary : "-", INDENT);
        const char *rem = lucy_doctor_remedy_text(r->remedy);
        if (*rem)
            fprintf(out, "%*swhat to do: %s\n", INDENT, "", rem);
    }
    if (n_fixes) {
        fprintf(out, "\n%sfixes%s\n", colour ? BOLD : "", colour ? RESET : "");
        for (int i = 0; i < n_fixes; i++)
            fprintf(out, "%s%-8s%s %-*s %s\n", colour ? colours[fixes[i].fix.applied ? 0 : 1] : "",
                    fixes[i].fix.applied ? "applied" : "skipped", colour ? RESET : "", NAME_WIDTH,
                    fixes[i].name, fixes[i].fix.result);
    }
    int attention;
    overall(rows, n_rows, &attention);
    if (attention)
        fprintf(out,
                "\n%s%d of %d checks need attention%s (see \"what to do\"; "
                "docs/operations.md is the runbook)\n",
                colour ? colours[LUCY_DOCTOR_WARN] : "", attention, n_rows, colour ? RESET : "");
    else
        fprintf(out, "\n%sall %d checks ok%s\n", colour ? colours[LUCY_DOCTOR_OK] : "", n_rows,
                colour ? RESET : "");
}
