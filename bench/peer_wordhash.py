#!/usr/bin/env python3
"""CPython peer of bench_wordhash: the Python guide's word-hash chunksize sweep.

Reads the word list written by bench_wordhash (one word per line, '\\n'
separated), hashes every word with SHA-512 (hex digest of the UTF-8 bytes,
without the newline), and times, as the guide does:

  serial      set(hash_word(w) for w in words)
  chunksize   a fresh ProcessPoolExecutor(workers) (fork context) running
              set(executor.map(hash_word, words, chunksize=size)), pool
              creation and shutdown included (the `with` block)

Output: one JSON line per measurement on stdout, flushed as soon as it is
known, e.g.
  {"system": "python", "chunksize": 10000, "seconds": 0.81, "min": 0.80,
   "max": 0.83, "runs": 3, "distinct": 979250, "sum": 123..., "xor": 456...,
   "python": "3.11.7"}
("chunksize": 0 is the serial run.) "seconds" is the median over --runs.
"distinct", "sum" and "xor" describe the set of digests the run produced:
its size, and the sum (mod 2**64) and xor of the first 64 bits (16 hex
digits) of each distinct digest — the same checksum bench_wordhash computes,
so the two programs can compare their sets without exchanging them.
Progress goes to stderr. Standard library only.
"""

import argparse
import concurrent.futures as cf
import hashlib
import json
import multiprocessing as mp
import platform
import statistics
import sys
import time

MASK = (1 << 64) - 1


def hash_word(word):
    """The guide's task: SHA-512 hex digest of one word."""
    return hashlib.sha512(word.encode("utf-8")).hexdigest()


def checksum(digests):
    """(distinct, sum, xor) of the 64-bit prefixes of a set of hex digests."""
    s = 0
    x = 0
    for d in digests:
        p = int(d[:16], 16)
        s += p
        x ^= p
    return len(digests), s & MASK, x


def run_serial(words):
    return set(hash_word(w) for w in words)


def run_pool(words, workers, size, ctx):
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
        return set(ex.map(hash_word, words, chunksize=size))


def measure(fn, runs):
    times = []
    result = None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--words", required=True, help="word list, one per line")
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--sizes", required=True, help="comma-separated chunksizes")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-serial", action="store_true")
    a = ap.parse_args()

    with open(a.words, "r", encoding="utf-8") as f:
        words = f.read().split("\n")
    if words and words[-1] == "":
        words.pop()
    sizes = [int(s) for s in a.sizes.split(",") if s]
    ctx = mp.get_context("fork")
    version = platform.python_version()
    print(f"peer_wordhash: python {version}, {len(words)} words, {a.workers} workers, "
          f"sizes {sizes}, {a.runs} run(s)", file=sys.stderr, flush=True)

    jobs = ([] if a.no_serial else [0]) + sizes
    for size in jobs:
        if size == 0:
            times, digests = measure(lambda: run_serial(words), a.runs)
        else:
            times, digests = measure(lambda: run_pool(words, a.workers, size, ctx), a.runs)
        distinct, s, x = checksum(digests)
        rec = {
            "system": "python",
            "chunksize": size,
            "seconds": statistics.median(times),
            "min": min(times),
            "max": max(times),
            "runs": len(times),
            "items": len(words),
            "distinct": distinct,
            "sum": s,
            "xor": x,
            "workers": a.workers if size else 1,
            "python": version,
        }
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
