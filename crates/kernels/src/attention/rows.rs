//! The two loops attention spends its time in, over f16 cache rows shared by a group of query
//! heads: the scores `q_g·k_j` and the weighted sum `Σ_j p_jg·v_j`. Each cached row is loaded
//! and converted once for all the heads of its group. AVX2 + F16C where the CPU has it (the tier
//! of `quant::tier`) and the head size is a multiple of 8; plain loops otherwise.

use half::f16;

use crate::quant::{tier, Tier};

/// Where one KV head's rows sit in a cache laid out `[position][kv_head][head_dim]`.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub cache: &'a [f16],
    /// Elements from one position to the next.
    pub stride: usize,
    /// The head's offset within a position, and its length.
    pub offset: usize,
    pub head_dim: usize,
}

impl Rows<'_> {
    fn row(&self, j: usize) -> &[f16] {
        &self.cache[j * self.stride + self.offset..][..self.head_dim]
    }
}

/// Heads in a group the SIMD path keeps in registers (one compiled loop per group size).
const MAX_GROUP: usize = 8;

fn simd(rows: &Rows, group: usize) -> bool {
    tier() == Tier::Avx2 && rows.head_dim.is_multiple_of(8) && group <= MAX_GROUP
}

/// `out[i·group + g] = scale · q[g]·k[first + i]` for `i` in `0..out.len() / group`; `q` is
/// `[group][head_dim]`.
pub fn scores(q: &[f32], k: &Rows, first: usize, scale: f32, out: &mut [f32]) {
    let hd = k.head_dim;
    let group = q.len() / hd;
    #[cfg(target_arch = "x86_64")]
    if simd(k, group) {
        // SAFETY: the AVX2 tier is chosen only where the CPU has AVX2, FMA and F16C.
        return unsafe { avx2::scores(q, k, first, scale, out) };
    }
    for (i, per_head) in out.chunks_exact_mut(group).enumerate() {
        let row = k.row(first + i);
        for (o, qg) in per_head.iter_mut().zip(q.chunks_exact(hd)) {
            *o = qg
                .iter()
                .zip(row)
                .map(|(&a, &b)| a * b.to_f32())
                .sum::<f32>()
                * scale;
        }
    }
}

/// `acc[g] += Σ_i p[i·group + g] · v[first + i]` for `i` in `0..p.len() / group`; `acc` is
/// `[group][head_dim]`.
pub fn weighted_sum(p: &[f32], v: &Rows, first: usize, acc: &mut [f32]) {
    let hd = v.head_dim;
    let group = acc.len() / hd;
    #[cfg(target_arch = "x86_64")]
    if simd(v, group) {
        // SAFETY: as above.
        return unsafe { avx2::weighted_sum(p, v, first, acc) };
    }
    for (i, weights) in p.chunks_exact(group).enumerate() {
        let row = v.row(first + i);
        for (a, &w) in acc.chunks_exact_mut(hd).zip(weights) {
            for (a, &x) in a.iter_mut().zip(row) {
                *a += w * x.to_f32();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::Rows;
    use crate::quant::avx2::hsum;

    /// Calls `$f::<G>` for the runtime group size `G` in 1..=8 (`MAX_GROUP`), so each size
    /// gets a loop whose accumulators live in registers.
    macro_rules! for_group {
        ($group:expr, $f:ident($($arg:expr),*)) => {
            match $group {
                1 => $f::<1>($($arg),*),
                2 => $f::<2>($($arg),*),
                3 => $f::<3>($($arg),*),
                4 => $f::<4>($($arg),*),
                5 => $f::<5>($($arg),*),
                6 => $f::<6>($($arg),*),
                7 => $f::<7>($($arg),*),
                _ => $f::<8>($($arg),*),
            }
        };
    }

    /// Eight f16 as f32.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const half::f16) -> __m256 {
        // SAFETY: the caller points at eight readable values.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; `head_dim` is a multiple of 8 and the group at
    /// most `MAX_GROUP`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn scores(q: &[f32], k: &Rows, first: usize, scale: f32, out: &mut [f32]) {
        // SAFETY: forwarded.
        unsafe { for_group!(q.len() / k.head_dim, scores_g(q, k, first, scale, out)) }
    }

    /// Each position's `G` dot products are left as vectors and reduced eight at a time (the
    /// order of `out`), one horizontal-add tree for eight results instead of one per result.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scores_g<const G: usize>(
        q: &[f32],
        k: &Rows,
        first: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        let hd = k.head_dim;
        let mut pending = [_mm256_setzero_ps(); 16];
        let (mut n_pending, mut written) = (0, 0);
        for i in 0..out.len() / G {
            let row = k.row(first + i);
            let mut acc = [_mm256_setzero_ps(); G];
            for d in (0..hd).step_by(8) {
                // SAFETY: d + 8 <= hd for the row and for each head of `q`.
                unsafe {
                    let kv = load8(row.as_ptr().add(d));
                    for (g, acc) in acc.iter_mut().enumerate() {
                        let qv = _mm256_loadu_ps(q.as_ptr().add(g * hd + d));
                        *acc = _mm256_fmadd_ps(qv, kv, *acc);
                    }
                }
            }
            pending[n_pending..n_pending + G].copy_from_slice(&acc);
            n_pending += G;
            if n_pending >= 8 {
                let sums = _mm256_mul_ps(sum8(&pending), _mm256_set1_ps(scale));
                // SAFETY: `written + 8` values have been computed, so they fit in `out`.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(written), sums) };
                written += 8;
                n_pending -= 8;
                pending.copy_within(8..8 + n_pending, 0);
            }
        }
        for (o, acc) in out[written..].iter_mut().zip(&pending[..n_pending]) {
            *o = hsum(*acc) * scale;
        }
    }

    /// The horizontal sums of the first eight vectors, as one vector.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn sum8(a: &[__m256]) -> __m256 {
        let t0 = _mm256_hadd_ps(a[0], a[1]);
        let t1 = _mm256_hadd_ps(a[2], a[3]);
        let t2 = _mm256_hadd_ps(a[4], a[5]);
        let t3 = _mm256_hadd_ps(a[6], a[7]);
        // Per 128-bit half: [a0, a1, a2, a3] and [a4 .. a7], low halves then high halves.
        let u0 = _mm256_hadd_ps(t0, t1);
        let u1 = _mm256_hadd_ps(t2, t3);
        _mm256_add_ps(
            _mm256_permute2f128_ps(u0, u1, 0x20),
            _mm256_permute2f128_ps(u0, u1, 0x31),
        )
    }

    /// # Safety
    /// As `scores`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn weighted_sum(p: &[f32], v: &Rows, first: usize, acc: &mut [f32]) {
        // SAFETY: forwarded.
        unsafe { for_group!(acc.len() / v.head_dim, weighted_sum_g(p, v, first, acc)) }
    }

    /// Eight columns at a time, down all the positions, with the group's sums in registers.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn weighted_sum_g<const G: usize>(p: &[f32], v: &Rows, first: usize, acc: &mut [f32]) {
        let hd = v.head_dim;
        for d in (0..hd).step_by(8) {
            // SAFETY: d + 8 <= hd for each row and each head of `acc`.
            unsafe {
                let mut sums: [__m256; G] =
                    std::array::from_fn(|g| _mm256_loadu_ps(acc.as_ptr().add(g * hd + d)));
                for (i, weights) in p.chunks_exact(G).enumerate() {
                    let vv = load8(v.row(first + i).as_ptr().add(d));
                    for (sum, &w) in sums.iter_mut().zip(weights) {
                        *sum = _mm256_fmadd_ps(_mm256_set1_ps(w), vv, *sum);
                    }
                }
                for (g, sum) in sums.into_iter().enumerate() {
                    _mm256_storeu_ps(acc.as_mut_ptr().add(g * hd + d), sum);
                }
            }
        }
    }
}
