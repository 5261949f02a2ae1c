/*
 * ppool/map.h — Executor.map for C: apply a per-item function to every item
 * of one or several inputs (zipped, stopping at the shortest), in chunks,
 * with results in input order. Included by ppool.h; it can also be included
 * on its own.
 *
 *   static int square(pp_map_item *it) {           // runs in a worker
 *       double x = *(const double *)it->in[0];
 *       *(double *)it->out = x * x;
 *       return 0;
 *   }
 *   pp_map_input in = pp_map_array(xs, n, sizeof(double));
 *   pp_map_opts o;  pp_map_opts_init(&o);
 *   o.chunksize = 1000;  o.out_size = sizeof(double);
 *   pp_map_status st;
 *   int rc = pp_map(ex, square, &in, 1, ys, n, NULL, &o, &st);   // all at once
 *
 *   pp_map_iter *m;                                      // or as an ordered iterator
 *   rc = pp_map_begin(&m, ex, square, &in, 1, &o);
 *   const void *y;  size_t ysz;
 *   while ((rc = pp_map_next(m, &y, &ysz)) == 0) { ... }
 *   // rc: -ENOENT at the end, or the error at that item's position
 *   pp_map_end(m);
 *
 * Semantics (Python's ProcessPoolExecutor.map, plus buffersize):
 *  - Items are cut into chunks of @chunksize consecutive items; a chunk is the
 *    unit of scheduling: workers take chunks one at a time, dynamically, so
 *    chunksize trades per-chunk overhead against load balance exactly as in
 *    Python. Results come back in input order whatever the completion order.
 *  - One absolute deadline, @timeout seconds from the call that starts the
 *    map; past it the map reports -ETIMEDOUT.
 *  - An item that fails (its function returns non-zero or calls
 *    pp_map_raise) surfaces its error at its own position: every item before
 *    it, including the earlier items of its chunk, is delivered first. The map
 *    ends there (as a Python generator does after raising): the chunks not
 *    yet started are cancelled and later calls return the same error.
 *  - Stopping early (pp_map_end before the end, a timeout, an error) cancels
 *    every chunk no worker has started. Chunks already running finish; their
 *    item functions can notice with pp_map_should_stop().
 *  - @buffersize bounds the chunks in flight (taken from the inputs and not
 *    yet begun by the caller), so an input given as a generator — even an
 *    endless one — is read lazily, in constant memory. As in CPython, the
 *    call that begins reading chunk c submits chunk c + buffersize, which
 *    runs while the caller reads c: with buffersize 1 and chunksize 1, item
 *    k runs during the k-th pp_map_next. The chunk being read was copied
 *    out of shared memory first (a client buffer of chunksize · out_size
 *    bytes), so the shared window still holds at most buffersize chunks. Without it ppool still reads ahead by at most an internal window
 *    (16384 chunks, and the shared staging buffer, see docs/map.md) rather
 *    than materialising every item as Python does; everything inside the
 *    window is submitted at once.
 *  - Inputs and outputs that live in shared memory (pp_shm_alloc) are used in
 *    place: a chunk then carries only (first item, count) and no item byte is
 *    copied. Other inputs are copied once into shared memory per chunk, and
 *    results are copied out once (or read in place through the iterator).
 *
 * How it runs (why it is fast at chunksize 1): a map submits a few "runner"
 * tasks (at most one per worker) with pp_submit; each runner claims chunks
 * from the map's shared window with one compare-and-swap, runs them and marks
 * them done, and returns when nothing is left to claim. So a chunk costs a
 * few cache-line transfers, not a task submission; see docs/map.md.
 *
 * Calling conventions are those of ppool.h. The item function runs in a
 * worker process; like a pp_fn it crosses as a (module, offset) token, so it
 * works with every start method, and one the workers cannot call fails the
 * map with PP_ENOFUNC (at pp_map_begin / pp_map when the client already
 * knows, else at the first chunk).
 */
#ifndef PPOOL_MAP_H
#define PPOOL_MAP_H

#include "ppool.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * \defgroup pp_map_group Map
 * Executor.map for C: inputs, options, the item function, running a map.
 * \{
 */

/* ------------------------------------------------------------------------ */
/* Inputs                                                                    */
/* ------------------------------------------------------------------------ */

/** The most inputs one map may zip together. */
#define PP_MAP_MAX_INPUTS 16

/**
 * A generator input: produce item @index (0, 1, 2, ... in order) into
 * *item / *size. The bytes must stay valid until the next call of this
 * generator; ppool copies them before that. Return 1 for an item, 0 at the
 * end of the input, or a negative code: the map then fails at position
 * @index with that code. Called in the client, by the thread driving the map
 * (inside pp_map_begin / pp_map_next / pp_map), never concurrently.
 */
typedef int (*pp_map_gen)(void *user, size_t index, const void **item, size_t *size);

/** What a pp_map_input describes (set by the pp_map_* builders below). */
typedef enum pp_map_input_kind {
    PP_MAP_IN_ARRAY = 1, /**< fixed-size items: item i at base + i * stride, item_size bytes */
    PP_MAP_IN_PTRS,      /**< variable-size items: items[i], sizes[i] bytes */
    PP_MAP_IN_PACKED,    /**< variable-size items: base[offsets[i] .. offsets[i+1]) */
    PP_MAP_IN_GEN,       /**< a generator callback (count unknown, possibly endless) */
} pp_map_input_kind;

/**
 * One input of a map. Build it with the pp_map_array / _strided / _ptrs /
 * _packed / _generator helpers below (or fill the fields named for @kind and
 * zero the rest). The map reads the caller's memory only from the thread
 * that drives it, during pp_map_begin/pp_map_next/pp_map_end or pp_map; keep
 * it valid and unchanged until pp_map_end (or pp_map) returns.
 */
typedef struct pp_map_input {
    pp_map_input_kind kind;    /**< which of the fields below are used */
    size_t count;              /**< items (ARRAY, PTRS, PACKED) */
    const void *base;          /**< ARRAY: item 0; PACKED: the bytes */
    size_t item_size;          /**< ARRAY: bytes per item */
    size_t stride;             /**< ARRAY: bytes from one item to the next (0 = item_size) */
    const void *const *items;  /**< PTRS: item pointers */
    const size_t *sizes;       /**< PTRS: item sizes; NULL = NUL-terminated strings (size excludes the NUL) */
    const size_t *offsets;     /**< PACKED: count + 1 non-decreasing offsets into base */
    pp_map_gen gen;            /**< GEN */
    void *user;                /**< GEN: passed to gen */
} pp_map_input;

/**
 * pp_map_array - @count items of @item_size bytes each, contiguous from
 * @base. In shared memory (pp_shm_alloc), the items are read in place.
 * Returns the descriptor by value; any thread; does not block.
 */
PP_API pp_map_input pp_map_array(const void *base, size_t count, size_t item_size);
/** pp_map_strided - as pp_map_array with @stride bytes between items
 *  (>= item_size). */
PP_API pp_map_input pp_map_strided(const void *base, size_t count, size_t item_size,
                                   size_t stride);
/**
 * pp_map_ptrs - @count variable-size items: @items[i] of @sizes[i] bytes, or
 * NUL-terminated strings when @sizes is NULL (the NUL is not passed). Always
 * copied into shared memory (a pointer means nothing in a worker). Pass a
 * `char **` as (const void *const *). An item with a NULL pointer and a
 * non-zero size fails the map at its position with -EINVAL.
 */
PP_API pp_map_input pp_map_ptrs(const void *const *items, const size_t *sizes, size_t count);
/**
 * pp_map_packed - @count variable-size items stored back to back: item i is
 * bytes @offsets[i] .. @offsets[i+1] of @data (@offsets has count + 1
 * entries). When both @data and @offsets are in shared memory the items are
 * read in place.
 */
PP_API pp_map_input pp_map_packed(const void *data, const size_t *offsets, size_t count);
/** pp_map_generator - items produced on demand by @gen (see pp_map_gen). */
PP_API pp_map_input pp_map_generator(pp_map_gen gen, void *user);

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

/** Map options. Fill with pp_map_opts_init() first; fields may be added. */
typedef struct pp_map_opts {
    /** Items per chunk, >= 1 (default 1, as in Python); 0 is -EINVAL. */
    size_t chunksize;
    /** Seconds from the start of the map to its one deadline; PP_FOREVER
     *  (default) waits without limit; NaN is -EINVAL. */
    double timeout;
    /** At most this many chunks in flight beyond the one being read
     *  (CPython's map(buffersize=)); 0 (default) = no bound beyond the
     *  internal window. */
    size_t buffersize;
    /** Bytes of result per item: exactly this many (fixed-size results,
     *  default), or at most this many when @out_variable. 0: no result. */
    size_t out_size;
    /** Results have variable size: the item function sets it->out_size
     *  (<= out_size; larger fails the item with PP_ETOOBIG). */
    bool out_variable;
    /** Bytes handed to every item function call (it->ctx), copied once into
     *  shared memory (read-only there). May be NULL when @ctx_size is 0. */
    const void *ctx;
    /** Number of bytes at ctx (0: no context). */
    size_t ctx_size;
} pp_map_opts;

/** pp_map_opts_init - chunksize 1, timeout PP_FOREVER, no buffersize, no
 *  result, no context. Any thread; does not block. */
PP_API void pp_map_opts_init(pp_map_opts *o);

/* ------------------------------------------------------------------------ */
/* The item function (runs in a worker)                                      */
/* ------------------------------------------------------------------------ */

/**
 * One call of the item function. Everything it points to is in shared
 * memory and valid only during the call.
 */
typedef struct pp_map_item {
    size_t index;              /**< position of the item in the map (0-based) */
    int n_in;                  /**< number of inputs */
    const void *const *in;     /**< in[j]: this item of input j (read-only). Copied
                                  fixed-size items sit at multiples of their size from
                                  a 16-byte aligned start; copied variable-size items
                                  are packed (no alignment); shared ones are in place */
    const size_t *in_size;     /**< in_size[j]: its size in bytes */
    void *out;                 /**< where to write the result: out_cap bytes
                                  (NULL when the map has no result) */
    size_t out_cap;            /**< opts.out_size */
    size_t out_size;           /**< variable results: set it (preset to out_cap);
                                  fixed results: ignored */
    const void *ctx;           /**< opts.ctx bytes (read-only), NULL if none */
    size_t ctx_size;           /**< opts.ctx_size */
    pp_task *task;             /**< the runner task: pp_task_shm, pp_task_worker, ... */
    void *internal_;           /**< ppool's; do not touch */
} pp_map_item;

/**
 * An item function: read it->in[...], write it->out, return 0. Returning
 * non-zero fails the item with PP_ETASK and that value as its code (message
 * "item function returned N"); pp_map_raise gives your own code and message.
 * Runs in a worker process; may use the pp_task_* functions on it->task
 * except pp_task_result / pp_task_set_result / pp_task_raise.
 */
typedef int (*pp_map_fn)(pp_map_item *it);

/**
 * pp_map_raise - fail this item with @code and a printf-style message
 * (truncated to PP_MESSAGE_MAX bytes). Returns PP_ETASK so that an item function can
 * `return pp_map_raise(it, ...)`. The item's result is discarded.
 * Worker side, inside the item function only.
 */
PP_API int pp_map_raise(pp_map_item *it, int code, const char *fmt, ...) PP_PRINTF(3, 4);

/**
 * pp_map_should_stop - true when the map was stopped (ended early, timed
 * out, failed) or the pool is shutting down with cancel_futures / broken:
 * a long item may return early. Its result is then not delivered: the map
 * ended before it, or (the pool's stop) an item that returns 0 after this
 * said true fails with -ECANCELED at its position ("item stopped early"),
 * the items before it being delivered.
 * Worker side, inside the item function only; one or two shared loads.
 */
PP_API bool pp_map_should_stop(const pp_map_item *it);

/* ------------------------------------------------------------------------ */
/* Running a map                                                             */
/* ------------------------------------------------------------------------ */

/** What a map did, and how it ended. */
typedef struct pp_map_status {
    size_t done;           /**< items delivered (all at once: written to out);
                              on an error, the position of the failed item */
    int error;             /**< 0, -ENOENT (iterator at its end), or the error that
                              ended the map: -ETIMEDOUT, PP_ETASK (an item
                              failed), PP_ETOOBIG, PP_EWORKER / PP_EKILLED (the
                              worker running its chunk died / was killed),
                              PP_EBROKEN, -ECANCELED / -ESHUTDOWN (the executor
                              was shut down), or a generator's negative code */
    int code;              /**< PP_ETASK: the item's code; PP_EWORKER: signal or
                              exit status as pp_exception.code; else 0 */
    pid_t pid;             /**< worker that ran the failed item, 0 if none */
    char message[256];     /**< what happened, "" when error is 0 or -ENOENT */
    uint64_t chunks;       /**< chunks submitted */
    uint64_t runners;      /**< runner tasks submitted (pp_submit calls) */
    uint64_t staged_bytes; /**< item bytes copied into shared memory */
    uint64_t result_bytes; /**< result bytes copied out of shared memory */
    size_t max_in_flight;  /**< most chunks in flight at any time */
} pp_map_status;

/** An ordered-result iterator over a running map. */
typedef struct pp_map_iter pp_map_iter;

/**
 * pp_map_begin - start mapping @fn over the zip of @in[0 .. n_in) and return
 * an iterator over the results, in input order.
 * @out: receives the map (NULL on failure); yours until pp_map_end.
 * @ex: a running executor; it must outlive the map (end every map before
 *   pp_executor_destroy).
 * @in, @n_in: the inputs, zipped: the map has as many items as the
 *   shortest (0 <= n_in <= PP_MAP_MAX_INPUTS; no input = no item, as Python).
 * @opts: NULL for pp_map_opts_init's defaults.
 *
 * Submits the first window of chunks before returning (eager, as Python),
 * reading generator inputs for it. Returns 0, -EINVAL (bad argument or
 * option), -ENOMEM (client memory or no room in the shared arena),
 * PP_ENOFUNC (@fn cannot be called in the workers), -ESHUTDOWN or
 * PP_EBROKEN (executor not usable). Blocks only while reading
 * generator inputs. Any client thread; then only one thread at a time may
 * use the map.
 */
PP_API int pp_map_begin(pp_map_iter **out, pp_executor *ex, pp_map_fn fn, const pp_map_input *in,
                        int n_in, const pp_map_opts *opts);

/**
 * pp_map_next - the next result in input order, as soon as it and every
 * item before it are done.
 * @res, @res_size: receive the result bytes (either may be NULL). They live
 *   in shared memory, 16-byte aligned for fixed-size results of a multiple of
 *   16 bytes, and stay valid until the next pp_map_next or pp_map_end call.
 *
 * Returns 0 (a result); -ENOENT once every item was delivered; or the error
 * that ended the map at this position (see pp_map_status.error; details with
 * pp_map_get_status). After an error or -ETIMEDOUT the map is over: later
 * calls return the same code. Blocks until the result, the error, or the
 * deadline. Submits more chunks (and reads generators) as room frees up.
 */
PP_API int pp_map_next(pp_map_iter *m, const void **res, size_t *res_size);

/**
 * pp_map_get_status - copy the map's counters and, once it ended with an
 * error, the error's details into @st. Returns 0 or -EINVAL. Does not block.
 */
PP_API int pp_map_get_status(const pp_map_iter *m, pp_map_status *st);

/**
 * pp_map_end - finish with the map: cancel every chunk not started, wait for
 * the chunks still running to finish (they cannot be interrupted; their item
 * functions see pp_map_should_stop true), free its shared memory and the map.
 * Returns 0, or -EINVAL for NULL. Blocks as long as the running chunks take.
 * Results obtained from pp_map_next are invalid afterwards.
 */
PP_API int pp_map_end(pp_map_iter *m);

/**
 * pp_map - map all at once: pp_map_begin, every result into @out, pp_map_end.
 * @out: room for @out_count results of opts->out_size bytes each, result i
 *   at out + i * out_size (may be NULL when out_size is 0). If @out (and, for
 *   variable results, @out_sizes) is in shared memory, workers write the
 *   results in place and nothing is copied.
 * @out_count: the map stops after this many items even if the inputs go on
 *   (SIZE_MAX: no limit; then out_size must be 0).
 * @out_sizes: variable results: receives each result's size (may be NULL);
 *   ignored for fixed-size results.
 * @st: receives the status (may be NULL); st->done results are in @out.
 *
 * Returns 0 when every item succeeded, else the error of the first failed
 * item in input order (results before it are in @out; later slots of @out
 * are unspecified), -ETIMEDOUT, or any error of pp_map_begin. Blocks until
 * done. Any client thread.
 */
PP_API int pp_map(pp_executor *ex, pp_map_fn fn, const pp_map_input *in, int n_in, void *out,
                  size_t out_count, size_t *out_sizes, const pp_map_opts *opts,
                  pp_map_status *st);

/** \} */

#ifdef __cplusplus
}
#endif

#endif /* PPOOL_MAP_H */
