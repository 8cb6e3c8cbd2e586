// Stand-in for CUDA's cuda_fp16.h when kernels/cuda runs on the host (tests/emulate.h): f16 as
// GCC's _Float16, whose conversions round to nearest even as the device's do.
#pragma once
#include <stdint.h>
#include <string.h>

struct __half { uint16_t bits; };

inline __half __float2half_rn(float f) {
    const _Float16 h = (_Float16)f;
    __half r;
    memcpy(&r.bits, &h, 2);
    return r;
}

inline float __half2float(__half h) {
    _Float16 f;
    memcpy(&f, &h.bits, 2);
    return (float)f;
}

inline uint16_t __half_as_ushort(__half h) { return h.bits; }
inline __half __ushort_as_half(uint16_t bits) { return __half{bits}; }
