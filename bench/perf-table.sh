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
