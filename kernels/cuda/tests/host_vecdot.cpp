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
#include "cases.h"

#include <math.h>

int main(int argc, char** argv) {
    FILE* f = open_cases(argc, argv);
    int cases = 0, failures = 0;
    for (;;) {
        const uint32_t type = read<uint32_t>(f, 1)[0];
        if (type == 0xFFFFFFFFu) break;
        const std::vector<uint32_t> h = read<uint32_t>(f, 3);
        const uint32_t nsub = h[0], rows = h[1], row_bytes = h[2];
        const std::vector<uint8_t> w = read<uint8_t>(f, (size_t)rows * row_bytes);
        const std::vector<block_q8_1> x = read<block_q8_1>(f, nsub);
        const std::vector<float> expected = read<float>(f, (size_t)rows * nsub);
        const std::vector<float> magnitude = read<float>(f, (size_t)rows * nsub);
        const std::vector<float> values = read<float>(f, (size_t)rows * nsub * 32);
        const bool known = with_type(type, [&]<int TYPE>() {
            for (uint32_t r = 0; r < rows; ++r) {
                for (uint32_t sb = 0; sb < nsub; ++sb) {
                    int q[8];
                    wscale ws;
                    decode<TYPE>(w.data() + (size_t)r * row_bytes, (int)sb, q, &ws);
                    float out[32];
                    dequantize(q, ws, out);
                    for (int i = 0; i < 32; ++i) {
                        const float want = values[((size_t)r * nsub + sb) * 32 + i];
                        if (!(fabsf(out[i] - want) <= 1e-6f * (1.0f + fabsf(want)))) {
                            if (failures < 10)
                                fprintf(stderr, "ggml type %u row %u value %u: dequantized %g, reference %g\n", type, r, sb * 32 + i, out[i], want);
                            failures++;
                        }
                    }
                    const float got = vdot(q, ws, &x[sb]);
                    const float want = expected[r * nsub + sb], tol = 1e-4f * magnitude[r * nsub + sb] + 1e-6f;
                    if (!(fabsf(got - want) <= tol)) {
                        if (failures < 10)
                            fprintf(stderr, "ggml type %u row %u sub-block %u: got %g, reference %g\n", type, r, sb, got, want);
                        failures++;
                    }
                    cases++;
                }
            }
        });
        if (!known) { fprintf(stderr, "no kernel for ggml type %u\n", type); return 2; }
    }
    printf("%d sub-blocks checked (dequantized and dotted), %d wrong\n", cases, failures);
    return failures ? 1 : 0;
}
