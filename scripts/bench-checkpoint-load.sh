#!/usr/bin/env bash
# Load time and peak memory of `--model DIR` on a 7B-shaped Hugging Face checkpoint: writes a
# random-weight Qwen2.5-7B-shaped BF16 checkpoint (15.2 GB, four safetensors shards and their
# index; `ward synth --hf-with-tokenizer`) unless DIR holds one, then loads it with
# `ward run --quantize TYPE` for each TYPE (default: q8_0 q4_k_m), sampling the process's
# anonymous memory (the quantized weights and everything Ward allocates) and its file-backed
# memory (the checkpoint's mapped pages, which the kernel may drop) every 0.2 s.
#
#   scripts/bench-checkpoint-load.sh [DIR] [TYPE...]      (DIR default: /tmp/ward-qwen2.5-7b-hf)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-/tmp/ward-qwen2.5-7b-hf}"
shift || true
types=("${@:-q8_0 q4_k_m}")
cargo build --release -q -p ward --manifest-path "$root/Cargo.toml"
ward="$root/target/release/ward"
[ -f "$dir/model.safetensors.index.json" ] || "$ward" synth qwen2.5-7b --hf-with-tokenizer "$root/models/hf/tiny-qwen2" --out "$dir"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
for t in ${types[*]}; do
  start=$(date +%s.%N)
  "$ward" run --model "$dir" --quantize "$t" --prompt "The patient" --max-tokens 1 --threads "$(nproc)" >/dev/null 2>&1 &
  pid=$!; anon=0; file=0
  while kill -0 $pid 2>/dev/null; do
    read -r a f < <(awk '/RssAnon/{a=$2} /RssFile/{f=$2} END{print a+0, f+0}' /proc/$pid/status 2>/dev/null || echo "0 0")
    [ "$a" -gt "$anon" ] && anon=$a; [ "$f" -gt "$file" ] && file=$f
    sleep 0.2
  done
  wait $pid
  printf '%-7s load + 1 token %6.1f s   peak anonymous %6d MiB   peak file-backed %6d MiB\n' \
    "$t" "$(echo "$(date +%s.%N) - $start" | bc)" $((anon / 1024)) $((file / 1024))
done
