/*
 * mpi_share.c — pp_mpi_share / pp_mpi_unshare: a read-only block placed once
 * in every node's arena and registered there under the root's handle
 * (pp_shm_share on the root, pp_ext_share_as on the others), so tasks read
 * it in place with pp_task_shared wherever they run. docs/mpi.md
 * ("Shared blocks") has the protocol.
 *
 * Client threads never call MPI on the executor's communicator: a request
 * goes through a FIFO (ppm_shares) to the comm thread, which sends SHARE and,
 * once asked, SHARE_DATA (the bytes straight from the root's arena block) to every live
 * rank and collects one SHARE_ACK from each (or its loss); the caller waits
 * on the FIFO's condition variable. A serving rank first takes a
 * pp_shm_alloc block of its node and answers READY (or its error: then no
 * bytes are sent); the root sends SHARE_DATA only then, the rank receives
 * it straight into the block (no extra copy) and registers it before its
 * final answer, so every task shipped after pp_mpi_share returned finds it.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_internal.h"

enum { RQ_SHARE, RQ_UNSHARE };

/* Per rank, for the request in flight. */
enum { ACK_NONE = 0, /* not asked: the root itself, or lost before */
       ACK_WAIT,     /* sent; waiting for READY or an error (SHARE) or the send (UNSHARE) */
       ACK_DATA,     /* SHARE: READY came, the bytes are on their way; waiting for the answer */
       ACK_OK,
       ACK_FAIL,     /* it answered an error (the request's err) */
       ACK_LOST };   /* lost meanwhile: not counted (it gets no more tasks) */

typedef struct ppm_share_req {
    int kind;
    ppm_share msg;        /* the header every rank gets (buffer of its sends) */
    const void *data;     /* RQ_SHARE: the root's block, read by MPI until acked */
    int done;             /* under shares.lock */
    int err;              /* 0, or the first error a rank answered */
    unsigned char *ack;   /* [size] */
    MPI_Request *req;     /* [2 * size]: header and data send per rank */
    struct ppm_share_req *next;
} ppm_share_req;

void ppm_share_init(ppm_root *r)
{
    ppm_shares *q = &r->shares;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->head = q->tail = q->active = NULL;
    atomic_init(&q->queued, 0);
}

void ppm_share_fini(ppm_root *r)
{
    /* pp_executor_destroy is the last call: no request is left. */
    pthread_mutex_destroy(&r->shares.lock);
    pthread_cond_destroy(&r->shares.cv);
}

/* ---- comm thread ------------------------------------------------------ */

static void req_start(ppm_root *r, ppm_share_req *a)
{
    int tag = a->kind == RQ_SHARE ? PPM_TAG_SHARE : PPM_TAG_UNSHARE;
    for (int q = 0; q < r->size; q++) {
        if (q == r->me || !r->ranks[q].alive)
            continue;
        a->ack[q] = ACK_WAIT;
        /* Failed sends are left to the heartbeat watch: a rank we cannot
         * reach is declared lost, which ends its wait (req_finished). The
         * bytes wait for the rank's READY (ppm_share_on_ack): a rank without
         * room never has to receive (and drop) them. */
        MPI_Isend(&a->msg, (int)sizeof a->msg, MPI_BYTE, q, tag, r->comm, &a->req[2 * q]);
    }
}

/* true once every rank asked has answered, had its send complete
 * (UNSHARE: no answer), or was lost. */
static bool req_finished(ppm_root *r, ppm_share_req *a)
{
    bool all = true;
    for (int q = 0; q < r->size; q++) {
        if (a->ack[q] != ACK_WAIT && a->ack[q] != ACK_DATA)
            continue;
        MPI_Request *rq = &a->req[2 * q];
        if (!r->ranks[q].alive) {
            /* Its sends may never complete: let MPI finish or drop them
             * (the buffers outlive that: the request's header is freed
             * after this, the block at unshare; as check_losses' flights). */
            for (int k = 0; k < 2; k++)
                if (rq[k] != MPI_REQUEST_NULL)
                    MPI_Request_free(&rq[k]);
            a->ack[q] = ACK_LOST;
            continue;
        }
        int flag = 0;
        if (a->kind == RQ_UNSHARE && MPI_Testall(2, rq, &flag, MPI_STATUSES_IGNORE) == MPI_SUCCESS &&
            flag) {
            a->ack[q] = ACK_OK;
            continue;
        }
        all = false;
    }
    return all;
}

bool ppm_share_progress(ppm_root *r)
{
    ppm_shares *q = &r->shares;
    bool any = false;
    /* acquire: pairs with the client's release (the request is written). */
    if (!q->active && atomic_load_explicit(&q->queued, memory_order_acquire)) {
        pthread_mutex_lock(&q->lock);
        q->active = q->head;
        q->head = q->active->next;
        if (!q->head)
            q->tail = NULL;
        /* relaxed: under the lock; the count is only a hint outside it. */
        atomic_fetch_sub_explicit(&q->queued, 1, memory_order_relaxed);
        pthread_mutex_unlock(&q->lock);
        req_start(r, q->active);
        any = true;
    }
    if (q->active && req_finished(r, q->active)) {
        pthread_mutex_lock(&q->lock);
        q->active->done = 1;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->lock);
        q->active = NULL;
        any = true;
    }
    return any;
}

void ppm_share_on_ack(ppm_root *r, int src, const char *buf, size_t len)
{
    ppm_share_ack k;
    ppm_share_req *a = r->shares.active;
    if (len < sizeof k)
        return;
    memcpy(&k, buf, sizeof k);
    if (!a || a->kind != RQ_SHARE || a->msg.handle != k.handle)
        return; /* a rank declared lost answered late */
    if (k.ready && !k.err && a->ack[src] == ACK_WAIT) {
        /* Its block is taken and it waits in MPI_Recv: the bytes, straight
         * from the root's arena block (a->data lives until the request is
         * done, or until unshare once the rank is lost). */
        MPI_Isend(a->data, (int)a->msg.size, MPI_BYTE, src, PPM_TAG_SHARE_DATA, r->comm,
                  &a->req[2 * src + 1]);
        a->ack[src] = ACK_DATA;
        return;
    }
    if (k.ready || (a->ack[src] != ACK_WAIT && a->ack[src] != ACK_DATA))
        return; /* out of order: not from this protocol */
    /* It received what was sent to it: the sends are complete. */
    MPI_Waitall(2, &a->req[2 * src], MPI_STATUSES_IGNORE);
    a->ack[src] = k.err ? ACK_FAIL : ACK_OK;
    if (k.err && !a->err)
        a->err = k.err;
}

/* ---- client threads (the root) ----------------------------------------- */

static void req_free(ppm_share_req *a)
{
    if (!a)
        return;
    free(a->ack);
    free(a->req);
    free(a);
}

static ppm_share_req *req_new(ppm_root *r, int kind, const void *data, size_t size)
{
    ppm_share_req *a = calloc(1, sizeof *a);
    unsigned char *ack = calloc((size_t)r->size, 1);
    MPI_Request *req = malloc(2 * (size_t)r->size * sizeof *req);
    if (!a || !ack || !req) {
        free(a);
        free(ack);
        free(req);
        return NULL;
    }
    for (int i = 0; i < 2 * r->size; i++)
        req[i] = MPI_REQUEST_NULL;
    a->kind = kind;
    a->msg.size = size;
    a->data = data;
    a->ack = ack;
    a->req = req;
    return a;
}

/* Queue @a (shares.lock held) and wait until the comm thread is done with
 * it; returns its error and frees it. The caller changed the root's own
 * table under the same lock, so the FIFO's order is the root table's:
 * every rank's table goes through the same sequence (docs/mpi.md). */
static int req_run_locked(ppm_root *r, ppm_share_req *a)
{
    ppm_shares *q = &r->shares;
    if (q->tail)
        q->tail->next = a;
    else
        q->head = a;
    q->tail = a;
    /* release: the request's fields before the comm thread's acquire. */
    atomic_fetch_add_explicit(&q->queued, 1, memory_order_release);
    while (!a->done)
        pthread_cond_wait(&q->cv, &q->lock);
    int err = a->err;
    req_free(a);
    return err;
}

/* Withdraw @h on the root, then on every rank (@a: an UNSHARE request, used
 * and freed here), in that order under the lock. Returns pp_shm_unshare's
 * answer on the root (nothing is sent unless 0). */
static int unshare_everywhere(ppm_root *r, pp_executor *ex, uint64_t h, ppm_share_req *a,
                              void **block)
{
    pthread_mutex_lock(&r->shares.lock);
    int rc = pp_shm_unshare(ex, h, block);
    if (!rc) {
        a->msg.handle = h;
        req_run_locked(r, a); /* frees it */
        a = NULL;
    }
    pthread_mutex_unlock(&r->shares.lock);
    req_free(a);
    return rc;
}

int pp_mpi_share(pp_executor *ex, const void *data, size_t size, uint64_t *handle)
{
    if (handle)
        *handle = 0;
    if (!ex || !data || !size || !handle)
        return -EINVAL;
    if (size > INT_MAX)
        return PP_ETOOBIG; /* one MPI message of MPI_BYTE */
    void *block = NULL;
    int rc = pp_shm_alloc(ex, size, &block);
    if (rc)
        return rc;
    memcpy(block, data, size);
    uint64_t h = 0;
    ppm_root *r = pp_ext_ctx(ex, &ppm_root_ops);
    if (!r) { /* an ordinary executor: this node only */
        rc = pp_shm_share(ex, block, size, &h);
        if (rc)
            pp_shm_free(ex, block);
        else
            *handle = h;
        return rc;
    }
    /* Both requests up front: the roll-back must not fail for memory. */
    ppm_share_req *a = req_new(r, RQ_SHARE, block, size);
    ppm_share_req *undo = req_new(r, RQ_UNSHARE, NULL, 0);
    if (!a || !undo) {
        pp_shm_free(ex, block);
        req_free(a);
        req_free(undo);
        return -ENOMEM;
    }
    pthread_mutex_lock(&r->shares.lock);
    rc = pp_shm_share(ex, block, size, &h);
    if (!rc) {
        a->msg.handle = h;
        rc = req_run_locked(r, a);
        a = NULL;
    }
    pthread_mutex_unlock(&r->shares.lock);
    if (a) { /* the root's table refused it (-ENOSPC): nothing was sent */
        req_free(a);
        req_free(undo);
        pp_shm_free(ex, block);
        return rc;
    }
    if (rc) {
        /* All or nothing: withdraw it everywhere (a rank without it
         * ignores the UNSHARE). */
        unshare_everywhere(r, ex, h, undo, NULL);
        pp_shm_free(ex, block);
        return rc;
    }
    req_free(undo);
    *handle = h;
    return 0;
}

int pp_mpi_unshare(pp_executor *ex, uint64_t handle)
{
    if (!ex)
        return -EINVAL;
    void *block = NULL;
    ppm_root *r = pp_ext_ctx(ex, &ppm_root_ops);
    if (!r) {
        int rc = pp_shm_unshare(ex, handle, &block);
        if (!rc)
            pp_shm_free(ex, block);
        return rc;
    }
    ppm_share_req *a = req_new(r, RQ_UNSHARE, NULL, 0);
    if (!a)
        return -ENOMEM;
    int rc = unshare_everywhere(r, ex, handle, a, &block);
    if (!rc)
        pp_shm_free(ex, block);
    return rc;
}

/* ---- a serving rank ----------------------------------------------------- */

void ppm_serve_share(MPI_Comm comm, int root, pp_executor *lex, const char *buf, size_t len)
{
    ppm_share h;
    if (len < sizeof h)
        return;
    memcpy(&h, buf, sizeof h);
    void *block = NULL;
    int err = h.size && h.size <= INT_MAX ? pp_shm_alloc(lex, h.size, &block) : -EINVAL;
    if (!err) {
        /* Room taken: ask for the bytes and receive them straight into the
         * arena. (Without room we only answer: no bytes come. Receiving a
         * large message truncated, to drop it, makes Open MPI's vader CMA
         * path read the whole message into the small buffer: EFAULT.) */
        ppm_share_ack ready = {.handle = h.handle, .err = 0, .ready = 1};
        MPI_Send(&ready, (int)sizeof ready, MPI_BYTE, root, PPM_TAG_SHARE_ACK, comm);
        if (MPI_Recv(block, (int)h.size, MPI_BYTE, root, PPM_TAG_SHARE_DATA, comm,
                     MPI_STATUS_IGNORE) != MPI_SUCCESS)
            err = -EIO;
        if (!err) /* its release store publishes the bytes to our tasks */
            err = pp_ext_share_as(lex, h.handle, block, h.size);
        if (err)
            pp_shm_free(lex, block);
    }
    ppm_share_ack k = {.handle = h.handle, .err = err};
    MPI_Send(&k, (int)sizeof k, MPI_BYTE, root, PPM_TAG_SHARE_ACK, comm);
}

void ppm_serve_unshare(pp_executor *lex, const char *buf, size_t len)
{
    ppm_share h;
    if (len < sizeof h)
        return;
    memcpy(&h, buf, sizeof h);
    void *block = NULL;
    /* -ENOENT when this rank failed to take it: nothing to do. */
    if (pp_shm_unshare(lex, h.handle, &block) == 0)
        pp_shm_free(lex, block);
}
