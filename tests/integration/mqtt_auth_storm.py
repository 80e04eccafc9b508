"""MQTT password checks under load against a running sluice (tests/integration/test_mqtt.sh).

The listener has user "slow" whose PBKDF2 hash uses SLUICE_ITER iterations (one hash
takes HASH_MS, measured here) and allows anonymous clients. An anonymous paho-mqtt
publisher measures its QoS 1 PUBLISH -> PUBACK round trips while a storm of raw-socket
CONNECTs with passwords (10 right, 40 wrong, 3.1.1 and 5) arrives: with the hash off the
loop thread the round trips stay well below one hash time. Then: every storm client got
the right CONNACK, reconnects with a verified password are answered from the cache
(fast), and a flood past the pending-check bound is refused with Server busy (0x89).

Environment: SLUICE_MQTT (port), SLUICE_ITER, SLUICE_URL. Prints one "ok"/"FAIL" line
per check and "N passed, M failed". Every wait is bounded; only 127.0.0.1 is used.
"""
import base64
import hashlib
import os
import select
import socket
import struct
import sys
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt

from checks import check, finish

PORT = int(os.environ["SLUICE_MQTT"])
ITER = int(os.environ.get("SLUICE_ITER", "200000"))
URL = os.environ.get("SLUICE_URL", "")


def hash_ms():
    t = time.monotonic()
    hashlib.pbkdf2_hmac("sha256", b"s3cret", b"0123456789abcdef", ITER)
    return (time.monotonic() - t) * 1000.0


def mqtt_str(b):
    return struct.pack(">H", len(b)) + b


def remaining(n):
    out = b""
    while True:
        d, n = n % 128, n // 128
        out += bytes([d | (0x80 if n else 0)])
        if not n:
            return out


def connect_pkt(cid, user, password, v5):
    flags = 0x02 | 0x80 | 0x40           # clean, user name, password
    vh = mqtt_str(b"MQTT") + bytes([5 if v5 else 4, flags]) + struct.pack(">H", 30)
    if v5:
        vh += b"\x00"                    # no properties
    body = vh + mqtt_str(cid.encode()) + mqtt_str(user.encode()) + mqtt_str(password.encode())
    return b"\x10" + remaining(len(body)) + body


def open_connects(specs):
    """specs: [(cid, user, password, v5)]; returns [(socket, spec, t_sent)]."""
    out = []
    for spec in specs:
        s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        s.setblocking(False)
        s.sendall(connect_pkt(*spec))
        out.append((s, spec, time.monotonic()))
    return out


def read_connacks(conns, deadline_s):
    """{index: (reason or None, seconds after sending)}; bounded by deadline_s."""
    got = {}
    buf = {i: b"" for i in range(len(conns))}
    end = time.monotonic() + deadline_s
    while len(got) < len(conns) and time.monotonic() < end:
        waiting = [conns[i][0] for i in range(len(conns)) if i not in got]
        r, _, _ = select.select(waiting, [], [], 0.2)
        for s in r:
            i = next(k for k in range(len(conns)) if conns[k][0] is s)
            try:
                d = s.recv(64)
            except OSError:
                d = b""
            now = time.monotonic()
            if not d:
                got[i] = (None, now - conns[i][2])
                continue
            buf[i] += d
            b = buf[i]
            if len(b) >= 4 and b[0] == 0x20:
                got[i] = (b[3], now - conns[i][2])
    return got


def close_all(conns):
    for s, _, _ in conns:
        try:
            s.close()
        except OSError:
            pass


def metric(name):
    if not URL:
        return None
    try:
        text = urllib.request.urlopen(URL + "/metrics", timeout=5).read().decode()
    except OSError:
        return None
    total = 0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0.0


def main():
    one_hash = hash_ms()
    print("  one PBKDF2 of %d iterations here: %.1f ms" % (ITER, one_hash))

    pub = mqtt.Client(client_id="storm-pub", protocol=mqtt.MQTTv311)
    pub.connect("127.0.0.1", PORT, 30)
    pub.loop_start()
    lat = []
    stop = threading.Event()

    def publish_loop():
        for i in range(5000):
            if stop.is_set():
                return
            t = time.monotonic()
            info = pub.publish("storm/pub", b"x%d" % i, qos=1)
            info.wait_for_publish(timeout=10)
            if not info.is_published():
                lat.append(10.0)
                return
            lat.append(time.monotonic() - t)
            time.sleep(0.002)

    # baseline round trips, no storm
    th = threading.Thread(target=publish_loop)
    th.start()
    time.sleep(0.5)
    stop.set()
    th.join(15)
    base = list(lat)
    lat.clear()
    stop.clear()

    # the storm: 50 CONNECTs with passwords, 10 right and 40 wrong, while publishing
    specs = []
    for i in range(50):
        right = i % 5 == 0
        specs.append(("storm-%d" % i, "slow", "s3cret" if right else "wrong%d" % i, i % 2 == 0))
    th = threading.Thread(target=publish_loop)
    th.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    conns = open_connects(specs)
    got = read_connacks(conns, 60)
    storm_s = time.monotonic() - t0
    stop.set()
    th.join(15)
    close_all(conns)
    pub.loop_stop()
    pub.disconnect()

    print("  storm of 50 password CONNECTs: all answered in %.2f s; publisher PUBACK round"
          " trips during it: n=%d p50=%.1f ms p99=%.1f ms max=%.1f ms (before: p50=%.1f ms"
          " max=%.1f ms)" % (storm_s, len(lat), pct(lat, 0.5) * 1000, pct(lat, 0.99) * 1000,
                              max(lat or [0]) * 1000, pct(base, 0.5) * 1000,
                              max(base or [0]) * 1000))
    check("storm: every client got a CONNACK", len(got) == 50 and
          all(r is not None for r, _ in got.values()), got)
    ok_right = all(got.get(i, (None,))[0] == 0 for i in range(50) if i % 5 == 0)
    ok_wrong = all(got.get(i, (None,))[0] == (0x86 if i % 2 == 0 else 4)
                   for i in range(50) if i % 5 != 0)
    check("storm: right password accepted (10)", ok_right,
          [got.get(i) for i in range(50) if i % 5 == 0])
    check("storm: wrong password refused, 0x86 (v5) / 4 (3.1.1) (40)", ok_wrong,
          [got.get(i) for i in range(50) if i % 5 != 0])
    check("storm: the publisher kept going (>= 20 round trips)", len(lat) >= 20, len(lat))
    # With the hash on the loop, most PUBLISHes queued behind a hash: the median round
    # trip was near one hash time. The maximum is printed above but not asserted: on two
    # cores the two auth workers and the clients compete with the loop for CPU, so a
    # single round trip can be slow without the loop ever being blocked.
    check("storm: publisher PUBACK p50 below a fifth of one hash time",
          pct(lat, 0.5) * 1000 < one_hash / 5, "%.1f ms" % (pct(lat, 0.5) * 1000))

    # reconnects with a verified password: answered from the cache, no hash
    hits0 = metric("sluice_mqtt_auth_cache_hits_total")
    times = []
    for i in range(5):
        c = open_connects([("again-%d" % i, "slow", "s3cret", True)])
        g = read_connacks(c, 10)
        close_all(c)
        times.append(g.get(0, (None, 99)))
    check("cache: 5 reconnects with the right password accepted",
          all(r == 0 for r, _ in times), times)
    # No hash was computed for them: the cache-hit counter says so (their times, printed,
    # are not asserted: a loaded machine can delay any one of them).
    print("  cache: reconnect answer times %s ms" % [round(t * 1000, 1) for _, t in times])
    hits1 = metric("sluice_mqtt_auth_cache_hits_total")
    check("cache: sluice_mqtt_auth_cache_hits_total grew by 5",
          hits0 is not None and hits1 is not None and hits1 - hits0 >= 5, (hits0, hits1))
    # a wrong password is never taken from the cache
    c = open_connects([("again-bad", "slow", "S3cret", True)])
    g = read_connacks(c, 30)
    close_all(c)
    check("cache: a wrong password after a right one still refused", g.get(0, (None,))[0] == 0x86,
          g)

    # past the bound (256 pending): Server busy at once, counted
    refused0 = metric("sluice_mqtt_auth_refused_total") or 0
    specs = [("flood-%d" % i, "slow", "flood%d" % i, True) for i in range(300)]
    conns = open_connects(specs)
    got = read_connacks(conns, 5)
    busy = [i for i, (r, _) in got.items() if r == 0x89]
    check("flood: CONNECTs past the pending bound refused with 0x89", len(busy) >= 300 - 256 - 10,
          len(busy))
    # at once, not after the queued checks (256 hashes on two workers: ~13 s here)
    check("flood: the refusals came at once (< 3 s)",
          busy and all(got[i][1] < 3.0 for i in busy), [got[i][1] for i in busy[:5]])
    refused1 = metric("sluice_mqtt_auth_refused_total")
    if refused1 is not None:
        check("flood: sluice_mqtt_auth_refused_total counted them", refused1 - refused0 >= len(busy),
              (refused0, refused1, len(busy)))
    # leave the rest parked: the caller stops the daemon with these checks in flight
    if len(sys.argv) > 1 and sys.argv[1] == "leave-parked":
        print("  (leaving %d CONNECTs parked)" % (300 - len(got)))
        sys.stdout.flush()
        time.sleep(float(os.environ.get("SLUICE_PARK_HOLD", "3")))
    close_all(conns)

    return finish()


if __name__ == "__main__":
    sys.exit(main())
