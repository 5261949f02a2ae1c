#!/usr/bin/env bash
# run_example.sh PROGRAM EXPECTED [TIMEOUT_S]
#
# Smoke test for one example: runs PROGRAM in a session of its own, checks
# that it exits with status 0, that its standard output matches EXPECTED line
# by line, and that it left no process behind (no manager, no worker).
#
# EXPECTED holds one line per output line. A line is compared literally,
# unless it starts with "~ ": the rest is then an extended regular expression
# (bash =~) that the whole output line must match. Use it only for the parts
# that depend on timing (completion order, how many tasks a shutdown caught).
# Standard error is not compared (ppool reports failing callbacks and
# oversubscription there); it is shown when the test fails.
set -u
prog=$1
expected=$2
limit=${3:-60}
name=$(basename "$prog")
work=$(mktemp -d "${TMPDIR:-/tmp}/ppool-example.XXXXXX")
trap 'rm -rf "$work"' EXIT

fail() {
    echo "FAIL $name: $*"
    echo "---- stdout"
    cat "$work/out"
    echo "---- stderr"
    cat "$work/err"
    exit 1
}

# setsid: the example leads a new session, so every process it starts
# (manager, workers) carries its session id, even after the manager has
# moved to a process group of its own.
setsid --wait bash -c 'echo $$ > "$1"; shift; exec timeout -k 5 "$@"' _ \
    "$work/sid" "$limit" "$prog" >"$work/out" 2>"$work/err"
rc=$?
sid=$(cat "$work/sid" 2>/dev/null || echo 0)
[ "$rc" -eq 124 ] && fail "timed out after ${limit} s"
[ "$rc" -ne 0 ] && fail "exit status $rc"

# Nothing of the session may survive the example (allow a moment for the
# kernel to finish reaping what the example already waited for).
left=""
for _ in $(seq 50); do
    left=$(ps -e -o pid=,sid=,stat=,comm= | awk -v s="$sid" '$2 == s && $3 !~ /^Z/')
    [ -z "$left" ] && break
    sleep 0.1
done
[ -n "$left" ] && fail "processes left behind:
$left"

mapfile -t want <"$expected"
mapfile -t got <"$work/out"
n=${#want[@]}
[ "${#got[@]}" -eq "$n" ] || fail "expected $n lines of output, got ${#got[@]} (expected file: $expected)"
for ((i = 0; i < n; i++)); do
    w=${want[i]}
    g=${got[i]}
    if [[ $w == "~ "* ]]; then
        re=${w#"~ "}
        [[ $g =~ ^($re)$ ]] || fail "line $((i + 1)): '$g' does not match /$re/"
    else
        [ "$g" == "$w" ] || fail "line $((i + 1)): got '$g', expected '$w'"
    fi
done
echo "ok $name: ${n} lines match, no process left behind"
