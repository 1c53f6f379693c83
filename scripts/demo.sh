#!/usr/bin/env bash
# README command (a): installs dependencies, builds, generates three small
# but realistic guests in a temporary configuration base and guest base
# (copies of parts of this host's /usr, with changed files, other owners
# and modes, private /etc and /var), unifies them with vunify and shows
# what was saved. Nothing outside the temporary directory is touched.
#   --keep   leave the demo directory in place (it is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
[ "${1:-}" = "--keep" ] && keep=1
./scripts/install-deps.sh
./scripts/build.sh >/dev/null
vunify=$PWD/build/tools/vunify

demo=$(mktemp -d /tmp/vunify-demo.XXXXXX)
cleanup() {
  if [ $keep = 1 ]; then echo "demo kept in $demo"; return; fi
  chattr -R -f -i "$demo" 2>/dev/null || true
  rm -rf "$demo"
}
trap cleanup EXIT

echo "== generating guests web1, web2, db1 under $demo/vservers"
mkdir -p "$demo/etc-vservers/.defaults" "$demo/vservers"
ln -s "$demo/vservers" "$demo/etc-vservers/.defaults/vdirbase"
for g in web1 web2 db1; do
  mkdir -p "$demo/etc-vservers/$g" "$demo/vservers/$g"
  echo "$g" > "$demo/etc-vservers/$g/name"
  root=$demo/vservers/$g
  # A slice of the host's /usr: programs under 4 MiB, manual pages, docs.
  (cd / && find usr/bin usr/sbin usr/share/man/man1 -xdev \
      \( -type f -size -2M -o -type l -o -type d \) -print0 2>/dev/null |
     cpio -0 -pdm --quiet "$root")
  mkdir -p "$root/etc" "$root/var/log" "$root/root" "$root/tmp"
  cp -a /etc/terminfo "$root/etc/" 2>/dev/null || true
  echo "$g.example.org" > "$root/etc/hostname"
  cp /etc/passwd /etc/group "$root/etc/"
  echo "log of $g" > "$root/var/log/messages"
  echo "history of $g" > "$root/root/.bash_history"
done
# web2: a few programs differ (a local patch), one application of its own,
# and a hostile symlink like the one in the Linux-VServer talk.
for f in $(ls "$demo/vservers/web2/usr/bin" | head -n 5); do
  [ -f "$demo/vservers/web2/usr/bin/$f" ] && [ ! -L "$demo/vservers/web2/usr/bin/$f" ] &&
    printf 'patched' >> "$demo/vservers/web2/usr/bin/$f"
done
mkdir -p "$demo/vservers/web2/opt/web" "$demo/vservers/web2/var/lock"
head -c 200000 /dev/urandom > "$demo/vservers/web2/opt/web/app.bin"
ln -s /etc "$demo/vservers/web2/var/lock/subsys"
ln -s / "$demo/vservers/web2/usr/share/escape"
# db1: some files owned by another user or with other modes: never shared.
for f in $(ls "$demo/vservers/db1/usr/share/man/man1" | head -n 10); do
  chown 1000:1000 "$demo/vservers/db1/usr/share/man/man1/$f"
done
for f in $(ls "$demo/vservers/db1/usr/share/man/man1" | tail -n 10); do
  chmod 0600 "$demo/vservers/db1/usr/share/man/man1/$f"
done

echo "== the guest base becomes a chroot barrier (vbarrier set; vunify warns otherwise)"
"$PWD/build/tools/vbarrier" --confdir="$demo/etc-vservers" set
"$PWD/build/tools/vbarrier" --confdir="$demo/etc-vservers" check

echo "== disk used by the three guests before (each inode counted once):"
du -sh --total "$demo"/vservers/* | tail -n 4

echo "== vunify --all (configuration base $demo/etc-vservers)"
start=$(date +%s.%N)
"$vunify" --confdir="$demo/etc-vservers" --all -v >"$demo/vunify.out"
end=$(date +%s.%N)
# -v lists every linked name too: counted here, not shown.
grep -v '^linked ' "$demo/vunify.out" || true
echo "   ($(grep -c '^linked ' "$demo/vunify.out") 'linked NAME -> NAME' lines, one per name linked)"
printf '   (%.2f s)\n' "$(echo "$end - $start" | bc)"

echo "== disk used after:"
du -sh --total "$demo"/vservers/* | tail -n 4
echo "== shared inodes are immutable:"
sample=$(cd "$demo/vservers/web1" && find usr/bin -type f -size +100k | head -n 1)
lsattr "$demo/vservers/web1/$sample" "$demo/vservers/db1/$sample" 2>/dev/null || true
ls -li "$demo/vservers/web1/$sample" "$demo/vservers/db1/$sample"
echo "== a second run has nothing new to do:"
"$vunify" --confdir="$demo/etc-vservers" --all
echo "== vdu: what each guest uses, shares and saves"
"$PWD/build/tools/vdu" -h --no-store --confdir="$demo/etc-vservers" --all
