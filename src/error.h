/*
 * error.h - lucy's one result type.
 *
 * Every fallible function returns int: 0 on success or a negative LUCY_E*
 * code below. Codes say *what kind* of failure happened so that callers can
 * choose between retrying, degrading and reporting, and so the HTTP layer can
 * map them onto DESIGN §5 error types without string matching.
 */
#ifndef LUCY_ERROR_H
#define LUCY_ERROR_H

enum lucy_err {
    LUCY_OK = 0,
    LUCY_EINVAL = -1,      /* bad input from a caller or a client */
    LUCY_ENOMEM = -2,      /* allocation failed */
    LUCY_EIO = -3,         /* I/O error, store not writable */
    LUCY_ENOSPC = -4,      /* disk full (or refused by the disk guard) */
    LUCY_EUNAVAIL = -5,    /* a dependency is down or refusing */
    LUCY_ETIMEDOUT = -6,   /* gave up waiting */
    LUCY_ENOTFOUND = -7,   /* no such item */
    LUCY_ELOCKED = -8,     /* file held by another process (sync client) */
    LUCY_ECONFLICT = -9,   /* already exists / constraint */
    LUCY_ECORRUPT = -10,   /* unreadable content */
    LUCY_EPERM = -11,      /* permission denied */
    LUCY_ESHUTDOWN = -12,  /* the component is stopping */
    LUCY_EDBCORRUPT = -13, /* the local store is damaged: a corrupt page, or lost files */
    LUCY_ECRASHED = -14    /* a media process died during the call (a crash in FFmpeg or a
                              recogniser, or killed); lucy itself goes on */
};

/* A short constant English description of a LUCY_E* code ("disk full").
 * Never NULL; unknown codes give "unknown error". Thread-safe. */
const char *lucy_strerror(int err);

/* The LUCY_E* code for an errno value (ENOSPC -> LUCY_ENOSPC, EDEADLK ->
 * LUCY_ELOCKED, ...). Thread-safe. */
int lucy_err_from_errno(int errnum);

#endif
