#!/usr/bin/env python3
"""What structured output costs when serving: Ward's decode rate on MODEL with and without a JSON
constraint (`response_format: json_object`), 1 and 8 concurrent streams, two rounds each,
interleaved. Standard library only.

    python3 scripts/bench-structured-output.py models/FILE.gguf [--threads N]
"""
import argparse, concurrent.futures, json, os, socket, subprocess, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT = "A detailed patient record for a 70-year-old with pneumonia, as JSON with many fields:\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=96)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ward = os.path.join(ROOT, "target", "release", "ward")
    server = subprocess.Popen([ward, "serve", "--model", args.model, "--port", str(port), "--threads",
                               str(args.threads)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(base + "/ready")
                break
            except OSError:
                time.sleep(0.5)
        name = json.load(urllib.request.urlopen(base + "/v1/models"))["data"][0]["id"]

        def ask(seed, constrained):
            body = {"model": name, "prompt": PROMPT, "max_tokens": args.max_tokens, "temperature": 0.8,
                    "seed": seed}
            if constrained:
                body["response_format"] = {"type": "json_object"}
            req = urllib.request.Request(base + "/v1/completions", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
            return json.load(urllib.request.urlopen(req))["usage"]["completion_tokens"]

        ask(0, True)  # warm up
        print(f"{os.path.basename(args.model)}, {args.threads} threads")
        for streams in (1, 8):
            for constrained in (False, True, False, True):
                started = time.time()
                with concurrent.futures.ThreadPoolExecutor(streams) as pool:
                    tokens = sum(pool.map(lambda s: ask(s, constrained), range(streams)))
                rate = tokens / (time.time() - started)
                print(f"  {streams} stream(s), {'json_object' if constrained else 'free       '}: "
                      f"{tokens:4d} tokens, {rate:6.1f} tok/s")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
