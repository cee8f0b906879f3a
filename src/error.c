/*
 * error.c - descriptions of LUCY_E* codes and errno classification.
 */
#include <errno.h>

#include "error.h"

static const char *const descriptions[] = {
    [0] = "ok",
    [-LUCY_EINVAL] = "invalid argument",
    [-LUCY_ENOMEM] = "out of memory",
    [-LUCY_EIO] = "I/O error",
    [-LUCY_ENOSPC] = "disk full",
    [-LUCY_EUNAVAIL] = "dependency unavailable",
    [-LUCY_ETIMEDOUT] = "timed out",
    [-LUCY_ENOTFOUND] = "not found",
    [-LUCY_ELOCKED] = "file locked",
    [-LUCY_ECONFLICT] = "conflict",
    [-LUCY_ECORRUPT] = "corrupt content",
    [-LUCY_EDBCORRUPT] = "the local store is damaged",
    [-LUCY_ECRASHED] = "a media process died",
    [-LUCY_EPERM] = "permission denied",
    [-LUCY_ESHUTDOWN] = "shutting down",
};

const char *lucy_strerror(int err)
{
    if (err > 0 || -err >= (int)(sizeof descriptions / sizeof descriptions[0]) ||
        !descriptions[-err])
        return "unknown error";
    return descriptions[-err];
}

int lucy_err_from_errno(int errnum)
{
    switch (errnum) {
    case 0:
        return LUCY_OK;
    case ENOSPC:
    case EDQUOT:
        return LUCY_ENOSPC;
    case EDEADLK:
    case EAGAIN:
    case EBUSY:
    case ETXTBSY:
        return LUCY_ELOCKED;
    case EACCES:
    case EPERM:
        return LUCY_EPERM;
    case ENOENT:
    case ENOTDIR:
        return LUCY_ENOTFOUND;
    case ENOMEM:
        return LUCY_ENOMEM;
    case ETIMEDOUT:
        return LUCY_ETIMEDOUT;
    case EINVAL:
        return LUCY_EINVAL;
    default:
        return LUCY_EIO;
    }
}
