"""Raw HTTP against `ward serve`: every error in OpenAI's JSON shape with the right status,
never a dropped connection, timeouts for silent clients, a full queue, a client that leaves
mid-stream — and the server keeps serving after each."""
import json
import re
import socket
import time
import urllib.parse

import pytest

from conftest import MODEL, Server


def request(server, method, path, body=None, raw=None, headers=None):
    """One request on its own connection; returns (status, headers, parsed body)."""
    host, port = urllib.parse.urlsplit(server.url).netloc.split(":")
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(data)}\r\n" \
           f"Content-Type: application/json\r\nConnection: close\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    with socket.create_connection((host, int(port)), timeout=600) as s:
        s.sendall(head.encode() + b"\r\n" + data)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, payload = reply.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    if hdrs.get("transfer-encoding") == "chunked":
        payload = dechunk(payload)
    try:
        return status, hdrs, json.loads(payload)
    except ValueError:
        return status, hdrs, payload.decode()


def dechunk(data):
    out = b""
    while data:
        size, _, rest = data.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out += rest[:n]
        data = rest[n + 2:]
    return out


def chat(**extra):
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, **extra}


def assert_error(reply, status, param=None, code=None):
    got, headers, body = reply
    assert got == status, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert headers.get("x-request-id"), headers
    if param is not None:
        assert body["error"]["param"] == param, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def assert_still_serving(server):
    status, _, body = request(server, "POST", "/v1/chat/completions", chat())
    assert status == 200, body
    assert body["choices"][0]["message"]["role"] == "assistant"


def test_health_ready_and_request_ids(server):
    status, headers, body = request(server, "GET", "/health")
    assert status == 200 and body["status"] == "ok"
    status, headers, body = request(server, "GET", "/ready")
    assert status == 200 and body["model"] == MODEL
    a = request(server, "GET", "/health")[1]["x-request-id"]
    b = request(server, "GET", "/health")[1]["x-request-id"]
    assert a != b


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[]", b"\xff\xfe", b'{"model": "x"} extra'])
def test_malformed_json_is_400(server, raw):
    assert_error(request(server, "POST", "/v1/chat/completions", raw=raw), 400, code="invalid_json")


@pytest.mark.parametrize("extra, param", [
    ({"temperature": -1}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"top_p": 1.01}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": -5}, "max_tokens"),
    ({"max_tokens": "many"}, "max_tokens"),
    ({"n": 17}, "n"),
    ({"n": 0}, "n"),
    ({"messages": "hello"}, "messages"),
    ({"messages": [{"role": "user"}], "stop": 3}, "stop"),
    ({"frequency_penalty": 9}, "frequency_penalty"),
    ({"logprobs": 3}, "logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"logit_bias": {"12": 101}}, "logit_bias"),
    ({"logit_bias": {"twelve": 1}}, "logit_bias"),
    ({"stop_token_ids": [99999999]}, "stop_token_ids"),
])
def test_bad_parameters_are_400_naming_them(server, extra, param):
    assert_error(request(server, "POST", "/v1/chat/completions", chat(**extra)), 400, param=param)


def test_completion_parameter_errors(server):
    body = {"model": MODEL, "prompt": [1, 2, 99999999]}
    assert_error(request(server, "POST", "/v1/completions", body), 400, param="prompt")
    assert_error(request(server, "POST", "/v1/completions", {"model": MODEL, "prompt": ""}), 400,
                 param="prompt")
    assert_error(request(server, "POST", "/v1/completions", {"model": MODEL}), 400, param="prompt")
    # Batches: empty, too many, or one bad prompt among good ones.
    for prompt in ([], ["Hello"] * 33, ["Hello", ""], [[1, 2], [3, 99999999]], ["a", 1]):
        body = {"model": MODEL, "prompt": prompt, "max_tokens": 1}
        assert_error(request(server, "POST", "/v1/completions", body), 400, param="prompt")
    body = {"model": MODEL, "prompt": ["Hello"] * 8, "n": 5, "max_tokens": 1}
    assert_error(request(server, "POST", "/v1/completions", body), 400, param="prompt")


def test_unknown_model_route_and_method_are_404_and_405(server):
    assert_error(request(server, "POST", "/v1/chat/completions", chat(model="no-such-model")), 404,
                 param="model", code="model_not_found")
    assert_error(request(server, "GET", "/v1/nothing-here"), 404)
    assert_error(request(server, "POST", "/v2/chat"), 404)
    assert_error(request(server, "DELETE", "/v1/models"), 405)


def test_context_length_exceeded_is_400_never_truncation(server):
    ctx = request(server, "GET", "/v1/models")[2]["data"][0]["context_length"]
    # Prompt + max_tokens over the context.
    body = {"model": MODEL, "prompt": "The patient", "max_tokens": ctx}
    assert_error(request(server, "POST", "/v1/completions", body), 400, code="context_length_exceeded")
    # The prompt alone over the context (as token ids, to be exact about its length).
    body = {"model": MODEL, "prompt": [28] * (ctx + 1), "max_tokens": 1}
    e = assert_error(request(server, "POST", "/v1/completions", body), 400, param="prompt",
                     code="context_length_exceeded")
    assert str(ctx) in e["message"]
    # Chat without max_tokens: the prompt must leave room for at least one token.
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x " * ctx}]}
    assert_error(request(server, "POST", "/v1/chat/completions", body), 400, param="messages",
                 code="context_length_exceeded")
    assert_still_serving(server)


def test_body_over_the_limit_is_413_with_a_reply(server):
    big = chat(messages=[{"role": "user", "content": "x" * 200_000}])
    assert_error(request(server, "POST", "/v1/chat/completions", big), 413, code="request_too_large")
    assert_still_serving(server)


def read_until_closed(s):
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def test_silent_and_idle_clients_are_disconnected(server):
    # The session's server runs with --header-timeout 3.
    host, port = urllib.parse.urlsplit(server.url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # headers never finish
        start = time.monotonic()
        read_until_closed(s)
        assert 2 < time.monotonic() - start < 20
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # kept alive, then idle
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        read_until_closed(s)
        assert 2 < time.monotonic() - start < 20


def test_a_body_that_never_arrives_is_408(server):
    host, port = urllib.parse.urlsplit(server.url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mod")
        reply = s.recv(65536)
    assert reply.startswith(b"HTTP/1.1 408"), reply


COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"  # greedy continues it to max_tokens


def send_stream(server, max_tokens=400):
    """Send a streaming completion on a raw socket, without reading the reply."""
    host, port = urllib.parse.urlsplit(server.url).netloc.split(":")
    body = json.dumps({"model": MODEL, "prompt": COUNTING, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True}).encode()
    s = socket.create_connection((host, int(port)), timeout=600)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return s


def read_until(s, needle, count=1):
    seen = b""
    while seen.count(needle) < count:
        chunk = s.recv(65536)
        assert chunk, seen
        seen += chunk
    return seen


def wait_until(predicate, what, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def queue_depth(server):
    return request(server, "GET", "/ready")[2]["queue_depth"]


def test_a_client_leaving_mid_stream_stops_its_generation(server):
    s = send_stream(server, max_tokens=400)
    head = read_until(s, b'"text"', count=3)
    rid = re.search(rb"x-request-id: (\S+)", head, re.I).group(1).decode()
    s.close()
    m = wait_until(lambda: re.search(rf"request_id={rid} .*completion_tokens=(\d+) finish=Cancelled",
                                     server.log_text()), "the engine to log the cancellation")
    assert int(m.group(1)) < 400
    assert_still_serving(server)


def test_a_client_leaving_before_a_whole_answer_stops_its_generation(server):
    host, port = urllib.parse.urlsplit(server.url).netloc.split(":")
    body = json.dumps({"model": MODEL, "prompt": COUNTING, "max_tokens": 400, "temperature": 0}).encode()
    rid = f"leaver-{time.monotonic_ns()}"
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nx-request-id: {rid}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        wait_until(lambda: queue_depth(server) == 0, "the request to start")
        time.sleep(1)
    m = wait_until(lambda: re.search(rf"request_id={rid} .*completion_tokens=(\d+) finish=Cancelled",
                                     server.log_text()), "the engine to log the cancellation")
    assert int(m.group(1)) < 400
    assert re.search(rf"request request_id={rid} .*status=499", server.log_text())
    assert_still_serving(server)


def test_a_full_queue_is_429_with_retry_after(server):
    # --max-queue 2: one running and two waiting fill it.
    running = send_stream(server)
    read_until(running, b'"text"')
    waiting = [send_stream(server) for _ in range(2)]
    wait_until(lambda: queue_depth(server) == 2, "two requests waiting")
    status, headers, body = request(server, "POST", "/v1/chat/completions", chat())
    for s in [running, *waiting]:
        s.close()
    assert status == 429, body
    assert headers["retry-after"] == "1"
    assert body["error"]["code"] == "queue_full"
    # The server notices departed clients at its next write to them (a token or a keep-alive
    # comment), drops their requests (the waiting ones without running them) and goes on.
    wait_until(lambda: queue_depth(server) == 0, "the queue to drain", timeout=90)
    assert_still_serving(server)


def test_chat_on_a_model_without_a_template_is_400():
    gemma = Server("--model", "gemma-3-270m")
    try:
        e = assert_error(request(gemma, "POST", "/v1/chat/completions", {**chat(), "model": "gemma-3-270m"}),
                         400, code="chat_template_missing")
        assert "chat template" in e["message"]
        status, _, body = request(gemma, "POST", "/v1/completions",
                                  {"model": "gemma-3-270m", "prompt": "Sepsis is", "max_tokens": 3})
        assert status == 200 and body["usage"]["completion_tokens"] == 3
    finally:
        assert gemma.stop() == 0


def test_no_prompt_or_output_text_in_the_log(server, client):
    canary = "CANARY-7f3a91 Jane Doe MRN 99812"
    r = client.chat.completions.create(model=MODEL, max_tokens=8, temperature=0,
                                       messages=[{"role": "user", "content": f"Repeat: {canary}"}])
    output = r.choices[0].message.content
    request(server, "POST", "/v1/chat/completions", chat(messages=[{"role": "user", "content": canary}],
                                                         temperature=canary))
    request(server, "POST", "/v1/completions", {"model": MODEL, "prompt": canary, "max_tokens": 2})
    request(server, "GET", "/v1/" + canary.replace(" ", "%20"))
    log = server.log_text()
    assert "CANARY-7f3a91" not in log and "Jane Doe" not in log
    for word in output.split():
        if len(word) > 12:
            assert word not in log
