#!/usr/bin/env bash
# The MQTT bridge (paho) against a real mosquitto on a free loopback port: ingress into
# the log, egress out of it, loop prevention, a broker restart, an append that fails,
# and kill -9 of sluice mid-stream in both directions.
set -u
source "$(dirname "$0")/lib.sh"
command -v mosquitto >/dev/null || { echo "mosquitto missing (tests/deps.sh)"; exit 1; }
dir=$(mktemp -d)
MQ_PID=""; SUB_PID=""; PUB_PID=""
cleanup() {
  stop_sluice KILL
  for p in $SUB_PID $PUB_PID $MQ_PID; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
port=$(free_port); mport=$(free_port)
URL="http://127.0.0.1:$port"
LOGQ() { $PY "$ROOT/tests/integration/mqtt_bridge_log.py" "$URL" "$@"; }

start_mq() {
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mport" > "$dir/mq.conf"
  mosquitto -c "$dir/mq.conf" >> "$dir/mq.log" 2>&1 &
  MQ_PID=$!
  for _ in $(seq 1 50); do
    mosquitto_pub -p "$mport" -t probe -n -q 0 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
stop_mq() { kill "$MQ_PID" 2>/dev/null; wait "$MQ_PID" 2>/dev/null; MQ_PID=""; }
metric() { curl -s "$URL/metrics" | grep -F "$1" | awk '{print $NF}' | head -1; }
wait_metric() {  # wait_metric SERIES VALUE SECONDS
  for _ in $(seq 1 $(($3 * 10))); do [ "$(metric "$1")" = "$2" ] && return 0; sleep 0.1; done
  return 1
}
wait_count() {  # wait_count TOPIC N SECONDS: at least N records
  local c=0
  for _ in $(seq 1 $(($3 * 10))); do
    c=$(LOGQ "$1" count); [ "$c" -ge "$2" ] && return 0; sleep 0.1
  done
  echo "    topic $1 has $c records, wanted $2"; return 1
}
lines() { [ -f "$1" ] && wc -l < "$1" || echo 0; }
wait_lines() {  # wait_lines FILE N SECONDS
  for _ in $(seq 1 $(($3 * 10))); do [ "$(lines "$1")" -ge "$2" ] && return 0; sleep 0.1; done
  echo "    $1 has $(lines "$1") lines, wanted $2"; return 1
}

conf() {  # conf EXTRA_TOPICS_YAML
  write_conf "$dir/s.yaml" "$dir/data" "$port" "topics:
  sensors: {}
  cmds: {}
  echo: {}
$1
bridges:
  edge:
    type: mqtt
    url: mqtt://127.0.0.1:$mport
    client_id: sluice-test-edge
    mqtt_version: 5
    subscribe: [\"sensors/#\", \"echo/#\", \"strict/#\"]
    qos: 1
    reconnect_min: 100ms
    reconnect_max: 1s
routes:
  - from: {bridge: edge, match: \"strict/#\"}
    to: {topic: strict}
  - from: {topic: cmds, match: \"cmds/#\"}
    to: {bridge: edge, destination: \"out/{subject}\"}
  - from: {topic: echo}
    to: {bridge: edge}"
  # no auto-creation: an ingress to an unknown topic fails (the strict/# test)
  sed -i 's/^  flush: always$/  flush: always\n  auto_create: false/' "$dir/s.yaml"
}

start_mq || { bad "mosquitto starts"; finish; exit; }
conf ""
"$SLUICE_BIN" --check -c "$dir/s.yaml" > "$dir/check.out" 2>&1
check "--check accepts the bridge config" test $? -eq 0 || cat "$dir/check.out"
start_sluice "$dir/s.yaml" "$dir/log" || { bad "start"; finish; exit; }
check "bridge connects (sluice_bridge_connected 1)" \
  wait_metric 'sluice_bridge_connected{bridge="edge"}' 1 10

# -- ingress: QoS 1 messages published at mosquitto land in the log
for i in $(seq 1 20); do mosquitto_pub -p "$mport" -q 1 -t "sensors/dev$((i % 3))/temp" -m "in-$i"; done
check "20 messages from mosquitto are in topic sensors" wait_count sensors 20 10
LOGQ sensors payloads | sort > "$dir/in.txt"
check "ingress payloads are exactly in-1..in-20" \
  diff -q "$dir/in.txt" <(for i in $(seq 1 20); do echo "in-$i"; done | sort)
LOGQ sensors records > "$dir/in.json"
check "ingress records carry sluice-bridge: edge and the MQTT topic as subject" \
  $PY -c "import json,sys; r=json.load(open('$dir/in.json')); \
sys.exit(0 if all(x.get('subject','').startswith('sensors/dev') and \
json.dumps(x).find('edge')>=0 for x in r) else 1)"

# -- egress: records published over REST reach a mosquitto subscriber
mosquitto_sub -p "$mport" -q 1 -t 'out/#' -v > "$dir/out.txt" 2>/dev/null &
SUB_PID=$!
sleep 0.3
for i in $(seq 1 10); do
  curl -sf -o /dev/null -X POST --data "out-$i" "$URL/topics/cmds?subject=cmds/dev1/set"
done
check "10 log records reach mosquitto_sub on out/cmds/dev1/set" wait_lines "$dir/out.txt" 10 10
check "egress topic is the rendered destination" \
  test "$(grep -c '^out/cmds/dev1/set out-' "$dir/out.txt")" -eq 10
curl -s "$URL/metrics" | grep -q '__bridge.edge' && ok "the bridge's position shows in /metrics" \
  || bad "the bridge's position shows in /metrics"

# -- loop prevention: the bridge subscribes echo/# and publishes topic echo to {subject}
mosquitto_sub -p "$mport" -q 1 -t 'echo/#' -v > "$dir/echo.txt" 2>/dev/null &
ECHO_PID=$!
sleep 0.3
for i in $(seq 1 5); do
  curl -sf -o /dev/null -X POST --data "loop-$i" "$URL/topics/echo?subject=echo/x"
done
mosquitto_pub -p "$mport" -q 1 -t echo/y -m from-outside
sleep 2
check "topic echo holds 5 REST records + 1 from outside, no echoes" \
  test "$(LOGQ echo count)" -eq 6
check "mosquitto saw each echo message once (6 lines)" test "$(lines "$dir/echo.txt")" -eq 6
kill "$ECHO_PID" 2>/dev/null; wait "$ECHO_PID" 2>/dev/null

# -- metrics
curl -s "$URL/metrics" > "$dir/metrics.txt"
check "metrics: messages in >= 21" \
  test "$(grep -F 'sluice_bridge_messages_in_total{bridge="edge"}' "$dir/metrics.txt" | awk '{print $NF}')" -ge 21
check "metrics: messages out >= 15" \
  test "$(grep -F 'sluice_bridge_messages_out_total{bridge="edge"}' "$dir/metrics.txt" | awk '{print $NF}')" -ge 15
check "metrics: bridge info with state connected" \
  grep -q 'sluice_bridge_info{bridge="edge",type="mqtt",state="connected"' "$dir/metrics.txt"

# -- broker restart: reconnect with backoff, then both directions work again
kill "$SUB_PID" 2>/dev/null; wait "$SUB_PID" 2>/dev/null; SUB_PID=""
stop_mq
check "bridge notices the broker is gone" wait_metric 'sluice_bridge_connected{bridge="edge"}' 0 10
sleep 1.5
start_mq || bad "mosquitto restarts"
check "bridge reconnects after the broker restart" \
  wait_metric 'sluice_bridge_connected{bridge="edge"}' 1 10
check "reconnect attempts counted" \
  test "$(metric 'sluice_bridge_reconnects_total{bridge="edge"}')" -ge 1
before=$(LOGQ sensors count)
sleep 0.5   # the bridge resubscribes right after CONNACK
mosquitto_pub -p "$mport" -q 1 -t sensors/dev9/temp -m after-restart
check "ingress works after the broker restart" wait_count sensors $((before + 1)) 10

# -- an append that fails is not acknowledged: topic strict does not exist and cannot be
# auto-created; the bridge retries; kill -9 now; restart with the topic configured:
# mosquitto redelivers (persistent session) and the message lands.
mosquitto_pub -p "$mport" -q 1 -t strict/a -m must-not-be-lost
sleep 1.5
check "the failing append is retried (sluice_bridge_ingest_retries_total > 0)" \
  test "$(metric 'sluice_bridge_ingest_retries_total{bridge="edge"}')" -ge 1
stop_sluice KILL
conf "  strict: {}"
start_sluice "$dir/s.yaml" "$dir/log" || bad "restart"
check "unacknowledged message redelivered after kill -9 and appended" wait_count strict 1 10
check "its payload is intact" test "$(LOGQ strict payloads | head -1)" = must-not-be-lost

# -- kill -9 mid-stream, ingress: every message mosquitto got PUBACK for from the
# publisher ends up in the log (mosquitto keeps the bridge's session meanwhile)
N=300
$PY - "$mport" "$N" > "$dir/pub.out" 2>&1 <<'PY' &
import sys, time
import paho.mqtt.client as mqtt
port, n = int(sys.argv[1]), int(sys.argv[2])
c = mqtt.Client(client_id="crash-pub", protocol=mqtt.MQTTv311)
c.connect("127.0.0.1", port)
c.loop_start()
acked = 0
for i in range(1, n + 1):
    info = c.publish("sensors/crash/%d" % (i % 4), "crash-%d" % i, qos=1)
    info.wait_for_publish(timeout=10)
    if info.is_published():
        acked += 1
    time.sleep(0.005)
c.loop_stop()
print("acked", acked)
PY
PUB_PID=$!
sleep 0.6
stop_sluice KILL
sleep 0.5
start_sluice "$dir/s.yaml" "$dir/log" || bad "restart after kill -9 (ingress)"
wait "$PUB_PID"; PUB_PID=""
check "publisher got all $N PUBACKs" grep -q "acked $N" "$dir/pub.out"
got=0
for _ in $(seq 1 100); do
  got=$(LOGQ sensors payloads | grep '^crash-' | sort -u | wc -l)
  [ "$got" -ge "$N" ] && break; sleep 0.2
done
check "all $N messages are in the log after kill -9 mid-stream (got $got distinct)" \
  test "$got" -eq "$N"

# -- kill -9 mid-stream, egress: every record in the log reaches mosquitto_sub
mosquitto_sub -p "$mport" -q 1 -t 'out/#' -v > "$dir/out2.txt" 2>/dev/null &
SUB_PID=$!
sleep 0.3
( for i in $(seq 1 200); do
    curl -s -o /dev/null -X POST --data "eg-$i" "$URL/topics/cmds?subject=cmds/dev2/set"
  done ) > /dev/null 2>&1 &
PUB_PID=$!
sleep 0.5
stop_sluice KILL
wait "$PUB_PID"; PUB_PID=""
start_sluice "$dir/s.yaml" "$dir/log" || bad "restart after kill -9 (egress)"
for i in $(seq 201 220); do
  curl -sf -o /dev/null -X POST --data "eg-$i" "$URL/topics/cmds?subject=cmds/dev2/set"
done
LOGQ cmds payloads | grep '^eg-' | sort -u > "$dir/eg-log.txt"
missing=0
for _ in $(seq 1 100); do
  sed -n 's/^out\/cmds\/dev2\/set //p' "$dir/out2.txt" | sort -u > "$dir/eg-sub.txt"
  missing=$(comm -23 "$dir/eg-log.txt" "$dir/eg-sub.txt" | wc -l)
  [ "$missing" -eq 0 ] && break; sleep 0.2
done
check "every one of the $(wc -l < "$dir/eg-log.txt") egress records in the log reached mosquitto ($missing missing)" \
  test "$missing" -eq 0
echo "    egress duplicates after the crash: $(($(grep -c ' eg-' "$dir/out2.txt") - $(wc -l < "$dir/eg-sub.txt")))"

stop_sluice TERM; check "SIGTERM exits 0 with a connected bridge" test $? -eq 0
grep -q "stopped cleanly" "$dir/log" && ok "clean stop logged" || bad "clean stop logged"
finish
