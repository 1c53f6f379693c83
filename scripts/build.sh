#!/usr/bin/env bash
# Configures and builds vunify.
#
#   scripts/build.sh [cmake options]        ./build: GCC, Release with debug info
#   scripts/build.sh --sanitize [--target T...]
#                                           ./build-san: clang with ASan and UBSan
#                                           (no recovery) on every target, tools
#                                           included, and the fuzz targets
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  --sanitize)
    shift
    # -O1 and line tables only, as the sanitizers' documentation suggests:
    # stack traces keep file and line, compiling takes less time.
    cmake -S . -B build-san -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVU_BUILD_TESTS=ON -DVU_BUILD_FUZZERS=ON \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
      -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
      "-DVU_SANITIZE=address;undefined" >/dev/null
    cmake --build build-san -j"$(nproc)" "$@"
    ;;
  *)
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build build -j"$(nproc)"
    ;;
esac
