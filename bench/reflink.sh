#!/usr/bin/env bash
# vunify --reflink against duperemove -dr, jdupes -rB and util-linux
# hardlink --reflink on the 8-guest corpus (bench/make_corpus.sh), on a
# btrfs and an XFS loop image: time with a cold page cache (every tool
# reads from disk), peak RSS, and the disk each one frees (df before and
# after, after sync). Every run gets a fresh file system with a fresh copy
# of the corpus; rounds interleave the tools (order rotated); medians.
# vunify's re-run (nothing left to share) is timed too, cold.
#
#   bench/reflink.sh [--rounds R] [--fs "btrfs xfs"] [--out FILE] [--table-only]
#
# --table-only makes the tables again from the raw measurements.
# Results go to stdout and, as Markdown, to --out (default
# bench/reflink-results.md; the raw measurements beside it, .raw).
# Scope: vunify runs with --no-default-excludes --no-pkgmgmt, so it sees
# what the peers see.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=3 filesystems="btrfs xfs" out=$here/bench/reflink-results.md table_only=0
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --fs) filesystems=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --table-only) table_only=1; shift ;;
    *) echo "usage: $0 [--rounds R] [--fs \"btrfs xfs\"] [--out FILE] [--table-only]" >&2; exit 2 ;;
  esac
done
corpus=${VU_BENCH_CORPUS:-/var/tmp/vunify-bench-corpus}
raw=${out%.md}.raw
tools=(vunify duperemove jdupes hardlink)
if [ $table_only = 0 ]; then
# shellcheck source=bench/corpus-setup.sh
. "$here/bench/corpus-setup.sh" /var/tmp/vunify-bench-reflink
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
  umount "$mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

guests=()
for g in g1 g2 g3 g4 g5 g6 g7 g8; do guests+=("$mnt/$g"); done
fresh() { # fresh FS: a new file system of that type with the corpus on it
  umount "$mnt" 2>/dev/null || true
  rm -f "$work/img"
  truncate -s 8G "$work/img"
  "mkfs.$1" -q -f "$work/img" >/dev/null 2>&1
  mount -o loop "$work/img" "$mnt" # the loop device goes with the umount
  for g in g1 g2 g3 g4 g5 g6 g7 g8; do cp -a "$corpus/$g" "$mnt/"; done
  sync
}
used() { sync -f "$mnt"; df --output=used -B1 "$mnt" | tail -n 1 | tr -d ' '; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

cmd_of() {
  case $1 in
    vunify) echo "$bin/vunify --reflink --no-default-excludes --no-pkgmgmt -q ${guests[*]}" ;;
    duperemove) echo "duperemove -dr -q ${guests[*]}" ;;
    jdupes) echo "jdupes -r -q -B ${guests[*]}" ;;
    hardlink) echo "hardlink -q --reflink=always ${guests[*]}" ;;
  esac
}

# "fs|tool|seconds|rss_kb|freed_bytes" per measurement, appended at once.
: > "$raw"
timed() { # timed FS LABEL CMD...
  local fs=$1 label=$2; shift 2
  local tf before after
  tf=$(mktemp)
  before=$(used)
  drop
  /usr/bin/time -o "$tf" -f "%e %M" "$@" >/dev/null 2>&1 || echo "$label on $fs failed" >&2
  after=$(used)
  read -r secs rss < <(tail -n 1 "$tf")
  echo "$fs|$label|$secs|$rss|$((before - after))" | tee -a "$raw"
  rm -f "$tf"
}

for r in $(seq 1 "$rounds"); do
  for fs in $filesystems; do
    for k in 0 1 2 3; do
      t=${tools[$(( (k + r) % 4 ))]}
      fresh "$fs"
      # shellcheck disable=SC2046 # the command's words
      timed "$fs" "$t" $(cmd_of "$t")
      if [ "$t" = vunify ]; then
        # shellcheck disable=SC2046
        timed "$fs" "vunify re-run" $(cmd_of vunify)
      fi
    done
  done
done
umount "$mnt"
fi

median() { sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "")}'; }
field() { # field FS LABEL N: the medians of column N
  awk -F'|' -v fs="$1" -v l="$2" -v n="$3" '$1==fs && $2==l {print $n}' "$raw" | median
}
{
  echo "Corpus: 8 guests, $(du -sch --apparent-size "$corpus"/g? | tail -n 1 | cut -f1) apparent; $(nproc) cores; $rounds rounds; $(uname -r); cold page cache; a fresh file system per run."
  echo
  echo "| fs | tool | median s | peak RSS MB | freed MiB | time / vunify |"
  echo "|---|---|---|---|---|---|"
  for fs in $filesystems; do
    v=$(field "$fs" vunify 3)
    for t in "${tools[@]}" "vunify re-run"; do
      s=$(field "$fs" "$t" 3); m=$(field "$fs" "$t" 4); f=$(field "$fs" "$t" 5)
      printf '| %s | %s | %.2f | %.0f | %.1f | %.2f |\n' "$fs" "$t" "$s" "$(echo "$m/1024" | bc -l)" \
        "$(echo "$f/1048576" | bc -l)" "$(echo "$s/$v" | bc -l)"
    done
  done
  echo
  echo "| fs | vunify s | fastest peer | peer s | vunify / peer | target | met | vunify freed MiB | most freed by a peer MiB | met |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for fs in $filesystems; do
    v=$(field "$fs" vunify 3); vf=$(field "$fs" vunify 5)
    best="" bs=1000000 bf=0
    for t in duperemove jdupes hardlink; do
      s=$(field "$fs" "$t" 3); f=$(field "$fs" "$t" 5)
      if [ "$(echo "$s < $bs" | bc -l)" = 1 ]; then best=$t bs=$s; fi
      if [ "$(echo "$f > $bf" | bc -l)" = 1 ]; then bf=$f; fi
    done
    ratio=$(echo "$v/$bs" | bc -l)
    # Freed "equal to the best": within 1 % (file-system metadata moves).
    printf '| %s | %.2f | %s | %.2f | %.2f | 0.5 | %s | %.1f | %.1f | %s |\n' "$fs" "$v" "$best" "$bs" \
      "$ratio" "$([ "$(echo "$ratio <= 0.5" | bc -l)" = 1 ] && echo yes || echo no)" \
      "$(echo "$vf/1048576" | bc -l)" "$(echo "$bf/1048576" | bc -l)" \
      "$([ "$(echo "$vf >= 0.99 * $bf" | bc -l)" = 1 ] && echo yes || echo no)"
  done
} | tee "$out"
