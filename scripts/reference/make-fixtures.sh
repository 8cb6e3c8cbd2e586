#!/usr/bin/env bash
# Regenerate the oracle fixtures in scripts/reference/fixtures/ with llama.cpp.
# Builds llama-cpp-python from source into a venv (about 15 minutes on 2 cores, once), for
# AVX2/FMA/F16C without -march=native: a native build on a Xeon with AMX dies with SIGILL in VMs
# that do not grant AMX tiles, and the same build must also run on the project's Zen3 machines.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${WARD_REFERENCE_VENV:-$root/.venv-reference}"
export LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import llama_cpp, jinja2, numpy, gguf' 2>/dev/null; then
  python3 -m venv "$venv"
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir \
    llama-cpp-python==0.3.36 jinja2 numpy gguf==0.19.0
fi
"$root/scripts/fetch-models.sh"
cd "$here" && "$venv/bin/python" reference.py
cd "$here" && "$venv/bin/python" tokenizers.py
cd "$here" && "$venv/bin/python" templates.py
# gguf's and ggml's decoders of the weight formats, ggml's activation quantizers and vec_dot.
cd "$here" && "$venv/bin/python" quant_oracle.py
cargo build --release -p ward --manifest-path "$root/Cargo.toml"
cd "$here" && "$venv/bin/python" random_models.py
# sentence-transformers needs torch: its half of the embedding fixtures is written only where
# SENTENCE_TRANSFORMERS_PYTHON names a python that has it.
cd "$here" && "$venv/bin/python" embeddings.py
