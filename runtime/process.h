/*
 * process.h — the two process roles besides the client: the manager and the
 * workers. Both are entered right after fork() and never return.
 */
#ifndef PPOOL_RUNTIME_PROCESS_H
#define PPOOL_RUNTIME_PROCESS_H

#include <signal.h>

#include "segment.h"
#include "shards.h"
#include "topology.h"
#include "tunables.h" /* PPI_WORKER_*, PPI_LIVENESS_NS */


/*
 * ppi_manager_main - run the manager: start the workers, reap them, apply the
 * death policy, and exit when the pool stops or the client dies.
 * @seg: the segment (inherited mapping, or attached after exec); the workers'
 * placements are in it. Called in the child of the client's fork() or in the
 * exec'd manager; never returns.
 */
_Noreturn void ppi_manager_main(ppi_seg *seg);

/*
 * ppi_worker_main - run worker @widx: bind to its place (in the segment),
 * resolve function tokens, run the initializer, then take entries from the
 * task ring until the pool stops. Called in the child of the manager's fork()
 * or in an exec'd worker; never returns.
 */
_Noreturn void ppi_worker_main(ppi_seg *seg, int widx, pid_t manager);

/* A worker that started a task with a timeout sends this signal to the
 * manager (its parent), which reads it from its signalfd: no descriptor of
 * the worker's is involved, so a task that closes or reuses descriptors
 * cannot delay timeouts nor receive the wake-up. */
#define PPI_SIG_ARM SIGUSR1

/* Replace every close-on-exec descriptor >= 3 but the @nkeep in @keep by
 * /dev/null (close-on-exec; closed if /dev/null cannot be opened): what an
 * exec would have closed, while the number stays taken, so a library of a
 * forked image that kept it open never reaches another file there. The
 * inheritable ones are left alone: passing them is what the flag means.
 * start.c. */
void ppi_drop_cloexec_fds(const int *keep, int nkeep);

/* start.c: start methods. */
#define PPI_EXIT_ATTACH 78 /* an exec'd process could not attach its segment */
int ppi_count_threads(void);
pp_start_method ppi_resolve_start_method(pp_start_method m);
/* Start a fresh exec of this program as @role ("manager" or "worker" @widx),
 * inheriting the segment; *pid_out receives its pid. Returns 0 or -errno. */
int ppi_exec_spawn(const ppi_seg *seg, const char *role, int widx, pid_t *pid_out);

/* Internal form of a dead worker's exit status @s in slot and pool codes, so
 * that exit(0) is not "no code" (0): PPI_CODE_EXIT_BASE - s. Signals are
 * their number (> 0). ppi_public_code turns codes into pp_exception's. */
#define PPI_CODE_EXIT_BASE (-0x40000000)
static inline int ppi_code_exit(int s) { return PPI_CODE_EXIT_BASE - (s & 0xff); }
/* The (code, how) pp_exception reports for internal @code of an @err. */
int ppi_public_code(int err, int code, pp_code_kind *how);

/* Mark the pool broken (first caller wins) and wake every sleeper. Returns
 * true if this call broke it. Any process. */
bool ppi_pool_break(ppi_seg *seg, int code, pid_t pid, const char *msg);

/* The worker index a sweeper claims a slot under (never a real worker). */
#define PPI_SWEEPER (PPI_NO_WORKER - 1)

/* Fail slot @idx with (@err, @code, @pid, @msg) if its state is in @accept (a
 * mask of 1 << PPI_S_*) and, unless @worker < 0, a non-queued slot belongs
 * to @worker. Returns true if it did. Any process. */
bool ppi_slot_fail(ppi_seg *seg, uint32_t idx, unsigned accept, int worker, int err, int code,
                   pid_t pid, const char *msg);

/* Fail slot @idx if it is still QUEUED (or RUNNING/KILLING when @running) with
 * PP_EBROKEN and the pool's cause; recycles orphans. Returns true if it
 * changed the slot. Any process. */
bool ppi_slot_fail_broken(ppi_seg *seg, uint32_t idx, bool running);

#endif
