"""The chat page at `/` in a real headless browser (Debian's chromium, driven over the DevTools
protocol): it loads under its Content-Security-Policy with nothing refused, streams an answer,
stops one, asks for the key when the server needs one and keeps it in the tab's session storage
only; `--no-ui` turns it off. A screenshot of the conversation is left in the test's directory."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest
import websocket

from conftest import Server
from test_http import request

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
KEY = "ward-test-ui-5e1a"


class Browser:
    """One headless chromium with one page, and the DevTools calls the tests need."""

    def __init__(self):
        assert CHROMIUM, "chromium is not installed (scripts/test.sh installs Debian's)"
        self.profile = tempfile.mkdtemp(prefix="ward-ui-")
        self.proc = subprocess.Popen(
            # No background connections: this machine's closed network refuses them, many at
            # a time, and a start could stall on them.
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-quic", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = None
        for line in self.proc.stderr:
            if "DevTools listening on ws://" in line:
                port = int(line.split("ws://")[1].split("/")[0].split(":")[1])
                break
        assert port, "chromium did not start its DevTools server"
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=120)
        self.calls = 0
        self.events = []
        self.call("Runtime.enable")
        self.call("Log.enable")
        self.call("Page.enable")

    def call(self, method, **params):
        self.calls += 1
        self.ws.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.calls:
                assert "error" not in message, message
                return message["result"]
            self.events.append(message)

    def eval(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression, timeout=120):
        t0 = time.time()
        while not self.eval(expression):
            assert time.time() - t0 < timeout, f"timed out waiting for {expression}"
            time.sleep(0.1)

    def open(self, url):
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def problems(self):
        """Console errors and refusals (CSP violations among them) seen so far."""
        out = []
        for e in self.events:
            if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error":
                out.append(e["params"]["entry"]["text"])
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(str(e["params"]["exceptionDetails"]))
        return out

    def close(self):
        self.ws.close()
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


def test_the_page_streams_answers_and_stops_them(server, browser, tmp_path):
    status, headers, page = request(server, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    for path in ("/", "/ui/chat.js", "/ui/chat.css"):
        body = request(server, "GET", path)[2]
        assert "http://" not in body and "https://" not in body, f"{path} loads something from elsewhere"

    browser.open(server.url + "/")
    browser.wait_for("document.getElementById('model').options.length > 0")
    # Without keys the key form is not shown (hidden, and so not laid out).
    assert browser.eval("document.getElementById('key-form').offsetHeight") == 0
    browser.eval("document.getElementById('system').value = 'Answer in one sentence.'")
    content = "document.querySelector('.assistant .content').textContent"
    for n, question in enumerate(["Name one antibiotic.", "Which vitamin is made in the skin?"]):
        browser.eval(f"document.getElementById('prompt').value = '{question}'")
        browser.eval("document.getElementById('send').click()")
        # The answer streams in piece by piece.
        browser.wait_for(f"document.querySelectorAll('.assistant')[{n}]?.dataset.done === 'true' || "
                         f"document.querySelectorAll('.assistant')[{n}].querySelector('.content').textContent.length > 0")
        first = browser.eval(f"document.querySelectorAll('.assistant')[{n}].querySelector('.content').textContent")
        browser.wait_for(f"document.querySelectorAll('.assistant')[{n}].dataset.done === 'true' || "
                         f"document.querySelectorAll('.assistant')[{n}].querySelector('.content').textContent.length"
                         f" > {len(first) + 20}", timeout=60)
        # Stopped if still going: the engine lets the sequence go.
        browser.eval("document.getElementById('stop').disabled || document.getElementById('stop').click()")
        browser.wait_for(f"document.querySelectorAll('.assistant')[{n}].dataset.done === 'true'")
        answer = browser.eval(f"document.querySelectorAll('.assistant')[{n}].querySelector('.content').textContent")
        assert answer.startswith(first) and answer != "(no answer)"
        assert browser.eval("document.getElementById('error').hidden")
    assert browser.eval("document.querySelectorAll('.user').length") == 2
    shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    assert shot.startswith(b"\x89PNG")
    (tmp_path / "chat-page.png").write_bytes(shot)
    t0 = time.time()
    while request(server, "GET", "/ready")[2]["running"]:
        assert time.time() - t0 < 10
        time.sleep(0.05)
    assert browser.problems() == []


def test_the_page_asks_for_the_key_and_keeps_it_in_the_tab_only(tmp_path, browser):
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[service]]\nname = "ward-ui"\nkey_sha256 = "{hashlib.sha256(KEY.encode()).hexdigest()}"\n'
                    f'models = ["*"]\n')
    s = Server("--api-keys", str(keys))
    try:
        # The page's files need no key; the API still does.
        assert request(s, "GET", "/")[0] == 200
        assert request(s, "GET", "/v1/models")[0] == 401
        browser.open(s.url + "/")
        browser.wait_for("document.getElementById('key-form').offsetHeight > 0")
        assert browser.eval("document.getElementById('model').options.length") == 0
        browser.eval(f"document.getElementById('key').value = '{KEY}'")
        browser.eval("document.getElementById('key-form').requestSubmit()")
        browser.wait_for("document.getElementById('model').options.length > 0")
        assert browser.eval("document.getElementById('key-form').offsetHeight") == 0
        assert browser.eval(f"sessionStorage.getItem('ward-api-key') === '{KEY}'")
        assert browser.eval("localStorage.length") == 0
        assert browser.eval("document.cookie") == ""
    finally:
        assert s.stop() == 0, s.log_text()


def test_no_ui_turns_the_page_off():
    s = Server("--no-ui")
    try:
        assert request(s, "GET", "/")[0] == 404
        assert request(s, "GET", "/ui/chat.js")[0] == 404
    finally:
        assert s.stop() == 0, s.log_text()
