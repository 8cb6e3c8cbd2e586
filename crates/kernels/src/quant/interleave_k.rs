//! 8-row tiles of the K-quants: one super-block (256 values) of each of 8 rows. Scales are unpacked to one byte per (sub-block, row), so a sub-block's 8
//! scales load as one 8-byte vector; the values use the 32-value formats' arrangement (byte
//! 4j + p of a vector belongs to row j; low nibbles one group of 4 values, high nibbles the
//! next).
//!
//! Q4_K tile (1184 bytes): d 8×f16 @0, dmin 8×f16 @16, scales [8 sub][8 rows] u8 @32,
//! mins [8][8] u8 @96, 32 value vectors @160 (vector 4s + k: values 32s + 8k + p low,
//! 32s + 8k + 4 + p high).
//!
//! Q5_K tile (1440 bytes): Q4_K's first 160 bytes, then for each sub-block s 160 bytes
//! @160 + 160s: its 4 value vectors as in Q4_K, and its vector of fifth bits (bit 2k of byte
//! 4j + p is the fifth bit of the low nibble of value vector 4s + k at that byte, bit 2k + 1
//! that of its high nibble).
//!
//! Q3_K's, Q5_K's and Q6_K's tiles keep all of a sub-block's bits together, so that a decode
//! step reads a tile front to back as one stream. With their high bits in a second stream after
//! the low ones (the first layout), the hardware prefetchers fell behind: on 2 Zen 4 cores a
//! 431 MB Q6_K matrix streamed from memory at 12–14 GiB/s and 164 MB of Q5_K at 15–19, against
//! Q4_K's 33–37; now Q6_K at 31–40 and Q5_K at 43–45 (`cargo bench -p ward-kernels --
//! from-memory`). Q3_K's arithmetic, not its layout, holds it at 22–23.
//!
//! Q2_K tile (672 bytes, the blocks' own size): d 8×f16 @0, dmin 8×f16 @16, scales [16 sub][8
//! rows] u8 @32 (GGUF's bytes: scale in the low nibble, min in the high), 16 vectors of 2-bit
//! values @160 (vector s for sub-block s: bits 2r..2r + 2 of byte 4j + p are value 16s + 4r + p
//! of row j, so register r unpacks with one shift and mask).
//!
//! Q3_K tile (912 bytes): d 8×f16 @0, scales [16 sub][8 rows] u8 @16 (unpacked, still plus 32 as
//! in the file, so that a zero tile is a zero block), then for each pair of sub-blocks 2t,
//! 2t + 1 96 bytes @144 + 96t: their two vectors of low two bits as in Q2_K, and their vector of
//! high bits (bit 4u + r of byte 4j + p is the high bit of value 16(2t + u) + 4r + p).
//!
//! Q6_K tile (1680 bytes): d 8×f16 @0, scales [16 sub][8 rows] i8 @16, then for each sub-block s
//! 96 bytes @144 + 96s: its two vectors of low nibbles (vector v = 2s, 2s + 1: group 2v low,
//! group 2v + 1 high, a group being 4 values) and its vector of high bit pairs (bits 0–1 the low
//! register of 2s, 2–3 its high register, 4–5 and 6–7 those of 2s + 1).

use super::dequant::{q3_k_scales, scale_min_k4};
use super::interleave::{nibble_pairs, or_word, put_word, word};

/// Bit 0 of each byte of a word, and bits 0–1: masks of 1- and 2-bit fields, four rows at once.
const BIT0: u32 = 0x0101_0101;
const BITS01: u32 = 0x0303_0303;

pub const Q4_K_TILE: usize = 1184;
pub const Q5_K_TILE: usize = 1440;
pub const Q6_K_TILE: usize = 1680;
pub const Q2_K_TILE: usize = 672;
pub const Q3_K_TILE: usize = 912;

pub mod q4_k {
    pub const DMIN: usize = 16;
    pub const SCALES: usize = 32;
    pub const MINS: usize = 96;
    /// Sub-block s's four value vectors in a Q4_K tile (`five` false) or a Q5_K one.
    pub const fn values(five: bool, s: usize) -> usize {
        160 + if five { 160 } else { 128 } * s
    }
}

/// Q5_K's tile has Q4_K's header; each sub-block's value vectors are followed by its vector
/// of fifth bits.
pub mod q5_k {
    /// Sub-block s's vector of fifth bits.
    pub const fn high(s: usize) -> usize {
        super::q4_k::values(true, s) + 128
    }
}

pub mod q2_k {
    pub const DMIN: usize = 16;
    pub const SCALES: usize = 32;
    pub const VALUES: usize = 160;
}

pub mod q3_k {
    pub const SCALES: usize = 16;
    /// Sub-block s's vector of low bits.
    pub const fn low(s: usize) -> usize {
        144 + 96 * (s / 2) + 32 * (s % 2)
    }
    /// The vector of high bits of sub-blocks 2t and 2t + 1.
    pub const fn high(t: usize) -> usize {
        144 + 96 * t + 64
    }
}

pub mod q6_k {
    pub const SCALES: usize = 16;
    /// Sub-block s's two vectors of low nibbles.
    pub const fn low(s: usize) -> usize {
        144 + 96 * s
    }
    /// Sub-block s's vector of high bit pairs.
    pub const fn high(s: usize) -> usize {
        low(s) + 64
    }
}

pub fn put_q4_k(b: &[u8], j: usize, tile: &mut [u8]) {
    put_q45_k(b, false, j, tile);
}

pub fn put_q5_k(b: &[u8], j: usize, tile: &mut [u8]) {
    put_q45_k(b, true, j, tile);
}

fn put_q45_k(b: &[u8], five_bit: bool, j: usize, tile: &mut [u8]) {
    tile[2 * j..2 * j + 2].copy_from_slice(&b[0..2]);
    tile[q4_k::DMIN + 2 * j..][..2].copy_from_slice(&b[2..4]);
    let nibbles = if five_bit { 48 } else { 16 };
    for s in 0..8 {
        let (sc, m) = scale_min_k4(s, &b[4..16]);
        tile[q4_k::SCALES + 8 * s + j] = sc;
        tile[q4_k::MINS + 8 * s + j] = m;
        // Sub-block s is the low (s even) or high (s odd) nibbles of 32 bytes, values in order.
        let at = nibbles + 32 * (s / 2);
        for k in 0..4 {
            let w = nibble_pairs(word(b, at + 8 * k), word(b, at + 8 * k + 4), s % 2 == 1);
            put_word(tile, q4_k::values(five_bit, s) + 32 * k + 4 * j, w);
        }
        if five_bit {
            put_word(tile, q5_k::high(s) + 4 * j, q5_k_fifth_bits(b, s));
        }
    }
}

/// Sub-block s's fifth bits (bit s of the 32 bytes at 16, value i's in byte i % 32) as its
/// tile vector's four bytes: bit 2k of byte p is value 32s + 8k + p's, bit 2k + 1 value
/// 32s + 8k + 4 + p's.
fn q5_k_fifth_bits(b: &[u8], s: usize) -> u32 {
    let mut out = 0;
    for k in 0..4 {
        out |= ((word(b, 16 + 8 * k) >> s) & BIT0) << (2 * k);
        out |= ((word(b, 16 + 8 * k + 4) >> s) & BIT0) << (2 * k + 1);
    }
    out
}

pub fn get_q5_k(tile: &[u8], j: usize, b: &mut [u8]) {
    // The Q4_K part with the nibbles at 48 instead of 16, then the fifth bits.
    let mut q4 = [0u8; 144];
    get_q45_k_nibbles(tile, true, j, &mut q4);
    b[..16].copy_from_slice(&q4[..16]);
    b[48..176].copy_from_slice(&q4[16..144]);
    b[16..48].fill(0);
    for s in 0..8 {
        for k in 0..4 {
            for p in 0..4 {
                let bits = tile[q5_k::high(s) + 4 * j + p];
                for (i, bit) in [
                    (32 * s + 8 * k + p, (bits >> (2 * k)) & 1),
                    (32 * s + 8 * k + 4 + p, (bits >> (2 * k + 1)) & 1),
                ] {
                    b[16 + i % 32] |= bit << (i / 32);
                }
            }
        }
    }
}

pub fn get_q4_k(tile: &[u8], j: usize, b: &mut [u8]) {
    get_q45_k_nibbles(tile, false, j, b);
}

/// Row j's Q4_K block from a Q4_K tile, or from a Q5_K tile its block without the fifth bits.
fn get_q45_k_nibbles(tile: &[u8], five_bit: bool, j: usize, b: &mut [u8]) {
    b[0..2].copy_from_slice(&tile[2 * j..2 * j + 2]);
    b[2..4].copy_from_slice(&tile[q4_k::DMIN + 2 * j..][..2]);
    let sc: [u8; 8] = std::array::from_fn(|s| tile[q4_k::SCALES + 8 * s + j]);
    let m: [u8; 8] = std::array::from_fn(|s| tile[q4_k::MINS + 8 * s + j]);
    // The inverse of `scale_min_k4`: six bits each, the top two of sub-blocks 4..8 in the top
    // bits of bytes 0..8.
    for i in 0..4 {
        b[4 + i] = sc[i] | ((sc[i + 4] >> 4) << 6);
        b[8 + i] = m[i] | ((m[i + 4] >> 4) << 6);
        b[12 + i] = (sc[i + 4] & 0x0f) | ((m[i + 4] & 0x0f) << 4);
    }
    b[16..144].fill(0);
    for s in 0..8 {
        for k in 0..4 {
            for p in 0..4 {
                let byte = tile[q4_k::values(five_bit, s) + 32 * k + 4 * j + p];
                for (i, v) in [
                    (32 * s + 8 * k + p, byte & 0x0f),
                    (32 * s + 8 * k + 4 + p, byte >> 4),
                ] {
                    let (c, l) = (i / 64, i % 64);
                    b[16 + 32 * c + l % 32] |= if l < 32 { v } else { v << 4 };
                }
            }
        }
    }
}

/// Where value i (0..256) of a Q6_K block keeps its low nibble (byte, shift) and its high bits
/// (byte, shift).
pub(super) fn q6_k_bits(i: usize) -> ((usize, u32), (usize, u32)) {
    let (h, l) = (i / 128, i % 128);
    let (k, ll) = (l / 32, l % 32);
    let low = (64 * h + ll + (k & 1) * 32, if k < 2 { 0 } else { 4 });
    let high = (128 + 32 * h + ll, 2 * k as u32);
    (low, high)
}

/// Where value i of row j sits in a Q6_K tile: (byte of its low nibble, shift), (byte of its
/// high bits, shift).
pub(super) fn q6_k_tile_bits(i: usize, j: usize) -> ((usize, u32), (usize, u32)) {
    let (group, p) = (i / 4, i % 4);
    let (v, reg) = (group / 2, group % 2);
    let low = (q6_k::low(v / 2) + 32 * (v % 2) + 4 * j + p, 4 * reg as u32);
    let field = 2 * (v % 2) + reg;
    let high = (q6_k::high(v / 2) + 4 * j + p, 2 * field as u32);
    (low, high)
}

pub fn put_q6_k(b: &[u8], j: usize, tile: &mut [u8]) {
    tile[2 * j..2 * j + 2].copy_from_slice(&b[208..210]);
    for s in 0..16 {
        tile[q6_k::SCALES + 8 * s + j] = b[192 + s];
    }
    // Value vector v holds values 8v..8v + 8 (as `q6_k_bits` and `q6_k_tile_bits` place them):
    // low nibbles from the 8 bytes of ql at `low` (their high nibbles from the third quarter
    // of each 128 values on), two high bits from the 8 bytes of qh at `high`.
    for v in 0..32 {
        let (h, k, quad) = (v / 16, v % 16 / 4, v % 4);
        let low = 64 * h + 32 * (k % 2) + 8 * quad;
        let w = nibble_pairs(word(b, low), word(b, low + 4), k >= 2);
        put_word(tile, q6_k::low(v / 2) + 32 * (v % 2) + 4 * j, w);
        let high = 128 + 32 * h + 8 * quad;
        for reg in 0..2 {
            let bits = (word(b, high + 4 * reg) >> (2 * k)) & BITS01;
            or_word(
                tile,
                q6_k::high(v / 2) + 4 * j,
                bits << (2 * (2 * (v % 2) + reg)),
            );
        }
    }
}

pub fn get_q6_k(tile: &[u8], j: usize, b: &mut [u8]) {
    b[208..210].copy_from_slice(&tile[2 * j..2 * j + 2]);
    for s in 0..16 {
        b[192 + s] = tile[q6_k::SCALES + 8 * s + j];
    }
    b[..192].fill(0);
    for i in 0..256 {
        let ((lb, ls), (hb, hs)) = q6_k_bits(i);
        let ((tl, tls), (th, ths)) = q6_k_tile_bits(i, j);
        b[lb] |= ((tile[tl] >> tls) & 0x0f) << ls;
        b[hb] |= ((tile[th] >> ths) & 3) << hs;
    }
}

/// Where value i (0..256) of a Q2_K/Q3_K block keeps its two low bits: (byte of the 64 bytes of
/// 2-bit values, shift). Q3_K's high bit is bit i / 32 of byte i % 32 of its mask.
pub(super) fn q23_k_low_bits(i: usize) -> (usize, u32) {
    (32 * (i / 128) + i % 32, 2 * (i % 128 / 32) as u32)
}

/// Where value i of row j sits in the 2-bit vectors of a Q2_K/Q3_K tile (relative to them):
/// (byte, shift).
pub(super) fn q23_k_tile_low_bits(i: usize, j: usize) -> (usize, u32) {
    let (s, r, p) = (i / 16, i % 16 / 4, i % 4);
    (32 * s + 4 * j + p, 2 * r as u32)
}

/// Where the high bit of value i of row j sits in a Q3_K tile's high-bit vectors: (byte, bit).
pub(super) fn q3_k_tile_high_bit(i: usize, j: usize) -> (usize, u32) {
    let (s, r, p) = (i / 16, i % 16 / 4, i % 4);
    (32 * (s / 2) + 4 * j + p, (4 * (s % 2) + r) as u32)
}

pub fn put_q2_k(b: &[u8], j: usize, tile: &mut [u8]) {
    tile[2 * j..2 * j + 2].copy_from_slice(&b[80..82]);
    tile[q2_k::DMIN + 2 * j..][..2].copy_from_slice(&b[82..84]);
    for s in 0..16 {
        tile[q2_k::SCALES + 8 * s + j] = b[s];
        put_word(
            tile,
            q2_k::VALUES + 32 * s + 4 * j,
            q23_k_low_bits_word(&b[16..80], s),
        );
    }
}

/// Sub-block s (values 16s..16s + 16) of a Q2_K/Q3_K block's 64 bytes of 2-bit values as its
/// tile vector's four bytes (bits 2r..2r + 2 of byte p: value 16s + 4r + p). Value i sits in
/// byte 32·(i / 128) + i % 32 at bit 2·(i % 128 / 32) (`q23_k_low_bits`).
fn q23_k_low_bits_word(qs: &[u8], s: usize) -> u32 {
    let (at, shift) = (32 * (s / 8) + 16 * (s % 2), 2 * (s % 8 / 2));
    let mut out = 0;
    for r in 0..4 {
        out |= ((word(qs, at + 4 * r) >> shift) & BITS01) << (2 * r);
    }
    out
}

pub fn get_q2_k(tile: &[u8], j: usize, b: &mut [u8]) {
    b[80..82].copy_from_slice(&tile[2 * j..2 * j + 2]);
    b[82..84].copy_from_slice(&tile[q2_k::DMIN + 2 * j..][..2]);
    for s in 0..16 {
        b[s] = tile[q2_k::SCALES + 8 * s + j];
    }
    b[16..80].fill(0);
    for i in 0..256 {
        let (lb, ls) = q23_k_low_bits(i);
        let (tb, ts) = q23_k_tile_low_bits(i, j);
        b[16 + lb] |= ((tile[q2_k::VALUES + tb] >> ts) & 3) << ls;
    }
}

pub fn put_q3_k(b: &[u8], j: usize, tile: &mut [u8]) {
    tile[2 * j..2 * j + 2].copy_from_slice(&b[108..110]);
    for (s, sc) in q3_k_scales(&b[96..108]).into_iter().enumerate() {
        tile[q3_k::SCALES + 8 * s + j] = (sc + 32) as u8;
    }
    for s in 0..16 {
        put_word(
            tile,
            q3_k::low(s) + 4 * j,
            q23_k_low_bits_word(&b[32..96], s),
        );
        // The high bit of value 16s + 4r + p: bit s / 2 of mask byte 16·(s % 2) + 4r + p, to
        // bit 4·(s % 2) + r of byte p of the pair's vector.
        let mut high = 0;
        for r in 0..4 {
            high |= ((word(b, 16 * (s % 2) + 4 * r) >> (s / 2)) & BIT0) << (4 * (s % 2) + r);
        }
        or_word(tile, q3_k::high(s / 2) + 4 * j, high);
    }
}

pub fn get_q3_k(tile: &[u8], j: usize, b: &mut [u8]) {
    b[108..110].copy_from_slice(&tile[2 * j..2 * j + 2]);
    b[..108].fill(0);
    // The inverse of `q3_k_scales`: the low four bits of scale s in byte s % 8 (high nibble
    // for s ≥ 8), its top two bits in byte 8 + s % 4 at bit 2·(s / 4).
    for s in 0..16 {
        let u = tile[q3_k::SCALES + 8 * s + j];
        b[96 + s % 8] |= (u & 0x0f) << (4 * (s / 8));
        b[104 + s % 4] |= (u >> 4) << (2 * (s / 4));
    }
    for i in 0..256 {
        let (lb, ls) = q23_k_low_bits(i);
        let (tb, ts) = q23_k_tile_low_bits(i, j);
        b[32 + lb] |= ((tile[q3_k::low(tb / 32) + tb % 32] >> ts) & 3) << ls;
        let (hb, hs) = q3_k_tile_high_bit(i, j);
        b[i % 32] |= ((tile[q3_k::high(hb / 32) + hb % 32] >> hs) & 1) << (i / 32);
    }
}
