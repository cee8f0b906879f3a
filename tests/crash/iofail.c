/*
 * iofail.c - LD_PRELOAD shim that makes writes and syncs fail with a chosen
 * errno for files under one directory, switchable while the process runs.
 *
 * Why: a tmpfs cannot be remounted read-only while SQLite holds its files
 * open for writing (the kernel answers EBUSY), so "the store became
 * unwritable" is injected here instead, at the same system-call boundary a
 * failing disk would hit. SQLite reaches libc's write/pwrite/fsync through
 * its own library's PLT, so the preloaded symbols win.
 *
 * Environment:
 *   LUCY_IOFAIL_DIR     prefix of the paths to fail (e.g. the data dir)
 *   LUCY_IOFAIL_MARKER  path of a marker file; while it exists, calls fail.
 *                       Its content names the errno: "EIO" (default),
 *                       "EROFS" or "ENOSPC".
 *
 * Intercepted: write, pwrite, pwrite64, writev, fsync, fdatasync,
 * ftruncate, ftruncate64. Everything else passes through.
 */
/* The shim defines both pwrite and pwrite64, so no transparent LFS renames. */
#undef _FILE_OFFSET_BITS
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static const struct {
    const char *name;
    int value;
} errnos[] = {{"EIO", EIO}, {"EROFS", EROFS}, {"ENOSPC", ENOSPC}};

/* Returns the errno to fail fd's call with, or 0 to pass it through. */
static int should_fail(int fd)
{
    const char *dir = getenv("LUCY_IOFAIL_DIR");
    const char *marker = getenv("LUCY_IOFAIL_MARKER");
    if (!dir || !marker || fd < 0)
        return 0;
    int mfd = open(marker, O_RDONLY | O_CLOEXEC);
    if (mfd < 0)
        return 0;
    char name[16] = {0};
    ssize_t n = read(mfd, name, sizeof name - 1);
    close(mfd);
    int err = EIO;
    for (size_t i = 0; n > 0 && i < sizeof errnos / sizeof errnos[0]; i++)
        if (strncmp(name, errnos[i].name, strlen(errnos[i].name)) == 0)
            err = errnos[i].value;

    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, sizeof path - 1);
    if (len <= 0)
        return 0;
    path[len] = '\0';
    return strncmp(path, dir, strlen(dir)) == 0 ? err : 0;
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

#define FAIL_OR(fd, ret)                                                                           \
    do {                                                                                           \
        int e_ = should_fail(fd);                                                                  \
        if (e_) {                                                                                  \
            errno = e_;                                                                            \
            return ret;                                                                            \
        }                                                                                          \
    } while (0)

ssize_t write(int fd, const void *buf, size_t n)
{
    FAIL_OR(fd, -1);
    return NEXT(write)(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    FAIL_OR(fd, -1);
    return NEXT(pwrite)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    FAIL_OR(fd, -1);
    return NEXT(pwrite64)(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    FAIL_OR(fd, -1);
    return NEXT(writev)(fd, iov, cnt);
}

int fsync(int fd)
{
    FAIL_OR(fd, -1);
    return NEXT(fsync)(fd);
}

int fdatasync(int fd)
{
    FAIL_OR(fd, -1);
    return NEXT(fdatasync)(fd);
}

int ftruncate(int fd, off_t len)
{
    FAIL_OR(fd, -1);
    return NEXT(ftruncate)(fd, len);
}

int ftruncate64(int fd, off64_t len)
{
    FAIL_OR(fd, -1);
    return NEXT(ftruncate64)(fd, len);
}
