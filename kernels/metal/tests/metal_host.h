// Metal's kernel language as plain C++, enough to run kernels/metal on the host under
// kernels/cuda/tests/emulate.h (a threadgroup's threads as fibers, SIMD groups of 32 as its
// warps): address spaces vanish, shared arrays become statics, SIMD reductions are warp
// exchanges summed in lane order. What it cannot check: Metal's own compiler and its rules
// (address-space conversions, attribute placement), which only macOS has.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cmath>

typedef unsigned uint;
struct uint2 { unsigned x, y; };
struct uint3 { unsigned x, y, z; };
typedef _Float16 half;

#define kernel
#define device
#define constant const
#define thread
#define threadgroup
#define WARD_SHARED static

using std::exp;
using std::fabs;
using std::fmax;
using std::pow;
using std::rint;
using std::tanh;

enum class mem_flags { mem_threadgroup };
inline void threadgroup_barrier(mem_flags) { __syncthreads(); }

inline float simd_sum(float v) {
    int bits;
    memcpy(&bits, &v, 4);
    const int(*lanes)[3] = warp_exchange(bits, 0, 0);
    float sum = 0.0f;
    for (int i = 0; i < 32; ++i) {
        float x;
        memcpy(&x, &lanes[i][0], 4);
        sum += x;
    }
    return sum;
}

inline float simd_max(float v) {
    int bits;
    memcpy(&bits, &v, 4);
    const int(*lanes)[3] = warp_exchange(bits, 0, 0);
    float m = -INFINITY;
    for (int i = 0; i < 32; ++i) {
        float x;
        memcpy(&x, &lanes[i][0], 4);
        m = fmaxf(m, x);
    }
    return m;
}

inline float rsqrt(float x) { return 1.0f / sqrtf(x); }
inline float sincos(float x, float& c) {
    c = cosf(x);
    return sinf(x);
}

template <typename T, typename F> T as_type(F from) {
    static_assert(sizeof(T) == sizeof(F), "as_type keeps the size");
    T to;
    memcpy(&to, &from, sizeof(T));
    return to;
}
