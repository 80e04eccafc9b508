#!/usr/bin/env bash
# The segments are Kafka's format: kafka-python (an independent decoder) walks a segment
# written by test_segment and one written by the running daemon, checking every CRC.
set -u
source "$(dirname "$0")/lib.sh"
dir=$(mktemp -d); trap 'stop_sluice KILL; rm -rf "$dir"' EXIT
BUILD_DIR=$(dirname "$SLUICE_BIN")
if [ -x "$BUILD_DIR/tests/test_segment" ]; then
  mkdir -p "$dir/keep"
  SL_KEEP_SEGMENT="$dir/keep" "$BUILD_DIR/tests/test_segment" > /dev/null 2>&1
  check "kafka-python decodes test_segment's file record by record" \
    $PY "$ROOT/tests/integration/check_segment_kafka.py" "$dir/keep/00000000000000000000.log" "$dir/keep/expect.json"
fi
port=$(free_port); url="http://127.0.0.1:$port"
write_conf "$dir/s.yaml" "$dir/data" "$port"
start_sluice "$dir/s.yaml" "$dir/log" || { bad "start"; finish; exit; }
for i in $(seq 1 30); do
  curl -s -o /dev/null -X POST -H "ce-type: t.$i" --data "value-$i" "$url/topics/kfmt?key=key-$((i % 5))"
done
stop_sluice TERM
check "the daemon's segments decode with kafka-python: 30 records, CRCs valid, CloudEvents headers" \
  $PY - "$dir/data" <<'PYEOF'
import glob, struct, sys
from kafka.record.default_records import DefaultRecordBatch
n = 0
for seg in glob.glob(sys.argv[1] + "/kfmt-*/*.log"):
    data = open(seg, "rb").read()
    pos = 0
    while pos < len(data):
        base, length = struct.unpack(">qi", data[pos:pos + 12])
        batch = DefaultRecordBatch(data[pos:pos + 12 + length])
        assert batch.validate_crc(), "bad crc in " + seg
        for r in batch:
            h = dict(r.headers)
            assert h["ce_specversion"] == b"1.0" and h["ce_type"].startswith(b"t."), h
            assert r.value.startswith(b"value-") and r.key.startswith(b"key-")
            n += 1
        pos += 12 + length
print("records", n)
sys.exit(0 if n == 30 else 1)
PYEOF
finish
