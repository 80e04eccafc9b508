#!/usr/bin/env bash
# The REST API driven by a real HTTP client (tests/integration/test_rest.py).
set -u
source "$(dirname "$0")/lib.sh"
dir=$(mktemp -d); trap 'stop_sluice KILL; rm -rf "$dir"' EXIT
port=$(free_port)
write_conf "$dir/s.yaml" "$dir/data" "$port"
start_sluice "$dir/s.yaml" "$dir/log" || { bad "start"; finish; exit; }
SLUICE_URL="http://127.0.0.1:$port" $PY "$ROOT/tests/integration/test_rest.py" > "$dir/py.out" 2>&1
py_counts "$dir/py.out" $? test_rest.py
check "daemon still alive after the REST suite" kill -0 "$SLUICE_PID"
stop_sluice TERM; check "SIGTERM exits 0 after the REST suite" test $? -eq 0
finish
