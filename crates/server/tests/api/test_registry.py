"""`ward pull` and `ward list` on a registry of their own (WARD_MODELS_DIR): downloads through
hf-hub from a local stand-in for the Hugging Face Hub (HF_ENDPOINT; no network), resumed after
a dropped connection, imports of hand-copied files, and refusals of anything whose sha256 is not
the pinned one."""
import hashlib
import http.server
import os
import shutil
import threading

import pytest

from conftest import ROOT
from test_hospital import ward

SMOLLM2 = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def sha256_of(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


class FakeHub(http.server.ThreadingHTTPServer):
    """Serves files like the Hub's /{repo}/resolve/{revision}/{file}, with the headers hf-hub
    reads (x-repo-commit, x-linked-etag = the file's sha256, Content-Range). The first full
    download is cut off halfway, so the client has to resume."""

    def __init__(self, files):
        self.files = files  # url path -> (bytes, etag)
        self.ranges = []
        self.cut_once = True
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        hub = self.server
        if self.path not in hub.files:
            self.send_error(404)
            return
        data, etag = hub.files[self.path]
        start, end = 0, len(data) - 1
        r = self.headers.get("Range")
        if r:
            hub.ranges.append(r)
            a, _, b = r.removeprefix("bytes=").partition("-")
            start, end = int(a), int(b) if b else len(data) - 1
        body = data[start:end + 1]
        self.send_response(206 if r else 200)
        self.send_header("x-repo-commit", "0" * 40)
        self.send_header("x-linked-etag", f'"{etag}"')
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if len(body) > 1 and start == 0 and hub.cut_once:
            hub.cut_once = False
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def models(tmp_path):
    """A models directory whose registry knows `tiny` (pinned to SmolLM2's file), `wrong`
    (pinned to another hash) and `unpinned`."""
    real = sha256_of(SMOLLM2)
    d = tmp_path / "models"
    d.mkdir()
    entries = [("tiny", real, "tiny.gguf"), ("wrong", "ab" * 32, "wrong.gguf"), ("unpinned", None, "unpinned.gguf")]
    text = 'default = "tiny"\n'
    for name, pin, file in entries:
        text += f'\n[[model]]\nname = "{name}"\nfile = "{file}"\narchitecture = "llama"\nlicense = "test"\n'
        text += f'sha256 = "{pin}"\n' if pin else ""
        text += f'hf = {{ repo = "test-org/{name}", file = "{file}" }}\n'
    (d / "registry.toml").write_text(text)
    return d


def run(models, *args, hub=None):
    env = {**os.environ, "WARD_MODELS_DIR": str(models), "HF_HOME": str(models.parent / "hf-home")}
    if hub is not None:
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{hub.server_address[1]}"
    return ward(*args, env=env)


@pytest.fixture
def hub():
    data = open(SMOLLM2, "rb").read()
    real = hashlib.sha256(data).hexdigest()
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    server = FakeHub({
        "/test-org/tiny/resolve/main/tiny.gguf": (data, real),
        "/test-org/wrong/resolve/main/wrong.gguf": (data, real),
        # A server that lies about the hash: only hashing the download catches it.
        "/test-org/unpinned/resolve/main/unpinned.gguf": (tampered, "not-a-sha"),
    })
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_pull_downloads_resumes_verifies_and_lists(models, hub):
    done = run(models, "pull", "tiny", hub=hub)
    assert done.returncode == 0, done.stderr
    assert sha256_of(models / "tiny.gguf") == sha256_of(SMOLLM2)
    # Cut off halfway, the download went on from where it stopped.
    assert any(r != "bytes=0-0" and not r.startswith("bytes=0-") for r in hub.ranges), hub.ranges
    assert not (models / ".hf" / "models--test-org--tiny").exists()
    listed = run(models, "list")
    assert listed.returncode == 0
    line = next(l for l in listed.stdout.splitlines() if l.startswith("tiny "))
    assert "verified" in line
    again = run(models, "pull", "tiny", hub=hub)
    assert again.returncode == 0 and "already present and verified" in again.stdout


def test_pull_refuses_a_file_that_is_not_the_pinned_one(models, hub):
    # The Hub's file is named by its sha256: a different one is refused before downloading.
    done = run(models, "pull", "wrong", hub=hub)
    assert done.returncode == 1 and "pinned to" in done.stderr, done.stderr
    assert not (models / "wrong.gguf").exists()
    # Unpinned entries need the operator's hash; a download that does not match it is refused.
    done = run(models, "pull", "unpinned", hub=hub)
    assert done.returncode == 1 and "--sha256" in done.stderr, done.stderr
    done = run(models, "pull", "unpinned", "--sha256", sha256_of(SMOLLM2), hub=hub)
    assert done.returncode == 1 and "refused" in done.stderr and "nothing was installed" in done.stderr
    assert not any(p.name.startswith("unpinned.gguf") for p in models.iterdir())


def test_pull_from_a_file_imports_it_only_if_it_matches(models, tmp_path):
    copy = tmp_path / "usb-stick.gguf"
    shutil.copy(SMOLLM2, copy)
    with open(copy, "r+b") as f:
        f.seek(1000)
        f.write(b"\xff")
    done = run(models, "pull", "tiny", "--from", str(copy))
    assert done.returncode == 1 and "refused" in done.stderr, done.stderr
    assert not (models / "tiny.gguf").exists()
    done = run(models, "pull", "tiny", "--from", SMOLLM2)
    assert done.returncode == 0, done.stderr
    assert "verified" in run(models, "list").stdout.splitlines()[1]
    # A file changed after its check shows up in `ward list --verify`.
    with open(models / "tiny.gguf", "r+b") as f:
        f.seek(1000)
        f.write(b"\xff")
    checked = run(models, "list", "--verify")
    assert checked.returncode == 1 and "HASH MISMATCH" in checked.stdout, checked.stdout
