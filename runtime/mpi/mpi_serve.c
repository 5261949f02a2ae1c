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
#include <unistd.h>

#include "mpi_internal.h"
#include "process.h"
#include "sync.h"

/* Longest idle sleep with tasks running here, and with none. */
#define PPM_SERVE_NAP_NS 50000ull
#define PPM_SERVE_IDLE_NS 250000ull

typedef struct srv_task {
    uint64_t id;
    pp_future *f;
    bool map; /* a pp_map chunk (mpi_map.c): answered with MAP_RES */
} srv_task;

typedef struct server {
    MPI_Comm comm;
    int root;
    pp_executor *lex;
    const pp_mpi_config *cfg;
    srv_task *t;
    size_t n, cap;
    uint64_t heard_ns, sent_ns;
    bool stop;
} server;

static int raw_code(const pp_exception *e) { return ppm_raw_code(e->how, e->code); }

/* Send an outcome: header, message and inline result in one message, or a
 * second message straight from the future's result memory. */
static void send_outcome(server *s, uint64_t id, int err, int code, int pid, const char *msg,
                         const void *res, size_t res_size)
{
    size_t ml = strlen(msg);
    if (ml > PP_MESSAGE_MAX)
        ml = PP_MESSAGE_MAX;
    if (err || res_size > INT_MAX)
        res_size = err ? 0 : res_size;
    if (res_size > INT_MAX) { /* cannot cross in one MPI message */
        send_outcome(s, id, PP_ETOOBIG, 0, pid, "result too large for one MPI message", NULL, 0);
        return;
    }
    bool in = res_size <= s->cfg->eager_limit;
    ppm_res h = {.id = id, .err = err, .code = code, .pid = pid, .msg_len = (uint32_t)ml,
                 .res_size = res_size, .inline_res = in};
    size_t n = sizeof h + ml + (in ? res_size : 0);
    char stackbuf[1024];
    char *pkt = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (!pkt) {
        if (!err)
            send_outcome(s, id, -ENOMEM, 0, pid, "out of memory sending the result", NULL, 0);
        return;
    }
    memcpy(pkt, &h, sizeof h);
    memcpy(pkt + sizeof h, msg, ml);
    if (in && res_size)
        memcpy(pkt + sizeof h + ml, res, res_size);
    MPI_Send(pkt, (int)n, MPI_BYTE, s->root, PPM_TAG_RES, s->comm);
    if (!in)
        MPI_Send(res, (int)res_size, MPI_BYTE, s->root, PPM_TAG_RES_DATA, s->comm);
    if (pkt != stackbuf)
        free(pkt);
    s->sent_ns = ppi_now_ns();
}

static void send_future(server *s, srv_task *t)
{
    pp_exception e;
    pp_future_exception(t->f, 0, &e);
    const void *res = NULL;
    size_t size = 0;
    if (!e.error)
        pp_future_result(t->f, 0, &res, &size);
    send_outcome(s, t->id, e.error, raw_code(&e), (int)e.pid, e.error ? e.message : "", res,
                 size);
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

static void on_task(server *s, const char *buf, size_t len)
{
    ppm_task h;
    if (len < sizeof h)
        return;
    memcpy(&h, buf, sizeof h);
    const void *arg = buf + sizeof h;
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
            send_outcome(s, h.id, -ENOMEM, 0, 0, "out of memory receiving the argument", NULL, 0);
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
        send_outcome(s, h.id, PP_ENOFUNC, PP_ENOFUNC, 0, msg, NULL, 0);
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
        send_outcome(s, h.id, -ENOMEM, 0, 0, "out of memory on the serving rank", NULL, 0);
        free(own);
        pp_shm_free(s->lex, block);
        return;
    }
    pp_future *f = NULL;
    int rc = block ? pp_ext_submit_adopt(s->lex, fn, block, h.arg_size, &o, &f)
                   : pp_submit_ex(s->lex, fn, arg, h.arg_size, &o, &f);
    free(own);
    if (rc) {
        send_outcome(s, h.id, rc, 0, 0, pp_strerror(rc), NULL, 0);
        return;
    }
    s->t[s->n++] = (srv_task){.id = h.id, .f = f};
}

/* A pp_map chunk (mpi_map.c runs it as one task). */
static void on_map_chunk(server *s, const char *buf, size_t len)
{
    uint64_t id = 0;
    pp_future *f = NULL;
    int refuse = tasks_reserve(s) ? 0 : -ENOMEM;
    if (ppm_map_serve_chunk(s->lex, s->comm, s->root, buf, len, refuse, &id, &f) == 0)
        s->t[s->n++] = (srv_task){.id = id, .f = f, .map = true};
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
        int flag = 0, n = 0;
        MPI_Message m;
        MPI_Status st;
        if (MPI_Improbe(s->root, MPI_ANY_TAG, s->comm, &flag, &m, &st) != MPI_SUCCESS || !flag)
            return any;
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
        default: break; /* BEAT */
        }
        if (buf != stackbuf)
            free(buf);
    }
}

/* Send the outcomes of the tasks that finished. Returns true if any. */
static bool send_done(server *s)
{
    bool any = false;
    for (size_t i = 0; i < s->n;) {
        if (!pp_future_done(s->t[i].f)) {
            i++;
            continue;
        }
        if (s->t[i].map) {
            ppm_map_serve_send(s->comm, s->root, s->t[i].id, s->t[i].f);
            s->sent_ns = ppi_now_ns();
        } else {
            send_future(s, &s->t[i]);
        }
        pp_future_release(s->t[i].f);
        s->t[i] = s->t[--s->n];
        any = true;
    }
    return any;
}

int ppm_serve(MPI_Comm comm, int root, pp_executor *lex, const pp_mpi_config *cfg)
{
    server s = {.comm = comm, .root = root, .lex = lex, .cfg = cfg};
    s.heard_ns = s.sent_ns = ppi_now_ns();
    uint64_t beat = ppi_s_to_ns(cfg->heartbeat), limit = ppi_s_to_ns(cfg->node_timeout);
    ppm_backoff bo = {0};
    while (!s.stop || s.n) {
        bool progress = poll_root(&s);
        progress |= send_done(&s);
        uint64_t now = ppi_now_ns();
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
            ppm_backoff_reset(&bo);
        else
            ppm_backoff_nap(&bo, s.n ? PPM_SERVE_NAP_NS : PPM_SERVE_IDLE_NS);
    }
    free(s.t);
    return PP_MPI_SERVED;
}
