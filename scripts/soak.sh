#!/usr/bin/env bash
# Run test suites again and again beside a CPU hog, to shake out flakes.
#   bash scripts/soak.sh [-n ROUNDS] [-p PRESET] SUITE...
# e.g. bash scripts/soak.sh -n 20 test_limits test_time test_shutdown test_procs
# Each round runs every suite once, under the start methods in turn (AUTO,
# fork, spawn, forkserver), while one busy-looping process per CPU competes
# for the cores. Stops at the first failure and prints its output; prints
# "N passed, M failed" at the end. The build must exist (quickstart.sh test).
set -uo pipefail
cd "$(dirname "$0")/.."
rounds=20 preset=release
while getopts "n:p:" o; do
    case $o in
    n) rounds=$OPTARG ;;
    p) preset=$OPTARG ;;
    *) echo "usage: $0 [-n ROUNDS] [-p PRESET] SUITE..." >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: $0 [-n ROUNDS] [-p PRESET] SUITE..." >&2; exit 2; }
dir=build/$preset
hogs=()
for _ in $(seq "$(nproc)"); do
    (while :; do :; done) &
    hogs+=($!)
done
trap 'kill "${hogs[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
methods=("" fork spawn forkserver)
passed=0 failed=0
log=$(mktemp)
for r in $(seq "$rounds"); do
    m=${methods[$(( (r - 1) % 4 ))]}
    for s in "$@"; do
        start=$(date +%s)
        if PPOOL_START_METHOD=$m PPT_LIBDIR=$PWD/$dir "$dir/$s" --jobs 1 --verbose=0 >"$log" 2>&1; then
            passed=$((passed + 1))
            echo "round $r/$rounds ${m:-auto} $s: ok ($(( $(date +%s) - start )) s)"
        else
            failed=$((failed + 1))
            echo "round $r/$rounds ${m:-auto} $s: FAILED"
            grep -vE '^\[(RUN |PASS)\]' "$log" | tail -40
            break 2
        fi
    done
done
rm -f "$log"
echo "soak: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
