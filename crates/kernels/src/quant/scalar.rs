//! The reference dot products: plain loops, the definition the SIMD tiers are tested against.

use super::{f16_at, WeightType, BLOCK};

pub fn vec_dot(ty: WeightType, w: &[u8], a: &[u8]) -> f32 {
    match ty {
        WeightType::Q4_1 => q4_1_q8_1(w, a),
        WeightType::Q8_0 => q8_0_q8_0(w, a),
    }
}

fn q4_1_q8_1(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.chunks_exact(20).zip(a.chunks_exact(36)) {
        let (d, m) = (f16_at(wb, 0), f16_at(wb, 2));
        let (da, sa) = (f16_at(ab, 0), f16_at(ab, 2));
        let q = &ab[4..4 + BLOCK];
        let mut isum = 0i32;
        for j in 0..BLOCK / 2 {
            let byte = wb[4 + j];
            isum += i32::from(byte & 0x0f) * i32::from(q[j] as i8);
            isum += i32::from(byte >> 4) * i32::from(q[j + BLOCK / 2] as i8);
        }
        sum += d * da * isum as f32 + m * sa;
    }
    sum
}

fn q8_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, ab) in w.chunks_exact(34).zip(a.chunks_exact(34)) {
        let isum: i32 = wb[2..34]
            .iter()
            .zip(&ab[2..34])
            .map(|(&x, &y)| i32::from(x as i8) * i32::from(y as i8))
            .sum();
        sum += f16_at(wb, 0) * f16_at(ab, 0) * isum as f32;
    }
    sum
}
