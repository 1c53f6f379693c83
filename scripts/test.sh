#!/usr/bin/env bash
# README command (b): installs dependencies and runs the whole test suite
# twice - against the GCC build with -Werror, and against a clang build with
# AddressSanitizer and UndefinedBehaviorSanitizer on every target, the
# programs under test included (any report fails the run) - plus every
# libFuzzer target for 5 s. Real debootstrapped guests and RPM databases
# are built once and cached under ${VU_TEST_CACHE:-/var/tmp/vunify-test-cache}.
# Needs root: the tests set immutable flags, mount file systems, chroot.
# Extra arguments go to both ctest runs (e.g. -R Pipeline).
#
# Time on two cores is mostly compiling: the GCC build here is -O2 without
# debug information (a third less compile time than the demo's
# RelWithDebInfo) and otherwise the Debian package's build, the sanitizer build compiles while the GCC build's
# tests run (they mostly wait for copies, kills and processes), and the
# fuzz targets run beside the sanitizer build's tests. Each phase prints
# how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."

phase_start=$SECONDS
phase_done() {
  echo "test.sh: $1 took $((SECONDS - phase_start)) s (total $SECONDS s)"
  phase_start=$SECONDS
}

./scripts/install-deps.sh
phase_done "installing dependencies"

# Configured as the Debian package's build (prefix /usr, Debian's
# hardening flags; -g0: no debug information), so the programs tested are
# the ones tests/package/run.sh packages and installs.
mapfile -t deb_args < <(./scripts/deb-cmake-args -g0)
./scripts/build.sh -DVU_WERROR=ON -DVU_BUILD_TESTS=ON "${deb_args[@]}"
phase_done "the GCC build"

san_pid=""
if command -v clang++ >/dev/null; then
  mkdir -p build-san
  nice -n 10 ./scripts/build.sh --sanitize >build-san/build.log 2>&1 &
  san_pid=$!
fi
# Three tests at a time on two cores: most of their time is copying guest
# trees, waiting for kills and starting processes.
gcc_status=0
ctest --test-dir build --output-on-failure -j3 --timeout 1800 "$@" || gcc_status=$?
phase_done "the GCC build's tests"
if [ -z "$san_pid" ]; then
  echo "sanitizers and fuzzing: skipped (clang++ not installed)"
  exit "$gcc_status"
fi
if ! wait "$san_pid"; then
  cat build-san/build.log
  echo "test.sh: the sanitizer build failed" >&2
  exit 1
fi
phase_done "the rest of the sanitizer build"
[ "$gcc_status" = 0 ] || exit "$gcc_status"

# Every fuzz target briefly (scripts/fuzz.sh alone runs 10M executions),
# beside the sanitizer build's tests (which mostly wait).
./scripts/fuzz.sh --seconds "${VU_FUZZ_SECONDS:-5}" >build-san/fuzz.log 2>&1 &
fuzz_pid=$!
echo "sanitizers: the suite against build-san (ASan + UBSan)"
# Not the kill -9 tests (a killed program's sanitizer never reports, and
# they take four of the run's minutes under ASan; vapt-get's and vrpm's
# too), the five-guest update (the same code as the two-guest one, five
# times) nor the debootstrap of a new guest (debootstrap's time): the GCC
# build ran them.
# tests/lsan.supp names the one leak inside a library (librpm's sqlite
# handle on a refused database); everything else fails the run.
san_status=0
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0" \
  ctest --test-dir build-san --output-on-failure -j4 --timeout 1800 \
  -E '^(KillNine\.|Reflink\.KillNine|VServer\.BuildDebootstrapsAGuest|VAptGet\.KillNine|VRpm\.KillNine|VAptGet\.AnUpdateOfFiveGuests)' \
  "$@" || san_status=$?
fuzz_status=0
wait "$fuzz_pid" || fuzz_status=$?
cat build-san/fuzz.log
phase_done "the sanitizer build's tests and fuzzing"
[ "$fuzz_status" = 0 ] || { echo "test.sh: a fuzz target failed" >&2; exit 1; }
exit "$san_status"
