//! Random data shared by the kernel tests: a reproducible generator, weight blocks as a
//! quantizer could write them, Q8_1 activations, and the plain matmul they are checked against.
#![allow(dead_code)]

use ward_kernels::quant::{
    dequantize_activations, dequantize_row, quantize_activations, ActivationType, WeightType,
};
use ward_kernels::tier::Tier;

/// The tiers this machine can run, the scalar reference first. Each one it cannot run is
/// recorded as skipped for the running test, with the reason, never silently dropped.
pub fn tiers() -> Vec<Tier> {
    Tier::ALL
        .into_iter()
        .filter(|t| match t.supported() {
            Ok(()) => true,
            Err(why) => {
                ward_testkit::skip(&format!("the {t} tier"), &why);
                false
            }
        })
        .collect()
}

/// A small deterministic generator (xorshift), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn normal_ish(&mut self) -> f32 {
        (0..4).map(|_| self.unit()).sum::<f32>() - 2.0
    }
    /// `n` values of `normal_ish`.
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal_ish()).collect()
    }
}

/// Where each type keeps its f16 scales (d, and the minimum's scale for types that have one),
/// as byte offsets in a block; everything else in a block may hold any bits.
pub fn f16_fields(ty: WeightType) -> &'static [usize] {
    use WeightType::*;
    match ty {
        F32 | F16 | BF16 => &[],
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q6_K => &[208],
    }
}

/// Random blocks as a quantizer could write them: random bits, with sane scales.
pub fn random_weights(ty: WeightType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let blocks = rows * cols / ty.block_len();
    let mut bytes = Vec::with_capacity(blocks * ty.block_bytes());
    for _ in 0..blocks {
        let start = bytes.len();
        match ty {
            WeightType::F32 => bytes.extend((rng.normal_ish() * 0.1).to_le_bytes()),
            WeightType::F16 => {
                bytes.extend(half::f16::from_f32(rng.normal_ish() * 0.1).to_le_bytes())
            }
            WeightType::BF16 => {
                bytes.extend(half::bf16::from_f32(rng.normal_ish() * 0.1).to_le_bytes())
            }
            _ => bytes.extend((0..ty.block_bytes()).map(|_| rng.next() as u8)),
        }
        for (i, &at) in f16_fields(ty).iter().enumerate() {
            // The first is the scale, the second the minimum (or its scale), smaller and any sign.
            let v = if i == 0 {
                0.0005 + 0.01 * rng.unit()
            } else {
                0.01 * rng.normal_ish()
            };
            bytes[start + at..start + at + 2]
                .copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
        if ty == WeightType::Q8_0 {
            // Quantizers write −127..=127.
            for q in &mut bytes[start + 2..start + 34] {
                if *q == 0x80 {
                    *q = 0x81;
                }
            }
        }
    }
    bytes
}

/// Random Q8_1 activations for `tokens` tokens of `cols` values.
pub fn random_activations(rng: &mut Rng, tokens: usize, cols: usize) -> Vec<u8> {
    let mut xq = Vec::new();
    quantize_activations(ActivationType::Q8_1, &rng.vec(tokens * cols), &mut xq);
    xq
}

/// `y[t][row] = W[row] · x[t]` in f64 from the dequantized weights and Q8_1 activations, and
/// each output's magnitude Σ|w·x| (what a float summation error scales with).
pub fn reference_matmul(
    ty: WeightType,
    w: &[u8],
    rows: usize,
    cols: usize,
    xq: &[u8],
    tokens: usize,
) -> (Vec<f32>, Vec<f32>) {
    let row_bytes = ty.row_bytes(cols).unwrap();
    let mut xd = vec![0f32; tokens * cols];
    dequantize_activations(ActivationType::Q8_1, xq, &mut xd);
    let (mut want, mut magnitude) = (vec![0f32; tokens * rows], vec![0f32; tokens * rows]);
    let mut wd = vec![0f32; cols];
    for r in 0..rows {
        dequantize_row(ty, &w[r * row_bytes..(r + 1) * row_bytes], &mut wd);
        for t in 0..tokens {
            let products = wd
                .iter()
                .zip(&xd[t * cols..])
                .map(|(a, b)| f64::from(*a) * f64::from(*b));
            want[t * rows + r] = products.clone().sum::<f64>() as f32;
            magnitude[t * rows + r] = products.map(f64::abs).sum::<f64>() as f32;
        }
    }
    (want, magnitude)
}
