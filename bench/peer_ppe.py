#!/usr/bin/env python3
"""Python peers of bench_core: ProcessPoolExecutor, multiprocessing.Pool, loky; no-op tasks.

--impl picks the pool a Python user would use instead of ppool:
  ppe      concurrent.futures.ProcessPoolExecutor, fork context (default)
  mp_pool  multiprocessing.Pool, fork context: apply_async(...).get()
  loky     joblib.externals.loky.ProcessPoolExecutor (Debian's python3-joblib
           carries loky; its own "loky" start method, spawn-like, with
           cloudpickle)

Measures the same two shapes as bench/bench_core.c, with the same statistics:

  round trip  submit one no-op, wait for its result, one at a time; after a
              warm-up, R rounds; median / p90 / p99 in microseconds
              (nearest-rank percentiles of the R samples of one run).
  throughput  submit N no-ops as fast as possible, then wait for all of them;
              tasks per second from the first submit to the last result.

Both are repeated over K runs on one executor; each figure printed is the
median over the runs.  The task takes an 8-byte integer and returns it, the
Python equivalent of ppool's 8-byte argument / 8-byte result no-op.

Output: exactly one line of JSON on stdout, e.g.
  {"rt_median_us": 95.1, "rt_p90_us": 120.3, "rt_p99_us": 180.2,
   "tput": 14000.0, "workers": 2, "python": "3.11.7", "impl": "ppe", ...}
Progress and errors go to stderr; an --impl that cannot be imported exits 3.
Standard library only, but for --impl loky.
"""

import argparse
import concurrent.futures as cf
import json
import math
import multiprocessing as mp
import platform
import statistics
import sys
import time


def noop(x):
    """The task: return the argument unchanged (an int, 8 bytes in C terms)."""
    return x


def percentile(sorted_samples, q):
    """Nearest-rank percentile, the same definition bench_core.c uses."""
    n = len(sorted_samples)
    if n == 0:
        return float("nan")
    k = max(1, math.ceil(q * n))
    return sorted_samples[min(k, n) - 1]


class PoolAsExecutor:
    """multiprocessing.Pool behind the two calls the shapes use: submit(fn, x)
    returns an object whose result() waits (AsyncResult.get)."""

    class _Fut:
        __slots__ = ("ar",)

        def __init__(self, ar):
            self.ar = ar

        def result(self):
            return self.ar.get()

    def __init__(self, pool):
        self.pool = pool

    def submit(self, fn, x):
        return self._Fut(self.pool.apply_async(fn, (x,)))


def open_pool(impl, workers):
    """The pool of kind @impl as a context manager yielding an executor-like
    object (submit / result); SystemExit(3) if that kind cannot be had."""
    import contextlib
    if impl == "ppe":
        # The fork start method, chosen explicitly: ppool starts its workers
        # by fork (PP_START_FORK), so this compares like with like.  (3.11's
        # default on Linux is fork too, but 3.14 changed it to forkserver.)
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork"))
    if impl == "mp_pool":
        @contextlib.contextmanager
        def pool():
            with mp.get_context("fork").Pool(processes=workers) as p:
                yield PoolAsExecutor(p)
        return pool()
    try:
        from joblib.externals import loky
    except ImportError as e:
        print(f"peer_ppe: --impl loky: {e} (Debian: python3-joblib; use /usr/bin/python3)",
              file=sys.stderr)
        raise SystemExit(3)
    return loky.ProcessPoolExecutor(max_workers=workers)


def round_trip(ex, rounds, warmup):
    """One run of the round-trip shape; returns (median, p90, p99) in us."""
    for i in range(warmup):
        if ex.submit(noop, i).result() != i:
            raise RuntimeError("warm-up: wrong result")
    clock = time.perf_counter_ns
    samples = [0] * rounds
    for i in range(rounds):
        t0 = clock()
        r = ex.submit(noop, i).result()
        samples[i] = clock() - t0
        if r != i:
            raise RuntimeError("round trip: wrong result")
    samples.sort()
    us = 1e-3
    return (percentile(samples, 0.50) * us,
            percentile(samples, 0.90) * us,
            percentile(samples, 0.99) * us)


def throughput(ex, tasks):
    """One run of the throughput shape; returns tasks per second."""
    submit = ex.submit
    t0 = time.perf_counter_ns()
    futs = [submit(noop, i) for i in range(tasks)]
    bad = 0
    for i, f in enumerate(futs):  # waits for all, in submission order
        if f.result() != i:
            bad += 1
    t1 = time.perf_counter_ns()
    if bad:
        raise RuntimeError(f"throughput: {bad} wrong results")
    return tasks / ((t1 - t0) * 1e-9)


def positive_int(text):
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=positive_int, default=2)
    ap.add_argument("--impl", choices=("ppe", "mp_pool", "loky"), default="ppe",
                    help="the Python pool to measure (default ppe)")
    ap.add_argument("--rounds", type=positive_int, default=2000,
                    help="round trips per run (default 2000)")
    ap.add_argument("--tasks", type=positive_int, default=20000,
                    help="tasks per throughput run (default 20000)")
    ap.add_argument("--runs", type=positive_int, default=5)
    ap.add_argument("--warmup", type=int, default=None,
                    help="warm-up round trips per run (default min(1000, rounds))")
    args = ap.parse_args()
    warmup = args.warmup if args.warmup is not None else min(1000, args.rounds)

    rt_med, rt_p90, rt_p99, tput = [], [], [], []
    with open_pool(args.impl, args.workers) as ex:
        for run in range(args.runs):
            m, p90, p99 = round_trip(ex, args.rounds, warmup)
            t = throughput(ex, args.tasks)
            rt_med.append(m)
            rt_p90.append(p90)
            rt_p99.append(p99)
            tput.append(t)
            print(f"peer_ppe[{args.impl}]: run {run + 1}/{args.runs}: round trip median "
                  f"{m:.1f} us, p99 {p99:.1f} us; throughput {t:.0f} tasks/s",
                  file=sys.stderr, flush=True)

    out = {
        "rt_median_us": round(statistics.median(rt_med), 3),
        "rt_p90_us": round(statistics.median(rt_p90), 3),
        "rt_p99_us": round(statistics.median(rt_p99), 3),
        "tput": round(statistics.median(tput), 1),
        "workers": args.workers,
        "python": platform.python_version(),
        "impl": args.impl,
        "start_method": "loky" if args.impl == "loky" else "fork",
        "rounds": args.rounds,
        "tasks": args.tasks,
        "runs": args.runs,
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
