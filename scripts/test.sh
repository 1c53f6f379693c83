#!/usr/bin/env bash
# README command (b): installs dependencies and runs the whole test suite
# twice - against the GCC build with -Werror, and against a clang build with
# AddressSanitizer and UndefinedBehaviorSanitizer on every target, the
# programs under test included (any report fails the run) - plus every
# libFuzzer target for 5 s. Real debootstrapped guests and RPM databases
# are built once and cached under ${VU_TEST_CACHE:-/var/tmp/vunify-test-cache}.
# Needs root: the tests set immutable flags, mount file systems, chroot.
# Extra arguments go to both ctest runs (e.g. -R Pipeline).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

./scripts/build.sh -DVU_WERROR=ON -DVU_BUILD_TESTS=ON
# Three tests at a time on two cores: most of their time is copying guest
# trees, waiting for kills and starting processes.
ctest --test-dir build --output-on-failure -j3 --timeout 1800 "$@"

if command -v clang++ >/dev/null; then
  ./scripts/build.sh --sanitize
  # Every fuzz target briefly (scripts/fuzz.sh alone runs 10M executions).
  ./scripts/fuzz.sh --seconds "${VU_FUZZ_SECONDS:-5}"
  echo "sanitizers: the whole suite against build-san (ASan + UBSan)"
  # tests/lsan.supp names the one leak inside a library (librpm's sqlite
  # handle on a refused database); everything else fails the run.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0" \
    ctest --test-dir build-san --output-on-failure -j3 --timeout 1800 "$@"
else
  echo "sanitizers and fuzzing: skipped (clang++ not installed)"
fi
