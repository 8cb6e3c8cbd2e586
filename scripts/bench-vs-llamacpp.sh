#!/usr/bin/env bash
# Ward and llama.cpp on the same GGUF with the same thread count, interleaved over several
# rounds, with Ward/llama.cpp ratios of the medians and the median (range) of per-round ratios.
#   scripts/bench-vs-llamacpp.sh [--rounds N] [--threads N] [--prompt-tokens N] [--gen-tokens N] [MODEL...]
# MODEL is a registry name or a GGUF path (default: the test models). llama.cpp is built for
# every vector extension this CPU has (scripts/reference/peer-llamacpp.sh: AVX-512 VNNI/BF16
# where present), never the portable AVX2 build of the oracle fixtures; WARD_PEER_VENV names
# another venv with llama_cpp. The report names both engines' kernels and the CPU's flags.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds=3 threads=2 pp=512 tg=128 models=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --prompt-tokens) pp=$2; shift 2 ;;
    --gen-tokens) tg=$2; shift 2 ;;
    *) models+=("$1"); shift ;;
  esac
done
[ ${#models[@]} -gt 0 ] || models=(smollm2-135m-instruct gemma-3-270m qwen2.5-coder-0.5b-instruct)
venv="${WARD_PEER_VENV:-$(scripts/reference/peer-llamacpp.sh)}"
scripts/fetch-models.sh >&2
cargo build --release --quiet --bin ward
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|avx512_bf16|avx_vnni|amx_int8)$' | tr '\n' ' ')"
echo "ward kernels: $(target/release/ward tiers | awk '/in use/ {print $1}'); llama.cpp: $(basename "$venv")"
out=$(mktemp)
for m in "${models[@]}"; do
  if [ -f "$m" ]; then
    file=$m
  else
    file=models/$(python3 -c "import tomllib,sys; r=tomllib.load(open('models/registry.toml','rb')); print([e['file'] for e in r['model'] if e['name']==sys.argv[1]][0])" "$m")
  fi
  for r in $(seq "$rounds"); do
    target/release/ward bench --model "$file" --threads "$threads" --prompt-tokens "$pp" --gen-tokens "$tg" --json 2>/dev/null \
      | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); d['engine']='ward'; print(json.dumps(d))" | tee -a "$out"
    "$venv/bin/python" scripts/reference/bench_llamacpp.py "$file" --threads "$threads" \
      --prompt-tokens "$pp" --gen-tokens "$tg" | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
# Each round runs Ward and llama.cpp back to back, so the ratio within a round shares the
# machine's state (a shared VM's bandwidth moves by tens of percent); its median and range say
# more than the ratio of the two medians alone.
print(f"\n{'model':40} {'metric':8} {'ward':>9} {'llama.cpp':>10} {'ratio':>7}   {'per-round ratio: median (range)':>32}")
table = []  # the same medians as the README's table rows (scripts/bench-readme.sh splices them in)
for model in dict.fromkeys(r["model"] for r in rows):
    cells = []
    for metric in ("prefill_tok_s", "decode_tok_s"):
        by = {e: [r[metric] for r in rows if r["model"] == model and r["engine"] == e]
              for e in ("ward", "llama.cpp")}
        med = {e: statistics.median(v) for e, v in by.items()}
        rounds = [w / l for w, l in zip(by["ward"], by["llama.cpp"])]
        print(f"{model:40} {metric.removesuffix('_tok_s'):8} {med['ward']:9.1f} {med['llama.cpp']:10.1f} "
              f"{med['ward']/med['llama.cpp']:7.2f}x   {statistics.median(rounds):.2f}x ({min(rounds):.2f}-{max(rounds):.2f})")
        cells += [f"{med['ward']:.1f}", f"{med['llama.cpp']:.1f}", f"{med['ward'] / med['llama.cpp']:.2f}×"]
    table.append(f"| {model.removesuffix('.gguf')} | " + " | ".join(cells) + " |")
print("\n" + "\n".join(table))
PY
rm -f "$out"
