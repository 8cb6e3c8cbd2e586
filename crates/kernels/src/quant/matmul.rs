//! `y = x · Wᵀ` for a weight matrix in any of the formats: activations converted once per row,
//! outputs computed on the kernel pool over chunks of weight rows (each weight row is read once
//! for all the activation rows, so prefill reads the weights once per call, not once per token).

use super::{dequantize_row, quantize_activations, tier, vec_dot, WeightType};
use crate::pool;

/// A `rows × cols` weight matrix in one of the block formats, rows stored one after another
/// (GGUF's layout).
pub struct QuantMatrix {
    ty: WeightType,
    bytes: Vec<u8>,
    rows: usize,
    cols: usize,
    row_bytes: usize,
}

impl QuantMatrix {
    /// Checks that `bytes` holds exactly `rows` rows of `cols` values.
    pub fn new(ty: WeightType, bytes: Vec<u8>, rows: usize, cols: usize) -> Result<Self, String> {
        let row_bytes = ty.row_bytes(cols).filter(|_| cols > 0).ok_or_else(|| {
            format!(
                "row length {cols} is not a positive multiple of {ty:?}'s block of {}",
                ty.block_len()
            )
        })?;
        let expected = rows.checked_mul(row_bytes).ok_or("matrix size overflows")?;
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
            row_bytes,
        })
    }

    pub fn weight_type(&self) -> WeightType {
        self.ty
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `r` as floats (embedding lookups). Panics if `r` is out of range.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        dequantize_row(
            self.ty,
            &self.bytes[r * self.row_bytes..][..self.row_bytes],
            out,
        );
    }
}

/// `x` is `[n][cols]` row-major; returns `[n][rows]`.
pub fn matmul(w: &QuantMatrix, x: &[f32]) -> Vec<f32> {
    assert!(x.len().is_multiple_of(w.cols), "activation length");
    let n = x.len() / w.cols;
    let act_type = w.ty.activation_type();
    let act_row = w.cols / act_type.block_len() * act_type.block_bytes();
    let mut acts = Vec::with_capacity(n * act_row);
    let mut row = Vec::with_capacity(act_row);
    for xs in x.chunks_exact(w.cols) {
        quantize_activations(act_type, xs, &mut row);
        acts.extend_from_slice(&row);
    }
    let tier = tier();
    let pool = pool::global();
    // Enough chunks per thread that a thread slowed by a neighbour is balanced by the others.
    let chunk_rows = w.rows.div_ceil(pool.threads() * 8).max(16);
    // Computed as [rows][n] so each chunk is a contiguous piece, then transposed (a no-op for
    // the single row of a decode step).
    let mut by_weight_row = vec![0.0f32; w.rows * n];
    pool.for_each_chunk(&mut by_weight_row, chunk_rows * n, |offset, out| {
        let first = offset / n;
        for (i, outs) in out.chunks_exact_mut(n).enumerate() {
            let wr = &w.bytes[(first + i) * w.row_bytes..][..w.row_bytes];
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
