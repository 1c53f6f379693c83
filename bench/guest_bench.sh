# The start the benchmarks that run guests share (bench/vserver.sh,
# bench/vapt-get.sh), sourced with the default number of runs and the
# script's arguments:  . "$(dirname "$0")/guest_bench.sh" RUNS "$@"
# Reads --runs R; installs what the benchmarks need, builds, makes the
# corpus (bench/make_corpus.sh); sets here, runs, corpus, bin and work (a
# new directory under /var/tmp) and points vserver's configuration, run
# directory and cgroups into it (nothing of the host's is touched). The
# caller's cleanup function, if any, runs first at exit; then the
# guests' cgroups, the cgroup2 mount and the work directory go.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=$1
shift
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    *) echo "usage: $0 [--runs R]" >&2; exit 2 ;;
  esac
done
"$here/scripts/install-deps.sh" --bench >/dev/null
"$here/scripts/build.sh" >/dev/null
"$here/bench/make_corpus.sh" >/dev/null
corpus=${VU_BENCH_CORPUS:-/var/tmp/vunify-bench-corpus}
work=$(mktemp -d "/var/tmp/vunify-$(basename "$0" .sh)-bench.XXXXXX")
bin=$here/build/tools
export VSERVER_CONFDIR=$work/etc VSERVER_RUNDIR=$work/run VSERVER_CGROUP=vunify-bench-$$
guest_bench_cleanup() {
  if declare -F cleanup >/dev/null; then cleanup || true; fi
  local c
  for c in /sys/fs/cgroup/*/"$VSERVER_CGROUP" /sys/fs/cgroup/"$VSERVER_CGROUP" \
    "$work/run/.cgroup2/$VSERVER_CGROUP"; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  umount "$work/run/.cgroup2" 2>/dev/null || true
  chattr -R -i "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap guest_bench_cleanup EXIT
mkdir -p "$work/etc/.defaults" "$work/vservers" "$work/run"
ln -s "$work/vservers" "$work/etc/.defaults/vdirbase"
