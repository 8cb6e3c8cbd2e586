// f32 activations → Q8_1 blocks (include/q8_1.cuh), one warp per 32 values.
#include "include/q8_1.cuh"

extern "C" __global__ void quantize_q8_1(const float* __restrict__ x, block_q8_1* __restrict__ out, int blocks) {
    const int b = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (b >= blocks) return;
    quantize_block_q8_1(x[(long long)b * QK + threadIdx.x % 32], out + b);
}
