/*
 * ppool_f.c — the C half of the Fortran binding (libppool_f): what the
 * module cannot reach through a plain BIND(C) interface without freezing a C
 * struct layout into the Fortran ABI.
 *
 * ppool.h says pp_config, pp_submit_opts, pp_exception, pp_stats,
 * pp_map_item and pp_map_status may grow fields. The module therefore never
 * declares a BIND(C) mirror of them: it reaches them through the accessors
 * below, which take and return scalars only. A field added to one of those
 * structs is a line here (and an optional argument in ppool.F90), and a
 * Fortran program compiled against an older module keeps working.
 *
 * Variadic functions (pp_task_raise, pp_map_raise) cannot be called from
 * Fortran; the wrappers pass the message through "%s".
 *
 * Every function here has the thread-safety and process rules of the
 * ppool.h function it wraps. Symbols are hidden: only the module calls them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ppool.h"

/* ---- configuration ----------------------------------------------------- */

/*
 * The integer fields of pp_config a Fortran caller may set, one line each:
 * X(field, C type). ppf_config_set matches the field's name, so the module
 * and this file share no numbering that could drift.
 */
#define PPF_CONFIG_INT_FIELDS(X)                                              \
    X(max_workers, int)                                                       \
    X(start_method, pp_start_method)                                          \
    X(pin, pp_pin_policy)                                                     \
    X(pin_strict, int)                                                        \
    X(max_arg_size, size_t)                                                   \
    X(max_result_size, size_t)                                                \
    X(inline_size, size_t)                                                    \
    X(arena_size, size_t)                                                     \
    X(slots, unsigned)                                                        \
    X(on_worker_death, pp_death_policy)                                       \
    X(max_tasks_per_child, unsigned)                                          \
    X(max_rss_growth, size_t)                                                 \
    X(cores_per_worker, int)                                                  \
    X(thread_env_override, int)                                               \
    X(ring_shards, int)                                                       \
    X(huge_pages, int)

/* A pp_config with the defaults, on the heap so its size stays the C side's
 * business. NULL when out of memory. */
pp_config *ppf_config_new(void)
{
    pp_config *c = malloc(sizeof *c);
    if (c)
        pp_config_init(c);
    return c;
}

void ppf_config_free(pp_config *c)
{
    free(c);
}

/* Does @v survive the round trip through @type? A negative value never
 * fits an unsigned type, although the cast back would restore it. */
#define PPF_FITS(type, v)                                                     \
    (!((v) < 0 && (type)-1 > (type)0) && (int64_t)(type)(v) == (v))

/*
 * ppf_config_set - set the integer field named @name (@len bytes, not
 * NUL-terminated: a Fortran string) to @v. Returns 0, or -EINVAL for an
 * unknown name or a value the field's type cannot hold (a negative size, a
 * worker count beyond int).
 */
int ppf_config_set(pp_config *c, const char *name, size_t len, int64_t v)
{
#define PPF_SET(field, type)                                                  \
    if (len == sizeof #field - 1 && memcmp(name, #field, len) == 0) {        \
        if (!PPF_FITS(type, v))                                               \
            return -EINVAL;                                                   \
        c->field = (type)v;                                                   \
        return 0;                                                             \
    }
    PPF_CONFIG_INT_FIELDS(PPF_SET)
#undef PPF_SET
    return -EINVAL;
}

/* The CPU list of PP_PIN_LIST: borrowed, so it must outlive
 * ppf_executor_create (the module passes its argument, which does). */
void ppf_config_set_pin_cpus(pp_config *c, const int *cpus, int n)
{
    c->pin_cpus = cpus;
    c->n_pin_cpus = n;
}

/* The initializer and its argument bytes (copied by pp_executor_create). */
void ppf_config_set_initializer(pp_config *c, pp_initializer fn, const void *args, size_t size)
{
    c->initializer = fn;
    c->initargs = size ? args : NULL;
    c->initargs_size = size;
}

/* ---- submit ------------------------------------------------------------ */

/* pp_submit_ex with the options given one by one; a has_* flag of 0 keeps
 * pp_submit_opts_init's default. */
int ppf_submit(pp_executor *ex, pp_fn fn, const void *arg, size_t size, int has_timeout,
               double timeout, int has_grace, double grace, pp_future **out)
{
    pp_submit_opts o;
    pp_submit_opts_init(&o);
    if (has_timeout)
        o.timeout = timeout;
    if (has_grace)
        o.kill_grace = grace;
    return pp_submit_ex(ex, fn, size ? arg : NULL, size, &o, out);
}

/* ---- exception, stats, broken cause --------------------------------------- */

static void ppf_unpack_exception(const pp_exception *e, int *error, int *code, int64_t *pid,
                                 int *how, const char **message)
{
    *error = e->error;
    *code = e->code;
    *pid = e->pid;
    *how = (int)e->how;
    *message = e->message;
}

/* pp_future_exception, unpacked. *message stays valid until the future is
 * released. */
int ppf_future_exception(pp_future *f, double timeout, int *error, int *code, int64_t *pid,
                         int *how, const char **message)
{
    pp_exception e;
    int rc = pp_future_exception(f, timeout, &e);
    if (rc == 0)
        ppf_unpack_exception(&e, error, code, pid, how, message);
    return rc;
}

/* pp_executor_broken_cause, unpacked. */
int ppf_broken_cause(pp_executor *ex, int *error, int *code, int64_t *pid, int *how,
                     const char **message)
{
    pp_exception e;
    int rc = pp_executor_broken_cause(ex, &e);
    if (rc == 0)
        ppf_unpack_exception(&e, error, code, pid, how, message);
    return rc;
}

/* The pool's counters, in the order of the Fortran type pp_stats:
 * submitted, backlog, queued, running, completed, failed, cancelled,
 * killed, respawns. Returns the number of workers or -EINVAL. */
enum { PPF_STATS_N = 9, PPF_WSTATS_N = 7 };
int ppf_executor_stats(const pp_executor *ex, int64_t out[PPF_STATS_N])
{
    pp_stats s;
    int rc = pp_executor_stats(ex, &s, NULL, 0);
    if (rc < 0)
        return rc;
    const uint64_t v[PPF_STATS_N] = {s.submitted, s.backlog,   s.queued, s.running, s.completed,
                                     s.failed,    s.cancelled, s.killed, s.respawns};
    for (int i = 0; i < PPF_STATS_N; i++)
        out[i] = (int64_t)v[i];
    return rc;
}

/* Worker @w (0-based): pid, cpu, core, numa, tasks, busy_ns, respawns.
 * Returns 0, or -EINVAL (no such worker). */
int ppf_worker_stats(const pp_executor *ex, int w, int64_t out[PPF_WSTATS_N])
{
    int n = pp_max_workers(ex);
    if (n < 0 || w < 0 || w >= n)
        return -EINVAL;
    pp_worker_stats *ws = calloc((size_t)n, sizeof *ws);
    if (!ws)
        return -ENOMEM;
    int rc = pp_executor_stats(ex, NULL, ws, n);
    if (rc >= 0) {
        const pp_worker_stats *s = &ws[w];
        const int64_t v[PPF_WSTATS_N] = {s->pid,          s->cpu,     s->core, s->numa,
                                         (int64_t)s->tasks, (int64_t)s->busy_ns,
                                         (int64_t)s->respawns};
        memcpy(out, v, sizeof v);
        rc = 0;
    }
    free(ws);
    return rc;
}

/* ---- task side ----------------------------------------------------------- */

/* pp_task_raise with a Fortran string (@len bytes) as the message. */
int ppf_task_raise(pp_task *t, int code, const char *msg, size_t len)
{
    return pp_task_raise(t, code, "%.*s", (int)(len > PP_MESSAGE_MAX ? PP_MESSAGE_MAX : len), msg);
}

/* ---- map --------------------------------------------------------------- */

/*
 * ppf_map - pp_map over @n_in fixed-size inputs (input j: @counts[j] items
 * of @item_sizes[j] bytes, @strides[j] apart, from @bases[j]), results of
 * @out_size bytes into @out. A has_* flag of 0 keeps pp_map_opts_init's
 * default. The status is unpacked into @st_i (done, code, pid, chunks,
 * staged_bytes, result_bytes) and @message (256 bytes, NUL-terminated).
 */
int ppf_map(pp_executor *ex, pp_map_fn fn, int n_in, void *const *bases, const size_t *counts,
            const size_t *item_sizes, const size_t *strides, void *out, size_t out_count,
            size_t out_size, int has_chunksize, size_t chunksize, int has_timeout,
            double timeout, size_t buffersize, const void *ctx, size_t ctx_size,
            int64_t st_i[6], char message[256])
{
    if (n_in < 0 || n_in > PP_MAP_MAX_INPUTS)
        return -EINVAL;
    pp_map_input in[PP_MAP_MAX_INPUTS];
    for (int j = 0; j < n_in; j++)
        in[j] = pp_map_strided(bases[j], counts[j], item_sizes[j], strides[j]);
    pp_map_opts o;
    pp_map_opts_init(&o);
    if (has_chunksize)
        o.chunksize = chunksize;
    if (has_timeout)
        o.timeout = timeout;
    o.buffersize = buffersize;
    o.out_size = out_size;
    o.ctx = ctx_size ? ctx : NULL;
    o.ctx_size = ctx_size;
    pp_map_status st;
    memset(&st, 0, sizeof st);
    int rc = pp_map(ex, fn, in, n_in, out_size ? out : NULL, out_count, NULL, &o, &st);
    const int64_t v[6] = {(int64_t)st.done,         st.code,
                          st.pid,                   (int64_t)st.chunks,
                          (int64_t)st.staged_bytes, (int64_t)st.result_bytes};
    memcpy(st_i, v, sizeof v);
    memcpy(message, st.message, sizeof st.message);
    message[sizeof st.message - 1] = '\0';
    return rc;
}

/* The item's input @j (0-based) and its size; NULL for a bad @j. */
const void *ppf_item_in(const pp_map_item *it, int j, size_t *size)
{
    if (j < 0 || j >= it->n_in) {
        *size = 0;
        return NULL;
    }
    *size = it->in_size[j];
    return it->in[j];
}

/* Where the item's result goes, and its capacity. */
void *ppf_item_out(const pp_map_item *it, size_t *cap)
{
    *cap = it->out_cap;
    return it->out;
}

/* The map's context bytes (NULL, 0 when none). */
const void *ppf_item_ctx(const pp_map_item *it, size_t *size)
{
    *size = it->ctx_size;
    return it->ctx;
}

size_t ppf_item_index(const pp_map_item *it)
{
    return it->index;
}

int ppf_item_n_in(const pp_map_item *it)
{
    return it->n_in;
}

pp_task *ppf_item_task(const pp_map_item *it)
{
    return it->task;
}

/* pp_map_raise with a Fortran string as the message. */
int ppf_map_raise(pp_map_item *it, int code, const char *msg, size_t len)
{
    return pp_map_raise(it, code, "%.*s", (int)(len > PP_MESSAGE_MAX ? PP_MESSAGE_MAX : len), msg);
}

/* ---- constants ------------------------------------------------------------ */

/*
 * The C values of the constants the module declares as PARAMETERs, in the
 * module's order (ppf_constant_names). The Fortran test compares them one
 * by one, so a value changed in ppool.h (or an errno of another platform)
 * cannot silently disagree with the module.
 */
static const struct {
    const char *name;
    int value;
} ppf_constants[] = {
    {"PP_EBROKEN", PP_EBROKEN},
    {"PP_ETASK", PP_ETASK},
    {"PP_EWORKER", PP_EWORKER},
    {"PP_EKILLED", PP_EKILLED},
    {"PP_ETOOBIG", PP_ETOOBIG},
    {"PP_ENOFUNC", PP_ENOFUNC},
    {"PP_EFORKED", PP_EFORKED},
    {"PP_EINVAL", -EINVAL},
    {"PP_ENOMEM", -ENOMEM},
    {"PP_ETIMEDOUT", -ETIMEDOUT},
    {"PP_ECANCELED", -ECANCELED},
    {"PP_ESHUTDOWN", -ESHUTDOWN},
    {"PP_ENOENT", -ENOENT},
    {"PP_EALREADY", -EALREADY},
    {"PP_EPROTO", -EPROTO},
    {"PP_START_AUTO", PP_START_AUTO},
    {"PP_START_FORK", PP_START_FORK},
    {"PP_START_SPAWN", PP_START_SPAWN},
    {"PP_START_FORKSERVER", PP_START_FORKSERVER},
    {"PP_PIN_COMPACT", PP_PIN_COMPACT},
    {"PP_PIN_SCATTER", PP_PIN_SCATTER},
    {"PP_PIN_NONE", PP_PIN_NONE},
    {"PP_PIN_PUS", PP_PIN_PUS},
    {"PP_PIN_LIST", PP_PIN_LIST},
    {"PP_DEATH_BREAK", PP_DEATH_BREAK},
    {"PP_DEATH_RESPAWN", PP_DEATH_RESPAWN},
    {"PP_ALL_COMPLETED", PP_ALL_COMPLETED},
    {"PP_FIRST_COMPLETED", PP_FIRST_COMPLETED},
    {"PP_FIRST_EXCEPTION", PP_FIRST_EXCEPTION},
    {"PP_CODE_NONE", PP_CODE_NONE},
    {"PP_CODE_TASK", PP_CODE_TASK},
    {"PP_CODE_SIGNAL", PP_CODE_SIGNAL},
    {"PP_CODE_EXIT", PP_CODE_EXIT},
    {"PP_MESSAGE_MAX", PP_MESSAGE_MAX},
    {"PPOOL_VERSION", PPOOL_VERSION},
};

/* The C value of constant @name (@len bytes); *found = 0 if unknown. */
int ppf_constant(const char *name, size_t len, int *found)
{
    for (size_t i = 0; i < sizeof ppf_constants / sizeof ppf_constants[0]; i++)
        if (strlen(ppf_constants[i].name) == len && memcmp(ppf_constants[i].name, name, len) == 0) {
            *found = 1;
            return ppf_constants[i].value;
        }
    *found = 0;
    return 0;
}

/* Number of constants ppf_constant knows (the test checks it saw them all). */
int ppf_constant_count(void)
{
    return (int)(sizeof ppf_constants / sizeof ppf_constants[0]);
}

/* The name of the constant number @i (0-based), or NULL. */
const char *ppf_constant_name(int i)
{
    return i >= 0 && i < ppf_constant_count() ? ppf_constants[i].name : NULL;
}
