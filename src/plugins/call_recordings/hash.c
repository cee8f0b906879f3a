/*
 * hash.c - streamed SHA-256 of an open file (a recording's id, DESIGN §5/§6).
 *
 * OpenSSL's EVP SHA-256 uses the CPU's SHA extensions where present, about
 * 4x faster than coreutils' sha256sum. The file is read with pread() from
 * offset 0 in READ_BYTES blocks through one reusable buffer; the block is
 * small enough to stay in the L2 cache between the copy out of the page
 * cache and the digest, and large enough that system calls do not matter.
 * posix_fadvise(SEQUENTIAL) asks the kernel for aggressive read-ahead.
 *
 * Only the descriptor the scanner opened is read: the hash, the probe and
 * both fstat() calls see the same inode.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "scan_int.h"

#define READ_BYTES (128 * 1024)

struct lucy_scan_hasher {
    EVP_MD_CTX *md;     /* reused digest context */
    unsigned char *buf; /* READ_BYTES */
};

struct lucy_scan_hasher *lucy_scan_hasher_new(void)
{
    struct lucy_scan_hasher *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->md = EVP_MD_CTX_new();
    h->buf = malloc(READ_BYTES);
    if (!h->md || !h->buf) {
        lucy_scan_hasher_free(h);
        return NULL;
    }
    return h;
}

void lucy_scan_hasher_free(struct lucy_scan_hasher *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->md);
    free(h->buf);
    free(h);
}

int lucy_scan_hash_fd(struct lucy_scan_hasher *h, int fd, char hex[65], uint64_t *bytes,
                      int *errnum)
{
    static const char digits[] = "0123456789abcdef";
    *bytes = 0;
    *errnum = 0;
    hex[0] = '\0';
    if (EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
        *errnum = EIO;
        return -1;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    off_t pos = 0;
    for (;;) {
        ssize_t n = pread(fd, h->buf, READ_BYTES, pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *errnum = errno;
            return -1;
        }
        if (n == 0)
            break;
        if (EVP_DigestUpdate(h->md, h->buf, (size_t)n) != 1) {
            *errnum = EIO;
            return -1;
        }
        pos += n;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_DigestFinal_ex(h->md, md, &md_len) != 1 || md_len != 32) {
        *errnum = EIO;
        return -1;
    }
    for (unsigned i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    *bytes = (uint64_t)pos;
    return 0;
}
