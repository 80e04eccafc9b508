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

# REST publish over keep-alive connections, with flush: always (the default: 201 after
# fsync) and flush: os (201 after write()). Two clients: wrk from Debian (a Lua request()
# per request) and http_load, a C client (tests/bench/http_load.c) that costs less CPU
# per request; on 2 cores the client's CPU is taken from the server. Then the same
# clients against lws_floor (tests/bench/lws_floor.c): an lws server that answers 201
# and does nothing else, what lws itself serves here, for the ratio.
PY=/usr/bin/python3
rest_run() {  # rest_run NAME SCRIPT EVENTS_PER_REQUEST PORT [CONNECTIONS (64)]
  local rps=() i r
  for i in $(seq 1 "$RUNS"); do
    r=$(wrk -t1 -c"${5:-64}" -d5s -s "$2" --latency "http://127.0.0.1:$4/" 2>&1)
    echo "$r" | grep -E "Requests/sec|99%|Non-2xx" | sed "s/^/  [$1 run $i] /" | tee -a "$out"
    rps+=("$(echo "$r" | awk '/Requests\/sec/ {print $2}')")
  done
  report "$1" "$3" "${rps[@]}"
}
load_run() {  # load_run NAME single|batch EVENTS_PER_REQUEST PORT [CONNECTIONS (64)]
  local rps=() i r
  for i in $(seq 1 "$RUNS"); do
    r=$("$BUILD/bench/http_load" -p "$4" -c "${5:-64}" -d 5 -m "$2" 2>&1)
    echo "$r" | sed "s/^/  [$1 run $i] /" | tee -a "$out"
    rps+=("$(echo "$r" | tr ' ' '\n' | awk -F= '$1 == "requests_per_s" {print $2}')")
  done
  report "$1" "$3" "${rps[@]}"
}
report() {  # report NAME EVENTS_PER_REQUEST RPS...
  local name=$1 k=$2 med; shift 2
  med=$(printf '%s\n' "$@" | median)
  say "rest_$name requests_per_s_median=$med events_per_s_median=$(awk -v m="$med" -v k="$k" 'BEGIN {printf "%.0f", m*k}')"
}
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
# up once it answers an HTTP request (a POST: lws_floor answers nothing else)
wait_up() { for _ in $(seq 1 50); do curl -s -o /dev/null -d x "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; return 1; }
# sluice_up LOG_SETTINGS: a sluice on a fresh data dir and a free port ($port, $pid, $dir),
# 4 partitions and the given log settings; true once it answers. sluice_down stops it.
sluice_up() {
  port=$(free_port)
  dir=$(mktemp -d)
  cat > "$dir/s.yaml" <<YAML
gateway: {data_dir: $dir/data, log_level: warn}
log: {partitions: 4, $1}
listeners: {http: {bind: "127.0.0.1:$port"}}
YAML
  "$BUILD/sluice" -c "$dir/s.yaml" > "$dir/log" 2>&1 &
  pid=$!
  wait_up "$port" && kill -0 $pid 2>/dev/null
}
sluice_down() { kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"; }
for flush in always os; do
  if sluice_up "flush: $flush"; then
    rest_run "publish_flush_$flush" tests/bench/post.lua 1 "$port"
    # with fsync per answer the rate is bound by latency: more in flight shares more
    [ "$flush" = always ] && rest_run "publish_flush_always_c256" tests/bench/post.lua 1 "$port" 256
    rest_run "batch_flush_$flush" tests/bench/post_batch.lua 100 "$port"
    # the same batch size with data that compresses like real telemetry, different
    # subjects (so keys spread the events over the partitions), 64 different bodies
    rest_run "batch_telemetry_flush_$flush" tests/bench/post_batch_telemetry.lua 100 "$port"
    load_run "publish_flush_${flush}_cclient" single 1 "$port"
    load_run "batch_flush_${flush}_cclient" batch 100 "$port"
  fi
  sluice_down
done
# Batches with flush: always are bound by the disk here (BENCHMARKS.md): the same two
# batch loads with compression: lz4, which writes a fraction of the bytes for more loop
# CPU (one-letter data compresses far better than the telemetry).
if sluice_up "flush: always, compression: lz4"; then
  rest_run "batch_flush_always_lz4" tests/bench/post_batch.lua 100 "$port"
  rest_run "batch_telemetry_flush_always_lz4" tests/bench/post_batch_telemetry.lua 100 "$port"
fi
sluice_down
port=$(free_port)
"$BUILD/bench/lws_floor" "$port" &
pid=$!
if wait_up "$port"; then
  rest_run "floor_publish" tests/bench/post.lua 1 "$port"
  rest_run "floor_batch" tests/bench/post_batch.lua 100 "$port"
  load_run "floor_publish_cclient" single 1 "$port"
  load_run "floor_batch_cclient" batch 100 "$port"
fi
kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null

# MQTT side by side with mosquitto (same generator, same run), medians of RUNS.
if [ -x "$BUILD/bench/mqtt_load" ] && [ -x tests/bench/mqtt_bench.sh ]; then
  say "## mqtt_bench (sluice vs mosquitto)"
  for i in $(seq 1 "$RUNS"); do
    tests/bench/mqtt_bench.sh "$BUILD" 2>&1 | sed "s/^/  [run $i] /" | tee -a "$out"
  done
fi
say "# results in $out"
