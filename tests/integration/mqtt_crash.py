"""kill -9 helper for test_mqtt.sh.

publish FILE: 4 QoS 1 publishers send numbered messages until sluice goes away; every
  message whose PUBACK arrived is appended to FILE (one "topic payload" per line).
verify FILE: subscribe to crash/# with sluice-from earliest and check every line of FILE
  arrived. Exit 0 when all did.
"""
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PORT = int(os.environ["SLUICE_MQTT"])


def publisher(idx, out, lock, stop_at):
    acked = {}
    c = mqtt.Client(client_id="crash-pub-%d" % idx, protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(20)

    def on_publish(cl, u, mid):
        line = acked.pop(mid, None)
        if line:
            with lock:
                out.write(line + "\n")
                out.flush()

    c.on_publish = on_publish
    try:
        c.connect("127.0.0.1", PORT, keepalive=10)
    except OSError:
        return
    c.loop_start()
    i = 0
    while time.time() < stop_at and i < 200000:
        topic = "crash/p%d" % idx
        payload = "%d-%d" % (idx, i)
        info = c.publish(topic, payload, qos=1)
        if info.rc != 0:
            break
        acked[info.mid] = topic + " " + payload
        i += 1
        if len(acked) > 50:
            time.sleep(0.002)
        if not c.is_connected() and i > 10:
            break
    time.sleep(0.5)
    c.loop_stop()


def publish(path):
    lock = threading.Lock()
    with open(path, "w") as out:
        ts = [threading.Thread(target=publisher, args=(i, out, lock, time.time() + 4))
              for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(20)


def verify(path):
    want = set(l.strip() for l in open(path) if l.strip())
    got = set()
    done = threading.Event()
    c = mqtt.Client(client_id="crash-verify", protocol=mqtt.MQTTv5)

    def on_message(cl, u, m):
        got.add(m.topic + " " + m.payload.decode())

    c.on_message = on_message
    c.connect("127.0.0.1", PORT)
    c.loop_start()
    props = Properties(PacketTypes.SUBSCRIBE)
    props.UserProperty = ("sluice-from", "earliest")
    c.subscribe("crash/#", qos=0, properties=props)
    end = time.time() + 20
    while time.time() < end and not want <= got:
        time.sleep(0.1)
    c.loop_stop()
    missing = want - got
    print("crash: %d acknowledged, %d read back, %d missing" % (len(want), len(got),
                                                                 len(missing)))
    if len(want) < 10:
        print("crash: too few acknowledged messages to be meaningful")
        return 1
    return 0 if not missing else 1


if __name__ == "__main__":
    if sys.argv[1] == "publish":
        publish(sys.argv[2])
        sys.exit(0)
    sys.exit(verify(sys.argv[2]))
