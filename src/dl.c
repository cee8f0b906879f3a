/*
 * dl.c - a system library opened on first use (see dl.h).
 *
 * The addresses are collected first and copied into the table only when
 * every symbol was found, so a table is either whole or untouched. A
 * pointer returned by dlsym() is copied into a function pointer's storage
 * with memcpy: POSIX requires the two to have one representation
 * (dlsym(3p), RATIONALE), ISO C does not allow the cast.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl.h"
#include "error.h"

int lucy_dl_open(const char *soname, const struct lucy_dl_symbol *symbols, size_t n, void *table,
                 char *err, size_t errlen)
{
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(err, errlen, "%s", why ? why : soname);
        return LUCY_EUNAVAIL;
    }
    void **found = calloc(n ? n : 1, sizeof *found);
    if (!found) {
        snprintf(err, errlen, "out of memory opening %s", soname);
        return LUCY_EUNAVAIL;
    }
    for (size_t i = 0; i < n; i++)
        if (!(found[i] = dlsym(h, symbols[i].name))) {
            snprintf(err, errlen, "%s has no function %s (too old a version?)", soname,
                     symbols[i].name);
            free(found);
            return LUCY_EUNAVAIL;
        }
    for (size_t i = 0; i < n; i++)
        memcpy((char *)table + symbols[i].offset, &found[i], sizeof found[i]);
    free(found);
    return 0;
}
