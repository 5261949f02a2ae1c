/*
 * copy.h — copies of large payloads that another process reads next.
 *
 * A payload the client copies into the arena is read by a worker on another
 * core, and the next payload of that size lands on the same arena pages
 * (lowest-address first fit keeps them faulted in). With ordinary stores the
 * writer must first take every line back from the cache that read it last;
 * streaming (non-temporal) stores write whole lines without reading them,
 * but leave the data in memory instead of a cache the reader may share.
 * Which wins depends on where the reader sits, which the writer does not
 * know (any worker may pop the task). Measured on the 2-CPU development VM
 * (AMD EPYC; the hypervisor moves its vCPUs), writing 2 MiB that the other
 * core has just read: 250-330 us plain, 86-102 us streaming with the vCPUs
 * apart; 46 / 78 us with them sharing an L3 (bench_copy; docs/design.md,
 * "Large payload copies", has the table).
 *
 * So ppi_copy_payload measures: each process keeps, per size class (powers
 * of two from PPI_STREAM_COPY_MIN), a running estimate of each way's cost per
 * byte, copies the cheaper way, and every PPI_STREAM_PROBE_EVERY-th copy of a
 * class the other way, so that the estimates follow a change of placement.
 *
 * Thread safety: any thread. The estimates are relaxed atomics: concurrent
 * copies may lose an update, which only delays the choice. Ordering: the
 * streaming stores are weakly ordered; ppi_copy_stream ends with an sfence,
 * so the caller's later release store (the slot's QUEUED or DONE) publishes
 * them as it does ordinary stores.
 */
#ifndef PPOOL_RUNTIME_COPY_H
#define PPOOL_RUNTIME_COPY_H

#include <stddef.h>
#include <stdint.h>

/*
 * ppi_copy_stream - memcpy(@dst, @src, @n) with streaming stores where the
 * CPU has them (x86-64: SSE2, always), a plain memcpy elsewhere. The ranges
 * must not overlap. The lines of @dst are not left in this core's cache.
 */
void ppi_copy_stream(void *dst, const void *src, size_t n);

/*
 * ppi_copy_payload - copy a payload of @n bytes into shared memory that a
 * process on another core reads next: memcpy below PPI_STREAM_COPY_MIN
 * (tunables.h), from there on plain or streaming, whichever this process
 * measured cheaper for payloads of that size class.
 */
void ppi_copy_payload(void *dst, const void *src, size_t n);

/* For tests: how many copies of at least PPI_STREAM_COPY_MIN this process
 * made each way (either pointer may be NULL). */
void ppi_copy_payload_counts(uint64_t *plain, uint64_t *stream);

#endif
