//! Weights into GGML block formats: what a checkpoint's F32/F16/BF16 tensors become when Ward
//! quantizes them at load or writes a GGUF (`ward convert`). Each format follows ggml's
//! reference quantizer (`ggml-quants.c`, `quantize_row_*_ref`), which is what llama-quantize
//! runs without an importance matrix and what gguf-py's numpy port reproduces, so Ward's output
//! can be compared with theirs byte for byte (held to it by `quantized_bytes_match_ggml`).

use super::quantize_k::{q2_k_block, q3_k_block, q4_k_block, q5_k_block, q6_k_block};
use super::WeightType;

/// The formats [`quantize_row`] writes: every weight type (the K-quants in `quantize_k.rs`).
pub const QUANTIZABLE: [WeightType; 13] = {
    use WeightType::*;
    [
        F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
    ]
};

/// One row `x` in format `ty`, appended to `out`. `None` if `x` is not a whole number of its
/// blocks.
pub fn quantize_row(ty: WeightType, x: &[f32], out: &mut Vec<u8>) -> Option<()> {
    if !x.len().is_multiple_of(ty.block_len()) {
        return None;
    }
    let block: fn(&[f32], &mut Vec<u8>) = match ty {
        WeightType::F32 => |b, out| out.extend(b[0].to_le_bytes()),
        WeightType::F16 => |b, out| out.extend(half::f16::from_f32(b[0]).to_le_bytes()),
        WeightType::BF16 => |b, out| out.extend(half::bf16::from_f32(b[0]).to_le_bytes()),
        WeightType::Q4_0 => q4_0_block,
        WeightType::Q4_1 => q4_1_block,
        WeightType::Q5_0 => q5_0_block,
        WeightType::Q5_1 => q5_1_block,
        WeightType::Q8_0 => q8_0_block,
        WeightType::Q2_K => q2_k_block,
        WeightType::Q3_K => q3_k_block,
        WeightType::Q4_K => q4_k_block,
        WeightType::Q5_K => q5_k_block,
        WeightType::Q6_K => q6_k_block,
    };
    x.chunks_exact(ty.block_len()).for_each(|b| block(b, out));
    Some(())
}

/// A float's conversion to int as ggml's C compiles it on x86-64 (`cvttss2si`, narrower types
/// keeping the low bits): truncation, and i32::MIN (low byte 0) for ±inf or NaN, which blocks
/// of near-subnormal values produce when 1/d overflows; Rust's `as` would saturate instead.
fn c_int(v: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        v as i32
    } else {
        i32::MIN
    }
}

/// The value of largest magnitude (the first of equals), signed.
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// The smallest and largest value.
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// Low nibbles are values 0..16, high nibbles 16..32; the fifth bits, if any, go to `qh`.
fn pack_nibbles(q: impl Fn(usize) -> u8, qh: Option<&mut [u8; 4]>, out: &mut Vec<u8>) {
    out.extend((0..16).map(|j| (q(j) & 0x0f) | ((q(j + 16) & 0x0f) << 4)));
    if let Some(qh) = qh {
        let bits = (0..32).fold(0u32, |h, j| h | (u32::from((q(j) >> 4) & 1) << j));
        *qh = bits.to_le_bytes();
    }
}

/// `quantize_row_q4_0_ref`: d = max / −8 with max the signed value of largest magnitude, so it
/// lands exactly on level 0; the opposite end clamps at 15.
fn q4_0_block(x: &[f32], out: &mut Vec<u8>) {
    let d = signed_absmax(x) / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend(half::f16::from_f32(d).to_le_bytes());
    pack_nibbles(|j| (c_int(x[j] * id + 8.5) as i8).min(15) as u8, None, out);
}

/// `quantize_row_q4_1_ref`: d = (max − min) / 15, m = min.
fn q4_1_block(x: &[f32], out: &mut Vec<u8>) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend(half::f16::from_f32(d).to_le_bytes());
    out.extend(half::f16::from_f32(min).to_le_bytes());
    pack_nibbles(
        |j| (c_int((x[j] - min) * id + 0.5) as i8).min(15) as u8,
        None,
        out,
    );
}

/// `quantize_row_q5_0_ref`: Q4_0 at 5 bits, d = max / −16.
fn q5_0_block(x: &[f32], out: &mut Vec<u8>) {
    let d = signed_absmax(x) / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend(half::f16::from_f32(d).to_le_bytes());
    let mut qh = [0u8; 4];
    let mut qs = Vec::with_capacity(16);
    pack_nibbles(
        |j| (c_int(x[j] * id + 16.5) as i8).min(31) as u8,
        Some(&mut qh),
        &mut qs,
    );
    out.extend(qh);
    out.extend(qs);
}

/// `quantize_row_q5_1_ref`: Q4_1 at 5 bits (no clamp: ggml relies on (max − min)·id ≤ 31).
fn q5_1_block(x: &[f32], out: &mut Vec<u8>) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend(half::f16::from_f32(d).to_le_bytes());
    out.extend(half::f16::from_f32(min).to_le_bytes());
    let mut qh = [0u8; 4];
    let mut qs = Vec::with_capacity(16);
    pack_nibbles(
        |j| c_int((x[j] - min) * id + 0.5) as u8,
        Some(&mut qh),
        &mut qs,
    );
    out.extend(qh);
    out.extend(qs);
}

/// ggml's `quantize_row_q8_0_ref`: d = max|x| / 127, q = roundf(x / d) computed as x · (1/d),
/// rounding halves away from zero.
fn q8_0_block(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend(half::f16::from_f32(d).to_le_bytes());
    out.extend(x.iter().map(|&v| c_int((v * id).round()) as u8));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dequantize_row;

    /// The LCG both this file and `scripts/reference/ggml_quants_oracle.c` draw from: uniform in
    /// [−0.5, 0.5), exactly representable.
    fn lcg(s: &mut u64) -> f32 {
        *s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*s >> 40) as f32 / 16_777_216.0 - 0.5
    }

    fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n).map(|_| lcg(&mut s) * scale).collect()
    }

    /// Rows of 512 that stress the fits, by name.
    fn stress_rows() -> Vec<(&'static str, Vec<f32>)> {
        let mut outlier = random(512, 4, 2.0);
        outlier[300] = 1.0e4;
        let mut zero_block = random(512, 5, 2.0);
        zero_block[256..].fill(0.0);
        vec![
            ("uniform", random(512, 1, 4.0)),
            ("small", random(512, 2, 1e-3)),
            ("large", random(512, 3, 1e3)),
            ("outlier", outlier),
            ("zero block", zero_block),
            ("all zero", vec![0.0; 512]),
            (
                "negative",
                random(512, 6, 2.0).iter().map(|v| -v.abs()).collect(),
            ),
            (
                "offset",
                random(512, 7, 1.0).iter().map(|v| v + 5.0).collect(),
            ),
            ("constant", vec![-0.3; 512]),
            (
                "odd",
                (0..512)
                    .map(|i| ((i * 37) % 11) as f32 * 0.25 - 1.25)
                    .collect(),
            ),
            (
                "heavy tails",
                random(512, 8, 2.0)
                    .iter()
                    .map(|v| v * v * v * 8.0)
                    .collect(),
            ),
        ]
    }

    /// Bounds for `ty`: the worst error per value as a fraction of the largest magnitude in
    /// its scale block (32 values, 256 for the K-quants): a step, or half of one where nothing
    /// clamps, plus the f16 scales' rounding and the K-quants' coarse sub-block scales; an
    /// absolute floor for f16 scales that are subnormal (steps of 2⁻²⁴, times the largest
    /// scale × level product); and the RMS error over the RMS value on uniform data, about
    /// 1.25 times what ggml's algorithm gives (a regression in the fit would show there).
    fn bounds(ty: WeightType) -> (f32, f32, f64) {
        use WeightType::*;
        let (worst, products, rms) = match ty {
            F32 => (0.0, 0.0, 0.0),
            F16 => (2f32.powi(-11), 0.5, 2f64.powi(-11)),
            BF16 => (2f32.powi(-8), 0.0, 2f64.powi(-8)),
            Q8_0 => (0.5 / 127.0 + 2f32.powi(-10), 127.0, 0.005),
            Q4_0 => (1.0 / 8.0 + 2f32.powi(-9), 8.0, 0.08),
            Q5_0 => (1.0 / 16.0 + 2f32.powi(-9), 16.0, 0.04),
            Q4_1 => (1.0 / 15.0 + 2f32.powi(-9), 16.0, 0.075),
            Q5_1 => (1.0 / 31.0 + 2f32.powi(-9), 32.0, 0.037),
            Q2_K => (0.45, 60.0, 0.3),
            Q3_K => (0.3, 128.0, 0.16),
            Q4_K => (0.12, 1008.0, 0.07),
            Q5_K => (0.06, 2016.0, 0.036),
            Q6_K => (0.025, 4096.0, 0.017),
        };
        (worst, products * 2f32.powi(-24), rms)
    }

    #[test]
    fn every_format_round_trips_within_its_precision() {
        for ty in QUANTIZABLE {
            let (worst, floor, rms) = bounds(ty);
            let group = if ty.block_len() == 1 {
                1
            } else {
                ty.block_len()
            };
            for (name, x) in stress_rows() {
                let mut bytes = Vec::new();
                quantize_row(ty, &x, &mut bytes).unwrap();
                assert_eq!(bytes.len(), ty.row_bytes(x.len()).unwrap(), "{ty:?}");
                let mut back = vec![0.0; x.len()];
                dequantize_row(ty, &bytes, &mut back);
                for (xs, ys) in x.chunks(group).zip(back.chunks(group)) {
                    let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    for (a, b) in xs.iter().zip(ys) {
                        assert!(
                            (a - b).abs() <= worst * amax + floor,
                            "{ty:?} {name}: {a} came back as {b} (block max {amax})"
                        );
                    }
                }
                if name == "uniform" {
                    let sq = |v: f32| f64::from(v) * f64::from(v);
                    let err: f64 = x.iter().zip(&back).map(|(a, b)| sq(a - b)).sum();
                    let sig: f64 = x.iter().map(|&a| sq(a)).sum();
                    let rel = (err / sig).sqrt();
                    assert!(rel <= rms, "{ty:?}: RMS error {rel}");
                }
            }
        }
    }

    /// The rows `scripts/reference/ggml_quants_oracle.c` quantizes: 144 super-blocks of kind
    /// b % 18 (scales from 1e-38 to 3e5, zeros, an outlier, one-signed, constant, ties,
    /// sparse, heavy-tailed, subnormal), as 16 rows of 2304.
    fn oracle_input() -> Vec<f32> {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut x = Vec::with_capacity(144 * 256);
        for b in 0..144 {
            for i in 0..256 {
                let r = lcg(&mut s);
                x.push(match b % 18 {
                    0 => r,
                    1 => r * 1e-3,
                    2 => r * 100.0,
                    3 => 0.0,
                    4 if i == 37 => 1000.0,
                    4 => r,
                    5 => -r.abs() * 2.0,
                    6 => r.abs() * 0.5,
                    7 => 0.75,
                    8 => (s >> 61) as f32 * 0.25 - 1.0,
                    9 => r * 1e-12,
                    10 => r * 1e-20,
                    11 => r * r * r * 8.0,
                    12 if i % 7 == 0 => r * 4.0,
                    12 => 0.0,
                    13 => r * 3e5,
                    14 => r * (1 << (i / 32)) as f32 / 16.0,
                    15 => r + 3.0,
                    16 => r * 1e-38,
                    _ => i as f32 - 128.0,
                });
            }
        }
        x
    }

    fn fnv1a64(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    #[test]
    fn quantized_bytes_match_ggml() {
        // FNV-1a 64 of ggml's output, from scripts/reference/ggml_quants_oracle.c (llama.cpp as
        // llama-cpp-python 0.3.36 vendors it; ggml_quantize_chunk without an importance matrix).
        use WeightType::*;
        let expected = [
            (F32, 0x06de1f740d1526e0),
            (F16, 0x5ce5cf235f147114),
            (BF16, 0x05a5b85085f0e403),
            (Q4_0, 0x1b04dacd62b60fd0),
            (Q4_1, 0x1112f523b85c7de2),
            (Q5_0, 0xa9c7347dee776c42),
            (Q5_1, 0xa29abf397ab20a9e),
            (Q8_0, 0xee9d549325877081),
            (Q2_K, 0xac098ff8287a7698),
            (Q3_K, 0x8c592bad5fae7f8f),
            (Q4_K, 0x97925a56ed329bcc),
            (Q5_K, 0xa566e4c254dc925f),
            (Q6_K, 0xceb93fb7890c564a),
        ];
        let x = oracle_input();
        let mut wrong = Vec::new();
        for (ty, want) in expected {
            let mut bytes = Vec::new();
            for row in x.chunks(2304) {
                quantize_row(ty, row, &mut bytes).unwrap();
            }
            let got = fnv1a64(&bytes);
            if got != want {
                wrong.push(format!("{ty:?}: {got:016x}, ggml {want:016x}"));
            }
        }
        assert!(wrong.is_empty(), "bytes differ from ggml's: {wrong:?}");
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
    fn q4_0_puts_the_largest_magnitude_on_level_0_and_rounds_halves_up() {
        // max = −4 → d = 0.5 (x = d·(q − 8)): −4 → 0; 3.99 → 15.98 + 0.5 truncated is 16,
        // clamped to 15; the halves 0.25 → 9 and −0.25 → 8 both round up (+0.5, truncate).
        let mut x = vec![0.0f32; 32];
        x[..3].copy_from_slice(&[-4.0, 0.25, -0.25]);
        x[16] = 3.99;
        let mut bytes = Vec::new();
        quantize_row(WeightType::Q4_0, &x, &mut bytes).unwrap();
        assert_eq!(half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32(), 0.5);
        assert_eq!(&bytes[2..5], &[0xf0, 0x89, 0x88]);
    }

    #[test]
    fn rows_that_are_not_whole_blocks_are_refused() {
        let mut out = Vec::new();
        assert!(quantize_row(WeightType::Q8_0, &[1.0; 33], &mut out).is_none());
        assert!(quantize_row(WeightType::Q4_K, &[1.0; 288], &mut out).is_none());
        assert!(out.is_empty());
    }
}
