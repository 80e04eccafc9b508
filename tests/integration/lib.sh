# Shared helpers for integration tests (sourced). Every process started is stopped by
# PID; loops are bounded in count and time; only 127.0.0.1 is used.
PY=/usr/bin/python3
: "${SLUICE_BIN:?SLUICE_BIN must point at build/sluice}"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
T_PASS=0; T_FAIL=0
SLUICE_PID=""

# A free loopback port below the kernel's ephemeral range (32768-60999 here): a port the
# kernel hands out for bind(0) is also one it may hand to any client socket's connect()
# before the server binds it, and a test's own clients (hundreds of MQTT connections)
# made that race real ("cannot listen ... (-1 98)").
free_port() {
  $PY -c '
import random, socket
for _ in range(200):
    port = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
'
}

ok()   { T_PASS=$((T_PASS + 1)); echo "  ok   $*"; }
bad()  { T_FAIL=$((T_FAIL + 1)); echo "  FAIL $*"; }
check() { # check "description" command...
  local what=$1; shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}

# py_counts OUT RC NAME: show a Python suite's output file OUT, add its closing
# "N passed, M failed" to the totals, and count a failure if it exited RC != 0 without
# reporting one (it crashed or timed out).
py_counts() {
  local line p f
  cat "$1"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
  p=$(sed -n 's/^\([0-9]*\) passed.*/\1/p' <<<"$line"); f=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$line")
  T_PASS=$((T_PASS + ${p:-0})); T_FAIL=$((T_FAIL + ${f:-0}))
  [ "$2" -ne 0 ] && [ "${f:-0}" -eq 0 ] && bad "$3 exit $2"
  return 0
}

# write_conf FILE DATA_DIR HTTP_PORT [extra yaml appended]
write_conf() {
  cat > "$1" <<YAML
gateway:
  data_dir: $2
  log_level: info
log:
  partitions: 3
  flush: always
listeners:
  http:
    bind: 127.0.0.1:$3
    web_root: $ROOT/web
YAML
  [ $# -ge 4 ] && printf '%s\n' "$4" >> "$1"
  return 0
}

# start_sluice CONF LOGFILE: starts, waits for /healthz (bounded), sets SLUICE_PID
start_sluice() {
  local conf=$1 log=$2 port
  port=$(sed -n 's/.*bind: 127.0.0.1:\([0-9]*\).*/\1/p' "$conf" | head -1)
  "$SLUICE_BIN" -c "$conf" >>"$log" 2>&1 &
  SLUICE_PID=$!
  for _ in $(seq 1 100); do
    if curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; then return 0; fi
    if ! kill -0 "$SLUICE_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "sluice did not come up; log:"; tail -30 "$log"
  return 1
}

stop_sluice() {  # stop_sluice [SIGNAL]
  [ -n "$SLUICE_PID" ] || return 0
  kill "-${1:-TERM}" "$SLUICE_PID" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$SLUICE_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SLUICE_PID" 2>/dev/null
  wait "$SLUICE_PID" 2>/dev/null
  local rc=$?
  SLUICE_PID=""
  return $rc
}

finish() {
  stop_sluice KILL
  echo "$(basename "$0" .sh): $T_PASS passed, $T_FAIL failed"
  [ "$T_FAIL" -eq 0 ]
}
