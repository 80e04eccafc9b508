"""Helper for test_mqtt_bridge.sh: read a topic of a running sluice over REST.

  mqtt_bridge_log.py URL TOPIC payloads      every record's payload, one per line
  mqtt_bridge_log.py URL TOPIC count         number of records (0 if no topic)
  mqtt_bridge_log.py URL TOPIC records       JSON of every record (all partitions)
"""
import base64
import json
import sys
import urllib.error
import urllib.request


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def records(base, topic):
    desc = get("%s/topics/%s" % (base, topic))
    if desc is None:
        return []
    parts = desc.get("partitions", [])
    n = len(parts) if isinstance(parts, list) else int(parts)
    out = []
    for p in range(n):
        offset = 0
        for _ in range(1000):             # bounded: 1000 pages of 1000
            page = get("%s/topics/%s/partitions/%d/records?offset=%d&max=1000"
                       % (base, topic, p, offset))
            if not page:
                break
            out.extend(page)
            offset = page[-1]["offset"] + 1
    return out


def payload(rec):
    if "data_base64" in rec:
        return base64.b64decode(rec["data_base64"]).decode(errors="replace")
    d = rec.get("data")
    return d if isinstance(d, str) else json.dumps(d)


def main():
    base, topic, what = sys.argv[1], sys.argv[2], sys.argv[3]
    recs = records(base, topic)
    if what == "count":
        print(len(recs))
    elif what == "payloads":
        for r in recs:
            print(payload(r))
    else:
        print(json.dumps(recs, indent=1))


if __name__ == "__main__":
    main()
