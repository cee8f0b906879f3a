/*
 * ctx.c - building the shared context: data dir, temp dir, store, disk
 * guard; and the /metrics contributor list.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/disk.h"
#include "error.h"
#include "log.h"
#include "lucy.h"
#include "store/store.h"

static int make_dir(const char *path, mode_t mode, char *err, size_t errlen)
{
    if (mkdir(path, mode) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create directory %s: %s", path, strerror(errno));
        return lucy_err_from_errno(errno);
    }
    return 0;
}

void lucy_ctx_clean_tmp(struct lucy_ctx *ctx)
{
    const char *dir = ctx->tmp_dir;
    DIR *d = opendir(dir);
    if (!d)
        return;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    if (removed)
        lucy_log(LUCY_LOG_INFO, "removed stale temp copies", "{s:s,s:i}", "dir", dir, "count",
                 removed);
}

int lucy_ctx_open(struct lucy_ctx *ctx, const struct lucy_config *cfg, char *err, size_t errlen)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->cfg = cfg;
    int rc = make_dir(cfg->data_dir, 0700, err, errlen);
    if (rc)
        return rc;
    snprintf(ctx->tmp_dir, sizeof ctx->tmp_dir, "%s/tmp", cfg->data_dir);
    rc = make_dir(ctx->tmp_dir, 0700, err, errlen);
    if (rc)
        return rc;
    chmod(ctx->tmp_dir, 0700);

    struct lucy_disk_thresholds t = {cfg->disk_warn_pct, cfg->disk_warn_mb, cfg->disk_critical_pct,
                                     cfg->disk_critical_mb};
    ctx->disk =
        lucy_disk_new(cfg->data_dir, ctx->tmp_dir, cfg->disk_paths, &t, cfg->disk_reserve_mb);
    if (!ctx->disk) {
        snprintf(err, errlen, "out of memory");
        return LUCY_ENOMEM;
    }
    lucy_disk_poll(ctx->disk);
    return lucy_store_open(cfg->data_dir, &ctx->store, err, errlen);
}

void lucy_ctx_close(struct lucy_ctx *ctx)
{
    lucy_store_close(ctx->store);
    ctx->store = NULL;
    lucy_disk_free(ctx->disk);
    ctx->disk = NULL;
}

int lucy_metrics_add(struct lucy_ctx *ctx, lucy_metrics_fn fn, void *arg)
{
    if (ctx->n_metrics >= LUCY_MAX_METRIC_SOURCES)
        return LUCY_ENOMEM;
    ctx->metrics[ctx->n_metrics].fn = fn;
    ctx->metrics[ctx->n_metrics].arg = arg;
    ctx->n_metrics++;
    return 0;
}

char *lucy_metrics_render(struct lucy_ctx *ctx, size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    if (!out)
        return NULL;
    for (int i = 0; i < ctx->n_metrics; i++)
        ctx->metrics[i].fn(ctx->metrics[i].arg, out);
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}

void lucy_metrics_label(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', out), fputc(*s, out);
        else if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}
