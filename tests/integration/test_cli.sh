#!/usr/bin/env bash
# --check exit codes and file:line errors; --help-config; SIGHUP reload.
set -u
source "$(dirname "$0")/lib.sh"
dir=$(mktemp -d); trap 'stop_sluice KILL; rm -rf "$dir"' EXIT
check "--check accepts conf/sluice.yaml" "$SLUICE_BIN" --check -c "$ROOT/conf/sluice.yaml"
for f in "$ROOT"/conf/examples/*.yaml; do
  [ -f "$f" ] && check "--check accepts $(basename "$f")" "$SLUICE_BIN" --check -c "$f"
done
printf 'log:\n  partitions: 2\n  flsh: always\n' > "$dir/bad.yaml"
"$SLUICE_BIN" --check -c "$dir/bad.yaml" > "$dir/out" 2>&1; rc=$?
check "--check rejects an unknown key with exit 1" test "$rc" -eq 1
check "the error names file:line and the key" grep -q "bad.yaml:3:.*flsh" "$dir/out"
printf 'routes:\n  - from: {listener: http, match: "a/#/b"}\n    to: {topic: x}\n' > "$dir/bad2.yaml"
"$SLUICE_BIN" --check -c "$dir/bad2.yaml" > "$dir/out2" 2>&1; rc=$?
check "--check rejects a bad route pattern with exit 1" test "$rc" -eq 1
check "--help-config lists options" sh -c "'$SLUICE_BIN' --help-config | grep -q flush"

# make install honours PREFIX and DESTDIR, and the installed config is valid.
bdir=$(dirname "$SLUICE_BIN")
if make -s -C "$ROOT" install BUILD="$bdir" DESTDIR="$dir/inst" PREFIX=/usr > "$dir/inst.log" 2>&1; then
  ok "make install DESTDIR PREFIX=/usr"
  for f in usr/bin/sluice etc/sluice/sluice.yaml usr/lib/systemd/system/sluice.service \
           usr/lib/sysusers.d/sluice.conf usr/lib/tmpfiles.d/sluice.conf usr/share/sluice/web/index.html; do
    check "installed $f" test -f "$dir/inst/$f"
  done
  check "the unit runs the installed binary" grep -q '^ExecStart=/usr/bin/sluice ' "$dir/inst/usr/lib/systemd/system/sluice.service"
  check "the installed config passes --check" "$SLUICE_BIN" --check -c "$dir/inst/etc/sluice/sluice.yaml"
  check "the installed config serves the installed page" grep -q 'web_root: /usr/share/sluice/web' "$dir/inst/etc/sluice/sluice.yaml"
  check "the unit's documentation is the installed README" sh -c "grep -q '^Documentation=file:/usr/share/doc/sluice/README.md' '$dir/inst/usr/lib/systemd/system/sluice.service' && test -f '$dir/inst/usr/share/doc/sluice/README.md'"
  # A reinstall keeps the operator's edited config and puts the new one beside it.
  echo "# edited by the operator" >> "$dir/inst/etc/sluice/sluice.yaml"
  make -s -C "$ROOT" install BUILD="$bdir" DESTDIR="$dir/inst" PREFIX=/usr > "$dir/inst2.log" 2>&1
  check "a reinstall keeps the edited config" grep -q "edited by the operator" "$dir/inst/etc/sluice/sluice.yaml"
  check "a reinstall puts the new config beside it (.dist)" "$SLUICE_BIN" --check -c "$dir/inst/etc/sluice/sluice.yaml.dist"
else
  bad "make install failed: $(tail -3 "$dir/inst.log")"
fi
command -v systemd-analyze >/dev/null && check "systemd-analyze verify accepts the unit" \
  sh -c "systemd-analyze verify '$ROOT/systemd/sluice.service' 2>&1 | grep -v -e 'sluice.yaml' -e 'Command /usr/local/bin/sluice' -e 'No such file' | grep -q . && exit 1 || exit 0"

# SIGHUP: routes reload without dropping the listener; a bad file keeps the old config.
port=$(free_port); url="http://127.0.0.1:$port"
write_conf "$dir/s.yaml" "$dir/data" "$port"
start_sluice "$dir/s.yaml" "$dir/log" || { bad "start"; finish; exit; }
t1=$(curl -s -X POST --data x "$url/topics/inbox?subject=sensors/1" | $PY -c 'import json,sys; print(json.load(sys.stdin)["topic"])')
check "without routes the explicit topic is used ($t1)" test "$t1" = inbox
write_conf "$dir/s.yaml" "$dir/data" "$port" 'routes:
  - from: {listener: http, match: "sensors/#"}
    to: {topic: sensor-data, key: subject}'
kill -HUP "$SLUICE_PID"; sleep 0.5
t2=$(curl -s -X POST --data x "$url/topics/inbox?subject=sensors/1" | $PY -c 'import json,sys; print(json.load(sys.stdin)["topic"])')
check "after SIGHUP the new route applies ($t2)" test "$t2" = sensor-data
# the log section's settings reach existing topics without an override, as at a start
flush_of() { curl -s "$url/topics/$1" | $PY -c 'import json,sys; c=json.load(sys.stdin).get("config", {}); print("%s.%s" % (c.get("flush"), c.get("compression")))'; }
f1=$(flush_of inbox)
sed -i 's/^  flush: always$/  flush: os\n  compression: lz4/' "$dir/s.yaml"
kill -HUP "$SLUICE_PID"; sleep 0.5
f2=$(flush_of inbox)
check "SIGHUP applies log.flush and log.compression to an existing topic ($f1 -> $f2)" \
  test "$f1/$f2" = always.none/os.lz4
# and a publish to it is written compressed and reads back
body="compressed-$$-$(printf 'reading %.0s' $(seq 1 200))"   # 1.6 KB that compress
curl -s -o /dev/null -X POST --data "$body" "$url/topics/inbox?subject=inbox"
got=$(curl -s "$url/topics/inbox/partitions/0/records?offset=0&max=100" "$url/topics/inbox/partitions/1/records?offset=0&max=100" "$url/topics/inbox/partitions/2/records?offset=0&max=100" | grep -c "compressed-$$")
check "a record of the compressed topic reads back ($got)" test "$got" = 1
check "and was written compressed" sh -c "curl -s '$url/metrics' | grep -q '^sluice_log_batches_compressed_total [1-9]'"
printf 'log: [broken\n' >> "$dir/s.yaml"
kill -HUP "$SLUICE_PID"; sleep 0.5
check "a bad reload keeps the daemon running" kill -0 "$SLUICE_PID"
check "a bad reload is logged" grep -q "reload" "$dir/log"
t3=$(curl -s -X POST --data x "$url/topics/inbox?subject=sensors/2" | $PY -c 'import json,sys; print(json.load(sys.stdin)["topic"])')
check "and keeps the running routes ($t3)" test "$t3" = sensor-data
stop_sluice TERM; check "SIGTERM exits 0" test $? -eq 0
finish
