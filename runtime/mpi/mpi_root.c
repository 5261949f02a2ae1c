/*
 * mpi_root.c — the root's comm thread: one external worker per remote rank
 * (ext_worker.h) takes tasks from the pool's own ring while that rank has
 * credit, ships them, and publishes the results into the slots as a worker
 * would. The only thread of the root that makes MPI calls on the executor's
 * communicator. docs/mpi.md has the invariants.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_internal.h"
#include "sync.h"

/* Longest idle sleep of the comm thread with tasks in flight (a result's
 * extra latency at worst). */
#define PPM_ROOT_NAP_NS 50000ull
/* ... and with none in flight and no credit to take with. */
#define PPM_ROOT_IDLE_NS 2000000ull
/* Longest sleep on the ring's eventcount: pp_submit wakes one sleeper, which
 * may be a node worker rather than us, so we look again this soon. */
#define PPM_ROOT_RING_NS 1000000ull

static uint64_t task_id(const pp_ext_item *it) { return ((uint64_t)it->gen << 32) | it->idx; }

static ppm_flight *flight_free(ppm_rank *rk)
{
    for (unsigned i = 0; i < rk->credits; i++)
        if (!rk->fl[i].used)
            return &rk->fl[i];
    return NULL;
}

static ppm_flight *flight_find(ppm_rank *rk, uint64_t id)
{
    for (unsigned i = 0; i < rk->credits; i++)
        if (rk->fl[i].used && rk->fl[i].id == id)
            return &rk->fl[i];
    return NULL;
}

/* The flight's sends are done (its result came, so the rank received them). */
static void flight_sends_done(ppm_flight *f)
{
    if (f->nreq)
        MPI_Waitall(f->nreq, f->req, MPI_STATUSES_IGNORE);
    f->nreq = 0;
    free(f->pkt);
    f->pkt = NULL;
}

void ppm_flight_begin(ppm_root *r, int q, ppm_flight *f)
{
    ppm_rank *rk = &r->ranks[q];
    f->id = task_id(&f->it);
    f->used = 1;
    f->kill_sent = 0;
    f->counted = 0;
    f->nreq = 0;
    /* relaxed: statistics; flying is read by drain after the release in flight_end. */
    atomic_fetch_add_explicit(&rk->in_flight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->flying, 1, memory_order_relaxed); /* relaxed: as above */
}

void ppm_flight_count(ppm_rank *rk, ppm_flight *f, int err)
{
    if (f->counted)
        return;
    f->counted = 1;
    /* relaxed: statistics, made visible to the client by the publish's
     * release that follows. */
    atomic_fetch_add_explicit(&rk->tasks, 1, memory_order_relaxed);
    if (err)
        atomic_fetch_add_explicit(&rk->failed, 1, memory_order_relaxed); /* relaxed: as above */
    atomic_fetch_sub_explicit(&rk->in_flight, 1, memory_order_relaxed); /* relaxed: as above */
}

void ppm_flight_end(ppm_root *r, ppm_rank *rk, ppm_flight *f, int err)
{
    ppm_flight_count(rk, f, err);
    f->used = 0;
    /* release: the slot's outcome is published before drain sees 0. */
    if (atomic_fetch_sub_explicit(&r->flying, 1, memory_order_release) == 1) {
        pthread_mutex_lock(&r->lock);
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->lock);
    }
}

/* Fail a flight at the root (the rank never answers for it). */
static void flight_fail(ppm_root *r, int q, ppm_flight *f, int err, const char *msg)
{
    ppm_flight_count(&r->ranks[q], f, err);
    pp_ext_publish(r->ex, (uint32_t)q, &f->it, err, 0, 0, q, msg, strlen(msg), 0);
    ppm_flight_end(r, &r->ranks[q], f, err);
}

/* Send task @f to rank @q: header and inline argument in one message, or
 * the header then the argument straight from slot or arena memory. */
static void ship(ppm_root *r, int q, ppm_flight *f)
{
    ppm_flight_begin(r, q, f);
    if (f->it.arg_size > INT_MAX) {
        flight_fail(r, q, f, PP_ETOOBIG, "argument too large for one MPI message");
        return;
    }
    bool in = f->it.arg_size <= r->cfg.eager_limit;
    size_t n = sizeof(ppm_task) + (in ? f->it.arg_size : 0);
    f->pkt = malloc(n);
    if (!f->pkt) {
        flight_fail(r, q, f, -ENOMEM, "out of memory shipping the task");
        return;
    }
    ppm_task h = {.id = f->id,
                  .token = f->it.token,
                  .timeout_ns = f->it.timeout_ns,
                  .grace_ns = f->it.grace_ns,
                  .arg_size = f->it.arg_size,
                  .inline_arg = in};
    memcpy(f->pkt, &h, sizeof h);
    if (in && f->it.arg_size)
        memcpy((char *)f->pkt + sizeof h, f->it.arg, f->it.arg_size);
    int rc = MPI_Isend(f->pkt, (int)n, MPI_BYTE, q, PPM_TAG_TASK, r->comm, &f->req[f->nreq]);
    if (rc == MPI_SUCCESS)
        f->nreq++;
    if (rc == MPI_SUCCESS && !in) {
        rc = MPI_Isend(f->it.arg, (int)f->it.arg_size, MPI_BYTE, q, PPM_TAG_TASK_DATA, r->comm,
                       &f->req[f->nreq]);
        if (rc == MPI_SUCCESS)
            f->nreq++;
    }
    if (rc != MPI_SUCCESS) {
        /* The rank is unreachable; its loss is declared by the heartbeat
         * watch. Leave the flight to it. */
        return;
    }
}

/* Take tasks for the ranks with credit, round robin. Returns true if it
 * shipped any. */
static bool take_some(ppm_root *r)
{
    bool any = false;
    for (int k = 0; k < r->size; k++) {
        int q = (r->rr + k) % r->size;
        ppm_rank *rk = &r->ranks[q];
        if (q == r->me || !rk->alive)
            continue;
        ppm_flight *f = flight_free(rk);
        if (!f)
            continue;
        /* seq_cst: Dekker pair with before_stop (closing, then in_take). */
        atomic_store_explicit(&r->in_take, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&r->closing, memory_order_seq_cst)) {
            /* release: ends our use of the ring before before_stop returns. */
            atomic_store_explicit(&r->in_take, 0, memory_order_release);
            return any;
        }
        bool handed_back = false;
        int got = pp_ext_take(r->ex, (uint32_t)q, &f->it, &handed_back);
        if (got && f->it.map_runner)
            ppm_map_lane_open(r, q, f); /* mpi_map.c */
        else if (got)
            ship(r, q, f);
        /* release: as above. */
        atomic_store_explicit(&r->in_take, 0, memory_order_release);
        if (!got) {
            r->handed_back = handed_back;
            break; /* empty, or a map runner handed back: let the node take it */
        }
        any = true;
    }
    r->rr = (r->rr + 1) % r->size;
    return any;
}

static const char *result_space_msg(int err)
{
    return err == PP_ETOOBIG ? "result larger than max_result_size"
                             : "no room in the arena for the result";
}

/* Receive and drop a DATA message we have no room for. */
static void drop_data(ppm_root *r, int src, int tag, uint64_t size)
{
    void *junk = malloc(size ? size : 1);
    if (junk)
        MPI_Recv(junk, (int)size, MPI_BYTE, src, tag, r->comm, MPI_STATUS_IGNORE);
    else {
        MPI_Message m;
        MPI_Status st;
        MPI_Mprobe(src, tag, r->comm, &m, &st);
        MPI_Mrecv(NULL, 0, MPI_BYTE, &m, MPI_STATUS_IGNORE); /* truncates: dropped */
    }
    free(junk);
}

/* A result message from @src: put it in its slot and publish it. */
static void take_result(ppm_root *r, int src, const char *buf, size_t len)
{
    ppm_res h;
    if (len < sizeof h)
        return;
    memcpy(&h, buf, sizeof h);
    const char *msg = buf + sizeof h;
    const char *res = msg + h.msg_len;
    ppm_rank *rk = &r->ranks[src];
    ppm_flight *f = flight_find(rk, h.id);
    bool has_data = !h.err && h.res_size && !h.inline_res;
    if (!f || !rk->alive) {
        if (has_data)
            drop_data(r, src, PPM_TAG_RES_DATA, h.res_size);
        return; /* a rank declared lost answered late: its futures failed already */
    }
    flight_sends_done(f);
    int err = h.err;
    if (!err && h.res_size) {
        int serr = 0;
        void *dst = pp_ext_result_space(r->ex, &f->it, h.res_size, &serr);
        if (!dst) {
            if (has_data)
                drop_data(r, src, PPM_TAG_RES_DATA, h.res_size);
            const char *m = result_space_msg(serr);
            ppm_flight_count(rk, f, serr);
            pp_ext_publish(r->ex, (uint32_t)src, &f->it, serr, 0, h.pid, src, m, strlen(m), 0);
            ppm_flight_end(r, rk, f, serr);
            return;
        }
        if (has_data) /* straight into the slot or the arena block */
            MPI_Recv(dst, (int)h.res_size, MPI_BYTE, src, PPM_TAG_RES_DATA, r->comm,
                     MPI_STATUS_IGNORE);
        else
            memcpy(dst, res, h.res_size);
    }
    ppm_flight_count(rk, f, err);
    pp_ext_publish(r->ex, (uint32_t)src, &f->it, err, h.code, h.pid, src, msg, h.msg_len,
                   err ? 0 : h.res_size);
    ppm_flight_end(r, rk, f, err);
}

/* Receive every message waiting. Returns true if there was one. */
static bool poll_messages(ppm_root *r, uint64_t now)
{
    bool any = false;
    for (;;) {
        int flag = 0;
        MPI_Message m;
        MPI_Status st;
        if (MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, r->comm, &flag, &m, &st) != MPI_SUCCESS ||
            !flag)
            return any;
        any = true;
        int src = st.MPI_SOURCE, n = 0;
        MPI_Get_count(&st, MPI_BYTE, &n);
        char stackbuf[512];
        char *buf = (size_t)n <= sizeof stackbuf ? stackbuf : malloc((size_t)n);
        if (!buf) {
            MPI_Mrecv(NULL, 0, MPI_BYTE, &m, MPI_STATUS_IGNORE); /* truncates */
            continue;
        }
        MPI_Mrecv(buf, n, MPI_BYTE, &m, MPI_STATUS_IGNORE);
        if (src >= 0 && src < r->size && src != r->me) {
            r->ranks[src].heard_ns = now;
            if (st.MPI_TAG == PPM_TAG_RES)
                take_result(r, src, buf, (size_t)n);
            else if (st.MPI_TAG == PPM_TAG_MAP_RES)
                ppm_map_take_result(r, src, buf, (size_t)n); /* mpi_map.c */
        }
        if (buf != stackbuf)
            free(buf);
    }
}

/* Forward pp_future_kill (KILLING slots) to the ranks running them. */
static void forward_kills(ppm_root *r)
{
    for (int q = 0; q < r->size; q++) {
        ppm_rank *rk = &r->ranks[q];
        if (q == r->me || !rk->alive)
            continue;
        for (unsigned i = 0; i < rk->credits; i++) {
            ppm_flight *f = &rk->fl[i];
            uint64_t grace = 0;
            if (!f->used || f->kill_sent || pp_ext_state(r->ex, (uint32_t)q, &f->it, &grace) != 2)
                continue;
            ppm_kill k = {.id = f->id, .grace_ns = grace};
            MPI_Send(&k, (int)sizeof k, MPI_BYTE, q, PPM_TAG_KILL, r->comm);
            f->kill_sent = 1;
        }
    }
}

/* A message without payload to every live rank, not waiting for delivery
 * (a dead rank must not block us). */
static void send_all(ppm_root *r, int tag)
{
    for (int q = 0; q < r->size; q++) {
        if (q == r->me || !r->ranks[q].alive)
            continue;
        MPI_Request req;
        if (MPI_Isend(NULL, 0, MPI_BYTE, q, tag, r->comm, &req) == MPI_SUCCESS)
            MPI_Request_free(&req);
    }
}

/* Ranks silent for node_timeout are lost: their tasks fail (PP_ENODE). */
static void check_losses(ppm_root *r, uint64_t now)
{
    uint64_t limit = ppi_s_to_ns(r->cfg.node_timeout);
    for (int q = 0; q < r->size; q++) {
        ppm_rank *rk = &r->ranks[q];
        if (q == r->me || !rk->alive || now - rk->heard_ns < limit)
            continue;
        rk->alive = 0;
        /* release: destroy reads it after joining us anyway; stats relaxed. */
        atomic_store_explicit(&r->lost_any, 1, memory_order_release);
        char msg[96];
        snprintf(msg, sizeof msg, "rank %d lost: silent for %.1f s", q, r->cfg.node_timeout);
        for (unsigned i = 0; i < rk->credits; i++) {
            ppm_flight *f = &rk->fl[i];
            if (!f->used)
                continue;
            if (f->map) {
                ppm_map_lane_lost(r, q, f, msg); /* mpi_map.c */
                continue;
            }
            /* Its sends may never complete: let MPI finish or drop them;
             * the header buffer is left to it (a bounded leak per loss). */
            for (int k = 0; k < f->nreq; k++)
                MPI_Request_free(&f->req[k]);
            f->nreq = 0;
            f->pkt = NULL;
            flight_fail(r, q, f, PP_ENODE, msg);
        }
    }
}

static void *comm_thread(void *arg)
{
    ppm_root *r = arg;
    ppm_backoff bo = {0};
    uint64_t beat = ppi_s_to_ns(r->cfg.heartbeat);
    for (;;) {
        uint64_t now = ppi_now_ns();
        bool progress = poll_messages(r, now);
        /* acquire: pairs with destroy's release (everything drained before). */
        if (atomic_load_explicit(&r->quit, memory_order_acquire))
            break;
        r->handed_back = false;
        progress |= take_some(r);
        progress |= ppm_map_lanes_step(r); /* mpi_map.c */
        forward_kills(r);
        if (!r->cancel_sent && pp_ext_cancelling(r->ex)) {
            send_all(r, PPM_TAG_CANCEL);
            r->cancel_sent = 1;
        }
        if (now - r->sent_ns >= beat) {
            send_all(r, PPM_TAG_BEAT);
            r->sent_ns = now;
        }
        check_losses(r, now);
        if (progress) {
            ppm_backoff_reset(&bo);
            continue;
        }
        /* relaxed: our own counter (only this thread adds). */
        uint64_t flying = atomic_load_explicit(&r->flying, memory_order_relaxed);
        /* seq_cst: as in take_some. */
        bool closing = atomic_load_explicit(&r->closing, memory_order_seq_cst);
        bool credit = false;
        for (int q = 0; q < r->size && !credit; q++)
            credit = q != r->me && r->ranks[q].alive && flight_free(&r->ranks[q]);
        if (flying == 0 && credit && !closing && !r->handed_back && bo.idle >= 16)
            /* Nothing to hear soon: sleep where pp_submit wakes workers. */
            pp_ext_wait_work(r->ex, beat / 2 < PPM_ROOT_RING_NS ? beat / 2 : PPM_ROOT_RING_NS);
        else
            ppm_backoff_nap(&bo, flying ? PPM_ROOT_NAP_NS : PPM_ROOT_IDLE_NS);
    }
    send_all(r, PPM_TAG_STOP);
    return NULL;
}

int ppm_root_start(ppm_root *r)
{
    uint64_t now = ppi_now_ns();
    for (int q = 0; q < r->size; q++)
        r->ranks[q].heard_ns = now;
    r->sent_ns = now;
    int rc = pthread_create(&r->thread, NULL, comm_thread, r);
    if (rc)
        return -rc;
    r->thread_started = 1;
    return 0;
}

/* ---- the hooks the core calls (ext_worker.h) ----------------------------- */

static void root_before_stop(void *ctx)
{
    ppm_root *r = ctx;
    /* seq_cst: Dekker pair with take_some (in_take, then closing). */
    atomic_store_explicit(&r->closing, 1, memory_order_seq_cst);
    while (atomic_load_explicit(&r->in_take, memory_order_seq_cst))
        sched_yield(); /* one take and ship: microseconds */
}

static void root_drain(void *ctx)
{
    ppm_root *r = ctx;
    pthread_mutex_lock(&r->lock);
    /* acquire: pairs with flight_end's release (outcomes published). */
    while (atomic_load_explicit(&r->flying, memory_order_acquire)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10000000; /* bounded: a missed broadcast costs 10 ms */
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&r->cv, &r->lock, &ts);
    }
    pthread_mutex_unlock(&r->lock);
}

static void root_destroy(void *ctx)
{
    ppm_root *r = ctx;
    root_before_stop(r); /* idempotent; shutdown already called it */
    root_drain(r);
    /* release: the drained state before the thread's last round. */
    atomic_store_explicit(&r->quit, 1, memory_order_release);
    if (r->thread_started)
        pthread_join(r->thread, NULL);
    /* acquire: as set by the (joined) comm thread. */
    if (!atomic_load_explicit(&r->lost_any, memory_order_acquire))
        MPI_Comm_free(&r->comm); /* collective: every rank frees its duplicate */
    for (int q = 0; q < r->size; q++)
        free(r->ranks[q].fl);
    free(r->ranks);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cv);
    free(r);
}

static void root_stats(void *ctx, uint64_t *tasks, uint64_t *failed)
{
    ppm_root *r = ctx;
    for (int q = 0; q < r->size; q++) {
        /* relaxed: statistics. */
        *tasks += atomic_load_explicit(&r->ranks[q].tasks, memory_order_relaxed);
        *failed += atomic_load_explicit(&r->ranks[q].failed, memory_order_relaxed); /* relaxed: as above */
    }
}

const pp_ext_ops ppm_root_ops = {
    .before_stop = root_before_stop,
    .drain = root_drain,
    .destroy = root_destroy,
    .stats = root_stats,
    .map_lanes = ppm_map_lanes,
};
