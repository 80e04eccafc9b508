#!/usr/bin/env bash
# Every suite against one build dir: unit, integration, fuzz smoke (unless SKIP_FUZZ=1).
# Prints each suite's result and a final "N passed, N failed" line.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
total_pass=0; total_fail=0
tally() {   # tally NAME LOGFILE RC
  local line p f
  line=$(grep -E '^[a-z-]+: [0-9]+ passed, [0-9]+ failed' "$2" | tail -1)
  p=$(sed -n 's/.*: \([0-9]*\) passed.*/\1/p' <<<"$line"); p=${p:-0}
  f=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$line"); f=${f:-0}
  if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  echo "== $1: $p passed, $f failed (exit $3)"
}
logdir=$(mktemp -d)
tests/run_unit.sh $(ls "$BUILD"/tests/test_* | grep -v '\.d$') 2>&1 | tee "$logdir/unit"; tally unit "$logdir/unit" "${PIPESTATUS[0]}"
SLUICE_BIN="$PWD/$BUILD/sluice" tests/integration/run.sh 2>&1 | tee "$logdir/integration"
tally integration "$logdir/integration" "${PIPESTATUS[0]}"
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  tests/fuzz/run.sh "${FUZZ_SMOKE_SECONDS:-5}" $(ls "$BUILD"/fuzz/fuzz_* | grep -v '\.d$') 2>&1 | tee "$logdir/fuzz"
  tally fuzz "$logdir/fuzz" "${PIPESTATUS[0]}"
fi
rm -rf "$logdir"
echo "all: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
