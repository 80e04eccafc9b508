#!/usr/bin/env bash
# Run each libFuzzer target for SECONDS seconds on a copy of its seed corpus.
# Usage: tests/fuzz/run.sh SECONDS build/fuzz/fuzz_x ...
set -u
secs=$1; shift
cd "$(dirname "$0")/../.."
pass=0; fail=0
for bin in "$@"; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  work=$(mktemp -d); mkdir -p "$work/corpus"
  [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/corpus/" 2>/dev/null
  if (cd "$work" && ASAN_OPTIONS=detect_leaks=1 "$OLDPWD/$bin" -max_total_time="$secs" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=0 corpus > fuzz.log 2>&1); then
    pass=$((pass + 1)); echo "fuzz: $name ok ($(grep -c . "$work/fuzz.log") log lines, ${secs}s)"
  else
    fail=$((fail + 1)); echo "fuzz: $name FAILED"; tail -40 "$work/fuzz.log"
    mkdir -p build/fuzz-crashes && cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* build/fuzz-crashes/ 2>/dev/null
  fi
  rm -rf "$work"
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
