"""MQTT 5 outbound topic aliases against a running sluice.

paho-mqtt (v5, CONNECT property TopicAliasMaximum) receives the right topics for several
messages on several topics; a raw-socket MQTT 5 client checks the wire itself: the first
PUBLISH of a topic carries the topic and a Topic Alias, later ones an empty topic and the
alias, the least recently used alias is re-assigned when the client's maximum is
reached, clients without Topic Alias Maximum get plain topics, and unacknowledged QoS 1
messages resent with DUP after a reconnect carry their full topic and no alias.

Environment: SLUICE_MQTT (port). Prints one "ok"/"FAIL" line per check and
"N passed, M failed" at the end. Every wait is bounded; only 127.0.0.1 is used.
"""
import os
import socket
import struct
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from checks import check, finish

PORT = int(os.environ["SLUICE_MQTT"])


# ---------------------------------------------------------------- raw MQTT 5 ----

def vbi(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def packet(first, body):
    return bytes([first]) + vbi(len(body)) + body


# property id -> kind: b byte, h u16, i u32, v varint, s string, d binary, p string pair
PROP_KIND = {0x01: "b", 0x02: "i", 0x03: "s", 0x08: "s", 0x09: "d", 0x0B: "v", 0x11: "i",
             0x12: "s", 0x13: "h", 0x15: "s", 0x16: "d", 0x17: "b", 0x18: "i", 0x19: "b",
             0x1A: "s", 0x1C: "s", 0x1F: "s", 0x21: "h", 0x22: "h", 0x23: "h", 0x24: "b",
             0x25: "b", 0x26: "p", 0x27: "i", 0x28: "b", 0x29: "b", 0x2A: "b"}


def read_vbi(buf, i):
    val, mul = 0, 1
    while True:
        b = buf[i]
        i += 1
        val += (b & 0x7F) * mul
        if not b & 0x80:
            return val, i
        mul *= 128


def parse_props(buf):
    """A list of (id, value) in wire order."""
    out, i = [], 0
    while i < len(buf):
        pid = buf[i]
        i += 1
        kind = PROP_KIND[pid]
        if kind == "b":
            val, i = buf[i], i + 1
        elif kind == "h":
            val, i = struct.unpack_from("!H", buf, i)[0], i + 2
        elif kind == "i":
            val, i = struct.unpack_from("!I", buf, i)[0], i + 4
        elif kind == "v":
            val, i = read_vbi(buf, i)
        elif kind in "sd":
            n = struct.unpack_from("!H", buf, i)[0]
            val, i = bytes(buf[i + 2:i + 2 + n]), i + 2 + n
        else:
            n = struct.unpack_from("!H", buf, i)[0]
            k = bytes(buf[i + 2:i + 2 + n])
            i += 2 + n
            m = struct.unpack_from("!H", buf, i)[0]
            val, i = (k, bytes(buf[i + 2:i + 2 + m])), i + 2 + m
        out.append((pid, val))
    return out


class Raw:
    """A blocking MQTT 5 client on a socket, reading whole packets."""

    def __init__(self, cid, clean=True, expiry=0, alias_max=0):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        self.buf = b""
        props = b""
        if expiry:
            props += b"\x11" + struct.pack("!I", expiry)
        if alias_max:
            props += b"\x22" + struct.pack("!H", alias_max)
        body = mstr("MQTT") + bytes([5, 0x02 if clean else 0x00]) + struct.pack("!H", 30)
        body += vbi(len(props)) + props + mstr(cid)
        self.s.sendall(packet(0x10, body))
        t, _, b = self.read()
        assert t == 2 and b[1] == 0, "CONNACK refused"
        self.session_present = bool(b[0] & 1)

    def read(self, timeout=5.0):
        """(type, flags, body) of the next packet, or None on timeout."""
        end = time.time() + timeout
        while True:
            if len(self.buf) >= 2:
                try:
                    n, i = read_vbi(self.buf, 1)
                except IndexError:
                    n, i = None, 0
                if n is not None and len(self.buf) >= i + n:
                    first, body = self.buf[0], self.buf[i:i + n]
                    self.buf = self.buf[i + n:]
                    return first >> 4, first & 0x0F, body
            left = end - time.time()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return None
            if not d:
                return None
            self.buf += d

    def subscribe(self, filt, qos):
        self.s.sendall(packet(0x82, struct.pack("!H", 1) + b"\x00" + mstr(filt) + bytes([qos])))
        p = self.read()
        assert p is not None and p[0] == 9, "no SUBACK"

    def publish(self, topic, payload, qos=1, pid=1):
        body = mstr(topic) + (struct.pack("!H", pid) if qos else b"") + b"\x00" + payload
        self.s.sendall(packet(0x30 | (qos << 1), body))
        if qos:
            p = self.read()
            assert p is not None and p[0] == 4, "no PUBACK"

    def next_publish(self, timeout=5.0):
        """The next PUBLISH as a dict (topic, alias, dup, qos, pid, payload), or None."""
        while True:
            p = self.read(timeout)
            if p is None:
                return None
            t, flags, b = p
            if t != 3:
                continue
            qos = (flags >> 1) & 3
            n = struct.unpack_from("!H", b, 0)[0]
            topic = b[2:2 + n].decode()
            i = 2 + n
            pid = None
            if qos:
                pid = struct.unpack_from("!H", b, i)[0]
                i += 2
            plen, i = read_vbi(b, i)
            props = parse_props(b[i:i + plen])
            aliases = [v for k, v in props if k == 0x23]
            return {"topic": topic, "alias": aliases[0] if aliases else None,
                    "n_alias": len(aliases), "dup": bool(flags & 8), "qos": qos,
                    "pid": pid, "payload": b[i + plen:]}

    def puback(self, pid):
        self.s.sendall(packet(0x40, struct.pack("!H", pid)))

    def close(self):
        self.s.close()


def collect(sub, n, timeout=5.0):
    out = []
    for _ in range(n):
        m = sub.next_publish(timeout)
        if m is None:
            break
        out.append(m)
    return out


def wire(msgs):
    return [(m["topic"], m["alias"], m["payload"].decode()) for m in msgs]


# ------------------------------------------------------------------- checks ----

def test_paho():
    """paho v5 with TopicAliasMaximum: resolved topics are right for every message."""
    got, lock, ready = [], threading.Lock(), threading.Event()
    c = mqtt.Client(client_id="alias-paho", protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.TopicAliasMaximum = 3

    def on_connect(cl, u, flags, rc, p=None):
        ready.set()

    def on_message(cl, u, m):
        alias = getattr(m.properties, "TopicAlias", None) if m.properties else None
        with lock:
            got.append((m.topic, alias, m.payload.decode()))

    c.on_connect = on_connect
    c.on_message = on_message
    c.connect("127.0.0.1", PORT, properties=props)
    c.loop_start()
    try:
        check("paho: CONNACK with TopicAliasMaximum 3", ready.wait(5))
        c.subscribe("pal/#", qos=1)
        time.sleep(0.3)
        pub = Raw("alias-paho-pub")
        # reuse and re-assignment both: 5 topics through 3 aliases
        order = [0, 1, 2, 0, 1, 2, 3, 3, 4, 4, 0, 1, 2, 3, 4, 0, 0, 1, 2, 2]
        topics = ["pal/room/%d/temp" % k for k in order]
        for i, t in enumerate(topics):
            pub.publish(t, ("v%d" % i).encode(), qos=1, pid=i + 1)
        pub.close()
        end = time.time() + 5
        while time.time() < end:
            with lock:
                if len(got) >= len(topics):
                    break
            time.sleep(0.02)
        # paho-mqtt 1.6 does not resolve aliases it receives: do what a client must
        table, resolved = {}, []
        for topic, alias, payload in got:
            if topic:
                if alias is not None:
                    table[alias] = topic
                resolved.append((topic, payload))
            else:
                resolved.append((table.get(alias, "?unknown alias %s" % alias), payload))
        want = [(t, "v%d" % i) for i, t in enumerate(topics)]
        check("paho: 20 messages on 5 topics, every topic right after resolving aliases",
              resolved == want, resolved)
        check("paho: aliases used (empty topics received)", any(t == "" for t, _, _ in got))
        check("paho: at most 3 aliases", all(a is None or 1 <= a <= 3 for _, a, _ in got),
              got)
    finally:
        c.loop_stop()
        c.disconnect()


def test_wire():
    sub = Raw("alias-raw", alias_max=2)
    plain = Raw("alias-plain")             # v5 without Topic Alias Maximum
    sub.subscribe("raw/#", 1)
    plain.subscribe("raw/#", 1)
    pub = Raw("alias-raw-pub")
    seq = ["raw/t1", "raw/t1", "raw/t2", "raw/t3", "raw/t1", "raw/t3", "raw/t2"]
    for i, t in enumerate(seq):
        pub.publish(t, ("p%d" % i).encode(), qos=1, pid=i + 1)
    msgs = collect(sub, len(seq))
    for m in msgs:
        sub.puback(m["pid"])
    # max 2, the least recently used alias re-assigned: t1 -> 1, t1 (1), t2 -> 2,
    # t3 takes 1 (t1's), t1 takes 2 (t2's), t3 (1), t2 takes 2 (t1's)
    want = [("raw/t1", 1, "p0"), ("", 1, "p1"), ("raw/t2", 2, "p2"), ("raw/t3", 1, "p3"),
            ("raw/t1", 2, "p4"), ("", 1, "p5"), ("raw/t2", 2, "p6")]
    check("wire: first PUBLISH of a topic has topic + alias, later ones empty topic + alias",
          wire(msgs[:3]) == want[:3], wire(msgs))
    check("wire: full table: the least recently used alias re-assigned with the topic",
          wire(msgs) == want, wire(msgs))
    check("wire: one Topic Alias property per PUBLISH", all(m["n_alias"] == 1 for m in msgs))
    pm = collect(plain, len(seq))
    for m in pm:
        plain.puback(m["pid"])
    check("wire: a v5 client without Topic Alias Maximum gets full topics, no alias",
          wire(pm) == [(t, None, "p%d" % i) for i, t in enumerate(seq)], wire(pm))
    sub.close()
    plain.close()
    pub.close()


def test_dup_resend():
    a = Raw("alias-dup", clean=False, expiry=60, alias_max=4)
    a.subscribe("dupal/#", 1)
    pub = Raw("alias-dup-pub")
    pub.publish("dupal/x", b"one", qos=1, pid=1)
    pub.publish("dupal/x", b"two", qos=1, pid=2)
    first = collect(a, 2)
    check("dup: first connection uses the alias",
          wire(first) == [("dupal/x", 1, "one"), ("", 1, "two")], wire(first))
    a.close()                              # both left unacknowledged
    time.sleep(0.3)
    b = Raw("alias-dup", clean=False, expiry=60, alias_max=4)
    check("dup: session present on reconnect", b.session_present)
    again = collect(b, 2)
    check("dup: resent with DUP, full topic and no alias",
          [(m["topic"], m["alias"], m["dup"], m["payload"]) for m in again] ==
          [("dupal/x", None, True, b"one"), ("dupal/x", None, True, b"two")],
          [(m["topic"], m["alias"], m["dup"]) for m in again])
    for m in again:
        b.puback(m["pid"])
    pub.publish("dupal/x", b"three", qos=1, pid=3)
    pub.publish("dupal/x", b"four", qos=1, pid=4)
    new = collect(b, 2)
    for m in new:
        b.puback(m["pid"])
    check("dup: aliases start over on the new connection (assigned again)",
          wire(new) == [("dupal/x", 1, "three"), ("", 1, "four")], wire(new))
    b.close()
    pub.close()


def main():
    for t in (test_paho, test_wire, test_dup_resend):
        try:
            t()
        except Exception as e:  # a broken step fails its checks, the others still run
            check(t.__name__ + " ran", False, repr(e))
    return finish()


if __name__ == "__main__":
    sys.exit(main())
