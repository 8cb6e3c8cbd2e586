// kernels/metal run on the host (metal_host.h over kernels/cuda/tests/emulate.h) beside their
// CUDA namesakes, which the CUDA host tests check against Ward's CPU reference: the matmuls and
// the byte-level kernels must give the CUDA kernels' bits, the reductions (whose order differs:
// SIMD sums against warp butterflies) their values. Run by crates/kernels/tests/cuda_on_host.rs;
// exits 1 on any mismatch.
#define WARD_HOST
#include "../../cuda/tests/emulate.h"
#include "../../cuda/activation.cu"
#include "../../cuda/attention.cu"
#include "../../cuda/get_rows.cu"
#include "../../cuda/mmvq.cu"
#include "../../cuda/norm.cu"
#include "../../cuda/quantize.cu"
#include "../../cuda/rope.cu"

#include "metal_host.h"
namespace mk {
#include "../matmul.metal"
#include "../forward.metal"
}  // namespace mk

#include <stdio.h>

#include <random>

static int failures = 0;
static std::mt19937 rng(777);

static std::vector<float> random_vec(size_t n) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
}

// `got` and `want` equal bit for bit (tol < 0) or within tol·(1 + |want|).
template <typename T> static void compare(const char* what, const std::vector<T>& got, const std::vector<T>& want, float tol) {
    int wrong = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        bool ok;
        if constexpr (std::is_same_v<T, float>) {
            ok = tol < 0 ? memcmp(&got[i], &want[i], 4) == 0 : fabsf(got[i] - want[i]) <= tol * (1.0f + fabsf(want[i]));
            if (!ok && wrong < 3) fprintf(stderr, "%s[%zu]: Metal %.9g, CUDA %.9g\n", what, i, got[i], want[i]);
        } else {
            ok = memcmp(&got[i], &want[i], sizeof(T)) == 0;
            if (!ok && wrong < 3) fprintf(stderr, "%s[%zu]: differs\n", what, i);
        }
        wrong += !ok;
    }
    failures += wrong;
    printf("%s: %s (%zu)\n", wrong ? "FAILED" : "ok", what, want.size());
}

// A 1-D dispatch of n threads in threadgroups of `group`: each runs body(gid).
template <typename F> static void dispatch(size_t n, unsigned group, F body) {
    launch(dim3{(unsigned)((n + group - 1) / group)}, group, [&] {
        const size_t gid = (size_t)blockIdx.x * group + threadIdx.x;
        if (gid < n) body((uint)gid);
    });
}

static std::vector<block_q8_1> cuda_quantize(const std::vector<float>& x) {
    std::vector<block_q8_1> out(x.size() / 32);
    const int blocks = (int)out.size();
    launch(dim3{(unsigned)(blocks + 7) / 8}, 256, [&] { quantize_q8_1(x.data(), out.data(), blocks); });
    return out;
}

struct Type { int id; const char* name; int block_bytes, block_len; std::vector<int> f16_at; };

// Random blocks of a type with finite, moderate f16 scales where the format keeps them.
static std::vector<uint8_t> random_blocks(const Type& t, int blocks) {
    std::vector<uint8_t> w((size_t)blocks * t.block_bytes);
    for (uint8_t& b : w) b = (uint8_t)rng();
    std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
    for (int b = 0; b < blocks; ++b)
        for (int at : t.f16_at) {
            const uint16_t h = __half_as_ushort(__float2half_rn(scale(rng)));
            memcpy(&w[(size_t)b * t.block_bytes + at], &h, 2);
        }
    return w;
}

typedef void (*cuda_mmvq)(const uint8_t*, const block_q8_1*, float*, int, long long, int, int);
template <int TYPE> static void metal_mmvq(int ntok, const uint8_t* w, const block_q8_1* x, float* y, const mk::matmul_args& a,
                                          uint row, uint tid) {
    switch (ntok) {
        case 1: mk::mmvq<TYPE, 1>(w, x, y, a, row, tid); break;
        case 3: mk::mmvq<TYPE, 3>(w, x, y, a, row, tid); break;
        case 8: mk::mmvq<TYPE, 8>(w, x, y, a, row, tid); break;
    }
}

template <int TYPE> static void check_type(const Type& t, cuda_mmvq k1, cuda_mmvq k3, cuda_mmvq k8,
                                           void (*cuda_get_rows)(const uint8_t*, const int*, float*, int, int, long long)) {
    const int rows = 5, blocks_per_row = t.block_len == 32 ? 11 : 3, cols = blocks_per_row * t.block_len;
    const long long row_bytes = (long long)blocks_per_row * t.block_bytes;
    const std::vector<uint8_t> w = random_blocks(t, rows * blocks_per_row);
    const int sub_blocks = cols / 32;
    const mk::matmul_args a{row_bytes, sub_blocks, rows};
    for (int ntok : {1, 3, 8}) {
        const std::vector<block_q8_1> x = cuda_quantize(random_vec((size_t)ntok * cols));
        std::vector<float> want((size_t)ntok * rows), got((size_t)ntok * rows);
        cuda_mmvq k = ntok == 1 ? k1 : ntok == 3 ? k3 : k8;
        launch(dim3{(unsigned)rows}, MMVQ_THREADS, [&] { k(w.data(), x.data(), want.data(), sub_blocks, row_bytes, rows, ntok); });
        launch(dim3{(unsigned)rows}, MMVQ_THREADS,
               [&] { metal_mmvq<TYPE>(ntok, w.data(), x.data(), got.data(), a, blockIdx.x, threadIdx.x); });
        char what[64];
        snprintf(what, sizeof what, "mmvq %s × %d tokens, bits", t.name, ntok);
        compare(what, got, want, -1.0f);
    }
    const std::vector<int> ids = {4, 0, 4, 2};
    std::vector<float> want(ids.size() * cols), got(ids.size() * cols);
    const size_t n = ids.size() * sub_blocks;
    launch(dim3{(unsigned)(n + 255) / 256}, 256,
           [&] { cuda_get_rows(w.data(), ids.data(), want.data(), (int)ids.size(), sub_blocks, row_bytes); });
    const mk::rows_args ra{row_bytes, (int)ids.size(), sub_blocks};
    dispatch(n, 256, [&](uint gid) { mk::get_rows<TYPE>(w.data(), ids.data(), got.data(), ra, gid); });
    char what[64];
    snprintf(what, sizeof what, "get_rows %s, bits", t.name);
    compare(what, got, want, -1.0f);
}

static void check_forward() {
    const std::vector<float> x = random_vec(32 * 45);
    const int blocks = 45;
    std::vector<block_q8_1> got(blocks);
    dispatch(x.size(), 256, [&](uint gid) { mk::quantize_q8_1(x.data(), got.data(), blocks, gid); });
    compare("quantize_q8_1, bytes", got, cuda_quantize(x), 0);

    for (int n : {64, 576}) {
        const int rows = 3;
        const std::vector<float> xs = random_vec((size_t)rows * n), w = random_vec(n);
        std::vector<float> want((size_t)rows * n), mine((size_t)rows * n);
        const float eps = 1e-6f;
        launch(dim3{(unsigned)rows}, 256, [&] { rms_norm_f32(xs.data(), w.data(), want.data(), n, eps); });
        launch(dim3{(unsigned)rows}, 256, [&] { mk::rms_norm_f32(xs.data(), w.data(), mine.data(), n, eps, blockIdx.x, threadIdx.x, 256); });
        compare("rms_norm_f32", mine, want, 1e-6f);
        std::vector<block_q8_1> q((size_t)rows * n / 32);
        launch(dim3{(unsigned)rows}, 256, [&] { mk::rms_norm_q8_1(xs.data(), w.data(), q.data(), n, eps, blockIdx.x, threadIdx.x, 256); });
        compare("rms_norm_q8_1 = its own rms_norm_f32, quantized: bytes", q, cuda_quantize(mine), 0);
    }

    const std::vector<float> g = random_vec(32 * 13), u = random_vec(32 * 13);
    std::vector<block_q8_1> want(13), mine(13);
    launch(dim3{2}, 256, [&] { silu_mul_q8_1(g.data(), u.data(), want.data(), 13); });
    dispatch(g.size(), 256, [&](uint gid) { mk::silu_mul_q8_1(g.data(), u.data(), mine.data(), 13, gid); });
    compare("silu_mul_q8_1, bytes", mine, want, 0);
    launch(dim3{2}, 256, [&] { gelu_mul_q8_1(g.data(), u.data(), want.data(), 13); });
    dispatch(g.size(), 256, [&](uint gid) { mk::gelu_mul_q8_1(g.data(), u.data(), mine.data(), 13, gid); });
    compare("gelu_mul_q8_1, bytes", mine, want, 0);
}

static void check_rope() {
    const int tokens = 3, heads = 2, head_dim = 64;
    const int pos[tokens] = {1000, 3, 70}, slots[tokens] = {5 * 64 + 63, 2 * 64, 7};
    for (int halves = 0; halves < 2; ++halves) {
        const rope_args r{tokens, heads, head_dim, halves ? 32 : 64, 10000.0f, 0.5f, halves};
        const mk::rope_args mr{tokens, heads, head_dim, halves ? 32 : 64, 10000.0f, 0.5f, halves};
        const std::vector<float> q0 = random_vec((size_t)tokens * heads * head_dim);
        std::vector<float> want = q0, mine = q0;
        const size_t pairs = (size_t)tokens * heads * r.rope_dim / 2;
        launch(dim3{(unsigned)(pairs + 255) / 256}, 256, [&] { rope_f32(want.data(), pos, r); });
        dispatch(pairs, 256, [&](uint gid) { mk::rope_f32(mine.data(), pos, mr, gid); });
        compare(halves ? "rope_f32 halves" : "rope_f32 interleaved", mine, want, 1e-6f);
        const std::vector<float> k = random_vec(q0.size()), v = random_vec(q0.size());
        std::vector<__half> kw(8 * heads * 64 * head_dim), vw(kw.size());
        std::vector<half> km(kw.size()), vm(kw.size());
        launch(dim3{(unsigned)(q0.size() / 2 + 255) / 256}, 256,
               [&] { rope_kv_write(k.data(), v.data(), pos, slots, kw.data(), vw.data(), r); });
        dispatch(q0.size() / 2, 256, [&](uint gid) { mk::rope_kv_write(k.data(), v.data(), pos, slots, km.data(), vm.data(), mr, gid); });
        std::vector<float> kwf, kmf, vwf, vmf;
        for (size_t i = 0; i < kw.size(); ++i) {
            kwf.push_back(__half2float(kw[i]));
            kmf.push_back((float)km[i]);
            vwf.push_back(__half2float(vw[i]));
            vmf.push_back((float)vm[i]);
        }
        compare("rope_kv_write keys", kmf, kwf, 1e-3f);
        compare("rope_kv_write values, bits", vmf, vwf, -1.0f);
    }
}

static void check_attention(int n_head, int n_kv_head, int head_dim, std::vector<int> lens, int window) {
    const int seqs = (int)lens.size(), max_len = *std::max_element(lens.begin(), lens.end());
    const int max_blocks = (max_len + 63) / 64 + 2, total = seqs * max_blocks, chunks = max_blocks * 64 / 128;
    std::vector<int> tables(total);
    for (int i = 0; i < total; ++i) tables[i] = total - 1 - i;
    const size_t pool = (size_t)total * n_kv_head * 64 * head_dim;
    const std::vector<float> kf = random_vec(pool), vf = random_vec(pool), q = random_vec((size_t)seqs * n_head * head_dim);
    std::vector<__half> k(pool), v(pool);
    std::vector<half> km(pool), vm(pool);
    for (size_t i = 0; i < pool; ++i) {
        k[i] = __float2half_rn(kf[i]);
        v[i] = __float2half_rn(vf[i]);
        km[i] = (half)kf[i];
        vm[i] = (half)vf[i];
    }
    const float scale = 1.0f / sqrtf((float)head_dim);
    const size_t parts = (size_t)seqs * n_head * chunks;
    std::vector<float> o(parts * head_dim), ml(parts * 2), want((size_t)seqs * n_head * head_dim), mine(want.size());
    launch(dim3{(unsigned)chunks, (unsigned)n_kv_head, (unsigned)seqs}, 128, [&] {
        attn_decode_partial(q.data(), k.data(), v.data(), tables.data(), lens.data(), o.data(), ml.data(), n_head, n_kv_head,
                            head_dim, max_blocks, chunks, window, scale);
    });
    const unsigned merge = std::min((head_dim + 31) / 32 * 32, 256);
    launch(dim3{(unsigned)n_head, (unsigned)seqs}, merge,
           [&] { attn_decode_merge(o.data(), ml.data(), want.data(), n_head, head_dim, chunks); });
    const mk::attn_args a{n_head, n_kv_head, head_dim, max_blocks, chunks, window, scale};
    launch(dim3{(unsigned)chunks, (unsigned)n_kv_head, (unsigned)seqs}, 128, [&] {
        mk::attn_decode_partial(q.data(), km.data(), vm.data(), tables.data(), lens.data(), o.data(), ml.data(), a,
                                uint3{blockIdx.x, blockIdx.y, blockIdx.z}, threadIdx.x);
    });
    launch(dim3{(unsigned)n_head, (unsigned)seqs}, merge,
           [&] { mk::attn_decode_merge(o.data(), ml.data(), mine.data(), a, uint2{blockIdx.x, blockIdx.y}, threadIdx.x, merge); });
    char what[96];
    snprintf(what, sizeof what, "attention %d/%d heads × %d, longest %d, window %d", n_head, n_kv_head, head_dim, max_len, window);
    compare(what, mine, want, 1e-5f);
}

int main(int, char**) {  // the case file it is given is empty
    check_type<GGML_Q4_0>({2, "Q4_0", 18, 32, {0}}, mmvq_q4_0_1, mmvq_q4_0_3, mmvq_q4_0_8, get_rows_q4_0);
    check_type<GGML_Q4_1>({3, "Q4_1", 20, 32, {0, 2}}, mmvq_q4_1_1, mmvq_q4_1_3, mmvq_q4_1_8, get_rows_q4_1);
    check_type<GGML_Q5_0>({6, "Q5_0", 22, 32, {0}}, mmvq_q5_0_1, mmvq_q5_0_3, mmvq_q5_0_8, get_rows_q5_0);
    check_type<GGML_Q5_1>({7, "Q5_1", 24, 32, {0, 2}}, mmvq_q5_1_1, mmvq_q5_1_3, mmvq_q5_1_8, get_rows_q5_1);
    check_type<GGML_Q8_0>({8, "Q8_0", 34, 32, {0}}, mmvq_q8_0_1, mmvq_q8_0_3, mmvq_q8_0_8, get_rows_q8_0);
    check_type<GGML_Q2_K>({10, "Q2_K", 84, 256, {80, 82}}, mmvq_q2_K_1, mmvq_q2_K_3, mmvq_q2_K_8, get_rows_q2_K);
    check_type<GGML_Q3_K>({11, "Q3_K", 110, 256, {108}}, mmvq_q3_K_1, mmvq_q3_K_3, mmvq_q3_K_8, get_rows_q3_K);
    check_type<GGML_Q4_K>({12, "Q4_K", 144, 256, {0, 2}}, mmvq_q4_K_1, mmvq_q4_K_3, mmvq_q4_K_8, get_rows_q4_K);
    check_type<GGML_Q5_K>({13, "Q5_K", 176, 256, {0, 2}}, mmvq_q5_K_1, mmvq_q5_K_3, mmvq_q5_K_8, get_rows_q5_K);
    check_type<GGML_Q6_K>({14, "Q6_K", 210, 256, {208}}, mmvq_q6_K_1, mmvq_q6_K_3, mmvq_q6_K_8, get_rows_q6_K);
    check_forward();
    check_rope();
    check_attention(9, 3, 64, {300, 7}, 0);
    check_attention(4, 1, 256, {700}, 512);
    printf("%d mismatches\n", failures);
    return failures ? 1 : 0;
}
