#!/usr/bin/env python3
"""mpi4py.futures peer of bench_mpi: the same words, the same tasks.

Run by bench_mpi as
  mpirun -np N /usr/bin/python3 -m mpi4py.futures bench/peer_mpi.py --words W ...
(rank 0 runs this script; the other ranks are MPIPoolExecutor's workers).

Measures, with one MPIPoolExecutor kept for the whole run (as bench_mpi
keeps its executor):
  noop       K submits of a no-op function, then waiting for all: tasks/s
  roundtrip  R sequential submit + result of the no-op: seconds each
  chunksize  set(executor.map(hash_word, words, chunksize=cs)): seconds
One JSON line per measurement on stdout, e.g.
  {"system": "mpi4py", "chunksize": 100, "seconds": 0.8, "distinct": ...,
   "sum": ..., "xor": ...}
"distinct", "sum" and "xor" describe the set of hex digests: its size, and
the sum (mod 2**64) and xor of the first 64 bits of each, as bench_mpi
computes them. Standard library plus mpi4py only.
"""

import argparse
import hashlib
import json
import statistics
import sys
import time

from mpi4py.futures import MPIPoolExecutor

MASK = (1 << 64) - 1


def word(i):
    """bench_mpi's word i (distinct for distinct i)."""
    return "w%d-%d" % (i, (i * 7919) % 1000)


def hash_word(w):
    return hashlib.sha512(w.encode()).hexdigest()


def noop(x):
    return None


def digest_set(digests):
    s = set(digests)
    tot = 0
    x = 0
    for d in s:
        v = int(d[:16], 16)
        tot = (tot + v) & MASK
        x ^= v
    return len(s), tot, x


def emit(**kw):
    print(json.dumps(kw), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=20000)
    ap.add_argument("--noop", type=int, default=5000)
    ap.add_argument("--roundtrip", type=int, default=300)
    ap.add_argument("--chunks", default="1,10,100,1000")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    words = [word(i) for i in range(a.words)]
    with MPIPoolExecutor() as ex:
        list(ex.map(noop, range(64)))  # warm: every worker started
        rates = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            fs = [ex.submit(noop, i) for i in range(a.noop)]
            for f in fs:
                f.result()
            rates.append(a.noop / (time.perf_counter() - t0))
        emit(system="mpi4py", what="noop", tasks_per_s=statistics.median(rates))
        t0 = time.perf_counter()
        for i in range(a.roundtrip):
            ex.submit(noop, i).result()
        emit(system="mpi4py", what="roundtrip",
             seconds=(time.perf_counter() - t0) / a.roundtrip)
        for cs in [int(c) for c in a.chunks.split(",")]:
            times = []
            for _ in range(a.runs):
                t0 = time.perf_counter()
                s = list(ex.map(hash_word, words, chunksize=cs))
                times.append(time.perf_counter() - t0)
                print("mpi4py chunksize %d: %.3f s" % (cs, times[-1]), file=sys.stderr)
            n, tot, x = digest_set(s)
            emit(system="mpi4py", what="sweep", chunksize=cs,
                 seconds=statistics.median(times), distinct=n, sum=tot, xor=x)


if __name__ == "__main__":
    main()
