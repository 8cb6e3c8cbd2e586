//! NEON dot products, one per weight type: the aarch64 counterpart of `avx2.rs`.
//!
//! Only baseline Advanced SIMD, which every aarch64 CPU has, so there is no run-time check. The
//! functions still say `#[target_feature(enable = "neon")]`: Rust wants it in the calling
//! function, not just in the build, before an intrinsic may be called outside `unsafe`. CPUs
//! with the dot-product extension run the dotprod tier (`dotprod_x8.rs`) for the quantized
//! types and these functions for the float ones.
//!
//! Integer products use `vmull_s8` (i8 × i8 → i16 per product, so even −128 · −128 fits, with
//! no pair sums that could overflow as `maddubs` can) and `vpadalq_s16` (pairs → i32). Scales
//! are applied to the i32 sums: per 32-value block in f32, per K-quant sub-block with
//! `vmlaq_n_s32` and the super-block scale once in f32; the K-quants' minimums go through the
//! Q8_K block sums without touching the values again. Block layouts are documented in
//! `dequant.rs`.
//!
//! Vector loads are byte loads (`vld1q_u8`, `vld1_u8`) reinterpreted as wider lanes and scalars
//! are read unaligned, so no pointer needs more than byte alignment. Both take the file's
//! little-endian bytes as native numbers, which is why `mod.rs` builds this tier for
//! little-endian aarch64 only.

use std::arch::aarch64::*;

use super::dequant::{q3_k_scales, scale_min_k4};
use super::WeightType;

/// # Safety
/// `w` must hold `blocks` blocks of `ty` and `a` the activation blocks for them.
#[target_feature(enable = "neon")]
pub unsafe fn vec_dot(ty: WeightType, w: &[u8], a: &[u8], blocks: usize) -> f32 {
    let (w, a) = (w.as_ptr(), a.as_ptr());
    // SAFETY: forwarded from the caller.
    unsafe {
        match ty {
            WeightType::F32 => f32_f32(w, a, blocks),
            WeightType::F16 => f16_f16(w, a, blocks),
            WeightType::BF16 => bf16_bf16(w, a, blocks),
            WeightType::Q4_0 => q4_0(w, a, blocks),
            WeightType::Q4_1 => q4_1(w, a, blocks),
            WeightType::Q5_0 => q5_0(w, a, blocks),
            WeightType::Q5_1 => q5_1(w, a, blocks),
            WeightType::Q8_0 => q8_0(w, a, blocks),
            WeightType::Q2_K => q2_k(w, a, blocks),
            WeightType::Q3_K => q3_k(w, a, blocks),
            WeightType::Q4_K => q4_k(w, a, blocks),
            WeightType::Q5_K => q5_k(w, a, blocks),
            WeightType::Q6_K => q6_k(w, a, blocks),
        }
    }
}

// Small helpers. All read unaligned memory the caller vouches for.

/// The f16 at `p` as f32, with `fcvtl` (half → single is baseline on aarch64; only f16
/// arithmetic needs the `fp16` extension).
#[target_feature(enable = "neon")]
pub(super) unsafe fn f16(p: *const u8) -> f32 {
    // SAFETY: the caller points at two readable bytes.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    vgetq_lane_f32::<0>(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(bits))))
}

#[target_feature(enable = "neon")]
pub(super) unsafe fn f32_at(p: *const u8) -> f32 {
    // SAFETY: the caller points at four readable bytes.
    unsafe { p.cast::<f32>().read_unaligned() }
}

/// 16 bytes at `p`.
#[target_feature(enable = "neon")]
unsafe fn bytes(p: *const u8) -> uint8x16_t {
    // SAFETY: the caller points at 16 readable bytes.
    unsafe { vld1q_u8(p) }
}

/// 16 signed bytes at `p` (activations, Q8_0 weights).
#[target_feature(enable = "neon")]
unsafe fn load(p: *const u8) -> int8x16_t {
    // SAFETY: the caller points at 16 readable bytes.
    vreinterpretq_s8_u8(unsafe { bytes(p) })
}

#[target_feature(enable = "neon")]
fn signed(v: uint8x16_t) -> int8x16_t {
    vreinterpretq_s8_u8(v)
}

/// Σ x·y over 16 signed bytes, as four i32 partial sums.
#[target_feature(enable = "neon")]
fn dot16(x: int8x16_t, y: int8x16_t) -> int32x4_t {
    let lo = vmull_s8(vget_low_s8(x), vget_low_s8(y));
    let hi = vmull_high_s8(x, y);
    vpadalq_s16(vpaddlq_s16(lo), hi)
}

/// Σ x·y over one 32-value stream: weights `x` (values 0..16, then 16..32), activations at `y`.
#[target_feature(enable = "neon")]
unsafe fn dot32(x: [int8x16_t; 2], y: *const u8) -> int32x4_t {
    // SAFETY: the caller points at 32 readable bytes.
    unsafe { vaddq_s32(dot16(x[0], load(y)), dot16(x[1], load(y.add(16)))) }
}

/// 16 bytes of nibbles as 32 values: low nibbles (values 0..16), then high ones (16..32).
#[target_feature(enable = "neon")]
unsafe fn nibbles(p: *const u8) -> [uint8x16_t; 2] {
    // SAFETY: the caller points at 16 readable bytes.
    let packed = unsafe { bytes(p) };
    [vandq_u8(packed, vdupq_n_u8(0x0f)), vshrq_n_u8::<4>(packed)]
}

/// The 32 bits at `p` as 32 bytes, 0xff where the bit is set.
#[target_feature(enable = "neon")]
unsafe fn bits_to_bytes(p: *const u8) -> [uint8x16_t; 2] {
    // SAFETY: the caller points at four readable bytes.
    let b = unsafe { std::slice::from_raw_parts(p, 4) };
    // Byte i holds source byte i / 8, tested against bit i % 8.
    let bit = vreinterpretq_u8_u64(vdupq_n_u64(0x8040_2010_0804_0201));
    let spread = |lo: u8, hi: u8| vtstq_u8(vcombine_u8(vdup_n_u8(lo), vdup_n_u8(hi)), bit);
    [spread(b[0], b[1]), spread(b[2], b[3])]
}

/// 0xff in the bytes of `bits` whose bit `s` is set, 0 in the others.
#[target_feature(enable = "neon")]
fn bit_set(bits: uint8x16_t, s: usize) -> uint8x16_t {
    vtstq_u8(bits, vdupq_n_u8(1 << s))
}

/// `bits` shifted right by `2·k` bits within each byte (k in 0..4).
#[target_feature(enable = "neon")]
fn shift_right_2x(bits: uint8x16_t, k: usize) -> uint8x16_t {
    match k {
        0 => bits,
        1 => vshrq_n_u8::<2>(bits),
        2 => vshrq_n_u8::<4>(bits),
        _ => vshrq_n_u8::<6>(bits),
    }
}

// Float weights: the activations come in the same format. Two accumulators of four lanes, so
// consecutive fused multiply-adds do not wait on each other.

/// Σ x·y over `n` values of `size` bytes each, `lanes` turning four values at a pointer into
/// f32 and `one` a single value, for the tail.
#[target_feature(enable = "neon")]
unsafe fn float_dot(
    w: *const u8,
    a: *const u8,
    n: usize,
    size: usize,
    lanes: impl Fn(*const u8) -> float32x4_t,
    one: impl Fn(*const u8) -> f32,
) -> f32 {
    let mut acc = [vdupq_n_f32(0.0); 2];
    let main = n - n % 8;
    for i in (0..main).step_by(8) {
        for (h, acc) in acc.iter_mut().enumerate() {
            let at = size * (i + 4 * h);
            // SAFETY: values i..i + 8 are within n on both sides.
            *acc = unsafe { vfmaq_f32(*acc, lanes(w.add(at)), lanes(a.add(at))) };
        }
    }
    let mut sum = vaddvq_f32(vaddq_f32(acc[0], acc[1]));
    for i in main..n {
        // SAFETY: value i is within n on both sides.
        sum += unsafe { one(w.add(size * i)) * one(a.add(size * i)) };
    }
    sum
}

#[target_feature(enable = "neon")]
unsafe fn f32_f32(w: *const u8, a: *const u8, n: usize) -> f32 {
    // SAFETY: n f32 values on both sides; the closures get pointers into them.
    unsafe {
        float_dot(
            w,
            a,
            n,
            4,
            |p| vreinterpretq_f32_u8(bytes(p)),
            |p| f32_at(p),
        )
    }
}

#[target_feature(enable = "neon")]
unsafe fn f16_f16(w: *const u8, a: *const u8, n: usize) -> f32 {
    // SAFETY: n f16 values on both sides; the closures get pointers into them.
    unsafe {
        float_dot(
            w,
            a,
            n,
            2,
            |p| vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p))),
            |p| f16(p),
        )
    }
}

#[target_feature(enable = "neon")]
unsafe fn bf16_bf16(w: *const u8, a: *const u8, n: usize) -> f32 {
    // A bf16 is the top half of an f32.
    // SAFETY: n bf16 values on both sides; the closures get pointers into them.
    unsafe {
        float_dot(
            w,
            a,
            n,
            2,
            |p| vreinterpretq_f32_u32(vshll_n_u16::<16>(vreinterpret_u16_u8(vld1_u8(p)))),
            |p| f32::from_bits(u32::from(p.cast::<u16>().read_unaligned()) << 16),
        )
    }
}

// 32-value blocks. They differ only in how the weights decode; the activations (Q8_0 or Q8_1)
// start with f16 d and end with their 32 i8.

/// Σ over the blocks of d_w·d_a·Σ q·y: weight blocks of `w_size` bytes with f16 d first,
/// `decode` turning one into its 32 values; activation blocks of `a_size` bytes.
#[target_feature(enable = "neon")]
unsafe fn blocks_32(
    w: *const u8,
    w_size: usize,
    a: *const u8,
    a_size: usize,
    blocks: usize,
    decode: impl Fn(*const u8) -> [int8x16_t; 2],
) -> f32 {
    let mut sum = 0.0f32;
    for b in 0..blocks {
        // SAFETY: block b on both sides.
        unsafe {
            let (wb, ab) = (w.add(b * w_size), a.add(b * a_size));
            let p = vaddvq_s32(dot32(decode(wb), ab.add(a_size - 32)));
            sum += f16(wb) * f16(ab) * p as f32;
        }
    }
    sum
}

/// Σ over the blocks of Q4_1/Q5_1's minimum times Q8_1's d·Σq (f16 at 2 on both sides).
#[target_feature(enable = "neon")]
unsafe fn minimums(w: *const u8, w_size: usize, a: *const u8, blocks: usize) -> f32 {
    // SAFETY: block b on both sides.
    (0..blocks)
        .map(|b| unsafe { f16(w.add(b * w_size + 2)) * f16(a.add(b * 36 + 2)) })
        .sum()
}

#[target_feature(enable = "neon")]
unsafe fn q4_0(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    // SAFETY: blocks of 18 weight bytes and 34 activation bytes.
    unsafe {
        blocks_32(w, 18, a, 34, blocks, |wb| {
            nibbles(wb.add(2)).map(|q| vsubq_s8(signed(q), vdupq_n_s8(8)))
        })
    }
}

#[target_feature(enable = "neon")]
unsafe fn q4_1(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    // SAFETY: blocks of 20 weight bytes and 36 activation bytes.
    unsafe {
        blocks_32(w, 20, a, 36, blocks, |wb| {
            let [lo, hi] = nibbles(wb.add(4));
            [signed(lo), signed(hi)]
        }) + minimums(w, 20, a, blocks)
    }
}

#[target_feature(enable = "neon")]
unsafe fn q5_0(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    // SAFETY: blocks of 22 weight bytes and 34 activation bytes.
    unsafe {
        blocks_32(w, 22, a, 34, blocks, |wb| {
            let (low, high) = (nibbles(wb.add(6)), bits_to_bytes(wb.add(2)));
            // q − 16 as a signed byte: the nibble where the fifth bit is set, the nibble with
            // 0xf0 on top (nibble − 16) where it is not.
            [0, 1].map(|i| signed(vorrq_u8(low[i], vbicq_u8(vdupq_n_u8(0xf0), high[i]))))
        })
    }
}

#[target_feature(enable = "neon")]
unsafe fn q5_1(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    // SAFETY: blocks of 24 weight bytes and 36 activation bytes.
    unsafe {
        blocks_32(w, 24, a, 36, blocks, |wb| {
            let (low, high) = (nibbles(wb.add(8)), bits_to_bytes(wb.add(4)));
            [0, 1].map(|i| signed(vorrq_u8(low[i], vandq_u8(high[i], vdupq_n_u8(16)))))
        }) + minimums(w, 24, a, blocks)
    }
}

#[target_feature(enable = "neon")]
unsafe fn q8_0(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    // SAFETY: blocks of 34 bytes on both sides.
    unsafe {
        blocks_32(w, 34, a, 34, blocks, |wb| {
            [load(wb.add(2)), load(wb.add(18))]
        })
    }
}

// K-quants: 256-value super-blocks against Q8_K (f32 d at 0, 256 i8 at 4, 16 i16 sums at 260).
// Group g of 16 values (16 groups) is multiplied with the activations at 4 + 16g.

const Q8K: usize = 292;

/// Σ over the 16 groups of 16 activations of `group_weight[g] · bsum[g]`.
#[target_feature(enable = "neon")]
unsafe fn weighted_bsums(ab: *const u8, group_weight: [int16x8_t; 2]) -> i32 {
    // SAFETY: the caller points at a Q8_K block.
    let bsums = unsafe { [260, 276].map(|at| vreinterpretq_s16_u8(bytes(ab.add(at)))) };
    let mut s = vdupq_n_s32(0);
    for (g, b) in group_weight.into_iter().zip(bsums) {
        s = vmlal_s16(s, vget_low_s16(g), vget_low_s16(b));
        s = vmlal_high_s16(s, g, b);
    }
    vaddvq_s32(s)
}

/// 16 bytes as 16 i16 (all below 0x80, so sign does not matter).
#[target_feature(enable = "neon")]
fn widen(v: uint8x16_t) -> [int16x8_t; 2] {
    [
        vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(v))),
        vreinterpretq_s16_u16(vmovl_high_u8(v)),
    ]
}

#[target_feature(enable = "neon")]
unsafe fn q2_k(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let three = vdupq_n_u8(3);
    let mut sum = 0.0f32;
    for b in 0..blocks {
        // SAFETY: block b of 84 weight bytes and one Q8_K block.
        unsafe {
            let (wb, ab) = (w.add(b * 84), a.add(b * Q8K));
            let scales = std::slice::from_raw_parts(wb, 16);
            // Minimums: the high nibble of each scale byte, one per group of 16.
            let min_sum = weighted_bsums(ab, widen(vshrq_n_u8::<4>(bytes(wb))));
            let mut sumi = vdupq_n_s32(0);
            for half in 0..2 {
                let bits = [bytes(wb.add(16 + 32 * half)), bytes(wb.add(32 + 32 * half))];
                for shift in 0..4 {
                    for (h, &bits) in bits.iter().enumerate() {
                        let q = vandq_u8(shift_right_2x(bits, shift), three);
                        let g = 8 * half + 2 * shift + h;
                        let p = dot16(signed(q), load(ab.add(4 + 16 * g)));
                        sumi = vmlaq_n_s32(sumi, p, i32::from(scales[g] & 0x0f));
                    }
                }
            }
            let da = f32_at(ab);
            sum += da * f16(wb.add(80)) * vaddvq_s32(sumi) as f32
                - da * f16(wb.add(82)) * min_sum as f32;
        }
    }
    sum
}

#[target_feature(enable = "neon")]
unsafe fn q3_k(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let (three, four) = (vdupq_n_u8(3), vdupq_n_u8(4));
    let mut sum = 0.0f32;
    for b in 0..blocks {
        // SAFETY: block b of 110 weight bytes and one Q8_K block.
        unsafe {
            let (wb, ab) = (w.add(b * 110), a.add(b * Q8K));
            let scales = q3_k_scales(std::slice::from_raw_parts(wb.add(96), 12));
            let hmask = [bytes(wb), bytes(wb.add(16))];
            let mut sumi = vdupq_n_s32(0);
            for half in 0..2 {
                let bits = [bytes(wb.add(32 + 32 * half)), bytes(wb.add(48 + 32 * half))];
                for shift in 0..4 {
                    for h in 0..2 {
                        let low = vandq_u8(shift_right_2x(bits[h], shift), three);
                        // 4 where the high bit is clear: the value is low − that.
                        let minus = vbicq_u8(four, bit_set(hmask[h], 4 * half + shift));
                        let q = vsubq_s8(signed(low), signed(minus));
                        let g = 8 * half + 2 * shift + h;
                        let p = dot16(q, load(ab.add(4 + 16 * g)));
                        sumi = vmlaq_n_s32(sumi, p, i32::from(scales[g]));
                    }
                }
            }
            sum += f32_at(ab) * f16(wb.add(108)) * vaddvq_s32(sumi) as f32;
        }
    }
    sum
}

/// Scales and minimums of the eight sub-blocks of a Q4_K/Q5_K block; the minimums once per
/// group of 16, as `weighted_bsums` takes them.
#[target_feature(enable = "neon")]
unsafe fn k4_scales(p: *const u8) -> ([i32; 8], [int16x8_t; 2]) {
    // SAFETY: the caller points at the 12 scale bytes.
    let s = unsafe { std::slice::from_raw_parts(p, 12) };
    let (mut sc, mut m) = ([0i32; 8], [0u8; 16]);
    for j in 0..8 {
        let (a, b) = scale_min_k4(j, s);
        sc[j] = i32::from(a);
        // Each sub-block of 32 covers two groups of 16 in the Q8_K sums.
        m[2 * j] = b;
        m[2 * j + 1] = b;
    }
    // SAFETY: 16 bytes.
    (sc, widen(unsafe { bytes(m.as_ptr()) }))
}

/// Q4_K and Q5_K: four 32-byte chunks of nibbles (at `qs`), each the low nibbles of sub-block
/// 2j and the high nibbles of 2j + 1; `high` gives the fifth bits of sub-block s, as 16 in the
/// bytes where they are set (all 0 for Q4_K).
#[target_feature(enable = "neon")]
unsafe fn k4_sum(
    wb: *const u8,
    ab: *const u8,
    qs: usize,
    high: impl Fn(usize) -> [uint8x16_t; 2],
) -> f32 {
    // SAFETY: the caller points at one weight block and one Q8_K block.
    unsafe {
        let (sc, mins) = k4_scales(wb.add(4));
        let min_sum = weighted_bsums(ab, mins);
        let mut sumi = vdupq_n_s32(0);
        for j in 0..4 {
            let [lo0, hi0] = nibbles(wb.add(qs + 32 * j));
            let [lo1, hi1] = nibbles(wb.add(qs + 32 * j + 16));
            for (h, q) in [[lo0, lo1], [hi0, hi1]].into_iter().enumerate() {
                let s = 2 * j + h;
                let high = high(s);
                let q = [0, 1].map(|i| signed(vorrq_u8(q[i], high[i])));
                let p = dot32(q, ab.add(4 + 32 * s));
                sumi = vmlaq_n_s32(sumi, p, sc[s]);
            }
        }
        let da = f32_at(ab);
        da * f16(wb) * vaddvq_s32(sumi) as f32 - da * f16(wb.add(2)) * min_sum as f32
    }
}

#[target_feature(enable = "neon")]
unsafe fn q4_k(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let no_high_bits = [vdupq_n_u8(0); 2];
    let mut sum = 0.0f32;
    for b in 0..blocks {
        // SAFETY: block b of 144 weight bytes and one Q8_K block.
        sum += unsafe { k4_sum(w.add(b * 144), a.add(b * Q8K), 16, |_| no_high_bits) };
    }
    sum
}

#[target_feature(enable = "neon")]
unsafe fn q5_k(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let sixteen = vdupq_n_u8(16);
    let mut sum = 0.0f32;
    for b in 0..blocks {
        // SAFETY: block b of 176 weight bytes and one Q8_K block.
        unsafe {
            let wb = w.add(b * 176);
            // Bit s of qh[l] is the fifth bit of value l of sub-block s.
            let qh = [bytes(wb.add(16)), bytes(wb.add(32))];
            sum += k4_sum(wb, a.add(b * Q8K), 48, |s| {
                qh.map(|qh| vandq_u8(bit_set(qh, s), sixteen))
            });
        }
    }
    sum
}

#[target_feature(enable = "neon")]
unsafe fn q6_k(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let (low_nibbles, three) = (vdupq_n_u8(0x0f), vdupq_n_u8(3));
    let mut sum = 0.0f32;
    for b in 0..blocks {
        // SAFETY: block b of 210 weight bytes and one Q8_K block.
        unsafe {
            let (wb, ab) = (w.add(b * 210), a.add(b * Q8K));
            let scales = std::slice::from_raw_parts(wb.add(192).cast::<i8>(), 16);
            let mut sumi = vdupq_n_s32(0);
            for half in 0..2 {
                // Values l and l + 16 of each 32-value stream come from the same byte offsets.
                for c in 0..2 {
                    let ql0 = bytes(wb.add(64 * half + 16 * c));
                    let ql1 = bytes(wb.add(64 * half + 32 + 16 * c));
                    let qh = bytes(wb.add(128 + 32 * half + 16 * c));
                    // Stream k holds values 32k..32k+32 of this half.
                    let low = [
                        vandq_u8(ql0, low_nibbles),
                        vandq_u8(ql1, low_nibbles),
                        vshrq_n_u8::<4>(ql0),
                        vshrq_n_u8::<4>(ql1),
                    ];
                    for (k, low) in low.into_iter().enumerate() {
                        let high = vshlq_n_u8::<4>(vandq_u8(shift_right_2x(qh, k), three));
                        let q = vsubq_s8(signed(vorrq_u8(low, high)), vdupq_n_s8(32));
                        let g = 8 * half + 2 * k + c;
                        let p = dot16(q, load(ab.add(4 + 16 * g)));
                        sumi = vmlaq_n_s32(sumi, p, i32::from(scales[g]));
                    }
                }
            }
            sum += f32_at(ab) * f16(wb.add(208)) * vaddvq_s32(sumi) as f32;
        }
    }
    sum
}
