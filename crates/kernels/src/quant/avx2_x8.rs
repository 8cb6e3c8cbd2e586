//! AVX2 products of one row group (8 interleaved rows, see `interleave.rs`) with one activation
//! row. Lane j of every register belongs to row j: four bytes of a row's values meet the same
//! four activation bytes (broadcast), `maddubs` + `madd` sum them into lane j, and the 8 scales
//! of a tile convert with one `vcvtph2ps`.

use std::arch::x86_64::*;

use super::interleave::tile_layout;
use super::WeightType;

/// The 8 dot products of a group's `blocks` tiles with activation row `a`, into `out`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `tiles` must hold `blocks` tiles of `ty` and `a`
/// the activation blocks for them.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn gemv_x8(ty: WeightType, tiles: &[u8], a: &[u8], blocks: usize, out: &mut [f32; 8]) {
    let (t, a) = (tiles.as_ptr(), a.as_ptr());
    // SAFETY: forwarded from the caller.
    let acc = unsafe {
        match ty {
            WeightType::Q4_0 => q4_0(t, a, blocks),
            WeightType::Q4_1 => q4_1(t, a, blocks),
            WeightType::Q5_0 => q5_0(t, a, blocks),
            WeightType::Q5_1 => q5_1(t, a, blocks),
            WeightType::Q8_0 => q8_0(t, a, blocks),
            _ => unreachable!("{ty:?} has no interleaved layout"),
        }
    };
    // SAFETY: `out` holds 8 floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), acc) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: the caller points at 32 readable bytes.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// Eight f16 as f32.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16x8(p: *const u8) -> __m256 {
    // SAFETY: the caller points at 16 readable bytes.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16(p: *const u8) -> f32 {
    // SAFETY: the caller points at two readable bytes.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// Four activation bytes in every lane.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn broadcast4(p: *const u8) -> __m256i {
    // SAFETY: the caller points at four readable bytes.
    _mm256_set1_epi32(unsafe { p.cast::<i32>().read_unaligned() })
}

/// The 32 bits at `p` as 32 bytes, `value` where the bit is set and 0 elsewhere.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bits_as(p: *const u8, value: __m256i) -> __m256i {
    // SAFETY: the caller points at four readable bytes.
    let bits = unsafe { p.cast::<i32>().read_unaligned() };
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
    let set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi64x(-1));
    _mm256_and_si256(set, value)
}

/// `maddubs` of signed `x` with `y`: |x| unsigned, x's sign moved onto y.
#[target_feature(enable = "avx2,fma,f16c")]
fn maddubs_signed(x: __m256i, y: __m256i) -> __m256i {
    _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
}

/// Sums of i16 pairs as i32 lanes, as f32.
#[target_feature(enable = "avx2,fma,f16c")]
fn pairs_to_f32(v: __m256i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_madd_epi16(v, _mm256_set1_epi16(1)))
}

/// The i16 pair sums of one tile of a 4-bit format against its activation block: `values` is
/// applied to each unpacked register (to add fifth bits or an offset) before the product. Sums
/// stay within i16 when |value| ≤ 16 (at most 8 · 2 · 16 · 127 = 32512).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibble_tile_sums(
    qs: *const u8,
    qa: *const u8,
    signed: bool,
    mut values: impl FnMut(usize, __m256i) -> __m256i,
) -> __m256i {
    let low = _mm256_set1_epi8(0x0f);
    let mut sum = _mm256_setzero_si256();
    for k in 0..4 {
        // SAFETY: vector k of the tile and activation bytes 8k..8k+8.
        unsafe {
            let v = load(qs.add(32 * k));
            let lo = values(2 * k, _mm256_and_si256(v, low));
            let hi = values(2 * k + 1, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
            let (ya, yb) = (broadcast4(qa.add(8 * k)), broadcast4(qa.add(8 * k + 4)));
            let (pa, pb) = if signed {
                (maddubs_signed(lo, ya), maddubs_signed(hi, yb))
            } else {
                (_mm256_maddubs_epi16(lo, ya), _mm256_maddubs_epi16(hi, yb))
            };
            sum = _mm256_add_epi16(sum, _mm256_add_epi16(pa, pb));
        }
    }
    sum
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0(t: *const u8, a: *const u8, blocks: usize) -> __m256 {
    let l = tile_layout(WeightType::Q4_0);
    let eight = _mm256_set1_epi8(8);
    let mut acc = _mm256_setzero_ps();
    for b in 0..blocks {
        // SAFETY: tile b (144 bytes) and activation block b (34 bytes).
        unsafe {
            let (tb, ab) = (t.add(b * 144), a.add(b * 34));
            let sums = nibble_tile_sums(tb.add(l.values), ab.add(2), true, |_, v| {
                _mm256_sub_epi8(v, eight)
            });
            let d = _mm256_mul_ps(f16x8(tb), _mm256_set1_ps(f16(ab)));
            acc = _mm256_fmadd_ps(d, pairs_to_f32(sums), acc);
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1(t: *const u8, a: *const u8, blocks: usize) -> __m256 {
    let l = tile_layout(WeightType::Q4_1);
    let mut acc = _mm256_setzero_ps();
    for b in 0..blocks {
        // SAFETY: tile b (160 bytes) and activation block b (36 bytes).
        unsafe {
            let (tb, ab) = (t.add(b * 160), a.add(b * 36));
            let sums = nibble_tile_sums(tb.add(l.values), ab.add(4), false, |_, v| v);
            let d = _mm256_mul_ps(f16x8(tb), _mm256_set1_ps(f16(ab)));
            acc = _mm256_fmadd_ps(d, pairs_to_f32(sums), acc);
            acc = _mm256_fmadd_ps(f16x8(tb.add(l.min)), _mm256_set1_ps(f16(ab.add(2))), acc);
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0(t: *const u8, a: *const u8, blocks: usize) -> __m256 {
    let l = tile_layout(WeightType::Q5_0);
    let minus_16 = _mm256_set1_epi8(-16);
    let mut acc = _mm256_setzero_ps();
    for b in 0..blocks {
        // SAFETY: tile b (176 bytes) and activation block b (34 bytes).
        unsafe {
            let (tb, ab) = (t.add(b * 176), a.add(b * 34));
            let masks = tb.add(l.high_bits);
            // q − 16: the nibble where the fifth bit is set, nibble | 0xf0 (nibble − 16) where
            // it is not.
            let sums = nibble_tile_sums(tb.add(l.values), ab.add(2), true, |reg, v| {
                let set = bits_as(masks.add(4 * reg), minus_16);
                _mm256_or_si256(v, _mm256_xor_si256(set, minus_16))
            });
            let d = _mm256_mul_ps(f16x8(tb), _mm256_set1_ps(f16(ab)));
            acc = _mm256_fmadd_ps(d, pairs_to_f32(sums), acc);
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1(t: *const u8, a: *const u8, blocks: usize) -> __m256 {
    let l = tile_layout(WeightType::Q5_1);
    let sixteen = _mm256_set1_epi8(16);
    let low = _mm256_set1_epi8(0x0f);
    let mut acc = _mm256_setzero_ps();
    for b in 0..blocks {
        // SAFETY: tile b (192 bytes) and activation block b (36 bytes).
        unsafe {
            let (tb, ab) = (t.add(b * 192), a.add(b * 36));
            let (masks, qs, qa) = (tb.add(l.high_bits), tb.add(l.values), ab.add(4));
            // Values up to 31 would overflow i16 over a whole tile: widen every vector.
            let mut sums = _mm256_setzero_si256();
            for k in 0..4 {
                let v = load(qs.add(32 * k));
                let lo =
                    _mm256_or_si256(_mm256_and_si256(v, low), bits_as(masks.add(8 * k), sixteen));
                let hi = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(v, 4), low),
                    bits_as(masks.add(8 * k + 4), sixteen),
                );
                let p = _mm256_add_epi16(
                    _mm256_maddubs_epi16(lo, broadcast4(qa.add(8 * k))),
                    _mm256_maddubs_epi16(hi, broadcast4(qa.add(8 * k + 4))),
                );
                sums = _mm256_add_epi32(sums, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
            }
            let d = _mm256_mul_ps(f16x8(tb), _mm256_set1_ps(f16(ab)));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), acc);
            acc = _mm256_fmadd_ps(f16x8(tb.add(l.min)), _mm256_set1_ps(f16(ab.add(2))), acc);
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0(t: *const u8, a: *const u8, blocks: usize) -> __m256 {
    let l = tile_layout(WeightType::Q8_0);
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    for b in 0..blocks {
        // SAFETY: tile b (272 bytes) and activation block b (34 bytes).
        unsafe {
            let (tb, ab) = (t.add(b * 272), a.add(b * 34));
            let (qs, qa) = (tb.add(l.values), ab.add(2));
            // Products of two signed bytes reach 2 · 127² in i16: widen each vector's sums.
            let mut sums = _mm256_setzero_si256();
            for k in 0..8 {
                let p = maddubs_signed(load(qs.add(32 * k)), broadcast4(qa.add(4 * k)));
                sums = _mm256_add_epi32(sums, _mm256_madd_epi16(p, ones));
            }
            let d = _mm256_mul_ps(f16x8(tb), _mm256_set1_ps(f16(ab)));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), acc);
        }
    }
    acc
}
