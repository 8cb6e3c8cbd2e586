// Quantized matrix × vector for 1–8 tokens on Apple GPUs: y[t][row] = W[row]·x[t], W a GGUF
// weight matrix in its file format, x the tokens' Q8_1 activations — kernels/cuda/mmvq.cu
// written in Metal, on the same decoding (../cuda/include/vecdot.cuh) and in the same canonical
// order, so it gives the CUDA kernels' bits. Apple GPUs have no int8 matrix units, so more
// tokens run 8 at a time (the same bits again: a token's result never depends on its batch).
// One threadgroup of 128 threads per output row. Kernels are mmvq_<type>_<tokens>.
#include "../cuda/include/vecdot.cuh"

#ifndef WARD_SHARED
#define WARD_SHARED threadgroup  // a threadgroup's shared array (the host tests make it static)
#endif

#define MMVQ_THREADS 128
#define MMVQ_CHUNKS (MMVQ_THREADS / CHUNK_SUB_BLOCKS)

// The launch's shape (a constant buffer).
struct matmul_args {
    long row_bytes;
    int sub_blocks, rows;
};

template <int TYPE, int NTOK>
kernel void mmvq(device const uint8_t* w [[buffer(0)]], device const block_q8_1* x [[buffer(1)]],
                 device float* y [[buffer(2)]], constant matmul_args& a [[buffer(3)]],
                 uint row [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]) {
    WARD_SHARED float values[NTOK][MMVQ_THREADS];
    WARD_SHARED float chunk_sums[NTOK][MMVQ_CHUNKS];
    device const uint8_t* wr = w + (long)row * a.row_bytes;
    const int sub_blocks = a.sub_blocks;
    float total = 0.0f;  // thread t < NTOK: token t's sum of the chunks so far
    for (int base = 0; base < sub_blocks; base += MMVQ_THREADS) {
        const int sb = base + (int)tid;
        if (sb < sub_blocks) {
            int q[8];
            wscale ws;
            decode<TYPE>(wr, sb, q, &ws);
            for (int t = 0; t < NTOK; ++t) values[t][tid] = vdot(q, ws, x + (long)t * sub_blocks + sb);
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        if (tid < NTOK * MMVQ_CHUNKS) {
            const int t = (int)tid / MMVQ_CHUNKS, c = (int)tid % MMVQ_CHUNKS;
            const int first = c * CHUNK_SUB_BLOCKS, end = min(CHUNK_SUB_BLOCKS, sub_blocks - base - first);
            float sum = 0.0f;
            for (int j = 0; j < end; ++j) sum = fadd(sum, values[t][first + j]);
            chunk_sums[t][c] = sum;
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        if (tid < NTOK) {
            for (int c = 0; c < MMVQ_CHUNKS && base + c * CHUNK_SUB_BLOCKS < sub_blocks; ++c)
                total = fadd(total, chunk_sums[tid][c]);
        }
    }
    if (tid < NTOK) y[(long)tid * a.rows + row] = total;
}

#ifdef __METAL_VERSION__
typedef decltype(mmvq<GGML_Q4_0, 1>) mmvq_t;
#define MMVQ_KERNEL(name, TYPE, N) template [[host_name("mmvq_" #name "_" #N)]] kernel mmvq_t mmvq<TYPE, N>;
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
#endif
