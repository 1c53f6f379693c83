#!/usr/bin/env bash
# Prints the path of a tar of a fresh minbase bookworm root made with
# mmdebstrap (acl, attr and e2fsprogs added), cached in CACHE_DIR; made once,
# under a lock, so the VM and package tests can ask at the same time.
#
#   tests/support/bookworm-root.sh CACHE_DIR
#
# Exit status 1 (and a reason on stderr) when mmdebstrap cannot build it.
set -euo pipefail
cache=$1
mkdir -p "$cache"
packages=acl,attr,e2fsprogs
key=$(echo "bookworm minbase $packages v1" | md5sum | cut -c1-12)
tar=$cache/root-$key.tar
exec 9>"$cache/.root.lock"
flock 9
if [ ! -f "$tar" ]; then
  rm -rf "$tar" "$tar.tmp" # what an interrupted or older run left (a directory)
  # --format=tar: mmdebstrap takes the format from the target's name, and
  # "*.tar.tmp" would make a directory.
  if ! mmdebstrap --quiet --format=tar --variant=minbase --include=$packages \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$tar.tmp" http://deb.debian.org/debian >"$cache/mmdebstrap.log" 2>&1; then
    rm -rf "$tar.tmp"
    echo "mmdebstrap cannot build a bookworm root (see $cache/mmdebstrap.log)" >&2
    exit 1
  fi
  mv "$tar.tmp" "$tar"
fi
echo "$tar"
