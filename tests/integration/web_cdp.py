#!/usr/bin/python3
"""Drive the web page in headless Chromium over the DevTools protocol.

Usage: web_cdp.py SLUICE_URL DEVTOOLS_PORT
Chromium must already run with --remote-debugging-port=DEVTOOLS_PORT. The script opens the
page, publishes through its form, tails the topic, publishes over REST and waits for the
event to appear live, and checks that event text is escaped. Prints "N passed, N failed".
"""
import asyncio
import json
import sys
import time
import urllib.request

import websockets

PASSED = 0
FAILED = 0


def check(ok, what):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print("  ok   " + what)
    else:
        FAILED += 1
        print("  FAIL " + what)


class Page:
    def __init__(self, ws):
        self.ws = ws
        self.n = 0

    async def call(self, method, **params):
        self.n += 1
        mid = self.n
        await self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(msg["error"])
                return msg.get("result", {})

    async def js(self, expr):
        r = await self.call("Runtime.evaluate", expression=expr, returnByValue=True,
                            awaitPromise=True)
        return r.get("result", {}).get("value")

    async def wait(self, expr, seconds=10):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if await self.js(expr):
                return True
            await asyncio.sleep(0.1)
        return False


def page_ws_url(port):
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=2) as r:
                for t in json.loads(r.read()):
                    if t.get("type") == "page":
                        return t["webSocketDebuggerUrl"]
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("no DevTools page target")


def rest_publish(base, topic, body):
    req = urllib.request.Request(base + "/topics/" + topic, data=body.encode(), method="POST",
                                 headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


async def main(base, port):
    async with websockets.connect(page_ws_url(port), max_size=2 ** 24) as ws:
        p = Page(ws)
        await p.call("Page.enable")
        await p.call("Runtime.enable")
        await p.call("Page.navigate", url=base + "/")
        check(await p.wait("document.getElementById('status') && "
                           "document.getElementById('status').textContent === 'connected'"),
              "page loads and reaches the gateway")
        # publish through the form
        await p.js("""(() => {
            document.getElementById('p-topic').value = 'webtest';
            document.getElementById('p-key').value = 'k1';
            document.getElementById('p-body').value = 'from-the-form';
            document.getElementById('pub').requestSubmit(); return true; })()""")
        check(await p.wait("document.getElementById('p-result').textContent"
                           ".startsWith('stored at partition 0, offset 0')"),
              "publish form answers with the stored position")
        check(await p.wait("!!document.querySelector('#topics tr[data-topic=\"webtest\"]')"),
              "the topic appears in the topic list")
        # tail from the earliest offset
        await p.js("""(() => { document.getElementById('t-from').value = 'earliest';
            document.querySelector('#topics tr[data-topic="webtest"] td').click();
            return true; })()""")
        check(await p.wait("document.getElementById('events').textContent"
                           ".includes('from-the-form')"),
              "tail shows the record published through the form")
        # a REST publish shows up live through the long-poll
        rest_publish(base, "webtest", "live-over-rest")
        check(await p.wait("document.getElementById('events').textContent"
                           ".includes('live-over-rest')", 10),
              "a record published over REST appears live in the tail")
        rest_publish(base, "webtest", "<b id=injected>x</b>")
        check(await p.wait("document.getElementById('events').textContent"
                           ".includes('<b id=injected>')", 10),
              "markup in event data is shown as text")
        check(await p.js("document.getElementById('injected') === null"),
              "markup in event data is not turned into elements")
        check(await p.wait("document.querySelector('#topics tr[data-topic=\"webtest\"]')"
                           ".children[2].textContent === '3'", 10),
              "the topic list follows the high watermark (3 records)")


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    except Exception as e:  # report, do not hide
        FAILED += 1
        print("  FAIL web test raised: %r" % (e,))
    print("%d passed, %d failed" % (PASSED, FAILED))
    sys.exit(1 if FAILED else 0)
