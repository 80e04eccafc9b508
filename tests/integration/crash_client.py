#!/usr/bin/python3
"""kill -9 durability client.

publish URL TOPIC ACKS_FILE THREADS MAX_SECONDS
    THREADS publishers, each owning keys k<thread>-<n>, POST records with a per-key
    sequence number until an error (the daemon was killed) or MAX_SECONDS. Every 201
    is written to ACKS_FILE (one JSON line, flushed) before the next request.
verify URL TOPIC ACKS_FILE
    Every acknowledged record must be readable at its (partition, offset) with the same
    key and body; per key, sequence numbers must rise with the offset.
"""
import json
import sys
import threading
import time
import urllib.error
import urllib.request


def post(url, body, timeout=5):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read())


def publish(base, topic, acks_path, threads, max_seconds):
    lock = threading.Lock()
    out = open(acks_path, "w")
    deadline = time.time() + max_seconds
    counts = [0] * threads

    def worker(t):
        seq = {}
        n = 0
        while time.time() < deadline:
            key = "k%d-%d" % (t, n % 4)
            n += 1
            s = seq.get(key, 0) + 1
            seq[key] = s
            body = ("%s:%d" % (key, s)).encode()
            try:
                status, js = post("%s/topics/%s?key=%s" % (base, topic, key), body)
            except Exception:
                return          # the daemon is gone: stop
            if status != 201:
                return
            with lock:
                out.write(json.dumps({"key": key, "seq": s, "body": body.decode(),
                                      "partition": js["partition"],
                                      "offset": js["offset"]}) + "\n")
                out.flush()
            counts[t] += 1

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    out.close()
    print("published and acknowledged: %d" % sum(counts))


def read_partition(base, topic, p, hw_hint):
    recs = {}
    off = 0
    for _ in range(100000):
        url = "%s/topics/%s/partitions/%d/records?offset=%d&max=1000" % (base, topic, p, off)
        with urllib.request.urlopen(url, timeout=10) as r:
            batch = json.loads(r.read())
        if not batch:
            break
        for ev in batch:
            recs[ev["offset"]] = ev
        off = batch[-1]["offset"] + 1
        if off >= hw_hint:
            break
    return recs


def data_text(ev):
    if "data" in ev:
        return ev["data"] if isinstance(ev["data"], str) else json.dumps(ev["data"])
    if "data_base64" in ev:
        import base64
        return base64.b64decode(ev["data_base64"]).decode()
    return None


def verify(base, topic, acks_path):
    acks = [json.loads(l) for l in open(acks_path) if l.strip()]
    with urllib.request.urlopen("%s/topics/%s" % (base, topic), timeout=10) as r:
        desc = json.loads(r.read())
    hws = {p["partition"]: p["high_watermark"] for p in desc["partitions"]}
    parts = {p: read_partition(base, topic, p, hw) for p, hw in hws.items()}
    missing = wrong = order = 0
    for a in acks:
        ev = parts.get(a["partition"], {}).get(a["offset"])
        if ev is None:
            missing += 1
        elif data_text(ev) != a["body"] or ev.get("partitionkey") != a["key"]:
            wrong += 1
    # per key order: seq rises with offset within the key's partition
    for p, recs in parts.items():
        last = {}
        for off in sorted(recs):
            txt = data_text(recs[off]) or ""
            if ":" not in txt:
                continue
            k, s = txt.rsplit(":", 1)
            s = int(s)
            if k in last and s <= last[k]:
                order += 1
            last[k] = s
    total = sum(len(r) for r in parts.values())
    print("acked=%d stored=%d missing=%d wrong=%d order_violations=%d"
          % (len(acks), total, missing, wrong, order))
    return 0 if (acks and missing == 0 and wrong == 0 and order == 0) else 1


if __name__ == "__main__":
    if sys.argv[1] == "publish":
        publish(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
    else:
        sys.exit(verify(sys.argv[2], sys.argv[3], sys.argv[4]))
