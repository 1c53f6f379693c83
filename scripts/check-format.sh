#!/usr/bin/env bash
# Every C++ source as clang-format 14 lays it out (.clang-format); run as
# the test Source.Format. Exit 77 (a skip) without clang-format-14.
# To fix a failure: clang-format-14 -i <file>.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format-14 >/dev/null; then
  echo "check-format: clang-format-14 not installed (apt-get install clang-format-14)" >&2
  exit 77
fi
mapfile -t files < <(find kernel core unify pkgmgmt barrier tools tests bench \
  -name '*.cpp' -o -name '*.h' | sort)
clang-format-14 --dry-run --Werror "${files[@]}"
echo "check-format: ${#files[@]} files laid out as .clang-format says"
