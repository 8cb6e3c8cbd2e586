//! The tile writers as first written, kept as the reference for the ones that load models:
//! value by value, each bit's place computed from the layouts' definitions (`q6_k_bits`,
//! `q6_k_tile_bits`, …), one row after another on one thread. The word-at-a-time writers on
//! the pool must give exactly these bytes.

use super::super::dequant::{q3_k_scales, scale_min_k4};
use super::super::interleave_k::{
    q23_k_low_bits, q23_k_tile_low_bits, q2_k, q3_k, q3_k_tile_high_bit, q4_k, q5_k, q6_k,
    q6_k_bits, q6_k_tile_bits,
};
use super::*;

/// The reference `interleave`.
fn interleave_reference(ty: WeightType, bytes: &[u8], rows: usize, blocks: usize) -> Vec<u8> {
    let bb = ty.block_bytes();
    let mut out = vec![0u8; rows.div_ceil(GROUP) * blocks * tile_bytes(ty)];
    for (t, tile) in out.chunks_exact_mut(tile_bytes(ty)).enumerate() {
        let (g, b) = (t / blocks, t % blocks);
        for j in 0..GROUP.min(rows.saturating_sub(g * GROUP)) {
            let block = &bytes[((g * GROUP + j) * blocks + b) * bb..][..bb];
            put_block_reference(ty, block, j, tile);
        }
    }
    out
}

fn put_block_reference(ty: WeightType, block: &[u8], j: usize, tile: &mut [u8]) {
    match ty {
        WeightType::Q2_K => put_q2_k(block, j, tile),
        WeightType::Q3_K => put_q3_k(block, j, tile),
        WeightType::Q4_K => put_q4_k(block, j, tile),
        WeightType::Q5_K => put_q5_k(block, j, tile),
        WeightType::Q6_K => put_q6_k(block, j, tile),
        WeightType::Q4_0
        | WeightType::Q4_1
        | WeightType::Q5_0
        | WeightType::Q5_1
        | WeightType::Q8_0 => put_row(ty, tile_layout(ty), &split(ty, block), j, tile),
        WeightType::F32 | WeightType::F16 | WeightType::BF16 => untiled(ty),
    }
}

#[test]
fn the_tile_builder_writes_the_reference_bytes() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut byte = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as u8
    };
    // Whole groups, a group and a tail, tails alone, one row; one block and several.
    let shapes = [
        (1, 1),
        (3, 2),
        (8, 1),
        (9, 3),
        (13, 3),
        (16, 4),
        (23, 2),
        (64, 5),
        (101, 1),
    ];
    for ty in WeightType::ALL.into_iter().filter(|&t| supported(t)) {
        for (rows, blocks) in shapes {
            let bytes: Vec<u8> = (0..rows * blocks * ty.block_bytes())
                .map(|_| byte())
                .collect();
            let want = interleave_reference(ty, &bytes, rows, blocks);
            assert!(
                interleave(ty, &bytes, rows, blocks) == want,
                "{ty:?} {rows} rows × {blocks} blocks: the tiles differ from the reference's"
            );
        }
    }
}

// The reference writers, as they were.

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

/// Value i (0..256) of a Q4_K block (nibbles at 16) or a Q5_K block (nibbles at 48, fifth bits
/// at 16): 4 or 5 bits.
fn q45_k_value(b: &[u8], five_bit: bool, i: usize) -> u8 {
    let (c, l) = (i / 64, i % 64);
    let q = b[if five_bit { 48 } else { 16 } + 32 * c + l % 32];
    let nibble = if l < 32 { q & 0x0f } else { q >> 4 };
    let fifth = if five_bit {
        (b[16 + i % 32] >> (i / 32)) & 1
    } else {
        0
    };
    nibble | (fifth << 4)
}

fn put_q4_k(b: &[u8], j: usize, tile: &mut [u8]) {
    put_q45_k(b, false, j, tile);
}

fn put_q5_k(b: &[u8], j: usize, tile: &mut [u8]) {
    put_q45_k(b, true, j, tile);
}

fn put_q45_k(b: &[u8], five_bit: bool, j: usize, tile: &mut [u8]) {
    tile[2 * j..2 * j + 2].copy_from_slice(&b[0..2]);
    tile[q4_k::DMIN + 2 * j..][..2].copy_from_slice(&b[2..4]);
    for s in 0..8 {
        let (sc, m) = scale_min_k4(s, &b[4..16]);
        tile[q4_k::SCALES + 8 * s + j] = sc;
        tile[q4_k::MINS + 8 * s + j] = m;
        for k in 0..4 {
            for p in 0..4 {
                let lo = q45_k_value(b, five_bit, 32 * s + 8 * k + p);
                let hi = q45_k_value(b, five_bit, 32 * s + 8 * k + 4 + p);
                tile[q4_k::values(five_bit, s) + 32 * k + 4 * j + p] = (lo & 0x0f) | (hi << 4);
                if five_bit {
                    tile[q5_k::high(s) + 4 * j + p] |=
                        ((lo >> 4) << (2 * k)) | ((hi >> 4) << (2 * k + 1));
                }
            }
        }
    }
}

fn put_q6_k(b: &[u8], j: usize, tile: &mut [u8]) {
    tile[2 * j..2 * j + 2].copy_from_slice(&b[208..210]);
    for s in 0..16 {
        tile[q6_k::SCALES + 8 * s + j] = b[192 + s];
    }
    for i in 0..256 {
        let ((lb, ls), (hb, hs)) = q6_k_bits(i);
        let ((tl, tls), (th, ths)) = q6_k_tile_bits(i, j);
        tile[tl] |= ((b[lb] >> ls) & 0x0f) << tls;
        tile[th] |= ((b[hb] >> hs) & 3) << ths;
    }
}

fn put_q2_k(b: &[u8], j: usize, tile: &mut [u8]) {
    tile[2 * j..2 * j + 2].copy_from_slice(&b[80..82]);
    tile[q2_k::DMIN + 2 * j..][..2].copy_from_slice(&b[82..84]);
    for s in 0..16 {
        tile[q2_k::SCALES + 8 * s + j] = b[s];
    }
    for i in 0..256 {
        let (lb, ls) = q23_k_low_bits(i);
        let (tb, ts) = q23_k_tile_low_bits(i, j);
        tile[q2_k::VALUES + tb] |= ((b[16 + lb] >> ls) & 3) << ts;
    }
}

fn put_q3_k(b: &[u8], j: usize, tile: &mut [u8]) {
    tile[2 * j..2 * j + 2].copy_from_slice(&b[108..110]);
    for (s, sc) in q3_k_scales(&b[96..108]).into_iter().enumerate() {
        tile[q3_k::SCALES + 8 * s + j] = (sc + 32) as u8;
    }
    for i in 0..256 {
        let (lb, ls) = q23_k_low_bits(i);
        let (tb, ts) = q23_k_tile_low_bits(i, j);
        tile[q3_k::low(tb / 32) + tb % 32] |= ((b[32 + lb] >> ls) & 3) << ts;
        let (hb, hs) = q3_k_tile_high_bit(i, j);
        tile[q3_k::high(hb / 32) + hb % 32] |= ((b[i % 32] >> (i / 32)) & 1) << hs;
    }
}
