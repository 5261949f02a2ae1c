/*
 * mpi_root.c — the root's comm thread: one external worker per remote rank
 * (ext_worker.h) takes tasks from the pool's own ring while that rank has
 * credit, ships them, and publishes the results into the slots as a worker
 * would; a pp_map runner it takes becomes one of the rank's lanes
 * (mpi_map.c), a flight like a task's. The only thread of the root that
 * makes MPI calls on the executor's communicator. docs/mpi.md has the
 * invariants.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "mpi_internal.h"
#include "sync.h"

/* Longest nap of the comm thread with tasks in flight (the back-off's
 * cap: a result of a task in flight for 8 ms or more waits up to this long;
 * a younger one up to 1/8 of its age). */
#define PPM_ROOT_NAP_NS 1000000ull
/* ... and with none in flight and no credit to take with. */
#define PPM_ROOT_IDLE_NS 2000000ull
/* Longest sleep on the ring's eventcount: pp_submit wakes one sleeper, which
 * may be a node worker rather than us, so we look again this soon. */
#define PPM_ROOT_RING_NS 1000000ull

/* A flight's id on the wire: its index in the rank's flights (high half)
 * and the rank's count of flights begun (low half), so a result finds its
 * flight in O(1) and a stale id (a use of the same flight before) matches
 * nothing. */
static uint64_t flight_id(ppm_rank *rk, const ppm_flight *f)
{
    return ((uint64_t)(f - rk->fl) << 32) | (uint32_t)rk->begun++;
}

static ppm_flight *flight_free(ppm_rank *rk)
{
    if (rk->nused >= rk->limit)
        return NULL;
    for (unsigned k = 0; k < rk->credits; k++) {
        unsigned i = (rk->next_free + k) % rk->credits;
        if (!rk->fl[i].used) {
            rk->next_free = (i + 1) % rk->credits;
            return &rk->fl[i];
        }
    }
    return NULL;
}

static ppm_flight *flight_find(ppm_rank *rk, uint64_t id)
{
    uint64_t i = id >> 32;
    if (i >= rk->credits || !rk->fl[i].used || rk->fl[i].id != id)
        return NULL;
    return &rk->fl[i];
}

/* The flight's sends are over: its result came, so the rank received them
 * (@lost false: wait for them, free the TASK message after its last
 * flight); or the rank is lost (@lost: let MPI finish or drop them; a
 * message still sending is left to MPI, a bounded leak per loss). */
static void flight_sends_done(ppm_flight *f, bool lost)
{
    if (f->data_sending) {
        if (lost)
            MPI_Request_free(&f->data_req);
        else
            MPI_Wait(&f->data_req, MPI_STATUS_IGNORE);
        f->data_sending = 0;
    }
    ppm_pkt *p = f->pkt;
    f->pkt = NULL;
    if (!p || --p->refs)
        return;
    int done = 1;
    if (!lost)
        MPI_Wait(&p->req, MPI_STATUS_IGNORE);
    else if (MPI_Test(&p->req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || !done) {
        MPI_Request_free(&p->req);
        return;
    }
    free(p);
}

/* A ring entry taken for rank @rk becomes flight @f (a task, or a map
 * lane: mpi_map.c). Before the take's in_take ends (drain counts it from
 * here). */
void ppm_flight_begin(ppm_root *r, ppm_rank *rk, ppm_flight *f)
{
    f->id = flight_id(rk, f);
    f->used = 1;
    f->kill_sent = 0;
    f->counted = 0;
    f->data_sending = 0;
    f->pkt = NULL;
    f->map = NULL;
    if (!rk->nused++)
        rk->quiet_ns = ppi_now_ns(); /* busy from now: see credits_limit */
    /* relaxed: statistics; flying is read by drain after the release in
     * flying_drop. */
    atomic_fetch_add_explicit(&rk->in_flight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->flying, 1, memory_order_relaxed); /* relaxed: as above */
}

void ppm_flight_count(ppm_rank *rk, ppm_flight *f, int err)
{
    if (f->counted)
        return;
    f->counted = 1;
    /* relaxed: statistics, made visible to the client by the publish's
     * release that follows (the slot's state, or a map's done word). */
    atomic_fetch_add_explicit(&rk->tasks, 1, memory_order_relaxed);
    if (err)
        atomic_fetch_add_explicit(&rk->failed, 1, memory_order_relaxed); /* relaxed: as above */
    atomic_fetch_sub_explicit(&rk->in_flight, 1, memory_order_relaxed); /* relaxed: as above */
}

/* One flight fewer in all; drain's wake at the last. */
static void flying_drop(ppm_root *r)
{
    /* release: the slot's outcome (or the requeue's ring push) is published
     * before drain sees 0. */
    if (atomic_fetch_sub_explicit(&r->flying, 1, memory_order_release) == 1) {
        pthread_mutex_lock(&r->lock);
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->lock);
    }
}

void ppm_flight_end(ppm_root *r, ppm_rank *rk, ppm_flight *f, int err)
{
    ppm_flight_count(rk, f, err);
    f->used = 0;
    rk->nused--;
    flying_drop(r);
}

void ppm_flight_outcome(ppm_root *r, int q, ppm_flight *f, int err, int code, int pid,
                        const char *msg, size_t msg_len, size_t res_size)
{
    ppm_flight_count(&r->ranks[q], f, err);
    pp_ext_publish(r->ex, (uint32_t)q, &f->it, err, code, pid, q, msg, msg_len, res_size);
    ppm_flight_end(r, &r->ranks[q], f, err);
}

/* Fail a flight at the root (the rank never answers for it). */
static void flight_fail(ppm_root *r, int q, ppm_flight *f, int err, const char *msg)
{
    ppm_flight_outcome(r, q, f, err, 0, 0, msg, strlen(msg), 0);
}

/* A flight of lost rank @q: back on the pool's ring if its task may run
 * again (pp_submit_opts.retries; pp_ext_requeue), for another rank or the
 * root's node. Not once closing: the node's workers may have drained the
 * ring already (the in_take guard makes before_stop wait for a requeue in
 * progress, so one that passed the check is taken by them). Returns true
 * if requeued (the flight is free again, not counted as a task of @q). */
static bool flight_retry(ppm_root *r, int q, ppm_flight *f)
{
    ppm_rank *rk = &r->ranks[q];
    /* Counted before the requeue, as an outcome before its publish: the
     * task may run elsewhere and its waiter look at our counters before
     * this thread runs again. Undone if it was not requeued.
     * relaxed: statistics, published by the requeue's release (ring push). */
    atomic_fetch_sub_explicit(&rk->in_flight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rk->retried, 1, memory_order_relaxed); /* relaxed: as above */
    /* seq_cst: Dekker pair with before_stop, as in take_some. */
    atomic_store_explicit(&r->in_take, 1, memory_order_seq_cst);
    bool requeued = !atomic_load_explicit(&r->closing, memory_order_seq_cst) &&
                    pp_ext_requeue(r->ex, (uint32_t)q, &f->it);
    /* release: ends our use of the ring before before_stop returns. */
    atomic_store_explicit(&r->in_take, 0, memory_order_release);
    if (!requeued) {
        /* relaxed: as above (flight_fail counts it as a failed task). */
        atomic_fetch_add_explicit(&rk->in_flight, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&rk->retried, 1, memory_order_relaxed); /* relaxed: as above */
        return false;
    }
    f->used = 0;
    rk->nused--;
    flying_drop(r);
    return true;
}

static bool arg_inline(const ppm_root *r, const ppm_flight *f)
{
    return f->it.arg_size <= r->cfg.eager_limit;
}

/* Send rank @q's batch: one TASK message with a record per flight (header
 * and inline argument), then a TASK_DATA message per argument not inline,
 * straight from slot or arena memory, in record order. */
static void send_batch(ppm_root *r, int q)
{
    ppm_rank *rk = &r->ranks[q];
    unsigned n = rk->nbatch;
    rk->nbatch = 0;
    size_t bytes = rk->batch_bytes;
    rk->batch_bytes = 0;
    if (!n)
        return;
    ppm_pkt *p = malloc(sizeof *p + bytes);
    if (!p) {
        for (unsigned i = 0; i < n; i++)
            flight_fail(r, q, rk->batch[i], -ENOMEM, "out of memory shipping the task");
        return;
    }
    p->refs = n;
    p->len = 0;
    uint64_t now = ppi_now_ns();
    for (unsigned i = 0; i < n; i++) {
        ppm_flight *f = rk->batch[i];
        f->sent_ns = now;
        bool in = arg_inline(r, f);
        ppm_task h = {.id = f->id,
                      .token = f->it.token,
                      .timeout_ns = f->it.timeout_ns,
                      .grace_ns = f->it.grace_ns,
                      .arg_size = f->it.arg_size,
                      .inline_arg = in};
        memcpy(p->buf + p->len, &h, sizeof h);
        p->len += sizeof h;
        if (in && f->it.arg_size)
            memcpy(p->buf + p->len, f->it.arg, f->it.arg_size);
        p->len += in ? f->it.arg_size : 0;
        f->pkt = p;
    }
    int rc = MPI_Isend(p->buf, (int)p->len, MPI_BYTE, q, PPM_TAG_TASK, r->comm, &p->req);
    if (rc != MPI_SUCCESS) {
        /* The rank is unreachable; its loss is declared by the heartbeat
         * watch (at once if ULFM says so), which fails the flights. */
        p->req = MPI_REQUEST_NULL;
        ppm_ulfm_note_failures(r, rc);
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        ppm_flight *f = rk->batch[i];
        if (arg_inline(r, f))
            continue;
        f->data_sending = MPI_Isend(f->it.arg, (int)f->it.arg_size, MPI_BYTE, q,
                                    PPM_TAG_TASK_DATA, r->comm, &f->data_req) == MPI_SUCCESS;
    }
}

/* Add flight @f to rank @q's batch (sending the batch first when full). */
static void batch_add(ppm_root *r, int q, ppm_flight *f)
{
    ppm_rank *rk = &r->ranks[q];
    if (f->it.arg_size > INT_MAX) {
        flight_fail(r, q, f, PP_ETOOBIG, "argument too large for one MPI message");
        return;
    }
    size_t rec = sizeof(ppm_task) + (arg_inline(r, f) ? f->it.arg_size : 0);
    if (rk->nbatch &&
        (rk->nbatch == PPM_BATCH_MAX || rk->batch_bytes + rec > PPM_BATCH_BYTES))
        send_batch(r, q);
    rk->batch[rk->nbatch++] = f;
    rk->batch_bytes += rec;
}

/* ---- adaptive credits ------------------------------------------------
 * With cfg.credits 0 a rank of w workers may hold
 *     limit = w + round(w * transit / run)      (at most `credits`)
 * tasks: transit is the mean time a task spends travelling (its flight time
 * at the root less the time the rank held it: both messages, both loops'
 * wake-ups), run the mean time one runs there (the rank reports both the
 * time it held a task and, about, how long it ran: from when a worker was
 * free for it). The extra tasks are what the rank's workers finish while a
 * result travels back and the next task comes: so they are not idle for
 * the round trip, and a shipped task waits there about one transit time
 * (w * transit / run tasks ahead of it, run each, w at a time). Tasks long
 * against the round trip (run > 2 w transit) get no extra credit: RUNNING
 * at the root means running there or about to, as with credits = w. Queueing
 * does not feed back (neither transit nor run contains it). A rank that
 * holds tasks but sent no result for longer than twice transit + run (tasks
 * got longer) counts as running them that long already, so a burst of long
 * tasks after short ones stops the prefetch within about one round trip.
 * Means are EWMAs over 8 results. */
static uint64_t ewma8(uint64_t mean, uint64_t x, bool first)
{
    return first ? x : mean - mean / 8 + x / 8;
}

/* A result of a flight sent at @sent_ns came at @now (@held_us, @run_us:
 * how long the rank held it and ran it). A map lane's chunk counts as one
 * task (it is one there: mpi_map.c). */
void ppm_credits_learn(ppm_rank *rk, uint64_t sent_ns, uint64_t now, uint32_t held_us,
                       uint32_t run_us)
{
    if (!rk->adaptive)
        return;
    uint64_t flight = now - sent_ns, held = (uint64_t)held_us * 1000;
    uint64_t run = (uint64_t)run_us * 1000;
    held = held < flight ? held : flight;
    run = run < held ? run : held;
    rk->quiet_ns = now;
    bool first = rk->run_ns == 0 && rk->transit_ns == 0;
    rk->transit_ns = ewma8(rk->transit_ns, flight - held, first);
    rk->run_ns = ewma8(rk->run_ns, run, first);
}

/* The rank's limit now (see above). O(1): it runs before every take. */
static unsigned credits_limit(const ppm_rank *rk, uint64_t now)
{
    if (!rk->adaptive)
        return rk->credits;
    uint64_t w = (uint64_t)(rk->workers > 0 ? rk->workers : 1);
    uint64_t run = rk->run_ns, transit = rk->transit_ns;
    /* No result for this long while it holds tasks: they run longer. */
    uint64_t quiet = rk->nused && now > rk->quiet_ns ? now - rk->quiet_ns : 0;
    if (quiet > 2 * (transit + run))
        run = quiet;
    if (run < 1000)
        run = 1000; /* 1 us: the estimate's resolution */
    uint64_t lim = w + (w * transit + run / 2) / run;
    return lim < rk->credits ? (unsigned)lim : rk->credits;
}

/* Take entries for the ranks with credit: one for each in turn (a burst is
 * spread evenly), until the ring is empty (or hands back a map runner) or
 * no rank has credit. Returns true if it took any. */
static bool take_round(ppm_root *r)
{
    bool any = false;
    for (;;) {
        bool took = false;
        for (int k = 0; k < r->size; k++) {
            int q = (r->rr + k) % r->size;
            ppm_rank *rk = &r->ranks[q];
            if (q == r->me || !rk->alive)
                continue;
            ppm_flight *f = flight_free(rk);
            if (!f)
                continue;
            bool handed_back = false;
            if (!pp_ext_take(r->ex, (uint32_t)q, &f->it, ppm_map_lane_free(rk), &handed_back)) {
                /* empty, or a map runner handed back (no lane free on q):
                 * let the node or the next round take it */
                r->handed_back = handed_back;
                r->rr = (q + 1) % r->size;
                return any;
            }
            ppm_flight_begin(r, rk, f);
            if (f->it.map_runner)
                ppm_map_lane_open(r, q, f); /* mpi_map.c */
            else
                batch_add(r, q, f);
            took = any = true;
        }
        r->rr = (r->rr + 1) % r->size;
        if (!took)
            return any;
    }
}

/* Take and ship what the ranks' credit allows, unless closing. Returns
 * true if it shipped any. */
static bool take_some(ppm_root *r)
{
    /* seq_cst: Dekker pair with before_stop (closing, then in_take). */
    atomic_store_explicit(&r->in_take, 1, memory_order_seq_cst);
    bool any = false;
    if (!atomic_load_explicit(&r->closing, memory_order_seq_cst)) {
        uint64_t now = ppi_now_ns();
        for (int q = 0; q < r->size; q++)
            if (q != r->me)
                r->ranks[q].limit = credits_limit(&r->ranks[q], now);
        any = take_round(r);
        for (int q = 0; q < r->size; q++)
            send_batch(r, q);
    }
    /* release: ends our use of the ring before before_stop returns. */
    atomic_store_explicit(&r->in_take, 0, memory_order_release);
    return any;
}

static const char *result_space_msg(int err)
{
    return err == PP_ETOOBIG ? "result larger than max_result_size"
                             : "no room in the arena for the result";
}

/* ---- result data, received without blocking ------------------------------
 * A RES record whose result does not travel inline announces one RES_DATA
 * message from the same rank. The comm thread posts its receive and goes
 * on (poll_data completes it): blocking there would stop the heartbeats
 * and every other rank's traffic for as long as the data takes (a serving
 * rank blocked sending to us meanwhile is ended by its watchdog), and for
 * ever if the rank died between the two messages (over TCP a receive from
 * a dead peer never returns; a message never sent never comes). A rank
 * whose announced data made no progress for node_timeout is stalled:
 * check_losses declares it lost (its flights fail PP_ENODE or are retried).
 * A receive given up on is cancelled; if MPI may still write its buffer
 * (the transfer had begun), the buffer is left to MPI for ever: an arena
 * block is taken out of its slot (pp_ext_result_abandon), a heap buffer is
 * not freed. Same price as the serving rank's watchdog: one message must
 * progress within node_timeout. */

/* Give up a posted receive; true if MPI no longer holds its buffer. */
static bool recv_give_up(MPI_Request *req)
{
    MPI_Cancel(req);
    /* A receive not yet matched is cancelled at once; one whose transfer
     * began completes, or stays MPI's. */
    for (int i = 0; i < 10; i++) {
        int done = 0;
        if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done)
            return true;
        ppm_sleep_ns(1000000);
    }
    MPI_Request_free(req);
    return false;
}

/* Receive (and then drop) the next DATA message @src sends with @tag. */
static void drop_data(ppm_root *r, int src, int tag, uint64_t size)
{
    ppm_rank *rk = &r->ranks[src];
    void *buf = malloc(size ? size : 1);
    if (r->ndrops == r->drops_cap) {
        unsigned cap = r->drops_cap ? 2 * r->drops_cap : 8;
        ppm_drop *d = realloc(r->drops, cap * sizeof *d);
        if (d) {
            r->drops = d;
            r->drops_cap = cap;
        }
    }
    if (!buf || r->ndrops == r->drops_cap ||
        MPI_Irecv(buf, (int)size, MPI_BYTE, src, tag, r->comm, &r->drops[r->ndrops].req) !=
            MPI_SUCCESS) {
        /* Without it that rank's next data would be taken for this one. */
        free(buf);
        if (rk->alive)
            rk->stalled = true;
        return;
    }
    r->drops[r->ndrops].buf = buf;
    r->drops[r->ndrops].src = src;
    r->drops[r->ndrops].posted_ns = ppi_now_ns();
    r->ndrops++;
}

/* Whether a data receive from @rk posted at @posted is overdue: no data
 * from it completed for node_timeout since. */
static bool data_overdue(const ppm_root *r, const ppm_rank *rk, uint64_t posted, uint64_t now)
{
    uint64_t since = rk->data_ns > posted ? rk->data_ns : posted;
    /* @now may be older than @posted (the loop's clock, read before the
     * messages that posted it). */
    return now > since && now - since >= ppi_s_to_ns(r->cfg.node_timeout);
}

/* Flight @f's pending data receive is given up (its rank is lost). */
static void data_abandon(ppm_root *r, ppm_rank *rk, ppm_flight *f)
{
    if (!f->rpending)
        return;
    if (recv_give_up(&f->rreq))
        free(f->rbounce);
    else if (!f->rbounce)
        pp_ext_result_abandon(r->ex, &f->it); /* MPI may still write the block */
    f->rbounce = NULL;
    f->rpending = 0;
    rk->npending--;
}

/* Post the receive of flight @f's RES_DATA (@h's result, @size bytes) into
 * @dst. Returns 0, or -ENOMEM (no bounce buffer: the data is dropped). */
static int data_post(ppm_root *r, int src, ppm_flight *f, const ppm_res *h, void *dst,
                     uint64_t size)
{
    ppm_rank *rk = &r->ranks[src];
    void *buf = dst;
    f->rbounce = NULL;
    if (pp_ext_result_is_inline(r->ex, &f->it, dst)) {
        /* The inline area is reused by the slot's next task: MPI never
         * gets it, so a given-up receive cannot write it late. */
        f->rbounce = malloc(size);
        if (!f->rbounce) {
            drop_data(r, src, PPM_TAG_RES_DATA, size);
            return -ENOMEM;
        }
        buf = f->rbounce;
    }
    int rc = MPI_Irecv(buf, (int)size, MPI_BYTE, src, PPM_TAG_RES_DATA, r->comm, &f->rreq);
    if (rc != MPI_SUCCESS) {
        ppm_ulfm_note_failures(r, rc);
        free(f->rbounce);
        f->rbounce = NULL;
        rk->stalled = true;
        return 0; /* the flight fails with the rank's loss */
    }
    f->rpending = 1;
    f->rdst = dst;
    f->rsize = size;
    f->rposted_ns = ppi_now_ns();
    f->rcode = h->code;
    f->rpid = h->pid;
    rk->npending++;
    return 0;
}

/* Complete the data receives that are done (publish their outcomes) and
 * the drops; mark ranks whose data stopped coming as stalled. Returns true
 * if any moved. */
static bool poll_data(ppm_root *r, uint64_t now)
{
    bool any = false;
    for (int q = 0; q < r->size; q++) {
        ppm_rank *rk = &r->ranks[q];
        for (unsigned i = 0; rk->npending && i < rk->credits; i++) {
            ppm_flight *f = &rk->fl[i];
            if (!f->used || !f->rpending)
                continue;
            int done = 0;
            int rc = MPI_Test(&f->rreq, &done, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS) {
                ppm_ulfm_note_failures(r, rc);
                rk->stalled = true;
                continue;
            }
            if (!done) {
                if (data_overdue(r, rk, f->rposted_ns, now))
                    rk->stalled = true;
                continue;
            }
            any = true;
            rk->data_ns = now;
            f->rpending = 0;
            rk->npending--;
            if (f->rbounce) {
                memcpy(f->rdst, f->rbounce, f->rsize);
                free(f->rbounce);
                f->rbounce = NULL;
            }
            ppm_flight_outcome(r, q, f, 0, f->rcode, f->rpid, "", 0, f->rsize);
        }
    }
    for (unsigned k = 0; k < r->ndrops;) {
        ppm_drop *d = &r->drops[k];
        ppm_rank *rk = &r->ranks[d->src];
        int done = 0;
        if (MPI_Test(&d->req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done) {
            if (!data_overdue(r, rk, d->posted_ns, now)) {
                k++;
                continue;
            }
            if (rk->alive)
                rk->stalled = true;
            done = recv_give_up(&d->req);
        } else {
            rk->data_ns = now;
            done = 1;
        }
        if (done)
            free(d->buf); /* else MPI may still write it: left to MPI */
        *d = r->drops[--r->ndrops];
        any = true;
    }
    return any;
}

/* One outcome record from @src (header @h, then its message and inline
 * result at @body): put it in its slot and publish it. Receives its
 * RES_DATA message if it has one. */
static void take_result(ppm_root *r, int src, const ppm_res *h, const char *body)
{
    const char *msg = body;
    const char *res = msg + h->msg_len;
    ppm_rank *rk = &r->ranks[src];
    ppm_flight *f = flight_find(rk, h->id);
    bool has_data = !h->err && h->res_size && !h->inline_res;
    if (rk->stalled)
        return; /* its data stopped coming: lost at check_losses; nothing more is read */
    if (!f || f->map || !rk->alive) {
        if (has_data)
            drop_data(r, src, PPM_TAG_RES_DATA, h->res_size);
        return; /* a rank declared lost answered late: its futures failed already */
    }
    flight_sends_done(f, false);
    ppm_credits_learn(rk, f->sent_ns, ppi_now_ns(), h->held_us, h->run_us);
    int err = h->err;
    if (!err && h->res_size) {
        int serr = 0;
        void *dst = pp_ext_result_space(r->ex, &f->it, h->res_size, &serr);
        if (!dst) {
            if (has_data)
                drop_data(r, src, PPM_TAG_RES_DATA, h->res_size);
            const char *m = result_space_msg(serr);
            ppm_flight_outcome(r, src, f, serr, 0, h->pid, m, strlen(m), 0);
            return;
        }
        if (has_data) { /* straight into the arena block; published by poll_data */
            int prc = data_post(r, src, f, h, dst, h->res_size);
            if (!prc)
                return;
            const char *m = "out of memory receiving the result";
            ppm_flight_outcome(r, src, f, prc, 0, h->pid, m, strlen(m), 0);
            return;
        }
        memcpy(dst, res, h->res_size);
    }
    ppm_flight_outcome(r, src, f, err, h->code, h->pid, msg, h->msg_len, err ? 0 : h->res_size);
}

/* RES from @src: its records in order (a truncated record ends it). */
static void on_res(ppm_root *r, int src, const char *buf, size_t len)
{
    size_t at = 0;
    while (len - at >= sizeof(ppm_res)) {
        ppm_res h;
        memcpy(&h, buf + at, sizeof h);
        at += sizeof h;
        uint64_t body = (uint64_t)h.msg_len + (h.inline_res && !h.err ? h.res_size : 0);
        if (body > len - at)
            return;
        take_result(r, src, &h, buf + at);
        at += (size_t)body;
    }
}

/* Receive every message waiting, each handled by its tag's function.
 * Returns true if there was one. */
static bool poll_messages(ppm_root *r, uint64_t now)
{
    bool any = false;
    for (;;) {
        MPI_Message m;
        MPI_Status st;
        int rc = MPI_SUCCESS;
        if (ppm_probe(MPI_ANY_SOURCE, r->comm, &m, &st, &rc) != 1) {
            if (rc != MPI_SUCCESS)
                ppm_ulfm_note_failures(r, rc);
            return any;
        }
        any = true;
        int src = st.MPI_SOURCE, n = 0;
        MPI_Get_count(&st, MPI_BYTE, &n);
        char stackbuf[2048];
        char *buf = (size_t)n <= sizeof stackbuf ? stackbuf : malloc((size_t)n);
        if (!buf) {
            MPI_Mrecv(NULL, 0, MPI_BYTE, &m, MPI_STATUS_IGNORE); /* truncates */
            continue;
        }
        MPI_Mrecv(buf, n, MPI_BYTE, &m, MPI_STATUS_IGNORE);
        if (src >= 0 && src < r->size && src != r->me) {
            r->ranks[src].heard_ns = now;
            switch (st.MPI_TAG) {
            case PPM_TAG_RES: on_res(r, src, buf, (size_t)n); break;
            case PPM_TAG_MAP_RES: ppm_map_take_result(r, src, buf, (size_t)n); break;
            case PPM_TAG_SHARE_ACK: ppm_share_on_ack(r, src, buf, (size_t)n); break;
            default: break; /* BEAT */
            }
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
            /* A lane's runner is never killed (pp_map stops it by closing
             * its window), and its id names a chunk task there. */
            if (!f->used || f->map || f->kill_sent ||
                pp_ext_state(r->ex, (uint32_t)q, &f->it, &grace) != 2)
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
        int rc = MPI_Isend(NULL, 0, MPI_BYTE, q, tag, r->comm, &req);
        if (rc == MPI_SUCCESS)
            MPI_Request_free(&req);
        else
            ppm_ulfm_note_failures(r, rc);
    }
}

/* Ranks silent for node_timeout are lost: their tasks fail (PP_ENODE). */
static void check_losses(ppm_root *r, uint64_t now)
{
    uint64_t limit = ppi_s_to_ns(r->cfg.node_timeout);
    for (int q = 0; q < r->size; q++) {
        ppm_rank *rk = &r->ranks[q];
        if (q == r->me || !rk->alive || (!rk->stalled && now - rk->heard_ns < limit))
            continue;
        rk->alive = 0;
        /* release: destroy reads it after joining us anyway; stats relaxed. */
        atomic_store_explicit(&r->lost_any, 1, memory_order_release);
        char msg[96];
        if (rk->heard_ns == 0) /* ppm_ulfm_note_failures */
            snprintf(msg, sizeof msg, "rank %d lost: MPI reports it failed (ULFM)", q);
        else if (rk->stalled)
            snprintf(msg, sizeof msg, "rank %d lost: a result it announced did not come in %.1f s",
                     q, r->cfg.node_timeout);
        else
            snprintf(msg, sizeof msg, "rank %d lost: silent for %.1f s", q, r->cfg.node_timeout);
        for (unsigned i = 0; i < rk->credits; i++) {
            ppm_flight *f = &rk->fl[i];
            if (!f->used)
                continue;
            if (f->map) { /* a map lane: its chunk fails, the lane closes */
                ppm_map_lane_lost(r, q, f, msg);
                continue;
            }
            data_abandon(r, rk, f);
            flight_sends_done(f, true);
            if (!flight_retry(r, q, f))
                flight_fail(r, q, f, PP_ENODE, msg);
        }
    }
}

/* Sleep after a round without progress: on the ring's eventcount when a
 * rank has credit (pp_submit wakes us), else a plain nap; see
 * ppm_backoff_ns for how long. */
static void idle_wait(ppm_root *r, ppm_backoff *bo, uint64_t now, uint64_t beat)
{
    /* relaxed: our own counter (only this thread adds). */
    uint64_t flying = atomic_load_explicit(&r->flying, memory_order_relaxed);
    /* seq_cst: as in take_some. */
    bool closing = atomic_load_explicit(&r->closing, memory_order_seq_cst);
    bool credit = false;
    for (int q = 0; q < r->size && !credit; q++)
        credit = q != r->me && r->ranks[q].alive && r->ranks[q].nused < r->ranks[q].limit;
    bool ring = credit && !closing && !r->handed_back;
    uint64_t ns = ppm_backoff_ns(bo, now, flying ? PPM_ROOT_NAP_NS : PPM_ROOT_IDLE_NS);
    if (ring && flying == 0)
        /* Nothing to hear soon: sleep where pp_submit wakes workers. */
        pp_ext_wait_work(r->ex, beat / 2 < PPM_ROOT_RING_NS ? beat / 2 : PPM_ROOT_RING_NS);
    else if (ring)
        pp_ext_wait_work(r->ex, ns); /* a result or a submit, whichever first */
    else
        ppm_sleep_ns(ns);
}

static void *comm_thread(void *arg)
{
    ppm_root *r = arg;
    /* Our naps are short: sleep them, not Linux's default 50 us slack. */
    prctl(PR_SET_TIMERSLACK, PPM_TIMER_SLACK_NS, 0, 0, 0);
    ppm_backoff bo;
    ppm_backoff_reset(&bo, ppi_now_ns());
    uint64_t beat = ppi_s_to_ns(r->cfg.heartbeat);
    for (;;) {
        uint64_t now = ppi_now_ns();
        bool progress = poll_messages(r, now);
        progress |= poll_data(r, now);
        /* acquire: pairs with destroy's release (everything drained before). */
        if (atomic_load_explicit(&r->quit, memory_order_acquire))
            break;
        r->handed_back = false;
        progress |= take_some(r);
        progress |= ppm_map_lanes_step(r); /* mpi_map.c */
        progress |= ppm_share_progress(r);
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
        if (progress)
            ppm_backoff_reset(&bo, now);
        else
            idle_wait(r, &bo, now, beat);
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
        sched_yield(); /* one take round: the credit left, then a send per rank */
}

static void root_drain(void *ctx)
{
    ppm_root *r = ctx;
    pthread_mutex_lock(&r->lock);
    /* acquire: pairs with flying_drop's release (outcomes published). */
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
    for (int q = 0; q < r->size; q++) {
        free(r->ranks[q].fl);
        free(r->ranks[q].lane);
    }
    free(r->ranks);
    for (unsigned k = 0; k < r->ndrops; k++)
        if (recv_give_up(&r->drops[k].req))
            free(r->drops[k].buf);
    free(r->drops);
    ppm_share_fini(r);
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
