#!/usr/bin/env bash
# README command (b): installs dependencies, builds with -Werror and runs the
# whole test suite: a 30-second libFuzzer smoke run of the dpkg status parser
# (when clang is available), then every unit and integration test through
# ctest (incl. real debootstrapped guests and RPM databases, cached under
# ${VU_TEST_CACHE:-/var/tmp/vunify-test-cache}).
# Needs root: the tests set immutable flags, mount a ramfs, chroot.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh -DVU_WERROR=ON -DVU_BUILD_TESTS=ON

if command -v clang++ >/dev/null; then
  cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DVU_BUILD_FUZZERS=ON -DVU_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-fuzz -j"$(nproc)" --target fuzz_dpkg_status >/dev/null
  mkdir -p build-fuzz/fuzz-corpus
  echo "fuzz: dpkg status parser, 30 s"
  build-fuzz/tests/fuzz_dpkg_status -max_total_time=30 -rss_limit_mb=1024 \
    -artifact_prefix=build-fuzz/ build-fuzz/fuzz-corpus tests/fuzz/corpus/dpkg_status 2>&1 |
    grep -E "^Done|ERROR|SUMMARY" || true
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "fuzz: failed, see build-fuzz/crash-*" >&2; exit 1; }
else
  echo "fuzz: skipped (clang++ not installed)"
fi

ctest --test-dir build --output-on-failure -j2 --timeout 1800 "$@"
