//! Weights into GGML block formats: what a checkpoint's F32/F16/BF16 tensors become when Ward
//! quantizes them at load or writes a GGUF (`ward convert`). Each format follows ggml's
//! reference quantizer (`ggml-quants.c`, `quantize_row_*_ref`), which gguf-py's numpy port and
//! llama.cpp's quantize tool reproduce bit for bit, so Ward's output can be compared with
//! theirs byte for byte.

use super::WeightType;

/// The formats [`quantize_row`] writes.
pub const QUANTIZABLE: [WeightType; 4] = [
    WeightType::F32,
    WeightType::F16,
    WeightType::BF16,
    WeightType::Q8_0,
];

/// One row `x` in format `ty`, appended to `out`. `None` if `ty` is not one of
/// [`QUANTIZABLE`] or `x` is not a whole number of its blocks.
pub fn quantize_row(ty: WeightType, x: &[f32], out: &mut Vec<u8>) -> Option<()> {
    if !x.len().is_multiple_of(ty.block_len()) {
        return None;
    }
    match ty {
        WeightType::F32 => x.iter().for_each(|v| out.extend(v.to_le_bytes())),
        WeightType::F16 => x
            .iter()
            .for_each(|&v| out.extend(half::f16::from_f32(v).to_le_bytes())),
        WeightType::BF16 => x
            .iter()
            .for_each(|&v| out.extend(half::bf16::from_f32(v).to_le_bytes())),
        WeightType::Q8_0 => x.chunks_exact(32).for_each(|b| q8_0_block(b, out)),
        _ => return None,
    }
    Some(())
}

/// ggml's `quantize_row_q8_0_ref`: d = max|x| / 127, q = roundf(x / d) computed as x · (1/d),
/// rounding halves away from zero.
fn q8_0_block(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend(half::f16::from_f32(d).to_le_bytes());
    out.extend(x.iter().map(|&v| (v * id).round() as i8 as u8));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dequantize_row;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
            })
            .collect()
    }

    #[test]
    fn every_format_round_trips_within_its_precision() {
        for ty in QUANTIZABLE {
            for (n, seed) in [(32, 1), (96, 2), (4096, 3)] {
                let x = random(n, seed);
                let mut bytes = Vec::new();
                quantize_row(ty, &x, &mut bytes).unwrap();
                assert_eq!(bytes.len(), ty.row_bytes(n).unwrap(), "{ty:?}");
                let mut back = vec![0.0; n];
                dequantize_row(ty, &bytes, &mut back);
                // Half an ulp of each format at |x| ≤ 2, or half a Q8_0 step (max/127).
                let tol = match ty {
                    WeightType::F32 => 0.0,
                    WeightType::F16 => 2.0 * 2f32.powi(-11),
                    WeightType::BF16 => 2.0 * 2f32.powi(-8),
                    _ => 2.0 / 127.0 * 0.5 + 1e-3,
                };
                for (a, b) in x.iter().zip(&back) {
                    assert!((a - b).abs() <= tol, "{ty:?}: {a} came back as {b}");
                }
            }
        }
    }

    #[test]
    fn q8_0_rounds_halves_away_from_zero_as_ggml_does() {
        // max 127 → d = 1: 0.5 → 1, -0.5 → -1, 2.5 → 3 (round-half-even would give 0, 0, 2).
        let mut x = vec![0.0f32; 32];
        x[..4].copy_from_slice(&[127.0, 0.5, -0.5, 2.5]);
        let mut bytes = Vec::new();
        quantize_row(WeightType::Q8_0, &x, &mut bytes).unwrap();
        assert_eq!(&bytes[2..6], &[127, 1, 255, 3]);
        // An all-zero block has d = 0 and zero quants.
        bytes.clear();
        quantize_row(WeightType::Q8_0, &[0.0; 32], &mut bytes).unwrap();
        assert!(bytes.iter().all(|&b| b == 0));
    }

    #[test]
    fn rows_that_are_not_whole_blocks_and_other_formats_are_refused() {
        let mut out = Vec::new();
        assert!(quantize_row(WeightType::Q8_0, &[1.0; 33], &mut out).is_none());
        assert!(quantize_row(WeightType::Q4_K, &[1.0; 256], &mut out).is_none());
        assert!(out.is_empty());
    }
}
