// Quantized matrix × vector for 1–8 tokens (decode and small batches): y[t][row] = W[row]·x[t].
// W is a GGUF weight matrix in its file format (rows of blocks), x the tokens' activations in
// Q8_1 (quantize.cu). One CUDA block of 128 threads per output row: the row's 32-value
// sub-blocks are dealt round-robin to the threads, each thread multiplies its sub-blocks with
// every token's activations (the weights are read once for all tokens), and the partial sums
// are added in a fixed order. Kernels are named mmvq_<type>_<tokens>.
#include "include/reduce.cuh"
#include "include/vecdot.cuh"

#define MMVQ_THREADS 128

template <vdot_fn VDOT, int NTOK>
__device__ __forceinline__ void mmvq(const uint8_t* __restrict__ w, const block_q8_1* __restrict__ x,
                                     float* __restrict__ y, int sub_blocks, long long row_bytes, int rows) {
    const int row = blockIdx.x;
    const uint8_t* wr = w + (long long)row * row_bytes;
    float acc[NTOK];
#pragma unroll
    for (int t = 0; t < NTOK; ++t) acc[t] = 0.0f;
    for (int sb = threadIdx.x; sb < sub_blocks; sb += MMVQ_THREADS) {
#pragma unroll
        for (int t = 0; t < NTOK; ++t) acc[t] += VDOT(wr, sb, x + (long long)t * sub_blocks + sb);
    }
    __shared__ float partial[NTOK][MMVQ_THREADS / 32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
    for (int t = 0; t < NTOK; ++t) {
        const float v = warp_sum(acc[t]);
        if (lane == 0) partial[t][warp] = v;
    }
    __syncthreads();
    if (threadIdx.x < NTOK) {
        float s = 0.0f;
        for (int i = 0; i < MMVQ_THREADS / 32; ++i) s += partial[threadIdx.x][i];
        y[(long long)threadIdx.x * rows + row] = s;
    }
}

#define MMVQ_KERNEL(name, VDOT, N)                                                                  \
    extern "C" __global__ void __launch_bounds__(MMVQ_THREADS)                                      \
        mmvq_##name##_##N(const uint8_t* w, const block_q8_1* x, float* y, int sub_blocks,          \
                          long long row_bytes, int rows) {                                          \
        mmvq<VDOT, N>(w, x, y, sub_blocks, row_bytes, rows);                                        \
    }

#define MMVQ_TYPE(name, VDOT)                                                                       \
    MMVQ_KERNEL(name, VDOT, 1) MMVQ_KERNEL(name, VDOT, 2) MMVQ_KERNEL(name, VDOT, 3)                \
    MMVQ_KERNEL(name, VDOT, 4) MMVQ_KERNEL(name, VDOT, 5) MMVQ_KERNEL(name, VDOT, 6)                \
    MMVQ_KERNEL(name, VDOT, 7) MMVQ_KERNEL(name, VDOT, 8)

MMVQ_TYPE(q4_0, vdot_q4_0)
MMVQ_TYPE(q4_1, vdot_q4_1)
MMVQ_TYPE(q5_0, vdot_q5_0)
MMVQ_TYPE(q5_1, vdot_q5_1)
MMVQ_TYPE(q8_0, vdot_q8_0)
MMVQ_TYPE(q2_K, vdot_q2_K)
MMVQ_TYPE(q3_K, vdot_q3_K)
MMVQ_TYPE(q4_K, vdot_q4_K)
MMVQ_TYPE(q5_K, vdot_q5_K)
MMVQ_TYPE(q6_K, vdot_q6_K)
