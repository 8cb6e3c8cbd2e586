//! AVX2 products of one row group (8 interleaved rows, see `interleave.rs`) with one activation
//! row. Lane j of every register belongs to row j: four bytes of a row's values meet the same
//! four activation bytes (broadcast), `maddubs` + `madd` sum them into lane j, and the 8 scales
//! of a tile convert with one `vcvtph2ps`.

use std::arch::x86_64::*;

use super::activations::{at, bsums, offset, Q8K};
use super::avx2::{f16, f32_at, load};
use super::interleave::tile_layout;
use super::interleave_k::{
    q2_k as k2, q3_k as k3, q4_k as k4, q5_k as k5, q6_k as k6, Q2_K_TILE, Q3_K_TILE, Q4_K_TILE,
    Q5_K_TILE, Q6_K_TILE,
};
use super::WeightType;

/// The 8 dot products of a group's `blocks` tiles with each of up to 4 activation rows
/// (`acts`, one after another, `act_row` bytes each), into `out` (`[row][8]`). The weights are
/// unpacked once for all the rows; each row's arithmetic is exactly that of a single-row call,
/// so results do not depend on which rows were computed together.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `tiles` must hold `blocks` tiles of `ty` and each
/// activation row the activation blocks for them.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn gemm_x8(
    ty: WeightType,
    tiles: &[u8],
    acts: &[u8],
    act_row: usize,
    blocks: usize,
    out: &mut [f32],
) {
    let n = acts.len() / act_row;
    assert!((1..=4).contains(&n) && out.len() == 8 * n);
    // SAFETY: forwarded from the caller.
    unsafe {
        match n {
            1 => run::<1>(ty, tiles, acts, act_row, blocks, out),
            2 => run::<2>(ty, tiles, acts, act_row, blocks, out),
            3 => run::<3>(ty, tiles, acts, act_row, blocks, out),
            _ => run::<4>(ty, tiles, acts, act_row, blocks, out),
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run<const T: usize>(
    ty: WeightType,
    tiles: &[u8],
    acts: &[u8],
    act_row: usize,
    blocks: usize,
    out: &mut [f32],
) {
    let t = tiles.as_ptr();
    let a: [*const u8; T] = std::array::from_fn(|i| acts[i * act_row..].as_ptr());
    // SAFETY: forwarded from the caller.
    let acc = unsafe {
        match ty {
            WeightType::Q4_0 => q4_0::<T>(t, a, blocks),
            WeightType::Q4_1 => q4_1::<T>(t, a, blocks),
            WeightType::Q5_0 => q5_0::<T>(t, a, blocks),
            WeightType::Q5_1 => q5_1::<T>(t, a, blocks),
            WeightType::Q8_0 => q8_0::<T>(t, a, blocks),
            WeightType::Q2_K => q2_k::<T>(t, a, blocks),
            WeightType::Q3_K => q3_k::<T>(t, a, blocks),
            WeightType::Q4_K => q4_k::<T>(t, a, blocks),
            WeightType::Q5_K => q5_k::<T>(t, a, blocks),
            WeightType::Q6_K => q6_k::<T>(t, a, blocks),
            WeightType::F32 | WeightType::F16 | WeightType::BF16 => {
                unreachable!("{ty:?} has no interleaved layout")
            }
        }
    };
    store(acc, out);
}

/// Each row's 8 sums into its 8 outputs.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn store<const T: usize>(acc: [__m256; T], out: &mut [f32]) {
    for (acc, o) in acc.iter().zip(out.chunks_exact_mut(8)) {
        let o: &mut [f32; 8] = o.try_into().expect("chunks of 8");
        // SAFETY: `o` holds 8 floats.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), *acc) }
    }
}

/// Eight f16 as f32.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16x8(p: *const u8) -> __m256 {
    // SAFETY: the caller points at 16 readable bytes.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
}

/// Four activation bytes in every lane.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn broadcast4(p: *const u8) -> __m256i {
    // SAFETY: the caller points at four readable bytes.
    _mm256_set1_epi32(unsafe { p.cast::<i32>().read_unaligned() })
}

/// `value` in the bytes of register `r` whose bit is set in a bit-plane vector, 0 elsewhere:
/// bit r of each byte of such a vector belongs to register r of the values it goes with (the
/// fifth bits of Q5_0/Q5_1/Q5_K, worth 16, and the third bits of Q3_K, worth 4).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn plane_bits(high: __m256i, r: usize, value: i8) -> __m256i {
    let bit = _mm256_set1_epi8(1 << r);
    _mm256_and_si256(
        _mm256_cmpeq_epi8(_mm256_and_si256(high, bit), bit),
        _mm256_set1_epi8(value),
    )
}

/// Fifth bits: 16 where set.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn fifth_bits(high: __m256i, r: usize) -> __m256i {
    plane_bits(high, r, 16)
}

/// Register r (0..4) of a vector of 2-bit values: bits 2r..2r + 2 of each byte.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn crumbs(v: __m256i, r: usize) -> __m256i {
    let shifted = match r {
        0 => v,
        1 => _mm256_srli_epi16(v, 2),
        2 => _mm256_srli_epi16(v, 4),
        _ => _mm256_srli_epi16(v, 6),
    };
    _mm256_and_si256(shifted, _mm256_set1_epi8(3))
}

/// Σ over the four registers of a 16-value sub-block of `maddubs(regs[r], a[4r..4r + 4])`:
/// lane j holds row j's pair sums of the sub-block (|sum| ≤ 4 · 2 · 7 · 127, within i16).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn sub_block_sums(regs: &[__m256i; 4], qa: *const u8) -> __m256i {
    // SAFETY: the caller points at the sub-block's 16 activation bytes.
    unsafe {
        let p01 = _mm256_add_epi16(
            _mm256_maddubs_epi16(regs[0], broadcast4(qa)),
            _mm256_maddubs_epi16(regs[1], broadcast4(qa.add(4))),
        );
        let p23 = _mm256_add_epi16(
            _mm256_maddubs_epi16(regs[2], broadcast4(qa.add(8))),
            _mm256_maddubs_epi16(regs[3], broadcast4(qa.add(12))),
        );
        _mm256_add_epi16(p01, p23)
    }
}

/// `maddubs` of signed `x` with `y`: |x| unsigned, x's sign moved onto y.
#[target_feature(enable = "avx2,fma,f16c")]
fn maddubs_signed(x: __m256i, y: __m256i) -> __m256i {
    _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
}

/// The i16 pair sums of one tile of a 4-bit format against each row's activation block (values
/// at `qa[i]`): `values` is applied to each unpacked register (to add fifth bits or an offset)
/// before the products. Sums stay within i16 when |value| ≤ 16 (8 · 2 · 16 · 127 = 32512).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibble_tile_sums<const T: usize>(
    qs: *const u8,
    qa: [*const u8; T],
    signed: bool,
    mut values: impl FnMut(usize, __m256i) -> __m256i,
) -> [__m256i; T] {
    let low = _mm256_set1_epi8(0x0f);
    let mut sums = [_mm256_setzero_si256(); T];
    for k in 0..4 {
        // SAFETY: vector k of the tile and activation bytes 8k..8k+8 of each row.
        unsafe {
            let v = load(qs.add(32 * k));
            let lo = values(2 * k, _mm256_and_si256(v, low));
            let hi = values(2 * k + 1, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
            for (sum, qa) in sums.iter_mut().zip(qa) {
                let (ya, yb) = (broadcast4(qa.add(8 * k)), broadcast4(qa.add(8 * k + 4)));
                let (pa, pb) = if signed {
                    (maddubs_signed(lo, ya), maddubs_signed(hi, yb))
                } else {
                    (_mm256_maddubs_epi16(lo, ya), _mm256_maddubs_epi16(hi, yb))
                };
                *sum = _mm256_add_epi16(*sum, _mm256_add_epi16(pa, pb));
            }
        }
    }
    sums
}

/// `acc[i] += d8 · scale(a[i]) · sums[i]` for i32 `sums`, the same float steps for every row.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn scale_into<const T: usize>(
    acc: &mut [__m256; T],
    d8: __m256,
    a: [*const u8; T],
    sums: [__m256i; T],
) {
    for ((acc, a), sums) in acc.iter_mut().zip(a).zip(sums) {
        // SAFETY: each row's activation block starts with its f16 scale.
        let d = _mm256_mul_ps(d8, _mm256_set1_ps(unsafe { f16(a) }));
        *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), *acc);
    }
}

/// `acc[i] += m8 · s(a[i])`: the minimum of Q4_1/Q5_1 times the row's Q8_1 sum.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn add_minimums<const T: usize>(
    acc: &mut [__m256; T],
    m8: __m256,
    a: [*const u8; T],
) {
    for (acc, a) in acc.iter_mut().zip(a) {
        // SAFETY: a Q8_1 block keeps s at byte 2.
        *acc = _mm256_fmadd_ps(m8, _mm256_set1_ps(unsafe { f16(a.add(2)) }), *acc);
    }
}

/// The i16 pair sums of each row widened to i32.
#[target_feature(enable = "avx2,fma,f16c")]
fn widen<const T: usize>(sums: [__m256i; T]) -> [__m256i; T] {
    sums.map(|s| _mm256_madd_epi16(s, _mm256_set1_epi16(1)))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    let l = tile_layout(WeightType::Q4_0);
    let eight = _mm256_set1_epi8(8);
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b (144 bytes) and activation block b (34 bytes) of each row.
        unsafe {
            let (tb, ab) = (t.add(b * 144), at(a, b, 34));
            let sums = nibble_tile_sums(tb.add(l.values), offset(ab, 2), true, |_, v| {
                _mm256_sub_epi8(v, eight)
            });
            scale_into(&mut acc, f16x8(tb), ab, widen(sums));
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    let l = tile_layout(WeightType::Q4_1);
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b (160 bytes) and activation block b (36 bytes) of each row.
        unsafe {
            let (tb, ab) = (t.add(b * 160), at(a, b, 36));
            let sums = nibble_tile_sums(tb.add(l.values), offset(ab, 4), false, |_, v| v);
            scale_into(&mut acc, f16x8(tb), ab, widen(sums));
            add_minimums(&mut acc, f16x8(tb.add(l.min)), ab);
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    let l = tile_layout(WeightType::Q5_0);
    let minus_16 = _mm256_set1_epi8(-16);
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b (176 bytes) and activation block b (34 bytes) of each row.
        unsafe {
            let (tb, ab) = (t.add(b * 176), at(a, b, 34));
            let high = load(tb.add(l.high_bits));
            // q − 16, with q the nibble and its fifth bit.
            let sums = nibble_tile_sums(tb.add(l.values), offset(ab, 2), true, |reg, v| {
                _mm256_add_epi8(_mm256_or_si256(v, fifth_bits(high, reg)), minus_16)
            });
            scale_into(&mut acc, f16x8(tb), ab, widen(sums));
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    let l = tile_layout(WeightType::Q5_1);
    let low = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b (192 bytes) and activation block b (36 bytes) of each row.
        unsafe {
            let (tb, ab) = (t.add(b * 192), at(a, b, 36));
            let (high, qs, qa) = (load(tb.add(l.high_bits)), tb.add(l.values), offset(ab, 4));
            // Values up to 31 would overflow i16 over a whole tile: widen every vector.
            let mut sums = [_mm256_setzero_si256(); T];
            for k in 0..4 {
                let v = load(qs.add(32 * k));
                let lo = _mm256_or_si256(_mm256_and_si256(v, low), fifth_bits(high, 2 * k));
                let hi = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(v, 4), low),
                    fifth_bits(high, 2 * k + 1),
                );
                for (sum, qa) in sums.iter_mut().zip(qa) {
                    let p = _mm256_add_epi16(
                        _mm256_maddubs_epi16(lo, broadcast4(qa.add(8 * k))),
                        _mm256_maddubs_epi16(hi, broadcast4(qa.add(8 * k + 4))),
                    );
                    *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
                }
            }
            scale_into(&mut acc, f16x8(tb), ab, sums);
            add_minimums(&mut acc, f16x8(tb.add(l.min)), ab);
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    let l = tile_layout(WeightType::Q8_0);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b (272 bytes) and activation block b (34 bytes) of each row.
        unsafe {
            let (tb, ab) = (t.add(b * 272), at(a, b, 34));
            let (qs, qa) = (tb.add(l.values), offset(ab, 2));
            // Products of two signed bytes reach 2 · 127² in i16: widen each vector's sums.
            let mut sums = [_mm256_setzero_si256(); T];
            for k in 0..8 {
                let w = load(qs.add(32 * k));
                let (magnitude, sign) = (_mm256_sign_epi8(w, w), w);
                for (sum, qa) in sums.iter_mut().zip(qa) {
                    let y = _mm256_sign_epi8(broadcast4(qa.add(4 * k)), sign);
                    let p = _mm256_maddubs_epi16(magnitude, y);
                    *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(p, ones));
                }
            }
            scale_into(&mut acc, f16x8(tb), ab, sums);
        }
    }
    acc
}

// K-quants: one tile is one super-block of 8 rows; activations are Q8_K (f32 d at 0, 256 i8 at
// 4, 16 i16 sums of 16 values at 260).

/// Eight per-row bytes (one sub-block's scales) as i32 lanes, zero- or sign-extended.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn bytes8(p: *const u8, signed: bool) -> __m256i {
    // SAFETY: the caller points at eight readable bytes.
    let v = unsafe { _mm_loadl_epi64(p.cast()) };
    if signed {
        _mm256_cvtepi8_epi32(v)
    } else {
        _mm256_cvtepu8_epi32(v)
    }
}

/// An i32 lane value copied into both of its i16 halves, to `madd` with i16 pair sums.
#[target_feature(enable = "avx2,fma,f16c")]
fn both_halves(v: __m256i) -> __m256i {
    _mm256_or_si256(
        _mm256_and_si256(v, _mm256_set1_epi32(0xffff)),
        _mm256_slli_epi32(v, 16),
    )
}

/// The end of a K-quant super-block: `acc[i] += d8·da·sumi[i]`, then `− dmin8·da·mins[i]` for
/// the formats with minimums, where `da` is row i's Q8_K scale.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn scale_super_block<const T: usize>(
    acc: &mut [__m256; T],
    d8: __m256,
    ab: [*const u8; T],
    sumi: [__m256i; T],
    minimums: Option<(__m256, [__m256i; T])>,
) {
    for i in 0..T {
        // SAFETY: each row's Q8_K block starts with its f32 scale.
        let da = _mm256_set1_ps(unsafe { f32_at(ab[i]) });
        acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(d8, da), _mm256_cvtepi32_ps(sumi[i]), acc[i]);
        if let Some((dmin8, mins)) = minimums {
            let m = _mm256_cvtepi32_ps(mins[i]);
            acc[i] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin8, da), m, acc[i]);
        }
    }
}

/// Q2_K: x = d·scale·q − dmin·min per 16-value sub-block, q in 0..4.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q2_k<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b and one Q8_K block per row.
        unsafe {
            let (tb, ab) = (t.add(b * Q2_K_TILE), at(a, b, Q8K));
            let mut sumi = [_mm256_setzero_si256(); T];
            let mut mins = [_mm256_setzero_si256(); T];
            for s in 0..16 {
                let packed = bytes8(tb.add(k2::SCALES + 8 * s), false);
                let scale = both_halves(_mm256_and_si256(packed, _mm256_set1_epi32(0x0f)));
                let min = _mm256_srli_epi32(packed, 4);
                let v = load(tb.add(k2::VALUES + 32 * s));
                let regs = [0, 1, 2, 3].map(|r| crumbs(v, r));
                for i in 0..T {
                    let sums = sub_block_sums(&regs, ab[i].add(4 + 16 * s));
                    sumi[i] = _mm256_add_epi32(sumi[i], _mm256_madd_epi16(sums, scale));
                    let block_sum = _mm256_set1_epi32(bsums(ab[i], s, 1));
                    mins[i] = _mm256_add_epi32(mins[i], _mm256_mullo_epi32(min, block_sum));
                }
            }
            let dmin8 = f16x8(tb.add(k2::DMIN));
            scale_super_block(&mut acc, f16x8(tb), ab, sumi, Some((dmin8, mins)));
        }
    }
    acc
}

/// Q3_K: x = d·scale·(q − 4) per 16-value sub-block, q the two low bits plus 4 for a set high
/// bit; the − 4 is taken off through the block sums (4 · scale · Σa), as Q6_K takes off 32.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3_k<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b and one Q8_K block per row.
        unsafe {
            let (tb, ab) = (t.add(b * Q3_K_TILE), at(a, b, Q8K));
            let mut sumi = [_mm256_setzero_si256(); T];
            for s in 0..16 {
                let stored = bytes8(tb.add(k3::SCALES + 8 * s), false);
                let scale32 = _mm256_sub_epi32(stored, _mm256_set1_epi32(32));
                let scale = both_halves(scale32);
                let v = load(tb.add(k3::low(s)));
                let high = load(tb.add(k3::high(s / 2)));
                let regs = [0, 1, 2, 3]
                    .map(|r| _mm256_or_si256(crumbs(v, r), plane_bits(high, 4 * (s % 2) + r, 4)));
                for i in 0..T {
                    let sums = sub_block_sums(&regs, ab[i].add(4 + 16 * s));
                    let offset =
                        _mm256_mullo_epi32(scale32, _mm256_set1_epi32(4 * bsums(ab[i], s, 1)));
                    let dot = _mm256_madd_epi16(sums, scale);
                    sumi[i] = _mm256_add_epi32(sumi[i], _mm256_sub_epi32(dot, offset));
                }
            }
            scale_super_block(&mut acc, f16x8(tb), ab, sumi, None);
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    // SAFETY: forwarded.
    unsafe { q45_k::<T, false>(t, a, blocks) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_k<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    // SAFETY: forwarded.
    unsafe { q45_k::<T, true>(t, a, blocks) }
}

/// Q4_K, or with `FIVE` Q5_K: Q4_K's arithmetic with each nibble's fifth bit (0 or 16) added
/// from the sub-block's bit vector.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q45_k<const T: usize, const FIVE: bool>(
    t: *const u8,
    a: [*const u8; T],
    blocks: usize,
) -> [__m256; T] {
    let tile = if FIVE { Q5_K_TILE } else { Q4_K_TILE };
    // Value vectors summed in i16 before widening: 4 · 2 · 15 · 127 or 2 · 2 · 31 · 127 at most.
    let per_sum = if FIVE { 2 } else { 4 };
    let low = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b and one Q8_K block per row.
        unsafe {
            let (tb, ab) = (t.add(b * tile), at(a, b, Q8K));
            let mut sumi = [_mm256_setzero_si256(); T];
            let mut mins = [_mm256_setzero_si256(); T];
            for s in 0..8 {
                let scale = both_halves(bytes8(tb.add(k4::SCALES + 8 * s), false));
                let min = bytes8(tb.add(k4::MINS + 8 * s), false);
                let high = if FIVE {
                    load(tb.add(k5::high(s)))
                } else {
                    _mm256_setzero_si256()
                };
                for first in (0..4).step_by(per_sum) {
                    let mut sum16 = [_mm256_setzero_si256(); T];
                    for k in first..first + per_sum {
                        let v = load(tb.add(k4::values(FIVE, s) + 32 * k));
                        let (mut lo, mut hi) = (
                            _mm256_and_si256(v, low),
                            _mm256_and_si256(_mm256_srli_epi16(v, 4), low),
                        );
                        if FIVE {
                            lo = _mm256_or_si256(lo, fifth_bits(high, 2 * k));
                            hi = _mm256_or_si256(hi, fifth_bits(high, 2 * k + 1));
                        }
                        for (sum, ab) in sum16.iter_mut().zip(ab) {
                            let qa = ab.add(4 + 32 * s + 8 * k);
                            let p = _mm256_add_epi16(
                                _mm256_maddubs_epi16(lo, broadcast4(qa)),
                                _mm256_maddubs_epi16(hi, broadcast4(qa.add(4))),
                            );
                            *sum = _mm256_add_epi16(*sum, p);
                        }
                    }
                    for (sumi, sum16) in sumi.iter_mut().zip(sum16) {
                        *sumi = _mm256_add_epi32(*sumi, _mm256_madd_epi16(sum16, scale));
                    }
                }
                for i in 0..T {
                    let group_sum = _mm256_set1_epi32(bsums(ab[i], 2 * s, 2));
                    mins[i] = _mm256_add_epi32(mins[i], _mm256_mullo_epi32(min, group_sum));
                }
            }
            let dmin8 = f16x8(tb.add(k4::DMIN));
            scale_super_block(&mut acc, f16x8(tb), ab, sumi, Some((dmin8, mins)));
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    let low = _mm256_set1_epi8(0x0f);
    let three = _mm256_set1_epi8(3);
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b and one Q8_K block per row.
        unsafe {
            let (tb, ab) = (t.add(b * Q6_K_TILE), at(a, b, Q8K));
            let mut sumi = [_mm256_setzero_si256(); T];
            for s in 0..16 {
                let scale32 = bytes8(tb.add(k6::SCALES + 8 * s), true);
                let scale = both_halves(scale32);
                let high = load(tb.add(k6::high(s)));
                let (v0, v1) = (load(tb.add(k6::low(s))), load(tb.add(k6::low(s) + 32)));
                let with_high = |nibbles: __m256i, shift: i32| {
                    let bits = match shift {
                        0 => high,
                        2 => _mm256_srli_epi16(high, 2),
                        4 => _mm256_srli_epi16(high, 4),
                        _ => _mm256_srli_epi16(high, 6),
                    };
                    _mm256_or_si256(nibbles, _mm256_slli_epi16(_mm256_and_si256(bits, three), 4))
                };
                // The 16 values of sub-block s: four registers of 4 values per row, 0..64.
                let regs = [
                    with_high(_mm256_and_si256(v0, low), 0),
                    with_high(_mm256_and_si256(_mm256_srli_epi16(v0, 4), low), 2),
                    with_high(_mm256_and_si256(v1, low), 4),
                    with_high(_mm256_and_si256(_mm256_srli_epi16(v1, 4), low), 6),
                ];
                for i in 0..T {
                    let qa = ab[i].add(4 + 16 * s);
                    // Two products per i16 sum at most: 2 · 2 · 63 · 127 fits.
                    let p01 = _mm256_add_epi16(
                        _mm256_maddubs_epi16(regs[0], broadcast4(qa)),
                        _mm256_maddubs_epi16(regs[1], broadcast4(qa.add(4))),
                    );
                    let p23 = _mm256_add_epi16(
                        _mm256_maddubs_epi16(regs[2], broadcast4(qa.add(8))),
                        _mm256_maddubs_epi16(regs[3], broadcast4(qa.add(12))),
                    );
                    let dot = _mm256_add_epi32(
                        _mm256_madd_epi16(p01, scale),
                        _mm256_madd_epi16(p23, scale),
                    );
                    // Values are stored plus 32: take 32 · scale · Σa back off.
                    let offset =
                        _mm256_mullo_epi32(scale32, _mm256_set1_epi32(32 * bsums(ab[i], s, 1)));
                    sumi[i] = _mm256_add_epi32(sumi[i], _mm256_sub_epi32(dot, offset));
                }
            }
            scale_super_block(&mut acc, f16x8(tb), ab, sumi, None);
        }
    }
    acc
}
