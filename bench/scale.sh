#!/usr/bin/env bash
# How a run's cost grows with the number of guests: vunify's dry run
# (find duplicates; with --tool vhashify, vhashify's: hash every file for
# a store) over 8, 40 and 100 guests - copies of the 8 corpus guests
# (bench/make_corpus.sh) - with no memory limit and with --memory-limit,
# warm (one untimed run first): seconds, peak RSS, and both per file. The
# copies take about 4 GB per 10 guests on disk.
#
#   bench/scale.sh [--tool vunify|vhashify] [--guests "8 40 100"] [--limit SIZE] [--out FILE]
#
# Results to stdout and, as Markdown, to --out (default
# bench/scale-results.md, bench/scale-vhashify-results.md for vhashify).
# Scope: --no-default-excludes --no-pkgmgmt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
sizes="8 40 100" limit=32M out="" tool=vunify
while [ $# -gt 0 ]; do
  case $1 in
    --tool) tool=$2; shift 2 ;;
    --guests) sizes=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--tool vunify|vhashify] [--guests \"8 40 100\"] [--limit SIZE] [--out FILE]" >&2; exit 2 ;;
  esac
done
case $tool in
  vunify) out=${out:-$here/bench/scale-results.md} ;;
  vhashify) out=${out:-$here/bench/scale-vhashify-results.md} ;;
  *) echo "$0: --tool is vunify or vhashify" >&2; exit 2 ;;
esac
# shellcheck source=bench/corpus-setup.sh
. "$here/bench/corpus-setup.sh" /var/tmp/vunify-bench-scale
trap 'rm -rf "$work"' EXIT

rows=()
for n in $sizes; do
  for ((i = 1; i <= n; i++)); do # guest i is a copy of corpus guest ((i-1) % 8) + 1
    [ -d "$work/s$i" ] || cp -a "$corpus/g$(( (i - 1) % 8 + 1 ))" "$work/s$i"
  done
  guests=()
  for ((i = 1; i <= n; i++)); do guests+=("$work/s$i"); done
  for lim in 0 "$limit"; do
    cmd=("$bin/$tool" -n --json --no-default-excludes --no-pkgmgmt --memory-limit "$lim" "${guests[@]}")
    # vhashify's dry run creates no store (nor cache): a new store's first run.
    [ "$tool" = vhashify ] && cmd+=(--destination "$work/.hash")
    "${cmd[@]}" >/dev/null 2>&1 || true # warm-up
    tf=$(mktemp)
    /usr/bin/time -o "$tf" -f "%e %M" "${cmd[@]}" > "$work/report.json" 2>/dev/null || true
    read -r secs rss < <(tail -n 1 "$tf")
    rm -f "$tf"
    files=$(python3 -c "import json;print(json.load(open('$work/report.json'))['files_scanned'])")
    parts=$(python3 -c "import json;print(json.load(open('$work/report.json'))['parts'])")
    row=$(printf '| %s | %s | %s | %s | %.2f | %.1f | %.1f | %.0f |' "$n" "$files" "$lim" "$parts" \
      "$secs" "$(echo "$rss/1024" | bc -l)" "$(echo "$secs*1000000/$files" | bc -l)" \
      "$(echo "$rss*1024/$files" | bc -l)")
    echo "$row"
    rows+=("$row")
  done
done
{
  echo "$tool -n over copies of the 8 corpus guests; $(nproc) cores; $(uname -r); warm (one run first)."
  echo
  echo "| guests | files | --memory-limit | parts | s | peak RSS MB | us per file | RSS bytes per file |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} > "$out"
