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
//!
//! The tile writers move whole fields, and four-byte words (one row's slot of a vector) built
//! with word-wide shifts and masks; `interleave/reference.rs` keeps the value-by-value writers
//! they replaced, and a test holds them to the same bytes.

use super::{interleave_k, WeightType};
use crate::pool;

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
        | WeightType::Q8_0 => put_block32(ty, block, j, tile),
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

/// `interleave_rows` of a matrix whose rows lie one after another in `bytes`.
#[cfg(test)]
pub fn interleave(ty: WeightType, bytes: &[u8], rows: usize, blocks: usize) -> Vec<u8> {
    let row_bytes = blocks * ty.block_bytes();
    interleave_rows(ty, rows, blocks, |r| &bytes[r * row_bytes..][..row_bytes])
}

/// Interleave the rows `row(0)`, …, `row(rows - 1)` (GGUF's bytes, `blocks` blocks each) into
/// tiles: group g's tiles come one after another, block by block; rows past `rows` are zero.
/// The rows are read where they lie (a model file's mapped pages; a gate and an up projection
/// whose groups alternate), not gathered into a copy first, and the groups are built on the
/// kernel pool: loading a model is mostly this.
pub fn interleave_rows<'a>(
    ty: WeightType,
    rows: usize,
    blocks: usize,
    row: impl Fn(usize) -> &'a [u8] + Sync,
) -> Vec<u8> {
    let group_bytes = blocks * tile_bytes(ty);
    // Zeroed by mapping fresh pages (the tile writers OR bits into them), so the advice comes
    // before any is touched; the pool's threads then fault them in in parallel.
    let mut out = vec![0u8; rows.div_ceil(GROUP) * group_bytes];
    crate::huge_pages::advise(&mut out);
    if out.is_empty() {
        return out;
    }
    // Chunks of about 1 MiB: big enough that handing one out costs nothing beside it, small
    // enough that the threads finish together.
    let chunk = (1 << 20) / group_bytes * group_bytes;
    pool::global().for_each_chunk(&mut out, chunk.max(group_bytes), |offset, groups| {
        for (i, group) in groups.chunks_exact_mut(group_bytes).enumerate() {
            let first = (offset / group_bytes + i) * GROUP;
            for j in 0..GROUP.min(rows - first) {
                put_row_blocks(ty, row(first + j), j, group);
            }
        }
    });
    out
}

/// One row's blocks (GGUF's bytes) into row `j` of each of its group's tiles.
fn put_row_blocks(ty: WeightType, row: &[u8], j: usize, group: &mut [u8]) {
    let tiles = group.chunks_exact_mut(tile_bytes(ty));
    for (block, tile) in row.chunks_exact(ty.block_bytes()).zip(tiles) {
        put_block(ty, block, j, tile);
    }
}

/// A 32-value block into row `j` of `tile`: whole fields and four-byte words at a time.
fn put_block32(ty: WeightType, block: &[u8], j: usize, tile: &mut [u8]) {
    let l = tile_layout(ty);
    tile[2 * j..2 * j + 2].copy_from_slice(&block[..2]);
    if l.high_bits > l.min {
        tile[l.min + 2 * j..][..2].copy_from_slice(&block[2..4]);
    }
    let Some((nibbles_at, high_bits_at)) = packed_at(ty) else {
        // Q8_0: vector k holds values 4k..4k + 4.
        for k in 0..8 {
            tile[l.values + 32 * k + 4 * j..][..4].copy_from_slice(&block[2 + 4 * k..][..4]);
        }
        return;
    };
    // Vector k holds values 8k + p and 8k + 4 + p; values 0..16 are the low nibbles of the 16
    // bytes, 16..32 their high nibbles.
    for k in 0..4 {
        let at = nibbles_at + 8 * (k % 2);
        let w = nibble_pairs(word(block, at), word(block, at + 4), k >= 2);
        put_word(tile, l.values + 32 * k + 4 * j, w);
    }
    if let Some(h) = high_bits_at {
        put_word(tile, l.high_bits + 4 * j, fifth_bits(word(block, h)));
    }
}

/// The fifth bits of a 32-value block (bit i of `qh` is value i's) as a tile's four bytes: bit
/// 2k of byte p is value 8k + p's, bit 2k + 1 value 8k + 4 + p's.
fn fifth_bits(qh: u32) -> u32 {
    let mut out = 0;
    for k in 0..4 {
        for p in 0..4 {
            let (lo, hi) = ((qh >> (8 * k + p)) & 1, (qh >> (8 * k + 4 + p)) & 1);
            out |= (lo << (2 * k) | hi << (2 * k + 1)) << (8 * p);
        }
    }
    out
}

/// The four bytes at `at`, little-endian: one byte per row `p` of a tile vector's slot.
pub(super) fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

pub(super) fn put_word(bytes: &mut [u8], at: usize, w: u32) {
    bytes[at..at + 4].copy_from_slice(&w.to_le_bytes());
}

/// ORs `w` into the four bytes at `at` (fields that several vectors' bits share).
pub(super) fn or_word(bytes: &mut [u8], at: usize, w: u32) {
    put_word(bytes, at, word(bytes, at) | w);
}

/// Four bytes of a tile's value vector from two words of packed nibbles: byte p gets byte p of
/// `lo` in its low nibble and byte p of `hi` in its high one, taking the low nibbles of `lo`
/// and `hi`, or (`high`) their high nibbles.
pub(super) fn nibble_pairs(lo: u32, hi: u32, high: bool) -> u32 {
    const LOW: u32 = 0x0f0f_0f0f;
    if high {
        ((lo >> 4) & LOW) | (hi & !LOW)
    } else {
        (lo & LOW) | ((hi & LOW) << 4)
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
mod reference;

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
