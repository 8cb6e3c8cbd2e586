// One 32-value sub-block of a weight row as floats, per GGUF type (the prefill path
// dequantizes weights for a dense GEMM): `row` is the row's first byte, `sb` the sub-block's
// index along the row; value i of the sub-block goes to out[i]. Byte-level loops, the same
// layouts as vecdot.cuh and Ward's CPU dequantizers.
#pragma once
#include "ward.cuh"

typedef void (*dequant_fn)(const uint8_t* row, int sb, float* out);

WARD_FN void dq_q4_0(const uint8_t* row, int sb, float* out) {
    const block_q4_0* b = (const block_q4_0*)row + sb;
    const float d = h2f(b->d);
    for (int i = 0; i < 16; ++i) {
        out[i] = d * (float)((b->qs[i] & 15) - 8);
        out[i + 16] = d * (float)((b->qs[i] >> 4) - 8);
    }
}

WARD_FN void dq_q4_1(const uint8_t* row, int sb, float* out) {
    const block_q4_1* b = (const block_q4_1*)row + sb;
    const float d = h2f(b->d), m = h2f(b->m);
    for (int i = 0; i < 16; ++i) {
        out[i] = d * (float)(b->qs[i] & 15) + m;
        out[i + 16] = d * (float)(b->qs[i] >> 4) + m;
    }
}

WARD_FN void dq_q5_0(const uint8_t* row, int sb, float* out) {
    const block_q5_0* b = (const block_q5_0*)row + sb;
    const float d = h2f(b->d);
    const uint32_t qh = (uint32_t)load_b2(b->qh, 0);
    for (int i = 0; i < 16; ++i) {
        out[i] = d * (float)((int)((b->qs[i] & 15) | (((qh >> i) & 1) << 4)) - 16);
        out[i + 16] = d * (float)((int)((b->qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4)) - 16);
    }
}

WARD_FN void dq_q5_1(const uint8_t* row, int sb, float* out) {
    const block_q5_1* b = (const block_q5_1*)row + sb;
    const float d = h2f(b->d), m = h2f(b->m);
    const uint32_t qh = (uint32_t)load_b2(b->qh, 0);
    for (int i = 0; i < 16; ++i) {
        out[i] = d * (float)((b->qs[i] & 15) | (((qh >> i) & 1) << 4)) + m;
        out[i + 16] = d * (float)((b->qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4)) + m;
    }
}

WARD_FN void dq_q8_0(const uint8_t* row, int sb, float* out) {
    const block_q8_0* b = (const block_q8_0*)row + sb;
    const float d = h2f(b->d);
    for (int i = 0; i < 32; ++i) out[i] = d * (float)b->qs[i];
}

WARD_FN void dq_q2_K(const uint8_t* row, int sb, float* out) {
    const block_q2_K* b = (const block_q2_K*)row + sb / 8;
    const int j = sb % 8, shift = 2 * (j % 4);
    const uint8_t* q = b->qs + 32 * (j / 4);
    const float d = h2f(b->d), dmin = h2f(b->dmin);
    for (int i = 0; i < 32; ++i) {
        const uint8_t sc = b->scales[2 * j + i / 16];
        out[i] = d * (float)(sc & 15) * (float)((q[i] >> shift) & 3) - dmin * (float)(sc >> 4);
    }
}

WARD_FN void dq_q3_K(const uint8_t* row, int sb, float* out) {
    const block_q3_K* b = (const block_q3_K*)row + sb / 8;
    const int j = sb % 8, shift = 2 * (j % 4);
    const uint8_t* q = b->qs + 32 * (j / 4);
    const float d = h2f(b->d);
    for (int i = 0; i < 32; ++i) {
        const int v = ((q[i] >> shift) & 3) - ((b->hmask[i] >> j) & 1 ? 0 : 4);
        out[i] = d * (float)q3_K_scale(b->scales, 2 * j + i / 16) * (float)v;
    }
}

WARD_FN void dq_q4_K(const uint8_t* row, int sb, float* out) {
    const block_q4_K* b = (const block_q4_K*)row + sb / 8;
    const int j = sb % 8, shift = 4 * (j % 2);
    const uint8_t* q = b->qs + 32 * (j / 2);
    int sc, m;
    scale_min_k4(j, b->scales, &sc, &m);
    const float d = h2f(b->d) * (float)sc, min = h2f(b->dmin) * (float)m;
    for (int i = 0; i < 32; ++i) out[i] = d * (float)((q[i] >> shift) & 15) - min;
}

WARD_FN void dq_q5_K(const uint8_t* row, int sb, float* out) {
    const block_q5_K* b = (const block_q5_K*)row + sb / 8;
    const int j = sb % 8, shift = 4 * (j % 2);
    const uint8_t* q = b->qs + 32 * (j / 2);
    int sc, m;
    scale_min_k4(j, b->scales, &sc, &m);
    const float d = h2f(b->d) * (float)sc, min = h2f(b->dmin) * (float)m;
    for (int i = 0; i < 32; ++i) out[i] = d * (float)(((q[i] >> shift) & 15) | (((b->qh[i] >> j) & 1) << 4)) - min;
}

WARD_FN void dq_q6_K(const uint8_t* row, int sb, float* out) {
    const block_q6_K* b = (const block_q6_K*)row + sb / 8;
    const int j = sb % 8, half = j / 4, quarter = j % 4;
    const uint8_t* ql = b->ql + 64 * half + 32 * (quarter & 1);
    const uint8_t* qh = b->qh + 32 * half;
    const int lshift = 4 * (quarter >> 1), hshift = 2 * quarter;
    const float d = h2f(b->d);
    for (int i = 0; i < 32; ++i) {
        const int v = (((ql[i] >> lshift) & 15) | (((qh[i] >> hshift) & 3) << 4)) - 32;
        out[i] = d * (float)b->scales[8 * half + 2 * quarter + i / 16] * (float)v;
    }
}
