// The CUDA kernels' block decoding (include/vecdot.cuh: each type's decode, the dp4a dot
// product and `finish` the matmuls share, and dequantization), compiled as plain C++ and checked
// against Ward's CPU reference on random blocks, so it is tested on machines without a GPU.
// Run by crates/kernels/tests/cuda_on_host.rs, which writes:
//   repeated { u32 ggml_type, u32 sub_blocks_per_row, u32 rows, u32 row_bytes,
//              rows·row_bytes weight bytes, sub_blocks·36 Q8_1 bytes,
//              rows·sub_blocks f32 expected dots, rows·sub_blocks f32 magnitudes,
//              rows·sub_blocks·32 f32 dequantized weights }  then u32 0xFFFFFFFF
#define WARD_HOST
#include "../include/vecdot.cuh"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <vector>

typedef void (*decode_fn)(const uint8_t* row, int sb, int* q, wscale* w);

static decode_fn for_type(uint32_t ggml_type) {
    switch (ggml_type) {
        case GGML_Q4_0: return decode<GGML_Q4_0>;
        case GGML_Q4_1: return decode<GGML_Q4_1>;
        case GGML_Q5_0: return decode<GGML_Q5_0>;
        case GGML_Q5_1: return decode<GGML_Q5_1>;
        case GGML_Q8_0: return decode<GGML_Q8_0>;
        case GGML_Q2_K: return decode<GGML_Q2_K>;
        case GGML_Q3_K: return decode<GGML_Q3_K>;
        case GGML_Q4_K: return decode<GGML_Q4_K>;
        case GGML_Q5_K: return decode<GGML_Q5_K>;
        case GGML_Q6_K: return decode<GGML_Q6_K>;
        default: return 0;
    }
}

template <typename T> static std::vector<T> read(FILE* f, size_t n) {
    std::vector<T> v(n);
    if (fread(v.data(), sizeof(T), n, f) != n) { fprintf(stderr, "truncated case file\n"); exit(2); }
    return v;
}

int main(int argc, char** argv) {
    if (argc != 2) { fprintf(stderr, "usage: host_vecdot CASES\n"); return 2; }
    FILE* f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 2; }
    int cases = 0, failures = 0;
    for (;;) {
        uint32_t type = read<uint32_t>(f, 1)[0];
        if (type == 0xFFFFFFFFu) break;
        std::vector<uint32_t> h = read<uint32_t>(f, 3);
        uint32_t nsub = h[0], rows = h[1], row_bytes = h[2];
        decode_fn decode = for_type(type);
        if (!decode) { fprintf(stderr, "no kernel for ggml type %u\n", type); return 2; }
        std::vector<uint8_t> w = read<uint8_t>(f, (size_t)rows * row_bytes);
        std::vector<block_q8_1> x = read<block_q8_1>(f, nsub);
        std::vector<float> expected = read<float>(f, (size_t)rows * nsub);
        std::vector<float> magnitude = read<float>(f, (size_t)rows * nsub);
        std::vector<float> values = read<float>(f, (size_t)rows * nsub * 32);
        for (uint32_t r = 0; r < rows; ++r) {
            for (uint32_t sb = 0; sb < nsub; ++sb) {
                const uint8_t* row = w.data() + (size_t)r * row_bytes;
                int q[8];
                wscale ws;
                decode(row, (int)sb, q, &ws);
                float out[32];
                dequantize(q, ws, out);
                for (int i = 0; i < 32; ++i) {
                    float want = values[((size_t)r * nsub + sb) * 32 + i];
                    if (!(fabsf(out[i] - want) <= 1e-6f * (1.0f + fabsf(want)))) {
                        if (failures < 10)
                            fprintf(stderr, "ggml type %u row %u value %u: dequantized %g, reference %g\n", type, r, sb * 32 + i, out[i], want);
                        failures++;
                    }
                }
                float got = vdot(q, ws, &x[sb]);
                float want = expected[r * nsub + sb], tol = 1e-4f * magnitude[r * nsub + sb] + 1e-6f;
                if (!(fabsf(got - want) <= tol)) {
                    if (failures < 10)
                        fprintf(stderr, "ggml type %u row %u sub-block %u: got %g, reference %g\n", type, r, sb, got, want);
                    failures++;
                }
                cases++;
            }
        }
    }
    printf("%d sub-blocks checked (dequantized and dotted), %d wrong\n", cases, failures);
    return failures ? 1 : 0;
}
