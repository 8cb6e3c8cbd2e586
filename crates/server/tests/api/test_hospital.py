"""What hospital IT and compliance rely on, against the real `ward serve`: per-service API keys
through the `openai` client, the hash-chained audit log and `ward audit verify` (tampering,
a torn line after kill -9), patient text kept out of logs, metrics, error bodies and the audit
log, /metrics, the graceful stop on SIGTERM, and pinned model hashes."""
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading

import openai
import pytest

from conftest import MODEL, ROOT, Server
from test_http import read_until, read_until_closed, request, send_stream, wait_until

LAB_KEY = "ward-test-lab-4b1d"
BILLING_KEY = "ward-test-billing-77c0"
EHR_ORIGIN = "https://ehr.hospital.example"
CANARY = "CANARY-9d2e PHI Jane Roe MRN 55123"
CANARY_MARKS = ("CANARY-9d2e", "Jane Roe", "55123")


def ward(*args, **kw):
    binary = os.environ.get("WARD_BIN", os.path.join(ROOT, "target", "release", "ward"))
    return subprocess.run([binary, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, **kw)


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    d = tmp_path_factory.mktemp("secured")
    keys = d / "keys.toml"
    keys.write_text(f"""
[[service]]
name = "lab"
key_sha256 = "{sha(LAB_KEY)}"
models = ["{MODEL}"]
admin = true

[[service]]
name = "billing"
key_sha256 = "{sha(BILLING_KEY)}"
models = ["some-other-model"]
requests_per_minute = 1000
""")
    audit = d / "audit.log"
    s = Server("--api-keys", str(keys), "--audit-log", str(audit), "--cors-origin", EHR_ORIGIN)
    s.audit = audit
    yield s
    if s.proc.poll() is None:
        assert s.stop() == 0, s.log_text()


def test_listed_browser_origins_may_call_and_others_may_not(secured):
    preflight = {"Origin": EHR_ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    # A preflight carries no key: answered before keys are checked, and never audited.
    status, headers, _ = request(secured, "OPTIONS", "/v1/chat/completions", headers=preflight)
    assert status == 204
    assert headers["access-control-allow-origin"] == EHR_ORIGIN
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "authorization, content-type"
    status, headers, _ = request(secured, "GET", "/v1/models",
                                 headers={"Origin": EHR_ORIGIN, **bearer(LAB_KEY)})
    assert status == 200 and headers["access-control-allow-origin"] == EHR_ORIGIN
    # The page still needs a key.
    status, headers, _ = request(secured, "GET", "/v1/models", headers={"Origin": EHR_ORIGIN})
    assert status == 401 and headers["access-control-allow-origin"] == EHR_ORIGIN
    # Another origin gets no CORS headers, so its browser keeps the answer from the page.
    other = {**preflight, "Origin": "https://elsewhere.example"}
    status, headers, _ = request(secured, "OPTIONS", "/v1/chat/completions", headers=other)
    assert status != 204 and "access-control-allow-origin" not in headers
    status, headers, _ = request(secured, "GET", "/v1/models",
                                 headers={"Origin": "https://elsewhere.example", **bearer(LAB_KEY)})
    assert status == 200 and "access-control-allow-origin" not in headers


def test_ollama_routes_keep_the_same_keys(secured):
    import ollama
    with pytest.raises(ollama.ResponseError) as e:
        ollama.Client(host=secured.url).list()
    assert e.value.status_code == 401
    lab = ollama.Client(host=secured.url, headers=bearer(LAB_KEY))
    assert [m.model for m in lab.list().models] == [MODEL]
    assert lab.generate(model=MODEL, prompt="Sepsis is", raw=True, options={"num_predict": 2}).done
    billing = ollama.Client(host=secured.url, headers=bearer(BILLING_KEY))
    assert billing.list().models == []
    with pytest.raises(ollama.ResponseError) as e:
        billing.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 403


def client_for(server, key):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=180)


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def test_keys_decide_who_may_call_through_the_sdk(secured):
    with pytest.raises(openai.AuthenticationError):
        client_for(secured, "not-a-key").models.list()
    lab = client_for(secured, LAB_KEY)
    assert [m.id for m in lab.models.list().data] == [MODEL]
    r = lab.chat.completions.create(model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    assert r.usage.completion_tokens >= 1
    with pytest.raises(openai.PermissionDeniedError):
        client_for(secured, BILLING_KEY).chat.completions.create(
            model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    assert request(secured, "GET", "/health")[0] == 200
    assert request(secured, "GET", "/ready")[0] == 200
    assert request(secured, "GET", "/metrics")[0] == 401


def every_endpoint_with_the_canary(server, key):
    """Send the canary through every route, as successes and as failures; returns the bodies."""
    h = bearer(key)
    msgs = [{"role": "user", "content": f"Repeat exactly: {CANARY}"}]
    replies = [
        request(server, "POST", "/v1/chat/completions", {"model": MODEL, "messages": msgs, "max_tokens": 12,
                                                         "temperature": 0}, headers=h),
        request(server, "POST", "/v1/chat/completions", {"model": MODEL, "messages": msgs, "max_tokens": 6,
                                                         "stream": True, "stop": [CANARY]}, headers=h),
        request(server, "POST", "/v1/completions", {"model": MODEL, "prompt": CANARY, "max_tokens": 6}, headers=h),
        request(server, "POST", "/v1/completions", {"model": MODEL, "prompt": CANARY, "max_tokens": 4,
                                                    "stream": True, "logprobs": 2}, headers=h),
        request(server, "POST", "/tokenize", {"model": MODEL, "prompt": CANARY}, headers=h),
        request(server, "POST", "/v1/tokenize", {"model": MODEL, "messages": msgs}, headers=h),
        request(server, "POST", "/v1/chat/completions", {"model": MODEL, "messages": msgs, "max_tokens": 8,
                 "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {
                     "type": "object", "description": CANARY, "properties": {"a": {"type": "string"}},
                     "required": ["a"]}}}}, headers=h),
        # Failures: wrong types and values, unknown model and route, bad key, bad JSON.
        request(server, "POST", "/v1/chat/completions", {"model": MODEL, "messages": msgs, "temperature": CANARY},
                headers=h),
        request(server, "POST", "/v1/chat/completions", {"model": CANARY, "messages": msgs}, headers=h),
        request(server, "POST", "/v1/chat/completions", {"model": MODEL, "messages": [{"role": CANARY,
                                                                                       "content": CANARY}]}, headers=h),
        request(server, "POST", "/v1/completions", {"model": MODEL, "prompt": CANARY, "max_tokens": 100000},
                headers=h),
        request(server, "POST", "/v1/chat/completions", {"model": MODEL, "messages": msgs, "response_format": {
            "type": "json_schema", "json_schema": {"name": "n", "schema": {"type": CANARY}}}}, headers=h),
        request(server, "POST", "/v1/chat/completions", raw=f'{{"model": "{CANARY}", '.encode(), headers=h),
        request(server, "GET", "/v1/models/" + CANARY.replace(" ", "%20"), headers=h),
        request(server, "GET", "/v1/" + CANARY.replace(" ", "%20"), headers=h),
        request(server, "POST", "/v1/chat/completions", {"model": MODEL, "messages": msgs}, headers=bearer(CANARY)),
    ]
    # Detokenize hands the canary back to its caller, and nowhere else.
    ids = replies[4][2]["tokens"]
    status, _, body = request(server, "POST", "/detokenize", {"model": MODEL, "tokens": ids}, headers=h)
    assert status == 200 and CANARY in body["prompt"]
    return replies


def assert_no_canary(text, where):
    for mark in CANARY_MARKS:
        assert mark not in text, f"{mark!r} reached {where}"


def test_patient_text_reaches_no_log_metric_error_or_audit_line(secured):
    replies = every_endpoint_with_the_canary(secured, LAB_KEY)
    statuses = [r[0] for r in replies]
    assert statuses[:7] == [200] * 7, replies
    assert all(400 <= s < 500 for s in statuses[7:]), statuses
    for status, _, body in replies[7:]:
        assert_no_canary(json.dumps(body), f"an error body ({status})")
    # The answer repeated the canary back: it is patient text too, and must not leak either.
    answer = replies[0][2]["choices"][0]["message"]["content"]
    metrics = request(secured, "GET", "/metrics", headers=bearer(LAB_KEY))[2]
    assert_no_canary(metrics, "/metrics")
    wait_until(lambda: secured.audit.read_text().count("\n") >= len(replies), "audit lines")
    for where, text in [("the log", secured.log_text()), ("the audit log", secured.audit.read_text())]:
        assert_no_canary(text, where)
        for word in answer.split():
            if len(word) > 12:
                assert word not in text, f"output text reached {where}"


def audit_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_audit_log_records_each_request_and_verifies(secured, tmp_path):
    lab = client_for(secured, LAB_KEY)
    msgs = [{"role": "user", "content": "Name one symptom of sepsis."}]
    r = lab.chat.completions.with_raw_response.create(model=MODEL, messages=msgs, max_tokens=5, seed=3,
                                                      temperature=0.7)
    rid = r.headers["x-request-id"]
    answer = r.parse().choices[0].message.content
    entry = wait_until(lambda: next((e for e in audit_lines(secured.audit) if e.get("request_id") == rid), None),
                       "the audit entry")
    model_sha = hashlib.sha256(open(os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"), "rb")
                               .read()).hexdigest()
    assert entry["event"] == "request" and entry["service"] == "lab"
    assert (entry["endpoint"], entry["status"], entry["outcome"]) == ("/v1/chat/completions", 200, "ok")
    assert (entry["model"], entry["model_sha256"]) == (MODEL, model_sha)
    assert entry["params"]["seed"] == 3 and entry["params"]["max_tokens"] == 5
    assert entry["prompt_tokens"] > 5 and entry["completion_tokens"] == 5
    # Hashes of the prompt (compact JSON, sorted keys) and of the text generated.
    assert entry["prompt_sha256"] == sha(json.dumps(msgs, sort_keys=True, separators=(",", ":"),
                                                    ensure_ascii=False))
    assert entry["output_sha256"] == [sha(answer)]
    assert "prompt" not in entry and "output" not in entry and "prompt_hmac" not in entry
    assert entry["latency_ms"] >= 0 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    starts = [e for e in audit_lines(secured.audit) if e["event"] == "start"]
    assert starts and starts[0]["model_sha256"] == model_sha

    done = ward("audit", "verify", str(secured.audit))
    assert done.returncode == 0 and "chain intact" in done.stdout, done.stdout + done.stderr
    # An edited copy fails, naming the line.
    copy = tmp_path / "audit.log"
    lines = secured.audit.read_text().splitlines()
    n = next(i for i, line in enumerate(lines) if '"status":' in line)
    lines[n] = lines[n].replace('"status":', '"status": ', 1)
    copy.write_text("\n".join(lines) + "\n")
    bad = ward("audit", "verify", str(copy))
    assert bad.returncode == 1 and f"{copy}:{n + 1}:" in bad.stdout, bad.stdout


def test_metrics_report_requests_tokens_latency_and_the_cache(secured):
    client_for(secured, LAB_KEY).completions.create(model=MODEL, prompt="Sepsis is", max_tokens=3)
    status, headers, text = request(secured, "GET", "/metrics", headers=bearer(LAB_KEY))
    assert status == 200 and headers["content-type"].startswith("text/plain")
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples[f'ward_requests_total{{service="lab",model="{MODEL}",route="/v1/completions",status="200"}}'] >= 1
    assert samples[f'ward_requests_total{{service="anonymous",model="",route="/metrics",status="401"}}'] >= 1
    assert samples[f'ward_generated_tokens_total{{service="lab",model="{MODEL}"}}'] >= 3
    assert samples[f'ward_time_to_first_token_seconds_count{{model="{MODEL}"}}'] >= 1
    assert samples[f'ward_inter_token_latency_seconds_count{{model="{MODEL}"}}'] >= 1
    for gauge in ["ward_queue_depth", "ward_running_sequences", "ward_kv_cache_blocks_used",
                  "ward_kv_cache_blocks_capacity", "ward_prefix_cache_hit_ratio", "ward_ready"]:
        assert gauge in samples, gauge
    assert samples["ward_kv_cache_blocks_capacity"] > 0 and samples["ward_ready"] == 1
    assert samples["process_resident_memory_bytes"] > 0 and samples["process_cpu_seconds_total"] > 0
    assert samples["process_open_fds"] <= samples["process_max_fds"]
    assert any(name.startswith('ward_build_info{version="') for name in samples)


def test_sigterm_finishes_requests_in_flight_and_refuses_new_ones(tmp_path):
    audit = tmp_path / "audit.log"
    s = Server("--audit-log", str(audit), "--shutdown-timeout", "120")
    stream = send_stream(s, max_tokens=120)
    read_until(stream, b'"text"')
    s.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: request(s, "GET", "/ready")[0] == 503, "ready to turn 503")
    status, headers, body = request(s, "POST", "/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": 1})
    assert status == 503 and body["error"]["code"] == "shutting_down" and headers["retry-after"]
    rest = read_until(stream, b"[DONE]")
    stream.close()
    assert b'"finish_reason":"length"' in rest
    assert s.proc.wait(60) == 0, s.log_text()
    events = audit_lines(audit)
    assert events[-1]["event"] == "stop"
    streamed = [e for e in events if e.get("endpoint") == "/v1/completions" and e["status"] == 200]
    assert streamed[0]["outcome"] == "ok" and streamed[0]["completion_tokens"] == 120


def test_a_torn_line_after_kill_9_is_reported_and_the_chain_continues(tmp_path):
    audit = tmp_path / "audit.log"
    s = Server("--audit-log", str(audit))
    request(s, "GET", "/v1/models")
    lines = audit.read_text().count("\n")  # the answer came after its entry was synced
    assert lines >= 3  # open, start, the request
    s.proc.kill()
    s.proc.wait()
    with open(audit, "a") as f:  # what a write cut off by the kill leaves
        f.write('{"time":"2026-11-30T00:00:00.000Z","event":"requ')
    done = ward("audit", "verify", str(audit))
    assert done.returncode == 0, done.stdout
    assert f"{audit}:{lines + 1}: a torn last line" in done.stdout and "chain intact" in done.stdout, done.stdout
    # The next start cuts it off and records that in the chain.
    s = Server("--audit-log", str(audit))
    request(s, "GET", "/v1/models")
    assert s.stop() == 0
    done = ward("audit", "verify", str(audit))
    assert done.returncode == 0, done.stdout
    assert "removed a torn line of 48 bytes" in done.stdout and "chain intact" in done.stdout, done.stdout


def test_a_keyed_log_with_checkpoints_verifies_and_shows_a_dropped_tail(tmp_path):
    (tmp_path / "secret").mkdir()
    (tmp_path / "log").mkdir()
    key, audit, cps = tmp_path / "secret" / "audit.key", tmp_path / "log" / "audit.log", tmp_path / "checkpoints"
    made = ward("keys", "audit", "--out", str(key))
    assert made.returncode == 0, made.stderr
    initial = tmp_path / "initial.key"  # the auditor's copy
    initial.write_text(made.stdout)
    s = Server("--audit-log", str(audit), "--audit-key", str(key), "--audit-checkpoints", str(cps))
    status, _, _ = request(s, "POST", "/v1/completions", {"model": MODEL, "prompt": "Hi", "max_tokens": 2})
    assert status == 200
    assert s.stop() == 0
    assert "epoch = 1" in key.read_text()  # the key evolved at the checkpoint written at stop
    verify = ("audit", "verify", str(audit), "--key", str(initial), "--checkpoints", str(cps))
    done = ward(*verify)
    assert done.returncode == 0 and "chain intact" in done.stdout and "checkpoints: 1 verified" in done.stdout, \
        done.stdout + done.stderr
    lines = audit.read_text().splitlines()
    audit.write_text("\n".join(lines[:-1]) + "\n")  # the stop line removed
    bad = ward(*verify)
    assert bad.returncode == 1 and "removed from its end" in bad.stdout, bad.stdout


def keyed_hash(initial_hex, epoch, text):
    """An entry's keyed content hash, as the auditor computes it from the initial key:
    HMAC(HMAC(key_epoch, "ward-audit-content"), text), key_{n+1} = HMAC(key_n, "ward-audit-evolve")."""
    key = bytes.fromhex(initial_hex.strip())
    for _ in range(epoch):
        key = hmac.new(key, b"ward-audit-evolve", hashlib.sha256).digest()
    content = hmac.new(key, b"ward-audit-content", hashlib.sha256).digest()
    return hmac.new(content, text.encode(), hashlib.sha256).hexdigest()


def test_a_keyed_log_hashes_prompts_under_its_epoch_key_and_the_auditor_can_check_them(tmp_path):
    (tmp_path / "secret").mkdir()
    (tmp_path / "log").mkdir()
    key, audit, cps = tmp_path / "secret" / "audit.key", tmp_path / "log" / "audit.log", tmp_path / "checkpoints"
    made = ward("keys", "audit", "--out", str(key))
    assert made.returncode == 0, made.stderr
    initial = tmp_path / "initial.key"
    initial.write_text(made.stdout)
    s = Server("--audit-log", str(audit), "--audit-key", str(key), "--audit-checkpoints", str(cps),
               "--audit-checkpoint-secs", "1")
    msgs = [{"role": "user", "content": "Is patient 4711 HIV positive?"}]
    canonical = json.dumps(msgs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def ask():
        status, headers, body = request(s, "POST", "/v1/chat/completions",
                                        {"model": MODEL, "messages": msgs, "max_tokens": 3})
        assert status == 200, body
        rid = headers["x-request-id"]
        entry = wait_until(lambda: next((e for e in audit_lines(audit) if e.get("request_id") == rid), None),
                           "the audit entry")
        return entry, body["choices"][0]["message"]["content"]

    def key_epoch():  # `ward keys audit` writes bare hex (epoch 0); the server, `epoch = N` lines
        found = re.search(r"epoch = (\d+)", key.read_text())
        return int(found.group(1)) if found else 0

    try:
        first, answer1 = ask()
        # A checkpoint a second moves the key on; the same prompt then hashes differently.
        wait_until(lambda: key_epoch() > first["epoch"], "the next key epoch")
        second, answer2 = ask()
    finally:
        assert s.stop() == 0, s.log_text()
    assert second["epoch"] > first["epoch"]
    for entry, answer in [(first, answer1), (second, answer2)]:
        assert "prompt_sha256" not in entry and "output_sha256" not in entry
        assert entry["prompt_hmac"] == keyed_hash(initial.read_text(), entry["epoch"], canonical)
        assert entry["output_hmac"] == [keyed_hash(initial.read_text(), entry["epoch"], answer)]
    assert first["prompt_hmac"] != second["prompt_hmac"]
    # Whoever reads the log without the key cannot confirm the guess: its plain hash is nowhere.
    text = audit.read_text()
    assert sha(canonical) not in text and sha(answer1) not in text and sha(answer2) not in text
    assert ward("audit", "verify", str(audit), "--key", str(initial), "--checkpoints", str(cps)).returncode == 0

    # The auditor checks the prompt as sent (any key order and spacing) and the answer.
    prompt = tmp_path / "prompt.json"
    prompt.write_text(json.dumps([{"content": msgs[0]["content"], "role": "user"}], indent=2))
    out = tmp_path / "answer.txt"
    out.write_text(answer2)
    check = ("audit", "check", str(audit), "--seq", str(second["seq"]), "--key", str(initial))
    done = ward(*check, "--prompt", str(prompt), "--output", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "seal checks" in done.stdout and "prompt: match" in done.stdout, done.stdout
    assert "output: matches choice 0" in done.stdout, done.stdout
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"role": "user", "content": "Is patient 4712 HIV positive?"}]))
    bad = ward(*check, "--prompt", str(other))
    assert bad.returncode == 1 and "prompt: NO MATCH" in bad.stdout, bad.stdout + bad.stderr
    assert "4712" not in bad.stdout + bad.stderr
    nokey = ward("audit", "check", str(audit), "--seq", str(second["seq"]), "--prompt", str(prompt))
    assert nokey.returncode != 0 and "--key" in nokey.stderr, nokey.stderr


def test_a_stream_cut_at_the_shutdown_timeout_gets_an_error_and_an_audit_entry(tmp_path):
    audit = tmp_path / "audit.log"
    s = Server("--audit-log", str(audit), "--shutdown-timeout", "1")
    host, port = s.url.split("//")[1].split(":")
    body = json.dumps({"model": MODEL, "prompt": "Count: 1, 2, 3,", "max_tokens": 4000, "ignore_eos": True,
                       "stream": True}).encode()
    stream = socket.create_connection((host, int(port)), timeout=120)
    stream.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    read_until(stream, b'"text"')
    s.proc.send_signal(signal.SIGTERM)
    rest = read_until_closed(stream)
    stream.close()
    assert b'"code":"shutdown"' in rest, rest
    assert s.proc.wait(60) == 0, s.log_text()
    cut = [e for e in audit_lines(audit) if e.get("outcome") == "shutdown"]
    assert len(cut) == 1 and cut[0]["status"] == 200 and cut[0]["completion_tokens"] > 0, cut


def test_keys_new_prints_a_key_and_an_entry_the_server_accepts(tmp_path):
    made = ward("keys", "new", "radiology", "--models", MODEL)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    entry = made.stderr[made.stderr.index("[[service]]"):]
    assert sha(key) in entry and 'name = "radiology"' in entry
    keys = tmp_path / "keys.toml"
    keys.write_text(entry)
    s = Server("--api-keys", str(keys))
    try:
        assert request(s, "GET", "/v1/models", headers=bearer(key))[0] == 200
        assert request(s, "GET", "/v1/models", headers=bearer(key + "x"))[0] == 401
    finally:
        assert s.stop() == 0


def test_model_files_are_checked_against_their_pinned_hash(tmp_path):
    # A registry whose pin for the test model is wrong: the server refuses the file.
    registry = open(os.path.join(ROOT, "models", "registry.toml")).read()
    real = hashlib.sha256(open(os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"), "rb").read())
    models = tmp_path / "models"
    models.mkdir()
    (models / "registry.toml").write_text(registry.replace(real.hexdigest(), "ab" * 32))
    os.symlink(os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"),
               models / "SmolLM2-135M-Instruct.Q4_1.gguf")
    refused = ward("serve", "--port", "0", "--model", MODEL, env={**os.environ, "WARD_MODELS_DIR": str(models)})
    assert refused.returncode == 1 and "does not match its pinned sha256" in refused.stderr, refused.stderr
    # A file no entry pins is served with a warning, and refused under --strict-models.
    copy = tmp_path / "copy.gguf"
    shutil.copy(os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"), copy)
    with open(copy, "ab") as f:
        f.write(b"\0" * 32)
    refused = ward("serve", "--port", "0", "--model", str(copy), "--strict-models")
    assert refused.returncode == 1 and "not pinned" in refused.stderr, refused.stderr


def test_https_with_a_certificate_and_key(tmp_path):
    import ssl

    import httpx2
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    s = Server("--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert s.url.startswith("https://")
        tls = httpx2.Client(verify=ssl.create_default_context(cafile=str(cert)))
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0, http_client=tls)
        r = c.chat.completions.create(model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "Hi"}])
        assert r.usage.completion_tokens >= 1
        # Plain HTTP on the TLS port gets no answer.
        with pytest.raises(Exception):
            request(s, "GET", "/health")
    finally:
        assert s.stop() == 0
    bad = ward("serve", "--port", "0", "--tls-cert", str(key), "--tls-key", str(key))
    assert bad.returncode == 1 and "certificate" in bad.stderr, bad.stderr


def test_settings_from_a_config_file_and_the_environment(tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[service]]\nname = "lab"\nkey_sha256 = "{sha(LAB_KEY)}"\nmodels = ["*"]\n')
    audit = tmp_path / "audit.log"
    config = tmp_path / "ward.toml"
    config.write_text(f'api-keys = "{keys}"\naudit_log = "{audit}"\nmax-queue = 7\n')
    os.environ["WARD_AUDIT_INCLUDE_TEXT"] = "true"
    try:
        s = Server("--config", str(config))
    finally:
        del os.environ["WARD_AUDIT_INCLUDE_TEXT"]
    try:
        assert request(s, "GET", "/v1/models")[0] == 401
        status, _, body = request(s, "POST", "/v1/completions", {"model": MODEL, "prompt": "Hi", "max_tokens": 2},
                                  headers=bearer(LAB_KEY))
        assert status == 200, body
    finally:
        assert s.stop() == 0
    entry = [json.loads(line) for line in audit.read_text().splitlines() if '"/v1/completions"' in line][0]
    assert entry["prompt"] == "Hi"  # WARD_AUDIT_INCLUDE_TEXT took effect
    config.write_text("max-qeue = 7\n")
    bad = ward("serve", "--config", str(config))
    assert bad.returncode == 2 and 'unknown setting "max-qeue"' in bad.stderr, bad.stderr
