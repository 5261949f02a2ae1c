/*
 * wordhash_kernel.c — a ppool-tune plug-in: the word-hash workload of the
 * Python guide (and of bench_wordhash) as a map item function in a shared
 * library. Each item is a word; its result is the 128 hex digits of the
 * word's SHA-512.
 *
 *   cmake --build build/release --target ppool-tune ppool_tune_wordhash
 *   ./build/release/ppool-tune --lines words.txt --openmp --out tune \
 *       ./build/release/libppool_tune_wordhash.so wordhash_item
 *
 * (words.txt: any text file, one word per line; bench_wordhash writes its
 * word list as OUT/words.txt when it runs the Python peer.)
 *
 * What a plug-in needs (docs/tuning.md, "Tuning your kernel"):
 *  - the item function, exported (default visibility), with the pp_map_fn
 *    signature: read it->in[0] / it->in_size[0], write it->out, return 0;
 *  - how many bytes it writes: `const size_t <function>_out_size` here, or
 *    --out-size on the command line;
 *  - the same results for the same item, whoever calls it and in whatever
 *    order: ppool-tune checks every run against a serial run by digest.
 * The kernel is bench/wordhash_kernel.h's sha512_hex, the benchmark's own.
 */
#include <ppool.h>

#include "wordhash_kernel.h"

#define PLUGIN_API __attribute__((visibility("default")))

/* Bytes each call writes: ppool-tune reads this when --out-size is not given. */
PLUGIN_API const size_t wordhash_item_out_size = WORDHASH_HEX;

/* One word in, its SHA-512 in hex out (128 bytes, no NUL). Runs in a worker
 * (and in ppool-tune itself for the serial and OpenMP references). */
PLUGIN_API int wordhash_item(pp_map_item *it)
{
    sha512_hex(it->in[0], it->in_size[0], it->out);
    return 0;
}
