#!/usr/bin/env bash
# The bpf attribute back end's overhead (issue target: at most 3 %): boots
# the test VM once (tests/vm/run.sh: Debian 12's kernel, two bookworm
# guests) with bench/bpf-lsm-vm.sh as its script, which times, with and
# without the BPF LSM program loaded, interleaved over 5 rounds:
#   - open + close by path of every file of a guest's /usr (the hooks every
#     process pays: file_open, and inode_permission on each path component);
#   - vunify -n over the two guests (walk, stat, open, hash);
# each also with the program loaded without the barrier's hook
# (vattr-bpf load --no-barrier: no inode_permission).
# Prints the medians and their ratio, and writes bench/bpf-lsm-results.md.
# Run after a build (scripts/build.sh); needs root and what the VM tests
# need. Under software emulation (TCG) the absolute times are those of an
# emulated CPU; the ratio is what this measures.
#
#   bench/bpf-lsm.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "${1:-$here/../build}")
out=$(mktemp)
trap 'rm -f "$out" "$out".boot*.log' EXIT
vm=$(VU_VM_CHECKS=$here/bpf-lsm-vm.sh VU_VM_EXTRA=$build/bench/vu-floor VU_VM_BOOTS=1 \
  "$here/../tests/vm/run.sh" "$build" "$out" || true)
if grep -q '^VMSKIP' "$out"; then
  cat "$out"
  exit 0
fi
grep -ao 'VMBENCH .*' "$out.boot1.log" >"$out.bench" || true
if ! grep -q 'VMBENCH vunify 5' "$out.bench"; then
  echo "bpf-lsm: the VM did not finish the benchmark; its console:" >&2
  tail -30 "$out.boot1.log" >&2
  exit 1
fi
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
report() { # WHAT: medians without, with, with --no-barrier, and the two ratios
  local a b c
  a=$(awk -v w="$1" '$2 == w {print $4}' "$out.bench" | median)
  b=$(awk -v w="$1" '$2 == w {print $5}' "$out.bench" | median)
  c=$(awk -v w="$1" '$2 == w {print $6}' "$out.bench" | median)
  echo "$a $b $c $(echo "scale=3; $b / $a" | bc) $(echo "scale=3; $c / $a" | bc)"
}
read -r o0 o1 o2 or1 or2 <<<"$(report open)"
read -r u0 u1 u2 ur1 ur2 <<<"$(report vunify)"
accel=$(grep -o 'accel [a-z]*' <<<"$vm" | head -1 || true)
{
  echo "# bpf attribute back end: overhead of the BPF LSM program"
  echo
  echo "bench/bpf-lsm.sh, $(date -u +%Y-%m-%d), Debian 12's kernel in qemu ($accel) on this host;"
  echo "medians of 5 interleaved rounds; target: ratio at most 1.03."
  echo
  echo "| what | without the program (s) | loaded (s) | ratio | loaded --no-barrier (s) | ratio |"
  echo "|---|---|---|---|---|---|"
  echo "| open + close by path, every file of a guest's /usr, 3 passes | $o0 | $o1 | $or1 | $o2 | $or2 |"
  echo "| vunify -n over two bookworm guests | $u0 | $u1 | $ur1 | $u2 | $ur2 |"
} >"$here/bpf-lsm-results.md"
cat "$here/bpf-lsm-results.md"
