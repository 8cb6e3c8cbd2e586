//! Ward's weight formats held to decoders it did not write: `scripts/reference/quant_oracle.py`
//! decodes random blocks of every weight type with the `gguf` package's numpy dequantizers and
//! with ggml's C (the two agree to the bit), and records ggml's activation quantizer and dot
//! product on them (`fixtures/quants-ggml.json`).
//!
//! The other kernel tests check the SIMD tiers against `dequant.rs` and `activations.rs`, so a
//! block layout those two misread alike would pass them all; here `dequantize_row` must give
//! gguf's floats to the bit, `quantize_activations` ggml's bytes, and `vec_dot` and the tiled
//! matmul on every tier ggml's products up to f32 summation order.

mod common;

use base64::Engine;
use common::tiers;
use serde_json::Value;
use ward_kernels::quant::{
    dequantize_activations, dequantize_row, matmul, quantize_activations, vec_dot, QuantMatrix,
    WeightType,
};

/// One weight type's case: rows of blocks with their decoded values and ggml's products with
/// one activation row.
struct Case {
    ty: WeightType,
    cols: usize,
    /// The activation format ggml's `vec_dot_type` names for this weight type.
    vec_dot_type: String,
    x: Vec<f32>,
    /// ggml's `from_float(x)` in `vec_dot_type`.
    x_quantized: Vec<u8>,
    /// (bytes, gguf's values, ggml's vec_dot) per row.
    rows: Vec<(Vec<u8>, Vec<f32>, f32)>,
}

fn bytes(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("a base64 string"))
        .expect("valid base64")
}

fn floats(v: &Value) -> Vec<f32> {
    bytes(v)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn fixture() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/reference/fixtures/quants-ggml.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let json: Value = serde_json::from_str(&text).expect("the fixture is JSON");
    let types = json["types"].as_object().expect("types");
    types
        .iter()
        .map(|(name, t)| {
            let ty = WeightType::ALL
                .into_iter()
                .find(|ty| format!("{ty:?}") == *name)
                .unwrap_or_else(|| panic!("the fixture has {name}, which Ward does not know"));
            let rows = t["rows"].as_array().expect("rows");
            Case {
                ty,
                cols: t["cols"].as_u64().expect("cols") as usize,
                vec_dot_type: t["vec_dot_type"].as_str().expect("vec_dot_type").into(),
                x: floats(&t["x"]),
                x_quantized: bytes(&t["x_quantized"]),
                rows: rows
                    .iter()
                    .map(|r| {
                        let dot = r["vec_dot"].as_f64().expect("vec_dot") as f32;
                        (bytes(&r["bytes"]), floats(&r["values"]), dot)
                    })
                    .collect(),
            }
        })
        .collect()
}

fn dequantized(ty: WeightType, row: &[u8]) -> Vec<f32> {
    let mut out = vec![0.0; row.len() / ty.block_bytes() * ty.block_len()];
    dequantize_row(ty, row, &mut out);
    out
}

/// The first value of `got` whose bits differ from `want`'s (so −0 ≠ +0), with both.
fn first_difference(got: &[f32], want: &[f32]) -> Option<(usize, f32, f32)> {
    assert_eq!(got.len(), want.len());
    (0..got.len())
        .find(|&i| got[i].to_bits() != want[i].to_bits())
        .map(|i| (i, got[i], want[i]))
}

/// How far a product may be from ggml's. Both are f32 sums of the same terms (exact integer
/// block sums times f32 scales, or for the float types plain products) taken in different
/// orders, so each is a few ulps of the sum of magnitudes Σ|w·x| off the exact value; that sum
/// comes from gguf's values and the f32 activations, not from Ward. 2⁻¹⁹ of it (about 16 ulps)
/// is over 15 times the largest difference seen on any tier here.
///
/// One more term for Q4_1/Q5_1: ggml adds a block's minimum m as m·s, s = d·Σq being the
/// activation block's f16 sum, and so do Ward's SIMD tiers; Ward's scalar
/// tier takes Σ m·(d·q) over the dequantized activations instead, which differs by the f16
/// rounding of s: up to |m|·|s|·2⁻¹¹ a block.
fn tolerance(case: &Case, row: &[u8], values: &[f32]) -> f32 {
    let magnitude: f32 = values.iter().zip(&case.x).map(|(w, x)| (w * x).abs()).sum();
    let mut tol = magnitude / 524_288.0;
    if matches!(case.ty, WeightType::Q4_1 | WeightType::Q5_1) {
        // Bytes 2..4: the weight block's m, the Q8_1 block's s.
        let f16 = |b: &[u8]| half::f16::from_le_bytes([b[2], b[3]]).to_f32().abs();
        let blocks = row.chunks_exact(case.ty.block_bytes());
        let s_rounding: f32 = blocks
            .zip(case.x_quantized.chunks_exact(36))
            .map(|(w, a)| f16(w) * f16(a))
            .sum();
        tol += s_rounding / 2048.0;
    }
    tol
}

#[test]
fn every_weight_type_is_in_the_fixture_with_ggmls_activation_format() {
    let cases = fixture();
    assert_eq!(cases.len(), WeightType::ALL.len(), "one case per type");
    for ty in WeightType::ALL {
        let case = cases.iter().find(|c| c.ty == ty);
        let case = case.unwrap_or_else(|| panic!("{ty:?} has no case in quants-ggml.json"));
        // ggml's vec_dot_type is the format Ward must convert activations to.
        assert_eq!(format!("{:?}", ty.activation_type()), case.vec_dot_type);
        assert!(
            case.rows.len() >= 2 && case.cols > ty.block_len(),
            "{ty:?}: a small case"
        );
    }
}

#[test]
fn dequantize_row_is_gguf_to_the_bit() {
    for case in fixture() {
        for (r, (row, values, _)) in case.rows.iter().enumerate() {
            let got = dequantized(case.ty, row);
            if let Some((i, got, want)) = first_difference(&got, values) {
                panic!(
                    "{:?} row {r} value {i}: Ward {got:e}, gguf {want:e}",
                    case.ty
                );
            }
        }
    }
}

#[test]
fn quantize_activations_is_ggml_to_the_byte() {
    for case in fixture() {
        let act = case.ty.activation_type();
        let mut got = Vec::new();
        quantize_activations(act, &case.x, &mut got);
        assert_eq!(got.len(), case.x_quantized.len(), "{:?}", case.ty);
        if let Some(i) = (0..got.len()).find(|&i| got[i] != case.x_quantized[i]) {
            // Name the block and value, in floats, so a rounding difference reads as one.
            let block = i / act.block_bytes();
            let (mut ours, mut theirs) = (vec![0.0; case.cols], vec![0.0; case.cols]);
            dequantize_activations(act, &got, &mut ours);
            dequantize_activations(act, &case.x_quantized, &mut theirs);
            let diff = first_difference(&ours, &theirs);
            panic!(
                "{:?} ({act:?}) byte {i} (block {block}): Ward {:#04x}, ggml {:#04x}; \
                 first differing value (index, Ward, ggml): {diff:?}",
                case.ty, got[i], case.x_quantized[i]
            );
        }
    }
}

#[test]
fn vec_dot_on_every_tier_is_ggmls() {
    let tiers = tiers();
    for case in fixture() {
        for (r, (row, values, want)) in case.rows.iter().enumerate() {
            let tol = tolerance(&case, row, values);
            for &tier in &tiers {
                // ggml's activation bytes: this test holds the products alone to ggml.
                let got = vec_dot(case.ty, tier, row, &case.x_quantized);
                assert!(
                    (got - want).abs() <= tol,
                    "{:?} row {r} on {tier}: Ward {got}, ggml {want} (tolerance {tol})",
                    case.ty
                );
            }
        }
    }
}

#[test]
fn matmul_on_every_tier_is_ggmls() {
    // The fixture's rows three times over: 9 rows are one 8-row tile and a tail, the tile
    // kernels' own interleaved layouts and activation conversion included.
    let tiers = tiers();
    for case in fixture() {
        let rows: Vec<_> = (0..9).map(|i| &case.rows[i % case.rows.len()]).collect();
        let bytes: Vec<u8> = rows
            .iter()
            .flat_map(|(b, _, _)| b.iter().copied())
            .collect();
        for &tier in &tiers {
            let w = QuantMatrix::on_tier(case.ty, &bytes, rows.len(), case.cols, tier)
                .unwrap_or_else(|e| panic!("{:?} on {tier}: {e}", case.ty));
            let y = matmul(&w, &case.x);
            for (r, (&got, (row, values, want))) in y.iter().zip(&rows).enumerate() {
                let tol = tolerance(&case, row, values);
                assert!(
                    (got - want).abs() <= tol,
                    "{:?} row {r} on {tier} ({:?}): Ward {got}, ggml {want} (tolerance {tol})",
                    case.ty,
                    w.layout()
                );
            }
        }
    }
}

#[test]
fn a_misread_block_does_not_match_the_oracle() {
    // The bit-for-bit comparison can fail: a Q4_K row whose first block has its nibbles
    // swapped, or two of its packed scale bytes exchanged, decodes to other values than gguf's.
    let case = fixture().into_iter().find(|c| c.ty == WeightType::Q4_K);
    let case = case.expect("a Q4_K case");
    let (row, values, _) = &case.rows[0];
    let mut nibbles = row.clone();
    for q in &mut nibbles[16..144] {
        *q = q.rotate_left(4);
    }
    let mut scales = row.clone();
    scales.swap(4, 5);
    for (what, misread) in [("nibbles swapped", nibbles), ("scales swapped", scales)] {
        assert_ne!(&misread, row, "{what}: the random row must change");
        let got = dequantized(WeightType::Q4_K, &misread);
        assert!(
            first_difference(&got, values).is_some(),
            "{what}: not caught"
        );
    }
}
