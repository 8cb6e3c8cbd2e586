//! The row-interleaved layout the x86 tiers and the dotprod tier read: the same block of 8
//! consecutive rows stored together as one tile, so a matrix × vector product loads each
//! activation block once for 8 rows, converts 8 scales at once, and ends with the 8 row sums in
//! the 8 lanes of one 256-bit register (two 128-bit ones on aarch64: rows 0–3 in the low 16
//! bytes of a value vector, rows 4–7 in the high), with no horizontal sums. Four bytes of a row
//! meet four activation bytes in one instruction: x86's `vpdpbusd` (or `maddubs` + `madd`),
//! Arm's `sdot`.
//!
//! A tile of the 32-value formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) has exactly the bytes of its 8
//! blocks, rearranged:
//!
//! - `d`: 8 × f16 (row j at 2j), then for Q4_1/Q5_1 `m`: 8 × f16;
//! - for Q5_0/Q5_1, one 32-byte vector of fifth bits: bit 2k of byte 4j + p is the fifth bit of
//!   the low nibble of value vector k at that byte, bit 2k + 1 that of its high nibble (so one
//!   load, an `and` and a compare give each unpacked register its fifth bits);
//! - the values as 32-byte vectors whose byte 4j + p belongs to row j: for the 4-bit formats,
//!   vector k holds values 8k + p in its low nibbles and 8k + 4 + p in its high ones (4 vectors);
//!   for Q8_0, vector k holds value 4k + p (8 vectors).
//!
//! The K-quants' tiles are described in `interleave_k.rs`. Matrices are padded with zero rows
//! to a multiple of 8 (their outputs are dropped).

use super::{interleave_k, WeightType};

/// Rows per tile, and per group of the gate/up rows that `matmul_gated` pairs.
pub const GROUP: usize = 8;

/// Whether `ty` has an interleaved layout.
pub fn supported(ty: WeightType) -> bool {
    use WeightType::*;
    match ty {
        Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => true,
        F32 | F16 | BF16 => false,
    }
}

/// The panic of a tile function asked about a type without tiles (callers check `supported`).
fn untiled(ty: WeightType) -> ! {
    unreachable!("{ty:?} has no interleaved layout")
}

/// Bytes of one tile (8 rows of one block): the blocks' own bytes, plus 32 for Q3_K, Q4_K and
/// Q5_K, whose 6-bit scales are unpacked to bytes.
pub fn tile_bytes(ty: WeightType) -> usize {
    match ty {
        WeightType::Q2_K => interleave_k::Q2_K_TILE,
        WeightType::Q3_K => interleave_k::Q3_K_TILE,
        WeightType::Q4_K => interleave_k::Q4_K_TILE,
        WeightType::Q5_K => interleave_k::Q5_K_TILE,
        WeightType::Q6_K => interleave_k::Q6_K_TILE,
        WeightType::Q4_0
        | WeightType::Q4_1
        | WeightType::Q5_0
        | WeightType::Q5_1
        | WeightType::Q8_0 => GROUP * ty.block_bytes(),
        WeightType::F32 | WeightType::F16 | WeightType::BF16 => untiled(ty),
    }
}

/// Block `block` (GGUF's bytes) into row `j` of `tile`, which starts zeroed.
fn put_block(ty: WeightType, block: &[u8], j: usize, tile: &mut [u8]) {
    match ty {
        WeightType::Q2_K => interleave_k::put_q2_k(block, j, tile),
        WeightType::Q3_K => interleave_k::put_q3_k(block, j, tile),
        WeightType::Q4_K => interleave_k::put_q4_k(block, j, tile),
        WeightType::Q5_K => interleave_k::put_q5_k(block, j, tile),
        WeightType::Q6_K => interleave_k::put_q6_k(block, j, tile),
        WeightType::Q4_0
        | WeightType::Q4_1
        | WeightType::Q5_0
        | WeightType::Q5_1
        | WeightType::Q8_0 => put_row(ty, tile_layout(ty), &split(ty, block), j, tile),
        WeightType::F32 | WeightType::F16 | WeightType::BF16 => untiled(ty),
    }
}

/// Row `j` of `tile` back into GGUF's bytes.
fn get_block(ty: WeightType, tile: &[u8], j: usize, block: &mut [u8]) {
    match ty {
        WeightType::Q2_K => interleave_k::get_q2_k(tile, j, block),
        WeightType::Q3_K => interleave_k::get_q3_k(tile, j, block),
        WeightType::Q4_K => interleave_k::get_q4_k(tile, j, block),
        WeightType::Q5_K => interleave_k::get_q5_k(tile, j, block),
        WeightType::Q6_K => interleave_k::get_q6_k(tile, j, block),
        WeightType::Q4_0
        | WeightType::Q4_1
        | WeightType::Q5_0
        | WeightType::Q5_1
        | WeightType::Q8_0 => join(ty, &get_row(ty, tile_layout(ty), tile, j), block),
        WeightType::F32 | WeightType::F16 | WeightType::BF16 => untiled(ty),
    }
}

/// Where the parts of a tile start.
#[derive(Clone, Copy)]
pub struct TileLayout {
    pub min: usize,
    pub high_bits: usize,
    pub values: usize,
}

pub fn tile_layout(ty: WeightType) -> TileLayout {
    let has_min = matches!(ty, WeightType::Q4_1 | WeightType::Q5_1);
    let five_bit = matches!(ty, WeightType::Q5_0 | WeightType::Q5_1);
    let min = 16;
    let high_bits = min + if has_min { 16 } else { 0 };
    let values = high_bits + if five_bit { 32 } else { 0 };
    TileLayout {
        min,
        high_bits,
        values,
    }
}

/// One 32-value block taken apart: scale, minimum (zero bytes where the type has none) and
/// each value's bits (0..16, 0..32, or the raw byte for Q8_0).
struct Parts {
    d: [u8; 2],
    m: [u8; 2],
    q: [u8; 32],
}

/// Where a 4- or 5-bit block keeps its nibbles and its fifth bits; None for Q8_0's plain bytes.
fn packed_at(ty: WeightType) -> Option<(usize, Option<usize>)> {
    match ty {
        WeightType::Q4_0 => Some((2, None)),
        WeightType::Q4_1 => Some((4, None)),
        WeightType::Q5_0 => Some((6, Some(2))),
        WeightType::Q5_1 => Some((8, Some(4))),
        WeightType::Q8_0 => None,
        WeightType::Q2_K
        | WeightType::Q3_K
        | WeightType::Q4_K
        | WeightType::Q5_K
        | WeightType::Q6_K
        | WeightType::F32
        | WeightType::F16
        | WeightType::BF16 => unreachable!("{ty:?} is not a 32-value format"),
    }
}

fn split(ty: WeightType, b: &[u8]) -> Parts {
    let mut p = Parts {
        d: [b[0], b[1]],
        m: [0; 2],
        q: [0; 32],
    };
    let Some((nibbles_at, high_bits_at)) = packed_at(ty) else {
        p.q.copy_from_slice(&b[2..34]);
        return p;
    };
    if matches!(ty, WeightType::Q4_1 | WeightType::Q5_1) {
        p.m = [b[2], b[3]];
    }
    for i in 0..16 {
        p.q[i] = b[nibbles_at + i] & 0x0f;
        p.q[i + 16] = b[nibbles_at + i] >> 4;
    }
    if let Some(h) = high_bits_at {
        for i in 0..32 {
            p.q[i] |= ((b[h + i / 8] >> (i % 8)) & 1) << 4;
        }
    }
    p
}

fn join(ty: WeightType, p: &Parts, b: &mut [u8]) {
    b[..2].copy_from_slice(&p.d);
    let Some((nibbles_at, high_bits_at)) = packed_at(ty) else {
        b[2..34].copy_from_slice(&p.q);
        return;
    };
    if matches!(ty, WeightType::Q4_1 | WeightType::Q5_1) {
        b[2..4].copy_from_slice(&p.m);
    }
    for i in 0..16 {
        b[nibbles_at + i] = (p.q[i] & 0x0f) | ((p.q[i + 16] & 0x0f) << 4);
    }
    if let Some(h) = high_bits_at {
        b[h..h + 4].fill(0);
        for i in 0..32 {
            b[h + i / 8] |= ((p.q[i] >> 4) & 1) << (i % 8);
        }
    }
}

/// Interleave `rows` rows of `blocks` blocks (GGUF's layout) into tiles: group g's tiles come
/// one after another, block by block. Rows past `rows` are zero.
pub fn interleave(ty: WeightType, bytes: &[u8], rows: usize, blocks: usize) -> Vec<u8> {
    let bb = ty.block_bytes();
    let groups = rows.div_ceil(GROUP);
    // Zeroed by mapping fresh pages, so the advice comes before any is touched.
    let mut out = vec![0u8; groups * blocks * tile_bytes(ty)];
    crate::huge_pages::advise(&mut out);
    for (t, tile) in out.chunks_exact_mut(tile_bytes(ty)).enumerate() {
        let (g, b) = (t / blocks, t % blocks);
        for j in 0..GROUP {
            let r = g * GROUP + j;
            if r >= rows {
                break;
            }
            put_block(ty, &bytes[(r * blocks + b) * bb..][..bb], j, tile);
        }
    }
    out
}

fn put_row(ty: WeightType, l: TileLayout, p: &Parts, j: usize, tile: &mut [u8]) {
    tile[2 * j..2 * j + 2].copy_from_slice(&p.d);
    if l.high_bits > l.min {
        tile[l.min + 2 * j..l.min + 2 * j + 2].copy_from_slice(&p.m);
    }
    if ty == WeightType::Q8_0 {
        for k in 0..8 {
            for q in 0..4 {
                tile[l.values + 32 * k + 4 * j + q] = p.q[4 * k + q];
            }
        }
        return;
    }
    for k in 0..4 {
        for q in 0..4 {
            let (lo, hi) = (p.q[8 * k + q], p.q[8 * k + 4 + q]);
            tile[l.values + 32 * k + 4 * j + q] = (lo & 0x0f) | ((hi & 0x0f) << 4);
            if l.values > l.high_bits {
                tile[l.high_bits + 4 * j + q] |=
                    ((lo >> 4) << (2 * k)) | ((hi >> 4) << (2 * k + 1));
            }
        }
    }
}

fn get_row(ty: WeightType, l: TileLayout, tile: &[u8], j: usize) -> Parts {
    let mut p = Parts {
        d: [tile[2 * j], tile[2 * j + 1]],
        m: [0; 2],
        q: [0; 32],
    };
    if l.high_bits > l.min {
        p.m = [tile[l.min + 2 * j], tile[l.min + 2 * j + 1]];
    }
    if ty == WeightType::Q8_0 {
        for k in 0..8 {
            for q in 0..4 {
                p.q[4 * k + q] = tile[l.values + 32 * k + 4 * j + q];
            }
        }
        return p;
    }
    for k in 0..4 {
        for q in 0..4 {
            let byte = tile[l.values + 32 * k + 4 * j + q];
            let (mut lo, mut hi) = (byte & 0x0f, byte >> 4);
            if l.values > l.high_bits {
                let bits = tile[l.high_bits + 4 * j + q];
                lo |= ((bits >> (2 * k)) & 1) << 4;
                hi |= ((bits >> (2 * k + 1)) & 1) << 4;
            }
            p.q[8 * k + q] = lo;
            p.q[8 * k + 4 + q] = hi;
        }
    }
    p
}

/// Row `r` of an interleaved matrix back in GGUF's layout, into `out` (one row of bytes).
pub fn row_of(ty: WeightType, tiles: &[u8], blocks: usize, r: usize, out: &mut [u8]) {
    let tb = tile_bytes(ty);
    let (g, j) = (r / GROUP, r % GROUP);
    for (b, block) in out.chunks_exact_mut(ty.block_bytes()).enumerate() {
        get_block(ty, &tiles[(g * blocks + b) * tb..][..tb], j, block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_round_trips_every_row() {
        let mut seed = 12345u64;
        let mut byte = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 56) as u8
        };
        for ty in WeightType::ALL.into_iter().filter(|&t| supported(t)) {
            let (rows, blocks) = (13, 3);
            let bytes: Vec<u8> = (0..rows * blocks * ty.block_bytes())
                .map(|_| byte())
                .collect();
            let tiles = interleave(ty, &bytes, rows, blocks);
            assert_eq!(tiles.len(), 2 * blocks * tile_bytes(ty));
            let row_bytes = blocks * ty.block_bytes();
            let mut row = vec![0u8; row_bytes];
            for r in 0..rows {
                row_of(ty, &tiles, blocks, r, &mut row);
                assert_eq!(row, bytes[r * row_bytes..][..row_bytes], "{ty:?} row {r}");
            }
            row_of(ty, &tiles, blocks, 15, &mut row);
            assert!(row.iter().all(|&b| b == 0), "padding rows are zero");
        }
    }
}
