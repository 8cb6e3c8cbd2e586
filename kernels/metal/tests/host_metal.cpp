// kernels/metal run on the host (metal_host.h over kernels/cuda/tests/emulate.h) beside their
// CUDA namesakes, which the CUDA host tests check against Ward's CPU reference: the matmuls and
// the byte-level kernels must give the CUDA kernels' bits, the reductions (whose order differs:
// SIMD sums against warp butterflies) their values. Run by crates/kernels/tests/cuda_on_host.rs
// on the matmul cases of cuda/tests/cases.h (their weights and activations; the other kernels
// on data of its own); exits 1 on any mismatch.
#define WARD_HOST
#include "../../cuda/tests/emulate.h"
#include "../../cuda/activation.cu"
#include "../../cuda/attention.cu"
#include "../../cuda/get_rows.cu"
#include "../../cuda/mmvq.cu"
#include "../../cuda/norm.cu"
#include "../../cuda/quantize.cu"
#include "../../cuda/rope.cu"
#include "../../cuda/tests/cases.h"

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

// A case's tokens 8 at a time through CUDA's and Metal's mmvq (bits must agree), and rows of
// its weights through both get_rows.
template <int TYPE> static void check_case(const MatmulCase& c) {
    std::vector<float> want(c.want.size()), got(c.want.size());
    const mk::matmul_args a{c.row_bytes, c.sub_blocks, c.rows};
    for (int t0 = 0; t0 < c.tokens; t0 += 8) {
        with_tokens(min(8, c.tokens - t0), [&]<int N>() {
            const block_q8_1* x = &c.x[(size_t)t0 * c.sub_blocks];
            const size_t y = (size_t)t0 * c.rows;
            launch(dim3{(unsigned)c.rows}, MMVQ_THREADS,
                   [&] { mmvq<TYPE, N>(c.w.data(), x, &want[y], c.sub_blocks, c.row_bytes, c.rows); });
            launch(dim3{(unsigned)c.rows}, MMVQ_THREADS,
                   [&] { mk::mmvq<TYPE, N>(c.w.data(), x, &got[y], a, blockIdx.x, threadIdx.x); });
        });
    }
    char what[96];
    snprintf(what, sizeof what, "mmvq, ggml type %u, %d×%d × %d tokens, bits", c.type, c.rows, c.cols, c.tokens);
    compare(what, got, want, -1.0f);
    std::vector<int> ids;
    for (int r = c.rows - 1; r >= 0; r -= 2) ids.push_back(r);
    ids.push_back(0);
    const size_t n = ids.size() * c.sub_blocks;
    std::vector<float> rows_want(n * 32), rows_got(n * 32);
    launch(dim3{(unsigned)(n + 255) / 256}, 256,
           [&] { get_rows<TYPE>(c.w.data(), ids.data(), rows_want.data(), (int)ids.size(), c.sub_blocks, c.row_bytes); });
    const mk::rows_args ra{c.row_bytes, (int)ids.size(), c.sub_blocks};
    dispatch(n, 256, [&](uint gid) { mk::get_rows<TYPE>(c.w.data(), ids.data(), rows_got.data(), ra, gid); });
    snprintf(what, sizeof what, "get_rows, ggml type %u, bits", c.type);
    compare(what, rows_got, rows_want, -1.0f);
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

int main(int argc, char** argv) {
    FILE* f = open_cases(argc, argv);
    MatmulCase c;
    while (read_matmul_case(f, &c)) {
        if (!with_type(c.type, [&]<int TYPE>() { check_case<TYPE>(c); })) {
            fprintf(stderr, "no kernels for ggml type %u\n", c.type);
            return 2;
        }
    }
    check_forward();
    check_rope();
    check_attention(9, 3, 64, {300, 7}, 0);
    check_attention(4, 1, 256, {700}, 512);
    printf("%d mismatches\n", failures);
    return failures ? 1 : 0;
}
