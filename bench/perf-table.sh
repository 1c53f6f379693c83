#!/usr/bin/env bash
# Makes the Markdown table of bench/perf.sh from its raw file
# ("label|mode|seconds|rss_kb" per line): medians per (label, mode), peak
# RSS, and the ratio to vunify's figure for the same kind of run.
#   bench/perf-table.sh RAW [HEADER]
set -euo pipefail
raw=$1
[ -n "${2:-}" ] && { echo "$2"; echo; }
echo "| run | cache | median s | peak RSS MB | ratio to vunify |"
echo "|---|---|---|---|---|"
awk -F'|' '
  { key = $1 "|" $2; n[key]++; t[key, n[key]] = $3 + 0; if ($4 + 0 > r[key]) r[key] = $4 + 0; order[key] = 1 }
  function median(k,   i, j, m, a, tmp) {
    m = n[k]
    for (i = 1; i <= m; i++) a[i] = t[k, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { tmp = a[i]; a[i] = a[j]; a[j] = tmp }
    return a[int((m + 1) / 2)]
  }
  END {
    for (k in order) {
      split(k, p, "|"); label = p[1]; mode = p[2]
      base = ""
      if (label ~ /^(find|link|rerun)\//) { split(label, q, "/"); base = q[1] "/vunify|" mode }
      else if (label ~ /^scale /) { split(label, q, "/"); base = q[1] "/vunify|" mode }
      ratio = ""
      if (base != "" && (base in order) && median(base) > 0) ratio = sprintf("%.2f", median(k) / median(base))
      printf "| %s | %s | %.2f | %d | %s |\n", label, mode, median(k), r[k] / 1024, ratio
    }
  }' "$raw" | sort

# The targets: vunify's median divided by the fastest peer's.
echo
echo "| target | cache | vunify s | fastest peer | peer s | vunify / peer | target | met |"
echo "|---|---|---|---|---|---|---|---|"
awk -F'|' '
  { key = $1 "|" $2; n[key]++; t[key, n[key]] = $3 + 0; order[key] = 1
    if ($1 ~ /^(find|link|rerun)\/vunify$/ && $4 + 0 > rss) rss = $4 + 0 }
  function median(k,   i, j, m, a, tmp) {
    m = n[k]
    for (i = 1; i <= m; i++) a[i] = t[k, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { tmp = a[i]; a[i] = a[j]; a[j] = tmp }
    return a[int((m + 1) / 2)]
  }
  function row(kind, mode, goal,   k, best, bname, split_, v, parts) {
    if (!((kind "/vunify|" mode) in order)) return
    v = median(kind "/vunify|" mode); best = -1
    for (k in order) {
      split(k, parts, "|")
      if (parts[2] != mode || index(parts[1], kind "/") != 1 || parts[1] == kind "/vunify") continue
      if (best < 0 || median(k) < best) { best = median(k); bname = substr(parts[1], length(kind) + 2) }
    }
    if (best <= 0) return
    printf "| %s | %s | %.2f | %s | %.2f | %.2f | %.1f | %s |\n", kind, mode, v, bname, best, v / best, goal, (v / best <= goal ? "yes" : "no")
  }
  END {
    row("find", "warm", 0.3); row("find", "cold", 0.4)
    row("link", "warm", 0.3); row("link", "cold", 0.4)
    row("rerun", "warm", 0.5); row("rerun", "cold", 0.5)
    for (k in order) if (k ~ /^scale [0-9]+\/vunify\|warm$/) { split(k, p, "/"); row(p[1], "warm", 0.2) }
    # The first vhashify run against the vunify link run of the same guests.
    for (m = 1; m <= 2; m++) {
      mode = (m == 1 ? "warm" : "cold")
      if (!(("vhashify first|" mode) in order) || !(("link/vunify|" mode) in order)) continue
      v = median("vhashify first|" mode); l = median("link/vunify|" mode)
      printf "| vhashify first run | %s | %.2f | vunify link run | %.2f | %.2f | 1.3 | %s |\n", mode, v, l, v / l, (v / l <= 1.3 ? "yes" : "no")
    }
    if (rss > 0)
      printf "| peak RSS, find/link/rerun | both | %.1f MB | | | | 32 MB | %s |\n", rss / 1024, (rss / 1024 <= 32 ? "yes" : "no")
  }' "$raw"
