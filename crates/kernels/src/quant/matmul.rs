//! `y = x · Wᵀ` for a weight matrix in any of the formats: activations converted once per row,
//! outputs computed on the kernel pool over chunks of weight rows (each weight row is read once
//! for all the activation rows, so prefill reads the weights once per call, not once per token).

use super::interleave::{self, GROUP};
use super::{
    avx2_available, dequantize_row, quantize_activations, tier, vec_dot, Tier, WeightType,
};
use crate::pool;

/// A `rows × cols` weight matrix in one of the block formats.
pub struct QuantMatrix {
    ty: WeightType,
    bytes: Vec<u8>,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    layout: Layout,
}

/// How the blocks are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// GGUF's: each row's blocks one after another.
    Rows,
    /// Tiles of 8 rows (`interleave.rs`), for the SIMD tier.
    Interleaved8,
}

impl QuantMatrix {
    /// Checks that `bytes` holds exactly `rows` rows of `cols` values (GGUF's layout), and
    /// stores them in the layout this machine's tier reads fastest.
    pub fn new(ty: WeightType, bytes: Vec<u8>, rows: usize, cols: usize) -> Result<Self, String> {
        let layout = if tier() == Tier::Avx2 && interleave::supported(ty) {
            Layout::Interleaved8
        } else {
            Layout::Rows
        };
        Self::with_layout(ty, bytes, rows, cols, layout)
    }

    /// The same with the layout chosen by the caller (tests compare them); the interleaved
    /// layout is refused where this machine lacks the SIMD tier or the type has none.
    pub fn with_layout(
        ty: WeightType,
        bytes: Vec<u8>,
        rows: usize,
        cols: usize,
        layout: Layout,
    ) -> Result<Self, String> {
        if layout == Layout::Interleaved8 && !(avx2_available() && interleave::supported(ty)) {
            return Err(format!("no interleaved {ty:?} kernel on this machine"));
        }
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
        let blocks = cols / ty.block_len();
        let bytes = match layout {
            Layout::Rows => bytes,
            Layout::Interleaved8 => interleave::interleave(ty, &bytes, rows, blocks),
        };
        Ok(QuantMatrix {
            ty,
            bytes,
            rows,
            cols,
            row_bytes,
            layout,
        })
    }

    pub fn layout(&self) -> Layout {
        self.layout
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
        assert!(r < self.rows, "row {r} of {}", self.rows);
        match self.layout {
            Layout::Rows => dequantize_row(
                self.ty,
                &self.bytes[r * self.row_bytes..][..self.row_bytes],
                out,
            ),
            Layout::Interleaved8 => {
                let mut row = vec![0u8; self.row_bytes];
                interleave::row_of(self.ty, &self.bytes, self.blocks(), r, &mut row);
                dequantize_row(self.ty, &row, out);
            }
        }
    }

    fn blocks(&self) -> usize {
        self.cols / self.ty.block_len()
    }
}

/// `x` is `[n][cols]` row-major; returns `[n][rows]`.
pub fn matmul(w: &QuantMatrix, x: &[f32]) -> Vec<f32> {
    assert!(x.len().is_multiple_of(w.cols), "activation length");
    let n = x.len() / w.cols;
    let act_type = w.ty.activation_type();
    let act_row = w.cols / act_type.block_len() * act_type.block_bytes();
    // Rows converted on the pool (a prefill has hundreds); each thread reuses one row buffer.
    let mut acts = vec![0u8; n * act_row];
    let rows_per_chunk = n.div_ceil(4 * pool::global().threads());
    pool::global().for_each_chunk(&mut acts, rows_per_chunk * act_row, |offset, chunk| {
        let mut row = Vec::with_capacity(act_row);
        let first = offset / act_row;
        for (i, out) in chunk.chunks_exact_mut(act_row).enumerate() {
            quantize_activations(act_type, &x[(first + i) * w.cols..][..w.cols], &mut row);
            out.copy_from_slice(&row);
        }
    });
    match w.layout {
        Layout::Rows => rows_matmul(w, &acts, n, act_row),
        Layout::Interleaved8 => interleaved_matmul(w, &acts, n, act_row),
    }
}

/// Chunks of weight rows per thread: enough that a thread slowed by a neighbour is balanced by
/// the others, a multiple of the tile height.
fn chunk_rows(rows: usize) -> usize {
    let threads = pool::global().threads();
    rows.div_ceil(threads * 8)
        .next_multiple_of(GROUP)
        .max(2 * GROUP)
}

fn rows_matmul(w: &QuantMatrix, acts: &[u8], n: usize, act_row: usize) -> Vec<f32> {
    let tier = tier();
    // Computed as [rows][n] so each chunk is a contiguous piece, then transposed (a no-op for
    // the single row of a decode step).
    let mut by_weight_row = vec![0.0f32; w.rows * n];
    pool::global().for_each_chunk(&mut by_weight_row, chunk_rows(w.rows) * n, |offset, out| {
        let first = offset / n;
        for (i, outs) in out.chunks_exact_mut(n).enumerate() {
            let wr = &w.bytes[(first + i) * w.row_bytes..][..w.row_bytes];
            for (o, a) in outs.iter_mut().zip(acts.chunks_exact(act_row)) {
                *o = vec_dot(w.ty, tier, wr, a);
            }
        }
    });
    transpose(by_weight_row, w.rows, n)
}

fn interleaved_matmul(w: &QuantMatrix, acts: &[u8], n: usize, act_row: usize) -> Vec<f32> {
    let groups = w.rows.div_ceil(GROUP);
    let group_bytes = w.blocks() * interleave::tile_bytes(w.ty);
    // [group][token][8]: a chunk of groups is one contiguous piece.
    let mut by_group = vec![0.0f32; groups * n * GROUP];
    let chunk_groups = chunk_rows(w.rows) / GROUP;
    pool::global().for_each_chunk(&mut by_group, chunk_groups * n * GROUP, |offset, out| {
        let first = offset / (n * GROUP);
        for (i, outs) in out.chunks_exact_mut(n * GROUP).enumerate() {
            let tiles = &w.bytes[(first + i) * group_bytes..][..group_bytes];
            // Up to 4 tokens share each unpacked tile.
            for (o, a) in outs.chunks_mut(4 * GROUP).zip(acts.chunks(4 * act_row)) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the interleaved layout is chosen only where the CPU has the AVX2 tier;
                // `tiles` is one group and `a` whole activation rows of this matrix.
                unsafe {
                    super::avx2_x8::gemm_x8(w.ty, tiles, a, act_row, w.blocks(), o);
                }
            }
        }
    });
    untile(by_group, w.rows, n)
}

/// `[rows][n]` as `[n][rows]`.
fn transpose(by_row: Vec<f32>, rows: usize, n: usize) -> Vec<f32> {
    if n == 1 {
        return by_row;
    }
    gather(rows, n, |t, r| by_row[r * n + t])
}

/// `[group][n][8]` as `[n][rows]`, dropping the padding rows of the last group.
fn untile(mut by_group: Vec<f32>, rows: usize, n: usize) -> Vec<f32> {
    if n == 1 {
        by_group.truncate(rows);
        return by_group;
    }
    gather(rows, n, |t, r| {
        by_group[((r / GROUP) * n + t) * GROUP + r % GROUP]
    })
}

/// The `[n][rows]` matrix whose element (t, r) is `at(t, r)`, filled on the pool by tokens.
fn gather(rows: usize, n: usize, at: impl Fn(usize, usize) -> f32 + Sync) -> Vec<f32> {
    let mut y = vec![0.0f32; n * rows];
    pool::global().for_each_chunk(&mut y, rows, |offset, out| {
        let t = offset / rows;
        for (r, o) in out.iter_mut().enumerate() {
            *o = at(t, r);
        }
    });
    y
}
