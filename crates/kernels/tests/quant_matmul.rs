//! The quantized matmul on random data: the scalar reference against exact f64 arithmetic on
//! the quantized blocks, every SIMD tier the machine has against the same, and the parallel
//! matmul against row-by-row dot products and plain float maths — over odd shapes and token
//! counts.

use ward_kernels::quant::{
    avx2_available, matmul, quantize_q8_0, quantize_q8_1, vec_dot, QuantMatrix, Tier, WeightType,
};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal_ish(&mut self) -> f32 {
        (0..4).map(|_| self.unit()).sum::<f32>() - 2.0
    }
}

fn f16(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_le_bytes()
}

fn f16_at(b: &[u8], at: usize) -> f64 {
    f64::from(half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32())
}

const TYPES: [WeightType; 2] = [WeightType::Q4_1, WeightType::Q8_0];

/// Random weight blocks as a quantizer would write them.
fn random_weights(ty: WeightType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..rows * cols / 32 {
        match ty {
            WeightType::Q4_1 => {
                bytes.extend(f16(0.001 + 0.05 * rng.unit()));
                bytes.extend(f16(-0.4 * rng.unit()));
                bytes.extend((0..16).map(|_| rng.next() as u8));
            }
            WeightType::Q8_0 => {
                bytes.extend(f16(0.0005 + 0.01 * rng.unit()));
                // -127..=127, as quantizers write them.
                bytes.extend((0..32).map(|_| ((rng.next() % 255) as i32 - 127) as i8 as u8));
            }
        }
    }
    bytes
}

/// Dequantized weights of one row.
fn dequantize(ty: WeightType, row: &[u8]) -> Vec<f64> {
    let mut out = Vec::new();
    for b in row.chunks_exact(ty.block_bytes()) {
        match ty {
            WeightType::Q4_1 => {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                out.extend(b[4..].iter().map(|&q| d * f64::from(q & 15) + m));
                out.extend(b[4..].iter().map(|&q| d * f64::from(q >> 4) + m));
            }
            WeightType::Q8_0 => {
                out.extend(b[2..].iter().map(|&q| f16_at(b, 0) * f64::from(q as i8)))
            }
        }
    }
    out
}

fn quantize_activations(ty: WeightType, x: &[f32]) -> Vec<u8> {
    let mut q = Vec::new();
    match ty {
        WeightType::Q4_1 => quantize_q8_1(x, &mut q),
        WeightType::Q8_0 => quantize_q8_0(x, &mut q),
    }
    q
}

/// The exact value of what the kernels compute, in f64: Q8_1's stored sum s stands in for
/// Σ d·q when adding the weights' minimum, as in llama.cpp.
fn exact_dot(ty: WeightType, w: &[u8], a: &[u8]) -> f64 {
    let act_bytes = ty.activation_block_bytes();
    let mut sum = 0.0;
    for (wb, ab) in w
        .chunks_exact(ty.block_bytes())
        .zip(a.chunks_exact(act_bytes))
    {
        let qa = &ab[act_bytes - 32..];
        let da = f16_at(ab, 0);
        let d = f16_at(wb, 0);
        let isum: i64 = match ty {
            WeightType::Q4_1 => (0..16)
                .map(|j| {
                    i64::from(wb[4 + j] & 15) * i64::from(qa[j] as i8)
                        + i64::from(wb[4 + j] >> 4) * i64::from(qa[16 + j] as i8)
                })
                .sum(),
            WeightType::Q8_0 => (0..32)
                .map(|j| i64::from(wb[2 + j] as i8) * i64::from(qa[j] as i8))
                .sum(),
        };
        sum += d * da * isum as f64;
        if ty == WeightType::Q4_1 {
            sum += f16_at(wb, 2) * f16_at(ab, 2);
        }
    }
    sum
}

fn tiers() -> Vec<Tier> {
    let mut t = vec![Tier::Scalar];
    if avx2_available() {
        t.push(Tier::Avx2);
    }
    t
}

#[test]
fn every_tier_matches_exact_arithmetic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for ty in TYPES {
        for cols in [32, 64, 96, 576, 1536 + 32, 2048] {
            let w = random_weights(ty, 1, cols, &mut rng);
            let x: Vec<f32> = (0..cols).map(|_| rng.normal_ish()).collect();
            let a = quantize_activations(ty, &x);
            let exact = exact_dot(ty, &w, &a);
            // f32 products and sums: a few ulps of the sum of magnitudes.
            let magnitude: f64 = dequantize(ty, &w).iter().map(|v| v.abs()).sum::<f64>() * 3.0;
            for tier in tiers() {
                let got = f64::from(vec_dot(ty, tier, &w, &a));
                assert!(
                    (got - exact).abs() <= 1e-5 * magnitude + 1e-6,
                    "{ty:?} {tier:?} cols {cols}: {got} vs {exact}"
                );
            }
        }
    }
}

#[test]
fn matmul_equals_row_by_row_dots_and_approximates_float_math() {
    let mut rng = Rng(42);
    for ty in TYPES {
        for (rows, cols, n) in [
            (1, 32, 1),
            (7, 96, 3),
            (33, 576, 1),
            (65, 160, 5),
            (100, 64, 2),
        ] {
            let bytes = random_weights(ty, rows, cols, &mut rng);
            let w = QuantMatrix::new(ty, bytes.clone(), rows, cols).unwrap();
            let x: Vec<f32> = (0..n * cols).map(|_| rng.normal_ish()).collect();
            let y = matmul(&w, &x);
            assert_eq!(y.len(), n * rows);
            let row_bytes = bytes.len() / rows;
            for t in 0..n {
                let xs = &x[t * cols..][..cols];
                let a = quantize_activations(ty, xs);
                for r in 0..rows {
                    let wr = &bytes[r * row_bytes..][..row_bytes];
                    let got = f64::from(y[t * rows + r]);
                    let deq = dequantize(ty, wr);
                    let magnitude: f64 = deq.iter().map(|v| v.abs()).sum();
                    let exact = exact_dot(ty, wr, &a);
                    assert!(
                        (got - exact).abs() <= 3e-5 * magnitude + 1e-6,
                        "{ty:?} {rows}x{cols} token {t} row {r}: {got} vs {exact}"
                    );
                    // Against unquantized activations only the 8-bit rounding of x differs.
                    let float: f64 = deq.iter().zip(xs).map(|(w, &x)| w * f64::from(x)).sum();
                    assert!(
                        (got - float).abs() <= 0.02 * magnitude + 1e-3,
                        "{ty:?} {got} vs float {float}"
                    );
                }
            }
        }
    }
}

#[test]
fn malformed_matrices_are_refused() {
    assert!(QuantMatrix::new(WeightType::Q8_0, vec![0; 34], 1, 33).is_err());
    assert!(QuantMatrix::new(WeightType::Q8_0, vec![0; 33], 1, 32).is_err());
    assert!(QuantMatrix::new(WeightType::Q4_1, vec![0; 40], 2, 32).is_ok());
    assert!(QuantMatrix::new(WeightType::Q4_1, vec![0; 40], usize::MAX, 32).is_err());
}
