"""MQTT listener suite against a running sluice, with paho-mqtt and raw sockets.

Environment: SLUICE_MQTT (port), SLUICE_URL (http://127.0.0.1:PORT).
Prints one "ok"/"FAIL" line per check and "N passed, M failed" at the end.
Every wait is bounded; only 127.0.0.1 is used.
"""
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from checks import check, finish

PORT = int(os.environ["SLUICE_MQTT"])
URL = os.environ["SLUICE_URL"]


def wait_for(pred, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


class Client:
    """A paho client collecting messages; connect() waits for CONNACK."""

    def __init__(self, cid="", v5=True, clean=True, expiry=None, will=None, userdata=None):
        self.v5 = v5
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        if v5:
            self.c = mqtt.Client(client_id=cid, protocol=proto)
        else:
            self.c = mqtt.Client(client_id=cid, protocol=proto, clean_session=clean)
        self.clean = clean
        self.expiry = expiry
        self.msgs = []
        self.lock = threading.Lock()
        self.connack = None
        self.disconnect_rc = None
        self.session_present = None
        self.c.on_message = self._on_message
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        if will is not None:
            topic, payload, props = will
            if v5:
                self.c.will_set(topic, payload, qos=1, properties=props)
            else:
                self.c.will_set(topic, payload, qos=1)

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append(m)

    def _on_connect(self, c, u, flags, rc, props=None):
        self.connack = rc
        self.session_present = flags.get("session present")

    def _on_disconnect(self, c, u, rc, props=None):
        self.disconnect_rc = rc

    def connect(self):
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            if self.expiry is not None:
                props.SessionExpiryInterval = self.expiry
            self.c.connect("127.0.0.1", PORT, keepalive=30, clean_start=self.clean,
                           properties=props)
        else:
            self.c.connect("127.0.0.1", PORT, keepalive=30)
        self.c.loop_start()
        ok = wait_for(lambda: self.connack is not None)
        return ok and (self.connack == 0 or str(self.connack) == "Success")

    def sub(self, flt, qos=1, props=None):
        res = []
        self.c.on_subscribe = lambda *a: res.append(a)
        if props is not None:
            self.c.subscribe(flt, qos=qos, properties=props)
        else:
            self.c.subscribe(flt, qos=qos)
        return wait_for(lambda: res)

    def pub(self, topic, payload, qos=1, retain=False, props=None):
        if props is not None:
            info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=props)
        else:
            info = self.c.publish(topic, payload, qos=qos, retain=retain)
        if qos > 0:
            info.wait_for_publish(5)
        return info

    def got(self, n, timeout=5.0):
        return wait_for(lambda: len(self.msgs) >= n, timeout)

    def stop(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()

    def kill(self):
        """Drop the TCP connection without DISCONNECT (abnormal: fires the will)."""
        self.c.loop_stop()
        self.c.socket().close()


def http_get(path):
    with urllib.request.urlopen(URL + path, timeout=5) as r:
        return r.read().decode()


def http_post(path, body, headers):
    req = urllib.request.Request(URL + path, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, r.read().decode()


def read_topic(topic):
    """Every record of topic over REST (all partitions)."""
    info = json.loads(http_get("/topics/" + topic))
    parts = info.get("partitions", [])
    out = []
    for p in parts:
        pid = p["partition"] if isinstance(p, dict) else p
        out += json.loads(http_get("/topics/%s/partitions/%d/records?offset=0&max=1000"
                                   % (topic, pid)))
    return out


def segment_headers(topic, subject):
    """Headers of the record with this subject, decoded from the segment files with
    kafka-python (an independent RecordBatch v2 decoder)."""
    from kafka.record.default_records import DefaultRecordBatch
    data = os.environ.get("SLUICE_DATA")
    if not data:
        return None
    for d in sorted(os.listdir(data)):
        if not d.startswith(topic + "-"):
            continue
        for f in sorted(os.listdir(os.path.join(data, d))):
            if not f.endswith(".log"):
                continue
            buf = open(os.path.join(data, d, f), "rb").read()
            pos = 0
            while pos + 12 <= len(buf):
                blen = struct.unpack(">i", buf[pos + 8:pos + 12])[0]
                batch = DefaultRecordBatch(bytearray(buf[pos:pos + 12 + blen]))
                for rec in batch:
                    hs = [(k, bytes(v) if v is not None else None) for k, v in rec.headers]
                    if ("ce_subject", subject.encode()) in hs:
                        return hs
                pos += 12 + blen
    return None


def metric(name):
    total = 0.0
    for line in http_get("/metrics").splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ------------------------------------------------------------------- tests ----

def test_qos_roundtrips():
    for v5 in (False, True):
        tag = "v5" if v5 else "v311"
        sub = Client("rt-sub-" + tag, v5=v5)
        pub = Client("rt-pub-" + tag, v5=v5)
        check("%s connect" % tag, sub.connect() and pub.connect())
        check("%s subscribe" % tag, sub.sub("rt%s/#" % tag, qos=2))
        for q in (0, 1, 2):
            pub.pub("rt%s/q%d" % (tag, q), ("m%d" % q).encode(), qos=q)
        ok = sub.got(3)
        got = sorted((m.topic, m.payload, m.qos) for m in sub.msgs)
        want = sorted(("rt%s/q%d" % (tag, q), ("m%d" % q).encode(), q) for q in (0, 1, 2))
        check("%s QoS 0/1/2 round trip keeps topic, payload and QoS" % tag, ok and got == want,
              got)
        sub.stop()
        pub.stop()


def test_qos2_no_duplicate():
    """Resend of the same QoS 2 packet id before PUBREL: stored once."""
    s = raw_connect("dup-q2", v5=False)
    sub = Client("dup-sub")
    sub.connect()
    sub.sub("dupq2/#", qos=2)
    pkt = publish_packet("dupq2/x", b"once", qos=2, pid=7, v5=False)
    s.sendall(pkt)
    r1 = read_packet(s)
    s.sendall(bytes([pkt[0] | 0x08]) + pkt[1:])   # DUP resend
    r2 = read_packet(s)
    s.sendall(b"\x62\x02\x00\x07")                # PUBREL
    r3 = read_packet(s)
    check("QoS 2: PUBREC, PUBREC again for the resend, PUBCOMP",
          r1 and r1[0] == 0x50 and r2 and r2[0] == 0x50 and r3 and r3[0] == 0x70,
          (r1, r2, r3))
    sub.got(1, 2)
    time.sleep(0.3)
    check("QoS 2 resend delivered once", len(sub.msgs) == 1, len(sub.msgs))
    s.close()
    sub.stop()


def test_properties_and_rest():
    sub = Client("prop-sub")
    sub.connect()
    sub.sub("props/#", qos=1)
    pub = Client("prop-pub")
    pub.connect()
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("device", "d-17"), ("unit", "celsius"), ("device", "again")]
    props.ContentType = "application/json"
    props.ResponseTopic = "reply/d-17"
    props.CorrelationData = b"\x01\x02corr"
    props.PayloadFormatIndicator = 1
    props.MessageExpiryInterval = 3600
    pub.pub("props/eu/d17", b'{"t":21.5}', qos=1, props=props)
    ok = sub.got(1)
    m = sub.msgs[0] if ok else None
    up = getattr(m.properties, "UserProperty", None) if m else None
    check("v5 user properties delivered in order",
          up == [("device", "d-17"), ("unit", "celsius"), ("device", "again")], up)
    check("content type, response topic, correlation data, payload format delivered",
          m is not None and getattr(m.properties, "ContentType", None) == "application/json"
          and getattr(m.properties, "ResponseTopic", None) == "reply/d-17"
          and getattr(m.properties, "CorrelationData", None) == b"\x01\x02corr"
          and getattr(m.properties, "PayloadFormatIndicator", None) == 1,
          m.properties if m else None)
    exp = getattr(m.properties, "MessageExpiryInterval", None) if m else None
    check("message expiry delivered (remaining)", exp is not None and 3590 <= exp <= 3600, exp)
    recs = [r for r in read_topic("props") if r.get("subject") == "props/eu/d17"]
    check("REST read shows the MQTT topic as subject", len(recs) == 1, recs)
    text = json.dumps(recs)
    up_hdrs = [(h.get("name"), h.get("value")) for h in recs[0].get("headers", [])
               if h.get("name") in ("device", "unit")] if recs else None
    check("REST read shows the user properties as headers, in order",
          up_hdrs == [("device", "d-17"), ("unit", "celsius"), ("device", "again")],
          recs[0].get("headers") if recs else recs)
    hdrs = segment_headers("props", "props/eu/d17")
    check("user properties stored as record headers, in order (kafka-python decode)",
          hdrs is not None and [h for h in hdrs if h[0] in ("device", "unit")] ==
          [("device", b"d-17"), ("unit", b"celsius"), ("device", b"again")], hdrs)
    check("MQTT properties stored as mqtt-* headers",
          hdrs is not None and ("mqtt-response-topic", b"reply/d-17") in hdrs and
          ("mqtt-correlation-data", b"\x01\x02corr") in hdrs and
          ("mqtt-qos", b"1") in hdrs and ("mqtt-message-expiry", b"3600") in hdrs, hdrs)
    check("REST read shows the content type", '"datacontenttype": "application/json"' in text,
          text[:300])
    check("REST read shows the partition key (the subject)",
          recs and recs[0].get("partitionkey") == "props/eu/d17", recs)
    sub.stop()
    pub.stop()


def test_cross_protocol():
    sub = Client("x-sub", v5=False)
    sub.connect()
    sub.sub("xproto/#", qos=1)
    st, body = http_post("/topics/xproto?key=k1", b"from-rest",
                         {"Content-Type": "text/plain", "ce-subject": "xproto/rest/1"})
    check("REST publish answered 201", st == 201, (st, body))
    ok = sub.got(1)
    check("REST publish delivered to an MQTT subscriber with its subject as topic",
          ok and sub.msgs[0].topic == "xproto/rest/1" and sub.msgs[0].payload == b"from-rest",
          [(m.topic, m.payload) for m in sub.msgs])
    check("REST event delivered at QoS 1", ok and sub.msgs[0].qos == 1)
    sub.stop()


def test_retained():
    pub = Client("ret-pub")
    pub.connect()
    pub.pub("retained/a", b"keep-a", qos=1, retain=True)
    pub.pub("retained/b", b"keep-b", qos=1, retain=True)
    pub.pub("retained/b", b"", qos=1, retain=True)          # clears b
    pub.pub("retained/c", b"v1", qos=1, retain=True)
    pub.pub("retained/c", b"v2", qos=1, retain=True)        # last value wins
    sub = Client("ret-sub", v5=False)
    sub.connect()
    sub.sub("retained/#", qos=1)
    sub.got(2)
    time.sleep(0.3)
    got = sorted((m.topic, m.payload, m.retain) for m in sub.msgs)
    check("retained: last value per topic, cleared by an empty retained publish, retain flag",
          got == [("retained/a", b"keep-a", 1), ("retained/c", b"v2", 1)], got)
    pub.pub("retained/a", b"live", qos=1, retain=True)
    sub.got(3)
    live = [m for m in sub.msgs if m.payload == b"live"]
    check("live publish to an existing subscriber has retain 0",
          len(live) == 1 and live[0].retain == 0, [(m.payload, m.retain) for m in live])
    sub.stop()
    pub.stop()


def test_will():
    watcher = Client("will-watch")
    watcher.connect()
    watcher.sub("wills/#", qos=1)
    dev = Client("will-dev", v5=False, will=("wills/dev", b"gone", None))
    dev.connect()
    time.sleep(0.2)
    dev.kill()
    ok = watcher.got(1)
    check("will published on abnormal disconnect",
          ok and watcher.msgs[0].topic == "wills/dev" and watcher.msgs[0].payload == b"gone")
    dev2 = Client("will-dev2", v5=False, will=("wills/dev2", b"gone2", None))
    dev2.connect()
    dev2.stop()
    time.sleep(0.5)
    check("no will after a normal DISCONNECT",
          not any(m.topic == "wills/dev2" for m in watcher.msgs))
    # v5 will delay: reconnecting within the delay cancels it
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 2
    dev3 = Client("will-dev3", v5=True, clean=True, expiry=60, will=("wills/dev3", b"late", wp))
    dev3.connect()
    dev3.kill()
    time.sleep(0.5)
    early = any(m.topic == "wills/dev3" for m in watcher.msgs)
    ok = wait_for(lambda: any(m.topic == "wills/dev3" for m in watcher.msgs), 5)
    check("v5 will delay: not at once, published after the delay", not early and ok)
    watcher.stop()


def test_persistent_session():
    c = Client("persist-1", v5=False, clean=False)
    c.connect()
    c.sub("persist/#", qos=1)
    c.stop()
    time.sleep(0.2)
    p = Client("persist-pub")
    p.connect()
    for i in range(5):
        p.pub("persist/x", ("p%d" % i).encode(), qos=1)
    p.stop()
    c2 = Client("persist-1", v5=False, clean=False)
    ok = c2.connect()
    check("resume: session present", ok and c2.session_present == 1, c2.session_present)
    c2.got(5)
    got = [m.payload for m in c2.msgs]
    check("resume: messages published while offline delivered in order",
          got == [("p%d" % i).encode() for i in range(5)], got)
    c2.stop()
    # v5: session expiry 0 means no session kept
    e = Client("persist-v5", v5=True, clean=True, expiry=0)
    e.connect()
    e.sub("persist/#", qos=1)
    e.stop()
    e2 = Client("persist-v5", v5=True, clean=False, expiry=60)
    e2.connect()
    check("v5 session expiry 0: no session present", e2.session_present == 0,
          e2.session_present)
    e2.stop()


def test_shared():
    subs = [Client("share-%d" % i) for i in range(2)]
    for s in subs:
        s.connect()
        s.sub("$share/g1/shared/#", qos=1)
    time.sleep(0.3)
    p = Client("share-pub")
    p.connect()
    n = 60
    for i in range(n):
        p.pub("shared/dev%d" % i, ("s%d" % i).encode(), qos=1)
    wait_for(lambda: sum(len(s.msgs) for s in subs) >= n, 5)
    time.sleep(0.3)
    all_msgs = [m.payload for s in subs for m in s.msgs]
    check("shared subscription: every message delivered exactly once",
          sorted(all_msgs) == sorted(("s%d" % i).encode() for i in range(n)),
          (len(all_msgs), n))
    check("shared subscription: both members got some",
          all(len(s.msgs) > 0 for s in subs), [len(s.msgs) for s in subs])
    for s in subs:
        s.stop()
    p.stop()


def test_shared_one_partition():
    """Shared subscriptions spread per message, not per partition: 20 messages on one
    subject (one partition key: all in one partition) reach both members."""
    subs = [Client("share1p-%d" % i) for i in range(2)]
    for s in subs:
        s.connect()
        s.sub("$share/g1p/shared1p/#", qos=1)
    time.sleep(0.3)
    p = Client("share1p-pub")
    p.connect()
    n = 20
    for i in range(n):
        p.pub("shared1p/dev", ("p%d" % i).encode(), qos=1)
    wait_for(lambda: sum(len(s.msgs) for s in subs) >= n, 5)
    time.sleep(0.3)
    topic = json.loads(http_get("/topics/shared1p"))
    used = [q for q in topic["partitions"] if q["high_watermark"] > 0]
    check("shared subscription, one partition: all %d messages in one partition" % n,
          len(used) == 1 and used[0]["high_watermark"] == n, topic["partitions"])
    got = [[m.payload for m in s.msgs] for s in subs]
    all_msgs = got[0] + got[1]
    check("shared subscription, one partition: total %d, no duplicates" % n,
          len(all_msgs) == n and
          sorted(all_msgs) == sorted(("p%d" % i).encode() for i in range(n)),
          (len(all_msgs), n))
    check("shared subscription, one partition: both members got some",
          all(len(g) > 0 for g in got), [len(g) for g in got])
    for s in subs:
        s.stop()
    p.stop()


def test_replay():
    p = Client("replay-pub")
    p.connect()
    for i in range(3):
        p.pub("replay/h", ("h%d" % i).encode(), qos=1)
    s = Client("replay-sub")
    s.connect()
    props = Properties(PacketTypes.SUBSCRIBE)
    props.UserProperty = ("sluice-from", "earliest")
    s.sub("replay/#", qos=1, props=props)
    s.got(3)
    p.pub("replay/h", b"new", qos=1)
    s.got(4)
    got = [m.payload for m in s.msgs]
    check("sluice-from earliest replays history, then live",
          got == [b"h0", b"h1", b"h2", b"new"], got)
    s2 = Client("replay-latest")
    s2.connect()
    s2.sub("replay/#", qos=1)
    time.sleep(0.3)
    check("without sluice-from a subscription starts at the end", len(s2.msgs) == 0,
          len(s2.msgs))
    s.stop()
    s2.stop()
    p.stop()


def test_topic_alias():
    s = raw_connect("alias-raw", v5=True)
    sub = Client("alias-sub")
    sub.connect()
    sub.sub("alias/#", qos=0)
    # topic alias 1 = alias/t, then publish with alias only
    s.sendall(publish_packet("alias/t", b"one", qos=0, v5=True, alias=1))
    s.sendall(publish_packet("", b"two", qos=0, v5=True, alias=1))
    sub.got(2)
    got = [(m.topic, m.payload) for m in sub.msgs]
    check("v5 topic alias resolves", got == [("alias/t", b"one"), ("alias/t", b"two")], got)
    s.sendall(publish_packet("", b"x", qos=0, v5=True, alias=9999))
    r = read_packet(s)
    check("topic alias over the maximum: DISCONNECT 0x94", r and r[0] == 0xE0 and r[2] == 0x94,
          r)
    s.close()
    sub.stop()


# ------------------------------------------------------------ raw sockets ----

def vbi(n):
    out = b""
    while True:
        b = n % 128
        n //= 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def mqtt_str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def connect_packet(cid, v5=True, keepalive=30):
    vh = mqtt_str("MQTT") + bytes([5 if v5 else 4, 0x02]) + struct.pack(">H", keepalive)
    if v5:
        vh += b"\x00"
    body = vh + mqtt_str(cid)
    return b"\x10" + vbi(len(body)) + body


def publish_packet(topic, payload, qos=0, pid=1, v5=True, alias=None):
    vh = mqtt_str(topic)
    if qos:
        vh += struct.pack(">H", pid)
    if v5:
        props = b""
        if alias is not None:
            props += b"\x23" + struct.pack(">H", alias)
        vh += vbi(len(props)) + props
    body = vh + payload
    return bytes([0x30 | (qos << 1)]) + vbi(len(body)) + body


def read_packet(s, timeout=3.0):
    s.settimeout(timeout)
    try:
        h = s.recv(1)
        if not h:
            return None
        mult, n = 1, 0
        lenbytes = b""
        while True:
            b = s.recv(1)
            if not b:
                return None
            lenbytes += b
            n += (b[0] & 127) * mult
            mult *= 128
            if not b[0] & 128:
                break
        body = b""
        while len(body) < n:
            chunk = s.recv(n - len(body))
            if not chunk:
                return None
            body += chunk
        return h + lenbytes + body
    except (socket.timeout, ConnectionResetError):
        return None


def raw_connect(cid, v5=True):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=3)
    s.sendall(connect_packet(cid, v5))
    r = read_packet(s)
    assert r is not None and r[0] == 0x20, r
    return s


def closed(s, timeout=3.0):
    s.settimeout(timeout)
    try:
        end = time.time() + timeout
        while time.time() < end:
            d = s.recv(4096)
            if not d:
                return True
        return False
    except (socket.timeout,):
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_bad_input():
    bystander = Client("bystander")
    bystander.connect()
    bystander.sub("bystand/#", qos=1)
    before = metric("sluice_mqtt_protocol_errors_total")

    s = socket.create_connection(("127.0.0.1", PORT), timeout=3)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    check("garbage bytes: connection closed", closed(s))
    s.close()

    s = socket.create_connection(("127.0.0.1", PORT), timeout=3)
    s.sendall(b"\x10\xff\xff\xff\xff\x01")
    check("bad remaining length: connection closed", closed(s))
    s.close()

    s = raw_connect("bad-2nd", v5=True)
    s.sendall(connect_packet("bad-2nd", True))
    r = read_packet(s)
    check("second CONNECT: DISCONNECT 0x82", r is not None and r[0] == 0xE0 and r[2] == 0x82, r)
    check("second CONNECT: then closed", closed(s))
    s.close()

    s = raw_connect("bad-wild", v5=True)
    s.sendall(publish_packet("bad/+/x", b"x", qos=1, v5=True))
    r = read_packet(s)
    check("wildcard in a PUBLISH topic: DISCONNECT 0x90",
          r is not None and r[0] == 0xE0 and r[2] == 0x90, r)
    s.close()

    s = raw_connect("bad-wild3", v5=False)
    s.sendall(publish_packet("bad/#", b"x", qos=1, v5=False))
    check("3.1.1 wildcard in a PUBLISH topic: closed", closed(s))
    s.close()

    s = raw_connect("bad-big", v5=True)
    big = publish_packet("big/x", b"x" * (2 * 1024 * 1024), qos=0, v5=True)
    try:
        s.sendall(big)
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = read_packet(s)
    check("oversize packet: DISCONNECT 0x95", r is not None and r[0] == 0xE0 and r[2] == 0x95,
          r)
    s.close()

    s = raw_connect("bad-type", v5=True)
    s.sendall(b"\xd0\x00")     # PINGRESP from a client
    r = read_packet(s)
    check("server-only packet from a client: DISCONNECT 0x82",
          r is not None and r[0] == 0xE0 and r[2] == 0x82, r)
    s.close()

    s = socket.create_connection(("127.0.0.1", PORT), timeout=3)
    s.sendall(b"\x10\x0c" + mqtt_str("MQTT") + b"\x09\x02\x00\x1e\x00\x00")
    r = read_packet(s)
    check("unsupported protocol level: CONNACK return code 1",
          r is not None and r[0] == 0x20 and r[3] == 0x01, r)
    s.close()

    after = metric("sluice_mqtt_protocol_errors_total")
    check("protocol errors counted in /metrics", after - before >= 7, (before, after))
    p = Client("bystander-pub")
    p.connect()
    p.pub("bystand/ok", b"still here", qos=1)
    check("other clients unaffected", bystander.got(1) and bystander.msgs[0].payload ==
          b"still here")
    p.stop()
    bystander.stop()


def test_keepalive():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    s.sendall(connect_packet("ka-raw", True, keepalive=1))
    r = read_packet(s)
    t0 = time.time()
    r2 = read_packet(s, timeout=5)
    dt = time.time() - t0
    check("keepalive 1 s silent client: DISCONNECT 0x8D within ~1.5-2.5 s",
          r is not None and r2 is not None and r2[0] == 0xE0 and r2[2] == 0x8D and
          1.2 <= dt <= 3.0, (r2, dt))
    s.close()


def main():
    tests = [test_qos_roundtrips, test_qos2_no_duplicate, test_properties_and_rest,
             test_cross_protocol, test_retained, test_will, test_persistent_session,
             test_shared, test_shared_one_partition, test_replay, test_topic_alias,
             test_bad_input, test_keepalive]
    only = sys.argv[1:]
    for t in tests:
        if only and t.__name__ not in only:
            continue
        print(t.__name__)
        try:
            t()
        except Exception as e:   # a crash in one test is a failure, not the end
            check(t.__name__ + " ran without exception", False, repr(e))
    return finish()


if __name__ == "__main__":
    sys.exit(main())
