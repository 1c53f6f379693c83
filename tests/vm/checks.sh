#!/bin/bash
# The bpf attribute back end's checks, run inside the test VM by its init
# (tests/vm/run.sh builds the VM): checks.sh 1 on the first boot, 2 after
# the reboot. Each check prints "VMTEST <name> PASS" or
# "VMTEST <name> FAIL <what went wrong>"; tests/vm/check.sh turns them
# into ctest results. Guests a and b are copies of this root under
# /vservers, configured in /etc/vservers with the bpf back end.
set -u
export PATH=/vu-vm/bin:/usr/sbin:/usr/bin:/sbin:/bin
phase=$1
A=/vservers/a B=/vservers/b
SHARED=/usr/bin/sed

pass() { echo "VMTEST $1 PASS"; }
fail() {
  local name=$1
  shift
  echo "VMTEST $name FAIL $(echo "$*" | tr '\n' ' ' | cut -c1-600)"
}
# check NAME COMMAND...: passes when COMMAND succeeds; its output is the
# failure's detail.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out"; fi
}
inode() { stat -c %i "$1"; }
same_inode() {
  [ "$(inode "$1")" = "$(inode "$2")" ] || {
    echo "$1 and $2 are different inodes"
    return 1
  }
}
flags() { lsattr -d "$1" 2>&1 | cut -d' ' -f1; }
has_mark() { # S (sync), A (noatime), d (nodump), and never i (immutable)
  local f
  f=$(flags "$1")
  [[ $f == *S* && $f == *A* && $f == *d* && $f != *i* ]] || {
    echo "$1 has flags $f"
    return 1
  }
}
refused_everything() { # vu-probe's output: every attack refused
  local out
  out=$("$@" 2>&1)
  local rc=$?
  echo "$out" | sed 's/^/  probe: /' >/dev/console
  echo "$out"
  [ $rc = 0 ] && ! grep -q 'ESCAPED\|FAILED' <<<"$out"
}
# The same, and every refusal is EPERM (the program's answer; a missing
# file or another error would prove nothing).
refused_with_eperm() {
  local out
  out=$(refused_everything "$@") || {
    echo "$out"
    return 1
  }
  ! grep '^refused:' <<<"$out" | grep -v 'Operation not permitted$' || {
    echo "$out"
    return 1
  }
}
start_refused() {
  local out
  if out=$(vserver a start 2>&1); then
    vserver a stop >/dev/null 2>&1
    echo "vserver a start worked: $out"
    return 1
  fi
  grep -q 'vattr-bpf' <<<"$out" || {
    echo "no hint to vattr-bpf: $out"
    return 1
  }
}
loaded() {
  if ! vattr-bpf load; then
    vattr-bpf -v load 2>&1 | tail -40 | sed 's/^/  libbpf: /' >/dev/console
    return 1
  fi
  vattr-bpf status --json | grep -q '"loaded": true'
}

# A process of guest b opens b's name of the shared file for writing in a
# loop while vhashify adds names to that inode: not one open may succeed.
writer_during_link_run() {
  rm -f $B/tmp/stop $B/tmp/writer
  vserver b exec /bin/sh -c 'n=0; o=0; while [ ! -e /tmp/stop ]; do n=$((n+1));
    if (: 3<>/usr/bin/sed) 2>/dev/null; then o=$((o+1)); fi; done;
    echo "tries=$n opened=$o" >/tmp/writer' &
  local writer=$!
  sleep 2
  local out rc
  out=$(vhashify --all 2>&1)
  rc=$?
  touch $B/tmp/stop
  wait $writer
  echo "vhashify: $rc $out; writer: $(cat $B/tmp/writer 2>/dev/null)"
  [ $rc = 0 ] && grep -q 'tries=[1-9][0-9]* opened=0$' $B/tmp/writer
}

guest_dpkg() {
  local sum_b inode_b
  sum_b=$(sha256sum <$B$SHARED)
  inode_b=$(inode $B$SHARED)
  [ "$(inode $A$SHARED)" = "$inode_b" ] || {
    echo "not shared before the update"
    return 1
  }
  vserver a exec dpkg -i /tmp/sed.deb || return 1
  vserver a exec sed --version >/dev/null || return 1
  [ -z "$(vserver a exec dpkg --audit)" ] || return 1
  [ "$(inode $A$SHARED)" != "$inode_b" ] || {
    echo "a still has the shared inode"
    return 1
  }
  [ "$(inode $B$SHARED)" = "$inode_b" ] && [ "$(sha256sum <$B$SHARED)" = "$sum_b" ] || {
    echo "b's file changed"
    return 1
  }
}

setattr_roundtrip() {
  local f=/root/vu-attr-test
  echo content >$f
  setattr --iunlink $f || return 1
  showattr $f | grep -q '^-----UI--' || {
    showattr $f
    return 1
  }
  has_mark $f || return 1
  setattr --~iunlink $f || return 1
  echo more >>$f || return 1
  showattr $f | grep -q '^-----ui--'
}

# vunify -R b: b gets private, unmarked copies it can write; a keeps the
# marked inode.
deunify() {
  vunify -R b || return 1
  same_inode $A$SHARED $B$SHARED && {
    echo "still shared"
    return 1
  }
  has_mark $A$SHARED || return 1
  [[ $(flags $B$SHARED) != *S* ]] || {
    echo "b's copy is marked: $(flags $B$SHARED)"
    return 1
  }
  vserver b exec /bin/sh -c ': 3<>/usr/bin/sed'
}

barrier_walk() {
  refused_everything vu-probe barrier-walk /vservers $A/tmp /sys/fs/cgroup/vservers/a/cgroup.procs
}

case $phase in
1)
  check lsm_has_bpf grep -q '\bbpf\b' /sys/kernel/security/lsm
  check start_refused_while_unloaded start_refused
  check load loaded
  check setattr_iunlink_roundtrip setattr_roundtrip
  check unify vunify --all
  check shared_inode_marked has_mark $A$SHARED
  check shared_inode_shown_iunlink sh -c "showattr $A$SHARED | grep -q '^-----UI--'"
  check start_guests sh -c 'vserver a start && vserver b start'
  check guest_cannot_change_shared_file refused_with_eperm \
    vserver a exec /usr/local/bin/vu-probe change-shared $SHARED
  check guest_dpkg_replaces_shared_file guest_dpkg
  check write_open_fails_during_link_run writer_during_link_run
  check shared_again_after_vhashify same_inode $A$SHARED $B$SHARED
  check store_entry_marked has_mark $A$SHARED
  check vbarrier_check_wants_the_mark sh -c "! vbarrier check && vbarrier check | grep -q 'barrier mark'"
  check vbarrier_set vbarrier set
  check vbarrier_check vbarrier check
  check barrier_marked has_mark /vservers
  check guest_process_cannot_enter_barrier barrier_walk
  check host_enters_barrier ls $A/etc/hostname
  check deunify_gives_writable_copies deunify
  check refusals_counted sh -c "vattr-bpf status --json | grep -q '\"write_open\": [1-9]' &&
    vattr-bpf status --json | grep -q '\"barrier\": [1-9]'"
  check load_without_barrier sh -c "vattr-bpf -q load --no-barrier &&
    vattr-bpf status --json | grep -q '\"barrier\": false' && vattr-bpf -q load &&
    vattr-bpf status --json | grep -q '\"barrier\": true'"
  vserver a stop >/dev/null 2>&1
  vserver b stop >/dev/null 2>&1
  ;;
2)
  check marks_survive_reboot has_mark $A$SHARED
  check barrier_survives_reboot has_mark /vservers
  check start_refused_after_reboot start_refused
  check load_after_reboot loaded
  check start_after_reboot vserver a start
  check guest_cannot_change_shared_file_after_reboot refused_with_eperm \
    vserver a exec /usr/local/bin/vu-probe change-shared $SHARED
  check guest_process_cannot_enter_barrier_after_reboot barrier_walk
  vserver a stop >/dev/null 2>&1
  ;;
esac
