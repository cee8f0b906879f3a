/*
 * web.h - the web UI (docs/ui.md): static files from web/, embedded into
 * the binary at build time and served by the `web` plugin.
 *
 * scripts/embed-web.py writes the table lucy_web_assets[] (build dir,
 * web_assets.c) from the files listed in src/web/meson.build; plugin.c
 * serves it at GET / (index.html) and GET /ui/{file}.
 */
#ifndef LUCY_WEB_H
#define LUCY_WEB_H

#include <stddef.h>

/* One embedded file. Everything is static, generated data. */
struct lucy_web_asset {
    const char *name;          /* base name in web/, e.g. "app.js" */
    const char *content_type;  /* from the extension, e.g. "text/javascript; charset=utf-8" */
    const unsigned char *data; /* the file's bytes */
    size_t size;               /* their count */
    const char *etag;          /* quoted strong validator: a hash of the bytes */
};

extern const struct lucy_web_asset lucy_web_assets[];
extern const size_t lucy_web_assets_count;

/* The asset called name, or NULL. Pure; thread-safe. */
const struct lucy_web_asset *lucy_web_asset_find(const char *name);

struct lucy_plugin;
extern const struct lucy_plugin lucy_web_plugin;

#endif
