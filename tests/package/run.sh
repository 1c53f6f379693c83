#!/usr/bin/env bash
# The Debian package, as an administrator gets it:
#
#   tests/package/run.sh BUILD_DIR SOURCE_DIR
#
# 1. dpkg-buildpackage -b packages BUILD_DIR (debian/rules with
#    VU_DEB_PREBUILT: the programs the other tests ran; scripts/test.sh
#    configures that build as the package's), in a copy of debian/.
# 2. The .deb holds what the README promises (programs in /usr/sbin, man
#    pages, units in /lib/systemd/system, /etc/cron.d/vhashify and the
#    exclude list as conffiles), stripped binaries, Built-Using naming glibc
#    (vserver is static), and lintian reports no error or warning
#    (debian/vunify.lintian-overrides explains the rest).
# 3. It is installed into a fresh minbase bookworm root (mmdebstrap,
#    cached) with dpkg -i and apt-get -f install inside, as on a host; there
#    the programs run on two guests (unify, report, the nightly job, the
#    hostile case: a guest file that is a symlink to the root's
#    /etc/passwd), then it is purged.
# 4. systemd-analyze verify accepts the installed units, and the nightly
#    job's hardening keeps systemd-analyze security's exposure below 5.
#
# Skips (exit 77) where a tool is missing, the build was not configured as
# the package's, or the archive cannot be reached. Everything lives in a
# temporary directory; apt's lists and archives are cached in
# ${VU_TEST_CACHE:-/var/tmp/vunify-test-cache}/package.
set -euo pipefail
build=$(realpath "$1")
src=$(realpath "$2")
cache=${VU_TEST_CACHE:-/var/tmp/vunify-test-cache}

skip() {
  echo "package: skipped: $*"
  exit 77
}
fail() {
  echo "package: FAIL: $*" >&2
  exit 1
}
step() { echo "package: $*"; }

[ "$(id -u)" = 0 ] || skip "needs root"
for tool in dpkg-buildpackage dh lintian mmdebstrap systemd-analyze unshare; do
  command -v "$tool" >/dev/null || skip "$tool is not installed"
done
grep -qx 'CMAKE_INSTALL_PREFIX:PATH=/usr' "$build/CMakeCache.txt" ||
  skip "$build is not configured as the package's build (scripts/deb-cmake-args; scripts/test.sh does it)"

work=$(mktemp -d /tmp/vunify-package.XXXXXX)
root=$work/root
cleanup() {
  chattr -R -i "$root/vservers" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- 1. build ---------------------------------------------------------------
step "dpkg-buildpackage -b (VU_DEB_PREBUILT=$build)"
mkdir "$work/src"
cp -a "$src/debian" "$src/COPYING" "$src/README.md" "$src/ARCHITECTURE.md" "$work/src/"
if ! (cd "$work/src" && VU_DEB_PREBUILT=$build dpkg-buildpackage -b -us -uc -nc) \
  >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log"
  fail "dpkg-buildpackage failed"
fi
version=$(sed -n '1s/.*(\(.*\)).*/\1/p' "$src/debian/changelog")
cmake_version=$(sed -n 's/^project(vunify VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[ "$version" = "$cmake_version" ] ||
  fail "debian/changelog says $version, CMakeLists.txt $cmake_version"
deb=$work/vunify_${version}_$(dpkg --print-architecture).deb
[ -f "$deb" ] || fail "no $deb (made: $(ls "$work"))"

# --- 2. contents and lintian ------------------------------------------------
step "contents of $(basename "$deb")"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\.||' >"$work/contents"
for f in /usr/sbin/{vunify,vhashify,vdu,setattr,showattr,vbarrier,vserver,vps,vserver-stat} \
  /usr/sbin/{start-vservers,vapt-get,vrpm,vattr-bpf} \
  /usr/share/man/man8/{vunify,vhashify,vserver,vattr-bpf}.8.gz \
  /lib/systemd/system/{vhashify.service,vhashify.timer,vattr-bpf.service,vservers-default.service} \
  /etc/cron.d/vhashify /etc/vservers/.defaults/apps/vunify/exclude /etc/init.d/vservers-default \
  /usr/share/vunify/vhashify-nightly /usr/share/vunify/summarize-run \
  /usr/share/bash-completion/completions/vunify /usr/share/bash-completion/completions/vserver \
  "/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/vunify/libvu-preload.so" \
  /usr/share/doc/vunify/copyright; do
  grep -qx "$f" "$work/contents" || fail "$f is not in the package"
done
if grep -q '^/usr/local' "$work/contents"; then fail "files under /usr/local"; fi
dpkg-deb -e "$deb" "$work/control"
for f in /etc/cron.d/vhashify /etc/vservers/.defaults/apps/vunify/exclude \
  /etc/init.d/vservers-default; do
  grep -qx "$f" "$work/control/conffiles" || fail "$f is not a conffile"
done
# vserver is static: the package names the C library's source it contains.
dpkg-deb -f "$deb" Built-Using | grep -q 'glibc (= ' ||
  fail "Built-Using does not name glibc: '$(dpkg-deb -f "$deb" Built-Using)'"
dpkg-deb -x "$deb" "$work/unpacked"
for p in "$work"/unpacked/usr/sbin/*; do
  if readelf -S "$p" | grep -q '\.symtab'; then fail "$(basename "$p") is not stripped"; fi
done
grep -rq /usr/local "$work/unpacked/lib/systemd/system" "$work/unpacked/etc/cron.d" \
  "$work/unpacked/usr/share/vunify" && fail "a unit, the cron file or the job names /usr/local"
step "lintian"
if ! lintian --fail-on error,warning --display-info "$deb" >"$work/lintian.log" 2>&1; then
  cat "$work/lintian.log"
  fail "lintian reports errors or warnings"
fi
cat "$work/lintian.log"

# --- 3. installed in a fresh bookworm root ----------------------------------
step "installing into a fresh bookworm root"
tar=$("$src/tests/support/bookworm-root.sh" "$cache/vm") || skip "no bookworm root (mmdebstrap)"
mkdir "$root"
tar -C "$root" -xf "$tar"
# The host's apt sources (the archive this host reaches), its resolver,
# and apt's cache from earlier runs.
rm -f "$root/etc/apt/sources.list"
cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/" 2>/dev/null || true
[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root/etc/apt/"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$cache/package/lists" "$cache/package/archives"
cp -a "$cache/package/lists/." "$root/var/lib/apt/lists/"
cp -a "$cache/package/archives/." "$root/var/cache/apt/archives/"
cp "$deb" "$root/tmp/"
# Each command in its own mount and PID namespace with the root's /proc:
# nothing is left mounted or running when it ends.
in_root() { unshare --mount --pid --fork --mount-proc="$root/proc" chroot "$root" "$@"; }
in_root apt-get update -q >"$work/apt.log" 2>&1 || {
  cat "$work/apt.log"
  skip "the archive cannot be reached"
}
# dpkg -i alone leaves the package unconfigured (its libraries are not in
# minbase); apt-get -f install brings them.
if in_root dpkg -i "/tmp/$(basename "$deb")" >>"$work/apt.log" 2>&1; then
  step "dpkg -i needed no other package"
fi
in_root env DEBIAN_FRONTEND=noninteractive apt-get -f install -y -q >>"$work/apt.log" 2>&1 || {
  cat "$work/apt.log"
  fail "apt-get -f install failed"
}
cp -a "$root/var/lib/apt/lists/." "$cache/package/lists/"
cp -a "$root/var/cache/apt/archives/." "$cache/package/archives/" 2>/dev/null || true
[ "$(in_root dpkg-query -W -f='${Status}' vunify)" = "install ok installed" ] ||
  fail "vunify is not configured after apt-get -f install"
# vservers-default.service is enabled (it starts only guests marked
# "default"); the nightly timer and the BPF loader are the admin's choice.
[ -L "$root/etc/systemd/system/multi-user.target.wants/vservers-default.service" ] ||
  fail "vservers-default.service is not enabled"
for u in timers.target.wants/vhashify.timer sysinit.target.wants/vattr-bpf.service; do
  [ ! -e "$root/etc/systemd/system/$u" ] || fail "$u is enabled on install"
done
for p in vunify vhashify vdu setattr showattr vbarrier vserver vps vserver-stat start-vservers \
  vapt-get vrpm vattr-bpf; do
  out=$(in_root "/usr/sbin/$p" --version 2>&1) || fail "$p --version: $out"
  case "$out" in *"$version"*) ;; *) fail "$p --version says '$out', not $version" ;; esac
  in_root "/usr/sbin/$p" --help >/dev/null 2>&1 || fail "$p --help failed"
done

step "two guests in the root: vunify, vdu, the nightly job"
for g in a b; do
  mkdir -p "$root/vservers/$g/usr" "$root/vservers/$g/etc" "$root/etc/vservers/$g"
  cp -a "$root/usr/bin" "$root/vservers/$g/usr/bin"
  echo "$g" >"$root/vservers/$g/etc/hostname"
  ln -s "/vservers/$g" "$root/etc/vservers/$g/vdir"
done
# Hostile: guest a's file is a symlink to the root's /etc/passwd.
ln -sf /etc/passwd "$root/vservers/a/usr/bin/passwd-link"
cp "$root/etc/passwd" "$root/vservers/b/usr/bin/passwd-link"
passwd_before=$(stat -c '%i %h' "$root/etc/passwd")
in_root /usr/sbin/vunify -n --all >"$work/run.log" 2>&1 || {
  cat "$work/run.log"
  fail "vunify -n --all failed"
}
in_root /usr/sbin/vunify --all >"$work/run.log" 2>&1 || {
  cat "$work/run.log"
  fail "vunify --all failed"
}
[ "$(stat -c %i "$root/vservers/a/usr/bin/dpkg")" = "$(stat -c %i "$root/vservers/b/usr/bin/dpkg")" ] ||
  fail "usr/bin/dpkg is not shared after vunify --all: $(cat "$work/run.log")"
lsattr -d "$root/vservers/a/usr/bin/dpkg" | grep -q '^....i' || fail "the shared file is not immutable"
[ "$(stat -c '%i %h' "$root/etc/passwd")" = "$passwd_before" ] || fail "the root's /etc/passwd was linked"
[ -L "$root/vservers/a/usr/bin/passwd-link" ] || fail "guest a's symlink was replaced"
[ "$(cat "$root/vservers/a/etc/hostname")" = a ] || fail "guest a's /etc/hostname changed"
in_root /usr/sbin/vdu --all >"$work/vdu.log" 2>&1 || {
  cat "$work/vdu.log"
  fail "vdu --all failed"
}
in_root /usr/share/vunify/vhashify-nightly >"$work/nightly.log" 2>&1 || {
  cat "$work/nightly.log"
  fail "the nightly job failed"
}
grep -q '^vhashify: [0-9]* files scanned' "$work/nightly.log" || fail "nightly: $(cat "$work/nightly.log")"
in_root /usr/sbin/showattr "/vservers/a/usr/bin/dpkg" >/dev/null || fail "showattr failed"
# The boot unit's command and the init script's: no guest is marked
# "default", so nothing starts; status says none runs (3).
in_root /etc/init.d/vservers-default start >"$work/boot.log" 2>&1 || {
  cat "$work/boot.log"
  fail "/etc/init.d/vservers-default start failed"
}
status=0
in_root /etc/init.d/vservers-default status >/dev/null 2>&1 || status=$?
[ "$status" = 3 ] || fail "/etc/init.d/vservers-default status: $status, want 3 (nothing runs)"
start=$(sed -n 's/^ExecStart=//p' "$root/lib/systemd/system/vservers-default.service")
in_root sh -c "$start" >"$work/boot.log" 2>&1 || {
  cat "$work/boot.log"
  fail "vservers-default.service's ExecStart ($start) failed"
}

# --- 4. the units -----------------------------------------------------------
step "systemd-analyze verify and security (systemd installed in the root)"
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd \
  >>"$work/apt.log" 2>&1 || {
  cat "$work/apt.log"
  fail "apt-get install systemd failed"
}
cp -a "$root/var/cache/apt/archives/." "$cache/package/archives/" 2>/dev/null || true
units=(/lib/systemd/system/vhashify.service /lib/systemd/system/vhashify.timer
  /lib/systemd/system/vattr-bpf.service /lib/systemd/system/vservers-default.service)
if ! systemd-analyze verify --man=no --root="$root" "${units[@]/#/$root}" >"$work/verify.log" 2>&1; then
  cat "$work/verify.log"
  fail "systemd-analyze verify"
fi
if grep -q . "$work/verify.log"; then
  cat "$work/verify.log"
  fail "systemd-analyze verify complains"
fi
systemd-analyze security --offline=true --root="$root" vhashify.service >"$work/security.log" 2>&1 ||
  true
exposure=$(sed -n 's/.*Overall exposure level for vhashify.service: \([0-9.]*\).*/\1/p' \
  "$work/security.log")
[ -n "$exposure" ] || {
  cat "$work/security.log"
  fail "no exposure level from systemd-analyze security"
}
step "vhashify.service exposure $exposure"
awk -v e="$exposure" 'BEGIN { exit !(e < 5.0) }' || {
  cat "$work/security.log"
  fail "vhashify.service's exposure is $exposure (want < 5)"
}

step "purge"
chattr -R -f -i "$root/vservers" 2>/dev/null || true
in_root dpkg --purge vunify >>"$work/apt.log" 2>&1 || fail "dpkg --purge vunify"
for f in /usr/sbin/vunify /etc/cron.d/vhashify /etc/vservers/.defaults/apps/vunify/exclude; do
  [ ! -e "$root$f" ] || fail "$f is left after purge"
done
step "passed"
