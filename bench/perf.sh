#!/usr/bin/env bash
# The performance issue's benchmark: vunify, vhashify and vdu against
# rdfind, jdupes, fdupes, rmlint and util-linux hardlink on the 8-guest
# corpus (bench/make_corpus.sh), warm and cold page cache, interleaved
# rounds, medians, peak RSS, and the floors (bench/floor.cpp: a parallel
# statx walk, and open + read + XXH3 of every byte with as many threads as
# vunify's default). Tools that change trees run on fresh copies.
#
#   bench/perf.sh [--rounds R] [--no-cold] [--scale N [--scale-only]] [--out FILE]
#
# --scale N adds "find, warm" over N guests (copies of the 8); with
# --scale-only just that, appended to the raw measurements of an earlier run
# (so the 8-guest rounds and the scaled run can be taken separately).
# Results go to stdout and, as Markdown, to --out (default bench/results.md).
# Scope: for the peer table vunify runs with --no-default-excludes and
# --no-pkgmgmt so it sees what the peers see; the default-scope run is
# reported on its own line.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=3 cold=1 scale=0 scale_only=0 out=$here/bench/results.md
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --no-cold) cold=0; shift ;;
    --scale) scale=$2; shift 2 ;;
    --scale-only) scale_only=1; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds R] [--no-cold] [--scale N [--scale-only]] [--out FILE]" >&2; exit 2 ;;
  esac
done
# shellcheck source=bench/corpus-setup.sh
. "$here/bench/corpus-setup.sh" /var/tmp/vunify-bench-work
cleanup() { chattr -R -f -i "$work" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

guests=()
for g in g1 g2 g3 g4 g5 g6 g7 g8; do guests+=("$work/t/$g"); done
fresh() { # a pristine copy of the corpus at $work/t
  chattr -R -f -i "$work/t" 2>/dev/null || true
  rm -rf "$work/t"
  mkdir -p "$work/t"
  for g in g1 g2 g3 g4 g5 g6 g7 g8; do cp -a "$corpus/$g" "$work/t/"; done
  sync # the copy's writeback must not run into the timed run
}
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# Every measurement is appended to $raw as "label|mode|seconds|rss_kb" the
# moment it is taken; the table is made from that file at the end.
raw=${out%.md}.raw
[ $scale_only = 1 ] || : > "$raw"
record() { echo "$1|$2|${3% *}|${3#* }" >> "$raw"; }
# timed LABEL MODE CMD...: one timed run (no warm-up, no cache drop).
timed() {
  local label=$1 mode=$2; shift 2
  local tf
  tf=$(mktemp)
  (cd "$work" && /usr/bin/time -o "$tf" -f "%e %M" "$@" >/dev/null 2>&1) || true
  record "$label" "$mode" "$(tail -n 1 "$tf")"
  rm -f "$tf"
}
# run LABEL MODE CMD...: MODE warm (one untimed run first) or cold.
run() {
  local label=$1 mode=$2; shift 2
  if [ "$mode" = cold ]; then drop; else (cd "$work" && "$@" >/dev/null 2>&1) || true; fi
  timed "$label" "$mode" "$@"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "")}'; }

vunify_scope=(--no-default-excludes --no-pkgmgmt -q)
workers=$(( $(nproc) * 8 )); [ $workers -lt 8 ] && workers=8; [ $workers -gt 32 ] && workers=32
find_cmds() {
  case $1 in
    vunify) echo "$bin/vunify -n ${vunify_scope[*]} ${guests[*]}" ;;
    rdfind) echo "rdfind -dryrun true -makehardlinks true -outputname $work/rdfind.txt ${guests[*]}" ;;
    jdupes) echo "jdupes -r -q -m ${guests[*]}" ;;
    fdupes) echo "fdupes -r -q -m ${guests[*]}" ;;
    # Its summary to a file of ours: rmlint moves an existing output file
    # aside and writes a new one - given /dev/null, the host's /dev/null.
    rmlint) echo "rmlint -o summary:$work/rmlint.summary -T df ${guests[*]}" ;;
    hardlink) echo "hardlink -n -q ${guests[*]}" ;;
  esac
}
link_cmds() {
  case $1 in
    vunify) echo "$bin/vunify ${vunify_scope[*]} ${guests[*]}" ;;
    rdfind) echo "rdfind -makehardlinks true -outputname $work/rdfind.txt ${guests[*]}" ;;
    jdupes) echo "jdupes -r -q -L ${guests[*]}" ;;
    hardlink) echo "hardlink -q ${guests[*]}" ;;
  esac
}
modes=(warm)
[ $cold = 1 ] && modes+=(cold)
finders=(vunify rdfind jdupes fdupes rmlint hardlink)
linkers=(vunify rdfind jdupes hardlink)

fresh
files=$(find "${guests[@]}" -type f | wc -l)
bytes=$(find "${guests[@]}" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f", s}')
[ $scale_only = 1 ] && rounds_8=0 || rounds_8=$rounds
for r in $(seq 1 "$rounds_8"); do
  [ "$r" -gt 1 ] && fresh # each round's find sees unlinked trees (the link runs below change them)
  for mode in "${modes[@]}"; do
    # floors (bench/floor.cpp): as many threads as vunify's default workers
    run "floor: statx walk, $workers threads" $mode "$here/build/bench/vu-floor" statx "$workers" "${guests[@]}"
    run "floor: open+read+XXH3 of every byte, $workers threads" $mode "$here/build/bench/vu-floor" read "$workers" "${guests[@]}"
    for t in "${finders[@]}"; do
      # shellcheck disable=SC2046
      run "find/$t" $mode $(find_cmds $t)
    done
    run "vdu" $mode "$bin/vdu" --no-store --json "${guests[@]}"
    run "vunify default scope, dry run" $mode "$bin/vunify" -n -q "${guests[@]}"
  done
  for t in "${linkers[@]}"; do
    for mode in "${modes[@]}"; do
      fresh
      [ $mode = cold ] && drop
      # shellcheck disable=SC2046
      timed "link/$t" $mode $(link_cmds $t)
      # shellcheck disable=SC2046
      run "rerun/$t" $mode $(link_cmds $t)
    done
  done
  # The link floors: link + rename of every duplicate name, nothing else
  # (the tool times only that phase; its grouping is untimed), with the old
  # inodes freed inside rename, and freed by 4 closer threads beside it.
  fresh
  lf=$(cd "$work" && "$here/build/bench/vu-floor" link "$(nproc)" "${guests[@]}" | sed -n 's/^link: \([0-9.]*\) s.*/\1/p')
  [ -n "$lf" ] && record "floor: link+rename of every duplicate, $(nproc) threads" warm "$lf 0"
  fresh
  lf=$(cd "$work" && "$here/build/bench/vu-floor" link-reap "$(nproc)" "${guests[@]}" | sed -n 's/^link: \([0-9.]*\) s.*/\1/p')
  [ -n "$lf" ] && record "floor: link+rename of every duplicate, freed by 4 other threads" warm "$lf 0"
  # vhashify: first run, unchanged re-run, a ninth guest.
  for mode in "${modes[@]}"; do
    fresh
    [ $mode = cold ] && drop
    timed "vhashify first" $mode "$bin/vhashify" -q --no-default-excludes --no-pkgmgmt --destination="$work/t/.hash" "${guests[@]}"
    run "vhashify unchanged" $mode "$bin/vhashify" -q --no-default-excludes --no-pkgmgmt --destination="$work/t/.hash" "${guests[@]}"
    cp -a "$corpus/g4" "$work/t/g9"
    echo "ninth guest's own file" > "$work/t/g9/usr/share/ninth"
    [ $mode = cold ] && drop
    timed "vhashify ninth guest" $mode "$bin/vhashify" -q --no-default-excludes --no-pkgmgmt --destination="$work/t/.hash" "${guests[@]}" "$work/t/g9"
  done
done

if [ "$scale" -gt 8 ]; then
  fresh
  big=()
  for i in $(seq 1 "$scale"); do
    src=g$(( (i - 1) % 8 + 1 ))
    [ -e "$work/t/s$i" ] || cp -a "$corpus/$src" "$work/t/s$i"
    big+=("$work/t/s$i")
  done
  for r in $(seq 1 "$rounds"); do
    run "scale $scale/vunify" warm "$bin/vunify" -n "${vunify_scope[@]}" "${big[@]}"
    run "scale $scale/jdupes" warm jdupes -r -q -m "${big[@]}"
    run "scale $scale/hardlink" warm hardlink -n -q "${big[@]}"
    run "scale $scale/rdfind" warm rdfind -dryrun true -makehardlinks true -outputname "$work/rdfind.txt" "${big[@]}"
  done
fi

scale_note=""
[ "$scale" -gt 8 ] && scale_note=" Scale run: $scale guests (copies of the 8, about $(( files * scale / 8 )) files)."
fs_note=$(findmnt -no FSTYPE,SOURCE,OPTIONS -T "$work" | awk '{print $1 " on " $2 " (" $3 ")"}')
"$here/bench/perf-table.sh" "$raw" "Corpus: 8 guests, $files files, $(echo "$bytes / 1000000" | bc) MB; $(nproc) cores; $rounds rounds; $(uname -r); trees on $fs_note.$scale_note" | tee "$out"
