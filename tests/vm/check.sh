#!/bin/sh
# One VM check as a ctest result: tests/vm/check.sh RESULTS_FILE NAME...
# exits 0 when every NAME passed in the VM (tests/vm/run.sh wrote
# RESULTS_FILE), 77 (a skip) when the VM could not run here, 1 otherwise.
results=$1
shift
if grep -q '^VMSKIP' "$results" 2>/dev/null; then
  sed 's/^VMSKIP/skipped:/' "$results"
  exit 77
fi
status=0
for name in "$@"; do
  line=$(grep "^VMTEST $name " "$results" 2>/dev/null | head -1)
  case "$line" in
  "VMTEST $name PASS"*) echo "$line" ;;
  "") echo "VMTEST $name: no result (the VM did not run it)"; status=1 ;;
  *) echo "$line"; status=1 ;;
  esac
done
exit $status
