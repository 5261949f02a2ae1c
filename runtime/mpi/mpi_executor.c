/*
 * mpi_executor.c — pp_mpi_executor_create: the collective set-up every rank
 * runs (node pool, agreement, module table, worker counts), then the root
 * starts its comm thread and the others serve. Also the per-rank stats.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_internal.h"

#define PPM_DEFAULT_EAGER ((size_t)64 << 10)

void pp_mpi_config_init(pp_mpi_config *c)
{
    memset(c, 0, sizeof *c);
    c->comm = MPI_COMM_WORLD;
    c->root = 0;
    pp_config_init(&c->node);
    c->root_workers = -1;
    c->credits = 0;
    c->eager_limit = PPM_DEFAULT_EAGER;
    c->heartbeat = 0.5;
    c->node_timeout = 10;
}

/* Every rank's answer is the worst (lowest) of all: all serve or none. */
static int agree(MPI_Comm comm, int rc)
{
    int worst = rc;
    if (MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        return rc ? rc : -EIO;
    return worst;
}

static int config_check(const pp_mpi_config *c, int size)
{
    if (c->root < 0 || c->root >= size || c->root_workers == 0 || c->root_workers < -1 ||
        !(c->heartbeat > 0) || !(c->node_timeout > c->heartbeat) || c->eager_limit > INT_MAX)
        return -EINVAL;
    return 0;
}

/* The root's module table to every rank; each adopts it (resolves it by
 * build-id against its own image). */
static int share_modtab(MPI_Comm comm, int root, int me, pp_executor *lex)
{
    size_t bytes = 0;
    const void *tab = me == root ? pp_ext_modtab(lex, &bytes) : NULL;
    uint64_t n = bytes;
    if (MPI_Bcast(&n, 1, MPI_UINT64_T, root, comm) != MPI_SUCCESS)
        return -EIO;
    void *buf = me == root ? (void *)(uintptr_t)tab : malloc(n ? n : 1);
    /* Every rank must post the broadcast with the same count: agree first. */
    int rc = agree(comm, n > INT_MAX ? -E2BIG : buf ? 0 : -ENOMEM);
    if (!rc && MPI_Bcast(buf, (int)n, MPI_BYTE, root, comm) != MPI_SUCCESS)
        rc = -EIO;
    if (!rc && me != root)
        rc = pp_ext_modtab_adopt(buf, n);
    if (me != root)
        free(buf);
    return rc;
}

static ppm_root *root_new(MPI_Comm comm, int me, int size, const pp_mpi_config *c,
                          pp_executor *lex, const int *workers)
{
    ppm_root *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->ranks = calloc((size_t)size, sizeof *r->ranks);
    if (!r->ranks) {
        free(r);
        return NULL;
    }
    r->ex = lex;
    r->comm = comm;
    r->me = me;
    r->size = size;
    r->cfg = *c;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cv, NULL);
    ppm_share_init(r);
    for (int q = 0; q < size; q++) {
        ppm_rank *rk = &r->ranks[q];
        rk->workers = workers[q];
        if (q == me)
            continue;
        atomic_init(&rk->alive, 1);
        unsigned w = (unsigned)(workers[q] > 0 ? workers[q] : 1);
        rk->adaptive = c->credits == 0;
        rk->credits = rk->adaptive ? w * PPM_CREDITS_ADAPT_MAX : c->credits;
        rk->limit = rk->adaptive ? w : rk->credits;
        /* pp_map: its workers plus one chunk in prefetch, within its
         * credits (mpi_map.c, docs/mpi.md "pp_map across ranks"). */
        rk->lane_cap = w + PPM_LANE_PREFETCH < rk->credits ? w + PPM_LANE_PREFETCH : rk->credits;
        rk->lane0 = r->lanes;
        r->lanes += rk->lane_cap;
        rk->fl = calloc(rk->credits, sizeof *rk->fl);
        rk->lane = calloc(rk->lane_cap, sizeof *rk->lane);
        if (!rk->fl || !rk->lane) {
            for (int k = 0; k < size; k++) {
                free(r->ranks[k].fl);
                free(r->ranks[k].lane);
            }
            free(r->ranks);
            free(r);
            return NULL;
        }
    }
    return r;
}

int pp_mpi_executor_create(pp_executor **out, const pp_mpi_config *c)
{
    if (!out || !c)
        return -EINVAL;
    *out = NULL;
    int me = 0, size = 0, prov = MPI_THREAD_SINGLE, inited = 0;
    MPI_Initialized(&inited);
    if (!inited)
        return -EINVAL;
    MPI_Comm_rank(c->comm, &me);
    MPI_Comm_size(c->comm, &size);
    MPI_Query_thread(&prov);
    int rc = config_check(c, size);
    if (!rc && prov < MPI_THREAD_MULTIPLE)
        rc = -ENOTSUP;
    rc = agree(c->comm, rc);
    if (rc)
        return rc;
    MPI_Comm comm;
    if (MPI_Comm_dup(c->comm, &comm) != MPI_SUCCESS)
        return -EIO;
    /* A rank lost must come back as an error code, not abort the root. */
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);

    pp_config node = c->node;
    if (node.start_method != PP_START_SPAWN)
        node.start_method = PP_START_FORKSERVER; /* a rank runs threads */
    if (me == c->root && c->root_workers > 0)
        node.max_workers = c->root_workers;
    pp_executor *lex = NULL;
    rc = agree(comm, pp_executor_create(&lex, &node));
    if (!rc)
        rc = agree(comm, share_modtab(comm, c->root, me, lex));
    int nw = lex ? pp_executor_stats(lex, NULL, NULL, 0) : 0;
    int *workers = me == c->root ? calloc((size_t)size, sizeof *workers) : NULL;
    if (!rc && MPI_Gather(&nw, 1, MPI_INT, workers, 1, MPI_INT, c->root, comm) != MPI_SUCCESS)
        rc = -EIO;
    ppm_root *r = NULL;
    if (!rc && me == c->root) {
        r = root_new(comm, me, size, c, lex, workers);
        rc = r ? 0 : -ENOMEM;
    }
    free(workers);
    rc = agree(comm, rc);
    if (rc) {
        if (r) {
            for (int q = 0; q < size; q++)
                free(r->ranks[q].fl);
            free(r->ranks);
            free(r);
        }
        if (lex)
            pp_executor_destroy(lex);
        pp_ext_modtab_drop();
        MPI_Comm_free(&comm);
        return rc;
    }
    if (me != c->root) {
        ppm_serve(comm, c->root, lex, c);
        pp_executor_destroy(lex);
        pp_ext_modtab_drop();
        MPI_Comm_free(&comm);
        return PP_MPI_SERVED;
    }
    pp_ext_attach(lex, &ppm_root_ops, r, me);
    rc = ppm_root_start(r);
    if (rc) {
        /* The others serve already: without a comm thread they would wait
         * for node_timeout. Tell them to stop, then end as destroy does. */
        r->thread_started = 0;
        for (int q = 0; q < size; q++)
            if (q != me)
                MPI_Send(NULL, 0, MPI_BYTE, q, PPM_TAG_STOP, comm);
        pp_executor_destroy(lex); /* calls root_destroy: frees r and comm */
        return rc;
    }
    *out = lex;
    return 0;
}

int pp_mpi_size(pp_executor *ex)
{
    ppm_root *r = pp_ext_ctx(ex, &ppm_root_ops);
    return r ? r->size : -EINVAL;
}

int pp_mpi_rank_stats(pp_executor *ex, int rank, pp_mpi_rank_info *o)
{
    ppm_root *r = pp_ext_ctx(ex, &ppm_root_ops);
    if (!r || !o || rank < 0 || rank >= r->size)
        return -EINVAL;
    memset(o, 0, sizeof *o);
    o->rank = rank;
    ppm_rank *rk = &r->ranks[rank];
    o->workers = rk->workers;
    if (rank == r->me) {
        o->alive = 1;
        pp_worker_stats *w = calloc((size_t)(rk->workers > 0 ? rk->workers : 1), sizeof *w);
        if (!w)
            return -ENOMEM;
        int n = pp_executor_stats(ex, NULL, w, rk->workers);
        for (int i = 0; i < n && i < rk->workers; i++)
            o->tasks += w[i].tasks;
        free(w);
        return 0; /* per-worker records have no failure count: failed stays 0 */
    }
    /* relaxed: statistics. */
    o->alive = atomic_load_explicit(&rk->alive, memory_order_relaxed);
    o->credits = rk->credits;
    o->in_flight = atomic_load_explicit(&rk->in_flight, memory_order_relaxed); /* relaxed: as above */
    o->tasks = atomic_load_explicit(&rk->tasks, memory_order_relaxed);         /* relaxed: as above */
    o->failed = atomic_load_explicit(&rk->failed, memory_order_relaxed);       /* relaxed: as above */
    o->retried = atomic_load_explicit(&rk->retried, memory_order_relaxed);     /* relaxed: as above */
    o->map_chunks = atomic_load_explicit(&rk->chunks, memory_order_relaxed);   /* relaxed: as above */
    return 0;
}
