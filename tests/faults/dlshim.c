/*
 * dlshim.c - LD_PRELOAD fault shim: a system library lucy opens on first
 * use (src/dl.h) is missing or broken.
 *
 *     LUCY_DLSHIM_MISSING=libcurl.so.4,libsystemd.so.0
 *         dlopen() of a file whose name ends with one of these returns
 *         NULL, and the next dlerror() in that thread says the file does
 *         not exist (as the loader does)
 *     LUCY_DLSHIM_NOERROR=1
 *         ... and that dlerror() returns NULL instead
 *
 * Every other call goes to the real functions (dlsym(RTLD_NEXT)).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

static __thread int failed; /* this thread's last dlopen() was refused */

static int listed(const char *file)
{
    const char *list = getenv("LUCY_DLSHIM_MISSING");
    size_t n = file ? strlen(file) : 0;
    for (const char *p = list; n && p && *p;) {
        size_t len = strcspn(p, ",");
        if (len && len <= n && memcmp(file + n - len, p, len) == 0 &&
            (len == n || file[n - len - 1] == '/'))
            return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

void *dlopen(const char *file, int flags)
{
    static void *(*real)(const char *, int);
    if (!real)
        real = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
    if (listed(file)) {
        failed = 1;
        return NULL;
    }
    failed = 0;
    return real(file, flags);
}

char *dlerror(void)
{
    static char *(*real)(void);
    if (!real)
        real = (char *(*)(void))dlsym(RTLD_NEXT, "dlerror");
    if (failed) {
        failed = 0;
        return getenv("LUCY_DLSHIM_NOERROR")
                   ? NULL
                   : (char *)"cannot open shared object file: No such file or directory "
                             "(dlshim)";
    }
    return real();
}
