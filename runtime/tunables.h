/*
 * tunables.h — every spin, nap, poll interval and internal timeout of the
 * runtime, in one place, each with why it has its value.
 *
 * All are nanoseconds unless the name says otherwise. None is part of the
 * API: changing one changes latency or CPU use, never behaviour, except the
 * timeouts marked "give up", which bound how long ppool waits for a peer
 * that may be dead before it reports an error. Every sleep in the runtime is
 * bounded by one of these, so a lost wake-up or a dead peer costs at most
 * that long, never a hang.
 */
#ifndef PPOOL_RUNTIME_TUNABLES_H
#define PPOOL_RUNTIME_TUNABLES_H

/* ---- workers ------------------------------------------------------------ */

/* How long an idle worker spins on an empty ring before sleeping. Spinning
 * keeps the round trip at a couple of microseconds; the bound keeps idle
 * pools off the CPU (measured: bench_core, docs/design.md). */
#define PPI_WORKER_SPIN_NS 50000ull
/* ... of which this long with `pause` only, then sched_yield: on a machine
 * with as many workers as cores, a pure pause spin stole the client's CPU
 * (throughput 0.8 -> ~2 M tasks/s on 2 cores). */
#define PPI_WORKER_PAUSE_NS 20000ull
/* How long any sleeper (worker, waiter, manager) sleeps before re-checking
 * that its peers live: the time a death can go unnoticed by a sleeper that
 * no event wakes. 100 ms is below what a user perceives as a hang. */
#define PPI_LIVENESS_NS 100000000ull
/* max_rss_growth: check /proc/self/statm (~2 µs) after any task of at least
 * this long (then the check costs under 2 %)... */
#define PPI_RSS_LONG_TASK_NS 100000ull
/* ... and at least this often otherwise (bounds the overshoot of a leaking
 * worker that runs microsecond tasks). */
#define PPI_RSS_CHECK_NS 10000000ull

/* ---- client: futures and waits ----------------------------------------- */

/* pp_future_result spins this long on the slot word before sleeping on its
 * futex: about a no-op round trip's worth, so short tasks cost no syscall. */
#define PPI_FUTURE_SPIN_NS 50000ull
/* ... re-reading the slot word after every pause, and the clock (for the
 * spin budget and the deadline) only every this many passes: a pause is
 * 5-40 ns depending on the CPU (19 ns on the development VM's AMD cores), a
 * clock read 20-40 ns (38 ns there), so a spinner overshoots a deadline by
 * well under a microsecond. Re-reading only after 64 pauses had put up to
 * 1.2 µs between reads: round trip 1.41-1.64 µs -> 0.38-0.97 µs (bench_core). */
#define PPI_SPIN_CLOCK_EVERY 32u
/* Every future sleep is at most this long (a wake-up lost to a dead worker
 * or manager costs at most this; each nap re-checks the pool). */
#define PPI_FUTURE_NAP_NS 50000000ull
/* pp_wait / as_completed sleep on the executors' done eventcounts at most
 * this long, for the same reason. */
#define PPI_WAIT_NAP_NS 50000000ull
/* ... and at most this long when they cannot sleep on every executor at
 * once (more executors than futex_waitv takes, or a kernel without it):
 * then they poll, and 1 ms keeps the latency low at a small CPU cost. */
#define PPI_WAIT_POLL_NS 1000000ull
/* Submissions and non-blocking polls check that the manager lives at most
 * this often (a coarse clock read otherwise): a dead manager is noticed
 * within this long even by callers that never sleep. */
#define PPI_SUBMIT_CHECK_NS 10000000ull
/* A push onto the task ring waits this long for a worker preempted inside
 * its pop before re-checking the pool (the ring is never logically full;
 * only a dead worker keeps the cell, and then the pool is broken). */
#define PPI_RING_PUSH_RETRY_NS 100000000ull
/* A push onto the client's free-slot ring (consumers: the client's own
 * threads) waits this long before trying again: one of our own preempted
 * threads always finishes its pop. */
#define PPI_FREE_RING_RETRY_NS 1000000000ull

/* ---- client: service thread and backlog -------------------------------- */

/* The service thread's bounded sleep on the done eventcount when it waits
 * for a task to finish (callbacks, arena room). */
#define PPI_SERVICE_NAP_NS 20000000ull
/* While a backlog waits for slots the service thread polls the free ring
 * every this long instead of being woken per freed slot: a ring of thousands
 * of queued tasks lasts far longer, and nobody pays a wake-up per task. */
#define PPI_BACKLOG_REFILL_NS 100000ull
/* After this many refill naps without a free slot, harvest finished slots
 * whose futures the user still holds (an O(slots) scan, so not every nap).
 * Sooner when the task ring runs low (PPI_HARVEST_LOW_WATER_DIV) and the
 * last harvest freed something: then most slots are finished and held, so
 * the scan pays, and the workers would otherwise idle until the count runs
 * out. */
#define PPI_BACKLOG_STARVED_NAPS 20
/* ... and the early harvest starts once fewer than slots / this many tasks
 * are queued: at 4 M tasks/s a quarter of 4,096 slots lasts 250 µs, more
 * than two refill naps, so the workers never run dry while the service
 * thread sleeps (harvesting only on an empty ring left them idle for up to a
 * nap and a wake-up every 4,096 tasks: bench_core 1.8 M tasks/s instead of
 * 2.7-3.0 M, alternating in one run). */
#define PPI_HARVEST_LOW_WATER_DIV 4u
/* The harvest binds backlog entries into the slots it frees and notifies the
 * workers once per this many binds (and after the last): one FUTEX_WAKE per
 * bind, while woken workers wait for a CPU, cost the service thread more
 * than the binds themselves on 2 CPUs (a system call per task, perf). */
#define PPI_HARVEST_NOTIFY_EVERY 32u
/* pp_shutdown(wait) sleeps at most this long for the service thread's
 * progress notice (a lost wake-up costs at most this). */
#define PPI_SHUTDOWN_NAP_NS 50000000ull

/* ---- client: future memory (slab.c) ------------------------------------ */

/* Empty 2 MiB chunks each slab keeps mapped for the next burst instead of
 * unmapping them: 4 (8 MiB, ~35,000 futures) spares a pool that keeps a
 * steady few thousand futures in flight any fresh page, while a burst of a
 * million gives its 240 MB back when it is released. */
#define PPI_SLAB_SPARE_CHUNKS 4u

/* ---- client: pool start ------------------------------------------------- */

/* Give up: pp_executor_create waits at most this long for every worker to
 * report ready (exec, dynamic loading, hwloc, the initializer on a loaded
 * machine) before failing with PP_EBROKEN. */
#define PPI_READY_TIMEOUT_NS 60000000000ull
/* ... re-checking the manager and the pool this often meanwhile. */
#define PPI_READY_POLL_NS 50000000ull
/* pp_executor_resize: the nap between checks while new workers run their
 * initializers (they wake nobody when done) or the pool may break. */
#define PPI_RESIZE_POLL_NS 2000000ull

/* ---- arena -------------------------------------------------------------- */

/* Freed task payload blocks (arguments, results) of 256 KiB or more that lie
 * entirely in the first this-many bytes of the arena keep their pages: the
 * next large payload (lowest-address first fit puts it there) reuses them
 * without a page fault in the client or the worker. Above the line, and
 * for pp_shm_free, blocks are punched out of the memfd at once. Measured
 * (bench_scaling, docs/scaling.md): a 256 KiB argument's round trip 2.9 ms
 * -> 22 us, 4 MiB 150 ms -> 0.6 ms (3.3 x one memcpy). Bounds what an idle
 * pool keeps resident beyond the blocks in use. */
#define PPI_ARENA_KEEP_BYTES ((uint64_t)64 << 20)

/* Task payloads (an argument the client copies into the arena, a result a
 * worker copies there with pp_task_set_result) of at least this many bytes
 * are copied plainly or with streaming stores, whichever the process
 * measured cheaper for their size (copy.h has the numbers). Below it the
 * copy is plain: there the writer's own time is a poor guide, since after
 * streaming stores the reader reads from memory instead of the writer's
 * cache. Round trips with the copy forced one way (docs/design.md, "Large
 * payload copies"): 256 KiB 19.5 us plain / 23.4 streaming, 512 KiB
 * 34.6 / 47 although streaming wrote faster; from 1 MiB the round trip
 * follows the write (2 MiB 446 / 206 with the vCPUs apart). */
#define PPI_STREAM_COPY_MIN ((size_t)1 << 20)
/* ... and one copy in this many of a size class goes the other way, so that
 * the estimates follow the vCPUs when the hypervisor moves them (or the
 * workers when a pool is resized). With the other way 2-3x dearer, this
 * costs 6-12 % of those copies on average; fewer probes react slower. */
#define PPI_STREAM_PROBE_EVERY 16u

/* ---- map ---------------------------------------------------------------- */

/* A map runner with no chunk to claim idles this long, then returns its
 * worker to the pool (a new chunk soon after is the common case). */
#define PPI_MAP_IDLE_NS 20000ull
/* ... and a remote lane (map_ext.c) this long: it holds one of its rank's
 * credits meanwhile, but reopening one costs a runner task and a ring take. */
#define PPI_MAP_LANE_IDLE_NS 200000ull
/* pp_map_next spins this long for the next chunk before sleeping. */
#define PPI_MAP_SPIN_NS 20000ull
/* The map client sleeps at most this long at a time... */
#define PPI_MAP_NAP_NS 10000000ull
/* ... and probes its runners' health (a dead runner's chunks) this often. */
#define PPI_MAP_PROBE_NS 100000000ull
/* A runner populates its own page tables for the shared arrays a map reads
 * and writes in place (pp_shm_alloc inputs and outputs) at least this many
 * bytes ahead of the chunk it runs, with one MADV_POPULATE_READ/WRITE
 * instead of a page fault per 4 KiB page: faults on a MAP_SHARED memfd
 * cost 1-3 us each on bare metal and tens of us under a hypervisor, a
 * populate call a fraction of that per page (docs/map.md, "Zero copy"). */
#define PPI_MAP_PREFAULT_BYTES (64u * 1024u)

/* ---- shared segment ------------------------------------------------------ */

/* Give up: a finished slot's completion entry waits at most this long for
 * room in the completion ring. One cell per slot makes the ring never
 * logically full; only a preempted or dead consumer (the client's service
 * thread) can hold it, and after the client's death nobody needs the entry. */
#define PPI_CRING_PUSH_TIMEOUT_NS 5000000000ull

/* ---- manager ------------------------------------------------------------ */

/* The manager's poll() wakes at least this often (milliseconds) when no task
 * deadline or kill escalation is nearer: it re-checks the client's liveness
 * and the stop flag even if a descriptor event was lost. */
#define PPI_MANAGER_TICK_NS 1000000000ull
/* The same tick when the client cannot be watched through a pidfd
 * (pidfd_open missing: old kernel, seccomp, valgrind): the manager polls
 * getppid() this often instead, so a dead client is noticed within it. */
#define PPI_MANAGER_TICK_NO_PIDFD_NS PPI_LIVENESS_NS
/* Recovering a worker killed inside the ring's critical section: wait this
 * long for a live consumer's ticket race to resolve (it takes far less)
 * before treating the cell as damaged. */
#define PPI_RECOVER_WAIT_NS 200000000ull
/* Re-queueing the entries a dead worker had taken: each push waits at most
 * this long for room (the ring has a cell per slot; a push fails only when
 * another worker died inside its pop too, and then the pool breaks). */
#define PPI_REQUEUE_PUSH_NS 1000000000ull
/* pp_terminate_workers: a worker still alive this long after SIGTERM gets
 * SIGKILL (documented in ppool.h: a task may ignore or handle SIGTERM). */
#define PPI_TERMINATE_GRACE_NS 1000000000ull

#endif /* PPOOL_RUNTIME_TUNABLES_H */
