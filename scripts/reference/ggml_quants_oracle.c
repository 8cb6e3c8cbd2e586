// The expected hashes of crates/kernels/src/quant/quantize.rs's `quantized_bytes_match_ggml`:
// ggml's own quantizers, reached through `ggml_quantize_chunk` with no importance matrix (the
// call llama-quantize makes), over the same deterministic rows the Rust test builds. Prints
// one line per type: the name and the FNV-1a 64 hash of every output byte.
//
// Built against the llama.cpp that llama-cpp-python 0.3.36 vendors, outside the repository.
// ggml.c wants a generated ggml-version.h; three backend functions it references are stubbed
// below (never called). As in llama.cpp's release builds: -DNDEBUG (the subnormal rows feed
// nearest_int values past its assert, whose result Ward reproduces), and ggml-base without
// -march, so on x86-64 no fused multiply-adds:
//
//   G=/tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp/ggml B=/tmp/ggml_quants_oracle
//   mkdir -p $B && printf '#define GGML_VERSION "oracle"\n#define GGML_COMMIT "oracle"\n' \
//       > $B/ggml-version.h
//   gcc -O2 -DNDEBUG -I$B -I$G/include -I$G/src scripts/reference/ggml_quants_oracle.c \
//       $G/src/ggml.c $G/src/ggml-quants.c $G/src/ggml-threading.cpp \
//       -o $B/oracle -lm -lstdc++ -lpthread && $B/oracle

#include "ggml.h"
#include "ggml-backend.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum ggml_backend_buffer_usage ggml_backend_buffer_get_usage(ggml_backend_buffer_t b) {
    (void)b; abort();
}
void ggml_backend_tensor_set(struct ggml_tensor * t, const void * d, size_t o, size_t n) {
    (void)t; (void)d; (void)o; (void)n; abort();
}
void ggml_backend_tensor_memset(struct ggml_tensor * t, uint8_t v, size_t o, size_t n) {
    (void)t; (void)v; (void)o; (void)n; abort();
}

// 144 super-blocks of 256 as 16 rows of 2304: block b is kind b % 18.
enum { KINDS = 18, BLOCKS = KINDS * 8, ROWS = 16, N = BLOCKS * 256 };

static float input[N];

static void build_input(void) {
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int b = 0; b < BLOCKS; b++) {
        for (int i = 0; i < 256; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            const float r = (float)(s >> 40) / 16777216.0f - 0.5f;
            float v;
            switch (b % KINDS) {
                case 0:  v = r; break;
                case 1:  v = r * 1e-3f; break;
                case 2:  v = r * 100.0f; break;
                case 3:  v = 0.0f; break;
                case 4:  v = i == 37 ? 1000.0f : r; break;
                case 5:  v = -fabsf(r) * 2.0f; break;
                case 6:  v = fabsf(r) * 0.5f; break;
                case 7:  v = 0.75f; break;
                case 8:  v = (float)(s >> 61) * 0.25f - 1.0f; break;
                case 9:  v = r * 1e-12f; break;
                case 10: v = r * 1e-20f; break;
                case 11: v = r * r * r * 8.0f; break;
                case 12: v = i % 7 == 0 ? r * 4.0f : 0.0f; break;
                case 13: v = r * 3e5f; break;
                case 14: v = r * (float)(1 << (i / 32)) / 16.0f; break;
                case 15: v = r + 3.0f; break;
                case 16: v = r * 1e-38f; break;
                default: v = (float)i - 128.0f; break;
            }
            input[b * 256 + i] = v;
        }
    }
}

static uint64_t fnv1a64(const uint8_t * p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

int main(void) {
    build_input();
    static const enum ggml_type types[] = {
        GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q4_0,
        GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0,
        GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K,
        GGML_TYPE_Q6_K,
    };
    static uint8_t out[N * 4];
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const size_t bytes = ggml_quantize_chunk(types[t], input, out, 0, ROWS, N / ROWS, NULL);
        printf("%-5s %016llx\n", ggml_type_name(types[t]), (unsigned long long)fnv1a64(out, bytes));
    }
    return 0;
}
