//! The softmax of attention rows cut into chunks of positions, in two passes per chunk:
//! `exps` takes the chunk's maximum score `m` and replaces the scores by `exp(s - m)` with their
//! sum `l`; once every chunk of the row is done, `round_weights` scales them by
//! `exp(m - m_row) / l_row` and rounds them to f16 — the normalised weights rounded as
//! llama.cpp rounds them before multiplying them with V in f16.

use half::f16;

use crate::exp::exp;
#[cfg(target_arch = "x86_64")]
use crate::tier::avx2_floats;

/// For each of the `group` rows of `scores` (`[group][positions]`): `m[g]` = its maximum, the
/// row replaced by `exp(s - m[g])`, `l[g]` = their sum.
pub fn exps(scores: &mut [f32], group: usize, m: &mut [f32], l: &mut [f32]) {
    let n = scores.len() / group;
    for ((row, m), l) in scores.chunks_exact_mut(n.max(1)).zip(m).zip(l) {
        #[cfg(target_arch = "x86_64")]
        if avx2_floats() {
            // SAFETY: `avx2_floats` is true only where the CPU has AVX2, FMA and F16C.
            (*m, *l) = unsafe { avx2::exps(row) };
            continue;
        }
        *m = row.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        *l = 0.0;
        for s in row.iter_mut() {
            *s = exp(*s - *m);
            *l += *s;
        }
    }
}

/// Each row `g` of `exps` (`[group][positions]`) multiplied by `factor[g]` and rounded to f16.
pub fn round_weights(exps: &mut [f32], group: usize, factor: &[f32]) {
    let n = exps.len() / group;
    for (row, &f) in exps.chunks_exact_mut(n.max(1)).zip(factor) {
        #[cfg(target_arch = "x86_64")]
        let done = if avx2_floats() {
            // SAFETY: as above.
            unsafe { avx2::round_weights(row, f) }
        } else {
            0
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = 0;
        for e in &mut row[done..] {
            *e = f16::from_f32(*e * f).to_f32();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::*;
    use crate::exp::avx2::exp8;

    /// `exps` of one row: the maximum and the sum, the row's whole vectors by vectors (the
    /// sum's lanes then added in order), the rest one by one.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn exps(row: &mut [f32]) -> (f32, f32) {
        let (vectors, rest) = row.as_chunks_mut::<8>();
        // SAFETY: each of `vectors` is eight floats.
        let load = |v: &[f32; 8]| unsafe { _mm256_loadu_ps(v.as_ptr()) };
        let mut max = _mm256_set1_ps(f32::NEG_INFINITY);
        for v in vectors.iter() {
            max = _mm256_max_ps(max, load(v));
        }
        let m = lanes(max)
            .into_iter()
            .chain(rest.iter().copied())
            .fold(f32::NEG_INFINITY, f32::max);
        let mut sum = _mm256_setzero_ps();
        for v in vectors.iter_mut() {
            let e = exp8(_mm256_sub_ps(load(v), _mm256_set1_ps(m)));
            sum = _mm256_add_ps(sum, e);
            // SAFETY: `v` is eight floats.
            unsafe { _mm256_storeu_ps(v.as_mut_ptr(), e) };
        }
        let mut l = lanes(sum).into_iter().sum::<f32>();
        for s in rest {
            *s = exp(*s - m);
            l += *s;
        }
        (m, l)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn lanes(v: __m256) -> [f32; 8] {
        let mut lanes = [0.0f32; 8];
        // SAFETY: eight floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        lanes
    }

    /// The whole vectors of `round_weights` for one row; returns how many values were done.
    ///
    /// # Safety
    /// As `exps`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn round_weights(row: &mut [f32], factor: f32) -> usize {
        let (vectors, _) = row.as_chunks_mut::<8>();
        for v in vectors.iter_mut() {
            // SAFETY: eight floats.
            unsafe {
                let w = _mm256_mul_ps(_mm256_loadu_ps(v.as_ptr()), _mm256_set1_ps(factor));
                let w = _mm256_cvtph_ps(_mm256_cvtps_ph(w, _MM_FROUND_TO_NEAREST_INT));
                _mm256_storeu_ps(v.as_mut_ptr(), w);
            }
        }
        vectors.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_and_scalar_paths_agree_bit_for_bit() {
        for group in 1..=9 {
            // Rows of whole vectors and a tail.
            let n = 37;
            let scores: Vec<f32> = (0..n * group)
                .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.05)
                .collect();
            let (mut m, mut l) = (vec![0.0; group], vec![0.0; group]);
            let mut e = scores.clone();
            exps(&mut e, group, &mut m, &mut l);
            for g in 0..group {
                let row = || scores[g * n..][..n].iter();
                assert_eq!(m[g], row().fold(f32::MIN, |a, &b| a.max(b)));
                // Summed in another order by the vector path.
                let sum: f32 = row().map(|&s| exp(s - m[g])).sum();
                assert!((l[g] - sum).abs() <= 1e-6 * sum, "{} vs {sum}", l[g]);
                for (&e, &s) in e[g * n..][..n].iter().zip(row()) {
                    assert_eq!(e.to_bits(), exp(s - m[g]).to_bits());
                }
            }
            let factor: Vec<f32> = l.iter().map(|l| 1.0 / l).collect();
            let mut w = e.clone();
            round_weights(&mut w, group, &factor);
            for (i, &w) in w.iter().enumerate() {
                let want = f16::from_f32(exp(scores[i] - m[i / n]) * factor[i / n]);
                assert_eq!(
                    w.to_bits(),
                    want.to_f32().to_bits(),
                    "group {group} index {i}"
                );
            }
        }
    }
}
