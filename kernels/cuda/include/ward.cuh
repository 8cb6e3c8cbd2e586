// Shared definitions of Ward's GPU kernels: GGUF block layouts (byte for byte as in the file),
// f16 conversion and dp4a, for CUDA, for Metal (kernels/metal includes this file too) and as
// plain C++ (WARD_HOST), so the block decoding and whole kernels can be checked on a machine
// without a GPU (tests/). WARD_GLOBAL and WARD_THREAD are Metal's address spaces for device
// buffers and a thread's own memory, empty elsewhere.
#pragma once

#if defined(__METAL_VERSION__)
#include <metal_stdlib>
using namespace metal;
#define WARD_FN static inline
#define WARD_GLOBAL device
#define WARD_THREAD thread
WARD_FN float h2f(uint16_t h) { return (float)as_type<half>(h); }
WARD_FN int dp4a(int a, int b, int c) {
    for (int i = 0; i < 4; ++i) c += (int)(int8_t)(a >> (8 * i)) * (int)(int8_t)(b >> (8 * i));
    return c;
}
// Rounding and unfused only if the library is compiled without fast math, as it must be
// (README, GPU).
WARD_FN float fadd(float a, float b) { return a + b; }
WARD_FN float fsub(float a, float b) { return a - b; }
WARD_FN float fmul(float a, float b) { return a * b; }
#elif defined(__CUDACC__) && !defined(WARD_HOST)
#include <stdint.h>
#define WARD_FN __device__ __forceinline__
#define WARD_GLOBAL
#define WARD_THREAD
#include <cuda_fp16.h>
WARD_FN float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
WARD_FN int dp4a(int a, int b, int c) { return __dp4a(a, b, c); }
// Rounding float operations the compiler never fuses into an FMA (batch invariance: the same
// sum gives the same bits in every kernel).
WARD_FN float fadd(float a, float b) { return __fadd_rn(a, b); }
WARD_FN float fsub(float a, float b) { return __fsub_rn(a, b); }
WARD_FN float fmul(float a, float b) { return __fmul_rn(a, b); }
#else
#include <stdint.h>
#include <string.h>
#define WARD_FN static inline
#define WARD_GLOBAL
#define WARD_THREAD
static inline float h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 0) {
        if (man == 0) { bits = sign; }
        else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while (!(man & 1024)) { man <<= 1; exp--; }
            bits = sign | (exp << 23) | ((man & 1023) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
static inline int dp4a(int a, int b, int c) {
    for (int i = 0; i < 4; ++i) c += (int)(int8_t)(a >> (8 * i)) * (int)(int8_t)(b >> (8 * i));
    return c;
}
// Built with -ffp-contract=off, so these round as the device's __f*_rn do.
static inline float fadd(float a, float b) { return a + b; }
static inline float fsub(float a, float b) { return a - b; }
static inline float fmul(float a, float b) { return a * b; }
#endif

#define QK 32    // values in a legacy block and in an activation block
#define QK_K 256 // values in a K-quant super-block

// Weights. Field order and sizes are GGUF's; several blocks are only 2-byte aligned, so their
// quants are read with load_b2 (two 16-bit loads) rather than 32-bit loads.
struct block_q4_0 { uint16_t d; uint8_t qs[QK / 2]; };                            // 18 bytes
struct block_q4_1 { uint16_t d, m; uint8_t qs[QK / 2]; };                         // 20
struct block_q5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[QK / 2]; };             // 22
struct block_q5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK / 2]; };          // 24
struct block_q8_0 { uint16_t d; int8_t qs[QK]; };                                 // 34
struct block_q2_K { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; };      // 84
struct block_q3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; }; // 110
struct block_q4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };     // 144
struct block_q5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; }; // 176
struct block_q6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; }; // 210

// Activations: d, s = d·Σq, 32 int8 (llama.cpp's Q8_1); 4-byte aligned.
struct block_q8_1 { uint16_t d, s; int8_t qs[QK]; };                              // 36

// Four bytes at byte offset 4·i of a 2-byte aligned array.
WARD_FN int load_b2(const WARD_GLOBAL uint8_t* p, int i) {
    const WARD_GLOBAL uint16_t* h = (const WARD_GLOBAL uint16_t*)(p + 4 * i);
    return (int)h[0] | ((int)h[1] << 16);
}

WARD_FN int load_b4(const WARD_GLOBAL uint8_t* p, int i) { return ((const WARD_GLOBAL int*)p)[i]; }

// Bit k of the low 4 bits of `bits` moved to bit 4 of byte k: the fifth bit of 4 quants.
WARD_FN int spread_bit4(uint32_t bits) {
    return (int)(((bits & 1) << 4) | ((bits & 2) << 11) | ((bits & 4) << 18) | ((bits & 8) << 25));
}

// Q3_K's 16 six-bit scales: low 4 bits in bytes 0–7, high 2 bits in bytes 8–11.
WARD_FN int q3_K_scale(const WARD_GLOBAL uint8_t* s, int k) {
    const int w = k / 4, i = k % 4;
    const int low = ((w & 1 ? s[4 + i] : s[i]) >> (w >= 2 ? 4 : 0)) & 15;
    const int high = (s[8 + i] >> (2 * w)) & 3;
    return (low | (high << 4)) - 32;
}

// Q4_K and Q5_K's 8 six-bit scales and minimums packed in 12 bytes.
WARD_FN void scale_min_k4(int j, const WARD_GLOBAL uint8_t* q, WARD_THREAD int* sc, WARD_THREAD int* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}
