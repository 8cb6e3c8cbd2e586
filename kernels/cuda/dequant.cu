// Weights to floats on the device: whole matrices to f16 for the prefill GEMM (cuBLAS, until
// the int8 MMQ kernels land), and selected rows to f32 for the token embedding lookup. One
// thread per 32-value sub-block. Kernels: dequant_<type>_f16, get_rows_<type>.
#include <cuda_fp16.h>

#include "include/dequant.cuh"

template <dequant_fn DQ>
__device__ __forceinline__ void dequant_f16(const uint8_t* __restrict__ w, __half* __restrict__ out, int rows,
                                            int sub_blocks, long long row_bytes) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * sub_blocks) return;
    const long long row = i / sub_blocks;
    const int sb = (int)(i % sub_blocks);
    float v[32];
    DQ(w + row * row_bytes, sb, v);
    __half* o = out + i * 32;
    for (int k = 0; k < 32; ++k) o[k] = __float2half_rn(v[k]);
}

template <dequant_fn DQ>
__device__ __forceinline__ void get_rows(const uint8_t* __restrict__ w, const int* __restrict__ ids,
                                         float* __restrict__ out, int n, int sub_blocks, long long row_bytes) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n * sub_blocks) return;
    const int t = (int)(i / sub_blocks), sb = (int)(i % sub_blocks);
    DQ(w + (long long)ids[t] * row_bytes, sb, out + i * 32);
}

#define DEQUANT_TYPE(name, DQ)                                                                      \
    extern "C" __global__ void dequant_##name##_f16(const uint8_t* w, __half* out, int rows,       \
                                                    int sub_blocks, long long row_bytes) {          \
        dequant_f16<DQ>(w, out, rows, sub_blocks, row_bytes);                                       \
    }                                                                                               \
    extern "C" __global__ void get_rows_##name(const uint8_t* w, const int* ids, float* out, int n, \
                                               int sub_blocks, long long row_bytes) {               \
        get_rows<DQ>(w, ids, out, n, sub_blocks, row_bytes);                                        \
    }

DEQUANT_TYPE(q4_0, dq_q4_0)
DEQUANT_TYPE(q4_1, dq_q4_1)
DEQUANT_TYPE(q5_0, dq_q5_0)
DEQUANT_TYPE(q5_1, dq_q5_1)
DEQUANT_TYPE(q8_0, dq_q8_0)
DEQUANT_TYPE(q2_K, dq_q2_K)
DEQUANT_TYPE(q3_K, dq_q3_K)
DEQUANT_TYPE(q4_K, dq_q4_K)
DEQUANT_TYPE(q5_K, dq_q5_K)
DEQUANT_TYPE(q6_K, dq_q6_K)
