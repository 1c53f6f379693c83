#!/usr/bin/env bash
# Boots Debian's own kernel in qemu with the BPF LSM active, twice, and
# runs the bpf attribute back end's checks inside (tests/vm/checks.sh):
#
#   tests/vm/run.sh BUILD_DIR RESULTS_FILE
#
# ($VU_VM_CHECKS, $VU_VM_EXTRA and $VU_VM_BOOTS=1 let bench/bpf-lsm.sh run
# its own script in the same VM, with more programs, booted once.)
#
# The VM: Debian 12's linux-image-amd64 (downloaded with apt-get, cached),
# a busybox initramfs that loads the kernel's ext4 and virtio modules, and
# an ext4 root made from a minbase bookworm tree (mmdebstrap, cached) with
# the suite's programs (and the libraries they link), two guests that are
# copies of that same tree (real dpkg databases), and a .deb of a package
# they have. The first boot loads the program, unifies, attacks, updates;
# the second (the same disk: a reboot) checks what must survive.
#
# RESULTS_FILE gets one line per check (each boot's console is kept in
# RESULTS_FILE.bootN.log), "VMTEST <name> PASS|FAIL <detail>",
# or a single "VMSKIP <reason>" (and exit status 77) where this machine
# cannot run the VM; the ctest checks (tests/vm/check.sh) read it. Uses KVM where /dev/kvm boots
# a probe VM, else software emulation (TCG). Everything made lives in a
# temporary directory, removed at the end; the download cache is
# ${VU_TEST_CACHE:-/var/tmp/vunify-test-cache}/vm.
set -euo pipefail
build=$(realpath "$1")
results=$2
here=$(dirname "$(realpath "$0")")
cache=${VU_TEST_CACHE:-/var/tmp/vunify-test-cache}/vm
: >"$results"

skip() {
  echo "VMSKIP $*" >"$results"
  echo "vm: skipped: $*"
  exit 77
}
fail() {
  echo "VMTEST harness FAIL $*" >>"$results"
  echo "vm: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || skip "needs root"
for tool in qemu-system-x86_64 mmdebstrap mkfs.ext4 busybox cpio; do
  command -v "$tool" >/dev/null || skip "$tool is not installed"
done
[ -x "$build/tools/vattr-bpf" ] || fail "$build/tools/vattr-bpf is missing"
mkdir -p "$cache"
work=$(mktemp -d /tmp/vunify-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT

# --- the kernel: Debian's, as its package ships it -------------------------
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
[ -n "$kpkg" ] || skip "apt cannot name the package behind linux-image-amd64"
kdeb=$(ls "$cache/${kpkg}"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$kdeb" ]; then
  (cd "$cache" && apt-get download -q "$kpkg" >/dev/null 2>&1) || skip "cannot download $kpkg"
  kdeb=$(ls "$cache/${kpkg}"_*.deb | head -1)
fi
dpkg-deb -x "$kdeb" "$work/kernel"
kver=${kpkg#linux-image-}
vmlinuz=$work/kernel/boot/vmlinuz-$kver
moddir=$work/kernel/lib/modules/$kver
[ -f "$vmlinuz" ] || fail "$kdeb has no vmlinuz"

# --- the initramfs: busybox and the modules that reach an ext4 virtio disk --
declare -A seen=()
order=()
add_module() { # post-order: dependencies first
  local m=$1 f dep
  [ -z "${seen[$m]:-}" ] || return 0
  seen[$m]=1
  f=$(find "$moddir" -name "$m.ko" | head -1)
  [ -n "$f" ] || return 0 # built in
  # The module's .modinfo strings name what it needs ("depends=a,b").
  for dep in $(tr '\0' '\n' <"$f" | grep -a '^depends=' | head -1 | cut -d= -f2 | tr ',' ' '); do
    add_module "$dep"
  done
  order+=("$f")
}
for m in ext4 crc32c_generic virtio_pci virtio_blk; do add_module "$m"; done
mkdir -p "$work/initrd"/{bin,mods,dev,proc,sys,newroot}
cp /bin/busybox "$work/initrd/bin/"
: >"$work/initrd/mods/order"
for f in "${order[@]}"; do
  cp "$f" "$work/initrd/mods/"
  basename "$f" >>"$work/initrd/mods/order"
done
cat >"$work/initrd/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod "/mods/$m" || echo "VMINIT: insmod $m failed"; done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
if ! mount -t ext4 /dev/vda /newroot; then echo "VMINIT: no root disk"; echo o >/proc/sysrq-trigger; sleep 30; fi
umount /proc /sys; mount --move /dev /newroot/dev
exec switch_root /newroot /vu-vm/init
EOF
chmod +x "$work/initrd/init"
(cd "$work/initrd" && find . | cpio -o -H newc 2>/dev/null | gzip -1 >"$work/initrd.gz")

# --- the root: minbase bookworm (cached), the suite, two guests -------------
roottar=$("$here/../support/bookworm-root.sh" "$cache") || skip "mmdebstrap cannot build the VM's root"
sed_deb=$(ls "$cache"/sed_*.deb 2>/dev/null | head -1 || true)
if [ -z "$sed_deb" ]; then
  (cd "$cache" && apt-get download -q sed >/dev/null 2>&1) || skip "cannot download sed"
  sed_deb=$(ls "$cache"/sed_*.deb | head -1)
fi
root=$work/root
mkdir -p "$root"
tar -C "$root" -xf "$roottar"
for g in a b; do
  mkdir -p "$root/vservers/$g"
  tar -C "$root/vservers/$g" -xf "$roottar"
  install -m 0755 "$build/tests/vu-probe" "$root/vservers/$g/usr/local/bin/vu-probe"
  mkdir -p "$root/etc/vservers/$g/uts" "$root/etc/vservers/$g/apps/init"
  ln -s "/vservers/$g" "$root/etc/vservers/$g/vdir"
  echo $((41000 + ${#g})) >"$root/etc/vservers/$g/context"
  echo "$g" >"$root/etc/vservers/$g/uts/nodename"
  echo none >"$root/etc/vservers/$g/apps/init/style"
  echo /bin/true >"$root/etc/vservers/$g/apps/init/cmd.start"
done
echo 41002 >"$root/etc/vservers/b/context"
mkdir -p "$root/etc/vservers/.defaults/apps/vunify"
echo bpf >"$root/etc/vservers/.defaults/apps/vunify/attr-backend"
cp "$sed_deb" "$root/vservers/a/tmp/sed.deb"
mkdir -p "$root/vu-vm/bin"
# A program into /vu-vm/bin (without debug information), with the
# libraries it links where the VM's root lacks them (the same release).
add_program() {
  local lib
  objcopy --strip-debug "$1" "$root/vu-vm/bin/$(basename "$1")"
  for lib in $(ldd "$1" | awk '/=> \// {print $3}'); do
    [ -e "$root$lib" ] || install -D -m 0644 "$lib" "$root$lib"
  done
}
for p in vunify vhashify setattr showattr vbarrier vserver vattr-bpf; do
  add_program "$build/tools/$p"
done
cp "$build/tests/vu-probe" "$root/vu-vm/bin/vu-probe" # static
# More programs for another checks script ($VU_VM_EXTRA: paths; the
# benchmark's vu-floor).
for p in ${VU_VM_EXTRA:-}; do add_program "$p"; done
install -m 0755 "$here/init" "$root/vu-vm/init"
install -m 0755 "${VU_VM_CHECKS:-$here/checks.sh}" "$root/vu-vm/checks.sh" # another script: debugging
mkfs.ext4 -q -F -d "$root" -L vuroot "$work/disk.img" 3G

# --- KVM where it boots, else software emulation ----------------------------
accel=tcg
if [ -w /dev/kvm ]; then
  probe_state=$cache/kvm-works-$(uname -r)
  if [ ! -f "$probe_state" ]; then
    if timeout 10 qemu-system-x86_64 -accel kvm -cpu host -m 256 -kernel "$vmlinuz" \
      -append "console=ttyS0 panic=-1 rdinit=/nothing" -nographic -no-reboot -nic none \
      2>/dev/null | grep -q 'Kernel panic'; then
      echo kvm >"$probe_state"
    else
      echo tcg >"$probe_state"
    fi
  fi
  accel=$(cat "$probe_state")
fi
cpu=max
[ "$accel" = kvm ] && cpu=host

boot() { # $1: which boot; the serial console goes to $work/boot$1.log
  local log=$work/boot$1.log
  timeout 900 qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -m 1536 -smp 2 \
    -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 panic=-1 rdinit=/init quiet" \
    -drive "file=$work/disk.img,format=raw,if=virtio" \
    -nographic -no-reboot -nic none </dev/null >"$log" 2>&1 || true
  tr -d '\r' <"$log" >"$results.boot$1.log" # kept beside the results
  # (the console's first line starts with the firmware's escape sequences)
  grep -aoE 'VMTEST .*' "$results.boot$1.log" >>"$results" || true
  if ! grep -aq "VMBOOT-DONE $1" "$results.boot$1.log"; then
    echo "VMTEST boot$1 FAIL the VM did not finish boot $1 (accel $accel); its console:" >>"$results"
    tr -d '\r' <"$log" | tail -40 | sed 's/^/  | /' >>"$results"
    cat "$results"
    exit 1
  fi
}
echo "vm: $kpkg, accel $accel"
boot 1
[ "${VU_VM_BOOTS:-2}" = 1 ] || boot 2
cat "$results"
