#!/usr/bin/env bash
# Builds the benchmark corpus of the performance issue: 8 real Debian 12
# guests made with debootstrap from the mirror the host's apt names, sharing
# one package cache, kept pristine under $VU_BENCH_CORPUS (default
# /var/tmp/vunify-bench-corpus). A few minutes and ~3 GB; re-running only
# builds what is missing.
#   g1 minbase            g5 the "important" variant (debootstrap's default)
#   g2 minbase + nginx    g6 minbase + openssh-server, rsyslog
#   g3 + postgresql       g7 minbase + build-essential
#   g4 + python3          g8 a copy of g2 with local edits
set -euo pipefail
corpus=${VU_BENCH_CORPUS:-/var/tmp/vunify-bench-corpus}
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
mkdir -p "$corpus/.cache"
build() { # name variant include
  local name=$1 variant=$2 include=$3
  [ -e "$corpus/$name.complete" ] && return 0
  rm -rf "$corpus/$name" "$corpus/$name.tmp"
  local args=(--cache-dir="$corpus/.cache")
  [ "$variant" != default ] && args+=(--variant="$variant")
  [ -n "$include" ] && args+=(--include="$include")
  echo "corpus: building $name ($variant ${include:-})"
  debootstrap "${args[@]}" bookworm "$corpus/$name.tmp" "$mirror" >"$corpus/$name.log" 2>&1
  mv "$corpus/$name.tmp" "$corpus/$name"
  touch "$corpus/$name.complete"
}
build g1 minbase ""
build g2 minbase nginx
build g3 minbase postgresql
build g4 minbase python3
build g5 default ""
build g6 minbase openssh-server,rsyslog
build g7 minbase build-essential
if [ ! -e "$corpus/g8.complete" ]; then
  rm -rf "$corpus/g8"
  cp -a "$corpus/g2" "$corpus/g8"
  # Local edits: configuration and a few changed documentation files.
  echo "# local change" >> "$corpus/g8/etc/nginx/nginx.conf"
  find "$corpus/g8/usr/share/doc" -name copyright | head -n 200 |
    while read -r f; do echo "local edit" >> "$f"; done || true
  touch "$corpus/g8.complete"
fi
echo "corpus: $corpus ($(du -sh --total "$corpus"/g? | tail -n 1 | cut -f1))"
