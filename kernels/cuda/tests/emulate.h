// Runs Ward's CUDA kernels on the host, so their indexing, tails and summation order are tested
// on machines without a GPU: each CUDA thread of a block is a fiber (blocks run one after
// another), __syncthreads and the warp operations are barriers over the block's or the warp's
// threads, and mma.sync is computed from the lanes' fragments as the PTX ISA lays them out.
// Include before the kernel files, compiled with -DWARD_HOST. Timing means nothing here.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>

#include "host/cuda_fp16.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <vector>

using std::max;
using std::min;

struct dim3 { unsigned x = 1, y = 1, z = 1; };

static dim3 threadIdx, blockIdx, blockDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static
#define __restrict__

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }  // the default mode: to even

// The block's threads are fibers on one host thread, switched only where they wait, so a
// block of 128 threads costs microseconds per barrier rather than 128 context switches.
struct Barrier;
struct Fiber {
    ucontext_t ctx;
    std::vector<char> stack;
    unsigned tid;
    bool done;
    const Barrier* waiting;     // the barrier this fiber waits at, if any,
    unsigned long waiting_gen;  // and its generation then
};
static std::vector<Fiber> fibers;
static ucontext_t scheduler;
static unsigned current;
static const std::function<void()>* kernel_body;

inline void yield_fiber() {
    const unsigned me = current;
    swapcontext(&fibers[me].ctx, &scheduler);
    threadIdx = dim3{fibers[me].tid, 0, 0};
}

static void fiber_main() {
    (*kernel_body)();
    fibers[current].done = true;
    swapcontext(&fibers[current].ctx, &scheduler);
}

struct Barrier {
    unsigned expected, count = 0;
    unsigned long generation = 0;
    void wait() {
        const unsigned long g = generation;
        if (++count == expected) {
            count = 0;
            generation++;
            return;
        }
        fibers[current].waiting = this;
        fibers[current].waiting_gen = g;
        while (generation == g) yield_fiber();
        fibers[current].waiting = nullptr;
    }
};

static Barrier block_barrier{0};
static std::vector<Barrier> warp_barriers;
static int warp_slots[2][1024 / 32][32][3];  // what each lane offers a warp operation
static unsigned exchanges[1024];  // each thread's count, picking the slots

inline void __syncthreads() { block_barrier.wait(); }

inline void warp_sync() { warp_barriers[threadIdx.x / 32].wait(); }

// Lane `lane` of the warp offers up to three ints; returns every lane's offer after all arrive.
// Consecutive exchanges use alternate slots, so one barrier each suffices: a lane writing the
// slots again has passed the barrier every lane passed after reading them.
inline const int (*warp_exchange(int a, int b, int c))[3] {
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    int(*slots)[3] = warp_slots[exchanges[threadIdx.x]++ % 2][w];
    slots[lane][0] = a;
    slots[lane][1] = b;
    slots[lane][2] = c;
    warp_sync();
    return slots;
}

inline float __shfl_sync(unsigned, float v, int src, int width = 32) {
    int bits;
    memcpy(&bits, &v, 4);
    const int lane = threadIdx.x % 32, from = lane / width * width + src % width;
    const int got = warp_exchange(bits, 0, 0)[from][0];
    float r;
    memcpy(&r, &got, 4);
    return r;
}

inline float __shfl_xor_sync(unsigned mask, float v, int o) {
    return __shfl_sync(mask, v, (int)(threadIdx.x % 32) ^ o);
}

// mma.sync.m16n8k16.row.col.s32.s8.s8.s32 with zero accumulators: lane 4g + t holds A's rows g
// and g + 8, bytes 4t..4t+3 (a0, a1), B's column g, bytes 4t..4t+3 (b), and gets D's rows g and
// g + 8 × columns 2t and 2t + 1.
inline void host_mma_s8_16x8x16(int d[4], int a0, int a1, int b) {
    const int(*f)[3] = warp_exchange(a0, a1, b);
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    auto byte = [](int word, int i) { return (int)(int8_t)(word >> (8 * i)); };
    for (int e = 0; e < 4; ++e) {
        const int row = g + (e < 2 ? 0 : 8), col = 2 * t + (e & 1);
        int sum = 0;
        for (int k = 0; k < 16; ++k) {
            const int* a_lane = f[4 * (row % 8) + k / 4];  // the lane holding A[row][k]
            const int a = byte(row < 8 ? a_lane[0] : a_lane[1], k % 4);
            const int bv = byte(f[4 * col + k / 4][2], k % 4);  // the lane holding B[k][col]
            sum += a * bv;
        }
        d[e] = sum;
    }
}

// Run `kernel` over a grid of `grid` blocks (x, y and z) of `threads` threads (a multiple of 32).
inline void launch(dim3 grid, unsigned threads, const std::function<void()>& kernel) {
    blockDim = dim3{threads, 1, 1};
    block_barrier = Barrier{threads};
    warp_barriers.assign(threads / 32, Barrier{32});
    kernel_body = &kernel;
    fibers.resize(threads);
    for (unsigned b = 0; b < grid.x * grid.y * grid.z; ++b) {
        blockIdx = dim3{b % grid.x, b / grid.x % grid.y, b / (grid.x * grid.y)};
        for (unsigned t = 0; t < threads; ++t) {
            Fiber& f = fibers[t];
            f.stack.resize(256 * 1024);
            f.tid = t;
            f.done = false;
            f.waiting = nullptr;
            exchanges[t] = 0;
            getcontext(&f.ctx);
            f.ctx.uc_stack.ss_sp = f.stack.data();
            f.ctx.uc_stack.ss_size = f.stack.size();
            f.ctx.uc_link = nullptr;
            makecontext(&f.ctx, fiber_main, 0);
        }
        for (bool running = true; running;) {
            running = false;
            for (unsigned t = 0; t < threads; ++t) {
                const Fiber& f = fibers[t];
                if (f.done) continue;
                running = true;
                if (f.waiting && f.waiting->generation == f.waiting_gen) continue;  // still blocked
                current = t;
                threadIdx = dim3{t, 0, 0};
                swapcontext(&scheduler, &fibers[t].ctx);
            }
        }
    }
}
