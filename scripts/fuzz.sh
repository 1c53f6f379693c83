#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each over its
# corpus in tests/fuzz/corpus/<name>.
#
#   scripts/fuzz.sh                  every target for 10,000,000 executions;
#                                    new inputs that add coverage are merged
#                                    into the corpus in the repository
#   scripts/fuzz.sh --seconds 5      every target for 5 s, one per core at a
#                                    time (what CI runs); the repository's
#                                    corpus is only read
#   scripts/fuzz.sh --runs N [name...]
#
# Exits non-zero as soon as a target crashes, hangs (10 s per input) or
# reports: the failing input is in build-san/crash-<name>-*.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=10000000
seconds=""
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if ! command -v clang++ >/dev/null; then
  echo "fuzz: skipped (clang++ not installed)"
  exit 0
fi
all=(dpkg_status exclude config hash_cache store_names conffiles proc_locks run_state package_plans passwd)
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

# The sanitizer build (build-san, shared with scripts/test.sh): clang,
# ASan and UBSan (no recovery) on everything, coverage for the fuzzers.
./scripts/build.sh --sanitize --target $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null

# One target: its run, then (long runs only) the merge into the corpus.
fuzz_one() {
  local name="$1"
  local scratch="build-san/corpus/$name"
  mkdir -p "$scratch"
  local log="build-san/fuzz-$name.log"
  local limit=(-runs="$runs")
  [ -z "$seconds" ] || limit=(-max_total_time="$seconds")
  # The scratch directory first: libFuzzer writes new inputs there, the
  # repository's corpus is read.
  if ! "build-san/tests/fuzz_$name" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="build-san/crash-$name-" "$scratch" "tests/fuzz/corpus/$name" >"$log" 2>&1; then
    echo "fuzz: $name FAILED; the input is build-san/crash-$name-*; log: $log" >&2
    grep -E "ERROR|SUMMARY|==[0-9]+==|Test unit written" "$log" | head -20 >&2 || true
    return 1
  fi
  echo "fuzz: $name: $(grep -E '^Done' "$log" || tail -1 "$log")"
  if [ -z "$seconds" ]; then
    # A long run keeps what it found: merged (minimised) into the repository.
    "build-san/tests/fuzz_$name" -merge=1 "tests/fuzz/corpus/$name" "$scratch" >>"$log" 2>&1
  fi
}

# Timed runs (CI) go one per core at a time; counted runs one after the
# other.
jobs=1
[ -z "$seconds" ] || jobs="$(nproc)"
pids=()
for name in "${targets[@]}"; do
  fuzz_one "$name" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || { kill "${pids[@]}" 2>/dev/null || true; exit 1; }
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do
  wait "$pid" || { kill "${pids[@]}" 2>/dev/null || true; exit 1; }
done
