// The matmul kernels themselves (mmvq.cu and mmq.cu) run on the host through tests/emulate.h:
// each case's tokens go through the matrix-vector kernel 8 at a time and through the
// tensor-core kernel all at once, which must agree bit for bit and with Ward's CPU reference.
// Run by crates/kernels/tests/cuda_on_host.rs, which writes:
//   repeated { u32 ggml_type, u32 rows, u32 cols, u32 tokens, rows·row_bytes weight bytes,
//              tokens·cols/32 Q8_1 blocks, tokens·rows f32 expected, tokens·rows f32 magnitudes }
//   then u32 0xFFFFFFFF
#define WARD_HOST
#include "emulate.h"
#include "../mmq.cu"
#include "../mmvq.cu"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

// Both kernels' arguments: w, x, y, sub_blocks, row_bytes, rows, tokens.
typedef void (*matmul_kernel)(const uint8_t*, const block_q8_1*, float*, int, long long, int, int);
struct Kernels { matmul_kernel mmvq[8]; matmul_kernel mmq; long long block_bytes, block_len; };

#define KERNELS(name, bytes, len)                                                                   \
    Kernels{{mmvq_##name##_1, mmvq_##name##_2, mmvq_##name##_3, mmvq_##name##_4, mmvq_##name##_5,   \
             mmvq_##name##_6, mmvq_##name##_7, mmvq_##name##_8},                                    \
            mmq_##name, bytes, len}

static Kernels for_type(uint32_t ggml_type) {
    switch (ggml_type) {
        case 2: return KERNELS(q4_0, 18, 32);
        case 3: return KERNELS(q4_1, 20, 32);
        case 6: return KERNELS(q5_0, 22, 32);
        case 7: return KERNELS(q5_1, 24, 32);
        case 8: return KERNELS(q8_0, 34, 32);
        case 10: return KERNELS(q2_K, 84, 256);
        case 11: return KERNELS(q3_K, 110, 256);
        case 12: return KERNELS(q4_K, 144, 256);
        case 13: return KERNELS(q5_K, 176, 256);
        case 14: return KERNELS(q6_K, 210, 256);
        default: fprintf(stderr, "no kernels for ggml type %u\n", ggml_type); exit(2);
    }
}

template <typename T> static std::vector<T> read(FILE* f, size_t n) {
    std::vector<T> v(n);
    if (fread(v.data(), sizeof(T), n, f) != n) { fprintf(stderr, "truncated case file\n"); exit(2); }
    return v;
}

int main(int argc, char** argv) {
    if (argc != 2) { fprintf(stderr, "usage: host_matmul CASES\n"); return 2; }
    FILE* f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 2; }
    int cases = 0, failures = 0;
    for (;;) {
        const uint32_t type = read<uint32_t>(f, 1)[0];
        if (type == 0xFFFFFFFFu) break;
        const std::vector<uint32_t> h = read<uint32_t>(f, 3);
        const int rows = (int)h[0], cols = (int)h[1], tokens = (int)h[2], sub_blocks = cols / 32;
        const Kernels k = for_type(type);
        const long long row_bytes = cols / k.block_len * k.block_bytes;
        const std::vector<uint8_t> w = read<uint8_t>(f, (size_t)rows * row_bytes);
        const std::vector<block_q8_1> x = read<block_q8_1>(f, (size_t)tokens * sub_blocks);
        const std::vector<float> want = read<float>(f, (size_t)tokens * rows);
        const std::vector<float> magnitude = read<float>(f, (size_t)tokens * rows);
        std::vector<float> small((size_t)tokens * rows), big((size_t)tokens * rows);
        for (int t0 = 0; t0 < tokens; t0 += 8) {
            const int n = min(8, tokens - t0);
            launch(dim3{(unsigned)rows, 1, 1}, MMVQ_THREADS, [&] {
                k.mmvq[n - 1](w.data(), &x[(size_t)t0 * sub_blocks], &small[(size_t)t0 * rows], sub_blocks, row_bytes, rows, n);
            });
        }
        const dim3 grid{(unsigned)((rows + MMQ_ROWS - 1) / MMQ_ROWS), (unsigned)((tokens + MMQ_TOKENS - 1) / MMQ_TOKENS), 1};
        launch(grid, MMQ_THREADS, [&] { k.mmq(w.data(), x.data(), big.data(), sub_blocks, row_bytes, rows, tokens); });
        for (size_t i = 0; i < want.size(); ++i) {
            const float tol = 1e-4f * magnitude[i] + 1e-6f;
            if (memcmp(&small[i], &big[i], 4) != 0 || !(fabsf(small[i] - want[i]) <= tol)) {
                if (failures < 10)
                    fprintf(stderr, "ggml type %u, %d×%d × %d tokens, output %zu: mmvq %.9g, mmq %.9g, reference %.9g\n",
                            type, rows, cols, tokens, i, small[i], big[i], want[i]);
                failures++;
            }
        }
        cases++;
    }
    printf("%d matmul cases checked (mmvq 8 tokens at a time = mmq bit for bit, both = the CPU), %d outputs wrong\n",
           cases, failures);
    return failures ? 1 : 0;
}
