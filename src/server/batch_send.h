/* batch_send: writes many sockets at once without blocking (a browser fan-out, the CometQL
 * replies of one loop turn); the loop never waits on a socket. Each job is one socket's iovecs;
 * the result is what write(2) would have said. With io_uring (liburing) the whole batch is one
 * submission: one kernel crossing for up to `entries` sockets instead of one per socket, which on
 * this project's machines halves the CPU of a delivery (bench/README.md); sends carry MSG_DONTWAIT,
 * so a full socket answers EAGAIN at once instead of waiting. Without io_uring (kernel too old,
 * io_uring_disabled, a seccomp filter, or [main] io_uring = no) each job is a writev(2). One
 * batch_send per thread. */
#ifndef CC_BATCH_SEND_H
#define CC_BATCH_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#define SEND_JOB_IOV 16

struct send_job {
    int fd; /* -1: nothing to do */
    int iovcnt;
    ssize_t result; /* bytes written, or -1 with err */
    int err;        /* errno of a failed write (EAGAIN: the socket is full) */
    struct iovec iov[SEND_JOB_IOV];
};

struct batch_send;

/* A sender of up to `entries` jobs per submission; io_uring when use_uring and the kernel allows
 * it (batch_send_uses_uring says which). Never NULL. */
struct batch_send *batch_send_new(unsigned entries, bool use_uring);
bool batch_send_uses_uring(const struct batch_send *b);
/* Runs every job with fd >= 0, filling result and err. */
void batch_send_run(struct batch_send *b, struct send_job *jobs, size_t n);
void batch_send_free(struct batch_send *b);

#endif
