/*
 * mpi_serve.c — a serving rank: receive the root's tasks, submit them to this
 * rank's ordinary node pool, send each outcome back, forward kills and the
 * shutdown's cancel, beat, and end when the root says STOP (or exit when the
 * root fell silent for node_timeout). One thread: the caller of
 * pp_mpi_executor_create. docs/mpi.md has the invariants.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "mpi_internal.h"
#include "process.h"
#include "sync.h"

/* Longest nap with tasks running here (a finished one wakes us earlier:
 * we sleep on the node's done eventcount), and with none (a new TASK waits
 * up to this long once we have been idle 2 ms). */
#define PPM_SERVE_NAP_NS 1000000ull
#define PPM_SERVE_IDLE_NS 250000ull

typedef struct srv_task {
    uint64_t id;
    pp_future *f;
    uint64_t recv_ns; /* when its TASK (MAP_CHUNK) came */
    bool map;         /* a pp_map chunk (mpi_map.c): answered with MAP_RES */
} srv_task;

/* The RES message being packed, and what must outlive its sending: the
 * results that follow as RES_DATA (from their futures' memory) and those
 * futures, released once it went. */
typedef struct res_pack {
    char *buf;
    size_t len, cap;
    unsigned nrec;
    struct {
        const void *p;
        size_t n;
    } data[PPM_BATCH_MAX];
    unsigned ndata;
    pp_future *owner[PPM_BATCH_MAX];
    unsigned nowner;
    char small[sizeof(ppm_res) + PP_MESSAGE_MAX + 1]; /* buf when no heap room */
} res_pack;

typedef struct server {
    MPI_Comm comm;
    int root;
    pp_executor *lex;
    const pp_mpi_config *cfg;
    srv_task *t;
    size_t n, cap;
    res_pack out;
    uint64_t *fin;      /* [nfin]: when the last nfin (= workers) outcomes */
    unsigned nfin, fin_at; /* were seen; fin_at the oldest */
    uint64_t fin1;      /* fin when no heap room */
    uint64_t heard_ns, sent_ns;
    bool stop;
} server;

static int raw_code(const pp_exception *e) { return ppm_raw_code(e->how, e->code); }

/* Room for a RES message of PPM_BATCH_BYTES plus one record with the largest
 * inline result; without it records go in `small`, results as RES_DATA. */
static void pack_init(res_pack *o, size_t eager_limit)
{
    size_t most = eager_limit > PPM_BATCH_BYTES ? eager_limit : PPM_BATCH_BYTES;
    o->cap = most + sizeof o->small;
    o->buf = malloc(o->cap);
    if (!o->buf) {
        o->buf = o->small;
        o->cap = sizeof o->small;
    }
}

static void pack_fini(res_pack *o)
{
    if (o->buf != o->small)
        free(o->buf);
}

/* Send the packed RES message, then each result not inline as RES_DATA (in
 * record order: the root receives them in that order), then release the
 * futures whose memory they came from. */
static void pack_flush(server *s)
{
    res_pack *o = &s->out;
    if (!o->nrec)
        return;
    MPI_Send(o->buf, (int)o->len, MPI_BYTE, s->root, PPM_TAG_RES, s->comm);
    for (unsigned i = 0; i < o->ndata; i++)
        MPI_Send(o->data[i].p, (int)o->data[i].n, MPI_BYTE, s->root, PPM_TAG_RES_DATA, s->comm);
    for (unsigned i = 0; i < o->nowner; i++)
        pp_future_release(o->owner[i]);
    o->len = 0;
    o->nrec = o->ndata = o->nowner = 0;
    s->sent_ns = ppi_now_ns();
}

/* Add an outcome record: header, message and the result if it fits inline,
 * else the result follows as RES_DATA from @res (memory of @owner, a future
 * released after sending; NULL for an outcome without one). Sends the pack
 * first when this record would overflow it. */
static void send_outcome(server *s, pp_future *owner, uint64_t id, int err, int code, int pid,
                         const char *msg, const void *res, size_t res_size, uint32_t held_us,
                         uint32_t run_us)
{
    res_pack *o = &s->out;
    size_t ml = strlen(msg);
    if (ml > PP_MESSAGE_MAX)
        ml = PP_MESSAGE_MAX;
    if (err)
        res_size = 0;
    if (res_size > INT_MAX) { /* cannot cross in one MPI message */
        send_outcome(s, owner, id, PP_ETOOBIG, 0, pid, "result too large for one MPI message",
                     NULL, 0, held_us, run_us);
        return;
    }
    size_t head = sizeof(ppm_res) + ml;
    bool in = res_size <= s->cfg->eager_limit && head + res_size <= o->cap;
    size_t rec = head + (in ? res_size : 0);
    if (o->nrec && (o->nrec == PPM_BATCH_MAX || o->len + rec > o->cap ||
                    o->len + rec > PPM_BATCH_BYTES))
        pack_flush(s);
    ppm_res h = {.id = id, .err = err, .code = code, .pid = pid, .msg_len = (uint32_t)ml,
                 .res_size = res_size, .inline_res = in, .held_us = held_us,
                 .run_us = run_us};
    memcpy(o->buf + o->len, &h, sizeof h);
    memcpy(o->buf + o->len + sizeof h, msg, ml);
    if (in && res_size)
        memcpy(o->buf + o->len + head, res, res_size);
    o->len += rec;
    o->nrec++;
    if (!in && res_size)
        o->data[o->ndata++] = (typeof(o->data[0])){res, res_size};
    if (owner)
        o->owner[o->nowner++] = owner;
}

static uint32_t us32(uint64_t ns)
{
    return ns / 1000 < UINT32_MAX ? (uint32_t)(ns / 1000) : UINT32_MAX;
}

/* Task @t finished now: how long this rank held it and, about, ran it
 * (from when a worker was free for it: its receipt, or the end of the task
 * that finished `workers` outcomes ago, FIFO node ring). */
static void task_times(server *s, const srv_task *t, uint32_t *held_us, uint32_t *run_us)
{
    uint64_t now = ppi_now_ns(), start = t->recv_ns;
    uint64_t freed = s->fin[s->fin_at];
    start = freed > start ? freed : start;
    s->fin[s->fin_at] = now;
    s->fin_at = (s->fin_at + 1) % s->nfin;
    *held_us = us32(now - t->recv_ns);
    *run_us = us32(now - start);
}

/* A finished future's outcome into the pack; the pack releases it. */
static void send_future(server *s, srv_task *t)
{
    pp_exception e;
    pp_future_exception(t->f, 0, &e);
    const void *res = NULL;
    size_t size = 0;
    if (!e.error)
        pp_future_result(t->f, 0, &res, &size);
    uint32_t held_us, run_us;
    task_times(s, t, &held_us, &run_us);
    send_outcome(s, t->f, t->id, e.error, raw_code(&e), (int)e.pid, e.error ? e.message : "",
                 res, size, held_us, run_us);
}

/* Room for one more task in s->t. */
static bool tasks_reserve(server *s)
{
    if (s->n < s->cap)
        return true;
    size_t cap = s->cap ? 2 * s->cap : 16;
    srv_task *nt = realloc(s->t, cap * sizeof *nt);
    if (!nt)
        return false;
    s->t = nt;
    s->cap = cap;
    return true;
}

/* One task record (header @h, inline argument at @inl): receive its
 * argument if it follows as TASK_DATA, submit it to this node, or answer
 * with the reason it could not be. */
static void on_task_one(server *s, const ppm_task *hp, const void *inl, uint64_t recv_ns)
{
    ppm_task h = *hp;
    const void *arg = inl;
    void *own = NULL, *block = NULL;
    if (!h.inline_arg && h.arg_size && pp_shm_alloc(s->lex, h.arg_size, &block) == 0) {
        /* The argument follows (non-overtaking order): straight into an
         * arena block of this node, which becomes the task's argument. */
        MPI_Recv(block, (int)h.arg_size, MPI_BYTE, s->root, PPM_TAG_TASK_DATA, s->comm,
                 MPI_STATUS_IGNORE);
        arg = block;
    } else if (!h.inline_arg) {
        /* No arena room now: receive into the heap; pp_submit copies it
         * when room comes (the backlog). */
        own = malloc(h.arg_size ? h.arg_size : 1);
        if (!own) {
            MPI_Message m;
            MPI_Status st;
            MPI_Mprobe(s->root, PPM_TAG_TASK_DATA, s->comm, &m, &st);
            MPI_Mrecv(NULL, 0, MPI_BYTE, &m, MPI_STATUS_IGNORE); /* truncated: dropped */
            send_outcome(s, NULL, h.id, -ENOMEM, 0, 0, "out of memory receiving the argument",
                         NULL, 0, 0, 0);
            return;
        }
        MPI_Recv(own, (int)h.arg_size, MPI_BYTE, s->root, PPM_TAG_TASK_DATA, s->comm,
                 MPI_STATUS_IGNORE);
        arg = own;
    }
    const char *why = NULL;
    pp_fn fn = pp_ext_fn_decode(h.token, &why);
    if (!fn) {
        char msg[PP_MESSAGE_MAX + 1];
        snprintf(msg, sizeof msg, "cannot call the task function: %s", why ? why : "unknown");
        send_outcome(s, NULL, h.id, PP_ENOFUNC, PP_ENOFUNC, 0, msg, NULL, 0, 0, 0);
        free(own);
        pp_shm_free(s->lex, block);
        return;
    }
    pp_submit_opts o;
    pp_submit_opts_init(&o);
    /* The slot's encoding: 0 = none, else ns + 1 (executor.c). */
    o.timeout = h.timeout_ns ? (double)(h.timeout_ns - 1) / 1e9 : -1;
    o.kill_grace = (double)h.grace_ns / 1e9;
    if (!tasks_reserve(s)) {
        send_outcome(s, NULL, h.id, -ENOMEM, 0, 0, "out of memory on the serving rank", NULL, 0,
                     0, 0);
        free(own);
        pp_shm_free(s->lex, block);
        return;
    }
    pp_future *f = NULL;
    int rc = block ? pp_ext_submit_adopt(s->lex, fn, block, h.arg_size, &o, &f)
                   : pp_submit_ex(s->lex, fn, arg, h.arg_size, &o, &f);
    free(own);
    if (rc) {
        send_outcome(s, NULL, h.id, rc, 0, 0, pp_strerror(rc), NULL, 0, 0, 0);
        return;
    }
    s->t[s->n++] = (srv_task){.id = h.id, .f = f, .recv_ns = recv_ns};
}

/* TASK: its records in order (a truncated record ends it). */
static void on_task(server *s, const char *buf, size_t len)
{
    size_t at = 0;
    uint64_t now = ppi_now_ns();
    while (len - at >= sizeof(ppm_task)) {
        ppm_task h;
        memcpy(&h, buf + at, sizeof h);
        at += sizeof h;
        uint64_t body = h.inline_arg ? h.arg_size : 0;
        if (body > len - at)
            return;
        on_task_one(s, &h, buf + at, now);
        at += (size_t)body;
    }
}

/* A pp_map chunk (mpi_map.c runs it as one task). */
static void on_map_chunk(server *s, const char *buf, size_t len)
{
    uint64_t id = 0, now = ppi_now_ns();
    pp_future *f = NULL;
    int refuse = tasks_reserve(s) ? 0 : -ENOMEM;
    if (ppm_map_serve_chunk(s->lex, s->comm, s->root, buf, len, refuse, &id, &f) == 0)
        s->t[s->n++] = (srv_task){.id = id, .f = f, .recv_ns = now, .map = true};
}

static void on_kill(server *s, const char *buf, size_t len)
{
    ppm_kill k;
    if (len < sizeof k)
        return;
    memcpy(&k, buf, sizeof k);
    for (size_t i = 0; i < s->n; i++)
        if (s->t[i].id == k.id) {
            pp_future_kill(s->t[i].f, (double)k.grace_ns / 1e9);
            return;
        }
}

/* Receive every message from the root. Returns true if there was one. */
static bool poll_root(server *s)
{
    bool any = false;
    for (;;) {
        int n = 0;
        MPI_Message m;
        MPI_Status st;
        int rc = MPI_SUCCESS;
        if (ppm_probe(s->root, s->comm, &m, &st, &rc) != 1) {
            if (rc != MPI_SUCCESS && ppm_ulfm_proc_failed(rc))
                s->heard_ns = 0; /* ULFM: the root failed; the loop ends as for silence */
            return any;
        }
        any = true;
        s->heard_ns = ppi_now_ns();
        MPI_Get_count(&st, MPI_BYTE, &n);
        char stackbuf[1024];
        char *buf = (size_t)n <= sizeof stackbuf ? stackbuf : malloc((size_t)n);
        if (!buf) {
            MPI_Mrecv(NULL, 0, MPI_BYTE, &m, MPI_STATUS_IGNORE); /* truncated: dropped */
            continue;
        }
        MPI_Mrecv(buf, n, MPI_BYTE, &m, MPI_STATUS_IGNORE);
        switch (st.MPI_TAG) {
        case PPM_TAG_TASK: on_task(s, buf, (size_t)n); break;
        case PPM_TAG_MAP_CHUNK: on_map_chunk(s, buf, (size_t)n); break;
        case PPM_TAG_KILL: on_kill(s, buf, (size_t)n); break;
        case PPM_TAG_CANCEL: pp_shutdown(s->lex, false, true); break;
        case PPM_TAG_STOP: s->stop = true; break;
        case PPM_TAG_SHARE: ppm_serve_share(s->comm, s->root, s->lex, buf, (size_t)n); break;
        case PPM_TAG_UNSHARE: ppm_serve_unshare(s->lex, buf, (size_t)n); break;
        default: break; /* BEAT */
        }
        if (buf != stackbuf)
            free(buf);
    }
}

/* Pack the outcomes of the tasks that finished (pack_flush sends them); a
 * map chunk's goes at once, alone (MAP_RES). Returns true if any. */
static bool send_done(server *s)
{
    bool any = false;
    for (size_t i = 0; i < s->n;) {
        if (!pp_future_done(s->t[i].f)) {
            i++;
            continue;
        }
        if (s->t[i].map) {
            uint32_t held_us, run_us;
            task_times(s, &s->t[i], &held_us, &run_us);
            ppm_map_serve_send(s->comm, s->root, s->t[i].id, s->t[i].f, held_us, run_us);
            pp_future_release(s->t[i].f);
            s->sent_ns = ppi_now_ns();
        } else {
            send_future(s, &s->t[i]);
        }
        s->t[i] = s->t[--s->n];
        any = true;
    }
    return any;
}

/* true if a task running here finished. */
static bool any_done(server *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (pp_future_done(s->t[i].f))
            return true;
    return false;
}

/* Sleep after a round without progress (ppm_backoff_ns says how long): on
 * the node's done eventcount while tasks run here, so that a finished one
 * is sent at once; MPI messages are seen at the next round. */
static void idle_wait(server *s, ppm_backoff *bo, uint64_t now)
{
    uint64_t ns = ppm_backoff_ns(bo, now, s->n ? PPM_SERVE_NAP_NS : PPM_SERVE_IDLE_NS);
    if (!s->n) {
        ppm_sleep_ns(ns);
        return;
    }
    uint32_t seq = pp_ext_done_prepare(s->lex);
    if (any_done(s))
        pp_ext_done_cancel(s->lex);
    else
        pp_ext_done_sleep(s->lex, seq, ns);
}

int ppm_serve(MPI_Comm comm, int root, pp_executor *lex, const pp_mpi_config *cfg)
{
    server s = {.comm = comm, .root = root, .lex = lex, .cfg = cfg};
    pack_init(&s.out, cfg->eager_limit);
    int nw = pp_executor_stats(lex, NULL, NULL, 0);
    s.nfin = nw > 0 ? (unsigned)nw : 1;
    s.fin = calloc(s.nfin, sizeof *s.fin);
    if (!s.fin) {
        s.fin = &s.fin1;
        s.nfin = 1;
    }
    s.heard_ns = s.sent_ns = ppi_now_ns();
    uint64_t beat = ppi_s_to_ns(cfg->heartbeat), limit = ppi_s_to_ns(cfg->node_timeout);
    /* Our naps are short: sleep them, not Linux's default 50 us slack (the
     * caller's slack is restored at the end). */
    int slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    prctl(PR_SET_TIMERSLACK, PPM_TIMER_SLACK_NS, 0, 0, 0);
    ppm_backoff bo;
    ppm_backoff_reset(&bo, s.sent_ns);
    /* A blocking MPI call towards a dead root may never return: the
     * watchdog ends the rank then (mpi_watchdog.c). */
    ppm_watchdog wd;
    ppm_watchdog_start(&wd, limit);
    while (!s.stop || s.n) {
        bool progress = poll_root(&s);
        progress |= send_done(&s);
        pack_flush(&s);
        uint64_t now = ppi_now_ns();
        ppm_watchdog_pulse(&wd, now);
        if (now - s.sent_ns >= beat) {
            MPI_Send(NULL, 0, MPI_BYTE, root, PPM_TAG_BEAT, comm);
            s.sent_ns = now;
        }
        if (now - s.heard_ns >= limit) {
            /* The root is gone: nobody wants our results. End here; our
             * manager sees us die and the workers die with it. */
            fprintf(stderr, "ppool: rank serving the MPI executor: the root was silent for "
                            "%.1f s; exiting\n", cfg->node_timeout);
            _exit(PP_MPI_EXIT_ROOT_LOST);
        }
        if (progress)
            ppm_backoff_reset(&bo, now);
        else
            idle_wait(&s, &bo, now);
    }
    ppm_watchdog_stop(&wd);
    pack_fini(&s.out);
    if (s.fin != &s.fin1)
        free(s.fin);
    free(s.t);
    if (slack > 0)
        prctl(PR_SET_TIMERSLACK, (unsigned long)slack, 0, 0, 0);
    return PP_MPI_SERVED;
}
