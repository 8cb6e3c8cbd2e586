#!/usr/bin/env bash
# llama.cpp at its best on this machine, for the speed comparisons (scripts/bench-vs-llamacpp.sh):
# llama-cpp-python 0.3.36 built from source for every vector extension /proc/cpuinfo lists, into
# a venv named after them (about 15 minutes on 2 cores, once per machine kind). Prints the
# venv's path on stdout.
#
# Not GGML_NATIVE: its AMX path crashes (SIGSEGV in ggml_backend_amx_mul_mat) on the project's
# Xeons, and -march=native can pick instructions a VM's hypervisor hides. The extensions are
# named one by one instead, each only where the CPU reports it (Zen 4 has AVX-512 VNNI but not
# the VEX-encoded AVX-VNNI, for instance). The oracle fixtures keep their portable AVX2 build
# (scripts/reference/make-fixtures.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { [[ "$flags" == *" $1 "* ]]; }

args=(-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
flavor=portable
if has avx2 && has fma && has f16c; then
  args+=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON)
  flavor=avx2
  if has avx512f && has avx512bw && has avx512vl && has avx512dq && has avx512cd; then
    args+=(-DGGML_AVX512=ON)
    flavor=avx512
    has avx512_vnni && { args+=(-DGGML_AVX512_VNNI=ON); flavor+=-vnni; }
    has avx512_bf16 && { args+=(-DGGML_AVX512_BF16=ON); flavor+=-bf16; }
    has avx512vbmi && { args+=(-DGGML_AVX512_VBMI=ON); flavor+=-vbmi; }
  fi
  has avx_vnni && { args+=(-DGGML_AVX_VNNI=ON); flavor+=-avxvnni; }
fi
venv="$root/.venv-peer-$flavor"
if ! "$venv/bin/python" -c 'import llama_cpp, numpy' 2>/dev/null; then
  echo "building llama.cpp ($flavor: ${args[*]}) into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  CMAKE_ARGS="${args[*]}" "$venv/bin/pip" install --quiet --disable-pip-version-check \
    --no-cache-dir llama-cpp-python==0.3.36 numpy >&2
fi
echo "$venv"
