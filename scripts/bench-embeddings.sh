#!/usr/bin/env bash
# Embedding throughput, Ward against llama.cpp on the same GGUF and thread count, interleaved over
# several rounds: Ward through `ward serve`'s /v1/embeddings (HTTP included), llama.cpp in-process
# through llama-cpp-python's `embed` (built for every vector extension this CPU has, as in
# scripts/bench-vs-llamacpp.sh). Both embed the same texts in one batch per round.
#   scripts/bench-embeddings.sh [--rounds N] [--threads N] [--texts N] [MODEL]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds=3 threads=2 texts=256 model=all-minilm-l6-v2
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --texts) texts=$2; shift 2 ;;
    *) model=$1; shift ;;
  esac
done
venv="${WARD_PEER_VENV:-$(scripts/reference/peer-llamacpp.sh)}"
scripts/fetch-models.sh "$model" >&2
cargo build --release --quiet --bin ward
file=models/$(python3 -c "import tomllib,sys; r=tomllib.load(open('models/registry.toml','rb')); print([e['file'] for e in r['model'] if e['name']==sys.argv[1]][0])" "$model")
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|avx512_bf16|amx_int8)$' | tr '\n' ' ')"
log=$(mktemp)
target/release/ward serve --model "$model" --port 0 --threads "$threads" 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 120); do grep -q "(ready)" "$log" && break; sleep 0.5; done
url=$(grep -o 'http://[^ ]*/v1' "$log" | head -1)
"$venv/bin/python" - "$url" "$file" "$model" "$rounds" "$threads" "$texts" <<'PY'
import json, statistics, sys, time, urllib.request
sys.path.insert(0, "scripts/reference")
import inputs
from llama_cpp import Llama

url, path, model, rounds, threads, n = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:])
# llama.cpp attends over a whole ubatch with a mask, so its cost grows with the square of the
# ubatch: 512 tokens (llama-server's default) is its best here, faster than 4096.
ubatch = 512
base = inputs.EMBEDDING_TEXTS[:-1] + inputs.TOKENIZER_STRINGS[:28]
texts = [f"{base[i % len(base)]} ({i})" for i in range(n)]
llm = Llama(model_path=path, embedding=True, n_ctx=ubatch, n_batch=ubatch, n_ubatch=ubatch,
            n_threads=threads, n_threads_batch=threads, n_seq_max=64, verbose=False)

def ward():
    body = json.dumps({"model": model, "input": texts, "encoding_format": "float"}).encode()
    req = urllib.request.Request(url + "/embeddings", body, {"Content-Type": "application/json"})
    t = time.perf_counter()
    out = json.load(urllib.request.urlopen(req, timeout=600))
    return time.perf_counter() - t, out["usage"]["prompt_tokens"]

def llama():
    t = time.perf_counter()
    llm.embed(texts, normalize=True)
    return time.perf_counter() - t

ward(); llama()  # warm both
w, l = [], []
for _ in range(rounds):
    (dt, tokens), lt = ward(), llama()
    w.append(n / dt); l.append(n / lt)
ratios = [a / b for a, b in zip(w, l)]
print(f"{model}: {n} texts, {tokens} tokens a round, {threads} threads, {rounds} rounds")
print(f"  texts/s   ward {statistics.median(w):8.1f}   llama.cpp {statistics.median(l):8.1f}   "
      f"ratio {statistics.median(w) / statistics.median(l):.2f}x (per round {min(ratios):.2f}-{max(ratios):.2f})")
PY
