// One warp quantizes 32 f32 values (lane i holds value i) into a Q8_1 block: d = max|x|/127,
// q = round-half-even(x/d) (as Ward's CPU path and llama.cpp), s = d·Σq.
#pragma once
#include "reduce.cuh"
#include "ward.cuh"

__device__ __forceinline__ void quantize_block_q8_1(float v, block_q8_1* out) {
    const int lane = threadIdx.x % 32;
    const float amax = warp_max(fabsf(v));
    const float d = amax / 127.0f;
    const int q = amax == 0.0f ? 0 : __float2int_rn(v * (127.0f / amax));
    const int sum = (int)warp_sum((float)q);  // |Σq| ≤ 32·127: exact in f32
    out->qs[lane] = (int8_t)q;
    if (lane == 0) {
        out->d = __half_as_ushort(__float2half_rn(d));
        out->s = __half_as_ushort(__float2half_rn(d * (float)sum));
    }
}
