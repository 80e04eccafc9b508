#!/usr/bin/env bash
# Run cmocka unit test binaries; print one "N passed, N failed" line; exit non-zero on failure.
set -u
pass=0; fail=0; failed_bins=()
for bin in "$@"; do
  out=$("$bin" 2>&1); rc=$?
  p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  pass=$((pass + p)); fail=$((fail + f))
  if [ "$rc" -ne 0 ]; then failed_bins+=("$bin"); printf '%s\n' "$out" | tail -40; fi
  printf 'unit: %-40s %s passed, %s failed\n' "$(basename "$bin")" "$p" "$f"
done
[ ${#failed_bins[@]} -gt 0 ] && echo "unit: failing: ${failed_bins[*]}"
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
