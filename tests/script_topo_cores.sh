#!/usr/bin/env bash
# script_topo_cores.sh <srcdir> <builddir> — ppool-topo shows the plan of
# pp_config.cores_per_worker: blocks of k cores, their OMP_PLACES, the
# default count cores / k, and bad values refused.
set -u
builddir=${2:?usage: script_topo_cores.sh <srcdir> <builddir>}
topo="$builddir/ppool-topo"

fail() { echo "FAIL: $*"; exit 1; }
[ -x "$topo" ] || fail "$topo not built"

# 2 packages x 4 cores x 2 PUs, k = 2, scatter: blocks alternate packages,
# each bound to the first PU of its two cores; default workers = 8 / 2.
out=$("$topo" --synthetic "package:2 core:4 pu:2" --policy scatter --cores-per-worker 2 2>&1) ||
    fail "ppool-topo exited $?: $out"
echo "$out"
[ "$(echo "$out" | grep -c '^worker ')" = 4 ] || fail "default is not cores / k = 4 workers"
echo "$out" | grep -qx 'worker 0: cpu 0 core 0 package 0 numa 0 cpus 0,2 places {0},{2}' ||
    fail "worker 0 is not on cores 0-1"
echo "$out" | grep -qx 'worker 1: cpu 8 core 4 package 1 numa 0 cpus 8,10 places {8},{10}' ||
    fail "worker 1 is not on package 1"

# Oversubscribed: a warning, or an error with --strict.
out=$("$topo" --synthetic "core:4 pu:1" --workers 3 -k 2 2>&1) || fail "exited $?: $out"
echo "$out" | grep -q 'warning: oversubscribed: 3 workers x 2 cores on 4 cores' ||
    fail "no oversubscription warning: $out"
"$topo" --synthetic "core:4 pu:1" --workers 3 -k 2 --strict >/dev/null 2>&1 &&
    fail "--strict accepted an oversubscribed plan"

# Bad values are usage errors (status 2).
for bad in 0 -1 1025 x; do
    "$topo" --cores-per-worker "$bad" >/dev/null 2>&1
    [ $? = 2 ] || fail "--cores-per-worker $bad was not refused as usage"
done
echo "ok"
