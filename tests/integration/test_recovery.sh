#!/usr/bin/env bash
# Garbage appended to the active segment is truncated at start; the service comes up with
# every record intact and keeps accepting appends.
set -u
source "$(dirname "$0")/lib.sh"
dir=$(mktemp -d); trap 'stop_sluice KILL; rm -rf "$dir"' EXIT
port=$(free_port); url="http://127.0.0.1:$port"
write_conf "$dir/s.yaml" "$dir/data" "$port"
start_sluice "$dir/s.yaml" "$dir/log" || { bad "start"; finish; exit; }
for i in $(seq 1 20); do
  curl -s -o /dev/null -X POST --data "rec-$i" "$url/topics/torn?key=k$i"
done
hw0=$(curl -s "$url/topics/torn" | $PY -c 'import json,sys; print(sum(p["high_watermark"] for p in json.load(sys.stdin)["partitions"]))')
check "20 records published (hw sum $hw0)" test "$hw0" -ge 20
stop_sluice TERM; check "SIGTERM exits 0" test $? -eq 0
seg=$(ls "$dir"/data/torn-*/*.log | head -1)
check "segment files use Kafka's layout" test -f "${seg%.log}.index"
size_before=$(stat -c %s "$seg")
head -c 3000 /dev/urandom >> "$seg"
printf '\x00\x00\x00\x00\x00\x00\x00\x63\x00\x00\x01\x00garbage-half-batch' >> "$seg"
rm -f "${seg%.log}.index"
start_sluice "$dir/s.yaml" "$dir/log" || { bad "start after garbage"; finish; exit; }
ok "service comes up after garbage appended to a segment"
check "torn tail truncated back to the last good batch" test "$(stat -c %s "$seg")" -eq "$size_before"
hw1=$(curl -s "$url/topics/torn" | $PY -c 'import json,sys; print(sum(p["high_watermark"] for p in json.load(sys.stdin)["partitions"]))')
check "high watermark unchanged ($hw0 -> $hw1)" test "$hw0" = "$hw1"
n=0
for p in 0 1 2; do
  c=$(curl -s "$url/topics/torn/partitions/$p/records?offset=0&max=1000" | $PY -c 'import json,sys; print(len(json.load(sys.stdin)))')
  n=$((n + c))
done
check "all $hw0 records readable after recovery ($n)" test "$n" -eq "$hw0"
code=$(curl -s -o "$dir/r" -w '%{http_code}' -X POST --data after "$url/topics/torn")
check "appends continue after recovery (HTTP $code)" test "$code" = 201
check "fsync histogram buckets are cumulative and end at the count" $PY -c '
import sys, urllib.request
t = urllib.request.urlopen(sys.argv[1] + "/metrics").read().decode()
b = [int(l.rsplit(" ", 1)[1]) for l in t.splitlines() if l.startswith("sluice_log_fsync_seconds_bucket")]
c = [int(l.rsplit(" ", 1)[1]) for l in t.splitlines() if l.startswith("sluice_log_fsync_seconds_count")]
sys.exit(0 if b and c and b == sorted(b) and b[-1] == c[0] and c[0] > 0 else 1)' "$url"
check "recovery is visible in /metrics" sh -c "curl -s $url/metrics | grep -q '^sluice_log_recovered_truncated_bytes [1-9]'"
cut=$(sed -n 's/.*\[log\] torn-[0-9]*: recovery cut \([0-9]*\) bytes.*/\1/p' "$dir/log" | head -1)
check "recovery is logged with the bytes cut (${cut:-no line})" test "${cut:-0}" -ge 3000
# A topic's partitions cannot shrink: a lower count on SIGHUP is refused with a warning.
printf 'topics:\n  torn: {partitions: 1}\n' >> "$dir/s.yaml"
kill -HUP "$SLUICE_PID"
for _ in $(seq 1 50); do grep -q "partitions cannot shrink" "$dir/log" && break; sleep 0.1; done
check "shrinking partitions on reload is logged" grep -q "\[log\] torn: partitions cannot shrink: 1 configured, the topic keeps its 3" "$dir/log"
parts=$(curl -s "$url/topics/torn" | $PY -c 'import json,sys; print(len(json.load(sys.stdin)["partitions"]))')
check "the topic keeps its 3 partitions ($parts)" test "$parts" -eq 3
finish
