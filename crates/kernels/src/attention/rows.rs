//! The two loops attention spends its time in, over one KV head's f16 cache shared by a group
//! of query heads: the scores `q_g·k_j` and the weighted sum `Σ_j p_gj·v_j`.
//!
//! Within a block, a head's keys are stored as columns (`[head_dim][KV_BLOCK]`: one position per
//! lane of a vector) and its values as rows (`[KV_BLOCK][head_dim]`: one column per lane). So
//! both loops keep their vector lanes independent: the scores are computed 8 (AVX2) or 16
//! (AVX-512) positions at a time, each summed over the head's dimensions in order; the weighted
//! sum 8 or 16 columns at a time, each summed over the positions in order. Nothing is summed
//! across lanes, so a lane's arithmetic is the same whatever the width of its vector: the AVX2
//! and AVX-512 code give the same bits, and a position's score does not depend on which others
//! were computed beside it. Plain loops where the CPU has neither.

use std::ops::Range;

use half::f16;

use super::KV_BLOCK;
#[cfg(target_arch = "x86_64")]
use crate::tier::{float_vectors, FloatVectors};

/// Where position `o` of a block (`0..KV_BLOCK`) and dimension `d` of a head's key are stored
/// in the head's part of the block.
pub(super) fn key_at(o: usize, d: usize, _head_dim: usize) -> usize {
    d * KV_BLOCK + o
}

/// Where position `o` of a block and dimension `d` of a head's value are stored in the head's
/// part of the block.
pub(super) fn value_at(o: usize, d: usize, head_dim: usize) -> usize {
    o * head_dim + d
}

/// One KV head of a sequence in a paged cache (see `KV_BLOCK`): its part of each block is
/// `KV_BLOCK * head_dim` values in one piece, in the blocks where the sequence's `table` says.
#[derive(Clone, Copy)]
pub struct Head<'a> {
    pub pool: &'a [f16],
    pub table: &'a [u32],
    pub kv_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
}

impl<'a> Head<'a> {
    fn start(&self, block: usize) -> usize {
        (block * self.n_kv_head + self.kv_head) * KV_BLOCK * self.head_dim
    }

    /// The head's part of the block holding position `j`.
    fn block(&self, j: usize) -> &'a [f16] {
        let block = self.table[j / KV_BLOCK] as usize;
        &self.pool[self.start(block)..][..KV_BLOCK * self.head_dim]
    }

    /// Where the head's part of the block holding position `j` starts, if the table reaches
    /// it: for prefetching only, so not checked against the pool (a prefetch of any address is
    /// harmless).
    fn prefetch_address(&self, j: usize) -> Option<*const f16> {
        let block = *self.table.get(j / KV_BLOCK)? as usize;
        Some(self.pool.as_ptr().wrapping_add(self.start(block)))
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

/// Query heads the vector code computes together (larger groups are cut into groups of this
/// many: each head's results are independent of the others').
const MAX_GROUP: usize = 8;

/// How far ahead of the positions being read (in positions) their successors' cache lines are
/// requested: the KV cache of a decode step comes from memory (the weights streamed through the
/// caches since the layer's last step), and a chunk's blocks are too short a stream for the
/// hardware prefetchers to reach full speed on their own. Two blocks: of 64, 128 and 256 tried
/// in `attention/decode-from-memory`, 128 was as fast as any.
const AHEAD: usize = 2 * KV_BLOCK;

/// `out[i] = x[i]` rounded to f16 (the query, as llama.cpp converts it for `q·k`).
pub fn round_to_f16(x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    let done = match float_vectors() {
        // SAFETY: the tier's vectors are there only where the CPU has AVX2, FMA and F16C.
        FloatVectors::Avx2 | FloatVectors::Avx512 => unsafe { x86::round_to_f16(x, out) },
        FloatVectors::Plain => 0,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (o, &x) in out.iter_mut().zip(x).skip(done) {
        *o = f16::from_f32(x).to_f32();
    }
}

/// A vector kernel for the scores of one block's positions `range` for the heads of `q` (at
/// most `MAX_GROUP`): `out[g·KV_BLOCK + o]` for `o` in `range` (and perhaps a few more, of no
/// use). Its arguments: `q`, the head's part of the block, `range`, the scale, that part of a
/// later block to prefetch (if any), `out`. Unsafe: only where the CPU has its features.
type ScoresBlock = unsafe fn(&[f32], &[f16], Range<usize>, f32, Option<*const f16>, &mut [f32]);

/// A vector kernel for the weighted sum of one block's rows `range` into `acc` (`[group]
/// [head_dim]`, at most `MAX_GROUP` heads): row `o` is weighted by `p[g·stride + done + o -
/// range.start]`. Its arguments: `p`, `stride`, `done`, the head's part of the block, `range`,
/// that part of a later block to prefetch (if any), `acc`. Unsafe: only where the CPU has its
/// features.
type WeightedSumBlock =
    unsafe fn(&[f32], usize, usize, &[f16], Range<usize>, Option<*const f16>, &mut [f32]);

/// `out[g·n + i] = scale · q_g·k_{first + i}` for `i` in `0..n`, where `n = out.len() / group`
/// and `q` is `[group][head_dim]`: the scores of each head of the group in a row of their own.
pub fn scores(q: &[f32], k: &Head, first: usize, scale: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    let kernel = x86::scores_block(float_vectors());
    #[cfg(not(target_arch = "x86_64"))]
    let kernel = None;
    // SAFETY: the kernel is the tier's, for this CPU.
    unsafe { scores_with(kernel, q, k, first, scale, out) }
}

/// `scores` by `kernel`, or by plain loops.
///
/// # Safety
/// The CPU has the kernel's features.
unsafe fn scores_with(
    kernel: Option<ScoresBlock>,
    q: &[f32],
    k: &Head,
    first: usize,
    scale: f32,
    out: &mut [f32],
) {
    let hd = k.head_dim;
    let group = q.len() / hd;
    let n = out.len() / group;
    let mut done = 0;
    for (first, len) in runs(first, n) {
        let (block, o) = (k.block(first), first % KV_BLOCK);
        if let Some(kernel) = kernel {
            let ahead = k.prefetch_address(first + AHEAD);
            let mut block_scores = [0.0f32; MAX_GROUP * KV_BLOCK];
            for (heads, q) in q.chunks(MAX_GROUP * hd).enumerate() {
                let part = &mut block_scores[..q.len() / hd * KV_BLOCK];
                // SAFETY: forwarded; `part` holds `KV_BLOCK` scores for each head of `q`.
                unsafe { kernel(q, block, o..o + len, scale, ahead, part) };
                for (g, row) in part.chunks_exact(KV_BLOCK).enumerate() {
                    let g = heads * MAX_GROUP + g;
                    out[g * n + done..][..len].copy_from_slice(&row[o..o + len]);
                }
            }
        } else {
            for (g, qg) in q.chunks_exact(hd).enumerate() {
                for (i, s) in out[g * n + done..][..len].iter_mut().enumerate() {
                    *s = qg
                        .iter()
                        .enumerate()
                        .map(|(d, &q)| q * block[key_at(o + i, d, hd)].to_f32())
                        .sum::<f32>()
                        * scale;
                }
            }
        }
        done += len;
    }
}

/// `acc[g] += Σ_i p[g·n + i] · v_{first + i}` for `i` in `0..n`, where `n = p.len() / group`,
/// `acc` is `[group][head_dim]` and `p` has a row of weights per head. Each column is summed over
/// the positions in order, across blocks too.
pub fn weighted_sum(p: &[f32], v: &Head, first: usize, acc: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    let kernel = x86::weighted_sum_block(float_vectors(), v.head_dim);
    #[cfg(not(target_arch = "x86_64"))]
    let kernel = None;
    // SAFETY: the kernel is the tier's, for this CPU.
    unsafe { weighted_sum_with(kernel, p, v, first, acc) }
}

/// `weighted_sum` by `kernel`, or by plain loops.
///
/// # Safety
/// The CPU has the kernel's features, and the head's size suits it.
unsafe fn weighted_sum_with(
    kernel: Option<WeightedSumBlock>,
    p: &[f32],
    v: &Head,
    first: usize,
    acc: &mut [f32],
) {
    let hd = v.head_dim;
    let group = acc.len() / hd;
    let n = p.len() / group;
    let mut done = 0;
    for (first, len) in runs(first, n) {
        let (block, o) = (v.block(first), first % KV_BLOCK);
        if let Some(kernel) = kernel {
            let ahead = v.prefetch_address(first + AHEAD);
            for (heads, acc) in acc.chunks_mut(MAX_GROUP * hd).enumerate() {
                // SAFETY: forwarded; `p` has `n` weights for each head of `acc`.
                unsafe {
                    kernel(
                        &p[heads * MAX_GROUP * n..],
                        n,
                        done,
                        block,
                        o..o + len,
                        ahead,
                        acc,
                    )
                };
            }
        } else {
            for (g, acc) in acc.chunks_exact_mut(hd).enumerate() {
                for (i, &w) in p[g * n + done..][..len].iter().enumerate() {
                    for (d, a) in acc.iter_mut().enumerate() {
                        *a += w * block[value_at(o + i, d, hd)].to_f32();
                    }
                }
            }
        }
        done += len;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use half::f16;

    use super::{FloatVectors, ScoresBlock, WeightedSumBlock, KV_BLOCK};

    /// The scores kernel of `vectors`, if it has one.
    pub fn scores_block(vectors: FloatVectors) -> Option<ScoresBlock> {
        match vectors {
            FloatVectors::Avx512 => Some(avx512_scores),
            FloatVectors::Avx2 => Some(avx2_scores),
            FloatVectors::Plain => None,
        }
    }

    /// The weighted-sum kernel of `vectors` for heads of `head_dim`, if it has one.
    pub fn weighted_sum_block(vectors: FloatVectors, head_dim: usize) -> Option<WeightedSumBlock> {
        match vectors {
            FloatVectors::Avx512 if head_dim.is_multiple_of(16) => Some(avx512_weighted_sum),
            FloatVectors::Avx2 | FloatVectors::Avx512 if head_dim.is_multiple_of(8) => {
                Some(avx2_weighted_sum)
            }
            _ => None,
        }
    }

    /// Calls `$f::<G, V>` for the runtime group size `G` (one compiled loop per group size, its
    /// sums in registers), with `V` the literal listed for that `G`.
    macro_rules! for_group {
        ($group:expr, $f:ident,
         [$v1:literal, $v2:literal, $v3:literal, $v4:literal,
          $v5:literal, $v6:literal, $v7:literal, $v8:literal],
         ($($arg:expr),*)) => {
            match $group {
                1 => $f::<1, $v1>($($arg),*),
                2 => $f::<2, $v2>($($arg),*),
                3 => $f::<3, $v3>($($arg),*),
                4 => $f::<4, $v4>($($arg),*),
                5 => $f::<5, $v5>($($arg),*),
                6 => $f::<6, $v6>($($arg),*),
                7 => $f::<7, $v7>($($arg),*),
                _ => $f::<8, $v8>($($arg),*),
            }
        };
    }

    /// Request the cache lines of `bytes` bytes from `offset` values after `at`, if there is an
    /// `at`: a hint, nothing is read (prefetches never fault).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn prefetch(at: Option<*const f16>, offset: usize, bytes: usize) {
        if let Some(at) = at {
            let at = at.wrapping_add(offset).cast::<i8>();
            for line in (0..bytes).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(line));
            }
        }
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

    /// Defines the scores of one block for one vector width: `$lanes` positions a vector,
    /// `$vectors[G - 1]` vectors computed together for a group of `G` heads (so that their
    /// `G × vectors` sums, the group's query values and one vector of keys fit the registers).
    macro_rules! scores_kernel {
        ($name:ident, $name_gv:ident, $step:ident, $features:literal, $lanes:literal,
         $vectors:tt,
         $vec:ty, $zero:ident, $set1:ident, $fmadd:ident, $mul:ident, $store:ident,
         $load_f16:expr) => {
            /// # Safety
            /// The CPU has the kernel's features; as `ScoresBlock` says.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(
                q: &[f32],
                block: &[f16],
                range: Range<usize>,
                scale: f32,
                ahead: Option<*const f16>,
                out: &mut [f32],
            ) {
                let hd = block.len() / KV_BLOCK;
                let group = q.len() / hd;
                assert!(
                    group <= super::MAX_GROUP
                        && out.len() >= group * KV_BLOCK
                        && range.end <= KV_BLOCK
                );
                let vectors = range.start / $lanes..range.end.div_ceil($lanes);
                // SAFETY: the vectors cover positions within the block, the heads those of q.
                unsafe {
                    for_group!(
                        group,
                        $name_gv,
                        $vectors,
                        (q, block, vectors, scale, ahead, out)
                    )
                }
            }

            /// `V` vectors at a time, then one at a time.
            ///
            /// # Safety
            /// As the kernel's, with `q` holding `G` heads.
            #[target_feature(enable = $features)]
            unsafe fn $name_gv<const G: usize, const V: usize>(
                q: &[f32],
                block: &[f16],
                vectors: Range<usize>,
                scale: f32,
                mut ahead: Option<*const f16>,
                out: &mut [f32],
            ) {
                let mut first = vectors.start;
                while first + V <= vectors.end {
                    // SAFETY: forwarded, for vectors within `vectors`.
                    unsafe { $step::<G, V>(q, block, first, scale, ahead, out) };
                    (first, ahead) = (first + V, None);
                }
                while first < vectors.end {
                    // SAFETY: as above.
                    unsafe { $step::<G, 1>(q, block, first, scale, ahead, out) };
                    (first, ahead) = (first + 1, None);
                }
            }

            /// Vectors `first..first + V` of positions, each lane's sums over the head's
            /// dimensions in order; meanwhile, the block at `ahead` (if any) is prefetched.
            ///
            /// # Safety
            /// As the kernel's, with `q` holding `G` heads and the vectors within the block.
            #[target_feature(enable = $features)]
            unsafe fn $step<const G: usize, const V: usize>(
                q: &[f32],
                block: &[f16],
                first: usize,
                scale: f32,
                ahead: Option<*const f16>,
                out: &mut [f32],
            ) {
                let hd = block.len() / KV_BLOCK;
                let mut acc: [[$vec; V]; G] = [[$zero(); V]; G];
                for d in 0..hd {
                    prefetch(ahead, d * KV_BLOCK, 2 * KV_BLOCK);
                    let qd: [$vec; G] = std::array::from_fn(|g| {
                        // SAFETY: g < G heads of hd values in q.
                        $set1(unsafe { *q.get_unchecked(g * hd + d) })
                    });
                    let keys = block[d * KV_BLOCK..].as_ptr().wrapping_add(first * $lanes);
                    for v in 0..V {
                        // SAFETY: vector `first + v` ends within the block's row `d`.
                        let k = unsafe { $load_f16(keys.add(v * $lanes)) };
                        for g in 0..G {
                            acc[g][v] = $fmadd(qd[g], k, acc[g][v]);
                        }
                    }
                }
                for (g, acc) in acc.iter().enumerate() {
                    for (v, &sum) in acc.iter().enumerate() {
                        let at = g * KV_BLOCK + (first + v) * $lanes;
                        // SAFETY: within head g's KV_BLOCK scores.
                        unsafe { $store(out[at..].as_mut_ptr(), $mul(sum, $set1(scale))) };
                    }
                }
            }
        };
    }

    /// Eight f16 as f32.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const f16) -> __m256 {
        // SAFETY: the caller points at eight readable values.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }

    /// Sixteen f16 as f32.
    #[target_feature(enable = "avx512f")]
    unsafe fn load16(p: *const f16) -> __m512 {
        // SAFETY: the caller points at sixteen readable values.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }

    scores_kernel!(
        avx2_scores,
        avx2_scores_gv,
        avx2_scores_step,
        "avx2,fma,f16c",
        8,
        [8, 4, 4, 2, 1, 1, 1, 1],
        __m256,
        _mm256_setzero_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_mul_ps,
        _mm256_storeu_ps,
        load8
    );

    scores_kernel!(
        avx512_scores,
        avx512_scores_gv,
        avx512_scores_step,
        "avx2,fma,f16c,avx512f",
        16,
        [4, 4, 4, 4, 4, 4, 2, 2],
        __m512,
        _mm512_setzero_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_mul_ps,
        _mm512_storeu_ps,
        load16
    );

    /// Defines the weighted sum of one block for one vector width: `$lanes` columns a vector,
    /// `C` vectors per pass over the rows, as many as divide the head and keep the group's sums
    /// and weights in `$registers` registers (one to spare: a spilled sum costs more than
    /// another pass).
    macro_rules! weighted_sum_kernel {
        ($name:ident, $name_gc:ident, $features:literal, $lanes:literal, $registers:literal,
         $vec:ty, $set1:ident, $fmadd:ident, $load:ident, $store:ident, $load_f16:expr) => {
            /// # Safety
            /// The CPU has the kernel's features; as `WeightedSumBlock` says.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(
                p: &[f32],
                stride: usize,
                done: usize,
                block: &[f16],
                range: Range<usize>,
                ahead: Option<*const f16>,
                acc: &mut [f32],
            ) {
                let hd = block.len() / KV_BLOCK;
                let group = acc.len() / hd;
                let n = range.len();
                assert!(
                    group <= super::MAX_GROUP
                        && hd.is_multiple_of($lanes)
                        && range.end <= KV_BLOCK
                        && p.len() >= (group - 1) * stride + done + n
                );
                // The rows `AHEAD` positions on, as many as these.
                let wide = ($registers - 1 - group) / group;
                let columns = [8, 4, 2, 1]
                    .into_iter()
                    .find(|&c| c <= wide.max(1) && (hd / $lanes).is_multiple_of(c))
                    .unwrap_or(1);
                let rows = &block[range.start * hd..][..n * hd];
                // The rows `AHEAD` positions on from these.
                let ahead = ahead.map(|a| a.wrapping_add(range.start * hd));
                let p = &p[done..];
                // SAFETY: `$lanes * columns` divides the head; the weights are in `p`.
                unsafe {
                    match columns {
                        8 => for_group!(
                            group,
                            $name_gc,
                            [8, 8, 8, 8, 8, 8, 8, 8],
                            (p, stride, rows, ahead, acc)
                        ),
                        4 => for_group!(
                            group,
                            $name_gc,
                            [4, 4, 4, 4, 4, 4, 4, 4],
                            (p, stride, rows, ahead, acc)
                        ),
                        2 => for_group!(
                            group,
                            $name_gc,
                            [2, 2, 2, 2, 2, 2, 2, 2],
                            (p, stride, rows, ahead, acc)
                        ),
                        _ => for_group!(
                            group,
                            $name_gc,
                            [1, 1, 1, 1, 1, 1, 1, 1],
                            (p, stride, rows, ahead, acc)
                        ),
                    }
                }
            }

            /// `$lanes * C` columns at a time, down all the rows, with the group's sums in
            /// registers: each row's columns are converted once for the whole group, each weight
            /// broadcast once for all `C` vectors.
            ///
            /// # Safety
            /// As the kernel's, with `acc` holding `G` heads and `$lanes * C` dividing the head.
            #[target_feature(enable = $features)]
            unsafe fn $name_gc<const G: usize, const C: usize>(
                p: &[f32],
                stride: usize,
                rows: &[f16],
                ahead: Option<*const f16>,
                acc: &mut [f32],
            ) {
                let hd = acc.len() / G;
                let n = rows.len() / hd;
                for d in (0..hd).step_by($lanes * C) {
                    let at = |g: usize, c: usize| g * hd + d + $lanes * c;
                    let mut sums: [[$vec; C]; G] = std::array::from_fn(|g| {
                        std::array::from_fn(|c| {
                            // SAFETY: every `at(g, c) + $lanes <= acc.len()`.
                            unsafe { $load(acc[at(g, c)..].as_ptr()) }
                        })
                    });
                    for i in 0..n {
                        if d == 0 {
                            prefetch(ahead, i * hd, 2 * hd);
                        }
                        let w: [$vec; G] = std::array::from_fn(|g| $set1(p[g * stride + i]));
                        let row = rows[i * hd + d..].as_ptr();
                        // One vector of the row live at a time: G + G·C + 1 registers.
                        for c in 0..C {
                            // SAFETY: d + $lanes * (c + 1) <= hd, within row i.
                            let v = unsafe { $load_f16(row.add($lanes * c)) };
                            for (sums, &w) in sums.iter_mut().zip(&w) {
                                sums[c] = $fmadd(w, v, sums[c]);
                            }
                        }
                    }
                    for (g, sums) in sums.iter().enumerate() {
                        for (c, &sum) in sums.iter().enumerate() {
                            // SAFETY: as the loads.
                            unsafe { $store(acc[at(g, c)..].as_mut_ptr(), sum) };
                        }
                    }
                }
            }
        };
    }

    weighted_sum_kernel!(
        avx2_weighted_sum,
        avx2_weighted_sum_gc,
        "avx2,fma,f16c",
        8,
        15,
        __m256,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        load8
    );

    weighted_sum_kernel!(
        avx512_weighted_sum,
        avx512_weighted_sum_gc,
        "avx2,fma,f16c,avx512f",
        16,
        31,
        __m512,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        load16
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::{kv_block_len, write_keys, write_values};

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Random keys and values of `positions` positions of 2 KV heads, in pools of scattered
    /// blocks; returns them with the table.
    fn cache(positions: usize, hd: usize, seed: &mut u64) -> (Vec<f16>, Vec<f16>, Vec<u32>) {
        let n = positions.div_ceil(KV_BLOCK);
        let table: Vec<u32> = (0..n as u32).map(|i| 2 * (n as u32 - 1 - i) + 1).collect();
        let mut k = vec![f16::ZERO; 2 * n * kv_block_len(2, hd)];
        let mut v = k.clone();
        let x: Vec<f32> = (0..positions * 2 * hd).map(|_| lcg(seed)).collect();
        write_keys(&mut k, &table, &x, 0, 2, hd);
        let x: Vec<f32> = (0..positions * 2 * hd).map(|_| lcg(seed)).collect();
        write_values(&mut v, &table, &x, 0, 2, hd);
        (k, v, table)
    }

    /// The vector code of each x86 tier this CPU can run (the others reported as skipped).
    #[cfg(target_arch = "x86_64")]
    fn vector_tiers() -> Vec<FloatVectors> {
        use crate::tier::Tier;
        let mut tiers = Vec::new();
        for tier in [Tier::Avx2, Tier::Avx512] {
            match tier.supported() {
                Ok(()) => tiers.push(tier.float_vectors()),
                Err(why) => ward_testkit::skip(&format!("the {tier} tier"), &why),
            }
        }
        tiers
    }

    /// Every vector kernel against the plain loops, on random data, for groups from 1 to past
    /// `MAX_GROUP`, head sizes with and without whole vectors, and runs that start and end
    /// inside blocks; the kernels of different widths give the same bits.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vector_kernels_match_the_plain_loops_and_each_other() {
        let mut seed = 5u64;
        for hd in [8usize, 24, 64, 128, 256] {
            let (k, v, table) = cache(260, hd, &mut seed);
            for group in [1usize, 2, 3, 4, 5, 7, 8, 9, 12] {
                let q: Vec<f32> = (0..group * hd).map(|_| lcg(&mut seed)).collect();
                for (first, n) in [
                    (0usize, 1usize),
                    (0, 64),
                    (3, 5),
                    (5, 130),
                    (60, 9),
                    (17, 243),
                ] {
                    let head = |pool| Head {
                        pool,
                        table: &table,
                        kv_head: 1,
                        n_kv_head: 2,
                        head_dim: hd,
                    };
                    let p: Vec<f32> = (0..group * n).map(|_| lcg(&mut seed)).collect();
                    let run = |scores_kernel, sum_kernel| {
                        let mut s = vec![0.0f32; group * n];
                        let mut acc = vec![0.5f32; group * hd];
                        // SAFETY: `vector_tiers` lists only what this CPU runs.
                        unsafe {
                            scores_with(scores_kernel, &q, &head(&k), first, 0.3, &mut s);
                            weighted_sum_with(sum_kernel, &p, &head(&v), first, &mut acc);
                        }
                        (s, acc)
                    };
                    let (plain_s, plain_acc) = run(None, None);
                    let mut bits = None;
                    for vectors in vector_tiers() {
                        let (s, acc) = run(
                            x86::scores_block(vectors),
                            x86::weighted_sum_block(vectors, hd),
                        );
                        let what = format!("{vectors:?}: head {hd}, group {group}, {first}+{n}");
                        for (a, b) in s.iter().zip(&plain_s) {
                            assert!(
                                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                                "{a} vs {b}, {what}"
                            );
                        }
                        for (a, b) in acc.iter().zip(&plain_acc) {
                            assert!(
                                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                                "{a} vs {b}, {what}"
                            );
                        }
                        let these = (s.iter().chain(&acc).map(|x| x.to_bits())).collect::<Vec<_>>();
                        if let Some(bits) = &bits {
                            assert!(
                                bits == &these,
                                "{what}: not the bits of the narrower kernel"
                            );
                        }
                        bits = Some(these);
                    }
                }
            }
        }
    }

    /// A position's score is the same whichever positions are computed with it (decode of one
    /// token equals its row of a prefill).
    #[test]
    fn a_score_does_not_depend_on_its_neighbours() {
        let mut seed = 9u64;
        let hd = 64;
        let (k, _, table) = cache(200, hd, &mut seed);
        let head = Head {
            pool: &k,
            table: &table,
            kv_head: 0,
            n_kv_head: 2,
            head_dim: hd,
        };
        let q: Vec<f32> = (0..3 * hd).map(|_| lcg(&mut seed)).collect();
        let mut all = vec![0.0f32; 3 * 200];
        scores(&q, &head, 0, 0.125, &mut all);
        for (first, n) in [(5usize, 100usize), (63, 2), (199, 1)] {
            let mut some = vec![0.0f32; 3 * n];
            scores(&q, &head, first, 0.125, &mut some);
            for g in 0..3 {
                assert_eq!(
                    some[g * n..][..n],
                    all[g * 200 + first..][..n],
                    "{first}+{n}"
                );
            }
        }
    }
}
