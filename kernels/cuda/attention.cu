// Decode attention over the paged f16 KV cache, split over the positions (split-KV) with the
// query heads of a KV head packed together (GQA): each K and V row is read once for all the
// heads that share it. The cache is Ward's CPU layout: blocks of 64 positions, each
// [kv_head][position][head_dim]; a sequence's table lists its blocks in order.
//
// attn_decode_partial: one CUDA block per (chunk of 128 positions, KV head, sequence) computes,
// for each of the group's query heads, the chunk's max score m, Σexp(score − m) l and the
// exp-weighted sum of V. attn_decode_merge adds the chunks in order (so the result does not
// depend on how many chunks ran at once). A sliding window keeps only the last `window`
// positions (0: all).
#include <math.h>
#include <stdint.h>
#include <cuda_fp16.h>

#include "include/reduce.cuh"

#define KV_BLOCK 64
#define CHUNK 128
#define MAX_GROUP 16
#define MAX_HEAD_DIM 256

extern "C" __global__ void __launch_bounds__(CHUNK) attn_decode_partial(
    const float* __restrict__ q,           // [seq][n_head][head_dim]
    const __half* __restrict__ k_pool,     // [block][n_kv_head][KV_BLOCK][head_dim]
    const __half* __restrict__ v_pool,
    const int* __restrict__ tables,        // [seq][max_blocks]
    const int* __restrict__ lens,          // [seq]: positions in the cache, this token's included
    float* __restrict__ o_part,            // [seq][n_head][chunks][head_dim]
    float* __restrict__ ml_part,           // [seq][n_head][chunks][2]: m, l
    int n_head, int n_kv_head, int head_dim, int max_blocks, int chunks, int window, float scale) {
    const int chunk = blockIdx.x, kvh = blockIdx.y, seq = blockIdx.z, tid = threadIdx.x;
    const int group = n_head / n_kv_head, len = lens[seq];
    const int first = window > 0 && len > window ? len - window : 0;
    const int p0 = chunk * CHUNK, p = p0 + tid;
    __shared__ float qs[MAX_GROUP][MAX_HEAD_DIM];
    __shared__ float prob[MAX_GROUP][CHUNK];
    __shared__ float scratch[32];
    for (int i = tid; i < group * head_dim; i += CHUNK)
        qs[i / head_dim][i % head_dim] = q[((long long)seq * n_head + kvh * group + i / head_dim) * head_dim + i % head_dim];
    __syncthreads();

    const int* table = tables + (long long)seq * max_blocks;
    const bool live = p < len && p >= first;
    const long long row = live ? (((long long)table[p / KV_BLOCK] * n_kv_head + kvh) * KV_BLOCK + p % KV_BLOCK) * head_dim : 0;
    for (int g = 0; g < group; ++g) {
        float s = -INFINITY;
        if (live) {
            s = 0.0f;
            for (int d = 0; d < head_dim; ++d) s += __half2float(k_pool[row + d]) * qs[g][d];
            s *= scale;
        }
        const float m = block_max(s, scratch);
        const float e = live ? expf(s - m) : 0.0f;
        const float l = block_sum(e, scratch);
        prob[g][tid] = e;
        if (tid == 0) {
            float* ml = ml_part + (((long long)seq * n_head + kvh * group + g) * chunks + chunk) * 2;
            ml[0] = m;
            ml[1] = l;
        }
    }
    __syncthreads();
    const int end = min(CHUNK, len - p0);
    for (int d = tid; d < head_dim; d += CHUNK) {
        float acc[MAX_GROUP];
        for (int g = 0; g < group; ++g) acc[g] = 0.0f;
        for (int j = max(0, first - p0); j < end; ++j) {
            const int pj = p0 + j;
            const long long vrow = (((long long)table[pj / KV_BLOCK] * n_kv_head + kvh) * KV_BLOCK + pj % KV_BLOCK) * head_dim;
            const float v = __half2float(v_pool[vrow + d]);
            for (int g = 0; g < group; ++g) acc[g] += prob[g][j] * v;
        }
        for (int g = 0; g < group; ++g)
            o_part[(((long long)seq * n_head + kvh * group + g) * chunks + chunk) * head_dim + d] = acc[g];
    }
}

// out[seq][head] = Σ_c e^(m_c − M)·o_c / Σ_c e^(m_c − M)·l_c, chunks in order. One block per
// (head, sequence).
extern "C" __global__ void attn_decode_merge(const float* __restrict__ o_part, const float* __restrict__ ml_part,
                                             float* __restrict__ out, int n_head, int head_dim, int chunks) {
    const int head = blockIdx.x, seq = blockIdx.y;
    const long long base = (long long)seq * n_head + head;
    const float* ml = ml_part + base * chunks * 2;
    float m = -INFINITY;
    for (int c = 0; c < chunks; ++c)
        if (ml[2 * c + 1] > 0.0f) m = fmaxf(m, ml[2 * c]);
    float l = 0.0f;
    for (int c = 0; c < chunks; ++c)
        if (ml[2 * c + 1] > 0.0f) l += expf(ml[2 * c] - m) * ml[2 * c + 1];
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float acc = 0.0f;
        for (int c = 0; c < chunks; ++c)
            if (ml[2 * c + 1] > 0.0f) acc += expf(ml[2 * c] - m) * o_part[(base * chunks + c) * head_dim + d];
        out[base * head_dim + d] = l > 0.0f ? acc / l : 0.0f;
    }
}
