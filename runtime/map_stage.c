/*
 * map_stage.c — pp_map's staging: the client gathers the inputs of a batch
 * of chunks, lays out the batch's blob (map_geometry.c), copies the inputs
 * into it, and publishes the batch to the runners.
 *
 * Chunks are staged in batches of bc consecutive chunks (bc*cs >= ~1024
 * items when possible): one blob per batch holds the batch's copied inputs
 * and its results, so the client's cost per chunk is a few stores, not an
 * allocation. Blobs come from a staging ring (one pp_shm_alloc, sized from
 * the first blob; client-only bookkeeping with monotonic positions), or from
 * a block of their own when larger than half the ring. Inputs already in
 * shared memory are used in place and take no blob space; contiguous arrays
 * are copied as one run, other inputs are first gathered item by item into
 * client scratch arrays. A batch is published with a seq_cst store of the
 * window's `avail` (runners acquire it); see map_internal.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "map_internal.h"

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
        size_t cap = ppi_map_ring_cap(bytes, m->nwork);
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

/* Packed inputs are copied as one run: their offsets must not go backwards
 * (checked here, as nothing else reads them one by one). Returns how many of
 * the @count items from @first are good (an input error is recorded). */
static size_t check_packed(pp_map_iter *m, size_t first, size_t count)
{
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
    return count;
}

/* The items of the next batch, from @first: the pending batch's, or newly
 * gathered ones (which become pending until staged). Returns 1 (*count
 * set), 0 (nothing to stage) or -ENOMEM. */
static int stage_items(pp_map_iter *m, size_t first, size_t *count)
{
    if (m->pending) {
        *count = m->pend_count;
        return 1;
    }
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
    size_t n = check_packed(m, first, (size_t)got);
    if (n == 0) {
        m->input_end = true;
        return 0;
    }
    if (n < want)
        m->input_end = true; /* an input ended (or failed) inside this batch */
    m->pending = true;
    m->pend_count = n;
    *count = n;
    return 1;
}

/* The blob layout of @count items from @first (sect[n_in + 2], *bytes) and
 * the input bytes it copies (*data_bytes). Returns whether the batch needs a
 * blob at all, or -ENOMEM when it could never have one. */
static int stage_layout(pp_map_iter *m, size_t first, size_t count, uint64_t *sect,
                        size_t *bytes, size_t *data_bytes)
{
    int kind[PP_MAP_MAX_INPUTS];
    size_t sdata[PP_MAP_MAX_INPUTS];
    bool any = false;
    *data_bytes = 0;
    for (int j = 0; j < m->n_in; j++) {
        kind[j] = MI_SECT_NONE;
        sdata[j] = 0;
        if (m->in_shm[j])
            continue;
        any = true;
        size_t g0 = (size_t)j * m->g_cap;
        if (m->in[j].kind == PP_MAP_IN_ARRAY) {
            kind[j] = MI_SECT_FIXED;
            sdata[j] = count * m->in[j].item_size;
        } else {
            kind[j] = MI_SECT_VAR;
            if (m->in[j].kind == PP_MAP_IN_PACKED)
                sdata[j] = m->in[j].offsets[first + count] - m->in[j].offsets[first];
            else
                for (size_t k = 0; k < count; k++)
                    sdata[j] += m->g_size[g0 + k];
        }
        *data_bytes += sdata[j];
    }
    bool out_staged = !m->out_shm && m->out_cap;
    if (out_staged)
        any = true;
    if (ppi_map_blob_layout(m->n_in, count, kind, sdata, out_staged ? m->out_cap : 0,
                            m->out_var, sect, bytes))
        return -ENOMEM; /* a blob larger than memory: as if it could not be allocated */
    return any;
}

/* Copy staged variable-size input @j (@count items from @first) to @dst:
 * [count][offsets count+1][bytes]. */
static void fill_var(pp_map_iter *m, int j, char *dst, size_t first, size_t count)
{
    const pp_map_input *d = &m->in[j];
    size_t g0 = (size_t)j * m->g_cap;
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
        return;
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

/* Fill @blob: its header words @sect, then every staged input's section. */
static void stage_fill(pp_map_iter *m, char *blob, const uint64_t *sect, size_t first,
                       size_t count)
{
    memcpy(blob, sect, 8 * ((size_t)m->n_in + 2));
    for (int j = 0; j < m->n_in; j++) {
        if (m->in_shm[j])
            continue;
        size_t g0 = (size_t)j * m->g_cap;
        char *dst = blob + sect[j];
        const pp_map_input *d = &m->in[j];
        if (d->kind != PP_MAP_IN_ARRAY) {
            fill_var(m, j, dst, first, count);
            continue;
        }
        if (d->stride == d->item_size)
            memcpy(dst, (const char *)d->base + first * d->stride, count * d->item_size);
        else
            for (size_t k = 0; k < count; k++)
                memcpy(dst + k * d->item_size, m->g_ptr[g0 + k], d->item_size);
    }
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
    size_t count = 0;
    int rc = stage_items(m, first, &count);
    if (rc <= 0)
        return rc;
    uint64_t sect[PP_MAP_MAX_INPUTS + 2];
    size_t bytes, data_bytes;
    int any = stage_layout(m, first, count, sect, &bytes, &data_bytes);
    if (any < 0)
        return any;
    uint64_t b = m->published / m->bc;
    mi_batch *bt = &m->bat[b % m->nb];
    char *blob = NULL;
    if (any) {
        bool fatal;
        blob = blob_alloc(m, bytes, bt, &fatal);
        if (!blob)
            return fatal ? -ENOMEM : 0;
        stage_fill(m, blob, sect, first, count);
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

/* Stage as many batches as fit, publish them, start runners (was refill). */
int ppi_map_refill(pp_map_iter *m)
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
            ppi_map_ensure_runners(m);
    }
    if (rc < 0 && m->published == m->consumed) {
        ppi_map_set_final(m, rc, m->items_staged, 0, 0,
                          "no room in the shared arena for a chunk");
        ppi_map_stop(m);
    }
    if (n > 1)
        ppi_map_ensure_runners(m);
    return rc < 0 ? rc : 0;
}

/* Give back chunk m->consumed (its results were read), and its batch after
 * its last chunk (was release_chunk). */
void ppi_map_release_chunk(pp_map_iter *m)
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
