#!/bin/bash
# run_mpi.sh MPIEXEC BINDIR NAME [MODE] — run one mpi test program under
# mpirun on this machine (3 ranks, oversubscribed, allowed as root), then
# check that no process of it outlives mpirun (ranks, node-pool managers and
# workers all run the test's binary).
#   MODE mpmd:     ranks 0-1 run NAME, rank 2 runs peer_mpi_other (another binary)
#   MODE recovery: mpirun --enable-recovery (a rank may die without ending the
#                  job); the program must print "NAME: ...; ok" and no
#                  "CHECK failed" (mpirun then does not pass its exit status on)
#   MODE np1 / np3 [EXPECTED]: an example on 1 or 3 ranks; its standard
#                  output must equal the file EXPECTED
#   MODE rootloss: as recovery; the root dies: pass if both other ranks said
#                  they exit because the root fell silent
#   MODE rootloss-tcp: rootloss over the TCP transport only (on loopback)
set -u
mpiexec=$1 bindir=$2 name=$3 mode=${4:-} expected=${5:-}
bin=$bindir/$name
flags=(--allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader,tcp)
case $mode in
  mpmd) cmd=("$mpiexec" "${flags[@]}" -np 2 "$bin" : -np 1 "$bindir/peer_mpi_other") ;;
  np1) cmd=("$mpiexec" "${flags[@]}" -np 1 "$bin") ;;
  np3) cmd=("$mpiexec" "${flags[@]}" -np 3 "$bin") ;;
  recovery|rootloss) cmd=("$mpiexec" "${flags[@]}" --enable-recovery -np 3 "$bin") ;;
  rootloss-tcp)
    flags=(--allow-run-as-root --oversubscribe --bind-to none --mca btl self,tcp
           --mca btl_tcp_if_include lo)
    cmd=("$mpiexec" "${flags[@]}" --enable-recovery -np 3 "$bin") ;;
  *) cmd=("$mpiexec" "${flags[@]}" -np 3 "$bin") ;;
esac
unset PPOOL_START_METHOD  # the MPI layer chooses (forkserver)
if [ "$mode" = rootloss ] || [ "$mode" = rootloss-tcp ]; then
  out=$("${cmd[@]}" 2>&1)
  echo "$out"
  n=$(grep -c "the root was silent" <<<"$out")
  rc=0
  [ "$n" -eq 2 ] || { echo "FAIL: $n serving ranks reported the root's loss (want 2)"; rc=1; }
elif [ "$mode" = recovery ]; then
  # mpirun --enable-recovery exits 0 whatever a rank's exit status (a
  # failed check went unnoticed): the program must end its output with a
  # line "<name>: ...; ok", and no line may say "CHECK failed" (a rank's
  # check, or one printed before the program decided).
  out=$("${cmd[@]}" 2>&1)
  rc=$?
  echo "$out"
  grep -q "^$name: .*; ok\$" <<<"$out" || { echo "FAIL: no \"$name: ...; ok\" line"; rc=1; }
  if grep -q "CHECK failed" <<<"$out"; then
    echo "FAIL: a check failed"
    rc=1
  fi
elif [ -n "$expected" ]; then
  out=$("${cmd[@]}")
  rc=$?
  if [ "$out" != "$(cat "$expected")" ]; then
    echo "FAIL: output differs from $expected:"
    echo "$out"
    rc=1
  fi
else
  "${cmd[@]}"
  rc=$?
fi
# Leftovers: any process whose executable is one of ours, for up to 5 s
# (a node pool's manager and workers exit once their client is gone).
left=""
for _ in $(seq 50); do
  left=""
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    case $exe in "$bin"|"$bindir/peer_mpi_other") left="$left ${p#/proc/}" ;; esac
  done
  [ -z "$left" ] && break
  sleep 0.1
done
if [ -n "$left" ]; then
  echo "FAIL: processes left after mpirun exited:$left"
  ps -o pid,ppid,args -p ${left// /,} || true
  exit 1
fi
exit $rc
