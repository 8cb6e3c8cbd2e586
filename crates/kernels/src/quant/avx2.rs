//! AVX2 + FMA + F16C row dot products of the float types (F32, F16, BF16), and the small
//! helpers the tile kernels (`avx2_x8.rs`, `avx512_x8.rs`) share. The quantized types have no
//! row products here: x86 multiplies them in 8-row tiles only (`super::tile_kernel`), so
//! `super::vec_dot` gives a quantized row the scalar reference.

use std::arch::x86_64::*;

use super::WeightType;

/// The dot product of a float row with its activations, or None for a quantized type.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `w` must hold `n` values of `ty` and `a` as many
/// activation values.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot(ty: WeightType, w: &[u8], a: &[u8], n: usize) -> Option<f32> {
    let (w, a) = (w.as_ptr(), a.as_ptr());
    // SAFETY: forwarded from the caller.
    unsafe {
        match ty {
            WeightType::F32 => Some(f32_f32(w, a, n)),
            WeightType::F16 => Some(f16_f16(w, a, n)),
            WeightType::BF16 => Some(bf16_bf16(w, a, n)),
            WeightType::Q4_0
            | WeightType::Q4_1
            | WeightType::Q5_0
            | WeightType::Q5_1
            | WeightType::Q8_0
            | WeightType::Q2_K
            | WeightType::Q3_K
            | WeightType::Q4_K
            | WeightType::Q5_K
            | WeightType::Q6_K => None,
        }
    }
}

// Small helpers. All read unaligned memory the caller vouches for.

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16(p: *const u8) -> f32 {
    // SAFETY: the caller points at two readable bytes.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f32_at(p: *const u8) -> f32 {
    // SAFETY: the caller points at four readable bytes.
    unsafe { p.cast::<f32>().read_unaligned() }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: the caller points at 32 readable bytes.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

// Float weights: the activations come in the same format.

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_f32(w: *const u8, a: *const u8, n: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let main = n - n % 8;
    // SAFETY: n f32 values on both sides.
    unsafe {
        for i in (0..main).step_by(8) {
            let x = _mm256_loadu_ps(w.add(4 * i).cast());
            let y = _mm256_loadu_ps(a.add(4 * i).cast());
            acc = _mm256_fmadd_ps(x, y, acc);
        }
        let mut sum = hsum(acc);
        for i in main..n {
            sum += f32_at(w.add(4 * i)) * f32_at(a.add(4 * i));
        }
        sum
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_f16(w: *const u8, a: *const u8, n: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let main = n - n % 8;
    // SAFETY: n f16 values on both sides.
    unsafe {
        for i in (0..main).step_by(8) {
            let x = _mm256_cvtph_ps(_mm_loadu_si128(w.add(2 * i).cast()));
            let y = _mm256_cvtph_ps(_mm_loadu_si128(a.add(2 * i).cast()));
            acc = _mm256_fmadd_ps(x, y, acc);
        }
        let mut sum = hsum(acc);
        for i in main..n {
            sum += f16(w.add(2 * i)) * f16(a.add(2 * i));
        }
        sum
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_bf16(w: *const u8, a: *const u8, n: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let main = n - n % 8;
    // SAFETY: n bf16 values on both sides.
    unsafe {
        for i in (0..main).step_by(8) {
            acc = _mm256_fmadd_ps(bf16x8(w.add(2 * i)), bf16x8(a.add(2 * i)), acc);
        }
        let mut sum = hsum(acc);
        for i in main..n {
            sum += bf16(w.add(2 * i)) * bf16(a.add(2 * i));
        }
        sum
    }
}

/// Eight bf16 values as f32: a bf16 is the top half of an f32.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16x8(p: *const u8) -> __m256 {
    // SAFETY: the caller points at 16 readable bytes.
    let h = unsafe { _mm_loadu_si128(p.cast()) };
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
}

unsafe fn bf16(p: *const u8) -> f32 {
    // SAFETY: the caller points at two readable bytes.
    f32::from_bits(u32::from(unsafe { p.cast::<u16>().read_unaligned() }) << 16)
}
