//! The two loops attention spends its time in, over f16 cache rows shared by a group of query
//! heads: the scores `q_g·k_j` and the weighted sum `Σ_j p_jg·v_j`. Each cached row is loaded
//! and converted once for all the heads of its group. AVX2 + F16C where the CPU has it (the tier
//! of `quant::tier`) and the head size is a multiple of 8; plain loops otherwise.

use half::f16;

use super::{kv_row_at, KV_BLOCK};

#[cfg(target_arch = "x86_64")]
use crate::tier::avx2_floats;

/// One KV head's rows of a sequence in a paged cache (see `KV_BLOCK`): contiguous within a
/// block, the blocks where the sequence's `table` says.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub pool: &'a [f16],
    pub table: &'a [u32],
    pub kv_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
}

impl Rows<'_> {
    fn at(&self, j: usize) -> usize {
        kv_row_at(self.table, j, self.kv_head, self.n_kv_head, self.head_dim)
    }

    fn row(&self, j: usize) -> &[f16] {
        &self.pool[self.at(j)..][..self.head_dim]
    }

    /// Where row `j` is, if the table reaches it: for prefetching only, so not checked
    /// against the pool (a prefetch of any address is harmless).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn prefetch_address(&self, j: usize) -> Option<*const f16> {
        let block = *self.table.get(j / KV_BLOCK)? as usize;
        let at =
            ((block * self.n_kv_head + self.kv_head) * KV_BLOCK + j % KV_BLOCK) * self.head_dim;
        Some(self.pool.as_ptr().wrapping_add(at))
    }

    /// A pointer to row `first` of a run of `n` rows within one block, having checked that they
    /// are in the cache (the SIMD loops step from one to the next by `head_dim`).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn run(&self, first: usize, n: usize) -> *const f16 {
        debug_assert!(n == 0 || first / KV_BLOCK == (first + n - 1) / KV_BLOCK);
        if n > 0 {
            let _ = self.row(first + n - 1);
        }
        self.pool[self.at(first)..].as_ptr()
    }
}

/// Rows `first..first + n` as runs `(first, n)` that do not cross a block boundary.
fn runs(mut first: usize, mut n: usize) -> impl Iterator<Item = (usize, usize)> {
    std::iter::from_fn(move || {
        (n > 0).then(|| {
            let len = n.min(KV_BLOCK - first % KV_BLOCK);
            let run = (first, len);
            (first, n) = (first + len, n - len);
            run
        })
    })
}

/// Heads in a group the SIMD path keeps in registers (one compiled loop per group size).
#[cfg(target_arch = "x86_64")]
const MAX_GROUP: usize = 8;

#[cfg(target_arch = "x86_64")]
fn simd(rows: &Rows, group: usize) -> bool {
    avx2_floats() && rows.head_dim.is_multiple_of(8) && group <= MAX_GROUP
}

/// `out[i] = x[i]` rounded to f16 (the query, as llama.cpp converts it for `q·k`).
pub fn round_to_f16(x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    let done = if avx2_floats() {
        // SAFETY: `avx2_floats` is true only where the CPU has AVX2, FMA and F16C.
        unsafe { avx2::round_to_f16(x, out) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (o, &x) in out.iter_mut().zip(x).skip(done) {
        *o = f16::from_f32(x).to_f32();
    }
}

/// `out[i·group + g] = scale · q[g]·k[first + i]` for `i` in `0..out.len() / group`; `q` is
/// `[group][head_dim]`.
pub fn scores(q: &[f32], k: &Rows, first: usize, scale: f32, out: &mut [f32]) {
    let group = q.len() / k.head_dim;
    let mut done = 0;
    for (first, n) in runs(first, out.len() / group) {
        scores_run(q, k, first, scale, &mut out[done * group..][..n * group]);
        done += n;
    }
}

/// `scores` of rows within one block.
fn scores_run(q: &[f32], k: &Rows, first: usize, scale: f32, out: &mut [f32]) {
    let hd = k.head_dim;
    let group = q.len() / hd;
    #[cfg(target_arch = "x86_64")]
    if simd(k, group) {
        // SAFETY: `avx2_floats` is true only where the CPU has AVX2, FMA and F16C.
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
/// `[group][head_dim]`. Each column is summed over the positions in order, across blocks too.
pub fn weighted_sum(p: &[f32], v: &Rows, first: usize, acc: &mut [f32]) {
    let group = acc.len() / v.head_dim;
    let mut done = 0;
    for (first, n) in runs(first, p.len() / group) {
        weighted_sum_run(&p[done * group..][..n * group], v, first, acc);
        done += n;
    }
}

/// `weighted_sum` of rows within one block.
fn weighted_sum_run(p: &[f32], v: &Rows, first: usize, acc: &mut [f32]) {
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

    /// Calls `$f::<G, C>` for the runtime group size `G` in 1..=8 (`MAX_GROUP`), so each size
    /// gets a loop whose accumulators live in registers.
    macro_rules! for_group {
        ($group:expr, $f:ident::<_, $c:literal>($($arg:expr),*)) => {
            match $group {
                1 => $f::<1, $c>($($arg),*),
                2 => $f::<2, $c>($($arg),*),
                3 => $f::<3, $c>($($arg),*),
                4 => $f::<4, $c>($($arg),*),
                5 => $f::<5, $c>($($arg),*),
                6 => $f::<6, $c>($($arg),*),
                7 => $f::<7, $c>($($arg),*),
                _ => $f::<8, $c>($($arg),*),
            }
        };
    }

    /// How far ahead of the row being read (in bytes of the head's rows) its successors' cache
    /// lines are requested: the KV cache of a decode step comes from memory (the weights
    /// streamed through the caches since the layer's last step), and a chunk's rows are too
    /// short a stream for the hardware prefetchers to reach full speed on their own. Half the
    /// L1 cache: of 4, 8, 16 and 32 KiB tried in `attention/decode-from-memory`, 16 was as fast
    /// as any (within the noise of a shared machine) at 640 and 4096 positions.
    const AHEAD_BYTES: usize = 16 << 10;

    /// Ask for the cache lines of the row `AHEAD_BYTES` of rows after row `j`, in whichever
    /// block it is. A hint: nothing is read (prefetches never fault).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn prefetch_ahead(rows: &Rows, j: usize) {
        let hd = rows.head_dim;
        if let Some(ahead) = rows.prefetch_address(j + AHEAD_BYTES / (2 * hd)) {
            let ahead = ahead.cast::<i8>();
            for line in (0..hd * 2).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line));
            }
        }
    }

    /// Eight f16 as f32.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const half::f16) -> __m256 {
        // SAFETY: the caller points at eight readable values.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }

    /// The whole vectors of `round_to_f16`; returns how many values were done.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn round_to_f16(x: &[f32], out: &mut [f32]) -> usize {
        let whole = x.len().min(out.len()) / 8 * 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: i + 8 <= both lengths.
            unsafe {
                let h = _mm256_cvtps_ph(
                    _mm256_loadu_ps(x.as_ptr().add(i)),
                    _MM_FROUND_TO_NEAREST_INT,
                );
                _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            }
        }
        whole
    }

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; `head_dim` is a multiple of 8 and the group at
    /// most `MAX_GROUP`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn scores(q: &[f32], k: &Rows, first: usize, scale: f32, out: &mut [f32]) {
        // SAFETY: forwarded.
        // Positions per step: enough for about eight independent sums, at most 12 registers.
        unsafe {
            match q.len() / k.head_dim {
                1 => scores_gp::<1, 8>(q, k, first, scale, out),
                2 => scores_gp::<2, 4>(q, k, first, scale, out),
                3 => scores_gp::<3, 3>(q, k, first, scale, out),
                4 => scores_gp::<4, 2>(q, k, first, scale, out),
                5 => scores_gp::<5, 2>(q, k, first, scale, out),
                6 => scores_gp::<6, 2>(q, k, first, scale, out),
                7 => scores_gp::<7, 1>(q, k, first, scale, out),
                _ => scores_gp::<8, 1>(q, k, first, scale, out),
            }
        }
    }

    /// Each position's `G` dot products are left as vectors and reduced eight at a time (the
    /// order of `out`), one horizontal-add tree for eight results instead of one per result.
    /// `P` positions are computed together so that `P·G` independent sums hide the latency of
    /// the fused multiply-adds; every dot product is summed in the same order whatever `P`.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scores_gp<const G: usize, const P: usize>(
        q: &[f32],
        k: &Rows,
        first: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        let n = out.len() / G;
        let mut pending = [_mm256_setzero_ps(); 16];
        let (mut n_pending, mut written) = (0, 0);
        let mut push = |acc: &[__m256]| {
            pending[n_pending..n_pending + acc.len()].copy_from_slice(acc);
            n_pending += acc.len();
            if n_pending >= 8 {
                let sums = _mm256_mul_ps(sum8(&pending), _mm256_set1_ps(scale));
                // SAFETY: `written + 8` values have been computed, so they fit in `out`.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(written), sums) };
                written += 8;
                n_pending -= 8;
                pending.copy_within(8..8 + n_pending, 0);
            }
        };
        let rows = k.run(first, n);
        let mut i = 0;
        while i + P <= n {
            // SAFETY: rows i..i + P are among the n that `run` checked.
            let acc = unsafe { dots::<G, P>(q, rows.wrapping_add(i * k.head_dim), k, first + i) };
            acc.iter().for_each(|a| push(a));
            i += P;
        }
        while i < n {
            // SAFETY: row i is among the n that `run` checked.
            let acc = unsafe { dots::<G, 1>(q, rows.wrapping_add(i * k.head_dim), k, first + i) };
            push(&acc[0]);
            i += 1;
        }
        for (o, acc) in out[written..].iter_mut().zip(&pending[..n_pending]) {
            *o = hsum(*acc) * scale;
        }
    }

    /// `q_g · row_p` as vectors of partial sums for `P` consecutive rows from `row`, which is
    /// row `j` of `k`.
    ///
    /// # Safety
    /// As `scores`, and the `P` rows are in the cache.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dots<const G: usize, const P: usize>(
        q: &[f32],
        row: *const half::f16,
        k: &Rows,
        j: usize,
    ) -> [[__m256; G]; P] {
        let hd = k.head_dim;
        for p in 0..P {
            prefetch_ahead(k, j + p);
        }
        let mut acc = [[_mm256_setzero_ps(); G]; P];
        for d in (0..hd).step_by(8) {
            // SAFETY: d + 8 <= hd for each row and each head of `q`.
            unsafe {
                for (p, acc) in acc.iter_mut().enumerate() {
                    let kv = load8(row.add(p * hd + d));
                    for (g, acc) in acc.iter_mut().enumerate() {
                        let qv = _mm256_loadu_ps(q.as_ptr().add(g * hd + d));
                        *acc = _mm256_fmadd_ps(qv, kv, *acc);
                    }
                }
            }
        }
        acc
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
        let group = acc.len() / v.head_dim;
        // Vectors of columns summed per pass over the rows: as many as divide the head and keep
        // the group's sums and weights in registers (G·C + G + 1 of the 16, with one to spare:
        // a spilled sum costs more than another pass).
        let wide = (14 / group).saturating_sub(1).max(1);
        let columns = [8, 4, 2, 1]
            .into_iter()
            .find(|&c| c <= wide && (v.head_dim / 8).is_multiple_of(c))
            .unwrap_or(1);
        // SAFETY: forwarded; `8 * columns` divides the head.
        unsafe {
            match columns {
                8 => for_group!(group, weighted_sum_gc::<_, 8>(p, v, first, acc)),
                4 => for_group!(group, weighted_sum_gc::<_, 4>(p, v, first, acc)),
                2 => for_group!(group, weighted_sum_gc::<_, 2>(p, v, first, acc)),
                _ => for_group!(group, weighted_sum_gc::<_, 1>(p, v, first, acc)),
            }
        }
    }

    /// `8 * C` columns at a time, down all the positions, with the group's sums in registers:
    /// each row's columns are converted once for the whole group, each weight broadcast once
    /// for all `C` vectors. Every column is summed over the positions in order, whatever `C`.
    ///
    /// # Safety
    /// As `scores`, and `8 * C` divides the head.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn weighted_sum_gc<const G: usize, const C: usize>(
        p: &[f32],
        v: &Rows,
        first: usize,
        acc: &mut [f32],
    ) {
        let hd = v.head_dim;
        let n = p.len() / G;
        let rows = v.run(first, n);
        for d in (0..hd).step_by(8 * C) {
            // SAFETY: d + 8 * C <= hd for each row (one of the n rows `run` checked) and
            // each head of `acc`.
            unsafe {
                let base = acc.as_mut_ptr();
                let at = |g: usize, c: usize| base.add(g * hd + d + 8 * c);
                let mut sums: [[__m256; C]; G] =
                    std::array::from_fn(|g| std::array::from_fn(|c| _mm256_loadu_ps(at(g, c))));
                let mut row = rows;
                for (i, weights) in p.chunks_exact(G).enumerate() {
                    if d == 0 {
                        prefetch_ahead(v, first + i);
                    }
                    let w: [__m256; G] = std::array::from_fn(|g| _mm256_set1_ps(weights[g]));
                    // One vector of the row live at a time: G + G·C + 1 registers.
                    for c in 0..C {
                        let vv = load8(row.add(d + 8 * c));
                        for (sums, &w) in sums.iter_mut().zip(&w) {
                            sums[c] = _mm256_fmadd_ps(w, vv, sums[c]);
                        }
                    }
                    row = row.wrapping_add(hd);
                }
                for (g, sums) in sums.iter().enumerate() {
                    for (c, &sum) in sums.iter().enumerate() {
                        _mm256_storeu_ps(at(g, c), sum);
                    }
                }
            }
        }
    }
}
