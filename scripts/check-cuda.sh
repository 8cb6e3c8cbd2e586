#!/usr/bin/env bash
# Compile every CUDA kernel (kernels/cuda/*.cu) without a GPU: to PTX for compute_80 (what the
# `cuda` build embeds; the driver JIT-compiles it for the GPU at hand: A100, H100, H200, …) and
# through ptxas to sm_90 machine code, so register or syntax trouble shows here and in CI.
# Warnings are errors. Then build ward-kernels, ward-models and the ward binary with
# `--features cuda` (build.rs embeds the PTX; the launch code, the GPU model, `--gpu` and the
# GPU tests compile) and run the GPU-free checks. nvcc comes from PyPI into .venv-cuda: NVIDIA's CUDA 12 wheels
# (nvidia-cuda-nvcc-cu12) hold only ptxas, so this uses the CUDA 13.0 wheels, which carry nvcc
# itself (13.0 is the oldest, for the widest range of drivers: 580 and later).
#
#   scripts/check-cuda.sh            prints the nvcc it used, then one line per kernel file
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-cuda"
requirements="nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85"
if [ "$(cat "$venv/requirements" 2>/dev/null)" != "$requirements" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $requirements
  echo "$requirements" > "$venv/requirements"
fi
cuda="$("$venv/bin/python" -c 'import os, nvidia; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
nvcc="$cuda/bin/nvcc"
export PATH="$cuda/bin:$PATH"
"$nvcc" --version | tail -1
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
status=0
for cu in "$root"/kernels/cuda/*.cu; do
  name="$(basename "$cu" .cu)"
  if "$nvcc" -ptx -arch=compute_80 -I"$cuda/include" -Werror all-warnings "$cu" -o "$out/$name.ptx" \
     && "$nvcc" -cubin -arch=sm_90 -I"$cuda/include" -Werror all-warnings "$cu" -o "$out/$name.cubin"; then
    echo "ok: kernels/cuda/$name.cu ($(grep -c '^\.visible \.entry' "$out/$name.ptx") kernels)"
  else
    echo "FAILED: kernels/cuda/$name.cu"
    status=1
  fi
done
[ "$status" -eq 0 ] || exit "$status"
cd "$root"
NVCC="$nvcc" cargo clippy --quiet -p ward-kernels -p ward-models -p ward --features cuda --tests -- -D warnings
NVCC="$nvcc" cargo test --quiet -p ward-kernels --features cuda --lib cuda 2>&1 | grep -E "^test result"
