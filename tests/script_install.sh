#!/usr/bin/env bash
# Install the built tree into a scratch prefix and build a consumer against it
# twice: with find_package(ppool CONFIG) and with pkg-config. Both must run.
set -euo pipefail
src=$1 build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$src/tests/consumer" -B "$tmp/cm" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
out=$(LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/cm/consumer")
[ "$out" = "consumer: 42" ] || { echo "cmake consumer printed: $out"; exit 1; }
pcdir=$(dirname "$(find "$tmp/prefix" -name ppool.pc | head -1)")
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs ppool)
cc -o "$tmp/pc_consumer" "$src/tests/consumer/consumer.c" $flags
out=$(LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/pc_consumer")
[ "$out" = "consumer: 42" ] || { echo "pkg-config consumer printed: $out"; exit 1; }
# Nothing but pp_ symbols is exported.
lib=$(find "$tmp/prefix" -name 'libppool.so.*' | head -1)
bad=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^pp_' || true)
[ -z "$bad" ] || { echo "exported non-pp_ symbols: $bad"; exit 1; }
echo "install: cmake and pkg-config consumers OK"
