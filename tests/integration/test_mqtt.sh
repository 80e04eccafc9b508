#!/usr/bin/env bash
# The MQTT listener with real peers: mosquitto_pub / mosquitto_sub (3.1.1 and 5), Python
# paho-mqtt (tests/integration/mqtt_listener.py), outbound topic aliases on the wire
# (tests/integration/mqtt_alias.py), REST read-back, persistence across a restart, and
# kill -9 mid-stream with QoS 1 publishers (tests/integration/mqtt_crash.py), password
# checks off the loop under a CONNECT storm (tests/integration/mqtt_auth_storm.py), SIGHUP
# reload of users and limits (tests/integration/mqtt_reload.py).
set -u
source "$(dirname "$0")/lib.sh"
dir=$(mktemp -d); trap 'stop_sluice KILL; rm -rf "$dir"' EXIT
port=$(free_port); mport=$(free_port)
write_conf "$dir/s.yaml" "$dir/data" "$port" "  mqtt:
    bind: 127.0.0.1:$mport
    max_packet_size: 1MiB"
start_sluice "$dir/s.yaml" "$dir/log" || { bad "start"; finish; exit; }
SUB="timeout -k 2 10 mosquitto_sub -h 127.0.0.1 -p $mport"
PUB="timeout -k 2 10 mosquitto_pub -h 127.0.0.1 -p $mport"

# mosquitto clients, both protocol versions, QoS 0/1/2
for v in mqttv311 mqttv5; do
  $SUB -V $v -t "mosq$v/#" -v -q 2 -C 3 > "$dir/sub.$v" 2>&1 & spid=$!
  sleep 0.3
  for q in 0 1 2; do $PUB -V $v -t "mosq$v/q$q" -m "hello $q" -q $q; done
  wait $spid
  check "mosquitto $v: QoS 0/1/2 round trip" \
    diff <(sort "$dir/sub.$v") <(printf "mosq$v/q0 hello 0\nmosq$v/q1 hello 1\nmosq$v/q2 hello 2\n")
done
$PUB -V mqttv5 -t mosqret/a -m "kept" -q 1 -r
out=$($SUB -V mqttv311 -t 'mosqret/#' -v -C 1 -W 3 2>&1)
check "mosquitto: retained message delivered on subscribe" test "$out" = "mosqret/a kept"
$PUB -V mqttv5 -t mosqprop/x -m "p" -q 1 -D publish user-property who tester
out=$($SUB -V mqttv5 -t 'mosqprop/#' -C 1 -W 3 -F '%t %p' --retained-only 2>&1; true)
rec=$(curl -s "http://127.0.0.1:$port/topics/mosqprop/partitions/0/records?offset=0"; \
      curl -s "http://127.0.0.1:$port/topics/mosqprop/partitions/1/records?offset=0"; \
      curl -s "http://127.0.0.1:$port/topics/mosqprop/partitions/2/records?offset=0")
check "mosquitto v5 publish read back over REST with its subject" grep -q '"subject":"mosqprop/x"\|"subject": "mosqprop/x"' <<<"$rec"

# the paho suite
SLUICE_MQTT=$mport SLUICE_DATA="$dir/data" SLUICE_URL="http://127.0.0.1:$port" timeout 120 $PY "$ROOT/tests/integration/mqtt_listener.py" > "$dir/py.out" 2>&1
py_counts "$dir/py.out" $? mqtt_listener.py

# outbound topic aliases (v5): paho with TopicAliasMaximum, and the wire checked raw
SLUICE_MQTT=$mport timeout 60 $PY "$ROOT/tests/integration/mqtt_alias.py" > "$dir/alias.out" 2>&1
py_counts "$dir/alias.out" $? mqtt_alias.py
check "daemon alive after the MQTT suite" kill -0 "$SLUICE_PID"

# persistent session across a restart (3.1.1 clean session 0, mosquitto_sub -c)
$SUB -V mqttv311 -i keeper -c -q 1 -t 'restart/#' -C 1 -W 2 > /dev/null 2>&1
stop_sluice TERM; check "SIGTERM exits 0" test $? -eq 0
start_sluice "$dir/s.yaml" "$dir/log" || bad "restart"
for i in 1 2 3; do $PUB -V mqttv5 -t restart/x -m "r$i" -q 1; done
out=$($SUB -V mqttv311 -i keeper -c -q 1 -t 'restart/#' -C 3 -W 5 2>&1 | tr '\n' ' ')
check "persistent session survives a restart: offline messages delivered" test "$out" = "r1 r2 r3 "
out=$($SUB -V mqttv311 -t 'mosqret/#' -v -C 1 -W 3 2>&1)
check "retained message survives a restart" test "$out" = "mosqret/a kept"

# kill -9 mid-stream with QoS 1 publishers: every PUBACKed message is there after restart
SLUICE_MQTT=$mport timeout 60 $PY "$ROOT/tests/integration/mqtt_crash.py" publish "$dir/acked" > "$dir/crash.out" 2>&1 &
cpid=$!
sleep 1.5
kill -KILL "$SLUICE_PID"; wait "$SLUICE_PID" 2>/dev/null; SLUICE_PID=""
wait $cpid
start_sluice "$dir/s.yaml" "$dir/log" || bad "restart after kill -9"
SLUICE_MQTT=$mport timeout 60 $PY "$ROOT/tests/integration/mqtt_crash.py" verify "$dir/acked" >> "$dir/crash.out" 2>&1
crc=$?
cat "$dir/crash.out"
check "kill -9 mid-stream: every PUBACKed QoS 1 message present after restart" test $crc -eq 0
stop_sluice TERM; check "SIGTERM exits 0 after the crash test" test $? -eq 0

# authentication: users with PBKDF2 hashes, anonymous refused
hash=$($PY -c 'import hashlib,base64,os; s=os.urandom(12); print("pbkdf2-sha256$2000$"+base64.b64encode(s).decode()+"$"+base64.b64encode(hashlib.pbkdf2_hmac("sha256",b"s3cret",s,2000)).decode())')
write_conf "$dir/a.yaml" "$dir/data" "$port" "  mqtt:
    bind: 127.0.0.1:$mport
    allow_anonymous: false
    users:
      device1: \"$hash\""
start_sluice "$dir/a.yaml" "$dir/log" || bad "start with users"
check "auth: right password accepted" $PUB -V mqttv5 -u device1 -P s3cret -t auth/x -m ok -q 1
out=$($PUB -V mqttv5 -u device1 -P wrong -t auth/x -m no -q 1 2>&1); rc=$?
check "auth: wrong password refused (v5 0x86)" test $rc -ne 0 -a -n "$(grep -i 'bad user name or password\|not authori' <<<"$out")"
out=$($PUB -V mqttv311 -t auth/x -m no -q 1 2>&1); rc=$?
check "auth: anonymous refused when allow_anonymous is false" test $rc -ne 0
stop_sluice TERM; check "SIGTERM exits 0 after the auth checks" test $? -eq 0

# SIGHUP reloads the listener's users, allow_anonymous and per-client limits for new
# connections; connected clients stay; a bad users entry keeps the running config
# (tests/integration/mqtt_reload.py rewrites the file and signals the daemon by PID)
hash1=$($PY -c 'import hashlib,base64,os; s=os.urandom(12); print("pbkdf2-sha256$2000$"+base64.b64encode(s).decode()+"$"+base64.b64encode(hashlib.pbkdf2_hmac("sha256",b"pw1",s,2000)).decode())')
write_conf "$dir/r.yaml" "$dir/data" "$port" "  mqtt:
    bind: 127.0.0.1:$mport
    max_packet_size: 1MiB
    allow_anonymous: true
    users:
      a: \"$hash1\""
start_sluice "$dir/r.yaml" "$dir/rlog" || bad "start for the reload checks"
SLUICE_CONF="$dir/r.yaml" SLUICE_PID=$SLUICE_PID SLUICE_LOG="$dir/rlog" SLUICE_MQTT=$mport \
  timeout 120 $PY "$ROOT/tests/integration/mqtt_reload.py" > "$dir/reload.out" 2>&1
py_counts "$dir/reload.out" $? mqtt_reload.py
out=$($SUB -V mqttv5 -u b -P pwb -t 'reload/#' -C 1 -W 1 2>&1); rc=$?
check "after the reloads mosquitto_sub as the added user b connects" test $rc -eq 27 -o $rc -eq 0
stop_sluice TERM; check "SIGTERM exits 0 after the reload checks" test $? -eq 0
grep -q ' error \[mqtt\|AddressSanitizer\|runtime error' "$dir/rlog" && bad "errors in the reload log"

# password hashes off the loop thread: a storm of password CONNECTs for a user with a
# 200,000-iteration hash while a QoS 1 publisher's round trips stay fast; the cache; the
# pending-check bound (0x89); then SIGTERM with checks still queued
# (tests/integration/mqtt_auth_storm.py)
iter=200000
slowhash=$($PY -c 'import hashlib,base64,os,sys; n=int(sys.argv[1]); s=os.urandom(16); print("pbkdf2-sha256$%d$" % n+base64.b64encode(s).decode()+"$"+base64.b64encode(hashlib.pbkdf2_hmac("sha256",b"s3cret",s,n)).decode())' $iter)
write_conf "$dir/st.yaml" "$dir/data" "$port" "  mqtt:
    bind: 127.0.0.1:$mport
    allow_anonymous: true
    users:
      slow: \"$slowhash\""
start_sluice "$dir/st.yaml" "$dir/log" || bad "start with a slow hash"
SLUICE_MQTT=$mport SLUICE_ITER=$iter SLUICE_URL="http://127.0.0.1:$port" SLUICE_PARK_HOLD=6 \
  timeout 120 $PY "$ROOT/tests/integration/mqtt_auth_storm.py" leave-parked > "$dir/storm.out" 2>&1 &
stpid=$!
for _ in $(seq 1 600); do
  grep -q 'leaving .* parked\|passed, .* failed' "$dir/storm.out" 2>/dev/null && break
  sleep 0.1
done
check "auth storm: checks still parked when SIGTERM comes" grep -q 'leaving [1-9][0-9]* CONNECTs parked' "$dir/storm.out"
t0=$(date +%s%N)
stop_sluice TERM; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "SIGTERM with password checks in flight exits 0" test $rc -eq 0
check "SIGTERM with password checks in flight is quick (${ms} ms < 3000)" test "$ms" -lt 3000
wait $stpid
py_counts "$dir/storm.out" $? mqtt_auth_storm.py
grep -q ' error \[mqtt\|AddressSanitizer\|runtime error' "$dir/log" && bad "errors in the daemon log"
finish
