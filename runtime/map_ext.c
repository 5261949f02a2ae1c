/*
 * map_ext.c — pp_map chunks run on another node (ext_worker.h's
 * pp_ext_map_*): at the client, an external worker acts as a map's runner
 * (a remote *lane*); on the serving node, one task runs a shipped chunk.
 *
 * At the client the lane is a runner in every respect the client sees: it
 * holds a runner task's slot RUNNING(xid) and its runner slot (rslot), it
 * claims with map_runner.c's claim (cur = c + 1 stored before the CAS on
 * `next`), it writes the results where a runner would (batch blob or the
 * caller's shared output), its own error slot (index nlocal + lane) and the
 * done word (release), and wakes the client with the same Dekker pair. So
 * map_client.c / map_wait.c are unchanged: results are reordered by the
 * window as for local runners, a closed `next` cancels what nobody claimed,
 * and a lane that closes with an error while it holds a chunk (its rank was
 * lost) is a dead runner whose chunk fails with its error at its first item
 * (progress stays 0 while the chunk is away: its results arrive at once).
 *
 * A lane holds one chunk at a time, so an external-worker layer that gives a
 * remote node at most L lanes has at most L of its chunks in flight there
 * (libppool_mpi: the rank's workers plus one, within its credit); the window
 * (buffersize) bounds the rest.
 *
 * On the wire a chunk is a mi_wchunk (map_internal.h): its items copied
 * into sections, the map's context, the item function's token. The serving
 * node runs it as one task (pp_ext_map_chunk_task) whose result is a
 * mi_wres: the items' results (variable ones packed), their sizes, and the
 * first failing item's error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "ext_worker.h"
#include "fnmap.h"
#include "map_internal.h"

_Static_assert(sizeof(size_t) == sizeof(uint64_t), "packed offsets are read as u64");

struct pp_ext_map {
    pp_executor *ex;
    uint32_t xid;
    pp_ext_item it;     /* the runner task's slot use */
    mi_run r;           /* the runner's view of the map (t NULL) */
    uint64_t idle_since;
};

/* ---- at the client: a remote lane -------------------------------------- */

pp_ext_map *pp_ext_map_open(pp_executor *ex, uint32_t xid, const pp_ext_item *it, uint32_t lane,
                            int *err)
{
    ppi_seg *seg = &ex->seg;
    mi_arg a;
    *err = -EINVAL;
    if (it->arg_size != sizeof a)
        return NULL;
    memcpy(&a, it->arg, sizeof a);
    if (a.block < seg->hdr->arena.off_data || a.block >= seg->size)
        return NULL;
    mi_hdr *h = (mi_hdr *)(seg->base + a.block);
    /* The block was published by the runner task's pp_submit (release),
     * acquired by pp_ext_take's claim. */
    if (h->magic != MI_MAGIC || a.rid >= h->nrun || (uint64_t)h->nlocal + lane >= h->nwork)
        return NULL;
    pp_ext_map *mh = calloc(1, sizeof *mh);
    if (!mh) {
        *err = -ENOMEM;
        return NULL;
    }
    *err = 0;
    mh->ex = ex;
    mh->xid = xid;
    mh->it = *it;
    mi_run *r = &mh->r;
    r->h = h;
    r->done = (_Atomic uint64_t *)((char *)h + h->done_rel);
    r->batch = (const uint64_t *)((char *)h + h->batch_rel);
    r->me = (mi_rslot *)((char *)h + h->run_rel) + a.rid;
    r->widx = (int)(h->nlocal + lane);
    r->es = (mi_errslot *)((char *)h + h->errs_rel) + r->widx;
    r->ctx = h->ctx_size ? (char *)h + h->ctx_rel : NULL;
    r->seg = seg->base;
    for (uint32_t j = 0; j < h->n_in; j++) {
        if (h->in[j].how == MI_IN_SHM_FIXED || h->in[j].how == MI_IN_SHM_PACKED) {
            r->base[j] = seg->base + h->in[j].off;
            if (h->in[j].how == MI_IN_SHM_PACKED)
                r->offs[j] = (const size_t *)(seg->base + h->in[j].off2);
        }
    }
    if (h->out_shm) {
        r->out_base = h->out_off ? seg->base + h->out_off : NULL;
        r->sizes_base = h->sizes_off ? (size_t *)(seg->base + h->sizes_off) : NULL;
    }
    return mh;
}

int pp_ext_map_claim(pp_ext_map *mh, uint64_t *chunk)
{
    pp_executor *ex = mh->ex;
    mi_run *r = &mh->r;
    /* What pp_task_should_stop tells a local runner: the pool's cancel, a
     * broken pool, or the runner's slot no longer ours. */
    bool stop = pp_ext_cancelling(ex) || pp_ext_broken(ex) ||
                pp_ext_state(ex, mh->xid, &mh->it, NULL) != 1;
    int k = ppi_map_claim(r, chunk, stop);
    if (k > 0) {
        /* relaxed: read by the client only for a dead runner (after its
         * future failed, which the publish releases). */
        atomic_store_explicit(&r->me->progress, 0, memory_order_relaxed);
        mh->idle_since = 0;
        return 1;
    }
    /* release: a client that sees cur == 0 also sees the last done word. */
    atomic_store_explicit(&r->me->cur, 0, memory_order_release);
    if (k < 0)
        return -1;
    uint64_t now = ppi_now_ns();
    if (!mh->idle_since)
        mh->idle_since = now;
    else if (now - mh->idle_since > PPI_MAP_LANE_IDLE_NS) {
        if (ppi_map_leave(r))
            return -1;
        mh->idle_since = 0;
    }
    return 0;
}

/* Bytes of input j's section for chunk @ck: fixed (*fixed set) or variable. */
static size_t section_bytes(const mi_run *r, const mi_chunk *ck, uint32_t j, bool *fixed)
{
    const mi_in *d = &r->h->in[j];
    const uint64_t n = ck->count;
    if (d->how == MI_IN_SHM_FIXED || d->how == MI_IN_STAGED_FIXED) {
        *fixed = true;
        return al16(n * d->item_size);
    }
    *fixed = false;
    const uint64_t *o = d->how == MI_IN_SHM_PACKED ? (const uint64_t *)(r->offs[j] + ck->first)
                                                   : ck->voffs[j];
    return al16((n + 1) * 8 + (o[n] - o[0]));
}

/* Copy input j's items of chunk @ck into its section @dst. */
static void section_fill(const mi_run *r, const mi_chunk *ck, uint32_t j, char *dst)
{
    const mi_in *d = &r->h->in[j];
    const uint64_t n = ck->count;
    switch (d->how) {
    case MI_IN_STAGED_FIXED: /* back to back in the blob already */
        memcpy(dst, ck->p[j], n * d->item_size);
        return;
    case MI_IN_SHM_FIXED:
        if (d->stride == d->item_size) {
            memcpy(dst, ck->p[j], n * d->item_size);
        } else {
            for (uint64_t k = 0; k < n; k++)
                memcpy(dst + k * d->item_size, ck->p[j] + k * d->stride, d->item_size);
        }
        return;
    default: { /* variable: rebased offsets, then the bytes (contiguous in both) */
        const uint64_t *o = d->how == MI_IN_SHM_PACKED ? (const uint64_t *)(r->offs[j] + ck->first)
                                                       : ck->voffs[j];
        uint64_t *wo = (uint64_t *)dst;
        for (uint64_t k = 0; k <= n; k++)
            wo[k] = o[k] - o[0];
        memcpy(dst + (n + 1) * 8, ck->p[j] + o[0], o[n] - o[0]);
        return;
    }
    }
}

void *pp_ext_map_chunk_inputs(pp_ext_map *mh, uint64_t chunk, size_t head, size_t *bytes,
                              int *err)
{
    mi_run *r = &mh->r;
    const mi_hdr *h = r->h;
    mi_chunk ck = {.c = chunk};
    ppi_map_chunk_locate(r, &ck);
    mi_wchunk w = {.magic = MI_WCHUNK_MAGIC,
                   .fn = h->fn,
                   .first = ck.first,
                   .count = ck.count,
                   .out_cap = h->out_cap,
                   .out_var = h->out_var,
                   .n_in = h->n_in,
                   .ctx_size = h->ctx_size};
    size_t off = al16(sizeof w);
    w.ctx_off = off;
    off = al16(off + h->ctx_size);
    for (uint32_t j = 0; j < h->n_in; j++) {
        bool fixed;
        size_t n = section_bytes(r, &ck, j, &fixed);
        w.sect[j] = off;
        w.item_size[j] = fixed ? h->in[j].item_size : 0;
        if (!fixed)
            w.var_mask |= 1u << j;
        off += n;
    }
    w.bytes = off;
    head = al16(head); /* the chunk starts 16-byte aligned in the buffer */
    char *buf = off <= SIZE_MAX - head ? malloc(head + off) : NULL;
    if (!buf) {
        *err = -ENOMEM;
        return NULL;
    }
    char *start = buf;
    buf += head;
    memcpy(buf, &w, sizeof w);
    if (h->ctx_size)
        memcpy(buf + w.ctx_off, r->ctx, h->ctx_size);
    for (uint32_t j = 0; j < h->n_in; j++)
        section_fill(r, &ck, j, buf + w.sect[j]);
    *err = 0;
    *bytes = head + off;
    return start;
}

/* Copy a chunk result's n_ok results where a runner would have written them.
 * Returns false if @w does not fit @len. */
static bool results_place(mi_run *r, const mi_chunk *ck, const mi_wres *w, size_t len)
{
    const mi_hdr *h = r->h;
    const size_t cap = h->out_cap;
    const uint64_t n = ck->count, n_ok = w->n_ok;
    const uint64_t *sizes = (const uint64_t *)(w + 1);
    size_t data = al16(sizeof *w + (h->out_var ? n * 8 : 0));
    if (data > len)
        return false;
    const char *src = (const char *)w + data;
    size_t room = len - data;
    if (!h->out_var) {
        if (n_ok * cap > room)
            return false;
        if (ck->outp)
            memcpy(ck->outp, src, n_ok * cap);
        return true;
    }
    size_t pos = 0;
    for (uint64_t k = 0; k < n_ok; k++) {
        if (sizes[k] > cap || sizes[k] > room - pos)
            return false;
        if (ck->outp)
            memcpy(ck->outp + k * cap, src + pos, sizes[k]);
        if (ck->vsz)
            ck->vsz[k] = sizes[k];
        else if (ck->shm_sz)
            ck->shm_sz[k] = sizes[k];
        pos += sizes[k];
    }
    return true;
}

/* Fail the lane's chunk @c after @n_ok items with @msg in its error slot. */
static void lane_fail(mi_run *r, uint64_t c, uint64_t n_ok, int err, int code, int pid,
                      const char *msg, size_t msg_len)
{
    if (msg_len >= sizeof r->es->msg)
        msg_len = sizeof r->es->msg - 1;
    if (msg_len)
        memcpy(r->es->msg, msg, msg_len);
    r->es->msg[msg_len] = '\0';
    r->es->len = (uint32_t)msg_len;
    ppi_map_fail_chunk(r, c, n_ok, err, code, pid);
}

void pp_ext_map_chunk_done(pp_ext_map *mh, uint64_t chunk, const void *res, size_t len, int err,
                           int code, int pid, const char *msg, size_t msg_len)
{
    mi_run *r = &mh->r;
    /* A broken-pool sweep took the runner's slot: the client may have ended
     * the map and freed its block. Touch nothing. */
    if (pp_ext_state(mh->ex, mh->xid, &mh->it, NULL) == 0)
        return;
    mi_chunk ck = {.c = chunk};
    ppi_map_chunk_locate(r, &ck);
    const mi_wres *w = res;
    if (!err && (len < sizeof *w || w->magic != MI_WRES_MAGIC || w->n_ok > ck.count ||
                 (!w->err && w->n_ok != ck.count) || !results_place(r, &ck, w, len))) {
        static const char bad[] = "malformed chunk result from the serving node";
        err = -EPROTO;
        code = 0;
        msg = bad;
        msg_len = sizeof bad - 1;
    }
    if (err) {
        lane_fail(r, chunk, 0, err, code, pid, msg, msg_len);
    } else {
        /* release: the results before progress (as a local runner's). */
        atomic_store_explicit(&r->me->progress, w->n_ok, memory_order_release);
        if (w->err) {
            lane_fail(r, chunk, w->n_ok, w->err, w->code, w->pid, w->msg,
                      w->len < MI_MSG ? w->len : MI_MSG - 1);
        } else {
            /* release: publishes the chunk's results (pairs with the
             * client's acquire load of the done word). */
            atomic_store_explicit(&r->done[chunk % r->h->nrec],
                                  mi_dw(chunk, (uint32_t)r->widx, MI_DONE), memory_order_release);
            ppi_map_notify(r->h, chunk);
        }
    }
    /* release: a client that sees cur == 0 also sees the done word. */
    atomic_store_explicit(&r->me->cur, 0, memory_order_release);
}

void pp_ext_map_close(pp_ext_map *mh, int err, int rank, const char *msg)
{
    pp_ext_publish(mh->ex, mh->xid, &mh->it, err, 0, 0, rank, msg, msg ? strlen(msg) : 0, 0);
    free(mh);
}

/* ---- on the serving node: one task per chunk --------------------------- */

/* The chunk's shape is consistent with its size (the root is trusted; this
 * guards against a truncated or foreign message). */
static bool wchunk_ok(const mi_wchunk *w, size_t bytes)
{
    if (bytes < sizeof *w || w->magic != MI_WCHUNK_MAGIC || w->bytes != bytes ||
        w->n_in > PP_MAP_MAX_INPUTS || w->ctx_off > bytes || w->ctx_size > bytes - w->ctx_off)
        return false;
    for (uint32_t j = 0; j < w->n_in; j++) {
        if (w->sect[j] > bytes)
            return false;
        uint64_t room = bytes - w->sect[j];
        if (w->var_mask & (1u << j)) {
            if (w->count >= room / 8)
                return false;
            const uint64_t *o = (const uint64_t *)((const char *)w + w->sect[j]);
            if (o[w->count] > room - (w->count + 1) * 8)
                return false;
        } else if (w->item_size[j] && w->count > room / w->item_size[j]) {
            return false;
        }
    }
    return true;
}

int pp_ext_map_chunk_localize(pp_executor *lex, void *chunk, size_t bytes, const char **why)
{
    mi_wchunk *w = chunk;
    *why = "malformed chunk";
    if (!wchunk_ok(w, bytes))
        return -EINVAL;
    pp_fn fn = pp_ext_fn_decode(w->fn, why);
    if (!fn)
        return PP_ENOFUNC;
    w->fn = ppi_fn_encode(ppi_executor_modtab(lex), (uintptr_t)fn);
    if (!w->fn) {
        *why = "the item function is in no module of this node's table";
        return PP_ENOFUNC;
    }
    return 0;
}

size_t pp_ext_map_res_bytes(const void *res, size_t size)
{
    const mi_wres *w = res;
    if (!res || size < sizeof *w || w->magic != MI_WRES_MAGIC || w->bytes > size)
        return 0;
    return w->bytes;
}

/* Item @k's inputs of chunk @w into @in / @in_size. */
static void wchunk_item(const mi_wchunk *w, uint64_t k, const void **in, size_t *in_size)
{
    const char *base = (const char *)w;
    for (uint32_t j = 0; j < w->n_in; j++) {
        if (w->var_mask & (1u << j)) {
            const uint64_t *o = (const uint64_t *)(base + w->sect[j]);
            in[j] = (const char *)(o + w->count + 1) + o[k];
            in_size[j] = o[k + 1] - o[k];
        } else {
            in[j] = base + w->sect[j] + k * w->item_size[j];
            in_size[j] = w->item_size[j];
        }
    }
}

/* Pack the n_ok variable results (at k * cap) back to back; returns their bytes. */
static size_t pack_results(char *data, const uint64_t *sizes, uint64_t n_ok, size_t cap)
{
    size_t pos = 0;
    for (uint64_t k = 0; k < n_ok; k++) {
        if (pos != k * cap)
            memmove(data + pos, data + k * cap, sizes[k]);
        pos += sizes[k];
    }
    return pos;
}

int pp_ext_map_chunk_task(pp_task *t)
{
    size_t asz = 0;
    const mi_wchunk *w = pp_task_arg(t, &asz);
    if (!w || !wchunk_ok(w, asz))
        return pp_task_raise(t, -EINVAL, "map chunk: malformed argument");
    const uint64_t n = w->count;
    const size_t cap = w->out_cap;
    const size_t data_off = al16(sizeof(mi_wres) + (w->out_var ? n * 8 : 0));
    if (cap && n > (SIZE_MAX - data_off) / cap)
        return pp_task_raise(t, -EOVERFLOW, "map chunk: results too large");
    /* NULL: the future fails with PP_ETOOBIG / -ENOMEM, and so the chunk. */
    char *res = pp_task_result(t, data_off + n * cap);
    if (!res)
        return 0;
    mi_wres *wr = (mi_wres *)res;
    memset(wr, 0, sizeof *wr);
    wr->magic = MI_WRES_MAGIC;
    uint64_t *sizes = (uint64_t *)(wr + 1);
    char *data = res + data_off;
    const char *why = "?";
    pp_map_fn fn = (pp_map_fn)ppi_fn_decode(ppi_task_modtab(t), w->fn, &why);
    if (!fn) {
        int k = snprintf(wr->msg, sizeof wr->msg, "cannot call the item function: %s", why);
        wr->len = (uint32_t)(k < 0 ? 0 : k);
        wr->err = PP_ENOFUNC;
        wr->pid = (int32_t)getpid();
        wr->bytes = data_off;
        return 0;
    }
    mi_errslot es;
    mi_itemstate ist = {.h = NULL, .t = t, .es = &es};
    const void *in[PP_MAP_MAX_INPUTS];
    size_t in_size[PP_MAP_MAX_INPUTS];
    pp_map_item it = {.n_in = (int)w->n_in,
                      .in = in,
                      .in_size = in_size,
                      .out_cap = cap,
                      .ctx = w->ctx_size ? (const char *)w + w->ctx_off : NULL,
                      .ctx_size = w->ctx_size,
                      .task = t,
                      .internal_ = &ist};
    for (uint64_t k = 0; k < n; k++) {
        wchunk_item(w, k, in, in_size);
        it.index = w->first + k;
        it.out = cap ? data + k * cap : NULL;
        it.out_size = cap;
        int code = 0;
        int err = ppi_map_item_check(&ist, fn(&it), &it, w->out_var, &es, &code);
        if (err) {
            wr->err = err;
            wr->code = code;
            wr->pid = (int32_t)getpid();
            wr->len = es.len < MI_MSG ? es.len : MI_MSG - 1;
            memcpy(wr->msg, es.msg, wr->len);
            break;
        }
        if (w->out_var)
            sizes[k] = it.out_size;
        wr->n_ok = k + 1;
    }
    wr->bytes = data_off + (w->out_var ? pack_results(data, sizes, wr->n_ok, cap) : wr->n_ok * cap);
    return 0;
}
