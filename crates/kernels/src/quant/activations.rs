//! Quantizing f32 activations to 8-bit blocks, exactly as llama.cpp's x86 build does (scale
//! 127/amax, round half to even), so Ward's products match its numbers bit for bit before the
//! final f32 sums.

use super::BLOCK;

/// Q8_0 blocks (f16 d, 32 i8) of `x`, whose length is a multiple of 32.
pub fn quantize_q8_0(x: &[f32], out: &mut Vec<u8>) {
    out.clear();
    for block in x.chunks_exact(BLOCK) {
        let (d, q) = quantize_block(block);
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend(q.iter().map(|&v| v as u8));
    }
}

/// Q8_1 blocks (f16 d, f16 s = d·Σq, 32 i8) of `x`, whose length is a multiple of 32. The sum
/// lets a Q4_1 dot product add the weights' minimum without touching the values again.
pub fn quantize_q8_1(x: &[f32], out: &mut Vec<u8>) {
    out.clear();
    for block in x.chunks_exact(BLOCK) {
        let (d, q) = quantize_block(block);
        let sum: i32 = q.iter().map(|&v| i32::from(v)).sum();
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend_from_slice(&half::f16::from_f32(sum as f32 * d).to_le_bytes());
        out.extend(q.iter().map(|&v| v as u8));
    }
}

fn quantize_block(x: &[f32]) -> (f32, [i8; BLOCK]) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut q = [0i8; BLOCK];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * id).round_ties_even() as i8;
    }
    (d, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_blocks_round_trip_within_half_a_step() {
        let x: Vec<f32> = (0..96)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let mut q = Vec::new();
        quantize_q8_1(&x, &mut q);
        assert_eq!(q.len(), 3 * 36);
        for (b, xs) in x.chunks(32).enumerate() {
            let blk = &q[b * 36..];
            let d = super::super::f16_at(blk, 0);
            let s = super::super::f16_at(blk, 2);
            let vals: Vec<i8> = blk[4..36].iter().map(|&v| v as i8).collect();
            let sum: i32 = vals.iter().map(|&v| i32::from(v)).sum();
            assert!((s - d * sum as f32).abs() <= 0.01 * s.abs().max(1.0));
            for (&v, &x) in vals.iter().zip(xs) {
                assert!((f32::from(v) * d - x).abs() <= d * 0.5 + 1e-3 * d.max(1.0));
            }
        }
        quantize_q8_0(&[0.0; 32], &mut q);
        assert!(q.iter().all(|&b| b == 0));
    }
}
