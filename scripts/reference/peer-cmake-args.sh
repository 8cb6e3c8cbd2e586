# Sourced by the scripts that build llama.cpp as Ward's peer in speed comparisons
# (scripts/reference/peer-llamacpp.sh, scripts/bench-serve.sh): sets `peer_cmake_args`, the
# llama.cpp CMake options for every vector extension this CPU reports, and `peer_flavor`, a
# name for them ("avx512-vnni-bf16-vbmi", "avx2", …), so that each machine kind gets its own
# build.
#
# Not GGML_NATIVE: its AMX path crashes (SIGSEGV in ggml_backend_amx_mul_mat) on the project's
# Xeons, and -march=native can pick instructions a VM's hypervisor hides. The extensions are
# named one by one instead, each only where the CPU reports it (Zen 4 has AVX-512 VNNI but not
# the VEX-encoded AVX-VNNI, for instance).
peer_cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
peer_has() { [[ "$peer_cpu_flags" == *" $1 "* ]]; }
peer_cmake_args=(-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
peer_flavor=portable
if peer_has avx2 && peer_has fma && peer_has f16c; then
  peer_cmake_args+=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON)
  peer_flavor=avx2
  if peer_has avx512f && peer_has avx512bw && peer_has avx512vl && peer_has avx512dq && peer_has avx512cd; then
    peer_cmake_args+=(-DGGML_AVX512=ON)
    peer_flavor=avx512
    if peer_has avx512_vnni; then peer_cmake_args+=(-DGGML_AVX512_VNNI=ON); peer_flavor+=-vnni; fi
    if peer_has avx512_bf16; then peer_cmake_args+=(-DGGML_AVX512_BF16=ON); peer_flavor+=-bf16; fi
    if peer_has avx512vbmi; then peer_cmake_args+=(-DGGML_AVX512_VBMI=ON); peer_flavor+=-vbmi; fi
  fi
  if peer_has avx_vnni; then peer_cmake_args+=(-DGGML_AVX_VNNI=ON); peer_flavor+=-avxvnni; fi
fi
