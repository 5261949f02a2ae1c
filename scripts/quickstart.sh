#!/usr/bin/env bash
# ppool quick start. Run as root on Debian 12 (or with the packages present):
#   bash scripts/quickstart.sh main    install what is missing, build, run the main job
#   bash scripts/quickstart.sh test    install what is missing, build, run every test
# Optional second argument for `test`: a preset (release, debug, asan, tsan).
set -euo pipefail
cd "$(dirname "$0")/.."

# OpenMP (the benchmarks' peer and one test) comes with gcc's libgomp in
# build-essential; libssl-dev gives the word-hash workload its SHA-512;
# gfortran builds and tests the Fortran module (PPOOL_FORTRAN=AUTO); Open MPI
# the multi-node layer (PPOOL_MPI=AUTO); python3-mpi4py and python3-joblib
# are the Python peers of bench_mpi and bench_core.
PKGS=(build-essential cmake ninja-build pkg-config libhwloc-dev hwloc liburcu-dev
      libcriterion-dev libssl-dev gnuplot-nox python3 doxygen gfortran
      libopenmpi-dev openmpi-bin python3-mpi4py python3-joblib)

install_missing() {
    local missing=()
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "== installing: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# Configure quietly, but show everything when configuring fails (a missing
# package must be seen, not hidden behind a later "no tests" line).
build() {
    local preset=$1 log
    log=$(mktemp)
    if ! cmake --preset "$preset" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "== configuring preset $preset failed (see above)" >&2
        return 1
    fi
    rm -f "$log"
    cmake --build --preset "$preset"
}

what=${1:-main}
install_missing
case "$what" in
main)
    build release
    # The main job: the chunksize sweep of the word-hash workload (table,
    # out/wordhash.csv, out/wordhash.png).
    ./build/release/bench_wordhash --out out
    ;;
test)
    preset=${2:-release}
    build "$preset"
    # The API reference must build without a warning (every public symbol
    # documented); once is enough, in the plain build.
    if [ "$preset" = release ]; then
        cmake --build --preset "$preset" --target docs
    fi
    ctest --preset "$preset"
    ;;
*)
    echo "usage: $0 main|test [preset]" >&2
    exit 2
    ;;
esac
