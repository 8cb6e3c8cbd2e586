#!/usr/bin/env bash
# The GPU checks of issue #7 (docs: README "GPU"), packed on a machine without a GPU and run on
# the lent GPU machine, which has nvcc and CMake but no Rust and no network, and takes at most
# 64 MiB of files a call:
#
#   scripts/gpu-check.sh pack      here: builds the CUDA test binaries and `ward` with the cuda
#                                  feature (stripped, into .gpu/bin), trims llama.cpp's source from
#                                  llama-cpp-python's sdist into .gpu/bin/llama.cpp.tar.gz, and
#                                  splits each test model into .gpu/parts/MODEL.tar.NN (56 MiB)
#   scripts/gpu-check.sh receive   there, once per call that carries a part (carry that file):
#                                  appends it to its archive, which unpacks once whole (SmolLM2
#                                  is 2 parts, Gemma 5; the machine keeps them while warm)
#   scripts/gpu-check.sh run [OUT] there (carry .gpu/bin): each kernel against the CPU, the
#                                  llama.cpp logits oracle on the GPU (if the models arrived),
#                                  `ward bench` on the synthetic Llama-3-8B shape and the test
#                                  models with and without CUDA graphs, and llama.cpp's
#                                  llama-bench built with -DGGML_CUDA=on beside it; logs to OUT
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin=.gpu/bin
models="models/SmolLM2-135M-Instruct.Q4_1.gguf models/gemma-3-270m-q4_k_m.gguf"

pack() {
  mkdir -p "$bin"
  scripts/fetch-models.sh >&2
  scripts/check-cuda.sh >&2  # installs nvcc into .venv-cuda and lints the cuda build
  local cuda
  cuda="$(.venv-cuda/bin/python -c 'import os, nvidia; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
  export NVCC="$cuda/bin/nvcc"
  local tests
  tests=$(cargo test --release --features ward-kernels/cuda,ward-models/cuda -p ward-kernels \
    -p ward-models --test cuda_kernels --test logits_fixtures --no-run --message-format=json |
    python3 -c 'import json, sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])')
  while read -r name exe; do objcopy --strip-debug "$exe" "$bin/$name"; done <<<"$tests"
  cargo build --release -p ward --features cuda
  objcopy --strip-debug target/release/ward "$bin/ward"
  local version=0.3.36 src=.cache/llama-server
  if [ ! -f "$src/llama_cpp_python-$version.tar.gz" ]; then
    pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==$version" -d "$src"
  fi
  tar xzf "$src/llama_cpp_python-$version.tar.gz" -C "$src"
  # What a CUDA build of llama-bench reads; not the vocabularies, docs, tests or examples.
  tar czf "$bin/llama.cpp.tar.gz" -C "$src/llama_cpp_python-$version/vendor" \
    llama.cpp/{CMakeLists.txt,cmake,common,ggml,include,src,tools,vendor,LICENSE}
  rm -rf .gpu/parts && mkdir -p .gpu/parts
  local m
  for m in $models; do
    tar cf - "$m" | split -b 56M -d - ".gpu/parts/$(basename "$m" .gguf).tar."
  done
  ls -l "$bin" .gpu/parts >&2
  echo "carry .gpu/bin in the run call; before it, one .gpu/parts/FILE per receive call" >&2
}

receive() {
  local part tar
  for part in .gpu/parts/*.tar.*; do
    [ -e "$part" ] || continue  # none carried this call
    tar="${part%.*}"
    cat "$part" >>"$tar"
    rm -f "$part"
    echo "received $part ($(stat -c %s "$tar") bytes of $(basename "$tar") so far)"
    # A complete archive unpacks; a partial one (tar cannot read it to the end) waits.
    if tar tf "$tar" >/dev/null 2>&1; then
      tar xf "$tar" && rm -f "$tar"
    fi
  done
  for m in $models; do [ -f "$m" ] && sha256sum "$m"; done
  return 0
}

run() {
  local out="${1:-${OUT:-.gpu/out}}" status=0
  mkdir -p "$out"
  export WARD_ROOT="$root"  # the test binaries find the models and fixtures here
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
  # llama.cpp builds in the background on the CPUs while Ward's tests use the GPU.
  (
    mkdir -p /tmp/llama && tar xzf "$bin/llama.cpp.tar.gz" -C /tmp/llama &&
      cmake -S /tmp/llama/llama.cpp -B /tmp/llama/build -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=on \
        -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF &&
      cmake --build /tmp/llama/build --target llama-bench -j "$(nproc)"
  ) >"$out/llama-build.log" 2>&1 &
  local build=$!
  "$bin/cuda_kernels" --test-threads 1 2>&1 | tee "$out/cuda_kernels.log" || status=1
  local filters=()
  [ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ] && filters+=(smollm2_on_the_gpu smollm2_gpu)
  [ -f models/gemma-3-270m-q4_k_m.gguf ] && filters+=(gemma3_on_the_gpu)
  if [ ${#filters[@]} -gt 0 ]; then
    "$bin/logits_fixtures" --test-threads 1 "${filters[@]}" 2>&1 | tee "$out/logits_fixtures.log" || status=1
  else
    echo "no model received: the logits oracle is not run" | tee "$out/logits_fixtures.log"
  fi
  local synth=/tmp/synthetic-llama3-8b-q4_k_m.gguf
  [ -f "$synth" ] || "$bin/ward" synth llama3-8b --out "$synth"
  local bench=("$synth")
  for m in $models; do [ -f "$m" ] && bench+=("$m"); done
  wait "$build" || echo "llama.cpp did not build: see llama-build.log" >&2
  for m in "${bench[@]}"; do
    for graphs in 1 0; do
      WARD_CUDA_GRAPHS=$graphs "$bin/ward" bench --gpu 0 --model "$m" --prompt-tokens 512 \
        --gen-tokens 128 --json | sed "s/^{/{\"graphs\": $graphs, /" | tee -a "$out/ward-bench.jsonl" || status=1
    done
    if [ -x /tmp/llama/build/bin/llama-bench ]; then
      /tmp/llama/build/bin/llama-bench -m "$m" -ngl 99 -p 512 -n 128 -o jsonl |
        tee -a "$out/llama-bench.jsonl" || status=1
    fi
  done
  return "$status"
}

case "${1:-}" in
  pack) pack ;;
  receive) receive ;;
  run) run "${2:-}" ;;
  *) sed -n 2,18p "$0" >&2; exit 2 ;;
esac
