#!/usr/bin/env bash
# Embed ppool in a parent project, as add_subdirectory() and as FetchContent
# (from a tarball of this tree), build a consumer against the shared and the
# static library each time, and run them.
set -euo pipefail
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -C "$src" --exclude=./build --exclude=./.git --exclude=./out -czf "$tmp/ppool.tar.gz" .
for mode in subdirectory fetchcontent; do
    cmake -S "$src/tests/consumer/subproject" -B "$tmp/$mode" -G Ninja \
        -DPPOOL_EMBED=$mode -DPPOOL_SRC="$src" -DPPOOL_URL="file://$tmp/ppool.tar.gz" \
        -DCMAKE_BUILD_TYPE=Release >"$tmp/$mode.log" 2>&1 || { cat "$tmp/$mode.log"; exit 1; }
    cmake --build "$tmp/$mode" >>"$tmp/$mode.log" 2>&1 || { cat "$tmp/$mode.log"; exit 1; }
    for exe in consumer consumer_static; do
        out=$("$tmp/$mode/$exe")
        [ "$out" = "consumer: 42" ] || { echo "$mode $exe printed: $out"; exit 1; }
    done
done
echo "subproject: add_subdirectory and FetchContent consumers OK"
