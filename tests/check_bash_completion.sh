#!/usr/bin/env bash
# The bash completion (data/bash-completion/vunify) as bash runs it on TAB:
# options from the programs' --help, guest names from the configuration
# base (--confdir and $VSERVER_CONFDIR), vserver's commands, subcommands,
# choices; a guest directory with a hostile name is completed, not run.
#
#   tests/check_bash_completion.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$(realpath "$1")
build=$(realpath "$2")
work=$(mktemp -d /tmp/vunify-completion.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/conf/web1" "$work/conf/web2" "$work/conf/db1" "$work/conf/.defaults" \
  "$work/other/mail1" "$work/conf/\$(touch pwned)" "$work/cwd"
cd "$work/cwd" # where the hostile name would make its file
export PATH="$build/tools:$PATH" VSERVER_CONFDIR=$work/conf
# shellcheck source=/dev/null
source "$src/data/bash-completion/vunify"

status=0
# complete "WORDS..." (the last one is being completed) -> COMPREPLY, sorted
complete_line() {
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  _vunify_suite
  printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
expect() {
  local want=$1
  shift
  local got
  got=$(complete_line "$@")
  if [ "$got" != "$want" ]; then
    echo "completion of '$*': got '$got', want '$want'"
    status=1
  fi
}
expect "web1 web2" vunify we
expect "web1 web2" vunify -n we
expect '$(touch pwned) db1 web1 web2' vserver ""
expect "start status stop" vserver web1 st
expect "externalize internalize" vserver web1 pkgmgmt ""
expect "mail1" vunify --confdir "$work/other" m
expect "mail1" vunify "--confdir=$work/other" ""
expect "--dry-run" vunify --dry
expect "--manually --max-size --memory-limit --min-size" vhashify --m
expect "check set" vbarrier ""
expect "load" vattr-bpf lo
expect "bpf" setattr --attr-backend b
expect "" vapt-get web1 -- inst
got=$(complete_line vunify "")
case " $got " in
  *' $(touch pwned) '*) ;;
  *)
    echo "the odd guest name is not offered: '$got'"
    status=1
    ;;
esac
[ ! -e "$work/cwd/pwned" ] || {
  echo "a guest directory's name was run"
  status=1
}
exit $status
