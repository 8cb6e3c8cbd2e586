// f32 activations → Q8_1 blocks, one warp per 32 values: d = max|x|/127, q = round-half-even(x/d)
// (as Ward's CPU path and llama.cpp quantize), s = d·Σq.
#include "include/reduce.cuh"
#include "include/ward.cuh"

extern "C" __global__ void quantize_q8_1(const float* __restrict__ x, block_q8_1* __restrict__ out, int blocks) {
    const int b = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (b >= blocks) return;
    const float v = x[(long long)b * QK + lane];
    const float amax = warp_max(fabsf(v));
    const float d = amax / 127.0f;
    const int q = amax == 0.0f ? 0 : __float2int_rn(v * (127.0f / amax));
    const int sum = (int)warp_sum((float)q);  // |Σq| ≤ 32·127: exact in f32
    out[b].qs[lane] = (int8_t)q;
    if (lane == 0) {
        out[b].d = __half_as_ushort(__float2half_rn(d));
        out[b].s = __half_as_ushort(__float2half_rn(d * (float)sum));
    }
}
