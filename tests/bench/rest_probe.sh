#!/usr/bin/env bash
# rest_probe.sh SLUICE SCRIPT [PARTITIONS (4)] [CONNECTIONS (64)] [FLUSH (always)] [LOG_YAML]
#
# One sluice on a fresh data dir and a free loopback port, one 5 s wrk run of SCRIPT
# (tests/bench/post.lua or post_batch.lua), then: requests/s, p50/p99, the log's fsync
# count and mean, and each sluice thread's CPU time per request (from
# /proc/PID/task/*/stat; "loop" is the main thread). LOG_YAML is added to the log
# section, e.g. ", preallocate: 0". For A/B runs of two builds, alternate them:
#   for i in 1 2 3; do for b in old/sluice build/sluice; do
#     tests/bench/rest_probe.sh $b tests/bench/post.lua; done; done
set -u
bin=$1; script=$2; parts=${3:-4}; conns=${4:-64}; flush=${5:-always}; extra=${6:-}
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/s.yaml" <<YAML
gateway: {data_dir: $dir/data, log_level: warn}
log: {partitions: $parts, flush: $flush $extra}
listeners: {http: {bind: "127.0.0.1:$port"}}
YAML
"$bin" -c "$dir/s.yaml" > "$dir/log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
ticks() { for t in /proc/$pid/task/*; do echo "$(basename "$t") $(awk '{print $14 + $15}' "$t/stat")"; done | sort; }
ticks > "$dir/a"
wrk -t1 -c"$conns" -d5s -s "$script" --latency "http://127.0.0.1:$port/" > "$dir/w" 2>&1
ticks > "$dir/b"
n=$(awk '/requests in/ {print $1}' "$dir/w")
echo "flush=$flush partitions=$parts connections=$conns $(awk '/Requests\/sec/ {print "requests_per_s=" $2} / 50%/ {print "p50=" $2} / 99%/ {print "p99=" $2}' "$dir/w" | tr '\n' ' ')"
curl -s "http://127.0.0.1:$port/metrics" |
  awk '/^sluice_log_fsync_seconds_sum/ {s=$2} /^sluice_log_fsync_seconds_count/ {c=$2}
       END {if (c > 0) printf "fsyncs=%d mean_fsync_ms=%.3f\n", c, s * 1000 / c}'
hz=$(getconf CLK_TCK)
join "$dir/a" "$dir/b" | awk -v n="${n:-0}" -v hz="$hz" -v pid="$pid" '
  n > 0 && $3 > $2 {printf "  %-8s %7.1f us/request\n", ($1 == pid ? "loop" : "tid " $1), ($3 - $2) * 1e6 / hz / n}'
kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
