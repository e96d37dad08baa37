/* batch_send: many sockets' writes, batched through io_uring or one writev each; see
 * batch_send.h. */
#include "server/batch_send.h"
#include "core/alloc.h"

#include <errno.h>
#include <liburing.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct batch_send {
    bool uring;
    unsigned entries;
    struct io_uring ring;
    struct msghdr *msgs; /* one per submitted job (the kernel reads them during the submission) */
};

struct batch_send *batch_send_new(unsigned entries, bool use_uring)
{
    struct batch_send *b = xcalloc(1, sizeof *b);
    b->entries = entries ? entries : 1;
    if (use_uring && io_uring_queue_init(b->entries, &b->ring, 0) == 0) {
        b->uring = true;
        b->msgs = xcalloc(b->entries, sizeof *b->msgs);
    }
    return b;
}

bool batch_send_uses_uring(const struct batch_send *b)
{
    return b->uring;
}

static void run_writev(struct send_job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct send_job *j = &jobs[i];
        if (j->fd < 0) continue;
        j->result = writev(j->fd, j->iov, j->iovcnt);
        j->err = j->result < 0 ? errno : 0;
    }
}

/* Submits jobs[from..] until the ring is full or the jobs end, reaps every completion, and
 * returns where it stopped. If the ring fails (it does not on a working kernel), what it did not
 * complete is written with writev and io_uring is given up for good. */
static size_t run_uring_part(struct batch_send *b, struct send_job *jobs, size_t from, size_t n)
{
    unsigned queued = 0;
    size_t i = from;
    for (; i < n && queued < b->entries; i++) {
        struct send_job *j = &jobs[i];
        if (j->fd < 0) continue;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
        if (!sqe) break;
        struct msghdr *m = &b->msgs[queued];
        memset(m, 0, sizeof *m);
        m->msg_iov = j->iov;
        m->msg_iovlen = (size_t)j->iovcnt;
        /* MSG_DONTWAIT: a full socket completes with -EAGAIN now (a writev would be parked
         * until the socket drains, and the batch with it) */
        io_uring_prep_sendmsg(sqe, j->fd, m, MSG_DONTWAIT | MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, i);
        j->err = EINPROGRESS; /* until its completion arrives */
        queued++;
    }
    if (!queued) return i;
    unsigned submitted = 0, seen = 0;
    while (submitted < queued) {
        int rc = io_uring_submit(&b->ring);
        if (rc == -EINTR) continue;
        if (rc <= 0) break;
        submitted += (unsigned)rc;
    }
    while (seen < submitted) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe(&b->ring, &cqe);
        if (rc == -EINTR || rc == -EAGAIN) continue;
        if (rc != 0) break;
        struct send_job *j = &jobs[io_uring_cqe_get_data64(cqe)];
        j->result = cqe->res < 0 ? -1 : cqe->res;
        j->err = cqe->res < 0 ? -cqe->res : 0;
        io_uring_cqe_seen(&b->ring, cqe);
        seen++;
    }
    if (seen < queued) {
        /* entries the kernel did not take are dropped with the ring; a send it took completes
         * inline (MSG_DONTWAIT never parks), so one left unreaped here is a broken ring */
        io_uring_queue_exit(&b->ring);
        b->uring = false;
        for (size_t k = from; k < i; k++)
            if (jobs[k].fd >= 0 && jobs[k].err == EINPROGRESS) run_writev(&jobs[k], 1);
    }
    return i;
}

void batch_send_run(struct batch_send *b, struct send_job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        jobs[i].result = 0;
        jobs[i].err = 0;
    }
    size_t i = 0;
    while (b->uring && i < n)
        i = run_uring_part(b, jobs, i, n);
    if (i < n) run_writev(jobs + i, n - i);
}

void batch_send_free(struct batch_send *b)
{
    if (!b) return;
    if (b->uring) io_uring_queue_exit(&b->ring);
    xfree(b->msgs);
    xfree(b);
}
