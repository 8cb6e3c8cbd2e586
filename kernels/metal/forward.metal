// The forward pass's other kernels on Apple GPUs, each the Metal form of its CUDA namesake in
// kernels/cuda (the same arithmetic on the same layouts; shapes in a constant struct): Q8_1
// quantization (quantize.cu, include/q8_1.cuh), RMSNorm plain and into Q8_1 (norm.cu), the gated
// activations into Q8_1 (activation.cu), RoPE and RoPE + KV-pool write (rope.cu), split-KV paged
// decode attention (attention.cu), embedding rows (get_rows.cu), residual add and scaling
// (elementwise.cu). A SIMD group is 32 threads, as a CUDA warp.
#include "../cuda/include/vecdot.cuh"

#ifndef WARD_SHARED
#define WARD_SHARED threadgroup  // a threadgroup's shared array (the host tests make it static)
#endif

#define KV_BLOCK 64
#define ATTN_CHUNK 128
#define MAX_GROUP 16
#define MAX_HEAD_DIM 256

// One SIMD group quantizes 32 values (lane i holds value i) into a Q8_1 block.
static inline void quantize_block_q8_1(float v, device block_q8_1* out, uint lane) {
    const float amax = simd_max(fabs(v));
    const float d = amax / 127.0f;
    const int q = amax == 0.0f ? 0 : (int)rint(v * (127.0f / amax));
    const int sum = (int)simd_sum((float)q);  // |Σq| ≤ 32·127: exact in f32
    out->qs[lane] = (int8_t)q;
    if (lane == 0) {
        out->d = as_type<uint16_t>(half(d));
        out->s = as_type<uint16_t>(half(d * (float)sum));
    }
}

// Sum over the threadgroup (`threads` a multiple of 32, at most 1024); every thread gets it.
static inline float group_sum(float v, threadgroup float* scratch, uint tid, uint threads) {
    v = simd_sum(v);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid % 32 == 0) scratch[tid / 32] = v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return simd_sum(tid % 32 < threads / 32 ? scratch[tid % 32] : 0.0f);
}

static inline float group_max(float v, threadgroup float* scratch, uint tid, uint threads) {
    v = simd_max(v);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid % 32 == 0) scratch[tid / 32] = v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return simd_max(tid % 32 < threads / 32 ? scratch[tid % 32] : -INFINITY);
}

kernel void quantize_q8_1(device const float* x [[buffer(0)]], device block_q8_1* out [[buffer(1)]],
                          constant int& blocks [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
    const int b = (int)(gid / 32);
    if (b >= blocks) return;
    quantize_block_q8_1(x[gid], out + b, gid % 32);
}

// 1 / sqrt(mean(x²) + eps) of one row, for every thread of the group.
static inline float rms_scale(device const float* xr, int n, float eps, threadgroup float* scratch, uint tid,
                              uint threads) {
    float ss = 0.0f;
    for (int i = (int)tid; i < n; i += (int)threads) ss += xr[i] * xr[i];
    return rsqrt(group_sum(ss, scratch, tid, threads) / (float)n + eps);
}

kernel void rms_norm_f32(device const float* x [[buffer(0)]], device const float* w [[buffer(1)]],
                         device float* y [[buffer(2)]], constant int& n [[buffer(3)]],
                         constant float& eps [[buffer(4)]], uint row [[threadgroup_position_in_grid]],
                         uint tid [[thread_index_in_threadgroup]], uint threads [[threads_per_threadgroup]]) {
    WARD_SHARED float scratch[32];
    device const float* xr = x + (long)row * n;
    device float* yr = y + (long)row * n;
    const float scale = rms_scale(xr, n, eps, scratch, tid, threads);
    for (int i = (int)tid; i < n; i += (int)threads) yr[i] = xr[i] * scale * w[i];
}

kernel void rms_norm_q8_1(device const float* x [[buffer(0)]], device const float* w [[buffer(1)]],
                          device block_q8_1* out [[buffer(2)]], constant int& n [[buffer(3)]],
                          constant float& eps [[buffer(4)]], uint row [[threadgroup_position_in_grid]],
                          uint tid [[thread_index_in_threadgroup]], uint threads [[threads_per_threadgroup]]) {
    WARD_SHARED float scratch[32];
    device const float* xr = x + (long)row * n;
    device block_q8_1* o = out + (long)row * (n / QK);
    const float scale = rms_scale(xr, n, eps, scratch, tid, threads);
    for (int b = (int)(tid / 32); b < n / QK; b += (int)(threads / 32)) {
        const int i = b * QK + (int)(tid % 32);
        quantize_block_q8_1(xr[i] * scale * w[i], o + b, tid % 32);
    }
}

static inline float silu_mul(float g, float u) { return g / (1.0f + exp(-g)) * u; }

static inline float gelu_mul(float g, float u) {
    const float inner = 0.7978845608f * (g + 0.044715f * g * g * g);
    return 0.5f * g * (1.0f + tanh(inner)) * u;
}

kernel void silu_mul_q8_1(device const float* g [[buffer(0)]], device const float* u [[buffer(1)]],
                          device block_q8_1* out [[buffer(2)]], constant int& blocks [[buffer(3)]],
                          uint gid [[thread_position_in_grid]]) {
    if ((int)(gid / 32) >= blocks) return;
    quantize_block_q8_1(silu_mul(g[gid], u[gid]), out + gid / 32, gid % 32);
}

kernel void gelu_mul_q8_1(device const float* g [[buffer(0)]], device const float* u [[buffer(1)]],
                          device block_q8_1* out [[buffer(2)]], constant int& blocks [[buffer(3)]],
                          uint gid [[thread_position_in_grid]]) {
    if ((int)(gid / 32) >= blocks) return;
    quantize_block_q8_1(gelu_mul(g[gid], u[gid]), out + gid / 32, gid % 32);
}

struct rope_args { int tokens, heads, head_dim, rope_dim; float base, freq_scale; int halves; };

// Rotate pair p of one head at position `pos`: the new values and their indices.
static inline void rope_pair(device const float* h, int pos, int p, constant rope_args& r, thread float* y0,
                             thread float* y1, thread int* a, thread int* b) {
    const int pairs = r.rope_dim / 2;
    const float theta = (float)pos * r.freq_scale * pow(r.base, -2.0f * (float)p / (float)r.rope_dim);
    float c;
    const float s = sincos(theta, c);
    *a = r.halves ? p : 2 * p;
    *b = r.halves ? p + pairs : 2 * p + 1;
    const float x0 = h[*a], x1 = h[*b];
    *y0 = x0 * c - x1 * s;
    *y1 = x0 * s + x1 * c;
}

kernel void rope_f32(device float* x [[buffer(0)]], device const int* pos [[buffer(1)]],
                     constant rope_args& r [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
    const int pairs = r.rope_dim / 2;
    if ((long)gid >= (long)r.tokens * r.heads * pairs) return;
    const long th = gid / pairs;  // token · heads + head
    device float* h = x + th * r.head_dim;
    float y0, y1;
    int a, b;
    rope_pair(h, pos[th / r.heads], (int)(gid % pairs), r, &y0, &y1, &a, &b);
    h[a] = y0;
    h[b] = y1;
}

kernel void rope_kv_write(device const float* k [[buffer(0)]], device const float* v [[buffer(1)]],
                          device const int* pos [[buffer(2)]], device const int* slots [[buffer(3)]],
                          device half* k_pool [[buffer(4)]], device half* v_pool [[buffer(5)]],
                          constant rope_args& r [[buffer(6)]], uint gid [[thread_position_in_grid]]) {
    const int half_dim = r.head_dim / 2;
    if ((long)gid >= (long)r.tokens * r.heads * half_dim) return;
    const int p = (int)(gid % half_dim);
    const long th = gid / half_dim;
    const int t = (int)(th / r.heads), head = (int)(th % r.heads);
    device const float* kh = k + th * r.head_dim;
    device const float* vh = v + th * r.head_dim;
    const long block = slots[t] / KV_BLOCK, offset = slots[t] % KV_BLOCK;
    const long base = ((block * r.heads + head) * KV_BLOCK + offset) * r.head_dim;
    float y0, y1;
    int a = 2 * p, b = 2 * p + 1;
    if (p < r.rope_dim / 2) {
        rope_pair(kh, pos[t], p, r, &y0, &y1, &a, &b);
    } else {
        y0 = kh[a];
        y1 = kh[b];
    }
    k_pool[base + a] = half(y0);
    k_pool[base + b] = half(y1);
    v_pool[base + 2 * p] = half(vh[2 * p]);
    v_pool[base + 2 * p + 1] = half(vh[2 * p + 1]);
}

struct attn_args { int n_head, n_kv_head, head_dim, max_blocks, chunks, window; float scale; };

// Threadgroup (chunk of 128 positions, KV head, sequence), 128 threads: the chunk's max score
// m, Σexp(score − m) l and exp-weighted sum of V for each query head of the KV head's group.
kernel void attn_decode_partial(device const float* q [[buffer(0)]], device const half* k_pool [[buffer(1)]],
                                device const half* v_pool [[buffer(2)]], device const int* tables [[buffer(3)]],
                                device const int* lens [[buffer(4)]], device float* o_part [[buffer(5)]],
                                device float* ml_part [[buffer(6)]], constant attn_args& a [[buffer(7)]],
                                uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]) {
    WARD_SHARED float qs[MAX_GROUP][MAX_HEAD_DIM];
    WARD_SHARED float prob[MAX_GROUP][ATTN_CHUNK];
    WARD_SHARED float scratch[32];
    const int chunk = (int)tg.x, kvh = (int)tg.y, seq = (int)tg.z;
    const int group = a.n_head / a.n_kv_head, len = lens[seq], head_dim = a.head_dim;
    const int first = a.window > 0 && len > a.window ? len - a.window : 0;
    const int p0 = chunk * ATTN_CHUNK, p = p0 + (int)tid;
    for (int i = (int)tid; i < group * head_dim; i += ATTN_CHUNK)
        qs[i / head_dim][i % head_dim] = q[((long)seq * a.n_head + kvh * group + i / head_dim) * head_dim + i % head_dim];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    device const int* table = tables + (long)seq * a.max_blocks;
    const bool live = p < len && p >= first;
    const long row = live ? (((long)table[p / KV_BLOCK] * a.n_kv_head + kvh) * KV_BLOCK + p % KV_BLOCK) * head_dim : 0;
    for (int g = 0; g < group; ++g) {
        float s = -INFINITY;
        if (live) {
            s = 0.0f;
            for (int d = 0; d < head_dim; ++d) s += (float)k_pool[row + d] * qs[g][d];
            s *= a.scale;
        }
        const float m = group_max(s, scratch, tid, ATTN_CHUNK);
        const float e = live ? exp(s - m) : 0.0f;
        const float l = group_sum(e, scratch, tid, ATTN_CHUNK);
        prob[g][tid] = e;
        if (tid == 0) {
            device float* ml = ml_part + (((long)seq * a.n_head + kvh * group + g) * a.chunks + chunk) * 2;
            ml[0] = m;
            ml[1] = l;
        }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    const int end = min(ATTN_CHUNK, len - p0);
    for (int d = (int)tid; d < head_dim; d += ATTN_CHUNK) {
        float acc[MAX_GROUP];
        for (int g = 0; g < group; ++g) acc[g] = 0.0f;
        for (int j = max(0, first - p0); j < end; ++j) {
            const int pj = p0 + j;
            const long vrow = (((long)table[pj / KV_BLOCK] * a.n_kv_head + kvh) * KV_BLOCK + pj % KV_BLOCK) * head_dim;
            const float vv = (float)v_pool[vrow + d];
            for (int g = 0; g < group; ++g) acc[g] += prob[g][j] * vv;
        }
        for (int g = 0; g < group; ++g)
            o_part[(((long)seq * a.n_head + kvh * group + g) * a.chunks + chunk) * head_dim + d] = acc[g];
    }
}

// out[seq][head] = Σ_c e^(m_c − M)·o_c / Σ_c e^(m_c − M)·l_c, chunks in order (empty ones add
// nothing). Threadgroup (head, sequence).
kernel void attn_decode_merge(device const float* o_part [[buffer(0)]], device const float* ml_part [[buffer(1)]],
                              device float* out [[buffer(2)]], constant attn_args& a [[buffer(3)]],
                              uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                              uint threads [[threads_per_threadgroup]]) {
    const long base = (long)tg.y * a.n_head + tg.x;
    device const float* ml = ml_part + base * a.chunks * 2;
    float m = -INFINITY;
    for (int c = 0; c < a.chunks; ++c)
        if (ml[2 * c + 1] > 0.0f) m = fmax(m, ml[2 * c]);
    float l = 0.0f;
    for (int c = 0; c < a.chunks; ++c)
        if (ml[2 * c + 1] > 0.0f) l += exp(ml[2 * c] - m) * ml[2 * c + 1];
    for (int d = (int)tid; d < a.head_dim; d += (int)threads) {
        float acc = 0.0f;
        for (int c = 0; c < a.chunks; ++c)
            if (ml[2 * c + 1] > 0.0f) acc += exp(ml[2 * c] - m) * o_part[(base * a.chunks + c) * a.head_dim + d];
        out[base * a.head_dim + d] = l > 0.0f ? acc / l : 0.0f;
    }
}

struct rows_args { long row_bytes; int n, sub_blocks; };

// Rows `ids` of a weight matrix as f32, a thread per 32-value sub-block.
template <int TYPE>
kernel void get_rows(device const uint8_t* w [[buffer(0)]], device const int* ids [[buffer(1)]],
                     device float* out [[buffer(2)]], constant rows_args& a [[buffer(3)]],
                     uint gid [[thread_position_in_grid]]) {
    if ((long)gid >= (long)a.n * a.sub_blocks) return;
    const int t = (int)(gid / a.sub_blocks), sb = (int)(gid % a.sub_blocks);
    int q[8];
    wscale ws;
    decode<TYPE>(w + (long)ids[t] * a.row_bytes, sb, q, &ws);
    dequantize(q, ws, out + (long)gid * 32);
}

kernel void add_f32(device float* x [[buffer(0)]], device const float* y [[buffer(1)]],
                    constant long& n [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
    if ((long)gid < n) x[gid] += y[gid];
}

kernel void scale_f32(device float* x [[buffer(0)]], constant float& s [[buffer(1)]],
                      constant long& n [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
    if ((long)gid < n) x[gid] *= s;
}

#ifdef __METAL_VERSION__
typedef decltype(get_rows<GGML_Q4_0>) get_rows_t;
template [[host_name("get_rows_q4_0")]] kernel get_rows_t get_rows<GGML_Q4_0>;
template [[host_name("get_rows_q4_1")]] kernel get_rows_t get_rows<GGML_Q4_1>;
template [[host_name("get_rows_q5_0")]] kernel get_rows_t get_rows<GGML_Q5_0>;
template [[host_name("get_rows_q5_1")]] kernel get_rows_t get_rows<GGML_Q5_1>;
template [[host_name("get_rows_q8_0")]] kernel get_rows_t get_rows<GGML_Q8_0>;
template [[host_name("get_rows_q2_K")]] kernel get_rows_t get_rows<GGML_Q2_K>;
template [[host_name("get_rows_q3_K")]] kernel get_rows_t get_rows<GGML_Q3_K>;
template [[host_name("get_rows_q4_K")]] kernel get_rows_t get_rows<GGML_Q4_K>;
template [[host_name("get_rows_q5_K")]] kernel get_rows_t get_rows<GGML_Q5_K>;
template [[host_name("get_rows_q6_K")]] kernel get_rows_t get_rows<GGML_Q6_K>;
#endif
