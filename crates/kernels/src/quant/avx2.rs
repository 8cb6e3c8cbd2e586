//! AVX2 + FMA + F16C dot products: one block of 32 per step, integer products with
//! `maddubs`/`madd`, block scales applied with one FMA into eight f32 lanes.

use std::arch::x86_64::*;

use super::WeightType;

/// # Safety
/// The CPU must support AVX2, FMA and F16C; `a` must hold the activation blocks for every
/// weight block of `w`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot(ty: WeightType, w: &[u8], a: &[u8]) -> f32 {
    let blocks = w.len() / ty.block_bytes();
    assert!(a.len() >= blocks * ty.activation_block_bytes());
    // SAFETY: the caller guarantees the features; the assert above guarantees the bytes.
    unsafe {
        match ty {
            WeightType::Q4_1 => q4_1_q8_1(w.as_ptr(), a.as_ptr(), blocks),
            WeightType::Q8_0 => q8_0_q8_0(w.as_ptr(), a.as_ptr(), blocks),
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16(p: *const u8) -> f32 {
    // SAFETY: the caller points at two readable bytes; unaligned reads are allowed.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_q8_1(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0.0f32;
    for b in 0..blocks {
        // SAFETY: block b of 20 weight bytes and 36 activation bytes is inside the slices.
        unsafe {
            let (wb, ab) = (w.add(b * 20), a.add(b * 36));
            let scale = f16(wb) * f16(ab);
            mins += f16(wb.add(2)) * f16(ab.add(2));
            let packed = _mm_loadu_si128(wb.add(4).cast());
            // Values 0..16 are the low nibbles, 16..32 the high ones.
            let q = _mm256_and_si256(
                _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed),
                low_nibbles,
            );
            let qa = _mm256_loadu_si256(ab.add(4).cast());
            let products = _mm256_madd_epi16(_mm256_maddubs_epi16(q, qa), ones);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(products), acc);
        }
    }
    // SAFETY: same features as this function.
    unsafe { hsum(acc) + mins }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_q8_0(w: *const u8, a: *const u8, blocks: usize) -> f32 {
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    for b in 0..blocks {
        // SAFETY: block b of 34 bytes is inside both slices.
        unsafe {
            let (wb, ab) = (w.add(b * 34), a.add(b * 34));
            let scale = f16(wb) * f16(ab);
            let qw = _mm256_loadu_si256(wb.add(2).cast());
            let qa = _mm256_loadu_si256(ab.add(2).cast());
            // maddubs wants one unsigned operand: |w| times a with w's sign.
            let products = _mm256_madd_epi16(
                _mm256_maddubs_epi16(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qa, qw)),
                ones,
            );
            acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(products), acc);
        }
    }
    // SAFETY: same features as this function.
    unsafe { hsum(acc) }
}
