// Small element-wise kernels of a forward pass: the residual add, scaling (Gemma's embeddings),
// f32 → f16, and writing new keys or values into the paged f16 KV pool (blocks of 64
// positions, [kv_head][position][dim]).
#include <cuda_fp16.h>
#include <stdint.h>

extern "C" __global__ void add_f32(float* __restrict__ a, const float* __restrict__ b, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) a[i] += b[i];
}

extern "C" __global__ void f32_to_f16(const float* __restrict__ x, __half* __restrict__ y, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2half_rn(x[i]);
}

// rows: [token][n_kv_head][head_dim]; slots[t] = block · 64 + offset of token t's position.
extern "C" __global__ void kv_write(const float* __restrict__ rows, const int* __restrict__ slots,
                                    __half* __restrict__ pool, int tokens, int n_kv_head, int head_dim) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)tokens * n_kv_head * head_dim) return;
    const int d = (int)(i % head_dim);
    const int h = (int)((i / head_dim) % n_kv_head);
    const int t = (int)(i / ((long long)head_dim * n_kv_head));
    const long long block = slots[t] / 64, offset = slots[t] % 64;
    pool[((block * n_kv_head + h) * 64 + offset) * head_dim + d] = __float2half_rn(rows[i]);
}

extern "C" __global__ void scale_f32(float* __restrict__ x, float s, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}
