//! The two row operations attention spends its time in, on f16 cache rows: a dot product with
//! a query and a scaled add into an accumulator. AVX2 + F16C where the CPU has it (the tier of
//! `quant::tier`), plain loops otherwise.

use half::f16;

use crate::quant::{tier, Tier};

/// `Σ q[i]·k[i]`.
pub fn dot_f16(q: &[f32], k: &[f16]) -> f32 {
    assert_eq!(q.len(), k.len());
    #[cfg(target_arch = "x86_64")]
    if tier() == Tier::Avx2 {
        // SAFETY: the AVX2 tier is chosen only where the CPU has AVX2, FMA and F16C.
        return unsafe { avx2::dot_f16(q, k) };
    }
    q.iter().zip(k).map(|(&a, &b)| a * b.to_f32()).sum()
}

/// `acc[i] += p·v[i]`.
pub fn axpy_f16(acc: &mut [f32], p: f32, v: &[f16]) {
    assert_eq!(acc.len(), v.len());
    #[cfg(target_arch = "x86_64")]
    if tier() == Tier::Avx2 {
        // SAFETY: as above.
        return unsafe { avx2::axpy_f16(acc, p, v) };
    }
    for (a, &b) in acc.iter_mut().zip(v) {
        *a += p * b.to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use half::f16;

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; the slices have equal lengths.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16(q: &[f32], k: &[f16]) -> f32 {
        let n = q.len();
        let main = n - n % 8;
        let mut acc = _mm256_setzero_ps();
        for i in (0..main).step_by(8) {
            // SAFETY: i + 8 <= n on both sides.
            unsafe {
                let kv = _mm256_cvtph_ps(_mm_loadu_si128(k.as_ptr().add(i).cast()));
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), kv, acc);
            }
        }
        let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let mut sum = _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
        for i in main..n {
            sum += q[i] * k[i].to_f32();
        }
        sum
    }

    /// # Safety
    /// As `dot_f16`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn axpy_f16(acc: &mut [f32], p: f32, v: &[f16]) {
        let n = acc.len();
        let main = n - n % 8;
        let pv = _mm256_set1_ps(p);
        for i in (0..main).step_by(8) {
            // SAFETY: i + 8 <= n on both sides.
            unsafe {
                let vv = _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(i).cast()));
                let a = acc.as_mut_ptr().add(i);
                _mm256_storeu_ps(a, _mm256_fmadd_ps(pv, vv, _mm256_loadu_ps(a)));
            }
        }
        for i in main..n {
            acc[i] += p * v[i].to_f32();
        }
    }
}
