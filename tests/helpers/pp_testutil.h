/*
 * pp_testutil.h — shared helpers for the ppool Criterion suites.
 *
 * Compiled into every tests/test_<area> binary (tests/helpers is on the
 * include path). Names use the ppt_ prefix so they can never collide with the
 * runtime's own symbols (the suites link the static library, hidden symbols
 * included); the Criterion fixtures keep the names pp_test_setup/teardown.
 *
 *   Test(area, name, .init = pp_test_setup, .fini = pp_test_teardown,
 *        .timeout = 60) { ... }
 *
 * pp_test_setup makes the test process a child subreaper, so workers that
 * lose their manager reparent to it, and snapshots /dev/shm.
 * pp_test_teardown waits (up to 2 s, polling, reaping zombies) until no
 * process has the test process as parent and /dev/shm has no new entry. On a
 * leak it reports with cr_expect, SIGKILLs the leftover processes by pid (they
 * were started by this test) and abort()s: Criterion 2.4 ignores assertion
 * failures raised in .fini, but a crash there makes the binary fail.
 */
#ifndef PP_TESTUTIL_H
#define PP_TESTUTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ppool.h"

/* ---- Criterion fixtures ------------------------------------------------ */
void pp_test_setup(void);
void pp_test_teardown(void);

/* ---- process inspection -------------------------------------------------- */
/** Number of processes whose parent is this process. @live_only: skip
 *  zombies. Fills up to @n pids into @pids (may be NULL). */
int ppt_count_children(bool live_only, pid_t *pids, int n);
/** ppid and state of @pid from /proc/<pid>/stat (either may be NULL);
 *  false if it is gone. */
bool ppt_proc_stat(pid_t pid, pid_t *ppid, char *state);
/** Reap every zombie child (waitpid(-1, WNOHANG) until nothing). Returns the
 *  number reaped. */
int ppt_reap_zombies(void);
/** Wait up to @seconds (polling, reaping zombies) until no process has this
 *  process as parent. Returns the number still there (0 on success). */
int ppt_wait_no_children(double seconds);

/** Before exit() from a thread other than the one LeakSanitizer can stop
 *  (e.g. inside a done-callback while other threads still run): turn off
 *  the at-exit leak check of this process. LSan cannot suspend a thread
 *  that is itself exiting, so it cannot scan what that thread's stack
 *  holds and reports those blocks as leaked ("Running thread ... was not
 *  suspended. False leaks are possible."). No effect without ASan/LSan. */
void ppt_exit_without_leak_check(void);

/* ---- time ----------------------------------------------------------------- */
/** CLOCK_MONOTONIC, in seconds. */
double ppt_now(void);
/** A deadline @seconds from now (CLOCK_MONOTONIC seconds). */
double ppt_deadline(double seconds);
/** true once @deadline is past. */
bool ppt_expired(double deadline);
/** How much slower than an idle release build this run may be: 4 under
 *  ASan, TSan or UBSan builds, else 1, times PPT_TIME_SCALE from the
 *  environment when set (e.g. a loaded CI machine). Upper bounds that only
 *  say "promptly, not a hang" are written PPT_PROMPT(seconds); bounds that
 *  tell two behaviours apart (a deadline kept vs. missed) stay literal. */
double ppt_time_scale(void);
#define PPT_PROMPT(seconds) ((seconds) * ppt_time_scale())
/** nanosleep for @seconds, resumed after EINTR. */
void ppt_sleep(double seconds);

/** Poll @cond every millisecond until it holds or @seconds pass; evaluates to
 *  the final value of @cond. A condition wait with a deadline, not a fixed
 *  sleep. */
#define PPT_WAIT_FOR(cond, seconds)                                            \
    ({                                                                         \
        double ppt_dl_ = ppt_deadline(seconds);                                \
        bool ppt_ok_;                                                          \
        while (!(ppt_ok_ = (cond)) && !ppt_expired(ppt_dl_))                   \
            ppt_sleep(0.001);                                                  \
        ppt_ok_;                                                               \
    })

/* ---- CPUs ----------------------------------------------------------------- */
/** The CPUs this process may run on (sched_getaffinity); returns the count. */
int ppt_allowed_cpus(cpu_set_t *set);
/** true when no two CPUs of @set are SMT siblings (from sysfs; true when
 *  sysfs cannot tell). */
bool ppt_cpus_without_smt(const cpu_set_t *set);

/* ---- payload helpers ------------------------------------------------------- */
/** 64-bit FNV-1a of @n bytes. */
uint64_t ppt_fnv1a64(const void *p, size_t n);
/** The byte that big_result writes at index @i (not periodic in 256). */
static inline unsigned char ppt_pattern_byte(size_t i)
{
    uint64_t x = (uint64_t)i;
    return (unsigned char)((x ^ (x >> 8) ^ (x >> 16) ^ (x >> 24)) * 31u + 7u);
}
/** Fill @n bytes of @p with ppt_pattern_byte(index). */
void ppt_fill_pattern(void *p, size_t n);
/** Index of the first byte of @p that differs from the pattern, or @n. */
size_t ppt_check_pattern(const void *p, size_t n);
/** Fill @n bytes with a pseudo-random stream from @seed (xorshift). */
void ppt_fill_seeded(void *p, size_t n, uint64_t seed);

/* ---- task functions (run in a worker) -------------------------------------- */
/** Does nothing; no result. */
int ppt_task_noop(pp_task *t);
/** Result = a copy of the argument bytes (pp_task_set_result). */
int ppt_task_echo(pp_task *t);
/** Result = uint64_t ppt_fnv1a64(argument bytes). */
int ppt_task_hash64(pp_task *t);
/** Argument = double seconds; sleeps (nanosleep) that long; no result. */
int ppt_task_sleepy(pp_task *t);
/** Inside a task: its argument as a double (seconds), 0 if it is shorter. */
double ppt_arg_seconds(pp_task *t);
/** pp_task_raise(t, 42, "bad value %d", 7). */
int ppt_task_raiser(pp_task *t);
/** Returns 5 without raising. */
int ppt_task_returns_nonzero(pp_task *t);
/** Argument = size_t n; result = pp_task_result(t, n) filled with
 *  ppt_pattern_byte(index). If pp_task_result() returns NULL the task still
 *  returns 0 (the runtime fails the future with PP_ETOOBIG / -ENOMEM). */
int ppt_task_big_result(pp_task *t);

/** Argument = double max seconds; polls pp_task_should_stop() every
 *  millisecond until it is true or the time is up. Result = int32_t 1 if it
 *  saw the stop request, 0 if the time ran out. */
int ppt_task_until_stop(pp_task *t);

/** What ppt_task_affinity returns. */
typedef struct ppt_affinity {
    cpu_set_t mask; /* sched_getaffinity(0) of the worker */
    pid_t pid;      /* getpid() of the worker */
    int worker;     /* pp_task_worker(t) */
} ppt_affinity;
/** Optional argument = double seconds to sleep first (lets every worker take
 *  one probe); result = ppt_affinity. */
int ppt_task_affinity(pp_task *t);

/* ---- small client-side conveniences ----------------------------------------- */
/** pp_config_init + max_workers. */
void ppt_config(pp_config *cfg, int max_workers);

/* ---- task functions added for the futures / patterns / stress suites ----- */
/** Optional argument = double seconds to sleep first; then abort() (SIGABRT),
 *  with core dumps disabled (RLIMIT_CORE 0) so no core file is left. */
int ppt_task_abort(pp_task *t);
/** Optional argument = double seconds to sleep first; then raise(SIGKILL). */
int ppt_task_sigkill(pp_task *t);
/** Argument = double seconds, then any payload bytes; sleeps that long, then
 *  result = a copy of the payload (the bytes after the double; size 0 if
 *  none). */
int ppt_task_sleep_echo(pp_task *t);

#endif /* PP_TESTUTIL_H */
