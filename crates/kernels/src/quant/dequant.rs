//! The formats, defined by turning their blocks back into floats: plain loops following ggml's
//! reference dequantizers and block layouts. Everything faster is tested against these.

use super::{f16_at, ActivationType, WeightType, QK_K};

/// Floats of whole blocks of `ty`; `out` holds `bytes / block_bytes · block_len` values.
pub fn dequantize_row(ty: WeightType, bytes: &[u8], out: &mut [f32]) {
    let (bb, bl) = (ty.block_bytes(), ty.block_len());
    assert_eq!(bytes.len() / bb * bl, out.len(), "dequantize_row: sizes");
    for (b, y) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bl)) {
        match ty {
            WeightType::F32 => y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            WeightType::F16 => y[0] = f16_at(b, 0),
            WeightType::BF16 => y[0] = half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            WeightType::Q4_0 => nibbles(&b[2..18], |i, q| y[i] = f16_at(b, 0) * (q as f32 - 8.0)),
            WeightType::Q4_1 => nibbles(&b[4..20], |i, q| {
                y[i] = f16_at(b, 0) * q as f32 + f16_at(b, 2)
            }),
            WeightType::Q5_0 => nibbles(&b[6..22], |i, q| {
                y[i] = f16_at(b, 0) * ((q | high_bit(&b[2..6], i)) as f32 - 16.0)
            }),
            WeightType::Q5_1 => nibbles(&b[8..24], |i, q| {
                y[i] = f16_at(b, 0) * (q | high_bit(&b[4..8], i)) as f32 + f16_at(b, 2)
            }),
            WeightType::Q8_0 => {
                for (y, &q) in y.iter_mut().zip(&b[2..34]) {
                    *y = f16_at(b, 0) * f32::from(q as i8);
                }
            }
            WeightType::Q2_K => q2_k(b, y),
            WeightType::Q3_K => q3_k(b, y),
            WeightType::Q4_K => q4_k(b, y),
            WeightType::Q5_K => q5_k(b, y),
            WeightType::Q6_K => q6_k(b, y),
        }
    }
}

/// Floats of whole activation blocks of `ty` (the inverse of `quantize_activations`, up to its
/// rounding).
pub fn dequantize_activations(ty: ActivationType, bytes: &[u8], out: &mut [f32]) {
    let (bb, bl) = (ty.block_bytes(), ty.block_len());
    assert_eq!(
        bytes.len() / bb * bl,
        out.len(),
        "dequantize_activations: sizes"
    );
    for (b, y) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bl)) {
        let (d, q) = match ty {
            ActivationType::F32 => (f32::from_le_bytes([b[0], b[1], b[2], b[3]]), &[][..]),
            ActivationType::F16 => (f16_at(b, 0), &[][..]),
            ActivationType::BF16 => (half::bf16::from_le_bytes([b[0], b[1]]).to_f32(), &[][..]),
            ActivationType::Q8_0 => (f16_at(b, 0), &b[2..34]),
            ActivationType::Q8_1 => (f16_at(b, 0), &b[4..36]),
            ActivationType::Q8_K => (
                f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                &b[4..4 + QK_K],
            ),
        };
        if q.is_empty() {
            y[0] = d;
        } else {
            for (y, &q) in y.iter_mut().zip(q) {
                *y = d * f32::from(q as i8);
            }
        }
    }
}

/// The 32 values of 16 packed bytes: low nibbles are values 0..16, high nibbles 16..32.
fn nibbles(qs: &[u8], mut put: impl FnMut(usize, u8)) {
    for (j, &q) in qs.iter().enumerate() {
        put(j, q & 0x0f);
        put(j + 16, q >> 4);
    }
}

/// Bit `i` of the little-endian u32 `qh`, as the fifth bit (16) of a 5-bit value.
fn high_bit(qh: &[u8], i: usize) -> u8 {
    ((qh[i / 8] >> (i % 8)) & 1) << 4
}

/// Scale and minimum of sub-block `j` (0..8) from the 12 packed bytes of Q4_K/Q5_K: six bits
/// each; the top two bits of the first eight bytes complete sub-blocks 4..8.
pub(super) fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// The 16 signed 6-bit scales of Q3_K (stored minus 32): low four bits in bytes 0..8, high two
/// bits in bytes 8..12.
pub(super) fn q3_k_scales(s: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0x0f } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i8 - 32;
    }
    out
}

// K-quant layouts (ggml's block_qN_K): each block is 256 values.

/// scales[16] (low nibble scale, high nibble min), qs[64] (2 bits), f16 d, f16 dmin.
fn q2_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let mut is = 0;
    for (half, qs) in qs.chunks_exact(32).enumerate() {
        for shift in 0..4 {
            for h in 0..2 {
                let sc = scales[is];
                is += 1;
                let (dl, ml) = (d * f32::from(sc & 0x0f), dmin * f32::from(sc >> 4));
                for l in 0..16 {
                    let q = (qs[h * 16 + l] >> (2 * shift)) & 3;
                    y[half * 128 + shift * 32 + h * 16 + l] = dl * f32::from(q) - ml;
                }
            }
        }
    }
}

/// hmask[32], qs[64] (2 low bits), scales[12] (6-bit, minus 32), f16 d.
fn q3_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 108);
    let (hmask, qs) = (&b[0..32], &b[32..96]);
    let scales = q3_k_scales(&b[96..108]);
    let mut is = 0;
    for (half, qs) in qs.chunks_exact(32).enumerate() {
        for shift in 0..4 {
            let m = 1u8 << (4 * half + shift);
            for h in 0..2 {
                let dl = d * f32::from(scales[is]);
                is += 1;
                for l in 0..16 {
                    let i = h * 16 + l;
                    let low = ((qs[i] >> (2 * shift)) & 3) as i8;
                    let q = low - if hmask[i] & m != 0 { 0 } else { 4 };
                    y[half * 128 + shift * 32 + i] = dl * f32::from(q);
                }
            }
        }
    }
}

/// f16 d, f16 dmin, scales[12], qs[128]: 64 values per 32 bytes, low nibbles first.
fn q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    for (j, qs) in b[16..144].chunks_exact(32).enumerate() {
        for h in 0..2 {
            let (sc, m) = scale_min_k4(2 * j + h, &b[4..16]);
            let (dl, ml) = (d * f32::from(sc), dmin * f32::from(m));
            for (l, &q) in qs.iter().enumerate() {
                let q = if h == 0 { q & 0x0f } else { q >> 4 };
                y[64 * j + 32 * h + l] = dl * f32::from(q) - ml;
            }
        }
    }
}

/// f16 d, f16 dmin, scales[12], qh[32] (bit s of qh[l] is the fifth bit of value l of
/// sub-block s), qs[128].
fn q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let qh = &b[16..48];
    for (j, qs) in b[48..176].chunks_exact(32).enumerate() {
        for h in 0..2 {
            let s = 2 * j + h;
            let (sc, m) = scale_min_k4(s, &b[4..16]);
            let (dl, ml) = (d * f32::from(sc), dmin * f32::from(m));
            for (l, &q) in qs.iter().enumerate() {
                let low = if h == 0 { q & 0x0f } else { q >> 4 };
                let q = low | (((qh[l] >> s) & 1) << 4);
                y[64 * j + 32 * h + l] = dl * f32::from(q) - ml;
            }
        }
    }
}

/// ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (i8), f16 d; values are q − 32.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    let scales = &b[192..208];
    for half in 0..2 {
        let ql = &b[64 * half..64 * half + 64];
        let qh = &b[128 + 32 * half..128 + 32 * half + 32];
        let sc = |i: usize| f32::from(scales[8 * half + i] as i8);
        for l in 0..32 {
            let is = l / 16;
            let q = [
                (ql[l] & 0x0f) | ((qh[l] & 3) << 4),
                (ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4),
                (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
            ];
            for (k, &q) in q.iter().enumerate() {
                y[128 * half + 32 * k + l] = d * sc(is + 2 * k) * f32::from(q as i8 - 32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16(v: f32) -> [u8; 2] {
        half::f16::from_f32(v).to_le_bytes()
    }

    #[test]
    fn small_blocks_decode_by_hand() {
        // Q4_0: d = 0.5, first byte 0x9f → value 0 = 15 − 8, value 16 = 9 − 8.
        let mut b = vec![0u8; 18];
        b[..2].copy_from_slice(&f16(0.5));
        b[2] = 0x9f;
        let mut y = [0.0; 32];
        dequantize_row(WeightType::Q4_0, &b, &mut y);
        assert_eq!((y[0], y[16], y[1]), (3.5, 0.5, -4.0));
        // Q5_1: d = 1, m = −2, high bit of value 17 set, byte 1 = 0x3a → value 1 = 10, value
        // 17 = 3 + 16.
        let mut b = vec![0u8; 24];
        b[..2].copy_from_slice(&f16(1.0));
        b[2..4].copy_from_slice(&f16(-2.0));
        b[6] = 0x02; // bit 17 of the u32 at 4..8
        b[9] = 0x3a;
        let mut y = [0.0; 32];
        dequantize_row(WeightType::Q5_1, &b, &mut y);
        assert_eq!((y[1], y[17], y[0]), (8.0, 17.0, -2.0));
    }

    #[test]
    fn k_quant_scales_unpack() {
        // Sub-block 5 of Q4_K: low 4 bits from byte 9, high 2 bits from the top of byte 1;
        // its minimum: high nibble of byte 9, top of byte 5.
        let mut s = [0u8; 12];
        s[9] = 0xa7;
        s[1] = 0b1100_0000;
        s[5] = 0b0100_0000;
        assert_eq!(scale_min_k4(5, &s), (0x37, 0x1a));
        // Q3_K scale 13: high nibble of byte 5, bits 6..8 of byte 9; stored minus 32.
        let mut s = [0u8; 12];
        s[5] = 0xb0;
        s[9] = 0b1000_0000;
        assert_eq!(q3_k_scales(&s)[13], (0x2b - 32) as i8);
    }

    #[test]
    fn q6_k_places_each_stream() {
        let mut b = vec![0u8; 210];
        b[208..210].copy_from_slice(&f16(1.0));
        b[192..208].fill(1);
        b[32] = 0x5a; // ql[32]: low nibble → value 32, high → value 96
        b[128] = 0b1110_0100; // qh[0]: value 0 high=0, 32 high=1, 64 high=2, 96 high=3
        let mut y = [0.0; 256];
        dequantize_row(WeightType::Q6_K, &b, &mut y);
        assert_eq!(y[0], -32.0);
        assert_eq!(y[32], f32::from((0x0a | 0x10) as i8 - 32));
        assert_eq!(y[64], f32::from(0x20i8 - 32));
        assert_eq!(y[96], f32::from((0x05 | 0x30) as i8 - 32));
    }
}
