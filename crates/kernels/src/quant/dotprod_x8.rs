//! The dotprod and i8mm tiers' products of one row group (8 interleaved rows, `interleave.rs`)
//! with up to 4 activation rows: the x86 tiers' tiles and arithmetic on aarch64, each product
//! of four weight bytes and four activation bytes summed into an i32 lane by one `sdot`.
//!
//! A tile's 32-byte value vector is two 128-bit registers here (`Bytes32`): bytes 0..16 hold
//! rows 0–3, bytes 16..32 rows 4–7, four bytes of one row per 32-bit lane. `sdot` by element
//! (`sdot acc.4s, w.16b, a.4b[i]`) multiplies each lane's four bytes by the same four
//! activation bytes, element `i` of a 16-byte activation load, and adds the sum to that lane:
//! what `vpdpbusd` does with a broadcast, but signed × signed, so the signed formats need none
//! of the x86 tiers' sign tricks and nothing passes through i16.
//!
//! The i8mm tier runs the same kernels with `MM`: two activation rows at a time meet the tile in
//! `smmla` (a 2×8 by 8×2 byte matrix product into 2×2 i32), each instruction doing twice an
//! `sdot`'s products, at the cost of pairing the rows' lanes before and the activation rows'
//! sums after (`pair_sums`). A lone activation row (decoding one token) is dotprod's. Integer
//! sums are exact either way, so both tiers give the same bits.
//!
//! The results are bit-identical to the x86 tiers' (`avx2_x8.rs`, `avx512_x8.rs`): the integer
//! sums are exact in every tier (no i32 sum comes near overflow), a sub-block's scale is
//! applied to its i32 sum as in `avx512_x8.rs`, and the float steps are AVX2's, lane by lane —
//! the same multiplications and the same fused multiply-adds (`vfmaq_f32` and `vfmsq_f32` round
//! once, like `_mm256_fmadd_ps` and `_mm256_fnmadd_ps`), in the same order.
//!
//! `sdot` and `smmla` are inline assembly: Rust's `vdotq_laneq_s32` and `vmmlaq_s32` are not
//! stable. Every function here says `#[target_feature(enable = "neon,dotprod")]`, so the
//! assembler accepts `sdot` and the compiler keeps it out of code that may run without it (for
//! `smmla` see `smmla`); the tiers check the CPU at run time (`Tier::Dotprod`, `Tier::I8mm`). Loads are byte loads, as in `neon.rs`, and read the file's
//! little-endian bytes as native numbers: the tier is built for little-endian aarch64 only.

use std::arch::aarch64::*;
use std::arch::asm;

use super::activations::{at, bsums, offset, Q8K};
use super::interleave::tile_layout;
use super::interleave_k::{
    q2_k as k2, q3_k as k3, q4_k as k4, q5_k as k5, q6_k as k6, Q2_K_TILE, Q3_K_TILE, Q4_K_TILE,
    Q5_K_TILE, Q6_K_TILE,
};
use super::neon::{f16, f32_at};
use super::WeightType;

/// One 32-byte vector of a tile: rows 0–3, then rows 4–7.
type Bytes32 = [uint8x16_t; 2];
/// One i32 per row: rows 0–3, then rows 4–7.
type Ints8 = [int32x4_t; 2];
/// One f32 per row: rows 0–3, then rows 4–7.
type Floats8 = [float32x4_t; 2];

/// `avx2_x8::gemm_x8`, bit for bit, with `sdot` products.
///
/// # Safety
/// The CPU must support the dotprod tier (`Tier::Dotprod`); `tiles` must hold `blocks` tiles of
/// `ty` and each activation row the activation blocks for them.
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn gemm_x8(
    ty: WeightType,
    tiles: &[u8],
    acts: &[u8],
    act_row: usize,
    blocks: usize,
    out: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe { gemm::<false>(ty, tiles, acts, act_row, blocks, out) }
}

/// `gemm_x8` with each pair of activation rows multiplied by `smmla`.
///
/// # Safety
/// The CPU must support the i8mm tier (`Tier::I8mm`); the rest as for `gemm_x8`.
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn gemm_x8_i8mm(
    ty: WeightType,
    tiles: &[u8],
    acts: &[u8],
    act_row: usize,
    blocks: usize,
    out: &mut [f32],
) {
    // SAFETY: forwarded from the caller, who vouches for i8mm too.
    unsafe { gemm::<true>(ty, tiles, acts, act_row, blocks, out) }
}

/// The tile product, with `smmla` for pairs of activation rows where `MM` (the CPU then has
/// i8mm: every function below taking `MM` relies on it).
#[target_feature(enable = "neon,dotprod")]
unsafe fn gemm<const MM: bool>(
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
            1 => run::<1, MM>(ty, tiles, acts, act_row, blocks, out),
            2 => run::<2, MM>(ty, tiles, acts, act_row, blocks, out),
            3 => run::<3, MM>(ty, tiles, acts, act_row, blocks, out),
            _ => run::<4, MM>(ty, tiles, acts, act_row, blocks, out),
        }
    }
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn run<const T: usize, const MM: bool>(
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
            WeightType::Q4_0 => q4_0::<T, MM>(t, a, blocks),
            WeightType::Q4_1 => q4_1::<T, MM>(t, a, blocks),
            WeightType::Q5_0 => q5_0::<T, MM>(t, a, blocks),
            WeightType::Q5_1 => q5_1::<T, MM>(t, a, blocks),
            WeightType::Q8_0 => q8_0::<T, MM>(t, a, blocks),
            WeightType::Q2_K => q2_k::<T, MM>(t, a, blocks),
            WeightType::Q3_K => q3_k::<T, MM>(t, a, blocks),
            WeightType::Q4_K => q45_k::<T, MM, false>(t, a, blocks),
            WeightType::Q5_K => q45_k::<T, MM, true>(t, a, blocks),
            WeightType::Q6_K => q6_k::<T, MM>(t, a, blocks),
            WeightType::F32 | WeightType::F16 | WeightType::BF16 => {
                unreachable!("{ty:?} has no interleaved layout")
            }
        }
    };
    for (acc, o) in acc.iter().zip(out.chunks_exact_mut(8)) {
        // SAFETY: `o` holds 8 floats.
        unsafe {
            vst1q_f32(o.as_mut_ptr(), acc[0]);
            vst1q_f32(o.as_mut_ptr().add(4), acc[1]);
        }
    }
}

// Registers of eight rows.

/// The 32-byte vector at `p`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn load(p: *const u8) -> Bytes32 {
    // SAFETY: the caller points at 32 readable bytes.
    unsafe { [vld1q_u8(p), vld1q_u8(p.add(16))] }
}

/// Eight f16 (one per row) as f32.
#[target_feature(enable = "neon,dotprod")]
unsafe fn f16x8(p: *const u8) -> Floats8 {
    // SAFETY: the caller points at 16 readable bytes.
    let h = vreinterpretq_u16_u8(unsafe { vld1q_u8(p) });
    [
        vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h))),
        vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h))),
    ]
}

/// Eight per-row bytes (one sub-block's scales) as i32 lanes, zero- or sign-extended.
#[target_feature(enable = "neon,dotprod")]
unsafe fn bytes8(p: *const u8, signed: bool) -> Ints8 {
    // SAFETY: the caller points at eight readable bytes.
    let v = unsafe { vld1_u8(p) };
    if signed {
        let w = vmovl_s8(vreinterpret_s8_u8(v));
        [vmovl_s16(vget_low_s16(w)), vmovl_high_s16(w)]
    } else {
        let w = vmovl_u8(v);
        [
            vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(w))),
            vreinterpretq_s32_u32(vmovl_high_u16(w)),
        ]
    }
}

/// `f` on both halves of a pair of registers.
#[target_feature(enable = "neon,dotprod")]
fn each<T: Copy, U>(v: [T; 2], f: impl Fn(T) -> U) -> [U; 2] {
    [f(v[0]), f(v[1])]
}

/// `f` on the matching halves of two pairs of registers.
#[target_feature(enable = "neon,dotprod")]
fn zip<T: Copy, U: Copy, V>(x: [T; 2], y: [U; 2], f: impl Fn(T, U) -> V) -> [V; 2] {
    [f(x[0], y[0]), f(x[1], y[1])]
}

/// Each byte shifted right by `n` bits (`n` in 0..8).
#[target_feature(enable = "neon,dotprod")]
fn shr(v: Bytes32, n: u32) -> Bytes32 {
    let by = vdupq_n_s8(-(n as i8));
    each(v, |v| vshlq_u8(v, by))
}

/// `value` in the bytes of register `r` whose bit is set in a bit-plane vector, 0 elsewhere:
/// bit r of each byte of such a vector belongs to register r of the values it goes with (the
/// fifth bits of Q5_0/Q5_1/Q5_K, worth 16, and the third bits of Q3_K, worth 4).
#[target_feature(enable = "neon,dotprod")]
fn plane_bits(high: Bytes32, r: usize, value: u8) -> Bytes32 {
    let (bit, value) = (vdupq_n_u8(1 << r), vdupq_n_u8(value));
    each(high, |h| vandq_u8(vtstq_u8(h, bit), value))
}

/// Fifth bits: 16 where set.
#[target_feature(enable = "neon,dotprod")]
fn fifth_bits(high: Bytes32, r: usize) -> Bytes32 {
    plane_bits(high, r, 16)
}

/// `v` with `bits` set.
#[target_feature(enable = "neon,dotprod")]
fn or(v: Bytes32, bits: Bytes32) -> Bytes32 {
    zip(v, bits, |v, b| vorrq_u8(v, b))
}

/// `v` minus `k` in every byte (wrapping: the bytes then read as signed values).
#[target_feature(enable = "neon,dotprod")]
fn minus(v: Bytes32, k: u8) -> Bytes32 {
    let k = vdupq_n_u8(k);
    each(v, |v| vsubq_u8(v, k))
}

/// Register r (0..4) of a vector of 2-bit values: bits 2r..2r + 2 of each byte.
#[target_feature(enable = "neon,dotprod")]
fn crumbs(v: Bytes32, r: usize) -> Bytes32 {
    let three = vdupq_n_u8(3);
    each(shr(v, 2 * r as u32), |v| vandq_u8(v, three))
}

/// The 8 registers of a 32-value tile's nibble vectors at `qs`: register 2k the low nibbles of
/// vector k, 2k + 1 its high nibbles (so register r meets activation bytes 4r..4r + 4), each
/// passed through `values` with its index (to add fifth bits or an offset).
#[target_feature(enable = "neon,dotprod")]
unsafe fn nibble_registers(
    qs: *const u8,
    mut values: impl FnMut(usize, Bytes32) -> Bytes32,
) -> [Bytes32; 8] {
    let low = vdupq_n_u8(0x0f);
    let mut regs = [[vdupq_n_u8(0); 2]; 8];
    for k in 0..4 {
        // SAFETY: the caller points at the tile's 4 value vectors.
        let v = unsafe { load(qs.add(32 * k)) };
        regs[2 * k] = values(2 * k, each(v, |v| vandq_u8(v, low)));
        regs[2 * k + 1] = values(2 * k + 1, shr(v, 4));
    }
    regs
}

// The integer products.

/// `acc` plus, in each i32 lane, the lane's four bytes of `w` times bytes 4L..4L + 4 of `a`,
/// all as signed bytes.
#[target_feature(enable = "neon,dotprod")]
fn sdot<const L: i32>(mut acc: int32x4_t, w: uint8x16_t, a: int8x16_t) -> int32x4_t {
    // SAFETY: registers only; this function's target features include dotprod.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {a:v}.4b[{lane}]",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            a = in(vreg) a,
            lane = const L,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// `acc` plus, in row j's lane, Σ over the registers of `regs[r]` (row j's four signed bytes)
/// times activation bytes 4r..4r + 4 at `qa`: one 16-byte activation load serves four
/// registers, one element each.
#[target_feature(enable = "neon,dotprod")]
unsafe fn dots(mut acc: Ints8, regs: &[Bytes32], qa: *const u8) -> Ints8 {
    for (c, four) in regs.chunks(4).enumerate() {
        // SAFETY: the caller points at 4 · regs.len() activation bytes.
        let a = unsafe { vld1q_s8(qa.add(16 * c).cast()) };
        for (lane, w) in four.iter().enumerate() {
            acc = zip(acc, *w, |acc, w| match lane {
                0 => sdot::<0>(acc, w, a),
                1 => sdot::<1>(acc, w, a),
                2 => sdot::<2>(acc, w, a),
                _ => sdot::<3>(acc, w, a),
            });
        }
    }
    acc
}

/// `acc` plus the product of the 2×8 matrices in `w` (rows) and `a` (columns):
/// `[w0·a0, w0·a1, w1·a0, w1·a1]`, with w0 and a0 bytes 0..8, w1 and a1 bytes 8..16.
///
/// The assembler is told the instruction exists (`.arch_extension`) instead of the function
/// being compiled for i8mm: that would keep it from being inlined into the kernels, which are
/// shared with the dotprod tier.
///
/// # Safety
/// The CPU must have the i8mm extension.
#[target_feature(enable = "neon,dotprod")]
unsafe fn smmla(mut acc: int32x4_t, w: uint8x16_t, a: int8x16_t) -> int32x4_t {
    // SAFETY: registers only; the caller vouches for i8mm.
    unsafe {
        asm!(
            ".arch_extension i8mm",
            "smmla {acc:v}.4s, {w:v}.16b, {a:v}.16b",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            a = in(vreg) a,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// `dots` from zero for two activation rows at once, by `smmla`: registers 2p and 2p + 1 hold
/// values 8p..8p + 8 of each row in two 4-byte lanes, which `zip` puts side by side (rows
/// 4h, 4h + 1 in one register, 4h + 2, 4h + 3 in another), to meet the same 8 activation bytes
/// of both activation rows; the 2×2 results are taken apart per activation row at the end.
///
/// # Safety
/// The CPU must have the i8mm extension; `qa0` and `qa1` point at 4 · regs.len() bytes.
#[target_feature(enable = "neon,dotprod")]
unsafe fn pair_sums(regs: &[Bytes32], qa0: *const u8, qa1: *const u8) -> [Ints8; 2] {
    // acc[h][q]: rows 4h + 2q and 4h + 2q + 1 against both activation rows.
    let mut acc = [[vdupq_n_s32(0); 2]; 2];
    for (p, pair) in regs.chunks_exact(2).enumerate() {
        // SAFETY: activation bytes 8p..8p + 8 of both rows.
        let a = unsafe {
            vcombine_s8(
                vld1_s8(qa0.add(8 * p).cast()),
                vld1_s8(qa1.add(8 * p).cast()),
            )
        };
        for (h, acc) in acc.iter_mut().enumerate() {
            let (x, y) = (
                vreinterpretq_u32_u8(pair[0][h]),
                vreinterpretq_u32_u8(pair[1][h]),
            );
            let rows01 = vreinterpretq_u8_u32(vzip1q_u32(x, y));
            let rows23 = vreinterpretq_u8_u32(vzip2q_u32(x, y));
            // SAFETY: the caller vouches for i8mm.
            unsafe {
                acc[0] = smmla(acc[0], rows01, a);
                acc[1] = smmla(acc[1], rows23, a);
            }
        }
    }
    // Lanes [r0·a0, r0·a1, r1·a0, r1·a1] of both: the even ones are activation row 0's.
    [
        each(acc, |[r01, r23]| vuzp1q_s32(r01, r23)),
        each(acc, |[r01, r23]| vuzp2q_s32(r01, r23)),
    ]
}

/// `dots` from zero, for each activation row at `qa`; with `MM`, pairs of rows by `pair_sums`.
///
/// # Safety
/// With `MM` the CPU must have the i8mm extension; each `qa` points at 4 · regs.len() bytes.
#[target_feature(enable = "neon,dotprod")]
unsafe fn row_sums<const T: usize, const MM: bool>(
    regs: &[Bytes32],
    qa: [*const u8; T],
) -> [Ints8; T] {
    let zero = [vdupq_n_s32(0); 2];
    let mut sums = [zero; T];
    let paired = if MM { T - T % 2 } else { 0 };
    for i in (0..paired).step_by(2) {
        // SAFETY: forwarded from the caller.
        [sums[i], sums[i + 1]] = unsafe { pair_sums(regs, qa[i], qa[i + 1]) };
    }
    for i in paired..T {
        // SAFETY: forwarded from the caller.
        sums[i] = unsafe { dots(zero, regs, qa[i]) };
    }
    sums
}

/// `acc + x · y`, lane by lane.
#[target_feature(enable = "neon,dotprod")]
fn mul_add(acc: Ints8, x: Ints8, y: Ints8) -> Ints8 {
    [vmlaq_s32(acc[0], x[0], y[0]), vmlaq_s32(acc[1], x[1], y[1])]
}

/// `acc + x · n`.
#[target_feature(enable = "neon,dotprod")]
fn mul_add_n(acc: Ints8, x: Ints8, n: i32) -> Ints8 {
    zip(acc, x, |acc, x| vmlaq_n_s32(acc, x, n))
}

/// `x − n` in every lane.
#[target_feature(enable = "neon,dotprod")]
fn minus_n(x: Ints8, n: i32) -> Ints8 {
    each(x, |x| vsubq_s32(x, vdupq_n_s32(n)))
}

// The float steps: `avx2_x8`'s, lane by lane.

/// `acc[i] += d8 · scale(a[i]) · sums[i]` for i32 `sums` (`avx2_x8::scale_into`).
#[target_feature(enable = "neon,dotprod")]
unsafe fn scale_into<const T: usize>(
    acc: &mut [Floats8; T],
    d8: Floats8,
    a: [*const u8; T],
    sums: [Ints8; T],
) {
    for ((acc, a), sums) in acc.iter_mut().zip(a).zip(sums) {
        // SAFETY: each row's activation block starts with its f16 scale.
        let da = unsafe { f16(a) };
        for h in 0..2 {
            let d = vmulq_f32(d8[h], vdupq_n_f32(da));
            acc[h] = vfmaq_f32(acc[h], d, vcvtq_f32_s32(sums[h]));
        }
    }
}

/// `acc[i] += m8 · s(a[i])`: the minimum of Q4_1/Q5_1 times the row's Q8_1 sum
/// (`avx2_x8::add_minimums`).
#[target_feature(enable = "neon,dotprod")]
unsafe fn add_minimums<const T: usize>(acc: &mut [Floats8; T], m8: Floats8, a: [*const u8; T]) {
    for (acc, a) in acc.iter_mut().zip(a) {
        // SAFETY: a Q8_1 block keeps s at byte 2.
        let s = vdupq_n_f32(unsafe { f16(a.add(2)) });
        *acc = zip(*acc, m8, |acc, m| vfmaq_f32(acc, m, s));
    }
}

/// The end of a K-quant super-block: `acc[i] += d8·da·sumi[i]`, then `− dmin8·da·mins[i]` for
/// the formats with minimums, where `da` is row i's Q8_K scale
/// (`avx2_x8::scale_super_block`).
#[target_feature(enable = "neon,dotprod")]
unsafe fn scale_super_block<const T: usize>(
    acc: &mut [Floats8; T],
    d8: Floats8,
    ab: [*const u8; T],
    sumi: [Ints8; T],
    minimums: Option<(Floats8, [Ints8; T])>,
) {
    for i in 0..T {
        // SAFETY: each row's Q8_K block starts with its f32 scale.
        let da = vdupq_n_f32(unsafe { f32_at(ab[i]) });
        for h in 0..2 {
            let d = vmulq_f32(d8[h], da);
            acc[i][h] = vfmaq_f32(acc[i][h], d, vcvtq_f32_s32(sumi[i][h]));
            if let Some((dmin8, mins)) = minimums {
                let m = vcvtq_f32_s32(mins[i][h]);
                acc[i][h] = vfmsq_f32(acc[i][h], vmulq_f32(dmin8[h], da), m);
            }
        }
    }
}

/// Zeroed f32 accumulators for `T` activation rows.
#[target_feature(enable = "neon,dotprod")]
fn zeros<const T: usize>() -> [Floats8; T] {
    [[vdupq_n_f32(0.0); 2]; T]
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn q4_0<const T: usize, const MM: bool>(
    t: *const u8,
    a: [*const u8; T],
    blocks: usize,
) -> [Floats8; T] {
    let l = tile_layout(WeightType::Q4_0);
    let mut acc = zeros();
    for b in 0..blocks {
        // SAFETY: tile b (144 bytes) and activation block b (34 bytes) of each row.
        unsafe {
            let (tb, ab) = (t.add(b * 144), at(a, b, 34));
            let regs = nibble_registers(tb.add(l.values), |_, v| minus(v, 8));
            let sums = row_sums::<T, MM>(&regs, offset(ab, 2));
            scale_into(&mut acc, f16x8(tb), ab, sums);
        }
    }
    acc
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn q4_1<const T: usize, const MM: bool>(
    t: *const u8,
    a: [*const u8; T],
    blocks: usize,
) -> [Floats8; T] {
    let l = tile_layout(WeightType::Q4_1);
    let mut acc = zeros();
    for b in 0..blocks {
        // SAFETY: tile b (160 bytes) and activation block b (36 bytes) of each row.
        unsafe {
            let (tb, ab) = (t.add(b * 160), at(a, b, 36));
            let regs = nibble_registers(tb.add(l.values), |_, v| v);
            let sums = row_sums::<T, MM>(&regs, offset(ab, 4));
            scale_into(&mut acc, f16x8(tb), ab, sums);
            add_minimums(&mut acc, f16x8(tb.add(l.min)), ab);
        }
    }
    acc
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn q5_0<const T: usize, const MM: bool>(
    t: *const u8,
    a: [*const u8; T],
    blocks: usize,
) -> [Floats8; T] {
    let l = tile_layout(WeightType::Q5_0);
    let mut acc = zeros();
    for b in 0..blocks {
        // SAFETY: tile b (176 bytes) and activation block b (34 bytes) of each row.
        unsafe {
            let (tb, ab) = (t.add(b * 176), at(a, b, 34));
            let high = load(tb.add(l.high_bits));
            // q − 16, with q the nibble and its fifth bit.
            let regs = nibble_registers(tb.add(l.values), |r, v| {
                minus(or(v, fifth_bits(high, r)), 16)
            });
            let sums = row_sums::<T, MM>(&regs, offset(ab, 2));
            scale_into(&mut acc, f16x8(tb), ab, sums);
        }
    }
    acc
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn q5_1<const T: usize, const MM: bool>(
    t: *const u8,
    a: [*const u8; T],
    blocks: usize,
) -> [Floats8; T] {
    let l = tile_layout(WeightType::Q5_1);
    let mut acc = zeros();
    for b in 0..blocks {
        // SAFETY: tile b (192 bytes) and activation block b (36 bytes) of each row.
        unsafe {
            let (tb, ab) = (t.add(b * 192), at(a, b, 36));
            let high = load(tb.add(l.high_bits));
            let regs = nibble_registers(tb.add(l.values), |r, v| or(v, fifth_bits(high, r)));
            let sums = row_sums::<T, MM>(&regs, offset(ab, 4));
            scale_into(&mut acc, f16x8(tb), ab, sums);
            add_minimums(&mut acc, f16x8(tb.add(l.min)), ab);
        }
    }
    acc
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn q8_0<const T: usize, const MM: bool>(
    t: *const u8,
    a: [*const u8; T],
    blocks: usize,
) -> [Floats8; T] {
    let l = tile_layout(WeightType::Q8_0);
    let mut acc = zeros();
    for b in 0..blocks {
        // SAFETY: tile b (272 bytes) and activation block b (34 bytes) of each row.
        unsafe {
            let (tb, ab) = (t.add(b * 272), at(a, b, 34));
            let qs = tb.add(l.values);
            let regs: [Bytes32; 8] = std::array::from_fn(|k| load(qs.add(32 * k)));
            let sums = row_sums::<T, MM>(&regs, offset(ab, 2));
            scale_into(&mut acc, f16x8(tb), ab, sums);
        }
    }
    acc
}

// K-quants: one tile is one super-block of 8 rows; activations are Q8_K (f32 d at 0, 256 i8 at
// 4, 16 i16 sums of 16 values at 260). A sub-block's i32 sum is multiplied by its scale, as in
// `avx512_x8.rs`.

/// Q2_K: x = d·scale·q − dmin·min per 16-value sub-block, q in 0..4.
#[target_feature(enable = "neon,dotprod")]
unsafe fn q2_k<const T: usize, const MM: bool>(
    t: *const u8,
    a: [*const u8; T],
    blocks: usize,
) -> [Floats8; T] {
    let mut acc = zeros();
    for b in 0..blocks {
        // SAFETY: tile b and one Q8_K block per row.
        unsafe {
            let (tb, ab) = (t.add(b * Q2_K_TILE), at(a, b, Q8K));
            let mut sumi = [[vdupq_n_s32(0); 2]; T];
            let mut mins = sumi;
            for s in 0..16 {
                let packed = bytes8(tb.add(k2::SCALES + 8 * s), false);
                let scale = each(packed, |p| vandq_s32(p, vdupq_n_s32(0x0f)));
                let min = each(packed, |p| vshrq_n_s32::<4>(p));
                let v = load(tb.add(k2::VALUES + 32 * s));
                let regs = [0, 1, 2, 3].map(|r| crumbs(v, r));
                let sums = row_sums::<T, MM>(&regs, offset(ab, 4 + 16 * s));
                for i in 0..T {
                    sumi[i] = mul_add(sumi[i], sums[i], scale);
                    mins[i] = mul_add_n(mins[i], min, bsums(ab[i], s, 1));
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
#[target_feature(enable = "neon,dotprod")]
unsafe fn q3_k<const T: usize, const MM: bool>(
    t: *const u8,
    a: [*const u8; T],
    blocks: usize,
) -> [Floats8; T] {
    let mut acc = zeros();
    for b in 0..blocks {
        // SAFETY: tile b and one Q8_K block per row.
        unsafe {
            let (tb, ab) = (t.add(b * Q3_K_TILE), at(a, b, Q8K));
            let mut sumi = [[vdupq_n_s32(0); 2]; T];
            for s in 0..16 {
                let scale = minus_n(bytes8(tb.add(k3::SCALES + 8 * s), false), 32);
                let v = load(tb.add(k3::low(s)));
                let high = load(tb.add(k3::high(s / 2)));
                let regs =
                    [0, 1, 2, 3].map(|r| or(crumbs(v, r), plane_bits(high, 4 * (s % 2) + r, 4)));
                let sums = row_sums::<T, MM>(&regs, offset(ab, 4 + 16 * s));
                for i in 0..T {
                    let shifted = minus_n(sums[i], 4 * bsums(ab[i], s, 1));
                    sumi[i] = mul_add(sumi[i], shifted, scale);
                }
            }
            scale_super_block(&mut acc, f16x8(tb), ab, sumi, None);
        }
    }
    acc
}

/// Q4_K, or with `FIVE` Q5_K: 32-value sub-blocks, each nibble's fifth bit (0 or 16) added from
/// the sub-block's bit vector.
#[target_feature(enable = "neon,dotprod")]
unsafe fn q45_k<const T: usize, const MM: bool, const FIVE: bool>(
    t: *const u8,
    a: [*const u8; T],
    blocks: usize,
) -> [Floats8; T] {
    let tile = if FIVE { Q5_K_TILE } else { Q4_K_TILE };
    let mut acc = zeros();
    for b in 0..blocks {
        // SAFETY: tile b and one Q8_K block per row.
        unsafe {
            let (tb, ab) = (t.add(b * tile), at(a, b, Q8K));
            let mut sumi = [[vdupq_n_s32(0); 2]; T];
            let mut mins = sumi;
            for s in 0..8 {
                let scale = bytes8(tb.add(k4::SCALES + 8 * s), false);
                let min = bytes8(tb.add(k4::MINS + 8 * s), false);
                let high = if FIVE {
                    load(tb.add(k5::high(s)))
                } else {
                    [vdupq_n_u8(0); 2]
                };
                let regs = nibble_registers(tb.add(k4::values(FIVE, s)), |r, v| {
                    if FIVE {
                        or(v, fifth_bits(high, r))
                    } else {
                        v
                    }
                });
                let sums = row_sums::<T, MM>(&regs, offset(ab, 4 + 32 * s));
                for i in 0..T {
                    sumi[i] = mul_add(sumi[i], sums[i], scale);
                    mins[i] = mul_add_n(mins[i], min, bsums(ab[i], 2 * s, 2));
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
#[target_feature(enable = "neon,dotprod")]
unsafe fn q6_k<const T: usize, const MM: bool>(
    t: *const u8,
    a: [*const u8; T],
    blocks: usize,
) -> [Floats8; T] {
    let low = vdupq_n_u8(0x0f);
    let three = vdupq_n_u8(3);
    let mut acc = zeros();
    for b in 0..blocks {
        // SAFETY: tile b and one Q8_K block per row.
        unsafe {
            let (tb, ab) = (t.add(b * Q6_K_TILE), at(a, b, Q8K));
            let mut sumi = [[vdupq_n_s32(0); 2]; T];
            for s in 0..16 {
                let scale = bytes8(tb.add(k6::SCALES + 8 * s), true);
                let high = load(tb.add(k6::high(s)));
                let (v0, v1) = (load(tb.add(k6::low(s))), load(tb.add(k6::low(s) + 32)));
                // High bit pair r of each byte (bits 2r, 2r + 1) as the value's bits 4 and 5.
                let with_high = |nibbles: Bytes32, r: u32| {
                    let bits = each(shr(high, 2 * r), |h| vshlq_n_u8::<4>(vandq_u8(h, three)));
                    or(nibbles, bits)
                };
                let regs = [
                    with_high(each(v0, |v| vandq_u8(v, low)), 0),
                    with_high(shr(v0, 4), 1),
                    with_high(each(v1, |v| vandq_u8(v, low)), 2),
                    with_high(shr(v1, 4), 3),
                ];
                let sums = row_sums::<T, MM>(&regs, offset(ab, 4 + 16 * s));
                for i in 0..T {
                    let shifted = minus_n(sums[i], 32 * bsums(ab[i], s, 1));
                    sumi[i] = mul_add(sumi[i], shifted, scale);
                }
            }
            scale_super_block(&mut acc, f16x8(tb), ab, sumi, None);
        }
    }
    acc
}
