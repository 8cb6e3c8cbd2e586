// Quantized matrix × vector for 1–8 tokens (decode and small batches): y[t][row] = W[row]·x[t].
// W is a GGUF weight matrix in its file format (rows of blocks), x the tokens' activations in
// Q8_1 (quantize.cu). One CUDA block of 128 threads per output row: thread i takes sub-blocks
// i, i + 128, …, decodes each once and multiplies it with every token's activations (the
// weights are read once for all tokens); the values meet in shared memory and are added in the
// canonical order (include/vecdot.cuh), which gives the same bits as mmq.cu. Kernels are
// mmvq_<type>_<tokens>.
#include "include/vecdot.cuh"

#define MMVQ_THREADS 128
#define MMVQ_CHUNKS (MMVQ_THREADS / CHUNK_SUB_BLOCKS)  // chunks one pass of the threads covers
// (NTOK · MMVQ_CHUNKS ≤ MMVQ_THREADS: a thread for each token's chunk)

template <int TYPE, int NTOK>
__device__ __forceinline__ void mmvq(const uint8_t* __restrict__ w, const block_q8_1* __restrict__ x,
                                     float* __restrict__ y, int sub_blocks, long long row_bytes, int rows) {
    const int row = blockIdx.x;
    const uint8_t* wr = w + (long long)row * row_bytes;
    __shared__ float values[NTOK][MMVQ_THREADS];
    __shared__ float chunk_sums[NTOK][MMVQ_CHUNKS];
    float total = 0.0f;  // thread t < NTOK: token t's sum of the chunks so far
    for (int base = 0; base < sub_blocks; base += MMVQ_THREADS) {
        const int sb = base + threadIdx.x;
        if (sb < sub_blocks) {
            int q[8];
            wscale ws;
            decode<TYPE>(wr, sb, q, &ws);
#pragma unroll
            for (int t = 0; t < NTOK; ++t) values[t][threadIdx.x] = vdot(q, ws, x + (long long)t * sub_blocks + sb);
        }
        __syncthreads();
        // A thread per token and chunk adds the chunk's values in order, then a thread per token
        // adds the chunks in order.
        if (threadIdx.x < NTOK * MMVQ_CHUNKS) {
            const int t = threadIdx.x / MMVQ_CHUNKS, c = threadIdx.x % MMVQ_CHUNKS;
            const int first = c * CHUNK_SUB_BLOCKS, end = min(CHUNK_SUB_BLOCKS, sub_blocks - base - first);
            float sum = 0.0f;
            for (int j = 0; j < end; ++j) sum = fadd(sum, values[t][first + j]);
            chunk_sums[t][c] = sum;
        }
        __syncthreads();
        if (threadIdx.x < NTOK) {
            for (int c = 0; c < MMVQ_CHUNKS && base + c * CHUNK_SUB_BLOCKS < sub_blocks; ++c)
                total = fadd(total, chunk_sums[threadIdx.x][c]);
        }
    }
    if (threadIdx.x < NTOK) y[(long long)threadIdx.x * rows + row] = total;
}

#define MMVQ_KERNEL(name, TYPE, N)                                                                        \
    extern "C" __global__ void __launch_bounds__(MMVQ_THREADS)                                      \
        mmvq_##name##_##N(const uint8_t* w, const block_q8_1* x, float* y, int sub_blocks,          \
                          long long row_bytes, int rows, int /* tokens: N */) {                     \
        mmvq<TYPE, N>(w, x, y, sub_blocks, row_bytes, rows);                               \
    }

#define MMVQ_TYPE(name, TYPE)                                                                       \
    MMVQ_KERNEL(name, TYPE, 1) MMVQ_KERNEL(name, TYPE, 2) MMVQ_KERNEL(name, TYPE, 3)                \
    MMVQ_KERNEL(name, TYPE, 4) MMVQ_KERNEL(name, TYPE, 5) MMVQ_KERNEL(name, TYPE, 6)                \
    MMVQ_KERNEL(name, TYPE, 7) MMVQ_KERNEL(name, TYPE, 8)

MMVQ_TYPE(q4_0, GGML_Q4_0)
MMVQ_TYPE(q4_1, GGML_Q4_1)
MMVQ_TYPE(q5_0, GGML_Q5_0)
MMVQ_TYPE(q5_1, GGML_Q5_1)
MMVQ_TYPE(q8_0, GGML_Q8_0)
MMVQ_TYPE(q2_K, GGML_Q2_K)
MMVQ_TYPE(q3_K, GGML_Q3_K)
MMVQ_TYPE(q4_K, GGML_Q4_K)
MMVQ_TYPE(q5_K, GGML_Q5_K)
MMVQ_TYPE(q6_K, GGML_Q6_K)
