//! AVX2 + FMA + F16C dot products, one per weight type. Integer products use `maddubs`
//! (unsigned × signed bytes → i16 pairs) and `madd` (→ i32), scales are applied once per block
//! (32 values) or per super-block (256, with the sub-block scales folded into the `madd`), and
//! the K-quants' minimums go through the Q8_K block sums without touching the values again.
//! Block layouts are documented in `dequant.rs`.

use std::arch::x86_64::*;

use super::dequant::{q3_k_scales, scale_min_k4};
use super::WeightType;

/// # Safety
/// The CPU must support AVX2, FMA and F16C; `w` must hold `blocks` blocks of `ty` and `a` the
/// activation blocks for them.
#[target_feature(enable = "avx2,fma,f16c")]
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

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16(p: *const u8) -> f32 {
    // SAFETY: the caller points at two readable bytes.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f32_at(p: *const u8) -> f32 {
    // SAFETY: the caller points at four readable bytes.
    unsafe { p.cast::<f32>().read_unaligned() }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: the caller points at 32 readable bytes.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 1)))
}

/// 16 bytes of nibbles as 32 bytes: low nibbles first, then high ones.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: the caller points at 16 readable bytes.
    let packed = unsafe { _mm_loadu_si128(p.cast()) };
    _mm256_and_si256(
        _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed),
        _mm256_set1_epi8(0x0f),
    )
}

/// The 32 bits at `p` as 32 bytes, 0xff where the bit is set.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bits_to_bytes(p: *const u8) -> __m256i {
    // SAFETY: the caller points at four readable bytes.
    let bits = unsafe { p.cast::<i32>().read_unaligned() };
    // Byte i gets source byte i / 8, then every bit but bit i % 8 is forced on.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits),
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        ),
    );
    let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi64x(-1))
}

/// Sums of pairs of products of unsigned `u` and signed `s` bytes, as eight i32.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// The same for two signed operands: `maddubs` wants one unsigned, so take |x| and move x's
/// sign onto y.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_i8_i8(x: __m256i, y: __m256i) -> __m256i {
    dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
}

/// A 256-bit vector of i16 whose low eight lanes are `lo` and high eight `hi` (the two scales
/// of a 32-value stream made of two 16-value sub-blocks).
#[target_feature(enable = "avx2,fma,f16c")]
fn two_scales(lo: i16, hi: i16) -> __m256i {
    _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo))
}

// Float weights: the activations come in the same format.

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_f32(w: *const u8, a: *const u8, n: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let main = n - n % 8;
    // SAFETY: n f32 values on both sides.
    unsafe {
        for i in (0..main).step_by(8) {
            let x = _mm256_loadu_ps(w.add(4 * i).cast());
            let y = _mm256_loadu_ps(a.add(4 * i).cast());
            acc = _mm256_fmadd_ps(x, y, acc);
        }
        let mut sum = hsum(acc);
        for i in main..n {
            sum += f32_at(w.add(4 * i)) * f32_at(a.add(4 * i));
        }
        sum
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_f16(w: *const u8, a: *const u8, n: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let main = n - n % 8;
    // SAFETY: n f16 values on both sides.
    unsafe {
        for i in (0..main).step_by(8) {
            let x = _mm256_cvtph_ps(_mm_loadu_si128(w.add(2 * i).cast()));
            let y = _mm256_cvtph_ps(_mm_loadu_si128(a.add(2 * i).cast()));
            acc = _mm256_fmadd_ps(x, y, acc);
        }
        let mut sum = hsum(acc);
        for i in main..n {
            sum += f16(w.add(2 * i)) * f16(a.add(2 * i));
        }
        sum
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_bf16(w: *const u8, a: *const u8, n: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let main = n - n % 8;
    // SAFETY: n bf16 values on both sides.
    unsafe {
        for i in (0..main).step_by(8) {
            acc = _mm256_fmadd_ps(bf16x8(w.add(2 * i)), bf16x8(a.add(2 * i)), acc);
        }
        let mut sum = hsum(acc);
        for i in main..n {
            sum += bf16(w.add(2 * i)) * bf16(a.add(2 * i));
        }
        sum
    }
}

/// Eight bf16 values as f32: a bf16 is the top half of an f32.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16x8(p: *const u8) -> __m256 {
    // SAFETY: the caller points at 16 readable bytes.
    let h = unsafe { _mm_loadu_si128(p.cast()) };
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
}

unsafe fn bf16(p: *const u8) -> f32 {
    // SAFETY: the caller points at two readable bytes.
    f32::from_bits(u32::from(unsafe { p.cast::<u16>().read_unaligned() }) << 16)
}

// 32-value blocks.

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for b in 0..blocks {
        // SAFETY: block b of 18 weight bytes and 34 activation bytes.
        unsafe {
            let (wb, ab) = (w.add(b * 18), a.add(b * 34));
            let q = _mm256_sub_epi8(nibbles(wb.add(2)), _mm256_set1_epi8(8));
            let p = dot_i8_i8(q, load(ab.add(2)));
            let d = _mm256_set1_ps(f16(wb) * f16(ab));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
        }
    }
    hsum(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0.0f32;
    for b in 0..blocks {
        // SAFETY: block b of 20 weight bytes and 36 activation bytes.
        unsafe {
            let (wb, ab) = (w.add(b * 20), a.add(b * 36));
            mins += f16(wb.add(2)) * f16(ab.add(2));
            let p = dot_u8_i8(nibbles(wb.add(4)), load(ab.add(4)));
            let d = _mm256_set1_ps(f16(wb) * f16(ab));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
        }
    }
    hsum(acc) + mins
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for b in 0..blocks {
        // SAFETY: block b of 22 weight bytes and 34 activation bytes.
        unsafe {
            let (wb, ab) = (w.add(b * 22), a.add(b * 34));
            // q − 16 as a signed byte: the nibble where the fifth bit is set, the nibble with
            // 0xf0 on top (nibble − 16) where it is not.
            let missing_high = _mm256_andnot_si256(bits_to_bytes(wb.add(2)), _mm256_set1_epi8(-16));
            let q = _mm256_or_si256(nibbles(wb.add(6)), missing_high);
            let p = dot_i8_i8(q, load(ab.add(2)));
            let d = _mm256_set1_ps(f16(wb) * f16(ab));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
        }
    }
    hsum(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0.0f32;
    for b in 0..blocks {
        // SAFETY: block b of 24 weight bytes and 36 activation bytes.
        unsafe {
            let (wb, ab) = (w.add(b * 24), a.add(b * 36));
            mins += f16(wb.add(2)) * f16(ab.add(2));
            let high = _mm256_and_si256(bits_to_bytes(wb.add(4)), _mm256_set1_epi8(16));
            let q = _mm256_or_si256(nibbles(wb.add(8)), high);
            let p = dot_u8_i8(q, load(ab.add(4)));
            let d = _mm256_set1_ps(f16(wb) * f16(ab));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
        }
    }
    hsum(acc) + mins
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for b in 0..blocks {
        // SAFETY: block b of 34 bytes on both sides.
        unsafe {
            let (wb, ab) = (w.add(b * 34), a.add(b * 34));
            let p = dot_i8_i8(load(wb.add(2)), load(ab.add(2)));
            let d = _mm256_set1_ps(f16(wb) * f16(ab));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
        }
    }
    hsum(acc)
}

// K-quants: 256-value super-blocks against Q8_K (f32 d at 0, 256 i8 at 4, 16 i16 sums at 260).

const Q8K: usize = 292;

/// Σ over the 16 groups of 16 activations of `group_weight[g] · bsum[g]`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn weighted_bsums(ab: *const u8, group_weight: __m256i) -> i32 {
    // SAFETY: the caller points at a Q8_K block.
    let bsums = unsafe { load(ab.add(260)) };
    hsum_i32(_mm256_madd_epi16(group_weight, bsums))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q2_k(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let three = _mm256_set1_epi8(3);
    let mut sum = 0.0f32;
    for b in 0..blocks {
        // SAFETY: block b of 84 weight bytes and one Q8_K block.
        unsafe {
            let (wb, ab) = (w.add(b * 84), a.add(b * Q8K));
            let scales = std::slice::from_raw_parts(wb, 16);
            let da = f32_at(ab);
            // Minimums: the high nibble of each scale byte, one per group of 16.
            let mins = _mm256_cvtepu8_epi16(_mm_srli_epi16(
                _mm_and_si128(_mm_loadu_si128(wb.cast()), _mm_set1_epi8(-16)),
                4,
            ));
            let min_sum = weighted_bsums(ab, mins);
            let mut sumi = _mm256_setzero_si256();
            for half in 0..2 {
                let bits = load(wb.add(16 + 32 * half));
                for shift in 0..4 {
                    let q = _mm256_and_si256(shift_right_2x(bits, shift), three);
                    let y = load(ab.add(4 + 128 * half + 32 * shift));
                    let is = 8 * half + 2 * shift;
                    let sc = two_scales(
                        i16::from(scales[is] & 0x0f),
                        i16::from(scales[is + 1] & 0x0f),
                    );
                    sumi =
                        _mm256_add_epi32(sumi, _mm256_madd_epi16(sc, _mm256_maddubs_epi16(q, y)));
                }
            }
            sum += da * f16(wb.add(80)) * hsum_i32(sumi) as f32
                - da * f16(wb.add(82)) * min_sum as f32;
        }
    }
    sum
}

/// `bits` shifted right by `2·k` bits within each 16-bit lane (k in 0..4).
#[target_feature(enable = "avx2,fma,f16c")]
fn shift_right_2x(bits: __m256i, k: usize) -> __m256i {
    match k {
        0 => bits,
        1 => _mm256_srli_epi16(bits, 2),
        2 => _mm256_srli_epi16(bits, 4),
        _ => _mm256_srli_epi16(bits, 6),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3_k(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let three = _mm256_set1_epi8(3);
    let mut sum = 0.0f32;
    for b in 0..blocks {
        // SAFETY: block b of 110 weight bytes and one Q8_K block.
        unsafe {
            let (wb, ab) = (w.add(b * 110), a.add(b * Q8K));
            let scales = q3_k_scales(std::slice::from_raw_parts(wb.add(96), 12));
            let hmask = load(wb);
            let mut sumi = _mm256_setzero_si256();
            for half in 0..2 {
                let bits = load(wb.add(32 + 32 * half));
                for shift in 0..4 {
                    let low = _mm256_and_si256(shift_right_2x(bits, shift), three);
                    // 4 where the high bit is clear: the value is low − that.
                    let bit = _mm256_set1_epi8((1u8 << (4 * half + shift)) as i8);
                    let clear =
                        _mm256_cmpeq_epi8(_mm256_and_si256(hmask, bit), _mm256_setzero_si256());
                    let minus = _mm256_and_si256(clear, _mm256_set1_epi8(4));
                    let y = load(ab.add(4 + 128 * half + 32 * shift));
                    let p = _mm256_sub_epi16(
                        _mm256_maddubs_epi16(low, y),
                        _mm256_maddubs_epi16(minus, y),
                    );
                    let is = 8 * half + 2 * shift;
                    let sc = two_scales(i16::from(scales[is]), i16::from(scales[is + 1]));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc, p));
                }
            }
            sum += f32_at(ab) * f16(wb.add(108)) * hsum_i32(sumi) as f32;
        }
    }
    sum
}

/// Scales and minimums of the eight sub-blocks of a Q4_K/Q5_K block.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k4_scales(p: *const u8) -> ([i16; 8], __m256i) {
    // SAFETY: the caller points at the 12 scale bytes.
    let s = unsafe { std::slice::from_raw_parts(p, 12) };
    let (mut sc, mut m) = ([0i16; 8], [0i16; 16]);
    for j in 0..8 {
        let (a, b) = scale_min_k4(j, s);
        sc[j] = i16::from(a);
        // Each sub-block of 32 covers two groups of 16 in the Q8_K sums.
        m[2 * j] = i16::from(b);
        m[2 * j + 1] = i16::from(b);
    }
    // SAFETY: 16 i16 values.
    (sc, unsafe { _mm256_loadu_si256(m.as_ptr().cast()) })
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let mut sum = 0.0f32;
    for b in 0..blocks {
        // SAFETY: block b of 144 weight bytes and one Q8_K block.
        unsafe {
            let (wb, ab) = (w.add(b * 144), a.add(b * Q8K));
            let (sc, mins) = k4_scales(wb.add(4));
            let min_sum = weighted_bsums(ab, mins);
            let mut sumi = _mm256_setzero_si256();
            for j in 0..4 {
                let bits = load(wb.add(16 + 32 * j));
                let lo = _mm256_and_si256(bits, low_nibbles);
                let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), low_nibbles);
                let y_lo = load(ab.add(4 + 64 * j));
                let y_hi = load(ab.add(4 + 64 * j + 32));
                let p_lo =
                    _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * j]), _mm256_maddubs_epi16(lo, y_lo));
                let p_hi = _mm256_madd_epi16(
                    _mm256_set1_epi16(sc[2 * j + 1]),
                    _mm256_maddubs_epi16(hi, y_hi),
                );
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
            }
            let da = f32_at(ab);
            sum += da * f16(wb) * hsum_i32(sumi) as f32 - da * f16(wb.add(2)) * min_sum as f32;
        }
    }
    sum
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_k(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let sixteen = _mm256_set1_epi8(16);
    let mut sum = 0.0f32;
    for b in 0..blocks {
        // SAFETY: block b of 176 weight bytes and one Q8_K block.
        unsafe {
            let (wb, ab) = (w.add(b * 176), a.add(b * Q8K));
            let (sc, mins) = k4_scales(wb.add(4));
            let min_sum = weighted_bsums(ab, mins);
            let qh = load(wb.add(16));
            let mut sumi = _mm256_setzero_si256();
            for j in 0..4 {
                let bits = load(wb.add(48 + 32 * j));
                let lo = _mm256_or_si256(
                    _mm256_and_si256(bits, low_nibbles),
                    bit_as(qh, 2 * j, sixteen),
                );
                let hi = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(bits, 4), low_nibbles),
                    bit_as(qh, 2 * j + 1, sixteen),
                );
                let y_lo = load(ab.add(4 + 64 * j));
                let y_hi = load(ab.add(4 + 64 * j + 32));
                let p_lo =
                    _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * j]), _mm256_maddubs_epi16(lo, y_lo));
                let p_hi = _mm256_madd_epi16(
                    _mm256_set1_epi16(sc[2 * j + 1]),
                    _mm256_maddubs_epi16(hi, y_hi),
                );
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
            }
            let da = f32_at(ab);
            sum += da * f16(wb) * hsum_i32(sumi) as f32 - da * f16(wb.add(2)) * min_sum as f32;
        }
    }
    sum
}

/// `value` in the bytes of `bits` whose bit `s` is set, 0 in the others.
#[target_feature(enable = "avx2,fma,f16c")]
fn bit_as(bits: __m256i, s: usize, value: __m256i) -> __m256i {
    let bit = _mm256_set1_epi8((1u8 << s) as i8);
    _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bits, bit), bit), value)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let three = _mm256_set1_epi8(3);
    let thirty_two = _mm256_set1_epi8(32);
    let mut sum = 0.0f32;
    for b in 0..blocks {
        // SAFETY: block b of 210 weight bytes and one Q8_K block.
        unsafe {
            let (wb, ab) = (w.add(b * 210), a.add(b * Q8K));
            let scales = std::slice::from_raw_parts(wb.add(192).cast::<i8>(), 16);
            let mut sumi = _mm256_setzero_si256();
            for half in 0..2 {
                let ql0 = load(wb.add(64 * half));
                let ql1 = load(wb.add(64 * half + 32));
                let qh = load(wb.add(128 + 32 * half));
                // Stream k holds values 32k..32k+32 of this half.
                let low = [
                    _mm256_and_si256(ql0, low_nibbles),
                    _mm256_and_si256(ql1, low_nibbles),
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), low_nibbles),
                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), low_nibbles),
                ];
                for (k, low) in low.into_iter().enumerate() {
                    let high = _mm256_slli_epi16(_mm256_and_si256(shift_right_2x(qh, k), three), 4);
                    let q = _mm256_or_si256(low, high);
                    let y = load(ab.add(4 + 128 * half + 32 * k));
                    // (q − 32)·y = q·y − 32·y.
                    let p = _mm256_sub_epi16(
                        _mm256_maddubs_epi16(q, y),
                        _mm256_maddubs_epi16(thirty_two, y),
                    );
                    let is = 8 * half + 2 * k;
                    let sc = two_scales(i16::from(scales[is]), i16::from(scales[is + 1]));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc, p));
                }
            }
            sum += f32_at(ab) * f16(wb.add(208)) * hsum_i32(sumi) as f32;
        }
    }
    sum
}
