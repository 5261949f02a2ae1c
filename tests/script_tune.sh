#!/usr/bin/env bash
# script_tune.sh SRC BUILD — ppool-tune end to end (docs/tuning.md).
#
#  - a small sweep of the example plug-in (bench's word-hash kernel) over
#    lines: exit 0, the table has one row per grid point (serial, ppool
#    workers x chunks, OpenMP threads x chunks when built with OpenMP), every
#    CSV row's digest is the serial run's and the printed one, the best
#    setting is the last line, the files are there;
#  - the same under the spawn and forkserver start methods (the library is
#    found in fresh worker images), and with 2 cores per worker;
#  - binary fixed-size records and variable-size results (tests/libs/ppt_tune.c);
#  - failures: results that differ from the serial run's, an item failing
#    in a worker (exit 1, a message naming it);
#  - bad input: missing library, missing symbol, empty file, bad grid specs,
#    a binary file that is no multiple of the record, no result size,
#    an unknown option (exit 2, a clear message, no pool started).
# Every run is a session of its own; none may leave a process behind.
set -u
src=$1 build=$2
tool=$build/ppool-tune
kernel=$build/libppool_tune_wordhash.so
plug=$build/libppt_tune.so
work=$(mktemp -d "${TMPDIR:-/tmp}/ppool-tune-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0

bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

# run NAME ARGS...: ppool-tune in its own session; stdout in $work/NAME.out,
# stderr in $work/NAME.err, the status in $rc; checks nothing is left over.
run() {
    local name=$1
    shift
    setsid --wait bash -c 'echo $$ > "$1"; shift; exec timeout -k 5 60 "$@"' _ \
        "$work/$name.sid" "$tool" "$@" >"$work/$name.out" 2>"$work/$name.err"
    rc=$?
    local sid left=""
    sid=$(cat "$work/$name.sid" 2>/dev/null || echo 0)
    for _ in $(seq 50); do
        left=$(ps -e -o pid=,sid=,stat=,comm= | awk -v s="$sid" '$2 == s && $3 !~ /^Z/')
        [ -z "$left" ] && break
        sleep 0.1
    done
    [ -n "$left" ] && bad "$name: processes left behind: $left"
    [ "$rc" -eq 124 ] && bad "$name: timed out"
    return 0
}

show() { echo "---- $1 stdout"; cat "$work/$1.out"; echo "---- $1 stderr"; cat "$work/$1.err"; }

# expect_ok NAME SERIAL PPOOL OPENMP: exit 0, that many rows of each kind,
# every row's digest (CSV, when DIR exists) equal to the printed serial one,
# "best:" last.
expect_ok() {
    local name=$1 n_ser=$2 n_pp=$3 n_omp=$4 dir=${5:-}
    local out=$work/$name.out before=$failures
    if [ "$rc" -ne 0 ]; then
        bad "$name: exit status $rc"
        show "$name"
        return
    fi
    local hdr rows_ser rows_pp rows_omp
    hdr=$(grep -c '^impl  *workers  *cores/w  *cores  *chunk  *time s  *min s  *max s  *speed-up  *eff\.$' "$out")
    [ "$hdr" = 1 ] || bad "$name: no table header"
    # A row: impl, workers, cores/w, cores, chunk, 3 times, speed-up, eff. [*]
    local row='^(serial|ppool|openmp) +[0-9]+ +([0-9]+|-) +[0-9]+ +([0-9]+|-) +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9]+%( \*)?$'
    rows_ser=$(grep -cE "$row" <(grep '^serial ' "$out"))
    rows_pp=$(grep -cE "$row" <(grep '^ppool ' "$out"))
    rows_omp=$(grep -cE "$row" <(grep '^openmp ' "$out"))
    [ "$rows_ser" = "$n_ser" ] || bad "$name: $rows_ser serial rows, want $n_ser"
    [ "$rows_pp" = "$n_pp" ] || bad "$name: $rows_pp ppool rows, want $n_pp"
    [ "$rows_omp" = "$n_omp" ] || bad "$name: $rows_omp openmp rows, want $n_omp"
    local dig
    dig=$(sed -n 's/^digest: *\([0-9a-f]\{16\}\), every run of every point equal to the serial run.s$/\1/p' "$out")
    [ -n "$dig" ] || bad "$name: no digest line"
    tail -n 1 "$out" | grep -qE '^best: +workers [0-9]+, cores per worker [0-9]+, chunksize [0-9]+: ' ||
        bad "$name: the best setting is not the last line"
    if [ -n "$dir" ]; then
        for f in tune.csv tune.txt tune.dat tune.gp; do
            [ -s "$dir/$f" ] || bad "$name: $dir/$f missing"
        done
        if command -v gnuplot >/dev/null; then
            [ -s "$dir/tune.png" ] || bad "$name: gnuplot present but no $dir/tune.png"
        fi
        local n_csv n_same
        n_csv=$(($(wc -l <"$dir/tune.csv") - 1))
        [ "$n_csv" = $((n_ser + n_pp + n_omp)) ] || bad "$name: $n_csv CSV rows"
        # Column 13 is the digest: every row, serial included, the same.
        n_same=$(awk -F, -v d="$dig" 'NR > 1 && $13 == d' "$dir/tune.csv" | wc -l)
        [ "$n_same" = "$n_csv" ] || bad "$name: $n_same of $n_csv CSV digests equal $dig"
        cmp -s <(sed -n '/^impl /,/^best:/p' "$out") <(sed -n '/^impl /,/^best:/p' "$dir/tune.txt") ||
            bad "$name: tune.txt is not the report printed"
    fi
    [ "$failures" -eq "$before" ] || show "$name"
}

# expect_fail NAME STATUS REGEX: that exit status and a line on stderr
# matching REGEX.
expect_fail() {
    local name=$1 want=$2 re=$3
    if [ "$rc" -ne "$want" ]; then
        bad "$name: exit status $rc, want $want"
        show "$name"
    elif ! grep -qE -e "$re" "$work/$name.err"; then
        bad "$name: stderr lacks /$re/"
        show "$name"
    fi
}

# The words: 3000 lines of 3..12 letters (awk's rand with a fixed seed).
awk 'BEGIN { srand(7); for (i = 0; i < 3000; i++) { n = 3 + int(rand() * 10); w = "";
     for (j = 0; j < n; j++) w = w sprintf("%c", 97 + int(rand() * 26)); print w } }' >"$work/words.txt"

# OpenMP rows only when the tool was built with OpenMP.
omp=(--openmp)
"$tool" --openmp "$kernel" wordhash_item --synthetic 1 --workers 0 >/dev/null 2>"$work/probe.err"
grep -q "built without OpenMP" "$work/probe.err" && omp=()
# threads 1, 2 x chunks 10, 100
n_omp=$(( ${#omp[@]} ? 4 : 0 ))

run sweep --lines "$work/words.txt" --workers 1-2 --chunks 10,100 --repeat 2 "${omp[@]}" \
    --out "$work/o" "$kernel" wordhash_item
expect_ok sweep 1 4 "$n_omp" "$work/o"
grep -qE '^  k=1, 1 worker: cpu [0-9]+$' "$work/sweep.out" &&
    grep -qE '^  k=1, 2 workers: cpu [0-9]+, cpu [0-9]+$' "$work/sweep.out" ||
    bad "sweep: no placement line per worker count"
grep -qE '^others: +other processes used [0-9.]+ CPU-s during the sweep, [0-9.]+% of the machine' \
    "$work/sweep.out" || bad "sweep: no line on the other processes' CPU time"
# The plug-in's digest is also independent of the grid: a second sweep
# over other points finds the same one.
d1=$(sed -n 's/^digest: *\([0-9a-f]*\),.*/\1/p' "$work/sweep.out")

for m in spawn forkserver; do
    PPOOL_START_METHOD=$m run "sweep_$m" --lines "$work/words.txt" --workers 1,2 --chunks 50 \
        --repeat 1 "$kernel" wordhash_item
    expect_ok "sweep_$m" 1 2 0
    grep -q "^start method: $m$" "$work/sweep_$m.out" || bad "sweep_$m: start method not $m"
    d=$(sed -n 's/^digest: *\([0-9a-f]*\),.*/\1/p' "$work/sweep_$m.out")
    [ "$d" = "$d1" ] || bad "sweep_$m: digest $d, the fork sweep's $d1"
done

# The progress bar: on standard error when forced (as on a terminal), with
# an ETA; never when stderr is not a terminal and nothing forces it.
run progress --progress --synthetic 2000 --workers 1,2 --chunks 100 --repeat 1 "$kernel" wordhash_item
expect_ok progress 1 2 0
grep -qE 'ETA [0-9]+:[0-9]{2} +ppool w=2 k=1 chunk=100 run 1/1' "$work/progress.err" ||
    bad "progress: no bar with an ETA on stderr"
grep -q 'ETA' "$work/sweep.err" && bad "sweep: a progress bar on a non-terminal stderr"

run cpw --lines "$work/words.txt" --workers 1 --cores-per-worker 1,2 --chunks 100 --repeat 1 \
    "$kernel" wordhash_item
expect_ok cpw 1 2 0
grep -qE '^ppool +1 +2 +2 +100 ' "$work/cpw.out" || bad "cpw: no row for 1 worker x 2 cores"
grep -qE '^  k=2, 1 worker: cpus [0-9]+\+2$' "$work/cpw.out" || bad "cpw: the worker is not bound to 2 CPUs"

head -c 16000 "$work/words.txt" >"$work/records.bin"
run binary --binary "$work/records.bin" --item-size 16 --out-size 16 --workers 2 --chunks 7 \
    --repeat 1 "$plug" ppt_tune_copy
expect_ok binary 1 1 0
grep -q "1000 records of 16 bytes" "$work/binary.out" || bad "binary: input not described"

run variable --synthetic 500 --item-size 24 --variable --workers 2 --chunks 1,64 --repeat 1 \
    "$plug" ppt_tune_reverse
expect_ok variable 1 2 0

# Grid specs expand as documented (--dry-run: the header only).
run grid --dry-run --workers 1-8:x2,3 --chunks 10-45:10,7 --cores-per-worker 1-2 --repeat 1 \
    "$kernel" wordhash_item
[ "$rc" -eq 0 ] || bad "grid: exit status $rc"
grep -qx 'grid:     cores/worker 1,2; chunksizes 7,10,20,30,40; workers 1,2,3,4,8 (k=1); 1,2,3,4,8 (k=2); 1 run per point, median kept' \
    "$work/grid.out" || { bad "grid: not expanded as documented"; show grid; }
grep -q '^impl ' "$work/grid.out" && bad "grid: --dry-run ran the sweep"
run grid_auto --dry-run --synthetic 50 --cores-per-worker 1,4 "$kernel" wordhash_item
# The defaults: chunk sizes below the item count; workers up to cores / k.
cores=$(sed -n 's/^cores: *\([0-9]*\) this process may use.*/\1/p' "$work/grid_auto.out")
want_w1=$(awk -v c="$cores" 'BEGIN { s = ""; for (w = 1; w < c; w *= 2) s = s w ","; print s c }')
want_w4=$(awk -v c="$cores" 'BEGIN { m = int(c / 4); if (m < 1) m = 1; s = ""; for (w = 1; w < m; w *= 2) s = s w ","; print s m }')
grep -qx "grid:     cores/worker 1,4; chunksizes 1,10; workers $want_w1 (k=1); $want_w4 (k=4); 3 runs per point, median kept" \
    "$work/grid_auto.out" || { bad "grid_auto: defaults not as documented ($cores cores)"; show grid_auto; }

# Lines: an empty line is an item of 0 bytes, a last line without its
# newline counts, no empty item after the last newline.
printf 'abc\n\nde' >"$work/three.txt"
printf 'abc\n\nde\n' >"$work/three_nl.txt"
for f in three three_nl; do
    run "$f" --lines "$work/$f.txt" --variable --workers 2 --chunks 1 --repeat 1 "$plug" ppt_tune_reverse
    expect_ok "$f" 1 1 0
    grep -q "^input: *3 lines of " "$work/$f.out" || bad "$f: not 3 lines"
done
d3=$(sed -n 's/^digest: *\([0-9a-f]*\),.*/\1/p' "$work/three.out")
d3nl=$(sed -n 's/^digest: *\([0-9a-f]*\),.*/\1/p' "$work/three_nl.out")
[ "$d3" = "$d3nl" ] || bad "three: the final newline changed the items"

# Failures found while sweeping: exit 1.
run mismatch --synthetic 100 --workers 1 --chunks 10 --repeat 1 "$plug" ppt_tune_pid
expect_fail mismatch 1 'results differ from the serial run.s: ppool workers 1, cores/worker 1, chunksize 10, run 1: digest [0-9a-f]{16}, serial [0-9a-f]{16}'
run itemfail --synthetic 100 --workers 2 --chunks 10 --repeat 1 "$plug" ppt_tune_fail_in_pool
expect_fail itemfail 1 'item 3 failed: item 3 refused in a worker \(code 42\)'

# Bad input: exit 2 before any pool starts.
run nolib --synthetic 10 "$work/nonexistent.so" f
expect_fail nolib 2 "cannot load library .*nonexistent.so"
run notalib --synthetic 10 "$work/words.txt" f
expect_fail notalib 2 "cannot load library .*words.txt"
run nosym --synthetic 10 --out-size 8 "$plug" no_such_function
expect_fail nosym 2 "no function 'no_such_function' in .*libppt_tune.so"
: >"$work/empty.txt"
run empty --lines "$work/empty.txt" "$kernel" wordhash_item
expect_fail empty 2 "input: .*empty.txt is empty"
run nofile --lines "$work/missing.txt" "$kernel" wordhash_item
expect_fail nofile 2 "input: cannot open .*missing.txt"
run grid_backwards --workers 3-1 "$kernel" wordhash_item
expect_fail grid_backwards 2 "--workers '3-1': '3-1': range runs backwards"
run grid_word --chunks 10,abc "$kernel" wordhash_item
expect_fail grid_word 2 "--chunks '10,abc': 'abc' is not a number or range"
run grid_zero --workers 0,2 "$kernel" wordhash_item
expect_fail grid_zero 2 "--workers '0,2': '0' is outside 1\.\.4096"
run grid_empty --chunks 1,,2 "$kernel" wordhash_item
expect_fail grid_empty 2 "--chunks '1,,2': empty term"
run grid_factor --workers 1-8:x1 "$kernel" wordhash_item
expect_fail grid_factor 2 "a factor must be 2 or more"
run binsize --binary "$work/records.bin" --item-size 7 --out-size 8 "$plug" ppt_tune_copy
expect_fail binsize 2 "16000 bytes is not a multiple of the 7-byte record"
run nosize --synthetic 10 "$plug" ppt_tune_copy
expect_fail nosize 2 "give --out-size B"
run badopt --frobnicate 3 "$kernel" wordhash_item
expect_fail badopt 2 "unknown option '--frobnicate'"
run noargs "$kernel"
expect_fail noargs 2 "give the LIBRARY and the FUNCTION"

if [ "$failures" -ne 0 ]; then
    echo "script_tune: $failures failure(s)"
    exit 1
fi
echo "script_tune: sweeps (fork, spawn, forkserver, progress bar, 2 cores/worker, binary, variable), 2 failure paths and 15 bad inputs OK"
