//! The AVX-512 tier's products of one row group (8 interleaved rows, `interleave.rs`) with up to
//! 4 activation rows: AVX2's (`avx2_x8.rs`) with each product of four weight bytes and four
//! activation bytes summed into an i32 lane by one VNNI `vpdpbusd`, where AVX2 needs `maddubs`
//! (into i16 pairs), i16 additions and a widening `madd`.
//!
//! The tiles are the same, the integer sums are the same (exact in both tiers: AVX2's i16
//! partial sums are kept below saturation), a sub-block's scale is applied to its i32 sum
//! instead of to its i16 pair sums (the same product), and the float steps are `avx2_x8`'s own
//! functions, so every output is bit-identical to the AVX2 tier's. The registers stay 256 bits
//! wide (8 rows per tile); AVX-512VL gives them 32 names instead of 16.

use std::arch::x86_64::*;

use super::activations::{at, bsums, offset, Q8K};
use super::avx2::load;
use super::avx2_x8::{
    add_minimums, broadcast4, bytes8, crumbs, f16x8, fifth_bits, plane_bits, scale_into,
    scale_super_block, store,
};
use super::interleave::tile_layout;
use super::interleave_k::{
    q2_k as k2, q3_k as k3, q4_k as k4, q5_k as k5, q6_k as k6, Q2_K_TILE, Q3_K_TILE, Q4_K_TILE,
    Q5_K_TILE, Q6_K_TILE,
};
use super::WeightType;

/// `avx2_x8::gemm_x8`, bit for bit, with VNNI products.
///
/// # Safety
/// The CPU must support the AVX-512 tier (`Tier::Avx512`); `tiles` must hold `blocks` tiles of
/// `ty` and each activation row the activation blocks for them.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
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

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
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
            WeightType::Q4_K => q45_k::<T, false>(t, a, blocks),
            WeightType::Q5_K => q45_k::<T, true>(t, a, blocks),
            WeightType::Q6_K => q6_k::<T>(t, a, blocks),
            WeightType::F32 | WeightType::F16 | WeightType::BF16 => {
                unreachable!("{ty:?} has no interleaved layout")
            }
        }
    };
    store(acc, out);
}

/// `acc` plus, in lane j, Σ over the registers of `regs[r]` (unsigned bytes of row j) times
/// activation bytes `4r..4r + 4` at `qa`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dots(mut acc: __m256i, regs: &[__m256i], qa: *const u8) -> __m256i {
    for (r, &v) in regs.iter().enumerate() {
        // SAFETY: the caller points at 4 · regs.len() activation bytes.
        acc = _mm256_dpbusd_epi32(acc, v, unsafe { broadcast4(qa.add(4 * r)) });
    }
    acc
}

/// `dots` for signed registers, given with their magnitudes: |v| times the activations with
/// v's signs.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dots_signed(
    mut acc: __m256i,
    magnitudes: &[__m256i],
    signs: &[__m256i],
    qa: *const u8,
) -> __m256i {
    for (r, (&m, &s)) in magnitudes.iter().zip(signs).enumerate() {
        // SAFETY: as in `dots`.
        let y = _mm256_sign_epi8(unsafe { broadcast4(qa.add(4 * r)) }, s);
        acc = _mm256_dpbusd_epi32(acc, m, y);
    }
    acc
}

/// The 8 registers of a 32-value tile's nibble vectors at `qs`: register 2k the low nibbles of
/// vector k, 2k + 1 its high nibbles (so register r meets activation bytes 4r..4r + 4), each
/// passed through `values` with its index (to add fifth bits or an offset).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn nibble_registers(
    qs: *const u8,
    mut values: impl FnMut(usize, __m256i) -> __m256i,
) -> [__m256i; 8] {
    let low = _mm256_set1_epi8(0x0f);
    let mut regs = [_mm256_setzero_si256(); 8];
    for k in 0..4 {
        // SAFETY: the caller points at the tile's 4 value vectors.
        let v = unsafe { load(qs.add(32 * k)) };
        regs[2 * k] = values(2 * k, _mm256_and_si256(v, low));
        regs[2 * k + 1] = values(2 * k + 1, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
    }
    regs
}

/// Each row's dot products with signed registers: |v| computed once for all the rows.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn signed_sums<const T: usize, const R: usize>(
    regs: &[__m256i; R],
    qa: [*const u8; T],
) -> [__m256i; T] {
    let magnitudes = regs.map(|v| _mm256_abs_epi8(v));
    // SAFETY: forwarded from the caller.
    qa.map(|qa| unsafe { dots_signed(_mm256_setzero_si256(), &magnitudes, regs, qa) })
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_0<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    let l = tile_layout(WeightType::Q4_0);
    let eight = _mm256_set1_epi8(8);
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b (144 bytes) and activation block b (34 bytes) of each row.
        unsafe {
            let (tb, ab) = (t.add(b * 144), at(a, b, 34));
            let regs = nibble_registers(tb.add(l.values), |_, v| _mm256_sub_epi8(v, eight));
            let sums = signed_sums(&regs, offset(ab, 2));
            scale_into(&mut acc, f16x8(tb), ab, sums);
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_1<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    let l = tile_layout(WeightType::Q4_1);
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b (160 bytes) and activation block b (36 bytes) of each row.
        unsafe {
            let (tb, ab) = (t.add(b * 160), at(a, b, 36));
            let regs = nibble_registers(tb.add(l.values), |_, v| v);
            let sums = offset(ab, 4).map(|qa| dots(_mm256_setzero_si256(), &regs, qa));
            scale_into(&mut acc, f16x8(tb), ab, sums);
            add_minimums(&mut acc, f16x8(tb.add(l.min)), ab);
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
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
            let regs = nibble_registers(tb.add(l.values), |r, v| {
                _mm256_add_epi8(_mm256_or_si256(v, fifth_bits(high, r)), minus_16)
            });
            let sums = signed_sums(&regs, offset(ab, 2));
            scale_into(&mut acc, f16x8(tb), ab, sums);
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q5_1<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    let l = tile_layout(WeightType::Q5_1);
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b (192 bytes) and activation block b (36 bytes) of each row.
        unsafe {
            let (tb, ab) = (t.add(b * 192), at(a, b, 36));
            let high = load(tb.add(l.high_bits));
            let regs = nibble_registers(tb.add(l.values), |r, v| {
                _mm256_or_si256(v, fifth_bits(high, r))
            });
            let sums = offset(ab, 4).map(|qa| dots(_mm256_setzero_si256(), &regs, qa));
            scale_into(&mut acc, f16x8(tb), ab, sums);
            add_minimums(&mut acc, f16x8(tb.add(l.min)), ab);
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q8_0<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    let l = tile_layout(WeightType::Q8_0);
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b (272 bytes) and activation block b (34 bytes) of each row.
        unsafe {
            let (tb, ab) = (t.add(b * 272), at(a, b, 34));
            let qs = tb.add(l.values);
            let regs: [__m256i; 8] = std::array::from_fn(|k| load(qs.add(32 * k)));
            let sums = signed_sums(&regs, offset(ab, 2));
            scale_into(&mut acc, f16x8(tb), ab, sums);
        }
    }
    acc
}

// K-quants: one tile is one super-block of 8 rows; activations are Q8_K (f32 d at 0, 256 i8 at
// 4, 16 i16 sums of 16 values at 260). A sub-block's i32 sum is multiplied by its scale with
// `mullo` (AVX2 folds the scale into its widening `madd`).

/// Q2_K: x = d·scale·q − dmin·min per 16-value sub-block, q in 0..4.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
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
                let scale = _mm256_and_si256(packed, _mm256_set1_epi32(0x0f));
                let min = _mm256_srli_epi32(packed, 4);
                let v = load(tb.add(k2::VALUES + 32 * s));
                let regs = [0, 1, 2, 3].map(|r| crumbs(v, r));
                for i in 0..T {
                    let sum = dots(_mm256_setzero_si256(), &regs, ab[i].add(4 + 16 * s));
                    sumi[i] = _mm256_add_epi32(sumi[i], _mm256_mullo_epi32(sum, scale));
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

/// Q3_K: x = d·scale·(q − 4) per 16-value sub-block, the − 4 taken off through the block sums:
/// scale·(Σq·a − 4·Σa).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q3_k<const T: usize>(t: *const u8, a: [*const u8; T], blocks: usize) -> [__m256; T] {
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b and one Q8_K block per row.
        unsafe {
            let (tb, ab) = (t.add(b * Q3_K_TILE), at(a, b, Q8K));
            let mut sumi = [_mm256_setzero_si256(); T];
            for s in 0..16 {
                let stored = bytes8(tb.add(k3::SCALES + 8 * s), false);
                let scale = _mm256_sub_epi32(stored, _mm256_set1_epi32(32));
                let v = load(tb.add(k3::low(s)));
                let high = load(tb.add(k3::high(s / 2)));
                let regs = [0, 1, 2, 3]
                    .map(|r| _mm256_or_si256(crumbs(v, r), plane_bits(high, 4 * (s % 2) + r, 4)));
                for i in 0..T {
                    let sum = dots(_mm256_setzero_si256(), &regs, ab[i].add(4 + 16 * s));
                    let offset = _mm256_set1_epi32(4 * bsums(ab[i], s, 1));
                    let dot = _mm256_mullo_epi32(_mm256_sub_epi32(sum, offset), scale);
                    sumi[i] = _mm256_add_epi32(sumi[i], dot);
                }
            }
            scale_super_block(&mut acc, f16x8(tb), ab, sumi, None);
        }
    }
    acc
}

/// Q4_K, or with `FIVE` Q5_K: 32-value sub-blocks, each nibble's fifth bit (0 or 16) added from
/// the sub-block's bit vector.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q45_k<const T: usize, const FIVE: bool>(
    t: *const u8,
    a: [*const u8; T],
    blocks: usize,
) -> [__m256; T] {
    let tile = if FIVE { Q5_K_TILE } else { Q4_K_TILE };
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: tile b and one Q8_K block per row.
        unsafe {
            let (tb, ab) = (t.add(b * tile), at(a, b, Q8K));
            let mut sumi = [_mm256_setzero_si256(); T];
            let mut mins = [_mm256_setzero_si256(); T];
            for s in 0..8 {
                let scale = bytes8(tb.add(k4::SCALES + 8 * s), false);
                let min = bytes8(tb.add(k4::MINS + 8 * s), false);
                let high = if FIVE {
                    load(tb.add(k5::high(s)))
                } else {
                    _mm256_setzero_si256()
                };
                let regs = nibble_registers(tb.add(k4::values(FIVE, s)), |r, v| {
                    if FIVE {
                        _mm256_or_si256(v, fifth_bits(high, r))
                    } else {
                        v
                    }
                });
                for i in 0..T {
                    let sum = dots(_mm256_setzero_si256(), &regs, ab[i].add(4 + 32 * s));
                    sumi[i] = _mm256_add_epi32(sumi[i], _mm256_mullo_epi32(sum, scale));
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

/// Q6_K: x = d·scale·(q − 32) per 16-value sub-block, q in 0..64 from a nibble and two high
/// bits; the − 32 taken off through the block sums: scale·(Σq·a − 32·Σa).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
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
                let scale = bytes8(tb.add(k6::SCALES + 8 * s), true);
                let high = load(tb.add(k6::high(s)));
                let (v0, v1) = (load(tb.add(k6::low(s))), load(tb.add(k6::low(s) + 32)));
                // High bit pair r of each byte (bits 2r, 2r + 1) as the value's bits 4 and 5.
                let with_high = |nibbles: __m256i, r: usize| {
                    let bits = match r {
                        0 => high,
                        1 => _mm256_srli_epi16(high, 2),
                        2 => _mm256_srli_epi16(high, 4),
                        _ => _mm256_srli_epi16(high, 6),
                    };
                    _mm256_or_si256(nibbles, _mm256_slli_epi16(_mm256_and_si256(bits, three), 4))
                };
                let regs = [
                    with_high(_mm256_and_si256(v0, low), 0),
                    with_high(_mm256_and_si256(_mm256_srli_epi16(v0, 4), low), 1),
                    with_high(_mm256_and_si256(v1, low), 2),
                    with_high(_mm256_and_si256(_mm256_srli_epi16(v1, 4), low), 3),
                ];
                for i in 0..T {
                    let sum = dots(_mm256_setzero_si256(), &regs, ab[i].add(4 + 16 * s));
                    let offset = _mm256_set1_epi32(32 * bsums(ab[i], s, 1));
                    let dot = _mm256_mullo_epi32(_mm256_sub_epi32(sum, offset), scale);
                    sumi[i] = _mm256_add_epi32(sumi[i], dot);
                }
            }
            scale_super_block(&mut acc, f16x8(tb), ab, sumi, None);
        }
    }
    acc
}
