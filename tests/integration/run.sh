#!/usr/bin/env bash
# Run every integration test script; print a "N passed, N failed" total.
set -u
cd "$(dirname "$0")"
pass=0; fail=0
for t in test_*.sh; do
  [ -f "$t" ] || continue
  echo "-- $t"
  out=$(timeout 600 bash "$t" 2>&1); rc=$?
  printf '%s\n' "$out"
  line=$(printf '%s\n' "$out" | grep -E ': [0-9]+ passed, [0-9]+ failed' | tail -1)
  p=$(sed -n 's/.*: \([0-9]*\) passed.*/\1/p' <<<"$line"); p=${p:-0}
  f=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$line"); f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  pass=$((pass + p)); fail=$((fail + f))
done
echo "integration: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
