#!/usr/bin/env bash
# The web page in headless Chromium: topic list, publish form, live tail, escaping.
set -u
source "$(dirname "$0")/lib.sh"
dir=$(mktemp -d); CHROME_PID=""
cleanup() {
  [ -n "$CHROME_PID" ] && { kill "$CHROME_PID" 2>/dev/null; wait "$CHROME_PID" 2>/dev/null; }
  stop_sluice KILL; rm -rf "$dir"
}
trap cleanup EXIT
if ! command -v chromium >/dev/null; then
  bad "chromium is not installed (tests/deps.sh installs it)"; finish; exit
fi
port=$(free_port); url="http://127.0.0.1:$port"
write_conf "$dir/s.yaml" "$dir/data" "$port" 'topics:
  webtest: {partitions: 1}'
start_sluice "$dir/s.yaml" "$dir/log" || { bad "start"; finish; exit; }
dport=$(free_port)
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$dir/chrome" --remote-debugging-address=127.0.0.1 \
  --remote-debugging-port="$dport" about:blank > "$dir/chrome.log" 2>&1 &
CHROME_PID=$!
timeout 120 $PY "$ROOT/tests/integration/web_cdp.py" "$url" "$dport" > "$dir/py.out" 2>&1
py_counts "$dir/py.out" $? web_cdp.py
timeout 30 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$dir/chrome2" --window-size=1200,800 --virtual-time-budget=3000 \
  --screenshot="$dir/page.png" "$url/" > /dev/null 2>&1
check "a screenshot of the page renders" test -s "$dir/page.png"
mkdir -p "$ROOT/build" && cp "$dir/page.png" "$ROOT/build/web-page.png" 2>/dev/null
finish
