/*
 * ext_worker.c — external workers (see ext_worker.h): the claim and publish
 * of worker.c, done by a client thread for a task that runs elsewhere.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "ext_worker.h"
#include "fnmap.h"
#include "map_internal.h"
#include "process.h"
#include "tunables.h"

int pp_ext_attach(pp_executor *ex, const pp_ext_ops *ops, void *ctx, int local_rank)
{
    if (!ex || !ops)
        return -EINVAL;
    if (ex->ext_ops)
        return -EALREADY;
    ex->ext_ctx = ctx;
    ex->ext_rank1 = local_rank + 1;
    ex->ext_runner_token = ppi_fn_encode(ex->seg.modtab, (uintptr_t)ppi_map_runner);
    /* release: the hooks are read by other client threads (shutdown, stats)
     * after an acquire load of ext_ops. */
    atomic_store_explicit(&ex->ext_ops, ops, memory_order_release);
    return 0;
}

void *pp_ext_ctx(const pp_executor *ex, const pp_ext_ops *ops)
{
    /* acquire: pairs with pp_ext_attach's release. */
    if (!ex || atomic_load_explicit(&ex->ext_ops, memory_order_acquire) != ops)
        return NULL;
    return ex->ext_ctx;
}

bool pp_ext_cancelling(pp_executor *ex)
{
    /* relaxed: a polled hint, as pp_task_should_stop's. */
    return atomic_load_explicit(&ex->seg.hdr->cancel_flag, memory_order_relaxed) != 0;
}

const void *pp_ext_modtab(pp_executor *ex, size_t *bytes)
{
    const ppi_modtab *t = ex->seg.modtab;
    *bytes = (size_t)ppi_modtab_bytes(t->cap, t->strings_cap);
    return t;
}

/* The adopted table (one per process, see pp_ext_modtab_adopt). */
static ppi_modtab *adopted;

int pp_ext_modtab_adopt(const void *tab, size_t bytes)
{
    if (bytes < sizeof(ppi_modtab))
        return -EINVAL;
    const ppi_modtab *t = tab;
    if (ppi_modtab_bytes(t->cap, t->strings_cap) != bytes || t->n > t->cap)
        return -EINVAL;
    ppi_modtab *copy = malloc(bytes);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, tab, bytes);
    pp_ext_modtab_drop();
    adopted = copy;
    /* Another exec of the program (or another program): by build-id. */
    ppi_modtab_resolve(adopted, false);
    return 0;
}

void pp_ext_modtab_drop(void)
{
    free(adopted);
    adopted = NULL;
}

pp_fn pp_ext_fn_decode(uint64_t token, const char **why)
{
    if (!adopted) {
        if (why)
            *why = "no module table";
        return NULL;
    }
    return (pp_fn)ppi_fn_decode(adopted, token, why);
}

/* Put a map runner's entry back for the node's workers and wake one. */
static void hand_back(pp_executor *ex, uint64_t e)
{
    ppi_hdr *h = ex->seg.hdr;
    if (!ppi_tasks_push_wait(&ex->seg, e, PPI_CRING_PUSH_TIMEOUT_NS))
        ppi_pool_break(&ex->seg, 0, 0, "the task ring is stuck (an external worker could not hand back an entry)");
    ppi_ec_notify(&h->work_ec, 1);
}

int pp_ext_submit_adopt(pp_executor *ex, pp_fn fn, void *block, size_t size,
                        const pp_submit_opts *opts, pp_future **out)
{
    uint64_t off = pp_shm_offset(ex, block);
    if (off == UINT64_MAX || size <= ex->seg.inline_size) {
        int rc = pp_submit_ex(ex, fn, block, size, opts, out);
        pp_shm_free(ex, block);
        return rc;
    }
    ppi_adopt_off = off;
    int rc = pp_submit_ex(ex, fn, block, size, opts, out);
    if (ppi_adopt_off) { /* not taken: copied (backlog) or refused */
        ppi_adopt_off = 0;
        pp_shm_free(ex, block);
    }
    return rc;
}

int pp_ext_take(pp_executor *ex, uint32_t xid, pp_ext_item *it, bool runner_ok,
                bool *handed_back)
{
    ppi_seg *seg = &ex->seg;
    *handed_back = false;
    uint64_t e;
    /* Every shard, starting at one chosen by our id, so that several
     * external workers do not all start on shard 0. */
    if (!ppi_tasks_pop_rec(seg, seg->nshards > 1 ? xid % seg->nshards : 0, &e, NULL, NULL))
        return 0;
    uint32_t idx = ppi_entry_idx(e), gen = ppi_entry_gen(e);
    ppi_slot *sl = ppi_slot_at(seg, idx);
    /* acquire: pairs with the client's release of QUEUED (payload visible). */
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
    for (;;) {
        if (ppi_st_gen(w) != gen)
            return 0;
        uint32_t st = ppi_st_state(w), fl = ppi_st_flags(w);
        uint64_t nw;
        if (st == PPI_S_QUEUED) {
            /* relaxed: set once before the comm thread that calls us was
             * started (pthread_create orders it). */
            const pp_ext_ops *ops = atomic_load_explicit(&ex->ext_ops, memory_order_relaxed);
            if (sl->fn == ex->ext_runner_token && (!ops->map_lanes || !runner_ok)) {
                hand_back(ex, e);
                *handed_back = true;
                return 0;
            }
            nw = ppi_st_make(gen, PPI_S_RUNNING, fl, PPI_EXT_WID_BASE + xid);
        } else if (st == PPI_S_CANCELLED) {
            nw = ppi_st_make(gen, PPI_S_RECLAIM, 0, PPI_NO_WORKER);
        } else {
            return 0; /* failed by a broken-pool sweep */
        }
        /* acq_rel: as a worker's claim (worker.c slot_claim): acquire the
         * payload, and from here the client's cancel CAS fails. */
        if (atomic_compare_exchange_weak_explicit(&sl->state, &w, nw, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            if (st == PPI_S_CANCELLED) {
                /* release: the client's reclaim scan reads the slot after it. */
                atomic_fetch_add_explicit(&seg->hdr->reclaim, 1, memory_order_release);
                ppi_ec_notify(&seg->hdr->done_ec, 1);
                return 0;
            }
            break;
        }
    }
    it->idx = idx;
    it->gen = gen;
    it->token = sl->fn;
    it->arg_size = sl->arg_size;
    it->arg = sl->arg_off ? (const void *)(seg->base + sl->arg_off)
                          : (const void *)ppi_slot_arg_inline(seg, sl);
    it->timeout_ns = sl->timeout_ns;
    /* relaxed: a default; pp_ext_state re-reads it after KILLING (acquire). */
    it->grace_ns = atomic_load_explicit(&sl->kill_grace_ns, memory_order_relaxed);
    it->map_runner = sl->fn == ex->ext_runner_token;
    sl->started_ns = ppi_now_ns(); /* RUNNING(us): ours to write */
    return 1;
}

int pp_ext_state(pp_executor *ex, uint32_t xid, const pp_ext_item *it, uint64_t *grace_ns)
{
    ppi_slot *sl = ppi_slot_at(&ex->seg, it->idx);
    /* acquire: pairs with pp_future_kill's release CAS (grace visible). */
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
    if (ppi_st_gen(w) != it->gen || ppi_st_worker(w) != PPI_EXT_WID_BASE + xid)
        return 0;
    if (ppi_st_state(w) == PPI_S_KILLING) {
        if (grace_ns)
            /* relaxed: ordered by the acquire load of KILLING above. */
            *grace_ns = atomic_load_explicit(&sl->kill_grace_ns, memory_order_relaxed);
        return 2;
    }
    return ppi_st_state(w) == PPI_S_RUNNING ? 1 : 0;
}

void *pp_ext_result_space(pp_executor *ex, const pp_ext_item *it, size_t size, int *err)
{
    ppi_seg *seg = &ex->seg;
    ppi_slot *sl = ppi_slot_at(seg, it->idx);
    *err = 0;
    ppi_arena_free_rec(seg, &sl->res_off);
    if (size > seg->hdr->max_result) {
        *err = PP_ETOOBIG;
        return NULL;
    }
    if (size <= seg->inline_size)
        return ppi_slot_res_inline(seg, sl);
    /* Recorded in the slot from the start, as a worker's result block: a
     * broken-pool sweep or the client's reclaim frees it. */
    if (!ppi_arena_alloc_rec(seg, size, &sl->res_off)) {
        *err = -ENOMEM;
        return NULL;
    }
    return seg->base + sl->res_off;
}

bool pp_ext_result_is_inline(pp_executor *ex, const pp_ext_item *it, const void *p)
{
    return p == ppi_slot_res_inline(&ex->seg, ppi_slot_at(&ex->seg, it->idx));
}

void pp_ext_result_abandon(pp_executor *ex, const pp_ext_item *it)
{
    ppi_slot *sl = ppi_slot_at(&ex->seg, it->idx);
    /* Only the comm thread acting as the slot's worker writes res_off now
     * (RUNNING(xid)); a broken-pool sweep or reclaim reads it later and
     * then finds no block to free. */
    sl->res_off = 0;
}

/* The outcome fields, written while the slot is RUNNING/KILLING(xid). */
static void write_outcome(ppi_seg *seg, ppi_slot *sl, int err, int code, int pid, int rank,
                          const char *msg, size_t msg_len, size_t res_size)
{
    sl->err = err;
    sl->code = code;
    sl->pid = pid;
    sl->rank1 = rank + 1;
    if (err) {
        ppi_arena_free_rec(seg, &sl->res_off);
        if (msg_len > PP_MESSAGE_MAX)
            msg_len = PP_MESSAGE_MAX;
        char *area = ppi_slot_res_inline(seg, sl);
        if (msg_len)
            memmove(area, msg, msg_len);
        area[msg_len] = 0;
        sl->msg_len = (uint32_t)msg_len;
        sl->res_size = 0;
    } else {
        sl->msg_len = 0;
        sl->res_size = res_size;
        if (!res_size)
            ppi_arena_free_rec(seg, &sl->res_off);
    }
}

void pp_ext_publish(pp_executor *ex, uint32_t xid, const pp_ext_item *it, int err, int code,
                    int pid, int rank, const char *msg, size_t msg_len, size_t res_size)
{
    ppi_seg *seg = &ex->seg;
    ppi_slot *sl = ppi_slot_at(seg, it->idx);
    uint32_t wid = PPI_EXT_WID_BASE + xid;
    /* acquire: the killer's kill_reason (see pp_ext_state). */
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
    if (ppi_st_gen(w) != it->gen || ppi_st_worker(w) != wid ||
        (ppi_st_state(w) != PPI_S_RUNNING && ppi_st_state(w) != PPI_S_KILLING))
        return; /* a broken-pool sweep failed it: the sweeper owns the outcome */
    if (ppi_st_state(w) == PPI_S_KILLING && err != PP_EKILLED) {
        /* Killed here before the serving node confirmed: as a worker that
         * returns during its grace period (it may not publish), the task
         * counts as killed. */
        char buf[64];
        int n = snprintf(buf, sizeof buf, "killed on request (rank %d)", rank);
        write_outcome(seg, sl, PP_EKILLED, 0, pid, rank, buf, (size_t)(n < 0 ? 0 : n), 0);
    } else {
        write_outcome(seg, sl, err, code, pid, rank, msg, msg_len, res_size);
    }
    if (sl->err == PP_EKILLED)
        /* relaxed: a statistics counter. */
        atomic_fetch_add_explicit(&seg->hdr->killed, 1, memory_order_relaxed);
    uint32_t st = sl->err ? PPI_S_FAILED : PPI_S_DONE;
    uint64_t nw;
    do {
        if (ppi_st_gen(w) != it->gen || ppi_st_worker(w) != wid ||
            (ppi_st_state(w) != PPI_S_RUNNING && ppi_st_state(w) != PPI_S_KILLING))
            return;
        if (ppi_st_flags(w) & PPI_F_ORPHAN) {
            /* Nobody reads it: free the blocks while the slot is ours (as
             * worker.c's slot_publish). */
            ppi_arena_free_rec(seg, &sl->res_off);
            ppi_arena_free_rec(seg, &sl->arg_off);
            nw = ppi_st_make(it->gen, PPI_S_RECLAIM, 0, PPI_NO_WORKER);
        } else {
            nw = ppi_st_make(it->gen, st, 0, wid);
        }
        /* release: publishes the outcome fields; pairs with the waiter's
         * acquire load of the state. */
    } while (!atomic_compare_exchange_weak_explicit(&sl->state, &w, nw, memory_order_release,
                                                    memory_order_relaxed));
    ppi_slot_finished(seg, it->idx, w, nw);
}

int pp_ext_requeue(pp_executor *ex, uint32_t xid, const pp_ext_item *it)
{
    ppi_seg *seg = &ex->seg;
    ppi_slot *sl = ppi_slot_at(seg, it->idx);
    uint32_t wid = PPI_EXT_WID_BASE + xid;
    /* relaxed: RUNNING(xid) is ours (only we move it, except the client's
     * kill CAS and a sweep, both re-checked by the CAS below). */
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_relaxed);
    if (ppi_st_gen(w) != it->gen || ppi_st_worker(w) != wid ||
        ppi_st_state(w) != PPI_S_RUNNING || (ppi_st_flags(w) & PPI_F_ORPHAN) || sl->retries == 0)
        return 0;
    /* Ours while RUNNING(xid) (as write_outcome's fields before publish's
     * CAS): the next claimer reads them after the CAS below. Only this call
     * reads retries after bind. */
    sl->retries--;
    sl->started_ns = 0;
    uint64_t nw = ppi_st_make(it->gen, PPI_S_QUEUED, ppi_st_flags(w), PPI_NO_WORKER);
    /* release: the slot fields above (and the unchanged payload) to the
     * next claimer's acq_rel claim CAS. Fails if the client's kill (KILLING)
     * or a broken-pool sweep (FAILED), or the client's release (ORPHAN
     * flag), came first: then the caller publishes the failure. */
    if (!atomic_compare_exchange_strong_explicit(&sl->state, &w, nw, memory_order_release,
                                                 memory_order_relaxed))
        return 0; /* this slot use ends there: its retries are read no more */
    /* From here the slot is an ordinary QUEUED one: a cancel may win it
     * before anyone pops the entry, which is then recycled as any
     * cancelled entry. Same push as a map runner handed back. */
    hand_back(ex, ppi_entry(it->idx, it->gen));
    return 1;
}

void pp_ext_wait_work(pp_executor *ex, uint64_t ns)
{
    ppi_hdr *h = ex->seg.hdr;
    uint32_t seq = ppi_ec_prepare(&h->work_ec);
    /* acquire: pairs with ppi_request_stop's release. */
    if (ppi_tasks_nonempty(&ex->seg, 0) || atomic_load_explicit(&h->stop, memory_order_acquire)) {
        ppi_ec_cancel(&h->work_ec);
        return;
    }
    ppi_ec_sleep(&h->work_ec, seq, ns);
}

uint32_t pp_ext_done_prepare(pp_executor *ex)
{
    /* ordering: ppi_ec_prepare's seq_cst (the caller's re-check follows). */
    return ppi_ec_prepare(&ex->seg.hdr->done_ec);
}

void pp_ext_done_sleep(pp_executor *ex, uint32_t seq, uint64_t ns)
{
    ppi_ec_sleep(&ex->seg.hdr->done_ec, seq, ns);
}

void pp_ext_done_cancel(pp_executor *ex)
{
    ppi_ec_cancel(&ex->seg.hdr->done_ec);
}

uint32_t ppi_ext_map_lanes(pp_executor *ex)
{
    /* acquire: pairs with pp_ext_attach's release (the hooks). */
    const pp_ext_ops *ops = atomic_load_explicit(&ex->ext_ops, memory_order_acquire);
    return ops && ops->map_lanes ? ops->map_lanes(ex->ext_ctx) : 0;
}

bool pp_ext_broken(pp_executor *ex)
{
    /* acquire: pairs with ppi_pool_break's release. */
    return atomic_load_explicit(&ex->seg.hdr->pool_state, memory_order_acquire) !=
           PPI_POOL_RUNNING;
}
