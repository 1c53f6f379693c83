#!/usr/bin/env bash
# vapt-get's benchmark: installing one small package (bookworm's hello,
# from a file: repository inside each guest) into 10 unified guests
# (copies of g1 of bench/make_corpus.sh, linked to one hash store), with
#   vapt-get g1 ... g10 -- install -y hello
# (its plan in each guest, private copies, apt-get in a context made for
# the call, vhashify afterwards) against the plain way,
#   for g in ...; do chroot $g apt-get install -y hello; done
# Each is timed with hyperfine (--runs R), every run prepared by removing
# the package the same way; then the disk each way leaves used (vdu's
# allocated bytes of all guests, each inode once) is measured after one
# install. Prints the means, the ratio and the disk growth, and writes
# bench/vapt-get-results.md.
#
#   bench/vapt-get.sh [--runs R]
. "$(dirname "$0")/guest_bench.sh" 5 "$@"
mkdir -p "$work/debs"
(cd "$work/debs" && apt-get download hello >/dev/null 2>&1)
guests=()
for i in $(seq 1 10); do
  g=b$i
  guests+=("$g")
  cp -a "$corpus/g1" "$work/vservers/$g"
  mkdir -p "$work/etc/$g" "$work/vservers/$g/srv/repo"
  ln -s "$work/vservers/$g" "$work/etc/$g/vdir"
  echo $((40200 + i)) > "$work/etc/$g/context"
  cp "$work"/debs/*.deb "$work/vservers/$g/srv/repo/"
  (cd "$work/vservers/$g/srv/repo" && dpkg-scanpackages -m . > Packages 2>/dev/null)
  echo 'deb [trusted=yes] file:/srv/repo ./' > "$work/vservers/$g/etc/apt/sources.list"
done
"$bin/vapt-get" -q "${guests[@]}" -- -q update >/dev/null
"$bin/vhashify" -q "${guests[@]}"

plain() { # install|remove: the package in every guest, chroot apt-get
  local g
  for g in "${guests[@]}"; do
    DEBIAN_FRONTEND=noninteractive chroot "$work/vservers/$g" apt-get -q -y "$1" hello >/dev/null 2>&1
  done
}
guest_list="${guests[*]}"
allocated() {
  "$bin/vdu" --json "${guests[@]}" | python3 -c "import json,sys; print(json.load(sys.stdin)['total']['allocated_bytes'])"
}

declare -A mean
measure() { # NAME COMMAND PREPARE
  local json
  json=$(mktemp)
  if hyperfine -N --runs "$runs" --export-json "$json" --prepare "$3" "$2" >/dev/null 2>&1; then
    mean[$1]=$(python3 -c "import json,sys; print('%.3f' % json.load(open(sys.argv[1]))['results'][0]['mean'])" "$json")
  else
    mean[$1]="does not run here"
  fi
  rm -f "$json"
}
measure vapt-get "$bin/vapt-get -q $guest_list -- install -y hello" \
  "$bin/vapt-get -q $guest_list -- remove -y hello"
"$bin/vapt-get" -q "${guests[@]}" -- remove -y hello >/dev/null 2>&1
measure chroot "bash -c 'guests=($guest_list); for g in \${guests[@]}; do DEBIAN_FRONTEND=noninteractive chroot $work/vservers/\$g apt-get -q -y install hello; done'" \
  "bash -c 'guests=($guest_list); for g in \${guests[@]}; do DEBIAN_FRONTEND=noninteractive chroot $work/vservers/\$g apt-get -q -y remove hello; done'"
plain remove

# Disk: what one install leaves used, each way.
before=$(allocated)
plain install
grow_plain=$(( $(allocated) - before ))
plain remove
before=$(allocated)
"$bin/vapt-get" -q "${guests[@]}" -- install -y hello >/dev/null
grow_vapt=$(( $(allocated) - before ))

ratio="n/a"
if [[ ${mean[vapt-get]} != does* && ${mean[chroot]} != does* ]]; then
  ratio=$(python3 -c "print('%.2f' % (${mean[vapt-get]} / ${mean[chroot]}))")
fi
out=$here/bench/vapt-get-results.md
{
  echo "hello into 10 unified guests, $runs runs each (bench/vapt-get.sh)"
  echo
  echo "| way | time (s) | disk used afterwards (bytes) |"
  echo "|---|---|---|"
  echo "| vapt-get (plan, private copies, apt-get, vhashify) | ${mean[vapt-get]} | $grow_vapt |"
  echo "| chroot apt-get in each guest | ${mean[chroot]} | $grow_plain |"
  echo
  echo "vapt-get / chroot apt-get: $ratio"
} > "$out"
cat "$out"
