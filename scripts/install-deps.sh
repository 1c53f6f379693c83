#!/usr/bin/env bash
# Installs everything vunify needs to build, test and benchmark on Debian 12.
# Used by README's first command and by .ci/run; safe to run again.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: run as root (apt-get install)" >&2
  exit 2
fi
pkgs=(
  build-essential cmake pkg-config
  libtbb-dev libxxhash-dev libcli11-dev libfmt-dev nlohmann-json3-dev libsodium-dev
  googletest libgtest-dev
  attr acl e2fsprogs xfsprogs btrfs-progs util-linux
  debootstrap cpio bc
  librpm-dev rpm clang libclang-rt-14-dev clang-format-14
  libseccomp-dev iproute2 procps libbpf-dev bpftool
  qemu-system-x86 mmdebstrap busybox-static debhelper lintian groff-base
  chromium
)
if [ "${1:-}" = "--bench" ]; then
  pkgs+=(rdfind jdupes fdupes rmlint hyperfine time bc systemd-container bubblewrap duperemove)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
