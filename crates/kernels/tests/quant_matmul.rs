//! The weight-format kernels on random data, for every type: every tier's row products
//! (`vec_dot`: NEON's for every type; on x86 the float types', the quantized ones taking the
//! scalar reference there) against exact f64 arithmetic on the dequantized blocks (the
//! reference definition), and the
//! parallel matmul on every tier (GGUF's rows, 8-row tiles) against the same and plain float
//! maths — over odd shapes, tails and token counts, with each token's outputs independent of the
//! others in the batch.

mod common;

use common::{f16_fields, random_weights, tiers, Rng};
use ward_kernels::activation::Activation;
use ward_kernels::norm::{rms_norm_inplace, RmsNorm};
use ward_kernels::quant::{
    dequantize_activations, dequantize_row, matmul, matmul_gated, matmul_normed,
    quantize_activations, vec_dot, ActivationType, Layout, MatrixError, QuantMatrix, WeightType,
};
use ward_kernels::tier::Tier;

/// `matmul_gated` into a new vector.
fn gated(w: &QuantMatrix, x: &[f32], norm: Option<RmsNorm>, act: Activation) -> Vec<f32> {
    let mut y = vec![0.0; x.len() / w.cols() * w.rows() / 2];
    matmul_gated(w, x, norm, act, &mut y);
    y
}

fn floats(ty: WeightType, row: &[u8]) -> Vec<f64> {
    let mut out = vec![0.0f32; row.len() / ty.block_bytes() * ty.block_len()];
    dequantize_row(ty, row, &mut out);
    out.into_iter().map(f64::from).collect()
}

fn activations(ty: WeightType, x: &[f32]) -> (Vec<u8>, Vec<f64>) {
    let at = ty.activation_type();
    let mut q = Vec::new();
    quantize_activations(at, x, &mut q);
    let mut back = vec![0.0f32; x.len()];
    dequantize_activations(at, &q, &mut back);
    (q, back.into_iter().map(f64::from).collect())
}

/// How far an f32 computation may be from the exact value: a few ulps of the sum of magnitudes,
/// plus, for Q4_1/Q5_1, the f16 rounding of the activation sums they use for the minimum.
fn tolerance(ty: WeightType, w: &[f64], a: &[f64], a_bytes: &[u8]) -> f64 {
    let magnitude: f64 = w.iter().zip(a).map(|(w, a)| (w * a).abs()).sum();
    let mut tol = 2e-5 * magnitude + 1e-6;
    if matches!(ty, WeightType::Q4_1 | WeightType::Q5_1) {
        let sum_terms: f64 = a_bytes
            .chunks_exact(36)
            .map(|b| f64::from(half::f16::from_le_bytes([b[2], b[3]]).to_f32()).abs())
            .sum();
        tol += 0.02 * sum_terms / 1024.0 * 2.0;
    }
    tol
}

/// Row lengths: one block, several, model sizes, and (for the float types) tails.
fn col_cases(ty: WeightType) -> Vec<usize> {
    let bl = ty.block_len().max(32);
    let mut cols = vec![bl, 2 * bl, 3 * bl, 9 * bl];
    if ty.block_len() == 1 {
        cols.extend([1, 7, 13, 100, 577]);
    } else if bl == 32 {
        cols.extend([576, 1568]);
    } else {
        cols.push(2048);
    }
    cols
}

#[test]
fn every_tier_of_every_type_matches_exact_arithmetic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for ty in WeightType::ALL {
        for cols in col_cases(ty) {
            for _ in 0..4 {
                let w = random_weights(ty, 1, cols, &mut rng);
                let x: Vec<f32> = (0..cols).map(|_| rng.normal_ish()).collect();
                let (a, a_floats) = activations(ty, &x);
                let wf = floats(ty, &w);
                let exact: f64 = wf.iter().zip(&a_floats).map(|(w, a)| w * a).sum();
                let tol = tolerance(ty, &wf, &a_floats, &a);
                for tier in tiers() {
                    let got = f64::from(vec_dot(ty, tier, &w, &a));
                    assert!(
                        (got - exact).abs() <= tol,
                        "{ty:?} {tier:?} cols {cols}: {got} vs {exact} (tolerance {tol})"
                    );
                }
            }
        }
    }
}

#[test]
fn extreme_values_do_not_overflow_the_integer_sums() {
    // Every quantized value at its largest magnitude, activations all at the extreme: the i16
    // pair sums of `maddubs` are where an overflow would show, in the tile kernels (and NEON's
    // row products).
    let mut rng = Rng(7);
    for ty in WeightType::ALL.into_iter().filter(|t| t.block_len() > 1) {
        let cols = 512;
        for fill in [0x00u8, 0xff, 0x77, 0x88] {
            let mut w = random_weights(ty, 1, cols, &mut rng);
            let block = ty.block_bytes();
            let fields = f16_fields(ty);
            for (i, b) in w.iter_mut().enumerate() {
                let at = i % block;
                if !fields.iter().any(|&f| at == f || at == f + 1) {
                    *b = fill;
                }
            }
            for sign in [1.0f32, -1.0] {
                let x = vec![sign; cols];
                let (a, a_floats) = activations(ty, &x);
                let wf = floats(ty, &w);
                let exact: f64 = wf.iter().zip(&a_floats).map(|(w, a)| w * a).sum();
                let tol = tolerance(ty, &wf, &a_floats, &a);
                for tier in tiers() {
                    let dot = f64::from(vec_dot(ty, tier, &w, &a));
                    // The tile kernels too: 8 copies of the row, two tokens.
                    let tiled = matrix(ty, &w.repeat(8), 8, cols, tier);
                    let y = matmul(&tiled, &[x.clone(), x.clone()].concat());
                    for got in std::iter::once(dot).chain(y.into_iter().map(f64::from)) {
                        assert!(
                            (got - exact).abs() <= tol,
                            "{ty:?} {tier:?} fill {fill:#x} sign {sign}: {got} vs {exact}"
                        );
                    }
                }
            }
        }
    }
}

/// `rows × cols` of `ty` in GGUF's layout, for the kernels of `tier`.
fn matrix(ty: WeightType, bytes: &[u8], rows: usize, cols: usize, tier: Tier) -> QuantMatrix {
    QuantMatrix::on_tier(ty, bytes, rows, cols, tier).unwrap()
}

#[test]
fn matmul_on_every_tier_matches_exact_arithmetic_and_float_math() {
    let mut rng = Rng(42);
    for ty in WeightType::ALL {
        let bl = ty.block_len().max(32);
        for (rows, blocks, n) in [(1, 1, 1), (7, 3, 3), (33, 2, 1), (65, 5, 5), (100, 2, 2)] {
            let cols = blocks * bl;
            let bytes = random_weights(ty, rows, cols, &mut rng);
            let x: Vec<f32> = (0..n * cols).map(|_| rng.normal_ish()).collect();
            for tier in tiers() {
                let w = matrix(ty, &bytes, rows, cols, tier);
                let layout = (tier, w.layout());
                let y = matmul(&w, &x);
                assert_eq!(y.len(), n * rows);
                let row_bytes = bytes.len() / rows;
                for t in 0..n {
                    let xs = &x[t * cols..][..cols];
                    // Batch invariance: a token's outputs do not depend on the others.
                    assert_eq!(matmul(&w, xs), y[t * rows..][..rows], "{ty:?} {layout:?}");
                    let (a, a_floats) = activations(ty, xs);
                    for r in 0..rows {
                        let wr = &bytes[r * row_bytes..][..row_bytes];
                        let got = f64::from(y[t * rows + r]);
                        let wf = floats(ty, wr);
                        let exact: f64 = wf.iter().zip(&a_floats).map(|(w, a)| w * a).sum();
                        let tol = tolerance(ty, &wf, &a_floats, &a);
                        assert!(
                            (got - exact).abs() <= tol,
                            "{ty:?} {layout:?} {rows}x{cols} token {t} row {r}: {got} vs {exact}"
                        );
                        // Against unquantized activations only the rounding of x differs.
                        let magnitude: f64 = wf.iter().map(|v| v.abs()).sum();
                        let float: f64 = wf.iter().zip(xs).map(|(w, &x)| w * f64::from(x)).sum();
                        assert!(
                            (got - float).abs() <= 0.02 * magnitude + 1e-3,
                            "{ty:?} {got} vs float {float}"
                        );
                    }
                }
                // Rows come back out of any layout as they went in.
                let mut back = vec![0.0f32; cols];
                for r in [0, rows / 2, rows - 1] {
                    w.dequantize_row(r, &mut back);
                    let want = floats(ty, &bytes[r * row_bytes..][..row_bytes]);
                    assert!(back.iter().zip(&want).all(|(a, b)| f64::from(*a) == *b));
                }
            }
        }
    }
}

#[test]
fn the_gated_matmul_equals_two_matmuls_and_the_activation() {
    let mut rng = Rng(7);
    for ty in WeightType::ALL {
        let cols = 2 * ty.block_len().max(32);
        for (out_rows, n) in [(8, 1), (24, 3), (40, 6)] {
            let gate = random_weights(ty, out_rows, cols, &mut rng);
            let up = random_weights(ty, out_rows, cols, &mut rng);
            let x: Vec<f32> = (0..n * cols).map(|_| rng.normal_ish()).collect();
            for tier in tiers() {
                let paired =
                    QuantMatrix::paired_on_tier(ty, &gate, &up, out_rows, cols, tier).unwrap();
                let (g, u) = (
                    matrix(ty, &gate, out_rows, cols, tier),
                    matrix(ty, &up, out_rows, cols, tier),
                );
                for act in [Activation::Silu, Activation::Gelu] {
                    let mut want = matmul(&g, &x);
                    act.apply_parallel(&mut want, &matmul(&u, &x));
                    let got = gated(&paired, &x, None, act);
                    assert_eq!(got, want, "{ty:?} {tier} {act:?} {out_rows}×{n}");
                }
            }
        }
    }
}

#[test]
fn stacked_matrices_are_their_rows_one_after_another() {
    // Q/K/V-like parts of 8, 3 and 13 rows: groups of 8 that straddle the parts' ends.
    let mut rng = Rng(11);
    for ty in WeightType::ALL {
        let cols = 2 * ty.block_len().max(32);
        let parts: Vec<(Vec<u8>, usize)> = [8, 3, 13]
            .into_iter()
            .map(|rows| (random_weights(ty, rows, cols, &mut rng), rows))
            .collect();
        let all: Vec<u8> = parts.iter().flat_map(|(b, _)| b.iter().copied()).collect();
        let borrowed: Vec<(&[u8], usize)> = parts.iter().map(|(b, r)| (&b[..], *r)).collect();
        let stacked = QuantMatrix::stacked(ty, &borrowed, cols).unwrap();
        let x = rng.vec(3 * cols);
        let one = QuantMatrix::new(ty, &all, 24, cols).unwrap();
        assert_eq!(matmul(&stacked, &x), matmul(&one, &x), "{ty:?}");
    }
}

#[test]
fn pairs_of_groups_need_whole_groups() {
    let ty = WeightType::Q8_0;
    let rows = |n: usize| vec![0; n * 34];
    let pair = |gate: &[u8], up: &[u8], n| QuantMatrix::paired(ty, gate, up, n, 32).err();
    assert_eq!(
        pair(&rows(12), &rows(12), 12),
        Some(MatrixError::Unpaired { rows: 12 })
    );
    assert!(matches!(
        pair(&rows(16), &rows(15), 16),
        Some(MatrixError::ByteCount { got: 510, .. })
    ));
    assert_eq!(pair(&rows(16), &rows(16), 16), None);
}

#[test]
fn a_norm_applied_while_converting_equals_the_norm_applied_first() {
    let mut rng = Rng(9);
    for ty in WeightType::ALL {
        let cols = 2 * ty.block_len().max(32);
        let (rows, n) = (16, 5);
        let bytes = random_weights(ty, rows, cols, &mut rng);
        let x: Vec<f32> = (0..n * cols).map(|_| rng.normal_ish()).collect();
        let weight: Vec<f32> = (0..cols).map(|_| 1.0 + rng.normal_ish()).collect();
        let norm = RmsNorm {
            weight: &weight,
            eps: 1e-6,
        };
        let mut normed = x.clone();
        rms_norm_inplace(&mut normed, &weight, 1e-6);
        for tier in tiers() {
            let w = matrix(ty, &bytes, rows, cols, tier);
            let mut got = vec![0.0; n * rows];
            matmul_normed(&w, &x, Some(norm), &mut got);
            assert_eq!(got, matmul(&w, &normed), "{ty:?} {tier}");
            let fused = gated(&w, &x, Some(norm), Activation::Silu);
            assert_eq!(fused, gated(&w, &normed, None, Activation::Silu));
        }
    }
}

#[test]
fn aarch64_has_the_neon_tier() {
    // A tier that silently became unavailable would leave every test above on the reference.
    assert_eq!(
        cfg!(all(target_arch = "aarch64", target_endian = "little")),
        Tier::Neon.is_supported()
    );
}

#[test]
fn aarch64_with_the_dot_product_extension_has_the_dotprod_tier() {
    #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
    let expected = std::arch::is_aarch64_feature_detected!("dotprod");
    #[cfg(not(all(target_arch = "aarch64", target_endian = "little")))]
    let expected = false;
    assert_eq!(expected, Tier::Dotprod.is_supported());
    if Tier::I8mm.is_supported() {
        assert_eq!(Tier::best(), Tier::I8mm, "i8mm is preferred to dotprod");
    } else if expected {
        assert_eq!(Tier::best(), Tier::Dotprod, "dotprod is preferred to NEON");
    } else if Tier::Neon.is_supported() {
        assert_eq!(Tier::best(), Tier::Neon, "without dotprod, plain NEON");
    }
}

#[test]
fn aarch64_with_the_int8_matrix_multiply_extension_has_the_i8mm_tier() {
    #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
    let expected = std::arch::is_aarch64_feature_detected!("dotprod")
        && std::arch::is_aarch64_feature_detected!("i8mm");
    #[cfg(not(all(target_arch = "aarch64", target_endian = "little")))]
    let expected = false;
    assert_eq!(expected, Tier::I8mm.is_supported());
}

/// Whether `tier` multiplies 8-row tiles (the quantized types' `Layout::Interleaved8`).
fn tiles(tier: Tier) -> bool {
    match tier {
        Tier::Avx2 | Tier::Avx512 | Tier::Dotprod | Tier::I8mm => true,
        Tier::Scalar | Tier::Neon => false,
    }
}

#[test]
fn the_tiled_tiers_tile_every_quantized_format() {
    for tier in tiers() {
        for ty in WeightType::ALL {
            let cols = ty.block_len().max(32);
            let one_row = vec![0; ty.row_bytes(cols).unwrap()];
            let tiled = tiles(tier) && ty.block_len() > 1;
            let want = if tiled {
                Layout::Interleaved8
            } else {
                Layout::Rows
            };
            assert_eq!(
                matrix(ty, &one_row, 1, cols, tier).layout(),
                want,
                "{ty:?} {tier}"
            );
        }
    }
}

/// The tiled tiers' integer sums are exact and their float steps the same, so they agree to the
/// bit: a token's logits do not depend on which tier (or how many tokens at once) computed
/// them.
#[test]
fn the_tiled_tiers_agree_to_the_bit() {
    let simd: Vec<Tier> = tiers().into_iter().filter(|&t| tiles(t)).collect();
    let mut rng = Rng(0x5eed);
    for ty in WeightType::ALL {
        let bl = ty.block_len().max(32);
        for (rows, blocks, n) in [(8, 1, 1), (24, 7, 3), (40, 9, 6), (17, 4, 9)] {
            let cols = blocks * bl;
            let bytes = random_weights(ty, rows, cols, &mut rng);
            let x = rng.vec(n * cols);
            let outputs: Vec<_> = simd
                .iter()
                .map(|&t| (t, matmul(&matrix(ty, &bytes, rows, cols, t), &x)))
                .collect();
            for (t, y) in &outputs[1.min(outputs.len())..] {
                let (t0, y0) = &outputs[0];
                let same = y.iter().zip(y0).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{ty:?} {rows}×{cols}, {n} tokens: {t} differs from {t0}"
                );
            }
        }
    }
}

/// A hash of the tiled tiers' outputs over every quantized type, 1 to 6 tokens, recorded on
/// x86-64 (AVX2 and AVX-512 give it) and checked on aarch64's dotprod and i8mm tiers (1 to 4
/// activation rows per tile product: i8mm's pairs and its single rows): the tiers agree to the
/// bit across ISAs, not only on one machine. The inputs are the reproducible generator's
/// and their conversion to Q8 is plain scalar code, so only the kernels could change it.
const TILED_OUTPUTS_FNV1A: u64 = 0xce23_6938_416c_c49c;

#[test]
fn the_tiled_tiers_agree_to_the_bit_across_isas() {
    for tier in tiers().into_iter().filter(|&t| tiles(t)) {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for ty in WeightType::ALL.into_iter().filter(|t| t.block_len() > 1) {
            for (rows, blocks, n) in [(8, 1, 1), (24, 3, 2), (16, 2, 6), (9, 4, 4)] {
                let cols = blocks * ty.block_len();
                let bytes = random_weights(ty, rows, cols, &mut rng);
                let x = rng.vec(n * cols);
                for y in matmul(&matrix(ty, &bytes, rows, cols, tier), &x) {
                    for byte in y.to_bits().to_le_bytes() {
                        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
                    }
                }
            }
        }
        assert_eq!(
            hash, TILED_OUTPUTS_FNV1A,
            "the {tier} tier's outputs differ from the recorded x86 ones"
        );
    }
}

#[test]
fn a_matrix_for_a_tier_this_cpu_lacks_is_refused() {
    for tier in Tier::ALL.into_iter().filter(|t| !t.is_supported()) {
        let Err(err) = QuantMatrix::on_tier(WeightType::Q8_0, &[0; 34], 1, 32, tier) else {
            panic!("a {tier} matrix on a CPU without it");
        };
        let MatrixError::TierUnavailable { tier: refused, why } = &err else {
            panic!("{tier}: {err}");
        };
        assert_eq!(*refused, tier);
        assert!(why.contains("lacks") || why.contains("built for"), "{err}");
    }
}

#[test]
fn activation_formats_match_the_weight_types() {
    assert_eq!(WeightType::Q4_1.activation_type(), ActivationType::Q8_1);
    assert_eq!(WeightType::Q6_K.activation_type(), ActivationType::Q8_K);
    assert_eq!(WeightType::Q5_0.activation_type(), ActivationType::Q8_0);
    assert_eq!(WeightType::BF16.activation_type(), ActivationType::BF16);
}

#[test]
fn malformed_matrices_are_refused() {
    use WeightType::*;
    let err =
        |ty, bytes: usize, rows, cols| QuantMatrix::new(ty, &vec![0; bytes], rows, cols).err();
    assert!(matches!(
        err(Q8_0, 34, 1, 33),
        Some(MatrixError::RowLength {
            cols: 33,
            block: 32,
            ..
        })
    ));
    assert!(matches!(
        err(Q8_0, 33, 1, 32),
        Some(MatrixError::ByteCount {
            expected: 34,
            got: 33,
            ..
        })
    ));
    assert!(matches!(
        err(Q4_K, 144, 1, 128),
        Some(MatrixError::RowLength { block: 256, .. })
    ));
    assert!(err(Q4_1, 40, 2, 32).is_none());
    assert!(matches!(
        err(Q4_1, 40, usize::MAX, 32),
        Some(MatrixError::Overflow { .. })
    ));
    assert!(matches!(
        err(F32, 0, 0, 0),
        Some(MatrixError::RowLength { cols: 0, .. })
    ));
}
