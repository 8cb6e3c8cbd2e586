#!/usr/bin/env bash
# llama.cpp at its best on this machine, for the speed comparisons (scripts/bench-vs-llamacpp.sh):
# llama-cpp-python 0.3.36 built from source for every vector extension /proc/cpuinfo lists
# (peer-cmake-args.sh), into a venv named after them (about 10–15 minutes on 2 cores, once per
# machine kind). Prints the venv's path on stdout. The oracle fixtures keep their portable AVX2
# build (scripts/reference/make-fixtures.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$here/peer-cmake-args.sh"
venv="$root/.venv-peer-$peer_flavor"
if ! "$venv/bin/python" -c 'import llama_cpp, numpy' 2>/dev/null; then
  echo "building llama.cpp ($peer_flavor: ${peer_cmake_args[*]}) into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  CMAKE_ARGS="${peer_cmake_args[*]}" "$venv/bin/pip" install --quiet --disable-pip-version-check \
    --no-cache-dir llama-cpp-python==0.3.36 numpy >&2
fi
echo "$venv"
