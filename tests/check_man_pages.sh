#!/usr/bin/env bash
# Every program's man page has the sections an administrator looks for
# (NAME, SYNOPSIS, DESCRIPTION, EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES,
# SEE ALSO naming every other program of the suite; OPTIONS where a
# program takes options), and groff renders it without a warning.
#
#   tests/check_man_pages.sh SOURCE_DIR
set -euo pipefail
man=$1/man
progs=(vunify vhashify vdu setattr showattr vbarrier vserver vps vserver-stat start-vservers
  vapt-get vrpm vattr-bpf)
status=0
for p in "${progs[@]}"; do
  page=$man/$p.8
  [ -f "$page" ] || { echo "$p: no man page"; status=1; continue; }
  sections=(NAME SYNOPSIS DESCRIPTION "EXIT STATUS" ENVIRONMENT FILES EXAMPLES "SEE ALSO")
  case $p in vps | vserver-stat) ;; *) sections+=(OPTIONS) ;; esac
  case $p in vserver) sections=("${sections[@]/OPTIONS/CONFIGURATION}") ;; esac
  for s in "${sections[@]}"; do
    grep -qx "\.SH $s" "$page" || { echo "$p.8: no $s section"; status=1; }
  done
  for other in "${progs[@]}"; do
    [ "$other" = "$p" ] && continue
    sed -n '/^\.SH SEE ALSO/,$p' "$page" | grep -q "^\.BR $other (8)" ||
      { echo "$p.8: SEE ALSO does not name $other(8)"; status=1; }
  done
  warnings=$(LC_ALL=C.UTF-8 groff -man -ww -z -Tutf8 "$page" 2>&1 || true)
  [ -z "$warnings" ] || { echo "$p.8: groff: $warnings"; status=1; }
done
exit $status
