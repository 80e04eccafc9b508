#!/usr/bin/env bash
# MQTT side by side: the same C load generator (build/bench/mqtt_load) against mosquitto
# (persistence false) and against sluice (flush: always, every message persisted), in
# the same run, on free loopback ports. Prints one line per run and the ratios.
#   tests/bench/mqtt_bench.sh [BUILD_DIR]     (default build; needs BUILD/sluice and
#                                              BUILD/bench/mqtt_load)
# Env: QUICK=1 for a short smoke run.
set -u
B=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LOAD="$ROOT/$B/bench/mqtt_load"; SLUICE="$ROOT/$B/sluice"
PY=/usr/bin/python3
for f in "$LOAD" "$SLUICE"; do [ -x "$f" ] || { echo "mqtt_bench: $f missing"; exit 1; }; done
command -v mosquitto >/dev/null || { echo "mqtt_bench: mosquitto not installed (make deps)"; exit 1; }
ulimit -n 65536 2>/dev/null || true
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
dir=$(mktemp -d); BPID=""
cleanup() { [ -n "$BPID" ] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

# fan-out: a saturating rate for delivered/s, then a light one (LR x 1,000 deliveries/s)
# for latency
if [ "${QUICK:-0}" = 1 ]; then N0=50000; N1=20000; FN=300; FR=500; LN=50; LR=25; IDLE=2000
else N0=400000; N1=200000; FN=3000; FR=1000; LN=200; LR=40; IDLE=10000; fi

start_mosquitto() {
  MPORT=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nmax_connections -1\n' "$MPORT" > "$dir/m.conf"
  mosquitto -c "$dir/m.conf" > "$dir/m.log" 2>&1 & BPID=$!
  for _ in $(seq 1 50); do $PY -c "import socket; socket.create_connection(('127.0.0.1',$MPORT),0.2)" 2>/dev/null && return 0; sleep 0.1; done
  echo "mosquitto did not start"; return 1
}
start_sluice() {
  MPORT=$(free_port); local hp; hp=$(free_port)
  rm -rf "$dir/data"
  cat > "$dir/s.yaml" <<YAML
gateway:
  data_dir: $dir/data
  log_level: warn
log:
  partitions: 1
  flush: always
listeners:
  http:
    bind: 127.0.0.1:$hp
  mqtt:
    bind: 127.0.0.1:$MPORT
    max_inflight: 1024
YAML
  "$SLUICE" -c "$dir/s.yaml" > "$dir/s.log" 2>&1 & BPID=$!
  for _ in $(seq 1 50); do $PY -c "import socket; socket.create_connection(('127.0.0.1',$MPORT),0.2)" 2>/dev/null && return 0; sleep 0.1; done
  echo "sluice did not start"; cat "$dir/s.log"; return 1
}
stop_broker() { kill "$BPID" 2>/dev/null; wait "$BPID" 2>/dev/null; BPID=""; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

declare -A R
for broker in mosquitto sluice; do
  "start_$broker" || exit 1
  cmd="$LOAD -p $MPORT -m pub -c 4 -n $N0 -q 0 -s 64"
  out=$($cmd); echo "$broker qos0: $out   [$cmd]"; R[$broker.q0]=$(field msgs_per_sec "$out")
  cmd="$LOAD -p $MPORT -m pub -c 4 -n $N1 -q 1 -s 64 -w 64"
  out=$($cmd); echo "$broker qos1: $out   [$cmd]"; R[$broker.q1]=$(field msgs_per_sec "$out")
  cmd="$LOAD -p $MPORT -m fanout -S 1000 -n $FN -q 0 -s 64 -r $FR"
  out=$($cmd); echo "$broker fanout: $out   [$cmd]"
  R[$broker.fan]=$(field delivered_per_sec "$out"); R[$broker.p99]=$(field p99_us "$out")
  stop_broker; "start_$broker" || exit 1     # no backlog left from the saturating run
  cmd="$LOAD -p $MPORT -m fanout -S 1000 -n $LN -q 0 -s 64 -r $LR"
  out=$($cmd); echo "$broker fanout-latency: $out   [$cmd]"; R[$broker.lp99]=$(field p99_us "$out")
  stop_broker
  "start_$broker" || exit 1
  sleep 0.3; before=$(rss_kib "$BPID")
  $LOAD -p "$MPORT" -m idle -c "$IDLE" -d 6 > "$dir/idle.out" 2>&1 & lp=$!
  sleep 5; after=$(rss_kib "$BPID"); wait $lp
  echo "$broker idle: $(cat "$dir/idle.out") rss_before_kib=$before rss_with_${IDLE}_kib=$after   [$LOAD -p PORT -m idle -c $IDLE -d 6]"
  R[$broker.rss]=$after; R[$broker.rss0]=$before
  stop_broker
done
ratio() { $PY -c "import sys; a,b=float(sys.argv[1] or 0),float(sys.argv[2] or 0); print('%.2f' % (a/b) if b else 'n/a')" "$1" "$2"; }
echo "ratio sluice/mosquitto: qos0 $(ratio "${R[sluice.q0]}" "${R[mosquitto.q0]}")x (goal >= 1.5)," \
     "qos1 $(ratio "${R[sluice.q1]}" "${R[mosquitto.q1]}")x (goal >= 1.0)," \
     "fan-out delivered $(ratio "${R[sluice.fan]}" "${R[mosquitto.fan]}")x (goal >= 2)," \
     "fan-out p99 ${R[sluice.p99]} us vs ${R[mosquitto.p99]} us (saturated)," \
     "${R[sluice.lp99]} us vs ${R[mosquitto.lp99]} us at $LR msg/s," \
     "sluice RSS with $IDLE idle connections $(( ${R[sluice.rss]:-0} / 1024 )) MiB (goal <= 40)"
