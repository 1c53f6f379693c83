#!/bin/bash
# Runs inside the test VM for bench/bpf-lsm.sh (as tests/vm/checks.sh does
# for the tests): what the BPF LSM program costs, measured in the same VM
# with and without it, interleaved, 5 rounds each:
#   open   - vu-floor open: open(2) by path + close(2) of every regular
#            file of guest a's /usr, 3 passes (no file is marked: the cost
#            every process pays for the hooks);
#   vunify - vunify -n --attr-backend bpf over guests a and b (the dry run:
#            every file walked, stat'ed, opened, hashed; the same work with
#            and without the program).
# Each with the program loaded as by default and as by --no-barrier (no
# inode_permission hook). Prints "VMBENCH <what> <round> <without s>
# <with s> <with, no barrier s>" lines.
export PATH=/vu-vm/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ "$1" = 1 ] || exit 0
seconds() { # COMMAND...: wall seconds
  local s e
  s=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.4f\n", e - s }'
}
floor() { vu-floor open 3 /vservers/a/usr; }
unify() { vunify -n --attr-backend bpf a b; }
floor >/dev/null
unify >/dev/null # warm the page cache
for round in 1 2 3 4 5; do
  vattr-bpf -q unload
  f0=$(seconds floor)
  u0=$(seconds unify)
  vattr-bpf -q load || { echo "VMBENCH error vattr-bpf load failed"; exit 1; }
  f1=$(seconds floor)
  u1=$(seconds unify)
  vattr-bpf -q load --no-barrier
  f2=$(seconds floor)
  u2=$(seconds unify)
  echo "VMBENCH open $round $f0 $f1 $f2"
  echo "VMBENCH vunify $round $u0 $u1 $u2"
done
