"""HTTP listener limits against a sluice started with listeners.http.max_connections: 2
(tests/integration/test_rest_limits.sh): the connection limit and request framing.
Raw sockets, so that what goes on the wire is what is checked. Prints "N passed, M failed".
"""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, finish  # noqa: E402

PORT = int(os.environ["SLUICE_PORT"])


def connect():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s):
    """One HTTP/1.1 response: (status, headers dict lower-cased, body bytes); status 0
    if the server closed without answering."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return 0, {}, buf
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    want = int(headers.get("content-length", "0"))
    while len(body) < want:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def request(s, method, path, body=b"", extra=""):
    s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n"
               % (method, path, extra, len(body))).encode() + body)
    return read_response(s)


def closed_by_peer(s):
    try:
        s.settimeout(3)
        return s.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        return False


def json_error(body, code):
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return doc.get("code") == code and isinstance(doc.get("error"), str)


def metric(s, name):
    status, _, body = request(s, "GET", "/metrics")
    if status != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# Two connections are the limit: both keep working.
a, b = connect(), connect()
check("first connection served", request(a, "GET", "/healthz")[0] == 200)
check("second connection served", request(b, "GET", "/healthz")[0] == 200)

# A third gets a 503 with a JSON body, and is closed.
c = connect()
status, headers, body = request(c, "GET", "/healthz")
check("third connection: 503 (got %d)" % status, status == 503)
check("503 body is a JSON error", json_error(body, 503))
check("503 says Connection: close", headers.get("connection", "").lower() == "close")
check("third connection closed by sluice", closed_by_peer(c))
c.close()

# Several more at once: each one refused the same way, none left hanging.
extra = [connect() for _ in range(5)]
answers = [request(s, "GET", "/healthz")[0] for s in extra]
for s in extra:
    s.close()
check("5 more connections each get 503 (got %s)" % answers, answers == [503] * 5)

refused = metric(a, 'sluice_listener_refused_connections_total{listener="http"}')
check("refused connections counted in /metrics (%s)" % refused, refused == 6)
check("the kept connections still work", request(b, "GET", "/healthz")[0] == 200)

# A slot frees when a connection closes (bounded wait for sluice to see the close).
b.close()
served = False
for _ in range(50):
    d = connect()
    status = request(d, "GET", "/healthz")[0]
    if status == 200:
        served = True
        break
    d.close()
    time.sleep(0.1)
check("a freed slot serves a new connection", served)

# Content-Length together with Transfer-Encoding: refused, nothing stored.
if served:
    status, headers, body = request(
        d, "POST", "/topics/framing", b"0\r\n\r\n",
        "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n")
    check("Content-Length + Transfer-Encoding: 400 (got %d)" % status, status == 400)
    check("framing error is a JSON error", json_error(body, 400))
    d.close()
    status = request(a, "GET", "/topics/framing")[0]
    check("nothing was published (topic framing absent: %d)" % status, status == 404)
    bad_framing = metric(a, 'sluice_http_invalid_requests_total{reason="bad_framing"}')
    check("framing error counted in /metrics (%s)" % bad_framing, bad_framing == 1)
a.close()


def raw_exchange(data, first_ok=False):
    """Send data on a fresh connection (after one good request if first_ok); returns
    (status, headers, body) of the answer to data."""
    s = connect()
    try:
        if first_ok:
            if request(s, "GET", "/healthz")[0] != 200:
                return -1, {}, b""
        s.sendall(data)
        return read_response(s)
    finally:
        s.close()


# Requests lws cannot parse get the same JSON errors as the rest (one connection is
# free again now: a and d are closed).
for name, data, first_ok in [
        ("garbage request line", b"\x16\x03\x01 hello there\r\n\r\n", False),
        ("unknown method BREW", b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", False),
        ("unknown method after a good request", b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n",
         True)]:
    status, headers, body = raw_exchange(data, first_ok)
    check("%s: 400 JSON (got %d %r)" % (name, status, body[:60]),
          status == 400 and json_error(body, 400)
          and headers.get("content-type") == "application/json")
status, _, body = raw_exchange(b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n")
check("HTTP/9.9: 505 JSON (got %d)" % status, status == 505 and json_error(body, 505))
status, _, body = raw_exchange(b"GET /healthz\r\n\r\n")
check("no HTTP version: 400 JSON (got %d)" % status, status == 400 and json_error(body, 400))
# A WebSocket upgrade (not served yet) is refused, never switched: it would hold a
# connection past max_connections with no idle timeout.
s = connect()
s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
status = read_response(s)[0]
check("WebSocket upgrade refused, not 101 (got %d)" % status, status != 101)
s.close()
# A head larger than lws's header buffer: lws closes without an answer; counted.
s = connect()
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 20000 + b"\r\n\r\n")
check("20 kB header: connection closed", read_response(s)[0] in (0, 431))
s.close()
s = connect()
big = metric(s, 'sluice_http_invalid_requests_total{reason="head_too_large"}')
check("20 kB header counted as head_too_large (%s)" % big, big == 1)
bad_line = metric(s, 'sluice_http_invalid_requests_total{reason="bad_request_line"}')
check("bad request lines counted (%s)" % bad_line, bad_line == 3)
upgrades = metric(s, 'sluice_http_invalid_requests_total{reason="websocket_upgrade"}')
check("upgrade counted (%s)" % upgrades, upgrades == 1)
check("still serving", request(s, "GET", "/healthz")[0] == 200)
s.close()
sys.exit(finish())
