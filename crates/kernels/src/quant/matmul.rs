//! `y = x · Wᵀ` for a weight matrix in any of the formats: activations converted once per row,
//! outputs computed on the kernel pool over chunks of weight rows (each weight row is read once
//! for all the activation rows, so prefill reads the weights once per call, not once per token).

use std::cell::{Cell, RefCell};

use super::interleave::{self, GROUP};
use super::{
    dequantize_row, quantize_activations, tier, tile_kernel, vec_dot, Tier, TileGemm, WeightType,
};
use crate::activation::Activation;
use crate::norm::RmsNorm;
use crate::pool::{self, Disjoint};

/// A `rows × cols` weight matrix in one of the block formats.
pub struct QuantMatrix {
    ty: WeightType,
    bytes: Vec<u8>,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    /// The tier whose kernels multiply this matrix.
    tier: Tier,
    /// The tier's kernel for `ty`'s tiles, where it has one (the bytes are then interleaved).
    tiles: Option<TileGemm>,
}

/// How the blocks are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// GGUF's: each row's blocks one after another.
    Rows,
    /// Tiles of 8 rows (`interleave.rs`), for the x86 tiers and the dotprod tier.
    Interleaved8,
}

/// Why a matrix cannot be made from the bytes given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatrixError {
    #[error("no {tier} kernels here: {why}")]
    TierUnavailable { tier: Tier, why: String },
    #[error("row length {cols} is not a positive multiple of {ty:?}'s block of {block}")]
    RowLength {
        ty: WeightType,
        cols: usize,
        block: usize,
    },
    #[error("a {rows}×{cols} {ty:?} matrix's size overflows")]
    Overflow {
        ty: WeightType,
        rows: usize,
        cols: usize,
    },
    #[error("{rows}×{cols} {ty:?} needs {expected} bytes, got {got}")]
    ByteCount {
        ty: WeightType,
        rows: usize,
        cols: usize,
        expected: usize,
        got: usize,
    },
    #[error("gate and up projections of {rows} rows are not whole groups of {GROUP} to pair")]
    Unpaired { rows: usize },
}

impl QuantMatrix {
    /// Checks that `bytes` holds exactly `rows` rows of `cols` values (GGUF's layout), and
    /// stores them in the layout this process's tier reads fastest: tiles built straight from
    /// `bytes` (a model file's mapped pages), or a copy.
    pub fn new(
        ty: WeightType,
        bytes: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, MatrixError> {
        Self::on_tier(ty, bytes, rows, cols, tier())
    }

    /// The same for the kernels of `tier` (tests and benches compare tiers in one process);
    /// refused where this CPU lacks the tier.
    pub fn on_tier(
        ty: WeightType,
        bytes: &[u8],
        rows: usize,
        cols: usize,
        tier: Tier,
    ) -> Result<Self, MatrixError> {
        Self::stacked_on_tier(ty, &[(bytes, rows)], cols, tier)
    }

    /// Matrices of `cols` columns one above the other, as one (the Q, K and V projections of
    /// one input): `parts` are each one's bytes (GGUF's layout) and rows.
    pub fn stacked(
        ty: WeightType,
        parts: &[(&[u8], usize)],
        cols: usize,
    ) -> Result<Self, MatrixError> {
        Self::stacked_on_tier(ty, parts, cols, tier())
    }

    fn stacked_on_tier(
        ty: WeightType,
        parts: &[(&[u8], usize)],
        cols: usize,
        tier: Tier,
    ) -> Result<Self, MatrixError> {
        let row_bytes = row_bytes_on(ty, cols, tier)?;
        let mut starts = Vec::with_capacity(parts.len());
        let mut rows = 0usize;
        for &(bytes, part_rows) in parts {
            check_bytes(ty, bytes, part_rows, cols, row_bytes)?;
            starts.push(rows);
            rows = rows
                .checked_add(part_rows)
                .ok_or(MatrixError::Overflow { ty, rows, cols })?;
        }
        let row = |r: usize| {
            let p = starts.partition_point(|&start| start <= r) - 1;
            &parts[p].0[(r - starts[p]) * row_bytes..][..row_bytes]
        };
        Ok(Self::build(ty, rows, cols, row_bytes, tier, row))
    }

    /// The gate and up projections of a gated feed-forward block (`rows` × `cols` each, GGUF's
    /// layout) as one matrix in the order `matmul_gated` reads: 8 gate rows, the same 8 up
    /// rows, and so on.
    pub fn paired(
        ty: WeightType,
        gate: &[u8],
        up: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, MatrixError> {
        Self::paired_on_tier(ty, gate, up, rows, cols, tier())
    }

    /// `paired` for the kernels of `tier`.
    pub fn paired_on_tier(
        ty: WeightType,
        gate: &[u8],
        up: &[u8],
        rows: usize,
        cols: usize,
        tier: Tier,
    ) -> Result<Self, MatrixError> {
        let row_bytes = row_bytes_on(ty, cols, tier)?;
        check_bytes(ty, gate, rows, cols, row_bytes)?;
        check_bytes(ty, up, rows, cols, row_bytes)?;
        if !rows.is_multiple_of(GROUP) {
            return Err(MatrixError::Unpaired { rows });
        }
        // Row r of the pair is row j of group g: group g / 2 of the gate (g even) or the up
        // projection.
        let row = |r: usize| {
            let (g, j) = (r / GROUP, r % GROUP);
            let from = if g % 2 == 0 { gate } else { up };
            &from[(g / 2 * GROUP + j) * row_bytes..][..row_bytes]
        };
        Ok(Self::build(ty, 2 * rows, cols, row_bytes, tier, row))
    }

    /// The matrix whose row r is `row(r)` (GGUF's bytes), in `tier`'s layout.
    fn build<'a>(
        ty: WeightType,
        rows: usize,
        cols: usize,
        row_bytes: usize,
        tier: Tier,
        row: impl Fn(usize) -> &'a [u8] + Sync,
    ) -> Self {
        let tiles = tile_kernel(tier, ty);
        let bytes = match tiles {
            Some(_) => interleave::interleave_rows(ty, rows, cols / ty.block_len(), row),
            None => {
                let mut bytes = Vec::with_capacity(rows * row_bytes);
                for r in 0..rows {
                    bytes.extend_from_slice(row(r));
                }
                bytes
            }
        };
        QuantMatrix {
            ty,
            bytes,
            rows,
            cols,
            row_bytes,
            tier,
            tiles,
        }
    }

    pub fn layout(&self) -> Layout {
        match self.tiles {
            Some(_) => Layout::Interleaved8,
            None => Layout::Rows,
        }
    }

    pub fn tier(&self) -> Tier {
        self.tier
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
        match self.layout() {
            Layout::Rows => dequantize_row(
                self.ty,
                &self.bytes[r * self.row_bytes..][..self.row_bytes],
                out,
            ),
            Layout::Interleaved8 => ROW.with_borrow_mut(|(_, row)| {
                row.resize(self.row_bytes, 0);
                interleave::row_of(self.ty, &self.bytes, self.blocks(), r, row);
                dequantize_row(self.ty, row, out);
            }),
        }
    }

    fn blocks(&self) -> usize {
        self.cols / self.ty.block_len()
    }
}

/// Bytes per row of `cols` values of `ty`, where `tier` can multiply such a matrix here.
fn row_bytes_on(ty: WeightType, cols: usize, tier: Tier) -> Result<usize, MatrixError> {
    tier.supported()
        .map_err(|why| MatrixError::TierUnavailable { tier, why })?;
    ty.row_bytes(cols)
        .filter(|_| cols > 0)
        .ok_or(MatrixError::RowLength {
            ty,
            cols,
            block: ty.block_len(),
        })
}

/// Checks that `bytes` is exactly `rows` rows of `row_bytes`.
fn check_bytes(
    ty: WeightType,
    bytes: &[u8],
    rows: usize,
    cols: usize,
    row_bytes: usize,
) -> Result<(), MatrixError> {
    let expected = rows
        .checked_mul(row_bytes)
        .ok_or(MatrixError::Overflow { ty, rows, cols })?;
    if bytes.len() != expected {
        return Err(MatrixError::ByteCount {
            ty,
            rows,
            cols,
            expected,
            got: bytes.len(),
        });
    }
    Ok(())
}

/// `x` is `[n][cols]` row-major; returns `[n][rows]`.
pub fn matmul(w: &QuantMatrix, x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len() / w.cols * w.rows];
    matmul_normed(w, x, None, &mut y);
    y
}

/// `matmul` into `y` (`[n][rows]`), with each row of `x` first passed through `norm` (a
/// layer's input norm), applied as the rows are converted to the activation format, so the
/// normalised input is never written out.
pub fn matmul_normed(w: &QuantMatrix, x: &[f32], norm: Option<RmsNorm>, y: &mut [f32]) {
    with_activations(w, x, norm, |acts, n| {
        assert_eq!(y.len(), n * w.rows, "matmul: output length");
        if n == 0 {
            return;
        }
        let act_row = acts.len() / n;
        let out = Disjoint::new(y);
        let groups = w.rows.div_ceil(GROUP);
        pool::global().for_each_range(groups, chunk_rows(w) / GROUP, |groups| {
            let mut o = [0.0f32; 4 * GROUP];
            for g in groups {
                let first_row = g * GROUP;
                let valid = GROUP.min(w.rows - first_row);
                if n == 1 && valid == GROUP {
                    // A decode step: the group's outputs are eight consecutive values of `y`.
                    // SAFETY: these rows of the output belong to group g, which only this range
                    // has.
                    group_outputs(w, g, acts, act_row, unsafe {
                        out.slice(first_row..first_row + GROUP)
                    });
                    continue;
                }
                // Up to 4 tokens share each unpacked tile.
                for (t0, a) in (0..n).step_by(4).zip(acts.chunks(4 * act_row)) {
                    let o = &mut o[..(n - t0).min(4) * GROUP];
                    group_outputs(w, g, a, act_row, o);
                    for (t, o) in o.chunks_exact(GROUP).enumerate() {
                        let at = (t0 + t) * w.rows + first_row;
                        // SAFETY: as above.
                        unsafe { out.slice(at..at + valid) }.copy_from_slice(&o[..valid]);
                    }
                }
            }
        });
    })
}

/// The gated feed-forward's first half, `act(x · Gᵀ) ⊙ (x · Uᵀ)`, for a matrix whose rows are
/// the gate's and the up projection's in alternating groups of 8 (`GROUP` gate rows, then the
/// up rows of the same outputs; see `QuantMatrix::paired`). The activation is applied by the thread
/// that computed each group, so the gate and up values are never written out. `x` is
/// `[n][cols]`, normalised by `norm` as in `matmul_normed`; `y` is `[n][rows / 2]`.
pub fn matmul_gated(
    w: &QuantMatrix,
    x: &[f32],
    norm: Option<RmsNorm>,
    act: Activation,
    y: &mut [f32],
) {
    assert!(
        w.rows.is_multiple_of(2 * GROUP),
        "gated matmul: rows must be pairs of {GROUP}-row groups"
    );
    with_activations(w, x, norm, |acts, n| {
        let out_rows = w.rows / 2;
        assert_eq!(y.len(), n * out_rows, "gated matmul: output length");
        if n == 0 {
            return;
        }
        let act_row = acts.len() / n;
        let out = Disjoint::new(y);
        let chunk_pairs = (chunk_rows(w) / (2 * GROUP)).max(1);
        pool::global().for_each_range(out_rows / GROUP, chunk_pairs, |pairs| {
            let (mut gate, mut up) = ([0.0f32; 4 * GROUP], [0.0f32; 4 * GROUP]);
            for p in pairs {
                for (t0, a) in (0..n).step_by(4).zip(acts.chunks(4 * act_row)) {
                    let len = (n - t0).min(4) * GROUP;
                    let (gate, up) = (&mut gate[..len], &mut up[..len]);
                    group_outputs(w, 2 * p, a, act_row, gate);
                    group_outputs(w, 2 * p + 1, a, act_row, up);
                    act.apply(gate, up);
                    for (t, g) in gate.chunks_exact(GROUP).enumerate() {
                        let at = (t0 + t) * out_rows + p * GROUP;
                        // SAFETY: these outputs belong to pair p, which only this range has.
                        unsafe { out.slice(at..at + GROUP) }.copy_from_slice(g);
                    }
                }
            }
        });
    })
}

thread_local! {
    /// The converted activation rows of the matmul this thread is running, kept from one call
    /// to the next so that a decode step allocates nothing.
    static ACTS: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// A pool thread's buffers for converting one row: the normalised row and its conversion.
    static ROW: RefCell<(Vec<f32>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Calls `f` with the activation rows of `x` (normalised by `norm` first) in `w`'s partner
/// format, converted on the pool (a prefill has hundreds), and how many there are.
fn with_activations(
    w: &QuantMatrix,
    x: &[f32],
    norm: Option<RmsNorm>,
    f: impl FnOnce(&[u8], usize),
) {
    assert!(x.len().is_multiple_of(w.cols), "activation length");
    let n = x.len() / w.cols;
    let act_type = w.ty.activation_type();
    let act_row = w.cols / act_type.block_len() * act_type.block_bytes();
    // Taken rather than borrowed: a matmul that somehow ran inside `f` would get a fresh buffer.
    let mut acts = ACTS.take();
    acts.resize(n * act_row, 0);
    let rows_per_chunk = n.div_ceil(4 * pool::global().threads()).max(2);
    pool::global().for_each_chunk(&mut acts, rows_per_chunk * act_row, |offset, chunk| {
        ROW.with_borrow_mut(|(normed, row)| {
            let first = offset / act_row;
            for (i, out) in chunk.chunks_exact_mut(act_row).enumerate() {
                let mut xs = &x[(first + i) * w.cols..][..w.cols];
                if let Some(norm) = &norm {
                    normed.clear();
                    normed.extend_from_slice(xs);
                    norm.apply(normed);
                    xs = normed;
                }
                quantize_activations(act_type, xs, row);
                out.copy_from_slice(row);
            }
        })
    });
    f(&acts, n);
    ACTS.set(acts);
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

/// The outputs of row group `g` (rows `8g..8g + 8`; 0 for rows past the matrix) for each of
/// the up to 4 activation rows in `acts`, into `out` as `[token][8]`.
fn group_outputs(w: &QuantMatrix, g: usize, acts: &[u8], act_row: usize, out: &mut [f32]) {
    match w.tiles {
        Some(gemm) => {
            let group_bytes = w.blocks() * interleave::tile_bytes(w.ty);
            let tiles = &w.bytes[g * group_bytes..][..group_bytes];
            // SAFETY: `tiles` is set only for a tier this CPU has (checked when the matrix was
            // made) and a type it tiles; `tiles` is one group and `acts` whole activation rows
            // of this matrix.
            unsafe { gemm(w.ty, tiles, acts, act_row, w.blocks(), out) }
        }
        None => {
            for (a, o) in acts.chunks_exact(act_row).zip(out.chunks_exact_mut(GROUP)) {
                for (j, o) in o.iter_mut().enumerate() {
                    let r = g * GROUP + j;
                    *o = if r < w.rows {
                        vec_dot(w.ty, w.tier, &w.bytes[r * w.row_bytes..][..w.row_bytes], a)
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}
