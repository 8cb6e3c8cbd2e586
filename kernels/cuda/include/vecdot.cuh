// Every GGUF weight type decoded the same way: one 32-value sub-block of a weight row becomes 32
// signed int8 quants (`q`, four per int: word k holds values 4k..4k+3) and a `wscale` saying
// how they scale:  value_i = d·(s_h·q_i) − m·mn_h,  h = i / 16 (the two 16-value halves).
// The matrix-vector kernels (dp4a, mmvq.cu) and the tensor-core matrix kernels (mma, mmq.cu)
// both decode with these functions and both finish a sub-block's dot product with `finish`, from
// integer sums that are exact whichever instruction made them, so the two give the same bits.
//
// The canonical order (batch invariance): a row·token dot product is the sum of its sub-blocks'
// `finish` values, added in chunks of 8 consecutive sub-blocks (each chunk summed in order from
// 0) and the chunk sums added in order from 0, with rounding float adds (never fused). Every
// matmul kernel keeps it, so a token's result depends on nothing else in the launch, and not on
// which kernel ran.
#pragma once
#include "ward.cuh"

#define CHUNK_SUB_BLOCKS 8

// How a decoded sub-block's quants scale (see above). 12 bytes.
struct wscale { float d, m; int8_t s[2], mn[2]; };

// Bytewise a − b for four bytes below 128 each whose differences fit int8 (no borrows cross).
WARD_FN int sub_bytes(int a, int b) {
    return (int)((((uint32_t)a | 0x80808080u) - (uint32_t)b) ^ 0x80808080u);
}

WARD_FN void set_scale(WARD_THREAD wscale* w, float d, float m, int s0, int s1, int mn0, int mn1) {
    w->d = d;
    w->m = m;
    w->s[0] = (int8_t)s0;
    w->s[1] = (int8_t)s1;
    w->mn[0] = (int8_t)mn0;
    w->mn[1] = (int8_t)mn1;
}

// A legacy block's 32 quants: byte i of `qs` holds values i (low nibble) and i + 16 (high);
// bit i of `qh` (Q5 types; 0 for Q4) is value i's fifth bit.
WARD_FN void legacy_quants(const WARD_GLOBAL uint8_t* qs, uint32_t qh, WARD_THREAD int* q) {
    for (int i = 0; i < 4; ++i) {
        const int v = load_b2(qs, i);
        q[i] = (v & 0x0F0F0F0F) | spread_bit4(qh >> (4 * i));
        q[i + 4] = ((v >> 4) & 0x0F0F0F0F) | spread_bit4(qh >> (4 * i + 16));
    }
}

WARD_FN void decode_q4_0(const WARD_GLOBAL uint8_t* row, int sb, WARD_THREAD int* q, WARD_THREAD wscale* w) {
    const WARD_GLOBAL block_q4_0* b = (const WARD_GLOBAL block_q4_0*)row + sb;
    legacy_quants(b->qs, 0, q);
    for (int i = 0; i < 8; ++i) q[i] = sub_bytes(q[i], 0x08080808);
    set_scale(w, h2f(b->d), 0.0f, 1, 1, 0, 0);
}

WARD_FN void decode_q4_1(const WARD_GLOBAL uint8_t* row, int sb, WARD_THREAD int* q, WARD_THREAD wscale* w) {
    const WARD_GLOBAL block_q4_1* b = (const WARD_GLOBAL block_q4_1*)row + sb;
    legacy_quants(b->qs, 0, q);
    set_scale(w, h2f(b->d), -h2f(b->m), 1, 1, 1, 1);
}

WARD_FN void decode_q5_0(const WARD_GLOBAL uint8_t* row, int sb, WARD_THREAD int* q, WARD_THREAD wscale* w) {
    const WARD_GLOBAL block_q5_0* b = (const WARD_GLOBAL block_q5_0*)row + sb;
    legacy_quants(b->qs, (uint32_t)load_b2(b->qh, 0), q);
    for (int i = 0; i < 8; ++i) q[i] = sub_bytes(q[i], 0x10101010);
    set_scale(w, h2f(b->d), 0.0f, 1, 1, 0, 0);
}

WARD_FN void decode_q5_1(const WARD_GLOBAL uint8_t* row, int sb, WARD_THREAD int* q, WARD_THREAD wscale* w) {
    const WARD_GLOBAL block_q5_1* b = (const WARD_GLOBAL block_q5_1*)row + sb;
    legacy_quants(b->qs, (uint32_t)load_b2(b->qh, 0), q);
    set_scale(w, h2f(b->d), -h2f(b->m), 1, 1, 1, 1);
}

WARD_FN void decode_q8_0(const WARD_GLOBAL uint8_t* row, int sb, WARD_THREAD int* q, WARD_THREAD wscale* w) {
    const WARD_GLOBAL block_q8_0* b = (const WARD_GLOBAL block_q8_0*)row + sb;
    for (int i = 0; i < 8; ++i) q[i] = load_b2((const WARD_GLOBAL uint8_t*)b->qs, i);
    set_scale(w, h2f(b->d), 0.0f, 1, 1, 0, 0);
}

// Q2_K: 16 groups of 16 values, each a 4-bit scale and 4-bit minimum; 2-bit quants, four
// sub-blocks to a 32-byte run (bits 2j..2j+1 of each byte).
WARD_FN void decode_q2_K(const WARD_GLOBAL uint8_t* row, int sb, WARD_THREAD int* q, WARD_THREAD wscale* w) {
    const WARD_GLOBAL block_q2_K* b = (const WARD_GLOBAL block_q2_K*)row + sb / 8;
    const int j = sb % 8, shift = 2 * (j % 4);
    const WARD_GLOBAL uint8_t* qs = b->qs + 32 * (j / 4);
    for (int i = 0; i < 8; ++i) q[i] = (load_b4(qs, i) >> shift) & 0x03030303;
    const int s0 = b->scales[2 * j], s1 = b->scales[2 * j + 1];
    set_scale(w, h2f(b->d), h2f(b->dmin), s0 & 15, s1 & 15, s0 >> 4, s1 >> 4);
}

// Q3_K: 2 low bits as Q2_K's, a high bit in hmask whose absence means 4 lower; 6-bit scales.
WARD_FN void decode_q3_K(const WARD_GLOBAL uint8_t* row, int sb, WARD_THREAD int* q, WARD_THREAD wscale* w) {
    const WARD_GLOBAL block_q3_K* b = (const WARD_GLOBAL block_q3_K*)row + sb / 8;
    const int j = sb % 8, shift = 2 * (j % 4);
    const WARD_GLOBAL uint8_t* qs = b->qs + 32 * (j / 4);
    for (int i = 0; i < 8; ++i) {
        const int v = (load_b2(qs, i) >> shift) & 0x03030303;
        const int low = ((load_b2(b->hmask, i) >> j) & 0x01010101) ^ 0x01010101;
        q[i] = sub_bytes(v, low << 2);
    }
    set_scale(w, h2f(b->d), 0.0f, q3_K_scale(b->scales, 2 * j), q3_K_scale(b->scales, 2 * j + 1), 0, 0);
}

// Q4_K and Q5_K: a 6-bit scale and minimum per 32 values; 64 values per 32 bytes of nibbles
// (low nibbles, then high).
WARD_FN void decode_q4_K(const WARD_GLOBAL uint8_t* row, int sb, WARD_THREAD int* q, WARD_THREAD wscale* w) {
    const WARD_GLOBAL block_q4_K* b = (const WARD_GLOBAL block_q4_K*)row + sb / 8;
    const int j = sb % 8, shift = 4 * (j % 2);
    const WARD_GLOBAL uint8_t* qs = b->qs + 32 * (j / 2);
    for (int i = 0; i < 8; ++i) q[i] = (load_b4(qs, i) >> shift) & 0x0F0F0F0F;
    int sc, m;
    scale_min_k4(j, b->scales, &sc, &m);
    set_scale(w, h2f(b->d), h2f(b->dmin), sc, sc, m, m);
}

WARD_FN void decode_q5_K(const WARD_GLOBAL uint8_t* row, int sb, WARD_THREAD int* q, WARD_THREAD wscale* w) {
    const WARD_GLOBAL block_q5_K* b = (const WARD_GLOBAL block_q5_K*)row + sb / 8;
    const int j = sb % 8, shift = 4 * (j % 2);
    const WARD_GLOBAL uint8_t* qs = b->qs + 32 * (j / 2);
    for (int i = 0; i < 8; ++i) {
        const int h = ((load_b4(b->qh, i) >> j) & 0x01010101) << 4;  // bit j of each byte
        q[i] = ((load_b4(qs, i) >> shift) & 0x0F0F0F0F) | h;
    }
    int sc, m;
    scale_min_k4(j, b->scales, &sc, &m);
    set_scale(w, h2f(b->d), h2f(b->dmin), sc, sc, m, m);
}

// Q6_K: 4 low bits in ql, 2 high bits in qh, minus 32; a signed 8-bit scale per 16 values.
WARD_FN void decode_q6_K(const WARD_GLOBAL uint8_t* row, int sb, WARD_THREAD int* q, WARD_THREAD wscale* w) {
    const WARD_GLOBAL block_q6_K* b = (const WARD_GLOBAL block_q6_K*)row + sb / 8;
    const int j = sb % 8, half = j / 4, quarter = j % 4;
    const WARD_GLOBAL uint8_t* ql = b->ql + 64 * half + 32 * (quarter & 1);
    const WARD_GLOBAL uint8_t* qh = b->qh + 32 * half;
    const int lshift = 4 * (quarter >> 1), hshift = 2 * quarter;
    for (int i = 0; i < 8; ++i) {
        const int v = ((load_b2(ql, i) >> lshift) & 0x0F0F0F0F) | (((load_b2(qh, i) >> hshift) & 0x03030303) << 4);
        q[i] = sub_bytes(v, 0x20202020);
    }
    const WARD_GLOBAL int8_t* sc = b->scales + 8 * half + 2 * quarter;
    set_scale(w, h2f(b->d), 0.0f, sc[0], sc[1], 0, 0);
}

// A sub-block's dot product from its exact integer parts: i_h = Σ q·x and x_h = Σ x over half
// h, xd the activations' scale. Rounding operations only, so no compiler fuses them
// differently in different kernels.
WARD_FN float finish(WARD_THREAD const wscale& w, float xd, int i0, int i1, int x0, int x1) {
    const float q = (float)(w.s[0] * i0 + w.s[1] * i1), m = (float)(w.mn[0] * x0 + w.mn[1] * x1);
    return fmul(xd, fsub(fmul(w.d, q), fmul(w.m, m)));
}

// One decoded sub-block against one Q8_1 activation block, with dp4a.
WARD_FN float vdot(WARD_THREAD const int* q, WARD_THREAD const wscale& w, const WARD_GLOBAL block_q8_1* x) {
    const WARD_GLOBAL uint8_t* xq = (const WARD_GLOBAL uint8_t*)x->qs;
    int i[2] = {0, 0}, s[2] = {0, 0};
    for (int k = 0; k < 8; ++k) {
        const int xk = load_b4(xq, k);
        i[k / 4] = dp4a(q[k], xk, i[k / 4]);
        s[k / 4] = dp4a(0x01010101, xk, s[k / 4]);
    }
    return finish(w, h2f(x->d), i[0], i[1], s[0], s[1]);
}

// One sub-block's 32 values as floats.
WARD_FN void dequantize(WARD_THREAD const int* q, WARD_THREAD const wscale& w, WARD_GLOBAL float* out) {
    for (int i = 0; i < 32; ++i) {
        const int h = i / 16, v = (int)(int8_t)(q[i / 4] >> (8 * (i % 4)));
        out[i] = fsub(fmul(w.d, (float)(w.s[h] * v)), fmul(w.m, (float)w.mn[h]));
    }
}

// GGUF's type ids, which name the decoder of each kernel instance: decode<GGML_Q4_K>(…).
#define GGML_Q4_0 2
#define GGML_Q4_1 3
#define GGML_Q5_0 6
#define GGML_Q5_1 7
#define GGML_Q8_0 8
#define GGML_Q2_K 10
#define GGML_Q3_K 11
#define GGML_Q4_K 12
#define GGML_Q5_K 13
#define GGML_Q6_K 14

template <int TYPE>
WARD_FN void decode(const WARD_GLOBAL uint8_t* row, int sb, WARD_THREAD int* q, WARD_THREAD wscale* w) {
    if (TYPE == GGML_Q4_0) decode_q4_0(row, sb, q, w);
    if (TYPE == GGML_Q4_1) decode_q4_1(row, sb, q, w);
    if (TYPE == GGML_Q5_0) decode_q5_0(row, sb, q, w);
    if (TYPE == GGML_Q5_1) decode_q5_1(row, sb, q, w);
    if (TYPE == GGML_Q8_0) decode_q8_0(row, sb, q, w);
    if (TYPE == GGML_Q2_K) decode_q2_K(row, sb, q, w);
    if (TYPE == GGML_Q3_K) decode_q3_K(row, sb, q, w);
    if (TYPE == GGML_Q4_K) decode_q4_K(row, sb, q, w);
    if (TYPE == GGML_Q5_K) decode_q5_K(row, sb, q, w);
    if (TYPE == GGML_Q6_K) decode_q6_K(row, sb, q, w);
}
