//! `y = x · Wᵀ` for a quantized weight matrix: activations quantized once per row, outputs
//! computed in parallel over chunks of weight rows (each weight row is read once for all the
//! activation rows, so prefill reads the weights once per call, not once per token).

use rayon::prelude::*;

use super::{quantize_q8_0, quantize_q8_1, tier, vec_dot, WeightType, BLOCK};

/// Weight rows handed to one task: enough work to outweigh scheduling, small enough to balance.
const ROWS_PER_TASK: usize = 32;

/// A `rows × cols` weight matrix in one of the block formats, rows stored one after another
/// (GGUF's layout).
pub struct QuantMatrix {
    ty: WeightType,
    bytes: Vec<u8>,
    rows: usize,
    cols: usize,
}

impl QuantMatrix {
    /// Checks that `bytes` holds exactly `rows` rows of `cols` values.
    pub fn new(ty: WeightType, bytes: Vec<u8>, rows: usize, cols: usize) -> Result<Self, String> {
        if cols == 0 || !cols.is_multiple_of(BLOCK) {
            return Err(format!(
                "row length {cols} is not a positive multiple of {BLOCK}"
            ));
        }
        let expected = rows
            .checked_mul(cols / BLOCK * ty.block_bytes())
            .ok_or("matrix size overflows")?;
        if bytes.len() != expected {
            return Err(format!(
                "{rows}×{cols} {ty:?} needs {expected} bytes, got {}",
                bytes.len()
            ));
        }
        Ok(QuantMatrix {
            ty,
            bytes,
            rows,
            cols,
        })
    }

    pub fn weight_type(&self) -> WeightType {
        self.ty
    }

    fn row_bytes(&self) -> usize {
        self.cols / BLOCK * self.ty.block_bytes()
    }
}

/// `x` is `[n][cols]` row-major; returns `[n][rows]`.
pub fn matmul(w: &QuantMatrix, x: &[f32]) -> Vec<f32> {
    assert!(x.len().is_multiple_of(w.cols), "activation length");
    let n = x.len() / w.cols;
    let act_row = w.cols / BLOCK * w.ty.activation_block_bytes();
    let mut acts = Vec::with_capacity(n * act_row);
    let mut row = Vec::with_capacity(act_row);
    for xs in x.chunks_exact(w.cols) {
        match w.ty {
            WeightType::Q4_1 => quantize_q8_1(xs, &mut row),
            WeightType::Q8_0 => quantize_q8_0(xs, &mut row),
        }
        acts.extend_from_slice(&row);
    }
    let tier = tier();
    let row_bytes = w.row_bytes();
    // Computed as [rows][n] so each task owns a contiguous piece, then transposed (a no-op for
    // the single row of a decode step).
    let mut by_weight_row = vec![0.0f32; w.rows * n];
    by_weight_row
        .par_chunks_mut(ROWS_PER_TASK * n)
        .enumerate()
        .for_each(|(task, out)| {
            let first = task * ROWS_PER_TASK;
            for (i, outs) in out.chunks_exact_mut(n).enumerate() {
                let wr = &w.bytes[(first + i) * row_bytes..][..row_bytes];
                for (o, a) in outs.iter_mut().zip(acts.chunks_exact(act_row)) {
                    *o = vec_dot(w.ty, tier, wr, a);
                }
            }
        });
    if n == 1 {
        return by_weight_row;
    }
    let mut y = vec![0.0f32; n * w.rows];
    for (r, outs) in by_weight_row.chunks_exact(n).enumerate() {
        for (t, &v) in outs.iter().enumerate() {
            y[t * w.rows + r] = v;
        }
    }
    y
}
