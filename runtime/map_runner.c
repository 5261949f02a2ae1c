/*
 * map_runner.c — pp_map's worker side: the runner task, which claims chunks
 * from the window and runs the item function on their items, and the calls
 * an item function makes (pp_map_raise, pp_map_should_stop).
 *
 * A runner claims chunks one at a time with one CAS on the window's `next`
 * ticket, runs each claimed chunk's items, stores the chunk's done word
 * (release: the results are visible with it), wakes the client if it waits
 * for that chunk, and returns once nothing has been claimable for
 * PPI_MAP_IDLE_NS. The first failing item ends its chunk: the runner fills its
 * worker's error slot and lowers the window's limit so that no later chunk
 * starts. Design and synchronisation: map_internal.h, docs/map.md.
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fnmap.h"
#include "map_internal.h"
#include "sync.h"

int pp_map_raise(pp_map_item *it, int code, const char *fmt, ...)
{
    if (!it || !it->internal_)
        return PP_ETASK;
    mi_itemstate *s = it->internal_;
    int n = 0;
    s->es->msg[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        n = vsnprintf(s->es->msg, sizeof s->es->msg, fmt, ap);
        va_end(ap);
    }
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof s->es->msg)
        n = (int)sizeof s->es->msg - 1;
    s->es->len = (uint32_t)n;
    s->raised = 1;
    s->code = code;
    return PP_ETASK;
}

bool pp_map_should_stop(const pp_map_item *it)
{
    if (!it || !it->internal_)
        return false;
    mi_itemstate *s = it->internal_;
    /* relaxed: polled hints; a late answer costs one more item. A chunk
     * shipped to another node (h NULL) sees only that node's stop. */
    if (s->h && (atomic_load_explicit(&s->h->stop, memory_order_relaxed) ||
                 s->chunk >= atomic_load_explicit(&s->h->limit, memory_order_relaxed)))
        return true; /* the map ends before this item: not delivered anyway */
    if (!pp_task_should_stop(s->t))
        return false;
    /* The pool stops (shutdown with cancel_futures, broken, killed): an item
     * that returns now may be unfinished; it fails with -ECANCELED instead of
     * being delivered (item_done). */
    s->stop_seen = 1;
    return true;
}

#ifndef MADV_POPULATE_READ /* Linux 5.14; older headers */
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

/* Whether MADV_POPULATE_* works here (cleared at the first EINVAL: a kernel
 * before 5.14). Relaxed: a per-process hint; a stale true costs one more
 * failing call. */
static _Atomic int populate_ok = 1;

/*
 * Populate this worker's page tables for [lo, hi) of an in-place shared
 * array, from *mark on, at least PPI_MAP_PREFAULT_BYTES ahead but not past
 * @end (the array's published end), and move *mark. The pages then cost one
 * system call per window instead of a fault per page; fresh pages are
 * allocated here, by the worker that touches them first (in parallel, and
 * NUMA-local under first touch). Only a hint: a failed populate leaves the
 * faults to the item function's first touch, as without it.
 */
static void prefault(uintptr_t *mark, const void *lo, const void *hi, const void *end, bool write)
{
    uintptr_t a = (uintptr_t)lo, b = (uintptr_t)hi, e = (uintptr_t)end;
    if (b <= *mark || a >= b)
        return;
    if (a < *mark)
        a = *mark;
    a &= ~(uintptr_t)4095;
    if (b - a < PPI_MAP_PREFAULT_BYTES)
        b = a + PPI_MAP_PREFAULT_BYTES;
    if (b > e)
        b = e;
    b = (b + 4095) & ~(uintptr_t)4095;
    *mark = b;
    /* relaxed: see populate_ok. */
    if (b <= a || !atomic_load_explicit(&populate_ok, memory_order_relaxed))
        return;
    if (madvise((void *)a, b - a, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) != 0 &&
        errno == EINVAL)
        atomic_store_explicit(&populate_ok, 0, memory_order_relaxed); /* relaxed: as above */
}

/* Wake the client if it sleeps waiting for chunk @c (any chunk: @c ==
 * UINT64_MAX, used after a failure, which changes what the client waits
 * for). */
void ppi_map_notify(mi_hdr *h, uint64_t c)
{
    /* seq_cst fence: orders our done store before the load of cwait (pairs
     * with the client's fence between its cwait store and its re-check). */
    atomic_thread_fence(memory_order_seq_cst);
    /* acquire: a set cwait comes with the wake_at written before it. */
    if (!atomic_load_explicit(&h->cwait, memory_order_acquire))
        return;
    /* relaxed: ordered by the acquire load of cwait above. */
    if (c != UINT64_MAX && c != atomic_load_explicit(&h->wake_at, memory_order_relaxed))
        return;
    /* relaxed: only one waker needs to bump the word; cword carries the order. */
    if (!atomic_exchange_explicit(&h->cwait, 0, memory_order_relaxed))
        return;
    /* release: the woken client re-reads the done words after this. */
    atomic_fetch_add_explicit(&h->cword, 1, memory_order_release);
    ppi_futex_wake(&h->cword, INT_MAX, true);
}

/* true if a chunk can be claimed now (seq_cst: the runner's exit Dekker). */
static bool mi_claimable(mi_hdr *h)
{
    /* seq_cst: read after our seq_cst store of live = 0 (Dekker with the client). */
    uint64_t n = atomic_load_explicit(&h->next, memory_order_seq_cst);
    uint64_t a = atomic_load_explicit(&h->avail, memory_order_seq_cst);
    uint64_t l = atomic_load_explicit(&h->limit, memory_order_seq_cst);
    return !(n & MI_CLOSED) && n < a && n < l;
}

bool ppi_map_leave(mi_run *r)
{
    /* seq_cst: say we leave before the last look (Dekker with the client's
     * avail store and live loads in count_live). */
    atomic_store_explicit(&r->me->live, 0, memory_order_seq_cst);
    if (!mi_claimable(r->h))
        return true;
    /* seq_cst: back in business; the client may have started another runner
     * meanwhile, which is harmless. */
    atomic_store_explicit(&r->me->live, 1, memory_order_seq_cst);
    return false;
}

int ppi_map_claim(mi_run *r, uint64_t *c, bool stop)
{
    mi_hdr *h = r->h;
    if (stop) {
        /* relaxed: a hint for the client's error report. */
        atomic_store_explicit(&h->pool_stop, 1, memory_order_relaxed);
        return -1;
    }
    /* relaxed: the CAS below validates. */
    uint64_t n = atomic_load_explicit(&h->next, memory_order_relaxed);
    for (;;) {
        if (n & MI_CLOSED)
            return -1;
        /* acquire: pairs with the client's store of avail; the batches and
         * blobs of chunks below it are visible from here on. */
        uint64_t a = atomic_load_explicit(&h->avail, memory_order_acquire);
        /* relaxed: a bound that only shrinks; a stale one costs a wasted chunk. */
        uint64_t l = atomic_load_explicit(&h->limit, memory_order_relaxed);
        if (n >= a || n >= l)
            return 0;
        /* relaxed: published by the CAS (the client reads it only after an
         * acquire load of next that sees the CAS). */
        atomic_store_explicit(&r->me->cur, n + 1, memory_order_relaxed);
        /* acq_rel: release publishes cur; the ticket is the claim, and a
         * client's close (n | MI_CLOSED) makes it fail. */
        if (atomic_compare_exchange_weak_explicit(&h->next, &n, n + 1, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            *c = n;
            return 1;
        }
    }
}

static void mi_limit_at(mi_hdr *h, uint64_t lim)
{
    /* relaxed: a shrinking bound read as a hint by runners and the client. */
    uint64_t cur = atomic_load_explicit(&h->limit, memory_order_relaxed);
    while (lim < cur && !atomic_compare_exchange_weak_explicit(&h->limit, &cur, lim,
                                                               memory_order_relaxed,
                                                               memory_order_relaxed))
        ;
}

void ppi_map_fail_chunk(mi_run *r, uint64_t c, uint64_t n_ok, int err, int code, int pid)
{
    mi_errslot *es = r->es;
    es->chunk = c;
    es->n_ok = n_ok;
    es->err = err;
    es->code = code;
    es->pid = (int32_t)pid;
    mi_limit_at(r->h, c + 1);
    /* release: publishes the error slot and the results before it. */
    atomic_store_explicit(&r->done[c % r->h->nrec], mi_dw(c, (uint32_t)r->widx, MI_FAIL),
                          memory_order_release);
    ppi_map_notify(r->h, UINT64_MAX);
}

/* Locate chunk @ck->c: its item count, its inputs and results. */
void ppi_map_chunk_locate(mi_run *r, mi_chunk *ck)
{
    mi_hdr *h = r->h;
    const uint64_t cs = h->cs, c = ck->c, first = c * cs;
    /* relaxed: ordered after the acquire load of avail that let us claim c. */
    uint64_t pub = atomic_load_explicit(&h->items_pub, memory_order_relaxed);
    ck->first = first;
    ck->count = pub - first < cs ? pub - first : cs;
    const uint64_t b = c / h->bc;
    const uint64_t k0 = (c - b * h->bc) * cs; /* first item's index in the batch */
    const uint64_t boff = r->batch[b % h->nb];
    char *blob = boff ? r->seg + boff : NULL;
    const uint64_t *bh = (const uint64_t *)blob;
    const uint32_t n_in = h->n_in;

    for (uint32_t j = 0; j < n_in; j++) {
        const mi_in *d = &h->in[j];
        ck->voffs[j] = NULL;
        switch (d->how) {
        case MI_IN_SHM_FIXED:
            ck->p[j] = r->base[j] + first * d->stride;
            ck->in_size[j] = d->item_size;
            break;
        case MI_IN_SHM_PACKED:
            ck->p[j] = r->base[j];
            break;
        case MI_IN_STAGED_FIXED:
            ck->p[j] = blob + bh[j] + k0 * d->item_size;
            ck->in_size[j] = d->item_size;
            break;
        default: { /* MI_IN_STAGED_VAR: offsets[batch count + 1], then the bytes */
            const uint64_t *o = (const uint64_t *)(blob + bh[j]);
            /* the bytes start after the batch's offsets: recover the batch
             * count from the section's own header word */
            uint64_t bcount = o[0];
            ck->p[j] = (const char *)(o + 1 + bcount + 1);
            ck->voffs[j] = o + 1 + k0;
            break;
        }
        }
    }
    const size_t cap = h->out_cap;
    ck->outp = NULL;
    ck->vsz = NULL;
    ck->shm_sz = NULL;
    if (h->out_shm) {
        ck->outp = r->out_base ? r->out_base + first * cap : NULL;
        ck->shm_sz = r->sizes_base ? r->sizes_base + first : NULL;
    } else if (cap) {
        ck->outp = blob + bh[n_in] + k0 * cap;
        if (h->out_var)
            ck->vsz = (uint64_t *)(blob + bh[n_in + 1]) + k0;
    }
}

/* Populate ahead the in-place arrays chunk @ck reads and writes (prefault):
 * its inputs' items (for a packed input, its offsets and bytes), its
 * results and their sizes, each up to the items published so far. */
static void chunk_prefault(mi_run *r, const mi_chunk *ck)
{
    const mi_hdr *h = r->h;
    const uint64_t first = ck->first, last = first + ck->count;
    /* relaxed: ordered after the acquire load of avail that let us claim. */
    const uint64_t pub = atomic_load_explicit(&h->items_pub, memory_order_relaxed);
    if (!ck->count)
        return;
    for (uint32_t j = 0; j < h->n_in; j++) {
        const mi_in *d = &h->in[j];
        if (d->how == MI_IN_SHM_FIXED) {
            const char *b = r->base[j];
            prefault(&r->pf_in[j], b + first * d->stride, b + (last - 1) * d->stride + d->item_size,
                     b + (pub - 1) * d->stride + d->item_size, false);
        } else if (d->how == MI_IN_SHM_PACKED) {
            const size_t *o = r->offs[j];
            prefault(&r->pf_offs[j], o + first, o + last + 1, o + pub + 1, false);
            /* o[pub] is the end of the published bytes: its page is populated above */
            prefault(&r->pf_in[j], r->base[j] + o[first], r->base[j] + o[last],
                     r->base[j] + o[pub], false);
        }
    }
    const size_t cap = h->out_cap;
    if (ck->outp && h->out_shm)
        prefault(&r->pf_out, ck->outp, ck->outp + ck->count * cap, r->out_base + pub * cap, true);
    if (ck->shm_sz)
        prefault(&r->pf_sizes, ck->shm_sz, ck->shm_sz + ck->count, r->sizes_base + pub, true);
}

/* Point ck->in / ck->in_size at item @k's inputs. */
void ppi_map_item_inputs(const mi_run *r, mi_chunk *ck, uint64_t k)
{
    const mi_hdr *h = r->h;
    for (uint32_t j = 0; j < h->n_in; j++) {
        const mi_in *d = &h->in[j];
        switch (d->how) {
        case MI_IN_SHM_FIXED:
            ck->in[j] = ck->p[j] + k * d->stride;
            break;
        case MI_IN_SHM_PACKED: {
            const size_t *o = r->offs[j] + ck->first + k;
            ck->in[j] = ck->p[j] + o[0];
            ck->in_size[j] = o[1] - o[0];
            break;
        }
        case MI_IN_STAGED_FIXED:
            ck->in[j] = ck->p[j] + k * d->item_size;
            break;
        default:
            ck->in[j] = ck->p[j] + ck->voffs[j][k];
            ck->in_size[j] = ck->voffs[j][k + 1] - ck->voffs[j][k];
            break;
        }
    }
}

int ppi_map_item_check(const mi_itemstate *ist, int rc, const pp_map_item *it, bool out_var,
                       mi_errslot *es, int *code)
{
    int n = -1;
    *code = 0;
    if (!rc && !ist->raised && ist->stop_seen) {
        /* It saw the pool's stop and returned: its result may be partial. */
        n = snprintf(es->msg, sizeof es->msg,
                     "item stopped early: the pool is stopping (pp_map_should_stop)");
        es->len = (uint32_t)(n < 0 ? 0 : n);
        return -ECANCELED;
    }
    if (rc || ist->raised) {
        if (!ist->raised) {
            n = snprintf(es->msg, sizeof es->msg, "item function returned %d", rc);
            es->len = (uint32_t)(n < 0 ? 0 : n);
        }
        *code = ist->raised ? ist->code : rc;
        return PP_ETASK;
    }
    if (out_var && it->out_size > it->out_cap) {
        n = snprintf(es->msg, sizeof es->msg, "result of %zu bytes exceeds out_size %zu",
                     it->out_size, it->out_cap);
        es->len = (uint32_t)(n < 0 ? 0 : n);
        return PP_ETOOBIG;
    }
    return 0;
}

/* After item @k returned @rc: record its result size, or fail the chunk.
 * Returns false when the chunk failed. */
static inline bool item_done(mi_run *r, mi_chunk *ck, uint64_t k, int rc, const pp_map_item *it,
                             const mi_itemstate *ist)
{
    int code = 0;
    int err = ppi_map_item_check(ist, rc, it, r->h->out_var, r->es, &code);
    if (err) {
        if (err == -ECANCELED)
            /* relaxed: a hint for the client's error report. */
            atomic_store_explicit(&r->h->pool_stop, 1, memory_order_relaxed);
        ppi_map_fail_chunk(r, ck->c, k, err, code, getpid());
        return false;
    }
    if (r->h->out_var) {
        if (ck->vsz)
            ck->vsz[k] = it->out_size;
        else if (ck->shm_sz)
            ck->shm_sz[k] = it->out_size;
    }
    return true;
}

static void mi_run_chunk(mi_run *r, uint64_t c)
{
    mi_hdr *h = r->h;
    mi_chunk ck = {.c = c};
    ppi_map_chunk_locate(r, &ck);
    chunk_prefault(r, &ck);
    const size_t cap = h->out_cap;
    mi_itemstate ist = {.h = h, .t = r->t, .es = r->es, .chunk = c};
    pp_map_item it = {.n_in = (int)h->n_in,
                      .in = ck.in,
                      .in_size = ck.in_size,
                      .out_cap = cap,
                      .ctx = r->ctx,
                      .ctx_size = h->ctx_size,
                      .task = r->t,
                      .internal_ = &ist};
    for (uint64_t k = 0; k < ck.count; k++) {
        ppi_map_item_inputs(r, &ck, k);
        it.index = ck.first + k;
        it.out = ck.outp ? ck.outp + k * cap : NULL;
        it.out_size = cap;
        int rc = r->fn(&it);
        if (!item_done(r, &ck, k, rc, &it, &ist))
            return;
        /* release: item k's result is written before progress says so (the
         * client delivers it even if this worker dies later). */
        atomic_store_explicit(&r->me->progress, k + 1, memory_order_release);
    }
    /* release: publishes every result of the chunk (pairs with the client's
     * acquire load of the done word). */
    atomic_store_explicit(&r->done[c % h->nrec], mi_dw(c, (uint32_t)r->widx, MI_DONE),
                          memory_order_release);
    ppi_map_notify(h, c);
}

/* Check the runner's argument and fill @r from the map block. Returns 0 or
 * the task's error (raised). */
static int runner_open(pp_task *t, mi_run *r, const char **why)
{
    size_t asz;
    const mi_arg *a = pp_task_arg(t, &asz);
    if (asz != sizeof *a)
        return pp_task_raise(t, -EINVAL, "map runner: bad argument");
    mi_hdr *h = pp_task_shm(t, a->block);
    if (!h || h->magic != MI_MAGIC)
        return pp_task_raise(t, -EINVAL, "map runner: no map at offset %llu",
                             (unsigned long long)a->block);
    int widx = pp_task_worker(t);
    if (widx < 0 || (uint32_t)widx >= h->nlocal || a->rid >= h->nrun)
        return pp_task_raise(t, -EINVAL, "map runner: worker %d / runner %u out of range", widx,
                             a->rid);
    *r = (mi_run){.t = t,
                  .h = h,
                  .done = (_Atomic uint64_t *)((char *)h + h->done_rel),
                  .batch = (const uint64_t *)((char *)h + h->batch_rel),
                  .me = (mi_rslot *)((char *)h + h->run_rel) + a->rid,
                  .es = (mi_errslot *)((char *)h + h->errs_rel) + widx,
                  .fn = (pp_map_fn)ppi_fn_decode(ppi_task_modtab(t), h->fn, why),
                  .widx = widx,
                  .ctx = h->ctx_size ? (char *)h + h->ctx_rel : NULL,
                  .seg = (char *)h - a->block};
    if (!r->fn)
        return 0;
    for (uint32_t j = 0; j < h->n_in; j++) {
        if (h->in[j].how == MI_IN_SHM_FIXED || h->in[j].how == MI_IN_SHM_PACKED) {
            r->base[j] = pp_task_shm(t, h->in[j].off);
            if (h->in[j].how == MI_IN_SHM_PACKED)
                r->offs[j] = pp_task_shm(t, h->in[j].off2);
        }
    }
    if (h->out_shm) {
        r->out_base = h->out_off ? pp_task_shm(t, h->out_off) : NULL;
        r->sizes_base = h->sizes_off ? pp_task_shm(t, h->sizes_off) : NULL;
    }
    return 0;
}

/* The item function is not callable here (its module differs or is
 * missing): fail the next chunk with PP_ENOFUNC, which ends the map at that
 * position. */
static void runner_no_function(mi_run *r, const char *why)
{
    uint64_t c;
    if (ppi_map_claim(r, &c, pp_task_should_stop(r->t)) > 0) {
        int n = snprintf(r->es->msg, sizeof r->es->msg, "cannot call the item function: %s", why);
        r->es->len = (uint32_t)(n < 0 ? 0 : n);
        ppi_map_fail_chunk(r, c, 0, PP_ENOFUNC, 0, getpid());
    }
    /* relaxed: read by the client only for a dead runner. */
    atomic_store_explicit(&r->me->cur, 0, memory_order_relaxed);
}

/* Claim and run chunks until none is left for PPI_MAP_IDLE_NS, or the map or
 * the pool stops. */
static void runner_loop(mi_run *r)
{
    uint64_t idle_since = 0;
    for (;;) {
        uint64_t c;
        int k = ppi_map_claim(r, &c, pp_task_should_stop(r->t));
        if (k > 0) {
            /* relaxed: read by the client only for a dead runner. */
            atomic_store_explicit(&r->me->progress, 0, memory_order_relaxed);
            mi_run_chunk(r, c);
            /* release: a client that sees cur == 0 also sees the done word. */
            atomic_store_explicit(&r->me->cur, 0, memory_order_release);
            idle_since = 0;
            continue;
        }
        /* release: as above. */
        atomic_store_explicit(&r->me->cur, 0, memory_order_release);
        if (k < 0)
            break;
        uint64_t now = ppi_now_ns();
        if (!idle_since) {
            idle_since = now;
        } else if (now - idle_since > PPI_MAP_IDLE_NS) {
            if (ppi_map_leave(r))
                break;
            idle_since = 0;
            continue;
        }
        sched_yield(); /* the client may need this core to publish more */
    }
}

/* The runner task (was mi_runner): claim and run chunks until none is left. */
int ppi_map_runner(pp_task *t)
{
    mi_run r = {.t = t};
    const char *why = "?";
    int rc = runner_open(t, &r, &why);
    if (rc)
        return rc;
    if (!r.fn)
        runner_no_function(&r, why);
    else
        runner_loop(&r);
    return 0;
}
