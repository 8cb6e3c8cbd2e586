// Dot products of one 32-value sub-block of a weight row with one Q8_1 activation block, per
// GGUF type: `row` is the row's first byte, `sb` the sub-block's index along the row. Integer
// products with dp4a, scales applied once per sub-block: Σ(d·q − m)·(d8·x) = d·d8·Σq·x −
// m·d8·Σx. Σx is summed here from the int8 values (exact) rather than taken from the block's
// f16 `s`, whose rounding would cost Q4_0 and Q5_0 accuracy the CPU path does not lose.
#pragma once
#include "ward.cuh"

typedef float (*vdot_fn)(const uint8_t* row, int sb, const block_q8_1* x);

// Σ of a Q8_1 block's 32 int8 values.
WARD_FN int xsum(const uint8_t* xq) {
    int s = 0;
    for (int i = 0; i < 8; ++i) s = dp4a(0x01010101, load_b4(xq, i), s);
    return s;
}

// Σ q·x over a legacy block's 32 quants against the activations' int8 values: byte i of `qs`
// holds values i (low nibble) and i + 16 (high); bit i of `qh` (Q5 types; 0 for Q4) is value
// i's fifth bit.
WARD_FN int sum_legacy(const uint8_t* qs, uint32_t qh, const uint8_t* xq) {
    int sumi = 0;
    for (int i = 0; i < 4; ++i) {
        const int v = load_b2(qs, i);
        sumi = dp4a((v & 0x0F0F0F0F) | spread_bit4(qh >> (4 * i)), load_b4(xq, i), sumi);
        sumi = dp4a(((v >> 4) & 0x0F0F0F0F) | spread_bit4(qh >> (4 * i + 16)), load_b4(xq, i + 4), sumi);
    }
    return sumi;
}

WARD_FN float vdot_q4_0(const uint8_t* row, int sb, const block_q8_1* x) {
    const block_q4_0* b = (const block_q4_0*)row + sb;
    const uint8_t* xq = (const uint8_t*)x->qs;
    return h2f(b->d) * h2f(x->d) * (float)(sum_legacy(b->qs, 0, xq) - 8 * xsum(xq));
}

WARD_FN float vdot_q4_1(const uint8_t* row, int sb, const block_q8_1* x) {
    const block_q4_1* b = (const block_q4_1*)row + sb;
    const uint8_t* xq = (const uint8_t*)x->qs;
    return h2f(x->d) * (h2f(b->d) * (float)sum_legacy(b->qs, 0, xq) + h2f(b->m) * (float)xsum(xq));
}

WARD_FN float vdot_q5_0(const uint8_t* row, int sb, const block_q8_1* x) {
    const block_q5_0* b = (const block_q5_0*)row + sb;
    const uint8_t* xq = (const uint8_t*)x->qs;
    const int sumi = sum_legacy(b->qs, (uint32_t)load_b2(b->qh, 0), xq);
    return h2f(b->d) * h2f(x->d) * (float)(sumi - 16 * xsum(xq));
}

WARD_FN float vdot_q5_1(const uint8_t* row, int sb, const block_q8_1* x) {
    const block_q5_1* b = (const block_q5_1*)row + sb;
    const uint8_t* xq = (const uint8_t*)x->qs;
    const int sumi = sum_legacy(b->qs, (uint32_t)load_b2(b->qh, 0), xq);
    return h2f(x->d) * (h2f(b->d) * (float)sumi + h2f(b->m) * (float)xsum(xq));
}

WARD_FN float vdot_q8_0(const uint8_t* row, int sb, const block_q8_1* x) {
    const block_q8_0* b = (const block_q8_0*)row + sb;
    const uint8_t* xq = (const uint8_t*)x->qs;
    int sumi = 0;
    for (int i = 0; i < 8; ++i) sumi = dp4a(load_b2((const uint8_t*)b->qs, i), load_b4(xq, i), sumi);
    return h2f(b->d) * h2f(x->d) * (float)sumi;
}

// Q2_K: 16 groups of 16 values, each a 4-bit scale and 4-bit minimum; 2-bit quants.
WARD_FN float vdot_q2_K(const uint8_t* row, int sb, const block_q8_1* x) {
    const block_q2_K* b = (const block_q2_K*)row + sb / 8;
    const int j = sb % 8, shift = 2 * (j % 4);
    const uint8_t* q = b->qs + 32 * (j / 4);
    const uint8_t* xq = (const uint8_t*)x->qs;
    int sum[2] = {0, 0}, xs[2] = {0, 0};
    for (int i = 0; i < 8; ++i) {
        const int xi = load_b4(xq, i);
        sum[i / 4] = dp4a((load_b4(q, i) >> shift) & 0x03030303, xi, sum[i / 4]);
        xs[i / 4] = dp4a(0x01010101, xi, xs[i / 4]);
    }
    const float d = h2f(b->d), dmin = h2f(b->dmin);
    float acc = 0.0f;
    for (int h = 0; h < 2; ++h) {
        const uint8_t sc = b->scales[2 * j + h];
        acc += d * (float)(sc & 15) * (float)sum[h] - dmin * (float)(sc >> 4) * (float)xs[h];
    }
    return h2f(x->d) * acc;
}

WARD_FN float vdot_q3_K(const uint8_t* row, int sb, const block_q8_1* x) {
    const block_q3_K* b = (const block_q3_K*)row + sb / 8;
    const int j = sb % 8, shift = 2 * (j % 4);
    const uint8_t* q = b->qs + 32 * (j / 4);
    const uint8_t* xq = (const uint8_t*)x->qs;
    int sum[2] = {0, 0};
    for (int i = 0; i < 8; ++i) {
        const int xi = load_b4(xq, i);
        const int v = (load_b2(q, i) >> shift) & 0x03030303;
        // The high bit clear means the value is 4 lower: subtract those separately, so no
        // byte borrows from its neighbour.
        const int low = ((load_b2(b->hmask, i) >> j) & 0x01010101) ^ 0x01010101;
        sum[i / 4] += dp4a(v, xi, 0) - 4 * dp4a(low, xi, 0);
    }
    const float acc = (float)(q3_K_scale(b->scales, 2 * j) * sum[0] + q3_K_scale(b->scales, 2 * j + 1) * sum[1]);
    return h2f(b->d) * h2f(x->d) * acc;
}

WARD_FN float vdot_q4_K(const uint8_t* row, int sb, const block_q8_1* x) {
    const block_q4_K* b = (const block_q4_K*)row + sb / 8;
    const int j = sb % 8, shift = 4 * (j % 2);
    const uint8_t* q = b->qs + 32 * (j / 2);  // 64 values per 32 bytes: low then high nibbles
    const uint8_t* xq = (const uint8_t*)x->qs;
    int sumi = 0;
    for (int i = 0; i < 8; ++i) sumi = dp4a((load_b4(q, i) >> shift) & 0x0F0F0F0F, load_b4(xq, i), sumi);
    int sc, m;
    scale_min_k4(j, b->scales, &sc, &m);
    return h2f(x->d) * (h2f(b->d) * (float)(sc * sumi) - h2f(b->dmin) * (float)(m * xsum(xq)));
}

WARD_FN float vdot_q5_K(const uint8_t* row, int sb, const block_q8_1* x) {
    const block_q5_K* b = (const block_q5_K*)row + sb / 8;
    const int j = sb % 8, shift = 4 * (j % 2);
    const uint8_t* q = b->qs + 32 * (j / 2);
    const uint8_t* xq = (const uint8_t*)x->qs;
    int sumi = 0;
    for (int i = 0; i < 8; ++i) {
        const int v = (load_b4(q, i) >> shift) & 0x0F0F0F0F;
        const int h = ((load_b4(b->qh, i) >> j) & 0x01010101) << 4;  // bit j of each byte
        sumi = dp4a(v | h, load_b4(xq, i), sumi);
    }
    int sc, m;
    scale_min_k4(j, b->scales, &sc, &m);
    return h2f(x->d) * (h2f(b->d) * (float)(sc * sumi) - h2f(b->dmin) * (float)(m * xsum(xq)));
}

// Q6_K: 4 low bits in ql, 2 high bits in qh, minus 32; a signed 8-bit scale per 16 values.
WARD_FN float vdot_q6_K(const uint8_t* row, int sb, const block_q8_1* x) {
    const block_q6_K* b = (const block_q6_K*)row + sb / 8;
    const int j = sb % 8, half = j / 4, quarter = j % 4;
    const uint8_t* ql = b->ql + 64 * half + 32 * (quarter & 1);
    const uint8_t* qh = b->qh + 32 * half;
    const int lshift = 4 * (quarter >> 1), hshift = 2 * quarter;
    const uint8_t* xq = (const uint8_t*)x->qs;
    int sum[2] = {0, 0}, xs[2] = {0, 0};
    for (int i = 0; i < 8; ++i) {
        const int xi = load_b4(xq, i);
        const int v = ((load_b2(ql, i) >> lshift) & 0x0F0F0F0F) | (((load_b2(qh, i) >> hshift) & 0x03030303) << 4);
        sum[i / 4] = dp4a(v, xi, sum[i / 4]);
        xs[i / 4] = dp4a(0x01010101, xi, xs[i / 4]);
    }
    const int8_t* sc = b->scales + 8 * half + 2 * quarter;
    const float acc = (float)(sc[0] * (sum[0] - 32 * xs[0]) + sc[1] * (sum[1] - 32 * xs[1]));
    return h2f(b->d) * h2f(x->d) * acc;
}
