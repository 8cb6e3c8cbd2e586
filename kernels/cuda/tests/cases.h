// What the host test programs share: reading the case files crates/kernels/tests/cuda_on_host.rs
// writes, and choosing a kernel instance by a run-time GGUF type or token count.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <vector>

template <typename T> static std::vector<T> read(FILE* f, size_t n) {
    std::vector<T> v(n);
    if (fread(v.data(), sizeof(T), n, f) != n) { fprintf(stderr, "truncated case file\n"); exit(2); }
    return v;
}

// f.operator()<TYPE>() for the GGUF type id `type` (the vecdot.cuh decoders'); false for others.
template <typename F> static bool with_type(uint32_t type, F&& f) {
    switch (type) {
        case GGML_Q4_0: f.template operator()<GGML_Q4_0>(); return true;
        case GGML_Q4_1: f.template operator()<GGML_Q4_1>(); return true;
        case GGML_Q5_0: f.template operator()<GGML_Q5_0>(); return true;
        case GGML_Q5_1: f.template operator()<GGML_Q5_1>(); return true;
        case GGML_Q8_0: f.template operator()<GGML_Q8_0>(); return true;
        case GGML_Q2_K: f.template operator()<GGML_Q2_K>(); return true;
        case GGML_Q3_K: f.template operator()<GGML_Q3_K>(); return true;
        case GGML_Q4_K: f.template operator()<GGML_Q4_K>(); return true;
        case GGML_Q5_K: f.template operator()<GGML_Q5_K>(); return true;
        case GGML_Q6_K: f.template operator()<GGML_Q6_K>(); return true;
        default: return false;
    }
}

// f.operator()<N>() for a token count n of 1 to 8 (the matrix-vector kernels' instances).
template <int N = 1, typename F> static void with_tokens(int n, F&& f) {
    if (n == N) f.template operator()<N>();
    else if constexpr (N < 8) with_tokens<N + 1>(n, f);
}

// One matmul case: { u32 ggml_type, u32 rows, u32 cols, u32 tokens, u32 row_bytes,
// rows·row_bytes weight bytes, tokens·cols/32 Q8_1 blocks, tokens·rows f32 expected outputs,
// tokens·rows f32 magnitudes (Σ|w·x|) }; a type of 0xFFFFFFFF ends the file.
struct MatmulCase {
    uint32_t type;
    int rows, cols, tokens, sub_blocks;
    long long row_bytes;
    std::vector<uint8_t> w;
    std::vector<block_q8_1> x;
    std::vector<float> want, magnitude;
};

inline bool read_matmul_case(FILE* f, MatmulCase* c) {
    c->type = read<uint32_t>(f, 1)[0];
    if (c->type == 0xFFFFFFFFu) return false;
    const std::vector<uint32_t> h = read<uint32_t>(f, 4);
    c->rows = (int)h[0], c->cols = (int)h[1], c->tokens = (int)h[2], c->row_bytes = h[3];
    c->sub_blocks = c->cols / 32;
    c->w = read<uint8_t>(f, (size_t)c->rows * c->row_bytes);
    c->x = read<block_q8_1>(f, (size_t)c->tokens * c->sub_blocks);
    c->want = read<float>(f, (size_t)c->tokens * c->rows);
    c->magnitude = read<float>(f, (size_t)c->tokens * c->rows);
    return true;
}

inline FILE* open_cases(int argc, char** argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s CASES\n", argv[0]); exit(2); }
    FILE* f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); exit(2); }
    return f;
}
