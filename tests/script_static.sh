#!/usr/bin/env bash
# script_static.sh <srcdir> <builddir> — static linking works for every start
# method. A C program linked against the installed libppool.a (CMake's
# ppool::ppool_static, and the archive named on the command line with
# hwloc and pthreads beside it) must run under fork, spawn and
# forkserver: spawn and forkserver re-exec the program, and the entry that
# turns the exec into a manager or worker before main() (a constructor in
# runtime/start.c) must have been linked in. The programs must not depend
# on libppool.so.
set -euo pipefail
src=$1 build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(dirname "$(find "$tmp/prefix" -name 'libppool.a' | head -1)")
[ -e "$libdir/libppool.a" ] || fail "libppool.a not installed"

check_run() {
    local prog=$1 m out
    if readelf -d "$prog" | grep -q 'libppool'; then fail "$prog depends on a shared libppool"; fi
    for m in fork spawn forkserver; do
        out=$(PPOOL_START_METHOD=$m timeout 60 "$prog") || fail "$prog under $m exited $?"
        [ "$out" = "consumer: 42" ] || fail "$prog under $m printed: $out"
    done
}

cmake -S "$src/tests/consumer" -B "$tmp/cm" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    -DPPOOL_WANT_STATIC=ON >/dev/null
cmake --build "$tmp/cm" >/dev/null
check_run "$tmp/cm/consumer_static"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046
cc -o "$tmp/pc_static" "$src/tests/consumer/consumer.c" $(pkg-config --cflags ppool) \
    "$libdir/libppool.a" $(pkg-config --libs hwloc) -lpthread
check_run "$tmp/pc_static"
# With --gc-sections as well (the entry is a constructor: kept by .init_array).
# shellcheck disable=SC2046
cc -o "$tmp/pc_static_gc" -ffunction-sections -Wl,--gc-sections "$src/tests/consumer/consumer.c" \
    $(pkg-config --cflags ppool) "$libdir/libppool.a" $(pkg-config --libs hwloc) -lpthread
check_run "$tmp/pc_static_gc"
echo "static: consumers linked with libppool.a (CMake, command line, --gc-sections) run under fork, spawn, forkserver"
