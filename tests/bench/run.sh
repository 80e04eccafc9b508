#!/usr/bin/env bash
# make bench: every benchmark, each run RUNS times, medians reported. Not a test: it
# prints figures for BENCHMARKS.md (and build/bench/results.txt).
set -u
BUILD=${1:-build}
RUNS=${RUNS:-3}
cd "$(dirname "$0")/../.."
out="$BUILD/bench/results.txt"; mkdir -p "$BUILD/bench"; : > "$out"
say() { echo "$*" | tee -a "$out"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else print a[int((NR+1)/2)]}'; }

say "# sluice benchmarks $(date -u +%FT%TZ) on $(nproc) cores, $RUNS runs each (medians)"
for b in "$BUILD"/bench/bench_*; do
  [ -x "$b" ] || continue
  case "$b" in *.d) continue ;; esac
  say "## $(basename "$b")"
  "$b" 2>&1 | tee -a "$out"
done

# REST publish over keep-alive connections (wrk from Debian), with flush: always (the
# default: 201 after fsync) and flush: os (201 after write()).
PY=/usr/bin/python3
rest_run() {  # rest_run NAME SCRIPT EVENTS_PER_REQUEST PORT [CONNECTIONS (64)]
  local rps=() i r
  for i in $(seq 1 "$RUNS"); do
    r=$(wrk -t1 -c"${5:-64}" -d5s -s "$2" --latency "http://127.0.0.1:$4/" 2>&1)
    echo "$r" | grep -E "Requests/sec|99%|Non-2xx" | sed "s/^/  [$1 run $i] /" | tee -a "$out"
    rps+=("$(echo "$r" | awk '/Requests\/sec/ {print $2}')")
  done
  local med; med=$(printf '%s\n' "${rps[@]}" | median)
  say "rest_$1 requests_per_s_median=$med events_per_s_median=$(awk -v m="$med" -v k="$3" 'BEGIN {printf "%.0f", m*k}')"
}
for flush in always os; do
  port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  dir=$(mktemp -d)
  cat > "$dir/s.yaml" <<YAML
gateway: {data_dir: $dir/data, log_level: warn}
log: {partitions: 4, flush: $flush}
listeners: {http: {bind: "127.0.0.1:$port"}}
YAML
  "$BUILD/sluice" -c "$dir/s.yaml" > "$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
  if kill -0 $pid 2>/dev/null; then
    rest_run "publish_flush_$flush" tests/bench/post.lua 1 "$port"
    # with fsync per answer the rate is bound by latency: more in flight shares more
    [ "$flush" = always ] && rest_run "publish_flush_always_c256" tests/bench/post.lua 1 "$port" 256
    rest_run "batch_flush_$flush" tests/bench/post_batch.lua 100 "$port"
  fi
  kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
  rm -rf "$dir"
done

# MQTT side by side with mosquitto (same generator, same run), medians of RUNS.
if [ -x "$BUILD/bench/mqtt_load" ] && [ -x tests/bench/mqtt_bench.sh ]; then
  say "## mqtt_bench (sluice vs mosquitto)"
  for i in $(seq 1 "$RUNS"); do
    tests/bench/mqtt_bench.sh "$BUILD" 2>&1 | sed "s/^/  [run $i] /" | tee -a "$out"
  done
fi
say "# results in $out"
