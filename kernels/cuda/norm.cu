// RMSNorm over rows: y = x / sqrt(mean(x²) + eps) · w. One block per row. rms_norm_q8_1 writes
// the normed row straight into Q8_1 blocks for the next matmul (one launch instead of two,
// and the same bytes as rms_norm_f32 followed by quantize_q8_1).
#include "include/q8_1.cuh"

// 1 / sqrt(mean(x²) + eps) of one row, for every thread of the block.
__device__ __forceinline__ float rms_scale(const float* xr, int n, float eps) {
    __shared__ float scratch[32];
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, scratch);
    return rsqrtf(ss / (float)n + eps);
}

extern "C" __global__ void rms_norm_f32(const float* __restrict__ x, const float* __restrict__ w,
                                        float* __restrict__ y, int n, float eps) {
    const float* xr = x + (long long)blockIdx.x * n;
    float* yr = y + (long long)blockIdx.x * n;
    const float scale = rms_scale(xr, n, eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] * scale * w[i];
}

// n a multiple of 32; the row's n / 32 blocks follow the previous rows' in `out`.
extern "C" __global__ void rms_norm_q8_1(const float* __restrict__ x, const float* __restrict__ w,
                                         block_q8_1* __restrict__ out, int n, float eps) {
    const float* xr = x + (long long)blockIdx.x * n;
    block_q8_1* o = out + (long long)blockIdx.x * (n / QK);
    const float scale = rms_scale(xr, n, eps);
    const int lane = threadIdx.x % 32, warps = blockDim.x / 32;
    for (int b = threadIdx.x / 32; b < n / QK; b += warps) {
        const int i = b * QK + lane;
        quantize_block_q8_1(xr[i] * scale * w[i], o + b);
    }
}
