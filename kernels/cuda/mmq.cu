// Quantized matrix × matrix for many tokens (prompts, large batches) on int8 tensor cores:
// y[t][row] = W[row]·x[t], W in its GGUF format, x the tokens' Q8_1 activations. A CUDA block of
// 4 warps computes a tile of 64 rows × 64 tokens: per chunk of 8 sub-blocks (256 values) it
// decodes the weights into int8 quants in shared memory (include/vecdot.cuh, the decoding
// mmvq.cu uses), copies the activations beside them, and each warp multiplies its 16 rows by
// the 64 tokens with mma.sync m16n8k16 (s8·s8 → s32), one 16-value half of a sub-block at a
// time. The integer sums are exact, `finish` turns them into the sub-block's value as mmvq.cu
// does, and the values are added in the canonical order — so every output has the bits the
// matrix-vector kernel gives it, and a token's result never depends on the batch or on which
// kernel ran. Kernels are mmq_<type>; they need sm_80 or later (the build's compute_80).
#include "include/vecdot.cuh"

#define MMQ_THREADS 128
#define MMQ_ROWS 64                    // 4 warps × 16 rows
#define MMQ_TOKENS 64                  // 8 mma tiles of 8 tokens
#define MMQ_TILES (MMQ_TOKENS / 8)
// Ints per row (or token) of a chunk in shared memory: 8 sub-blocks × 8 words, plus 4 so that
// the 8 rows a fragment load touches fall in different banks.
#define MMQ_STRIDE (CHUNK_SUB_BLOCKS * 8 + 4)

// d[i] = a·b for one 16×8 tile, K = 16: a is 16 rows × 16 int8 (this lane's two words), b 16 ×
// 8 (one word). Lane 4g + t holds rows g and g + 8 × tokens 2t and 2t + 1.
__device__ __forceinline__ void mma_s8_16x8x16(int d[4], int a0, int a1, int b) {
#ifdef WARD_HOST
    host_mma_s8_16x8x16(d, a0, a1, b);  // tests/emulate.h
#else
    asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5}, {%6}, "
        "{%7, %7, %7, %7};"
        : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
        : "r"(a0), "r"(a1), "r"(b), "r"(0));
#endif
}

template <int TYPE>
__device__ __forceinline__ void mmq(const uint8_t* __restrict__ w, const block_q8_1* __restrict__ x,
                                    float* __restrict__ y, int sub_blocks, long long row_bytes, int rows,
                                    int tokens) {
    __shared__ int wq[MMQ_ROWS][MMQ_STRIDE];
    __shared__ wscale wsc[MMQ_ROWS][CHUNK_SUB_BLOCKS];
    __shared__ int xq[MMQ_TOKENS][MMQ_STRIDE];
    __shared__ float xd[MMQ_TOKENS][CHUNK_SUB_BLOCKS];
    __shared__ short xs[MMQ_TOKENS][CHUNK_SUB_BLOCKS][2];  // Σx per half: |Σ| ≤ 16·127
    const int row0 = blockIdx.x * MMQ_ROWS, tok0 = blockIdx.y * MMQ_TOKENS;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const int r_lo = warp * 16 + g, r_hi = r_lo + 8;  // this lane's two rows in the tile
    float total[MMQ_TILES][4], part[MMQ_TILES][4];
#pragma unroll
    for (int n = 0; n < MMQ_TILES; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) total[n][e] = part[n][e] = 0.0f;

    for (int c0 = 0; c0 < sub_blocks; c0 += CHUNK_SUB_BLOCKS) {
        const int in_chunk = min(CHUNK_SUB_BLOCKS, sub_blocks - c0);
        for (int i = threadIdx.x; i < MMQ_ROWS * CHUNK_SUB_BLOCKS; i += MMQ_THREADS) {
            const int r = i / CHUNK_SUB_BLOCKS, j = i % CHUNK_SUB_BLOCKS;
            int* q = &wq[r][j * 8];
            if (row0 + r < rows && j < in_chunk) {
                decode<TYPE>(w + (long long)(row0 + r) * row_bytes, c0 + j, q, &wsc[r][j]);
            } else {
                for (int k = 0; k < 8; ++k) q[k] = 0;
                set_scale(&wsc[r][j], 0.0f, 0.0f, 0, 0, 0, 0);
            }
        }
        for (int i = threadIdx.x; i < MMQ_TOKENS * CHUNK_SUB_BLOCKS; i += MMQ_THREADS) {
            const int t = i / CHUNK_SUB_BLOCKS, j = i % CHUNK_SUB_BLOCKS;
            int* q = &xq[t][j * 8];
            if (tok0 + t < tokens && j < in_chunk) {
                const block_q8_1* b = x + (long long)(tok0 + t) * sub_blocks + c0 + j;
                int s[2] = {0, 0};
                for (int k = 0; k < 8; ++k) {
                    q[k] = load_b4((const uint8_t*)b->qs, k);
                    s[k / 4] = dp4a(0x01010101, q[k], s[k / 4]);
                }
                xd[t][j] = h2f(b->d);
                xs[t][j][0] = (short)s[0];
                xs[t][j][1] = (short)s[1];
            } else {
                for (int k = 0; k < 8; ++k) q[k] = 0;
                xd[t][j] = 0.0f;
                xs[t][j][0] = xs[t][j][1] = 0;
            }
        }
        __syncthreads();
        for (int j = 0; j < in_chunk; ++j) {
            // Rows g and g + 8 of this warp's 16, bytes 4·t4.. of each half of sub-block j.
            const int a_lo0 = wq[r_lo][j * 8 + t4], a_hi0 = wq[r_hi][j * 8 + t4];
            const int a_lo1 = wq[r_lo][j * 8 + 4 + t4], a_hi1 = wq[r_hi][j * 8 + 4 + t4];
            const wscale s_lo = wsc[r_lo][j], s_hi = wsc[r_hi][j];
#pragma unroll
            for (int n = 0; n < MMQ_TILES; ++n) {
                int i0[4], i1[4];
                const int tb = n * 8 + g;  // the token whose activations this lane brings
                mma_s8_16x8x16(i0, a_lo0, a_hi0, xq[tb][j * 8 + t4]);
                mma_s8_16x8x16(i1, a_lo1, a_hi1, xq[tb][j * 8 + 4 + t4]);
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int t = n * 8 + 2 * t4 + (e & 1);
                    const wscale& s = e < 2 ? s_lo : s_hi;
                    const float v = finish(s, xd[t][j], i0[e], i1[e], xs[t][j][0], xs[t][j][1]);
                    part[n][e] = fadd(part[n][e], v);
                }
            }
        }
#pragma unroll
        for (int n = 0; n < MMQ_TILES; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                total[n][e] = fadd(total[n][e], part[n][e]);
                part[n][e] = 0.0f;
            }
        __syncthreads();
    }
#pragma unroll
    for (int n = 0; n < MMQ_TILES; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int row = row0 + (e < 2 ? r_lo : r_hi), t = tok0 + n * 8 + 2 * t4 + (e & 1);
            if (row < rows && t < tokens) y[(long long)t * rows + row] = total[n][e];
        }
}

#define MMQ_TYPE(name, TYPE)                                                                              \
    extern "C" __global__ void __launch_bounds__(MMQ_THREADS)                                       \
        mmq_##name(const uint8_t* w, const block_q8_1* x, float* y, int sub_blocks,                 \
                   long long row_bytes, int rows, int tokens) {                                     \
        mmq<TYPE>(w, x, y, sub_blocks, row_bytes, rows, tokens);                           \
    }

MMQ_TYPE(q4_0, GGML_Q4_0)
MMQ_TYPE(q4_1, GGML_Q4_1)
MMQ_TYPE(q5_0, GGML_Q5_0)
MMQ_TYPE(q5_1, GGML_Q5_1)
MMQ_TYPE(q8_0, GGML_Q8_0)
MMQ_TYPE(q2_K, GGML_Q2_K)
MMQ_TYPE(q3_K, GGML_Q3_K)
MMQ_TYPE(q4_K, GGML_Q4_K)
MMQ_TYPE(q5_K, GGML_Q5_K)
MMQ_TYPE(q6_K, GGML_Q6_K)
