// Gated activations act(g) · u (SwiGLU for Llama, GeGLU with tanh-approximated GELU for Gemma),
// one warp per 32 values, written straight into the Q8_1 blocks the down projection reads.
#include "include/q8_1.cuh"

__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

__device__ __forceinline__ float gelu_mul(float g, float u) {
    const float inner = 0.7978845608f * (g + 0.044715f * g * g * g);
    return 0.5f * g * (1.0f + tanhf(inner)) * u;
}

template <float (*ACT)(float, float)>
__device__ __forceinline__ void gated_q8_1(const float* __restrict__ g, const float* __restrict__ u,
                                           block_q8_1* __restrict__ out, int blocks) {
    const int b = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (b >= blocks) return;
    const long long i = (long long)b * QK + threadIdx.x % 32;
    quantize_block_q8_1(ACT(g[i], u[i]), out + b);
}

extern "C" __global__ void silu_mul_q8_1(const float* g, const float* u, block_q8_1* out, int blocks) {
    gated_q8_1<silu_mul>(g, u, out, blocks);
}

extern "C" __global__ void gelu_mul_q8_1(const float* g, const float* u, block_q8_1* out, int blocks) {
    gated_q8_1<gelu_mul>(g, u, out, blocks);
}
