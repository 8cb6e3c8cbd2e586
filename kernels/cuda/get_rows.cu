// Selected rows of a weight matrix to f32 on the device (the token embedding lookup). One
// thread per 32-value sub-block, decoded as the matmuls decode it (include/vecdot.cuh).
// Kernels: get_rows_<type>.
#include "include/vecdot.cuh"

template <int TYPE>
__device__ __forceinline__ void get_rows(const uint8_t* __restrict__ w, const int* __restrict__ ids,
                                         float* __restrict__ out, int n, int sub_blocks, long long row_bytes) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n * sub_blocks) return;
    const int t = (int)(i / sub_blocks), sb = (int)(i % sub_blocks);
    int q[8];
    wscale ws;
    decode<TYPE>(w + (long long)ids[t] * row_bytes, sb, q, &ws);
    dequantize(q, ws, out + i * 32);
}

#define GET_ROWS_TYPE(name, TYPE)                                                                          \
    extern "C" __global__ void get_rows_##name(const uint8_t* w, const int* ids, float* out, int n, \
                                               int sub_blocks, long long row_bytes) {               \
        get_rows<TYPE>(w, ids, out, n, sub_blocks, row_bytes);                             \
    }

GET_ROWS_TYPE(q4_0, GGML_Q4_0)
GET_ROWS_TYPE(q4_1, GGML_Q4_1)
GET_ROWS_TYPE(q5_0, GGML_Q5_0)
GET_ROWS_TYPE(q5_1, GGML_Q5_1)
GET_ROWS_TYPE(q8_0, GGML_Q8_0)
GET_ROWS_TYPE(q2_K, GGML_Q2_K)
GET_ROWS_TYPE(q3_K, GGML_Q3_K)
GET_ROWS_TYPE(q4_K, GGML_Q4_K)
GET_ROWS_TYPE(q5_K, GGML_Q5_K)
GET_ROWS_TYPE(q6_K, GGML_Q6_K)
