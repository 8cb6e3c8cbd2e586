//! Converting f32 activations to the format a weight type multiplies with, exactly as
//! llama.cpp's x86 build does (Q8_0/Q8_1: scale 127/amax, round half to even; Q8_K: the signed
//! extreme maps to −127), so Ward's products match its numbers before the final f32 sums.

use super::{ActivationType, QK_K};

/// `x` (a whole number of `ty`'s blocks) in format `ty`, replacing the contents of `out`.
pub fn quantize_activations(ty: ActivationType, x: &[f32], out: &mut Vec<u8>) {
    assert!(
        x.len().is_multiple_of(ty.block_len()),
        "activation row is not a whole number of blocks"
    );
    out.clear();
    out.reserve(x.len() / ty.block_len() * ty.block_bytes());
    match ty {
        ActivationType::F32 => x.iter().for_each(|v| out.extend(v.to_le_bytes())),
        ActivationType::F16 => x
            .iter()
            .for_each(|&v| out.extend(half::f16::from_f32(v).to_le_bytes())),
        ActivationType::BF16 => x
            .iter()
            .for_each(|&v| out.extend(half::bf16::from_f32(v).to_le_bytes())),
        ActivationType::Q8_0 | ActivationType::Q8_1 => {
            for block in x.chunks_exact(32) {
                let (d, q) = quantize_block_32(block);
                out.extend(half::f16::from_f32(d).to_le_bytes());
                if ty == ActivationType::Q8_1 {
                    let sum: i32 = q.iter().map(|&v| i32::from(v)).sum();
                    out.extend(half::f16::from_f32(sum as f32 * d).to_le_bytes());
                }
                out.extend(q.iter().map(|&v| v as u8));
            }
        }
        ActivationType::Q8_K => x.chunks_exact(QK_K).for_each(|b| quantize_block_k(b, out)),
    }
}

/// `x` rounded to the nearest integer, ties to even, for |x| < 2²²: adding 1.5·2²³ leaves the
/// integer in the low mantissa bits (the FPU's default rounding does the tie-break). ggml's own
/// trick; unlike `f32::round_ties_even` it needs no libm call on a baseline x86-64 build.
fn round_half_even(x: f32) -> i32 {
    let shifted = x + 12_582_912.0;
    (shifted.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

fn quantize_block_32(x: &[f32]) -> (f32, [i8; 32]) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut q = [0i8; 32];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = round_half_even(v * id) as i8;
    }
    (d, q)
}

/// One Q8_K block: f32 d, 256 i8, 16 i16 sums of 16 consecutive values.
fn quantize_block_k(x: &[f32], out: &mut Vec<u8>) {
    // The value of largest magnitude, with its sign: it becomes −127 exactly.
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        out.extend(std::iter::repeat_n(0u8, ActivationType::Q8_K.block_bytes()));
        return;
    }
    let iscale = -127.0 / max;
    let mut q = [0i8; QK_K];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = round_half_even(iscale * v).min(127) as i8;
    }
    out.extend((1.0 / iscale).to_le_bytes());
    out.extend(q.iter().map(|&v| v as u8));
    for group in q.chunks_exact(16) {
        let sum: i16 = group.iter().map(|&v| i16::from(v)).sum();
        out.extend(sum.to_le_bytes());
    }
}

// Reading converted activation rows: what the tile kernels of every ISA share. A kernel holds
// one pointer per activation row it multiplies at once.

/// Bytes of one Q8_K block: f32 d at 0, 256 i8 at 4, 16 i16 sums of 16 values at 260.
pub(super) const Q8K: usize = 4 + QK_K + 2 * QK_K / 16;

/// Each row's activation pointers advanced to block `b` (of `block` bytes).
pub(super) fn at<const T: usize>(a: [*const u8; T], b: usize, block: usize) -> [*const u8; T] {
    a.map(|p| p.wrapping_add(b * block))
}

/// Each row's activation pointers advanced by `by` bytes (past a block's scales, to its values).
pub(super) fn offset<const T: usize>(a: [*const u8; T], by: usize) -> [*const u8; T] {
    a.map(|p| p.wrapping_add(by))
}

/// Sum of the Q8_K block sums `first..first + n` of one row.
///
/// # Safety
/// `a` must point at a Q8_K block.
pub(super) unsafe fn bsums(a: *const u8, first: usize, n: usize) -> i32 {
    (first..first + n)
        // SAFETY: the caller points at a Q8_K block.
        .map(|g| i32::from(unsafe { a.add(260 + 2 * g).cast::<i16>().read_unaligned() }))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::super::dequantize_activations;
    use super::*;

    fn round_trip(ty: ActivationType, x: &[f32]) -> Vec<f32> {
        let mut q = Vec::new();
        quantize_activations(ty, x, &mut q);
        assert_eq!(q.len(), x.len() / ty.block_len() * ty.block_bytes());
        let mut y = vec![0.0; x.len()];
        dequantize_activations(ty, &q, &mut y);
        y
    }

    #[test]
    fn every_format_round_trips_within_half_a_step() {
        let x: Vec<f32> = (0..512)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (ty, step) in [
            (ActivationType::Q8_0, amax / 127.0),
            (ActivationType::Q8_1, amax / 127.0),
            (ActivationType::Q8_K, amax / 127.0),
            (ActivationType::F16, amax / 1024.0),
            (ActivationType::BF16, amax / 128.0),
            (ActivationType::F32, 0.0),
        ] {
            let y = round_trip(ty, &x);
            for (a, b) in x.iter().zip(&y) {
                // Half a step, plus the f16 rounding of the Q8 scales (times up to 127).
                assert!((a - b).abs() <= step * 0.6 + 1e-6, "{ty:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn rounding_is_half_to_even() {
        for (x, want) in [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (126.7, 127),
            (-127.0, -127),
            (3.49, 3),
        ] {
            assert_eq!(round_half_even(x), want, "{x}");
        }
    }

    #[test]
    fn q8_1_sum_and_q8_k_block_sums() {
        let x: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut q = Vec::new();
        quantize_activations(ActivationType::Q8_1, &x[..32], &mut q);
        let d = half::f16::from_le_bytes([q[0], q[1]]).to_f32();
        let s = half::f16::from_le_bytes([q[2], q[3]]).to_f32();
        let sum: i32 = q[4..36].iter().map(|&v| i32::from(v as i8)).sum();
        assert!((s - d * sum as f32).abs() <= 0.01 * s.abs().max(1.0));
        quantize_activations(ActivationType::Q8_K, &x, &mut q);
        for g in 0..16 {
            let sum: i16 = q[4 + 16 * g..4 + 16 * g + 16]
                .iter()
                .map(|&v| i16::from(v as i8))
                .sum();
            let stored = i16::from_le_bytes([q[260 + 2 * g], q[261 + 2 * g]]);
            assert_eq!(sum, stored);
        }
        quantize_activations(ActivationType::Q8_K, &[0.0; 256], &mut q);
        assert!(q.iter().all(|&b| b == 0));
    }
}
