"""Retained-state fleet for test_mqtt_retain.sh (paho-mqtt, QoS 1, 127.0.0.1 only).

publish FILE TOPICS ROUNDS SECONDS [BASE]: first sets then clears fleet/gone0..2 (retained, an
  empty payload clears), then publishes retained "r<round>" to fleet/d0..d<TOPICS-1>,
  round after round (numbered from BASE, default 0), until ROUNDS rounds, SECONDS seconds, or sluice goes away. At most
  100 publishes are unacknowledged. Writes FILE: one "topic acked sent" line per topic,
  the highest round PUBACKed and the highest round sent (-1: none).
verify FILE exact|range: a new client subscribes to fleet/# and collects the retained
  messages. Each fleet/d<k> must arrive exactly once, with a round equal to acked (exact,
  after a clean run) or between acked and sent (range, after kill -9); fleet/gone* must
  not arrive. Exit 0 when all holds.
"""
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

PORT = int(os.environ["SLUICE_MQTT"])


def publish(path, topics, rounds, seconds, base):
    lock = threading.Lock()
    cond = threading.Condition(lock)
    pending = {}          # mid -> (topic, round)
    early = set()         # PUBACKs seen before publish() returned the mid
    acked = {"fleet/d%d" % k: -1 for k in range(topics)}
    sent = dict(acked)
    gone_ok = [0]
    n_acked = [0]

    def on_publish(cl, u, mid):
        with cond:
            item = pending.pop(mid, None)
            if item is None:
                early.add(mid)
            else:
                done(item)
            cond.notify_all()

    def done(item):
        topic, rnd = item
        if topic.startswith("fleet/gone"):
            gone_ok[0] += 1
        else:
            n_acked[0] += 1
            acked[topic] = max(acked[topic], rnd)

    def send(topic, payload, rnd):
        info = c.publish(topic, payload, qos=1, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        with cond:
            if info.mid in early:
                early.discard(info.mid)
                done((topic, rnd))
            else:
                pending[info.mid] = (topic, rnd)
        return True

    c = mqtt.Client(client_id="retain-fleet", protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(100)
    c.on_publish = on_publish
    c.connect("127.0.0.1", PORT, keepalive=10)
    c.loop_start()
    for _ in range(100):                 # CONNACK
        if c.is_connected():
            break
        time.sleep(0.05)
    stop_at = time.time() + seconds
    try:
        for k in range(3):
            send("fleet/gone%d" % k, "soon gone", 0)
        for k in range(3):
            send("fleet/gone%d" % k, "", 1)          # clears
        with cond:
            cond.wait_for(lambda: gone_ok[0] == 6 or not c.is_connected(), timeout=10)
        stop = gone_ok[0] != 6
        for rnd in range(base, base + rounds):
            if stop:
                break
            for k in range(topics):
                with cond:
                    cond.wait_for(lambda: len(pending) < 100 or not c.is_connected(),
                                  timeout=10)
                if not c.is_connected() or time.time() > stop_at:
                    stop = True
                    break
                topic = "fleet/d%d" % k
                if not send(topic, "r%d" % rnd, rnd):
                    stop = True
                    break
                sent[topic] = rnd
        with cond:
            cond.wait_for(lambda: not pending or not c.is_connected(), timeout=10)
        time.sleep(0.2)
    finally:
        c.disconnect()
        c.loop_stop()
        with lock, open(path, "w") as out:
            for topic in sorted(acked):
                out.write("%s %d %d\n" % (topic, acked[topic], sent[topic]))
    print("published: %d topics, %d acked updates, gone cleared: %s"
          % (topics, n_acked[0], gone_ok[0] == 6))
    return 0 if gone_ok[0] == 6 else 1


def verify(path, mode):
    want = {}
    with open(path) as f:
        for line in f:
            topic, a, s = line.split()
            want[topic] = (int(a), int(s))
    got = {}
    lock = threading.Lock()
    last = [time.time()]

    def on_message(cl, u, msg):
        with lock:
            got.setdefault(msg.topic, []).append((msg.retain, msg.payload.decode()))
            last[0] = time.time()

    c = mqtt.Client(client_id="retain-check-%d" % os.getpid(), protocol=mqtt.MQTTv311)
    c.on_message = on_message
    c.connect("127.0.0.1", PORT, keepalive=10)
    c.subscribe("fleet/#", qos=1)
    c.loop_start()
    start = time.time()
    while time.time() - start < 10:
        time.sleep(0.1)
        with lock:
            if len(got) >= len(want) and time.time() - last[0] > 1.0:
                break
            if time.time() - start > 3 and not got:
                break
    c.loop_stop()
    c.disconnect()
    bad = []
    for topic, (a, s) in sorted(want.items()):
        msgs = got.get(topic, [])
        if a < 0 and s < 0:
            if msgs:
                bad.append("%s: never published, got %s" % (topic, msgs))
            continue
        if a < 0 and not msgs:
            continue                      # sent, never acknowledged, lost: allowed
        if len(msgs) != 1 or not msgs[0][0]:
            bad.append("%s: want one retained message, got %s" % (topic, msgs))
            continue
        rnd = int(msgs[0][1][1:])
        ok = rnd == a if mode == "exact" else a <= rnd <= s
        if not ok:
            bad.append("%s: round %d, acked %d, sent %d" % (topic, rnd, a, s))
    for topic in got:
        if topic.startswith("fleet/gone"):
            bad.append("%s: cleared, got %s" % (topic, got[topic]))
        elif topic not in want:
            bad.append("%s: unexpected %s" % (topic, got[topic]))
    for b in bad:
        print("  " + b)
    print("verified %d topics (%s): %d problem(s)" % (len(want), mode, len(bad)))
    return 0 if not bad else 1


if __name__ == "__main__":
    if sys.argv[1] == "publish":
        sys.exit(publish(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
                         int(sys.argv[6]) if len(sys.argv) > 6 else 0))
    sys.exit(verify(sys.argv[2], sys.argv[3]))
