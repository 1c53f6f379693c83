#!/usr/bin/env bash
# README command (b): installs dependencies, builds with -Werror and runs the
# whole test suite (unit and integration tests, incl. real debootstrapped
# guests cached under ${VU_TEST_CACHE:-/var/tmp/vunify-test-cache}).
# Needs root: the tests set immutable flags, mount a ramfs, chroot.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh -DVU_WERROR=ON -DVU_BUILD_TESTS=ON
ctest --test-dir build --output-on-failure -j2 --timeout 1800 "$@"
