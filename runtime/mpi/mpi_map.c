/*
 * mpi_map.c — pp_map across ranks.
 *
 * At the root, a map runner task that the comm thread takes for rank q
 * (pp_ext_take with the map_lanes hook) becomes a *lane* of that rank: it
 * is one of q's flights (it takes a credit: nused, limit) and acts as the
 * map's runner through ext_worker.h's pp_ext_map_* calls — claim a chunk
 * from the window, ship it whole (MAP_CHUNK), write its results back into
 * the window when MAP_RES comes, claim the next. The window (buffersize)
 * bounds what the root stages, and the client's reordering, cancel (a
 * closed `next`) and error positions are pp_map's own (map_ext.c has the
 * core side).
 *
 * How many lanes. A rank opens at most lane_cap = min(workers + 1, credits)
 * lanes at once, and only while it has credit (a lane is a flight; tasks and
 * lanes share the rank's limit). Not one lane per credit: adaptive credits
 * cap a rank at 64 per worker, and a chunk is a big unit (the caller sizes
 * it); one per worker keeps the workers busy and the one more hides the
 * round trip between a chunk's result and the next chunk, while every
 * chunk beyond would only wait there, far from the root's idle workers at
 * the map's end. The map counts every rank's lane_cap as runners (the
 * map_lanes hook: fixed at create, as a lane's index must stay below it), so
 * its runner and error-slot arrays grow by about w + 1 per rank. A runner
 * taken for a rank whose lanes are all open is handed back to the ring.
 *
 * On a serving rank a chunk is one task of its node pool
 * (pp_ext_map_chunk_task) that runs the chunk's items in order in one
 * worker. Why one task per chunk rather than a local pp_map splitting the
 * chunk over the node's workers: the rank already holds about one chunk per
 * worker, so splitting adds a local window and runner start-up to every
 * chunk without adding parallelism; the chunk is the unit the caller chose
 * (as Python's map hands a chunk to one worker); and the task path gives the
 * chunk the node's worker-death, kill and cancel handling for free. Its
 * MAP_RES reports how long the rank held and ran it, as a RES record, so a
 * chunk feeds the rank's adaptive credits like a task.
 *
 * The map's context travels with every chunk (not cached per rank): it is
 * usually small next to a chunk's items, and a cache would need map ids, an
 * eviction rule and a message on every map's end. A large ctx with small
 * chunks costs ctx bytes per chunk: documented in docs/mpi.md.
 *
 * All root functions run on the comm thread (mpi_root.c's loop calls them);
 * the serving ones on the serving rank's loop thread.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_internal.h"
#include "sync.h"

static size_t al16z(size_t x) { return (x + 15) & ~(size_t)15; }

/* ---- at the root --------------------------------------------------------- */

uint32_t ppm_map_lanes(void *ctx)
{
    ppm_root *r = ctx;
    return r->lanes; /* fixed at create */
}

bool ppm_map_lane_free(const ppm_rank *rk)
{
    return rk->nlanes < rk->lane_cap;
}

/* Lane @f of rank @rk ends: its index is free again. */
static void lane_release(ppm_rank *rk, ppm_flight *f)
{
    rk->lane[f->lane] = NULL;
    rk->nlanes--;
}

void ppm_map_lane_open(ppm_root *r, int q, ppm_flight *f)
{
    ppm_rank *rk = &r->ranks[q];
    f->chunk_away = 0;
    f->creq_on = 0;
    f->cpkt = NULL;
    /* pp_ext_take claimed the runner only if ppm_map_lane_free: an index
     * is free. */
    uint32_t j = 0;
    while (j < rk->lane_cap && rk->lane[j])
        j++;
    int err = -EAGAIN;
    if (j < rk->lane_cap)
        f->map = pp_ext_map_open(r->ex, (uint32_t)q, &f->it, rk->lane0 + j, &err);
    if (f->map) {
        f->lane = j;
        rk->lane[j] = f;
        rk->nlanes++;
    } else {
        char msg[96];
        int n = snprintf(msg, sizeof msg, "map runner: cannot open a lane on rank %d: %s", q,
                         pp_strerror(err));
        ppm_flight_outcome(r, q, f, err, 0, 0, msg, n < 0 ? 0 : (size_t)n, 0);
    }
}

/* The chunk's send is complete (its answer came): free its buffer. */
static void chunk_sent(ppm_flight *f)
{
    if (f->creq_on)
        MPI_Wait(&f->creq, MPI_STATUS_IGNORE);
    f->creq_on = 0;
    free(f->cpkt);
    f->cpkt = NULL;
}

/* Ship chunk @c of lane @f to rank @q. A chunk that cannot be shipped
 * fails at once (the lane goes on). */
static void ship_chunk(ppm_root *r, int q, ppm_flight *f, uint64_t c)
{
    size_t n = 0;
    int err = 0;
    char *pkt = pp_ext_map_chunk_inputs(f->map, c, sizeof(ppm_mchunk), &n, &err);
    const char *why = NULL;
    if (!pkt)
        why = "out of memory shipping a map chunk";
    else if (n > INT_MAX) {
        why = "map chunk too large for one MPI message";
        err = PP_ETOOBIG;
    }
    if (why) {
        free(pkt);
        pp_ext_map_chunk_done(f->map, c, NULL, 0, err, 0, 0, why, strlen(why));
        return;
    }
    ppm_mchunk h = {.id = f->id, .chunk = c};
    memcpy(pkt, &h, sizeof h);
    f->cpkt = pkt;
    f->chunk = c;
    f->chunk_away = 1;
    f->sent_ns = ppi_now_ns();
    /* Not completed here: the answer proves the rank received it. If the
     * rank is unreachable, its loss (heartbeats, at once with ULFM) fails
     * the chunk. */
    int rc = MPI_Isend(pkt, (int)n, MPI_BYTE, q, PPM_TAG_MAP_CHUNK, r->comm, &f->creq);
    f->creq_on = rc == MPI_SUCCESS;
    if (rc != MPI_SUCCESS)
        ppm_ulfm_note_failures(r, rc);
}

bool ppm_map_lanes_step(ppm_root *r)
{
    bool any = false;
    for (int q = 0; q < r->size; q++) {
        ppm_rank *rk = &r->ranks[q];
        if (q == r->me || !rk->alive)
            continue;
        for (uint32_t j = 0; j < rk->lane_cap; j++) {
            ppm_flight *f = rk->lane[j];
            if (!f || f->chunk_away)
                continue;
            uint64_t c = 0;
            int k = pp_ext_map_claim(f->map, &c);
            if (k == 0)
                continue;
            any = true;
            if (k > 0) {
                ship_chunk(r, q, f, c);
                continue;
            }
            /* Out of work, or the map / the pool stopped: the runner task
             * ends as a local runner's would. */
            lane_release(rk, f);
            ppm_flight_count(rk, f, 0);
            pp_ext_map_close(f->map, 0, q, NULL);
            f->map = NULL;
            ppm_flight_end(r, rk, f, 0);
        }
    }
    return any;
}

/* The open lane whose flight id is @id (index << 32 | count: a stale id
 * matches nothing), or NULL. */
static ppm_flight *lane_find(ppm_rank *rk, uint64_t id)
{
    uint64_t i = id >> 32;
    if (i >= rk->credits || !rk->fl[i].used || !rk->fl[i].map || rk->fl[i].id != id)
        return NULL;
    return &rk->fl[i];
}

void ppm_map_take_result(ppm_root *r, int src, const char *buf, size_t len)
{
    ppm_mres h;
    if (len < sizeof h)
        return;
    memcpy(&h, buf, sizeof h);
    ppm_rank *rk = &r->ranks[src];
    ppm_flight *f = lane_find(rk, h.id);
    /* chunk UINT64_MAX: the one the lane holds (a serving rank does not keep
     * chunk numbers; the lane id is unique while it is in flight). */
    if (!f || !rk->alive || !f->chunk_away || (h.chunk != UINT64_MAX && f->chunk != h.chunk))
        return; /* a lost rank answering late: its chunks failed already */
    chunk_sent(f);
    f->chunk_away = 0;
    ppm_credits_learn(rk, f->sent_ns, ppi_now_ns(), h.held_us, h.run_us);
    size_t at = al16z(sizeof h + h.msg_len);
    const char *msg = buf + sizeof h;
    size_t msg_len = h.msg_len;
    const void *res = NULL;
    void *copy = NULL;
    int err = h.err;
    if (sizeof h + msg_len > len || (!err && (at > len || h.res_size > len - at))) {
        static const char bad[] = "malformed map result message";
        err = -EPROTO;
        msg = bad;
        msg_len = sizeof bad - 1;
    } else if (!err) {
        res = buf + at;
        if ((uintptr_t)res % 16) { /* the receive buffer may be a stack array */
            copy = malloc(h.res_size ? h.res_size : 1);
            if (copy)
                memcpy(copy, res, h.res_size);
            res = copy;
            if (!copy) {
                static const char oom[] = "out of memory receiving a map chunk's results";
                err = -ENOMEM;
                msg = oom;
                msg_len = sizeof oom - 1;
            }
        }
    }
    /* relaxed: statistics, made visible to the client by the done word's
     * release store in pp_ext_map_chunk_done. */
    atomic_fetch_add_explicit(&rk->chunks, 1, memory_order_relaxed);
    pp_ext_map_chunk_done(f->map, f->chunk, res, err ? 0 : h.res_size, err, h.code, h.pid, msg,
                          msg_len);
    free(copy);
}

void ppm_map_lane_lost(ppm_root *r, int q, ppm_flight *f, const char *msg)
{
    lane_release(&r->ranks[q], f);
    if (f->creq_on) /* may never complete: MPI finishes or drops it; the
                       buffer is left to it (a bounded leak per loss) */
        MPI_Request_free(&f->creq);
    f->creq_on = 0;
    f->cpkt = NULL;
    f->chunk_away = 0;
    /* The chunk it holds (its runner slot's cur) fails with PP_ENODE at its
     * first item through the client's dead-runner check. */
    ppm_flight_count(&r->ranks[q], f, PP_ENODE);
    pp_ext_map_close(f->map, PP_ENODE, q, msg);
    f->map = NULL;
    ppm_flight_end(r, &r->ranks[q], f, PP_ENODE);
}

/* ---- on a serving rank ---------------------------------------------------- */

/* MAP_RES: header, message, pad, @res (@res_size bytes); @held_us /
 * @run_us as a RES record's (0 for an answer that ran nothing). */
static void send_mres_timed(MPI_Comm comm, int root, uint64_t id, uint64_t chunk, int err,
                            int code, int pid, const char *msg, const void *res, size_t res_size,
                            uint32_t held_us, uint32_t run_us)
{
    size_t ml = msg ? strlen(msg) : 0;
    if (ml > PP_MESSAGE_MAX)
        ml = PP_MESSAGE_MAX;
    if (!err && res_size > INT_MAX - 4096) {
        err = PP_ETOOBIG;
        msg = "map chunk results too large for one MPI message";
        ml = strlen(msg);
    }
    if (err)
        res_size = 0;
    ppm_mres h = {.id = id, .chunk = chunk, .err = err, .code = code, .pid = pid,
                  .msg_len = (uint32_t)ml, .res_size = res_size, .held_us = held_us,
                  .run_us = run_us};
    size_t at = al16z(sizeof h + ml), n = at + res_size;
    char *pkt = malloc(n);
    if (!pkt) {
        if (!err)
            send_mres_timed(comm, root, id, chunk, -ENOMEM, 0, pid,
                            "out of memory sending map results", NULL, 0, held_us, run_us);
        return;
    }
    memset(pkt, 0, at);
    memcpy(pkt, &h, sizeof h);
    if (ml)
        memcpy(pkt + sizeof h, msg, ml);
    if (res_size)
        memcpy(pkt + at, res, res_size);
    MPI_Send(pkt, (int)n, MPI_BYTE, root, PPM_TAG_MAP_RES, comm);
    free(pkt);
}

static void send_mres(MPI_Comm comm, int root, uint64_t id, uint64_t chunk, int err, int code,
                      int pid, const char *msg, const void *res, size_t res_size)
{
    send_mres_timed(comm, root, id, chunk, err, code, pid, msg, res, res_size, 0, 0);
}

int ppm_map_serve_chunk(pp_executor *lex, MPI_Comm comm, int root, const char *buf, size_t len,
                        int refuse, uint64_t *id, pp_future **f)
{
    ppm_mchunk h = {0};
    if (len < sizeof h)
        return -EINVAL; /* nothing to answer to */
    memcpy(&h, buf, sizeof h);
    *id = h.id;
    if (refuse) {
        send_mres(comm, root, h.id, h.chunk, refuse, 0, 0, pp_strerror(refuse), NULL, 0);
        return refuse;
    }
    size_t n = len - sizeof h;
    /* The chunk becomes the task's argument: in an arena block of this node
     * (adopted by the slot, no second copy) or, without room, the heap
     * (pp_submit copies it when room comes). Copied either way: the receive
     * buffer is not aligned, and the token is rewritten in place. */
    void *block = NULL, *own = NULL;
    char *dst = pp_shm_alloc(lex, n ? n : 1, &block) == 0 ? block : (own = malloc(n ? n : 1));
    if (!dst) {
        send_mres(comm, root, h.id, h.chunk, -ENOMEM, 0, 0, "out of memory receiving a map chunk",
                  NULL, 0);
        return -ENOMEM;
    }
    memcpy(dst, buf + sizeof h, n);
    const char *why = NULL;
    int rc = pp_ext_map_chunk_localize(lex, dst, n, &why);
    if (rc) {
        char msg[PP_MESSAGE_MAX + 1];
        snprintf(msg, sizeof msg, "cannot call the item function: %s", why ? why : "unknown");
        send_mres(comm, root, h.id, h.chunk, rc, 0, 0, msg, NULL, 0);
        free(own);
        pp_shm_free(lex, block);
        return rc;
    }
    pp_submit_opts o;
    pp_submit_opts_init(&o);
    rc = block ? pp_ext_submit_adopt(lex, pp_ext_map_chunk_task, block, n, &o, f)
               : pp_submit_ex(lex, pp_ext_map_chunk_task, own, n, &o, f);
    free(own);
    if (rc) {
        send_mres(comm, root, h.id, h.chunk, rc, 0, 0, pp_strerror(rc), NULL, 0);
        return rc;
    }
    return 0;
}

void ppm_map_serve_send(MPI_Comm comm, int root, uint64_t id, pp_future *f, uint32_t held_us,
                        uint32_t run_us)
{
    pp_exception e;
    pp_future_exception(f, 0, &e);
    /* chunk UINT64_MAX: the one this lane holds (see ppm_map_take_result). */
    if (e.error) {
        send_mres_timed(comm, root, id, UINT64_MAX, e.error, ppm_raw_code(e.how, e.code),
                        (int)e.pid, e.message, NULL, 0, held_us, run_us);
        return;
    }
    const void *res = NULL;
    size_t size = 0;
    pp_future_result(f, 0, &res, &size);
    size_t used = pp_ext_map_res_bytes(res, size);
    if (!used) {
        send_mres_timed(comm, root, id, UINT64_MAX, -EPROTO, 0, 0,
                        "map chunk task gave no result", NULL, 0, held_us, run_us);
        return;
    }
    send_mres_timed(comm, root, id, UINT64_MAX, 0, 0, 0, NULL, res, used, held_us, run_us);
}
