"""Starts the real `ward serve` on the real SmolLM2 model once for the whole session and hands
tests its URL, an `openai` client, and the server's log (to check nothing private reaches it).

WARD_BIN names the binary (scripts/test.sh passes target/release/ward)."""
import json
import os
import re
import signal
import subprocess
import threading
import time

import openai
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
MODEL = "smollm2-135m-instruct"
FIXTURES = os.path.join(ROOT, "scripts", "reference", "fixtures")


class Server:
    def __init__(self, *extra_args, ready_timeout=300):
        binary = os.environ.get("WARD_BIN", os.path.join(ROOT, "target", "release", "ward"))
        self.log = []
        self.proc = subprocess.Popen(
            [binary, "serve", "--port", "0", "--threads", "2", *extra_args],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "WARD_LOG": "info"})
        ready = threading.Event()
        self.url = None

        def pump():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"at (https?://\S+)/v1 \(ready\)", line)
                if m:
                    self.url = m.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(ready_timeout) or self.url is None:
            self.proc.kill()
            raise RuntimeError("ward serve did not become ready:\n" + "".join(self.log))

    def log_text(self):
        return "".join(self.log)

    def stop(self, timeout=60):
        """SIGTERM, as systemd would; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.fixture(scope="session")
def server():
    # One sequence at a time, so that two more requests fill the queue of two.
    s = Server("--max-queue", "2", "--max-running", "1", "--max-body", "65536", "--header-timeout", "3", "--body-timeout", "3")
    yield s
    assert s.stop() == 0, s.log_text()


@pytest.fixture(scope="session")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=180)


@pytest.fixture(scope="session")
def smollm2_fixture():
    with open(os.path.join(FIXTURES, "logits-smollm2.json"), encoding="utf-8") as f:
        return json.load(f)
