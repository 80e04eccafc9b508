#!/usr/bin/python3
"""Independent check that a sluice segment file is Kafka's on-disk format.

Walks SEGMENT.log batch by batch (baseOffset i64 + batchLength i32 framing), decodes each
batch with kafka-python's DefaultRecordBatch (not our code), validates its CRC and compares
every record with EXPECT.json, as written by tests/unit/test_segment.c when run with
SL_KEEP_SEGMENT=DIR:

    {"batches": N, "records": [{"offset", "timestamp", "key", "value", "headers"}]}

key/value/header values are hex strings or null; headers are [name, value] pairs.

Usage: /usr/bin/python3 check_segment_kafka.py SEGMENT.log EXPECT.json
Exit 0 when every check passes; prints "N passed, N failed".
"""
import json
import struct
import sys

from kafka.record.default_records import DefaultRecordBatch


def unhex(v):
    return None if v is None else bytes.fromhex(v)


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    with open(argv[1], "rb") as fh:
        data = fh.read()
    with open(argv[2]) as fh:
        expect = json.load(fh)

    passed = 0
    failed = 0

    def check(ok, what):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print("FAIL:", what)

    got = []
    batches = 0
    pos = 0
    while pos < len(data):
        if len(data) - pos < 12:
            check(False, "trailing %d bytes at %d" % (len(data) - pos, pos))
            break
        base, length = struct.unpack_from(">qi", data, pos)
        end = pos + 12 + length
        if length < 49 or end > len(data):
            check(False, "bad batch length %d at %d" % (length, pos))
            break
        batch = DefaultRecordBatch(data[pos:end])
        check(batch.magic == 2, "magic at %d" % pos)
        check(batch.validate_crc(), "crc of batch at %d" % pos)
        check(batch.base_offset == base, "base offset at %d" % pos)
        check(batch.compression_type == 0, "uncompressed at %d" % pos)
        # kafka-python 2.0.2 exposes no producer fields: read them with its header struct.
        hdr = DefaultRecordBatch.HEADER_STRUCT.unpack_from(data, pos)
        check(hdr[2] == 0, "partitionLeaderEpoch 0 at %d" % pos)
        check(hdr[9:12] == (-1, -1, -1), "producerId/Epoch/baseSequence -1 at %d" % pos)
        recs = list(batch)
        check(len(recs) == hdr[12], "record count at %d" % pos)
        check(len(recs) > 0 and recs[-1].offset == base + batch.last_offset_delta,
              "lastOffsetDelta at %d" % pos)
        check(batch.max_timestamp == max(r.timestamp for r in recs),
              "maxTimestamp at %d" % pos)
        got.extend(recs)
        batches += 1
        pos = end

    check(batches == expect["batches"], "batch count %d != %d" % (batches, expect["batches"]))
    check(len(got) == len(expect["records"]),
          "record count %d != %d" % (len(got), len(expect["records"])))
    for rec, exp in zip(got, expect["records"]):
        tag = "offset %d" % exp["offset"]
        check(rec.offset == exp["offset"], tag + ": offset %d" % rec.offset)
        check(rec.timestamp == exp["timestamp"], tag + ": timestamp %d" % rec.timestamp)
        check(rec.key == unhex(exp["key"]), tag + ": key %r" % (rec.key,))
        check(rec.value == unhex(exp["value"]), tag + ": value %r" % (rec.value,))
        want_h = [(name, unhex(val)) for name, val in exp["headers"]]
        check(list(rec.headers) == want_h, tag + ": headers %r" % (rec.headers,))

    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
