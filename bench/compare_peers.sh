#!/usr/bin/env bash
# Compares "find duplicates" (no changes) of vunify with rdfind, jdupes,
# fdupes, rmlint and util-linux hardlink on the same guest trees, warm page
# cache, interleaved rounds, and prints median times and each peer's ratio
# to vunify measured in the same run.
#
#   bench/compare_peers.sh [--guests N] [--rounds R] [--corpus DIR]
#
# Corpus: N copies of a minbase bookworm guest built by debootstrap (cached
# with the tests' cache, ${VU_TEST_CACHE:-/var/tmp/vunify-test-cache}); every
# copy after the first gets a few changed files, so duplicates are real
# but not total. --corpus DIR uses DIR/* as guests instead. The issue on
# performance defines the larger 8-guest corpus and the targets.
# Scope: every tool sees the same files: vunify runs with
# --no-default-excludes so it also looks at /etc and /var like the peers.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
guests=4 rounds=3 corpus=""
while [ $# -gt 0 ]; do
  case $1 in
    --guests) guests=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --corpus) corpus=$2; shift 2 ;;
    *) echo "usage: $0 [--guests N] [--rounds R] [--corpus DIR]" >&2; exit 2 ;;
  esac
done
"$here/scripts/install-deps.sh" --bench >/dev/null
"$here/scripts/build.sh" >/dev/null
vunify=$here/build/tools/vunify

work=$(mktemp -d /tmp/vunify-bench.XXXXXX)
trap 'chattr -R -f -i "$work" 2>/dev/null; rm -rf "$work"' EXIT
if [ -z "$corpus" ]; then
  cache=${VU_TEST_CACHE:-/var/tmp/vunify-test-cache}
  base=$cache/bookworm-minbase
  if [ ! -e "$base.complete" ]; then
    mkdir -p "$cache"
    debootstrap --variant=minbase bookworm "$base.tmp" >/dev/null
    mv "$base.tmp" "$base" && touch "$base.complete"
  fi
  corpus=$work/corpus
  mkdir -p "$corpus"
  for i in $(seq 1 "$guests"); do
    cp -a "$base" "$corpus/g$i"
    if [ "$i" -gt 1 ]; then
      find "$corpus/g$i/usr/share/doc" -type f -name copyright | head -n $((i * 20)) |
        while read -r f; do echo "local change $i" >> "$f"; done || true
    fi
  done
fi
mapfile -t dirs < <(find "$corpus" -mindepth 1 -maxdepth 1 -type d | sort)
files=$(find "${dirs[@]}" -type f | wc -l)
bytes=$(du -scb "${dirs[@]}" | tail -n 1 | cut -f1)

declare -A cmds
cmds[vunify]="$vunify --dry-run --no-default-excludes -q ${dirs[*]}"
command -v rdfind >/dev/null && cmds[rdfind]="rdfind -dryrun true -makehardlinks true -outputname $work/rdfind.txt ${dirs[*]}"
command -v jdupes >/dev/null && cmds[jdupes]="jdupes -r -q -m ${dirs[*]}"
command -v fdupes >/dev/null && cmds[fdupes]="fdupes -r -q -m ${dirs[*]}"
# rmlint moves an existing output file aside (given /dev/null, the host's):
# its summary goes to a file of ours.
command -v rmlint >/dev/null && cmds[rmlint]="rmlint -o summary:$work/rmlint.summary -T df ${dirs[*]}"
command -v hardlink >/dev/null && cmds[hardlink]="hardlink -n -q ${dirs[*]}"

declare -A times
for r in $(seq 1 "$rounds"); do
  for tool in "${!cmds[@]}"; do
    (cd "$work" && eval "${cmds[$tool]}" >/dev/null 2>&1) || true # warm-up round 0 effect
    start=$(date +%s.%N)
    (cd "$work" && eval "${cmds[$tool]}" >/dev/null 2>&1) || true
    end=$(date +%s.%N)
    times[$tool]+="$(echo "$end - $start" | bc) "
  done
done

# vdu against a bare metadata walk of the same trees (issue target: <= 1.2x).
vdu_bin=$here/build/tools/vdu
declare -A walk
for r in $(seq 1 "$rounds"); do
  for what in find vdu; do
    if [ $what = find ]; then cmd=(find "${dirs[@]}" -type f -printf '%s\n'); else cmd=("$vdu_bin" --no-store --json "${dirs[@]}"); fi
    "${cmd[@]}" >/dev/null 2>&1 || true
    start=$(date +%s.%N)
    "${cmd[@]}" >/dev/null 2>&1 || true
    end=$(date +%s.%N)
    walk[$what]+="$(echo "$end - $start" | bc) "
  done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
v=$(echo "${times[vunify]}" | median)
echo "corpus: ${#dirs[@]} guests, $files files, $((bytes / 1048576)) MiB; $rounds rounds, warm cache, $(nproc) cores"
printf '%-10s %10s %14s\n' tool "median s" "ratio to vunify"
for tool in vunify rdfind jdupes fdupes rmlint hardlink; do
  [ -n "${times[$tool]:-}" ] || continue
  m=$(echo "${times[$tool]}" | median)
  printf '%-10s %10.3f %14.2f\n' "$tool" "$m" "$(echo "$m / $v" | bc -l)"
done
wf=$(echo "${walk[find]}" | median)
wv=$(echo "${walk[vdu]}" | median)
echo
printf '%-24s %10.3f\n' "find -type f (metadata)" "$wf"
printf '%-24s %10.3f   ratio to the walk: %.2f\n' "vdu" "$wv" "$(echo "$wv / $wf" | bc -l)"

# vhashify: first run on a copy of the corpus, then unchanged re-runs
# against a bare metadata walk of the same trees (issue target: <= 1.2x).
vh=$here/build/tools/vhashify
copy=$work/vh
mkdir -p "$copy"
for d in "${dirs[@]}"; do cp -a "$d" "$copy/"; done
mapfile -t vdirs < <(find "$copy" -mindepth 1 -maxdepth 1 -type d ! -name .hash | sort)
start=$(date +%s.%N)
"$vh" -q --no-default-excludes --destination="$copy/.hash" "${vdirs[@]}"
end=$(date +%s.%N)
first=$(echo "$end - $start" | bc)
declare -A re
for r in $(seq 1 "$rounds"); do
  for what in find vhashify; do
    if [ $what = find ]; then cmd=(find "${vdirs[@]}" -type f -printf '%s\n'); else cmd=("$vh" -q --no-default-excludes --destination="$copy/.hash" "${vdirs[@]}"); fi
    start=$(date +%s.%N)
    "${cmd[@]}" >/dev/null 2>&1 || true
    end=$(date +%s.%N)
    re[$what]+="$(echo "$end - $start" | bc) "
  done
done
rf=$(echo "${re[find]}" | median)
rv=$(echo "${re[vhashify]}" | median)
echo
printf '%-24s %10.3f\n' "vhashify, first run" "$first"
printf '%-24s %10.3f\n' "find -type f (metadata)" "$rf"
printf '%-24s %10.3f   ratio to the walk: %.2f\n' "vhashify, unchanged" "$rv" "$(echo "$rv / $rf" | bc -l)"
