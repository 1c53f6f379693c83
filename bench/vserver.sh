#!/usr/bin/env bash
# The start/stop core's benchmark: on one copy of a minbase guest (g1 of
# bench/make_corpus.sh),
#   - start + stop of a guest whose init does nothing (init style none,
#     cmd.start /bin/true), against systemd-nspawn and bubblewrap running
#     /bin/true in a new container on the same tree;
#   - exec of /bin/true into the running guest, against nsenter(1) into the
#     same guest's namespaces (systemd-nspawn has no exec into a running
#     container without systemd-machined, which this host does not run);
#   - the exec floor: bench/launch_floor.c, a static program that forks,
#     execs /bin/true and waits, in no namespace - what any exec tool costs
#     at least.
# Each is timed with hyperfine (--runs R, after warm-up runs); prints the
# means and vserver's ratio to each peer, and writes bench/vserver-results.md
# (the start and stop means on their own too).
# A peer that does not run here is reported as such.
#
#   bench/vserver.sh [--runs R]
. "$(dirname "$0")/guest_bench.sh" 30 "$@"
cleanup() { "$bin/vserver" -q b stop >/dev/null 2>&1; }
root=$work/vservers/b
mkdir -p "$work/etc/b/apps/init"
cp -a "$corpus/g1" "$root"
ln -s "$root" "$work/etc/b/vdir"
echo none > "$work/etc/b/apps/init/style"
echo /bin/true > "$work/etc/b/apps/init/cmd.start"
echo 40100 > "$work/etc/b/context"

declare -A mean
measure() { # NAME COMMAND [hyperfine options]
  local name=$1 cmd=$2 json
  shift 2
  json=$(mktemp)
  if hyperfine -N --warmup 3 --runs "$runs" --export-json "$json" "$@" "$cmd" >/dev/null 2>&1; then
    mean[$name]=$(python3 -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))['results'][0]['mean'])" "$json")
  else
    mean[$name]="does not run here"
  fi
  rm -f "$json"
}
# start and stop timed apart (each prepared by the other), then added: no
# shell between them to time.
measure "start/vserver" "$bin/vserver -q b start" --prepare "$bin/vserver -q b stop"
"$bin/vserver" -q b stop
measure "stop/vserver" "$bin/vserver -q b stop" --prepare "$bin/vserver -q b start"
"$bin/vserver" -q b stop
if [[ ${mean[start/vserver]} != does* && ${mean[stop/vserver]} != does* ]]; then
  mean[start+stop/vserver]=$(python3 -c "print('%.4f' % (${mean[start/vserver]} + ${mean[stop/vserver]}))")
else
  mean[start+stop/vserver]="does not run here"
fi
measure "start+stop/systemd-nspawn" "systemd-nspawn -q --register=no --keep-unit -D $root /bin/true"
measure "start+stop/bubblewrap" "bwrap --unshare-all --die-with-parent --bind $root / --proc /proc --dev /dev /bin/true"
"$bin/vserver" -q b start
pid=$(sed -n 's/^pid=//p' "$work/run/b/state")
measure "exec/vserver" "$bin/vserver b exec /bin/true"
measure "exec/nsenter" "nsenter -t $pid -a /bin/true"
measure "exec/floor" "$here/build/bench/vu-launch-floor /bin/true"
"$bin/vserver" -q b stop

out=$here/bench/vserver-results.md
{
  echo "vserver start alone: ${mean[start/vserver]} s, stop alone: ${mean[stop/vserver]} s"
  echo
  f=${mean[exec/floor]} n=${mean[exec/nsenter]}
  if [[ $f != does* && $n != does* ]]; then
    echo "exec floor (a static program that forks, execs /bin/true and waits): $f s," \
      "$(python3 -c "print('%.2f' % ($f / $n))") of nsenter's time"
    echo
  fi
  echo "| run | vserver (s) | peer | peer (s) | vserver / peer |"
  echo "|---|---|---|---|---|"
  for run in start+stop exec; do
    for peer in systemd-nspawn bubblewrap nsenter; do
      p=${mean[$run/$peer]:-}
      [ -n "$p" ] || continue
      v=${mean[$run/vserver]}
      if [[ $p == does* || $v == does* ]]; then ratio="-"; else ratio=$(python3 -c "print('%.2f' % ($v / $p))"); fi
      echo "| $run | $v | $peer | $p | $ratio |"
    done
  done
} | tee "$out"
