/*
 * map.c — pp_map: Executor.map over chunks that runner tasks claim from a
 * window in shared memory.
 *
 * Why not one task per chunk: a task costs about 1 µs of client time
 * (future, slot, ring, wake, detach, release) while one SHA-512 of a word
 * costs 0.35 µs, so chunksize 1 would be several times slower than OpenMP's
 * schedule(dynamic, 1). Instead a map allocates one block of shared memory
 * (the window), stages the chunks' inputs into it, and submits at most one
 * *runner* task per worker with pp_submit. A runner claims chunks one at a
 * time with one CAS on the window's `next` ticket (OpenMP's dynamic schedule
 * does the same with a fetch-and-add), runs the item function on each item,
 * stores the chunk's done word, and returns once nothing is claimable for
 * MI_IDLE_NS. The chunk stays the unit of scheduling, cancellation and error
 * reporting, exactly as a task per chunk would be; see docs/map.md.
 *
 * Geometry. Chunk c holds items [c*cs, min((c+1)*cs, items_pub)). Chunks
 * are staged in *batches* of bc consecutive chunks (bc*cs >= ~1024 items
 * when possible): one blob per batch holds the batch's copied inputs and its
 * results, so the client's cost per chunk is a few stores, not an allocation.
 * Batch b lives in batch slot b % nb; chunk c's done word in done[c % nrec]
 * (nrec = nb * bc chunks in flight at most).
 *
 * Shared block (one pp_shm_alloc per map):
 *   mi_hdr | ctx | done[nrec] | batch_blob[nb] | mi_rslot[nrun] | mi_errslot[nwork]
 * plus a staging ring (a second block) for the blobs. Inputs and outputs
 * already in shared memory are used in place and take no blob space.
 *
 * Synchronisation:
 * | what | writer | how | reader | how |
 * | blobs, batch_blob, items_pub | client | plain / relaxed, then `avail` seq_cst store | runner | `avail` acquire load |
 * | `next` ticket = the claim | runners: CAS n -> n+1 (acq_rel); client: CAS n -> n|CLOSED (stop) | exactly one wins per n: chunks >= the closed value never start |
 * | rslot.cur = chunk+1, before the claim CAS | runner | relaxed store, published by the CAS | client (dead runner) | after an acquire load of next |
 * | results, rslot.progress | runner | plain, then progress release store | client (dead runner only) | acquire |
 * | done[c] = DONE/FAIL | runner | release store | client | acquire load |
 * | client sleep | client: wake_at = X, cwait (release), seq_cst fence, re-check X | runner finishing X: done store, seq_cst fence, cwait acquire | Dekker pair |
 * | runner liveness | runner: live=0 seq_cst, then next/avail/limit seq_cst | client: avail seq_cst, fence, live seq_cst | Dekker pair: work is never left with nobody to take it |
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fnmap.h"
#include "ppool.h"
#include "segment.h"
#include "sync.h"

#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MI_MAGIC 0x70706d6170763032ull    /* "ppmapv02" */
#define MI_WINDOW_MAX 16384u              /* chunks in flight, at most */
#define MI_BATCH_ITEMS 1024u              /* aim for batches of this many items */
#define MI_RING_MIN ((size_t)1 << 20)     /* staging ring: at least 1 MiB */
#define MI_RING_MAX ((size_t)256 << 20)   /* ... and at most 256 MiB */
#define MI_IDLE_NS 20000ull               /* a runner idles this long, then returns */
#define MI_SPIN_NS 20000ull               /* the iterator spins this long before sleeping */
#define MI_NAP_NS 10000000ull             /* the client sleeps at most this long */
#define MI_PROBE_NS 100000000ull          /* and probes its runners' health this often */
#define MI_MSG 200                        /* bytes of an item's error message */
#define MI_CLOSED (1ull << 63)            /* in `next`: the map was stopped */
#define MI_CLIENT_W 0xffffffu             /* "worker" of a chunk failed by the client */

enum { MI_DONE = 1, MI_FAIL = 2 };
enum { MI_IN_SHM_FIXED = 1, MI_IN_SHM_PACKED, MI_IN_STAGED_FIXED, MI_IN_STAGED_VAR };

/* done word: chunk seq (low 32 bits) | worker index (24 bits) | state (8 bits) */
static inline uint64_t mi_dw(uint64_t c, uint32_t w, uint32_t st)
{
    return (c << 32) | ((uint64_t)(w & 0xffffffu) << 8) | st;
}
static inline bool mi_dw_is(uint64_t d, uint64_t c) { return (d >> 32) == (c & 0xffffffffu); }
static inline uint32_t mi_dw_state(uint64_t d) { return (uint32_t)(d & 0xff); }
static inline uint32_t mi_dw_worker(uint64_t d) { return (uint32_t)((d >> 8) & 0xffffffu); }

/* One runner task's slot: runner-written, client-read. 64 bytes. */
typedef struct mi_rslot {
    _Atomic uint32_t live;     /* 1 while the runner will still look for work */
    uint32_t pad0;
    _Atomic uint64_t cur;      /* chunk + 1 it claims / runs, 0 = none */
    _Atomic uint64_t progress; /* items of that chunk finished */
    uint64_t pad[5];
} mi_rslot;
_Static_assert(sizeof(mi_rslot) == 64, "one runner slot per cache line");

/* One worker's error report (at most one item fails per worker per map). */
typedef struct mi_errslot {
    uint64_t chunk;    /* the chunk that failed */
    uint64_t n_ok;     /* its items finished before the failure */
    int32_t err, code; /* PP_ETASK / PP_ETOOBIG, and the item's code */
    int32_t pid;
    uint32_t len;
    char msg[MI_MSG];
    uint64_t pad[3];
} mi_errslot;
_Static_assert(sizeof(mi_errslot) == 256, "error slot size");

typedef struct mi_in {
    uint32_t how, pad;
    uint64_t item_size, stride;
    uint64_t off, off2; /* segment offsets: SHM_FIXED base; SHM_PACKED data, offsets */
} mi_in;

typedef struct mi_hdr {
    uint64_t magic;
    uint64_t fn;                   /* the item function as a token (fnmap.h) */
    uint64_t cs;                   /* items per chunk */
    uint32_t n_in, nrec, nb, bc;   /* inputs, done words, batch slots, chunks per batch */
    uint32_t nrun, nwork, out_var, out_shm;
    uint64_t out_cap;
    uint64_t out_off, sizes_off;   /* out_shm: segment offsets of out / out_sizes (0 = none) */
    uint64_t ctx_rel, ctx_size;    /* relative to the block */
    uint64_t done_rel, batch_rel, run_rel, errs_rel;
    mi_in in[PP_MAP_MAX_INPUTS];
    alignas(64) _Atomic uint64_t next; /* next chunk to claim | MI_CLOSED */
    alignas(64) _Atomic uint64_t avail;     /* chunks published */
    _Atomic uint64_t items_pub;             /* items published */
    _Atomic uint64_t limit;                 /* no claim at or past this chunk */
    _Atomic uint32_t stop;                  /* the client stopped the map */
    _Atomic uint32_t pool_stop;             /* a runner saw pp_task_should_stop */
    alignas(64) _Atomic uint32_t cwait;     /* the client sleeps on cword */
    _Atomic uint32_t cword;
    _Atomic uint64_t wake_at; /* ... until this chunk finishes */
} mi_hdr;

typedef struct mi_arg {
    uint64_t block;
    uint32_t rid;
    uint32_t pad;
} mi_arg;

/* Blob layout of one batch: u64 header[n_in + 2] with the byte offsets of
 * each staged input's section, of the results and of the result sizes; then
 * the sections. Fixed-size staged input: items back to back. Variable-size
 * staged input: u64 offsets[count + 1] (relative to the bytes), the bytes. */

/* ======================================================================== */
/* Worker side                                                               */
/* ======================================================================== */

/* What pp_map_raise / pp_map_should_stop reach through it->internal_. */
typedef struct mi_itemstate {
    mi_hdr *h;
    pp_task *t;
    mi_errslot *es;
    uint64_t chunk;
    int raised;
    int code;
    int stop_seen; /* pp_map_should_stop answered true for the pool's stop */
} mi_itemstate;

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
    /* relaxed: polled hints; a late answer costs one more item. */
    if (atomic_load_explicit(&s->h->stop, memory_order_relaxed) ||
        s->chunk >= atomic_load_explicit(&s->h->limit, memory_order_relaxed))
        return true; /* the map ends before this item: not delivered anyway */
    if (!pp_task_should_stop(s->t))
        return false;
    /* The pool stops (shutdown with cancel_futures, broken, killed): an item
     * that returns now may be unfinished; it fails with -ECANCELED instead of
     * being delivered (mi_run_chunk). */
    s->stop_seen = 1;
    return true;
}

typedef struct mi_run {
    pp_task *t;
    mi_hdr *h;
    _Atomic uint64_t *done;
    const uint64_t *batch;
    mi_rslot *me;
    mi_errslot *es;
    pp_map_fn fn;
    int widx;
    const char *base[PP_MAP_MAX_INPUTS];
    const size_t *offs[PP_MAP_MAX_INPUTS];
    char *out_base;
    size_t *sizes_base;
    const void *ctx;
} mi_run;

/* Wake the client if it sleeps waiting for chunk @c (any chunk: @c ==
 * UINT64_MAX, used after a failure, which changes what the client waits
 * for). */
static void mi_notify(mi_hdr *h, uint64_t c)
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

/* Claim the next chunk: 1 (*c set), 0 nothing now, -1 stop. */
static int mi_claim(mi_run *r, uint64_t *c)
{
    mi_hdr *h = r->h;
    if (pp_task_should_stop(r->t)) {
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

static void mi_fail_chunk(mi_run *r, uint64_t c, uint64_t n_ok, int err, int code)
{
    mi_errslot *es = r->es;
    es->chunk = c;
    es->n_ok = n_ok;
    es->err = err;
    es->code = code;
    es->pid = (int32_t)getpid();
    mi_limit_at(r->h, c + 1);
    /* release: publishes the error slot and the results before it. */
    atomic_store_explicit(&r->done[c % r->h->nrec], mi_dw(c, (uint32_t)r->widx, MI_FAIL),
                          memory_order_release);
    mi_notify(r->h, UINT64_MAX);
}

static void mi_run_chunk(mi_run *r, uint64_t c)
{
    mi_hdr *h = r->h;
    const uint64_t cs = h->cs, first = c * cs;
    /* relaxed: ordered after the acquire load of avail that let us claim c. */
    uint64_t pub = atomic_load_explicit(&h->items_pub, memory_order_relaxed);
    const uint64_t count = pub - first < cs ? pub - first : cs;
    const uint64_t b = c / h->bc;
    const uint64_t k0 = (c - b * h->bc) * cs; /* first item's index in the batch */
    const uint64_t boff = r->batch[b % h->nb];
    char *blob = boff ? pp_task_shm(r->t, boff) : NULL;
    const uint64_t *bh = (const uint64_t *)blob;
    const uint32_t n_in = h->n_in;

    const char *p[PP_MAP_MAX_INPUTS];
    const uint64_t *voffs[PP_MAP_MAX_INPUTS];
    const void *in[PP_MAP_MAX_INPUTS];
    size_t in_size[PP_MAP_MAX_INPUTS];
    for (uint32_t j = 0; j < n_in; j++) {
        const mi_in *d = &h->in[j];
        voffs[j] = NULL;
        switch (d->how) {
        case MI_IN_SHM_FIXED:
            p[j] = r->base[j] + first * d->stride;
            in_size[j] = d->item_size;
            break;
        case MI_IN_SHM_PACKED:
            p[j] = r->base[j];
            break;
        case MI_IN_STAGED_FIXED:
            p[j] = blob + bh[j] + k0 * d->item_size;
            in_size[j] = d->item_size;
            break;
        default: { /* MI_IN_STAGED_VAR: offsets[batch count + 1], then the bytes */
            const uint64_t *o = (const uint64_t *)(blob + bh[j]);
            /* the bytes start after the batch's offsets: recover the batch
             * count from the section's own header word */
            uint64_t bcount = o[0];
            p[j] = (const char *)(o + 1 + bcount + 1);
            voffs[j] = o + 1 + k0;
            break;
        }
        }
    }
    const size_t cap = h->out_cap;
    char *outp = NULL;
    uint64_t *vsz = NULL;
    size_t *shm_sz = NULL;
    if (h->out_shm) {
        outp = r->out_base ? r->out_base + first * cap : NULL;
        shm_sz = r->sizes_base ? r->sizes_base + first : NULL;
    } else if (cap) {
        outp = blob + bh[n_in] + k0 * cap;
        if (h->out_var)
            vsz = (uint64_t *)(blob + bh[n_in + 1]) + k0;
    }

    mi_itemstate ist = {.h = h, .t = r->t, .es = r->es, .chunk = c};
    pp_map_item it = {.n_in = (int)n_in,
                      .in = in,
                      .in_size = in_size,
                      .out_cap = cap,
                      .ctx = r->ctx,
                      .ctx_size = h->ctx_size,
                      .task = r->t,
                      .internal_ = &ist};
    for (uint64_t k = 0; k < count; k++) {
        for (uint32_t j = 0; j < n_in; j++) {
            const mi_in *d = &h->in[j];
            switch (d->how) {
            case MI_IN_SHM_FIXED:
                in[j] = p[j] + k * d->stride;
                break;
            case MI_IN_SHM_PACKED: {
                const size_t *o = r->offs[j] + first + k;
                in[j] = p[j] + o[0];
                in_size[j] = o[1] - o[0];
                break;
            }
            case MI_IN_STAGED_FIXED:
                in[j] = p[j] + k * d->item_size;
                break;
            default:
                in[j] = p[j] + voffs[j][k];
                in_size[j] = voffs[j][k + 1] - voffs[j][k];
                break;
            }
        }
        it.index = first + k;
        it.out = outp ? outp + k * cap : NULL;
        it.out_size = cap;
        int rc = r->fn(&it);
        if (!rc && !ist.raised && ist.stop_seen) {
            /* It saw the pool's stop and returned: its result may be partial. */
            int n = snprintf(r->es->msg, sizeof r->es->msg,
                             "item stopped early: the pool is stopping (pp_map_should_stop)");
            r->es->len = (uint32_t)(n < 0 ? 0 : n);
            /* relaxed: a hint for the client's error report. */
            atomic_store_explicit(&h->pool_stop, 1, memory_order_relaxed);
            mi_fail_chunk(r, c, k, -ECANCELED, 0);
            return;
        }
        if (rc || ist.raised) {
            if (!ist.raised) {
                int n = snprintf(r->es->msg, sizeof r->es->msg, "item function returned %d", rc);
                r->es->len = (uint32_t)(n < 0 ? 0 : n);
            }
            mi_fail_chunk(r, c, k, PP_ETASK, ist.raised ? ist.code : rc);
            return;
        }
        if (h->out_var) {
            if (it.out_size > cap) {
                int n = snprintf(r->es->msg, sizeof r->es->msg,
                                 "result of %zu bytes exceeds out_size %zu", it.out_size, cap);
                r->es->len = (uint32_t)(n < 0 ? 0 : n);
                mi_fail_chunk(r, c, k, PP_ETOOBIG, 0);
                return;
            }
            if (vsz)
                vsz[k] = it.out_size;
            else if (shm_sz)
                shm_sz[k] = it.out_size;
        }
        /* release: item k's result is written before progress says so (the
         * client delivers it even if this worker dies later). */
        atomic_store_explicit(&r->me->progress, k + 1, memory_order_release);
    }
    /* release: publishes every result of the chunk (pairs with the client's
     * acquire load of the done word). */
    atomic_store_explicit(&r->done[c % h->nrec], mi_dw(c, (uint32_t)r->widx, MI_DONE),
                          memory_order_release);
    mi_notify(h, c);
}

/* The segment's module table, from a pointer @p at segment offset @off
 * (any process: the segment header sits at the base of every mapping). */
static const ppi_modtab *mi_modtab(const void *p, uint64_t off)
{
    const char *base = (const char *)p - off;
    return (const ppi_modtab *)(const void *)(base + ((const ppi_hdr *)(const void *)base)->off_modtab);
}

/* The runner task: claim and run chunks until none is left. */
static int mi_runner(pp_task *t)
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
    if (widx < 0 || (uint32_t)widx >= h->nwork || a->rid >= h->nrun)
        return pp_task_raise(t, -EINVAL, "map runner: worker %d / runner %u out of range", widx,
                             a->rid);
    const char *why = "?";
    mi_run r = {.t = t,
                .h = h,
                .done = (_Atomic uint64_t *)((char *)h + h->done_rel),
                .batch = (const uint64_t *)((char *)h + h->batch_rel),
                .me = (mi_rslot *)((char *)h + h->run_rel) + a->rid,
                .es = (mi_errslot *)((char *)h + h->errs_rel) + widx,
                .fn = (pp_map_fn)ppi_fn_decode(mi_modtab(h, a->block), h->fn, &why),
                .widx = widx,
                .ctx = h->ctx_size ? (char *)h + h->ctx_rel : NULL};
    if (!r.fn) {
        /* Not callable here (its module differs or is missing): fail the
         * next chunk with PP_ENOFUNC, which ends the map at that position. */
        uint64_t c;
        if (mi_claim(&r, &c) > 0) {
            int n = snprintf(r.es->msg, sizeof r.es->msg, "cannot call the item function: %s",
                             why);
            r.es->len = (uint32_t)(n < 0 ? 0 : n);
            mi_fail_chunk(&r, c, 0, PP_ENOFUNC, 0);
        }
        /* relaxed: read by the client only for a dead runner. */
        atomic_store_explicit(&r.me->cur, 0, memory_order_relaxed);
        return 0;
    }
    for (uint32_t j = 0; j < h->n_in; j++) {
        if (h->in[j].how == MI_IN_SHM_FIXED || h->in[j].how == MI_IN_SHM_PACKED) {
            r.base[j] = pp_task_shm(t, h->in[j].off);
            if (h->in[j].how == MI_IN_SHM_PACKED)
                r.offs[j] = pp_task_shm(t, h->in[j].off2);
        }
    }
    if (h->out_shm) {
        r.out_base = h->out_off ? pp_task_shm(t, h->out_off) : NULL;
        r.sizes_base = h->sizes_off ? pp_task_shm(t, h->sizes_off) : NULL;
    }
    uint64_t idle_since = 0;
    for (;;) {
        uint64_t c;
        int k = mi_claim(&r, &c);
        if (k > 0) {
            /* relaxed: read by the client only for a dead runner. */
            atomic_store_explicit(&r.me->progress, 0, memory_order_relaxed);
            mi_run_chunk(&r, c);
            /* release: a client that sees cur == 0 also sees the done word. */
            atomic_store_explicit(&r.me->cur, 0, memory_order_release);
            idle_since = 0;
            continue;
        }
        /* release: as above. */
        atomic_store_explicit(&r.me->cur, 0, memory_order_release);
        if (k < 0)
            break;
        uint64_t now = ppi_now_ns();
        if (!idle_since) {
            idle_since = now;
        } else if (now - idle_since > MI_IDLE_NS) {
            /* seq_cst: say we leave before the last look (Dekker with the
             * client's avail store and live loads in ensure_runners). */
            atomic_store_explicit(&r.me->live, 0, memory_order_seq_cst);
            if (!mi_claimable(h))
                break;
            /* seq_cst: back in business; the client may have started
             * another runner meanwhile, which is harmless. */
            atomic_store_explicit(&r.me->live, 1, memory_order_seq_cst);
            idle_since = 0;
            continue;
        }
        sched_yield(); /* the client may need this core to publish more */
    }
    return 0;
}

/* ======================================================================== */
/* Client side                                                               */
/* ======================================================================== */

typedef struct mi_cerr { /* a chunk failed by the client (runner died) */
    uint64_t seq, n_ok;
    int err, code;
    pid_t pid;
    char msg[256];
    struct mi_cerr *next;
} mi_cerr;

typedef struct mi_batch { /* client-private view of a staged batch */
    char *blob;          /* client pointer, NULL when nothing is staged */
    bool own;            /* its own pp_shm_alloc block (else in the ring) */
    uint64_t ring_end;   /* ring position after the blob */
    uint64_t c0, nch;    /* its chunks */
} mi_batch;

struct pp_map_iter {
    pp_executor *ex;
    pp_map_fn fn;
    int n_in;
    pp_map_input in[PP_MAP_MAX_INPUTS];
    bool in_shm[PP_MAP_MAX_INPUTS];
    bool per_item; /* some input must be gathered item by item */
    size_t cs;
    size_t n_limit; /* items (min of the known counts and out_count), SIZE_MAX unknown */
    uint64_t deadline;
    double timeout;
    /* all-at-once output */
    bool all;
    char *out;
    size_t *out_sizes;
    bool out_shm;
    size_t out_cap;
    bool out_var;
    /* shared block */
    void *block;
    mi_hdr *h;
    _Atomic uint64_t *done;
    uint64_t *batch;
    mi_rslot *rs;
    mi_errslot *errs;
    uint32_t nrec, nb, bc, nrun, nwork;
    mi_batch *bat; /* [nb] */
    /* staging ring (client-only bookkeeping; positions grow monotonically) */
    char *ring;
    size_t ring_cap;
    uint64_t ring_head, ring_tail;
    /* progress */
    uint64_t published, consumed;
    size_t items_staged;
    bool input_end;
    int in_err; /* an input failed at position in_err_at */
    size_t in_err_at;
    char in_err_msg[160];
    bool pending; /* a gathered batch waits for room */
    size_t pend_count;
    /* chunks >= dead_from will never run (no runner can be started) */
    uint64_t dead_from;
    int dead_err;
    /* iterator */
    bool cur_valid;
    size_t cur_k;
    int final_err;
    bool stopped;
    uint64_t closed_at; /* first chunk cancelled by the stop */
    pp_map_status st;
    /* runners */
    pp_future **rf;
    uint32_t *rid_free;
    uint32_t n_rid_free;
    int submit_err;
    bool saw_cancel;
    uint64_t last_probe;
    mi_cerr *cerrs;
    mi_cerr *suspects; /* chunks a dead runner may have held (see check_suspects) */
    /* scratch for gathering a batch */
    size_t g_cap;
    const char **g_ptr; /* [j * g_cap + k]; generator items: NULL (bytes in tmp) */
    size_t *g_size;
    size_t *g_toff;
    char *tmp;
    size_t tmp_cap, tmp_used;
};

static inline size_t al16(size_t x) { return (x + 15) & ~(size_t)15; }

pp_map_input pp_map_array(const void *base, size_t count, size_t item_size)
{
    return (pp_map_input){.kind = PP_MAP_IN_ARRAY, .base = base, .count = count,
                          .item_size = item_size, .stride = item_size};
}

pp_map_input pp_map_strided(const void *base, size_t count, size_t item_size, size_t stride)
{
    return (pp_map_input){.kind = PP_MAP_IN_ARRAY, .base = base, .count = count,
                          .item_size = item_size, .stride = stride};
}

pp_map_input pp_map_ptrs(const void *const *items, const size_t *sizes, size_t count)
{
    return (pp_map_input){.kind = PP_MAP_IN_PTRS, .items = items, .sizes = sizes, .count = count};
}

pp_map_input pp_map_packed(const void *data, const size_t *offsets, size_t count)
{
    return (pp_map_input){.kind = PP_MAP_IN_PACKED, .base = data, .offsets = offsets,
                          .count = count};
}

pp_map_input pp_map_generator(pp_map_gen gen, void *user)
{
    return (pp_map_input){.kind = PP_MAP_IN_GEN, .gen = gen, .user = user, .count = SIZE_MAX};
}

void pp_map_opts_init(pp_map_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->chunksize = 1;
    o->timeout = PP_FOREVER;
}

/* true if [p, p + n) lies in the executor's shared memory (n >= 1). */
static bool in_shm(pp_executor *ex, const void *p, size_t n)
{
    if (!p || n == 0)
        return false;
    uint64_t a = pp_shm_offset(ex, p);
    uint64_t b = pp_shm_offset(ex, (const char *)p + (n - 1));
    return a != UINT64_MAX && b != UINT64_MAX && b - a == n - 1;
}

/* Items in chunk @c (all published chunks are full but the last). */
static size_t chunk_count(pp_map_iter *m, uint64_t c)
{
    size_t first = (size_t)c * m->cs;
    return m->items_staged - first < m->cs ? m->items_staged - first : m->cs;
}

static mi_batch *batch_of(pp_map_iter *m, uint64_t c) { return &m->bat[(c / m->bc) % m->nb]; }

/* The done word of chunk @c, 0 if it is not finished. Chunks past dead_from
 * read as failed by the client. */
static uint64_t chunk_done(pp_map_iter *m, uint64_t c)
{
    if (c >= m->dead_from)
        return mi_dw(c, MI_CLIENT_W, MI_FAIL);
    /* acquire: pairs with the runner's release of DONE/FAIL (results). */
    uint64_t d = atomic_load_explicit(&m->done[c % m->nrec], memory_order_acquire);
    return mi_dw_is(d, c) && mi_dw_state(d) ? d : 0;
}

static void set_final(pp_map_iter *m, int err, size_t pos, int code, pid_t pid, const char *msg)
{
    if (m->final_err)
        return;
    m->final_err = err;
    m->st.error = err;
    m->st.done = pos;
    m->st.code = code;
    m->st.pid = pid;
    snprintf(m->st.message, sizeof m->st.message, "%s", msg ? msg : pp_strerror(err));
}

/* Close the ticket: chunks nobody has claimed will never start. Returns the
 * first of them. */
static uint64_t close_next(pp_map_iter *m)
{
    /* relaxed: the CAS validates. */
    uint64_t n = atomic_load_explicit(&m->h->next, memory_order_relaxed);
    /* acquire: the claims before ours (and the runners' cur) are visible. */
    while (!(n & MI_CLOSED) &&
           !atomic_compare_exchange_weak_explicit(&m->h->next, &n, n | MI_CLOSED,
                                                  memory_order_acquire, memory_order_relaxed))
        ;
    return n & ~MI_CLOSED;
}

/* Stop the map: cancel every chunk not started. */
static void stop_map(pp_map_iter *m)
{
    if (m->stopped)
        return;
    m->stopped = true;
    /* relaxed: a hint for pp_map_should_stop; the close below decides. */
    atomic_store_explicit(&m->h->stop, 1, memory_order_relaxed);
    m->closed_at = close_next(m);
}

/* No runner can ever take the chunks not claimed yet: close the ticket and
 * fail them all with @err. */
static void fail_unclaimed(pp_map_iter *m, int err)
{
    uint64_t from = close_next(m);
    if (from < m->dead_from) {
        m->dead_from = from;
        m->dead_err = err;
    }
}

/* A runner's future is done: recycle it; if it failed, so did its chunk. */
static void reap_one(pp_map_iter *m, uint32_t rid, double wait)
{
    pp_future *f = m->rf[rid];
    pp_exception exc;
    if (pp_future_exception(f, wait, &exc) != 0)
        return; /* not done yet */
    mi_rslot *rs = &m->rs[rid];
    if (exc.error) {
        if (exc.error == -ECANCELED)
            m->saw_cancel = true;
        /* acquire: the dead runner's claim (cur) and progress. */
        uint64_t nx = atomic_load_explicit(&m->h->next, memory_order_acquire) & ~MI_CLOSED;
        uint64_t cur = atomic_load_explicit(&rs->cur, memory_order_acquire);
        uint64_t n_ok = atomic_load_explicit(&rs->progress, memory_order_acquire);
        if (cur && cur - 1 < nx && cur - 1 >= m->consumed && cur - 1 < m->published &&
            !chunk_done(m, cur - 1)) {
            mi_cerr *e = calloc(1, sizeof *e);
            if (e) {
                e->seq = cur - 1;
                e->n_ok = n_ok;
                e->err = exc.error;
                e->code = exc.code;
                e->pid = exc.pid;
                snprintf(e->msg, sizeof e->msg, "%s", exc.message);
                e->next = m->suspects;
                m->suspects = e;
            }
        }
    }
    pp_future_release(f);
    m->rf[rid] = NULL;
    /* relaxed: the slot is ours again (its runner has finished). */
    atomic_store_explicit(&rs->live, 0, memory_order_relaxed);
    atomic_store_explicit(&rs->cur, 0, memory_order_relaxed); /* relaxed: as above */
    m->rid_free[m->n_rid_free++] = rid;
}

/* Reap the runners that are done (@wait == 0), or wait for each of them up
 * to @wait seconds (PP_FOREVER: until done). */
static void reap(pp_map_iter *m, double wait)
{
    for (uint32_t rid = 0; rid < m->nrun; rid++)
        if (m->rf[rid] && (wait != 0 || pp_future_done(m->rf[rid])))
            reap_one(m, rid, wait);
}

/*
 * A dead runner's slot said it held chunk c (cur = c + 1, stored just before
 * its claim CAS). If it did, nobody else will finish c: fail it. But the CAS
 * may have failed (another runner took c): then a live runner's slot says
 * c + 1 for as long as it runs c. So fail c only once it is not done and no
 * live runner shows it; re-check on every wait until one or the other holds.
 */
static void check_suspects(pp_map_iter *m)
{
    mi_cerr **pp = &m->suspects;
    while (*pp) {
        mi_cerr *e = *pp;
        uint64_t c = e->seq;
        bool held = false;
        for (uint32_t o = 0; o < m->nrun && !held; o++)
            /* acquire: pairs with the runner's release of cur = 0 (after its
             * done store), so "not held" and "not done" below agree. */
            held = m->rf[o] && atomic_load_explicit(&m->rs[o].cur, memory_order_acquire) == c + 1;
        if (held) {
            pp = &e->next;
            continue;
        }
        *pp = e->next;
        if (c < m->consumed || chunk_done(m, c)) {
            free(e);
            continue;
        }
        e->next = m->cerrs; /* it becomes the chunk's error report */
        m->cerrs = e;
        /* release: like a runner's; our own later acquire reads it. */
        atomic_store_explicit(&m->done[c % m->nrec], mi_dw(c, MI_CLIENT_W, MI_FAIL),
                              memory_order_release);
    }
}

static int unclaimed_error(pp_map_iter *m)
{
    /* relaxed: a hint written by a runner that saw the pool stop. */
    if (m->saw_cancel || atomic_load_explicit(&m->h->pool_stop, memory_order_relaxed))
        return -ECANCELED;
    return m->submit_err ? m->submit_err : PP_EBROKEN;
}

/* Runners that will still look for work; *busy receives how many of them
 * hold a chunk now (they take no other until it is done). */
static uint64_t count_live(pp_map_iter *m, uint64_t *busy)
{
    /* seq_cst fence: our earlier seq_cst store of avail precedes the loads of
     * live (pairs with the runner's live = 0 then load of avail). */
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t live = 0, holding = 0;
    for (uint32_t rid = 0; rid < m->nrun; rid++)
        /* seq_cst: see the fence above. */
        if (m->rf[rid] && atomic_load_explicit(&m->rs[rid].live, memory_order_seq_cst)) {
            live++;
            /* relaxed: a hint. Wrong at worst by a chunk that just ended or
             * began: one runner too many (harmless) or one started on the
             * next call (every publish and every client wait calls us). */
            if (atomic_load_explicit(&m->rs[rid].cur, memory_order_relaxed))
                holding++;
        }
    *busy = holding;
    return live;
}

/* Make sure enough runners will look at the unclaimed chunks. */
static void ensure_runners(pp_map_iter *m)
{
    if (m->stopped)
        return;
    /* relaxed: hints; the Dekker pair in count_live makes the decision safe. */
    uint64_t nx = atomic_load_explicit(&m->h->next, memory_order_relaxed);
    uint64_t lim = atomic_load_explicit(&m->h->limit, memory_order_relaxed);
    if (nx & MI_CLOSED)
        return;
    uint64_t top = m->published < lim ? m->published : lim;
    if (nx >= top)
        return;
    /* Every unclaimed chunk wants a runner of its own, besides the runners
     * busy with a chunk: with 2 workers and 2 huge chunks, the runner that
     * took chunk 0 must not count as the taker of chunk 1. */
    uint64_t busy = 0;
    uint64_t live = count_live(m, &busy);
    uint64_t want = top - nx + busy;
    if (want > m->nwork)
        want = m->nwork;
    if (live >= want)
        return;
    reap(m, 0); /* recycle finished runners (and fail what dead ones held) */
    live = count_live(m, &busy);
    while (live < want && m->n_rid_free && !m->submit_err) {
        uint32_t rid = m->rid_free[--m->n_rid_free];
        /* relaxed: published to the runner by pp_submit's release. */
        atomic_store_explicit(&m->rs[rid].live, 1, memory_order_relaxed);
        mi_arg a = {.block = pp_shm_offset(m->ex, m->block), .rid = rid};
        int rc = pp_submit(m->ex, mi_runner, &a, sizeof a, &m->rf[rid]);
        if (rc) {
            atomic_store_explicit(&m->rs[rid].live, 0, memory_order_relaxed); /* relaxed: ours */
            m->rid_free[m->n_rid_free++] = rid;
            m->submit_err = rc;
            break;
        }
        m->st.runners++;
        live++;
    }
    if (live == 0 && m->submit_err)
        fail_unclaimed(m, unclaimed_error(m));
}

/* ---- staging ------------------------------------------------------------ */

static int grow_scratch(pp_map_iter *m, size_t items)
{
    if (items <= m->g_cap)
        return 0;
    size_t cap = m->g_cap ? m->g_cap : 64;
    while (cap < items)
        cap *= 2;
    size_t nj = (size_t)(m->n_in ? m->n_in : 1);
    const char **gp = calloc(nj * cap, sizeof *gp);
    size_t *gs = calloc(nj * cap, sizeof *gs);
    size_t *gt = calloc(nj * cap, sizeof *gt);
    if (!gp || !gs || !gt) {
        free(gp);
        free(gs);
        free(gt);
        return -ENOMEM;
    }
    for (size_t j = 0; j < (size_t)m->n_in && m->g_cap; j++) {
        memcpy(gp + j * cap, m->g_ptr + j * m->g_cap, m->g_cap * sizeof *gp);
        memcpy(gs + j * cap, m->g_size + j * m->g_cap, m->g_cap * sizeof *gs);
        memcpy(gt + j * cap, m->g_toff + j * m->g_cap, m->g_cap * sizeof *gt);
    }
    free(m->g_ptr);
    free(m->g_size);
    free(m->g_toff);
    m->g_ptr = gp;
    m->g_size = gs;
    m->g_toff = gt;
    m->g_cap = cap;
    return 0;
}

static int tmp_append(pp_map_iter *m, const void *p, size_t n, size_t *off)
{
    if (m->tmp_used + n > m->tmp_cap) {
        size_t cap = m->tmp_cap ? m->tmp_cap : 4096;
        while (cap < m->tmp_used + n)
            cap *= 2;
        char *t = realloc(m->tmp, cap);
        if (!t)
            return -ENOMEM;
        m->tmp = t;
        m->tmp_cap = cap;
    }
    *off = m->tmp_used;
    if (n)
        memcpy(m->tmp + m->tmp_used, p, n);
    m->tmp_used += n;
    return 0;
}

static void input_fails(pp_map_iter *m, size_t pos, int err, const char *fmt, ...)
    PP_PRINTF(4, 5);
static void input_fails(pp_map_iter *m, size_t pos, int err, const char *fmt, ...)
{
    m->input_end = true;
    m->in_err = err;
    m->in_err_at = pos;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->in_err_msg, sizeof m->in_err_msg, fmt, ap);
    va_end(ap);
}

/* Collect up to @want items from position @first into the scratch arrays.
 * Returns the count (fewer at the end of an input or on an input error,
 * which are recorded), or -ENOMEM. */
static long gather(pp_map_iter *m, size_t first, size_t want)
{
    m->tmp_used = 0;
    if (!m->per_item)
        return (long)want; /* contiguous arrays and shared inputs: nothing to collect */
    if (want > m->g_cap && m->n_limit != SIZE_MAX && grow_scratch(m, want))
        return -ENOMEM;
    size_t k;
    for (k = 0; k < want; k++) {
        if (k >= m->g_cap && grow_scratch(m, k + 1))
            return -ENOMEM;
        size_t i = first + k;
        for (int j = 0; j < m->n_in; j++) {
            const pp_map_input *d = &m->in[j];
            size_t g = (size_t)j * m->g_cap + k;
            if (m->in_shm[j])
                continue;
            switch (d->kind) {
            case PP_MAP_IN_ARRAY:
                m->g_ptr[g] = (const char *)d->base + i * d->stride;
                m->g_size[g] = d->item_size;
                break;
            case PP_MAP_IN_PTRS: {
                const char *p = d->items[i];
                size_t sz = d->sizes ? d->sizes[i] : (p ? strlen(p) : 0);
                if (!p && sz) {
                    input_fails(m, i, -EINVAL, "input %d item %zu: NULL pointer with size %zu",
                                j, i, sz);
                    return (long)k;
                }
                m->g_ptr[g] = p;
                m->g_size[g] = sz;
                break;
            }
            case PP_MAP_IN_PACKED: {
                size_t o0 = d->offsets[i], o1 = d->offsets[i + 1];
                if (o1 < o0) {
                    input_fails(m, i, -EINVAL, "input %d item %zu: offsets decrease", j, i);
                    return (long)k;
                }
                m->g_ptr[g] = (const char *)d->base + o0;
                m->g_size[g] = o1 - o0;
                break;
            }
            default: { /* PP_MAP_IN_GEN */
                const void *p = NULL;
                size_t sz = 0;
                int rc = d->gen(d->user, i, &p, &sz);
                if (rc == 0) {
                    m->input_end = true;
                    return (long)k;
                }
                if (rc < 0) {
                    input_fails(m, i, rc, "input %d: generator failed at item %zu: %s", j, i,
                                pp_strerror(rc));
                    return (long)k;
                }
                if (!p && sz) {
                    input_fails(m, i, -EINVAL, "input %d: generator gave NULL with size %zu",
                                j, sz);
                    return (long)k;
                }
                m->g_ptr[g] = NULL;
                m->g_size[g] = sz;
                if (tmp_append(m, p, sz, &m->g_toff[g]))
                    return -ENOMEM;
                break;
            }
            }
        }
    }
    return (long)k;
}

/* Space for a blob of @bytes: in the ring, or its own block when large.
 * Returns the pointer, or NULL when there is no room now (*fatal set when
 * there never will be). */
static char *blob_alloc(pp_map_iter *m, size_t bytes, mi_batch *bt, bool *fatal)
{
    *fatal = false;
    bytes = (bytes + 63) & ~(size_t)63;
    bool empty = m->published == m->consumed;
    if (!m->ring) {
        size_t cap = bytes * ((size_t)m->nwork + 2);
        cap += cap / 4;
        if (cap < MI_RING_MIN)
            cap = MI_RING_MIN;
        if (cap > MI_RING_MAX)
            cap = MI_RING_MAX;
        cap = (cap + 4095) & ~(size_t)4095;
        void *p;
        if (pp_shm_alloc(m->ex, cap, &p) != 0) {
            *fatal = true;
            return NULL;
        }
        m->ring = p;
        m->ring_cap = cap;
    }
    if (bytes > m->ring_cap / 2) {
        void *p;
        if (pp_shm_alloc(m->ex, bytes, &p) != 0) {
            *fatal = empty; /* with chunks in flight, room may come back */
            return NULL;
        }
        bt->own = true;
        bt->ring_end = m->ring_head;
        return p;
    }
    uint64_t start = m->ring_head;
    size_t off = (size_t)(start % m->ring_cap);
    if (off + bytes > m->ring_cap)
        start += m->ring_cap - off;
    if (start + bytes - m->ring_tail > m->ring_cap)
        return NULL; /* never when empty: bytes <= cap / 2 */
    m->ring_head = start + bytes;
    bt->own = false;
    bt->ring_end = m->ring_head;
    return m->ring + (start % m->ring_cap);
}

/* Stage one batch. Returns 1 (staged), 0 (nothing now), or a negative
 * error (the map cannot go on). */
static int stage_batch(pp_map_iter *m)
{
    if (m->stopped || m->final_err)
        return 0;
    if (m->published + m->bc - m->consumed > m->nrec)
        return 0;
    /* relaxed: a shrinking hint; staging past it only wastes work. */
    if (m->published >= atomic_load_explicit(&m->h->limit, memory_order_relaxed))
        return 0;
    const size_t first = m->items_staged;
    size_t count;
    if (m->pending) {
        count = m->pend_count;
    } else {
        if (m->input_end)
            return 0;
        size_t want = m->cs * m->bc;
        if (m->n_limit != SIZE_MAX && want > m->n_limit - first)
            want = m->n_limit - first;
        if (want == 0) {
            m->input_end = true;
            return 0;
        }
        long got = gather(m, first, want);
        if (got < 0)
            return (int)got;
        if (got == 0) {
            m->input_end = true;
            return 0;
        }
        count = (size_t)got;
        /* Packed inputs are copied as one run: their offsets must not go
         * backwards (checked here, as nothing else reads them one by one). */
        for (int j = 0; j < m->n_in; j++) {
            const pp_map_input *d = &m->in[j];
            if (d->kind != PP_MAP_IN_PACKED || m->in_shm[j])
                continue;
            for (size_t k = 0; k < count; k++)
                if (d->offsets[first + k + 1] < d->offsets[first + k]) {
                    input_fails(m, first + k, -EINVAL, "input %d item %zu: offsets decrease", j,
                                first + k);
                    count = k;
                    break;
                }
        }
        if (count == 0) {
            m->input_end = true;
            return 0;
        }
        if (count < want)
            m->input_end = true; /* an input ended (or failed) inside this batch */
        m->pending = true;
        m->pend_count = count;
    }
    const int n_in = m->n_in;
    uint64_t sect[PP_MAP_MAX_INPUTS + 2];
    size_t bytes = al16(8 * ((size_t)n_in + 2));
    size_t data_bytes = 0;
    bool any = false;
    for (int j = 0; j < n_in; j++) {
        sect[j] = 0;
        if (m->in_shm[j])
            continue;
        any = true;
        sect[j] = bytes;
        size_t g0 = (size_t)j * m->g_cap;
        if (m->in[j].kind == PP_MAP_IN_ARRAY) {
            bytes += count * m->in[j].item_size;
            data_bytes += count * m->in[j].item_size;
        } else {
            size_t sum = 0;
            if (m->in[j].kind == PP_MAP_IN_PACKED)
                sum = m->in[j].offsets[first + count] - m->in[j].offsets[first];
            else
                for (size_t k = 0; k < count; k++)
                    sum += m->g_size[g0 + k];
            bytes += 8 * (count + 2) + sum;
            data_bytes += sum;
        }
        bytes = al16(bytes);
    }
    sect[n_in] = sect[n_in + 1] = 0;
    bool out_staged = !m->out_shm && m->out_cap;
    if (out_staged) {
        any = true;
        sect[n_in] = bytes;
        bytes = al16(bytes + count * m->out_cap);
        if (m->out_var) {
            sect[n_in + 1] = bytes;
            bytes += 8 * count;
        }
    }
    uint64_t b = m->published / m->bc;
    mi_batch *bt = &m->bat[b % m->nb];
    char *blob = NULL;
    if (any) {
        bool fatal;
        blob = blob_alloc(m, bytes, bt, &fatal);
        if (!blob)
            return fatal ? -ENOMEM : 0;
        memcpy(blob, sect, 8 * ((size_t)n_in + 2));
        for (int j = 0; j < n_in; j++) {
            if (m->in_shm[j])
                continue;
            size_t g0 = (size_t)j * m->g_cap;
            char *dst = blob + sect[j];
            const pp_map_input *d = &m->in[j];
            if (d->kind == PP_MAP_IN_ARRAY) {
                if (d->stride == d->item_size)
                    memcpy(dst, (const char *)d->base + first * d->stride,
                           count * d->item_size);
                else
                    for (size_t k = 0; k < count; k++)
                        memcpy(dst + k * d->item_size, m->g_ptr[g0 + k], d->item_size);
                continue;
            }
            /* [count][offsets count+1][bytes] */
            uint64_t *hdr = (uint64_t *)dst;
            uint64_t *offs = hdr + 1;
            char *data = (char *)(offs + count + 1);
            hdr[0] = count;
            uint64_t o = 0;
            if (d->kind == PP_MAP_IN_PACKED) { /* one copy of the whole run */
                const size_t *uo = d->offsets + first;
                memcpy(data, (const char *)d->base + uo[0], uo[count] - uo[0]);
                for (size_t k = 0; k <= count; k++)
                    offs[k] = uo[k] - uo[0];
                continue;
            }
            for (size_t k = 0; k < count; k++) {
                size_t sz = m->g_size[g0 + k];
                const char *src = m->g_ptr[g0 + k] ? m->g_ptr[g0 + k] : m->tmp + m->g_toff[g0 + k];
                offs[k] = o;
                if (sz)
                    memcpy(data + o, src, sz);
                o += sz;
            }
            offs[count] = o;
        }
    } else {
        bt->own = false;
        bt->ring_end = m->ring_head;
    }
    bt->blob = blob;
    bt->c0 = m->published;
    bt->nch = (count + m->cs - 1) / m->cs;
    m->batch[b % m->nb] = blob ? pp_shm_offset(m->ex, blob) : 0;
    m->published += bt->nch;
    m->items_staged += count;
    m->pending = false;
    m->st.chunks += bt->nch;
    m->st.staged_bytes += data_bytes;
    if (m->published - m->consumed > m->st.max_in_flight)
        m->st.max_in_flight = (size_t)(m->published - m->consumed);
    return 1;
}

/* Stage as many batches as fit, publish them, start runners. */
static int refill(pp_map_iter *m)
{
    int n = 0, rc;
    while ((rc = stage_batch(m)) > 0) {
        /* Publish each batch at once, so that runners start on it while the
         * next one is being copied (it matters for large chunks). */
        /* relaxed: published by the seq_cst store of avail below. */
        atomic_store_explicit(&m->h->items_pub, m->items_staged, memory_order_relaxed);
        /* seq_cst: publishes the batch (runners acquire avail), and is the
         * client's half of the runner-exit Dekker pair. */
        atomic_store_explicit(&m->h->avail, m->published, memory_order_seq_cst);
        if (++n == 1)
            ensure_runners(m);
    }
    if (rc < 0 && m->published == m->consumed) {
        set_final(m, rc, m->items_staged, 0, 0, "no room in the shared arena for a chunk");
        stop_map(m);
    }
    if (n > 1)
        ensure_runners(m);
    return rc < 0 ? rc : 0;
}

/* Give back chunk m->consumed (its results were read), and its batch after
 * its last chunk. */
static void release_chunk(pp_map_iter *m)
{
    mi_batch *bt = batch_of(m, m->consumed);
    m->consumed++;
    if (m->consumed == bt->c0 + bt->nch) {
        if (bt->own)
            pp_shm_free(m->ex, bt->blob);
        else
            m->ring_tail = bt->ring_end;
        bt->own = false;
        bt->blob = NULL;
    }
}

/* Probe the runners' futures with a short wait so that a dead pool (which
 * only a waiting future notices) fails them; then reap. */
static void probe(pp_map_iter *m)
{
    uint64_t now = ppi_now_ns();
    if (now - m->last_probe < MI_PROBE_NS)
        return;
    m->last_probe = now;
    for (uint32_t rid = 0; rid < m->nrun; rid++)
        if (m->rf[rid])
            reap_one(m, rid, 0.0005);
    check_suspects(m);
}

/* Wait until chunk @x is finished. Returns 0 or -ETIMEDOUT. */
static int wait_chunk(pp_map_iter *m, uint64_t x, bool spin)
{
    mi_hdr *h = m->h;
    if (spin) {
        uint64_t until = ppi_now_ns() + MI_SPIN_NS;
        while (!chunk_done(m, x)) {
            if (ppi_now_ns() > until)
                break;
            for (int i = 0; i < 32; i++)
                ppi_cpu_relax();
        }
    }
    for (;;) {
        if (chunk_done(m, x))
            return 0;
        reap(m, 0);
        check_suspects(m);
        ensure_runners(m);
        /* relaxed: a hint; past a failure nothing is claimed: let the
         * caller look at the earlier chunks. */
        if (chunk_done(m, x) || x >= atomic_load_explicit(&h->limit, memory_order_relaxed))
            return 0;
        uint64_t left = ppi_remaining(m->deadline, MI_NAP_NS);
        if (left == 0)
            return -ETIMEDOUT;
        /* acquire: a bump after this read makes FUTEX_WAIT return at once. */
        uint32_t v = atomic_load_explicit(&h->cword, memory_order_acquire);
        /* relaxed: published by the release store of cwait. */
        atomic_store_explicit(&h->wake_at, x, memory_order_relaxed);
        /* release: wake_at before cwait (the runner acquires cwait). */
        atomic_store_explicit(&h->cwait, 1, memory_order_release);
        /* seq_cst fence: cwait before the re-check (pairs with mi_notify). */
        atomic_thread_fence(memory_order_seq_cst);
        if (chunk_done(m, x)) {
            atomic_store_explicit(&h->cwait, 0, memory_order_relaxed); /* relaxed: ours */
            return 0;
        }
        int rc = ppi_futex_wait(&h->cword, v, left, true);
        atomic_store_explicit(&h->cwait, 0, memory_order_relaxed); /* relaxed: ours */
        if (rc == -ETIMEDOUT)
            probe(m);
    }
}

/* Items of finished chunk @c (done word @d) that may be delivered. */
static size_t deliverable(pp_map_iter *m, uint64_t c, uint64_t d)
{
    if (mi_dw_state(d) == MI_DONE)
        return chunk_count(m, c);
    uint32_t w = mi_dw_worker(d);
    if (w < m->nwork)
        return (size_t)m->errs[w].n_ok;
    for (mi_cerr *e = m->cerrs; e; e = e->next)
        if (e->seq == c)
            return (size_t)e->n_ok;
    return 0;
}

/* The error that failed chunk @c (done word @d) reports, at position @pos. */
static void chunk_error(pp_map_iter *m, uint64_t c, uint64_t d, size_t pos)
{
    if (c >= m->dead_from) {
        char msg[128];
        snprintf(msg, sizeof msg, "map chunk not run: %s", pp_strerror(m->dead_err));
        set_final(m, m->dead_err, pos, 0, 0, msg);
        return;
    }
    uint32_t w = mi_dw_worker(d);
    if (w < m->nwork) {
        mi_errslot *es = &m->errs[w];
        char msg[MI_MSG + 1];
        size_t n = es->len < MI_MSG ? es->len : MI_MSG - 1;
        memcpy(msg, es->msg, n);
        msg[n] = '\0';
        set_final(m, es->err, pos, es->code, es->pid, msg);
        return;
    }
    for (mi_cerr *e = m->cerrs; e; e = e->next)
        if (e->seq == c) {
            set_final(m, e->err, pos, e->code, e->pid, e->msg);
            return;
        }
    set_final(m, PP_EBROKEN, pos, 0, 0, NULL);
}

/* ---- begin / next / end ------------------------------------------------ */

static int check_input(pp_executor *ex, const pp_map_input *d, bool *shm)
{
    *shm = false;
    switch (d->kind) {
    case PP_MAP_IN_ARRAY:
        if (d->count && !d->base)
            return -EINVAL;
        if (d->stride < d->item_size)
            return -EINVAL;
        if (d->count && d->item_size) {
            if (d->count - 1 > (SIZE_MAX - d->item_size) / d->stride)
                return -EINVAL;
            *shm = in_shm(ex, d->base, (d->count - 1) * d->stride + d->item_size);
        }
        return 0;
    case PP_MAP_IN_PTRS:
        return d->count && !d->items ? -EINVAL : 0;
    case PP_MAP_IN_PACKED:
        if (!d->offsets || (d->count && !d->base))
            return -EINVAL;
        if (d->count && d->count < SIZE_MAX / sizeof(size_t) &&
            in_shm(ex, d->offsets, (d->count + 1) * sizeof(size_t))) {
            bool mono = true;
            for (size_t i = 0; i < d->count && mono; i++)
                mono = d->offsets[i] <= d->offsets[i + 1];
            size_t end = d->offsets[d->count];
            *shm = mono && end > 0 && in_shm(ex, d->base, end);
        }
        return 0;
    case PP_MAP_IN_GEN:
        return d->gen ? 0 : -EINVAL;
    default:
        return -EINVAL;
    }
}

static void map_free(pp_map_iter *m)
{
    if (!m)
        return;
    if (m->bat)
        for (uint32_t b = 0; b < m->nb; b++)
            if (m->bat[b].own && m->bat[b].blob)
                pp_shm_free(m->ex, m->bat[b].blob);
    if (m->ring)
        pp_shm_free(m->ex, m->ring);
    if (m->block)
        pp_shm_free(m->ex, m->block);
    while (m->cerrs) {
        mi_cerr *e = m->cerrs;
        m->cerrs = e->next;
        free(e);
    }
    while (m->suspects) {
        mi_cerr *e = m->suspects;
        m->suspects = e->next;
        free(e);
    }
    free(m->rf);
    free(m->rid_free);
    free(m->bat);
    free(m->g_ptr);
    free(m->g_size);
    free(m->g_toff);
    free(m->tmp);
    free(m);
}

/* Everything pp_map_begin does, for both modes. */
static int map_start(pp_map_iter **out, pp_executor *ex, pp_map_fn fn, const pp_map_input *in,
                     int n_in, const pp_map_opts *opts_in, bool all, void *outbuf,
                     size_t out_count, size_t *out_sizes)
{
    pp_map_opts opts;
    if (opts_in)
        opts = *opts_in;
    else
        pp_map_opts_init(&opts);
    if (!out || !ex || !fn || n_in < 0 || n_in > PP_MAP_MAX_INPUTS || (n_in && !in))
        return -EINVAL;
    if (opts.chunksize < 1 || isnan(opts.timeout) || (opts.ctx_size && !opts.ctx))
        return -EINVAL;
    if (opts.out_size > ((size_t)1 << 40) || opts.ctx_size > ((size_t)1 << 30) ||
        opts.chunksize > ((size_t)1 << 48))
        return -EINVAL;
    if (all && opts.out_size && (!outbuf || out_count == SIZE_MAX))
        return -EINVAL;
    int nwork = pp_max_workers(ex);
    if (nwork == PP_EFORKED)
        return PP_EFORKED; /* a fork()ed child of the client */
    if (nwork < 1)
        return -EINVAL;
    pp_map_iter *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->ex = ex;
    m->fn = fn;
    m->n_in = n_in;
    m->cs = opts.chunksize;
    m->timeout = opts.timeout;
    m->all = all;
    m->out_cap = opts.out_size;
    m->out_var = opts.out_variable;
    m->nwork = (uint32_t)nwork;
    m->n_limit = n_in ? SIZE_MAX : 0;
    m->dead_from = UINT64_MAX;
    for (int j = 0; j < n_in; j++) {
        m->in[j] = in[j];
        if (m->in[j].kind == PP_MAP_IN_ARRAY && !m->in[j].stride)
            m->in[j].stride = m->in[j].item_size;
        int rc = check_input(ex, &m->in[j], &m->in_shm[j]);
        if (rc) {
            free(m);
            return rc;
        }
        if (m->in[j].kind != PP_MAP_IN_GEN && m->in[j].count < m->n_limit)
            m->n_limit = m->in[j].count;
        if (!m->in_shm[j] && m->in[j].kind != PP_MAP_IN_PACKED &&
            (m->in[j].kind != PP_MAP_IN_ARRAY || m->in[j].stride != m->in[j].item_size))
            m->per_item = true;
    }
    if (all) {
        if (out_count < m->n_limit)
            m->n_limit = out_count;
        m->out = outbuf;
        m->out_sizes = m->out_var ? out_sizes : NULL;
        size_t n = m->n_limit;
        if (m->out_cap && n && n != SIZE_MAX && n <= SIZE_MAX / m->out_cap)
            m->out_shm = in_shm(ex, outbuf, n * m->out_cap) &&
                         (!m->out_sizes || in_shm(ex, m->out_sizes, n * sizeof(size_t)));
    }
    /* The window: nrec chunks in flight, in nb batches of bc chunks. */
    uint64_t nchunks = m->n_limit == SIZE_MAX ? UINT64_MAX
                                              : (m->n_limit / m->cs) + (m->n_limit % m->cs != 0);
    uint64_t nrec = MI_WINDOW_MAX;
    if (opts.buffersize && opts.buffersize < nrec)
        nrec = opts.buffersize;
    if (nchunks < nrec)
        nrec = nchunks ? nchunks : 1;
    uint64_t bc = m->cs >= MI_BATCH_ITEMS ? 1 : MI_BATCH_ITEMS / m->cs;
    if (bc > nrec / 4)
        bc = nrec / 4 ? nrec / 4 : 1;
    m->bc = (uint32_t)bc;
    m->nb = (uint32_t)(nrec / bc);
    m->nrec = m->nb * m->bc;
    m->nrun = 2 * m->nwork + 2;
    size_t off_ctx = al16(sizeof(mi_hdr));
    size_t off_done = (off_ctx + opts.ctx_size + 63) & ~(size_t)63;
    size_t off_batch = off_done + (size_t)m->nrec * 8;
    size_t off_run = (off_batch + (size_t)m->nb * 8 + 63) & ~(size_t)63;
    size_t off_errs = off_run + (size_t)m->nrun * sizeof(mi_rslot);
    size_t total = off_errs + (size_t)m->nwork * sizeof(mi_errslot);
    m->rf = calloc(m->nrun, sizeof *m->rf);
    m->rid_free = calloc(m->nrun, sizeof *m->rid_free);
    m->bat = calloc(m->nb, sizeof *m->bat);
    if (!m->rf || !m->rid_free || !m->bat) {
        map_free(m);
        return -ENOMEM;
    }
    int rc = pp_shm_alloc(ex, total, &m->block);
    if (rc) {
        map_free(m);
        return rc;
    }
    /* The item function crosses to the workers as a token, like a pp_fn. */
    uint64_t token = ppi_fn_encode(mi_modtab(m->block, pp_shm_offset(ex, m->block)),
                                   (uintptr_t)fn);
    if (!token) {
        map_free(m);
        return PP_ENOFUNC;
    }
    memset(m->block, 0, total);
    mi_hdr *h = m->h = m->block;
    h->magic = MI_MAGIC;
    h->fn = token;
    h->cs = m->cs;
    h->n_in = (uint32_t)n_in;
    h->nrec = m->nrec;
    h->nb = m->nb;
    h->bc = m->bc;
    h->nrun = m->nrun;
    h->nwork = m->nwork;
    h->out_cap = m->out_cap;
    h->out_var = m->out_var;
    h->out_shm = m->out_shm;
    if (m->out_shm) {
        h->out_off = pp_shm_offset(ex, m->out);
        h->sizes_off = m->out_sizes ? pp_shm_offset(ex, m->out_sizes) : 0;
    }
    h->ctx_rel = off_ctx;
    h->ctx_size = opts.ctx_size;
    if (opts.ctx_size)
        memcpy((char *)h + off_ctx, opts.ctx, opts.ctx_size);
    h->done_rel = off_done;
    h->batch_rel = off_batch;
    h->run_rel = off_run;
    h->errs_rel = off_errs;
    for (int j = 0; j < n_in; j++) {
        mi_in *d = &h->in[j];
        const pp_map_input *s = &m->in[j];
        d->item_size = s->item_size;
        d->stride = s->stride;
        if (s->kind == PP_MAP_IN_ARRAY)
            d->how = m->in_shm[j] ? MI_IN_SHM_FIXED : MI_IN_STAGED_FIXED;
        else
            d->how = m->in_shm[j] ? MI_IN_SHM_PACKED : MI_IN_STAGED_VAR;
        if (m->in_shm[j]) {
            d->off = pp_shm_offset(ex, s->base);
            d->off2 = s->kind == PP_MAP_IN_PACKED ? pp_shm_offset(ex, s->offsets) : 0;
        }
    }
    /* init (plain): no runner exists yet; the first pp_submit's release
     * publishes the whole block. */
    atomic_init(&h->next, 0);
    atomic_init(&h->avail, 0);
    atomic_init(&h->items_pub, 0);
    atomic_init(&h->limit, UINT64_MAX);
    m->done = (_Atomic uint64_t *)((char *)h + off_done);
    m->batch = (uint64_t *)((char *)h + off_batch);
    m->rs = (mi_rslot *)((char *)h + off_run);
    m->errs = (mi_errslot *)((char *)h + off_errs);
    /* A done word must never match a chunk it does not belong to: start
     * every word one lap behind. */
    for (uint32_t i = 0; i < m->nrec; i++) /* init: as above */
        atomic_init(&m->done[i], mi_dw((uint64_t)i - m->nrec, 0, MI_DONE));
    for (uint32_t i = 0; i < m->nrun; i++)
        m->rid_free[m->n_rid_free++] = m->nrun - 1 - i;
    m->deadline = ppi_deadline(opts.timeout);
    m->last_probe = ppi_now_ns();

    rc = refill(m);
    if (!rc && m->published && m->submit_err && m->dead_from == 0)
        rc = m->submit_err; /* the executor refused the first runner: nothing ran */
    if (rc) {
        stop_map(m);
        reap(m, PP_FOREVER);
        map_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int pp_map_begin(pp_map_iter **out, pp_executor *ex, pp_map_fn fn, const pp_map_input *in,
                 int n_in, const pp_map_opts *opts)
{
    if (out)
        *out = NULL;
    return map_start(out, ex, fn, in, n_in, opts, false, NULL, 0, NULL);
}

/* The map reached the end of what was published and nothing more comes. */
static int at_end(pp_map_iter *m)
{
    if (m->in_err) {
        set_final(m, m->in_err, m->in_err_at, 0, 0, m->in_err_msg);
        stop_map(m);
        return m->final_err;
    }
    m->st.error = -ENOENT;
    return -ENOENT;
}

static void timed_out(pp_map_iter *m)
{
    char msg[96];
    if (m->timeout >= 0)
        snprintf(msg, sizeof msg, "map timed out after %.3f s", m->timeout);
    else
        snprintf(msg, sizeof msg, "map timed out");
    set_final(m, -ETIMEDOUT, m->st.done, 0, 0, msg);
    stop_map(m);
}

/* Nothing is in flight: either the inputs are exhausted, or staging is
 * impossible. Returns the code to report. */
static int drained(pp_map_iter *m)
{
    if (m->input_end && !m->pending)
        return at_end(m);
    set_final(m, -ENOMEM, m->st.done, 0, 0, "map: no room to stage a chunk");
    stop_map(m);
    return m->final_err;
}

int pp_map_next(pp_map_iter *m, const void **res, size_t *res_size)
{
    if (res)
        *res = NULL;
    if (res_size)
        *res_size = 0;
    if (!m)
        return -EINVAL;
    if (pp_max_workers(m->ex) == PP_EFORKED)
        return PP_EFORKED; /* a fork()ed child's copy: the map is the parent's */
    if (m->final_err)
        return m->final_err;
    for (;;) {
        if (m->cur_valid) {
            uint64_t c = m->consumed;
            uint64_t d = chunk_done(m, c);
            if (m->cur_k < deliverable(m, c, d)) {
                mi_batch *bt = batch_of(m, c);
                if (m->out_cap && bt->blob) {
                    const uint64_t *bh = (const uint64_t *)bt->blob;
                    size_t k = (size_t)(c - bt->c0) * m->cs + m->cur_k;
                    if (res)
                        *res = bt->blob + bh[m->n_in] + k * m->out_cap;
                    if (res_size)
                        *res_size = m->out_var ? (size_t)((const uint64_t *)(bt->blob +
                                                                             bh[m->n_in + 1]))[k]
                                               : m->out_cap;
                }
                m->cur_k++;
                m->st.done++;
                return 0;
            }
            if (mi_dw_state(d) != MI_DONE) {
                chunk_error(m, c, d, m->st.done);
                stop_map(m);
                return m->final_err;
            }
            m->cur_valid = false;
            release_chunk(m);
        }
        /* Refill when the window is half empty: publishing in batches keeps
         * the runners' view of `avail` in their caches. */
        if (m->published - m->consumed <= m->nrec / 2)
            refill(m);
        if (m->final_err)
            return m->final_err;
        if (m->consumed == m->published)
            return drained(m);
        if (m->stopped && m->consumed >= m->closed_at) {
            set_final(m, -ECANCELED, m->st.done, 0, 0, NULL);
            return m->final_err;
        }
        if (wait_chunk(m, m->consumed, true) == -ETIMEDOUT) {
            timed_out(m);
            return m->final_err;
        }
        if (!chunk_done(m, m->consumed))
            continue;
        m->cur_valid = true;
        m->cur_k = 0;
    }
}

int pp_map_get_status(const pp_map_iter *m, pp_map_status *st)
{
    if (!m || !st)
        return -EINVAL;
    *st = m->st;
    return 0;
}

int pp_map_end(pp_map_iter *m)
{
    if (!m)
        return -EINVAL;
    if (pp_max_workers(m->ex) == PP_EFORKED) {
        /* A fork()ed child's copy: free its private memory only (releases and
         * pp_shm_free touch nothing shared there). */
        for (uint32_t rid = 0; rid < m->nrun; rid++)
            pp_future_release(m->rf[rid]);
        map_free(m);
        return PP_EFORKED;
    }
    stop_map(m);
    for (uint32_t rid = 0; rid < m->nrun; rid++)
        if (m->rf[rid])
            pp_future_cancel(m->rf[rid]);
    reap(m, PP_FOREVER);
    map_free(m);
    return 0;
}

/* memcpy for large result runs: streaming stores on x86-64, so that the
 * caller's array is written without being read into the cache first (the
 * copy is the client's main cost in an all-at-once map; this halves it). */
static void copy_big(char *dst, const char *src, size_t n)
{
#if defined(__x86_64__) && defined(__SSE2__)
    if (n >= ((size_t)64 << 10)) {
        size_t head = (16 - ((uintptr_t)dst & 15)) & 15;
        memcpy(dst, src, head);
        dst += head;
        src += head;
        n -= head;
        for (; n >= 64; n -= 64, dst += 64, src += 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)src);
            __m128i b = _mm_loadu_si128((const __m128i *)(src + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(src + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(src + 48));
            _mm_stream_si128((__m128i *)dst, a);
            _mm_stream_si128((__m128i *)(dst + 16), b);
            _mm_stream_si128((__m128i *)(dst + 32), c);
            _mm_stream_si128((__m128i *)(dst + 48), d);
        }
        _mm_sfence(); /* streaming stores are weakly ordered */
    }
#endif
    memcpy(dst, src, n);
}

/* Copy the results of @n items, starting with the first item of chunk @c,
 * into the caller's out. The items are consecutive in one batch. */
static void copy_out(pp_map_iter *m, uint64_t c, size_t n)
{
    if (!n || !m->out_cap || m->out_shm)
        return;
    mi_batch *bt = batch_of(m, c);
    const uint64_t *bh = (const uint64_t *)bt->blob;
    size_t k = (size_t)(c - bt->c0) * m->cs, first = (size_t)c * m->cs;
    copy_big(m->out + first * m->out_cap, bt->blob + bh[m->n_in] + k * m->out_cap,
             n * m->out_cap);
    m->st.result_bytes += n * m->out_cap;
    if (m->out_var && m->out_sizes) {
        const uint64_t *sz = (const uint64_t *)(bt->blob + bh[m->n_in + 1]) + k;
        for (size_t i = 0; i < n; i++)
            m->out_sizes[first + i] = (size_t)sz[i];
    }
}

int pp_map(pp_executor *ex, pp_map_fn fn, const pp_map_input *in, int n_in, void *out,
           size_t out_count, size_t *out_sizes, const pp_map_opts *opts, pp_map_status *st)
{
    if (st)
        memset(st, 0, sizeof *st);
    pp_map_iter *m = NULL;
    int rc = map_start(&m, ex, fn, in, n_in, opts, true, out, out_count, out_sizes);
    if (rc) {
        if (st) {
            st->error = rc;
            snprintf(st->message, sizeof st->message, "%s", pp_strerror(rc));
        }
        return rc;
    }
    bool expired = false;
    for (;;) {
        /* Take every finished chunk, in order; copy the results out in runs
         * (one copy per batch, or per part of a batch). */
        uint64_t run = m->consumed;
        size_t run_items = 0;
        while (m->consumed < m->published) {
            uint64_t c = m->consumed;
            uint64_t d = chunk_done(m, c);
            if (!d)
                break;
            size_t ok = deliverable(m, c, d);
            if (mi_dw_state(d) != MI_DONE) {
                copy_out(m, run, run_items + ok);
                run_items = 0;
                m->st.done += ok;
                chunk_error(m, c, d, m->st.done);
                stop_map(m);
                break;
            }
            m->st.done += ok;
            run_items += ok;
            mi_batch *bt = batch_of(m, c);
            if (c + 1 == bt->c0 + bt->nch) { /* the batch's blob goes below */
                copy_out(m, run, run_items);
                run = c + 1;
                run_items = 0;
            }
            release_chunk(m);
        }
        copy_out(m, run, run_items);
        if (m->final_err)
            break;
        if (!expired)
            refill(m);
        if (m->final_err)
            break;
        if (m->consumed == m->published) {
            if (!expired || (m->input_end && !m->pending)) {
                drained(m);
                break;
            }
        }
        if (expired) { /* what was done by the deadline is delivered above */
            timed_out(m);
            break;
        }
        /* Sleep until about half of what is in flight is done (chunks
         * finish nearly in order); if that one is done already, an earlier
         * chunk is late: wait for it. */
        uint64_t x = m->consumed + (m->published - m->consumed) / 2;
        /* relaxed: a hint; chunks at or past a failure never run. */
        if (chunk_done(m, x) || x >= atomic_load_explicit(&m->h->limit, memory_order_relaxed))
            x = m->consumed;
        if (wait_chunk(m, x, false) == -ETIMEDOUT)
            expired = true;
    }
    rc = m->final_err;
    if (st) {
        *st = m->st;
        if (!rc)
            st->error = 0;
    }
    pp_map_end(m);
    return rc;
}
