// The forward pass's other CUDA kernels run on the host through tests/emulate.h, against plain
// loops on random data: Q8_1 quantization, RMSNorm (fused into Q8_1 and not), the gated
// activations into Q8_1, RoPE (queries in place, keys on their way into the KV pool) and the
// split-KV paged decode attention. Run by crates/kernels/tests/cuda_on_host.rs; prints a
// line per kernel and exits 1 on any mismatch.
#define WARD_HOST
#include "emulate.h"
#include "../activation.cu"
#include "../attention.cu"
#include "../norm.cu"
#include "../quantize.cu"
#include "../rope.cu"

#include <stdio.h>

#include <random>

static int failures = 0;
static std::mt19937 rng(12345);

static std::vector<float> random_vec(size_t n, float scale = 1.0f) {
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
}

static void check(bool ok, const char* what, size_t i, double got, double want) {
    if (!ok && failures++ < 10) fprintf(stderr, "%s[%zu]: kernel %.9g, reference %.9g\n", what, i, got, want);
}

// A line per kernel check: ok, or how many values were wrong.
static void report(const char* what, int failures_before, size_t n) {
    if (failures == failures_before) printf("ok: %s (%zu)\n", what, n);
    else printf("FAILED: %s (%d of %zu wrong)\n", what, failures - failures_before, n);
}

static void close(const char* what, const std::vector<float>& got, const std::vector<float>& want, float tol) {
    const int before = failures;
    for (size_t i = 0; i < want.size(); ++i)
        check(fabsf(got[i] - want[i]) <= tol * (1.0f + fabsf(want[i])), what, i, got[i], want[i]);
    report(what, before, want.size());
}

static float f16_round(float v) { return __half2float(__float2half_rn(v)); }

// Dequantized Q8_1 blocks within one quantization step (max|x| / 127 of the block) of `want`.
static void q8_1_close(const char* what, const std::vector<block_q8_1>& blocks, const std::vector<float>& want) {
    const int before = failures;
    for (size_t b = 0; b < blocks.size(); ++b) {
        float amax = 0.0f;
        for (int i = 0; i < 32; ++i) amax = fmaxf(amax, fabsf(want[b * 32 + i]));
        const float d = h2f(blocks[b].d);
        for (int i = 0; i < 32; ++i) {
            const float got = d * (float)blocks[b].qs[i], w = want[b * 32 + i];
            check(fabsf(got - w) <= amax / 127.0f + 1e-5f, what, b * 32 + i, got, w);
        }
    }
    report(what, before, blocks.size());
}

static std::vector<block_q8_1> quantize(const std::vector<float>& x) {
    std::vector<block_q8_1> out(x.size() / 32);
    const int blocks = (int)out.size();
    launch(dim3{(unsigned)(blocks + 7) / 8}, 256, [&] { quantize_q8_1(x.data(), out.data(), blocks); });
    return out;
}

static void test_quantize_and_norms() {
    // Quantization: the exact bytes of the formula.
    const std::vector<float> x = random_vec(32 * 37);
    const std::vector<block_q8_1> q = quantize(x);
    int before = failures;
    for (size_t b = 0; b < q.size(); ++b) {
        float amax = 0.0f;
        for (int i = 0; i < 32; ++i) amax = fmaxf(amax, fabsf(x[b * 32 + i]));
        for (int i = 0; i < 32; ++i) {
            const int want = amax == 0.0f ? 0 : (int)nearbyintf(x[b * 32 + i] * (127.0f / amax));
            check(q[b].qs[i] == want, "quantize_q8_1", b * 32 + i, q[b].qs[i], want);
        }
        check(q[b].d == __half_as_ushort(__float2half_rn(amax / 127.0f)), "quantize_q8_1 d", b, q[b].d, 0);
    }
    report("quantize_q8_1, bytes", before, q.size());
    for (int n : {64, 576, 1024}) {
        const int rows = 3;
        const std::vector<float> xs = random_vec((size_t)rows * n), w = random_vec(n);
        std::vector<float> y((size_t)rows * n), want((size_t)rows * n);
        for (int r = 0; r < rows; ++r) {
            double ss = 0;
            for (int i = 0; i < n; ++i) ss += (double)xs[r * n + i] * xs[r * n + i];
            const float scale = (float)(1.0 / sqrt(ss / n + 1e-6));
            for (int i = 0; i < n; ++i) want[r * n + i] = xs[r * n + i] * scale * w[i];
        }
        launch(dim3{(unsigned)rows}, 256, [&] { rms_norm_f32(xs.data(), w.data(), y.data(), n, 1e-6f); });
        close("rms_norm_f32", y, want, 1e-5f);
        std::vector<block_q8_1> fused((size_t)rows * n / 32);
        launch(dim3{(unsigned)rows}, 256, [&] { rms_norm_q8_1(xs.data(), w.data(), fused.data(), n, 1e-6f); });
        const std::vector<block_q8_1> unfused = quantize(y);
        before = failures;
        check(memcmp(fused.data(), unfused.data(), fused.size() * sizeof(block_q8_1)) == 0,
              "rms_norm_q8_1 = quantize(rms_norm_f32), bytes", n, 0, 0);
        report("rms_norm_q8_1: the bytes of rms_norm_f32 then quantize_q8_1, blocks", before, fused.size());
    }
}

static void test_activations() {
    const int n = 32 * 21;
    const std::vector<float> g = random_vec(n, 2.0f), u = random_vec(n);
    std::vector<float> silu(n), gelu(n);
    for (int i = 0; i < n; ++i) {
        silu[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
        gelu[i] = 0.5f * g[i] * (1.0f + tanhf(0.7978845608f * (g[i] + 0.044715f * g[i] * g[i] * g[i]))) * u[i];
    }
    std::vector<block_q8_1> out(n / 32);
    launch(dim3{(unsigned)(n / 32 + 7) / 8}, 256, [&] { silu_mul_q8_1(g.data(), u.data(), out.data(), n / 32); });
    q8_1_close("silu_mul_q8_1", out, silu);
    launch(dim3{(unsigned)(n / 32 + 7) / 8}, 256, [&] { gelu_mul_q8_1(g.data(), u.data(), out.data(), n / 32); });
    q8_1_close("gelu_mul_q8_1", out, gelu);
}

// Plain RoPE of one head: pairs (2i, 2i+1) or (i, i + rope_dim/2) for i < rope_dim/2.
static void rope_head(float* h, int pos, const rope_args& r) {
    const int pairs = r.rope_dim / 2;
    for (int i = 0; i < pairs; ++i) {
        const double theta = pos * (double)r.freq_scale * pow((double)r.base, -2.0 * i / r.rope_dim);
        const int a = r.halves ? i : 2 * i, b = r.halves ? i + pairs : 2 * i + 1;
        const double x0 = h[a], x1 = h[b];
        h[a] = (float)(x0 * cos(theta) - x1 * sin(theta));
        h[b] = (float)(x0 * sin(theta) + x1 * cos(theta));
    }
}

static void test_rope() {
    const int tokens = 3, heads = 2, head_dim = 64;
    const int pos[tokens] = {1000, 3, 70}, slots[tokens] = {5 * 64 + 63, 2 * 64, 7};
    for (int halves = 0; halves < 2; ++halves) {
        const rope_args r{tokens, heads, head_dim, halves ? 32 : 64, 10000.0f, 0.5f, halves};
        std::vector<float> q = random_vec((size_t)tokens * heads * head_dim), want_q = q;
        for (int t = 0; t < tokens; ++t)
            for (int h = 0; h < heads; ++h) rope_head(&want_q[(t * heads + h) * head_dim], pos[t], r);
        launch(dim3{(unsigned)(tokens * heads * r.rope_dim / 2 + 255) / 256}, 256, [&] { rope_f32(q.data(), pos, r); });
        close(halves ? "rope_f32 halves, rotary part 32 of 64" : "rope_f32 interleaved", q, want_q, 2e-4f);

        const std::vector<float> k = random_vec(q.size()), v = random_vec(q.size());
        std::vector<__half> k_pool(8 * heads * 64 * head_dim), v_pool(k_pool.size());
        launch(dim3{(unsigned)(q.size() / 2 + 255) / 256}, 256,
               [&] { rope_kv_write(k.data(), v.data(), pos, slots, k_pool.data(), v_pool.data(), r); });
        std::vector<float> got_k, want_k, got_v, want_v;
        for (int t = 0; t < tokens; ++t) {
            for (int h = 0; h < heads; ++h) {
                std::vector<float> kh(&k[(t * heads + h) * head_dim], &k[(t * heads + h + 1) * head_dim]);
                rope_head(kh.data(), pos[t], r);
                const size_t at = ((size_t)(slots[t] / 64 * heads + h) * 64 + slots[t] % 64) * head_dim;
                for (int d = 0; d < head_dim; ++d) {
                    got_k.push_back(__half2float(k_pool[at + d]));
                    want_k.push_back(kh[d]);
                    got_v.push_back(__half2float(v_pool[at + d]));
                    want_v.push_back(f16_round(v[(t * heads + h) * head_dim + d]));
                }
            }
        }
        close(halves ? "rope_kv_write keys, halves" : "rope_kv_write keys, interleaved", got_k, want_k, 2e-3f);
        close("rope_kv_write values", got_v, want_v, 0.0f);
    }
}

// Plain softmax attention of one query head over positions [first, len) of a sequence.
static void attention_case(int n_head, int n_kv_head, int head_dim, std::vector<int> lens, int window) {
    const int seqs = (int)lens.size(), max_len = *std::max_element(lens.begin(), lens.end());
    const int max_blocks = (max_len + 63) / 64 + 3;  // spare columns: the launch below has empty chunks
    const int total_blocks = seqs * max_blocks, group = n_head / n_kv_head;
    std::vector<int> tables(total_blocks);
    for (int i = 0; i < total_blocks; ++i) tables[i] = total_blocks - 1 - i;  // not the identity
    const size_t pool = (size_t)total_blocks * n_kv_head * 64 * head_dim;
    std::vector<__half> k(pool), v(pool);
    const std::vector<float> kf = random_vec(pool), vf = random_vec(pool), q = random_vec((size_t)seqs * n_head * head_dim);
    for (size_t i = 0; i < pool; ++i) { k[i] = __float2half_rn(kf[i]); v[i] = __float2half_rn(vf[i]); }
    const float scale = 1.0f / sqrtf((float)head_dim);
    auto row = [&](int s, int p, int kvh) {
        return ((size_t)(tables[s * max_blocks + p / 64] * n_kv_head + kvh) * 64 + p % 64) * head_dim;
    };
    std::vector<float> want((size_t)seqs * n_head * head_dim);
    for (int s = 0; s < seqs; ++s) {
        const int len = lens[s], first = window > 0 && len > window ? len - window : 0;
        for (int h = 0; h < n_head; ++h) {
            const float* qh = &q[((size_t)s * n_head + h) * head_dim];
            std::vector<double> score(len);
            double m = -INFINITY, l = 0;
            for (int p = first; p < len; ++p) {
                double dot = 0;
                for (int d = 0; d < head_dim; ++d) dot += (double)__half2float(k[row(s, p, h / group) + d]) * qh[d];
                score[p] = dot * scale;
                m = std::max(m, score[p]);
            }
            for (int p = first; p < len; ++p) l += exp(score[p] - m);
            for (int d = 0; d < head_dim; ++d) {
                double acc = 0;
                for (int p = first; p < len; ++p) acc += exp(score[p] - m) * __half2float(v[row(s, p, h / group) + d]);
                want[((size_t)s * n_head + h) * head_dim + d] = (float)(acc / l);
            }
        }
    }
    const int chunks = max_blocks * 64 / CHUNK;
    std::vector<float> o_part((size_t)seqs * n_head * chunks * head_dim), ml_part((size_t)seqs * n_head * chunks * 2);
    std::vector<float> out(want.size());
    launch(dim3{(unsigned)chunks, (unsigned)n_kv_head, (unsigned)seqs}, CHUNK, [&] {
        attn_decode_partial(q.data(), k.data(), v.data(), tables.data(), lens.data(), o_part.data(), ml_part.data(),
                            n_head, n_kv_head, head_dim, max_blocks, chunks, window, scale);
    });
    const unsigned merge_threads = std::min((head_dim + 31) / 32 * 32, 256);
    launch(dim3{(unsigned)n_head, (unsigned)seqs}, merge_threads,
           [&] { attn_decode_merge(o_part.data(), ml_part.data(), out.data(), n_head, head_dim, chunks); });
    char what[128];
    snprintf(what, sizeof what, "attention %d/%d heads × %d, longest %d, window %d", n_head, n_kv_head, head_dim, max_len, window);
    close(what, out, want, 1e-4f);
}

int main(int, char**) {  // the case file it is given is empty
    test_quantize_and_norms();
    test_activations();
    test_rope();
    // GQA 1, 3 (SmolLM2), 4 (MQA, Gemma's head_dim 256 and window), 8.
    attention_case(4, 4, 64, {1, 64, 65}, 0);
    attention_case(9, 3, 64, {300, 7}, 0);
    attention_case(4, 1, 256, {700}, 512);
    attention_case(32, 4, 128, {129, 1000}, 0);
    printf("%d mismatches\n", failures);
    return failures ? 1 : 0;
}
