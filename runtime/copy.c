/*
 * copy.c — copies of large payloads that another process reads next
 * (copy.h says why two ways, and how one is chosen).
 *
 * State, per process (a fork child starts from its parent's estimates, a
 * fair guess on the same machine):
 *   est[class][way]  running cost estimate, picoseconds per byte; 0 until
 *                    that way was measured once for that class
 *   seen[class]      copies of that class so far (picks the probes)
 *   made[way]        copies made each way (tests)
 * All relaxed: an estimate read while another thread updates it is still
 * one of two recent values, and a lost update only delays the choice.
 */
#include <stdatomic.h>
#include <string.h>

#include "copy.h"
#include "sync.h"
#include "tunables.h"

#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#define HAVE_STREAM 1
#else
#define HAVE_STREAM 0
#endif

enum { WAY_PLAIN, WAY_STREAM, NWAYS };
#define NCLASSES 8 /* 1, 2, 4, ... 64 MiB and up (with the default minimum) */

static _Atomic uint64_t est[NCLASSES][NWAYS];
static _Atomic uint32_t seen[NCLASSES];
static _Atomic uint64_t made[NWAYS];

void ppi_copy_stream(void *dst_, const void *src_, size_t n)
{
    char *dst = dst_;
    const char *src = src_;
#if HAVE_STREAM
    /* Streaming stores need 16-byte aligned destinations: copy the head
     * plainly up to the first such address. */
    size_t head = (16 - ((uintptr_t)dst & 15)) & 15;
    if (head > n)
        head = n;
    memcpy(dst, src, head);
    dst += head;
    src += head;
    n -= head;
    for (; n >= 64; n -= 64, dst += 64, src += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)src);
        __m128i b = _mm_loadu_si128((const __m128i *)(src + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(src + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(src + 48));
        _mm_stream_si128((__m128i *)dst, a);
        _mm_stream_si128((__m128i *)(dst + 16), b);
        _mm_stream_si128((__m128i *)(dst + 32), c);
        _mm_stream_si128((__m128i *)(dst + 48), d);
    }
    /* sfence: the streaming stores above are weakly ordered; after it they
     * are ordered before every later store, so the caller's release store
     * that publishes the payload covers them. */
    _mm_sfence();
#endif
    memcpy(dst, src, n); /* the tail (or everything, without SSE2) */
}

/* The size class of @n >= PPI_STREAM_COPY_MIN: log2(n / minimum), capped. */
static unsigned class_of(size_t n)
{
    unsigned c = 0;
    for (size_t m = n / PPI_STREAM_COPY_MIN; m > 1 && c + 1 < NCLASSES; m >>= 1)
        c++;
    return c;
}

/* Which way to copy a payload of class @c: an unmeasured way first, then
 * the cheaper one, except every PPI_STREAM_PROBE_EVERY-th copy. */
static int choose_way(unsigned c)
{
    if (!HAVE_STREAM)
        return WAY_PLAIN;
    uint64_t plain = atomic_load_explicit(&est[c][WAY_PLAIN], memory_order_relaxed);
    uint64_t stream = atomic_load_explicit(&est[c][WAY_STREAM], memory_order_relaxed);
    if (!plain)
        return WAY_PLAIN;
    if (!stream)
        return WAY_STREAM;
    int best = stream < plain ? WAY_STREAM : WAY_PLAIN;
    uint32_t k = atomic_fetch_add_explicit(&seen[c], 1, memory_order_relaxed);
    return k % PPI_STREAM_PROBE_EVERY == PPI_STREAM_PROBE_EVERY - 1 ? !best : best;
}

/* Fold one measurement (@ns for @n bytes) into est[@c][@way]: a running
 * average with weight 1/4, one sample capped at 4 x the estimate (a copy
 * preempted half-way says nothing about the way). */
static void record(unsigned c, int way, uint64_t ns, size_t n)
{
    uint64_t ps_per_byte = ns * 1000 / (n ? n : 1) + 1; /* never 0: 0 = unmeasured */
    uint64_t old = atomic_load_explicit(&est[c][way], memory_order_relaxed);
    uint64_t upd = ps_per_byte;
    if (old) {
        if (upd > 4 * old)
            upd = 4 * old;
        upd = old - old / 4 + upd / 4;
        if (!upd)
            upd = 1;
    }
    atomic_store_explicit(&est[c][way], upd, memory_order_relaxed);
    atomic_fetch_add_explicit(&made[way], 1, memory_order_relaxed);
}

void ppi_copy_payload(void *dst, const void *src, size_t n)
{
    if (n < PPI_STREAM_COPY_MIN) {
        memcpy(dst, src, n);
        return;
    }
    unsigned c = class_of(n);
    int way = choose_way(c);
    uint64_t t0 = ppi_now_ns();
    if (way == WAY_STREAM)
        ppi_copy_stream(dst, src, n);
    else
        memcpy(dst, src, n);
    record(c, way, ppi_now_ns() - t0, n);
}

void ppi_copy_payload_counts(uint64_t *plain, uint64_t *stream)
{
    if (plain)
        *plain = atomic_load_explicit(&made[WAY_PLAIN], memory_order_relaxed);
    if (stream)
        *stream = atomic_load_explicit(&made[WAY_STREAM], memory_order_relaxed);
}
