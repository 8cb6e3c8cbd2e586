//! `y = x · Wᵀ` for a weight matrix in any of the formats: activations converted once per row,
//! outputs computed on the kernel pool over chunks of weight rows (each weight row is read once
//! for all the activation rows, so prefill reads the weights once per call, not once per token).

use super::interleave::{self, GROUP};
use super::{
    avx2_available, dequantize_row, quantize_activations, tier, vec_dot, Tier, WeightType,
};
use crate::pool::{self, Disjoint};

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
    let rows_per_chunk = n.div_ceil(4 * pool::global().threads()).max(2);
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

/// Weight rows per chunk: about 32 chunks per thread, so that a thread slowed by a neighbour is
/// balanced by the others and the last chunk leaves little waiting (the output projection of a
/// large vocabulary is hundreds of megabytes), but at least 32 KiB of weights, so that handing
/// out a chunk (an atomic shared by the cores) stays cheap beside reading it; a multiple of the
/// tile height.
fn chunk_rows(w: &QuantMatrix) -> usize {
    let threads = pool::global().threads();
    w.rows
        .div_ceil(threads * 32)
        .max((32 << 10) / w.row_bytes)
        .next_multiple_of(GROUP)
}

fn rows_matmul(w: &QuantMatrix, acts: &[u8], n: usize, act_row: usize) -> Vec<f32> {
    let tier = tier();
    let mut y = vec![0.0f32; n * w.rows];
    let out = Disjoint::new(&mut y);
    pool::global().for_each_range(w.rows, chunk_rows(w), |rows| {
        for r in rows {
            let wr = &w.bytes[r * w.row_bytes..][..w.row_bytes];
            for (t, a) in acts.chunks_exact(act_row).enumerate() {
                // SAFETY: element (t, r) belongs to weight row r, which only this range has.
                unsafe {
                    out.slice(t * w.rows + r..t * w.rows + r + 1)[0] = vec_dot(w.ty, tier, wr, a)
                };
            }
        }
    });
    y
}

fn interleaved_matmul(w: &QuantMatrix, acts: &[u8], n: usize, act_row: usize) -> Vec<f32> {
    let group_bytes = w.blocks() * interleave::tile_bytes(w.ty);
    let mut y = vec![0.0f32; n * w.rows];
    let out = Disjoint::new(&mut y);
    let chunk_groups = chunk_rows(w) / GROUP;
    pool::global().for_each_range(w.rows.div_ceil(GROUP), chunk_groups, |groups| {
        let mut tile_out = [0.0f32; 4 * GROUP];
        for g in groups {
            let tiles = &w.bytes[g * group_bytes..][..group_bytes];
            let first_row = g * GROUP;
            let valid = GROUP.min(w.rows - first_row);
            if n == 1 && valid == GROUP {
                // A decode step: the group's outputs are eight consecutive values of `y`.
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as below; these rows of the output belong to group g, which only this
                // range has.
                unsafe {
                    let o = out.slice(first_row..first_row + GROUP);
                    super::avx2_x8::gemm_x8(w.ty, tiles, acts, act_row, w.blocks(), o);
                }
                continue;
            }
            // Up to 4 tokens share each unpacked tile.
            for (t0, a) in (0..n).step_by(4).zip(acts.chunks(4 * act_row)) {
                let o = &mut tile_out[..(n - t0).min(4) * GROUP];
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the interleaved layout is chosen only where the CPU has the AVX2 tier;
                // `tiles` is one group and `a` whole activation rows of this matrix.
                unsafe {
                    super::avx2_x8::gemm_x8(w.ty, tiles, a, act_row, w.blocks(), o);
                }
                for (t, o) in o.chunks_exact(GROUP).enumerate() {
                    let at = (t0 + t) * w.rows + first_row;
                    // SAFETY: these rows of the output belong to group g, which only this range has.
                    unsafe { out.slice(at..at + valid) }.copy_from_slice(&o[..valid]);
                }
            }
        }
    });
    y
}
