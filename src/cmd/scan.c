/*
 * scan.c - `lucy scan [DIR...] [--json]`: one scan of the recordings
 * folders, printing the scan summary (DESIGN §3, §6).
 *
 * Uses the data dir from the configuration like `lucy serve` and needs no
 * server: it opens the store itself (SQLite serialises it with a running
 * daemon's writes). Without DIR it scans LUCY_RECORDINGS_DIRS. The scan
 * retries locked files at once, as any explicit scan does.
 *
 * `lucy scan --probe FILE...` only probes files (no store, no hash) and
 * prints one JSON object per file: outcome, metadata, reason. It is the
 * scanner's own probe, for operators and for the metadata benchmark.
 * `lucy scan --ledger [--json]` prints the ingest ledger (DESIGN §16) without
 * scanning: each file seen and not made a recording of, and each failed
 * transcription, with its outcome, reason and what to do; --json prints
 * one JSON object per row, as GET /ledger lists them.
 * `lucy scan --hash FILE...` prints the scanner's SHA-256 of each file in
 * sha256sum(1)'s format (a recording's id), for checks and benchmarks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../clock.h"
#include "../config.h"
#include "../error.h"
#include "../log.h"
#include "../lucy.h"
#include "../plugins/call_recordings/ledger.h"
#include "../plugins/call_recordings/scan_int.h"
#include "../store/store.h"
#include "cmd.h"

#define MAX_ARGS 4096

struct flags {
    int json;   /* --json */
    int probe;  /* --probe */
    int hash;   /* --hash */
    int ledger; /* --ledger */
};

static int own_flag(const char *arg, const char *next, void *state)
{
    struct flags *f = state;
    (void)next;
    if (strcmp(arg, "--json") == 0)
        return f->json = 1;
    if (strcmp(arg, "--probe") == 0)
        return f->probe = 1;
    if (strcmp(arg, "--hash") == 0)
        return f->hash = 1;
    if (strcmp(arg, "--ledger") == 0)
        return f->ledger = 1;
    return 0;
}

static const char *const probe_outcomes[] = {
    [LUCY_SCAN_PROBE_AUDIO] = "recording",
    [LUCY_SCAN_PROBE_UNSUPPORTED] = "unsupported",
    [LUCY_SCAN_PROBE_CORRUPT] = "corrupt",
    [LUCY_SCAN_PROBE_READ_ERROR] = "read_error",
};

/* One probe as JSON: same descriptor discipline as the scanner. */
static json_t *probe_one(const char *path)
{
    char *display = lucy_scan_display_name(path, strlen(path));
    json_t *j = json_pack("{s:s}", "path", display ? display : "");
    free(display);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    int err = 0;
    if (fd < 0 || fstat(fd, &st) != 0)
        err = errno;
    else if (!S_ISREG(st.st_mode))
        err = EISDIR; /* not a regular file: nothing the scanner would read */
    if (err) {
        json_object_set_new(j, "outcome",
                            json_string(lucy_scan_outcome_name(lucy_scan_errno_outcome(err))));
        json_object_set_new(j, "errno", json_string(lucy_scan_errno_name(err)));
        if (fd >= 0)
            close(fd);
        return j;
    }
    struct lucy_scan_probe p;
    enum lucy_scan_probe_result r = lucy_scan_probe_fd(fd, (int64_t)st.st_size, &p);
    close(fd);
    json_object_set_new(j, "outcome", json_string(probe_outcomes[r]));
    if (r == LUCY_SCAN_PROBE_AUDIO) {
        json_object_set_new(j, "format", json_string(p.format));
        json_object_set_new(j, "codec", json_string(p.codec));
        json_object_set_new(j, "duration_s", json_real(p.duration_s));
        json_object_set_new(j, "sample_rate", json_integer(p.sample_rate));
        json_object_set_new(j, "channels", json_integer(p.channels));
        json_object_set_new(j, "bit_rate", json_integer(p.bit_rate));
        json_object_set(j, "tags", p.tags);
        if (p.warning[0])
            json_object_set_new(j, "warning", json_string(p.warning));
    } else if (r == LUCY_SCAN_PROBE_READ_ERROR) {
        json_object_set_new(j, "outcome",
                            json_string(lucy_scan_outcome_name(lucy_scan_errno_outcome(p.errnum))));
        json_object_set_new(j, "errno", json_string(lucy_scan_errno_name(p.errnum)));
    } else {
        json_object_set_new(j, "reason", json_string(p.reason));
    }
    lucy_scan_probe_clear(&p);
    return j;
}

static int probe_files(const char **files, int n)
{
    for (int i = 0; i < n; i++) {
        json_t *j = probe_one(files[i]);
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (text)
            puts(text);
        free(text);
        json_decref(j);
    }
    return fflush(stdout) == 0 ? LUCY_EXIT_OK : LUCY_EXIT_FAILED;
}

/* `--hash`: the scanner's SHA-256 of each file, printed like sha256sum(1). */
static int hash_files(const char **files, int n)
{
    struct lucy_scan_hasher *h = lucy_scan_hasher_new();
    int rc = h ? LUCY_EXIT_OK : LUCY_EXIT_FAILED;
    uint64_t total = 0;
    int64_t t0_ms = lucy_mono_ms();
    for (int i = 0; h && i < n; i++) {
        char hex[65];
        uint64_t bytes;
        int err = 0;
        int fd = open(files[i], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 || lucy_scan_hash_fd(h, fd, hex, &bytes, &err) != 0) {
            lucy_cmd_error("%s: %s", files[i], strerror(fd < 0 ? errno : err));
            rc = LUCY_EXIT_FAILED;
        } else {
            printf("%s  %s\n", hex, files[i]);
            total += bytes;
        }
        if (fd >= 0)
            close(fd);
    }
    lucy_log(LUCY_LOG_DEBUG, "hashed", "{s:i,s:I,s:f}", "files", n, "bytes", (json_int_t)total,
             "duration_ms", (double)(lucy_mono_ms() - t0_ms));
    lucy_scan_hasher_free(h);
    return fflush(stdout) == 0 ? rc : LUCY_EXIT_FAILED;
}

static void print_summary(const struct lucy_scan_summary *sum, int as_json)
{
    json_t *j = lucy_scan_summary_json(sum);
    if (!j)
        return;
    if (as_json) {
        char *text = json_dumps(j, JSON_COMPACT);
        if (text)
            puts(text);
        free(text);
    } else {
        const char *key;
        json_t *v;
        json_object_foreach(j, key, v)
        {
            if (json_is_integer(v)) {
                printf("%-18s %lld\n", key, (long long)json_integer_value(v));
                continue;
            }
            const char *ek;
            json_t *ev;
            printf("%-18s%s\n", key, json_object_size(v) ? "" : " {}");
            json_object_foreach(v, ek, ev)
                printf("  %-16s %lld\n", ek, (long long)json_integer_value(ev));
        }
    }
    json_decref(j);
}

/* `--ledger`: every row of the ledger, a page of LEDGER_PAGE at a time. */
#define LEDGER_PAGE 500
static int print_ledger(struct lucy_store *store, int as_json)
{
    char *cursor = NULL;
    int rc = 0;
    size_t rows = 0;
    do {
        json_t *page = NULL;
        rc = lucy_ledger_list(store, NULL, LEDGER_PAGE, cursor, &page);
        free(cursor);
        cursor = NULL;
        if (rc)
            break;
        size_t i;
        json_t *row;
        json_array_foreach(json_object_get(page, "items"), i, row)
        {
            rows++;
            if (as_json) {
                char *text = json_dumps(row, JSON_COMPACT);
                if (text)
                    puts(text);
                free(text);
                continue;
            }
            const char *reason = json_string_value(json_object_get(row, "reason"));
            printf("%-22s %s\n  reason: %s\n  what to do: %s\n",
                   json_string_value(json_object_get(row, "outcome")),
                   json_string_value(json_object_get(row, "path")), reason ? reason : "-",
                   json_string_value(json_object_get(row, "advice")));
        }
        const char *next = json_string_value(json_object_get(page, "next_cursor"));
        if (next && !(cursor = strdup(next)))
            rc = LUCY_ENOMEM;
        json_decref(page);
    } while (cursor && rc == 0);
    free(cursor);
    if (rc)
        lucy_cmd_error("cannot read the ledger: %s", lucy_strerror(rc));
    else if (!as_json && rows == 0)
        puts("the ledger is empty: every file seen is a recording");
    return rc == 0 && fflush(stdout) == 0 ? LUCY_EXIT_OK : LUCY_EXIT_FAILED;
}

int lucy_cmd_scan(int argc, char **argv)
{
    struct lucy_config cfg;
    struct flags f = {0};
    const char *pos[MAX_ARGS];
    int n_pos = 0;
    int rc = lucy_cmd_config(&cfg, argc, argv, own_flag, &f, pos, MAX_ARGS, &n_pos);
    if (rc) {
        lucy_config_free(&cfg);
        return rc;
    }
    if (f.probe || f.hash) {
        rc = !n_pos ? LUCY_EXIT_USAGE : f.probe ? probe_files(pos, n_pos) : hash_files(pos, n_pos);
        if (!n_pos)
            lucy_cmd_error("--probe and --hash need one or more files");
        lucy_config_free(&cfg);
        return rc;
    }

    if (f.ledger) {
        struct lucy_store *store = NULL;
        char err[512];
        if (lucy_store_open(cfg.data_dir, &store, err, sizeof err) != 0) {
            lucy_cmd_error("%s", err);
            rc = LUCY_EXIT_FAILED;
        } else {
            rc = print_ledger(store, f.json);
            lucy_store_close(store);
        }
        lucy_config_free(&cfg);
        return rc;
    }

    /* The folders: DIR arguments joined by ':', else the configuration. */
    char *dirs = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&dirs, &len);
    for (int i = 0; m && i < n_pos; i++)
        fprintf(m, "%s%s", i ? ":" : "", pos[i]);
    if (m && !n_pos && cfg.recordings_dirs)
        fputs(cfg.recordings_dirs, m);
    if (!m || fclose(m) != 0) {
        lucy_cmd_error("out of memory");
        lucy_config_free(&cfg);
        return LUCY_EXIT_FAILED;
    }
    if (!dirs[0]) {
        lucy_cmd_error("nothing to scan: give a folder (lucy scan DIR) or set "
                       "LUCY_RECORDINGS_DIRS");
        free(dirs);
        lucy_config_free(&cfg);
        return LUCY_EXIT_USAGE;
    }

    struct lucy_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.cfg = &cfg;
    char err[512];
    if (mkdir(cfg.data_dir, 0700) != 0 && errno != EEXIST) {
        lucy_cmd_error("cannot create the data dir %s: %s; set LUCY_DATA_DIR or --data",
                       cfg.data_dir, strerror(errno));
        rc = LUCY_EXIT_FAILED;
    } else if (lucy_store_open(cfg.data_dir, &ctx.store, err, sizeof err) != 0) {
        lucy_cmd_error("%s", err);
        rc = LUCY_EXIT_FAILED;
    } else {
        struct lucy_scan_summary sum;
        int e = lucy_scan_run(&ctx, dirs, &sum);
        print_summary(&sum, f.json);
        lucy_scan_summary_free(&sum);
        if (e) {
            lucy_cmd_error("the scan could not complete: %s; check free space and that %s is "
                           "writable, then scan again",
                           lucy_strerror(e), cfg.data_dir);
            rc = LUCY_EXIT_FAILED;
        }
        lucy_store_close(ctx.store);
    }
    free(dirs);
    lucy_config_free(&cfg);
    return rc;
}
