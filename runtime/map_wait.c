/*
 * map_wait.c — pp_map's client-side watch over the window: the outcome and
 * the stop of a map, the runner tasks (started as chunks are published,
 * reaped when done, their chunks failed when they die), waiting for a chunk
 * to finish, and what a finished chunk delivers or reports.
 *
 * The client sleeps on the window's cword futex with the Dekker pair of
 * map_internal.h's table (wake_at / cwait against the runner's done store),
 * and starts runners with the other (its avail store and live loads against
 * a leaving runner's live store and last look), so published work always
 * has a runner that will see it. A runner that dies holding a chunk leaves
 * that chunk's number in its slot: check_suspects fails it once no live
 * runner holds it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "map_internal.h"
#include "sync.h"

void ppi_map_set_final(pp_map_iter *m, int err, size_t pos, int code, pid_t pid, const char *msg)
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
void ppi_map_stop(pp_map_iter *m)
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
void ppi_map_reap(pp_map_iter *m, double wait)
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
void ppi_map_ensure_runners(pp_map_iter *m)
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
    ppi_map_reap(m, 0); /* recycle finished runners (and fail what dead ones held) */
    live = count_live(m, &busy);
    while (live < want && m->n_rid_free && !m->submit_err) {
        uint32_t rid = m->rid_free[--m->n_rid_free];
        /* relaxed: published to the runner by pp_submit's release. */
        atomic_store_explicit(&m->rs[rid].live, 1, memory_order_relaxed);
        mi_arg a = {.block = pp_shm_offset(m->ex, m->block), .rid = rid};
        int rc = pp_submit(m->ex, ppi_map_runner, &a, sizeof a, &m->rf[rid]);
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

/* Probe the runners' futures with a short wait so that a dead pool (which
 * only a waiting future notices) fails them; then reap. */
static void probe(pp_map_iter *m)
{
    uint64_t now = ppi_now_ns();
    if (now - m->last_probe < PPI_MAP_PROBE_NS)
        return;
    m->last_probe = now;
    for (uint32_t rid = 0; rid < m->nrun; rid++)
        if (m->rf[rid])
            reap_one(m, rid, 0.0005);
    check_suspects(m);
}

/* Wait until chunk @x is finished. Returns 0 or -ETIMEDOUT. */
int ppi_map_wait_chunk(pp_map_iter *m, uint64_t x, bool spin)
{
    mi_hdr *h = m->h;
    if (spin) {
        uint64_t until = ppi_now_ns() + PPI_MAP_SPIN_NS;
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
        ppi_map_reap(m, 0);
        check_suspects(m);
        ppi_map_ensure_runners(m);
        /* relaxed: a hint; past a failure nothing is claimed: let the
         * caller look at the earlier chunks. */
        if (chunk_done(m, x) || x >= atomic_load_explicit(&h->limit, memory_order_relaxed))
            return 0;
        uint64_t left = ppi_remaining(m->deadline, PPI_MAP_NAP_NS);
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
size_t ppi_map_deliverable(pp_map_iter *m, uint64_t c, uint64_t d)
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
void ppi_map_chunk_error(pp_map_iter *m, uint64_t c, uint64_t d, size_t pos)
{
    if (c >= m->dead_from) {
        char msg[128];
        snprintf(msg, sizeof msg, "map chunk not run: %s", pp_strerror(m->dead_err));
        ppi_map_set_final(m, m->dead_err, pos, 0, 0, msg);
        return;
    }
    uint32_t w = mi_dw_worker(d);
    if (w < m->nwork) {
        mi_errslot *es = &m->errs[w];
        char msg[MI_MSG + 1];
        size_t n = es->len < MI_MSG ? es->len : MI_MSG - 1;
        memcpy(msg, es->msg, n);
        msg[n] = '\0';
        ppi_map_set_final(m, es->err, pos, es->code, es->pid, msg);
        return;
    }
    for (mi_cerr *e = m->cerrs; e; e = e->next)
        if (e->seq == c) {
            ppi_map_set_final(m, e->err, pos, e->code, e->pid, e->msg);
            return;
        }
    ppi_map_set_final(m, PP_EBROKEN, pos, 0, 0, NULL);
}
