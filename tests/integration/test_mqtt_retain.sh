#!/usr/bin/env bash
# Retained-message compaction with real peers: a paho QoS 1 fleet republishing retained
# state (tests/integration/mqtt_retain_fleet.py) and mosquitto_pub -r / mosquitto_sub.
# __mqtt_retained stays bounded (segments, bytes, records above the log start) and a new
# subscriber gets exactly the latest retained value per topic and nothing for cleared
# topics, live, after a normal restart and after kill -9 mid-stream.
set -u
source "$(dirname "$0")/lib.sh"
dir=$(mktemp -d); trap 'stop_sluice KILL; rm -rf "$dir"' EXIT
port=$(free_port); mport=$(free_port)
write_conf "$dir/s.yaml" "$dir/data" "$port" "  mqtt:
    bind: 127.0.0.1:$mport"
SUB="timeout -k 2 10 mosquitto_sub -h 127.0.0.1 -p $mport"
PUB="timeout -k 2 60 mosquitto_pub -h 127.0.0.1 -p $mport"
FLEET="timeout 90 $PY $ROOT/tests/integration/mqtt_retain_fleet.py"
RDIR="$dir/data/__mqtt_retained-0"
TOPICS=20

metric() {  # metric NAME: its value for topic __mqtt_retained (or unlabelled)
  curl -s "http://127.0.0.1:$port/metrics" |
    awk -v n="$1" '$1 ~ "^"n"(\\{topic=\"__mqtt_retained\".*)?$" {print $2; exit}'
}
up() {  # start_sluice, then wait (bounded) for the MQTT port: replay runs before it opens
  start_sluice "$dir/s.yaml" "$dir/log" || return 1
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$mport") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
seg_count() { find "$RDIR" -name '*.log' | wc -l; }
seg_bytes() { find "$RDIR" -name '*.log' -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
up || { bad "start"; finish; exit; }

# mosquitto: 3000 retained updates of one topic, and a cleared topic
$PUB -r -t mosq/cleared -m "short-lived" -q 1
$PUB -r -t mosq/cleared -n -q 1
seq 1 3000 | $PUB -r -t mosq/seq -q 1 -l
out=$($SUB -t mosq/seq -C 1 -W 3 2>&1)
check "mosquitto: 3000 retained updates, the subscriber gets the last" test "$out" = "3000"
out=$($SUB -t mosq/cleared -W 2 2>/dev/null; true)
check "mosquitto: a cleared topic delivers nothing" test -z "$out"

# the paho fleet: 20 topics x 400 rounds
SLUICE_MQTT=$mport $FLEET publish "$dir/st1" $TOPICS 400 60 > "$dir/fleet.out" 2>&1
check "fleet published (clears acknowledged)" test $? -eq 0
cat "$dir/fleet.out"
SLUICE_MQTT=$mport $FLEET verify "$dir/st1" exact > "$dir/v.out" 2>&1; rc=$?
cat "$dir/v.out"
check "live: latest retained value per topic, cleared topics empty" test $rc -eq 0

comp=$(metric sluice_mqtt_retained_compactions_total)
start_off=$(metric sluice_log_start_offset); hw=$(metric sluice_log_high_watermark)
size=$(metric sluice_log_size_bytes); appended=$(metric sluice_log_bytes_appended_total)
echo "  compactions ${comp:-?}, log start ${start_off:-?}, high watermark ${hw:-?}," \
     "size ${size:-?} B of ${appended:-?} B appended, $(seg_count) segment(s) $(seg_bytes) B"
check "compacted several times" test "${comp:-0}" -ge 5
check "records above the log start bounded (<= 2 x live + 1000 + 100 in flight)" \
  test $(( ${hw:-0} - ${start_off:-0} )) -le $(( 2 * (TOPICS + 2) + 1000 + 100 ))
check "at most 2 segment files" test "$(seg_count)" -le 2
check "segments hold under a quarter of the bytes appended" \
  test $(( $(seg_bytes) * 4 )) -lt "${appended:-0}"
check "log-start-offset file written" test -f "$RDIR/log-start-offset"

# a normal restart
stop_sluice TERM; check "SIGTERM exits 0" test $? -eq 0
up || bad "restart"
SLUICE_MQTT=$mport $FLEET verify "$dir/st1" exact > "$dir/v.out" 2>&1; rc=$?
cat "$dir/v.out"
check "after a restart: latest retained value per topic, cleared topics empty" test $rc -eq 0
out=$($SUB -t mosq/seq -C 1 -W 3 2>&1)
check "after a restart: mosquitto's topic keeps its last value" test "$out" = "3000"
out=$($SUB -t mosq/cleared -W 2 2>/dev/null; true)
check "after a restart: the cleared topic stays cleared" test -z "$out"
check "replay loaded exactly the live set" \
  grep -q "$((TOPICS + 1)) retained message(s) loaded" "$dir/log"

# kill -9 mid-stream, three times (compactions run about every 1000 publishes)
for n in 1 2 3; do
  SLUICE_MQTT=$mport $FLEET publish "$dir/st-k$n" $TOPICS 100000 4 $((n * 1000000)) > "$dir/fk.out" 2>&1 &
  fpid=$!
  sleep 1.$((n * 2))
  kill -KILL "$SLUICE_PID"; wait "$SLUICE_PID" 2>/dev/null; SLUICE_PID=""
  wait $fpid
  cat "$dir/fk.out"
  up || bad "restart after kill -9 ($n)"
  SLUICE_MQTT=$mport $FLEET verify "$dir/st-k$n" range > "$dir/v.out" 2>&1; rc=$?
  cat "$dir/v.out"
  check "kill -9 ($n): every topic at its last acknowledged value or a later one sent" \
    test $rc -eq 0
  check "kill -9 ($n): updates were acknowledged before the kill" \
    bash -c "! grep -q ' 0 acked updates' '$dir/fk.out'"
  out=$($SUB -t mosq/seq -C 1 -W 3 2>&1)
  check "kill -9 ($n): mosquitto's topic keeps its last value" test "$out" = "3000"
done
echo "  $(grep -c 'compacted __mqtt_retained' "$dir/log") compaction(s) logged," \
     "$(seg_count) segment(s) $(seg_bytes) B now"
check "no error logged" bash -c "! grep -E ' (error|fatal) ' '$dir/log'"
stop_sluice TERM; check "SIGTERM exits 0 at the end" test $? -eq 0
finish
