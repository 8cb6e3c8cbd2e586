#!/usr/bin/env python3
"""What the audit log costs a request: starts `ward serve` without an audit log, with an unkeyed
one and with a keyed one with checkpoints, and drives each with C keep-alive connections sending
N requests each (`POST /tokenize`, audited but running no model, so the audit cost shows most;
and `POST /v1/completions` with max_tokens 1), printing requests/s and latency percentiles.

    scripts/bench-audit.py [--ward target/release/ward] [--connections 8] [--requests 200] [--dir DIR]
"""
import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def serve(ward, *extra):
    proc = subprocess.Popen([ward, "serve", "--port", "0", "--threads", "1", "--max-queue", "256", *extra],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        m = re.search(r"at http://([\d.]+):(\d+)/v1 \(ready\)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1), int(m.group(2))
    raise RuntimeError("ward serve did not start:\n" + "".join(seen))


def drive(host, port, path, body, connections, requests):
    latencies, lock = [], threading.Lock()

    def one():
        conn = http.client.HTTPConnection(host, port, timeout=60)
        mine = []
        for _ in range(requests):
            start = time.perf_counter()
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=one) for _ in range(connections)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
    return len(latencies) / elapsed, pct(0.5), pct(0.99)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ward", default=os.path.join(ROOT, "target", "release", "ward"))
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--dir", help="where the logs go (on the disk to measure: tmpfs syncs nothing)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ward-bench-audit-", dir=a.dir)
    for sub in ["secret", "log"]:
        os.makedirs(os.path.join(work, sub))
    key = os.path.join(work, "secret", "audit.key")
    subprocess.run([a.ward, "keys", "audit", "--out", key], check=True, capture_output=True)
    setups = [
        ("no audit log", []),
        ("audit log, unkeyed", ["--audit-log", os.path.join(work, "log", "plain.log")]),
        ("audit log, key + checkpoints", ["--audit-log", os.path.join(work, "log", "keyed.log"), "--audit-key", key,
                                          "--audit-checkpoints", os.path.join(work, "checkpoints")]),
    ]
    loads = [
        ("/tokenize", json.dumps({"prompt": "The patient presents with fever and cough."})),
        ("/v1/completions", json.dumps({"model": "smollm2-135m-instruct", "prompt": "Fever is", "max_tokens": 1})),
    ]
    print(f"{a.connections} connections x {a.requests} requests each")
    for name, extra in setups:
        proc, host, port = serve(a.ward, *extra)
        try:
            for path, body in loads:
                drive(host, port, path, body, a.connections, max(1, a.requests // 10))  # warm up
                rate, p50, p99 = drive(host, port, path, body, a.connections, a.requests)
                print(f"{name:30} {path:16} {rate:8.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


if __name__ == "__main__":
    main()
