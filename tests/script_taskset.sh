#!/usr/bin/env bash
# script_taskset.sh <srcdir> <builddir> — inherited affinity (taskset) is honoured.
#   taskset -c 1 ppool-topo --workers 1  -> the plan uses CPU 1 only
#   taskset -c 0 ppool-topo --workers 2  -> one core: an oversubscription warning
set -u
builddir=${2:?usage: script_taskset.sh <srcdir> <builddir>}
topo="$builddir/ppool-topo"

fail() { echo "FAIL: $*"; exit 1; }

command -v taskset >/dev/null 2>&1 || { echo "SKIP: taskset not installed"; exit 0; }
[ -x "$topo" ] || fail "$topo not built"
if ! taskset -c 0 true 2>/dev/null || ! taskset -c 1 true 2>/dev/null; then
    echo "SKIP: needs CPUs 0 and 1 available to this process (nproc=$(nproc))"
    exit 0
fi

# 1. pinned to CPU 1: one core, worker 0 on cpu 1, nothing else.
out=$(taskset -c 1 "$topo" --workers 1 2>&1) || fail "ppool-topo exited $?: $out"
echo "$out"
echo "$out" | grep -q ', 1 core, 1 PU' || fail "summary does not show a single core"
echo "$out" | grep -q '^worker 0: cpu 1 ' || fail "worker 0 is not on cpu 1"
others=$(echo "$out" | grep '^worker ' | grep -v ': cpu 1 ' || true)
[ -z "$others" ] || fail "a worker is outside CPU 1: $others"

# Same with a policy that uses every PU and with scatter.
for pol in pus scatter; do
    out=$(taskset -c 1 "$topo" --workers 1 --policy "$pol" 2>&1) || fail "--policy $pol: $out"
    echo "$out" | grep -q '^worker 0: cpu 1 ' || fail "--policy $pol: worker 0 is not on cpu 1"
done

# 2. pinned to CPU 0, two workers: oversubscribed, warned on stderr, exit 0.
err=$(taskset -c 0 "$topo" --workers 2 2>&1 >/dev/null) || fail "ppool-topo exited $?: $err"
echo "$err"
echo "$err" | grep -q '^warning: oversubscribed: 2 workers on 1 core' \
    || fail "no oversubscription warning on stderr"
out=$(taskset -c 0 "$topo" --workers 2 2>/dev/null)
[ "$(echo "$out" | grep -c '^worker [01]: cpu 0 ')" = 2 ] || fail "both workers should be on cpu 0: $out"

# 3. ... and --strict turns it into an error (exit 1).
taskset -c 0 "$topo" --workers 2 --strict >/dev/null 2>&1
rc=$?
[ "$rc" = 1 ] || fail "--strict oversubscription exited $rc, want 1"

# 4. a CPU outside the affinity cannot be listed.
taskset -c 0 "$topo" --workers 1 --cpus 1 >/dev/null 2>&1
rc=$?
[ "$rc" = 1 ] || fail "--cpus 1 under taskset -c 0 exited $rc, want 1"

echo "PASS"
