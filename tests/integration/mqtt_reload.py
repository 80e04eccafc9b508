"""SIGHUP reload of the MQTT listener against a running sluice (tests/integration/test_mqtt.sh).

The shell started sluice with SLUICE_CONF, whose last section is `  mqtt:` with user
"a" (password "pw1"), allow_anonymous true and max_packet_size 1MiB. This script rewrites
the mqtt section of that file, sends SIGHUP to SLUICE_PID and checks, with paho-mqtt and
raw sockets (to read CONNACK codes and properties exactly):

  1. users: a's hash changed to password "pw2", user "b" added: a client connected before
     stays connected and publishes; a new CONNECT with the old password is refused (v5
     0x86, 3.1.1 return code 4) although it was verified (cached) before; pw2 and b work.
  2. allow_anonymous false: a new anonymous CONNECT is refused (0x87 / 5); an anonymous
     client connected before stays and publishes.
  3. max_packet_size 4KiB (receive_maximum, topic_alias_maximum too): a new v5 client's
     CONNACK announces them; a client connected before keeps its 1 MiB limit.
  4. a malformed users entry: the reload is refused (logged), the running config stays.
  5. bind changed: logged as needing a restart; the listener stays where it is.

Environment: SLUICE_CONF, SLUICE_PID, SLUICE_LOG, SLUICE_MQTT (port). Prints one
"ok"/"FAIL" line per check and "N passed, M failed". Every wait is bounded; only
127.0.0.1 is used; nothing is started here.
"""
import base64
import hashlib
import os
import signal
import socket
import struct
import sys
import time

import paho.mqtt.client as mqtt

from checks import check, finish

CONF = os.environ["SLUICE_CONF"]
PID = int(os.environ["SLUICE_PID"])
LOG = os.environ["SLUICE_LOG"]
PORT = int(os.environ["SLUICE_MQTT"])


def make_hash(pw, iters=2000):
    salt = os.urandom(12)
    return "pbkdf2-sha256$%d$%s$%s" % (
        iters, base64.b64encode(salt).decode(),
        base64.b64encode(hashlib.pbkdf2_hmac("sha256", pw.encode(), salt, iters)).decode())


# ------------------------------------------------------------------ raw MQTT ----

def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mstr(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("!H", len(b)) + b


def recv_exact(s, n, deadline):
    buf = b""
    while len(buf) < n:
        s.settimeout(max(0.05, deadline - time.time()))
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_packet(s, timeout=5.0):
    """(type byte, body) of the next packet; raises on close or timeout."""
    deadline = time.time() + timeout
    first = recv_exact(s, 1, deadline)[0]
    mult, length = 1, 0
    for _ in range(4):
        b = recv_exact(s, 1, deadline)[0]
        length += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return first, recv_exact(s, length, deadline)


def parse_props(body):
    """v5 properties at the start of body: ({id: value}, rest)."""
    n, shift, i = 0, 0, 0
    while True:
        b = body[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    props, p, end = {}, i, i + n
    sizes = {0x01: 1, 0x24: 1, 0x25: 1, 0x28: 1, 0x29: 1, 0x2A: 1, 0x13: 2, 0x21: 2,
             0x22: 2, 0x11: 4, 0x27: 4}
    while p < end:
        pid = body[p]
        p += 1
        if pid in sizes:
            props[pid] = int.from_bytes(body[p:p + sizes[pid]], "big")
            p += sizes[pid]
        elif pid in (0x12, 0x1F, 0x1A, 0x1C, 0x15):
            ln = struct.unpack("!H", body[p:p + 2])[0]
            props[pid] = body[p + 2:p + 2 + ln].decode(errors="replace")
            p += 2 + ln
        elif pid == 0x26:
            for _ in range(2):
                ln = struct.unpack("!H", body[p:p + 2])[0]
                p += 2 + ln
        else:
            break
    return props, body[end:]


def raw_connect(version, cid, user=None, pw=None):
    """(socket or None, reason code, CONNACK properties). v5 codes, 3.1.1 return codes."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    flags = 0x02
    payload = mstr(cid)
    if user is not None:
        flags |= 0x80
        payload += mstr(user)
    if pw is not None:
        flags |= 0x40
        payload += mstr(pw)
    vh = mstr("MQTT") + bytes([5 if version == 5 else 4, flags]) + struct.pack("!H", 60)
    if version == 5:
        vh += varint(0)
    body = vh + payload
    s.sendall(bytes([0x10]) + varint(len(body)) + body)
    try:
        t, b = read_packet(s, 10.0)
    except (OSError, ConnectionError):
        s.close()
        return None, -1, {}
    if t != 0x20:
        s.close()
        return None, -2, {}
    rc = b[1]
    props = parse_props(b[2:])[0] if version == 5 else {}
    if rc != 0:
        s.close()
        return None, rc, props
    return s, rc, props


def raw_publish_qos1(s, version, topic, payload, pid=1, timeout=5.0):
    """PUBACK reason (0 ok), or None when the connection closed / DISCONNECT came."""
    vh = mstr(topic) + struct.pack("!H", pid) + (varint(0) if version == 5 else b"")
    body = vh + payload
    try:
        s.sendall(bytes([0x32]) + varint(len(body)) + body)
        deadline = time.time() + timeout
        while time.time() < deadline:
            t, b = read_packet(s, max(0.1, deadline - time.time()))
            if t & 0xF0 == 0x40:
                return b[2] if version == 5 and len(b) > 2 else 0
            if t & 0xF0 == 0xE0:
                return ("disconnect", b[0] if b else 0)
    except (OSError, ConnectionError):
        return None
    return None


def connect_code(version, cid, user=None, pw=None):
    s, rc, _ = raw_connect(version, cid, user, pw)
    if s is not None:
        s.close()
    return rc


# ------------------------------------------------------------------- reload ----

HEAD = None


def write_mqtt(lines):
    global HEAD
    if HEAD is None:
        text = open(CONF).read()
        i = text.index("\n  mqtt:\n")
        HEAD = text[:i + len("\n  mqtt:\n")]
    with open(CONF + ".tmp", "w") as f:
        f.write(HEAD + "".join("    " + ln + "\n" for ln in lines))
    os.replace(CONF + ".tmp", CONF)


def log_count(pattern):
    try:
        return open(LOG, errors="replace").read().count(pattern)
    except OSError:
        return 0


def hup_and_wait(pattern):
    """SIGHUP, then wait (bounded) for one more log line containing pattern."""
    before = log_count(pattern)
    os.kill(PID, signal.SIGHUP)
    for _ in range(100):
        if log_count(pattern) > before:
            return True
        time.sleep(0.05)
    return False


def paho_client(cid, user, pw, version=mqtt.MQTTv311):
    c = mqtt.Client(client_id=cid, protocol=version)
    if user is not None:
        c.username_pw_set(user, pw)
    res = {}
    c.on_connect = lambda cl, ud, fl, rc, props=None: res.setdefault("rc", rc)
    c.connect("127.0.0.1", PORT, keepalive=60)
    c.loop_start()
    for _ in range(100):
        if "rc" in res:
            break
        time.sleep(0.05)
    return c, res.get("rc")


def paho_publish_ok(c, topic):
    try:
        info = c.publish(topic, b"after reload", qos=1)
        info.wait_for_publish(timeout=5)
        return info.is_published()
    except (RuntimeError, ValueError):
        return False


def main():
    port_line = "bind: 127.0.0.1:%d" % PORT

    # before: a/pw1 verified (and cached), an anonymous client and a v5 client connected
    check("before: a with pw1 accepted (v5)", connect_code(5, "pre-a5", "a", "pw1") == 0)
    check("before: a with pw1 accepted (3.1.1, cached)",
          connect_code(4, "pre-a4", "a", "pw1") == 0)
    old, rc = paho_client("old-a", "a", "pw1")
    check("before: paho client a/pw1 connected (rc %s)" % rc, rc == 0)
    old5, rc5, props5 = raw_connect(5, "old-a5", "a", "pw1")
    check("before: raw v5 client a/pw1 connected, Maximum Packet Size %s" % props5.get(0x27),
          old5 is not None and props5.get(0x27) == 1024 * 1024)
    anon, rca = paho_client("old-anon", None, None)
    check("before: anonymous client connected (rc %s)" % rca, rca == 0)

    # 1. users: a gets pw2, b added
    write_mqtt([port_line, "max_packet_size: 1MiB", "allow_anonymous: true", "users:",
                '  a: "%s"' % make_hash("pw2"), '  b: "%s"' % make_hash("pwb")])
    check("users changed: reload logged", hup_and_wait("[mqtt:listener] reloaded"))
    check("users changed: no restart warning",
          log_count("take effect only after a restart") == 0)
    check("users changed: the client connected before stays connected", old.is_connected())
    check("users changed: and still publishes (QoS 1 acked)", paho_publish_ok(old, "reload/old"))
    check("users changed: old password refused (v5 0x86) although cached",
          connect_code(5, "new-a5", "a", "pw1") == 0x86)
    check("users changed: old password refused (3.1.1 return code 4)",
          connect_code(4, "new-a4", "a", "pw1") == 4)
    check("users changed: new password accepted (v5)", connect_code(5, "new-a5", "a", "pw2") == 0)
    check("users changed: new password accepted (3.1.1)",
          connect_code(4, "new-a4", "a", "pw2") == 0)
    check("users changed: new user b accepted", connect_code(5, "new-b", "b", "pwb") == 0)
    check("users changed: b with a wrong password refused",
          connect_code(5, "new-b", "b", "pw2") == 0x86)
    users = ['  a: "%s"' % make_hash("pw2"), '  b: "%s"' % make_hash("pwb")]

    # 2. allow_anonymous false
    write_mqtt([port_line, "max_packet_size: 1MiB", "allow_anonymous: false", "users:"] + users)
    check("allow_anonymous false: reload logged", hup_and_wait("[mqtt:listener] reloaded"))
    check("allow_anonymous false: new anonymous CONNECT refused (v5 0x87)",
          connect_code(5, "anon5") == 0x87)
    check("allow_anonymous false: new anonymous CONNECT refused (3.1.1 return code 5)",
          connect_code(4, "anon4") == 5)
    check("allow_anonymous false: anonymous client connected before stays",
          anon.is_connected() and paho_publish_ok(anon, "reload/anon"))
    check("allow_anonymous false: a/pw2 still accepted", connect_code(5, "a5", "a", "pw2") == 0)

    # 3. max_packet_size and other per-client limits
    small = [port_line, "max_packet_size: 4KiB", "receive_maximum: 7", "topic_alias_maximum: 3",
             "allow_anonymous: false", "users:"] + users
    write_mqtt(small)
    check("limits: reload logged", hup_and_wait("[mqtt:listener] reloaded"))
    s, rc, props = raw_connect(5, "new-lim", "a", "pw2")
    check("limits: new v5 CONNACK Maximum Packet Size 4096 (got %s)" % props.get(0x27),
          rc == 0 and props.get(0x27) == 4096)
    check("limits: new v5 CONNACK Receive Maximum 7, Topic Alias Maximum 3 (got %s, %s)"
          % (props.get(0x21), props.get(0x22)), props.get(0x21) == 7 and props.get(0x22) == 3)
    if s is not None:
        r = raw_publish_qos1(s, 5, "reload/big", b"x" * 10000)
        check("limits: the new connection's 10 kB publish is refused (%r)" % (r,),
              r is None or r == ("disconnect", 0x95))
        s.close()
    r = raw_publish_qos1(old5, 5, "reload/big", b"y" * 10000) if old5 is not None else None
    check("limits: the connection made before keeps 1 MiB: 10 kB publish acked (%r)" % (r,),
          r == 0)
    check("limits: paho client from before still publishes", paho_publish_ok(old, "reload/old2"))

    # 4. a malformed users entry: refused, the running config stays
    write_mqtt([port_line, "max_packet_size: 1MiB", "allow_anonymous: true", "users:"] + users
               + ['  c: "pbkdf2-sha256$1000$not base64$AAAA"'])
    check("bad users entry: reload refused and logged",
          hup_and_wait("failed, keeping the running config"))
    check("bad users entry: the log names listeners.mqtt.users.c",
          log_count("listeners.mqtt.users.c:") >= 1)
    check("bad users entry: the hash is not echoed in the log", log_count("not base64") == 0)
    check("bad users entry: anonymous still refused (old config)", connect_code(5, "anon6") == 0x87)
    check("bad users entry: a/pw2 still accepted", connect_code(5, "a6", "a", "pw2") == 0)
    _, rc, props = raw_connect(5, "a7", "a", "pw2")
    check("bad users entry: Maximum Packet Size still 4096", props.get(0x27) == 4096)

    # 5. bind is restart-only
    write_mqtt(["bind: 127.0.0.1:1", "max_packet_size: 4KiB", "receive_maximum: 7",
                "topic_alias_maximum: 3", "allow_anonymous: false", "users:"] + users)
    check("bind changed: warned as restart-only",
          hup_and_wait("listeners.mqtt.bind take effect only after a restart"))
    check("bind changed: the listener still serves its port",
          connect_code(5, "a8", "a", "pw2") == 0)
    write_mqtt(small)
    check("restored config reloads", hup_and_wait("[mqtt:listener] reloaded"))
    check("the paho client from the start is still connected", old.is_connected())

    for c in (old, anon):
        c.disconnect()
        c.loop_stop()
    if old5 is not None:
        old5.close()
    return finish()


if __name__ == "__main__":
    sys.exit(main())
