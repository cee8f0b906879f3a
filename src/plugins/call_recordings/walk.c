/*
 * walk.c - the directory walk of the scanner (DESIGN §6).
 *
 * Depth-first, one open directory descriptor per level: entries are read
 * with readdir() and looked at with fstatat()/openat() relative to their
 * directory, so names are handled as the bytes the file system returns
 * (never decoded, never re-resolved from a string path) and a directory
 * renamed during the walk cannot redirect it. Per file the walk costs one
 * fstatat() - the same as `find -printf '%s %T@'`.
 *
 * Symlinks: a symlink to a file is followed (its target is the file); a
 * symlink to a directory only when follow_symlinks is set. Every directory
 * entered is remembered by (st_dev, st_ino), so no directory is walked
 * twice - a symlink loop, or a bind mount of a parent, ends there - and
 * nothing deeper than LUCY_SCAN_MAX_DEPTH is entered.
 *
 * Staying inside: a symlink (to a file or a directory) is followed only
 * when what it resolves to lies below one of the configured roots. The
 * test climbs from the resolved directory with openat(fd, "..") and
 * compares each level's (st_dev, st_ino) with the roots' own, so it needs
 * no string resolution of the path and holds across mounts; a symlink to
 * "/" or to a sibling folder is reported through on_outside and skipped.
 *
 * Sync folders (`.dropbox.cache`, `.stfolder`, `@eaDir`, `.Trash*`, ...:
 * lucy_scan_is_sync_folder()) are not entered: on_sync_folder reports
 * them, so a sync client's copies never become recordings or paths.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scan_int.h"

/* Open-addressing set of (st_dev, st_ino) pairs. */
struct dir_set {
    struct {
        dev_t dev;
        ino_t ino;
        int used;
    } * slots;
    size_t cap, n; /* cap is a power of two */
};

static size_t dir_hash(dev_t dev, ino_t ino)
{
    uint64_t h = ((uint64_t)dev * 0x9E3779B97F4A7C15ull) ^ (uint64_t)ino;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (size_t)h;
}

/* Adds (dev, ino). 1 if added, 0 if already there, -1 out of memory. */
static int dir_set_add(struct dir_set *s, dev_t dev, ino_t ino)
{
    if ((s->n + 1) * 2 > s->cap) {
        struct dir_set bigger = {.cap = s->cap ? s->cap * 2 : 64};
        bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
        if (!bigger.slots)
            return -1;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i].used)
                dir_set_add(&bigger, s->slots[i].dev, s->slots[i].ino);
        free(s->slots);
        *s = bigger;
    }
    for (size_t i = dir_hash(dev, ino) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slots[i].used) {
            s->slots[i].dev = dev;
            s->slots[i].ino = ino;
            s->slots[i].used = 1;
            s->n++;
            return 1;
        }
        if (s->slots[i].dev == dev && s->slots[i].ino == ino)
            return 0;
    }
}

struct walker {
    const struct lucy_scan_walk_ops *ops;  /* callbacks */
    void *arg;                             /* their argument */
    int follow_symlinks;                   /* enter directory symlinks */
    char *path;                            /* current path, NUL-terminated */
    size_t len, cap;                       /* its length and allocation */
    struct dir_set seen;                   /* directories entered */
    const struct lucy_scan_root_id *roots; /* where symlinks may lead */
    size_t n_roots;                        /* entries in roots */
    struct lucy_scan_root_id self;         /* this walk's own root */
    uint64_t n_files;                      /* on_file calls */
};

/* Appends "/name" to w->path. 0 or -1 (out of memory). */
static int path_push(struct walker *w, const char *name)
{
    size_t n = strlen(name);
    if (w->len + n + 2 > w->cap) {
        size_t cap = (w->len + n + 2) * 2;
        char *p = realloc(w->path, cap);
        if (!p)
            return -1;
        w->path = p;
        w->cap = cap;
    }
    w->path[w->len] = '/';
    memcpy(w->path + w->len + 1, name, n + 1);
    w->len += n + 1;
    return 0;
}

static void report(struct walker *w, int errnum, int is_dir)
{
    if (w->ops->on_error)
        w->ops->on_error(w->arg, w->path, errnum, is_dir);
}

static int walk_dir(struct walker *w, int fd, int depth);

#define MAX_CLIMB 4096 /* ".." steps before giving up: deeper than any real tree */

static int is_root(const struct walker *w, const struct stat *st)
{
    if (st->st_dev == w->self.dev && st->st_ino == w->self.ino)
        return 1;
    for (size_t i = 0; i < w->n_roots; i++)
        if (st->st_dev == w->roots[i].dev && st->st_ino == w->roots[i].ino)
            return 1;
    return 0;
}

/* 1 when the directory open on dirfd is a configured root or lies below
 * one: climbs ".." until a root or "/" (whose ".." is itself). */
static int inside_roots(const struct walker *w, int dirfd)
{
    int fd = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    int inside = 0;
    for (int up = 0; fd >= 0 && up < MAX_CLIMB; up++) {
        struct stat st, parent;
        if (fstat(fd, &st) != 0)
            break;
        if (is_root(w, &st)) {
            inside = 1;
            break;
        }
        int pfd = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        close(fd);
        fd = pfd;
        if (fd < 0 || fstat(fd, &parent) != 0 ||
            (parent.st_dev == st.st_dev && parent.st_ino == st.st_ino))
            break;
    }
    if (fd >= 0)
        close(fd);
    return inside;
}

/* 1 when the file symlink at w->path resolves to a file inside the roots:
 * its target's directory, found with realpath(), passes inside_roots(). */
static int file_link_inside(const struct walker *w)
{
    char *real = realpath(w->path, NULL);
    if (!real)
        return 0;
    int fd = open(dirname(real), O_PATH | O_DIRECTORY | O_CLOEXEC);
    free(real);
    if (fd < 0)
        return 0;
    int inside = inside_roots(w, fd);
    close(fd);
    return inside;
}

static void report_outside(struct walker *w, int is_dir)
{
    if (w->ops->on_outside)
        w->ops->on_outside(w->arg, w->path, is_dir);
}

/* Enters the directory `name` of parent (a symlink to one if via_link). */
static int enter_dir(struct walker *w, int parent, const char *name, int via_link, int depth)
{
    if (depth > LUCY_SCAN_MAX_DEPTH) {
        report(w, ELOOP, 1);
        return 0;
    }
    int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (via_link ? 0 : O_NOFOLLOW);
    int fd = openat(parent, name, flags);
    if (fd < 0) {
        if (errno != ENOENT) /* vanished since readdir: nothing to report */
            report(w, errno, 1);
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        report(w, errno, 1);
        close(fd);
        return 0;
    }
    if (via_link && !inside_roots(w, fd)) {
        report_outside(w, 1);
        close(fd);
        return 0;
    }
    int added = dir_set_add(&w->seen, st.st_dev, st.st_ino);
    if (added <= 0) { /* already walked (a loop), or out of memory */
        if (added < 0)
            report(w, ENOMEM, 1);
        close(fd);
        return 0;
    }
    if (w->ops->on_dir)
        w->ops->on_dir(w->arg, w->path, depth);
    return walk_dir(w, fd, depth);
}

/* A sync client's cache, a NAS index, a trash can (classify.c): copies
 * and state, never recordings of their own; not entered at all. */
static void skip_sync_folder(struct walker *w)
{
    if (w->ops->on_sync_folder)
        w->ops->on_sync_folder(w->arg, w->path);
}

/* Walks the directory open on fd (taken over: closed here). */
static int walk_dir(struct walker *w, int fd, int depth)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        report(w, errno, 1);
        close(fd);
        if (w->ops->on_dir_done)
            w->ops->on_dir_done(w->arg, -1, w->len ? w->path : "/", depth);
        return 0;
    }
    int rc = 0;
    size_t base = w->len;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno)
                report(w, errno, 1);
            break;
        }
        const char *name = e->d_name;
        if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))
            continue;
        if (path_push(w, name) != 0) {
            report(w, ENOMEM, 1);
            break;
        }
        struct stat st;
        int is_link = 0;
        if (e->d_type == DT_DIR && lucy_scan_is_sync_folder(name)) {
            skip_sync_folder(w);
        } else if (e->d_type == DT_DIR) {
            rc = enter_dir(w, dirfd(d), name, 0, depth + 1);
        } else if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT)
                report(w, errno, 0);
        } else {
            if (S_ISLNK(st.st_mode)) {
                is_link = 1;
                if (fstatat(dirfd(d), name, &st, 0) != 0) { /* dangling, or a loop */
                    report(w, errno, 0);
                    st.st_mode = 0;
                }
            }
            if (S_ISREG(st.st_mode) && is_link && !file_link_inside(w)) {
                report_outside(w, 0);
            } else if (S_ISREG(st.st_mode)) {
                w->n_files++;
                rc = w->ops->on_file(w->arg, dirfd(d), name, w->path, w->len, &st);
            } else if (S_ISDIR(st.st_mode) && lucy_scan_is_sync_folder(name)) {
                skip_sync_folder(w);
            } else if (S_ISDIR(st.st_mode) && (!is_link || w->follow_symlinks)) {
                rc = enter_dir(w, dirfd(d), name, is_link, depth + 1);
            }
            /* Other types (FIFOs, sockets, devices) are not recordings and
             * are never opened: a FIFO would block the scan. */
        }
        w->len = base;
        w->path[base] = '\0';
        if (rc)
            break;
    }
    if (w->ops->on_dir_done)
        w->ops->on_dir_done(w->arg, dirfd(d), w->len ? w->path : "/", depth);
    closedir(d);
    return rc;
}

int lucy_scan_walk(const char *root, int follow_symlinks, const struct lucy_scan_root_id *roots,
                   size_t n_roots, const struct lucy_scan_walk_ops *ops, void *arg,
                   uint64_t *n_files)
{
    struct walker w = {.ops = ops,
                       .arg = arg,
                       .follow_symlinks = follow_symlinks,
                       .roots = roots,
                       .n_roots = n_roots};
    if (n_files)
        *n_files = 0;
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return err;
    }
    w.self = (struct lucy_scan_root_id){st.st_dev, st.st_ino};
    /* The root without trailing slashes ("/" becomes "", so that its
     * entries are "/name"). */
    w.len = strlen(root);
    while (w.len > 0 && root[w.len - 1] == '/')
        w.len--;
    w.cap = w.len + 256;
    w.path = malloc(w.cap);
    if (!w.path || dir_set_add(&w.seen, st.st_dev, st.st_ino) < 0) {
        free(w.path);
        free(w.seen.slots);
        close(fd);
        return ENOMEM;
    }
    memcpy(w.path, root, w.len);
    w.path[w.len] = '\0';
    if (ops->on_dir)
        ops->on_dir(arg, w.len ? w.path : "/", 0);
    int rc = walk_dir(&w, fd, 0);
    if (n_files)
        *n_files = w.n_files;
    free(w.path);
    free(w.seen.slots);
    return rc;
}
