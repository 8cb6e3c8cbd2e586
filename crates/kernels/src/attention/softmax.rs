//! The softmax of attention rows cut into chunks of positions, in two passes per chunk:
//! `exps` takes the chunk's maximum score `m` and replaces the scores by `exp(s - m)` with their
//! sum `l`; once every chunk of the row is done, `round_weights` scales them by
//! `exp(m - m_row) / l_row` and rounds them to f16 — the normalised weights rounded as
//! llama.cpp rounds them before multiplying them with V in f16.

use half::f16;

use crate::exp::exp;
#[cfg(target_arch = "x86_64")]
use crate::tier::avx2_floats;

/// For each of the `group` columns of `scores` (`[position][group]`): `m[g]` = its maximum,
/// the column replaced by `exp(s - m[g])`, `l[g]` = their sum.
pub fn exps(scores: &mut [f32], group: usize, m: &mut [f32], l: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2_floats() && group <= 8 {
        // SAFETY: `avx2_floats` is true only where the CPU has AVX2, FMA and F16C.
        return unsafe { avx2::exps(scores, m, l) };
    }
    m.fill(f32::NEG_INFINITY);
    for (i, &s) in scores.iter().enumerate() {
        m[i % group] = m[i % group].max(s);
    }
    l.fill(0.0);
    for (i, s) in scores.iter_mut().enumerate() {
        *s = exp(*s - m[i % group]);
        l[i % group] += *s;
    }
}

/// Each column `g` of `exps` (`[position][group]`) multiplied by `factor[g]` and rounded to f16.
pub fn round_weights(exps: &mut [f32], group: usize, factor: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    let done = if avx2_floats() && group <= 8 {
        // SAFETY: as above.
        unsafe { avx2::round_weights(exps, factor) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (i, e) in exps.iter_mut().enumerate().skip(done) {
        *e = f16::from_f32(*e * factor[i % group]).to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::*;
    use crate::exp::avx2::exp8;

    /// Lane j of the vector at offset o of a `[position][group]` array belongs to column
    /// (o + j) % group: the per-column values repeated, to be read from offset o % group.
    fn repeated(per_column: &[f32]) -> [f32; 16] {
        std::array::from_fn(|i| per_column[i % per_column.len()])
    }

    /// `f` on each whole vector of `x` with the matching lanes of `per_column`; returns how
    /// many values were done.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn map_columns(
        x: &mut [f32],
        per_column: &[f32],
        mut f: impl FnMut(__m256, __m256) -> __m256,
    ) -> usize {
        let repeated = repeated(per_column);
        let group = per_column.len();
        let whole = x.len() / 8 * 8;
        for o in (0..whole).step_by(8) {
            // SAFETY: o + 8 <= x.len() and o % group + 8 <= 16.
            unsafe {
                let p = x.as_mut_ptr().add(o);
                let c = _mm256_loadu_ps(repeated.as_ptr().add(o % group));
                _mm256_storeu_ps(p, f(_mm256_loadu_ps(p), c));
            }
        }
        whole
    }

    /// `exps` with vector maxima and sums. Lane j of the vector at offset o belongs to column
    /// (o + j) % group, so vectors `period` apart have the same columns in the same lanes: each
    /// of `period` accumulators takes every `period`-th vector, and their lanes are folded into
    /// the columns at the end.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; `m.len()` (the group) is at most 8.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn exps(scores: &mut [f32], m: &mut [f32], l: &mut [f32]) {
        let group = m.len();
        let period = group / gcd(8, group);
        let whole = scores.len() / 8 * 8;
        let fold = |acc: &[__m256], out: &mut [f32], f: fn(f32, f32) -> f32| {
            for (k, &v) in acc[..period].iter().enumerate() {
                let mut lanes = [0.0f32; 8];
                // SAFETY: eight floats.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
                for (j, &x) in lanes.iter().enumerate() {
                    let c = (8 * k + j) % group;
                    out[c] = f(out[c], x);
                }
            }
        };
        let mut acc = [_mm256_set1_ps(f32::NEG_INFINITY); 8];
        let mut k = 0;
        for o in (0..whole).step_by(8) {
            // SAFETY: o + 8 <= scores.len().
            acc[k] = _mm256_max_ps(acc[k], unsafe { _mm256_loadu_ps(scores.as_ptr().add(o)) });
            k = if k + 1 == period { 0 } else { k + 1 };
        }
        m.fill(f32::NEG_INFINITY);
        fold(&acc, m, f32::max);
        for (i, &s) in scores.iter().enumerate().skip(whole) {
            m[i % group] = m[i % group].max(s);
        }
        let mut acc = [_mm256_setzero_ps(); 8];
        k = 0;
        let done = map_columns(scores, m, |s, m| {
            let e = exp8(_mm256_sub_ps(s, m));
            acc[k] = _mm256_add_ps(acc[k], e);
            k = if k + 1 == period { 0 } else { k + 1 };
            e
        });
        l.fill(0.0);
        fold(&acc, l, |a, b| a + b);
        for (i, s) in scores.iter_mut().enumerate().skip(done) {
            *s = exp(*s - m[i % group]);
            l[i % group] += *s;
        }
    }

    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }

    /// # Safety
    /// As `exps`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn round_weights(exps: &mut [f32], factor: &[f32]) -> usize {
        map_columns(exps, factor, |e, f| {
            let w = _mm256_mul_ps(e, f);
            _mm256_cvtph_ps(_mm256_cvtps_ph(w, _MM_FROUND_TO_NEAREST_INT))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_and_scalar_paths_agree_bit_for_bit() {
        for group in 1..=9 {
            let n = 37 * group;
            let scores: Vec<f32> = (0..n)
                .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.05)
                .collect();
            let (mut m, mut l) = (vec![0.0; group], vec![0.0; group]);
            let mut e = scores.clone();
            exps(&mut e, group, &mut m, &mut l);
            for g in 0..group {
                let column = || scores.iter().skip(g).step_by(group);
                assert_eq!(m[g], column().fold(f32::MIN, |a, &b| a.max(b)));
                // Summed in another order by the vector path.
                let sum: f32 = column().map(|&s| exp(s - m[g])).sum();
                assert!((l[g] - sum).abs() <= 1e-6 * sum, "{} vs {sum}", l[g]);
                for (&e, &s) in e.iter().skip(g).step_by(group).zip(column()) {
                    assert_eq!(e.to_bits(), exp(s - m[g]).to_bits());
                }
            }
            let factor: Vec<f32> = l.iter().map(|l| 1.0 / l).collect();
            let mut w = e.clone();
            round_weights(&mut w, group, &factor);
            for (i, &w) in w.iter().enumerate() {
                let want = f16::from_f32(exp(scores[i] - m[i % group]) * factor[i % group]);
                assert_eq!(
                    w.to_bits(),
                    want.to_f32().to_bits(),
                    "group {group} index {i}"
                );
            }
        }
    }
}
