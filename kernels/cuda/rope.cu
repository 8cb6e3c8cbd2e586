// Rotary position embeddings on x laid out [token][head][head_dim], ggml's two layouts:
// interleaved pairs (x[2i], x[2i+1]) and halves (x[i], x[i + rope_dim/2]). Token t is at
// position pos[t]; theta_i = pos · freq_scale · base^(−2i/rope_dim). One thread per pair.
// rope_f32 rotates queries in place; rope_kv_write rotates keys on their way into the paged
// f16 KV pool and writes the values beside them (one launch instead of three).
#include <cuda_fp16.h>

struct rope_args { int tokens, heads, head_dim, rope_dim; float base, freq_scale; int halves; };

// Rotate pair p of one head (`h`, its position `pos`) into y[a], y[b]; returns the indices.
__device__ __forceinline__ void rope_pair(const float* h, int pos, int p, const rope_args& r, float* y0, float* y1,
                                          int* a, int* b) {
    const int pairs = r.rope_dim / 2;
    const float theta = (float)pos * r.freq_scale * powf(r.base, -2.0f * (float)p / (float)r.rope_dim);
    float s, c;
    sincosf(theta, &s, &c);
    *a = r.halves ? p : 2 * p;
    *b = r.halves ? p + pairs : 2 * p + 1;
    const float x0 = h[*a], x1 = h[*b];
    *y0 = x0 * c - x1 * s;
    *y1 = x0 * s + x1 * c;
}

extern "C" __global__ void rope_f32(float* __restrict__ x, const int* __restrict__ pos, rope_args r) {
    const int pairs = r.rope_dim / 2;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)r.tokens * r.heads * pairs) return;
    const long long th = i / pairs;  // token · heads + head
    float* h = x + th * r.head_dim;
    float y0, y1;
    int a, b;
    rope_pair(h, pos[th / r.heads], (int)(i % pairs), r, &y0, &y1, &a, &b);
    h[a] = y0;
    h[b] = y1;
}

// k, v: [token][n_kv_head][head_dim] (r.heads = n_kv_head); slots[t] = block · 64 + offset of
// token t's position. One thread per element pair 2p, 2p+1 of a head: pairs below rope_dim / 2
// are rotated (in the layout's pairing), the rest copied (2p, 2p + 1 in both layouts).
extern "C" __global__ void rope_kv_write(const float* __restrict__ k, const float* __restrict__ v,
                                         const int* __restrict__ pos, const int* __restrict__ slots,
                                         __half* __restrict__ k_pool, __half* __restrict__ v_pool, rope_args r) {
    const int half_dim = r.head_dim / 2;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)r.tokens * r.heads * half_dim) return;
    const int p = (int)(i % half_dim);
    const long long th = i / half_dim;
    const int t = (int)(th / r.heads), head = (int)(th % r.heads);
    const float* kh = k + th * r.head_dim;
    const float* vh = v + th * r.head_dim;
    const long long block = slots[t] / 64, offset = slots[t] % 64;
    const long long base = ((block * r.heads + head) * 64 + offset) * r.head_dim;
    float y0, y1;
    int a = 2 * p, b = 2 * p + 1;
    if (p < r.rope_dim / 2) {
        rope_pair(kh, pos[t], p, r, &y0, &y1, &a, &b);
    } else {
        y0 = kh[a];
        y1 = kh[b];
    }
    k_pool[base + a] = __float2half_rn(y0);
    k_pool[base + b] = __float2half_rn(y1);
    v_pool[base + 2 * p] = __float2half_rn(vh[2 * p]);
    v_pool[base + 2 * p + 1] = __float2half_rn(vh[2 * p + 1]);
}
