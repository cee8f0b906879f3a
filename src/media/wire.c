/*
 * wire.c - framing and fields of the messages between lucy and its media
 * processes (wire.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../error.h"
#include "wire.h"

#define PAYLOAD_MAX ((uint64_t)4 << 30)

struct header {
    int32_t op, rc;
    uint64_t len;
};

void lucy_wire_buf_free(struct lucy_wire_buf *b)
{
    free(b->data);
    *b = (struct lucy_wire_buf){0};
}

void lucy_wire_put(struct lucy_wire_buf *b, const void *p, size_t n)
{
    if (b->bad || n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *d = realloc(b->data, cap);
        if (!d) {
            b->bad = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void lucy_wire_put_i64(struct lucy_wire_buf *b, int64_t v)
{
    lucy_wire_put(b, &v, sizeof v);
}

void lucy_wire_put_f64(struct lucy_wire_buf *b, double v)
{
    lucy_wire_put(b, &v, sizeof v);
}

void lucy_wire_put_str(struct lucy_wire_buf *b, const char *s)
{
    lucy_wire_put_i64(b, s ? (int64_t)strlen(s) : -1);
    if (s)
        lucy_wire_put(b, s, strlen(s));
}

int lucy_wire_get(struct lucy_wire_buf *b, void *p, size_t n)
{
    if (b->bad || n > b->len - b->at) {
        b->bad = 1;
        memset(p, 0, n);
        return -1;
    }
    memcpy(p, b->data + b->at, n);
    b->at += n;
    return 0;
}

int64_t lucy_wire_get_i64(struct lucy_wire_buf *b)
{
    int64_t v;
    lucy_wire_get(b, &v, sizeof v);
    return v;
}

double lucy_wire_get_f64(struct lucy_wire_buf *b)
{
    double v;
    lucy_wire_get(b, &v, sizeof v);
    return v;
}

char *lucy_wire_get_str(struct lucy_wire_buf *b)
{
    int64_t n = lucy_wire_get_i64(b);
    if (b->bad || n < 0)
        return NULL;
    if ((uint64_t)n > b->len - b->at) {
        b->bad = 1;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        b->bad = 1;
        return NULL;
    }
    memcpy(s, b->data + b->at, (size_t)n);
    s[n] = '\0';
    b->at += (size_t)n;
    return s;
}

void lucy_wire_get_strn(struct lucy_wire_buf *b, char *buf, size_t len)
{
    char *s = lucy_wire_get_str(b);
    if (len)
        buf[0] = '\0';
    if (s && len) {
        size_t n = strlen(s) < len - 1 ? strlen(s) : len - 1;
        memcpy(buf, s, n);
        buf[n] = '\0';
    }
    free(s);
}

/* Waits until sock is ready for events (POLLIN / POLLOUT), asking w after
 * each second without: 0, or w's code. No w: at once (the call blocks). */
static int wait_ready(int sock, short events, const struct lucy_wire_wait *w)
{
    if (!w)
        return 0;
    for (;;) {
        struct pollfd pf = {.fd = sock, .events = events};
        int n = poll(&pf, 1, 1000);
        if (n > 0)
            return 0; /* ready, or hung up: the read or write says which */
        if (n < 0 && errno != EINTR)
            return LUCY_EIO;
        int code = w->go_on(w->arg);
        if (code)
            return code;
    }
}

/* Writes all of p[0..n) (the header's sendmsg may carry a fd). */
static int write_all(int sock, const void *p, size_t n, int send_fd, const struct lucy_wire_wait *w)
{
    const unsigned char *at = p;
    while (n > 0) {
        struct iovec iov = {.iov_base = (void *)at, .iov_len = n};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        if (send_fd >= 0) {
            memset(&u, 0, sizeof u);
            msg.msg_control = u.buf;
            msg.msg_controllen = sizeof u.buf;
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &send_fd, sizeof(int));
        }
        int ready = wait_ready(sock, POLLOUT, w);
        if (ready)
            return ready;
        ssize_t sent = sendmsg(sock, &msg, MSG_NOSIGNAL | (w ? MSG_DONTWAIT : 0));
        if (sent < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (sent <= 0)
            return LUCY_EIO;
        send_fd = -1; /* the fd went with the first bytes */
        at += sent;
        n -= (size_t)sent;
    }
    return 0;
}

int lucy_wire_send(int sock, int op, int rc, const struct lucy_wire_buf *b, int send_fd,
                   const struct lucy_wire_wait *w)
{
    struct header h = {.op = op, .rc = rc, .len = b ? b->len : 0};
    int r = write_all(sock, &h, sizeof h, send_fd, w);
    if (r == 0 && b && b->len)
        r = write_all(sock, b->data, b->len, -1, w);
    return r;
}

/* Reads exactly n bytes into p; a fd that comes is stored in *fd. */
static int read_all(int sock, void *p, size_t n, int *fd, const struct lucy_wire_wait *w)
{
    unsigned char *at = p;
    while (n > 0) {
        int ready = wait_ready(sock, POLLIN, w);
        if (ready)
            return ready;
        struct iovec iov = {.iov_base = at, .iov_len = n};
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
        ssize_t r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | (w ? MSG_DONTWAIT : 0));
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return LUCY_EIO;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int got;
                memcpy(&got, CMSG_DATA(c), sizeof got);
                if (*fd >= 0)
                    close(got);
                else
                    *fd = got;
            }
        at += r;
        n -= (size_t)r;
    }
    return 0;
}

int lucy_wire_recv(int sock, int *op, int *rc, struct lucy_wire_buf *b, int *recv_fd,
                   const struct lucy_wire_wait *w)
{
    lucy_wire_buf_free(b);
    int fd = -1;
    struct header h;
    int r = read_all(sock, &h, sizeof h, &fd, w);
    if (r == 0 && h.len > PAYLOAD_MAX)
        r = LUCY_EIO;
    if (r == 0 && h.len > 0) {
        b->data = malloc((size_t)h.len);
        if (!b->data)
            r = LUCY_ENOMEM;
        else if ((r = read_all(sock, b->data, (size_t)h.len, &fd, w)) == 0)
            b->len = b->cap = (size_t)h.len;
    }
    if (r == 0) {
        *op = h.op;
        *rc = h.rc;
    }
    if (recv_fd && r == 0)
        *recv_fd = fd;
    else if (fd >= 0)
        close(fd);
    return r;
}
