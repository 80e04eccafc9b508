#!/usr/bin/env bash
# kill -9 mid-stream: every record that got a 201 is present after restart, in order per key.
set -u
source "$(dirname "$0")/lib.sh"
dir=$(mktemp -d); trap 'stop_sluice KILL; rm -rf "$dir"' EXIT
port=$(free_port)
write_conf "$dir/s.yaml" "$dir/data" "$port"
start_sluice "$dir/s.yaml" "$dir/log" || { bad "start"; finish; exit; }
url="http://127.0.0.1:$port"
$PY "$ROOT/tests/integration/crash_client.py" publish "$url" crashy "$dir/acks" 8 20 > "$dir/pub.out" 2>&1 &
pub=$!
sleep 2
kill -KILL "$SLUICE_PID"; wait "$SLUICE_PID" 2>/dev/null; SLUICE_PID=""
wait "$pub"
cat "$dir/pub.out"
n=$(wc -l < "$dir/acks")
check "publisher got acknowledgements before the kill ($n)" test "$n" -gt 50
start_sluice "$dir/s.yaml" "$dir/log" || { bad "restart after kill -9"; finish; exit; }
ok "restart after kill -9"
check "every acknowledged record present, in order per key" \
  $PY "$ROOT/tests/integration/crash_client.py" verify "$url" crashy "$dir/acks"
# A second kill while idle and a clean restart keep the same high watermark.
before=$(curl -s "$url/topics/crashy")
kill -KILL "$SLUICE_PID"; wait "$SLUICE_PID" 2>/dev/null; SLUICE_PID=""
start_sluice "$dir/s.yaml" "$dir/log" || bad "second restart"
after=$(curl -s "$url/topics/crashy")
hw() { $PY -c 'import json,sys; d=json.loads(sys.argv[1]); print(sorted((p["partition"],p["high_watermark"]) for p in d["partitions"]))' "$1"; }
check "high watermarks unchanged across an idle kill -9" test "$(hw "$before")" = "$(hw "$after")"
finish
