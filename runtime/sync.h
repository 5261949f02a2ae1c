/*
 * sync.h — futexes, clocks and CPU hints used by every other runtime file.
 *
 * Futexes on shared memory use the shared (non-PRIVATE) operations: the
 * kernel keys them by (inode, offset), so the same word wakes waiters in the
 * client, the manager and the workers although each maps the segment at its
 * own address. Client-private words use the PRIVATE operations (cheaper).
 *
 * Every sleep here takes a timeout: callers bound their sleeps so that a dead
 * peer (who would never wake them) is noticed on the next check.
 */
#ifndef PPOOL_RUNTIME_SYNC_H
#define PPOOL_RUNTIME_SYNC_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "slot futexes use the low half of a 64-bit word");

#if defined(__x86_64__) || defined(__i386__)
#define ppi_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define ppi_cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define ppi_cpu_relax() __asm__ __volatile__("" ::: "memory")
#endif

#define PPI_NSEC 1000000000ull

static inline uint64_t ppi_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * PPI_NSEC + (uint64_t)ts.tv_nsec;
}

/*
 * Seconds (a user's double) to nanoseconds, clamped to [0, UINT64_MAX]: NaN,
 * negative values and anything under a nanosecond (1e-12, denormals) give 0;
 * +inf, DBL_MAX and anything at or past UINT64_MAX ns (about 1.8e10 s) give
 * UINT64_MAX. The only double -> nanoseconds conversion in the runtime: a
 * plain (uint64_t)(s * 1e9) is undefined behaviour past 2^64 (on x86 it
 * yields 2^63 or wraps, so an "infinite" timeout fired at once).
 */
static inline uint64_t ppi_s_to_ns(double s)
{
    if (!(s > 0)) /* NaN too */
        return 0;
    double ns = s * 1e9;
    if (!(ns < 18446744073709551616.0)) /* 2^64, exact in a double */
        return UINT64_MAX;
    return (uint64_t)ns;
}

/* @a + @b, or UINT64_MAX if that overflows ("never" for deadlines). */
static inline uint64_t ppi_add_sat(uint64_t a, uint64_t b)
{
    return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

/* Deadline for a relative timeout in seconds; UINT64_MAX = forever
 * (negative timeouts, and any too far away to be told from forever). */
static inline uint64_t ppi_deadline(double timeout_s)
{
    if (timeout_s < 0)
        return UINT64_MAX;
    return ppi_add_sat(ppi_now_ns(), ppi_s_to_ns(timeout_s));
}

/* Nanoseconds from now to @deadline, clamped to [0, cap_ns]. */
static inline uint64_t ppi_remaining(uint64_t deadline, uint64_t cap_ns)
{
    uint64_t now = ppi_now_ns();
    if (deadline <= now)
        return 0;
    uint64_t left = deadline - now;
    return left < cap_ns ? left : cap_ns;
}

/*
 * ppi_futex_wait - sleep while *addr == expected, at most @ns nanoseconds.
 * Returns 0 when woken (or spuriously), -EAGAIN if *addr != expected,
 * -ETIMEDOUT, -EINTR. The caller re-checks its condition in every case.
 */
static inline int ppi_futex_wait(_Atomic uint32_t *addr, uint32_t expected, uint64_t ns,
                                 bool shared)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / PPI_NSEC), .tv_nsec = (long)(ns % PPI_NSEC)};
    long rc = syscall(SYS_futex, (uint32_t *)addr, shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE,
                      expected, &ts, NULL, 0);
    return rc == 0 ? 0 : -errno;
}

/* ppi_futex_wake - wake up to @n sleepers on @addr. Never blocks. */
static inline void ppi_futex_wake(_Atomic uint32_t *addr, int n, bool shared)
{
    syscall(SYS_futex, (uint32_t *)addr, shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE, n, NULL,
            NULL, 0);
}

/*
 * An eventcount in shared memory: a sequence word to sleep on and a count of
 * sleepers, so that the common case (nobody asleep) costs the notifier one
 * fence and one load, no system call.
 *
 *   waiter:   ppi_ec_prepare() -> re-check condition -> ppi_ec_sleep() or
 *             ppi_ec_cancel()
 *   notifier: make the condition true -> ppi_ec_notify()
 *
 * Ordering (Dekker): the waiter's seq_cst increment of @waiters precedes its
 * re-check; the notifier's seq_cst fence separates its condition store from
 * its load of @waiters. So either the waiter sees the condition, or the
 * notifier sees the waiter and bumps @seq (which makes FUTEX_WAIT return).
 */
typedef struct ppi_ec {
    _Atomic uint32_t seq;
    _Atomic uint32_t waiters;
} ppi_ec;

static inline uint32_t ppi_ec_prepare(ppi_ec *ec)
{
    /* seq_cst: must be ordered before the caller's re-check of its condition. */
    atomic_fetch_add_explicit(&ec->waiters, 1, memory_order_seq_cst);
    /* seq_cst: read after announcing ourselves, so a later notify changes it. */
    return atomic_load_explicit(&ec->seq, memory_order_seq_cst);
}

static inline void ppi_ec_cancel(ppi_ec *ec)
{
    /* relaxed: only a count; a stale non-zero costs a notifier one wake. */
    atomic_fetch_sub_explicit(&ec->waiters, 1, memory_order_relaxed);
}

static inline int ppi_ec_sleep(ppi_ec *ec, uint32_t seq, uint64_t ns)
{
    int rc = ppi_futex_wait(&ec->seq, seq, ns, true);
    ppi_ec_cancel(ec);
    return rc;
}

static inline void ppi_ec_notify(ppi_ec *ec, int n)
{
    /* seq_cst fence: orders the caller's condition store before the load of
     * waiters (pairs with the waiter's seq_cst increment). */
    atomic_thread_fence(memory_order_seq_cst);
    /* relaxed: ordered by the fence above. */
    if (atomic_load_explicit(&ec->waiters, memory_order_relaxed) == 0)
        return;
    /* release: a woken waiter that reads the new seq also sees our stores. */
    atomic_fetch_add_explicit(&ec->seq, 1, memory_order_release);
    ppi_futex_wake(&ec->seq, n, true);
}

#endif
