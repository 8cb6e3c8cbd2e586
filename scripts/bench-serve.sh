#!/usr/bin/env bash
# Ward's server and llama.cpp's (llama-server) under the same load, in one run: for each number
# of concurrent streams, `ward bench serve` drives Ward, then llama-server, on the same GGUF
# with the same threads, and prints both lines and the ratios.
#   scripts/bench-serve.sh [--threads N] [--streams 1,4,16,64] [--requests N] [--max-tokens N]
#                          [--prompt-words N] [--no-llama] [-- WARD SERVE FLAGS...]
# llama-server is built once (into .cache/llama-server) from the llama.cpp source that ships in
# llama-cpp-python's source package on PyPI, for every vector extension this CPU reports
# (scripts/reference/peer-cmake-args.sh), one build per machine kind.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
threads=2 streams=1,4,16,64 requests=2 max_tokens=64 prompt_words=128 llama=1 ward_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --streams) streams=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    --prompt-words) prompt_words=$2; shift 2 ;;
    --no-llama) llama=0; shift ;;
    --) shift; ward_flags=("$@"); break ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
model=smollm2-135m-instruct
file=models/SmolLM2-135M-Instruct.Q4_1.gguf
max_streams=$(tr ',' '\n' <<<"$streams" | sort -n | tail -1)
scripts/fetch-models.sh >&2
cargo build --release --quiet --bin ward

# llama-server built for every vector extension this CPU has, one build per machine kind.
source scripts/reference/peer-cmake-args.sh
build=.cache/llama-server/build-$peer_flavor
llama_server=$build/bin/llama-server
if [ "$llama" = 1 ] && [ ! -x "$llama_server" ]; then
  version=0.3.36
  src=.cache/llama-server/llama_cpp_python-$version/vendor/llama.cpp
  if [ ! -d "$src" ]; then
    pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==$version" \
      -d .cache/llama-server
    tar xzf ".cache/llama-server/llama_cpp_python-$version.tar.gz" -C .cache/llama-server
  fi
  command -v cmake >/dev/null || pip install --quiet cmake
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    "${peer_cmake_args[@]}" -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
  cmake --build "$build" --target llama-server -j "$(nproc)" >&2
fi

logs=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$logs"' EXIT
wait_ready() { # URL LOG
  for _ in $(seq 600); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "server did not come up; its log:" >&2; tail -20 "$2" >&2; exit 1
}
target/release/ward serve --model "$model" --port 8181 --threads "$threads" \
  --max-running "$max_streams" --max-queue "$max_streams" "${ward_flags[@]}" >"$logs/ward" 2>&1 &
pids+=($!)
wait_ready http://127.0.0.1:8181/ready "$logs/ward"
if [ "$llama" = 1 ]; then
  # One slot per stream, each with room for a prompt and its answer; continuous batching.
  "$llama_server" -m "$file" --port 8182 -t "$threads" -tb "$threads" -np "$max_streams" \
    -c $((max_streams * 512)) --no-webui >"$logs/llama" 2>&1 &
  pids+=($!)
  wait_ready http://127.0.0.1:8182/health "$logs/llama"
fi

out=$(mktemp)
failed=0  # `ward bench serve` exits non-zero when requests failed: the table still shows them
for s in ${streams//,/ }; do
  load=(--streams "$s" --requests "$requests" --max-tokens "$max_tokens" --prompt-words "$prompt_words" --model "$model")
  target/release/ward bench serve --addr 127.0.0.1:8181 --label ward --json "${load[@]}" | tee -a "$out" || failed=1
  if [ "$llama" = 1 ]; then
    target/release/ward bench serve --addr 127.0.0.1:8182 --label llama.cpp --json "${load[@]}" | tee -a "$out" || failed=1
  fi
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    if r["decode_tok_s"] is None:
        print(f"{r['label']} at {r['streams']} streams: {r['failed']} of {r['requests']} requests failed, "
              "too few answers to time; left out below")
rows = [r for r in rows if r["decode_tok_s"] is not None]
# tok/s: all generated tokens over the level's wall time; decode: streams / median ITL, the
# rate with every stream decoding.
print(f"\n{'server':>10} {'streams':>7} {'tok/s':>7} {'decode':>7} {'failed':>6} "
      f"{'TTFT p50':>9} {'p99':>7} {'ITL p50':>8} {'p90':>6} {'p99':>7}   (ms)")
for r in rows:
    print(f"{r['label']:>10} {r['streams']:7} {r['tok_s']:7.1f} {r['decode_tok_s']:7.1f} {r['failed']:6} "
          f"{r['ttft_ms'][0]:9.0f} {r['ttft_ms'][2]:7.0f} {r['itl_ms'][0]:8.1f} {r['itl_ms'][1]:6.1f} {r['itl_ms'][2]:7.1f}")
ward = {r["streams"]: r for r in rows if r["label"] == "ward"}
one = ward.get(1)
if one:
    print("\nward against its own single stream:")
    for s, r in sorted(ward.items()):
        print(f"  {s:3} streams: decode {r['decode_tok_s'] / one['decode_tok_s']:.2f}x, "
              f"p99 ITL {r['itl_ms'][2] / one['itl_ms'][2]:.2f}x")
llama = {r["streams"]: r for r in rows if r["label"] == "llama.cpp"}
if llama:
    print("\nward / llama.cpp, same run:")
    for s in sorted(set(ward) & set(llama)):
        w, l = ward[s], llama[s]
        print(f"  {s:3} streams: tok/s {w['tok_s'] / l['tok_s']:.2f}x, decode {w['decode_tok_s'] / l['decode_tok_s']:.2f}x, "
              f"TTFT p50 {l['ttft_ms'][0] / max(w['ttft_ms'][0], 1e-9):.2f}x lower, "
              f"ITL p99 {l['itl_ms'][2] / max(w['itl_ms'][2], 1e-9):.2f}x lower")
PY
rm -f "$out"
exit "$failed"
