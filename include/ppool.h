/*
 * ppool.h — a process pool for numerical codes, in the manner of Python's
 * concurrent.futures.ProcessPoolExecutor, moved through shared memory.
 *
 * This header is the manual. Read it top to bottom once:
 *
 *   pp_config cfg;  pp_config_init(&cfg);  cfg.max_workers = 4;
 *   pp_executor *ex;  int rc = pp_executor_create(&ex, &cfg);
 *   pp_future *f;     rc = pp_submit(ex, square, &x, sizeof x, &f);
 *   const void *res;  size_t n;
 *   rc = pp_future_result(f, PP_FOREVER, &res, &n);   // 0, or why not
 *   pp_future_release(f);
 *   pp_executor_destroy(ex);                          // shutdown(wait) + free
 *
 * Conventions (shared by every function below)
 *  - Errors: functions return int, 0 on success or a negative code: a negated
 *    errno (-EINVAL bad input, -ENOMEM, -ETIMEDOUT, -ECANCELED, -ESHUTDOWN) or
 *    one of ppool's own PP_E* codes. pp_strerror() names every code.
 *  - Timeouts are double seconds, relative to the call; PP_FOREVER (any
 *    negative value) waits without limit; NaN is -EINVAL. Deadlines are kept on
 *    CLOCK_MONOTONIC.
 *  - Processes: the *client* is the process that created the executor. Every
 *    pp_executor / pp_future function is called in the client, by any of its
 *    threads, unless its comment says otherwise. pp_task_* functions are called
 *    only inside a task function, in a worker process. A process fork()ed
 *    from the client after pp_executor_create is not the client: there every
 *    call on that executor, its futures and maps fails at once with
 *    PP_EFORKED (bool queries answer false) and touches nothing shared;
 *    pp_executor_destroy, pp_future_release and pp_map_end free only the
 *    child's private copy. The parent's pool is never disturbed.
 *  - Ownership: the executor owns its processes and shared segment. Each
 *    future returned to you holds one reference, which you give back with
 *    pp_future_release(); result data stays valid until then. A future keeps
 *    the executor's shared memory alive, so it may outlive
 *    pp_executor_destroy().
 *  - Arguments and results are bytes, copied once into shared memory; no
 *    pointer into the client's heap ever reaches a worker.
 *
 * Thread safety: all client-side functions are safe to call concurrently from
 * several threads, on the same executor and the same futures, except that
 * pp_executor_destroy() must be the last call on its executor.
 */
#ifndef PPOOL_H
#define PPOOL_H

#include <errno.h> /* the -E* codes returned throughout */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ppool/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PPOOL_BUILDING) && defined(__GNUC__)
#define PP_API __attribute__((visibility("default")))
#else
#define PP_API
#endif

#if defined(__GNUC__)
#define PP_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define PP_PRINTF(fmt, args)
#endif

/* ------------------------------------------------------------------------ */
/* Error codes (negated errno values are used alongside these).              */
/* ------------------------------------------------------------------------ */
/**
 * \defgroup pp_errors Error codes
 * 0 or a negative code from every function; pp_strerror() names them.
 * \{
 */

/** The pool is broken (a worker or the manager died under the BREAK policy,
 *  or the pool could not start); Python's BrokenProcessPool. */
#define PP_EBROKEN  (-10001)
/** The task "raised": it called pp_task_raise() or returned non-zero. The
 *  task's own code and message are read with pp_future_exception(). */
#define PP_ETASK    (-10002)
/** The worker running the task died (signal or exit) before finishing it. */
#define PP_EWORKER  (-10003)
/** The task was killed on request or by its timeout. */
#define PP_EKILLED  (-10004)
/** An argument or result is larger than the configured limit. */
#define PP_ETOOBIG  (-10005)
/** The function cannot be called in the workers: it is not in a module that
 *  was loaded when the pool started (e.g. dlopen'ed later), or the worker's
 *  copy of its module differs (build-id). */
#define PP_ENOFUNC  (-10006)
/** The executor or future belongs to another process: this process is a
 *  fork() of its client made after pp_executor_create (see "Processes"). */
#define PP_EFORKED  (-10007)
/** Multi-node (ppool/mpi.h): the MPI rank running the task was lost (silent
 *  for node_timeout: killed, or its node went down); pp_exception.rank names it. */
#define PP_ENODE    (-10008)

/** Wait without a time limit. Any negative timeout means the same. A
 *  timeout too large to count in nanoseconds (about 1.8e10 s and above, +inf,
 *  DBL_MAX) also means no limit; one under a nanosecond (1e-12, denormals)
 *  means "now". This holds for every timeout and grace period in this API. */
#define PP_FOREVER  (-1.0)
/** Largest pp_config.arena_size (256 TiB); larger fails pp_executor_create
 *  with -EINVAL (sizes near SIZE_MAX would wrap when rounded up). */
#define PP_ARENA_MAX ((size_t)1 << 48)

/** Longest message, in bytes without the terminating NUL, that a future or a
 *  map reports (pp_exception.message): pp_task_raise, pp_map_raise and the
 *  runtime's own descriptions (a worker's death, a broken pool) are cut to
 *  exactly this many bytes, whatever pp_config.inline_size. */
#define PP_MESSAGE_MAX 191

/**
 * pp_strerror - name an error code.
 * @err: 0, a negated errno, or a PP_E* code.
 * Returns a static string, never NULL ("unknown error" for unknown codes).
 * Any process, any thread; does not block.
 */
PP_API const char *pp_strerror(int err);

/** \} */

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */
/**
 * \defgroup pp_version_group Version
 * The header's version (ppool/version.h) and the loaded library's.
 * \{
 */

/**
 * pp_version - the version of the library loaded at run time, as
 * PPOOL_VERSION encodes it ((major << 16) | (minor << 8) | patch). Compare it
 * with PPOOL_VERSION, the version of the header compiled against, to detect a
 * mismatched shared library. Any process, any thread; does not block.
 */
PP_API unsigned pp_version(void);

/** pp_version_string - the same as a static string, e.g. "0.1.0". */
PP_API const char *pp_version_string(void);

/** \} */

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */
/**
 * \defgroup pp_config_group Configuration
 * pp_config and the enumerations it uses; pp_config_init() fills the defaults.
 * \{
 */

/** A pool: its shared segment, manager and workers (opaque). */
typedef struct pp_executor pp_executor;
/** The pending outcome of one submitted call; reference-counted (opaque). */
typedef struct pp_future pp_future;
/** The running call, as seen by its task function in a worker (opaque). */
typedef struct pp_task pp_task;
/** What went wrong with a task (defined with pp_future_exception below). */
typedef struct pp_exception pp_exception;

/**
 * A task function. Runs in a worker process. Reads its argument with
 * pp_task_arg(), writes its result with pp_task_result() or
 * pp_task_set_result(), and returns 0. Returning non-zero without calling
 * pp_task_raise() fails the future with PP_ETASK and that value as its code.
 */
typedef int (*pp_fn)(pp_task *t);

/**
 * How the manager and the workers are started (Python's mp_context).
 * Whatever the method, the same pp_fn pointers work: they cross as (module,
 * offset) tokens checked by build-id, and a function whose module the workers
 * cannot have (a library dlopen'ed after pp_executor_create) is refused at
 * submit with PP_ENOFUNC.
 */
typedef enum pp_start_method {
    /** Default: FORK when the creating process runs a single thread, else
     *  FORKSERVER (forking a process that runs threads — OpenMP, MPI, a BLAS
     *  pool — can deadlock the child). The environment variable
     *  PPOOL_START_METHOD=fork|spawn|forkserver overrides it at
     *  pp_config_init. */
    PP_START_AUTO = 0,
    /** The manager is a fork of the client; workers are forks of the manager
     *  (a single-threaded process, so respawning is always safe). Cheapest.
     *
     *  Under every method the manager and the workers get the client's
     *  descriptors as an exec would: the inheritable ones (0, 1, 2 and any
     *  without FD_CLOEXEC) stay open, the close-on-exec ones do not (under
     *  FORK their numbers hold /dev/null: a FILE * or library handle the
     *  client opened with close-on-exec does not work in a task, and a
     *  pipe the client closes sees EOF while the pool lives); none of the
     *  pool's own descriptors is open in a worker. The environment, umask,
     *  resource limits and current directory are inherited (as in Python). */
    PP_START_FORK = 1,
    /** The manager and every worker are fresh execs of the program: of the
     *  client's state only the shared segment and what an exec passes on
     *  (inheritable descriptors, environment, umask, limits, directory). */
    PP_START_SPAWN = 2,
    /** The manager is a fresh exec of the program (single-threaded) and forks
     *  the workers: spawn's isolation, fork's worker start cost. */
    PP_START_FORKSERVER = 3,
} pp_start_method;

/** Where workers are pinned. The plan is a pure function of (topology,
 *  number of workers, policy); see docs/topology.md. */
typedef enum pp_pin_policy {
    PP_PIN_COMPACT = 0, /**< one worker per physical core, filling a package first (default) */
    PP_PIN_SCATTER,     /**< one per physical core, spread across packages / NUMA nodes */
    PP_PIN_NONE,        /**< no pinning: workers inherit the client's affinity */
    PP_PIN_PUS,         /**< one per hardware thread (PU), compact order */
    PP_PIN_LIST,        /**< the OS PU numbers in pp_config.pin_cpus, in order */
} pp_pin_policy;

/** What happens when a worker process dies unexpectedly (signal, exit(),
 *  OOM kill) while the pool runs. Killing a task (pp_future_kill, a task
 *  timeout) and max_tasks_per_child never count as unexpected. */
typedef enum pp_death_policy {
    /** Python parity (default): the pool becomes broken. Every pending and
     *  running future fails with PP_EBROKEN (pp_future_exception gives the
     *  dead worker's pid and signal (> 0) or exit status (< 0) as pid/code),
     *  further submits fail with PP_EBROKEN, the other workers are stopped. */
    PP_DEATH_BREAK = 0,
    /** Only the future that was running on the dead worker fails, with
     *  PP_EWORKER and the signal / exit status; a replacement worker is
     *  started in the same place; everything else goes on. */
    PP_DEATH_RESPAWN = 1,
} pp_death_policy;

/** An initializer: runs once in every worker process, before its first task,
 *  with the bytes of pp_config.initargs. Non-zero (or a crash) breaks the
 *  pool, as in Python. */
typedef int (*pp_initializer)(const void *initargs, size_t size);

/**
 * Executor configuration. Always fill it with pp_config_init() first, then
 * change the fields you care about: fields may be added in later versions.
 */
typedef struct pp_config {
    /** Workers; 0 = the number of physical cores this process may use
     *  (cgroups and inherited affinity honoured), divided by
     *  cores_per_worker. Must be 0..4096. pp_executor_resize changes it
     *  while the pool runs. */
    int max_workers;
    /** See pp_start_method (default PP_START_AUTO). */
    pp_start_method start_method;
    /** Where workers are pinned (default PP_PIN_COMPACT). */
    pp_pin_policy pin;
    /** With PP_PIN_LIST: OS PU numbers, one per worker (cycled if shorter). */
    const int *pin_cpus;
    /** Number of entries in pin_cpus. */
    int n_pin_cpus;
    /** Non-zero: an impossible placement (e.g. more workers than cores with
     *  a per-core policy) fails pp_executor_create with -EINVAL instead of
     *  printing one warning and oversubscribing. */
    int pin_strict;
    /** Largest argument accepted by pp_submit (default 64 MiB); larger fails
     *  with PP_ETOOBIG at submit, and so does an argument over inline_size
     *  that is larger than the whole arena (arena_size). */
    size_t max_arg_size;
    /** Largest result a task may set (default 64 MiB); larger fails that
     *  future with PP_ETOOBIG. */
    size_t max_result_size;
    /** Arguments and results up to this many bytes live inside the slot
     *  (default 192; rounded up to 64, at least 64). Larger go to the arena. */
    size_t inline_size;
    /** Shared arena for large payloads, in bytes (default 1 GiB of address
     *  space; memory is used only as touched and returned when freed).
     *  Rounded up to 4 KiB; at most PP_ARENA_MAX. */
    size_t arena_size;
    /** Task slots in shared memory (default 4096; rounded up to a power of
     *  two). More submissions than slots wait in a client-side backlog. */
    unsigned slots;
    /** See pp_death_policy (default PP_DEATH_BREAK). */
    pp_death_policy on_worker_death;
    /** A worker process exits cleanly after this many tasks (between tasks,
     *  never during one) and is replaced; 0 = never (default). Works with
     *  every start method, fork included (Python refuses it with fork). */
    unsigned max_tasks_per_child;
    /** A worker process exits cleanly between tasks once its private
     *  resident memory (RSS minus file-backed and shared pages) has grown
     *  more than this many bytes past what it held after its first task, and
     *  is replaced; 0 = never (default). For tasks that leak (a C library
     *  that never frees): the worker is recycled before the OOM killer
     *  takes it. Checked after any task that ran 100 µs or more, and at
     *  least every 10 ms of tasks otherwise (one read of /proc/self/statm,
     *  about 2 µs). A map's runner counts as one task. */
    size_t max_rss_growth;
    /** Run in every worker before its first task (NULL = none). */
    pp_initializer initializer;
    /** Bytes passed to the initializer (copied at pp_executor_create). */
    const void *initargs;
    /** Number of bytes at initargs (0 with initargs NULL). */
    size_t initargs_size;
    /** Cores each worker owns (default 1; 1..1024, else pp_executor_create
     *  fails with -EINVAL). With PP_PIN_COMPACT / PP_PIN_SCATTER a worker
     *  gets k physical cores from the placement plan and is bound to the
     *  first PU of each (k consecutive cores in logical order; SCATTER
     *  spreads these blocks of k over packages and NUMA nodes); with
     *  PP_PIN_PUS k PUs; with PP_PIN_LIST the next k entries of pin_cpus;
     *  with PP_PIN_NONE nothing is bound. More workers x k than cores (PUs,
     *  listed CPUs) oversubscribes as for k = 1: one warning, or -EINVAL
     *  with pin_strict. max_workers = 0 then means cores / k (PUs / k with
     *  PP_PIN_PUS), at least 1.
     *
     *  Every worker, under every start method and before the initializer
     *  runs, has OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS,
     *  BLIS_NUM_THREADS, VECLIB_MAXIMUM_THREADS and NUMEXPR_NUM_THREADS set
     *  to k in its environment, and, when it is pinned, OMP_PLACES (one
     *  place per PU it is bound to, e.g. "{4},{5}") and OMP_PROC_BIND=close.
     *  A variable the client's environment already holds at
     *  pp_executor_create is kept as it is, unless thread_env_override.
     *  A thread runtime already loaded in the worker's image (FORK,
     *  FORKSERVER: it read its variables when the program started) is told
     *  the same count through its own call (omp_set_num_threads,
     *  openblas_set_num_threads, MKL_Set_Num_Threads,
     *  bli_thread_set_num_threads) where that symbol is present. */
    int cores_per_worker;
    /** Non-zero: set the thread variables above in the workers even where
     *  the client's environment holds its own value (default 0: keep it). */
    int thread_env_override;
    /** Task-ring shards (default 0 = automatic; 0..PP_RING_SHARDS_MAX, else
     *  pp_executor_create fails with -EINVAL). Submitted tasks wait in
     *  shared memory on a ring that the workers pop; on a many-core node one
     *  ring is a line every worker writes, so the pool can split it: N
     *  rings, each worker popping its home ring first (the ring of its NUMA
     *  domain or group of cores) and taking from the others when its own is
     *  empty, before it sleeps. Tasks are spread over the rings in
     *  submission order. Results, cancel, kill, timeouts, death policies
     *  and statistics behave the same for any count, and no task waits
     *  while a worker is idle; but with more than one ring, tasks start in
     *  submission order only within a ring (a task may start before an
     *  earlier one still waiting in another). 1 = one ring. 0 = one ring
     *  below 32 cores on one NUMA domain (every small machine), else a ring
     *  per NUMA domain, domains or machines of 32 cores and more split into
     *  groups of 16 cores. The count is fixed at create (pp_executor_resize
     *  keeps it). pp_executor_shards tells the count used and each worker's
     *  home ring. The environment variable PPOOL_RING_SHARDS=N (a number
     *  0..PP_RING_SHARDS_MAX; anything else is ignored) sets the default at
     *  pp_config_init. */
    int ring_shards;
    /** Huge pages for the arena (default 1; 0 or 1, else pp_executor_create
     *  fails with -EINVAL). With 1 the arena (payloads over the inline
     *  size, pp_shm_alloc blocks) starts on a 2 MiB boundary in every
     *  process of the pool and is advised MADV_HUGEPAGE there, so where the
     *  kernel allows transparent huge pages on shared memory
     *  (/sys/kernel/mm/transparent_hugepage/shmem_enabled set to advise,
     *  always or within_size) fresh arena memory comes 2 MiB at a time: one
     *  page fault instead of 512 in each process that touches it. That is
     *  what makes large shared arrays cheap to fill, above all under a
     *  hypervisor that traps each first touch of a 4 KiB page (docs/map.md,
     *  "Zero copy"). Where the kernel does not allow it (shmem_enabled
     *  never, the default of most distributions) nothing changes. The cost:
     *  memory is committed 2 MiB at a time as the arena is touched. 0 = no
     *  advice. PPOOL_HUGE_PAGES=0 or 1 sets the default at pp_config_init
     *  (anything else is ignored). */
    int huge_pages;
} pp_config;

/** The most task-ring shards (pp_config.ring_shards). */
#define PP_RING_SHARDS_MAX 64

/**
 * pp_config_init - fill @cfg with the defaults documented on each field.
 * Any thread; does not block.
 */
PP_API void pp_config_init(pp_config *cfg);

/** \} */

/* ------------------------------------------------------------------------ */
/* Executor                                                                  */
/* ------------------------------------------------------------------------ */
/**
 * \defgroup pp_executor_group Executor
 * Create, submit, shut down, destroy; statistics.
 * \{
 */

/**
 * pp_executor_create - start a pool: shared segment, manager, workers.
 * @out: receives the executor on success (NULL on failure).
 * @cfg: configuration, or NULL for the defaults.
 *
 * Returns 0, -EINVAL (bad configuration), -ENOMEM, PP_EBROKEN (a worker or
 * the manager could not start, e.g. it died before pinning itself),
 * PP_ENOFUNC (the initializer cannot be called in workers), or another
 * negated errno from the system calls involved. An initializer that fails
 * does not fail this call: as in Python, the pool is then broken and
 * submissions and their futures report PP_EBROKEN. Blocks until every worker has started and
 * pinned itself (so a pool that cannot start fails here, not later).
 * Call from the client, any thread. With PP_START_FORK the manager is a fork
 * of the calling process (see pp_start_method for the others). Thread-safe
 * with respect to other executors. Once it returns, a worker that dies
 * (killed from outside, say) follows on_worker_death. Works without
 * pidfd_open (old kernels, seccomp, valgrind: the processes then watch
 * each other by polling every 100 ms) and when sched_getaffinity is denied
 * (hwloc is skipped; all online CPUs are assumed).
 */
PP_API int pp_executor_create(pp_executor **out, const pp_config *cfg);

/**
 * pp_submit - schedule fn(arg) and return its future at once.
 * @ex, @fn: the executor and the task function (non-NULL).
 * @arg, @arg_size: the argument bytes, copied before return; @arg may be NULL
 *   only when @arg_size is 0.
 * @out: receives a new future (one reference, yours to release).
 *
 * Never blocks on the pool: when every slot is in use, the call is held in a
 * client-side backlog (memory O(arg_size)) and fed in as slots free up. An
 * argument over inline_size that finds no arena room waits there too, while
 * later tasks that fit pass it; if it still finds none once pp_shutdown was
 * called and no task is queued or running, its future fails with -ENOMEM.
 * Returns 0, -EINVAL, -ENOMEM, PP_ETOOBIG (arg_size > max_arg_size, or an
 * argument over inline_size larger than the whole arena),
 * PP_ENOFUNC (@fn cannot be called in the workers), -ESHUTDOWN (after
 * pp_shutdown), PP_EBROKEN (pool broken: pp_executor_broken_cause says
 * why). On error *out is
 * NULL and nothing was scheduled. Any client thread.
 */
PP_API int pp_submit(pp_executor *ex, pp_fn fn, const void *arg, size_t arg_size,
                     pp_future **out);

/** Per-submission options; fill with pp_submit_opts_init(). */
typedef struct pp_submit_opts {
    /** Run-time limit in seconds, counted from the moment a worker starts the
     *  task; once over, the task is killed like pp_future_kill(f, kill_grace)
     *  and its future fails with PP_EKILLED. Negative = none (default). */
    double timeout;
    /** Seconds between SIGTERM and SIGKILL when the timeout fires (default 1). */
    double kill_grace;
    /** Under an MPI executor (ppool/mpi.h): how many times the task may be
     *  run again, on another rank or the root's node, after the rank running
     *  it was lost (default 0: its future fails with PP_ENODE). Mark only
     *  tasks that may run twice: the lost rank may have run part or all of
     *  it. Each loss uses one; once none is left the future fails
     *  PP_ENODE. While it waits to run again the future is queued:
     *  pp_future_running is false, pp_future_cancel cancels it. A loss after
     *  pp_shutdown was called fails it PP_ENODE whatever this says (the
     *  pool runs nothing newly queued by then). An ordinary pool ignores it:
     *  a task whose worker died is never re-run (it would likely kill the
     *  next one too); see on_worker_death. */
    unsigned retries;
} pp_submit_opts;

/** Fill @o with the defaults (no timeout, 1 s grace, no retries). */
PP_API void pp_submit_opts_init(pp_submit_opts *o);

/**
 * pp_submit_ex - pp_submit with options (@opts may be NULL for defaults).
 * Returns as pp_submit, or -EINVAL for bad options (NaN timeout, negative
 * grace).
 */
PP_API int pp_submit_ex(pp_executor *ex, pp_fn fn, const void *arg, size_t arg_size,
                        const pp_submit_opts *opts, pp_future **out);

/**
 * pp_shutdown - stop accepting work; optionally cancel and/or wait.
 * @wait: true: return once every submitted task has finished (or was
 *   cancelled) and the workers and manager have exited.
 *   false: return at once; the remaining work still runs to completion and its
 *   futures resolve; the processes exit once it is done.
 * @cancel_futures: true: cancel every task that no worker has started,
 *   wherever it is queued; running tasks see pp_task_should_stop() true.
 *
 * Idempotent: later calls are allowed (a later wait=true still waits), also
 * from several threads at once: each wait=true caller returns only after
 * everything above (and every pending done-callback) is done.
 * Returns 0, -EINVAL for a NULL executor, or PP_EFORKED. Blocks only when
 * @wait. Any client thread, and inside a done-callback of @ex (see
 * pp_future_add_done_callback): there wait=true waits the same way, except
 * for the callbacks running on the calling thread (they end after it
 * returns); on the executor's service thread it feeds the client backlog in
 * itself first, and other callbacks may run inside the call meanwhile.
 *
 * At exit(3) (or a return from main), every executor of this process that
 * was not destroyed is shut down with wait=true, cancel_futures=false, as
 * Python does at interpreter exit: submitted work still runs, even after
 * pp_shutdown(ex, false, ...), and the program ends after it. _exit(),
 * quick_exit() and fatal signals skip this: the workers then die with the
 * process and unfinished work is lost. exit() called inside a done-callback
 * on the executor's service thread does not wait for that executor; on any
 * other thread it waits as above.
 */
PP_API int pp_shutdown(pp_executor *ex, bool wait, bool cancel_futures);

/**
 * pp_executor_destroy - pp_shutdown(ex, true, false), then free the executor.
 * The shared segment lives on until the last future is released.
 * Returns 0 or -EINVAL (PP_EFORKED in a fork()ed child, which frees its own
 * copy only). Blocks. Must be the last call on @ex; call it once. Allowed
 * inside a done-callback of @ex (the runtime keeps what it still needs).
 */
PP_API int pp_executor_destroy(pp_executor *ex);

/** pp_max_workers - the number of worker positions (>= 1): max_workers at
 *  create, then the last size given to pp_executor_resize; -EINVAL.
 *  Any client thread; does not block. */
PP_API int pp_max_workers(const pp_executor *ex);

/**
 * pp_executor_resize - grow or shrink the pool while it runs.
 * @max_workers: the new number of worker positions, 1..4096.
 *
 * Growing starts workers in positions old..max_workers-1, placed by the
 * same plan as at create (same pin policy, cores_per_worker, pin_cpus;
 * worker i always gets the place plan(i) gives it, so shrinking and growing
 * back returns the same cores), with the same thread variables and
 * initializer; the call returns once every new worker is pinned, ready and
 * through the initializer (pp_executor_create waits only for the first two).
 * Shrinking retires the workers in positions max_workers..old-1: an idle one
 * leaves at once, a busy one finishes its current task and leaves right
 * after it, taking no new one. No running task is ever killed or failed by
 * a resize, and no queued task is lost: queued and backlogged work keeps
 * flowing to the remaining workers. The call does not wait for busy workers
 * to finish.
 * pp_max_workers, pp_executor_stats (workers, per-worker records) and
 * pp_executor_topology report the new size when it returns; the pool-wide
 * task counters keep counting the tasks of retired workers. A retiring
 * worker that dies holding no task (killed from outside, or after its
 * last task) is simply gone; one that dies holding a task follows
 * on_worker_death. max_tasks_per_child and max_rss_growth recycle only
 * workers in positions below the current size.
 *
 * Returns 0; -EINVAL (NULL @ex, @max_workers out of range, or with
 * pin_strict a size the plan cannot place without oversubscribing);
 * -ESHUTDOWN (pp_shutdown was called before, or during, the call: the size
 * may or may not have changed; submitted work still completes);
 * PP_EBROKEN (the pool is or became broken, e.g. a new worker could not
 * start or its initializer failed, which breaks the pool as at create);
 * PP_EFORKED (a fork()ed child of the client, a worker included).
 * Any client thread, also inside a done-callback; concurrent calls are
 * serialised and the last one wins. Blocks while new workers start.
 */
PP_API int pp_executor_resize(pp_executor *ex, int max_workers);
/** pp_start_method_used - the method actually used (never PP_START_AUTO for
 *  an executor; PP_START_AUTO only for a NULL @ex). Does not block. */
PP_API pp_start_method pp_start_method_used(const pp_executor *ex);

/** Per-worker statistics, read from shared memory while the pool runs. */
typedef struct pp_worker_stats {
    pid_t pid;             /**< current process (0 before it started) */
    int cpu;               /**< first OS PU it is pinned to, -1 when unpinned */
    int core;              /**< logical index of its physical core, -1 unknown */
    int numa;              /**< OS index of its NUMA node, -1 unknown */
    int ncpus;             /**< OS PUs it is bound to (cores_per_worker with a
                              pinning policy), 0 when unpinned */
    uint64_t tasks;        /**< tasks finished by this worker position */
    uint64_t busy_ns;      /**< time spent inside task functions */
    uint64_t respawns;     /**< times this position got a new process */
} pp_worker_stats;

/** Pool-wide statistics. */
typedef struct pp_stats {
    int workers;           /**< worker positions (max_workers, or the size
                              given to pp_executor_resize) */
    uint64_t submitted;    /**< accepted by pp_submit */
    uint64_t backlog;      /**< waiting client-side for a free slot */
    uint64_t queued;       /**< in shared memory, not started */
    uint64_t running;      /**< being executed by a worker */
    uint64_t completed;    /**< finished with a result */
    uint64_t failed;       /**< finished with an error: raised, returned
                              non-zero, or lost with its worker or a broken
                              pool (not cancellations, not kills) */
    uint64_t cancelled;    /**< cancelled before a worker started them */
    uint64_t killed;       /**< stopped by pp_future_kill or a task timeout.
                              Once every future is done: submitted ==
                              completed + failed + cancelled + killed */
    uint64_t respawns;     /**< worker processes replaced (deaths, recycling) */
} pp_stats;

/**
 * pp_executor_stats - a snapshot of the pool's counters.
 * @st: receives the pool-wide counters (may be NULL).
 * @workers, @n: receive up to @n per-worker records (may be NULL/0).
 * Returns the number of workers, or -EINVAL. Counters are read without
 * locking, each one exact, the set not one instant. A worker counts a task
 * just after publishing its outcome, so right after a future is seen done its
 * completion may not be counted yet (after pp_shutdown(wait=true) all are). Any client thread; does
 * not block.
 */
PP_API int pp_executor_stats(const pp_executor *ex, pp_stats *st, pp_worker_stats *workers, int n);

/**
 * pp_executor_broken_cause - why the pool broke: what pp_submit's PP_EBROKEN
 * cannot say, since no future exists then.
 * @out: receives the cause: error PP_EBROKEN, code/how/pid of what broke the
 *   pool (the dead worker's signal or exit status and pid; a failed
 *   initializer's worker, with its exit status; pp_terminate_workers /
 *   pp_kill_workers: the signal, pid 0; the manager's death: no code, its
 *   pid) and a description (at most PP_MESSAGE_MAX bytes, valid until
 *   pp_executor_destroy). When the pool is not broken: error 0, code 0, pid
 *   0, how PP_CODE_NONE, message "".
 * Returns 0, or -EINVAL (NULL argument). Notices a dead manager (one poll()).
 * Any client thread; does not block.
 */
PP_API int pp_executor_broken_cause(pp_executor *ex, pp_exception *out);

/**
 * pp_executor_shards - the task-ring layout in use (pp_config.ring_shards).
 * @homes, @n: receive the home shard (0 .. count - 1) of worker positions
 *   0 .. min(@n, workers) - 1 (may be NULL/0).
 * Returns the number of shards (1 .. PP_RING_SHARDS_MAX; fixed at create,
 * resizing keeps it), or -EINVAL for a NULL @ex. Any client thread; does
 * not block.
 */
PP_API int pp_executor_shards(const pp_executor *ex, int *homes, int n);

/**
 * pp_executor_topology - one line describing the machine as the pool sees it
 * (e.g. "1 package, 2 cores, 2 PUs, 1 NUMA node (hwloc 2.9.0)"), the number
 * of workers (with "x k cores" when cores_per_worker > 1) and the pin
 * policy. Returns a string owned by the executor, valid until it is freed
 * ("" for a NULL @ex); pp_executor_resize updates it (a string returned
 * before a resize keeps its text until the second resize after it). Any
 * client thread; does not block.
 */
PP_API const char *pp_executor_topology(const pp_executor *ex);

/** \} */

/* ------------------------------------------------------------------------ */
/* Futures                                                                   */
/* ------------------------------------------------------------------------ */
/**
 * \defgroup pp_future_group Futures
 * Waiting for, reading, cancelling and killing one task; callbacks; pp_wait and as_completed.
 * \{
 */

/**
 * pp_future_result - wait for the task and get its result.
 * @timeout: seconds, or PP_FOREVER.
 * @data, @size: receive the result bytes (may be NULL if unwanted). The data
 *   stays valid and unchanged until the future is released; it is aligned to
 *   16 bytes. A task that set no result yields size 0.
 *
 * Returns 0; -ETIMEDOUT (the task goes on; call again later); -ECANCELED;
 * PP_ETASK (the task raised: see pp_future_exception); PP_EWORKER; PP_EBROKEN;
 * PP_ETOOBIG (its result exceeded max_result_size); -ENOMEM (no arena space
 * for its result); -EPROTO (the future's slot in shared memory was
 * overwritten, e.g. by a task writing past the result size it declared, or
 * by a forked child of the client using the pool: the future fails instead
 * of waiting forever; pp_future_exception describes it); -EINVAL. Blocks up
 * to @timeout, whatever happens to the slot. Any client thread.
 */
PP_API int pp_future_result(pp_future *f, double timeout, const void **data, size_t *size);

/** What pp_exception.code holds (pp_exception.how): it tells a worker that
 *  called exit(0) (PP_CODE_EXIT, code 0) from no code at all (PP_CODE_NONE). */
typedef enum pp_code_kind {
    PP_CODE_NONE = 0,   /**< no signal, exit status or task code: code is 0
                           (success, cancellation, a kill that ended in its
                           grace period, the manager's death, ...), or a
                           negated errno where the runtime itself failed (no
                           replacement worker could be forked) */
    PP_CODE_TASK = 1,   /**< PP_ETASK: the task's own code */
    PP_CODE_SIGNAL = 2, /**< the signal number (> 0) that ended the worker */
    PP_CODE_EXIT = 3,   /**< minus the worker's exit status: exit(3) gives -3,
                           exit(0) gives 0 */
} pp_code_kind;

/** What went wrong with a task. Strings stay valid until the future is
 *  released. */
struct pp_exception {
    int error;             /**< 0 when the task succeeded, else as pp_future_result */
    int code;              /**< PP_ETASK: the task's code; PP_EWORKER and PP_EBROKEN
                              (a worker died): its signal number (> 0) or exit
                              status (<= 0); PP_EKILLED: the signal that ended
                              it (0 if it ended during the grace period);
                              else 0. Read @how to tell which. */
    pid_t pid;             /**< worker that ran it, 0 if none did (a task still
                              queued when the pool broke, or failed by the
                              client); with PP_EBROKEN under
                              PP_DEATH_BREAK, the worker whose death broke the
                              pool. Never negative: safe to pass to kill() */
    const char *message;   /**< the task's message or a description, at most
                              PP_MESSAGE_MAX bytes; never NULL */
    pp_code_kind how;      /**< what @code is (see pp_code_kind) */
    int rank;              /**< under an MPI executor (ppool/mpi.h): the rank
                              whose node ran the task, or whose node the
                              failure concerns; -1 for an ordinary pool */
};

/**
 * pp_future_exception - wait like pp_future_result, then describe the error.
 * Returns 0 once the future is done (whatever its outcome: read exc->error),
 * -ETIMEDOUT, or -EINVAL. A cancelled future yields exc->error = -ECANCELED.
 */
PP_API int pp_future_exception(pp_future *f, double timeout, pp_exception *exc);

/** true once the task finished, failed or was cancelled. Does not block. */
PP_API bool pp_future_done(pp_future *f);
/** true only while a worker is executing it. Does not block. */
PP_API bool pp_future_running(pp_future *f);

/**
 * pp_future_cancel - cancel the task if no worker has started it, wherever it
 * waits (client backlog or shared ring). Returns true if the future is now
 * cancelled (also when it already was), false if it is running or finished.
 * On success every waiter returns -ECANCELED. Never blocks. Any client thread.
 */
PP_API bool pp_future_cancel(pp_future *f);
/**
 * pp_future_kill - stop the task now. Running: SIGTERM to its worker, SIGKILL
 * after @grace seconds if it is still alive; the future fails with PP_EKILLED
 * (exception code: the signal), the worker is replaced, every other task is
 * unaffected, and pp_task_should_stop() is true inside the task meanwhile.
 * Not started yet: cancelled instead (-ECANCELED). A task that finishes
 * before the signal lands still counts as killed: the kill is decided by one
 * CAS on the slot, so it can never hit the worker's next task.
 * Returns 0, -EALREADY (already finished), or -EINVAL. Never blocks.
 */
PP_API int pp_future_kill(pp_future *f, double grace);

/** true if the future was cancelled. Does not block. */
PP_API bool pp_future_cancelled(pp_future *f);

/** Take another reference to @f (returns @f). */
PP_API pp_future *pp_future_ref(pp_future *f);

/**
 * pp_future_release - give back one reference. On the last one the result
 * memory is freed; a task still queued or running goes on, and its result is
 * discarded. NULL is ignored. Never blocks. Any client thread.
 */
PP_API void pp_future_release(pp_future *f);

/** A done-callback: returns 0, or non-zero to report a failure (logged). */
typedef int (*pp_callback)(pp_future *f, void *userdata);

/**
 * pp_future_add_done_callback - call cb(f, userdata) once @f is done.
 * Callbacks run in the client process, in registration order: at once in the
 * calling thread if @f is already done and its earlier callbacks have run
 * (otherwise after them, where they run); inside pp_future_cancel / pp_shutdown
 * when those cancel it; otherwise on the executor's client-side thread as soon
 * as the task finishes (also when it fails or the pool breaks). A callback
 * returning non-zero is reported on stderr with the future's identity and the
 * remaining callbacks still run. The runtime keeps @f alive until its
 * callbacks have run, and pp_shutdown(wait=true) / pp_executor_destroy return
 * only after every pending callback ran.
 * Inside a callback every client call is allowed, on any executor: submit,
 * the pp_future_* calls (also on @f: it is done), adding callbacks (on a done
 * future they run at once, nested), pp_wait, pp_shutdown with or without
 * wait, pp_executor_destroy. Waits return without deadlock, except one that
 * waits without a timeout for a task that can start only after the callback
 * returns: on the service thread, a task still in the client backlog of the
 * same executor (use a timeout, or pp_shutdown(wait=true), which feeds the
 * backlog in itself); and two executors' callbacks that wait in
 * pp_shutdown for each other.
 * Returns 0, -EINVAL, -ENOMEM or PP_EFORKED. Any client thread; never blocks
 * on the pool.
 */
PP_API int pp_future_add_done_callback(pp_future *f, pp_callback cb, void *userdata);

/** Return conditions for pp_wait (Python's FIRST_COMPLETED, ...). */
typedef enum pp_return_when {
    PP_ALL_COMPLETED = 0,   /**< every future is done (Python's ALL_COMPLETED) */
    PP_FIRST_COMPLETED = 1, /**< at least one future is done */
    PP_FIRST_EXCEPTION = 2, /**< a future failed (not cancelled), or as ALL_COMPLETED when nothing fails */
} pp_return_when;

/**
 * pp_wait - wait for futures (of any executors) until @when holds or
 * @timeout passes.
 * @fs, @n: the futures (duplicates and NULL entries are allowed; NULLs are
 *   ignored).
 * @done: if non-NULL, receives n flags: done[i] is true when fs[i] is done
 *   (finished, failed or cancelled) at return. The partition is as it stands
 *   at return; a timeout is not an error.
 * Returns the number of distinct done futures (>= 0; duplicates count once,
 * as in Python's sets), -EINVAL or -ENOMEM. Blocks up to
 * @timeout. Any client thread.
 */
PP_API int pp_wait(pp_future *const *fs, size_t n, double timeout, pp_return_when when,
                   bool *done);

/** An as_completed iterator. */
typedef struct pp_as_completed pp_as_completed;

/**
 * pp_as_completed_begin - iterate over @fs (any executors) as they finish,
 * already-finished ones first, each future once (duplicates yielded once),
 * with one absolute deadline @timeout seconds from now.
 * Returns 0, -EINVAL or -ENOMEM. The iterator does not take references: keep
 * the futures alive until pp_as_completed_end.
 */
PP_API int pp_as_completed_begin(pp_as_completed **it, pp_future *const *fs, size_t n,
                                 double timeout);
/**
 * pp_as_completed_next - the next finished future into *f.
 * Returns 0 (*f set), -ENOENT when every future has been yielded, or
 * -ETIMEDOUT once the deadline passed (pp_as_completed_pending says how many
 * are unfinished; calling again keeps returning -ETIMEDOUT for them).
 * Blocks until a future finishes or the deadline.
 */
PP_API int pp_as_completed_next(pp_as_completed *it, pp_future **f);
/** Futures not yet yielded. */
PP_API size_t pp_as_completed_pending(const pp_as_completed *it);
/** Free the iterator (NULL is ignored). */
PP_API void pp_as_completed_end(pp_as_completed *it);

/**
 * pp_terminate_workers / pp_kill_workers - Python 3.14's terminate_workers()
 * and kill_workers(): pp_shutdown(ex, false, true), then SIGTERM (resp.
 * SIGKILL) every live worker. A worker still alive 1 s after SIGTERM (a
 * task may ignore or handle it) is SIGKILLed. Running futures fail promptly
 * with PP_EBROKEN (exception code: the signal, pid: the worker that ran it,
 * 0 for any that no worker had started), except a task that returns before
 * its worker receives the signal: the shutdown sets the stop flag first, so
 * a task polling pp_task_should_stop may return in that window and its
 * future completes with what it returned. The pool is unusable afterwards;
 * nothing hangs. pp_executor_destroy is still
 * needed to free the handle. Returns 0 or -EINVAL. Does not block.
 */
PP_API int pp_terminate_workers(pp_executor *ex);
/** pp_kill_workers - as pp_terminate_workers, with SIGKILL. */
PP_API int pp_kill_workers(pp_executor *ex);

/** \} */

/* ------------------------------------------------------------------------ */
/* Scope-exit helpers (the `with` statement)                                  */
/* ------------------------------------------------------------------------ */
/**
 * \defgroup pp_scope Scope-exit helpers
 * Python's `with` statement: cleanup-attribute helpers.
 * \{
 */

/** For __attribute__((cleanup)): destroys *exp if non-NULL. */
PP_API void pp_executor_cleanup(pp_executor **exp);
/** For __attribute__((cleanup)): releases *fp if non-NULL. */
PP_API void pp_future_cleanup(pp_future **fp);

#if defined(__GNUC__)
/** `PP_SCOPED_EXECUTOR(ex);` declares `pp_executor *ex = NULL` that is
 *  destroyed (shutdown(wait) + free) when the scope ends, like `with`. */
#define PP_SCOPED_EXECUTOR(name) \
    pp_executor *name __attribute__((cleanup(pp_executor_cleanup))) = NULL
/** `PP_SCOPED_FUTURE(f);` declares a future released when the scope ends. */
#define PP_SCOPED_FUTURE(name) pp_future *name __attribute__((cleanup(pp_future_cleanup))) = NULL
#endif

/** \} */

/* ------------------------------------------------------------------------ */
/* Shared memory for large arrays                                            */
/* ------------------------------------------------------------------------ */
/**
 * \defgroup pp_shm Shared arrays
 * Arena memory visible to every worker, passed by offset.
 * \{
 */

/**
 * pp_shm_alloc - @size bytes (> 0) of memory visible to every worker, from
 * the executor's arena (4 KiB aligned; contents unspecified: a reused block
 * keeps old bytes). Pass its
 * offset (pp_shm_offset) in a task's argument and get the pointer back in the
 * worker with pp_task_shm: no bytes are copied.
 * Returns 0 with *ptr set, -EINVAL, or -ENOMEM (arena full). Any client thread.
 */
PP_API int pp_shm_alloc(pp_executor *ex, size_t size, void **ptr);
/** Free memory from pp_shm_alloc (NULL ignored). Any client thread. */
PP_API void pp_shm_free(pp_executor *ex, void *ptr);
/** The offset of @ptr (inside a pp_shm_alloc block) in the segment, or
 *  UINT64_MAX if @ptr is not in it. */
PP_API uint64_t pp_shm_offset(pp_executor *ex, const void *ptr);

/** Most blocks one executor shares at once (pp_shm_share, pp_mpi_share). */
#define PP_SHARE_MAX 64

/**
 * pp_shm_share - publish a read-only block under a handle, for tasks to read
 * in place with pp_task_shared(t, handle, &size): one lookup in shared
 * memory, no copy, no offset to carry in every argument.
 * @block: memory from pp_shm_alloc on @ex, already filled: a task that finds
 *   the handle sees every byte written before this call (the registration
 *   is a release store, the lookup an acquire load).
 * @size: bytes tasks may read (> 0; @block + @size inside the arena).
 * @handle: receives the handle (never 0; not reused for another block while
 *   the executor lives).
 * The block stays yours: do not write it while it is shared (tasks see a
 * const pointer and may read it at any time), and free it with pp_shm_free
 * only after pp_shm_unshare and once no task that read it still runs.
 * Returns 0; -EINVAL (NULL argument, @size 0, @block not in @ex's arena, or
 * @size past its end); -ENOSPC (PP_SHARE_MAX blocks are shared);
 * PP_EFORKED. Any client thread; does not block.
 */
PP_API int pp_shm_share(pp_executor *ex, const void *block, size_t size, uint64_t *handle);

/**
 * pp_shm_unshare - withdraw @handle: from the return on, pp_task_shared finds
 * nothing under it (tasks that already hold the pointer keep reading the
 * block, which is why it may be freed only once they are done).
 * @block: receives the block that was shared (may be NULL).
 * Returns 0; -ENOENT (nothing is shared under @handle); -EINVAL (NULL @ex);
 * PP_EFORKED. Any client thread; does not block.
 */
PP_API int pp_shm_unshare(pp_executor *ex, uint64_t handle, void **block);

/** \} */

/* ------------------------------------------------------------------------ */
/* Inside a task (worker process only)                                        */
/* ------------------------------------------------------------------------ */
/**
 * \defgroup pp_task_group Inside a task
 * Called only by a task function, in a worker process.
 * \{
 */

/** The argument bytes (read-only, 16-byte aligned); *size receives their
 *  count if @size is non-NULL. Valid until the task function returns. */
PP_API const void *pp_task_arg(pp_task *t, size_t *size);

/**
 * pp_task_result - writable space for a result of exactly @size bytes, in
 * shared memory (16-byte aligned). Calling it again replaces the earlier
 * space. Returns NULL if @size exceeds max_result_size (the future will fail
 * with PP_ETOOBIG) or the arena has no room (the future fails with -ENOMEM);
 * the task may go on, its result is then dropped.
 */
PP_API void *pp_task_result(pp_task *t, size_t size);

/** Copy helper: pp_task_result(t, size) then memcpy. Returns 0, PP_ETOOBIG or
 *  -ENOMEM. */
PP_API int pp_task_set_result(pp_task *t, const void *data, size_t size);

/**
 * pp_task_raise - fail the task with a code and a printf-style message
 * (truncated to PP_MESSAGE_MAX bytes). The future then reports PP_ETASK.
 * Returns PP_ETASK so a task can `return pp_task_raise(t, ...)`.
 */
PP_API int pp_task_raise(pp_task *t, int code, const char *fmt, ...) PP_PRINTF(3, 4);

/** true when the task should stop early: the pool is shutting down with
 *  cancel_futures, is broken, or this task is being killed (during the
 *  grace period of pp_future_kill or a timeout). Cheap (shared-memory loads). */
PP_API bool pp_task_should_stop(pp_task *t);

/** The worker-side pointer for an offset from pp_shm_offset, or NULL if the
 *  offset is outside the segment. */
PP_API void *pp_task_shm(pp_task *t, uint64_t offset);

/**
 * pp_task_shared - the block shared under @handle (pp_shm_share, or
 * pp_mpi_share on every node) as this task's node holds it: a pointer into
 * the node's shared segment, read in place, valid until the block is
 * unshared and freed (see pp_shm_unshare). *size receives its size if @size
 * is non-NULL. Returns NULL (and *size 0) when nothing is shared under
 * @handle on this node: never shared, unshared already, or 0. Lock-free
 * (a few shared-memory loads); any task.
 */
PP_API const void *pp_task_shared(pp_task *t, uint64_t handle, size_t *size);

/** Index (0..max_workers-1) of the worker running this task; after
 *  pp_executor_resize shrank the pool, a retiring worker finishing its last
 *  task keeps its index (>= the new size). */
PP_API int pp_task_worker(pp_task *t);

/** \} */

#include "ppool/map.h"

#ifdef __cplusplus
}
#endif

#endif /* PPOOL_H */
