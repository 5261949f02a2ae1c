/*
 * map_client.c — pp_map's client API: the input constructors and options,
 * pp_map_begin (checks, the map block, the first batches), pp_map_next
 * (results in input order), pp_map_end, and pp_map (all at once, results
 * copied out in runs).
 *
 * A map allocates one block of shared memory (the window, laid out by
 * map_geometry.c), stages its chunks' inputs (map_stage.c) and lets runner
 * tasks (map_runner.c) claim them; the client waits for chunks in order and
 * delivers their results (map_wait.c). Design: map_internal.h, docs/map.md.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copy.h"
#include "fnmap.h"
#include "map_internal.h"
#include "sync.h"

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
    free(m->cur_res);
    free(m->cur_sizes);
    free(m);
}

/* The arguments of pp_map_begin / pp_map, checked; *opts: the options to
 * use (the defaults for NULL), *nwork: the pool's workers. Returns 0 or
 * -EINVAL. */
static int check_args(pp_map_iter **out, pp_executor *ex, pp_map_fn fn, const pp_map_input *in,
                      int n_in, const pp_map_opts *opts_in, bool all, const void *outbuf,
                      size_t out_count, pp_map_opts *opts, int *nwork)
{
    if (opts_in)
        *opts = *opts_in;
    else
        pp_map_opts_init(opts);
    if (!out || !ex || !fn || n_in < 0 || n_in > PP_MAP_MAX_INPUTS || (n_in && !in))
        return -EINVAL;
    if (opts->chunksize < 1 || isnan(opts->timeout) || (opts->ctx_size && !opts->ctx))
        return -EINVAL;
    if (opts->out_size > MI_OUT_MAX || opts->ctx_size > MI_CTX_MAX ||
        opts->chunksize > MI_CHUNK_MAX)
        return -EINVAL;
    if (all && opts->out_size && (!outbuf || out_count == SIZE_MAX))
        return -EINVAL;
    *nwork = pp_max_workers(ex);
    if (*nwork == PP_EFORKED)
        return PP_EFORKED; /* a fork()ed child of the client */
    if (*nwork < 1)
        return -EINVAL;
    return 0;
}

/* Runners of a map of @ex: one per worker of the node, plus the remote lanes
 * of an external-worker layer (libppool_mpi: each other rank's workers plus
 * one, within its credit), each of which takes runner tasks from the ring
 * like a worker. */
static uint32_t map_runner_count(pp_executor *ex, int nlocal)
{
    uint64_t n = (uint64_t)nlocal + ppi_ext_map_lanes(ex);
    return n >= MI_CLIENT_W ? MI_CLIENT_W - 1 : (uint32_t)n;
}

/* Copy and check the inputs: the item count (n_limit), which inputs are in
 * shared memory, whether some must be gathered item by item. */
static int map_inputs(pp_map_iter *m, const pp_map_input *in)
{
    m->n_limit = m->n_in ? SIZE_MAX : 0;
    for (int j = 0; j < m->n_in; j++) {
        m->in[j] = in[j];
        if (m->in[j].kind == PP_MAP_IN_ARRAY && !m->in[j].stride)
            m->in[j].stride = m->in[j].item_size;
        int rc = check_input(m->ex, &m->in[j], &m->in_shm[j]);
        if (rc)
            return rc;
        if (m->in[j].kind != PP_MAP_IN_GEN && m->in[j].count < m->n_limit)
            m->n_limit = m->in[j].count;
        if (!m->in_shm[j] && m->in[j].kind != PP_MAP_IN_PACKED &&
            (m->in[j].kind != PP_MAP_IN_ARRAY || m->in[j].stride != m->in[j].item_size))
            m->per_item = true;
    }
    return 0;
}

/* pp_map's output arrays: used in place when they are in shared memory. */
static void map_output(pp_map_iter *m, void *outbuf, size_t out_count, size_t *out_sizes)
{
    if (out_count < m->n_limit)
        m->n_limit = out_count;
    m->out = outbuf;
    m->out_sizes = m->out_var ? out_sizes : NULL;
    size_t n = m->n_limit;
    if (m->out_cap && n && n != SIZE_MAX && n <= SIZE_MAX / m->out_cap)
        m->out_shm = in_shm(m->ex, outbuf, n * m->out_cap) &&
                     (!m->out_sizes || in_shm(m->ex, m->out_sizes, n * sizeof(size_t)));
}

/* The window's geometry, the client's arrays and the map block. */
static int map_alloc(pp_map_iter *m, const pp_map_opts *opts, ppi_map_geom *g)
{
    ppi_map_geom_in gi = {.items = m->n_limit, .chunksize = m->cs, .buffersize = opts->buffersize,
                          .ctx_size = opts->ctx_size, .nwork = m->nwork};
    if (ppi_map_geometry(&gi, g)) /* cannot fail: the limits were checked before */
        return -EINVAL;
    m->bc = g->bc;
    m->nb = g->nb;
    m->nrec = g->nrec;
    m->nrun = g->nrun;
    m->rf = calloc(m->nrun, sizeof *m->rf);
    m->rid_free = calloc(m->nrun, sizeof *m->rid_free);
    m->bat = calloc(m->nb, sizeof *m->bat);
    if (!m->rf || !m->rid_free || !m->bat)
        return -ENOMEM;
    return pp_shm_alloc(m->ex, g->total, &m->block);
}

/* The block's input descriptors: where each input's items are. */
static void block_inputs(pp_map_iter *m, mi_hdr *h)
{
    for (int j = 0; j < m->n_in; j++) {
        mi_in *d = &h->in[j];
        const pp_map_input *s = &m->in[j];
        d->item_size = s->item_size;
        d->stride = s->stride;
        if (s->kind == PP_MAP_IN_ARRAY)
            d->how = m->in_shm[j] ? MI_IN_SHM_FIXED : MI_IN_STAGED_FIXED;
        else
            d->how = m->in_shm[j] ? MI_IN_SHM_PACKED : MI_IN_STAGED_VAR;
        if (m->in_shm[j]) {
            d->off = pp_shm_offset(m->ex, s->base);
            d->off2 = s->kind == PP_MAP_IN_PACKED ? pp_shm_offset(m->ex, s->offsets) : 0;
        }
    }
}

/* Fill the map block (laid out by @g) and the client's views of it. */
static void block_init(pp_map_iter *m, const pp_map_opts *opts, const ppi_map_geom *g,
                       uint64_t token)
{
    memset(m->block, 0, g->total);
    mi_hdr *h = m->h = m->block;
    h->magic = MI_MAGIC;
    h->fn = token;
    h->cs = m->cs;
    h->n_in = (uint32_t)m->n_in;
    h->nrec = m->nrec;
    h->nb = m->nb;
    h->bc = m->bc;
    h->nrun = m->nrun;
    h->nwork = m->nwork;
    h->nlocal = m->nlocal;
    h->out_cap = m->out_cap;
    h->out_var = m->out_var;
    h->out_shm = m->out_shm;
    if (m->out_shm) {
        h->out_off = pp_shm_offset(m->ex, m->out);
        h->sizes_off = m->out_sizes ? pp_shm_offset(m->ex, m->out_sizes) : 0;
    }
    h->ctx_rel = g->off_ctx;
    h->ctx_size = opts->ctx_size;
    if (opts->ctx_size)
        memcpy((char *)h + g->off_ctx, opts->ctx, opts->ctx_size);
    h->done_rel = g->off_done;
    h->batch_rel = g->off_batch;
    h->run_rel = g->off_run;
    h->errs_rel = g->off_errs;
    block_inputs(m, h);
    /* init (plain): no runner exists yet; the first pp_submit's release
     * publishes the whole block. */
    atomic_init(&h->next, 0);
    atomic_init(&h->avail, 0);
    atomic_init(&h->items_pub, 0);
    atomic_init(&h->limit, UINT64_MAX);
    m->done = (_Atomic uint64_t *)((char *)h + g->off_done);
    m->batch = (uint64_t *)((char *)h + g->off_batch);
    m->rs = (mi_rslot *)((char *)h + g->off_run);
    m->errs = (mi_errslot *)((char *)h + g->off_errs);
    /* A done word must never match a chunk it does not belong to: start
     * every word one lap behind. */
    for (uint32_t i = 0; i < m->nrec; i++) /* init: as above */
        atomic_init(&m->done[i], mi_dw((uint64_t)i - m->nrec, 0, MI_DONE));
    for (uint32_t i = 0; i < m->nrun; i++)
        m->rid_free[m->n_rid_free++] = m->nrun - 1 - i;
}

/* Everything pp_map_begin does, for both modes. */
static int map_start(pp_map_iter **out, pp_executor *ex, pp_map_fn fn, const pp_map_input *in,
                     int n_in, const pp_map_opts *opts_in, bool all, void *outbuf,
                     size_t out_count, size_t *out_sizes)
{
    pp_map_opts opts;
    int nwork;
    int rc = check_args(out, ex, fn, in, n_in, opts_in, all, outbuf, out_count, &opts, &nwork);
    if (rc)
        return rc;
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
    m->nwork = map_runner_count(ex, nwork);
    m->nlocal = (uint32_t)nwork;
    m->dead_from = UINT64_MAX;
    m->overlap = !all && opts.buffersize;
    ppi_map_geom g;
    rc = map_inputs(m, in);
    if (!rc && all)
        map_output(m, outbuf, out_count, out_sizes);
    if (!rc)
        rc = map_alloc(m, &opts, &g);
    /* The item function crosses to the workers as a token, like a pp_fn. */
    uint64_t token = rc ? 0 : ppi_fn_encode(ppi_executor_modtab(ex), (uintptr_t)fn);
    if (!rc && !token)
        rc = PP_ENOFUNC;
    if (rc) {
        map_free(m);
        return rc;
    }
    block_init(m, &opts, &g, token);
    m->deadline = ppi_deadline(opts.timeout);
    m->last_probe = ppi_now_ns();

    rc = ppi_map_refill(m);
    if (!rc && m->published && m->submit_err && m->dead_from == 0)
        rc = m->submit_err; /* the executor refused the first runner: nothing ran */
    if (rc) {
        ppi_map_stop(m);
        ppi_map_reap(m, PP_FOREVER);
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
        ppi_map_set_final(m, m->in_err, m->in_err_at, 0, 0, m->in_err_msg);
        ppi_map_stop(m);
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
    ppi_map_set_final(m, -ETIMEDOUT, m->st.done, 0, 0, msg);
    ppi_map_stop(m);
}

/* Nothing is in flight: either the inputs are exhausted, or staging is
 * impossible. Returns the code to report. */
static int drained(pp_map_iter *m)
{
    if (m->input_end && !m->pending)
        return at_end(m);
    ppi_map_set_final(m, -ENOMEM, m->st.done, 0, 0, "map: no room to stage a chunk");
    ppi_map_stop(m);
    return m->final_err;
}

/* Buffers for one chunk's results, client-private (m->overlap). false if
 * they cannot be had: the chunk is then read in place, without overlap. */
static bool cur_buffers(pp_map_iter *m)
{
    if (m->cur_res || !m->out_cap)
        return true;
    if (m->cs > MI_RING_MAX / m->out_cap)
        return false; /* a chunk this large is not worth a second copy */
    m->cur_res = malloc(m->cs * m->out_cap);
    if (m->cur_res && m->out_var)
        m->cur_sizes = malloc(m->cs * sizeof *m->cur_sizes);
    if (!m->cur_res || (m->out_var && !m->cur_sizes)) {
        free(m->cur_res);
        m->cur_res = NULL;
        m->overlap = false;
        return false;
    }
    return true;
}

/* m->overlap: chunk m->consumed finished cleanly and is about to be read.
 * Copy its results out, give its window slot back and refill, so that the
 * chunk after the window's last one runs while the caller reads this one:
 * with buffersize 1 item k runs during the k-th pp_map_next, as
 * CPython's map(buffersize=1) submits it (docs/map.md). A failed chunk is
 * read in place, as without overlap (the map stops after it anyway). */
static void take_ahead(pp_map_iter *m)
{
    uint64_t c = m->consumed;
    uint64_t d = chunk_done(m, c);
    if (mi_dw_state(d) != MI_DONE || !cur_buffers(m))
        return;
    size_t n = chunk_count(m, c);
    if (m->out_cap) {
        mi_batch *bt = batch_of(m, c);
        const uint64_t *bh = (const uint64_t *)bt->blob;
        size_t k = (size_t)(c - bt->c0) * m->cs;
        memcpy(m->cur_res, bt->blob + bh[m->n_in] + k * m->out_cap, n * m->out_cap);
        if (m->out_var)
            memcpy(m->cur_sizes, (const uint64_t *)(bt->blob + bh[m->n_in + 1]) + k,
                   n * sizeof *m->cur_sizes);
        m->st.result_bytes += n * m->out_cap;
    }
    m->cur_copied = true;
    m->cur_n = n;
    ppi_map_release_chunk(m);
    /* A refill that fails for want of room sets the map's error at the
     * first item not staged, which is after this chunk: its items are
     * still delivered (pp_map_next checks cur_copied before final_err). */
    ppi_map_refill(m);
}

/* The next item of the copied chunk (m->cur_copied). */
static void next_copied(pp_map_iter *m, const void **res, size_t *res_size)
{
    if (m->out_cap) {
        if (res)
            *res = m->cur_res + m->cur_k * m->out_cap;
        if (res_size)
            *res_size = m->out_var ? (size_t)m->cur_sizes[m->cur_k] : m->out_cap;
    }
    m->cur_k++;
    m->st.done++;
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
    if (m->cur_valid && m->cur_copied && m->cur_k < m->cur_n) {
        next_copied(m, res, res_size); /* finished results, before any error after them */
        return 0;
    }
    if (m->final_err)
        return m->final_err;
    for (;;) {
        if (m->cur_valid && m->cur_copied) {
            if (m->cur_k < m->cur_n) {
                next_copied(m, res, res_size);
                return 0;
            }
            m->cur_valid = false; /* released when it was copied */
        } else if (m->cur_valid) {
            uint64_t c = m->consumed;
            uint64_t d = chunk_done(m, c);
            if (m->cur_k < ppi_map_deliverable(m, c, d)) {
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
                ppi_map_chunk_error(m, c, d, m->st.done);
                ppi_map_stop(m);
                return m->final_err;
            }
            m->cur_valid = false;
            ppi_map_release_chunk(m);
        }
        /* Refill when the window is half empty: publishing in batches keeps
         * the runners' view of `avail` in their caches. */
        if (m->published - m->consumed <= m->nrec / 2)
            ppi_map_refill(m);
        if (m->final_err)
            return m->final_err;
        if (m->consumed == m->published)
            return drained(m);
        if (m->stopped && m->consumed >= m->closed_at) {
            ppi_map_set_final(m, -ECANCELED, m->st.done, 0, 0, NULL);
            return m->final_err;
        }
        if (ppi_map_wait_chunk(m, m->consumed, true) == -ETIMEDOUT) {
            timed_out(m);
            return m->final_err;
        }
        if (!chunk_done(m, m->consumed))
            continue;
        m->cur_valid = true;
        m->cur_k = 0;
        m->cur_copied = false;
        if (m->overlap)
            take_ahead(m);
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
    ppi_map_stop(m);
    for (uint32_t rid = 0; rid < m->nrun; rid++)
        if (m->rf[rid])
            pp_future_cancel(m->rf[rid]);
    ppi_map_reap(m, PP_FOREVER);
    map_free(m);
    return 0;
}

/* memcpy for large result runs: streaming stores (copy.h) from 64 KiB on,
 * so that the caller's array is written without being read into the cache
 * first (the copy is the client's main cost in an all-at-once map; this
 * halves it). */
static void copy_big(char *dst, const char *src, size_t n)
{
    if (n >= ((size_t)64 << 10))
        ppi_copy_stream(dst, src, n);
    else
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

/* Take every finished chunk, in order; copy the results out in runs (one
 * copy per batch, or per part of a batch). A failed chunk sets the map's
 * error and stops it. */
static void take_done(pp_map_iter *m)
{
    uint64_t run = m->consumed;
    size_t run_items = 0;
    while (m->consumed < m->published) {
        uint64_t c = m->consumed;
        uint64_t d = chunk_done(m, c);
        if (!d)
            break;
        size_t ok = ppi_map_deliverable(m, c, d);
        if (mi_dw_state(d) != MI_DONE) {
            copy_out(m, run, run_items + ok);
            run_items = 0;
            m->st.done += ok;
            ppi_map_chunk_error(m, c, d, m->st.done);
            ppi_map_stop(m);
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
        ppi_map_release_chunk(m);
    }
    copy_out(m, run, run_items);
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
        take_done(m);
        if (m->final_err)
            break;
        if (!expired)
            ppi_map_refill(m);
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
        if (ppi_map_wait_chunk(m, x, false) == -ETIMEDOUT)
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
